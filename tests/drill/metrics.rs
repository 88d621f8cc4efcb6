//! `drill --metrics-file`: the drill's phases, restore time and RTO as Prometheus gauges,
//! equal to the JSON report's.

use crate::prom::{gauge, read_metrics};
use crate::support::*;

#[test]
fn drill_metrics_hold_the_phases_the_restore_and_the_rto() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("drill.prom");
    let backup = fixture("recoverable").join("bank.sqlite");
    let run = drill(
        &backup,
        &[
            "--recover",
            "--rto-seconds",
            "600",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let scrape = read_metrics(&metrics);
    let backup_label = backup.to_str().unwrap();
    let labels = [("command", "drill"), ("target", backup_label)];
    let value = |name: &str, extra: &[(&str, &str)]| {
        let mut all = labels.to_vec();
        all.extend_from_slice(extra);
        gauge(&scrape, &format!("scalardb_verify_{name}"), &all)
    };
    let drill = &report["drill"];
    assert_eq!(value("verdict", &[("verdict", "recoverable")]), 1.0);
    assert_eq!(
        value("rto_seconds", &[]),
        drill["rto_seconds"].as_f64().unwrap()
    );
    assert_eq!(value("rto_seconds", &[]), 600.0);
    assert_eq!(value("restore_within_rto", &[]), 1.0);
    assert_eq!(value("recovery_rehearsal_succeeded", &[]), 1.0);
    let millis = |v: f64| (v * 1000.0).round();
    assert_eq!(
        millis(value("restore_duration_seconds", &[])),
        millis(drill["restore_seconds"].as_f64().unwrap())
    );
    let phases = drill["phases"].as_array().unwrap();
    assert!(phases.len() >= 4, "{phases:?}");
    for phase in phases {
        let name = phase["name"].as_str().unwrap();
        assert_eq!(
            millis(value("drill_phase_duration_seconds", &[("phase", name)])),
            millis(phase["seconds"].as_f64().unwrap()),
            "{name}"
        );
    }
    let samples = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "scalardb_verify_drill_phase_duration_seconds")
        .count();
    assert_eq!(samples, phases.len());
    // No --check, so no invariant figure.
    assert!(!crate::prom::has_metric(
        &scrape,
        "scalardb_verify_invariants_failed"
    ));
    assert_eq!(
        value("unresolved_records", &[]),
        report["summary"]["unresolved_records"].as_u64().unwrap() as f64
    );
}
