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

mod common;

use common::{TABLES, env_or, generate_sql, plain_sql_checks, started_by_cargo_bench, timed};

fn main() {
    if !started_by_cargo_bench("scan") {
        return;
    }
    let rows: i64 = env_or("BENCH_ROWS_PER_TABLE", 1_250_000);
    let repeat: usize = env_or("BENCH_REPEAT", 3);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(rows, repeat));
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

async fn psql_once(server: &LocalInstance, checks: &std::path::Path) -> f64 {
    let started = Instant::now();
    server
        .load_sql_file(checks, Some("bench"))
        .await
        .expect("run the plain SQL checks");
    started.elapsed().as_secs_f64()
}

fn scan_once(url: &str, report: &std::path::Path) -> (f64, u64) {
    timed(
        Command::new(env!("CARGO_BIN_EXE_scalardb-verify"))
            .args(["scan", url, "--quiet", "--format", "json", "--output"])
            .arg(report),
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
