//! Disposable database instances that a backup is restored into and scanned from.
//!
//! This module owns the life cycle of those instances: creating them, handing out a
//! connection URL, loading SQL into them with the engine's own client, and tearing them down
//! so that nothing outlives the run. Every instance is labelled on disk so that a run killed
//! before its teardown can be swept later ([`local::sweep_leftovers`]).
//!
//! It must not scan or interpret data (that is `store` and `analyze`), and it must never touch
//! a server or data directory it did not create.
//!
//! - [`local`]: servers started from the PostgreSQL and MariaDB binaries installed on this
//!   machine, each in a [`sandbox`] of its own, in the tool's private directory.
//! - [`sandbox`]: the confinement (a fresh account, no capabilities, no host files, no
//!   network) every server and client run on backup data lives in.
//! - [`bridge`]: byte pipes through the wall of a sandbox that has a network of its own,
//!   for the servers only TCP reaches (Cassandra's CQL and JMX).
//! - [`cassandra`]: Apache Cassandra nodes run from the Maven Central jars that
//!   `scripts/install-cassandra` fetches, on a free port of a loopback address.

pub mod bridge;
pub mod cassandra;
pub mod docker;
pub mod local;
pub mod sandbox;

pub use docker::{
    DEFAULT_CASSANDRA_IMAGE, DockerCassandra, DockerInstance, DockerOptions, DockerRuntimeError,
    ExecOutput, LabelledContainer, docker_available, labelled_containers, sweep_containers,
};
pub use local::{
    Engine, Listen, LocalInstance, LocalOptions, LocalRuntimeError, RestoreLimit, SweepScope,
    SweptInstance, private_root, sweep, sweep_in, sweep_leftovers,
};
