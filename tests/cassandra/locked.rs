//! The disposable node answers only the tool (issue 10): CQL needs the node's own role
//! with its fresh random password (the default `cassandra`/`cassandra` role is gone, and
//! nobody gets in without credentials), JMX needs its own password too, and a role,
//! keyspace or session someone else left makes the node untrusted. The JVM runs confined
//! (a fresh account, no capabilities, none of the host's files, a network of its own whose
//! ports only this process reaches).

use std::process::Command;

use scalardb_verify::store::{CassandraCredentials, CassandraWriter};

use crate::support::*;

/// nodetool `status` against `node`'s JMX port, with `extra` arguments (credentials), run
/// from the host as another local user would.
fn nodetool_status(
    node: &scalardb_verify::runtime::cassandra::CassandraInstance,
    extra: &[&str],
) -> std::process::Output {
    let classpath = format!("{}/*", node.home().join("lib").display());
    let scratch = tempfile::tempdir().unwrap();
    Command::new(node.java())
        .args(["-Xmx128m", "-cp", &classpath])
        .args(scalardb_verify::runtime::cassandra::JVM17_OPTIONS)
        .arg(format!(
            "-Dcassandra.storagedir={}",
            scratch.path().display()
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

/// A field of `/proc/<pid>/status`, e.g. `Uid` or `CapEff`.
fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?;
    Some(line[field.len() + 1..].trim().to_owned())
}

/// The node's JVM runs confined: as another account than ours when we are root, without
/// capabilities or a way to gain any, in a mount namespace of its own that holds none of
/// the host's files but `/usr`, the jars and its own directories.
fn assert_confined(node: &scalardb_verify::runtime::cassandra::CassandraInstance) {
    let outer = node.pid().expect("running");
    let jvm = scalardb_verify::runtime::local::process::descendants(outer)
        .into_iter()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains("org.apache.cassandra.service.CassandraDaemon"))
                && std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|exe| exe.to_string_lossy().contains("java"))
        })
        .expect("the Cassandra JVM below the sandbox");
    let ours = status_field(std::process::id(), "Uid").unwrap();
    let uid = status_field(jvm, "Uid").unwrap();
    let first = |ids: &str| ids.split_whitespace().next().unwrap().to_owned();
    if first(&ours) == "0" {
        assert_ne!(first(&uid), "0", "the JVM runs as root");
        let home_owner = {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata(node.box_dir()).unwrap().uid()
        };
        assert_eq!(first(&uid), home_owner.to_string(), "it owns its box");
    }
    assert_eq!(status_field(jvm, "CapEff").unwrap(), "0000000000000000");
    assert_eq!(status_field(jvm, "CapBnd").unwrap(), "0000000000000000");
    assert_eq!(status_field(jvm, "NoNewPrivs").unwrap(), "1");
    let ns = |pid: &str, kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    assert_ne!(ns(&jvm.to_string(), "mnt"), ns("self", "mnt"));
    assert_ne!(ns(&jvm.to_string(), "pid"), ns("self", "pid"));
    // A network of its own, holding a loopback and nothing else.
    assert_ne!(ns(&jvm.to_string(), "net"), ns("self", "net"));
    let devices = std::fs::read_to_string(format!("/proc/{jvm}/net/dev")).unwrap();
    let interfaces: Vec<&str> = devices
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{devices}");
    // What the JVM sees as / and /etc: nothing of the host's but what it was given.
    let root = std::path::PathBuf::from(format!("/proc/{jvm}/root"));
    let mut etc: Vec<String> = std::fs::read_dir(root.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    etc.sort();
    for entry in &etc {
        assert!(
            [
                "alternatives",
                "group",
                "hosts",
                "java-17-openjdk",
                "ld.so.cache",
                "localtime",
                "passwd"
            ]
            .contains(&entry.as_str()),
            "the sandbox's /etc holds {entry}: {etc:?}"
        );
    }
    assert!(!etc.contains(&"shadow".to_owned()));
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert_eq!(passwd.lines().count(), 1, "{passwd}");
    assert!(!root.join("home").exists() && !root.join("var").exists());
    assert!(
        !root.join("root/.ssh").exists(),
        "the host's /root is not visible"
    );
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

    // JMX is in the node's own network: from the host, not even the node's own password
    // gets nodetool in (nothing of the node's listens here)...
    assert!(
        node.is_isolated(),
        "a drill's node has a network of its own"
    );
    let password_file = node.box_dir().join("jmx.password");
    for extra in [
        &[][..],
        &[
            "-u",
            "scalardb_verify",
            "-pwf",
            password_file.to_str().unwrap(),
        ][..],
    ] {
        let from_host = nodetool_status(&node, extra);
        assert!(
            !from_host.status.success(),
            "nodetool reached the node's JMX from the host with {extra:?}"
        );
    }
    // ...while the tool's own nodetool, confined in a network of its own, reaches it
    // through the node's JMX socket.
    node.snapshot("locked", &[])
        .await
        .unwrap_or_else(|e| panic!("{}", scalardb_verify::scan::error_chain(&e)));

    // The host port the tool's driver uses answers this process and those it started alone:
    // a CQL OPTIONS frame from a process that is not ours (its parent has exited) gets
    // nothing back, the same frame from here gets SUPPORTED.
    let port = node.contact_point().rsplit(':').next().unwrap().to_owned();
    let out = tempfile::NamedTempFile::new().unwrap();
    let orphan = format!(
        "(sleep 0.3; exec 3<>/dev/tcp/127.0.0.1/{port}; echo connected; \
         printf '\\x04\\x00\\x00\\x00\\x05\\x00\\x00\\x00\\x00' >&3; \
         timeout 5 cat <&3 | od -An -tx1; echo done) >{} 2>/dev/null </dev/null & disown",
        out.path().display()
    );
    Command::new("setsid")
        .args(["bash", "-c", &orphan])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let answer = loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let text = std::fs::read_to_string(out.path()).unwrap();
        if text.contains("done") || std::time::Instant::now() > deadline {
            break text;
        }
    };
    assert_eq!(
        answer, "connected\ndone\n",
        "another process got an answer on the node's host port"
    );
    {
        use std::io::{Read as _, Write as _};
        let mut ours = std::net::TcpStream::connect(node.contact_point()).unwrap();
        ours.write_all(&[4, 0, 0, 0, 5, 0, 0, 0, 0]).unwrap();
        let mut header = [0u8; 9];
        ours.read_exact(&mut header).unwrap();
        assert_eq!(header[4], 6, "SUPPORTED answers OPTIONS: {header:?}");
    }
    use std::os::unix::fs::PermissionsExt as _;
    for secret in [password_file.clone(), node.password_file()] {
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} is readable by others",
            secret.display()
        );
    }
    assert!(
        node.password_file().starts_with(node.dir())
            && !node.password_file().starts_with(node.box_dir()),
        "the CQL password is the tool's, outside what the node may read"
    );
    assert_confined(&node);

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
