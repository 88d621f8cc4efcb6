package com.scalar.verify.oracle;

import com.scalar.db.api.Put;
import com.scalar.db.api.Result;
import com.scalar.db.api.TableMetadata;
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
  static void createSchema(SchemaAdmin admin, Map<String, String> options) throws Exception {
    admin.createCoordinatorTables(options);
    admin.createNamespace(NS_A, options);
    admin.createNamespace(NS_B, options);
    for (String[] t : TABLES) {
      admin.createTable(t[0], t[1], metadata(t[0], t[1]), options);
    }
  }

  // ---- keys of a slot ----

  /** Every fifth slot has awkward keys: negative integers, non-ASCII text, quotes, '$', a space. */
  static boolean oddKeys(int s) {
    return s % 5 == 4;
  }

  static Key accountAKey(int s) {
    return Key.newBuilder().addInt("account_id", oddKeys(s) ? -(100 + s) : 100 + s).build();
  }

  static Key accountACk(int s) {
    return text("branch", oddKeys(s) ? "Zürich \"HQ\" $" + (s % 3) : "br" + (s % 3));
  }

  static Key accountBKey(int s) {
    return text("customer", oddKeys(s) ? "Zoë's acct-" + s : "cust-" + s);
  }

  static Key accountBCk(int s) {
    return bigInt("account_no", oddKeys(s) ? -(5000L + s) : 5000L + s);
  }

  private static Key text(String name, String v) {
    return Key.newBuilder().addText(name, v).build();
  }

  private static Key bigInt(String name, long v) {
    return Key.newBuilder().addBigInt(name, v).build();
  }

  /** A bank_b.transfers clustering key. */
  private static Key transferCk(String transferId, int leg) {
    return Key.newBuilder().addText("transfer_id", transferId).addInt("leg", leg).build();
  }

  static final long SEED_DAY = 20240101L;
  static final long DAY = 20250101L;

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  // ---- seeding (one committed transaction per call) ----

  static void seedSlot(Crud tx, int s) throws CrudException {
    // Some owners are NULL so that before images carry NULLs too.
    tx.put(
        Records.put(
            NS_A,
            ACCOUNTS,
            accountAKey(s),
            accountACk(s),
            new Cells()
                .bigInt("balance", 1000L)
                .bool("active", true)
                .dbl("rate", 0.25 + s)
                .blob("photo", bytes("photo-a-" + s))
                .integer("ops", 0)
                .text("owner", s % 4 == 3 ? null : "alice-" + s)));
    tx.put(
        Records.put(
            NS_B,
            ACCOUNTS,
            accountBKey(s),
            accountBCk(s),
            new Cells()
                .bigInt("balance", 1000L)
                .text("owner", "bob-" + s)
                .bool("active", s % 2 == 0)
                .dbl("rate", 1.5)
                .blob("photo", bytes("photo-b-" + s))
                .integer("ops", 0)));
    tx.put(auditPut(s, 1, "open", 1000L));
    tx.put(
        Records.put(
            NS_B,
            TRANSFERS,
            bigInt("day", SEED_DAY),
            transferCk("seed-" + s, 0),
            new Cells()
                .bigInt("amount", 1000L)
                .text("memo", "opening deposit")
                .bool("settled", true)
                .dbl("fee", 0.0)
                .blob("payload", bytes("seed"))
                .integer("attempts", 1)));
  }

  private static Put auditPut(int s, long seq, String event, long amount) {
    return Records.put(
        NS_A,
        AUDIT,
        text("branch", "slot-" + s),
        bigInt("seq", seq),
        new Cells()
            .text("event", event)
            .bigInt("amount", amount)
            .bool("ok", true)
            .dbl("weight", seq / 10.0)
            .blob("detail", bytes(event + "-" + s + "-" + seq))
            .integer("flags", (int) seq));
  }

  // ---- the two halves of a transfer ----

  /**
   * The bank_a half of transfer number {@code step} (1, 2, ...) out of slot s: debit the account,
   * append an audit row, and on the first transfer delete the slot's opening audit row. Writes 3
   * records on step 1 (update, insert, delete), 2 afterwards.
   */
  static int debitA(Crud tx, int s, long amount, int step) throws CrudException {
    Optional<Result> acct = tx.get(Records.get(NS_A, ACCOUNTS, accountAKey(s), accountACk(s)));
    long balance = acct.map(r -> Records.bigInt(r, "balance")).orElse(0L);
    int ops = acct.map(r -> Records.integer(r, "ops")).orElse(0);
    tx.put(
        Records.put(
            NS_A,
            ACCOUNTS,
            accountAKey(s),
            accountACk(s),
            new Cells()
                .bigInt("balance", balance - amount)
                .integer("ops", ops + 1)
                .dbl("rate", 0.5 + step)));
    tx.put(auditPut(s, step + 1L, "debit", amount));
    int writes = 2;
    if (step == 1) {
      Key pk = text("branch", "slot-" + s);
      Key ck = bigInt("seq", 1L);
      tx.get(Records.get(NS_A, AUDIT, pk, ck));
      tx.delete(Records.delete(NS_A, AUDIT, pk, ck));
      writes++;
    }
    return writes;
  }

  /**
   * The bank_b half of transfer number {@code step} into slot s: credit the account, insert a
   * transfer leg, and on the first transfer delete the slot's seed transfer row. Same write counts
   * as {@link #debitA}.
   */
  static int creditB(Crud tx, int s, long amount, int step) throws CrudException {
    return creditB(tx, s, amount, step, DAY);
  }

  /** {@link #creditB} with the transfer leg in partition {@code day}. */
  static int creditB(Crud tx, int s, long amount, int step, long day) throws CrudException {
    Optional<Result> acct = tx.get(Records.get(NS_B, ACCOUNTS, accountBKey(s), accountBCk(s)));
    long balance = acct.map(r -> Records.bigInt(r, "balance")).orElse(0L);
    int ops = acct.map(r -> Records.integer(r, "ops")).orElse(0);
    tx.put(
        Records.put(
            NS_B,
            ACCOUNTS,
            accountBKey(s),
            accountBCk(s),
            new Cells()
                .bigInt("balance", balance + amount)
                .integer("ops", ops + 1)
                .bool("active", true)));
    tx.put(
        Records.put(
            NS_B,
            TRANSFERS,
            bigInt("day", day),
            transferCk("t-" + s + "-" + step, step),
            new Cells()
                .bigInt("amount", amount)
                .text("memo", step % 2 == 0 ? null : "transfer " + step)
                .bool("settled", false)
                .dbl("fee", amount * 0.01)
                .blob("payload", bytes("leg-" + step))
                .integer("attempts", 1)));
    int writes = 2;
    if (step == 1) {
      Key pk = bigInt("day", SEED_DAY);
      Key ck = transferCk("seed-" + s, 0);
      tx.get(Records.get(NS_B, TRANSFERS, pk, ck));
      tx.delete(Records.delete(NS_B, TRANSFERS, pk, ck));
      writes++;
    }
    return writes;
  }

  /**
   * Deletes a key that does not exist (audit row 999 of slot s on bank_a, transfer "ghost-s" on
   * bank_b): ScalarDB still writes a DELETED tombstone with no before image for it.
   */
  static int ghostDelete(Crud tx, String ns, int s) throws CrudException {
    Key pk;
    Key ck;
    String table;
    if (ns.equals(NS_A)) {
      table = AUDIT;
      pk = text("branch", "slot-" + s);
      ck = bigInt("seq", 999L);
    } else {
      table = TRANSFERS;
      pk = bigInt("day", SEED_DAY);
      ck = transferCk("ghost-" + s, 0);
    }
    tx.get(Records.get(ns, table, pk, ck));
    tx.delete(Records.delete(ns, table, pk, ck));
    return 1;
  }

  /**
   * Works on the imported table: updates legacy account 1, deletes legacy account 2 (both rows
   * still have NULL metadata) and inserts account 10+s. Writes 3 records.
   */
  static int legacyWork(Crud tx, int s) throws CrudException {
    Key one = bigInt("acct_id", 1L);
    Key two = bigInt("acct_id", 2L);
    Optional<Result> r = tx.get(Records.get(NS_B, LEGACY, one, null));
    long balance = r.map(x -> Records.bigInt(x, "balance")).orElse(0L);
    tx.put(Records.put(NS_B, LEGACY, one, null, new Cells().bigInt("balance", balance - 50)));
    tx.get(Records.get(NS_B, LEGACY, two, null));
    tx.delete(Records.delete(NS_B, LEGACY, two, null));
    tx.put(
        Records.put(
            NS_B,
            LEGACY,
            bigInt("acct_id", 10L + s),
            null,
            new Cells().text("holder", "new-" + s).bigInt("balance", 50L)));
    return 3;
  }
}
