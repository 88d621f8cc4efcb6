//! Cassandra node snapshots laid out as a node's data directory holds them, as an
//! operator's backup job copies them: shared by the Cassandra and the drill test binaries.

use scalardb_verify::runtime::cassandra::CassandraInstance;

/// Copies snapshot `tag` of `node` into `dest` laid out as a node's data directory
/// (`dest/KEYSPACE/TABLE-ID/snapshots/SAVED_AS/`), as an operator's backup job would.
pub fn copy_snapshot(node: &CassandraInstance, tag: &str, dest: &std::path::Path, saved_as: &str) {
    let dirs = node.snapshot_dirs(tag);
    assert!(!dirs.is_empty(), "snapshot {tag} made no directories");
    for dir in dirs {
        let table_dir = dir.parent().unwrap().parent().unwrap();
        let keyspace = table_dir.parent().unwrap().file_name().unwrap();
        let target = dest
            .join(keyspace)
            .join(table_dir.file_name().unwrap())
            .join("snapshots")
            .join(saved_as);
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
}
