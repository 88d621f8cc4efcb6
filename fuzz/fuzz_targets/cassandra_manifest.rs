//! A snapshot's manifest.json and an SSTable's TOC.txt. Input: the manifest's bytes, a NUL,
//! the TOC's bytes. The manifest goes to its pure parser, then both into a real one-table
//! snapshot directory (scratch, in /dev/shm or the temporary directory, removed at exit) that
//! `cassandra::inspect` reads as a drill would: never a panic, and a backup it accepts holds
//! every file its manifest lists.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scalardb_verify::backup::cassandra::{inspect, parse_manifest};

mod common;

#[global_allocator]
static BUDGET: common::Budget = common::Budget::new(64 << 20);

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS bank.accounts (id int PRIMARY KEY, balance int) \
                      WITH ID = a80f0e00-e82c-11f1-b92c-3192c99018e7;\n";

/// The files of the snapshot besides manifest.json and the TOC.
const COMPONENTS: [(&str, &[u8]); 4] = [
    ("nb-1-big-Data.db", b"data"),
    ("nb-1-big-Statistics.db", b"stats"),
    ("nb-1-big-Digest.crc32", b"1234"),
    ("schema.cql", SCHEMA.as_bytes()),
];

static ROOT: OnceLock<PathBuf> = OnceLock::new();

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn remove_root() {
    if let Some(root) = ROOT.get() {
        let _ = std::fs::remove_dir_all(root);
    }
}

/// The scratch backup's root and its snapshot directory.
fn snapshot_dir() -> (&'static Path, PathBuf) {
    let root = ROOT.get_or_init(|| {
        // tmpfs where there is one: rewriting two files per input on a disk (ext4 with
        // discard) costs milliseconds, on tmpfs microseconds.
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!(
            "scalardb-verify-fuzz-manifest-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("bank/accounts-a80f0e00e82c11f1b92c3192c99018e7/snapshots/t");
        std::fs::create_dir_all(&dir).expect("create the scratch snapshot");
        for (name, contents) in COMPONENTS {
            std::fs::write(dir.join(name), contents).expect("write a component");
        }
        // SAFETY: registers a plain function; libFuzzer exits through exit(3) at the end
        // of a bounded run, which calls it.
        unsafe { atexit(remove_root) };
        root
    });
    let dir = root.join("bank/accounts-a80f0e00e82c11f1b92c3192c99018e7/snapshots/t");
    (root, dir)
}

fuzz_target!(|data: &[u8]| {
    let (manifest, toc) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &b""[..]),
    };
    if let Ok(text) = std::str::from_utf8(manifest) {
        let _ = parse_manifest(text);
    }

    let (root, dir) = snapshot_dir();
    std::fs::write(dir.join("manifest.json"), manifest).expect("write manifest.json");
    std::fs::write(dir.join("nb-1-big-TOC.txt"), toc).expect("write the TOC");
    if let Ok(backup) = inspect(root, None) {
        let listed = std::str::from_utf8(manifest)
            .ok()
            .and_then(|text| parse_manifest(text).ok())
            .expect("an accepted backup's manifest parses");
        for file in listed {
            assert!(dir.join(&file).is_file(), "accepted, but {file} is missing");
        }
        assert_eq!(backup.nodes[0].tables[0].sstables, 1);
    }
});
