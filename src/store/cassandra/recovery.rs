//! The recovery rehearsal's writes on a drill's disposable Cassandra node: the mutations
//! ScalarDB's lazy recovery makes, as lightweight transactions conditioned the way ScalarDB
//! conditions them (the record's key, its `tx_id` and the `tx_state` the scan observed),
//! so a write lands only on the record as it was predicted. Each answers whether it
//! applied.
//!
//! CQL cannot copy one column into another, so a roll back reads the before image first
//! and writes it back as bound values.

use scylla::deserialize::row::ColumnIterator;
use scylla::deserialize::value::DeserializeValue;
use scylla::value::CqlValue;

use super::{CassandraError, CassandraWriter, CqlFailure, cql_table, next_column, quote};
use crate::model::RecordKey;
use crate::store::{CoordinatorSchema, KeyColumn, TableSchema};

/// The metadata columns a before image holds, in the order they are restored.
const BEFORE_META: [&str; 5] = [
    "tx_id",
    "tx_state",
    "tx_version",
    "tx_prepared_at",
    "tx_committed_at",
];
/// `tx_version`'s place in [`BEFORE_META`].
const TX_VERSION: usize = 2;

/// The record a recovery write is for, as the scan observed it: the write lands only while
/// the record still carries this transaction in this state.
#[derive(Clone, Copy, Debug)]
pub struct ObservedAs<'a> {
    pub key: &'a RecordKey,
    pub tx_id: &'a str,
    pub tx_state: i64,
}

impl CassandraWriter {
    /// Rolls a PREPARED record forward: COMMITTED at `committed_at`, before image cleared
    /// (ScalarDB 3.16+).
    pub async fn recovery_commit(
        &self,
        table: &TableSchema,
        record: ObservedAs<'_>,
        committed_at: i64,
    ) -> Result<bool, CassandraError> {
        let mut set = vec!["tx_state = 3".to_owned(), "tx_committed_at = ?".to_owned()];
        set.extend(null_before_image(table));
        let cql = conditional_update(table, &set, record.key)?;
        let mut values = vec![Some(CqlValue::BigInt(committed_at))];
        values.extend(condition_values(record)?);
        self.apply_if(&cql, values).await
    }

    /// Deletes a record: the roll forward of a DELETED record, or the roll back of one with
    /// no before image.
    pub async fn recovery_delete(
        &self,
        table: &TableSchema,
        record: ObservedAs<'_>,
    ) -> Result<bool, CassandraError> {
        let cql = format!(
            "DELETE FROM {} WHERE {} IF tx_id = ? AND tx_state = ?",
            cql_table(&table.table),
            key_condition(table, record.key)?
        );
        self.apply_if(&cql, condition_values(record)?).await
    }

    /// Rolls a record back to its before image: every `before_X` into `X`, metadata
    /// included (`before_tx_version` 0 restores a NULL `tx_version`), then the before image
    /// cleared. False when the record is gone or no longer as observed.
    pub async fn recovery_restore(
        &self,
        table: &TableSchema,
        record: ObservedAs<'_>,
    ) -> Result<bool, CassandraError> {
        let restored: Vec<String> = table
            .after_image_columns
            .iter()
            .cloned()
            .chain(BEFORE_META.iter().map(|c| (*c).to_owned()))
            .collect();
        let read = format!(
            "SELECT {} FROM {} WHERE {}",
            restored
                .iter()
                .map(|c| quote(&format!("before_{c}")))
                .collect::<Vec<_>>()
                .join(", "),
            cql_table(&table.table),
            key_condition(table, record.key)?
        );
        let Some(mut before) = self.first_row(&read, Vec::new()).await? else {
            return Ok(false);
        };
        if let Some(version) = before.get_mut(table.after_image_columns.len() + TX_VERSION) {
            if *version == Some(CqlValue::Int(0)) {
                *version = None;
            }
        }
        let mut set: Vec<String> = restored
            .iter()
            .map(|c| format!("{} = ?", quote(c)))
            .collect();
        set.extend(null_before_image(table));
        let cql = conditional_update(table, &set, record.key)?;
        before.extend(condition_values(record)?);
        self.apply_if(&cql, before).await
    }

    /// Writes ABORTED for an expired transaction that has no state, unless one appeared.
    pub async fn insert_abort_state(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
        created_at: i64,
    ) -> Result<bool, CassandraError> {
        let cql = format!(
            "INSERT INTO {} (tx_id, tx_state, tx_created_at) VALUES (?, 4, ?) IF NOT EXISTS",
            cql_table(&coordinator.table)
        );
        let values = vec![
            Some(CqlValue::Text(tx_id.to_owned())),
            Some(CqlValue::BigInt(created_at)),
        ];
        self.apply_if(&cql, values).await
    }

    /// Runs a lightweight transaction; whether it applied (its `[applied]` column).
    async fn apply_if(
        &self,
        cql: &str,
        values: Vec<Option<CqlValue>>,
    ) -> Result<bool, CassandraError> {
        match self.first_row(cql, values).await?.as_deref() {
            Some([Some(CqlValue::Boolean(applied)), ..]) => Ok(*applied),
            _ => Err(CassandraError::Execute {
                statement: cql.to_owned(),
                source: CqlFailure::Unexpected(
                    "a conditional write returned no [applied] column".to_owned(),
                ),
            }),
        }
    }

    /// The first row `cql` returns, each column as a value; `None` if there is none.
    async fn first_row(
        &self,
        cql: &str,
        values: Vec<Option<CqlValue>>,
    ) -> Result<Option<Vec<Option<CqlValue>>>, CassandraError> {
        let error = |source: CqlFailure| CassandraError::Execute {
            statement: cql.to_owned(),
            source,
        };
        let result = self
            .session
            .query_unpaged(cql, values)
            .await
            .map_err(|e| error(e.into()))?;
        let rows = result.into_rows_result().map_err(|e| error(e.into()))?;
        let mut rows = rows.rows::<ColumnIterator>().map_err(|e| error(e.into()))?;
        let Some(row) = rows.next() else {
            return Ok(None);
        };
        let mut row = row.map_err(|e| error(e.into()))?;
        let mut columns = Vec::new();
        while row.columns_remaining() > 0 {
            let column = next_column(&mut row).map_err(error)?;
            let value = <Option<CqlValue> as DeserializeValue>::deserialize(
                column.spec.typ(),
                column.slice,
            )
            .map_err(|e| error(e.into()))?;
            columns.push(value);
        }
        Ok(Some(columns))
    }
}

/// `UPDATE t SET … WHERE <key> IF tx_id = ? AND tx_state = ?`.
fn conditional_update(
    table: &TableSchema,
    set: &[String],
    key: &RecordKey,
) -> Result<String, CassandraError> {
    Ok(format!(
        "UPDATE {} SET {} WHERE {} IF tx_id = ? AND tx_state = ?",
        cql_table(&table.table),
        set.join(", "),
        key_condition(table, key)?
    ))
}

/// Every `before_*` column set to null.
fn null_before_image(table: &TableSchema) -> Vec<String> {
    table
        .after_image_columns
        .iter()
        .map(String::as_str)
        .chain(BEFORE_META)
        .map(|c| format!("{} = null", quote(&format!("before_{c}"))))
        .collect()
}

/// The values of `IF tx_id = ? AND tx_state = ?`.
fn condition_values(record: ObservedAs<'_>) -> Result<Vec<Option<CqlValue>>, CassandraError> {
    let state = i32::try_from(record.tx_state).map_err(|_| CassandraError::Execute {
        statement: "a recovery write".to_owned(),
        source: CqlFailure::Unexpected(format!("tx_state {} does not fit an int", record.tx_state)),
    })?;
    Ok(vec![
        Some(CqlValue::Text(record.tx_id.to_owned())),
        Some(CqlValue::Int(state)),
    ])
}

/// `k1 = <literal> AND k2 = <literal>`: the key as the scan rendered it, turned back into
/// CQL literals of each key column's type.
pub(super) fn key_condition(
    table: &TableSchema,
    key: &RecordKey,
) -> Result<String, CassandraError> {
    let mut parts = Vec::with_capacity(table.keys.len());
    for column in &table.keys {
        let value = key
            .0
            .iter()
            .find(|(name, _)| name == &column.name)
            .map(|(_, value)| value.as_str());
        let literal = value
            .and_then(|value| key_literal(column, value))
            .ok_or_else(|| CassandraError::Execute {
                statement: format!("a recovery write to {}", table.table),
                source: CqlFailure::Unexpected(format!(
                    "the key column {} ({}) has no value the rehearsal can write back: {key}",
                    column.name, column.sql_type
                )),
            })?;
        parts.push(format!("{} = {literal}", quote(&column.name)));
    }
    Ok(parts.join(" AND "))
}

/// A rendered key value as a CQL literal of `column`'s type; `None` for a value that does
/// not parse as that type (never passed through as CQL) or a type the scan does not render
/// back exactly.
fn key_literal(column: &KeyColumn, value: &str) -> Option<String> {
    let string = || format!("'{}'", value.replace('\'', "''"));
    match column.sql_type.to_ascii_lowercase().as_str() {
        "text" | "varchar" | "ascii" | "inet" | "date" | "time" | "timestamp" => Some(string()),
        "int" | "bigint" | "smallint" | "tinyint" | "varint" | "counter" => {
            value.parse::<i128>().ok().map(|n| n.to_string())
        }
        "boolean" => value.parse::<bool>().ok().map(|b| b.to_string()),
        "uuid" | "timeuuid" => uuid_literal(value),
        "blob" => (value.len() % 2 == 0 && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| format!("0x{value}")),
        // Floating-point keys render without their type's precision (`1` for 1.0): a
        // literal from the rendering is not guaranteed to name the same record.
        _ => None,
    }
}

/// `8-4-4-4-12` hexadecimal digits, passed through unquoted.
fn uuid_literal(value: &str) -> Option<String> {
    let groups: Vec<&str> = value.split('-').collect();
    let shaped = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    shaped.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TableRef;
    use crate::store::KeyKind;

    fn key_column(name: &str, sql_type: &str) -> KeyColumn {
        KeyColumn {
            name: name.to_owned(),
            kind: KeyKind::from_type_name(sql_type),
            sql_type: sql_type.to_owned(),
        }
    }

    fn accounts() -> TableSchema {
        TableSchema {
            table: TableRef::new("bank", "accounts"),
            keys: vec![
                key_column("account_id", "int"),
                key_column("branch", "text"),
            ],
            after_image_columns: vec!["balance".to_owned()],
            decoupled: None,
        }
    }

    fn key(pairs: &[(&str, &str)]) -> RecordKey {
        RecordKey(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn writes_are_conditioned_on_the_key_the_tx_and_the_observed_state() {
        let table = accounts();
        let key = key(&[("account_id", "-104"), ("branch", "Zürich 'HQ'")]);
        let mut set = vec!["tx_state = 3".to_owned()];
        set.extend(null_before_image(&table));
        assert_eq!(
            conditional_update(&table, &set, &key).unwrap(),
            "UPDATE \"bank\".\"accounts\" SET tx_state = 3, \"before_balance\" = null, \
             \"before_tx_id\" = null, \"before_tx_state\" = null, \"before_tx_version\" = null, \
             \"before_tx_prepared_at\" = null, \"before_tx_committed_at\" = null \
             WHERE \"account_id\" = -104 AND \"branch\" = 'Zürich ''HQ''' \
             IF tx_id = ? AND tx_state = ?"
        );
    }

    #[test]
    fn the_version_is_found_where_the_before_image_holds_it() {
        assert_eq!(BEFORE_META[TX_VERSION], "tx_version");
    }

    #[test]
    fn key_values_become_literals_of_their_type_or_nothing() {
        let literal = |sql_type: &str, value: &str| key_literal(&key_column("k", sql_type), value);
        assert_eq!(literal("int", "42").as_deref(), Some("42"));
        assert_eq!(
            literal("bigint", "-9000000000").as_deref(),
            Some("-9000000000")
        );
        assert_eq!(literal("int", "1; DROP TABLE x"), None);
        assert_eq!(literal("text", "it's").as_deref(), Some("'it''s'"));
        assert_eq!(literal("boolean", "true").as_deref(), Some("true"));
        assert_eq!(literal("boolean", "yes"), None);
        assert_eq!(literal("blob", "00ff").as_deref(), Some("0x00ff"));
        assert_eq!(literal("blob", "0x1"), None);
        assert_eq!(
            literal("uuid", "65fceb30-e33b-49c4-b904-c8c14129c522").as_deref(),
            Some("65fceb30-e33b-49c4-b904-c8c14129c522")
        );
        assert_eq!(
            literal("uuid", "65fceb30-e33b-49c4-b904-c8c14129c52)"),
            None
        );
        assert_eq!(literal("double", "1"), None);
    }

    #[test]
    fn a_key_without_a_writable_value_is_an_error_naming_the_column() {
        let table = accounts();
        let error =
            key_condition(&table, &key(&[("account_id", "x"), ("branch", "b")])).unwrap_err();
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(chain.contains("account_id (int)"), "{chain}");
    }
}
