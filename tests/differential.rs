//! Differential test against ScalarDB itself.
//!
//! Every case under `fixtures/oracle/` (and, when `SCALARDB_VERIFY_ORACLE_CASES` names a
//! directory, every case in it) is a backup that `scripts/oracle` produced by driving the real
//! ScalarDB library into a crash state, plus a `truth.json` recording what ScalarDB's own lazy
//! recovery did to every PREPARED/DELETED record of that backup (see tests/oracle/README.md).
//! This test restores each backup, scans it with the built binary and checks that the verdict
//! and every recovery prediction agree with what ScalarDB did; on a case the tool calls
//! `recoverable` it also rehearses the recovery with `drill --recover` (`rehearsal`) and checks
//! that the rehearsal wrote what ScalarDB's recovery did.
//!
//! All cases run before anything is asserted, so one run lists every disagreement. The test
//! never passes vacuously: no case in `fixtures/oracle/` is a failure.
//!
//! Cassandra cases (`backup.cql`) share one local Cassandra node that the test starts (it fails,
//! never skips, if the node cannot start): each case drops the keyspaces earlier cases loaded,
//! loads its CQL through `CassandraWriter` and is scanned over `cassandra://`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use scalardb_verify::runtime::cassandra::{CassandraInstance, CassandraOptions};
use scalardb_verify::runtime::local::{Engine, LocalInstance, LocalOptions};
use scalardb_verify::store::CassandraWriter;
use serde::Deserialize;

#[path = "differential/multi_storage.rs"]
mod multi_storage;
#[path = "common/recovery.rs"]
mod recovery;
#[path = "differential/rehearsal.rs"]
mod rehearsal;

const BIN: &str = env!("CARGO_BIN_EXE_scalardb-verify");
const CASES_ENV: &str = "SCALARDB_VERIFY_ORACLE_CASES";

type Key = BTreeMap<String, String>;

#[derive(Debug, Deserialize)]
struct Truth {
    case: String,
    scalardb_version: String,
    backend: String,
    group_commit: bool,
    coordinator_namespace: String,
    metadata_schema: String,
    cut: String,
    /// The feature the case's generation ran with (`generate --variant`): `none`,
    /// `one-phase`, `write-set`, `decoupled`, …; absent in cases generated before variants.
    #[serde(default = "no_variant")]
    variant: String,
    expected_verdict: String,
    transactions: Vec<TruthTx>,
    recovered: Vec<Recovered>,
    /// The case ran with 3.19's write-set logging (the Coordinator holds `tx_write_set`).
    #[serde(default)]
    write_set_logging: bool,
    /// Records a transaction the backup's Coordinator shows COMMITTED wrote that the data
    /// copy lacks at its version (the write log's account): its write set proves them lost.
    #[serde(default)]
    missing_writes: Vec<MissingWrite>,
    /// A cut per namespace (each bank copied at its own instant): whether every transfer is
    /// wholly in the backup or wholly absent (the write log's account), and the ones torn.
    #[serde(default)]
    money_conserved: Option<bool>,
    #[serde(default)]
    torn_transactions: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct MissingWrite {
    tx_id: String,
    table: String,
    key: Key,
}

fn no_variant() -> String {
    "none".to_owned()
}

#[derive(Debug, Deserialize)]
struct TruthTx {
    tx_id: String,
    crash_point: String,
    committed: bool,
    /// ScalarDB's `getState` on the backup: `COMMITTED`, `ABORTED` or `UNKNOWN` (no row).
    #[serde(default)]
    state_in_backup: Option<String>,
}

/// What ScalarDB's recovery did to one record that was PREPARED or DELETED in the backup.
#[derive(Debug, Deserialize)]
struct Recovered {
    table: String,
    key: Key,
    backup_tx_id: String,
    backup_tx_state: i32,
    exists: bool,
    tx_id: Option<String>,
    tx_state: Option<i32>,
}

#[derive(Debug, Deserialize)]
struct Report {
    verdict: String,
    #[serde(default)]
    predictions: Vec<Prediction>,
    #[serde(default)]
    findings: Vec<ReportFinding>,
}

/// The findings that name the risk of a cut not taken at one instant (`analyze/cut.rs`).
const CUT_RISKS: [&str; 3] = [
    "coordinator-behind-data",
    "table-copied-early",
    "cut-window-at-risk",
];

/// The verdict a case may have, and the exit code that goes with it. A torn cut whose
/// tear metadata cannot show (truth: consistent or recoverable) may be indeterminate when
/// a finding names the cut's risk; an intact cut must get exactly its verdict (no new
/// false alarm).
fn verdict_problems(
    t: &Truth,
    expected_verdict: &str,
    report: &Report,
    code: i32,
    stderr: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let risk: Vec<&str> = report
        .findings
        .iter()
        .map(|f| f.code.as_str())
        .filter(|c| CUT_RISKS.contains(c))
        .collect();
    let torn = t.cut.starts_with("torn");
    let raised = torn
        && matches!(expected_verdict, "consistent" | "recoverable")
        && report.verdict == "indeterminate"
        && !risk.is_empty();
    if !torn && !risk.is_empty() {
        problems.push(format!(
            "a backup taken at one instant got cut findings {risk:?}: a false alarm"
        ));
    }
    // Money not conserved: no passing verdict, even with a warning beside it. The tear is
    // invisible to recovery (no record pending), so the tool must say at least indeterminate
    // with a finding that names the cut's risk.
    if t.money_conserved == Some(false)
        && matches!(report.verdict.as_str(), "consistent" | "recoverable")
    {
        problems.push(format!(
            "{} transfer(s) torn by the cut (money not conserved), yet the tool says {:?} \
             (cut findings {risk:?})",
            t.torn_transactions.len(),
            report.verdict
        ));
    }
    if report.verdict != expected_verdict && !raised {
        problems.push(format!(
            "verdict: the tool says {:?}, the expected verdict is {:?}",
            report.verdict, expected_verdict
        ));
    }
    let want_code = match report.verdict.as_str() {
        "indeterminate" if raised => 4,
        _ if expected_verdict == "inconsistent" => 1,
        _ => 0,
    };
    if code != want_code {
        problems.push(format!(
            "exit code {code} for a {} verdict, {} expected (want {want_code}); stderr: {}",
            report.verdict,
            expected_verdict,
            stderr.trim()
        ));
    }
    problems
}

#[derive(Debug, Deserialize)]
struct ReportFinding {
    code: String,
    table: Option<String>,
    key: Option<Key>,
    tx_id: Option<String>,
}

const MISSING_WRITE: &str = "torn-transaction-missing-write";

#[derive(Debug, Deserialize)]
struct Prediction {
    table: String,
    key: Key,
    tx_id: String,
    tx_state: String,
    outcome: String,
    restores_tx_id: Option<String>,
}

/// One case directory: its truth and its backup file.
struct Case {
    dir: PathBuf,
    truth: Truth,
}

impl Case {
    fn backup(&self) -> PathBuf {
        let name = match self.truth.backend.as_str() {
            "sqlite" => "backup.sqlite",
            "postgres" => "backup.pg.sql",
            "mariadb" => "backup.mysql.sql",
            "cassandra" => "backup.cql",
            other => panic!("{}: unknown backend {other:?}", self.dir.display()),
        };
        self.dir.join(name)
    }
}

/// Every case directory under `root`. A directory without a `truth.json` is a case whose
/// generation did not finish: a failure, never a case silently left out.
fn load_cases(root: &Path) -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(entries) => entries
            .map(|e| e.expect("read a directory entry").path())
            .filter(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect(),
        Err(e) => panic!("cannot read the oracle cases in {}: {e}", root.display()),
    };
    dirs.sort();
    let unfinished: Vec<String> = dirs
        .iter()
        .filter(|d| !d.join("truth.json").is_file())
        .map(|d| d.display().to_string())
        .collect();
    assert!(
        unfinished.is_empty(),
        "oracle case directories without a truth.json (their generation failed or was cut \
         short; regenerate them): {}",
        unfinished.join(", ")
    );
    dirs.into_iter()
        .map(|dir| {
            let text = std::fs::read_to_string(dir.join("truth.json"))
                .unwrap_or_else(|e| panic!("read {}/truth.json: {e}", dir.display()));
            let truth: Truth = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("parse {}/truth.json: {e}", dir.display()));
            Case { dir, truth }
        })
        .collect()
}

/// The servers this run started, one per engine, shared by the cases.
#[derive(Default)]
struct Servers {
    postgres: Option<LocalInstance>,
    mariadb: Option<LocalInstance>,
    cassandra: Option<Cassandra>,
}

/// The Cassandra node, a session that loads backups, and the keyspaces loaded so far (dropped
/// before the next case loads, so a scan sees one case's keyspaces only).
struct Cassandra {
    node: CassandraInstance,
    writer: CassandraWriter,
    loaded: BTreeSet<String>,
}

impl Servers {
    async fn get(&mut self, engine: Engine) -> &LocalInstance {
        let slot = match engine {
            Engine::Postgres => &mut self.postgres,
            Engine::MariaDb => &mut self.mariadb,
        };
        if slot.is_none() {
            let opts = LocalOptions::new(format!("differential-{}", std::process::id()));
            let server = LocalInstance::start(engine, &opts)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start a local {engine} server for the oracle cases: {}\n\
                     run scripts/install-test-deps to install the servers the tests need",
                        scalardb_verify::scan::error_chain(&e)
                    )
                });
            *slot = Some(server);
        }
        slot.as_ref().expect("just started")
    }

    async fn cassandra(&mut self) -> &mut Cassandra {
        if self.cassandra.is_none() {
            let mut opts = CassandraOptions::new(format!("differential-{}", std::process::id()));
            // This test binary is not the tool, whose binary carries the node's ports.
            opts.bridge = Some(env!("CARGO_BIN_EXE_scalardb-verify").into());
            // Boxed: the start future is too deep for the compiler's layout computation inline.
            let node = Box::pin(CassandraInstance::start(&opts))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start a local Cassandra node for the oracle's Cassandra cases: {}\n\
                     run scripts/install-cassandra to install Cassandra's jars",
                        scalardb_verify::scan::error_chain(&e)
                    )
                });
            let writer = node.writer().await.unwrap_or_else(|e| {
                panic!(
                    "connect to the Cassandra node at {}: {}",
                    node.contact_point(),
                    scalardb_verify::scan::error_chain(&e)
                )
            });
            self.cassandra = Some(Cassandra {
                node,
                writer,
                loaded: BTreeSet::new(),
            });
        }
        self.cassandra.as_mut().expect("just started")
    }

    async fn stop(self) {
        for server in [self.postgres, self.mariadb].into_iter().flatten() {
            server.stop().await.expect("stop a local server");
        }
        if let Some(cassandra) = self.cassandra {
            drop(cassandra.writer);
            Box::pin(cassandra.node.stop())
                .await
                .expect("stop the Cassandra node");
        }
    }
}

/// Restores the case's backup somewhere the tool can scan and returns the scan URL. The
/// backup file itself is never modified.
async fn restore(case: &Case, servers: &mut Servers, scratch: &Path, n: usize) -> String {
    let backup = case.backup();
    match case.truth.backend.as_str() {
        "sqlite" => {
            let copy = scratch.join(format!("case-{n}.sqlite"));
            std::fs::copy(&backup, &copy)
                .unwrap_or_else(|e| panic!("copy {}: {e}", backup.display()));
            format!("sqlite://{}", copy.display())
        }
        "postgres" => {
            let server = servers.get(Engine::Postgres).await;
            let db = format!("oracle_case_{n}");
            server
                .execute_sql(&format!(
                    "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};"
                ))
                .await
                .unwrap_or_else(|e| {
                    panic!("create {db}: {}", scalardb_verify::scan::error_chain(&e))
                });
            server
                .load_sql_file(&backup, Some(&db))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "load {}: {}",
                        backup.display(),
                        scalardb_verify::scan::error_chain(&e)
                    )
                });
            server.url_for(&db)
        }
        "mariadb" => {
            let server = servers.get(Engine::MariaDb).await;
            // A namespace is a database on MariaDB, so cases share names: drop every database
            // this dump creates before loading it. The dump is read as bytes: a write-set BLOB
            // is not UTF-8 in a mysqldump.
            let bytes =
                std::fs::read(&backup).unwrap_or_else(|e| panic!("read {}: {e}", backup.display()));
            let mut drops = String::new();
            for db in dump_databases(&bytes) {
                let _ = write!(drops, "DROP DATABASE IF EXISTS `{db}`;");
            }
            if !drops.is_empty() {
                server.execute_sql(&drops).await.unwrap_or_else(|e| {
                    panic!(
                        "drop old databases: {}",
                        scalardb_verify::scan::error_chain(&e)
                    )
                });
            }
            server
                .load_sql_file(&backup, None)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "load {}: {}",
                        backup.display(),
                        scalardb_verify::scan::error_chain(&e)
                    )
                });
            server.url()
        }
        "cassandra" => {
            let cassandra = servers.cassandra().await;
            let text = std::fs::read_to_string(&backup)
                .unwrap_or_else(|e| panic!("read {}: {e}", backup.display()));
            let keyspaces = cql_keyspaces(&text);
            assert!(
                !keyspaces.is_empty(),
                "{} creates no keyspace",
                backup.display()
            );
            cassandra.loaded.extend(keyspaces);
            for ks in &cassandra.loaded {
                let drop = format!("DROP KEYSPACE IF EXISTS \"{ks}\"");
                cassandra.writer.execute(&drop).await.unwrap_or_else(|e| {
                    panic!("{drop}: {}", scalardb_verify::scan::error_chain(&e))
                });
            }
            cassandra
                .writer
                .execute_script(&text)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "load {}: {}",
                        backup.display(),
                        scalardb_verify::scan::error_chain(&e)
                    )
                });
            cassandra.node.url()
        }
        other => panic!("unknown backend {other}"),
    }
}

/// The databases a mysqldump `--databases` file creates. The dump is bytes, not text (binary
/// BLOB values are written raw); only the `CREATE DATABASE` lines are read, and their names must
/// be UTF-8.
fn dump_databases(sql: &[u8]) -> BTreeSet<String> {
    sql.split(|&b| b == b'\n')
        .filter_map(|l| l.strip_prefix(b"CREATE DATABASE"))
        .filter_map(|rest| rest.split(|&b| b == b'`').nth(1))
        .map(|name| {
            std::str::from_utf8(name)
                .unwrap_or_else(|e| panic!("a database name in the dump is not UTF-8: {e}"))
                .to_owned()
        })
        .collect()
}

/// The keyspaces a backup.cql creates (`CREATE KEYSPACE "name" ...` lines).
fn cql_keyspaces(cql: &str) -> BTreeSet<String> {
    cql.lines()
        .filter_map(|l| l.strip_prefix("CREATE KEYSPACE \""))
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect()
}

struct Scan {
    code: i32,
    stdout: String,
    stderr: String,
}

fn scan(url: &str, truth: &Truth) -> Scan {
    let output = Command::new(BIN)
        .args(["scan", url, "--format", "json", "--quiet"])
        .args(["--coordinator-namespace", &truth.coordinator_namespace])
        .args(["--metadata-schema", &truth.metadata_schema])
        .output()
        .expect("run scalardb-verify");
    Scan {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What ScalarDB's recovery did to a record, in the terms of the tool's outcomes.
fn scalardb_did(r: &Recovered) -> String {
    match (r.exists, r.tx_id.as_deref(), r.tx_state) {
        (false, _, _) => "deleted the record".to_owned(),
        (true, Some(id), Some(3)) if id == r.backup_tx_id => {
            "committed the record (rolled forward)".to_owned()
        }
        (true, Some(id), state) if id != r.backup_tx_id => {
            format!("restored the before image (tx_id {id}, tx_state {state:?})")
        }
        (true, None, state) => {
            format!("restored an imported record (tx_id NULL, tx_state {state:?})")
        }
        (true, id, state) => format!("left it as tx_id {id:?}, tx_state {state:?}"),
    }
}

/// Checks one prediction against ScalarDB's result; returns why they disagree, if they do.
fn disagreement(r: &Recovered, p: &Prediction, committed: Option<bool>) -> Option<String> {
    let agrees = match p.outcome.as_str() {
        "roll_forward_commit" => {
            r.exists && r.tx_id.as_deref() == Some(r.backup_tx_id.as_str()) && r.tx_state == Some(3)
        }
        "roll_forward_delete" | "roll_back_delete" => !r.exists,
        "roll_back_restore" => {
            r.exists
                && r.tx_id.as_deref() != Some(r.backup_tx_id.as_str())
                && p.restores_tx_id
                    .as_ref()
                    .is_none_or(|want| r.tx_id.as_ref() == Some(want))
        }
        other => return Some(format!("unknown outcome {other:?}")),
    };
    if !agrees {
        return Some("the outcome differs".to_owned());
    }
    if p.tx_id != r.backup_tx_id {
        return Some(format!(
            "the prediction names tx {} but the record's tx_id was {}",
            p.tx_id, r.backup_tx_id
        ));
    }
    let want_state = match r.backup_tx_state {
        1 => "PREPARED",
        2 => "DELETED",
        _ => "?",
    };
    if p.tx_state != want_state {
        return Some(format!(
            "the prediction says {} but the record was {want_state}",
            p.tx_state
        ));
    }
    // Both deletes look alike afterwards; the direction tells them apart: ScalarDB rolls a
    // record forward only if its transaction is COMMITTED in the backup's Coordinator table.
    if let Some(committed) = committed {
        let forward = p.outcome.starts_with("roll_forward");
        if forward != committed {
            return Some(format!(
                "the prediction rolls {} but the transaction is {} in the backup",
                if forward { "forward" } else { "back" },
                if committed {
                    "COMMITTED"
                } else {
                    "not COMMITTED"
                }
            ));
        }
    }
    None
}

/// Runs one case; returns its disagreements (empty when the tool agrees with ScalarDB).
fn check(case: &Case, run: &Scan) -> Vec<String> {
    let t = &case.truth;
    let mut problems = Vec::new();
    let report: Report = match serde_json::from_str(&run.stdout) {
        Ok(r) => r,
        Err(e) => {
            return vec![format!(
                "the report is not JSON ({e}); exit {}; stderr:\n{}",
                run.code, run.stderr
            )];
        }
    };
    // With write sets, a committed transaction whose writes the data copy lacks is a tear
    // recovery cannot see (no record is pending); otherwise the verdict is recovery's.
    let expected_verdict = if t.missing_writes.is_empty() {
        t.expected_verdict.as_str()
    } else {
        "inconsistent"
    };
    problems.extend(verdict_problems(
        t,
        expected_verdict,
        &report,
        run.code,
        &run.stderr,
    ));
    problems.extend(missing_write_problems(t, &report));
    let committed: HashMap<&str, bool> = t
        .transactions
        .iter()
        .map(|x| (x.tx_id.as_str(), x.committed))
        .collect();
    let crash_point: HashMap<&str, &str> = t
        .transactions
        .iter()
        .map(|x| (x.tx_id.as_str(), x.crash_point.as_str()))
        .collect();

    let mut by_key: BTreeMap<(String, Key), Vec<&Prediction>> = BTreeMap::new();
    for p in &report.predictions {
        by_key
            .entry((p.table.clone(), p.key.clone()))
            .or_default()
            .push(p);
    }
    let mut seen = BTreeSet::new();
    for r in &t.recovered {
        let id = (r.table.clone(), r.key.clone());
        seen.insert(id.clone());
        let record = format!(
            "{} {:?} (backup: tx_id {}, tx_state {}, crash point {})",
            r.table,
            r.key,
            r.backup_tx_id,
            r.backup_tx_state,
            crash_point.get(r.backup_tx_id.as_str()).unwrap_or(&"?")
        );
        match by_key.get(&id).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!(
                "{record}: ScalarDB {}, the tool predicted nothing",
                scalardb_did(r)
            )),
            Some([p]) => {
                if let Some(why) =
                    disagreement(r, p, committed.get(r.backup_tx_id.as_str()).copied())
                {
                    problems.push(format!(
                        "{record}: ScalarDB {}; the tool predicted {} (restores_tx_id {:?}): {why}",
                        scalardb_did(r),
                        p.outcome,
                        p.restores_tx_id
                    ));
                }
            }
            Some(many) => problems.push(format!(
                "{record}: {} predictions for one record: {:?}",
                many.len(),
                many.iter().map(|p| &p.outcome).collect::<Vec<_>>()
            )),
        }
    }
    for ((table, key), ps) in &by_key {
        if !seen.contains(&(table.clone(), key.clone())) {
            for p in ps {
                problems.push(format!(
                    "{table} {key:?}: the tool predicted {} for tx {} ({}), but the record was not \
                     PREPARED/DELETED in the backup as far as ScalarDB is concerned",
                    p.outcome, p.tx_id, p.tx_state
                ));
            }
        }
    }
    problems
}

/// The write-set proof against the write log: every transaction with lost writes is named
/// by a `torn-transaction-missing-write` finding on one of those records, and no other
/// transaction is (a case without write sets never gets one).
fn missing_write_problems(t: &Truth, report: &Report) -> Vec<String> {
    let mut problems = Vec::new();
    let findings: Vec<&ReportFinding> = report
        .findings
        .iter()
        .filter(|f| f.code == MISSING_WRITE)
        .collect();
    if !t.write_set_logging {
        if !findings.is_empty() {
            problems.push(format!(
                "{MISSING_WRITE} without write-set logging: {findings:?}"
            ));
        }
        return problems;
    }
    let lost: BTreeSet<&str> = t.missing_writes.iter().map(|m| m.tx_id.as_str()).collect();
    for f in &findings {
        if !f.tx_id.as_deref().is_some_and(|id| lost.contains(id)) {
            problems.push(format!(
                "{MISSING_WRITE} for a transaction whose writes the backup holds: {f:?}"
            ));
        }
    }
    for tx_id in &lost {
        let named = findings.iter().any(|f| {
            f.tx_id.as_deref() == Some(tx_id)
                && t.missing_writes.iter().any(|m| {
                    m.tx_id == *tx_id
                        && f.table.as_deref() == Some(m.table.as_str())
                        && f.key.as_ref() == Some(&m.key)
                })
        });
        if !named {
            problems.push(format!(
                "transaction {tx_id} committed in the backup's Coordinator but its writes are \
                 missing from the data ({:?}); no {MISSING_WRITE} names one of them",
                t.missing_writes
                    .iter()
                    .filter(|m| m.tx_id == *tx_id)
                    .map(|m| format!("{} {:?}", m.table, m.key))
                    .collect::<Vec<_>>()
            ));
        }
    }
    problems
}

/// What the tool said on a per-namespace cut: the verdict and the cut findings, with their
/// messages (the lag figures).
fn cut_said(t: &Truth, run: &Scan) -> String {
    let Ok(report) = serde_json::from_str::<serde_json::Value>(&run.stdout) else {
        return format!("no report (exit {})", run.code);
    };
    let mut out = format!(
        "money conserved {:?} ({} torn), verdict {}, exit {}",
        t.money_conserved,
        t.torn_transactions.len(),
        report["verdict"],
        run.code
    );
    for f in report["findings"].as_array().into_iter().flatten() {
        let code = f["code"].as_str().unwrap_or("?");
        if CUT_RISKS.contains(&code) {
            let _ = write!(out, "; {code} {}: {}", f["table"], f["message"]);
        }
    }
    out
}

fn repo_cases() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/oracle")
}

#[tokio::test(flavor = "multi_thread")]
async fn oracle_cases_agree_with_scalardb() {
    let mut cases = load_cases(&repo_cases());
    assert!(
        !cases.is_empty(),
        "no oracle case in {}: regenerate them (see fixtures/oracle/README.md)",
        repo_cases().display()
    );
    if let Some(dir) = std::env::var_os(CASES_ENV) {
        let extra = load_cases(Path::new(&dir));
        assert!(
            !extra.is_empty(),
            "{CASES_ENV}={} holds no case",
            Path::new(&dir).display()
        );
        cases.extend(extra);
    }
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut servers = Servers::default();
    let mut failures = Vec::new();
    let mut records = 0;
    // Per backend: cases rehearsed and the seconds their rehearsals took.
    let mut rehearsed: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    let mut not_rehearsed: BTreeMap<(String, &str), usize> = BTreeMap::new();
    let mut uncompared_seconds = 0.0;
    for (n, case) in cases.iter().enumerate() {
        let run = match multi_storage::drill(case) {
            Some(run) => run,
            None => scan(
                &restore(case, &mut servers, scratch.path(), n).await,
                &case.truth,
            ),
        };
        records += case.truth.recovered.len();
        let mut problems = check(case, &run);
        problems.extend(multi_storage::problems(case, &run));
        if let Ok(report) = serde_json::from_str::<Report>(&run.stdout) {
            match rehearsal::rehearse(case, &report, &run) {
                rehearsal::Rehearsal::Done(backend, seconds, more) => {
                    let entry = rehearsed.entry(backend).or_default();
                    entry.0 += 1;
                    entry.1 += seconds;
                    problems.extend(more);
                }
                rehearsal::Rehearsal::NotRehearsed(backend, why) => {
                    *not_rehearsed.entry((backend, why)).or_default() += 1;
                }
                rehearsal::Rehearsal::Nothing(seconds) => uncompared_seconds += seconds,
            }
        }
        if case.truth.money_conserved.is_some() {
            eprintln!(
                "differential: {}: {}",
                case.truth.case,
                cut_said(&case.truth, &run)
            );
        }
        if !problems.is_empty() {
            let t = &case.truth;
            failures.push(format!(
                "case {} ({}; ScalarDB {}, {}, variant {}, group commit {}, coordinator {}, {} cut, expected {}):\n  {}",
                t.case,
                case.dir.display(),
                t.scalardb_version,
                t.backend,
                t.variant,
                t.group_commit,
                t.coordinator_namespace,
                t.cut,
                t.expected_verdict,
                problems.join("\n  ")
            ));
        }
    }
    servers.stop().await;
    let mut lines: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for case in &cases {
        *lines
            .entry((
                case.truth.scalardb_version.as_str(),
                case.truth.variant.as_str(),
            ))
            .or_default() += 1;
    }
    let rehearsed = rehearsed
        .iter()
        .map(|(backend, (n, seconds))| format!("{backend} {n} ({seconds:.1} s)"))
        .collect::<Vec<_>>()
        .join(", ");
    let not_rehearsed = if not_rehearsed.is_empty() {
        String::new()
    } else {
        format!(
            "; recoverable cases not rehearsed: {}",
            not_rehearsed
                .iter()
                .map(|((backend, why), n)| format!("{backend} {n} ({why})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    eprintln!(
        "differential: {} cases, {} recovered records, {} cases disagree (cases rehearsed with \
         drill --recover: {}{not_rehearsed}; the other multi-storage drills' --recover: \
         {uncompared_seconds:.1} s); cases per ScalarDB version and variant: {}",
        cases.len(),
        records,
        failures.len(),
        if rehearsed.is_empty() {
            "none"
        } else {
            &rehearsed
        },
        lines
            .iter()
            .map(|((version, variant), n)| format!("{version} {variant}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        failures.is_empty(),
        "scalardb-verify disagrees with ScalarDB on {} of {} cases:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
