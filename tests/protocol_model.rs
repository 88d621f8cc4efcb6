//! The analysis checked against an independent model of ScalarDB's Consensus Commit.
//!
//! A simulator written from `shared/scalardb-protocol.md` (`protocol_model/sim.rs`) runs
//! random interleaved transactions over three tables in two namespaces: prepares one record
//! per step, the Coordinator's COMMITTED or ABORTED row, record commits and roll backs one by
//! one, lazy recovery by readers, and crashes between any two steps. Backups are cut from
//! that history, either at one instant or with every table and the Coordinator copied at its
//! own instant, and turned into the crate's `Observation` the way the SQL store does
//! (`protocol_model/observe.rs`). The ground truth (`protocol_model/truth.rs`) is the
//! model's own lazy recovery of the cut compared with the history. None of it reuses the
//! crate's analysis: the crate must agree with the model, not with itself.
//!
//! Left out: group commit, one-phase commit, 3.19 Coordinator clean-up and write-set
//! logging, two-phase-commit participants, and reads (no validation conflicts beyond a
//! record being locked by another transaction's prepare).

#[path = "protocol_model/observe.rs"]
mod observe;
#[path = "protocol_model/sim.rs"]
mod sim;
#[path = "protocol_model/truth.rs"]
mod truth;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use scalardb_verify::analyze::{
    Analysis, AnalysisSettings, Outcome, Verdict, VerdictEffect, analyze,
};
use scalardb_verify::model::{RecordKey, TableRef};

use observe::{observe, record_key, table_ref};
use sim::{
    Behaviour, Fate, History, Initial, KEYS, Script, Slot, TABLES, Tick, TxPlan, Write, simulate,
};
use truth::{Content, Cut, Recovered, Recovery, committed_prefix, recover, tears};

/// Backups cut from each generated history, per property.
const CUTS_PER_CASE: usize = 8;
const SINGLE_INSTANT_CASES: u32 = 2_000;
/// Every cut is checked both as a single-instant and as a skewed cut.
const EVERY_CUT_CASES: u32 = 1_000;
const SOUNDNESS_CASES: u32 = 2_000;
const COMPLETENESS_CASES: u32 = 2_000;
const MEASURED_CASES: u32 = 2_000;

/// CI explores at least 10,000 generated cuts per run.
const CUTS_PER_RUN: usize = CUTS_PER_CASE
    * (SINGLE_INSTANT_CASES as usize
        + 2 * EVERY_CUT_CASES as usize
        + SOUNDNESS_CASES as usize
        + COMPLETENESS_CASES as usize
        + MEASURED_CASES as usize);
const _: () = assert!(CUTS_PER_RUN >= 10_000);

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/protocol_model/proptest-regressions.txt",
        ))),
        ..ProptestConfig::default()
    }
}

fn initial() -> impl Strategy<Value = Initial> {
    prop_oneof![
        2 => Just(Initial::Absent),
        5 => (0..100_i64, 1..=3_i64)
            .prop_map(|(value, version)| Initial::Committed { value, version }),
        2 => (0..100_i64).prop_map(|value| Initial::Imported { value }),
    ]
}

fn tx_plan() -> impl Strategy<Value = TxPlan> {
    let write = (
        0..TABLES.len(),
        0..KEYS,
        prop::option::weighted(0.75, 100..1_000_i64),
    )
        .prop_map(|(table, key, value)| Write { table, key, value });
    let fate = prop_oneof![
        6 => Just(Fate::Commit),
        1 => (0..=4_usize).prop_map(Fate::AbortAfterPrepares),
        2 => (1..=10_usize).prop_map(Fate::CrashAfterSteps),
    ];
    (prop::collection::vec(write, 1..=4), fate).prop_map(|(writes, fate)| {
        // A transaction writes each record at most once.
        let mut distinct: Vec<Write> = Vec::new();
        for write in writes {
            if !distinct
                .iter()
                .any(|w| (w.table, w.key) == (write.table, write.key))
            {
                distinct.push(write);
            }
        }
        TxPlan {
            writes: distinct,
            fate,
        }
    })
}

fn script() -> impl Strategy<Value = Script> {
    let tick = (
        any::<u8>(),
        any::<u8>(),
        // Mostly quick steps; now and then a pause long enough for records to expire.
        prop_oneof![8 => 1..=40_i64, 1 => 5_000..=20_000_i64],
    )
        .prop_map(|(actor, target, pause_ms)| Tick {
            actor,
            target,
            pause_ms,
        });
    (
        any::<(bool, bool)>(),
        prop::collection::vec(initial(), TABLES.len() * KEYS),
        prop::collection::vec(tx_plan(), 1..=6),
        prop::collection::vec(tick, 10..=90),
    )
        .prop_map(
            |((nulls_before_images, stamps_coordinator_time), initial, txs, ticks)| Script {
                behaviour: Behaviour {
                    nulls_before_images,
                    stamps_coordinator_time,
                },
                initial,
                txs,
                ticks,
            },
        )
}

/// Where to cut a history: each number picks a snapshot (modulo their count). A single-instant
/// cut uses the first table's pick for everything.
#[derive(Clone, Copy, Debug)]
struct CutSpec {
    tables: [u16; 3],
    coordinator: u16,
}

impl CutSpec {
    fn pick(history: &History, at: u16) -> usize {
        usize::from(at) % history.snapshots.len()
    }

    fn single(&self, history: &History) -> Cut {
        Cut::single(history, Self::pick(history, self.tables[0]))
    }

    fn skewed(&self, history: &History) -> Cut {
        let tables: Vec<usize> = self
            .tables
            .iter()
            .map(|&at| Self::pick(history, at))
            .collect();
        Cut::new(history, &tables, Self::pick(history, self.coordinator))
    }
}

fn case() -> impl Strategy<Value = (Script, Vec<CutSpec>)> {
    let spec = (any::<[u16; 3]>(), any::<u16>()).prop_map(|(tables, coordinator)| CutSpec {
        tables,
        coordinator,
    });
    (script(), prop::collection::vec(spec, CUTS_PER_CASE))
}

/// The restore point is estimated from the data, as the CLI does by default.
fn analyse(cut: &Cut) -> Analysis {
    analyze(&observe(cut), &AnalysisSettings::default())
}

/// A counterexample to read: the history, the cut and what the crate said.
fn explain(history: &History, cut: &Cut, analysis: &Analysis) -> String {
    let recovered = recover(cut);
    let mut text = format!("\n{history}{cut}model recovery:");
    for (table, records) in recovered.iter().enumerate() {
        let _ = write!(text, "\n  {}:", sim::table_name(table));
        for (key, record) in records.iter().enumerate() {
            let content = match &record.content {
                None => "absent".to_owned(),
                Some((value, tx_id)) => format!(
                    "{} ={}",
                    tx_id.as_deref().unwrap_or("NULL"),
                    value.map_or_else(|| "NULL".to_owned(), |v| v.to_string())
                ),
            };
            let _ = write!(text, " [{key}] {content}");
            if let Some(recovery) = record.recovery {
                let _ = write!(text, " ({recovery:?})");
            }
            text.push(';');
        }
    }
    if truth::only_committed_writes_survive(history, &recovered) {
        let torn: Vec<String> = tears(history, cut, &recovered)
            .iter()
            .map(|tear| {
                let kind = if tear.visible { "visible" } else { "invisible" };
                format!("{} ({kind})", history.tx_ids[tear.tx])
            })
            .collect();
        let _ = write!(text, "\n  torn: {torn:?}");
    }
    let _ = writeln!(text, "\ncrate verdict: {:?}", analysis.verdict);
    for finding in &analysis.findings {
        let _ = writeln!(
            text,
            "  finding {} table={} key={} tx={}: {}",
            finding.code.as_str(),
            finding.table.as_deref().unwrap_or("-"),
            finding
                .key
                .as_ref()
                .map_or("-".to_owned(), ToString::to_string),
            finding.tx_id.as_deref().unwrap_or("-"),
            finding.message
        );
    }
    for prediction in &analysis.predictions {
        let _ = writeln!(
            text,
            "  prediction {}[{}] {}: {:?}",
            prediction.table, prediction.key, prediction.tx_id, prediction.outcome
        );
    }
    text
}

/// `(table, key)` of a record the crate names.
fn place(table: &TableRef, key: &RecordKey) -> (usize, usize) {
    let table = (0..TABLES.len())
        .find(|&t| table_ref(t) == *table)
        .expect("a table of the model");
    let key = (0..KEYS)
        .find(|&k| record_key(k) == *key)
        .expect("a key of the model");
    (table, key)
}

fn predicted_outcomes(analysis: &Analysis) -> BTreeMap<(usize, usize), Outcome> {
    analysis
        .predictions
        .iter()
        .map(|p| (place(&p.table, &p.key), p.outcome))
        .collect()
}

/// The model's recovery of every unresolved record, in the crate's vocabulary.
fn model_outcomes(recovered: &[Vec<Recovered>]) -> BTreeMap<(usize, usize), Outcome> {
    let mut outcomes = BTreeMap::new();
    for (table, records) in recovered.iter().enumerate() {
        for (key, record) in records.iter().enumerate() {
            if let Some(recovery) = record.recovery {
                let outcome = match recovery {
                    Recovery::Commit => Outcome::RollForwardCommit,
                    Recovery::ForwardDelete => Outcome::RollForwardDelete,
                    Recovery::Restore => Outcome::RollBackRestore,
                    Recovery::BackDelete => Outcome::RollBackDelete,
                };
                outcomes.insert((table, key), outcome);
            }
        }
    }
    outcomes
}

/// The cut's data after applying the crate's predictions (values from the stored images,
/// restored `tx_id`s from the predictions).
fn apply_predictions(cut: &Cut, analysis: &Analysis) -> Vec<Vec<Content>> {
    let predictions: BTreeMap<(usize, usize), _> = analysis
        .predictions
        .iter()
        .map(|p| (place(&p.table, &p.key), p))
        .collect();
    cut.tables
        .iter()
        .enumerate()
        .map(|(table, slots)| {
            slots
                .iter()
                .enumerate()
                .map(|(key, slot)| {
                    let Slot::Present(row) = slot else {
                        return None;
                    };
                    let after = Some((row.after.value, row.after.tx_id.clone()));
                    match predictions.get(&(table, key)).map(|p| (p.outcome, p)) {
                        None | Some((Outcome::RollForwardCommit, _)) => after,
                        Some((Outcome::RollForwardDelete | Outcome::RollBackDelete, _)) => None,
                        Some((Outcome::RollBackRestore, p)) => {
                            Some((row.before.value, p.restores_tx_id.clone()))
                        }
                    }
                })
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(config(SINGLE_INSTANT_CASES))]

    /// A backup of every table and the Coordinator at one instant t is never inconsistent: it
    /// is consistent when no record is PREPARED or DELETED and recoverable otherwise, and the
    /// crate's predictions recover it to exactly the data of the transactions whose COMMITTED
    /// Coordinator row was written at or before t (values and `tx_id`s, record by record).
    #[test]
    fn a_single_instant_backup_recovers_to_the_transactions_committed_by_then(
        (script, specs) in case()
    ) {
        let history = simulate(&script);
        for spec in &specs {
            let cut = spec.single(&history);
            let analysis = analyse(&cut);
            let expected_verdict = if cut.has_unresolved() {
                Verdict::Recoverable
            } else {
                Verdict::Consistent
            };
            prop_assert_eq!(
                analysis.verdict,
                expected_verdict,
                "{}",
                explain(&history, &cut, &analysis)
            );
            prop_assert_eq!(
                apply_predictions(&cut, &analysis),
                committed_prefix(&history, cut.coordinator_time),
                "{}",
                explain(&history, &cut, &analysis)
            );
        }
    }
}

proptest! {
    #![proptest_config(config(EVERY_CUT_CASES))]

    /// At every cut, single-instant or skewed, the crate predicts exactly the PREPARED and
    /// DELETED records, and for each the outcome ScalarDB's lazy recovery has: roll forward
    /// (commit, or physical delete of a DELETED record) when the Coordinator copy says
    /// COMMITTED, otherwise roll back (restore the before image, or delete the record when it
    /// has none).
    #[test]
    fn every_prediction_is_what_lazy_recovery_does_to_that_record((script, specs) in case()) {
        let history = simulate(&script);
        for spec in &specs {
            for cut in [spec.single(&history), spec.skewed(&history)] {
                let analysis = analyse(&cut);
                let recovered = recover(&cut);
                prop_assert_eq!(
                    predicted_outcomes(&analysis),
                    model_outcomes(&recovered),
                    "{}",
                    explain(&history, &cut, &analysis)
                );
                for prediction in &analysis.predictions {
                    let (table, key) = place(&prediction.table, &prediction.key);
                    let Slot::Present(row) = &cut.tables[table][key] else {
                        unreachable!("predictions name stored records");
                    };
                    let restores = (prediction.outcome == Outcome::RollBackRestore)
                        .then(|| row.before.tx_id.clone())
                        .flatten();
                    prop_assert_eq!(
                        &prediction.restores_tx_id,
                        &restores,
                        "{}",
                        explain(&history, &cut, &analysis)
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(SOUNDNESS_CASES))]

    /// No false alarm: a backup whose tables and Coordinator were copied at different
    /// instants is reported inconsistent only if recovering it really tears a committed
    /// transaction (some of its writes kept, others lost), and every finding that makes it
    /// inconsistent names such a transaction. Otherwise the verdict is consistent or
    /// recoverable, or indeterminate with a finding that names the cut's risk (the cut's own
    /// evidence shows it was not taken at one instant: `analyze/cut.rs`).
    #[test]
    fn a_skewed_backup_is_inconsistent_only_if_a_transaction_is_torn((script, specs) in case()) {
        let history = simulate(&script);
        for spec in &specs {
            let cut = spec.skewed(&history);
            let analysis = analyse(&cut);
            let torn = tears(&history, &cut, &recovered_checked(&history, &cut));
            let torn_ids: BTreeSet<&str> =
                torn.iter().map(|tear| history.tx_ids[tear.tx].as_str()).collect();
            for finding in analysis
                .findings
                .iter()
                .filter(|f| f.code.verdict_effect() == VerdictEffect::Inconsistent)
            {
                let tx_id = finding.tx_id.as_deref().unwrap_or_default();
                if torn_ids.contains(tx_id) {
                    continue;
                }
                // Known disagreement with the crate, reported to its owners: a DELETED record
                // without a before image (the tombstone of a delete of an absent key) ends
                // absent whether recovery rolls it forward or back, so rolling it back tears
                // nothing.
                prop_assert!(
                    !rolls_back_only_tombstones(&cut, tx_id),
                    "CRATE FALSE ALARM (tombstones): {} on {tx_id}, whose only records \
                     recovery rolls back are DELETED tombstones without a before image; \
                     deleting them leaves the same data as rolling them forward, so the \
                     transaction is whole after recovery{}",
                    finding.code.as_str(),
                    explain(&history, &cut, &analysis)
                );
                prop_assert!(
                    false,
                    "false alarm: {} on {tx_id}, but recovery tears no such transaction{}",
                    finding.code.as_str(),
                    explain(&history, &cut, &analysis)
                );
            }
            if analysis.verdict != Verdict::Inconsistent && !exposes_the_cut(&analysis) {
                prop_assert_eq!(
                    analysis.verdict,
                    if cut.has_unresolved() {
                        Verdict::Recoverable
                    } else {
                        Verdict::Consistent
                    },
                    "{}",
                    explain(&history, &cut, &analysis)
                );
            }
        }
    }
}

/// Whether every record of `tx_id` that recovery of `cut` rolls back is a DELETED record
/// without a before image.
fn rolls_back_only_tombstones(cut: &Cut, tx_id: &str) -> bool {
    let recovered = recover(cut);
    cut.tables
        .iter()
        .zip(&recovered)
        .flat_map(|(slots, records)| slots.iter().zip(records))
        .filter_map(|(slot, record)| match slot {
            Slot::Present(row) if row.after.tx_id.as_deref() == Some(tx_id) => {
                Some((row, record.recovery?))
            }
            _ => None,
        })
        .filter(|(_, recovery)| matches!(recovery, Recovery::Restore | Recovery::BackDelete))
        .all(|(row, _)| row.after.tx_state == Some(sim::DELETED) && !row.has_before_image())
}

proptest! {
    #![proptest_config(config(COMPLETENESS_CASES))]

    /// Every tear the metadata shows is caught: when records carrying a committed
    /// transaction's id both keep and lose its writes after recovery (its COMMITTED records
    /// stay, its PREPARED/DELETED ones are rolled back because the Coordinator copy does not
    /// know it committed), the verdict is inconsistent and a finding names that transaction.
    #[test]
    fn a_skewed_backup_with_a_visible_tear_is_inconsistent((script, specs) in case()) {
        let history = simulate(&script);
        for spec in &specs {
            let cut = spec.skewed(&history);
            let analysis = analyse(&cut);
            let torn = tears(&history, &cut, &recovered_checked(&history, &cut));
            for tear in torn.iter().filter(|tear| tear.visible) {
                let tx_id = history.tx_ids[tear.tx].as_str();
                prop_assert!(
                    analysis.findings.iter().any(|f| {
                        f.code.verdict_effect() == VerdictEffect::Inconsistent
                            && f.tx_id.as_deref() == Some(tx_id)
                    }),
                    "{tx_id} is visibly torn but no finding names it{}",
                    explain(&history, &cut, &analysis)
                );
                prop_assert_eq!(
                    analysis.verdict,
                    Verdict::Inconsistent,
                    "{} is visibly torn{}",
                    tx_id,
                    explain(&history, &cut, &analysis)
                );
            }
        }
    }
}

fn recovered_checked(history: &History, cut: &Cut) -> Vec<Vec<Recovered>> {
    let recovered = recover(cut);
    assert!(
        truth::only_committed_writes_survive(history, &recovered),
        "the simulator resurrected an aborted write\n{history}{cut}"
    );
    recovered
}

/// The analysis says indeterminate because the cut's own evidence shows it was not one
/// instant (`analyze/cut.rs`).
fn exposes_the_cut(analysis: &scalardb_verify::analyze::Analysis) -> bool {
    use scalardb_verify::analyze::Code;
    analysis.verdict == Verdict::Indeterminate
        && analysis.findings.iter().any(|f| {
            matches!(
                f.code,
                Code::CoordinatorBehindData | Code::TableCopiedEarly | Code::CutWindowAtRisk
            )
        })
}

/// Tears the metadata cannot show are measured, not asserted: when the records that lost a
/// transaction's writes never carried its id in the backup (say a table copied before the
/// transaction wrote it), a metadata-only verifier cannot see the tear (ScalarDB 3.19's
/// write-set logging would). The run prints how many skewed cuts had only such tears and
/// were still reported consistent or recoverable; it fails only if the generator stops
/// producing tears at all, visible or not, since the properties above would then be vacuous.
#[test]
fn invisible_tears_are_measured() {
    let cuts = AtomicU64::new(0);
    let torn_cuts = AtomicU64::new(0);
    let visible_cuts = AtomicU64::new(0);
    let invisible_missed = AtomicU64::new(0);
    let invisible_flagged = AtomicU64::new(0);
    let invisible_exposed = AtomicU64::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..config(MEASURED_CASES)
    });
    runner
        .run(&case(), |(script, specs)| {
            let history = simulate(&script);
            for spec in &specs {
                let cut = spec.skewed(&history);
                let torn = tears(&history, &cut, &recovered_checked(&history, &cut));
                cuts.fetch_add(1, Ordering::Relaxed);
                if torn.is_empty() {
                    continue;
                }
                torn_cuts.fetch_add(1, Ordering::Relaxed);
                let counter = if torn.iter().any(|tear| tear.visible) {
                    &visible_cuts
                } else if analyse(&cut).verdict == Verdict::Inconsistent {
                    // Flagged through another transaction's finding.
                    &invisible_flagged
                } else if exposes_the_cut(&analyse(&cut)) {
                    &invisible_exposed
                } else {
                    &invisible_missed
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .expect("measuring never fails a case");
    let cuts = cuts.into_inner();
    let torn = torn_cuts.into_inner();
    let visible = visible_cuts.into_inner();
    let missed = invisible_missed.into_inner();
    let flagged = invisible_flagged.into_inner();
    let exposed = invisible_exposed.into_inner();
    let percent = |part: u64, whole: u64| {
        let exact = |n: u64| f64::from(u32::try_from(n).expect("counts stay below 2^32"));
        100.0 * exact(part) / exact(whole.max(1))
    };
    eprintln!(
        "invisible tears: {missed} of {cuts} skewed cuts ({:.1}%) had only tears the metadata \
         cannot show and were reported consistent or recoverable ({:.1}% of the {torn} torn \
         cuts); {visible} cuts were visibly torn, {flagged} had only invisible tears but were \
         flagged inconsistent through another finding, {exposed} were made indeterminate by \
         the cut's own evidence",
        percent(missed, cuts),
        percent(missed, torn),
    );
    assert!(
        visible > 0 && missed + exposed > 0,
        "the generator no longer produces both kinds of tear: {visible} visibly torn cuts, \
         {} with only invisible tears, in {cuts} skewed cuts",
        missed + exposed
    );
}
