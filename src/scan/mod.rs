//! The `scan` job: discover, scan every table concurrently (bounded by `--jobs`), then
//! analyse. Owns the order of the phases; owns no SQL and no verdict logic.

mod connected;
pub mod coordinator;
mod deployment;
mod lags;
use lags::{LagCounts, LagPass};
mod resolve;
mod write_sets;

use futures::{StreamExt, stream};

use crate::analyze::{
    Analysis, CoordinatorObservation, Observation, Retention, StorageObservation, TableObservation,
    TableOutcome, TableScan, analyze,
};
use crate::config::{Backend, ScanConfig};
use crate::error::Error;
use crate::progress::Progress;
use crate::store::discover_settings;
use crate::store::{
    CassandraScanOptions, CassandraStore, CoordinatorSchema, CoordinatorSource, DiscoveredTable,
    SqlError, SqlStore, Store, TableSchema, WriteSetSource,
};

/// An analysis with the schemas it was made from (the recovery rehearsal writes by them).
pub struct ScanOutcome {
    pub analysis: Analysis,
    pub tables: Vec<TableSchema>,
    pub coordinator: Option<CoordinatorSchema>,
}

pub async fn run(config: &ScanConfig, progress: &Progress) -> Result<ScanOutcome, Error> {
    if let Some(plan) = &config.deployment {
        return deployment::run(config, plan, progress).await;
    }
    if let Backend::Cassandra(cassandra) = &config.target.backend {
        let store = connect_cassandra(cassandra, config).await?;
        return scan_with(&store, config, progress).await;
    }
    let connections = u32::try_from(config.jobs)
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let store = SqlStore::connect(
        config.target.connection_url(),
        config.target.dialect,
        config.target.display(),
        connections,
        config.connect_timeout,
    )
    .await?;
    let result = scan_with(&store, config, progress).await;
    store.close().await;
    result
}

/// The scan's phases over any backend.
pub async fn scan_with<S: Store + WriteSetSource + CoordinatorSource>(
    store: &S,
    config: &ScanConfig,
    progress: &Progress,
) -> Result<ScanOutcome, Error>
where
    Error: From<S::Error>,
{
    let discovery = store
        .discover(&discover_settings(
            &config.coordinator_namespace,
            &config.metadata_schema,
            &config.filter,
        ))
        .await?;
    let coordinator_schema = discovery.coordinator.as_ref();
    let coordinator_task = async {
        match coordinator_schema {
            None => CoordinatorObservation::Missing,
            Some(schema) => {
                let task = progress.task(&schema.table.to_string());
                task.phase("reading the Coordinator");
                let scan = store.scan_coordinator(schema).await;
                match &scan {
                    Ok(scan) => task.finish(scan.rows),
                    Err(e) => task.fail(&e.to_string()),
                }
                // A Coordinator that cannot be read is a finding (indeterminate), not an
                // unreachable target: the tables were reached, and are still scanned.
                match scan {
                    Ok(scan) => CoordinatorObservation::Present(scan),
                    Err(e) => CoordinatorObservation::Unreadable {
                        table: schema.table.clone(),
                        reason: error_chain(&e),
                    },
                }
            }
        }
    };

    // Phase 1: counts, watermarks and exceptional records of every table.
    let schemas: Vec<&TableSchema> = discovery
        .tables
        .iter()
        .filter_map(|t| match t {
            DiscoveredTable::Present(schema) => Some(schema),
            DiscoveredTable::Missing(_) | DiscoveredTable::Denied { .. } => None,
        })
        .collect();
    let tasks: Vec<_> = schemas
        .iter()
        .map(|schema| progress.task(&schema.table.to_string()))
        .collect();
    let phase_one = stream::iter(schemas.iter().zip(&tasks))
        .map(|(schema, task)| async move {
            task.phase("counting and reading unresolved records");
            let scan = store.scan_exceptional(schema, coordinator_schema).await;
            if let Err(e) = &scan {
                task.fail(&e.to_string());
            }
            scan
        })
        .buffered(config.jobs)
        .collect::<Vec<_>>();
    let (coordinator, mut scans) = futures::join!(coordinator_task, phase_one);

    // Phase 2: COMMITTED records the Coordinator does not confirm, filed by what phase 1
    // found unresolved, so only the records the atomicity check needs stay in memory.
    if let Some(coordinator_schema) = coordinator_schema {
        let retention =
            Retention::from_exceptional(scans.iter().flatten().flat_map(|s| &s.exceptional))
                .with_coordinator(&coordinator);
        let retention = &retention;
        scans = stream::iter(schemas.iter().zip(&tasks).zip(scans))
            .map(|((schema, task), scan)| async move {
                let mut scan: TableScan = scan?;
                task.phase("checking committed records against the Coordinator");
                let result = store
                    .scan_unconfirmed(schema, coordinator_schema, retention, &mut scan)
                    .await;
                match result {
                    Ok(()) => {
                        task.finish(scan.records);
                        Ok(scan)
                    }
                    Err(e) => {
                        task.fail(&e.to_string());
                        Err(e)
                    }
                }
            })
            .buffered(config.jobs)
            .collect()
            .await;
    } else {
        for (task, scan) in tasks.iter().zip(&scans) {
            if let Ok(scan) = scan {
                task.finish(scan.records);
            }
        }
    }

    // The Coordinator's commits after each lagging table's newest write, in one pass.
    let lag_pass = coordinator_schema
        .and_then(|schema| Some((schema, LagPass::plan(&coordinator, schema, &scans)?)));
    if let Some((schema, pass)) = lag_pass {
        let counts: LagCounts = store
            .fold_coordinator(schema, &|acc, row| pass.add(acc, &row), &LagCounts::merge)
            .await?;
        pass.fill(&counts, &mut scans);
    }

    // The write-set proof, where the Coordinator logs write sets and could be read.
    let proof = match (coordinator_schema, &coordinator) {
        (Some(schema), CoordinatorObservation::Present(_)) if schema.has_write_set => {
            let direct = write_sets::Direct(store);
            let tables: Vec<_> = schemas
                .iter()
                .zip(&scans)
                .filter_map(|(schema, scan)| {
                    Some(write_sets::ScannedTable {
                        store: &direct,
                        schema,
                        scan: scan.as_ref().ok()?,
                    })
                })
                .collect();
            let task = progress.task(&schema.table.to_string());
            task.phase("proving committed transactions by their write sets");
            let window = crate::analyze::cut_window(&config.analysis.cut_parts);
            let proof = write_sets::run(&direct, schema, &tables, window, config.jobs).await;
            match &proof {
                Ok((proof, _)) => task.finish(proof.summary.checked),
                Err(e) => task.fail(&e.to_string()),
            }
            Some(proof?)
        }
        _ => None,
    };
    let (proof, listed) = proof.map_or((None, None), |(proof, listed)| (Some(proof), listed));

    let mut scanned = schemas.iter().zip(scans);
    let tables = discovery
        .tables
        .iter()
        .map(|table| {
            unscanned(table).unwrap_or_else(|| {
                let (schema, scan) = scanned.next().expect("one scan per present table");
                TableObservation {
                    table: schema.table.clone(),
                    outcome: match scan {
                        Ok(scan) => TableOutcome::Scanned(scan),
                        Err(e) if is_permission_denied(&e) => TableOutcome::Denied(error_chain(&e)),
                        Err(e) => TableOutcome::Failed(error_chain(&e)),
                    },
                }
            })
        })
        .collect();
    let target = &config.target;
    let storage = StorageObservation {
        name: config
            .storage_name
            .clone()
            .unwrap_or_else(|| target.kind().to_string()),
        kind: target.kind().to_string(),
        target: target.display().to_owned(),
        holds_coordinator: discovery.coordinator.is_some(),
        mapped: false,
        tables: discovery
            .tables
            .iter()
            .map(|t| match t {
                DiscoveredTable::Present(schema) => schema.table.clone(),
                DiscoveredTable::Missing(table) | DiscoveredTable::Denied { table, .. } => {
                    table.clone()
                }
            })
            .collect(),
        ignored: Vec::new(),
    };
    let observation = Observation {
        tables,
        coordinator,
        discovery: discovery.notes,
        storages: vec![storage],
        at_risk_transactions: listed,
        committed_after: None,
    };
    let mut analysis = analyze(&observation, &config.analysis);
    if let Some(proof) = proof {
        analysis.add_write_set_proof(proof);
    }
    Ok(ScanOutcome {
        analysis,
        tables: schemas.into_iter().cloned().collect(),
        coordinator: discovery.coordinator.clone(),
    })
}

/// Whether a store's error is the database refusing a read for lack of a privilege.
/// A Cassandra store with the scan's settings.
async fn connect_cassandra(
    cassandra: &crate::config::CassandraTarget,
    config: &ScanConfig,
) -> Result<CassandraStore, crate::store::CassandraError> {
    let options = CassandraScanOptions {
        consistency: cassandra.consistency,
        connect_timeout: config.connect_timeout,
        ..CassandraScanOptions::default()
    };
    CassandraStore::connect_with(
        &cassandra.contact_points,
        cassandra.credentials.as_ref(),
        options,
    )
    .await
}

/// What is observed of a table discovery found missing or could not read; `None` for a
/// table present, which is scanned.
fn unscanned(table: &DiscoveredTable) -> Option<TableObservation> {
    match table {
        DiscoveredTable::Missing(table) => Some(TableObservation {
            table: table.clone(),
            outcome: TableOutcome::Missing,
        }),
        DiscoveredTable::Denied { table, reason } => Some(TableObservation {
            table: table.clone(),
            outcome: TableOutcome::Denied(reason.clone()),
        }),
        DiscoveredTable::Present(_) => None,
    }
}

fn is_permission_denied(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .downcast_ref::<SqlError>()
        .is_some_and(SqlError::is_permission_denied)
}

pub use crate::error::error_chain;
