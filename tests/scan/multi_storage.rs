//! A deployment across several storages scanned as one: the bank fixture with `ledger` in
//! MariaDB (or `bank` in a SQLite file) and the rest, the Coordinator included, in
//! PostgreSQL. Each storage is loaded with the whole fixture, so every storage also holds
//! copies ScalarDB never reads there (the other namespaces, a Coordinator-shaped table):
//! the report must equal the one-database report of the same state, with every table,
//! finding and prediction in the storage the routing sends it to, and the copies ignored.
//! The servers are started once per test and shared by its read-only claims.

use scalardb_verify::runtime::local::{Engine, LocalInstance};
use serde_json::Value;

use crate::support::*;

const PG_PASSWORD: &str = "pg-s3cret-never-shown";

fn expected_code(state: &str) -> i32 {
    match std::fs::read_to_string(fixture(state).join("verdict"))
        .unwrap()
        .trim()
    {
        "consistent" | "recoverable" => 0,
        "inconsistent" => 1,
        other => panic!("unexpected verdict {other}"),
    }
}

/// `value` without its storage fields: what a one-database report of it holds.
fn without_storage(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| key.as_str() != "storage")
                .map(|(key, value)| (key.clone(), without_storage(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_storage).collect()),
        other => other.clone(),
    }
}

fn storage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["storages"]
        .as_array()
        .expect("storages")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no storage {name} in {}", report["storages"]))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

fn ignored(report: &Value, name: &str) -> Vec<String> {
    storage(report, name)["ignored"]
        .as_array()
        .expect("ignored")
        .iter()
        .map(|i| i["table"].as_str().unwrap().to_owned())
        .collect()
}

/// The claims every multi-storage report of a bank state must meet against the state's
/// one-database expected report.
fn assert_same_as_one_database(run: &Run, state: &str, where_is: &dyn Fn(&str) -> &'static str) {
    assert_eq!(run.code, expected_code(state), "{state}: {}", run.stderr);
    let report = run.json();
    let expected = expected(state);
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["verdict"], expected["verdict"], "{state}");
    for part in ["predictions", "findings"] {
        assert_same_report(
            &without_storage(&report[part]),
            &without_storage(&expected[part]),
            &format!("{state}: {part}"),
        );
    }
    assert_same_report(
        &without_storage(&report["summary"]["tables"]),
        &without_storage(&expected["summary"]["tables"]),
        &format!("{state}: tables"),
    );
    assert_eq!(
        report["summary"]["coordinator"], expected["summary"]["coordinator"],
        "{state}"
    );
    for table in report["summary"]["tables"].as_array().unwrap() {
        let name = table["table"].as_str().unwrap();
        assert_eq!(table["storage"], where_is(name), "{state}: {name}");
    }
    for prediction in report["predictions"].as_array().unwrap() {
        let name = prediction["table"].as_str().unwrap();
        assert_eq!(
            prediction["storage"],
            where_is(name),
            "{state}: {prediction}"
        );
    }
    for finding in report["findings"].as_array().unwrap() {
        if let Some(name) = finding["table"]
            .as_str()
            .filter(|t| !t.starts_with("coordinator"))
        {
            assert_eq!(finding["storage"], where_is(name), "{state}: {finding}");
        }
    }
    assert_eq!(report["coordinator_storage"], "pg", "{state}");
}

async fn postgres_with(server: &LocalInstance, database: &str, state: &str) {
    server
        .execute_sql(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    server
        .load_sql_file(&fixture(state).join("postgres.sql"), Some(database))
        .await
        .unwrap_or_else(|e| panic!("load {state}: {}", scalardb_verify::scan::error_chain(&e)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bank_deployment_across_postgres_and_mariadb_is_verified_as_one() {
    let pg = start(Engine::Postgres, Some(PG_PASSWORD)).await;
    let maria = start(Engine::MariaDb, None).await;
    pg.execute_sql("CREATE DATABASE empty").await.unwrap();
    let where_is = |table: &str| {
        if table.starts_with("ledger.") {
            "maria"
        } else {
            "pg"
        }
    };
    for state in STATES {
        let database = format!("bank_{}", state.replace('-', "_"));
        postgres_with(&pg, &database, state).await;
        maria
            .load_sql_file(&fixture(state).join("mysql.sql"), None)
            .await
            .unwrap_or_else(|e| panic!("load {state}: {}", scalardb_verify::scan::error_chain(&e)));
        let pg_storage = format!("pg={}", pg.url_for(&database));
        let maria_storage = format!("maria={}", maria.url());
        let deployment = [
            "--storage",
            &pg_storage,
            "--storage",
            &maria_storage,
            "--namespace",
            "ledger=maria",
            "--default-storage",
            "pg",
            "--coordinator-storage",
            "pg",
        ];
        let mut args = vec!["--format", "json", "--quiet", "--jobs", "3"];
        args.extend_from_slice(&deployment);
        let run = scan(&args);
        assert_same_as_one_database(&run, state, &where_is);
        assert!(
            !run.stdout.contains(PG_PASSWORD) && !run.stderr.contains(PG_PASSWORD),
            "a password was shown"
        );
        let report = run.json();
        let (pg_report, maria_report) = (storage(&report, "pg"), storage(&report, "maria"));
        assert_eq!(pg_report["kind"], "postgresql");
        assert_eq!(maria_report["kind"], "mysql");
        assert_eq!(pg_report["holds_coordinator"], true);
        assert_eq!(maria_report["holds_coordinator"], false);
        assert_eq!(strings(&pg_report["tables"]), ["bank.accounts"]);
        assert_eq!(strings(&maria_report["tables"]), ["ledger.entries"]);
        assert_eq!(ignored(&report, "pg"), ["ledger.entries"], "{state}");
        let mut maria_ignored = ignored(&report, "maria");
        maria_ignored.sort();
        assert_eq!(
            maria_ignored,
            ["bank.accounts", "coordinator.state"],
            "the shadow Coordinator and the bank copy in MariaDB are ignored"
        );
        let records = |s: &Value| s["records"].as_u64().unwrap();
        assert_eq!(
            records(pg_report) + records(maria_report),
            report["summary"]["records_scanned"].as_u64().unwrap()
        );

        if state == "recoverable" {
            // A PREPARED record in MariaDB whose Coordinator row lives in PostgreSQL.
            let forward = report["predictions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["table"] == "ledger.entries" && p["outcome"] == "roll_forward_commit")
                .unwrap_or_else(|| panic!("no roll forward in MariaDB: {}", report["predictions"]));
            assert_eq!(forward["storage"], "maria");
            assert_eq!(forward["tx_state"], "PREPARED");
            assert_eq!(forward["reason"], "coordinator_committed");
        }
        if state == "torn" {
            let mut csv_args = args.clone();
            csv_args[1] = "csv";
            let csv = scan(&csv_args);
            let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
            assert_eq!(&reader.headers().unwrap()[10], "storage");
            let storages: Vec<String> = reader
                .records()
                .map(|r| r.unwrap()[10].to_owned())
                .collect();
            assert!(storages.iter().any(|s| s == "maria"), "{}", csv.stdout);
            let mut junit_args = args.clone();
            junit_args[1] = "junit";
            let junit = scan(&junit_args);
            assert!(
                junit
                    .stdout
                    .contains(r#"<property name="storage" value="maria"/>"#),
                "{}",
                junit.stdout
            );
        }
        if state == "clean" {
            // A namespace mapped to a storage that holds no ScalarDB table.
            let empty_storage = format!("empty={}", pg.url_for("empty"));
            let mut with_empty = args.clone();
            with_empty.extend_from_slice(&[
                "--storage",
                &empty_storage,
                "--namespace",
                "audit=empty",
            ]);
            let run = scan(&with_empty);
            assert_eq!(run.code, 4, "indeterminate: {}", run.stderr);
            let report = run.json();
            let finding = report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["code"] == "storage-without-tables")
                .unwrap_or_else(|| panic!("{}", report["findings"]));
            assert_eq!(finding["storage"], "empty");
            assert_eq!(report["verdict"], "indeterminate");
        }
        maria
            .execute_sql(
                "DROP DATABASE bank; DROP DATABASE ledger; DROP DATABASE coordinator; \
                 DROP DATABASE scalardb;",
            )
            .await
            .unwrap();
    }

    // The Coordinator's storage unreachable: exit 3, naming it, never a partial report.
    let maria_storage = format!("maria={}", maria.url());
    let run = scan(&[
        "--format",
        "json",
        "--quiet",
        "--connect-timeout",
        "2",
        "--storage",
        "pg=postgres://postgres:secret-of-nobody@127.0.0.1:1/app",
        "--storage",
        &maria_storage,
        "--namespace",
        "ledger=maria",
        "--default-storage",
        "pg",
        "--coordinator-storage",
        "pg",
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("storage pg (postgres://postgres@127.0.0.1:1/app)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("secret-of-nobody"), "{}", run.stderr);

    maria.stop().await.unwrap();
    pg.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bank_namespace_in_sqlite_is_checked_against_a_coordinator_in_postgres() {
    let pg = start(Engine::Postgres, None).await;
    let where_is = |table: &str| {
        if table.starts_with("bank.") {
            "lite"
        } else {
            "pg"
        }
    };
    for state in ["recoverable", "torn", "coordinator-behind"] {
        let database = format!("bank_{}", state.replace('-', "_"));
        postgres_with(&pg, &database, state).await;
        let (_dir, path) = sqlite_copy(state);
        let lite = format!("lite={}", sqlite_url(&path));
        let pg_storage = format!("pg={}", pg.url_for(&database));
        let run = scan(&[
            "--format",
            "json",
            "--quiet",
            "--storage",
            &lite,
            "--storage",
            &pg_storage,
            "--namespace",
            "bank=lite",
            "--default-storage",
            "pg",
            "--coordinator-storage",
            "pg",
        ]);
        assert_same_as_one_database(&run, state, &where_is);
        let report = run.json();
        assert_eq!(storage(&report, "lite")["kind"], "sqlite");
        assert_eq!(
            strings(&storage(&report, "lite")["tables"]),
            ["bank.accounts"]
        );
        if state == "recoverable" {
            assert!(
                report["predictions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| { p["storage"] == "lite" && p["outcome"] == "roll_forward_commit" }),
                "{}",
                report["predictions"]
            );
        }
    }
    pg.stop().await.unwrap();
}

/// ScalarDB finds a transaction's Coordinator row with a `Get` by `tx_id`, so the storage's
/// own comparison decides which row: the `tx_id` column ScalarDB creates on MariaDB takes the
/// server's collation, which ignores case, and a record of `fwd…` finds the row `FWD…`.
/// PostgreSQL compares bytes, and there the same row is found by no record. The predictions
/// must follow the storage both where the Coordinator joins the table and where it lives in
/// another storage (the index, which hashes bytes, must not answer there).
#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_row_is_found_by_its_storages_own_comparison_of_ids() {
    const FORWARD: &str = "fwd00001-0000-0000-0000-000000000000";
    let state = "recoverable";
    let upper =
        format!("UPDATE coordinator.state SET tx_id = UPPER(tx_id) WHERE tx_id = '{FORWARD}';");
    let pg = start(Engine::Postgres, None).await;
    let maria = start(Engine::MariaDb, None).await;
    postgres_with(&pg, "bank", state).await;
    maria
        .load_sql_file(&fixture(state).join("mysql.sql"), None)
        .await
        .unwrap();
    maria.execute_sql(&upper).await.unwrap();
    let of_forward = |report: &Value| -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = report["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["tx_id"] == FORWARD)
            .map(|p| {
                (
                    p["table"].as_str().unwrap().to_owned(),
                    format!("{} {}", p["outcome"], p["reason"]),
                )
            })
            .collect();
        found.sort();
        found
    };
    // Each record resolved by the other id's row is named, with that row's id.
    let another_id = |report: &Value| -> Vec<String> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "coordinator-row-of-another-id")
            .map(|f| {
                assert_eq!(f["tx_id"], FORWARD, "{f}");
                assert!(
                    f["message"]
                        .as_str()
                        .unwrap()
                        .contains(&FORWARD.to_uppercase()),
                    "{f}"
                );
                f["table"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let forward = |run: &Run| {
        assert_eq!(run.code, 0, "{}", run.stderr);
        let report = run.json();
        assert_eq!(report["verdict"], "recoverable", "{}", run.stdout);
        let found = of_forward(&report);
        let mut named = another_id(&report);
        named.sort();
        let tables: Vec<String> = found.iter().map(|(t, _)| t.clone()).collect();
        if found.iter().any(|(_, o)| o.contains("roll_forward")) {
            assert_eq!(named, tables, "{}", run.stdout);
        } else {
            assert!(named.is_empty(), "{}", run.stdout);
        }
        found
    };
    // What ScalarDB does with the row keyed by the id itself: roll every record forward.
    let expected_forward = of_forward(&expected(state));
    assert_eq!(expected_forward.len(), 5, "{expected_forward:?}");
    assert!(
        expected_forward
            .iter()
            .all(|(_, outcome)| outcome.contains("roll_forward")
                && outcome.contains("coordinator_committed")),
        "{expected_forward:?}"
    );

    // MariaDB alone: every table joins the Coordinator in the database.
    let alone = scan_json(&maria.url(), &[]);
    assert_eq!(forward(&alone), expected_forward, "{}", alone.stdout);

    // bank in PostgreSQL, the Coordinator and ledger in MariaDB: bank's records are looked
    // up from another storage.
    let pg_storage = format!("pg={}", pg.url_for("bank"));
    let maria_storage = format!("maria={}", maria.url());
    let split = scan(&[
        "--format",
        "json",
        "--quiet",
        "--storage",
        &pg_storage,
        "--storage",
        &maria_storage,
        "--namespace",
        "ledger=maria",
        "--namespace",
        "coordinator=maria",
        "--default-storage",
        "pg",
        "--coordinator-storage",
        "maria",
    ]);
    assert_eq!(forward(&split), expected_forward, "{}", split.stdout);

    // The same change on PostgreSQL: no row is found, so nothing rolls forward.
    pg.execute_sql_in(Some("bank"), &upper).await.unwrap();
    let bytewise = scan_json(&pg.url_for("bank"), &[]);
    let report = bytewise.json();
    assert!(
        forward(&bytewise)
            .iter()
            .all(|(_, outcome)| !outcome.contains("roll_forward")),
        "{}",
        bytewise.stdout
    );
    assert_eq!(report["summary"]["roll_forward"], 0, "{}", bytewise.stdout);

    maria.stop().await.unwrap();
    pg.stop().await.unwrap();
}
