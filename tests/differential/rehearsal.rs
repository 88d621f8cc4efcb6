//! `drill --recover` against ScalarDB's own recovery, on every case the tool calls
//! `recoverable`: the rehearsal applies the predictions in disposable instances, and its
//! writes (rolled forward, restored from before images, deleted either way) must be exactly
//! the records ScalarDB's recovery changed (`truth.json`'s `recovered`), with nothing left
//! unresolved and no unexpected write. The predictions are checked record by record by the
//! scan; this checks the writer that carries them out, on every ScalarDB line and variant.
//!
//! A single SQLite, PostgreSQL or MariaDB backup gets a drill of its own (the scan restored it
//! elsewhere). A multi-storage case is already a drill, run with `--recover`: its rehearsal is
//! read from that report, and checked storage by storage, each instance's writes against the
//! recovered records of the namespaces the deployment routes to it, the ABORTED rows in the
//! Coordinator's instance only (a Cassandra case of per-keyspace snapshots is such a drill
//! too, of one storage). A Cassandra case's `backup.cql` is the oracle's CQL reload, which
//! `drill` does not restore (it takes node snapshots): those cases are not rehearsed, the
//! summary counts them, and the Cassandra writer is rehearsed by the multi-storage Cassandra
//! cases (a real node snapshot each).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use super::multi_storage::{self, Deployment};
use super::{BIN, Case, Recovered, Report, Scan};

/// Whether and how a case was rehearsed.
pub enum Rehearsal {
    /// Rehearsed, under this backend label, in so many seconds (a drill of its own, or the
    /// `recover` phase of the case's drill); the problems (empty: it did what ScalarDB did).
    Done(String, f64, Vec<String>),
    /// A case the tool calls `recoverable` that this test does not rehearse, and why.
    NotRehearsed(String, &'static str),
    /// Nothing to compare: another verdict, or no record pending. A multi-storage drill
    /// rehearsed all the same (its `--recover` is given before the verdict is known): the
    /// seconds that took.
    Nothing(f64),
}

/// The rehearsal of one case; `run` is its scan, or for a multi-storage case its drill.
pub fn rehearse(case: &Case, report: &Report, run: &Scan) -> Rehearsal {
    let t = &case.truth;
    let deployment = multi_storage::deployment(case);
    let in_drill = if deployment.storages.is_empty() {
        0.0
    } else {
        recover_seconds(run)
    };
    if report.verdict != "recoverable" || t.recovered.is_empty() {
        return Rehearsal::Nothing(in_drill);
    }
    if !deployment.storages.is_empty() {
        return Rehearsal::Done(t.backend.clone(), in_drill, in_set(case, &deployment, run));
    }
    match t.backend.as_str() {
        "sqlite" | "postgres" | "mariadb" => {
            let began = Instant::now();
            let problems = alone(case);
            Rehearsal::Done(t.backend.clone(), began.elapsed().as_secs_f64(), problems)
        }
        "cassandra" => Rehearsal::NotRehearsed(
            t.backend.clone(),
            "backup.cql is a CQL reload, which drill does not restore",
        ),
        other => Rehearsal::Done(
            other.to_owned(),
            0.0,
            vec![format!("no way to rehearse a {other:?} case")],
        ),
    }
}

/// The `recover` phase of a drill's report: the rehearsal's writes and the scan after them.
fn recover_seconds(run: &Scan) -> f64 {
    serde_json::from_str::<Value>(&run.stdout)
        .ok()
        .and_then(|drill| {
            drill["drill"]["phases"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "recover")?["seconds"]
                .as_f64()
        })
        .unwrap_or_default()
}

/// A drill of the case's one backup with `--recover`, and its rehearsal checked.
fn alone(case: &Case) -> Vec<String> {
    let t = &case.truth;
    let output = Command::new(BIN)
        .arg("drill")
        .arg(case.backup())
        .args([
            "--runtime",
            "local",
            "--recover",
            "--format",
            "json",
            "--quiet",
        ])
        .args(["--coordinator-namespace", &t.coordinator_namespace])
        .args(["--metadata-schema", &t.metadata_schema])
        .output()
        .expect("run scalardb-verify drill");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let drill: Value = match serde_json::from_slice(&output.stdout) {
        Ok(v) => v,
        Err(e) => {
            return vec![format!(
                "drill --recover: the report is not JSON ({e}); exit {:?}; stderr:\n{stderr}",
                output.status.code()
            )];
        }
    };
    let recovery = &drill["drill"]["recovery"];
    let mut problems = outcome_problems(recovery, &stderr);
    problems.extend(count_problems(
        "drill --recover",
        &recovery["writes"],
        t.recovered.iter(),
    ));
    problems.extend(abort_problems(case, &recovery["writes"]));
    problems
}

/// The rehearsal a multi-storage drill ran (with `--recover`), in sum and per storage.
fn in_set(case: &Case, deployment: &Deployment, run: &Scan) -> Vec<String> {
    let Ok(drill) = serde_json::from_str::<Value>(&run.stdout) else {
        return vec!["drill --recover: the report is not JSON".to_owned()];
    };
    let recovery = &drill["drill"]["recovery"];
    if recovery.is_null() {
        return vec![format!(
            "the drill of the backup set rehearsed no recovery (was it run with --recover?): {}",
            drill["drill"]
        )];
    }
    let mut problems = outcome_problems(recovery, &run.stderr);
    problems.extend(count_problems(
        "drill --recover (all storages)",
        &recovery["writes"],
        case.truth.recovered.iter(),
    ));
    let route: BTreeMap<&str, &str> = deployment
        .storages
        .iter()
        .flat_map(|s| s.namespaces.iter().map(|ns| (ns.as_str(), s.name.as_str())))
        .collect();
    let unrouted: Vec<&str> = case
        .truth
        .recovered
        .iter()
        .map(|r| r.table.as_str())
        .filter(|table| !route.contains_key(namespace(table)))
        .collect();
    if !unrouted.is_empty() {
        // The default storage's, by ScalarDB's routing; the cases map every namespace.
        problems.push(format!(
            "recovered records on tables no storage's namespaces name: {unrouted:?}"
        ));
    }
    let backups = drill["drill"]["backups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for storage in &deployment.storages {
        let Some(backup) = backups
            .iter()
            .find(|b| b["storage"] == storage.name.as_str())
        else {
            problems.push(format!(
                "the drill reports no instance for storage {}: {}",
                storage.name, drill["drill"]["backups"]
            ));
            continue;
        };
        let writes = &backup["recovery_writes"];
        problems.extend(count_problems(
            &format!("drill --recover in storage {}", storage.name),
            writes,
            case.truth
                .recovered
                .iter()
                .filter(|r| route.get(namespace(&r.table)) == Some(&storage.name.as_str())),
        ));
        // The lazy reader writes ABORTED rows in the Coordinator's storage, whichever
        // storage the record it read is in.
        let aborts = writes["abort_states"].as_u64();
        if !storage.coordinator && aborts != Some(0) {
            problems.push(format!(
                "drill --recover wrote {aborts:?} ABORTED Coordinator row(s) in storage {}, \
                 which does not hold the Coordinator: {writes}",
                storage.name
            ));
        }
    }
    problems.extend(abort_problems(case, &recovery["writes"]));
    problems
}

/// Whether the rehearsal wrote one ABORTED Coordinator row per transaction that ScalarDB's
/// recovery aborted: one the backup's Coordinator has no row for (`getState` UNKNOWN) whose
/// records recovery changed. A group-commit transaction is one row, its full id: ScalarDB also
/// writes the parent's marker (protocol notes §10.4), which no reader of the full id needs.
fn abort_problems(case: &Case, writes: &Value) -> Vec<String> {
    let state: BTreeMap<&str, Option<&str>> = case
        .truth
        .transactions
        .iter()
        .map(|x| (x.tx_id.as_str(), x.state_in_backup.as_deref()))
        .collect();
    let mut problems = Vec::new();
    let mut aborted = std::collections::BTreeSet::new();
    for r in &case.truth.recovered {
        match state.get(r.backup_tx_id.as_str()) {
            Some(Some("UNKNOWN")) => {
                aborted.insert(r.backup_tx_id.as_str());
            }
            Some(Some(_)) => {}
            Some(None) => problems.push(format!(
                "truth.json gives no state_in_backup for transaction {} (regenerate the case)",
                r.backup_tx_id
            )),
            None => problems.push(format!(
                "{} {:?} was pending for transaction {}, which truth.json's transactions do not \
                 list",
                r.table, r.key, r.backup_tx_id
            )),
        }
    }
    let want = u64::try_from(aborted.len()).expect("a count fits in u64");
    if writes["abort_states"].as_u64() != Some(want) {
        problems.push(format!(
            "drill --recover wrote {} ABORTED Coordinator row(s); ScalarDB's recovery aborted \
             {want} transaction(s) the backup's Coordinator has no state for ({aborted:?}): \
             {writes}",
            writes["abort_states"]
        ));
    }
    problems
}

fn namespace(table: &str) -> &str {
    table.split('.').next().unwrap_or(table)
}

/// Whether the rehearsal succeeded, resolved everything and wrote only as predicted.
fn outcome_problems(recovery: &Value, stderr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if recovery["succeeded"] != true {
        problems.push(format!(
            "drill --recover did not succeed: {recovery}\n{stderr}"
        ));
    }
    if recovery["unresolved_after"] != 0 {
        problems.push(format!(
            "drill --recover left {} record(s) unresolved where ScalarDB's recovery left none",
            recovery["unresolved_after"]
        ));
    }
    if recovery["writes"]["unexpected"] != serde_json::json!([]) {
        problems.push(format!(
            "drill --recover wrote unexpectedly: {}",
            recovery["writes"]
        ));
    }
    problems
}

/// Whether `writes` rolled forward, restored and deleted as many records as ScalarDB's
/// recovery did to `recovered`.
fn count_problems<'a>(
    what: &str,
    writes: &Value,
    recovered: impl Iterator<Item = &'a Recovered>,
) -> Vec<String> {
    let want = super::recovery::expected_writes(recovered.map(|r| {
        (
            r.exists,
            r.tx_id.as_deref() == Some(r.backup_tx_id.as_str()),
        )
    }));
    let count = |field: &str| writes[field].as_u64().unwrap_or(u64::MAX);
    let rehearsed = (
        count("committed"),
        count("restored"),
        count("deleted_forward").saturating_add(count("deleted_back")),
    );
    if rehearsed == want {
        return Vec::new();
    }
    vec![format!(
        "{what} rolled forward, restored and deleted {rehearsed:?} record(s); ScalarDB's \
         recovery {want:?}: {writes}"
    )]
}
