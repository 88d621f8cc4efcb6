package com.scalar.verify.oracle;

import com.scalar.db.config.DatabaseConfig;
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
 * Coordinator namespace and {@code bank_a}, storage {@value #MARIA} (MariaDB) holds {@code bank_b}.
 * Each storage is backed up by its own tool ({@code pg_dump} of the case database,
 * {@code mysqldump --single-transaction} of {@code bank_b} and {@code scalardb}), at one quiet
 * moment or at different moments while transactions run (see {@link MultiStorageScenarios}); a
 * case directory holds one file per storage ({@value #PG_FILE}, {@value #MARIA_FILE}).
 *
 * <p>The crash switch and the write log wrap the multi-storage storage as a whole
 * ({@code oracle-faulty} with the inner storage {@code multi-storage}): every write Consensus
 * Commit sends to either database passes through it, one mutate per storage.
 */
final class MultiStorageBackend implements Backend {
  static final String NAME = "multi-storage";
  static final String PG = "pg";
  static final String MARIA = "maria";
  static final String PG_FILE = "backup.pg.sql";
  static final String MARIA_FILE = "backup.mysql.sql";
  private static final String P = "scalar.db.multi_storage.";

  private final PostgresBackend pg;
  private final MariaDbBackend maria;
  /** Per case name: the cut facts the scenario recorded (torn transactions, money). */
  final Map<String, Map<String, Object>> cutFacts = new LinkedHashMap<>();

  MultiStorageBackend(PostgresBackend pg, MariaDbBackend maria) {
    this.pg = pg;
    this.maria = maria;
  }

  static MultiStorageBackend parse(Map<String, String> o) {
    return new MultiStorageBackend(
        new PostgresBackend(
            o.getOrDefault("pg-host", "127.0.0.1"), Integer.parseInt(o.get("pg-port")),
            o.getOrDefault("pg-user", "postgres"), o.getOrDefault("pg-password", ""), o.getOrDefault("pg-bin", "")),
        new MariaDbBackend(
            o.getOrDefault("maria-host", "127.0.0.1"), Integer.parseInt(o.get("maria-port")),
            o.getOrDefault("maria-user", "root"), o.getOrDefault("maria-password", ""),
            o.getOrDefault("maria-bin", "")));
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String storage() {
    return "multi-storage";
  }

  @Override
  public String backupFileName() {
    return PG_FILE;
  }

  /** The namespaces MariaDB holds (as Namespaces for its DATA part: bank_b and the metadata). */
  private static Namespaces mariaNamespaces(Namespaces ns) {
    return new Namespaces(ns.coordinator(), ns.metadata(), List.of(Bank.NS_B));
  }

  /** ScalarDB's multi-storage properties over the two storages' connection properties. */
  private static Properties multi(Properties pgProps, Properties mariaProps, String coordinatorNs) {
    Properties p = new Properties();
    p.setProperty(P + "storages", PG + "," + MARIA);
    for (Map.Entry<String, Properties> e : Map.of(PG, pgProps, MARIA, mariaProps).entrySet()) {
      String s = P + "storages." + e.getKey() + ".";
      p.setProperty(s + "storage", "jdbc");
      for (String k : List.of(DatabaseConfig.CONTACT_POINTS, DatabaseConfig.USERNAME, DatabaseConfig.PASSWORD)) {
        p.setProperty(s + k.substring("scalar.db.".length()), e.getValue().getProperty(k));
      }
    }
    p.setProperty(P + "namespace_mapping",
        coordinatorNs + ":" + PG + "," + Bank.NS_A + ":" + PG + "," + Bank.NS_B + ":" + MARIA);
    p.setProperty(P + "default_storage", PG);
    return p;
  }

  /** One storage's connection properties back out of the multi-storage properties. */
  private static Properties storageProps(Properties multi, String storage) {
    Properties p = new Properties();
    String s = P + "storages." + storage + ".";
    for (String k : List.of(DatabaseConfig.CONTACT_POINTS, DatabaseConfig.USERNAME, DatabaseConfig.PASSWORD)) {
      p.setProperty(k, multi.getProperty(s + k.substring("scalar.db.".length())));
    }
    return p;
  }

  @Override
  public Properties freshDatabase(String caseId, Path work) throws Exception {
    // The Coordinator namespace is only known to the case; the default one is mapped here and
    // MultiStorageScenarios uses it.
    return multi(pg.freshDatabase(caseId, work), maria.freshDatabase(caseId, work), Scenarios.DEFAULT_NS);
  }

  /** pg_dump of storage pg (the Coordinator, bank_a and its metadata schema) at this moment. */
  Path dumpPg(Properties live, Namespaces ns, Path dir, String label) throws Exception {
    return pg.dump(storageProps(live, PG), Part.ALL, ns, dir, label);
  }

  /** mysqldump of storage maria (bank_b and its metadata database) at this moment. */
  Path dumpMaria(Properties live, Namespaces ns, Path dir, String label) throws Exception {
    return maria.dump(storageProps(live, MARIA), Part.DATA, mariaNamespaces(ns), dir, label);
  }

  @Override
  public Path dump(Properties live, Part part, Namespaces ns, Path dir, String label) {
    throw new UnsupportedOperationException(
        "a multi-storage case is cut per storage (MultiStorageScenarios), not by Part");
  }

  /** parts: the pg dump, then the maria dump; each becomes its storage's file of the case. */
  @Override
  public void assemble(List<Path> parts, Namespaces ns, Path backupFile) throws Exception {
    if (parts.size() != 2) {
      throw new IllegalStateException("a multi-storage backup is one dump per storage, got " + parts);
    }
    Path dir = backupFile.getParent();
    Files.copy(parts.get(0), dir.resolve(PG_FILE), StandardCopyOption.REPLACE_EXISTING);
    Files.copy(parts.get(1), dir.resolve(MARIA_FILE), StandardCopyOption.REPLACE_EXISTING);
  }

  @Override
  public Properties restore(Path backupFile, String caseId, Namespaces ns, Path work) throws Exception {
    Path dir = backupFile.getParent();
    Properties pgProps = pg.restore(dir.resolve(PG_FILE), caseId, ns, work);
    Properties mariaProps = maria.restore(dir.resolve(MARIA_FILE), caseId, ns, work);
    return multi(pgProps, mariaProps, ns.coordinator());
  }

  @Override
  public void release(String caseId, Namespaces ns) throws Exception {
    pg.release(caseId, ns);
    maria.release(caseId, ns);
  }

  /** truth.json's deployment: the storages (name, engine, namespaces, backup file, Coordinator). */
  Map<String, Object> truthFields(CaseContext ctx) {
    Map<String, Object> out = new LinkedHashMap<>();
    List<Object> storages = new ArrayList<>();
    storages.add(storage(PG, "postgres", List.of(ctx.namespaces.coordinator(), Bank.NS_A), true, PG_FILE));
    storages.add(storage(MARIA, "mariadb", List.of(Bank.NS_B), false, MARIA_FILE));
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
