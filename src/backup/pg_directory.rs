//! A `pg_dump -Fd` directory archive, checked before any tool opens it: pg_restore opens
//! every large object file that a `blobs*.toc` names, wherever the name points, so a name
//! with a `/` (or `..`) would load a file from outside the archive. Reads only.

use std::io::{BufRead as _, Read as _};
use std::path::{Path, PathBuf};

use super::BackupError;

/// A `blobs*.toc` line is an oid and a file name: far shorter than this.
const MAX_TOC_LINE: u64 = 4096;

/// Refuses a directory archive whose entries are not all regular files directly inside
/// it, or whose large-object tables of contents name a file outside it.
pub fn check_directory_archive(dir: &Path) -> Result<(), BackupError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Read { path, source }
    };
    let refuse = |path: PathBuf, reason: String| BackupError::Unrecognized { path, reason };
    for entry in std::fs::read_dir(dir).map_err(read_error(dir))? {
        let entry = entry.map_err(read_error(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(read_error(&path))?;
        if !kind.is_file() {
            return Err(refuse(
                path,
                "a pg_dump directory archive holds only regular files (this is a symbolic \
                 link, a directory or a device)"
                    .to_owned(),
            ));
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("blobs") && name.ends_with(".toc") {
            check_blobs_toc(&path)?;
        }
    }
    Ok(())
}

fn check_blobs_toc(path: &Path) -> Result<(), BackupError> {
    let file = std::fs::File::open(path).map_err(|source| BackupError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        let n = (&mut reader)
            .take(MAX_TOC_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|source| BackupError::Read {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let entry = text.trim_end_matches(['\n', '\r']);
        if entry.is_empty() {
            continue;
        }
        let file = entry.split_once(' ');
        let valid = file.is_some_and(|(oid, file)| {
            !oid.is_empty()
                && oid.bytes().all(|b| b.is_ascii_digit())
                && !file.is_empty()
                && file != "."
                && file != ".."
                && !file.contains(['/', '\\', '\0'])
        });
        if !valid
            || line.last() != Some(&b'\n') && u64::try_from(n).is_ok_and(|n| n == MAX_TOC_LINE)
        {
            return Err(BackupError::Unrecognized {
                path: path.to_owned(),
                reason: format!(
                    "line {number} does not name a large-object file inside the archive \
                     (an oid and a plain file name): {:?}",
                    entry.chars().take(120).collect::<String>()
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_object_files_outside_the_archive_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("toc.dat"), b"PGDMP").unwrap();
        std::fs::write(dir.path().join("blobs.toc"), b"16385 blob_16385.dat\n").unwrap();
        check_directory_archive(dir.path()).unwrap();

        for bad in [
            "16385 ../../etc/shadow\n",
            "16385 /etc/shadow\n",
            "x y\n",
            "16385 ..\n",
        ] {
            std::fs::write(dir.path().join("blobs.toc"), bad).unwrap();
            let err = check_directory_archive(dir.path()).unwrap_err();
            assert!(err.to_string().contains("large-object"), "{bad}: {err}");
        }
        std::fs::write(dir.path().join("blobs.toc"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("3001.dat")).unwrap();
        let err = check_directory_archive(dir.path()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}
