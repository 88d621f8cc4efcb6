package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedTransactionAdmin;
import java.util.Map;

/** What differs between ScalarDB lines (this copy: 3.6 to 3.9, before importTable existed). */
final class Compat {
  private Compat() {}

  static final boolean IMPORT_TABLE = false;

  static void importTable(
      DistributedTransactionAdmin admin, String namespace, String table, Map<String, String> options) {
    throw new UnsupportedOperationException("importTable arrived in ScalarDB 3.10");
  }
}
