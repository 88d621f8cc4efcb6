//! Benchmark of a deployment-wide `scan` (issue 11's target): the same ScalarDB-shaped data
//! set (4 tables, 0.1 % unresolved, a Coordinator row per committed transaction) held two
//! ways, side by side in one run:
//!
//! - one PostgreSQL database holding every table and the Coordinator (the join runs inside
//!   the database for every table);
//! - two storages: PostgreSQL with namespace `bench_a` (tables 1, 2) and the Coordinator,
//!   MariaDB with namespace `bench_b` (tables 3, 4), whose tables are checked against the
//!   Coordinator's index with point reads.
//!
//! Target: the two-storage scan ≤ 1.5 × the one-database scan, peak memory < 100 MiB.
//! Prints the figures; asserts nothing but that both scans give the same verdict and counts.
//!
//! Run: `scripts/bench multi-storage` (or `cargo bench --bench multi_storage`). Env:
//! BENCH_ROWS_PER_TABLE (default 1250000: 5 M records), BENCH_REPEAT (default 3).

use std::process::Command;
use std::time::{Duration, Instant};

use scalardb_verify::runtime::local::{Engine, LocalInstance, LocalOptions};

#[expect(
    dead_code,
    reason = "the one-database data set and its plain SQL are benches/scan.rs's"
)]
mod common;

use common::{T0, env_or, started_by_cargo_bench, timed};

const TABLES: [(&str, &str); 4] = [
    ("bench_a", "t1"),
    ("bench_a", "t2"),
    ("bench_b", "t3"),
    ("bench_b", "t4"),
];

fn main() {
    if !started_by_cargo_bench("multi_storage") {
        return;
    }
    let rows: i64 = env_or("BENCH_ROWS_PER_TABLE", 1_250_000);
    let repeat: usize = env_or("BENCH_REPEAT", 3);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(rows, repeat));
}

/// Every column of a ScalarDB table of the data set, in the engine's types.
fn create_table(namespace: &str, table: &str, text: &str) -> String {
    format!(
        "CREATE TABLE {namespace}.{table} (id BIGINT, ck INT, balance INT, memo {text}, \
         tx_id {text}, tx_state INT, tx_version INT, tx_prepared_at BIGINT, tx_committed_at BIGINT, \
         before_balance INT, before_memo {text}, before_tx_id {text}, before_tx_state INT, \
         before_tx_version INT, before_tx_prepared_at BIGINT, before_tx_committed_at BIGINT, \
         PRIMARY KEY (id, ck));\n"
    )
}

/// The rows of one table from a sequence `g` (generate_series or MariaDB's seq tables):
/// every transaction writes two records; one in a thousand is left PREPARED.
fn select_rows(t: usize, g: &str, concat: &dyn Fn(&str) -> String) -> String {
    let odd = format!("({g} DIV 2) % 1000 = 3");
    format!(
        "SELECT {g} DIV 2, {g} % 2, 100, 'memo', {tx}, CASE WHEN {odd} THEN 1 ELSE 3 END, 2, \
         {T0} + {g}, CASE WHEN {odd} THEN {T0} + {g} - 5000 ELSE {T0} + {g} + 1 END, \
         CASE WHEN {odd} THEN 90 END, CASE WHEN {odd} THEN 'old' END, \
         CASE WHEN {odd} THEN 'tx-old' END, CASE WHEN {odd} THEN 3 END, \
         CASE WHEN {odd} THEN 1 END, CASE WHEN {odd} THEN {T0} END, \
         CASE WHEN {odd} THEN {T0} END",
        tx = concat(&format!("{g} DIV 2")),
    )
    .replace("__T__", &t.to_string())
}

/// The Coordinator's rows for table `t`: COMMITTED for every transaction but half of the
/// PREPARED ones (those roll back).
fn coordinator_rows(t: usize, rows: i64) -> String {
    format!(
        "INSERT INTO coordinator.state SELECT 'tx-{t}-' || k, 3, {T0} + 2 * k \
         FROM generate_series(0, {}) k WHERE k % 1000 <> 3 OR (k / 1000) % 2 = 0;\n",
        rows / 2 - 1
    )
}

fn postgres_sql(rows: i64, tables: &[usize]) -> String {
    let mut sql = String::from(
        "SET synchronous_commit = off;\n\
         CREATE SCHEMA coordinator;\n\
         CREATE TABLE coordinator.state (tx_id VARCHAR(10485760) PRIMARY KEY, tx_state INT, tx_created_at BIGINT);\n\
         CREATE SCHEMA IF NOT EXISTS bench_a;\nCREATE SCHEMA IF NOT EXISTS bench_b;\n",
    );
    let pg_concat = |id: &str| format!("'tx-__T__-' || ({id})");
    for t in 1..=TABLES.len() {
        if tables.contains(&t) {
            let (namespace, table) = TABLES[t - 1];
            sql.push_str(&create_table(namespace, table, "TEXT"));
            sql.push_str(&format!(
                "INSERT INTO {namespace}.{table} {} FROM generate_series(0, {}) g;\n",
                select_rows(t, "g", &pg_concat).replace(" DIV ", " / "),
                rows - 1
            ));
        }
        // The Coordinator holds every table's transactions, wherever the table is.
        sql.push_str(&coordinator_rows(t, rows));
    }
    sql.push_str("VACUUM ANALYZE;\n");
    sql
}

fn mariadb_sql(rows: i64, tables: &[usize]) -> String {
    // The sequence tables live in every database; one must be selected.
    let mut sql = String::from("CREATE DATABASE bench_b;\nUSE bench_b;\n");
    let concat = |id: &str| format!("CONCAT('tx-__T__-', {id})");
    for &t in tables {
        let (namespace, table) = TABLES[t - 1];
        sql.push_str(&create_table(namespace, table, "VARCHAR(128)"));
        sql.push_str(&format!(
            "INSERT INTO {namespace}.{table} {} FROM seq_0_to_{} AS s;\n",
            select_rows(t, "seq", &concat),
            rows - 1
        ));
    }
    sql.push_str("ANALYZE TABLE bench_b.t3, bench_b.t4;\n");
    sql
}

async fn run(rows: i64, repeat: usize) {
    let mut options = LocalOptions::new(format!("bench-{}", std::process::id()));
    options.startup_timeout = Duration::from_secs(120);
    let pg = LocalInstance::start(Engine::Postgres, &options)
        .await
        .expect("start PostgreSQL (scripts/install-test-deps installs it)");
    let maria = LocalInstance::start(Engine::MariaDb, &options)
        .await
        .expect("start MariaDB (scripts/install-test-deps installs it)");
    let started = Instant::now();
    for database in ["one", "split"] {
        pg.execute_sql(&format!("CREATE DATABASE {database}"))
            .await
            .expect("create database");
    }
    pg.execute_sql_in(Some("one"), &postgres_sql(rows, &[1, 2, 3, 4]))
        .await
        .expect("generate the one-database data set");
    pg.execute_sql_in(Some("split"), &postgres_sql(rows, &[1, 2]))
        .await
        .expect("generate the PostgreSQL half");
    maria
        .execute_sql(&mariadb_sql(rows, &[3, 4]))
        .await
        .expect("generate the MariaDB half");
    eprintln!(
        "generated 2 x {} records in {:.1} s",
        rows * 4,
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let one_report = dir.path().join("one.json");
    let split_report = dir.path().join("split.json");
    let one = vec![pg.url_for("one")];
    let split = vec![
        "--storage".to_owned(),
        format!("pg={}", pg.url_for("split")),
        "--storage".to_owned(),
        format!("maria={}", maria.url()),
        "--namespace".to_owned(),
        "bench_b=maria".to_owned(),
        "--default-storage".to_owned(),
        "pg".to_owned(),
        "--coordinator-storage".to_owned(),
        "pg".to_owned(),
    ];

    // Warm the caches once each.
    scan_once(&one, &one_report);
    scan_once(&split, &split_report);
    let (mut one_times, mut split_times, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        let (seconds, kib) = scan_once(&one, &one_report);
        one_times.push(seconds);
        rss.push(("one", kib));
        let (seconds, kib) = scan_once(&split, &split_report);
        split_times.push(seconds);
        rss.push(("split", kib));
    }
    let read = |path: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("json")
    };
    let (one_json, split_json) = (read(&one_report), read(&split_report));
    maria.stop().await.expect("stop MariaDB");
    pg.stop().await.expect("stop PostgreSQL");

    for field in [
        "records_scanned",
        "unresolved_records",
        "roll_forward",
        "roll_back",
    ] {
        assert_eq!(
            one_json["summary"][field], split_json["summary"][field],
            "{field}: both scans see the same data"
        );
    }
    assert_eq!(one_json["verdict"], split_json["verdict"]);
    let one = median(&mut one_times);
    let split = median(&mut split_times);
    let peak = |which: &str| {
        rss.iter()
            .filter(|(w, _)| *w == which)
            .map(|(_, kib)| *kib)
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    };
    println!(
        "records scanned:                 {}",
        one_json["summary"]["records_scanned"]
    );
    println!(
        "unresolved records:              {}",
        one_json["summary"]["unresolved_records"]
    );
    println!("verdict:                         {}", one_json["verdict"]);
    println!(
        "one PostgreSQL (median of {repeat}):   {one:.2} s, peak RSS {:.1} MiB",
        peak("one")
    );
    println!(
        "PostgreSQL + MariaDB (median):   {split:.2} s, peak RSS {:.1} MiB",
        peak("split")
    );
    println!(
        "ratio two storages / one:        {:.2} (target ≤ 1.5)",
        split / one
    );
}

fn scan_once(target: &[String], report: &std::path::Path) -> (f64, u64) {
    timed(
        Command::new(env!("CARGO_BIN_EXE_scalardb-verify"))
            .arg("scan")
            .args(target)
            .args(["--quiet", "--format", "json", "--output"])
            .arg(report),
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
