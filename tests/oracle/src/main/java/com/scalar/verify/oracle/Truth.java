package com.scalar.verify.oracle;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Ground truth derived from the write log: the expected verdict of a backup, and a check that each
 * transaction really is at the crash point the scenario says it left it at.
 *
 * <p>The verdict follows the output contract's definition, applied to the model of what was
 * written (the data cut's records and the Coordinator cut's rows), never to a scan of the backup.
 */
final class Truth {
  private Truth() {}

  static boolean pending(WriteLog.RecordMeta m) {
    return m.txState() != null && (m.txState() == 1 || m.txState() == 2);
  }

  static Optional<Integer> state(WriteLog.Snapshot coordinator, String txId) {
    return coordinator.stateOf(txId).map(WriteLog.CoordinatorRow::state);
  }

  static String verdict(WriteLog.Snapshot data, WriteLog.Snapshot coordinator) {
    Set<String> pendingTx = new HashSet<>();
    for (WriteLog.RecordMeta m : data.records().values()) {
      if (pending(m)) {
        pendingTx.add(m.txId());
      }
    }
    if (pendingTx.isEmpty()) {
      return "consistent";
    }
    for (WriteLog.RecordMeta m : data.records().values()) {
      if (m.txState() == null || m.txState() != 3 || m.txId() == null) {
        continue;
      }
      Optional<Integer> st = state(coordinator, m.txId());
      if (st.isPresent() && st.get() == 4) {
        return "inconsistent";
      }
      if (pendingTx.contains(m.txId()) && (st.isEmpty() || st.get() != 3)) {
        return "inconsistent";
      }
    }
    return "recoverable";
  }

  /**
   * The records a transaction the Coordinator cut shows COMMITTED wrote (still carrying its id when
   * the Coordinator was cut) that the data cut holds at another, older version or not at all: what
   * write-set logging lets a verifier prove lost. Empty for a single-instant cut.
   */
  static List<Map<String, Object>> missingWrites(WriteLog.Snapshot data, WriteLog.Snapshot coordinator) {
    List<Map<String, Object>> out = new ArrayList<>();
    for (Map.Entry<WriteLog.RecordKey, WriteLog.RecordMeta> e : coordinator.records().entrySet()) {
      String txId = e.getValue().txId();
      if (txId == null || !state(coordinator, txId).equals(Optional.of(3))) {
        continue;
      }
      WriteLog.RecordMeta copied = data.records().get(e.getKey());
      if (copied == null || !txId.equals(copied.txId())) {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("tx_id", txId);
        m.put("table", e.getKey().table());
        m.put("key", e.getKey().key());
        out.add(m);
      }
    }
    return out;
  }

  /** Returns a list of problems (empty if every label matches what the write log shows). */
  static List<String> checkCrashPoints(CaseContext ctx) {
    List<String> problems = new ArrayList<>();
    WriteLog.Snapshot data = ctx.dataCut;
    for (CaseContext.Tx tx : ctx.txs) {
      int p = 0;
      for (Map.Entry<WriteLog.RecordKey, WriteLog.RecordMeta> e : data.records().entrySet()) {
        if (tx.id.equals(e.getValue().txId()) && pending(e.getValue())) {
          p++;
        }
      }
      // The Coordinator as it was when the data was cut: where the transaction really was.
      Optional<Integer> st = state(data, tx.id);
      String pending = p == 0 ? "none" : p == tx.writes ? "all" : "some";
      String s = st.map(v -> v == 3 ? "COMMITTED" : v == 4 ? "ABORTED" : "?" + v).orElse("NONE");
      String want = expectation(tx.crashPoint);
      String got = s + "/" + pending;
      if (want != null && !want.equals(got) && !Variant.current().allows(tx.crashPoint, got)) {
        problems.add(
            "tx " + tx.id + " labelled " + tx.crashPoint + " expects " + want + " but the write log shows "
                + got + " (" + p + " of " + tx.writes + " records pending) " + tx.notes);
      }
    }
    return problems;
  }

  /** Coordinator state at the data cut / which of the transaction's records are pending. */
  private static String expectation(String crashPoint) {
    switch (crashPoint) {
      case "committed":
        return "COMMITTED/none";
      case "prepared_all":
        return "NONE/all";
      case "prepared_some":
        return "NONE/some";
      case "state_committed_no_records":
        return "COMMITTED/all";
      case "committed_some":
        return "COMMITTED/some";
      case "aborted_state_written":
        return "ABORTED/all";
      case "aborted_prepared_some":
      case "aborted_rolled_back_some":
        return "ABORTED/some";
      case "aborted":
        return "ABORTED/none";
      case "not_written":
      case "after_data_cut":
      case "one_phase_committed":
        return "NONE/none";
      default:
        return null;
    }
  }
}
