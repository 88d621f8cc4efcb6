//! The only sqlx user: connects to PostgreSQL, MySQL/MariaDB or SQLite through sqlx's
//! `Any` driver, and runs the queries `dialect.rs` builds, read-only, streaming rows.
//!
//! Every session is made read-only when it opens (and every scan runs in a read-only
//! transaction), so a database the tool did not create is never written to. On PostgreSQL
//! every session also pins `search_path` to `pg_catalog, pg_temp`: a function or operator a
//! database owner put in a schema of the database's or role's default path is never the one
//! a query resolves to.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};

use super::dialect::{Dialect, RECORD_TAIL_COLUMNS};
use super::discover::{
    CatalogTable, DiscoveredTable, Discovery, DiscoverySettings, MetadataRow, VirtualTableRow,
    discover,
};
use super::{CoordinatorSchema, IdComparison, TableSchema};
use crate::analyze::{
    CoordinatorScan, DiscoveryNote, ObservedRecord, RATE_WINDOWS_MS, RecentCommits, Retention,
    TX_WINDOWS, TableScan,
};
use crate::model::write_set::{MAX_WRITE_SET_BYTES, StoredWriteSet};
use crate::model::{CoordinatorRow, CoordinatorRows, RecordKey, RecordMeta, TableRef};

/// How many invalid Coordinator rows are fetched as evidence.
const INVALID_COORDINATOR_SAMPLE: usize = 20;

/// Each message reads after "failed to"; the target travels as a field, the cause as source.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("connect to {target}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("connect to {target} within {timeout:?}")]
    ConnectTimeout {
        target: String,
        timeout: Duration,
        #[source]
        source: sqlx::Error,
    },
    #[error("read the database catalog of {target}")]
    Catalog {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("read ScalarDB's metadata table {table}")]
    Metadata {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("scan {table}")]
    Scan {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("read the Coordinator table {table}")]
    Coordinator {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("apply the write-ahead log of the SQLite copy {path}")]
    Settle {
        path: String,
        #[source]
        source: sqlx::Error,
    },
}

impl SqlError {
    /// Whether the target could not be reached at all (as opposed to failing mid-scan).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::ConnectTimeout { .. })
    }

    /// Whether the database refused the read for lack of a privilege.
    pub fn is_permission_denied(&self) -> bool {
        match self {
            Self::Catalog { source, .. }
            | Self::Metadata { source, .. }
            | Self::Scan { source, .. }
            | Self::Coordinator { source, .. } => {
                matches!(access_failure(source), Some(AccessFailure::Denied))
            }
            _ => false,
        }
    }
}

/// Why a read of a table failed, when the database says it plainly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AccessFailure {
    /// The table (or its schema or database) does not exist.
    Absent,
    /// It exists (or the database will not say), and the account may not read it:
    /// PostgreSQL 42501, MySQL 1142/1143/1044. MySQL answers 1142 for a table that does not
    /// exist in a database the account has no privilege on, so a denial may hide an absence;
    /// either way the account cannot tell, and that is what is reported.
    Denied,
}

fn access_failure(error: &sqlx::Error) -> Option<AccessFailure> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return match mysql.number() {
            1142 | 1143 | 1044 => Some(AccessFailure::Denied),
            1146 | 1049 => Some(AccessFailure::Absent),
            _ => None,
        };
    }
    match db.code().as_deref() {
        Some("42501") => Some(AccessFailure::Denied),
        Some("42P01" | "3F000") => Some(AccessFailure::Absent),
        _ if db.message().starts_with("no such table") => Some(AccessFailure::Absent),
        _ => None,
    }
}

/// The database's own words for a failure, for a finding.
fn database_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// A pooled connection in a read-only transaction ([`SqlStore::read_only_connection`]).
/// Dropped before [`Self::end`] (an error part-way, a scan cancelled), it is closed, never
/// returned to the pool: a PostgreSQL transaction that saw an error refuses every command
/// until it ends, and the next query on the connection, another table's, would fail with
/// "current transaction is aborted" instead of its own result.
struct ReadOnlyConnection {
    conn: PoolConnection<Any>,
    open: bool,
}

impl ReadOnlyConnection {
    /// Ends the transaction; the connection goes back to the pool.
    async fn end(mut self) -> Result<(), sqlx::Error> {
        self.conn.execute(sqlx::raw_sql("ROLLBACK")).await?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for ReadOnlyConnection {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for ReadOnlyConnection {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Drop for ReadOnlyConnection {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

/// A connection pool to one target.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    target: String,
    /// The Coordinator's newest `tx_created_at`, read once per scan: the reference instant
    /// the tables' rate windows end at (`analyze/cut.rs`).
    anchor: std::sync::Arc<tokio::sync::OnceCell<Option<i64>>>,
}

impl SqlStore {
    /// Connects, retrying only errors that can be transient (connection refused, a server
    /// still starting) until `timeout`; a wrong password or a missing database fails at once.
    pub async fn connect(
        url: &str,
        dialect: Dialect,
        target: &str,
        connections: u32,
        timeout: Duration,
    ) -> Result<Self, SqlError> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse().map_err(|source| SqlError::Connect {
            target: target.to_owned(),
            source,
        })?;
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = AnyPoolOptions::new()
                .max_connections(connections.max(1))
                .acquire_timeout(timeout)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        conn.execute(sqlx::raw_sql(match dialect {
                            Dialect::Postgres => {
                                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; \
                                 SET search_path = pg_catalog, pg_temp"
                            }
                            Dialect::MySql => "SET SESSION TRANSACTION READ ONLY",
                            Dialect::Sqlite => "PRAGMA query_only = ON",
                        }))
                        .await
                        .map(|_| ())
                    })
                })
                .connect_with(options.clone())
                .await;
            match attempt {
                Ok(pool) => {
                    return Ok(Self {
                        pool,
                        dialect,
                        target: target.to_owned(),
                        anchor: std::sync::Arc::default(),
                    });
                }
                Err(source) if is_transient(&source) => {
                    if Instant::now() >= deadline {
                        return Err(SqlError::ConnectTimeout {
                            target: target.to_owned(),
                            timeout,
                            source,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(source) => {
                    return Err(SqlError::Connect {
                        target: target.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn table_ref(&self, schema: String, table: &str) -> Option<TableRef> {
        match self.dialect {
            Dialect::Sqlite => Dialect::sqlite_table_ref(table),
            Dialect::Postgres | Dialect::MySql => Some(TableRef::new(schema, table)),
        }
    }

    async fn read_only_connection(&self) -> Result<ReadOnlyConnection, sqlx::Error> {
        let mut conn = ReadOnlyConnection {
            conn: self.pool.acquire().await?,
            open: true,
        };
        conn.execute(sqlx::raw_sql(self.dialect.begin_read_only()))
            .await?;
        Ok(conn)
    }

    /// The Coordinator row `sql` selects for `tx_id` (its first parameter), decoded.
    async fn read_coordinator_query<T>(
        &self,
        coordinator: &CoordinatorSchema,
        sql: &str,
        tx_id: &str,
        decode: impl Fn(&AnyRow) -> Result<Option<T>, sqlx::Error>,
    ) -> Result<Option<T>, SqlError> {
        let error = |source| SqlError::Coordinator {
            table: coordinator.table.to_string(),
            source,
        };
        let row = sqlx::query(sql)
            .bind(tx_id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(error)?;
        match row {
            Some(row) => decode(&row).map_err(error),
            None => Ok(None),
        }
    }

    /// Streams the Coordinator rows `sql` selects in one read-only transaction, folding each
    /// that `decode` turns into a value (`None`: skipped) into an accumulator with `add`.
    async fn fold_coordinator_query<A, T, D, F>(
        &self,
        coordinator: &CoordinatorSchema,
        sql: &str,
        decode: D,
        add: &F,
    ) -> Result<A, SqlError>
    where
        A: Default,
        D: Fn(&AnyRow) -> Result<Option<T>, sqlx::Error>,
        F: Fn(&mut A, T),
    {
        let error = |source| SqlError::Coordinator {
            table: coordinator.table.to_string(),
            source,
        };
        let mut acc = A::default();
        let mut conn = self.read_only_connection().await.map_err(error)?;
        let mut rows = sqlx::query(sql).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await.map_err(error)? {
            if let Some(value) = decode(&row).map_err(error)? {
                add(&mut acc, value);
            }
        }
        drop(rows);
        conn.end().await.map_err(error)?;
        Ok(acc)
    }

    /// Runs a probe (`Dialect::probe`): `None` when the read is allowed, else why not with
    /// the database's message; an error that says neither is returned as is.
    async fn probe(&self, sql: &str) -> Result<Option<(AccessFailure, String)>, sqlx::Error> {
        match sqlx::query(sql).fetch_all(&self.pool).await {
            Ok(_) => Ok(None),
            Err(error) => match access_failure(&error) {
                Some(failure) => Ok(Some((failure, database_message(&error)))),
                None => Err(error),
            },
        }
    }

    /// ScalarDB's metadata rows, and how many have a NULL table or column name (ScalarDB
    /// never writes those; they are left out and reported).
    async fn read_metadata(
        &self,
        metadata_schema: &str,
    ) -> Result<(Vec<MetadataRow>, u64), sqlx::Error> {
        let rows = sqlx::query(&self.dialect.scalardb_metadata(metadata_schema))
            .fetch_all(&self.pool)
            .await?;
        let mut metadata = Vec::with_capacity(rows.len());
        let mut invalid = 0;
        for row in &rows {
            let (Some(full_table_name), Some(column_name)) = (text(row, 0)?, text(row, 1)?) else {
                invalid += 1;
                continue;
            };
            metadata.push(MetadataRow {
                full_table_name,
                column_name,
                data_type: text(row, 2)?.unwrap_or_default(),
                key_type: text(row, 3)?,
            });
        }
        Ok((metadata, invalid))
    }

    /// ScalarDB's `virtual_tables` rows (a row with a NULL name is left out: it names no
    /// table to find).
    async fn read_virtual_tables(
        &self,
        metadata_schema: &str,
    ) -> Result<Vec<VirtualTableRow>, sqlx::Error> {
        let rows = sqlx::query(&self.dialect.scalardb_virtual_tables(metadata_schema))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if let (Some(full_table_name), Some(left_source), Some(right_source)) =
                (text(row, 0)?, text(row, 1)?, text(row, 2)?)
            {
                out.push(VirtualTableRow {
                    full_table_name,
                    left_source,
                    right_source,
                });
            }
        }
        Ok(out)
    }
}

/// A failed read of one of ScalarDB's own tables (`metadata`, `virtual_tables`): a denial is
/// a note, so the verdict says what could not be seen; anything else stops discovery,
/// naming the table.
fn metadata_read_failed(
    table: &TableRef,
    source: sqlx::Error,
    notes: &mut Vec<DiscoveryNote>,
) -> Result<(), SqlError> {
    if access_failure(&source) == Some(AccessFailure::Denied) {
        notes.push(DiscoveryNote::PermissionDenied {
            object: table.to_string(),
            reason: database_message(&source),
        });
        Ok(())
    } else {
        Err(SqlError::Metadata {
            table: table.to_string(),
            source,
        })
    }
}

/// Reads a text column. MySQL reports `CAST(… AS CHAR)` of a LONGTEXT as a BLOB type to the
/// `Any` driver, so bytes are accepted too, as UTF-8.
fn text(row: &AnyRow, index: usize) -> Result<Option<String>, sqlx::Error> {
    match row.try_get::<Option<String>, _>(index) {
        Ok(value) => Ok(value),
        Err(sqlx::Error::ColumnDecode { .. }) => {
            let bytes: Option<Vec<u8>> = row.try_get(index)?;
            bytes
                .map(|b| {
                    String::from_utf8(b).map_err(|e| sqlx::Error::ColumnDecode {
                        index: index.to_string(),
                        source: Box::new(e),
                    })
                })
                .transpose()
        }
        Err(e) => Err(e),
    }
}

/// A text column that must not be NULL.
fn required_text(row: &AnyRow, index: usize) -> Result<String, sqlx::Error> {
    text(row, index)?.ok_or_else(|| sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: "unexpected NULL".into(),
    })
}

impl SqlStore {
    /// The Coordinator's newest `tx_created_at`, read once and shared by every table.
    async fn anchor(&self, coordinator: &CoordinatorSchema) -> Result<Option<i64>, sqlx::Error> {
        let newest = self
            .anchor
            .get_or_try_init(|| async {
                let mut conn = self.read_only_connection().await?;
                let row = sqlx::query(&self.dialect.coordinator_newest(coordinator))
                    .fetch_one(&mut *conn)
                    .await?;
                let newest: Option<i64> = row.try_get(0)?;
                conn.end().await?;
                Ok::<_, sqlx::Error>(newest)
            })
            .await?;
        Ok(*newest)
    }
}

impl super::Store for SqlStore {
    type Error = SqlError;

    /// Reads the catalog and ScalarDB's metadata table, then decides what to scan.
    async fn discover(&self, settings: &DiscoverySettings<'_>) -> Result<Discovery, SqlError> {
        let catalog_error = |source| SqlError::Catalog {
            target: self.target.clone(),
            source,
        };
        let mut catalog: BTreeMap<TableRef, CatalogTable> = BTreeMap::new();
        let rows = sqlx::query(self.dialect.catalog_columns())
            .fetch_all(&self.pool)
            .await
            .map_err(catalog_error)?;
        for row in &rows {
            let (schema, table, column, data_type): (String, String, String, String) =
                decode_four(row).map_err(catalog_error)?;
            if let Some(table) = self.table_ref(schema, &table) {
                catalog
                    .entry(table)
                    .or_default()
                    .columns
                    .push((column, data_type));
            }
        }
        let rows = sqlx::query(self.dialect.catalog_primary_keys())
            .fetch_all(&self.pool)
            .await
            .map_err(catalog_error)?;
        for row in &rows {
            let schema = text(row, 0).map_err(catalog_error)?.unwrap_or_default();
            let table = required_text(row, 1).map_err(catalog_error)?;
            let column = required_text(row, 2).map_err(catalog_error)?;
            if let Some(table) = self.table_ref(schema, &table) {
                catalog.entry(table).or_default().primary_key.push(column);
            }
        }

        let metadata_table = TableRef::new(settings.metadata_schema, "metadata");
        let mut notes = Vec::new();
        let mut metadata = None;
        let listed = catalog.contains_key(&metadata_table);
        // MySQL's catalog hides what the account has no privilege on: an unlisted metadata
        // table may still be there, so the probe's error decides.
        let readable = listed
            || match self
                .probe(
                    &self
                        .dialect
                        .probe_scalardb_metadata(settings.metadata_schema),
                )
                .await
            {
                Ok(None) => true,
                Ok(Some((AccessFailure::Absent, _))) => false,
                Ok(Some((AccessFailure::Denied, reason))) => {
                    notes.push(DiscoveryNote::PermissionDenied {
                        object: metadata_table.to_string(),
                        reason,
                    });
                    false
                }
                Err(source) => {
                    return Err(SqlError::Metadata {
                        table: metadata_table.to_string(),
                        source,
                    });
                }
            };
        if readable {
            match self.read_metadata(settings.metadata_schema).await {
                Ok((rows, invalid)) => {
                    if invalid > 0 {
                        notes.push(DiscoveryNote::InvalidMetadataRows {
                            table: metadata_table.to_string(),
                            rows: invalid,
                        });
                    }
                    metadata = Some(rows);
                }
                Err(source) => metadata_read_failed(&metadata_table, source, &mut notes)?,
            }
        }
        // 3.17+ decoupled tables: where each one's metadata lies. Listed in the catalog
        // beside the metadata table; one the account may not read is reported like it.
        let virtual_tables_ref = TableRef::new(settings.metadata_schema, "virtual_tables");
        let mut virtual_tables = Vec::new();
        if catalog.contains_key(&virtual_tables_ref) {
            match self.read_virtual_tables(settings.metadata_schema).await {
                Ok(rows) => virtual_tables = rows,
                Err(source) => metadata_read_failed(&virtual_tables_ref, source, &mut notes)?,
            }
        }
        let mut discovery = discover(&catalog, metadata.as_deref(), &virtual_tables, settings);
        // A listed table the catalog does not show may be one the account cannot see.
        for table in &mut discovery.tables {
            let DiscoveredTable::Missing(missing) = table else {
                continue;
            };
            let probed = self
                .probe(&self.dialect.probe(missing))
                .await
                .map_err(catalog_error)?;
            if let Some((AccessFailure::Denied, reason)) = probed {
                *table = DiscoveredTable::Denied {
                    table: missing.clone(),
                    reason,
                };
            }
        }
        if discovery.coordinator.is_none() {
            let coordinator = TableRef::new(settings.coordinator_namespace, "state");
            let probed = self
                .probe(&self.dialect.probe(&coordinator))
                .await
                .map_err(catalog_error)?;
            if let Some((AccessFailure::Denied, reason)) = probed {
                notes.push(DiscoveryNote::PermissionDenied {
                    object: coordinator.to_string(),
                    reason,
                });
            }
        }
        discovery.notes.splice(0..0, notes);
        Ok(discovery)
    }

    async fn scan_coordinator(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<CoordinatorScan, SqlError> {
        let error = |source| SqlError::Coordinator {
            table: coordinator.table.to_string(),
            source,
        };
        // Its failure is the stats query's to report.
        let reference = self.anchor(coordinator).await.ok().flatten();
        let mut conn = self.read_only_connection().await.map_err(error)?;
        let stats = sqlx::query(&self.dialect.coordinator_stats(coordinator, reference))
            .fetch_one(&mut *conn)
            .await
            .map_err(error)?;
        let mut scan = CoordinatorScan {
            table: Some(coordinator.table.clone()),
            rows: count(&stats, 0).map_err(error)?,
            committed: count(&stats, 1).map_err(error)?,
            aborted: count(&stats, 2).map_err(error)?,
            max_created_at: stats.try_get(3).map_err(error)?,
            min_created_at: stats.try_get(5).map_err(error)?,
            recent_committed: windows(&stats, 6, reference).map_err(error)?.map(Box::new),
            has_child_ids: coordinator.has_child_ids,
            has_write_set: coordinator.has_write_set,
            invalid_count: count(&stats, 4).map_err(error)?,
            invalid_rows: Vec::new(),
        };
        if scan.invalid_count > 0 {
            let sql = self
                .dialect
                .invalid_coordinator_rows(coordinator, INVALID_COORDINATOR_SAMPLE);
            for row in sqlx::query(&sql)
                .fetch_all(&mut *conn)
                .await
                .map_err(error)?
            {
                scan.invalid_rows.push(
                    decode_coordinator_row(&row, 0)
                        .map_err(error)?
                        .unwrap_or_else(|| CoordinatorRow {
                            tx_id: "NULL".to_owned(),
                            tx_state: None,
                            tx_created_at: None,
                            tx_child_ids: None,
                        }),
                );
            }
        }
        let duplicated = sqlx::query(&self.dialect.duplicated_coordinator_count(coordinator))
            .fetch_one(&mut *conn)
            .await
            .map_err(error)?;
        let duplicated = count(&duplicated, 0).map_err(error)?;
        if duplicated > 0 {
            scan.invalid_count += duplicated;
            let sql = self
                .dialect
                .duplicated_coordinator_rows(coordinator, INVALID_COORDINATOR_SAMPLE);
            for row in sqlx::query(&sql)
                .fetch_all(&mut *conn)
                .await
                .map_err(error)?
            {
                if let Some(row) = decode_coordinator_row(&row, 0).map_err(error)? {
                    scan.invalid_rows.push(row);
                }
            }
        }
        conn.end().await.map_err(error)?;
        Ok(scan)
    }

    /// Counts, watermarks and every record that is not plainly committed.
    async fn scan_exceptional(
        &self,
        table: &TableSchema,
        coordinator: Option<&CoordinatorSchema>,
    ) -> Result<TableScan, SqlError> {
        let scan_error = |source| SqlError::Scan {
            table: table.table.to_string(),
            source,
        };
        let mut exceptional = Vec::new();
        let mut conn = self.read_only_connection().await.map_err(scan_error)?;
        let sql = self.dialect.exceptional_records(table, coordinator);
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await.map_err(scan_error)? {
            exceptional.push(decode_record(&row, table).map_err(scan_error)?);
        }
        drop(rows);
        conn.end().await.map_err(scan_error)?;
        // The reference is awaited holding no connection, so a full pool cannot starve
        // the one query that reads it.
        // A Coordinator the account cannot read is the Coordinator's finding, not this
        // table's: without the reference the table's rate is simply not counted.
        let reference = match coordinator {
            Some(coordinator) => self.anchor(coordinator).await.ok().flatten(),
            None => None,
        };
        let mut conn = self.read_only_connection().await.map_err(scan_error)?;
        let stats = sqlx::query(&self.dialect.table_stats(table, reference))
            .fetch_one(&mut *conn)
            .await
            .map_err(scan_error)?;
        let mut scan = TableScan {
            records: count(&stats, 0).map_err(scan_error)?,
            max_prepared_at: stats.try_get(1).map_err(scan_error)?,
            max_committed_at: stats.try_get(2).map_err(scan_error)?,
            recent: windows(&stats, 3, reference)
                .map_err(scan_error)?
                .map(Box::new),
            exceptional,
            ..TableScan::default()
        };
        // A table that lags gets its distinct transactions counted in a second pass; the
        // rest (most tables of a backup taken at one instant) are not read again.
        let newest = scan.max_prepared_at.max(scan.max_committed_at);
        if let Some(recent) = scan
            .recent
            .as_deref_mut()
            .filter(|r| r.worth_transactions(newest))
        {
            let sql = self.dialect.table_transactions(table, recent.reference_ms);
            let row = sqlx::query(&sql)
                .fetch_one(&mut *conn)
                .await
                .map_err(scan_error)?;
            let mut transactions = [0; TX_WINDOWS];
            for (i, slot) in transactions.iter_mut().enumerate() {
                *slot = count(&row, i).map_err(scan_error)?;
            }
            recent.transactions = Some(transactions);
        }
        conn.end().await.map_err(scan_error)?;
        Ok(scan)
    }

    /// Streams the COMMITTED records whose transaction the Coordinator does not confirm,
    /// filing each through `retention` so memory stays bounded.
    async fn scan_unconfirmed(
        &self,
        table: &TableSchema,
        coordinator: &CoordinatorSchema,
        retention: &Retention,
        scan: &mut TableScan,
    ) -> Result<(), SqlError> {
        let scan_error = |source| SqlError::Scan {
            table: table.table.to_string(),
            source,
        };
        let mut conn = self.read_only_connection().await.map_err(scan_error)?;
        let sql = self
            .dialect
            .unconfirmed_committed_records(table, coordinator);
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await.map_err(scan_error)? {
            retention.file(scan, decode_record(&row, table).map_err(scan_error)?);
        }
        drop(rows);
        conn.end().await.map_err(scan_error)
    }
}

impl super::RecordSource for SqlStore {
    async fn any_committed(
        &self,
        table: &TableSchema,
        wanted: &dyn Fn(&[&str]) -> bool,
    ) -> Result<bool, SqlError> {
        let scan_error = |source| SqlError::Scan {
            table: table.table.to_string(),
            source,
        };
        let mut conn = self.read_only_connection().await.map_err(scan_error)?;
        let sql = self.dialect.committed_tx_ids(table);
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        let mut batch: Vec<String> = Vec::with_capacity(ID_BATCH);
        let any_wanted = |batch: &[String]| {
            let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
            wanted(&ids)
        };
        let mut found = false;
        while let Some(row) = rows.try_next().await.map_err(scan_error)? {
            if let Some(id) = text(&row, 0).map_err(scan_error)? {
                batch.push(id);
            }
            if batch.len() == ID_BATCH {
                found = any_wanted(&batch);
                batch.clear();
                if found {
                    break;
                }
            }
        }
        found = found || (!batch.is_empty() && any_wanted(&batch));
        drop(rows);
        conn.end().await.map_err(scan_error)?;
        Ok(found)
    }

    /// Streams the table's COMMITTED records in one read-only transaction; only the
    /// `wanted` ones are decoded past their `tx_id`.
    async fn fold_committed<A, W, F, M>(
        &self,
        table: &TableSchema,
        wanted: &W,
        add: &F,
        _merge: &M,
    ) -> Result<A, SqlError>
    where
        A: Default,
        W: Fn(&str) -> bool,
        F: Fn(&mut A, ObservedRecord),
        M: Fn(&mut A, A),
    {
        let scan_error = |source| SqlError::Scan {
            table: table.table.to_string(),
            source,
        };
        let mut acc = A::default();
        let mut conn = self.read_only_connection().await.map_err(scan_error)?;
        let sql = self.dialect.committed_records(table);
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        let tx_id_at = table.keys.len();
        while let Some(row) = rows.try_next().await.map_err(scan_error)? {
            let Some(tx_id) = text(&row, tx_id_at).map_err(scan_error)? else {
                continue;
            };
            if wanted(&tx_id) {
                add(&mut acc, decode_record(&row, table).map_err(scan_error)?);
            }
        }
        drop(rows);
        conn.end().await.map_err(scan_error)?;
        Ok(acc)
    }
}

impl super::CoordinatorSource for SqlStore {
    async fn fold_coordinator<A, F, M>(
        &self,
        coordinator: &CoordinatorSchema,
        add: &F,
        _merge: &M,
    ) -> Result<A, SqlError>
    where
        A: Default,
        F: Fn(&mut A, CoordinatorRow),
        M: Fn(&mut A, A),
    {
        // A row with a NULL tx_id cannot be looked up by any record: not indexed
        // (scan_coordinator reports it as invalid).
        let sql = self.dialect.coordinator_rows(coordinator);
        self.fold_coordinator_query(coordinator, &sql, |row| decode_coordinator_row(row, 0), add)
            .await
    }

    /// The first row the database matches to `tx_id` by its own comparison, as ScalarDB's
    /// `Get` finds it: under a case-insensitive collation the row may be keyed `ABC` for
    /// `abc`.
    async fn read_coordinator_row(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<CoordinatorRow>, SqlError> {
        let sql = self.dialect.coordinator_rows_by_id(coordinator, 1);
        self.read_coordinator_query(coordinator, &sql, tx_id, |row| {
            decode_coordinator_row(row, 0)
        })
        .await
    }

    async fn coordinator_id_comparison(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<IdComparison, SqlError> {
        let (sql, binds) = self.dialect.coordinator_id_column(coordinator);
        let mut query = sqlx::query(sql);
        for value in binds {
            query = query.bind(value);
        }
        let error = |source| SqlError::Coordinator {
            table: coordinator.table.to_string(),
            source,
        };
        let row = query.fetch_optional(&self.pool).await.map_err(error)?;
        let column = row
            .map(|row| {
                Ok::<_, sqlx::Error>((
                    text(&row, 0)?.unwrap_or_default(),
                    text(&row, 1)?.unwrap_or_default(),
                    text(&row, 2)?.unwrap_or_default(),
                ))
            })
            .transpose()
            .map_err(error)?;
        Ok(IdComparison::of_column(
            self.dialect,
            column
                .as_ref()
                .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())),
        ))
    }

    /// `KEYS_PER_READ` ids a query. Only a row whose `tx_id` is exactly a requested id is
    /// kept (the caller files rows by their own ids); where the database compares ids
    /// otherwise ([`IdComparison::Collated`]), lookups read one id at a time instead.
    async fn read_coordinator_rows(
        &self,
        coordinator: &CoordinatorSchema,
        tx_ids: &[&str],
    ) -> Result<Vec<CoordinatorRow>, SqlError> {
        let error = |source| SqlError::Coordinator {
            table: coordinator.table.to_string(),
            source,
        };
        let mut found: Vec<CoordinatorRow> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for batch in tx_ids.chunks(KEYS_PER_READ) {
            let sql = self
                .dialect
                .coordinator_rows_by_id(coordinator, batch.len());
            let mut query = sqlx::query(&sql);
            for tx_id in batch {
                query = query.bind((*tx_id).to_owned());
            }
            for row in query.fetch_all(&self.pool).await.map_err(error)? {
                let Some(row) = decode_coordinator_row(&row, 0).map_err(error)? else {
                    continue;
                };
                if batch.contains(&row.tx_id.as_str()) && seen.insert(row.tx_id.clone()) {
                    found.push(row);
                }
            }
        }
        Ok(found)
    }
}

/// How many `tx_id`s `any_committed` asks about at once.
const ID_BATCH: usize = 256;

/// How many keys one record read binds (PostgreSQL allows 65535 parameters, SQLite 32766).
const KEYS_PER_READ: usize = 200;

impl super::WriteSetSource for SqlStore {
    async fn count_write_sets(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<Option<u64>, SqlError> {
        let error = |source| SqlError::Coordinator {
            table: coordinator.table.to_string(),
            source,
        };
        let row = sqlx::query(&self.dialect.committed_write_set_count(coordinator))
            .fetch_one(&self.pool)
            .await
            .map_err(error)?;
        count(&row, 0).map(Some).map_err(error)
    }

    async fn fold_write_sets<A, F, M>(
        &self,
        coordinator: &CoordinatorSchema,
        since: Option<i64>,
        window: Option<(i64, i64)>,
        add: &F,
        _merge: &M,
    ) -> Result<A, SqlError>
    where
        A: Default,
        F: Fn(&mut A, StoredWriteSet),
        M: Fn(&mut A, A),
    {
        let sql =
            self.dialect
                .committed_write_sets(coordinator, since, window, MAX_WRITE_SET_BYTES);
        self.fold_coordinator_query(coordinator, &sql, decode_write_set_row, add)
            .await
    }

    async fn read_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<StoredWriteSet>, SqlError> {
        let sql = self.dialect.write_set_row(coordinator, MAX_WRITE_SET_BYTES);
        self.read_coordinator_query(coordinator, &sql, tx_id, decode_write_set_row)
            .await
    }

    async fn read_records(
        &self,
        table: &TableSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<ObservedRecord>, SqlError> {
        let scan_error = |source| SqlError::Scan {
            table: table.table.to_string(),
            source,
        };
        let mut found = Vec::new();
        for batch in keys.chunks(KEYS_PER_READ) {
            let sql = self.dialect.records_by_key(table, batch.len());
            let mut query = sqlx::query(&sql);
            for key in batch {
                for column in &table.keys {
                    let value = key
                        .0
                        .iter()
                        .find(|(name, _)| name == &column.name)
                        .map(|(_, value)| value.clone())
                        .unwrap_or_default();
                    query = query.bind(value);
                }
            }
            for row in query.fetch_all(&self.pool).await.map_err(scan_error)? {
                let record = decode_record(&row, table).map_err(scan_error)?;
                // MySQL compares text case-insensitively: only the exact key is its record.
                if batch.contains(&record.key) {
                    found.push(record);
                }
            }
        }
        Ok(found)
    }
}

/// A row of `Dialect::committed_write_sets` (`None` for a NULL `tx_id`, which no record
/// can name).
fn decode_write_set_row(row: &AnyRow) -> Result<Option<StoredWriteSet>, sqlx::Error> {
    let Some(coordinator) = decode_coordinator_row(row, 0)? else {
        return Ok(None);
    };
    let bytes: Option<Vec<u8>> = row.try_get(4)?;
    let len: Option<i64> = row.try_get(5)?;
    let bytes = match (bytes, len) {
        (Some(bytes), _) => Some(Ok(bytes)),
        // The length of a BLOB over the bound crossed the wire, not the BLOB.
        (None, Some(len)) => Some(Err(u64::try_from(len).unwrap_or(0))),
        (None, None) => None,
    };
    Ok(Some(StoredWriteSet {
        row: coordinator,
        bytes,
    }))
}

fn is_transient(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
}

/// The rate windows a stats query counted from column `first` on, ending at `reference`.
fn windows(
    row: &AnyRow,
    first: usize,
    reference: Option<i64>,
) -> Result<Option<RecentCommits>, sqlx::Error> {
    let Some(reference) = reference else {
        return Ok(None);
    };
    let mut recent = RecentCommits::new(reference);
    for (i, slot) in recent.counts.iter_mut().enumerate() {
        *slot = count(row, first + i)?;
    }
    debug_assert_eq!(recent.counts.len(), RATE_WINDOWS_MS.len());
    Ok(Some(recent))
}

/// A NULL aggregate (SUM over no rows) counts as zero.
fn count(row: &AnyRow, index: usize) -> Result<u64, sqlx::Error> {
    let value: Option<i64> = row.try_get(index)?;
    Ok(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
}

fn decode_four(row: &AnyRow) -> Result<(String, String, String, String), sqlx::Error> {
    Ok((
        text(row, 0)?.unwrap_or_default(),
        required_text(row, 1)?,
        required_text(row, 2)?,
        text(row, 3)?.unwrap_or_default(),
    ))
}

fn decode_record(row: &AnyRow, table: &TableSchema) -> Result<ObservedRecord, sqlx::Error> {
    let key_len = table.keys.len();
    let mut key = Vec::with_capacity(key_len);
    for (index, column) in table.keys.iter().enumerate() {
        let value = text(row, index)?;
        key.push((
            column.name.clone(),
            value.unwrap_or_else(|| "NULL".to_owned()),
        ));
    }
    let at = |offset: usize| key_len + offset;
    // `Dialect::committed_records` leaves the Coordinator's eight columns out.
    let joined = row.len() == key_len + RECORD_TAIL_COLUMNS;
    debug_assert!(joined || row.len() == key_len + RECORD_TAIL_COLUMNS - 8);
    Ok(ObservedRecord {
        key: RecordKey(key),
        meta: RecordMeta {
            tx_id: text(row, at(0))?,
            tx_state: row.try_get(at(1))?,
            tx_version: row.try_get(at(2))?,
            tx_prepared_at: row.try_get(at(3))?,
            tx_committed_at: row.try_get(at(4))?,
            before_tx_id: text(row, at(5))?,
            before_tx_state: row.try_get(at(6))?,
            before_tx_version: row.try_get(at(7))?,
        },
        coordinator: if joined {
            CoordinatorRows {
                exact: decode_coordinator_row(row, at(8))?,
                parent: decode_coordinator_row(row, at(12))?,
            }
        } else {
            CoordinatorRows::default()
        },
    })
}

fn decode_coordinator_row(
    row: &AnyRow,
    start: usize,
) -> Result<Option<CoordinatorRow>, sqlx::Error> {
    let tx_id = text(row, start)?;
    Ok(match tx_id {
        None => None,
        Some(tx_id) => Some(CoordinatorRow {
            tx_id,
            tx_state: row.try_get(start + 1)?,
            tx_created_at: row.try_get(start + 2)?,
            tx_child_ids: text(row, start + 3)?,
        }),
    })
}

/// A value bound to a recovery write.
/// Brings a SQLite copy the tool owns (never a backup) to one self-contained file, as
/// SQLite's own next open of the original would: committed transactions in its `-wal` are
/// applied and a hot `-journal` is rolled back, then the log is checkpointed away, so the
/// read-only scan that follows sees exactly that state.
pub async fn settle_sqlite_copy(path: &std::path::Path) -> Result<(), SqlError> {
    use sqlx::Connection as _;
    let shown = path.display().to_string();
    let settle = |source| SqlError::Settle {
        path: shown.clone(),
        source,
    };
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false);
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(settle)?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut connection)
        .await
        .map_err(settle)?;
    sqlx::query("PRAGMA journal_mode = DELETE")
        .execute(&mut connection)
        .await
        .map_err(settle)?;
    connection.close().await.map_err(settle)
}
