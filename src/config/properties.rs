//! ScalarDB `database.properties` files, read as ScalarDB reads them: Java properties; values
//! trimmed and empty ones unset (`ConfigUtils.getString`); lists split on unescaped commas
//! (`ConfigUtils.getStringArray`); and each multi-storage storage's properties built as
//! `MultiStorageConfig.loadDatabasePropertiesMapping` builds them (ScalarDB 3.13+): every
//! property outside `scalar.db.multi_storage.` first, then the storage's own
//! `scalar.db.multi_storage.storages.<NAME>.<PROP>` as `scalar.db.<PROP>`, overriding.
//!
//! Owns reading one file into storages and mappings that name only listed storages. Must not
//! read files (the caller hands in the text), open anything, or decide which storage holds
//! the Coordinator (`deployment.rs` does, across files).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{ConfigError, Endpoint, ReadConsistency, Target, redact_unparsed};
use crate::store::CassandraCredentials;

/// `scalar.db.`, the prefix of every ScalarDB property.
const PREFIX: &str = "scalar.db.";
/// `MultiStorageConfig.PREFIX`: properties of multi-storage itself, never inherited.
const MULTI_PREFIX: &str = "scalar.db.multi_storage.";
const STORAGES: &str = "scalar.db.multi_storage.storages";
const TABLE_MAPPING: &str = "scalar.db.multi_storage.table_mapping";
const NAMESPACE_MAPPING: &str = "scalar.db.multi_storage.namespace_mapping";
const DEFAULT_STORAGE: &str = "scalar.db.multi_storage.default_storage";
pub(super) const COORDINATOR_NAMESPACE: &str = "scalar.db.consensus_commit.coordinator.namespace";
/// `MultiStorageConfig.STORAGE_NAME`.
const MULTI_STORAGE: &str = "multi-storage";

/// One properties file, read and not yet interpreted.
#[derive(Clone, Debug)]
pub struct PropertiesFile {
    pub path: PathBuf,
    pub text: String,
}

impl PropertiesFile {
    /// The only I/O of the configuration's properties path.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadProperties {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            text,
        })
    }
}

/// A value and the key the user wrote it under (for a storage's inherited or own property,
/// not the `scalar.db.*` key it stands for), so an error names what to fix.
#[derive(Clone)]
struct Entry {
    value: String,
    written_as: String,
}

/// Java properties, the subset ScalarDB configs use. Values are never shown whole: they hold
/// passwords.
#[derive(Clone, Default)]
struct Properties {
    entries: HashMap<String, Entry>,
}

impl Properties {
    /// `key=value` or `key: value`, `#`/`!` comments, trailing-backslash continuations; a key
    /// given twice keeps its last value, as `java.util.Properties.load` does.
    fn parse(text: &str) -> Self {
        let mut entries = HashMap::new();
        let mut pending = String::new();
        for line in text.lines() {
            let line = line.trim_start();
            if pending.is_empty() && (line.starts_with('#') || line.starts_with('!')) {
                continue;
            }
            if let Some(continued) = line.strip_suffix('\\') {
                pending.push_str(continued);
                continue;
            }
            pending.push_str(line);
            let entry = std::mem::take(&mut pending);
            let Some(split) = entry.find(['=', ':']) else {
                continue;
            };
            let (key, value) = entry.split_at(split);
            let key = key.trim().to_owned();
            entries.insert(
                key.clone(),
                Entry {
                    value: value[1..].trim().to_owned(),
                    written_as: key,
                },
            );
        }
        Self { entries }
    }

    /// `ConfigUtils.getString`: trimmed, and unset when empty.
    fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key).filter(|e| !e.value.is_empty())
    }

    fn get(&self, key: &str) -> Option<String> {
        self.entry(key).map(|e| e.value.clone())
    }

    /// `ConfigUtils.getStringArray`: split on commas not escaped by a backslash, each item
    /// trimmed and its backslashes dropped; trailing empty items dropped, as Java's
    /// `String.split` does. Unset when the value is empty.
    fn list(&self, key: &str) -> Option<Vec<String>> {
        let value = &self.entry(key)?.value;
        let mut items = Vec::new();
        let mut item = String::new();
        let mut previous = None;
        for c in value.chars() {
            if c == ',' && previous != Some('\\') {
                items.push(std::mem::take(&mut item));
            } else {
                item.push(c);
            }
            previous = Some(c);
        }
        items.push(item);
        let mut items: Vec<String> = items
            .into_iter()
            .map(|i| i.trim().replace('\\', ""))
            .collect();
        while items.last().is_some_and(String::is_empty) {
            items.pop();
        }
        Some(items)
    }

    /// The properties ScalarDB gives storage `name` of a multi-storage file:
    /// `MultiStorageConfig.loadDatabasePropertiesMapping` puts every property outside
    /// `scalar.db.multi_storage.` first, then each `scalar.db.multi_storage.storages.<name>.X`
    /// as `scalar.db.X`, overriding. (Before 3.13 only the storage's own were used; a file
    /// written for those versions has no global storage properties, so it reads the same.)
    fn for_storage(&self, name: &str) -> Self {
        let own = format!("{STORAGES}.{name}.");
        let mut entries: HashMap<String, Entry> = self
            .entries
            .iter()
            .filter(|(key, _)| !key.starts_with(MULTI_PREFIX))
            .map(|(key, entry)| (key.clone(), entry.clone()))
            .collect();
        for (key, entry) in &self.entries {
            if let Some(rest) = key.strip_prefix(&own) {
                entries.insert(format!("{PREFIX}{rest}"), entry.clone());
            }
        }
        Self { entries }
    }
}

/// Which part of a file a storage's properties come from, for naming keys in errors.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// A single-storage file: `scalar.db.X`.
    File,
    /// A storage of a multi-storage file: `scalar.db.multi_storage.storages.<NAME>.X`.
    Storage(&'a str),
}

impl Scope<'_> {
    /// The key to set for `scalar.db.<suffix>` in this scope.
    fn key(self, suffix: &str) -> String {
        match self {
            Self::File => format!("{PREFIX}{suffix}"),
            Self::Storage(name) => format!("{STORAGES}.{name}.{suffix}"),
        }
    }

    fn supported(self) -> &'static str {
        match self {
            Self::File => "jdbc, cassandra and multi-storage",
            Self::Storage(_) => "jdbc and cassandra",
        }
    }
}

/// One storage as a file configures it.
#[derive(Clone, Debug)]
pub(super) struct StorageSpec {
    pub endpoint: Endpoint,
    /// `scalar.db.jdbc.table_metadata.schema` or `scalar.db.system_namespace_name`.
    pub metadata_schema: Option<String>,
}

/// What one file says: its storages, how it routes tables and namespaces among them
/// (indices into `storages`, checked), and its Coordinator namespace.
#[derive(Debug)]
pub(super) struct FileConfig {
    pub path: PathBuf,
    /// `(name, spec)`; names unique. A single-storage file has one, named by its kind.
    pub storages: Vec<(String, StorageSpec)>,
    /// `scalar.db.multi_storage.table_mapping`: `NS.TABLE` to a storage.
    pub tables: Vec<(String, usize)>,
    /// `scalar.db.multi_storage.namespace_mapping`.
    pub namespaces: Vec<(String, usize)>,
    /// `scalar.db.multi_storage.default_storage` (the only storage of a single-storage file).
    pub default: usize,
    pub coordinator_namespace: Option<String>,
}

/// Interprets one file. Pure: nothing is opened, a SQLite path included.
pub(super) fn parse_file(file: &PropertiesFile) -> Result<FileConfig, ConfigError> {
    let path = &file.path;
    let properties = Properties::parse(&file.text);
    let coordinator_namespace = properties.get(COORDINATOR_NAMESPACE);
    let storage = properties
        .get("scalar.db.storage")
        .unwrap_or_else(|| "cassandra".to_owned());
    if storage != MULTI_STORAGE {
        let spec = storage_spec(path, &properties, Scope::File)?;
        return Ok(FileConfig {
            path: path.clone(),
            storages: vec![(spec.endpoint.kind().to_string(), spec)],
            tables: Vec::new(),
            namespaces: Vec::new(),
            default: 0,
            coordinator_namespace,
        });
    }
    let invalid = |key: &str, reason: String| ConfigError::InvalidProperty {
        path: path.clone(),
        key: key.to_owned(),
        reason,
    };
    let names = properties
        .list(STORAGES)
        .ok_or_else(|| ConfigError::MissingProperty {
            path: path.clone(),
            key: STORAGES.to_owned(),
        })?;
    let mut storages = Vec::new();
    let mut seen = HashSet::new();
    for name in names {
        if name.is_empty() {
            return Err(invalid(STORAGES, "lists an empty storage name".to_owned()));
        }
        if !seen.insert(name.clone()) {
            return Err(invalid(STORAGES, format!("lists storage {name} twice")));
        }
        let own = properties.for_storage(&name);
        let scope = Scope::Storage(&name);
        let spec = storage_spec(path, &own, scope)?;
        storages.push((name, spec));
    }
    let index = |key: &str, storage: &str| {
        storages
            .iter()
            .position(|(name, _)| name == storage)
            .ok_or_else(|| {
                invalid(
                    key,
                    format!(
                        "names storage {storage:?}, which {STORAGES} does not list ({})",
                        storages
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    };
    let mapping = |key: &str, what: &str| -> Result<Vec<(String, usize)>, ConfigError> {
        let mut routes: Vec<(String, usize)> = Vec::new();
        for item in properties.list(key).unwrap_or_default() {
            // ScalarDB splits each item at its first ':' and takes the next part as the
            // storage; an item without one is an error there too.
            let mut parts = item.split(':');
            let (Some(from), Some(storage)) = (parts.next(), parts.next()) else {
                return Err(invalid(
                    key,
                    format!("has {item:?}; expected {what}:STORAGE"),
                ));
            };
            if from.is_empty() || (what == "NAMESPACE.TABLE" && !from.contains('.')) {
                return Err(invalid(
                    key,
                    format!("has {item:?}; expected {what}:STORAGE"),
                ));
            }
            if routes.iter().any(|(f, _)| f == from) {
                // ScalarDB builds an ImmutableMap, which refuses a key given twice.
                return Err(invalid(key, format!("maps {from} twice")));
            }
            routes.push((from.to_owned(), index(key, storage)?));
        }
        Ok(routes)
    };
    let tables = mapping(TABLE_MAPPING, "NAMESPACE.TABLE")?;
    let namespaces = mapping(NAMESPACE_MAPPING, "NAMESPACE")?;
    let default_name =
        properties
            .get(DEFAULT_STORAGE)
            .ok_or_else(|| ConfigError::MissingProperty {
                path: path.clone(),
                // Required by ScalarDB's code (`checkIfStorageExists`), whatever its docs say.
                key: DEFAULT_STORAGE.to_owned(),
            })?;
    let default = index(DEFAULT_STORAGE, &default_name)?;
    Ok(FileConfig {
        path: path.clone(),
        storages,
        tables,
        namespaces,
        default,
        coordinator_namespace,
    })
}

/// A storage's endpoint and metadata schema from its (possibly inherited) properties.
fn storage_spec(
    path: &Path,
    properties: &Properties,
    scope: Scope<'_>,
) -> Result<StorageSpec, ConfigError> {
    let missing = |suffix: &str| ConfigError::MissingProperty {
        path: path.to_owned(),
        key: scope.key(suffix),
    };
    let storage = match scope {
        Scope::File => properties
            .get("scalar.db.storage")
            .unwrap_or_else(|| "cassandra".to_owned()),
        // Inherited, `scalar.db.storage` would be `multi-storage` itself.
        Scope::Storage(_) => properties
            .entry("scalar.db.storage")
            .filter(|e| e.written_as != "scalar.db.storage")
            .map(|e| e.value.clone())
            .ok_or_else(|| missing("storage"))?,
    };
    let get = |key: &str| properties.get(key);
    let metadata_schema;
    let endpoint = match storage.as_str() {
        "cassandra" => {
            let hosts = properties
                .entry("scalar.db.contact_points")
                .ok_or_else(|| missing("contact_points"))?;
            let port =
                match properties.entry("scalar.db.contact_port") {
                    Some(port) => Some(port.value.parse::<u16>().map_err(|_| {
                        ConfigError::MissingProperty {
                            path: path.to_owned(),
                            key: format!("{} (as a port number)", port.written_as),
                        }
                    })?),
                    None => None,
                };
            let credentials = get("scalar.db.username").map(|username| CassandraCredentials {
                username,
                password: get("scalar.db.password").unwrap_or_default(),
            });
            let target = Target::cassandra(
                hosts.value.split(','),
                port,
                credentials,
                ReadConsistency::default(),
            )
            .map_err(|reason| ConfigError::InvalidUrl {
                url: format!("{} in {}", hosts.written_as, path.display()),
                reason,
            })?;
            metadata_schema = get("scalar.db.system_namespace_name");
            Endpoint::Server(target)
        }
        "jdbc" => {
            let jdbc = properties
                .entry("scalar.db.contact_points")
                .ok_or_else(|| missing("contact_points"))?;
            metadata_schema = get("scalar.db.jdbc.table_metadata.schema")
                .or_else(|| get("scalar.db.system_namespace_name"));
            jdbc_endpoint(
                path,
                jdbc,
                get("scalar.db.username"),
                get("scalar.db.password"),
            )?
        }
        MULTI_STORAGE => {
            return Err(ConfigError::InvalidProperty {
                path: path.to_owned(),
                key: scope.key("storage"),
                reason: "is multi-storage; ScalarDB does not nest multi-storage".to_owned(),
            });
        }
        _ => {
            return Err(ConfigError::UnsupportedStorage {
                path: path.to_owned(),
                key: scope.key("storage"),
                storage,
                supported: scope.supported(),
            });
        }
    };
    Ok(StorageSpec {
        endpoint,
        metadata_schema,
    })
}

/// A JDBC URL (`jdbc:postgresql://`, `jdbc:mysql://`, `jdbc:mariadb://`, `jdbc:sqlite:`) as
/// an endpoint, with the storage's user and password.
fn jdbc_endpoint(
    path: &Path,
    jdbc: &Entry,
    username: Option<String>,
    password: Option<String>,
) -> Result<Endpoint, ConfigError> {
    let unsupported = || ConfigError::UnsupportedJdbcUrl {
        path: path.to_owned(),
        key: jdbc.written_as.clone(),
        url: redact_unparsed(&jdbc.value),
    };
    if let Some(file) = jdbc.value.strip_prefix("jdbc:sqlite:") {
        let file = file.split('?').next().unwrap_or(file);
        return Ok(Endpoint::Sqlite(PathBuf::from(
            file.strip_prefix("file:").unwrap_or(file),
        )));
    }
    let (scheme, rest) = if let Some(rest) = jdbc.value.strip_prefix("jdbc:postgresql://") {
        ("postgres", rest)
    } else if let Some(rest) = jdbc
        .value
        .strip_prefix("jdbc:mysql://")
        .or_else(|| jdbc.value.strip_prefix("jdbc:mariadb://"))
    {
        ("mysql", rest)
    } else {
        return Err(unsupported());
    };
    let mut url = url::Url::parse(&format!("{scheme}://{rest}")).map_err(|_| unsupported())?;
    // JDBC parameters (sslmode=…, useSSL=…) do not mean the same to sqlx: keep none.
    url.set_query(None);
    if let Some(user) = username {
        url.set_username(&user).map_err(|()| unsupported())?;
    }
    if let Some(password) = password {
        url.set_password(Some(&password))
            .map_err(|()| unsupported())?;
    }
    Target::from_url(url.as_str()).map(Endpoint::Server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_as_scalardb_splits_them() {
        let properties =
            Properties::parse("a = x , y,z\\,w ,\nb=\nc=one\nd=,lead,,\ne=x\\\n  ,y\n");
        assert_eq!(properties.list("a").unwrap(), ["x", "y", "z,w"]);
        assert_eq!(properties.list("b"), None, "an empty value is unset");
        assert_eq!(properties.list("c").unwrap(), ["one"]);
        assert_eq!(properties.list("d").unwrap(), ["", "lead"]);
        assert_eq!(
            properties.list("e").unwrap(),
            ["x", "y"],
            "a continued line"
        );
    }

    #[test]
    fn a_storage_inherits_every_global_property_and_its_own_override() {
        let properties = Properties::parse(
            "scalar.db.storage=multi-storage\n\
             scalar.db.username=global-user\nscalar.db.password=global-pw\n\
             scalar.db.multi_storage.storages=a,b\n\
             scalar.db.multi_storage.default_storage=a\n\
             scalar.db.multi_storage.storages.a.storage=jdbc\n\
             scalar.db.multi_storage.storages.a.username=own-user\n\
             scalar.db.multi_storage.storages.ab.username=other\n",
        );
        let a = properties.for_storage("a");
        assert_eq!(a.get("scalar.db.storage").as_deref(), Some("jdbc"));
        assert_eq!(a.get("scalar.db.username").as_deref(), Some("own-user"));
        assert_eq!(
            a.entry("scalar.db.username").unwrap().written_as,
            "scalar.db.multi_storage.storages.a.username"
        );
        assert_eq!(a.get("scalar.db.password").as_deref(), Some("global-pw"));
        assert!(
            a.get("scalar.db.multi_storage.default_storage").is_none(),
            "multi-storage's own properties are not inherited"
        );
        let b = properties.for_storage("b");
        assert_eq!(b.get("scalar.db.username").as_deref(), Some("global-user"));
        assert_eq!(
            b.get("scalar.db.storage").as_deref(),
            Some("multi-storage"),
            "inherited as ScalarDB does, which is why a storage must set its own"
        );
    }
}
