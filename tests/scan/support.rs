//! Shared helpers: run the binary, parse its JSON back, start disposable servers.

use std::path::{Path, PathBuf};
use std::process::Command;

use scalardb_verify::runtime::local::{Engine, LocalInstance, LocalOptions};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_scalardb-verify");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(state: &str) -> PathBuf {
    root().join("fixtures/bank").join(state)
}

pub const STATES: [&str; 4] = ["clean", "recoverable", "torn", "coordinator-behind"];

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The report on stdout, validated against the published JSON Schema.
    pub fn json(&self) -> Value {
        let report = serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}); exit {}; stdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        });
        crate::schema::validate_report(&report);
        report
    }
}

pub fn scan(args: &[&str]) -> Run {
    let output = Command::new(BIN)
        .arg("scan")
        .args(args)
        .output()
        .expect("run scalardb-verify");
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn scan_json(target: &str, extra: &[&str]) -> Run {
    let mut args = vec![target, "--format", "json", "--quiet"];
    args.extend_from_slice(extra);
    scan(&args)
}

/// A copy of a fixture's SQLite file in a fresh temporary directory.
pub fn sqlite_copy(state: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bank.sqlite");
    std::fs::copy(fixture(state).join("bank.sqlite"), &path).expect("copy fixture");
    (dir, path)
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

pub use crate::normalize::normalized;

pub fn expected(state: &str) -> Value {
    let text =
        std::fs::read_to_string(fixture(state).join("expected.json")).expect("expected.json");
    let report = serde_json::from_str(&text).expect("expected.json parses");
    crate::schema::validate_report(&report);
    report
}

/// Starts a disposable server, failing (never skipping) with the reason when it can't.
pub async fn start(engine: Engine, password: Option<&str>) -> LocalInstance {
    let mut options = LocalOptions::new(format!("scan-tests-{}", std::process::id()));
    options.superuser_password = password.map(str::to_owned);
    LocalInstance::start(engine, &options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot start a local {engine} server for this test: {}\n\
                 run scripts/install-test-deps to install the servers the tests need",
                scalardb_verify::scan::error_chain(&e)
            )
        })
}

/// Asserts that two reports are equal, printing a readable diff of the first difference.
pub fn assert_same_report(actual: &Value, expected: &Value, context: &str) {
    if actual != expected {
        panic!(
            "{context}: report differs from the expected one\n--- expected\n{}\n--- actual\n{}",
            serde_json::to_string_pretty(expected).unwrap(),
            serde_json::to_string_pretty(actual).unwrap()
        );
    }
}

/// Runs `sql` against a SQLite file (a test's own copy, never a fixture).
pub fn sqlite_exec(path: &Path, sql: &str) {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("open the test's SQLite copy");
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.close().await.unwrap();
    });
}

/// The codes of a report's findings, in report order.
pub fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}
