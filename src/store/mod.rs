//! Reading ScalarDB's tables: discovery of the transactional tables and the Coordinator,
//! and the scans that feed `analyze`. `sql.rs` is the only file that talks to sqlx;
//! `dialect.rs` builds the SQL it sends; `discover.rs` turns catalogs into table schemas.

mod dialect;
mod discover;
mod sql;

pub use dialect::Dialect;
pub use discover::{DiscoveredTable, Discovery, DiscoverySettings, TableFilter};
pub use sql::{DisposableWriter, Param, Scalar, SqlError, SqlStore, WriteError};

use crate::model::TableRef;

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
