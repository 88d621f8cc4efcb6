//! A dev tool: runs one local Cassandra node for a script (`scripts/oracle`) until told to stop.
//!
//! ```text
//! cargo run --example cassandra-node [RUN_ID]
//! ```
//!
//! Starts a [`CassandraInstance`] (jars from `scripts/install-cassandra`), prints one line
//! `READY host:port <instance dir> <JMX port> <JMX password file> <data dir>` on stdout, then
//! waits. The node is stopped cleanly (and its
//! directory removed) when stdin reaches EOF or on SIGTERM/SIGINT. The run id labels the
//! instance directory for `sweep_cassandra`; it comes from the argument, else
//! `CASSANDRA_NODE_RUN_ID`, else `cassandra-node-<pid>`. Errors go to stderr, exit status 1.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use scalardb_verify::runtime::cassandra::{CassandraInstance, CassandraOptions};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

#[tokio::main]
async fn main() -> ExitCode {
    let run_id = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("CASSANDRA_NODE_RUN_ID").ok())
        .unwrap_or_else(|| format!("cassandra-node-{}", std::process::id()));
    // Install the handlers before the node exists, so a signal during start-up still stops it.
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("cassandra-node: failed to install signal handlers");
        return ExitCode::FAILURE;
    };
    let mut opts = CassandraOptions::new(run_id);
    // ScalarDB (scripts/oracle) connects without credentials: a dev node, not a drill's.
    opts.locked = false;
    // Boxed: the start future is too deep for select!'s layout computation.
    let start = Box::pin(CassandraInstance::start(&opts));
    let node = tokio::select! {
        started = start => match started {
            Ok(node) => node,
            Err(e) => {
                eprintln!("cassandra-node: failed to {}", scalardb_verify::scan::error_chain(&e));
                return ExitCode::FAILURE;
            }
        },
        // Dropping the start future kills a half-started JVM; the sweep removes its directory.
        _ = term.recv() => return ExitCode::FAILURE,
        _ = int.recv() => return ExitCode::FAILURE,
    };
    let mut stdout = std::io::stdout();
    // Then the node's JMX (port, and the file holding its user and password) and data
    // directory, for a caller that takes snapshots itself (the oracle's multi-storage-cassandra).
    let ready = writeln!(
        stdout,
        "READY {} {} {} {} {}",
        node.contact_point(),
        node.dir().display(),
        node.jmx_port(),
        node.box_dir().join("jmx.password").display(),
        node.data_dir().display()
    )
    .and_then(|()| stdout.flush());
    if ready.is_ok() {
        tokio::select! {
            () = stdin_closed() => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    match Box::pin(node.stop()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "cassandra-node: failed to {}",
                scalardb_verify::scan::error_chain(&e)
            );
            ExitCode::FAILURE
        }
    }
}

/// Resolves when stdin reaches EOF (or cannot be read any more). The blocking read runs on a
/// plain thread, which the process's exit ends, so a signal never waits for stdin.
async fn stdin_closed() {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0_u8; 256];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        let _ = tx.send(());
    });
    let _ = rx.await;
}
