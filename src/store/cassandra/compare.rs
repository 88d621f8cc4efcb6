//! Node by node: reads one table's copies (one keyspace per node's snapshot, all restored
//! into one disposable node) range by range, and lines up each record's copies for
//! [`NodeComparer`]. Every copy of a table shares the partitioner, so one token range of
//! each copy holds the same records: memory is one range of every copy at a time.

use std::collections::BTreeMap;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use scylla::deserialize::row::ColumnIterator;

use super::{
    CassandraError, CassandraStore, CqlFailure, cql_table, decode_key, int_column, quote,
    text_column, token_range_filter, token_ranges,
};
use crate::analyze::{NodeComparer, NodeCopy};
use crate::model::{RecordKey, TableRef};
use crate::store::TableSchema;

/// One range's records: each key with every copy's version (`None`: absent there).
type RangeRecords = BTreeMap<RecordKey, Vec<Option<NodeCopy>>>;

impl CassandraStore {
    /// Compares `table` (already discovered through this store, for its partition key) with
    /// its copies `copies[i]` (node `i`'s snapshot), feeding every record to a comparer of
    /// `copies.len()` nodes. `ranges` splits the ring: more ranges, less memory.
    pub async fn compare_copies(
        &self,
        table: &TableSchema,
        copies: &[TableRef],
        node_names: &[String],
        ranges: usize,
    ) -> Result<NodeComparer, CassandraError> {
        let error = |source| CassandraError::Scan {
            table: table.table.to_string(),
            source,
        };
        let partition_keys = self.partition_keys_of(&table.table);
        let mut columns = vec![
            "tx_id".to_owned(),
            "tx_state".to_owned(),
            "tx_version".to_owned(),
            "tx_prepared_at".to_owned(),
            "tx_committed_at".to_owned(),
        ];
        columns.extend(table.keys.iter().map(|k| quote(&k.name)));
        let columns = columns.join(", ");
        let split = ranges > 1 && !partition_keys.is_empty() && self.is_murmur3().await?;
        let filter = if split {
            token_range_filter(&partition_keys)
        } else {
            String::new()
        };
        let mut statements = Vec::with_capacity(copies.len());
        for copy in copies {
            let cql = format!("SELECT {columns} FROM {}{filter}", cql_table(copy));
            statements.push(self.prepare(&cql).await.map_err(error)?);
        }
        let statements = &statements;
        let bounds: Vec<Option<(i64, i64)>> = if split {
            token_ranges(ranges).into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        let nodes = copies.len();
        stream::iter(bounds)
            .map(|bounds| async move {
                let mut records = RangeRecords::new();
                for (node, statement) in statements.iter().enumerate() {
                    let visit = |records: &mut RangeRecords, mut row: ColumnIterator<'_, '_>| {
                        let copy = decode_copy(&mut row)?;
                        let key = decode_key(table, &mut row)?;
                        records.entry(key).or_insert_with(|| vec![None; nodes])[node] = Some(copy);
                        Ok(())
                    };
                    match bounds {
                        Some(range) => {
                            self.read_pages(statement, range, &mut records, &visit)
                                .await?
                        }
                        None => self.read_pages(statement, (), &mut records, &visit).await?,
                    }
                }
                let mut comparer = NodeComparer::new(node_names.iter().cloned());
                for (key, copies) in &records {
                    comparer.record(&table.table, key, copies);
                }
                Ok::<_, CqlFailure>(comparer)
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .try_fold(
                NodeComparer::new(node_names.iter().cloned()),
                |mut total, part| {
                    total.merge(part);
                    async { Ok(total) }
                },
            )
            .await
            .map_err(error)
    }
}

/// `tx_id, tx_state, tx_version, tx_prepared_at, tx_committed_at`.
fn decode_copy(row: &mut ColumnIterator<'_, '_>) -> Result<NodeCopy, CqlFailure> {
    Ok(NodeCopy {
        tx_id: text_column(row)?,
        tx_state: int_column(row)?,
        tx_version: int_column(row)?,
        tx_prepared_at: int_column(row)?,
        tx_committed_at: int_column(row)?,
    })
}
