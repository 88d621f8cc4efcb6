//! A two-node cluster (127.0.0.1 and 127.0.0.2, replication factor 2) under a live
//! workload of the real ScalarDB (`scripts/oracle workload`), snapshotted node by node a few
//! seconds apart, as an unpaused backup job would: `drill --per-node` must report the skew.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use scalardb_verify::runtime::cassandra::{CassandraInstance, CassandraOptions};

use crate::support::*;

/// How long the workload may take to build, create its schema and commit a first transfer.
const WORKLOAD_START: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_of_a_live_two_node_cluster_taken_apart_are_reported_skewed() {
    let _slot = heavy_test_slot().await;
    // Unlocked: the nodes share one system_auth, and ScalarDB's workload logs in as nobody.
    let mut options = CassandraOptions::new(format!("cassandra-cluster-{}", std::process::id()));
    options.locked = false;
    let first = start_node_with(options.clone()).await;
    options.listen_address = Ipv4Addr::new(127, 0, 0, 2);
    options.seeds = vec![first.seed()];
    options.storage_port = Some(first.storage_port());
    let second = CassandraInstance::start(&options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot start the second node on 127.0.0.2: {}",
                scalardb_verify::scan::error_chain(&e)
            )
        });

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // ScalarDB logs a stack trace for every failed transfer: kept aside, shown on failure.
    let log = tempfile::NamedTempFile::new().unwrap();
    let log_tail = || {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let mut workload = Command::new(root.join("scripts/oracle"))
        .args([
            "workload",
            "--cassandra",
            &format!("{},{}", first.contact_point(), second.contact_point()),
            "--seconds",
            "600",
            "--replication-factor",
            "2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("run scripts/oracle workload");
    let (lines_tx, lines) = mpsc::channel();
    let stdout = workload.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let started = wait_for_line(&lines, "STARTED", WORKLOAD_START);
    assert!(
        started.is_some(),
        "the ScalarDB workload did not commit a transfer within {WORKLOAD_START:?}; its log \
         ends with:\n{}",
        log_tail()
    );

    // Snapshots of an unpaused cluster, one node after the other.
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.snapshot("nightly", &[]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    second.snapshot("nightly", &[]).await.unwrap();

    drop(workload.stdin.take());
    let done = wait_for_line(&lines, "DONE", Duration::from_secs(120)).unwrap_or_else(|| {
        panic!(
            "the workload did not end when its stdin closed; its log ends with:\n{}",
            log_tail()
        )
    });
    let _ = workload.wait();
    eprintln!("workload: {done}");
    let _ = std::io::stderr().flush();

    let backup = tempfile::tempdir().unwrap();
    copy_snapshot(&first, "nightly", &backup.path().join("node1"), "nightly");
    copy_snapshot(&second, "nightly", &backup.path().join("node2"), "nightly");
    first.stop().await.unwrap();
    second.stop().await.unwrap();

    let run = drill_json(
        backup.path(),
        &[
            "--runtime",
            "local",
            "--per-node",
            "--coordinator-namespace",
            "coordinator",
        ],
    )
    .await;
    let report = run.json();
    assert_eq!(run.code, 1, "{}\n{report}", run.stderr);
    assert!(
        codes(&report).iter().any(|c| c == "node-snapshots-skewed"),
        "{report}"
    );
    let nodes = &report["drill"]["nodes"];
    eprintln!(
        "nodes: {} records, {} divergent, {} on some nodes only, max skew {} ms",
        nodes["records"], nodes["divergent"], nodes["on_some_nodes_only"], nodes["max_skew_ms"]
    );
    let divergent = nodes["divergent"].as_u64().unwrap();
    assert!(divergent > 0, "{nodes}");
    // The second node was snapshotted seconds later: the first holds the older copies.
    assert!(nodes["nodes"][0]["behind"].as_u64().unwrap() > 0, "{nodes}");
    assert!(
        nodes["max_skew_ms"].as_i64().unwrap() >= 1_000,
        "the snapshots were taken seconds apart: {nodes}"
    );
    assert!(
        nodes["records"].as_u64().unwrap() > divergent,
        "most records agree: {nodes}"
    );
}

fn wait_for_line(lines: &mpsc::Receiver<String>, prefix: &str, within: Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return Some(line),
            Ok(line) => eprintln!("workload: {line}"),
            Err(_) => return None,
        }
    }
}
