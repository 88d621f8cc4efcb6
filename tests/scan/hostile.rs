//! Hostile backups and least-privilege accounts (issue 10): each case here once turned an
//! inconsistent or unchecked backup into a pass, or made a read-only scan write. Every test
//! asserts the exit code, the verdict and the finding that names what and why.

use std::path::Path;

use scalardb_verify::runtime::local::{Engine, LocalInstance};
use serde_json::Value;
use sqlx::Connection;

use crate::support::*;

/// The findings with `code`.
fn with_code<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

/// `url` with another user and password.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let mut url = url::Url::parse(url).expect("a server URL");
    url.set_username(user).unwrap();
    url.set_password(Some(password)).unwrap();
    url.into()
}

async fn load_postgres(server: &LocalInstance, state: &str, database: &str) {
    server
        .execute_sql(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    server
        .load_sql_file(&fixture(state).join("postgres.sql"), Some(database))
        .await
        .unwrap_or_else(|e| panic!("load {state}: {}", scalardb_verify::scan::error_chain(&e)));
}

// 1. Only `<coordinator namespace>.state` is the Coordinator.

#[test]
fn a_table_with_a_tx_created_at_column_is_scanned_not_taken_for_a_coordinator() {
    // In the torn fixture bank.accounts holds the committed half of a torn transaction and a
    // record committed by an aborted one; skipping it as a "Coordinator" left a pass.
    let (_dir, path) = sqlite_copy("torn");
    sqlite_exec(
        &path,
        r#"ALTER TABLE "bank$accounts" ADD COLUMN tx_created_at BIGINT;
           ALTER TABLE "bank$accounts" ADD COLUMN before_tx_created_at BIGINT;
           INSERT INTO "scalardb$metadata" VALUES
             ('bank.accounts', 'tx_created_at', 'BIGINT', NULL, NULL, 0, 100),
             ('bank.accounts', 'before_tx_created_at', 'BIGINT', NULL, NULL, 0, 101);"#,
    );
    let run = scan_json(&sqlite_url(&path), &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "inconsistent");
    let aborted = with_code(&report, "committed-but-aborted");
    assert_eq!(aborted.len(), 1, "{report:#}");
    assert_eq!(aborted[0]["table"], "bank.accounts");
    assert_eq!(
        with_code(&report, "torn-transaction").len(),
        1,
        "{report:#}"
    );
    assert_eq!(
        report["summary"]["coordinator"]["table"],
        "coordinator.state"
    );
}

#[test]
fn a_coordinator_shaped_table_in_another_namespace_is_not_the_coordinator() {
    let (_dir, path) = sqlite_copy("recoverable");
    // A look-alike holding COMMITTED rows for every transaction: were it taken for the
    // Coordinator, everything would roll forward.
    sqlite_exec(
        &path,
        r#"CREATE TABLE "shadow$state" (tx_id TEXT PRIMARY KEY, tx_state INT, tx_created_at BIGINT);
           INSERT INTO "shadow$state" SELECT tx_id, 3, tx_created_at FROM "coordinator$state";"#,
    );
    let run = scan_json(&sqlite_url(&path), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_same_report(&normalized(run.json()), &expected("recoverable"), "shadow");
}

// 2. What the account cannot read is reported, never skipped.

#[tokio::test(flavor = "multi_thread")]
async fn a_least_privilege_mariadb_account_gets_findings_for_what_it_cannot_read() {
    let server = start(Engine::MariaDb, None).await;
    server
        .load_sql_file(&fixture("clean").join("mysql.sql"), None)
        .await
        .unwrap();
    server
        .execute_sql(
            "CREATE USER 'hidden_meta'@'%' IDENTIFIED BY 'pw1';
             GRANT SELECT ON bank.* TO 'hidden_meta'@'%';
             GRANT SELECT ON ledger.* TO 'hidden_meta'@'%';
             GRANT SELECT ON coordinator.* TO 'hidden_meta'@'%';
             CREATE USER 'hidden_table'@'%' IDENTIFIED BY 'pw2';
             GRANT SELECT ON bank.* TO 'hidden_table'@'%';
             GRANT SELECT ON coordinator.* TO 'hidden_table'@'%';
             GRANT SELECT ON scalardb.* TO 'hidden_table'@'%';
             CREATE USER 'readme_role'@'%' IDENTIFIED BY 'pw3';
             GRANT SELECT ON scalardb.* TO 'readme_role'@'%';
             GRANT SELECT ON coordinator.* TO 'readme_role'@'%';
             GRANT SELECT ON bank.* TO 'readme_role'@'%';
             GRANT SELECT ON ledger.* TO 'readme_role'@'%';",
        )
        .await
        .unwrap();
    let url = server.url_for("bank");

    let run = scan_json(&as_user(&url, "hidden_meta", "pw1"), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "indeterminate");
    let denied = with_code(&report, "permission-denied");
    assert_eq!(denied.len(), 1, "{report:#}");
    assert_eq!(denied[0]["table"], "scalardb.metadata");
    assert!(
        denied[0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("denied"),
        "{}",
        denied[0]
    );

    let run = scan_json(&as_user(&url, "hidden_table", "pw2"), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    let denied = with_code(&report, "permission-denied");
    assert_eq!(denied.len(), 1, "{report:#}");
    assert_eq!(denied[0]["table"], "ledger.entries");
    assert!(
        with_code(&report, "table-missing").is_empty(),
        "denied is not missing: {report:#}"
    );

    // The README's role scans like the superuser.
    let run = scan_json(&as_user(&url, "readme_role", "pw3"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_same_report(&normalized(run.json()), &expected("clean"), "readme role");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_least_privilege_postgres_role_gets_findings_for_what_it_cannot_read() {
    let server = start(Engine::Postgres, None).await;
    load_postgres(&server, "clean", "bank").await;
    server
        .execute_sql_in(
            Some("bank"),
            "CREATE ROLE partial LOGIN PASSWORD 'pw1';
             GRANT USAGE ON SCHEMA scalardb, coordinator, bank, ledger TO partial;
             GRANT SELECT ON ALL TABLES IN SCHEMA bank, coordinator TO partial;
             CREATE ROLE no_coordinator LOGIN PASSWORD 'pw2';
             GRANT USAGE ON SCHEMA scalardb, coordinator, bank, ledger TO no_coordinator;
             GRANT SELECT ON ALL TABLES IN SCHEMA scalardb, bank, ledger TO no_coordinator;
             CREATE ROLE readme_role LOGIN PASSWORD 'pw3';
             ALTER ROLE readme_role SET default_transaction_read_only = on;
             GRANT CONNECT ON DATABASE bank TO readme_role;
             GRANT USAGE ON SCHEMA scalardb, coordinator, bank, ledger TO readme_role;
             GRANT SELECT ON ALL TABLES IN SCHEMA scalardb, coordinator, bank, ledger TO readme_role;",
        )
        .await
        .unwrap();
    let url = server.url_for("bank");

    // A read refused part-way leaves its connection's transaction aborted: it must never
    // go back to the pool, where another table's scan, or the Coordinator's, would inherit
    // "current transaction is aborted" (one connection per job makes that likely).
    for jobs in ["1", "2"] {
        let run = scan_json(&as_user(&url, "partial", "pw1"), &["--jobs", jobs]);
        assert_eq!(run.code, 4, "{}", run.stderr);
        assert!(
            !run.stdout.contains("transaction is aborted"),
            "--jobs {jobs}: {}",
            run.stdout
        );
        let run = scan_json(&as_user(&url, "no_coordinator", "pw2"), &["--jobs", jobs]);
        assert!(
            !run.stdout.contains("transaction is aborted"),
            "--jobs {jobs}: {}",
            run.stdout
        );
    }

    let run = scan_json(&as_user(&url, "partial", "pw1"), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "indeterminate");
    let mut denied: Vec<&str> = with_code(&report, "permission-denied")
        .iter()
        .map(|f| f["table"].as_str().unwrap())
        .collect();
    denied.sort_unstable();
    assert_eq!(
        denied,
        ["ledger.entries", "scalardb.metadata"],
        "{report:#}"
    );
    for finding in with_code(&report, "permission-denied") {
        assert!(
            finding["message"]
                .as_str()
                .unwrap()
                .contains("permission denied"),
            "{finding}"
        );
    }

    // 6. A Coordinator that cannot be read is indeterminate (4), not unreachable (3).
    let run = scan_json(&as_user(&url, "no_coordinator", "pw2"), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    let failed = with_code(&report, "coordinator-scan-failed");
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0]["table"], "coordinator.state");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{}",
        failed[0]
    );

    let run = scan_json(&as_user(&url, "readme_role", "pw3"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_same_report(&normalized(run.json()), &expected("clean"), "readme role");
    server.stop().await.unwrap();
}

// 3. Duplicate Coordinator rows are invalid Coordinator data.

const ROLLED_FORWARD_TX: &str = "fwd00001-0000-0000-0000-000000000000";

fn assert_duplicates_reported(run: &Run, context: &str) {
    assert_eq!(run.code, 4, "{context}: {}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "indeterminate", "{context}");
    let invalid = with_code(&report, "invalid-coordinator-row");
    assert!(
        invalid.iter().any(|f| f["tx_id"] == ROLLED_FORWARD_TX),
        "{context}: {report:#}"
    );
    let predicted: Vec<&Value> = report["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["tx_id"] == ROLLED_FORWARD_TX)
        .collect();
    assert!(
        predicted.is_empty(),
        "{context}: a transaction with two Coordinator states has no prediction: {predicted:#?}"
    );
}

#[test]
fn contradictory_coordinator_rows_on_sqlite_are_invalid_not_two_predictions() {
    let (_dir, path) = sqlite_copy("recoverable");
    sqlite_exec(
        &path,
        &format!(
            r#"CREATE TABLE keyless (tx_id TEXT, tx_state INT, tx_created_at BIGINT);
               INSERT INTO keyless SELECT * FROM "coordinator$state";
               DROP TABLE "coordinator$state";
               ALTER TABLE keyless RENAME TO "coordinator$state";
               INSERT INTO "coordinator$state" VALUES ('{ROLLED_FORWARD_TX}', 4, 1700000002003);"#
        ),
    );
    assert_duplicates_reported(&scan_json(&sqlite_url(&path), &[]), "sqlite");
}

#[tokio::test(flavor = "multi_thread")]
async fn contradictory_coordinator_rows_on_postgres_and_mariadb_are_invalid() {
    let server = start(Engine::Postgres, None).await;
    load_postgres(&server, "recoverable", "bank").await;
    server
        .execute_sql_in(
            Some("bank"),
            &format!(
                "ALTER TABLE coordinator.state DROP CONSTRAINT state_pkey;
                 INSERT INTO coordinator.state VALUES ('{ROLLED_FORWARD_TX}', 4, 1700000002003);"
            ),
        )
        .await
        .unwrap();
    assert_duplicates_reported(&scan_json(&server.url_for("bank"), &[]), "postgres");
    server.stop().await.unwrap();

    let server = start(Engine::MariaDb, None).await;
    server
        .load_sql_file(&fixture("recoverable").join("mysql.sql"), None)
        .await
        .unwrap();
    server
        .execute_sql(&format!(
            "ALTER TABLE coordinator.state DROP PRIMARY KEY;
             INSERT INTO coordinator.state VALUES ('{ROLLED_FORWARD_TX}', 4, 1700000002003);"
        ))
        .await
        .unwrap();
    assert_duplicates_reported(&scan_json(&server.url(), &[]), "mariadb");
    server.stop().await.unwrap();
}

// 4. A read-only scan calls no function a database owner planted.

#[tokio::test(flavor = "multi_thread")]
async fn a_shadowing_function_in_the_default_search_path_never_runs() {
    let server = start(Engine::Postgres, None).await;
    load_postgres(&server, "recoverable", "bank").await;
    // The owner's max() and count() come first in the database's and the role's default
    // search_path; each records that it ran (where it can write) and lies about the result.
    server
        .execute_sql_in(
            Some("bank"),
            "CREATE SCHEMA evil;
             CREATE TABLE public.canary (note TEXT);
             CREATE FUNCTION evil.max_step(acc BIGINT, value BIGINT) RETURNS BIGINT
               LANGUAGE plpgsql AS $$
               BEGIN
                 BEGIN INSERT INTO public.canary VALUES ('max ran');
                 EXCEPTION WHEN OTHERS THEN NULL; END;
                 RETURN 0;
               END $$;
             CREATE AGGREGATE evil.max(BIGINT) (SFUNC = evil.max_step, STYPE = BIGINT);
             CREATE FUNCTION evil.count_step(acc BIGINT) RETURNS BIGINT
               LANGUAGE plpgsql AS $$
               BEGIN
                 BEGIN INSERT INTO public.canary VALUES ('count ran');
                 EXCEPTION WHEN OTHERS THEN NULL; END;
                 RETURN 0;
               END $$;
             CREATE AGGREGATE evil.count(*) (SFUNC = evil.count_step, STYPE = BIGINT, INITCOND = '0');
             ALTER DATABASE bank SET search_path = evil, pg_catalog, public;
             ALTER ROLE postgres SET search_path = evil, pg_catalog, public;",
        )
        .await
        .unwrap();
    let url = server.url_for("bank");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let shadowed: String = sqlx::query_scalar("SELECT CAST(max(1::BIGINT) AS TEXT)")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        shadowed, "0",
        "the test's shadowing max() must be the one an unpinned session calls"
    );
    sqlx::raw_sql("TRUNCATE public.canary")
        .execute(&mut conn)
        .await
        .unwrap();
    let run = scan_json(&url, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_same_report(
        &normalized(run.json()),
        &expected("recoverable"),
        "shadowed",
    );
    let ran: Vec<String> = sqlx::query_scalar("SELECT note FROM public.canary")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        ran.is_empty(),
        "the scan ran the owner's functions: {ran:?}"
    );
    conn.close().await.unwrap();
    server.stop().await.unwrap();
}

// 5. Nothing is created beside a SQLite backup, and its WAL is never silently dropped.

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn set_read_only(path: &Path, read_only: bool) {
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    permissions.set_readonly(read_only);
    std::fs::set_permissions(path, permissions).unwrap();
}

/// A WAL-mode copy of `state`, copied while a writer holds uncheckpointed changes (as a file
/// copy of a live database is), with its `-wal` if `keep_wal`.
fn wal_mode_copy(state: &str, keep_wal: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let (live_dir, live) = sqlite_copy(state);
    let backup_dir = tempfile::tempdir().unwrap();
    let backup = backup_dir.path().join("bank.sqlite");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&sqlite_url(&live))
            .await
            .unwrap();
        sqlx::raw_sql(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             PRAGMA user_version = 7;",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        std::fs::copy(&live, &backup).unwrap();
        let wal = live_dir.path().join("bank.sqlite-wal");
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 0,
            "the live database should have a WAL"
        );
        if keep_wal {
            std::fs::copy(&wal, backup_dir.path().join("bank.sqlite-wal")).unwrap();
        }
        conn.close().await.unwrap();
    });
    let mut header = [0u8; 20];
    use std::io::Read as _;
    std::fs::File::open(&backup)
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    assert_eq!(header[18..20], [2, 2], "the copy should be in WAL mode");
    (backup_dir, backup)
}

#[test]
fn a_wal_mode_sqlite_backup_in_a_read_only_directory_scans_with_nothing_created() {
    let (dir, path) = wal_mode_copy("recoverable", false);
    let before = files_in(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    set_read_only(&path, true);
    set_read_only(dir.path(), true);
    let run = scan_json(&sqlite_url(&path), &[]);
    set_read_only(dir.path(), false);
    set_read_only(&path, false);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_same_report(
        &normalized(run.json()),
        &expected("recoverable"),
        "wal mode",
    );
    assert_eq!(
        files_in(dir.path()),
        before,
        "files appeared beside the backup"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the backup changed");
}

#[test]
fn a_sqlite_backup_with_a_non_empty_wal_is_refused_naming_the_file() {
    let (dir, path) = wal_mode_copy("recoverable", true);
    let before = files_in(dir.path());
    let run = scan_json(&sqlite_url(&path), &[]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.is_empty(),
        "no report without the WAL: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("bank.sqlite-wal") && run.stderr.contains("checkpoint"),
        "{}",
        run.stderr
    );
    assert_eq!(
        files_in(dir.path()),
        before,
        "files appeared beside the backup"
    );
}

// 6. Invalid metadata and unreadable Coordinator rows are indeterminate, not unreachable.

#[test]
fn a_null_full_table_name_is_an_indeterminate_finding_not_exit_3() {
    let (_dir, path) = sqlite_copy("clean");
    sqlite_exec(
        &path,
        r#"INSERT INTO "scalardb$metadata" VALUES (NULL, 'balance', 'INT', NULL, NULL, 0, 1);"#,
    );
    let run = scan_json(&sqlite_url(&path), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "indeterminate");
    let invalid = with_code(&report, "invalid-scalardb-metadata");
    assert_eq!(invalid.len(), 1, "{report:#}");
    assert_eq!(invalid[0]["table"], "scalardb.metadata");
    assert!(
        invalid[0]["message"]
            .as_str()
            .unwrap()
            .contains("NULL full_table_name")
    );
}

#[test]
fn a_coordinator_that_cannot_be_read_is_an_indeterminate_finding_not_exit_3() {
    let (_dir, path) = sqlite_copy("clean");
    // An invalid row whose tx_id is not text: reading it as evidence fails.
    sqlite_exec(
        &path,
        r#"INSERT INTO "coordinator$state" VALUES (CAST(x'ff00fe' AS TEXT), 9, NULL);"#,
    );
    let run = scan_json(&sqlite_url(&path), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "indeterminate");
    let failed = with_code(&report, "coordinator-scan-failed");
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0]["table"], "coordinator.state");
}
