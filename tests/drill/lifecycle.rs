//! Teardown always happens; an interrupted drill leaves nothing behind; a killed one is
//! swept by `cleanup`; `--keep` leaves the instance reachable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::*;

/// A pg_dump large enough that its restore takes a few seconds.
async fn big_dump(dir: &std::path::Path) -> std::path::PathBuf {
    big_dump_of(dir, &[]).await
}

/// A pg_dump with `args` of a database large enough that its restore takes a few seconds.
async fn big_dump_of(dir: &std::path::Path, args: &[&str]) -> std::path::PathBuf {
    let server = postgres_with("clean").await;
    server
        .execute_sql_in(
            Some("source"),
            "CREATE TABLE bank.filler AS SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, 1500000) g;",
        )
        .await
        .unwrap();
    let dump = dir.join("big.sql");
    pg_dump(&server, args, &dump);
    server.stop().await.unwrap();
    dump
}

/// Spawns a drill and waits until its instance directory exists (the restore has begun).
fn spawn_until_restoring(
    backup: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, std::path::PathBuf) {
    let mut args = vec![backup.to_str().unwrap()];
    args.extend_from_slice(extra);
    spawn_drill_until_restoring(&args)
}

/// Spawns `drill ARGS…` and waits until a PostgreSQL instance of it is up (its restore has
/// begun); returns that instance's directory.
#[expect(
    clippy::zombie_processes,
    reason = "the child is returned to the caller, which waits for it"
)]
fn spawn_drill_until_restoring(args: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let mut child = Command::new(BIN)
        .arg("drill")
        .args(args)
        .args(["--quiet", "--format", "json", "--runtime", "local"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The server is up once its data directory has a postmaster.pid.
        let up = leftovers_of(child.id())
            .into_iter()
            .find(|dir| dir.join("box/data/postmaster.pid").exists());
        if let Some(dir) = up {
            {
                std::thread::sleep(Duration::from_millis(700));
                return (child, dir);
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the drill never started its instance");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_sigterm_or_sighup_in_the_middle_of_a_restore_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let dump = big_dump(dir.path()).await;
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let (child, instance_dir) = spawn_until_restoring(&dump, &[]);
        let pid = child.id();
        kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal).unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(130),
            "{signal}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            leftovers_of(pid).is_empty(),
            "{signal}: {:?}",
            leftovers_of(pid)
        );
        assert!(
            processes_in(&instance_dir).is_empty(),
            "{signal}: server still running"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_drill_is_swept_by_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let dump = big_dump(dir.path()).await;
    let (mut child, instance_dir) = spawn_until_restoring(&dump, &[]);
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !leftovers_of(pid).is_empty(),
        "SIGKILL cannot tear down: something must be left"
    );
    let output = Command::new(BIN).arg("cleanup").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(listing.contains(&format!("drill{pid}")), "{listing}");
    assert!(leftovers_of(pid).is_empty(), "{:?}", leftovers_of(pid));
    assert!(
        processes_in(&instance_dir).is_empty(),
        "server still running"
    );
}

#[test]
fn keep_leaves_the_instance_running_until_cleanup() {
    let backup = fixture("recoverable").join("bank.sqlite");
    let output = Command::new(BIN)
        .arg("drill")
        .arg(&backup)
        .args([
            "--keep",
            "--quiet",
            "--format",
            "json",
            "--runtime",
            "local",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("scalardb-verify cleanup --run-id"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let run_id = report["drill"]["run_id"].as_str().unwrap().to_owned();
    let kept = report["drill"]["kept_at"].as_str().unwrap().to_owned();
    let path = kept.strip_prefix("sqlite://").unwrap();
    assert!(std::path::Path::new(path).exists(), "{kept}");
    let output = Command::new(BIN)
        .args(["cleanup", "--run-id", &run_id])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("removed SQLite copy"));
    assert!(!std::path::Path::new(path).exists());
}

#[test]
fn every_drill_tears_down_on_success_and_on_failure() {
    for backup in [
        fixture("clean").join("bank.sqlite"),
        fixture("torn").join("bank.sqlite"),
    ] {
        let child = Command::new(BIN)
            .arg("drill")
            .arg(&backup)
            .args([
                "--quiet",
                "--format",
                "json",
                "--recover",
                "--runtime",
                "local",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.code().is_some());
        assert!(leftovers_of(pid).is_empty(), "{:?}", leftovers_of(pid));
    }
}

/// A kept server is still up after the drill exits (its sandbox does not die with the
/// tool), answers with the password the tool left, and `cleanup --run-id` kills it.
#[test]
fn keep_leaves_a_local_server_running_until_cleanup() {
    let backup = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/oracle/postgres-3.19.1-mixed-custom-coordinator/backup.pg.sql");
    let output = Command::new(BIN)
        .arg("drill")
        .arg(&backup)
        .args([
            "--keep",
            "--quiet",
            "--format",
            "json",
            "--runtime",
            "local",
        ])
        .args(["--coordinator-namespace", "custom_coord"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.code().is_some(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let run_id = report["drill"]["run_id"].as_str().unwrap().to_owned();
    let kept = report["drill"]["kept_at"].as_str().unwrap().to_owned();
    // "<url> (instance directory <dir>, password in <file>)"
    let url = kept.split_whitespace().next().unwrap();
    let password_file = kept
        .split_once("password in ")
        .map(|(_, rest)| rest.trim_end_matches(')'))
        .unwrap_or_else(|| panic!("no password file in {kept}"));
    let socket_dir = url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no socket directory in {kept}"));
    let instance = std::path::Path::new(&socket_dir)
        .parent()
        .unwrap()
        .to_owned();
    assert!(std::path::Path::new(password_file).starts_with(&instance));
    let password = std::fs::read_to_string(password_file).unwrap();
    let query = || {
        Command::new("/usr/lib/postgresql/15/bin/psql")
            .args([
                "-h",
                &socket_dir,
                "-U",
                "postgres",
                "-d",
                "restored",
                "-tAc",
            ])
            .arg("SELECT count(*) FROM custom_coord.state")
            .env("PGPASSWORD", password.trim())
            .output()
            .unwrap()
    };
    let answered = query();
    assert!(
        answered.status.success(),
        "the kept server is gone after the drill exited: {}\n{stderr}",
        String::from_utf8_lossy(&answered.stderr)
    );
    let cleanup = Command::new(BIN)
        .args(["cleanup", "--run-id", &run_id])
        .output()
        .unwrap();
    assert!(cleanup.status.success(), "{cleanup:?}");
    assert!(!instance.exists(), "{} is left behind", instance.display());
    assert!(
        !query().status.success(),
        "the server still answers after cleanup"
    );
}

/// A backup set mid-restore: a big pg_dump of bank, the Coordinator and the metadata, and a
/// mariadb-dump of ledger, as a deployment with ledger in MariaDB.
async fn big_set(dir: &std::path::Path) -> Vec<String> {
    use scalardb_verify::runtime::local::Engine;
    let pg = big_dump_of(dir, &["-n", "bank", "-n", "coordinator", "-n", "scalardb"]).await;
    let maria = start(Engine::MariaDb).await;
    maria
        .load_sql_file(&fixture("clean").join("mysql.sql"), None)
        .await
        .unwrap();
    let ledger = dir.join("ledger.sql");
    mariadb_dump_of(&maria, &["ledger", "scalardb"], &ledger);
    maria.stop().await.unwrap();
    crate::set::DRILL_DEPLOYMENT
        .iter()
        .copied()
        .map(str::to_owned)
        .chain([
            "--backup".to_owned(),
            format!("pg={}", pg.display()),
            "--backup".to_owned(),
            format!("maria={}", ledger.display()),
        ])
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_in_the_middle_of_a_backup_sets_restore_tears_every_instance_down() {
    let dir = tempfile::tempdir().unwrap();
    let set = big_set(dir.path()).await;
    let args: Vec<&str> = set.iter().map(String::as_str).collect();
    let (child, _) = spawn_drill_until_restoring(&args);
    let pid = child.id();
    let instances = leftovers_of(pid);
    assert!(
        instances.len() >= 2,
        "both instances are up while PostgreSQL restores: {instances:?}"
    );
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGTERM).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(leftovers_of(pid).is_empty(), "{:?}", leftovers_of(pid));
    for instance in &instances {
        assert!(
            gone_soon(instance),
            "a server of {} still runs",
            instance.display()
        );
    }

    // Killed outright, the set's instances are all swept by cleanup: they carry its run id.
    let (mut child, _) = spawn_drill_until_restoring(&args);
    let pid = child.id();
    let instances = leftovers_of(pid);
    assert!(instances.len() >= 2, "{instances:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    // Only this run's (a sweep of every orphan could take other runs' on a shared machine).
    let output = Command::new(BIN)
        .args(["cleanup", "--run-id", &format!("drill{pid}")])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = String::from_utf8_lossy(&output.stdout);
    for instance in &instances {
        assert!(
            listing.contains(&instance.display().to_string()),
            "{} is not listed: {listing}",
            instance.display()
        );
        assert!(gone_soon(instance), "{}", instance.display());
    }
    assert!(leftovers_of(pid).is_empty(), "{:?}", leftovers_of(pid));
}

/// Whether no process runs in `dir` within a few seconds (a killed server's exit is not
/// instant on a loaded machine).
fn gone_soon(dir: &std::path::Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_in(dir).is_empty() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}
