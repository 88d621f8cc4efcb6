//! The ready-made jobs under `examples/`, each exercised as its host would run it: the
//! GitHub Actions workflow's steps run as GitHub runs them, the systemd units verified by
//! `systemd-analyze` and the service's command run, the Kubernetes manifests deserialized
//! into the API's types, the Prometheus rules checked by promtool. Real drills of SQLite
//! backups throughout (no server needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;
use serde_json::Value;

use crate::support::*;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A PATH on which `scalardb-verify` is the binary under test.
fn path_with_bin() -> String {
    let bin_dir = Path::new(BIN).parent().unwrap();
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Copies fixture `state`'s SQLite file to `dir/name`, modified `age_s` seconds ago.
fn backup_file(dir: &Path, name: &str, state: &str, age_s: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(fixture(state).join("bank.sqlite"), &path).unwrap();
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(when)
        .unwrap();
    path
}

/// A copy of the clean fixture without its Coordinator table: indeterminate (exit 4).
fn indeterminate_backup(dir: &Path, name: &str) -> PathBuf {
    let path = backup_file(dir, name, "clean", 0);
    let status = Command::new("sqlite3")
        .arg(&path)
        .arg(r#"DROP TABLE "coordinator$state";"#)
        .status()
        .expect("run sqlite3 (scripts/install-test-deps installs it)");
    assert!(status.success());
    path
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a run of the workflow's job did: each step's exit status (None: skipped).
struct JobRun {
    steps: Vec<(String, Option<i32>)>,
    outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// What the steps printed.
    log: String,
}

/// Runs the `drill` job's steps as GitHub's runner does: `run` scripts with `bash -e`
/// (GitHub's default shell, with pipefail), the job's and step's `env` (step outputs
/// substituted), `$GITHUB_OUTPUT`, and a failed step skipping the rest but `always()`
/// ones. `uses` steps are checked, not run: the upload must find its file.
fn run_workflow(workflow: &Value, backup_dir: &Path, work: &Path) -> JobRun {
    let job = &workflow["jobs"]["drill"];
    let mut outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut steps = Vec::new();
    let mut failed = false;
    let mut log = String::new();
    for (i, step) in job["steps"].as_array().unwrap().iter().enumerate() {
        let name = step["name"].as_str().unwrap().to_owned();
        let always = step["if"].as_str() == Some("always()");
        if failed && !always {
            steps.push((name, None));
            continue;
        }
        if let Some(action) = step["uses"].as_str() {
            assert!(action.starts_with("actions/upload-artifact@"), "{action}");
            let path = step["with"]["path"].as_str().unwrap();
            assert!(
                work.join(path).is_file(),
                "{name}: nothing to upload at {path}"
            );
            steps.push((name, Some(0)));
            continue;
        }
        let script = step["run"].as_str().unwrap();
        // Expressions in a script are an injection risk: they go through env.
        assert!(!script.contains("${{"), "{name}: an expression in run");
        let output_file = work.join(format!("github-output-{i}"));
        std::fs::write(&output_file, "").unwrap();
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(work)
            .env("PATH", path_with_bin())
            .env("GITHUB_OUTPUT", &output_file);
        for env in [&job["env"], &step["env"]] {
            for (key, value) in env.as_object().into_iter().flatten() {
                command.env(key, substitute(value.as_str().unwrap(), &outputs));
            }
        }
        command.env("BACKUP_DIR", backup_dir);
        let output = command.output().unwrap();
        let status = output.status.code().unwrap_or(-1);
        log.push_str(&format!(
            "--- {name}: exit {status}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
        if let Some(id) = step["id"].as_str() {
            let text = std::fs::read_to_string(&output_file).unwrap();
            let values = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            outputs.insert(id.to_owned(), values);
        }
        failed |= status != 0;
        steps.push((name, Some(status)));
    }
    JobRun {
        steps,
        outputs,
        log,
    }
}

/// `${{ steps.ID.outputs.KEY }}` replaced by the step's output; any other expression fails.
fn substitute(value: &str, outputs: &BTreeMap<String, BTreeMap<String, String>>) -> String {
    let Some(start) = value.find("${{") else {
        return value.to_owned();
    };
    let end = value[start..].find("}}").unwrap() + start;
    let expression = value[start + 3..end].trim();
    let parts: Vec<&str> = expression.split('.').collect();
    let [steps, id, outputs_word, key] = parts[..] else {
        panic!("unsupported expression {expression}");
    };
    assert_eq!((steps, outputs_word), ("steps", "outputs"), "{expression}");
    let output = outputs
        .get(id)
        .and_then(|o| o.get(key))
        .unwrap_or_else(|| panic!("{expression}: no such output yet"));
    format!(
        "{}{output}{}",
        &value[..start],
        substitute(&value[end + 2..], outputs)
    )
}

#[test]
fn the_github_workflow_drills_the_latest_dump_and_fails_on_exit_1_and_4() {
    let workflow = yaml(&examples().join("github-actions/backup-drill.yml"));
    assert!(workflow["on"]["schedule"][0]["cron"].is_string());
    let upload = workflow["jobs"]["drill"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["uses"].is_string())
        .expect("an upload step");
    assert_eq!(
        upload["if"], "always()",
        "the report is uploaded on failure too"
    );

    for (newest, code, job_fails) in [
        ("clean", "0", false),
        ("torn", "1", true),
        ("gone", "4", true),
    ] {
        let backups = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        // An older dump of the other kind, so only picking the newest gives this result.
        let older = if newest == "clean" { "torn" } else { "clean" };
        backup_file(backups.path(), "older.sqlite", older, 3600);
        if newest == "gone" {
            indeterminate_backup(backups.path(), "newest.sqlite");
        } else {
            backup_file(backups.path(), "newest.sqlite", newest, 0);
        }
        let run = run_workflow(&workflow, backups.path(), work.path());
        assert_eq!(
            run.outputs["latest"]["backup"],
            backups.path().join("newest.sqlite").to_str().unwrap()
        );
        assert_eq!(
            run.outputs["drill"]["exit_code"], code,
            "{newest}: {}",
            run.log
        );
        let (last, status) = run.steps.last().unwrap();
        assert!(last.starts_with("Fail on"), "{last}");
        assert_eq!(*status, Some(i32::from(job_fails)), "{newest}: {}", run.log);
        let junit_text = std::fs::read_to_string(work.path().join("drill-junit.xml")).unwrap();
        let junit = quick_junit::Report::deserialize_from_str(&junit_text).unwrap();
        let failed_cases = junit
            .test_suites
            .iter()
            .flat_map(|s| &s.test_cases)
            .filter(|c| !matches!(c.status, quick_junit::TestCaseStatus::Success { .. }))
            .count();
        assert_eq!(failed_cases > 0, job_fails, "{newest}: {junit_text}");
    }
}

#[test]
fn the_systemd_units_verify_and_the_service_drills_the_newest_backup() {
    let dir = examples().join("systemd");
    let service = dir.join("scalardb-verify-drill.service");
    let timer = dir.join("scalardb-verify-drill.timer");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args([&service, &timer])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}): this test verifies the units with it (Debian package systemd)")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify: {stderr}");
    // Warnings (an unknown key, a bad calendar spec) exit 0: none is allowed either.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warns: {stderr}"
    );

    // The service's command, run as systemd would run it (its Environment= and
    // StateDirectory= given), with the binary and the collector directory moved here.
    let unit = std::fs::read_to_string(&service).unwrap();
    let line = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the service"))
            .to_owned()
    };
    let exec = line("ExecStart=");
    let script = exec
        .strip_prefix("/bin/sh -c '")
        .and_then(|s| s.strip_suffix('\''))
        .expect("ExecStart=/bin/sh -c '…'");
    let collector = "/var/lib/node_exporter/textfile_collector";
    assert!(line("ReadWritePaths=").contains(collector));
    assert!(
        script.contains("/usr/local/bin/scalardb-verify drill"),
        "{script}"
    );
    let work = tempfile::tempdir().unwrap();
    let (backups, state, metrics) = (
        work.path().join("backups"),
        work.path().join("state"),
        work.path().join("textfile"),
    );
    for d in [&backups, &state, &metrics] {
        std::fs::create_dir(d).unwrap();
    }
    backup_file(&backups, "nightly-1.sqlite", "torn", 3600);
    let newest = backup_file(&backups, "nightly-2.sqlite", "recoverable", 0);
    // systemd turns `$$` into `$` and substitutes a lone `$VAR` itself: the script leaves
    // every expansion to the shell.
    assert!(
        !script.replace("$$", "").contains('$'),
        "a `$` systemd would expand: {script}"
    );
    let script = script
        .replace("$$", "$")
        .replace("/usr/local/bin/scalardb-verify", BIN)
        .replace(collector, metrics.to_str().unwrap());
    let env = line("Environment=");
    let (key, _) = env.split_once('=').unwrap();
    let status = Command::new("/bin/sh")
        .args(["-c", &script])
        .env(key, &backups)
        .env("STATE_DIRECTORY", &state)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("last-drill.json")).unwrap())
            .unwrap();
    crate::schema::validate_report(&report);
    assert_eq!(report["drill"]["backup"], newest.to_str().unwrap());
    assert_eq!(report["verdict"], "recoverable");
    let scrape = crate::prom::read_metrics(&metrics.join("scalardb_verify.prom"));
    assert_eq!(
        crate::prom::gauge(&scrape, "scalardb_verify_rto_seconds", &[]),
        900.0
    );
    let history = std::fs::read_to_string(state.join("history/history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 1);
}

/// Deserializes `doc` into `T` and serializes it back. k8s-openapi keeps only the fields
/// the API knows and always writes the required ones (a missing one comes back as its
/// default), so a field the API does not know (a typo) and a required field left out
/// both show as a difference.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if let Some(path) = first_difference(doc, &back, "") {
        return Err(format!("{path}: not a field of the API, or not as written"));
    }
    if let Some(path) = first_difference(&back, doc, "") {
        return Err(format!("{path}: a required field is missing"));
    }
    Ok(typed)
}

/// The first path of `a` that `b` lacks or holds differently.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            Some(w) => first_difference(v, w, &format!("{at}.{k}")),
            None => Some(format!("{at}.{k}")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{at}[{i}]"))),
        _ => (a != b).then(|| at.to_owned()),
    }
}

fn check_document(doc: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps, batch, core};
    match doc["kind"].as_str().unwrap_or_default() {
        "ServiceAccount" => round_trip::<core::v1::ServiceAccount>(doc).map(drop),
        "PersistentVolumeClaim" => round_trip::<core::v1::PersistentVolumeClaim>(doc).map(drop),
        "CronJob" => round_trip::<batch::v1::CronJob>(doc).map(drop),
        "Deployment" => round_trip::<apps::v1::Deployment>(doc).map(drop),
        "Service" => round_trip::<core::v1::Service>(doc).map(drop),
        other => Err(format!("unexpected kind {other:?}")),
    }
}

#[test]
fn the_kubernetes_manifests_are_valid_api_objects_that_fit_together() {
    use k8s_openapi::api::{apps::v1::Deployment, batch::v1::CronJob, core::v1::Service};
    let path = examples().join("kubernetes/scalardb-verify.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "PersistentVolumeClaim",
            "CronJob",
            "Deployment",
            "Service"
        ]
    );
    for doc in &docs {
        check_document(doc)
            .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]));
    }

    // The checks catch what they are for.
    let mut typo = docs[2].clone();
    typo["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicyy"] = "Never".into();
    assert!(
        check_document(&typo)
            .unwrap_err()
            .contains("restartPolicyy")
    );
    let mut missing = docs[2].clone();
    missing["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let error = check_document(&missing).unwrap_err();
    assert!(
        error.contains("containers[0].name: a required field is missing"),
        "{error}"
    );

    // And they fit together.
    let cron: CronJob = round_trip(&docs[2]).unwrap();
    let cron_spec = cron.spec.unwrap();
    assert_eq!(cron_spec.schedule.split_whitespace().count(), 5);
    assert_eq!(cron_spec.concurrency_policy.as_deref(), Some("Forbid"));
    let pod = cron_spec.job_template.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        docs[0]["metadata"]["name"].as_str()
    );
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    // What the drill's sandbox needs (README: Container image).
    assert_eq!(pod.host_users, Some(false));
    let container = &pod.containers[0];
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.proc_mount.as_deref(), Some("Unmasked"));
    assert_eq!(
        security.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("Unconfined")
    );
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let resources = container.resources.as_ref().unwrap();
    assert!(resources.limits.as_ref().unwrap().contains_key("memory"));
    assert!(resources.requests.as_ref().unwrap().contains_key("cpu"));
    let command = container.args.as_ref().unwrap().join(" ");
    assert!(command.contains("scalardb-verify drill"), "{command}");
    let mounts = container.volume_mounts.as_ref().unwrap();
    let mount = |name: &str| mounts.iter().find(|m| m.name == name).unwrap();
    assert_eq!(mount("backups").read_only, Some(true));
    let state = mount("state").mount_path.clone();
    assert!(
        command.contains(&format!("--metrics-file {state}/metrics/")),
        "{command}"
    );
    let claims: Vec<String> = pod
        .volumes
        .unwrap()
        .iter()
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
        })
        .collect();
    assert!(
        claims
            .iter()
            .any(|c| docs[1]["metadata"]["name"] == c.as_str())
    );

    let exporter: Deployment = round_trip(&docs[3]).unwrap();
    let exporter_pod = exporter.spec.unwrap().template;
    let exporter_args = exporter_pod.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(exporter_args.contains(&format!("--collector.textfile.directory={state}/metrics")));
    let service: Service = round_trip(&docs[4]).unwrap();
    let selector = service.spec.unwrap().selector.unwrap();
    let pod_labels = exporter_pod.metadata.unwrap().labels.unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
}

#[test]
fn the_prometheus_rules_check_and_hold_the_readmes_expression() {
    let rules = examples().join("prometheus/scalardb-verify.rules.yml");
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}); install it with scripts/install-test-deps")
        });
    assert!(
        output.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let recorded = yaml(&rules)["groups"][0]["rules"][0]["expr"]
        .as_str()
        .map(squash)
        .unwrap();
    let readme = std::fs::read_to_string(examples().join("../README.md")).unwrap();
    let promql = readme
        .split("```promql\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .map(squash)
        .expect("a promql block in the README");
    assert_eq!(promql, recorded);
}
