//! Integration tests of `scalardb-verify scan` against a real Apache Cassandra node that
//! the tests start themselves (src/runtime/cassandra.rs, from the jars
//! `scripts/install-cassandra` installs). One binary, one module per theme; a node is
//! heavy (a JVM with a 1 GiB heap), so each test that needs one starts one and runs its
//! cases in sequence.

#![recursion_limit = "256"]

mod cluster;
mod fixtures;
mod hostile;
mod locked;
#[path = "../common/normalize.rs"]
mod normalize;
#[path = "../common/schema.rs"]
mod schema;
#[path = "../common/snapshots.rs"]
mod snapshot_copy;
mod snapshots;
mod support;
mod write_sets;
