//! Integration tests of `scalardb-verify drill` and `cleanup`: real backups made with the
//! real pg_dump and mariadb-dump, restored into disposable local servers, verified, torn down.

mod backups;
mod decoupled;
mod docker;
mod examples;
mod hostile;
mod image;
mod lifecycle;
mod metrics;
#[path = "../common/normalize.rs"]
mod normalize;
#[path = "../common/metrics.rs"]
mod prom;
#[path = "../common/recovery.rs"]
mod recovery;
#[path = "../common/schema.rs"]
mod schema;
mod set;
#[path = "../common/snapshots.rs"]
mod snapshot_copy;
mod support;
mod write_set_cut;
