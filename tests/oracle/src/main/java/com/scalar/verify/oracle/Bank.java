package com.scalar.verify.oracle;

import com.scalar.db.api.Delete;
import com.scalar.db.api.DistributedTransactionAdmin;
import com.scalar.db.api.Get;
import com.scalar.db.api.Put;
import com.scalar.db.api.Result;
import com.scalar.db.api.TableMetadata;
import com.scalar.db.api.TransactionCrudOperable;
import com.scalar.db.exception.transaction.CrudException;
import com.scalar.db.io.DataType;
import com.scalar.db.io.Key;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The bank-transfer schema and workload. Two namespaces; every table has a partition key and at
 * least one clustering key, and non-key columns of every type the brief asks for.
 *
 * <p>Each scenario works on its own "slots" so that no later transaction reads a record an
 * abandoned one left PREPARED (which would trigger lazy recovery in the live database). A slot s
 * owns: bank_a.accounts (100+s, "br"+s%3), bank_a.audit ("slot-"+s, *), bank_b.accounts
 * ("cust-"+s, 5000+s) and bank_b.transfers rows whose transfer_id starts with "-"+s.
 */
final class Bank {
  static final String NS_A = "bank_a";
  static final String NS_B = "bank_b";
  static final String ACCOUNTS = "accounts";
  static final String AUDIT = "audit";
  static final String TRANSFERS = "transfers";
  /** A table created outside ScalarDB and imported (PostgreSQL and MariaDB only). */
  static final String LEGACY = "legacy_accounts";

  /** Tables in a fixed order: [namespace, table]. */
  static final List<String[]> TABLES =
      List.of(
          new String[] {NS_A, ACCOUNTS},
          new String[] {NS_A, AUDIT},
          new String[] {NS_B, ACCOUNTS},
          new String[] {NS_B, TRANSFERS});

  private Bank() {}

  static TableMetadata metadata(String ns, String table) {
    TableMetadata.Builder b = TableMetadata.newBuilder();
    if (table.equals(LEGACY)) {
      return b.addColumn("acct_id", DataType.BIGINT)
          .addColumn("holder", DataType.TEXT)
          .addColumn("balance", DataType.BIGINT)
          .addPartitionKey("acct_id")
          .build();
    }
    if (ns.equals(NS_A) && table.equals(ACCOUNTS)) {
      b.addColumn("account_id", DataType.INT)
          .addColumn("branch", DataType.TEXT)
          .addPartitionKey("account_id")
          .addClusteringKey("branch");
      accountColumns(b);
    } else if (ns.equals(NS_B) && table.equals(ACCOUNTS)) {
      b.addColumn("customer", DataType.TEXT)
          .addColumn("account_no", DataType.BIGINT)
          .addPartitionKey("customer")
          .addClusteringKey("account_no");
      accountColumns(b);
    } else if (table.equals(AUDIT)) {
      b.addColumn("branch", DataType.TEXT)
          .addColumn("seq", DataType.BIGINT)
          .addColumn("event", DataType.TEXT)
          .addColumn("amount", DataType.BIGINT)
          .addColumn("ok", DataType.BOOLEAN)
          .addColumn("weight", DataType.DOUBLE)
          .addColumn("detail", DataType.BLOB)
          .addColumn("flags", DataType.INT)
          .addPartitionKey("branch")
          .addClusteringKey("seq");
    } else {
      b.addColumn("day", DataType.BIGINT)
          .addColumn("transfer_id", DataType.TEXT)
          .addColumn("leg", DataType.INT)
          .addColumn("amount", DataType.BIGINT)
          .addColumn("memo", DataType.TEXT)
          .addColumn("settled", DataType.BOOLEAN)
          .addColumn("fee", DataType.DOUBLE)
          .addColumn("payload", DataType.BLOB)
          .addColumn("attempts", DataType.INT)
          .addPartitionKey("day")
          .addClusteringKey("transfer_id")
          .addClusteringKey("leg");
    }
    return b.build();
  }

  private static void accountColumns(TableMetadata.Builder b) {
    b.addColumn("balance", DataType.BIGINT)
        .addColumn("owner", DataType.TEXT)
        .addColumn("active", DataType.BOOLEAN)
        .addColumn("rate", DataType.DOUBLE)
        .addColumn("photo", DataType.BLOB)
        .addColumn("ops", DataType.INT);
  }

  /**
   * Creates the Coordinator table and the bank schema. {@code options} go to every namespace and
   * table creation (Cassandra: "replication-factor"; ignored by JDBC).
   */
  static void createSchema(DistributedTransactionAdmin admin, Map<String, String> options)
      throws Exception {
    admin.createCoordinatorTables(true, options);
    admin.createNamespace(NS_A, true, options);
    admin.createNamespace(NS_B, true, options);
    for (String[] t : TABLES) {
      admin.createTable(t[0], t[1], metadata(t[0], t[1]), true, options);
    }
  }

  // ---- keys of a slot ----

  /** Every fifth slot has awkward keys: negative integers, non-ASCII text, quotes, '$', a space. */
  static boolean oddKeys(int s) {
    return s % 5 == 4;
  }

  static Key accountAKey(int s) {
    return Key.ofInt("account_id", oddKeys(s) ? -(100 + s) : 100 + s);
  }

  static Key accountACk(int s) {
    return Key.ofText("branch", oddKeys(s) ? "Zürich \"HQ\" $" + (s % 3) : "br" + (s % 3));
  }

  static Key accountBKey(int s) {
    return Key.ofText("customer", oddKeys(s) ? "Zoë's acct-" + s : "cust-" + s);
  }

  static Key accountBCk(int s) {
    return Key.ofBigInt("account_no", oddKeys(s) ? -(5000L + s) : 5000L + s);
  }

  static final long SEED_DAY = 20240101L;
  static final long DAY = 20250101L;

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  // ---- seeding (one committed transaction per call) ----

  static void seedSlot(TransactionCrudOperable tx, int s) throws CrudException {
    // Some owners are NULL so that before images carry NULLs too.
    tx.put(
        Put.newBuilder()
            .namespace(NS_A)
            .table(ACCOUNTS)
            .partitionKey(accountAKey(s))
            .clusteringKey(accountACk(s))
            .bigIntValue("balance", 1000L)
            .booleanValue("active", true)
            .doubleValue("rate", 0.25 + s)
            .blobValue("photo", bytes("photo-a-" + s))
            .intValue("ops", 0)
            .textValue("owner", s % 4 == 3 ? null : "alice-" + s)
            .build());
    tx.put(
        Put.newBuilder()
            .namespace(NS_B)
            .table(ACCOUNTS)
            .partitionKey(accountBKey(s))
            .clusteringKey(accountBCk(s))
            .bigIntValue("balance", 1000L)
            .textValue("owner", "bob-" + s)
            .booleanValue("active", s % 2 == 0)
            .doubleValue("rate", 1.5)
            .blobValue("photo", bytes("photo-b-" + s))
            .intValue("ops", 0)
            .build());
    tx.put(auditPut(s, 1, "open", 1000L));
    tx.put(
        Put.newBuilder()
            .namespace(NS_B)
            .table(TRANSFERS)
            .partitionKey(Key.ofBigInt("day", SEED_DAY))
            .clusteringKey(Key.of("transfer_id", "seed-" + s, "leg", 0))
            .bigIntValue("amount", 1000L)
            .textValue("memo", "opening deposit")
            .booleanValue("settled", true)
            .doubleValue("fee", 0.0)
            .blobValue("payload", bytes("seed"))
            .intValue("attempts", 1)
            .build());
  }

  private static Put auditPut(int s, long seq, String event, long amount) {
    return Put.newBuilder()
        .namespace(NS_A)
        .table(AUDIT)
        .partitionKey(Key.ofText("branch", "slot-" + s))
        .clusteringKey(Key.ofBigInt("seq", seq))
        .textValue("event", event)
        .bigIntValue("amount", amount)
        .booleanValue("ok", true)
        .doubleValue("weight", seq / 10.0)
        .blobValue("detail", bytes(event + "-" + s + "-" + seq))
        .intValue("flags", (int) seq)
        .build();
  }

  // ---- the two halves of a transfer ----

  /**
   * The bank_a half of transfer number {@code step} (1, 2, ...) out of slot s: debit the account,
   * append an audit row, and on the first transfer delete the slot's opening audit row. Writes 3
   * records on step 1 (update, insert, delete), 2 afterwards.
   */
  static int debitA(TransactionCrudOperable tx, int s, long amount, int step) throws CrudException {
    Get get =
        Get.newBuilder()
            .namespace(NS_A)
            .table(ACCOUNTS)
            .partitionKey(accountAKey(s))
            .clusteringKey(accountACk(s))
            .build();
    Optional<Result> acct = tx.get(get);
    long balance = acct.map(r -> r.getBigInt("balance")).orElse(0L);
    int ops = acct.map(r -> r.getInt("ops")).orElse(0);
    tx.put(
        Put.newBuilder()
            .namespace(NS_A)
            .table(ACCOUNTS)
            .partitionKey(accountAKey(s))
            .clusteringKey(accountACk(s))
            .bigIntValue("balance", balance - amount)
            .intValue("ops", ops + 1)
            .doubleValue("rate", 0.5 + step)
            .build());
    tx.put(auditPut(s, step + 1L, "debit", amount));
    int writes = 2;
    if (step == 1) {
      Key pk = Key.ofText("branch", "slot-" + s);
      Key ck = Key.ofBigInt("seq", 1L);
      tx.get(Get.newBuilder().namespace(NS_A).table(AUDIT).partitionKey(pk).clusteringKey(ck).build());
      tx.delete(Delete.newBuilder().namespace(NS_A).table(AUDIT).partitionKey(pk).clusteringKey(ck).build());
      writes++;
    }
    return writes;
  }

  /**
   * The bank_b half of transfer number {@code step} into slot s: credit the account, insert a
   * transfer leg, and on the first transfer delete the slot's seed transfer row. Same write counts
   * as {@link #debitA}.
   */
  static int creditB(TransactionCrudOperable tx, int s, long amount, int step) throws CrudException {
    return creditB(tx, s, amount, step, DAY);
  }

  /** {@link #creditB} with the transfer leg in partition {@code day}. */
  static int creditB(TransactionCrudOperable tx, int s, long amount, int step, long day)
      throws CrudException {
    Get get =
        Get.newBuilder()
            .namespace(NS_B)
            .table(ACCOUNTS)
            .partitionKey(accountBKey(s))
            .clusteringKey(accountBCk(s))
            .build();
    Optional<Result> acct = tx.get(get);
    long balance = acct.map(r -> r.getBigInt("balance")).orElse(0L);
    int ops = acct.map(r -> r.getInt("ops")).orElse(0);
    tx.put(
        Put.newBuilder()
            .namespace(NS_B)
            .table(ACCOUNTS)
            .partitionKey(accountBKey(s))
            .clusteringKey(accountBCk(s))
            .bigIntValue("balance", balance + amount)
            .intValue("ops", ops + 1)
            .booleanValue("active", true)
            .build());
    tx.put(
        Put.newBuilder()
            .namespace(NS_B)
            .table(TRANSFERS)
            .partitionKey(Key.ofBigInt("day", day))
            .clusteringKey(Key.of("transfer_id", "t-" + s + "-" + step, "leg", step))
            .bigIntValue("amount", amount)
            .textValue("memo", step % 2 == 0 ? null : "transfer " + step)
            .booleanValue("settled", false)
            .doubleValue("fee", amount * 0.01)
            .blobValue("payload", bytes("leg-" + step))
            .intValue("attempts", 1)
            .build());
    int writes = 2;
    if (step == 1) {
      Key pk = Key.ofBigInt("day", SEED_DAY);
      Key ck = Key.of("transfer_id", "seed-" + s, "leg", 0);
      tx.get(Get.newBuilder().namespace(NS_B).table(TRANSFERS).partitionKey(pk).clusteringKey(ck).build());
      tx.delete(Delete.newBuilder().namespace(NS_B).table(TRANSFERS).partitionKey(pk).clusteringKey(ck).build());
      writes++;
    }
    return writes;
  }

  /**
   * Deletes a key that does not exist (audit row 999 of slot s on bank_a, transfer "ghost-s" on
   * bank_b): ScalarDB still writes a DELETED tombstone with no before image for it.
   */
  static int ghostDelete(TransactionCrudOperable tx, String ns, int s) throws CrudException {
    Key pk;
    Key ck;
    String table;
    if (ns.equals(NS_A)) {
      table = AUDIT;
      pk = Key.ofText("branch", "slot-" + s);
      ck = Key.ofBigInt("seq", 999L);
    } else {
      table = TRANSFERS;
      pk = Key.ofBigInt("day", SEED_DAY);
      ck = Key.of("transfer_id", "ghost-" + s, "leg", 0);
    }
    tx.get(Get.newBuilder().namespace(ns).table(table).partitionKey(pk).clusteringKey(ck).build());
    tx.delete(Delete.newBuilder().namespace(ns).table(table).partitionKey(pk).clusteringKey(ck).build());
    return 1;
  }

  /**
   * Works on the imported table: updates legacy account 1, deletes legacy account 2 (both rows
   * still have NULL metadata) and inserts account 10+s. Writes 3 records.
   */
  static int legacyWork(TransactionCrudOperable tx, int s) throws CrudException {
    Key one = Key.ofBigInt("acct_id", 1L);
    Key two = Key.ofBigInt("acct_id", 2L);
    Optional<Result> r = tx.get(Get.newBuilder().namespace(NS_B).table(LEGACY).partitionKey(one).build());
    long balance = r.map(x -> x.getBigInt("balance")).orElse(0L);
    tx.put(Put.newBuilder().namespace(NS_B).table(LEGACY).partitionKey(one).bigIntValue("balance", balance - 50).build());
    tx.get(Get.newBuilder().namespace(NS_B).table(LEGACY).partitionKey(two).build());
    tx.delete(Delete.newBuilder().namespace(NS_B).table(LEGACY).partitionKey(two).build());
    tx.put(
        Put.newBuilder()
            .namespace(NS_B)
            .table(LEGACY)
            .partitionKey(Key.ofBigInt("acct_id", 10L + s))
            .textValue("holder", "new-" + s)
            .bigIntValue("balance", 50L)
            .build());
    return 3;
  }
}
