//! Drills on the docker runtime: the client tools run inside the container, so the host
//! needs nothing but the engine. Uses the images scripts/build-test-images builds locally
//! (no registry is reachable here); `--image` is how air-gapped users pin theirs too.

use std::process::Command;

use crate::backups::assert_recoverable_and_rehearsed;
use crate::support::*;

const PG_IMAGE: &str = "scalardb-verify-test/postgres:15";
const MARIADB_IMAGE: &str = "scalardb-verify-test/mariadb:10.11";

/// Fails, never skips, when the engine or the images are missing.
fn require_images() {
    let output = Command::new("docker")
        .args(["image", "inspect", PG_IMAGE, MARIADB_IMAGE])
        .output();
    match output {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "the docker drill tests need a running Docker engine and the images {PG_IMAGE} and \
             {MARIADB_IMAGE}: run scripts/install-docker and scripts/build-test-images"
        ),
    }
}

fn containers_of(run_id: &str) -> usize {
    let output = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=scalardb-verify.run-id={run_id}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).lines().count()
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_dump_and_mysqldump_backups_drill_in_containers() {
    require_images();
    let server = postgres_with("recoverable").await;
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("custom.dump");
    pg_dump(&server, &["-Fc"], &custom);
    let plain = dir.path().join("plain.sql");
    pg_dump(&server, &[], &plain);
    server.stop().await.unwrap();

    for backup in [&custom, &plain] {
        let run = drill_on(
            "docker",
            backup,
            &[
                "--image",
                PG_IMAGE,
                "--recover",
                "--check",
                "money=SELECT sum(balance) = 12000 FROM bank.accounts",
            ],
        );
        assert_recoverable_and_rehearsed(&run, &backup.display().to_string());
        let report = run.json();
        assert_eq!(report["drill"]["runtime"], "docker");
        let run_id = report["drill"]["run_id"].as_str().unwrap();
        assert_eq!(containers_of(run_id), 0, "the container outlived the drill");
    }

    let maria = start(scalardb_verify::runtime::Engine::MariaDb).await;
    maria
        .load_sql_file(&fixture("recoverable").join("mysql.sql"), None)
        .await
        .unwrap();
    let dump = dir.path().join("dump.sql");
    mariadb_dump(&maria, &dump);
    maria.stop().await.unwrap();
    let run = drill_on(
        "docker",
        &dump,
        &[
            "--image",
            MARIADB_IMAGE,
            "--recover",
            "--check",
            "money=SELECT sum(balance) = 12000 FROM bank.accounts",
        ],
    );
    assert_recoverable_and_rehearsed(&run, "mysqldump in a container");
}

#[test]
fn a_missing_image_is_a_restore_error_naming_it() {
    require_images();
    let backup = fixture("clean").join("postgres.sql");
    let dir = tempfile::tempdir().unwrap();
    // A plain pg_dump needs a server: the fixture SQL is wrapped as one.
    let dump = dir.path().join("dump.sql");
    let sql = std::fs::read_to_string(backup).unwrap();
    std::fs::write(
        &dump,
        format!("--\n-- PostgreSQL database dump\n--\n{sql}--\n-- PostgreSQL database dump complete\n--\n"),
    )
    .unwrap();
    let run = drill_on(
        "docker",
        &dump,
        &["--image", "scalardb-verify-test/no-such-image:1"],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("no-such-image"), "{}", run.stderr);
}

/// A kept docker instance: reachable through the socket its hint names, by this user only,
/// with no network; `cleanup --run-id` removes the container and the socket directory.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_container_has_no_network_and_cleanup_removes_its_socket_directory() {
    use sqlx::Connection as _;
    use std::os::unix::fs::MetadataExt as _;

    require_images();
    let server = postgres_with("recoverable").await;
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("custom.dump");
    pg_dump(&server, &["-Fc"], &custom);
    server.stop().await.unwrap();

    let run = drill_on("docker", &custom, &["--image", PG_IMAGE, "--keep"]);
    let report = run.json();
    let run_id = report["drill"]["run_id"].as_str().unwrap().to_owned();
    let hint = report["drill"]["kept_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no kept_at: {}\n{}", run.stdout, run.stderr))
        .to_owned();
    let url = hint.split_whitespace().next().unwrap();
    let parsed = url::Url::parse(url).unwrap();
    let socket_dir = parsed
        .query_pairs()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| std::path::PathBuf::from(v.into_owned()))
        .unwrap_or_else(|| panic!("the hint names no socket: {hint}"));
    let instance_dir = socket_dir.parent().unwrap().to_owned();

    // Reachable through the hint's URL (the socket as its host) with the random password
    // of the file it names; the report itself never holds the password.
    assert!(parsed.password().is_none(), "{hint}");
    assert_eq!(parsed.host_str(), Some("localhost"));
    let password_file = hint
        .split("password in ")
        .nth(1)
        .map(|rest| rest.trim_end_matches(')'))
        .unwrap_or_else(|| panic!("the hint names no password file: {hint}"));
    let password = std::fs::read_to_string(password_file).unwrap();
    assert!(password.len() >= 32, "{hint}");
    assert_eq!(
        std::fs::metadata(password_file).unwrap().mode() & 0o777,
        0o600
    );
    let mut with_password = parsed.clone();
    with_password.set_password(Some(&password)).unwrap();
    let mut conn = sqlx::postgres::PgConnection::connect(with_password.as_str())
        .await
        .unwrap_or_else(|e| panic!("connect through {hint}: {e}"));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM bank.accounts")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(count > 0);
    conn.close().await.unwrap();

    // This user's alone, and the container without a network.
    let meta = std::fs::metadata(&instance_dir).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700, "{}", instance_dir.display());
    let inspected = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=scalardb-verify.run-id={run_id}"),
        ])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&inspected.stdout).trim().to_owned();
    assert!(!id.is_empty(), "no running container for run {run_id}");
    let mode = Command::new("docker")
        .args(["inspect", "-f", "{{.HostConfig.NetworkMode}}", &id])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&mode.stdout).trim(), "none");

    let cleanup = Command::new(BIN)
        .args(["cleanup", "--run-id", &run_id])
        .output()
        .unwrap();
    assert!(cleanup.status.success(), "{cleanup:?}");
    assert_eq!(containers_of(&run_id), 0, "cleanup left the container");
    assert!(
        !instance_dir.exists(),
        "cleanup left {}",
        instance_dir.display()
    );
}
