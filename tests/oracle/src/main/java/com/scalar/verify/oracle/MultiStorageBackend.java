package com.scalar.verify.oracle;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * One ScalarDB deployment over two databases through ScalarDB's own multi-storage configuration
 * ({@code scalar.db.storage=multi-storage}): storage {@value #PG} (PostgreSQL) holds the
 * Coordinator namespace and {@code bank_a}; the other storage holds {@code bank_b}: MariaDB
 * ({@code maria}, backend {@value #NAME}), SQLite ({@code lite}, backend {@value #NAME_SQLITE})
 * or Cassandra ({@code cass}, backend {@value #NAME_CASSANDRA}; its backup is a real snapshot of
 * the node, {@code backup.cassandra/}, taken over JMX, see {@link CassandraBackend#snapshot}).
 * Each storage is backed up by its own tool ({@code pg_dump} of the case database;
 * {@code mysqldump --single-transaction} of {@code bank_b} and {@code scalardb}, or SQLite's
 * online backup of its file), at one quiet moment or at different moments while transactions run
 * (see {@link MultiStorageScenarios}); a case directory holds one file per storage
 * ({@value #PG_FILE}, and {@code backup.mysql.sql} or {@code backup.sqlite}).
 *
 * <p>A case whose id holds {@code coord-<engine>} ({@code pg-mariadb-coord-mariadb-*},
 * {@code pg-sqlite-coord-sqlite-*}, {@code pg-cassandra-coord-cassandra-*},
 * {@link #COORDINATOR_ON_OTHER}) maps the Coordinator namespace to the other storage instead:
 * its Coordinator table lives in MariaDB, the SQLite file or Cassandra, beside bank_b, while
 * bank_a stays in PostgreSQL.
 *
 * <p>The crash switch and the write log wrap the multi-storage storage as a whole
 * ({@code oracle-faulty} with the inner storage {@code multi-storage}): every write Consensus
 * Commit sends to either database passes through it, one mutate per storage.
 */
final class MultiStorageBackend implements Backend {
  static final String NAME = "multi-storage";
  static final String NAME_SQLITE = "multi-storage-sqlite";
  static final String NAME_CASSANDRA = "multi-storage-cassandra";
  /**
   * The Cassandra storage's reload for the oracle's own restore (phase 2): a CQL dump of the
   * same keyspaces taken right after the snapshot, with nothing running in between (the tool
   * drills the snapshot, {@code backup.cassandra}).
   */
  static final String CASSANDRA_RELOAD = "backup.cassandra.cql";
  static final String PG = "pg";
  static final String PG_FILE = "backup.pg.sql";
  private static final String P = "scalar.db.multi_storage.";
  /**
   * The mark, followed by the other storage's engine, of a case whose Coordinator namespace is
   * mapped to the other storage ({@code pg-mariadb-coord-mariadb-mixed}); the scenario, the
   * fresh and the restored database, the dumps and truth.json all follow it.
   */
  static final String COORDINATOR_ON_OTHER = "coord-";

  /** The storage that is not PostgreSQL: its name in the deployment, engine, backup file. */
  record Other(String name, String engine, String file, Backend backend) {}

  private final String backendName;
  private final PostgresBackend pg;
  final Other other;
  /** Per case name: the cut facts the scenario recorded (torn transactions, money). */
  final Map<String, Map<String, Object>> cutFacts = new LinkedHashMap<>();

  /** The Cassandra node's JMX and data directory (multi-storage-cassandra only). */
  private final CassandraBackend.Jmx jmx;

  private MultiStorageBackend(String backendName, PostgresBackend pg, Other other, CassandraBackend.Jmx jmx) {
    this.backendName = backendName;
    this.pg = pg;
    this.other = other;
    this.jmx = jmx;
  }

  private boolean cassandra() {
    return other.backend() instanceof CassandraBackend;
  }

  /** The engine of the other storage of a multi-storage backend name, or null for another backend. */
  static String otherEngine(String backendName) {
    return switch (backendName) {
      case NAME -> "mariadb";
      case NAME_SQLITE -> "sqlite";
      case NAME_CASSANDRA -> "cassandra";
      default -> null;
    };
  }

  static MultiStorageBackend parse(String backendName, Map<String, String> o) {
    PostgresBackend pg = new PostgresBackend(
        o.getOrDefault("pg-host", "127.0.0.1"), Integer.parseInt(o.get("pg-port")),
        o.getOrDefault("pg-user", "postgres"), o.getOrDefault("pg-password", ""), o.getOrDefault("pg-bin", ""));
    CassandraBackend.Jmx jmx = null;
    Other other;
    if (backendName.equals(NAME_SQLITE)) {
      other = new Other("lite", "sqlite", "backup.sqlite", new SqliteBackend());
    } else if (backendName.equals(NAME_CASSANDRA)) {
      for (String k : List.of("cassandra", "cassandra-jmx", "cassandra-jmx-file", "cassandra-data")) {
        if (!o.containsKey(k)) {
          throw new IllegalArgumentException("--backend " + NAME_CASSANDRA + " needs --" + k);
        }
      }
      other = new Other("cass", "cassandra", "backup.cassandra", CassandraBackend.parse(o.get("cassandra")));
      jmx = new CassandraBackend.Jmx(Integer.parseInt(o.get("cassandra-jmx")),
          Path.of(o.get("cassandra-jmx-file")), Path.of(o.get("cassandra-data")));
    } else {
      other = new Other("maria", "mariadb", "backup.mysql.sql", new MariaDbBackend(
          o.getOrDefault("maria-host", "127.0.0.1"), Integer.parseInt(o.get("maria-port")),
          o.getOrDefault("maria-user", "root"), o.getOrDefault("maria-password", ""),
          o.getOrDefault("maria-bin", "")));
    }
    return new MultiStorageBackend(backendName, pg, other, jmx);
  }

  @Override
  public String name() {
    return backendName;
  }

  @Override
  public String storage() {
    return "multi-storage";
  }

  /** Cassandra's replication for its namespaces (the JDBC admin ignores the option). */
  @Override
  public Map<String, String> namespaceOptions() {
    return other.backend().namespaceOptions();
  }

  @Override
  public String backupFileName() {
    return PG_FILE;
  }

  /** The namespaces the other storage holds (as Namespaces for its DATA part: bank_b and the metadata). */
  private static Namespaces otherNamespaces(Namespaces ns) {
    return new Namespaces(ns.coordinator(), ns.metadata(), List.of(Bank.NS_B));
  }

  /**
   * Whether the case (its name, or a database id derived from it: {@code CaseContext.caseId},
   * with {@code r_} for a restored copy) keeps the Coordinator table in the other storage.
   */
  /** The Coordinator's storage decides: MariaDB's folds case (see {@link Backend#foldsIdCase}). */
  @Override
  public boolean foldsIdCase(String caseName) {
    return coordinatorOnOther(caseName) && other.backend().foldsIdCase(caseName);
  }

  boolean coordinatorOnOther(String caseNameOrId) {
    String id = caseNameOrId.replaceAll("[^A-Za-z0-9]", "_").toLowerCase();
    return id.contains("_" + COORDINATOR_ON_OTHER.replace('-', '_') + other.engine() + "_");
  }

  /** The storage that holds the case's Coordinator table: {@value #PG} or the other's name. */
  String coordinatorStorage(String caseNameOrId) {
    return coordinatorOnOther(caseNameOrId) ? other.name() : PG;
  }

  /** ScalarDB's multi-storage properties over the two storages' connection properties. */
  private Properties multi(Properties pgProps, Properties otherProps, String coordinatorNs, String coordinatorStorage) {
    Properties p = new Properties();
    p.setProperty(P + "storages", PG + "," + other.name());
    Map<String, String> adapters = Map.of(PG, pg.storage(), other.name(), other.backend().storage());
    for (Map.Entry<String, Properties> e : Map.of(PG, pgProps, other.name(), otherProps).entrySet()) {
      String s = P + "storages." + e.getKey() + ".";
      p.setProperty(s + "storage", adapters.get(e.getKey()));
      for (String k : e.getValue().stringPropertyNames()) {
        if (k.startsWith("scalar.db.")) {
          p.setProperty(s + k.substring("scalar.db.".length()), e.getValue().getProperty(k));
        }
      }
    }
    p.setProperty(P + "namespace_mapping",
        coordinatorNs + ":" + coordinatorStorage + "," + Bank.NS_A + ":" + PG + "," + Bank.NS_B + ":" + other.name());
    p.setProperty(P + "default_storage", PG);
    return p;
  }

  /** One storage's connection properties back out of the multi-storage properties. */
  private static Properties storageProps(Properties multi, String storage) {
    Properties p = new Properties();
    String s = P + "storages." + storage + ".";
    for (String k : multi.stringPropertyNames()) {
      if (k.startsWith(s) && !k.equals(s + "storage")) {
        p.setProperty("scalar.db." + k.substring(s.length()), multi.getProperty(k));
      }
    }
    return p;
  }

  @Override
  public Properties freshDatabase(String caseId, Path work) throws Exception {
    // The Coordinator namespace is only known to the case; the default one is mapped here and
    // MultiStorageScenarios uses it.
    return multi(pg.freshDatabase(caseId, work), other.backend().freshDatabase(caseId, work), Scenarios.DEFAULT_NS,
        coordinatorStorage(caseId));
  }

  /**
   * pg_dump of storage pg (bank_a, its metadata schema and, unless the case keeps it in the other
   * storage, the Coordinator) at this moment: the whole case database.
   */
  Path dumpPg(Properties live, Namespaces ns, Path dir, String label) throws Exception {
    return pg.dump(storageProps(live, PG), Part.ALL, ns, dir, label);
  }

  /**
   * The other storage's backup at this moment (bank_b and its metadata, and the Coordinator when
   * the case keeps it there, {@code caseId}): mysqldump of the MariaDB databases, or a copy of
   * the whole SQLite file, which holds nothing else.
   */
  Path dumpOther(Properties live, Namespaces ns, Path dir, String label, String caseId) throws Exception {
    Part part = coordinatorOnOther(caseId) ? Part.ALL : Part.DATA;
    if (cassandra()) {
      // A real snapshot of the node (what the tool drills), then the oracle's CQL reload of
      // the same keyspaces, with nothing running in between.
      CassandraBackend c = (CassandraBackend) other.backend();
      Path out = dir.resolve(label);
      List<String> keyspaces = new ArrayList<>();
      if (part == Part.ALL) {
        keyspaces.add(ns.coordinator());
      }
      keyspaces.add(ns.metadata());
      keyspaces.add(Bank.NS_B);
      String tag = "oracle_" + label.replaceAll("[^A-Za-z0-9]", "_") + "_" + System.currentTimeMillis();
      c.snapshot(jmx, tag, keyspaces, out.resolve("snapshot"));
      Path cql = c.dump(storageProps(live, other.name()), part, otherNamespaces(ns), out, "reload");
      if (!cql.equals(out.resolve("reload.cql"))) {
        throw new IllegalStateException("unexpected CQL dump " + cql);
      }
      return out;
    }
    return other.backend().dump(storageProps(live, other.name()), part, otherNamespaces(ns), dir, label);
  }

  @Override
  public Path dump(Properties live, Part part, Namespaces ns, Path dir, String label) {
    throw new UnsupportedOperationException(
        "a multi-storage case is cut per storage (MultiStorageScenarios), not by Part");
  }

  /** parts: the pg dump, then the other's; each becomes its storage's file of the case. */
  @Override
  public void assemble(List<Path> parts, Namespaces ns, Path backupFile) throws Exception {
    if (parts.size() != 2) {
      throw new IllegalStateException("a multi-storage backup is one dump per storage, got " + parts);
    }
    Path dir = backupFile.getParent();
    Files.copy(parts.get(0), dir.resolve(PG_FILE), StandardCopyOption.REPLACE_EXISTING);
    if (cassandra()) {
      Path snapshot = dir.resolve(other.file());
      if (Files.exists(snapshot)) {
        throw new IllegalStateException(snapshot + " exists already");
      }
      CassandraBackend.copyTree(parts.get(1).resolve("snapshot"), snapshot);
      Files.copy(parts.get(1).resolve("reload.cql"), dir.resolve(CASSANDRA_RELOAD),
          StandardCopyOption.REPLACE_EXISTING);
      return;
    }
    Files.copy(parts.get(1), dir.resolve(other.file()), StandardCopyOption.REPLACE_EXISTING);
  }

  @Override
  public Properties restore(Path backupFile, String caseId, Namespaces ns, Path work) throws Exception {
    Path dir = backupFile.getParent();
    Properties pgProps = pg.restore(dir.resolve(PG_FILE), caseId, ns, work);
    Path otherBackup = dir.resolve(cassandra() ? CASSANDRA_RELOAD : other.file());
    Properties otherProps = other.backend().restore(otherBackup, caseId, ns, work);
    return multi(pgProps, otherProps, ns.coordinator(), coordinatorStorage(caseId));
  }

  @Override
  public void release(String caseId, Namespaces ns) throws Exception {
    pg.release(caseId, ns);
    other.backend().release(caseId, ns);
  }

  /** truth.json's deployment: the storages (name, engine, namespaces, backup file, Coordinator). */
  Map<String, Object> truthFields(CaseContext ctx) {
    Map<String, Object> out = new LinkedHashMap<>();
    List<Object> storages = new ArrayList<>();
    boolean onOther = coordinatorOnOther(ctx.caseName);
    String coord = ctx.namespaces.coordinator();
    storages.add(storage(PG, "postgres", onOther ? List.of(Bank.NS_A) : List.of(coord, Bank.NS_A), !onOther,
        PG_FILE));
    storages.add(storage(other.name(), other.engine(), onOther ? List.of(coord, Bank.NS_B) : List.of(Bank.NS_B),
        onOther, other.file()));
    out.put("storages", storages);
    out.put("default_storage", PG);
    out.putAll(cutFacts.getOrDefault(ctx.caseName, Map.of()));
    return out;
  }

  private static Map<String, Object> storage(
      String name, String engine, List<String> namespaces, boolean coordinator, String backup) {
    Map<String, Object> s = new LinkedHashMap<>();
    s.put("name", name);
    s.put("engine", engine);
    s.put("namespaces", namespaces);
    s.put("coordinator", coordinator);
    s.put("backup", backup);
    return s;
  }
}
