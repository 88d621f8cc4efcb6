//! `ScalarDbProperties::parse`: any text is settings or a named error, never a panic. A
//! `jdbc:sqlite:` URL makes the parser check that file's header, so a path the fuzzer
//! writes may be opened and read (never written).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scalardb_verify::config::ScalarDbProperties;

mod common;

#[global_allocator]
static BUDGET: common::Budget = common::Budget::new(64 << 20);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(properties) = ScalarDbProperties::parse(Path::new("database.properties"), text) {
        let _ = properties.target.display();
    }
});
