//! The heart of the tool: from what a scan observed to predictions, findings and a verdict.
//!
//! Pure and synchronous: no I/O, no clock (the restore point's time is a parameter), no
//! async. Every rule here encodes a fact from `shared/scalardb-protocol.md`; the comments
//! say which.

mod cut;
mod finding;
mod input;
mod nodes;
mod retention;
mod storages;
mod write_sets;

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

pub use cut::{
    AtRisk, AtRiskProof, AtRiskTransaction, CLOCK_TOLERANCE_MS, CommittedAfter, CutPart,
    CutSummary, InstantSource, MAX_WINDOW_TRANSACTIONS, MIN_RATE_EVIDENCE, Probability, TableLag,
    WindowRow, WindowTransactions, part_starts, window as cut_window, window_transactions,
};
pub use finding::{CheckName, Code, Finding, Severity, VerdictEffect};
pub use input::{
    CoordinatorObservation, CoordinatorScan, DiscoveryNote, MAX_RECENT_TRANSACTIONS, Observation,
    ObservedRecord, RATE_WINDOWS_MS, RecentCommits, RecentTransactions, TX_WINDOWS,
    TableObservation, TableOutcome, TableScan, TrailingCommits, UnconfirmedTimes,
};
pub use nodes::{Divergence, NodeComparer, NodeComparison, NodeCopy, NodeCopyView, NodeSummary};
pub use retention::{Retention, SAMPLE_LIMIT};
pub use storages::{IgnoredTable, StorageObservation, StorageSummary};
pub use write_sets::{
    AT_RISK_MARGIN_MS, AbortedWriteSet, AtRiskSet, CHECK_ALL_BELOW, Found, TxProof, Undecodable,
    WriteSetProof, WriteSetSummary, WrittenTransaction, at_risk_rule, prove,
};

use crate::model::{
    CoordinatorRow, CoordinatorRows, CoordinatorState, GroupCommitId, RecordKey, StoredState,
    TRANSACTION_LIFETIME_MS, TableRef, TxState,
};

/// Settings of one analysis, validated before any I/O.
#[derive(Clone, Debug)]
pub struct AnalysisSettings {
    /// The restore point's time in epoch ms; `None` estimates it from the data.
    pub as_of: Option<i64>,
    /// A table whose newest write is this much older (or newer) than the Coordinator's
    /// newest entry is reported as possibly copied at another moment.
    pub skew_threshold_ms: i64,
    /// The pause the backup was taken in, when known (`--pause-window`).
    pub pause_window: Option<PauseWindow>,
    /// The parts of the backup with the instants they were copied at, as the backup
    /// records them (the drill reads them; empty: nothing recorded).
    pub cut_parts: Vec<CutPart>,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        Self {
            as_of: None,
            skew_threshold_ms: 60_000,
            pause_window: None,
            cut_parts: Vec::new(),
        }
    }
}

/// A pause of ScalarDB's transaction processing (scalar-admin-for-kubernetes output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PauseWindow {
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing unresolved and nothing contradictory.
    Consistent,
    /// Unresolved records, all of which recovery resolves without contradiction.
    Recoverable,
    /// A check could not run, or the evidence cannot decide.
    Indeterminate,
    /// Recovery will contradict a record that is already resolved.
    Inconsistent,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Self::Consistent,
        Self::Recoverable,
        Self::Indeterminate,
        Self::Inconsistent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consistent => "consistent",
            Self::Recoverable => "recoverable",
            Self::Indeterminate => "indeterminate",
            Self::Inconsistent => "inconsistent",
        }
    }
}

/// What lazy recovery will do with one unresolved record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// PREPARED, transaction committed: the record becomes COMMITTED.
    RollForwardCommit,
    /// DELETED, transaction committed: the record is physically deleted.
    RollForwardDelete,
    /// Transaction aborted (or expired without a state): the before image is restored.
    RollBackRestore,
    /// Transaction aborted and the record has no before image: it is deleted.
    RollBackDelete,
}

impl Outcome {
    pub fn is_roll_forward(self) -> bool {
        matches!(self, Self::RollForwardCommit | Self::RollForwardDelete)
    }
}

/// Why recovery takes that outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    CoordinatorCommitted,
    CoordinatorAborted,
    /// No state: the first reader after the restore writes ABORTED (the record is long
    /// expired by then) and rolls back.
    NoCoordinatorState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Prediction {
    /// The storage holding the record (`None` when the scan named no storage).
    pub storage: Option<String>,
    pub table: TableRef,
    pub key: RecordKey,
    pub tx_id: String,
    pub tx_state: TxState,
    pub outcome: Outcome,
    pub reason: Reason,
    /// For a restore: the `tx_id` the record will carry afterwards (its `before_tx_id`).
    pub restores_tx_id: Option<String>,
    /// The transaction was still within its 15 s lifetime at the restore point.
    pub in_flight_at_cut: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TableStatus {
    Scanned,
    Missing,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TableSummary {
    pub storage: Option<String>,
    pub table: TableRef,
    pub status: TableStatus,
    pub records: u64,
    pub unresolved: u64,
    pub roll_forward: u64,
    pub roll_back: u64,
    pub committed_without_coordinator_state: u64,
    pub max_tx_prepared_at: Option<i64>,
    pub max_tx_committed_at: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CoordinatorSummary {
    pub present: bool,
    pub table: Option<TableRef>,
    pub rows: u64,
    pub committed: u64,
    pub aborted: u64,
    pub max_tx_created_at: Option<i64>,
    pub group_commit: bool,
    pub write_set_logging: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TransactionSummary {
    /// Transactions with at least one unresolved record.
    pub unresolved: u64,
    pub roll_forward: u64,
    pub roll_back: u64,
    pub torn: u64,
    pub ambiguous: u64,
    /// Unresolved transactions without a state that were still within their lifetime at
    /// the restore point: in flight when the backup was cut.
    pub in_flight_at_cut: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AsOf {
    pub epoch_ms: Option<i64>,
    pub estimated: bool,
}

/// The outcome of an analysis, ready to be rendered as a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Analysis {
    pub verdict: Verdict,
    pub as_of: AsOf,
    pub tables: Vec<TableSummary>,
    pub coordinator: CoordinatorSummary,
    pub transactions: TransactionSummary,
    /// Newest write of the most recently written table minus that of the least recently
    /// written one (tables with no timestamps left out).
    pub watermark_skew_ms: Option<i64>,
    pub findings: Vec<Finding>,
    pub predictions: Vec<Prediction>,
    /// Each storage of the deployment, with its tables, counts and watermarks.
    pub storages: Vec<StorageSummary>,
    /// The pause window the restore point was checked against, if any.
    pub pause_window: Option<PauseWindow>,
    /// The proof from the Coordinator's write sets (3.19 write-set logging), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_sets: Option<WriteSetSummary>,
    /// Whether the backup's parts were copied at one instant, and the evidence.
    pub cut: CutSummary,
}

impl Analysis {
    pub fn records_scanned(&self) -> u64 {
        self.tables.iter().map(|t| t.records).sum()
    }

    pub fn unresolved_records(&self) -> u64 {
        self.tables.iter().map(|t| t.unresolved).sum()
    }

    /// Adds findings of a check made beside the scan (the nodes' comparison) and decides
    /// the verdict again.
    pub fn add_findings(&mut self, findings: impl IntoIterator<Item = Finding>) {
        self.findings.extend(findings);
        self.verdict = decide_verdict(&self.findings, &self.tables);
    }

    /// Adds the write-set proof (`write_sets::prove`, made after the scan from records read
    /// by key): its findings, each in the storage of its table, and its counts; decides the
    /// verdict again.
    pub fn add_write_set_proof(&mut self, proof: WriteSetProof) {
        let coordinator_storage = self
            .storages
            .iter()
            .find(|s| s.holds_coordinator)
            .map(|s| s.name.clone());
        for mut finding in proof.findings {
            finding.storage = match &finding.table {
                Some(name) => self
                    .tables
                    .iter()
                    .find(|t| &t.table.to_string() == name)
                    .and_then(|t| t.storage.clone()),
                // A write set is the Coordinator's.
                None => coordinator_storage.clone(),
            };
            self.findings.push(finding);
        }
        sort_findings(&mut self.findings);
        self.write_sets = Some(proof.summary);
        self.verdict = decide_verdict(&self.findings, &self.tables);
    }

    /// Whether `check` ran for `table` (`None`: the Coordinator), and what it found.
    pub fn check_status(&self, check: CheckName, table: Option<&TableRef>) -> CheckStatus<'_> {
        let table_name = table.map(ToString::to_string);
        let ran = match table {
            Some(table) => {
                let scanned = self
                    .tables
                    .iter()
                    .any(|t| &t.table == table && t.status == TableStatus::Scanned);
                scanned
                    && (check == CheckName::TableScan
                        || !check.needs_coordinator()
                        || self.coordinator.present)
            }
            None => true,
        };
        let relevant: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.check == check && (table.is_none() || f.table == table_name))
            .collect();
        if check == CheckName::TableScan && relevant.iter().any(|f| f.severity == Severity::Error) {
            return CheckStatus::Failed(relevant);
        }
        if !ran {
            return CheckStatus::NotRun;
        }
        if relevant.iter().any(|f| f.severity == Severity::Error) {
            CheckStatus::Failed(relevant)
        } else {
            CheckStatus::Passed(relevant)
        }
    }
}

#[derive(Debug)]
pub enum CheckStatus<'a> {
    /// Passed, possibly with warnings or notes.
    Passed(Vec<&'a Finding>),
    Failed(Vec<&'a Finding>),
    NotRun,
}

/// Everything known about one transaction that has unresolved records.
#[derive(Default)]
struct UnresolvedTx {
    state: Option<CoordinatorState>,
    table_and_key: Vec<(TableRef, RecordKey, TxState)>,
    newest_prepared_at: i64,
    committed: Vec<(TableRef, RecordKey)>,
    group_parent_row_missing: bool,
    /// Some record's roll back differs from its roll forward. A DELETED record without a
    /// before image (the tombstone of a delete of an absent key) is deleted either way, so
    /// a transaction whose only unresolved records are tombstones cannot be torn by them.
    decisive: bool,
}

/// Analyses one scan. Deterministic: the same observation gives the same analysis.
pub fn analyze(observation: &Observation, settings: &AnalysisSettings) -> Analysis {
    let mut findings = Vec::new();
    let coordinator = summarize_coordinator(&observation.coordinator, &mut findings);
    let duplicated = duplicated_tx_ids(&observation.coordinator);
    let as_of = AsOf {
        epoch_ms: settings.as_of.or_else(|| estimate_as_of(observation)),
        estimated: settings.as_of.is_none(),
    };

    for note in &observation.discovery {
        findings.push(discovery_finding(note));
    }

    let mut tables = Vec::new();
    let mut predictions = Vec::new();
    let mut unresolved: BTreeMap<String, UnresolvedTx> = BTreeMap::new();

    for table_observation in &observation.tables {
        let table = &table_observation.table;
        let scan = match &table_observation.outcome {
            TableOutcome::Scanned(scan) => scan,
            TableOutcome::Missing => {
                findings.push(
                    Finding::new(
                        Code::TableMissing,
                        "listed in ScalarDB's table metadata but missing from the database",
                    )
                    .table(table),
                );
                tables.push(empty_summary(table, TableStatus::Missing));
                continue;
            }
            TableOutcome::Failed(reason) => {
                findings.push(
                    Finding::new(Code::TableScanFailed, format!("could not scan: {reason}"))
                        .table(table),
                );
                tables.push(empty_summary(table, TableStatus::Failed));
                continue;
            }
            TableOutcome::Denied(reason) => {
                findings.push(
                    Finding::new(
                        Code::PermissionDenied,
                        format!(
                            "listed in ScalarDB's table metadata, but the account may not read \
                             it ({reason}): its records were not checked"
                        ),
                    )
                    .table(table),
                );
                tables.push(empty_summary(table, TableStatus::Failed));
                continue;
            }
        };
        let mut summary = TableSummary {
            max_tx_prepared_at: scan.max_prepared_at,
            max_tx_committed_at: scan.max_committed_at,
            records: scan.records,
            ..empty_summary(table, TableStatus::Scanned)
        };
        let repeated = repeated_keys(&scan.exceptional);
        let mut reported: std::collections::BTreeSet<&RecordKey> =
            std::collections::BTreeSet::new();
        for record in &scan.exceptional {
            let duplicated_tx = record
                .meta
                .tx_id
                .as_deref()
                .is_some_and(|tx_id| duplicated.contains(tx_id));
            if repeated.contains_key(&record.key) || duplicated_tx {
                // Two answers for one record: never predict both (or either) of them.
                if reported.insert(&record.key) {
                    findings.push(ambiguous_record(table, record, &scan.exceptional));
                    if matches!(
                        record.meta.state(),
                        StoredState::Known(TxState::Prepared | TxState::Deleted)
                    ) {
                        summary.unresolved += 1;
                    }
                }
                continue;
            }
            if let Some(prediction) =
                classify_exceptional(table, record, &coordinator, as_of, &mut findings)
            {
                summary.unresolved += 1;
                if prediction.outcome.is_roll_forward() {
                    summary.roll_forward += 1;
                } else {
                    summary.roll_back += 1;
                }
                let tx = unresolved.entry(prediction.tx_id.clone()).or_default();
                tx.state = Some(CoordinatorState::look_up(
                    &prediction.tx_id,
                    &record.coordinator,
                ));
                tx.table_and_key
                    .push((table.clone(), prediction.key.clone(), prediction.tx_state));
                tx.newest_prepared_at = tx
                    .newest_prepared_at
                    .max(record.meta.tx_prepared_at.unwrap_or(i64::MIN));
                tx.group_parent_row_missing = record.coordinator.parent.is_none();
                let tombstone =
                    prediction.tx_state == TxState::Deleted && !record.meta.has_before_image();
                tx.decisive |= !tombstone;
                predictions.push(prediction);
            } else if matches!(
                record.meta.state(),
                StoredState::Known(TxState::Prepared | TxState::Deleted)
            ) {
                // Unresolved but unpredictable (invalid metadata, no Coordinator).
                summary.unresolved += 1;
            }
        }
        tables.push(summary);
    }

    let span = coordinator_span(&observation.coordinator);
    let mut orphan_group_parents: HashSet<String> = HashSet::new();
    let mut recent: BTreeMap<TableRef, RecentCommits> = BTreeMap::new();
    for table_observation in &observation.tables {
        let TableOutcome::Scanned(scan) = &table_observation.outcome else {
            continue;
        };
        let table = &table_observation.table;
        if let Some(windows) = &scan.recent {
            recent.insert(table.clone(), (**windows).clone());
        }
        let mut uncovered = cut::Uncovered {
            total: scan.unconfirmed_other_count,
            times: scan.unconfirmed_times.clone(),
            first: scan.unconfirmed_other_samples.first().cloned(),
        };
        for record in &scan.unconfirmed_relevant {
            let Some(tx_id) = record.meta.tx_id.as_deref() else {
                continue;
            };
            if duplicated.contains(tx_id) {
                // Its Coordinator rows contradict each other; the Coordinator's finding says so.
                continue;
            }
            match CoordinatorState::look_up(tx_id, &record.coordinator) {
                CoordinatorState::Committed { .. } | CoordinatorState::Invalid { .. } => {}
                CoordinatorState::Aborted if coordinator.write_set_logging => findings.push(
                    evidence(Code::AmbiguousCoordinatorCleanup, table, record, "ABORTED")
                        .message_text(
                            "record is COMMITTED while the Coordinator says ABORTED; with 3.19 \
                             Coordinator clean-up this can be a spurious ABORTED row for a \
                             committed transaction, or a torn backup: the snapshot cannot tell",
                        ),
                ),
                CoordinatorState::Aborted => findings.push(
                    evidence(Code::CommittedButAborted, table, record, "ABORTED").message_text(
                        "record is COMMITTED while the Coordinator says its transaction ABORTED",
                    ),
                ),
                CoordinatorState::Absent => {
                    if let Some(tx) = unresolved.get_mut(tx_id).filter(|tx| tx.decisive) {
                        tx.committed.push((table.clone(), record.key.clone()));
                    } else {
                        if let Some(id) = GroupCommitId::parse(tx_id) {
                            if record.coordinator.parent.is_none() {
                                orphan_group_parents.insert(id.parent.to_owned());
                            }
                        }
                        uncovered.add_kept(record, span);
                    }
                }
            }
        }
        if let Some(finding) = cut::coverage_finding(table, &uncovered, &coordinator) {
            let summary = tables
                .iter_mut()
                .find(|s| &s.table == table)
                .expect("every scanned table has a summary");
            summary.committed_without_coordinator_state = uncovered.total;
            findings.push(finding);
        }
    }

    let transactions = judge_transactions(
        &unresolved,
        &orphan_group_parents,
        as_of,
        &mut predictions,
        &mut findings,
    );
    let watermark_skew_ms = check_watermarks(&tables, &coordinator, settings, &mut findings);
    if let Some(pause) = settings.pause_window {
        check_pause_window(pause, &tables, &unresolved, &mut findings);
    }

    let coordinator_recent = match &observation.coordinator {
        CoordinatorObservation::Present(scan) => scan.recent_committed.as_deref(),
        CoordinatorObservation::Missing | CoordinatorObservation::Unreadable { .. } => None,
    };
    let storages = storages::attribute(
        &observation.storages,
        &mut tables,
        &mut findings,
        &mut predictions,
    );
    let cut = cut::judge(
        &cut::CutInput {
            parts: &settings.cut_parts,
            pause: settings.pause_window,
            coordinator: &coordinator,
            coordinator_recent,
            recent: &recent,
            at_risk_transactions: observation.at_risk_transactions.as_ref(),
            storages: &storages,
            committed_after: observation.committed_after.as_ref(),
            predictions: &predictions,
        },
        &tables,
        &mut findings,
    );
    predictions.sort_by(|a, b| (&a.table, &a.key).cmp(&(&b.table, &b.key)));
    sort_findings(&mut findings);
    let verdict = decide_verdict(&findings, &tables);
    Analysis {
        verdict,
        as_of,
        tables,
        coordinator,
        transactions,
        watermark_skew_ms,
        findings,
        predictions,
        storages,
        pause_window: settings.pause_window,
        write_sets: None,
        cut,
    }
}

/// The Coordinator's oldest and newest `tx_created_at`.
fn coordinator_span(observation: &CoordinatorObservation) -> Option<(i64, i64)> {
    match observation {
        CoordinatorObservation::Present(scan) => scan.min_created_at.zip(scan.max_created_at),
        CoordinatorObservation::Missing | CoordinatorObservation::Unreadable { .. } => None,
    }
}

fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (b.severity, a.code, &a.table, &a.key, &a.tx_id)
            .cmp(&(a.severity, b.code, &b.table, &b.key, &b.tx_id))
    });
}

/// A restore point inside a pause holds no write from after the pause started, and no
/// transaction that was in flight when it started (the pause drains them): every unresolved
/// record must be an older crash.
fn check_pause_window(
    pause: PauseWindow,
    tables: &[TableSummary],
    unresolved: &BTreeMap<String, UnresolvedTx>,
    findings: &mut Vec<Finding>,
) {
    for table in tables {
        let newest = table.max_tx_prepared_at.max(table.max_tx_committed_at);
        if let Some(newest) = newest.filter(|&n| n > pause.start_ms) {
            findings.push(
                Finding::new(
                    Code::WrittenAfterPauseStart,
                    format!(
                        "the table holds a write at {newest}, {} ms after the pause started at {}: \
                         the restore point is not inside the pause window",
                        newest - pause.start_ms,
                        pause.start_ms
                    ),
                )
                .table(&table.table),
            );
        }
    }
    for (tx_id, tx) in unresolved {
        if tx
            .newest_prepared_at
            .saturating_add(TRANSACTION_LIFETIME_MS)
            > pause.start_ms
        {
            let (table, key, state) = tx
                .table_and_key
                .iter()
                .min()
                .expect("an unresolved tx has records");
            findings.push(
                Finding::new(
                    Code::InFlightDuringPause,
                    format!(
                        "transaction prepared at {} was still within its 15 s lifetime when the \
                         pause started at {}: a pause drains in-flight transactions",
                        tx.newest_prepared_at, pause.start_ms
                    ),
                )
                .table(table)
                .key(key)
                .tx_id(Some(tx_id))
                .tx_state(state),
            );
        }
    }
}

fn decide_verdict(findings: &[Finding], tables: &[TableSummary]) -> Verdict {
    let worst = findings
        .iter()
        .map(|f| f.code.verdict_effect())
        .max()
        .unwrap_or(VerdictEffect::None);
    match worst {
        VerdictEffect::Inconsistent => Verdict::Inconsistent,
        VerdictEffect::Indeterminate => Verdict::Indeterminate,
        VerdictEffect::None if tables.iter().any(|t| t.unresolved > 0) => Verdict::Recoverable,
        VerdictEffect::None => Verdict::Consistent,
    }
}

trait MessageText {
    fn message_text(self, message: &str) -> Self;
}

impl MessageText for Finding {
    fn message_text(mut self, message: &str) -> Self {
        self.message = message.to_owned();
        self
    }
}

fn evidence(code: Code, table: &TableRef, record: &ObservedRecord, coordinator: &str) -> Finding {
    Finding::new(code, String::new())
        .table(table)
        .key(&record.key)
        .tx_id(record.meta.tx_id.as_deref())
        .tx_state(record.meta.state())
        .coordinator_state(coordinator)
}

fn empty_summary(table: &TableRef, status: TableStatus) -> TableSummary {
    TableSummary {
        storage: None,
        table: table.clone(),
        status,
        records: 0,
        unresolved: 0,
        roll_forward: 0,
        roll_back: 0,
        committed_without_coordinator_state: 0,
        max_tx_prepared_at: None,
        max_tx_committed_at: None,
    }
}

fn discovery_finding(note: &DiscoveryNote) -> Finding {
    match note {
        DiscoveryNote::NoTransactionalTables { searched } => Finding::new(
            Code::NoTransactionalTables,
            format!(
                "no ScalarDB transactional tables found ({searched}): not a ScalarDB database, \
                 or every table was excluded"
            ),
        ),
        DiscoveryNote::MetadataIncomplete {
            table,
            missing_columns,
        } => Finding::new(
            Code::MetadataIncomplete,
            format!(
                "ScalarDB's metadata table lacks rows for {}; the database catalog was used \
                 for this table",
                missing_columns.join(", ")
            ),
        )
        .table(table),
        DiscoveryNote::PermissionDenied { object, reason } => Finding::new(
            Code::PermissionDenied,
            format!(
                "the account may not read {object} ({reason}): what it holds was not checked; \
                 scan with an account that can read every ScalarDB table (see the README)"
            ),
        )
        .table(object),
        DiscoveryNote::InvalidMetadataRows { table, rows } => Finding::new(
            Code::InvalidScalardbMetadata,
            format!(
                "{rows} row(s) of ScalarDB's metadata table have a NULL full_table_name or \
                 column_name: ScalarDB never writes those, and the tables they describe are \
                 unknown"
            ),
        )
        .table(table)
        .count(*rows),
    }
}

/// Transaction ids with more than one Coordinator row, as far as the scan's sample shows
/// them (a valid-looking invalid row is one; see `CoordinatorScan::invalid_rows`).
fn duplicated_tx_ids(observation: &CoordinatorObservation) -> HashSet<String> {
    let CoordinatorObservation::Present(scan) = observation else {
        return HashSet::new();
    };
    scan.invalid_rows
        .iter()
        .filter(|row| is_valid_looking(row))
        .map(|row| row.tx_id.clone())
        .collect()
}

fn is_valid_looking(row: &CoordinatorRow) -> bool {
    matches!(row.tx_state, Some(3 | 4)) && row.tx_created_at.is_some()
}

/// Keys that occur more than once among `records`, with how often.
fn repeated_keys(records: &[ObservedRecord]) -> BTreeMap<&RecordKey, usize> {
    let mut seen: BTreeMap<&RecordKey, usize> = BTreeMap::new();
    for record in records {
        *seen.entry(&record.key).or_default() += 1;
    }
    seen.retain(|_, n| *n > 1);
    seen
}

/// The finding for a record the scan saw more than once, or whose transaction has more
/// than one Coordinator row: recovery has two answers for it, so none is predicted.
fn ambiguous_record(table: &TableRef, record: &ObservedRecord, all: &[ObservedRecord]) -> Finding {
    let copies: Vec<&ObservedRecord> = all.iter().filter(|r| r.key == record.key).collect();
    let same_record = copies.iter().all(|r| r.meta == record.meta);
    let tx_id = record.meta.tx_id.as_deref();
    let finding = if same_record {
        let mut states: Vec<String> = copies
            .iter()
            .map(|r| match tx_id {
                Some(tx_id) => CoordinatorState::look_up(tx_id, &r.coordinator).to_string(),
                None => "absent".to_owned(),
            })
            .collect();
        states.sort();
        Finding::new(
            Code::InvalidCoordinatorRow,
            format!(
                "the Coordinator holds more than one row for this record's transaction \
                 (answers: {}): ScalarDB keeps one state per transaction (tx_id is the \
                 Coordinator's key), so this Coordinator data is invalid and recovery's outcome \
                 cannot be predicted",
                states.join(", ")
            ),
        )
    } else {
        Finding::new(
            Code::InvalidMetadata,
            format!(
                "the key occurs {} times in the table: ScalarDB keeps one record per key (was \
                 the table restored without its primary key?), so recovery's outcome cannot be \
                 predicted",
                copies.len()
            ),
        )
    };
    finding
        .table(table)
        .key(&record.key)
        .tx_id(tx_id)
        .tx_state(record.meta.state())
}

fn summarize_coordinator(
    observation: &CoordinatorObservation,
    findings: &mut Vec<Finding>,
) -> CoordinatorSummary {
    let scan = match observation {
        CoordinatorObservation::Present(scan) => scan,
        CoordinatorObservation::Missing => {
            findings.push(Finding::new(
                Code::CoordinatorMissing,
                "the Coordinator table is missing: no prediction of lazy recovery is possible \
                 (check --coordinator-namespace)",
            ));
            return CoordinatorSummary::default();
        }
        CoordinatorObservation::Unreadable { table, reason } => {
            findings.push(
                Finding::new(
                    Code::CoordinatorScanFailed,
                    format!(
                        "could not read the Coordinator ({reason}): no prediction of lazy \
                         recovery is possible"
                    ),
                )
                .table(table),
            );
            return CoordinatorSummary {
                table: Some(table.clone()),
                ..CoordinatorSummary::default()
            };
        }
    };
    let table = scan.table.as_ref().map(ToString::to_string);
    for row in &scan.invalid_rows {
        let mut finding = Finding::new(
            Code::InvalidCoordinatorRow,
            match (row.tx_state, row.tx_created_at) {
                (Some(state @ (3 | 4)), Some(_)) => format!(
                    "Coordinator row with tx_state {state} that shares its tx_id with another \
                     row: ScalarDB keeps one state per transaction (tx_id is the Coordinator's \
                     key), so the Coordinator data is invalid"
                ),
                (Some(3 | 4), None) => "Coordinator row with a NULL tx_created_at".to_owned(),
                (Some(state), _) => format!(
                    "Coordinator row with tx_state {state}: the Coordinator only stores \
                     COMMITTED (3) or ABORTED (4)"
                ),
                (None, _) => "Coordinator row with a NULL tx_state".to_owned(),
            },
        )
        .tx_id(Some(&row.tx_id));
        if let Some(table) = &table {
            finding = finding.table(table);
        }
        if scan.invalid_count > 1 {
            finding = finding.count(scan.invalid_count);
        }
        findings.push(finding);
    }
    CoordinatorSummary {
        present: true,
        table: scan.table.clone(),
        rows: scan.rows,
        committed: scan.committed,
        aborted: scan.aborted,
        max_tx_created_at: scan.max_created_at,
        group_commit: scan.has_child_ids,
        write_set_logging: scan.has_write_set,
    }
}

/// The restore point is at least as late as the newest timestamp anywhere in the data.
fn estimate_as_of(observation: &Observation) -> Option<i64> {
    let tables = observation.tables.iter().filter_map(|t| match &t.outcome {
        TableOutcome::Scanned(scan) => scan.max_prepared_at.max(scan.max_committed_at),
        _ => None,
    });
    let coordinator = match &observation.coordinator {
        CoordinatorObservation::Present(scan) => scan.max_created_at,
        CoordinatorObservation::Missing | CoordinatorObservation::Unreadable { .. } => None,
    };
    tables.chain(coordinator).max()
}

/// Checks one record that is not plainly committed and predicts its recovery, if it is an
/// unresolved record whose fate can be predicted.
fn classify_exceptional(
    table: &TableRef,
    record: &ObservedRecord,
    coordinator: &CoordinatorSummary,
    as_of: AsOf,
    findings: &mut Vec<Finding>,
) -> Option<Prediction> {
    let meta = &record.meta;
    let invalid = |message: String| {
        Finding::new(Code::InvalidMetadata, message)
            .table(table)
            .key(&record.key)
            .tx_id(meta.tx_id.as_deref())
            .tx_state(meta.state())
    };
    let state = match meta.state() {
        StoredState::Unknown(id) => {
            findings.push(
                Finding::new(
                    Code::UnknownTxState,
                    format!(
                        "tx_state {id} is not a state ScalarDB stores in records \
                         (1 PREPARED, 2 DELETED, 3 COMMITTED or NULL)"
                    ),
                )
                .table(table)
                .key(&record.key)
                .tx_id(meta.tx_id.as_deref())
                .tx_state(id),
            );
            return None;
        }
        StoredState::Known(TxState::Aborted) => {
            findings.push(
                Finding::new(
                    Code::UnknownTxState,
                    "tx_state 4 (ABORTED) is stored only in the Coordinator, never in records",
                )
                .table(table)
                .key(&record.key)
                .tx_id(meta.tx_id.as_deref())
                .tx_state(TxState::Aborted),
            );
            return None;
        }
        StoredState::Null => {
            findings.push(invalid(
                "tx_id is set but tx_state is NULL: tx_id and tx_state are both NULL on an \
                 imported record, or both set"
                    .to_owned(),
            ));
            return None;
        }
        StoredState::Known(TxState::Committed) => {
            let problem = if meta.tx_id.is_none() {
                "COMMITTED record with a NULL tx_id".to_owned()
            } else {
                format!(
                    "COMMITTED record with tx_version {}: a record with a tx_id has version 1 \
                     or more",
                    display_opt(meta.tx_version)
                )
            };
            findings.push(invalid(problem));
            return None;
        }
        StoredState::Known(state @ (TxState::Prepared | TxState::Deleted)) => state,
    };
    let (Some(tx_id), Some(prepared_at)) = (meta.tx_id.as_deref(), meta.tx_prepared_at) else {
        findings.push(invalid(format!(
            "{state} record with a NULL {}: lazy recovery cannot resolve it",
            if meta.tx_id.is_none() {
                "tx_id"
            } else {
                "tx_prepared_at"
            }
        )));
        return None;
    };
    if meta.tx_version.is_none_or(|v| v < 1) {
        findings.push(invalid(format!(
            "{state} record with tx_version {}: every prepare sets version 1 or more",
            display_opt(meta.tx_version)
        )));
    }
    if !coordinator.present {
        return None;
    }
    let lookup = CoordinatorState::look_up(tx_id, &record.coordinator);
    if let Some(row) = CoordinatorState::row_of_another_id(tx_id, &record.coordinator) {
        findings.push(
            Finding::new(
                Code::CoordinatorRowOfAnotherId,
                format!(
                    "the Coordinator's storage matches this transaction to the row of {:?} \
                     ({lookup}): it compares ids otherwise than by their bytes (a \
                     case-insensitive or blank-padding collation), and ScalarDB's getState \
                     finds that row, so recovery resolves this transaction by another \
                     transaction's state. Ids that differ only in case are one transaction \
                     to this Coordinator",
                    row.tx_id
                ),
            )
            .table(table)
            .key(&record.key)
            .tx_id(Some(tx_id))
            .tx_state(state)
            .coordinator_state(&lookup),
        );
    }
    if let Some(finding) = conflicting_group_states(tx_id, &record.coordinator) {
        findings.push(
            finding
                .table(table)
                .key(&record.key)
                .tx_state(state)
                .coordinator_state(&lookup),
        );
    }
    let (reason, roll_forward) = match &lookup {
        CoordinatorState::Committed { .. } => (Reason::CoordinatorCommitted, true),
        CoordinatorState::Aborted => (Reason::CoordinatorAborted, false),
        CoordinatorState::Absent => (Reason::NoCoordinatorState, false),
        CoordinatorState::Invalid { state: stored, .. } => {
            findings.push(
                Finding::new(
                    Code::InvalidCoordinatorRow,
                    format!(
                        "the Coordinator row deciding this record's transaction holds tx_state \
                         {}: recovery's outcome cannot be predicted",
                        display_opt(*stored)
                    ),
                )
                .table(table)
                .key(&record.key)
                .tx_id(Some(tx_id))
                .tx_state(state)
                .coordinator_state(&lookup),
            );
            return None;
        }
    };
    let outcome = match (roll_forward, state) {
        (true, TxState::Deleted) => Outcome::RollForwardDelete,
        (true, _) => Outcome::RollForwardCommit,
        (false, _) if meta.has_before_image() => Outcome::RollBackRestore,
        (false, _) => Outcome::RollBackDelete,
    };
    let in_flight_at_cut = reason == Reason::NoCoordinatorState
        && as_of
            .epoch_ms
            .is_some_and(|now| now <= prepared_at.saturating_add(TRANSACTION_LIFETIME_MS));
    Some(Prediction {
        storage: None,
        table: table.clone(),
        key: record.key.clone(),
        tx_id: tx_id.to_owned(),
        tx_state: state,
        outcome,
        reason,
        restores_tx_id: (outcome == Outcome::RollBackRestore)
            .then(|| meta.before_tx_id.clone())
            .flatten(),
        in_flight_at_cut,
    })
}

/// A COMMITTED parent row that lists the child beside an ABORTED row under the child's full
/// id: ScalarDB 3.13.0's group commit could leave both (a lazy reader's abort of the full id
/// racing the group's commit; fixed in 3.13.1). `getState` follows the parent, so recovery
/// rolls the records forward, but the reader that wrote ABORTED may already have rolled
/// some of them back, and nothing in the backup says which: a finding, never a guess.
fn conflicting_group_states(tx_id: &str, rows: &CoordinatorRows) -> Option<Finding> {
    let id = GroupCommitId::parse(tx_id)?;
    let parent = rows
        .parent
        .as_ref()
        .filter(|row| row.lists_child(id.child) && row.tx_state == Some(TxState::Committed.id()))?;
    rows.exact
        .as_ref()
        .filter(|row| row.tx_state == Some(TxState::Aborted.id()))?;
    Some(
        Finding::new(
            Code::GroupCommitConflictingStates,
            format!(
                "the Coordinator holds two outcomes for this group-commit transaction: parent \
                 row {} is COMMITTED and lists child {}, and the row under its full id is \
                 ABORTED (ScalarDB 3.13.0's group commit could write both; 3.13.1 fixed it). \
                 Recovery follows the parent and rolls the records forward, but the reader \
                 that wrote ABORTED may have rolled some of them back already, which the \
                 backup cannot show: check this transaction's records by hand",
                parent.tx_id, id.child
            ),
        )
        .tx_id(Some(tx_id)),
    )
}

fn display_opt(value: Option<i64>) -> String {
    value.map_or_else(|| "NULL".to_owned(), |v| v.to_string())
}

fn judge_transactions(
    unresolved: &BTreeMap<String, UnresolvedTx>,
    orphan_group_parents: &HashSet<String>,
    as_of: AsOf,
    predictions: &mut [Prediction],
    findings: &mut Vec<Finding>,
) -> TransactionSummary {
    let mut summary = TransactionSummary {
        unresolved: u64::try_from(unresolved.len()).unwrap_or(u64::MAX),
        ..TransactionSummary::default()
    };
    let mut in_flight = 0;
    for (tx_id, tx) in unresolved {
        let state = tx.state.as_ref().unwrap_or(&CoordinatorState::Absent);
        match state {
            CoordinatorState::Committed { .. } => summary.roll_forward += 1,
            _ => summary.roll_back += 1,
        }
        // The smallest evidence, so that the report does not depend on row order.
        let (first_table, first_key, first_state) = tx
            .table_and_key
            .iter()
            .min()
            .expect("an unresolved tx has records");
        if *state == CoordinatorState::Absent && !tx.committed.is_empty() {
            summary.torn += 1;
            let (committed_table, committed_key) =
                tx.committed.iter().min().expect("checked non-empty");
            findings.push(
                Finding::new(
                    Code::TornTransaction,
                    format!(
                        "transaction has {} COMMITTED record(s) (first: {committed_table} \
                         [{committed_key}]) and {} PREPARED/DELETED record(s) but no Coordinator \
                         state: recovery will abort it and roll back part of a transaction that \
                         is committed elsewhere",
                        tx.committed.len(),
                        tx.table_and_key.len()
                    ),
                )
                .table(first_table)
                .key(first_key)
                .tx_id(Some(tx_id))
                .tx_state(first_state)
                .coordinator_state(state)
                .count(u64::try_from(tx.committed.len() + tx.table_and_key.len()).unwrap_or(0)),
            );
            continue;
        }
        let group_parent = GroupCommitId::parse(tx_id).map(|id| id.parent);
        if *state == CoordinatorState::Absent
            && tx.decisive
            && tx.group_parent_row_missing
            && group_parent.is_some_and(|parent| orphan_group_parents.contains(parent))
        {
            summary.ambiguous += 1;
            findings.push(
                Finding::new(
                    Code::AmbiguousGroupParentMissing,
                    "group-commit child with no Coordinator row, while COMMITTED records of \
                     sibling transactions show their parent row is missing from this copy: the \
                     child may have committed in that group (torn) or been delayed out of it",
                )
                .table(first_table)
                .key(first_key)
                .tx_id(Some(tx_id))
                .tx_state(first_state)
                .coordinator_state(state),
            );
        }
        let expires_after_cut = *state == CoordinatorState::Absent
            && as_of.epoch_ms.is_some_and(|now| {
                now <= tx
                    .newest_prepared_at
                    .saturating_add(TRANSACTION_LIFETIME_MS)
            });
        if expires_after_cut {
            in_flight += 1;
        }
    }
    // A transaction counts as in flight when any of its records was; keep records in step.
    let in_flight_txs: HashSet<String> = predictions
        .iter()
        .filter(|p| p.in_flight_at_cut)
        .map(|p| p.tx_id.clone())
        .collect();
    for prediction in predictions.iter_mut() {
        prediction.in_flight_at_cut = in_flight_txs.contains(prediction.tx_id.as_str());
    }
    summary.in_flight_at_cut = in_flight;
    if in_flight > 0 {
        findings.push(
            Finding::new(
                Code::InFlightAtCut,
                format!(
                    "{in_flight} transaction(s) with no Coordinator state were within their 15 s \
                     lifetime at the restore point: in flight when the backup was cut; the \
                     first reader after the restore aborts them"
                ),
            )
            .count(in_flight),
        );
    }
    summary
}

fn check_watermarks(
    tables: &[TableSummary],
    coordinator: &CoordinatorSummary,
    settings: &AnalysisSettings,
    findings: &mut Vec<Finding>,
) -> Option<i64> {
    let watermark = |t: &TableSummary| t.max_tx_prepared_at.max(t.max_tx_committed_at);
    let marks: Vec<i64> = tables.iter().filter_map(watermark).collect();
    let skew = marks
        .iter()
        .max()
        .zip(marks.iter().min())
        .map(|(max, min)| max.saturating_sub(*min));
    let Some(coordinator_mark) = coordinator.max_tx_created_at else {
        return skew;
    };
    for table in tables {
        let Some(mark) = watermark(table) else {
            continue;
        };
        let behind = coordinator_mark.saturating_sub(mark);
        let ahead = mark.saturating_sub(coordinator_mark);
        let message = if behind > settings.skew_threshold_ms {
            format!(
                "the table's newest write is {} older than the Coordinator's newest entry: the \
                 table may have been copied earlier than the Coordinator (or is simply quiet)",
                human_ms(behind)
            )
        } else if ahead > settings.skew_threshold_ms {
            format!(
                "the table's newest write is {} newer than the Coordinator's newest entry: the \
                 Coordinator may have been copied earlier than the table",
                human_ms(ahead)
            )
        } else {
            continue;
        };
        findings.push(Finding::new(Code::WatermarkSkew, message).table(&table.table));
    }
    skew
}

fn human_ms(ms: i64) -> String {
    if ms >= 120_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!(
            "{:.1} s",
            f64::from(i32::try_from(ms).unwrap_or(i32::MAX)) / 1000.0
        )
    }
}

#[cfg(test)]
mod tests;
