//! What the benchmarks share: the ScalarDB-shaped data set, the same checks as plain SQL,
//! and timing helpers. Figures are printed, never asserted.

use std::process::Command;

pub const TABLES: usize = 4;
pub const T0: i64 = 1_700_000_000_000;

/// `cargo test --all-targets` runs harness-less benchmarks too, without `--bench`: they
/// must not load gigabytes then. True when started by `cargo bench`.
pub fn started_by_cargo_bench(name: &str) -> bool {
    let started = std::env::args().any(|arg| arg == "--bench");
    if !started {
        println!("benches/{name}.rs: run it with `cargo bench --bench {name}`");
    }
    started
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `command` under /usr/bin/time: wall seconds and peak RSS in KiB.
pub fn timed(command: &mut Command) -> (f64, u64) {
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(program)
        .args(args)
        .output()
        .expect("run /usr/bin/time (Debian package `time`)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let mut fields = last.split_whitespace();
    let seconds = fields.next().and_then(|s| s.parse().ok());
    let rss = fields.next().and_then(|s| s.parse().ok());
    match (seconds, rss) {
        (Some(seconds), Some(rss)) => (seconds, rss),
        _ => panic!("command failed: {stderr}"),
    }
}

/// ScalarDB's JDBC layout on PostgreSQL. Every transaction writes two records of one table;
/// one transaction in a thousand is left PREPARED, half of those with a COMMITTED
/// Coordinator row (roll forward), half with none (roll back).
pub fn generate_sql(rows: i64) -> String {
    let mut sql = String::from(
        "SET synchronous_commit = off;\n\
         CREATE SCHEMA coordinator;\n\
         CREATE TABLE coordinator.state (tx_id VARCHAR(10485760) PRIMARY KEY, tx_state INT, tx_created_at BIGINT);\n\
         CREATE SCHEMA bench;\n",
    );
    for t in 1..=TABLES {
        sql.push_str(&format!(
            "CREATE TABLE bench.t{t} (id BIGINT, ck INT, balance INT, memo TEXT, \
             tx_id TEXT, tx_state INT, tx_version INT, tx_prepared_at BIGINT, tx_committed_at BIGINT, \
             before_balance INT, before_memo TEXT, before_tx_id TEXT, before_tx_state INT, \
             before_tx_version INT, before_tx_prepared_at BIGINT, before_tx_committed_at BIGINT, \
             PRIMARY KEY (id, ck));\n\
             INSERT INTO bench.t{t} SELECT g / 2, (g % 2)::int, 100, 'memo', \
             'tx-{t}-' || (g / 2), CASE WHEN (g / 2) % 1000 = 3 THEN 1 ELSE 3 END, 2, \
             {T0} + g, CASE WHEN (g / 2) % 1000 = 3 THEN {T0} + g - 5000 ELSE {T0} + g + 1 END, \
             CASE WHEN (g / 2) % 1000 = 3 THEN 90 END, CASE WHEN (g / 2) % 1000 = 3 THEN 'old' END, \
             CASE WHEN (g / 2) % 1000 = 3 THEN 'tx-old' END, CASE WHEN (g / 2) % 1000 = 3 THEN 3 END, \
             CASE WHEN (g / 2) % 1000 = 3 THEN 1 END, CASE WHEN (g / 2) % 1000 = 3 THEN {T0} END, \
             CASE WHEN (g / 2) % 1000 = 3 THEN {T0} END \
             FROM generate_series(0, {last}) g;\n\
             INSERT INTO coordinator.state SELECT 'tx-{t}-' || k, 3, {T0} + 2 * k \
             FROM generate_series(0, {last_tx}) k WHERE k % 1000 <> 3 OR (k / 1000) % 2 = 0;\n",
            last = rows - 1,
            last_tx = rows / 2 - 1,
        ));
    }
    sql.push_str("VACUUM ANALYZE;\n");
    sql
}

/// The same checks as plain SQL, as an operator would write them for psql.
pub fn plain_sql_checks() -> String {
    let mut sql = String::from(
        "SELECT count(*), sum(CASE WHEN tx_state = 3 THEN 1 ELSE 0 END), \
         sum(CASE WHEN tx_state = 4 THEN 1 ELSE 0 END), max(tx_created_at) FROM coordinator.state;\n",
    );
    for t in 1..=TABLES {
        sql.push_str(&format!(
            "SELECT count(*), max(tx_prepared_at), max(tx_committed_at) FROM bench.t{t};\n\
             SELECT r.id, r.ck, r.tx_id, r.tx_state, r.tx_version, r.tx_prepared_at, \
             r.before_tx_id, r.before_tx_version, c.tx_state, c.tx_created_at \
             FROM bench.t{t} r LEFT JOIN coordinator.state c ON c.tx_id = r.tx_id \
             WHERE r.tx_state IS DISTINCT FROM 3 OR r.tx_id IS NULL OR r.tx_version < 1;\n\
             SELECT r.id, r.ck, r.tx_id, c.tx_state FROM bench.t{t} r \
             LEFT JOIN coordinator.state c ON c.tx_id = r.tx_id \
             WHERE r.tx_state = 3 AND COALESCE(c.tx_state, 0) <> 3;\n"
        ));
    }
    sql
}
