//! The command line: clap types only. Turned into validated settings by `app`, never
//! passed to the core.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::analyze::Severity;
use crate::report::Format;

#[derive(Debug, Parser)]
#[command(
    name = "scalardb-verify",
    version,
    about = "Prove whether a backup of a ScalarDB-managed database restores to a transactionally consistent state",
    long_about = "Prove whether a backup of a ScalarDB-managed database restores to a transactionally \
consistent state.\n\nscalardb-verify reads every ScalarDB record's transaction metadata and the \
Coordinator table, finds records left PREPARED or DELETED, predicts exactly what ScalarDB's lazy \
recovery will do with each (roll forward or roll back), and reports whether the restore point is \
consistent, recoverable, inconsistent (a torn backup) or indeterminate.",
    after_help = "Exit codes: 0 consistent (or recoverable), 1 inconsistent (or recoverable with \
--strict, or findings at --fail-on), 2 usage or configuration error, 3 could not reach the target, \
4 indeterminate, 130 interrupted (SIGINT, SIGTERM or SIGHUP; the disposable instance was torn \
down first)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan a database that holds ScalarDB tables (read only) and report a verdict.
    #[command(after_help = "Examples:\n  \
scalardb-verify scan sqlite://fixtures/bank/recoverable/bank.sqlite\n  \
scalardb-verify scan postgres://verifier@127.0.0.1:5432/app --format json --output report.json\n  \
scalardb-verify scan cassandra://10.0.0.5,10.0.0.6:9042?consistency=QUORUM\n  \
scalardb-verify scan --properties database.properties --strict --format junit --output junit.xml")]
    Scan(ScanArgs),
    /// Restore a backup into a disposable instance, verify it, optionally rehearse recovery
    /// and run invariants, report, and tear everything down.
    #[command(after_help = "Examples:\n  \
scalardb-verify drill nightly.dump --recover --check 'money=SELECT sum(balance) = 1000000 FROM bank.accounts'\n  \
scalardb-verify drill app.sql.gz --rto-seconds 600 --format junit --output drill.xml\n  \
scalardb-verify drill app.sqlite --keep\n  \
scalardb-verify drill /backups/cassandra-2026-11-24 --per-node --snapshot-tag nightly\n\n\
A backup set, one backup per storage of a multi-storage deployment (Coordinator in PostgreSQL):\n  \
scalardb-verify drill --properties database.properties \\\n    \
--backup postgresql=accounts.dump --backup mysql=orders.sql.gz --recover \\\n    \
--check 'orders@mysql=SELECT count(*) > 0 FROM orders.items'\n  \
scalardb-verify drill --storage pg=postgres://-/app --storage maria=mysql://-/ \\\n    \
--namespace ledger=maria --default-storage pg accounts.sql ledger.sql\n\
Each backup is restored into its own disposable instance, concurrently, and all are scanned as \
the one deployment; a storage without a backup makes the verdict indeterminate (backup-missing).")]
    Drill(DrillArgs),
    /// Remove what an earlier, killed run left behind (labelled containers, instance
    /// directories and their server processes) and list what was removed.
    Cleanup(CleanupArgs),
    /// Show the trend of the runs recorded with --history DIR: a table of every run, and a
    /// chart of each drill's restore time against its RTO.
    #[command(
        after_help = "Record runs with --history on scan or drill, then read them back:\n  \
scalardb-verify drill /backups/nightly.dump --rto-seconds 600 --history /var/lib/scalardb-verify\n  \
scalardb-verify history /var/lib/scalardb-verify\n  \
scalardb-verify history /var/lib/scalardb-verify --last 7\n\n\
Each run appends one JSON line to DIR/history.jsonl (finished_at, command, target, backup, \
verdict, exit_code, records_scanned, unresolved_records, torn_transactions, restore_seconds, \
rto_seconds, restore_within_rto, findings by severity, tool_version, and error for a run that ended without \
a report): read it with jq for \
anything this view does not show. A drill whose restore creeps toward its RTO shows as \
bars closing in on the | mark before any drill fails."
    )]
    History(HistoryArgs),
    /// Print the JSON Schema of the JSON report (--format json); the same as
    /// schema/report.schema.json in the repository.
    Schema,
    /// Internal: carries TCP ports through the wall of a sandbox with a network of its own
    /// (the tool runs it inside the sandboxes of Cassandra nodes and nodetool).
    #[command(hide = true)]
    Bridge(BridgeArgs),
}

#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// LISTEN=DIAL: `fd:N` (a listening Unix socket handed in) or `tcp:127.0.0.1:PORT`, to
    /// `tcp:127.0.0.1:PORT` or `unix:PATH`.
    #[arg(long = "forward", value_name = "LISTEN=DIAL", required = true)]
    pub forwards: Vec<String>,

    /// Started as root, become `nobody` (no capability) once the program runs.
    #[arg(long)]
    pub drop_root: bool,

    /// The program to run (and exit with), and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub program: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The database: postgres://USER[:PASS]@HOST:PORT/DB, mysql://… (MySQL 8 or MariaDB;
    /// mariadb:// also works), sqlite://PATH (opened read-only) or
    /// cassandra://[USER[:PASS]@]HOST[:PORT][,HOST…][?consistency=QUORUM] (Cassandra or ScyllaDB).
    /// A password in the URL is visible to every user of the machine (`ps`): give it with
    /// --password-file or SCALARDB_VERIFY_PASSWORD instead.
    #[arg(
        value_name = "URL",
        required_unless_present_any = ["properties", "storages"],
        conflicts_with_all = ["namespaces", "default_storage", "coordinator_storage"]
    )]
    pub url: Option<String>,

    /// Read the URL user's password from FILE (its first line), so it never appears on a
    /// command line.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["properties", "password_env", "storages"])]
    pub password_file: Option<PathBuf>,

    /// The URL user's password, from the environment.
    #[arg(
        long = "password-from-env",
        env = "SCALARDB_VERIFY_PASSWORD",
        hide = true,
        hide_env_values = true,
        conflicts_with_all = ["properties", "storages"]
    )]
    pub password_env: Option<String>,

    /// Take the deployment from ScalarDB database.properties files: scalar.db.storage=jdbc or
    /// cassandra (contact_points, username/password), or multi-storage (its storages,
    /// namespace and table mappings and default storage), the Coordinator namespace and the
    /// metadata schema. Repeatable: one file per service (microservices, two-phase commit),
    /// which must share one Coordinator. One run scans one storage for now.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["url", "namespaces", "default_storage", "coordinator_storage"])]
    pub properties: Vec<PathBuf>,

    /// A storage of the deployment, NAME=URL (URL as for the positional argument).
    /// Repeatable; with several, give --default-storage. One run scans one storage for now.
    #[arg(long = "storage", value_name = "NAME=URL", conflicts_with_all = ["url", "properties"])]
    pub storages: Vec<String>,

    #[command(flatten)]
    pub routing: RoutingArgs,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// How `--storage`s are routed, for scan and drill alike. Each needs `--storage` (which
/// excludes a URL and --properties).
#[derive(Debug, Args)]
pub struct RoutingArgs {
    /// Route a namespace to a --storage, NS=NAME (as scalar.db.multi_storage.namespace_mapping).
    /// Repeatable.
    #[arg(long = "namespace", value_name = "NS=NAME", requires = "storages")]
    pub namespaces: Vec<String>,

    /// The --storage of namespaces no --namespace routes (as
    /// scalar.db.multi_storage.default_storage); needed with several --storage.
    #[arg(long, value_name = "NAME", requires = "storages")]
    pub default_storage: Option<String>,

    /// The --storage that holds the Coordinator table. Default: as its namespace is routed.
    #[arg(long, value_name = "NAME", requires = "storages")]
    pub coordinator_storage: Option<String>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The backup: a pg_dump file (plain, gzip, -Fc, -Fd directory or -Ft), a mysqldump file
    /// (plain or gzip), a SQLite database file, or a directory of Cassandra node snapshots
    /// (NODE/KEYSPACE/TABLE-ID/snapshots/TAG/ per node, or one node's KEYSPACE/… directly;
    /// an optional schema.cql at the top, else each snapshot's own). The format is read
    /// from the bytes and the layout; the backup is never modified. With a deployment
    /// (--properties or --storage), several may be given: each is of the storage its
    /// namespaces are routed to (a plain SQL dump's CREATE SCHEMA/DATABASE statements, a
    /// Cassandra backup's keyspaces; archives and SQLite files need --backup NAME=PATH).
    #[arg(value_name = "BACKUP", required_unless_present = "named_backups")]
    pub backups: Vec<PathBuf>,

    /// A backup of one storage of the deployment, NAME=PATH: a backup set is drilled as
    /// the deployment it restores, each backup in a disposable instance of its own engine,
    /// restored concurrently and scanned as one. Repeatable, one per storage. Needs
    /// --properties or --storage (whose URLs' hosts are never contacted in a drill: only
    /// the engine and the routing matter).
    #[arg(long = "backup", value_name = "NAME=PATH")]
    pub named_backups: Vec<String>,

    /// The deployment the backups restore, from ScalarDB database.properties files (as for
    /// scan; repeatable, one per service).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["namespaces", "default_storage", "coordinator_storage"])]
    pub properties: Vec<PathBuf>,

    /// A storage of the deployment, NAME=URL (as for scan); in a drill only the URL's
    /// engine counts (postgres://-/x, mysql://-/x, sqlite://x, cassandra://-). Repeatable.
    #[arg(
        long = "storage",
        value_name = "NAME=URL",
        conflicts_with = "properties"
    )]
    pub storages: Vec<String>,

    #[command(flatten)]
    pub routing: RoutingArgs,

    /// Where the disposable instance runs: a Docker/Podman container, or the server
    /// binaries found on this machine, each server and client confined in a bubblewrap
    /// sandbox (a fresh account, no host files, no network) that answers only the tool.
    #[arg(long, value_enum, default_value = "auto")]
    pub runtime: RuntimeChoice,

    /// The container image for --runtime docker (default postgres:16, mysql:8.4 or
    /// cassandra:5.0); any image with the official images' environment contract, e.g. from
    /// a private registry.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Rehearse recovery: apply exactly what ScalarDB's lazy recovery would do to the
    /// disposable instance, then scan again; it must leave nothing unresolved.
    #[arg(long)]
    pub recover: bool,

    /// An invariant, NAME=SQL, returning one boolean or number of any type the database has
    /// (integers, floats, NUMERIC/DECIMAL read exactly: `SELECT sum(balance) FROM ...`
    /// works); it passes when true or non-zero. Evaluated on the restored state and again
    /// after --recover. Repeatable. SQL backups only. In a backup set, NAME@STORAGE=SQL runs
    /// it in that storage's instance; without @STORAGE it runs in the Coordinator's storage.
    #[arg(long = "check", value_name = "NAME[@STORAGE]=SQL")]
    pub checks: Vec<String>,

    /// A file of invariants, one NAME=SQL per line (# comments allowed).
    #[arg(long, value_name = "FILE")]
    pub checks_file: Option<PathBuf>,

    /// The recovery time objective: the drill fails if the restore takes longer.
    #[arg(long, value_name = "N")]
    pub rto_seconds: Option<u64>,

    /// Seconds the disposable server may take to start answering.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub startup_timeout: u64,

    /// The most the restore may write into the disposable instance (e.g. 500M, 20G, or
    /// bytes): a backup that decompresses or loads into more stops with exit 3 before the
    /// disk fills. Default: half the free space where instances live.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_restore_bytes: Option<u64>,

    /// Leave the instance running after the drill and print how to connect to it.
    #[arg(long)]
    pub keep: bool,

    /// Cassandra: the snapshot tag to restore, when the backup holds several.
    #[arg(long, value_name = "TAG")]
    pub snapshot_tag: Option<String>,

    /// Cassandra: besides the merged restore (all nodes' SSTables together, reconciled by
    /// timestamp), restore each node's snapshot on its own and compare the nodes record
    /// by record. Copies that differ (PREPARED on one node and COMMITTED on another, or an
    /// older version) show the snapshots were not taken at one point: reported as
    /// node-snapshots-skewed, with evidence and how far apart they were.
    #[arg(long)]
    pub per_node: bool,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// A size in bytes, with an optional binary suffix: `K`, `M`, `G`, `T` (`KiB`… and `B` too).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 500M, 20G or a number of bytes)"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("{text:?}: the unit must be K, M, G or T")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// Docker when an engine answers, else local binaries.
    Auto,
    /// A container through the Docker (or Podman) API.
    Docker,
    /// Server binaries found on this machine (PostgreSQL's initdb/postgres, MariaDB's
    /// mariadbd), run in a bubblewrap sandbox (needs `bwrap`).
    Local,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Only what one run left behind (the run id printed by `drill --keep`).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The directory given to --history (it holds history.jsonl).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Show only the last N runs.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub last: usize,
}

/// Options shared by `scan` and `drill`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Namespace of the Coordinator table (scalar.db.consensus_commit.coordinator.namespace).
    #[arg(long, value_name = "NS")]
    pub coordinator_namespace: Option<String>,

    /// Schema of ScalarDB's table-metadata table (scalar.db.jdbc.table_metadata.schema).
    #[arg(long, value_name = "NS")]
    pub metadata_schema: Option<String>,

    /// Scan only these namespaces or tables (NS or NS.TABLE, `*` a wildcard; repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,

    /// Skip these namespaces or tables (NS or NS.TABLE, `*` a wildcard; repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    /// How many tables to scan at once (one connection each).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,

    /// The restore point's time (epoch ms or RFC 3339). Default: the newest timestamp in the
    /// data. Used to count transactions that were in flight at the cut.
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,

    /// Warn when a table's newest write and the Coordinator's newest entry are further apart
    /// than this (e.g. 90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub skew_threshold: String,

    /// The JSON scalar-admin-for-kubernetes printed for the pause the backup was taken in
    /// (pause_start_timestamp_ms, pause_end_timestamp_ms): the restore point must hold no
    /// write from after the pause started and no transaction in flight during it.
    #[arg(long, value_name = "FILE")]
    pub pause_window: Option<PathBuf>,

    /// Report format. Default: terminal when stdout is a terminal, JSON otherwise.
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write the run's Prometheus metrics to FILE, in the format node_exporter's
    /// textfile collector reads (name it *.prom in the collector's directory). Written
    /// atomically (a temporary file beside it, then renamed), mode 0644. Metric names are
    /// listed in the README.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Append this run's summary (time, verdict, exit code, restore seconds against the
    /// RTO, findings by severity) as one JSON line to DIR/history.jsonl; DIR is created
    /// (mode 0700) if missing. `scalardb-verify history DIR` shows the trend.
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,

    /// Fail (exit 1) on a recoverable verdict too: anything unresolved fails.
    #[arg(long)]
    pub strict: bool,

    /// Fail (exit 1) when any finding has at least this severity.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,

    /// Seconds to keep retrying a connection that is refused (a server still starting).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub connect_timeout: u64,

    /// No progress on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("10K"), Ok(10 << 10));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1tb"), Ok(1 << 40));
        assert!(parse_size("").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
