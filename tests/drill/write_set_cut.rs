//! The cut between separately copied parts, decided by ScalarDB 3.19's write sets: one
//! PostgreSQL database holding `ws.accounts`, `ws.ledger` and a Coordinator whose rows carry
//! the `tx_write_set` BLOBs real ScalarDB 3.19.1 wrote (fixtures/write_sets/3.19.1.json),
//! backed up as two real pg_dump runs seconds apart (`-n ws`, then `-n coordinator`, each
//! `--verbose` so the dump records its start and end) joined into one file. The transfer's
//! Coordinator row is created between the two runs: it is at risk, and only its write set
//! can prove it intact.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scalardb_verify::runtime::local::{Engine, LocalInstance};
use serde_json::Value;

use crate::support::*;

const SEED: &str = "1ec4c2f5-f78b-4fd7-9f3a-c751c5540dee";
const TRANSFER: &str = "c38eda42-63c6-4399-bcb4-f04f4a5d5d89";

fn write_set_hex(label: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/write_sets/3.19.1.json");
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

const SCHEMA: &str = "CREATE SCHEMA ws; CREATE SCHEMA coordinator;
    CREATE TABLE ws.accounts (id INT, branch TEXT, balance INT, before_balance INT, META,
        PRIMARY KEY (id, branch));
    CREATE TABLE ws.ledger (name TEXT, amount INT, before_amount INT, META,
        PRIMARY KEY (name));
    CREATE TABLE coordinator.state (tx_id TEXT PRIMARY KEY, tx_state INT,
        tx_created_at BIGINT, tx_write_set BYTEA);";

const META: &str = "tx_id TEXT, tx_state INT, tx_version INT, tx_prepared_at BIGINT, \
                    tx_committed_at BIGINT, before_tx_id TEXT, before_tx_state INT, \
                    before_tx_version INT, before_tx_prepared_at BIGINT, \
                    before_tx_committed_at BIGINT";

/// A COMMITTED record of `ws.accounts` (`key` = `id, 'branch'`) or `ws.ledger` (`'name'`).
fn record(table: &str, key: &str, tx_id: &str, at: i64) -> String {
    format!(
        "INSERT INTO ws.{table} VALUES ({key}, 100, NULL, '{tx_id}', 3, 2, {}, {at}, \
         NULL, NULL, NULL, NULL, NULL);",
        at - 5
    )
}

fn coordinator(tx_id: &str, at: i64, write_set: Option<&str>) -> String {
    let blob = write_set.map_or_else(
        || "NULL".to_owned(),
        |label| format!("'\\x{}'::bytea", write_set_hex(label)),
    );
    format!("INSERT INTO coordinator.state VALUES ('{tx_id}', 3, {at}, {blob});")
}

/// The case's database: the seed long before the copies, the transfer (at `c`) between
/// them, and what the case changes.
fn case(name: &str, c: i64) -> String {
    let seeded = c - 60_000;
    let mut sql = vec![
        SCHEMA.replace("META", META),
        coordinator(SEED, seeded, Some("seed")),
        coordinator(TRANSFER, c, Some("transfer")),
        record("accounts", "1, 'tokyo'", TRANSFER, c),
        record("accounts", "2, 'osaka'", TRANSFER, c),
        record("ledger", "'alice'", SEED, seeded),
    ];
    match name {
        "intact" => sql.push(record("ledger", "'bob'", TRANSFER, c)),
        // `ws.ledger` copied before the transfer wrote `bob`: an older version.
        "torn" => {
            sql.push(coordinator("old-bob", seeded + 1_000, None));
            sql.push(record("ledger", "'bob'", "old-bob", seeded + 1_000));
        }
        // Also a transaction between the copies whose row carries no write set.
        "unlogged" => {
            sql.push(record("ledger", "'bob'", TRANSFER, c));
            sql.push(coordinator("unlogged", c + 100, None));
        }
        other => panic!("no case {other}"),
    }
    sql.join("\n")
}

/// `pg_dump --verbose` of `schema` in `database` (UTC, so the recorded times carry a zone).
fn dump(server: &LocalInstance, database: &str, schema: &str) -> Vec<u8> {
    let mut command = Command::new("pg_dump");
    if let Some(password) = server.password() {
        command.env("PGPASSWORD", password);
    }
    let output = command
        .env("TZ", "UTC")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-U", "postgres", "--verbose", "-n", schema, database])
        .output()
        .expect("run pg_dump");
    assert!(
        output.status.success(),
        "pg_dump -n {schema} {database} failed"
    );
    output.stdout
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn write_sets_decide_the_transactions_between_two_pg_dump_runs() {
    let cases = ["intact", "torn", "unlogged"];
    let server = start(Engine::Postgres).await;
    // The transfer commits 4 s from now: after the first dump starts, before the second.
    let c = now_ms() + 4_000;
    for name in cases {
        server
            .execute_sql(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        server
            .execute_sql_in(Some(name), &case(name, c))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let firsts: Vec<Vec<u8>> = cases.iter().map(|n| dump(&server, n, "ws")).collect();
    let started = now_ms();
    assert!(
        started < c - 1_000,
        "loading took too long: the first dumps ended at {started}, the transfer is at {c}"
    );
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(c + 2_000 - started).unwrap(),
    ))
    .await;
    let mut files = Vec::new();
    for (name, first) in cases.iter().zip(firsts) {
        let path = dir.path().join(format!("{name}.sql"));
        let mut bytes = first;
        bytes.extend(dump(&server, name, "coordinator"));
        std::fs::write(&path, bytes).unwrap();
        files.push(path);
    }
    server.stop().await.unwrap();

    let drilled: Vec<Value> = files
        .iter()
        .map(|path| {
            let run = drill(path, &[]);
            let report = run.json();
            let cut = &report["summary"]["cut"];
            assert_eq!(cut["parts"].as_array().unwrap().len(), 2, "{cut}");
            let at_risk = &cut["at_risk"];
            assert!(
                at_risk["from_ms"].as_i64().unwrap() <= c
                    && c <= at_risk["to_ms"].as_i64().unwrap(),
                "{}: the transfer ({c}) is not between the copies: {cut}",
                path.display()
            );
            report
        })
        .collect();

    // (a) The one transaction between the copies is proven intact: the cut is proven.
    let intact = &drilled[0];
    let cut = &intact["summary"]["cut"];
    assert_eq!(intact["verdict"], "consistent", "{:?} {cut}", codes(intact));
    assert!(codes(intact).is_empty(), "{:?}", codes(intact));
    assert_eq!(cut["proven"], true, "{cut}");
    assert!(
        cut["reason"]
            .as_str()
            .unwrap()
            .contains("proven intact by its write set"),
        "{cut}"
    );
    assert_eq!(cut["at_risk"]["proven_by_write_sets"], 1, "{cut}");
    assert_eq!(cut["at_risk"]["committed_at_most"], 1, "{cut}");

    // (b) Its write set names `bob` at an older version: a tear, inconsistent.
    let torn = &drilled[1];
    let cut = &torn["summary"]["cut"];
    assert_eq!(torn["verdict"], "inconsistent", "{:?}", codes(torn));
    assert!(
        codes(torn).contains(&"torn-transaction-missing-write".to_owned()),
        "{:?}",
        codes(torn)
    );
    assert_eq!(cut["proven"], false, "{cut}");
    assert_eq!(cut["at_risk"]["torn_by_write_sets"], 1, "{cut}");
    assert_eq!(cut["at_risk"]["proven_by_write_sets"], 0, "{cut}");

    // (c) A transaction between the copies without a write set: still at risk.
    let unlogged = &drilled[2];
    let cut = &unlogged["summary"]["cut"];
    assert_eq!(
        unlogged["verdict"],
        "indeterminate",
        "{:?}",
        codes(unlogged)
    );
    assert_eq!(codes(unlogged), ["cut-window-at-risk"], "{cut}");
    assert_eq!(cut["proven"], false, "{cut}");
    assert_eq!(cut["at_risk"]["proven_by_write_sets"], 1, "{cut}");
    assert_eq!(cut["at_risk"]["committed_at_most"], 2, "{cut}");
    let examples = cut["at_risk"]["transactions"].as_array().unwrap();
    assert_eq!(examples[0]["tx_id"], "unlogged", "{cut}");
    assert_eq!(examples[0]["proof"], "unproven", "{cut}");
    let finding = unlogged["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "cut-window-at-risk")
        .unwrap();
    assert_eq!(finding["count"], 2, "{finding}");
    assert_eq!(finding["tx_id"], "unlogged", "{finding}");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains("1 proven intact, 0 torn and 1 unproven"),
        "{message}"
    );
}
