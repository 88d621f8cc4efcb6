package com.scalar.verify.oracle;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * Where a case's database lives and how it is backed up and restored. A backup is a set of
 * "parts", each taken at one instant; a torn backup is assembled from parts taken at different
 * instants.
 */
interface Backend {
  /** The part of the database a dump covers. */
  enum Part {
    ALL,
    COORDINATOR,
    DATA
  }

  /** "sqlite", "postgres", "mariadb" or "cassandra", as written in truth.json. */
  String name();

  /** The ScalarDB storage adapter that reaches this backend (scalar.db.storage). */
  default String storage() {
    return "jdbc";
  }

  /** Options for ScalarDB's admin when it creates namespaces (e.g. Cassandra's replication). */
  default Map<String, String> namespaceOptions() {
    return Map.of();
  }

  /**
   * Whether the Coordinator table ScalarDB creates here compares tx_ids ignoring case, so that
   * getState finds a row whose id differs only in case (MariaDB: VARCHAR takes the server's
   * collation, case-insensitive by default).
   */
  default boolean foldsIdCase(String caseName) {
    return false;
  }

  /** The backup file name the output contract uses for this backend. */
  String backupFileName();

  /**
   * Creates an empty database for a case and returns the ScalarDB properties that reach it
   * (contact points, user, password; the caller adds everything else).
   */
  Properties freshDatabase(String caseId, Path work) throws Exception;

  /** Dumps one part of the live database of the case into a file under {@code dir}. */
  Path dump(Properties live, Part part, Namespaces ns, Path dir, String label) throws Exception;

  /**
   * Writes the backup file from parts: a single ALL part, or a DATA part and a COORDINATOR part
   * taken at different moments. Never modifies the parts.
   */
  void assemble(List<Path> parts, Namespaces ns, Path backupFile) throws Exception;

  /**
   * Dumps some schemas alone (data namespaces, the Coordinator's, the metadata's), for a backup
   * cut per namespace: each part taken at its own instant.
   */
  default Path dumpSchemas(Properties live, List<String> schemas, Namespaces ns, Path dir, String label)
      throws Exception {
    throw new UnsupportedOperationException(name() + ": no per-namespace cut");
  }

  /**
   * Writes the backup file from {@link #dumpSchemas} parts (each with the schemas it holds;
   * together every schema once). Never modifies the parts.
   */
  default void assembleSchemas(Map<Path, List<String>> parts, Namespaces ns, Path backupFile)
      throws Exception {
    throw new UnsupportedOperationException(name() + ": no per-namespace cut");
  }

  /** Loads a fresh copy of a backup into a new database and returns properties that reach it. */
  Properties restore(Path backupFile, String caseId, Namespaces ns, Path work) throws Exception;

  /** Drops whatever {@link #freshDatabase} or {@link #restore} created for the case, if needed. */
  default void release(String caseId, Namespaces ns) throws Exception {}

  /** The namespaces of a case. */
  record Namespaces(String coordinator, String metadata, List<String> data) {}
}
