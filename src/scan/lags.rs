//! The Coordinator's side of the trailing-run test in `analyze/cut.rs` (`table-copied-early`
//! judged by transactions), counted in one pass over the Coordinator: its commits after
//! each lagging table's newest write (the rate windows alone bound them only to the
//! nearest window edge, a quarter of the lag or less when it is under a second), and its
//! commits in the first rate windows.
//!
//! Memory: one counter per lagging table.

use crate::analyze::{
    CLOCK_TOLERANCE_MS, CoordinatorObservation, MIN_RATE_EVIDENCE, RATE_WINDOWS_MS, TX_WINDOWS,
    TableScan, TrailingCommits,
};
use crate::model::CoordinatorRow;
use crate::store::CoordinatorSchema;

/// Where a table's count starts, if the test can judge it against the Coordinator's newest
/// row `reference`: its newest write plus the clock tolerance (so that a commit a slower
/// clock stamped just after the newest write is never counted as after it), for a table
/// whose windows end at the same reference and hold transactions enough.
fn counted_from(scan: &TableScan, reference: i64) -> Option<i64> {
    let recent = scan.recent.as_ref()?;
    let transactions = recent.transactions?;
    if recent.reference_ms != reference
        || transactions.iter().copied().max().unwrap_or(0) < MIN_RATE_EVIDENCE
    {
        return None;
    }
    scan.max_prepared_at
        .max(scan.max_committed_at)
        .map(|mark| mark.saturating_add(CLOCK_TOLERANCE_MS))
        .filter(|from| *from < reference)
}

/// One pass over the Coordinator, planned from the tables' scans.
pub(super) struct LagPass {
    /// Where the counts start ([`counted_from`]), sorted and distinct.
    marks: Vec<i64>,
    /// The Coordinator's newest row: the rate windows' reference.
    reference: i64,
}

/// What the pass counts: `buckets[i]`, the COMMITTED rows created after `marks[i]` and at
/// or before `marks[i + 1]`; and the COMMITTED rows in each rate window ending at the
/// reference (the `W` of the test, counted here for every store: Cassandra folds its
/// Coordinator before the reference is known).
#[derive(Default)]
pub(super) struct LagCounts {
    buckets: Vec<u64>,
    windows: [u64; TX_WINDOWS],
}

impl LagCounts {
    pub(super) fn merge(&mut self, other: Self) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (count, more) in self.buckets.iter_mut().zip(other.buckets) {
            *count += more;
        }
        for (count, more) in self.windows.iter_mut().zip(other.windows) {
            *count += more;
        }
    }
}

impl LagPass {
    /// The pass the tables need: `None` when no table lags the Coordinator's newest row
    /// with transactions enough to judge, or the Coordinator's rows are not one per
    /// transaction (a group-commit parent row stands for its children; 3.19 write-set
    /// logging's clean-up deletes rows).
    pub(super) fn plan<'a>(
        coordinator: &CoordinatorObservation,
        schema: &CoordinatorSchema,
        scans: impl IntoIterator<Item = &'a TableScan>,
    ) -> Option<Self> {
        let CoordinatorObservation::Present(scan) = coordinator else {
            return None;
        };
        if schema.has_child_ids || schema.has_write_set {
            return None;
        }
        let reference = scan.max_created_at?;
        let mut marks: Vec<i64> = scans
            .into_iter()
            .filter_map(|scan| counted_from(scan, reference))
            .collect();
        marks.sort_unstable();
        marks.dedup();
        (!marks.is_empty()).then_some(Self { marks, reference })
    }

    /// Files one Coordinator row.
    pub(super) fn add(&self, counts: &mut LagCounts, row: &CoordinatorRow) {
        let (Some(3), Some(at)) = (row.tx_state, row.tx_created_at) else {
            return;
        };
        for (count, width) in counts.windows.iter_mut().zip(RATE_WINDOWS_MS) {
            if at > self.reference.saturating_sub(width) {
                *count += 1;
            }
        }
        let below = self.marks.partition_point(|mark| *mark < at);
        if below == 0 {
            return;
        }
        if counts.buckets.len() < self.marks.len() {
            counts.buckets.resize(self.marks.len(), 0);
        }
        counts.buckets[below - 1] += 1;
    }

    /// Sets each lagging table's side of the trailing-run test.
    pub(super) fn fill<'a>(
        &self,
        counts: &LagCounts,
        scans: impl IntoIterator<Item = &'a mut TableScan>,
    ) {
        let mut after = vec![0; self.marks.len()];
        let mut total = 0;
        for i in (0..self.marks.len()).rev() {
            total += counts.buckets.get(i).copied().unwrap_or(0);
            after[i] = total;
        }
        for scan in scans {
            let Some(mark) = counted_from(scan, self.reference) else {
                continue;
            };
            let (Ok(i), Some(recent)) = (self.marks.binary_search(&mark), scan.recent.as_mut())
            else {
                continue;
            };
            recent.coordinator = Some(TrailingCommits {
                in_windows: counts.windows,
                after_newest: after[i],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: i64, at: i64) -> CoordinatorRow {
        CoordinatorRow {
            tx_id: format!("tx-{at}"),
            tx_state: Some(state),
            tx_created_at: Some(at),
            tx_child_ids: None,
        }
    }

    fn lagging(newest: i64) -> TableScan {
        let mut recent = crate::analyze::RecentCommits::new(1_000);
        recent.transactions = Some([0, 0, 0, 0, MIN_RATE_EVIDENCE]);
        TableScan {
            max_committed_at: Some(newest),
            recent: Some(Box::new(recent)),
            ..TableScan::default()
        }
    }

    #[test]
    fn counts_committed_rows_more_than_the_tolerance_after_each_newest_write() {
        let tolerance = CLOCK_TOLERANCE_MS;
        let mut scans = vec![
            lagging(100 - tolerance),
            lagging(200 - tolerance),
            lagging(300 - tolerance),
        ];
        // Too few transactions to judge: not counted.
        scans.push(TableScan {
            recent: Some(Box::new(crate::analyze::RecentCommits::new(1_000))),
            ..lagging(0)
        });
        let coordinator = CoordinatorObservation::Present(crate::analyze::CoordinatorScan {
            max_created_at: Some(1_000),
            ..crate::analyze::CoordinatorScan::default()
        });
        let schema = CoordinatorSchema {
            table: crate::model::TableRef::new("coordinator", "state"),
            has_child_ids: false,
            has_write_set: false,
        };
        let pass = LagPass::plan(&coordinator, &schema, &scans).expect("three tables lag");
        let (mut a, mut b) = (LagCounts::default(), LagCounts::default());
        for at in [50, 100, 150, 201, 250] {
            pass.add(&mut a, &row(3, at));
        }
        for at in [300, 301, 999] {
            pass.add(&mut b, &row(3, at));
        }
        // ABORTED rows never count.
        pass.add(&mut b, &row(4, 500));
        a.merge(b);
        pass.fill(&a, scans.iter_mut());
        let trailing: Vec<_> = scans
            .iter()
            .map(|s| s.recent.as_ref().and_then(|r| r.coordinator))
            .collect();
        let after: Vec<_> = trailing.iter().map(|t| t.map(|t| t.after_newest)).collect();
        // After 100: 150, 201, 250, 300, 301, 999; after 200: 201..999; after 300: 301, 999.
        assert_eq!(after, [Some(6), Some(5), Some(2), None]);
        // The 250 ms window ending at 1 000 holds the row at 999; the 1 s window all 8.
        let windows = trailing[0].expect("counted").in_windows;
        assert_eq!(windows, [1, 8, 8, 8, 8]);
    }
}
