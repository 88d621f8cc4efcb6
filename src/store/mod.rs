//! Reading ScalarDB's tables: discovery of the transactional tables and the Coordinator,
//! and the scans that feed `analyze`. `sql.rs` is the only file that talks to sqlx;
//! `dialect.rs` builds the SQL it sends; `discover.rs` turns catalogs into table schemas.
//! `cassandra.rs` is the only file that talks to the scylla driver.

mod cassandra;
mod dialect;
mod discover;
mod sql;

pub use cassandra::{
    CassandraCredentials, CassandraError, CassandraScanOptions, CassandraStore, CassandraWriter,
    CqlFailure, CqlParam, ObservedAs, ReadConsistency,
};
pub use dialect::Dialect;
pub use discover::{DiscoveredTable, Discovery, DiscoverySettings, TableFilter};
pub use sql::{
    DisposableWriter, Param, Scalar, SqlError, SqlStore, WriteError, settle_sqlite_copy,
};

use crate::analyze::{CoordinatorScan, Retention, TableScan};
use crate::model::TableRef;

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
