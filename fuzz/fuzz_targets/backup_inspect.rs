//! `backup::detect`, the byte-level half of `backup::inspect`: any bytes are a named
//! format or a named error, never a panic, and a gzip stream is inflated through a bounded
//! window: the budget is 1 MiB of live allocations (detection's own peak is about 200 KiB),
//! and the largest input can inflate to 32 MiB.

#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scalardb_verify::backup::{BackupError, BackupFormat, detect};

mod common;

#[global_allocator]
static BUDGET: common::Budget = common::Budget::new(1 << 20);

fuzz_target!(|data: &[u8]| {
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    match detect(Path::new("backup"), &mut Cursor::new(data)) {
        Ok(BackupFormat::Sqlite) => assert!(data.starts_with(b"SQLite format 3\0")),
        Ok(BackupFormat::PgCustom) => assert!(data.starts_with(b"PGDMP")),
        Ok(BackupFormat::PgTar) => assert_eq!(data.get(257..262), Some(&b"ustar"[..])),
        Ok(BackupFormat::PgPlain { gzip: g } | BackupFormat::MySqlDump { gzip: g }) => {
            assert_eq!(g, gzip);
        }
        Ok(format @ (BackupFormat::PgDirectory | BackupFormat::CassandraSnapshots)) => {
            panic!("bytes detected as a directory format: {format:?}")
        }
        Err(BackupError::Empty { .. }) => assert!(data.is_empty()),
        Err(BackupError::Read { source, .. }) => panic!("an in-memory read failed: {source}"),
        Err(BackupError::Truncated { .. } | BackupError::Unrecognized { .. }) => {}
    }
});
