//! The label every instance directory carries, the private directory instances live in,
//! and the sweep that finds and removes the instances a killed run left behind.
//!
//! Owns the directory naming scheme and the label file's format. Instances live in the
//! tool's private directory ([`private_root`]: `$TMPDIR/scalardb-verify-<uid>`, mode 0700,
//! owned by the tool's user), never in a directory others can write, so nobody else can
//! plant a label there. The sweep only ever touches directories with our prefix, owned by
//! us, holding a parsable label file that we own and that this tool wrote, and only signals
//! processes whose pid and start time both match the label.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::process::ProcessId;
use super::{Engine, LocalRuntimeError};

/// Every instance directory's name starts with this.
pub(super) const DIR_PREFIX: &str = "i-";
/// The private directory's name, before the uid.
const ROOT_PREFIX: &str = "scalardb-verify-";
/// A label is a few hundred bytes; anything longer is not ours.
const LABEL_MAX_BYTES: u64 = 64 * 1024;
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

    /// The label in `dir`, if it is a regular file of our own that this tool wrote.
    fn read(dir: &Path) -> Option<Self> {
        let path = dir.join(LABEL_FILE);
        let metadata = std::fs::symlink_metadata(&path).ok()?;
        if !metadata.is_file() || metadata.uid() != nix::unistd::geteuid().as_raw() {
            return None;
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .ok()?
            .take(LABEL_MAX_BYTES)
            .read_to_end(&mut bytes)
            .ok()?;
        let label: Self = serde_json::from_slice(&bytes).ok()?;
        (label.tool == TOOL).then_some(label)
    }
}

/// The tool's private directory for instances: `$TMPDIR/scalardb-verify-<euid>`, created
/// with mode 0700 if missing. One that exists but is not ours alone (another owner, a
/// symbolic link, group or world access) is refused: someone else could plant labels or
/// swap instance directories there.
pub fn private_root() -> Result<PathBuf, LocalRuntimeError> {
    let uid = nix::unistd::geteuid().as_raw();
    let root = std::env::temp_dir().join(format!("{ROOT_PREFIX}{uid}"));
    match std::fs::create_dir(&root) {
        Ok(()) => {
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| LocalRuntimeError::CreateDir {
                    parent: root.clone(),
                    source,
                },
            )?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(LocalRuntimeError::CreateDir {
                parent: root,
                source,
            });
        }
    }
    check_private(&root)?;
    Ok(root)
}

/// Refuses `dir` unless it is a real directory owned by us that nobody else may write.
pub fn check_private(dir: &Path) -> Result<(), LocalRuntimeError> {
    let unsafe_parent = |reason: String| LocalRuntimeError::UnsafeParent {
        path: dir.to_owned(),
        reason,
    };
    let metadata = std::fs::symlink_metadata(dir)
        .map_err(|e| unsafe_parent(format!("it cannot be examined: {e}")))?;
    if !metadata.is_dir() {
        return Err(unsafe_parent(
            "it is not a directory (a symbolic link is refused)".to_owned(),
        ));
    }
    let uid = nix::unistd::geteuid().as_raw();
    if metadata.uid() != uid {
        return Err(unsafe_parent(format!(
            "it belongs to uid {}, not to us (uid {uid})",
            metadata.uid()
        )));
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(unsafe_parent(format!(
            "others may write it (mode {:o})",
            metadata.mode() & 0o7777
        )));
    }
    Ok(())
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

/// Removes the instances that killed runs left in the private directory, killing their
/// servers first. Equivalent to `sweep(&SweepScope::Orphaned)`.
///
/// Blocks for up to a few seconds per killed server; call it from `spawn_blocking` in
/// async code.
pub fn sweep_leftovers() -> Result<Vec<SweptInstance>, LocalRuntimeError> {
    sweep(&SweepScope::Orphaned)
}

/// Removes the labelled instances in the private directory that `scope` selects.
pub fn sweep(scope: &SweepScope) -> Result<Vec<SweptInstance>, LocalRuntimeError> {
    sweep_in(&private_root()?, scope)
}

/// Removes the labelled instances directly under `root` that `scope` selects: for
/// instances started with [`LocalOptions::parent_dir`](super::LocalOptions::parent_dir).
pub fn sweep_in(root: &Path, scope: &SweepScope) -> Result<Vec<SweptInstance>, LocalRuntimeError> {
    let scan_error = |source| LocalRuntimeError::Sweep {
        dir: root.to_path_buf(),
        source,
    };
    check_private(root)?;
    let mut swept = Vec::new();
    for entry in std::fs::read_dir(root).map_err(scan_error)? {
        let entry = entry.map_err(scan_error)?;
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        // A symlink named like ours is not ours to follow, nor a directory of another's.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let owned = entry
            .metadata()
            .is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw());
        if !is_ours || !is_dir || !owned {
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
        assert_eq!(prefix, "i-a_b_c__d-e_f-01234567890-mariadb-");
    }

    #[test]
    fn sweep_skips_unlabelled_and_foreign_dirs_and_live_owners() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
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

    #[test]
    fn a_directory_others_can_write_is_not_private() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = sweep_in(root.path(), &SweepScope::Orphaned).unwrap_err();
        assert!(err.to_string().contains("others may write it"), "{err}");
        let link = root.path().join("link");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let err = check_private(&link).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn a_label_we_do_not_own_is_ignored() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let planted = root.path().join(format!("{DIR_PREFIX}planted"));
        std::fs::create_dir(&planted).unwrap();
        let mut label = Label::new("planted", Engine::Postgres);
        label.owner = None;
        label.write(&planted).unwrap();
        std::os::unix::fs::chown(planted.join(LABEL_FILE), Some(65534), None).unwrap();
        assert!(Label::read(&planted).is_none());
    }
}
