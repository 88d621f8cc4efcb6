//! The human summary: verdict first, then what recovery will do, then the findings.

use std::io::{self, Write};

use super::{Report, describe};
use crate::analyze::{Outcome, Severity, TableStatus, Verdict};

/// Findings beyond this many are left to the machine-readable formats.
const MAX_FINDINGS_SHOWN: usize = 40;

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let summary = &report.summary;
    writeln!(
        out,
        "scalardb-verify {} — {}",
        report.tool.version, report.target
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "verdict: {}  ({})",
        report.verdict.as_str().to_uppercase(),
        explain(report.verdict)
    )?;
    if let Some(as_of) = report.as_of.epoch_ms {
        let when = epoch_ms_text(as_of);
        let how = if report.as_of.estimated {
            "estimated from the newest timestamp in the data"
        } else {
            "given"
        };
        writeln!(out, "restore point: {when} ({how})")?;
    }
    writeln!(out)?;
    if report.storages.len() > 1 {
        for storage in &report.storages {
            writeln!(
                out,
                "storage {} ({} {}): {} table(s), {} records{}",
                storage.name,
                storage.kind,
                storage.target,
                storage.tables.len(),
                storage.records,
                if storage.holds_coordinator {
                    ", holds the Coordinator"
                } else {
                    ""
                }
            )?;
            for ignored in &storage.ignored {
                writeln!(out, "  ignored {}: {}", ignored.table, ignored.reason)?;
            }
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "{:<40} {:>12} {:>10} {:>8} {:>8}",
        "table", "records", "unresolved", "forward", "back"
    )?;
    let several = report.storages.len() > 1;
    for table in &summary.tables {
        let shown = match (&table.storage, several) {
            (Some(storage), true) => format!("{storage}:{}", table.table),
            _ => table.table.to_string(),
        };
        let name = match table.status {
            TableStatus::Scanned => shown,
            TableStatus::Missing => format!("{shown} (missing)"),
            TableStatus::Failed => format!("{shown} (scan failed)"),
        };
        writeln!(
            out,
            "{:<40} {:>12} {:>10} {:>8} {:>8}",
            name, table.records, table.unresolved, table.roll_forward, table.roll_back
        )?;
    }
    let coordinator = &summary.coordinator;
    if coordinator.present {
        writeln!(
            out,
            "{:<40} {:>12} rows: {} committed, {} aborted{}",
            coordinator
                .table
                .as_ref()
                .map_or_else(|| "coordinator".to_owned(), ToString::to_string),
            coordinator.rows,
            coordinator.committed,
            coordinator.aborted,
            if coordinator.group_commit {
                ", group commit"
            } else {
                ""
            }
        )?;
    } else {
        writeln!(out, "{:<40} missing", "coordinator")?;
    }
    writeln!(out)?;
    let tx = &summary.transactions;
    writeln!(
        out,
        "{} records scanned; {} unresolved in {} transaction(s): {} to roll forward, {} to roll back; {} torn, {} ambiguous, {} in flight at the cut",
        summary.records_scanned,
        summary.unresolved_records,
        tx.unresolved,
        tx.roll_forward,
        tx.roll_back,
        tx.torn,
        tx.ambiguous,
        tx.in_flight_at_cut
    )?;
    if let Some(skew) = summary.watermark_skew_ms {
        writeln!(out, "watermark skew between tables: {skew} ms")?;
    }
    let cut = &summary.cut;
    if !cut.reason.is_empty() {
        let judged = if cut.proven { "proven" } else { "not proven" };
        writeln!(out, "cut {judged}: {}", cut.reason)?;
    }
    if let Some(at_risk) = cut
        .at_risk
        .as_ref()
        .filter(|a| a.proven_by_write_sets + a.torn_by_write_sets > 0)
    {
        writeln!(
            out,
            "  at-risk transactions judged by their write sets: {} proven intact, {} torn",
            at_risk.proven_by_write_sets, at_risk.torn_by_write_sets
        )?;
    }
    for lag in cut.lags.iter().filter(|l| l.significant) {
        writeln!(
            out,
            "  {} lags {} by {} ms (chance of no write at its rate: {:.1e})",
            lag.table, lag.behind, lag.lag_ms, lag.p_no_write.0
        )?;
    }
    let counts = [
        Outcome::RollForwardCommit,
        Outcome::RollForwardDelete,
        Outcome::RollBackRestore,
        Outcome::RollBackDelete,
    ]
    .map(|o| report.predictions.iter().filter(|p| p.outcome == o).count());
    if counts.iter().any(|&c| c > 0) {
        writeln!(
            out,
            "lazy recovery will: commit {}, delete {} (roll forward); restore {}, delete {} (roll back)",
            counts[0], counts[1], counts[2], counts[3]
        )?;
    }
    if let Some(drill) = &report.drill {
        render_drill(drill, out)?;
    }
    if !report.findings.is_empty() {
        writeln!(out)?;
        writeln!(out, "findings:")?;
        for finding in report.findings.iter().take(MAX_FINDINGS_SHOWN) {
            let marker = match finding.severity {
                Severity::Error => "error",
                Severity::Warning => "warn ",
                Severity::Info => "info ",
            };
            let table = finding.table.as_deref().unwrap_or("-");
            writeln!(out, "  {marker} {table}: {}", describe(finding))?;
        }
        if report.findings.len() > MAX_FINDINGS_SHOWN {
            writeln!(
                out,
                "  … and {} more (use --format json or csv for all)",
                report.findings.len() - MAX_FINDINGS_SHOWN
            )?;
        }
    }
    Ok(())
}

fn explain(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Consistent => {
            "nothing unresolved; the restore point is transactionally consistent"
        }
        Verdict::Recoverable => {
            "unresolved records, all of which lazy recovery resolves without contradiction"
        }
        Verdict::Inconsistent => {
            "recovery will contradict records that are already resolved: the backup is torn"
        }
        Verdict::Indeterminate => "a check could not run or the evidence cannot decide",
    }
}

fn render_drill(drill: &crate::drill::DrillSection, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "drill: {} ({}), run {}",
        drill.backup, drill.format, drill.run_id
    )?;
    let phases: Vec<String> = drill
        .phases
        .iter()
        .map(|p| format!("{} {:.1} s", p.name, p.seconds))
        .collect();
    writeln!(out, "  phases: {}", phases.join(", "))?;
    for record in drill.backups.iter().filter(|_| drill.backups.len() > 1) {
        let phases: Vec<String> = record
            .phases
            .iter()
            .map(|p| format!("{} {:.1} s", p.name, p.seconds))
            .collect();
        writeln!(
            out,
            "  storage {}: {} ({}, {}): {}",
            record.storage.as_deref().unwrap_or("-"),
            record.path.as_deref().unwrap_or("no backup"),
            record.format,
            record.runtime,
            phases.join(", ")
        )?;
    }
    if let (Some(rto), Some(within)) = (drill.rto_seconds, drill.restore_within_rto) {
        writeln!(
            out,
            "  restore {:.1} s against an RTO of {rto} s: {}",
            drill.restore_seconds,
            if within { "within" } else { "OVER" }
        )?;
    }
    if let Some(recovery) = &drill.recovery {
        let w = &recovery.writes;
        writeln!(
            out,
            "  recovery rehearsal: committed {}, deleted {} (forward); restored {}, deleted {} (back); {} ABORTED state(s) written; afterwards {} unresolved, {}",
            w.committed,
            w.deleted_forward,
            w.restored,
            w.deleted_back,
            w.abort_states,
            recovery.unresolved_after,
            recovery.verdict_after.as_str()
        )?;
        for unexpected in &w.unexpected {
            writeln!(out, "    unexpected: {unexpected}")?;
        }
    }
    for invariant in &drill.invariants {
        writeln!(
            out,
            "  invariant {}: {} ({})",
            invariant.name,
            if invariant.passed { "passed" } else { "FAILED" },
            invariant.message
        )?;
    }
    if let Some(nodes) = &drill.nodes {
        render_nodes(nodes, out)?;
    }
    if let Some(kept) = &drill.kept_at {
        writeln!(out, "  kept running: {kept}")?;
    }
    Ok(())
}

fn render_nodes(nodes: &crate::analyze::NodeComparison, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "  nodes compared: {} records, {} differ between nodes, {} on some nodes only",
        nodes.records, nodes.divergent, nodes.on_some_nodes_only
    )?;
    for node in &nodes.nodes {
        writeln!(
            out,
            "    {}: {} records, newest write {}, behind on {}",
            node.name,
            node.records,
            node.newest_write_ms
                .map_or_else(|| "none".to_owned(), epoch_ms_text),
            node.behind
        )?;
    }
    if let Some(skew) = nodes.max_skew_ms {
        writeln!(out, "    snapshots at least {skew} ms apart")?;
    }
    for divergence in &nodes.evidence {
        let copies: Vec<String> = divergence
            .copies
            .iter()
            .map(|view| match &view.copy {
                Some(copy) => format!(
                    "{} {} v{} tx {}{}",
                    view.node,
                    crate::model::StoredState::from_column(copy.tx_state),
                    copy.tx_version.map_or("?".to_owned(), |v| v.to_string()),
                    copy.tx_id.as_deref().unwrap_or("NULL"),
                    if view.behind { " (behind)" } else { "" }
                ),
                None => format!("{} absent", view.node),
            })
            .collect();
        writeln!(
            out,
            "    {} {}: {}",
            divergence.table,
            divergence.key,
            copies.join("; ")
        )?;
    }
    Ok(())
}

/// An epoch-millisecond timestamp as RFC 3339, or the number if it is out of range.
fn epoch_ms_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}
