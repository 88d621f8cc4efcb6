//! The backup's own record of when each part was copied: the pg_dump archive header's
//! creation time (custom, directory and tar formats), a plain dump's `-- Started on` /
//! `-- Completed on` comments (pg_dump `--verbose`), mysqldump's `-- Dump completed on`
//! trailer, a Cassandra snapshot's `manifest.json` `created_at`. One pg_dump run is one
//! snapshot; several dumps joined into one file are several parts.
//!
//! Everything here is hostile input: fixed-size reads of a header, text scanned through a
//! bounded line prefix (a line of any length costs at most `LINE_PREFIX` bytes), at most
//! `MAX_PARTS` parts, nothing executed. A record that cannot be read is a part without an
//! instant whose `how` says why, never an error that stops the drill. Must not judge the
//! cut (that is `analyze/cut.rs`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::BackupFormat;
use super::cassandra::SnapshotBackup;
use crate::analyze::{CutPart, InstantSource};

/// The most of a text line kept: every comment this module reads is far shorter.
const LINE_PREFIX: usize = 256;
/// The most parts one backup is split into (a file of a million dump headers is still read
/// in bounded memory).
const MAX_PARTS: usize = 64;
/// The most of an archive header read.
const HEADER_BYTES: usize = 4096;
/// A naive date-time carries no zone: it may be off by this much either way.
const UNKNOWN_ZONE_MS: i64 = 14 * 3_600_000;

/// The parts of the backup at `path` with their recorded instants.
pub fn read(path: &Path, format: BackupFormat, snapshots: Option<&SnapshotBackup>) -> Vec<CutPart> {
    let name = path.display().to_string();
    match format {
        BackupFormat::PgCustom => vec![archive_part(
            &name,
            File::open(path).map_err(|e| e.to_string()),
        )],
        BackupFormat::PgDirectory => vec![archive_part(
            &name,
            File::open(path.join("toc.dat")).map_err(|e| e.to_string()),
        )],
        BackupFormat::PgTar => vec![archive_part(&name, tar_toc(path))],
        BackupFormat::PgPlain { gzip } | BackupFormat::MySqlDump { gzip } => {
            match open_text(path, gzip) {
                Ok(reader) => text_parts(&name, reader, format.is_postgres()),
                Err(e) => vec![unreadable(&name, &format!("could not read the dump: {e}"))],
            }
        }
        BackupFormat::Sqlite => vec![CutPart {
            how: "a SQLite file records no copy time (a copy made with SQLite's backup API \
                  is one snapshot; a file copied while written is not)"
                .to_owned(),
            ..unreadable(&name, "")
        }],
        // Node snapshots are judged by the per-node comparison (`--per-node`); their
        // manifests' instants are for a drill of several backups to pass on
        // (`cassandra_parts`), not yet handed to the single-backup analysis.
        BackupFormat::CassandraSnapshots => {
            let _ = snapshots;
            Vec::new()
        }
    }
}

/// The parts of every backup of a drill, each named with its storage. A backup of several
/// that records no part at all (node snapshots) is still a part, copied at an unknown
/// instant: a set is never one snapshot because one of its backups is.
pub fn read_all<'a>(
    backups: impl ExactSizeIterator<
        Item = (
            &'a Path,
            BackupFormat,
            Option<&'a SnapshotBackup>,
            Option<String>,
        ),
    >,
) -> Vec<CutPart> {
    let several = backups.len() > 1;
    let mut all = Vec::new();
    for (path, format, snapshots, storage) in backups {
        let mut parts = read(path, format, snapshots);
        if parts.is_empty() && several {
            parts.push(unreadable(
                &path.display().to_string(),
                &format!("{} records no copy time here", format.describe()),
            ));
        }
        for part in &mut parts {
            part.storage.clone_from(&storage);
        }
        all.extend(parts);
    }
    all
}

fn unreadable(name: &str, how: &str) -> CutPart {
    CutPart {
        name: name.to_owned(),
        storage: None,
        earliest_ms: None,
        latest_ms: None,
        source: InstantSource::Recorded,
        how: how.to_owned(),
        single_snapshot: false,
    }
}

fn open_text(path: &Path, gzip: bool) -> std::io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    Ok(if gzip {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// `toc.dat`, the tar archive's first member, read in place (a 512-byte ustar header,
/// then the member's bytes).
fn tar_toc(path: &Path) -> Result<impl Read, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut header = [0u8; 512];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let name_end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
    if &header[..name_end] != b"toc.dat" {
        return Err("the tar archive does not start with toc.dat".to_owned());
    }
    Ok(file)
}

/// The archive header's creation time: one pg_dump run, so one snapshot.
fn archive_part(name: &str, reader: Result<impl Read, String>) -> CutPart {
    let header = reader.and_then(|mut r| {
        let mut bytes = Vec::with_capacity(HEADER_BYTES);
        r.by_ref()
            .take(u64::try_from(HEADER_BYTES).unwrap_or(u64::MAX))
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        Ok(bytes)
    });
    let parsed = header.and_then(|bytes| archive_created(&bytes));
    match parsed {
        Ok(local) => CutPart {
            earliest_ms: Some(local.saturating_sub(UNKNOWN_ZONE_MS)),
            latest_ms: Some(local.saturating_add(UNKNOWN_ZONE_MS)),
            how: format!(
                "pg_dump archive header: created {} in the dumping host's local time (the \
                 header keeps no zone)",
                naive_text(local)
            ),
            single_snapshot: true,
            ..unreadable(name, "")
        },
        Err(reason) => CutPart {
            how: format!("pg_dump archive header unreadable: {reason}"),
            // Still one pg_dump run: pg_restore accepted the archive as one.
            single_snapshot: true,
            ..unreadable(name, "")
        },
    }
}

/// A little cursor over the header with pg_dump's integer and string encodings.
struct Header<'a> {
    bytes: &'a [u8],
    at: usize,
    int_size: usize,
}

impl Header<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("the header ends early")?;
        self.at += 1;
        Ok(b)
    }

    /// A sign byte, then `int_size` bytes little-endian.
    fn int(&mut self) -> Result<i64, String> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for i in 0..self.int_size {
            let b = i64::from(self.byte()?);
            value |= b
                .checked_shl(u32::try_from(8 * i).unwrap_or(u32::MAX))
                .unwrap_or(0);
        }
        Ok(if negative { -value } else { value })
    }

    fn skip_str(&mut self) -> Result<(), String> {
        let len = self.int()?;
        if len > 0 {
            let len = usize::try_from(len).map_err(|_| "a string length out of range")?;
            if len > 1024 {
                return Err(format!("a header string of {len} bytes"));
            }
            self.at = self
                .at
                .checked_add(len)
                .ok_or("a string length out of range")?;
        }
        Ok(())
    }
}

/// The creation time in a pg_dump archive header (`PGDMP`, version, int and offset
/// sizes, format, compression, then the `struct tm` of the dump's start), as naive epoch
/// ms (the fields are the dumping host's local time).
fn archive_created(bytes: &[u8]) -> Result<i64, String> {
    if !bytes.starts_with(b"PGDMP") {
        return Err("no PGDMP magic".to_owned());
    }
    let mut h = Header {
        bytes,
        at: 5,
        int_size: 4,
    };
    let version = (h.byte()?, h.byte()?, h.byte()?);
    if version < (1, 4, 0) {
        return Err(format!(
            "archive version {}.{}.{} records no creation time",
            version.0, version.1, version.2
        ));
    }
    let int_size = usize::from(h.byte()?);
    if !(1..=8).contains(&int_size) {
        return Err(format!("an integer size of {int_size}"));
    }
    h.int_size = int_size;
    let _offset_size = h.byte()?;
    let _format = h.byte()?;
    if version >= (1, 15, 0) {
        let _compression = h.byte()?;
    } else {
        let _compression = h.int()?;
    }
    let mut tm = [0i64; 7];
    for field in &mut tm {
        *field = h.int()?;
    }
    let [sec, min, hour, mday, mon, year, _isdst] = tm;
    h.skip_str()?;
    let civil = || -> Option<i64> {
        let date = jiff::civil::Date::new(
            i16::try_from(year.checked_add(1900)?).ok()?,
            i8::try_from(mon.checked_add(1)?).ok()?,
            i8::try_from(mday).ok()?,
        )
        .ok()?;
        let time = jiff::civil::Time::new(
            i8::try_from(hour).ok()?,
            i8::try_from(min).ok()?,
            i8::try_from(sec.min(59)).ok()?,
            0,
        )
        .ok()?;
        Some(
            date.to_datetime(time)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .ok()?
                .timestamp()
                .as_millisecond(),
        )
    };
    civil().ok_or_else(|| {
        format!("a creation time out of range ({year}-{mon}-{mday} {hour}:{min}:{sec})")
    })
}

fn naive_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| ms.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// A date-time as dump comments print it: `2026-12-02 14:00:00` (mysqldump, local) or with
/// a zone abbreviation after it (pg_dump `--verbose`); only `UTC`/`GMT` are trusted, any
/// other zone widens the instant by the largest offset.
fn comment_time(text: &str) -> Option<(i64, bool)> {
    let text = text.trim();
    let date_time = text.get(..19)?;
    let civil: jiff::civil::DateTime = date_time.replace(' ', "T").parse().ok()?;
    let ms = civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp()
        .as_millisecond();
    let zone = text.get(19..).unwrap_or("").trim();
    Some((ms, matches!(zone, "UTC" | "GMT")))
}

/// Splits a text dump into its dumps (each begins with the tool's header comment) and
/// reads each one's recorded times.
fn text_parts(name: &str, reader: Box<dyn Read>, postgres: bool) -> Vec<CutPart> {
    let (header, tool) = if postgres {
        ("-- PostgreSQL database dump", "pg_dump")
    } else {
        ("-- MySQL dump", "mysqldump")
    };
    let mut parts: Vec<CutPart> = Vec::new();
    let mut dumps = 0usize;
    let mut lines = Prefixes::new(reader);
    loop {
        let line = match lines.next_prefix() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                parts.push(unreadable(
                    name,
                    &format!("the dump could not be read to its end: {e}"),
                ));
                break;
            }
        };
        let is_header = if postgres {
            line == header.as_bytes()
        } else {
            line.starts_with(header.as_bytes()) || line.starts_with(b"-- MariaDB dump")
        };
        if is_header {
            dumps += 1;
            if parts.len() < MAX_PARTS {
                parts.push(CutPart {
                    how: format!("{tool} output without a recorded time"),
                    // One pg_dump run is one snapshot; mysqldump does not record whether it
                    // ran with --single-transaction.
                    single_snapshot: postgres,
                    ..unreadable(&format!("{name} (dump {dumps})"), "")
                });
            }
            continue;
        }
        let Some(part) = parts.last_mut() else {
            continue;
        };
        let text = String::from_utf8_lossy(&line);
        for (prefix, start) in [
            ("-- Started on ", true),
            ("-- Completed on ", false),
            ("-- Dump completed on ", false),
        ] {
            let Some(rest) = text.strip_prefix(prefix) else {
                continue;
            };
            let Some((ms, zoned)) = comment_time(rest) else {
                part.how = format!("{tool} output with an unreadable time ({})", text.trim());
                continue;
            };
            let slack = if zoned { 0 } else { UNKNOWN_ZONE_MS };
            if start {
                part.earliest_ms = Some(ms.saturating_sub(slack));
                part.latest_ms = part.latest_ms.or(Some(ms.saturating_add(slack)));
            } else {
                // The snapshot was taken at the start, at the latest by the completion.
                part.latest_ms = Some(ms.saturating_add(slack));
            }
            part.how = format!(
                "{tool} comments ({}{})",
                text.trim().trim_start_matches("-- "),
                if zoned {
                    ""
                } else {
                    ", local time of the dumping host, zone unknown"
                }
            );
        }
    }
    if dumps == 1 && parts.len() == 1 {
        parts[0].name = name.to_owned();
    }
    if dumps > MAX_PARTS {
        if let Some(last) = parts.last_mut() {
            last.how = format!(
                "{} (the file holds {dumps} dumps; the first {MAX_PARTS} are listed)",
                last.how
            );
        }
    }
    parts
}

/// The first `LINE_PREFIX` bytes of every line of a stream, in bounded memory.
struct Prefixes {
    reader: BufReader<Box<dyn Read>>,
    line: Vec<u8>,
}

impl Prefixes {
    fn new(reader: Box<dyn Read>) -> Self {
        Self {
            reader: BufReader::with_capacity(64 * 1024, reader),
            line: Vec::with_capacity(LINE_PREFIX),
        }
    }

    fn next_prefix(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.line.clear();
        let mut any = false;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(any.then(|| std::mem::take(&mut self.line)));
            }
            any = true;
            let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, Some(end)),
                None => (chunk.len(), None),
            };
            let keep = done.unwrap_or(used);
            let room = LINE_PREFIX.saturating_sub(self.line.len());
            self.line.extend_from_slice(&chunk[..keep.min(room)]);
            self.reader.consume(used);
            if done.is_some() {
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                return Ok(Some(std::mem::take(&mut self.line)));
            }
        }
    }
}

/// One part per node: its snapshots' `manifest.json` `created_at` (Cassandra 4.0+), the
/// earliest and latest over its tables. Nodes are snapshotted one by one, so no node set
/// is one snapshot.
pub fn cassandra_parts(snapshots: &SnapshotBackup) -> Vec<CutPart> {
    snapshots
        .nodes
        .iter()
        .take(MAX_PARTS)
        .map(|node| {
            let mut times = Vec::new();
            let mut problems = Vec::new();
            for table in &node.tables {
                match super::cassandra::snapshot_created_at(&table.dir) {
                    Ok(Some(ms)) => times.push(ms),
                    Ok(None) => {
                        problems.push(format!("{}.{}: no created_at", table.keyspace, table.table))
                    }
                    Err(e) => problems.push(format!("{}.{}: {e}", table.keyspace, table.table)),
                }
            }
            let name = format!("node {} (snapshot {})", node.name, snapshots.tag);
            let earliest = times.iter().min().copied();
            let latest = times.iter().max().copied();
            let how = if problems.is_empty() {
                format!(
                    "manifest.json created_at of {} table snapshot(s)",
                    times.len()
                )
            } else {
                format!(
                    "manifest.json created_at of {} table snapshot(s); unreadable: {}",
                    times.len(),
                    problems.into_iter().take(3).collect::<Vec<_>>().join("; ")
                )
            };
            CutPart {
                earliest_ms: earliest.filter(|_| latest.is_some()),
                latest_ms: latest,
                how,
                ..unreadable(&name, "")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A custom-format header as pg_dump 1.14/1.15 writes it (4-byte ints with a sign byte).
    fn header(version: (u8, u8, u8), tm: [i64; 7]) -> Vec<u8> {
        let int = |v: i64| {
            let mut b = vec![u8::from(v < 0)];
            b.extend_from_slice(&u32::try_from(v.abs()).unwrap().to_le_bytes());
            b
        };
        let mut bytes = b"PGDMP".to_vec();
        bytes.extend([version.0, version.1, version.2, 4, 8, 1]);
        if version >= (1, 15, 0) {
            bytes.push(0);
        } else {
            bytes.extend(int(-1));
        }
        for field in tm {
            bytes.extend(int(field));
        }
        bytes.extend(int(3));
        bytes.extend(b"app");
        bytes
    }

    #[test]
    fn the_archive_header_gives_the_dump_start_in_local_time() {
        // 2026-12-02 14:05:09 (tm: sec, min, hour, mday, mon 0-based, year - 1900, isdst).
        let tm = [9, 5, 14, 2, 11, 126, 0];
        let want = jiff::Timestamp::from_second(1_796_220_309)
            .unwrap()
            .as_millisecond();
        for version in [(1, 14, 0), (1, 15, 0), (1, 16, 0)] {
            assert_eq!(
                archive_created(&header(version, tm)),
                Ok(want),
                "{version:?}"
            );
        }
        let part = archive_part("a.dump", Ok(&header((1, 15, 0), tm)[..]));
        assert!(part.single_snapshot);
        assert_eq!(part.earliest_ms, Some(want - UNKNOWN_ZONE_MS));
        assert!(part.how.contains("2026-12-02 14:05:09"), "{}", part.how);
    }

    #[test]
    fn a_hostile_header_is_a_reason_never_a_panic() {
        assert!(archive_created(b"PGDMP").is_err());
        assert!(archive_created(b"PGDMP\x01\x0f\x00\xff").is_err());
        let mut bad = header((1, 15, 0), [99, 99, 99, 99, 99, 99, 0]);
        assert!(archive_created(&bad).is_err());
        bad.truncate(20);
        let part = archive_part("x", Ok(&bad[..]));
        assert!(
            part.earliest_ms.is_none() && part.how.contains("unreadable"),
            "{part:?}"
        );
        for n in 0..64 {
            let junk: Vec<u8> = b"PGDMP"
                .iter()
                .copied()
                .chain((0..n).map(|i: u8| i.wrapping_mul(37)))
                .collect();
            let _ = archive_created(&junk);
        }
    }

    #[test]
    fn several_dumps_joined_are_several_parts_with_their_times() {
        let text = "--\n-- PostgreSQL database dump\n--\n-- Started on 2026-12-02 14:00:00 UTC\n\
                    SELECT 1;\n-- Completed on 2026-12-02 14:00:05 UTC\n--\n-- PostgreSQL database dump complete\n--\n\
                    --\n-- PostgreSQL database dump\n--\nSELECT 2;\n-- PostgreSQL database dump complete\n";
        let parts = text_parts("b.sql", Box::new(text.as_bytes()), true);
        assert_eq!(parts.len(), 2, "{parts:?}");
        let start = jiff::Timestamp::from_second(1_796_220_000)
            .unwrap()
            .as_millisecond();
        assert_eq!(
            (parts[0].earliest_ms, parts[0].latest_ms),
            (Some(start), Some(start + 5_000))
        );
        assert!(parts[1].earliest_ms.is_none() && parts[1].single_snapshot);
        let one = text_parts(
            "c.sql",
            Box::new(
                "-- PostgreSQL database dump\nSELECT 1;\n-- PostgreSQL database dump complete\n"
                    .as_bytes(),
            ),
            true,
        );
        assert_eq!((one.len(), one[0].name.as_str()), (1, "c.sql"));
    }

    #[test]
    fn mysqldump_records_its_completion_in_local_time() {
        let text = format!(
            "-- MariaDB dump 10.19\n{}\n-- Dump completed on 2026-12-02 14:00:05\n",
            "x".repeat(100_000)
        );
        let parts = text_parts(
            "m.sql",
            Box::new(std::io::Cursor::new(text.into_bytes())),
            false,
        );
        assert_eq!(parts.len(), 1);
        let done = jiff::Timestamp::from_second(1_796_220_005)
            .unwrap()
            .as_millisecond();
        assert_eq!(parts[0].latest_ms, Some(done + UNKNOWN_ZONE_MS));
        assert!(!parts[0].single_snapshot);
        assert!(parts[0].how.contains("zone unknown"), "{}", parts[0].how);
    }
}
