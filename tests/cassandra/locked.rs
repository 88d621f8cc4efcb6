//! The disposable node answers only the tool (issue 10): CQL needs the node's own role
//! with its fresh random password (the default `cassandra`/`cassandra` role is gone, and
//! nobody gets in without credentials), JMX needs its own password too, and a role,
//! keyspace or session someone else left makes the node untrusted.

use std::process::Command;

use scalardb_verify::store::{CassandraCredentials, CassandraWriter};

use crate::support::*;

/// nodetool `status` against `node`'s JMX port, with `extra` arguments (credentials).
fn nodetool_status(
    node: &scalardb_verify::runtime::cassandra::CassandraInstance,
    extra: &[&str],
) -> std::process::Output {
    let java = std::fs::read_link(format!("/proc/{}/exe", node.pid().unwrap())).unwrap();
    let classpath = format!("{}/*", node.home().join("lib").display());
    Command::new(java)
        .args(["-Xmx128m", "-cp", &classpath])
        .args(scalardb_verify::runtime::cassandra::JVM17_OPTIONS)
        .arg(format!(
            "-Dcassandra.storagedir={}",
            node.dir().join("data").display()
        ))
        .args([
            "org.apache.cassandra.tools.NodeTool",
            "-h",
            "127.0.0.1",
            "-p",
        ])
        .arg(node.jmx_port().to_string())
        .args(extra)
        .arg("status")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_answers_only_its_own_role_and_jmx_password() {
    let _slot = heavy_test_slot().await;
    let node = start_node().await;
    let contact = [node.contact_point()];
    let own = node
        .credentials()
        .expect("a drill's node is locked")
        .clone();
    assert_eq!(own.password.len(), 32, "a fresh random password");
    let window = node.default_role_window().expect("measured");
    eprintln!("the default role worked for {window:.1?} after the node listened");

    // Another local user, with the default credentials or none: refused.
    let default = CassandraCredentials {
        username: "cassandra".to_owned(),
        password: "cassandra".to_owned(),
    };
    for (who, credentials) in [
        ("the default role", Some(&default)),
        ("no credentials", None),
    ] {
        let refused = CassandraWriter::connect_as(&contact, credentials).await;
        let error = match refused {
            Ok(_) => panic!("{who}: connected"),
            Err(e) => scalardb_verify::scan::error_chain(&e),
        };
        assert!(
            error.to_lowercase().contains("authenticat"),
            "{who}: {error}"
        );
    }
    let wrong = CassandraCredentials {
        password: "guess".to_owned(),
        ..own.clone()
    };
    assert!(
        CassandraWriter::connect_as(&contact, Some(&wrong))
            .await
            .is_err()
    );

    // The tool's own role gets in, and sees only itself.
    let writer = writer(&node).await;
    assert_eq!(
        writer
            .texts("SELECT role FROM system_auth.roles")
            .await
            .unwrap(),
        [Some("scalardb_verify".to_owned())]
    );
    node.check_locked(&[]).await.unwrap();

    // JMX: no credentials, refused; the node's own password file, admitted.
    let anonymous = nodetool_status(&node, &[]);
    assert!(
        !anonymous.status.success(),
        "nodetool without credentials got in"
    );
    let password_file = node.dir().join("jmx.password");
    let admitted = nodetool_status(
        &node,
        &[
            "-u",
            "scalardb_verify",
            "-pwf",
            password_file.to_str().unwrap(),
        ],
    );
    assert!(
        admitted.status.success(),
        "{}",
        String::from_utf8_lossy(&admitted.stderr)
    );
    use std::os::unix::fs::PermissionsExt as _;
    for secret in ["jmx.password", "jmx.access", "cql.password"] {
        let mode = std::fs::metadata(node.dir().join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{secret} is readable by others");
    }

    // What an intruder would leave behind makes the node untrusted.
    run_cql(&writer, "CREATE KEYSPACE planted WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};").await;
    let error = node.check_locked(&["bank"]).await.unwrap_err().to_string();
    assert!(error.contains("planted"), "{error}");
    run_cql(&writer, "DROP KEYSPACE planted;").await;
    run_cql(
        &writer,
        "CREATE ROLE evil WITH LOGIN = true AND PASSWORD = 'evil';",
    )
    .await;
    let error = node.check_locked(&[]).await.unwrap_err().to_string();
    assert!(error.contains("evil"), "{error}");
    node.stop().await.unwrap();
}
