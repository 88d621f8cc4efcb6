//! Disposable Apache Cassandra nodes run from the jars `scripts/install-cassandra` fetched
//! from Maven Central (`java -cp 'lib/*' org.apache.cassandra.service.CassandraDaemon`).
//!
//! A [`CassandraInstance`] owns one JVM, a temporary directory (config, data, commit log,
//! log, label) and free ports on its loopback address. It is tuned for speed, not safety:
//! periodic commit-log sync, no auto snapshots, few tokens, a small heap. Readiness is a
//! real CQL answer. Teardown is
//! explicit ([`CassandraInstance::stop`]); `Drop` kills and removes as a fallback;
//! [`sweep_cassandra`] removes what a killed run left.
//!
//! The directory label mirrors `local/label.rs` (same prefix, same fields) with engine
//! `cassandra`, which the SQL runtime's sweep does not parse and so leaves alone.
//!
//! Locked (the default, [`CassandraOptions::locked`]), a node answers only its owner: CQL
//! through PasswordAuthenticator and CassandraAuthorizer as a role of its own with a fresh
//! random password, the default `cassandra` role dropped as soon as the node answers (the
//! short window before that is measured, [`CassandraInstance::default_role_window`], and
//! anything a client could leave in it is looked for, [`CassandraInstance::check_locked`]);
//! JMX on loopback with a password file of its own (mode 0600), which nodetool reads with
//! `-pwf`, never from its command line.
//!
//! The JVM and every nodetool run in a [`Sandbox`]: a fresh account without capabilities
//! (when the tool is root), `/usr` and the jars read only, the config read only, and the
//! node's box (data, JMX password) the only place it may write. A locked node also has a
//! network of its own ([`Network::Isolated`]): it listens on its own loopback's usual ports
//! and can reach nothing on the machine. Its CQL and JMX ports come out through Unix sockets
//! in the tool's directory ([`bridge`](super::bridge)): CQL to a loopback port of the host
//! that only this process may connect to, JMX into nodetool's own sandbox, where a bridge
//! listens on the port nodetool expects. An unlocked node (a test cluster of several nodes,
//! which reach each other over TCP) shares the host's network.
//! Files the tool puts in the box while the JVM runs (the SSTables to import) are created
//! one path component at a time under directory handles, never following a link, so a
//! node taken over by a crafted SSTable cannot redirect them onto the host.
//!
//! Imports are checked against what was staged: nodetool exits 0 when the node skipped
//! every file, so each `…-Data.db` must have left the staging directory. Snapshot files are
//! copied only as regular files opened without following links.
//!
//! This module must not listen anywhere but loopback, nor interpret the data it holds; it
//! talks CQL only through `store` (the one scylla user).

use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::local::SweepScope;
use super::sandbox::{self, Account, Network, Sandbox, SandboxError};
use crate::backup::cassandra::{NOT_COMPONENTS, is_plain_name, open_regular};
use crate::store::{CassandraCredentials, CassandraStore, CassandraWriter, ReadConsistency};

/// The version `scripts/install-cassandra` installs by default.
pub const DEFAULT_CASSANDRA_VERSION: &str = "5.0.6";
/// Same prefix as the SQL runtime's directories.
const DIR_PREFIX: &str = "scalardb-verify-";
const LABEL_FILE: &str = "scalardb-verify-instance.json";
const TOOL: &str = "scalardb-verify";
const ENGINE: &str = "cassandra";
const PORT_ATTEMPTS: u32 = 3;
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The node's writable directory (data, JMX password), the sandbox's `/box`.
const BOX_DIR: &str = "box";
/// The tool's config files for the node, bound read only at their own path.
const CONF_DIR: &str = "conf";
const TAIL_LINES: usize = 40;
const LOG_PROBLEM_LINES: usize = 12;
/// The role Cassandra creates at first start when none exists, with its well-known password.
pub(crate) const DEFAULT_ROLE: &str = "cassandra";
/// The drill's own CQL role and JMX user, with a fresh random password each.
pub(crate) const OWN_ROLE: &str = "scalardb_verify";
/// How long the sessions the lock-down closed may take to leave `system_views.clients`.
const CLIENTS_SETTLE: Duration = Duration::from_secs(10);
/// The node's files that hold a secret (mode 0600): the JMX password and access files
/// (nodetool reads the first with `-pwf`), the CQL password for `--keep`.
const JMX_PASSWORD_FILE: &str = "jmx.password";
const JMX_ACCESS_FILE: &str = "jmx.access";
const CQL_PASSWORD_FILE: &str = "cql.password";
/// The Unix sockets a locked node's CQL and JMX ports come out through, in the tool's
/// directory (mode 0600; the JMX one the sandbox account's, since nodetool's sandbox dials it).
const CQL_SOCKET: &str = "cql.sock";
const JMX_SOCKET: &str = "jmx.sock";
/// A locked node's ports on its own loopback: Cassandra's usual ones, since nothing else
/// listens there.
const ISOLATED_NATIVE_PORT: u16 = 9042;
const ISOLATED_STORAGE_PORT: u16 = 7000;
const ISOLATED_JMX_PORT: u16 = 7199;
/// Java options Cassandra 5.0 needs on Java 17 (its `conf/jvm17-server.options`).
pub const JVM17_OPTIONS: &[&str] = &[
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.management/com.sun.jmx.remote.security=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
];

/// How to start a node.
#[derive(Clone, Debug)]
pub struct CassandraOptions {
    /// Labels the instance directory, so `sweep_cassandra(&SweepScope::Run(run_id))` finds it.
    pub run_id: String,
    /// Covers writing the config, starting the JVM and the first CQL answer.
    pub startup_timeout: Duration,
    /// The loopback address to listen on; a second node of a cluster may use 127.0.0.2.
    pub listen_address: Ipv4Addr,
    /// Seed nodes as `address:storage_port`; empty: this node is its own seed.
    pub seeds: Vec<String>,
    /// The inter-node port: every node of one cluster must use the same. `None`: a free one.
    pub storage_port: Option<u16>,
    /// The install directory (with `lib/`); `None`: `SCALARDB_VERIFY_CASSANDRA_HOME`, else
    /// `~/.cache/scalardb-verify/cassandra-5.0.6`.
    pub home: Option<PathBuf>,
    /// Where the instance directory is created; `None` is [`std::env::temp_dir`].
    pub parent_dir: Option<PathBuf>,
    /// Whether the node answers only its owner: CQL through PasswordAuthenticator and
    /// CassandraAuthorizer as a role of its own with a fresh random password (the default
    /// role dropped), JMX with a fresh random password. `false` (for clusters of several
    /// nodes, which share one `system_auth`): anyone on the machine can connect.
    pub locked: bool,
    /// Whether the node may outlive the tool (`--keep`); otherwise it is killed with it.
    pub outlive_tool: bool,
    /// The `scalardb-verify` binary that carries a locked node's ports through its
    /// sandbox's wall (its hidden `bridge` command); `None`: this process's own executable.
    /// Tests and benchmarks, whose executable is not the tool, name the tool's.
    pub bridge: Option<PathBuf>,
}

impl CassandraOptions {
    /// A 120-second startup timeout on 127.0.0.1, its own seed.
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            startup_timeout: Duration::from_secs(120),
            listen_address: Ipv4Addr::LOCALHOST,
            seeds: Vec::new(),
            storage_port: None,
            home: None,
            parent_dir: None,
            locked: true,
            outlive_tool: false,
            bridge: None,
        }
    }
}

/// Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum CassandraRuntimeError {
    #[error(
        "find Cassandra's jars in {} (run scripts/install-cassandra to install them)",
        home.display()
    )]
    NotInstalled { home: PathBuf },
    #[error("find a Java 17 runtime (set SCALARDB_VERIFY_CASSANDRA_JAVA or JAVA_HOME)")]
    NoJava,
    #[error("create an instance directory under {}", parent.display())]
    CreateDir {
        parent: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reserve a free port on {address}")]
    FreePort {
        address: Ipv4Addr,
        #[source]
        source: io::Error,
    },
    #[error("run {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "start Cassandra: the JVM exited during startup ({status}); its log ends with:\n{log_tail}"
    )]
    Start { status: String, log_tail: String },
    #[error(
        "get Cassandra to answer CQL on {address}:{port} within {timeout:?}; its log ends with:\n{log_tail}"
    )]
    NotReady {
        address: Ipv4Addr,
        port: u16,
        timeout: Duration,
        log_tail: String,
    },
    #[error("make a fresh random password (read /dev/urandom)")]
    Random(#[source] io::Error),
    #[error("confine the Cassandra JVM")]
    Sandbox(#[from] SandboxError),
    #[error(
        "let the node's sandbox account read {}: Cassandra's jars and the scalardb-verify \
         binary must be readable by others (chmod -R o+rX, or run scripts/install-cassandra \
         again)",
        path.display()
    )]
    Unreadable { path: PathBuf },
    #[error("find this program's own executable, which carries a locked node's ports")]
    NoBridge {
        #[source]
        source: io::Error,
    },
    #[error("make the node's socket {}", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("open a loopback port for the node's CQL socket {}", socket.display())]
    HostPort {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("give {} to the sandbox account (uid {uid})", path.display())]
    Chown {
        path: PathBuf,
        uid: u32,
        #[source]
        source: io::Error,
    },
    #[error("lock the node to its own role: {step}")]
    Lock {
        step: &'static str,
        #[source]
        source: Box<crate::store::CassandraError>,
    },
    #[error(
        "keep the node to this tool alone: {what} (another client reached it while the \
         default role still worked; the node is not trusted)"
    )]
    Intruded { what: String },
    #[error("take snapshot {tag} with nodetool ({status}):\n{output}")]
    Snapshot {
        tag: String,
        status: String,
        output: String,
    },
    #[error("import the SSTables of {} into {keyspace}.{table} with nodetool ({status}):\n{output}", source_dir.display())]
    Import {
        keyspace: String,
        table: String,
        source_dir: PathBuf,
        status: String,
        output: String,
    },
    #[error(
        "import the SSTables of {} into {table}: the node loaded none or only some \
         of the {staged} SSTables the snapshot holds (not loaded: {unloaded}); nodetool said:\n{output}",
        source_dir.display()
    )]
    NotImported {
        /// `keyspace.table`.
        table: String,
        source_dir: PathBuf,
        staged: usize,
        unloaded: String,
        output: String,
    },
    #[error("copy {} from the backup: {reason}", path.display())]
    UnsafeSnapshotFile { path: PathBuf, reason: &'static str },
    #[error("copy SSTables from {}", from.display())]
    CopySstables {
        from: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("stop Cassandra (pid {pid})")]
    Stop {
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

/// A process named by pid and start time, so a reused pid is never signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct ProcessId {
    pid: u32,
    start_time: u64,
}

impl ProcessId {
    fn of(pid: u32) -> Option<Self> {
        let (start_time, _) = read_stat(pid)?;
        Some(Self { pid, start_time })
    }

    fn is_running(&self) -> bool {
        read_stat(self.pid).is_some_and(|(start, state)| start == self.start_time && state != 'Z')
    }
}

/// Field 22 (start time) and field 3 (state) of `/proc/<pid>/stat`.
fn read_stat(pid: u32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((
        fields.get(19)?.parse().ok()?,
        fields.first()?.chars().next()?,
    ))
}

/// Kills the sandbox `pid` leads and everything below it (a kept node's sandbox does not
/// die with its parent, so killing its outermost process alone would leave the JVM).
fn kill_group(pid: u32) {
    super::local::process::kill_group_unchecked(pid);
}

/// The instance directory's label, in the SQL runtime's format with engine `cassandra`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Label {
    tool: String,
    run_id: String,
    engine: String,
    owner: Option<ProcessId>,
    server: Option<ProcessId>,
    port: Option<u16>,
    created_at: String,
}

impl Label {
    fn write(&self, dir: &Path) -> Result<(), CassandraRuntimeError> {
        let path = dir.join(LABEL_FILE);
        let error = |source| CassandraRuntimeError::WriteFile {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(self)
            .map_err(io::Error::from)
            .map_err(error)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(error)?;
        tmp.write_all(&json).map_err(error)?;
        tmp.persist(&path).map_err(|e| error(e.error))?;
        Ok(())
    }

    /// The label in `dir`, if it is a regular file of our own that this tool wrote.
    fn read(dir: &Path) -> Option<Self> {
        use std::io::Read as _;
        use std::os::unix::fs::MetadataExt as _;
        let path = dir.join(LABEL_FILE);
        let metadata = std::fs::symlink_metadata(&path).ok()?;
        if !metadata.is_file() || metadata.uid() != nix::unistd::geteuid().as_raw() {
            return None;
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .ok()?
            .take(64 * 1024)
            .read_to_end(&mut bytes)
            .ok()?;
        let label: Self = serde_json::from_slice(&bytes).ok()?;
        (label.tool == TOOL && label.engine == ENGINE).then_some(label)
    }
}

/// A running Cassandra node in a temporary directory.
#[derive(Debug)]
pub struct CassandraInstance {
    dir: PathBuf,
    /// The JVM's and nodetool's confinement; its box is `dir/box`.
    sandbox: Sandbox,
    home: PathBuf,
    java: PathBuf,
    address: Ipv4Addr,
    native_port: u16,
    storage_port: u16,
    jmx_port: u16,
    /// The node's own CQL role; `None` when not locked.
    credentials: Option<CassandraCredentials>,
    jmx_password: String,
    /// A locked node's way out of its network: the bridge binary and the host's CQL port.
    bridged: Option<Bridged>,
    server: Option<std::process::Child>,
    label: Label,
    removed: bool,
    started_in: Duration,
    /// When the tool first saw the node listening for CQL clients.
    listening_since: Option<Instant>,
    /// How long the default role worked, as far as the tool can tell (see `lock`).
    default_role_window: Option<Duration>,
}

impl CassandraInstance {
    /// Writes a config, starts the JVM and waits for a CQL answer, within
    /// `opts.startup_timeout`.
    pub async fn start(opts: &CassandraOptions) -> Result<Self, CassandraRuntimeError> {
        // Boxed: the start-up future is deep enough to overflow the layout computation of
        // any async caller that holds it inline.
        Box::pin(Self::start_unboxed(opts)).await
    }

    async fn start_unboxed(opts: &CassandraOptions) -> Result<Self, CassandraRuntimeError> {
        let began = Instant::now();
        let deadline = began + opts.startup_timeout;
        let home = opts.home.clone().unwrap_or_else(default_home);
        if !home.join(".complete").exists() || !home.join("lib").is_dir() {
            return Err(CassandraRuntimeError::NotInstalled { home });
        }
        let java = find_java()?;
        let parent = match opts.parent_dir.clone() {
            Some(parent) => parent,
            // The tool's private directory, like the SQL instances': nobody else can plant
            // a label beside ours there.
            None => super::local::private_root().map_err(|e| CassandraRuntimeError::CreateDir {
                parent: std::env::temp_dir(),
                source: io::Error::other(crate::scan::error_chain(&e)),
            })?,
        };
        let dir = tempfile::Builder::new()
            .prefix(&dir_prefix(&opts.run_id))
            .tempdir_in(&parent)
            .map_err(|source| CassandraRuntimeError::CreateDir {
                parent: parent.clone(),
                source,
            })?
            .keep();
        let network = if opts.locked {
            Network::Isolated
        } else {
            Network::Host
        };
        let bridge = match opts.locked {
            true => match opts.bridge.clone().map_or_else(std::env::current_exe, Ok) {
                Ok(program) => Some(program),
                Err(source) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(CassandraRuntimeError::NoBridge { source });
                }
            },
            false => None,
        };
        let confined = Account::fresh()
            .and_then(|account| Sandbox::prepare(&dir, &dir.join(BOX_DIR), account, network))
            .map_err(CassandraRuntimeError::from)
            .and_then(|sandbox| confine(sandbox, &dir, &home, &java, bridge.as_deref()))
            .map(|sandbox| {
                if opts.outlive_tool {
                    sandbox.outliving_the_tool()
                } else {
                    sandbox
                }
            });
        let sandbox = match confined {
            Ok(sandbox) => sandbox,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        // From here on, an early return drops `instance`, which kills the JVM and removes
        // the directory.
        let mut instance = Self {
            dir,
            sandbox,
            home,
            java,
            // Inside its own network, a locked node has loopback's first address to itself.
            address: if opts.locked {
                Ipv4Addr::LOCALHOST
            } else {
                opts.listen_address
            },
            native_port: 0,
            storage_port: 0,
            jmx_port: 0,
            credentials: opts.locked.then(|| CassandraCredentials {
                username: OWN_ROLE.to_owned(),
                password: String::new(),
            }),
            jmx_password: random_secret()?,
            bridged: bridge.map(|program| Bridged {
                program,
                host_port: None,
            }),
            server: None,
            label: Label {
                tool: TOOL.to_owned(),
                run_id: opts.run_id.clone(),
                engine: ENGINE.to_owned(),
                owner: ProcessId::of(std::process::id()),
                server: None,
                port: None,
                created_at: jiff::Timestamp::now().to_string(),
            },
            removed: false,
            started_in: Duration::ZERO,
            listening_since: None,
            default_role_window: None,
        };
        instance.label.write(&instance.dir)?;
        if let Some(credentials) = &mut instance.credentials {
            credentials.password = random_secret()?;
        }
        instance.write_secrets()?;
        let mut attempt = 1;
        loop {
            if instance.bridged.is_some() {
                // Nothing else listens in the node's own network: no port can be taken.
                instance.native_port = ISOLATED_NATIVE_PORT;
                instance.storage_port = ISOLATED_STORAGE_PORT;
                instance.jmx_port = ISOLATED_JMX_PORT;
            } else {
                instance.native_port = free_port(opts.listen_address)?;
                instance.storage_port = match opts.storage_port {
                    Some(port) => port,
                    None => free_port(opts.listen_address)?,
                };
                instance.jmx_port = free_port(Ipv4Addr::LOCALHOST)?;
            }
            instance.write_config(opts)?;
            instance.spawn()?;
            match instance.wait_ready(deadline, opts.startup_timeout).await {
                Ok(()) => {
                    instance.lock().await?;
                    instance.started_in = began.elapsed();
                    return Ok(instance);
                }
                Err(e)
                    if attempt < PORT_ATTEMPTS
                        && port_taken(
                            &std::fs::read_to_string(instance.log_path()).unwrap_or_default(),
                        ) =>
                {
                    drop(e);
                    instance.kill();
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `address:port` the tool's CQL clients reach the node at: a locked node's host port
    /// (open to this process alone), else the node's own native transport.
    pub fn contact_point(&self) -> String {
        match self.bridged.as_ref().and_then(|b| b.host_port.as_ref()) {
            Some(port) => port.address().to_string(),
            None => format!("{}:{}", self.address, self.native_port),
        }
    }

    /// `address:storage_port`, for another node's `seeds`.
    pub fn seed(&self) -> String {
        format!("{}:{}", self.address, self.storage_port)
    }

    /// The JMX port on 127.0.0.1 nodetool reaches (with the node's own password only): on a
    /// locked node, a port of its own network, which nothing on the host can reach.
    pub fn jmx_port(&self) -> u16 {
        self.jmx_port
    }

    /// The Java runtime the node and nodetool run on.
    pub fn java(&self) -> &Path {
        &self.java
    }

    /// The install directory the JVM runs from (`lib/` holds the jars).
    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn storage_port(&self) -> u16 {
        self.storage_port
    }

    /// The native transport's port where the node listens (on a locked node, in its own
    /// network: see [`contact_point`](Self::contact_point)).
    pub fn native_port(&self) -> u16 {
        self.native_port
    }

    /// Whether the node has a network of its own (a locked node does).
    pub fn is_isolated(&self) -> bool {
        self.bridged.is_some()
    }

    /// The Unix socket a locked node's CQL port comes out through (in the tool's directory,
    /// mode 0600); it outlives the tool with a node kept by `--keep`.
    pub fn cql_socket(&self) -> PathBuf {
        self.dir.join(CQL_SOCKET)
    }

    /// The `cassandra://` URL the scan takes, with the node's own credentials when locked.
    pub fn url(&self) -> String {
        match &self.credentials {
            Some(c) => format!(
                "cassandra://{}:{}@{}",
                c.username,
                c.password,
                self.contact_point()
            ),
            None => format!("cassandra://{}", self.contact_point()),
        }
    }

    /// The node's own CQL role and password; `None` when it was started unlocked.
    pub fn credentials(&self) -> Option<&CassandraCredentials> {
        self.credentials.as_ref()
    }

    /// A writable session as the node's own role.
    pub async fn writer(&self) -> Result<CassandraWriter, crate::store::CassandraError> {
        CassandraWriter::connect_as(&[self.contact_point()], self.credentials()).await
    }

    /// Where the CQL password is kept (mode 0600), for a node kept with `--keep`.
    pub fn password_file(&self) -> PathBuf {
        self.dir.join(CQL_PASSWORD_FILE)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the node keeps its SSTables: `<data>/<keyspace>/<table>-<id>/`. The sandbox
    /// account owns everything under it.
    pub fn data_dir(&self) -> PathBuf {
        self.box_dir().join("data").join("data")
    }

    /// The node's writable directory (the sandbox's `/box`).
    pub fn box_dir(&self) -> &Path {
        self.sandbox.box_dir()
    }

    fn conf_dir(&self) -> PathBuf {
        self.dir.join(CONF_DIR)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The sandbox's outermost process (bubblewrap), whose death ends everything inside.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(std::process::Child::id)
    }

    /// How long the default role worked on a locked node: from the moment the tool saw the
    /// node listen for CQL clients (it polls the log every 200 ms, so up to that much
    /// earlier) to the drop of the role. `None` on an unlocked node.
    pub fn default_role_window(&self) -> Option<Duration> {
        self.default_role_window
    }

    /// How long `start` took, JVM launch to first CQL answer.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Flushes and snapshots `keyspaces` (all when empty) under `tag` with nodetool over
    /// the node's local JMX port. Snapshots land in `data_dir()/<ks>/<table>/snapshots/<tag>`.
    pub async fn snapshot(
        &self,
        tag: &str,
        keyspaces: &[&str],
    ) -> Result<(), CassandraRuntimeError> {
        let mut args = vec!["snapshot", "-t", tag];
        args.extend_from_slice(keyspaces);
        self.nodetool(&args)
            .await
            .map(drop)
            .map_err(|(status, output)| CassandraRuntimeError::Snapshot {
                tag: tag.to_owned(),
                status,
                output,
            })
    }

    /// Loads the SSTables in `source` into `keyspace.table` with `nodetool import`. The
    /// files are copied into this instance's own directory first (import moves what it
    /// loads, and the source is a backup that must stay untouched), so SSTables of several
    /// nodes with the same generation numbers can be loaded one directory after another.
    ///
    /// nodetool exits 0 when the node skipped every file it did not recognise as an
    /// SSTable (the node logs "No new SSTables were found"), so the import is checked
    /// against what was staged: every `…-Data.db` must have been moved into the table.
    /// A source without any is a table that held no data: nothing to import.
    pub async fn import_sstables(
        &self,
        keyspace: &str,
        table: &str,
        source: &Path,
    ) -> Result<(), CassandraRuntimeError> {
        let staged = self.stage(keyspace, table, source)?;
        let data_files = &staged.data_files;
        if data_files.is_empty() {
            staged.remove();
            return Ok(());
        }
        let staged_text = staged.inside.display().to_string();
        let log_start = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
        let outcome = self
            .nodetool(&["import", keyspace, table, &staged_text])
            .await
            .and_then(|output| {
                // nodetool import exits 0 and lists what it could not load.
                if output.contains("Some directories failed to import") {
                    Err(("exit status: 0".to_owned(), tail(&output)))
                } else {
                    Ok(output)
                }
            })
            .map_err(|(status, output)| {
                // nodetool says only "check server logs": the log goes with the node, so the
                // reason is quoted here.
                let log = read_from(&self.log_path(), log_start);
                (status, with_log_problems(output, &log))
            });
        let left_behind = if outcome.is_ok() {
            staged.unloaded()
        } else {
            Vec::new()
        };
        let staged_count = data_files.len();
        staged.remove();
        let import_error = |status, output| CassandraRuntimeError::Import {
            keyspace: keyspace.to_owned(),
            table: table.to_owned(),
            source_dir: source.to_owned(),
            status,
            output,
        };
        let output = outcome.map_err(|(status, output)| import_error(status, output))?;
        if !left_behind.is_empty() {
            return Err(CassandraRuntimeError::NotImported {
                table: format!("{keyspace}.{table}"),
                source_dir: source.to_owned(),
                staged: staged_count,
                unloaded: left_behind.join(", "),
                output: with_log_problems(tail(&output), &read_from(&self.log_path(), log_start)),
            });
        }
        Ok(())
    }

    /// A fresh directory in the node's box, and in it `<keyspace>/<table>/` holding copies
    /// of the regular files of `source` (SSTable components; manifest.json and schema.cql
    /// are left out), with the names of the `…-Data.db` files copied. Cassandra reads an
    /// SSTable's keyspace and table from its two parent directories' names, and skips files
    /// whose parents don't name the target. A symbolic link or any other entry that is not
    /// a regular file or a directory is refused, never followed: the copy holds only the
    /// backup's own files.
    ///
    /// The node runs while this copies, and its account owns the box: every directory and
    /// file is made under a handle of its parent (`mkdirat`/`openat`, `O_NOFOLLOW`,
    /// `O_EXCL`), so nothing the node does to its box can send a write elsewhere.
    fn stage(
        &self,
        keyspace: &str,
        table: &str,
        source: &Path,
    ) -> Result<Staged, CassandraRuntimeError> {
        for name in [keyspace, table] {
            if !is_plain_name(name) {
                return Err(CassandraRuntimeError::UnsafeSnapshotFile {
                    path: source.to_owned(),
                    reason: "its keyspace or table name is not a plain file name",
                });
            }
        }
        let box_dir = self.box_dir().to_owned();
        let create_error = |source: io::Error| CassandraRuntimeError::CreateDir {
            parent: box_dir.clone(),
            source,
        };
        let box_fd = open_dir(None, &box_dir).map_err(create_error)?;
        let name = format!("import-{}", random_secret()?);
        let root = box_dir.join(&name);
        let staging = make_dir(&box_fd, &name).map_err(create_error)?;
        let staged = Staged {
            root,
            inside: self
                .sandbox
                .inside(&box_dir.join(&name).join(keyspace).join(table)),
            table_dir: None,
            data_files: Vec::new(),
        };
        let keyspace_fd = make_dir(&staging, keyspace).map_err(create_error)?;
        let table_fd = make_dir(&keyspace_fd, table).map_err(create_error)?;
        let account = self.sandbox.account();
        match copy_components(source, &table_fd, account) {
            Ok(data_files) => {
                // The import moves the files out of the table directory: the node's account
                // may change that directory (and only that one).
                account
                    .chown_fd(&table_fd)
                    .map_err(|source| CassandraRuntimeError::Chown {
                        path: staged.inside.clone(),
                        uid: account.uid,
                        source,
                    })?;
                Ok(Staged {
                    table_dir: Some(table_fd),
                    data_files,
                    ..staged
                })
            }
            Err(e) => {
                staged.remove();
                Err(e)
            }
        }
    }

    /// Runs nodetool against this node over its local JMX port; its combined output, or
    /// the exit status and the output's tail.
    async fn nodetool(&self, args: &[&str]) -> Result<String, (String, String)> {
        let classpath = format!("{}/*", self.home.join("lib").display());
        // Confined like the node: what comes back over JMX is the node's, and the node
        // holds the backup. A locked node's JMX port comes into nodetool's own network
        // through the node's JMX socket, bound into this sandbox alone.
        let mut command = match &self.bridged {
            Some(bridged) => {
                let socket = self.dir.join(JMX_SOCKET);
                let mut command = self
                    .sandbox
                    .clone()
                    .with_read_only(&socket)
                    .tokio_command(&bridged.program);
                command
                    .args(["bridge", "--forward"])
                    .arg(
                        super::bridge::Forward {
                            listen: super::bridge::Listen::Tcp(SocketAddrV4::new(
                                Ipv4Addr::LOCALHOST,
                                self.jmx_port,
                            )),
                            dial: super::bridge::Dial::Unix(socket),
                        }
                        .to_string(),
                    )
                    .arg("--")
                    .arg(&self.java);
                command
            }
            None => self.sandbox.tokio_command(&self.java),
        };
        let output = command
            .args(["-Xmx256m", "-cp", &classpath])
            .args(JVM17_OPTIONS)
            .arg(format!(
                "-Dcassandra.storagedir={}",
                self.sandbox.inside(&self.box_dir().join("data")).display()
            ))
            .arg(
                "-Dlogback.configurationFile=".to_owned()
                    + &self
                        .conf_dir()
                        .join("logback-tools.xml")
                        .display()
                        .to_string(),
            )
            .arg("org.apache.cassandra.tools.NodeTool")
            .args(["-h", "127.0.0.1", "-p", &self.jmx_port.to_string()])
            // The password stays in a file: never on a command line `ps` shows.
            .args(["-u", OWN_ROLE, "-pwf"])
            .arg(self.sandbox.inside(&self.box_dir().join(JMX_PASSWORD_FILE)))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| {
                (
                    "not started".to_owned(),
                    format!("run {}: {e}", self.java.display()),
                )
            })?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        if output.status.success() {
            Ok(text)
        } else {
            Err((output.status.to_string(), tail(&text)))
        }
    }

    /// The snapshot directories `snapshot(tag)` made, one per table.
    pub fn snapshot_dirs(&self, tag: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let Ok(keyspaces) = std::fs::read_dir(self.data_dir()) else {
            return found;
        };
        for keyspace in keyspaces.flatten() {
            let Ok(tables) = std::fs::read_dir(keyspace.path()) else {
                continue;
            };
            for table in tables.flatten() {
                let dir = table.path().join("snapshots").join(tag);
                if dir.is_dir() {
                    found.push(dir);
                }
            }
        }
        found.sort();
        found
    }

    /// Kills the node's sandbox and everything in it, then removes the directory. (A
    /// signal to the sandbox's outermost process is not passed on to the JVM, and a kept
    /// node's sandbox does not die with it: the whole tree is killed. The node is
    /// disposable: nothing needs a clean shutdown.)
    pub async fn stop(mut self) -> Result<(), CassandraRuntimeError> {
        if let Some(mut child) = self.server.take() {
            let pid = child.id();
            tokio::task::spawn_blocking(move || {
                kill_group(pid);
                child.wait()
            })
            .await
            .map_err(io::Error::other)
            .and_then(|waited| waited)
            .map_err(|source| CassandraRuntimeError::Stop { pid, source })?;
        }
        match tokio::fs::remove_dir_all(&self.dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CassandraRuntimeError::RemoveDir {
                    path: self.dir.clone(),
                    source,
                });
            }
        }
        self.removed = true;
        Ok(())
    }

    fn write_config(&self, opts: &CassandraOptions) -> Result<(), CassandraRuntimeError> {
        let data = self.sandbox.inside(&self.box_dir().join("data"));
        let seeds = if opts.seeds.is_empty() {
            self.seed()
        } else {
            opts.seeds.join(",")
        };
        let yaml = format!(
            "# Written by scalardb-verify for a disposable test node; tuned for speed, not safety.\n\
             cluster_name: scalardb-verify\n\
             num_tokens: 4\n\
             allocate_tokens_for_local_replication_factor: 1\n\
             partitioner: org.apache.cassandra.dht.Murmur3Partitioner\n\
             auto_bootstrap: false\n\
             data_file_directories: [{data}/data]\n\
             commitlog_directory: {data}/commitlog\n\
             saved_caches_directory: {data}/saved_caches\n\
             hints_directory: {data}/hints\n\
             cdc_raw_directory: {data}/cdc_raw\n\
             commitlog_sync: periodic\n\
             commitlog_sync_period: 10000ms\n\
             seed_provider:\n  - class_name: org.apache.cassandra.locator.SimpleSeedProvider\n    parameters:\n      - seeds: \"{seeds}\"\n\
             listen_address: {address}\n\
             rpc_address: {address}\n\
             storage_port: {storage}\n\
             native_transport_port: {native}\n\
             start_native_transport: true\n\
             endpoint_snitch: SimpleSnitch\n\
             dynamic_snitch: false\n\
             auto_snapshot: false\n\
             snapshot_before_compaction: false\n\
             authenticator: {authenticator}\n\
             authorizer: {authorizer}\n\
             credentials_validity: 0ms\n\
             concurrent_compactors: 1\n\
             compaction_throughput: 0MiB/s\n\
             read_request_timeout: 30000ms\n\
             range_request_timeout: 60000ms\n\
             write_request_timeout: 10000ms\n\
             request_timeout: 60000ms\n",
            data = data.display(),
            address = self.address,
            storage = self.storage_port,
            native = self.native_port,
            authenticator = if self.credentials.is_some() {
                "PasswordAuthenticator"
            } else {
                "AllowAllAuthenticator"
            },
            authorizer = if self.credentials.is_some() {
                "CassandraAuthorizer"
            } else {
                "AllowAllAuthorizer"
            },
        );
        self.write_file("cassandra.yaml", &yaml)?;
        let logback = |level: &str| {
            format!(
                "<configuration>\n  <appender name=\"STDOUT\" class=\"ch.qos.logback.core.ConsoleAppender\">\n    \
                 <encoder><pattern>%d{{HH:mm:ss.SSS}} %-5level [%thread] %logger{{20}} - %msg%n</pattern></encoder>\n  \
                 </appender>\n  <root level=\"{level}\"><appender-ref ref=\"STDOUT\"/></root>\n</configuration>\n"
            )
        };
        self.write_file("logback.xml", &logback("INFO"))?;
        self.write_file("logback-tools.xml", &logback("WARN"))?;
        Ok(())
    }

    /// The JMX password and access files and the CQL password file, readable by their owner
    /// only (the JVM refuses a JMX password file others can read).
    /// The JMX password file goes in the box, owned by the sandbox account (the JVM reads
    /// it, and refuses one others may read); the CQL password stays the tool's.
    fn write_secrets(&self) -> Result<(), CassandraRuntimeError> {
        let jmx = self.box_dir().join(JMX_PASSWORD_FILE);
        write_secret(&jmx, &format!("{OWN_ROLE} {}\n", self.jmx_password))?;
        let account = self.sandbox.account();
        account
            .chown(&jmx)
            .map_err(|source| CassandraRuntimeError::Chown {
                path: jmx.clone(),
                uid: account.uid,
                source,
            })?;
        self.write_file(JMX_ACCESS_FILE, &format!("{OWN_ROLE} readwrite\n"))?;
        if let Some(credentials) = &self.credentials {
            write_secret(
                &self.dir.join(CQL_PASSWORD_FILE),
                &format!("{}\n", credentials.password),
            )?;
        }
        Ok(())
    }

    /// Makes the node answer only this tool: as the default role (the only one Cassandra
    /// lets in at first start), the readiness probe created the node's own superuser role
    /// with its random password; as that role, this drops the default one and checks
    /// nobody else got in meanwhile ([`check_locked`](Self::check_locked)).
    ///
    /// Cassandra 5.0 has no way to start without the default role or to create a role
    /// before the native transport listens, so from "Starting listening for CQL clients"
    /// to the drop (well under a second after the node answers) `cassandra`/`cassandra`
    /// works for anyone on the machine. Whatever such a client could leave behind before
    /// the backup is loaded (a role, a keyspace, an open session) is looked for here and
    /// again after the load, and fails the drill.
    async fn lock(&mut self) -> Result<(), CassandraRuntimeError> {
        let Some(own) = self.credentials.clone() else {
            return Ok(());
        };
        let contact = [self.contact_point()];
        let lock_error = |step| {
            move |source| CassandraRuntimeError::Lock {
                step,
                source: Box::new(source),
            }
        };
        // The role itself was created by the readiness probe (`create_own_role`).
        let writer = CassandraWriter::connect_as(&contact, Some(&own))
            .await
            .map_err(lock_error("connect as the node's own role"))?;
        writer
            .execute(&format!("DROP ROLE {DEFAULT_ROLE}"))
            .await
            .map_err(lock_error("drop the default role"))?;
        self.default_role_window = self.listening_since.map(|since| since.elapsed());
        self.check_locked_with(&writer).await
    }

    /// Checks that nobody but this tool used the node: its own role is the only one, it
    /// holds no keyspace the tool did not make (`expected`), and every open CQL session is
    /// the tool's own. A no-op on an unlocked node.
    pub async fn check_locked(&self, expected: &[&str]) -> Result<(), CassandraRuntimeError> {
        if self.credentials.is_none() {
            return Ok(());
        }
        let writer = self
            .writer()
            .await
            .map_err(|source| CassandraRuntimeError::Lock {
                step: "connect as the node's own role",
                source: Box::new(source),
            })?;
        check_roles_and_clients(&writer).await?;
        let keyspaces = user_keyspaces(&writer).await?;
        let foreign: Vec<&String> = keyspaces
            .iter()
            .filter(|k| !expected.contains(&k.as_str()))
            .collect();
        if !foreign.is_empty() {
            return Err(CassandraRuntimeError::Intruded {
                what: format!("it holds keyspaces the backup does not: {foreign:?}"),
            });
        }
        Ok(())
    }

    async fn check_locked_with(
        &self,
        writer: &CassandraWriter,
    ) -> Result<(), CassandraRuntimeError> {
        check_roles_and_clients(writer).await?;
        let keyspaces = user_keyspaces(writer).await?;
        if !keyspaces.is_empty() {
            return Err(CassandraRuntimeError::Intruded {
                what: format!("a fresh node holds keyspaces: {keyspaces:?}"),
            });
        }
        Ok(())
    }
}

/// Fails unless the node's only role is [`OWN_ROLE`] and every open CQL session is its own
/// (waiting up to [`CLIENTS_SETTLE`] for the sessions the lock-down closed to go).
pub(crate) async fn check_roles_and_clients(
    writer: &CassandraWriter,
) -> Result<(), CassandraRuntimeError> {
    let query_error = |source| CassandraRuntimeError::Lock {
        step: "check who else used the node",
        source: Box::new(source),
    };
    let roles: Vec<Option<String>> = writer
        .texts("SELECT role FROM system_auth.roles")
        .await
        .map_err(query_error)?;
    if roles.iter().any(|r| r.as_deref() != Some(OWN_ROLE)) {
        return Err(CassandraRuntimeError::Intruded {
            what: format!("it has roles besides its own: {roles:?}"),
        });
    }
    // The sessions the lock-down closed take a moment to go.
    let deadline = Instant::now() + CLIENTS_SETTLE;
    loop {
        let others: Vec<Option<String>> = writer
            .texts("SELECT username FROM system_views.clients")
            .await
            .map_err(query_error)?
            .into_iter()
            .filter(|u| u.as_deref() != Some(OWN_ROLE))
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CassandraRuntimeError::Intruded {
                what: format!("other CQL sessions are open, as {others:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The keyspaces of the node that are not Cassandra's own.
pub(crate) async fn user_keyspaces(
    writer: &CassandraWriter,
) -> Result<Vec<String>, CassandraRuntimeError> {
    let keyspaces = writer
        .texts("SELECT keyspace_name FROM system_schema.keyspaces")
        .await
        .map_err(|source| CassandraRuntimeError::Lock {
            step: "check who else used the node",
            source: Box::new(source),
        })?;
    Ok(keyspaces
        .into_iter()
        .flatten()
        .filter(|k| !k.starts_with("system"))
        .collect())
}

impl CassandraInstance {
    /// Writes one of the node's config files (read only inside the sandbox).
    fn write_file(&self, name: &str, contents: &str) -> Result<(), CassandraRuntimeError> {
        let path = self.conf_dir().join(name);
        std::fs::write(&path, contents)
            .map_err(|source| CassandraRuntimeError::WriteFile { path, source })
    }

    fn spawn(&mut self) -> Result<(), CassandraRuntimeError> {
        let log_path = self.log_path();
        let log_error = |source| CassandraRuntimeError::WriteFile {
            path: log_path.clone(),
            source,
        };
        let log = std::fs::File::create(&log_path).map_err(log_error)?;
        let log_err = log.try_clone().map_err(log_error)?;
        let data = self.sandbox.inside(&self.box_dir().join("data"));
        let classpath = format!("{}/*", self.home.join("lib").display());
        let conf = self.conf_dir();
        let mut command = match &mut self.bridged {
            Some(bridged) => {
                // The bridge is the sandbox's first process: it takes the node's two sockets
                // (as descriptors 3 and 4), dials the node's ports on the sandbox's own
                // loopback, and runs the JVM as its child.
                let (cql, jmx) = bind_sockets(&self.dir, self.sandbox.account())?;
                let mut command = self.sandbox.command(&bridged.program);
                command.arg("bridge");
                for (fd, port) in [(3, self.native_port), (4, self.jmx_port)] {
                    let forward = super::bridge::Forward {
                        listen: super::bridge::Listen::Fd(fd),
                        dial: super::bridge::Dial::Tcp(SocketAddrV4::new(
                            Ipv4Addr::LOCALHOST,
                            port,
                        )),
                    };
                    command.arg("--forward").arg(forward.to_string());
                }
                command.arg("--").arg(&self.java);
                use command_fds::{CommandFdExt as _, FdMapping};
                command
                    .fd_mappings(vec![
                        FdMapping {
                            parent_fd: OwnedFd::from(cql),
                            child_fd: 3,
                        },
                        FdMapping {
                            parent_fd: OwnedFd::from(jmx),
                            child_fd: 4,
                        },
                    ])
                    .map_err(|e| CassandraRuntimeError::Spawn {
                        program: bridged.program.clone(),
                        source: io::Error::other(e.to_string()),
                    })?;
                let socket = self.dir.join(CQL_SOCKET);
                bridged.host_port =
                    Some(super::bridge::HostPort::open(&socket).map_err(|source| {
                        CassandraRuntimeError::HostPort {
                            socket: socket.clone(),
                            source,
                        }
                    })?);
                command
            }
            None => self.sandbox.command(&self.java),
        };
        command
            .args(["-Xms512m", "-Xmx1g", "-Xss512k", "-XX:+UseG1GC"])
            .args(["-XX:+ExitOnOutOfMemoryError", "-XX:+PerfDisableSharedMem"])
            .args(JVM17_OPTIONS)
            .arg(format!(
                "-Dcassandra.config=file://{}",
                conf.join("cassandra.yaml").display()
            ))
            .arg(format!(
                "-Dlogback.configurationFile={}",
                conf.join("logback.xml").display()
            ))
            .arg(format!("-Dcassandra.storagedir={}", data.display()))
            .arg(format!("-Dcassandra.logdir={}", sandbox::BOX))
            .arg(format!("-Dcassandra.jmx.local.port={}", self.jmx_port))
            // The RMI server nodetool is sent to after the registry: on the same port (as
            // cassandra-env.sh sets it), which alone a locked node's bridge carries.
            .arg(format!(
                "-Dcom.sun.management.jmxremote.rmi.port={}",
                self.jmx_port
            ))
            // JMX on loopback, but only with the node's own password.
            .arg("-Dcom.sun.management.jmxremote.authenticate=true")
            .arg(format!(
                "-Dcom.sun.management.jmxremote.password.file={}",
                self.sandbox
                    .inside(&self.box_dir().join(JMX_PASSWORD_FILE))
                    .display()
            ))
            .arg(format!(
                "-Dcom.sun.management.jmxremote.access.file={}",
                conf.join(JMX_ACCESS_FILE).display()
            ))
            // The default role at once, so the lock-down does not wait for it; cheap
            // password hashes, since the only password is 128 random bits.
            .arg("-Dcassandra.superuser_setup_delay_ms=0")
            .arg("-Dcassandra.auth_bcrypt_gensalt_log2_rounds=4")
            .args([
                "-Dcassandra-foreground=yes",
                "-Dcassandra.skip_wait_for_gossip_to_settle=0",
                "-Dcassandra.ring_delay_ms=1000",
                "-Dcassandra.disable_max_map_count_check=true",
            ])
            .args([
                "-cp",
                &classpath,
                "org.apache.cassandra.service.CassandraDaemon",
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|source| CassandraRuntimeError::Spawn {
                program: self
                    .bridged
                    .as_ref()
                    .map_or_else(|| self.java.clone(), |b| b.program.clone()),
                source,
            })?;
        self.label.server = ProcessId::of(child.id());
        self.label.port = Some(self.native_port);
        self.server = Some(child);
        self.label.write(&self.dir)
    }

    async fn wait_ready(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), CassandraRuntimeError> {
        let contact = vec![self.contact_point()];
        let own = self.credentials.clone();
        loop {
            let exited = self
                .server
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.server = None;
                return Err(CassandraRuntimeError::Start {
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            // Probe only once the node says it listens: a connection attempt before that
            // costs the driver's whole connect timeout.
            if std::fs::read_to_string(self.log_path())
                .is_ok_and(|log| log.contains("Starting listening for CQL clients"))
            {
                self.listening_since.get_or_insert_with(Instant::now);
                let attempt_deadline = (Instant::now() + PROBE_ATTEMPT_TIMEOUT).min(deadline);
                // Locked, the first answer is the first step of the lock-down: the node's
                // own role, created as the default one as soon as that exists.
                let probe = async {
                    match &own {
                        Some(own) => create_own_role(&contact, own).await,
                        None => {
                            let store =
                                CassandraStore::connect(&contact, None, ReadConsistency::One)
                                    .await?;
                            store.release_version().await.map(drop)
                        }
                    }
                };
                if let Ok(Ok(())) = tokio::time::timeout_at(attempt_deadline, probe).await {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(CassandraRuntimeError::NotReady {
                    address: self.address,
                    port: self.native_port,
                    timeout,
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            kill_group(child.id());
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(self.log_path()).unwrap_or_default())
    }
}

impl Drop for CassandraInstance {
    fn drop(&mut self) {
        self.kill();
        if !self.removed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One leftover node a sweep removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptNode {
    pub dir: PathBuf,
    pub run_id: String,
    pub killed_pid: Option<u32>,
}

/// Removes the labelled Cassandra instances under `root` that `scope` selects, killing
/// their JVMs first. The SQL runtime's `sweep_in` does the same for its engines.
pub fn sweep_cassandra_in(
    root: &Path,
    scope: &SweepScope,
) -> Result<Vec<SweptNode>, CassandraRuntimeError> {
    let scan_error = |source| CassandraRuntimeError::Sweep {
        dir: root.to_path_buf(),
        source,
    };
    super::local::check_private(root)
        .map_err(|e| scan_error(io::Error::other(crate::scan::error_chain(&e))))?;
    let mut swept = Vec::new();
    for entry in std::fs::read_dir(root).map_err(scan_error)? {
        let entry = entry.map_err(scan_error)?;
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        let owned = entry.metadata().is_ok_and(|m| {
            std::os::unix::fs::MetadataExt::uid(&m) == nix::unistd::geteuid().as_raw()
        });
        if !is_ours || !owned || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        let Some(label) = Label::read(&dir) else {
            continue;
        };
        let selected = match scope {
            SweepScope::Orphaned => label.owner.is_some_and(|owner| !owner.is_running()),
            SweepScope::Run(run_id) => &label.run_id == run_id,
        };
        if !selected {
            continue;
        }
        let killed_pid = label.server.filter(ProcessId::is_running).map(|server| {
            kill_group(server.pid);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while server.is_running() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            server.pid
        });
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(CassandraRuntimeError::RemoveDir { path: dir, source }),
        }
        swept.push(SweptNode {
            dir,
            run_id: label.run_id,
            killed_pid,
        });
    }
    Ok(swept)
}

/// [`sweep_cassandra_in`] over the tool's private directory.
pub fn sweep_cassandra(scope: &SweepScope) -> Result<Vec<SweptNode>, CassandraRuntimeError> {
    let root = super::local::private_root().map_err(|e| CassandraRuntimeError::Sweep {
        dir: std::env::temp_dir(),
        source: io::Error::other(crate::scan::error_chain(&e)),
    })?;
    sweep_cassandra_in(&root, scope)
}

/// Where `scripts/install-cassandra` puts the jars by default.
pub fn default_home() -> PathBuf {
    if let Some(home) = std::env::var_os("SCALARDB_VERIFY_CASSANDRA_HOME") {
        return PathBuf::from(home);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    cache
        .join("scalardb-verify")
        .join(format!("cassandra-{DEFAULT_CASSANDRA_VERSION}"))
}

/// Cassandra 5.0 runs on Java 11 or 17, not later: prefer an explicit choice, then a
/// Java 17 install, then `java` on the PATH.
fn find_java() -> Result<PathBuf, CassandraRuntimeError> {
    if let Some(java) = std::env::var_os("SCALARDB_VERIFY_CASSANDRA_JAVA") {
        return Ok(PathBuf::from(java));
    }
    let candidates = [
        "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
        "/usr/lib/jvm/java-17-openjdk-arm64/bin/java",
        "/usr/lib/jvm/java-17-openjdk/bin/java",
    ];
    if let Some(found) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Ok(found);
    }
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let java = PathBuf::from(home).join("bin").join("java");
        if java.exists() {
            return Ok(java);
        }
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("java"))
                .find(|p| p.exists())
        })
        .ok_or(CassandraRuntimeError::NoJava)
}

fn dir_prefix(run_id: &str) -> String {
    let safe: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    format!("{DIR_PREFIX}{safe}-{ENGINE}-")
}

/// Completes a node's sandbox: the jars (which the account must be able to read), the Java
/// runtime when it is not under `/usr`, and the config directory `dir/conf` (the tool's,
/// created here), all read only.
fn confine(
    sandbox: Sandbox,
    dir: &Path,
    home: &Path,
    java: &Path,
    bridge: Option<&Path>,
) -> Result<Sandbox, CassandraRuntimeError> {
    let lib = home.join("lib");
    for path in std::iter::once(lib.as_path()).chain(bridge) {
        if !sandbox.account().can_read_bound(path) {
            return Err(CassandraRuntimeError::Unreadable {
                path: path.to_owned(),
            });
        }
    }
    let conf = dir.join(CONF_DIR);
    std::fs::create_dir(&conf)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o755))
        })
        .map_err(|source| CassandraRuntimeError::CreateDir {
            parent: dir.to_owned(),
            source,
        })?;
    let mut sandbox = sandbox.with_read_only(home).with_read_only(&conf);
    if let Some(bridge) = bridge {
        sandbox = sandbox.with_read_only(bridge);
    }
    if !java.starts_with("/usr") {
        // `<java home>/bin/java`: the whole runtime.
        if let Some(java_home) = java.parent().and_then(Path::parent) {
            sandbox = sandbox.with_read_only(java_home);
        }
    }
    Ok(sandbox)
}

/// A locked node's way out of its own network.
#[derive(Debug)]
struct Bridged {
    /// The `scalardb-verify` binary, bound read only into the node's and nodetool's sandboxes.
    program: PathBuf,
    /// The host's loopback port the tool's CQL clients reach the node at (the node's CQL
    /// socket behind it); open to this process alone.
    host_port: Option<super::bridge::HostPort>,
}

/// The node's CQL and JMX sockets in the tool's directory `dir`, fresh (a start retried
/// makes them anew): both mode 0600, the JMX one given to `account`, which dials it from
/// nodetool's sandbox. Nobody else may enter `dir`.
fn bind_sockets(
    dir: &Path,
    account: Account,
) -> Result<(UnixListener, UnixListener), CassandraRuntimeError> {
    use std::os::unix::fs::PermissionsExt as _;
    let bind = |name: &str| {
        let path = dir.join(name);
        let error = |source| CassandraRuntimeError::Socket {
            path: path.clone(),
            source,
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
        let listener = UnixListener::bind(&path).map_err(error)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
        Ok((listener, path))
    };
    let (cql, _) = bind(CQL_SOCKET)?;
    let (jmx, jmx_path) = bind(JMX_SOCKET)?;
    account
        .chown(&jmx_path)
        .map_err(|source| CassandraRuntimeError::Chown {
            path: jmx_path.clone(),
            uid: account.uid,
            source,
        })?;
    Ok((cql, jmx))
}

/// Writes a new file only its owner may read.
fn write_secret(path: &Path, contents: &str) -> Result<(), CassandraRuntimeError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|source| CassandraRuntimeError::WriteFile {
            path: path.to_owned(),
            source,
        })
}

/// Whether a failed start's log shows that a port chosen free was taken before the JVM
/// bound it: by another process ("Address already in use"), or by this node while a client
/// of another still dialled it (a CQL frame on the inter-node port, whose handshake then
/// fails its start: "InvalidLegacyProtocolMagic", seen in CI with several nodes starting).
fn port_taken(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("InvalidLegacyProtocolMagic")
}

fn free_port(address: Ipv4Addr) -> Result<u16, CassandraRuntimeError> {
    let error = |source| CassandraRuntimeError::FreePort { address, source };
    let listener = std::net::TcpListener::bind((address, 0)).map_err(error)?;
    Ok(listener.local_addr().map_err(error)?.port())
}

/// As the default role, creates the node's own superuser role `own` (if no role of that
/// name exists: a probe cut short may have created it already; one someone else created
/// has another password, and the lock-down's login as `own` fails).
pub(crate) async fn create_own_role(
    contact: &[String],
    own: &CassandraCredentials,
) -> Result<(), crate::store::CassandraError> {
    let default = CassandraWriter::connect_as(contact, Some(&default_credentials())).await?;
    default
        .execute_secret(
            &format!(
                "CREATE ROLE IF NOT EXISTS {OWN_ROLE} WITH SUPERUSER = true AND LOGIN = true \
                 AND PASSWORD = '{}'",
                own.password
            ),
            &format!("CREATE ROLE IF NOT EXISTS {OWN_ROLE} … PASSWORD = <redacted>"),
        )
        .await
}

/// The role Cassandra makes at first start, with its well-known password.
pub(crate) fn default_credentials() -> CassandraCredentials {
    CassandraCredentials {
        username: DEFAULT_ROLE.to_owned(),
        password: DEFAULT_ROLE.to_owned(),
    }
}

/// 32 hex digits from the kernel's random source: a password nobody else can guess.
pub(crate) fn random_secret() -> Result<String, CassandraRuntimeError> {
    use std::io::Read as _;
    let mut bytes = [0_u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(CassandraRuntimeError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Copies the SSTable components of the snapshot directory `source` into `staged`; the
/// names of the `…-Data.db` files copied. Each is opened without following links (see
/// [`open_regular`]) and created anew, so nothing outside the backup is read and nothing
/// outside `staged` is written.
fn copy_components(
    source: &Path,
    staged: &OwnedFd,
    account: Account,
) -> Result<Vec<String>, CassandraRuntimeError> {
    let copy_error = |from: &Path, source| CassandraRuntimeError::CopySstables {
        from: from.to_owned(),
        source,
    };
    let mut data_files = Vec::new();
    let entries = std::fs::read_dir(source).map_err(|e| copy_error(source, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| copy_error(source, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| copy_error(&path, e))?;
        if file_type.is_dir() {
            // A secondary index's directory: the import rebuilds the index.
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| is_plain_name(n)) else {
            return Err(CassandraRuntimeError::UnsafeSnapshotFile {
                path,
                reason: "its name is not UTF-8",
            });
        };
        if !file_type.is_file() {
            return Err(CassandraRuntimeError::UnsafeSnapshotFile {
                path,
                reason: if file_type.is_symlink() {
                    "it is a symbolic link (links are refused, never followed)"
                } else {
                    "it is not a regular file"
                },
            });
        }
        if NOT_COMPONENTS.contains(&name) {
            continue;
        }
        let mut from = open_regular(&path).map_err(|e| copy_error(&path, e))?;
        let mut to = create_file(staged, name).map_err(|e| copy_error(&path, e))?;
        io::copy(&mut from, &mut to).map_err(|e| copy_error(&path, e))?;
        // The import may rewrite a component's metadata in place.
        account.chown_fd(&to).map_err(|e| copy_error(&path, e))?;
        if name.ends_with("-Data.db") {
            data_files.push(name.to_owned());
        }
    }
    data_files.sort();
    Ok(data_files)
}

/// SSTables staged in the node's box for one `nodetool import`.
struct Staged {
    /// `box/import-<random>`, removed afterwards.
    root: PathBuf,
    /// `<keyspace>/<table>` under it, as the node sees it.
    inside: PathBuf,
    /// A handle on that table directory, whatever the node renames.
    table_dir: Option<OwnedFd>,
    data_files: Vec<String>,
}

impl Staged {
    /// The `data_files` still in the table directory after an import: the node did not
    /// load them.
    fn unloaded(&self) -> Vec<String> {
        let Some(dir) = &self.table_dir else {
            return Vec::new();
        };
        self.data_files
            .iter()
            .filter(|name| {
                nix::sys::stat::fstatat(
                    dir,
                    name.as_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .is_ok()
            })
            .cloned()
            .collect()
    }

    /// Removes the staging directory (never following a link the node may have put there).
    fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Opens the directory `name` (a path when `parent` is `None`, else one component under
/// it) without following a link.
fn open_dir(parent: Option<&OwnedFd>, name: &Path) -> io::Result<OwnedFd> {
    use nix::fcntl::{OFlag, openat};
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let mode = nix::sys::stat::Mode::empty();
    Ok(match parent {
        Some(fd) => openat(fd, name, flags, mode)?,
        None => openat(nix::fcntl::AT_FDCWD, name, flags, mode)?,
    })
}

/// Makes the new directory `name` under `parent` (mode 0755) and opens it.
fn make_dir(parent: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    nix::sys::stat::mkdirat(
        parent,
        name,
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    )?;
    open_dir(Some(parent), Path::new(name))
}

/// Creates the new file `name` under `parent` (mode 0644), failing if anything is there.
fn create_file(parent: &OwnedFd, name: &str) -> io::Result<std::fs::File> {
    use nix::fcntl::{OFlag, openat};
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(
        parent,
        name,
        flags,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )?;
    Ok(std::fs::File::from(fd))
}

/// The problems a node logged (its WARN and ERROR lines and the exceptions' causes, at most
/// [`LOG_PROBLEM_LINES`]), appended to `output`; `output` alone when it logged none.
pub(crate) fn with_log_problems(output: String, log: &str) -> String {
    let mut problems: Vec<&str> = log
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            line.contains(" ERROR ")
                || line.contains(" WARN ")
                || line.starts_with("Caused by:")
                || is_exception_header(line)
        })
        .collect();
    problems.dedup();
    if problems.is_empty() {
        return output;
    }
    let first = problems.len().saturating_sub(LOG_PROBLEM_LINES);
    format!(
        "{output}\nthe node logged:\n{}",
        problems[first..].join("\n")
    )
}

/// `java.io.IOException: …`: a Java exception's first line (the stack frames after it are
/// left out).
fn is_exception_header(line: &str) -> bool {
    line.split_once(": ").is_some_and(|(class, _)| {
        !class.contains(char::is_whitespace)
            && class.contains('.')
            && (class.ends_with("Exception") || class.ends_with("Error"))
    })
}

/// The text of `path` from byte `offset` on; empty if it can't be read.
fn read_from(path: &Path, offset: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut text)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&text).into_owned(),
        Err(_) => String::new(),
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_retried_only_when_a_port_was_taken() {
        assert!(port_taken(
            "java.net.BindException: Address already in use\n"
        ));
        assert!(port_taken(
            "Caused by: org.apache.cassandra.net.Message$InvalidLegacyProtocolMagic: Read 67108864, Expected -900387334"
        ));
        assert!(!port_taken(
            "Exception encountered during startup: corrupt sstable"
        ));
    }

    #[test]
    fn import_failures_quote_what_the_node_logged() {
        let log = "10:00:01.000 INFO  [main] StorageService - Node is ready\n\
                   10:00:02.000 ERROR [RMI] SSTableImporter - Failed importing sstables in directory /x/bank/accounts\n\
                   org.apache.cassandra.io.sstable.CorruptSSTableException: Corrupted: /x/bank/accounts/nb-1-big-Data.db\n\
                   \tat org.apache.cassandra.io.sstable.SSTable.foo(SSTable.java:1)\n\
                   Caused by: java.io.IOException: Digest mismatch\n";
        let quoted = with_log_problems("Some directories failed to import".to_owned(), log);
        assert_eq!(
            quoted,
            "Some directories failed to import\nthe node logged:\n\
             10:00:02.000 ERROR [RMI] SSTableImporter - Failed importing sstables in directory /x/bank/accounts\n\
             org.apache.cassandra.io.sstable.CorruptSSTableException: Corrupted: /x/bank/accounts/nb-1-big-Data.db\n\
             Caused by: java.io.IOException: Digest mismatch"
        );
        assert_eq!(with_log_problems("out".to_owned(), "INFO only\n"), "out");
    }

    #[test]
    fn sweep_removes_orphaned_cassandra_dirs_only() {
        let root = tempfile::tempdir().unwrap();
        let orphan = root.path().join(format!("{DIR_PREFIX}orphan-cassandra-x"));
        std::fs::create_dir(&orphan).unwrap();
        let mut label = Label {
            tool: TOOL.into(),
            run_id: "orphan".into(),
            engine: ENGINE.into(),
            owner: ProcessId::of(std::process::id()),
            server: None,
            port: None,
            created_at: String::new(),
        };
        label.owner = label.owner.map(|o| ProcessId {
            start_time: o.start_time + 1,
            ..o
        });
        label.write(&orphan).unwrap();
        let live = root.path().join(format!("{DIR_PREFIX}live-cassandra-x"));
        std::fs::create_dir(&live).unwrap();
        Label {
            run_id: "live".into(),
            owner: ProcessId::of(std::process::id()),
            ..label.clone()
        }
        .write(&live)
        .unwrap();
        let postgres = root.path().join(format!("{DIR_PREFIX}pg"));
        std::fs::create_dir(&postgres).unwrap();
        Label {
            engine: "postgres".into(),
            ..label
        }
        .write(&postgres)
        .unwrap();

        let swept = sweep_cassandra_in(root.path(), &SweepScope::Orphaned).unwrap();
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert!(!orphan.exists() && live.exists() && postgres.exists());
    }

    #[test]
    fn prefix_is_safe() {
        assert_eq!(dir_prefix("a/b c"), "scalardb-verify-a_b_c-cassandra-");
    }
}
