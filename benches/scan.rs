//! Benchmark of `scan` on PostgreSQL (issue 2's target): a ScalarDB-shaped data set of
//! 5 million records over 4 tables with 0.1 % unresolved and a 2.5 million-row Coordinator,
//! scanned by the tool and, in the same run, checked by the equivalent plain SQL through
//! `psql` (the database's own speed for the same work). Target: scan ≤ 1.25 × plain SQL,
//! peak memory < 100 MiB. Prints the figures; asserts nothing (targets are not timed tests).
//!
//! Run: `scripts/bench` (or `cargo bench --bench scan`). Env: BENCH_ROWS_PER_TABLE
//! (default 1250000), BENCH_REPEAT (default 3).

use std::process::Command;
use std::time::{Duration, Instant};

use scalardb_verify::runtime::local::{Engine, LocalInstance, LocalOptions};

const TABLES: usize = 4;
const T0: i64 = 1_700_000_000_000;

fn main() {
    let rows: i64 = env_or("BENCH_ROWS_PER_TABLE", 1_250_000);
    let repeat: usize = env_or("BENCH_REPEAT", 3);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(rows, repeat));
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(rows: i64, repeat: usize) {
    let mut options = LocalOptions::new(format!("bench-{}", std::process::id()));
    options.startup_timeout = Duration::from_secs(120);
    let server = LocalInstance::start(Engine::Postgres, &options)
        .await
        .expect("start PostgreSQL (scripts/install-test-deps installs it)");
    server
        .execute_sql("CREATE DATABASE bench")
        .await
        .expect("create database");
    let started = Instant::now();
    server
        .execute_sql_in(Some("bench"), &generate_sql(rows))
        .await
        .expect("generate the data set");
    eprintln!(
        "generated {} records over {TABLES} tables in {:.1} s",
        rows * i64::try_from(TABLES).unwrap(),
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let checks = dir.path().join("checks.sql");
    std::fs::write(&checks, plain_sql_checks()).expect("write checks.sql");
    let report = dir.path().join("report.json");
    let url = server.url_for("bench");

    // Warm the cache once each, so neither side pays for the first read from disk.
    scan_once(&url, &report);
    psql_once(&server, &checks).await;

    let mut scan_times = Vec::new();
    let mut scan_rss = Vec::new();
    let mut sql_times = Vec::new();
    for _ in 0..repeat {
        let (seconds, rss_kib) = scan_once(&url, &report);
        scan_times.push(seconds);
        scan_rss.push(rss_kib);
        sql_times.push(psql_once(&server, &checks).await);
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    server.stop().await.expect("stop PostgreSQL");

    let scan = median(&mut scan_times);
    let sql = median(&mut sql_times);
    let rss_mib = scan_rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "records scanned:      {}",
        summary["summary"]["records_scanned"]
    );
    println!(
        "unresolved records:   {}",
        summary["summary"]["unresolved_records"]
    );
    println!("verdict:              {}", summary["verdict"]);
    println!("scan (median of {repeat}):  {scan:.2} s");
    println!("plain SQL via psql:   {sql:.2} s");
    println!("ratio scan / SQL:     {:.2} (target ≤ 1.25)", scan / sql);
    println!("scan peak RSS:        {rss_mib:.1} MiB (target < 100)");
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs the release binary under /usr/bin/time: wall seconds and peak RSS in KiB.
fn scan_once(url: &str, report: &std::path::Path) -> (f64, u64) {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(env!("CARGO_BIN_EXE_scalardb-verify"))
        .args(["scan", url, "--quiet", "--format", "json", "--output"])
        .arg(report)
        .output()
        .expect("run /usr/bin/time (Debian package `time`)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let mut fields = last.split_whitespace();
    let seconds = fields.next().and_then(|s| s.parse().ok());
    let rss = fields.next().and_then(|s| s.parse().ok());
    match (seconds, rss) {
        (Some(seconds), Some(rss)) => (seconds, rss),
        _ => panic!("scan failed: {stderr}"),
    }
}

async fn psql_once(server: &LocalInstance, checks: &std::path::Path) -> f64 {
    let started = Instant::now();
    server
        .load_sql_file(checks, Some("bench"))
        .await
        .expect("run the plain SQL checks");
    started.elapsed().as_secs_f64()
}

/// ScalarDB's JDBC layout on PostgreSQL. Every transaction writes two records of one table;
/// one transaction in a thousand is left PREPARED, half of those with a COMMITTED
/// Coordinator row (roll forward), half with none (roll back).
fn generate_sql(rows: i64) -> String {
    let mut sql = String::from(
        "SET synchronous_commit = off;\n\
         CREATE SCHEMA coordinator;\n\
         CREATE TABLE coordinator.state (tx_id VARCHAR(10485760) PRIMARY KEY, tx_state INT, tx_created_at BIGINT);\n\
         CREATE SCHEMA bench;\n",
    );
    for t in 1..=TABLES {
        sql.push_str(&format!(
            "CREATE TABLE bench.t{t} (id BIGINT, ck INT, balance INT, memo TEXT, \
             tx_id TEXT, tx_state INT, tx_version INT, tx_prepared_at BIGINT, tx_committed_at BIGINT, \
             before_balance INT, before_memo TEXT, before_tx_id TEXT, before_tx_state INT, \
             before_tx_version INT, before_tx_prepared_at BIGINT, before_tx_committed_at BIGINT, \
             PRIMARY KEY (id, ck));\n\
             INSERT INTO bench.t{t} SELECT g / 2, (g % 2)::int, 100, 'memo', \
             'tx-{t}-' || (g / 2), CASE WHEN (g / 2) % 1000 = 3 THEN 1 ELSE 3 END, 2, \
             {T0} + g, CASE WHEN (g / 2) % 1000 = 3 THEN {T0} + g - 5000 ELSE {T0} + g + 1 END, \
             CASE WHEN (g / 2) % 1000 = 3 THEN 90 END, CASE WHEN (g / 2) % 1000 = 3 THEN 'old' END, \
             CASE WHEN (g / 2) % 1000 = 3 THEN 'tx-old' END, CASE WHEN (g / 2) % 1000 = 3 THEN 3 END, \
             CASE WHEN (g / 2) % 1000 = 3 THEN 1 END, CASE WHEN (g / 2) % 1000 = 3 THEN {T0} END, \
             CASE WHEN (g / 2) % 1000 = 3 THEN {T0} END \
             FROM generate_series(0, {last}) g;\n\
             INSERT INTO coordinator.state SELECT 'tx-{t}-' || k, 3, {T0} + 2 * k \
             FROM generate_series(0, {last_tx}) k WHERE k % 1000 <> 3 OR (k / 1000) % 2 = 0;\n",
            last = rows - 1,
            last_tx = rows / 2 - 1,
        ));
    }
    sql.push_str("VACUUM ANALYZE;\n");
    sql
}

/// The same checks as plain SQL, as an operator would write them for psql.
fn plain_sql_checks() -> String {
    let mut sql = String::from(
        "SELECT count(*), sum(CASE WHEN tx_state = 3 THEN 1 ELSE 0 END), \
         sum(CASE WHEN tx_state = 4 THEN 1 ELSE 0 END), max(tx_created_at) FROM coordinator.state;\n",
    );
    for t in 1..=TABLES {
        sql.push_str(&format!(
            "SELECT count(*), max(tx_prepared_at), max(tx_committed_at) FROM bench.t{t};\n\
             SELECT r.id, r.ck, r.tx_id, r.tx_state, r.tx_version, r.tx_prepared_at, \
             r.before_tx_id, r.before_tx_version, c.tx_state, c.tx_created_at \
             FROM bench.t{t} r LEFT JOIN coordinator.state c ON c.tx_id = r.tx_id \
             WHERE r.tx_state IS DISTINCT FROM 3 OR r.tx_id IS NULL OR r.tx_version < 1;\n\
             SELECT r.id, r.ck, r.tx_id, c.tx_state FROM bench.t{t} r \
             LEFT JOIN coordinator.state c ON c.tx_id = r.tx_id \
             WHERE r.tx_state = 3 AND COALESCE(c.tx_state, 0) <> 3;\n"
        ));
    }
    sql
}
