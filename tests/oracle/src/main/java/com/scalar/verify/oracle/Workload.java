package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedTransaction;
import com.scalar.db.api.DistributedTransactionManager;
import com.scalar.db.config.DatabaseConfig;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code workload --cassandra H1:P1[,H2:P2...] [--seconds N] [--replication-factor RF] [--threads
 * T] [--slots S]}: a live, crash-free bank workload through the real ScalarDB on a Cassandra
 * cluster, for tests that snapshot the cluster's nodes while it runs.
 *
 * <p>Creates the Coordinator table and the bank schema through ScalarDB's admin API (every
 * keyspace with SimpleStrategy and the given replication factor, ScalarDB's "replication-factor"
 * option; default 1), seeds S slots (default 4 per thread), commits one transfer, prints {@code
 * STARTED} on stdout, then runs committed transfers in T threads (default 4) until N seconds pass
 * or stdin reaches EOF (without --seconds: until EOF). Each thread owns its slots and each slot
 * writes its own partitions, so transfers do not conflict or share partitions; every transfer
 * changes balances and counters and inserts new audit
 * and transfer rows, and every write is a ScalarDB lightweight transaction whose cell write time is
 * the Paxos ballot's (the node's clock), so the data and its write times move forward and
 * snapshots taken seconds apart differ. Ends by printing {@code DONE committed=C failed=F
 * seconds=S} on stdout; progress and errors go to stderr. Exit status 0 if at least one transfer
 * committed.
 */
final class Workload {
  private Workload() {}

  static int run(Map<String, String> opts) throws Exception {
    String nodes = opts.get("cassandra");
    if (nodes == null) {
      throw new IllegalArgumentException("workload needs --cassandra H1:P1[,H2:P2...]");
    }
    // ScalarDB's ClusterManager takes one contact_port for all contact points: contact the nodes
    // that listen on the first node's port; the driver (3.12.1 reads system.peers_v2, which has
    // each peer's native_port) finds the others.
    Set<String> hosts = new LinkedHashSet<>();
    Integer port = null;
    for (String node : nodes.split(",")) {
      int colon = node.lastIndexOf(':');
      if (colon < 0) {
        throw new IllegalArgumentException("--cassandra wants HOST:PORT pairs, got " + node);
      }
      int p = Integer.parseInt(node.substring(colon + 1).trim());
      if (port == null) {
        port = p;
      }
      if (p == port) {
        hosts.add(node.substring(0, colon).trim());
      }
    }
    String rf = opts.getOrDefault("replication-factor", "1");
    int threads = Integer.parseInt(opts.getOrDefault("threads", "4"));
    int slotCount = Integer.parseInt(opts.getOrDefault("slots", Integer.toString(4 * threads)));
    long seconds = Long.parseLong(opts.getOrDefault("seconds", "0"));
    if (threads < 1 || slotCount < threads) {
      throw new IllegalArgumentException("--threads must be >= 1 and --slots >= --threads");
    }

    Properties props = new Properties();
    props.setProperty(DatabaseConfig.STORAGE, "cassandra");
    props.setProperty(DatabaseConfig.CONTACT_POINTS, String.join(",", hosts));
    props.setProperty(DatabaseConfig.CONTACT_PORT, Integer.toString(port));
    props.setProperty(DatabaseConfig.TRANSACTION_MANAGER, "consensus-commit");

    SchemaAdmin admin = Schemas.open(props);
    try {
      Bank.createSchema(admin, Map.of("replication-factor", rf));
    } finally {
      admin.close();
    }
    DistributedTransactionManager tm = Compat.transactionManager(props);
    AtomicBoolean stop = new AtomicBoolean();
    AtomicLong committed = new AtomicLong();
    AtomicLong failed = new AtomicLong();
    long started = System.currentTimeMillis();
    try {
      DistributedTransaction seed = Compat.begin(tm);
      for (int s = 0; s < slotCount; s++) {
        Bank.seedSlot(Crud.of(seed), s);
      }
      seed.commit();
      int[] steps = new int[slotCount];
      transfer(tm, 0, ++steps[0]);
      committed.incrementAndGet();
      System.out.println("STARTED");
      System.out.flush();

      Thread stdin =
          new Thread(
              () -> {
                InputStream in = System.in;
                byte[] buf = new byte[256];
                try {
                  while (in.read(buf) >= 0) {
                    // drain until EOF
                  }
                } catch (IOException ignored) {
                  // a closed stdin ends the workload like EOF
                }
                stop.set(true);
              },
              "workload-stdin");
      stdin.setDaemon(true);
      stdin.start();

      long deadline = seconds > 0 ? started + seconds * 1000 : Long.MAX_VALUE;
      List<Thread> workers = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        final int first = t;
        Thread w =
            new Thread(
                () -> {
                  int next = first;
                  while (!stop.get() && System.currentTimeMillis() < deadline) {
                    int s = next;
                    next = next + threads < slotCount ? next + threads : first;
                    try {
                      transfer(tm, s, ++steps[s]);
                      committed.incrementAndGet();
                    } catch (Exception e) {
                      // The step stays used: a later transfer of the slot writes new rows.
                      failed.incrementAndGet();
                      Main.log("workload: transfer of slot %d failed: %s", s, e);
                    }
                  }
                },
                "workload-" + t);
        workers.add(w);
        w.start();
      }
      for (Thread w : workers) {
        w.join();
      }
    } finally {
      tm.close();
      System.out.printf(
          "DONE committed=%d failed=%d seconds=%d%n",
          committed.get(), failed.get(), (System.currentTimeMillis() - started) / 1000);
      System.out.flush();
    }
    return committed.get() > 0 ? 0 : 1;
  }

  /** One committed transfer of slot s (debit bank_a, credit bank_b); throws if it did not commit. */
  private static void transfer(DistributedTransactionManager tm, int s, int step) throws Exception {
    DistributedTransaction tx = Compat.begin(tm);
    try {
      Bank.debitA(Crud.of(tx), s, 10L, step);
      // Each slot's legs in a partition of their own: concurrent LWTs on one partition contend in
      // Paxos, which with replication factor 2 fails transfers ("proposal was not accepted by a
      // quorum").
      Bank.creditB(Crud.of(tx), s, 10L, step, Bank.DAY + 1 + s);
      tx.commit();
    } catch (Exception e) {
      try {
        Compat.rollback(tx);
      } catch (Exception ignored) {
        // already finished or unreachable; the failure is what matters
      }
      throw e;
    }
  }
}
