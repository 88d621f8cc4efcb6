package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedTransaction;
import com.scalar.db.api.DistributedTransactionManager;
import com.scalar.db.api.Isolation;
import com.scalar.db.api.TwoPhaseCommitTransaction;
import com.scalar.db.api.TwoPhaseCommitTransactionManager;
import com.scalar.db.config.DatabaseConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * One case being generated: its live database, ScalarDB managers, the write log, the transactions
 * the scenario started (with the crash point each was left at) and the cuts (backups) taken.
 */
final class CaseContext implements AutoCloseable {
  static final String COORDINATOR_NS_PROP = "scalar.db.consensus_commit.coordinator.namespace";
  static final String GROUP_COMMIT_PROP = "scalar.db.consensus_commit.coordinator.group_commit.enabled";
  static final String WRITE_SET_LOGGING_PROP =
      "scalar.db.consensus_commit.coordinator.write_set_logging.enabled";
  static final String ISOLATION_PROP = "scalar.db.consensus_commit.isolation_level";

  /** A transaction the scenario started, and where its records were when the data was cut. */
  static final class Tx {
    final String id;
    String crashPoint;
    final int writes;
    final List<String> notes = new ArrayList<>();

    Tx(String id, String crashPoint, int writes, String note) {
      this.id = id;
      this.crashPoint = crashPoint;
      this.writes = writes;
      notes.add(note);
    }

    void crashPointNote(String step) {
      notes.add(step);
    }
  }

  final CaseSpec spec;
  final String caseName;
  final Backend backend;
  final Backend.Namespaces namespaces;
  final Path work;
  final WriteLog log;
  final Properties live;
  final List<Tx> txs = new ArrayList<>();
  /** The tables the case has, [namespace, table]; an imported table is added by the scenario. */
  final List<String[]> tables = new ArrayList<>(Bank.TABLES);
  final Map<Integer, Integer> steps = new LinkedHashMap<>();
  private int nextSlot;

  DistributedTransactionManager tm;
  private DistributedTransactionManager serializableTm;
  private DistributedTransactionManager onePhaseTm;
  private DistributedTransactionManager extraWriteTm;
  private TwoPhaseCommitTransactionManager coordinatorTm;
  private TwoPhaseCommitTransactionManager participantTm;

  Map<String, String> liveStates = new LinkedHashMap<>();
  WriteLog.Snapshot dataCut;
  WriteLog.Snapshot coordinatorCut;
  final List<Path> parts = new ArrayList<>();
  Path dataPart;
  Path coordinatorPart;
  /** A per-namespace cut: each part, in cut order, with the schemas it holds and its instant. */
  final Map<Path, List<String>> schemaParts = new LinkedHashMap<>();
  final Map<String, WriteLog.Snapshot> schemaCuts = new LinkedHashMap<>();

  CaseContext(CaseSpec spec, String caseName, Backend backend, Path work) throws Exception {
    this.spec = spec;
    this.caseName = caseName;
    this.backend = backend;
    this.work = work;
    this.namespaces =
        new Backend.Namespaces(spec.coordinatorNamespace(), "scalardb", List.of(Bank.NS_A, Bank.NS_B));
    this.log = new WriteLog(spec.coordinatorNamespace());
    Files.createDirectories(work);
    this.live = backend.freshDatabase(caseId(), work);
  }

  /** A file-name and database-name friendly id. */
  String caseId() {
    return caseName.replaceAll("[^A-Za-z0-9]", "_").toLowerCase();
  }

  /** ScalarDB properties for this case against the given connection properties. */
  Properties scalarProps(Properties connection, boolean faulty) {
    Properties p = new Properties();
    p.putAll(connection);
    p.setProperty(DatabaseConfig.STORAGE, faulty ? FaultyStorage.NAME : backend.storage());
    p.setProperty(FaultyStorage.INNER, backend.storage());
    p.setProperty(DatabaseConfig.TRANSACTION_MANAGER, "consensus-commit");
    if (!spec.coordinatorNamespace().equals("coordinator")) {
      p.setProperty(COORDINATOR_NS_PROP, spec.coordinatorNamespace());
    }
    p.setProperty(GROUP_COMMIT_PROP, Boolean.toString(spec.groupCommit()));
    if (Scenarios.logsWriteSets(spec)) {
      p.setProperty(WRITE_SET_LOGGING_PROP, "true");
    }
    Variant.current().addProperties(p);
    return p;
  }

  /**
   * ScalarDB 3.19's finishTransaction(txId): rolls the transaction's write set forward or back,
   * then deletes its Coordinator row. Called by reflection: older lines do not have it.
   */
  void finishTransaction(String id) throws Exception {
    Object finished =
        tm.getClass().getMethod("finishTransaction", String.class).invoke(tm, id);
    txs.stream()
        .filter(t -> t.id.equals(id))
        .forEach(t -> {
          t.crashPoint = "finished";
          t.notes.add("manager.finishTransaction(txId) -> " + finished);
        });
  }

  void open() throws Exception {
    FaultyStorage.attach(log, spec.coordinatorNamespace());
    Faults.disarm();
    SchemaAdmin admin = Schemas.open(scalarProps(live, true));
    try {
      Bank.createSchema(admin, Variant.current().tableOptions(backend.namespaceOptions()));
    } finally {
      admin.close();
    }
    tm = Compat.transactionManager(scalarProps(live, true));
  }

  DistributedTransactionManager serializable() {
    if (serializableTm == null) {
      Properties p = scalarProps(live, true);
      p.setProperty(ISOLATION_PROP, "SERIALIZABLE");
      serializableTm = Compat.transactionManager(p);
    }
    return serializableTm;
  }

  /** 3.16+: one-phase commit on (records written COMMITTED directly, no Coordinator row). */
  DistributedTransactionManager onePhase() {
    if (onePhaseTm == null) {
      Properties p = scalarProps(live, true);
      p.setProperty("scalar.db.consensus_commit.one_phase_commit.enabled", "true");
      onePhaseTm = Compat.transactionManager(p);
    }
    return onePhaseTm;
  }

  /** ≤3.15: SERIALIZABLE with the EXTRA_WRITE strategy (removed in 3.16). */
  DistributedTransactionManager extraWrite() {
    if (extraWriteTm == null) {
      Properties p = scalarProps(live, true);
      p.setProperty(ISOLATION_PROP, "SERIALIZABLE");
      p.setProperty("scalar.db.consensus_commit.serializable_strategy", "EXTRA_WRITE");
      extraWriteTm = Compat.transactionManager(p);
    }
    return extraWriteTm;
  }

  TwoPhaseCommitTransactionManager coordinatorSide() {
    if (coordinatorTm == null) {
      coordinatorTm = Compat.twoPhaseManager(scalarProps(live, true));
    }
    return coordinatorTm;
  }

  TwoPhaseCommitTransactionManager participantSide() {
    if (participantTm == null) {
      participantTm = Compat.twoPhaseManager(scalarProps(live, true));
    }
    return participantTm;
  }

  /**
   * Creates bank_b.legacy_accounts as a plain table of the database (application rows from before
   * ScalarDB: no transaction metadata at all) and imports it with the admin API (importTable adds
   * the metadata and before-image columns, leaving them NULL in existing rows). Not on SQLite,
   * where ScalarDB refuses to import.
   */
  void createAndImportLegacyTable() throws Exception {
    String url = live.getProperty(DatabaseConfig.CONTACT_POINTS);
    String text = backend.name().equals("postgres") ? "TEXT" : "VARCHAR(64)";
    try (java.sql.Connection c =
            java.sql.DriverManager.getConnection(
                url, live.getProperty(DatabaseConfig.USERNAME), live.getProperty(DatabaseConfig.PASSWORD));
        java.sql.Statement st = c.createStatement()) {
      st.executeUpdate(
          "CREATE TABLE bank_b.legacy_accounts (acct_id BIGINT PRIMARY KEY, holder " + text
              + ", balance BIGINT)");
      st.executeUpdate(
          "INSERT INTO bank_b.legacy_accounts VALUES (1, 'legacy-1', 500), (2, 'legacy-2', 700),"
              + " (3, 'legacy-3', 900)");
    }
    SchemaAdmin admin = Schemas.open(scalarProps(live, true));
    try {
      // Imported coupled under every variant: a decoupled import is addressed as
      // <t>_scalardb (a LEFT OUTER view), which the case's transactions do not name.
      admin.importTable(Bank.NS_B, Bank.LEGACY, Map.of());
    } finally {
      admin.close();
    }
    tables.add(new String[] {Bank.NS_B, Bank.LEGACY});
  }

  // ---- slots and seeding ----

  /** Allocates n fresh slots and seeds them in one committed transaction. */
  int[] seed(int n) throws Exception {
    int[] slots = new int[n];
    DistributedTransaction tx = Compat.begin(tm);
    for (int i = 0; i < n; i++) {
      slots[i] = nextSlot++;
      steps.put(slots[i], 0);
      Bank.seedSlot(Crud.of(tx), slots[i]);
    }
    tx.commit();
    register(tx.getId(), "committed", 4 * n, "seed");
    return slots;
  }

  int nextStep(int slot) {
    int s = steps.get(slot) + 1;
    steps.put(slot, s);
    return s;
  }

  void relabel(String id, String crashPoint) {
    txs.stream().filter(t -> t.id.equals(id)).forEach(t -> t.crashPoint = crashPoint);
  }

  Tx register(String id, String crashPoint, int writes, String note) {
    Tx t = new Tx(id, crashPoint, writes, note);
    txs.add(t);
    return t;
  }

  // ---- one-phase transfers ----

  /** A one-phase transfer of slot s, committed normally. */
  String transfer(int s) throws Exception {
    return transfer(Compat.begin(tm), s);
  }

  /** A one-phase transfer of slot s under an id the application gives, committed normally. */
  String transfer(int s, String txId) throws Exception {
    return transfer(Compat.begin(tm, txId), s);
  }

  private String transfer(DistributedTransaction tx, int s) throws Exception {
    int step = nextStep(s);
    int writes = Bank.debitA(Crud.of(tx), s, 10L * step, step) + Bank.creditB(Crud.of(tx), s, 10L * step, step);
    tx.commit();
    register(tx.getId(), "committed", writes, "one-phase transfer");
    return tx.getId();
  }

  /** A transfer of slot s through the one-phase-commit manager: no Coordinator row. */
  String onePhaseCommitTransfer(int s) throws Exception {
    DistributedTransaction tx = Compat.begin(onePhase());
    int step = nextStep(s);
    int writes = Bank.debitA(Crud.of(tx), s, 10L * step, step) + Bank.creditB(Crud.of(tx), s, 10L * step, step);
    tx.commit();
    register(tx.getId(), "one_phase_committed", writes, "one-phase-commit transfer");
    return tx.getId();
  }

  /**
   * A one-phase transfer of slot s whose commit() runs with a crash rule armed. The rule is
   * disarmed afterwards; whatever ScalarDB raised is recorded in the note.
   */
  String transferWithCrash(int s, Faults.Rule rule, String crashPoint) throws Exception {
    return transferWithCrash(tm, s, rule, crashPoint);
  }

  String transferWithCrash(
      DistributedTransactionManager manager, int s, Faults.Rule rule, String crashPoint)
      throws Exception {
    return transferWithCrash(Compat.begin(manager), s, rule, crashPoint);
  }

  /** transferWithCrash under an id the application gives. */
  String transferWithCrash(int s, String txId, Faults.Rule rule, String crashPoint)
      throws Exception {
    return transferWithCrash(Compat.begin(tm, txId), s, rule, crashPoint);
  }

  private String transferWithCrash(
      DistributedTransaction tx, int s, Faults.Rule rule, String crashPoint) throws Exception {
    int step = nextStep(s);
    int writes = Bank.debitA(Crud.of(tx), s, 10L * step, step) + Bank.creditB(Crud.of(tx), s, 10L * step, step);
    String outcome = commitUnder(tx, rule);
    register(tx.getId(), crashPoint, writes, "one-phase transfer, crash rule armed; commit(): " + outcome);
    return tx.getId();
  }

  static String commitUnder(DistributedTransaction tx, Faults.Rule rule) {
    Faults.arm(rule);
    try {
      tx.commit();
      return "returned";
    } catch (Exception e) {
      return e.getClass().getSimpleName();
    } finally {
      Faults.disarm();
    }
  }

  /**
   * Runs one-phase transfers of the given slots concurrently (so that group commit puts them in
   * one group), each committing with the rule armed for the whole batch. Returns the tx ids.
   */
  List<String> concurrentTransfers(
      int[] slots, Faults.Rule rule, String crashPoint, long[] delaysMillis)
      throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(slots.length);
    List<Future<String[]>> futures = new ArrayList<>();
    int[] stepOf = new int[slots.length];
    for (int i = 0; i < slots.length; i++) {
      stepOf[i] = nextStep(slots[i]);
    }
    if (rule != null) {
      Faults.arm(rule);
    }
    try {
      for (int i = 0; i < slots.length; i++) {
        final int idx = i;
        futures.add(
            pool.submit(
                () -> {
                  DistributedTransaction tx = Compat.begin(tm);
                  int s = slots[idx];
                  int step = stepOf[idx];
                  int writes =
                      Bank.debitA(Crud.of(tx), s, 10L * step, step) + Bank.creditB(Crud.of(tx), s, 10L * step, step);
                  if (delaysMillis != null && delaysMillis[idx] > 0) {
                    Thread.sleep(delaysMillis[idx]);
                  }
                  String outcome;
                  try {
                    tx.commit();
                    outcome = "returned";
                  } catch (Exception e) {
                    outcome = e.getClass().getSimpleName();
                  }
                  return new String[] {tx.getId(), Integer.toString(writes), outcome};
                }));
      }
      List<String> ids = new ArrayList<>();
      for (Future<String[]> f : futures) {
        String[] r = f.get(60, TimeUnit.SECONDS);
        ids.add(r[0]);
        register(r[0], crashPoint, Integer.parseInt(r[1]), "concurrent one-phase transfer; commit(): " + r[2]);
      }
      return ids;
    } finally {
      Faults.disarm();
      pool.shutdownNow();
    }
  }

  // ---- two-phase transfers: bank_a on the coordinator side, bank_b on the participant side ----

  /** A two-phase transfer whose steps the scenario drives one by one. */
  final class TwoPc {
    final TwoPhaseCommitTransaction coordinator;
    final TwoPhaseCommitTransaction participant;
    final Tx tx;

    TwoPc(int s, String crashPoint, boolean ghosts) throws Exception {
      coordinator = Compat.begin(coordinatorSide());
      participant = participantSide().join(coordinator.getId());
      int step = nextStep(s);
      int writes =
          Bank.debitA(Crud.of(coordinator), s, 10L * step, step) + Bank.creditB(Crud.of(participant), s, 10L * step, step);
      if (ghosts) {
        writes += Bank.ghostDelete(Crud.of(coordinator), Bank.NS_A, s) + Bank.ghostDelete(Crud.of(participant), Bank.NS_B, s);
      }
      tx = register(coordinator.getId(), crashPoint, writes,
          ghosts ? "two-phase transfer that also deletes two absent keys" : "two-phase transfer");
    }

    String id() {
      return coordinator.getId();
    }

    TwoPc note(String step) {
      tx.crashPointNote(step);
      return this;
    }

    TwoPc prepareCoordinator() throws Exception {
      coordinator.prepare();
      return note("coordinator.prepare()");
    }

    TwoPc prepareParticipant() throws Exception {
      participant.prepare();
      return note("participant.prepare()");
    }

    TwoPc prepareAll() throws Exception {
      return prepareCoordinator().prepareParticipant();
    }

    TwoPc validateAll() throws Exception {
      coordinator.validate();
      participant.validate();
      return note("validate() both");
    }

    TwoPc commitCoordinator() throws Exception {
      coordinator.commit();
      return note("coordinator.commit()");
    }

    TwoPc commitParticipant() throws Exception {
      participant.commit();
      return note("participant.commit()");
    }

    TwoPc commitCoordinatorUnder(Faults.Rule rule) {
      Faults.arm(rule);
      try {
        coordinator.commit();
        return note("coordinator.commit() under a crash rule: returned");
      } catch (Exception e) {
        return note("coordinator.commit() under a crash rule: " + e.getClass().getSimpleName());
      } finally {
        Faults.disarm();
      }
    }

    TwoPc rollbackCoordinator() throws Exception {
      coordinator.rollback();
      return note("coordinator.rollback()");
    }

    TwoPc rollbackParticipant() throws Exception {
      participant.rollback();
      return note("participant.rollback()");
    }

    /** The manager's rollback(txId) (3.6: abort(txId)): ScalarDB's "abort by id" API. */
    TwoPc abortById() throws Exception {
      Object state = Compat.abort(coordinatorSide(), id());
      return note("manager." + Compat.ABORT_BY_ID + "(txId) -> " + state);
    }
  }

  TwoPc twoPc(int s, String crashPoint) throws Exception {
    return new TwoPc(s, crashPoint, false);
  }

  /** A two-phase transfer whose sides also delete a key that does not exist. */
  TwoPc twoPcWithGhosts(int s, String crashPoint) throws Exception {
    return new TwoPc(s, crashPoint, true);
  }

  // ---- cuts ----

  /** A single-instant backup of everything. */
  void cut() throws Exception {
    dataCut = log.snapshot();
    coordinatorCut = dataCut;
    Path p = backend.dump(live, Backend.Part.ALL, namespaces, work, caseId() + ".all");
    parts.clear();
    parts.add(p);
  }

  /** The Coordinator table's part of a torn backup. */
  void cutCoordinator() throws Exception {
    coordinatorCut = log.snapshot();
    coordinatorPart = backend.dump(live, Backend.Part.COORDINATOR, namespaces, work, caseId() + ".coordinator");
  }

  /** The data tables' part of a torn backup. */
  void cutData() throws Exception {
    dataCut = log.snapshot();
    dataPart = backend.dump(live, Backend.Part.DATA, namespaces, work, caseId() + ".data");
  }

  /**
   * One part of a per-namespace cut: the given schemas copied at this instant. The last call
   * must leave every schema (the data namespaces, the Coordinator's and the metadata's) cut
   * once; {@link #dataCut} is then each namespace's records at its own instant and
   * {@link #coordinatorCut} the Coordinator part's instant.
   */
  void cutSchemas(String... schemas) throws Exception {
    WriteLog.Snapshot at = log.snapshot();
    List<String> list = List.of(schemas);
    Path p = backend.dumpSchemas(live, list, namespaces, work, caseId() + ".part" + schemaParts.size());
    schemaParts.put(p, list);
    for (String schema : list) {
      schemaCuts.put(schema, at);
    }
    List<String> all = new ArrayList<>(namespaces.data());
    all.add(namespaces.coordinator());
    all.add(namespaces.metadata());
    if (!schemaCuts.keySet().containsAll(all)) {
      return;
    }
    WriteLog.Snapshot coordinator = schemaCuts.get(namespaces.coordinator());
    Map<WriteLog.RecordKey, WriteLog.RecordMeta> records = new java.util.TreeMap<>();
    for (String ns : namespaces.data()) {
      schemaCuts.get(ns).records().forEach((k, m) -> {
        if (k.table().startsWith(ns + ".")) {
          records.put(k, m);
        }
      });
    }
    dataCut = new WriteLog.Snapshot(coordinator.seq(), records, coordinator.coordinator());
    coordinatorCut = dataCut;
  }

  /**
   * The transfers of this case a per-namespace cut tore: committed at the instant of some of
   * the parts holding bank_a, bank_b and the Coordinator and not at another's. Every
   * transaction of these cases is a transfer that writes both banks, so each torn one moves
   * money out of one bank without it arriving in the other (or the reverse). Empty for
   * other cuts.
   */
  List<String> tornTransfers() {
    List<String> torn = new ArrayList<>();
    if (schemaCuts.isEmpty()) {
      return torn;
    }
    for (Tx tx : txs) {
      java.util.Set<Boolean> committed = new java.util.HashSet<>();
      for (String schema : List.of(Bank.NS_A, Bank.NS_B, namespaces.coordinator())) {
        committed.add(Truth.state(schemaCuts.get(schema), tx.id).equals(java.util.Optional.of(3)));
      }
      if (committed.size() > 1) {
        torn.add(tx.id);
      }
    }
    return torn;
  }

  /**
   * Committed one-phase transfers in a tight loop on one thread for {@code millis} ms, over
   * the given slots in turn: a live workload with a steady write rate in every bank table.
   */
  int liveTransfers(int[] slots, long millis) throws Exception {
    return liveTransfers(slots, millis, 0);
  }

  /**
   * As {@link #liveTransfers(int[], long)}, and on until at least {@code atLeast} transfers
   * committed: a gap a loaded machine cannot shrink below that many transactions.
   */
  int liveTransfers(int[] slots, long millis, int atLeast) throws Exception {
    long end = System.currentTimeMillis() + millis;
    int n = 0;
    while (System.currentTimeMillis() < end || n < atLeast) {
      transfer(slots[n % slots.length]);
      n++;
    }
    return n;
  }

  List<Path> backupParts() {
    if (dataPart != null && coordinatorPart != null) {
      return List.of(dataPart, coordinatorPart);
    }
    return parts;
  }

  @Override
  public void close() {
    Faults.disarm();
    // Not AutoCloseable before 3.13: each manager's own close().
    closeQuietly(tm == null ? null : tm::close);
    closeQuietly(serializableTm == null ? null : serializableTm::close);
    closeQuietly(onePhaseTm == null ? null : onePhaseTm::close);
    closeQuietly(extraWriteTm == null ? null : extraWriteTm::close);
    closeQuietly(coordinatorTm == null ? null : coordinatorTm::close);
    closeQuietly(participantTm == null ? null : participantTm::close);
  }

  private static void closeQuietly(Runnable close) {
    if (close != null) {
      try {
        close.run();
      } catch (RuntimeException ignored) {
        // closing after a crash may fail; the database is dumped already
      }
    }
  }
}
