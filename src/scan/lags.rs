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
    newest_write(scan).map(|mark| mark.saturating_add(CLOCK_TOLERANCE_MS))
}

fn newest_write(scan: &TableScan) -> Option<i64> {
    scan.max_prepared_at.max(scan.max_committed_at)
}

/// One pass over the Coordinator, planned from the tables' scans.
pub(super) struct LagPass {
    /// Every instant a count starts or ends at, sorted and distinct.
    edges: Vec<i64>,
    /// Per table, in the scans' order: the commits after `.0` and at or before `.1` are
    /// the ones after its newest write ([`counted_from`]) and up to the lag's end (the
    /// newest write of the other tables, or the Coordinator's newest row if older: what
    /// the table lags, as `analyze/cut.rs` measures it). Commits after every table's
    /// newest write (read-only transactions before 3.16 write a Coordinator row) are no
    /// evidence about any one table.
    spans: Vec<Option<(i64, i64)>>,
    /// The Coordinator's newest row: the rate windows' reference.
    reference: i64,
}

/// What the pass counts: `buckets[i]`, the COMMITTED rows created after `edges[i]` and at
/// or before `edges[i + 1]`; and the COMMITTED rows in each rate window ending at the
/// reference (counted here for every store: Cassandra folds its Coordinator before the
/// reference is known).
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
    /// The pass the tables need: `None` when no table lags with transactions enough to
    /// judge, or the Coordinator's rows are not one per transaction (a group-commit parent
    /// row stands for its children; 3.19 write-set logging's clean-up deletes rows).
    pub(super) fn plan<E>(
        coordinator: &CoordinatorObservation,
        schema: &CoordinatorSchema,
        scans: &[Result<TableScan, E>],
    ) -> Option<Self> {
        let scans: Vec<&TableScan> = scans.iter().filter_map(|s| s.as_ref().ok()).collect();
        let CoordinatorObservation::Present(scan) = coordinator else {
            return None;
        };
        if schema.has_child_ids || schema.has_write_set {
            return None;
        }
        let reference = scan.max_created_at?;
        // The newest write of all tables and the runner-up, so each table's "the others'
        // newest" is one comparison (the newest table's others' is the runner-up).
        let (mut first, mut second): (Option<(usize, i64)>, Option<i64>) = (None, None);
        for (i, at) in scans
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, newest_write(s)?)))
        {
            match first {
                Some((_, best)) if at <= best => second = second.max(Some(at)),
                _ => {
                    second = second.max(first.map(|(_, best)| best));
                    first = Some((i, at));
                }
            }
        }
        let spans: Vec<Option<(i64, i64)>> = scans
            .iter()
            .enumerate()
            .map(|(i, scan)| {
                let from = counted_from(scan, reference)?;
                let others = match first? {
                    (newest, _) if newest == i => second?,
                    (_, at) => at,
                };
                let to = others.min(reference);
                (from < to).then_some((from, to))
            })
            .collect();
        let mut edges: Vec<i64> = spans.iter().flatten().flat_map(|(a, b)| [*a, *b]).collect();
        edges.sort_unstable();
        edges.dedup();
        (!edges.is_empty()).then_some(Self {
            edges,
            spans,
            reference,
        })
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
        let below = self.edges.partition_point(|edge| *edge < at);
        if below == 0 {
            return;
        }
        if counts.buckets.len() < self.edges.len() {
            counts.buckets.resize(self.edges.len(), 0);
        }
        counts.buckets[below - 1] += 1;
    }

    /// Sets each lagging table's side of the trailing-run test; `scans` as [`Self::plan`]
    /// saw them.
    pub(super) fn fill<E>(&self, counts: &LagCounts, scans: &mut [Result<TableScan, E>]) {
        let scans = scans.iter_mut().filter_map(|s| s.as_mut().ok());
        // after[i]: the COMMITTED rows created after edges[i].
        let mut after = vec![0; self.edges.len()];
        let mut total = 0;
        for i in (0..self.edges.len()).rev() {
            total += counts.buckets.get(i).copied().unwrap_or(0);
            after[i] = total;
        }
        let after_edge = |at: i64| self.edges.binary_search(&at).ok().map(|i| after[i]);
        for (scan, span) in scans.zip(&self.spans) {
            let (Some((from, to)), Some(recent)) = (span, scan.recent.as_mut()) else {
                continue;
            };
            let (Some(after_from), Some(after_to)) = (after_edge(*from), after_edge(*to)) else {
                continue;
            };
            // The windows end at the lag's end too: commits after it are no evidence.
            let mut in_windows = counts.windows;
            for count in &mut in_windows {
                *count = count.saturating_sub(after_to);
            }
            recent.coordinator = Some(TrailingCommits {
                in_windows,
                after_newest: after_from - after_to,
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

    fn table(newest: i64, transactions: u64) -> TableScan {
        let mut recent = crate::analyze::RecentCommits::new(1_000);
        recent.transactions = Some([0, 0, 0, 0, transactions]);
        TableScan {
            max_committed_at: Some(newest),
            recent: Some(Box::new(recent)),
            ..TableScan::default()
        }
    }

    /// Three tables stopped at 100, 200 and 700, the Coordinator's newest row at 1 000 (a
    /// read-only tail after every table's newest write); a fourth has too few transactions.
    #[test]
    fn counts_the_commits_in_each_lag_from_the_tolerance_to_what_it_lags() {
        let tolerance = CLOCK_TOLERANCE_MS;
        let mut scans: [Result<TableScan, ()>; 4] = [
            Ok(table(100 - tolerance, MIN_RATE_EVIDENCE)),
            Ok(table(200 - tolerance, MIN_RATE_EVIDENCE)),
            Ok(table(700, MIN_RATE_EVIDENCE)),
            Ok(table(0, MIN_RATE_EVIDENCE - 1)),
        ];
        let coordinator = CoordinatorObservation::Present(crate::analyze::CoordinatorScan {
            max_created_at: Some(1_000),
            ..crate::analyze::CoordinatorScan::default()
        });
        let schema = CoordinatorSchema {
            table: crate::model::TableRef::new("coordinator", "state"),
            has_child_ids: false,
            has_write_set: false,
        };
        let pass = LagPass::plan(&coordinator, &schema, &scans).expect("two tables lag");
        let (mut a, mut b) = (LagCounts::default(), LagCounts::default());
        for at in [50, 100, 150, 201, 250] {
            pass.add(&mut a, &row(3, at));
        }
        for at in [300, 700, 701, 999] {
            pass.add(&mut b, &row(3, at));
        }
        // ABORTED rows never count.
        pass.add(&mut b, &row(4, 500));
        a.merge(b);
        pass.fill(&a, &mut scans);
        let trailing: Vec<_> = scans
            .iter()
            .flatten()
            .map(|s| s.recent.as_ref().and_then(|r| r.coordinator))
            .collect();
        let after: Vec<_> = trailing.iter().map(|t| t.map(|t| t.after_newest)).collect();
        // In (100, 700]: 150, 201, 250, 300, 700; in (200, 700]: 201, 250, 300, 700. The table
        // that stopped last lags nothing (the others are older), the fourth is not judged.
        assert_eq!(after, [Some(5), Some(4), None, None]);
        // The windows end at the lag's end: the 250 ms window (750, 1 000] holds none of it,
        // the 1 s window the 7 rows up to 700.
        let windows = trailing[0].expect("counted").in_windows;
        assert_eq!(windows, [0, 7, 7, 7, 7]);
        // Nothing lags with a Coordinator whose rows stand for groups.
        let group = CoordinatorSchema {
            has_child_ids: true,
            ..schema
        };
        assert!(LagPass::plan(&coordinator, &group, &scans).is_none());
    }
}
