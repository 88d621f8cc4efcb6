//! Restoring a backup into a disposable instance this run creates: a local server for SQL
//! dumps, a private copy for a SQLite file. The backup is only read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup::{self, BackupError, BackupFormat};
use crate::config::{ConfigError, Target};
use crate::runtime::{Engine, LocalInstance, LocalOptions, LocalRuntimeError};

/// The database a PostgreSQL dump is restored into.
pub const RESTORED_DATABASE: &str = "restored";

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("start a disposable {engine} instance")]
    Start {
        engine: Engine,
        #[source]
        source: Box<LocalRuntimeError>,
    },
    #[error("restore {} ({format}) into the disposable instance", path.display())]
    Load {
        path: PathBuf,
        format: &'static str,
        #[source]
        source: Box<LocalRuntimeError>,
    },
    #[error("copy {} into a disposable directory", path.display())]
    Copy {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("open the restored copy")]
    Target(#[source] ConfigError),
    #[error("tear down the disposable instance")]
    Teardown(#[source] Box<LocalRuntimeError>),
}

/// Where a backup was restored. Dropping it tears the instance down (a fallback: `stop`
/// is the normal way, and reports failures).
pub enum Restored {
    Server(Box<LocalInstance>),
    Sqlite {
        dir: tempfile::TempDir,
        path: PathBuf,
    },
}

impl Restored {
    /// The target to scan: read-only like any target.
    pub fn scan_target(&self) -> Result<Target, RestoreError> {
        match self {
            Self::Server(instance) => Target::from_url(&self.url(instance)),
            Self::Sqlite { path, .. } => Target::sqlite(path),
        }
        .map_err(RestoreError::Target)
    }

    /// The writable URL of this run's own instance, for the recovery rehearsal.
    pub fn writable_url(&self) -> String {
        match self {
            Self::Server(instance) => self.url(instance),
            Self::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
        }
    }

    fn url(&self, instance: &LocalInstance) -> String {
        match instance.engine() {
            Engine::Postgres => instance.url_for(RESTORED_DATABASE),
            // A mysqldump names its databases; the whole server is scanned.
            Engine::MariaDb => instance.url(),
        }
    }

    /// How a user reaches the instance after `--keep`.
    pub fn connection_hint(&self) -> String {
        match self {
            Self::Server(instance) => format!(
                "{} (data directory {})",
                self.url(instance),
                instance.dir().display()
            ),
            Self::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
        }
    }

    pub async fn stop(self) -> Result<(), LocalRuntimeError> {
        match self {
            Self::Server(instance) => instance.stop().await,
            Self::Sqlite { dir, .. } => {
                let path = dir.path().to_owned();
                dir.close()
                    .map_err(|source| LocalRuntimeError::RemoveDir { path, source })
            }
        }
    }

    /// Leaves the instance running (`--keep`): nothing tears it down any more.
    pub fn keep(self) {
        match self {
            Self::Server(instance) => std::mem::forget(*instance),
            Self::Sqlite { dir, .. } => {
                let _ = dir.keep();
            }
        }
    }
}

/// Starts the instance a backup of `format` needs.
pub async fn start(
    format: BackupFormat,
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
        f if f.is_postgres() => Engine::Postgres,
        _ => Engine::MariaDb,
    };
    let mut options = LocalOptions::new(run_id);
    options.startup_timeout = startup_timeout;
    LocalInstance::start(engine, &options)
        .await
        .map(|instance| Restored::Server(Box::new(instance)))
        .map_err(|source| RestoreError::Start {
            engine,
            source: Box::new(source),
        })
}

/// Loads `backup` into `restored` with the server's own tools, `jobs` at a time where the
/// format allows it.
pub async fn load(
    restored: &Restored,
    backup: &Path,
    format: BackupFormat,
    jobs: usize,
) -> Result<(), RestoreError> {
    let load_error = |source| RestoreError::Load {
        path: backup.to_owned(),
        format: format.describe(),
        source: Box::new(source),
    };
    match (restored, format) {
        (Restored::Sqlite { path, .. }, BackupFormat::Sqlite) => {
            std::fs::copy(backup, path).map_err(|source| RestoreError::Copy {
                path: backup.to_owned(),
                source,
            })?;
            Ok(())
        }
        (Restored::Server(instance), _) => {
            if format.is_postgres() {
                instance
                    .execute_sql(&format!("CREATE DATABASE {RESTORED_DATABASE}"))
                    .await
                    .map_err(load_error)?;
            }
            match format {
                BackupFormat::PgCustom | BackupFormat::PgDirectory => instance
                    .pg_restore(backup, RESTORED_DATABASE, jobs)
                    .await
                    .map_err(load_error),
                // pg_restore runs tar archives with one job only.
                BackupFormat::PgTar => instance
                    .pg_restore(backup, RESTORED_DATABASE, 1)
                    .await
                    .map_err(load_error),
                BackupFormat::PgPlain { gzip } | BackupFormat::MySqlDump { gzip } => {
                    let sql = if gzip {
                        // Decompressed inside the instance's own directory, which goes with it.
                        let sql = instance.dir().join("restore.sql");
                        backup::decompress(backup, &sql)?;
                        sql
                    } else {
                        backup.to_owned()
                    };
                    if format.is_postgres() {
                        create_owner_roles(instance, &sql)
                            .await
                            .map_err(load_error)?;
                    }
                    let database = format.is_postgres().then_some(RESTORED_DATABASE);
                    instance
                        .load_sql_file(&sql, database)
                        .await
                        .map_err(load_error)
                }
                BackupFormat::Sqlite => unreachable!("SQLite backups restore into a copy"),
            }
        }
        (Restored::Sqlite { .. }, _) => unreachable!("only SQLite backups get a copy"),
    }
}

/// A plain pg_dump sets owners (`ALTER … OWNER TO role`) and grants that fail, and stop the
/// restore, where the role does not exist: create each as a role that cannot log in.
async fn create_owner_roles(instance: &LocalInstance, sql: &Path) -> Result<(), LocalRuntimeError> {
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
        instance.execute_sql(&sql).await?;
    }
    Ok(())
}
