//! What a scan hands to the analysis: per-table counts and watermarks, the records that
//! need a second look, and what the Coordinator holds. Built by `store`, read by `analyze`.

use crate::model::{CoordinatorRows, RecordKey, RecordMeta, TableRef};

/// A record the analysis must look at, with the Coordinator rows for its `tx_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRecord {
    pub key: RecordKey,
    pub meta: RecordMeta,
    pub coordinator: CoordinatorRows,
}

/// Everything one scan observed.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub tables: Vec<TableObservation>,
    pub coordinator: CoordinatorObservation,
    pub discovery: Vec<DiscoveryNote>,
    /// The storages scanned, each with the tables routed to it (empty: none named).
    pub storages: Vec<super::StorageObservation>,
    /// Every transaction the Coordinator shows committing inside the cut window, each with
    /// what the write-set proof says of it (`None`: not listed, no write sets; `cut.rs`).
    pub at_risk_transactions: Option<super::WindowTransactions>,
    /// The COMMITTED Coordinator rows created after the earliest instant a backup set's
    /// parts can have been copied at, when no part records one (`cut.rs`).
    pub committed_after: Option<super::CommittedAfter>,
}

#[derive(Clone, Debug)]
pub struct TableObservation {
    pub table: TableRef,
    pub outcome: TableOutcome,
}

#[derive(Clone, Debug)]
pub enum TableOutcome {
    Scanned(TableScan),
    /// Listed in ScalarDB's metadata but absent from the database.
    Missing,
    /// The scan failed; the reason is the error chain, already rendered.
    Failed(String),
    /// The table exists but the account may not read it; the reason is the database's own.
    Denied(String),
}

/// The result of scanning one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableScan {
    pub records: u64,
    pub max_prepared_at: Option<i64>,
    pub max_committed_at: Option<i64>,
    /// Every record that is not plainly committed (`RecordMeta::is_plainly_committed`).
    pub exceptional: Vec<ObservedRecord>,
    /// COMMITTED records whose transaction has no COMMITTED Coordinator state and that
    /// `Retention` says matter (their transaction is unresolved elsewhere, or aborted).
    pub unconfirmed_relevant: Vec<ObservedRecord>,
    /// How many other COMMITTED records have no COMMITTED Coordinator state.
    pub unconfirmed_other_count: u64,
    /// The few with the smallest keys, as evidence.
    pub unconfirmed_other_samples: Vec<ObservedRecord>,
    /// When those other records committed, against the Coordinator's span (`cut.rs`).
    pub unconfirmed_times: UnconfirmedTimes,
    /// Records committed in fixed windows before a reference instant: the table's own
    /// write rate, counted in the same pass as `records` (`None`: no reference known).
    pub recent: Option<Box<RecentCommits>>,
}

/// The COMMITTED records without a Coordinator row that `Retention` only counts, classed
/// by what their commit times say (see `analyze/cut.rs`). The classes sum to at most
/// `TableScan::unconfirmed_other_count`; the rest were filed without a Coordinator span.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnconfirmedTimes {
    /// `tx_prepared_at = tx_committed_at`: written by one-phase commit (3.16+).
    pub one_phase: u64,
    /// Committed before the Coordinator's oldest row (less a clock tolerance).
    pub before_oldest: u64,
    /// Committed while the Coordinator holds rows older and newer.
    pub within: u64,
    /// Committed after the Coordinator's newest row (plus a clock tolerance).
    pub after_newest: u64,
    /// The unexplained one committed last (within or after), as evidence.
    pub newest: Option<Box<ObservedRecord>>,
}

impl UnconfirmedTimes {
    pub fn merge(&mut self, other: Self) {
        self.one_phase += other.one_phase;
        self.before_oldest += other.before_oldest;
        self.within += other.within;
        self.after_newest += other.after_newest;
        if let Some(record) = &other.newest {
            self.keep_newest(record);
        }
    }

    /// Keeps `record` if it committed after the one kept (the smaller key on a tie, so
    /// the evidence does not depend on row order); clones only then.
    pub fn keep_newest(&mut self, record: &ObservedRecord) {
        let newer = |a: &ObservedRecord, b: &ObservedRecord| {
            (a.meta.tx_committed_at, &b.key) > (b.meta.tx_committed_at, &a.key)
        };
        if self.newest.as_ref().is_none_or(|kept| newer(record, kept)) {
            self.newest = Some(Box::new(record.clone()));
        }
    }
}

/// The widths of the windows a write rate is counted in, ending at a reference instant:
/// from a quarter second to over an hour, each four times the last.
pub const RATE_WINDOWS_MS: [i64; 8] = [
    250, 1_000, 4_000, 16_000, 64_000, 256_000, 1_024_000, 4_096_000,
];

/// How many of the first rate windows also count distinct transactions (up to 64 s): the
/// count groups the window's records by transaction, so it is kept to the last minute's.
pub const TX_WINDOWS: usize = 5;

/// How many records (or Coordinator rows) were committed after `reference_ms - w` for each
/// `w` of [`RATE_WINDOWS_MS`] (nothing bounds them above: a table newer than the reference
/// lags nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecentCommits {
    pub reference_ms: i64,
    pub counts: [u64; RATE_WINDOWS_MS.len()],
    /// A table's: the distinct transactions among those records in each of the first
    /// [`TX_WINDOWS`] windows, one-phase commits left out (they have no Coordinator row);
    /// `None`: not counted (a SQL store counts them only for a table that lags,
    /// [`Self::worth_transactions`]).
    pub transactions: Option<[u64; TX_WINDOWS]>,
    /// A table's: the Coordinator's side of the trailing-run test, counted in a pass over
    /// the Coordinator when the table lags it (`None`: not counted).
    pub coordinator: Option<TrailingCommits>,
}

/// The Coordinator's COMMITTED rows against one table's [`RecentCommits`], up to the end of
/// its lag (the other tables' newest write, or the Coordinator's newest row if older): in
/// each of the first [`TX_WINDOWS`] windows (the same reference), and created more than the
/// clock tolerance after the table's newest write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrailingCommits {
    pub in_windows: [u64; TX_WINDOWS],
    pub after_newest: u64,
}

impl RecentCommits {
    pub fn new(reference_ms: i64) -> Self {
        Self {
            reference_ms,
            counts: [0; RATE_WINDOWS_MS.len()],
            transactions: None,
            coordinator: None,
        }
    }

    /// Whether a table whose newest write is `newest` lags the reference enough, with
    /// records enough in the windows [`TX_WINDOWS`] covers, for its distinct transactions
    /// to be worth a second pass (the trailing-run test, `analyze/cut.rs`).
    pub fn worth_transactions(&self, newest: Option<i64>) -> bool {
        newest.is_some_and(|at| {
            at.saturating_add(super::cut::CLOCK_TOLERANCE_MS) < self.reference_ms
                && self.counts[TX_WINDOWS - 1] >= super::cut::MIN_RATE_EVIDENCE
        })
    }

    /// Counts one commit at `at`.
    pub fn add(&mut self, at: Option<i64>) {
        let Some(at) = at else { return };
        for (count, width) in self.counts.iter_mut().zip(RATE_WINDOWS_MS) {
            if at > self.reference_ms.saturating_sub(width) {
                *count += 1;
            }
        }
    }

    /// Adds another part's counts. Distinct transactions do not add up (one transaction
    /// can write both parts), so a merge drops them.
    pub fn merge(&mut self, other: &Self) {
        for (count, more) in self.counts.iter_mut().zip(other.counts) {
            *count += more;
        }
        self.transactions = None;
        self.coordinator = None;
    }
}

/// How many distinct transactions [`RecentTransactions`] keeps at most; past it the
/// table's transactions are not counted (`None`), and its lag is judged by rates only.
pub const MAX_RECENT_TRANSACTIONS: usize = 50_000;

/// The distinct transactions among a table's COMMITTED records committed in the first
/// [`TX_WINDOWS`] rate windows, for a store that counts them itself (Cassandra): each
/// transaction's newest commit, one-phase commits left out, as
/// [`RecentCommits::transactions`] counts them in SQL. Bounded by
/// [`MAX_RECENT_TRANSACTIONS`].
#[derive(Clone, Debug, Default)]
pub struct RecentTransactions {
    newest: std::collections::HashMap<String, i64>,
    overflow: bool,
}

impl RecentTransactions {
    pub fn add(&mut self, reference_ms: i64, tx_id: Option<&str>, meta: &RecordMeta) {
        let (Some(tx_id), Some(3), Some(at), false) =
            (tx_id, meta.tx_state, meta.tx_committed_at, self.overflow)
        else {
            return;
        };
        if meta.tx_prepared_at == Some(at)
            || at <= reference_ms.saturating_sub(RATE_WINDOWS_MS[TX_WINDOWS - 1])
        {
            return;
        }
        if let Some(newest) = self.newest.get_mut(tx_id) {
            *newest = (*newest).max(at);
        } else if self.newest.len() < MAX_RECENT_TRANSACTIONS {
            self.newest.insert(tx_id.to_owned(), at);
        } else {
            self.overflow = true;
            self.newest = std::collections::HashMap::new();
        }
    }

    pub fn merge(&mut self, other: Self) {
        self.overflow |= other.overflow;
        for (tx_id, at) in other.newest {
            if self.overflow {
                break;
            }
            if let Some(newest) = self.newest.get_mut(&tx_id) {
                *newest = (*newest).max(at);
            } else if self.newest.len() < MAX_RECENT_TRANSACTIONS {
                self.newest.insert(tx_id, at);
            } else {
                self.overflow = true;
            }
        }
        if self.overflow {
            self.newest = std::collections::HashMap::new();
        }
    }

    /// The counts per window ending at `reference_ms`; `None` past the bound.
    pub fn counts(&self, reference_ms: i64) -> Option<[u64; TX_WINDOWS]> {
        if self.overflow {
            return None;
        }
        let mut counts = [0; TX_WINDOWS];
        for at in self.newest.values() {
            for (count, width) in counts.iter_mut().zip(RATE_WINDOWS_MS) {
                if *at > reference_ms.saturating_sub(width) {
                    *count += 1;
                }
            }
        }
        Some(counts)
    }
}

/// What the Coordinator table holds.
#[derive(Clone, Debug, Default)]
pub enum CoordinatorObservation {
    #[default]
    Missing,
    Present(CoordinatorScan),
    /// The Coordinator table is there but could not be read (a permission, a corrupt row);
    /// the reason is the error chain, already rendered.
    Unreadable {
        table: TableRef,
        reason: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorScan {
    pub table: Option<TableRef>,
    pub rows: u64,
    pub committed: u64,
    pub aborted: u64,
    pub max_created_at: Option<i64>,
    pub min_created_at: Option<i64>,
    /// COMMITTED rows created in fixed windows before a reference instant (the at-risk
    /// count of a cut window; `None`: not counted).
    pub recent_committed: Option<Box<RecentCommits>>,
    /// The table has `tx_child_ids`: it was created with group commit on.
    pub has_child_ids: bool,
    /// The table has `tx_write_set`: 3.19 write-set logging, so rows may be cleaned up.
    pub has_write_set: bool,
    /// Rows whose state is not COMMITTED or ABORTED, or whose `tx_created_at` is NULL, and
    /// (from a store without a key on `tx_id`) rows that share their `tx_id` with another:
    /// ScalarDB keeps one state per transaction, so a valid-looking row here is a duplicate.
    pub invalid_rows: Vec<crate::model::CoordinatorRow>,
    pub invalid_count: u64,
}

/// Something discovery noticed before any record was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryNote {
    /// No ScalarDB tables at all: not a ScalarDB database, or everything was excluded.
    NoTransactionalTables { searched: String },
    /// ScalarDB's metadata table describes the table without all of its metadata columns.
    MetadataIncomplete {
        table: TableRef,
        missing_columns: Vec<String>,
    },
    /// Something discovery must read exists but the account may not read it (`object` is a
    /// table's name); `reason` is the database's own message.
    PermissionDenied { object: String, reason: String },
    /// Rows of ScalarDB's metadata table that ScalarDB could not have written (a NULL
    /// `full_table_name` or `column_name`): the tables they describe are unknown.
    InvalidMetadataRows { table: String, rows: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(prepared: i64, committed: i64) -> RecordMeta {
        RecordMeta {
            tx_state: Some(3),
            tx_prepared_at: Some(prepared),
            tx_committed_at: Some(committed),
            ..RecordMeta::default()
        }
    }

    /// Counted as the SQL stores count them: one per transaction at its newest commit,
    /// one-phase commits, PREPARED records and records older than the last minute left out;
    /// two ranges' counts are a union, never a sum.
    #[test]
    fn distinct_transactions_per_window_count_each_transaction_once() {
        let reference = 100_000;
        let (mut a, mut b) = (RecentTransactions::default(), RecentTransactions::default());
        a.add(reference, Some("t1"), &committed(99_000, 99_900));
        a.add(reference, Some("t1"), &committed(98_000, 98_500));
        // The same transaction's write in another range.
        b.add(reference, Some("t1"), &committed(99_000, 99_900));
        b.add(reference, Some("t2"), &committed(98_000, 98_900));
        // One-phase commit: no Coordinator row.
        b.add(reference, Some("t3"), &committed(99_950, 99_950));
        // PREPARED, older than the last minute, no id: not counted.
        b.add(
            reference,
            Some("t4"),
            &RecordMeta {
                tx_state: Some(1),
                ..committed(99_960, 99_970)
            },
        );
        b.add(reference, Some("t5"), &committed(10_000, 20_000));
        b.add(reference, None, &committed(99_000, 99_990));
        a.merge(b);
        // 250 ms and 1 s: t1 (its newest commit, 99 900); 4 s and up: t1 and t2 (98 900).
        assert_eq!(a.counts(reference), Some([1, 1, 2, 2, 2]));
    }

    #[test]
    fn past_the_bound_the_transactions_are_not_counted() {
        let reference = 100_000;
        let mut all = RecentTransactions::default();
        let mut other = RecentTransactions::default();
        for i in 0..MAX_RECENT_TRANSACTIONS {
            all.add(
                reference,
                Some(&format!("a{i}")),
                &committed(99_000, 99_500),
            );
        }
        assert!(all.counts(reference).is_some());
        other.add(reference, Some("one-more"), &committed(99_000, 99_500));
        all.merge(other);
        assert_eq!(all.counts(reference), None);
        // And it stays unknown: a later record cannot make the count look complete.
        all.add(reference, Some("later"), &committed(99_000, 99_600));
        assert_eq!(all.counts(reference), None);
    }
}
