//! The label every instance directory carries, and the sweep that finds and removes the
//! instances a killed run left behind.
//!
//! Owns the directory naming scheme and the label file's format. The sweep only ever touches
//! directories with our prefix *and* a parsable label written by this tool, and only signals
//! processes whose pid and start time both match the label.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::process::{self, ProcessId};
use super::{Engine, LocalRuntimeError};

/// Every instance directory's name starts with this.
pub(super) const DIR_PREFIX: &str = "scalardb-verify-";
/// The label's file name inside an instance directory.
pub(super) const LABEL_FILE: &str = "scalardb-verify-instance.json";
const TOOL: &str = "scalardb-verify";

/// What an instance directory says about itself, for `sweep`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Label {
    pub(super) tool: String,
    pub(super) run_id: String,
    pub(super) engine: Engine,
    /// The process that started the instance; its death makes the instance an orphan.
    pub(super) owner: Option<ProcessId>,
    /// The server, once started.
    pub(super) server: Option<ProcessId>,
    pub(super) port: Option<u16>,
    pub(super) created_at: String,
}

impl Label {
    pub(super) fn new(run_id: &str, engine: Engine) -> Self {
        Self {
            tool: TOOL.to_owned(),
            run_id: run_id.to_owned(),
            engine,
            owner: ProcessId::current(),
            server: None,
            port: None,
            created_at: jiff::Timestamp::now().to_string(),
        }
    }

    /// Writes the label into `dir`, replacing it atomically so a concurrent sweep never
    /// reads half a file.
    pub(super) fn write(&self, dir: &Path) -> Result<(), LocalRuntimeError> {
        let path = dir.join(LABEL_FILE);
        let error = |source| LocalRuntimeError::WriteLabel {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::from)
            .map_err(error)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(error)?;
        tmp.write_all(&json).map_err(error)?;
        tmp.persist(&path).map_err(|e| error(e.error))?;
        Ok(())
    }

    fn read(dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(dir.join(LABEL_FILE)).ok()?;
        let label: Self = serde_json::from_slice(&bytes).ok()?;
        (label.tool == TOOL).then_some(label)
    }
}

/// The name prefix of a new instance directory: the tool, the run id made safe for a file
/// name and short enough for a Unix socket path inside it, and the engine.
pub(super) fn dir_prefix(run_id: &str, engine: Engine) -> String {
    let safe: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    format!("{DIR_PREFIX}{safe}-{engine}-")
}

/// Which labelled instances a sweep removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepScope {
    /// Those whose starting process is gone: left by a run that was killed or crashed.
    /// Instances of live runs, including this one, are left alone.
    Orphaned,
    /// Every instance labelled with this run id, whether or not its run is alive.
    Run(String),
}

/// One instance a sweep removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweptInstance {
    pub dir: PathBuf,
    pub engine: Engine,
    pub run_id: String,
    pub port: Option<u16>,
    /// The server pid that was still running and got killed.
    pub killed_pid: Option<u32>,
}

impl fmt::Display for SweptInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "removed {} instance of run {:?} at {}",
            self.engine,
            self.run_id,
            self.dir.display()
        )?;
        if let Some(port) = self.port {
            write!(f, " (port {port})")?;
        }
        if let Some(pid) = self.killed_pid {
            write!(f, ", killed server pid {pid}")?;
        }
        Ok(())
    }
}

/// Removes the instances that killed runs left in the temporary directory, killing their
/// servers first. Equivalent to `sweep(&SweepScope::Orphaned)`.
///
/// Blocks for up to a few seconds per killed server; call it from `spawn_blocking` in
/// async code.
pub fn sweep_leftovers() -> Result<Vec<SweptInstance>, LocalRuntimeError> {
    sweep(&SweepScope::Orphaned)
}

/// Removes the labelled instances in the temporary directory that `scope` selects.
pub fn sweep(scope: &SweepScope) -> Result<Vec<SweptInstance>, LocalRuntimeError> {
    sweep_in(&std::env::temp_dir(), scope)
}

/// Removes the labelled instances directly under `root` that `scope` selects: for
/// instances started with [`LocalOptions::parent_dir`](super::LocalOptions::parent_dir).
pub fn sweep_in(root: &Path, scope: &SweepScope) -> Result<Vec<SweptInstance>, LocalRuntimeError> {
    let scan_error = |source| LocalRuntimeError::Sweep {
        dir: root.to_path_buf(),
        source,
    };
    let mut swept = Vec::new();
    for entry in std::fs::read_dir(root).map_err(scan_error)? {
        let entry = entry.map_err(scan_error)?;
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        // A symlink named like ours is not ours to follow.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_ours || !is_dir {
            continue;
        }
        let dir = entry.path();
        let Some(label) = Label::read(&dir) else {
            continue;
        };
        let selected = match scope {
            // An instance whose owner cannot be named is left alone rather than risk
            // killing a live run's server.
            SweepScope::Orphaned => label.owner.is_some_and(|owner| !owner.is_running()),
            SweepScope::Run(run_id) => &label.run_id == run_id,
        };
        if !selected {
            continue;
        }
        let killed_pid = label.server.filter(ProcessId::is_running).map(|server| {
            server.kill_group();
            wait_until_gone(server, Duration::from_secs(5));
            server.pid
        });
        if label.engine == Engine::Postgres {
            process::release_postgres_interlock(&dir.join(super::DATA_DIR));
        }
        remove_dir_settled(&dir)?;
        swept.push(SweptInstance {
            dir,
            engine: label.engine,
            run_id: label.run_id,
            port: label.port,
            killed_pid,
        });
    }
    Ok(swept)
}

/// Removes an instance directory. A process that was writing into it (a server's child
/// that outlived the kill by a moment, or the owner removing it concurrently) can make one
/// attempt fail with "directory not empty"; a few more attempts over two seconds settle it.
pub(super) fn remove_dir_settled(dir: &Path) -> Result<(), LocalRuntimeError> {
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            // Its owner removed it meanwhile: swept all the same.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if attempts < 10 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(source) => {
                return Err(LocalRuntimeError::RemoveDir {
                    path: dir.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Waits for a SIGKILLed process to disappear, so its files are closed before we delete
/// them. There is no way to wait for a process that is not our child, so this polls; a
/// SIGKILLed process is usually gone within a millisecond.
fn wait_until_gone(process: ProcessId, limit: Duration) {
    let deadline = Instant::now() + limit;
    while process.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_safe_and_short() {
        let prefix = dir_prefix(
            "a/b c..d-e_f-0123456789012345678901234567890",
            Engine::MariaDb,
        );
        assert_eq!(prefix, "scalardb-verify-a_b_c__d-e_f-01234567890-mariadb-");
    }

    #[test]
    fn sweep_skips_unlabelled_and_foreign_dirs_and_live_owners() {
        let root = tempfile::tempdir().unwrap();
        let unlabelled = root.path().join(format!("{DIR_PREFIX}unlabelled"));
        std::fs::create_dir(&unlabelled).unwrap();
        let foreign = root.path().join("other-tool-dir");
        std::fs::create_dir(&foreign).unwrap();
        let mut foreign_label = Label::new("x", Engine::Postgres);
        foreign_label.owner = None;
        foreign_label.write(&foreign).unwrap();
        let live = root.path().join(format!("{DIR_PREFIX}live"));
        std::fs::create_dir(&live).unwrap();
        Label::new("live", Engine::Postgres).write(&live).unwrap();
        let orphan = root.path().join(format!("{DIR_PREFIX}orphan"));
        std::fs::create_dir(&orphan).unwrap();
        let mut orphan_label = Label::new("orphan", Engine::MariaDb);
        orphan_label.owner = orphan_label.owner.map(|o| ProcessId {
            start_time: o.start_time + 1,
            ..o
        });
        orphan_label.write(&orphan).unwrap();

        let swept = sweep_in(root.path(), &SweepScope::Orphaned).unwrap();

        assert_eq!(swept.len(), 1, "{swept:?}");
        assert_eq!(swept[0].dir, orphan);
        assert_eq!(swept[0].run_id, "orphan");
        assert!(!orphan.exists());
        assert!(unlabelled.exists() && foreign.exists() && live.exists());

        let swept = sweep_in(root.path(), &SweepScope::Run("live".into())).unwrap();
        assert_eq!(swept.len(), 1);
        assert!(!live.exists());
    }
}
