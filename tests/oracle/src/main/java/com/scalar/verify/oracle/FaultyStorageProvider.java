package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedStorage;
import com.scalar.db.api.DistributedStorageAdmin;
import com.scalar.db.api.DistributedStorageProvider;
import com.scalar.db.config.DatabaseConfig;
import com.scalar.db.service.StorageFactory;
import java.util.Properties;

/**
 * A ScalarDB storage adapter named {@value FaultyStorage#NAME}, registered through ScalarDB's own
 * plug-in point (java.util.ServiceLoader of DistributedStorageProvider, 3.9+; not built for lines
 * without it): the real adapter named by {@value FaultyStorage#INNER}, wrapped by {@link
 * FaultyStorage} (the crash switch and the write log).
 */
public final class FaultyStorageProvider implements DistributedStorageProvider {
  @Override
  public String getName() {
    return FaultyStorage.NAME;
  }

  private static Properties innerProperties(DatabaseConfig config) {
    return FaultyStorage.innerProperties(config.getProperties());
  }

  @Override
  public DistributedStorage createDistributedStorage(DatabaseConfig config) {
    return FaultyStorage.wrap(StorageFactory.create(innerProperties(config)).getStorage());
  }

  @Override
  public DistributedStorageAdmin createDistributedStorageAdmin(DatabaseConfig config) {
    return StorageFactory.create(innerProperties(config)).getStorageAdmin();
  }
}
