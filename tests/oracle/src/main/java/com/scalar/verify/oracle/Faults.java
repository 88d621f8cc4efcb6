package com.scalar.verify.oracle;

import com.scalar.db.api.Delete;
import com.scalar.db.api.Mutation;
import com.scalar.db.api.Put;
import java.util.List;
import java.util.function.Predicate;

/**
 * The crash switch of the faulty storage. A scenario arms one {@link Rule}; every write batch that
 * ScalarDB sends to storage is shown to it first and either passes or fails with an
 * ExecutionException, as a database connection lost by a crashing process would.
 *
 * <p>All rules are "crash" rules: once they trip, every later write fails too (the process is
 * dead as far as storage can tell), until the scenario disarms the rule. Reads always pass.
 */
final class Faults {
  /** What a batch looks like to a rule. */
  record Batch(List<? extends Mutation> mutations, String coordinatorTable) {
    boolean isCoordinatorWrite() {
      return mutations.stream().anyMatch(m -> WriteLog.tableOf(m).equals(coordinatorTable));
    }

    /** tx_state values written by this batch's Puts (coordinator or records). */
    boolean writesState(int state) {
      for (Mutation m : mutations) {
        if (m instanceof Put) {
          String c = Records.written((Put) m).get("tx_state");
          if (c != null && Integer.parseInt(c) == state) {
            return true;
          }
        }
      }
      return false;
    }

    boolean isCoordinatorState(int state) {
      return isCoordinatorWrite() && writesState(state);
    }

    /** A data write that prepares records (PREPARED or DELETED puts). */
    boolean isPrepare() {
      return !isCoordinatorWrite() && (writesState(1) || writesState(2));
    }

    /** A data write that commits records (COMMITTED puts, or deletes rolled forward). */
    boolean isRecordCommit() {
      return !isCoordinatorWrite()
          && (writesState(3) || mutations.stream().allMatch(m -> m instanceof Delete));
    }

    /** True if any mutation of the batch mentions this id (as key or as tx_id). */
    boolean mentions(String txId) {
      for (Mutation m : mutations) {
        if (Records.render(m.getPartitionKey()).containsValue(txId)) {
          return true;
        }
        if (m instanceof Put && txId.equals(Records.written((Put) m).get("tx_id"))) {
          return true;
        }
      }
      return false;
    }
  }

  /** What a rule decides for one batch. */
  enum Decision {
    PASS,
    FAIL
  }

  /** A crash rule. Implementations are stateful and single-use. */
  interface Rule {
    Decision decide(Batch batch);
  }

  private static volatile Rule armed;
  private static volatile boolean tripped;

  private Faults() {}

  static synchronized void arm(Rule rule) {
    armed = rule;
    tripped = false;
  }

  static synchronized void disarm() {
    armed = null;
  }

  static synchronized boolean tripped() {
    return tripped;
  }

  /** Called by the storage wrapper before a write reaches the database. */
  static synchronized Decision check(Batch batch) {
    Rule rule = armed;
    if (rule == null) {
      return Decision.PASS;
    }
    Decision d = rule.decide(batch);
    if (d == Decision.FAIL) {
      tripped = true;
    }
    return d;
  }

  /** Fails the first batch matching the predicate and everything after it. */
  static Rule crashAt(Predicate<Batch> at) {
    return new Rule() {
      boolean dead;

      @Override
      public Decision decide(Batch b) {
        if (!dead && at.test(b)) {
          dead = true;
        }
        return dead ? Decision.FAIL : Decision.PASS;
      }
    };
  }

  /** Fails the n-th batch matching the predicate and everything after it. */
  static Rule crashAtNth(Predicate<Batch> at, int n) {
    return new Rule() {
      int seen;
      boolean dead;

      @Override
      public Decision decide(Batch b) {
        if (!dead && at.test(b) && ++seen == n) {
          dead = true;
        }
        return dead ? Decision.FAIL : Decision.PASS;
      }
    };
  }

  /** Lets the first batch matching the predicate through, then fails everything after it. */
  static Rule crashAfter(Predicate<Batch> after) {
    return crashAfterNth(after, 1);
  }

  /** Lets the n-th batch matching the predicate through, then fails everything after it. */
  static Rule crashAfterNth(Predicate<Batch> after, int n) {
    return new Rule() {
      int seen;
      boolean dead;

      @Override
      public Decision decide(Batch b) {
        if (dead) {
          return Decision.FAIL;
        }
        if (after.test(b) && ++seen == n) {
          dead = true;
        }
        return Decision.PASS;
      }
    };
  }
}
