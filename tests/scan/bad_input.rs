//! Bad input gets a clear error or finding, never a panic and never a false "consistent".

use scalardb_verify::runtime::local::Engine;

use crate::support::*;

/// A fixture copy changed by `sql`, scanned.
fn scan_modified(state: &str, sql: &str) -> Run {
    let (_dir, path) = sqlite_copy(state);
    sqlite_exec(&path, sql);
    scan_json(&sqlite_url(&path), &[])
}

#[test]
fn a_database_without_scalardb_tables_is_indeterminate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    std::fs::File::create(&path).unwrap();
    sqlite_exec(
        &path,
        "CREATE TABLE customers (id INT PRIMARY KEY, name TEXT); INSERT INTO customers VALUES (1, 'a');",
    );
    let run = scan_json(&sqlite_url(&path), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "indeterminate");
    assert_eq!(
        codes(&report),
        ["coordinator-missing", "no-transactional-tables"]
    );
}

#[test]
fn a_missing_coordinator_table_is_a_finding_and_its_checks_do_not_run() {
    let run = scan_modified("clean", r#"DROP TABLE "coordinator$state";"#);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    assert_eq!(codes(&report), ["coordinator-missing"]);
    let not_run: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "not_run")
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(not_run.contains(&"transaction-atomicity"), "{not_run:?}");
}

#[test]
fn a_table_listed_in_metadata_but_missing_is_a_finding() {
    let run = scan_modified("clean", r#"DROP TABLE "ledger$entries";"#);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    assert_eq!(codes(&report), ["table-missing"]);
    assert_eq!(report["findings"][0]["table"], "ledger.entries");
}

#[test]
fn a_truncated_metadata_table_falls_back_to_the_catalog_without_losing_the_verdict() {
    let run = scan_modified(
        "torn",
        r#"DELETE FROM "scalardb$metadata" WHERE full_table_name = 'ledger.entries';"#,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "inconsistent");
    assert!(
        codes(&report).contains(&"metadata-incomplete".to_owned()),
        "{:?}",
        codes(&report)
    );
    assert_eq!(report["summary"]["tables"].as_array().unwrap().len(), 2);
}

#[test]
fn a_prepared_record_with_a_null_tx_id_is_invalid_metadata() {
    let run = scan_modified(
        "recoverable",
        r#"UPDATE "bank$accounts" SET tx_id = NULL WHERE account_id = 7;"#,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    let finding = &report["findings"][0];
    assert_eq!(finding["code"], "invalid-metadata");
    assert_eq!(finding["key"]["account_id"], "7");
    assert!(finding["message"].as_str().unwrap().contains("NULL tx_id"));
}

#[test]
fn a_null_prepared_at_and_a_zero_version_are_invalid_metadata() {
    let run = scan_modified(
        "clean",
        r#"UPDATE "bank$accounts" SET tx_state = 1, tx_prepared_at = NULL WHERE account_id = 1;
           UPDATE "bank$accounts" SET tx_version = 0 WHERE account_id = 2;"#,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(codes(&run.json()), ["invalid-metadata", "invalid-metadata"]);
}

#[test]
fn unknown_record_and_coordinator_states_are_reported_not_trusted() {
    let run = scan_modified(
        "clean",
        r#"UPDATE "bank$accounts" SET tx_state = 9 WHERE account_id = 3;
           UPDATE "coordinator$state" SET tx_state = 7 WHERE tx_id LIKE 'xfer-0001%';"#,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    let found = codes(&report);
    assert!(found.contains(&"unknown-tx-state".to_owned()), "{found:?}");
    assert!(
        found.contains(&"invalid-coordinator-row".to_owned()),
        "{found:?}"
    );
    assert_eq!(report["verdict"], "indeterminate");
}

#[test]
fn files_that_are_not_sqlite_databases_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.sqlite");
    std::fs::write(&empty, b"").unwrap();
    let run = scan_json(&sqlite_url(&empty), &[]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("empty.sqlite") && run.stderr.contains("empty"),
        "{}",
        run.stderr
    );

    let dump = dir.path().join("dump.sql");
    std::fs::copy(fixture("clean").join("postgres.sql"), &dump).unwrap();
    let run = scan_json(&sqlite_url(&dump), &[]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("not a SQLite database"),
        "{}",
        run.stderr
    );

    let run = scan_json(&sqlite_url(&dir.path().join("absent.sqlite")), &[]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("no such file"), "{}", run.stderr);
}

#[test]
fn a_truncated_sqlite_file_is_an_error_or_indeterminate_never_a_pass() {
    let (_dir, path) = sqlite_copy("torn");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let run = scan_json(&sqlite_url(&path), &[]);
    assert!(
        run.code == 3 || run.code == 4,
        "exit {}: {}\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn unsupported_schemes_and_missing_targets_are_usage_errors() {
    let run = scan(&["oracle://db/x"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("unsupported scheme"), "{}", run.stderr);
    let run = scan(&[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn an_unreachable_host_is_exit_3_within_the_connect_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let run = scan_json(
        &format!("postgres://nobody@127.0.0.1:{port}/db"),
        &["--connect-timeout", "1"],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        run.stderr
    );
    assert!(started.elapsed().as_secs() < 15);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_exit_3_and_never_printed() {
    for engine in [Engine::Postgres, Engine::MariaDb] {
        let server = start(engine, Some("right-secret")).await;
        let url = server.url().replace("right-secret", "wrong-secret");
        assert_ne!(url, server.url(), "the URL should carry the password");
        let run = scan_json(&url, &["--connect-timeout", "2"]);
        assert_eq!(run.code, 3, "{engine}: {}", run.stderr);
        assert!(
            !run.stderr.contains("wrong-secret"),
            "{engine}: {}",
            run.stderr
        );
        assert!(
            run.stderr.to_lowercase().contains("password")
                || run.stderr.to_lowercase().contains("denied"),
            "{engine}: {}",
            run.stderr
        );
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_database_without_scalardb_is_indeterminate() {
    let server = start(Engine::Postgres, None).await;
    server
        .execute_sql("CREATE TABLE customers (id INT PRIMARY KEY, name TEXT)")
        .await
        .unwrap();
    let run = scan_json(&server.url(), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(
        codes(&run.json()),
        ["coordinator-missing", "no-transactional-tables"]
    );
    server.stop().await.unwrap();
}
