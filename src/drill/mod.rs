//! The `drill` job: restore a backup into a disposable instance, scan it, optionally
//! rehearse recovery and evaluate invariants, and tear everything down. Owns the order of
//! the phases and their timings; the restore, the SQL and the verdict live elsewhere.

mod cassandra;
mod rehearse;
mod restore;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use cassandra::check_copy_names;
pub use rehearse::RecoveryWrites;
pub use restore::{InstanceError, RESTORED_DATABASE, RestoreError, Restored, RuntimeKind};

use crate::analyze::{AnalysisSettings, NodeComparison, Verdict};
use crate::backup::BackupFormat;
use crate::backup::cassandra::SnapshotBackup;
use crate::config::ScanConfig;
use crate::error::Error;
use crate::progress::{Progress, Task};
use crate::scan::{self, ScanOutcome};
use crate::store::{DisposableWriter, Scalar, TableFilter};

/// A user invariant: a query returning one boolean or number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Invariant {
    pub name: String,
    pub sql: String,
}

/// Everything `drill` needs, validated before any instance starts.
#[derive(Clone, Debug)]
pub struct DrillConfig {
    pub backup: PathBuf,
    pub format: BackupFormat,
    /// The inspected snapshots of a Cassandra backup.
    pub snapshots: Option<SnapshotBackup>,
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
    pub restored: Option<Scalar>,
    pub after_recovery: Option<Scalar>,
    pub passed: bool,
    pub message: String,
}

/// What a drill adds to the scan report.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DrillSection {
    pub backup: String,
    pub format: &'static str,
    pub runtime: &'static str,
    pub run_id: String,
    pub phases: Vec<Phase>,
    pub restore_seconds: f64,
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

/// Runs a drill. The instance is torn down on every path out of here, errors included;
/// if this future is dropped (Ctrl-C), the instance's `Drop` tears it down.
pub async fn run(config: &DrillConfig, progress: &Progress) -> Result<DrillOutcome, Error> {
    let mut clock = Clock::new();
    let task = progress.task("drill");
    task.phase("starting a disposable instance");
    let restored = restore::start(
        config.format,
        config.runtime,
        config.image.as_deref(),
        &config.run_id,
        config.startup_timeout,
        config.keep,
    )
    .await?;
    clock.lap("start");
    let result = drill_in(&restored, config, progress, &task, &mut clock).await;
    match (result, config.keep) {
        (Ok(mut outcome), true) => {
            outcome.section.kept_at = Some(restored.connection_hint());
            outcome.section.phases = clock.phases;
            restored.keep();
            task.finish(outcome.scan.analysis.records_scanned());
            Ok(outcome)
        }
        (result, _) => {
            task.phase("tearing down");
            let stopped = restored.stop().await;
            clock.lap("teardown");
            let mut outcome = result?;
            stopped.map_err(|e| Error::from(RestoreError::Teardown(Box::new(e))))?;
            outcome.section.phases = clock.phases;
            task.finish(outcome.scan.analysis.records_scanned());
            Ok(outcome)
        }
    }
}

async fn drill_in(
    restored: &Restored,
    config: &DrillConfig,
    progress: &Progress,
    task: &Task,
    clock: &mut Clock,
) -> Result<DrillOutcome, Error> {
    task.phase(&format!("restoring the {}", config.format.describe()));
    restore::load(
        restored,
        &config.backup,
        config.format,
        config.snapshots.as_ref(),
        config.jobs,
        restore::restore_limit(config.max_restore_bytes),
    )
    .await?;
    let restore_seconds = clock.lap("restore");

    let scan_config = ScanConfig {
        target: restored.scan_target()?,
        coordinator_namespace: config.coordinator_namespace.clone(),
        metadata_schema: config.metadata_schema.clone(),
        filter: config.filter.clone(),
        jobs: config.jobs,
        connect_timeout: config.connect_timeout,
        analysis: AnalysisSettings {
            cut_parts: crate::backup::instants::read(
                &config.backup,
                config.format,
                config.snapshots.as_ref(),
            ),
            ..config.analysis.clone()
        },
        storage_name: None,
        deployment: None,
    };
    task.phase("scanning the restored state");
    let mut outcome = scan::run(&scan_config, progress).await?;
    clock.lap("scan");

    let mut nodes = None;
    if let (true, Some(node), Some(snapshots)) =
        (config.per_node, restored.cassandra(), &config.snapshots)
    {
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
        outcome.analysis.add_findings(comparison.findings());
        nodes = Some(comparison);
        clock.lap("compare nodes");
    }

    // The drill's writes go to its own instance only: SQL through a DisposableWriter made
    // for the instance's URL (invariants are SQL too), a Cassandra node through its writer.
    let writer = match restored.cassandra() {
        Some(node) if config.recover => Some(DrillWriter::Cassandra(Box::new(
            cassandra::connect(node).await?,
        ))),
        Some(_) => None,
        None if config.recover || !config.invariants.is_empty() => Some(DrillWriter::Sql(
            DisposableWriter::connect(&restored.writable_url(), scan_config.target.display())
                .await?,
        )),
        None => None,
    };
    let sql_writer = match &writer {
        Some(DrillWriter::Sql(writer)) => Some(writer),
        _ => None,
    };
    let mut restored_values = Vec::new();
    if let Some(writer) = sql_writer {
        if !config.invariants.is_empty() {
            task.phase("evaluating the invariants");
        }
        for invariant in &config.invariants {
            restored_values.push(writer.scalar(&invariant.sql).await);
        }
    }
    let mut recovery = None;
    let mut after_values = Vec::new();
    if let (true, Some(writer)) = (config.recover, &writer) {
        task.phase(&format!(
            "rehearsing recovery: {} writes",
            outcome.analysis.predictions.len()
        ));
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let writes = match writer {
            DrillWriter::Cassandra(target) => rehearse::apply(target.as_ref(), &outcome, now_ms)
                .await
                .map_err(Error::RehearseCassandra)?,
            DrillWriter::Sql(writer) => {
                let target = rehearse::SqlTarget {
                    writer,
                    dialect: scan_config.target.dialect,
                };
                rehearse::apply(&target, &outcome, now_ms).await?
            }
        };
        task.phase("scanning again after the rehearsal");
        let after = scan::run(&scan_config, progress).await?;
        let unresolved_after = after.analysis.unresolved_records();
        recovery = Some(RecoveryRehearsal {
            succeeded: writes.unexpected.is_empty() && unresolved_after == 0,
            writes,
            verdict_after: after.analysis.verdict,
            unresolved_after,
        });
        if let Some(writer) = sql_writer {
            for invariant in &config.invariants {
                after_values.push(writer.scalar(&invariant.sql).await);
            }
        }
        clock.lap("recover");
    }
    if let Some(writer) = sql_writer {
        writer.close().await;
    }
    let invariants = config
        .invariants
        .iter()
        .enumerate()
        .map(|(i, invariant)| {
            judge_invariant(
                invariant,
                restored_values.get(i),
                config.recover.then(|| after_values.get(i)).flatten(),
            )
        })
        .collect();
    if !config.invariants.is_empty() {
        clock.lap("checks");
    }
    let rto_seconds = config.rto.map(|rto| rto.as_secs());
    Ok(DrillOutcome {
        target: format!(
            "{} (restored from {})",
            scan_config.target.display(),
            config.backup.display()
        ),
        scan: outcome,
        section: DrillSection {
            backup: config.backup.display().to_string(),
            format: config.format.describe(),
            runtime: restored.runtime(),
            run_id: config.run_id.clone(),
            phases: Vec::new(),
            restore_seconds,
            rto_seconds,
            restore_within_rto: config.rto.map(|rto| restore_seconds <= rto.as_secs_f64()),
            recovery,
            invariants,
            nodes,
            kept_at: None,
        },
    })
}

/// Where the drill writes: the disposable instance it restored, and nothing else.
enum DrillWriter {
    Sql(DisposableWriter),
    Cassandra(Box<crate::store::CassandraWriter>),
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
