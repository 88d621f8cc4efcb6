//! A disposable single-node Cassandra in a container, for restoring node snapshots.
//!
//! A [`DockerCassandra`] owns one container of the official `cassandra:5.0` image (or any
//! image with its contract: the `CASSANDRA_*` variables, `MAX_HEAP_SIZE`/`HEAP_NEWSIZE`,
//! `JVM_EXTRA_OPTS`, `nodetool` on the PATH, a C library as recent as glibc 2.34) with a
//! network of its own (`none`: a loopback and nothing else), so a node taken over by a
//! crafted SSTable reaches nothing on the machine or beyond. Its CQL port comes out through
//! the tool's own binary, mounted read only and run as the container's first process
//! (`scalardb-verify bridge`, which then runs the image's entrypoint as its child): it makes a
//! Unix socket in a host directory private to the tool's user ([`SocketDir`]) and dials the
//! node for each connection; on the host, a loopback port open to this process and those it
//! started alone ([`crate::runtime::bridge::HostPort`]) carries the driver's connections to
//! that socket. nodetool runs inside the container, in the node's network. Each node still
//! gets a loopback address of its own, `127.x.y.z`, as its listen and RPC address, and JMX a
//! port chosen free through `-Dcassandra.jmx.local.port` in `JVM_EXTRA_OPTS` (the official
//! `cassandra-env.sh` appends that variable last): inside its own network neither can
//! collide, but they keep nodes apart in names, labels and reports.
//!
//! The node answers only this tool, as the local runtime's does
//! ([`crate::runtime::cassandra`], whose lock-down steps it calls): PasswordAuthenticator and
//! CassandraAuthorizer through Cassandra's `cassandra.settings.*` system properties in
//! `JVM_EXTRA_OPTS` (so the image's own cassandra.yaml, and its entrypoint's edits of it,
//! stay as they are); once the node asks for credentials, the default `cassandra` role
//! creates the tool's own with a fresh random password, which then drops the default role
//! and checks that no other role, keyspace or session appeared meanwhile (again after the
//! load: [`DockerCassandra::check_locked`]). JMX asks for a password too, from a file in a
//! directory of the server account's alone, uploaded before the container starts; the
//! image's `nodetool` reads it with `-pwf`. No password is on a command line or in the
//! container's environment. The container keeps only the capabilities its entrypoint
//! needs to drop to the server's account, with no new privileges and a pids limit.
//!
//! Readiness is a real CQL answer ([`super::cql`]), then the tool's own role. SSTables are
//! loaded with the image's own `nodetool import`, from a directory uploaded into the data
//! volume (so that the import moves files rather than copying them across file systems),
//! every file read through [`crate::backup::cassandra::open_regular`].
//!
//! This module must not publish ports or touch containers it did not label; it talks to the
//! engine only through [`super::client`], and CQL only through `store` (beside the probe).

use std::fmt;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::client::{Client, Confinement, ContainerSpec};
use super::cql::{self, Answer};
use super::socket_dir::SocketDir;
use super::{
    CONTAINER_CAPABILITIES, DockerOptions, DockerRuntimeError, ExecOutput, LABEL_ADDRESS,
    LABEL_SOCKET_DIR, PROBE_ATTEMPT_TIMEOUT, StartFailure, StartingContainer, archive,
    client_with_image, container_name, exec_as, exit_status, free_port, labels, remove_on_drop,
    start_with_retries, tail_lines,
};
use crate::backup::cassandra::NOT_COMPONENTS;
use crate::runtime::cassandra::{
    CassandraRuntimeError, DEFAULT_ROLE, OWN_ROLE, check_roles_and_clients, create_own_role,
    random_secret, user_keyspaces,
};
use crate::store::{CassandraCredentials, CassandraWriter};

/// The image `start` uses when `DockerOptions::image` is `None`.
pub const DEFAULT_CASSANDRA_IMAGE: &str = "cassandra:5.0";
/// The value of the engine label.
const ENGINE: &str = "cassandra";
/// The official image's CQL port, on the node's own address.
pub const CASSANDRA_NATIVE_PORT: u16 = 9042;
/// The official image's inter-node port, on the node's own address.
const STORAGE_PORT: u16 = 7000;
/// A modest heap: the node holds one restored backup, not production traffic. G1 ignores
/// the young generation's size, but the official `cassandra-env.sh` wants both or neither.
const MAX_HEAP_SIZE: &str = "1G";
const HEAP_NEWSIZE: &str = "200M";
/// A single node has nobody to gossip with: no waiting for gossip to settle, a short ring
/// delay.
const FAST_START_OPTIONS: &str =
    "-Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=1000";
/// How many random loopback addresses to try before giving up.
const ADDRESS_ATTEMPTS: u32 = 20;
/// How many times to start over when the JMX port (chosen free, then bound by the JVM a few
/// seconds later) or the address was taken in between.
const START_ATTEMPTS: u32 = 3;
/// Where uploads for `nodetool import` go: the data volume, where Cassandra's data lives.
const IMPORT_PARENT: &str = "/var/lib/cassandra";
/// How much of the container's log is searched for the reason an import failed.
const IMPORT_LOG_LINES: usize = 200;
/// How much of the container's log is searched, until found, for the line saying the node
/// listens for CQL clients (a node logs a few hundred lines on its way up).
const LISTENING_LOG_LINES: usize = 2000;
/// The account the image runs the server as, by name and by id (999 in the official image
/// and in the test image): it owns the node's secrets, and runs every command but `chown`.
const SERVER_USER: &str = "cassandra";
const SERVER_UID: u64 = 999;
/// The directory, at the container's root, that holds the node's secrets: the server
/// account's alone (0700, files 0600), uploaded before the container starts. The JVM reads
/// the JMX password and access files (it refuses a password file others can read); nodetool
/// the first with `-pwf`; the CQL password is there for a node kept with `--keep`.
const SECRET_DIR: &str = "scalardb-verify-secret";
const JMX_PASSWORD_FILE: &str = "jmx.password";
const JMX_ACCESS_FILE: &str = "jmx.access";
const CQL_PASSWORD_FILE: &str = "cql.password";
/// The container's network is its own (`none`: a loopback and nothing else). Its CQL port
/// comes out through this socket, which the tool's binary, mounted read only as the
/// container's first process, makes in a host directory private to the tool's user.
const CQL_SOCKET: &str = "cql.sock";
const SOCKET_MOUNT: &str = "/scalardb-verify-socket";
const BRIDGE_MOUNT: &str = "/scalardb-verify-bridge/scalardb-verify";
/// At most this many processes and threads: a Cassandra JVM runs a few hundred threads
/// under load (native transport, compaction, an import per table at once).
const PIDS_LIMIT: i64 = 2048;
/// Authentication on through Cassandra 5.0's `cassandra.settings.<name>` properties, which
/// override cassandra.yaml once `cassandra.config.allow_system_properties` is set; no
/// credentials cache, so the default role's password stops working the moment the role is
/// dropped (cached, it went on working for up to its 2 s validity); the default role at
/// once, so the lock-down does not wait for it; cheap password hashes, since the only
/// password is 128 random bits.
const AUTH_OPTIONS: &str = "-Dcassandra.config.allow_system_properties=true \
     -Dcassandra.settings.authenticator=PasswordAuthenticator \
     -Dcassandra.settings.authorizer=CassandraAuthorizer \
     -Dcassandra.settings.credentials_validity=0ms \
     -Dcassandra.superuser_setup_delay_ms=0 -Dcassandra.auth_bcrypt_gensalt_log2_rounds=4";
/// JMX with a password. Cassandra's JMX authenticator needs `com.sun.jmx.remote.security`,
/// which the image's Java 17 options do not export (the node refuses to start without it).
const JMX_AUTH_OPTIONS: &str = "--add-exports=java.management/com.sun.jmx.remote.security=ALL-UNNAMED \
     -Dcom.sun.management.jmxremote.authenticate=true";

/// A Cassandra node running in a container with a network of its own, at a loopback address
/// of its own, reached through its CQL socket.
///
/// Call [`stop`](Self::stop) when done; dropping it instead removes the container on a
/// helper thread, blocking the dropping thread for up to 15 s.
pub struct DockerCassandra {
    client: Client,
    image: String,
    container_id: String,
    name: String,
    address: Ipv4Addr,
    jmx_port: u16,
    /// The node's own CQL role, with its fresh random password.
    credentials: CassandraCredentials,
    release_version: Option<String>,
    started_in: Duration,
    /// When the probe first found the node asking for credentials.
    listening_since: Option<Instant>,
    default_role_window: Option<Duration>,
    /// The host directory the container's CQL socket is in, and the loopback port of the
    /// host (open to this process and those it started alone) the tool's clients use.
    socket_dir: SocketDir,
    host_port: crate::runtime::bridge::HostPort,
    removed: bool,
    uploads: AtomicU64,
}

impl fmt::Debug for DockerCassandra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerCassandra")
            .field("image", &self.image)
            .field("container_id", &self.container_id)
            .field("name", &self.name)
            .field("address", &self.address)
            .field("jmx_port", &self.jmx_port)
            .field("credentials", &self.credentials)
            .field("release_version", &self.release_version)
            .field("removed", &self.removed)
            .finish_non_exhaustive()
    }
}

impl DockerCassandra {
    /// Starts a labelled, confined container of `opts.image` (default `cassandra:5.0`;
    /// pulled first if missing, outside the timeout) on a free loopback address, waits until
    /// the node asks this host's CQL clients for credentials, and locks it to a role of its
    /// own (see the module's documentation), within `opts.startup_timeout`. If the container
    /// exits during startup, fails at once with the end of its log; a node that answers
    /// without a password, or that someone else reached first, fails; the container is
    /// removed on every failure. `opts.superuser_password` is not used: the node's own role
    /// always gets a fresh random password.
    pub async fn start(opts: &DockerOptions) -> Result<Self, DockerRuntimeError> {
        // Boxed: the start-up future is deep enough to overflow the layout computation of
        // any async caller that holds it inline.
        Box::pin(Self::start_unboxed(opts)).await
    }

    async fn start_unboxed(opts: &DockerOptions) -> Result<Self, DockerRuntimeError> {
        let image = opts
            .image
            .clone()
            .unwrap_or_else(|| DEFAULT_CASSANDRA_IMAGE.to_owned());
        let client = client_with_image(&image).await?;
        let bridge = opts
            .bridge
            .clone()
            .map_or_else(std::env::current_exe, Ok)
            .map_err(|source| DockerRuntimeError::NoBridge { source })?;
        let entrypoint = client.image_entrypoint(&image).await?;
        let began = Instant::now();
        let deadline = began + opts.startup_timeout;
        // An attempt fails as taken when the address or the JMX port was bound before the
        // JVM bound it: the next attempt picks fresh ones.
        let mut node =
            start_with_retries(START_ATTEMPTS, deadline, opts.startup_timeout, async || {
                let address = free_address()?;
                let jmx_port = free_port()?;
                let socket_dir = SocketDir::create(CQL_SOCKET)
                    .map_err(|source| DockerRuntimeError::CreateCassandraSocketDir { source })?;
                let socket = socket_dir.socket_dir().join(CQL_SOCKET);
                let host_port = match crate::runtime::bridge::HostPort::open(&socket) {
                    Ok(port) => port,
                    Err(source) => {
                        let _ = socket_dir.remove();
                        return Err(DockerRuntimeError::HostPort { socket, source });
                    }
                };
                let mut spec = container_spec(&image, address, jmx_port, &opts.run_id);
                spec.entrypoint = Some(bridged_entrypoint(address, &entrypoint));
                spec.labels.insert(
                    LABEL_SOCKET_DIR.to_owned(),
                    socket_dir.path().to_string_lossy().into_owned(),
                );
                let mut confinement = Confinement::isolated(
                    (
                        socket_dir.socket_dir().to_string_lossy().into_owned(),
                        SOCKET_MOUNT.to_owned(),
                    ),
                    CONTAINER_CAPABILITIES,
                    PIDS_LIMIT,
                );
                confinement.read_only_binds.push((
                    bridge.to_string_lossy().into_owned(),
                    BRIDGE_MOUNT.to_owned(),
                ));
                let created = tokio::time::timeout_at(
                    deadline,
                    client.create_confined_container(&spec, &confinement),
                )
                .await
                .map_err(|_elapsed| DockerRuntimeError::CassandraTimeout {
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
                // From here on, an early return drops the node, which removes the container.
                let mut node = Self {
                    client: client.clone(),
                    image: image.clone(),
                    container_id,
                    name: spec.name,
                    address,
                    jmx_port,
                    credentials: CassandraCredentials {
                        username: OWN_ROLE.to_owned(),
                        password: String::new(),
                    },
                    release_version: None,
                    started_in: Duration::ZERO,
                    listening_since: None,
                    default_role_window: None,
                    socket_dir,
                    host_port,
                    removed: false,
                    uploads: AtomicU64::new(0),
                };
                node.upload_secrets().await?;
                Ok(node)
            })
            .await?;
        node.started_in = began.elapsed();
        Ok(node)
    }

    /// The host's loopback port the node's CQL socket is carried to (open to this process
    /// and those it started alone), for the CQL driver.
    pub fn contact_point(&self) -> String {
        self.host_port.address().to_string()
    }

    /// The Unix socket the node's CQL port comes out through (in a host directory private
    /// to the tool's user); it outlives the tool with a node kept by `--keep`.
    pub fn cql_socket(&self) -> PathBuf {
        self.socket_dir.socket_dir().join(CQL_SOCKET)
    }

    /// The `cassandra://` URL the scan takes, with the node's own credentials.
    pub fn url(&self) -> String {
        format!(
            "cassandra://{}:{}@{}",
            self.credentials.username,
            self.credentials.password,
            self.contact_point()
        )
    }

    /// The node's own CQL role and its password: the only role the node has.
    pub fn credentials(&self) -> &CassandraCredentials {
        &self.credentials
    }

    /// Where the CQL password is inside the container (readable by the server's account
    /// alone), for a node kept with `--keep`.
    pub fn password_file(&self) -> String {
        secret_path(CQL_PASSWORD_FILE)
    }

    /// How long the default role worked: from the probe's first finding the node asking
    /// for credentials (it probes every 100 to 500 ms, so up to that much earlier) to the
    /// drop of the role.
    pub fn default_role_window(&self) -> Option<Duration> {
        self.default_role_window
    }

    /// Checks that nobody but this tool used the node: its own role is the only one, it
    /// holds no keyspace the tool did not make (`expected`), and every open CQL session is
    /// the tool's own.
    pub async fn check_locked(&self, expected: &[&str]) -> Result<(), DockerRuntimeError> {
        let writer = self
            .writer()
            .await
            .map_err(self.lock_error("connect as the node's own role"))?;
        check_roles_and_clients(&writer)
            .await
            .map_err(|e| self.locked_error(e))?;
        let foreign: Vec<String> = user_keyspaces(&writer)
            .await
            .map_err(|e| self.locked_error(e))?
            .into_iter()
            .filter(|k| !expected.contains(&k.as_str()))
            .collect();
        if !foreign.is_empty() {
            return Err(self.locked_error(CassandraRuntimeError::Intruded {
                what: format!("it holds keyspaces the backup does not: {foreign:?}"),
            }));
        }
        Ok(())
    }

    /// A writable session as the node's own role.
    pub async fn writer(&self) -> Result<CassandraWriter, crate::store::CassandraError> {
        CassandraWriter::connect_as(&[self.contact_point()], Some(&self.credentials)).await
    }

    /// The node's own loopback address (listen, RPC and broadcast address).
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    pub fn native_port(&self) -> u16 {
        CASSANDRA_NATIVE_PORT
    }

    /// The node's JMX port on 127.0.0.1, which [`nodetool`](Self::nodetool) passes.
    pub fn jmx_port(&self) -> u16 {
        self.jmx_port
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

    /// `release_version` from `system.local`, as the lock-down read it as the node's own role.
    pub fn release_version(&self) -> Option<&str> {
        self.release_version.as_deref()
    }

    /// How long `start` took, creating the container to the first CQL answer.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Runs `cmd` inside the container as the server's account (`cassandra`), never root,
    /// and waits for it. A non-zero exit code is an `Ok` result, for the caller to judge.
    pub async fn exec(&self, cmd: &[&str]) -> Result<ExecOutput, DockerRuntimeError> {
        exec_as(
            &self.client,
            &self.container_id,
            Some(SERVER_USER),
            cmd,
            Vec::new(),
        )
        .await
    }

    /// Runs the image's `nodetool` against this node, as the node's own JMX user
    /// (`-p <jmx port> -u scalardb_verify -pwf <password file>` are passed first: the
    /// password stays in its file).
    pub async fn nodetool(&self, args: &[&str]) -> Result<ExecOutput, DockerRuntimeError> {
        let port = self.jmx_port.to_string();
        let password_file = secret_path(JMX_PASSWORD_FILE);
        let mut cmd = vec![
            "nodetool",
            "-p",
            &port,
            "-u",
            OWN_ROLE,
            "-pwf",
            &password_file,
        ];
        cmd.extend_from_slice(args);
        self.exec(&cmd).await
    }

    /// Loads the SSTable components in `host_dir` (a snapshot or backup directory of one
    /// table: `manifest.json`, `schema.cql` and subdirectories are left out) into
    /// `keyspace.table`, which must exist with a compatible schema. The files are uploaded
    /// into a fresh `<keyspace>/<table>/` directory in the data volume, handed to the
    /// `cassandra` user, and moved into the table by `nodetool import`; the upload is removed
    /// afterwards. A directory with no components is a table that had no data: nothing to do.
    /// Fails with nodetool's output when it exits non-zero or lists directories that failed
    /// to import (it exits 0 for those).
    pub async fn import_sstables(
        &self,
        keyspace: &str,
        table: &str,
        host_dir: &Path,
    ) -> Result<(), DockerRuntimeError> {
        let components = sstable_components(host_dir).await?;
        let data_files: Vec<String> = components
            .iter()
            .filter_map(|p| p.file_name()?.to_str())
            .filter(|n| n.ends_with("-Data.db"))
            .map(str::to_owned)
            .collect();
        if data_files.is_empty() {
            return Ok(());
        }
        let top = format!(
            "scalardb-verify-import-{}",
            self.uploads.fetch_add(1, Ordering::Relaxed)
        );
        let (tar, builder) =
            archive::files_stream(components, top.clone(), format!("{keyspace}/{table}"));
        let uploaded = self
            .client
            .upload(&self.container_id, IMPORT_PARENT, tar)
            .await;
        let archive_error = |source| DockerRuntimeError::Archive {
            path: host_dir.to_path_buf(),
            container: self.name.clone(),
            source,
        };
        let upload_dir = format!("{IMPORT_PARENT}/{top}");
        let imported = async {
            // The archive's own error first: an upload cut short by it only says "ended early".
            builder
                .await
                .map_err(|e| archive_error(io::Error::other(e)))?
                .map_err(archive_error)?;
            uploaded?;
            let import_error = |exit_code, output: &str| DockerRuntimeError::ImportSstables {
                container: self.name.clone(),
                table: format!("{keyspace}.{table}"),
                dir: host_dir.to_path_buf(),
                exit_code,
                output: output.to_owned(),
            };
            // The import moves the files, so the server's user must own them. As root, with
            // the container's CHOWN; our own command, never the backup's.
            let owner = format!("{SERVER_USER}:{SERVER_USER}");
            let chown = exec_as(
                &self.client,
                &self.container_id,
                Some("root"),
                &["chown", "-R", &owner, &upload_dir],
                Vec::new(),
            )
            .await?;
            if !chown.success() {
                return Err(import_error(chown.exit_code, &tail_lines(&chown.stderr)));
            }
            let staged = format!("{upload_dir}/{keyspace}/{table}");
            let out = self.nodetool(&["import", keyspace, table, &staged]).await?;
            let output = format!("{}{}", out.stdout, out.stderr);
            if !out.success() || output.contains("failed to import") {
                // nodetool says only "check server logs": the log goes with the container,
                // so the reason is quoted here.
                let log = self.log_tail(IMPORT_LOG_LINES).await.unwrap_or_default();
                let output =
                    crate::runtime::cassandra::with_log_problems(tail_lines(&output), &log);
                return Err(import_error(out.exit_code, &output));
            }
            // nodetool exits 0 when the node skipped every file it did not recognise ("No
            // new SSTables were found" in its log): each Data.db must have moved out.
            let left = self.exec(&["ls", "-1A", &staged]).await?;
            if !left.success() {
                return Err(import_error(left.exit_code, &tail_lines(&left.stderr)));
            }
            let unloaded = unloaded_data_files(&left.stdout, &data_files);
            if !unloaded.is_empty() {
                let log = self.log_tail(IMPORT_LOG_LINES).await.unwrap_or_default();
                let output = crate::runtime::cassandra::with_log_problems(
                    format!(
                        "the node loaded none or only some of the {} SSTables the snapshot \
                         holds (not loaded: {}); nodetool said:\n{}",
                        data_files.len(),
                        unloaded.join(", "),
                        tail_lines(&output)
                    ),
                    &log,
                );
                return Err(import_error(out.exit_code, &output));
            }
            Ok(())
        }
        .await;
        // Best effort: the container and its files go at `stop` anyway.
        let _ = self.exec(&["rm", "-rf", &upload_dir]).await;
        imported
    }

    /// The last lines of the container's log (the node's output).
    pub async fn log_tail(&self, lines: usize) -> Result<String, DockerRuntimeError> {
        self.client.logs_tail(&self.container_id, lines).await
    }

    /// Kills the container and removes it with its data volume. The data is disposable, so
    /// there is no clean shutdown to wait for.
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

    /// Uploads the node's secrets into the created container: a fresh JMX password and
    /// access file for the tool's own JMX user, and the fresh password of its CQL role.
    async fn upload_secrets(&mut self) -> Result<(), DockerRuntimeError> {
        let cql = random_secret().map_err(|e| self.locked_error(e))?;
        let jmx = random_secret().map_err(|e| self.locked_error(e))?;
        self.credentials.password = cql;
        let files: [(&str, String); 3] = [
            (JMX_PASSWORD_FILE, format!("{OWN_ROLE} {jmx}\n")),
            (JMX_ACCESS_FILE, format!("{OWN_ROLE} readwrite\n")),
            (
                CQL_PASSWORD_FILE,
                format!("{}\n", self.credentials.password),
            ),
        ];
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(name, contents)| (*name, contents.as_bytes()))
            .collect();
        let tar =
            archive::owned_secret_archive(SECRET_DIR, SERVER_UID, &files).map_err(|source| {
                DockerRuntimeError::Archive {
                    path: PathBuf::from(format!("/{SECRET_DIR}")),
                    container: self.name.clone(),
                    source,
                }
            })?;
        self.client.upload_bytes(&self.container_id, "/", tar).await
    }

    /// As the default role (the only one Cassandra lets in at first start), creates the
    /// node's own superuser role. Fails, with the error chain, until the node has made its
    /// default role.
    async fn create_own_role(&self) -> Result<(), String> {
        create_own_role(&[self.contact_point()], &self.credentials)
            .await
            .map_err(|e| crate::scan::error_chain(&e))
    }

    /// As the node's own role: drops the default one and checks nobody else got in
    /// meanwhile (no other role, no keyspace, no session but the tool's), as the local
    /// runtime's lock-down does. From the node's first asking for credentials to the drop,
    /// `cassandra`/`cassandra` works for anyone on the machine; what such a client could
    /// leave behind is looked for here and again after the load (`check_locked`).
    async fn lock(&mut self) -> Result<(), DockerRuntimeError> {
        let writer = self
            .writer()
            .await
            .map_err(self.lock_error("connect as the node's own role"))?;
        writer
            .execute(&format!("DROP ROLE {DEFAULT_ROLE}"))
            .await
            .map_err(self.lock_error("drop the default role"))?;
        self.default_role_window = self.listening_since.map(|since| since.elapsed());
        check_roles_and_clients(&writer)
            .await
            .map_err(|e| self.locked_error(e))?;
        let keyspaces = user_keyspaces(&writer)
            .await
            .map_err(|e| self.locked_error(e))?;
        if !keyspaces.is_empty() {
            return Err(self.locked_error(CassandraRuntimeError::Intruded {
                what: format!("a fresh node holds keyspaces: {keyspaces:?}"),
            }));
        }
        self.release_version = writer
            .texts("SELECT release_version FROM system.local")
            .await
            .map_err(self.lock_error("read the release version"))?
            .into_iter()
            .next()
            .flatten();
        Ok(())
    }

    fn lock_error(
        &self,
        step: &'static str,
    ) -> impl FnOnce(crate::store::CassandraError) -> DockerRuntimeError + '_ {
        move |source| {
            self.locked_error(CassandraRuntimeError::Lock {
                step,
                source: Box::new(source),
            })
        }
    }

    fn locked_error(&self, source: CassandraRuntimeError) -> DockerRuntimeError {
        DockerRuntimeError::CassandraLock {
            container: self.name.clone(),
            source: Box::new(source),
        }
    }

    async fn log_tail_or_note(&self) -> String {
        match self
            .client
            .logs_tail(&self.container_id, super::LOG_TAIL_LINES)
            .await
        {
            Ok(log) => log.trim_end().to_owned(),
            Err(e) => format!("(no log: {e})"),
        }
    }
}

impl StartingContainer for DockerCassandra {
    fn client(&self) -> &Client {
        &self.client
    }

    fn container_id(&self) -> &str {
        &self.container_id
    }

    /// Once the node's log says it listens, probes it until it asks for credentials and its
    /// default role creates the tool's own, then locks it ([`DockerCassandra::lock`]); fails
    /// when its container exits, it answers without a password, or the deadline passes.
    async fn wait_until_serving(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), StartFailure> {
        let fatal = StartFailure::Fatal;
        let target = SocketAddr::V4(self.host_port.address());
        let mut pause = Duration::from_millis(100);
        loop {
            let state = self
                .client
                .container_state(&self.container_id)
                .await
                .map_err(fatal)?;
            if !state.running {
                let log_tail = self.log_tail_or_note().await;
                let taken = ["Address already in use", "Port already in use"]
                    .iter()
                    .any(|needle| log_tail.contains(needle));
                let error = DockerRuntimeError::CassandraExited {
                    container: self.name.clone(),
                    status: exit_status(state),
                    log_tail,
                };
                return Err(if taken {
                    StartFailure::Taken(error)
                } else {
                    StartFailure::Fatal(error)
                });
            }
            // Probed only once the node's own log says it holds its CQL port: whatever else
            // answers there first (someone who bound the address while the JVM was
            // starting) is never taken for the node, nor given its password.
            let listening = self.listening_since.is_some()
                || self
                    .log_tail(LISTENING_LOG_LINES)
                    .await
                    .map_err(fatal)?
                    .contains(&format!(
                        "Starting listening for CQL clients on /{}:{CASSANDRA_NATIVE_PORT}",
                        self.address
                    ));
            // Capped per attempt, so one connection stuck half-open does not use up the
            // whole deadline. Every failure is "not yet": refused until the node listens.
            let attempt_deadline = (Instant::now() + PROBE_ATTEMPT_TIMEOUT).min(deadline);
            let attempt = async {
                if !listening {
                    return Err(Some(
                        "the node has not logged that it listens yet".to_owned(),
                    ));
                }
                if self.listening_since.is_none() {
                    match cql::probe(target).await {
                        Ok(Answer::AuthenticationRequired) => {
                            self.listening_since = Some(Instant::now());
                        }
                        // The image ignored the authenticator: the node is anybody's.
                        Ok(Answer::Version(_)) => return Err(None),
                        Err(e) => return Err(Some(e.to_string())),
                    }
                }
                // Fails until the node has made its default role, moments after it listens.
                self.create_own_role().await.map_err(Some)
            };
            let last_probe = match tokio::time::timeout_at(attempt_deadline, attempt).await {
                Ok(Ok(())) => return self.lock().await.map_err(fatal),
                Ok(Err(None)) => {
                    return Err(fatal(DockerRuntimeError::CassandraUnlocked {
                        container: self.name.clone(),
                    }));
                }
                Ok(Err(Some(e))) => e,
                Err(_elapsed) => format!("no answer within {PROBE_ATTEMPT_TIMEOUT:?}"),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(fatal(DockerRuntimeError::CassandraNotReady {
                    container: self.name.clone(),
                    contact_point: self.contact_point(),
                    timeout,
                    last_probe,
                    log_tail: self.log_tail_or_note().await,
                }));
            }
            // A short backoff between probes, not a guess at how long startup takes.
            tokio::time::sleep_until((now + pause).min(deadline)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    async fn remove(self) -> Result<(), DockerRuntimeError> {
        self.stop().await
    }
}

impl Drop for DockerCassandra {
    fn drop(&mut self) {
        if !self.removed {
            remove_on_drop(self.container_id.clone());
            let _ = self.socket_dir.remove();
        }
    }
}

/// The container's first process: the tool's bridge, which makes the CQL socket in the
/// mounted socket directory, dials the node's port in the container's own network for each
/// connection, and runs the image's own entrypoint (with the command) as its child.
fn bridged_entrypoint(address: Ipv4Addr, image_entrypoint: &[String]) -> Vec<String> {
    let forward = crate::runtime::bridge::Forward {
        listen: crate::runtime::bridge::Listen::Unix(Path::new(SOCKET_MOUNT).join(CQL_SOCKET)),
        dial: crate::runtime::bridge::Dial::Tcp(SocketAddrV4::new(address, CASSANDRA_NATIVE_PORT)),
    };
    let mut entrypoint = vec![
        BRIDGE_MOUNT.to_owned(),
        "bridge".to_owned(),
        "--drop-root".to_owned(),
        "--forward".to_owned(),
        forward.to_string(),
        "--".to_owned(),
    ];
    entrypoint.extend_from_slice(image_entrypoint);
    entrypoint
}

fn container_spec(image: &str, address: Ipv4Addr, jmx_port: u16, run_id: &str) -> ContainerSpec {
    let mut labels = labels(run_id, ENGINE, CASSANDRA_NATIVE_PORT);
    labels.insert(LABEL_ADDRESS.to_owned(), address.to_string());
    ContainerSpec {
        name: container_name(run_id, ENGINE, address),
        image: image.to_owned(),
        entrypoint: None,
        // Cassandra resolves its own host name at start; in a network of its own nothing
        // but `localhost` resolves.
        hostname: Some("localhost".to_owned()),
        cmd: vec!["cassandra".to_owned(), "-f".to_owned()],
        env: server_env(address, jmx_port),
        labels,
        stop_signal: None,
    }
}

/// Where a secret file is inside the container.
fn secret_path(name: &str) -> String {
    format!("/{SECRET_DIR}/{name}")
}

/// The official image's variables: every address is the node's own, it is its own seed;
/// authentication for CQL and JMX in `JVM_EXTRA_OPTS`, which names the secret files but
/// holds no secret (`docker inspect` shows it).
fn server_env(address: Ipv4Addr, jmx_port: u16) -> Vec<String> {
    vec![
        format!("CASSANDRA_LISTEN_ADDRESS={address}"),
        format!("CASSANDRA_RPC_ADDRESS={address}"),
        format!("CASSANDRA_BROADCAST_ADDRESS={address}"),
        format!("CASSANDRA_SEEDS={address}"),
        "CASSANDRA_CLUSTER_NAME=scalardb-verify".to_owned(),
        format!("MAX_HEAP_SIZE={MAX_HEAP_SIZE}"),
        format!("HEAP_NEWSIZE={HEAP_NEWSIZE}"),
        format!(
            "JVM_EXTRA_OPTS=-Dcassandra.jmx.local.port={jmx_port} {FAST_START_OPTIONS} \
             {AUTH_OPTIONS} {JMX_AUTH_OPTIONS} \
             -Dcom.sun.management.jmxremote.password.file={} \
             -Dcom.sun.management.jmxremote.access.file={}",
            secret_path(JMX_PASSWORD_FILE),
            secret_path(JMX_ACCESS_FILE),
        ),
    ]
}

/// The regular files of `dir` that may be SSTable components, sorted. A symbolic link, or
/// anything else that is neither a regular file nor a directory, is refused, never
/// followed: only the backup's own files go into the container.
async fn sstable_components(dir: &Path) -> Result<Vec<PathBuf>, DockerRuntimeError> {
    let error = |source| DockerRuntimeError::ListSstables {
        dir: dir.to_path_buf(),
        source,
    };
    let mut entries = tokio::fs::read_dir(dir).await.map_err(error)?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(error)? {
        let path = entry.path();
        let refused = |reason: &str| DockerRuntimeError::ListSstables {
            dir: dir.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} {reason}", path.display()),
            ),
        };
        let file_type = entry.file_type().await.map_err(error)?;
        if file_type.is_dir() {
            continue;
        }
        if file_type.is_symlink() {
            return Err(refused(
                "is a symbolic link (links are refused, never followed)",
            ));
        }
        if !file_type.is_file() {
            return Err(refused("is not a regular file"));
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(refused("has a name that is not UTF-8"));
        };
        if !NOT_COMPONENTS.contains(&name) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The `data_files` still listed in `ls -1A` output of the import directory.
fn unloaded_data_files(listing: &str, data_files: &[String]) -> Vec<String> {
    let left: std::collections::BTreeSet<&str> = listing.lines().map(str::trim).collect();
    data_files
        .iter()
        .filter(|name| left.contains(name.as_str()))
        .cloned()
        .collect()
}

/// A loopback address whose CQL and storage ports are free: `127.x.y.z` with `x` in
/// 100..250, clear of `127.0.0.0/16` (localhost, Debian's `127.0.1.1`, the local runtime's
/// nodes).
fn free_address() -> Result<Ipv4Addr, DockerRuntimeError> {
    let mut last_error = None;
    for _ in 0..ADDRESS_ATTEMPTS {
        let address = candidate_address(random_u64());
        let bound = [CASSANDRA_NATIVE_PORT, STORAGE_PORT]
            .iter()
            .try_for_each(|&port| std::net::TcpListener::bind((address, port)).map(drop));
        match bound {
            Ok(()) => return Ok(address),
            Err(e) => last_error = Some(e),
        }
    }
    Err(DockerRuntimeError::FreeAddress {
        attempts: ADDRESS_ATTEMPTS,
        source: last_error.unwrap_or_else(|| io::Error::other("no address tried")),
    })
}

fn candidate_address(random: u64) -> Ipv4Addr {
    let [a, b, c, ..] = random.to_le_bytes();
    let second = 100 + a % 150;
    let fourth = 1 + c % 254;
    Ipv4Addr::new(127, second, b, fourth)
}

/// Unpredictable enough to keep concurrent runs apart: std's per-process random hash keys
/// over a counter and the clock.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::docker::{LABEL_ENGINE, LABEL_PORT, LABEL_RUN_ID, LABEL_TOOL, TOOL};

    #[test]
    fn addresses_stay_in_loopback_clear_of_localhost() {
        for random in [0, 1, u64::MAX, 0x00ff_00ff, 0xdead_beef_cafe_f00d] {
            let address = candidate_address(random);
            let [first, second, _, fourth] = address.octets();
            assert_eq!(first, 127);
            assert!((100..250).contains(&second), "{address}");
            assert!((1..255).contains(&fourth), "{address}");
        }
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn a_free_address_has_both_fixed_ports_free() {
        let address = free_address().unwrap();
        assert!(address.is_loopback());
        std::net::TcpListener::bind((address, CASSANDRA_NATIVE_PORT)).unwrap();
    }

    #[test]
    fn every_container_is_labelled_and_moves_jmx_off_7199() {
        let address = Ipv4Addr::new(127, 123, 4, 5);
        let spec = container_spec("cassandra:5.0", address, 31234, "r1");
        assert_eq!(spec.labels[LABEL_TOOL], TOOL);
        assert_eq!(spec.labels[LABEL_RUN_ID], "r1");
        assert_eq!(spec.labels[LABEL_ENGINE], "cassandra");
        assert_eq!(spec.labels[LABEL_PORT], "9042");
        assert_eq!(spec.labels[LABEL_ADDRESS], "127.123.4.5");
        assert!(
            spec.name
                .starts_with("scalardb-verify-r1-cassandra-127.123.4.5-"),
            "{}",
            spec.name
        );
        assert!(
            spec.env
                .contains(&"CASSANDRA_LISTEN_ADDRESS=127.123.4.5".to_owned())
        );
        assert!(
            spec.env
                .contains(&"CASSANDRA_RPC_ADDRESS=127.123.4.5".to_owned())
        );
        let extra = spec
            .env
            .iter()
            .find_map(|e| e.strip_prefix("JVM_EXTRA_OPTS="))
            .unwrap();
        assert!(
            extra.starts_with("-Dcassandra.jmx.local.port=31234 "),
            "{extra}"
        );
        assert!(spec.env.contains(&"MAX_HEAP_SIZE=1G".to_owned()));
        // Authentication for CQL and JMX, from files: no secret in what `docker inspect`
        // shows.
        let words: Vec<&str> = extra.split(' ').collect();
        for option in [
            "-Dcassandra.config.allow_system_properties=true",
            "-Dcassandra.settings.authenticator=PasswordAuthenticator",
            "-Dcassandra.settings.authorizer=CassandraAuthorizer",
            "-Dcassandra.settings.credentials_validity=0ms",
            "-Dcom.sun.management.jmxremote.authenticate=true",
            "-Dcom.sun.management.jmxremote.password.file=/scalardb-verify-secret/jmx.password",
            "-Dcom.sun.management.jmxremote.access.file=/scalardb-verify-secret/jmx.access",
        ] {
            assert!(words.contains(&option), "{option} not in {extra}");
        }
        assert!(!words.contains(&""), "{extra}");
    }

    #[tokio::test]
    async fn only_sstable_components_are_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "nb-1-big-Data.db",
            "nb-1-big-TOC.txt",
            "manifest.json",
            "schema.cql",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("backups")).unwrap();
        let names: Vec<String> = sstable_components(dir.path())
            .await
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["nb-1-big-Data.db", "nb-1-big-TOC.txt"]);
        let missing = sstable_components(&dir.path().join("nope")).await;
        assert!(matches!(
            missing,
            Err(DockerRuntimeError::ListSstables { .. })
        ));

        // A link is refused, naming it, never followed out of the backup.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"root:secret").unwrap();
        let link = dir.path().join("nb-1-big-Statistics.db");
        std::os::unix::fs::symlink(outside.path().join("secret"), &link).unwrap();
        let error = sstable_components(dir.path()).await.unwrap_err();
        let chain = crate::scan::error_chain(&error);
        assert!(
            chain.contains(&link.display().to_string()) && chain.contains("symbolic link"),
            "{chain}"
        );
    }

    #[test]
    fn data_files_still_in_the_import_directory_were_not_loaded() {
        let staged = ["nb-1-big-Data.db".to_owned(), "nb-2-big-Data.db".to_owned()];
        assert_eq!(
            unloaded_data_files("nb-2-big-Data.db\nnb-2-big-TOC.txt\n", &staged),
            ["nb-2-big-Data.db"]
        );
        assert!(unloaded_data_files("", &staged).is_empty());
    }

    #[test]
    fn nodes_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<DockerCassandra>();
    }
}
