//! The JSON Schema of the JSON report, generated from the report's own types, so it can't
//! drift from what is serialized. `schema/report.schema.json` is this, checked in; a unit
//! test fails when the two differ. Regenerate with:
//!
//! ```sh
//! cargo run -- schema > schema/report.schema.json
//! ```

use super::{Report, SCHEMA_VERSION};

/// The command that regenerates the checked-in schema.
pub const REGENERATE: &str = "cargo run -- schema > schema/report.schema.json";

/// The report's schema, as pretty JSON with a final newline (the checked-in file's bytes).
pub fn report_schema() -> String {
    let mut schema = schemars::schema_for!(Report);
    schema.insert(
        "title".to_owned(),
        format!("scalardb-verify report, schema_version {SCHEMA_VERSION}").into(),
    );
    schema.insert(
        "description".to_owned(),
        "The JSON report of `scalardb-verify scan` and `drill` (--format json). Fields may be \
         added without a new schema_version; one that changes meaning or disappears bumps it."
            .into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// `schema_version` is exactly this build's version.
pub(super) fn schema_version(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "integer",
        "const": SCHEMA_VERSION,
        "description": "Bumped whenever a field changes meaning or disappears."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_schema_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.schema.json");
        let checked_in = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {path}: {e}; generate it with: {REGENERATE}"));
        let generated = report_schema();
        assert!(
            checked_in == generated,
            "{path} differs from the schema the report types generate; regenerate it with: \
             {REGENERATE}\n--- generated\n{generated}"
        );
    }

    #[test]
    fn the_schema_pins_the_schema_version() {
        let schema: serde_json::Value = serde_json::from_str(&report_schema()).unwrap();
        assert_eq!(
            schema["properties"]["schema_version"]["const"],
            SCHEMA_VERSION
        );
        let required = schema["required"].as_array().unwrap();
        assert!(required.contains(&"verdict".into()), "{required:?}");
    }
}
