//! The SQL text each scan sends, per database dialect. Pure string building, so every
//! query is unit-tested without a server; `sql.rs` executes them.
//!
//! Every value is cast in SQL to BIGINT or TEXT so that decoding is the same on every
//! backend, and so that a corrupt value is reported rather than mis-decoded.

use super::{CoordinatorSchema, DecoupledSources, KeyColumn, KeyKind, TableSchema};
use crate::model::TableRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

/// How many columns every record query returns after the key columns: the record's eight
/// metadata columns, then four columns of the exact Coordinator row and four of the
/// group-commit parent row.
pub const RECORD_TAIL_COLUMNS: usize = 16;

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::MySql => "MySQL/MariaDB",
            Self::Sqlite => "SQLite",
        }
    }

    pub fn quote(self, ident: &str) -> String {
        match self {
            Self::MySql => format!("`{}`", ident.replace('`', "``")),
            Self::Postgres | Self::Sqlite => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// The physical name of a ScalarDB table: `schema.table`, or `"ns$table"` on SQLite.
    pub fn table_name(self, table: &TableRef) -> String {
        match self {
            Self::Sqlite => self.quote(&format!("{}${}", table.namespace, table.table)),
            Self::Postgres | Self::MySql => {
                format!(
                    "{}.{}",
                    self.quote(&table.namespace),
                    self.quote(&table.table)
                )
            }
        }
    }

    /// Splits a physical SQLite table name `ns$table` into a ScalarDB table.
    pub fn sqlite_table_ref(physical: &str) -> Option<TableRef> {
        let (namespace, table) = physical.split_once('$')?;
        (!namespace.is_empty() && !table.is_empty()).then(|| TableRef::new(namespace, table))
    }

    fn int(self, expr: &str) -> String {
        match self {
            Self::Postgres => format!("CAST({expr} AS BIGINT)"),
            Self::MySql => format!("CAST({expr} AS SIGNED)"),
            Self::Sqlite => format!("CAST({expr} AS INTEGER)"),
        }
    }

    fn text(self, expr: &str) -> String {
        match self {
            Self::Postgres | Self::Sqlite => format!("CAST({expr} AS TEXT)"),
            Self::MySql => format!("CAST({expr} AS CHAR)"),
        }
    }

    /// A built-in function, schema-qualified on PostgreSQL so that a function of the same
    /// name a database owner created in another schema can never be the one called (the
    /// session's `search_path` is pinned too; see `sql.rs`). MySQL and SQLite resolve
    /// built-ins before stored functions.
    fn func(self, name: &str) -> String {
        match self {
            Self::Postgres => format!("pg_catalog.{name}"),
            Self::MySql | Self::Sqlite => name.to_ascii_uppercase(),
        }
    }

    fn key_text(self, expr: &str, kind: KeyKind) -> String {
        match (kind, self) {
            (KeyKind::Boolean, _) => {
                format!("CASE WHEN {expr} THEN 'true' WHEN NOT {expr} THEN 'false' END")
            }
            (KeyKind::Blob, Self::Postgres) => format!("pg_catalog.encode({expr}, 'hex')"),
            (KeyKind::Blob, Self::MySql | Self::Sqlite) => format!("LOWER(HEX({expr}))"),
            (KeyKind::Text, _) => self.text(expr),
        }
    }

    fn substr(self, expr: &str, from: usize, len: Option<usize>) -> String {
        let func = match self {
            Self::MySql => "SUBSTRING".to_owned(),
            Self::Postgres | Self::Sqlite => self.func("substr"),
        };
        match len {
            Some(len) => format!("{func}({expr}, {from}, {len})"),
            None => format!("{func}({expr}, {from})"),
        }
    }

    fn concat(self, parts: &[&str]) -> String {
        match self {
            Self::MySql => format!("CONCAT({})", parts.join(", ")),
            Self::Postgres | Self::Sqlite => parts.join(" || "),
        }
    }

    /// True when `haystack` contains `needle` as an exact substring.
    fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Self::Postgres => format!("pg_catalog.strpos({haystack}, {needle}) > 0"),
            Self::MySql => format!("LOCATE({needle}, {haystack}) > 0"),
            Self::Sqlite => format!("instr({haystack}, {needle}) > 0"),
        }
    }

    /// Record count and timestamp watermarks of one table, in one pass; with a reference
    /// instant, also how many records committed in each rate window before it.
    pub fn table_stats(self, table: &TableSchema, reference: Option<i64>) -> String {
        let mut columns = vec![
            self.int(&format!("{}(*)", self.func("count"))),
            self.int(&format!("{}(tx_prepared_at)", self.func("max"))),
            self.int(&format!("{}(tx_committed_at)", self.func("max"))),
        ];
        columns.extend(self.window_counts("tx_committed_at", None, reference));
        format!(
            "SELECT {} FROM {}",
            columns.join(", "),
            self.table_name(table.source())
        )
    }

    /// `SUM(CASE WHEN column > reference - w …)` for every rate window (integer literals
    /// computed here, never text from the database).
    fn window_counts(
        self,
        column: &str,
        also: Option<&str>,
        reference: Option<i64>,
    ) -> Vec<String> {
        let Some(reference) = reference else {
            return Vec::new();
        };
        let also = also.map_or_else(String::new, |c| format!(" AND {c}"));
        crate::analyze::RATE_WINDOWS_MS
            .iter()
            .map(|w| {
                self.int(&format!(
                    "{}(CASE WHEN {column} > {}{also} THEN 1 ELSE 0 END)",
                    self.func("sum"),
                    reference.saturating_sub(*w)
                ))
            })
            .collect()
    }

    /// The distinct transactions whose COMMITTED records committed after `reference - w`,
    /// for the first [`TX_WINDOWS`](crate::analyze::TX_WINDOWS) rate windows, one-phase
    /// commits (`tx_prepared_at = tx_committed_at`, no Coordinator row) left out: each
    /// transaction's newest commit grouped from the last minute's records, then counted per
    /// window. Run only for a table that lags (`sql.rs`): a second pass over it.
    pub fn table_transactions(self, table: &TableSchema, reference: i64) -> String {
        let windows = &crate::analyze::RATE_WINDOWS_MS[..crate::analyze::TX_WINDOWS];
        let since = reference.saturating_sub(windows[windows.len() - 1]);
        let sum = self.func("sum");
        let columns: Vec<String> = windows
            .iter()
            .map(|w| {
                self.int(&format!(
                    "{sum}(CASE WHEN newest > {} THEN 1 ELSE 0 END)",
                    reference.saturating_sub(*w)
                ))
            })
            .collect();
        format!(
            "SELECT {} FROM (SELECT tx_id, {}(tx_committed_at) AS newest FROM {} WHERE \
             tx_state = 3 AND tx_id IS NOT NULL AND tx_committed_at > {since} AND \
             (tx_prepared_at IS NULL OR tx_prepared_at <> tx_committed_at) GROUP BY tx_id) w",
            columns.join(", "),
            self.func("max"),
            self.table_name(table.source())
        )
    }

    /// The Coordinator's newest `tx_created_at`: the rate windows' reference instant.
    pub fn coordinator_newest(self, coordinator: &CoordinatorSchema) -> String {
        format!(
            "SELECT {} FROM {}",
            self.int(&format!("{}(tx_created_at)", self.func("max"))),
            self.table_name(&coordinator.table)
        )
    }

    /// Every record that is not plainly committed (mirrors `RecordMeta::is_plainly_committed`;
    /// a CASE, because `NOT` over NULL comparisons would silently drop rows).
    pub fn exceptional_records(
        self,
        table: &TableSchema,
        coordinator: Option<&CoordinatorSchema>,
    ) -> String {
        format!(
            "{} WHERE CASE WHEN r.tx_state = 3 AND r.tx_id IS NOT NULL AND r.tx_version >= 1 THEN 0 \
             WHEN r.tx_state IS NULL AND r.tx_id IS NULL THEN 0 ELSE 1 END = 1",
            self.record_select(table, coordinator)
        )
    }

    /// COMMITTED records whose transaction has no COMMITTED state under ScalarDB's lookup
    /// rule: the join with the Coordinator runs in the database, which is far faster than
    /// streaming every record out.
    pub fn unconfirmed_committed_records(
        self,
        table: &TableSchema,
        coordinator: &CoordinatorSchema,
    ) -> String {
        let effective_state = if coordinator.has_child_ids {
            format!(
                "CASE WHEN p.tx_id IS NOT NULL AND {} THEN p.tx_state \
                 WHEN c.tx_id IS NOT NULL THEN c.tx_state END",
                self.child_listed()
            )
        } else {
            "c.tx_state".to_owned()
        };
        format!(
            "{} WHERE r.tx_state = 3 AND r.tx_id IS NOT NULL AND r.tx_version >= 1 \
             AND COALESCE({effective_state}, 0) <> 3",
            self.record_select(table, Some(coordinator))
        )
    }

    fn child_listed(self) -> String {
        let children = self.concat(&["','", "p.tx_child_ids", "','"]);
        let child = self.concat(&["','", &self.substr("r.tx_id", 26, None), "','"]);
        self.contains(&children, &child)
    }

    /// A record's key columns (as text) and its eight metadata columns.
    fn record_columns(self, table: &TableSchema) -> Vec<String> {
        let mut columns: Vec<String> = table
            .keys
            .iter()
            .map(|key| self.key_text(&format!("r.{}", self.quote(&key.name)), key.kind))
            .collect();
        columns.push(self.text("r.tx_id"));
        for column in [
            "tx_state",
            "tx_version",
            "tx_prepared_at",
            "tx_committed_at",
        ] {
            columns.push(self.int(&format!("r.{column}")));
        }
        columns.push(self.text("r.before_tx_id"));
        for column in ["before_tx_state", "before_tx_version"] {
            columns.push(self.int(&format!("r.{column}")));
        }
        columns
    }

    fn record_select(self, table: &TableSchema, coordinator: Option<&CoordinatorSchema>) -> String {
        let mut columns = self.record_columns(table);
        let mut joins = String::new();
        let coordinator_columns = |alias: &str, present: bool, child_ids: bool| {
            if present {
                vec![
                    self.text(&format!("{alias}.tx_id")),
                    self.int(&format!("{alias}.tx_state")),
                    self.int(&format!("{alias}.tx_created_at")),
                    if child_ids {
                        self.text(&format!("{alias}.tx_child_ids"))
                    } else {
                        self.text("NULL")
                    },
                ]
            } else {
                vec![
                    self.text("NULL"),
                    self.int("NULL"),
                    self.int("NULL"),
                    self.text("NULL"),
                ]
            }
        };
        match coordinator {
            Some(coordinator) => {
                let name = self.table_name(&coordinator.table);
                joins.push_str(&format!(" LEFT JOIN {name} c ON c.tx_id = r.tx_id"));
                columns.extend(coordinator_columns("c", true, coordinator.has_child_ids));
                if coordinator.has_child_ids {
                    joins.push_str(&format!(
                        // `$` from 3.15, `:` in 3.13 and 3.14 (model::GroupCommitId).
                        " LEFT JOIN {name} p ON p.tx_id = {} AND {} IN ('$', ':')",
                        self.substr("r.tx_id", 1, Some(24)),
                        self.substr("r.tx_id", 25, Some(1)),
                    ));
                    columns.extend(coordinator_columns("p", true, true));
                } else {
                    columns.extend(coordinator_columns("p", false, false));
                }
            }
            None => {
                columns.extend(coordinator_columns("c", false, false));
                columns.extend(coordinator_columns("p", false, false));
            }
        }
        format!(
            "SELECT {} FROM {} r{joins}",
            columns.join(", "),
            self.table_name(table.source())
        )
    }

    /// Every COMMITTED record a Coordinator in another database must confirm, without a join
    /// (the Coordinator columns are NULL): the scan job checks them against its index.
    pub fn committed_records(self, table: &TableSchema) -> String {
        // Without the Coordinator's columns: every row of the table crosses the wire.
        format!(
            "SELECT {} FROM {} r WHERE r.tx_state = 3 AND r.tx_id IS NOT NULL AND r.tx_version >= 1",
            self.record_columns(table).join(", "),
            self.table_name(table.source())
        )
    }

    /// The `tx_id` of every record `committed_records` selects.
    pub fn committed_tx_ids(self, table: &TableSchema) -> String {
        format!(
            "SELECT {} FROM {} r WHERE r.tx_state = 3 AND r.tx_id IS NOT NULL AND r.tx_version >= 1",
            self.text("r.tx_id"),
            self.table_name(table.source())
        )
    }

    fn coordinator_row_columns(self, coordinator: &CoordinatorSchema) -> String {
        [
            self.text("tx_id"),
            self.int("tx_state"),
            self.int("tx_created_at"),
            if coordinator.has_child_ids {
                self.text("tx_child_ids")
            } else {
                self.text("NULL")
            },
        ]
        .join(", ")
    }

    /// Every Coordinator row, for the scan job's index.
    pub fn coordinator_rows(self, coordinator: &CoordinatorSchema) -> String {
        format!(
            "SELECT {} FROM {}",
            self.coordinator_row_columns(coordinator),
            self.table_name(&coordinator.table)
        )
    }

    /// The Coordinator rows of `ids` `tx_id`s (bound as the parameters, in order).
    pub fn coordinator_rows_by_id(self, coordinator: &CoordinatorSchema, ids: usize) -> String {
        let placeholders: Vec<String> = (1..=ids).map(|n| self.placeholder(n)).collect();
        format!(
            "SELECT {} FROM {} WHERE tx_id IN ({})",
            self.coordinator_row_columns(coordinator),
            self.table_name(&coordinator.table),
            placeholders.join(", ")
        )
    }

    /// Row count, state counts, oldest and newest entry of the Coordinator table; with a
    /// reference instant, the COMMITTED rows created in each rate window before it.
    pub fn coordinator_stats(
        self,
        coordinator: &CoordinatorSchema,
        reference: Option<i64>,
    ) -> String {
        let sum = self.func("sum");
        let mut columns = vec![
            self.int(&format!("{}(*)", self.func("count"))),
            self.int(&format!("{sum}(CASE WHEN tx_state = 3 THEN 1 ELSE 0 END)")),
            self.int(&format!("{sum}(CASE WHEN tx_state = 4 THEN 1 ELSE 0 END)")),
            self.int(&format!("{}(tx_created_at)", self.func("max"))),
            self.int(&format!("{sum}({})", Self::INVALID_COORDINATOR_ROW)),
            self.int(&format!("{}(tx_created_at)", self.func("min"))),
        ];
        columns.extend(self.window_counts("tx_created_at", Some("tx_state = 3"), reference));
        format!(
            "SELECT {} FROM {}",
            columns.join(", "),
            self.table_name(&coordinator.table)
        )
    }

    /// `tx_id IN (ids with more than one row)`: a dump can define the Coordinator without
    /// its primary key, and then one transaction can have contradictory states.
    fn duplicated_tx_id(self, coordinator: &CoordinatorSchema) -> String {
        format!(
            "tx_id IN (SELECT d.tx_id FROM {} d WHERE d.tx_id IS NOT NULL GROUP BY d.tx_id \
             HAVING {}(*) > 1)",
            self.table_name(&coordinator.table),
            self.func("count"),
        )
    }

    /// How many otherwise valid Coordinator rows share their `tx_id` with another row.
    pub fn duplicated_coordinator_count(self, coordinator: &CoordinatorSchema) -> String {
        format!(
            "SELECT {} FROM {} WHERE {} = 0 AND {}",
            self.int(&format!("{}(*)", self.func("count"))),
            self.table_name(&coordinator.table),
            Self::INVALID_COORDINATOR_ROW,
            self.duplicated_tx_id(coordinator),
        )
    }

    /// A bounded sample of those rows, in `tx_id` order so that a pair stays together.
    pub fn duplicated_coordinator_rows(
        self,
        coordinator: &CoordinatorSchema,
        limit: usize,
    ) -> String {
        format!(
            "SELECT {}, {}, {}, {} FROM {} WHERE {} = 0 AND {} ORDER BY tx_id, tx_state, \
             tx_created_at LIMIT {limit}",
            self.text("tx_id"),
            self.int("tx_state"),
            self.int("tx_created_at"),
            if coordinator.has_child_ids {
                self.text("tx_child_ids")
            } else {
                self.text("NULL")
            },
            self.table_name(&coordinator.table),
            Self::INVALID_COORDINATOR_ROW,
            self.duplicated_tx_id(coordinator),
        )
    }

    /// A query that reads nothing but needs the privilege to read `table`: its error tells
    /// "does not exist" from "exists, but denied", which MySQL's catalog does not.
    pub fn probe(self, table: &TableRef) -> String {
        format!("SELECT 1 FROM {} LIMIT 0", self.table_name(table))
    }

    /// The same probe for ScalarDB's metadata table.
    pub fn probe_scalardb_metadata(self, metadata_schema: &str) -> String {
        format!(
            "SELECT full_table_name, column_name FROM {} LIMIT 0",
            self.metadata_table(metadata_schema)
        )
    }

    fn metadata_table(self, metadata_schema: &str) -> String {
        match self {
            Self::Sqlite => self.quote(&format!("{metadata_schema}$metadata")),
            Self::Postgres | Self::MySql => {
                format!("{}.{}", self.quote(metadata_schema), self.quote("metadata"))
            }
        }
    }

    const INVALID_COORDINATOR_ROW: &'static str =
        "CASE WHEN tx_state IN (3, 4) AND tx_created_at IS NOT NULL THEN 0 ELSE 1 END";

    /// A bounded sample of Coordinator rows ScalarDB could not have written.
    pub fn invalid_coordinator_rows(self, coordinator: &CoordinatorSchema, limit: usize) -> String {
        format!(
            "SELECT {}, {}, {}, {} FROM {} WHERE {} = 1 ORDER BY tx_id LIMIT {limit}",
            self.text("tx_id"),
            self.int("tx_state"),
            self.int("tx_created_at"),
            if coordinator.has_child_ids {
                self.text("tx_child_ids")
            } else {
                self.text("NULL")
            },
            self.table_name(&coordinator.table),
            Self::INVALID_COORDINATOR_ROW,
        )
    }

    /// Every column of every user table: `(schema, table, column, data type)`.
    pub fn catalog_columns(self) -> &'static str {
        match self {
            // pg_catalog, not information_schema: information_schema shows only what the
            // account has privileges on, and a table it cannot read must be reported, not
            // silently left out.
            Self::Postgres => {
                "SELECT CAST(n.nspname AS TEXT), CAST(c.relname AS TEXT), \
                 CAST(a.attname AS TEXT), pg_catalog.format_type(a.atttypid, NULL) \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE a.attnum > 0 AND NOT a.attisdropped \
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                 ORDER BY n.nspname, c.relname, a.attnum"
            }
            Self::MySql => {
                "SELECT CAST(table_schema AS CHAR), CAST(table_name AS CHAR), \
                 CAST(column_name AS CHAR), CAST(data_type AS CHAR) \
                 FROM information_schema.columns \
                 WHERE table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
                 ORDER BY table_schema, table_name, ordinal_position"
            }
            Self::Sqlite => {
                "SELECT '', m.name, p.name, CAST(p.type AS TEXT) \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' ORDER BY m.name, p.cid"
            }
        }
    }

    /// The Coordinator's `tx_id` column as the catalog describes it, one row of three texts
    /// for [`super::IdComparison::of_column`], and the values to bind (the table's name,
    /// never formatted into the query). PostgreSQL: type, collation, whether it is
    /// deterministic; MySQL: type, collation, character set; SQLite: declared type and the
    /// table's definition.
    pub fn coordinator_id_column(
        self,
        coordinator: &CoordinatorSchema,
    ) -> (&'static str, Vec<String>) {
        let table = &coordinator.table;
        match self {
            Self::Postgres => (
                "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod), \
                 CAST(COALESCE(co.collname, '') AS TEXT), \
                 CASE WHEN co.collisdeterministic = FALSE THEN 'nondeterministic' \
                 ELSE 'deterministic' END \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = 'tx_id' \
                 AND a.attnum > 0 AND NOT a.attisdropped",
                vec![table.namespace.clone(), table.table.clone()],
            ),
            Self::MySql => (
                "SELECT CAST(data_type AS CHAR), CAST(COALESCE(collation_name, '') AS CHAR), \
                 CAST(COALESCE(character_set_name, '') AS CHAR) \
                 FROM information_schema.columns \
                 WHERE table_schema = ? AND table_name = ? AND column_name = 'tx_id'",
                vec![table.namespace.clone(), table.table.clone()],
            ),
            Self::Sqlite => (
                "SELECT CAST(p.type AS TEXT), CAST(COALESCE(m.sql, '') AS TEXT), '' \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name = ? AND p.name = 'tx_id'",
                vec![format!("{}${}", table.namespace, table.table)],
            ),
        }
    }

    /// Primary-key columns of every user table, in key order: `(schema, table, column)`.
    pub fn catalog_primary_keys(self) -> &'static str {
        match self {
            Self::Postgres => {
                "SELECT CAST(n.nspname AS TEXT), CAST(c.relname AS TEXT), \
                 CAST(a.attname AS TEXT) \
                 FROM pg_catalog.pg_constraint k \
                 JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 CROSS JOIN LATERAL pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord) \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum \
                 WHERE k.contype = 'p' \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 ORDER BY n.nspname, c.relname, u.ord"
            }
            Self::MySql => {
                "SELECT CAST(table_schema AS CHAR), CAST(table_name AS CHAR), \
                 CAST(column_name AS CHAR) FROM information_schema.key_column_usage \
                 WHERE constraint_name = 'PRIMARY' \
                 ORDER BY table_schema, table_name, ordinal_position"
            }
            Self::Sqlite => {
                "SELECT '', m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND p.pk > 0 ORDER BY m.name, p.pk"
            }
        }
    }

    /// ScalarDB's table metadata: `(full_table_name, column_name, data_type, key_type)`,
    /// key columns in key order.
    pub fn scalardb_metadata(self, metadata_schema: &str) -> String {
        let table = self.metadata_table(metadata_schema);
        format!(
            "SELECT {}, {}, {}, {} FROM {table} ORDER BY full_table_name, ordinal_position",
            self.text("full_table_name"),
            self.text("column_name"),
            self.text("data_type"),
            self.text("key_type"),
        )
    }

    /// ScalarDB's `virtual_tables` (3.17+, beside `metadata`): `(full_table_name, left
    /// source, right source)`.
    pub fn scalardb_virtual_tables(self, metadata_schema: &str) -> String {
        format!(
            "SELECT {}, {}, {} FROM {} ORDER BY full_table_name",
            self.text("full_table_name"),
            self.text("left_source_table_full_table_name"),
            self.text("right_source_table_full_table_name"),
            self.table_name(&TableRef::new(metadata_schema, "virtual_tables")),
        )
    }

    fn placeholder(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql | Self::Sqlite => "?".to_owned(),
        }
    }

    /// A bound key value, given as text, converted to the column's type in SQL so that the
    /// primary-key index is used.
    fn key_value(self, key: &KeyColumn, n: usize) -> String {
        let p = self.placeholder(n);
        match (key.kind, self) {
            (KeyKind::Blob, Self::Postgres) => format!("pg_catalog.decode({p}, 'hex')"),
            (KeyKind::Blob, Self::MySql) => format!("UNHEX({p})"),
            (KeyKind::Blob, Self::Sqlite) => format!("unhex({p})"),
            (KeyKind::Boolean, Self::MySql | Self::Sqlite) => format!("({p} = 'true')"),
            (_, Self::Postgres) if !key.sql_type.is_empty() => {
                format!("CAST({p} AS {})", key.sql_type)
            }
            _ => p,
        }
    }

    /// `key = … AND tx_id = … AND tx_state = …`: the condition ScalarDB's recovery writes
    /// are conditioned on. Parameters: the key values, the tx id, the observed state.
    fn recovery_condition(self, table: &TableSchema, first: usize) -> String {
        let mut parts: Vec<String> = table
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                format!(
                    "{} = {}",
                    self.quote(&key.name),
                    self.key_value(key, first + i)
                )
            })
            .collect();
        let next = first + table.keys.len();
        parts.push(format!("tx_id = {}", self.placeholder(next)));
        parts.push(format!("tx_state = {}", self.placeholder(next + 1)));
        parts.join(" AND ")
    }

    fn null_before_images(self, table: &TableSchema) -> Vec<String> {
        table
            .after_image_columns
            .iter()
            .map(|c| format!("{} = NULL", self.quote(&format!("before_{c}"))))
            .chain(
                [
                    "before_tx_id",
                    "before_tx_state",
                    "before_tx_version",
                    "before_tx_prepared_at",
                    "before_tx_committed_at",
                ]
                .iter()
                .map(|c| format!("{c} = NULL")),
            )
            .collect()
    }

    /// Roll forward of a PREPARED record (ScalarDB 3.16+: before images set to NULL). It
    /// writes metadata columns only, so a decoupled table's metadata table alone.
    /// Parameters: committed_at, the key values, the tx id, the observed state.
    pub fn roll_forward_commit(self, table: &TableSchema) -> Vec<String> {
        let mut set = vec![
            "tx_state = 3".to_owned(),
            format!("tx_committed_at = {}", self.placeholder(1)),
        ];
        set.extend(self.null_before_images(table));
        vec![format!(
            "UPDATE {} SET {} WHERE {}",
            self.table_name(table.source()),
            set.join(", "),
            self.recovery_condition(table, 2)
        )]
    }

    /// Roll back with a before image: every `before_X` copied into `X`, metadata included
    /// (`before_tx_version` 0 restores NULL metadata), then the before image cleared.
    /// MySQL assigns left to right, so the before columns are cleared last. On a decoupled
    /// table, as ScalarDB divides the write: first the data table's columns from the
    /// before images of the metadata row (while they are still there), then the metadata
    /// table; run as one transaction, the last statement counted.
    /// Parameters (each statement): the key values, the tx id, the observed state.
    pub fn restore_before_image(self, table: &TableSchema) -> Vec<String> {
        let restore =
            |c: &String| format!("{} = {}", self.quote(c), self.quote(&format!("before_{c}")));
        let mut metadata = vec![
            "tx_id = before_tx_id".to_owned(),
            "tx_state = before_tx_state".to_owned(),
            "tx_version = CASE WHEN before_tx_version = 0 THEN NULL ELSE before_tx_version END"
                .to_owned(),
            "tx_prepared_at = before_tx_prepared_at".to_owned(),
            "tx_committed_at = before_tx_committed_at".to_owned(),
        ];
        metadata.extend(self.null_before_images(table));
        let update = |target: &TableRef, set: Vec<String>| {
            format!(
                "UPDATE {} SET {} WHERE {}",
                self.table_name(target),
                set.join(", "),
                self.recovery_condition(table, 1)
            )
        };
        let Some(sources) = &table.decoupled else {
            let mut set: Vec<String> = table.after_image_columns.iter().map(restore).collect();
            set.extend(metadata);
            return vec![update(&table.table, set)];
        };
        let mut statements = Vec::new();
        if !table.after_image_columns.is_empty() {
            let data = self.table_name(&sources.data);
            let same_key = table
                .keys
                .iter()
                .map(|k| {
                    let k = self.quote(&k.name);
                    format!("m.{k} = {data}.{k}")
                })
                .collect::<Vec<_>>()
                .join(" AND ");
            let set: Vec<String> = table
                .after_image_columns
                .iter()
                .map(|c| {
                    format!(
                        "{} = (SELECT m.{} FROM {} m WHERE {same_key})",
                        self.quote(c),
                        self.quote(&format!("before_{c}")),
                        self.table_name(&sources.metadata)
                    )
                })
                .collect();
            statements.push(format!(
                "UPDATE {data} SET {} WHERE {}",
                set.join(", "),
                self.in_matching_metadata(table, sources)
            ));
        }
        statements.push(update(&sources.metadata, metadata));
        statements
    }

    /// Physical delete (roll forward of a DELETED record, or roll back of a record with no
    /// before image); on a decoupled table the data row first (while the metadata row that
    /// conditions it is there), then the metadata row, in one transaction.
    /// Parameters (each statement): the key values, the tx id, the observed state.
    pub fn delete_record(self, table: &TableSchema) -> Vec<String> {
        let delete = |target: &TableRef| {
            format!(
                "DELETE FROM {} WHERE {}",
                self.table_name(target),
                self.recovery_condition(table, 1)
            )
        };
        match &table.decoupled {
            None => vec![delete(&table.table)],
            Some(sources) => vec![
                format!(
                    "DELETE FROM {} WHERE {}",
                    self.table_name(&sources.data),
                    self.in_matching_metadata(table, sources)
                ),
                delete(&sources.metadata),
            ],
        }
    }

    /// `(key columns) IN (the key of the metadata row with the recovery condition)`: a data
    /// row written only where its metadata row is as the prediction observed it.
    /// Parameters: the key values, the tx id, the observed state.
    fn in_matching_metadata(self, table: &TableSchema, sources: &DecoupledSources) -> String {
        let keys = table
            .keys
            .iter()
            .map(|k| self.quote(&k.name))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "({keys}) IN (SELECT {keys} FROM {} WHERE {})",
            self.table_name(&sources.metadata),
            self.recovery_condition(table, 1)
        )
    }

    /// The ABORTED state a lazy reader writes for an expired transaction without one.
    /// Parameters: the tx id, created_at.
    pub fn insert_abort_state(self, coordinator: &CoordinatorSchema) -> String {
        format!(
            "INSERT INTO {} (tx_id, tx_state, tx_created_at) VALUES ({}, 4, {})",
            self.table_name(&coordinator.table),
            self.placeholder(1),
            self.placeholder(2)
        )
    }

    /// The byte length of a BLOB column.
    fn byte_length(self, expr: &str) -> String {
        match self {
            Self::Postgres => format!("pg_catalog.octet_length({expr})"),
            Self::MySql => format!("LENGTH({expr})"),
            Self::Sqlite => format!("length(CAST({expr} AS BLOB))"),
        }
    }

    /// `tx_id, tx_state, tx_created_at, tx_child_ids`, the write set when it is at most
    /// `max_bytes` long (else NULL: an oversized value never crosses the wire), its length.
    fn write_set_columns(self, coordinator: &CoordinatorSchema, max_bytes: usize) -> String {
        let length = self.byte_length("tx_write_set");
        format!(
            "{}, CASE WHEN {length} <= {max_bytes} THEN tx_write_set END, {}",
            self.coordinator_row_columns(coordinator),
            self.int(&length)
        )
    }

    /// How many COMMITTED Coordinator rows carry a write set.
    pub fn committed_write_set_count(self, coordinator: &CoordinatorSchema) -> String {
        format!(
            "SELECT {} FROM {} WHERE tx_state = 3 AND tx_write_set IS NOT NULL",
            self.int(&format!("{}(*)", self.func("count"))),
            self.table_name(&coordinator.table)
        )
    }

    /// Every COMMITTED Coordinator row with a write set, created at or after `since`, and
    /// every COMMITTED row created inside `window` (its write set NULL or not).
    pub fn committed_write_sets(
        self,
        coordinator: &CoordinatorSchema,
        since: Option<i64>,
        window: Option<(i64, i64)>,
        max_bytes: usize,
    ) -> String {
        let since = since.map_or_else(String::new, |ms| format!(" AND tx_created_at >= {ms}"));
        let window = window.map_or_else(String::new, |(from, to)| {
            format!(" OR tx_created_at BETWEEN {from} AND {to}")
        });
        format!(
            "SELECT {} FROM {} WHERE tx_state = 3 AND (tx_write_set IS NOT NULL{since}{window})",
            self.write_set_columns(coordinator, max_bytes),
            self.table_name(&coordinator.table)
        )
    }

    /// The row of one `tx_id` (the first parameter) with its write set, if it has one.
    pub fn write_set_row(self, coordinator: &CoordinatorSchema, max_bytes: usize) -> String {
        format!(
            "SELECT {} FROM {} WHERE tx_id = {} AND tx_write_set IS NOT NULL",
            self.write_set_columns(coordinator, max_bytes),
            self.table_name(&coordinator.table),
            self.placeholder(1)
        )
    }

    /// The records of `keys` keys (bound in order, each key's values in the schema's key
    /// order, as the scan renders them): key columns and metadata, as `committed_records`.
    pub fn records_by_key(self, table: &TableSchema, keys: usize) -> String {
        let per_key = table.keys.len();
        let alternatives: Vec<String> = (0..keys)
            .map(|k| {
                let parts: Vec<String> = table
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, key)| {
                        format!(
                            "r.{} = {}",
                            self.quote(&key.name),
                            self.key_value(key, k * per_key + i + 1)
                        )
                    })
                    .collect();
                format!("({})", parts.join(" AND "))
            })
            .collect();
        format!(
            "SELECT {} FROM {} r WHERE {}",
            self.record_columns(table).join(", "),
            self.table_name(&table.table),
            if alternatives.is_empty() {
                "1 = 0".to_owned()
            } else {
                alternatives.join(" OR ")
            }
        )
    }

    /// Starts the read-only transaction every scan runs in.
    pub fn begin_read_only(self) -> &'static str {
        match self {
            Self::Postgres => "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            Self::MySql => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            // The connection itself is opened read-only (mode=ro).
            Self::Sqlite => "BEGIN",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> TableSchema {
        TableSchema {
            table: TableRef::new("bank", "accounts"),
            keys: vec![
                KeyColumn {
                    name: "id".into(),
                    kind: KeyKind::Text,
                    sql_type: "text".into(),
                },
                KeyColumn {
                    name: "flag".into(),
                    kind: KeyKind::Boolean,
                    sql_type: "boolean".into(),
                },
            ],
            after_image_columns: vec!["balance".into()],
            decoupled: None,
        }
    }

    fn coordinator(has_child_ids: bool) -> CoordinatorSchema {
        CoordinatorSchema {
            table: TableRef::new("coordinator", "state"),
            has_child_ids,
            has_write_set: false,
        }
    }

    #[test]
    fn recovery_writes_are_conditioned_like_scalardb_and_clear_before_images_last() {
        let [restore] = &Dialect::MySql.restore_before_image(&accounts())[..] else {
            panic!("a coupled table's restore is one statement");
        };
        assert!(
            restore.starts_with(
                "UPDATE `bank`.`accounts` SET `balance` = `before_balance`, tx_id = before_tx_id"
            ),
            "{restore}"
        );
        assert!(
            restore.ends_with(
                "WHERE `id` = ? AND `flag` = (? = 'true') AND tx_id = ? AND tx_state = ?"
            ),
            "{restore}"
        );
        let balance = restore.find("`balance` = `before_balance`").unwrap();
        let cleared = restore.find("`before_balance` = NULL").unwrap();
        assert!(balance < cleared, "{restore}");
        let [commit] = &Dialect::Postgres.roll_forward_commit(&accounts())[..] else {
            panic!("a roll forward is one statement");
        };
        assert!(commit.contains("tx_committed_at = $1"), "{commit}");
        assert!(commit.ends_with("WHERE \"id\" = CAST($2 AS text) AND \"flag\" = CAST($3 AS boolean) AND tx_id = $4 AND tx_state = $5"), "{commit}");
        assert_eq!(
            Dialect::Sqlite.insert_abort_state(&coordinator(false)),
            "INSERT INTO \"coordinator$state\" (tx_id, tx_state, tx_created_at) VALUES (?, 4, ?)"
        );
    }

    /// ScalarDB divides a write on a decoupled table by column owner: the user columns to
    /// `<t>_data`, the metadata and before images to `<t>_tx_metadata`, whose row carries
    /// the condition; so the data statements are conditioned through it, and run first.
    #[test]
    fn a_decoupled_tables_recovery_writes_both_sources_conditioned_on_the_metadata_row() {
        let mut table = accounts();
        table.keys.truncate(1);
        table.decoupled = Some(DecoupledSources {
            data: TableRef::new("bank", "accounts_data"),
            metadata: TableRef::new("bank", "accounts_tx_metadata"),
        });
        let matching = "(\"id\") IN (SELECT \"id\" FROM \"bank$accounts_tx_metadata\" WHERE \"id\" = ? \
                        AND tx_id = ? AND tx_state = ?)";
        assert_eq!(
            Dialect::Sqlite.restore_before_image(&table),
            [
                format!(
                    "UPDATE \"bank$accounts_data\" SET \"balance\" = (SELECT m.\"before_balance\" \
                     FROM \"bank$accounts_tx_metadata\" m WHERE m.\"id\" = \"bank$accounts_data\".\"id\") \
                     WHERE {matching}"
                ),
                "UPDATE \"bank$accounts_tx_metadata\" SET tx_id = before_tx_id, tx_state = before_tx_state, \
                 tx_version = CASE WHEN before_tx_version = 0 THEN NULL ELSE before_tx_version END, \
                 tx_prepared_at = before_tx_prepared_at, tx_committed_at = before_tx_committed_at, \
                 \"before_balance\" = NULL, before_tx_id = NULL, before_tx_state = NULL, \
                 before_tx_version = NULL, before_tx_prepared_at = NULL, before_tx_committed_at = NULL \
                 WHERE \"id\" = ? AND tx_id = ? AND tx_state = ?"
                    .to_owned(),
            ]
        );
        assert_eq!(
            Dialect::Sqlite.delete_record(&table),
            [
                format!("DELETE FROM \"bank$accounts_data\" WHERE {matching}"),
                "DELETE FROM \"bank$accounts_tx_metadata\" WHERE \"id\" = ? AND tx_id = ? AND tx_state = ?"
                    .to_owned(),
            ]
        );
        let [commit] = &Dialect::Postgres.roll_forward_commit(&table)[..] else {
            panic!("a roll forward writes the metadata table alone");
        };
        assert!(
            commit.starts_with("UPDATE \"bank\".\"accounts_tx_metadata\" SET tx_state = 3"),
            "{commit}"
        );
    }

    #[test]
    fn sqlite_tables_are_named_namespace_dollar_table() {
        assert_eq!(
            Dialect::Sqlite.table_name(&TableRef::new("bank", "accounts")),
            "\"bank$accounts\""
        );
        assert_eq!(
            Dialect::sqlite_table_ref("bank$accounts"),
            Some(TableRef::new("bank", "accounts"))
        );
        assert_eq!(Dialect::sqlite_table_ref("plain"), None);
    }

    #[test]
    fn postgres_calls_only_schema_qualified_functions() {
        let coordinator = coordinator(true);
        let mut blob = accounts();
        blob.keys[0].kind = KeyKind::Blob;
        let mut decoupled = blob.clone();
        decoupled.decoupled = Some(DecoupledSources {
            data: TableRef::new("bank", "accounts_data"),
            metadata: TableRef::new("bank", "accounts_tx_metadata"),
        });
        let queries = [
            Dialect::Postgres.table_stats(&accounts(), Some(1_700_000_000_000)),
            Dialect::Postgres.table_transactions(&accounts(), 1_700_000_000_000),
            Dialect::Postgres.exceptional_records(&blob, Some(&coordinator)),
            Dialect::Postgres.unconfirmed_committed_records(&accounts(), &coordinator),
            Dialect::Postgres.coordinator_stats(&coordinator, Some(1_700_000_000_000)),
            Dialect::Postgres.coordinator_newest(&coordinator),
            Dialect::Postgres.invalid_coordinator_rows(&coordinator, 20),
            Dialect::Postgres.duplicated_coordinator_count(&coordinator),
            Dialect::Postgres.duplicated_coordinator_rows(&coordinator, 20),
            Dialect::Postgres.catalog_columns().to_owned(),
            Dialect::Postgres.catalog_primary_keys().to_owned(),
            Dialect::Postgres
                .coordinator_id_column(&coordinator)
                .0
                .to_owned(),
            Dialect::Postgres.scalardb_metadata("scalardb"),
            Dialect::Postgres.restore_before_image(&blob).join("; "),
            Dialect::Postgres
                .restore_before_image(&decoupled)
                .join("; "),
            Dialect::Postgres.delete_record(&decoupled).join("; "),
        ];
        // Every `name(` is a call; CAST, IN and the CASE/COALESCE keywords are syntax.
        let syntax = ["CAST", "IN", "COALESCE", "VALUES", "u", "LIMIT"];
        for sql in queries {
            let bytes = sql.as_bytes();
            for (i, _) in sql.match_indices('(') {
                let start = sql[..i]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .map_or(0, |p| p + 1);
                let name = &sql[start..i];
                if name.is_empty() || syntax.contains(&name) || bytes[start - 1] == b'"' {
                    continue;
                }
                assert!(
                    name.starts_with("pg_catalog."),
                    "unqualified {name}( in {sql}"
                );
            }
        }
    }

    #[test]
    fn duplicate_coordinator_rows_are_counted_among_valid_looking_rows() {
        let sql = Dialect::MySql.duplicated_coordinator_count(&coordinator(false));
        assert!(
            sql.contains(
                "tx_id IN (SELECT d.tx_id FROM `coordinator`.`state` d WHERE d.tx_id IS NOT NULL \
                 GROUP BY d.tx_id HAVING COUNT(*) > 1)"
            ),
            "{sql}"
        );
        let rows = Dialect::Sqlite.duplicated_coordinator_rows(&coordinator(false), 20);
        assert!(rows.contains("ORDER BY tx_id, tx_state"), "{rows}");
        assert_eq!(
            Dialect::Sqlite.probe(&TableRef::new("coordinator", "state")),
            "SELECT 1 FROM \"coordinator$state\" LIMIT 0"
        );
    }

    #[test]
    fn write_sets_are_read_bounded_and_records_by_typed_key() {
        let mut coordinator = coordinator(false);
        coordinator.has_write_set = true;
        let sql = Dialect::Postgres.committed_write_sets(&coordinator, Some(-5), None, 16);
        assert!(
            sql.contains(
                "CASE WHEN pg_catalog.octet_length(tx_write_set) <= 16 THEN tx_write_set END"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("tx_state = 3 AND (tx_write_set IS NOT NULL AND tx_created_at >= -5)"),
            "{sql}"
        );
        // The cut window's rows come whether they carry a write set or not.
        let sql = Dialect::Postgres.committed_write_sets(&coordinator, Some(-5), Some((7, 9)), 16);
        assert!(
            sql.ends_with(
                "tx_state = 3 AND (tx_write_set IS NOT NULL AND tx_created_at >= -5 OR \
                 tx_created_at BETWEEN 7 AND 9)"
            ),
            "{sql}"
        );
        let sql = Dialect::Sqlite.write_set_row(&coordinator, 16);
        assert!(sql.contains("length(CAST(tx_write_set AS BLOB))"), "{sql}");
        assert!(sql.contains("WHERE tx_id = ?"), "{sql}");
        let sql = Dialect::Postgres.records_by_key(&accounts(), 2);
        assert!(
            sql.ends_with(
                "WHERE (r.\"id\" = CAST($1 AS text) AND r.\"flag\" = CAST($2 AS boolean)) \
                 OR (r.\"id\" = CAST($3 AS text) AND r.\"flag\" = CAST($4 AS boolean))"
            ),
            "{sql}"
        );
        assert!(
            Dialect::MySql
                .records_by_key(&accounts(), 0)
                .ends_with("WHERE 1 = 0")
        );
    }

    #[test]
    fn identifiers_are_quoted_against_injection() {
        assert_eq!(Dialect::MySql.quote("a`b"), "`a``b`");
        assert_eq!(Dialect::Postgres.quote("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn every_record_query_has_the_same_shape() {
        for dialect in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            for sql in [
                dialect.exceptional_records(&accounts(), None),
                dialect.exceptional_records(&accounts(), Some(&coordinator(true))),
                dialect.unconfirmed_committed_records(&accounts(), &coordinator(false)),
                dialect.unconfirmed_committed_records(&accounts(), &coordinator(true)),
            ] {
                let select = sql.split(" FROM ").next().unwrap();
                // Commas inside CAST/CASE/CONCAT are not separators; count top-level columns.
                let mut depth = 0;
                let mut columns = 1;
                for c in select.chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        ',' if depth == 0 => columns += 1,
                        _ => {}
                    }
                }
                assert_eq!(columns, 2 + RECORD_TAIL_COLUMNS, "{sql}");
            }
        }
    }

    #[test]
    fn group_commit_lookup_joins_the_parent_row_only_when_child_ids_exist() {
        let without =
            Dialect::Postgres.unconfirmed_committed_records(&accounts(), &coordinator(false));
        assert!(!without.contains(" p ON "), "{without}");
        let with = Dialect::Postgres.unconfirmed_committed_records(&accounts(), &coordinator(true));
        assert!(
            with.contains(
                "LEFT JOIN \"coordinator\".\"state\" p ON p.tx_id = pg_catalog.substr(r.tx_id, 1, 24)"
            ),
            "{with}"
        );
        assert!(
            with.contains("pg_catalog.strpos(',' || p.tx_child_ids || ','"),
            "{with}"
        );
        let mysql = Dialect::MySql.unconfirmed_committed_records(&accounts(), &coordinator(true));
        assert!(
            mysql.contains(
                "LOCATE(CONCAT(',', SUBSTRING(r.tx_id, 26), ','), CONCAT(',', p.tx_child_ids, ','))"
            ),
            "{mysql}"
        );
    }
}
