//! scalardb-verify: prove whether a backup of a ScalarDB-managed database restores to a
//! transactionally consistent state.
//!
//! Module map:
//! - `cli`: clap types only; `config`: validated settings (URLs, properties files, the
//!   `Deployment`: storages, routing, the Coordinator's storage), built before any I/O.
//! - `app`: from arguments to a rendered report and an exit code; `error`: the error type
//!   and the exit codes.
//! - `scan`: the scan job's phases, for one database and for a deployment across several
//!   (`scan/deployment.rs`), with the Coordinator index (`scan/coordinator.rs`, pure) and the
//!   point reads of tables that cannot join the Coordinator (`scan/resolve.rs`); `store`:
//!   discovery and scans behind three seams, catalog and joined phases, records, Coordinator
//!   (`store/sql.rs` is the only sqlx user, `store/cassandra.rs` the only scylla user).
//! - `model`: ScalarDB's domain; `analyze`: the pure analysis, observation in, verdict out
//!   (and `analyze/nodes.rs`: Cassandra nodes compared record by record).
//! - `report`: the report as data and its renderers (terminal, JSON and its schema, CSV,
//!   JUnit, Prometheus metrics); `progress`: stderr progress.
//! - `history`: the run history (`--history DIR`), appended and read back as a trend.
//! - `backup`: what a backup is, from its bytes or layout (Cassandra snapshots in
//!   `backup/cassandra.rs`); `drill`: restore, scan, rehearse, compare, tear down.
//! - `runtime`: disposable instances: local server processes, Cassandra JVMs, containers
//!   (`runtime/docker*` is the only bollard user).

// The drill's future nests the restore, scan and comparison futures deeply.
#![recursion_limit = "256"]

pub mod analyze;
pub mod app;
pub mod backup;
pub mod cli;
pub mod config;
pub mod drill;
pub mod error;
pub mod history;
pub mod model;
pub mod progress;
pub mod report;
pub mod runtime;
pub mod scan;
pub mod store;
