package com.scalar.verify.oracle;

import static com.scalar.verify.oracle.Faults.crashAfter;
import static com.scalar.verify.oracle.Faults.crashAfterNth;
import static com.scalar.verify.oracle.Faults.crashAt;
import static com.scalar.verify.oracle.Faults.crashAtNth;

import com.scalar.db.api.DistributedTransaction;
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

  private static CaseSpec torn(String id, String ns, CaseSpec.Scenario s) {
    return new CaseSpec(id, false, ns, "torn", s);
  }

  private static CaseSpec group(String id, String ns, String cut, CaseSpec.Scenario s) {
    return new CaseSpec(id, true, ns, cut, s);
  }

  /**
   * ScalarDB 3.16 made the JDBC adapter prepare and commit all of a transaction's records in one
   * database transaction (MutationsGrouper, atomicity unit STORAGE); up to 3.15 each partition was
   * its own storage mutation, so a one-phase commit can crash between partitions.
   */
  static boolean before316(String version) {
    String[] v = version.split("\\.");
    int major = Integer.parseInt(v[0]);
    int minor = Integer.parseInt(v[1]);
    return major < 3 || (major == 3 && minor < 16);
  }

  /**
   * Whether one transaction's records on one storage are written in several storage mutations, so
   * a one-phase commit can crash between partitions: always on Cassandra (ScalarDB's Cassandra
   * adapter declares the atomicity unit PARTITION: a mutation is a single-partition LWT batch), and
   * on JDBC before 3.16.
   */
  static boolean partitionAtomicity(String version, String backend) {
    return backend.equals("cassandra") || before316(version);
  }

  /** Cases whose id starts with this run with 3.19's write-set logging on (CaseContext). */
  static final String WRITE_SETS = "ws-";

  static boolean logsWriteSets(CaseSpec spec) {
    return spec.id().startsWith(WRITE_SETS);
  }

  /** Write-set logging (tx_write_set, finishTransaction) exists from ScalarDB 3.19. */
  static boolean hasWriteSets(String version) {
    String[] v = version.split("\\.");
    int major = Integer.parseInt(v[0]);
    int minor = Integer.parseInt(v[1]);
    return major > 3 || (major == 3 && minor >= 19);
  }

  static List<CaseSpec> all(String version, String backend) {
    String otherEngine = MultiStorageBackend.otherEngine(backend);
    if (otherEngine != null) {
      return MultiStorageScenarios.all(version, otherEngine);
    }
    List<CaseSpec> out = new ArrayList<>();

    // ---- a table imported from outside ScalarDB: rows with NULL metadata ----
    // Not on SQLite (ScalarDB refuses importTable there) nor on Cassandra (the scenario creates
    // the plain table through JDBC, and ScalarDB's Cassandra admin does not import tables).
    if (!backend.equals("sqlite") && !backend.equals("cassandra") && Compat.IMPORT_TABLE) {
      out.add(single("import-prepared-all", ctx -> {
        int[] s = ctx.seed(1);
        ctx.createAndImportLegacyTable();
        legacy(ctx, s[0], crashAt(b -> b.isCoordinatorState(3)), "prepared_all");
        ctx.cut();
      }));
      out.add(single("import-state-committed-no-records", ctx -> {
        int[] s = ctx.seed(1);
        ctx.createAndImportLegacyTable();
        legacy(ctx, s[0], crashAfter(b -> b.isCoordinatorState(3)), "state_committed_no_records");
        ctx.cut();
      }));
    }

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
      tpcStateCommittedNoRecords(ctx, s[1]);
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
    // ---- ids the application gives that differ only in case ----
    // ScalarDB finds a transaction's Coordinator row with a Get by tx_id, so the storage's own
    // comparison decides which row: the collation of MariaDB's VARCHAR folds case, and the
    // PREPARED records of the second transaction find the first one's COMMITTED row. The
    // other storages compare bytes (Cassandra too; left out, its lanes are the longest).
    if (!backend.equals("cassandra")) {
      out.add(single("ids-differing-in-case", ctx -> {
        int[] s = ctx.seed(2);
        String id = java.util.UUID.randomUUID().toString();
        ctx.transfer(s[0], id.toUpperCase(java.util.Locale.ROOT));
        ctx.transferWithCrash(s[1], id, crashAt(b -> b.isCoordinatorState(3)), "prepared_all");
        ctx.cut();
      }));
    }
    out.add(single("opc-state-committed-no-records", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.transferWithCrash(s[1], crashAfter(b -> b.isCoordinatorState(3)), "state_committed_no_records");
      ctx.cut();
    }));
    if (partitionAtomicity(version, backend)) {
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
      out.add(single("opc-aborted-prepared-some", ctx -> {
        int[] s = ctx.seed(2);
        ctx.transfer(s[0]);
        // The second partition's prepare fails: ScalarDB writes ABORTED, then its rollback of the
        // first partition dies with the process.
        ctx.transferWithCrash(s[1], abortAfterPartialPrepare(), "aborted_prepared_some");
        ctx.cut();
      }));
    }
    out.add(single("opc-aborted-validation", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      validationAbort(ctx, s[1], s[0]);
      ctx.cut();
    }));
    // 3.4 refuses deletes of absent keys (Versions.absentKeyDeletes).
    if (Versions.absentKeyDeletes(version)) {
      out.add(single("tpc-ghost-deletes-prepared-all", ctx -> {
        int[] s = ctx.seed(2);
        ctx.transfer(s[0]);
        ctx.twoPcWithGhosts(s[1], "prepared_all").prepareAll();
        ctx.cut();
      }));
      out.add(single("tpc-ghost-deletes-state-committed-no-records", ctx -> {
        int[] s = ctx.seed(2);
        ctx.transfer(s[0]);
        ctx.twoPcWithGhosts(s[1], "state_committed_no_records")
            .prepareAll()
            .validateAll()
            .commitCoordinatorUnder(crashAfter(b -> b.isCoordinatorState(3)));
        ctx.cut();
      }));
      out.add(single("tpc-ghost-deletes-committed-some", ctx -> {
        int[] s = ctx.seed(2);
        ctx.transfer(s[0]);
        ctx.twoPcWithGhosts(s[1], "committed_some").prepareAll().validateAll().commitCoordinator();
        ctx.cut();
      }));
    }
    if (before316(version)) {
      // ≤3.15 SERIALIZABLE with EXTRA_WRITE turns reads into writes: the read account is
      // re-prepared unchanged and the read of an absent key leaves a DELETED tombstone.
      out.add(single("opc-extra-write-prepared-all", ctx -> {
        int[] s = ctx.seed(3);
        ctx.transfer(s[0]);
        extraWrite(ctx, s[1], s[2], crashAt(b -> b.isCoordinatorState(3)), "prepared_all");
        ctx.cut();
      }));
      out.add(single("opc-extra-write-state-committed-no-records", ctx -> {
        int[] s = ctx.seed(3);
        ctx.transfer(s[0]);
        extraWrite(ctx, s[1], s[2], crashAfter(b -> b.isCoordinatorState(3)), "state_committed_no_records");
        ctx.cut();
      }));
    }
    // Cassandra's atomicity unit is the partition, so a transfer across tables never commits
    // in one phase there (its crash points are never reached): JDBC backends only.
    if (!before316(version) && !backend.equals("cassandra")) {
      // Intact: one-phase commit (3.16+) writes COMMITTED records with tx_prepared_at =
      // tx_committed_at and no Coordinator row, after the seed's row: not a cut.
      out.add(single("one-phase-commit-quiet", ctx -> {
        int[] s = ctx.seed(2);
        ctx.transfer(s[0]);
        ctx.onePhaseCommitTransfer(s[0]);
        ctx.onePhaseCommitTransfer(s[1]);
        ctx.cut();
      }));
    }
    out.add(single("mixed", Scenarios::mixed));
    out.add(new CaseSpec("mixed-custom-coordinator", false, CUSTOM_NS, "single_instant", Scenarios::mixed));

    // ---- torn backups: the Coordinator table and the data tables copied at different moments ----
    out.add(torn("torn-coordinator-first-committed-some", DEFAULT_NS, ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      ctx.cutCoordinator();
      ctx.transfer(s[1]);
      ctx.twoPc(s[2], "committed_some").prepareAll().validateAll().commitCoordinator();
      ctx.cutData();
    }));
    out.add(torn("torn-coordinator-first-committed-some-custom-coordinator", CUSTOM_NS, ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      ctx.twoPc(s[1], "prepared_all").prepareAll();
      ctx.cutCoordinator();
      ctx.twoPc(s[2], "committed_some").prepareAll().validateAll().commitCoordinator();
      ctx.cutData();
    }));
    out.add(torn("torn-coordinator-first-state-committed-no-records", DEFAULT_NS, ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.cutCoordinator();
      tpcStateCommittedNoRecords(ctx, s[1]);
      ctx.cutData();
    }));
    out.add(torn("torn-coordinator-first-committed", DEFAULT_NS, ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      ctx.cutCoordinator();
      ctx.transfer(s[1]);
      ctx.twoPc(s[2], "committed").prepareAll().validateAll().commitCoordinator().commitParticipant();
      ctx.cutData();
    }));
    out.add(torn("torn-coordinator-first-restores-later-commit", DEFAULT_NS, ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      ctx.cutCoordinator();
      // Committed after the Coordinator copy: its rows are missing from the backup, its records
      // are not. The next transaction prepares over them and is rolled back to them.
      ctx.transfer(s[1]);
      ctx.twoPc(s[1], "prepared_all").prepareAll();
      ctx.cutData();
    }));
    out.add(torn("torn-data-first-roll-forward", DEFAULT_NS, ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      CaseContext.TwoPc t = ctx.twoPc(s[1], "prepared_all").prepareAll();
      CaseContext.TwoPc u = ctx.twoPc(s[2], "committed_some").prepareAll().validateAll().commitCoordinator();
      ctx.cutData();
      t.validateAll().commitCoordinator().commitParticipant();
      u.commitParticipant();
      ctx.relabel(ctx.transfer(s[0]), "after_data_cut");
      ctx.cutCoordinator();
    }));
    out.add(torn("torn-data-first-roll-back", DEFAULT_NS, ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      CaseContext.TwoPc t = ctx.twoPc(s[1], "prepared_all").prepareAll();
      ctx.cutData();
      t.rollbackCoordinator().rollbackParticipant();
      ctx.cutCoordinator();
    }));

    // ---- group commit (one-phase interface only; 2PC refuses to start with it) ----
    out.add(group("gc-committed", DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(3);
      ctx.concurrentTransfers(s, null, "committed", null);
      ctx.cut();
    }));
    out.add(group("gc-state-committed-no-records", DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(4);
      ctx.transfer(s[0]);
      ctx.concurrentTransfers(
          new int[] {s[1], s[2], s[3]}, crashAfter(b -> b.isCoordinatorState(3)),
          "state_committed_no_records", null);
      ctx.cut();
    }));
    out.add(group("gc-prepared-all", DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(4);
      ctx.transfer(s[0]);
      ctx.concurrentTransfers(
          new int[] {s[1], s[2], s[3]}, crashAt(b -> b.isCoordinatorState(3)), "prepared_all", null);
      ctx.cut();
    }));
    out.add(group("gc-delayed-state-committed-no-records", DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      // s[2]'s transaction stays busy past delayed_slot_move_timeout (1.2 s): ScalarDB moves it out
      // of the group and commits it alone under its full id. The crash follows that write.
      List<String> ids =
          ctx.concurrentTransfers(
              new int[] {s[1], s[2]}, crashAfterNth(b -> b.isCoordinatorState(3), 2), null,
              new long[] {0, 2500});
      ctx.relabel(ids.get(0), "committed");
      ctx.relabel(ids.get(1), "state_committed_no_records");
      ctx.cut();
    }));
    out.add(group("gc-delayed-prepared-all-parent-committed", DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      // The group's parent row is COMMITTED but lists only the first child; the delayed second
      // transaction dies before its own full-id row: its records must be aborted, not rolled
      // forward under the parent's state.
      List<String> ids =
          ctx.concurrentTransfers(
              new int[] {s[1], s[2]}, crashAtNth(b -> b.isCoordinatorState(3), 2), null,
              new long[] {0, 2500});
      ctx.relabel(ids.get(0), "committed");
      ctx.relabel(ids.get(1), "prepared_all");
      ctx.cut();
    }));
    out.add(group("gc-aborted-validation", DEFAULT_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(2);
      ctx.transfer(s[0]);
      validationAbort(ctx, s[1], s[0]);
      ctx.cut();
    }));
    out.add(group("gc-mixed-custom-coordinator", CUSTOM_NS, "single_instant", ctx -> {
      int[] s = ctx.seed(8);
      ctx.transfer(s[0]);
      ctx.concurrentTransfers(new int[] {s[1], s[2]}, null, "committed", null);
      ctx.concurrentTransfers(
          new int[] {s[3], s[4]}, crashAfter(b -> b.isCoordinatorState(3)), "state_committed_no_records", null);
      ctx.concurrentTransfers(
          new int[] {s[5], s[6]}, crashAt(b -> b.isCoordinatorState(3)), "prepared_all", null);
      validationAbort(ctx, s[7], s[0]);
      ctx.cut();
    }));
    out.add(group("gc-torn-coordinator-first", DEFAULT_NS, "torn", ctx -> {
      int[] s = ctx.seed(4);
      ctx.transfer(s[0]);
      ctx.cutCoordinator();
      ctx.concurrentTransfers(new int[] {s[1]}, null, "committed", null);
      ctx.concurrentTransfers(
          new int[] {s[2], s[3]}, crashAfter(b -> b.isCoordinatorState(3)), "state_committed_no_records", null);
      ctx.cutData();
    }));
    // ---- 3.19 write-set logging: the Coordinator names the records each transaction wrote ----
    // JDBC backends (a mysqldump holds the write-set BLOBs raw: the differential reads it as
    // bytes).
    if (hasWriteSets(version) && !backend.equals("cassandra")) {
      out.add(single(WRITE_SETS + "committed", ctx -> {
        int[] s = ctx.seed(2);
        ctx.transfer(s[0]);
        ctx.transfer(s[1]);
        ctx.cut();
      }));
      // The data copied, then a transfer commits, then the Coordinator copied: the backup holds
      // the transfer's COMMITTED row and write set, and the older versions of its records.
      out.add(torn(WRITE_SETS + "torn-data-first-missing-write", DEFAULT_NS, ctx -> {
        int[] s = ctx.seed(2);
        ctx.transfer(s[0]);
        ctx.cutData();
        ctx.relabel(ctx.transfer(s[1]), "after_data_cut");
        ctx.cutCoordinator();
      }));
      // finishTransaction rolls the write set forward (already committed) and deletes the row.
      out.add(single(WRITE_SETS + "finish-transaction", ctx -> {
        int[] s = ctx.seed(2);
        ctx.transfer(s[0]);
        String id = ctx.transfer(s[1]);
        ctx.finishTransaction(id);
        ctx.cut();
      }));
    }
    // ---- a cut per namespace under a live transfer workload (issue 13 "Expose") ----
    // SQLite, PostgreSQL and MariaDB (Backend.dumpSchemas: one mysqldump per part, joined as a
    // user joins per-database dumps; no dump date, so no part records its instant). One bank
    // copied, a gap of committed transfers, then the other bank, the Coordinator and the
    // metadata: no record is pending, yet every transfer between the copies is half in the
    // backup.
    //
    // One thread commits about 20 transfers a second on SQLite (bank_a.audit and
    // bank_b.transfers gain a row each), 100+ on PostgreSQL. table-copied-early needs the
    // chance of no write in the lag at the table's rate below 1e-6 (about 14 expected writes),
    // measured in a rate window at least three lags long: a 400 ms gap is below that on SQLite
    // (lag 0.43 s, about 5 expected writes: the tool said consistent with 11 transfers torn),
    // so SQLite runs a 950 ms gap after a warm-up that fills the 4 s window.
    //
    // The gap is at least that long and at least GAP_TRANSFERS transfers: a loaded machine
    // (CI) commits fewer in the same milliseconds, 8 to 10 where 60 are usual, and
    // table-copied-early judges those by transactions (the trailing-run test: a table every
    // transfer writes that missed the last commits), not only by a rate.
    //
    // Cassandra: each part is a snapshot of its keyspaces (`nodetool snapshot -t TAG KS...` over
    // JMX, CassandraBackend.dumpSchemas; every keyspace under the case's one tag), the form a
    // user's keyspace-by-keyspace snapshots take; only on a node the oracle started (Main
    // leaves these cases out for a node given with --cassandra). One thread commits a few
    // transfers a second there (every write a Paxos round), so the gap is mostly its
    // GAP_TRANSFERS.
    if (backend.equals("sqlite") || backend.equals("postgres") || backend.equals("mariadb")
        || backend.equals("cassandra")) {
      long warm = switch (backend) {
        case "sqlite" -> 4500;
        case "cassandra" -> 5000;
        default -> 2500;
      };
      long gap = switch (backend) {
        case "sqlite" -> 950;
        case "cassandra" -> 1000;
        default -> 400;
      };
      out.add(new CaseSpec("torn-namespaces-live-a-first", false, DEFAULT_NS, "torn_namespaces",
          ctx -> liveNamespaces(ctx, Bank.NS_A, Bank.NS_B, warm, gap)));
      out.add(new CaseSpec("torn-namespaces-live-b-first", false, DEFAULT_NS, "torn_namespaces",
          ctx -> liveNamespaces(ctx, Bank.NS_B, Bank.NS_A, warm, gap)));
      // Intact: the same workload stopped, then the same per-namespace copies with no write
      // between them. Must raise no cut finding.
      out.add(new CaseSpec("namespaces-live-quiet", false, DEFAULT_NS, "per_namespace_quiet",
          ctx -> liveNamespaces(ctx, Bank.NS_A, Bank.NS_B, warm, 0)));
    }

    // Before 3.13 the group-commit setting is ignored: no group, nothing to check.
    out.removeIf(c -> c.groupCommit() && !Versions.groupCommit(version));
    return out;
  }

  /**
   * Committed transfers for {@code warmMs}, {@code first} copied, {@code gapMs} more of them
   * (none when 0), then {@code second}, the Coordinator and the metadata copied.
   */
  /** The fewest transfers committed between the two copies of a torn per-namespace cut. */
  static final int GAP_TRANSFERS = 12;

  static void liveNamespaces(CaseContext ctx, String first, String second, long warmMs, long gapMs)
      throws Exception {
    int[] s = ctx.seed(8);
    int warm = ctx.liveTransfers(s, warmMs);
    ctx.cutSchemas(first);
    int gap = gapMs > 0 ? ctx.liveTransfers(s, gapMs, GAP_TRANSFERS) : 0;
    ctx.cutSchemas(second, ctx.namespaces.coordinator(), ctx.namespaces.metadata());
    Main.log("%s: %d transfers before the first copy, %d between the copies", ctx.caseName, warm, gap);
  }

  /** A one-phase transaction on the imported table plus the slot's bank_a half, under a crash rule. */
  static void legacy(CaseContext ctx, int s, Faults.Rule rule, String crashPoint) throws Exception {
    DistributedTransaction tx = Compat.begin(ctx.tm);
    int step = ctx.nextStep(s);
    int writes = Bank.legacyWork(Crud.of(tx), s) + Bank.debitA(Crud.of(tx), s, 10L * step, step);
    String outcome = CaseContext.commitUnder(tx, rule);
    ctx.register(tx.getId(), crashPoint, writes,
        "one-phase transaction on imported rows with NULL metadata; commit(): " + outcome);
  }

  /**
   * ≤3.15: a SERIALIZABLE one-phase transfer of slot s under the EXTRA_WRITE strategy that also
   * read slot `other`'s bank_b account and an absent bank_a account, committed under a crash rule.
   */
  static void extraWrite(CaseContext ctx, int s, int other, Faults.Rule rule, String crashPoint)
      throws Exception {
    DistributedTransaction tx = ctx.extraWrite().start();
    tx.get(
        Records.get(Bank.NS_B, Bank.ACCOUNTS, Bank.accountBKey(other), Bank.accountBCk(other)));
    tx.get(
        Records.get(Bank.NS_A, Bank.ACCOUNTS, Bank.accountAKey(9000 + s), Bank.accountACk(s)));
    int step = ctx.nextStep(s);
    int writes = Bank.debitA(Crud.of(tx), s, 10L * step, step) + Bank.creditB(Crud.of(tx), s, 10L * step, step) + 2;
    String outcome = CaseContext.commitUnder(tx, rule);
    ctx.register(tx.getId(), crashPoint, writes,
        "SERIALIZABLE/EXTRA_WRITE transfer that read one more account and one absent key; commit(): " + outcome);
  }

  /**
   * Both sides prepared and validated; the coordinator side's commit() writes the COMMITTED state
   * and then dies before any record is committed; the participant never commits.
   */
  static void tpcStateCommittedNoRecords(CaseContext ctx, int s) throws Exception {
    ctx.twoPc(s, "state_committed_no_records")
        .prepareAll()
        .validateAll()
        .commitCoordinatorUnder(crashAfter(b -> b.isCoordinatorState(3)));
  }

  /** Every crash point that one backup can hold, each on its own slot. */
  static void mixed(CaseContext ctx) throws Exception {
    mixedWorkload(ctx);
    ctx.cut();
  }

  /** {@link #mixed}'s transactions without the backup (a multi-storage case cuts per storage). */
  static void mixedWorkload(CaseContext ctx) throws Exception {
    int[] s = ctx.seed(11);
    ctx.transfer(s[0]);
    ctx.transfer(s[0]);
    ctx.twoPc(s[1], "committed").prepareAll().validateAll().commitCoordinator().commitParticipant();
    ctx.twoPc(s[2], "prepared_some").prepareCoordinator();
    if (Versions.absentKeyDeletes(Main.scalarDbVersion())) {
      ctx.twoPcWithGhosts(s[3], "prepared_all").prepareAll();
    } else {
      ctx.twoPc(s[3], "prepared_all").prepareAll();
    }
    tpcStateCommittedNoRecords(ctx, s[4]);
    ctx.twoPc(s[5], "committed_some").prepareAll().validateAll().commitCoordinator();
    ctx.twoPc(s[6], "aborted_prepared_some").prepareCoordinator().abortById();
    ctx.twoPc(s[7], "aborted_state_written").prepareAll().abortById();
    ctx.twoPc(s[8], "aborted_rolled_back_some").prepareAll().rollbackCoordinator();
    ctx.transferWithCrash(s[9], crashAfter(b -> b.isCoordinatorState(3)), "state_committed_no_records");
    validationAbort(ctx, s[10], s[0]);
  }

  /**
   * ≤3.15 only: the first partition's prepare passes, the second fails (ScalarDB then writes
   * ABORTED), and every write after the ABORTED row fails, so the rollback never happens.
   */
  static Faults.Rule abortAfterPartialPrepare() {
    return new Faults.Rule() {
      int prepares;
      boolean dead;

      @Override
      public Faults.Decision decide(Faults.Batch b) {
        if (dead) {
          return Faults.Decision.FAIL;
        }
        if (b.isPrepare() && ++prepares == 2) {
          return Faults.Decision.FAIL;
        }
        if (b.isCoordinatorState(4)) {
          dead = true;
        }
        return Faults.Decision.PASS;
      }
    };
  }

  /**
   * A SERIALIZABLE transfer of slot s that also read slot `other`'s bank_a account, which another
   * transaction changes before it commits: validation fails, ScalarDB writes ABORTED, and the crash
   * rule lets that row through and kills the rollback of the records.
   */
  static void validationAbort(CaseContext ctx, int s, int other) throws Exception {
    DistributedTransaction tx = ctx.serializable().start(Isolation.SERIALIZABLE);
    tx.get(
        Records.get(Bank.NS_A, Bank.ACCOUNTS, Bank.accountAKey(other), Bank.accountACk(other)));
    int step = ctx.nextStep(s);
    int writes = Bank.debitA(Crud.of(tx), s, 10L * step, step) + Bank.creditB(Crud.of(tx), s, 10L * step, step);
    ctx.transfer(other);
    String outcome = CaseContext.commitUnder(tx, crashAfter(b -> b.isCoordinatorState(4)));
    ctx.register(
        tx.getId(),
        "aborted_state_written",
        writes,
        "SERIALIZABLE transfer invalidated by a concurrent commit; commit(): " + outcome);
  }
}
