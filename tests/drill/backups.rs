//! Every backup format, restored and drilled, with its expected verdict; bad backups are
//! clear errors.

use std::process::Command;

use scalardb_verify::runtime::local::Engine;

use crate::support::*;

pub fn assert_recoverable_and_rehearsed(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what}: {}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "recoverable", "{what}");
    assert_eq!(
        outcomes(&report),
        outcomes(&expected("recoverable")),
        "{what}"
    );
    let recovery = &report["drill"]["recovery"];
    assert_eq!(recovery["succeeded"], true, "{what}: {recovery}");
    assert_eq!(recovery["unresolved_after"], 0, "{what}");
    assert_eq!(recovery["verdict_after"], "consistent", "{what}");
    assert_eq!(recovery["writes"]["committed"], 4, "{what}: {recovery}");
    assert_eq!(
        recovery["writes"]["deleted_forward"], 1,
        "{what}: {recovery}"
    );
    assert_eq!(recovery["writes"]["restored"], 4, "{what}: {recovery}");
    assert_eq!(recovery["writes"]["deleted_back"], 2, "{what}: {recovery}");
    assert_eq!(recovery["writes"]["abort_states"], 1, "{what}: {recovery}");
    let phases: Vec<&str> = report["drill"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["start", "restore", "scan", "recover", "checks", "teardown"],
        "{what}"
    );
}

const MONEY: &str = "money=SELECT sum(balance) = 12000 FROM bank.accounts";

/// Drills `backup` with one `--check` per `(name, sql, value)` and asserts each check read
/// exactly `value` from the restored state (a number or the exact digits of a decimal) and
/// passed or failed as the value's truth says.
fn assert_checks_read(backup: &std::path::Path, checks: &[(&str, &str, serde_json::Value)]) {
    let mut args = Vec::new();
    for (name, sql, _) in checks {
        args.push("--check".to_owned());
        args.push(format!("{name}={sql}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = drill(backup, &args);
    let report = run.json();
    let invariants = report["drill"]["invariants"].as_array().unwrap();
    assert_eq!(invariants.len(), checks.len(), "{}", run.stderr);
    let mut all_true = true;
    for ((name, sql, value), invariant) in checks.iter().zip(invariants) {
        assert_eq!(invariant["name"], *name);
        assert_eq!(&invariant["restored"], value, "{sql}: {invariant}");
        let truthy = match value {
            serde_json::Value::String(digits) => digits.bytes().any(|b| matches!(b, b'1'..=b'9')),
            serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
            other => panic!("{name}: no expected value of this shape: {other}"),
        };
        assert_eq!(invariant["passed"], truthy, "{sql}: {invariant}");
        all_true &= truthy;
    }
    assert_eq!(run.code, if all_true { 0 } else { 1 }, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_pg_dump_format_restores_drills_and_rehearses_recovery() {
    let server = postgres_with("recoverable").await;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.sql");
    pg_dump(&server, &[], &plain);
    let custom = dir.path().join("custom.dump");
    pg_dump(&server, &["-Fc"], &custom);
    let directory = dir.path().join("directory");
    pg_dump(&server, &["-Fd", "-j", "2"], &directory);
    let tar = dir.path().join("archive.tar");
    pg_dump(&server, &["-Ft"], &tar);
    let gzip = dir.path().join("plain.sql.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", plain.display(), gzip.display()))
        .status()
        .unwrap();
    assert!(status.success());
    server.stop().await.unwrap();

    for backup in [&plain, &gzip, &custom, &directory, &tar] {
        let before = std::fs::metadata(backup).unwrap().modified().unwrap();
        let run = drill(backup, &["--recover", "--check", MONEY]);
        assert_recoverable_and_rehearsed(&run, &backup.display().to_string());
        let invariant = &run.json()["drill"]["invariants"][0];
        assert_eq!(invariant["passed"], true, "{invariant}");
        assert_eq!(
            std::fs::metadata(backup).unwrap().modified().unwrap(),
            before
        );
        // One pg_dump run is one snapshot, and the report says so; an archive's header
        // (written by the real pg_dump) gives its creation time.
        let cut = &run.json()["summary"]["cut"];
        assert_eq!(cut["proven"], true, "{cut}");
        let part = &cut["parts"][0];
        assert_eq!(part["single_snapshot"], true, "{cut}");
        if backup != &plain && backup != &gzip {
            assert!(
                part["how"]
                    .as_str()
                    .unwrap()
                    .contains("pg_dump archive header: created"),
                "{cut}"
            );
            assert!(part["earliest_ms"].as_i64().is_some(), "{cut}");
        }
    }

    // A sum over BIGINT is NUMERIC on PostgreSQL: the check reads it, and every other
    // numeric type, as the database returned it.
    assert_checks_read(
        &plain,
        &[
            (
                "total",
                "SELECT sum(CAST(balance AS BIGINT)) FROM bank.accounts",
                12000.into(),
            ),
            (
                "exact",
                "SELECT CAST(12.50 AS NUMERIC(10,2))",
                "12.50".into(),
            ),
            (
                "huge",
                "SELECT CAST('123456789012345678901234567890' AS NUMERIC)",
                "123456789012345678901234567890".into(),
            ),
            ("small", "SELECT CAST(2 AS SMALLINT)", 2.into()),
            ("real", "SELECT CAST(0.5 AS REAL)", 0.5.into()),
            (
                "double",
                "SELECT CAST(0.25 AS DOUBLE PRECISION)",
                0.25.into(),
            ),
        ],
    );
    assert_checks_read(
        &plain,
        &[("zero", "SELECT CAST(0.00 AS NUMERIC(5,2))", 0.into())],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mysqldump_backups_restore_and_drill_on_mariadb() {
    let server = start(Engine::MariaDb).await;
    server
        .load_sql_file(&fixture("recoverable").join("mysql.sql"), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.sql");
    mariadb_dump(&server, &dump);
    let gzip = dir.path().join("dump.sql.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", dump.display(), gzip.display()))
        .status()
        .unwrap();
    assert!(status.success());
    server.stop().await.unwrap();

    for backup in [&dump, &gzip] {
        let run = drill(
            backup,
            &[
                "--recover",
                "--check",
                "money=SELECT sum(balance) = 12000 FROM bank.accounts",
            ],
        );
        assert_recoverable_and_rehearsed(&run, &backup.display().to_string());
    }

    // A sum over INT is DECIMAL on MySQL and MariaDB.
    assert_checks_read(
        &dump,
        &[
            (
                "total",
                "SELECT sum(balance) FROM bank.accounts",
                12000.into(),
            ),
            (
                "exact",
                "SELECT CAST(12.50 AS DECIMAL(10,2))",
                "12.50".into(),
            ),
            (
                "unsigned",
                "SELECT CAST(18446744073709551615 AS UNSIGNED)",
                "18446744073709551615".into(),
            ),
            ("double", "SELECT CAST(0.25 AS DOUBLE)", 0.25.into()),
        ],
    );
    assert_checks_read(
        &dump,
        &[(
            "zero",
            "SELECT sum(balance) - 12000 FROM bank.accounts",
            0.into(),
        )],
    );
}

#[test]
fn sqlite_fixtures_drill_to_their_verdicts() {
    for (state, code, verdict) in [
        ("clean", 0, "consistent"),
        ("recoverable", 0, "recoverable"),
        ("torn", 1, "inconsistent"),
        ("coordinator-behind", 1, "inconsistent"),
    ] {
        let backup = fixture(state).join("bank.sqlite");
        let run = drill(&backup, &["--recover"]);
        assert_eq!(run.code, code, "{state}: {}", run.stderr);
        let report = run.json();
        assert_eq!(report["verdict"], verdict, "{state}");
        assert_eq!(
            normalized(report.clone())["findings"],
            expected(state)["findings"],
            "{state}"
        );
        assert_eq!(
            report["drill"]["recovery"]["unresolved_after"], 0,
            "{state}"
        );
    }
}

#[test]
fn a_failing_invariant_or_a_missed_rto_fails_the_drill() {
    let backup = fixture("clean").join("bank.sqlite");
    let run = drill(
        &backup,
        &[
            "--check",
            r#"broke=SELECT count(*) = 0 FROM "bank$accounts""#,
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let invariant = &run.json()["drill"]["invariants"][0];
    assert_eq!(invariant["passed"], false);
    // SQLite has no boolean type: the comparison comes back as the number 0.
    assert_eq!(invariant["restored"], 0);

    let run = drill(&backup, &["--check", "bad=SELECT * FROM no_such_table"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let message = run.json()["drill"]["invariants"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("no_such_table"), "{message}");

    assert_checks_read(
        &backup,
        &[
            (
                "total",
                r#"SELECT sum(balance) FROM "bank$accounts""#,
                12000.into(),
            ),
            ("half", "SELECT 0.5", 0.5.into()),
        ],
    );
    // A value that is neither a boolean nor a number fails the check, naming its type.
    let run = drill(&backup, &["--check", "blob=SELECT x'00'"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let message = run.json()["drill"]["invariants"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("of type BLOB"), "{message}");

    let output = Command::new(BIN)
        .arg("drill")
        .arg(&backup)
        .args([
            "--rto-seconds",
            "0",
            "--format",
            "junit",
            "--quiet",
            "--runtime",
            "local",
        ])
        .output()
        .unwrap();
    // The restore of a SQLite copy takes well under a second, but more than zero.
    let junit = quick_junit::Report::deserialize_from_str(&String::from_utf8_lossy(&output.stdout))
        .unwrap();
    let drill_suite = junit
        .test_suites
        .iter()
        .find(|s| s.name.as_str() == "drill")
        .unwrap();
    let restore = &drill_suite.test_cases[0];
    assert_eq!(restore.name.as_str(), "restore");
    assert!(!matches!(
        restore.status,
        quick_junit::TestCaseStatus::Success { .. }
    ));
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_restore_point_outside_the_pause_window_is_indeterminate() {
    let dir = tempfile::tempdir().unwrap();
    let window = dir.path().join("pause.json");
    // The fixture's newest writes are at 1700000002200; this pause started before them.
    std::fs::write(
        &window,
        r#"{"namespace":"ns","helm_release_name":"scalardb","pause_start_timestamp_ms":1700000001000,"pause_end_timestamp_ms":1700000006000,"timezone":"Etc/UTC"}"#,
    )
    .unwrap();
    let backup = fixture("recoverable").join("bank.sqlite");
    let run = drill(&backup, &["--pause-window", window.to_str().unwrap()]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let codes: Vec<String> = run.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        codes.contains(&"written-after-pause-start".to_owned()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"in-flight-during-pause".to_owned()),
        "{codes:?}"
    );

    // A pause after every write, with only old crashes unresolved, passes.
    std::fs::write(
        &window,
        r#"{"pause_start_timestamp_ms":1700000100000,"pause_end_timestamp_ms":1700000105000}"#,
    )
    .unwrap();
    let run = drill(&backup, &["--pause-window", window.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn empty_truncated_and_foreign_backups_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.dump");
    std::fs::write(&empty, b"").unwrap();
    let run = drill(&empty, &[]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("empty.dump") && run.stderr.contains("empty"),
        "{}",
        run.stderr
    );

    let sql = std::fs::read_to_string(fixture("clean").join("postgres.sql")).unwrap();
    let cut = dir.path().join("cut.sql");
    std::fs::write(
        &cut,
        format!(
            "--\n-- PostgreSQL database dump\n--\n{}",
            &sql[..sql.len() / 2]
        ),
    )
    .unwrap();
    let run = drill(&cut, &[]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a backup\n").unwrap();
    let run = drill(&notes, &[]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("unrecognized"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_archive_and_a_dump_for_the_wrong_server_fail_the_restore() {
    let server = postgres_with("clean").await;
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("custom.dump");
    pg_dump(&server, &["-Fc"], &custom);
    server.stop().await.unwrap();
    let bytes = std::fs::read(&custom).unwrap();
    let cut = dir.path().join("cut.dump");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let run = drill(&cut, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("cut.dump"), "{}", run.stderr);

    // MySQL syntax under a pg_dump header: PostgreSQL refuses it, with its own error.
    let foreign = dir.path().join("foreign.sql");
    std::fs::write(
        &foreign,
        "--\n-- PostgreSQL database dump\n--\nCREATE TABLE `t` (`x` int) ENGINE=InnoDB;\n--\n-- PostgreSQL database dump complete\n--\n",
    )
    .unwrap();
    let run = drill(&foreign, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("syntax error"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dump_of_a_database_that_is_not_scalardb_is_indeterminate() {
    let server = start(Engine::Postgres).await;
    server.execute_sql("CREATE DATABASE source").await.unwrap();
    server
        .execute_sql_in(
            Some("source"),
            "CREATE TABLE customers (id INT PRIMARY KEY); INSERT INTO customers VALUES (1);",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("app.dump");
    pg_dump(&server, &["-Fc"], &dump);
    server.stop().await.unwrap();
    let run = drill(&dump, &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.json()["verdict"], "indeterminate");
}
