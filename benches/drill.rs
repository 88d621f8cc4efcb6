//! Benchmark of `drill` (issue 3's target): a pg_dump (-Fc) of at least 1 GB of
//! ScalarDB-shaped tables, drilled with the local runtime, against — in the same run — the
//! bare work it wraps: a fresh instance, `pg_restore` with the same jobs, the same checks
//! as plain SQL through psql, teardown. Target: drill ≤ 1.15 × bare. Prints the figures.
//!
//! Run: `cargo bench --bench drill`. Env: BENCH_ROWS_PER_TABLE (default 2000000), BENCH_JOBS
//! (default 4).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{env_or, generate_sql, plain_sql_checks, started_by_cargo_bench, timed};
use scalardb_verify::runtime::local::{Engine, LocalInstance, LocalOptions};

fn main() {
    if !started_by_cargo_bench("drill") {
        return;
    }
    let rows: i64 = env_or("BENCH_ROWS_PER_TABLE", 2_000_000);
    let jobs: usize = env_or("BENCH_JOBS", 4);
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(run(rows, jobs));
}

fn options(name: &str) -> LocalOptions {
    let mut options = LocalOptions::new(format!("bench-{name}-{}", std::process::id()));
    options.startup_timeout = Duration::from_secs(120);
    options
}

async fn run(rows: i64, jobs: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join("scalardb.dump");
    let source = LocalInstance::start(Engine::Postgres, &options("source"))
        .await
        .expect("start PostgreSQL (scripts/install-test-deps installs it)");
    source.execute_sql("CREATE DATABASE source").await.unwrap();
    let started = Instant::now();
    source
        .execute_sql_in(Some("source"), &generate_sql(rows))
        .await
        .expect("generate the data set");
    eprintln!("generated in {:.1} s", started.elapsed().as_secs_f64());
    let size = Command::new("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-U", "postgres", "-p"])
        .arg(source.port().to_string())
        .args(["-d", "source", "-c", "SELECT pg_database_size('source')"])
        .output()
        .expect("psql");
    let bytes: u64 = String::from_utf8_lossy(&size.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let status = Command::new("pg_dump")
        .args(["-Fc", "-h", "127.0.0.1", "-U", "postgres", "-p"])
        .arg(source.port().to_string())
        .arg("-f")
        .arg(&dump)
        .arg("source")
        .status()
        .expect("pg_dump");
    assert!(status.success());
    source.stop().await.unwrap();
    let checks = dir.path().join("checks.sql");
    std::fs::write(&checks, plain_sql_checks()).unwrap();

    // The drill: start, restore, scan, teardown.
    let report = dir.path().join("report.json");
    let (drill_seconds, drill_rss) = timed(
        Command::new(env!("CARGO_BIN_EXE_scalardb-verify"))
            .arg("drill")
            .arg(&dump)
            .args([
                "--runtime",
                "local",
                "--quiet",
                "--format",
                "json",
                "--jobs",
            ])
            .arg(jobs.to_string())
            .arg("--output")
            .arg(&report),
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();

    // The bare work: the same instance kind, pg_restore, the checks in psql, teardown.
    let bare = Instant::now();
    let target = LocalInstance::start(Engine::Postgres, &options("bare"))
        .await
        .unwrap();
    target
        .execute_sql("CREATE DATABASE restored")
        .await
        .unwrap();
    target.pg_restore(&dump, "restored", jobs).await.unwrap();
    let restored = bare.elapsed().as_secs_f64();
    target
        .load_sql_file(&checks, Some("restored"))
        .await
        .unwrap();
    target.stop().await.unwrap();
    let bare_seconds = bare.elapsed().as_secs_f64();

    let phases: Vec<String> = report["drill"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {:.1} s",
                p["name"].as_str().unwrap(),
                p["seconds"].as_f64().unwrap()
            )
        })
        .collect();
    println!("database size:        {:.2} GB", bytes as f64 / 1e9);
    println!(
        "dump size:            {:.2} GB",
        std::fs::metadata(&dump).unwrap().len() as f64 / 1e9
    );
    println!(
        "records scanned:      {}",
        report["summary"]["records_scanned"]
    );
    println!("verdict:              {}", report["verdict"]);
    println!(
        "drill:                {drill_seconds:.1} s ({})",
        phases.join(", ")
    );
    println!("bare restore:         {restored:.1} s (instance start + pg_restore --jobs {jobs})");
    println!("bare restore+checks:  {bare_seconds:.1} s (+ the checks in psql + teardown)");
    println!(
        "ratio drill / bare:   {:.2} (target ≤ 1.15)",
        drill_seconds / bare_seconds
    );
    println!("drill peak RSS:       {:.1} MiB", drill_rss as f64 / 1024.0);
}
