//! Multi-storage oracle cases (`scripts/oracle generate --backend multi-storage`): one ScalarDB
//! deployment over several databases, each backed up by its own tool, with a `truth.json`
//! naming the storages (tests/oracle/README.md, "Multi-storage cases"). Each case is drilled
//! as the backup set it is (`drill --backup NAME=PATH` per storage, the deployment given with
//! `--storage`/`--namespace`/`--default-storage`/`--coordinator-storage`), and the report goes
//! through the same checks as a single database's scan; on top of them, the cut: a torn case
//! whose transactions wrote between the dumps, or whose money the cut does not conserve, must
//! carry a finding that names the cut's risk, and every prediction and finding that names a
//! table names the storage the deployment routes it to. The drill rehearses recovery as well,
//! which `rehearsal` checks.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use super::{BIN, CUT_RISKS, Case, Scan};

/// The deployment part of a multi-storage case's `truth.json`.
#[derive(Debug, Deserialize)]
pub(super) struct Deployment {
    #[serde(default)]
    pub storages: Vec<Storage>,
    default_storage: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Storage {
    pub name: String,
    engine: String,
    pub namespaces: Vec<String>,
    pub coordinator: bool,
    backup: String,
}

pub(super) fn deployment(case: &Case) -> Deployment {
    let path = case.dir.join("truth.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A URL of the storage's engine: in a drill only its engine counts, no host is contacted.
fn url(engine: &str) -> &'static str {
    match engine {
        "postgres" => "postgres://-/app",
        "mariadb" | "mysql" => "mysql://-/",
        "sqlite" => "sqlite:///backup.sqlite",
        "cassandra" => "cassandra://127.0.0.1",
        other => panic!("multi-storage case with a storage of engine {other:?}: not supported yet"),
    }
}

/// The drill of a multi-storage case's backup set, or `None` for a single-database case.
/// It rehearses recovery too (`--recover`, checked by `rehearsal`): its report's verdict,
/// predictions and findings are the first scan's, before the rehearsal's writes, and the
/// instances are already restored, so the rehearsal costs its writes and a second scan.
pub(super) fn drill(case: &Case) -> Option<Scan> {
    let d = deployment(case);
    if d.storages.is_empty() {
        return None;
    }
    let mut args: Vec<String> = vec!["drill".into()];
    for s in &d.storages {
        args.push("--backup".into());
        args.push(format!("{}={}", s.name, case.dir.join(&s.backup).display()));
        args.push("--storage".into());
        args.push(format!("{}={}", s.name, url(&s.engine)));
        for ns in &s.namespaces {
            args.push("--namespace".into());
            args.push(format!("{ns}={}", s.name));
        }
        if s.coordinator {
            args.push("--coordinator-storage".into());
            args.push(s.name.clone());
        }
    }
    let default = d
        .default_storage
        .clone()
        .unwrap_or_else(|| d.storages[0].name.clone());
    args.extend(["--default-storage".into(), default]);
    args.extend([
        "--coordinator-namespace".into(),
        case.truth.coordinator_namespace.clone(),
    ]);
    args.extend([
        "--metadata-schema".into(),
        case.truth.metadata_schema.clone(),
    ]);
    args.extend(
        [
            "--format",
            "json",
            "--quiet",
            "--runtime",
            "local",
            "--recover",
        ]
        .map(String::from),
    );
    let output = Command::new(BIN)
        .args(&args)
        .output()
        .expect("run scalardb-verify drill");
    Some(Scan {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// What the single-database checks cannot see: the cut across the storages and the storage
/// each prediction and finding names. Empty for a single-database case.
pub(super) fn problems(case: &Case, run: &Scan) -> Vec<String> {
    let d = deployment(case);
    if d.storages.is_empty() {
        return Vec::new();
    }
    let Ok(report) = serde_json::from_str::<Value>(&run.stdout) else {
        return Vec::new(); // `check` already said the report is not JSON
    };
    let mut problems = Vec::new();
    let verdict = report["verdict"].as_str().unwrap_or("");
    let risks: Vec<&str> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str())
        .filter(|c| CUT_RISKS.contains(c))
        .collect();
    // (Unconserved money with a passing verdict is `verdict_problems`' check, for every case.)
    let torn = &case.truth.torn_transactions;
    if case.truth.cut == "torn" && !torn.is_empty() && risks.is_empty() {
        problems.push(format!(
            "{} transaction(s) wrote between the storages' dumps ({torn:?}) and no finding names \
             the cut's risk (verdict {verdict})",
            torn.len(),
        ));
    }
    // Every prediction and finding on a table names the storage its namespace is routed to.
    let route: BTreeMap<&str, &str> = d
        .storages
        .iter()
        .flat_map(|s| s.namespaces.iter().map(|ns| (ns.as_str(), s.name.as_str())))
        .collect();
    for (kind, items) in [
        ("prediction", &report["predictions"]),
        ("finding", &report["findings"]),
    ] {
        for item in items.as_array().into_iter().flatten() {
            let Some(table) = item["table"].as_str() else {
                continue;
            };
            let ns = table.split('.').next().unwrap_or(table);
            let want = route.get(ns).copied();
            let got = item["storage"].as_str();
            if want.is_some() && got != want {
                problems.push(format!(
                    "{kind} on {table} names storage {got:?}, the deployment routes {ns} to \
                     {want:?}: {item}"
                ));
            }
        }
    }
    problems
}
