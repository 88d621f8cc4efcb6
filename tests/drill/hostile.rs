//! Hostile backups. Each test builds a backup an attacker could hand us (a real dump with a
//! payload written into it), drills it on the local runtime as CI does (root), and checks
//! three things: the canary the payload aims at is untouched, the verdict does not pass,
//! and nothing is left behind.
//!
//! Canaries live in directories every user may write (mode 1777), so only the sandbox
//! stands between a payload and them: a payload that ran on the host as any account at all
//! would leave its mark.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use scalardb_verify::runtime::local::Engine;

use crate::support::*;

/// A directory anyone may write, for canaries.
fn canary_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn assert_untouched(canaries: &Path) {
    let found: Vec<PathBuf> = std::fs::read_dir(canaries)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.ends_with("secret"))
        .collect();
    assert!(
        found.is_empty(),
        "a payload ran outside the sandbox: {found:?}"
    );
}

/// Runs a drill and checks that it left nothing in the private directory.
fn drill_hostile(backup: &Path, extra: &[&str]) -> Run {
    let child = Command::new(BIN)
        .arg("drill")
        .arg(backup)
        .args(["--format", "json", "--quiet", "--runtime", "local"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scalardb-verify");
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert!(leftovers_of(pid).is_empty(), "{:?}", leftovers_of(pid));
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A plain pg_dump of fixture `state`, with `payload` inserted before its trailer.
async fn pg_dump_with(state: &str, payload: &str, dir: &Path, name: &str) -> PathBuf {
    let server = postgres_with(state).await;
    let honest = dir.join(format!("{name}.honest.sql"));
    pg_dump(&server, &[], &honest);
    server.stop().await.unwrap();
    let hostile = dir.join(format!("{name}.sql"));
    insert_before(
        &honest,
        "-- PostgreSQL database dump complete",
        payload,
        &hostile,
    );
    hostile
}

/// Writes `dump` to `out` with `payload` on lines of its own before `trailer`.
fn insert_before(dump: &Path, trailer: &str, payload: &str, out: &Path) {
    let text = std::fs::read_to_string(dump).unwrap();
    let at = text.rfind(trailer).expect("the dump's trailer");
    let (body, end) = text.split_at(at);
    std::fs::write(out, format!("{body}\n{payload}\n{end}")).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_meta_commands_in_a_plain_dump_run_nothing() {
    let canaries = canary_dir();
    let c = canaries.path().display();
    let dir = tempfile::tempdir().unwrap();
    let payloads = [
        format!("\\! touch {c}/shell"),
        format!("\\o |touch {c}/pipe\nSELECT 1;"),
        format!("\\copy (SELECT 1) TO PROGRAM 'touch {c}/copy'"),
        format!("\\setenv PAGER 'touch {c}/pager'\n\\pset pager always\nSELECT 1;"),
        format!("\\unrestrict guessed\n\\! touch {c}/unrestricted"),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        let dump = pg_dump_with("torn", payload, dir.path(), &format!("meta{i}")).await;
        let run = drill_hostile(&dump, &[]);
        assert_untouched(canaries.path());
        // psql refuses every backslash command in restricted mode, and ON_ERROR_STOP ends
        // the restore there: no verdict at all.
        assert_eq!(run.code, 3, "{payload}: {}", run.stderr);
        assert!(
            run.stderr.contains("restricted"),
            "{payload}: {}",
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_programs_see_neither_the_host_nor_its_servers() {
    // A cluster of the host's, reachable the way the machine's real ones are: trust on
    // loopback. The payload tries to drop its table.
    let victim = start(Engine::Postgres).await;
    victim
        .execute_sql("CREATE TABLE canary (x int); INSERT INTO canary VALUES (1);")
        .await
        .unwrap();
    let canaries = canary_dir();
    let c = canaries.path().display();
    let port = victim.port();
    let dir = tempfile::tempdir().unwrap();
    let payload = format!(
        "COPY (SELECT 1) TO PROGRAM 'touch {c}/program; \
         psql -h 127.0.0.1 -p {port} -U postgres -c \"DROP TABLE canary\" postgres; \
         cat /etc/shadow > {c}/shadow; true';\n\
         DO $$ BEGIN PERFORM pg_catalog.pg_read_file('/etc/shadow'); \
         EXCEPTION WHEN OTHERS THEN NULL; END $$;"
    );
    let dump = pg_dump_with("torn", &payload, dir.path(), "program").await;
    let run = drill_hostile(&dump, &[]);
    assert_untouched(canaries.path());
    // The restore went through, inside the sandbox: the verdict is the torn backup's own.
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.json()["verdict"], "inconsistent");
    let output = Command::new("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-U",
            "postgres",
            "-c",
            "SELECT count(*) FROM canary",
            "postgres",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "1",
        "the victim cluster was changed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    victim.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn owner_to_in_application_data_is_never_a_command_and_honest_dumps_restore() {
    let canaries = canary_dir();
    let c = canaries.path().display();
    let dir = tempfile::tempdir().unwrap();
    // What an application user can type into a row, and what an honest function may say.
    let payload = format!(
        "CREATE TABLE public.notes (note text);\n\
         INSERT INTO public.notes VALUES ('x OWNER TO \"p\" NOLOGIN; END $$; \\! touch {c}/owner; --');\n\
         INSERT INTO public.notes VALUES ('ALTER TABLE t OWNER TO \"q\"; \\! touch {c}/owner2');\n\
         CREATE FUNCTION public.chown_all(r text) RETURNS void LANGUAGE plpgsql AS $f$\n\
         BEGIN\n  EXECUTE 'ALTER TABLE public.notes OWNER TO ' || quote_ident(r);\nEND\n$f$;\n\
         ALTER TABLE public.notes OWNER TO app_owner;"
    );
    let dump = pg_dump_with("clean", &payload, dir.path(), "owner").await;
    let run = drill_hostile(&dump, &[]);
    assert_untouched(canaries.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["verdict"], "consistent");
}

/// A mariadb-dump of fixture `state`, with `payload` inserted before its trailer.
async fn mysql_dump_with(state: &str, payload: &str, dir: &Path, name: &str) -> PathBuf {
    let server = start(Engine::MariaDb).await;
    server
        .load_sql_file(&fixture(state).join("mysql.sql"), None)
        .await
        .unwrap();
    let honest = dir.join(format!("{name}.honest.sql"));
    mariadb_dump(&server, &honest);
    server.stop().await.unwrap();
    let path = dir.join(format!("{name}.sql"));
    insert_before(&honest, "-- Dump completed", payload, &path);
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_client_commands_and_local_infile_are_refused() {
    let canaries = canary_dir();
    let c = canaries.path().display();
    let secret = canaries.path().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let payloads = [
        format!("\\! touch {c}/shell"),
        format!("system touch {c}/system"),
        format!(
            "CREATE TABLE bank.loot (line text);\n\
             LOAD DATA LOCAL INFILE '{}' INTO TABLE bank.loot;\n\
             SELECT line FROM bank.loot INTO OUTFILE '{c}/outfile';",
            secret.display()
        ),
        format!("SELECT 'x' INTO OUTFILE '{c}/outfile';"),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        let dump = mysql_dump_with("torn", payload, dir.path(), &format!("my{i}")).await;
        let run = drill_hostile(&dump, &[]);
        assert_untouched(canaries.path());
        assert_eq!(run.code, 3, "{payload}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_instance_answers_only_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let dump = pg_dump_with("clean", "", dir.path(), "kept").await;
    let run = drill_hostile_keep(&dump);
    let kept = run.json()["drill"]["kept_at"].as_str().unwrap().to_owned();
    let run_id = run.json()["drill"]["run_id"].as_str().unwrap().to_owned();
    assert!(!kept.contains("127.0.0.1"), "no TCP listener: {kept}");
    let socket_dir = kept
        .split("host=")
        .nth(1)
        .and_then(|rest| rest.split([' ', '&']).next())
        .map(|encoded| encoded.replace("%2F", "/"))
        .expect("the kept URL names its socket directory");
    // Another local user cannot even reach the socket.
    let other = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args([
            "psql",
            "-X",
            "-w",
            "-h",
            &socket_dir,
            "-U",
            "postgres",
            "-c",
            "SELECT 1",
        ])
        .arg("restored")
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    // The tool's own user, without the run's password, is refused too.
    let no_password = Command::new("psql")
        .args([
            "-X",
            "-w",
            "-h",
            &socket_dir,
            "-U",
            "postgres",
            "-c",
            "SELECT 1",
        ])
        .arg("restored")
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(!no_password.status.success());
    let output = Command::new(BIN)
        .args(["cleanup", "--run-id", &run_id])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!Path::new(&socket_dir).exists());
}

fn drill_hostile_keep(backup: &Path) -> Run {
    let output = Command::new(BIN)
        .arg("drill")
        .arg(backup)
        .args([
            "--format",
            "json",
            "--quiet",
            "--runtime",
            "local",
            "--keep",
        ])
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_eq!(run.code, 0, "{}", run.stderr);
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_bomb_stops_at_the_restore_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = postgres_with("clean").await;
    let honest = dir.path().join("honest.sql");
    pg_dump(&server, &[], &honest);
    server.stop().await.unwrap();
    let text = std::fs::read_to_string(&honest).unwrap();
    let trailer = text.rfind("-- PostgreSQL database dump complete").unwrap();
    // 64 MiB of SQL that compresses to almost nothing.
    let bomb = dir.path().join("bomb.sql.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&bomb).unwrap(),
        flate2::Compression::best(),
    );
    use std::io::Write as _;
    encoder.write_all(&text.as_bytes()[..trailer]).unwrap();
    let line = format!("--{}\n", "x".repeat(1021));
    for _ in 0..64 * 1024 {
        encoder.write_all(line.as_bytes()).unwrap();
    }
    encoder.write_all(&text.as_bytes()[trailer..]).unwrap();
    encoder.finish().unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 2 * 1024 * 1024);

    let run = drill_hostile(&bomb, &["--max-restore-bytes", "8M"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("--max-restore-bytes"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "no verdict: {}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_archive_naming_files_outside_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = postgres_with("clean").await;
    let archive = dir.path().join("archive");
    pg_dump(&server, &["-Fd"], &archive);
    server.stop().await.unwrap();
    std::fs::write(archive.join("blobs.toc"), "16385 ../../../../etc/shadow\n").unwrap();
    let run = drill_hostile(&archive, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("blobs.toc"), "{}", run.stderr);

    std::fs::remove_file(archive.join("blobs.toc")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", archive.join("9999.dat")).unwrap();
    let run = drill_hostile(&archive, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
}

#[test]
fn a_sqlite_backup_in_wal_mode_is_drilled_with_its_log() {
    // A file-level backup taken while the database was open: the main file still holds
    // the clean state, the write-ahead log the torn one. SQLite applies the log when the
    // database next opens, so the restore point is torn.
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.sqlite");
    std::fs::copy(fixture("clean").join("bank.sqlite"), &live).unwrap();
    let backup = dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    let script = format!(
        r#"
import shutil, sqlite3
db = sqlite3.connect({live:?})
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("ATTACH ? AS torn", ({torn:?},))
tables = [r[0] for r in db.execute("SELECT name FROM torn.sqlite_master WHERE type='table'")]
for t in tables:
    db.execute(f'DELETE FROM main."{{t}}"')
    db.execute(f'INSERT INTO main."{{t}}" SELECT * FROM torn."{{t}}"')
db.commit()
shutil.copy({live:?}, {main:?})
shutil.copy({live:?} + "-wal", {main:?} + "-wal")
db.close()
"#,
        live = live.display().to_string(),
        torn = fixture("torn").join("bank.sqlite").display().to_string(),
        main = backup.join("bank.sqlite").display().to_string(),
    );
    let status = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(backup.join("bank.sqlite-wal").metadata().unwrap().len() > 0);

    let run = drill_hostile(&backup.join("bank.sqlite"), &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.json()["verdict"], "inconsistent");
    // The backup itself is untouched: no -shm beside it, the log still there.
    assert!(!backup.join("bank.sqlite-shm").exists());
    assert!(backup.join("bank.sqlite-wal").exists());
}

#[test]
fn cleanup_ignores_labels_others_could_write() {
    // A dummy process a forged label names, and the forged label in the shared /tmp (the
    // old place of instance directories) and in a private directory planted by someone else.
    let mut dummy = Command::new("sleep").arg("300").spawn().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", dummy.id())).unwrap();
    let start_time: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let label = serde_json::json!({
        "tool": "scalardb-verify",
        "run_id": "forged",
        "engine": "postgres",
        "owner": {"pid": 999_999_999u32, "start_time": 1},
        "server": {"pid": dummy.id(), "start_time": start_time},
        "port": 5432,
        "created_at": "2026-12-01T00:00:00Z",
    });
    let mut cassandra_label = label.clone();
    cassandra_label["engine"] = "cassandra".into();
    let shared = tempfile::tempdir().unwrap();
    let forged_node = shared
        .path()
        .join("scalardb-verify-forged-cassandra-abcdef");
    std::fs::create_dir_all(&forged_node).unwrap();
    std::fs::write(
        forged_node.join("scalardb-verify-instance.json"),
        cassandra_label.to_string(),
    )
    .unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let uid = nix::unistd::geteuid().as_raw();
    for dir in [
        shared.path().join("scalardb-verify-forged-postgres-abcdef"),
        shared
            .path()
            .join(format!("scalardb-verify-{uid}"))
            .join("i-forged-postgres-abcdef"),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("scalardb-verify-instance.json"), label.to_string()).unwrap();
    }
    // The planted private directory belongs to someone else.
    let planted = shared.path().join(format!("scalardb-verify-{uid}"));
    for path in [planted.join("i-forged-postgres-abcdef"), planted.clone()] {
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    }

    for scope in [vec![], vec!["--run-id", "forged"]] {
        let output = Command::new(BIN)
            .arg("cleanup")
            .args(&scope)
            .env("TMPDIR", shared.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{scope:?}: {stderr}");
        assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
        assert!(
            dummy.try_wait().unwrap().is_none(),
            "cleanup killed the dummy"
        );
    }
    // With a private directory of our own, the forged label in /tmp is not looked at.
    std::fs::remove_dir_all(&planted).unwrap();
    let output = Command::new(BIN)
        .arg("cleanup")
        .env("TMPDIR", shared.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dummy.try_wait().unwrap().is_none(),
        "cleanup killed the dummy"
    );
    assert!(
        shared
            .path()
            .join("scalardb-verify-forged-postgres-abcdef")
            .exists()
    );
    assert!(forged_node.exists());
    dummy.kill().unwrap();
    dummy.wait().unwrap();
}

#[test]
fn thousands_of_tables_scan_under_a_pids_limit_of_256() {
    // 2,000 tables, eight times the limit: a thread per table (indicatif's steady tick,
    // before) would fail to spawn and panic. 20,000 (the issue's figure) passed once with
    // TABLES = 20_000, in 264 s: SQLite's CREATE TABLE scans its whole schema table, so
    // making them took 179 s (quadratic; 4 s for 2,000, 15.5 s for 4,000), and the scan
    // 121 s (debug build). Too slow for every CI run, and it proves no more than 2,000.
    const TABLES: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("many.sqlite");
    std::fs::copy(fixture("clean").join("bank.sqlite"), &db).unwrap();
    let script = format!(
        r#"
import sqlite3
db = sqlite3.connect({db:?}, isolation_level=None)
db.execute("PRAGMA synchronous=OFF")
db.execute("BEGIN")
for i in range({tables}):
    db.execute(f'CREATE TABLE "many$t{{i}}" AS SELECT * FROM "bank$accounts"')
db.execute('''INSERT INTO "scalardb$metadata"
    SELECT 'many.t' || n.i, m.column_name, m.data_type, m.key_type, m.clustering_order,
           m.indexed, m.ordinal_position
    FROM "scalardb$metadata" m,
         (WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {last})
          SELECT i FROM c) n
    WHERE m.full_table_name = 'bank.accounts' ''')
db.execute("COMMIT")
"#,
        db = db.display().to_string(),
        tables = TABLES,
        last = TABLES - 1,
    );
    let status = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    // RLIMIT_NPROC counts every thread of the account: an unprivileged one, as a
    // container's pids limit would.
    let output = Command::new("prlimit")
        .args(["--nproc=256", "--"])
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ])
        .arg(BIN)
        .args([
            "scan",
            &format!("sqlite://{}", db.display()),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verdict"], "consistent", "{stderr}");
    assert_eq!(
        report["summary"]["tables"].as_array().map(Vec::len),
        Some(TABLES + 2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_a_dump_plants_cannot_stand_in_for_built_ins_in_checks() {
    // The dump puts its own abs() first in every new session's search_path; an honest
    // invariant calling abs() must still get PostgreSQL's.
    let dir = tempfile::tempdir().unwrap();
    let payload = "CREATE SCHEMA evil;\n\
         CREATE FUNCTION evil.abs(integer) RETURNS integer LANGUAGE sql AS 'SELECT 2';\n\
         ALTER DATABASE restored SET search_path = evil, pg_catalog, public;\n\
         ALTER ROLE postgres SET search_path = evil, pg_catalog, public;";
    let dump = pg_dump_with("clean", payload, dir.path(), "shadow").await;
    let run = drill_hostile(&dump, &["--check", "abs=SELECT abs(-1) = 1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let check = &report["drill"]["invariants"][0];
    assert_eq!(check["passed"], true, "{check}");
    assert_eq!(report["verdict"], "consistent");
}
