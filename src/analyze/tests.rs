//! Specifications of the analysis, one ScalarDB situation each.

use super::*;
use crate::model::{CoordinatorRow, CoordinatorRows, RecordMeta};

const NOW: i64 = 1_700_000_000_000;

fn key(id: i64) -> RecordKey {
    RecordKey(vec![("id".into(), id.to_string())])
}

fn committed(id: i64, tx: &str) -> ObservedRecord {
    ObservedRecord {
        key: key(id),
        meta: RecordMeta {
            tx_id: Some(tx.into()),
            tx_state: Some(3),
            tx_version: Some(2),
            tx_prepared_at: Some(NOW - 100_000),
            tx_committed_at: Some(NOW - 99_000),
            ..RecordMeta::default()
        },
        coordinator: CoordinatorRows::default(),
    }
}

fn prepared(id: i64, tx: &str, state: i64, before_tx: Option<&str>) -> ObservedRecord {
    ObservedRecord {
        key: key(id),
        meta: RecordMeta {
            tx_id: Some(tx.into()),
            tx_state: Some(state),
            tx_version: Some(if before_tx.is_some() { 2 } else { 1 }),
            tx_prepared_at: Some(NOW - 100_000),
            tx_committed_at: before_tx.map(|_| NOW - 200_000),
            before_tx_id: before_tx.map(Into::into),
            before_tx_state: before_tx.map(|_| 3),
            before_tx_version: before_tx.map(|_| 1),
        },
        coordinator: CoordinatorRows::default(),
    }
}

fn with_row(mut record: ObservedRecord, state: i64) -> ObservedRecord {
    record.coordinator.exact = Some(CoordinatorRow {
        tx_id: record.meta.tx_id.clone().unwrap(),
        tx_state: Some(state),
        tx_created_at: Some(NOW - 99_500),
        tx_child_ids: None,
    });
    record
}

fn coordinator() -> CoordinatorObservation {
    CoordinatorObservation::Present(CoordinatorScan {
        table: Some(TableRef::new("coordinator", "state")),
        rows: 10,
        committed: 9,
        aborted: 1,
        max_created_at: Some(NOW - 99_500),
        ..CoordinatorScan::default()
    })
}

fn table(
    name: &str,
    exceptional: Vec<ObservedRecord>,
    unconfirmed: Vec<ObservedRecord>,
) -> TableObservation {
    TableObservation {
        table: TableRef::new("bank", name),
        outcome: TableOutcome::Scanned(TableScan {
            records: 100,
            max_prepared_at: Some(NOW - 100_000),
            max_committed_at: Some(NOW - 99_000),
            exceptional,
            unconfirmed_relevant: unconfirmed,
            ..TableScan::default()
        }),
    }
}

fn run(tables: Vec<TableObservation>) -> Analysis {
    analyze(
        &Observation {
            tables,
            coordinator: coordinator(),
            discovery: vec![],
            storages: vec![],
            at_risk_transactions: None,
            committed_after: None,
        },
        &AnalysisSettings::default(),
    )
}

fn codes(analysis: &Analysis) -> Vec<Code> {
    analysis.findings.iter().map(|f| f.code).collect()
}

#[test]
fn nothing_unresolved_is_consistent() {
    let analysis = run(vec![table("accounts", vec![], vec![])]);
    assert_eq!(analysis.verdict, Verdict::Consistent);
    assert!(analysis.findings.is_empty(), "{:?}", analysis.findings);
    assert_eq!(analysis.records_scanned(), 100);
}

#[test]
fn prepared_with_committed_state_rolls_forward() {
    let analysis = run(vec![table(
        "accounts",
        vec![
            with_row(prepared(1, "t1", 1, Some("t0")), 3),
            with_row(prepared(2, "t1", 2, Some("t0")), 3),
        ],
        vec![],
    )]);
    assert_eq!(analysis.verdict, Verdict::Recoverable);
    let outcomes: Vec<Outcome> = analysis.predictions.iter().map(|p| p.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::RollForwardCommit, Outcome::RollForwardDelete]
    );
    assert_eq!(analysis.tables[0].roll_forward, 2);
    assert_eq!(analysis.transactions.roll_forward, 1);
}

#[test]
fn aborted_state_restores_the_before_image_or_deletes_a_fresh_insert() {
    let analysis = run(vec![table(
        "accounts",
        vec![
            with_row(prepared(1, "t1", 1, Some("t0")), 4),
            with_row(prepared(2, "t1", 1, None), 4),
        ],
        vec![],
    )]);
    assert_eq!(analysis.verdict, Verdict::Recoverable);
    assert_eq!(analysis.predictions[0].outcome, Outcome::RollBackRestore);
    assert_eq!(
        analysis.predictions[0].restores_tx_id.as_deref(),
        Some("t0")
    );
    assert_eq!(analysis.predictions[1].outcome, Outcome::RollBackDelete);
    assert_eq!(analysis.predictions[1].restores_tx_id, None);
}

#[test]
fn an_imported_before_image_counts_as_a_before_image() {
    // before_tx_version = 0 marks a record whose previous version had NULL metadata.
    let mut record = prepared(1, "t1", 1, None);
    record.meta.before_tx_version = Some(0);
    let analysis = run(vec![table("accounts", vec![record], vec![])]);
    assert_eq!(analysis.predictions[0].outcome, Outcome::RollBackRestore);
}

#[test]
fn prepared_without_state_is_aborted_and_recoverable() {
    let analysis = run(vec![table(
        "accounts",
        vec![prepared(1, "t1", 1, Some("t0"))],
        vec![],
    )]);
    assert_eq!(analysis.verdict, Verdict::Recoverable);
    assert_eq!(analysis.predictions[0].reason, Reason::NoCoordinatorState);
    assert_eq!(analysis.predictions[0].outcome, Outcome::RollBackRestore);
}

#[test]
fn committed_and_prepared_records_of_one_transaction_without_state_are_torn() {
    let analysis = run(vec![
        table("accounts", vec![prepared(1, "t1", 1, Some("t0"))], vec![]),
        table("history", vec![], vec![committed(7, "t1")]),
    ]);
    assert_eq!(analysis.verdict, Verdict::Inconsistent);
    assert_eq!(codes(&analysis), [Code::TornTransaction]);
    let torn = &analysis.findings[0];
    assert_eq!(torn.tx_id.as_deref(), Some("t1"));
    assert_eq!(torn.table.as_deref(), Some("bank.accounts"));
    assert_eq!(analysis.transactions.torn, 1);
}

#[test]
fn a_committed_record_of_an_aborted_transaction_is_inconsistent() {
    let analysis = run(vec![table(
        "accounts",
        vec![],
        vec![with_row(committed(1, "t1"), 4)],
    )]);
    assert_eq!(analysis.verdict, Verdict::Inconsistent);
    assert_eq!(codes(&analysis), [Code::CommittedButAborted]);
}

#[test]
fn with_write_set_logging_committed_but_aborted_is_ambiguous() {
    let analysis = analyze(
        &Observation {
            tables: vec![table(
                "accounts",
                vec![],
                vec![with_row(committed(1, "t1"), 4)],
            )],
            coordinator: CoordinatorObservation::Present(CoordinatorScan {
                has_write_set: true,
                max_created_at: Some(NOW - 99_500),
                ..CoordinatorScan::default()
            }),
            discovery: vec![],
            storages: vec![],
            at_risk_transactions: None,
            committed_after: None,
        },
        &AnalysisSettings::default(),
    );
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
    assert_eq!(codes(&analysis), [Code::AmbiguousCoordinatorCleanup]);
}

#[test]
fn committed_records_unknown_to_the_coordinator_are_a_warning() {
    let mut observation = table("accounts", vec![], vec![]);
    if let TableOutcome::Scanned(scan) = &mut observation.outcome {
        scan.unconfirmed_other_count = 3;
        scan.unconfirmed_other_samples = vec![committed(1, "t9")];
    }
    let analysis = run(vec![observation]);
    assert_eq!(analysis.verdict, Verdict::Consistent);
    assert_eq!(codes(&analysis), [Code::CommittedWithoutCoordinatorState]);
    assert_eq!(analysis.findings[0].count, Some(3));
    assert_eq!(analysis.findings[0].severity, Severity::Warning);
    assert_eq!(analysis.tables[0].committed_without_coordinator_state, 3);
}

#[test]
fn unknown_states_and_invalid_metadata_are_indeterminate() {
    let mut unknown = prepared(1, "t1", 1, None);
    unknown.meta.tx_state = Some(7);
    let mut no_id = prepared(2, "t2", 1, None);
    no_id.meta.tx_id = None;
    let mut no_prepared_at = prepared(3, "t3", 2, None);
    no_prepared_at.meta.tx_prepared_at = None;
    let analysis = run(vec![table(
        "accounts",
        vec![unknown, no_id, no_prepared_at],
        vec![],
    )]);
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
    assert_eq!(
        codes(&analysis),
        [
            Code::UnknownTxState,
            Code::InvalidMetadata,
            Code::InvalidMetadata
        ]
    );
    assert!(analysis.predictions.is_empty());
}

#[test]
fn a_missing_coordinator_is_indeterminate_never_consistent() {
    let analysis = analyze(
        &Observation {
            tables: vec![table("accounts", vec![], vec![])],
            coordinator: CoordinatorObservation::Missing,
            discovery: vec![],
            storages: vec![],
            at_risk_transactions: None,
            committed_after: None,
        },
        &AnalysisSettings::default(),
    );
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
    assert_eq!(codes(&analysis), [Code::CoordinatorMissing]);
    assert!(matches!(
        analysis.check_status(
            CheckName::TransactionAtomicity,
            Some(&TableRef::new("bank", "accounts"))
        ),
        CheckStatus::NotRun
    ));
}

#[test]
fn a_missing_table_is_a_finding_and_indeterminate() {
    let analysis = run(vec![TableObservation {
        table: TableRef::new("bank", "gone"),
        outcome: TableOutcome::Missing,
    }]);
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
    assert_eq!(codes(&analysis), [Code::TableMissing]);
}

#[test]
fn transactions_prepared_within_the_lifetime_of_the_cut_are_in_flight() {
    let mut fresh = prepared(1, "t1", 1, Some("t0"));
    fresh.meta.tx_prepared_at = Some(NOW - 1_000);
    let analysis = analyze(
        &Observation {
            tables: vec![table(
                "accounts",
                vec![fresh, prepared(2, "t2", 1, None)],
                vec![],
            )],
            coordinator: coordinator(),
            discovery: vec![],
            storages: vec![],
            at_risk_transactions: None,
            committed_after: None,
        },
        &AnalysisSettings {
            as_of: Some(NOW),
            ..AnalysisSettings::default()
        },
    );
    assert_eq!(analysis.verdict, Verdict::Recoverable);
    assert_eq!(analysis.transactions.in_flight_at_cut, 1);
    assert!(analysis.predictions[0].in_flight_at_cut);
    assert!(!analysis.predictions[1].in_flight_at_cut);
    assert_eq!(codes(&analysis), [Code::InFlightAtCut]);
}

#[test]
fn a_group_child_whose_parent_row_is_missing_beside_committed_siblings_is_ambiguous() {
    let parent = "ABCDEFGHIJKLMNOPQRSTUVWX";
    let analysis = run(vec![
        table(
            "accounts",
            vec![prepared(1, &format!("{parent}$c1"), 1, Some("t0"))],
            vec![],
        ),
        table(
            "history",
            vec![],
            vec![committed(2, &format!("{parent}$c2"))],
        ),
    ]);
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
    assert!(codes(&analysis).contains(&Code::AmbiguousGroupParentMissing));
    // ScalarDB itself will still abort the child: the prediction stands.
    assert_eq!(analysis.predictions[0].outcome, Outcome::RollBackRestore);
}

#[test]
fn a_committed_parent_listing_a_child_beside_its_aborted_full_id_row_is_a_finding_not_a_guess() {
    // The state ScalarDB 3.13.0's group commit could leave: parent COMMITTED listing c1, and
    // an ABORTED row under the full id (a lazy reader's abort that raced the group's commit).
    let parent = "ABCDEFGHIJKLMNOPQRSTUVWX";
    let full = format!("{parent}$c1");
    let mut record = with_row(prepared(1, &full, 1, Some("t0")), 4);
    record.coordinator.parent = Some(CoordinatorRow {
        tx_id: parent.into(),
        tx_state: Some(3),
        tx_created_at: Some(NOW - 99_500),
        tx_child_ids: Some("c0,c1".into()),
    });
    let analysis = run(vec![table("accounts", vec![record.clone()], vec![])]);
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
    assert_eq!(codes(&analysis), [Code::GroupCommitConflictingStates]);
    let finding = &analysis.findings[0];
    assert_eq!(finding.tx_id.as_deref(), Some(full.as_str()));
    assert!(finding.message.contains(parent) && finding.message.contains("3.13.0"));
    // ScalarDB's getState follows the parent row: that is the prediction, stated as such.
    assert_eq!(analysis.predictions[0].outcome, Outcome::RollForwardCommit);

    // A parent that does not list the child defers to the full-id row: one outcome, no
    // finding (a delayed child aborted on its own).
    let mut unlisted = record;
    if let Some(row) = unlisted.coordinator.parent.as_mut() {
        row.tx_child_ids = Some("c0,c10".into());
    }
    let analysis = run(vec![table("accounts", vec![unlisted], vec![])]);
    assert!(codes(&analysis).is_empty(), "{:?}", codes(&analysis));
    assert_eq!(analysis.predictions[0].outcome, Outcome::RollBackRestore);
}

#[test]
fn a_table_much_older_than_the_coordinator_is_a_skew_warning() {
    let mut stale = table("accounts", vec![], vec![]);
    if let TableOutcome::Scanned(scan) = &mut stale.outcome {
        scan.max_prepared_at = Some(NOW - 3_600_000);
        scan.max_committed_at = Some(NOW - 3_600_000);
    }
    let analysis = run(vec![stale, table("history", vec![], vec![])]);
    assert_eq!(analysis.verdict, Verdict::Consistent);
    assert_eq!(codes(&analysis), [Code::WatermarkSkew]);
    assert_eq!(analysis.findings[0].table.as_deref(), Some("bank.accounts"));
    assert_eq!(analysis.watermark_skew_ms, Some(3_600_000 - 99_000));
}

#[test]
fn retention_keeps_only_what_the_atomicity_check_needs() {
    let exceptional = [prepared(1, "t1", 1, None)];
    let retention = Retention::from_exceptional(&exceptional);
    let mut scan = TableScan::default();
    retention.file(&mut scan, committed(2, "t1"));
    retention.file(&mut scan, with_row(committed(3, "t2"), 4));
    retention.file(&mut scan, with_row(committed(4, "t3"), 3));
    for id in 10..20 {
        retention.file(&mut scan, committed(id, "t-other"));
    }
    let kept: Vec<i64> = scan
        .unconfirmed_relevant
        .iter()
        .map(|r| r.key.0[0].1.parse().unwrap())
        .collect();
    assert_eq!(kept, [2, 3]);
    assert_eq!(scan.unconfirmed_other_count, 10);
    assert_eq!(scan.unconfirmed_other_samples.len(), SAMPLE_LIMIT);
}

#[test]
fn a_transaction_whose_only_unresolved_records_are_tombstones_is_not_torn() {
    // A delete of an absent key leaves a DELETED tombstone with no before image: recovery
    // deletes it whether the transaction committed or not, so nothing contradicts.
    let analysis = run(vec![
        table("accounts", vec![prepared(1, "t1", 2, None)], vec![]),
        table("history", vec![], vec![committed(7, "t1")]),
    ]);
    assert_eq!(analysis.verdict, Verdict::Recoverable);
    // In flight too: the restore point is estimated from these very records.
    assert_eq!(
        codes(&analysis),
        [Code::CommittedWithoutCoordinatorState, Code::InFlightAtCut]
    );
    assert_eq!(analysis.predictions[0].outcome, Outcome::RollBackDelete);
}

#[test]
fn a_tombstone_beside_a_prepared_record_does_not_hide_a_tear() {
    let analysis = run(vec![
        table(
            "accounts",
            vec![prepared(1, "t1", 2, None), prepared(2, "t1", 1, Some("t0"))],
            vec![],
        ),
        table("history", vec![], vec![committed(7, "t1")]),
    ]);
    assert_eq!(analysis.verdict, Verdict::Inconsistent);
    assert_eq!(codes(&analysis), [Code::TornTransaction]);
}

#[test]
fn contradictory_coordinator_rows_give_a_finding_and_no_prediction() {
    // One PREPARED record joined to a COMMITTED and an ABORTED row of its transaction: the
    // SQL join returns it twice.
    let record = prepared(1, "tx-dup", 1, Some("old"));
    let analysis = run(vec![table(
        "accounts",
        vec![with_row(record.clone(), 3), with_row(record, 4)],
        vec![],
    )]);
    assert!(
        analysis.predictions.is_empty(),
        "{:?}",
        analysis.predictions
    );
    assert_eq!(codes(&analysis), [Code::InvalidCoordinatorRow]);
    let finding = &analysis.findings[0];
    assert_eq!(finding.tx_id.as_deref(), Some("tx-dup"));
    assert_eq!(finding.key.as_ref(), Some(&key(1)));
    assert!(
        finding.message.contains("ABORTED, COMMITTED"),
        "{}",
        finding.message
    );
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
    assert_eq!(analysis.tables[0].unresolved, 1);
    assert_eq!(
        analysis.tables[0].roll_forward + analysis.tables[0].roll_back,
        0
    );
}

#[test]
fn any_duplicate_coordinator_row_is_invalid_even_when_the_states_agree() {
    let record = prepared(1, "tx-dup", 1, Some("old"));
    let analysis = run(vec![table(
        "accounts",
        vec![with_row(record.clone(), 3), with_row(record, 3)],
        vec![],
    )]);
    assert!(analysis.predictions.is_empty());
    assert_eq!(codes(&analysis), [Code::InvalidCoordinatorRow]);
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
}

#[test]
fn duplicated_ids_in_the_coordinator_sample_decide_records_seen_once() {
    let row = |state| CoordinatorRow {
        tx_id: "tx-dup".into(),
        tx_state: Some(state),
        tx_created_at: Some(NOW - 99_500),
        tx_child_ids: None,
    };
    let observation = Observation {
        tables: vec![table(
            "accounts",
            vec![with_row(prepared(1, "tx-dup", 1, Some("old")), 3)],
            vec![with_row(committed(2, "tx-dup"), 4)],
        )],
        coordinator: CoordinatorObservation::Present(CoordinatorScan {
            invalid_rows: vec![row(3), row(4)],
            invalid_count: 2,
            ..match coordinator() {
                CoordinatorObservation::Present(scan) => scan,
                _ => unreachable!(),
            }
        }),
        discovery: vec![],
        storages: vec![],
        at_risk_transactions: None,
        committed_after: None,
    };
    let analysis = analyze(&observation, &AnalysisSettings::default());
    assert!(
        analysis.predictions.is_empty(),
        "{:?}",
        analysis.predictions
    );
    let found = codes(&analysis);
    assert!(
        !found.contains(&Code::CommittedButAborted),
        "a duplicated id is invalid Coordinator data, not evidence: {found:?}"
    );
    assert!(
        analysis.findings.iter().any(
            |f| f.code == Code::InvalidCoordinatorRow && f.message.contains("shares its tx_id")
        ),
        "{:?}",
        analysis.findings
    );
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
}

#[test]
fn a_key_seen_twice_with_different_records_is_invalid_metadata() {
    let first = with_row(prepared(1, "tx-a", 1, Some("old")), 3);
    let second = with_row(prepared(1, "tx-b", 1, Some("old")), 4);
    let analysis = run(vec![table("accounts", vec![first, second], vec![])]);
    assert!(analysis.predictions.is_empty());
    assert_eq!(codes(&analysis), [Code::InvalidMetadata]);
    assert!(analysis.findings[0].message.contains("occurs 2 times"));
}

#[test]
fn an_unreadable_coordinator_or_table_is_indeterminate_with_the_reason() {
    let analysis = analyze(
        &Observation {
            tables: vec![
                table("accounts", vec![prepared(1, "tx", 1, Some("old"))], vec![]),
                TableObservation {
                    table: TableRef::new("bank", "hidden"),
                    outcome: TableOutcome::Denied("permission denied for table hidden".into()),
                },
            ],
            coordinator: CoordinatorObservation::Unreadable {
                table: TableRef::new("coordinator", "state"),
                reason: "permission denied for table state".into(),
            },
            discovery: vec![
                DiscoveryNote::PermissionDenied {
                    object: "scalardb.metadata".into(),
                    reason: "permission denied for table metadata".into(),
                },
                DiscoveryNote::InvalidMetadataRows {
                    table: "scalardb.metadata".into(),
                    rows: 2,
                },
            ],
            storages: vec![],
            at_risk_transactions: None,
            committed_after: None,
        },
        &AnalysisSettings::default(),
    );
    assert_eq!(analysis.verdict, Verdict::Indeterminate);
    assert!(analysis.predictions.is_empty());
    let found = codes(&analysis);
    for code in [
        Code::CoordinatorScanFailed,
        Code::PermissionDenied,
        Code::InvalidScalardbMetadata,
    ] {
        assert!(found.contains(&code), "{code:?} in {found:?}");
    }
    let denied: Vec<_> = analysis
        .findings
        .iter()
        .filter(|f| f.code == Code::PermissionDenied)
        .map(|f| f.table.clone().unwrap())
        .collect();
    assert_eq!(denied, ["bank.hidden", "scalardb.metadata"]);
    assert!(
        analysis
            .findings
            .iter()
            .all(|f| f.code != Code::PermissionDenied || f.message.contains("permission denied"))
    );
}
