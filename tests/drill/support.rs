//! Shared helpers: run the binary, make real backups, find what a run left behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use scalardb_verify::runtime::local::{Engine, LocalInstance, LocalOptions};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_scalardb-verify");

pub fn fixture(state: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/bank")
        .join(state)
}

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

/// A drill on the local runtime (`extra` may not name another runtime).
pub fn drill(backup: &Path, extra: &[&str]) -> Run {
    drill_on("local", backup, extra)
}

pub fn drill_on(runtime: &str, backup: &Path, extra: &[&str]) -> Run {
    let mut args = vec![backup.as_os_str()];
    args.extend([
        std::ffi::OsStr::new("--runtime"),
        std::ffi::OsStr::new(runtime),
    ]);
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    run("drill", &args)
}

/// `scalardb-verify COMMAND ARGS… --format json --quiet`.
pub fn run(command: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> Run {
    let output = Command::new(BIN)
        .arg(command)
        .args(args)
        .args(["--format", "json", "--quiet"])
        .output()
        .expect("run scalardb-verify");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub async fn start(engine: Engine) -> LocalInstance {
    LocalInstance::start(
        engine,
        &LocalOptions::new(format!("drill-tests-{}", std::process::id())),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "cannot start a local {engine} server for this test: {}\n\
                 run scripts/install-test-deps to install the servers the tests need",
            scalardb_verify::scan::error_chain(&e)
        )
    })
}

/// A PostgreSQL server holding the fixture `state` in database `source`.
pub async fn postgres_with(state: &str) -> LocalInstance {
    let server = start(Engine::Postgres).await;
    server.execute_sql("CREATE DATABASE source").await.unwrap();
    server
        .load_sql_file(&fixture(state).join("postgres.sql"), Some("source"))
        .await
        .unwrap();
    server
}

/// Runs the server's pg_dump with `args` into `out`.
pub fn pg_dump(server: &LocalInstance, args: &[&str], out: &Path) {
    let mut command = Command::new("pg_dump");
    if let Some(password) = server.password() {
        command.env("PGPASSWORD", password);
    }
    let status = command
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port().to_string(),
            "-U",
            "postgres",
        ])
        .args(args)
        .arg("-f")
        .arg(out)
        .arg("source")
        .status()
        .expect("run pg_dump");
    assert!(status.success(), "pg_dump {args:?} failed");
}

/// A mariadb-dump of the fixture's four databases on `server`, written to `out`.
pub fn mariadb_dump(server: &LocalInstance, out: &Path) {
    mariadb_dump_of(server, &["bank", "ledger", "coordinator", "scalardb"], out);
}

/// A mariadb-dump of `databases` on `server`, written to `out`.
pub fn mariadb_dump_of(server: &LocalInstance, databases: &[&str], out: &Path) {
    let output = Command::new("mariadb-dump")
        .args([
            "--no-defaults",
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
        ])
        .arg(format!("--port={}", server.port()))
        .args(["--single-transaction", "--databases"])
        .args(databases)
        .output()
        .expect("run mariadb-dump");
    assert!(
        output.status.success(),
        "mariadb-dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(out, &output.stdout).unwrap();
}

/// Instance directories (and SQLite copies) in the tool's private directory that a drill
/// with this pid left behind.
pub fn leftovers_of(pid: u32) -> Vec<PathBuf> {
    let markers = [format!("i-drill{pid}-"), format!("sqlite-drill{pid}-")];
    let root = scalardb_verify::runtime::private_root().expect("the private directory");
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            markers.iter().any(|m| name.starts_with(m))
        })
        .map(|e| e.path())
        .collect()
}

/// Server processes whose command line names `dir`.
pub fn processes_in(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

pub fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                format!("{} {}", p["table"], p["key"]),
                p["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn expected(state: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(state).join("expected.json")).unwrap())
        .unwrap()
}

pub use crate::normalize::normalized;
