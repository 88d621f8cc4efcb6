//! Report formats and exit codes, read back the way their consumers read them.

use crate::support::*;

#[test]
fn csv_has_a_header_and_one_row_per_finding() {
    let (_dir, path) = sqlite_copy("coordinator-behind");
    let run = scan(&[&sqlite_url(&path), "--format", "csv", "--quiet"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "code");
    assert_eq!(&headers[9], "message");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let expected = expected("coordinator-behind");
    assert_eq!(rows.len(), expected["findings"].as_array().unwrap().len());
    assert_eq!(&rows[0][0], "torn-transaction");
    assert_eq!(&rows[0][1], "error");
    assert_eq!(&rows[0][4], "account_id=5, seq=10");
    assert_eq!(&headers[10], "storage");
    assert_eq!(
        &rows[0][10], "sqlite",
        "a URL's one storage is named by its kind"
    );
}

#[test]
fn junit_has_one_case_per_check_per_table_and_fails_the_torn_one() {
    let (_dir, path) = sqlite_copy("torn");
    let run = scan(&[&sqlite_url(&path), "--format", "junit", "--quiet"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = quick_junit::Report::deserialize_from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}", run.stdout));
    let atomicity = report
        .test_suites
        .iter()
        .find(|s| s.name.as_str() == "transaction-atomicity")
        .expect("a transaction-atomicity suite");
    let cases: Vec<(&str, bool)> = atomicity
        .test_cases
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                matches!(c.status, quick_junit::TestCaseStatus::Success { .. }),
            )
        })
        .collect();
    assert_eq!(cases, [("bank.accounts", false), ("ledger.entries", false)]);
    let per_table_suites = report
        .test_suites
        .iter()
        .filter(|s| s.name.as_str() != "coordinator-table")
        .count();
    assert_eq!(per_table_suites, 6);
}

#[test]
fn terminal_output_leads_with_the_verdict() {
    let (_dir, path) = sqlite_copy("recoverable");
    let run = scan(&[&sqlite_url(&path), "--format", "terminal", "--quiet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("verdict: RECOVERABLE"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "lazy recovery will: commit 4, delete 1 (roll forward); restore 4, delete 2 (roll back)"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn json_is_the_default_when_stdout_is_not_a_terminal() {
    let (_dir, path) = sqlite_copy("clean");
    let run = scan(&[&sqlite_url(&path), "--quiet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["verdict"], "consistent");
    assert_eq!(report["summary"]["records_scanned"], 29);
}

#[test]
fn strict_and_fail_on_turn_passes_into_failures() {
    let (_dir, path) = sqlite_copy("recoverable");
    let url = sqlite_url(&path);
    assert_eq!(scan_json(&url, &[]).code, 0);
    assert_eq!(scan_json(&url, &["--strict"]).code, 1);
    assert_eq!(scan_json(&url, &["--fail-on", "info"]).code, 1);
    assert_eq!(scan_json(&url, &["--fail-on", "warning"]).code, 0);
}

#[test]
fn output_writes_the_report_to_a_file_and_nothing_to_stdout() {
    let (dir, path) = sqlite_copy("torn");
    let out = dir.path().join("report.json");
    let run = scan(&[
        &sqlite_url(&path),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["verdict"], "inconsistent");
}

#[test]
fn a_properties_file_gives_the_same_report_as_the_url() {
    let (dir, path) = sqlite_copy("torn");
    let properties = dir.path().join("database.properties");
    std::fs::write(
        &properties,
        format!(
            "scalar.db.storage=jdbc\nscalar.db.contact_points=jdbc:sqlite:{}?busy_timeout=10000\n\
             scalar.db.username=\nscalar.db.password=\n",
            path.display()
        ),
    )
    .unwrap();
    let run = scan(&[
        "--properties",
        properties.to_str().unwrap(),
        "--format",
        "json",
        "--quiet",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_same_report(&normalized(run.json()), &expected("torn"), "properties");
}

#[test]
fn a_custom_coordinator_namespace_is_followed() {
    let (_dir, path) = sqlite_copy("recoverable");
    sqlite_exec(
        &path,
        r#"ALTER TABLE "coordinator$state" RENAME TO "coord$state";"#,
    );
    let url = sqlite_url(&path);
    let default = scan_json(&url, &[]);
    assert_eq!(
        default.code, 4,
        "without the namespace the Coordinator is missing"
    );
    let custom = scan_json(&url, &["--coordinator-namespace", "coord"]);
    assert_eq!(custom.code, 0, "{}", custom.stderr);
    assert_eq!(custom.json()["verdict"], "recoverable");
}

#[test]
fn include_and_exclude_select_tables() {
    let (_dir, path) = sqlite_copy("torn");
    let run = scan_json(&sqlite_url(&path), &["--exclude", "ledger"]);
    let tables: Vec<String> = run.json()["summary"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tables, ["bank.accounts"]);
    let run = scan_json(&sqlite_url(&path), &["--include", "bank.acc*"]);
    assert_eq!(run.json()["summary"]["tables"].as_array().unwrap().len(), 1);
}

#[test]
fn help_teaches_the_exit_codes() {
    let output = std::process::Command::new(BIN)
        .args(["scan", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("Examples:"), "{help}");
    let output = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("4 indeterminate"), "{help}");
}

#[test]
fn the_schema_rejects_what_a_report_may_not_hold() {
    let (_dir, path) = sqlite_copy("torn");
    let report = scan_json(&sqlite_url(&path), &[]).json();
    type Breakage = fn(&mut serde_json::Value);
    let breakages: [(&str, Breakage); 4] = [
        ("an unknown verdict", |r| r["verdict"] = "maybe".into()),
        ("a missing summary", |r| {
            r.as_object_mut().unwrap().remove("summary");
        }),
        ("another schema version", |r| {
            r["schema_version"] = 99.into()
        }),
        ("a negative count", |r| {
            r["summary"]["records_scanned"] = (-1).into();
        }),
    ];
    for (what, breakage) in breakages {
        let mut broken = report.clone();
        breakage(&mut broken);
        let outcome = std::panic::catch_unwind(|| crate::schema::validate_report(&broken));
        assert!(outcome.is_err(), "the schema accepts {what}");
    }
}
