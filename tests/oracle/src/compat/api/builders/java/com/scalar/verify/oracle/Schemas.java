package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedTransactionAdmin;
import com.scalar.db.api.TableMetadata;
import java.util.Map;
import java.util.Properties;

/** The schema admin of 3.6 and later: the line's DistributedTransactionAdmin (from Compat). */
final class Schemas {
  private Schemas() {}

  static SchemaAdmin open(Properties p) {
    DistributedTransactionAdmin admin = Compat.transactionAdmin(p);
    return new SchemaAdmin() {
      @Override
      public void createCoordinatorTables(Map<String, String> options) throws Exception {
        admin.createCoordinatorTables(true, options);
      }

      @Override
      public void createNamespace(String namespace, Map<String, String> options) throws Exception {
        admin.createNamespace(namespace, true, options);
      }

      @Override
      public void createTable(
          String namespace, String table, TableMetadata metadata, Map<String, String> options)
          throws Exception {
        admin.createTable(namespace, table, metadata, true, options);
      }

      @Override
      public void importTable(String namespace, String table, Map<String, String> options)
          throws Exception {
        Compat.importTable(admin, namespace, table, options);
      }

      @Override
      public void close() {
        admin.close();
      }
    };
  }
}
