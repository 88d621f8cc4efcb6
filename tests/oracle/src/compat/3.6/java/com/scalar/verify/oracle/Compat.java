package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedStorage;
import com.scalar.db.api.DistributedTransaction;
import com.scalar.db.api.DistributedTransactionAdmin;
import com.scalar.db.api.DistributedTransactionManager;
import com.scalar.db.api.TwoPhaseCommitTransaction;
import com.scalar.db.api.TwoPhaseCommitTransactionManager;
import com.scalar.db.config.DatabaseConfig;
import com.scalar.db.exception.transaction.TransactionException;
import com.scalar.db.service.StorageFactory;
import com.scalar.db.service.TransactionFactory;
import com.scalar.db.transaction.consensuscommit.ConsensusCommitManager;
import com.scalar.db.transaction.consensuscommit.TwoPhaseConsensusCommitManager;
import java.util.Map;
import java.util.Properties;

/**
 * What differs between ScalarDB lines (this copy: 3.6, chosen for 3.6 to 3.8). 3.6 has no
 * storage plug-in point (DistributedStorageProvider), so a manager whose storage is the wrapper
 * ({@value FaultyStorage#NAME}) is built here by hand, through the Consensus Commit managers'
 * public (storage, storage admin, config) constructors, around {@link FaultyStorage#wrap} of the
 * real adapter; transactions start with start() and end with abort() (begin()/rollback() came
 * later).
 */
final class Compat {
  private Compat() {}

  static final boolean IMPORT_TABLE = false;

  static void importTable(
      DistributedTransactionAdmin admin, String namespace, String table, Map<String, String> options) {
    throw new UnsupportedOperationException("importTable arrived in ScalarDB 3.10");
  }

  private static boolean wrapped(Properties p) {
    return FaultyStorage.NAME.equals(p.getProperty(DatabaseConfig.STORAGE));
  }

  /** A transaction manager for ScalarDB properties {@code p} (its storage may be the wrapper). */
  static DistributedTransactionManager transactionManager(Properties p) {
    if (!wrapped(p)) {
      return TransactionFactory.create(p).getTransactionManager();
    }
    Properties inner = FaultyStorage.innerProperties(p);
    StorageFactory sf = StorageFactory.create(inner);
    DistributedStorage storage = FaultyStorage.wrap(sf.getStorage());
    return new ConsensusCommitManager(storage, sf.getStorageAdmin(), new DatabaseConfig(inner));
  }

  static TwoPhaseCommitTransactionManager twoPhaseManager(Properties p) {
    if (!wrapped(p)) {
      return TransactionFactory.create(p).getTwoPhaseCommitTransactionManager();
    }
    Properties inner = FaultyStorage.innerProperties(p);
    StorageFactory sf = StorageFactory.create(inner);
    DistributedStorage storage = FaultyStorage.wrap(sf.getStorage());
    return new TwoPhaseConsensusCommitManager(
        storage, sf.getStorageAdmin(), new DatabaseConfig(inner));
  }

  /** The admin writes no record through the storage: the real adapter's, unwrapped. */
  static DistributedTransactionAdmin transactionAdmin(Properties p) {
    Properties q = wrapped(p) ? FaultyStorage.innerProperties(p) : p;
    return TransactionFactory.create(q).getTransactionAdmin();
  }

  static DistributedTransaction begin(DistributedTransactionManager tm)
      throws TransactionException {
    return tm.start();
  }

  /** A transaction with an id the application gives, as ScalarDB lets it. */
  static DistributedTransaction begin(DistributedTransactionManager tm, String txId)
      throws TransactionException {
    return tm.start(txId);
  }

  static TwoPhaseCommitTransaction begin(TwoPhaseCommitTransactionManager tm)
      throws TransactionException {
    return tm.start();
  }

  static void rollback(DistributedTransaction tx) throws TransactionException {
    tx.abort();
  }

  /** The name of {@link #abort} in this line's API (for the notes). */
  static final String ABORT_BY_ID = "abort";

  /** The manager's abort-by-id API: writes ABORTED for {@code id}, returns the state. */
  static Object abort(TwoPhaseCommitTransactionManager tm, String id) throws TransactionException {
    return tm.abort(id);
  }
}
