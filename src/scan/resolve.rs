//! The Coordinator lookups of tables that cannot join the Coordinator (another storage):
//! the compact index answers most of them, and the rows that decide something are point
//! reads from the Coordinator's storage, each read once. Unresolved transactions the index
//! calls COMMITTED are confirmed by a point read (`find_suspects`), so a hash collision
//! cannot change a verdict (see `CoordinatorIndex`).
//!
//! The index matches ids by their bytes. Where the Coordinator's storage compares them
//! otherwise (MariaDB's default collations fold case and ignore trailing blanks), ScalarDB's
//! `Get` may find a row the index cannot: there every lookup of an unresolved transaction is
//! a point read, answered by the storage's own comparison, and the index only files
//! COMMITTED records of transactions with nothing unresolved (a miss there reads as no row,
//! which can only count against the copy, never for it).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::RandomState;

use futures::{StreamExt as _, TryStreamExt as _, stream};

use super::connected::Connected;
use super::coordinator::{CoordinatorIndex, IndexBuilder, Lookup};
use crate::analyze::ObservedRecord;
use crate::error::Error;
use crate::model::{CoordinatorRow, CoordinatorRows, CoordinatorState};
use crate::store::{CoordinatorSchema, IdComparison};

/// How many point reads are in flight at once.
pub(super) const POINT_READS: usize = 8;

pub(super) struct Resolver<'a> {
    store: &'a Connected,
    schema: &'a CoordinatorSchema,
    index: CoordinatorIndex,
    comparison: IdComparison,
    /// Rows read by id (`None`: no row). Borrowed only between awaits.
    cache: RefCell<HashMap<String, Option<CoordinatorRow>>>,
    suspects: HashSet<String>,
}

impl<'a> Resolver<'a> {
    /// Folds every Coordinator row of `store` into the index.
    pub(super) async fn load(
        store: &'a Connected,
        schema: &'a CoordinatorSchema,
    ) -> Result<Self, Error> {
        let hasher = RandomState::new();
        let builder: IndexBuilder = store
            .fold_coordinator(
                schema,
                &|acc: &mut IndexBuilder, row| acc.add(&hasher, row),
                &IndexBuilder::merge,
            )
            .await?;
        let comparison = store.coordinator_id_comparison(schema).await?;
        Ok(Self {
            store,
            schema,
            index: builder.build(hasher, schema),
            comparison,
            cache: RefCell::new(HashMap::new()),
            suspects: HashSet::new(),
        })
    }

    fn bytewise(&self) -> bool {
        self.comparison == IdComparison::Bytewise
    }

    async fn row(&self, tx_id: &str) -> Result<Option<CoordinatorRow>, Error> {
        if let Some(row) = self.cache.borrow().get(tx_id) {
            return Ok(row.clone());
        }
        let row = self.store.read_coordinator_row(self.schema, tx_id).await?;
        self.cache
            .borrow_mut()
            .insert(tx_id.to_owned(), row.clone());
        Ok(row)
    }

    /// The rows for one transaction id, exactly what a join returns: the row keyed by the
    /// id and, for a group-commit id, its parent's.
    async fn rows(&self, tx_id: &str) -> Result<CoordinatorRows, Error> {
        if !self.bytewise() {
            // Only the storage knows which rows its comparison finds: read both.
            let exact = self.row(tx_id).await?;
            let parent = match self.index.group_parent(tx_id) {
                Some(parent) => self.row(parent).await?,
                None => None,
            };
            return Ok(CoordinatorRows { exact, parent });
        }
        self.index
            .rows_with(tx_id, async |id: &str| self.row(id).await)
            .await
    }

    /// Reads, many ids a query, the rows `rows` would read one by one for these ids, into
    /// the cache. Not where ids compare otherwise than bytewise: a query of many ids cannot
    /// say which id found which row.
    async fn prefetch(&self, tx_ids: impl Iterator<Item = &str>) -> Result<(), Error> {
        if !self.bytewise() {
            return Ok(());
        }
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        for tx_id in tx_ids {
            let (exact, parent) = self.index.ids_to_read(tx_id);
            wanted.extend(exact);
            wanted.extend(parent);
        }
        let wanted: Vec<&str> = {
            let cache = self.cache.borrow();
            wanted
                .into_iter()
                .filter(|id| !cache.contains_key(*id))
                .collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let rows = self
            .store
            .read_coordinator_rows(self.schema, &wanted)
            .await?;
        let mut cache = self.cache.borrow_mut();
        for id in wanted {
            cache.insert(id.to_owned(), None);
        }
        for row in rows {
            cache.insert(row.tx_id.clone(), Some(row));
        }
        Ok(())
    }

    /// Attaches the Coordinator rows to records: the rows to read are read many a query
    /// first (`prefetch`), then each record takes its rows, a bounded number of point
    /// reads at a time for any the prefetch did not cover.
    pub(super) async fn attach(
        &self,
        records: Vec<ObservedRecord>,
    ) -> Result<Vec<ObservedRecord>, Error> {
        self.prefetch(records.iter().filter_map(|r| r.meta.tx_id.as_deref()))
            .await?;
        stream::iter(records)
            .map(|mut record| async move {
                if let Some(tx_id) = record.meta.tx_id.as_deref() {
                    record.coordinator = self.rows(tx_id).await?;
                }
                Ok::<_, Error>(record)
            })
            .buffered(POINT_READS)
            .try_collect()
            .await
    }

    /// Of the unresolved transactions, those the index calls COMMITTED but whose rows do
    /// not: a hash collision. Their COMMITTED records are always looked up exactly. Where
    /// ids compare otherwise than bytewise, the index cannot answer for any of them, so
    /// every unresolved transaction is a suspect.
    pub(super) async fn find_suspects(
        &mut self,
        unresolved: impl IntoIterator<Item = &str>,
    ) -> Result<(), Error> {
        if !self.bytewise() {
            self.suspects = unresolved.into_iter().map(str::to_owned).collect();
            return Ok(());
        }
        let committed: Vec<&str> = unresolved
            .into_iter()
            .filter(|id| self.index.look_up(id) == Lookup::Committed)
            .collect();
        self.prefetch(committed.iter().copied()).await?;
        let mut suspects = HashSet::new();
        for id in committed {
            let rows = self.rows(id).await?;
            if !matches!(
                CoordinatorState::look_up(id, &rows),
                CoordinatorState::Committed { .. }
            ) {
                suspects.insert(id.to_owned());
            }
        }
        self.suspects = suspects;
        Ok(())
    }

    /// Whether a COMMITTED record of any of `tx_ids` needs its Coordinator rows looked at
    /// (`needs_look` of each, the index's lookups run side by side).
    pub(super) fn any_needs_look(&self, tx_ids: &[&str]) -> bool {
        !self.index.all_committed(tx_ids)
            || (!self.suspects.is_empty() && tx_ids.iter().any(|id| self.suspects.contains(*id)))
    }

    /// The rows for a COMMITTED record of `tx_id` where the index knows them without a
    /// read (`CoordinatorIndex::rows_without_reading`), never for a suspect.
    pub(super) fn rows_without_reading(&self, tx_id: &str) -> Option<CoordinatorRows> {
        if self.suspects.contains(tx_id) {
            return None;
        }
        self.index.rows_without_reading(tx_id)
    }

    /// Whether a COMMITTED record of `tx_id` needs its Coordinator rows looked at.
    pub(super) fn needs_look(&self, tx_id: &str) -> bool {
        self.index.look_up(tx_id) != Lookup::Committed || self.suspects.contains(tx_id)
    }
}
