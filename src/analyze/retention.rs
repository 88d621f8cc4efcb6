//! Which COMMITTED-but-unconfirmed records a scan must keep in memory.
//!
//! A scan streams the COMMITTED records whose transaction has no COMMITTED Coordinator
//! state. With one-phase commit that can be most of a table, so it keeps only the ones the
//! atomicity check needs (their transaction has unresolved records, or the Coordinator
//! says ABORTED) and counts the rest. Memory stays bounded by the unresolved records.

use std::collections::HashSet;

use super::cut::{CLOCK_TOLERANCE_MS, CommitPlace, place_commit};
use super::input::{CoordinatorObservation, ObservedRecord, TableScan};
use crate::model::{CoordinatorState, GroupCommitId, TxState};

/// How many uninteresting records each table keeps as evidence.
pub const SAMPLE_LIMIT: usize = 5;

#[derive(Clone, Debug, Default)]
pub struct Retention {
    unresolved_tx_ids: HashSet<String>,
    unresolved_group_parents: HashSet<String>,
    /// The Coordinator's oldest and newest `tx_created_at`, to class the counted records.
    coordinator_span: Option<(i64, i64)>,
}

impl Retention {
    /// Built from the exceptional records of every table, before unconfirmed records are read.
    pub fn from_exceptional<'a>(records: impl IntoIterator<Item = &'a ObservedRecord>) -> Self {
        let mut retention = Self::default();
        for record in records {
            let unresolved = matches!(
                record.meta.state(),
                crate::model::StoredState::Known(TxState::Prepared | TxState::Deleted)
            );
            if let (true, Some(tx_id)) = (unresolved, record.meta.tx_id.as_deref()) {
                if let Some(id) = GroupCommitId::parse(tx_id) {
                    retention
                        .unresolved_group_parents
                        .insert(id.parent.to_owned());
                }
                retention.unresolved_tx_ids.insert(tx_id.to_owned());
            }
        }
        retention
    }

    /// Classes the records it only counts by the Coordinator's span (`cut.rs` judges them).
    pub fn with_coordinator(mut self, coordinator: &CoordinatorObservation) -> Self {
        if let CoordinatorObservation::Present(scan) = coordinator {
            self.coordinator_span = scan.min_created_at.zip(scan.max_created_at);
        }
        self
    }

    pub fn must_keep(&self, record: &ObservedRecord) -> bool {
        let Some(tx_id) = record.meta.tx_id.as_deref() else {
            return false;
        };
        self.unresolved_tx_ids.contains(tx_id)
            || GroupCommitId::parse(tx_id)
                .is_some_and(|id| self.unresolved_group_parents.contains(id.parent))
            || matches!(
                CoordinatorState::look_up(tx_id, &record.coordinator),
                CoordinatorState::Aborted | CoordinatorState::Invalid { .. }
            )
    }

    /// Files one streamed record into `scan`: kept, sampled, or only counted.
    pub fn file(&self, scan: &mut TableScan, record: ObservedRecord) {
        let confirmed = record.meta.tx_id.as_deref().is_some_and(|tx_id| {
            matches!(
                CoordinatorState::look_up(tx_id, &record.coordinator),
                CoordinatorState::Committed { .. }
            )
        });
        if confirmed {
            // The store's SQL filter may over-approximate; ScalarDB's lookup rule decides.
            return;
        }
        if self.must_keep(&record) {
            scan.unconfirmed_relevant.push(record);
        } else {
            scan.unconfirmed_other_count += 1;
            let times = &mut scan.unconfirmed_times;
            match place_commit(&record.meta, self.coordinator_span, CLOCK_TOLERANCE_MS) {
                CommitPlace::OnePhase => times.one_phase += 1,
                CommitPlace::BeforeOldest => times.before_oldest += 1,
                CommitPlace::Within => {
                    times.within += 1;
                    times.keep_newest(&record);
                }
                CommitPlace::AfterNewest => {
                    times.after_newest += 1;
                    times.keep_newest(&record);
                }
                CommitPlace::Unplaced => {}
            }
            // Keep the smallest keys, not the first streamed: reports must not depend on
            // the order a backend happens to return rows in.
            let samples = &mut scan.unconfirmed_other_samples;
            let position = samples.partition_point(|s| s.key < record.key);
            if position < SAMPLE_LIMIT {
                samples.insert(position, record);
                samples.truncate(SAMPLE_LIMIT);
            }
        }
    }
}
