//! The only scylla user: reads ScalarDB's tables from Apache Cassandra (or ScyllaDB) and
//! implements the scan's phases without joins.
//!
//! ScalarDB's Cassandra layout (protocol document §6): a namespace is a keyspace, every
//! column (metadata and `before_*` included) is a regular CQL column, and there is no
//! ScalarDB metadata table, so discovery reads `system_schema.columns`.
//!
//! Cassandra cannot join, so the Coordinator is loaded once, lazily, into a
//! [`CoordinatorIndex`] (`scan/coordinator.rs`, shared with the scan of tables in another
//! storage than the Coordinator's): a sorted vector of 64-bit words, each a 62-bit keyed hash of a
//! `tx_id` with its state in the two low bits (8 bytes per row), plus exact rows for
//! group-commit parents. A miss is definitive; a hit that matters is confirmed by a point
//! read of `coordinator.state` (see [`CoordinatorIndex`] for why a collision cannot change
//! a verdict that depends on an unresolved transaction).
//!
//! Tables are scanned by splitting the Murmur3 token ring into ranges, read page by page,
//! a bounded number at a time, selecting only the key and metadata columns. Phase 1 also
//! keeps (up to a bound) the COMMITTED records the index does not confirm, so that phase 2
//! usually needs no second pass over the table.
//!
//! Reads only. The one writer, [`CassandraWriter`], is for nodes the caller created: the
//! drill's disposable node (its schema and the recovery rehearsal), tests and benchmarks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::RandomState;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::{ColumnIterator, RawColumn};
use scylla::deserialize::value::DeserializeValue;
use scylla::deserialize::{DeserializationError, TypeCheckError};
use scylla::errors::{
    ExecutionError, IntoRowsResultError, NewSessionError, PrepareError, RowsError,
};
use scylla::response::PagingState;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;
use tokio::sync::OnceCell;

mod compare;
mod recovery;

pub use recovery::ObservedAs;

use super::discover::{CatalogTable, Discovery, DiscoverySettings, discover};
use super::{CoordinatorSchema, TableSchema};
use crate::analyze::{
    CoordinatorScan, DiscoveryNote, ObservedRecord, RecentCommits, RecentTransactions, Retention,
    TableScan,
};
use crate::model::write_set::{MAX_WRITE_SET_BYTES, StoredWriteSet};
use crate::model::{
    CoordinatorRow, CoordinatorRows, CoordinatorState, RecordKey, RecordMeta, StoredState,
    TableRef, TxState,
};
use crate::scan::coordinator::{CoordinatorIndex, IndexBuilder, Lookup, PhaseTwo, merge_filed};

/// The partitioner whose token ring the parallel scan splits.
const MURMUR3: &str = "org.apache.cassandra.dht.Murmur3Partitioner";

/// A read consistency level, as ScalarDB's `scalar.db.cassandra` users know them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadConsistency {
    One,
    LocalOne,
    /// The default: what ScalarDB's own reads use (SEQUENTIAL maps to QUORUM), so the scan
    /// sees what a ScalarDB client reading the same cluster would see.
    #[default]
    Quorum,
    LocalQuorum,
    All,
}

impl ReadConsistency {
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_uppercase().as_str() {
            "ONE" => Some(Self::One),
            "LOCAL_ONE" => Some(Self::LocalOne),
            "QUORUM" => Some(Self::Quorum),
            "LOCAL_QUORUM" => Some(Self::LocalQuorum),
            "ALL" => Some(Self::All),
            _ => None,
        }
    }

    fn to_cql(self) -> Consistency {
        match self {
            Self::One => Consistency::One,
            Self::LocalOne => Consistency::LocalOne,
            Self::Quorum => Consistency::Quorum,
            Self::LocalQuorum => Consistency::LocalQuorum,
            Self::All => Consistency::All,
        }
    }
}

/// How a scan reads: consistency, parallelism and paging.
#[derive(Clone, Debug)]
pub struct CassandraScanOptions {
    pub consistency: ReadConsistency,
    /// How many token ranges each table is split into.
    pub ranges: usize,
    /// How many range requests one table scan keeps in flight.
    pub concurrency: usize,
    pub page_size: i32,
    /// How many Coordinator-unconfirmed COMMITTED records phase 1 keeps per table so that
    /// phase 2 need not read the table again; past it, phase 2 rescans.
    pub unconfirmed_stash_limit: usize,
    /// Connection timeout per contact point.
    pub connect_timeout: Duration,
    /// Server-side and client-side timeout of one request (one page).
    pub request_timeout: Duration,
    /// Split tables by token ranges. Off, every table is read as one stream of pages.
    pub split_token_ranges: bool,
}

impl Default for CassandraScanOptions {
    fn default() -> Self {
        Self {
            consistency: ReadConsistency::default(),
            ranges: 256,
            concurrency: 16,
            page_size: 5000,
            unconfirmed_stash_limit: 100_000,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            split_token_ranges: true,
        }
    }
}

/// What a CQL request failed with (boxed: the driver's errors are large).
#[derive(Debug, thiserror::Error)]
pub enum CqlFailure {
    #[error(transparent)]
    Prepare(Box<PrepareError>),
    #[error(transparent)]
    Execute(Box<ExecutionError>),
    #[error(transparent)]
    NotRows(Box<IntoRowsResultError>),
    #[error(transparent)]
    Rows(Box<RowsError>),
    #[error(transparent)]
    TypeCheck(Box<TypeCheckError>),
    #[error(transparent)]
    Deserialize(Box<DeserializationError>),
    #[error("{0}")]
    Unexpected(String),
}

macro_rules! cql_failure_from {
    ($($error:ident => $variant:ident),* $(,)?) => {
        $(impl From<$error> for CqlFailure {
            fn from(error: $error) -> Self {
                Self::$variant(Box::new(error))
            }
        })*
    };
}

cql_failure_from!(
    PrepareError => Prepare,
    ExecutionError => Execute,
    IntoRowsResultError => NotRows,
    RowsError => Rows,
    TypeCheckError => TypeCheck,
    DeserializationError => Deserialize,
);

/// Each message reads after "failed to"; context travels as fields, the cause as source.
#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    #[error("connect to Cassandra at {contact_points}")]
    Connect {
        contact_points: String,
        #[source]
        source: Box<NewSessionError>,
    },
    #[error("read the schema of {target} (system_schema.columns)")]
    Catalog {
        target: String,
        #[source]
        source: CqlFailure,
    },
    #[error("read the node's version and partitioner from system.local on {target}")]
    Version {
        target: String,
        #[source]
        source: CqlFailure,
    },
    #[error("scan {table}")]
    Scan {
        table: String,
        #[source]
        source: CqlFailure,
    },
    #[error("read the Coordinator table {table}")]
    Coordinator {
        table: String,
        #[source]
        source: CqlFailure,
    },
    #[error("read the Coordinator row of {tx_id} from {table}")]
    PointRead {
        table: String,
        tx_id: String,
        #[source]
        source: CqlFailure,
    },
    #[error("execute {statement}")]
    Execute {
        statement: String,
        #[source]
        source: CqlFailure,
    },
}

impl CassandraError {
    /// A failed scan of the Coordinator table is a failure to read the Coordinator.
    fn of_coordinator(self) -> Self {
        match self {
            Self::Scan { table, source } => Self::Coordinator { table, source },
            other => other,
        }
    }

    /// Whether the cluster could not be reached at all (as opposed to failing mid-scan).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

/// Credentials for Cassandra's PasswordAuthenticator. Never printed.
#[derive(Clone)]
pub struct CassandraCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for CassandraCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

async fn open_session(
    contact_points: &[String],
    credentials: Option<&CassandraCredentials>,
    consistency: Consistency,
    options: &CassandraScanOptions,
) -> Result<Session, CassandraError> {
    let profile = ExecutionProfile::builder()
        .consistency(consistency)
        .request_timeout(Some(options.request_timeout))
        .build()
        .into_handle();
    let mut builder = SessionBuilder::new()
        .known_nodes(contact_points)
        .connection_timeout(options.connect_timeout)
        .default_execution_profile_handle(profile);
    if let Some(credentials) = credentials {
        builder = builder.user(&credentials.username, &credentials.password);
    }
    builder
        .build()
        .await
        .map_err(|source| CassandraError::Connect {
            contact_points: contact_points.join(","),
            source: Box::new(source),
        })
}

/// A read-only view of one Cassandra cluster for the scan.
pub struct CassandraStore {
    session: Session,
    target: String,
    options: CassandraScanOptions,
    /// `None` until read: whether the token ring is Murmur3's, which ranges can split.
    murmur3: OnceCell<bool>,
    index: OnceCell<Arc<CoordinatorIndex>>,
    point_read: OnceCell<PreparedStatement>,
    /// Coordinator rows read by id (`None`: no row), so each is read once.
    rows_cache: Mutex<HashMap<String, Option<CoordinatorRow>>>,
    /// Transactions with PREPARED or DELETED records, gathered by phase 1.
    unresolved: Mutex<HashSet<String>>,
    /// Of those, the ids the index calls COMMITTED but a point read does not (a hash
    /// collision): records of these are always looked up exactly.
    suspects: OnceCell<HashSet<String>>,
    /// Phase 1's unconfirmed COMMITTED records per table; `None` when over the limit.
    stash: Mutex<HashMap<TableRef, Option<Vec<ObservedRecord>>>>,
    /// The partition key columns of each discovered table, for `token(…)`.
    partition_keys: Mutex<HashMap<TableRef, Vec<String>>>,
}

impl CassandraStore {
    /// Connects with the default scan options and `consistency`.
    pub async fn connect(
        contact_points: &[String],
        credentials: Option<&CassandraCredentials>,
        consistency: ReadConsistency,
    ) -> Result<Self, CassandraError> {
        Self::connect_with(
            contact_points,
            credentials,
            CassandraScanOptions {
                consistency,
                ..CassandraScanOptions::default()
            },
        )
        .await
    }

    pub async fn connect_with(
        contact_points: &[String],
        credentials: Option<&CassandraCredentials>,
        options: CassandraScanOptions,
    ) -> Result<Self, CassandraError> {
        let session = open_session(
            contact_points,
            credentials,
            options.consistency.to_cql(),
            &options,
        )
        .await?;
        Ok(Self {
            session,
            target: format!("cassandra://{}", contact_points.join(",")),
            options,
            murmur3: OnceCell::new(),
            index: OnceCell::new(),
            point_read: OnceCell::new(),
            rows_cache: Mutex::default(),
            unresolved: Mutex::default(),
            suspects: OnceCell::new(),
            stash: Mutex::default(),
            partition_keys: Mutex::default(),
        })
    }

    /// `release_version` of the node the driver asks: the readiness probe of a local node.
    pub async fn release_version(&self) -> Result<String, CassandraError> {
        let (version, _) = self.local_info().await?;
        Ok(version)
    }

    async fn local_info(&self) -> Result<(String, String), CassandraError> {
        let error = |source| CassandraError::Version {
            target: self.target.clone(),
            source,
        };
        let rows = self
            .query_all::<(Option<String>, Option<String>)>(
                "SELECT release_version, partitioner FROM system.local",
                Consistency::One,
            )
            .await
            .map_err(error)?;
        let (version, partitioner) = rows
            .into_iter()
            .next()
            .ok_or_else(|| error(CqlFailure::Unexpected("system.local is empty".into())))?;
        Ok((version.unwrap_or_default(), partitioner.unwrap_or_default()))
    }

    async fn query_all<R>(&self, cql: &str, consistency: Consistency) -> Result<Vec<R>, CqlFailure>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let mut statement = scylla::statement::Statement::new(cql);
        statement.set_consistency(consistency);
        statement.set_page_size(self.options.page_size);
        let mut rows = Vec::new();
        let mut pager = self
            .session
            .query_iter(statement, &[])
            .await
            .map_err(|e| CqlFailure::Unexpected(e.to_string()))?
            .rows_stream::<R>()
            .map_err(|e| CqlFailure::Unexpected(e.to_string()))?;
        while let Some(row) = pager.next().await {
            rows.push(row.map_err(|e| CqlFailure::Unexpected(e.to_string()))?);
        }
        Ok(rows)
    }

    /// The table's partition key, as discovered; empty (no token split) if unknown.
    fn partition_keys_of(&self, table: &TableRef) -> Vec<String> {
        self.partition_keys
            .lock()
            .expect("not poisoned")
            .get(table)
            .cloned()
            .unwrap_or_default()
    }

    async fn is_murmur3(&self) -> Result<bool, CassandraError> {
        self.murmur3
            .get_or_try_init(|| async {
                let (_, partitioner) = self.local_info().await?;
                Ok(partitioner == MURMUR3)
            })
            .await
            .copied()
    }

    async fn prepare(&self, cql: &str) -> Result<PreparedStatement, CqlFailure> {
        let mut prepared = self.session.prepare(cql).await?;
        prepared.set_page_size(self.options.page_size);
        prepared.set_is_idempotent(true);
        Ok(prepared)
    }

    /// Reads every row of `SELECT {columns} FROM {table}` (token-range split when the ring
    /// is Murmur3's), folding each range's rows into an accumulator with `visit`, then
    /// merging the accumulators with `merge`.
    async fn scan_table<A, V, M>(
        &self,
        table: &TableRef,
        columns: &str,
        partition_keys: &[String],
        visit: V,
        merge: M,
    ) -> Result<A, CassandraError>
    where
        A: Default,
        V: Fn(&mut A, ColumnIterator<'_, '_>) -> Result<(), CqlFailure>,
        M: Fn(&mut A, A),
    {
        let error = |source| CassandraError::Scan {
            table: table.to_string(),
            source,
        };
        let from = format!("SELECT {columns} FROM {}", cql_table(table));
        let split = self.options.split_token_ranges
            && self.options.ranges > 1
            && !partition_keys.is_empty()
            && self.is_murmur3().await?;
        if !split {
            let prepared = self.prepare(&from).await.map_err(error)?;
            let mut acc = A::default();
            self.read_pages(&prepared, (), &mut acc, &visit)
                .await
                .map_err(error)?;
            return Ok(acc);
        }
        let prepared = self
            .prepare(&format!("{from}{}", token_range_filter(partition_keys)))
            .await
            .map_err(error)?;
        let prepared = &prepared;
        let visit = &visit;
        stream::iter(token_ranges(self.options.ranges))
            .map(|range| async move {
                let mut acc = A::default();
                self.read_pages(prepared, range, &mut acc, visit).await?;
                Ok::<A, CqlFailure>(acc)
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .try_fold(A::default(), |mut total, part| {
                merge(&mut total, part);
                async { Ok(total) }
            })
            .await
            .map_err(error)
    }

    async fn read_pages<A, V>(
        &self,
        prepared: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        acc: &mut A,
        visit: &V,
    ) -> Result<(), CqlFailure>
    where
        V: Fn(&mut A, ColumnIterator<'_, '_>) -> Result<(), CqlFailure>,
    {
        let mut paging = PagingState::start();
        loop {
            let (result, response) = self
                .session
                .execute_single_page(prepared, &values, paging)
                .await?;
            let rows = result.into_rows_result()?;
            for row in rows.rows::<ColumnIterator>()? {
                visit(acc, row?)?;
            }
            match response.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(()),
                ControlFlow::Continue(next) => paging = next,
            }
        }
    }

    /// The Coordinator, read once, whichever phase needs it first.
    async fn coordinator_index(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<Arc<CoordinatorIndex>, CassandraError> {
        self.index
            .get_or_try_init(|| async {
                let columns = if coordinator.has_child_ids {
                    "tx_id, tx_state, tx_created_at, tx_child_ids"
                } else {
                    "tx_id, tx_state, tx_created_at"
                };
                let hasher = RandomState::new();
                let builder = self
                    .scan_table(
                        &coordinator.table,
                        columns,
                        &["tx_id".to_owned()],
                        |acc: &mut IndexBuilder, mut row| {
                            let row = decode_coordinator_row(&mut row)?;
                            acc.add(&hasher, row);
                            Ok(())
                        },
                        IndexBuilder::merge,
                    )
                    .await
                    .map_err(|e| match e {
                        CassandraError::Scan { table, source } => {
                            CassandraError::Coordinator { table, source }
                        }
                        other => other,
                    })?;
                Ok(Arc::new(builder.build(hasher, coordinator)))
            })
            .await
            .cloned()
    }

    /// The Coordinator row keyed by `tx_id`, read at most once.
    async fn coordinator_row(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<CoordinatorRow>, CassandraError> {
        if let Some(row) = self.rows_cache.lock().expect("not poisoned").get(tx_id) {
            return Ok(row.clone());
        }
        let error = |source| CassandraError::PointRead {
            table: coordinator.table.to_string(),
            tx_id: tx_id.to_owned(),
            source,
        };
        let prepared = self
            .point_read
            .get_or_try_init(|| async {
                let columns = if coordinator.has_child_ids {
                    "tx_id, tx_state, tx_created_at, tx_child_ids"
                } else {
                    "tx_id, tx_state, tx_created_at"
                };
                self.prepare(&format!(
                    "SELECT {columns} FROM {} WHERE tx_id = ?",
                    cql_table(&coordinator.table)
                ))
                .await
            })
            .await
            .map_err(error)?;
        let result = self
            .session
            .execute_unpaged(prepared, (tx_id,))
            .await
            .map_err(|e| error(e.into()))?
            .into_rows_result()
            .map_err(|e| error(e.into()))?;
        let mut found = None;
        for row in result
            .rows::<ColumnIterator>()
            .map_err(|e| error(e.into()))?
        {
            let mut row = row.map_err(|e| error(e.into()))?;
            found = Some(decode_coordinator_row(&mut row).map_err(error)?);
        }
        self.rows_cache
            .lock()
            .expect("not poisoned")
            .insert(tx_id.to_owned(), found.clone());
        Ok(found)
    }

    /// The Coordinator rows for one transaction id, exactly what the SQL backends' joins
    /// return: the row keyed by the id and, for a group-commit id, its parent's row.
    async fn coordinator_rows(
        &self,
        coordinator: &CoordinatorSchema,
        index: &CoordinatorIndex,
        tx_id: &str,
    ) -> Result<CoordinatorRows, CassandraError> {
        index
            .rows_with(tx_id, async |id: &str| {
                self.coordinator_row(coordinator, id).await
            })
            .await
    }

    /// Attaches the Coordinator rows to records, `concurrency` point reads at a time.
    async fn attach_rows(
        &self,
        coordinator: &CoordinatorSchema,
        index: &CoordinatorIndex,
        records: Vec<ObservedRecord>,
    ) -> Result<Vec<ObservedRecord>, CassandraError> {
        stream::iter(records)
            .map(|mut record| async move {
                if let Some(tx_id) = record.meta.tx_id.as_deref() {
                    record.coordinator = self.coordinator_rows(coordinator, index, tx_id).await?;
                }
                Ok::<_, CassandraError>(record)
            })
            .buffered(self.options.concurrency.max(1))
            .try_collect()
            .await
    }

    /// The unresolved transactions the index calls COMMITTED but whose rows do not: a
    /// hash collision. Computed once, after every table's phase 1.
    async fn suspects(
        &self,
        coordinator: &CoordinatorSchema,
        index: &CoordinatorIndex,
    ) -> Result<&HashSet<String>, CassandraError> {
        self.suspects
            .get_or_try_init(|| async {
                let ids: Vec<String> = self
                    .unresolved
                    .lock()
                    .expect("not poisoned")
                    .iter()
                    .filter(|id| index.look_up(id) == Lookup::Committed)
                    .cloned()
                    .collect();
                let mut suspects = HashSet::new();
                for id in ids {
                    let rows = self.coordinator_rows(coordinator, index, &id).await?;
                    if !matches!(
                        CoordinatorState::look_up(&id, &rows),
                        CoordinatorState::Committed { .. }
                    ) {
                        suspects.insert(id);
                    }
                }
                Ok(suspects)
            })
            .await
    }

    /// Heap bytes of the Coordinator index and its row count, once loaded.
    pub fn coordinator_index_size(&self) -> Option<(usize, u64)> {
        self.index
            .get()
            .map(|index| (index.heap_bytes(), index.stats.rows))
    }

    /// Reads `columns` of every row of `table` as one stream of pages and counts the rows,
    /// decoding nothing: the baseline the benchmark compares the parallel scan with.
    pub async fn count_single_stream(
        &self,
        table: &TableRef,
        columns: &[&str],
    ) -> Result<u64, CassandraError> {
        let error = |source| CassandraError::Scan {
            table: table.to_string(),
            source,
        };
        let columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let prepared = self
            .prepare(&format!(
                "SELECT {} FROM {}",
                columns.join(", "),
                cql_table(table)
            ))
            .await
            .map_err(error)?;
        let mut count = 0_u64;
        self.read_pages(&prepared, (), &mut count, &|count: &mut u64, _row| {
            *count += 1;
            Ok(())
        })
        .await
        .map_err(error)?;
        Ok(count)
    }
}

impl super::Store for CassandraStore {
    type Error = CassandraError;

    /// Reads `system_schema.columns` and decides what to scan. There is no ScalarDB
    /// metadata table on Cassandra: a table is transactional when it has the ten metadata
    /// columns.
    async fn discover(
        &self,
        settings: &DiscoverySettings<'_>,
    ) -> Result<Discovery, CassandraError> {
        type ColumnRow = (String, String, String, String, i32, String);
        // system_schema is local to each node: wait until every node has the same schema,
        // so discovery does not depend on which node answers.
        self.session
            .await_schema_agreement()
            .await
            .map_err(|e| CassandraError::Catalog {
                target: self.target.clone(),
                source: CqlFailure::Unexpected(format!(
                    "the nodes do not agree on the schema: {e}"
                )),
            })?;
        let rows = self
            .query_all::<ColumnRow>(
                "SELECT keyspace_name, table_name, column_name, kind, position, type \
                 FROM system_schema.columns",
                Consistency::One,
            )
            .await
            .map_err(|source| CassandraError::Catalog {
                target: self.target.clone(),
                source,
            })?;
        let (discovery, partition_keys) = discover_from_columns(rows, settings);
        *self.partition_keys.lock().expect("not poisoned") = partition_keys;
        Ok(discovery)
    }

    /// Counts and watermarks of the Coordinator and a sample of its invalid rows.
    async fn scan_coordinator(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<CoordinatorScan, CassandraError> {
        let index = self.coordinator_index(coordinator).await?;
        Ok(CoordinatorScan {
            table: Some(coordinator.table.clone()),
            rows: index.stats.rows,
            committed: index.stats.committed,
            aborted: index.stats.aborted,
            max_created_at: index.stats.max_created_at,
            min_created_at: index.stats.min_created_at,
            // The index is folded in token order: no reference instant is known before it
            // ends, so the Coordinator's windows are not counted here.
            recent_committed: None,
            has_child_ids: coordinator.has_child_ids,
            has_write_set: coordinator.has_write_set,
            invalid_rows: index.stats.invalid_sample.clone(),
            invalid_count: index.stats.invalid_count,
        })
    }

    /// Counts, watermarks and every record that is not plainly committed.
    async fn scan_exceptional(
        &self,
        table: &TableSchema,
        coordinator: Option<&CoordinatorSchema>,
    ) -> Result<TableScan, CassandraError> {
        let index = match coordinator {
            Some(coordinator) => Some(self.coordinator_index(coordinator).await?),
            None => None,
        };
        let limit = self.options.unconfirmed_stash_limit;
        let index_ref = index.as_deref();
        // The Coordinator's newest row anchors the table's rate windows (`analyze/cut.rs`).
        let reference = index_ref.and_then(|index| index.stats.max_created_at);
        let phase = self
            .scan_table(
                &table.table,
                &record_columns(table),
                &self.partition_keys_of(&table.table),
                |acc: &mut PhaseOne, mut row| {
                    let raw = decode_meta_lazy(&mut row)?;
                    let meta = &raw.meta;
                    acc.scan.records += 1;
                    acc.scan.max_prepared_at = acc.scan.max_prepared_at.max(meta.tx_prepared_at);
                    acc.scan.max_committed_at = acc.scan.max_committed_at.max(meta.tx_committed_at);
                    if let Some(reference) = reference {
                        acc.scan
                            .recent
                            .get_or_insert_with(|| Box::new(RecentCommits::new(reference)))
                            .add(meta.tx_committed_at);
                        acc.transactions.add(reference, raw.tx_id, meta);
                    }
                    if !meta.is_plainly_committed() {
                        let key = decode_key(table, &mut row)?;
                        acc.scan.exceptional.push(observed(key, raw.into_meta()));
                    } else if let (Some(index), Some(tx_id), false) =
                        (index_ref, raw.tx_id, acc.overflow)
                    {
                        if index.look_up(tx_id) == Lookup::Committed {
                            // Confirmed: nothing to keep.
                        } else if acc.unconfirmed.len() >= limit {
                            acc.overflow = true;
                            acc.unconfirmed = Vec::new();
                        } else {
                            let key = decode_key(table, &mut row)?;
                            acc.unconfirmed.push(observed(key, raw.into_meta()));
                        }
                    }
                    Ok(())
                },
                |total: &mut PhaseOne, part| total.merge(part, limit),
            )
            .await?;
        let PhaseOne {
            mut scan,
            unconfirmed,
            overflow,
            transactions,
        } = phase;
        if let Some(recent) = scan.recent.as_deref_mut() {
            recent.transactions = transactions.counts(recent.reference_ms);
        }
        {
            let mut unresolved = self.unresolved.lock().expect("not poisoned");
            for record in &scan.exceptional {
                if let (StoredState::Known(TxState::Prepared | TxState::Deleted), Some(tx_id)) =
                    (record.meta.state(), &record.meta.tx_id)
                {
                    unresolved.insert(tx_id.clone());
                }
            }
        }
        if let (Some(coordinator), Some(index)) = (coordinator, &index) {
            let records = std::mem::take(&mut scan.exceptional);
            scan.exceptional = self.attach_rows(coordinator, index, records).await?;
            self.stash
                .lock()
                .expect("not poisoned")
                .insert(table.table.clone(), (!overflow).then_some(unconfirmed));
        }
        Ok(scan)
    }

    /// Files the COMMITTED records whose transaction the Coordinator does not confirm.
    async fn scan_unconfirmed(
        &self,
        table: &TableSchema,
        coordinator: &CoordinatorSchema,
        retention: &Retention,
        scan: &mut TableScan,
    ) -> Result<(), CassandraError> {
        let index = self.coordinator_index(coordinator).await?;
        let suspects = self.suspects(coordinator, &index).await?;
        let stashed = self
            .stash
            .lock()
            .expect("not poisoned")
            .remove(&table.table)
            .flatten();
        let needs_look =
            |tx_id: &str| index.look_up(tx_id) != Lookup::Committed || suspects.contains(tx_id);
        let part = match stashed {
            Some(records) if suspects.is_empty() => {
                let mut part = PhaseTwo::default();
                for record in records {
                    part.file(|id| index.rows_without_reading(id), retention, record);
                }
                part
            }
            _ => {
                let index_ref = &*index;
                self.scan_table(
                    &table.table,
                    &record_columns(table),
                    &self.partition_keys_of(&table.table),
                    |acc: &mut PhaseTwo, mut row| {
                        let raw = decode_meta_lazy(&mut row)?;
                        let candidate = raw.meta.tx_state == Some(3)
                            && raw.meta.tx_version.is_some_and(|v| v >= 1)
                            && raw.tx_id.is_some_and(needs_look);
                        if candidate {
                            let key = decode_key(table, &mut row)?;
                            acc.file(
                                |id| index_ref.rows_without_reading(id),
                                retention,
                                observed(key, raw.into_meta()),
                            );
                        }
                        Ok(())
                    },
                    PhaseTwo::merge,
                )
                .await?
            }
        };
        let PhaseTwo { filed, to_read } = part;
        merge_filed(scan, filed);
        for record in self.attach_rows(coordinator, &index, to_read).await? {
            retention.file(scan, record);
        }
        Ok(())
    }
}

impl super::RecordSource for CassandraStore {
    async fn any_committed(
        &self,
        table: &TableSchema,
        wanted: &dyn Fn(&[&str]) -> bool,
    ) -> Result<bool, CassandraError> {
        self.scan_table(
            &table.table,
            "tx_id, tx_state, tx_version",
            &self.partition_keys_of(&table.table),
            |found: &mut bool, mut row| {
                let tx_id = text_ref(&mut row)?;
                let state = int_column(&mut row)?;
                let version = int_column(&mut row)?;
                if state == Some(3) && version.is_some_and(|v| v >= 1) {
                    *found |= tx_id.is_some_and(|id| wanted(&[id]));
                }
                Ok(())
            },
            |total: &mut bool, part| *total |= part,
        )
        .await
    }

    /// Token range by token range; only the `wanted` records' keys are decoded.
    async fn fold_committed<A, W, F, M>(
        &self,
        table: &TableSchema,
        wanted: &W,
        add: &F,
        merge: &M,
    ) -> Result<A, CassandraError>
    where
        A: Default,
        W: Fn(&str) -> bool,
        F: Fn(&mut A, ObservedRecord),
        M: Fn(&mut A, A),
    {
        self.scan_table(
            &table.table,
            &record_columns(table),
            &self.partition_keys_of(&table.table),
            |acc: &mut A, mut row| {
                let raw = decode_meta_lazy(&mut row)?;
                let candidate = raw.meta.tx_state == Some(3)
                    && raw.meta.tx_version.is_some_and(|v| v >= 1)
                    && raw.tx_id.is_some_and(wanted);
                if candidate {
                    let key = decode_key(table, &mut row)?;
                    add(acc, observed(key, raw.into_meta()));
                }
                Ok(())
            },
            merge,
        )
        .await
    }
}

impl super::CoordinatorSource for CassandraStore {
    async fn fold_coordinator<A, F, M>(
        &self,
        coordinator: &CoordinatorSchema,
        add: &F,
        merge: &M,
    ) -> Result<A, CassandraError>
    where
        A: Default,
        F: Fn(&mut A, CoordinatorRow),
        M: Fn(&mut A, A),
    {
        let columns = if coordinator.has_child_ids {
            "tx_id, tx_state, tx_created_at, tx_child_ids"
        } else {
            "tx_id, tx_state, tx_created_at"
        };
        self.scan_table(
            &coordinator.table,
            columns,
            &["tx_id".to_owned()],
            |acc: &mut A, mut row| {
                add(acc, decode_coordinator_row(&mut row)?);
                Ok(())
            },
            merge,
        )
        .await
        .map_err(CassandraError::of_coordinator)
    }

    async fn read_coordinator_row(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<CoordinatorRow>, CassandraError> {
        self.coordinator_row(coordinator, tx_id).await
    }
}

/// How many record point reads are in flight at once.
const RECORD_READS: usize = 16;

fn write_set_columns(coordinator: &CoordinatorSchema) -> String {
    if coordinator.has_child_ids {
        "tx_id, tx_state, tx_created_at, tx_child_ids, tx_write_set".to_owned()
    } else {
        "tx_id, tx_state, tx_created_at, tx_write_set".to_owned()
    }
}

/// `write_set_columns`' row (its `bytes` `None` when the write set is NULL).
fn decode_write_set_row(
    coordinator: &CoordinatorSchema,
    row: &mut ColumnIterator<'_, '_>,
) -> Result<Option<StoredWriteSet>, CqlFailure> {
    let tx_id = text_column(row)?.unwrap_or_default();
    let tx_state = int_column(row)?;
    let tx_created_at = int_column(row)?;
    let tx_child_ids = if coordinator.has_child_ids {
        text_column(row)?
    } else {
        None
    };
    let column = next_column(row)?;
    let typ = column.spec.typ();
    <Option<&[u8]> as DeserializeValue>::type_check(typ)?;
    let bytes = <Option<&[u8]> as DeserializeValue>::deserialize(typ, column.slice)?;
    Ok(Some(StoredWriteSet {
        row: CoordinatorRow {
            tx_id,
            tx_state,
            tx_created_at,
            tx_child_ids,
        },
        bytes: bytes.map(|bytes| {
            if bytes.len() > MAX_WRITE_SET_BYTES {
                Err(u64::try_from(bytes.len()).unwrap_or(u64::MAX))
            } else {
                Ok(bytes.to_vec())
            }
        }),
    }))
}

impl super::WriteSetSource for CassandraStore {
    /// Cassandra cannot count without streaming every row: the proof streams them once.
    async fn count_write_sets(
        &self,
        _coordinator: &CoordinatorSchema,
    ) -> Result<Option<u64>, CassandraError> {
        Ok(None)
    }

    /// Cassandra cannot filter on the state or the time, so every row crosses the wire; a
    /// BLOB over the bound is kept as its length only.
    async fn fold_write_sets<A, F, M>(
        &self,
        coordinator: &CoordinatorSchema,
        since: Option<i64>,
        window: Option<(i64, i64)>,
        add: &F,
        merge: &M,
    ) -> Result<A, CassandraError>
    where
        A: Default,
        F: Fn(&mut A, StoredWriteSet),
        M: Fn(&mut A, A),
    {
        let columns = write_set_columns(coordinator);
        self.scan_table(
            &coordinator.table,
            &columns,
            &["tx_id".to_owned()],
            |acc: &mut A, mut row| {
                if let Some(stored) = decode_write_set_row(coordinator, &mut row)? {
                    let created = stored.row.tx_created_at;
                    let logged = stored.bytes.is_some()
                        && since.is_none_or(|s| created.is_some_and(|c| c >= s));
                    let in_window = window.is_some_and(|(from, to)| {
                        created.is_some_and(|c| (from..=to).contains(&c))
                    });
                    let wanted = stored.row.tx_state == Some(3) && (logged || in_window);
                    if wanted {
                        add(acc, stored);
                    }
                }
                Ok(())
            },
            merge,
        )
        .await
        .map_err(CassandraError::of_coordinator)
    }

    async fn read_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<StoredWriteSet>, CassandraError> {
        let error = |source| CassandraError::PointRead {
            table: coordinator.table.to_string(),
            tx_id: tx_id.to_owned(),
            source,
        };
        let cql = format!(
            "SELECT {} FROM {} WHERE tx_id = ?",
            write_set_columns(coordinator),
            cql_table(&coordinator.table)
        );
        let prepared = self.prepare(&cql).await.map_err(error)?;
        let mut found = None;
        self.read_pages(
            &prepared,
            (tx_id,),
            &mut found,
            &|found: &mut Option<StoredWriteSet>, mut row| {
                if let Some(stored) = decode_write_set_row(coordinator, &mut row)?
                    && stored.bytes.is_some()
                {
                    found.get_or_insert(stored);
                }
                Ok(())
            },
        )
        .await
        .map_err(error)?;
        Ok(found)
    }

    /// One point read per key (CQL has no disjunction of keys), a few in flight; a key
    /// whose value is no literal of its column's type names no record.
    async fn read_records(
        &self,
        table: &TableSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<ObservedRecord>, CassandraError> {
        let error = |source| CassandraError::Scan {
            table: table.table.to_string(),
            source,
        };
        let select = format!(
            "SELECT {} FROM {}",
            record_columns(table),
            cql_table(&table.table)
        );
        let found: Vec<Option<ObservedRecord>> = stream::iter(keys)
            .map(|key| {
                let select = &select;
                async move {
                    // A value that is no literal of its column's type names no record.
                    let Ok(condition) = recovery::key_condition(table, key) else {
                        return Ok(None);
                    };
                    // The whole primary key: at most one row, so one unpaged request.
                    let mut statement =
                        scylla::statement::Statement::new(format!("{select} WHERE {condition}"));
                    statement.set_is_idempotent(true);
                    let result = self.session.query_unpaged(statement, ()).await?;
                    let rows = result.into_rows_result()?;
                    let mut record = None;
                    for row in rows.rows::<ColumnIterator>()? {
                        let mut row = row?;
                        let raw = decode_meta_lazy(&mut row)?;
                        let found_key = decode_key(table, &mut row)?;
                        if &found_key == key {
                            record = Some(observed(found_key, raw.into_meta()));
                        }
                    }
                    Ok::<_, CqlFailure>(record)
                }
            })
            .buffered(RECORD_READS)
            .try_collect()
            .await
            .map_err(error)?;
        Ok(found.into_iter().flatten().collect())
    }
}

/// Builds the catalog from `system_schema.columns` rows and runs the shared discovery.
fn discover_from_columns(
    rows: Vec<(String, String, String, String, i32, String)>,
    settings: &DiscoverySettings<'_>,
) -> (Discovery, HashMap<TableRef, Vec<String>>) {
    #[derive(Default)]
    struct Columns {
        partition: Vec<(i32, String, String)>,
        clustering: Vec<(i32, String, String)>,
        regular: Vec<(String, String)>,
    }
    let mut tables: BTreeMap<TableRef, Columns> = BTreeMap::new();
    for (keyspace, table, column, kind, position, cql_type) in rows {
        if keyspace.starts_with("system") {
            continue;
        }
        let columns = tables.entry(TableRef::new(keyspace, table)).or_default();
        match kind.as_str() {
            "partition_key" => columns.partition.push((position, column, cql_type)),
            "clustering" => columns.clustering.push((position, column, cql_type)),
            _ => columns.regular.push((column, cql_type)),
        }
    }
    let mut partition_keys = HashMap::new();
    let catalog: BTreeMap<TableRef, CatalogTable> = tables
        .into_iter()
        .map(|(table, mut columns)| {
            columns.partition.sort();
            partition_keys.insert(
                table.clone(),
                columns
                    .partition
                    .iter()
                    .map(|(_, name, _)| name.clone())
                    .collect(),
            );
            columns.clustering.sort();
            columns.regular.sort();
            let keys: Vec<(String, String)> = columns
                .partition
                .into_iter()
                .chain(columns.clustering)
                .map(|(_, name, cql_type)| (name, cql_type))
                .collect();
            let primary_key = keys.iter().map(|(name, _)| name.clone()).collect();
            let mut all = keys;
            all.extend(columns.regular);
            (
                table,
                CatalogTable {
                    columns: all,
                    primary_key,
                },
            )
        })
        .collect();
    let mut discovery = discover(&catalog, None, &[], settings);
    for note in &mut discovery.notes {
        if let DiscoveryNote::NoTransactionalTables { searched } = note {
            *searched = "Cassandra has no ScalarDB metadata table; searched every keyspace's \
                         tables for ScalarDB's metadata columns"
                .to_owned();
        }
    }
    (discovery, partition_keys)
}

/// `"ks"."table"`.
fn cql_table(table: &TableRef) -> String {
    format!("{}.{}", quote(&table.namespace), quote(&table.table))
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The metadata columns (in `decode_meta_lazy`'s order), then the key columns.
fn record_columns(table: &TableSchema) -> String {
    let mut columns = vec![
        "tx_id",
        "tx_state",
        "tx_version",
        "tx_prepared_at",
        "tx_committed_at",
        "before_tx_id",
        "before_tx_state",
        "before_tx_version",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    columns.extend(table.keys.iter().map(|k| quote(&k.name)));
    columns.join(", ")
}

/// ` WHERE token(pk…) > ? AND token(pk…) <= ?`: one token range, bound as `(lo, hi)`.
fn token_range_filter(partition_keys: &[String]) -> String {
    let token = format!(
        "token({})",
        partition_keys
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(", ")
    );
    format!(" WHERE {token} > ? AND {token} <= ?")
}

/// `(lo, hi]` bounds covering the whole Murmur3 ring in `n` ranges. Murmur3 never yields
/// `i64::MIN` as a token (it maps it to `i64::MAX`), so `> i64::MIN` misses nothing.
fn token_ranges(n: usize) -> Vec<(i64, i64)> {
    let n = i128::try_from(n.max(1)).unwrap_or(1);
    let min = i128::from(i64::MIN);
    let span = i128::from(i64::MAX) - min;
    let bound = |i: i128| -> i64 {
        i64::try_from(min + span * i / n).expect("bounds stay within the ring")
    };
    (0..n).map(|i| (bound(i), bound(i + 1))).collect()
}

fn observed(key: RecordKey, meta: RecordMeta) -> ObservedRecord {
    ObservedRecord {
        key,
        meta,
        coordinator: CoordinatorRows::default(),
    }
}

fn next_column<'f, 'm>(row: &mut ColumnIterator<'f, 'm>) -> Result<RawColumn<'f, 'm>, CqlFailure> {
    match row.next() {
        Some(column) => Ok(column?),
        None => Err(CqlFailure::Unexpected(
            "the row has fewer columns than selected".into(),
        )),
    }
}

fn text_column(row: &mut ColumnIterator<'_, '_>) -> Result<Option<String>, CqlFailure> {
    Ok(text_ref(row)?.map(str::to_owned))
}

/// A text column, borrowed from the page.
fn text_ref<'f>(row: &mut ColumnIterator<'f, '_>) -> Result<Option<&'f str>, CqlFailure> {
    let column = next_column(row)?;
    let typ = column.spec.typ();
    <Option<&str> as DeserializeValue>::type_check(typ)?;
    Ok(<Option<&str> as DeserializeValue>::deserialize(
        typ,
        column.slice,
    )?)
}

/// An integer column of any CQL integer type, widened to `i64`.
fn int_column(row: &mut ColumnIterator<'_, '_>) -> Result<Option<i64>, CqlFailure> {
    let column = next_column(row)?;
    let value =
        <Option<CqlValue> as DeserializeValue>::deserialize(column.spec.typ(), column.slice)?;
    match value {
        None => Ok(None),
        Some(CqlValue::Int(v)) => Ok(Some(i64::from(v))),
        Some(CqlValue::BigInt(v)) => Ok(Some(v)),
        Some(CqlValue::SmallInt(v)) => Ok(Some(i64::from(v))),
        Some(CqlValue::TinyInt(v)) => Ok(Some(i64::from(v))),
        Some(other) => Err(CqlFailure::Unexpected(format!(
            "column {} holds {other:?}, not an integer",
            column.spec.name()
        ))),
    }
}

/// A row's metadata with its two ids still borrowed from the page. Most rows are plainly
/// committed and need `tx_id` only for an index lookup, so the ids are copied only for the
/// records that are kept ([`LazyMeta::into_meta`]).
struct LazyMeta<'f> {
    tx_id: Option<&'f str>,
    before_tx_id: Option<&'f str>,
    /// The integer columns; the ids are empty placeholders (which allocate nothing) where
    /// present, so that `RecordMeta`'s own predicates answer as for the full row.
    meta: RecordMeta,
}

impl LazyMeta<'_> {
    fn into_meta(self) -> RecordMeta {
        RecordMeta {
            tx_id: self.tx_id.map(str::to_owned),
            before_tx_id: self.before_tx_id.map(str::to_owned),
            ..self.meta
        }
    }
}

/// The eight metadata columns, in `record_columns`' order.
fn decode_meta_lazy<'f>(row: &mut ColumnIterator<'f, '_>) -> Result<LazyMeta<'f>, CqlFailure> {
    let tx_id = text_ref(row)?;
    let tx_state = int_column(row)?;
    let tx_version = int_column(row)?;
    let tx_prepared_at = int_column(row)?;
    let tx_committed_at = int_column(row)?;
    let before_tx_id = text_ref(row)?;
    let placeholder = |id: Option<&str>| id.map(|_| String::new());
    Ok(LazyMeta {
        tx_id,
        before_tx_id,
        meta: RecordMeta {
            tx_id: placeholder(tx_id),
            tx_state,
            tx_version,
            tx_prepared_at,
            tx_committed_at,
            before_tx_id: placeholder(before_tx_id),
            before_tx_state: int_column(row)?,
            before_tx_version: int_column(row)?,
        },
    })
}

fn decode_key(
    table: &TableSchema,
    row: &mut ColumnIterator<'_, '_>,
) -> Result<RecordKey, CqlFailure> {
    let mut key = Vec::with_capacity(table.keys.len());
    for column in &table.keys {
        let raw = next_column(row)?;
        let value = <Option<CqlValue> as DeserializeValue>::deserialize(raw.spec.typ(), raw.slice)?;
        key.push((column.name.clone(), render_key(value)));
    }
    Ok(RecordKey(key))
}

/// `tx_id, tx_state, tx_created_at[, tx_child_ids]`.
fn decode_coordinator_row(row: &mut ColumnIterator<'_, '_>) -> Result<CoordinatorRow, CqlFailure> {
    let tx_id = text_column(row)?.unwrap_or_default();
    let tx_state = int_column(row)?;
    let tx_created_at = int_column(row)?;
    let tx_child_ids = if row.columns_remaining() > 0 {
        text_column(row)?
    } else {
        None
    };
    Ok(CoordinatorRow {
        tx_id,
        tx_state,
        tx_created_at,
        tx_child_ids,
    })
}

/// A key value as text, the same on every backend: integers in decimal, text as is,
/// booleans `true`/`false`, blobs in lowercase hex.
fn render_key(value: Option<CqlValue>) -> String {
    use std::fmt::Write as _;
    let Some(value) = value else {
        return "NULL".to_owned();
    };
    match value {
        CqlValue::Int(v) => v.to_string(),
        CqlValue::BigInt(v) => v.to_string(),
        CqlValue::SmallInt(v) => v.to_string(),
        CqlValue::TinyInt(v) => v.to_string(),
        CqlValue::Text(v) | CqlValue::Ascii(v) => v,
        CqlValue::Boolean(v) => v.to_string(),
        CqlValue::Blob(bytes) => bytes.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }),
        CqlValue::Float(v) => v.to_string(),
        CqlValue::Double(v) => v.to_string(),
        CqlValue::Uuid(v) => v.to_string(),
        CqlValue::Timeuuid(v) => v.to_string(),
        CqlValue::Inet(v) => v.to_string(),
        CqlValue::Timestamp(v) => jiff::Timestamp::from_millisecond(v.0)
            .map_or_else(|_| v.0.to_string(), |t| t.to_string()),
        CqlValue::Date(v) => {
            let days = i64::from(v.0) - (1_i64 << 31);
            jiff::civil::date(1970, 1, 1)
                .checked_add(jiff::Span::new().days(days))
                .map_or_else(|_| days.to_string(), |d| d.to_string())
        }
        CqlValue::Time(v) => jiff::civil::Time::MIN
            .checked_add(jiff::Span::new().nanoseconds(v.0))
            .map_or_else(|_| v.0.to_string(), |t| t.to_string()),
        other => format!("{other:?}"),
    }
}

/// What phase 1 gathers from one range (and, merged, from the table).
#[derive(Default)]
struct PhaseOne {
    scan: TableScan,
    unconfirmed: Vec<ObservedRecord>,
    overflow: bool,
    /// The distinct transactions of the rate windows (the ranges' counts do not add up).
    transactions: RecentTransactions,
}

impl PhaseOne {
    fn merge(&mut self, part: Self, limit: usize) {
        self.scan.records += part.scan.records;
        self.scan.max_prepared_at = self.scan.max_prepared_at.max(part.scan.max_prepared_at);
        self.scan.max_committed_at = self.scan.max_committed_at.max(part.scan.max_committed_at);
        match (&mut self.scan.recent, part.scan.recent) {
            (Some(total), Some(part)) => total.merge(&part),
            (total @ None, part) => *total = part,
            (Some(_), None) => {}
        }
        self.transactions.merge(part.transactions);
        self.scan.exceptional.extend(part.scan.exceptional);
        self.overflow |= part.overflow;
        if !self.overflow {
            self.unconfirmed.extend(part.unconfirmed);
            if self.unconfirmed.len() > limit {
                self.overflow = true;
            }
        }
        if self.overflow {
            self.unconfirmed = Vec::new();
        }
    }
}

/// A writable session to a node the caller created and will destroy (the drill's disposable
/// node, tests, benchmarks): the tool never writes to a cluster it scans.
pub struct CassandraWriter {
    session: Session,
}

/// A value bound to a [`CassandraWriter::insert`].
#[derive(Clone, Debug, PartialEq)]
pub enum CqlParam {
    Int(i32),
    BigInt(i64),
    Text(String),
    Null,
}

impl CassandraWriter {
    /// Connects without credentials.
    pub async fn connect(contact_points: &[String]) -> Result<Self, CassandraError> {
        Self::connect_as(contact_points, None).await
    }

    /// Connects as `credentials` (PasswordAuthenticator), or without any.
    pub async fn connect_as(
        contact_points: &[String],
        credentials: Option<&CassandraCredentials>,
    ) -> Result<Self, CassandraError> {
        let options = CassandraScanOptions::default();
        let session = open_session(contact_points, credentials, Consistency::One, &options).await?;
        Ok(Self { session })
    }

    /// Runs one statement that carries a secret (a password): a failure names `shown`
    /// instead of the statement.
    pub async fn execute_secret(&self, cql: &str, shown: &str) -> Result<(), CassandraError> {
        self.session
            .query_unpaged(cql, &[])
            .await
            .map(|_| ())
            .map_err(|source| CassandraError::Execute {
                statement: shown.to_owned(),
                source: source.into(),
            })
    }

    /// The first column of every row `cql` returns, as text (`None` for null).
    pub async fn texts(&self, cql: &str) -> Result<Vec<Option<String>>, CassandraError> {
        let error = |source: CqlFailure| CassandraError::Execute {
            statement: cql.to_owned(),
            source,
        };
        let result = self
            .session
            .query_unpaged(cql, &[])
            .await
            .map_err(|e| error(e.into()))?
            .into_rows_result()
            .map_err(|e| error(e.into()))?;
        let rows = result
            .rows::<(Option<String>,)>()
            .map_err(|e| error(e.into()))?;
        rows.map(|row| row.map(|(text,)| text).map_err(|e| error(e.into())))
            .collect()
    }

    /// Runs one statement.
    pub async fn execute(&self, cql: &str) -> Result<(), CassandraError> {
        self.session
            .query_unpaged(cql, &[])
            .await
            .map(|_| ())
            .map_err(|source| CassandraError::Execute {
                statement: cql.to_owned(),
                source: source.into(),
            })
    }

    /// Runs a script: statements end with `;` at the end of a line; `--` lines are comments.
    pub async fn execute_script(&self, script: &str) -> Result<(), CassandraError> {
        let mut statement = String::new();
        for line in script.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with("--") {
                continue;
            }
            statement.push_str(line);
            statement.push('\n');
            if trimmed.ends_with(';') {
                self.execute(statement.trim().trim_end_matches(';')).await?;
                statement.clear();
            }
        }
        if !statement.trim().is_empty() {
            self.execute(statement.trim()).await?;
        }
        Ok(())
    }

    /// Inserts `rows` with one prepared statement, `concurrency` requests in flight.
    pub async fn insert(
        &self,
        cql: &str,
        rows: impl IntoIterator<Item = Vec<CqlParam>>,
        concurrency: usize,
    ) -> Result<u64, CassandraError> {
        let error = |source: CqlFailure| CassandraError::Execute {
            statement: cql.to_owned(),
            source,
        };
        let prepared = self
            .session
            .prepare(cql)
            .await
            .map_err(|e| error(e.into()))?;
        let prepared = &prepared;
        stream::iter(rows)
            .map(|row| async move {
                let values: Vec<Option<CqlValue>> = row
                    .into_iter()
                    .map(|param| match param {
                        CqlParam::Int(v) => Some(CqlValue::Int(v)),
                        CqlParam::BigInt(v) => Some(CqlValue::BigInt(v)),
                        CqlParam::Text(v) => Some(CqlValue::Text(v)),
                        CqlParam::Null => None,
                    })
                    .collect();
                self.session
                    .execute_unpaged(prepared, values)
                    .await
                    .map(|_| 1_u64)
            })
            .buffer_unordered(concurrency.max(1))
            .try_fold(0_u64, |total, n| async move { Ok(total + n) })
            .await
            .map_err(|e| error(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ranges_cover_the_ring_without_gaps() {
        let ranges = token_ranges(7);
        assert_eq!(ranges.len(), 7);
        assert_eq!(ranges[0].0, i64::MIN);
        assert_eq!(ranges[6].1, i64::MAX);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
            assert!(pair[0].0 < pair[0].1);
        }
        assert_eq!(token_ranges(1), [(i64::MIN, i64::MAX)]);
    }

    #[test]
    fn keys_render_like_the_sql_backends() {
        assert_eq!(render_key(Some(CqlValue::Int(-7))), "-7");
        assert_eq!(render_key(Some(CqlValue::BigInt(1 << 40))), "1099511627776");
        assert_eq!(render_key(Some(CqlValue::Text("a b".into()))), "a b");
        assert_eq!(render_key(Some(CqlValue::Boolean(true))), "true");
        assert_eq!(render_key(Some(CqlValue::Blob(vec![0, 0xAB]))), "00ab");
        assert_eq!(render_key(None), "NULL");
    }
}
