//! The local runtime against real PostgreSQL and MariaDB servers: start, load, query, stop,
//! and that nothing is left behind by `stop`, by `Drop`, or by a run that was killed.
//!
//! No test skips when a server binary is missing: it fails, saying to run
//! `scripts/install-test-deps`.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scalardb_verify::runtime::{
    Engine, Listen, LocalInstance, LocalOptions, LocalRuntimeError, SweepScope, sweep, sweep_in,
    sweep_leftovers,
};
use sqlx::Connection as _;
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;

/// Tells the helper test it was started by `sweep_removes_the_instances_of_a_killed_run`,
/// and with which run id.
const HELPER_RUN_ID_ENV: &str = "SCALARDB_VERIFY_TEST_SWEEP_HELPER_RUN_ID";
/// Where the helper creates its instance.
const HELPER_PARENT_DIR_ENV: &str = "SCALARDB_VERIFY_TEST_SWEEP_HELPER_PARENT_DIR";

fn options(test: &str) -> LocalOptions {
    let mut options = LocalOptions::new(format!("t-{test}-{}", std::process::id()));
    options.startup_timeout = Duration::from_secs(60);
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

async fn start(engine: Engine, options: &LocalOptions) -> LocalInstance {
    let started = Instant::now();
    let instance = LocalInstance::start(engine, options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "failed to {}\n(if a server or client is missing, run scripts/install-test-deps)",
                error_chain(&e)
            )
        });
    eprintln!("{engine} ready in {:?}", started.elapsed());
    instance
}

/// Whether `pid` is a live process; a zombie is not.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .next();
        state != Some("Z")
    })
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The server processes of a sandbox (everything but bubblewrap itself).
fn server_processes(sandbox: u32) -> Vec<u32> {
    scalardb_verify::runtime::local::process::descendants(sandbox)
        .into_iter()
        .filter(|&p| comm(p) != "bwrap")
        .collect()
}

/// The namespace `pid` is in, or `None` if the process has exited meanwhile (a server's
/// short-lived children come and go).
fn namespace(pid: u32, kind: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()
}

/// The server runs in namespaces of its own: its own mounts, processes and System V IPC
/// (so a killed server's shared memory dies with its namespace), and, when `network`,
/// its own network.
fn assert_confined(sandbox: u32, network: bool) {
    let servers = server_processes(sandbox);
    assert!(!servers.is_empty(), "no server below the sandbox {sandbox}");
    let me = std::process::id();
    let mut kinds = vec!["mnt", "pid", "ipc", "uts"];
    if network {
        kinds.push("net");
    }
    let mut checked = 0;
    for server in servers {
        for kind in &kinds {
            let (Some(theirs), Some(ours)) = (namespace(server, kind), namespace(me, kind)) else {
                continue;
            };
            assert_ne!(theirs, ours, "{} shares our {kind} namespace", comm(server));
            checked += 1;
        }
    }
    assert!(
        checked >= kinds.len(),
        "no server process stayed up to be checked"
    );
}

/// The real uid of `pid`, or `None` if it has exited meanwhile.
fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn our_uid() -> u32 {
    process_uid(std::process::id()).expect("our own /proc entry")
}

fn write_sql(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, sql).unwrap();
    path
}

fn assert_gone(dir: &Path, pid: u32) {
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(!is_running(pid), "server pid {pid} still runs");
}

fn assert_labelled(instance: &LocalInstance, options: &LocalOptions, engine: &str) {
    let path = instance.dir().join("scalardb-verify-instance.json");
    use std::os::unix::fs::MetadataExt as _;
    // The label is the tool's own, outside the box the server may write.
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), our_uid());
    assert!(!path.starts_with(instance.box_dir()));
    let label = std::fs::read(&path).unwrap();
    let label: serde_json::Value = serde_json::from_slice(&label).unwrap();
    assert_eq!(label["tool"], "scalardb-verify");
    assert_eq!(label["run_id"], options.run_id.as_str());
    assert_eq!(label["engine"], engine);
    assert_eq!(label["port"], instance.port());
    assert_eq!(label["server"]["pid"], instance.pid().unwrap());
    assert!(label["created_at"].is_string());
}

fn assert_unprivileged(instance: &LocalInstance) {
    // As root, the server must run as a fresh account no user of the host has; otherwise
    // as ourselves.
    let servers = server_processes(instance.pid().unwrap());
    assert!(!servers.is_empty());
    let mut checked = 0;
    for server in servers {
        // A server's short-lived children may be gone already.
        let Some(uid) = process_uid(server) else {
            continue;
        };
        checked += 1;
        if our_uid() == 0 {
            assert_ne!(uid, 0, "{} runs as root", comm(server));
            assert_eq!(uid, instance.sandbox_uid());
            assert!(
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .unwrap()
                    .is_none(),
                "uid {uid} belongs to a user of the host"
            );
        } else {
            assert_eq!(uid, our_uid());
        }
    }
    assert!(checked > 0, "no server process stayed up to be checked");
}

#[tokio::test]
async fn postgres_starts_loads_sql_answers_queries_and_stops_without_a_trace() {
    let options = options("pg");
    let pg = start(Engine::Postgres, &options).await;
    let (dir, pid) = (pg.dir().to_path_buf(), pg.pid().unwrap());
    assert!(pg.data_dir().starts_with(&dir));
    assert!(
        dir.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&format!("i-{}-postgres-", options.run_id))
    );
    assert_labelled(&pg, &options, "postgres");
    assert_unprivileged(&pg);
    assert_confined(pid, false);
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );

    pg.execute_sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t VALUES (1, 'a'), (2, 'b');",
    )
    .await
    .unwrap();
    let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 2);
    let listen: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(listen, "127.0.0.1");

    let sql_dir = tempfile::tempdir().unwrap();
    pg.execute_sql("CREATE DATABASE loaded").await.unwrap();
    let file = write_sql(
        sql_dir.path(),
        "load.sql",
        "CREATE TABLE u (id int PRIMARY KEY, v text);\nINSERT INTO u VALUES (1, 'x'), (2, 'y'), (3, 'z');\n",
    );
    pg.load_sql_file(&file, Some("loaded")).await.unwrap();
    let mut loaded = PgConnection::connect(&pg.url_for("loaded")).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM u")
        .fetch_one(&mut loaded)
        .await
        .unwrap();
    assert_eq!(count, 3);

    // ON_ERROR_STOP: the statement after the error must not run.
    let bad = write_sql(
        sql_dir.path(),
        "bad.sql",
        "SELEC broken;\nCREATE TABLE after_error (id int);\n",
    );
    let err = pg.load_sql_file(&bad, Some("loaded")).await.unwrap_err();
    assert!(
        matches!(&err, LocalRuntimeError::LoadSql { stderr, .. } if stderr.contains("syntax error")),
        "{err:?}"
    );
    assert!(err.to_string().contains("bad.sql"), "{err}");
    let after: Option<String> = sqlx::query_scalar("SELECT to_regclass('after_error')::text")
        .fetch_one(&mut loaded)
        .await
        .unwrap();
    assert_eq!(after, None);

    // Open connections must not hold up the shutdown.
    let stopping = Instant::now();
    pg.stop().await.unwrap();
    eprintln!("postgres stopped in {:?}", stopping.elapsed());
    assert_gone(&dir, pid);
    drop((conn, loaded));
}

#[tokio::test]
async fn mariadb_starts_loads_sql_answers_queries_and_stops_without_a_trace() {
    let options = options("maria");
    let db = start(Engine::MariaDb, &options).await;
    let (dir, pid) = (db.dir().to_path_buf(), db.pid().unwrap());
    assert_labelled(&db, &options, "mariadb");
    assert_unprivileged(&db);
    assert_confined(pid, false);
    assert_eq!(
        db.url(),
        format!("mysql://root@127.0.0.1:{}/mysql", db.port())
    );

    db.execute_sql(
        "CREATE DATABASE app;\nCREATE TABLE app.t (id int PRIMARY KEY, v text);\nINSERT INTO app.t VALUES (1, 'a'), (2, 'b');",
    )
    .await
    .unwrap();
    let mut conn = MySqlConnection::connect(&db.url_for("app")).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 2);
    let bind: String = sqlx::query_scalar("SELECT @@bind_address")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(bind, "127.0.0.1");

    let sql_dir = tempfile::tempdir().unwrap();
    let file = write_sql(
        sql_dir.path(),
        "load.sql",
        "CREATE TABLE u (id int PRIMARY KEY, v varchar(10));\nINSERT INTO u VALUES (1, 'x'), (2, 'y'), (3, 'ü');\n",
    );
    db.load_sql_file(&file, Some("app")).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT v FROM u ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, ["x", "y", "ü"]);

    let bad = write_sql(
        sql_dir.path(),
        "bad.sql",
        "SELEC broken;\nCREATE TABLE after_error (id int);\n",
    );
    let err = db.load_sql_file(&bad, Some("app")).await.unwrap_err();
    assert!(
        matches!(&err, LocalRuntimeError::LoadSql { stderr, .. } if stderr.contains("ERROR 1064")),
        "{err:?}"
    );
    let after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'app' AND table_name = 'after_error'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(after, 0);

    let stopping = Instant::now();
    db.stop().await.unwrap();
    eprintln!("mariadb stopped in {:?}", stopping.elapsed());
    assert_gone(&dir, pid);
    drop(conn);
}

/// A password with characters that need escaping in a URL and in SQL.
const PASSWORD: &str = r"s3cr'et\ p@ss";

fn with_password(url: &str, password: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_password(Some(password)).unwrap();
    url.into()
}

#[tokio::test]
async fn postgres_with_a_password_rejects_a_wrong_one() {
    let mut options = options("pg-pw");
    options.superuser_password = Some(PASSWORD.to_owned());
    let pg = start(Engine::Postgres, &options).await;

    pg.execute_sql("CREATE TABLE t (id int)").await.unwrap();
    PgConnection::connect(&pg.url())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let err = PgConnection::connect(&with_password(&pg.url(), "wrong"))
        .await
        .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code().map(|c| c.into_owned()));
    // 28P01: invalid_password.
    assert_eq!(code.as_deref(), Some("28P01"), "{err}");
    let err = PgConnection::connect(&with_password(&pg.url(), ""))
        .await
        .unwrap_err();
    assert!(
        err.as_database_error().is_some() || matches!(err, sqlx::Error::Protocol(_)),
        "{err}"
    );

    pg.stop().await.unwrap();
}

#[tokio::test]
async fn mariadb_with_a_password_rejects_a_wrong_one() {
    let mut options = options("maria-pw");
    options.superuser_password = Some(PASSWORD.to_owned());
    let db = start(Engine::MariaDb, &options).await;

    db.execute_sql("CREATE DATABASE app").await.unwrap();
    MySqlConnection::connect(&db.url())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    for wrong in ["wrong", ""] {
        let err = MySqlConnection::connect(&with_password(&db.url(), wrong))
            .await
            .unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code().map(|c| c.into_owned()));
        // SQLSTATE 28000: access denied.
        assert_eq!(code.as_deref(), Some("28000"), "{err}");
    }

    db.stop().await.unwrap();
}

#[tokio::test]
async fn dropping_an_instance_without_stop_leaves_nothing_behind() {
    for engine in [Engine::Postgres, Engine::MariaDb] {
        let instance = start(engine, &options("drop")).await;
        let (dir, pid) = (instance.dir().to_path_buf(), instance.pid().unwrap());
        let servers = server_processes(pid);
        instance.execute_sql("SELECT 1").await.unwrap();
        drop(instance);
        assert_gone(&dir, pid);
        // Every process of the sandbox is gone, and with them its IPC namespace (a killed
        // PostgreSQL's interlock segment lives there, not in ours).
        assert!(servers.iter().all(|&p| !is_running(p)), "{servers:?}");
    }
}

#[tokio::test]
async fn sweeping_a_run_kills_and_removes_its_forgotten_instance() {
    let options = options("sweep-run");
    let instance = start(Engine::MariaDb, &options).await;
    let (dir, pid) = (instance.dir().to_path_buf(), instance.pid().unwrap());
    // As if the process that owned it had lost track of it: no stop, no Drop.
    std::mem::forget(instance);
    assert!(is_running(pid));

    let swept = sweep(&SweepScope::Run(options.run_id.clone())).unwrap();

    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].dir, dir);
    assert_eq!(swept[0].engine, Engine::MariaDb);
    assert_eq!(swept[0].killed_pid, Some(pid));
    assert!(swept[0].to_string().contains(&options.run_id));
    assert_gone(&dir, pid);
}

#[test]
fn sweep_removes_the_instances_of_a_killed_run() {
    let run_id = format!("t-killed-run-{}", std::process::id());
    // A directory of its own, so that no other test's sweep races this one's.
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        parent.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // A second copy of this test binary starts an instance and is then SIGKILLed, the way a
    // CI job or a user's ^\ would end a real run.
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_starts_an_instance_and_waits_to_be_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_RUN_ID_ENV, &run_id)
        .env(HELPER_PARENT_DIR_ENV, parent.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(helper.stdout.take().unwrap());
    let ready = stdout
        .lines()
        .map(Result::unwrap)
        // libtest prints the test's name without a newline before running it, so the
        // marker is not at the start of its line.
        .find_map(|line| line.split_once("READY ").map(|(_, rest)| rest.to_owned()));
    let Some(ready) = ready else {
        let status = helper.wait().unwrap();
        panic!("the helper exited ({status}) before starting its instance; see its stderr above");
    };
    let (pid, dir) = ready.split_once(' ').unwrap();
    let (pid, dir): (u32, PathBuf) = (pid.parse().unwrap(), dir.into());
    assert_eq!(dir.parent(), Some(parent.path()));
    let servers = server_processes(pid);
    assert!(!servers.is_empty());

    // While its owner lives, an instance is not a leftover.
    assert_eq!(sweep_in(parent.path(), &SweepScope::Orphaned).unwrap(), []);
    helper.kill().unwrap();
    helper.wait().unwrap();
    // The sandbox dies with the process that started it (bubblewrap's --die-with-parent):
    // only the directory is left to sweep.
    let deadline = Instant::now() + Duration::from_secs(10);
    while servers.iter().any(|&p| is_running(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        servers.iter().all(|&p| !is_running(p)),
        "the server outlived its owner"
    );
    assert!(dir.exists());

    let swept = sweep_in(parent.path(), &SweepScope::Orphaned).unwrap();

    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].dir, dir);
    assert_eq!(swept[0].run_id, run_id);
    assert_eq!(swept[0].engine, Engine::Postgres);
    assert_gone(&dir, pid);
}

#[tokio::test]
#[ignore = "a helper process for sweep_removes_the_instances_of_a_killed_run"]
async fn helper_starts_an_instance_and_waits_to_be_killed() {
    let (Ok(run_id), Some(parent)) = (
        std::env::var(HELPER_RUN_ID_ENV),
        std::env::var_os(HELPER_PARENT_DIR_ENV),
    ) else {
        return;
    };
    let mut options = LocalOptions::new(run_id);
    options.parent_dir = Some(parent.into());
    let instance = start(Engine::Postgres, &options).await;
    println!(
        "READY {} {}",
        instance.pid().unwrap(),
        instance.dir().display()
    );
    // The parent kills us long before this; the bound only keeps a broken parent from
    // leaving this process behind forever.
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test]
async fn sweep_leftovers_spares_the_instances_of_live_runs() {
    let options = options("sweep-live");
    let instance = start(Engine::Postgres, &options).await;

    let swept = sweep_leftovers().unwrap();

    assert!(
        swept.iter().all(|s| s.run_id != options.run_id),
        "{swept:?}"
    );
    assert!(instance.dir().exists());
    instance.execute_sql("SELECT 1").await.unwrap();
    instance.stop().await.unwrap();
}

#[tokio::test]
async fn socket_only_instances_have_no_network_and_a_fresh_password() {
    for engine in [Engine::Postgres, Engine::MariaDb] {
        let mut options = options("socket");
        options.listen = Listen::Socket;
        let instance = start(engine, &options).await;
        let pid = instance.pid().unwrap();
        assert_unprivileged(&instance);
        assert_confined(pid, true);
        let password = instance.password().expect("a fresh password").to_owned();
        assert_eq!(password.len(), 32);
        let url = instance.url();
        assert!(!url.contains("127.0.0.1"), "{url}");
        assert!(instance.password_file().is_some_and(|f| f.exists()));
        // The socket directory is the box, which only its account (and root) may enter.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(instance.box_dir())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "box mode {mode:o}");
        instance.execute_sql("SELECT 1").await.unwrap();
        match engine {
            Engine::Postgres => {
                let mut conn = PgConnection::connect(&url).await.unwrap();
                let listen: String = sqlx::query_scalar("SHOW listen_addresses")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(listen, "");
                conn.close().await.unwrap();
                let err = PgConnection::connect(&with_password(&url, "wrong"))
                    .await
                    .unwrap_err();
                assert!(err.as_database_error().is_some(), "{err}");
            }
            Engine::MariaDb => {
                let mut conn = MySqlConnection::connect(&url).await.unwrap();
                let networking: i64 = sqlx::query_scalar("SELECT @@skip_networking")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(networking, 1);
                conn.close().await.unwrap();
                let err = MySqlConnection::connect(&with_password(&url, "wrong"))
                    .await
                    .unwrap_err();
                assert!(err.as_database_error().is_some(), "{err}");
            }
        }
        instance.stop().await.unwrap();
    }
}

/// `scalardb-verify bridge`, as the drill's hint for a kept Cassandra node tells a user to
/// run it: a TCP port on loopback carried to a Unix socket while its program runs, then it
/// exits with the program's code; a forward it cannot read is refused before anything runs.
#[test]
fn the_bridge_command_carries_a_port_to_a_socket_while_its_program_runs() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("echo.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut back = stream.try_clone().unwrap();
            let _ = std::io::copy(&mut &stream, &mut back);
        }
    });
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = env!("CARGO_BIN_EXE_scalardb-verify");
    let mut bridge = std::process::Command::new(bin)
        .arg("bridge")
        .arg("--forward")
        .arg(format!("tcp:127.0.0.1:{port}=unix:{}", socket.display()))
        .args(["--", "sh", "-c", "sleep 3; exit 7"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the bridge never listened on {port}: {e}"),
        }
    };
    stream.write_all(b"ping").unwrap();
    let mut echoed = [0u8; 4];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping");
    assert_eq!(
        bridge.wait().unwrap().code(),
        Some(7),
        "the program's exit code"
    );

    for bad in [
        "tcp:10.0.0.1:9042=unix:/x",
        "fd:1=tcp:127.0.0.1:9042",
        "tcp:127.0.0.1:1=unix:relative",
    ] {
        let out = std::process::Command::new(bin)
            .args(["bridge", "--forward", bad, "--", "touch"])
            .arg(dir.path().join("ran"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} was taken");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(bad), "{bad}: {stderr}");
        assert!(!dir.path().join("ran").exists(), "{bad}: the program ran");
    }
}
