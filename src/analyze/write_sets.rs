//! The proof from ScalarDB 3.19's write sets (`tx_write_set`, written when
//! `scalar.db.consensus_commit.coordinator.write_set_logging.enabled=true`): which records a
//! transaction wrote, so whether a backup holds every one of them at that transaction's
//! version or a later one (`shared/scalardb-protocol.md` §3, §5).
//!
//! Pure: the scan job streams the Coordinator's write sets through [`AtRiskSet`] (which
//! keeps only the transactions a copy taken table by table could have torn), looks up each
//! record they name, and hands both to [`prove`]; the cut analysis can hand it its own
//! at-risk transactions the same way. No I/O, no clock.
//!
//! The rule, for a COMMITTED transaction `T` whose Coordinator row says `tx_created_at = C`
//! (3.19 stamps every record `T` commits, and every record lazy recovery rolls forward for
//! it, with `tx_committed_at = C`; §10.5), and each record `R` its write set names:
//! - `R` carries `tx_id = T` (COMMITTED, or PREPARED/DELETED, which recovery rolls forward):
//!   `T`'s version.
//! - `R` is COMMITTED by another transaction at `c > C`: a later version, overwritten
//!   legitimately.
//! - `R` is PREPARED/DELETED by another transaction whose before image is `T`'s
//!   (`before_tx_id = T`), or that prepared it after `C`: whatever recovery decides, the
//!   result is `T`'s version or a later one.
//! - `R` is COMMITTED by another transaction at `c < C`, or carries NULL metadata (an
//!   imported record ScalarDB has never written since): the copy of its table predates `T`'s
//!   write, which is lost — a tear ([`Code::TornTransactionMissingWrite`]). This assumes the
//!   writers' clocks agree (ScalarDB's backup guide requires NTP), as every time comparison
//!   of the tool does.
//! - `R` is absent: `T` (or a later transaction) may have deleted it. Not a finding; the
//!   transaction is counted as not fully proven.
//! - Anything else (the same millisecond as `C`, a missing `tx_committed_at`, a record
//!   PREPARED by another transaction on a base that is not `T`'s before `C`): ambiguous, a
//!   warning that says so ([`Code::WriteSetAmbiguous`]), never an error.
//!
//! For an ABORTED transaction with a write set (the row its own failed commit wrote), every
//! record it left PREPARED or DELETED must be in that write set: ScalarDB's
//! `finishTransaction` rolls back only the records the write set names.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::{Code, Finding};
use crate::model::{RecordKey, RecordMeta, StoredState, TableRef, TxState};

/// A transaction is at risk when it committed this close to (or after) the newest write of a
/// table it wrote: a copy of that table taken before the transaction wrote it shows the same
/// newest write. Transactions committed long before every such table's newest write were
/// copied whole (each table's copy is at or after its newest write).
pub const AT_RISK_MARGIN_MS: i64 = 60_000;

/// With at most this many committed write sets, every one is checked.
pub const CHECK_ALL_BELOW: usize = 10_000;

/// The most records the at-risk set holds; beyond, transactions are skipped and counted.
pub const MAX_AT_RISK_RECORDS: usize = 2_000_000;

/// One transaction and the records its write set names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenTransaction {
    /// The id its records carry (`parent$child` for a group-commit child).
    pub tx_id: String,
    /// The Coordinator row's `tx_created_at`.
    pub created_at: i64,
    pub records: Vec<(TableRef, RecordKey)>,
}

/// What the backup holds for one written record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Record(RecordMeta),
    /// No record with that key.
    Absent,
    /// The record's table was not scanned (excluded, missing, unreadable, or not a
    /// ScalarDB table of this deployment).
    TableNotScanned,
}

/// Why a transaction was not checked, with how many.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct WriteSetSummary {
    /// COMMITTED Coordinator rows carrying a write set (group rows count once per child).
    pub committed_with_write_set: u64,
    /// Transactions whose records were looked up and judged.
    pub checked: u64,
    /// Committed long enough before the newest write of every table they wrote that no
    /// table-by-table copy could have torn them (see `at_risk_rule`).
    pub skipped_not_at_risk: u64,
    /// Skipped because the at-risk set reached its memory bound.
    pub skipped_over_limit: u64,
    /// How the at-risk transactions were chosen.
    pub at_risk_rule: String,
    /// Every written record found at the transaction's version or a later one.
    pub proven: u64,
    /// Some written record is older than the transaction: `torn-transaction-missing-write`.
    pub torn: u64,
    /// Some written record could not be ordered against the transaction.
    pub ambiguous: u64,
    /// Nothing contradicts the transaction, but some written record is absent (deleted
    /// since, or by it) or in a table that was not scanned.
    pub unverified: u64,
    pub records_looked_up: u64,
    pub records_absent: u64,
    /// Write sets that could not be decoded (each a `write-set-undecodable` finding).
    pub undecodable: u64,
    /// ABORTED transactions with unresolved records whose write set was compared with them.
    pub aborted_checked: u64,
}

/// The verdict on one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxProof {
    Proven,
    Unverified,
    Ambiguous,
    Torn,
}

/// The outcome of [`prove`].
#[derive(Clone, Debug, Default)]
pub struct WriteSetProof {
    pub findings: Vec<Finding>,
    /// Per checked transaction, by id.
    pub transactions: BTreeMap<String, TxProof>,
    pub summary: WriteSetSummary,
}

/// Streams committed write sets and keeps those at risk, memory bounded by the at-risk set
/// (plus [`CHECK_ALL_BELOW`] transactions while the total is small).
#[derive(Debug)]
pub struct AtRiskSet {
    /// Each table's newest write (`tx_prepared_at` or `tx_committed_at`); a table absent
    /// here was not scanned, `None` means it holds no timestamp at all.
    watermarks: HashMap<TableRef, Option<i64>>,
    margin_ms: i64,
    /// The cut window (`cut::window`): a transaction created in it is always at risk, the
    /// one the cut's judgement needs proven.
    window: Option<(i64, i64)>,
    kept: Vec<WrittenTransaction>,
    kept_records: usize,
    /// Kept because the total was still small, not because they are at risk.
    kept_while_few: usize,
    seen: u64,
    over_limit: u64,
}

impl AtRiskSet {
    pub fn new(watermarks: HashMap<TableRef, Option<i64>>, margin_ms: i64) -> Self {
        Self {
            watermarks,
            margin_ms,
            window: None,
            kept: Vec::new(),
            kept_records: 0,
            kept_while_few: 0,
            seen: 0,
            over_limit: 0,
        }
    }

    /// Keeps every transaction created in `[from, to]` whatever the bounded-work rule says.
    #[must_use]
    pub fn with_window(mut self, window: Option<(i64, i64)>) -> Self {
        self.window = window;
        self
    }

    /// The oldest of the scanned tables' newest writes, minus the margin, and never after the
    /// cut window's start: no transaction committed before it is at risk (a store may filter
    /// on it). `None`: every one may be.
    pub fn floor(&self) -> Option<i64> {
        let mut oldest: Option<i64> = None;
        for watermark in self.watermarks.values() {
            let w = (*watermark)?;
            oldest = Some(oldest.map_or(w, |o| o.min(w)));
        }
        let floor = oldest.map(|o| o.saturating_sub(self.margin_ms))?;
        Some(self.window.map_or(floor, |(from, _)| floor.min(from)))
    }

    /// Whether a copy of some table `tx` wrote could have been taken before `tx` wrote it
    /// (or it was created inside the cut window).
    pub fn is_at_risk(&self, tx: &WrittenTransaction) -> bool {
        if self
            .window
            .is_some_and(|(from, to)| (from..=to).contains(&tx.created_at))
        {
            return true;
        }
        tx.records
            .iter()
            .any(|(table, _)| match self.watermarks.get(table) {
                // Not scanned: nothing to look up there; `prove` counts it.
                None => true,
                Some(None) => true,
                Some(Some(w)) => tx.created_at >= w.saturating_sub(self.margin_ms),
            })
    }

    pub fn add(&mut self, tx: WrittenTransaction) {
        self.seen += 1;
        let at_risk = self.is_at_risk(&tx);
        let few = self.seen <= CHECK_ALL_BELOW as u64;
        if !at_risk && !few {
            self.drop_kept_while_few();
            return;
        }
        if self.kept_records.saturating_add(tx.records.len()) > MAX_AT_RISK_RECORDS {
            self.over_limit += 1;
            return;
        }
        if !at_risk {
            self.kept_while_few += 1;
        }
        self.kept_records += tx.records.len();
        self.kept.push(tx);
        if !few {
            self.drop_kept_while_few();
        }
    }

    /// Past [`CHECK_ALL_BELOW`], only transactions at risk stay.
    fn drop_kept_while_few(&mut self) {
        if self.kept_while_few == 0 {
            return;
        }
        let kept = std::mem::take(&mut self.kept);
        let (at_risk, _): (Vec<_>, Vec<_>) = kept.into_iter().partition(|tx| self.is_at_risk(tx));
        self.kept_records = at_risk.iter().map(|tx| tx.records.len()).sum();
        self.kept = at_risk;
        self.kept_while_few = 0;
    }

    /// The transactions to check, and the counts for the summary.
    pub fn finish(self) -> (Vec<WrittenTransaction>, WriteSetSummary) {
        let all = self.seen <= CHECK_ALL_BELOW as u64;
        let checked = self.kept.len() as u64;
        let summary = WriteSetSummary {
            committed_with_write_set: self.seen,
            skipped_not_at_risk: self.seen - checked - self.over_limit,
            skipped_over_limit: self.over_limit,
            at_risk_rule: at_risk_rule(all, self.margin_ms, self.window),
            ..WriteSetSummary::default()
        };
        (self.kept, summary)
    }
}

/// How the checked transactions were chosen, for the summary: all of them, or those within
/// `margin_ms` of a written table's newest write.
pub fn at_risk_rule(all: bool, margin_ms: i64, window: Option<(i64, i64)>) -> String {
    let rule = if all {
        format!("all (at most {CHECK_ALL_BELOW} committed write sets)")
    } else {
        format!(
            "committed at most {margin_ms} ms before the newest write of a table they wrote, or \
             later (more than {CHECK_ALL_BELOW} committed write sets)"
        )
    };
    match window {
        Some((from, to)) if !all => format!(
            "{rule}, and every one created in the cut window ({from} to {to} ms) whatever its \
             tables' writes"
        ),
        _ => rule,
    }
}

/// A write set the scan could not use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    pub tx_id: String,
    /// The decoder's error chain.
    pub reason: String,
}

/// An ABORTED transaction's write set beside the records it left unresolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbortedWriteSet {
    pub tx_id: String,
    pub written: BTreeSet<(TableRef, RecordKey)>,
    /// Its PREPARED and DELETED records in the backup.
    pub unresolved: Vec<(TableRef, RecordKey, TxState)>,
}

/// Judges each transaction from the records looked up for it (`found`, keyed by table and
/// key; a record the scan did not look up counts as in a table not scanned).
pub fn prove(
    transactions: &[WrittenTransaction],
    found: &HashMap<(TableRef, RecordKey), Found>,
    undecodable: &[Undecodable],
    aborted: &[AbortedWriteSet],
    mut summary: WriteSetSummary,
) -> WriteSetProof {
    let mut findings = Vec::new();
    let mut proofs = BTreeMap::new();
    for tx in transactions {
        let mut proof = TxProof::Proven;
        for (table, key) in &tx.records {
            let look = found
                .get(&(table.clone(), key.clone()))
                .unwrap_or(&Found::TableNotScanned);
            let judged = match look {
                Found::TableNotScanned => TxProof::Unverified,
                Found::Absent => {
                    summary.records_looked_up += 1;
                    summary.records_absent += 1;
                    TxProof::Unverified
                }
                Found::Record(meta) => {
                    summary.records_looked_up += 1;
                    let (judged, finding) = judge(tx, table, key, meta);
                    findings.extend(finding);
                    judged
                }
            };
            proof = proof.max(judged);
        }
        match proof {
            TxProof::Proven => summary.proven += 1,
            TxProof::Unverified => summary.unverified += 1,
            TxProof::Ambiguous => summary.ambiguous += 1,
            TxProof::Torn => summary.torn += 1,
        }
        proofs.insert(tx.tx_id.clone(), proof);
    }
    summary.checked = transactions.len() as u64;
    for bad in undecodable {
        findings.push(
            Finding::new(
                Code::WriteSetUndecodable,
                format!(
                    "the Coordinator row's tx_write_set cannot be read ({}): the records of \
                     this transaction are judged without its write set",
                    bad.reason
                ),
            )
            .tx_id(Some(&bad.tx_id)),
        );
    }
    summary.undecodable = undecodable.len() as u64;
    for tx in aborted {
        for (table, key, state) in &tx.unresolved {
            if tx.written.contains(&(table.clone(), key.clone())) {
                continue;
            }
            findings.push(
                Finding::new(
                    Code::AbortedWriteOutsideWriteSet,
                    "record is left by an ABORTED transaction whose write set does not name it: \
                     ScalarDB never writes such a write set. Lazy recovery still rolls the \
                     record back (the Coordinator says ABORTED), but finishTransaction rolls \
                     back only the records the write set names and then deletes the row, after \
                     which a reader finds no state and aborts the record afresh",
                )
                .table(table)
                .key(key)
                .tx_id(Some(&tx.tx_id))
                .tx_state(state)
                .coordinator_state("ABORTED"),
            );
        }
    }
    summary.aborted_checked = aborted.len() as u64;
    WriteSetProof {
        findings,
        transactions: proofs,
        summary,
    }
}

fn time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "NULL".to_owned(), |ms| ms.to_string())
}

fn version(v: Option<i64>) -> String {
    v.map_or_else(|| "NULL".to_owned(), |v| v.to_string())
}

/// One written record of a committed transaction against what the backup holds.
fn judge(
    tx: &WrittenTransaction,
    table: &TableRef,
    key: &RecordKey,
    meta: &RecordMeta,
) -> (TxProof, Option<Finding>) {
    let c = tx.created_at;
    let found = |code: Code, message: String| {
        Finding::new(code, message)
            .table(table)
            .key(key)
            .tx_id(Some(&tx.tx_id))
            .tx_state(meta.state())
            .coordinator_state("COMMITTED")
    };
    let Some(other) = meta.tx_id.as_deref() else {
        return if meta.tx_state.is_none() {
            (
                TxProof::Torn,
                Some(found(
                    Code::TornTransactionMissingWrite,
                    format!(
                        "transaction {} committed at {c} (its Coordinator row's tx_created_at) \
                         and its write set names this record, but the backup holds it with NULL \
                         metadata (an imported record no transaction has written since): the \
                         copy of this table predates the write, which recovery cannot restore",
                        tx.tx_id
                    ),
                )),
            )
        } else {
            (
                TxProof::Ambiguous,
                Some(found(
                    Code::WriteSetAmbiguous,
                    format!(
                        "transaction {} committed at {c} and wrote this record, which holds a \
                         tx_state without a tx_id: whether it is that version or a later one \
                         cannot be told",
                        tx.tx_id
                    ),
                )),
            )
        };
    };
    if other == tx.tx_id {
        return (TxProof::Proven, None);
    }
    match meta.state() {
        StoredState::Known(TxState::Committed) => match meta.tx_committed_at {
            Some(committed) if committed > c => (TxProof::Proven, None),
            Some(committed) if committed < c => (
                TxProof::Torn,
                Some(found(
                    Code::TornTransactionMissingWrite,
                    format!(
                        "transaction {} committed at {c} (its Coordinator row's tx_created_at) and \
                         its write set names this record, but the backup holds an older version: \
                         COMMITTED by {other} (tx_version {}) at {committed}, {} ms earlier. The \
                         copy of this table predates the write, so the restored database lacks \
                         part of a committed transaction",
                        tx.tx_id,
                        version(meta.tx_version),
                        c - committed
                    ),
                )),
            ),
            committed => (
                TxProof::Ambiguous,
                Some(found(
                    Code::WriteSetAmbiguous,
                    format!(
                        "transaction {} committed at {c} and wrote this record, which the backup \
                         holds COMMITTED by {other} (tx_version {}) at {}: the same millisecond \
                         (or no time), so whether it is an older or a later version cannot be \
                         told",
                        tx.tx_id,
                        version(meta.tx_version),
                        time(committed)
                    ),
                )),
            ),
        },
        StoredState::Known(TxState::Prepared | TxState::Deleted) => {
            let on_its_version = meta.before_tx_id.as_deref() == Some(tx.tx_id.as_str());
            let prepared_after = meta.tx_prepared_at.is_some_and(|p| p > c);
            if on_its_version || prepared_after {
                (TxProof::Proven, None)
            } else {
                (
                    TxProof::Ambiguous,
                    Some(found(
                        Code::WriteSetAmbiguous,
                        format!(
                            "transaction {} committed at {c} and wrote this record, which the \
                             backup holds {} by {other} (prepared at {}, before image of {}): \
                             prepared before that commit on another version, it suggests the \
                             copy predates the write, but which version recovery leaves cannot \
                             be ordered against the transaction",
                            tx.tx_id,
                            meta.state(),
                            time(meta.tx_prepared_at),
                            meta.before_tx_id.as_deref().unwrap_or("no transaction")
                        ),
                    )),
                )
            }
        }
        _ => (
            TxProof::Ambiguous,
            Some(found(
                Code::WriteSetAmbiguous,
                format!(
                    "transaction {} committed at {c} and wrote this record, which holds a \
                     tx_state ScalarDB does not write ({}): it cannot be ordered against the \
                     transaction",
                    tx.tx_id,
                    meta.state()
                ),
            )),
        ),
    }
}

#[cfg(test)]
mod tests;
