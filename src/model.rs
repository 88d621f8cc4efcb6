//! ScalarDB's domain: transaction states, record metadata, Coordinator rows and the
//! Coordinator lookup rule (group commit included).
//!
//! These types mirror what ScalarDB stores (see `shared/scalardb-protocol.md`); they hold
//! no I/O and no policy about verdicts, which belongs to `analyze`.

pub mod write_set;

use std::fmt;

use serde::Serialize;
use serde::ser::SerializeMap;

/// `RecoveryHandler.TRANSACTION_LIFETIME_MILLIS`: a PREPARED record older than this, whose
/// transaction has no Coordinator row, is aborted by the next reader. Not configurable in
/// any 3.x release.
pub const TRANSACTION_LIFETIME_MS: i64 = 15_000;

/// Length of a group-commit parent id (`DefaultGroupCommitKeyManipulator.PRIMARY_KEY_SIZE`).
pub const GROUP_COMMIT_PARENT_ID_LEN: usize = 24;

/// The ten per-record transaction metadata columns every transactional table carries.
pub const TRANSACTION_META_COLUMNS: [&str; 10] = [
    "tx_id",
    "tx_state",
    "tx_version",
    "tx_prepared_at",
    "tx_committed_at",
    "before_tx_id",
    "before_tx_state",
    "before_tx_version",
    "before_tx_prepared_at",
    "before_tx_committed_at",
];

/// `com.scalar.db.api.TransactionState`, as stored in `tx_state` columns.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TxState {
    Prepared,
    Deleted,
    Committed,
    Aborted,
}

impl TxState {
    /// The state for a stored id; `None` for ids ScalarDB never stores (0, 5, anything else).
    pub fn from_id(id: i64) -> Option<Self> {
        match id {
            1 => Some(Self::Prepared),
            2 => Some(Self::Deleted),
            3 => Some(Self::Committed),
            4 => Some(Self::Aborted),
            _ => None,
        }
    }

    pub fn id(self) -> i64 {
        match self {
            Self::Prepared => 1,
            Self::Deleted => 2,
            Self::Committed => 3,
            Self::Aborted => 4,
        }
    }
}

impl fmt::Display for TxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Prepared => "PREPARED",
            Self::Deleted => "DELETED",
            Self::Committed => "COMMITTED",
            Self::Aborted => "ABORTED",
        })
    }
}

/// A stored `tx_state` value, which may be NULL or a value ScalarDB never writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredState {
    /// NULL: an imported record, deemed committed (ScalarDB 3.10+).
    Null,
    Known(TxState),
    Unknown(i64),
}

impl StoredState {
    pub fn from_column(value: Option<i64>) -> Self {
        match value {
            None => Self::Null,
            Some(id) => TxState::from_id(id).map_or(Self::Unknown(id), Self::Known),
        }
    }
}

impl fmt::Display for StoredState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Known(state) => state.fmt(f),
            Self::Unknown(id) => write!(f, "unknown({id})"),
        }
    }
}

/// A ScalarDB table: namespace plus table name, shown as `namespace.table`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    pub namespace: String,
    pub table: String,
}

impl TableRef {
    pub fn new(namespace: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            table: table.into(),
        }
    }

    /// Parses ScalarDB's `full_table_name` (`ns.table`); the namespace ends at the first dot.
    pub fn parse_full_name(full: &str) -> Option<Self> {
        let (namespace, table) = full.split_once('.')?;
        (!namespace.is_empty() && !table.is_empty()).then(|| Self::new(namespace, table))
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.table)
    }
}

impl Serialize for TableRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl schemars::JsonSchema for TableRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TableRef".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A table as NAMESPACE.TABLE."
        })
    }
}

/// A record's primary key: partition then clustering columns, each value rendered as text
/// the same way on every backend (integers in decimal, text as is, booleans `true`/`false`,
/// blobs in lowercase hex).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey(pub Vec<(String, String)>);

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (column, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{column}={value}")?;
        }
        Ok(())
    }
}

impl Serialize for RecordKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (column, value) in &self.0 {
            map.serialize_entry(column, value)?;
        }
        map.end()
    }
}

impl schemars::JsonSchema for RecordKey {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RecordKey".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "A record's primary key, column to value, partition then clustering \
                columns in order; every value as text (integers in decimal, booleans true/false, \
                blobs in lowercase hex).",
            "additionalProperties": { "type": "string" }
        })
    }
}

/// The transaction metadata of one record, as stored. Integers are widened to `i64` so
/// that a corrupt value is reported, not truncated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordMeta {
    pub tx_id: Option<String>,
    pub tx_state: Option<i64>,
    pub tx_version: Option<i64>,
    pub tx_prepared_at: Option<i64>,
    pub tx_committed_at: Option<i64>,
    pub before_tx_id: Option<String>,
    pub before_tx_state: Option<i64>,
    pub before_tx_version: Option<i64>,
}

impl RecordMeta {
    pub fn state(&self) -> StoredState {
        StoredState::from_column(self.tx_state)
    }

    /// `TransactionResult.hasBeforeImage()`: a roll back restores the before image when it
    /// has one, and deletes the record (created by the aborted transaction) otherwise.
    pub fn has_before_image(&self) -> bool {
        self.before_tx_id.is_some() || self.before_tx_version.is_some()
    }

    /// A record nothing needs to look at twice: committed with sane metadata, or imported
    /// (NULL metadata). Every other record is *exceptional* and is fetched in full.
    /// `store` pushes this exact predicate into SQL; keep the two in step.
    pub fn is_plainly_committed(&self) -> bool {
        match (self.tx_state, &self.tx_id) {
            (Some(3), Some(_)) => self.tx_version.is_some_and(|v| v >= 1),
            (None, None) => true,
            _ => false,
        }
    }
}

/// One row of the Coordinator table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorRow {
    pub tx_id: String,
    pub tx_state: Option<i64>,
    pub tx_created_at: Option<i64>,
    /// `tx_child_ids`: comma-separated child ids of a group-commit parent row.
    pub tx_child_ids: Option<String>,
}

impl CoordinatorRow {
    pub(crate) fn lists_child(&self, child: &str) -> bool {
        self.tx_child_ids
            .as_deref()
            .is_some_and(|ids| ids.split(',').any(|id| id == child))
    }
}

/// The Coordinator rows that bear on one transaction id: the row keyed by the id itself
/// and, for a group-commit id, the row keyed by its parent id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorRows {
    pub exact: Option<CoordinatorRow>,
    pub parent: Option<CoordinatorRow>,
}

/// A group-commit transaction id: `parent$child` (3.15+) or `parent:child` (3.13 and 3.14,
/// whose `CoordinatorGroupCommitKeyManipulator` used `:`), the parent 24 characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCommitId<'a> {
    pub parent: &'a str,
    pub child: &'a str,
}

impl<'a> GroupCommitId<'a> {
    /// `isFullKey`: longer than 24 characters with the delimiter at 24. Both lines'
    /// delimiters are accepted: a default id (a UUID) has a hex digit there, and an id that
    /// only looks like a group id still falls back to its own row.
    pub fn parse(tx_id: &'a str) -> Option<Self> {
        if tx_id.len() > GROUP_COMMIT_PARENT_ID_LEN
            && matches!(tx_id.as_bytes()[GROUP_COMMIT_PARENT_ID_LEN], b'$' | b':')
        {
            let (parent, rest) = tx_id.split_at(GROUP_COMMIT_PARENT_ID_LEN);
            Some(Self {
                parent,
                child: &rest[1..],
            })
        } else {
            None
        }
    }
}

/// What ScalarDB's `Coordinator.getState` answers for a transaction id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordinatorState {
    Committed {
        created_at: Option<i64>,
    },
    Aborted,
    /// No row applies: ScalarDB reports UNKNOWN.
    Absent,
    /// A row applies but holds a state ScalarDB never writes to the Coordinator.
    Invalid {
        tx_id: String,
        state: Option<i64>,
    },
}

impl CoordinatorState {
    /// The row `getState` answers from (see [`Self::look_up`]): a group parent row that
    /// lists the child, else the row found by the full id.
    pub fn row_applied<'r>(tx_id: &str, rows: &'r CoordinatorRows) -> Option<&'r CoordinatorRow> {
        let parent_row = GroupCommitId::parse(tx_id)
            .and_then(|id| rows.parent.as_ref().filter(|row| row.lists_child(id.child)));
        parent_row.or(rows.exact.as_ref())
    }

    /// The row that decides `tx_id` where it is keyed by another id, ScalarDB's `Get`
    /// having found it by the storage's comparison (a case-insensitive collation).
    pub fn row_of_another_id<'r>(
        tx_id: &str,
        rows: &'r CoordinatorRows,
    ) -> Option<&'r CoordinatorRow> {
        let row = Self::row_applied(tx_id, rows)?;
        let own_id = match GroupCommitId::parse(tx_id) {
            Some(id) if rows.parent.as_ref().is_some_and(|p| std::ptr::eq(p, row)) => id.parent,
            _ => tx_id,
        };
        (row.tx_id != own_id).then_some(row)
    }

    /// Applies `getState`'s rule: a group parent row that lists the child wins; otherwise
    /// the row found by the full id; otherwise nothing. `rows` are the rows the
    /// Coordinator's storage found for the ids, by its own comparison as ScalarDB's `Get`
    /// finds them: under a case-insensitive collation the row found for `abc` is keyed
    /// `ABC`. Only the child list is compared here, exactly, as ScalarDB does in Java.
    pub fn look_up(tx_id: &str, rows: &CoordinatorRows) -> Self {
        match Self::row_applied(tx_id, rows) {
            None => Self::Absent,
            Some(row) => match row.tx_state.and_then(TxState::from_id) {
                Some(TxState::Committed) => Self::Committed {
                    created_at: row.tx_created_at,
                },
                Some(TxState::Aborted) => Self::Aborted,
                _ => Self::Invalid {
                    tx_id: row.tx_id.clone(),
                    state: row.tx_state,
                },
            },
        }
    }
}

impl fmt::Display for CoordinatorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Committed { .. } => f.write_str("COMMITTED"),
            Self::Aborted => f.write_str("ABORTED"),
            Self::Absent => f.write_str("absent"),
            Self::Invalid { state: Some(s), .. } => write!(f, "invalid({s})"),
            Self::Invalid { state: None, .. } => f.write_str("invalid(NULL)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tx_id: &str, state: i64, children: Option<&str>) -> CoordinatorRow {
        CoordinatorRow {
            tx_id: tx_id.into(),
            tx_state: Some(state),
            tx_created_at: Some(10),
            tx_child_ids: children.map(Into::into),
        }
    }

    const PARENT: &str = "AAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn group_commit_ids_need_a_dollar_or_a_colon_at_position_24() {
        // `$` from 3.15; ScalarDB 3.13 and 3.14 joined the two with `:`.
        for delimiter in ['$', ':'] {
            let id = format!("{PARENT}{delimiter}child-1");
            assert_eq!(
                GroupCommitId::parse(&id),
                Some(GroupCommitId {
                    parent: PARENT,
                    child: "child-1"
                })
            );
        }
        assert_eq!(GroupCommitId::parse("6e1c9a4e-uuid-without-dollar"), None);
        assert_eq!(
            GroupCommitId::parse("6e1c9a4e-0c75-404b-9f5a-dc07c00daf42"),
            None
        );
        assert_eq!(GroupCommitId::parse(PARENT), None);
    }

    #[test]
    fn a_parent_row_listing_the_child_decides_the_state() {
        let id = format!("{PARENT}$c2");
        let rows = CoordinatorRows {
            exact: Some(row(&id, 4, None)),
            parent: Some(row(PARENT, 3, Some("c1,c2"))),
        };
        assert!(matches!(
            CoordinatorState::look_up(&id, &rows),
            CoordinatorState::Committed { .. }
        ));
    }

    #[test]
    fn an_abort_marker_without_children_defers_to_the_full_id_row() {
        let id = format!("{PARENT}$c2");
        let marker_only = CoordinatorRows {
            exact: None,
            parent: Some(row(PARENT, 4, None)),
        };
        assert_eq!(
            CoordinatorState::look_up(&id, &marker_only),
            CoordinatorState::Absent
        );
        let delayed = CoordinatorRows {
            exact: Some(row(&id, 3, None)),
            parent: Some(row(PARENT, 4, None)),
        };
        assert!(matches!(
            CoordinatorState::look_up(&id, &delayed),
            CoordinatorState::Committed { .. }
        ));
    }

    #[test]
    fn a_row_found_under_another_id_decides_and_is_named() {
        // What a case-insensitive storage finds for `abc`: the row of `ABC`.
        let rows = CoordinatorRows {
            exact: Some(row("ABC", 3, None)),
            parent: None,
        };
        assert!(matches!(
            CoordinatorState::look_up("abc", &rows),
            CoordinatorState::Committed { .. }
        ));
        assert_eq!(
            CoordinatorState::row_of_another_id("abc", &rows).map(|r| r.tx_id.as_str()),
            Some("ABC")
        );
        assert_eq!(CoordinatorState::row_of_another_id("ABC", &rows), None);
        // A group's parent row is keyed by the parent id: not another id.
        let id = format!("{PARENT}$c2");
        let group = CoordinatorRows {
            exact: None,
            parent: Some(row(PARENT, 3, Some("c1,c2"))),
        };
        assert_eq!(CoordinatorState::row_of_another_id(&id, &group), None);
        let folded = CoordinatorRows {
            exact: None,
            parent: Some(row(&PARENT.to_lowercase(), 3, Some("c1,c2"))),
        };
        assert!(CoordinatorState::row_of_another_id(&id, &folded).is_some());
    }

    #[test]
    fn child_ids_match_whole_entries_only() {
        let id = format!("{PARENT}$c1");
        let rows = CoordinatorRows {
            exact: None,
            parent: Some(row(PARENT, 3, Some("c10,xc1"))),
        };
        assert_eq!(
            CoordinatorState::look_up(&id, &rows),
            CoordinatorState::Absent
        );
    }

    #[test]
    fn plainly_committed_means_committed_with_an_id_and_a_version_or_imported() {
        let committed = RecordMeta {
            tx_id: Some("t".into()),
            tx_state: Some(3),
            tx_version: Some(1),
            ..RecordMeta::default()
        };
        assert!(committed.is_plainly_committed());
        assert!(RecordMeta::default().is_plainly_committed());
        let zero_version = RecordMeta {
            tx_version: Some(0),
            ..committed.clone()
        };
        assert!(!zero_version.is_plainly_committed());
        let state_without_id = RecordMeta {
            tx_id: None,
            ..committed
        };
        assert!(!state_without_id.is_plainly_committed());
    }
}
