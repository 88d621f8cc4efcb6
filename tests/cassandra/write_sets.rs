//! The write-set proof on a real Cassandra node: the Coordinator's rows carry the
//! `tx_write_set` BLOBs real ScalarDB 3.19.1 wrote (fixtures/write_sets/3.19.1.json), read
//! in one pass over the Coordinator, and the records they name read by key (16 in flight).
//! One keyspace set intact, then the same with `ws.ledger` copied before the transfer
//! wrote `bob`.

use serde_json::Value;

use crate::support::*;

const SEED: &str = "1ec4c2f5-f78b-4fd7-9f3a-c751c5540dee";
const TRANSFER: &str = "c38eda42-63c6-4399-bcb4-f04f4a5d5d89";
/// The transfer's Coordinator `tx_created_at`, stamped on its records.
const C: i64 = 1_700_000_010_000;
const SEEDED: i64 = C - 5_000;

fn write_set_hex(label: &str) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/write_sets/3.19.1.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    fixture["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == label)
        .unwrap_or_else(|| panic!("no {label} row in the write-set fixture"))["write_set_hex"]
        .as_str()
        .unwrap()
        .to_owned()
}

const META: &str = "tx_id text, tx_state int, tx_version int, tx_prepared_at bigint, \
                    tx_committed_at bigint, before_tx_id text, before_tx_state int, \
                    before_tx_version int, before_tx_prepared_at bigint, \
                    before_tx_committed_at bigint";

fn schema() -> String {
    let keyspace = |name: &str| {
        format!(
            "CREATE KEYSPACE {name} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}};"
        )
    };
    [
        keyspace("ws"),
        keyspace("coordinator"),
        format!(
            "CREATE TABLE ws.accounts (id int, branch text, balance int, before_balance int, \
             {META}, PRIMARY KEY ((id), branch));"
        ),
        format!(
            "CREATE TABLE ws.ledger (name text, amount int, before_amount int, {META}, \
             PRIMARY KEY ((name)));"
        ),
        "CREATE TABLE coordinator.state (tx_id text, tx_state int, tx_created_at bigint, \
         tx_write_set blob, PRIMARY KEY ((tx_id)));"
            .to_owned(),
    ]
    .join("\n")
}

fn record(table: &str, columns: &str, key: &str, tx_id: &str, at: i64) -> String {
    format!(
        "INSERT INTO ws.{table} ({columns}, tx_id, tx_state, tx_version, tx_prepared_at, \
         tx_committed_at) VALUES ({key}, '{tx_id}', 3, 2, {}, {at});",
        at - 5
    )
}

fn coordinator(tx_id: &str, at: i64, write_set: Option<&str>) -> String {
    let blob = write_set.map_or_else(|| "null".to_owned(), |l| format!("0x{}", write_set_hex(l)));
    format!(
        "INSERT INTO coordinator.state (tx_id, tx_state, tx_created_at, tx_write_set) \
         VALUES ('{tx_id}', 3, {at}, {blob});"
    )
}

fn state(torn: bool) -> String {
    let account = |key: &str| record("accounts", "id, branch, balance", key, TRANSFER, C);
    let ledger = |name: &str, tx_id: &str, at: i64| {
        record(
            "ledger",
            "name, amount",
            &format!("'{name}', 100"),
            tx_id,
            at,
        )
    };
    let mut cql = vec![
        schema(),
        coordinator(SEED, SEEDED, Some("seed")),
        coordinator(TRANSFER, C, Some("transfer")),
        account("1, 'tokyo', 100"),
        account("2, 'osaka', 100"),
        ledger("alice", SEED, SEEDED),
    ];
    if torn {
        cql.push(coordinator("old-bob", C - 300, None));
        cql.push(ledger("bob", "old-bob", C - 300));
    } else {
        cql.push(ledger("bob", TRANSFER, C));
    }
    cql.join("\n")
}

fn drop_all() -> &'static str {
    "DROP KEYSPACE IF EXISTS ws;\nDROP KEYSPACE IF EXISTS coordinator;"
}

#[tokio::test(flavor = "multi_thread")]
async fn write_sets_prove_an_intact_keyspace_and_find_the_torn_one_on_cassandra() {
    let _slot = heavy_test_slot().await;
    let node = start_node().await;
    let writer = writer(&node).await;

    run_cql(&writer, &state(false)).await;
    let run = scan_json(&node.url()).await;
    let report = run.json();
    assert_eq!(run.code, 0, "intact: {}\n{}", run.stdout, run.stderr);
    assert_eq!(
        report["verdict"],
        "consistent",
        "intact: {:?}",
        codes(&report)
    );
    assert!(codes(&report).is_empty(), "intact: {:?}", codes(&report));
    let summary = &report["summary"]["write_sets"];
    assert_eq!(summary["committed_with_write_set"], 2, "{summary}");
    assert_eq!(summary["checked"], 2, "{summary}");
    // The transfer's three records at its version; the seed names `ws.events`, not scanned.
    assert_eq!(summary["proven"], 1, "{summary}");
    assert_eq!(summary["unverified"], 1, "{summary}");
    assert_eq!(summary["records_looked_up"], 6, "{summary}");

    run_cql(&writer, drop_all()).await;
    run_cql(&writer, &state(true)).await;
    let run = scan_json(&node.url()).await;
    let report = run.json();
    assert_eq!(run.code, 1, "torn: {}\n{}", run.stdout, run.stderr);
    assert_eq!(
        report["verdict"],
        "inconsistent",
        "torn: {:?}",
        codes(&report)
    );
    let torn: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "torn-transaction-missing-write")
        .collect();
    assert_eq!(torn.len(), 1, "{:?}", codes(&report));
    assert_eq!(torn[0]["table"], "ws.ledger", "{}", torn[0]);
    assert_eq!(torn[0]["key"]["name"], "bob", "{}", torn[0]);
    assert_eq!(torn[0]["tx_id"], TRANSFER, "{}", torn[0]);
    let message = torn[0]["message"].as_str().unwrap();
    assert!(message.contains("old-bob"), "{message}");
    assert_eq!(report["summary"]["write_sets"]["torn"], 1);

    node.stop().await.unwrap();
}
