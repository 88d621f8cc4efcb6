//! The Coordinator's commits after each lagging table's newest write, counted exactly in
//! one pass over the Coordinator: the `n` of the trailing-run test in `analyze/cut.rs`
//! (`table-copied-early` judged by transactions). The rate windows alone bound it only to
//! the nearest window edge, a quarter of the lag or less when the lag is under a second.
//!
//! Memory: one counter per lagging table.

use crate::analyze::{CLOCK_TOLERANCE_MS, CoordinatorObservation, MIN_RATE_EVIDENCE, TableScan};
use crate::model::CoordinatorRow;
use crate::store::CoordinatorSchema;

/// Where a table's count starts: its newest write plus the clock tolerance, so that a
/// commit a slower clock stamped just after the newest write is never counted as after it.
fn counted_from(scan: &TableScan) -> Option<i64> {
    scan.max_prepared_at
        .max(scan.max_committed_at)
        .map(|mark| mark.saturating_add(CLOCK_TOLERANCE_MS))
}

/// Where the counts start (sorted, distinct: [`counted_from`]) for the tables whose lag behind the Coordinator's
/// newest row the analysis can judge by transactions; `None` when there is none, or the
/// Coordinator's rows are not one per transaction (a group-commit parent row stands for
/// its children; 3.19 write-set logging's clean-up deletes rows).
pub(super) fn lagging_marks<'a>(
    coordinator: &CoordinatorObservation,
    schema: &CoordinatorSchema,
    scans: impl IntoIterator<Item = &'a TableScan>,
) -> Option<Vec<i64>> {
    let CoordinatorObservation::Present(scan) = coordinator else {
        return None;
    };
    if schema.has_child_ids || schema.has_write_set {
        return None;
    }
    let newest = scan.max_created_at?;
    let mut marks: Vec<i64> = scans
        .into_iter()
        .filter(|scan| {
            scan.recent
                .as_ref()
                .and_then(|recent| recent.transactions)
                .is_some_and(|tx| tx.iter().copied().max().unwrap_or(0) >= MIN_RATE_EVIDENCE)
        })
        .filter_map(counted_from)
        .filter(|from| *from < newest)
        .collect();
    marks.sort_unstable();
    marks.dedup();
    (!marks.is_empty()).then_some(marks)
}

/// Files one Coordinator row: `buckets[i]` counts the COMMITTED rows created after
/// `marks[i]` and at or before `marks[i + 1]`.
pub(super) fn bucket(buckets: &mut Vec<u64>, marks: &[i64], row: &CoordinatorRow) {
    let (Some(3), Some(at)) = (row.tx_state, row.tx_created_at) else {
        return;
    };
    let below = marks.partition_point(|mark| *mark < at);
    if below == 0 {
        return;
    }
    if buckets.len() < marks.len() {
        buckets.resize(marks.len(), 0);
    }
    buckets[below - 1] += 1;
}

pub(super) fn merge(buckets: &mut Vec<u64>, other: Vec<u64>) {
    if buckets.len() < other.len() {
        buckets.resize(other.len(), 0);
    }
    for (count, more) in buckets.iter_mut().zip(other) {
        *count += more;
    }
}

/// Sets each scanned table's `commits_after_newest` from the buckets of one pass.
pub(super) fn fill<'a>(
    marks: &[i64],
    buckets: &[u64],
    scans: impl IntoIterator<Item = &'a mut TableScan>,
) {
    let mut after = vec![0; marks.len()];
    let mut total = 0;
    for i in (0..marks.len()).rev() {
        total += buckets.get(i).copied().unwrap_or(0);
        after[i] = total;
    }
    for scan in scans {
        let Some(mark) = counted_from(scan) else {
            continue;
        };
        let Some(recent) = scan.recent.as_deref_mut() else {
            continue;
        };
        if let Ok(i) = marks.binary_search(&mark) {
            recent.commits_after_newest = Some(after[i]);
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

    #[test]
    fn counts_committed_rows_strictly_after_each_mark() {
        let marks = [100, 200, 300];
        let mut a = Vec::new();
        let mut b = Vec::new();
        for at in [50, 100, 150, 201, 250] {
            bucket(&mut a, &marks, &row(3, at));
        }
        for at in [300, 301, 999] {
            bucket(&mut b, &marks, &row(3, at));
        }
        // ABORTED rows never count.
        bucket(&mut b, &marks, &row(4, 500));
        merge(&mut a, b);
        let mut scans: Vec<TableScan> = marks
            .iter()
            .map(|mark| TableScan {
                max_committed_at: Some(*mark - CLOCK_TOLERANCE_MS),
                recent: Some(Box::new(crate::analyze::RecentCommits::new(1_000))),
                ..TableScan::default()
            })
            .collect();
        fill(&marks, &a, scans.iter_mut());
        let after: Vec<_> = scans
            .iter()
            .map(|s| s.recent.as_ref().and_then(|r| r.commits_after_newest))
            .collect();
        // After 100: 150, 201, 250, 300, 301, 999; after 200: 201..999; after 300: 301, 999.
        assert_eq!(after, [Some(6), Some(5), Some(2)]);
    }
}
