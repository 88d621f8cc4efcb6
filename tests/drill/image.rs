//! The container image (`Dockerfile`): built with the Docker engine the test set-up starts,
//! from the locally built Debian image (no registry here), then a real pg_dump and a SQLite
//! backup drilled inside it with `--runtime local`, the report read back.
//!
//! The Dockerfile's release build needs a Rust image from a registry; here the build stage
//! takes the test binary instead (`PREBUILT`, stripped), and the Java runtime (`JAVA`) is
//! left out to keep the test small: the runtime stage, its packages, its account and its
//! entry point are the image's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const BASE: &str = "scalardb-verify-test/postgres:15";
const TAG: &str = "scalardb-verify-test/tool:test";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run docker ({e}): this test builds the image with it; run scripts/install-docker")
    })
}

fn build_image() {
    let inspect = docker(&["image", "inspect", "--format", "{{.Id}}", BASE]);
    assert!(
        inspect.status.success(),
        "no base image {BASE}: build it with scripts/build-test-images ({})",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let context = tempfile::tempdir().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("Dockerfile"), context.path().join("Dockerfile")).unwrap();
    let status = Command::new("strip")
        .arg("-o")
        .arg(context.path().join("scalardb-verify"))
        .arg(BIN)
        .status()
        .expect("run strip (binutils)");
    assert!(status.success());
    let output = Command::new("docker")
        .args(["build", "--network", "host", "--quiet", "-t", TAG])
        .args(["--build-arg", &format!("BASE={BASE}")])
        .args(["--build-arg", &format!("BUILDER={BASE}")])
        .args([
            "--build-arg",
            "PREBUILT=scalardb-verify",
            "--build-arg",
            "JAVA=",
        ])
        .arg(context.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "docker build failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `drill /backups/NAME` in a container of the image, `dir` mounted read only.
fn drill_in_image(dir: &Path, name: &str) -> Run {
    let mount = format!("{}:/backups:ro", dir.display());
    let output = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "systempaths=unconfined",
        "-v",
        &mount,
        TAG,
        "drill",
        &format!("/backups/{name}"),
        "--runtime",
        "local",
        "--quiet",
        "--format",
        "json",
    ]);
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_builds_and_drills_a_pg_dump_and_a_sqlite_file_inside() {
    build_image();
    let config = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Entrypoint}}",
        TAG,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&config.stdout).trim(),
        r#"10001:10001 ["/usr/local/bin/scalardb-verify"]"#
    );

    let server = postgres_with("torn").await;
    let dir = tempfile::tempdir().unwrap();
    // The container's account reads the mounted backups.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    pg_dump(&server, &["-Fc"], &dir.path().join("nightly.dump"));
    std::fs::copy(
        fixture("recoverable").join("bank.sqlite"),
        dir.path().join("app.sqlite"),
    )
    .unwrap();
    for path in ["nightly.dump", "app.sqlite"] {
        std::fs::set_permissions(
            dir.path().join(path),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }

    let run = drill_in_image(dir.path(), "nightly.dump");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["verdict"], "inconsistent");
    // One pg_dump run is one snapshot: the drill says so beside the scan's findings.
    let mut findings = normalized(report.clone())["findings"].clone();
    let findings = findings.as_array_mut().unwrap();
    let before = findings.len();
    findings.retain(|f| f["code"] != "backup-single-snapshot");
    assert_eq!(before, findings.len() + 1, "{findings:?}");
    assert_eq!(
        serde_json::Value::Array(findings.clone()),
        expected("torn")["findings"]
    );
    assert_eq!(report["drill"]["runtime"], "local");

    let run = drill_in_image(dir.path(), "app.sqlite");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["verdict"], "recoverable");

    // 450 MB not to leave behind (a failed run's image is replaced by the next build).
    let removed = docker(&["image", "rm", TAG]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
}
