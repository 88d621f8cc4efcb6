package com.scalar.verify.oracle;

/**
 * Which ScalarDB features the line being run has, by version number. One place for the gates
 * the scenarios and the harness apply (the compile-time differences are in Compat).
 */
final class Versions {
  private Versions() {}

  /** Whether {@code version} (e.g. "3.13.1") is at least major.minor. */
  static boolean atLeast(String version, int major, int minor) {
    String[] v = version.split("\\.");
    int ma = Integer.parseInt(v[0]);
    int mi = Integer.parseInt(v[1]);
    return ma > major || (ma == major && mi >= minor);
  }

  /** Group commit (tx_child_ids, parent$child ids): 3.13+. Earlier lines ignore the setting. */
  static boolean groupCommit(String version) {
    return atLeast(version, 3, 13);
  }

  /** One-phase commit (opt-in) and the read-only write omission (on by default): 3.16+. */
  static boolean onePhaseCommit(String version) {
    return atLeast(version, 3, 16);
  }

  /** Transaction-metadata decoupling on JDBC (the table option): 3.17+. */
  static boolean metadataDecoupling(String version) {
    return atLeast(version, 3, 17);
  }

  /** Write-set logging in the Coordinator (tx_write_set): 3.19+. */
  static boolean writeSetLogging(String version) {
    return atLeast(version, 3, 19);
  }

  /** ScalarDB's SQLite support (RdbEngineSqlite): 3.9 has it, 3.6 does not. */
  static boolean sqlite(String version) {
    return atLeast(version, 3, 9);
  }
}
