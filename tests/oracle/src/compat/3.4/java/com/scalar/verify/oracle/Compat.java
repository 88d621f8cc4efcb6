package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedStorage;
import com.scalar.db.api.DistributedTransaction;
import com.scalar.db.api.DistributedTransactionManager;
import com.scalar.db.api.TwoPhaseCommitTransaction;
import com.scalar.db.api.TwoPhaseCommitTransactionManager;
import com.scalar.db.config.DatabaseConfig;
import com.scalar.db.exception.transaction.TransactionException;
import com.scalar.db.service.StorageFactory;
import com.scalar.db.service.TransactionFactory;
import com.scalar.db.transaction.consensuscommit.ConsensusCommitConfig;
import com.scalar.db.transaction.consensuscommit.ConsensusCommitManager;
import com.scalar.db.transaction.consensuscommit.TwoPhaseConsensusCommitManager;
import java.util.Properties;

/**
 * What differs between ScalarDB lines (this copy: 3.4, chosen for lines before 3.6). As on 3.6 a
 * manager whose storage is the wrapper ({@value FaultyStorage#NAME}) is built by hand, here
 * through 3.4's public (storage, ConsensusCommitConfig) constructors around {@link
 * FaultyStorage#wrap} of the real adapter; factories take a DatabaseConfig. Schema creation is in
 * src/compat/api/values ({@code Schemas}: 3.4 has no transaction admin).
 */
final class Compat {
  private Compat() {}

  static final boolean IMPORT_TABLE = false;

  private static boolean wrapped(Properties p) {
    return FaultyStorage.NAME.equals(p.getProperty(DatabaseConfig.STORAGE));
  }

  private static DistributedStorage wrappedStorage(Properties inner) {
    return FaultyStorage.wrap(new StorageFactory(new DatabaseConfig(inner)).getStorage());
  }

  /** A transaction manager for ScalarDB properties {@code p} (its storage may be the wrapper). */
  static DistributedTransactionManager transactionManager(Properties p) {
    if (!wrapped(p)) {
      return new TransactionFactory(new DatabaseConfig(p)).getTransactionManager();
    }
    Properties inner = FaultyStorage.innerProperties(p);
    return new ConsensusCommitManager(wrappedStorage(inner), new ConsensusCommitConfig(inner));
  }

  static TwoPhaseCommitTransactionManager twoPhaseManager(Properties p) {
    if (!wrapped(p)) {
      return new TransactionFactory(new DatabaseConfig(p)).getTwoPhaseCommitTransactionManager();
    }
    Properties inner = FaultyStorage.innerProperties(p);
    return new TwoPhaseConsensusCommitManager(
        wrappedStorage(inner), new ConsensusCommitConfig(inner));
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
