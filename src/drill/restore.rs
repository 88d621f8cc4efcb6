//! Restoring a backup into a disposable instance this run creates: a local server for SQL
//! dumps, a private copy for a SQLite file. The backup is only read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cassandra::{self, CassandraNode};
use crate::backup::cassandra::SnapshotBackup;
use crate::backup::{self, BackupError, BackupFormat};
use crate::config::{ConfigError, Target};
use crate::runtime::cassandra::CassandraRuntimeError;
use crate::runtime::{
    DockerInstance, DockerOptions, DockerRuntimeError, Engine, LocalInstance, LocalOptions,
    LocalRuntimeError, docker_available,
};

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
    #[error("tear down the disposable instance")]
    Teardown(#[source] Box<InstanceError>),
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

    async fn load_sql_file(
        &self,
        path: &Path,
        database: Option<&str>,
    ) -> Result<(), InstanceError> {
        match self {
            Self::Local(i) => i.load_sql_file(path, database).await.map_err(Into::into),
            Self::Docker(i) => i.load_sql_file(path, database).await.map_err(Into::into),
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

    /// Where a gzip dump is decompressed: inside the local instance's own directory, or a
    /// private temporary directory removed right after a Docker load.
    fn scratch_dir(&self) -> Option<&Path> {
        match self {
            Self::Local(i) => Some(i.dir()),
            Self::Docker(_) => None,
        }
    }

    fn runtime(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::Docker(_) => "docker",
        }
    }
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
            Self::Server(server @ Server::Local(instance)) => format!(
                "{} (data directory {})",
                Self::url(server),
                instance.dir().display()
            ),
            Self::Server(server @ Server::Docker(instance)) => format!(
                "{} (container {})",
                Self::url(server),
                instance.container_name()
            ),
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

/// Starts the instance a backup of `format` needs, in the runtime asked for.
pub async fn start(
    format: BackupFormat,
    runtime: RuntimeKind,
    image: Option<&str>,
    run_id: &str,
    startup_timeout: Duration,
) -> Result<Restored, RestoreError> {
    let engine = match format {
        BackupFormat::Sqlite => {
            let dir = tempfile::Builder::new()
                .prefix(&format!("scalardb-verify-{run_id}-sqlite-"))
                .tempdir()
                .map_err(|source| RestoreError::Copy {
                    path: std::env::temp_dir(),
                    source,
                })?;
            let path = dir.path().join("restored.sqlite");
            return Ok(Restored::Sqlite { dir, path });
        }
        BackupFormat::CassandraSnapshots => {
            return CassandraNode::start(runtime, image, run_id, startup_timeout)
                .await
                .map(Restored::Cassandra);
        }
        f if f.is_postgres() => Engine::Postgres,
        _ => Engine::MariaDb,
    };
    let use_docker = match runtime {
        RuntimeKind::Local => false,
        RuntimeKind::Docker => {
            if !docker_available().await {
                return Err(RestoreError::NoDocker {
                    engine: engine.to_string(),
                });
            }
            true
        }
        RuntimeKind::Auto => docker_available().await,
    };
    if use_docker {
        let mut options = DockerOptions::new(run_id);
        options.startup_timeout = startup_timeout;
        options.image = image.map(str::to_owned);
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

/// Loads `backup` into `restored` with the server's own tools, `jobs` at a time where the
/// format allows it. Cassandra snapshots come already inspected (`snapshots`).
pub async fn load(
    restored: &Restored,
    backup: &Path,
    format: BackupFormat,
    snapshots: Option<&SnapshotBackup>,
    jobs: usize,
) -> Result<(), RestoreError> {
    let load_error = |source: InstanceError| RestoreError::Load {
        path: backup.to_owned(),
        format: format.describe(),
        source: Box::new(source),
    };
    let server = match (restored, format) {
        (Restored::Sqlite { path, .. }, BackupFormat::Sqlite) => {
            std::fs::copy(backup, path).map_err(|source| RestoreError::Copy {
                path: backup.to_owned(),
                source,
            })?;
            return Ok(());
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
        BackupFormat::PgCustom | BackupFormat::PgDirectory => server
            .pg_restore(backup, RESTORED_DATABASE, jobs)
            .await
            .map_err(load_error),
        // pg_restore runs tar archives with one job only.
        BackupFormat::PgTar => server
            .pg_restore(backup, RESTORED_DATABASE, 1)
            .await
            .map_err(load_error),
        BackupFormat::PgPlain { gzip } | BackupFormat::MySqlDump { gzip } => {
            let mut scratch = None;
            let sql = if gzip {
                let dir = match server.scratch_dir() {
                    Some(dir) => dir.to_owned(),
                    None => {
                        let dir = tempfile::Builder::new()
                            .prefix("scalardb-verify-gunzip-")
                            .tempdir()
                            .map_err(|source| RestoreError::Copy {
                                path: backup.to_owned(),
                                source,
                            })?;
                        let path = dir.path().to_owned();
                        scratch = Some(dir);
                        path
                    }
                };
                let sql = dir.join("restore.sql");
                backup::decompress(backup, &sql)?;
                sql
            } else {
                backup.to_owned()
            };
            if format.is_postgres() {
                create_owner_roles(server, &sql).await.map_err(load_error)?;
            }
            let database = format.is_postgres().then_some(RESTORED_DATABASE);
            let loaded = server
                .load_sql_file(&sql, database)
                .await
                .map_err(load_error);
            drop(scratch);
            loaded
        }
        BackupFormat::Sqlite | BackupFormat::CassandraSnapshots => {
            unreachable!("restored above, into a copy or a Cassandra node")
        }
    }
}

/// A plain pg_dump sets owners (`ALTER … OWNER TO role`) and grants that fail, and stop the
/// restore, where the role does not exist: create each as a role that cannot log in.
async fn create_owner_roles(server: &Server, sql: &Path) -> Result<(), InstanceError> {
    use std::io::BufRead;
    let file = std::fs::File::open(sql).map_err(|source| LocalRuntimeError::ReadSql {
        path: sql.to_owned(),
        source,
    })?;
    let mut roles = std::collections::BTreeSet::new();
    for line in std::io::BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.split(" OWNER TO ").nth(1) {
            roles.insert(rest.trim_end_matches(';').trim().to_owned());
        }
    }
    roles.remove("postgres");
    for role in roles {
        let quoted = if role.starts_with('"') {
            role
        } else {
            format!("\"{}\"", role.replace('"', "\"\""))
        };
        let sql = format!(
            "DO $$ BEGIN CREATE ROLE {quoted} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
        );
        server.execute_sql(&sql).await?;
    }
    Ok(())
}
