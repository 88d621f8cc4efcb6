package com.scalar.verify.oracle;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * Entry point: {@code generate --backend sqlite|postgres|mariadb|cassandra --out DIR [--only REGEX]},
 * {@code list}, and {@code workload} (see {@link Workload}).
 *
 * <p>Phase 1 runs every case's workload against a fresh live database and takes its backup. Phase 2
 * waits until every prepared record is older than ScalarDB's 15 s transaction lifetime, then opens
 * a fresh copy of each backup with ScalarDB, lets lazy recovery run, and writes truth.json.
 * Progress goes to stderr; exit status 1 if any case failed its self-checks.
 */
public final class Main {
  private static final long TRANSACTION_LIFETIME_MILLIS = 15_000;

  private Main() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> opts = new HashMap<>();
    if (args.length == 0
        || !(args[0].equals("generate") || args[0].equals("list") || args[0].equals("workload"))) {
      usage();
    }
    for (int i = 1; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        usage();
      }
      opts.put(args[i].substring(2), args[++i]);
    }
    if (args[0].equals("workload")) {
      System.exit(Workload.run(opts));
    }
    Pattern only = Pattern.compile(opts.getOrDefault("only", ".*"));
    List<CaseSpec> specs = new ArrayList<>();
    String backendName = opts.getOrDefault("backend", "sqlite");
    Variant.select(Variant.parse(opts.getOrDefault("variant", "none")), scalarDbVersion(), backendName);
    for (CaseSpec s : Scenarios.all(scalarDbVersion(), backendName)) {
      if (only.matcher(s.id()).find()) {
        specs.add(s);
      }
    }
    if (args[0].equals("list")) {
      specs.forEach(s -> System.out.println(s.id()));
      return;
    }
    Backend backend = backend(opts);
    if (backend instanceof CassandraBackend c && !c.perNamespaceCuts()) {
      // Per-keyspace snapshots need the node's JMX and data directory (a node given with
      // --cassandra offers neither): those cases are left out, saying so.
      specs.removeIf(s -> {
        boolean perNamespace = s.cut().equals("torn_namespaces") || s.cut().equals("per_namespace_quiet");
        if (perNamespace) {
          log("%s: left out (a per-keyspace snapshot needs a node the oracle started)", s.id());
        }
        return perNamespace;
      });
    }
    String version = scalarDbVersion();
    Path out = Paths.get(opts.getOrDefault("out", "oracle-cases")).toAbsolutePath();
    Path work = Paths.get(opts.getOrDefault("work", out.resolve(".work").toString())).toAbsolutePath();
    Files.createDirectories(out);
    Files.createDirectories(work);
    System.exit(new Main().generate(backend, version, specs, out, work) ? 0 : 1);
  }

  private static void usage() {
    System.err.println(
        "usage: generate --backend sqlite|postgres|mariadb|cassandra|multi-storage|multi-storage-sqlite\n"
            + "                |multi-storage-cassandra --out DIR\n"
            + "                [--only REGEX] [--work DIR]\n"
            + "                [--variant " + String.join("|", Variant.names()) + "]\n"
            + "         postgres:  --host H --port P --user U [--password W] --bin DIR (pg_dump, psql)\n"
            + "         mariadb:   --host H --port P --user U [--password W] --bin DIR (mysqldump, mysql)\n"
            + "         cassandra: --cassandra HOST:PORT\n"
            + "         multi-storage-cassandra: --pg-host H --pg-port P --pg-user U --pg-bin DIR\n"
            + "                    --cassandra HOST:PORT --cassandra-jmx PORT --cassandra-jmx-file F\n"
            + "                    --cassandra-data DIR (the node's data directory, for its snapshots)\n"
            + "       list [--backend B] [--only REGEX]\n"
            + "       workload --cassandra H1:P1[,H2:P2...] [--seconds N] [--replication-factor RF]\n"
            + "                [--threads T] [--slots S]");
    System.exit(2);
  }

  private static Backend backend(Map<String, String> o) {
    String b = o.getOrDefault("backend", "sqlite");
    switch (b) {
      case "sqlite":
        return new SqliteBackend();
      case "postgres":
        return new PostgresBackend(
            o.getOrDefault("host", "127.0.0.1"), Integer.parseInt(o.get("port")),
            o.getOrDefault("user", "postgres"), o.getOrDefault("password", ""), o.getOrDefault("bin", ""));
      case "mariadb":
        return new MariaDbBackend(
            o.getOrDefault("host", "127.0.0.1"), Integer.parseInt(o.get("port")),
            o.getOrDefault("user", "root"), o.getOrDefault("password", ""), o.getOrDefault("bin", ""));
      case MultiStorageBackend.NAME:
      case MultiStorageBackend.NAME_SQLITE:
      case MultiStorageBackend.NAME_CASSANDRA:
        return MultiStorageBackend.parse(b, o);
      case "cassandra":
        if (!o.containsKey("cassandra")) {
          throw new IllegalArgumentException("--backend cassandra needs --cassandra HOST:PORT");
        }
        CassandraBackend c = CassandraBackend.parse(o.get("cassandra"));
        if (o.containsKey("cassandra-jmx")) {
          // A node the oracle started: per-keyspace snapshots for the per-namespace cuts.
          c = c.withJmx(new CassandraBackend.Jmx(Integer.parseInt(o.get("cassandra-jmx")),
              Paths.get(o.get("cassandra-jmx-file")), Paths.get(o.get("cassandra-data"))));
        }
        return c;
      default:
        throw new IllegalArgumentException("unknown backend " + b);
    }
  }

  static String scalarDbVersion() throws Exception {
    try (InputStream in = Main.class.getResourceAsStream("/oracle.properties")) {
      Properties p = new Properties();
      p.load(in);
      return p.getProperty("scalardb.version");
    }
  }

  private boolean generate(Backend backend, String version, List<CaseSpec> specs, Path out, Path work)
      throws Exception {
    boolean ok = true;
    List<CaseContext> done = new ArrayList<>();
    long started = System.currentTimeMillis();
    long lastWrite = 0;
    for (CaseSpec spec : specs) {
      String name = backend.name() + "-" + version + "-" + Variant.current().caseId(spec.id());
      for (int attempt = 1; ; attempt++) {
        Boolean result = generateOnce(backend, spec, name, out, work, done, attempt);
        if (result == null) {
          // The scenario ran but a crash point depends on timing (which transactions group commit
          // puts in one group, and when): a loaded machine can miss it. Each attempt checks itself
          // against the write log, so a retry cannot hide a wrong case; a scenario that misses
          // every time still fails.
          log("retrying %s (attempt %d of %d)", name, attempt + 1, CRASH_POINT_ATTEMPTS);
          continue;
        }
        ok &= result;
        if (result) {
          lastWrite = Math.max(lastWrite, done.get(done.size() - 1).log.lastWriteMillis());
        }
        break;
      }
    }
    long waitUntil = lastWrite + TRANSACTION_LIFETIME_MILLIS + 1500;
    long wait = waitUntil - System.currentTimeMillis();
    if (wait > 0) {
      log("waiting %d ms for every prepared record to pass ScalarDB's 15 s transaction lifetime", wait);
      Thread.sleep(wait);
    }
    for (CaseContext ctx : done) {
      long t0 = System.currentTimeMillis();
      try {
        writeTruth(backend, version, ctx, out.resolve(ctx.caseName));
        log("recovered %s (%d ms)", ctx.caseName, System.currentTimeMillis() - t0);
      } catch (Exception e) {
        ok = false;
        log("FAILED to recover %s: %s", ctx.caseName, e);
        e.printStackTrace();
      } finally {
        try {
          backend.release("r_" + ctx.caseId(), ctx.namespaces);
        } catch (Exception e) {
          log("could not release restored %s: %s", ctx.caseName, e);
        }
      }
    }
    log("%d of %d cases generated in %d s", done.size(), specs.size(), (System.currentTimeMillis() - started) / 1000);
    return ok;
  }

  /** Attempts allowed for a case whose crash points were not reached. */
  private static final int CRASH_POINT_ATTEMPTS = 3;

  /** A scenario that ran but did not reach the crash points its case is labelled with. */
  private static final class CrashPointsNotReached extends Exception {
    CrashPointsNotReached(List<String> problems) {
      super("crash points not reached:\n  " + String.join("\n  ", problems));
    }
  }

  /**
   * Generates one case: true when it was generated (and added to done), false when it failed,
   * null when its crash points were not reached and another attempt may succeed.
   */
  private Boolean generateOnce(
      Backend backend, CaseSpec spec, String name, Path out, Path work, List<CaseContext> done, int attempt)
      throws Exception {
    long t0 = System.currentTimeMillis();
    CaseContext ctx = new CaseContext(spec, name, backend, work.resolve(attempt == 1 ? name : name + "-" + attempt));
    try {
      ctx.open();
      spec.scenario().run(ctx);
      if (ctx.dataCut == null || ctx.coordinatorCut == null) {
        throw new IllegalStateException("the scenario took no backup");
      }
      List<String> problems = Truth.checkCrashPoints(ctx);
      if (!problems.isEmpty()) {
        throw new CrashPointsNotReached(problems);
      }
      Map<String, String> liveStates = new LinkedHashMap<>();
      for (CaseContext.Tx tx : ctx.txs) {
        liveStates.put(tx.id, ctx.tm.getState(tx.id).name());
      }
      ctx.liveStates = liveStates;
      Path dir = out.resolve(name);
      Files.createDirectories(dir);
      Files.deleteIfExists(dir.resolve("truth.json"));
      if (ctx.schemaParts.isEmpty()) {
        backend.assemble(ctx.backupParts(), ctx.namespaces, dir.resolve(backend.backupFileName()));
      } else {
        backend.assembleSchemas(ctx.schemaParts, ctx.namespaces, dir.resolve(backend.backupFileName()));
      }
      done.add(ctx);
      log("generated %s (%d ms, %d writes, %d transactions)", name, System.currentTimeMillis() - t0,
          ctx.log.snapshot().seq(), ctx.txs.size());
      return true;
    } catch (CrashPointsNotReached e) {
      log("%s: %s", name, e.getMessage());
      return attempt < CRASH_POINT_ATTEMPTS ? null : false;
    } catch (Exception e) {
      log("FAILED to generate %s: %s", name, e);
      e.printStackTrace();
      return false;
    } finally {
      ctx.close();
      try {
        backend.release(ctx.caseId(), ctx.namespaces);
      } catch (Exception e) {
        log("could not release %s: %s", name, e);
      }
    }
  }

  private void writeTruth(Backend backend, String version, CaseContext ctx, Path dir) throws Exception {
    Path backup = dir.resolve(backend.backupFileName());
    Properties restored = backend.restore(backup, "r_" + ctx.caseId(), ctx.namespaces, ctx.work);
    List<String> ids = new ArrayList<>();
    ctx.txs.forEach(t -> ids.add(t.id));
    Recovery.Result0 r = Recovery.run(ctx.scalarProps(restored, false), ctx.tables, ids);

    // Self-checks: the backup holds exactly the pending records the write log predicts, and
    // ScalarDB reads the same Coordinator states from it as the model has.
    Set<String> modelPending = new TreeSet<>();
    ctx.dataCut.records().forEach((k, m) -> {
      if (Truth.pending(m)) {
        modelPending.add(k + " " + m.txId() + " " + m.txState());
      }
    });
    Set<String> backupPending = new TreeSet<>();
    r.before().forEach((k, raw) -> {
      if (Recovery.pending(raw)) {
        backupPending.add(k + " " + raw.txId() + " " + raw.txState());
      }
    });
    if (!modelPending.equals(backupPending)) {
      throw new IllegalStateException(
          "the backup's pending records differ from the write log's\n  log:    " + modelPending
              + "\n  backup: " + backupPending);
    }
    Map<String, Object> truth = new LinkedHashMap<>();
    truth.put("case", ctx.caseName);
    truth.put("scalardb_version", version);
    truth.put("backend", backend.name());
    truth.put("group_commit", ctx.spec.groupCommit());
    truth.put("coordinator_namespace", ctx.spec.coordinatorNamespace());
    truth.put("metadata_schema", ctx.namespaces.metadata());
    truth.put("cut", ctx.spec.cut());
    truth.put("variant", Variant.current().prefix.isEmpty() ? "none" : Variant.current().prefix);
    truth.put("expected_verdict", Truth.verdict(ctx.dataCut, ctx.coordinatorCut));
    if (!ctx.schemaCuts.isEmpty()) {
      // A per-namespace cut: each bank at its own instant. Recovery sees no pending record in
      // it; the tear is the transfers committed between the instants.
      List<String> torn = ctx.tornTransfers();
      truth.put("torn_transactions", torn);
      truth.put("money_conserved", torn.isEmpty());
    }
    if (Scenarios.logsWriteSets(ctx.spec)) {
      truth.put("write_set_logging", true);
      truth.put("missing_writes", Truth.missingWrites(ctx.dataCut, ctx.coordinatorCut));
    }
    List<Object> txs = new ArrayList<>();
    for (CaseContext.Tx tx : ctx.txs) {
      // ScalarDB's Get finds the row by the storage's own comparison of ids.
      Optional<WriteLog.CoordinatorRow> row =
          ctx.backend.foldsIdCase(ctx.caseName)
              ? ctx.coordinatorCut.stateOfIgnoringCase(tx.id)
              : ctx.coordinatorCut.stateOf(tx.id);
      String modelState = row.map(c -> c.state() == 3 ? "COMMITTED" : "ABORTED").orElse("UNKNOWN");
      String scalarState = r.statesInBackup().get(tx.id);
      if (!modelState.equals(scalarState)) {
        throw new IllegalStateException(
            "ScalarDB's getState(" + tx.id + ") on the backup is " + scalarState + ", the write log says " + modelState);
      }
      Map<String, Object> t = new LinkedHashMap<>();
      t.put("tx_id", tx.id);
      t.put("crash_point", tx.crashPoint);
      t.put("committed", modelState.equals("COMMITTED"));
      t.put("state_in_backup", scalarState);
      t.put("live_state", ctx.liveStates.get(tx.id));
      t.put("writes", tx.writes);
      t.put("notes", tx.notes);
      txs.add(t);
    }
    truth.put("transactions", txs);
    List<Object> recovered = new ArrayList<>();
    for (Recovery.Outcome o : r.outcomes()) {
      Map<String, Object> e = new LinkedHashMap<>();
      e.put("table", o.key().table());
      e.put("key", o.key().key());
      e.put("backup_tx_id", o.before().txId());
      e.put("backup_tx_state", o.before().txState());
      e.put("exists", o.after() != null);
      e.put("tx_id", o.after() == null ? null : o.after().txId());
      e.put("tx_state", o.after() == null ? null : o.after().txState());
      recovered.add(e);
      if (o.after() != null && Recovery.pending(o.after())) {
        throw new IllegalStateException("ScalarDB did not resolve " + o.key() + " within the deadline");
      }
    }
    truth.put("recovered", recovered);
    Map<String, Object> gen = new LinkedHashMap<>();
    gen.put("records_in_backup", r.before().size());
    gen.put("read_rounds", r.readRounds());
    gen.put("read_errors", r.readErrors());
    truth.put("generation", gen);
    if (backend instanceof MultiStorageBackend multi) {
      truth.putAll(multi.truthFields(ctx));
    }
    if (backend instanceof CassandraBackend cassandra) {
      truth.putAll(cassandra.truthFields(ctx));
    }
    ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    json.writeValue(dir.resolve("truth.json").toFile(), truth);
  }

  static void log(String fmt, Object... args) {
    System.err.println("oracle: " + String.format(fmt, args));
  }
}
