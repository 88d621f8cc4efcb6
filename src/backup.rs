//! Backups: what a backup file is, decided from its bytes (never its name), and whether it
//! is whole. Reads only; a backup is never modified.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

pub mod cassandra;
pub mod instants;
mod namespaces;
mod pg_directory;

pub use namespaces::{for_each_short_line, namespaces_of};
pub use pg_directory::check_directory_archive;

/// The kinds of backup the tool restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupFormat {
    /// `pg_dump` plain SQL, restored with `psql`.
    PgPlain { gzip: bool },
    /// `pg_dump -Fc`, restored with `pg_restore --jobs`.
    PgCustom,
    /// `pg_dump -Fd`, restored with `pg_restore --jobs`.
    PgDirectory,
    /// `pg_dump -Ft`, restored with `pg_restore`.
    PgTar,
    /// `mysqldump` / `mariadb-dump` output, restored with the server's own client.
    MySqlDump { gzip: bool },
    /// A SQLite database file.
    Sqlite,
    /// A directory of Cassandra node snapshots (see [`cassandra`]).
    CassandraSnapshots,
}

impl BackupFormat {
    pub fn describe(self) -> &'static str {
        match self {
            Self::PgPlain { gzip: false } => "pg_dump plain SQL",
            Self::PgPlain { gzip: true } => "pg_dump plain SQL (gzip)",
            Self::PgCustom => "pg_dump custom archive (-Fc)",
            Self::PgDirectory => "pg_dump directory archive (-Fd)",
            Self::PgTar => "pg_dump tar archive (-Ft)",
            Self::MySqlDump { gzip: false } => "mysqldump SQL",
            Self::MySqlDump { gzip: true } => "mysqldump SQL (gzip)",
            Self::Sqlite => "SQLite database file",
            Self::CassandraSnapshots => "Cassandra node snapshots",
        }
    }

    pub fn is_postgres(self) -> bool {
        matches!(
            self,
            Self::PgPlain { .. } | Self::PgCustom | Self::PgDirectory | Self::PgTar
        )
    }
}

/// Each message reads after "failed to"; the file travels as a field.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("read backup {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("use backup {path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("use backup {path}: {reason}")]
    Unrecognized { path: PathBuf, reason: String },
    #[error("use backup {path}: it is truncated ({reason})")]
    Truncated { path: PathBuf, reason: String },
}

const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
const PG_CUSTOM_MAGIC: &[u8] = b"PGDMP";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// How much of a text dump's start is read to recognise its producer.
const HEAD_BYTES: usize = 64 * 1024;
/// How much of a text dump's end is read to find its completion trailer.
const TAIL_BYTES: u64 = 4 * 1024;

/// Decides what `path` is from its bytes, and checks that a text dump is complete.
pub fn inspect(path: &Path) -> Result<BackupFormat, BackupError> {
    let read_error = |source| BackupError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.is_dir() {
        return if path.join("toc.dat").is_file() {
            Ok(BackupFormat::PgDirectory)
        } else if cassandra::looks_like_snapshots(path) {
            Ok(BackupFormat::CassandraSnapshots)
        } else {
            Err(BackupError::Unrecognized {
                path: path.to_owned(),
                reason: "a directory that is neither a pg_dump directory archive (no toc.dat) \
                         nor Cassandra snapshots (no KEYSPACE/TABLE/snapshots/TAG below it)"
                    .to_owned(),
            })
        };
    }
    if metadata.len() == 0 {
        return Err(BackupError::Empty {
            path: path.to_owned(),
        });
    }
    detect(path, &mut File::open(path).map_err(read_error)?)
}

/// Decides what the bytes of `reader` are, and checks that a text dump is complete; `path`
/// only names the backup in errors. Reads a header and a tail; a gzip stream is inflated
/// through a bounded window, never into memory whole.
pub fn detect(path: &Path, reader: &mut (impl Read + Seek)) -> Result<BackupFormat, BackupError> {
    let read_error = |source| BackupError::Read {
        path: path.to_owned(),
        source,
    };
    let mut head = vec![0; 512];
    let read = read_up_to(reader, &mut head).map_err(read_error)?;
    head.truncate(read);
    if head.is_empty() {
        return Err(BackupError::Empty {
            path: path.to_owned(),
        });
    }
    reader.rewind().map_err(read_error)?;
    if head.starts_with(SQLITE_MAGIC) {
        return Ok(BackupFormat::Sqlite);
    }
    if head.starts_with(PG_CUSTOM_MAGIC) {
        return Ok(BackupFormat::PgCustom);
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Ok(BackupFormat::PgTar);
    }
    if head.starts_with(GZIP_MAGIC) {
        return inspect_text(path, reader, true);
    }
    inspect_text(path, reader, false)
}

fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Plain and gzip-compressed SQL dumps: the producer from the header comments, the
/// completeness from the trailer both tools write last.
fn inspect_text(
    path: &Path,
    reader: &mut (impl Read + Seek),
    gzip: bool,
) -> Result<BackupFormat, BackupError> {
    let read_error = |source| BackupError::Read {
        path: path.to_owned(),
        source,
    };
    let (head, tail) = if gzip {
        // A compressed dump must be decompressed to its end to see the trailer; this also
        // proves the gzip stream itself is whole.
        let mut decoder = BufReader::new(MultiGzDecoder::new(reader));
        let mut head = Vec::new();
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let chunk = match decoder.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) => {
                    return Err(BackupError::Truncated {
                        path: path.to_owned(),
                        reason: format!("the gzip stream ends early: {e}"),
                    });
                }
            };
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            if head.len() < HEAD_BYTES {
                head.extend_from_slice(&chunk[..n.min(HEAD_BYTES - head.len())]);
            }
            tail.extend_from_slice(chunk);
            let keep = usize::try_from(TAIL_BYTES).unwrap_or(usize::MAX);
            if tail.len() > 2 * keep {
                tail.drain(..tail.len() - keep);
            }
            decoder.consume(n);
        }
        (head, tail)
    } else {
        let mut head = vec![0; HEAD_BYTES];
        let read = read_up_to(reader, &mut head).map_err(read_error)?;
        head.truncate(read);
        let length = reader.seek(SeekFrom::End(0)).map_err(read_error)?;
        reader
            .seek(SeekFrom::Start(length.saturating_sub(TAIL_BYTES)))
            .map_err(read_error)?;
        let mut tail = Vec::new();
        reader.read_to_end(&mut tail).map_err(read_error)?;
        (head, tail)
    };
    let head_text = String::from_utf8_lossy(&head);
    let tail_text = String::from_utf8_lossy(&tail);
    if head_text.contains("-- PostgreSQL database dump") {
        if !tail_text.contains("-- PostgreSQL database dump complete") {
            return Err(BackupError::Truncated {
                path: path.to_owned(),
                reason: "no \"PostgreSQL database dump complete\" trailer".to_owned(),
            });
        }
        return Ok(BackupFormat::PgPlain { gzip });
    }
    if head_text.contains("-- MySQL dump") || head_text.contains("-- MariaDB dump") {
        if !tail_text.contains("-- Dump completed") {
            return Err(BackupError::Truncated {
                path: path.to_owned(),
                reason: "no \"Dump completed\" trailer".to_owned(),
            });
        }
        return Ok(BackupFormat::MySqlDump { gzip });
    }
    Err(BackupError::Unrecognized {
        path: path.to_owned(),
        reason: if head.iter().take(512).any(|&b| b == 0) {
            "unrecognized binary file: not a pg_dump archive, a gzip file or a SQLite database"
                .to_owned()
        } else {
            "unrecognized text: no pg_dump or mysqldump header".to_owned()
        },
    })
}

/// Writes the decompressed SQL of a gzip dump to `target` (inside a disposable instance).
pub fn decompress(path: &Path, target: &Path) -> Result<(), BackupError> {
    let read_error = |source| BackupError::Read {
        path: path.to_owned(),
        source,
    };
    let mut decoder = MultiGzDecoder::new(File::open(path).map_err(read_error)?);
    let mut out = File::create(target).map_err(read_error)?;
    std::io::copy(&mut decoder, &mut out).map_err(read_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    const PG: &[u8] = b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE t (x int);\n--\n-- PostgreSQL database dump complete\n--\n";
    const MY: &[u8] = b"-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\nCREATE TABLE t (x int);\n-- Dump completed on 2026-11-24 15:00:00\n";

    #[test]
    fn formats_are_recognised_from_bytes_not_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            inspect(&write(d, "x.sqlite", PG)).unwrap(),
            BackupFormat::PgPlain { gzip: false }
        );
        assert_eq!(
            inspect(&write(d, "a.sql", MY)).unwrap(),
            BackupFormat::MySqlDump { gzip: false }
        );
        assert_eq!(
            inspect(&write(d, "b.bin", &gzip(PG))).unwrap(),
            BackupFormat::PgPlain { gzip: true }
        );
        assert_eq!(
            inspect(&write(d, "c", b"PGDMP\x01\x0e\x00")).unwrap(),
            BackupFormat::PgCustom
        );
        assert_eq!(
            inspect(&write(d, "d.sql", b"SQLite format 3\0rest")).unwrap(),
            BackupFormat::Sqlite
        );
        let mut tar = vec![0u8; 1024];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(
            inspect(&write(d, "e.tar.gz", &tar)).unwrap(),
            BackupFormat::PgTar
        );
        std::fs::create_dir(d.join("dir")).unwrap();
        std::fs::write(d.join("dir/toc.dat"), b"PGDMP").unwrap();
        assert_eq!(inspect(&d.join("dir")).unwrap(), BackupFormat::PgDirectory);
    }

    #[test]
    fn detection_reads_any_reader_and_streams_a_gzip_bomb() {
        let path = Path::new("in-memory");
        let detect_bytes = |bytes: &[u8]| detect(path, &mut std::io::Cursor::new(bytes));
        assert_eq!(
            detect_bytes(MY).unwrap(),
            BackupFormat::MySqlDump { gzip: false }
        );
        assert!(matches!(detect_bytes(b""), Err(BackupError::Empty { .. })));
        // 8 MiB of zeros between header and trailer, 8 KiB compressed: inflated through a
        // window to its trailer, never held (the fuzz target holds it to a 1 MiB budget).
        let mut bomb = PG[..34].to_vec();
        bomb.resize(8 << 20, 0);
        bomb.extend_from_slice(&PG[PG.len() - 40..]);
        assert_eq!(
            detect_bytes(&gzip(&bomb)).unwrap(),
            BackupFormat::PgPlain { gzip: true }
        );
    }

    #[test]
    fn empty_truncated_and_unknown_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let empty = write(d, "empty.sql", b"");
        let err = inspect(&empty).unwrap_err();
        assert!(matches!(err, BackupError::Empty { .. }));
        assert!(err.to_string().contains("empty.sql"), "{err}");

        let cut = write(d, "cut.sql", &PG[..PG.len() - 20]);
        assert!(matches!(inspect(&cut), Err(BackupError::Truncated { .. })));
        let cut = write(d, "cut.sql", &MY[..40]);
        assert!(matches!(inspect(&cut), Err(BackupError::Truncated { .. })));
        let whole = gzip(PG);
        let cut = write(d, "cut.gz", &whole[..whole.len() / 2]);
        let err = inspect(&cut).unwrap_err();
        assert!(matches!(err, BackupError::Truncated { .. }), "{err}");

        let text = write(d, "notes.txt", b"hello, this is not a dump\n");
        assert!(matches!(
            inspect(&text),
            Err(BackupError::Unrecognized { .. })
        ));
        let binary = write(d, "blob.bin", &[0u8, 1, 2, 3, 0, 0, 7]);
        let err = inspect(&binary).unwrap_err();
        assert!(err.to_string().contains("binary"), "{err}");
    }
}
