package com.scalar.verify.oracle;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.scalar.db.api.Delete;
import com.scalar.db.api.DistributedTransaction;
import com.scalar.db.api.DistributedTransactionAdmin;
import com.scalar.db.api.DistributedTransactionManager;
import com.scalar.db.api.Get;
import com.scalar.db.api.Put;
import com.scalar.db.api.TableMetadata;
import com.scalar.db.config.DatabaseConfig;
import com.scalar.db.exception.transaction.CommitConflictException;
import com.scalar.db.io.DataType;
import com.scalar.db.io.Key;
import com.scalar.db.service.TransactionFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.ZoneOffset;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Ground truth for decoding the Coordinator's {@code tx_write_set} (ScalarDB 3.19+): commits a few
 * transactions of known shape on SQLite with write-set logging on, then writes every Coordinator
 * row (tx_id, state, the BLOB in hex) beside the records each transaction wrote, which this
 * program knows because it wrote them. Transactions that leave no row (one-phase commit,
 * read-only with write omission) are listed as {@code absent}. A group-commit parent row also
 * carries {@code expected_groups}, one per child.
 *
 * <p>Usage: {@code WriteSets OUT.json WORK_DIR SCALARDB_VERSION}. Values are rendered as scalardb-verify renders
 * key values: integers in decimal, text as is, booleans true/false.
 */
public final class WriteSets {
  private static final String NS = "ws";
  private static final ObjectMapper JSON = new ObjectMapper();

  private WriteSets() {}

  /** One record's identity as expected in a write set. */
  private record Rec(String table, List<String[]> partition, List<String[]> clustering) {
    ObjectNode json() {
      ObjectNode o = JSON.createObjectNode();
      o.put("namespace", NS);
      o.put("table", table);
      o.set("partition_key", columns(partition));
      o.set("clustering_key", columns(clustering));
      return o;
    }

    private static ArrayNode columns(List<String[]> cols) {
      ArrayNode a = JSON.createArrayNode();
      for (String[] c : cols) {
        a.addArray().add(c[0]).add(c[1]);
      }
      return a;
    }
  }

  private static Rec account(int id, String branch) {
    return new Rec(
        "accounts",
        List.<String[]>of(new String[] {"id", Integer.toString(id)}),
        List.<String[]>of(new String[] {"branch", branch}));
  }

  private static Rec ledger(String name) {
    return new Rec("ledger", List.<String[]>of(new String[] {"name", name}), List.of());
  }

  private static Rec event(long day, boolean flag, long seq) {
    return new Rec(
        "events",
        List.<String[]>of(new String[] {"day", Long.toString(day)}),
        List.<String[]>of(new String[] {"flag", Boolean.toString(flag)}, new String[] {"seq", Long.toString(seq)}));
  }

  private static Put putAccount(int id, String branch, long balance) {
    return Put.newBuilder()
        .namespace(NS)
        .table("accounts")
        .partitionKey(Key.ofInt("id", id))
        .clusteringKey(Key.ofText("branch", branch))
        .bigIntValue("balance", balance)
        .build();
  }

  private static Get getAccount(int id, String branch) {
    return Get.newBuilder()
        .namespace(NS)
        .table("accounts")
        .partitionKey(Key.ofInt("id", id))
        .clusteringKey(Key.ofText("branch", branch))
        .build();
  }

  private static Put putLedger(String name, long amount) {
    return Put.newBuilder()
        .namespace(NS)
        .table("ledger")
        .partitionKey(Key.ofText("name", name))
        .bigIntValue("amount", amount)
        .build();
  }

  private static Put putEvent(long day, boolean flag, long seq, int v) {
    return Put.newBuilder()
        .namespace(NS)
        .table("events")
        .partitionKey(Key.ofBigInt("day", day))
        .clusteringKey(Key.newBuilder().addBoolean("flag", flag).addBigInt("seq", seq).build())
        .intValue("v", v)
        .build();
  }

  private static Properties props(Path db) {
    Properties p = new Properties();
    p.setProperty(DatabaseConfig.CONTACT_POINTS, "jdbc:sqlite:" + db.toAbsolutePath() + "?busy_timeout=10000");
    p.setProperty(DatabaseConfig.USERNAME, "");
    p.setProperty(DatabaseConfig.PASSWORD, "");
    p.setProperty(DatabaseConfig.STORAGE, "jdbc");
    p.setProperty(DatabaseConfig.TRANSACTION_MANAGER, "consensus-commit");
    p.setProperty("scalar.db.consensus_commit.coordinator.write_set_logging.enabled", "true");
    return p;
  }

  public static void main(String[] args) throws Exception {
    Path out = Path.of(args[0]);
    Path work = Path.of(args[1]);
    Path db = work.resolve("write-sets.sqlite");
    Files.deleteIfExists(db);

    Properties groupProps = props(db);
    groupProps.setProperty("scalar.db.consensus_commit.coordinator.group_commit.enabled", "true");
    // Created with group commit on, so the Coordinator table has tx_child_ids for every manager.
    DistributedTransactionAdmin admin = TransactionFactory.create(groupProps).getTransactionAdmin();
    admin.createCoordinatorTables(true);
    admin.createNamespace(NS, true);
    admin.createTable(
        NS,
        "accounts",
        TableMetadata.newBuilder()
            .addColumn("id", DataType.INT)
            .addColumn("branch", DataType.TEXT)
            .addColumn("balance", DataType.BIGINT)
            .addPartitionKey("id")
            .addClusteringKey("branch")
            .build(),
        true);
    admin.createTable(
        NS,
        "ledger",
        TableMetadata.newBuilder()
            .addColumn("name", DataType.TEXT)
            .addColumn("amount", DataType.BIGINT)
            .addPartitionKey("name")
            .build(),
        true);
    admin.createTable(
        NS,
        "events",
        TableMetadata.newBuilder()
            .addColumn("day", DataType.BIGINT)
            .addColumn("flag", DataType.BOOLEAN)
            .addColumn("seq", DataType.BIGINT)
            .addColumn("v", DataType.INT)
            .addPartitionKey("day")
            .addClusteringKey("flag")
            .addClusteringKey("seq")
            .build(),
        true);
    admin.createTable(
        NS,
        "times",
        TableMetadata.newBuilder()
            .addColumn("b", DataType.BLOB)
            .addColumn("d", DataType.DATE)
            .addColumn("at", DataType.TIMESTAMPTZ)
            .addColumn("t", DataType.TIME)
            .addColumn("ts", DataType.TIMESTAMP)
            .addColumn("v", DataType.INT)
            .addPartitionKey("b")
            .addClusteringKey("d")
            .addClusteringKey("at")
            .addClusteringKey("t")
            .addClusteringKey("ts")
            .build(),
        true);
    admin.close();

    DistributedTransactionManager tm = TransactionFactory.create(props(db)).getTransactionManager();
    Properties readOnlyProps = props(db);
    readOnlyProps.setProperty(
        "scalar.db.consensus_commit.coordinator.write_omission_on_read_only.enabled", "false");
    DistributedTransactionManager readOnlyTm = TransactionFactory.create(readOnlyProps).getTransactionManager();
    Properties onePhaseProps = props(db);
    onePhaseProps.setProperty("scalar.db.consensus_commit.one_phase_commit.enabled", "true");
    DistributedTransactionManager onePhaseTm = TransactionFactory.create(onePhaseProps).getTransactionManager();

    DistributedTransactionManager groupTm = TransactionFactory.create(groupProps).getTransactionManager();
    Map<String, String> labels = new HashMap<>();
    Map<String, Map<String, List<Rec>>> expectedGroups = new HashMap<>();
    Map<String, List<Rec>> expected = new HashMap<>();
    ArrayNode absent = JSON.createArrayNode();

    // seed: inserts across three tables, int/text/bigint/boolean keys, a composite clustering key.
    DistributedTransaction t = tm.begin();
    t.put(putAccount(1, "tokyo", 100));
    t.put(putAccount(2, "osaka", 100));
    t.put(putLedger("alice", 0));
    t.put(putEvent(-3, true, 1L << 40, 7));
    t.commit();
    labels.put(t.getId(), "seed");
    expected.put(t.getId(), List.of(account(1, "tokyo"), account(2, "osaka"), ledger("alice"), event(-3, true, 1L << 40)));

    // transfer: two updates after reads, one insert, across two tables.
    t = tm.begin();
    t.get(getAccount(1, "tokyo"));
    t.get(getAccount(2, "osaka"));
    t.put(putAccount(1, "tokyo", 90));
    t.put(putAccount(2, "osaka", 110));
    t.put(putLedger("bob", 10));
    t.commit();
    labels.put(t.getId(), "transfer");
    expected.put(t.getId(), List.of(account(1, "tokyo"), account(2, "osaka"), ledger("bob")));

    // delete: a delete beside an update.
    t = tm.begin();
    t.get(Get.newBuilder().namespace(NS).table("ledger").partitionKey(Key.ofText("name", "alice")).build());
    t.delete(Delete.newBuilder().namespace(NS).table("ledger").partitionKey(Key.ofText("name", "alice")).build());
    t.get(
        Get.newBuilder()
            .namespace(NS)
            .table("events")
            .partitionKey(Key.ofBigInt("day", -3))
            .clusteringKey(Key.newBuilder().addBoolean("flag", true).addBigInt("seq", 1L << 40).build())
            .build());
    t.put(putEvent(-3, true, 1L << 40, 8));
    t.commit();
    labels.put(t.getId(), "delete");
    expected.put(t.getId(), List.of(ledger("alice"), event(-3, true, 1L << 40)));

    // read-only, write omission off: a COMMITTED row with an empty write set.
    t = readOnlyTm.begin();
    t.get(getAccount(1, "tokyo"));
    t.commit();
    labels.put(t.getId(), "read-only");
    expected.put(t.getId(), List.of());

    // read-only, write omission on (the default): no row.
    t = tm.begin();
    t.get(getAccount(2, "osaka"));
    t.commit();
    absent.addObject().put("label", "read-only-omitted").put("tx_id", t.getId());

    // one-phase commit: records written COMMITTED directly, no row.
    t = onePhaseTm.begin();
    t.get(getAccount(1, "tokyo"));
    t.put(putAccount(1, "tokyo", 95));
    t.commit();
    absent.addObject().put("label", "one-phase").put("tx_id", t.getId());

    // group commit: two transactions begun together share a group; both commit at once, so
    // ScalarDB writes one parent row listing both children, one entry group per child.
    DistributedTransaction g1 = groupTm.begin();
    DistributedTransaction g2 = groupTm.begin();
    g1.get(getAccount(1, "tokyo"));
    g1.put(putAccount(1, "tokyo", 50));
    g2.put(putLedger("dave", 5));
    ExecutorService pool = Executors.newFixedThreadPool(2);
    Future<?> c1 = pool.submit(() -> { g1.commit(); return null; });
    Future<?> c2 = pool.submit(() -> { g2.commit(); return null; });
    c1.get();
    c2.get();
    pool.shutdown();
    String parent = g1.getId().substring(0, 24);
    if (!g2.getId().startsWith(parent + "$") || g1.getId().charAt(24) != '$') {
      throw new IllegalStateException("not one group: " + g1.getId() + " " + g2.getId());
    }
    labels.put(parent, "group-commit");
    expected.put(parent, List.of(account(1, "tokyo"), ledger("dave")));
    Map<String, List<Rec>> children = new LinkedHashMap<>();
    children.put(g1.getId().substring(25), List.of(account(1, "tokyo")));
    children.put(g2.getId().substring(25), List.of(ledger("dave")));
    expectedGroups.put(parent, children);

    // blob, date, time and timestamp keys; expected values from java.time's own rendering
    // (ISO-8601), a second before the epoch so TIMESTAMPTZ's millisecond complement shows.
    byte[] blobKey = {0, (byte) 0xab, 0x10};
    LocalDate day = LocalDate.of(1969, 12, 31);
    Instant at = Instant.ofEpochSecond(-12345, 789_000_000);
    LocalTime time = LocalTime.of(1, 2, 3, 456_000_000);
    LocalDateTime stamp = LocalDateTime.of(2026, 12, 2, 6, 43, 29, 123_000_000);
    t = tm.begin();
    t.put(
        Put.newBuilder()
            .namespace(NS)
            .table("times")
            .partitionKey(Key.ofBlob("b", blobKey))
            .clusteringKey(
                Key.newBuilder()
                    .addDate("d", day)
                    .addTimestampTZ("at", at)
                    .addTime("t", time)
                    .addTimestamp("ts", stamp)
                    .build())
            .intValue("v", 1)
            .build());
    t.commit();
    labels.put(t.getId(), "time-keys");
    expected.put(
        t.getId(),
        List.of(
            new Rec(
                "times",
                List.<String[]>of(new String[] {"b", "00ab10"}),
                List.of(
                    new String[] {"d", day.toString()},
                    new String[] {"at", at.toString()},
                    new String[] {"t", time.toString()},
                    new String[] {"ts", stamp.toInstant(ZoneOffset.UTC).toString()}))));

    // aborted commit: a conflicting writer commits first, so this prepare fails and ScalarDB
    // writes ABORTED with the write set it tried.
    DistributedTransaction loser = tm.begin();
    loser.get(getAccount(2, "osaka"));
    loser.put(putAccount(2, "osaka", 1));
    loser.put(putLedger("carol", 1));
    t = tm.begin();
    t.get(getAccount(2, "osaka"));
    t.put(putAccount(2, "osaka", 120));
    t.commit();
    labels.put(t.getId(), "conflict-winner");
    expected.put(t.getId(), List.of(account(2, "osaka")));
    try {
      loser.commit();
      throw new IllegalStateException("the conflicting commit succeeded");
    } catch (CommitConflictException e) {
      labels.put(loser.getId(), "aborted-commit");
      expected.put(loser.getId(), List.of(account(2, "osaka"), ledger("carol")));
    }

    tm.close();
    readOnlyTm.close();
    onePhaseTm.close();
    groupTm.close();

    ArrayNode rows = JSON.createArrayNode();
    List<String> seen = new ArrayList<>();
    try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db.toAbsolutePath());
        Statement s = c.createStatement();
        ResultSet r =
            s.executeQuery(
                "SELECT tx_id, tx_state, lower(hex(tx_write_set)), tx_child_ids FROM \"coordinator$state\" ORDER BY tx_created_at, tx_id")) {
      while (r.next()) {
        String id = r.getString(1);
        if (!labels.containsKey(id)) {
          throw new IllegalStateException("unexpected Coordinator row " + id);
        }
        seen.add(id);
        ObjectNode row = rows.addObject();
        row.put("label", labels.get(id));
        row.put("tx_id", id);
        row.put("tx_state", r.getInt(2));
        row.put("write_set_hex", r.getString(3));
        ArrayNode recs = row.putArray("expected_records");
        for (Rec rec : expected.get(id)) {
          recs.add(rec.json());
        }
        if (r.getString(4) != null) {
          row.put("tx_child_ids", r.getString(4));
        }
        if (expectedGroups.containsKey(id)) {
          ArrayNode groups = row.putArray("expected_groups");
          for (Map.Entry<String, List<Rec>> g : expectedGroups.get(id).entrySet()) {
            ObjectNode group = groups.addObject();
            group.put("child_id", g.getKey());
            ArrayNode grecs = group.putArray("records");
            for (Rec rec : g.getValue()) {
              grecs.add(rec.json());
            }
          }
        }
      }
    }
    if (seen.size() != labels.size()) {
      throw new IllegalStateException("missing Coordinator rows: saw " + seen + " of " + labels.keySet());
    }
    Map<String, Object> doc = new LinkedHashMap<>();
    doc.put("scalardb_version", args[2]);
    doc.put("generator", "scripts/gen-write-set-fixtures (tests/oracle WriteSets.java)");
    doc.put("rows", rows);
    doc.put("absent", absent);
    JSON.enable(SerializationFeature.INDENT_OUTPUT).writeValue(out.toFile(), doc);
  }
}
