//! The scan of a deployment whose tables and Coordinator span several storages, as one:
//! every storage connected and discovered, every table of every storage scanned in one
//! bounded stream (`--jobs` across all), the Coordinator read from its own storage, and one
//! analysis. A table sharing the Coordinator's database is checked by the join inside the
//! database; a table elsewhere is checked against the Coordinator's index with point reads
//! (`resolve.rs`). What ScalarDB never reads (a table or Coordinator-shaped table in a
//! storage the routing does not send it to) is left out, and said.

use std::collections::BTreeSet;

use futures::{StreamExt, future, stream};

use super::connected::Connected;
use super::coordinator::{PhaseTwo, merge_filed};
use super::lags::{LagCounts, LagPass};
use super::resolve::{POINT_READS, Resolver};
use super::write_sets::{self, ScannedTable};
use super::{ScanOutcome, error_chain};
use crate::analyze::{
    CommittedAfter, CoordinatorObservation, DiscoveryNote, IgnoredTable, Observation, Retention,
    StorageObservation, TableObservation, TableOutcome, TableScan, analyze,
};
use crate::config::{DeploymentScan, ScanConfig, ScanStorage};
use crate::error::Error;
use crate::model::{StoredState, TableRef, TxState};
use crate::progress::Progress;
use crate::store::{DiscoveredTable, Discovery, TableSchema, discover_settings};

/// A storage as the user knows it, for errors and progress: name and target, no password.
fn shown(storage: &ScanStorage) -> String {
    format!("{} ({})", storage.name, storage.target.display())
}

fn in_storage(storage: &ScanStorage, error: Error) -> Error {
    Error::Storage {
        storage: shown(storage),
        source: Box::new(error),
    }
}

pub(super) async fn run(
    config: &ScanConfig,
    plan: &DeploymentScan,
    progress: &Progress,
) -> Result<ScanOutcome, Error> {
    let extra = u32::try_from(POINT_READS)
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let connected = future::join_all(plan.storages.iter().enumerate().map(|(i, storage)| {
        let extra = if i == plan.coordinator { extra } else { 0 };
        Connected::connect(&storage.target, config, extra)
    }))
    .await;
    let mut stores = Vec::new();
    let mut failure = None;
    for (storage, result) in plan.storages.iter().zip(connected) {
        match result {
            Ok(store) => stores.push(store),
            Err(e) => {
                failure.get_or_insert_with(|| in_storage(storage, e));
            }
        }
    }
    let result = match failure {
        Some(error) => Err(error),
        None => scan(config, plan, &stores, progress).await,
    };
    for store in &stores {
        store.close().await;
    }
    result
}

/// One table to scan, where it lives, and whether it can join the Coordinator.
struct Planned<'a> {
    storage: usize,
    schema: &'a TableSchema,
    joined: bool,
}

async fn scan(
    config: &ScanConfig,
    plan: &DeploymentScan,
    stores: &[Connected],
    progress: &Progress,
) -> Result<ScanOutcome, Error> {
    // Discovery, every storage at once.
    let discoveries = future::join_all(plan.storages.iter().zip(stores).map(
        |(storage, store)| async move {
            store
                .discover(&discover_settings(
                    &config.coordinator_namespace,
                    &storage.metadata_schema,
                    &config.filter,
                ))
                .await
                .map_err(|e| in_storage(storage, e))
        },
    ))
    .await
    .into_iter()
    .collect::<Result<Vec<Discovery>, Error>>()?;

    let mut storages: Vec<StorageObservation> = Vec::new();
    let mut kept: Vec<Vec<&DiscoveredTable>> = Vec::new();
    let mut notes = Vec::new();
    let mut seen: BTreeSet<TableRef> = BTreeSet::new();
    let coordinator_schema = discoveries[plan.coordinator].coordinator.as_ref();
    for (index, (storage, discovery)) in plan.storages.iter().zip(&discoveries).enumerate() {
        let holds_coordinator = index == plan.coordinator;
        let mut observation = StorageObservation {
            name: storage.name.clone(),
            kind: storage.target.kind().to_string(),
            target: storage.target.display().to_owned(),
            holds_coordinator,
            mapped: storage.mapped,
            ..StorageObservation::default()
        };
        if let (false, Some(shadow)) = (holds_coordinator, &discovery.coordinator) {
            observation.ignored.push(IgnoredTable {
                table: shadow.table.clone(),
                reason: format!(
                    "Coordinator-shaped, but ScalarDB reads the Coordinator from storage {}",
                    plan.storages[plan.coordinator].name
                ),
            });
        }
        let mut tables = Vec::new();
        for table in &discovery.tables {
            let table_ref = discovered_ref(table);
            if !plan
                .deployment
                .routes_table_to(&table_ref.namespace, &table_ref.table, storage.id)
            {
                observation.ignored.push(IgnoredTable {
                    table: table_ref.clone(),
                    reason: "ScalarDB routes this table to another storage: a copy it never \
                             reads"
                        .to_owned(),
                });
                continue;
            }
            if !seen.insert(table_ref.clone()) {
                observation.ignored.push(IgnoredTable {
                    table: table_ref.clone(),
                    reason: "routed here by one service and to another storage by another: \
                             scanned in the first storage only"
                        .to_owned(),
                });
                continue;
            }
            observation.tables.push(table_ref.clone());
            tables.push(table);
        }
        for note in &discovery.notes {
            // Whether any storage holds a ScalarDB table is decided for the deployment.
            if !matches!(note, DiscoveryNote::NoTransactionalTables { .. }) {
                notes.push(note.clone());
            }
        }
        storages.push(observation);
        kept.push(tables);
    }
    if seen.is_empty() {
        notes.push(DiscoveryNote::NoTransactionalTables {
            searched: format!(
                "searched every storage of the deployment ({})",
                plan.storages
                    .iter()
                    .map(shown)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }

    let planned: Vec<Planned<'_>> = kept
        .iter()
        .enumerate()
        .flat_map(|(storage, tables)| {
            tables.iter().filter_map(move |table| match table {
                DiscoveredTable::Present(schema) => Some(Planned {
                    storage,
                    schema,
                    joined: storage == plan.coordinator,
                }),
                DiscoveredTable::Missing(_) | DiscoveredTable::Denied { .. } => None,
            })
        })
        .collect();
    let tasks: Vec<_> = planned
        .iter()
        .map(|p| {
            progress.task(&format!(
                "{}:{}",
                plan.storages[p.storage].name, p.schema.table
            ))
        })
        .collect();
    let coordinator_store = &stores[plan.coordinator];
    let needs_index = coordinator_schema.is_some() && planned.iter().any(|p| !p.joined);

    let coordinator_task = async {
        let Some(schema) = coordinator_schema else {
            return (CoordinatorObservation::Missing, None);
        };
        let task = progress.task(&format!(
            "{}:{}",
            plan.storages[plan.coordinator].name, schema.table
        ));
        task.phase("reading and indexing the Coordinator");
        // Its counts and its index are two reads of one table: side by side.
        let (scan, resolver) = futures::join!(coordinator_store.scan_coordinator(schema), async {
            if needs_index {
                Some(Resolver::load(coordinator_store, schema).await)
            } else {
                None
            }
        });
        let scan = match (scan, &resolver) {
            (Ok(_), Some(Err(e))) => Err(error_chain(e)),
            (Ok(scan), _) => Ok(scan),
            (Err(e), _) => Err(error_chain(&e)),
        };
        match &scan {
            Ok(scan) => task.finish(scan.rows),
            Err(e) => task.fail(e),
        }
        let observation = match scan {
            Ok(scan) => CoordinatorObservation::Present(scan),
            Err(reason) => CoordinatorObservation::Unreadable {
                table: schema.table.clone(),
                reason,
            },
        };
        (observation, resolver.and_then(Result::ok))
    };
    let phase_one = stream::iter(planned.iter().zip(&tasks))
        .map(|(p, task)| async move {
            task.phase("counting and reading unresolved records");
            let coordinator = if p.joined { coordinator_schema } else { None };
            let scan = stores[p.storage]
                .scan_exceptional(p.schema, coordinator)
                .await;
            if let Err(e) = &scan {
                task.fail(&e.to_string());
            }
            scan
        })
        .buffered(config.jobs.max(1))
        .collect::<Vec<_>>();
    let ((coordinator, resolver), mut scans) = futures::join!(coordinator_task, phase_one);
    let coordinator_readable = matches!(coordinator, CoordinatorObservation::Present(_));
    let mut resolver = resolver;

    // The records of tables that could not join get their Coordinator rows now.
    if let Some(resolver) = &resolver {
        for (p, scan) in planned.iter().zip(scans.iter_mut()) {
            if let (false, Ok(table_scan)) = (p.joined, &mut *scan) {
                let records = std::mem::take(&mut table_scan.exceptional);
                match resolver.attach(records).await {
                    Ok(records) => table_scan.exceptional = records,
                    Err(e) => *scan = Err(e),
                }
            }
        }
    }

    // Phase 2, deployment-wide: what a transaction left unresolved in one storage decides
    // which COMMITTED records of every other storage are kept.
    if let (Some(schema), true) = (coordinator_schema, coordinator_readable) {
        let retention =
            Retention::from_exceptional(scans.iter().flatten().flat_map(|s| &s.exceptional))
                .with_coordinator(&coordinator);
        if let Some(resolver) = &mut resolver {
            let unresolved: BTreeSet<String> = scans
                .iter()
                .flatten()
                .flat_map(|s| &s.exceptional)
                .filter(|r| {
                    matches!(
                        r.meta.state(),
                        StoredState::Known(TxState::Prepared | TxState::Deleted)
                    )
                })
                .filter_map(|r| r.meta.tx_id.clone())
                .collect();
            if let Err(e) = resolver
                .find_suspects(unresolved.iter().map(String::as_str))
                .await
            {
                // Without the suspects no table outside the Coordinator's storage can be
                // checked: each is failed with the reason, never passed.
                let reason = error_chain(&e);
                for (p, scan) in planned.iter().zip(scans.iter_mut()) {
                    if !p.joined && scan.is_ok() {
                        *scan = Err(Error::Unresolved(reason.clone()));
                    }
                }
            }
        }
        let retention = &retention;
        let resolver = resolver.as_ref();
        scans = stream::iter(planned.iter().zip(&tasks).zip(scans))
            .map(|((p, task), scan)| async move {
                let mut scan: TableScan = scan?;
                task.phase("checking committed records against the Coordinator");
                let store = &stores[p.storage];
                let result = if p.joined {
                    store
                        .scan_unconfirmed(p.schema, schema, retention, &mut scan)
                        .await
                } else {
                    match resolver {
                        Some(resolver) => {
                            unconfirmed_elsewhere(store, resolver, p.schema, retention, &mut scan)
                                .await
                        }
                        None => Err(Error::Unresolved(
                            "the Coordinator's index could not be built".to_owned(),
                        )),
                    }
                };
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
            .buffered(config.jobs.max(1))
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
        let counts: LagCounts = coordinator_store
            .fold_coordinator(schema, &|acc, row| pass.add(acc, &row), &LagCounts::merge)
            .await
            .map_err(|e| in_storage(&plan.storages[plan.coordinator], e))?;
        pass.fill(&counts, &mut scans);
    }

    let proof = match (coordinator_schema, &coordinator) {
        (Some(schema), CoordinatorObservation::Present(_)) if schema.has_write_set => {
            let tables: Vec<_> = planned
                .iter()
                .zip(&scans)
                .filter_map(|(p, scan)| {
                    Some(ScannedTable {
                        store: &stores[p.storage],
                        schema: p.schema,
                        scan: scan.as_ref().ok()?,
                    })
                })
                .collect();
            let window = crate::analyze::cut_window(&config.analysis.cut_parts);
            let proof =
                write_sets::run(coordinator_store, schema, &tables, window, config.jobs).await;
            Some(proof.map_err(|e| in_storage(&plan.storages[plan.coordinator], e))?)
        }
        _ => None,
    };
    let (proof, listed) = proof.map_or((None, None), |(proof, listed)| (Some(proof), listed));
    let committed_after = match (coordinator_schema, &coordinator) {
        (Some(schema), CoordinatorObservation::Present(scan)) => {
            let newest = |storage: &str| {
                planned
                    .iter()
                    .zip(&scans)
                    .filter(|(p, _)| plan.storages[p.storage].name == storage)
                    .filter_map(|(_, scan)| scan.as_ref().ok())
                    .filter_map(|scan| scan.max_prepared_at.max(scan.max_committed_at))
                    .max()
            };
            let since = unrecorded_since(&config.analysis.cut_parts, newest)
                .filter(|since| scan.max_created_at.is_some_and(|newest| newest > *since));
            match since {
                Some(since) => Some(
                    committed_after(coordinator_store, schema, since)
                        .await
                        .map_err(|e| in_storage(&plan.storages[plan.coordinator], e))?,
                ),
                None => None,
            }
        }
        _ => None,
    };

    let mut scanned = scans.into_iter();
    let mut tables = Vec::new();
    for table in kept.iter().flatten() {
        let DiscoveredTable::Present(schema) = table else {
            tables.extend(super::unscanned(table));
            continue;
        };
        let outcome = match scanned.next() {
            Some(Ok(scan)) => TableOutcome::Scanned(scan),
            Some(Err(e)) if e.is_permission_denied() => TableOutcome::Denied(error_chain(&e)),
            Some(Err(e)) => TableOutcome::Failed(error_chain(&e)),
            None => TableOutcome::Failed("not scanned".to_owned()),
        };
        tables.push(TableObservation {
            table: schema.table.clone(),
            outcome,
        });
    }
    let observation = Observation {
        tables,
        coordinator,
        discovery: notes,
        storages,
        at_risk_transactions: listed,
        committed_after,
    };
    let mut analysis = analyze(&observation, &config.analysis);
    if let Some(proof) = proof {
        analysis.add_write_set_proof(proof);
    }
    Ok(ScanOutcome {
        analysis,
        tables: planned.iter().map(|p| p.schema.clone()).collect(),
        coordinator: coordinator_schema.cloned(),
    })
}

fn discovered_ref(table: &DiscoveredTable) -> &TableRef {
    match table {
        DiscoveredTable::Present(schema) => &schema.table,
        DiscoveredTable::Missing(table) | DiscoveredTable::Denied { table, .. } => table,
    }
}

/// Phase 2 of a table in another storage than the Coordinator's: its COMMITTED records are
/// streamed, those the index does not confirm filed, reading the rows that matter.
async fn unconfirmed_elsewhere(
    store: &Connected,
    resolver: &Resolver<'_>,
    schema: &TableSchema,
    retention: &Retention,
    scan: &mut TableScan,
) -> Result<(), Error> {
    // One narrow pass first: in a copy whose Coordinator confirms every COMMITTED record
    // (the common case) nothing more is read.
    if !store
        .any_committed(schema, &|tx_ids: &[&str]| resolver.any_needs_look(tx_ids))
        .await?
    {
        return Ok(());
    }
    let part: PhaseTwo = store
        .fold_committed(
            schema,
            &|tx_id: &str| resolver.needs_look(tx_id),
            &|acc: &mut PhaseTwo, record| {
                acc.file(|id| resolver.rows_without_reading(id), retention, record)
            },
            &PhaseTwo::merge,
        )
        .await?;
    let PhaseTwo { filed, to_read } = part;
    merge_filed(scan, filed);
    for record in resolver.attach(to_read).await? {
        retention.file(scan, record);
    }
    Ok(())
}

/// The earliest instant a backup set's parts can have been copied at, when some part records
/// none ([`crate::analyze::part_starts`]); `None` for one part, all parts recorded, or a part
/// of no known storage.
fn unrecorded_since(
    parts: &[crate::analyze::CutPart],
    newest: impl Fn(&str) -> Option<i64>,
) -> Option<i64> {
    if parts.len() < 2 || parts.iter().all(|p| p.earliest_ms.is_some()) {
        return None;
    }
    crate::analyze::part_starts(parts, newest)?
        .into_iter()
        .min()
}

/// One pass over the Coordinator: its COMMITTED rows created after `since`, up to the cap.
async fn committed_after(
    store: &Connected,
    schema: &crate::store::CoordinatorSchema,
    since: i64,
) -> Result<CommittedAfter, Error> {
    let mut after: CommittedAfter = store
        .fold_coordinator(
            schema,
            &|acc: &mut CommittedAfter, row| {
                if row.tx_created_at.is_some_and(|at| at > since) {
                    acc.add(&row);
                }
            },
            &CommittedAfter::merge,
        )
        .await?;
    after.since_ms = since;
    Ok(after)
}
