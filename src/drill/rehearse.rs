//! The recovery rehearsal: applies to this run's own instance exactly the writes ScalarDB's
//! lazy recovery makes for each prediction, conditioned the way ScalarDB conditions them
//! (key, `tx_id` and the observed `tx_state`), and counts what changed. Which writes follow
//! from which prediction is decided once, here; each kind of instance only phrases them.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::analyze::{Outcome, Prediction, Reason};
use crate::scan::ScanOutcome;
use crate::store::{
    CassandraError, CassandraWriter, CoordinatorSchema, Dialect, DisposableWriter, ObservedAs,
    Param, TableSchema, WriteError,
};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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

/// Where the rehearsal's writes go: a SQL instance through [`DisposableWriter`], or a
/// Cassandra node through [`CassandraWriter`]. Each write answers how many records it
/// changed: 1 when the record was as predicted.
pub(super) trait RecoveryTarget {
    type Error;
    async fn abort_state(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
        now_ms: i64,
    ) -> Result<(), Self::Error>;
    async fn commit(
        &self,
        table: &TableSchema,
        prediction: &Prediction,
        now_ms: i64,
    ) -> Result<u64, Self::Error>;
    async fn restore(
        &self,
        table: &TableSchema,
        prediction: &Prediction,
    ) -> Result<u64, Self::Error>;
    async fn delete(
        &self,
        table: &TableSchema,
        prediction: &Prediction,
    ) -> Result<u64, Self::Error>;
}

/// A SQL instance's writes, in its dialect.
pub(super) struct SqlTarget<'a> {
    pub writer: &'a DisposableWriter,
    pub dialect: Dialect,
}

impl RecoveryTarget for SqlTarget<'_> {
    type Error = WriteError;

    async fn abort_state(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
        now_ms: i64,
    ) -> Result<(), WriteError> {
        let sql = self.dialect.insert_abort_state(coordinator);
        let params = [Param::Text(tx_id.to_owned()), Param::Int(now_ms)];
        self.writer.execute(&sql, &params).await.map(drop)
    }

    async fn commit(
        &self,
        table: &TableSchema,
        prediction: &Prediction,
        now_ms: i64,
    ) -> Result<u64, WriteError> {
        let mut params = vec![Param::Int(now_ms)];
        params.extend(condition_params(table, prediction));
        let statements = self.dialect.roll_forward_commit(table);
        self.writer.execute_all(&statements, &params).await
    }

    async fn restore(
        &self,
        table: &TableSchema,
        prediction: &Prediction,
    ) -> Result<u64, WriteError> {
        let statements = self.dialect.restore_before_image(table);
        self.writer
            .execute_all(&statements, &condition_params(table, prediction))
            .await
    }

    async fn delete(
        &self,
        table: &TableSchema,
        prediction: &Prediction,
    ) -> Result<u64, WriteError> {
        let statements = self.dialect.delete_record(table);
        self.writer
            .execute_all(&statements, &condition_params(table, prediction))
            .await
    }
}

/// A disposable Cassandra node's writes: lightweight transactions with the same conditions.
impl RecoveryTarget for CassandraWriter {
    type Error = CassandraError;

    async fn abort_state(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
        now_ms: i64,
    ) -> Result<(), CassandraError> {
        self.insert_abort_state(coordinator, tx_id, now_ms)
            .await
            .map(drop)
    }

    async fn commit(
        &self,
        table: &TableSchema,
        prediction: &Prediction,
        now_ms: i64,
    ) -> Result<u64, CassandraError> {
        let applied = self
            .recovery_commit(table, observed_as(prediction), now_ms)
            .await?;
        Ok(u64::from(applied))
    }

    async fn restore(
        &self,
        table: &TableSchema,
        prediction: &Prediction,
    ) -> Result<u64, CassandraError> {
        let applied = self
            .recovery_restore(table, observed_as(prediction))
            .await?;
        Ok(u64::from(applied))
    }

    async fn delete(
        &self,
        table: &TableSchema,
        prediction: &Prediction,
    ) -> Result<u64, CassandraError> {
        let applied = self.recovery_delete(table, observed_as(prediction)).await?;
        Ok(u64::from(applied))
    }
}

fn observed_as(prediction: &Prediction) -> ObservedAs<'_> {
    ObservedAs {
        key: &prediction.key,
        tx_id: &prediction.tx_id,
        tx_state: prediction.tx_state.id(),
    }
}

impl RecoveryWrites {
    /// Adds another instance's writes to these.
    pub fn add(&mut self, other: Self) {
        self.committed += other.committed;
        self.deleted_forward += other.deleted_forward;
        self.restored += other.restored;
        self.deleted_back += other.deleted_back;
        self.abort_states += other.abort_states;
        self.unexpected.extend(other.unexpected);
    }
}

/// Which of a scan's predictions one instance applies: the records of its storage (`None`:
/// every record, the only instance), and the ABORTED Coordinator rows when it holds the
/// Coordinator.
pub(super) struct Scope<'a> {
    pub storage: Option<&'a str>,
    pub coordinator: bool,
}

/// Applies the predictions of `outcome` that `scope` gives this instance; `now_ms` stamps
/// commits and ABORTED rows, as the recovering reader's clock would.
pub(super) async fn apply<T: RecoveryTarget>(
    target: &T,
    outcome: &ScanOutcome,
    now_ms: i64,
    scope: &Scope<'_>,
) -> Result<RecoveryWrites, T::Error> {
    let mut writes = RecoveryWrites::default();
    let mut aborted: BTreeSet<&str> = BTreeSet::new();
    for prediction in &outcome.analysis.predictions {
        if scope.coordinator
            && prediction.reason == Reason::NoCoordinatorState
            && aborted.insert(&prediction.tx_id)
        {
            // The lazy reader first writes ABORTED for the expired transaction, in the
            // Coordinator's storage whichever storage the record is in.
            if let Some(coordinator) = &outcome.coordinator {
                target
                    .abort_state(coordinator, &prediction.tx_id, now_ms)
                    .await?;
                writes.abort_states += 1;
            }
        }
        if scope
            .storage
            .is_some_and(|storage| prediction.storage.as_deref() != Some(storage))
        {
            continue;
        }
        let Some(table) = outcome.tables.iter().find(|t| t.table == prediction.table) else {
            writes
                .unexpected
                .push(format!("{}: no schema for the table", prediction.table));
            continue;
        };
        let (affected, counter) = match prediction.outcome {
            Outcome::RollForwardCommit => (
                target.commit(table, prediction, now_ms).await?,
                &mut writes.committed,
            ),
            Outcome::RollForwardDelete => (
                target.delete(table, prediction).await?,
                &mut writes.deleted_forward,
            ),
            Outcome::RollBackRestore => (
                target.restore(table, prediction).await?,
                &mut writes.restored,
            ),
            Outcome::RollBackDelete => (
                target.delete(table, prediction).await?,
                &mut writes.deleted_back,
            ),
        };
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
