package com.scalar.verify.oracle;

import com.scalar.db.api.DistributedStorage;
import com.scalar.db.api.DistributedTransaction;
import com.scalar.db.api.DistributedTransactionManager;
import com.scalar.db.api.Get;
import com.scalar.db.api.Result;
import com.scalar.db.api.Scan;
import com.scalar.db.api.Scanner;
import com.scalar.db.api.TableMetadata;
import com.scalar.db.io.Key;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;

/**
 * Opens a restored copy of a backup with ScalarDB and lets ScalarDB's own lazy recovery resolve
 * every PREPARED/DELETED record: every table is read through transactions (Scan all, then a Get of
 * each record still pending) until the raw storage shows no pending record left, or a deadline.
 *
 * <p>≤3.15 throws UncommittedRecordException after recovering synchronously; 3.16+ returns a
 * resolved value and recovers in a background thread. Both are handled by re-reading.
 */
final class Recovery {
  /** A record as raw storage shows it. */
  record Raw(String txId, Integer txState, Map<String, String> columns) {}

  /** What recovery did to one record. */
  record Outcome(WriteLog.RecordKey key, Raw before, Raw after) {}

  /** The result of recovering one backup. */
  record Result0(
      Map<WriteLog.RecordKey, Raw> before,
      Map<String, String> statesInBackup,
      List<Outcome> outcomes,
      int readRounds,
      List<String> readErrors) {}

  private Recovery() {}

  static Map<WriteLog.RecordKey, Raw> scanRaw(
      DistributedStorage storage, Properties props, List<String[]> tables) throws Exception {
    Map<WriteLog.RecordKey, Raw> out = new TreeMap<>();
    for (String[] t : tables) {
      TableMetadata md = Bank.metadata(t[0], t[1]);
      for (Scan scan : Records.scans(props, t[0], t[1], md)) {
        try (Scanner scanner = storage.scan(scan)) {
          for (Result r : scanner) {
            Map<String, String> cols = new TreeMap<>(Records.render(r));
            Map<String, String> key = new LinkedHashMap<>();
            for (String k : md.getPartitionKeyNames()) {
              key.put(k, cols.get(k));
            }
            for (String k : md.getClusteringKeyNames()) {
              key.put(k, cols.get(k));
            }
            String st = cols.get("tx_state");
            Raw raw = new Raw(cols.get("tx_id"), st == null ? null : Integer.valueOf(st), cols);
            out.put(new WriteLog.RecordKey(t[0] + "." + t[1], key), raw);
          }
        }
      }
    }
    return out;
  }

  static boolean pending(Raw r) {
    return r.txState() != null && (r.txState() == 1 || r.txState() == 2);
  }

  static Result0 run(Properties props, List<String[]> tables, List<String> txIds) throws Exception {
    DistributedStorage storage = Records.openStorage(props);
    DistributedTransactionManager tm = Compat.transactionManager(props);
    try {
      Map<WriteLog.RecordKey, Raw> before = scanRaw(storage, props, tables);
      Map<String, String> states = new LinkedHashMap<>();
      for (String id : txIds) {
        states.put(id, tm.getState(id).name());
      }
      Map<WriteLog.RecordKey, Raw> pendingBefore = new TreeMap<>();
      before.forEach((k, v) -> {
        if (pending(v)) {
          pendingBefore.put(k, v);
        }
      });
      List<String> errors = new ArrayList<>();
      int rounds = 0;
      Map<WriteLog.RecordKey, Raw> after = before;
      long deadline = System.currentTimeMillis() + 60_000;
      while (true) {
        boolean stillPending = false;
        for (WriteLog.RecordKey k : pendingBefore.keySet()) {
          Raw r = after.get(k);
          if (r != null && pending(r)) {
            stillPending = true;
            break;
          }
        }
        if (!stillPending || System.currentTimeMillis() > deadline) {
          break;
        }
        rounds++;
        readAll(tm, props, tables, errors);
        readPending(tm, pendingBefore, after, errors);
        Thread.sleep(rounds == 1 ? 200 : 500);
        after = scanRaw(storage, props, tables);
      }
      List<Outcome> outcomes = new ArrayList<>();
      for (Map.Entry<WriteLog.RecordKey, Raw> e : pendingBefore.entrySet()) {
        outcomes.add(new Outcome(e.getKey(), e.getValue(), after.get(e.getKey())));
      }
      return new Result0(before, states, outcomes, rounds, errors);
    } finally {
      tm.close();
      storage.close();
    }
  }

  /** Scan all of every table, each in its own transaction (3.4: one Scan per partition). */
  private static void readAll(
      DistributedTransactionManager tm, Properties props, List<String[]> tables, List<String> errors) {
    for (String[] t : tables) {
      DistributedTransaction tx = null;
      try {
        tx = Compat.begin(tm);
        for (Scan scan : Records.scans(props, t[0], t[1], Bank.metadata(t[0], t[1]))) {
          tx.scan(scan);
        }
        tx.commit();
      } catch (Exception e) {
        errors.add("scan " + t[0] + "." + t[1] + ": " + e.getClass().getSimpleName() + ": " + e.getMessage());
        rollbackQuietly(tx);
      }
    }
  }

  /** Get each record that is still pending, each in its own transaction. */
  private static void readPending(
      DistributedTransactionManager tm,
      Map<WriteLog.RecordKey, Raw> pendingBefore,
      Map<WriteLog.RecordKey, Raw> current,
      List<String> errors) {
    for (WriteLog.RecordKey k : pendingBefore.keySet()) {
      Raw r = current.get(k);
      if (r == null || !pending(r)) {
        continue;
      }
      String[] nt = k.table().split("\\.", 2);
      TableMetadata md = Bank.metadata(nt[0], nt[1]);
      Get g =
          Records.get(
              nt[0],
              nt[1],
              key(md, md.getPartitionKeyNames(), k.key()),
              md.getClusteringKeyNames().isEmpty()
                  ? null
                  : key(md, md.getClusteringKeyNames(), k.key()));
      DistributedTransaction tx = null;
      try {
        tx = Compat.begin(tm);
        tx.get(g);
        tx.commit();
      } catch (Exception e) {
        errors.add("get " + k + ": " + e.getClass().getSimpleName() + ": " + e.getMessage());
        rollbackQuietly(tx);
      }
    }
  }

  private static Key key(TableMetadata md, Iterable<String> names, Map<String, String> values) {
    Key.Builder b = Key.newBuilder();
    for (String n : names) {
      String v = values.get(n);
      switch (md.getColumnDataType(n)) {
        case INT:
          b.addInt(n, Integer.parseInt(v));
          break;
        case BIGINT:
          b.addBigInt(n, Long.parseLong(v));
          break;
        default:
          b.addText(n, v);
      }
    }
    return b.build();
  }

  private static void rollbackQuietly(DistributedTransaction tx) {
    if (tx == null) {
      return;
    }
    try {
      Compat.rollback(tx);
    } catch (Exception ignored) {
      // the transaction may already be finished
    }
  }
}
