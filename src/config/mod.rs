//! Validated settings, built from the command line and ScalarDB `database.properties`
//! files before any I/O against a target. Secrets stay inside `Target`; everything that
//! is shown to a user goes through `Target::display`, which has no password.
//!
//! `properties.rs` reads ScalarDB's files as ScalarDB does; `deployment.rs` turns them (or
//! `--storage`/`--namespace`) into a [`Deployment`]: the storages, how each namespace is
//! routed, and which storage holds the Coordinator. Neither opens a file or a connection:
//! the caller reads the files, and a SQLite file is checked only when it is opened.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::analyze::AnalysisSettings;
use crate::store::{CassandraCredentials, Dialect, ReadConsistency, TableFilter};

mod deployment;
mod properties;

pub use deployment::{
    Deployment, Endpoint, Service, Source, Storage, StorageFlags, StorageId, StorageKind,
};
pub use properties::PropertiesFile;

pub const DEFAULT_COORDINATOR_NAMESPACE: &str = "coordinator";
pub const DEFAULT_METADATA_SCHEMA: &str = "scalardb";

/// Each message reads after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("choose a target: give a URL, --properties FILE or --storage NAME=URL")]
    NoTarget,
    #[error("parse target URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "use target {url}: unsupported scheme (use postgres://, mysql://, mariadb://, sqlite:// or cassandra://)"
    )]
    UnsupportedScheme { url: String },
    #[error("open SQLite database {path}: no such file")]
    SqliteFileMissing { path: PathBuf },
    #[error("open SQLite database {path}: {reason}")]
    NotSqlite { path: PathBuf, reason: String },
    #[error(
        "open SQLite database {path} read-only: {sidecar} beside it holds {what}, which a \
         read-only scan cannot apply; checkpoint it on a copy (sqlite3 COPY \
         'PRAGMA wal_checkpoint(TRUNCATE)', or open the copy once with sqlite3) and scan the \
         copy, or drill the backup"
    )]
    SqliteSidecar {
        path: PathBuf,
        sidecar: PathBuf,
        what: SqliteSidecar,
    },
    #[error("read properties file {path}")]
    ReadProperties {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("use properties file {path}: {key} is not set")]
    MissingProperty { path: PathBuf, key: String },
    #[error("use properties file {path}: {key}={storage} is not supported yet ({supported} are)")]
    UnsupportedStorage {
        path: PathBuf,
        key: String,
        storage: String,
        supported: &'static str,
    },
    #[error("use properties file {path}: {key}: unsupported JDBC URL {url}")]
    UnsupportedJdbcUrl {
        path: PathBuf,
        key: String,
        url: String,
    },
    #[error("use properties file {path}: {key} {reason}")]
    InvalidProperty {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("parse {option} {value}: {reason}")]
    InvalidOption {
        option: &'static str,
        /// What the user wrote, or only its name where the rest may hold a password.
        value: String,
        reason: String,
    },
    #[error("choose {option}: {why}")]
    MissingOption {
        option: &'static str,
        why: &'static str,
    },
    #[error(
        "use properties files {first} and {other} as one deployment: they name different \
         Coordinators ({first_coordinator} and {other_coordinator}); the services of one \
         deployment share one Coordinator table"
    )]
    CoordinatorsDisagree {
        first: PathBuf,
        first_coordinator: String,
        other: PathBuf,
        other_coordinator: String,
    },
    #[error("parse --as-of {value}: expected epoch milliseconds or an RFC 3339 timestamp")]
    InvalidAsOf { value: String },
    #[error("parse --skew-threshold {value}: expected a duration such as 90s, 5m or 1h")]
    InvalidDuration { value: String },
    #[error("read the pause window {path}: {reason}")]
    InvalidPauseWindow { path: PathBuf, reason: String },
    #[error("read checks file {path}")]
    ReadChecks {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse the check {text:?} from {origin}: expected NAME=SQL")]
    InvalidCheck { origin: String, text: String },
    #[error("drill: {option} applies to {applies_to} only, and the backup is {format}")]
    NotForThisBackup {
        option: &'static str,
        applies_to: &'static str,
        format: &'static str,
    },
    #[error("drill the backup set: {backup}: {reason}")]
    BackupSet { backup: String, reason: String },
    #[error("read the password file {path}")]
    ReadPasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("use the password: the URL names no user (USER@HOST) to give it to")]
    PasswordWithoutUser,
    #[error("use the password: the URL carries one already")]
    TwoPasswords,
}

/// A database to scan. The URL may hold a password; never print it.
#[derive(Clone)]
pub struct Target {
    url: String,
    display: String,
    /// The SQL dialect of a `Backend::Sql` target (unused, `Postgres`, for Cassandra).
    pub dialect: Dialect,
    pub backend: Backend,
}

/// Which kind of store a target is.
#[derive(Clone, Debug)]
pub enum Backend {
    /// PostgreSQL, MySQL/MariaDB or SQLite: `dialect` and the connection URL.
    Sql,
    Cassandra(CassandraTarget),
}

/// A Cassandra cluster: `cassandra://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]…][?consistency=ONE|QUORUM|ALL…]`.
#[derive(Clone, Debug)]
pub struct CassandraTarget {
    /// `host:port` of each contact point.
    pub contact_points: Vec<String>,
    pub credentials: Option<CassandraCredentials>,
    pub consistency: ReadConsistency,
}

/// CQL's native protocol port.
pub const DEFAULT_CASSANDRA_PORT: u16 = 9042;

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("display", &self.display)
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Parses a `postgres://`, `mysql://`, `mariadb://`, `sqlite://` or `cassandra://` URL.
    pub fn from_url(raw: &str) -> Result<Self, ConfigError> {
        if let Some(rest) = raw.strip_prefix("cassandra://") {
            return Self::cassandra_url(raw, rest);
        }
        if let Some(path) = sqlite_url_path(raw) {
            return Self::sqlite(path);
        }
        let mut url = url::Url::parse(raw).map_err(|e| ConfigError::InvalidUrl {
            url: redact_unparsed(raw),
            reason: e.to_string(),
        })?;
        let dialect = match url.scheme() {
            "postgres" | "postgresql" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::MySql,
            _ => {
                return Err(ConfigError::UnsupportedScheme { url: redact(&url) });
            }
        };
        if url.scheme() == "mariadb" {
            url = url::Url::parse(&format!("mysql{}", &url.as_str()["mariadb".len()..])).map_err(
                |e| ConfigError::InvalidUrl {
                    url: redact_unparsed(raw),
                    reason: e.to_string(),
                },
            )?;
        }
        Ok(Self {
            display: redact(&url),
            url: url.to_string(),
            dialect,
            backend: Backend::Sql,
        })
    }

    fn cassandra_url(raw: &str, rest: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidUrl {
            url: redact_unparsed(raw),
            reason: reason.to_owned(),
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let mut consistency = ReadConsistency::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("consistency", value)) => {
                    consistency = ReadConsistency::parse(value).ok_or_else(|| {
                        invalid("consistency must be ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM or ALL")
                    })?;
                }
                _ => return Err(invalid("the only parameter is consistency=")),
            }
        }
        let credentials = match userinfo {
            Some(userinfo) => {
                let (username, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |part: &str, what: &str| {
                    percent_decode(part).ok_or_else(|| {
                        invalid(&format!(
                            "the {what} has a malformed %-escape (write a literal % as %25)"
                        ))
                    })
                };
                Some(CassandraCredentials {
                    username: decode(username, "user name")?,
                    password: decode(password, "password")?,
                })
            }
            None => None,
        };
        let target = Self::cassandra(hosts.split(','), None, credentials, consistency)
            .map_err(|reason| invalid(&reason))?;
        Ok(target)
    }

    /// A Cassandra cluster from its contact points (`host`, `host:port`, `[v6]:port`).
    fn cassandra<'a>(
        hosts: impl Iterator<Item = &'a str>,
        port: Option<u16>,
        credentials: Option<CassandraCredentials>,
        consistency: ReadConsistency,
    ) -> Result<Self, String> {
        let port = port.unwrap_or(DEFAULT_CASSANDRA_PORT);
        let mut contact_points = Vec::new();
        for host in hosts.map(str::trim).filter(|h| !h.is_empty()) {
            let has_port = match host.rsplit_once(':') {
                Some((name, p))
                    if !name.is_empty() && (!name.contains(':') || name.ends_with(']')) =>
                {
                    p.parse::<u16>()
                        .map_err(|_| format!("bad port in contact point {host}"))?;
                    true
                }
                _ => false,
            };
            contact_points.push(if has_port {
                host.to_owned()
            } else {
                format!("{host}:{port}")
            });
        }
        if contact_points.is_empty() {
            return Err("no contact point".to_owned());
        }
        let user = credentials
            .as_ref()
            .map(|c| format!("{}@", c.username))
            .unwrap_or_default();
        let display = format!("cassandra://{user}{}", contact_points.join(","));
        Ok(Self {
            url: display.clone(),
            display,
            dialect: Dialect::Postgres,
            backend: Backend::Cassandra(CassandraTarget {
                contact_points,
                credentials,
                consistency,
            }),
        })
    }

    /// A SQLite file, opened read-only and immutable: the file is a backup, never to be
    /// modified, and nothing is created beside it (no `-shm`). Only its header is read.
    /// A write-ahead log or hot journal beside it holds changes an immutable open would
    /// silently ignore, so such a file is refused rather than scanned without them.
    pub fn sqlite(path: &Path) -> Result<Self, ConfigError> {
        let not_sqlite = |reason: String| ConfigError::NotSqlite {
            path: path.to_owned(),
            reason,
        };
        let header = match read_prefix(path, SQLITE_HEADER_LEN) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::SqliteFileMissing {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(not_sqlite(e.to_string())),
        };
        const MAGIC: &[u8] = b"SQLite format 3\0";
        if header.is_empty() {
            return Err(not_sqlite("the file is empty".to_owned()));
        }
        if !header.starts_with(MAGIC) {
            return Err(not_sqlite("not a SQLite database (bad header)".to_owned()));
        }
        for (suffix, what) in [
            ("-wal", SqliteSidecar::Wal),
            ("-journal", SqliteSidecar::Journal),
        ] {
            let mut sidecar = path.as_os_str().to_owned();
            sidecar.push(suffix);
            let sidecar = PathBuf::from(sidecar);
            if what.holds_changes(&sidecar) {
                return Err(ConfigError::SqliteSidecar {
                    path: path.to_owned(),
                    sidecar,
                    what,
                });
            }
        }
        let display = format!("sqlite://{}", path.display());
        Ok(Self {
            url: format!("sqlite://{}?mode=ro&immutable=1", path.display()),
            display,
            dialect: Dialect::Sqlite,
            backend: Backend::Sql,
        })
    }

    /// The connection URL, password included: for the store only.
    pub fn connection_url(&self) -> &str {
        &self.url
    }

    /// The target as shown to users: no password.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// The file of a `sqlite://PATH` or `sqlite:PATH` URL, without its parameters.
fn sqlite_url_path(raw: &str) -> Option<&Path> {
    let path = raw
        .strip_prefix("sqlite://")
        .or_else(|| raw.strip_prefix("sqlite:"))?;
    Some(Path::new(path.split('?').next().unwrap_or(path)))
}

/// The SQLite database header's length: all a target check needs to read.
const SQLITE_HEADER_LEN: usize = 100;

/// Up to `len` bytes from the start of a file, without reading the rest.
fn read_prefix(path: &Path, len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(len);
    file.take(u64::try_from(len).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A file SQLite keeps beside a database that can hold changes not yet in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqliteSidecar {
    /// `-wal`: committed transactions not yet checkpointed into the database.
    Wal,
    /// `-journal` starting with the journal magic: a hot rollback journal, an interrupted
    /// write that must be rolled back.
    Journal,
}

impl SqliteSidecar {
    fn holds_changes(self, sidecar: &Path) -> bool {
        const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
        match self {
            // An unreadable sidecar is treated as holding changes: refusing is safe.
            Self::Wal => std::fs::metadata(sidecar).map_or_else(
                |e| e.kind() != std::io::ErrorKind::NotFound,
                |m| m.len() > 0,
            ),
            Self::Journal => match read_prefix(sidecar, JOURNAL_MAGIC.len()) {
                Ok(prefix) => prefix == JOURNAL_MAGIC,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            },
        }
    }
}

impl std::fmt::Display for SqliteSidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Wal => {
                "a non-empty write-ahead log (committed transactions not yet checkpointed)"
            }
            Self::Journal => "a hot rollback journal (an interrupted write not yet rolled back)",
        })
    }
}

fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(None);
    }
    let pairs: Vec<(String, String)> = shown
        .query_pairs()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("password"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() {
        shown.set_query(None);
    } else {
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

/// For a URL that did not parse: show only the scheme, so a password can't leak.
fn redact_unparsed(raw: &str) -> String {
    match raw.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://…"),
        None => "(unparseable URL)".to_owned(),
    }
}

/// Parses `--as-of`: epoch milliseconds, or an RFC 3339 timestamp.
pub fn parse_as_of(value: &str) -> Result<i64, ConfigError> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    value
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| ConfigError::InvalidAsOf {
            value: value.to_owned(),
        })
}

/// Parses a duration such as `500ms`, `90s`, `5m` or `1h` into milliseconds.
pub fn parse_duration_ms(value: &str) -> Result<i64, ConfigError> {
    let invalid = || ConfigError::InvalidDuration {
        value: value.to_owned(),
    };
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: i64 = number.parse().map_err(|_| invalid())?;
    let factor = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(factor).ok_or_else(invalid)
}

/// Everything `scan` needs, validated.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub target: Target,
    pub coordinator_namespace: String,
    pub metadata_schema: String,
    pub filter: TableFilter,
    pub jobs: usize,
    pub connect_timeout: Duration,
    pub analysis: AnalysisSettings,
    /// The name the report gives the one storage (`None`: its kind).
    pub storage_name: Option<String>,
    /// Set when the deployment spans several storages: they are scanned as one, and
    /// `target` is the Coordinator's.
    pub deployment: Option<DeploymentScan>,
}

/// One storage of a deployment scanned as one, validated.
#[derive(Debug, Clone)]
pub struct ScanStorage {
    pub id: StorageId,
    pub name: String,
    pub target: Target,
    /// ScalarDB's JDBC metadata schema in this storage.
    pub metadata_schema: String,
    /// A namespace or table mapping sends tables here (not only as the default).
    pub mapped: bool,
}

/// A deployment whose tables and Coordinator span several storages.
#[derive(Debug, Clone)]
pub struct DeploymentScan {
    /// The storages ScalarDB routes to, in the order configured.
    pub storages: Vec<ScanStorage>,
    /// Index into `storages` of the Coordinator's.
    pub coordinator: usize,
    /// The routing, for deciding where ScalarDB reads each discovered table.
    pub deployment: Deployment,
}

/// Decodes `%XX` escapes, as in any URL's user information; `None` if one is malformed or
/// the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_display() {
        let target =
            Target::from_url("postgres://alice:s3cret@db:5432/app?password=x&sslmode=disable")
                .unwrap();
        assert_eq!(
            target.display(),
            "postgres://alice@db:5432/app?sslmode=disable"
        );
        assert!(target.connection_url().contains("s3cret"));
        assert!(!format!("{target:?}").contains("s3cret"));
        let err = Target::from_url("postgres://alice:s3cret@[bad/").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn mariadb_urls_use_the_mysql_driver() {
        let target = Target::from_url("mariadb://root@127.0.0.1:3306/app").unwrap();
        assert_eq!(target.dialect, Dialect::MySql);
        assert!(target.connection_url().starts_with("mysql://"));
    }

    #[test]
    fn unsupported_schemes_are_refused() {
        assert!(matches!(
            Target::from_url("oracle://x/y"),
            Err(ConfigError::UnsupportedScheme { .. })
        ));
    }

    #[test]
    fn a_sqlite_target_must_be_a_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            Target::sqlite(&empty),
            Err(ConfigError::NotSqlite { .. })
        ));
        let text = dir.path().join("dump.sql");
        std::fs::write(&text, b"CREATE TABLE t (x int);").unwrap();
        let err = Target::sqlite(&text).unwrap_err();
        assert!(err.to_string().contains("bad header"), "{err}");
        assert!(matches!(
            Target::sqlite(&dir.path().join("absent.db")),
            Err(ConfigError::SqliteFileMissing { .. })
        ));
    }

    #[test]
    fn a_sqlite_target_is_opened_immutable_and_refused_with_pending_changes_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bank.sqlite");
        let mut bytes = b"SQLite format 3\0".to_vec();
        bytes.resize(4096, 0);
        std::fs::write(&db, &bytes).unwrap();
        let target = Target::sqlite(&db).unwrap();
        assert!(
            target.connection_url().ends_with("?mode=ro&immutable=1"),
            "{}",
            target.connection_url()
        );
        let wal = dir.path().join("bank.sqlite-wal");
        std::fs::write(&wal, b"").unwrap();
        assert!(Target::sqlite(&db).is_ok(), "an empty -wal holds nothing");
        std::fs::write(&wal, b"\x37\x7f\x06\x82 frames").unwrap();
        let err = Target::sqlite(&db).unwrap_err();
        assert!(
            matches!(&err, ConfigError::SqliteSidecar { what: SqliteSidecar::Wal, sidecar, .. } if *sidecar == wal),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("bank.sqlite-wal") && message.contains("checkpoint"),
            "{message}"
        );
        std::fs::remove_file(&wal).unwrap();
        let journal = dir.path().join("bank.sqlite-journal");
        std::fs::write(
            &journal,
            [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7, 0, 0],
        )
        .unwrap();
        assert!(matches!(
            Target::sqlite(&db),
            Err(ConfigError::SqliteSidecar {
                what: SqliteSidecar::Journal,
                ..
            })
        ));
        std::fs::write(&journal, [0u8; 16]).unwrap();
        assert!(Target::sqlite(&db).is_ok(), "a zeroed journal is not hot");
    }

    /// What a single-storage properties file gives `scan`.
    struct Single {
        target: Target,
        coordinator_namespace: String,
        metadata_schema: Option<String>,
    }

    fn single(path: &str, text: &str) -> Single {
        let file = PropertiesFile {
            path: PathBuf::from(path),
            text: text.to_owned(),
        };
        let deployment = Deployment::from_properties(&[file], None).unwrap();
        let storage = deployment.only_storage().unwrap();
        Single {
            target: storage.endpoint().open().unwrap(),
            coordinator_namespace: deployment.coordinator_namespace().to_owned(),
            metadata_schema: storage.metadata_schema().map(str::to_owned),
        }
    }

    #[test]
    fn properties_give_target_credentials_and_namespaces() {
        let props = single(
            "database.properties",
            "# ScalarDB\nscalar.db.storage=jdbc\n\
             scalar.db.contact_points=jdbc:postgresql://db.internal:5433/app?sslmode=require\n\
             scalar.db.username=scalar\nscalar.db.password=p@ss:word\n\
             scalar.db.consensus_commit.coordinator.namespace = coord\n\
             scalar.db.jdbc.table_metadata.schema: meta\n",
        );
        assert_eq!(
            props.target.display(),
            "postgres://scalar@db.internal:5433/app"
        );
        assert!(props.target.connection_url().contains("p%40ss%3Aword"));
        assert_eq!(props.coordinator_namespace, "coord");
        assert_eq!(props.metadata_schema.as_deref(), Some("meta"));
    }

    #[test]
    fn cassandra_targets_come_from_urls_and_properties() {
        let props = single(
            "p",
            "scalar.db.storage=cassandra\nscalar.db.contact_points=db1, db2:9999\n\
             scalar.db.contact_port=9043\nscalar.db.username=cassandra\n\
             scalar.db.password=s3cret\n",
        );
        let Backend::Cassandra(cassandra) = &props.target.backend else {
            panic!("not a Cassandra target");
        };
        assert_eq!(cassandra.contact_points, ["db1:9043", "db2:9999"]);
        assert_eq!(
            props.target.display(),
            "cassandra://cassandra@db1:9043,db2:9999"
        );
        assert!(!format!("{:?}", props.target).contains("s3cret"));
        // ScalarDB's default storage is Cassandra.
        let props = single("p", "scalar.db.contact_points=localhost");
        assert!(matches!(props.target.backend, Backend::Cassandra(_)));

        let target =
            Target::from_url("cassandra://u:pw@127.0.0.1,127.0.0.2:19042?consistency=all").unwrap();
        let Backend::Cassandra(cassandra) = &target.backend else {
            panic!("not a Cassandra target");
        };
        assert_eq!(
            cassandra.contact_points,
            ["127.0.0.1:9042", "127.0.0.2:19042"]
        );
        assert_eq!(cassandra.consistency, ReadConsistency::All);
        assert_eq!(
            target.display(),
            "cassandra://u@127.0.0.1:9042,127.0.0.2:19042"
        );
        assert!(Target::from_url("cassandra://h?consistency=SOME").is_err());
        // User information is percent-encoded, as in every URL.
        let escaped = Target::from_url("cassandra://app%40corp:p%3Aw%25d@h").unwrap();
        let Backend::Cassandra(cassandra) = &escaped.backend else {
            panic!("a Cassandra target");
        };
        let credentials = cassandra.credentials.as_ref().unwrap();
        assert_eq!(
            (credentials.username.as_str(), credentials.password.as_str()),
            ("app@corp", "p:w%d")
        );
        let error = Target::from_url("cassandra://u:100%@h")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("malformed %-escape"), "{error}");
        assert!(
            !error.contains("100%"),
            "the password is never shown: {error}"
        );
        assert!(Target::from_url("cassandra://").is_err());
    }

    #[test]
    fn as_of_takes_epoch_millis_or_rfc3339() {
        assert_eq!(parse_as_of("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_as_of("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert!(parse_as_of("yesterday").is_err());
        assert_eq!(parse_duration_ms("5m").unwrap(), 300_000);
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert!(parse_duration_ms("5 parsecs").is_err());
    }
}
