package com.scalar.verify.oracle;

import com.scalar.db.api.Delete;
import com.scalar.db.api.DistributedTransaction;
import com.scalar.db.api.Get;
import com.scalar.db.api.Put;
import com.scalar.db.api.Result;
import com.scalar.db.api.TwoPhaseCommitTransaction;
import com.scalar.db.exception.transaction.CrudException;
import java.util.Optional;

/**
 * The reads and writes {@link Bank} makes, on a one-phase or a two-phase transaction alike
 * (ScalarDB's common interface, TransactionCrudOperable, arrived after 3.4).
 */
interface Crud {
  Optional<Result> get(Get get) throws CrudException;

  void put(Put put) throws CrudException;

  void delete(Delete delete) throws CrudException;

  static Crud of(DistributedTransaction tx) {
    return new Crud() {
      @Override
      public Optional<Result> get(Get get) throws CrudException {
        return tx.get(get);
      }

      @Override
      public void put(Put put) throws CrudException {
        tx.put(put);
      }

      @Override
      public void delete(Delete delete) throws CrudException {
        tx.delete(delete);
      }
    };
  }

  static Crud of(TwoPhaseCommitTransaction tx) {
    return new Crud() {
      @Override
      public Optional<Result> get(Get get) throws CrudException {
        return tx.get(get);
      }

      @Override
      public void put(Put put) throws CrudException {
        tx.put(put);
      }

      @Override
      public void delete(Delete delete) throws CrudException {
        tx.delete(delete);
      }
    };
  }
}
