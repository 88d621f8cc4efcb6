//! `drill --recover` against ScalarDB's own recovery, on every SQLite case the tool calls
//! `recoverable`: the rehearsal applies the predictions in a disposable copy, and its writes
//! (rolled forward, restored from before images, deleted either way) must be exactly the
//! records ScalarDB's recovery changed (`truth.json`'s `recovered`), with nothing left
//! unresolved and no unexpected write. The predictions are checked record by record by the
//! scan; this checks the writer that carries them out, on every ScalarDB line and variant.

use std::process::Command;

use serde_json::Value;

use super::{BIN, Case, Report};

/// The rehearsal's problems (empty when it did what ScalarDB's recovery did); `None` when
/// the case is not rehearsed (another backend, or a verdict other than `recoverable`).
pub fn problems(case: &Case, report: &Report) -> Option<Vec<String>> {
    let t = &case.truth;
    if t.backend != "sqlite" || report.verdict != "recoverable" || t.recovered.is_empty() {
        return None;
    }
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
            return Some(vec![format!(
                "drill --recover: the report is not JSON ({e}); exit {:?}; stderr:\n{stderr}",
                output.status.code()
            )]);
        }
    };
    let recovery = &drill["drill"]["recovery"];
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
    let writes = &recovery["writes"];
    if writes["unexpected"] != serde_json::json!([]) {
        problems.push(format!("drill --recover wrote unexpectedly: {writes}"));
    }
    let (committed, restored, deleted) =
        super::recovery::expected_writes(t.recovered.iter().map(|r| {
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
    if rehearsed != (committed, restored, deleted) {
        problems.push(format!(
            "drill --recover rolled forward, restored and deleted {rehearsed:?} record(s); \
             ScalarDB's recovery {:?}: {writes}",
            (committed, restored, deleted)
        ));
    }
    Some(problems)
}
