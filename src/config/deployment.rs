//! A ScalarDB deployment: the databases ("storages") its services use, how each service
//! routes a table to one of them, and which one holds the Coordinator table. Built from one
//! or more properties files (a service each: microservices, two-phase commit) or from
//! `--storage`/`--namespace`/`--default-storage`/`--coordinator-storage`, and validated
//! whole before any I/O.
//!
//! Routing is ScalarDB's `MultiStorage.getStorage`: `table_mapping["NS.TABLE"]`, else
//! `namespace_mapping[NS]`, else the default storage; the Coordinator is the table
//! `<coordinator namespace>.state` routed so (`CoordinatorStateAccessor` goes through the same
//! storage). Two storages are one database when their endpoints name the same place as
//! written (kind, host, port, and PostgreSQL's database; Cassandra's contact points; SQLite's
//! path): no name is resolved.
//!
//! Owns the `Deployment` type and its rules. Must not open files or connections (a SQLite
//! file is checked by [`Endpoint::open`], at the I/O stage), nor hold a state ScalarDB could
//! not be in: every id names a storage of the deployment, every service has a default
//! storage, and the services agree on one Coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use super::properties::{self, FileConfig, PropertiesFile};
use super::{
    Backend, ConfigError, DEFAULT_COORDINATOR_NAMESPACE, Target, redact_unparsed, sqlite_url_path,
};
use crate::store::Dialect;

/// The Coordinator's table name in its namespace (`CoordinatorStateAccessor.TABLE`).
pub const COORDINATOR_TABLE: &str = "state";

/// Where a storage lives, as configured. Building one opens nothing.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// PostgreSQL, MySQL/MariaDB or Cassandra: parsed, not contacted.
    Server(Target),
    /// A SQLite file, checked (header, write-ahead log, hot journal) when opened.
    Sqlite(PathBuf),
}

/// Which database engine a storage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    Postgres,
    MySql,
    Sqlite,
    Cassandra,
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "postgresql",
            Self::MySql => "mysql",
            Self::Sqlite => "sqlite",
            Self::Cassandra => "cassandra",
        })
    }
}

impl Endpoint {
    /// A `postgres://`, `mysql://`, `mariadb://`, `sqlite://` or `cassandra://` URL, as
    /// `Target::from_url` reads it, but a SQLite file is not read yet.
    pub fn from_url(raw: &str) -> Result<Self, ConfigError> {
        match sqlite_url_path(raw) {
            Some(path) => Ok(Self::Sqlite(path.to_owned())),
            None => Target::from_url(raw).map(Self::Server),
        }
    }

    /// The target to scan. For a SQLite file this is the I/O stage: its header is read and a
    /// file with pending changes beside it is refused.
    pub fn open(&self) -> Result<Target, ConfigError> {
        match self {
            Self::Server(target) => Ok(target.clone()),
            Self::Sqlite(path) => Target::sqlite(path),
        }
    }

    pub fn kind(&self) -> StorageKind {
        match self {
            Self::Sqlite(_) => StorageKind::Sqlite,
            Self::Server(target) => target.kind(),
        }
    }

    /// As shown to users: no password.
    pub fn display(&self) -> String {
        match self {
            Self::Server(target) => target.display().to_owned(),
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
        }
    }

    /// Which database this is, credentials aside.
    fn locator(&self) -> Locator {
        let target = match self {
            Self::Sqlite(path) => return Locator::Sqlite(path.clone()),
            Self::Server(target) => target,
        };
        if let Backend::Cassandra(cassandra) = &target.backend {
            return Locator::Cassandra(
                cassandra
                    .contact_points
                    .iter()
                    .map(|p| p.to_ascii_lowercase())
                    .collect(),
            );
        }
        let Ok(url) = url::Url::parse(target.connection_url()) else {
            return Locator::Other(target.display().to_owned());
        };
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        match target.dialect {
            // A ScalarDB namespace is a schema of the URL's database, which defaults to the
            // user's name (libpq, pgjdbc).
            Dialect::Postgres => Locator::Postgres {
                host,
                port: url.port().unwrap_or(5432),
                database: match url.path().trim_start_matches('/') {
                    "" => url.username().to_owned(),
                    database => database.to_owned(),
                },
            },
            // A ScalarDB namespace is a MySQL database: the URL's database changes nothing.
            Dialect::MySql => Locator::MySql {
                host,
                port: url.port().unwrap_or(3306),
            },
            Dialect::Sqlite => Locator::Other(target.display().to_owned()),
        }
    }
}

impl Target {
    /// Which engine this target is.
    pub fn kind(&self) -> StorageKind {
        match (&self.backend, self.dialect) {
            (Backend::Cassandra(_), _) => StorageKind::Cassandra,
            (Backend::Sql, Dialect::Postgres) => StorageKind::Postgres,
            (Backend::Sql, Dialect::MySql) => StorageKind::MySql,
            (Backend::Sql, Dialect::Sqlite) => StorageKind::Sqlite,
        }
    }
}

/// The identity of a database, compared as written.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Locator {
    Postgres {
        host: String,
        port: u16,
        database: String,
    },
    MySql {
        host: String,
        port: u16,
    },
    Sqlite(PathBuf),
    Cassandra(BTreeSet<String>),
    Other(String),
}

/// Where a storage or a service was configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    CommandLine,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::CommandLine => f.write_str("the command line"),
        }
    }
}

/// A storage of a [`Deployment`]; only the deployment makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorageId(usize);

/// One database of the deployment.
#[derive(Clone, Debug)]
pub struct Storage {
    name: String,
    endpoint: Endpoint,
    metadata_schema: Option<String>,
    aliases: Vec<(Source, String)>,
}

impl Storage {
    /// Unique in the deployment: the name its first configuration gave it, else that name
    /// and the file's stem (`mysql@orders`) when another database took it first.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The JDBC table-metadata schema its first configuration gave (none: the default).
    pub fn metadata_schema(&self) -> Option<&str> {
        self.metadata_schema.as_deref()
    }

    /// Every `(source, name)` that configures this database, in order.
    pub fn aliases(&self) -> &[(Source, String)] {
        &self.aliases
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.endpoint.display())
    }
}

/// One service's routing: a properties file, or the command line's options.
#[derive(Clone, Debug)]
pub struct Service {
    source: Source,
    tables: BTreeMap<String, StorageId>,
    namespaces: BTreeMap<String, StorageId>,
    default: StorageId,
}

impl Service {
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// ScalarDB's `MultiStorage.getStorage`: the table mapping for `NS.TABLE`, else the
    /// namespace mapping, else the default storage.
    pub fn storage_for_table(&self, namespace: &str, table: &str) -> StorageId {
        self.tables
            .get(&format!("{namespace}.{table}"))
            .or_else(|| self.namespaces.get(namespace))
            .copied()
            .unwrap_or(self.default)
    }

    /// Where a namespace's tables go unless the deprecated table mapping names one.
    pub fn storage_for_namespace(&self, namespace: &str) -> StorageId {
        self.namespaces
            .get(namespace)
            .copied()
            .unwrap_or(self.default)
    }

    /// Where unmapped namespaces go.
    pub fn default_storage(&self) -> StorageId {
        self.default
    }

    /// Every storage this service can send a table to.
    fn routed(&self) -> impl Iterator<Item = StorageId> + '_ {
        std::iter::once(self.default)
            .chain(self.namespaces.values().copied())
            .chain(self.tables.values().copied())
    }
}

/// `--storage NAME=URL`, `--namespace NS=NAME`, `--default-storage NAME`,
/// `--coordinator-storage NAME`, as given.
#[derive(Clone, Copy, Debug, Default)]
pub struct StorageFlags<'a> {
    pub storages: &'a [String],
    pub namespaces: &'a [String],
    pub default_storage: Option<&'a str>,
    pub coordinator_storage: Option<&'a str>,
}

/// A whole deployment, validated.
#[derive(Clone, Debug)]
pub struct Deployment {
    storages: Vec<Storage>,
    services: Vec<Service>,
    coordinator_namespace: String,
    coordinator: StorageId,
}

impl Deployment {
    /// One deployment from each service's properties file. `coordinator_namespace` (the
    /// command line's) overrides every file's `scalar.db.consensus_commit.coordinator.namespace`.
    /// The files must route the Coordinator to one database.
    pub fn from_properties(
        files: &[PropertiesFile],
        coordinator_namespace: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let mut builder = Builder::default();
        let mut services = Vec::new();
        let mut coordinator: Option<(PathBuf, String, StorageId, String)> = None;
        for file in files {
            let config = properties::parse_file(file)?;
            let source = Source::File(config.path.clone());
            let ids: Vec<StorageId> = config
                .storages
                .iter()
                .map(|(name, spec)| {
                    builder.add(&source, name, spec.endpoint.clone(), &spec.metadata_schema)
                })
                .collect();
            let namespace = coordinator_namespace
                .map(str::to_owned)
                .or_else(|| config.coordinator_namespace.clone())
                .unwrap_or_else(|| DEFAULT_COORDINATOR_NAMESPACE.to_owned());
            let local = coordinator_in_file(&config, &namespace);
            let (local_name, spec) = &config.storages[local];
            let described = format!(
                "{namespace}.{COORDINATOR_TABLE} in {local_name} ({})",
                spec.endpoint.display()
            );
            let id = ids[local];
            match &coordinator {
                None => coordinator = Some((config.path.clone(), namespace, id, described)),
                Some((first, first_namespace, first_id, first_described)) => {
                    if *first_namespace != namespace || *first_id != id {
                        return Err(ConfigError::CoordinatorsDisagree {
                            first: first.clone(),
                            first_coordinator: first_described.clone(),
                            other: config.path.clone(),
                            other_coordinator: described,
                        });
                    }
                }
            }
            services.push(Service {
                source,
                tables: config
                    .tables
                    .iter()
                    .map(|(table, i)| (table.clone(), ids[*i]))
                    .collect(),
                namespaces: config
                    .namespaces
                    .iter()
                    .map(|(namespace, i)| (namespace.clone(), ids[*i]))
                    .collect(),
                default: ids[config.default],
            });
        }
        let Some((_, coordinator_namespace, coordinator, _)) = coordinator else {
            return Err(ConfigError::NoTarget);
        };
        Ok(Self {
            storages: builder.storages,
            services,
            coordinator_namespace,
            coordinator,
        })
    }

    /// One deployment from the command line, routed as a multi-storage file would be: a
    /// namespace to its `--namespace` storage, else to `--default-storage` (needed with more
    /// than one storage); the Coordinator to `--coordinator-storage`, else as its namespace.
    pub fn from_flags(
        flags: &StorageFlags<'_>,
        coordinator_namespace: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let invalid = |option, value: &str, reason: String| ConfigError::InvalidOption {
            option,
            value: value.to_owned(),
            reason,
        };
        let mut builder = Builder::default();
        let mut by_name: Vec<(String, StorageId)> = Vec::new();
        for text in flags.storages {
            // The URL may hold a password: only the name is ever shown.
            let Some((name, url)) = text.split_once('=') else {
                return Err(invalid(
                    "--storage",
                    &redact_unparsed(text),
                    "expected NAME=URL".to_owned(),
                ));
            };
            let shown = format!("{name}=…");
            check_storage_name(name).map_err(|reason| invalid("--storage", &shown, reason))?;
            if by_name.iter().any(|(n, _)| n == name) {
                return Err(invalid(
                    "--storage",
                    &shown,
                    format!("names storage {name} twice"),
                ));
            }
            let endpoint = Endpoint::from_url(url)
                .map_err(|e| invalid("--storage", &shown, crate::error::error_chain(&e)))?;
            let id = builder.add(&Source::CommandLine, name, endpoint, &None);
            by_name.push((name.to_owned(), id));
        }
        let listed = || {
            by_name
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let lookup = |option, value: &str, name: &str| {
            by_name
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, id)| *id)
                .ok_or_else(|| {
                    invalid(
                        option,
                        value,
                        format!(
                            "names storage {name:?}, which no --storage gives ({})",
                            listed()
                        ),
                    )
                })
        };
        let mut namespaces = BTreeMap::new();
        for text in flags.namespaces {
            let (namespace, name) = text
                .split_once('=')
                .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
                .ok_or_else(|| invalid("--namespace", text, "expected NS=NAME".to_owned()))?;
            let id = lookup("--namespace", text, name)?;
            if namespaces.insert(namespace.to_owned(), id).is_some() {
                return Err(invalid(
                    "--namespace",
                    text,
                    format!("maps namespace {namespace} twice"),
                ));
            }
        }
        let default = match (flags.default_storage, by_name.as_slice()) {
            (Some(name), _) => lookup("--default-storage", name, name)?,
            (None, [(_, only)]) => *only,
            (None, []) => return Err(ConfigError::NoTarget),
            (None, _) => {
                return Err(ConfigError::MissingOption {
                    option: "--default-storage",
                    why: "several --storage are given, and the namespaces no --namespace maps \
                          go to the default storage (ScalarDB's \
                          scalar.db.multi_storage.default_storage)",
                });
            }
        };
        let coordinator_namespace = coordinator_namespace
            .unwrap_or(DEFAULT_COORDINATOR_NAMESPACE)
            .to_owned();
        if let Some(name) = flags.coordinator_storage {
            let id = lookup("--coordinator-storage", name, name)?;
            match namespaces.get(&coordinator_namespace) {
                Some(mapped) if *mapped != id => {
                    return Err(invalid(
                        "--coordinator-storage",
                        name,
                        format!(
                            "conflicts with --namespace {coordinator_namespace}=…, which puts the \
                             Coordinator namespace in another storage"
                        ),
                    ));
                }
                _ => {
                    namespaces.insert(coordinator_namespace.clone(), id);
                }
            }
        }
        let service = Service {
            source: Source::CommandLine,
            tables: BTreeMap::new(),
            namespaces,
            default,
        };
        let coordinator = service.storage_for_table(&coordinator_namespace, COORDINATOR_TABLE);
        Ok(Self {
            storages: builder.storages,
            services: vec![service],
            coordinator_namespace,
            coordinator,
        })
    }

    /// Every database, in the order first configured.
    pub fn storages(&self) -> &[Storage] {
        &self.storages
    }

    /// A storage of this deployment (an id of another deployment panics).
    pub fn storage(&self, id: StorageId) -> &Storage {
        &self.storages[id.0]
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn coordinator_namespace(&self) -> &str {
        &self.coordinator_namespace
    }

    /// The storage whose `<coordinator namespace>.state` ScalarDB reads and writes; a
    /// Coordinator-shaped table elsewhere is a copy ScalarDB never reads.
    pub fn coordinator_storage(&self) -> StorageId {
        self.coordinator
    }

    /// The storages some service routes a table to. The others are configured but never
    /// read by ScalarDB.
    pub fn routed_storages(&self) -> BTreeSet<StorageId> {
        self.services.iter().flat_map(Service::routed).collect()
    }

    /// Storages configured but never routed to.
    pub fn unrouted_storages(&self) -> impl Iterator<Item = &Storage> + '_ {
        let routed = self.routed_storages();
        self.storages
            .iter()
            .enumerate()
            .filter(move |(i, _)| !routed.contains(&StorageId(*i)))
            .map(|(_, storage)| storage)
    }

    /// Every storage with its id, in the order first configured.
    pub fn storages_with_ids(&self) -> impl Iterator<Item = (StorageId, &Storage)> + '_ {
        self.storages
            .iter()
            .enumerate()
            .map(|(i, storage)| (StorageId(i), storage))
    }

    /// Whether some service routes `NAMESPACE.TABLE` to `storage` (ScalarDB reads it there).
    pub fn routes_table_to(&self, namespace: &str, table: &str, storage: StorageId) -> bool {
        self.services
            .iter()
            .any(|service| service.storage_for_table(namespace, table) == storage)
    }

    /// Whether a namespace or table mapping names `storage` (not only as the default).
    pub fn is_mapped(&self, storage: StorageId) -> bool {
        self.services.iter().any(|service| {
            service.namespaces.values().any(|id| *id == storage)
                || service.tables.values().any(|id| *id == storage)
        })
    }

    /// The one storage every namespace and the Coordinator resolve to, if there is one: such
    /// a deployment is scanned as that database. `None`: it spans several storages, scanned
    /// as one deployment.
    pub fn only_storage(&self) -> Option<&Storage> {
        let routed = self.routed_storages();
        match routed.iter().next() {
            Some(only) if routed.len() == 1 => Some(self.storage(*only)),
            _ => None,
        }
    }
}

/// The storage (an index into the file's) that holds the Coordinator, as ScalarDB routes it.
fn coordinator_in_file(config: &FileConfig, namespace: &str) -> usize {
    let table = format!("{namespace}.{COORDINATOR_TABLE}");
    config
        .tables
        .iter()
        .find(|(t, _)| *t == table)
        .or_else(|| config.namespaces.iter().find(|(ns, _)| ns == namespace))
        .map_or(config.default, |(_, i)| *i)
}

/// A `--storage` name: it is used in keys and in `NAME=…`/`NAME@…` options, so none of
/// their separators.
fn check_storage_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the storage name is empty".to_owned());
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || [',', ':', '@', '='].contains(&c))
    {
        return Err("a storage name has no spaces, ',', ':', '@' or '='".to_owned());
    }
    Ok(())
}

/// Collects storages, one per database.
#[derive(Default)]
struct Builder {
    storages: Vec<Storage>,
}

impl Builder {
    /// The storage at `endpoint`'s database, added if new; `name` from `source` is recorded
    /// as one of its aliases either way.
    fn add(
        &mut self,
        source: &Source,
        name: &str,
        endpoint: Endpoint,
        metadata_schema: &Option<String>,
    ) -> StorageId {
        let locator = endpoint.locator();
        let alias = (source.clone(), name.to_owned());
        if let Some(i) = self
            .storages
            .iter()
            .position(|s| s.endpoint.locator() == locator)
        {
            self.storages[i].aliases.push(alias);
            return StorageId(i);
        }
        let name = self.unique_name(name, source);
        self.storages.push(Storage {
            name,
            endpoint,
            metadata_schema: metadata_schema.clone(),
            aliases: vec![alias],
        });
        StorageId(self.storages.len() - 1)
    }

    fn unique_name(&self, name: &str, source: &Source) -> String {
        let taken = |candidate: &str| self.storages.iter().any(|s| s.name == candidate);
        let mut candidate = match source {
            _ if !taken(name) => return name.to_owned(),
            Source::File(path) => match path.file_stem() {
                Some(stem) => format!("{name}@{}", stem.to_string_lossy()),
                None => name.to_owned(),
            },
            Source::CommandLine => name.to_owned(),
        };
        let base = candidate.clone();
        let mut n = 2;
        while taken(&candidate) {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        candidate
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn file(path: &str, text: &str) -> PropertiesFile {
        PropertiesFile {
            path: PathBuf::from(path),
            text: text.to_owned(),
        }
    }

    fn deployment(text: &str) -> Result<Deployment, ConfigError> {
        Deployment::from_properties(&[file("database.properties", text)], None)
    }

    fn names(deployment: &Deployment, ids: impl IntoIterator<Item = StorageId>) -> Vec<&str> {
        ids.into_iter()
            .map(|id| deployment.storage(id).name())
            .collect()
    }

    /// ScalarDB's documented example (multi-storage transactions), its storages made local.
    const DOCS_EXAMPLE: &str = "\
# Consensus Commit is required to support multi-storage transactions.
scalar.db.transaction_manager=consensus-commit
scalar.db.storage=multi-storage
scalar.db.multi_storage.storages=cassandra,mysql
scalar.db.multi_storage.storages.cassandra.storage=cassandra
scalar.db.multi_storage.storages.cassandra.contact_points=localhost
scalar.db.multi_storage.storages.cassandra.username=cassandra
scalar.db.multi_storage.storages.cassandra.password=cassandra-secret
scalar.db.multi_storage.storages.mysql.storage=jdbc
scalar.db.multi_storage.storages.mysql.contact_points=jdbc:mysql://localhost:3306/
scalar.db.multi_storage.storages.mysql.username=root
scalar.db.multi_storage.storages.mysql.password=mysql-secret
scalar.db.multi_storage.storages.mysql.jdbc.connection_pool.min_idle=5
scalar.db.multi_storage.namespace_mapping=user:cassandra,coordinator:mysql
scalar.db.multi_storage.default_storage=cassandra
";

    #[test]
    fn the_documented_multi_storage_example_routes_as_scalardb_does() {
        let d = deployment(DOCS_EXAMPLE).unwrap();
        assert_eq!(names(&d, (0..2).map(StorageId)), ["cassandra", "mysql"]);
        assert_eq!(
            d.storage(StorageId(0)).endpoint().kind(),
            StorageKind::Cassandra
        );
        assert_eq!(
            d.storage(StorageId(1)).endpoint().display(),
            "mysql://root@localhost:3306/"
        );
        assert_eq!(d.coordinator_namespace(), "coordinator");
        assert_eq!(names(&d, [d.coordinator_storage()]), ["mysql"]);
        let service = &d.services()[0];
        assert_eq!(
            names(&d, [service.storage_for_table("user", "t")]),
            ["cassandra"]
        );
        assert_eq!(
            names(&d, [service.storage_for_table("unmapped", "t")]),
            ["cassandra"],
            "an unmapped namespace goes to the default storage"
        );
        assert_eq!(d.routed_storages().len(), 2);
        let shown = format!("{d:?}");
        assert!(
            !shown.contains("cassandra-secret") && !shown.contains("mysql-secret"),
            "{shown}"
        );
    }

    #[test]
    fn the_coordinator_follows_table_mapping_then_namespace_mapping_then_the_default() {
        let base = "scalar.db.storage=multi-storage\n\
             scalar.db.multi_storage.storages=pg,my\n\
             scalar.db.multi_storage.storages.pg.storage=jdbc\n\
             scalar.db.multi_storage.storages.pg.contact_points=jdbc:postgresql://pg:5432/app\n\
             scalar.db.multi_storage.storages.my.storage=jdbc\n\
             scalar.db.multi_storage.storages.my.contact_points=jdbc:mysql://my:3306/\n\
             scalar.db.multi_storage.default_storage=pg\n";
        let coordinator = |extra: &str| {
            let d = deployment(&format!("{base}{extra}")).unwrap();
            d.storage(d.coordinator_storage()).name().to_owned()
        };
        assert_eq!(coordinator(""), "pg", "the default storage");
        assert_eq!(
            coordinator("scalar.db.multi_storage.namespace_mapping=coordinator:my\n"),
            "my"
        );
        assert_eq!(
            coordinator(
                "scalar.db.multi_storage.namespace_mapping=coordinator:my\n\
                 scalar.db.multi_storage.table_mapping=coordinator.state:pg\n"
            ),
            "pg",
            "the deprecated table mapping wins"
        );
        assert_eq!(
            coordinator("scalar.db.multi_storage.table_mapping=coordinator.other:my\n"),
            "pg",
            "only <namespace>.state is the Coordinator"
        );
        assert_eq!(
            coordinator(
                "scalar.db.consensus_commit.coordinator.namespace=coord\n\
                 scalar.db.multi_storage.namespace_mapping=coordinator:pg,coord:my\n"
            ),
            "my",
            "a renamed Coordinator namespace is routed by its own name"
        );
        let d = Deployment::from_properties(
            &[file(
                "p",
                &format!("{base}scalar.db.multi_storage.namespace_mapping=coord:my\n"),
            )],
            Some("coord"),
        )
        .unwrap();
        assert_eq!(
            (
                d.coordinator_namespace(),
                d.storage(d.coordinator_storage()).name()
            ),
            ("coord", "my"),
            "--coordinator-namespace overrides the file's"
        );
    }

    #[test]
    fn global_properties_apply_to_every_storage_unless_it_overrides_them() {
        let d = deployment(
            "scalar.db.storage=multi-storage\n\
             scalar.db.username=scalar\nscalar.db.password=global-secret\n\
             scalar.db.contact_port=9043\n\
             scalar.db.system_namespace_name=meta\n\
             scalar.db.multi_storage.storages=pg,cass\n\
             scalar.db.multi_storage.storages.pg.storage=jdbc\n\
             scalar.db.multi_storage.storages.pg.contact_points=jdbc:postgresql://pg/app\n\
             scalar.db.multi_storage.storages.pg.username=pguser\n\
             scalar.db.multi_storage.storages.cass.storage=cassandra\n\
             scalar.db.multi_storage.storages.cass.contact_points=c1,c2:9999\n\
             scalar.db.multi_storage.default_storage=pg\n",
        )
        .unwrap();
        let pg = d.storage(StorageId(0));
        assert_eq!(pg.endpoint().display(), "postgres://pguser@pg/app");
        let Endpoint::Server(target) = pg.endpoint() else {
            panic!("a server");
        };
        assert!(
            target.connection_url().contains("global-secret"),
            "the global password is inherited"
        );
        assert_eq!(pg.metadata_schema(), Some("meta"));
        let cass = d.storage(StorageId(1));
        assert_eq!(
            cass.endpoint().display(),
            "cassandra://scalar@c1:9043,c2:9999",
            "the global user and port are inherited"
        );
    }

    #[test]
    fn a_multi_storage_file_without_a_default_storage_names_the_property() {
        let text = DOCS_EXAMPLE.replace("scalar.db.multi_storage.default_storage=cassandra\n", "");
        let error = deployment(&text).unwrap_err();
        assert!(
            matches!(&error, ConfigError::MissingProperty { key, .. }
                if key == "scalar.db.multi_storage.default_storage"),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("database.properties"), "{message}");
        assert!(
            crate::error::Error::from(error).exit_code() == crate::error::exit_code::USAGE,
            "a configuration error"
        );
        let text = DOCS_EXAMPLE.replace("default_storage=cassandra", "default_storage=oracle");
        let message = deployment(&text).unwrap_err().to_string();
        assert!(
            message.contains("scalar.db.multi_storage.default_storage")
                && message.contains("\"oracle\""),
            "{message}"
        );
    }

    #[test]
    fn mappings_must_name_listed_storages_once() {
        let cases = [
            (
                "namespace_mapping=user:cassandra,coordinator:postgres",
                "scalar.db.multi_storage.namespace_mapping",
                "\"postgres\"",
            ),
            (
                "namespace_mapping=user:cassandra,user:mysql",
                "scalar.db.multi_storage.namespace_mapping",
                "maps user twice",
            ),
            (
                "namespace_mapping=user",
                "scalar.db.multi_storage.namespace_mapping",
                "expected NAMESPACE:STORAGE",
            ),
        ];
        for (mapping, key, reason) in cases {
            let text = DOCS_EXAMPLE.replace(
                "namespace_mapping=user:cassandra,coordinator:mysql",
                mapping,
            );
            let message = deployment(&text).unwrap_err().to_string();
            assert!(
                message.contains(key) && message.contains(reason),
                "{mapping}: {message}"
            );
            assert!(message.contains("database.properties"), "{message}");
        }
        for (mapping, reason) in [
            ("ns.t:nowhere", "\"nowhere\""),
            ("ns:mysql", "expected NAMESPACE.TABLE:STORAGE"),
            ("ns.t:mysql,ns.t:cassandra", "maps ns.t twice"),
        ] {
            let text = format!("{DOCS_EXAMPLE}scalar.db.multi_storage.table_mapping={mapping}\n");
            let message = deployment(&text).unwrap_err().to_string();
            assert!(
                message.contains("scalar.db.multi_storage.table_mapping")
                    && message.contains(reason),
                "{mapping}: {message}"
            );
        }
    }

    #[test]
    fn storages_are_listed_once_each_with_a_supported_kind_of_their_own() {
        let twice = DOCS_EXAMPLE.replace(
            "storages=cassandra,mysql",
            "storages=cassandra,mysql,cassandra",
        );
        let message = deployment(&twice).unwrap_err().to_string();
        assert!(
            message.contains("scalar.db.multi_storage.storages lists storage cassandra twice"),
            "{message}"
        );
        let dynamo = DOCS_EXAMPLE.replace(
            "storages.cassandra.storage=cassandra",
            "storages.cassandra.storage=dynamo",
        );
        let error = deployment(&dynamo).unwrap_err();
        assert!(
            matches!(error, ConfigError::UnsupportedStorage { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("scalar.db.multi_storage.storages.cassandra.storage=dynamo")
                && message.contains("database.properties"),
            "{message}"
        );
        let unset =
            DOCS_EXAMPLE.replace("scalar.db.multi_storage.storages.mysql.storage=jdbc\n", "");
        let message = deployment(&unset).unwrap_err().to_string();
        assert!(
            message.contains("scalar.db.multi_storage.storages.mysql.storage is not set"),
            "an inherited multi-storage is not a kind: {message}"
        );
        let nested = DOCS_EXAMPLE.replace(
            "storages.mysql.storage=jdbc",
            "storages.mysql.storage=multi-storage",
        );
        let message = deployment(&nested).unwrap_err().to_string();
        assert!(message.contains("does not nest multi-storage"), "{message}");
        let unlisted = DOCS_EXAMPLE.replace("storages=cassandra,mysql", "storages=cassandra");
        let message = deployment(&unlisted).unwrap_err().to_string();
        assert!(
            message.contains("namespace_mapping") && message.contains("\"mysql\""),
            "a mapping to a storage not listed: {message}"
        );
        let bad_url = DOCS_EXAMPLE.replace("jdbc:mysql://localhost:3306/", "jdbc:oracle:thin:@x");
        let message = deployment(&bad_url).unwrap_err().to_string();
        assert!(
            message.contains("scalar.db.multi_storage.storages.mysql.contact_points"),
            "{message}"
        );
    }

    #[test]
    fn a_multi_storage_file_routed_to_one_database_scans_it() {
        let d = deployment(
            "scalar.db.storage=multi-storage\n\
             scalar.db.multi_storage.storages=main,spare\n\
             scalar.db.multi_storage.storages.main.storage=jdbc\n\
             scalar.db.multi_storage.storages.main.contact_points=jdbc:sqlite:/backups/bank.sqlite\n\
             scalar.db.multi_storage.storages.spare.storage=jdbc\n\
             scalar.db.multi_storage.storages.spare.contact_points=jdbc:postgresql://spare/app\n\
             scalar.db.multi_storage.namespace_mapping=bank:main\n\
             scalar.db.multi_storage.default_storage=main\n",
        )
        .unwrap();
        let only = d.only_storage().unwrap();
        assert_eq!(only.name(), "main");
        assert!(
            matches!(only.endpoint(), Endpoint::Sqlite(p) if p == Path::new("/backups/bank.sqlite")),
            "not opened yet: {only:?}"
        );
        let unrouted: Vec<&str> = d.unrouted_storages().map(Storage::name).collect();
        assert_eq!(unrouted, ["spare"]);
    }

    #[test]
    fn a_deployment_across_storages_has_no_single_storage_and_names_the_coordinators() {
        let d = deployment(DOCS_EXAMPLE).unwrap();
        assert!(d.only_storage().is_none());
        assert_eq!(d.routed_storages().len(), 2);
        assert_eq!(d.storage(d.coordinator_storage()).name(), "mysql");
        let shown: Vec<String> = d.storages().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "cassandra (cassandra://cassandra@localhost:9042)",
                "mysql (mysql://root@localhost:3306/)"
            ]
        );
        assert!(!format!("{d:?}").contains("secret"));
    }

    #[test]
    fn storages_naming_one_database_are_one_storage() {
        let d = deployment(
            "scalar.db.storage=multi-storage\n\
             scalar.db.multi_storage.storages=a,b\n\
             scalar.db.multi_storage.storages.a.storage=jdbc\n\
             scalar.db.multi_storage.storages.a.contact_points=jdbc:mysql://DB:3306/app\n\
             scalar.db.multi_storage.storages.a.username=one\n\
             scalar.db.multi_storage.storages.b.storage=jdbc\n\
             scalar.db.multi_storage.storages.b.contact_points=jdbc:mysql://db/other\n\
             scalar.db.multi_storage.storages.b.username=two\n\
             scalar.db.multi_storage.namespace_mapping=x:b\n\
             scalar.db.multi_storage.default_storage=a\n",
        )
        .unwrap();
        assert_eq!(d.storages().len(), 1, "{d:?}");
        assert_eq!(d.only_storage().unwrap().aliases().len(), 2);
        let postgres = |url: &str| Endpoint::from_url(url).unwrap().locator();
        assert_eq!(
            postgres("postgres://u@h/u"),
            postgres("postgres://u@h:5432")
        );
        assert_ne!(postgres("postgres://u@h/a"), postgres("postgres://u@h/b"));
    }

    #[test]
    fn services_sharing_the_coordinator_form_one_deployment() {
        // The microservice sample: one service's multi-storage puts the Coordinator in
        // Cassandra, the other uses that Cassandra alone.
        let customer = file(
            "customer-service.properties",
            "scalar.db.storage=multi-storage\n\
             scalar.db.multi_storage.storages=cassandra,mysql\n\
             scalar.db.multi_storage.storages.cassandra.storage=cassandra\n\
             scalar.db.multi_storage.storages.cassandra.contact_points=cassandra\n\
             scalar.db.multi_storage.storages.mysql.storage=jdbc\n\
             scalar.db.multi_storage.storages.mysql.contact_points=jdbc:mysql://mysql:3306/\n\
             scalar.db.multi_storage.namespace_mapping=customer_service:mysql,coordinator:cassandra\n\
             scalar.db.multi_storage.default_storage=mysql\n",
        );
        let order = file(
            "order-service.properties",
            "scalar.db.storage=cassandra\nscalar.db.contact_points=cassandra\n\
             scalar.db.username=cassandra\nscalar.db.password=order-secret\n",
        );
        let d = Deployment::from_properties(&[customer.clone(), order.clone()], None).unwrap();
        assert_eq!(d.storages().len(), 2);
        assert_eq!(d.services().len(), 2);
        let coordinator = d.storage(d.coordinator_storage());
        assert_eq!(coordinator.name(), "cassandra");
        assert_eq!(coordinator.aliases().len(), 2, "both files name it");
        let [customer_service, order_service] = d.services() else {
            panic!("two services");
        };
        assert_eq!(
            names(
                &d,
                [customer_service.storage_for_namespace("order_service")]
            ),
            ["mysql"],
            "each file routes its own namespaces"
        );
        assert_eq!(
            names(&d, [order_service.storage_for_namespace("order_service")]),
            ["cassandra"]
        );
        assert!(!format!("{d:?}").contains("order-secret"));

        let elsewhere = file(
            "order-service.properties",
            "scalar.db.storage=cassandra\nscalar.db.contact_points=other-cluster\n",
        );
        let error = Deployment::from_properties(&[customer, elsewhere], None).unwrap_err();
        let message = error.to_string();
        for part in [
            "customer-service.properties",
            "order-service.properties",
            "coordinator.state in cassandra (cassandra://cassandra:9042)",
            "coordinator.state in cassandra (cassandra://other-cluster:9042)",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
    }

    #[test]
    fn services_with_different_coordinator_namespaces_disagree() {
        let a = file(
            "a.properties",
            "scalar.db.storage=jdbc\nscalar.db.contact_points=jdbc:postgresql://db/app\n",
        );
        let b = file(
            "b.properties",
            "scalar.db.storage=jdbc\nscalar.db.contact_points=jdbc:postgresql://db/app\n\
             scalar.db.consensus_commit.coordinator.namespace=coord\n",
        );
        let message = Deployment::from_properties(&[a.clone(), b.clone()], None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("coordinator.state in postgresql") && message.contains("coord.state"),
            "{message}"
        );
        // Same database, same Coordinator: one storage, scanned as today.
        let d = Deployment::from_properties(&[a, b], Some("coord")).unwrap();
        assert_eq!(d.only_storage().unwrap().name(), "postgresql");
    }

    #[test]
    fn a_name_taken_by_another_database_is_qualified_by_its_file() {
        let a = file(
            "a.properties",
            "scalar.db.storage=jdbc\nscalar.db.contact_points=jdbc:postgresql://db/app\n",
        );
        let b = file(
            "b.properties",
            "scalar.db.storage=multi-storage\n\
             scalar.db.multi_storage.storages=postgresql,coord\n\
             scalar.db.multi_storage.storages.postgresql.storage=jdbc\n\
             scalar.db.multi_storage.storages.postgresql.contact_points=jdbc:postgresql://other/app\n\
             scalar.db.multi_storage.storages.coord.storage=jdbc\n\
             scalar.db.multi_storage.storages.coord.contact_points=jdbc:postgresql://db/app\n\
             scalar.db.multi_storage.namespace_mapping=coordinator:coord\n\
             scalar.db.multi_storage.default_storage=postgresql\n",
        );
        let d = Deployment::from_properties(&[a, b], None).unwrap();
        let names: Vec<&str> = d.storages().iter().map(Storage::name).collect();
        assert_eq!(names, ["postgresql", "postgresql@b"]);
    }

    #[test]
    fn command_line_storages_route_like_a_multi_storage_file() {
        let storages = [
            "pg=postgres://verifier:pg-secret@pg:5432/app".to_owned(),
            "cass=cassandra://c1".to_owned(),
        ];
        let namespaces = ["events=cass".to_owned()];
        let flags = StorageFlags {
            storages: &storages,
            namespaces: &namespaces,
            default_storage: Some("pg"),
            coordinator_storage: None,
        };
        let d = Deployment::from_flags(&flags, None).unwrap();
        assert_eq!(d.storage(d.coordinator_storage()).name(), "pg");
        let service = &d.services()[0];
        assert_eq!(
            names(&d, [service.storage_for_table("events", "e")]),
            ["cass"]
        );
        assert_eq!(names(&d, [service.storage_for_table("bank", "a")]), ["pg"]);
        assert!(!format!("{d:?}").contains("pg-secret"));
        assert!(d.only_storage().is_none());
        let shown = d.storage(d.coordinator_storage()).to_string();
        assert_eq!(shown, "pg (postgres://verifier@pg:5432/app)");

        let d = Deployment::from_flags(
            &StorageFlags {
                coordinator_storage: Some("cass"),
                ..flags
            },
            Some("coord"),
        )
        .unwrap();
        assert_eq!(d.storage(d.coordinator_storage()).name(), "cass");
        assert_eq!(d.coordinator_namespace(), "coord");

        let one = ["only=sqlite:///backups/bank.sqlite".to_owned()];
        let d = Deployment::from_flags(
            &StorageFlags {
                storages: &one,
                ..StorageFlags::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(
            d.only_storage().unwrap().endpoint().kind(),
            StorageKind::Sqlite,
            "one storage is the default, and a SQLite file is not read yet"
        );
    }

    #[test]
    fn command_line_storages_are_validated_without_showing_urls() {
        let check = |storages: &[&str],
                     namespaces: &[&str],
                     default: Option<&str>,
                     coordinator: Option<&str>| {
            let storages: Vec<String> = storages.iter().map(|s| (*s).to_owned()).collect();
            let namespaces: Vec<String> = namespaces.iter().map(|s| (*s).to_owned()).collect();
            Deployment::from_flags(
                &StorageFlags {
                    storages: &storages,
                    namespaces: &namespaces,
                    default_storage: default,
                    coordinator_storage: coordinator,
                },
                None,
            )
            .unwrap_err()
            .to_string()
        };
        let a = "a=postgres://u:hidden@h/db";
        let b = "b=mysql://u:hidden@h2:3306/";
        for (message, expected) in [
            (check(&[a, a], &[], None, None), "names storage a twice"),
            (check(&[a, b], &[], None, None), "--default-storage"),
            (
                check(&[a, b], &[], Some("c"), None),
                "\"c\", which no --storage gives (a, b)",
            ),
            (check(&[a, b], &["x=c"], Some("a"), None), "--namespace x=c"),
            (
                check(&[a, b], &["x=a", "x=b"], Some("a"), None),
                "maps namespace x twice",
            ),
            (check(&[a, b], &["x"], Some("a"), None), "expected NS=NAME"),
            (
                check(&[a, b], &["coordinator=a"], Some("a"), Some("b")),
                "conflicts with --namespace",
            ),
            (
                check(&["postgres://u:hidden@h/db"], &[], None, None),
                "expected NAME=URL",
            ),
            (
                check(&["a b=postgres://u:hidden@h/db"], &[], None, None),
                "no spaces",
            ),
            (
                check(&["a=oracle://u:hidden@h/db"], &[], None, None),
                "unsupported scheme",
            ),
        ] {
            assert!(message.contains(expected), "{expected}: {message}");
            assert!(!message.contains("hidden"), "{message}");
        }
    }
}
