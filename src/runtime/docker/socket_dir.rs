//! The host directory a SQL container's server puts its Unix socket in: the only way to
//! reach that server, so only this user may open it.
//!
//! Each instance gets a fresh directory `docker-XXXXXX`, 0700, under the parent private to
//! this user that the local runtime's instances share (`$TMPDIR/scalardb-verify-<euid>`,
//! 0700, refused if another user owns it or it is a link). Inside it, `socket` is what the
//! container gets mounted: writable by every account,
//! so that the image's server account can create its socket there whatever its uid, and
//! reachable by nobody else, since its parent is not.
//!
//! This module must not remove anything it did not make: [`remove`] acts only on a
//! directory of this user's private parent with this module's name.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// How an instance directory's name starts.
const PREFIX: &str = "docker-";
/// The subdirectory mounted into the container.
const SOCKET_SUBDIR: &str = "socket";
/// The longest Unix socket path Linux accepts (`sun_path` less its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// One instance's private directory, and the socket directory in it.
#[derive(Debug)]
pub(super) struct SocketDir {
    path: PathBuf,
}

impl SocketDir {
    /// A fresh directory for a socket named `socket_name`, 0700 under this user's private
    /// parent, with its world-writable `socket` subdirectory.
    pub(super) fn create(socket_name: &str) -> io::Result<Self> {
        let parent = private_parent()?;
        // 0700 from its creation, under a name nobody can have guessed.
        let path = tempfile::Builder::new()
            .prefix(PREFIX)
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&parent)?
            .keep();
        let dir = Self { path };
        let socket_dir = dir.socket_dir();
        let socket_path = socket_dir.join(socket_name);
        if socket_path.as_os_str().len() > MAX_SOCKET_PATH {
            let _ = fs::remove_dir_all(&dir.path);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the socket path {} is longer than the {MAX_SOCKET_PATH} bytes Linux \
                     allows (set TMPDIR to a shorter directory)",
                    socket_path.display()
                ),
            ));
        }
        let made = fs::create_dir(&socket_dir).and_then(|()| {
            // Set, not requested: the umask would take the bits off.
            fs::set_permissions(&socket_dir, fs::Permissions::from_mode(0o777))
        });
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&dir.path);
            return Err(e);
        }
        Ok(dir)
    }

    /// The instance directory (0700), what a label names and teardown removes.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory mounted into the container, where the server's socket is.
    pub(super) fn socket_dir(&self) -> PathBuf {
        self.path.join(SOCKET_SUBDIR)
    }

    /// Removes the directory and what the server left in it.
    pub(super) fn remove(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// This user's private parent directory, made 0700 if missing. One that exists must be a
/// directory (not a link) owned by this user; it is made 0700 again if it is not.
pub(super) fn private_parent() -> io::Result<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    // The same place as the local runtime's `private_root`, so that one environment
    // variable (TMPDIR) decides where a run's private files are, for runs and sweeps alike.
    let parent = std::env::temp_dir().join(format!("scalardb-verify-{uid}"));
    match fs::DirBuilder::new().mode(0o700).create(&parent) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = fs::symlink_metadata(&parent)?;
    if !meta.file_type().is_dir() || meta.uid() != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of this user's (uid {uid}); another user may have \
                 made it: remove it, or set TMPDIR elsewhere",
                parent.display()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o700))?;
    }
    Ok(parent)
}

/// Removes the instance directory `path`, named by a container's label, if it is one of
/// this module's in this user's private parent. `Ok(false)`: not ours, or already gone.
pub(super) fn remove(path: &Path) -> io::Result<bool> {
    let ours = path.parent() == Some(private_parent()?.as_path())
        && path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(PREFIX) && !name.contains('/'));
    if !ours {
        return Ok(false);
    }
    let uid = nix::unistd::geteuid().as_raw();
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_dir() && meta.uid() == uid => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    fs::remove_dir_all(path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_directory_is_private_and_its_socket_directory_writable() {
        let dir = SocketDir::create("mysqld.sock").unwrap();
        let parent = dir.path().parent().unwrap();
        assert_eq!(parent, private_parent().unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(parent), 0o700);
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.socket_dir()), 0o777);
        let path = dir.path().to_owned();
        assert!(remove(&path).unwrap());
        assert!(!path.exists());
        assert!(!remove(&path).unwrap());
    }

    #[test]
    fn remove_leaves_what_is_not_ours() {
        let elsewhere = tempfile::Builder::new().prefix(PREFIX).tempdir().unwrap();
        // Not in the private parent (the temp dir itself), whatever its name.
        if elsewhere.path().parent() != Some(private_parent().unwrap().as_path()) {
            assert!(!remove(elsewhere.path()).unwrap());
            assert!(elsewhere.path().exists());
        }
        let parent = private_parent().unwrap();
        let other = tempfile::Builder::new()
            .prefix("not-ours-")
            .tempdir_in(&parent)
            .unwrap();
        assert!(!remove(other.path()).unwrap());
        assert!(other.path().exists());
        assert!(!remove(&parent.join("docker-../..")).unwrap());
    }
}
