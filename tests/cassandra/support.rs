//! Shared helpers: start a node (failing, never skipping, when Cassandra isn't installed),
//! load CQL, run the binary and parse its JSON back.

use std::path::PathBuf;
use std::process::Command;

use scalardb_verify::runtime::cassandra::{CassandraInstance, CassandraOptions};
use scalardb_verify::store::CassandraWriter;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_scalardb-verify");

pub const STATES: [&str; 4] = ["clean", "recoverable", "torn", "coordinator-behind"];

pub fn fixture(state: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/bank")
        .join(state)
}

/// At most two tests of this binary run their Cassandra JVMs (a node, a drill's node, a
/// container) at once: more, on a 2-core machine, push node startups past their timeout.
static HEAVY_TESTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Waits for a slot among the heavy tests; hold it for the whole test.
pub async fn heavy_test_slot() -> tokio::sync::SemaphorePermit<'static> {
    HEAVY_TESTS.acquire().await.expect("never closed")
}

/// Starts a node, locked to its own role as a drill's is, failing with the reason (and
/// the install command) when it can't.
pub async fn start_node() -> CassandraInstance {
    start_node_with(options(format!("cassandra-tests-{}", std::process::id()))).await
}

/// A locked node's options, whose ports the tool's binary carries out of its sandbox (this
/// test binary is not the tool).
pub fn options(run_id: String) -> CassandraOptions {
    let mut options = CassandraOptions::new(run_id);
    options.bridge = Some(BIN.into());
    options
}

/// Starts a node with `options`, failing with the reason when it can't.
pub async fn start_node_with(options: CassandraOptions) -> CassandraInstance {
    let node = CassandraInstance::start(&options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot start a local Cassandra node for this test: {}\n\
                 run scripts/install-cassandra to install it",
                scalardb_verify::scan::error_chain(&e)
            )
        });
    eprintln!(
        "cassandra node on {} ready in {:.1?}",
        node.contact_point(),
        node.started_in()
    );
    node
}

/// A session as the node's own role.
pub async fn writer(node: &CassandraInstance) -> CassandraWriter {
    node.writer()
        .await
        .unwrap_or_else(|e| panic!("connect: {}", scalardb_verify::scan::error_chain(&e)))
}

pub async fn run_cql(writer: &CassandraWriter, cql: &str) {
    writer
        .execute_script(cql)
        .await
        .unwrap_or_else(|e| panic!("{}", scalardb_verify::scan::error_chain(&e)));
}

/// Drops the fixtures' keyspaces, so the next state loads into an empty node.
pub async fn reset(writer: &CassandraWriter) {
    for keyspace in ["bank", "ledger", "coordinator", "scalardb"] {
        run_cql(writer, &format!("DROP KEYSPACE IF EXISTS \"{keyspace}\";")).await;
    }
}

pub async fn load_state(writer: &CassandraWriter, state: &str) {
    reset(writer).await;
    let cql = std::fs::read_to_string(fixture(state).join("cassandra.cql")).unwrap_or_else(|e| {
        panic!("read fixtures/bank/{state}/cassandra.cql ({e}); run scripts/gen-fixtures")
    });
    run_cql(writer, &cql).await;
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

/// Runs `scan TARGET --format json --quiet`.
pub async fn scan_json(target: &str) -> Run {
    run_bin(
        ["scan", target, "--format", "json", "--quiet"]
            .map(str::to_owned)
            .to_vec(),
    )
    .await
}

pub fn expected(state: &str) -> Value {
    let text =
        std::fs::read_to_string(fixture(state).join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

pub fn expected_code(state: &str) -> i32 {
    match std::fs::read_to_string(fixture(state).join("verdict"))
        .unwrap()
        .trim()
    {
        "consistent" | "recoverable" => 0,
        "inconsistent" => 1,
        other => panic!("unexpected verdict {other}"),
    }
}

pub use crate::normalize::normalized;

pub fn assert_same_report(actual: &Value, expected: &Value, context: &str) {
    if actual != expected {
        let expected = serde_json::to_string_pretty(expected).unwrap();
        let actual = serde_json::to_string_pretty(actual).unwrap();
        let differing: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}: expected {e}\n         actual   {a}", i + 1))
            .collect();
        panic!(
            "{context}: report differs from the expected one; first differing lines:\n{}\n\
             --- expected\n{expected}\n--- actual\n{actual}",
            differing.join("\n")
        );
    }
}

pub fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs the binary with `args` on a blocking thread.
pub async fn run_bin(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(BIN)
            .args(&args)
            .output()
            .expect("run scalardb-verify");
        Run {
            code: output.status.code().expect("exited normally"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// Runs `drill BACKUP --format json --quiet` with `extra` arguments.
pub async fn drill_json(backup: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "drill".to_owned(),
        backup.display().to_string(),
        "--format".to_owned(),
        "json".to_owned(),
        "--quiet".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    run_bin(args).await
}

pub use crate::snapshot_copy::copy_snapshot;

/// Every file under `dir` with its size and modification time: a backup's fingerprint.
pub fn fingerprint(dir: &std::path::Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                stack.push(entry.path());
            } else {
                files.push((entry.path(), metadata.len(), metadata.modified().unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// The report without what differs from one run to the next (target, drill timings).
pub fn without_drill(mut report: Value) -> Value {
    report.as_object_mut().unwrap().remove("drill");
    normalized(report)
}
