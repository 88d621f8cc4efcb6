package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedTransaction;
import com.scalar.db.api.DistributedTransactionAdmin;
import com.scalar.db.api.DistributedTransactionManager;
import com.scalar.db.api.TwoPhaseCommitTransaction;
import com.scalar.db.api.TwoPhaseCommitTransactionManager;
import com.scalar.db.exception.transaction.TransactionException;
import com.scalar.db.service.TransactionFactory;
import java.util.Map;
import java.util.Properties;

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

  /** A transaction manager for ScalarDB properties {@code p} (its storage may be the wrapper). */
  static DistributedTransactionManager transactionManager(Properties p) {
    return TransactionFactory.create(p).getTransactionManager();
  }

  static TwoPhaseCommitTransactionManager twoPhaseManager(Properties p) {
    return TransactionFactory.create(p).getTwoPhaseCommitTransactionManager();
  }

  static DistributedTransactionAdmin transactionAdmin(Properties p) {
    return TransactionFactory.create(p).getTransactionAdmin();
  }

  static DistributedTransaction begin(DistributedTransactionManager tm)
      throws TransactionException {
    return tm.begin();
  }

  /** A transaction with an id the application gives, as ScalarDB lets it. */
  static DistributedTransaction begin(DistributedTransactionManager tm, String txId)
      throws TransactionException {
    return tm.begin(txId);
  }

  static TwoPhaseCommitTransaction begin(TwoPhaseCommitTransactionManager tm)
      throws TransactionException {
    return tm.begin();
  }

  static void rollback(DistributedTransaction tx) throws TransactionException {
    tx.rollback();
  }

  /** The name of {@link #abort} in this line's API (for the notes). */
  static final String ABORT_BY_ID = "rollback";

  /** The manager's abort-by-id API: writes ABORTED for {@code id}, returns the state. */
  static Object abort(TwoPhaseCommitTransactionManager tm, String id) throws TransactionException {
    return tm.rollback(id);
  }
}
