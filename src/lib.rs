//! scalardb-verify: prove whether a backup of a ScalarDB-managed database restores to a
//! transactionally consistent state.
//!
//! Module map:
//! - `cli`: clap types only; `config`: validated settings (URLs, properties files).
//! - `app`: from arguments to a rendered report and an exit code; `error`: the error type
//!   and the exit codes.
//! - `scan`: the scan job's phases; `store`: discovery and SQL scans (the only sqlx user).
//! - `model`: ScalarDB's domain; `analyze`: the pure analysis, observation in, verdict out.
//! - `report`: the report as data and its renderers; `progress`: stderr progress.
//! - `runtime`: disposable database instances (local server processes).
pub mod analyze;
pub mod app;
pub mod backup;
pub mod cli;
pub mod config;
pub mod drill;
pub mod error;
pub mod model;
pub mod progress;
pub mod report;
pub mod runtime;
pub mod scan;
pub mod store;
