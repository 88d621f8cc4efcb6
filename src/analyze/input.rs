//! What a scan hands to the analysis: per-table counts and watermarks, the records that
//! need a second look, and what the Coordinator holds. Built by `store`, read by `analyze`.

use crate::model::{CoordinatorRows, RecordKey, RecordMeta, TableRef};

/// A record the analysis must look at, with the Coordinator rows for its `tx_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRecord {
    pub key: RecordKey,
    pub meta: RecordMeta,
    pub coordinator: CoordinatorRows,
}

/// Everything one scan observed.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub tables: Vec<TableObservation>,
    pub coordinator: CoordinatorObservation,
    pub discovery: Vec<DiscoveryNote>,
    /// The storages scanned, each with the tables routed to it (empty: none named).
    pub storages: Vec<super::StorageObservation>,
}

#[derive(Clone, Debug)]
pub struct TableObservation {
    pub table: TableRef,
    pub outcome: TableOutcome,
}

#[derive(Clone, Debug)]
pub enum TableOutcome {
    Scanned(TableScan),
    /// Listed in ScalarDB's metadata but absent from the database.
    Missing,
    /// The scan failed; the reason is the error chain, already rendered.
    Failed(String),
    /// The table exists but the account may not read it; the reason is the database's own.
    Denied(String),
}

/// The result of scanning one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableScan {
    pub records: u64,
    pub max_prepared_at: Option<i64>,
    pub max_committed_at: Option<i64>,
    /// Every record that is not plainly committed (`RecordMeta::is_plainly_committed`).
    pub exceptional: Vec<ObservedRecord>,
    /// COMMITTED records whose transaction has no COMMITTED Coordinator state and that
    /// `Retention` says matter (their transaction is unresolved elsewhere, or aborted).
    pub unconfirmed_relevant: Vec<ObservedRecord>,
    /// How many other COMMITTED records have no COMMITTED Coordinator state.
    pub unconfirmed_other_count: u64,
    /// The few with the smallest keys, as evidence.
    pub unconfirmed_other_samples: Vec<ObservedRecord>,
}

/// What the Coordinator table holds.
#[derive(Clone, Debug, Default)]
pub enum CoordinatorObservation {
    #[default]
    Missing,
    Present(CoordinatorScan),
    /// The Coordinator table is there but could not be read (a permission, a corrupt row);
    /// the reason is the error chain, already rendered.
    Unreadable {
        table: TableRef,
        reason: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorScan {
    pub table: Option<TableRef>,
    pub rows: u64,
    pub committed: u64,
    pub aborted: u64,
    pub max_created_at: Option<i64>,
    /// The table has `tx_child_ids`: it was created with group commit on.
    pub has_child_ids: bool,
    /// The table has `tx_write_set`: 3.19 write-set logging, so rows may be cleaned up.
    pub has_write_set: bool,
    /// Rows whose state is not COMMITTED or ABORTED, or whose `tx_created_at` is NULL, and
    /// (from a store without a key on `tx_id`) rows that share their `tx_id` with another:
    /// ScalarDB keeps one state per transaction, so a valid-looking row here is a duplicate.
    pub invalid_rows: Vec<crate::model::CoordinatorRow>,
    pub invalid_count: u64,
}

/// Something discovery noticed before any record was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryNote {
    /// No ScalarDB tables at all: not a ScalarDB database, or everything was excluded.
    NoTransactionalTables { searched: String },
    /// ScalarDB's metadata table describes the table without all of its metadata columns.
    MetadataIncomplete {
        table: TableRef,
        missing_columns: Vec<String>,
    },
    /// Something discovery must read exists but the account may not read it (`object` is a
    /// table's name); `reason` is the database's own message.
    PermissionDenied { object: String, reason: String },
    /// Rows of ScalarDB's metadata table that ScalarDB could not have written (a NULL
    /// `full_table_name` or `column_name`): the tables they describe are unknown.
    InvalidMetadataRows { table: String, rows: u64 },
}
