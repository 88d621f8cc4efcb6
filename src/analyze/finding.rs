//! Findings: the stable codes, their severities, the check each belongs to and what each
//! does to the verdict. Codes are part of the report's contract: never rename one.

use serde::Serialize;

use crate::model::RecordKey;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Self::Info, Self::Warning, Self::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// The named checks a report is made of; JUnit shows one test case per check per table.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum CheckName {
    /// The table could be found and read.
    TableScan,
    /// Every record's metadata is something ScalarDB could have written.
    MetadataValidity,
    /// Lazy recovery can resolve every unresolved record.
    LazyRecovery,
    /// No transaction is half committed after recovery.
    TransactionAtomicity,
    /// Committed records are known to the Coordinator.
    CoordinatorCoverage,
    /// Tables and the Coordinator look copied at one moment.
    WatermarkSkew,
    /// The Coordinator table exists and holds only valid rows.
    CoordinatorTable,
    /// The restore point lies inside the pause the backup was taken in (`--pause-window`).
    PauseWindow,
    /// The nodes' snapshots hold the same copy of every record they share (`--per-node`).
    NodeConsistency,
}

impl CheckName {
    pub const PER_TABLE: [CheckName; 6] = [
        CheckName::TableScan,
        CheckName::MetadataValidity,
        CheckName::LazyRecovery,
        CheckName::TransactionAtomicity,
        CheckName::CoordinatorCoverage,
        CheckName::WatermarkSkew,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TableScan => "table-scan",
            Self::MetadataValidity => "metadata-validity",
            Self::LazyRecovery => "lazy-recovery",
            Self::TransactionAtomicity => "transaction-atomicity",
            Self::CoordinatorCoverage => "coordinator-coverage",
            Self::WatermarkSkew => "watermark-skew",
            Self::CoordinatorTable => "coordinator-table",
            Self::PauseWindow => "pause-window",
            Self::NodeConsistency => "node-consistency",
        }
    }

    /// Checks whose answer depends on the Coordinator: they cannot run without it.
    pub fn needs_coordinator(self) -> bool {
        matches!(
            self,
            Self::LazyRecovery | Self::TransactionAtomicity | Self::CoordinatorCoverage
        )
    }
}

/// What a finding does to the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VerdictEffect {
    None,
    /// The evidence cannot decide, or a check could not run.
    Indeterminate,
    /// Recovery will contradict a record that is already resolved, or the restored replicas
    /// contradict each other.
    Inconsistent,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// Some of T's records are COMMITTED, others PREPARED/DELETED, and T has no COMMITTED
    /// state: recovery aborts T and rolls back half of it.
    TornTransaction,
    /// A record is COMMITTED by T while the Coordinator says T ABORTED.
    CommittedButAborted,
    /// A group-commit child with no Coordinator row while committed siblings show the
    /// group's parent row is missing from this copy.
    AmbiguousGroupParentMissing,
    /// A COMMITTED record of an ABORTED transaction where Coordinator clean-up (3.19 write
    /// set logging) can legally produce that race.
    AmbiguousCoordinatorCleanup,
    /// A group-commit child whose parent row is COMMITTED and lists it while its full-id
    /// row is ABORTED: two outcomes for one transaction (ScalarDB 3.13.0's group commit
    /// could write both; fixed in 3.13.1). Lazy recovery may have rolled back part of it.
    GroupCommitConflictingStates,
    /// An unresolved record whose Coordinator row is keyed by another id: the storage
    /// compares ids otherwise than by their bytes (MariaDB's collations fold case), so
    /// ScalarDB resolves the transaction by another transaction's state.
    CoordinatorRowOfAnotherId,
    UnknownTxState,
    InvalidMetadata,
    InvalidCoordinatorRow,
    CoordinatorMissing,
    TableMissing,
    TableScanFailed,
    NoTransactionalTables,
    MetadataIncomplete,
    CommittedWithoutCoordinatorState,
    WatermarkSkew,
    InFlightAtCut,
    /// A table holds writes from after the pause started: the restore point is past it.
    WrittenAfterPauseStart,
    /// A transaction was in flight when the pause started, which a pause drains.
    InFlightDuringPause,
    /// Copies of a record differ between the nodes' snapshots: they were taken at different
    /// moments.
    NodeSnapshotsSkewed,
    /// A table the scan must read (ScalarDB's metadata, a listed table, the Coordinator)
    /// exists but the account may not read it.
    PermissionDenied,
    /// ScalarDB's metadata table holds rows ScalarDB could not have written.
    InvalidScalardbMetadata,
    /// The Coordinator table could not be read.
    CoordinatorScanFailed,
    /// The deployment's mapping sends tables to a storage that holds no ScalarDB table.
    StorageWithoutTables,
    /// COMMITTED records without a Coordinator row and no legal cause, committed inside
    /// or after the Coordinator's span: the Coordinator copy is older than the data.
    CoordinatorBehindData,
    /// A table's newest write lags the rest by far more than its own write rate explains.
    TableCopiedEarly,
    /// Parts of the backup were copied at different instants with transactions between.
    CutWindowAtRisk,
    /// The backup is one snapshot: evidence that the cut is one instant.
    BackupSingleSnapshot,
    /// A drill of a backup set has no backup of a storage the deployment routes tables to.
    BackupMissing,
    /// A COMMITTED transaction's write set names a record the backup holds at an older
    /// version: the copy of its table predates the write (3.19 write-set logging).
    TornTransactionMissingWrite,
    /// A record a COMMITTED transaction's write set names cannot be ordered against it.
    WriteSetAmbiguous,
    /// A Coordinator row's `tx_write_set` cannot be decoded (or is too large to).
    WriteSetUndecodable,
    /// A PREPARED or DELETED record of an ABORTED transaction that its write set does not
    /// name.
    AbortedWriteOutsideWriteSet,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TornTransaction => "torn-transaction",
            Self::CommittedButAborted => "committed-but-aborted",
            Self::AmbiguousGroupParentMissing => "ambiguous-group-parent-missing",
            Self::AmbiguousCoordinatorCleanup => "ambiguous-coordinator-cleanup",
            Self::GroupCommitConflictingStates => "group-commit-conflicting-states",
            Self::CoordinatorRowOfAnotherId => "coordinator-row-of-another-id",
            Self::UnknownTxState => "unknown-tx-state",
            Self::InvalidMetadata => "invalid-metadata",
            Self::InvalidCoordinatorRow => "invalid-coordinator-row",
            Self::CoordinatorMissing => "coordinator-missing",
            Self::TableMissing => "table-missing",
            Self::TableScanFailed => "table-scan-failed",
            Self::NoTransactionalTables => "no-transactional-tables",
            Self::MetadataIncomplete => "metadata-incomplete",
            Self::CommittedWithoutCoordinatorState => "committed-without-coordinator-state",
            Self::WatermarkSkew => "watermark-skew",
            Self::InFlightAtCut => "in-flight-at-cut",
            Self::WrittenAfterPauseStart => "written-after-pause-start",
            Self::InFlightDuringPause => "in-flight-during-pause",
            Self::NodeSnapshotsSkewed => "node-snapshots-skewed",
            Self::PermissionDenied => "permission-denied",
            Self::InvalidScalardbMetadata => "invalid-scalardb-metadata",
            Self::CoordinatorScanFailed => "coordinator-scan-failed",
            Self::StorageWithoutTables => "storage-without-tables",
            Self::CoordinatorBehindData => "coordinator-behind-data",
            Self::TableCopiedEarly => "table-copied-early",
            Self::CutWindowAtRisk => "cut-window-at-risk",
            Self::BackupSingleSnapshot => "backup-single-snapshot",
            Self::BackupMissing => "backup-missing",
            Self::TornTransactionMissingWrite => "torn-transaction-missing-write",
            Self::WriteSetAmbiguous => "write-set-ambiguous",
            Self::WriteSetUndecodable => "write-set-undecodable",
            Self::AbortedWriteOutsideWriteSet => "aborted-write-outside-write-set",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::TornTransaction
            | Self::CommittedButAborted
            | Self::GroupCommitConflictingStates
            | Self::UnknownTxState
            | Self::InvalidMetadata
            | Self::InvalidCoordinatorRow
            | Self::CoordinatorMissing
            | Self::TableMissing
            | Self::TableScanFailed
            | Self::NoTransactionalTables
            | Self::WrittenAfterPauseStart
            | Self::InFlightDuringPause
            | Self::NodeSnapshotsSkewed
            | Self::PermissionDenied
            | Self::InvalidScalardbMetadata
            | Self::CoordinatorScanFailed
            | Self::StorageWithoutTables
            | Self::BackupMissing
            | Self::TornTransactionMissingWrite => Severity::Error,
            Self::WriteSetAmbiguous
            | Self::WriteSetUndecodable
            | Self::AbortedWriteOutsideWriteSet
            | Self::AmbiguousGroupParentMissing
            | Self::AmbiguousCoordinatorCleanup
            | Self::CoordinatorRowOfAnotherId
            | Self::MetadataIncomplete
            | Self::CommittedWithoutCoordinatorState
            | Self::WatermarkSkew
            | Self::CoordinatorBehindData
            | Self::TableCopiedEarly
            | Self::CutWindowAtRisk => Severity::Warning,
            Self::InFlightAtCut | Self::BackupSingleSnapshot => Severity::Info,
        }
    }

    pub fn check(self) -> CheckName {
        match self {
            Self::TornTransaction
            | Self::CommittedButAborted
            | Self::AmbiguousGroupParentMissing
            | Self::AmbiguousCoordinatorCleanup
            | Self::TornTransactionMissingWrite
            | Self::WriteSetAmbiguous
            | Self::CoordinatorRowOfAnotherId
            | Self::GroupCommitConflictingStates => CheckName::TransactionAtomicity,
            Self::WriteSetUndecodable => CheckName::CoordinatorTable,
            Self::AbortedWriteOutsideWriteSet => CheckName::LazyRecovery,
            Self::UnknownTxState
            | Self::InvalidMetadata
            | Self::MetadataIncomplete
            | Self::InvalidScalardbMetadata => CheckName::MetadataValidity,
            Self::InvalidCoordinatorRow
            | Self::CoordinatorMissing
            | Self::CoordinatorScanFailed => CheckName::CoordinatorTable,
            Self::TableMissing
            | Self::TableScanFailed
            | Self::NoTransactionalTables
            | Self::PermissionDenied
            | Self::StorageWithoutTables
            | Self::BackupMissing => CheckName::TableScan,
            Self::CommittedWithoutCoordinatorState | Self::CoordinatorBehindData => {
                CheckName::CoordinatorCoverage
            }
            Self::WatermarkSkew
            | Self::TableCopiedEarly
            | Self::CutWindowAtRisk
            | Self::BackupSingleSnapshot => CheckName::WatermarkSkew,
            Self::InFlightAtCut => CheckName::LazyRecovery,
            Self::WrittenAfterPauseStart | Self::InFlightDuringPause => CheckName::PauseWindow,
            Self::NodeSnapshotsSkewed => CheckName::NodeConsistency,
        }
    }

    pub fn verdict_effect(self) -> VerdictEffect {
        match self {
            // Replicas restored from skewed snapshots disagree: what a transaction reads
            // depends on which replica answers.
            Self::TornTransaction
            | Self::CommittedButAborted
            | Self::NodeSnapshotsSkewed
            | Self::TornTransactionMissingWrite => VerdictEffect::Inconsistent,
            Self::AmbiguousGroupParentMissing
            | Self::AmbiguousCoordinatorCleanup
            | Self::GroupCommitConflictingStates
            | Self::UnknownTxState
            | Self::InvalidMetadata
            | Self::InvalidCoordinatorRow
            | Self::CoordinatorMissing
            | Self::TableMissing
            | Self::TableScanFailed
            | Self::NoTransactionalTables
            | Self::WrittenAfterPauseStart
            | Self::InFlightDuringPause
            | Self::PermissionDenied
            | Self::InvalidScalardbMetadata
            | Self::CoordinatorScanFailed
            | Self::StorageWithoutTables
            | Self::BackupMissing
            | Self::WriteSetUndecodable
            | Self::CoordinatorBehindData
            | Self::TableCopiedEarly
            | Self::CutWindowAtRisk => VerdictEffect::Indeterminate,
            // Ambiguity is said, not guessed: the verdict stays what the rest decides. A row
            // of another id is not ambiguous: the prediction is what ScalarDB will do.
            Self::CoordinatorRowOfAnotherId
            | Self::WriteSetAmbiguous
            | Self::AbortedWriteOutsideWriteSet
            | Self::BackupSingleSnapshot
            | Self::MetadataIncomplete
            | Self::CommittedWithoutCoordinatorState
            | Self::WatermarkSkew
            | Self::InFlightAtCut => VerdictEffect::None,
        }
    }
}

/// One finding with its minimal evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub check: CheckName,
    /// The storage the finding is about (`None` when the scan named no storage, or the
    /// finding is about the whole deployment).
    pub storage: Option<String>,
    pub table: Option<String>,
    pub key: Option<RecordKey>,
    pub tx_id: Option<String>,
    /// The record's stored `tx_state`, when a record is the evidence.
    pub tx_state: Option<String>,
    /// What the Coordinator answers for `tx_id`, when it was consulted.
    pub coordinator_state: Option<String>,
    /// How many records or transactions the finding stands for, when it aggregates.
    pub count: Option<u64>,
    pub message: String,
}

impl Finding {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(),
            check: code.check(),
            storage: None,
            table: None,
            key: None,
            tx_id: None,
            tx_state: None,
            coordinator_state: None,
            count: None,
            message: message.into(),
        }
    }

    pub fn table(mut self, table: impl ToString) -> Self {
        self.table = Some(table.to_string());
        self
    }

    pub fn key(mut self, key: &RecordKey) -> Self {
        self.key = Some(key.clone());
        self
    }

    pub fn tx_id(mut self, tx_id: Option<&str>) -> Self {
        self.tx_id = tx_id.map(str::to_owned);
        self
    }

    pub fn tx_state(mut self, state: impl ToString) -> Self {
        self.tx_state = Some(state.to_string());
        self
    }

    pub fn coordinator_state(mut self, state: impl ToString) -> Self {
        self.coordinator_state = Some(state.to_string());
        self
    }

    pub fn count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }
}
