//! The storages of a deployment in the analysis: which storage each table, finding and
//! prediction belongs to, each storage's counts and watermarks, and the one finding that is
//! about a storage itself (mapped to, but holding no ScalarDB table). Pure.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Code, Finding, Prediction, TableSummary};
use crate::model::TableRef;

/// One storage as the scan saw it. A single-database scan has one; an observation with
/// none (tests, the protocol model) names no storage anywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageObservation {
    pub name: String,
    /// `postgresql`, `mysql`, `sqlite` or `cassandra`.
    pub kind: String,
    /// Where it is, without a password.
    pub target: String,
    /// ScalarDB reads the Coordinator from this storage.
    pub holds_coordinator: bool,
    /// A namespace or table mapping sends tables here (not only as the default storage).
    pub mapped: bool,
    /// The tables routed here, as discovered (scanned, missing or denied).
    pub tables: Vec<TableRef>,
    /// Tables found here that ScalarDB never reads here, with why.
    pub ignored: Vec<IgnoredTable>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IgnoredTable {
    pub table: TableRef,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct StorageSummary {
    pub name: String,
    pub kind: String,
    pub target: String,
    pub holds_coordinator: bool,
    pub tables: Vec<TableRef>,
    pub records: u64,
    pub unresolved: u64,
    /// This storage's newest writes: across storages, their spread is the cut's skew.
    pub max_tx_prepared_at: Option<i64>,
    pub max_tx_committed_at: Option<i64>,
    pub ignored: Vec<IgnoredTable>,
}

/// Names the storage of every table summary, finding and prediction, adds the findings
/// about storages, and sums each storage's tables.
pub(super) fn attribute(
    storages: &[StorageObservation],
    tables: &mut [TableSummary],
    findings: &mut Vec<Finding>,
    predictions: &mut [Prediction],
) -> Vec<StorageSummary> {
    if storages.is_empty() {
        return Vec::new();
    }
    let mut of_table: BTreeMap<String, &str> = BTreeMap::new();
    for storage in storages {
        for table in &storage.tables {
            of_table.entry(table.to_string()).or_insert(&storage.name);
        }
    }
    let coordinator = storages
        .iter()
        .find(|s| s.holds_coordinator)
        .map(|s| s.name.as_str());
    for table in tables.iter_mut() {
        table.storage = of_table
            .get(&table.table.to_string())
            .map(|s| (*s).to_owned());
    }
    for prediction in predictions.iter_mut() {
        prediction.storage = of_table
            .get(&prediction.table.to_string())
            .map(|s| (*s).to_owned());
    }
    for finding in findings.iter_mut() {
        if finding.storage.is_some() {
            continue;
        }
        let of_its_table = finding.table.as_ref().and_then(|t| of_table.get(t));
        finding.storage = match of_its_table {
            Some(storage) => Some((*storage).to_owned()),
            // The Coordinator's findings (its table is no routed table) are its storage's.
            None if finding.check == super::CheckName::CoordinatorTable => {
                coordinator.map(str::to_owned)
            }
            None => None,
        };
    }
    for storage in storages {
        if storage.mapped && !storage.holds_coordinator && storage.tables.is_empty() {
            let mut finding = Finding::new(
                Code::StorageWithoutTables,
                format!(
                    "the namespace mapping sends tables to storage {} ({}), but it holds no \
                     ScalarDB table: its data is missing from this copy, or the mapping is wrong",
                    storage.name, storage.target
                ),
            );
            finding.storage = Some(storage.name.clone());
            findings.push(finding);
        }
    }
    storages
        .iter()
        .map(|storage| {
            let mine = tables
                .iter()
                .filter(|t| t.storage.as_deref() == Some(storage.name.as_str()));
            let mut summary = StorageSummary {
                name: storage.name.clone(),
                kind: storage.kind.clone(),
                target: storage.target.clone(),
                holds_coordinator: storage.holds_coordinator,
                tables: storage.tables.clone(),
                records: 0,
                unresolved: 0,
                max_tx_prepared_at: None,
                max_tx_committed_at: None,
                ignored: storage.ignored.clone(),
            };
            for table in mine {
                summary.records += table.records;
                summary.unresolved += table.unresolved;
                summary.max_tx_prepared_at =
                    summary.max_tx_prepared_at.max(table.max_tx_prepared_at);
                summary.max_tx_committed_at =
                    summary.max_tx_committed_at.max(table.max_tx_committed_at);
            }
            summary
        })
        .collect()
}
