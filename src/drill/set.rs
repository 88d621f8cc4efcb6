//! A backup set: one backup per storage of a deployment, matched to its storage and checked
//! whole before any instance starts. A backup named `--backup NAME=PATH` is of storage
//! NAME; a plain path is of the one storage every namespace it holds is routed to. A
//! backup must be of a storage the deployment routes tables to, of that storage's engine,
//! alone for its storage, and hold only namespaces routed there and no other backup holds.
//! A routed storage without a backup is not an error: its tables go unverified, which the
//! drill reports (`backup-missing`) and the verdict cannot pass.
//!
//! Owns the matching and its rules; reads nothing (the namespaces come inspected) and
//! starts nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::backup::BackupFormat;
use crate::backup::cassandra::SnapshotBackup;
use crate::config::{ConfigError, Deployment, Storage, StorageId, StorageKind};

/// A backup as given, inspected: its format, and its namespaces where the format tells.
#[derive(Clone, Debug)]
pub struct GivenBackup {
    /// `NAME` of `--backup NAME=PATH`; `None` for a plain path.
    pub storage: Option<String>,
    pub path: PathBuf,
    pub format: BackupFormat,
    pub snapshots: Option<SnapshotBackup>,
    /// `None`: the format does not tell before a restore (pg_dump archives, SQLite).
    pub namespaces: Option<BTreeSet<String>>,
}

/// One backup of a drill, ready to restore.
#[derive(Clone, Debug)]
pub struct DrillBackup {
    pub path: PathBuf,
    pub format: BackupFormat,
    /// The inspected snapshots of a Cassandra backup.
    pub snapshots: Option<SnapshotBackup>,
    /// The storage it restores (`None`: a drill of one backup, no deployment).
    pub storage: Option<SetStorage>,
}

/// A storage of the deployment that a drill restores.
#[derive(Clone, Debug)]
pub struct SetStorage {
    pub id: StorageId,
    pub name: String,
    pub kind: StorageKind,
    /// ScalarDB's JDBC metadata schema there.
    pub metadata_schema: String,
    /// A namespace or table mapping sends tables there (not only as the default).
    pub mapped: bool,
}

/// What a drill of several storages scans as one deployment.
#[derive(Clone, Debug)]
pub struct BackupSet {
    pub deployment: Deployment,
    pub coordinator: SetStorage,
    /// Which backup restores the Coordinator's storage; `None`: no backup does, and an
    /// empty instance of its engine stands in for it (the scan finds no Coordinator).
    pub coordinator_backup: Option<usize>,
    /// Storages ScalarDB routes tables to that no backup restores.
    pub missing: Vec<String>,
}

/// The engine a backup format restores into.
pub fn kind_of(format: BackupFormat) -> StorageKind {
    match format {
        BackupFormat::Sqlite => StorageKind::Sqlite,
        BackupFormat::CassandraSnapshots => StorageKind::Cassandra,
        BackupFormat::MySqlDump { .. } => StorageKind::MySql,
        BackupFormat::PgPlain { .. }
        | BackupFormat::PgCustom
        | BackupFormat::PgDirectory
        | BackupFormat::PgTar => StorageKind::Postgres,
    }
}

/// Matches every backup to its storage and checks the set, before anything starts.
/// `metadata_schema` gives a storage's JDBC metadata schema (not a namespace).
pub fn plan(
    deployment: Deployment,
    given: Vec<GivenBackup>,
    metadata_schema: &dyn Fn(&Storage) -> String,
) -> Result<(Vec<DrillBackup>, BackupSet), ConfigError> {
    let fail = |backup: &GivenBackup, reason: String| ConfigError::BackupSet {
        backup: shown(backup),
        reason,
    };
    let routed = deployment.routed_storages();
    let coordinator_id = deployment.coordinator_storage();
    let metadata_schemas: BTreeSet<String> =
        deployment.storages().iter().map(metadata_schema).collect();
    let names = || {
        deployment
            .storages()
            .iter()
            .map(Storage::name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut backups = Vec::new();
    let mut by_storage: BTreeMap<StorageId, usize> = BTreeMap::new();
    let mut by_namespace: BTreeMap<String, usize> = BTreeMap::new();
    for (index, backup) in given.iter().enumerate() {
        let id = match &backup.storage {
            Some(name) => find_storage(&deployment, name).ok_or_else(|| {
                fail(
                    backup,
                    format!("the deployment has no storage {name} (it has {})", names()),
                )
            })?,
            None => infer_storage(&deployment, backup, &metadata_schemas)
                .map_err(|reason| fail(backup, reason))?,
        };
        let storage = deployment.storage(id);
        let kind = storage.endpoint().kind();
        if kind != kind_of(backup.format) {
            return Err(fail(
                backup,
                format!(
                    "a {} cannot restore storage {}, which is {kind}",
                    backup.format.describe(),
                    storage.name()
                ),
            ));
        }
        if !routed.contains(&id) && id != coordinator_id {
            return Err(fail(
                backup,
                format!(
                    "the deployment routes no table to storage {}: ScalarDB never reads it",
                    storage.name()
                ),
            ));
        }
        if let Some(other) = by_storage.insert(id, index) {
            return Err(fail(
                backup,
                format!(
                    "storage {} has two backups: {} and this one",
                    storage.name(),
                    given[other].path.display()
                ),
            ));
        }
        let own_schema = metadata_schema(storage);
        for namespace in backup.namespaces.iter().flatten() {
            if *namespace == own_schema {
                continue;
            }
            if let Some(other) = by_namespace.insert(namespace.clone(), index) {
                return Err(fail(
                    backup,
                    format!(
                        "namespace {namespace} is in two backups: {} and this one",
                        given[other].path.display()
                    ),
                ));
            }
            let targets = routes_of(&deployment, namespace);
            if !targets.contains(&id) {
                return Err(fail(
                    backup,
                    format!(
                        "it holds namespace {namespace}, which the deployment routes to \
                         storage {}, not to {}",
                        storage_names(&deployment, &targets),
                        storage.name()
                    ),
                ));
            }
        }
        backups.push(DrillBackup {
            path: backup.path.clone(),
            format: backup.format,
            snapshots: backup.snapshots.clone(),
            storage: Some(set_storage(&deployment, id, metadata_schema)),
        });
    }
    let missing = routed
        .iter()
        .chain(std::iter::once(&coordinator_id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|id| !by_storage.contains_key(id))
        .map(|id| deployment.storage(*id).name().to_owned())
        .collect();
    let set = BackupSet {
        coordinator: set_storage(&deployment, coordinator_id, metadata_schema),
        coordinator_backup: by_storage.get(&coordinator_id).copied(),
        missing,
        deployment,
    };
    Ok((backups, set))
}

fn shown(backup: &GivenBackup) -> String {
    match &backup.storage {
        Some(name) => format!("--backup {name}={}", backup.path.display()),
        None => backup.path.display().to_string(),
    }
}

fn set_storage(
    deployment: &Deployment,
    id: StorageId,
    metadata_schema: &dyn Fn(&Storage) -> String,
) -> SetStorage {
    let storage = deployment.storage(id);
    SetStorage {
        id,
        name: storage.name().to_owned(),
        kind: storage.endpoint().kind(),
        metadata_schema: metadata_schema(storage),
        mapped: deployment.is_mapped(id),
    }
}

/// The storage a name (or an alias a properties file gave it) names.
fn find_storage(deployment: &Deployment, name: &str) -> Option<StorageId> {
    deployment
        .storages_with_ids()
        .find(|(_, storage)| {
            storage.name() == name || storage.aliases().iter().any(|(_, alias)| alias == name)
        })
        .map(|(id, _)| id)
}

/// Where ScalarDB sends a namespace's tables, over every service (the Coordinator
/// namespace: the Coordinator's storage).
fn routes_of(deployment: &Deployment, namespace: &str) -> BTreeSet<StorageId> {
    if namespace == deployment.coordinator_namespace() {
        return [deployment.coordinator_storage()].into();
    }
    deployment
        .services()
        .iter()
        .map(|service| service.storage_for_namespace(namespace))
        .collect()
}

fn storage_names(deployment: &Deployment, ids: &BTreeSet<StorageId>) -> String {
    ids.iter()
        .map(|id| deployment.storage(*id).name())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The one storage every namespace of a plain path's backup is routed to.
fn infer_storage(
    deployment: &Deployment,
    backup: &GivenBackup,
    metadata_schemas: &BTreeSet<String>,
) -> Result<StorageId, String> {
    let give_name = "give it as --backup NAME=PATH";
    let Some(namespaces) = &backup.namespaces else {
        return Err(format!(
            "a {} does not tell its namespaces before a restore: {give_name}",
            backup.format.describe()
        ));
    };
    let routed: BTreeMap<StorageId, &str> = namespaces
        .iter()
        .filter(|namespace| !metadata_schemas.contains(*namespace))
        .flat_map(|namespace| {
            routes_of(deployment, namespace)
                .into_iter()
                .map(move |id| (id, namespace.as_str()))
        })
        .collect();
    match routed.len() {
        1 => Ok(*routed
            .keys()
            .next()
            .unwrap_or(&deployment.coordinator_storage())),
        0 => Err(format!(
            "it holds no namespace to tell which storage it is of: {give_name}"
        )),
        _ => Err(format!(
            "its namespaces are routed to several storages ({}): one backup restores one \
             storage; {give_name}",
            routed
                .iter()
                .map(|(id, namespace)| format!("{namespace} to {}", deployment.storage(*id).name()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageFlags;

    fn deployment(extra: &[&str]) -> Deployment {
        let mut storages = vec!["pg=postgres://-/app".to_owned(), "my=mysql://-/".to_owned()];
        storages.extend(extra.iter().map(|s| (*s).to_owned()));
        Deployment::from_flags(
            &StorageFlags {
                storages: &storages,
                namespaces: &["ledger=my".to_owned()],
                default_storage: Some("pg"),
                coordinator_storage: Some("pg"),
            },
            None,
        )
        .unwrap()
    }

    fn dump(storage: Option<&str>, format: BackupFormat, namespaces: &[&str]) -> GivenBackup {
        GivenBackup {
            storage: storage.map(str::to_owned),
            path: PathBuf::from(format!("{}.dump", namespaces.join("-"))),
            format,
            snapshots: None,
            namespaces: Some(namespaces.iter().map(|n| (*n).to_owned()).collect()),
        }
    }

    fn schema(_: &Storage) -> String {
        "scalardb".to_owned()
    }

    const PG: BackupFormat = BackupFormat::PgPlain { gzip: false };
    const MY: BackupFormat = BackupFormat::MySqlDump { gzip: true };

    #[test]
    fn plain_paths_go_to_the_storage_their_namespaces_are_routed_to() {
        let (backups, set) = plan(
            deployment(&[]),
            vec![
                // The metadata schema is in every storage: it tells nothing.
                dump(None, MY, &["ledger", "scalardb"]),
                dump(None, PG, &["bank", "coordinator", "scalardb"]),
            ],
            &schema,
        )
        .unwrap();
        let names: Vec<_> = backups
            .iter()
            .map(|b| b.storage.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["my", "pg"]);
        assert_eq!(set.coordinator.name, "pg");
        assert_eq!(set.coordinator_backup, Some(1));
        assert!(set.missing.is_empty());
    }

    #[test]
    fn a_storage_nothing_is_routed_to_takes_no_backup_and_a_missing_one_is_listed() {
        let refused = plan(
            deployment(&["idle=postgres://-/idle"]),
            vec![dump(Some("idle"), PG, &["bank"])],
            &schema,
        )
        .unwrap_err();
        assert!(
            crate::error::error_chain(&refused).contains("routes no table to storage idle"),
            "{refused}"
        );
        let (_, set) = plan(deployment(&[]), vec![dump(None, MY, &["ledger"])], &schema).unwrap();
        assert_eq!(set.missing, ["pg"]);
        assert_eq!(set.coordinator_backup, None);
        let refused = plan(
            deployment(&[]),
            vec![dump(None, PG, &["scalardb"])],
            &schema,
        )
        .unwrap_err();
        assert!(
            crate::error::error_chain(&refused).contains("holds no namespace"),
            "{refused}"
        );
    }
}
