//! Cassandra backups: a directory of node snapshots, as `nodetool snapshot` leaves them in
//! each node's data directory. Finds the nodes, tables and SSTables of one snapshot tag,
//! checks every SSTable is whole, and takes each table's schema from the backup. Reads
//! only.
//!
//! Layouts accepted (`TAG` is the snapshot tag; `TABLE-ID` is the table's directory, with or
//! without its id suffix):
//!
//! ```text
//! BACKUP/KEYSPACE/TABLE-ID/snapshots/TAG/            one node (a copy of its data directory)
//! BACKUP/NODE/KEYSPACE/TABLE-ID/snapshots/TAG/       several nodes, one directory each
//! BACKUP/schema.cql                                  optional: `DESCRIBE SCHEMA` output
//! ```
//!
//! Without a `schema.cql` at the top, each table's schema comes from the `schema.cql` that
//! Cassandra writes into every snapshot.
//!
//! A backup is untrusted input. Every file read from it (TOC.txt, manifest.json,
//! schema.cql) and every SSTable component counted must be a regular file of the backup
//! itself: a symbolic link met anywhere in the walk is refused, never followed, a TOC
//! naming anything but a plain file name is refused, and each file is read up to a limit
//! ([`open_regular`] is the one way in, for the runtimes' copies too).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::BackupError;

/// Keyspaces Cassandra owns; their snapshots are never restored.
const SYSTEM_KEYSPACES: [&str; 7] = [
    "system",
    "system_auth",
    "system_distributed",
    "system_schema",
    "system_traces",
    "system_views",
    "system_virtual_schema",
];

/// How deep under the backup a `snapshots` directory is looked for: NODE/KS/TABLE/snapshots.
const MAX_DEPTH: usize = 4;
/// The most of a `schema.cql` read: `DESCRIBE SCHEMA` of thousands of tables is a few MiB.
pub const MAX_SCHEMA_BYTES: u64 = 64 << 20;
/// The most of a `manifest.json` read: a few hundred bytes per SSTable.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// The most of a `TOC.txt` read: one line per component, a dozen components.
pub const MAX_TOC_BYTES: u64 = 64 << 10;
/// What a snapshot directory holds besides SSTable components.
pub const NOT_COMPONENTS: [&str; 2] = ["manifest.json", "schema.cql"];

/// One snapshot tag of every node of a backup, checked whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotBackup {
    pub root: PathBuf,
    pub tag: String,
    pub nodes: Vec<NodeSnapshot>,
    /// Each table's schema, by `(keyspace, table)`.
    pub schemas: BTreeMap<(String, String), TableSchemaCql>,
}

impl SnapshotBackup {
    pub fn keyspaces(&self) -> BTreeSet<&str> {
        self.schemas.keys().map(|(ks, _)| ks.as_str()).collect()
    }

    pub fn total_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .flat_map(|n| &n.tables)
            .map(|t| t.bytes)
            .sum()
    }
}

/// The snapshot of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// The node's directory relative to the backup (`.` for a single-node backup).
    pub name: String,
    pub tables: Vec<TableSnapshot>,
}

/// One table's SSTables in one node's snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSnapshot {
    pub keyspace: String,
    pub table: String,
    /// The `snapshots/TAG` directory.
    pub dir: PathBuf,
    pub sstables: usize,
    pub bytes: u64,
}

/// The statements that recreate one table: its `CREATE TABLE` and any `ALTER TABLE` that
/// followed it (dropped columns must be known for old SSTables to load).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchemaCql {
    pub create: String,
    pub alters: Vec<String>,
    /// Where the statements were read.
    pub source: PathBuf,
}

impl TableSchemaCql {
    /// The statements for a table named `keyspace.table` (the original table, or a copy
    /// under another keyspace): the original table id is left out, since two tables of one
    /// cluster cannot share it and the id is not part of the data.
    pub fn statements_for(&self, keyspace: &str, table: &str) -> Vec<String> {
        std::iter::once(&self.create)
            .chain(&self.alters)
            .map(|statement| retarget(statement, keyspace, table))
            .collect()
    }
}

/// Whether `dir` looks like a Cassandra snapshot backup: some `KS/TABLE/snapshots` directory
/// within reach. Cheap: stops at the first.
pub fn looks_like_snapshots(dir: &Path) -> bool {
    walk_snapshot_dirs(dir, 0, &mut |found| matches!(found, Walked::Snapshots(_)))
}

/// Reads the backup at `root`: the snapshots of `tag`, or of the only tag present.
pub fn inspect(root: &Path, tag: Option<&str>) -> Result<SnapshotBackup, BackupError> {
    let unrecognized = |reason: String| BackupError::Unrecognized {
        path: root.to_owned(),
        reason,
    };
    let mut table_dirs = Vec::new();
    let mut links = Vec::new();
    walk_snapshot_dirs(root, 0, &mut |found| {
        match found {
            Walked::Snapshots(dir) => table_dirs.push(dir),
            Walked::Symlink(link) => links.push(link),
        }
        false
    });
    if let Some(link) = links.into_iter().min() {
        return Err(symlink_refused(&link));
    }
    table_dirs.sort();

    // node dir -> (keyspace, table, snapshots dir)
    let mut by_node: BTreeMap<PathBuf, Vec<(String, String, PathBuf)>> = BTreeMap::new();
    let mut tags = BTreeSet::new();
    for snapshots in table_dirs {
        let table_dir = snapshots.parent().expect("snapshots has a parent");
        let keyspace_dir = table_dir.parent().expect("a table dir has a parent");
        let node_dir = keyspace_dir.parent().unwrap_or(root).to_owned();
        let keyspace = file_name(keyspace_dir);
        if SYSTEM_KEYSPACES.contains(&keyspace.as_str()) {
            continue;
        }
        let table = table_name(&file_name(table_dir));
        for entry in read_dir(&snapshots)? {
            if kind_of(&entry)? == Kind::Dir {
                tags.insert(file_name(&entry));
            }
        }
        by_node
            .entry(node_dir)
            .or_default()
            .push((keyspace, table, snapshots));
    }
    if by_node.is_empty() {
        return Err(unrecognized(
            "no KEYSPACE/TABLE/snapshots/TAG directory of a non-system keyspace was found \
             (a Cassandra backup is a copy of each node's data directory after `nodetool \
             snapshot`)"
                .to_owned(),
        ));
    }
    let tag = match tag {
        Some(tag) if !is_plain_name(tag) => {
            return Err(unrecognized(format!(
                "the snapshot tag {tag:?} is not a plain directory name"
            )));
        }
        Some(tag) => tag.to_owned(),
        None if tags.len() == 1 => tags.into_iter().next().expect("one tag"),
        None if tags.is_empty() => {
            return Err(unrecognized(
                "the snapshots directories are empty: no snapshot tag".to_owned(),
            ));
        }
        None => {
            return Err(unrecognized(format!(
                "it holds several snapshot tags ({}); choose one with --snapshot-tag",
                tags.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    };

    let top_schema = root.join("schema.cql");
    let top_schema = if exists_unfollowed(&top_schema)? {
        Some(parse_schema_file(&top_schema)?)
    } else {
        None
    };
    let mut nodes = Vec::new();
    let mut schemas = BTreeMap::new();
    for (node_dir, tables) in by_node {
        let name = match node_dir.strip_prefix(root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => node_dir.display().to_string(),
        };
        let mut node = NodeSnapshot {
            name,
            tables: Vec::new(),
        };
        for (keyspace, table, snapshots) in tables {
            let dir = snapshots.join(&tag);
            let is_dir = match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => return Err(symlink_refused(&dir)),
                Ok(m) => m.is_dir(),
                Err(_) => false,
            };
            if !is_dir {
                return Err(unrecognized(format!(
                    "node {} has no snapshot {tag} of {keyspace}.{table} (in {})",
                    node.name,
                    snapshots.display()
                )));
            }
            let (sstables, bytes) = check_sstables(&dir)?;
            let key = (keyspace.clone(), table.clone());
            if let std::collections::btree_map::Entry::Vacant(slot) = schemas.entry(key.clone()) {
                let schema = match &top_schema {
                    Some(all) => all.get(&key).cloned(),
                    None => {
                        let file = dir.join("schema.cql");
                        if exists_unfollowed(&file)? {
                            parse_schema_file(&file)?.remove(&key)
                        } else {
                            None
                        }
                    }
                };
                if let Some(schema) = schema {
                    slot.insert(schema);
                }
            }
            node.tables.push(TableSnapshot {
                keyspace,
                table,
                dir,
                sstables,
                bytes,
            });
        }
        nodes.push(node);
    }
    for table in nodes.iter().flat_map(|n| &n.tables) {
        if !schemas.contains_key(&(table.keyspace.clone(), table.table.clone())) {
            return Err(unrecognized(format!(
                "no schema for {}.{}: neither {} nor a schema.cql in {} defines it",
                table.keyspace,
                table.table,
                root.join("schema.cql").display(),
                table.dir.display()
            )));
        }
    }
    Ok(SnapshotBackup {
        root: root.to_owned(),
        tag,
        nodes,
        schemas,
    })
}

/// What the walk of a backup meets.
enum Walked {
    /// A `KS/TABLE/snapshots` directory.
    Snapshots(PathBuf),
    /// A symbolic link, not followed.
    Symlink(PathBuf),
}

/// Calls `found` with every `KS/TABLE/snapshots` directory and every symbolic link under
/// `dir` (neither followed) until it returns `true` (stop); returns whether it stopped.
fn walk_snapshot_dirs(dir: &Path, depth: usize, found: &mut dyn FnMut(Walked) -> bool) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_symlink() {
            if found(Walked::Symlink(entry.path())) {
                return true;
            }
            continue;
        }
        if !file_type.is_dir() {
            continue;
        }
        let path = entry.path();
        // KS/TABLE/snapshots: two levels of parents below the walk's start at least.
        let stop = if entry.file_name() == "snapshots" && depth >= 2 {
            found(Walked::Snapshots(path))
        } else {
            walk_snapshot_dirs(&path, depth + 1, found)
        };
        if stop {
            return true;
        }
    }
    false
}

/// Checks every SSTable of a snapshot directory is whole: each `…-Data.db` has its
/// `…-TOC.txt`, every component the TOC lists is present, and the data is not empty.
/// Every entry must be a regular file or a directory (a secondary index's), never a link.
/// Returns the number of SSTables and their total size.
fn check_sstables(dir: &Path) -> Result<(usize, u64), BackupError> {
    let truncated = |reason: String| BackupError::Truncated {
        path: dir.to_owned(),
        reason,
    };
    let mut sstables = 0;
    let mut bytes = 0;
    // Regular files, by name, with their size.
    let mut files = BTreeMap::new();
    for entry in read_dir(dir)? {
        match kind_of(&entry)? {
            Kind::File(len) => {
                files.insert(file_name(&entry), len);
            }
            Kind::Dir => {}
            Kind::Other => {
                return Err(BackupError::Unrecognized {
                    path: entry,
                    reason: "it is neither a regular file nor a directory (a device, FIFO or \
                             socket has no place in a snapshot)"
                        .to_owned(),
                });
            }
        }
    }
    if let Some(listed) = manifest_files(dir)? {
        for file in listed {
            if !files.contains_key(&file) {
                return Err(truncated(format!(
                    "manifest.json lists {file:?}, which is missing"
                )));
            }
        }
    }
    for name in files.keys() {
        let Some(prefix) = name.strip_suffix("-Data.db") else {
            continue;
        };
        sstables += 1;
        let toc = format!("{prefix}-TOC.txt");
        if !files.contains_key(&toc) {
            return Err(truncated(format!("{name} has no {toc}")));
        }
        let toc_path = dir.join(&toc);
        let toc_text = read_bounded(&toc_path, MAX_TOC_BYTES, "a TOC.txt")?;
        for component in toc_text.lines().map(str::trim).filter(|c| !c.is_empty()) {
            if !is_plain_name(component) || component.chars().any(char::is_control) {
                return Err(BackupError::Unrecognized {
                    path: toc_path,
                    reason: format!("it lists {component:?}, which is not a component's name"),
                });
            }
            let file = format!("{prefix}-{component}");
            let Some(&len) = files.get(&file) else {
                return Err(truncated(format!("{toc} lists {file:?}, which is missing")));
            };
            if len == 0 && component == "Data.db" {
                return Err(truncated(format!("{file} is empty")));
            }
            bytes += len;
        }
    }
    Ok((sstables, bytes))
}

/// The `files` of a snapshot's manifest.json, if it has one.
fn manifest_files(dir: &Path) -> Result<Option<Vec<String>>, BackupError> {
    let path = dir.join("manifest.json");
    if !exists_unfollowed(&path)? {
        return Ok(None);
    }
    let text = read_bounded(&path, MAX_MANIFEST_BYTES, "a manifest.json")?;
    parse_manifest(&text)
        .map(Some)
        .map_err(|e| BackupError::Truncated {
            path,
            reason: format!("manifest.json does not parse: {e}"),
        })
}

/// The `created_at` a snapshot's manifest.json records (Cassandra 4.0+), in epoch ms;
/// `None` without a manifest or the field.
pub fn snapshot_created_at(dir: &Path) -> Result<Option<i64>, BackupError> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        created_at: Option<String>,
    }
    let path = dir.join("manifest.json");
    if !exists_unfollowed(&path)? {
        return Ok(None);
    }
    let text = read_bounded(&path, MAX_MANIFEST_BYTES, "a manifest.json")?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| BackupError::Truncated {
        path: path.clone(),
        reason: format!("manifest.json does not parse: {e}"),
    })?;
    manifest
        .created_at
        .map(|at| {
            at.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|e| BackupError::Unrecognized {
                    path: path.clone(),
                    reason: format!("manifest.json created_at {at:?} is not a time: {e}"),
                })
        })
        .transpose()
}

/// The `files` of a manifest.json's text.
pub fn parse_manifest(text: &str) -> Result<Vec<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        files: Vec<String>,
    }
    serde_json::from_str::<Manifest>(text).map(|m| m.files)
}

/// The CREATE TABLE (and following ALTER TABLE) statements of a CQL schema file, by table.
fn parse_schema_file(
    path: &Path,
) -> Result<BTreeMap<(String, String), TableSchemaCql>, BackupError> {
    let text = read_bounded(path, MAX_SCHEMA_BYTES, "a schema.cql")?;
    Ok(parse_schema(&text, path))
}

/// The CREATE TABLE (and following ALTER TABLE) statements of CQL text read from `source`.
pub fn parse_schema(text: &str, source: &Path) -> BTreeMap<(String, String), TableSchemaCql> {
    let mut tables: BTreeMap<(String, String), TableSchemaCql> = BTreeMap::new();
    for statement in split_statements(text) {
        let words: Vec<&str> = statement.split_whitespace().take(6).collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
        let (is_create, name) = match upper.as_slice() {
            ["CREATE", "TABLE", "IF", "NOT", "EXISTS", ..] => (true, words.get(5)),
            ["CREATE", "TABLE", ..] => (true, words.get(2)),
            ["ALTER", "TABLE", ..] => (false, words.get(2)),
            _ => continue,
        };
        let Some(key) = name.and_then(|n| qualified_name(n)) else {
            continue;
        };
        if is_create {
            tables.insert(
                key,
                TableSchemaCql {
                    create: statement,
                    alters: Vec::new(),
                    source: source.to_owned(),
                },
            );
        } else if let Some(table) = tables.get_mut(&key) {
            table.alters.push(statement);
        }
    }
    tables
}

/// Opens a file of a backup for reading: only a regular file, never through a symbolic
/// link (the last component is opened with `O_NOFOLLOW`, and the walk refused links above
/// it), never blocking on a FIFO swapped in meanwhile.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// The text of the backup's file `path`, refused (naming the file) when it is a link or
/// not a regular file, or longer than `limit` bytes. `what` names the file's kind.
fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<String, BackupError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(symlink_refused(path)),
        Ok(m) if !m.is_file() => {
            return Err(BackupError::Unrecognized {
                path: path.to_owned(),
                reason: "it is not a regular file".to_owned(),
            });
        }
        Ok(_) => {}
        Err(source) => {
            return Err(BackupError::Read {
                path: path.to_owned(),
                source,
            });
        }
    }
    let read_error = |source| BackupError::Read {
        path: path.to_owned(),
        source,
    };
    let file = open_regular(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(BackupError::Unrecognized {
            path: path.to_owned(),
            reason: format!(
                "it is longer than {} MiB, more than {what} can honestly be",
                limit.div_ceil(1 << 20)
            ),
        });
    }
    String::from_utf8(bytes).map_err(|e| BackupError::Unrecognized {
        path: path.to_owned(),
        reason: format!("it is not UTF-8 text ({e})"),
    })
}

/// Whether `path` exists, without following it: a symbolic link is refused.
fn exists_unfollowed(path: &Path) -> Result<bool, BackupError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(symlink_refused(path)),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(BackupError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// What an entry of a snapshot is, not following links (a link is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File(u64),
    Dir,
    Other,
}

fn kind_of(path: &Path) -> Result<Kind, BackupError> {
    let metadata = std::fs::symlink_metadata(path).map_err(|source| BackupError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        Err(symlink_refused(path))
    } else if file_type.is_file() {
        Ok(Kind::File(metadata.len()))
    } else if file_type.is_dir() {
        Ok(Kind::Dir)
    } else {
        Ok(Kind::Other)
    }
}

fn symlink_refused(path: &Path) -> BackupError {
    BackupError::Unrecognized {
        path: path.to_owned(),
        reason: "it is a symbolic link; a snapshot backup must hold its own files, so links \
                 are refused rather than followed"
            .to_owned(),
    }
}

/// One path component naming an entry of a directory: not empty, no `/`, not `.` or `..`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// `ks.table` (either part possibly double-quoted, the name possibly glued to a `(`) as
/// unquoted names.
fn qualified_name(word: &str) -> Option<(String, String)> {
    let word = word.split('(').next()?;
    let (keyspace, table) = split_qualified(word)?;
    Some((unquote(keyspace), unquote(table)))
}

fn split_qualified(word: &str) -> Option<(&str, &str)> {
    let mut in_quotes = false;
    for (i, c) in word.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => return Some((&word[..i], &word[i + 1..])),
            _ => {}
        }
    }
    None
}

fn unquote(ident: &str) -> String {
    match ident.strip_prefix('"').and_then(|i| i.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => ident.to_ascii_lowercase(),
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Rewrites a CREATE/ALTER TABLE statement to name `keyspace.table`, without `ID = …`.
fn retarget(statement: &str, keyspace: &str, table: &str) -> String {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let name_index = if words.len() > 5
        && words[2].eq_ignore_ascii_case("IF")
        && words[3].eq_ignore_ascii_case("NOT")
    {
        5
    } else {
        2
    };
    // Rebuild from the original text so the body keeps its layout.
    let Some(start) = nth_word_start(statement, name_index) else {
        return statement.to_owned();
    };
    let rest = &statement[start..];
    let name_len = rest
        .find(|c: char| c.is_whitespace() || c == '(')
        .unwrap_or(rest.len());
    let mut out = String::with_capacity(statement.len());
    out.push_str(&statement[..start]);
    out.push_str(&format!("{}.{}", quote(keyspace), quote(table)));
    out.push_str(&remove_table_id(&rest[name_len..]));
    out
}

fn nth_word_start(text: &str, n: usize) -> Option<usize> {
    let mut count = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_word = false;
        } else if !in_word {
            if count == n {
                return Some(i);
            }
            count += 1;
            in_word = true;
        }
    }
    None
}

/// Drops the `ID = <uuid>` table option: `WITH ID = x AND a = b` → `WITH a = b`,
/// `WITH ID = x` → nothing.
fn remove_table_id(body: &str) -> String {
    let upper = body.to_ascii_uppercase();
    let Some(with) = upper.find("WITH ID") else {
        return body.to_owned();
    };
    let after_id = with + "WITH ID".len();
    let rest = &body[after_id..];
    let value_start = rest.find('=').map(|i| i + 1).unwrap_or(0);
    let value = rest[value_start..].trim_start();
    let value_offset = after_id + value_start + (rest[value_start..].len() - value.len());
    let value_len = value
        .find(|c: char| c.is_whitespace() || c == ';')
        .unwrap_or(value.len());
    let after_value = &body[value_offset + value_len..];
    let trimmed = after_value.trim_start();
    if trimmed.is_char_boundary(3) && trimmed[..3].eq_ignore_ascii_case("AND") {
        format!("{}WITH{}", &body[..with], &trimmed[3..])
    } else {
        format!("{}{}", body[..with].trim_end(), after_value)
    }
}

/// Splits CQL text into statements at `;` outside quotes, `$$` blocks and comments.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                current.push(c);
                while let Some(d) = chars.next() {
                    current.push(d);
                    if d == c {
                        if chars.peek() == Some(&c) {
                            current.push(chars.next().expect("peeked"));
                        } else {
                            break;
                        }
                    }
                }
            }
            '$' if chars.peek() == Some(&'$') => {
                current.push_str("$$");
                chars.next();
                let mut last = ' ';
                for d in chars.by_ref() {
                    current.push(d);
                    if last == '$' && d == '$' {
                        break;
                    }
                    last = d;
                }
            }
            '-' if chars.peek() == Some(&'-') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for d in chars.by_ref() {
                    if last == '*' && d == '/' {
                        break;
                    }
                    last = d;
                }
            }
            ';' => {
                let statement = current.trim();
                if !statement.is_empty() {
                    statements.push(statement.to_owned());
                }
                current.clear();
            }
            _ => current.push(c),
        }
    }
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_owned());
    }
    statements
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for d in chars.by_ref() {
        if d == '\n' {
            break;
        }
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let error = |source| BackupError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(error)? {
        paths.push(entry.map_err(error)?.path());
    }
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `accounts-0a1b…` → `accounts`: Cassandra names a table's directory `TABLE-ID` with a
/// 32-hex-digit id.
fn table_name(dir_name: &str) -> String {
    match dir_name.rsplit_once('-') {
        Some((name, id)) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => dir_name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS bank.accounts (\n    id int,\n    \
        balance int,\n    PRIMARY KEY (id)\n) WITH ID = a80f0e00-e82c-11f1-b92c-3192c99018e7\n    \
        AND comment = 'a; b'\n    AND gc_grace_seconds = 864000;\n";

    fn write(path: &Path, contents: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// One SSTable with a TOC listing Data.db and Statistics.db.
    fn snapshot(dir: &Path, schema: Option<&str>) {
        write(
            &dir.join("nb-1-big-TOC.txt"),
            "Data.db\nStatistics.db\nTOC.txt\n",
        );
        write(&dir.join("nb-1-big-Data.db"), "data");
        write(&dir.join("nb-1-big-Statistics.db"), "stats");
        write(
            &dir.join("manifest.json"),
            r#"{"files": ["nb-1-big-Data.db"], "created_at": "x"}"#,
        );
        if let Some(schema) = schema {
            write(&dir.join("schema.cql"), schema);
        }
    }

    const TABLE_DIR: &str = "bank/accounts-a80f0e00e82c11f1b92c3192c99018e7";

    #[test]
    fn a_single_node_data_directory_is_one_node_named_dot() {
        let root = tempfile::tempdir().unwrap();
        snapshot(
            &root.path().join(TABLE_DIR).join("snapshots/nightly"),
            Some(SCHEMA),
        );
        assert!(looks_like_snapshots(root.path()));
        let backup = inspect(root.path(), None).unwrap();
        assert_eq!(backup.tag, "nightly");
        assert_eq!(backup.nodes.len(), 1);
        assert_eq!(backup.nodes[0].name, ".");
        let table = &backup.nodes[0].tables[0];
        assert_eq!(
            (table.keyspace.as_str(), table.table.as_str()),
            ("bank", "accounts")
        );
        // Data.db, Statistics.db and the TOC itself, as the TOC lists them.
        assert_eq!((table.sstables, table.bytes), (1, 4 + 5 + 30));
    }

    #[test]
    fn node_directories_become_nodes_and_system_keyspaces_are_left_out() {
        let root = tempfile::tempdir().unwrap();
        for node in ["node1", "node2"] {
            let base = root.path().join(node);
            snapshot(&base.join(TABLE_DIR).join("snapshots/t"), Some(SCHEMA));
            snapshot(&base.join("system/local-1234/snapshots/t"), None);
        }
        let backup = inspect(root.path(), None).unwrap();
        let names: Vec<_> = backup.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node1", "node2"]);
        assert!(backup.nodes.iter().all(|n| n.tables.len() == 1));
        assert_eq!(backup.keyspaces().into_iter().collect::<Vec<_>>(), ["bank"]);
    }

    #[test]
    fn several_tags_need_a_choice_and_a_missing_tag_names_the_node() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join("n1").join(TABLE_DIR).join("snapshots");
        snapshot(&snapshots.join("a"), Some(SCHEMA));
        snapshot(&snapshots.join("b"), Some(SCHEMA));
        let error = inspect(root.path(), None).unwrap_err().to_string();
        assert!(error.contains("several snapshot tags (a, b)"), "{error}");
        assert!(error.contains("--snapshot-tag"), "{error}");
        assert_eq!(inspect(root.path(), Some("b")).unwrap().tag, "b");
        let error = inspect(root.path(), Some("c")).unwrap_err().to_string();
        assert!(
            error.contains("node n1 has no snapshot c of bank.accounts"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_component_or_data_file_is_a_truncated_backup() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(TABLE_DIR).join("snapshots/t");
        snapshot(&dir, Some(SCHEMA));
        std::fs::remove_file(dir.join("nb-1-big-Statistics.db")).unwrap();
        let error = inspect(root.path(), None).unwrap_err();
        assert!(matches!(error, BackupError::Truncated { .. }), "{error}");
        assert!(
            error.to_string().contains("nb-1-big-Statistics.db"),
            "{error}"
        );

        snapshot(&dir, Some(SCHEMA));
        std::fs::remove_file(dir.join("nb-1-big-Data.db")).unwrap();
        std::fs::remove_file(dir.join("nb-1-big-TOC.txt")).unwrap();
        let error = inspect(root.path(), None).unwrap_err().to_string();
        assert!(
            error.contains("manifest.json lists \"nb-1-big-Data.db\""),
            "{error}"
        );
    }

    #[test]
    fn a_table_without_any_schema_is_refused() {
        let root = tempfile::tempdir().unwrap();
        snapshot(&root.path().join(TABLE_DIR).join("snapshots/t"), None);
        let error = inspect(root.path(), None).unwrap_err().to_string();
        assert!(error.contains("no schema for bank.accounts"), "{error}");
    }

    #[test]
    fn a_directory_without_snapshots_is_not_a_cassandra_backup() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("bank/accounts/nb-1-big-Data.db"), "x");
        assert!(!looks_like_snapshots(root.path()));
        let error = inspect(root.path(), None).unwrap_err().to_string();
        assert!(error.contains("no KEYSPACE/TABLE/snapshots/TAG"), "{error}");
    }

    #[test]
    fn a_top_level_schema_file_wins_and_keeps_alter_statements() {
        let root = tempfile::tempdir().unwrap();
        snapshot(&root.path().join(TABLE_DIR).join("snapshots/t"), None);
        write(
            &root.path().join("schema.cql"),
            "CREATE KEYSPACE bank WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': '3'};\n\
             CREATE TABLE bank.accounts (id int PRIMARY KEY, old int);\n\
             ALTER TABLE bank.accounts DROP old USING TIMESTAMP 1;\n\
             CREATE INDEX accounts_idx ON bank.accounts (old);\n",
        );
        let backup = inspect(root.path(), None).unwrap();
        let schema = &backup.schemas[&("bank".to_owned(), "accounts".to_owned())];
        assert_eq!(
            schema.statements_for("bank__node1", "accounts"),
            [
                "CREATE TABLE \"bank__node1\".\"accounts\" (id int PRIMARY KEY, old int)",
                "ALTER TABLE \"bank__node1\".\"accounts\" DROP old USING TIMESTAMP 1",
            ]
        );
    }

    #[test]
    fn retargeting_drops_the_table_id_and_keeps_the_options() {
        let schema = parse_schema_file_text(SCHEMA);
        let statements = schema.statements_for("copy", "accounts");
        assert_eq!(statements.len(), 1);
        let create = &statements[0];
        assert!(
            create.starts_with("CREATE TABLE IF NOT EXISTS \"copy\".\"accounts\" (\n"),
            "{create}"
        );
        assert!(!create.contains("ID ="), "{create}");
        assert!(create.contains(") WITH comment = 'a; b'"), "{create}");
        assert!(create.contains("AND gc_grace_seconds = 864000"), "{create}");

        let only_id = parse_schema_file_text(
            "CREATE TABLE \"Bank\".\"T\" (id int PRIMARY KEY) WITH ID = 1234;",
        );
        assert_eq!(
            only_id.statements_for("b", "t"),
            ["CREATE TABLE \"b\".\"t\" (id int PRIMARY KEY)"]
        );
    }

    fn parse_schema_file_text(text: &str) -> TableSchemaCql {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.cql");
        std::fs::write(&path, text).unwrap();
        parse_schema_file(&path)
            .unwrap()
            .into_values()
            .next()
            .expect("one table")
    }

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let statements = split_statements(
            "-- a comment; still a comment\nINSERT INTO t (a) VALUES ('x;y');\n\
             /* block; */ SELECT \"q;\" FROM t; // trailing; comment\n",
        );
        assert_eq!(
            statements,
            ["INSERT INTO t (a) VALUES ('x;y')", "SELECT \"q;\" FROM t"]
        );
    }

    /// A file outside the backup, with a first line a hostile backup would like printed.
    fn secret(outside: &Path) -> PathBuf {
        let secret = outside.join("secret");
        write(&secret, "root:TOP-SECRET-LINE\nsecond\n");
        secret
    }

    fn assert_refused(error: &BackupError, file: &Path, reason: &str) {
        let text = error.to_string();
        assert!(
            matches!(error, BackupError::Unrecognized { path, .. } if path == file),
            "{error:?}"
        );
        assert!(text.contains(reason), "{text}");
        assert!(!text.contains("TOP-SECRET"), "the secret leaked: {text}");
    }

    #[test]
    fn a_symlinked_toc_manifest_or_schema_is_refused_naming_it_and_never_read() {
        let outside = tempfile::tempdir().unwrap();
        let secret = secret(outside.path());
        for name in ["nb-1-big-TOC.txt", "manifest.json", "schema.cql"] {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join(TABLE_DIR).join("snapshots/t");
            snapshot(&dir, Some(SCHEMA));
            let link = dir.join(name);
            std::fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(&secret, &link).unwrap();
            let error = inspect(root.path(), None).unwrap_err();
            assert_refused(&error, &link, "symbolic link");
        }
        // The top-level schema.cql too, even pointing at a file of the backup.
        let root = tempfile::tempdir().unwrap();
        snapshot(
            &root.path().join(TABLE_DIR).join("snapshots/t"),
            Some(SCHEMA),
        );
        let link = root.path().join("schema.cql");
        std::os::unix::fs::symlink(
            root.path().join(TABLE_DIR).join("snapshots/t/schema.cql"),
            &link,
        )
        .unwrap();
        assert_refused(
            &inspect(root.path(), None).unwrap_err(),
            &link,
            "symbolic link",
        );
    }

    #[test]
    fn symlinked_components_tags_and_directories_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let secret = secret(outside.path());
        let elsewhere = outside.path().join("elsewhere");
        snapshot(&elsewhere, Some(SCHEMA));

        // A component.
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(TABLE_DIR).join("snapshots/t");
        snapshot(&dir, Some(SCHEMA));
        let link = dir.join("nb-1-big-Statistics.db");
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert_refused(
            &inspect(root.path(), None).unwrap_err(),
            &link,
            "symbolic link",
        );

        // The tag directory itself.
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join(TABLE_DIR).join("snapshots");
        std::fs::create_dir_all(&snapshots).unwrap();
        let link = snapshots.join("t");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert_refused(
            &inspect(root.path(), None).unwrap_err(),
            &link,
            "symbolic link",
        );
        assert_refused(
            &inspect(root.path(), Some("t")).unwrap_err(),
            &link,
            "symbolic link",
        );

        // A keyspace directory: refused, not silently skipped.
        let root = tempfile::tempdir().unwrap();
        snapshot(
            &root.path().join(TABLE_DIR).join("snapshots/t"),
            Some(SCHEMA),
        );
        let real_keyspace = outside.path().join("ledger");
        snapshot(&real_keyspace.join("entries/snapshots/t"), None);
        let link = root.path().join("ledger");
        std::os::unix::fs::symlink(&real_keyspace, &link).unwrap();
        assert_refused(
            &inspect(root.path(), None).unwrap_err(),
            &link,
            "symbolic link",
        );
    }

    #[test]
    fn a_toc_naming_a_path_instead_of_a_component_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        secret(outside.path());
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(TABLE_DIR).join("snapshots/t");
        snapshot(&dir, Some(SCHEMA));
        // nb-1-big-x/../../…: resolves only through a directory the backup made.
        std::fs::create_dir(dir.join("nb-1-big-x")).unwrap();
        let escape = format!(
            "x/../../../../../../..{}",
            outside.path().join("secret").display()
        );
        let toc = dir.join("nb-1-big-TOC.txt");
        write(&toc, &format!("Data.db\n{escape}\nTOC.txt\n"));
        let error = inspect(root.path(), None).unwrap_err();
        assert_refused(&error, &toc, "not a component's name");
        write(&toc, "Data.db\n..\n");
        assert_refused(
            &inspect(root.path(), None).unwrap_err(),
            &toc,
            "not a component's name",
        );
    }

    #[test]
    fn a_tag_that_is_a_path_is_refused() {
        let root = tempfile::tempdir().unwrap();
        snapshot(
            &root.path().join(TABLE_DIR).join("snapshots/t"),
            Some(SCHEMA),
        );
        for tag in ["..", "t/../t", "", "."] {
            let error = inspect(root.path(), Some(tag)).unwrap_err().to_string();
            assert!(
                error.contains("not a plain directory name"),
                "{tag}: {error}"
            );
        }
    }

    #[test]
    fn oversized_schema_manifest_and_toc_files_are_refused_unread() {
        for (name, limit) in [
            ("schema.cql", MAX_SCHEMA_BYTES),
            ("manifest.json", MAX_MANIFEST_BYTES),
            ("nb-1-big-TOC.txt", MAX_TOC_BYTES),
        ] {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join(TABLE_DIR).join("snapshots/t");
            snapshot(&dir, Some(SCHEMA));
            let file = dir.join(name);
            // Sparse: the size without the disk.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(limit + 1)
                .unwrap();
            let error = inspect(root.path(), None).unwrap_err();
            assert_refused(&error, &file, "longer than");
        }
    }

    #[test]
    fn a_fifo_in_a_snapshot_is_refused_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(TABLE_DIR).join("snapshots/t");
        snapshot(&dir, Some(SCHEMA));
        let fifo = dir.join("nb-2-big-Data.db");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert_refused(
            &inspect(root.path(), None).unwrap_err(),
            &fifo,
            "neither a regular file",
        );
        assert!(open_regular(&fifo).is_err());
    }

    #[test]
    fn open_regular_refuses_links_and_opens_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        write(&file, "x");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(open_regular(&file).is_ok());
        assert!(open_regular(&link).is_err());
        assert!(open_regular(dir.path()).is_err());
    }

    #[test]
    fn table_directories_lose_only_a_real_id_suffix() {
        assert_eq!(
            table_name("accounts-a80f0e00e82c11f1b92c3192c99018e7"),
            "accounts"
        );
        assert_eq!(table_name("my-table"), "my-table");
        assert_eq!(table_name("state"), "state");
    }
}
