//! Metrics files read back as Prometheus reads them: checked by `promtool check metrics`
//! (the exposition format and Prometheus' naming lints) and parsed by `prometheus-parse`.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use prometheus_parse::{Sample, Scrape, Value};

/// Checks `path` with promtool, then parses it. Fails, never skips, without promtool.
pub fn read_metrics(path: &Path) -> Scrape {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read the metrics file {}: {e}", path.display()));
    promtool_check(&text);
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("prometheus-parse rejects {}: {e}\n{text}", path.display()))
}

/// `promtool check metrics` on `text`: the format, and lints such as units and `_total`.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): this test checks the metrics file with it; \
                 install it with scripts/install-test-deps (Debian package prometheus)"
            )
        });
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    assert!(
        output.status.success(),
        "promtool check metrics rejects the file:\n{}{}\n--- the file\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The value of the one gauge sample `name` whose labels include `labels`.
pub fn gauge(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected exactly one sample {name} {labels:?}, found {matching:?}"
    );
    match matching[0].value {
        Value::Gauge(value) => value,
        ref other => panic!("{name} {labels:?} is not a gauge: {other:?}"),
    }
}

/// Whether any sample is named `name`.
pub fn has_metric(scrape: &Scrape, name: &str) -> bool {
    scrape.samples.iter().any(|s| s.metric == name)
}
