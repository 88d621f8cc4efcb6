//! The Coordinator in a few bytes per row, for a scan that cannot join a table with the
//! Coordinator (Cassandra, or a table in another storage of a multi-storage deployment):
//! [`CoordinatorIndex`], built by folding every Coordinator row through [`IndexBuilder`],
//! and [`PhaseTwo`], which files COMMITTED records against it. A miss is definitive; a
//! hit that matters is confirmed by a point read (`scan/resolve.rs`).
//!
//! Pure: no I/O, no async. Any store that can stream Coordinator rows feeds it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use crate::analyze::{ObservedRecord, Retention, SAMPLE_LIMIT, TableScan};
use crate::model::{CoordinatorRow, CoordinatorRows, GroupCommitId, TxState};
use crate::store::CoordinatorSchema;

/// How many invalid Coordinator rows are kept as evidence (the smallest ids, as SQL does).
pub(crate) const INVALID_COORDINATOR_SAMPLE: usize = 20;

/// What phase 2 gathers from one range: records filed without a point read, and those
/// that need one.
#[derive(Default)]
pub(crate) struct PhaseTwo {
    pub(crate) filed: TableScan,
    pub(crate) to_read: Vec<ObservedRecord>,
}

impl PhaseTwo {
    /// Files a candidate whose Coordinator rows are `known` without a read (no row at all,
    /// or a group parent the index keeps), or sets it aside for a point read.
    pub(crate) fn file(
        &mut self,
        known: impl Fn(&str) -> Option<CoordinatorRows>,
        retention: &Retention,
        mut record: ObservedRecord,
    ) {
        let Some(tx_id) = record.meta.tx_id.as_deref() else {
            return;
        };
        match known(tx_id) {
            Some(rows) => {
                record.coordinator = rows;
                retention.file(&mut self.filed, record);
            }
            None => self.to_read.push(record),
        }
    }

    pub(crate) fn merge(&mut self, part: Self) {
        merge_filed(&mut self.filed, part.filed);
        self.to_read.extend(part.to_read);
    }
}

/// The earlier of two optional instants (`Option::min` would take `None`).
fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Adds what `Retention::file` put into `part` to `total`, keeping the smallest samples.
pub(crate) fn merge_filed(total: &mut TableScan, part: TableScan) {
    total.unconfirmed_relevant.extend(part.unconfirmed_relevant);
    total.unconfirmed_times.merge(part.unconfirmed_times);
    total.unconfirmed_other_count += part.unconfirmed_other_count;
    for sample in part.unconfirmed_other_samples {
        let samples = &mut total.unconfirmed_other_samples;
        let position = samples.partition_point(|s| s.key < sample.key);
        if position < SAMPLE_LIMIT {
            samples.insert(position, sample);
            samples.truncate(SAMPLE_LIMIT);
        }
    }
}

/// What the index answers for a transaction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// No Coordinator row applies: definitive.
    Absent,
    /// COMMITTED, by a group parent row kept exactly or by a hash hit (see the type docs).
    Committed,
    /// A row may apply that is not plainly COMMITTED: read it to decide.
    Read,
}

/// The state bits of an index entry.
const STATE_COMMITTED: u64 = 0;
const STATE_ABORTED: u64 = 1;
const STATE_OTHER: u64 = 2;
const STATE_MASK: u64 = 3;

/// The Coordinator in a few bytes per row.
///
/// `entries` is sorted; each is a keyed 62-bit hash of a row's `tx_id` (SipHash with this
/// process's random keys, so ids cannot be crafted to collide) with the row's state in the
/// two low bits: 8 bytes per row. Group-commit parent rows (`tx_child_ids` set) are kept
/// exactly in `parents`, because the lookup rule needs their child lists.
///
/// A miss is definitive: no row has that id. Two ids with equal hashes make the entry
/// ambiguous, and the lookup asks for a point read. The one undetectable case is an id
/// with no row whose hash equals exactly one COMMITTED row's: its record would be taken as
/// confirmed. For the records verdicts depend on, that cannot happen: the scan confirms
/// every unresolved transaction's state with a point read (`suspects`), and records of a
/// transaction whose hit is refuted are looked up exactly. For the others (COMMITTED
/// records of transactions with nothing unresolved, which only count towards
/// `committed-without-coordinator-state`), the chance is about `rows / 2^62` per record.
#[derive(Debug, Default)]
pub(crate) struct CoordinatorIndex {
    hasher: RandomState,
    entries: Vec<u64>,
    pub(crate) parents: HashMap<String, CoordinatorRow>,
    group_commit: bool,
    pub(crate) stats: CoordinatorStats,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct CoordinatorStats {
    pub(crate) rows: u64,
    pub(crate) committed: u64,
    pub(crate) aborted: u64,
    pub(crate) max_created_at: Option<i64>,
    pub(crate) min_created_at: Option<i64>,
    pub(crate) invalid_count: u64,
    /// The invalid rows with the smallest ids, sorted.
    pub(crate) invalid_sample: Vec<CoordinatorRow>,
}

impl CoordinatorIndex {
    fn fingerprint(hasher: &RandomState, tx_id: &str) -> u64 {
        hasher.hash_one(tx_id) & !STATE_MASK
    }

    /// The first entry whose hash is not below `key` (`partition_point`), found by
    /// interpolation ([`Search`]).
    fn lower_bound(&self, key: u64) -> usize {
        let mut search = Search::new(&self.entries, key);
        while search.step(&self.entries) {}
        search.finish(&self.entries)
    }

    /// `lower_bound` of every key, the searches run side by side: one step of each per
    /// round, so the cache misses of a round overlap instead of following one another.
    fn lower_bounds(&self, keys: &[u64]) -> Vec<usize> {
        let entries = &self.entries;
        let mut searches: Vec<Search> = keys.iter().map(|&k| Search::new(entries, k)).collect();
        loop {
            let mut more = false;
            for search in &mut searches {
                more |= search.step(entries);
            }
            if !more {
                break;
            }
        }
        searches.iter().map(|s| s.finish(entries)).collect()
    }

    /// The state bits of the entries from `start` whose hash is `key`: none, one, or
    /// (ambiguous) several.
    fn state_at(&self, key: u64, start: usize) -> Option<u64> {
        let mut hits = self.entries[start..]
            .iter()
            .take_while(|e| **e & !STATE_MASK == key);
        let first = hits.next()?;
        Some(if hits.next().is_some() {
            STATE_OTHER
        } else {
            first & STATE_MASK
        })
    }

    /// Whether the index confirms every id as COMMITTED (`look_up` is `Committed` for each),
    /// the lookups run side by side (`lower_bounds`): the scan asks this of every COMMITTED
    /// record of a table in another storage.
    pub(crate) fn all_committed(&self, tx_ids: &[&str]) -> bool {
        if self.group_commit || tx_ids.len() == 1 {
            return tx_ids
                .iter()
                .all(|id| self.look_up(id) == Lookup::Committed);
        }
        let keys: Vec<u64> = tx_ids
            .iter()
            .map(|id| Self::fingerprint(&self.hasher, id))
            .collect();
        let starts = self.lower_bounds(&keys);
        keys.iter()
            .zip(starts)
            .all(|(&key, start)| self.state_at(key, start) == Some(STATE_COMMITTED))
    }

    /// The state bits of the entries whose hash is `tx_id`'s: none, one, or (ambiguous)
    /// several.
    fn probe(&self, tx_id: &str) -> Option<u64> {
        let key = Self::fingerprint(&self.hasher, tx_id);
        self.state_at(key, self.lower_bound(key))
    }

    pub(crate) fn may_contain(&self, tx_id: &str) -> bool {
        self.probe(tx_id).is_some()
    }

    pub(crate) fn group_parent<'a>(&self, tx_id: &'a str) -> Option<&'a str> {
        if !self.group_commit {
            return None;
        }
        GroupCommitId::parse(tx_id).map(|id| id.parent)
    }

    /// `Coordinator.getState`'s rule over the index.
    pub(crate) fn look_up(&self, tx_id: &str) -> Lookup {
        let listing_parent = GroupCommitId::parse(tx_id)
            .filter(|_| self.group_commit)
            .and_then(|id| {
                self.parents.get(id.parent).filter(|parent| {
                    parent
                        .tx_child_ids
                        .as_deref()
                        .is_some_and(|ids| ids.split(',').any(|c| c == id.child))
                })
            });
        if let Some(parent) = listing_parent {
            return if parent.tx_state == Some(TxState::Committed.id()) {
                Lookup::Committed
            } else {
                Lookup::Read
            };
        }
        match self.probe(tx_id) {
            None => Lookup::Absent,
            Some(STATE_COMMITTED) => Lookup::Committed,
            Some(_) => Lookup::Read,
        }
    }

    /// The rows for `tx_id` when the index knows them exactly: no row keyed by the id, and
    /// a parent row that is kept exactly or surely absent. `None`: read them.
    pub(crate) fn rows_without_reading(&self, tx_id: &str) -> Option<CoordinatorRows> {
        match self.ids_to_read(tx_id) {
            (None, None) => Some(CoordinatorRows {
                exact: None,
                parent: self.kept_parent(tx_id),
            }),
            _ => None,
        }
    }

    /// The ids whose rows a lookup of `tx_id` must read: the id itself where the index may
    /// hold it, and its group-commit parent where that is not kept exactly and the index
    /// may hold it.
    pub(crate) fn ids_to_read<'i>(&self, tx_id: &'i str) -> (Option<&'i str>, Option<&'i str>) {
        let exact = self.may_contain(tx_id).then_some(tx_id);
        let parent = self
            .group_parent(tx_id)
            .filter(|parent| !self.parents.contains_key(*parent) && self.may_contain(parent));
        (exact, parent)
    }

    /// The group-commit parent row of `tx_id` where the index keeps it exactly.
    fn kept_parent(&self, tx_id: &str) -> Option<CoordinatorRow> {
        self.group_parent(tx_id)
            .and_then(|parent| self.parents.get(parent))
            .cloned()
    }

    /// The rows for `tx_id`, exactly what a join returns (the row keyed by the id and, for
    /// a group-commit id, its parent's), reading with `read` only what the index cannot
    /// answer (`ids_to_read`).
    pub(crate) async fn rows_with<E>(
        &self,
        tx_id: &str,
        read: impl AsyncFn(&str) -> Result<Option<CoordinatorRow>, E>,
    ) -> Result<CoordinatorRows, E> {
        let (exact_id, parent_id) = self.ids_to_read(tx_id);
        let exact = match exact_id {
            Some(id) => read(id).await?,
            None => None,
        };
        let parent = match parent_id {
            Some(id) => read(id).await?,
            None => self.kept_parent(tx_id),
        };
        Ok(CoordinatorRows { exact, parent })
    }

    /// Heap bytes held, for the memory test and the benchmark.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<u64>()
            + self
                .parents
                .iter()
                .map(|(k, v)| {
                    k.capacity()
                        + v.tx_id.capacity()
                        + v.tx_child_ids.as_ref().map_or(0, String::capacity)
                        + std::mem::size_of::<(String, CoordinatorRow)>()
                })
                .sum::<usize>()
    }
}

/// One interpolation search for the first entry whose hash is not below `key`.
///
/// The hashes are keyed and so uniform whatever the ids, and each step guesses where `key`
/// falls between the values bounding the range, so a search touches about log log n cache
/// lines (4 or 5 for millions of rows) where a bisection misses the cache on most of its
/// twenty steps. Past `STEPS` steps (never, for uniform hashes) `finish` bisects what is
/// left, so no input makes a search cost more than a bisection's.
struct Search {
    key: u64,
    steps: usize,
    // The answer is in [lo, hi]; the entries in [lo, hi) lie in [low, high].
    lo: usize,
    hi: usize,
    low: u64,
    high: u64,
}

impl Search {
    const STEPS: usize = 8;
    /// A range this small is bisected: it spans a cache line or two.
    const SMALL: usize = 16;

    fn new(entries: &[u64], key: u64) -> Self {
        Self {
            key,
            steps: 0,
            lo: 0,
            hi: entries.len(),
            low: 0,
            high: u64::MAX,
        }
    }

    /// One step; `false` once the search has nothing left to narrow.
    fn step(&mut self, entries: &[u64]) -> bool {
        let key = self.key;
        if self.steps == Self::STEPS || self.hi - self.lo <= Self::SMALL || key <= self.low {
            return false;
        }
        if key > self.high {
            self.lo = self.hi;
            return false;
        }
        self.steps += 1;
        // key - low <= high - low, so the offset is below hi - lo.
        let span = u128::from(self.high - self.low) + 1;
        let offset = u128::from(key - self.low) * (self.hi - self.lo) as u128 / span;
        let guess = self.lo + usize::try_from(offset).unwrap_or(self.hi - self.lo - 1);
        let value = entries[guess] & !STATE_MASK;
        if value < key {
            self.lo = guess + 1;
            self.low = value;
        } else {
            self.hi = guess;
            self.high = value;
        }
        true
    }

    fn finish(&self, entries: &[u64]) -> usize {
        self.lo + entries[self.lo..self.hi].partition_point(|e| *e & !STATE_MASK < self.key)
    }
}

/// Gathers one range of the Coordinator.
#[derive(Default)]
pub(crate) struct IndexBuilder {
    entries: Vec<u64>,
    parents: HashMap<String, CoordinatorRow>,
    stats: CoordinatorStats,
}

impl IndexBuilder {
    pub(crate) fn add(&mut self, hasher: &RandomState, row: CoordinatorRow) {
        let stats = &mut self.stats;
        stats.rows += 1;
        stats.max_created_at = stats.max_created_at.max(row.tx_created_at);
        stats.min_created_at = earliest(stats.min_created_at, row.tx_created_at);
        let valid = row.tx_created_at.is_some();
        let state = match row.tx_state {
            Some(3) => {
                stats.committed += 1;
                if valid { STATE_COMMITTED } else { STATE_OTHER }
            }
            Some(4) => {
                stats.aborted += 1;
                if valid { STATE_ABORTED } else { STATE_OTHER }
            }
            _ => STATE_OTHER,
        };
        if !(valid && matches!(row.tx_state, Some(3 | 4))) {
            stats.invalid_count += 1;
            let sample = &mut stats.invalid_sample;
            let position = sample.partition_point(|r| r.tx_id < row.tx_id);
            if position < INVALID_COORDINATOR_SAMPLE {
                sample.insert(position, row.clone());
                sample.truncate(INVALID_COORDINATOR_SAMPLE);
            }
        }
        self.entries
            .push(CoordinatorIndex::fingerprint(hasher, &row.tx_id) | state);
        if row.tx_child_ids.is_some() {
            self.parents.insert(row.tx_id.clone(), row);
        }
    }

    pub(crate) fn merge(&mut self, part: Self) {
        if self.entries.is_empty() {
            self.entries = part.entries;
        } else {
            self.entries.extend(part.entries);
        }
        self.parents.extend(part.parents);
        let (stats, other) = (&mut self.stats, part.stats);
        stats.rows += other.rows;
        stats.committed += other.committed;
        stats.aborted += other.aborted;
        stats.max_created_at = stats.max_created_at.max(other.max_created_at);
        stats.min_created_at = earliest(stats.min_created_at, other.min_created_at);
        stats.invalid_count += other.invalid_count;
        stats.invalid_sample.extend(other.invalid_sample);
        stats.invalid_sample.sort_by(|a, b| a.tx_id.cmp(&b.tx_id));
        stats.invalid_sample.truncate(INVALID_COORDINATOR_SAMPLE);
    }

    pub(crate) fn build(
        mut self,
        hasher: RandomState,
        coordinator: &CoordinatorSchema,
    ) -> CoordinatorIndex {
        self.entries.sort_unstable();
        self.entries.shrink_to_fit();
        self.parents.shrink_to_fit();
        CoordinatorIndex {
            hasher,
            entries: self.entries,
            parents: self.parents,
            group_commit: coordinator.has_child_ids,
            stats: self.stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TableRef;

    fn row(tx_id: &str, state: i64, children: Option<&str>) -> CoordinatorRow {
        CoordinatorRow {
            tx_id: tx_id.into(),
            tx_state: Some(state),
            tx_created_at: Some(1),
            tx_child_ids: children.map(Into::into),
        }
    }

    fn index(rows: Vec<CoordinatorRow>, group_commit: bool) -> CoordinatorIndex {
        let hasher = RandomState::new();
        let mut builder = IndexBuilder::default();
        for row in rows {
            builder.add(&hasher, row);
        }
        builder.build(
            hasher,
            &CoordinatorSchema {
                table: TableRef::new("coordinator", "state"),
                has_child_ids: group_commit,
                has_write_set: false,
            },
        )
    }

    #[test]
    fn the_index_answers_like_the_lookup_rule() {
        const PARENT: &str = "AAAAAAAAAAAAAAAAAAAAAAAA";
        let index = index(
            vec![
                row("c", 3, None),
                row("a", 4, None),
                row(PARENT, 3, Some("k1,k2")),
                row("bad", 9, None),
            ],
            true,
        );
        assert_eq!(index.look_up("c"), Lookup::Committed);
        assert_eq!(index.look_up("a"), Lookup::Read);
        assert_eq!(index.look_up("bad"), Lookup::Read);
        assert_eq!(index.look_up("nope"), Lookup::Absent);
        assert_eq!(index.look_up(&format!("{PARENT}$k2")), Lookup::Committed);
        assert_eq!(index.look_up(&format!("{PARENT}$k3")), Lookup::Absent);
        let rows = index
            .rows_without_reading(&format!("{PARENT}$k3"))
            .expect("known exactly");
        assert_eq!(rows.parent.unwrap().tx_id, PARENT);
        assert!(index.rows_without_reading("a").is_none());
        assert_eq!(index.stats.invalid_count, 1);
        assert_eq!(index.stats.committed, 2);
    }

    #[test]
    fn colliding_entries_are_ambiguous_never_committed() {
        let mut index = index(vec![row("x", 3, None)], false);
        // Forge a collision: another row with x's hash, ABORTED.
        let key = index.entries[0] & !STATE_MASK;
        index.entries.push(key | STATE_ABORTED);
        index.entries.sort_unstable();
        assert_eq!(index.look_up("x"), Lookup::Read);
    }

    #[test]
    fn a_coordinator_entry_takes_eight_bytes() {
        let n: usize = 1_000_000;
        let rows = (0..n).map(|i| row(&format!("{i:08x}-0000-0000-0000-000000000000"), 3, None));
        let index = index(rows.collect(), false);
        let per_entry = index.heap_bytes() as f64 / n as f64;
        eprintln!("coordinator index: {per_entry:.2} bytes per row for {n} rows");
        assert!(per_entry <= 8.01, "{per_entry} bytes per row");
        assert_eq!(
            index.look_up("00000007-0000-0000-0000-000000000000"),
            Lookup::Committed
        );
    }

    #[test]
    fn the_guided_search_is_exact_on_entries_that_are_not_uniform() {
        // Hashes are uniform; these are not, so interpolation runs out of steps and bisects.
        let mut index = index(Vec::new(), false);
        index.entries = (0..10_000_u64).map(|i| i * i * 4).collect();
        index.entries.extend([!STATE_MASK; 3]);
        index.entries.sort_unstable();
        let keys = index
            .entries
            .iter()
            .flat_map(|e| [*e, e.saturating_add(4), e.saturating_sub(4)]);
        for key in keys.chain([0, 4, !STATE_MASK]) {
            assert_eq!(
                index.lower_bound(key),
                index.entries.partition_point(|e| *e & !STATE_MASK < key),
                "key = {key:#x}"
            );
        }
    }

    #[test]
    fn the_guided_search_finds_what_bisection_finds() {
        for n in [0_usize, 1, 2, 3, 17, 1000, 50_000] {
            let rows = (0..n).map(|i| row(&format!("tx-{i}"), 3, None));
            let index = index(rows.collect(), false);
            let probes = (0..2 * n + 10).map(|i| index.hasher.hash_one(i) & !STATE_MASK);
            let present = index.entries.iter().map(|e| e & !STATE_MASK);
            let keys: Vec<u64> = probes.chain(present).chain([0, 4, !STATE_MASK]).collect();
            let side_by_side = index.lower_bounds(&keys);
            for (key, batched) in keys.into_iter().zip(side_by_side) {
                let expected = index.entries.partition_point(|e| *e & !STATE_MASK < key);
                assert_eq!(index.lower_bound(key), expected, "n = {n}, key = {key:#x}");
                assert_eq!(batched, expected, "side by side: n = {n}, key = {key:#x}");
            }
        }
    }

    #[test]
    fn all_committed_is_look_up_of_each() {
        for group_commit in [false, true] {
            let index = index(
                vec![
                    row("c1", 3, None),
                    row("c2", 3, None),
                    row("a1", 4, None),
                    row("p1", 7, None),
                    row("parent", 3, Some("kid")),
                ],
                group_commit,
            );
            let cases: [&[&str]; 6] = [
                &[],
                &["c1", "c2"],
                &["c1", "a1"],
                &["c2", "missing"],
                &["p1"],
                &["c1", "parent"],
            ];
            for ids in cases {
                let each = ids.iter().all(|id| index.look_up(id) == Lookup::Committed);
                assert_eq!(
                    index.all_committed(ids),
                    each,
                    "{ids:?}, group commit {group_commit}"
                );
            }
            assert!(index.all_committed(&["c1", "c2"]));
            assert!(!index.all_committed(&["c1", "missing"]));
        }
    }
}
