package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedStorage;
import com.scalar.db.api.DistributedStorageAdmin;
import com.scalar.db.api.DistributedStorageProvider;
import com.scalar.db.api.Mutation;
import com.scalar.db.config.DatabaseConfig;
import com.scalar.db.exception.storage.ExecutionException;
import com.scalar.db.service.StorageFactory;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

/**
 * A ScalarDB storage adapter named {@value #NAME}, registered through ScalarDB's own plug-in point
 * (java.util.ServiceLoader of DistributedStorageProvider). It wraps the real JDBC adapter: every
 * call is delegated unchanged, except that write batches are first shown to {@link Faults} (which
 * may fail them, simulating a crash) and, once the JDBC adapter has committed them, recorded in the
 * current {@link WriteLog}.
 *
 * <p>A dynamic proxy is used so that the same class works with every ScalarDB version's
 * DistributedStorage interface.
 */
public final class FaultyStorageProvider implements DistributedStorageProvider {
  static final String NAME = "oracle-faulty";

  private static volatile WriteLog log;
  private static volatile String coordinatorTable = "coordinator.state";

  /** Points the wrapper at the write log of the case being generated. */
  static void attach(WriteLog writeLog, String coordinatorNamespace) {
    log = writeLog;
    coordinatorTable = coordinatorNamespace + ".state";
  }

  @Override
  public String getName() {
    return NAME;
  }

  private static Properties jdbcProperties(DatabaseConfig config) {
    Properties p = new Properties();
    p.putAll(config.getProperties());
    p.setProperty(DatabaseConfig.STORAGE, "jdbc");
    return p;
  }

  @Override
  public DistributedStorage createDistributedStorage(DatabaseConfig config) {
    DistributedStorage inner = StorageFactory.create(jdbcProperties(config)).getStorage();
    return (DistributedStorage)
        Proxy.newProxyInstance(
            DistributedStorage.class.getClassLoader(),
            new Class<?>[] {DistributedStorage.class},
            new Handler(inner));
  }

  @Override
  public DistributedStorageAdmin createDistributedStorageAdmin(DatabaseConfig config) {
    return StorageFactory.create(jdbcProperties(config)).getStorageAdmin();
  }

  private static final class Handler implements InvocationHandler {
    private final DistributedStorage inner;

    Handler(DistributedStorage inner) {
      this.inner = inner;
    }

    @Override
    @SuppressWarnings("unchecked")
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
      List<? extends Mutation> batch = null;
      String name = method.getName();
      if ((name.equals("put") || name.equals("delete") || name.equals("mutate"))
          && args != null
          && args.length == 1) {
        batch =
            args[0] instanceof List
                ? (List<? extends Mutation>) args[0]
                : Collections.singletonList((Mutation) args[0]);
        if (Faults.check(new Faults.Batch(batch, coordinatorTable)) == Faults.Decision.FAIL) {
          throw new ExecutionException("oracle: injected crash, the write was not sent");
        }
      }
      Object result;
      try {
        result = method.invoke(inner, args);
      } catch (InvocationTargetException e) {
        throw e.getCause();
      }
      WriteLog current = log;
      if (batch != null && current != null) {
        current.applied(batch);
      }
      return result;
    }
  }
}
