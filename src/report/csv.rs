//! CSV: one row per finding, with a header, for spreadsheets and `grep`.

use std::io::{self, Write};

use super::Report;

const HEADER: [&str; 11] = [
    "code",
    "severity",
    "check",
    "table",
    "key",
    "tx_id",
    "tx_state",
    "coordinator_state",
    "count",
    "message",
    // Last, so the columns before it keep their places (schema 1's order).
    "storage",
];

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(HEADER)?;
    for finding in &report.findings {
        writer.write_record([
            finding.code.as_str(),
            finding.severity.as_str(),
            finding.check.as_str(),
            finding.table.as_deref().unwrap_or(""),
            &finding
                .key
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            finding.tx_id.as_deref().unwrap_or(""),
            finding.tx_state.as_deref().unwrap_or(""),
            finding.coordinator_state.as_deref().unwrap_or(""),
            &finding.count.map(|c| c.to_string()).unwrap_or_default(),
            &finding.message,
            finding.storage.as_deref().unwrap_or(""),
        ])?;
    }
    writer.flush()
}
