//! The recovery rehearsal: applies to this run's own instance exactly the writes ScalarDB's
//! lazy recovery makes for each prediction, conditioned the way ScalarDB conditions them
//! (key, `tx_id` and the observed `tx_state`), and counts what changed.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::analyze::{Outcome, Prediction, Reason};
use crate::scan::ScanOutcome;
use crate::store::{Dialect, DisposableWriter, Param, TableSchema, WriteError};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryWrites {
    /// PREPARED records committed (roll forward).
    pub committed: u64,
    /// DELETED records physically deleted (roll forward).
    pub deleted_forward: u64,
    /// Before images restored (roll back).
    pub restored: u64,
    /// Records with no before image deleted (roll back).
    pub deleted_back: u64,
    /// ABORTED Coordinator rows written for expired transactions without a state.
    pub abort_states: u64,
    /// Writes that did not affect exactly one row: the record was not as predicted.
    pub unexpected: Vec<String>,
}

/// Applies every prediction of `outcome`; `now_ms` stamps commits and ABORTED rows, as the
/// recovering reader's clock would.
pub async fn apply(
    writer: &DisposableWriter,
    dialect: Dialect,
    outcome: &ScanOutcome,
    now_ms: i64,
) -> Result<RecoveryWrites, WriteError> {
    let mut writes = RecoveryWrites::default();
    let mut aborted: BTreeSet<&str> = BTreeSet::new();
    for prediction in &outcome.analysis.predictions {
        if prediction.reason == Reason::NoCoordinatorState && aborted.insert(&prediction.tx_id) {
            // The lazy reader first writes ABORTED for the expired transaction.
            if let Some(coordinator) = &outcome.coordinator {
                let sql = dialect.insert_abort_state(coordinator);
                let params = [Param::Text(prediction.tx_id.clone()), Param::Int(now_ms)];
                writer.execute(&sql, &params).await?;
                writes.abort_states += 1;
            }
        }
        let Some(table) = outcome.tables.iter().find(|t| t.table == prediction.table) else {
            writes
                .unexpected
                .push(format!("{}: no schema for the table", prediction.table));
            continue;
        };
        let condition = condition_params(table, prediction);
        let (sql, params, counter) = match prediction.outcome {
            Outcome::RollForwardCommit => {
                let mut params = vec![Param::Int(now_ms)];
                params.extend(condition);
                (
                    dialect.roll_forward_commit(table),
                    params,
                    &mut writes.committed,
                )
            }
            Outcome::RollForwardDelete => (
                dialect.delete_record(table),
                condition,
                &mut writes.deleted_forward,
            ),
            Outcome::RollBackRestore => (
                dialect.restore_before_image(table),
                condition,
                &mut writes.restored,
            ),
            Outcome::RollBackDelete => (
                dialect.delete_record(table),
                condition,
                &mut writes.deleted_back,
            ),
        };
        let affected = writer.execute(&sql, &params).await?;
        *counter += affected;
        if affected != 1 {
            writes.unexpected.push(format!(
                "{} [{}] tx {}: {:?} affected {affected} rows",
                prediction.table, prediction.key, prediction.tx_id, prediction.outcome
            ));
        }
    }
    Ok(writes)
}

/// The key values in the schema's key order, then the tx id and the observed state.
fn condition_params(table: &TableSchema, prediction: &Prediction) -> Vec<Param> {
    let mut params: Vec<Param> = table
        .keys
        .iter()
        .map(|key| {
            let value = prediction
                .key
                .0
                .iter()
                .find(|(column, _)| column == &key.name)
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            Param::Text(value)
        })
        .collect();
    params.push(Param::Text(prediction.tx_id.clone()));
    params.push(Param::Int(prediction.tx_state.id()));
    params
}
