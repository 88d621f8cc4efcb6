//! Node by node: do the snapshots of a Cassandra cluster's nodes agree?
//!
//! Each node's snapshot is restored on its own and every record is compared across the
//! nodes that hold a copy. Replicas written by one transaction and snapshotted at one
//! moment hold the same copy. A copy that is PREPARED on one node and COMMITTED on
//! another, or an older version on one node than on another, shows the snapshots were taken
//! at different moments: restoring each node from its own snapshot gives replicas that
//! disagree, and which copy a reader sees depends on which replicas answer. ScalarDB's
//! backup guide requires a paused cluster for node snapshots for exactly this reason.
//!
//! A record held by some nodes only is counted, never judged: with a replication factor
//! below the number of nodes that is how data is placed.
//!
//! Pure: records in, a comparison and findings out.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Code, Finding, SAMPLE_LIMIT};
use crate::model::{RecordKey, StoredState, TableRef, TxState};

/// One node's copy of a record: what the comparison looks at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct NodeCopy {
    pub tx_id: Option<String>,
    pub tx_state: Option<i64>,
    pub tx_version: Option<i64>,
    pub tx_prepared_at: Option<i64>,
    pub tx_committed_at: Option<i64>,
}

impl NodeCopy {
    /// When this copy was last written: its commit, else its prepare.
    fn written_at(&self) -> Option<i64> {
        self.tx_committed_at.max(self.tx_prepared_at)
    }

    fn same_version(&self, other: &Self) -> bool {
        self.tx_id == other.tx_id
            && self.tx_state == other.tx_state
            && self.tx_version == other.tx_version
    }

    /// Orders copies from the oldest to the newest: by version, then by the time of the
    /// last write, then COMMITTED after PREPARED/DELETED (the commit of the same write).
    fn recency(&self) -> (Option<i64>, Option<i64>, bool) {
        let committed = matches!(
            StoredState::from_column(self.tx_state),
            StoredState::Known(TxState::Committed) | StoredState::Null
        );
        (self.tx_version, self.written_at(), committed)
    }

    fn state_name(&self) -> String {
        StoredState::from_column(self.tx_state).to_string()
    }
}

/// A record whose copies differ, with every node's copy (`None`: the node has none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Divergence {
    pub table: String,
    pub key: RecordKey,
    pub copies: Vec<NodeCopyView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct NodeCopyView {
    pub node: String,
    pub copy: Option<NodeCopy>,
    /// This copy is older than the newest copy of the record.
    pub behind: bool,
}

/// One node's side of the comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct NodeSummary {
    pub name: String,
    pub records: u64,
    /// The newest `tx_prepared_at`/`tx_committed_at` in the node's snapshot.
    pub newest_write_ms: Option<i64>,
    /// Records of which this node holds an older copy than another node.
    pub behind: u64,
}

/// The outcome of comparing the nodes' snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct NodeComparison {
    pub nodes: Vec<NodeSummary>,
    /// Distinct records seen on any node.
    pub records: u64,
    /// Records whose copies differ between nodes.
    pub divergent: u64,
    /// Records present on some nodes only (normal when the replication factor is lower
    /// than the number of nodes).
    pub on_some_nodes_only: u64,
    /// The largest time between a record's newest copy and an older copy of it: how far
    /// apart the snapshots were taken, at least.
    pub max_skew_ms: Option<i64>,
    /// The newest write of the most recent node minus that of the least recent one.
    pub newest_write_spread_ms: Option<i64>,
    /// Up to `SAMPLE_LIMIT` divergent records per table, smallest keys first.
    pub evidence: Vec<Divergence>,
    #[serde(skip)]
    tables: BTreeMap<String, TableTally>,
}

impl NodeComparison {
    /// One `node-snapshots-skewed` finding per table whose copies differ.
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (table, tally) in &self.tables {
            let Some(example) = self.evidence.iter().find(|d| &d.table == table) else {
                continue;
            };
            let describe = |view: &NodeCopyView| match &view.copy {
                Some(copy) => format!(
                    "{} on {} (version {})",
                    copy.state_name(),
                    view.node,
                    copy.tx_version.map_or("NULL".to_owned(), |v| v.to_string())
                ),
                None => format!("absent on {}", view.node),
            };
            let copies: Vec<String> = example.copies.iter().map(describe).collect();
            let newest = example
                .copies
                .iter()
                .filter(|v| !v.behind)
                .find_map(|v| v.copy.as_ref());
            let mut finding = Finding::new(
                Code::NodeSnapshotsSkewed,
                format!(
                    "{} record(s) differ between the nodes' snapshots (for example {}), \
                     up to {} ms apart: the snapshots were not taken at one consistent point, \
                     and restoring each node from its own snapshot leaves replicas that \
                     disagree (ScalarDB requires a paused cluster for node snapshots)",
                    tally.divergent,
                    copies.join(", "),
                    tally.max_skew_ms.unwrap_or(0)
                ),
            )
            .table(table)
            .key(&example.key)
            .count(tally.divergent);
            if let Some(newest) = newest {
                finding = finding
                    .tx_id(newest.tx_id.as_deref())
                    .tx_state(newest.state_name());
            }
            findings.push(finding);
        }
        findings
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct TableTally {
    divergent: u64,
    max_skew_ms: Option<i64>,
}

/// Builds a [`NodeComparison`] from records fed one at a time, each with every node's copy.
/// Memory: the tallies and the evidence samples only.
pub struct NodeComparer {
    nodes: Vec<NodeSummary>,
    records: u64,
    divergent: u64,
    on_some_nodes_only: u64,
    max_skew_ms: Option<i64>,
    tables: BTreeMap<String, TableTally>,
    evidence: BTreeMap<String, Vec<Divergence>>,
}

impl NodeComparer {
    pub fn new(node_names: impl IntoIterator<Item = String>) -> Self {
        Self {
            nodes: node_names
                .into_iter()
                .map(|name| NodeSummary {
                    name,
                    records: 0,
                    newest_write_ms: None,
                    behind: 0,
                })
                .collect(),
            records: 0,
            divergent: 0,
            on_some_nodes_only: 0,
            max_skew_ms: None,
            tables: BTreeMap::new(),
            evidence: BTreeMap::new(),
        }
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// One record of `table`: `copies[i]` is node `i`'s copy, `None` where it has none.
    pub fn record(&mut self, table: &TableRef, key: &RecordKey, copies: &[Option<NodeCopy>]) {
        debug_assert_eq!(copies.len(), self.nodes.len());
        self.records += 1;
        let mut present = 0;
        for (node, copy) in self.nodes.iter_mut().zip(copies) {
            if let Some(copy) = copy {
                present += 1;
                node.records += 1;
                node.newest_write_ms = node.newest_write_ms.max(copy.written_at());
            }
        }
        if present < self.nodes.len() {
            self.on_some_nodes_only += 1;
        }
        let Some(newest) = copies
            .iter()
            .flatten()
            .max_by(|a, b| a.recency().cmp(&b.recency()))
        else {
            return;
        };
        let behind: Vec<bool> = copies
            .iter()
            .map(|c| c.as_ref().is_some_and(|c| !c.same_version(newest)))
            .collect();
        if !behind.contains(&true) {
            return;
        }
        let skew = copies
            .iter()
            .zip(&behind)
            .filter(|(_, behind)| **behind)
            .filter_map(|(copy, _)| copy.as_ref()?.written_at())
            .min()
            .and_then(|oldest| Some(newest.written_at()? - oldest))
            .map(|ms| ms.max(0));
        self.divergent += 1;
        self.max_skew_ms = self.max_skew_ms.max(skew);
        for (node, behind) in self.nodes.iter_mut().zip(&behind) {
            if *behind {
                node.behind += 1;
            }
        }
        let table_name = table.to_string();
        let tally = self.tables.entry(table_name.clone()).or_default();
        tally.divergent += 1;
        tally.max_skew_ms = tally.max_skew_ms.max(skew);
        let samples = self.evidence.entry(table_name.clone()).or_default();
        let fits = samples.len() < SAMPLE_LIMIT;
        if fits || samples.last().is_some_and(|last| key < &last.key) {
            let divergence = Divergence {
                table: table_name,
                key: key.clone(),
                copies: self
                    .nodes
                    .iter()
                    .zip(copies)
                    .zip(&behind)
                    .map(|((node, copy), behind)| NodeCopyView {
                        node: node.name.clone(),
                        copy: copy.clone(),
                        behind: *behind,
                    })
                    .collect(),
            };
            let at = samples.partition_point(|d| d.key < divergence.key);
            samples.insert(at, divergence);
            samples.truncate(SAMPLE_LIMIT);
        }
    }

    /// Folds another comparer of the same nodes in (a part of the ring compared elsewhere).
    pub fn merge(&mut self, other: Self) {
        self.records += other.records;
        self.divergent += other.divergent;
        self.on_some_nodes_only += other.on_some_nodes_only;
        self.max_skew_ms = self.max_skew_ms.max(other.max_skew_ms);
        for (mine, theirs) in self.nodes.iter_mut().zip(other.nodes) {
            mine.records += theirs.records;
            mine.behind += theirs.behind;
            mine.newest_write_ms = mine.newest_write_ms.max(theirs.newest_write_ms);
        }
        for (table, tally) in other.tables {
            let mine = self.tables.entry(table).or_default();
            mine.divergent += tally.divergent;
            mine.max_skew_ms = mine.max_skew_ms.max(tally.max_skew_ms);
        }
        for (table, samples) in other.evidence {
            let mine = self.evidence.entry(table).or_default();
            mine.extend(samples);
            mine.sort_by(|a, b| a.key.cmp(&b.key));
            mine.truncate(SAMPLE_LIMIT);
        }
    }

    pub fn finish(self) -> NodeComparison {
        let newest: Vec<i64> = self
            .nodes
            .iter()
            .filter_map(|n| n.newest_write_ms)
            .collect();
        let spread = match (newest.iter().max(), newest.iter().min()) {
            (Some(max), Some(min)) if newest.len() > 1 => Some(max - min),
            _ => None,
        };
        NodeComparison {
            nodes: self.nodes,
            records: self.records,
            divergent: self.divergent,
            on_some_nodes_only: self.on_some_nodes_only,
            max_skew_ms: self.max_skew_ms,
            newest_write_spread_ms: spread,
            evidence: self.evidence.into_values().flatten().collect(),
            tables: self.tables,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableRef {
        TableRef {
            namespace: "bank".to_owned(),
            table: "accounts".to_owned(),
        }
    }

    fn key(id: i64) -> RecordKey {
        RecordKey(vec![("id".to_owned(), id.to_string())])
    }

    fn copy(tx: &str, state: i64, version: i64, prepared: i64, committed: Option<i64>) -> NodeCopy {
        NodeCopy {
            tx_id: Some(tx.to_owned()),
            tx_state: Some(state),
            tx_version: Some(version),
            tx_prepared_at: Some(prepared),
            tx_committed_at: committed,
        }
    }

    fn comparer() -> NodeComparer {
        NodeComparer::new(["node1".to_owned(), "node2".to_owned()])
    }

    #[test]
    fn identical_copies_agree() {
        let mut nodes = comparer();
        let c = copy("t1", 3, 1, 100, Some(110));
        nodes.record(&table(), &key(1), &[Some(c.clone()), Some(c)]);
        let comparison = nodes.finish();
        assert_eq!(comparison.divergent, 0);
        assert!(comparison.findings().is_empty());
        assert_eq!(comparison.nodes[0].records, 1);
        assert_eq!(comparison.nodes[1].newest_write_ms, Some(110));
    }

    #[test]
    fn prepared_on_one_node_and_committed_on_another_is_skew() {
        let mut nodes = comparer();
        nodes.record(
            &table(),
            &key(1),
            &[
                Some(copy("t2", 1, 2, 1_000, None)),
                Some(copy("t2", 3, 2, 1_000, Some(1_250))),
            ],
        );
        let comparison = nodes.finish();
        assert_eq!(comparison.divergent, 1);
        assert_eq!(comparison.max_skew_ms, Some(250));
        assert_eq!(comparison.nodes[0].behind, 1);
        assert_eq!(comparison.nodes[1].behind, 0);
        let findings = comparison.findings();
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.code, Code::NodeSnapshotsSkewed);
        assert_eq!(finding.table.as_deref(), Some("bank.accounts"));
        assert_eq!(finding.key, Some(key(1)));
        assert_eq!(finding.tx_id.as_deref(), Some("t2"));
        assert_eq!(finding.tx_state.as_deref(), Some("COMMITTED"));
        assert!(
            finding
                .message
                .contains("PREPARED on node1 (version 2), COMMITTED on node2"),
            "{}",
            finding.message
        );
    }

    #[test]
    fn an_older_version_on_one_node_is_skew_whichever_node_it_is() {
        let mut nodes = comparer();
        nodes.record(
            &table(),
            &key(7),
            &[
                Some(copy("t9", 3, 5, 9_000, Some(9_010))),
                Some(copy("t8", 3, 4, 4_000, Some(4_010))),
            ],
        );
        let comparison = nodes.finish();
        assert_eq!(comparison.divergent, 1);
        assert_eq!(comparison.max_skew_ms, Some(5_000));
        assert_eq!(
            (comparison.nodes[0].behind, comparison.nodes[1].behind),
            (0, 1)
        );
        assert_eq!(comparison.newest_write_spread_ms, Some(5_000));
    }

    #[test]
    fn a_record_on_some_nodes_only_is_counted_not_judged() {
        let mut nodes = comparer();
        nodes.record(
            &table(),
            &key(1),
            &[Some(copy("t1", 3, 1, 1, Some(2))), None],
        );
        let comparison = nodes.finish();
        assert_eq!(comparison.on_some_nodes_only, 1);
        assert_eq!(comparison.divergent, 0);
        assert!(comparison.findings().is_empty());
    }

    #[test]
    fn evidence_keeps_the_smallest_keys_whatever_the_order_and_the_split() {
        let record = |nodes: &mut NodeComparer, id: i64| {
            nodes.record(
                &table(),
                &key(id),
                &[
                    Some(copy("a", 1, 2, 10, None)),
                    Some(copy("a", 3, 2, 10, Some(20))),
                ],
            );
        };
        let mut forward = comparer();
        (0..20).for_each(|id| record(&mut forward, id));
        let mut left = comparer();
        let mut right = comparer();
        (10..20).rev().for_each(|id| record(&mut left, id));
        (0..10).rev().for_each(|id| record(&mut right, id));
        left.merge(right);
        let (forward, split) = (forward.finish(), left.finish());
        assert_eq!(forward, split);
        let keys: Vec<_> = split.evidence.iter().map(|d| d.key.clone()).collect();
        // Keys compare as text, as the rendered key is what a report shows.
        let mut expected: Vec<RecordKey> = (0..20).map(key).collect();
        expected.sort();
        expected.truncate(SAMPLE_LIMIT);
        assert_eq!(keys, expected);
        assert_eq!(split.findings()[0].count, Some(20));
    }
}
