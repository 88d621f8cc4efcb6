//! Restoring a backup into a disposable instance this run creates: a sandboxed local server
//! or a container for SQL dumps, a private copy for a SQLite file. The backup is only read,
//! and it is untrusted: the tool streams a dump to a client confined with the server
//! (`runtime::sandbox`), checks an archive's members before any tool opens it, and stops a
//! restore that would write more than its limit before the disk fills.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::MultiGzDecoder;

use super::cassandra::{self, CassandraNode};
use super::rehearse::{self, RecoveryWrites};
use crate::backup::cassandra::SnapshotBackup;
use crate::backup::{self, BackupError, BackupFormat};
use crate::config::{ConfigError, StorageKind, Target};
use crate::error::Error;
use crate::runtime::cassandra::CassandraRuntimeError;
use crate::runtime::local::Limited;
use crate::runtime::sandbox;
use crate::runtime::{
    DockerInstance, DockerOptions, DockerRuntimeError, Engine, Listen, LocalInstance, LocalOptions,
    LocalRuntimeError, RestoreLimit, docker_available, private_root,
};
use crate::scan::ScanOutcome;
use crate::store::{CassandraWriter, Dialect, DisposableWriter};

/// The database a PostgreSQL dump is restored into.
pub const RESTORED_DATABASE: &str = "restored";

/// Where the disposable server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    Docker,
    Local,
    /// Docker when an engine answers, else local binaries.
    Auto,
}

/// A failure of either runtime.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error(transparent)]
    Local(#[from] LocalRuntimeError),
    #[error(transparent)]
    Docker(#[from] DockerRuntimeError),
    #[error(transparent)]
    Cassandra(#[from] CassandraRuntimeError),
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("start a disposable {engine} instance ({runtime})")]
    Start {
        engine: String,
        runtime: &'static str,
        #[source]
        source: Box<InstanceError>,
    },
    #[error(
        "start a disposable {engine} instance: --runtime docker was asked for but no Docker \
         engine answers (start dockerd, or use --runtime local with the server binaries installed)"
    )]
    NoDocker { engine: String },
    #[error("restore {} ({format}) into the disposable instance", path.display())]
    Load {
        path: PathBuf,
        format: &'static str,
        #[source]
        source: Box<InstanceError>,
    },
    #[error("copy {} into a disposable directory", path.display())]
    Copy {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("open the restored copy")]
    Target(#[source] ConfigError),
    #[error("create the backup's schema in the disposable Cassandra node")]
    Schema(#[source] Box<crate::store::CassandraError>),
    #[error(
        "restore node by node: the copy keyspace {keyspace} would be longer than Cassandra's \
         48 characters (restore the nodes merged, without --per-node)"
    )]
    KeyspaceNameTooLong { keyspace: String },
    #[error(
        "--per-node restores a node's copy into the keyspace {keyspace}, which the backup \
         holds itself (restore the nodes merged, without --per-node)"
    )]
    CopyKeyspaceTaken { keyspace: String },
    #[error("tear down the disposable instance")]
    Teardown(#[source] Box<InstanceError>),
    #[error(
        "restore {}: it would write more than {limit} bytes into the disposable instance \
         (--max-restore-bytes; the default is half the free space)",
        path.display()
    )]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("prepare the disposable instance")]
    Prepare(#[source] sandbox::SandboxError),
    #[error("restore the SQLite copy")]
    Settle(#[source] Box<crate::store::SqlError>),
}

/// The most a restore may write: `--max-restore-bytes`, else half of the space free where
/// the instances live.
pub fn restore_limit(asked: Option<u64>) -> u64 {
    asked.unwrap_or_else(|| {
        private_root()
            .ok()
            .and_then(|root| free_bytes(&root))
            .map_or(u64::MAX, |free| free / 2)
    })
}

/// The bytes free to unprivileged users on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    Some(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// A disposable database server from either runtime.
pub enum Server {
    Local(Box<LocalInstance>),
    Docker(Box<DockerInstance>),
}

impl Server {
    fn engine(&self) -> Engine {
        match self {
            Self::Local(i) => i.engine(),
            Self::Docker(i) => i.engine(),
        }
    }

    fn url_for(&self, database: &str) -> String {
        match self {
            Self::Local(i) => i.url_for(database),
            Self::Docker(i) => i.url_for(database),
        }
    }

    fn url(&self) -> String {
        match self {
            Self::Local(i) => i.url(),
            Self::Docker(i) => i.url(),
        }
    }

    async fn execute_sql(&self, sql: &str) -> Result<(), InstanceError> {
        match self {
            Self::Local(i) => i.execute_sql(sql).await.map_err(Into::into),
            Self::Docker(i) => i.execute_sql(sql).await.map_err(Into::into),
        }
    }

    /// Runs a plain dump with the server's client. A local instance's client reads it from
    /// the tool, decompressed as it goes; a container's gets the file streamed in, a gzip
    /// dump decompressed first into a private scratch file.
    async fn load_sql(
        &self,
        backup: &Path,
        gzip: bool,
        database: Option<&str>,
        limit: u64,
    ) -> Result<(), LoadFailure> {
        match self {
            Self::Local(i) => {
                let reader =
                    open_sql(backup, gzip, limit).map_err(|e| LoadFailure::Restore(Box::new(e)))?;
                i.load_sql(backup, reader, database, RestoreLimit::unlimited())
                    .await
                    .map_err(|e| LoadFailure::Instance(Box::new(e.into())))
            }
            Self::Docker(i) if gzip => {
                let scratch = private_root()
                    .map_err(|e| LoadFailure::Instance(Box::new(e.into())))
                    .and_then(|root| {
                        tempfile::Builder::new()
                            .prefix("gunzip-")
                            .tempdir_in(root)
                            .map_err(|source| {
                                LoadFailure::Restore(Box::new(RestoreError::Copy {
                                    path: backup.to_owned(),
                                    source,
                                }))
                            })
                    })?;
                let sql = scratch.path().join("restore.sql");
                let mut reader =
                    open_sql(backup, true, limit).map_err(|e| LoadFailure::Restore(Box::new(e)))?;
                std::fs::File::create(&sql)
                    .and_then(|mut out| std::io::copy(&mut reader, &mut out))
                    .map_err(|e| LoadFailure::Restore(Box::new(too_large_or(e, backup, limit))))?;
                i.load_sql_file(&sql, database)
                    .await
                    .map_err(|e| LoadFailure::Instance(Box::new(e.into())))
            }
            Self::Docker(i) => i
                .load_sql_file(backup, database)
                .await
                .map_err(|e| LoadFailure::Instance(Box::new(e.into()))),
        }
    }

    async fn pg_restore(
        &self,
        archive: &Path,
        database: &str,
        jobs: usize,
    ) -> Result<(), InstanceError> {
        match self {
            Self::Local(i) => i
                .pg_restore(archive, database, jobs)
                .await
                .map_err(Into::into),
            Self::Docker(i) => i
                .pg_restore(archive, database, jobs)
                .await
                .map_err(Into::into),
        }
    }

    fn runtime(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::Docker(_) => "docker",
        }
    }
}

/// Why a plain dump did not load.
enum LoadFailure {
    Restore(Box<RestoreError>),
    Instance(Box<InstanceError>),
}

/// Where a backup was restored. Dropping it tears the instance down (a fallback: `stop`
/// is the normal way, and reports failures).
pub enum Restored {
    Server(Server),
    Cassandra(CassandraNode),
    Sqlite {
        dir: tempfile::TempDir,
        path: PathBuf,
    },
}

impl Restored {
    /// The target to scan: read-only like any target.
    pub fn scan_target(&self) -> Result<Target, RestoreError> {
        match self {
            Self::Server(server) => Target::from_url(&Self::url(server)),
            Self::Cassandra(node) => Target::from_url(&node.url()),
            Self::Sqlite { path, .. } => Target::sqlite(path),
        }
        .map_err(RestoreError::Target)
    }

    /// The writable URL of this run's own instance, for the recovery rehearsal.
    pub fn writable_url(&self) -> String {
        match self {
            Self::Server(server) => Self::url(server),
            Self::Cassandra(node) => node.url(),
            Self::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
        }
    }

    /// The disposable Cassandra node, when the backup is Cassandra's.
    pub fn cassandra(&self) -> Option<&CassandraNode> {
        match self {
            Self::Cassandra(node) => Some(node),
            _ => None,
        }
    }

    fn url(server: &Server) -> String {
        match server.engine() {
            Engine::Postgres => server.url_for(RESTORED_DATABASE),
            // A mysqldump names its databases; the whole server is scanned.
            Engine::MariaDb => server.url(),
        }
    }

    /// A path on the file system the restore writes to, when the tool can watch it.
    fn disk_path(&self) -> Option<PathBuf> {
        match self {
            Self::Server(Server::Local(instance)) => Some(instance.dir().to_owned()),
            Self::Sqlite { dir, .. } => Some(dir.path().to_owned()),
            Self::Server(Server::Docker(_)) | Self::Cassandra(_) => None,
        }
    }

    /// `local`, `docker`, or `copy` for a SQLite file.
    pub fn runtime(&self) -> &'static str {
        match self {
            Self::Server(server) => server.runtime(),
            Self::Cassandra(node) => node.runtime(),
            Self::Sqlite { .. } => "copy",
        }
    }

    /// How a user reaches the instance after `--keep`.
    pub fn connection_hint(&self) -> String {
        match self {
            Self::Server(Server::Local(instance)) => {
                let database = match instance.engine() {
                    Engine::Postgres => RESTORED_DATABASE,
                    Engine::MariaDb => instance.engine().default_database(),
                };
                let password = instance
                    .password_file()
                    .map(|file| format!(", password in {}", file.display()))
                    .unwrap_or_default();
                format!(
                    "{} (instance directory {}{password})",
                    instance.url_shown(database),
                    instance.dir().display()
                )
            }
            Self::Server(server @ Server::Docker(instance)) => {
                let url = Self::url(server);
                let shown = Target::from_url(&url).map_or_else(
                    |_| "(the instance's socket URL)".to_owned(),
                    |target| target.display().to_owned(),
                );
                // The password goes in a file beside the socket directory, in the tool's
                // private directory, never into the report.
                let password = url::Url::parse(&url).ok().and_then(|u| {
                    u.password().map(|p| {
                        url::form_urlencoded::parse(format!("p={p}").as_bytes())
                            .next()
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default()
                    })
                });
                let file = instance
                    .socket_dir()
                    .parent()
                    .map(|dir| dir.join("superuser.password"));
                let saved = match (password, file) {
                    (Some(password), Some(file)) => write_secret(&file, &password)
                        .ok()
                        .map(|()| format!(", password in {}", file.display())),
                    _ => None,
                };
                format!(
                    "{shown} (container {}{})",
                    instance.container_name(),
                    saved.unwrap_or_default()
                )
            }
            Self::Cassandra(node) => node.connection_hint(),
            Self::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
        }
    }

    pub async fn stop(self) -> Result<(), InstanceError> {
        match self {
            Self::Server(Server::Local(instance)) => instance.stop().await.map_err(Into::into),
            Self::Server(Server::Docker(instance)) => instance.stop().await.map_err(Into::into),
            Self::Cassandra(node) => node.stop().await,
            Self::Sqlite { dir, .. } => {
                let path = dir.path().to_owned();
                dir.close()
                    .map_err(|source| LocalRuntimeError::RemoveDir { path, source }.into())
            }
        }
    }

    /// Leaves the instance running (`--keep`): nothing tears it down any more.
    pub fn keep(self) {
        match self {
            Self::Server(Server::Local(instance)) => std::mem::forget(*instance),
            Self::Server(Server::Docker(instance)) => std::mem::forget(*instance),
            Self::Cassandra(node) => node.keep(),
            Self::Sqlite { dir, .. } => {
                let _ = dir.keep();
            }
        }
    }
}

/// Where the drill writes: the disposable instance it restored, and nothing else. SQL goes
/// through a [`DisposableWriter`] made for the instance's URL (invariants are SQL too), a
/// Cassandra node through its writer.
pub(super) enum DrillWriter {
    Sql {
        writer: DisposableWriter,
        dialect: Dialect,
    },
    Cassandra(Box<CassandraWriter>),
}

impl DrillWriter {
    /// The SQL writer, which invariants run through.
    pub(super) fn sql(&self) -> Option<&DisposableWriter> {
        match self {
            Self::Sql { writer, .. } => Some(writer),
            Self::Cassandra(_) => None,
        }
    }

    /// Applies the predictions of `outcome` that `scope` gives this instance.
    pub(super) async fn rehearse(
        &self,
        outcome: &ScanOutcome,
        now_ms: i64,
        scope: &rehearse::Scope<'_>,
    ) -> Result<RecoveryWrites, Error> {
        match self {
            Self::Cassandra(target) => rehearse::apply(target.as_ref(), outcome, now_ms, scope)
                .await
                .map_err(Error::RehearseCassandra),
            Self::Sql { writer, dialect } => {
                let target = rehearse::SqlTarget {
                    writer,
                    dialect: *dialect,
                };
                Ok(rehearse::apply(&target, outcome, now_ms, scope).await?)
            }
        }
    }

    pub(super) async fn close(self) {
        if let Self::Sql { writer, .. } = self {
            writer.close().await;
        }
    }
}

impl Restored {
    /// A writer for this instance: a Cassandra node's for `--recover`, a SQL instance's
    /// when `sql` (a rehearsal or an invariant runs there); `None` when nothing writes.
    pub(super) async fn writer(
        &self,
        recover: bool,
        sql: bool,
    ) -> Result<Option<DrillWriter>, Error> {
        match self {
            Self::Cassandra(node) if recover => Ok(Some(DrillWriter::Cassandra(Box::new(
                cassandra::connect(node).await?,
            )))),
            Self::Cassandra(_) => Ok(None),
            Self::Server(_) | Self::Sqlite { .. } if sql => {
                let target = self.scan_target()?;
                let writer =
                    DisposableWriter::connect(&self.writable_url(), target.display()).await?;
                Ok(Some(DrillWriter::Sql {
                    writer,
                    dialect: target.dialect,
                }))
            }
            Self::Server(_) | Self::Sqlite { .. } => Ok(None),
        }
    }
}

/// Starts the instance a backup of `format` needs, in the runtime asked for, with a fresh
/// superuser password that only this run knows.
pub async fn start(
    format: BackupFormat,
    runtime: RuntimeKind,
    image: Option<&str>,
    run_id: &str,
    startup_timeout: Duration,
    keep: bool,
) -> Result<Restored, RestoreError> {
    let engine = match format {
        BackupFormat::Sqlite => {
            let root = private_root().map_err(|source| RestoreError::Start {
                engine: "sqlite".to_owned(),
                runtime: "copy",
                source: Box::new(source.into()),
            })?;
            let dir = tempfile::Builder::new()
                .prefix(&format!("sqlite-{}-", safe_run_id(run_id)))
                .tempdir_in(&root)
                .map_err(|source| RestoreError::Copy { path: root, source })?;
            let path = dir.path().join("restored.sqlite");
            return Ok(Restored::Sqlite { dir, path });
        }
        BackupFormat::CassandraSnapshots => {
            return CassandraNode::start(runtime, image, run_id, startup_timeout, keep)
                .await
                .map(Restored::Cassandra);
        }
        f if f.is_postgres() => Engine::Postgres,
        _ => Engine::MariaDb,
    };
    let password = sandbox::random_password().map_err(RestoreError::Prepare)?;
    if use_docker(runtime, &engine.to_string()).await? {
        let mut options = DockerOptions::new(run_id);
        options.startup_timeout = startup_timeout;
        options.image = image.map(str::to_owned);
        options.superuser_password = Some(password);
        DockerInstance::start(engine, &options)
            .await
            .map(|i| Restored::Server(Server::Docker(Box::new(i))))
            .map_err(|source| RestoreError::Start {
                engine: engine.to_string(),
                runtime: "docker",
                source: Box::new(source.into()),
            })
    } else {
        let mut options = LocalOptions::new(run_id);
        options.startup_timeout = startup_timeout;
        options.superuser_password = Some(password);
        options.listen = Listen::Socket;
        options.outlive_tool = keep;
        LocalInstance::start(engine, &options)
            .await
            .map(|i| Restored::Server(Server::Local(Box::new(i))))
            .map_err(|source| RestoreError::Start {
                engine: engine.to_string(),
                runtime: if runtime == RuntimeKind::Auto {
                    "local: no Docker engine answered"
                } else {
                    "local"
                },
                source: Box::new(source.into()),
            })
    }
}

/// Whether an instance of `engine` runs in a container (`--runtime`; auto: when a Docker
/// engine answers), decided the same way for every engine.
pub(super) async fn use_docker(runtime: RuntimeKind, engine: &str) -> Result<bool, RestoreError> {
    match runtime {
        RuntimeKind::Local => Ok(false),
        RuntimeKind::Docker if docker_available().await => Ok(true),
        RuntimeKind::Docker => Err(RestoreError::NoDocker {
            engine: engine.to_owned(),
        }),
        RuntimeKind::Auto => Ok(docker_available().await),
    }
}

/// The format whose instance an empty stand-in of a storage of `kind` is.
pub(super) fn empty_format(kind: StorageKind) -> BackupFormat {
    match kind {
        StorageKind::Postgres => BackupFormat::PgPlain { gzip: false },
        StorageKind::MySql => BackupFormat::MySqlDump { gzip: false },
        StorageKind::Sqlite => BackupFormat::Sqlite,
        StorageKind::Cassandra => BackupFormat::CassandraSnapshots,
    }
}

/// Makes a started instance an empty copy of its storage: what a scan finds where no
/// backup was restored (no table, no Coordinator).
pub(super) async fn prepare_empty(restored: &Restored) -> Result<(), RestoreError> {
    match restored {
        Restored::Server(server) if server.engine() == Engine::Postgres => server
            .execute_sql(&format!("CREATE DATABASE {RESTORED_DATABASE}"))
            .await
            .map_err(|source| RestoreError::Load {
                path: PathBuf::from("(an empty database)"),
                format: "none",
                source: Box::new(source),
            }),
        Restored::Sqlite { path, .. } => {
            std::fs::write(path, empty_sqlite_database()).map_err(|source| RestoreError::Copy {
                path: path.clone(),
                source,
            })
        }
        Restored::Server(_) | Restored::Cassandra(_) => Ok(()),
    }
}

/// A SQLite database of one empty page (the schema table with no row), as SQLite's file
/// format defines it: a 100-byte header, then page 1 as an empty table b-tree leaf.
fn empty_sqlite_database() -> Vec<u8> {
    const PAGE: usize = 4096;
    let mut page = vec![0u8; PAGE];
    page[..16].copy_from_slice(b"SQLite format 3\0");
    page[16..18].copy_from_slice(&4096u16.to_be_bytes());
    page[18] = 1; // file format write version: legacy (no WAL)
    page[19] = 1; // read version
    page[21] = 64; // maximum embedded payload fraction
    page[22] = 32; // minimum
    page[23] = 32; // leaf payload fraction
    page[24..28].copy_from_slice(&1u32.to_be_bytes()); // file change counter
    page[28..32].copy_from_slice(&1u32.to_be_bytes()); // pages in the database
    page[44..48].copy_from_slice(&4u32.to_be_bytes()); // schema format
    page[56..60].copy_from_slice(&1u32.to_be_bytes()); // text encoding: UTF-8
    page[92..96].copy_from_slice(&1u32.to_be_bytes()); // version-valid-for = change counter
    page[96..100].copy_from_slice(&3_040_001u32.to_be_bytes());
    page[100] = 0x0d; // a table b-tree leaf
    page[105..107].copy_from_slice(&4096u16.to_be_bytes()); // cell content starts at the end
    page
}

/// Loads `backup` into `restored` with the server's own tools, `jobs` at a time where the
/// format allows it, writing at most `limit` bytes. Cassandra snapshots come already
/// inspected (`snapshots`).
pub async fn load(
    restored: &Restored,
    backup: &Path,
    format: BackupFormat,
    snapshots: Option<&SnapshotBackup>,
    jobs: usize,
    limit: u64,
) -> Result<(), RestoreError> {
    let watched = watch_disk(restored.disk_path(), limit);
    tokio::select! {
        biased;
        loaded = load_unwatched(restored, backup, format, snapshots, jobs, limit) => loaded,
        () = watched => Err(RestoreError::TooLarge { path: backup.to_owned(), limit }),
    }
}

/// Resolves once the file system holding `path` has `limit` bytes less free than when
/// this started: the restore is writing more than it may. Checked four times a second,
/// well before a disk of any size fills at the speed a restore writes.
async fn watch_disk(path: Option<PathBuf>, limit: u64) {
    let Some(start) = path.as_deref().and_then(free_bytes) else {
        return std::future::pending().await;
    };
    let path = path.unwrap_or_default();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if free_bytes(&path).is_some_and(|free| start.saturating_sub(free) > limit) {
            return;
        }
    }
}

async fn load_unwatched(
    restored: &Restored,
    backup: &Path,
    format: BackupFormat,
    snapshots: Option<&SnapshotBackup>,
    jobs: usize,
    limit: u64,
) -> Result<(), RestoreError> {
    let load_error = |source: InstanceError| match source {
        InstanceError::Local(LocalRuntimeError::TooLarge { limit, .. }) => RestoreError::TooLarge {
            path: backup.to_owned(),
            limit,
        },
        source => RestoreError::Load {
            path: backup.to_owned(),
            format: format.describe(),
            source: Box::new(source),
        },
    };
    let server = match (restored, format) {
        (Restored::Sqlite { path, .. }, BackupFormat::Sqlite) => {
            copy_sqlite(backup, path, limit)?;
            return crate::store::settle_sqlite_copy(path)
                .await
                .map_err(|source| RestoreError::Settle(Box::new(source)));
        }
        (Restored::Cassandra(node), BackupFormat::CassandraSnapshots) => {
            let snapshots = snapshots.ok_or_else(|| {
                RestoreError::Backup(BackupError::Unrecognized {
                    path: backup.to_owned(),
                    reason: "Cassandra snapshots that were not inspected".to_owned(),
                })
            })?;
            return cassandra::load_merged(node, snapshots, jobs).await;
        }
        (Restored::Server(server), _) => server,
        (Restored::Sqlite { .. } | Restored::Cassandra(_), _) => {
            unreachable!("start() picks the instance from the format")
        }
    };
    if format.is_postgres() {
        server
            .execute_sql(&format!("CREATE DATABASE {RESTORED_DATABASE}"))
            .await
            .map_err(load_error)?;
    }
    match format {
        BackupFormat::PgCustom | BackupFormat::PgDirectory => {
            if format == BackupFormat::PgDirectory {
                backup::check_directory_archive(backup)?;
            }
            server
                .pg_restore(backup, RESTORED_DATABASE, jobs)
                .await
                .map_err(load_error)
        }
        // pg_restore runs tar archives with one job only.
        BackupFormat::PgTar => server
            .pg_restore(backup, RESTORED_DATABASE, 1)
            .await
            .map_err(load_error),
        BackupFormat::PgPlain { gzip } | BackupFormat::MySqlDump { gzip } => {
            if format.is_postgres() {
                let roles = owner_roles(open_sql(backup, gzip, limit)?)
                    .map_err(|reason| too_large_or(reason, backup, limit))?;
                create_roles(server, &roles).await.map_err(load_error)?;
            }
            let database = format.is_postgres().then_some(RESTORED_DATABASE);
            server
                .load_sql(backup, gzip, database, limit)
                .await
                .map_err(|failure| match failure {
                    LoadFailure::Restore(e) => *e,
                    LoadFailure::Instance(e) => load_error(*e),
                })
        }
        BackupFormat::Sqlite | BackupFormat::CassandraSnapshots => {
            unreachable!("restored above, into a copy or a Cassandra node")
        }
    }
}

/// The SQL of a plain dump, decompressed as it is read, failing past `limit` bytes.
fn open_sql(
    path: &Path,
    gzip: bool,
    limit: u64,
) -> Result<Box<dyn std::io::Read + Send>, RestoreError> {
    let file = std::fs::File::open(path).map_err(|source| {
        RestoreError::Backup(BackupError::Read {
            path: path.to_owned(),
            source,
        })
    })?;
    let reader: Box<dyn std::io::Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(file)
    };
    Ok(Box::new(Limited::new(reader, RestoreLimit::bytes(limit))))
}

fn too_large_or(error: std::io::Error, path: &Path, limit: u64) -> RestoreError {
    if error
        .get_ref()
        .is_some_and(|e| e.is::<crate::runtime::local::TooLarge>())
    {
        return RestoreError::TooLarge {
            path: path.to_owned(),
            limit,
        };
    }
    RestoreError::Backup(BackupError::Read {
        path: path.to_owned(),
        source: error,
    })
}

/// Copies a SQLite backup with the files SQLite keeps beside it (`-wal`, `-journal`), so
/// the copy opens as the original would: committed transactions in the write-ahead log
/// are applied and a hot journal is rolled back, as on the database's own next open.
fn copy_sqlite(backup: &Path, target: &Path, limit: u64) -> Result<(), RestoreError> {
    let mut total = 0u64;
    for suffix in ["", "-wal", "-journal"] {
        let from = with_suffix(backup, suffix);
        let to = with_suffix(target, suffix);
        let metadata = match std::fs::symlink_metadata(&from) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => continue,
            Err(source) => return Err(RestoreError::Copy { path: from, source }),
        };
        if !suffix.is_empty() && !metadata.is_file() {
            return Err(RestoreError::Backup(BackupError::Unrecognized {
                path: from,
                reason: "the SQLite companion file is not a regular file".to_owned(),
            }));
        }
        total = total.saturating_add(metadata.len());
        if total > limit {
            return Err(RestoreError::TooLarge {
                path: backup.to_owned(),
                limit,
            });
        }
        std::fs::copy(&from, &to).map_err(|source| RestoreError::Copy { path: from, source })?;
    }
    Ok(())
}

/// Creates `path` with mode 0600 holding `secret`.
fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(secret.as_bytes())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The most roles a plain dump may make the tool create: far more than any real schema has.
const MAX_OWNER_ROLES: usize = 10_000;
/// Lines longer than this are data, never an `ALTER … OWNER TO` statement of pg_dump's.
const MAX_OWNER_LINE: usize = 4096;

/// The roles a plain pg_dump assigns with `ALTER … OWNER TO role;`. Only lines of exactly
/// that form count, and only role names that are plain identifiers or double-quoted ones
/// without backslashes or control characters, at most 63 bytes: whatever a line in the dump
/// says (application data included), at worst a role of that name is created in the
/// disposable instance, and it cannot spell a command for the client.
fn owner_roles(reader: Box<dyn std::io::Read + Send>) -> Result<Vec<String>, std::io::Error> {
    let mut roles = std::collections::BTreeSet::new();
    backup::for_each_short_line(reader, MAX_OWNER_LINE, |line| {
        if let Some(role) = owner_of(line) {
            if role != "\"postgres\"" && roles.len() < MAX_OWNER_ROLES {
                roles.insert(role);
            }
        }
    })?;
    Ok(roles.into_iter().collect())
}

/// The role of a pg_dump `ALTER <object> OWNER TO <role>;` line, as a quoted identifier.
fn owner_of(line: &str) -> Option<String> {
    let line = line.trim_end_matches(['\n', '\r']);
    if !line.starts_with("ALTER ") {
        return None;
    }
    let (_, role) = line.rsplit_once(" OWNER TO ")?;
    let role = role.strip_suffix(';')?;
    quoted_role(role)
}

/// `role` as a double-quoted identifier, if it is one pg_dump could have written.
fn quoted_role(role: &str) -> Option<String> {
    let name = if let Some(inner) = role.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        if inner.is_empty() || inner.replace("\"\"", "").contains('"') {
            return None;
        }
        inner.replace("\"\"", "\"")
    } else {
        let plain = role
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && role
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
        if !plain {
            return None;
        }
        role.to_owned()
    };
    let safe = name.len() <= 63 && !name.chars().any(|c| c == '\\' || c.is_control());
    safe.then(|| format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Creates each role as one that cannot log in, in one batch.
async fn create_roles(server: &Server, roles: &[String]) -> Result<(), InstanceError> {
    if roles.is_empty() {
        return Ok(());
    }
    let sql: String = roles
        .iter()
        .map(|quoted| {
            format!(
                "DO $$ BEGIN CREATE ROLE {quoted} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;\n"
            )
        })
        .collect();
    server.execute_sql(&sql).await
}

fn safe_run_id(run_id: &str) -> String {
    run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(24)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pg_dump_owner_lines_name_roles() {
        assert_eq!(
            owner_of("ALTER TABLE public.t OWNER TO app;\n"),
            Some("\"app\"".into())
        );
        assert_eq!(
            owner_of("ALTER SCHEMA bank OWNER TO \"Odd \"\"One\"\"\";"),
            Some("\"Odd \"\"One\"\"\"".into())
        );
        // Data, comments and function bodies that merely contain the words.
        assert_eq!(owner_of("  EXECUTE 'ALTER TABLE x OWNER TO ' || r;"), None);
        assert_eq!(owner_of("1\tALTER TABLE x OWNER TO x"), None);
        assert_eq!(
            owner_of("ALTER TABLE x OWNER TO \"a\"; \\! touch /tmp/p"),
            None
        );
        assert_eq!(owner_of("ALTER TABLE x OWNER TO \"a\\! id\";"), None);
        assert_eq!(owner_of("ALTER TABLE x OWNER TO x; \\! id;"), None);
        assert_eq!(owner_of("ALTER TABLE x OWNER TO Upper;"), None);
        assert_eq!(owner_of("ALTER TABLE x OWNER TO \"a\nb\";"), None);
    }

    #[test]
    fn owner_roles_bounds_lines_and_counts() {
        let mut dump = "x".repeat(10 * MAX_OWNER_LINE);
        dump.push_str(
            " OWNER TO evil;\nALTER TABLE t OWNER TO app;\nALTER TABLE u OWNER TO postgres;\n",
        );
        let roles = owner_roles(Box::new(std::io::Cursor::new(dump.into_bytes()))).unwrap();
        assert_eq!(roles, vec!["\"app\"".to_owned()]);
    }
}
