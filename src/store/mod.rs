//! Reading ScalarDB's tables: discovery of the transactional tables and the Coordinator,
//! and the scans that feed `analyze`. `sql.rs` is the only file that talks to sqlx;
//! `dialect.rs` builds the SQL it sends; `discover.rs` turns catalogs into table schemas.
//! `cassandra.rs` is the only file that talks to the scylla driver.
//!
//! The scan job sees a store through three seams: the catalog and the joined phases
//! ([`Store`]: discovery, and the fast path where the Coordinator shares the database with
//! a table), the records alone ([`RecordSource`]), and the Coordinator alone
//! ([`CoordinatorSource`]). The last two let a table be checked against a Coordinator in
//! another database: the job folds the Coordinator into an index and point-reads the rows
//! that matter (`scan/coordinator.rs`, `scan/resolve.rs`).

mod cassandra;
mod dialect;
mod discover;
mod disposable;
mod sql;

pub use cassandra::{
    CassandraCredentials, CassandraError, CassandraScanOptions, CassandraStore, CassandraWriter,
    CqlFailure, CqlParam, ObservedAs, ReadConsistency,
};
pub use dialect::Dialect;
pub use discover::{DiscoveredTable, Discovery, DiscoverySettings, TableFilter};
pub use disposable::{DisposableWriter, Param, Scalar, WriteError};
pub use sql::{SqlError, SqlStore, settle_sqlite_copy};

use crate::analyze::{CoordinatorScan, ObservedRecord, Retention, TableScan};
use crate::model::write_set::{KeyValue, StoredWriteSet};
use crate::model::{CoordinatorRow, RecordKey, TableRef};

/// What a backend must offer the scan job. Implemented by `SqlStore` (PostgreSQL, MySQL,
/// SQLite); a backend without joins (Cassandra) implements the same phases its own way.
/// Used generically under one runtime's `block_on`, never as `dyn`, so futures need not be
/// `Send`.
#[expect(
    async_fn_in_trait,
    reason = "used generically under block_on, never as dyn or across threads"
)]
pub trait Store {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The transactional tables, their keys, and the Coordinator table.
    async fn discover(&self, settings: &DiscoverySettings<'_>) -> Result<Discovery, Self::Error>;

    /// Counts and watermarks of the Coordinator, and its invalid rows.
    async fn scan_coordinator(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<CoordinatorScan, Self::Error>;

    /// Phase 1 of a table: counts, watermarks and every record that is not plainly
    /// committed, each with the Coordinator rows for its transaction.
    async fn scan_exceptional(
        &self,
        table: &TableSchema,
        coordinator: Option<&CoordinatorSchema>,
    ) -> Result<TableScan, Self::Error>;

    /// Phase 2 of a table: COMMITTED records the Coordinator does not confirm, filed
    /// through `retention` into `scan`.
    async fn scan_unconfirmed(
        &self,
        table: &TableSchema,
        coordinator: &CoordinatorSchema,
        retention: &Retention,
        scan: &mut TableScan,
    ) -> Result<(), Self::Error>;
}

/// A table's records without the Coordinator: what a table in another storage than the
/// Coordinator's offers the scan job.
#[expect(
    async_fn_in_trait,
    reason = "used generically under block_on, never as dyn or across threads"
)]
pub trait RecordSource: Store {
    /// Whether any COMMITTED record (as `fold_committed` selects them) has a `wanted`
    /// `tx_id`, reading only `tx_id`s and stopping at the first batch holding one: in a
    /// healthy copy none is, and `fold_committed`'s wider read is skipped. `wanted` is
    /// asked of batches of ids (whether any of them is wanted), so its lookups can overlap.
    async fn any_committed(
        &self,
        table: &TableSchema,
        wanted: &dyn Fn(&[&str]) -> bool,
    ) -> Result<bool, Self::Error>;

    /// Folds every COMMITTED record (`tx_state` 3, a `tx_id`, `tx_version` >= 1) whose
    /// `tx_id` is `wanted` into accumulators with `add` (the key is decoded only for
    /// those), merged with `merge`. Never joins.
    async fn fold_committed<A, W, F, M>(
        &self,
        table: &TableSchema,
        wanted: &W,
        add: &F,
        merge: &M,
    ) -> Result<A, Self::Error>
    where
        A: Default,
        W: Fn(&str) -> bool,
        F: Fn(&mut A, ObservedRecord),
        M: Fn(&mut A, A);
}

/// The Coordinator table alone: every row folded, or one row by id.
#[expect(
    async_fn_in_trait,
    reason = "used generically under block_on, never as dyn or across threads"
)]
pub trait CoordinatorSource: Store {
    /// Folds every row (`tx_id`, `tx_state`, `tx_created_at`, `tx_child_ids`).
    async fn fold_coordinator<A, F, M>(
        &self,
        coordinator: &CoordinatorSchema,
        add: &F,
        merge: &M,
    ) -> Result<A, Self::Error>
    where
        A: Default,
        F: Fn(&mut A, CoordinatorRow),
        M: Fn(&mut A, A);

    /// The row keyed by `tx_id`, if any (the first, should a table without a key hold
    /// several: those are reported as invalid rows by `scan_coordinator`).
    async fn read_coordinator_row(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<CoordinatorRow>, Self::Error>;

    /// How this store compares the Coordinator's `tx_id`s, which is how ScalarDB's `Get`
    /// finds a transaction's row. Byte equality unless the store says otherwise.
    async fn coordinator_id_comparison(
        &self,
        _coordinator: &CoordinatorSchema,
    ) -> Result<IdComparison, Self::Error> {
        Ok(IdComparison::Bytewise)
    }

    /// The rows keyed by each of `tx_ids`, in any order, the first of each id as
    /// `read_coordinator_row` gives it; an id without a row has none. Stores that can read
    /// many ids in one query do. Only meaningful where ids compare bytewise
    /// ([`IdComparison`]): a row is returned under its own id.
    async fn read_coordinator_rows(
        &self,
        coordinator: &CoordinatorSchema,
        tx_ids: &[&str],
    ) -> Result<Vec<CoordinatorRow>, Self::Error> {
        let mut rows = Vec::new();
        for tx_id in tx_ids {
            rows.extend(self.read_coordinator_row(coordinator, tx_id).await?);
        }
        Ok(rows)
    }
}

/// What the write-set proof reads (3.19 write-set logging): the Coordinator's write sets,
/// and records by primary key.
#[expect(
    async_fn_in_trait,
    reason = "used generically under block_on, never as dyn or across threads"
)]
pub trait WriteSetSource: Store {
    /// How many COMMITTED Coordinator rows carry a write set, where the store counts them
    /// without reading them (`None`: counting would stream every row, as on Cassandra; the
    /// proof then streams them once, unfiltered).
    async fn count_write_sets(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<Option<u64>, Self::Error>;

    /// Folds every COMMITTED Coordinator row carrying a write set, created at or after
    /// `since` (all when `None`), and every COMMITTED row created inside `window` (the cut
    /// window, `[from, to]`), with or without one; a BLOB over
    /// [`crate::model::write_set::MAX_WRITE_SET_BYTES`] arrives as its length.
    async fn fold_write_sets<A, F, M>(
        &self,
        coordinator: &CoordinatorSchema,
        since: Option<i64>,
        window: Option<(i64, i64)>,
        add: &F,
        merge: &M,
    ) -> Result<A, Self::Error>
    where
        A: Default,
        F: Fn(&mut A, StoredWriteSet),
        M: Fn(&mut A, A);

    /// The row keyed by `tx_id`, when it carries a write set.
    async fn read_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<StoredWriteSet>, Self::Error>;

    /// The records with these keys (each in the schema's key order, rendered as the scan
    /// renders keys), as many at a time as the store allows; a key with no record is left
    /// out. Keys of a type the store cannot bind exactly are the caller's to leave out
    /// ([`key_is_exact`]).
    async fn read_records(
        &self,
        table: &TableSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<ObservedRecord>, Self::Error>;
}

/// Whether a write set's key value is rendered exactly as the scan renders this store's
/// key of the same column (integers, text, booleans, blobs everywhere; floats, dates, times
/// and timestamps only where the store renders them itself).
pub fn key_is_exact(value: &KeyValue) -> bool {
    matches!(
        value,
        KeyValue::Int(_)
            | KeyValue::BigInt(_)
            | KeyValue::Text(_)
            | KeyValue::Boolean(_)
            | KeyValue::Blob(_)
    )
}

/// How a key column's values are rendered as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Text,
    Boolean,
    Blob,
}

impl KeyKind {
    /// From a ScalarDB data type (`BOOLEAN`, `BLOB`, …) or a catalog type (`bytea`, `tinyint(1)`…).
    pub fn from_type_name(type_name: &str) -> Self {
        let lower = type_name.to_ascii_lowercase();
        if lower == "boolean" || lower == "bool" {
            Self::Boolean
        } else if lower.contains("blob") || lower == "bytea" || lower.contains("binary") {
            Self::Blob
        } else {
            Self::Text
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyColumn {
    pub name: String,
    pub kind: KeyKind,
    /// The column's type as the database catalog names it (`integer`, `varchar`, …), for
    /// binding key values in the recovery rehearsal's writes.
    pub sql_type: String,
}

/// A transactional table and its key (partition columns, then clustering columns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    pub table: TableRef,
    pub keys: Vec<KeyColumn>,
    /// Non-key user columns that have a `before_` twin: what a roll back restores.
    pub after_image_columns: Vec<String>,
    /// The two physical tables behind `table` when ScalarDB 3.17+'s transaction-metadata
    /// decoupling made it a view. The scan reads the metadata where it lies, so a metadata
    /// row whose data row is missing (or the reverse) is still seen; recovery writes both.
    pub decoupled: Option<DecoupledSources>,
}

/// A decoupled table's sources: the user columns in `data` (`<t>_data`), the key, the
/// metadata and the before images in `metadata` (`<t>_tx_metadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoupledSources {
    pub data: TableRef,
    pub metadata: TableRef,
}

impl TableSchema {
    /// The table the scan reads the records' keys and metadata from, and the one every
    /// recovery write conditions on.
    pub fn source(&self) -> &TableRef {
        self.decoupled.as_ref().map_or(&self.table, |d| &d.metadata)
    }
}

/// How a store matches a looked-up `tx_id` to the Coordinator's rows. ScalarDB reads a
/// transaction's state with a `Get` by `tx_id`, so the store's own comparison decides which
/// row it finds: on MariaDB, whose default collations ignore case and trailing blanks, a
/// record of `abc` finds the row `ABC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdComparison {
    /// Equal ids are equal bytes: a row is found by its own id only.
    Bytewise,
    /// Some other comparison (a collation, a padding type), or one the catalog does not
    /// show: only the store can say which row an id finds.
    Collated,
}

impl IdComparison {
    /// The comparison of a Coordinator `tx_id` column from what the catalog says of it
    /// (`None`: the catalog does not show the column). Byte equality is claimed only for
    /// the types and collations known to compare bytes; anything else, or anything the
    /// catalog does not show, is left to the store.
    pub fn of_column(dialect: Dialect, column: Option<(&str, &str, &str)>) -> Self {
        let Some((data_type, collation, detail)) = column else {
            return Self::Collated;
        };
        let data_type_lower = data_type.to_ascii_lowercase();
        let bytewise = match dialect {
            // A deterministic collation compares equal only equal bytes; `character(n)`
            // pads, and a domain or an extension type (citext) compares as it likes.
            Dialect::Postgres => {
                let base = data_type_lower.split('(').next().unwrap_or("").trim();
                matches!(base, "text" | "character varying") && detail == "deterministic"
            }
            // Binary strings compare bytes; of the text collations only the NO PAD binary
            // ones of utf8mb4 (others pad, fold case or lose characters in conversion).
            Dialect::MySql => {
                matches!(
                    data_type_lower.as_str(),
                    "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
                ) || (detail.eq_ignore_ascii_case("utf8mb4")
                    && (collation.eq_ignore_ascii_case("utf8mb4_nopad_bin")
                        || collation.eq_ignore_ascii_case("utf8mb4_0900_bin")))
            }
            // TEXT affinity (SQLite's rules: INT first) and no COLLATE anywhere in the
            // table's definition (NOCASE and RTRIM are built in).
            Dialect::Sqlite => {
                let upper = data_type.to_ascii_uppercase();
                !upper.contains("INT")
                    && ["CHAR", "CLOB", "TEXT"].iter().any(|t| upper.contains(t))
                    && !collation.to_ascii_uppercase().contains("COLLATE")
            }
        };
        if bytewise {
            Self::Bytewise
        } else {
            Self::Collated
        }
    }
}

/// The Coordinator table and the optional columns that change how it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorSchema {
    pub table: TableRef,
    pub has_child_ids: bool,
    pub has_write_set: bool,
}

/// Discovery settings borrowed from a validated configuration.
pub fn discover_settings<'a>(
    coordinator_namespace: &'a str,
    metadata_schema: &'a str,
    filter: &'a TableFilter,
) -> DiscoverySettings<'a> {
    DiscoverySettings {
        coordinator_namespace,
        metadata_schema,
        filter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(dialect: Dialect, column: (&str, &str, &str)) -> IdComparison {
        IdComparison::of_column(dialect, Some(column))
    }

    #[test]
    fn ids_compare_bytewise_only_where_the_catalog_shows_it() {
        use IdComparison::Bytewise;
        // What ScalarDB creates: text on PostgreSQL and SQLite compares bytes.
        assert_eq!(
            of(
                Dialect::Postgres,
                ("character varying(128)", "default", "deterministic")
            ),
            Bytewise
        );
        assert_eq!(
            of(Dialect::Postgres, ("text", "", "deterministic")),
            Bytewise
        );
        assert_eq!(
            of(
                Dialect::Sqlite,
                (
                    "TEXT",
                    "CREATE TABLE \"coordinator$state\" (tx_id TEXT)",
                    ""
                )
            ),
            Bytewise
        );
        assert_eq!(
            of(Dialect::MySql, ("varchar", "utf8mb4_nopad_bin", "utf8mb4")),
            Bytewise
        );
        assert_eq!(of(Dialect::MySql, ("varbinary", "", "")), Bytewise);
        // What a backup can hold instead, each found by the storage's own comparison.
        for (dialect, column) in [
            // MariaDB's default for ScalarDB's VARCHAR(128): case and trailing blanks.
            (Dialect::MySql, ("varchar", "latin1_swedish_ci", "latin1")),
            (Dialect::MySql, ("varchar", "utf8mb4_general_ci", "utf8mb4")),
            // PAD SPACE, and a binary collation of a character set that loses characters.
            (Dialect::MySql, ("varchar", "utf8mb4_bin", "utf8mb4")),
            (Dialect::MySql, ("varchar", "latin1_nopad_bin", "latin1")),
            (Dialect::Postgres, ("text", "und-ci", "nondeterministic")),
            (
                Dialect::Postgres,
                ("character(128)", "default", "deterministic"),
            ),
            (Dialect::Postgres, ("citext", "", "deterministic")),
            (
                Dialect::Sqlite,
                ("TEXT", "CREATE TABLE s (tx_id TEXT COLLATE NOCASE)", ""),
            ),
            (
                Dialect::Sqlite,
                ("INTEGER", "CREATE TABLE s (tx_id INTEGER)", ""),
            ),
            (
                Dialect::Sqlite,
                ("CHARINT", "CREATE TABLE s (tx_id CHARINT)", ""),
            ),
        ] {
            assert!(
                of(dialect, column) == IdComparison::Collated,
                "{dialect:?} {column:?}"
            );
        }
        assert_eq!(
            IdComparison::of_column(Dialect::Postgres, None),
            IdComparison::Collated
        );
    }
}
