//! Disposable PostgreSQL and MariaDB servers run from the binaries installed on this machine.
//!
//! A [`LocalInstance`] owns one server process and an instance directory inside the tool's
//! private directory (`$TMPDIR/scalardb-verify-<uid>`, mode 0700): the label and the server
//! log, which only the tool writes, and `box/`, the only place the server may write. The
//! server, and every client run on its data (`psql`, `pg_restore`, `mariadb`), runs in a
//! [`Sandbox`]: a fresh account that owns nothing on the host, no capabilities, none of the
//! host's files but `/usr`, and (with [`Listen::Socket`], what drills use) no network: it
//! answers only on a Unix socket in `box/`, with a fresh password. Durability is switched
//! off (no fsync, no doublewrite, no binary log): the data is thrown away at the end.
//! Teardown is explicit ([`LocalInstance::stop`]); `Drop` kills and removes as a fallback;
//! [`sweep_leftovers`] removes what a killed run left.
//!
//! This module must not touch the machine's own database services or data directories,
//! listen anywhere but loopback, or interpret the data it holds.

mod binaries;
mod label;
pub mod process;
mod stream;

use std::fmt;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Connection as _;
use tokio::time::Instant;

use self::binaries::{Binaries, SearchPath};
use self::label::Label;
pub use self::label::{
    SweepScope, SweptInstance, check_private, private_root, sweep, sweep_in, sweep_leftovers,
};
use self::process::ProcessId;
pub use self::stream::{Limited, RestoreLimit, TooLarge};
use super::sandbox::{self, Account, Network, Sandbox, SandboxError};

/// How many free ports to try when another process takes ours between our check and the
/// server's bind.
const PORT_ATTEMPTS: u32 = 5;
/// How long one readiness probe may take before it is abandoned and retried.
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a server log or client stderr an error carries.
const TAIL_LINES: usize = 40;
/// The longest Unix socket path the kernel accepts (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The directory the sandboxed server owns, inside the instance directory.
const BOX_DIR: &str = "box";
/// The server's data directory inside the box.
const DATA_DIR: &str = "data";
/// SQL that mariadbd runs at startup, before serving clients: sets the root password.
const MARIADB_INIT_FILE: &str = "init.sql";
/// MariaDB's socket, inside the box.
const MARIADB_SOCKET: &str = "mysqld.sock";
/// The file `--keep` leaves the superuser's password in (mode 0600, the tool's own).
const PASSWORD_FILE: &str = "superuser.password";
/// How much of a client's standard error is kept (its end).
const STDERR_TAIL_BYTES: usize = 64 * 1024;

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

    /// The port a socket-only server names (PostgreSQL's socket file carries it).
    fn default_port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::MariaDb => 3306,
        }
    }
}

/// Where the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listen {
    /// A free TCP port on 127.0.0.1 (and the socket in the box): for servers the tests and
    /// the oracle load and dump with the host's own tools. The sandbox shares the host's
    /// network.
    #[default]
    Loopback,
    /// Only the Unix socket in the box, which only the tool can reach, and a fresh password
    /// when none is given: the server sees no network at all. Drills use this.
    Socket,
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
    /// Where the instance directory is created; `None` is [`private_root`]. It must be
    /// the tool's own and writable by nobody else. A sweep must look in the same place
    /// ([`sweep_in`]).
    pub parent_dir: Option<PathBuf>,
    /// TCP on loopback, or the socket only.
    pub listen: Listen,
    /// Whether the server may outlive the tool (`--keep`); otherwise it is killed with it.
    pub outlive_tool: bool,
}

impl LocalOptions {
    /// A 60-second startup timeout and no password.
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            startup_timeout: Duration::from_secs(60),
            run_id: run_id.into(),
            superuser_password: None,
            parent_dir: None,
            listen: Listen::Loopback,
            outlive_tool: false,
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
            .field("listen", &self.listen)
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
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(
        "use {} for instance directories: {reason} (remove it, or set TMPDIR elsewhere)",
        path.display()
    )]
    UnsafeParent { path: PathBuf, reason: String },
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
    #[error("give {} to the sandbox account {uid}", path.display())]
    Chown {
        path: PathBuf,
        uid: u32,
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
    #[error(
        "load {} into {engine}: it would put more than {limit} bytes into the disposable \
         instance (--max-restore-bytes)",
        path.display()
    )]
    TooLarge {
        engine: Engine,
        path: PathBuf,
        limit: u64,
    },
    #[error("copy {} into the sandbox", path.display())]
    CopyIn {
        path: PathBuf,
        #[source]
        source: io::Error,
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

/// A running database server in a sandbox, answering on a Unix socket in its instance
/// directory (and, with [`Listen::Loopback`], on a port of 127.0.0.1).
///
/// Call [`stop`](Self::stop) when done; dropping it instead still kills the server and
/// removes the directory.
pub struct LocalInstance {
    engine: Engine,
    listen: Listen,
    port: u16,
    /// The instance directory: label, log, account files, and `box/`.
    dir: PathBuf,
    data_dir: PathBuf,
    /// `None` before the server starts and once it has been reaped. A std child rather than
    /// tokio's, so `Drop` can kill and reap it synchronously before removing its files.
    server: Option<std::process::Child>,
    removed: bool,
    binaries: Binaries,
    sandbox: Sandbox,
    password: Option<String>,
    label: Label,
}

impl fmt::Debug for LocalInstance {
    // By hand, to keep the password out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalInstance")
            .field("engine", &self.engine)
            .field("listen", &self.listen)
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("pid", &self.pid())
            .field("uid", &self.sandbox.account().uid)
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
    /// Creates a data directory, starts the server in its sandbox and waits until it
    /// answers `SELECT 1`, all within `opts.startup_timeout`.
    pub async fn start(engine: Engine, opts: &LocalOptions) -> Result<Self, LocalRuntimeError> {
        let deadline = Instant::now() + opts.startup_timeout;
        let binaries = binaries::find(engine, &SearchPath::system())?;
        let parent = match &opts.parent_dir {
            Some(dir) => {
                label::check_private(dir)?;
                dir.clone()
            }
            None => private_root()?,
        };
        let dir = create_instance_dir(&parent, engine, &opts.run_id)?;
        let label = Label::new(&opts.run_id, engine);
        if let Err(e) = label.write(&dir) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let network = match opts.listen {
            Listen::Loopback => Network::Host,
            Listen::Socket => Network::Isolated,
        };
        let password = match (&opts.superuser_password, opts.listen) {
            (Some(password), _) => Some(password.clone()),
            (None, Listen::Socket) => Some(sandbox::random_password()?),
            (None, Listen::Loopback) => None,
        };
        let prepared = Account::fresh()
            .and_then(|account| Sandbox::prepare(&dir, &dir.join(BOX_DIR), account, network));
        let mut sandbox = match prepared {
            Ok(sandbox) if opts.outlive_tool => sandbox.outliving_the_tool(),
            Ok(sandbox) => sandbox,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        };
        for program in [&binaries.init, &binaries.server, &binaries.client] {
            if let Some(parent) = program.parent().filter(|p| !p.starts_with("/usr")) {
                sandbox = sandbox.with_read_only(parent);
            }
        }
        // From here on, an early return drops `instance`, which kills whatever was started
        // and removes the directory.
        let mut instance = Self {
            engine,
            listen: opts.listen,
            port: engine.default_port(),
            data_dir: sandbox.box_dir().join(DATA_DIR),
            dir,
            server: None,
            removed: false,
            binaries,
            sandbox,
            password,
            label,
        };
        let socket = instance.socket_path();
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(LocalRuntimeError::SocketPathTooLong { path: socket });
        }
        if let Some(password) = &instance.password {
            instance.write_tool_file(PASSWORD_FILE, password)?;
        }
        for sub in ["tmp", "files"] {
            instance.make_box_dir(sub)?;
        }
        instance
            .init_data_dir(deadline, opts.startup_timeout)
            .await?;

        let mut attempt = 1;
        loop {
            if instance.listen == Listen::Loopback {
                instance.port = free_port()?;
            }
            instance.spawn_server()?;
            match instance.wait_ready(deadline, opts.startup_timeout).await {
                Ok(()) => return Ok(instance),
                Err(StartFailure::PortTaken(_)) if attempt < PORT_ATTEMPTS => attempt += 1,
                Err(StartFailure::PortTaken(e) | StartFailure::Fatal(e)) => return Err(e),
            }
        }
    }

    /// The sqlx URL of the superuser on the default database.
    pub fn url(&self) -> String {
        self.url_for(self.engine.default_database())
    }

    /// The sqlx URL of the superuser on `database`: `postgres://postgres:PW@localhost:5432/DB
    /// ?host=BOX` or `mysql://root:PW@localhost:3306/DB?socket=BOX/mysqld.sock` for a
    /// socket-only server, `…@127.0.0.1:PORT/DB` on loopback.
    pub fn url_for(&self, database: &str) -> String {
        self.url_with(database, self.password.as_deref())
    }

    /// [`url_for`](Self::url_for) without the password, for people to read.
    pub fn url_shown(&self, database: &str) -> String {
        self.url_with(database, None)
    }

    fn url_with(&self, database: &str, password: Option<&str>) -> String {
        let host = match self.listen {
            Listen::Loopback => "127.0.0.1",
            Listen::Socket => "localhost",
        };
        let mut url = url::Url::parse(&format!(
            "{}://{host}:{}/",
            self.engine.url_scheme(),
            self.port
        ))
        .expect("a scheme, a host name and a port always make a valid URL");
        // Neither can fail on a URL with a host.
        let _ = url.set_username(self.engine.superuser());
        let _ = url.set_password(password);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push(database);
        }
        if self.listen == Listen::Socket {
            match self.engine {
                Engine::Postgres => {
                    url.query_pairs_mut()
                        .append_pair("host", &self.sandbox.box_dir().to_string_lossy());
                }
                Engine::MariaDb => {
                    url.query_pairs_mut()
                        .append_pair("socket", &self.socket_path().to_string_lossy());
                }
            }
        }
        url.into()
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The TCP port on 127.0.0.1 ([`Listen::Loopback`]), or the port the socket names.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password, if the instance has one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The file holding the superuser's password (only the tool's user can read it).
    pub fn password_file(&self) -> Option<PathBuf> {
        self.password.as_ref().map(|_| self.dir.join(PASSWORD_FILE))
    }

    /// The instance directory this instance owns and removes: label, log, the box.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory the sandboxed server may write, inside [`dir`](Self::dir): its data,
    /// socket and scratch files.
    pub fn box_dir(&self) -> &Path {
        self.sandbox.box_dir()
    }

    /// The server's data directory, inside the box.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The file the server writes its log to (the tool's, outside the box).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The uid the sandboxed processes run as.
    pub fn sandbox_uid(&self) -> u32 {
        self.sandbox.account().uid
    }

    /// The sandbox process's id (bubblewrap, whose descendants are the server), while it
    /// runs.
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
        self.load_sql(path, Box::new(file), database, RestoreLimit::unlimited())
            .await
    }

    /// Runs the SQL `reader` yields (a dump, read by the tool: the sandbox never sees the
    /// file) with the engine's own client, stopping at the first error, and at `limit`
    /// bytes. `path` names the source in errors.
    ///
    /// The client is confined like the server, and runs with every protection it has: psql
    /// in restricted mode (`\restrict`, where it has it), so no backslash command in the
    /// dump runs; the mariadb client in `--sandbox` mode and without `LOCAL INFILE`.
    pub async fn load_sql(
        &self,
        path: &Path,
        reader: Box<dyn io::Read + Send>,
        database: Option<&str>,
        limit: RestoreLimit,
    ) -> Result<(), LocalRuntimeError> {
        let input = match self.engine {
            Engine::Postgres if self.psql_restricts() => {
                let key = sandbox::random_password()?;
                stream::Input::restricted(reader, &key, limit)
            }
            _ => stream::Input::plain(reader, limit),
        };
        let outcome = self.run_client(database, input).await?;
        if let Some(limit) = outcome.too_large {
            return Err(LocalRuntimeError::TooLarge {
                engine: self.engine,
                path: path.to_path_buf(),
                limit,
            });
        }
        if outcome.status.success() {
            return Ok(());
        }
        Err(LocalRuntimeError::LoadSql {
            engine: self.engine,
            path: path.to_path_buf(),
            database: database.map(str::to_owned),
            status: outcome.status.to_string(),
            stderr: outcome.stderr,
        })
    }

    /// Restores a `pg_dump` custom, directory or tar archive into `database` with the
    /// server's own `pg_restore`, `jobs` at a time (tar archives restore with one), without
    /// owners or privileges, whose roles a disposable instance does not have.
    ///
    /// pg_restore runs in the sandbox and sees the archive read only. When the sandbox's
    /// account may not read it (a backup private to its owner), the tool copies it into the
    /// box first.
    pub async fn pg_restore(
        &self,
        archive: &Path,
        database: &str,
        jobs: usize,
    ) -> Result<(), LocalRuntimeError> {
        let account = self.sandbox.account();
        let (sandbox, inside) = if account.can_read(archive) {
            (
                self.sandbox.with_backup(archive),
                PathBuf::from(sandbox::BACKUP),
            )
        } else {
            let copy = self.sandbox.box_dir().join("archive");
            let copy_error = |source| LocalRuntimeError::CopyIn {
                path: archive.to_path_buf(),
                source,
            };
            let (from, to) = (archive.to_path_buf(), copy.clone());
            tokio::task::spawn_blocking(move || copy_tree(&from, &to, account))
                .await
                .map_err(io::Error::other)
                .and_then(|copied| copied)
                .map_err(copy_error)?;
            let inside = self.sandbox.inside(&copy);
            (self.sandbox.clone(), inside)
        };
        let program = self.binaries.client.with_file_name("pg_restore");
        let mut command = sandbox.command(&program);
        command
            .args(["--no-owner", "--no-privileges", "--exit-on-error", "-w"])
            .args([
                "-h",
                sandbox::BOX,
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(format!("--dbname={database}"))
            .arg(format!("--jobs={}", jobs.max(1)))
            .arg(&inside);
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
        let outcome = stream::run(command, stream::Input::none(), STDERR_TAIL_BYTES)
            .await
            .map_err(|source| LocalRuntimeError::Spawn {
                program: program.clone(),
                source,
            })?;
        if outcome.status.success() {
            return Ok(());
        }
        Err(LocalRuntimeError::LoadSql {
            engine: self.engine,
            path: archive.to_path_buf(),
            database: Some(database.to_owned()),
            status: outcome.status.to_string(),
            stderr: outcome.stderr,
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
        let reader = Box::new(io::Cursor::new(sql.as_bytes().to_vec()));
        let outcome = self
            .run_client(
                database,
                stream::Input::plain(reader, RestoreLimit::unlimited()),
            )
            .await?;
        if outcome.status.success() {
            return Ok(());
        }
        Err(LocalRuntimeError::ExecuteSql {
            engine: self.engine,
            database: database.map(str::to_owned),
            status: outcome.status.to_string(),
            stderr: outcome.stderr,
        })
    }

    /// Kills the server and everything else in its sandbox (the data is thrown away, so
    /// there is nothing to shut down cleanly) and removes the instance directory.
    pub async fn stop(mut self) -> Result<(), LocalRuntimeError> {
        if let Some(mut child) = self.server.take() {
            let pid = child.id();
            let waited = tokio::task::spawn_blocking(move || {
                // Not yet reaped, so the pid cannot have been reused.
                process::kill_group_unchecked(pid);
                child.wait()
            })
            .await
            .map_err(io::Error::other)
            .and_then(|waited| waited);
            if let Err(source) = waited {
                return Err(LocalRuntimeError::Stop {
                    engine: self.engine,
                    pid,
                    source,
                });
            }
        }
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || label::remove_dir_settled(&dir))
            .await
            .map_err(|e| LocalRuntimeError::RemoveDir {
                path: self.dir.clone(),
                source: io::Error::other(e),
            })??;
        self.removed = true;
        Ok(())
    }

    fn socket_path(&self) -> PathBuf {
        let box_dir = self.sandbox.box_dir();
        match self.engine {
            Engine::Postgres => box_dir.join(format!(".s.PGSQL.{}.lock", self.port)),
            Engine::MariaDb => box_dir.join(MARIADB_SOCKET),
        }
    }

    /// Whether this psql has restricted mode (`\restrict`, added by the fix for
    /// CVE-2025-8714: 17.6, 16.10, 15.14, 14.19, 13.22 and later).
    fn psql_restricts(&self) -> bool {
        let Ok(output) = std::process::Command::new(&self.binaries.client)
            .arg("--version")
            .env_clear()
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            return false;
        };
        psql_has_restrict(&String::from_utf8_lossy(&output.stdout))
    }

    async fn init_data_dir(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), LocalRuntimeError> {
        let mut command = self.sandbox.tokio_command(&self.binaries.init);
        let mut secret_file = None;
        let data = self.sandbox.inside(&self.data_dir);
        match self.engine {
            Engine::Postgres => {
                command
                    .arg("--pgdata")
                    .arg(&data)
                    .args(["--username=postgres", "--encoding=UTF8", "--locale=C"])
                    .arg("--no-sync");
                if let Some(password) = &self.password {
                    let path = self.write_box_file("pwfile", password)?;
                    let local = match self.listen {
                        Listen::Socket => "scram-sha-256",
                        // The socket is in a directory only the tool can open.
                        Listen::Loopback => "trust",
                    };
                    command
                        .arg(format!("--auth-local={local}"))
                        .arg("--auth-host=scram-sha-256")
                        .arg(format!("--pwfile={}", self.sandbox.inside(&path).display()));
                    secret_file = Some(path);
                } else {
                    command.arg("--auth=trust");
                }
            }
            Engine::MariaDb => {
                // --no-defaults must come first; it keeps the machine's my.cnf out.
                // Its bootstrap server's temporary tables go in the box.
                command
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--tmpdir={}/tmp", sandbox::BOX))
                    .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
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
            self.write_box_file(MARIADB_INIT_FILE, &mariadb_password_sql(password))?;
        }
        Ok(())
    }

    /// Writes a file in the box that only the sandbox's account (and the tool) can read.
    fn write_box_file(&self, name: &str, contents: &str) -> Result<PathBuf, LocalRuntimeError> {
        let path = self.sandbox.box_dir().join(name);
        write_private(&path, contents)?;
        self.sandbox
            .account()
            .chown(&path)
            .map_err(|source| LocalRuntimeError::Chown {
                path: path.clone(),
                uid: self.sandbox.account().uid,
                source,
            })?;
        Ok(path)
    }

    /// Writes a file of the tool's own in the instance directory, outside the box.
    fn write_tool_file(&self, name: &str, contents: &str) -> Result<PathBuf, LocalRuntimeError> {
        let path = self.dir.join(name);
        write_private(&path, contents)?;
        Ok(path)
    }

    fn make_box_dir(&self, name: &str) -> Result<(), LocalRuntimeError> {
        let path = self.sandbox.box_dir().join(name);
        std::fs::create_dir(&path).map_err(|source| LocalRuntimeError::WriteFile {
            path: path.clone(),
            source,
        })?;
        self.sandbox
            .account()
            .chown(&path)
            .map_err(|source| LocalRuntimeError::Chown {
                path,
                uid: self.sandbox.account().uid,
                source,
            })
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

        let mut command = self.sandbox.command(&self.binaries.server);
        let port = self.port.to_string();
        let data = self.sandbox.inside(&self.data_dir);
        match self.engine {
            Engine::Postgres => {
                command
                    .arg("-D")
                    .arg(&data)
                    .args(["-p", &port, "-k", sandbox::BOX]);
                match self.listen {
                    Listen::Loopback => command.args(["-h", "127.0.0.1"]),
                    Listen::Socket => command.args(["-c", "listen_addresses="]),
                };
                command.args([
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
                    // Dynamic shared memory as files in the data directory.
                    "-c",
                    "dynamic_shared_memory_type=mmap",
                ]);
            }
            Engine::MariaDb => {
                command
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--socket={}/{MARIADB_SOCKET}", sandbox::BOX))
                    .arg(format!("--pid-file={}/mysqld.pid", sandbox::BOX))
                    .arg(format!("--tmpdir={}/tmp", sandbox::BOX))
                    // LOAD DATA and SELECT … INTO OUTFILE only in an empty directory of the
                    // box, and never from a client's files.
                    .arg(format!("--secure-file-priv={}/files", sandbox::BOX))
                    .arg("--local-infile=0");
                match self.listen {
                    Listen::Loopback => command
                        .arg(format!("--port={port}"))
                        .arg("--bind-address=127.0.0.1"),
                    Listen::Socket => command.arg("--skip-networking"),
                };
                command.args([
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
                    command.arg(format!("--init-file={}/{MARIADB_INIT_FILE}", sandbox::BOX));
                }
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log)
            // Its own process group, so a kill reaches the whole sandbox.
            .process_group(0);
        let child = command.spawn().map_err(|source| LocalRuntimeError::Spawn {
            program: self.binaries.server.clone(),
            source,
        })?;
        self.label.server = ProcessId::of(child.id());
        self.label.port = (self.listen == Listen::Loopback).then_some(self.port);
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
        stream::read_tail(&self.log_path(), STDERR_TAIL_BYTES)
            .map(|text| tail(&text))
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }

    async fn run_client(
        &self,
        database: Option<&str>,
        input: stream::Input,
    ) -> Result<stream::Outcome, LocalRuntimeError> {
        let mut command = self.sandbox.command(&self.binaries.client);
        match self.engine {
            Engine::Postgres => {
                // -X: no ~/.psqlrc; -w: never prompt, since stdin is the script.
                command
                    .args([
                        "-X",
                        "-q",
                        "-w",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-h",
                        sandbox::BOX,
                    ])
                    .args(["-p", &self.port.to_string(), "-U", "postgres"])
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
                    .arg(format!("--socket={}/{MARIADB_SOCKET}", sandbox::BOX))
                    .args([
                        "--protocol=SOCKET",
                        "--user=root",
                        "--batch",
                        // No \! or system, no source, tee or pager: nothing in a dump
                        // reaches the file system or a shell through the client.
                        "--sandbox",
                        "--local-infile=0",
                        "--default-character-set=utf8mb4",
                    ]);
                if let Some(database) = database {
                    command.arg(format!("--database={database}"));
                }
                // The environment rather than argv, where `ps` would show it.
                if let Some(password) = &self.password {
                    command.env("MYSQL_PWD", password);
                }
            }
        }
        stream::run(command, input, STDERR_TAIL_BYTES)
            .await
            .map_err(|source| LocalRuntimeError::Client {
                engine: self.engine,
                source,
            })
    }
}

impl Drop for LocalInstance {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // Not yet reaped, so the pid cannot have been reused.
            process::kill_group_unchecked(child.id());
            let _ = child.wait();
        }
        if !self.removed {
            let _ = label::remove_dir_settled(&self.dir);
        }
    }
}

/// Whether `psql --version` output names a release with `\restrict`.
fn psql_has_restrict(version: &str) -> bool {
    let Some(number) = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
    else {
        return false;
    };
    let mut parts = number
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return false;
    };
    match major {
        18.. => true,
        17 => minor >= 6,
        16 => minor >= 10,
        15 => minor >= 14,
        14 => minor >= 19,
        13 => minor >= 22,
        _ => false,
    }
}

/// Copies a file or a directory of plain files (a pg_dump directory archive) to `to`,
/// giving every copy to `account`. Symbolic links are refused, not followed.
fn copy_tree(from: &Path, to: &Path, account: Account) -> io::Result<()> {
    let metadata = std::fs::symlink_metadata(from)?;
    if metadata.file_type().is_symlink() {
        return Err(io::Error::other(format!(
            "{} is a symbolic link",
            from.display()
        )));
    }
    if metadata.is_dir() {
        std::fs::create_dir(to)?;
        account.chown(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()), account)?;
        }
        return Ok(());
    }
    if !metadata.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            from.display()
        )));
    }
    std::fs::copy(from, to)?;
    account.chown(to)
}

/// Creates `path` with mode 0600 and writes `contents`.
fn write_private(path: &Path, contents: &str) -> Result<(), LocalRuntimeError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let write_error = |source| LocalRuntimeError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_error)?;
    io::Write::write_all(&mut file, contents.as_bytes()).map_err(write_error)
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
        // Connection refused (or no socket yet) until the server listens; reset if it
        // stops accepting.
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
    fn psql_restricted_mode_comes_with_the_cve_2025_8714_releases() {
        assert!(psql_has_restrict(
            "psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        ));
        assert!(psql_has_restrict("psql (PostgreSQL) 17.6"));
        assert!(psql_has_restrict("psql (PostgreSQL) 18.1"));
        assert!(!psql_has_restrict("psql (PostgreSQL) 15.13"));
        assert!(!psql_has_restrict("psql (PostgreSQL) 12.22"));
        assert!(!psql_has_restrict("garbage"));
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
