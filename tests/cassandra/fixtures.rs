//! The bank fixtures on Cassandra give the same report as on every other backend, and bad
//! input gives the documented exit codes.

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn bank_fixtures_on_cassandra_match_their_expected_reports() {
    let _slot = heavy_test_slot().await;
    let node = start_node().await;
    let writer = writer(&node).await;
    for state in STATES {
        load_state(&writer, state).await;
        let run = scan_json(&node.url()).await;
        assert_eq!(run.code, expected_code(state), "{state}: {}", run.stderr);
        assert_same_report(&normalized(run.json()), &expected(state), state);
    }

    // nodetool snapshot (for the restores of a later step) flushes and hard-links SSTables.
    node.snapshot("fixture", &["bank", "ledger"])
        .await
        .unwrap_or_else(|e| panic!("{}", scalardb_verify::scan::error_chain(&e)));
    let snapshots = node.snapshot_dirs("fixture");
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert!(
        snapshots
            .iter()
            .all(|dir| std::fs::read_dir(dir).unwrap().count() > 0),
        "{snapshots:?}"
    );

    // A keyspace without its Coordinator: indeterminate, never a pass.
    load_state(&writer, "recoverable").await;
    run_cql(&writer, "DROP KEYSPACE coordinator;").await;
    let run = scan_json(&node.url()).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(codes(&run.json()), ["coordinator-missing"]);

    // No ScalarDB table at all: indeterminate.
    reset(&writer).await;
    let run = scan_json(&node.url()).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    assert!(
        codes(&report)
            .iter()
            .any(|c| c == "no-transactional-tables"),
        "{report}"
    );

    node.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_cluster_exits_3() {
    // Port 1 on loopback: nothing listens there.
    let run = scan_json("cassandra://127.0.0.1:1").await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("connect to Cassandra"),
        "{}",
        run.stderr
    );
}
