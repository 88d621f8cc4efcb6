//! `--history DIR` and `history DIR`: real runs append their summaries, the trend reads
//! them back.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn history_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn history(args: &[&str]) -> Run {
    let output = Command::new(BIN)
        .arg("history")
        .args(args)
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn mode(path: &Path) -> u32 {
    path.metadata().unwrap().permissions().mode() & 0o777
}

#[test]
fn each_run_appends_its_summary_and_history_shows_the_trend() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("state/history");
    let dir_arg = dir.to_str().unwrap();
    let mut reports = Vec::new();
    for (state, code) in [("torn", 1), ("clean", 0)] {
        let (_copy_dir, path) = sqlite_copy(state);
        let run = scan_json(&sqlite_url(&path), &["--history", dir_arg]);
        assert_eq!(run.code, code, "{state}: {}", run.stderr);
        reports.push((run.json(), code));
    }
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("history.jsonl")), 0o600);
    let lines = history_lines(&dir);
    assert_eq!(lines.len(), 2);
    for (line, (report, code)) in lines.iter().zip(&reports) {
        assert_eq!(line["command"], "scan");
        assert_eq!(line["target"], report["target"]);
        assert_eq!(line["verdict"], report["verdict"]);
        assert_eq!(line["exit_code"], *code);
        assert_eq!(
            line["records_scanned"],
            report["summary"]["records_scanned"]
        );
        assert_eq!(
            line["torn_transactions"],
            report["summary"]["transactions"]["torn"]
        );
        for severity in ["error", "warning", "info"] {
            let count = report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["severity"] == severity)
                .count();
            assert_eq!(line["findings"][severity], count, "{severity}");
        }
        assert_eq!(line["restore_seconds"], Value::Null);
        let at: jiff::Timestamp = line["finished_at"].as_str().unwrap().parse().unwrap();
        assert!(jiff::Timestamp::now().duration_since(at).as_secs() < 600);
    }

    let shown = history(&[dir_arg]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let rows: Vec<&str> = shown
        .stdout
        .lines()
        .filter(|l| l.contains(" scan "))
        .collect();
    assert_eq!(rows.len(), 2, "{}", shown.stdout);
    assert!(
        rows[0].contains("inconsistent") && rows[1].contains("consistent"),
        "{rows:?}"
    );
    assert!(
        shown.stdout.contains("no drill in these runs"),
        "{}",
        shown.stdout
    );

    // A drill adds its restore time and RTO, charted against each other.
    let backup = fixture("recoverable").join("bank.sqlite");
    let output = Command::new(BIN)
        .arg("drill")
        .arg(&backup)
        .args(["--runtime", "local", "--quiet", "--format", "json"])
        .args(["--rto-seconds", "600", "--history", dir_arg])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let lines = history_lines(&dir);
    assert_eq!(lines.len(), 3);
    let drill = &lines[2];
    assert_eq!(drill["command"], "drill");
    assert_eq!(drill["backup"], backup.to_str().unwrap());
    assert_eq!(drill["restore_seconds"], report["drill"]["restore_seconds"]);
    assert_eq!(drill["rto_seconds"], 600);
    assert_eq!(drill["restore_within_rto"], true);

    let shown = history(&[dir_arg, "--last", "1"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown.stdout.contains("(3 run(s), the last 1 shown)"),
        "{}",
        shown.stdout
    );
    assert!(!shown.stdout.contains(" scan "), "{}", shown.stdout);
    let chart: Vec<&str> = shown
        .stdout
        .lines()
        .filter(|l| l.contains("% of the RTO"))
        .collect();
    assert_eq!(chart.len(), 1, "{}", shown.stdout);
    assert!(chart[0].contains('|'), "{}", chart[0]);
}

#[test]
fn concurrent_runs_append_whole_lines() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("history");
    let (_copy_dir, path) = sqlite_copy("recoverable");
    let url = sqlite_url(&path);
    let runs: Vec<_> = (0..8)
        .map(|_| {
            Command::new(BIN)
                .args(["scan", &url, "--quiet", "--format", "csv", "--history"])
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut run in runs {
        assert_eq!(run.wait().unwrap().code(), Some(0));
    }
    let lines = history_lines(&dir);
    assert_eq!(lines.len(), 8);
    assert!(lines.iter().all(|l| l["verdict"] == "recoverable"));
}

#[test]
fn a_symlinked_history_file_is_refused_before_the_scan() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("history");
    std::fs::create_dir(&dir).unwrap();
    let elsewhere = work.path().join("elsewhere");
    std::fs::write(&elsewhere, "precious\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("history.jsonl")).unwrap();
    let (_copy_dir, path) = sqlite_copy("clean");
    let run = scan_json(&sqlite_url(&path), &["--history", dir.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("symbolic link") && run.stderr.contains("history.jsonl"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "precious\n");
    // Reading the trend refuses it too.
    let shown = history(&[dir.to_str().unwrap()]);
    assert_eq!(shown.code, 2, "{}", shown.stdout);
    assert!(shown.stderr.contains("symbolic link"), "{}", shown.stderr);
}

#[test]
fn history_of_a_directory_without_history_names_the_file() {
    let work = tempfile::tempdir().unwrap();
    let shown = history(&[work.path().to_str().unwrap()]);
    assert_eq!(shown.code, 2, "{}", shown.stdout);
    assert!(
        shown.stderr.contains("history.jsonl") && shown.stderr.contains("No such file"),
        "{}",
        shown.stderr
    );
    let help = history(&["--help"]);
    assert_eq!(help.code, 0);
    for taught in ["--history", "history.jsonl", "--last", "RTO"] {
        assert!(help.stdout.contains(taught), "{taught}: {}", help.stdout);
    }
}

#[test]
fn a_run_that_ends_without_a_report_is_recorded_as_failed() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("history");
    let metrics = work.path().join("scalardb_verify.prom");
    let outputs = [
        "--history",
        dir.to_str().unwrap(),
        "--metrics-file",
        metrics.to_str().unwrap(),
    ];
    let (_copy_dir, path) = sqlite_copy("clean");
    let run = scan_json(&sqlite_url(&path), &outputs);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Nothing listens on port 1: the scan cannot reach its target (exit 3).
    let target = "postgres://verifier@127.0.0.1:1/app";
    let mut args = outputs.to_vec();
    args.extend(["--connect-timeout", "1"]);
    let run = scan_json(target, &args);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);

    let scrape = crate::prom::read_metrics(&metrics);
    let labels = [("command", "scan"), ("target", target)];
    let value = |name: &str, extra: &[(&str, &str)]| {
        let mut all = labels.to_vec();
        all.extend_from_slice(extra);
        crate::prom::gauge(&scrape, &format!("scalardb_verify_{name}"), &all)
    };
    assert_eq!(value("exit_code", &[]), 3.0);
    for verdict in ["consistent", "recoverable", "indeterminate", "inconsistent"] {
        assert_eq!(value("verdict", &[("verdict", verdict)]), 0.0, "{verdict}");
    }
    assert!(value("last_run_timestamp_seconds", &[]) > 1.7e9);
    assert!(!crate::prom::has_metric(
        &scrape,
        "scalardb_verify_records_scanned"
    ));

    let lines = history_lines(&dir);
    assert_eq!(lines.len(), 2);
    let failed = &lines[1];
    assert_eq!(failed["target"], target);
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(failed["verdict"], Value::Null);
    assert_eq!(failed["records_scanned"], Value::Null);
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("127.0.0.1"), "{error}");

    let shown = history(&[dir.to_str().unwrap()]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("(no report)"), "{}", shown.stdout);
    assert!(shown.stdout.contains("error: "), "{}", shown.stdout);
}
