//! Hostile Cassandra snapshot backups (issue 10): files the node would skip must fail the
//! drill rather than restore an empty, "consistent" database, and links must be refused,
//! never followed out of the backup. Each case asserts the exit code and the message.

use std::path::{Path, PathBuf};

use crate::support::*;

/// The files of `table`'s snapshot directory in `backup`.
fn table_snapshot_dir(backup: &Path, table: &str) -> PathBuf {
    let keyspace = backup.join("bank");
    let dir = std::fs::read_dir(&keyspace)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{table}-"))
        })
        .unwrap_or_else(|| panic!("no {table} directory in {}", keyspace.display()));
    let snapshots = dir.join("snapshots");
    let tag = std::fs::read_dir(&snapshots)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    tag.path()
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir(from) {
        let dest = to.join(entry.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dest).unwrap();
    }
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    fingerprint(dir).into_iter().map(|(p, _, _)| p).collect()
}

/// Renames every SSTable of `dir` to a format name Cassandra does not know (`-big-` →
/// `-xyz-`), as a hostile or broken backup job might, and rewrites manifest.json to match:
/// the backup is complete by its own account, and nodetool import skips every file.
fn rename_unrecognisably(dir: &Path) -> usize {
    let mut renamed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some((generation, component)) = name.split_once("-big-") {
            let new = format!("{generation}-xyz-{component}");
            std::fs::rename(&path, dir.join(&new)).unwrap();
            renamed += usize::from(component == "Data.db");
        }
    }
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("-big-", "-xyz-")).unwrap();
    renamed
}

#[tokio::test(flavor = "multi_thread")]
async fn sstables_the_node_skips_and_linked_snapshot_files_fail_the_drill() {
    let _slot = heavy_test_slot().await;
    let node = start_node().await;
    let writer = writer(&node).await;
    load_state(&writer, "clean").await;
    node.snapshot("hostile", &[]).await.unwrap();
    let honest = tempfile::tempdir().unwrap();
    copy_snapshot(&node, "hostile", honest.path(), "nightly");
    node.stop().await.unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "root:TOP-SECRET-FIRST-LINE\n").unwrap();

    // SSTables Cassandra does not recognise: nodetool import exits 0 ("No new SSTables were
    // found" in the node's log) and the table would restore empty. The drill fails instead,
    // naming the table and the snapshot directory.
    let skipped = tempfile::tempdir().unwrap();
    copy_dir(honest.path(), skipped.path());
    let accounts = table_snapshot_dir(skipped.path(), "accounts");
    assert!(rename_unrecognisably(&accounts) > 0, "no accounts SSTable");
    let run = drill_json(skipped.path(), &["--runtime", "local"]).await;
    assert_eq!(
        run.code, 3,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains("bank.accounts")
            && run.stderr.contains(&accounts.display().to_string())
            && run.stderr.contains("not loaded"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("\"verdict\""),
        "no verdict: {}",
        run.stdout
    );

    // A TOC.txt, a component, manifest.json or schema.cql linked to a file outside the
    // backup: refused naming the link, before any node starts, and the target never read.
    for linked in ["-TOC.txt", "-Statistics.db", "manifest.json", "schema.cql"] {
        let hostile = tempfile::tempdir().unwrap();
        copy_dir(honest.path(), hostile.path());
        let dir = table_snapshot_dir(hostile.path(), "accounts");
        let link = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(linked))
            .unwrap_or_else(|| panic!("no {linked} in {}", dir.display()));
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let run = drill_json(hostile.path(), &["--runtime", "local"]).await;
        assert_eq!(run.code, 3, "{linked}: {}", run.stderr);
        assert!(
            run.stderr.contains(&link.display().to_string())
                && run.stderr.contains("symbolic link"),
            "{linked}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("TOP-SECRET"),
            "{linked}: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains("TOP-SECRET"),
            "{linked}: {}",
            run.stdout
        );
    }
}
