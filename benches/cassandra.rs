//! Benchmark of `scan` on a local Cassandra node: a ScalarDB-shaped table of 2 million
//! records (four per transaction, 0.1 % of transactions left PREPARED) and a 500,000-row
//! Coordinator, flushed to SSTables. In the same run it measures the tool's scan (the
//! release binary: token-range split, parallel, paged) against a plain single-stream full
//! read of the same two tables through the same driver, which decodes nothing. Prints
//! records/s, peak RSS, the Coordinator index's size, the CPU seconds of the tool and of the
//! Cassandra node for each, and the ceiling those CPU figures put on any client's speed-up
//! when the node and the client share the machine's cores; asserts nothing.
//!
//! Run: `cargo bench --bench cassandra` after `scripts/install-cassandra`. Env:
//! BENCH_RECORDS (default 2000000), BENCH_REPEAT (default 3), BENCH_PLAIN_PAGE (the plain
//! read's page size, default 5000, the tool's default), BENCH_PERF=FILE (one extra scan
//! under `perf record`, written to FILE), BENCH_NODE_COST=1 (also: the node's CPU for one
//! stream of the records table with fewer and fewer columns selected, to show what a row
//! costs the node whatever a client asks of it), BENCH_UNLOCKED=1 (a node on the host's
//! network, reached directly, instead of a drill's locked node in a network of its own
//! whose CQL port the tool's bridge carries: run both to see what the bridge costs).

// The scylla session futures are deeply nested.
#![recursion_limit = "256"]

use std::process::Command;
use std::time::Instant;

use scalardb_verify::model::TableRef;
use scalardb_verify::runtime::cassandra::{CassandraInstance, CassandraOptions};
use scalardb_verify::store::{
    CassandraScanOptions, CassandraStore, CqlParam, DiscoveredTable, ReadConsistency, Store as _,
    TableFilter, discover_settings,
};

const T0: i64 = 1_700_000_000_000;
/// What the tool's scan selects from the records table (the metadata it decodes, then the
/// key): the plain read selects the same, so the two differ only in how they read.
const SCANNED_COLUMNS: [&str; 9] = [
    "tx_id",
    "tx_state",
    "tx_version",
    "tx_prepared_at",
    "tx_committed_at",
    "before_tx_id",
    "before_tx_state",
    "before_tx_version",
    "id",
];
const RECORDS_PER_TX: i64 = 4;

fn main() {
    // `cargo test --all-targets` runs harness-less benches too, without `--bench`: a
    // 2-million-record load is not a test.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benches/cassandra.rs: run it with `cargo bench --bench cassandra`");
        return;
    }
    let records: i64 = env_or("BENCH_RECORDS", 2_000_000);
    let repeat: usize = env_or("BENCH_REPEAT", 3);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(records, repeat));
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tx_id(tx: i64) -> String {
    format!("{tx:08x}-0000-4000-8000-000000000000")
}

/// One transaction in a thousand is left PREPARED; half of those have a COMMITTED row.
fn is_prepared(tx: i64) -> bool {
    tx % 1000 == 7
}

async fn run(records: i64, repeat: usize) {
    let mut options = CassandraOptions::new(format!("bench-cassandra-{}", std::process::id()));
    // The tool's binary carries the node's ports out of its sandbox (this one is the bench).
    options.bridge = Some(env!("CARGO_BIN_EXE_scalardb-verify").into());
    options.locked = std::env::var_os("BENCH_UNLOCKED").is_none();
    let node = CassandraInstance::start(&options)
        .await
        .expect("start Cassandra (scripts/install-cassandra installs it)");
    eprintln!(
        "node ready in {:.1?} ({})",
        node.started_in(),
        if node.is_isolated() {
            "locked, in a network of its own: CQL through the bridge"
        } else {
            "unlocked, on the host's network: CQL direct"
        }
    );
    let writer = node.writer().await.expect("connect");
    writer
        .execute_script(SCHEMA)
        .await
        .expect("create the schema");

    let started = Instant::now();
    let rows = (0..records).map(|id| {
        let tx = id / RECORDS_PER_TX;
        let prepared = is_prepared(tx);
        let at = T0 + tx;
        vec![
            CqlParam::Int(i32::try_from(id).expect("ids fit in an int")),
            CqlParam::Int(1000),
            if prepared {
                CqlParam::Int(900)
            } else {
                CqlParam::Null
            },
            CqlParam::Text(tx_id(tx)),
            CqlParam::Int(if prepared { 1 } else { 3 }),
            CqlParam::Int(if prepared { 2 } else { 1 }),
            CqlParam::BigInt(at - 5),
            if prepared {
                CqlParam::Null
            } else {
                CqlParam::BigInt(at)
            },
            if prepared {
                CqlParam::Text(tx_id(tx + 1_000_000_000))
            } else {
                CqlParam::Null
            },
            if prepared {
                CqlParam::Int(3)
            } else {
                CqlParam::Null
            },
            if prepared {
                CqlParam::Int(1)
            } else {
                CqlParam::Null
            },
        ]
    });
    writer
        .insert(
            "INSERT INTO bench.records (id, balance, before_balance, tx_id, tx_state, \
             tx_version, tx_prepared_at, tx_committed_at, before_tx_id, before_tx_state, \
             before_tx_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
            256,
        )
        .await
        .expect("insert records");
    let transactions = records / RECORDS_PER_TX;
    let states = (0..transactions)
        .filter(|tx| !is_prepared(*tx) || tx % 2000 == 7)
        .map(|tx| {
            vec![
                CqlParam::Text(tx_id(tx)),
                CqlParam::Int(3),
                CqlParam::BigInt(T0 + tx - 2),
            ]
        });
    let coordinator_rows = writer
        .insert(
            "INSERT INTO coordinator.state (tx_id, tx_state, tx_created_at) VALUES (?, ?, ?)",
            states,
            256,
        )
        .await
        .expect("insert coordinator rows");
    let load_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {records} records and {coordinator_rows} Coordinator rows in {load_seconds:.1} s \
         ({:.0} writes/s)",
        (records as f64 + coordinator_rows as f64) / load_seconds
    );

    node.snapshot("bench-flush", &["bench", "coordinator"])
        .await
        .expect("flush with nodetool snapshot");
    eprintln!("flushed");

    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    let url = format!("{}?consistency=ONE", node.url());
    let plain_page: i32 = env_or("BENCH_PLAIN_PAGE", 5000);
    let store = CassandraStore::connect_with(
        &[node.contact_point()],
        node.credentials(),
        CassandraScanOptions {
            consistency: ReadConsistency::One,
            page_size: plain_page,
            ..CassandraScanOptions::default()
        },
    )
    .await
    .expect("connect");
    // Warm the caches once each.
    scan_once(&url, &report);
    plain_once(&store).await;
    if let Ok(file) = std::env::var("BENCH_PERF") {
        let status = Command::new("perf")
            .args(["record", "-F", "499", "-g", "-o", &file, "--"])
            .arg(env!("CARGO_BIN_EXE_scalardb-verify"))
            .args(["scan", &url, "--quiet", "--format", "json", "--output"])
            .arg(&report)
            .status()
            .expect("perf");
        eprintln!("perf: {status}");
    }

    // The node's pid is its sandbox's outermost process: the JVM runs below it (below the
    // bridge, on a locked node).
    let sandbox = node.pid().expect("the node's sandbox runs");
    let jvm = scalardb_verify::runtime::local::process::descendants(sandbox)
        .into_iter()
        // bubblewrap and the bridge name the daemon class in their arguments too.
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "java")
        })
        .expect("the node's JVM runs below its sandbox");
    if std::env::var_os("BENCH_NODE_COST").is_some() {
        node_cost_by_columns(&store, jvm).await;
    }
    let mut runs = Vec::new();
    let mut plain_times = Vec::new();
    let mut plain_jvm = Vec::new();
    for _ in 0..repeat {
        let before = cpu_seconds(jvm);
        let mut run = scan_once(&url, &report);
        run.jvm_cpu = cpu_seconds(jvm) - before;
        eprintln!(
            "  scan: {:.2} s, tool CPU {:.2} s, Cassandra CPU {:.2} s",
            run.seconds, run.cpu, run.jvm_cpu
        );
        runs.push(run);
        let before = cpu_seconds(jvm);
        let plain = plain_once(&store).await;
        let jvm_cpu = cpu_seconds(jvm) - before;
        eprintln!("  plain: {plain:.2} s, Cassandra CPU {jvm_cpu:.2} s");
        plain_times.push(plain);
        plain_jvm.push(jvm_cpu);
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json report");

    // The Coordinator index's size, from an in-process scan of the Coordinator.
    let filter = TableFilter::default();
    let discovery = store
        .discover(&discover_settings("coordinator", "scalardb", &filter))
        .await
        .expect("discover");
    assert!(
        discovery
            .tables
            .iter()
            .any(|t| matches!(t, DiscoveredTable::Present(_)))
    );
    store
        .scan_coordinator(discovery.coordinator.as_ref().expect("coordinator"))
        .await
        .expect("scan the coordinator");
    let (index_bytes, index_rows) = store.coordinator_index_size().expect("index loaded");

    let rows_read = records as f64 + coordinator_rows as f64;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let plain = median(&mut plain_times);
    let plain_cassandra = median(&mut plain_jvm);
    println!("records:                 {records} (+ {coordinator_rows} Coordinator rows)");
    println!(
        "verdict:                 {} (unresolved {})",
        report["verdict"], report["summary"]["unresolved_records"]
    );
    println!(
        "plain single stream:     {plain:.2} s median of {repeat}, {:.0} records/s (page {plain_page}), \
         Cassandra CPU {plain_cassandra:.2} s ({:.0} % of one core)",
        rows_read / plain,
        100.0 * plain_cassandra / plain
    );
    let scan = median(&mut runs.iter().map(|r| r.seconds).collect::<Vec<_>>());
    let cpu = median(&mut runs.iter().map(|r| r.cpu).collect::<Vec<_>>());
    let scan_cassandra = median(&mut runs.iter().map(|r| r.jvm_cpu).collect::<Vec<_>>());
    let rss_mib = runs.iter().map(|r| r.rss_kib).fold(0.0, f64::max) / 1024.0;
    println!(
        "scan (parallel, binary): {scan:.2} s median of {repeat}, {:.0} records/s, tool CPU {cpu:.2} s, \
         Cassandra CPU {scan_cassandra:.2} s (together {:.0} % of the machine's {cores} cores)",
        rows_read / scan,
        100.0 * (cpu + scan_cassandra) / (scan * cores as f64),
    );
    println!("speed-up over plain:     {:.2}x", plain / scan);
    // No client can read faster than the node can: the node's CPU for one plain pass, spread
    // over every core of the machine (which the tool shares), bounds any scan's speed-up.
    println!(
        "ceiling on this machine:  {:.2}x (the plain read's Cassandra CPU spread over {cores} cores)",
        plain * cores as f64 / plain_cassandra
    );
    println!("scan peak RSS:           {rss_mib:.1} MiB");
    println!(
        "coordinator index:       {index_bytes} bytes for {index_rows} rows ({:.2} bytes/row)",
        index_bytes as f64 / index_rows as f64
    );
    node.stop().await.expect("stop the node");
}

/// One stream over the records table per column set, with the node's CPU for each.
async fn node_cost_by_columns(store: &CassandraStore, jvm: u32) {
    let table = TableRef::new("bench", "records");
    let column_sets: [&[&str]; 4] = [
        &SCANNED_COLUMNS,
        &[
            "tx_id",
            "tx_state",
            "tx_version",
            "tx_prepared_at",
            "tx_committed_at",
            "id",
        ],
        &["tx_id", "id"],
        &["id"],
    ];
    for columns in column_sets {
        let before = cpu_seconds(jvm);
        let started = Instant::now();
        let rows = store
            .count_single_stream(&table, columns)
            .await
            .expect("read the records");
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(jvm) - before;
        println!(
            "node cost, {} columns:   {seconds:.2} s, Cassandra CPU {cpu:.2} s ({:.1} µs per row)",
            columns.len(),
            cpu * 1e6 / rows as f64
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[derive(Clone, Copy)]
struct Run {
    seconds: f64,
    /// The tool's user plus system CPU seconds.
    cpu: f64,
    /// The Cassandra node's CPU seconds over the same run.
    jvm_cpu: f64,
    rss_kib: f64,
}

/// User plus system CPU seconds a process has used so far (`/proc/<pid>/stat` fields 14
/// and 15, in clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read the JVM's stat");
    // The command name (field 2) may hold spaces; the fields after its `)` do not.
    let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("stat fields are numbers");
    // after_name starts at field 3, so fields 14 and 15 are at 11 and 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs the release binary under /usr/bin/time: wall seconds, CPU seconds, peak RSS.
fn scan_once(url: &str, report: &std::path::Path) -> Run {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%e %M %U %S"])
        .arg(env!("CARGO_BIN_EXE_scalardb-verify"))
        .args(["scan", url, "--quiet", "--format", "json", "--output"])
        .arg(report)
        .output()
        .expect("run /usr/bin/time (Debian package `time`)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let fields: Vec<f64> = last
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    match fields[..] {
        [seconds, rss, user, system] => Run {
            seconds,
            cpu: user + system,
            jvm_cpu: 0.0,
            rss_kib: rss,
        },
        _ => panic!("scan failed: {stderr}"),
    }
}

/// Both tables read in full, one stream of pages each, rows counted and not decoded.
async fn plain_once(store: &CassandraStore) -> f64 {
    let started = Instant::now();
    store
        .count_single_stream(
            &TableRef::new("coordinator", "state"),
            &["tx_id", "tx_state", "tx_created_at"],
        )
        .await
        .expect("read the coordinator");
    store
        .count_single_stream(&TableRef::new("bench", "records"), &SCANNED_COLUMNS)
        .await
        .expect("read the records");
    started.elapsed().as_secs_f64()
}

const SCHEMA: &str = "\
CREATE KEYSPACE bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};
CREATE KEYSPACE coordinator WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};
CREATE TABLE coordinator.state (tx_id text, tx_state int, tx_created_at bigint, PRIMARY KEY ((tx_id)));
CREATE TABLE bench.records (id int, balance int, before_balance int, tx_id text, tx_state int,
  tx_version int, tx_prepared_at bigint, tx_committed_at bigint, before_tx_id text,
  before_tx_state int, before_tx_version int, before_tx_prepared_at bigint,
  before_tx_committed_at bigint, PRIMARY KEY ((id)));
";
