//! One storage of a deployment, connected: a SQL database or a Cassandra cluster behind one
//! type, so the scan job can hold storages of different engines side by side. Each method
//! is the store's own, its error lifted into the app's.

use crate::analyze::{CoordinatorScan, ObservedRecord, Retention, TableScan};
use crate::config::{Backend, ScanConfig, Target};
use crate::error::Error;
use crate::model::write_set::StoredWriteSet;
use crate::model::{CoordinatorRow, RecordKey};
use crate::store::{
    CassandraStore, CoordinatorSchema, CoordinatorSource, Discovery, DiscoverySettings,
    IdComparison, RecordSource, SqlStore, Store, TableSchema, WriteSetSource,
};

pub(super) enum Connected {
    Sql(SqlStore),
    Cassandra(Box<CassandraStore>),
}

macro_rules! each {
    ($self:ident, $store:ident => $body:expr) => {
        match $self {
            Connected::Sql($store) => $body.map_err(Error::from),
            Connected::Cassandra($store) => $body.map_err(Error::from),
        }
    };
}

impl Connected {
    /// Connects as the single-storage scan does: `jobs + 1` SQL connections, and `extra`
    /// more (the Coordinator's storage: for its index and point reads, so they never wait
    /// for a table's scan to end).
    pub(super) async fn connect(
        target: &Target,
        config: &ScanConfig,
        extra: u32,
    ) -> Result<Self, Error> {
        if let Backend::Cassandra(cassandra) = &target.backend {
            let store = super::connect_cassandra(cassandra, config).await?;
            return Ok(Self::Cassandra(Box::new(store)));
        }
        let connections = u32::try_from(config.jobs)
            .unwrap_or(u32::MAX)
            .saturating_add(1)
            .saturating_add(extra);
        let store = SqlStore::connect(
            target.connection_url(),
            target.dialect,
            target.display(),
            connections,
            config.connect_timeout,
        )
        .await?;
        Ok(Self::Sql(store))
    }

    pub(super) async fn close(&self) {
        if let Self::Sql(store) = self {
            store.close().await;
        }
    }

    pub(super) async fn discover(
        &self,
        settings: &DiscoverySettings<'_>,
    ) -> Result<Discovery, Error> {
        each!(self, store => store.discover(settings).await)
    }

    pub(super) async fn scan_coordinator(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<CoordinatorScan, Error> {
        each!(self, store => store.scan_coordinator(coordinator).await)
    }

    pub(super) async fn scan_exceptional(
        &self,
        table: &TableSchema,
        coordinator: Option<&CoordinatorSchema>,
    ) -> Result<TableScan, Error> {
        each!(self, store => store.scan_exceptional(table, coordinator).await)
    }

    pub(super) async fn scan_unconfirmed(
        &self,
        table: &TableSchema,
        coordinator: &CoordinatorSchema,
        retention: &Retention,
        scan: &mut TableScan,
    ) -> Result<(), Error> {
        each!(self, store => store.scan_unconfirmed(table, coordinator, retention, scan).await)
    }

    pub(super) async fn any_committed(
        &self,
        table: &TableSchema,
        wanted: &dyn Fn(&[&str]) -> bool,
    ) -> Result<bool, Error> {
        each!(self, store => store.any_committed(table, wanted).await)
    }

    pub(super) async fn fold_committed<A, W, F, M>(
        &self,
        table: &TableSchema,
        wanted: &W,
        add: &F,
        merge: &M,
    ) -> Result<A, Error>
    where
        A: Default,
        W: Fn(&str) -> bool,
        F: Fn(&mut A, ObservedRecord),
        M: Fn(&mut A, A),
    {
        each!(self, store => store.fold_committed(table, wanted, add, merge).await)
    }

    pub(super) async fn fold_coordinator<A, F, M>(
        &self,
        coordinator: &CoordinatorSchema,
        add: &F,
        merge: &M,
    ) -> Result<A, Error>
    where
        A: Default,
        F: Fn(&mut A, CoordinatorRow),
        M: Fn(&mut A, A),
    {
        each!(self, store => store.fold_coordinator(coordinator, add, merge).await)
    }

    pub(super) async fn read_coordinator_row(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<CoordinatorRow>, Error> {
        each!(self, store => store.read_coordinator_row(coordinator, tx_id).await)
    }

    pub(super) async fn read_coordinator_rows(
        &self,
        coordinator: &CoordinatorSchema,
        tx_ids: &[&str],
    ) -> Result<Vec<CoordinatorRow>, Error> {
        each!(self, store => store.read_coordinator_rows(coordinator, tx_ids).await)
    }

    pub(super) async fn coordinator_id_comparison(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<IdComparison, Error> {
        each!(self, store => store.coordinator_id_comparison(coordinator).await)
    }

    pub(super) async fn count_write_sets(
        &self,
        coordinator: &CoordinatorSchema,
    ) -> Result<Option<u64>, Error> {
        each!(self, store => store.count_write_sets(coordinator).await)
    }

    pub(super) async fn fold_write_sets<A, F, M>(
        &self,
        coordinator: &CoordinatorSchema,
        since: Option<i64>,
        window: Option<(i64, i64)>,
        add: &F,
        merge: &M,
    ) -> Result<A, Error>
    where
        A: Default,
        F: Fn(&mut A, StoredWriteSet),
        M: Fn(&mut A, A),
    {
        each!(self, store => store.fold_write_sets(coordinator, since, window, add, merge).await)
    }

    pub(super) async fn read_write_set(
        &self,
        coordinator: &CoordinatorSchema,
        tx_id: &str,
    ) -> Result<Option<StoredWriteSet>, Error> {
        each!(self, store => store.read_write_set(coordinator, tx_id).await)
    }

    pub(super) async fn read_records(
        &self,
        table: &TableSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<ObservedRecord>, Error> {
        each!(self, store => store.read_records(table, keys).await)
    }
}
