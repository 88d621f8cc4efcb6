//! From a cut to the crate's `Observation`, built the way the SQL store builds it
//! (`src/store/dialect.rs`, `src/store/sql.rs`, `src/scan.rs`): per table the record count,
//! `MAX(tx_prepared_at)` and `MAX(tx_committed_at)`, every record that is not plainly
//! committed with the Coordinator row for its `tx_id`; then, with `Retention` built from all
//! of those, the COMMITTED records whose transaction has no COMMITTED Coordinator row; and the
//! Coordinator's counts. No group commit: the parent row is never looked up.

use scalardb_verify::analyze::{
    CoordinatorObservation, CoordinatorScan, Observation, ObservedRecord, Retention,
    TableObservation, TableOutcome, TableScan,
};
use scalardb_verify::model::{CoordinatorRow, CoordinatorRows, RecordKey, RecordMeta, TableRef};

use crate::sim::{ABORTED, COMMITTED, Row, Slot, TABLES};
use crate::truth::Cut;

pub fn table_ref(table: usize) -> TableRef {
    let (namespace, name) = TABLES[table];
    TableRef::new(namespace, name)
}

pub fn record_key(key: usize) -> RecordKey {
    RecordKey(vec![("id".to_owned(), key.to_string())])
}

fn observed(cut: &Cut, key: usize, row: &Row) -> ObservedRecord {
    ObservedRecord {
        key: record_key(key),
        meta: RecordMeta {
            tx_id: row.after.tx_id.clone(),
            tx_state: row.after.tx_state,
            tx_version: row.after.tx_version,
            tx_prepared_at: row.after.tx_prepared_at,
            tx_committed_at: row.after.tx_committed_at,
            before_tx_id: row.before.tx_id.clone(),
            before_tx_state: row.before.tx_state,
            before_tx_version: row.before.tx_version,
        },
        // `LEFT JOIN coordinator c ON c.tx_id = r.tx_id`.
        coordinator: CoordinatorRows {
            exact: row.after.tx_id.as_ref().and_then(|id| {
                cut.coordinator.get(id).map(|entry| CoordinatorRow {
                    tx_id: id.clone(),
                    tx_state: Some(entry.state),
                    tx_created_at: Some(entry.created_at),
                    tx_child_ids: None,
                })
            }),
            parent: None,
        },
    }
}

pub fn observe(cut: &Cut) -> Observation {
    let rows = |table: usize| {
        cut.tables[table]
            .iter()
            .enumerate()
            .filter_map(|(key, slot)| match slot {
                Slot::Present(row) => Some((key, row)),
                Slot::Absent(_) => None,
            })
    };
    // Phase 1: counts, watermarks and exceptional records.
    let mut scans: Vec<TableScan> = (0..TABLES.len())
        .map(|table| TableScan {
            records: u64::try_from(rows(table).count()).expect("a few rows"),
            max_prepared_at: rows(table)
                .filter_map(|(_, row)| row.after.tx_prepared_at)
                .max(),
            max_committed_at: rows(table)
                .filter_map(|(_, row)| row.after.tx_committed_at)
                .max(),
            exceptional: rows(table)
                .map(|(key, row)| observed(cut, key, row))
                .filter(|record| !record.meta.is_plainly_committed())
                .collect(),
            ..TableScan::default()
        })
        .collect();
    // Phase 2: `tx_state = 3 AND tx_id IS NOT NULL AND tx_version >= 1 AND
    // COALESCE(c.tx_state, 0) <> 3`, filed through `Retention`.
    let retention = Retention::from_exceptional(scans.iter().flat_map(|scan| &scan.exceptional));
    for (table, scan) in scans.iter_mut().enumerate() {
        for (key, row) in rows(table) {
            let unconfirmed = row.after.tx_state == Some(COMMITTED)
                && row.after.tx_version.is_some_and(|v| v >= 1)
                && row.after.tx_id.as_ref().is_some_and(|id| {
                    cut.coordinator
                        .get(id)
                        .is_none_or(|entry| entry.state != COMMITTED)
                });
            if unconfirmed {
                retention.file(scan, observed(cut, key, row));
            }
        }
    }
    let count = |state: i64| {
        u64::try_from(
            cut.coordinator
                .values()
                .filter(|entry| entry.state == state)
                .count(),
        )
        .expect("a few rows")
    };
    Observation {
        tables: scans
            .into_iter()
            .enumerate()
            .map(|(table, scan)| TableObservation {
                table: table_ref(table),
                outcome: TableOutcome::Scanned(scan),
            })
            .collect(),
        coordinator: CoordinatorObservation::Present(CoordinatorScan {
            table: Some(TableRef::new("coordinator", "state")),
            rows: u64::try_from(cut.coordinator.len()).expect("a few rows"),
            committed: count(COMMITTED),
            aborted: count(ABORTED),
            max_created_at: cut.coordinator.values().map(|entry| entry.created_at).max(),
            min_created_at: cut.coordinator.values().map(|entry| entry.created_at).min(),
            recent_committed: None,
            has_child_ids: false,
            has_write_set: false,
            invalid_rows: Vec::new(),
            invalid_count: 0,
        }),
        discovery: Vec::new(),
        storages: Vec::new(),
        at_risk_transactions: None,
        committed_after: None,
    }
}
