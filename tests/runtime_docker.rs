//! The docker runtime against a real Docker engine and real containers: start, load through
//! the in-container client, query from the host through the server's socket, restore a
//! `pg_dump -Fc` archive with `pg_restore` inside, stop; that a SQL container is confined
//! (no network, no TCP listener, its socket in a directory only this user can open,
//! password authentication with a fresh password that no command line shows, capabilities
//! dropped); and that nothing is left behind by `stop`, by `Drop`, or by a run that never
//! cleaned up (the sweep), socket directories included.
//!
//! The images are the local test images (`scripts/build-test-images`), passed explicitly;
//! `SCALARDB_VERIFY_TEST_PG_IMAGE` and `SCALARDB_VERIFY_TEST_MYSQL_IMAGE` override them
//! (e.g. with the official `postgres:16` and `mysql:8.4` where a registry is reachable).
//!
//! The Cassandra tests start `scalardb-verify-test/cassandra:5.0` (the official
//! `cassandra:5.0`'s contract; `SCALARDB_VERIFY_TEST_CASSANDRA_IMAGE` overrides it), write
//! rows into one node, snapshot them there, and import the snapshot into a second node; and
//! check that a node is confined and locked (only its own CQL role and JMX user get in, no
//! password on a command line, what an intruder would leave is found).
//!
//! No test skips when the engine or an image is missing: it fails, saying to run
//! `scripts/install-docker` and `scripts/build-test-images`. The `docker` command line is
//! the independent witness that a container is gone.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scalardb_verify::model::TableRef;
use scalardb_verify::runtime::{
    DockerCassandra, DockerInstance, DockerOptions, DockerRuntimeError, Engine, docker_available,
    labelled_containers, sweep_containers,
};
use scalardb_verify::store::{
    CassandraCredentials, CassandraStore, CassandraWriter, CqlParam, ReadConsistency,
};
use sqlx::Connection as _;
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;

const PG_IMAGE: &str = "scalardb-verify-test/postgres:15";
const MYSQL_IMAGE: &str = "scalardb-verify-test/mariadb:10.11";
const CASSANDRA_IMAGE: &str = "scalardb-verify-test/cassandra:5.0";
const SETUP_HINT: &str = "run scripts/install-docker (starts an engine) and \
                          scripts/build-test-images (builds the test images)";

fn image(engine: Engine) -> String {
    let (var, default) = match engine {
        Engine::Postgres => ("SCALARDB_VERIFY_TEST_PG_IMAGE", PG_IMAGE),
        Engine::MariaDb => ("SCALARDB_VERIFY_TEST_MYSQL_IMAGE", MYSQL_IMAGE),
    };
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn options(test: &str, engine: Engine, password: Option<&str>) -> DockerOptions {
    let mut options = DockerOptions::new(format!("t-{test}-{}", std::process::id()));
    options.image = Some(image(engine));
    options.startup_timeout = Duration::from_secs(120);
    options.superuser_password = password.map(str::to_owned);
    options
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    text
}

async fn require_engine() {
    assert!(
        docker_available().await,
        "no Docker engine answers at DOCKER_HOST or /var/run/docker.sock; {SETUP_HINT}"
    );
}

async fn start(engine: Engine, options: &DockerOptions) -> DockerInstance {
    require_engine().await;
    let started = Instant::now();
    let instance = DockerInstance::start(engine, options)
        .await
        .unwrap_or_else(|e| panic!("failed to {}\n({SETUP_HINT})", error_chain(&e)));
    eprintln!(
        "{engine} ({}) ready in {:?}",
        instance.image(),
        started.elapsed()
    );
    instance
}

/// `docker inspect` of a container, or `None` if the engine does not know it.
fn inspect(id: &str) -> Option<serde_json::Value> {
    let output = std::process::Command::new("docker")
        .args(["inspect", "--type", "container", id])
        .output()
        .unwrap_or_else(|e| panic!("failed to run the docker command line ({e}); {SETUP_HINT}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("No such"),
            "docker inspect failed unexpectedly: {stderr}"
        );
        return None;
    }
    let mut all: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    Some(all.remove(0))
}

fn assert_gone(id: &str) {
    assert!(inspect(id).is_none(), "container {id} is left behind");
}

/// The instance directory a SQL container's label names: the parent of its socket directory.
fn instance_dir(instance: &DockerInstance) -> PathBuf {
    instance.socket_dir().parent().unwrap().to_owned()
}

fn assert_labelled(instance: &DockerInstance, options: &DockerOptions, engine: &str) {
    let container = inspect(instance.container_id()).expect("the container exists");
    let labels = &container["Config"]["Labels"];
    assert_eq!(labels["scalardb-verify.tool"], "scalardb-verify");
    assert_eq!(labels["scalardb-verify.run-id"], options.run_id.as_str());
    assert_eq!(labels["scalardb-verify.engine"], engine);
    let port = if engine == "postgres" { "5433" } else { "3306" };
    assert_eq!(labels["scalardb-verify.port"], port);
    assert_eq!(
        labels["scalardb-verify.socket-dir"],
        instance_dir(instance).to_str().unwrap()
    );
    assert_eq!(container["State"]["Running"], true);
    assert_confined(instance, &container);
}

/// What every container of the tool may do: the given network, three capabilities (its
/// entrypoint's, to become the server's account), no new privileges, a pids limit.
fn assert_hardened(container: &serde_json::Value, network: &str, pids: u64) {
    let host = &container["HostConfig"];
    assert_eq!(host["NetworkMode"], network, "{host}");
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "{host}");
    let mut added: Vec<&str> = host["CapAdd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().trim_start_matches("CAP_"))
        .collect();
    added.sort_unstable();
    assert_eq!(added, ["CHOWN", "SETGID", "SETUID"], "{host}");
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"])
    );
    assert_eq!(host["PidsLimit"], pids);
    assert_eq!(host["Privileged"], false);
}

/// What a SQL container may do: no network, nothing of the host but its socket directory,
/// three capabilities, no new privileges, a pids limit; and no password on its command line
/// or in its environment.
fn assert_confined(instance: &DockerInstance, container: &serde_json::Value) {
    assert_hardened(container, "none", 1024);
    let mounts = container["Mounts"].as_array().unwrap();
    let binds: Vec<&serde_json::Value> = mounts.iter().filter(|m| m["Type"] == "bind").collect();
    assert_eq!(binds.len(), 1, "{mounts:?}");
    assert_eq!(
        binds[0]["Source"],
        instance.socket_dir().to_str().unwrap(),
        "{mounts:?}"
    );
    let inside = match instance.engine() {
        Engine::Postgres => "/run/scalardb-verify",
        Engine::MariaDb => "/run/mysqld",
    };
    assert_eq!(binds[0]["Destination"], inside);
    // The container's only interface is its own loopback.
    assert_eq!(
        container["NetworkSettings"]["Networks"]
            .as_object()
            .map(|n| n.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["none".to_owned()])
    );
    // The password is in none of what `docker inspect` shows.
    let password = password_of(instance);
    for shown in [
        &container["Config"]["Cmd"],
        &container["Config"]["Env"],
        &container["Args"],
        &container["Path"],
    ] {
        assert!(!shown.to_string().contains(&password), "{shown}");
    }
}

/// A shell command printing, one per line: who `exec` runs as, its effective capabilities,
/// the effective capabilities and uid of pid 1 (the server, or for Cassandra the tool's
/// bridge that runs it, which gives up root before carrying a byte).
const UNPRIVILEGED_PROBE: &str = "id -un; grep ^CapEff /proc/self/status | cut -f2; \
     grep ^CapEff /proc/1/status | cut -f2; grep ^Uid /proc/1/status | cut -f2";

/// The clients `exec` runs, and the server, run as the server's account with no
/// capability in effect.
async fn assert_unprivileged(instance: &DockerInstance, account: &str) {
    let out = instance
        .exec(&["sh", "-c", UNPRIVILEGED_PROBE])
        .await
        .unwrap();
    assert_unprivileged_output(&out, account);
}

/// What [`UNPRIVILEGED_PROBE`] printed shows `account`, and no capability or root.
fn assert_unprivileged_output(out: &scalardb_verify::runtime::docker::ExecOutput, account: &str) {
    assert!(out.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert_eq!(lines[0], account, "{out:?}");
    assert_eq!(
        lines[1], "0000000000000000",
        "the client has capabilities: {out:?}"
    );
    assert_eq!(
        lines[2], "0000000000000000",
        "the server has capabilities: {out:?}"
    );
    assert_ne!(lines[3], "0", "the server runs as root: {out:?}");
}

/// The instance's URL is a valid scan target, whose display names the socket but not the
/// password.
fn assert_scan_target_hides_the_password(instance: &DockerInstance) {
    let target = scalardb_verify::config::Target::from_url(&instance.url())
        .unwrap_or_else(|e| panic!("{}: {}", instance.url(), error_chain(&e)));
    let shown = target.display();
    let password = password_of(instance);
    let encoded = url::Url::parse(&instance.url())
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    assert!(
        !shown.contains(&password) && !shown.contains(&encoded),
        "{shown}"
    );
    assert!(shown.contains("localhost"), "{shown}");
}

/// The instance's password, from its URL.
fn password_of(instance: &DockerInstance) -> String {
    let url = url::Url::parse(&instance.url()).unwrap();
    let password = url.password().expect("the URL carries a password");
    percent_decode(password)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The TCP sockets listening in the network namespace of `pid` (read from the host's /proc,
/// so the container needs no tools): `local address:port` in /proc's hex.
fn tcp_listeners_of(pid: u64) -> Vec<String> {
    let mut listening = Vec::new();
    for table in ["tcp", "tcp6"] {
        let path = format!("/proc/{pid}/net/{table}");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {path} (the tests must run as root): {e}"));
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // State 0A is LISTEN.
            if fields.get(3) == Some(&"0A") {
                listening.push(format!("{table} {}", fields[1]));
            }
        }
    }
    listening
}

/// The server has no TCP listener anywhere: not on the host (it is not in the host's
/// network namespace), not even on the container's own loopback.
fn assert_no_tcp_listener(instance: &DockerInstance) {
    let container = inspect(instance.container_id()).unwrap();
    let pid = container["State"]["Pid"].as_u64().unwrap();
    assert!(pid > 0, "{container}");
    let netns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(
        netns(&pid.to_string()),
        netns("self"),
        "the server is in the host's network namespace"
    );
    assert_eq!(tcp_listeners_of(pid), Vec::<String>::new());
}

/// The instance directory is this user's alone (0700 under a 0700 parent), and another
/// user cannot even see the socket in it.
fn assert_socket_private(instance: &DockerInstance) {
    let uid = nix_uid();
    let dir = instance_dir(instance);
    for private in [dir.as_path(), dir.parent().unwrap()] {
        let meta = std::fs::symlink_metadata(private).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.uid(), uid, "{}", private.display());
        assert_eq!(meta.mode() & 0o777, 0o700, "{}", private.display());
    }
    let socket = instance.socket_path();
    assert!(socket.exists(), "{}", socket.display());
    assert_eq!(
        uid, 0,
        "trying the socket as another user needs root (setpriv)"
    );
    let output = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "ls",
            "-l",
        ])
        .arg(&socket)
        .output()
        .expect("run setpriv (util-linux)");
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Permission denied"),
        "{output:?}"
    );
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Decodes `od -An -tx1 -v` output.
fn from_od_hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).unwrap())
        .collect()
}

#[tokio::test]
async fn postgres_loads_sql_restores_an_archive_and_stop_removes_it() {
    let password = "p@ss w'rd";
    let options = options("pg", Engine::Postgres, Some(password));
    let pg = start(Engine::Postgres, &options).await;
    let id = pg.container_id().to_owned();
    assert_labelled(&pg, &options, "postgres");
    assert_no_tcp_listener(&pg);
    assert_socket_private(&pg);
    assert_eq!(
        pg.url(),
        format!(
            "postgres://postgres:p%40ss%20w'rd@localhost:5433/postgres?host={}",
            pg.socket_dir().display()
        )
    );
    assert_eq!(pg.socket_path(), pg.socket_dir().join(".s.PGSQL.5433"));
    assert_scan_target_hides_the_password(&pg);
    let dir_of_instance = instance_dir(&pg);

    // Loaded by psql inside the container, from a host file streamed to its stdin: big
    // enough to take many chunks.
    let dir = tempfile::tempdir().unwrap();
    let mut sql =
        String::from("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint, note text);\n");
    for chunk in 0..200 {
        sql.push_str("INSERT INTO accounts VALUES ");
        let rows: Vec<String> = (0..100)
            .map(|i| {
                let id = chunk * 100 + i;
                format!("({id}, {}, 'note {id} {}')", id * 7, "x".repeat(40))
            })
            .collect();
        sql.push_str(&rows.join(", "));
        sql.push_str(";\n");
    }
    let file = write_file(dir.path(), "load.sql", &sql);
    assert!(sql.len() > 1_000_000);
    pg.load_sql_file(&file, None).await.unwrap();

    let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
    let (count, sum): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(balance)::bigint FROM accounts")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((count, sum), (20_000, 7 * (19_999 * 20_000 / 2)));
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT current_setting(name) FROM unnest(array['listen_addresses', 'fsync', \
         'synchronous_commit', 'full_page_writes']) AS name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(settings, ["", "off", "off", "off"]);

    // ON_ERROR_STOP: the statement after the error must not run, and stderr is reported.
    let bad = write_file(
        dir.path(),
        "bad.sql",
        "SELEC broken;\nCREATE TABLE after_error (id int);\n",
    );
    let err = pg.load_sql_file(&bad, None).await.unwrap_err();
    assert!(
        matches!(&err, DockerRuntimeError::LoadSql { stderr, .. } if stderr.contains("syntax error")),
        "{err:?}"
    );
    assert!(err.to_string().contains("bad.sql"), "{err}");
    let after: Option<String> = sqlx::query_scalar("SELECT to_regclass('after_error')::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(after, None);
    // A client that stops reading early (the first statement fails) while a large file is
    // still being streamed: reported, not hung.
    let bad_big = write_file(dir.path(), "bad_big.sql", &format!("SELEC broken;\n{sql}"));
    let failing = Instant::now();
    let err = pg.load_sql_file(&bad_big, None).await.unwrap_err();
    assert!(
        matches!(&err, DockerRuntimeError::LoadSql { stderr, .. } if stderr.contains("syntax error")),
        "{err:?}"
    );
    assert!(failing.elapsed() < Duration::from_secs(30));
    let err = pg
        .execute_sql_in(Some("nonexistent"), "SELECT 1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DockerRuntimeError::ExecuteSql { stderr, .. } if stderr.contains("nonexistent")),
        "{err:?}"
    );

    // exec: exit code and both streams, with the client environment set.
    let out = pg
        .exec(&["sh", "-c", "echo out; echo err >&2; echo $PGPORT; exit 3"])
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout, "out\n5433\n");
    assert_unprivileged(&pg, "postgres").await;
    assert_eq!(out.stderr, "err\n");

    // A custom-format archive made by the server's own pg_dump (hex on stdout, so any
    // image's pg_dump works whatever the host has), restored with pg_restore --jobs 2 inside.
    let dumped = pg
        .exec(&["sh", "-c", "pg_dump -Fc -d postgres | od -An -tx1 -v"])
        .await
        .unwrap();
    assert!(dumped.success(), "{}", dumped.stderr);
    let archive = dir.path().join("bank.custom");
    std::fs::write(&archive, from_od_hex(&dumped.stdout)).unwrap();
    assert!(std::fs::read(&archive).unwrap().starts_with(b"PGDMP"));
    pg.execute_sql("CREATE DATABASE restored").await.unwrap();
    let restoring = Instant::now();
    pg.pg_restore(&archive, "restored", 2).await.unwrap();
    eprintln!("pg_restore --jobs 2 took {:?}", restoring.elapsed());
    let mut restored = PgConnection::connect(&pg.url_for("restored"))
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&mut restored)
        .await
        .unwrap();
    assert_eq!(count, 20_000);

    // The same by hand: copy_into, then pg_restore through exec.
    let inside = pg.copy_into(&archive).await.unwrap();
    assert!(
        inside.starts_with("/tmp/scalardb-verify-upload-"),
        "{inside}"
    );
    assert!(inside.ends_with("/bank.custom"), "{inside}");
    pg.execute_sql("CREATE DATABASE by_hand").await.unwrap();
    let out = pg
        .exec(&[
            "pg_restore",
            "--jobs",
            "2",
            "--no-owner",
            "-d",
            "by_hand",
            &inside,
        ])
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
    let mut by_hand = PgConnection::connect(&pg.url_for("by_hand")).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&mut by_hand)
        .await
        .unwrap();
    assert_eq!(count, 20_000);

    // A corrupt archive: pg_restore's own error comes back.
    let corrupt = write_file(dir.path(), "corrupt.custom", "PGDMP but not really");
    let err = pg.pg_restore(&corrupt, "restored", 1).await.unwrap_err();
    assert!(
        matches!(&err, DockerRuntimeError::PgRestore { stderr, .. } if stderr.contains("pg_restore")),
        "{err:?}"
    );

    // Open connections must not hold up the removal.
    let stopping = Instant::now();
    pg.stop().await.unwrap();
    eprintln!("postgres container removed in {:?}", stopping.elapsed());
    assert_gone(&id);
    assert!(!dir_of_instance.exists(), "{}", dir_of_instance.display());
    assert!(
        labelled_containers(Some(&options.run_id))
            .await
            .unwrap()
            .is_empty()
    );
    drop((conn, restored, by_hand));
}

#[tokio::test]
async fn mysql_family_loads_a_dump_and_stop_removes_it() {
    // No password given: a fresh random one, never none.
    let options = options("maria", Engine::MariaDb, None);
    let db = start(Engine::MariaDb, &options).await;
    let id = db.container_id().to_owned();
    assert_labelled(&db, &options, "mariadb");
    assert_no_tcp_listener(&db);
    assert_socket_private(&db);
    let password = password_of(&db);
    assert_eq!(password.len(), 64, "{password}");
    assert_eq!(
        db.url(),
        format!(
            "mysql://root:{password}@localhost/mysql?socket={}/mysqld.sock",
            db.socket_dir().display()
        )
    );
    assert_scan_target_hides_the_password(&db);
    let dir_of_instance = instance_dir(&db);

    // A dump names its own database: loaded with no database selected.
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "dump.sql",
        "CREATE DATABASE bank;\nUSE bank;\n\
         CREATE TABLE accounts (id int PRIMARY KEY, owner varchar(20));\n\
         INSERT INTO accounts VALUES (1, 'ann'), (2, 'bob'), (3, 'zoë');\n",
    );
    db.load_sql_file(&file, None).await.unwrap();
    let mut conn = MySqlConnection::connect(&db.url_for("bank")).await.unwrap();
    let owners: Vec<String> = sqlx::query_scalar("SELECT owner FROM accounts ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(owners, ["ann", "bob", "zoë"]);
    let (skip_networking, log_bin): (i64, i64) =
        sqlx::query_as("SELECT @@skip_networking, @@log_bin")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((skip_networking, log_bin), (1, 0));

    db.execute_sql_in(Some("bank"), "INSERT INTO accounts VALUES (4, 'dan');")
        .await
        .unwrap();
    let bad = write_file(
        dir.path(),
        "bad.sql",
        "SELEC broken;\nCREATE TABLE bank.after_error (id int);\n",
    );
    let err = db.load_sql_file(&bad, None).await.unwrap_err();
    assert!(
        matches!(&err, DockerRuntimeError::LoadSql { stderr, .. } if stderr.contains("ERROR 1064")),
        "{err:?}"
    );

    // The image's client reaches the server through the environment exec sets.
    let out = db
        .exec(&[
            "sh",
            "-c",
            "c=mysql; command -v mariadb >/dev/null && c=mariadb; \
             $c -uroot -N -e 'SELECT count(*) FROM bank.accounts'",
        ])
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "4");
    assert_unprivileged(&db, "mysql").await;

    db.stop().await.unwrap();
    assert_gone(&id);
    assert!(!dir_of_instance.exists(), "{}", dir_of_instance.display());
    drop(conn);
}

#[tokio::test]
async fn a_wrong_password_is_rejected_by_both_engines() {
    let pg_options = options("pw-pg", Engine::Postgres, Some("right-pw"));
    let my_options = options("pw-my", Engine::MariaDb, Some("right-pw"));
    // Two containers at once, each with its own socket directory.
    let (pg, my) = tokio::join!(
        start(Engine::Postgres, &pg_options),
        start(Engine::MariaDb, &my_options)
    );
    assert_ne!(pg.socket_dir(), my.socket_dir());

    PgConnection::connect(&pg.url()).await.unwrap();
    let wrong = pg.url().replace("right-pw", "wrong-pw");
    let err = PgConnection::connect(&wrong).await.unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("28P01"),
        "{err}"
    );
    // The socket asks for the password too: no trust for local connections.
    let nopw = pg.url().replace(":right-pw", "");
    let err = PgConnection::connect(&nopw).await.unwrap_err();
    assert!(
        err.as_database_error().and_then(|e| e.code()).as_deref() == Some("28P01")
            || err.to_string().contains("password"),
        "{err}"
    );
    // The image's own client inside the container, without the password exec sets.
    let out = pg
        .exec(&["sh", "-c", "unset PGPASSWORD; psql -w -X -c 'SELECT 1'"])
        .await
        .unwrap();
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("password"), "{out:?}");

    MySqlConnection::connect(&my.url()).await.unwrap();
    let wrong = my.url().replace("right-pw", "wrong-pw");
    let err = MySqlConnection::connect(&wrong).await.unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("28000"),
        "{err}"
    );
    let nopw = my.url().replace(":right-pw", "");
    let err = MySqlConnection::connect(&nopw).await.unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("28000"),
        "{err}"
    );
    let out = my
        .exec(&[
            "sh",
            "-c",
            "unset MYSQL_PWD; c=mysql; command -v mariadb >/dev/null && c=mariadb; \
             $c -uroot -N -e 'SELECT 1'",
        ])
        .await
        .unwrap();
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("Access denied"), "{out:?}");
    // Not on a command line either, while the servers run.
    for (instance, password) in [(&pg, "right-pw"), (&my, "right-pw")] {
        let top = std::process::Command::new("docker")
            .args(["top", instance.container_id(), "-eo", "pid,args"])
            .output()
            .unwrap();
        assert!(top.status.success(), "{top:?}");
        let listing = String::from_utf8_lossy(&top.stdout);
        assert!(listing.lines().count() > 1, "{listing}");
        assert!(!listing.contains(password), "{listing}");
    }
    let (pg_id, my_id) = (pg.container_id().to_owned(), my.container_id().to_owned());
    let (a, b) = tokio::join!(pg.stop(), my.stop());
    a.unwrap();
    b.unwrap();
    assert_gone(&pg_id);
    assert_gone(&my_id);
}

#[tokio::test]
async fn a_dropped_instance_is_removed() {
    let options = options("drop", Engine::Postgres, None);
    let pg = start(Engine::Postgres, &options).await;
    let id = pg.container_id().to_owned();
    assert!(inspect(&id).is_some());
    let dir = instance_dir(&pg);
    let dropping = Instant::now();
    drop(pg);
    eprintln!(
        "dropped postgres container removed in {:?}",
        dropping.elapsed()
    );
    assert_gone(&id);
    assert!(!dir.exists(), "{}", dir.display());
}

#[tokio::test]
async fn sweep_removes_a_leftover_labelled_container() {
    let options = options("sweep", Engine::MariaDb, None);
    let db = start(Engine::MariaDb, &options).await;
    let id = db.container_id().to_owned();
    let dir = instance_dir(&db);
    // A run killed before its teardown: neither stop nor Drop runs.
    std::mem::forget(db);
    assert_eq!(inspect(&id).unwrap()["State"]["Running"], true);

    let listed = labelled_containers(Some(&options.run_id)).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].engine.as_deref(), Some("mariadb"));
    assert_eq!(listed[0].socket_dir.as_deref(), Some(dir.as_path()));

    // Another run's sweep leaves it alone.
    let other = sweep_containers(Some("t-some-other-run")).await.unwrap();
    assert!(!other.contains(&id));
    assert!(inspect(&id).is_some());
    assert!(dir.exists());

    let swept = sweep_containers(Some(&options.run_id)).await.unwrap();
    assert_eq!(swept, [id.as_str()]);
    assert_gone(&id);
    assert!(!dir.exists(), "the sweep left {}", dir.display());
    assert!(
        sweep_containers(Some(&options.run_id))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_container_that_exits_during_startup_fails_at_once_with_its_log() {
    require_engine().await;
    // The MariaDB image given PostgreSQL's command line: its entrypoint runs `postgres`,
    // which it does not have, and the container exits at once.
    let mut options = options("exits", Engine::Postgres, None);
    options.image = Some(image(Engine::MariaDb));
    let started = Instant::now();
    let err = DockerInstance::start(Engine::Postgres, &options)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, DockerRuntimeError::Exited { log_tail, .. } if log_tail.contains("postgres")),
        "{}",
        error_chain(&err)
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert!(
        labelled_containers(Some(&options.run_id))
            .await
            .unwrap()
            .is_empty(),
        "the failed container was not removed"
    );
}

#[tokio::test]
async fn a_missing_image_is_reported_with_the_way_to_build_it() {
    require_engine().await;
    let mut options = options("noimage", Engine::Postgres, None);
    options.image = Some("scalardb-verify-test/does-not-exist:0".to_owned());
    let err = DockerInstance::start(Engine::Postgres, &options)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DockerRuntimeError::PullImage { .. }),
        "{}",
        error_chain(&err)
    );
    assert!(
        err.to_string().contains("scripts/build-test-images"),
        "{err}"
    );
}

fn cassandra_options(test: &str) -> DockerOptions {
    let mut options = DockerOptions::new(format!("t-{test}-{}", std::process::id()));
    options.image = Some(
        std::env::var("SCALARDB_VERIFY_TEST_CASSANDRA_IMAGE")
            .unwrap_or_else(|_| CASSANDRA_IMAGE.to_owned()),
    );
    // Generous: two JVMs may start at once on a small shared machine.
    options.startup_timeout = Duration::from_secs(300);
    // The tool's binary carries the node's CQL port out of its network (this test binary
    // is not the tool).
    options.bridge = Some(env!("CARGO_BIN_EXE_scalardb-verify").into());
    options
}

async fn start_cassandra(options: &DockerOptions) -> DockerCassandra {
    require_engine().await;
    let node = DockerCassandra::start(options)
        .await
        .unwrap_or_else(|e| panic!("failed to {}\n({SETUP_HINT})", error_chain(&e)));
    eprintln!(
        "cassandra ({}) on {} ready in {:.1?}",
        node.image(),
        node.contact_point(),
        node.started_in()
    );
    node
}

fn assert_cassandra_labelled(node: &DockerCassandra, options: &DockerOptions) {
    let container = inspect(node.container_id()).expect("the container exists");
    let labels = &container["Config"]["Labels"];
    assert_eq!(labels["scalardb-verify.tool"], "scalardb-verify");
    assert_eq!(labels["scalardb-verify.run-id"], options.run_id.as_str());
    assert_eq!(labels["scalardb-verify.engine"], "cassandra");
    assert_eq!(labels["scalardb-verify.port"], "9042");
    assert_eq!(
        labels["scalardb-verify.address"],
        node.address().to_string().as_str()
    );
    assert_eq!(container["State"]["Running"], true);
    assert_cassandra_confined(node, &container);
}

/// What a Cassandra container may do: the SQL containers' confinement (no network but its
/// own loopback, one private host directory for its socket), plus the tool's binary read
/// only as its first process; and no password on its command line or in its environment.
fn assert_cassandra_confined(node: &DockerCassandra, container: &serde_json::Value) {
    assert_hardened(container, "none", 2048);
    let mut mounts: Vec<(String, bool)> = container["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Type"] == "bind")
        .map(|m| (m["Source"].as_str().unwrap().to_owned(), m["RW"] == true))
        .collect();
    mounts.sort();
    let mut expected = vec![
        (
            node.cql_socket().parent().unwrap().display().to_string(),
            true,
        ),
        (env!("CARGO_BIN_EXE_scalardb-verify").to_owned(), false),
    ];
    expected.sort();
    assert_eq!(
        mounts, expected,
        "only the socket directory, and the bridge read only"
    );
    assert_eq!(
        container["Config"]["Entrypoint"][1], "bridge",
        "the bridge is the container's first process"
    );
    let password = &node.credentials().password;
    assert_eq!(password.len(), 32);
    for shown in [
        &container["Config"]["Cmd"],
        &container["Config"]["Env"],
        &container["Args"],
        &container["Path"],
    ] {
        assert!(!shown.to_string().contains(password.as_str()), "{shown}");
    }
}

async fn cql_writer(node: &DockerCassandra) -> CassandraWriter {
    node.writer()
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {}", node.contact_point(), error_chain(&e)))
}

async fn count_rows(node: &DockerCassandra, keyspace: &str, table: &str) -> u64 {
    let store = CassandraStore::connect(
        &[node.contact_point()],
        Some(node.credentials()),
        ReadConsistency::One,
    )
    .await
    .unwrap_or_else(|e| panic!("connect to {}: {}", node.contact_point(), error_chain(&e)));
    store
        .count_single_stream(&TableRef::new(keyspace, table), &["id"])
        .await
        .unwrap_or_else(|e| panic!("count {keyspace}.{table}: {}", error_chain(&e)))
}

const BANK_SCHEMA: &str = "CREATE KEYSPACE bank WITH replication = \
                           {'class': 'SimpleStrategy', 'replication_factor': 1};\n\
                           CREATE TABLE bank.accounts (id int PRIMARY KEY, owner text, \
                           balance bigint);\n";

/// Copies a directory out of a container (as hex on stdout, so the image needs nothing but
/// `tar` and `od`) into a fresh host directory.
async fn copy_out(node: &DockerCassandra, pattern: &str, into: &Path) {
    let out = node
        .exec(&[
            "sh",
            "-c",
            &format!("cd {pattern} && tar -cf - . | od -An -tx1 -v"),
        ])
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
    tar::Archive::new(&from_od_hex(&out.stdout)[..])
        .unpack(into)
        .unwrap();
}

#[tokio::test]
async fn cassandra_snapshot_of_one_node_imports_into_another() {
    let options = cassandra_options("cass");
    // Two nodes side by side, each in a network of its own, reached through host ports of
    // their own.
    let (source, target) = tokio::join!(start_cassandra(&options), start_cassandra(&options));
    assert_ne!(source.address(), target.address());
    assert_ne!(source.contact_point(), target.contact_point());
    assert_ne!(source.cql_socket(), target.cql_socket());
    assert_eq!(
        source.url(),
        format!(
            "cassandra://scalardb_verify:{}@{}",
            source.credentials().password,
            source.contact_point()
        )
    );
    assert_ne!(source.credentials().password, target.credentials().password);
    for node in [&source, &target] {
        assert_cassandra_labelled(node, &options);
        let version = node.release_version().expect("the probe read system.local");
        assert!(version.starts_with("5.0"), "{version}");
    }
    let listed = labelled_containers(Some(&options.run_id)).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|c| c.engine.as_deref() == Some("cassandra"))
    );

    // Rows written through CQL, flushed and snapshotted on the source node.
    let writer = cql_writer(&source).await;
    writer.execute_script(BANK_SCHEMA).await.unwrap();
    let rows = (0..1000).map(|id| {
        vec![
            CqlParam::Int(id),
            CqlParam::Text(format!("owner {id}")),
            CqlParam::BigInt(i64::from(id) * 7),
        ]
    });
    let inserted = writer
        .insert(
            "INSERT INTO bank.accounts (id, owner, balance) VALUES (?, ?, ?)",
            rows,
            16,
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1000);
    let snapshot = source
        .nodetool(&["snapshot", "-t", "t1", "bank"])
        .await
        .unwrap();
    assert!(snapshot.success(), "{snapshot:?}");
    let dir = tempfile::tempdir().unwrap();
    copy_out(
        &source,
        "/var/lib/cassandra/data/bank/accounts-*/snapshots/t1",
        dir.path(),
    )
    .await;
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("-Data.db")), "{names:?}");
    assert!(names.contains(&"manifest.json".to_owned()), "{names:?}");

    // Imported into the target node, whose table is empty until then.
    let target_writer = cql_writer(&target).await;
    target_writer.execute_script(BANK_SCHEMA).await.unwrap();
    assert_eq!(count_rows(&target, "bank", "accounts").await, 0);
    let importing = Instant::now();
    target
        .import_sstables("bank", "accounts", dir.path())
        .await
        .unwrap_or_else(|e| panic!("failed to {}", error_chain(&e)));
    eprintln!("nodetool import took {:?}", importing.elapsed());
    assert_eq!(count_rows(&target, "bank", "accounts").await, 1000);
    let holding = target
        .nodetool(&["getsstables", "bank", "accounts", "999"])
        .await
        .unwrap();
    assert!(holding.stdout.contains("-Data.db"), "{holding:?}");
    // The upload is gone: the import moved the files, and the rest was removed.
    let leftovers = target
        .exec(&[
            "sh",
            "-c",
            "ls -d /var/lib/cassandra/scalardb-verify-import-* 2>/dev/null",
        ])
        .await
        .unwrap();
    assert_eq!(leftovers.stdout, "", "{leftovers:?}");

    // A table that had no data: only the snapshot's manifest, nothing to import.
    let empty = tempfile::tempdir().unwrap();
    write_file(empty.path(), "manifest.json", "{\"files\":[]}");
    target
        .import_sstables("bank", "accounts", empty.path())
        .await
        .unwrap();
    // A table the node does not have: nodetool's own complaint comes back.
    let err = target
        .import_sstables("bank", "missing", dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DockerRuntimeError::ImportSstables { output, .. } if output.contains("missing")),
        "{}",
        error_chain(&err)
    );
    let err = target
        .import_sstables("bank", "accounts", &dir.path().join("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DockerRuntimeError::ListSstables { .. }),
        "{err:?}"
    );
    assert!(
        target
            .log_tail(200)
            .await
            .unwrap()
            .contains("Starting listening for CQL clients")
    );

    // Explicit stop for one, the Drop fallback for the other.
    let (source_id, target_id) = (
        source.container_id().to_owned(),
        target.container_id().to_owned(),
    );
    drop((writer, target_writer));
    let stopping = Instant::now();
    source.stop().await.unwrap();
    eprintln!("cassandra container removed in {:?}", stopping.elapsed());
    assert_gone(&source_id);
    drop(target);
    assert_gone(&target_id);
    assert!(
        labelled_containers(Some(&options.run_id))
            .await
            .unwrap()
            .is_empty()
    );
}

/// The well-known default role, which a fresh node has until the lock-down drops it.
fn default_role() -> CassandraCredentials {
    CassandraCredentials {
        username: "cassandra".to_owned(),
        password: "cassandra".to_owned(),
    }
}

/// Output of a command that must have failed, for an assertion on its reason.
fn failed_output(out: &scalardb_verify::runtime::ExecOutput) -> String {
    assert!(!out.success(), "it succeeded: {out:?}");
    format!("{}{}", out.stdout, out.stderr)
}

#[tokio::test]
async fn a_cassandra_container_answers_only_its_own_role_and_jmx_user() {
    let options = cassandra_options("cass-lock");
    let node = start_cassandra(&options).await;
    let window = node
        .default_role_window()
        .expect("the probe saw the node listen");
    eprintln!("the default role worked for {window:.1?}");
    assert_cassandra_labelled(&node, &options);
    let contact = [node.contact_point()];
    // The node took the settings the container was given: authentication on, and no
    // credentials cache to keep the dropped default role's password working.
    let log = node.log_tail(2000).await.unwrap();
    for setting in [
        "authenticator=PasswordAuthenticator",
        "authorizer=CassandraAuthorizer",
        "credentials_validity=0ms",
    ] {
        assert!(
            log.contains(setting),
            "the node's configuration lacks {setting}"
        );
    }

    // CQL: not the default role, not without a password, not with a wrong one.
    let refused = |e: scalardb_verify::store::CassandraError| error_chain(&e);
    let chain = refused(
        CassandraWriter::connect_as(&contact, Some(&default_role()))
            .await
            .map(drop)
            .expect_err("cassandra/cassandra got in"),
    );
    assert!(chain.contains("Provided username cassandra"), "{chain}");
    let chain = refused(
        CassandraWriter::connect(&contact)
            .await
            .map(drop)
            .expect_err("a client without credentials got in"),
    );
    assert!(chain.to_lowercase().contains("authent"), "{chain}");
    let wrong = CassandraCredentials {
        username: "scalardb_verify".to_owned(),
        password: "0".repeat(32),
    };
    let chain = refused(
        CassandraWriter::connect_as(&contact, Some(&wrong))
            .await
            .map(drop)
            .expect_err("a wrong password got in"),
    );
    assert!(
        chain.contains("Provided username scalardb_verify"),
        "{chain}"
    );

    // Its own role gets in, through the URL the scan takes too, and is the only role.
    let url = url::Url::parse(&node.url()).unwrap();
    assert_eq!(url.username(), "scalardb_verify");
    assert_eq!(url.password(), Some(node.credentials().password.as_str()));
    let target = scalardb_verify::config::Target::from_url(&node.url())
        .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert!(
        !target.display().contains(&node.credentials().password),
        "{}",
        target.display()
    );
    let writer = cql_writer(&node).await;
    let roles = writer
        .texts("SELECT role FROM system_auth.roles")
        .await
        .unwrap();
    assert_eq!(roles, [Some("scalardb_verify".to_owned())]);
    let version = node.release_version().expect("read as the node's own role");
    assert!(version.starts_with("5.0"), "{version}");
    node.check_locked(&[])
        .await
        .unwrap_or_else(|e| panic!("{}", error_chain(&e)));

    // What an intruder in the default role's window could leave fails the check the drill
    // makes after the load: a keyspace the backup does not have, a role.
    writer
        .execute(
            "CREATE KEYSPACE intruder WITH replication = \
             {'class': 'SimpleStrategy', 'replication_factor': 1}",
        )
        .await
        .unwrap();
    let error = node.check_locked(&["bank"]).await.unwrap_err();
    let chain = error_chain(&error);
    assert!(
        matches!(error, DockerRuntimeError::CassandraLock { .. }) && chain.contains("intruder"),
        "{chain}"
    );
    node.check_locked(&["intruder"]).await.unwrap();
    writer
        .execute("CREATE ROLE eve WITH LOGIN = true AND PASSWORD = 'eve'")
        .await
        .unwrap();
    let chain = error_chain(&node.check_locked(&["intruder"]).await.unwrap_err());
    assert!(chain.contains("eve"), "{chain}");

    // JMX: the node's own user with its password file, and nobody else.
    let status = node.nodetool(&["statusbinary"]).await.unwrap();
    assert_eq!(status.stdout.trim(), "running", "{status:?}");
    let port = node.jmx_port().to_string();
    let anonymous = node
        .exec(&["nodetool", "-p", &port, "statusbinary"])
        .await
        .unwrap();
    let output = failed_output(&anonymous);
    assert!(output.contains("Credentials required"), "{output}");
    let guessed = node
        .exec(&[
            "sh",
            "-c",
            &format!(
                "printf 'scalardb_verify {}\\n' >/tmp/guess && chmod 600 /tmp/guess && \
                 nodetool -p {port} -u scalardb_verify -pwf /tmp/guess statusbinary",
                "0".repeat(32)
            ),
        ])
        .await
        .unwrap();
    let output = failed_output(&guessed);
    assert!(output.contains("Invalid username or password"), "{output}");

    // The secrets are the server account's alone, and on no command line in the container.
    let secrets = node
        .exec(&[
            "stat",
            "-c",
            "%a %u %n",
            "/scalardb-verify-secret",
            "/scalardb-verify-secret/jmx.password",
            "/scalardb-verify-secret/jmx.access",
            "/scalardb-verify-secret/cql.password",
        ])
        .await
        .unwrap();
    assert_eq!(
        secrets.stdout.lines().collect::<Vec<_>>(),
        [
            "700 999 /scalardb-verify-secret",
            "600 999 /scalardb-verify-secret/jmx.password",
            "600 999 /scalardb-verify-secret/jmx.access",
            "600 999 /scalardb-verify-secret/cql.password",
        ],
        "{secrets:?}"
    );
    let jmx = node
        .exec(&["cat", "/scalardb-verify-secret/jmx.password"])
        .await
        .unwrap();
    let jmx_password = jmx
        .stdout
        .strip_prefix("scalardb_verify ")
        .map(str::trim)
        .unwrap_or_else(|| panic!("{jmx:?}"))
        .to_owned();
    assert_eq!(jmx_password.len(), 32);
    assert_ne!(jmx_password, node.credentials().password);
    let stored = node.exec(&["cat", &node.password_file()]).await.unwrap();
    assert_eq!(stored.stdout.trim(), node.credentials().password);
    let cmdlines = node
        .exec(&["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
        .await
        .unwrap();
    assert!(cmdlines.stdout.contains("CassandraDaemon"), "{cmdlines:?}");
    for secret in [&jmx_password, &node.credentials().password] {
        assert!(!cmdlines.stdout.contains(secret.as_str()), "{cmdlines:?}");
    }

    // Commands run as the server's account, which runs without a capability.
    let out = node.exec(&["sh", "-c", UNPRIVILEGED_PROBE]).await.unwrap();
    assert_unprivileged_output(&out, "cassandra");

    drop(writer);
    let id = node.container_id().to_owned();
    node.stop().await.unwrap();
    assert_gone(&id);
}

#[tokio::test]
async fn sweep_removes_a_leftover_cassandra_container() {
    let options = cassandra_options("cass-sweep");
    let node = start_cassandra(&options).await;
    let id = node.container_id().to_owned();
    let status = node.nodetool(&["statusbinary"]).await.unwrap();
    assert_eq!(status.stdout.trim(), "running", "{status:?}");
    // A run killed before its teardown: neither stop nor Drop runs.
    std::mem::forget(node);
    let listed = labelled_containers(Some(&options.run_id)).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].engine.as_deref(), Some("cassandra"));
    let swept = sweep_containers(Some(&options.run_id)).await.unwrap();
    assert_eq!(swept, [id.as_str()]);
    assert_gone(&id);
}

#[tokio::test]
async fn a_cassandra_container_that_exits_during_startup_fails_at_once() {
    require_engine().await;
    // The PostgreSQL image has no `cassandra` to run: its entrypoint exits at once.
    let mut options = cassandra_options("cass-exits");
    options.image = Some(image(Engine::Postgres));
    let started = Instant::now();
    let err = DockerCassandra::start(&options).await.unwrap_err();
    assert!(
        matches!(&err, DockerRuntimeError::CassandraExited { log_tail, .. } if log_tail.contains("cassandra")),
        "{}",
        error_chain(&err)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        labelled_containers(Some(&options.run_id))
            .await
            .unwrap()
            .is_empty(),
        "the failed container was not removed"
    );
}

#[tokio::test]
async fn sweep_never_removes_a_directory_a_forged_label_names() {
    require_engine().await;
    let run_id = format!("t-forged-{}", std::process::id());
    // A directory of this user's that is not a socket directory, and one in the private
    // parent with another name: a label naming either must not get it removed.
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("canary"), "untouched").unwrap();
    let created = std::process::Command::new("docker")
        .args(["create", "--network", "none"])
        .args(["--label", "scalardb-verify.tool=scalardb-verify"])
        .args(["--label", &format!("scalardb-verify.run-id={run_id}")])
        .args([
            "--label",
            &format!("scalardb-verify.socket-dir={}", victim.path().display()),
        ])
        .arg(image(Engine::Postgres))
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let id = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let swept = sweep_containers(Some(&run_id)).await.unwrap();
    assert_eq!(swept, [id.as_str()]);
    assert_gone(&id);
    assert_eq!(
        std::fs::read_to_string(victim.path().join("canary")).unwrap(),
        "untouched"
    );
}
