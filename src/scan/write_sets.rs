//! The write-set proof's reads (3.19 write-set logging): after the tables are scanned, the
//! Coordinator's COMMITTED write sets are streamed once through `analyze::AtRiskSet` (only the
//! transactions a table-by-table copy could have torn are kept), each record they name is
//! read by key from its table's storage, the write sets of ABORTED transactions with
//! unresolved records are point-read, and `analyze::prove` judges them. Owns the I/O order;
//! owns no rule.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::{StreamExt as _, TryStreamExt as _, stream};

use super::connected::Connected;
use crate::analyze::{
    AT_RISK_MARGIN_MS, AbortedWriteSet, AtRiskSet, CHECK_ALL_BELOW, Found, MAX_WINDOW_TRANSACTIONS,
    ObservedRecord, TableScan, Undecodable, WindowRow, WindowTransactions, WriteSetProof,
    WrittenTransaction, at_risk_rule, prove, window_transactions,
};
use crate::error::Error;
use crate::model::write_set::{StoredWriteSet, WriteSet, WrittenRecord};
use crate::model::{CoordinatorState, GroupCommitId, RecordKey, StoredState, TableRef, TxState};
use crate::store::{CoordinatorSchema, TableSchema, WriteSetSource, key_is_exact};

/// How many undecodable write sets are reported one by one (all are counted).
const UNDECODABLE_SAMPLE: usize = 20;

/// How many ABORTED transactions with unresolved records have their write set read.
const ABORTED_LIMIT: usize = 1_000;

/// What the proof reads, from one storage.
pub(super) trait ProofSource {
    /// `None`: the store cannot count without streaming every row.
    async fn count_write_sets(&self, coordinator: &CoordinatorSchema)
    -> Result<Option<u64>, Error>;
    /// Visits every COMMITTED row with a write set created at or after `since`, and every
    /// COMMITTED row created inside `window`.
    async fn each_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        since: Option<i64>,
        window: Option<(i64, i64)>,
        visit: &dyn Fn(StoredWriteSet),
    ) -> Result<(), Error>;
    async fn read_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<StoredWriteSet>, Error>;
    async fn read_records(
        &self,
        table: &TableSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<ObservedRecord>, Error>;
}

/// A store of a single-storage scan.
pub(super) struct Direct<'a, S>(pub(super) &'a S);

impl<S> ProofSource for Direct<'_, S>
where
    S: WriteSetSource,
    Error: From<S::Error>,
{
    async fn count_write_sets(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<Option<u64>, Error> {
        Ok(self.0.count_write_sets(coordinator).await?)
    }

    async fn each_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        since: Option<i64>,
        window: Option<(i64, i64)>,
        visit: &dyn Fn(StoredWriteSet),
    ) -> Result<(), Error> {
        Ok(self
            .0
            .fold_write_sets(
                coordinator,
                since,
                window,
                &|(): &mut (), s| visit(s),
                &|(), ()| {},
            )
            .await?)
    }

    async fn read_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<StoredWriteSet>, Error> {
        Ok(self.0.read_write_set(coordinator, tx_id).await?)
    }

    async fn read_records(
        &self,
        table: &TableSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<ObservedRecord>, Error> {
        Ok(self.0.read_records(table, keys).await?)
    }
}

impl ProofSource for Connected {
    async fn count_write_sets(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<Option<u64>, Error> {
        self.count_write_sets(coordinator).await
    }

    async fn each_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        since: Option<i64>,
        window: Option<(i64, i64)>,
        visit: &dyn Fn(StoredWriteSet),
    ) -> Result<(), Error> {
        self.fold_write_sets(
            coordinator,
            since,
            window,
            &|(): &mut (), s| visit(s),
            &|(), ()| {},
        )
        .await
    }

    async fn read_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<StoredWriteSet>, Error> {
        self.read_write_set(coordinator, tx_id).await
    }

    async fn read_records(
        &self,
        table: &TableSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<ObservedRecord>, Error> {
        self.read_records(table, keys).await
    }
}

/// A scanned table, the store holding it, and what its scan found.
pub(super) struct ScannedTable<'a, P> {
    pub(super) store: &'a P,
    pub(super) schema: &'a TableSchema,
    pub(super) scan: &'a TableScan,
}

/// A written record's key in its table's key order, rendered as the scan renders keys;
/// `None` when the table was not scanned, a column is missing, or a value is of a type the
/// scan does not render exactly (such a record is not looked up: never a false "absent").
fn normalized(record: &WrittenRecord, schema: Option<&TableSchema>) -> Option<RecordKey> {
    let schema = schema?;
    let columns: Vec<_> = record
        .partition_key
        .iter()
        .chain(&record.clustering_key)
        .collect();
    if columns.len() != schema.keys.len() {
        return None;
    }
    let mut key = Vec::with_capacity(columns.len());
    for column in &schema.keys {
        let value = columns.iter().find(|c| c.name == column.name)?;
        if !key_is_exact(&value.value) {
            return None;
        }
        key.push((column.name.clone(), value.value.to_string()));
    }
    Some(RecordKey(key))
}

/// The write set's records as `(table, key)`, keys normalized where the table was scanned
/// (else as the write set orders them, which names no scanned record).
fn records_of(
    records: &[WrittenRecord],
    schemas: &HashMap<&TableRef, &TableSchema>,
) -> Vec<(TableRef, RecordKey)> {
    records
        .iter()
        .map(|r| {
            let key = normalized(r, schemas.get(&r.table).copied()).unwrap_or_else(|| r.key());
            (r.table.clone(), key)
        })
        .collect()
}

/// Runs the proof over the scanned tables (`tables`, each with its store) against the
/// Coordinator in `coordinator_store`; with a cut window (`cut::window`), also lists every
/// COMMITTED transaction created in it with the proof's verdict, for the cut's judgement.
pub(super) async fn run<P: ProofSource>(
    coordinator_store: &P,
    coordinator: &CoordinatorSchema,
    tables: &[ScannedTable<'_, P>],
    window: Option<(i64, i64)>,
    jobs: usize,
) -> Result<(WriteSetProof, Option<WindowTransactions>), Error> {
    let schemas: HashMap<&TableRef, &TableSchema> =
        tables.iter().map(|t| (&t.schema.table, t.schema)).collect();
    let watermarks = tables
        .iter()
        .map(|t| {
            let newest = t.scan.max_prepared_at.max(t.scan.max_committed_at);
            (t.schema.table.clone(), newest)
        })
        .collect();
    let set = AtRiskSet::new(watermarks, AT_RISK_MARGIN_MS).with_window(window);
    // Where the store counts cheaply and there are many, it filters on the floor; else
    // every row is streamed once and the at-risk set applies the same rule as it goes.
    let committed = coordinator_store.count_write_sets(coordinator).await?;
    let since = match committed {
        Some(n) if n > u64::try_from(CHECK_ALL_BELOW).unwrap_or(u64::MAX) => set.floor(),
        _ => None,
    };
    let written = |stored: &StoredWriteSet, write_set: &WriteSet| -> Vec<WrittenTransaction> {
        let Some(created_at) = stored.row.tx_created_at else {
            // An invalid row: the Coordinator's own finding reports it.
            return Vec::new();
        };
        write_set
            .groups
            .iter()
            .map(|group| WrittenTransaction {
                tx_id: stored.group_tx_id(group),
                created_at,
                records: records_of(&group.records, &schemas),
            })
            .collect()
    };
    // Borrowed only inside the visit, which never awaits.
    let set = RefCell::new(set);
    let undecodable = RefCell::new(Vec::new());
    let undecodable_count = Cell::new(0_u64);
    let window_rows = RefCell::new(Vec::new());
    let unlisted = Cell::new(0_u64);
    // A row of the window, with the ids its write set's groups carry (empty: none usable).
    let in_window = |stored: &StoredWriteSet, groups: Vec<String>| {
        let (Some((from, to)), Some(created_at)) = (window, stored.row.tx_created_at) else {
            return;
        };
        if !(from..=to).contains(&created_at) {
            return;
        }
        let mut rows = window_rows.borrow_mut();
        if rows.len() >= MAX_WINDOW_TRANSACTIONS {
            unlisted.set(unlisted.get() + groups.len().max(1) as u64);
            return;
        }
        rows.push(WindowRow {
            tx_id: stored.row.tx_id.clone(),
            created_at,
            group_tx_ids: groups,
        });
    };
    coordinator_store
        .each_write_set(
            coordinator,
            since,
            window,
            &|stored| match stored.decode() {
                // A row of the window without a write set: unproven, not undecodable.
                Err(_) if stored.bytes.is_none() => in_window(&stored, Vec::new()),
                Ok(write_set) => {
                    let mut set = set.borrow_mut();
                    let transactions = written(&stored, &write_set);
                    in_window(
                        &stored,
                        transactions.iter().map(|tx| tx.tx_id.clone()).collect(),
                    );
                    for tx in transactions {
                        set.add(tx);
                    }
                }
                Err(e) => {
                    in_window(&stored, Vec::new());
                    undecodable_count.set(undecodable_count.get() + 1);
                    let mut sample = undecodable.borrow_mut();
                    if sample.len() < UNDECODABLE_SAMPLE {
                        sample.push(Undecodable {
                            tx_id: stored.row.tx_id.clone(),
                            reason: crate::error::error_chain(&e),
                        });
                    }
                }
            },
        )
        .await?;
    let (set, undecodable, undecodable_count) = (
        set.into_inner(),
        undecodable.into_inner(),
        undecodable_count.get(),
    );
    let (transactions, mut summary) = set.finish();
    if let (Some(_), Some(committed)) = (since, committed) {
        // Rows created before the floor were filtered out by the store, not counted there.
        let streamed = summary.committed_with_write_set;
        summary.skipped_not_at_risk += committed.saturating_sub(streamed);
        summary.committed_with_write_set = summary.committed_with_write_set.max(committed);
        summary.at_risk_rule = at_risk_rule(false, AT_RISK_MARGIN_MS, window);
    }

    // Every at-risk record, read by key from its table's store, a table at a time.
    let mut wanted: BTreeMap<&TableRef, BTreeSet<&RecordKey>> = BTreeMap::new();
    for tx in &transactions {
        for (table, key) in &tx.records {
            if schemas.contains_key(table) {
                wanted.entry(table).or_default().insert(key);
            }
        }
    }
    let reads = wanted.into_iter().filter_map(|(table, keys)| {
        let scanned = tables.iter().find(|t| &t.schema.table == table)?;
        let keys: Vec<RecordKey> = keys.into_iter().cloned().collect();
        Some(async move {
            let records = scanned.store.read_records(scanned.schema, &keys).await?;
            Ok::<_, Error>((table, keys, records))
        })
    });
    let read: Vec<_> = stream::iter(reads)
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await?;
    let mut found: HashMap<(TableRef, RecordKey), Found> = HashMap::new();
    for (table, keys, records) in read {
        for key in keys {
            found.insert((table.clone(), key), Found::Absent);
        }
        for record in records {
            found.insert((table.clone(), record.key), Found::Record(record.meta));
        }
    }

    let aborted = aborted_write_sets(coordinator_store, coordinator, tables, &schemas).await?;
    let mut proof = prove(&transactions, &found, &undecodable, &aborted.0, summary);
    proof.summary.undecodable = undecodable_count + aborted.1;
    let listed = window.map(|window| {
        window_transactions(
            window,
            &window_rows.into_inner(),
            unlisted.get(),
            &proof.transactions,
        )
    });
    Ok((proof, listed))
}

/// The ABORTED transactions with PREPARED or DELETED records, each with its write set when
/// its Coordinator row carries one (a lazy-recovery abort writes none), and how many of
/// those write sets did not decode.
async fn aborted_write_sets<P: ProofSource>(
    store: &P,
    coordinator: &CoordinatorSchema,
    tables: &[ScannedTable<'_, P>],
    schemas: &HashMap<&TableRef, &TableSchema>,
) -> Result<(Vec<AbortedWriteSet>, u64), Error> {
    let mut unresolved: BTreeMap<&str, Vec<(TableRef, RecordKey, TxState)>> = BTreeMap::new();
    for table in tables {
        for record in &table.scan.exceptional {
            let (StoredState::Known(state @ (TxState::Prepared | TxState::Deleted)), Some(tx_id)) =
                (record.meta.state(), record.meta.tx_id.as_deref())
            else {
                continue;
            };
            if CoordinatorState::look_up(tx_id, &record.coordinator) != CoordinatorState::Aborted {
                continue;
            }
            if unresolved.len() >= ABORTED_LIMIT && !unresolved.contains_key(tx_id) {
                continue;
            }
            unresolved.entry(tx_id).or_default().push((
                table.schema.table.clone(),
                record.key.clone(),
                state,
            ));
        }
    }
    let mut out = Vec::new();
    let mut undecodable = 0;
    for (tx_id, records) in unresolved {
        let group = GroupCommitId::parse(tx_id);
        let mut stored = store.read_write_set(coordinator, tx_id).await?;
        if let (None, Some(id)) = (&stored, &group) {
            stored = store.read_write_set(coordinator, id.parent).await?;
        }
        let Some(stored) = stored else { continue };
        let Ok(write_set) = stored.decode() else {
            undecodable += 1;
            continue;
        };
        let groups = write_set
            .groups
            .iter()
            .filter(|g| stored.group_tx_id(g) == tx_id || group.is_none());
        let mut written = BTreeSet::new();
        let mut exact = true;
        for g in groups {
            for r in &g.records {
                match normalized(r, schemas.get(&r.table).copied()) {
                    Some(key) => {
                        written.insert((r.table.clone(), key));
                    }
                    None => exact = false,
                }
            }
        }
        // A record the scan cannot render exactly might be any unresolved one: not judged.
        if exact {
            out.push(AbortedWriteSet {
                tx_id: tx_id.to_owned(),
                written,
                unresolved: records,
            });
        }
    }
    Ok((out, undecodable))
}
