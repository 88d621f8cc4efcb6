package com.scalar.verify.oracle;

import com.scalar.db.api.TableMetadata;
import java.util.Map;

/**
 * What the harness asks of ScalarDB's admin API (every creation "if not exists"); opened by
 * {@code Schemas.open}: the transaction admin on 3.6+, the storage admin and Consensus Commit's
 * admin on 3.4. Writes no record through the storage wrapper.
 */
interface SchemaAdmin extends AutoCloseable {
  void createCoordinatorTables(Map<String, String> options) throws Exception;

  void createNamespace(String namespace, Map<String, String> options) throws Exception;

  void createTable(String namespace, String table, TableMetadata metadata, Map<String, String> options)
      throws Exception;

  /** Only where {@code Compat.IMPORT_TABLE}. */
  void importTable(String namespace, String table, Map<String, String> options) throws Exception;

  @Override
  void close();
}
