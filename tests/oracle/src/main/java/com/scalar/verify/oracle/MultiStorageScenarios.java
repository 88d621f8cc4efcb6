package com.scalar.verify.oracle;

import com.scalar.db.api.TwoPhaseCommitTransaction;
import com.scalar.db.api.TwoPhaseCommitTransactionManager;
import com.scalar.db.config.DatabaseConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.TreeMap;

/**
 * The multi-storage cases ({@link MultiStorageBackend}: Coordinator and bank_a in PostgreSQL,
 * bank_b in the other storage, MariaDB, SQLite or Cassandra; the case ids name it,
 * {@code pg-mariadb-*}, {@code pg-sqlite-*} or {@code pg-cassandra-*}). A transfer debits bank_a
 * and credits bank_b, so every transfer spans both databases. Cuts are per storage: {@link #quiet} dumps both while the workload is idle;
 * {@link #tornCut} dumps PostgreSQL, lets transactions run, then dumps the other.
 *
 * <p>{@code pg-mariadb-coord-mariadb-*}, {@code pg-sqlite-coord-sqlite-*} and
 * {@code pg-cassandra-coord-cassandra-*} keep the Coordinator table in the other storage instead
 * ({@link MultiStorageBackend#COORDINATOR_ON_OTHER}): bank_a's pending records in PostgreSQL
 * are then resolved by the Coordinator in the other database.
 */
final class MultiStorageScenarios {
  private MultiStorageScenarios() {}

  /**
   * Committed two-phase transfers between the two services' dumps in the torn two-service cases:
   * a number of transactions, not a time, so that a loaded machine tears as many as an idle one.
   */
  static final int TORN_SERVICE_TRANSFERS = 12;

  /** The cases of the deployment whose other storage is of {@code engine} (mariadb, sqlite or cassandra). */
  static List<CaseSpec> all(String version, String engine) {
    String pre = "pg-" + engine + "-";
    List<CaseSpec> out = new ArrayList<>();
    // Both storages dumped in one quiet moment: nothing pending.
    out.add(new CaseSpec(pre + "quiet", false, Scenarios.DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.transfer(s[1]);
      ctx.transfer(s[0]);
      quiet(ctx);
    }));
    // Both dumped in one quiet moment after a transfer crashed between the two storages'
    // prepares (each storage is its own mutate): pending in one database only, rolled back.
    out.add(new CaseSpec(pre + "quiet-prepared-some", false, Scenarios.DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.transferWithCrash(s[1], Faults.crashAfter(Faults.Batch::isPrepare), "prepared_some");
      quiet(ctx);
    }));
    // PostgreSQL dumped, then a transfer commits and a two-phase transfer prepares, then the other
    // dumped: the committed transfer's credit is in the backup, its debit and Coordinator row are
    // not (money is not conserved, and no record shows it); the prepared one is pending in the other
    // only and rolls back.
    out.add(new CaseSpec(pre + "torn", false, Scenarios.DEFAULT_NS, "torn",
        ctx -> tornTransfers(ctx, true)));
    // The other storage dumped first: the transfer committed in between has its debit, its COMMITTED
    // Coordinator row and no pending record in the backup, only its credit is missing (a tear
    // no record's metadata shows); the two-phase transfer is pending in PostgreSQL only.
    out.add(new CaseSpec(pre + "torn-" + engine + "-first", false, Scenarios.DEFAULT_NS, "torn",
        ctx -> tornTransfers(ctx, false)));
    // Two services, each with its own ScalarDB config and a two-phase manager, sharing the
    // Coordinator in PostgreSQL: service 1 (bank_a) is single-storage PostgreSQL; service 2
    // (bank_b) is multi-storage, default storage the other, the Coordinator namespace mapped to
    // the PostgreSQL storage (a participant reads the Coordinator for lazy recovery, so it
    // must reach the same table). Both dumped in one quiet moment.
    out.add(new CaseSpec(pre + "2pc-services-committed-some", false, Scenarios.DEFAULT_NS, "single_instant",
        ctx -> twoServices(ctx, true)));
    out.add(new CaseSpec(pre + "2pc-services-prepared-some", false, Scenarios.DEFAULT_NS, "single_instant",
        ctx -> twoServices(ctx, false)));
    // The same two services, torn: one database dumped, TORN_SERVICE_TRANSFERS two-phase
    // transfers committed through both services, then the other dumped. No record is pending,
    // yet every transfer in between is half in the backup (money is not conserved).
    // MariaDB first: each has its debit and COMMITTED Coordinator row (PostgreSQL) and no credit.
    out.add(new CaseSpec(pre + "2pc-services-torn-" + engine + "-first", false, Scenarios.DEFAULT_NS, "torn",
        ctx -> twoServicesTorn(ctx, false)));
    // PostgreSQL first: each has its credit in bank_b, COMMITTED, with no Coordinator row.
    out.add(new CaseSpec(pre + "2pc-services-torn-pg-first", false, Scenarios.DEFAULT_NS, "torn",
        ctx -> twoServicesTorn(ctx, true)));
    // The Coordinator beside bank_b: in MariaDB, in SQLite (its table in the SQLite file with
    // bank_b's), or in Cassandra (its keyspace in the snapshot with bank_b's).
    out.addAll(coordinatorOnOther(pre, engine));
    if (engine.equals("cassandra")) {
      // Rolled forward from PostgreSQL's Coordinator: a transfer whose COMMITTED row reached
      // PostgreSQL and whose records stayed PREPARED in both databases (bank_b's in the
      // Cassandra snapshot), then both cut in one quiet moment.
      out.add(new CaseSpec(pre + "quiet-committed-no-records", false, Scenarios.DEFAULT_NS, "single_instant",
          ctx -> {
            int[] s = ctx.seed(2);
            ctx.transfer(s[0]);
            ctx.transferWithCrash(s[1], Faults.crashAfter(b -> b.isCoordinatorState(3)),
                "state_committed_no_records");
            quiet(ctx);
          }));
      // Pending in Cassandra only, both ways: a two-phase transfer (coordinator debits bank_a,
      // participant credits bank_b) prepared and validated on both, committed by the
      // coordinator only (COMMITTED in PostgreSQL, bank_b left PREPARED in Cassandra:
      // committed_some, rolled forward); one prepared by the participant only (bank_b PREPARED
      // in Cassandra, no Coordinator row: prepared_some, rolled back).
      out.add(new CaseSpec(pre + "quiet-prepared-in-cassandra", false, Scenarios.DEFAULT_NS, "single_instant",
          ctx -> {
            int[] s = ctx.seed(3);
            ctx.transfer(s[0]);
            ctx.twoPc(s[1], "committed_some").prepareAll().validateAll().commitCoordinator();
            ctx.twoPc(s[2], "prepared_some").prepareParticipant();
            quiet(ctx);
          }));
    }
    return out;
  }

  /**
   * The Coordinator namespace mapped to the other storage (MariaDB, SQLite or Cassandra), bank_a in
   * PostgreSQL, bank_b beside the Coordinator: PostgreSQL's pending records are resolved by the
   * other database's Coordinator rows.
   */
  private static List<CaseSpec> coordinatorOnOther(String pre, String engine) {
    String co = pre + MultiStorageBackend.COORDINATOR_ON_OTHER + engine + "-";
    List<CaseSpec> out = new ArrayList<>();
    // Every crash point of Scenarios.mixed in one quiet cut of both storages (intact).
    out.add(new CaseSpec(co + "mixed", false, Scenarios.DEFAULT_NS, "single_instant", ctx -> {
      Scenarios.mixedWorkload(ctx);
      quiet(ctx);
    }));
    // Rolled forward from MariaDB's Coordinator: a two-phase transfer coordinated on the bank_b
    // side (MariaDB, beside the Coordinator) commits; its participant's bank_a records stay
    // PREPARED in PostgreSQL (committed_some); a one-phase transfer whose COMMITTED row reached
    // MariaDB and whose records (both databases) stayed PREPARED (state_committed_no_records).
    out.add(new CaseSpec(co + "committed-some", false, Scenarios.DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      CreditFirst t = new CreditFirst(ctx, s[1], "committed_some");
      t.c.prepare();
      t.q.prepare();
      t.c.validate();
      t.q.validate();
      t.c.commit();
      t.tx.crashPointNote(
          "prepare() and validate() both, coordinator (bank_b) commit(); the participant (bank_a) never commits");
      ctx.transferWithCrash(s[2], Faults.crashAfter(b -> b.isCoordinatorState(3)), "state_committed_no_records");
      quiet(ctx);
    }));
    // Rolled back from MariaDB's Coordinator: the bank_b-side coordinator prepares both and
    // calls rollback() (ABORTED in MariaDB, its own records rolled back, bank_a left PREPARED:
    // aborted_rolled_back_some); a bank_a-side two-phase transfer prepared on its coordinator
    // only and aborted by id (ABORTED in MariaDB, bank_a PREPARED: aborted_prepared_some); one
    // prepared on the bank_a side with no row at all (prepared_some, aborted by recovery).
    out.add(new CaseSpec(co + "rolled-back", false, Scenarios.DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(4);
      ctx.transfer(s[0]);
      CreditFirst t = new CreditFirst(ctx, s[1], "aborted_rolled_back_some");
      t.c.prepare();
      t.q.prepare();
      t.c.rollback();
      t.tx.crashPointNote("prepare() both, coordinator (bank_b) rollback(); the participant (bank_a) stays PREPARED");
      ctx.twoPc(s[2], "aborted_prepared_some").prepareCoordinator().abortById();
      ctx.twoPc(s[3], "prepared_some").prepareCoordinator();
      quiet(ctx);
    }));
    // Ids the application gives that differ only in case (Scenarios' ids-differing-in-case): the
    // PREPARED records in PostgreSQL are resolved by the Coordinator's storage, whose
    // comparison (MariaDB's collation) finds the upper-case id's COMMITTED row.
    out.add(new CaseSpec(co + "ids-differing-in-case", false, Scenarios.DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(2);
      String id = java.util.UUID.randomUUID().toString();
      ctx.transfer(s[0], id.toUpperCase(java.util.Locale.ROOT));
      ctx.transferWithCrash(s[1], id, Faults.crashAt(b -> b.isCoordinatorState(3)), "prepared_all");
      quiet(ctx);
    }));
    // PostgreSQL dumped, a transfer commits and a two-phase transfer prepares, MariaDB (with the
    // Coordinator) dumped: the committed transfer's credit and COMMITTED row are in the backup,
    // its debit is not, and no record is pending for it.
    out.add(new CaseSpec(co + "torn", false, Scenarios.DEFAULT_NS, "torn",
        ctx -> tornTransfers(ctx, true)));
    // The reverse order: MariaDB (bank_b and the Coordinator) dumped first; the committed
    // transfer's debit is in the backup, COMMITTED, with no Coordinator row, its credit is not;
    // the two-phase transfer is pending in PostgreSQL only, with no row (rolled back).
    out.add(new CaseSpec(co + "torn-" + engine + "-first", false, Scenarios.DEFAULT_NS, "torn",
        ctx -> tornTransfers(ctx, false)));
    return out;
  }

  /**
   * A two-phase transfer coordinated on the bank_b side: the coordinator (the case's coordinator
   * manager) credits bank_b, the participant (joined by id) debits bank_a.
   */
  private static final class CreditFirst {
    final TwoPhaseCommitTransaction c;
    final TwoPhaseCommitTransaction q;
    final CaseContext.Tx tx;

    CreditFirst(CaseContext ctx, int s, String crashPoint) throws Exception {
      c = Compat.begin(ctx.coordinatorSide());
      q = ctx.participantSide().join(c.getId());
      int step = ctx.nextStep(s);
      int writes = Bank.creditB(Crud.of(c), s, 10L * step, step) + Bank.debitA(Crud.of(q), s, 10L * step, step);
      tx = ctx.register(c.getId(), crashPoint, writes,
          "two-phase transfer, coordinator credits bank_b, participant debits bank_a");
    }
  }

  /** The two services of the two-service cases (see {@link #twoServices}). */
  private record Services(TwoPhaseCommitTransactionManager one, TwoPhaseCommitTransactionManager two)
      implements AutoCloseable {
    @Override
    public void close() {
      one.close();
      two.close();
    }
  }

  private static Services services(CaseContext ctx) {
    String p = "scalar.db.multi_storage.";
    Properties pgOnly = new Properties();
    for (String k : List.of(DatabaseConfig.CONTACT_POINTS, DatabaseConfig.USERNAME, DatabaseConfig.PASSWORD)) {
      pgOnly.setProperty(k, ctx.live.getProperty(p + "storages." + MultiStorageBackend.PG + "."
          + k.substring("scalar.db.".length())));
    }
    Properties service1 = ctx.scalarProps(pgOnly, true);
    service1.setProperty(FaultyStorage.INNER, "jdbc");
    Properties service2 = ctx.scalarProps(ctx.live, true);
    service2.setProperty(p + "namespace_mapping",
        ctx.namespaces.coordinator() + ":" + MultiStorageBackend.PG + "," + Bank.NS_B + ":" + backend(ctx).other.name());
    service2.setProperty(p + "default_storage", backend(ctx).other.name());
    TwoPhaseCommitTransactionManager one = Compat.twoPhaseManager(service1);
    try {
      return new Services(one, Compat.twoPhaseManager(service2));
    } catch (RuntimeException e) {
      one.close();
      throw e;
    }
  }

  /** A two-phase transfer across the two services, prepared, validated and committed on both. */
  private static void committedAcrossServices(CaseContext ctx, Services sv, int slot) throws Exception {
    TwoPhaseCommitTransaction c = Compat.begin(sv.one());
    TwoPhaseCommitTransaction q = sv.two().join(c.getId());
    int step = ctx.nextStep(slot);
    int writes = Bank.debitA(Crud.of(c), slot, 10L * step, step) + Bank.creditB(Crud.of(q), slot, 10L * step, step);
    c.prepare();
    q.prepare();
    c.validate();
    q.validate();
    c.commit();
    q.commit();
    ctx.register(c.getId(), "committed", writes,
        "two-phase transfer across the services, committed on both (service 1 first)");
  }

  /**
   * Two-phase transfers across the two services, then one database dumped ({@code pgFirst}:
   * PostgreSQL, with the Coordinator and bank_a), {@link #TORN_SERVICE_TRANSFERS} more committed,
   * then the other dumped.
   */
  private static void twoServicesTorn(CaseContext ctx, boolean pgFirst) throws Exception {
    int[] s = ctx.seed(4);
    try (Services sv = services(ctx)) {
      for (int slot : s) {
        committedAcrossServices(ctx, sv, slot);
      }
      tornCut(ctx, pgFirst, () -> {
        for (int i = 0; i < TORN_SERVICE_TRANSFERS; i++) {
          committedAcrossServices(ctx, sv, s[i % s.length]);
        }
      });
    }
  }

  /**
   * A committed transfer, then a two-phase transfer across the two services: both prepared,
   * validated and service 1 committed (the Coordinator row COMMITTED, bank_a committed, bank_b
   * left PREPARED: committed_some), or only service 1 prepared (prepared_some).
   */
  private static void twoServices(CaseContext ctx, boolean commitFirst) throws Exception {
    int[] s = ctx.seed(2);
    ctx.transfer(s[0]);
    try (Services sv = services(ctx)) {
      TwoPhaseCommitTransaction c = Compat.begin(sv.one());
      TwoPhaseCommitTransaction q = sv.two().join(c.getId());
      int step = ctx.nextStep(s[1]);
      int writes = Bank.debitA(Crud.of(c), s[1], 10L * step, step) + Bank.creditB(Crud.of(q), s[1], 10L * step, step);
      CaseContext.Tx tx = ctx.register(c.getId(), commitFirst ? "committed_some" : "prepared_some", writes,
          "two-phase transfer, service 1 (PostgreSQL config) coordinating, service 2 (multi-storage config) joined");
      c.prepare();
      tx.crashPointNote("service1.prepare()");
      if (commitFirst) {
        q.prepare();
        c.validate();
        q.validate();
        c.commit();
        tx.crashPointNote("service2.prepare(), validate() both, service1.commit(); service 2 never commits");
      }
      quiet(ctx);
    }
  }

  /** Work run between the two storages' dumps. */
  @FunctionalInterface
  interface Between {
    void run() throws Exception;
  }

  private static MultiStorageBackend backend(CaseContext ctx) {
    return (MultiStorageBackend) ctx.backend;
  }

  /** Both storages dumped with nothing running in between: one instant. */
  static void quiet(CaseContext ctx) throws Exception {
    MultiStorageBackend b = backend(ctx);
    ctx.dataCut = ctx.log.snapshot();
    ctx.coordinatorCut = ctx.dataCut;
    Path pg = b.dumpPg(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".pg");
    Path other = b.dumpOther(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".other", ctx.caseId());
    ctx.parts.clear();
    ctx.parts.add(pg);
    ctx.parts.add(other);
    facts(ctx, List.of(), true);
  }

  /**
   * The torn cases' workload: a committed transfer, then one storage dumped ({@code pgFirst}:
   * PostgreSQL), a transfer committed and a two-phase transfer prepared, then the other dumped.
   */
  static void tornTransfers(CaseContext ctx, boolean pgFirst) throws Exception {
    int[] s = ctx.seed(3);
    ctx.transfer(s[0]);
    tornCut(ctx, pgFirst, () -> {
      ctx.transfer(s[1]);
      ctx.twoPc(s[2], "prepared_some").prepareAll();
    });
  }

  /**
   * One storage dumped ({@code pgFirst}: PostgreSQL, with the Coordinator and bank_a; else
   * the other storage, with bank_b), then {@code between}, then the other. The backup's Coordinator is
   * the snapshot of the storage that holds it (PostgreSQL's, or the other's for a
   * {@code coord-*} case); its data is each namespace from its own storage's snapshot (with the
   * later snapshot's Coordinator: where each transaction really was by then).
   */
  static void tornCut(CaseContext ctx, boolean pgFirst, Between between) throws Exception {
    MultiStorageBackend b = backend(ctx);
    WriteLog.Snapshot first = ctx.log.snapshot();
    Path firstDump = pgFirst
        ? b.dumpPg(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".pg")
        : b.dumpOther(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".other", ctx.caseId());
    between.run();
    WriteLog.Snapshot second = ctx.log.snapshot();
    Path secondDump = pgFirst
        ? b.dumpOther(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".other", ctx.caseId())
        : b.dumpPg(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".pg");
    WriteLog.Snapshot pgSnap = pgFirst ? first : second;
    WriteLog.Snapshot otherSnap = pgFirst ? second : first;
    Map<WriteLog.RecordKey, WriteLog.RecordMeta> records = new TreeMap<>();
    pgSnap.records().forEach((k, v) -> {
      if (!k.table().startsWith(Bank.NS_B + ".")) {
        records.put(k, v);
      }
    });
    otherSnap.records().forEach((k, v) -> {
      if (k.table().startsWith(Bank.NS_B + ".")) {
        records.put(k, v);
      }
    });
    ctx.coordinatorCut = b.coordinatorOnOther(ctx.caseName) ? otherSnap : pgSnap;
    ctx.dataCut = new WriteLog.Snapshot(second.seq(), records, second.coordinator());
    ctx.parts.clear();
    ctx.parts.add(pgFirst ? firstDump : secondDump);
    ctx.parts.add(pgFirst ? secondDump : firstDump);
    // Torn: every transaction that wrote between the two dumps (its Coordinator row changed, or
    // a record carries its id in the later snapshot that did not, in that state, in the
    // earlier one). Its writes reached the later dump only.
    List<String> torn = new ArrayList<>();
    boolean conserved = true;
    for (CaseContext.Tx tx : ctx.txs) {
      if (wroteBetween(first, second, tx.id)) {
        torn.add(tx.id);
        // A transfer writes both storages, one of which was dumped before it: committed by the
        // later dump, the half in the later dump stays after recovery, the other half is missing.
        conserved &= second.stateOf(tx.id).map(r -> r.state() != 3).orElse(true);
      }
    }
    facts(ctx, torn, conserved);
  }

  /** Whether the write log shows the transaction writing between two snapshots. */
  private static boolean wroteBetween(WriteLog.Snapshot first, WriteLog.Snapshot second, String txId) {
    if (!Objects.equals(first.stateOf(txId), second.stateOf(txId))) {
      return true;
    }
    return second.records().entrySet().stream()
        .anyMatch(e -> txId.equals(e.getValue().txId()) && !e.getValue().equals(first.records().get(e.getKey())));
  }

  private static void facts(CaseContext ctx, List<String> torn, boolean conserved) {
    Map<String, Object> f = new LinkedHashMap<>();
    f.put("torn_transactions", torn);
    f.put("money_conserved", conserved);
    backend(ctx).cutFacts.put(ctx.caseName, f);
  }
}
