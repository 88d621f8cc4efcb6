package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedStorageAdmin;
import com.scalar.db.api.TableMetadata;
import com.scalar.db.config.DatabaseConfig;
import com.scalar.db.service.StorageFactory;
import com.scalar.db.transaction.consensuscommit.ConsensusCommitAdmin;
import com.scalar.db.transaction.consensuscommit.ConsensusCommitConfig;
import java.util.Map;
import java.util.Properties;

/**
 * The schema admin of 3.4, which has no transaction admin: the real adapter's storage admin
 * (unwrapped) for namespaces, and Consensus Commit's admin over it for the Coordinator table and
 * the transactional tables (user columns plus the metadata and before-image columns).
 */
final class Schemas {
  private Schemas() {}

  static SchemaAdmin open(Properties p) {
    Properties q =
        FaultyStorage.NAME.equals(p.getProperty(DatabaseConfig.STORAGE))
            ? FaultyStorage.innerProperties(p)
            : p;
    DistributedStorageAdmin storageAdmin = new StorageFactory(new DatabaseConfig(q)).getAdmin();
    ConsensusCommitAdmin admin = new ConsensusCommitAdmin(storageAdmin, new ConsensusCommitConfig(q));
    return new SchemaAdmin() {
      @Override
      public void createCoordinatorTables(Map<String, String> options) throws Exception {
        if (!admin.coordinatorTableExists()) {
          admin.createCoordinatorTable(options);
        }
      }

      @Override
      public void createNamespace(String namespace, Map<String, String> options) throws Exception {
        storageAdmin.createNamespace(namespace, true, options);
      }

      @Override
      public void createTable(
          String namespace, String table, TableMetadata metadata, Map<String, String> options)
          throws Exception {
        admin.createTransactionalTable(namespace, table, metadata, true, options);
      }

      @Override
      public void importTable(String namespace, String table, Map<String, String> options) {
        throw new UnsupportedOperationException("importTable arrived in ScalarDB 3.10");
      }

      @Override
      public void close() {
        storageAdmin.close();
      }
    };
  }
}
