package com.scalar.verify.oracle;

import com.datastax.driver.core.Cluster;
import com.datastax.driver.core.ConsistencyLevel;
import com.datastax.driver.core.Row;
import com.datastax.driver.core.Session;
import com.datastax.driver.core.SimpleStatement;
import com.scalar.db.config.DatabaseConfig;
import java.io.IOException;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

/**
 * Cassandra: one node the caller started, shared by every case, so a case owns the node's
 * keyspaces while it runs: {@link #freshDatabase}, {@link #restore} and {@link #release} drop the
 * keyspaces a case can create (Main runs cases one after the other). A ScalarDB namespace is a
 * keyspace (SimpleStrategy, replication factor 1).
 *
 * <p>A backup is a CQL file: CREATE KEYSPACE and CREATE TABLE statements equivalent to the live
 * schema (read from system_schema, not from the driver's cached metadata, which lags behind other
 * sessions' schema changes), then one INSERT ... USING TIMESTAMP per row and cell write time, so
 * loading it reproduces every cell's write time; NULL cells are omitted. Rows are read with the
 * DataStax driver ScalarDB itself uses. Every statement is on one line ending with ';', the form
 * CassandraWriter::execute_script of the Rust tests splits on.
 */
final class CassandraBackend implements Backend {
  private final String host;
  private final int port;
  /**
   * The node's JMX and data directory when the oracle started the node itself: then a
   * per-namespace cut ({@link #dumpSchemas}) is a real per-keyspace snapshot. Null for a node
   * given with --cassandra (no per-namespace case then, {@link #perNamespaceCuts}).
   */
  private final Jmx jmx;
  /** The snapshot tag of the current case's per-keyspace snapshots (one tag, as a user's). */
  private String caseTag;
  private Cluster cluster;
  private Session session;

  CassandraBackend(String host, int port) {
    this(host, port, null);
  }

  CassandraBackend(String host, int port, Jmx jmx) {
    this.host = host;
    this.port = port;
    this.jmx = jmx;
  }

  /** The same node with its JMX and data directory (snapshots: per-namespace cuts). */
  CassandraBackend withJmx(Jmx jmx) {
    return new CassandraBackend(host, port, jmx);
  }

  /** Whether this backend can cut per keyspace (a node the oracle started: JMX, data directory). */
  boolean perNamespaceCuts() {
    return jmx != null;
  }

  /** Parses "host:port". */
  static CassandraBackend parse(String hostPort) {
    int colon = hostPort.lastIndexOf(':');
    if (colon < 0) {
      throw new IllegalArgumentException("--cassandra wants HOST:PORT, got " + hostPort);
    }
    return new CassandraBackend(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
  }

  @Override
  public String name() {
    return "cassandra";
  }

  @Override
  public String backupFileName() {
    return "backup.cql";
  }

  @Override
  public String storage() {
    return "cassandra";
  }

  @Override
  public Map<String, String> namespaceOptions() {
    // ScalarDB's default differs by version (1 in 3.15/3.19, 3 on master); a single node needs 1
    // or every LWT fails for want of a Paxos quorum.
    return Map.of("replication-factor", "1");
  }

  private synchronized Session session() {
    if (session == null) {
      cluster =
          Cluster.builder().addContactPoint(host).withPort(port).withoutJMXReporting().build();
      session = cluster.connect();
    }
    return session;
  }

  private List<Row> query(String cql) {
    SimpleStatement s = new SimpleStatement(cql);
    s.setConsistencyLevel(ConsistencyLevel.ALL);
    s.setFetchSize(1000);
    return session().execute(s).all();
  }

  private void execute(String cql) {
    SimpleStatement s = new SimpleStatement(cql);
    s.setConsistencyLevel(ConsistencyLevel.ALL);
    session().execute(s);
  }

  /** Every keyspace a case can create. */
  private static List<String> caseKeyspaces() {
    return List.of(Scenarios.DEFAULT_NS, Scenarios.CUSTOM_NS, "scalardb", Bank.NS_A, Bank.NS_B);
  }

  private void dropCaseKeyspaces() {
    for (String ks : caseKeyspaces()) {
      execute("DROP KEYSPACE IF EXISTS " + quote(ks));
    }
  }

  private Properties props() {
    Properties p = new Properties();
    p.setProperty(DatabaseConfig.CONTACT_POINTS, host);
    p.setProperty(DatabaseConfig.CONTACT_PORT, Integer.toString(port));
    return p;
  }

  @Override
  public Properties freshDatabase(String caseId, Path work) {
    dropCaseKeyspaces();
    // A new tag per attempt: the keyspaces are new, and a tag is taken once per keyspace.
    caseTag = "oracle_" + caseId + "_" + System.currentTimeMillis();
    return props();
  }

  @Override
  public Path dump(Properties live, Part part, Namespaces ns, Path dir, String label)
      throws Exception {
    Set<String> keyspaces = new LinkedHashSet<>();
    if (part != Part.DATA) {
      keyspaces.add(ns.coordinator());
    }
    if (part != Part.COORDINATOR) {
      keyspaces.add(ns.metadata());
      keyspaces.addAll(ns.data());
    }
    Path out = dir.resolve(label + ".cql");
    dumpKeyspaces(keyspaces, out);
    return out;
  }

  /** The CQL dump of the keyspaces that exist, in the given order, into {@code out}. */
  private void dumpKeyspaces(Iterable<String> keyspaces, Path out) throws IOException {
    Set<String> existing = new LinkedHashSet<>();
    for (Row r : query("SELECT keyspace_name FROM system_schema.keyspaces")) {
      existing.add(r.getString(0));
    }
    try (Writer w = Files.newBufferedWriter(out, StandardCharsets.UTF_8)) {
      for (String ks : keyspaces) {
        if (existing.contains(ks)) {
          dumpKeyspace(ks, w);
        }
      }
    }
  }

  /** The case directory's snapshot backup of a per-namespace cut (the tool drills it). */
  static final String SNAPSHOTS = "backup.cassandra";

  /**
   * One part of a per-namespace cut: {@code nodetool snapshot -t TAG KEYSPACE...} of the given
   * keyspaces over JMX ({@link #snapshot}, the case's one tag, as a user snapshotting keyspace
   * by keyspace under one name), then, with nothing running in between, the oracle's CQL reload
   * of the same keyspaces (phase 2 loads it for ScalarDB's recovery; it is never drilled).
   * Returns a directory holding {@code snapshot/} and {@code reload.cql}.
   */
  @Override
  public Path dumpSchemas(Properties live, List<String> schemas, Namespaces ns, Path dir, String label)
      throws Exception {
    if (jmx == null) {
      throw new UnsupportedOperationException(
          "cassandra: a per-keyspace cut needs a node the oracle started (its JMX and data directory)");
    }
    Path out = dir.resolve(label);
    snapshot(jmx, caseTag, schemas, out.resolve("snapshot"));
    dumpKeyspaces(schemas, out.resolve("reload.cql"));
    return out;
  }

  /**
   * The snapshots of every part into {@value #SNAPSHOTS} beside {@code backupFile} (one node's
   * data directory, every keyspace under the case's tag), and the parts' reloads joined into
   * {@code backupFile} ({@code backup.cql}, the oracle's own restore).
   */
  @Override
  public void assembleSchemas(Map<Path, List<String>> parts, Namespaces ns, Path backupFile) throws Exception {
    Path snapshots = backupFile.getParent().resolve(SNAPSHOTS);
    if (Files.exists(snapshots)) {
      throw new IllegalStateException(snapshots + " exists already");
    }
    Files.createDirectories(snapshots);
    StringBuilder text = new StringBuilder(
        "-- ScalarDB oracle backup (Cassandra, per-keyspace snapshots' reload), written by tests/oracle.\n");
    for (Path part : parts.keySet()) {
      copyTree(part.resolve("snapshot"), snapshots);
      text.append(Files.readString(part.resolve("reload.cql"), StandardCharsets.UTF_8));
    }
    Files.writeString(backupFile, text.toString(), StandardCharsets.UTF_8);
  }

  /**
   * truth.json's deployment for a per-keyspace snapshot case: one storage, {@code cass}, holding
   * every keyspace, backed up by {@value #SNAPSHOTS} (the differential drills it as a backup
   * set, tests/differential/multi_storage.rs). Empty for other cases (their backup is the CQL).
   */
  Map<String, Object> truthFields(CaseContext ctx) {
    if (ctx.schemaParts.isEmpty()) {
      return Map.of();
    }
    Map<String, Object> s = new java.util.LinkedHashMap<>();
    s.put("name", "cass");
    s.put("engine", "cassandra");
    List<String> namespaces = new ArrayList<>();
    namespaces.add(ctx.namespaces.coordinator());
    namespaces.addAll(ctx.namespaces.data());
    s.put("namespaces", namespaces);
    s.put("coordinator", true);
    s.put("backup", SNAPSHOTS);
    Map<String, Object> out = new java.util.LinkedHashMap<>();
    out.put("storages", List.of(s));
    out.put("default_storage", "cass");
    return out;
  }

  /** A column as system_schema.columns describes it. */
  private record Col(String name, String kind, int position, String type, String order) {}

  private void dumpKeyspace(String ks, Writer w) throws IOException {
    w.write("CREATE KEYSPACE " + quote(ks)
        + " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\n");
    Map<String, List<Col>> tables = new TreeMap<>();
    for (Row r : query(
        "SELECT table_name, column_name, kind, position, type, clustering_order"
            + " FROM system_schema.columns WHERE keyspace_name = '" + ks.replace("'", "''") + "'")) {
      tables.computeIfAbsent(r.getString(0), t -> new ArrayList<>())
          .add(new Col(r.getString(1), r.getString(2), r.getInt(3), r.getString(4), r.getString(5)));
    }
    for (Map.Entry<String, List<Col>> t : tables.entrySet()) {
      dumpTable(ks, t.getKey(), t.getValue(), w);
    }
  }

  private void dumpTable(String ks, String table, List<Col> cols, Writer w) throws IOException {
    List<Col> pk = byKind(cols, "partition_key");
    List<Col> ck = byKind(cols, "clustering");
    List<Col> regular = byKind(cols, "regular");
    if (!byKind(cols, "static").isEmpty()) {
      throw new IllegalStateException(ks + "." + table + ": static columns are not dumped");
    }
    List<Col> keys = new ArrayList<>(pk);
    keys.addAll(ck);
    String full = quote(ks) + "." + quote(table);
    StringBuilder ddl = new StringBuilder("CREATE TABLE " + full + " (");
    for (Col c : keys) {
      ddl.append(quote(c.name())).append(' ').append(c.type()).append(", ");
    }
    for (Col c : regular) {
      ddl.append(quote(c.name())).append(' ').append(c.type()).append(", ");
    }
    ddl.append("PRIMARY KEY ((").append(names(pk)).append(')');
    if (!ck.isEmpty()) {
      ddl.append(", ").append(names(ck));
    }
    ddl.append("))");
    if (!ck.isEmpty()) {
      List<String> orders = new ArrayList<>();
      for (Col c : ck) {
        orders.add(quote(c.name()) + " " + c.order().toUpperCase());
      }
      ddl.append(" WITH CLUSTERING ORDER BY (").append(String.join(", ", orders)).append(')');
    }
    w.write(ddl + ";\n");
    for (Row r : query(
        "SELECT index_name, options FROM system_schema.indexes WHERE keyspace_name = '"
            + ks.replace("'", "''") + "' AND table_name = '" + table.replace("'", "''") + "'")) {
      String target = r.getMap(1, String.class, String.class).get("target");
      w.write("CREATE INDEX " + quote(r.getString(0)) + " ON " + full + " (" + quote(target) + ");\n");
    }

    StringBuilder select = new StringBuilder("SELECT ");
    List<String> exprs = new ArrayList<>();
    for (Col c : keys) {
      exprs.add(quote(c.name()));
    }
    for (Col c : regular) {
      exprs.add(quote(c.name()));
      exprs.add("writetime(" + quote(c.name()) + ")");
    }
    select.append(String.join(", ", exprs)).append(" FROM ").append(full);
    for (Row r : query(select.toString())) {
      List<String> keyNames = new ArrayList<>();
      List<String> keyValues = new ArrayList<>();
      for (int i = 0; i < keys.size(); i++) {
        keyNames.add(quote(keys.get(i).name()));
        keyValues.add(literal(r, i, keys.get(i)));
      }
      // One INSERT per distinct write time, oldest first, so every cell keeps its own.
      Map<Long, List<Integer>> byTime = new TreeMap<>();
      for (int j = 0; j < regular.size(); j++) {
        int at = keys.size() + 2 * j;
        if (!r.isNull(at)) {
          byTime.computeIfAbsent(r.getLong(at + 1), x -> new ArrayList<>()).add(j);
        }
      }
      if (byTime.isEmpty()) {
        w.write("INSERT INTO " + full + " (" + String.join(", ", keyNames) + ") VALUES ("
            + String.join(", ", keyValues) + ");\n");
      }
      for (Map.Entry<Long, List<Integer>> e : byTime.entrySet()) {
        List<String> n = new ArrayList<>(keyNames);
        List<String> v = new ArrayList<>(keyValues);
        for (int j : e.getValue()) {
          n.add(quote(regular.get(j).name()));
          v.add(literal(r, keys.size() + 2 * j, regular.get(j)));
        }
        w.write("INSERT INTO " + full + " (" + String.join(", ", n) + ") VALUES ("
            + String.join(", ", v) + ") USING TIMESTAMP " + e.getKey() + ";\n");
      }
    }
  }

  private static List<Col> byKind(List<Col> cols, String kind) {
    List<Col> out = new ArrayList<>();
    for (Col c : cols) {
      if (c.kind().equals(kind)) {
        out.add(c);
      }
    }
    out.sort((a, b) -> kind.equals("regular") ? a.name().compareTo(b.name()) : Integer.compare(a.position(), b.position()));
    return out;
  }

  private static String names(List<Col> cols) {
    List<String> out = new ArrayList<>();
    for (Col c : cols) {
      out.add(quote(c.name()));
    }
    return String.join(", ", out);
  }

  static String quote(String identifier) {
    return "\"" + identifier.replace("\"", "\"\"") + "\"";
  }

  /** A CQL literal of the value at {@code i}, of the column's type. */
  private static String literal(Row r, int i, Col c) {
    if (r.isNull(i)) {
      return "NULL";
    }
    switch (c.type()) {
      case "int":
        return Integer.toString(r.getInt(i));
      case "bigint":
        return Long.toString(r.getLong(i));
      case "boolean":
        return Boolean.toString(r.getBool(i));
      case "double":
        return Double.toString(r.getDouble(i));
      case "float":
        return Float.toString(r.getFloat(i));
      case "text":
      case "varchar":
      case "ascii":
        String s = r.getString(i);
        if (s.indexOf('\n') >= 0 || s.indexOf('\r') >= 0) {
          // The loaders split statements at line ends.
          throw new IllegalStateException(c.name() + ": a line break in a text value cannot be dumped");
        }
        return "'" + s.replace("'", "''") + "'";
      case "blob":
        ByteBuffer b = r.getBytes(i).duplicate();
        StringBuilder hex = new StringBuilder("0x");
        while (b.hasRemaining()) {
          hex.append(String.format("%02x", b.get()));
        }
        return hex.toString();
      default:
        throw new IllegalStateException(c.name() + ": CQL type " + c.type() + " is not dumped");
    }
  }

  @Override
  public void assemble(List<Path> parts, Namespaces ns, Path backupFile) throws Exception {
    // parts hold disjoint keyspaces (DATA, then COORDINATOR, or one ALL part).
    StringBuilder text = new StringBuilder("-- ScalarDB oracle backup (Cassandra), written by tests/oracle.\n");
    for (Path p : parts) {
      text.append(Files.readString(p, StandardCharsets.UTF_8));
    }
    Files.writeString(backupFile, text.toString(), StandardCharsets.UTF_8);
  }

  @Override
  public Properties restore(Path backupFile, String caseId, Namespaces ns, Path work)
      throws Exception {
    dropCaseKeyspaces();
    for (String statement : statements(Files.readString(backupFile, StandardCharsets.UTF_8))) {
      execute(statement);
    }
    return props();
  }

  /** Splits a script like CassandraWriter::execute_script: ';' at a line end ends a statement. */
  static List<String> statements(String script) {
    List<String> out = new ArrayList<>();
    StringBuilder current = new StringBuilder();
    for (String line : script.split("\n", -1)) {
      String t = line.trim();
      if (t.isEmpty() || t.startsWith("--")) {
        continue;
      }
      current.append(line).append('\n');
      if (t.endsWith(";")) {
        String s = current.toString().trim();
        out.add(s.substring(0, s.length() - 1));
        current.setLength(0);
      }
    }
    if (!current.toString().trim().isEmpty()) {
      out.add(current.toString().trim());
    }
    return out;
  }

  @Override
  public void release(String caseId, Namespaces ns) {
    dropCaseKeyspaces();
  }

  /**
   * The node's JMX and data directory, for {@link #snapshot}: given only for a node the oracle
   * started (scripts/oracle, examples/cassandra-node.rs).
   */
  record Jmx(int port, Path passwordFile, Path dataDir) {}

  /**
   * What {@code nodetool snapshot -t TAG KEYSPACE...} does, over the node's JMX (StorageService's
   * takeSnapshot, which flushes the keyspaces' memtables first), then the snapshot copied out of
   * the node's data directory into {@code out} in the layout of one node's data directory:
   * {@code out/KEYSPACE/TABLE-ID/snapshots/TAG/} with its SSTables, manifest.json and the
   * schema.cql Cassandra writes. Keyspaces that do not exist are left out.
   */
  void snapshot(Jmx jmx, String tag, List<String> keyspaces, Path out) throws Exception {
    Set<String> existing = new LinkedHashSet<>();
    for (Row r : query("SELECT keyspace_name FROM system_schema.keyspaces")) {
      existing.add(r.getString(0));
    }
    List<String> taken = new ArrayList<>();
    for (String ks : keyspaces) {
      if (existing.contains(ks)) {
        taken.add(ks);
      }
    }
    String[] cred = Files.readString(jmx.passwordFile(), StandardCharsets.UTF_8).trim().split("\\s+", 2);
    JMXServiceURL url =
        new JMXServiceURL("service:jmx:rmi:///jndi/rmi://127.0.0.1:" + jmx.port() + "/jmxrmi");
    try (JMXConnector c = JMXConnectorFactory.connect(url, Map.of(JMXConnector.CREDENTIALS, cred))) {
      MBeanServerConnection m = c.getMBeanServerConnection();
      m.invoke(new ObjectName("org.apache.cassandra.db:type=StorageService"), "takeSnapshot",
          new Object[] {tag, new java.util.HashMap<String, String>(), taken.toArray(new String[0])},
          new String[] {String.class.getName(), Map.class.getName(), String[].class.getName()});
    }
    Files.createDirectories(out);
    for (String ks : taken) {
      Path ksDir = jmx.dataDir().resolve(ks);
      if (!Files.isDirectory(ksDir)) {
        continue; // a keyspace without tables
      }
      List<Path> tables;
      try (Stream<Path> s = Files.list(ksDir)) {
        tables = s.sorted().toList();
      }
      for (Path table : tables) {
        Path snap = table.resolve("snapshots").resolve(tag);
        if (!Files.isDirectory(snap)) {
          continue;
        }
        Path dest = out.resolve(ks).resolve(table.getFileName()).resolve("snapshots").resolve(tag);
        Files.createDirectories(dest);
        List<Path> files;
        try (Stream<Path> s = Files.list(snap)) {
          files = s.sorted().toList();
        }
        for (Path f : files) {
          if (Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            Files.copy(f, dest.resolve(f.getFileName()));
          }
        }
      }
    }
  }

  /** Copies a directory tree (regular files and directories). */
  static void copyTree(Path from, Path to) throws IOException {
    List<Path> all;
    try (Stream<Path> s = Files.walk(from)) {
      all = s.sorted().toList();
    }
    for (Path p : all) {
      Path d = to.resolve(from.relativize(p).toString());
      if (Files.isDirectory(p)) {
        Files.createDirectories(d);
      } else {
        Files.copy(p, d, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      }
    }
  }
}
