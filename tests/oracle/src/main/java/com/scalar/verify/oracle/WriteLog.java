package com.scalar.verify.oracle;

import com.scalar.db.api.Delete;
import com.scalar.db.api.Mutation;
import com.scalar.db.api.Put;
import com.scalar.db.io.Key;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * The ground truth of a case: every storage write that ScalarDB made and that succeeded, replayed
 * into a model of each record's (tx_id, tx_state) and of each Coordinator row.
 *
 * <p>The faulty storage wrapper calls {@link #applied} after the wrapped JDBC storage has committed
 * a batch. Nothing here reads the database: a cut is a copy of the model at the moment a backup is
 * taken, so the expected verdict comes from what happened, not from what a scan of the backup shows.
 */
final class WriteLog {
  /** A record's identity: "ns.table" plus its key columns rendered as strings, in key order. */
  record RecordKey(String table, Map<String, String> key) implements Comparable<RecordKey> {
    @Override
    public int compareTo(RecordKey o) {
      int c = table.compareTo(o.table);
      return c != 0 ? c : key.toString().compareTo(o.key.toString());
    }
  }

  /** The transaction metadata of a record as the model knows it. */
  record RecordMeta(String txId, Integer txState) {}

  /** A Coordinator row. childIds is empty unless the row was written by a group commit. */
  record CoordinatorRow(String txId, int state, List<String> childIds) {}

  /** An immutable copy of the model. */
  record Snapshot(
      int seq,
      Map<RecordKey, RecordMeta> records,
      Map<String, CoordinatorRow> coordinator) {

    /** ScalarDB's lookup rule for a (possibly group-commit) id: parent row listing the child, else the full id. */
    Optional<CoordinatorRow> stateOf(String txId) {
      // '$' from 3.15; 3.13 and 3.14 joined parent and child with ':'.
      if (txId.length() > 24 && (txId.charAt(24) == '$' || txId.charAt(24) == ':')) {
        CoordinatorRow parent = coordinator.get(txId.substring(0, 24));
        if (parent != null && parent.childIds().contains(txId.substring(25))) {
          return Optional.of(parent);
        }
      }
      return Optional.ofNullable(coordinator.get(txId));
    }

    /**
     * The row a storage whose comparison folds case finds for a plain id: one keyed by the id
     * itself, else one whose id differs only in case (the table's key allows one of them).
     */
    Optional<CoordinatorRow> stateOfIgnoringCase(String txId) {
      return stateOf(txId)
          .or(() -> coordinator.values().stream().filter(r -> r.txId().equalsIgnoreCase(txId)).findFirst());
    }
  }

  private final String coordinatorTable;
  private final Map<RecordKey, RecordMeta> records = new TreeMap<>();
  private final Map<String, CoordinatorRow> coordinator = new LinkedHashMap<>();
  private final List<String> trace = new ArrayList<>();
  private long lastWriteMillis;
  private int seq;

  WriteLog(String coordinatorNamespace) {
    this.coordinatorTable = coordinatorNamespace + ".state";
  }

  static String tableOf(Mutation m) {
    return m.forNamespace().orElseThrow() + "." + m.forTable().orElseThrow();
  }

  static Map<String, String> render(Key partition, Optional<Key> clustering) {
    Map<String, String> key = new LinkedHashMap<>(Records.render(partition));
    clustering.ifPresent(ck -> key.putAll(Records.render(ck)));
    return key;
  }

  synchronized void applied(List<? extends Mutation> batch) {
    seq++;
    lastWriteMillis = System.currentTimeMillis();
    for (Mutation m : batch) {
      String table = tableOf(m);
      if (table.equals(coordinatorTable)) {
        applyCoordinator(m);
        continue;
      }
      RecordKey key = new RecordKey(table, render(m.getPartitionKey(), m.getClusteringKey()));
      if (m instanceof Delete) {
        records.remove(key);
        trace.add(seq + " delete " + key);
        continue;
      }
      Put put = (Put) m;
      RecordMeta old = records.getOrDefault(key, new RecordMeta(null, null));
      Map<String, String> cols = Records.written(put);
      String txId = old.txId();
      Integer state = old.txState();
      if (cols.containsKey("tx_id")) {
        txId = cols.get("tx_id");
      }
      if (cols.containsKey("tx_state")) {
        state = cols.get("tx_state") == null ? null : Integer.valueOf(cols.get("tx_state"));
      }
      records.put(key, new RecordMeta(txId, state));
      trace.add(seq + " put " + key + " tx_id=" + txId + " tx_state=" + state);
    }
  }

  private void applyCoordinator(Mutation m) {
    String id = Records.render(m.getPartitionKey()).values().iterator().next();
    if (m instanceof Delete) {
      coordinator.remove(id);
      trace.add(seq + " coordinator delete " + id);
      return;
    }
    Map<String, String> cols = Records.written((Put) m);
    int state = Integer.parseInt(cols.get("tx_state"));
    List<String> children = Collections.emptyList();
    String childIds = cols.get("tx_child_ids");
    if (childIds != null && !childIds.isEmpty()) {
      children = Arrays.asList(childIds.split(","));
    }
    coordinator.put(id, new CoordinatorRow(id, state, children));
    trace.add(seq + " coordinator put " + id + " state=" + state + " children=" + children);
  }

  synchronized Snapshot snapshot() {
    return new Snapshot(
        seq,
        Collections.unmodifiableMap(new TreeMap<>(records)),
        Collections.unmodifiableMap(new LinkedHashMap<>(coordinator)));
  }

  synchronized long lastWriteMillis() {
    return lastWriteMillis;
  }

  synchronized List<String> trace() {
    return new ArrayList<>(trace);
  }
}
