//! Run history: one JSON line per finished run appended to `DIR/history.jsonl`
//! (`--history DIR`), and the trend read back from it (`scalardb-verify history DIR`): a
//! table, and a text chart of each drill's restore time against its RTO, so RTO drift shows
//! before a drill fails. The line is built from the report and the run's facts only.
//!
//! Appending is one `write` to a file opened `O_APPEND`, so lines of concurrent runs never
//! interleave; the file is never followed through a symbolic link.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Read as _, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analyze::Severity;
use crate::report::{Report, RunFacts};

/// The file in the history directory.
pub const FILE_NAME: &str = "history.jsonl";

/// A history file larger than this is not read whole: `history` reads its last part.
const MAX_READ_BYTES: u64 = 64 << 20;

/// Columns of the chart's bars.
const CHART_WIDTH: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("create the history directory {dir}")]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "open the history file {path}: it is a symbolic link, which is never followed (point \
         --history at the directory it should live in)"
    )]
    Symlink { path: PathBuf },
    #[error("open the history file {path}: it is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("open the history file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("append to the history file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read the history file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read line {line} of the history file {path}")]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// One run, as a line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When the run ended, RFC 3339 in UTC.
    pub finished_at: String,
    /// `scan` or `drill`.
    pub command: String,
    /// The scanned target (no password), or for a drill the disposable instance.
    pub target: String,
    /// The drill's backup.
    pub backup: Option<String>,
    /// None for a run that ended without a report (see `error`).
    pub verdict: Option<String>,
    pub exit_code: u8,
    pub records_scanned: Option<u64>,
    pub unresolved_records: Option<u64>,
    pub torn_transactions: Option<u64>,
    pub restore_seconds: Option<f64>,
    pub rto_seconds: Option<u64>,
    pub restore_within_rto: Option<bool>,
    pub findings: Option<FindingCounts>,
    pub tool_version: String,
    /// Why a run ended without a report: its error and causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a run was for, known before it runs: the scan's target, the drill's backup.
#[derive(Clone, Debug)]
pub struct RunSubject {
    pub target: String,
    pub backup: Option<String>,
}

/// To the millisecond, as the metrics give it.
fn millisecond_text(at: jiff::Timestamp) -> String {
    jiff::Timestamp::from_millisecond(at.as_millisecond())
        .unwrap_or(at)
        .to_string()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingCounts {
    pub error: u64,
    pub warning: u64,
    pub info: u64,
}

impl Entry {
    pub fn new(report: &Report, run: &RunFacts) -> Self {
        let count = |severity: Severity| {
            report
                .findings
                .iter()
                .filter(|f| f.severity == severity)
                .count() as u64
        };
        let drill = report.drill.as_ref();
        Self {
            finished_at: millisecond_text(run.finished_at),
            command: run.command.to_owned(),
            target: report.target.clone(),
            backup: drill.map(|d| d.backup.clone()),
            verdict: Some(report.verdict.as_str().to_owned()),
            exit_code: run.exit_code,
            records_scanned: Some(report.summary.records_scanned),
            unresolved_records: Some(report.summary.unresolved_records),
            torn_transactions: Some(report.summary.transactions.torn),
            restore_seconds: drill.map(|d| d.restore_seconds),
            rto_seconds: drill.and_then(|d| d.rto_seconds),
            restore_within_rto: drill.and_then(|d| d.restore_within_rto),
            findings: Some(FindingCounts {
                error: count(Severity::Error),
                warning: count(Severity::Warning),
                info: count(Severity::Info),
            }),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            error: None,
        }
    }

    /// A run that ended without a report (could not reach or restore the target, was
    /// interrupted): what it was for, its exit code and its error.
    pub fn failed(subject: &RunSubject, run: &RunFacts, error: String) -> Self {
        Self {
            finished_at: millisecond_text(run.finished_at),
            command: run.command.to_owned(),
            target: subject.target.clone(),
            backup: subject.backup.clone(),
            verdict: None,
            exit_code: run.exit_code,
            records_scanned: None,
            unresolved_records: None,
            torn_transactions: None,
            restore_seconds: None,
            rto_seconds: None,
            restore_within_rto: None,
            findings: None,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            error: Some(error),
        }
    }

    /// What the run verified: the drill's backup, or the scan's target.
    fn subject(&self) -> &str {
        self.backup.as_deref().unwrap_or(&self.target)
    }
}

/// Makes sure `dir` exists (creating it, and any missing parent, mode 0700) and that its
/// history file, if there is one, is a regular file: called before a run, so a bad
/// `--history` fails before the work, not after it.
pub fn prepare(dir: &Path) -> Result<PathBuf, HistoryError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| HistoryError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
    let path = dir.join(FILE_NAME);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(HistoryError::Symlink { path }),
        Ok(meta) if !meta.is_file() => Err(HistoryError::NotAFile { path }),
        Ok(_) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(path),
        Err(source) => Err(HistoryError::Open { path, source }),
    }
}

/// Appends `entry` as one line, in one write, to `dir`'s history file (created 0600).
pub fn append(dir: &Path, entry: &Entry) -> Result<PathBuf, HistoryError> {
    let path = prepare(dir)?;
    let mut line = serde_json::to_vec(entry).map_err(|e| HistoryError::Write {
        path: path.clone(),
        source: io::Error::other(e),
    })?;
    line.push(b'\n');
    let mut file = open_no_follow(&path, OpenOptions::new().append(true).create(true))?;
    let write_error = |source| HistoryError::Write {
        path: path.clone(),
        source,
    };
    // One write: with O_APPEND the kernel places it at the end whole, so lines of runs
    // that finish at once never interleave. A short write would leave half a line.
    let written = file.write(&line).map_err(write_error)?;
    if written != line.len() {
        return Err(write_error(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("only {written} of {} bytes were written", line.len()),
        )));
    }
    Ok(path)
}

/// Opens `path` with `options` and `O_NOFOLLOW` (a symbolic link fails with ELOOP) and
/// `O_NONBLOCK` (a FIFO planted there fails instead of blocking), then checks it is a
/// regular file.
fn open_no_follow(path: &Path, options: &mut OpenOptions) -> Result<std::fs::File, HistoryError> {
    use nix::fcntl::OFlag;
    let file = options
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                HistoryError::Symlink {
                    path: path.to_owned(),
                }
            } else {
                HistoryError::Open {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    let meta = file.metadata().map_err(|source| HistoryError::Open {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(HistoryError::NotAFile {
            path: path.to_owned(),
        });
    }
    Ok(file)
}

/// Every entry of `dir`'s history file, oldest first (only the last 64 MiB of a larger
/// file, from its first whole line).
pub fn read(dir: &Path) -> Result<Vec<Entry>, HistoryError> {
    use std::io::{Seek as _, SeekFrom};
    let path = dir.join(FILE_NAME);
    let mut file = open_no_follow(&path, OpenOptions::new().read(true))?;
    let read_error = |source| HistoryError::Read {
        path: path.clone(),
        source,
    };
    let len = file.metadata().map_err(read_error)?.len();
    let skip = len.saturating_sub(MAX_READ_BYTES);
    file.seek(SeekFrom::Start(skip)).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_READ_BYTES)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    let text = if skip > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|source| HistoryError::Parse {
                path: path.clone(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// The trend of `entries` (the last `last` of them): a table, then the chart.
pub fn render_trend(
    dir: &Path,
    entries: &[Entry],
    last: usize,
    out: &mut dyn Write,
) -> io::Result<()> {
    let shown = &entries[entries.len().saturating_sub(last)..];
    writeln!(
        out,
        "history of {} ({} run(s), the last {} shown)",
        dir.join(FILE_NAME).display(),
        entries.len(),
        shown.len()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<20} {:<6} {:<13} {:>4} {:>10} {:>7} {:>6} {:>8}  target",
        "finished (UTC)", "cmd", "verdict", "exit", "restore s", "RTO s", "errors", "warnings"
    )?;
    for entry in shown {
        writeln!(
            out,
            "{:<20} {:<6} {:<13} {:>4} {:>10} {:>7} {:>6} {:>8}  {}",
            short_time(&entry.finished_at),
            entry.command,
            entry.verdict.as_deref().unwrap_or("(no report)"),
            entry.exit_code,
            entry
                .restore_seconds
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.3}")),
            entry
                .rto_seconds
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            entry
                .findings
                .map_or_else(|| "-".to_owned(), |f| f.error.to_string()),
            entry
                .findings
                .map_or_else(|| "-".to_owned(), |f| f.warning.to_string()),
            entry.subject()
        )?;
        if let Some(error) = &entry.error {
            writeln!(out, "{:<20} error: {error}", "")?;
        }
    }
    writeln!(out)?;
    chart(shown, out)
}

/// One bar per drill: its restore time, with `|` where its RTO lies.
fn chart(entries: &[Entry], out: &mut dyn Write) -> io::Result<()> {
    let drills: Vec<(&Entry, f64)> = entries
        .iter()
        .filter_map(|e| e.restore_seconds.map(|s| (e, s)))
        .collect();
    if drills.is_empty() {
        return writeln!(
            out,
            "no drill in these runs, so no restore time to chart (scans restore nothing)"
        );
    }
    let full_scale = drills
        .iter()
        .map(|(e, s)| s.max(e.rto_seconds.map_or(0.0, |r| r as f64)))
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let column = |seconds: f64| -> usize {
        let fraction = (seconds / full_scale).clamp(0.0, 1.0);
        (0..=CHART_WIDTH)
            .find(|&c| c as f64 >= fraction * CHART_WIDTH as f64 - 0.5)
            .unwrap_or(CHART_WIDTH)
    };
    writeln!(
        out,
        "restore time against the RTO ({CHART_WIDTH} columns = {full_scale:.1} s; | is the RTO)"
    )?;
    for (entry, seconds) in &drills {
        let bar = column(*seconds);
        let rto = entry.rto_seconds.map(|r| column(r as f64));
        let mut line: Vec<char> = vec![' '; CHART_WIDTH + 1];
        for cell in line.iter_mut().take(bar) {
            *cell = '#';
        }
        if let Some(rto) = rto {
            line[rto] = '|';
        }
        let bar_text: String = line.into_iter().collect();
        let note = match (entry.rto_seconds, entry.restore_within_rto) {
            (Some(rto), Some(false)) => format!("{seconds:.3} s  OVER the RTO of {rto} s"),
            (Some(rto), _) => format!(
                "{seconds:.3} s  {:.0} % of the RTO",
                seconds / (rto as f64).max(0.001) * 100.0
            ),
            (None, _) => format!("{seconds:.3} s  (no --rto-seconds)"),
        };
        writeln!(
            out,
            "{:<19} {bar_text} {note}",
            short_time(&entry.finished_at)
        )?;
    }
    Ok(())
}

/// `2026-12-02T05:00:01.123Z` as `2026-12-02 05:00:01`.
fn short_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(at) => at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(restore: Option<f64>, rto: Option<u64>) -> Entry {
        Entry {
            finished_at: "2026-12-02T05:00:01.5Z".to_owned(),
            command: if restore.is_some() { "drill" } else { "scan" }.to_owned(),
            target: "sqlite:///x".to_owned(),
            backup: restore.map(|_| "/backups/nightly.dump".to_owned()),
            verdict: Some("consistent".to_owned()),
            exit_code: 0,
            records_scanned: Some(10),
            unresolved_records: Some(0),
            torn_transactions: Some(0),
            restore_seconds: restore,
            rto_seconds: rto,
            restore_within_rto: rto.zip(restore).map(|(r, s)| s <= r as f64),
            findings: Some(FindingCounts::default()),
            tool_version: "0.1.0".to_owned(),
            error: None,
        }
    }

    #[test]
    fn the_chart_scales_bars_to_the_largest_of_restore_and_rto() {
        let entries = [
            entry(Some(25.0), Some(100)),
            entry(Some(100.0), Some(100)),
            entry(Some(200.0), Some(100)),
            entry(None, None),
        ];
        let mut out = Vec::new();
        chart(&entries, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].contains("50 columns = 200.0 s"), "{text}");
        let bars: Vec<usize> = lines[1..]
            .iter()
            .map(|l| l.chars().filter(|&c| c == '#').count())
            .collect();
        // 25 s of 200 s is 6.25 columns of 50, 100 s is 25; the RTO's `|` at column 25
        // takes one cell of a bar that passes it.
        assert_eq!(bars, [6, 25, 49], "{text}");
        assert!(lines[1].contains("25 % of the RTO"), "{text}");
        assert!(lines[3].contains("OVER the RTO of 100 s"), "{text}");
        let rto_columns: Vec<Option<usize>> = lines[1..].iter().map(|l| l.find('|')).collect();
        assert!(rto_columns.iter().all(|c| *c == rto_columns[0]), "{text}");
    }

    #[test]
    fn scans_alone_have_nothing_to_chart() {
        let mut out = Vec::new();
        chart(&[entry(None, None)], &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("no drill"));
    }
}
