use super::*;

const T: &str = "tx-transfer";
const C: i64 = 1_000_000;

fn accounts() -> TableRef {
    TableRef::new("bank", "accounts")
}

fn key(id: &str) -> RecordKey {
    RecordKey(vec![("id".to_owned(), id.to_owned())])
}

fn committed(tx_id: &str, at: i64, version: i64) -> RecordMeta {
    RecordMeta {
        tx_id: Some(tx_id.to_owned()),
        tx_state: Some(3),
        tx_version: Some(version),
        tx_prepared_at: Some(at - 5),
        tx_committed_at: Some(at),
        ..RecordMeta::default()
    }
}

fn transfer() -> WrittenTransaction {
    WrittenTransaction {
        tx_id: T.to_owned(),
        created_at: C,
        records: vec![(accounts(), key("1")), (accounts(), key("2"))],
    }
}

fn run(found: Vec<(&str, Found)>) -> WriteSetProof {
    let found = found
        .into_iter()
        .map(|(id, f)| ((accounts(), key(id)), f))
        .collect();
    prove(&[transfer()], &found, &[], &[], WriteSetSummary::default())
}

fn codes(proof: &WriteSetProof) -> Vec<Code> {
    proof.findings.iter().map(|f| f.code).collect()
}

#[test]
fn records_at_its_version_or_later_prove_the_transaction() {
    let proof = run(vec![
        ("1", Found::Record(committed(T, C, 2))),
        ("2", Found::Record(committed("later", C + 7, 3))),
    ]);
    assert!(proof.findings.is_empty(), "{:?}", proof.findings);
    assert_eq!(proof.transactions[T], TxProof::Proven);
    assert_eq!(proof.summary.proven, 1);
    assert_eq!(proof.summary.records_looked_up, 2);
}

#[test]
fn an_older_committed_version_is_a_tear_naming_record_versions_and_times() {
    let proof = run(vec![
        ("1", Found::Record(committed(T, C, 2))),
        ("2", Found::Record(committed("earlier", C - 300, 1))),
    ]);
    assert_eq!(codes(&proof), vec![Code::TornTransactionMissingWrite]);
    let finding = &proof.findings[0];
    assert_eq!(finding.severity, crate::analyze::Severity::Error);
    assert_eq!(finding.key.as_ref(), Some(&key("2")));
    assert_eq!(finding.tx_id.as_deref(), Some(T));
    assert_eq!(finding.table.as_deref(), Some("bank.accounts"));
    for part in [
        "earlier",
        "tx_version 1",
        &(C - 300).to_string(),
        &C.to_string(),
    ] {
        assert!(
            finding.message.contains(part),
            "{part}: {}",
            finding.message
        );
    }
    assert_eq!(proof.transactions[T], TxProof::Torn);
    assert_eq!(proof.summary.torn, 1);
}

#[test]
fn a_prepared_record_of_the_transaction_itself_is_rolled_forward() {
    let mut prepared = committed(T, C, 2);
    prepared.tx_state = Some(1);
    prepared.tx_committed_at = Some(C - 900);
    let proof = run(vec![
        ("1", Found::Record(prepared)),
        ("2", Found::Record(committed(T, C, 2))),
    ]);
    assert!(proof.findings.is_empty());
    assert_eq!(proof.transactions[T], TxProof::Proven);
}

#[test]
fn a_later_prepare_on_its_version_or_after_its_commit_proves_it() {
    let mut on_its_version = committed("next", C - 1, 3);
    on_its_version.tx_state = Some(1);
    on_its_version.before_tx_id = Some(T.to_owned());
    let mut after = committed("next2", C - 50, 3);
    after.tx_state = Some(2);
    after.tx_prepared_at = Some(C + 2);
    after.before_tx_id = Some("someone".to_owned());
    let proof = run(vec![
        ("1", Found::Record(on_its_version)),
        ("2", Found::Record(after)),
    ]);
    assert!(proof.findings.is_empty(), "{:?}", proof.findings);
}

#[test]
fn what_cannot_be_ordered_is_a_warning_that_says_so() {
    let mut prepared_before = committed("other", C - 50, 3);
    prepared_before.tx_state = Some(1);
    prepared_before.tx_prepared_at = Some(C - 10);
    prepared_before.before_tx_id = Some("older".to_owned());
    let proof = run(vec![
        ("1", Found::Record(committed("same-ms", C, 3))),
        ("2", Found::Record(prepared_before)),
    ]);
    assert_eq!(
        codes(&proof),
        vec![Code::WriteSetAmbiguous, Code::WriteSetAmbiguous]
    );
    assert!(
        proof
            .findings
            .iter()
            .all(|f| f.severity == crate::analyze::Severity::Warning
                && f.code.verdict_effect() == crate::analyze::VerdictEffect::None)
    );
    assert!(proof.findings[0].message.contains("cannot be told"));
    assert_eq!(proof.transactions[T], TxProof::Ambiguous);
}

#[test]
fn an_absent_record_may_have_been_deleted_and_is_no_finding() {
    let proof = run(vec![
        ("1", Found::Record(committed(T, C, 2))),
        ("2", Found::Absent),
    ]);
    assert!(proof.findings.is_empty());
    assert_eq!(proof.transactions[T], TxProof::Unverified);
    assert_eq!(proof.summary.records_absent, 1);
    assert_eq!(proof.summary.unverified, 1);
}

#[test]
fn null_metadata_where_it_wrote_is_a_tear() {
    let proof = run(vec![
        ("1", Found::Record(committed(T, C, 2))),
        ("2", Found::Record(RecordMeta::default())),
    ]);
    assert_eq!(codes(&proof), vec![Code::TornTransactionMissingWrite]);
}

#[test]
fn a_tear_outranks_ambiguity_and_absence() {
    let tx = WrittenTransaction {
        records: vec![
            (accounts(), key("1")),
            (accounts(), key("2")),
            (accounts(), key("3")),
        ],
        ..transfer()
    };
    let found = [
        ("1", Found::Absent),
        ("2", Found::Record(committed("same", C, 1))),
        ("3", Found::Record(committed("old", C - 1, 1))),
    ]
    .into_iter()
    .map(|(id, f)| ((accounts(), key(id)), f))
    .collect();
    let proof = prove(&[tx], &found, &[], &[], WriteSetSummary::default());
    assert_eq!(proof.transactions[T], TxProof::Torn);
}

#[test]
fn undecodable_write_sets_and_aborted_records_outside_the_write_set_are_findings() {
    let aborted = AbortedWriteSet {
        tx_id: "failed".to_owned(),
        written: [(accounts(), key("1"))].into_iter().collect(),
        unresolved: vec![
            (accounts(), key("1"), TxState::Prepared),
            (accounts(), key("9"), TxState::Deleted),
        ],
    };
    let bad = Undecodable {
        tx_id: "garbled".to_owned(),
        reason: "decode the write set as ScalarDB 3.19.1's protobuf".to_owned(),
    };
    let proof = prove(
        &[],
        &HashMap::new(),
        &[bad],
        &[aborted],
        WriteSetSummary::default(),
    );
    assert_eq!(
        codes(&proof),
        vec![Code::WriteSetUndecodable, Code::AbortedWriteOutsideWriteSet]
    );
    assert_eq!(proof.findings[0].tx_id.as_deref(), Some("garbled"));
    assert_eq!(proof.findings[1].key.as_ref(), Some(&key("9")));
    assert!(proof.findings[1].message.contains("finishTransaction"));
    assert_eq!(proof.summary.undecodable, 1);
    assert_eq!(proof.summary.aborted_checked, 1);
}

fn tx_at(id: usize, created_at: i64, table: &TableRef) -> WrittenTransaction {
    WrittenTransaction {
        tx_id: format!("tx-{id}"),
        created_at,
        records: vec![(table.clone(), key(&id.to_string()))],
    }
}

#[test]
fn the_at_risk_set_keeps_all_when_few_and_only_the_risky_when_many() {
    let busy = accounts();
    let quiet = TableRef::new("bank", "ledger");
    let watermarks = [(busy.clone(), Some(10_000_000)), (quiet.clone(), Some(500))]
        .into_iter()
        .collect();
    let mut few = AtRiskSet::new(watermarks, 1_000);
    few.add(tx_at(0, 1, &busy));
    let (kept, summary) = few.finish();
    assert_eq!(kept.len(), 1);
    assert!(summary.at_risk_rule.starts_with("all"));

    let watermarks = [(busy.clone(), Some(10_000_000)), (quiet.clone(), Some(500))]
        .into_iter()
        .collect();
    let mut many = AtRiskSet::new(watermarks, 1_000);
    assert_eq!(many.floor(), Some(-500));
    let n = CHECK_ALL_BELOW + 100;
    for i in 0..n {
        // Old writes to the busy table: copied whole.
        many.add(tx_at(i, 1_000 + i64::try_from(i).unwrap(), &busy));
    }
    // Near the busy table's newest write, and after the quiet table's: at risk.
    many.add(tx_at(n, 9_999_500, &busy));
    many.add(tx_at(n + 1, 600, &quiet));
    let (kept, summary) = many.finish();
    let ids: Vec<&str> = kept.iter().map(|t| t.tx_id.as_str()).collect();
    assert_eq!(ids, vec![format!("tx-{n}"), format!("tx-{}", n + 1)]);
    assert_eq!(summary.committed_with_write_set, n as u64 + 2);
    assert_eq!(summary.skipped_not_at_risk, n as u64);
    assert!(summary.at_risk_rule.contains("1000 ms"));
}

#[test]
fn a_table_never_scanned_or_empty_puts_its_writers_at_risk() {
    let busy = accounts();
    let mut set = AtRiskSet::new(
        [
            (busy.clone(), Some(10_000_000)),
            (TableRef::new("bank", "empty"), None),
        ]
        .into_iter()
        .collect(),
        0,
    );
    assert_eq!(set.floor(), None);
    assert!(set.is_at_risk(&tx_at(1, 5, &TableRef::new("bank", "empty"))));
    assert!(set.is_at_risk(&tx_at(2, 5, &TableRef::new("other", "unknown"))));
    assert!(!set.is_at_risk(&tx_at(3, 5, &busy)));
    set.add(tx_at(3, 5, &busy));
    assert_eq!(set.finish().0.len(), 1);
}

#[test]
fn a_transaction_inside_the_cut_window_is_never_skipped_by_the_bounded_work_rule() {
    let busy = accounts();
    let watermarks = [(busy.clone(), Some(10_000_000))].into_iter().collect();
    // Long before the table's newest write, but inside the cut window.
    let mut set = AtRiskSet::new(watermarks, 1_000).with_window(Some((2_000, 3_000)));
    assert_eq!(
        set.floor(),
        Some(2_000),
        "the floor reaches back to the window"
    );
    let n = CHECK_ALL_BELOW + 100;
    for i in 0..n {
        set.add(tx_at(i, 1_000, &busy));
    }
    set.add(tx_at(n, 2_500, &busy));
    set.add(tx_at(n + 1, 3_001, &busy));
    let (kept, summary) = set.finish();
    let ids: Vec<&str> = kept.iter().map(|t| t.tx_id.as_str()).collect();
    assert_eq!(ids, vec![format!("tx-{n}")]);
    assert_eq!(summary.skipped_not_at_risk, n as u64 + 1);
}

/// The summary's rule names the cut window's exemption from the bounded-work rule.
#[test]
fn the_at_risk_rule_names_the_cut_window_when_there_is_one() {
    let bounded = at_risk_rule(false, 60_000, Some((1_000, 2_000)));
    assert!(
        bounded.contains("60000 ms before") && bounded.contains("cut window (1000 to 2000 ms)"),
        "{bounded}"
    );
    assert!(!at_risk_rule(false, 60_000, None).contains("cut window"));
    // Every write set is checked anyway: the window adds nothing.
    assert!(!at_risk_rule(true, 60_000, Some((1_000, 2_000))).contains("cut window"));
}
