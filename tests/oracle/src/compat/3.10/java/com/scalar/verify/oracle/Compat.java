package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedTransactionAdmin;
import java.util.Map;

/**
 * What differs between ScalarDB lines, in one place per line (this copy: 3.10 and later;
 * src/compat/&lt;line&gt;/java holds the others, chosen by the build's oracle.compat property).
 */
final class Compat {
  private Compat() {}

  /** Whether {@link #importTable} works on this line (DistributedTransactionAdmin, 3.10+). */
  static final boolean IMPORT_TABLE = true;

  static void importTable(
      DistributedTransactionAdmin admin, String namespace, String table, Map<String, String> options)
      throws Exception {
    admin.importTable(namespace, table, options);
  }
}
