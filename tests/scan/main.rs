//! Integration tests of `scalardb-verify scan` against real SQLite files and real
//! PostgreSQL and MariaDB servers that the tests start themselves (local server processes
//! in a temporary directory on a free loopback port). One binary, one module per theme.

mod bad_input;
mod fixtures;
mod hostile;
mod multi_storage;
mod reports;
mod support;
