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
 * bank_b in the other storage, MariaDB or SQLite; the case ids name it, {@code pg-mariadb-*} or
 * {@code pg-sqlite-*}). A transfer debits bank_a and credits bank_b, so every transfer spans both
 * databases. Cuts are per storage: {@link #quiet} dumps both while the workload is idle;
 * {@link #tornCut} dumps PostgreSQL, lets transactions run, then dumps the other.
 */
final class MultiStorageScenarios {
  private MultiStorageScenarios() {}

  /** The cases of the deployment whose other storage is of {@code engine} (mariadb, sqlite). */
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
    out.add(new CaseSpec(pre + "torn", false, Scenarios.DEFAULT_NS, "torn", ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      tornCut(ctx, true, () -> {
        ctx.transfer(s[1]);
        ctx.twoPc(s[2], "prepared_some").prepareAll();
      });
    }));
    // The other storage dumped first: the transfer committed in between has its debit, its COMMITTED
    // Coordinator row and no pending record in the backup, only its credit is missing (a tear
    // no record's metadata shows); the two-phase transfer is pending in PostgreSQL only.
    out.add(new CaseSpec(pre + "torn-" + engine + "-first", false, Scenarios.DEFAULT_NS, "torn", ctx -> {
      int[] s = ctx.seed(3);
      ctx.transfer(s[0]);
      tornCut(ctx, false, () -> {
        ctx.transfer(s[1]);
        ctx.twoPc(s[2], "prepared_some").prepareAll();
      });
    }));
    // Two services, each with its own ScalarDB config and a two-phase manager, sharing the
    // Coordinator in PostgreSQL: service 1 (bank_a) is single-storage PostgreSQL; service 2
    // (bank_b) is multi-storage, default storage the other, the Coordinator namespace mapped to
    // the PostgreSQL storage (a participant reads the Coordinator for lazy recovery, so it
    // must reach the same table). Both dumped in one quiet moment.
    out.add(new CaseSpec(pre + "2pc-services-committed-some", false, Scenarios.DEFAULT_NS, "single_instant",
        ctx -> twoServices(ctx, true)));
    out.add(new CaseSpec(pre + "2pc-services-prepared-some", false, Scenarios.DEFAULT_NS, "single_instant",
        ctx -> twoServices(ctx, false)));
    return out;
  }

  /**
   * A committed transfer, then a two-phase transfer across the two services: both prepared,
   * validated and service 1 committed (the Coordinator row COMMITTED, bank_a committed, bank_b
   * left PREPARED: committed_some), or only service 1 prepared (prepared_some).
   */
  private static void twoServices(CaseContext ctx, boolean commitFirst) throws Exception {
    int[] s = ctx.seed(2);
    ctx.transfer(s[0]);
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
    TwoPhaseCommitTransactionManager two = Compat.twoPhaseManager(service2);
    try {
      TwoPhaseCommitTransaction c = Compat.begin(one);
      TwoPhaseCommitTransaction q = two.join(c.getId());
      int step = ctx.nextStep(s[1]);
      int writes = Bank.debitA(c, s[1], 10L * step, step) + Bank.creditB(q, s[1], 10L * step, step);
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
    } finally {
      one.close();
      two.close();
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
    Path other = b.dumpOther(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".other");
    ctx.parts.clear();
    ctx.parts.add(pg);
    ctx.parts.add(other);
    facts(ctx, List.of(), true);
  }

  /**
   * One storage dumped ({@code pgFirst}: PostgreSQL, with the Coordinator and bank_a; else
   * the other storage, with bank_b), then {@code between}, then the other. The backup's Coordinator is
   * PostgreSQL's snapshot; its data is each namespace from its own storage's snapshot (with the
   * later snapshot's Coordinator: where each transaction really was by then).
   */
  static void tornCut(CaseContext ctx, boolean pgFirst, Between between) throws Exception {
    MultiStorageBackend b = backend(ctx);
    WriteLog.Snapshot first = ctx.log.snapshot();
    Path firstDump = pgFirst
        ? b.dumpPg(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".pg")
        : b.dumpOther(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".other");
    between.run();
    WriteLog.Snapshot second = ctx.log.snapshot();
    Path secondDump = pgFirst
        ? b.dumpOther(ctx.live, ctx.namespaces, ctx.work, ctx.caseId() + ".other")
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
    ctx.coordinatorCut = pgSnap;
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
