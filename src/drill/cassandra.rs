//! Restoring Cassandra node snapshots into one disposable node, and comparing the nodes.
//!
//! All nodes merged: every node's SSTables are imported into the original tables, and
//! Cassandra reconciles the replicas by cell timestamp, as a full-cluster restore would.
//! Node by node: each node's SSTables are also imported into a copy of every keyspace of
//! its own (`KEYSPACE__nodeN`), and the copies are compared record by record.

use std::path::Path;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _, stream};

use super::restore::{InstanceError, RestoreError, RuntimeKind};
use crate::analyze::{NodeComparer, NodeComparison};
use crate::backup::cassandra::SnapshotBackup;
use crate::error::Error;
use crate::model::TableRef;
use crate::runtime::cassandra::{CassandraInstance, CassandraOptions};
use crate::runtime::{DockerCassandra, DockerOptions};
use crate::store::{
    CassandraCredentials, CassandraStore, CassandraWriter, DiscoveredTable, ReadConsistency,
    TableFilter, TableSchema, discover_settings,
};

/// Cassandra's limit on a keyspace name's length.
const MAX_KEYSPACE_NAME: usize = 48;

/// A disposable Cassandra node from either runtime.
pub enum CassandraNode {
    Local(Box<CassandraInstance>),
    Docker(Box<DockerCassandra>),
}

impl CassandraNode {
    pub async fn start(
        runtime: RuntimeKind,
        image: Option<&str>,
        run_id: &str,
        startup_timeout: Duration,
        keep: bool,
    ) -> Result<Self, RestoreError> {
        let use_docker = super::restore::use_docker(runtime, "Cassandra").await?;
        let start_error = |runtime: &'static str, source: InstanceError| RestoreError::Start {
            engine: "Cassandra".to_owned(),
            runtime,
            source: Box::new(source),
        };
        if use_docker {
            let mut options = DockerOptions::new(run_id);
            options.startup_timeout = startup_timeout;
            options.image = image.map(str::to_owned);
            DockerCassandra::start(&options)
                .await
                .map(|node| Self::Docker(Box::new(node)))
                .map_err(|e| start_error("docker", e.into()))
        } else {
            let mut options = CassandraOptions::new(run_id);
            options.startup_timeout = startup_timeout;
            options.outlive_tool = keep;
            CassandraInstance::start(&options)
                .await
                .map(|node| Self::Local(Box::new(node)))
                .map_err(|e| {
                    let runtime = if runtime == RuntimeKind::Auto {
                        "local: no Docker engine answered"
                    } else {
                        "local"
                    };
                    start_error(runtime, e.into())
                })
        }
    }

    pub fn contact_point(&self) -> String {
        match self {
            Self::Local(node) => node.contact_point(),
            Self::Docker(node) => node.contact_point(),
        }
    }

    /// The URL the scan takes: with the node's own credentials when it is locked.
    pub fn url(&self) -> String {
        match self {
            Self::Local(node) => node.url(),
            Self::Docker(node) => node.url(),
        }
    }

    fn credentials(&self) -> Option<&CassandraCredentials> {
        match self {
            Self::Local(node) => node.credentials(),
            Self::Docker(node) => Some(node.credentials()),
        }
    }

    pub fn runtime(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::Docker(_) => "docker",
        }
    }

    pub fn connection_hint(&self) -> String {
        match self {
            // A kept locked node has a network of its own: its CQL port comes out only
            // through its socket in the tool's directory (the tool's own host port ended
            // with the drill).
            Self::Local(node) if node.is_isolated() => {
                let socket = node.cql_socket();
                format!(
                    "the CQL socket {} as {} (password in {}, data directory {}); to reach it \
                     over TCP on this machine, run: scalardb-verify bridge --forward \
                     tcp:127.0.0.1:9042=unix:{} -- sleep infinity",
                    socket.display(),
                    node.credentials().map_or("", |c| c.username.as_str()),
                    node.password_file().display(),
                    node.dir().display(),
                    socket.display(),
                )
            }
            Self::Local(node) => match node.credentials() {
                Some(credentials) => format!(
                    "cassandra://{}@{} (password in {}, data directory {})",
                    credentials.username,
                    node.contact_point(),
                    node.password_file().display(),
                    node.dir().display()
                ),
                None => format!("{} (data directory {})", self.url(), node.dir().display()),
            },
            // The password stays in the container, readable by its server account alone.
            // The container has a network of its own too: only its CQL socket outlives the
            // drill's host port.
            Self::Docker(node) => format!(
                "the CQL socket {} as {} (password in {} inside the container {}); to reach \
                 it over TCP on this machine, run: scalardb-verify bridge --forward \
                 tcp:127.0.0.1:9042=unix:{} -- sleep infinity",
                node.cql_socket().display(),
                node.credentials().username,
                node.password_file(),
                node.container_name(),
                node.cql_socket().display(),
            ),
        }
    }

    async fn import(&self, keyspace: &str, table: &str, dir: &Path) -> Result<(), InstanceError> {
        match self {
            Self::Local(node) => node
                .import_sstables(keyspace, table, dir)
                .await
                .map_err(Into::into),
            Self::Docker(node) => node
                .import_sstables(keyspace, table, dir)
                .await
                .map_err(Into::into),
        }
    }

    /// Checks nobody but this tool used a locked node: no role, keyspace or session but its
    /// own (see [`CassandraInstance::check_locked`], [`DockerCassandra::check_locked`]).
    async fn check_locked(&self, keyspaces: &[&str]) -> Result<(), RestoreError> {
        match self {
            Self::Local(node) => {
                node.check_locked(keyspaces)
                    .await
                    .map_err(|source| RestoreError::Start {
                        engine: "Cassandra".to_owned(),
                        runtime: "local",
                        source: Box::new(source.into()),
                    })
            }
            Self::Docker(node) => {
                node.check_locked(keyspaces)
                    .await
                    .map_err(|source| RestoreError::Start {
                        engine: "Cassandra".to_owned(),
                        runtime: "docker",
                        source: Box::new(source.into()),
                    })
            }
        }
    }

    pub async fn stop(self) -> Result<(), InstanceError> {
        match self {
            Self::Local(node) => node.stop().await.map_err(Into::into),
            Self::Docker(node) => node.stop().await.map_err(Into::into),
        }
    }

    pub fn keep(self) {
        match self {
            Self::Local(node) => std::mem::forget(*node),
            Self::Docker(node) => std::mem::forget(*node),
        }
    }
}

/// The keyspace node `index`'s (0-based) copy of `keyspace` is restored into.
pub fn copy_keyspace(keyspace: &str, index: usize) -> String {
    format!("{keyspace}__node{}", index + 1)
}

/// Every keyspace `--per-node` restores a node's copy into.
pub fn copy_keyspaces(backup: &SnapshotBackup) -> Vec<String> {
    backup
        .keyspaces()
        .into_iter()
        .flat_map(|keyspace| (0..backup.nodes.len()).map(|index| copy_keyspace(keyspace, index)))
        .collect()
}

/// Whether every copy keyspace `--per-node` needs fits Cassandra's name limit and is not a
/// keyspace of the backup itself (whose tables the copy would load into): checked before
/// any node starts.
pub fn check_copy_names(backup: &SnapshotBackup) -> Result<(), RestoreError> {
    let own = backup.keyspaces();
    for copy in copy_keyspaces(backup) {
        if copy.len() > MAX_KEYSPACE_NAME {
            return Err(RestoreError::KeyspaceNameTooLong { keyspace: copy });
        }
        if own.contains(copy.as_str()) {
            return Err(RestoreError::CopyKeyspaceTaken { keyspace: copy });
        }
    }
    Ok(())
}

/// Creates every table of the backup and imports every node's SSTables into it: the
/// merged restore. `jobs` tables are imported at a time.
pub async fn load_merged(
    node: &CassandraNode,
    backup: &SnapshotBackup,
    jobs: usize,
) -> Result<(), RestoreError> {
    let writer = connect(node).await?;
    create_schema(&writer, backup, |keyspace| keyspace.to_owned()).await?;
    let tables: Vec<(&String, &String)> = backup.schemas.keys().map(|(k, t)| (k, t)).collect();
    stream::iter(tables)
        .map(|(keyspace, table)| async move {
            for snapshot in backup.nodes.iter().flat_map(|n| &n.tables) {
                if &snapshot.keyspace == keyspace && &snapshot.table == table {
                    import(node, keyspace, table, &snapshot.dir).await?;
                }
            }
            Ok::<_, RestoreError>(())
        })
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    let keyspaces: Vec<&str> = backup.keyspaces().into_iter().collect();
    node.check_locked(&keyspaces).await
}

/// Imports each node's SSTables into copies of its own (`KEYSPACE__nodeN`).
pub async fn load_copies(
    node: &CassandraNode,
    backup: &SnapshotBackup,
    jobs: usize,
) -> Result<(), RestoreError> {
    check_copy_names(backup)?;
    let writer = connect(node).await?;
    for index in 0..backup.nodes.len() {
        create_schema(&writer, backup, |keyspace| copy_keyspace(keyspace, index)).await?;
    }
    let imports: Vec<(String, &String, &Path)> = backup
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(index, n)| {
            n.tables
                .iter()
                .map(move |t| (copy_keyspace(&t.keyspace, index), &t.table, t.dir.as_path()))
        })
        .collect();
    stream::iter(imports)
        .map(|(keyspace, table, dir)| async move { import(node, &keyspace, table, dir).await })
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    let mut keyspaces: Vec<String> = backup.keyspaces().into_iter().map(str::to_owned).collect();
    for index in 0..backup.nodes.len() {
        keyspaces.extend(
            backup
                .keyspaces()
                .into_iter()
                .map(|k| copy_keyspace(k, index)),
        );
    }
    let keyspaces: Vec<&str> = keyspaces.iter().map(String::as_str).collect();
    node.check_locked(&keyspaces).await
}

/// Compares every scanned table's copies, record by record. `records` is how many records
/// the merged table holds, to split its ring finely enough that one range of every copy
/// fits in memory comfortably.
pub async fn compare(
    node: &CassandraNode,
    backup: &SnapshotBackup,
    tables: &[(TableSchema, u64)],
    coordinator_namespace: &str,
    metadata_schema: &str,
    connect_timeout: Duration,
) -> Result<NodeComparison, Error> {
    let store = CassandraStore::connect_with(
        &[node.contact_point()],
        node.credentials(),
        crate::store::CassandraScanOptions {
            consistency: ReadConsistency::One,
            connect_timeout,
            ..crate::store::CassandraScanOptions::default()
        },
    )
    .await?;
    // Discovery teaches the store every table's partition key, copies included.
    let everything = TableFilter::default();
    let discovery = crate::store::Store::discover(
        &store,
        &discover_settings(coordinator_namespace, metadata_schema, &everything),
    )
    .await?;
    let node_names: Vec<String> = backup.nodes.iter().map(|n| n.name.clone()).collect();
    let mut total = NodeComparer::new(node_names.iter().cloned());
    for (table, records) in tables {
        let present = discovery
            .tables
            .iter()
            .any(|t| matches!(t, DiscoveredTable::Present(schema) if schema.table == table.table));
        if !present {
            continue;
        }
        let copies: Vec<TableRef> = (0..node_names.len())
            .map(|index| TableRef {
                namespace: copy_keyspace(&table.table.namespace, index),
                table: table.table.table.clone(),
            })
            .collect();
        let ranges = usize::try_from(records / 2_000)
            .unwrap_or(usize::MAX)
            .clamp(256, 1 << 16);
        total.merge(
            store
                .compare_copies(table, &copies, &node_names, ranges)
                .await?,
        );
    }
    Ok(total.finish())
}

/// A writable session to the drill's own node (its schema, the recovery rehearsal).
pub async fn connect(node: &CassandraNode) -> Result<CassandraWriter, RestoreError> {
    CassandraWriter::connect_as(&[node.contact_point()], node.credentials())
        .await
        .map_err(|source| RestoreError::Schema(Box::new(source)))
}

async fn create_schema(
    writer: &CassandraWriter,
    backup: &SnapshotBackup,
    keyspace_for: impl Fn(&str) -> String,
) -> Result<(), RestoreError> {
    for keyspace in backup.keyspaces() {
        let target = keyspace_for(keyspace);
        writer
            .execute(&format!(
                "CREATE KEYSPACE IF NOT EXISTS \"{}\" WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
                target.replace('"', "\"\"")
            ))
            .await
            .map_err(|source| RestoreError::Schema(Box::new(source)))?;
    }
    for ((keyspace, table), schema) in &backup.schemas {
        for statement in schema.statements_for(&keyspace_for(keyspace), table) {
            writer
                .execute(&statement)
                .await
                .map_err(|source| RestoreError::Schema(Box::new(source)))?;
        }
    }
    Ok(())
}

async fn import(
    node: &CassandraNode,
    keyspace: &str,
    table: &str,
    dir: &Path,
) -> Result<(), RestoreError> {
    node.import(keyspace, table, dir)
        .await
        .map_err(|source| RestoreError::Load {
            path: dir.to_owned(),
            format: "Cassandra snapshot",
            source: Box::new(source),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::cassandra::{NodeSnapshot, TableSchemaCql};

    fn backup(keyspace: &str, nodes: usize) -> SnapshotBackup {
        let schema = TableSchemaCql {
            create: format!("CREATE TABLE {keyspace}.t (id int PRIMARY KEY)"),
            alters: Vec::new(),
            source: "schema.cql".into(),
        };
        SnapshotBackup {
            root: "backup".into(),
            tag: "t".to_owned(),
            nodes: (1..=nodes)
                .map(|i| NodeSnapshot {
                    name: format!("node{i}"),
                    tables: Vec::new(),
                })
                .collect(),
            schemas: [((keyspace.to_owned(), "t".to_owned()), schema)].into(),
        }
    }

    #[test]
    fn copy_keyspaces_are_named_per_node_and_must_fit_cassandras_limit() {
        assert_eq!(copy_keyspace("bank", 0), "bank__node1");
        assert!(check_copy_names(&backup("bank", 12)).is_ok());
        // 40 characters + "__node10" = 48: still fits; one more node digit does not.
        let long = "k".repeat(40);
        assert!(check_copy_names(&backup(&long, 10)).is_ok());
        let error = check_copy_names(&backup(&format!("{long}x"), 10)).unwrap_err();
        assert!(error.to_string().contains("48 characters"), "{error}");
    }
}
