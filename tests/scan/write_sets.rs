//! The proof from ScalarDB 3.19's write sets, on real SQLite files and a real PostgreSQL
//! server: the Coordinator rows carry the `tx_write_set` BLOBs real ScalarDB 3.19.1 wrote
//! (fixtures/write_sets/3.19.1.json: a seed of `ws.accounts` and `ws.ledger`, a transfer
//! between two accounts that also writes `ledger` row `bob`, and a failed commit), and the
//! records are laid out as the copy of each claim leaves them.

use scalardb_verify::runtime::local::Engine;
use serde_json::Value;

use crate::support::*;

const SEED: &str = "1ec4c2f5-f78b-4fd7-9f3a-c751c5540dee";
const TRANSFER: &str = "c38eda42-63c6-4399-bcb4-f04f4a5d5d89";
const FAILED: &str = "8738809f-22df-4e93-8be3-c2929ee7d38f";
/// The transfer's Coordinator `tx_created_at`, stamped on its records.
const C: i64 = 1_700_000_010_000;
const SEEDED: i64 = C - 5_000;

fn write_set_hex(label: &str) -> String {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/write_sets/3.19.1.json")).unwrap(),
    )
    .unwrap();
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

#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    fn table(self, namespace: &str, table: &str) -> String {
        match self {
            Self::Sqlite => format!("\"{namespace}${table}\""),
            Self::Postgres => format!("{namespace}.{table}"),
        }
    }

    fn blob(self, hex: &str) -> String {
        match self {
            Self::Sqlite => format!("X'{hex}'"),
            Self::Postgres => format!("'\\x{hex}'::bytea"),
        }
    }

    fn schema(self) -> String {
        let meta = "tx_id TEXT, tx_state INT, tx_version INT, tx_prepared_at BIGINT, \
                    tx_committed_at BIGINT, before_tx_id TEXT, before_tx_state INT, \
                    before_tx_version INT, before_tx_prepared_at BIGINT, \
                    before_tx_committed_at BIGINT";
        let blob = match self {
            Self::Sqlite => "BLOB",
            Self::Postgres => "BYTEA",
        };
        let schemas = match self {
            Self::Sqlite => String::new(),
            Self::Postgres => "CREATE SCHEMA ws; CREATE SCHEMA coordinator;".to_owned(),
        };
        format!(
            "{schemas}
             CREATE TABLE {} (id INT, branch TEXT, balance INT, before_balance INT, {meta}, \
             PRIMARY KEY (id, branch));
             CREATE TABLE {} (name TEXT, amount INT, before_amount INT, {meta}, \
             PRIMARY KEY (name));
             CREATE TABLE {} (tx_id TEXT PRIMARY KEY, tx_state INT, tx_created_at BIGINT, \
             tx_write_set {blob});",
            self.table("ws", "accounts"),
            self.table("ws", "ledger"),
            self.table("coordinator", "state"),
        )
    }

    /// A record of `ws.accounts` (`key` = `id, 'branch'`) or `ws.ledger` (`key` = `'name'`).
    fn record(self, table: &str, key: &str, tx_id: &str, state: i64, at: i64) -> String {
        let committed = if state == 3 {
            at.to_string()
        } else {
            "NULL".to_owned()
        };
        let before = if state == 3 {
            "NULL, NULL, NULL, NULL, NULL".to_owned()
        } else {
            format!("'{SEED}', 3, 1, {}, {}", SEEDED - 5, SEEDED)
        };
        format!(
            "INSERT INTO {} VALUES ({key}, 100, NULL, '{tx_id}', {state}, 2, {}, {committed}, \
             {before});",
            self.table("ws", table),
            at - 5
        )
    }

    fn coordinator(self, tx_id: &str, state: i64, at: i64, write_set: Option<&str>) -> String {
        format!(
            "INSERT INTO {} VALUES ('{tx_id}', {state}, {at}, {});",
            self.table("coordinator", "state"),
            write_set.map_or_else(
                || "NULL".to_owned(),
                |label| self.blob(&write_set_hex(label))
            )
        )
    }

    /// The seed committed long ago, then the transfer, everything copied after both.
    fn intact(self) -> String {
        [
            self.schema(),
            self.coordinator(SEED, 3, SEEDED, Some("seed")),
            self.coordinator(TRANSFER, 3, C, Some("transfer")),
            self.record("accounts", "1, 'tokyo'", TRANSFER, 3, C),
            self.record("accounts", "2, 'osaka'", TRANSFER, 3, C),
            self.record("ledger", "'alice'", SEED, 3, SEEDED),
            self.record("ledger", "'bob'", TRANSFER, 3, C),
        ]
        .join("\n")
    }

    /// `ws.ledger` copied before the transfer wrote `bob`: it still holds an older version.
    fn torn(self) -> String {
        [
            self.schema(),
            self.coordinator(SEED, 3, SEEDED, Some("seed")),
            self.coordinator(TRANSFER, 3, C, Some("transfer")),
            self.coordinator("old-bob", 3, C - 300, None),
            self.record("accounts", "1, 'tokyo'", TRANSFER, 3, C),
            self.record("accounts", "2, 'osaka'", TRANSFER, 3, C),
            self.record("ledger", "'alice'", SEED, 3, SEEDED),
            self.record("ledger", "'bob'", "old-bob", 3, C - 300),
        ]
        .join("\n")
    }

    /// `finishTransaction(transfer)` rolled its write set forward and deleted its row.
    fn cleaned_up(self) -> String {
        [
            self.schema(),
            self.coordinator(SEED, 3, SEEDED, Some("seed")),
            self.record("accounts", "1, 'tokyo'", TRANSFER, 3, C),
            self.record("accounts", "2, 'osaka'", TRANSFER, 3, C),
            self.record("ledger", "'alice'", SEED, 3, SEEDED),
            self.record("ledger", "'bob'", TRANSFER, 3, C),
        ]
        .join("\n")
    }
}

fn with_code<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

fn sqlite_db(sql: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ws.sqlite");
    std::fs::write(&path, b"").unwrap();
    sqlite_exec(&path, sql);
    let url = sqlite_url(&path);
    (dir, url)
}

fn assert_intact(run: &Run, context: &str) {
    let report = run.json();
    assert_eq!(run.code, 0, "{context}: {}", run.stdout);
    assert_eq!(report["verdict"], "consistent", "{context}");
    assert!(codes(&report).is_empty(), "{context}: {:?}", codes(&report));
    let summary = &report["summary"]["write_sets"];
    assert_eq!(
        summary["committed_with_write_set"], 2,
        "{context}: {summary}"
    );
    assert_eq!(summary["checked"], 2, "{context}: {summary}");
    // The transfer's three records are found at its version; the seed's are at a later one
    // (the transfer's) or its own, but its `ws.events` record is in no scanned table.
    assert_eq!(summary["proven"], 1, "{context}: {summary}");
    assert_eq!(summary["unverified"], 1, "{context}: {summary}");
    assert_eq!(summary["torn"], 0, "{context}: {summary}");
}

fn assert_torn(run: &Run, context: &str) {
    let report = run.json();
    assert_eq!(run.code, 1, "{context}: {}", run.stdout);
    assert_eq!(report["verdict"], "inconsistent", "{context}");
    let torn = with_code(&report, "torn-transaction-missing-write");
    assert_eq!(torn.len(), 1, "{context}: {:?}", codes(&report));
    let finding = torn[0];
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["table"], "ws.ledger", "{context}");
    assert_eq!(finding["key"]["name"], "bob", "{context}: {finding}");
    assert_eq!(finding["tx_id"], TRANSFER, "{context}");
    let message = finding["message"].as_str().unwrap();
    for part in ["old-bob", &C.to_string(), &(C - 300).to_string(), "300 ms"] {
        assert!(message.contains(part), "{context}: {part} not in {message}");
    }
    assert_eq!(report["summary"]["write_sets"]["torn"], 1, "{context}");
}

fn assert_cleaned_up(run: &Run, context: &str) {
    let report = run.json();
    assert_eq!(run.code, 0, "{context}: {}", run.stdout);
    assert_eq!(report["verdict"], "consistent", "{context}");
    // One warning per table holding the transfer's records, each saying what explains them.
    assert_eq!(
        codes(&report),
        vec!["committed-without-coordinator-state"; 2],
        "{context}"
    );
    for finding in with_code(&report, "committed-without-coordinator-state") {
        assert!(
            finding["message"]
                .as_str()
                .unwrap()
                .contains("finishTransaction"),
            "{context}: {finding}"
        );
    }
    assert_eq!(
        report["summary"]["write_sets"]["committed_with_write_set"], 1,
        "{context}"
    );
}

#[test]
fn sqlite_write_sets_prove_an_intact_copy_and_a_torn_one_is_inconsistent() {
    let (_dir, url) = sqlite_db(&Db::Sqlite.intact());
    assert_intact(&scan_json(&url, &[]), "sqlite intact");
    let (_dir, url) = sqlite_db(&Db::Sqlite.torn());
    assert_torn(&scan_json(&url, &[]), "sqlite torn");
    let (_dir, url) = sqlite_db(&Db::Sqlite.cleaned_up());
    assert_cleaned_up(&scan_json(&url, &[]), "sqlite cleaned up");
}

#[test]
fn an_undecodable_write_set_is_a_finding_naming_its_transaction() {
    let db = Db::Sqlite;
    let sql = [
        db.schema(),
        format!(
            "INSERT INTO {} VALUES ('{TRANSFER}', 3, {C}, X'0801ffffffff');",
            db.table("coordinator", "state")
        ),
        db.record("accounts", "1, 'tokyo'", TRANSFER, 3, C),
    ]
    .join("\n");
    let (_dir, url) = sqlite_db(&sql);
    let run = scan_json(&url, &[]);
    let report = run.json();
    let found = with_code(&report, "write-set-undecodable");
    assert_eq!(found.len(), 1, "{:?}", codes(&report));
    assert_eq!(found[0]["tx_id"], TRANSFER);
    assert_eq!(report["verdict"], "indeterminate");
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(report["summary"]["write_sets"]["undecodable"], 1);
}

#[test]
fn a_record_an_aborted_transaction_left_outside_its_write_set_is_a_finding() {
    let db = Db::Sqlite;
    let sql = [
        db.schema(),
        db.coordinator(SEED, 3, SEEDED, Some("seed")),
        db.coordinator(FAILED, 4, C, Some("aborted-commit")),
        db.record("ledger", "'carol'", FAILED, 1, C - 10),
        db.record("ledger", "'zed'", FAILED, 1, C - 10),
    ]
    .join("\n");
    let (_dir, url) = sqlite_db(&sql);
    let run = scan_json(&url, &[]);
    let report = run.json();
    let found = with_code(&report, "aborted-write-outside-write-set");
    assert_eq!(found.len(), 1, "{:?}", codes(&report));
    assert_eq!(found[0]["key"]["name"], "zed");
    assert_eq!(found[0]["tx_id"], FAILED);
    assert_eq!(found[0]["severity"], "warning");
    // Both are rolled back whatever the write set says: the verdict stays recoverable.
    assert_eq!(report["verdict"], "recoverable");
    assert_eq!(run.code, 0);
    assert_eq!(report["summary"]["write_sets"]["aborted_checked"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_write_sets_prove_an_intact_copy_and_a_torn_one_is_inconsistent() {
    let server = start(Engine::Postgres, None).await;
    for (database, sql) in [
        ("intact", Db::Postgres.intact()),
        ("torn", Db::Postgres.torn()),
        ("cleaned", Db::Postgres.cleaned_up()),
    ] {
        server
            .execute_sql(&format!("CREATE DATABASE {database}"))
            .await
            .unwrap();
        server.execute_sql_in(Some(database), &sql).await.unwrap();
    }
    assert_intact(
        &scan_json(&server.url_for("intact"), &[]),
        "postgres intact",
    );
    assert_torn(&scan_json(&server.url_for("torn"), &[]), "postgres torn");
    assert_cleaned_up(
        &scan_json(&server.url_for("cleaned"), &[]),
        "postgres cleaned up",
    );
    server.stop().await.unwrap();
}

#[test]
fn with_many_write_sets_only_the_transactions_near_a_tables_newest_write_are_checked() {
    let db = Db::Sqlite;
    let blob = db.blob(&write_set_hex("transfer"));
    let coordinator = db.table("coordinator", "state");
    // 12 000 earlier transactions that wrote the same records long before the transfer, and
    // five within the margin of the tables' newest write (the transfer's, at C).
    let sql = [
        db.intact(),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000) \
             INSERT INTO {coordinator} SELECT 'old-' || i, 3, {} - i, {blob} FROM n;",
            C - 200_000
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) \
             INSERT INTO {coordinator} SELECT 'recent-' || i, 3, {} - i, {blob} FROM n;",
            C - 1_000
        ),
    ]
    .join("\n");
    let (_dir, url) = sqlite_db(&sql);
    let run = scan_json(&url, &[]);
    let report = run.json();
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(report["verdict"], "consistent", "{:?}", codes(&report));
    let summary = &report["summary"]["write_sets"];
    assert_eq!(summary["committed_with_write_set"], 12_007, "{summary}");
    // The transfer, the five recent ones and the seed (5 s before the newest write; its
    // `ws.events` record is in no scanned table); the 12 000 old ones are skipped.
    assert_eq!(summary["checked"], 7, "{summary}");
    assert_eq!(summary["skipped_not_at_risk"], 12_000, "{summary}");
    assert_eq!(summary["proven"], 6, "{summary}");
    assert_eq!(summary["unverified"], 1, "{summary}");
    assert!(
        summary["at_risk_rule"]
            .as_str()
            .unwrap()
            .contains("60000 ms before the newest write"),
        "{summary}"
    );
}
