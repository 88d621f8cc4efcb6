//! JUnit XML: a test suite per check, a test case per table, so CI dashboards show which
//! check failed on which table. A check that could not run is an error, never a pass.

use std::io::{self, Write};

use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};

use super::{CheckOutcome, Report};

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut junit = JunitReport::new("scalardb-verify");
    let mut suites: Vec<TestSuite> = Vec::new();
    for check in &report.checks {
        let name = check.check.as_str();
        let position = match suites.iter().position(|s| s.name.as_str() == name) {
            Some(position) => position,
            None => {
                suites.push(TestSuite::new(name));
                suites.len() - 1
            }
        };
        let status = match check.outcome {
            CheckOutcome::Passed => TestCaseStatus::success(),
            CheckOutcome::Failed => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(check.messages.first().cloned().unwrap_or_default())
                    .set_description(check.messages.join("\n"));
                status
            }
            CheckOutcome::NotRun => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(
                    "the check could not run (table not scanned or Coordinator table missing)",
                );
                status
            }
        };
        let mut case = TestCase::new(check.table.as_str(), status);
        case.set_classname(format!("scalardb-verify.{name}"));
        if let Some(storage) = &check.storage {
            case.add_property(quick_junit::Property::new("storage", storage.as_str()));
        }
        if check.outcome == CheckOutcome::Passed && !check.messages.is_empty() {
            case.set_system_out(check.messages.join("\n"));
        }
        suites[position].add_test_case(case);
    }
    if let Some(drill) = &report.drill {
        suites.push(drill_suite(drill));
    }
    junit.add_test_suites(suites);
    junit.serialize(&mut *out).map_err(io::Error::other)?;
    writeln!(out)
}

/// The drill's own checks: the restore against the RTO, the rehearsal, each invariant.
fn drill_suite(drill: &crate::drill::DrillSection) -> TestSuite {
    let mut suite = TestSuite::new("drill");
    let case = |name: &str, failure: Option<String>| {
        let status = match failure {
            None => TestCaseStatus::success(),
            Some(message) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(message);
                status
            }
        };
        let mut case = TestCase::new(name, status);
        case.set_classname("scalardb-verify.drill");
        case
    };
    suite.add_test_case(case(
        "restore",
        (drill.restore_within_rto == Some(false)).then(|| {
            format!(
                "restore took {:.1} s, over the RTO of {} s",
                drill.restore_seconds,
                drill.rto_seconds.unwrap_or_default()
            )
        }),
    ));
    if let Some(recovery) = &drill.recovery {
        suite.add_test_case(case(
            "recovery-rehearsal",
            (!recovery.succeeded).then(|| {
                format!(
                    "{} record(s) still unresolved after the rehearsal; unexpected writes: {}",
                    recovery.unresolved_after,
                    recovery.writes.unexpected.join("; ")
                )
            }),
        ));
    }
    for invariant in &drill.invariants {
        suite.add_test_case(case(
            &format!("invariant {}", invariant.name),
            (!invariant.passed).then(|| invariant.message.clone()),
        ));
    }
    suite
}
