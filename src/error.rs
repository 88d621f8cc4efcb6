//! The tool's error type and its exit codes, named once and mapped in one place.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::drill::RestoreError;
use crate::runtime::LocalRuntimeError;
use crate::store::{SqlError, WriteError};

/// Exit codes, documented in the README. Never renumber one.
pub mod exit_code {
    /// Consistent (or recoverable without `--strict`).
    pub const OK: u8 = 0;
    /// Inconsistent, or recoverable under `--strict`, or findings at `--fail-on` severity.
    pub const FAILED_CHECK: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// Could not reach or restore a target.
    pub const UNREACHABLE: u8 = 3;
    /// Indeterminate: a check could not run or the evidence can't decide.
    pub const INDETERMINATE: u8 = 4;
    /// Interrupted by SIGINT or SIGTERM (after tearing down): 128 + SIGINT, by convention.
    pub const INTERRUPTED: u8 = 130;
}

/// Each message reads after "failed to"; causes travel as `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] SqlError),
    #[error(transparent)]
    Cassandra(#[from] crate::store::CassandraError),
    #[error("write the report to {path}")]
    WriteReport {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write the metrics file {path}")]
    WriteMetrics {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    #[error("write the report to stdout")]
    WriteStdout(#[source] std::io::Error),
    #[error("start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Restore(Box<RestoreError>),
    #[error("rehearse recovery on the disposable instance")]
    Rehearse(#[from] WriteError),
    #[error("rehearse recovery on the disposable Cassandra node")]
    RehearseCassandra(#[source] crate::store::CassandraError),
    #[error("remove what earlier runs left behind")]
    Cleanup(#[source] LocalRuntimeError),
    #[error("remove the Cassandra nodes earlier runs left behind")]
    CleanupCassandra(#[source] Box<crate::runtime::cassandra::CassandraRuntimeError>),
    #[error("scan storage {storage}")]
    Storage {
        /// The storage's name and target, without a password.
        storage: String,
        #[source]
        source: Box<Error>,
    },
    #[error("look up the Coordinator rows of a table in another storage: {0}")]
    Unresolved(String),
    #[error("finish: interrupted, and the disposable instance was torn down")]
    Interrupted,
    #[error("bridge a sandbox's network")]
    Bridge(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(
                ConfigError::SqliteFileMissing { .. }
                | ConfigError::NotSqlite { .. }
                | ConfigError::SqliteSidecar { .. },
            ) => exit_code::UNREACHABLE,
            Self::Config(_)
            | Self::WriteReport { .. }
            | Self::WriteMetrics { .. }
            | Self::History(_) => exit_code::USAGE,
            Self::Store(_) | Self::Cassandra(_) => exit_code::UNREACHABLE,
            Self::WriteStdout(_) | Self::Runtime(_) => exit_code::USAGE,
            Self::Restore(_)
            | Self::Rehearse(_)
            | Self::RehearseCassandra(_)
            | Self::Cleanup(_)
            | Self::CleanupCassandra(_)
            | Self::Bridge(_) => exit_code::UNREACHABLE,
            Self::Storage { source, .. } => source.exit_code(),
            Self::Unresolved(_) => exit_code::UNREACHABLE,
            Self::Interrupted => exit_code::INTERRUPTED,
        }
    }
}

impl Error {
    /// Whether the database refused a read for lack of a privilege.
    pub fn is_permission_denied(&self) -> bool {
        match self {
            Self::Store(error) => error.is_permission_denied(),
            Self::Storage { source, .. } => source.is_permission_denied(),
            _ => false,
        }
    }
}

impl From<RestoreError> for Error {
    fn from(error: RestoreError) -> Self {
        Self::Restore(Box::new(error))
    }
}

/// "scan t: caused by …": an error and its causes on one line, for a finding's message.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
