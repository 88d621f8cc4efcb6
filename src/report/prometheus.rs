//! Prometheus metrics in the text exposition format that node_exporter's textfile collector
//! reads: one gauge family per figure of the report, each sample labelled with the command
//! and what was verified, so several jobs' files can share one collector directory.
//!
//! Every figure is a gauge: a file describes one run, and the next run replaces it, so no
//! value here only ever grows (which is what a `_total` counter promises). Rendered from the
//! report and the run's facts only: nothing here counts or decides anything itself.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{CheckOutcome, Report, RunFacts};
use crate::analyze::{Severity, Verdict};

/// Every metric name starts with this.
pub const PREFIX: &str = "scalardb_verify_";

pub fn render(report: &Report, run: &RunFacts, out: &mut dyn Write) -> io::Result<()> {
    let mut text = Metrics::new(run, report.subject());
    text.run_families(run, Some(report.verdict));
    let summary = &report.summary;
    let single = |value: u64| [(vec![], value.to_string())];
    text.family(
        "records_scanned",
        "Records scanned in the ScalarDB tables.",
        &single(summary.records_scanned),
    );
    text.family(
        "unresolved_records",
        "Records left PREPARED or DELETED, which lazy recovery will resolve.",
        &single(summary.unresolved_records),
    );
    text.family(
        "unresolved_transactions",
        "Transactions with at least one unresolved record.",
        &single(summary.transactions.unresolved),
    );
    text.family(
        "torn_transactions",
        "Transactions the backup tore apart (committed in part, rolled back in part).",
        &single(summary.transactions.torn),
    );
    text.family(
        "ambiguous_transactions",
        "Transactions whose outcome the evidence cannot decide.",
        &single(summary.transactions.ambiguous),
    );
    let findings: Vec<_> = Severity::ALL
        .iter()
        .map(|severity| {
            let count = report
                .findings
                .iter()
                .filter(|f| f.severity == *severity)
                .count();
            (vec![("severity", severity.as_str())], count.to_string())
        })
        .collect();
    text.family("findings", "Findings of the run, by severity.", &findings);
    let checks: Vec<_> = [
        (CheckOutcome::Passed, "passed"),
        (CheckOutcome::Failed, "failed"),
        (CheckOutcome::NotRun, "not_run"),
    ]
    .into_iter()
    .map(|(outcome, name)| {
        let count = report
            .checks
            .iter()
            .filter(|c| c.outcome == outcome)
            .count();
        (vec![("outcome", name)], count.to_string())
    })
    .collect();
    text.family(
        "checks",
        "Checks of the run (one per check per table), by outcome.",
        &checks,
    );
    if let Some(drill) = &report.drill {
        let phases: Vec<_> = drill
            .phases
            .iter()
            .map(|phase| (vec![("phase", phase.name)], seconds(phase.seconds)))
            .collect();
        text.family(
            "drill_phase_duration_seconds",
            "How long each phase of the drill took.",
            &phases,
        );
        text.family(
            "restore_duration_seconds",
            "How long the restore into the disposable instance took.",
            &[(vec![], seconds(drill.restore_seconds))],
        );
        if let Some(rto) = drill.rto_seconds {
            text.family(
                "rto_seconds",
                "The recovery time objective the restore was held to (--rto-seconds).",
                &single(rto),
            );
        }
        if let Some(within) = drill.restore_within_rto {
            text.family(
                "restore_within_rto",
                "1 if the restore took no longer than the RTO, else 0.",
                &[(vec![], u8::from(within).to_string())],
            );
        }
        if let Some(recovery) = &drill.recovery {
            text.family(
                "recovery_rehearsal_succeeded",
                "1 if the recovery rehearsal (--recover) left nothing unresolved and every \
                 write hit the predicted record, else 0.",
                &[(vec![], u8::from(recovery.succeeded).to_string())],
            );
        }
        if !drill.invariants.is_empty() {
            let failed = drill.invariants.iter().filter(|i| !i.passed).count();
            text.family(
                "invariants_failed",
                "Invariants (--check) that failed.",
                &[(vec![], failed.to_string())],
            );
        }
    }
    out.write_all(text.text.as_bytes())
}

/// The metrics of a run that ended without a report (it could not reach or restore its
/// target): when, and its exit code; every verdict gauge 0, no figures. A previous run's
/// file is replaced, so its verdict does not outlive a run that failed.
pub fn render_failed(subject: &str, run: &RunFacts, out: &mut dyn Write) -> io::Result<()> {
    let mut text = Metrics::new(run, subject);
    text.run_families(run, None);
    out.write_all(text.text.as_bytes())
}

struct Metrics {
    text: String,
    /// The labels every sample carries, rendered.
    common: String,
}

type Sample<'a> = (Vec<(&'a str, &'a str)>, String);

impl Metrics {
    fn new(run: &RunFacts, subject: &str) -> Self {
        Self {
            text: String::new(),
            common: format!(
                "command=\"{}\",target=\"{}\"",
                escape(run.command),
                escape(subject)
            ),
        }
    }

    /// What every run has, with or without a report.
    fn run_families(&mut self, run: &RunFacts, verdict: Option<Verdict>) {
        self.family(
            "build_info",
            "The tool's version (always 1).",
            &[(vec![("version", env!("CARGO_PKG_VERSION"))], "1".to_owned())],
        );
        self.family(
            "last_run_timestamp_seconds",
            "When the run ended, as a Unix timestamp.",
            &[(vec![], timestamp_seconds(run.finished_at))],
        );
        let verdicts: Vec<_> = Verdict::ALL
            .iter()
            .map(|v| {
                (
                    vec![("verdict", v.as_str())],
                    u8::from(Some(*v) == verdict).to_string(),
                )
            })
            .collect();
        self.family(
            "verdict",
            "The run's verdict: 1 for the verdict given, 0 for the others (all 0: the run \
             ended without one).",
            &verdicts,
        );
        self.family(
            "exit_code",
            "The run's exit code (0 passed, 1 failed a check, 2 usage, 3 unreachable, \
             4 indeterminate, 130 interrupted).",
            &[(vec![], run.exit_code.to_string())],
        );
    }

    fn family(&mut self, name: &str, help: &str, samples: &[Sample<'_>]) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(self.text, "# TYPE {PREFIX}{name} gauge");
        for (labels, value) in samples {
            let mut rendered = self.common.clone();
            for (label, label_value) in labels {
                let _ = write!(rendered, ",{label}=\"{}\"", escape(label_value));
            }
            let _ = writeln!(self.text, "{PREFIX}{name}{{{rendered}}} {value}");
        }
    }
}

/// A label value as the exposition format quotes it.
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn seconds(value: f64) -> String {
    format!("{value:.3}")
}

/// Seconds since the epoch, to the millisecond, without going through a float.
fn timestamp_seconds(at: jiff::Timestamp) -> String {
    let ms = at.as_millisecond();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn timestamps_keep_their_milliseconds() {
        let at = jiff::Timestamp::from_millisecond(1_700_000_001_005).unwrap();
        assert_eq!(timestamp_seconds(at), "1700000001.005");
    }
}
