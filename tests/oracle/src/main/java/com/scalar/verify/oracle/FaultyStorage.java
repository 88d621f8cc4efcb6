package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedStorage;
import com.scalar.db.api.Mutation;
import com.scalar.db.exception.storage.ExecutionException;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

/**
 * The crash switch and the write log around a real storage adapter, JDBC or Cassandra (named by
 * {@value #INNER}): every call is delegated unchanged, except that write batches are first shown
 * to {@link Faults} (which may fail them, simulating a crash) and, once the real adapter has
 * applied them, recorded in the current {@link WriteLog}. ScalarDB finds it as the storage named
 * {@value #NAME} through {@code FaultyStorageProvider} (3.9+, its storage plug-in point); lines
 * without that plug-in point get their managers built around {@link #wrap} by hand (Compat).
 *
 * <p>Every write ScalarDB's Consensus Commit makes goes through the DistributedStorage interface
 * (put, delete, mutate), Coordinator rows included; on Cassandra the adapter turns those calls'
 * conditions (putIfNotExists, putIf, deleteIf) into lightweight transactions, so wrapping the
 * storage interface intercepts every Paxos write before it is sent. A failed batch is never sent,
 * so no half-accepted Paxos round is left behind.
 *
 * <p>A dynamic proxy is used so that the same class works with every ScalarDB version's
 * DistributedStorage interface.
 */
final class FaultyStorage {
  private FaultyStorage() {}

  static final String NAME = "oracle-faulty";
  /** The property naming the wrapped adapter: "jdbc" (the default) or "cassandra". */
  static final String INNER = "scalar.db.oracle.inner_storage";

  private static volatile WriteLog log;
  private static volatile String coordinatorTable = "coordinator.state";

  /** Points the wrapper at the write log of the case being generated. */
  static void attach(WriteLog writeLog, String coordinatorNamespace) {
    log = writeLog;
    coordinatorTable = coordinatorNamespace + ".state";
  }

  /** The wrapped adapter's properties: {@code props} with the storage named by {@value #INNER}. */
  static Properties innerProperties(Properties props) {
    Properties p = new Properties();
    p.putAll(props);
    p.setProperty(com.scalar.db.config.DatabaseConfig.STORAGE, p.getProperty(INNER, "jdbc"));
    return p;
  }

  static DistributedStorage wrap(DistributedStorage inner) {
    return (DistributedStorage)
        Proxy.newProxyInstance(
            DistributedStorage.class.getClassLoader(),
            new Class<?>[] {DistributedStorage.class},
            new Handler(inner));
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
