//! Which ScalarDB namespaces a backup holds, read without restoring or executing anything
//! of it: a plain SQL dump's `CREATE SCHEMA`/`CREATE DATABASE`/`USE`/`CREATE TABLE`
//! statements, read line by line through a bounded window (a longer line is data, consumed
//! in pieces and never held whole), and a Cassandra backup's inspected keyspaces. The text
//! is hostile: only lines that start with one of those statements count, and at worst a
//! line of data that looks like one names a namespace the backup does not hold, which
//! makes a drill refuse the backup set; it never makes a verdict pass (the scan decides
//! what ScalarDB reads from what the restored instance holds).
//!
//! Must not open a connection, start a tool, or read more than a line window at a time.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::{BackupError, BackupFormat};

/// Longer lines are data, never a statement this reader looks for.
const MAX_LINE: usize = 4096;
/// The most namespaces one backup may name: far more than any deployment has.
const MAX_NAMESPACES: usize = 10_000;

/// Schemas and databases every server has, which are no ScalarDB namespace.
const SYSTEM: &[&str] = &[
    "pg_catalog",
    "information_schema",
    "public",
    "mysql",
    "performance_schema",
    "sys",
];

/// The namespaces `path` holds, if its format tells them before a restore: plain SQL dumps
/// (gzip too) and Cassandra snapshots (`keyspaces`, as inspected). `None` for pg_dump
/// archives (-Fc, -Fd, -Ft) and SQLite files, whose catalogs are binary.
pub fn namespaces_of(
    path: &Path,
    format: BackupFormat,
    keyspaces: Option<BTreeSet<&str>>,
) -> Result<Option<BTreeSet<String>>, BackupError> {
    let dialect = match format {
        BackupFormat::PgPlain { gzip } => (Dialect::Postgres, gzip),
        BackupFormat::MySqlDump { gzip } => (Dialect::MySql, gzip),
        BackupFormat::CassandraSnapshots => {
            return Ok(keyspaces.map(|k| k.into_iter().map(str::to_owned).collect()));
        }
        BackupFormat::PgCustom
        | BackupFormat::PgDirectory
        | BackupFormat::PgTar
        | BackupFormat::Sqlite => return Ok(None),
    };
    let read_error = |source| BackupError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let reader: Box<dyn Read> = if dialect.1 {
        Box::new(MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(file)
    };
    sql_namespaces(reader, dialect.0)
        .map(Some)
        .map_err(read_error)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Postgres,
    MySql,
}

/// The namespaces a plain dump's statements create or enter.
fn sql_namespaces(reader: impl Read, dialect: Dialect) -> std::io::Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    // pg_dump's COPY data runs until a line `\.`: none of it is a statement.
    let mut in_copy = false;
    for_each_short_line(reader, MAX_LINE, |text| {
        if in_copy {
            in_copy = text != "\\.";
            return;
        }
        if dialect == Dialect::Postgres
            && text.starts_with("COPY ")
            && text.ends_with("FROM stdin;")
        {
            in_copy = true;
        }
        if let Some(namespace) = statement_namespace(text, dialect) {
            if found.len() < MAX_NAMESPACES && !SYSTEM.contains(&namespace.as_str()) {
                found.insert(namespace);
            }
        }
    })?;
    Ok(found)
}

/// Calls `visit` with every UTF-8 line of `reader` shorter than `max_line` bytes, without
/// its line ending. A longer line is consumed in pieces and never held whole: in a dump
/// it is data, never a statement of the dump tool's.
pub fn for_each_short_line(
    reader: impl Read,
    max_line: usize,
    mut visit: impl FnMut(&str),
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::with_capacity(max_line);
    loop {
        line.clear();
        let n = (&mut reader)
            .take(u64::try_from(max_line).unwrap_or(u64::MAX))
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n == max_line {
            skip_line(&mut reader)?;
            continue;
        }
        if let Ok(text) = std::str::from_utf8(&line) {
            visit(text.trim_end_matches(['\n', '\r']));
        }
    }
}

fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        if let Some(at) = buffer.iter().position(|&b| b == b'\n') {
            reader.consume(at + 1);
            return Ok(());
        }
        let n = buffer.len();
        reader.consume(n);
    }
}

/// The namespace a statement line creates or enters, if it is one of those statements.
fn statement_namespace(line: &str, dialect: Dialect) -> Option<String> {
    let (rest, qualified_only) = match dialect {
        Dialect::Postgres => {
            if let Some(rest) = line.strip_prefix("CREATE SCHEMA ") {
                (rest, false)
            } else {
                (line.strip_prefix("CREATE TABLE ")?, true)
            }
        }
        Dialect::MySql => {
            if let Some(rest) = line
                .strip_prefix("CREATE DATABASE ")
                .or_else(|| line.strip_prefix("USE "))
            {
                (rest, false)
            } else {
                (line.strip_prefix("CREATE TABLE ")?, true)
            }
        }
    };
    let rest = skip_noise(rest);
    let (name, after) = identifier(rest, dialect)?;
    if qualified_only {
        // `CREATE TABLE ns.t`: an unqualified table is in the namespace `USE` entered.
        after.strip_prefix('.')?;
    }
    Some(name)
}

/// Skips `IF NOT EXISTS` and MySQL's versioned comments (`/*!32312 IF NOT EXISTS*/`).
fn skip_noise(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("IF NOT EXISTS") {
            text = rest;
        } else if text.starts_with("/*") {
            match text.find("*/") {
                Some(end) => text = &text[end + 2..],
                None => return "",
            }
        } else {
            return text;
        }
    }
}

/// A leading identifier: `"quoted"` (PostgreSQL), `` `quoted` `` (MySQL), or plain
/// (folded to lower case by PostgreSQL), with what follows it.
fn identifier(text: &str, dialect: Dialect) -> Option<(String, &str)> {
    let quote = match dialect {
        Dialect::Postgres => '"',
        Dialect::MySql => '`',
    };
    if let Some(inner) = text.strip_prefix(quote) {
        let mut name = String::new();
        let mut chars = inner.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                if inner[i + 1..].starts_with(quote) {
                    name.push(quote);
                    chars.next();
                    continue;
                }
                return (!name.is_empty() && !name.chars().any(char::is_control))
                    .then(|| (name, &inner[i + 1..]));
            }
            name.push(c);
        }
        return None;
    }
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(text.len());
    if end == 0 {
        return None;
    }
    let name = &text[..end];
    let name = match dialect {
        Dialect::Postgres => name.to_ascii_lowercase(),
        Dialect::MySql => name.to_owned(),
    };
    Some((name, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str, dialect: Dialect) -> Vec<String> {
        sql_namespaces(std::io::Cursor::new(text.as_bytes().to_vec()), dialect)
            .unwrap()
            .into_iter()
            .collect()
    }

    #[test]
    fn pg_dump_schemas_and_qualified_tables_name_namespaces() {
        let dump = "-- PostgreSQL database dump\n\
                    CREATE SCHEMA bank;\n\
                    CREATE SCHEMA \"Odd\"\"One\";\n\
                    CREATE TABLE coordinator.state (\n\
                    CREATE TABLE \"ledger\".\"entries\" (\n\
                    CREATE TABLE unqualified (\n\
                    CREATE SCHEMA public;\n";
        assert_eq!(
            of(dump, Dialect::Postgres),
            ["Odd\"One", "bank", "coordinator", "ledger"]
        );
    }

    #[test]
    fn copy_data_and_indented_text_are_no_statements() {
        let dump = "COPY bank.accounts (id, memo) FROM stdin;\n\
                    CREATE TABLE evil.t (\n\
                    \\.\n\
                    \x20 CREATE SCHEMA indented;\n\
                    SELECT 'CREATE SCHEMA quoted';\n\
                    CREATE SCHEMA after;\n";
        assert_eq!(of(dump, Dialect::Postgres), ["after"]);
    }

    #[test]
    fn mysqldump_databases_use_and_qualified_tables_name_namespaces() {
        let dump = "-- MariaDB dump 10.19\n\
                    CREATE DATABASE /*!32312 IF NOT EXISTS*/ `bank` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n\
                    USE `ledger`;\n\
                    CREATE TABLE `accounts` (\n\
                    CREATE TABLE `coordinator`.`state` (\n\
                    CREATE DATABASE `we``ird`;\n\
                    USE `mysql`;\n\
                    INSERT INTO t VALUES ('\nCREATE DATABASE `fake`;\n";
        // The last line is data split over lines: at worst it names a namespace, which
        // refuses the set, never passes it.
        assert_eq!(
            of(dump, Dialect::MySql),
            ["bank", "coordinator", "fake", "ledger", "we`ird"]
        );
    }

    #[test]
    fn long_lines_are_skipped_whole_and_names_are_bounded() {
        let mut dump = "x".repeat(10 * MAX_LINE);
        dump.push_str("CREATE SCHEMA hidden;\nCREATE SCHEMA seen;\n");
        assert_eq!(of(&dump, Dialect::Postgres), ["seen"]);
        let many: String = (0..MAX_NAMESPACES + 50)
            .map(|i| format!("CREATE SCHEMA s{i};\n"))
            .collect();
        assert_eq!(of(&many, Dialect::Postgres).len(), MAX_NAMESPACES);
        assert!(of("CREATE SCHEMA \"unterminated;\n", Dialect::Postgres).is_empty());
        assert!(of("CREATE SCHEMA \"a\nb\";\n", Dialect::Postgres).is_empty());
    }
}
