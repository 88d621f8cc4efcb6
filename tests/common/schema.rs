//! Every JSON report a test parses is validated against the checked-in JSON Schema
//! (`schema/report.schema.json`, which a unit test keeps equal to the generated one), with
//! the `jsonschema` crate.

use std::sync::OnceLock;

use serde_json::Value;

/// Panics, listing each violation and where it is, unless `report` matches the schema.
pub fn validate_report(report: &Value) {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.schema.json");
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read the schema {path}: {e}"));
        let schema: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{path} is not a valid JSON Schema: {e}"))
    });
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the report does not match schema/report.schema.json:\n{}\n--- the report\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(report).unwrap_or_default()
    );
}
