//! A backup set drilled as the deployment it restores: the bank fixture with `ledger` in
//! MariaDB and the rest, the Coordinator included, in PostgreSQL, each storage backed up by
//! its own tool (pg_dump of bank, coordinator and scalardb; mariadb-dump of ledger and
//! scalardb) and restored into a disposable local server of its own. The drill must give
//! the verdict, predictions and findings `scan` gives for the two live databases, rehearse
//! recovery in both instances, refuse a set that does not fit the deployment before any
//! instance starts, and leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use scalardb_verify::runtime::cassandra::{CassandraInstance, CassandraOptions};
use scalardb_verify::runtime::local::{Engine, LocalInstance};
use serde_json::Value;

use crate::support::*;

/// The deployment: `ledger` in MariaDB, everything else and the Coordinator in PostgreSQL.
/// In a drill the URLs' hosts are never contacted.
pub const DRILL_DEPLOYMENT: &[&str] = &[
    "--storage",
    "pg=postgres://-/app",
    "--storage",
    "maria=mysql://-/",
    "--namespace",
    "ledger=maria",
    "--default-storage",
    "pg",
    "--coordinator-storage",
    "pg",
];

/// The two live databases holding one fixture state.
struct Live {
    pg: LocalInstance,
    maria: LocalInstance,
}

impl Live {
    async fn new(state: &str) -> Self {
        let pg = postgres_with(state).await;
        let maria = start(Engine::MariaDb).await;
        maria
            .load_sql_file(&fixture(state).join("mysql.sql"), None)
            .await
            .unwrap_or_else(|e| panic!("load {state}: {}", scalardb_verify::scan::error_chain(&e)));
        Self { pg, maria }
    }

    /// `scan` of the live deployment.
    fn scan(&self) -> Run {
        let pg = format!("pg={}", self.pg.url_for("source"));
        let maria = format!("maria={}", self.maria.url());
        run(
            "scan",
            &[
                "--storage",
                &pg,
                "--storage",
                &maria,
                "--namespace",
                "ledger=maria",
                "--default-storage",
                "pg",
                "--coordinator-storage",
                "pg",
            ],
        )
    }

    /// Each storage's backup, by its own tool: `(pg_dump, mariadb-dump of ledger)`, and a
    /// mariadb-dump of every namespace (which holds namespaces routed to PostgreSQL).
    fn dumps(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let pg = dir.join("pg.sql");
        pg_dump(
            &self.pg,
            &["-n", "bank", "-n", "coordinator", "-n", "scalardb"],
            &pg,
        );
        let maria = dir.join("maria.sql");
        mariadb_dump_of(&self.maria, &["ledger", "scalardb"], &maria);
        let whole = dir.join("maria-whole.sql");
        mariadb_dump(&self.maria, &whole);
        (pg, maria, whole)
    }

    async fn stop(self) {
        self.pg.stop().await.unwrap();
        self.maria.stop().await.unwrap();
    }
}

/// `drill ARGS… DEPLOYMENT --runtime local`, spawned so its pid (the run id) is known.
fn drill_set(args: &[&str]) -> (Run, u32) {
    drill_in(DRILL_DEPLOYMENT, args)
}

/// `drill ARGS… DEPLOYMENT --runtime local` of another deployment.
fn drill_in(deployment: &[&str], args: &[&str]) -> (Run, u32) {
    let child = Command::new(BIN)
        .arg("drill")
        .args(args)
        .args(deployment)
        .args(["--format", "json", "--quiet", "--runtime", "local"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scalardb-verify");
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    (run, pid)
}

/// The dumps of `state` as [`Live::dumps`] makes them, in a directory of their own.
async fn dumps_of(state: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let live = Live::new(state).await;
    let dir = tempfile::tempdir().unwrap();
    let (pg, maria, whole) = live.dumps(dir.path());
    live.stop().await;
    (dir, pg, maria, whole)
}

/// The first finding of `code` in `report`.
fn finding<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code}: {}", report["findings"]))
}

fn named(storage: &str, path: &Path) -> String {
    format!("{storage}={}", path.display())
}

/// Predictions as comparable rows, in order.
fn predictions(report: &Value) -> Vec<String> {
    let mut rows: Vec<String> = report["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {} {} {} {}",
                p["storage"],
                p["table"],
                p["key"],
                p["tx_id"],
                p["tx_state"],
                p["outcome"],
                p["reason"]
            )
        })
        .collect();
    rows.sort();
    rows
}

fn findings(report: &Value) -> Vec<String> {
    let mut rows: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {} {}",
                f["code"], f["storage"], f["table"], f["key"], f["tx_id"], f["count"]
            )
        })
        .collect();
    rows.sort();
    rows
}

fn assert_nothing_left(pid: u32) {
    let left = leftovers_of(pid);
    assert!(left.is_empty(), "the drill left {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_and_a_mariadb_dump_drilled_as_one_deployment_agree_with_scan_of_the_live_databases()
 {
    for state in ["recoverable", "torn", "clean"] {
        let live = Live::new(state).await;
        let scanned = live.scan();
        let dir = tempfile::tempdir().unwrap();
        let (pg, maria, _) = live.dumps(dir.path());
        live.stop().await;
        // Named backups, and plain paths whose storage the namespaces tell.
        let (pg_named, maria_named) = (named("pg", &pg), named("maria", &maria));
        let (drilled, pid) = if state == "clean" {
            drill_set(&[pg.to_str().unwrap(), maria.to_str().unwrap()])
        } else {
            drill_set(&["--backup", &maria_named, "--backup", &pg_named])
        };
        assert_nothing_left(pid);
        let (code, scanned_code) = (drilled.code, scanned.code);
        let (drilled, scanned) = (drilled.json(), scanned.json());
        assert_eq!(scanned["verdict"], expected(state)["verdict"], "{state}");
        let (cut, other): (Vec<String>, Vec<String>) = findings(&drilled)
            .into_iter()
            .partition(|f| f.contains("\"cut-window-at-risk\""));
        // Two dumps taken one after the other that record no start (a plain pg_dump;
        // mysqldump's completion, in an unknown zone): each was copied at or after its own
        // newest write. In `clean` the Coordinator's newest row (an ABORTED transaction) is
        // newer than both, but no COMMITTED one is: nothing the copies could tear.
        assert_eq!(code, scanned_code, "{state}");
        assert_eq!(drilled["verdict"], scanned["verdict"], "{state}");
        assert!(cut.is_empty(), "{state}: {cut:?}");
        let judged = &drilled["summary"]["cut"];
        assert_eq!(judged["proven"], true, "{state}: {judged}");
        if state == "clean" {
            let reason = judged["reason"].as_str().unwrap();
            assert!(
                reason.contains("no transaction committing after"),
                "{reason}"
            );
        }
        assert_eq!(predictions(&drilled), predictions(&scanned), "{state}");
        assert_eq!(other, findings(&scanned), "{state}");
        assert_eq!(
            drilled["summary"]["records_scanned"], scanned["summary"]["records_scanned"],
            "{state}"
        );
        assert_eq!(drilled["coordinator_storage"], "pg");
        let kinds: Vec<(String, String)> = drilled["storages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().into(),
                    s["kind"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert!(
            kinds.contains(&("pg".into(), "postgresql".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("maria".into(), "mysql".into())),
            "{kinds:?}"
        );

        // One record per backup: its storage, path, format, runtime and own phases.
        let section = &drilled["drill"];
        assert_eq!(section["format"], "backup set");
        let records = section["backups"].as_array().unwrap();
        assert_eq!(records.len(), 2, "{section}");
        for (storage, path, format) in [
            ("pg", &pg, "pg_dump plain SQL"),
            ("maria", &maria, "mysqldump SQL"),
        ] {
            let record = records
                .iter()
                .find(|r| r["storage"] == storage)
                .unwrap_or_else(|| panic!("no record of {storage}: {section}"));
            assert_eq!(record["path"], path.display().to_string());
            assert_eq!(record["format"], format);
            assert_eq!(record["runtime"], "local");
            let phases: Vec<&str> = record["phases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(phases, ["start", "restore"], "{record}");
        }
        // The RTO's restore time is the slowest backup's restore.
        let slowest = records
            .iter()
            .map(|r| r["restore_seconds"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(
            (section["restore_seconds"].as_f64().unwrap() - slowest).abs() < 1e-9,
            "{section}"
        );

        if state == "torn" {
            // Committed in PostgreSQL, PREPARED in MariaDB, no Coordinator row: torn.
            let torn = finding(&drilled, "torn-transaction");
            assert_eq!(torn["storage"], "maria");
            assert_eq!(torn["tx_id"], "torn0001-0000-0000-0000-000000000000");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recover_rehearses_in_every_instance_of_a_set() {
    let (_dir, pg, maria, _) = dumps_of("recoverable").await;
    let (pg_named, maria_named) = (named("pg", &pg), named("maria", &maria));
    let (run, pid) = drill_set(&[
        "--backup",
        &pg_named,
        "--backup",
        &maria_named,
        "--recover",
        "--check",
        "entries@maria=SELECT count(*) > 0 FROM ledger.entries",
        "--check",
        "states=SELECT count(*) > 0 FROM coordinator.state",
    ]);
    assert_nothing_left(pid);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let recovery = &report["drill"]["recovery"];
    assert_eq!(recovery["succeeded"], true, "{recovery}");
    assert_eq!(recovery["unresolved_after"], 0);
    assert_eq!(recovery["verdict_after"], "consistent", "{recovery}");
    let writes = &recovery["writes"];
    let count = |outcome: &str| {
        report["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["outcome"] == outcome)
            .count() as u64
    };
    // Every prediction written once, in the instance of its storage.
    assert_eq!(
        writes["committed"],
        count("roll_forward_commit"),
        "{writes}"
    );
    assert_eq!(writes["restored"], count("roll_back_restore"), "{writes}");
    assert_eq!(
        writes["deleted_forward"].as_u64().unwrap() + writes["deleted_back"].as_u64().unwrap(),
        count("roll_forward_delete") + count("roll_back_delete"),
        "{writes}"
    );
    assert!(
        writes["abort_states"].as_u64().unwrap() > 0,
        "the expired transaction gets its ABORTED row in PostgreSQL: {writes}"
    );
    assert_eq!(writes["unexpected"], serde_json::json!([]));
    let invariants = report["drill"]["invariants"].as_array().unwrap();
    assert_eq!(invariants.len(), 2);
    assert!(
        invariants.iter().all(|i| i["passed"] == true),
        "{invariants:?}"
    );
    assert_eq!(invariants[0]["storage"], "maria");
    assert_eq!(invariants[1]["storage"], serde_json::Value::Null);
    for record in report["drill"]["backups"].as_array().unwrap() {
        let phases: Vec<&str> = record["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(phases, ["start", "restore", "recover"], "{record}");
        // Each instance's own writes: the predictions on its storage's tables, and the
        // ABORTED rows in the Coordinator's instance only.
        let storage = record["storage"].as_str().unwrap();
        let on_storage = |outcomes: &[&str]| {
            report["predictions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| {
                    p["storage"] == storage && outcomes.contains(&p["outcome"].as_str().unwrap())
                })
                .count() as u64
        };
        let own = &record["recovery_writes"];
        assert_eq!(
            own["committed"],
            on_storage(&["roll_forward_commit"]),
            "{record}"
        );
        assert_eq!(
            own["restored"],
            on_storage(&["roll_back_restore"]),
            "{record}"
        );
        assert_eq!(
            own["deleted_forward"].as_u64().unwrap() + own["deleted_back"].as_u64().unwrap(),
            on_storage(&["roll_forward_delete", "roll_back_delete"]),
            "{record}"
        );
        let abort_states = if storage == "pg" {
            writes["abort_states"].clone()
        } else {
            0.into()
        };
        assert_eq!(own["abort_states"], abort_states, "{record}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_that_does_not_fit_the_deployment_is_refused_before_any_instance_starts() {
    let (_dir, pg, maria, whole) = dumps_of("clean").await;
    let sqlite = fixture("clean").join("bank.sqlite");
    let pg_named = named("pg", &pg);
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec!["--backup".into(), named("orders", &maria)],
            vec!["orders", "has no storage orders", "pg, maria"],
        ),
        (
            vec![
                "--backup".into(),
                pg_named.clone(),
                "--backup".into(),
                named("pg", &pg),
            ],
            vec!["storage pg has two backups"],
        ),
        (
            // A plain path whose namespaces go to PostgreSQL, beside a named one for it.
            vec![
                "--backup".into(),
                pg_named.clone(),
                pg.display().to_string(),
            ],
            vec!["storage pg has two backups"],
        ),
        (
            vec![
                "--backup".into(),
                pg_named.clone(),
                "--backup".into(),
                named("maria", &whole),
            ],
            vec![
                "maria-whole.sql",
                "namespace bank is in two backups",
                pg.to_str().unwrap(),
            ],
        ),
        (
            vec!["--backup".into(), named("maria", &whole)],
            vec![
                "maria-whole.sql",
                "holds namespace bank, which the deployment routes to storage pg, not to maria",
            ],
        ),
        (
            vec!["--backup".into(), named("maria", &pg)],
            vec!["pg_dump plain SQL cannot restore storage maria, which is mysql"],
        ),
        (
            vec![whole.display().to_string()],
            vec![
                "maria-whole.sql",
                "routed to several storages",
                "--backup NAME=PATH",
            ],
        ),
        (
            vec![sqlite.display().to_string()],
            vec![
                "bank.sqlite",
                "does not tell its namespaces",
                "--backup NAME=PATH",
            ],
        ),
        (
            vec![
                "--backup".into(),
                pg_named.clone(),
                "--check".into(),
                "x@orders=SELECT 1".into(),
            ],
            vec!["--check", "no backup of the set restores storage orders"],
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = std::time::Instant::now();
        let (run, pid) = drill_set(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        for part in expected {
            assert!(
                run.stderr.contains(part),
                "{args:?}: {part:?} in {}",
                run.stderr
            );
        }
        assert_nothing_left(pid);
        // Refused while matching the set: no server started, which takes seconds.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
    // A backup set needs a deployment.
    let run = run("drill", &["--backup", &pg_named, "--runtime", "local"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--properties or --storage"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_without_the_coordinators_backup_is_indeterminate_naming_it() {
    let (dir, _, maria, _) = dumps_of("recoverable").await;
    // The deployment from the user's own ScalarDB file this time; its hosts are never
    // contacted.
    let properties = dir.path().join("database.properties");
    std::fs::write(
        &properties,
        "scalar.db.storage=multi-storage\n\
         scalar.db.multi_storage.storages=pg,maria\n\
         scalar.db.multi_storage.storages.pg.storage=jdbc\n\
         scalar.db.multi_storage.storages.pg.contact_points=jdbc:postgresql://db.invalid:5432/app\n\
         scalar.db.multi_storage.storages.maria.storage=jdbc\n\
         scalar.db.multi_storage.storages.maria.contact_points=jdbc:mariadb://db.invalid:3306/\n\
         scalar.db.multi_storage.namespace_mapping=ledger:maria\n\
         scalar.db.multi_storage.default_storage=pg\n",
    )
    .unwrap();
    let (run, pid) = drill_in(
        &["--properties", properties.to_str().unwrap()],
        &["--backup", &named("maria", &maria)],
    );
    assert_nothing_left(pid);
    assert_eq!(run.code, 4, "indeterminate: {}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "indeterminate");
    let missing = finding(&report, "backup-missing");
    assert_eq!(missing["storage"], "pg");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("--backup pg=PATH"),
        "{missing}"
    );
    // The stand-in for the Coordinator's storage is recorded, with no backup.
    let records = report["drill"]["backups"].as_array().unwrap();
    let stand_in = records.iter().find(|r| r["storage"] == "pg").unwrap();
    assert_eq!(stand_in["path"], Value::Null);
    assert!(
        run.stderr.contains("no backup restores storage pg"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_restore_in_a_set_tears_every_instance_down() {
    let (dir, pg, maria, _) = dumps_of("clean").await;
    // The MariaDB dump whole (header and trailer) but with a statement the server rejects.
    let text = std::fs::read_to_string(&maria).unwrap();
    let broken = dir.path().join("broken.sql");
    let at = text.find("CREATE TABLE").expect("a CREATE TABLE");
    std::fs::write(
        &broken,
        format!("{}THIS IS NOT SQL;\n{}", &text[..at], &text[at..]),
    )
    .unwrap();
    let (run, pid) = drill_set(&[
        "--backup",
        &named("pg", &pg),
        "--backup",
        &named("maria", &broken),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("broken.sql"), "{}", run.stderr);
    assert_nothing_left(pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_file_and_a_pg_dump_drill_as_one_deployment() {
    let state = "recoverable";
    let pg = postgres_with(state).await;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("pg.sql");
    pg_dump(
        &pg,
        &["-n", "ledger", "-n", "coordinator", "-n", "scalardb"],
        &dump,
    );
    pg.stop().await.unwrap();
    // The SQLite file holds every namespace: what ScalarDB would not read there (ledger,
    // the Coordinator's copy) is left out by the scan, as scan of a live SQLite file does.
    let sqlite = fixture(state).join("bank.sqlite");
    let (run, pid) = drill_in(
        &[
            "--storage",
            "pg=postgres://-/app",
            "--storage",
            "lite=sqlite:///bank.sqlite",
            "--namespace",
            "bank=lite",
            "--default-storage",
            "pg",
        ],
        &[
            "--backup",
            &named("pg", &dump),
            "--backup",
            &named("lite", &sqlite),
            "--recover",
        ],
    );
    assert_nothing_left(pid);
    let report = assert_expected_rehearsed(&run, state, "bank.accounts", "lite");
    let runtimes: Vec<&str> = report["drill"]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runtime"].as_str().unwrap())
        .collect();
    assert_eq!(runtimes, ["local", "copy"]);
    assert_eq!(report["drill"]["runtime"], "mixed");
}

/// Cassandra in a set: `ledger` as a Cassandra node's snapshot, the rest and the
/// Coordinator as a pg_dump; a plain path each, the storage told by the keyspaces and the
/// schemas. The PREPARED ledger records in Cassandra are predicted from the Coordinator in
/// PostgreSQL and rehearsed with conditional CQL in the restored node.
#[tokio::test(flavor = "multi_thread")]
async fn a_cassandra_snapshot_and_a_pg_dump_drill_as_one_deployment() {
    let state = "recoverable";
    let dir = tempfile::tempdir().unwrap();
    let pg = postgres_with(state).await;
    let dump = dir.path().join("pg.sql");
    pg_dump(
        &pg,
        &["-n", "bank", "-n", "coordinator", "-n", "scalardb"],
        &dump,
    );
    pg.stop().await.unwrap();
    let mut options = CassandraOptions::new(format!("drill-tests-{}", std::process::id()));
    options.bridge = Some(BIN.into());
    let node = CassandraInstance::start(&options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot start a local Cassandra node for this test: {}\n\
                 run scripts/install-cassandra to install it",
                scalardb_verify::scan::error_chain(&e)
            )
        });
    let writer = node.writer().await.unwrap();
    let cql = std::fs::read_to_string(fixture(state).join("cassandra.cql")).unwrap();
    writer.execute_script(&cql).await.unwrap();
    node.snapshot("nightly", &["ledger"]).await.unwrap();
    let snapshots = dir.path().join("cassandra");
    crate::snapshot_copy::copy_snapshot(&node, "nightly", &snapshots, "nightly");
    node.stop().await.unwrap();

    let (run, pid) = drill_in(
        &[
            "--storage",
            "pg=postgres://-/app",
            "--storage",
            "cass=cassandra://-",
            "--namespace",
            "ledger=cass",
            "--default-storage",
            "pg",
        ],
        &[
            dump.to_str().unwrap(),
            snapshots.to_str().unwrap(),
            "--recover",
        ],
    );
    assert_nothing_left(pid);
    let report = assert_expected_rehearsed(&run, state, "ledger.entries", "cass");
    let record = report["drill"]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["storage"] == "cass")
        .unwrap_or_else(|| panic!("{}", report["drill"]));
    assert_eq!(record["format"], "Cassandra node snapshots");
}

/// A set drill with --recover of `state` where `table` is in `storage` and the rest in
/// `pg`: exit 0, the state's expected verdict and predictions, each in its storage, and a
/// rehearsal that resolves everything. Returns the report.
fn assert_expected_rehearsed(run: &Run, state: &str, table: &str, storage: &str) -> Value {
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let expected = expected(state);
    assert_eq!(report["verdict"], expected["verdict"]);
    let rows = |report: &Value| {
        let mut rows: Vec<String> = report["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {}",
                    p["table"], p["key"], p["tx_id"], p["outcome"]
                )
            })
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(rows(&report), rows(&expected));
    for prediction in report["predictions"].as_array().unwrap() {
        let expected = if prediction["table"] == table {
            storage
        } else {
            "pg"
        };
        assert_eq!(prediction["storage"], expected, "{prediction}");
    }
    let recovery = &report["drill"]["recovery"];
    assert_eq!(recovery["succeeded"], true, "{recovery}");
    assert_eq!(recovery["unresolved_after"], 0, "{recovery}");
    report
}
