//! `drill` of Cassandra node snapshots: taken with the real `nodetool snapshot`, copied out
//! as a backup job would, restored into a disposable node (local JVM or container) and
//! scanned. The backup is never modified.

use serde_json::Value;

use crate::support::*;

const DOCKER_IMAGE: &str = "scalardb-verify-test/cassandra:5.0";

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_of_the_bank_fixtures_drill_to_their_expected_reports() {
    let _slot = heavy_test_slot().await;
    let node = start_node().await;
    let writer = writer(&node).await;
    let backups = tempfile::tempdir().unwrap();
    for state in STATES {
        load_state(&writer, state).await;
        node.snapshot(state, &[]).await.unwrap();
        let backup = backups.path().join(state);
        copy_snapshot(&node, state, &backup.join("node1"), "nightly");
        let before = fingerprint(&backup);

        let run = drill_json(&backup, &["--runtime", "local", "--recover"]).await;
        assert_eq!(run.code, expected_code(state), "{state}: {}", run.stderr);
        let report = run.json();
        assert_same_report(&without_drill(report.clone()), &expected(state), state);
        let drill = &report["drill"];
        if state == "recoverable" {
            // The same writes as the SQL backends' rehearsal of the same fixture, as
            // conditional CQL: every one lands on the record as predicted.
            let recovery = &drill["recovery"];
            assert_eq!(recovery["succeeded"], true, "{recovery}");
            assert_eq!(recovery["unresolved_after"], 0, "{recovery}");
            assert_eq!(recovery["verdict_after"], "consistent", "{recovery}");
            let writes = &recovery["writes"];
            assert_eq!(writes["committed"], 4, "{recovery}");
            assert_eq!(writes["deleted_forward"], 1, "{recovery}");
            assert_eq!(writes["restored"], 4, "{recovery}");
            assert_eq!(writes["deleted_back"], 2, "{recovery}");
            assert_eq!(writes["abort_states"], 1, "{recovery}");
        }
        assert_eq!(drill["format"], "Cassandra node snapshots", "{drill}");
        assert_eq!(drill["runtime"], "local");
        assert!(drill["nodes"].is_null(), "no comparison without --per-node");
        assert_eq!(fingerprint(&backup), before, "{state}: the backup changed");
    }
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_taken_at_different_moments_are_reported_skewed_node_by_node() {
    let _slot = heavy_test_slot().await;
    let node = start_node().await;
    let writer = writer(&node).await;
    load_state(&writer, "recoverable").await;
    node.snapshot("early", &[]).await.unwrap();
    // The prepared transfer commits after the first snapshot: a later snapshot of another
    // replica holds it COMMITTED where the first holds it PREPARED.
    run_cql(
        &writer,
        "UPDATE bank.accounts SET tx_state = 3, tx_committed_at = 1700000002500 \
         WHERE account_id = 12;",
    )
    .await;
    node.snapshot("late", &[]).await.unwrap();
    let backup = tempfile::tempdir().unwrap();
    copy_snapshot(&node, "early", &backup.path().join("node1"), "nightly");
    copy_snapshot(&node, "late", &backup.path().join("node2"), "nightly");

    let run = drill_json(backup.path(), &["--runtime", "local", "--per-node"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "inconsistent", "{report}");
    let skewed: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "node-snapshots-skewed")
        .collect();
    assert_eq!(skewed.len(), 1, "{report}");
    assert_eq!(skewed[0]["table"], "bank.accounts");
    assert_eq!(skewed[0]["key"], serde_json::json!({"account_id": "12"}));
    assert_eq!(skewed[0]["tx_state"], "COMMITTED");
    assert_eq!(skewed[0]["count"], 1);
    let message = skewed[0]["message"].as_str().unwrap();
    assert!(
        message.contains("PREPARED on node1") && message.contains("COMMITTED on node2"),
        "{message}"
    );

    let nodes = &report["drill"]["nodes"];
    assert_eq!(nodes["divergent"], 1, "{nodes}");
    assert_eq!(nodes["max_skew_ms"], 300, "{nodes}");
    assert_eq!(nodes["on_some_nodes_only"], 0, "{nodes}");
    assert_eq!(nodes["nodes"][0]["name"], "node1");
    assert_eq!(nodes["nodes"][0]["behind"], 1);
    assert_eq!(nodes["nodes"][1]["behind"], 0);
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "node-consistency")
        .expect("a node-consistency check");
    assert_eq!(check["outcome"], "failed", "{check}");

    // Snapshots of one moment agree: the same backup with node2 = node1 passes the check,
    // and the rehearsal and its rescan judge the merged state only, not the per-node copies
    // (which hold the same unresolved records again).
    let agreeing = tempfile::tempdir().unwrap();
    copy_snapshot(&node, "early", &agreeing.path().join("node1"), "nightly");
    copy_snapshot(&node, "early", &agreeing.path().join("node2"), "nightly");
    let run = drill_json(
        agreeing.path(),
        &["--runtime", "local", "--per-node", "--recover"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "recoverable", "{report}");
    let recovery = &report["drill"]["recovery"];
    assert_eq!(recovery["succeeded"], true, "{recovery}");
    assert_eq!(recovery["unresolved_after"], 0, "{recovery}");
    assert_eq!(recovery["writes"]["committed"], 4, "{recovery}");
    assert_eq!(recovery["writes"]["restored"], 4, "{recovery}");
    assert!(
        !codes(&report).iter().any(|c| c == "node-snapshots-skewed"),
        "{report}"
    );
    assert_eq!(report["drill"]["nodes"]["divergent"], 0);
    assert!(report["drill"]["nodes"]["records"].as_u64().unwrap() > 0);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_or_ambiguous_snapshot_backups_are_refused_before_any_node_starts() {
    let _slot = heavy_test_slot().await;
    let node = start_node().await;
    let writer = writer(&node).await;
    load_state(&writer, "clean").await;
    // A keyspace named as --per-node would name node1's copy of `bank`.
    for cql in [
        "CREATE KEYSPACE bank__node1 WITH replication = \
         {'class': 'SimpleStrategy', 'replication_factor': 1}",
        "CREATE TABLE bank__node1.ledger (id int PRIMARY KEY, note text)",
        "INSERT INTO bank__node1.ledger (id, note) VALUES (1, 'x')",
    ] {
        run_cql(&writer, cql).await;
    }
    node.snapshot("one", &[]).await.unwrap();
    node.snapshot("two", &[]).await.unwrap();
    let backup = tempfile::tempdir().unwrap();
    copy_snapshot(&node, "one", backup.path(), "one");
    copy_snapshot(&node, "two", backup.path(), "two");
    node.stop().await.unwrap();

    // Two tags: the user must choose.
    let run = drill_json(backup.path(), &["--runtime", "local"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("several snapshot tags (one, two)")
            && run.stderr.contains("--snapshot-tag"),
        "{}",
        run.stderr
    );

    // --per-node would load node1's copy of `bank` into the backup's own `bank__node1`.
    let run = drill_json(
        backup.path(),
        &["--runtime", "local", "--snapshot-tag", "one", "--per-node"],
    )
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("bank__node1") && run.stderr.contains("holds itself"),
        "{}",
        run.stderr
    );

    // A missing SSTable component: truncated, naming the file.
    let statistics = walk(backup.path())
        .into_iter()
        .find(|p| {
            p.to_string_lossy().contains("/snapshots/two/")
                && p.to_string_lossy().ends_with("-Statistics.db")
        })
        .expect("a Statistics.db component");
    std::fs::remove_file(&statistics).unwrap();
    let run = drill_json(
        backup.path(),
        &["--runtime", "local", "--snapshot-tag", "two"],
    )
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("truncated") && run.stderr.contains("Statistics.db"),
        "{}",
        run.stderr
    );

    // Every component present, but a Data.db with flipped bytes or cut short: the restore
    // fails naming the table and quoting the node's reason (the digest check names the file),
    // never a verdict over half a table.
    for (damage, damage_data) in [
        ("flipped bytes", flip_bytes_mid_file as fn(&std::path::Path)),
        ("cut short", cut_in_half),
    ] {
        let damaged = tempfile::tempdir().unwrap();
        copy_tree(backup.path(), damaged.path());
        let data = walk(damaged.path())
            .into_iter()
            .find(|p| {
                let p = p.to_string_lossy();
                p.contains("/snapshots/one/") && p.contains("/accounts-") && p.ends_with("-Data.db")
            })
            .expect("the accounts table's Data.db");
        damage_data(&data);
        let run = drill_json(
            damaged.path(),
            &["--runtime", "local", "--snapshot-tag", "one"],
        )
        .await;
        assert_eq!(run.code, 3, "{damage}: {}", run.stderr);
        assert!(run.stderr.contains("accounts"), "{damage}: {}", run.stderr);
        assert!(
            !run.stdout.contains("\"verdict\""),
            "{damage}: no verdict: {}",
            run.stdout
        );
    }

    // Options that only SQL backups support are usage errors, not silently ignored.
    let run = drill_json(
        backup.path(),
        &[
            "--runtime",
            "local",
            "--snapshot-tag",
            "one",
            "--check",
            "money=SELECT 1",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--check"), "{}", run.stderr);

    // --per-node means nothing for a SQL dump.
    let run = drill_json(&fixture("clean").join("bank.sqlite"), &["--per-node"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);

    // An empty directory is no backup at all.
    let empty = tempfile::tempdir().unwrap();
    let run = drill_json(empty.path(), &["--runtime", "local"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("Cassandra snapshots"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_drill_in_a_container_and_leave_none_behind() {
    let _slot = heavy_test_slot().await;
    let images = std::process::Command::new("docker")
        .args(["image", "inspect", DOCKER_IMAGE])
        .output();
    assert!(
        images.is_ok_and(|o| o.status.success()),
        "this test needs a running Docker engine and the image {DOCKER_IMAGE}: run \
         scripts/install-docker and scripts/build-test-images"
    );
    let node = start_node().await;
    let writer = writer(&node).await;
    load_state(&writer, "torn").await;
    node.snapshot("torn", &[]).await.unwrap();
    let backup = tempfile::tempdir().unwrap();
    copy_snapshot(&node, "torn", backup.path(), "torn");
    node.stop().await.unwrap();

    let run = drill_json(
        backup.path(),
        &["--runtime", "docker", "--image", DOCKER_IMAGE],
    )
    .await;
    assert_eq!(run.code, expected_code("torn"), "{}", run.stderr);
    let report = run.json();
    assert_same_report(&without_drill(report.clone()), &expected("torn"), "torn");
    assert_eq!(report["drill"]["runtime"], "docker");
    let run_id = report["drill"]["run_id"].as_str().unwrap();
    let left = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=scalardb-verify.run-id={run_id}"),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "containers of {run_id} left behind"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    fingerprint(dir).into_iter().map(|(p, _, _)| p).collect()
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for file in walk(from) {
        let dest = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, &dest).unwrap();
    }
}

/// Inverts 64 bytes in the middle of the file, keeping its length.
fn flip_bytes_mid_file(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    let end = (middle + 64).min(bytes.len());
    for byte in &mut bytes[middle..end] {
        *byte = !*byte;
    }
    std::fs::write(path, bytes).unwrap();
}

fn cut_in_half(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// The crash states the real ScalarDB left on Cassandra (fixtures/oracle, see
/// tests/oracle/README.md): restored from `nodetool snapshot` output, each gives exactly the
/// report a scan of the live node gives: the same findings, predictions and verdict. Three of
/// the checked-in cases, one drill each (a node start is the cost): every crash point with the
/// default Coordinator, the older line with a custom one, and a torn cut. The differential test
/// scans every case of the matrix on a live node.
const SNAPSHOT_CASES: [&str; 3] = [
    "cassandra-3.19.1-mixed",
    "cassandra-3.15.9-mixed-custom-coordinator",
    "cassandra-3.19.1-torn-coordinator-first-committed-some",
];

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_of_scalardb_crash_states_restore_to_what_the_live_node_holds() {
    let _slot = heavy_test_slot().await;
    let node = start_node().await;
    let writer = writer(&node).await;
    let oracle = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oracle");
    let mut cases: Vec<_> = std::fs::read_dir(&oracle)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("backup.cql").is_file())
        .filter(|p| {
            SNAPSHOT_CASES
                .iter()
                .any(|c| p.file_name().is_some_and(|n| n == *c))
        })
        .collect();
    cases.sort();
    assert_eq!(
        cases.len(),
        SNAPSHOT_CASES.len(),
        "expected the cases {SNAPSHOT_CASES:?} in {} (scripts/oracle fixtures --backend cassandra)",
        oracle.display()
    );
    let backups = tempfile::tempdir().unwrap();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let truth: Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("truth.json")).unwrap())
                .unwrap();
        let coordinator = truth["coordinator_namespace"].as_str().unwrap().to_owned();
        for keyspace in [
            "coordinator",
            "custom_coord",
            "scalardb",
            "bank_a",
            "bank_b",
        ] {
            run_cql(&writer, &format!("DROP KEYSPACE IF EXISTS \"{keyspace}\";")).await;
        }
        run_cql(
            &writer,
            &std::fs::read_to_string(case.join("backup.cql")).unwrap(),
        )
        .await;
        let live = run_bin(
            [
                "scan",
                &node.url(),
                "--coordinator-namespace",
                &coordinator,
                "--format",
                "json",
                "--quiet",
            ]
            .map(str::to_owned)
            .to_vec(),
        )
        .await;
        node.snapshot(&name, &[]).await.unwrap();
        let backup = backups.path().join(&name);
        copy_snapshot(&node, &name, &backup, "oracle");

        let restored = drill_json(
            &backup,
            &[
                "--runtime",
                "local",
                "--coordinator-namespace",
                &coordinator,
                "--recover",
            ],
        )
        .await;
        let expected_verdict = truth["expected_verdict"].as_str().unwrap();
        assert_eq!(restored.json()["verdict"], expected_verdict, "{name}");
        assert_same_report(
            &without_drill(restored.json()),
            &normalized(live.json()),
            &name,
        );
        // The rehearsal did to each record what ScalarDB's own lazy recovery did to it.
        let recovery = &restored.json()["drill"]["recovery"];
        assert_eq!(recovery["unresolved_after"], 0, "{name}: {recovery}");
        assert_eq!(
            recovery["writes"]["unexpected"],
            serde_json::json!([]),
            "{name}"
        );
        let writes = &recovery["writes"];
        let (committed, restored_images, deleted) = scalardb_recovery_outcomes(&truth);
        assert_eq!(writes["committed"], committed, "{name}: {recovery}");
        assert_eq!(writes["restored"], restored_images, "{name}: {recovery}");
        assert_eq!(
            writes["deleted_forward"].as_u64().unwrap() + writes["deleted_back"].as_u64().unwrap(),
            deleted,
            "{name}: {recovery}"
        );
    }
    node.stop().await.unwrap();
}

/// What ScalarDB's own recovery did to the records of an oracle case (truth.json's
/// `recovered`): how many it committed, rolled back to a before image, and deleted.
fn scalardb_recovery_outcomes(truth: &Value) -> (u64, u64, u64) {
    let (mut committed, mut restored, mut deleted) = (0, 0, 0);
    for record in truth["recovered"].as_array().unwrap() {
        if record["exists"] == false {
            deleted += 1;
        } else if record["tx_id"] == record["backup_tx_id"] {
            assert_eq!(record["tx_state"], 3, "{record}");
            committed += 1;
        } else {
            restored += 1;
        }
    }
    (committed, restored, deleted)
}
