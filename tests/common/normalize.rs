//! A report with what legitimately differs between runs and backends removed, as the
//! fixtures' `expected.json` hold it: one rule for every test binary that compares reports.

use serde_json::Value;

/// The report with what legitimately differs between runs and backends removed.
pub fn normalized(mut report: Value) -> Value {
    report["target"] = Value::String("<target>".into());
    // The storage's name, kind and target differ between backends; that every part of the
    // report names its storage does not.
    if let Some(storages) = report["storages"].as_array_mut() {
        for storage in storages {
            for field in ["name", "kind", "target"] {
                storage[field] = Value::String(format!("<{field}>"));
            }
        }
    }
    fn storage_names(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if (key == "storage" || key == "coordinator_storage") && value.is_string() {
                        *value = Value::String("<name>".into());
                    } else {
                        storage_names(value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(storage_names),
            _ => {}
        }
    }
    storage_names(&mut report);
    report
}
