package com.scalar.verify.oracle;

import static com.scalar.verify.oracle.Faults.crashAfter;
import static com.scalar.verify.oracle.Faults.crashAfterNth;
import static com.scalar.verify.oracle.Faults.crashAt;

import com.scalar.db.api.DistributedTransaction;
import com.scalar.db.api.Get;
import com.scalar.db.api.Isolation;
import java.util.ArrayList;
import java.util.List;

/**
 * The case matrix. Every case seeds its own slots, runs some normally committed transfers as
 * background, leaves one or more transactions at a crash point using only ScalarDB's API (plus the
 * crash switch of the faulty storage adapter), and takes its backup.
 *
 * <p>Crash points (the "crash_point" of truth.json), as seen in the data part of the backup:
 * prepared_some, prepared_all (no Coordinator row), state_committed_no_records, committed_some
 * (COMMITTED row), aborted_state_written, aborted_prepared_some, aborted_rolled_back_some (ABORTED
 * row), committed, aborted.
 */
final class Scenarios {
  static final String DEFAULT_NS = "coordinator";
  static final String CUSTOM_NS = "custom_coord";

  private Scenarios() {}

  private static CaseSpec single(String id, CaseSpec.Scenario s) {
    return new CaseSpec(id, false, DEFAULT_NS, "single_instant", s);
  }

  static List<CaseSpec> all() {
    List<CaseSpec> out = new ArrayList<>();

    // ---- single-instant backups, group commit off ----
    out.add(single("committed", ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      ctx.transfer(s[0]);
      ctx.transfer(s[1]);
      ctx.twoPc(s[2], "committed").prepareAll().validateAll().commitCoordinator().commitParticipant();
      ctx.cut();
    }));
    out.add(single("tpc-prepared-some", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.twoPc(s[1], "prepared_some").prepareCoordinator();
      ctx.cut();
    }));
    out.add(single("tpc-prepared-all", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.twoPc(s[1], "prepared_all").prepareAll();
      ctx.cut();
    }));
    out.add(single("tpc-state-committed-no-records", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.twoPc(s[1], "state_committed_no_records")
          .prepareAll()
          .validateAll()
          .commitCoordinatorUnder(crashAfter(b -> b.isCoordinatorState(3)));
      ctx.cut();
    }));
    out.add(single("tpc-committed-some", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.twoPc(s[1], "committed_some").prepareAll().validateAll().commitCoordinator();
      ctx.cut();
    }));
    out.add(single("tpc-aborted-prepared-some", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.twoPc(s[1], "aborted_prepared_some").prepareCoordinator().abortById();
      ctx.cut();
    }));
    out.add(single("tpc-aborted-prepared-all", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.twoPc(s[1], "aborted_state_written").prepareAll().abortById();
      ctx.cut();
    }));
    out.add(single("tpc-aborted-rolled-back-some", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.twoPc(s[1], "aborted_rolled_back_some").prepareAll().rollbackCoordinator();
      ctx.cut();
    }));
    out.add(single("opc-prepared-all", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.transferWithCrash(s[1], crashAt(b -> b.isCoordinatorState(3)), "prepared_all");
      ctx.cut();
    }));
    out.add(single("opc-state-committed-no-records", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.transferWithCrash(s[1], crashAfter(b -> b.isCoordinatorState(3)), "state_committed_no_records");
      ctx.cut();
    }));
    out.add(single("opc-prepared-some", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.transferWithCrash(s[1], crashAfter(Faults.Batch::isPrepare), "prepared_some");
      ctx.cut();
    }));
    out.add(single("opc-committed-some", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.transferWithCrash(s[1], crashAfter(Faults.Batch::isRecordCommit), "committed_some");
      ctx.cut();
    }));
    out.add(single("opc-aborted-validation", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      validationAbort(ctx, s[1], s[0]);
      ctx.cut();
    }));
    return out;
  }

  /**
   * A SERIALIZABLE transfer of slot s that also read slot `other`'s bank_a account, which another
   * transaction changes before it commits: validation fails, ScalarDB writes ABORTED, and the crash
   * rule lets that row through and kills the rollback of the records.
   */
  static void validationAbort(CaseContext ctx, int s, int other) throws Exception {
    DistributedTransaction tx = ctx.serializable().start(Isolation.SERIALIZABLE);
    tx.get(
        Get.newBuilder()
            .namespace(Bank.NS_A)
            .table(Bank.ACCOUNTS)
            .partitionKey(Bank.accountAKey(other))
            .clusteringKey(Bank.accountACk(other))
            .build());
    int step = ctx.nextStep(s);
    int writes = Bank.debitA(tx, s, 10L * step, step) + Bank.creditB(tx, s, 10L * step, step);
    ctx.transfer(other);
    String outcome = CaseContext.commitUnder(tx, crashAfter(b -> b.isCoordinatorState(4)));
    ctx.register(
        tx.getId(),
        "aborted_state_written",
        writes,
        "SERIALIZABLE transfer invalidated by a concurrent commit; commit(): " + outcome);
  }
}
