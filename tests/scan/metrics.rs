//! `--metrics-file`: the textfile-collector file, checked by promtool and parsed back,
//! holds the figures of the JSON report of the same run.

use std::os::unix::fs::PermissionsExt as _;

use crate::prom::{gauge, read_metrics};
use crate::support::*;

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn the_metrics_file_holds_the_json_reports_figures() {
    let (dir, path) = sqlite_copy("coordinator-behind");
    let metrics = dir.path().join("scalardb_verify.prom");
    let before = now_seconds().floor();
    let run = scan_json(
        &sqlite_url(&path),
        &["--metrics-file", metrics.to_str().unwrap()],
    );
    let after = now_seconds().ceil();
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let scrape = read_metrics(&metrics);

    let target = report["target"].as_str().unwrap();
    let labels = [("command", "scan"), ("target", target)];
    let value = |name: &str, extra: &[(&str, &str)]| {
        let mut all = labels.to_vec();
        all.extend_from_slice(extra);
        gauge(&scrape, &format!("scalardb_verify_{name}"), &all)
    };
    assert_eq!(report["verdict"], "inconsistent");
    for verdict in ["consistent", "recoverable", "indeterminate", "inconsistent"] {
        let expected = if report["verdict"] == verdict {
            1.0
        } else {
            0.0
        };
        assert_eq!(
            value("verdict", &[("verdict", verdict)]),
            expected,
            "{verdict}"
        );
    }
    let summary = &report["summary"];
    let figure = |v: &serde_json::Value| v.as_u64().unwrap() as f64;
    assert_eq!(
        value("records_scanned", &[]),
        figure(&summary["records_scanned"])
    );
    assert_eq!(
        value("unresolved_records", &[]),
        figure(&summary["unresolved_records"])
    );
    assert_eq!(
        value("torn_transactions", &[]),
        figure(&summary["transactions"]["torn"])
    );
    assert!(value("torn_transactions", &[]) > 0.0);
    assert_eq!(
        value("unresolved_transactions", &[]),
        figure(&summary["transactions"]["unresolved"])
    );
    let findings = report["findings"].as_array().unwrap();
    for severity in ["info", "warning", "error"] {
        let count = findings
            .iter()
            .filter(|f| f["severity"] == severity)
            .count();
        assert_eq!(
            value("findings", &[("severity", severity)]),
            count as f64,
            "{severity}"
        );
    }
    assert!(value("findings", &[("severity", "error")]) > 0.0);
    let checks = report["checks"].as_array().unwrap();
    for outcome in ["passed", "failed", "not_run"] {
        let count = checks.iter().filter(|c| c["outcome"] == outcome).count();
        assert_eq!(
            value("checks", &[("outcome", outcome)]),
            count as f64,
            "{outcome}"
        );
    }
    assert_eq!(value("exit_code", &[]), 1.0);
    let at = value("last_run_timestamp_seconds", &[]);
    assert!(
        (before..=after).contains(&at),
        "{before} <= {at} <= {after}"
    );
    // A scan has no drill figures.
    assert!(!crate::prom::has_metric(
        &scrape,
        "scalardb_verify_restore_duration_seconds"
    ));

    // Readable by a node_exporter running as another account; nothing left beside it.
    let mode = metrics.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["bank.sqlite", "scalardb_verify.prom"]);

    // The next run replaces the file whole.
    let (_clean_dir, clean) = sqlite_copy("clean");
    let run = scan_json(
        &sqlite_url(&clean),
        &["--metrics-file", metrics.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let scrape = read_metrics(&metrics);
    let target = run.json()["target"].as_str().unwrap().to_owned();
    let labels = [("command", "scan"), ("target", target.as_str())];
    let verdict = |v| {
        let mut all = labels.to_vec();
        all.push(("verdict", v));
        gauge(&scrape, "scalardb_verify_verdict", &all)
    };
    assert_eq!(verdict("consistent"), 1.0);
    assert_eq!(verdict("inconsistent"), 0.0);
    assert_eq!(
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "scalardb_verify_verdict")
            .count(),
        4
    );
}

#[test]
fn a_metrics_file_in_a_missing_directory_fails_before_the_scan() {
    let (dir, path) = sqlite_copy("clean");
    let metrics = dir.path().join("no-such-dir/scalardb_verify.prom");
    let run = scan_json(
        &sqlite_url(&path),
        &["--metrics-file", metrics.to_str().unwrap()],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "no report: {}", run.stdout);
    assert!(
        run.stderr.contains("write the metrics file") && run.stderr.contains("no-such-dir"),
        "{}",
        run.stderr
    );
}
