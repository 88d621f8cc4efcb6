//! From parsed arguments to an exit code: validate into a config, run the job, render the
//! report, decide the exit code. The writer and the terminal check are passed in.

use std::io::Write;
use std::time::Duration;

use crate::analyze::{AnalysisSettings, Verdict};
use crate::cli::{Cli, Command, ScanArgs};
use crate::config::{
    ConfigError, DEFAULT_COORDINATOR_NAMESPACE, DEFAULT_METADATA_SCHEMA, ScalarDbProperties,
    ScanConfig, Target, parse_as_of, parse_duration_ms,
};
use crate::error::{Error, exit_code};
use crate::progress::Progress;
use crate::report::{Format, Report};
use crate::store::TableFilter;

/// Runs one command; `stdout_is_terminal` picks the default format.
pub fn run(cli: Cli, stdout: &mut dyn Write, stdout_is_terminal: bool) -> Result<u8, Error> {
    match cli.command {
        Command::Scan(args) => scan(args, stdout, stdout_is_terminal),
    }
}

fn scan(args: ScanArgs, stdout: &mut dyn Write, stdout_is_terminal: bool) -> Result<u8, Error> {
    let config = scan_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let progress = Progress::new(args.quiet);
    let analysis = runtime.block_on(crate::scan::run(&config, &progress))?;
    let report = Report::new(analysis, config.target.display().to_owned());
    let format = args
        .format
        .unwrap_or(if stdout_is_terminal && args.output.is_none() {
            Format::Terminal
        } else {
            Format::Json
        });
    write_report(&report, format, args.output.as_deref(), stdout)?;
    Ok(exit_code_for(&report, args.strict, args.fail_on))
}

pub fn scan_config(args: &ScanArgs) -> Result<ScanConfig, ConfigError> {
    let (target, properties) = match (&args.url, &args.properties) {
        (Some(url), _) => (Target::from_url(url)?, None),
        (None, Some(path)) => {
            let properties = ScalarDbProperties::read(path)?;
            (properties.target.clone(), Some(properties))
        }
        (None, None) => return Err(ConfigError::NoTarget),
    };
    let from_properties = |pick: fn(&ScalarDbProperties) -> &Option<String>| {
        properties.as_ref().and_then(|p| pick(p).clone())
    };
    Ok(ScanConfig {
        target,
        coordinator_namespace: args
            .coordinator_namespace
            .clone()
            .or_else(|| from_properties(|p| &p.coordinator_namespace))
            .unwrap_or_else(|| DEFAULT_COORDINATOR_NAMESPACE.to_owned()),
        metadata_schema: args
            .metadata_schema
            .clone()
            .or_else(|| from_properties(|p| &p.metadata_schema))
            .unwrap_or_else(|| DEFAULT_METADATA_SCHEMA.to_owned()),
        filter: TableFilter {
            include: args.include.clone(),
            exclude: args.exclude.clone(),
        },
        jobs: usize::from(args.jobs),
        connect_timeout: Duration::from_secs(args.connect_timeout),
        analysis: AnalysisSettings {
            as_of: args.as_of.as_deref().map(parse_as_of).transpose()?,
            skew_threshold_ms: parse_duration_ms(&args.skew_threshold)?,
        },
    })
}

fn write_report(
    report: &Report,
    format: Format,
    output: Option<&std::path::Path>,
    stdout: &mut dyn Write,
) -> Result<(), Error> {
    match output {
        Some(path) => {
            // Write beside the target, then rename: a reader never sees half a report.
            let write_error = |source| Error::WriteReport {
                path: path.to_owned(),
                source,
            };
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut file = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
            report.render(format, &mut file).map_err(write_error)?;
            file.persist(path).map_err(|e| write_error(e.error))?;
            Ok(())
        }
        None => match report.render(format, stdout).and_then(|()| stdout.flush()) {
            // A closed pipe (`| head`) is the reader's choice, not a failure of the scan.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(Error::WriteStdout),
        },
    }
}

/// The one place a report becomes an exit code.
pub fn exit_code_for(
    report: &Report,
    strict: bool,
    fail_on: Option<crate::analyze::Severity>,
) -> u8 {
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
