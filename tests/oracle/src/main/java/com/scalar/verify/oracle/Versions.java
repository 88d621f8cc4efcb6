package com.scalar.verify.oracle;

/**
 * Which ScalarDB features the line being run has, by version number: the gates the scenarios
 * apply (compile-time differences are in Compat, the features a run adds in Variant).
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

  /**
   * Deleting a key that does not exist (a DELETED tombstone without a before image): 3.6+.
   * 3.4.5's prepare refuses it ("the record to be deleted must be existing and read
   * beforehand", PrepareMutationComposer). 3.5 was not tried.
   */
  static boolean absentKeyDeletes(String version) {
    return atLeast(version, 3, 6);
  }
}
