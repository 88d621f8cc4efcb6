//! The cut: whether the parts of a backup (tables, the Coordinator, whole backups of
//! several storages) were copied at one instant, judged from the evidence the backup itself
//! holds. Pure: the instants come in as data (the backup readers in `backup/`, the drill,
//! `--pause-window`), the counts from the scan.
//!
//! Three traces, one judgement (issue 13 "Expose", issue 11 "The cut across backups"):
//! - COMMITTED records whose transaction has no Coordinator row although the Coordinator
//!   holds rows older and newer, or committed after its newest row: the Coordinator copy
//!   is older than the data, unless a legal cause explains them (one-phase commit,
//!   `tx_prepared_at = tx_committed_at`; write-set logging, whose clean-up deletes rows;
//!   a Coordinator truncated before the records' commits). Protocol §3, §11.
//! - A table whose newest write lags the rest by far more than its own write rate makes
//!   plausible (a Poisson tail: the chance of no write in the lag at the table's rate).
//! - Parts with recorded instants: the spread between them and the Coordinator rows
//!   created inside it (`cut-window-at-risk`); none, or every instant inside one pause,
//!   proves the cut.
//!
//! A finding here never says `inconsistent`: the traces show a tear is possible, not that
//! one happened. It makes a passing verdict `indeterminate`, says what a tear would look
//! like and how to rule it out. Must not read files or know any backup format.

use std::collections::BTreeMap;

use serde::Serialize;

use super::input::{RATE_WINDOWS_MS, RecentCommits, TX_WINDOWS, UnconfirmedTimes};
use super::write_sets::TxProof;
use super::{
    Code, CoordinatorSummary, Finding, ObservedRecord, PauseWindow, TableSummary, human_ms,
};
use crate::model::{CoordinatorRow, CoordinatorState, RecordMeta, TableRef};

/// Clocks of ScalarDB's clients differ and ≤3.18 stamps records with the committing
/// process's clock after the Coordinator row's: commits this close to an edge of the
/// Coordinator's span are not placed outside it.
pub const CLOCK_TOLERANCE_MS: i64 = 100;

/// A lag is significant when seeing no write in it at the table's own rate is less likely
/// than this: with a few hundred tables a single-instant backup still raises no alarm.
pub const LAG_SIGNIFICANCE: f64 = 1e-6;

/// The fewest records in a rate window for its rate to count as evidence.
pub const MIN_RATE_EVIDENCE: u64 = 10;

/// How many at-risk transactions a report lists.
pub const AT_RISK_EXAMPLES: usize = 5;

/// Where a COMMITTED record without a Coordinator row committed, against the Coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitPlace {
    /// `tx_prepared_at = tx_committed_at`: one-phase commit writes no Coordinator row.
    OnePhase,
    BeforeOldest,
    Within,
    AfterNewest,
    /// No Coordinator span (an empty Coordinator) or no commit time.
    Unplaced,
}

pub fn place_commit(meta: &RecordMeta, span: Option<(i64, i64)>, tolerance: i64) -> CommitPlace {
    if meta.tx_prepared_at.is_some() && meta.tx_prepared_at == meta.tx_committed_at {
        return CommitPlace::OnePhase;
    }
    let (Some((oldest, newest)), Some(at)) = (span, meta.tx_committed_at) else {
        return CommitPlace::Unplaced;
    };
    if at < oldest.saturating_sub(tolerance) {
        CommitPlace::BeforeOldest
    } else if at > newest.saturating_add(tolerance) {
        CommitPlace::AfterNewest
    } else {
        CommitPlace::Within
    }
}

/// One part of a backup with the instant it was copied at, as far as it is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CutPart {
    /// What was copied: a backup file, one dump inside it, a storage, a node.
    pub name: String,
    /// The storage it holds, when known.
    pub storage: Option<String>,
    /// The earliest and latest epoch ms the copy can have been taken at (equal when the
    /// record is exact; `None`: the part does not say).
    pub earliest_ms: Option<i64>,
    pub latest_ms: Option<i64>,
    pub source: InstantSource,
    /// Where the instant was read, in words ("pg_dump archive header", …).
    pub how: String,
    /// The part is one snapshot (one pg_dump run: every table at one instant).
    pub single_snapshot: bool,
}

/// How a part's instant is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InstantSource {
    /// The backup's own record (a dump header or trailer, a snapshot manifest).
    Recorded,
    /// The pause window the backup was taken in (`--pause-window`).
    PauseWindow,
    /// The data's newest write: the copy was taken at or after it.
    Estimated,
}

/// How a write-set proof (ScalarDB 3.19) judged one at-risk transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AtRiskProof {
    /// Nothing decides it: metadata cannot see a tear there.
    Unproven,
    /// Every record its write set names is in the backup at its version or later.
    Intact,
    /// A record its write set names is older than its commit (`torn-transaction-missing-write`).
    Torn,
}

impl AtRiskProof {
    /// What the write-set proof's verdict on a transaction says of it in the cut (`None`:
    /// the proof did not check it: no write set, undecodable, or over the memory bound).
    /// Only a record found at the transaction's version or later proves it intact; an
    /// absent, unscanned or ambiguous record leaves it unproven.
    pub fn of_write_set(proof: Option<TxProof>) -> Self {
        match proof {
            Some(TxProof::Proven) => Self::Intact,
            Some(TxProof::Torn) => Self::Torn,
            Some(TxProof::Unverified | TxProof::Ambiguous) | None => Self::Unproven,
        }
    }
}

/// A transaction the Coordinator shows committing inside the cut window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AtRiskTransaction {
    pub tx_id: String,
    pub committed_at_ms: Option<i64>,
    pub proof: AtRiskProof,
}

/// Every COMMITTED Coordinator transaction created inside a cut window (`window`), each
/// with what the write-set proof says of it, as the scan listed them: complete, a
/// transaction over the scan's memory bound counted in `unlisted` (and unproven).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowTransactions {
    pub from_ms: i64,
    pub to_ms: i64,
    pub transactions: Vec<AtRiskTransaction>,
    pub unlisted: u64,
}

/// The most at-risk transactions a scan lists for the cut (beyond: counted, unproven).
pub const MAX_WINDOW_TRANSACTIONS: usize = 100_000;

/// The window between separately copied parts that all record their instants: the
/// earliest and the latest instant (`None`: fewer than two parts, one snapshot, or a part
/// that records none). The scan lists the transactions created in it for the proof.
pub fn window(parts: &[CutPart]) -> Option<(i64, i64)> {
    if parts.len() < 2 {
        return None;
    }
    let from = parts
        .iter()
        .map(|p| p.earliest_ms)
        .collect::<Option<Vec<_>>>()?;
    let to = parts
        .iter()
        .map(|p| p.latest_ms)
        .collect::<Option<Vec<_>>>()?;
    Some((from.into_iter().min()?, to.into_iter().max()?))
}

/// The instant each part can have been copied at, at the earliest: its recorded one, else
/// (a part of a storage) that storage's newest write, given by `newest`; `None` when a part
/// has neither.
pub fn part_starts(parts: &[CutPart], newest: impl Fn(&str) -> Option<i64>) -> Option<Vec<i64>> {
    parts
        .iter()
        .map(|p| p.earliest_ms.or_else(|| newest(p.storage.as_deref()?)))
        .collect()
}

/// How many Coordinator rows [`CommittedAfter`] lists at most; the rest are counted.
pub const MAX_COMMITTED_AFTER: usize = 10_000;

/// The COMMITTED Coordinator rows created after `since_ms`, the earliest instant a backup
/// set's parts can have been copied at ([`part_starts`]), as the scan listed them: each is
/// a transaction a part copied before it may lack, unless that part shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommittedAfter {
    pub since_ms: i64,
    /// At most [`MAX_COMMITTED_AFTER`].
    pub rows: Vec<CommittedRow>,
    /// Rows past the cap: never explained.
    pub unlisted: u64,
}

/// A COMMITTED Coordinator row: its id, creation time, and whether it commits a group
/// (3.13+ group commit: its children are separate transactions, each prepared on its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedRow {
    pub tx_id: String,
    pub created_at: i64,
    pub group: bool,
}

impl CommittedAfter {
    pub fn new(since_ms: i64) -> Self {
        Self {
            since_ms,
            ..Self::default()
        }
    }

    /// Adds one Coordinator row if it is COMMITTED (state 3) and created after `since_ms`.
    pub fn add(&mut self, row: &CoordinatorRow) {
        let Some(created_at) = row.tx_created_at.filter(|at| *at > self.since_ms) else {
            return;
        };
        if row.tx_state != Some(3) {
            return;
        }
        self.push(CommittedRow {
            tx_id: row.tx_id.clone(),
            created_at,
            group: row
                .tx_child_ids
                .as_deref()
                .is_some_and(|ids| !ids.is_empty()),
        });
    }

    fn push(&mut self, row: CommittedRow) {
        if self.rows.len() < MAX_COMMITTED_AFTER {
            self.rows.push(row);
        } else {
            self.unlisted += 1;
        }
    }

    pub fn merge(&mut self, other: Self) {
        for row in other.rows {
            self.push(row);
        }
        self.unlisted += other.unlisted;
    }
}

/// A Coordinator row created inside the cut window, as the proof's reads saw it: the ids
/// its write set's groups carry (empty: no write set, an undecodable one, or one naming
/// no group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowRow {
    pub tx_id: String,
    pub created_at: i64,
    pub group_tx_ids: Vec<String>,
}

/// The window's transactions with the proof's verdict on each (one per group of a
/// group-commit row; a row without a usable write set is one unproven transaction).
pub fn window_transactions(
    (from_ms, to_ms): (i64, i64),
    rows: &[WindowRow],
    unlisted: u64,
    proofs: &BTreeMap<String, TxProof>,
) -> WindowTransactions {
    let mut transactions = Vec::new();
    for row in rows {
        let at = |tx_id: &str, proof| AtRiskTransaction {
            tx_id: tx_id.to_owned(),
            committed_at_ms: Some(row.created_at),
            proof,
        };
        if row.group_tx_ids.is_empty() {
            transactions.push(at(&row.tx_id, AtRiskProof::Unproven));
        }
        for id in &row.group_tx_ids {
            let proof = AtRiskProof::of_write_set(proofs.get(id).copied());
            transactions.push(at(id, proof));
        }
    }
    WindowTransactions {
        from_ms,
        to_ms,
        transactions,
        unlisted,
    }
}

/// The window between the earliest and the latest part, and what committed in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AtRisk {
    pub from_ms: i64,
    pub to_ms: i64,
    /// COMMITTED Coordinator rows created in the window: at least and at most (from the
    /// Coordinator's counts in fixed windows; `None`: not counted).
    pub committed_at_least: Option<u64>,
    pub committed_at_most: Option<u64>,
    /// Examples, each with what a write-set proof says of it (empty: none listed).
    pub transactions: Vec<AtRiskTransaction>,
    /// Of the transactions committed in the window, how many their write sets prove
    /// intact, and how many torn (3.19 write-set logging; 0 without it).
    pub proven_by_write_sets: u64,
    pub torn_by_write_sets: u64,
}

/// A probability, serialized as a number (compared bit for bit, so reports stay `Eq`).
#[derive(Clone, Copy, Debug, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Probability(pub f64);

impl PartialEq for Probability {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Probability {}

/// How far one table's newest write lags the newest write elsewhere, and how unlikely that
/// is at the table's own rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TableLag {
    pub storage: Option<String>,
    pub table: TableRef,
    pub lag_ms: i64,
    /// What it lags: `coordinator` or a table's name.
    pub behind: String,
    /// The window the rate was counted in, and the records committed in it.
    pub window_ms: i64,
    pub writes_in_window: u64,
    /// Writes expected in the lag at that rate, and the chance of seeing none.
    pub expected_writes: Probability,
    pub p_no_write: Probability,
    /// When the rate is the table's writes per Coordinator commit (counted in the same
    /// window, a clock that a workload slowing down or pausing does not bend): the
    /// transactions the Coordinator shows committing after the table's newest write, at
    /// least. `None`: the rate is per second.
    pub commits_in_lag: Option<u64>,
    /// The distinct transactions that wrote the table in the window (one-phase commits left
    /// out), where they were counted (a SQL store counts them for a table that lags): the
    /// rate is theirs then, not the records'. `None`: not counted.
    pub transactions_in_window: Option<u64>,
    pub test: LagTest,
    pub significant: bool,
}

/// Which test a lag's chance comes from (`table-copied-early`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LagTest {
    /// The table's writes per second before its newest write (Poisson).
    PerSecond,
    /// The table's writes per Coordinator commit, times the commits after it (Poisson).
    PerCommit,
    /// No writer among the commits after it, out of the window's (exact, no rate).
    TrailingRun,
}

/// The cut's evidence and its judgement, in the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CutSummary {
    /// The parts with their instants (from the backup, the pause window, the drill).
    pub parts: Vec<CutPart>,
    /// The latest instant minus the earliest, over parts that record one.
    pub spread_ms: Option<i64>,
    /// The cut is proven to be one instant (one snapshot, no spread, or one pause).
    pub proven: bool,
    /// Why it is proven, or why not.
    pub reason: String,
    pub at_risk: Option<AtRisk>,
    pub lags: Vec<TableLag>,
}

/// What the cut judgement reads besides the table summaries.
pub struct CutInput<'a> {
    pub parts: &'a [CutPart],
    pub pause: Option<PauseWindow>,
    pub coordinator: &'a CoordinatorSummary,
    pub coordinator_recent: Option<&'a RecentCommits>,
    /// Each scanned table's rate windows.
    pub recent: &'a BTreeMap<TableRef, RecentCommits>,
    /// The scan's complete list of the window's transactions with their proofs, when the
    /// Coordinator logs write sets.
    pub at_risk_transactions: Option<&'a WindowTransactions>,
    /// The storages' newest writes: a lower bound of an unrecorded part's instant.
    pub storages: &'a [super::StorageSummary],
    /// The Coordinator rows committed after the parts' earliest instant (a backup set whose
    /// parts record none, `part_starts`), when the scan listed them.
    pub committed_after: Option<&'a CommittedAfter>,
    /// The predictions, each naming its storage: a transaction with a record pending in a
    /// part's storage was prepared there before the part was copied.
    pub predictions: &'a [super::Prediction],
}

/// Judges the parts, the Coordinator's coverage and the tables' lags into findings.
pub fn judge(
    input: &CutInput<'_>,
    tables: &[TableSummary],
    findings: &mut Vec<Finding>,
) -> CutSummary {
    let mut summary = CutSummary {
        parts: input.parts.to_vec(),
        ..CutSummary::default()
    };
    let one_snapshot = input.parts.len() == 1 && input.parts[0].single_snapshot;
    summary.lags = table_lags(input, tables);
    for lag in summary.lags.iter().filter(|l| l.significant) {
        if one_snapshot {
            continue;
        }
        findings.push(lag_finding(lag));
    }
    judge_parts(input, one_snapshot, &mut summary, findings);
    summary
}

fn judge_parts(
    input: &CutInput<'_>,
    one_snapshot: bool,
    summary: &mut CutSummary,
    findings: &mut Vec<Finding>,
) {
    let parts = input.parts;
    if parts.is_empty() {
        summary.reason = "the backup records no instant for its parts: the cut is judged from \
                          the data alone"
            .to_owned();
        return;
    }
    if one_snapshot {
        summary.proven = true;
        summary.spread_ms = Some(0);
        summary.reason = format!(
            "{} is one snapshot: every table and the Coordinator were copied at one instant",
            parts[0].name
        );
        findings.push(Finding::new(
            Code::BackupSingleSnapshot,
            format!(
                "{} ({}) is one snapshot: the tables and the Coordinator were copied at \
                     one instant, so no transaction can be torn by the copy; a table that \
                     looks quiet is quiet",
                parts[0].name, parts[0].how
            ),
        ));
        return;
    }
    if parts.len() == 1 {
        summary.reason = format!(
            "{} ({}) is not known to be one snapshot: the cut is judged from the data",
            parts[0].name, parts[0].how
        );
        return;
    }
    // A part copied at an unrecorded instant was copied at or after its storage's newest
    // write: when every part's earliest instant (recorded, or so estimated) follows the
    // Coordinator's newest row, nothing committed between the copies. No clock tolerance:
    // a transaction committed 50 ms after a part's newest write can be missing from it.
    let starts = part_starts(parts, |storage| {
        let s = input.storages.iter().find(|s| s.name == storage)?;
        s.max_tx_prepared_at.max(s.max_tx_committed_at)
    });
    if let (Some(starts), Some(newest)) = (&starts, input.coordinator.max_tx_created_at) {
        let first = starts.iter().copied().min().unwrap_or(i64::MIN);
        if newest <= first {
            summary.proven = true;
            summary.reason = format!(
                "every part was copied after the Coordinator's newest row ({newest}; parts \
                 without a recorded instant at or after their storage's newest write): no \
                 transaction committed between the copies"
            );
            return;
        }
        if let Some(after) = input.committed_after.filter(|a| a.since_ms <= first) {
            judge_committed_after(input, starts, after, summary, findings);
            return;
        }
    }
    let earliest = parts.iter().filter_map(|p| p.earliest_ms).min();
    let latest = parts.iter().filter_map(|p| p.latest_ms).max();
    let unknown: Vec<&str> = parts
        .iter()
        .filter(|p| p.earliest_ms.is_none() || p.latest_ms.is_none())
        .map(|p| p.name.as_str())
        .collect();
    if let Some(pause) = input.pause {
        let inside = |p: &CutPart| {
            p.earliest_ms.is_some_and(|e| e >= pause.start_ms)
                && p.latest_ms.is_some_and(|l| l <= pause.end_ms)
        };
        if parts.iter().all(inside) {
            summary.proven = true;
            summary.spread_ms = earliest.zip(latest).map(|(e, l)| l - e);
            summary.reason = format!(
                "every part was copied inside the pause from {} to {}: no transaction ran \
                 between the copies",
                pause.start_ms, pause.end_ms
            );
            return;
        }
    }
    let rule_out = "rule it out with a pause (--pause-window, every copy inside it), one \
                    snapshot of everything, or ScalarDB 3.19 write-set logging, which names \
                    every record a transaction wrote";
    let (Some(from), Some(to), true) = (earliest, latest, unknown.is_empty()) else {
        summary.reason = format!(
            "{} parts were copied separately and {} record no instant: the transactions \
             between the copies cannot be bounded",
            parts.len(),
            unknown.join(", ")
        );
        findings.push(Finding::new(
            Code::CutWindowAtRisk,
            format!(
                "the backup holds {} separately copied parts ({}), and {} record no \
                     instant: a transaction that committed between the copies can have its \
                     writes in a later part and none in an earlier one, a tear no metadata \
                     shows; {rule_out}",
                parts.len(),
                parts
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                unknown.join(", ")
            ),
        ));
        return;
    };
    let spread = to.saturating_sub(from);
    summary.spread_ms = Some(spread);
    // The scan's list, when it is of this window, counts the window exactly.
    let listed = input
        .at_risk_transactions
        .filter(|w| (w.from_ms, w.to_ms) == (from, to));
    let in_window: Vec<&AtRiskTransaction> = listed
        .map(|w| {
            w.transactions
                .iter()
                .filter(|t| t.committed_at_ms.is_none_or(|at| (from..=to).contains(&at)))
                .collect()
        })
        .unwrap_or_default();
    let (at_least, at_most) = match (listed, input.coordinator.max_tx_created_at) {
        (Some(w), _) => {
            let exact = u64::try_from(in_window.len())
                .unwrap_or(u64::MAX)
                .saturating_add(w.unlisted);
            (Some(exact), Some(exact))
        }
        // Nothing committed after the earliest copy: nothing can be torn between them.
        (None, Some(newest)) if newest < from.saturating_sub(CLOCK_TOLERANCE_MS) => {
            (Some(0), Some(0))
        }
        _ => committed_between(input.coordinator_recent, from, to),
    };
    let count_of = |proof: AtRiskProof| {
        let n = in_window.iter().filter(|t| t.proof == proof).count();
        u64::try_from(n).unwrap_or(u64::MAX)
    };
    let proven_intact = count_of(AtRiskProof::Intact);
    // Unproven and torn ones first: they are the examples worth reading.
    let mut examples = in_window.clone();
    examples.sort_by_key(|t| match t.proof {
        AtRiskProof::Torn => 0,
        AtRiskProof::Unproven => 1,
        AtRiskProof::Intact => 2,
    });
    let mut at_risk = AtRisk {
        from_ms: from,
        to_ms: to,
        committed_at_least: at_least,
        committed_at_most: at_most,
        transactions: examples
            .into_iter()
            .take(AT_RISK_EXAMPLES)
            .cloned()
            .collect(),
        proven_by_write_sets: proven_intact,
        torn_by_write_sets: count_of(AtRiskProof::Torn),
    };
    let all_proven = at_most.is_some_and(|most| most > 0 && proven_intact >= most);
    // No clock tolerance on the spread: parts copied 50 ms apart while transactions commit
    // can tear one; only "nothing committed in between" or the write sets prove them.
    if spread == 0 || at_most == Some(0) || all_proven {
        summary.proven = true;
        summary.reason = if spread == 0 {
            "the parts were copied at the same instant".to_owned()
        } else if all_proven {
            format!(
                "every transaction that committed in the {spread} ms between the copies \
                 ({proven_intact}) is proven intact by its write set"
            )
        } else {
            format!(
                "the Coordinator shows no transaction committing in the {spread} ms between \
                 the copies"
            )
        };
        summary.at_risk = Some(at_risk);
        return;
    }
    let count = match (at_least, at_most) {
        (Some(least), Some(most)) if least == most => format!("{most}"),
        (Some(least), Some(most)) => format!("between {least} and {most}"),
        (None, Some(most)) => format!("up to {most}"),
        _ => "an unknown number of".to_owned(),
    };
    summary.reason = format!(
        "the parts were copied {} apart and {count} transaction(s) committed in between",
        human_ms(spread)
    );
    let proven = if listed.is_some() {
        format!(
            "; of them {} proven intact, {} torn and {} unproven by their write sets (a \
             transaction without a write set, or with a record absent, unscanned or \
             ambiguous, is unproven)",
            at_risk.proven_by_write_sets,
            at_risk.torn_by_write_sets,
            at_most
                .unwrap_or(0)
                .saturating_sub(at_risk.proven_by_write_sets + at_risk.torn_by_write_sets)
        )
    } else {
        String::new()
    };
    let mut finding = Finding::new(
        Code::CutWindowAtRisk,
        format!(
            "the parts were copied {} apart (from {from} to {to}) and the Coordinator shows \
             {count} transaction(s) committing in between{proven}: a tear among them leaves \
             no trace in the earlier part (its records keep their older committed versions); \
             {rule_out}",
            human_ms(spread)
        ),
    );
    if let Some(most) = at_most {
        finding = finding.count(most);
    }
    if let Some(example) = at_risk.transactions.first() {
        finding = finding.tx_id(Some(&example.tx_id));
    }
    at_risk.transactions.truncate(AT_RISK_EXAMPLES);
    summary.at_risk = Some(at_risk);
    findings.push(finding);
}

/// Bounds on the COMMITTED rows created in `[from, to]`, from the Coordinator's windows.
/// A backup set some of whose parts record no instant, with the Coordinator rows committed after
/// the earliest instant a part can have been copied at: each row is explained for a part
/// copied possibly before it when that part's storage holds a record of the transaction
/// still pending (prepared there before the copy, so the copy holds its writes); the cut is
/// proven when every row is explained for every such part, else those not explained are
/// the transactions at risk.
fn judge_committed_after(
    input: &CutInput<'_>,
    starts: &[i64],
    after: &CommittedAfter,
    summary: &mut CutSummary,
    findings: &mut Vec<Finding>,
) {
    let pending: std::collections::BTreeSet<(&str, &str)> = input
        .predictions
        .iter()
        .filter_map(|p| Some((p.storage.as_deref()?, p.tx_id.as_str())))
        .collect();
    // A group's row is never explained by one child's record: each child prepares on its
    // own, and one pending child says nothing of the others.
    let shown = |storage: Option<&str>, row: &CommittedRow| {
        !row.group
            && storage.is_some_and(|storage| pending.contains(&(storage, row.tx_id.as_str())))
    };
    let unexplained: Vec<&CommittedRow> = after
        .rows
        .iter()
        .filter(|row| {
            input.parts.iter().zip(starts).any(|(part, start)| {
                row.created_at > *start && !shown(part.storage.as_deref(), row)
            })
        })
        .collect();
    let from = after.since_ms;
    let to = input.coordinator.max_tx_created_at.unwrap_or(from);
    summary.spread_ms = Some(to.saturating_sub(from));
    if unexplained.is_empty() && after.unlisted == 0 {
        summary.proven = true;
        summary.reason = if after.rows.is_empty() {
            format!(
                "not every part records its instant; each was copied at or after it or its \
                 storage's newest write, and the Coordinator shows no transaction committing \
                 after the earliest of those ({from}; its newer rows are ABORTED, whose \
                 writes recovery rolls back): none can be missing from a part"
            )
        } else {
            format!(
                "not every part records its instant; each was copied at or after it or its \
                 storage's newest write, and each of the {} transaction(s) the Coordinator \
                 shows committing after the earliest of those has a record pending in every \
                 part that may have been copied before it (prepared there before the copy): \
                 none can be missing from a part",
                after.rows.len()
            )
        };
        return;
    }
    let count = u64::try_from(unexplained.len())
        .unwrap_or(u64::MAX)
        .saturating_add(after.unlisted);
    let examples: Vec<&str> = unexplained
        .iter()
        .take(5)
        .map(|row| row.tx_id.as_str())
        .collect();
    summary.reason = format!(
        "not every part records its instant, and {count} transaction(s) committed after the earliest \
         instant a part can have been copied at without a record in every part that may have \
         been copied before them"
    );
    summary.at_risk = Some(AtRisk {
        from_ms: from,
        to_ms: to,
        committed_at_least: Some(count),
        committed_at_most: Some(count),
        transactions: unexplained
            .iter()
            .take(AT_RISK_EXAMPLES)
            .map(|row| AtRiskTransaction {
                tx_id: row.tx_id.clone(),
                committed_at_ms: Some(row.created_at),
                proof: AtRiskProof::Unproven,
            })
            .collect(),
        proven_by_write_sets: 0,
        torn_by_write_sets: 0,
    });
    findings.push(Finding::new(
        Code::CutWindowAtRisk,
        format!(
            "the backup holds {} separately copied parts ({}) and not every one records its \
             instant: each was copied at or after it or its storage's newest write, and {count} \
             transaction(s) the Coordinator shows committing after the earliest of those \
             (from {from} to {to} ms) have no record in a part that may have been copied before \
             them (e.g. {}): a transaction that committed after a part was copied has its \
             writes in the later parts and none in that one, a tear no metadata shows; rule it \
             out with a pause (--pause-window, every copy inside it), one snapshot of \
             everything, or ScalarDB 3.19 write-set logging, which names every record a \
             transaction wrote",
            input.parts.len(),
            input
                .parts
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            examples.join(", ")
        ),
    ));
}

fn committed_between(
    recent: Option<&RecentCommits>,
    from: i64,
    to: i64,
) -> (Option<u64>, Option<u64>) {
    let Some(recent) = recent else {
        return (None, None);
    };
    let reference = recent.reference_ms;
    if from > reference {
        return (Some(0), Some(0));
    }
    let windows = RATE_WINDOWS_MS.iter().zip(recent.counts);
    // Rows after `reference - w` for the smallest w reaching back to `from` include every
    // row of the window (and maybe later ones).
    let at_most = windows
        .clone()
        .find(|(w, _)| reference.saturating_sub(**w) <= from)
        .map(|(_, n)| n);
    // When the window reaches the reference, rows after `reference - w` for the largest w
    // not reaching back past `from` are all inside it.
    let at_least = if to >= reference {
        Some(
            windows
                .filter(|(w, _)| reference.saturating_sub(**w) >= from)
                .map(|(_, n)| n)
                .max()
                .unwrap_or(0),
        )
    } else {
        None
    };
    (
        at_least.map(|l| l.min(at_most.unwrap_or(u64::MAX))),
        at_most,
    )
}

fn table_lags(input: &CutInput<'_>, tables: &[TableSummary]) -> Vec<TableLag> {
    let watermark = |t: &TableSummary| t.max_tx_prepared_at.max(t.max_tx_committed_at);
    let mut lags = Vec::new();
    for table in tables {
        let (Some(mark), Some(recent)) = (watermark(table), input.recent.get(&table.table)) else {
            continue;
        };
        // The newest write of the other tables, and the Coordinator's newest row: a table
        // is judged only when it lags both. Tables copied together before the Coordinator
        // are the safe order (their prepared records resolve with the later copy), so
        // lagging the Coordinator alone is no evidence.
        let mut other: Option<(i64, String)> = None;
        for t in tables.iter().filter(|t| t.table != table.table) {
            if let Some(at) = watermark(t) {
                if other.as_ref().is_none_or(|(b, _)| at > *b) {
                    other = Some((at, t.table.to_string()));
                }
            }
        }
        let Some((other_newest, other_name)) = other else {
            continue;
        };
        let (newest, behind) = match input.coordinator.max_tx_created_at {
            Some(at) if at < other_newest => (at, format!("{other_name} and the coordinator")),
            Some(_) => (other_newest, format!("{other_name} and the coordinator")),
            None => (other_newest, other_name),
        };
        let lag = newest.saturating_sub(mark);
        if lag <= CLOCK_TOLERANCE_MS {
            continue;
        }
        let by_time = lag_of(recent, mark, lag);
        let by_commits = input
            .coordinator_recent
            .and_then(|coordinator| lag_by_commits(recent, coordinator, mark, lag));
        let by_transactions = lag_by_transactions(recent, mark, lag);
        // The strongest evidence of the three: each is a lower bound of what the lag shows.
        let found = [by_time, by_commits, by_transactions]
            .into_iter()
            .flatten()
            .min_by(|a, b| a.p_no_write.0.total_cmp(&b.p_no_write.0));
        if let Some(found) = found {
            lags.push(TableLag {
                storage: table.storage.clone(),
                table: table.table.clone(),
                lag_ms: lag,
                behind,
                ..found
            });
        }
    }
    lags
}

/// The significance of a lag of `lag` ms after the table's newest write at `mark`, at the
/// rate its windows show before `mark`.
fn lag_of(recent: &RecentCommits, mark: i64, lag: i64) -> Option<TableLag> {
    // The part of each window before the table's newest write: windows end at the
    // reference, which may be later than `mark`.
    let active = |width: i64| width.saturating_sub(recent.reference_ms.saturating_sub(mark));
    let tested = lag.saturating_sub(CLOCK_TOLERANCE_MS);
    // Where the table's distinct transactions were counted, the rate is theirs (a table
    // each transaction writes several times is not written several times as often).
    let candidates: Vec<(i64, u64, Option<u64>, i64)> = RATE_WINDOWS_MS
        .iter()
        .zip(recent.counts)
        .enumerate()
        .map(|(i, (w, n))| (*w, n, writers(recent, i), active(*w)))
        .filter(|(_, _, _, span)| *span > 0)
        .collect();
    // The smallest window whose span before the newest write is at least three lags: the
    // rate just before the table stopped, long enough not to be the lag itself.
    let (window, records, transactions, span) = candidates
        .iter()
        .copied()
        .find(|(_, _, _, span)| *span >= tested.saturating_mul(3))
        .or_else(|| candidates.last().copied())?;
    let writes = transactions.unwrap_or(records);
    let rate = as_f64(writes) / as_f64_i(span);
    let expected = rate * as_f64_i(tested);
    let p = (-expected).exp();
    Some(TableLag {
        storage: None,
        table: TableRef::new("", ""),
        lag_ms: lag,
        behind: String::new(),
        window_ms: window,
        writes_in_window: records,
        expected_writes: Probability(expected),
        p_no_write: Probability(p),
        commits_in_lag: None,
        transactions_in_window: transactions,
        test: LagTest::PerSecond,
        significant: writes >= MIN_RATE_EVIDENCE && p < LAG_SIGNIFICANCE,
    })
}

/// The distinct transactions that wrote the table in window `i`, where they were counted
/// (never more than its records there).
fn writers(recent: &RecentCommits, i: usize) -> Option<u64> {
    let transactions = recent.transactions?.get(i).copied()?;
    Some(transactions.min(recent.counts[i]))
}

/// The significance of the lag counted in Coordinator commits: the table's writes per
/// commit in the smallest window of at least three lags (both counted against the same
/// reference, the Coordinator's newest row), and the commits after the table's newest
/// write at least (the largest window that starts after it). A table most transactions
/// write that missed the last thirty commits was copied before them, however fast or slow
/// the workload ran.
fn lag_by_commits(
    recent: &RecentCommits,
    coordinator: &RecentCommits,
    mark: i64,
    lag: i64,
) -> Option<TableLag> {
    if recent.reference_ms != coordinator.reference_ms {
        return None;
    }
    let reference = coordinator.reference_ms;
    let windows = || RATE_WINDOWS_MS.iter().copied().enumerate();
    let in_lag = windows()
        .filter(|(_, w)| reference.saturating_sub(*w) > mark)
        .map(|(i, _)| coordinator.counts[i])
        .max()?;
    let (i, window) = windows()
        .find(|(_, w)| *w >= lag.saturating_mul(3))
        .or_else(|| windows().next_back())?;
    let (writes, commits) = (recent.counts[i], coordinator.counts[i]);
    if commits == 0 {
        return None;
    }
    // Where the table's distinct transactions were counted, the rate is theirs: a table each
    // transaction writes several times is written by one transaction per commit, not
    // several.
    let transactions = writers(recent, i);
    let expected = as_f64(transactions.unwrap_or(writes)) / as_f64(commits) * as_f64(in_lag);
    let p = (-expected).exp();
    Some(TableLag {
        storage: None,
        table: TableRef::new("", ""),
        lag_ms: lag,
        behind: String::new(),
        window_ms: window,
        writes_in_window: writes,
        expected_writes: Probability(expected),
        p_no_write: Probability(p),
        commits_in_lag: Some(in_lag),
        transactions_in_window: transactions,
        test: LagTest::PerCommit,
        significant: transactions.unwrap_or(writes) >= MIN_RATE_EVIDENCE && p < LAG_SIGNIFICANCE,
    })
}

/// The trailing-run test: of the `W` transactions the Coordinator shows committing in a
/// window, `k` wrote the table (distinct `tx_id`s among its records) and none of the last
/// `n`, those committed more than the clock tolerance after its newest write and up to
/// what it lags (counted exactly in a pass over the Coordinator, `scan/lags.rs`; the window
/// ends there too, so a read-only tail after every table's newest write is no evidence). Had the table been copied with the rest, which of the `W` wrote it would
/// not depend on when they committed, and `n` trailing transactions without one of the `k`
/// has the chance C(W-n, k) / C(W, k). Exact, with no rate assumed: a table every
/// transaction writes that missed the last six commits of eighty was not copied with them.
///
/// Conservative where the counts are not exact: `k` counts the transactions still the
/// newest writer of some record (a record written again counts once, and fewer writers
/// only raise the chance); the window is the smallest of [`TX_WINDOWS`] whose part before
/// the newest write is twice the part after; and `W` is raised to `k + n` when a record
/// committed just inside the window belongs to a Coordinator row just outside it. Counts
/// that do not fit at all (`k > W`: rows that stand for several transactions, or were
/// deleted) give no evidence.
fn lag_by_transactions(recent: &RecentCommits, mark: i64, lag: i64) -> Option<TableLag> {
    let (transactions, coordinator) = (recent.transactions?, recent.coordinator?);
    let after = coordinator.after_newest;
    if after == 0 {
        return None;
    }
    let reference = recent.reference_ms;
    let since_mark = reference.saturating_sub(mark);
    let starts_before = |w: i64| reference.saturating_sub(w) < mark;
    let windows = || RATE_WINDOWS_MS[..TX_WINDOWS].iter().copied().enumerate();
    let (i, window) = windows()
        .filter(|(_, w)| starts_before(*w))
        .find(|(_, w)| *w >= since_mark.saturating_mul(3))
        .or_else(|| windows().rfind(|(_, w)| starts_before(*w)))?;
    let (k, commits) = (transactions[i], coordinator.in_windows[i]);
    if k == 0 || k > commits {
        return None;
    }
    let n = after;
    let total = commits.max(k.saturating_add(n));
    // ln C(W-n, k) - ln C(W, k) = sum over j < k of ln((W-n-j) / (W-j)).
    let ln_p: f64 = (0..k)
        .map(|j| (as_f64(total - n - j) / as_f64(total - j)).ln())
        .sum();
    let p = ln_p.exp();
    Some(TableLag {
        storage: None,
        table: TableRef::new("", ""),
        lag_ms: lag,
        behind: String::new(),
        window_ms: window,
        writes_in_window: recent.counts[i],
        expected_writes: Probability(as_f64(k) / as_f64(total) * as_f64(n)),
        p_no_write: Probability(p),
        commits_in_lag: Some(n),
        transactions_in_window: Some(k),
        test: LagTest::TrailingRun,
        significant: k >= MIN_RATE_EVIDENCE && p < LAG_SIGNIFICANCE,
    })
}

fn lag_finding(lag: &TableLag) -> Finding {
    let written = match lag.transactions_in_window {
        Some(transactions) => format!(
            "was written by {transactions} transaction(s) ({} record(s))",
            lag.writes_in_window
        ),
        None => format!("committed {} record(s)", lag.writes_in_window),
    };
    let commits = lag.commits_in_lag.unwrap_or(0);
    let window = human_ms(lag.window_ms);
    let rate = match lag.test {
        LagTest::TrailingRun => format!(
            "was written by {} of the transactions the Coordinator shows committing in the \
             {window} before and by none of the {commits} committed after its newest write: \
             had it been copied with the rest, which transactions wrote it would not depend on \
             when they committed, and",
            lag.transactions_in_window.unwrap_or(0),
        ),
        LagTest::PerCommit => format!(
            "{written} in the {window} before, and the Coordinator shows {commits} \
             transaction(s) committing after its newest write: at the table's writes per \
             transaction",
        ),
        LagTest::PerSecond => format!("{written} in the {window} before: at that rate"),
    };
    let mut finding = Finding::new(
        Code::TableCopiedEarly,
        format!(
            "the table's newest write is {} older than the newest write of {} although it \
             {rate} {:.1} writes were expected in the lag and the chance of none is {:.1e}, \
             so the table was most likely copied earlier than the rest (or a burst of writes \
             to it ended). A tear there looks like a transaction whose writes are in the \
             other tables but not in this one, which still shows its older committed version \
             (money leaves an account and never arrives); rule it out with one snapshot of \
             everything, a pause (--pause-window), or ScalarDB 3.19 write-set logging",
            human_ms(lag.lag_ms),
            lag.behind,
            lag.expected_writes.0,
            lag.p_no_write.0,
        ),
    )
    .table(&lag.table);
    if let Some(storage) = &lag.storage {
        finding.storage = Some(storage.clone());
    }
    finding
}

/// The COMMITTED records of one table whose transaction the Coordinator does not know,
/// classed by what explains them; `Retention` classes the counted ones during the scan,
/// the analysis adds the kept ones.
#[derive(Clone, Debug, Default)]
pub struct Uncovered {
    pub total: u64,
    pub times: UnconfirmedTimes,
    /// The smallest-key one, for the explained finding's evidence.
    pub first: Option<ObservedRecord>,
}

impl Uncovered {
    pub fn add_kept(&mut self, record: &ObservedRecord, span: Option<(i64, i64)>) {
        self.total += 1;
        match place_commit(&record.meta, span, CLOCK_TOLERANCE_MS) {
            CommitPlace::OnePhase => self.times.one_phase += 1,
            CommitPlace::BeforeOldest => self.times.before_oldest += 1,
            CommitPlace::Within => {
                self.times.within += 1;
                self.times.keep_newest(record);
            }
            CommitPlace::AfterNewest => {
                self.times.after_newest += 1;
                self.times.keep_newest(record);
            }
            CommitPlace::Unplaced => {}
        }
        if self
            .first
            .as_ref()
            .is_none_or(|first| record.key < first.key)
        {
            self.first = Some(record.clone());
        }
    }
}

/// The one finding about a table's COMMITTED records without a Coordinator row: explained
/// by a legal cause (`committed-without-coordinator-state`, a warning that says which), or
/// not (`coordinator-behind-data`: the Coordinator copy is older than the data).
pub fn coverage_finding(
    table: &TableRef,
    uncovered: &Uncovered,
    coordinator: &CoordinatorSummary,
) -> Option<Finding> {
    let total = uncovered.total;
    if total == 0 {
        return None;
    }
    let t = &uncovered.times;
    let unexplained = t.within + t.after_newest;
    let mut explained = Vec::new();
    if t.one_phase > 0 {
        explained.push(format!(
            "{} with tx_prepared_at = tx_committed_at (one-phase commit, 3.16+, writes no \
             Coordinator row)",
            t.one_phase
        ));
    }
    if t.before_oldest > 0 {
        explained.push(format!(
            "{} committed before the Coordinator's oldest row (a Coordinator truncated or \
             cleaned up since)",
            t.before_oldest
        ));
    }
    let unplaced = total.saturating_sub(t.one_phase + t.before_oldest + unexplained);
    if unplaced > 0 {
        explained.push(format!(
            "{unplaced} that cannot be placed against the Coordinator (it holds no row, or \
             the record has no commit time)"
        ));
    }
    // One finding per table, whichever code: the count, the table and the sample.
    let finding = |code: Code, count: u64, message: String, sample: Option<&ObservedRecord>| {
        let finding = Finding::new(code, message)
            .table(table)
            .count(count)
            .coordinator_state(CoordinatorState::Absent);
        match sample {
            Some(sample) => finding
                .key(&sample.key)
                .tx_id(sample.meta.tx_id.as_deref())
                .tx_state(sample.meta.state()),
            None => finding,
        }
    };
    let also = |lead: &str| {
        if explained.is_empty() {
            String::new()
        } else {
            format!("{lead}{}", explained.join("; "))
        }
    };
    if unexplained > 0 && coordinator.write_set_logging {
        return Some(finding(
            Code::CommittedWithoutCoordinatorState,
            total,
            format!(
                "{total} COMMITTED record(s) whose transaction the Coordinator does not know; \
                 explanation applied: write-set logging (3.19) is on, and its clean-up \
                 (finishTransaction) deletes the rows of finished transactions{}",
                also("; also ")
            ),
            uncovered.first.as_ref(),
        ));
    }
    if unexplained > 0 {
        let mut places = Vec::new();
        if t.within > 0 {
            places.push(format!(
                "{} committed while the Coordinator holds rows older and newer",
                t.within
            ));
        }
        if t.after_newest > 0 {
            places.push(format!(
                "{} committed after the Coordinator's newest row",
                t.after_newest
            ));
        }
        return Some(finding(
            Code::CoordinatorBehindData,
            unexplained,
            format!(
                "{unexplained} COMMITTED record(s) have no Coordinator row and no legal cause \
                 ({}): the Coordinator copy is older than the data (or lost rows). A tear \
                 there looks like a transaction committed in this table whose other writes \
                 were copied before it ran, and lazy recovery cannot tell; rule it out with \
                 one snapshot of the tables and the Coordinator, a pause (--pause-window), or \
                 write-set logging (3.19){}",
                places.join("; "),
                also(". Explained: ")
            ),
            t.newest.as_deref(),
        ));
    }
    Some(finding(
        Code::CommittedWithoutCoordinatorState,
        total,
        format!(
            "{total} COMMITTED record(s) whose transaction the Coordinator does not know; \
             explanation applied: {}",
            explained.join("; ")
        ),
        uncovered.first.as_ref(),
    ))
}

fn as_f64(n: u64) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

fn as_f64_i(n: i64) -> f64 {
    f64::from(i32::try_from(n).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{TableStatus, TrailingCommits, Verdict};

    const NOW: i64 = 1_700_000_000_000;

    fn meta(prepared: i64, committed: i64) -> RecordMeta {
        RecordMeta {
            tx_id: Some("t".into()),
            tx_state: Some(3),
            tx_version: Some(1),
            tx_prepared_at: Some(prepared),
            tx_committed_at: Some(committed),
            ..RecordMeta::default()
        }
    }

    fn summary(name: &str, newest: i64) -> TableSummary {
        TableSummary {
            storage: None,
            table: TableRef::new("bank", name),
            status: TableStatus::Scanned,
            records: 1000,
            unresolved: 0,
            roll_forward: 0,
            roll_back: 0,
            committed_without_coordinator_state: 0,
            max_tx_prepared_at: Some(newest - 5),
            max_tx_committed_at: Some(newest),
        }
    }

    /// Windows ending at `reference` for a table written `rate` times a second until
    /// `stopped`.
    fn windows(reference: i64, stopped: i64, per_second: u64) -> RecentCommits {
        let mut recent = RecentCommits::new(reference);
        for (count, width) in recent.counts.iter_mut().zip(RATE_WINDOWS_MS) {
            let active = (stopped - (reference - width)).max(0);
            *count = u64::try_from(active).unwrap() * per_second / 1000;
        }
        recent
    }

    fn coordinator(newest: i64) -> CoordinatorSummary {
        CoordinatorSummary {
            present: true,
            rows: 1000,
            max_tx_created_at: Some(newest),
            ..CoordinatorSummary::default()
        }
    }

    fn judged(
        parts: &[CutPart],
        pause: Option<PauseWindow>,
        tables: &[TableSummary],
        recent: &BTreeMap<TableRef, RecentCommits>,
        coordinator_recent: Option<&RecentCommits>,
    ) -> (CutSummary, Vec<Finding>) {
        let coordinator = coordinator(NOW);
        let mut findings = Vec::new();
        let summary = judge(
            &CutInput {
                parts,
                pause,
                coordinator: &coordinator,
                coordinator_recent,
                recent,
                at_risk_transactions: None,
                storages: &[],
                committed_after: None,
                predictions: &[],
            },
            tables,
            &mut findings,
        );
        (summary, findings)
    }

    /// The tables `table-copied-early` names, in the findings' order.
    fn copied_early(findings: &[Finding]) -> Vec<&str> {
        findings
            .iter()
            .filter(|f| f.code == Code::TableCopiedEarly)
            .filter_map(|f| f.table.as_deref())
            .collect()
    }

    /// The lag the summary gives for table `name`.
    fn lag_of<'a>(summary: &'a CutSummary, name: &str) -> &'a TableLag {
        summary
            .lags
            .iter()
            .find(|l| l.table.table == name)
            .unwrap_or_else(|| panic!("no lag for {name}: {summary:?}"))
    }

    fn part(name: &str, at: Option<i64>, single_snapshot: bool) -> CutPart {
        CutPart {
            name: name.into(),
            storage: None,
            earliest_ms: at,
            latest_ms: at,
            source: InstantSource::Recorded,
            how: "a test".into(),
            single_snapshot,
        }
    }

    #[test]
    fn commits_are_placed_against_the_coordinators_span() {
        let span = Some((NOW - 10_000, NOW));
        let place = |p, c| place_commit(&meta(p, c), span, CLOCK_TOLERANCE_MS);
        assert_eq!(place(NOW - 20, NOW - 20), CommitPlace::OnePhase);
        assert_eq!(place(NOW - 60_000, NOW - 50_000), CommitPlace::BeforeOldest);
        assert_eq!(place(NOW - 6_000, NOW - 5_000), CommitPlace::Within);
        assert_eq!(place(NOW + 10, NOW + 50), CommitPlace::Within);
        assert_eq!(place(NOW + 400, NOW + 500), CommitPlace::AfterNewest);
        assert_eq!(
            place_commit(&meta(NOW - 2, NOW - 1), None, CLOCK_TOLERANCE_MS),
            CommitPlace::Unplaced
        );
    }

    #[test]
    fn a_busy_table_that_stopped_300_ms_early_is_flagged_a_quiet_one_is_not() {
        let tables = [
            summary("busy", NOW - 300),
            summary("quiet", NOW - 40_000),
            summary("other", NOW),
        ];
        let mut recent = BTreeMap::new();
        // 200 writes a second until 300 ms before the rest.
        recent.insert(tables[0].table.clone(), windows(NOW, NOW - 300, 200));
        // One write a minute.
        let mut quiet = RecentCommits::new(NOW);
        for (count, width) in quiet.counts.iter_mut().zip(RATE_WINDOWS_MS) {
            *count = u64::try_from((width - 40_000).max(0) / 60_000).unwrap()
                + u64::from(width > 40_000);
        }
        recent.insert(tables[1].table.clone(), quiet);
        recent.insert(tables[2].table.clone(), windows(NOW, NOW, 200));
        let (summary, findings) = judged(&[], None, &tables, &recent, None);
        let flagged = copied_early(&findings);
        assert_eq!(flagged, ["bank.busy"], "{findings:#?}");
        let busy = &summary.lags[0];
        assert_eq!((busy.lag_ms, busy.significant), (300, true));
        assert!(busy.p_no_write.0 < 1e-9, "{busy:?}");
        let quiet = lag_of(&summary, "quiet");
        assert!(!quiet.significant && quiet.p_no_write.0 > 0.1, "{quiet:?}");
    }

    /// What the oracle's SQLite per-namespace cut made on a loaded machine: a workload of 4 s
    /// in a 16 s window (so its per-second rate over the window reads low), one table copied
    /// 1.1 s before the rest while 34 transactions committed. Per second the lag is weak
    /// evidence; per Coordinator commit it is overwhelming. A table few transactions write
    /// stays quiet by either clock.
    #[test]
    fn a_lag_counted_in_coordinator_commits_sees_a_table_a_slow_workload_hides() {
        let lag = 1_100;
        let tables = [
            summary("transfers", NOW - lag),
            summary("rare", NOW - lag),
            summary("accounts", NOW),
        ];
        // 30 commits a second for the last 4 s before the Coordinator's newest row.
        let coordinator = windows(NOW, NOW, 30);
        let active = |stopped: i64, per_second: u64| {
            let mut recent = RecentCommits::new(NOW);
            for (count, width) in recent.counts.iter_mut().zip(RATE_WINDOWS_MS) {
                let span = (stopped - (NOW - width.min(4_000))).max(0);
                *count = u64::try_from(span).unwrap() * per_second / 1000;
            }
            recent
        };
        let mut recent = BTreeMap::new();
        recent.insert(tables[0].table.clone(), active(NOW - lag, 30));
        recent.insert(tables[1].table.clone(), active(NOW - lag, 1));
        recent.insert(tables[2].table.clone(), active(NOW, 30));
        let (time_only, _) = judged(&[], None, &tables, &recent, None);
        assert!(
            time_only
                .lags
                .iter()
                .all(|l| l.commits_in_lag.is_none() && !l.significant),
            "{time_only:?}"
        );
        let (summary, findings) = judged(&[], None, &tables, &recent, Some(&coordinator));
        let flagged = copied_early(&findings);
        assert_eq!(flagged, ["bank.transfers"], "{findings:#?}");
        let transfers = &summary.lags[0];
        assert_eq!(transfers.commits_in_lag, Some(30), "{transfers:?}");
        assert!(transfers.p_no_write.0 < 1e-9, "{transfers:?}");
        assert!(
            findings[0]
                .message
                .contains("30 transaction(s) committing after"),
            "{}",
            findings[0].message
        );
        let rare = lag_of(&summary, "rare");
        assert!(!rare.significant && rare.p_no_write.0 > 0.1, "{rare:?}");
    }

    /// What the oracle's torn per-namespace cut made on a loaded CI machine: 10 transfers a
    /// second, one bank copied, 8 more transfers (a 950 ms lag), then the rest. Every
    /// transfer writes each bank's audit table, so 8 trailing commits without one of its
    /// writers is beyond chance, although at the table's rate per second (e^-8.5) or per
    /// commit counted to the nearest window edge it is not. A table half the transactions write, with the same 8 trailing commits, is
    /// plausible; counts that do not fit the Coordinator's give no evidence.
    #[test]
    fn a_few_trailing_commits_without_a_table_every_transaction_writes_are_a_lag() {
        let lag = 950;
        let tables = [
            summary("audit", NOW - lag),
            summary("half", NOW - lag),
            summary("odd", NOW - lag),
            summary("accounts", NOW),
        ];
        // 10 commits a second: 40 in the 4 s window, 9 of them after the table's newest
        // write, 8 of those more than the clock tolerance after it.
        let coordinator = windows(NOW, NOW, 10);
        let table = |halves: u64, commits_after: Option<u64>, stretch: u64| {
            let mut recent = windows(NOW, NOW - lag, 10);
            let mut transactions = [0; TX_WINDOWS];
            for (tx, all) in transactions.iter_mut().zip(coordinator.counts) {
                // The writers among the commits before the newest write.
                let before = all.saturating_sub(9);
                *tx = before * halves / 2 * stretch;
            }
            recent.transactions = Some(transactions);
            recent.coordinator = commits_after.map(|after_newest| TrailingCommits {
                in_windows: coordinator.counts[..TX_WINDOWS].try_into().unwrap(),
                after_newest,
            });
            recent
        };
        let mut recent = BTreeMap::new();
        recent.insert(tables[0].table.clone(), table(2, Some(8), 1));
        recent.insert(tables[1].table.clone(), table(1, Some(8), 1));
        // More writers than the Coordinator has rows (group rows, deleted rows).
        recent.insert(tables[2].table.clone(), table(2, Some(8), 3));
        recent.insert(tables[3].table.clone(), windows(NOW, NOW, 10));
        let (summary, findings) = judged(&[], None, &tables, &recent, Some(&coordinator));
        let flagged = copied_early(&findings);
        assert_eq!(flagged, ["bank.audit"], "{findings:#?}");
        let audit = lag_of(&summary, "audit");
        assert_eq!(
            (
                audit.test,
                audit.window_ms,
                audit.commits_in_lag,
                audit.transactions_in_window
            ),
            (LagTest::TrailingRun, 4_000, Some(8), Some(31)),
            "{audit:?}"
        );
        // C(32, 31) / C(40, 31) = 32 / C(40, 9).
        let expected = 32.0 / 273_438_880.0;
        assert!(
            audit.significant && (audit.p_no_write.0 / expected - 1.0).abs() < 1e-9,
            "{audit:?}"
        );
        assert!(
            findings[0]
                .message
                .contains("by none of the 8 committed after"),
            "{}",
            findings[0].message
        );
        let half = lag_of(&summary, "half");
        assert!(!half.significant, "{half:?}");
        let odd = lag_of(&summary, "odd");
        assert!(
            odd.test != LagTest::TrailingRun && !odd.significant,
            "{odd:?}"
        );
    }

    /// A table a few transactions write many records each: per record the lag reads as a
    /// table most transactions write; its distinct transactions (counted when it lags) say
    /// one commit in ten writes it, and 30 commits without one are plausible.
    #[test]
    fn a_lag_per_commit_counts_writers_not_records_where_they_were_counted() {
        let lag = 1_100;
        let tables = [summary("batch", NOW - lag), summary("accounts", NOW)];
        let coordinator = windows(NOW, NOW, 30);
        let mut batch = windows(NOW, NOW - lag, 30);
        let mut recent = BTreeMap::new();
        recent.insert(tables[0].table.clone(), batch.clone());
        let (by_records, findings) = judged(&[], None, &tables, &recent, Some(&coordinator));
        assert!(by_records.lags[0].significant, "{by_records:?}");
        assert_eq!(findings.len(), 1, "{findings:#?}");
        let mut writers = [0; TX_WINDOWS];
        for (w, records) in writers.iter_mut().zip(batch.counts) {
            *w = records / 10;
        }
        batch.transactions = Some(writers);
        recent.insert(tables[0].table.clone(), batch);
        let (by_writers, findings) = judged(&[], None, &tables, &recent, Some(&coordinator));
        assert!(!by_writers.lags[0].significant, "{by_writers:?}");
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn one_snapshot_is_evidence_and_silences_the_lag() {
        let tables = [summary("busy", NOW - 300), summary("other", NOW)];
        let mut recent = BTreeMap::new();
        recent.insert(tables[0].table.clone(), windows(NOW, NOW - 300, 200));
        let parts = [part("app.dump", Some(NOW + 1_000), true)];
        let (summary, findings) = judged(&parts, None, &tables, &recent, None);
        assert!(summary.proven, "{summary:?}");
        let codes: Vec<Code> = findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, [Code::BackupSingleSnapshot]);
        assert!(summary.lags[0].significant);
    }

    #[test]
    fn parts_copied_apart_put_the_transactions_between_them_at_risk() {
        let parts = [
            part("a.dump", Some(NOW - 3_000), true),
            part("b.dump", Some(NOW), true),
        ];
        // 10 commits a second, up to the reference.
        let coordinator_recent = windows(NOW, NOW, 10);
        let (summary, findings) = judged(
            &parts,
            None,
            &[],
            &BTreeMap::new(),
            Some(&coordinator_recent),
        );
        assert!(!summary.proven);
        assert_eq!(summary.spread_ms, Some(3_000));
        let at_risk = summary.at_risk.unwrap();
        // Between the 1 s window (10) and the 4 s one (40): 30 committed in fact.
        assert_eq!(
            (at_risk.committed_at_least, at_risk.committed_at_most),
            (Some(10), Some(40))
        );
        let finding = findings
            .iter()
            .find(|f| f.code == Code::CutWindowAtRisk)
            .unwrap();
        assert_eq!(finding.count, Some(40));
        assert!(finding.message.contains("pause"), "{}", finding.message);
        assert_eq!(
            Code::CutWindowAtRisk.verdict_effect(),
            crate::analyze::VerdictEffect::Indeterminate
        );
        let _ = Verdict::Indeterminate;
    }

    fn listed(proofs: &[(&str, i64, AtRiskProof)], unlisted: u64) -> WindowTransactions {
        WindowTransactions {
            from_ms: NOW - 3_000,
            to_ms: NOW,
            transactions: proofs
                .iter()
                .map(|&(tx_id, at, proof)| AtRiskTransaction {
                    tx_id: tx_id.into(),
                    committed_at_ms: Some(at),
                    proof,
                })
                .collect(),
            unlisted,
        }
    }

    fn judged_with(list: &WindowTransactions) -> (CutSummary, Vec<Finding>) {
        let parts = [
            part("a.dump", Some(NOW - 3_000), true),
            part("b.dump", Some(NOW), true),
        ];
        // Coarse windows: up to 40 in the spread, whatever the list says.
        let coordinator_recent = windows(NOW, NOW, 10);
        let coordinator = coordinator(NOW);
        let mut findings = Vec::new();
        let summary = judge(
            &CutInput {
                parts: &parts,
                pause: None,
                coordinator: &coordinator,
                coordinator_recent: Some(&coordinator_recent),
                recent: &BTreeMap::new(),
                at_risk_transactions: Some(list),
                storages: &[],
                committed_after: None,
                predictions: &[],
            },
            &[],
            &mut findings,
        );
        (summary, findings)
    }

    #[test]
    fn the_write_set_proofs_verdicts_map_to_the_cuts() {
        let map = AtRiskProof::of_write_set;
        assert_eq!(map(Some(TxProof::Proven)), AtRiskProof::Intact);
        assert_eq!(map(Some(TxProof::Torn)), AtRiskProof::Torn);
        assert_eq!(map(Some(TxProof::Unverified)), AtRiskProof::Unproven);
        assert_eq!(map(Some(TxProof::Ambiguous)), AtRiskProof::Unproven);
        assert_eq!(map(None), AtRiskProof::Unproven);

        let row = |tx_id: &str, groups: &[&str]| WindowRow {
            tx_id: tx_id.into(),
            created_at: NOW - 1_000,
            group_tx_ids: groups.iter().map(|&g| g.to_owned()).collect(),
        };
        let proofs = BTreeMap::from([
            ("p$1".to_owned(), TxProof::Proven),
            ("p$2".to_owned(), TxProof::Torn),
            ("single".to_owned(), TxProof::Proven),
        ]);
        let rows = [
            row("p", &["p$1", "p$2"]),
            row("single", &["single"]),
            // No usable write set, or one the proof skipped over its memory bound.
            row("unlogged", &[]),
            row("skipped", &["skipped"]),
        ];
        let listed = window_transactions((NOW - 3_000, NOW), &rows, 7, &proofs);
        let got: Vec<(&str, AtRiskProof)> = listed
            .transactions
            .iter()
            .map(|t| (t.tx_id.as_str(), t.proof))
            .collect();
        assert_eq!(
            got,
            [
                ("p$1", AtRiskProof::Intact),
                ("p$2", AtRiskProof::Torn),
                ("single", AtRiskProof::Intact),
                ("unlogged", AtRiskProof::Unproven),
                ("skipped", AtRiskProof::Unproven),
            ]
        );
        assert_eq!(
            (listed.from_ms, listed.to_ms, listed.unlisted),
            (NOW - 3_000, NOW, 7)
        );
    }

    #[test]
    fn the_window_is_known_only_when_every_part_records_its_instant() {
        let a = part("a", Some(NOW - 3_000), true);
        let b = part("b", Some(NOW), true);
        assert_eq!(window(&[a.clone(), b.clone()]), Some((NOW - 3_000, NOW)));
        assert_eq!(window(std::slice::from_ref(&a)), None);
        assert_eq!(window(&[a, part("c", None, true)]), None);
    }

    #[test]
    fn a_window_whose_transactions_are_all_proven_intact_proves_the_cut() {
        let list = listed(
            &[
                ("t1", NOW - 2_000, AtRiskProof::Intact),
                ("t2", NOW - 1_000, AtRiskProof::Intact),
                // Outside the window: neither counted nor listed.
                ("old", NOW - 9_000, AtRiskProof::Unproven),
            ],
            0,
        );
        let (summary, findings) = judged_with(&list);
        assert!(
            summary.proven && findings.is_empty(),
            "{summary:?} {findings:?}"
        );
        assert!(
            summary.reason.contains("proven intact"),
            "{}",
            summary.reason
        );
        let at_risk = summary.at_risk.unwrap();
        assert_eq!(
            (at_risk.committed_at_least, at_risk.committed_at_most),
            (Some(2), Some(2))
        );
        assert_eq!(
            (at_risk.proven_by_write_sets, at_risk.torn_by_write_sets),
            (2, 0)
        );
    }

    #[test]
    fn one_unproven_or_unlisted_transaction_keeps_the_window_at_risk() {
        let list = listed(
            &[
                ("t1", NOW - 2_000, AtRiskProof::Intact),
                ("t2", NOW - 1_000, AtRiskProof::Unproven),
                ("t3", NOW - 500, AtRiskProof::Torn),
            ],
            0,
        );
        let (summary, findings) = judged_with(&list);
        assert!(!summary.proven);
        let finding = findings
            .iter()
            .find(|f| f.code == Code::CutWindowAtRisk)
            .unwrap();
        assert_eq!(finding.count, Some(3));
        // The torn one is the first example, then the unproven one.
        assert_eq!(finding.tx_id.as_deref(), Some("t3"));
        assert!(
            finding
                .message
                .contains("1 proven intact, 1 torn and 1 unproven"),
            "{}",
            finding.message
        );
        let at_risk = summary.at_risk.unwrap();
        assert_eq!(
            (at_risk.proven_by_write_sets, at_risk.torn_by_write_sets),
            (1, 1)
        );

        // Every listed one intact, but some were over the scan's bound: not proven.
        let list = listed(&[("t1", NOW - 2_000, AtRiskProof::Intact)], 1);
        let (summary, findings) = judged_with(&list);
        assert!(!summary.proven, "{summary:?}");
        assert_eq!(findings[0].count, Some(2));

        // A list made for another window is not this window's count.
        let mut other = listed(&[("t1", NOW - 2_000, AtRiskProof::Intact)], 0);
        other.from_ms -= 1;
        let (summary, _) = judged_with(&other);
        assert!(!summary.proven, "{summary:?}");
        assert_eq!(summary.at_risk.unwrap().committed_at_most, Some(40));
    }

    #[test]
    fn parts_inside_one_pause_or_with_nothing_between_prove_the_cut() {
        let parts = [
            part("a.dump", Some(NOW - 3_000), true),
            part("b.dump", Some(NOW - 1_000), true),
        ];
        let pause = PauseWindow {
            start_ms: NOW - 5_000,
            end_ms: NOW,
        };
        let (summary, findings) = judged(&parts, Some(pause), &[], &BTreeMap::new(), None);
        assert!(
            summary.proven && findings.is_empty(),
            "{summary:?} {findings:?}"
        );
        // No pause, but the Coordinator shows nothing committing after 5 s before the copies.
        let quiet = windows(NOW - 10_000, NOW - 10_000, 10);
        let (summary, findings) = judged(&parts, None, &[], &BTreeMap::new(), Some(&quiet));
        assert!(
            summary.proven && findings.is_empty(),
            "{summary:?} {findings:?}"
        );
    }

    #[test]
    fn parts_copied_after_the_last_commit_prove_the_cut_without_counts() {
        let parts = [
            part("node 1", Some(NOW + 1_000), false),
            part("node 2", Some(NOW + 5_000), false),
        ];
        let (summary, findings) = judged(&parts, None, &[], &BTreeMap::new(), None);
        assert!(
            summary.proven && findings.is_empty(),
            "{summary:?} {findings:?}"
        );
    }

    #[test]
    fn parts_without_instants_are_at_risk_with_the_reason() {
        let parts = [
            part("a.sql (dump 1)", None, true),
            part("a.sql (dump 2)", None, true),
        ];
        let (summary, findings) = judged(&parts, None, &[], &BTreeMap::new(), None);
        assert!(!summary.proven);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, Code::CutWindowAtRisk);
        assert!(
            findings[0].message.contains("record no instant"),
            "{}",
            findings[0].message
        );
    }

    fn storage(name: &str, newest: i64) -> super::super::StorageSummary {
        super::super::StorageSummary {
            name: name.into(),
            kind: "postgresql".into(),
            target: name.into(),
            holds_coordinator: name == "pg",
            tables: Vec::new(),
            records: 10,
            unresolved: 0,
            max_tx_prepared_at: Some(newest - 5),
            max_tx_committed_at: Some(newest),
            ignored: Vec::new(),
        }
    }

    fn pending(storage: &str, tx_id: &str) -> super::super::Prediction {
        super::super::Prediction {
            storage: Some(storage.into()),
            table: TableRef::new("bank", "accounts"),
            key: crate::model::RecordKey::default(),
            tx_id: tx_id.into(),
            tx_state: crate::model::TxState::Prepared,
            outcome: super::super::Outcome::RollForwardCommit,
            reason: super::super::Reason::CoordinatorCommitted,
            restores_tx_id: None,
            in_flight_at_cut: false,
        }
    }

    fn committed(tx_id: &str, created_at: i64, children: Option<&str>) -> CoordinatorRow {
        CoordinatorRow {
            tx_id: tx_id.into(),
            tx_state: Some(3),
            tx_created_at: Some(created_at),
            tx_child_ids: children.map(Into::into),
        }
    }

    /// A backup set of two dumps that record no instant (storage `pg` with the Coordinator,
    /// newest write at NOW; `lite`, newest write 59 ms before), the Coordinator's rows after
    /// `lite`'s newest write, and the records pending in each storage.
    fn judged_set(
        rows: &[CoordinatorRow],
        predictions: &[super::super::Prediction],
    ) -> (CutSummary, Vec<Finding>) {
        let mut parts = [
            part("backup.pg.sql", None, true),
            part("backup.sqlite", None, false),
        ];
        parts[0].storage = Some("pg".into());
        parts[1].storage = Some("lite".into());
        let storages = [storage("pg", NOW), storage("lite", NOW - 59)];
        let since = part_starts(&parts, |s| {
            let s = storages.iter().find(|x| x.name == s)?;
            s.max_tx_committed_at
        })
        .and_then(|starts| starts.into_iter().min())
        .unwrap();
        assert_eq!(since, NOW - 59);
        let mut after = CommittedAfter::new(since);
        let mut aborted = committed("aborted", NOW - 10, None);
        aborted.tx_state = Some(4);
        for row in rows
            .iter()
            .chain([&aborted, &committed("older", NOW - 60, None)])
        {
            after.add(row);
        }
        let coordinator = coordinator(NOW);
        let mut findings = Vec::new();
        let summary = judge(
            &CutInput {
                parts: &parts,
                pause: None,
                coordinator: &coordinator,
                coordinator_recent: None,
                recent: &BTreeMap::new(),
                at_risk_transactions: None,
                storages: &storages,
                committed_after: Some(&after),
                predictions,
            },
            &[],
            &mut findings,
        );
        (summary, findings)
    }

    /// The tear the oracle's PostgreSQL + SQLite case made: SQLite copied, then a transfer
    /// committed 59 ms after SQLite's newest write. No clock tolerance hides it.
    #[test]
    fn a_transaction_committed_after_a_parts_newest_write_and_absent_from_it_is_at_risk() {
        let (summary, findings) = judged_set(&[committed("transfer", NOW, None)], &[]);
        assert!(!summary.proven, "{summary:?}");
        let at_risk = summary.at_risk.as_ref().expect("the transactions at risk");
        assert_eq!(at_risk.committed_at_least, Some(1), "{at_risk:?}");
        assert_eq!(at_risk.transactions[0].tx_id, "transfer");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, Code::CutWindowAtRisk);
        assert!(
            findings[0].message.contains("e.g. transfer"),
            "{}",
            findings[0].message
        );
        // Pending in the Coordinator's storage only says nothing of the other part.
        let (summary, _) = judged_set(
            &[committed("transfer", NOW, None)],
            &[pending("pg", "transfer")],
        );
        assert!(!summary.proven, "{summary:?}");
    }

    /// At rest after a two-phase transaction whose participant never committed: its record in
    /// `lite` is PREPARED (written before the copy), the Coordinator row 59 ms later.
    #[test]
    fn a_transaction_pending_in_every_part_copied_before_it_proves_the_cut() {
        let (summary, findings) =
            judged_set(&[committed("2pc", NOW, None)], &[pending("lite", "2pc")]);
        assert!(summary.proven, "{summary:?}");
        assert!(findings.is_empty(), "{findings:?}");
        assert!(
            summary.reason.contains("1 transaction(s)"),
            "{}",
            summary.reason
        );
        // A group's row is not explained by one child's record.
        let (summary, _) = judged_set(
            &[committed("parent", NOW, Some("c1,c2"))],
            &[pending("lite", "parent")],
        );
        assert!(!summary.proven, "{summary:?}");
        // Nor is a list cut short.
        let mut rows = vec![committed("2pc", NOW, None)];
        rows.extend((0..MAX_COMMITTED_AFTER).map(|i| committed(&format!("t{i}"), NOW - 1, None)));
        let many: Vec<_> = (0..MAX_COMMITTED_AFTER)
            .map(|i| pending("lite", &format!("t{i}")))
            .chain([pending("lite", "2pc")])
            .collect();
        let (summary, _) = judged_set(&rows, &many);
        assert!(!summary.proven, "{summary:?}");
    }

    #[test]
    fn records_without_a_coordinator_row_are_judged_by_their_cause() {
        let table = TableRef::new("bank", "accounts");
        let span = Some((NOW - 10_000, NOW));
        let record = |p, c| ObservedRecord {
            key: crate::model::RecordKey(vec![("id".into(), "1".into())]),
            meta: meta(p, c),
            coordinator: crate::model::CoordinatorRows::default(),
        };
        let mut one_phase = Uncovered::default();
        one_phase.add_kept(&record(NOW - 5, NOW - 5), span);
        let finding = coverage_finding(&table, &one_phase, &coordinator(NOW)).unwrap();
        assert_eq!(finding.code, Code::CommittedWithoutCoordinatorState);
        assert!(
            finding.message.contains("one-phase commit"),
            "{}",
            finding.message
        );

        let mut late = Uncovered::default();
        late.add_kept(&record(NOW + 900, NOW + 1_000), span);
        late.add_kept(&record(NOW - 5, NOW - 5), span);
        let finding = coverage_finding(&table, &late, &coordinator(NOW)).unwrap();
        assert_eq!(finding.code, Code::CoordinatorBehindData);
        assert_eq!(finding.count, Some(1));
        assert!(
            finding
                .message
                .contains("after the Coordinator's newest row"),
            "{}",
            finding.message
        );

        let mut logged = coordinator(NOW);
        logged.write_set_logging = true;
        let finding = coverage_finding(&table, &late, &logged).unwrap();
        assert_eq!(finding.code, Code::CommittedWithoutCoordinatorState);
        assert!(
            finding.message.contains("write-set logging"),
            "{}",
            finding.message
        );

        let mut old = Uncovered::default();
        old.add_kept(&record(NOW - 90_000, NOW - 80_000), span);
        let finding = coverage_finding(&table, &old, &coordinator(NOW)).unwrap();
        assert_eq!(finding.code, Code::CommittedWithoutCoordinatorState);
        assert!(coverage_finding(&table, &Uncovered::default(), &coordinator(NOW)).is_none());
    }
}
