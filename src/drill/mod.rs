//! The `drill` job: restore a backup, or a backup set (one backup per storage of a
//! deployment), each into a disposable instance of its own engine, concurrently; scan them
//! as one deployment, optionally rehearse recovery and evaluate invariants in every
//! instance, and tear everything down. Owns the order of the phases and their timings; the
//! restore, the SQL, the scan and the verdict live elsewhere.

mod cassandra;
mod rehearse;
mod restore;
mod set;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use cassandra::check_copy_names;
pub use rehearse::RecoveryWrites;
use restore::DrillWriter;
pub use restore::{InstanceError, RESTORED_DATABASE, RestoreError, Restored, RuntimeKind};
pub use set::{BackupSet, DrillBackup, GivenBackup, SetStorage, kind_of, plan};

use crate::analyze::{AnalysisSettings, Code, Finding, NodeComparison, Verdict};
use crate::config::{DeploymentScan, ScanConfig, ScanStorage};
use crate::error::Error;
use crate::progress::{Progress, Task};
use crate::scan::{self, ScanOutcome};
use crate::store::{Scalar, TableFilter};

/// A user invariant: a query returning one boolean or number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Invariant {
    pub name: String,
    pub sql: String,
    /// The storage it runs in (`NAME@STORAGE=SQL`); `None`: the only one, or in a backup
    /// set the Coordinator's.
    pub storage: Option<String>,
}

/// Everything `drill` needs, validated before any instance starts.
#[derive(Clone, Debug)]
pub struct DrillConfig {
    /// One backup (no deployment), or one per storage of `set`.
    pub backups: Vec<DrillBackup>,
    /// The deployment a backup set restores; `None`: a drill of one backup.
    pub set: Option<BackupSet>,
    /// Also restore each Cassandra node's snapshot on its own and compare the nodes.
    pub per_node: bool,
    pub runtime: RuntimeKind,
    /// The container image for the docker runtime (default: the official image).
    pub image: Option<String>,
    pub run_id: String,
    pub recover: bool,
    pub invariants: Vec<Invariant>,
    pub rto: Option<Duration>,
    pub startup_timeout: Duration,
    pub keep: bool,
    pub coordinator_namespace: String,
    pub metadata_schema: String,
    pub filter: TableFilter,
    pub jobs: usize,
    pub connect_timeout: Duration,
    pub analysis: AnalysisSettings,
    /// The most the restore may write into the disposable instance (`--max-restore-bytes`);
    /// `None`: half the free space where instances live.
    pub max_restore_bytes: Option<u64>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RecoveryRehearsal {
    pub writes: RecoveryWrites,
    /// The verdict of the scan after the rehearsal.
    pub verdict_after: Verdict,
    pub unresolved_after: u64,
    /// Nothing unresolved afterwards, and every write hit exactly the predicted record.
    pub succeeded: bool,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct InvariantResult {
    pub name: String,
    pub sql: String,
    /// The storage it ran in (a backup set only).
    pub storage: Option<String>,
    pub restored: Option<Scalar>,
    pub after_recovery: Option<Scalar>,
    pub passed: bool,
    pub message: String,
}

/// One backup of a drill and the instance it was restored into.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct BackupRecord {
    /// The storage it restores (a backup set); `None` in a drill of one backup.
    pub storage: Option<String>,
    /// The backup as given; `None` for the empty instance that stands in for a storage
    /// without a backup (the Coordinator's).
    pub path: Option<String>,
    pub format: &'static str,
    /// Where its instance ran: `local`, `docker`, or `copy` for a SQLite file.
    pub runtime: &'static str,
    /// Its own phases: `start` and `restore`, and `recover` after a rehearsal.
    pub phases: Vec<Phase>,
    pub restore_seconds: f64,
    /// The rehearsal's writes in this instance (`--recover`): its storage's records, and
    /// the ABORTED rows when it holds the Coordinator. The section's `recovery.writes` is
    /// their sum.
    pub recovery_writes: Option<RecoveryWrites>,
}

/// What a drill adds to the scan report.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DrillSection {
    /// The backup's path; of a backup set, every path, comma-separated.
    pub backup: String,
    /// The backup's format; `backup set` for several.
    pub format: &'static str,
    /// The instance's runtime; of several, theirs if they agree, else `mixed`.
    pub runtime: &'static str,
    pub run_id: String,
    /// The drill's phases, wall-clock: in a backup set `start` and `restore` end with the
    /// slowest instance's.
    pub phases: Vec<Phase>,
    /// The restore's time (the load phase, not the start nor the scan), the one `--rto-seconds`
    /// judges: in a backup set the slowest backup's, as they restore concurrently.
    pub restore_seconds: f64,
    /// Each backup with its storage, format, instance runtime and phases.
    pub backups: Vec<BackupRecord>,
    pub rto_seconds: Option<u64>,
    pub restore_within_rto: Option<bool>,
    pub recovery: Option<RecoveryRehearsal>,
    pub invariants: Vec<InvariantResult>,
    /// The nodes' snapshots compared record by record (`--per-node`).
    pub nodes: Option<NodeComparison>,
    /// Where the instance still runs (`--keep`).
    pub kept_at: Option<String>,
}

impl DrillSection {
    /// Whether something the drill itself checks failed (the scan's verdict aside).
    pub fn failed(&self) -> bool {
        self.restore_within_rto == Some(false)
            || self.recovery.as_ref().is_some_and(|r| !r.succeeded)
            || self.invariants.iter().any(|i| !i.passed)
    }
}

pub struct DrillOutcome {
    pub scan: ScanOutcome,
    pub target: String,
    pub section: DrillSection,
}

struct Clock {
    phases: Vec<Phase>,
    started: Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            phases: Vec::new(),
            started: Instant::now(),
        }
    }

    fn lap(&mut self, name: &'static str) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        self.phases.push(Phase { name, seconds });
        self.started = Instant::now();
        seconds
    }
}

/// One instance of the drill: the backup it restores (`None`: an empty stand-in for the
/// Coordinator's storage, which no backup restores) and its storage in a backup set.
struct Slot<'a> {
    backup: Option<&'a DrillBackup>,
    storage: Option<&'a SetStorage>,
    format: crate::backup::BackupFormat,
}

/// A started instance with its slot and its own timings.
struct Instance<'a> {
    slot: Slot<'a>,
    restored: Restored,
    phases: Vec<Phase>,
    restore_seconds: f64,
    recovery_writes: Option<RecoveryWrites>,
}

impl DrillConfig {
    /// The instances the drill starts: one per backup, and an empty one for the
    /// Coordinator's storage when no backup restores it.
    fn slots(&self) -> Vec<Slot<'_>> {
        let mut slots: Vec<Slot<'_>> = self
            .backups
            .iter()
            .map(|backup| Slot {
                backup: Some(backup),
                storage: backup.storage.as_ref(),
                format: backup.format,
            })
            .collect();
        if let Some(set) = self.set.as_ref().filter(|s| s.coordinator_backup.is_none()) {
            slots.push(Slot {
                backup: None,
                storage: Some(&set.coordinator),
                format: restore::empty_format(set.coordinator.kind),
            });
        }
        slots
    }

    /// The backups as one line: a path, or every path of a set.
    pub fn subject(&self) -> String {
        self.backups
            .iter()
            .map(|b| b.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs a drill. Every instance is torn down on every path out of here, errors included;
/// if this future is dropped (Ctrl-C), each instance's `Drop` tears it down.
pub async fn run(config: &DrillConfig, progress: &Progress) -> Result<DrillOutcome, Error> {
    let mut clock = Clock::new();
    let task = progress.task("drill");
    let slots = config.slots();
    task.phase(&match slots.len() {
        1 => "starting a disposable instance".to_owned(),
        n => format!("starting {n} disposable instances"),
    });
    let started = futures::future::join_all(slots.iter().map(|slot| async move {
        let began = Instant::now();
        let restored = restore::start(
            slot.format,
            config.runtime,
            config.image.as_deref(),
            &config.run_id,
            config.startup_timeout,
            config.keep,
        )
        .await;
        (restored, began.elapsed().as_secs_f64())
    }))
    .await;
    let mut instances = Vec::new();
    let mut failure = None;
    for (slot, (restored, seconds)) in slots.into_iter().zip(started) {
        match restored {
            Ok(restored) => instances.push(Instance {
                slot,
                restored,
                phases: vec![Phase {
                    name: "start",
                    seconds,
                }],
                restore_seconds: 0.0,
                recovery_writes: None,
            }),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(error) = failure {
        // The instances that did start go first: nothing outlives a failed start.
        let _ = stop_all(instances).await;
        return Err(error.into());
    }
    clock.lap("start");
    let result = drill_in(&mut instances, config, progress, &task, &mut clock).await;
    match (result, config.keep) {
        (Ok(mut outcome), true) => {
            outcome.section.kept_at = Some(
                instances
                    .iter()
                    .map(|i| match i.slot.storage {
                        Some(storage) => {
                            format!("{}: {}", storage.name, i.restored.connection_hint())
                        }
                        None => i.restored.connection_hint(),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            outcome.section.phases = clock.phases;
            outcome.section.backups = records(instances, |r| r.keep());
            task.finish(outcome.scan.analysis.records_scanned());
            Ok(outcome)
        }
        (result, _) => {
            task.phase("tearing down");
            let records = records_of(&instances);
            let stopped = stop_all(instances).await;
            clock.lap("teardown");
            let mut outcome = result?;
            stopped.map_err(|e| Error::from(RestoreError::Teardown(Box::new(e))))?;
            outcome.section.phases = clock.phases;
            outcome.section.backups = records;
            task.finish(outcome.scan.analysis.records_scanned());
            Ok(outcome)
        }
    }
}

/// Stops every instance at once; the first failure is returned, after all were stopped.
async fn stop_all(instances: Vec<Instance<'_>>) -> Result<(), InstanceError> {
    let stopped = futures::future::join_all(instances.into_iter().map(|i| i.restored.stop())).await;
    stopped.into_iter().collect()
}

fn record(instance: &Instance<'_>) -> BackupRecord {
    BackupRecord {
        storage: instance.slot.storage.map(|s| s.name.clone()),
        path: instance.slot.backup.map(|b| b.path.display().to_string()),
        format: instance
            .slot
            .backup
            .map_or("none: an empty instance stands in", |b| b.format.describe()),
        runtime: instance.restored.runtime(),
        phases: instance.phases.clone(),
        restore_seconds: instance.restore_seconds,
        recovery_writes: instance.recovery_writes.clone(),
    }
}

fn records_of(instances: &[Instance<'_>]) -> Vec<BackupRecord> {
    instances.iter().map(record).collect()
}

fn records(instances: Vec<Instance<'_>>, then: impl Fn(Restored)) -> Vec<BackupRecord> {
    let records = records_of(&instances);
    instances.into_iter().for_each(|i| then(i.restored));
    records
}

/// The scan of the restored instances: the one instance as any target, or a backup set as
/// the deployment it restores, each storage at its instance (the storages' own hosts are
/// never contacted).
fn scan_config(config: &DrillConfig, instances: &[Instance<'_>]) -> Result<ScanConfig, Error> {
    let mut scan_config = ScanConfig {
        target: instances[0].restored.scan_target()?,
        coordinator_namespace: config.coordinator_namespace.clone(),
        metadata_schema: config.metadata_schema.clone(),
        filter: config.filter.clone(),
        jobs: config.jobs,
        connect_timeout: config.connect_timeout,
        analysis: AnalysisSettings {
            cut_parts: crate::backup::instants::read_all(config.backups.iter().map(|b| {
                let storage = b.storage.as_ref().map(|s| s.name.clone());
                (b.path.as_path(), b.format, b.snapshots.as_ref(), storage)
            })),
            ..config.analysis.clone()
        },
        storage_name: None,
        deployment: None,
    };
    let Some(set) = &config.set else {
        return Ok(scan_config);
    };
    let mut storages = Vec::new();
    let mut coordinator = 0;
    for instance in instances {
        let Some(storage) = instance.slot.storage else {
            continue;
        };
        if storage.id == set.coordinator.id {
            coordinator = storages.len();
        }
        storages.push(ScanStorage {
            id: storage.id,
            name: storage.name.clone(),
            target: instance.restored.scan_target()?,
            metadata_schema: storage.metadata_schema.clone(),
            mapped: storage.mapped,
        });
    }
    scan_config.target = storages[coordinator].target.clone();
    scan_config.metadata_schema = storages[coordinator].metadata_schema.clone();
    scan_config.storage_name = Some(storages[coordinator].name.clone());
    scan_config.deployment = Some(DeploymentScan {
        storages,
        coordinator,
        deployment: set.deployment.clone(),
    });
    Ok(scan_config)
}

/// Scans the restored state; a storage of the set that no backup restores is a finding,
/// so such a scan is never consistent.
async fn scan_restored(
    config: &DrillConfig,
    scan_config: &ScanConfig,
    progress: &Progress,
) -> Result<ScanOutcome, Error> {
    let mut outcome = scan::run(scan_config, progress).await?;
    if let Some(set) = &config.set {
        outcome
            .analysis
            .add_findings(set.missing.iter().map(|name| missing_backup(set, name)));
    }
    Ok(outcome)
}

fn missing_backup(set: &BackupSet, name: &str) -> Finding {
    let what = if *name == set.coordinator.name {
        "the Coordinator's storage: no transaction's state is known, so no PREPARED record \
         can be predicted and no commit confirmed"
    } else {
        "its tables are not in this drill"
    };
    let mut finding = Finding::new(
        Code::BackupMissing,
        format!(
            "no backup restores storage {name}, which the deployment routes tables to \
             ({what}); give it with --backup {name}=PATH"
        ),
    );
    finding.storage = Some(name.to_owned());
    finding
}

async fn drill_in(
    instances: &mut [Instance<'_>],
    config: &DrillConfig,
    progress: &Progress,
    task: &Task,
    clock: &mut Clock,
) -> Result<DrillOutcome, Error> {
    task.phase(&match &*instances {
        [only] => format!(
            "restoring the {}",
            only.slot.backup.map_or("nothing", |b| b.format.describe())
        ),
        several => format!("restoring {} backups", several.len()),
    });
    let limit = restore::restore_limit(config.max_restore_bytes);
    let loaded = futures::future::join_all(instances.iter().map(|instance| async move {
        let began = Instant::now();
        let loaded = match instance.slot.backup {
            Some(backup) => {
                restore::load(
                    &instance.restored,
                    &backup.path,
                    backup.format,
                    backup.snapshots.as_ref(),
                    config.jobs,
                    limit,
                )
                .await
            }
            None => restore::prepare_empty(&instance.restored).await,
        };
        (loaded, began.elapsed().as_secs_f64())
    }))
    .await;
    let mut restore_seconds = 0.0_f64;
    for (instance, (loaded, seconds)) in instances.iter_mut().zip(loaded) {
        loaded?;
        instance.restore_seconds = seconds;
        instance.phases.push(Phase {
            name: "restore",
            seconds,
        });
        // An empty stand-in restores nothing: the RTO is of the backups' restores.
        if instance.slot.backup.is_some() {
            restore_seconds = restore_seconds.max(seconds);
        }
    }
    clock.lap("restore");

    let mut scan_config = scan_config(config, instances)?;
    task.phase("scanning the restored state");
    let mut outcome = scan_restored(config, &scan_config, progress).await?;
    clock.lap("scan");

    let mut nodes = None;
    if let ([only], true) = (&*instances, config.per_node) {
        if let (Some(node), Some(snapshots)) = (
            only.restored.cassandra(),
            only.slot.backup.and_then(|b| b.snapshots.as_ref()),
        ) {
            let comparison = compare_nodes(node, snapshots, &outcome, config, progress).await?;
            // The copies are evidence for the comparison only: what the rehearsal and its
            // rescan judge is the merged state, as ScalarDB would read it.
            scan_config
                .filter
                .exclude
                .extend(cassandra::copy_keyspaces(snapshots));
            outcome.analysis.add_findings(comparison.findings());
            nodes = Some(comparison);
            clock.lap("compare nodes");
        }
    }

    // The drill's writes go to its own instances only, each through a writer made for it.
    let at = |storage: Option<&str>| -> usize {
        match (storage, &config.set) {
            (Some(name), _) => instances
                .iter()
                .position(|i| i.slot.storage.is_some_and(|s| s.name == name))
                .unwrap_or(0),
            (None, Some(set)) => instances
                .iter()
                .position(|i| i.slot.storage.is_some_and(|s| s.id == set.coordinator.id))
                .unwrap_or(0),
            (None, None) => 0,
        }
    };
    let targets: Vec<usize> = config
        .invariants
        .iter()
        .map(|i| at(i.storage.as_deref()))
        .collect();
    let coordinator_instance = at(None);
    let mut writers = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        let sql_needed = config.recover || targets.contains(&index);
        writers.push(instance.restored.writer(config.recover, sql_needed).await?);
    }
    if !config.invariants.is_empty() {
        task.phase("evaluating the invariants");
    }
    let evaluate = async |writers: &[Option<DrillWriter>]| {
        let mut values = Vec::new();
        for (invariant, target) in config.invariants.iter().zip(&targets) {
            values.push(match writers[*target].as_ref().and_then(DrillWriter::sql) {
                Some(writer) => Some(writer.scalar(&invariant.sql).await),
                None => None,
            });
        }
        values
    };
    let restored_values = evaluate(&writers).await;
    let mut recovery = None;
    let mut after_values = Vec::new();
    if config.recover {
        task.phase(&format!(
            "rehearsing recovery: {} writes",
            outcome.analysis.predictions.len()
        ));
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let rehearsed = futures::future::join_all(instances.iter().zip(&writers).enumerate().map(
            |(index, (instance, writer))| {
                let scope = rehearse::Scope {
                    storage: config
                        .set
                        .as_ref()
                        .and(instance.slot.storage.map(|s| s.name.as_str())),
                    coordinator: index == coordinator_instance,
                };
                let outcome = &outcome;
                async move {
                    let began = Instant::now();
                    let writes = match writer {
                        Some(writer) => writer.rehearse(outcome, now_ms, &scope).await,
                        None => Ok(RecoveryWrites::default()),
                    };
                    (writes, began.elapsed().as_secs_f64())
                }
            },
        ))
        .await;
        let mut writes = RecoveryWrites::default();
        for (instance, (done, seconds)) in instances.iter_mut().zip(rehearsed) {
            let done = done?;
            writes.add(done.clone());
            instance.recovery_writes = Some(done);
            instance.phases.push(Phase {
                name: "recover",
                seconds,
            });
        }
        task.phase("scanning again after the rehearsal");
        let after = scan_restored(config, &scan_config, progress).await?;
        let unresolved_after = after.analysis.unresolved_records();
        recovery = Some(RecoveryRehearsal {
            succeeded: writes.unexpected.is_empty() && unresolved_after == 0,
            writes,
            verdict_after: after.analysis.verdict,
            unresolved_after,
        });
        after_values = evaluate(&writers).await;
        clock.lap("recover");
    }
    for writer in writers.into_iter().flatten() {
        writer.close().await;
    }
    let invariants = config
        .invariants
        .iter()
        .enumerate()
        .map(|(i, invariant)| {
            judge_invariant(
                invariant,
                restored_values.get(i).and_then(Option::as_ref),
                config
                    .recover
                    .then(|| after_values.get(i).and_then(Option::as_ref))
                    .flatten(),
            )
        })
        .collect();
    if !config.invariants.is_empty() {
        clock.lap("checks");
    }
    let rto_seconds = config.rto.map(|rto| rto.as_secs());
    let runtimes: BTreeSet<&'static str> = instances.iter().map(|i| i.restored.runtime()).collect();
    let (format, target) = match (instances.len(), &config.set) {
        (1, None) => (
            config.backups[0].format.describe(),
            format!(
                "{} (restored from {})",
                scan_config.target.display(),
                config.backups[0].path.display()
            ),
        ),
        _ => (
            "backup set",
            format!(
                "{} (the Coordinator's storage {}, restored from {}; {} storages)",
                scan_config.target.display(),
                scan_config.storage_name.as_deref().unwrap_or_default(),
                instances
                    .get(coordinator_instance)
                    .and_then(|i| i.slot.backup)
                    .map_or_else(|| "no backup".to_owned(), |b| b.path.display().to_string()),
                instances.len()
            ),
        ),
    };
    Ok(DrillOutcome {
        target,
        scan: outcome,
        section: DrillSection {
            backup: config.subject(),
            format,
            runtime: match runtimes.iter().next() {
                Some(only) if runtimes.len() == 1 => only,
                _ => "mixed",
            },
            run_id: config.run_id.clone(),
            phases: Vec::new(),
            restore_seconds,
            backups: Vec::new(),
            rto_seconds,
            restore_within_rto: config.rto.map(|rto| restore_seconds <= rto.as_secs_f64()),
            recovery,
            invariants,
            nodes,
            kept_at: None,
        },
    })
}

/// Restores each node's snapshot on its own beside the merged one and compares them.
async fn compare_nodes(
    node: &cassandra::CassandraNode,
    snapshots: &crate::backup::cassandra::SnapshotBackup,
    outcome: &ScanOutcome,
    config: &DrillConfig,
    progress: &Progress,
) -> Result<NodeComparison, Error> {
    let task = progress.task("nodes");
    task.phase("restoring each node's snapshot on its own");
    cassandra::load_copies(node, snapshots, config.jobs).await?;
    task.phase("comparing the nodes record by record");
    let tables: Vec<_> = outcome
        .tables
        .iter()
        .map(|schema| {
            let records = outcome
                .analysis
                .tables
                .iter()
                .find(|t| t.table == schema.table)
                .map_or(0, |t| t.records);
            (schema.clone(), records)
        })
        .collect();
    let comparison = cassandra::compare(
        node,
        snapshots,
        &tables,
        &config.coordinator_namespace,
        &config.metadata_schema,
        config.connect_timeout,
    )
    .await?;
    task.finish(comparison.records);
    Ok(comparison)
}

type Evaluated = Result<Scalar, crate::store::WriteError>;

fn judge_invariant(
    invariant: &Invariant,
    restored: Option<&Evaluated>,
    after: Option<&Evaluated>,
) -> InvariantResult {
    let mut problems = Vec::new();
    let mut value = |label: &str, evaluated: Option<&Evaluated>| match evaluated {
        Some(Ok(value)) => {
            if !value.is_truthy() {
                problems.push(format!("{label}: returned {value}, not true"));
            }
            Some(value.clone())
        }
        Some(Err(e)) => {
            problems.push(format!("{label}: {}", scan::error_chain(e)));
            None
        }
        None => None,
    };
    let restored = value("on the restored state", restored);
    let after_recovery = value("after the recovery rehearsal", after);
    InvariantResult {
        name: invariant.name.clone(),
        sql: invariant.sql.clone(),
        storage: invariant.storage.clone(),
        passed: problems.is_empty(),
        message: if problems.is_empty() {
            "holds".to_owned()
        } else {
            problems.join("; ")
        },
        restored,
        after_recovery,
    }
}
