//! Disposable PostgreSQL and MariaDB servers run from the binaries installed on this machine.
//!
//! A [`LocalInstance`] owns one server process, a temporary directory holding its data,
//! sockets, log and label, and a free port on 127.0.0.1. Durability is switched off (no
//! fsync, no doublewrite, no binary log): the data is thrown away at the end, and a crash
//! mid-run is handled by throwing it away too. Teardown is explicit ([`LocalInstance::stop`]);
//! `Drop` kills and removes as a fallback; [`sweep_leftovers`] removes what a killed run
//! left.
//!
//! This module must not touch the machine's own database services or data directories,
//! listen anywhere but loopback, or interpret the data it holds.

mod binaries;
mod label;
mod process;

use std::fmt;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;
use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;

use self::binaries::{Binaries, SearchPath};
use self::label::Label;
pub use self::label::{SweepScope, SweptInstance, sweep, sweep_in, sweep_leftovers};
use self::process::{ProcessId, ServiceAccount};

/// How many free ports to try when another process takes ours between our check and the
/// server's bind.
const PORT_ATTEMPTS: u32 = 5;
/// How long one readiness probe may take before it is abandoned and retried.
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server may take to shut down cleanly before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How much of a server log or client stderr an error carries.
const TAIL_LINES: usize = 40;
/// The longest Unix socket path the kernel accepts (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The server's data directory inside the instance directory.
const DATA_DIR: &str = "data";
/// SQL that mariadbd runs at startup, before serving clients: sets the root password.
const MARIADB_INIT_FILE: &str = "init.sql";

/// A database engine the local runtime can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    MariaDb,
}

impl Engine {
    /// The superuser the instance's URL logs in as.
    pub fn superuser(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MariaDb => "root",
        }
    }

    /// The database that always exists and that [`LocalInstance::url`] names.
    pub fn default_database(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MariaDb => "mysql",
        }
    }

    fn url_scheme(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MariaDb => "mysql",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "postgres",
            Self::MariaDb => "mariadb",
        })
    }
}

/// How to start an instance.
#[derive(Clone)]
pub struct LocalOptions {
    /// Covers everything `start` does: creating the data directory, starting the server and
    /// waiting until it answers a query.
    pub startup_timeout: Duration,
    /// Labels the instance directory, so `sweep(&SweepScope::Run(run_id))` finds it.
    pub run_id: String,
    /// The superuser's password. `None`: the superuser logs in over TCP without one.
    /// `Some`: PostgreSQL requires SCRAM passwords over TCP, and MariaDB's root accounts get
    /// this password, so a wrong one is rejected as on a real server.
    pub superuser_password: Option<String>,
    /// Where the instance directory is created; `None` is [`std::env::temp_dir`]. A sweep
    /// must look in the same place ([`sweep_in`]). When running as root, the server's
    /// unprivileged account must be able to traverse it (mode 0755 or 0711 will do).
    pub parent_dir: Option<PathBuf>,
}

impl LocalOptions {
    /// A 60-second startup timeout and no password.
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            startup_timeout: Duration::from_secs(60),
            run_id: run_id.into(),
            superuser_password: None,
            parent_dir: None,
        }
    }
}

impl fmt::Debug for LocalOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalOptions")
            .field("startup_timeout", &self.startup_timeout)
            .field("run_id", &self.run_id)
            .field(
                "superuser_password",
                &self.superuser_password.as_ref().map(|_| "<redacted>"),
            )
            .field("parent_dir", &self.parent_dir)
            .finish()
    }
}

/// What went wrong in the local runtime. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum LocalRuntimeError {
    #[error("find {what} ({hint}; scripts/install-test-deps installs everything the tests need)")]
    BinaryNotFound {
        what: &'static str,
        hint: &'static str,
    },
    #[error("look up the system user {user:?}")]
    Account {
        user: String,
        #[source]
        source: nix::Error,
    },
    #[error("find an unprivileged user to run {engine} as (tried {tried})")]
    NoServiceAccount { engine: Engine, tried: String },
    #[error("create an instance directory under {}", parent.display())]
    CreateDir {
        parent: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "fit the unix socket path {} in {MAX_SOCKET_PATH} bytes (set TMPDIR to a shorter directory)",
        path.display()
    )]
    SocketPathTooLong { path: PathBuf },
    #[error("give {} to user {user}", path.display())]
    Chown {
        path: PathBuf,
        user: String,
        #[source]
        source: io::Error,
    },
    #[error("write {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write the instance label {}", path.display())]
    WriteLabel {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reserve a free port on 127.0.0.1")]
    FreePort {
        #[source]
        source: io::Error,
    },
    #[error("run {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("initialize the {engine} data directory {} ({status}):\n{output}", dir.display())]
    InitDb {
        engine: Engine,
        dir: PathBuf,
        status: String,
        output: String,
    },
    #[error(
        "start {engine}: the server exited during startup ({status}); its log ends with:\n{log_tail}"
    )]
    Start {
        engine: Engine,
        status: String,
        log_tail: String,
    },
    #[error(
        "get {engine} to answer on port {port} within {timeout:?}; its log ends with:\n{log_tail}"
    )]
    NotReady {
        engine: Engine,
        port: u16,
        timeout: Duration,
        log_tail: String,
    },
    #[error("probe {engine} on port {port}")]
    Probe {
        engine: Engine,
        port: u16,
        #[source]
        source: sqlx::Error,
    },
    #[error("read {}", path.display())]
    ReadSql {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("load {} into {engine} ({status}):\n{stderr}", path.display())]
    LoadSql {
        engine: Engine,
        path: PathBuf,
        database: Option<String>,
        status: String,
        stderr: String,
    },
    #[error("execute sql on {engine} ({status}):\n{stderr}")]
    ExecuteSql {
        engine: Engine,
        database: Option<String>,
        status: String,
        stderr: String,
    },
    #[error("wait for the {engine} client")]
    Client {
        engine: Engine,
        #[source]
        source: io::Error,
    },
    #[error("stop {engine} (pid {pid})")]
    Stop {
        engine: Engine,
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error("remove the instance directory {}", path.display())]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("scan {} for leftover instances", dir.display())]
    Sweep {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A running database server in a temporary directory, listening on 127.0.0.1.
///
/// Call [`stop`](Self::stop) when done; dropping it instead kills the server without a
/// clean shutdown and still removes the directory.
pub struct LocalInstance {
    engine: Engine,
    port: u16,
    /// The temporary directory: label, log, sockets and `data/`.
    dir: PathBuf,
    data_dir: PathBuf,
    /// `None` before the server starts and once it has been reaped. A std child rather than
    /// tokio's, so `Drop` can kill and reap it synchronously before removing its files.
    server: Option<std::process::Child>,
    removed: bool,
    binaries: Binaries,
    account: Option<ServiceAccount>,
    password: Option<String>,
    label: Label,
}

impl fmt::Debug for LocalInstance {
    // By hand, to keep the password out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalInstance")
            .field("engine", &self.engine)
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("pid", &self.pid())
            .field("account", &self.account.as_ref().map(|a| &a.name))
            .finish_non_exhaustive()
    }
}

/// Why one attempt to bring the server up failed.
enum StartFailure {
    /// Someone else bound the port first; another port may work.
    PortTaken(LocalRuntimeError),
    Fatal(LocalRuntimeError),
}

impl LocalInstance {
    /// Creates a data directory, starts the server on a free loopback port and waits until
    /// it answers `SELECT 1`, all within `opts.startup_timeout`.
    pub async fn start(engine: Engine, opts: &LocalOptions) -> Result<Self, LocalRuntimeError> {
        let deadline = Instant::now() + opts.startup_timeout;
        let binaries = binaries::find(engine, &SearchPath::system())?;
        let account = ServiceAccount::for_engine(engine)?;
        let parent = opts.parent_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = create_instance_dir(&parent, engine, &opts.run_id)?;
        // From here on, an early return drops `instance`, which kills whatever was started
        // and removes the directory.
        let mut instance = Self {
            engine,
            port: 0,
            data_dir: dir.join(DATA_DIR),
            dir,
            server: None,
            removed: false,
            binaries,
            account,
            password: opts.superuser_password.clone(),
            label: Label::new(&opts.run_id, engine),
        };
        instance.label.write(&instance.dir)?;
        let socket = instance.socket_path(u16::MAX);
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(LocalRuntimeError::SocketPathTooLong { path: socket });
        }
        if let Some(account) = &instance.account {
            account.chown(&instance.dir)?;
        }
        instance
            .init_data_dir(deadline, opts.startup_timeout)
            .await?;

        let mut attempt = 1;
        loop {
            instance.port = free_port()?;
            instance.spawn_server()?;
            match instance.wait_ready(deadline, opts.startup_timeout).await {
                Ok(()) => return Ok(instance),
                Err(StartFailure::PortTaken(_)) if attempt < PORT_ATTEMPTS => attempt += 1,
                Err(StartFailure::PortTaken(e) | StartFailure::Fatal(e)) => return Err(e),
            }
        }
    }

    /// The sqlx URL of the superuser on the default database, e.g.
    /// `postgres://postgres@127.0.0.1:PORT/postgres` or `mysql://root@127.0.0.1:PORT/mysql`.
    pub fn url(&self) -> String {
        self.url_for(self.engine.default_database())
    }

    /// The sqlx URL of the superuser on `database`.
    pub fn url_for(&self, database: &str) -> String {
        let mut url = url::Url::parse(&format!(
            "{}://127.0.0.1:{}/",
            self.engine.url_scheme(),
            self.port
        ))
        .expect("a scheme, an IPv4 address and a port always make a valid URL");
        // Neither can fail on a URL with a host.
        let _ = url.set_username(self.engine.superuser());
        let _ = url.set_password(self.password.as_deref());
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push(database);
        }
        url.into()
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory this instance owns and removes: label, log, sockets, data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's data directory, inside [`dir`](Self::dir).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The file the server writes its log to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(std::process::Child::id)
    }

    /// Runs the SQL file at `path` with the engine's own client (`psql`, `mariadb`) as the
    /// superuser, stopping at the first error. `database: None` means `postgres` on
    /// PostgreSQL and no database selected on MariaDB (so a dump's own `USE` applies).
    pub async fn load_sql_file(
        &self,
        path: &Path,
        database: Option<&str>,
    ) -> Result<(), LocalRuntimeError> {
        let file = std::fs::File::open(path).map_err(|source| LocalRuntimeError::ReadSql {
            path: path.to_path_buf(),
            source,
        })?;
        let (status, stderr) = self.run_client(database, ClientInput::File(file)).await?;
        if status.success() {
            return Ok(());
        }
        Err(LocalRuntimeError::LoadSql {
            engine: self.engine,
            path: path.to_path_buf(),
            database: database.map(str::to_owned),
            status: status.to_string(),
            stderr,
        })
    }

    /// Restores a `pg_dump` custom, directory or tar archive into `database` with the
    /// server's own `pg_restore`, `jobs` at a time (tar archives restore with one), without
    /// owners or privileges, whose roles a disposable instance does not have.
    pub async fn pg_restore(
        &self,
        archive: &Path,
        database: &str,
        jobs: usize,
    ) -> Result<(), LocalRuntimeError> {
        let program = self.binaries.client.with_file_name("pg_restore");
        let mut command = tokio::process::Command::new(&program);
        command
            .args(["--no-owner", "--no-privileges", "--exit-on-error", "-w"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(format!("--dbname={database}"))
            .arg(format!("--jobs={}", jobs.max(1)))
            .arg(archive)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
        let output = command
            .output()
            .await
            .map_err(|source| LocalRuntimeError::Spawn { program, source })?;
        if output.status.success() {
            return Ok(());
        }
        Err(LocalRuntimeError::LoadSql {
            engine: self.engine,
            path: archive.to_path_buf(),
            database: Some(database.to_owned()),
            status: output.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&output.stderr)),
        })
    }

    /// Runs `sql` (any number of statements) with the engine's own client, stopping at the
    /// first error: `execute_sql_in(None, sql)`.
    pub async fn execute_sql(&self, sql: &str) -> Result<(), LocalRuntimeError> {
        self.execute_sql_in(None, sql).await
    }

    /// Runs `sql` with the engine's own client in `database`, as
    /// [`load_sql_file`](Self::load_sql_file) runs a file.
    pub async fn execute_sql_in(
        &self,
        database: Option<&str>,
        sql: &str,
    ) -> Result<(), LocalRuntimeError> {
        let (status, stderr) = self.run_client(database, ClientInput::Text(sql)).await?;
        if status.success() {
            return Ok(());
        }
        Err(LocalRuntimeError::ExecuteSql {
            engine: self.engine,
            database: database.map(str::to_owned),
            status: status.to_string(),
            stderr,
        })
    }

    /// Shuts the server down cleanly (killing it if that takes over 10 s) and removes the
    /// instance directory.
    pub async fn stop(mut self) -> Result<(), LocalRuntimeError> {
        if let Some(child) = self.server.take() {
            let pid = child.id();
            // PostgreSQL's SIGINT is its "fast" shutdown, which disconnects clients; its
            // SIGTERM would wait for them. SIGTERM is MariaDB's normal shutdown.
            let signal = match self.engine {
                Engine::Postgres => Signal::SIGINT,
                Engine::MariaDb => Signal::SIGTERM,
            };
            process::signal_unchecked(pid, signal);
            let mut child = child;
            let mut waiter = tokio::task::spawn_blocking(move || child.wait());
            let joined = match tokio::time::timeout(STOP_GRACE, &mut waiter).await {
                Ok(joined) => joined,
                Err(_) => {
                    process::kill_group_unchecked(pid);
                    waiter.await
                }
            };
            let stop_error = |source| LocalRuntimeError::Stop {
                engine: self.engine,
                pid,
                source,
            };
            joined
                .map_err(io::Error::other)
                .map_err(stop_error)?
                .map_err(stop_error)?;
            self.release_ipc();
        }
        match tokio::fs::remove_dir_all(&self.dir).await {
            Ok(()) => {}
            // A concurrent sweep got there first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LocalRuntimeError::RemoveDir {
                    path: self.dir.clone(),
                    source,
                });
            }
        }
        self.removed = true;
        Ok(())
    }

    /// Frees what the kernel keeps for a dead server outside its directory.
    fn release_ipc(&self) {
        if self.engine == Engine::Postgres {
            process::release_postgres_interlock(&self.data_dir);
        }
    }

    fn socket_path(&self, port: u16) -> PathBuf {
        match self.engine {
            Engine::Postgres => self.dir.join(format!(".s.PGSQL.{port}.lock")),
            Engine::MariaDb => self.dir.join("mysqld.sock"),
        }
    }

    async fn init_data_dir(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), LocalRuntimeError> {
        let mut command = tokio::process::Command::new(&self.binaries.init);
        let mut secret_file = None;
        match self.engine {
            Engine::Postgres => {
                command
                    .arg("--pgdata")
                    .arg(&self.data_dir)
                    .args(["--username=postgres", "--encoding=UTF8", "--locale=C"])
                    .arg("--no-sync");
                if let Some(password) = &self.password {
                    let path = self.write_private_file("pwfile", password)?;
                    command
                        .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                        .arg(format!("--pwfile={}", path.display()));
                    secret_file = Some(path);
                } else {
                    command.arg("--auth=trust");
                }
            }
            Engine::MariaDb => {
                // --no-defaults must come first; it keeps the machine's my.cnf out.
                // Its bootstrap server's temporary tables go in the instance's own directory:
                // in a shared /tmp, a MariaDB starting elsewhere may remove them as leftovers
                // (seen in CI: "Could not remove temporary table '/tmp/#sql-temptable-…'").
                command
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", self.data_dir.display()))
                    .arg(format!("--tmpdir={}", self.dir.display()))
                    .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
            }
        }
        command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(account) = &self.account {
            account.apply_tokio(&mut command);
        }
        let child = command.spawn().map_err(|source| LocalRuntimeError::Spawn {
            program: self.binaries.init.clone(),
            source,
        })?;
        let result = tokio::time::timeout_at(deadline, child.wait_with_output()).await;
        if let Some(path) = secret_file {
            let _ = std::fs::remove_file(path);
        }
        let init_error = |status: String, output: String| LocalRuntimeError::InitDb {
            engine: self.engine,
            dir: self.data_dir.clone(),
            status,
            output,
        };
        let output = match result {
            Ok(Ok(output)) => output,
            Ok(Err(source)) => return Err(init_error(source.to_string(), String::new())),
            Err(_elapsed) => {
                return Err(init_error(
                    format!("timed out after {timeout:?}"),
                    String::new(),
                ));
            }
        };
        if !output.status.success() {
            let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stdout));
            return Err(init_error(output.status.to_string(), tail(&text)));
        }
        if let (Engine::MariaDb, Some(password)) = (self.engine, &self.password) {
            // Read by mariadbd through --init-file on every start attempt.
            self.write_private_file(MARIADB_INIT_FILE, &mariadb_password_sql(password))?;
        }
        Ok(())
    }

    /// Writes a file only the server's account can read, for secrets its tools read.
    fn write_private_file(&self, name: &str, contents: &str) -> Result<PathBuf, LocalRuntimeError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.dir.join(name);
        let write_error = |source| LocalRuntimeError::WriteFile {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(write_error)?;
        io::Write::write_all(&mut file, contents.as_bytes()).map_err(write_error)?;
        if let Some(account) = &self.account {
            account.chown(&path)?;
        }
        Ok(path)
    }

    fn spawn_server(&mut self) -> Result<(), LocalRuntimeError> {
        let log_path = self.log_path();
        let log_error = |source| LocalRuntimeError::WriteFile {
            path: log_path.clone(),
            source,
        };
        // Truncated on every attempt, so a retry's log is not mistaken for the last one's.
        let log = std::fs::File::create(&log_path).map_err(log_error)?;
        let log_for_stdout = log.try_clone().map_err(log_error)?;

        let mut command = std::process::Command::new(&self.binaries.server);
        let port = self.port.to_string();
        match self.engine {
            Engine::Postgres => {
                command
                    .arg("-D")
                    .arg(&self.data_dir)
                    .args(["-p", &port, "-h", "127.0.0.1", "-k"])
                    .arg(&self.dir)
                    .args([
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                        // Minimal WAL lets a bulk load into a fresh table skip WAL entirely.
                        "-c",
                        "wal_level=minimal",
                        "-c",
                        "max_wal_senders=0",
                        // Dynamic shared memory as files in the data directory rather than
                        // in /dev/shm, where a killed server would leak them.
                        "-c",
                        "dynamic_shared_memory_type=mmap",
                    ]);
            }
            Engine::MariaDb => {
                command
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", self.data_dir.display()))
                    .arg(format!("--port={port}"))
                    .arg("--bind-address=127.0.0.1")
                    .arg(format!(
                        "--socket={}",
                        self.dir.join("mysqld.sock").display()
                    ))
                    .arg(format!(
                        "--pid-file={}",
                        self.dir.join("mysqld.pid").display()
                    ))
                    .arg(format!("--tmpdir={}", self.dir.display()))
                    .args([
                        // TCP clients from 127.0.0.1 then match root@127.0.0.1 without a
                        // reverse lookup of the host name.
                        "--skip-name-resolve",
                        "--skip-log-bin",
                        "--innodb-flush-log-at-trx-commit=0",
                        "--innodb-doublewrite=0",
                        // --no-defaults drops Debian's utf8mb4 default for latin1.
                        "--character-set-server=utf8mb4",
                        "--collation-server=utf8mb4_general_ci",
                    ]);
                if self.password.is_some() {
                    command.arg(format!(
                        "--init-file={}",
                        self.dir.join(MARIADB_INIT_FILE).display()
                    ));
                }
            }
        }
        command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log)
            // Its own process group, so a kill reaches PostgreSQL's backends too.
            .process_group(0);
        if let Some(account) = &self.account {
            account.apply_std(&mut command);
        }
        let child = command.spawn().map_err(|source| LocalRuntimeError::Spawn {
            program: self.binaries.server.clone(),
            source,
        })?;
        self.label.server = ProcessId::of(child.id());
        self.label.port = Some(self.port);
        self.server = Some(child);
        self.label.write(&self.dir)
    }

    /// Probes the server until it answers `SELECT 1`, it exits, or the deadline passes.
    async fn wait_ready(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), StartFailure> {
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(status) = self.reap_if_exited() {
                let log_tail = self.log_tail();
                let port_taken = log_tail.contains("Address already in use");
                let error = LocalRuntimeError::Start {
                    engine: self.engine,
                    status,
                    log_tail,
                };
                return Err(if port_taken {
                    StartFailure::PortTaken(error)
                } else {
                    StartFailure::Fatal(error)
                });
            }
            // Capped per attempt, so one connection stuck half-open does not use up the
            // whole deadline.
            let attempt_deadline = (Instant::now() + PROBE_ATTEMPT_TIMEOUT).min(deadline);
            match tokio::time::timeout_at(attempt_deadline, self.probe()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if is_transient(&e) => {}
                Ok(Err(source)) => {
                    return Err(StartFailure::Fatal(LocalRuntimeError::Probe {
                        engine: self.engine,
                        port: self.port,
                        source,
                    }));
                }
                Err(_elapsed) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StartFailure::Fatal(LocalRuntimeError::NotReady {
                    engine: self.engine,
                    port: self.port,
                    timeout,
                    log_tail: self.log_tail(),
                }));
            }
            // A short backoff between probes, not a guess at how long startup takes.
            tokio::time::sleep_until((now + pause).min(deadline)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    async fn probe(&self) -> Result<(), sqlx::Error> {
        let url = self.url();
        match self.engine {
            Engine::Postgres => {
                let mut conn = sqlx::postgres::PgConnection::connect(&url).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                conn.close().await
            }
            Engine::MariaDb => {
                let mut conn = sqlx::mysql::MySqlConnection::connect(&url).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                conn.close().await
            }
        }
    }

    /// The server's exit status if it has exited, reaping it.
    fn reap_if_exited(&mut self) -> Option<String> {
        let child = self.server.as_mut()?;
        let status = match child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => return None,
            Err(e) => format!("status unknown: {e}"),
        };
        self.server = None;
        Some(status)
    }

    fn log_tail(&self) -> String {
        std::fs::read(self.log_path())
            .map(|bytes| tail(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }

    async fn run_client(
        &self,
        database: Option<&str>,
        input: ClientInput<'_>,
    ) -> Result<(ExitStatus, String), LocalRuntimeError> {
        let mut command = tokio::process::Command::new(&self.binaries.client);
        let port = self.port.to_string();
        match self.engine {
            Engine::Postgres => {
                // -X: no ~/.psqlrc; -w: never prompt, since stdin is the script.
                command
                    .args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
                    .args(["-p", &port, "-U", "postgres"])
                    .arg(format!(
                        "--dbname={}",
                        database.unwrap_or(self.engine.default_database())
                    ));
                if let Some(password) = &self.password {
                    command.env("PGPASSWORD", password);
                }
            }
            Engine::MariaDb => {
                command
                    .arg("--no-defaults")
                    .args([
                        "--protocol=TCP",
                        "--host=127.0.0.1",
                        "--user=root",
                        "--batch",
                    ])
                    .arg(format!("--port={port}"))
                    .arg("--default-character-set=utf8mb4");
                if let Some(database) = database {
                    command.arg(format!("--database={database}"));
                }
                // The environment rather than argv, where `ps` would show it.
                if let Some(password) = &self.password {
                    command.env("MYSQL_PWD", password);
                }
            }
        }
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let text = match input {
            ClientInput::File(file) => {
                command.stdin(Stdio::from(file));
                None
            }
            ClientInput::Text(sql) => {
                command.stdin(Stdio::piped());
                Some(sql)
            }
        };
        let mut child = command.spawn().map_err(|source| LocalRuntimeError::Spawn {
            program: self.binaries.client.clone(),
            source,
        })?;
        let stdin = child.stdin.take();
        let feed = async move {
            if let (Some(mut stdin), Some(sql)) = (stdin, text) {
                // A write error means the client exited early; its status and stderr say why.
                let _ = stdin.write_all(sql.as_bytes()).await;
            }
        };
        // Fed and drained together: a client blocked on a full stderr pipe would otherwise
        // never read the rest of its input.
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        let output = output.map_err(|source| LocalRuntimeError::Client {
            engine: self.engine,
            source,
        })?;
        Ok((
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr)),
        ))
    }
}

impl Drop for LocalInstance {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // Not yet reaped, so the pid cannot have been reused.
            process::kill_group_unchecked(child.id());
            let _ = child.wait();
            self.release_ipc();
        }
        if !self.removed {
            let _ = label::remove_dir_settled(&self.dir);
        }
    }
}

enum ClientInput<'a> {
    File(std::fs::File),
    Text(&'a str),
}

fn create_instance_dir(
    parent: &Path,
    engine: Engine,
    run_id: &str,
) -> Result<PathBuf, LocalRuntimeError> {
    let dir = tempfile::Builder::new()
        .prefix(&label::dir_prefix(run_id, engine))
        .rand_bytes(6)
        .tempdir_in(parent)
        .map_err(|source| LocalRuntimeError::CreateDir {
            parent: parent.to_path_buf(),
            source,
        })?;
    // Removal is ours to order: after the server is dead, not whenever the guard drops.
    Ok(dir.keep())
}

/// A port on 127.0.0.1 that was free a moment ago. Another process may take it before the
/// server binds it; `start` then retries with another.
fn free_port() -> Result<u16, LocalRuntimeError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|source| LocalRuntimeError::FreePort { source })?;
    let port = listener
        .local_addr()
        .map_err(|source| LocalRuntimeError::FreePort { source })?
        .port();
    Ok(port)
}

/// Errors a starting server gives before it accepts queries.
fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        // Connection refused until the server listens; reset if it stops accepting.
        sqlx::Error::Io(_) => true,
        // 57P03: PostgreSQL accepts connections while still starting up, and says so.
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

/// SQL giving MariaDB's root accounts `password`, run by the server at startup before it
/// serves clients.
fn mariadb_password_sql(password: &str) -> String {
    let quoted = sql_string(password);
    ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|host| format!("ALTER USER IF EXISTS 'root'@'{host}' IDENTIFIED BY {quoted};\n"))
        .collect()
}

/// A MariaDB string literal (backslash escapes are on by default there).
fn sql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The last `TAIL_LINES` lines of `text`.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_literal_escapes_quotes_and_backslashes() {
        assert_eq!(sql_string(r"a'b\c"), r"'a''b\\c'");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let tail = tail(&text);
        assert!(tail.starts_with("line 60\n"));
        assert!(tail.ends_with("line 99"));
    }

    #[test]
    fn instances_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<LocalInstance>();
        send_sync::<LocalRuntimeError>();
    }

    #[test]
    fn options_debug_hides_the_password() {
        let mut opts = LocalOptions::new("r");
        opts.superuser_password = Some("hunter2".into());
        assert!(!format!("{opts:?}").contains("hunter2"));
    }
}
