//! The schema.cql parser (`DESCRIBE SCHEMA` output, or the `schema.cql` in every snapshot)
//! and the rewrite of each table's statements under another keyspace, as a per-node
//! restore does: any text, never a panic, and a rewritten CREATE TABLE names its new table.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scalardb_verify::backup::cassandra::{parse_schema, split_statements};

mod common;

#[global_allocator]
static BUDGET: common::Budget = common::Budget::new(64 << 20);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for statement in split_statements(text) {
        assert!(!statement.is_empty() && statement.trim() == statement);
    }
    for ((keyspace, table), schema) in parse_schema(text, Path::new("schema.cql")) {
        let statements = schema.statements_for(&keyspace, &table);
        assert_eq!(statements.len(), 1 + schema.alters.len());
        let copy = schema.statements_for("copy", "t");
        assert!(
            copy[0].contains("\"copy\".\"t\""),
            "the rewritten CREATE TABLE does not name \"copy\".\"t\": {:?}",
            copy[0]
        );
    }
});
