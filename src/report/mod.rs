//! Reports: built once as data (`Report`, one serde type), then rendered by one function per
//! format. Nothing here reads a database or decides a verdict.

mod csv;
mod junit;
pub mod prometheus;
pub mod schema;
mod terminal;

use std::io::{self, Write};

use serde::Serialize;

use crate::analyze::{
    Analysis, AsOf, CheckName, CheckStatus, CoordinatorSummary, CutSummary, Finding, Prediction,
    Severity, StorageSummary, TableSummary, TransactionSummary, Verdict,
};
use crate::drill::DrillSection;
use crate::model::TableRef;

/// Bumped whenever a field changes meaning or disappears; adding a field does not bump it.
/// 2: a report is of a deployment of one or more storages (`storages`,
/// `coordinator_storage`; `storage` on every table, finding, prediction and check), and
/// `target` is the Coordinator's storage (with `storages` naming each).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable summary (the default on a terminal).
    Terminal,
    /// The full report as one JSON document (the default when stdout is not a terminal).
    Json,
    /// One row per finding.
    Csv,
    /// JUnit XML: one test case per check per table, for CI dashboards.
    Junit,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Report {
    /// Bumped whenever a field changes meaning or disappears.
    #[schemars(schema_with = "schema::schema_version")]
    pub schema_version: u32,
    pub tool: ToolInfo,
    /// The scanned target (of several storages: the Coordinator's), with any password
    /// removed.
    pub target: String,
    /// Every storage scanned: kind, target (no password), tables, counts, watermarks, and
    /// what was found there but left out.
    pub storages: Vec<StorageSummary>,
    /// The storage ScalarDB reads the Coordinator from.
    pub coordinator_storage: Option<String>,
    pub verdict: Verdict,
    pub as_of: AsOf,
    pub summary: Summary,
    pub checks: Vec<CheckResult>,
    pub findings: Vec<Finding>,
    pub predictions: Vec<Prediction>,
    /// Present in the report of a `drill`: the restore, the rehearsal, the invariants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillSection>,
}

/// What a run adds to its report: the command, when it ended, its exit code. The metrics
/// and the history line are rendered from both.
#[derive(Clone, Copy, Debug)]
pub struct RunFacts {
    /// `scan` or `drill`.
    pub command: &'static str,
    pub finished_at: jiff::Timestamp,
    pub exit_code: u8,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub records_scanned: u64,
    pub unresolved_records: u64,
    pub roll_forward: u64,
    pub roll_back: u64,
    pub transactions: TransactionSummary,
    pub watermark_skew_ms: Option<i64>,
    pub tables: Vec<TableSummary>,
    pub coordinator: CoordinatorSummary,
    /// The proof from the Coordinator's write sets (3.19 write-set logging), when it ran:
    /// how many transactions were checked, skipped and why, proven and torn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_sets: Option<crate::analyze::WriteSetSummary>,
    /// Whether the backup's parts were copied at one instant: their recorded instants,
    /// the spread, the transactions at risk in it, and each table's lag with its
    /// significance.
    pub cut: CutSummary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Passed,
    Failed,
    /// The check could not run: never a pass.
    NotRun,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CheckResult {
    pub check: CheckName,
    /// The storage of the table (or of the Coordinator) checked.
    pub storage: Option<String>,
    /// The table checked, or the Coordinator table for `coordinator-table`.
    pub table: String,
    pub outcome: CheckOutcome,
    /// Messages of the findings behind this result, errors and warnings alike.
    pub messages: Vec<String>,
}

impl Report {
    pub fn new(analysis: Analysis, target: String) -> Self {
        let checks = checks(&analysis);
        let cut = analysis.cut.clone();
        let summary = Summary {
            records_scanned: analysis.records_scanned(),
            unresolved_records: analysis.unresolved_records(),
            roll_forward: analysis.tables.iter().map(|t| t.roll_forward).sum(),
            roll_back: analysis.tables.iter().map(|t| t.roll_back).sum(),
            transactions: analysis.transactions,
            watermark_skew_ms: analysis.watermark_skew_ms,
            tables: analysis.tables,
            coordinator: analysis.coordinator,
            write_sets: analysis.write_sets,
            cut,
        };
        Self {
            schema_version: SCHEMA_VERSION,
            tool: ToolInfo {
                name: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
            },
            target,
            coordinator_storage: analysis
                .storages
                .iter()
                .find(|s| s.holds_coordinator)
                .map(|s| s.name.clone()),
            storages: analysis.storages,
            verdict: analysis.verdict,
            as_of: analysis.as_of,
            summary,
            checks,
            findings: analysis.findings,
            predictions: analysis.predictions,
            drill: None,
        }
    }

    pub fn with_drill(mut self, drill: DrillSection) -> Self {
        if drill.nodes.is_some() {
            let findings: Vec<&Finding> = self
                .findings
                .iter()
                .filter(|f| f.check == CheckName::NodeConsistency)
                .collect();
            let failed = findings.iter().any(|f| f.severity == Severity::Error);
            self.checks.push(CheckResult {
                check: CheckName::NodeConsistency,
                storage: None,
                table: "(nodes)".to_owned(),
                outcome: if failed {
                    CheckOutcome::Failed
                } else {
                    CheckOutcome::Passed
                },
                messages: findings.iter().map(|f| describe(f)).collect(),
            });
        }
        self.drill = Some(drill);
        self
    }

    /// What was verified, stable from run to run: the backup of a drill (its report's
    /// target names the disposable instance), the target of a scan.
    pub fn subject(&self) -> &str {
        self.drill
            .as_ref()
            .map_or(self.target.as_str(), |drill| drill.backup.as_str())
    }

    /// The run's metrics in Prometheus' text format (node_exporter's textfile collector).
    pub fn render_metrics(&self, run: &RunFacts, out: &mut dyn Write) -> io::Result<()> {
        prometheus::render(self, run, out)
    }

    pub fn render(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        match format {
            Format::Terminal => terminal::render(self, out),
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, self)?;
                writeln!(out)
            }
            Format::Csv => csv::render(self, out),
            Format::Junit => junit::render(self, out),
        }
    }
}

fn checks(analysis: &Analysis) -> Vec<CheckResult> {
    let result =
        |check: CheckName, table: Option<&TableRef>, storage: Option<&String>, name: String| {
            let (outcome, findings) = match analysis.check_status(check, table) {
                CheckStatus::Passed(findings) => (CheckOutcome::Passed, findings),
                CheckStatus::Failed(findings) => (CheckOutcome::Failed, findings),
                CheckStatus::NotRun => (CheckOutcome::NotRun, Vec::new()),
            };
            CheckResult {
                check,
                storage: storage.cloned(),
                table: name,
                outcome,
                messages: findings.iter().map(|f| describe(f)).collect(),
            }
        };
    let mut checks = Vec::new();
    for table in &analysis.tables {
        let pause = analysis.pause_window.map(|_| CheckName::PauseWindow);
        for check in CheckName::PER_TABLE.into_iter().chain(pause) {
            checks.push(result(
                check,
                Some(&table.table),
                table.storage.as_ref(),
                table.table.to_string(),
            ));
        }
    }
    let coordinator_name = analysis
        .coordinator
        .table
        .as_ref()
        .map_or_else(|| "coordinator".to_owned(), ToString::to_string);
    let coordinator_storage = analysis
        .storages
        .iter()
        .find(|s| s.holds_coordinator)
        .map(|s| &s.name);
    checks.push(result(
        CheckName::CoordinatorTable,
        None,
        coordinator_storage,
        coordinator_name,
    ));
    // The cut's judgement across parts (their instants, the window at risk) is about the
    // whole backup.
    if !analysis.cut.parts.is_empty() {
        checks.push(result(
            CheckName::WatermarkSkew,
            None,
            None,
            "(cut)".to_owned(),
        ));
    }
    // Findings with no table (discovery, in-flight counts) belong to no per-table check;
    // a failing one still has to fail somewhere visible.
    if analysis.tables.is_empty() {
        checks.push(result(
            CheckName::TableScan,
            None,
            None,
            "(discovery)".to_owned(),
        ));
    }
    checks
}

/// One line describing a finding, with its evidence.
pub fn describe(finding: &Finding) -> String {
    let mut line = format!("[{}] {}", finding.code.as_str(), finding.message);
    let mut evidence = Vec::new();
    if let Some(key) = &finding.key {
        evidence.push(format!("key {key}"));
    }
    if let Some(tx_id) = &finding.tx_id {
        evidence.push(format!("tx {tx_id}"));
    }
    if let Some(state) = &finding.tx_state {
        evidence.push(format!("record {state}"));
    }
    if let Some(state) = &finding.coordinator_state {
        evidence.push(format!("coordinator {state}"));
    }
    if !evidence.is_empty() {
        line.push_str(&format!(" ({})", evidence.join("; ")));
    }
    line
}
