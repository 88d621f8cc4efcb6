//! Integration tests of `scalardb-verify scan` against real SQLite files and real
//! PostgreSQL and MariaDB servers that the tests start themselves (local server processes
//! in a temporary directory on a free loopback port). One binary, one module per theme.

mod bad_input;
mod fixtures;
mod history;
mod hostile;
mod metrics;
mod multi_storage;
#[path = "../common/normalize.rs"]
mod normalize;
#[path = "../common/metrics.rs"]
mod prom;
mod reports;
#[path = "../common/schema.rs"]
mod schema;
mod support;
mod write_sets;
