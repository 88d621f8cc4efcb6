//! From parsed arguments to an exit code: validate into a config, run the job, render the
//! report, decide the exit code. The writer and the terminal check are passed in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::analyze::{AnalysisSettings, PauseWindow, Severity, Verdict};
use crate::cli::{BridgeArgs, CleanupArgs, Cli, Command, CommonArgs, DrillArgs, ScanArgs};
use crate::config::{
    ConfigError, DEFAULT_COORDINATOR_NAMESPACE, DEFAULT_METADATA_SCHEMA, Deployment,
    DeploymentScan, PropertiesFile, ScanConfig, ScanStorage, StorageFlags, Target, parse_as_of,
    parse_duration_ms,
};
use crate::drill::{DrillConfig, Invariant};
use crate::error::{Error, exit_code};
use crate::history::RunSubject;
use crate::progress::Progress;
use crate::report::{Format, Report, RunFacts};
use crate::store::TableFilter;

/// Runs one command; `stdout_is_terminal` picks the default format.
pub fn run(cli: Cli, stdout: &mut dyn Write, stdout_is_terminal: bool) -> Result<u8, Error> {
    match cli.command {
        Command::Scan(args) => scan(args, stdout, stdout_is_terminal),
        Command::Drill(args) => drill(args, stdout, stdout_is_terminal),
        Command::Cleanup(args) => cleanup(&args, stdout),
        Command::History(args) => {
            let entries = crate::history::read(&args.dir)?;
            crate::history::render_trend(&args.dir, &entries, args.last, stdout)
                .and_then(|()| stdout.flush())
                .or_else(|e| {
                    // A closed pipe (`| head`) is the reader's choice.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(Error::WriteStdout)?;
            Ok(exit_code::OK)
        }
        Command::Schema => stdout
            .write_all(crate::report::schema::report_schema().as_bytes())
            .and_then(|()| stdout.flush())
            .map(|()| exit_code::OK)
            .map_err(Error::WriteStdout),
        Command::Bridge(args) => bridge(&args),
    }
}

/// The bridge a sandbox with a network of its own starts first (`runtime::bridge`).
fn bridge(args: &BridgeArgs) -> Result<u8, Error> {
    let forwards = args
        .forwards
        .iter()
        .map(|spec| spec.parse())
        .collect::<Result<Vec<crate::runtime::bridge::Forward>, _>>()
        .map_err(|e| Error::Bridge(Box::new(e)))?;
    let (program, program_args) = args
        .program
        .split_first()
        .ok_or_else(|| Error::Bridge("no program to run".into()))?;
    crate::runtime::bridge::serve(&forwards, args.drop_root, program, program_args)
        .map_err(|e| Error::Bridge(Box::new(e)))
}

fn async_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

fn scan(args: ScanArgs, stdout: &mut dyn Write, stdout_is_terminal: bool) -> Result<u8, Error> {
    let config = scan_config(&args)?;
    check_run_outputs(&args.common)?;
    let subject = RunSubject {
        target: config.target.display().to_owned(),
        backup: None,
    };
    let result = (|| {
        let progress = Progress::new(args.common.quiet);
        let analysis = async_runtime()?
            .block_on(crate::scan::run(&config, &progress))?
            .analysis;
        let report = Report::new(analysis, config.target.display().to_owned());
        emit(&report, &args.common, stdout, stdout_is_terminal)?;
        let code = exit_code_for(&report, args.common.strict, args.common.fail_on);
        Ok((report, code))
    })();
    finish_run("scan", &subject, result, &args.common)
}

fn drill(args: DrillArgs, stdout: &mut dyn Write, stdout_is_terminal: bool) -> Result<u8, Error> {
    let config = drill_config(&args)?;
    check_run_outputs(&args.common)?;
    let subject = RunSubject {
        target: config.subject(),
        backup: Some(config.subject()),
    };
    let result = (|| {
        let progress = Progress::new(args.common.quiet);
        let outcome = async_runtime()?.block_on(async {
            tokio::select! {
                outcome = crate::drill::run(&config, &progress) => outcome,
                // Dropping the drill's future tears its instance down (Drop of the instance
                // and kill-on-drop of every client), so only then is the interruption
                // reported.
                () = shutdown_signal() => Err(Error::Interrupted),
            }
        })?;
        if let Some(kept) = &outcome.section.kept_at {
            eprintln!(
                "kept the instance running: {kept}\nremove it with: scalardb-verify cleanup --run-id {}",
                outcome.section.run_id
            );
        }
        let drill_failed = outcome.section.failed();
        let report = Report::new(outcome.scan.analysis, outcome.target).with_drill(outcome.section);
        emit(&report, &args.common, stdout, stdout_is_terminal)?;
        let code = exit_code_for(&report, args.common.strict, args.common.fail_on);
        let code = if code == exit_code::OK && drill_failed {
            exit_code::FAILED_CHECK
        } else {
            code
        };
        Ok((report, code))
    })();
    finish_run("drill", &subject, result, &args.common)
}

/// Records a finished run (metrics file, history line) and passes its result on. A run
/// that ended without a report is recorded too, as failed, so its metrics do not go on
/// showing the previous run's verdict; an error recording it is only a warning then.
fn finish_run(
    command: &'static str,
    subject: &RunSubject,
    result: Result<(Report, u8), Error>,
    common: &CommonArgs,
) -> Result<u8, Error> {
    match result {
        Ok((report, code)) => {
            record_run(&report, command, code, common)?;
            Ok(code)
        }
        Err(error) => {
            let run = RunFacts {
                command,
                finished_at: jiff::Timestamp::now(),
                exit_code: error.exit_code(),
            };
            if let Err(record_error) = record_failed_run(subject, &run, &error, common) {
                eprintln!(
                    "warning: could not record the failed run: {}",
                    crate::error::error_chain(&record_error)
                );
            }
            Err(error)
        }
    }
}

fn record_failed_run(
    subject: &RunSubject,
    run: &RunFacts,
    error: &Error,
    common: &CommonArgs,
) -> Result<(), Error> {
    if let Some(path) = &common.metrics_file {
        write_atomically(path, Some(0o644), |out| {
            crate::report::prometheus::render_failed(&subject.target, run, out)
        })
        .map_err(|source| Error::WriteMetrics {
            path: path.clone(),
            source,
        })?;
    }
    if let Some(dir) = &common.history {
        let entry = crate::history::Entry::failed(subject, run, crate::error::error_chain(error));
        crate::history::append(dir, &entry)?;
    }
    Ok(())
}

/// Fails before a long run, not after it, when the metrics file could not be written.
fn check_run_outputs(common: &CommonArgs) -> Result<(), Error> {
    if let Some(path) = &common.metrics_file {
        let dir = parent_dir(path);
        if !dir.is_dir() {
            return Err(Error::WriteMetrics {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("its directory {} does not exist", dir.display()),
                ),
            });
        }
    }
    if let Some(dir) = &common.history {
        crate::history::prepare(dir)?;
    }
    Ok(())
}

/// What a finished run leaves besides its report: the metrics file, the history line.
fn record_run(
    report: &Report,
    command: &'static str,
    code: u8,
    common: &CommonArgs,
) -> Result<(), Error> {
    let run = RunFacts {
        command,
        finished_at: jiff::Timestamp::now(),
        exit_code: code,
    };
    if let Some(path) = &common.metrics_file {
        // node_exporter often runs as an account of its own: the file must be readable by
        // it (it holds no secret: the target is rendered without its password).
        write_atomically(path, Some(0o644), |out| report.render_metrics(&run, out)).map_err(
            |source| Error::WriteMetrics {
                path: path.clone(),
                source,
            },
        )?;
    }
    if let Some(dir) = &common.history {
        crate::history::append(dir, &crate::history::Entry::new(report, &run))?;
    }
    Ok(())
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP (a closed terminal or an ended SSH session must
/// tear the instance down like any other stop).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = tokio::signal::ctrl_c();
    let (Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = interrupt.await;
        return;
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
        _ = hangup.recv() => {}
    }
}

fn cleanup(args: &CleanupArgs, stdout: &mut dyn Write) -> Result<u8, Error> {
    use crate::runtime::{SweepScope, sweep};
    let scope = match &args.run_id {
        Some(run_id) => SweepScope::Run(run_id.clone()),
        None => SweepScope::Orphaned,
    };
    let removed = sweep(&scope).map_err(Error::Cleanup)?;
    let mut lines = Vec::new();
    for instance in &removed {
        lines.push(format!(
            "removed {} instance of run {} at {}{}",
            instance.engine,
            instance.run_id,
            instance.dir.display(),
            instance
                .killed_pid
                .map(|pid| format!(" (killed server pid {pid})"))
                .unwrap_or_default()
        ));
    }
    let nodes = crate::runtime::cassandra::sweep_cassandra(&scope)
        .map_err(|e| Error::CleanupCassandra(Box::new(e)))?;
    for node in &nodes {
        lines.push(format!(
            "removed cassandra node of run {} at {}{}",
            node.run_id,
            node.dir.display(),
            node.killed_pid
                .map(|pid| format!(" (killed JVM pid {pid})"))
                .unwrap_or_default()
        ));
    }
    lines.extend(sweep_sqlite_copies(args.run_id.as_deref()));
    lines.extend(async_runtime()?.block_on(sweep_dead_containers(args.run_id.as_deref())));
    if lines.is_empty() {
        lines.push("nothing to remove".to_owned());
    }
    for line in lines {
        writeln!(stdout, "{line}").map_err(Error::WriteStdout)?;
    }
    Ok(exit_code::OK)
}

/// Containers of killed drills (their run id names the drill's pid), or of one run.
/// Without a Docker engine there is nothing to sweep.
async fn sweep_dead_containers(run_id: Option<&str>) -> Vec<String> {
    use crate::runtime::{docker_available, labelled_containers, sweep_containers};
    if !docker_available().await {
        return Vec::new();
    }
    let runs: std::collections::BTreeSet<String> = match run_id {
        Some(id) => [id.to_owned()].into(),
        None => labelled_containers(None)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.run_id)
            .filter(|run| !run_is_alive(run))
            .collect(),
    };
    let mut lines = Vec::new();
    for run in runs {
        match sweep_containers(Some(&run)).await {
            Ok(removed) => lines.extend(
                removed
                    .into_iter()
                    .map(|id| format!("removed container {id} of run {run}")),
            ),
            Err(e) => lines.push(format!(
                "could not remove the containers of run {run}: {}",
                crate::scan::error_chain(&e)
            )),
        }
    }
    lines
}

/// Whether the drill that owns `run` (named `drill<pid>`) still runs. Runs named otherwise
/// are not ours to judge and count as alive.
fn run_is_alive(run: &str) -> bool {
    run.strip_prefix("drill")
        .and_then(|pid| pid.parse::<i32>().ok())
        .is_none_or(process_is_alive)
}

/// SQLite copies of killed drills: directories in the tool's private directory named for
/// their run, whose run id carries the drill's pid. Copies of drills still running are
/// left alone.
fn sweep_sqlite_copies(run_id: Option<&str>) -> Vec<String> {
    let Ok(entries) = crate::runtime::private_root().and_then(|root| {
        std::fs::read_dir(&root)
            .map_err(|source| crate::runtime::LocalRuntimeError::Sweep { dir: root, source })
    }) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let run = name.strip_prefix("sqlite-")?.rsplit_once('-')?.0.to_owned();
            let wanted = match run_id {
                Some(id) => run == id,
                None => !run_is_alive(&run),
            };
            wanted.then(|| entry.path())
        })
        .filter_map(|path| {
            std::fs::remove_dir_all(&path)
                .ok()
                .map(|()| format!("removed SQLite copy {}", path.display()))
        })
        .collect()
}

fn process_is_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn emit(
    report: &Report,
    common: &CommonArgs,
    stdout: &mut dyn Write,
    stdout_is_terminal: bool,
) -> Result<(), Error> {
    let format = common
        .format
        .unwrap_or(if stdout_is_terminal && common.output.is_none() {
            Format::Terminal
        } else {
            Format::Json
        });
    write_report(report, format, common.output.as_deref(), stdout)
}

pub fn scan_config(args: &ScanArgs) -> Result<ScanConfig, ConfigError> {
    let common = &args.common;
    let (target, coordinator_namespace, metadata_schema, storage_name, plan) = match &args.url {
        Some(url) => (
            url_target(args, url)?,
            common
                .coordinator_namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_COORDINATOR_NAMESPACE.to_owned()),
            common.metadata_schema.clone(),
            None,
            None,
        ),
        None => {
            let deployment = deployment(&args.properties, &args.storages, &args.routing, common)?;
            for unrouted in deployment.unrouted_storages() {
                eprintln!(
                    "warning: storage {unrouted} is configured, but no namespace is routed to \
                     it: ScalarDB never reads it, so it is not scanned"
                );
            }
            let metadata_schema =
                |storage: &crate::config::Storage| storage_metadata_schema(common, storage);
            match deployment.only_storage() {
                Some(storage) => (
                    storage.endpoint().open()?,
                    deployment.coordinator_namespace().to_owned(),
                    metadata_schema(storage),
                    Some(storage.name().to_owned()),
                    None,
                ),
                None => {
                    let routed = deployment.routed_storages();
                    let mut storages = Vec::new();
                    let mut coordinator = 0;
                    for (id, storage) in deployment.storages_with_ids() {
                        // The Coordinator's storage is read whatever else is routed there.
                        if !routed.contains(&id) && id != deployment.coordinator_storage() {
                            continue;
                        }
                        if id == deployment.coordinator_storage() {
                            coordinator = storages.len();
                        }
                        storages.push(ScanStorage {
                            id,
                            name: storage.name().to_owned(),
                            target: storage.endpoint().open()?,
                            metadata_schema: metadata_schema(storage)
                                .unwrap_or_else(|| DEFAULT_METADATA_SCHEMA.to_owned()),
                            mapped: deployment.is_mapped(id),
                        });
                    }
                    let coordinator_storage = &storages[coordinator];
                    (
                        coordinator_storage.target.clone(),
                        deployment.coordinator_namespace().to_owned(),
                        Some(coordinator_storage.metadata_schema.clone()),
                        Some(coordinator_storage.name.clone()),
                        Some(DeploymentScan {
                            storages,
                            coordinator,
                            deployment,
                        }),
                    )
                }
            }
        }
    };
    Ok(ScanConfig {
        target,
        coordinator_namespace,
        metadata_schema: metadata_schema.unwrap_or_else(|| DEFAULT_METADATA_SCHEMA.to_owned()),
        filter: filter(common),
        jobs: usize::from(common.jobs),
        connect_timeout: Duration::from_secs(common.connect_timeout),
        analysis: analysis_settings(common)?,
        storage_name,
        deployment: plan,
    })
}

/// The positional URL, with the password from --password-file or the environment.
fn url_target(args: &ScanArgs, url: &str) -> Result<Target, ConfigError> {
    let password = match (&args.password_file, &args.password_env) {
        (Some(path), _) => Some(read_password_file(path)?),
        (None, Some(password)) => Some(password.clone()),
        (None, None) => None,
    };
    let url = match password {
        Some(password) => with_password(url, &password)?,
        None => {
            if url_has_password(url) {
                warn_password_on_command_line(
                    "the URL",
                    "use --password-file or SCALARDB_VERIFY_PASSWORD",
                );
            }
            url.to_owned()
        }
    };
    Target::from_url(&url)
}

fn warn_password_on_command_line(what: &str, instead: &str) {
    eprintln!(
        "warning: {what} carries a password, which every user of this machine can read on \
         its command line (ps); {instead}"
    );
}

/// A storage's metadata schema: `--metadata-schema`, else the storage's own setting.
fn storage_metadata_schema(
    common: &CommonArgs,
    storage: &crate::config::Storage,
) -> Option<String> {
    common
        .metadata_schema
        .clone()
        .or_else(|| storage.metadata_schema().map(str::to_owned))
}

/// The deployment from --properties files or --storage options, validated before any
/// connection (reading the files is the only I/O). Scan's and drill's options alike.
fn deployment(
    properties: &[PathBuf],
    storages: &[String],
    routing: &crate::cli::RoutingArgs,
    common: &CommonArgs,
) -> Result<Deployment, ConfigError> {
    let coordinator_namespace = common.coordinator_namespace.as_deref();
    let flags = StorageFlags {
        storages,
        namespaces: &routing.namespaces,
        default_storage: routing.default_storage.as_deref(),
        coordinator_storage: routing.coordinator_storage.as_deref(),
    };
    if !properties.is_empty() {
        let files = properties
            .iter()
            .map(|path| PropertiesFile::read(path))
            .collect::<Result<Vec<_>, _>>()?;
        return Deployment::from_properties(&files, coordinator_namespace);
    }
    if flags.storages.is_empty() {
        return Err(ConfigError::NoTarget);
    }
    if flags.storages.iter().any(|s| {
        s.split_once('=')
            .is_some_and(|(_, url)| url_has_password(url))
    }) {
        warn_password_on_command_line(
            "a --storage URL",
            "give the deployment with --properties, in a file only you can read",
        );
    }
    Deployment::from_flags(&flags, coordinator_namespace)
}

/// The first line of `path`, without its line ending.
fn read_password_file(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
        .map_err(|source| ConfigError::ReadPasswordFile {
            path: path.to_owned(),
            source,
        })?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// The `USER[:PASS]@` part of a URL, if it has one.
fn userinfo(url: &str) -> Option<(usize, &str)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')?;
    Some((start, &url[start..start + at]))
}

fn url_has_password(url: &str) -> bool {
    userinfo(url).is_some_and(|(_, info)| info.contains(':'))
}

/// `url` with `password` (percent-encoded) after its user name.
fn with_password(url: &str, password: &str) -> Result<String, ConfigError> {
    let Some((start, info)) = userinfo(url) else {
        return Err(ConfigError::PasswordWithoutUser);
    };
    if info.contains(':') {
        return Err(ConfigError::TwoPasswords);
    }
    let encoded: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let end = start + info.len();
    Ok(format!("{}:{encoded}{}", &url[..end], &url[end..]))
}

fn filter(common: &CommonArgs) -> TableFilter {
    TableFilter {
        include: common.include.clone(),
        exclude: common.exclude.clone(),
    }
}

fn analysis_settings(common: &CommonArgs) -> Result<AnalysisSettings, ConfigError> {
    Ok(AnalysisSettings {
        as_of: common.as_of.as_deref().map(parse_as_of).transpose()?,
        skew_threshold_ms: parse_duration_ms(&common.skew_threshold)?,
        pause_window: common
            .pause_window
            .as_deref()
            .map(read_pause_window)
            .transpose()?,
        cut_parts: Vec::new(),
    })
}

/// The JSON scalar-admin-for-kubernetes prints after a successful pause.
fn read_pause_window(path: &Path) -> Result<PauseWindow, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidPauseWindow {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let field = |name: &str| {
        json.get(name)
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| invalid(format!("no integer {name}")))
    };
    let window = PauseWindow {
        start_ms: field("pause_start_timestamp_ms")?,
        end_ms: field("pause_end_timestamp_ms")?,
    };
    if window.end_ms < window.start_ms {
        return Err(invalid("the pause ends before it starts".to_owned()));
    }
    Ok(window)
}

fn drill_config(args: &DrillArgs) -> Result<DrillConfig, Error> {
    let common = &args.common;
    let backup_error = |e| Error::from(crate::drill::RestoreError::Backup(e));
    let given_deployment = !args.properties.is_empty() || !args.storages.is_empty();
    let mut given = Vec::new();
    for text in &args.named_backups {
        let Some((name, path)) = text
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        else {
            return Err(ConfigError::InvalidOption {
                option: "--backup",
                value: text.clone(),
                reason: "expected NAME=PATH".to_owned(),
            }
            .into());
        };
        given.push((Some(name.to_owned()), PathBuf::from(path)));
    }
    given.extend(args.backups.iter().map(|path| (None, path.clone())));
    if !given_deployment && (given.len() > 1 || !args.named_backups.is_empty()) {
        return Err(ConfigError::MissingOption {
            option: "--properties or --storage",
            why: "several backups, or --backup NAME=PATH, are a backup set: the deployment \
                  says which storage each restores",
        }
        .into());
    }
    let mut inspected = Vec::new();
    for (storage, path) in given {
        let format = crate::backup::inspect(&path).map_err(backup_error)?;
        let snapshots = if format == crate::backup::BackupFormat::CassandraSnapshots {
            let backup = crate::backup::cassandra::inspect(&path, args.snapshot_tag.as_deref())
                .map_err(backup_error)?;
            if args.per_node {
                crate::drill::check_copy_names(&backup)?;
            }
            Some(backup)
        } else {
            None
        };
        let namespaces = match given_deployment {
            true => crate::backup::namespaces_of(
                &path,
                format,
                snapshots.as_ref().map(|s| s.keyspaces()),
            )
            .map_err(backup_error)?,
            false => None,
        };
        inspected.push(crate::drill::GivenBackup {
            storage,
            path,
            format,
            snapshots,
            namespaces,
        });
    }
    let formats: Vec<_> = inspected.iter().map(|b| b.format).collect();
    let any_cassandra = formats.contains(&crate::backup::BackupFormat::CassandraSnapshots);
    let describe = |formats: &[crate::backup::BackupFormat]| match formats {
        [only] => only.describe(),
        _ => "a backup set",
    };
    let not_for = |option, applies_to| ConfigError::NotForThisBackup {
        option,
        applies_to,
        format: describe(&formats),
    };
    if !any_cassandra {
        if args.per_node {
            return Err(not_for("--per-node", "Cassandra snapshots").into());
        }
        if args.snapshot_tag.is_some() {
            return Err(not_for("--snapshot-tag", "Cassandra snapshots").into());
        }
    }
    if given_deployment {
        if args.per_node {
            return Err(not_for("--per-node", "a drill of one Cassandra backup").into());
        }
        if args.image.is_some() {
            return Err(not_for("--image", "a drill of one backup").into());
        }
    }
    let mut invariants = Vec::new();
    for check in &args.checks {
        invariants.push(parse_invariant(check, "--check")?);
    }
    if let Some(path) = &args.checks_file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadChecks {
            path: path.to_owned(),
            source,
        })?;
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                invariants.push(parse_invariant(line, &path.display().to_string())?);
            }
        }
    }
    let (backups, set) = if given_deployment {
        let deployment = deployment(&args.properties, &args.storages, &args.routing, common)?;
        let metadata_schema = |storage: &crate::config::Storage| {
            storage_metadata_schema(common, storage)
                .unwrap_or_else(|| DEFAULT_METADATA_SCHEMA.to_owned())
        };
        let (backups, set) = crate::drill::plan(deployment, inspected, &metadata_schema)?;
        for missing in &set.missing {
            eprintln!(
                "warning: no backup restores storage {missing}: its tables go unverified and \
                 the verdict is at best indeterminate"
            );
        }
        (backups, Some(set))
    } else {
        let backup = inspected.pop().ok_or(ConfigError::NoTarget)?;
        let backups = vec![crate::drill::DrillBackup {
            path: backup.path,
            format: backup.format,
            snapshots: backup.snapshots,
            storage: None,
        }];
        (backups, None)
    };
    check_invariants(&invariants, &backups, set.as_ref())?;
    Ok(DrillConfig {
        backups,
        per_node: args.per_node,
        runtime: match args.runtime {
            crate::cli::RuntimeChoice::Auto => crate::drill::RuntimeKind::Auto,
            crate::cli::RuntimeChoice::Docker => crate::drill::RuntimeKind::Docker,
            crate::cli::RuntimeChoice::Local => crate::drill::RuntimeKind::Local,
        },
        image: args.image.clone(),
        run_id: format!("drill{}", std::process::id()),
        recover: args.recover,
        invariants,
        rto: args.rto_seconds.map(Duration::from_secs),
        startup_timeout: Duration::from_secs(args.startup_timeout),
        keep: args.keep,
        coordinator_namespace: match &set {
            Some(set) => set.deployment.coordinator_namespace().to_owned(),
            None => common
                .coordinator_namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_COORDINATOR_NAMESPACE.to_owned()),
        },
        metadata_schema: match &set {
            Some(set) => set.coordinator.metadata_schema.clone(),
            None => common
                .metadata_schema
                .clone()
                .unwrap_or_else(|| DEFAULT_METADATA_SCHEMA.to_owned()),
        },
        set,
        filter: filter(common),
        jobs: usize::from(common.jobs),
        connect_timeout: Duration::from_secs(common.connect_timeout),
        analysis: analysis_settings(common)?,
        max_restore_bytes: args.max_restore_bytes,
    })
}

/// Every invariant runs in a SQL instance: its `@STORAGE` one of the set's (restored from a
/// SQL backup), or without one the only backup or the Coordinator's storage.
fn check_invariants(
    invariants: &[Invariant],
    backups: &[crate::drill::DrillBackup],
    set: Option<&crate::drill::BackupSet>,
) -> Result<(), ConfigError> {
    use crate::config::StorageKind;
    for invariant in invariants {
        let shown = || {
            format!(
                "{}@{}",
                invariant.name,
                invariant.storage.as_deref().unwrap_or_default()
            )
        };
        let kind = match (&invariant.storage, set) {
            (Some(_), None) => {
                return Err(ConfigError::InvalidOption {
                    option: "--check",
                    value: shown(),
                    reason: "@STORAGE names a storage of a backup set; this drill restores one \
                             backup"
                        .to_owned(),
                });
            }
            (Some(name), Some(_)) => backups
                .iter()
                .filter_map(|b| b.storage.as_ref())
                .find(|s| s.name == *name)
                .map(|s| s.kind)
                .ok_or_else(|| ConfigError::InvalidOption {
                    option: "--check",
                    value: shown(),
                    reason: format!(
                        "no backup of the set restores storage {name} (the set restores {})",
                        backups
                            .iter()
                            .filter_map(|b| b.storage.as_ref().map(|s| s.name.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?,
            (None, Some(set)) => set.coordinator.kind,
            (None, None) => crate::drill::kind_of(backups[0].format),
        };
        if kind == StorageKind::Cassandra {
            // Invariants are SQL queries.
            return Err(ConfigError::NotForThisBackup {
                option: "--check/--checks-file",
                applies_to: "SQL backups",
                format: "Cassandra node snapshots",
            });
        }
    }
    Ok(())
}

/// `NAME=SQL`, or `NAME@STORAGE=SQL` to run it in one storage of a backup set.
fn parse_invariant(text: &str, origin: &str) -> Result<Invariant, ConfigError> {
    match text.split_once('=') {
        Some((name, sql)) if !name.trim().is_empty() && !sql.trim().is_empty() => {
            let (name, storage) = match name.split_once('@') {
                Some((name, storage)) => (name, Some(storage.trim().to_owned())),
                None => (name, None),
            };
            if name.trim().is_empty() || storage.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::InvalidCheck {
                    origin: origin.to_owned(),
                    text: text.to_owned(),
                });
            }
            Ok(Invariant {
                name: name.trim().to_owned(),
                sql: sql.trim().to_owned(),
                storage,
            })
        }
        _ => Err(ConfigError::InvalidCheck {
            origin: origin.to_owned(),
            text: text.to_owned(),
        }),
    }
}

fn write_report(
    report: &Report,
    format: Format,
    output: Option<&Path>,
    stdout: &mut dyn Write,
) -> Result<(), Error> {
    match output {
        Some(path) => {
            write_atomically(path, None, |out| report.render(format, out)).map_err(|source| {
                Error::WriteReport {
                    path: path.to_owned(),
                    source,
                }
            })
        }
        None => match report.render(format, stdout).and_then(|()| stdout.flush()) {
            // A closed pipe (`| head`) is the reader's choice, not a failure of the scan.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(Error::WriteStdout),
        },
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Written beside `path`, then renamed over it: a reader never sees half a file. The
/// temporary file is created 0600; `mode` widens it before the rename.
fn write_atomically(
    path: &Path,
    mode: Option<u32>,
    render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut file = tempfile::NamedTempFile::new_in(parent_dir(path))?;
    render(&mut file)?;
    file.flush()?;
    if let Some(mode) = mode {
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The one place a report becomes an exit code.
pub fn exit_code_for(report: &Report, strict: bool, fail_on: Option<Severity>) -> u8 {
    match report.verdict {
        Verdict::Inconsistent => return exit_code::FAILED_CHECK,
        Verdict::Indeterminate => return exit_code::INDETERMINATE,
        Verdict::Recoverable if strict => return exit_code::FAILED_CHECK,
        Verdict::Recoverable | Verdict::Consistent => {}
    }
    let threshold_hit = fail_on.is_some_and(|threshold| {
        report
            .findings
            .iter()
            .any(|finding| finding.severity >= threshold)
    });
    if threshold_hit {
        exit_code::FAILED_CHECK
    } else {
        exit_code::OK
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn scan_args(args: &[&str]) -> ScanArgs {
        let cli = Cli::try_parse_from(["scalardb-verify", "scan"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Scan(args) => args,
            other => panic!("not a scan: {other:?}"),
        }
    }

    #[test]
    fn a_deployment_of_one_storage_is_scanned_as_its_url_would_be() {
        let config = scan_args(&[
            "--storage",
            "bank=postgres://verifier@db:5432/app",
            "--coordinator-namespace",
            "coord",
        ]);
        let config = scan_config(&config).unwrap();
        assert_eq!(config.target.display(), "postgres://verifier@db:5432/app");
        assert_eq!(config.coordinator_namespace, "coord");
        assert_eq!(config.metadata_schema, DEFAULT_METADATA_SCHEMA);
    }

    #[test]
    fn a_deployment_across_storages_is_planned_as_one_scan_before_any_connection() {
        let args = scan_args(&[
            "--storage",
            "pg=postgres://verifier@pg:5432/app",
            "--storage",
            "my=mysql://verifier@my:3306/",
            "--storage",
            "unused=postgres://verifier@other:5432/app",
            "--namespace",
            "orders=my",
            "--default-storage",
            "pg",
            "--coordinator-storage",
            "pg",
        ]);
        let config = scan_config(&args).unwrap();
        let plan = config.deployment.expect("several storages");
        let names: Vec<&str> = plan.storages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["pg", "my"], "the unrouted storage is not scanned");
        assert_eq!(plan.storages[plan.coordinator].name, "pg");
        assert!(plan.storages[1].mapped);
        assert_eq!(config.target.display(), "postgres://verifier@pg:5432/app");
    }

    #[test]
    fn storage_routing_options_need_storages() {
        for args in [
            &["--namespace", "a=b", "postgres://h/db"][..],
            &["--default-storage", "a", "postgres://h/db"],
            &["--coordinator-storage", "a", "--properties", "p"],
            &["--namespace", "a=b"],
            &["--storage", "a=postgres://h/db", "postgres://h/db"],
            &["--storage", "a=postgres://h/db", "--properties", "p"],
        ] {
            let parsed = Cli::try_parse_from(["scalardb-verify", "scan"].iter().chain(args));
            assert!(parsed.is_err(), "{args:?}");
        }
    }
}
