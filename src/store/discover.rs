//! Discovery: which tables are ScalarDB's transactional tables, what their keys are, and
//! where the Coordinator is. Pure: it reads the catalog and ScalarDB's metadata rows that
//! `sql.rs` fetched, and decides nothing about consistency.

use std::collections::{BTreeMap, BTreeSet};

use super::{CoordinatorSchema, DecoupledSources, KeyColumn, KeyKind, TableSchema};
use crate::analyze::DiscoveryNote;
use crate::model::{TRANSACTION_META_COLUMNS, TableRef};

/// `--include` / `--exclude`: patterns on `namespace` or `namespace.table`, `*` a wildcard.
#[derive(Clone, Debug, Default)]
pub struct TableFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl TableFilter {
    pub fn accepts(&self, table: &TableRef) -> bool {
        let hit = |pattern: &String| {
            if pattern.contains('.') {
                glob_match(pattern, &table.to_string())
            } else {
                glob_match(pattern, &table.namespace)
            }
        };
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }
}

fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(remainder) = text.strip_prefix(prefix) else {
                return false;
            };
            (0..=remainder.len())
                .filter(|&i| remainder.is_char_boundary(i))
                .any(|i| glob_match(rest, &remainder[i..]))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveredTable {
    Present(TableSchema),
    /// Listed in ScalarDB's metadata, absent from the database.
    Missing(TableRef),
    /// Listed in ScalarDB's metadata, present, but the account may not read it (the
    /// database's catalog hides such tables on MySQL); `reason` is the database's message.
    Denied {
        table: TableRef,
        reason: String,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub tables: Vec<DiscoveredTable>,
    pub coordinator: Option<CoordinatorSchema>,
    pub notes: Vec<DiscoveryNote>,
    /// Whether ScalarDB's metadata table was found and used.
    pub from_scalardb_metadata: bool,
}

/// One table as the database catalog describes it.
#[derive(Clone, Debug, Default)]
pub struct CatalogTable {
    pub columns: Vec<(String, String)>,
    pub primary_key: Vec<String>,
}

impl CatalogTable {
    fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|(column, _)| column == name)
    }

    fn column_type(&self, name: &str) -> &str {
        self.columns
            .iter()
            .find(|(column, _)| column == name)
            .map_or("", |(_, data_type)| data_type.as_str())
    }

    fn is_transactional(&self) -> bool {
        TRANSACTION_META_COLUMNS.iter().all(|c| self.has_column(c))
    }

    fn keys(&self) -> Vec<KeyColumn> {
        self.primary_key
            .iter()
            .map(|name| KeyColumn {
                name: name.clone(),
                kind: KeyKind::from_type_name(self.column_type(name)),
                sql_type: self.column_type(name).to_owned(),
            })
            .collect()
    }

    /// The table as discovered: `keys` decided by ScalarDB's metadata or the catalog, the
    /// rest from the catalog.
    fn schema(&self, table: TableRef, mut keys: Vec<KeyColumn>) -> TableSchema {
        for key in &mut keys {
            key.sql_type = self.column_type(&key.name).to_owned();
        }
        let after_image_columns = self
            .columns
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                !TRANSACTION_META_COLUMNS.contains(&name.as_str())
                    && !keys.iter().any(|k| &k.name == *name)
                    && self.has_column(&format!("before_{name}"))
            })
            .cloned()
            .collect();
        TableSchema {
            table,
            keys,
            after_image_columns,
            decoupled: None,
        }
    }

    /// A decoupled table (3.17+) as discovered: its records' keys and metadata in `self`
    /// (`<t>_tx_metadata`), reported under the view's name; the columns a roll back restores
    /// are the data table's that have a `before_` twin here.
    fn decoupled_schema(
        &self,
        view: TableRef,
        sources: DecoupledSources,
        data: Option<&CatalogTable>,
        keys: Vec<KeyColumn>,
    ) -> TableSchema {
        let mut schema = self.schema(view, keys);
        schema.after_image_columns = data
            .map(|data| {
                data.columns
                    .iter()
                    .map(|(name, _)| name)
                    .filter(|name| {
                        !schema.keys.iter().any(|k| &k.name == *name)
                            && self.has_column(&format!("before_{name}"))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        schema.decoupled = Some(sources);
        schema
    }
}

/// One row of ScalarDB's `virtual_tables` (3.17+ transaction-metadata decoupling, in the
/// metadata schema): the table users name is a view joining two physical tables, one holding
/// the user columns, the other the key, the metadata and the before images.
#[derive(Clone, Debug)]
pub struct VirtualTableRow {
    pub full_table_name: String,
    pub left_source: String,
    pub right_source: String,
}

/// The decoupled tables: each metadata table with the view it belongs to and its data table.
struct Decoupled {
    by_metadata: BTreeMap<TableRef, (TableRef, TableRef)>,
    /// The views and data tables: never tables to scan as themselves.
    hidden: BTreeSet<TableRef>,
}

impl Decoupled {
    /// Which source holds the metadata is read from the catalog (ScalarDB puts it on the
    /// right, `<t>_tx_metadata`); a row whose names do not parse is left out, and its
    /// tables are then judged as any other.
    fn new(rows: &[VirtualTableRow], catalog: &BTreeMap<TableRef, CatalogTable>) -> Self {
        let mut decoupled = Self {
            by_metadata: BTreeMap::new(),
            hidden: BTreeSet::new(),
        };
        for row in rows {
            let (Some(view), Some(left), Some(right)) = (
                TableRef::parse_full_name(&row.full_table_name),
                TableRef::parse_full_name(&row.left_source),
                TableRef::parse_full_name(&row.right_source),
            ) else {
                continue;
            };
            let holds_metadata =
                |t: &TableRef| catalog.get(t).is_some_and(CatalogTable::is_transactional);
            let (data, metadata) = if holds_metadata(&left) && !holds_metadata(&right) {
                (right, left)
            } else {
                (left, right)
            };
            decoupled.hidden.insert(view.clone());
            decoupled.hidden.insert(data.clone());
            decoupled.by_metadata.insert(metadata, (view, data));
        }
        decoupled
    }

    /// The name a table is reported under: the view's for a metadata table.
    fn name_of(&self, table: &TableRef) -> TableRef {
        self.by_metadata
            .get(table)
            .map_or_else(|| table.clone(), |(view, _)| view.clone())
    }

    /// The table as discovered from `catalog_table` (the physical `table`) and its keys.
    fn schema(
        &self,
        table: &TableRef,
        catalog_table: &CatalogTable,
        catalog: &BTreeMap<TableRef, CatalogTable>,
        keys: Vec<KeyColumn>,
    ) -> TableSchema {
        match self.by_metadata.get(table) {
            Some((view, data)) => {
                let sources = DecoupledSources {
                    data: data.clone(),
                    metadata: table.clone(),
                };
                catalog_table.decoupled_schema(view.clone(), sources, catalog.get(data), keys)
            }
            None => catalog_table.schema(table.clone(), keys),
        }
    }
}

/// One row of ScalarDB's metadata table.
#[derive(Clone, Debug)]
pub struct MetadataRow {
    pub full_table_name: String,
    pub column_name: String,
    pub data_type: String,
    pub key_type: Option<String>,
}

pub struct DiscoverySettings<'a> {
    pub coordinator_namespace: &'a str,
    pub metadata_schema: &'a str,
    pub filter: &'a TableFilter,
}

/// Decides the tables to scan from the catalog and, when it exists, ScalarDB's metadata.
/// A decoupled table (`virtual_tables`) is scanned in its metadata table and reported under
/// its own name; its view and data table are not scanned.
pub fn discover(
    catalog: &BTreeMap<TableRef, CatalogTable>,
    metadata: Option<&[MetadataRow]>,
    virtual_tables: &[VirtualTableRow],
    settings: &DiscoverySettings<'_>,
) -> Discovery {
    let decoupled = Decoupled::new(virtual_tables, catalog);
    let coordinator_ref = TableRef::new(settings.coordinator_namespace, "state");
    let coordinator = catalog.get(&coordinator_ref).and_then(|table| {
        ["tx_id", "tx_state", "tx_created_at"]
            .iter()
            .all(|c| table.has_column(c))
            .then(|| CoordinatorSchema {
                table: coordinator_ref.clone(),
                has_child_ids: table.has_column("tx_child_ids"),
                has_write_set: table.has_column("tx_write_set"),
            })
    });
    // Only `<coordinator namespace>.state` is the Coordinator: a table elsewhere is scanned
    // by what it is, whatever its columns (an application column may be named
    // `tx_created_at`, and a Coordinator-shaped table in another namespace is not ScalarDB's).
    let is_candidate = |table: &TableRef| {
        *table != coordinator_ref
            && table.namespace != settings.metadata_schema
            && !decoupled.hidden.contains(table)
            && settings.filter.accepts(&decoupled.name_of(table))
    };

    let mut discovery = Discovery {
        coordinator,
        from_scalardb_metadata: metadata.is_some(),
        ..Discovery::default()
    };
    let mut listed = Vec::new();
    if let Some(rows) = metadata {
        let mut by_table: BTreeMap<&str, Vec<&MetadataRow>> = BTreeMap::new();
        for row in rows {
            by_table.entry(&row.full_table_name).or_default().push(row);
        }
        for (full_name, rows) in by_table {
            let Some(table) = TableRef::parse_full_name(full_name) else {
                continue;
            };
            listed.push(table.clone());
            if !is_candidate(&table) {
                continue;
            }
            let listed_meta: Vec<&str> = TRANSACTION_META_COLUMNS
                .iter()
                .copied()
                .filter(|c| rows.iter().any(|r| r.column_name == *c))
                .collect();
            if listed_meta.is_empty() {
                // A storage-only (non-transactional) table.
                continue;
            }
            // Listed with no metadata column but `tx_id` and `tx_state`: the shape of a
            // storage-only table such as another namespace's Coordinator, which ScalarDB does
            // not treat as transactional. Decided by the metadata columns, never by a column
            // such as `tx_created_at`; the database has the last word on a truncated listing.
            let record_shaped = listed_meta
                .iter()
                .any(|c| !matches!(*c, "tx_id" | "tx_state"));
            let catalog_transactional = catalog
                .get(&table)
                .is_some_and(CatalogTable::is_transactional);
            if !record_shaped && !catalog_transactional {
                continue;
            }
            let Some(catalog_table) = catalog.get(&table) else {
                discovery.tables.push(DiscoveredTable::Missing(table));
                continue;
            };
            let name = decoupled.name_of(&table);
            let metadata_keys: Vec<KeyColumn> = rows
                .iter()
                .filter(|r| r.key_type.as_deref() == Some("PARTITION"))
                .chain(
                    rows.iter()
                        .filter(|r| r.key_type.as_deref() == Some("CLUSTERING")),
                )
                .map(|r| KeyColumn {
                    name: r.column_name.clone(),
                    kind: KeyKind::from_type_name(&r.data_type),
                    sql_type: String::new(),
                })
                .collect();
            let mut missing: Vec<String> = TRANSACTION_META_COLUMNS
                .iter()
                .filter(|c| !listed_meta.contains(c))
                .map(|c| (*c).to_owned())
                .collect();
            if metadata_keys.is_empty() {
                missing.push("the key columns".to_owned());
            }
            let keys = if missing.is_empty() {
                metadata_keys
            } else {
                discovery.notes.push(DiscoveryNote::MetadataIncomplete {
                    table: name,
                    missing_columns: missing,
                });
                if !catalog_table.is_transactional() || catalog_table.primary_key.is_empty() {
                    continue;
                }
                catalog_table.keys()
            };
            discovery
                .tables
                .push(DiscoveredTable::Present(decoupled.schema(
                    &table,
                    catalog_table,
                    catalog,
                    keys,
                )));
        }
    }
    for (table, catalog_table) in catalog {
        if listed.contains(table) || !is_candidate(table) || !catalog_table.is_transactional() {
            continue;
        }
        if metadata.is_some() {
            // A transactional table ScalarDB's metadata does not list: a truncated metadata
            // table. Scan it anyway, from the catalog, and say so.
            discovery.notes.push(DiscoveryNote::MetadataIncomplete {
                table: decoupled.name_of(table),
                missing_columns: vec!["the table itself".to_owned()],
            });
        }
        if catalog_table.primary_key.is_empty() {
            continue;
        }
        discovery
            .tables
            .push(DiscoveredTable::Present(decoupled.schema(
                table,
                catalog_table,
                catalog,
                catalog_table.keys(),
            )));
    }
    if discovery.tables.is_empty() {
        discovery.notes.push(DiscoveryNote::NoTransactionalTables {
            searched: if metadata.is_some() {
                format!(
                    "searched {}.metadata and the catalog",
                    settings.metadata_schema
                )
            } else {
                format!(
                    "no {}.metadata table; searched the catalog for tables with ScalarDB's \
                     metadata columns",
                    settings.metadata_schema
                )
            },
        });
    }
    discovery
        .tables
        .sort_by(|a, b| table_of(a).cmp(table_of(b)));
    discovery
}

fn table_of(table: &DiscoveredTable) -> &TableRef {
    match table {
        DiscoveredTable::Present(schema) => &schema.table,
        DiscoveredTable::Missing(table) | DiscoveredTable::Denied { table, .. } => table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transactional(keys: &[&str]) -> CatalogTable {
        let mut columns: Vec<(String, String)> = keys
            .iter()
            .map(|k| ((*k).to_owned(), "integer".to_owned()))
            .collect();
        columns.push(("balance".into(), "integer".into()));
        columns.extend(
            TRANSACTION_META_COLUMNS
                .iter()
                .map(|c| ((*c).to_owned(), "bigint".to_owned())),
        );
        CatalogTable {
            columns,
            primary_key: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    fn coordinator_table() -> CatalogTable {
        CatalogTable {
            columns: ["tx_id", "tx_state", "tx_created_at"]
                .iter()
                .map(|c| ((*c).to_owned(), "text".to_owned()))
                .collect(),
            primary_key: vec!["tx_id".into()],
        }
    }

    fn metadata_rows(full_name: &str, keys: &[(&str, &str)], meta: &[&str]) -> Vec<MetadataRow> {
        keys.iter()
            .map(|(name, key_type)| MetadataRow {
                full_table_name: full_name.into(),
                column_name: (*name).into(),
                data_type: "INT".into(),
                key_type: Some((*key_type).into()),
            })
            .chain(meta.iter().map(|c| MetadataRow {
                full_table_name: full_name.into(),
                column_name: (*c).into(),
                data_type: "INT".into(),
                key_type: None,
            }))
            .collect()
    }

    fn settings(filter: &TableFilter) -> DiscoverySettings<'_> {
        DiscoverySettings {
            coordinator_namespace: "coordinator",
            metadata_schema: "scalardb",
            filter,
        }
    }

    fn present(discovery: &Discovery) -> Vec<String> {
        discovery
            .tables
            .iter()
            .map(|t| match t {
                DiscoveredTable::Present(s) => s.table.to_string(),
                DiscoveredTable::Missing(t) => format!("missing {t}"),
                DiscoveredTable::Denied { table, .. } => format!("denied {table}"),
            })
            .collect()
    }

    #[test]
    fn scalardb_metadata_decides_tables_and_key_order() {
        let mut catalog = BTreeMap::new();
        catalog.insert(
            TableRef::new("bank", "accounts"),
            transactional(&["ck", "pk"]),
        );
        catalog.insert(TableRef::new("coordinator", "state"), coordinator_table());
        let rows = metadata_rows(
            "bank.accounts",
            &[("pk", "PARTITION"), ("ck", "CLUSTERING")],
            &TRANSACTION_META_COLUMNS,
        );
        let filter = TableFilter::default();
        let discovery = discover(&catalog, Some(&rows), &[], &settings(&filter));
        assert!(discovery.notes.is_empty(), "{:?}", discovery.notes);
        let DiscoveredTable::Present(schema) = &discovery.tables[0] else {
            panic!("accounts should be present");
        };
        let keys: Vec<&str> = schema.keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(keys, ["pk", "ck"]);
        assert_eq!(
            discovery.coordinator.unwrap().table,
            TableRef::new("coordinator", "state")
        );
    }

    #[test]
    fn a_listed_table_absent_from_the_catalog_is_missing() {
        let catalog = BTreeMap::new();
        let rows = metadata_rows(
            "bank.gone",
            &[("id", "PARTITION")],
            &TRANSACTION_META_COLUMNS,
        );
        let filter = TableFilter::default();
        let discovery = discover(&catalog, Some(&rows), &[], &settings(&filter));
        assert_eq!(present(&discovery), ["missing bank.gone"]);
        assert!(discovery.coordinator.is_none());
    }

    #[test]
    fn without_metadata_the_catalog_finds_tables_with_the_metadata_columns() {
        let mut catalog = BTreeMap::new();
        catalog.insert(TableRef::new("bank", "accounts"), transactional(&["id"]));
        catalog.insert(
            TableRef::new("bank", "plain"),
            CatalogTable {
                columns: vec![("id".into(), "integer".into())],
                primary_key: vec!["id".into()],
            },
        );
        let filter = TableFilter::default();
        let discovery = discover(&catalog, None, &[], &settings(&filter));
        assert_eq!(present(&discovery), ["bank.accounts"]);
    }

    #[test]
    fn a_truncated_metadata_table_falls_back_to_the_catalog_and_says_so() {
        let mut catalog = BTreeMap::new();
        catalog.insert(TableRef::new("bank", "accounts"), transactional(&["id"]));
        catalog.insert(TableRef::new("bank", "history"), transactional(&["id"]));
        let rows = metadata_rows(
            "bank.accounts",
            &[("id", "PARTITION")],
            &["tx_id", "tx_state"],
        );
        let filter = TableFilter::default();
        let discovery = discover(&catalog, Some(&rows), &[], &settings(&filter));
        assert_eq!(present(&discovery), ["bank.accounts", "bank.history"]);
        assert_eq!(discovery.notes.len(), 2, "{:?}", discovery.notes);
    }

    #[test]
    fn an_application_column_named_tx_created_at_does_not_make_a_table_the_coordinator() {
        let mut catalog = BTreeMap::new();
        let mut events = transactional(&["id"]);
        events
            .columns
            .push(("tx_created_at".into(), "bigint".into()));
        events
            .columns
            .push(("before_tx_created_at".into(), "bigint".into()));
        catalog.insert(TableRef::new("shop", "events"), events);
        catalog.insert(TableRef::new("coordinator", "state"), coordinator_table());
        let mut listed = TRANSACTION_META_COLUMNS.to_vec();
        listed.extend(["tx_created_at", "before_tx_created_at"]);
        let rows = metadata_rows("shop.events", &[("id", "PARTITION")], &listed);
        let filter = TableFilter::default();
        for metadata in [Some(rows.as_slice()), None] {
            let discovery = discover(&catalog, metadata, &[], &settings(&filter));
            assert_eq!(present(&discovery), ["shop.events"], "{metadata:?}");
            assert_eq!(
                discovery.coordinator.as_ref().unwrap().table,
                TableRef::new("coordinator", "state")
            );
        }
    }

    #[test]
    fn only_the_configured_namespace_holds_the_coordinator() {
        let mut catalog = BTreeMap::new();
        // Coordinator-shaped, and transactional, but not where ScalarDB puts it.
        let mut lookalike = transactional(&["tx_id"]);
        lookalike
            .columns
            .push(("tx_created_at".into(), "bigint".into()));
        catalog.insert(TableRef::new("other", "state"), lookalike.clone());
        catalog.insert(TableRef::new("coordinator", "audit"), lookalike);
        catalog.insert(TableRef::new("coordinator", "state"), coordinator_table());
        let filter = TableFilter::default();
        let discovery = discover(&catalog, None, &[], &settings(&filter));
        assert_eq!(present(&discovery), ["coordinator.audit", "other.state"]);
        assert_eq!(
            discovery.coordinator.unwrap().table,
            TableRef::new("coordinator", "state")
        );
        let renamed = DiscoverySettings {
            coordinator_namespace: "other",
            ..settings(&filter)
        };
        let discovery = discover(&catalog, None, &[], &renamed);
        assert_eq!(
            discovery.coordinator.as_ref().unwrap().table,
            TableRef::new("other", "state")
        );
        assert_eq!(
            present(&discovery),
            ["coordinator.audit"],
            "coordinator.state is not transactional, so it is not scanned"
        );
    }

    #[test]
    fn another_namespaces_coordinator_listed_in_the_metadata_is_not_a_table_to_scan() {
        let mut catalog = BTreeMap::new();
        catalog.insert(TableRef::new("bank", "accounts"), transactional(&["id"]));
        catalog.insert(TableRef::new("coord", "state"), coordinator_table());
        let mut rows = metadata_rows(
            "bank.accounts",
            &[("id", "PARTITION")],
            &TRANSACTION_META_COLUMNS,
        );
        rows.extend(metadata_rows(
            "coordinator.state",
            &[("tx_id", "PARTITION")],
            &["tx_state", "tx_created_at"],
        ));
        let filter = TableFilter::default();
        let custom = DiscoverySettings {
            coordinator_namespace: "coord",
            ..settings(&filter)
        };
        let discovery = discover(&catalog, Some(&rows), &[], &custom);
        assert_eq!(present(&discovery), ["bank.accounts"]);
        assert!(discovery.notes.is_empty(), "{:?}", discovery.notes);
        assert_eq!(
            discovery.coordinator.unwrap().table,
            TableRef::new("coord", "state")
        );
    }

    /// ScalarDB 3.17+'s decoupled `bank.accounts` as its catalog and metadata show it: the
    /// user columns in `accounts_data`, key + metadata + before images in
    /// `accounts_tx_metadata`, a view `accounts` with every column (PostgreSQL and MySQL list
    /// views in the catalog), and only the two physical tables in `scalardb.metadata`.
    fn decoupled_accounts() -> (BTreeMap<TableRef, CatalogTable>, Vec<MetadataRow>) {
        let mut catalog = BTreeMap::new();
        catalog.insert(
            TableRef::new("bank", "accounts_data"),
            CatalogTable {
                columns: vec![
                    ("id".into(), "integer".into()),
                    ("balance".into(), "integer".into()),
                ],
                primary_key: vec!["id".into()],
            },
        );
        let mut metadata_table = transactional(&["id"]);
        metadata_table.columns.retain(|(c, _)| c != "balance");
        metadata_table
            .columns
            .push(("before_balance".into(), "integer".into()));
        let mut view = transactional(&["id"]);
        view.primary_key.clear();
        view.columns
            .push(("before_balance".into(), "integer".into()));
        catalog.insert(
            TableRef::new("bank", "accounts_tx_metadata"),
            metadata_table,
        );
        catalog.insert(TableRef::new("bank", "accounts"), view);
        catalog.insert(TableRef::new("coordinator", "state"), coordinator_table());
        let mut rows = metadata_rows("bank.accounts_data", &[("id", "PARTITION")], &[]);
        let mut meta: Vec<&str> = TRANSACTION_META_COLUMNS.to_vec();
        meta.push("before_balance");
        rows.extend(metadata_rows(
            "bank.accounts_tx_metadata",
            &[("id", "PARTITION")],
            &meta,
        ));
        (catalog, rows)
    }

    fn accounts_virtual_table() -> Vec<VirtualTableRow> {
        vec![VirtualTableRow {
            full_table_name: "bank.accounts".into(),
            left_source: "bank.accounts_data".into(),
            right_source: "bank.accounts_tx_metadata".into(),
        }]
    }

    #[test]
    fn a_decoupled_table_is_scanned_in_its_metadata_table_under_its_own_name() {
        let (catalog, rows) = decoupled_accounts();
        let filter = TableFilter::default();
        let virtual_tables = accounts_virtual_table();
        for metadata in [Some(rows.as_slice()), None] {
            let discovery = discover(&catalog, metadata, &virtual_tables, &settings(&filter));
            assert!(discovery.notes.is_empty(), "{:?}", discovery.notes);
            let [DiscoveredTable::Present(schema)] = discovery.tables.as_slice() else {
                panic!("one table, bank.accounts: {:?}", present(&discovery));
            };
            assert_eq!(schema.table, TableRef::new("bank", "accounts"));
            assert_eq!(
                schema.source(),
                &TableRef::new("bank", "accounts_tx_metadata")
            );
            assert_eq!(schema.keys.len(), 1);
            assert_eq!(schema.after_image_columns, ["balance"]);
        }
        // The filter takes the name users know.
        let only_accounts = TableFilter {
            include: vec!["bank.accounts".into()],
            exclude: vec![],
        };
        let discovery = discover(
            &catalog,
            Some(&rows),
            &virtual_tables,
            &settings(&only_accounts),
        );
        assert_eq!(present(&discovery), ["bank.accounts"]);
    }

    #[test]
    fn without_virtual_tables_a_decoupled_metadata_table_is_scanned_as_itself() {
        // A backup that lost `virtual_tables`: the records are still found and scanned,
        // under the physical name, and the view (no key) is not mistaken for a table.
        let (catalog, rows) = decoupled_accounts();
        let filter = TableFilter::default();
        let discovery = discover(&catalog, Some(&rows), &[], &settings(&filter));
        assert!(present(&discovery).contains(&"bank.accounts_tx_metadata".to_owned()));
        assert!(!present(&discovery).contains(&"bank.accounts".to_owned()));
    }

    #[test]
    fn nothing_found_is_a_note_not_an_error() {
        let filter = TableFilter::default();
        let discovery = discover(&BTreeMap::new(), None, &[], &settings(&filter));
        assert!(matches!(
            discovery.notes[..],
            [DiscoveryNote::NoTransactionalTables { .. }]
        ));
    }

    #[test]
    fn filters_match_namespaces_or_full_names_with_wildcards() {
        let filter = TableFilter {
            include: vec!["bank".into(), "shop.order*".into()],
            exclude: vec!["bank.audit".into()],
        };
        assert!(filter.accepts(&TableRef::new("bank", "accounts")));
        assert!(!filter.accepts(&TableRef::new("bank", "audit")));
        assert!(filter.accepts(&TableRef::new("shop", "orders")));
        assert!(!filter.accepts(&TableRef::new("shop", "items")));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c", "abd"));
    }
}
