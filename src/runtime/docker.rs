//! Disposable PostgreSQL, MySQL/MariaDB and Cassandra servers in Docker containers.
//!
//! A [`DockerInstance`] owns one container, started from an official image (`postgres:16`,
//! `mysql:8.4`) or any image with the same contract, with no network at all: the server
//! has no TCP listener, only a Unix socket in a host directory private to this user and
//! mounted into the container (`socket_dir`), and its superuser a fresh random password
//! unless one is given, in a file uploaded before the container starts (never on a
//! command line, nor in `docker inspect`). The container runs with no capabilities but
//! those its entrypoint needs to drop to the server's account, no new privileges, and a
//! pids limit. Durability is off. Loading runs the image's own client (`psql`,
//! `mysql`/`mariadb`) inside the container, with the host file streamed to its stdin, so
//! the host needs nothing but the engine.
//! A [`DockerCassandra`] does the same for a single Cassandra node (`cassandra:5.0`), which
//! speaks only TCP: the tool's binary, mounted read only as the container's first process,
//! carries its CQL port to a Unix socket in such a directory ([`super::bridge`]). It
//! answers CQL only as a role of its own (fresh random password, the default role dropped)
//! and JMX only with a password file of its own, runs with the same capabilities, no new
//! privileges and a pids limit, and SSTables are loaded with the image's `nodetool import`.
//! Every container is labelled (`scalardb-verify.tool`, `.run-id`, `.engine`,
//! `.socket-dir`); teardown is explicit ([`DockerInstance::stop`]), `Drop` removes
//! as a fallback, and [`sweep_containers`] removes what a killed run left, socket
//! directories included.
//!
//! This is the only module that talks to the Docker engine, and only through
//! [`client`]. It must not touch containers it did not label, publish ports beyond
//! loopback, or interpret the data it holds. The engine must run on this host: the SQL
//! server's socket is a host directory.
//!
//! - `client`: the bollard facade, one error variant per engine operation.
//! - `spec`: each engine's image contract (environment, server arguments, client command).
//! - `archive`: host files as a streamed tar, for [`DockerInstance::copy_into`].
//! - `socket_dir`: the private host directory a SQL server's socket is in.
//! - `cassandra`: [`DockerCassandra`], a node on its own loopback address.
//! - `cql`: a hand-written CQL readiness probe (the driver is `store`'s alone).

mod archive;
mod cassandra;
mod client;
mod cql;
mod socket_dir;
mod spec;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Connection as _;
use tokio::time::Instant;

pub use self::cassandra::{CASSANDRA_NATIVE_PORT, DEFAULT_CASSANDRA_IMAGE, DockerCassandra};
pub use self::client::EngineError;
use self::client::{Client, Confinement, ContainerSpec, ExecRequest};
use self::socket_dir::SocketDir;
use super::Engine;

/// Label keys every container of this tool carries.
pub const LABEL_TOOL: &str = "scalardb-verify.tool";
pub const LABEL_RUN_ID: &str = "scalardb-verify.run-id";
pub const LABEL_ENGINE: &str = "scalardb-verify.engine";
pub const LABEL_PORT: &str = "scalardb-verify.port";
pub const LABEL_CREATED_AT: &str = "scalardb-verify.created-at";
/// The loopback address a Cassandra container listens on (its ports are fixed).
pub const LABEL_ADDRESS: &str = "scalardb-verify.address";
/// The host directory a SQL container's socket is in, removed with the container.
pub const LABEL_SOCKET_DIR: &str = "scalardb-verify.socket-dir";
/// The value of [`LABEL_TOOL`].
pub const TOOL: &str = "scalardb-verify";

/// How long `docker_available` and connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The capabilities a container keeps (all others are dropped): those the images'
/// entrypoints use as root to hand the data and socket directories to the server's
/// account (`chown`) and to become that account (`gosu`, `setpriv`: setuid, setgid,
/// setgroups). Nothing else runs as root in the container but our own client commands.
const CONTAINER_CAPABILITIES: &[&str] = &["CHOWN", "SETUID", "SETGID"];
/// At most this many processes and threads in a SQL container: MySQL runs a thread per
/// connection, PostgreSQL a process, and a restore a few dozen at most.
const SQL_PIDS_LIMIT: i64 = 1024;
/// How long one readiness probe may take before it is abandoned and retried.
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// With no ready line in the log (an unfamiliar image), a server counts as ready once it has
/// answered probes this far apart without restarting in between.
const CONFIRM_AFTER: Duration = Duration::from_secs(1);
/// How long the `Drop` fallback may spend removing the container.
const DROP_REMOVE_TIMEOUT: Duration = Duration::from_secs(15);
/// How many log lines an error carries.
const LOG_TAIL_LINES: usize = 40;
/// How much of a client's stderr an error carries.
const STDERR_TAIL_BYTES: usize = 64 * 1024;
/// How much of each output stream [`DockerInstance::exec`] keeps (the end of it).
const EXEC_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;
/// Where [`DockerInstance::copy_into`] puts uploads inside the container.
const UPLOAD_PARENT: &str = "/tmp";

/// How to start a container.
#[derive(Clone)]
pub struct DockerOptions {
    /// `None`: `postgres:16` for PostgreSQL, `mysql:8.4` for the MySQL family, `cassandra:5.0`
    /// for [`DockerCassandra`]. Any image with the official images' contract works
    /// (environment, extra server arguments as the command, the engine's client or
    /// `nodetool` inside). A missing image is pulled first, outside the startup timeout.
    pub image: Option<String>,
    /// Labels the container, so `sweep_containers(Some(run_id))` finds it.
    pub run_id: String,
    /// Covers creating and starting the container and waiting until the server answers.
    pub startup_timeout: Duration,
    /// The superuser's password (`postgres`, `root`). `None`: a fresh random one for each
    /// SQL instance; there is never an instance without one. Cassandra ignores it: its own
    /// role always gets a fresh random one.
    pub superuser_password: Option<String>,
    /// The `scalardb-verify` binary that carries a Cassandra container's CQL port out of its
    /// network (its hidden `bridge` command, mounted read only as the container's first
    /// process); `None`: this process's own executable. Tests, whose executable is not the
    /// tool, name the tool's.
    pub bridge: Option<PathBuf>,
}

impl DockerOptions {
    /// The default image, a 120-second startup timeout (a first start initializes the data
    /// directory), and a random password.
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            image: None,
            run_id: run_id.into(),
            startup_timeout: Duration::from_secs(120),
            superuser_password: None,
            bridge: None,
        }
    }
}

impl fmt::Debug for DockerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerOptions")
            .field("image", &self.image)
            .field("run_id", &self.run_id)
            .field("startup_timeout", &self.startup_timeout)
            .field(
                "superuser_password",
                &self.superuser_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What went wrong in the docker runtime: one variant per engine operation, then the
/// database-level failures. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum DockerRuntimeError {
    #[error("connect to the Docker engine at {host}")]
    Connect {
        host: String,
        #[source]
        source: EngineError,
    },
    #[error(
        "reach the Docker engine at {host} within {timeout:?} (is it running? scripts/install-docker starts one)"
    )]
    Unreachable {
        host: String,
        timeout: Duration,
        #[source]
        source: Option<EngineError>,
    },
    #[error("inspect the image {image}")]
    InspectImage {
        image: String,
        #[source]
        source: EngineError,
    },
    #[error(
        "pull the image {image}, which is not present locally (scripts/build-test-images builds the test images)"
    )]
    PullImage {
        image: String,
        #[source]
        source: EngineError,
    },
    #[error("reserve a free port on 127.0.0.1")]
    FreePort {
        #[source]
        source: io::Error,
    },
    #[error("generate a password from /dev/urandom")]
    RandomPassword {
        #[source]
        source: io::Error,
    },
    #[error("make a private socket directory for {engine}")]
    CreateSocketDir {
        engine: Engine,
        #[source]
        source: io::Error,
    },
    #[error("make a private socket directory for a Cassandra container")]
    CreateCassandraSocketDir {
        #[source]
        source: io::Error,
    },
    #[error("find this program's own executable, which carries a Cassandra container's port")]
    NoBridge {
        #[source]
        source: io::Error,
    },
    #[error("open a loopback port for the Cassandra container's CQL socket {}", socket.display())]
    HostPort {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove the socket directory {}", path.display())]
    RemoveSocketDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create the container {name} from {image}")]
    CreateContainer {
        image: String,
        name: String,
        #[source]
        source: EngineError,
    },
    #[error("start the container {container}")]
    StartContainer {
        container: String,
        #[source]
        source: EngineError,
    },
    #[error("inspect the container {container}")]
    InspectContainer {
        container: String,
        #[source]
        source: EngineError,
    },
    #[error("read the log of the container {container}")]
    ContainerLogs {
        container: String,
        #[source]
        source: EngineError,
    },
    #[error("create an exec of `{command}` in the container {container}")]
    CreateExec {
        container: String,
        command: String,
        #[source]
        source: EngineError,
    },
    #[error("run `{command}` in the container {container}")]
    Exec {
        container: String,
        command: String,
        #[source]
        source: EngineError,
    },
    #[error("feed the input of `{command}` in the container {container}")]
    ExecInput {
        container: String,
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("get the exit code of `{command}` in the container {container}")]
    InspectExec {
        container: String,
        command: String,
        #[source]
        source: Option<EngineError>,
    },
    #[error("upload into {dir} in the container {container}")]
    Upload {
        container: String,
        dir: String,
        #[source]
        source: EngineError,
    },
    #[error("remove the container {container}")]
    RemoveContainer {
        container: String,
        #[source]
        source: EngineError,
    },
    #[error("list the containers labelled {LABEL_TOOL}={TOOL}")]
    ListContainers {
        #[source]
        source: EngineError,
    },
    #[error("{what} for {engine} from {image} within {timeout:?}")]
    Timeout {
        engine: Engine,
        image: String,
        what: &'static str,
        timeout: Duration,
    },
    #[error(
        "start {engine} in the container {container}: it exited during startup ({status}); its log ends with:\n{log_tail}"
    )]
    Exited {
        engine: Engine,
        container: String,
        status: String,
        log_tail: String,
    },
    #[error(
        "get {engine} in the container {container} to answer on its socket {} within {timeout:?}; its log ends with:\n{log_tail}",
        socket.display()
    )]
    NotReady {
        engine: Engine,
        container: String,
        socket: PathBuf,
        timeout: Duration,
        log_tail: String,
    },
    #[error("probe {engine} on its socket {}", socket.display())]
    Probe {
        engine: Engine,
        socket: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("read {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("archive {} for the container {container}", path.display())]
    Archive {
        path: PathBuf,
        container: String,
        #[source]
        source: io::Error,
    },
    #[error("load {} into {engine} in the container {container} (exit code {exit_code}):\n{stderr}", path.display())]
    LoadSql {
        engine: Engine,
        container: String,
        path: PathBuf,
        database: Option<String>,
        exit_code: i64,
        stderr: String,
    },
    #[error(
        "execute sql on {engine} in the container {container} (exit code {exit_code}):\n{stderr}"
    )]
    ExecuteSql {
        engine: Engine,
        container: String,
        database: Option<String>,
        exit_code: i64,
        stderr: String,
    },
    #[error("restore {} with pg_restore in the container {container} (exit code {exit_code}):\n{stderr}", path.display())]
    PgRestore {
        container: String,
        path: PathBuf,
        database: String,
        exit_code: i64,
        stderr: String,
    },
    #[error("find a free loopback address for Cassandra after {attempts} tries")]
    FreeAddress {
        attempts: u32,
        #[source]
        source: io::Error,
    },
    #[error("{what} for Cassandra from {image} within {timeout:?}")]
    CassandraTimeout {
        image: String,
        what: &'static str,
        timeout: Duration,
    },
    #[error(
        "start Cassandra in the container {container}: it exited during startup ({status}); its log ends with:\n{log_tail}"
    )]
    CassandraExited {
        container: String,
        status: String,
        log_tail: String,
    },
    #[error(
        "get Cassandra in the container {container} to answer CQL on {contact_point} within {timeout:?} (last probe: {last_probe}); its log ends with:\n{log_tail}"
    )]
    CassandraNotReady {
        container: String,
        contact_point: String,
        timeout: Duration,
        last_probe: String,
        log_tail: String,
    },
    #[error("keep the Cassandra node in the container {container} to this tool alone")]
    CassandraLock {
        container: String,
        #[source]
        source: Box<super::cassandra::CassandraRuntimeError>,
    },
    #[error(
        "keep the Cassandra node in the container {container} to this tool alone: it answers \
         CQL without a password (its image ignored -Dcassandra.settings.authenticator)"
    )]
    CassandraUnlocked { container: String },
    #[error("list the SSTable components in {}", dir.display())]
    ListSstables {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "import the SSTables of {} into {table} in the container {container} with nodetool (exit code {exit_code}):\n{output}",
        dir.display()
    )]
    ImportSstables {
        container: String,
        /// `keyspace.table`.
        table: String,
        dir: PathBuf,
        exit_code: i64,
        output: String,
    },
}

/// What a command run with [`DockerInstance::exec`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    /// At most the last 16 MiB, decoded lossily.
    pub stdout: String,
    /// At most the last 16 MiB, decoded lossily.
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// A container of this tool, as listed by [`labelled_containers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledContainer {
    pub id: String,
    pub name: Option<String>,
    pub image: Option<String>,
    /// `running`, `exited`, ...
    pub state: Option<String>,
    pub run_id: Option<String>,
    pub engine: Option<String>,
    pub port: Option<u16>,
    /// A SQL container's socket directory on the host.
    pub socket_dir: Option<PathBuf>,
}

/// A database server running in a container with no network, reached through its socket
/// in a private host directory.
///
/// Call [`stop`](Self::stop) when done; dropping it instead removes the container on a
/// helper thread, blocking the dropping thread for up to 15 s, and then the directory.
pub struct DockerInstance {
    client: Client,
    engine: Engine,
    image: String,
    container_id: String,
    name: String,
    socket_dir: SocketDir,
    password: String,
    removed: bool,
    uploads: AtomicU64,
}

impl fmt::Debug for DockerInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerInstance")
            .field("engine", &self.engine)
            .field("image", &self.image)
            .field("container_id", &self.container_id)
            .field("name", &self.name)
            .field("socket_dir", &self.socket_dir.path())
            .field("password", &"<redacted>")
            .field("removed", &self.removed)
            .finish_non_exhaustive()
    }
}

/// Why one attempt to bring a container's server up failed.
enum StartFailure {
    /// Someone else bound the address or port first; another may work.
    Taken(DockerRuntimeError),
    Fatal(DockerRuntimeError),
}

/// A created container on its way up: what [`start_with_retries`] needs of each kind.
trait StartingContainer: Sized {
    fn client(&self) -> &Client;
    fn container_id(&self) -> &str;
    /// Waits until the started container's server serves, within `deadline`.
    async fn wait_until_serving(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), StartFailure>;
    /// Removes the container.
    async fn remove(self) -> Result<(), DockerRuntimeError>;
}

/// The client, with `image` present (pulled first, outside any startup deadline, if missing).
async fn client_with_image(image: &str) -> Result<Client, DockerRuntimeError> {
    let client = Client::connect(CONNECT_TIMEOUT).await?;
    if !client.image_exists(image).await? {
        client.pull(image).await?;
    }
    Ok(client)
}

/// Creates a container with `create` (which picks a fresh address or port each time),
/// starts it and waits until it serves. An attempt whose address or port was taken is
/// removed and retried, up to `attempts` in all; any other failure removes the container
/// and is final.
async fn start_with_retries<C: StartingContainer>(
    attempts: u32,
    deadline: Instant,
    timeout: Duration,
    mut create: impl AsyncFnMut() -> Result<C, DockerRuntimeError>,
) -> Result<C, DockerRuntimeError> {
    let mut attempt = 1;
    loop {
        // From here on, an early return drops the container, which removes it.
        let mut container = create().await?;
        let started = container
            .client()
            .start_container(container.container_id())
            .await;
        let failure = match started {
            Ok(()) => match container.wait_until_serving(deadline, timeout).await {
                Ok(()) => return Ok(container),
                Err(failure) => failure,
            },
            Err(e) => StartFailure::Fatal(e),
        };
        // Removed before retrying or failing, so a retry never finds a stale container.
        let removed = container.remove().await;
        match failure {
            StartFailure::Taken(_) if attempt < attempts => {
                removed?;
                attempt += 1;
            }
            StartFailure::Taken(e) | StartFailure::Fatal(e) => return Err(e),
        }
    }
}

/// How a container that stopped during startup ended: its status and exit code.
fn exit_status(state: client::ContainerState) -> String {
    match state.exit_code {
        Some(code) => format!("{}, exit code {code}", state.status),
        None => state.status,
    }
}

impl DockerInstance {
    /// Starts a labelled container of `opts.image` (pulling it first if missing) with no
    /// network and the server on a socket in a fresh private host directory, and waits
    /// until it answers `SELECT 1` there and its log says it is ready, within
    /// `opts.startup_timeout`. If the container exits during startup, fails at once with the
    /// end of its log; the container and the directory are removed on every failure.
    pub async fn start(engine: Engine, opts: &DockerOptions) -> Result<Self, DockerRuntimeError> {
        let image = opts
            .image
            .clone()
            .unwrap_or_else(|| spec::default_image(engine).to_owned());
        let client = client_with_image(&image).await?;
        let password = match &opts.superuser_password {
            Some(password) => password.clone(),
            None => random_password()?,
        };
        let deadline = Instant::now() + opts.startup_timeout;
        // One attempt: nothing on the host can take a socket in our own directory.
        start_with_retries(1, deadline, opts.startup_timeout, async || {
            let socket_dir = SocketDir::create(&spec::socket_name(engine))
                .map_err(|source| DockerRuntimeError::CreateSocketDir { engine, source })?;
            let spec = container_spec(engine, &image, &socket_dir, opts);
            let confinement = Confinement::isolated(
                (
                    socket_dir.socket_dir().to_string_lossy().into_owned(),
                    spec::socket_dir(engine).to_owned(),
                ),
                CONTAINER_CAPABILITIES,
                SQL_PIDS_LIMIT,
            );
            let created = tokio::time::timeout_at(
                deadline,
                client.create_confined_container(&spec, &confinement),
            )
            .await
            .map_err(|_elapsed| DockerRuntimeError::Timeout {
                engine,
                image: image.clone(),
                what: "create a container",
                timeout: opts.startup_timeout,
            })
            .and_then(|created| created);
            let container_id = match created {
                Ok(id) => id,
                Err(e) => {
                    let _ = socket_dir.remove();
                    return Err(e);
                }
            };
            // From here on, an early return drops the instance, which removes both.
            let instance = Self {
                client: client.clone(),
                engine,
                image: image.clone(),
                container_id,
                name: spec.name,
                socket_dir,
                password: password.clone(),
                removed: false,
                uploads: AtomicU64::new(0),
            };
            let secret =
                archive::secret_archive(spec::SECRET_DIR, spec::SECRET_FILE, password.as_bytes())
                    .map_err(|source| DockerRuntimeError::Archive {
                    path: PathBuf::from(spec::password_file()),
                    container: instance.name.clone(),
                    source,
                })?;
            client
                .upload_bytes(&instance.container_id, "/", secret)
                .await?;
            Ok(instance)
        })
        .await
    }

    /// The sqlx URL of the superuser on the default database through the socket, e.g.
    /// `postgres://postgres:PW@localhost:5433/postgres?host=/tmp/scalardb-verify-0/docker-Ab12/socket`
    /// or `mysql://root:PW@localhost/mysql?socket=/tmp/.../socket/mysqld.sock`.
    pub fn url(&self) -> String {
        self.url_for(self.engine.default_database())
    }

    /// The sqlx URL of the superuser on `database`, through the socket.
    pub fn url_for(&self, database: &str) -> String {
        let (scheme, key, socket) = match self.engine {
            Engine::Postgres => ("postgres", "host", self.socket_dir.socket_dir()),
            Engine::MariaDb => (
                "mysql",
                "socket",
                self.socket_dir
                    .socket_dir()
                    .join(spec::socket_name(self.engine)),
            ),
        };
        // PostgreSQL's port names its socket file; MySQL's is unused on a socket.
        let authority = match self.engine {
            Engine::Postgres => format!("localhost:{}", spec::POSTGRES_PORT),
            Engine::MariaDb => "localhost".to_owned(),
        };
        let mut url = url::Url::parse(&format!("{scheme}://{authority}/"))
            .expect("a scheme, a host and a port always make a valid URL");
        // Neither can fail on a URL with a host.
        let _ = url.set_username(self.engine.superuser());
        let _ = url.set_password(Some(&self.password));
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push(database);
        }
        url.set_query(Some(&format!(
            "{key}={}",
            query_value(&socket.to_string_lossy())
        )));
        url.into()
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The host directory the server's socket is in (private to this user), which `url`
    /// names.
    pub fn socket_dir(&self) -> PathBuf {
        self.socket_dir.socket_dir()
    }

    /// The server's socket, on the host.
    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir
            .socket_dir()
            .join(spec::socket_name(self.engine))
    }

    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    pub fn container_name(&self) -> &str {
        &self.name
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    /// Runs the SQL file at `path` with the image's own client (`psql`, `mariadb` or
    /// `mysql`) inside the container as the superuser, streaming the file to its stdin and
    /// stopping at the first error. `database: None` means `postgres` on PostgreSQL and no
    /// database selected on MySQL and MariaDB (so a dump's own `USE` applies).
    pub async fn load_sql_file(
        &self,
        path: &Path,
        database: Option<&str>,
    ) -> Result<(), DockerRuntimeError> {
        let file =
            tokio::fs::File::open(path)
                .await
                .map_err(|source| DockerRuntimeError::ReadFile {
                    path: path.to_path_buf(),
                    source,
                })?;
        let result = self.run_sql_client(database, Box::new(file)).await?;
        if result.exit_code == 0 {
            return Ok(());
        }
        Err(DockerRuntimeError::LoadSql {
            engine: self.engine,
            container: self.name.clone(),
            path: path.to_path_buf(),
            database: database.map(str::to_owned),
            exit_code: result.exit_code,
            stderr: tail_lines(&String::from_utf8_lossy(&result.stderr)),
        })
    }

    /// Runs `sql` (any number of statements) with the image's own client: `execute_sql_in(None,
    /// sql)`.
    pub async fn execute_sql(&self, sql: &str) -> Result<(), DockerRuntimeError> {
        self.execute_sql_in(None, sql).await
    }

    /// Runs `sql` with the image's own client in `database`, as
    /// [`load_sql_file`](Self::load_sql_file) runs a file.
    pub async fn execute_sql_in(
        &self,
        database: Option<&str>,
        sql: &str,
    ) -> Result<(), DockerRuntimeError> {
        let result = self
            .run_sql_client(database, Box::new(sql.as_bytes()))
            .await?;
        if result.exit_code == 0 {
            return Ok(());
        }
        Err(DockerRuntimeError::ExecuteSql {
            engine: self.engine,
            container: self.name.clone(),
            database: database.map(str::to_owned),
            exit_code: result.exit_code,
            stderr: tail_lines(&String::from_utf8_lossy(&result.stderr)),
        })
    }

    /// Runs `cmd` inside the container as the server's account (`postgres`, `mysql`), never
    /// root, and waits for it. The
    /// engine's tools reach the server through its socket with no flags: `PGHOST`, `PGPORT`,
    /// `PGUSER` and `PGPASSWORD` are set for PostgreSQL; `MYSQL_UNIX_PORT` and `MYSQL_PWD`
    /// for MySQL and MariaDB, whose clients also need `--user=root` (they take the user
    /// from the account they run as, `mysql`). A non-zero exit code is an `Ok` result, for the caller to
    /// judge.
    pub async fn exec(&self, cmd: &[&str]) -> Result<ExecOutput, DockerRuntimeError> {
        exec_as(
            &self.client,
            &self.container_id,
            Some(spec::client_user(self.engine)),
            cmd,
            self.client_env(),
        )
        .await
    }

    /// Uploads the file or directory at `host_path` into a fresh directory of the container
    /// (under `/tmp`, readable by every user there), returning its path inside the
    /// container: `/tmp/scalardb-verify-upload-N/<file name>`. Streams: a large archive is
    /// never held in memory.
    pub async fn copy_into(&self, host_path: &Path) -> Result<String, DockerRuntimeError> {
        let read_error = |source| DockerRuntimeError::ReadFile {
            path: host_path.to_path_buf(),
            source,
        };
        tokio::fs::metadata(host_path).await.map_err(read_error)?;
        let name = host_path
            .file_name()
            .map_or_else(|| "upload".to_owned(), |n| n.to_string_lossy().into_owned());
        let top = format!(
            "scalardb-verify-upload-{}",
            self.uploads.fetch_add(1, Ordering::Relaxed)
        );
        let (tar, builder) =
            archive::tar_stream(host_path.to_path_buf(), top.clone(), name.clone());
        let uploaded = self
            .client
            .upload(&self.container_id, UPLOAD_PARENT, tar)
            .await;
        let archive_error = |source| DockerRuntimeError::Archive {
            path: host_path.to_path_buf(),
            container: self.name.clone(),
            source,
        };
        // The archive's own error first: an upload cut short by it only says "ended early".
        builder
            .await
            .map_err(|e| archive_error(io::Error::other(e)))?
            .map_err(archive_error)?;
        uploaded?;
        Ok(format!("{UPLOAD_PARENT}/{top}/{name}"))
    }

    /// Restores a `pg_dump` custom, directory or tar archive into `database` with the
    /// image's own `pg_restore`, `jobs` at a time (give 1 for a tar archive), without owners
    /// or privileges, whose roles a disposable instance does not have. The archive is
    /// uploaded first and removed from the container afterwards.
    pub async fn pg_restore(
        &self,
        archive: &Path,
        database: &str,
        jobs: usize,
    ) -> Result<(), DockerRuntimeError> {
        let inside = self.copy_into(archive).await?;
        let jobs = format!("--jobs={}", jobs.max(1));
        let dbname = format!("--dbname={database}");
        let restored = self
            .exec(&[
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "-w",
                &jobs,
                &dbname,
                &inside,
            ])
            .await;
        if let Some(dir) = Path::new(&inside).parent().and_then(Path::to_str) {
            // Best effort: the container and its files go at `stop` anyway. As root, who
            // owns the upload; our own command, never the backup's.
            let _ = exec_as(
                &self.client,
                &self.container_id,
                Some("root"),
                &["rm", "-rf", dir],
                Vec::new(),
            )
            .await;
        }
        let restored = restored?;
        if restored.success() {
            return Ok(());
        }
        Err(DockerRuntimeError::PgRestore {
            container: self.name.clone(),
            path: archive.to_path_buf(),
            database: database.to_owned(),
            exit_code: restored.exit_code,
            stderr: tail_lines(&restored.stderr),
        })
    }

    /// The last lines of the container's log (the server's output).
    pub async fn log_tail(&self, lines: usize) -> Result<String, DockerRuntimeError> {
        self.client.logs_tail(&self.container_id, lines).await
    }

    /// Kills the container and removes it with its anonymous volumes, then its socket
    /// directory. The data is disposable, so there is no clean shutdown to wait for.
    pub async fn stop(mut self) -> Result<(), DockerRuntimeError> {
        self.client.remove_container(&self.container_id).await?;
        self.removed = true;
        self.socket_dir
            .remove()
            .map_err(|source| DockerRuntimeError::RemoveSocketDir {
                path: self.socket_dir.path().to_owned(),
                source,
            })
    }

    /// Whether the real server answers: `Ok(false)` is the official images' temporary
    /// setup server, which MySQL's and MariaDB's run on the same socket.
    async fn probe(&self) -> Result<bool, sqlx::Error> {
        let url = self.url();
        match self.engine {
            Engine::Postgres => {
                let mut conn = sqlx::postgres::PgConnection::connect(&url).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                conn.close().await?;
                Ok(true)
            }
            Engine::MariaDb => {
                let mut conn = sqlx::mysql::MySqlConnection::connect(&url).await?;
                let zone: String = sqlx::query_scalar("SELECT CAST(@@global.time_zone AS CHAR)")
                    .fetch_one(&mut conn)
                    .await?;
                conn.close().await?;
                Ok(zone == spec::MYSQL_TIME_ZONE)
            }
        }
    }

    async fn log_says_ready(&self) -> Result<bool, DockerRuntimeError> {
        let log = self.client.logs_tail(&self.container_id, 200).await?;
        Ok(log.contains(spec::ready_line(self.engine)))
    }

    async fn log_tail_or_note(&self) -> String {
        match self
            .client
            .logs_tail(&self.container_id, LOG_TAIL_LINES)
            .await
        {
            Ok(log) => log.trim_end().to_owned(),
            Err(e) => format!("(no log: {e})"),
        }
    }

    fn client_env(&self) -> Vec<String> {
        spec::client_env(self.engine, &self.password)
    }

    async fn run_sql_client(
        &self,
        database: Option<&str>,
        stdin: Box<dyn tokio::io::AsyncRead + Send + Unpin + '_>,
    ) -> Result<client::ExecResult, DockerRuntimeError> {
        self.client
            .exec(
                &self.container_id,
                ExecRequest {
                    cmd: spec::sql_client(self.engine, database),
                    env: self.client_env(),
                    user: Some(spec::client_user(self.engine).to_owned()),
                    stdin: Some(stdin),
                    limit: STDERR_TAIL_BYTES,
                },
            )
            .await
    }
}

impl StartingContainer for DockerInstance {
    fn client(&self) -> &Client {
        &self.client
    }

    fn container_id(&self) -> &str {
        &self.container_id
    }

    /// Probes the server until it answers `SELECT 1` and its log says it is ready, it
    /// exits, or the deadline passes.
    async fn wait_until_serving(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), StartFailure> {
        let fatal = StartFailure::Fatal;
        let mut pause = Duration::from_millis(20);
        let mut answering_since: Option<Instant> = None;
        loop {
            let state = self
                .client
                .container_state(&self.container_id)
                .await
                .map_err(fatal)?;
            if !state.running {
                let log_tail = self.log_tail_or_note().await;
                let port_taken = log_tail.contains("Address already in use");
                let error = DockerRuntimeError::Exited {
                    engine: self.engine,
                    container: self.name.clone(),
                    status: exit_status(state),
                    log_tail,
                };
                return Err(if port_taken {
                    StartFailure::Taken(error)
                } else {
                    StartFailure::Fatal(error)
                });
            }
            // Capped per attempt, so one connection stuck half-open does not use up the
            // whole deadline.
            let attempt_deadline = (Instant::now() + PROBE_ATTEMPT_TIMEOUT).min(deadline);
            match tokio::time::timeout_at(attempt_deadline, self.probe()).await {
                Ok(Ok(false)) => answering_since = None,
                Ok(Ok(true)) => {
                    let now = Instant::now();
                    let since = *answering_since.get_or_insert(now);
                    if now - since >= CONFIRM_AFTER || self.log_says_ready().await.map_err(fatal)? {
                        return Ok(());
                    }
                }
                // A server that answered and then stopped answering is restarting.
                Ok(Err(e)) if is_transient(self.engine, &e) => answering_since = None,
                Ok(Err(source)) => {
                    return Err(fatal(DockerRuntimeError::Probe {
                        engine: self.engine,
                        socket: self.socket_path(),
                        source,
                    }));
                }
                Err(_elapsed) => answering_since = None,
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(fatal(DockerRuntimeError::NotReady {
                    engine: self.engine,
                    container: self.name.clone(),
                    socket: self.socket_path(),
                    timeout,
                    log_tail: self.log_tail_or_note().await,
                }));
            }
            // A short backoff between probes, not a guess at how long startup takes.
            tokio::time::sleep_until((now + pause).min(deadline)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    async fn remove(self) -> Result<(), DockerRuntimeError> {
        self.stop().await
    }
}

impl Drop for DockerInstance {
    fn drop(&mut self) {
        if !self.removed {
            remove_on_drop(self.container_id.clone());
            // Best effort, like the removal: the sweep finds what is left by its label.
            let _ = self.socket_dir.remove();
        }
    }
}

/// The `Drop` fallback: removes the container `id`, blocking for up to 15 s. A fresh client
/// on a fresh runtime in its own thread: the owner may be dropped inside an async context
/// (where blocking on this one's runtime would deadlock) or while that runtime shuts down
/// (where a spawned task would never run).
fn remove_on_drop(id: String) {
    let remover = std::thread::Builder::new()
        .name("scalardb-verify-docker-drop".to_owned())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let _ = tokio::time::timeout(DROP_REMOVE_TIMEOUT, async {
                    let client = Client::connect(CONNECT_TIMEOUT).await?;
                    client.remove_container(&id).await
                })
                .await;
            });
        });
    if let Ok(remover) = remover {
        // A panic in the helper is ignored: Drop must not panic.
        let _ = remover.join();
    }
}

/// Runs `cmd` in the container `id` as `user` (`None`: the image's default user) with `env`,
/// keeping the end of each output stream.
async fn exec_as(
    client: &Client,
    id: &str,
    user: Option<&str>,
    cmd: &[&str],
    env: Vec<String>,
) -> Result<ExecOutput, DockerRuntimeError> {
    let result = client
        .exec(
            id,
            ExecRequest {
                cmd: cmd.iter().map(|&arg| arg.to_owned()).collect(),
                env,
                user: user.map(str::to_owned),
                stdin: None,
                limit: EXEC_OUTPUT_LIMIT,
            },
        )
        .await?;
    Ok(ExecOutput {
        exit_code: result.exit_code,
        stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
    })
}

/// Whether a Docker engine answers at `DOCKER_HOST` (or `/var/run/docker.sock`) within
/// about two seconds: for `--runtime auto`.
pub async fn docker_available() -> bool {
    let ping = async {
        match Client::connect(CONNECT_TIMEOUT).await {
            Ok(client) => client.ping(CONNECT_TIMEOUT).await,
            Err(_) => false,
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, ping)
        .await
        .unwrap_or(false)
}

/// Every container labelled by this tool, running or not; with `run_id`, only that run's.
pub async fn labelled_containers(
    run_id: Option<&str>,
) -> Result<Vec<LabelledContainer>, DockerRuntimeError> {
    let client = Client::connect(CONNECT_TIMEOUT).await?;
    let listed = client.list_labelled(&label_filter(run_id)).await?;
    Ok(listed
        .into_iter()
        .map(|c| LabelledContainer {
            run_id: c.labels.get(LABEL_RUN_ID).cloned(),
            engine: c.labels.get(LABEL_ENGINE).cloned(),
            port: c.labels.get(LABEL_PORT).and_then(|p| p.parse().ok()),
            socket_dir: c.labels.get(LABEL_SOCKET_DIR).map(PathBuf::from),
            id: c.id,
            name: c.name,
            image: c.image,
            state: c.state,
        })
        .collect())
}

/// Removes (kills first if running) every container labelled by this tool, with its
/// anonymous volumes and its socket directory (only if that is a directory this module
/// makes in this user's private parent, whatever the label says); with `run_id`, only that
/// run's. Returns the ids of the containers it removed (not those a concurrent removal got
/// to first).
///
/// With `None` this includes the containers of runs still going, so it is for when none is:
/// after a killed run, or in CI. A run cleaning up after itself passes its own id.
pub async fn sweep_containers(run_id: Option<&str>) -> Result<Vec<String>, DockerRuntimeError> {
    let client = Client::connect(CONNECT_TIMEOUT).await?;
    let listed = client.list_labelled(&label_filter(run_id)).await?;
    let mut removed = Vec::new();
    for container in listed {
        // The engine filtered on the labels; checked again so that a filter the engine
        // ignored can never widen a sweep to containers that are not ours.
        if container.labels.get(LABEL_TOOL).map(String::as_str) != Some(TOOL) {
            continue;
        }
        if run_id
            .is_some_and(|id| container.labels.get(LABEL_RUN_ID).map(String::as_str) != Some(id))
        {
            continue;
        }
        let was_there = client.remove_container(&container.id).await?;
        if let Some(dir) = container.labels.get(LABEL_SOCKET_DIR) {
            let path = PathBuf::from(dir);
            socket_dir::remove(&path)
                .map_err(|source| DockerRuntimeError::RemoveSocketDir { path, source })?;
        }
        if was_there {
            removed.push(container.id);
        }
    }
    Ok(removed)
}

fn label_filter(run_id: Option<&str>) -> Vec<String> {
    let mut labels = vec![format!("{LABEL_TOOL}={TOOL}")];
    if let Some(run_id) = run_id {
        labels.push(format!("{LABEL_RUN_ID}={run_id}"));
    }
    labels
}

/// The labels every container of this tool carries.
fn labels(run_id: &str, engine: impl fmt::Display, port: u16) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_TOOL.to_owned(), TOOL.to_owned()),
        (LABEL_RUN_ID.to_owned(), run_id.to_owned()),
        (LABEL_ENGINE.to_owned(), engine.to_string()),
        (LABEL_PORT.to_owned(), port.to_string()),
        (
            LABEL_CREATED_AT.to_owned(),
            jiff::Timestamp::now().to_string(),
        ),
    ])
}

fn container_spec(
    engine: Engine,
    image: &str,
    socket_dir: &SocketDir,
    opts: &DockerOptions,
) -> ContainerSpec {
    let port = spec::port(engine);
    let mut labels = labels(&opts.run_id, engine, port);
    labels.insert(
        LABEL_SOCKET_DIR.to_owned(),
        socket_dir.path().to_string_lossy().into_owned(),
    );
    ContainerSpec {
        name: container_name(&opts.run_id, engine, port),
        image: image.to_owned(),
        entrypoint: None,
        hostname: None,
        cmd: spec::server_args(engine),
        env: spec::server_env(engine),
        labels,
        stop_signal: spec::stop_signal(engine).map(str::to_owned),
    }
}

/// 32 random bytes from the kernel, as 64 hex digits: a password for one instance.
fn random_password() -> Result<String, DockerRuntimeError> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|source| DockerRuntimeError::RandomPassword { source })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `value` %-encoded for a URL's query, leaving a path's `/` readable.
fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `scalardb-verify-<run id>-<engine>-<place>-<unique>` (the place is the port, or a
/// Cassandra node's address): readable in `docker ps`, unique within this process and,
/// through the pid, across processes.
fn container_name(run_id: &str, engine: impl fmt::Display, place: impl fmt::Display) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let safe: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!(
        "{TOOL}-{safe}-{engine}-{place}-{:x}{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port on 127.0.0.1 that was free a moment ago (for a Cassandra node's JMX). Another
/// process may take it before the server binds it; `start` then retries with another.
fn free_port() -> Result<u16, DockerRuntimeError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|source| DockerRuntimeError::FreePort { source })?;
    let port = listener
        .local_addr()
        .map_err(|source| DockerRuntimeError::FreePort { source })?
        .port();
    Ok(port)
}

/// Errors a starting server gives before it accepts queries.
fn is_transient(engine: Engine, error: &sqlx::Error) -> bool {
    match error {
        // No socket yet, or refused until the server listens; reset if it stops accepting.
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => match engine {
            // 57P03: PostgreSQL accepts connections while still starting up, and says so.
            Engine::Postgres => db.code().as_deref() == Some("57P03"),
            // 28000: the official images' temporary setup server, before it has given root
            // our password. The password is ours, so it is never wrong for the real one.
            Engine::MariaDb => db.code().as_deref() == Some("28000"),
        },
        _ => false,
    }
}

/// The last lines of `text`, for an error message.
fn tail_lines(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_are_valid_and_unique() {
        let a = container_name("run 1/é", Engine::Postgres, 5432);
        let b = container_name("run 1/é", Engine::Postgres, 5432);
        assert_ne!(a, b);
        assert!(
            a.starts_with("scalardb-verify-run_1__-postgres-5432-"),
            "{a}"
        );
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        );
    }

    #[test]
    fn every_container_is_labelled_with_tool_run_and_engine() {
        let dir = SocketDir::create("mysqld.sock").unwrap();
        let spec = container_spec(
            Engine::MariaDb,
            "mysql:8.4",
            &dir,
            &DockerOptions::new("r1"),
        );
        assert_eq!(spec.labels[LABEL_TOOL], TOOL);
        assert_eq!(spec.labels[LABEL_RUN_ID], "r1");
        assert_eq!(spec.labels[LABEL_ENGINE], "mariadb");
        assert_eq!(spec.labels[LABEL_PORT], "3306");
        assert_eq!(spec.labels[LABEL_SOCKET_DIR], dir.path().to_str().unwrap());
        // No password anywhere in what `docker inspect` shows.
        let opts = DockerOptions {
            superuser_password: Some("hunter2".into()),
            ..DockerOptions::new("r1")
        };
        let spec = container_spec(Engine::Postgres, "postgres:16", &dir, &opts);
        assert!(!format!("{:?} {:?}", spec.cmd, spec.env).contains("hunter2"));
        dir.remove().unwrap();
    }

    #[test]
    fn passwords_are_fresh_and_long() {
        let (a, b) = (random_password().unwrap(), random_password().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn query_values_keep_slashes_and_escape_the_rest() {
        assert_eq!(query_value("/tmp/a b&c=d%"), "/tmp/a%20b%26c%3Dd%25");
    }

    #[test]
    fn sweep_filters_on_the_tool_and_the_run() {
        assert_eq!(label_filter(None), ["scalardb-verify.tool=scalardb-verify"]);
        assert_eq!(
            label_filter(Some("r")),
            [
                "scalardb-verify.tool=scalardb-verify",
                "scalardb-verify.run-id=r"
            ]
        );
    }

    #[test]
    fn options_debug_hides_the_password() {
        let mut opts = DockerOptions::new("r");
        opts.superuser_password = Some("hunter2".into());
        assert!(!format!("{opts:?}").contains("hunter2"));
    }

    #[test]
    fn instances_and_errors_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<DockerInstance>();
        send_sync::<DockerRuntimeError>();
    }
}
