//! What each engine's image expects: the official images' environment contract, the server
//! arguments that put it on our loopback port with durability off, the line it logs when
//! ready, and how to run its own SQL client inside the container.
//!
//! Pure: builds argument and environment lists, talks to nothing.

use super::super::Engine;

/// The image used when none is given.
pub(super) fn default_image(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "postgres:16",
        Engine::MariaDb => "mysql:8.4",
    }
}

/// The server's command line. Both families of official images (and the test images of
/// `scripts/build-test-images`) take it as the container's command: PostgreSQL's starts with
/// `postgres`, and arguments starting with `-` are given to `mysqld` or `mariadbd`,
/// whichever the image has.
pub(super) fn server_args(engine: Engine, port: u16) -> Vec<String> {
    let args: Vec<String> = match engine {
        Engine::Postgres => [
            "postgres".to_owned(),
            "-c".to_owned(),
            format!("port={port}"),
            "-c".to_owned(),
            "listen_addresses=127.0.0.1".to_owned(),
        ]
        .into_iter()
        .chain(
            [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                // Minimal WAL lets a bulk load into a fresh table skip WAL entirely.
                "wal_level=minimal",
                "max_wal_senders=0",
                // Dynamic shared memory as files in the data directory: a container's
                // /dev/shm is 64 MB, too small for parallel index builds.
                "dynamic_shared_memory_type=mmap",
            ]
            .into_iter()
            .flat_map(|setting| ["-c".to_owned(), setting.to_owned()]),
        )
        .collect(),
        Engine::MariaDb => vec![
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            // TCP clients from 127.0.0.1 match root@'%' or root@'127.0.0.1' without a
            // reverse lookup of the host's name.
            "--skip-name-resolve".to_owned(),
            "--skip-log-bin".to_owned(),
            "--innodb-flush-log-at-trx-commit=0".to_owned(),
            "--innodb-doublewrite=OFF".to_owned(),
            // MySQL's X protocol listens on 33060 by default, which two containers on the
            // host's network would fight over. `loose-`: MariaDB has no such option.
            "--loose-mysqlx=OFF".to_owned(),
            "--character-set-server=utf8mb4".to_owned(),
            "--collation-server=utf8mb4_general_ci".to_owned(),
        ],
    };
    args
}

/// The environment that initializes the server with `password` for its superuser, or with
/// none (trust on PostgreSQL, an empty root password on MySQL and MariaDB).
pub(super) fn server_env(engine: Engine, password: Option<&str>) -> Vec<String> {
    match (engine, password) {
        (Engine::Postgres, Some(password)) => vec![format!("POSTGRES_PASSWORD={password}")],
        (Engine::Postgres, None) => vec!["POSTGRES_HOST_AUTH_METHOD=trust".to_owned()],
        // MariaDB's images read MARIADB_* first and MYSQL_* as a fallback; MySQL's only
        // MYSQL_*.
        (Engine::MariaDb, Some(password)) => vec![
            format!("MYSQL_ROOT_PASSWORD={password}"),
            format!("MARIADB_ROOT_PASSWORD={password}"),
        ],
        (Engine::MariaDb, None) => vec![
            "MYSQL_ALLOW_EMPTY_PASSWORD=yes".to_owned(),
            "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1".to_owned(),
        ],
    }
}

/// The environment of every command run inside the container: the engine's own tools
/// (`psql`, `pg_restore`, `mysql`, `mariadb`, ...) reach the server with it and no flags.
pub(super) fn client_env(engine: Engine, port: u16, password: Option<&str>) -> Vec<String> {
    let mut env = match engine {
        Engine::Postgres => vec![
            "PGHOST=127.0.0.1".to_owned(),
            format!("PGPORT={port}"),
            "PGUSER=postgres".to_owned(),
        ],
        Engine::MariaDb => vec![
            "MYSQL_HOST=127.0.0.1".to_owned(),
            format!("MYSQL_TCP_PORT={port}"),
            "USER=root".to_owned(),
        ],
    };
    if let Some(password) = password {
        // The environment rather than argv, where `ps` in the container would show it.
        env.push(match engine {
            Engine::Postgres => format!("PGPASSWORD={password}"),
            Engine::MariaDb => format!("MYSQL_PWD={password}"),
        });
    }
    env
}

/// The engine's own SQL client reading a script on stdin and stopping at its first error.
/// `database: None` is `postgres` on PostgreSQL and none selected on MySQL and MariaDB (so a
/// dump's own `USE` applies).
pub(super) fn sql_client(engine: Engine, port: u16, database: Option<&str>) -> Vec<String> {
    let port = port.to_string();
    match engine {
        Engine::Postgres => {
            // -X: no ~/.psqlrc; -w: never prompt, since stdin is the script.
            let mut cmd: Vec<String> = ["psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1"]
                .map(str::to_owned)
                .to_vec();
            cmd.extend(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"].map(str::to_owned));
            cmd.push(format!(
                "--dbname={}",
                database.unwrap_or(engine.default_database())
            ));
            cmd
        }
        Engine::MariaDb => {
            // MariaDB's images have `mariadb` (11.x no longer a `mysql`), MySQL's `mysql`.
            let mut cmd: Vec<String> = [
                "sh",
                "-c",
                r#"if command -v mariadb >/dev/null 2>&1; then exec mariadb "$@"; fi; exec mysql "$@""#,
                "sql-client",
                // --no-defaults must come first.
                "--no-defaults",
                "--protocol=TCP",
                "--host=127.0.0.1",
                "--user=root",
                "--batch",
                "--default-character-set=utf8mb4",
            ]
            .map(str::to_owned)
            .to_vec();
            cmd.push(format!("--port={port}"));
            if let Some(database) = database {
                cmd.push(format!("--database={database}"));
            }
            cmd
        }
    }
}

/// A line the server logs once it accepts connections. The official images log it twice
/// (once for the socket-only server that initializes the data directory, once for the real
/// one), so it is a confirmation after a successful TCP probe, not a signal on its own.
pub(super) fn ready_line(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "database system is ready to accept connections",
        Engine::MariaDb => "ready for connections",
    }
}

/// The signal for a clean shutdown (PostgreSQL's SIGTERM waits for clients to leave).
pub(super) fn stop_signal(engine: Engine) -> Option<&'static str> {
    match engine {
        Engine::Postgres => Some("SIGINT"),
        Engine::MariaDb => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_listens_on_loopback_at_our_port_without_durability() {
        let args = server_args(Engine::Postgres, 5555).join(" ");
        assert!(args.starts_with("postgres -c port=5555 -c listen_addresses=127.0.0.1"));
        for setting in [
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ] {
            assert!(args.contains(&format!("-c {setting}")), "{args}");
        }
    }

    #[test]
    fn mysql_family_args_go_to_the_image_server() {
        let args = server_args(Engine::MariaDb, 5555);
        assert!(args.iter().all(|a| a.starts_with("--")), "{args:?}");
        assert!(args.contains(&"--port=5555".to_owned()));
        assert!(args.contains(&"--bind-address=127.0.0.1".to_owned()));
        assert!(args.contains(&"--skip-log-bin".to_owned()));
    }

    #[test]
    fn no_password_means_trust_or_an_empty_root_password() {
        assert_eq!(
            server_env(Engine::Postgres, None),
            ["POSTGRES_HOST_AUTH_METHOD=trust"]
        );
        assert!(
            server_env(Engine::MariaDb, None).contains(&"MYSQL_ALLOW_EMPTY_PASSWORD=yes".into())
        );
        assert!(server_env(Engine::MariaDb, Some("pw")).contains(&"MYSQL_ROOT_PASSWORD=pw".into()));
    }

    #[test]
    fn the_client_password_travels_in_the_environment() {
        let cmd = sql_client(Engine::MariaDb, 1, Some("db")).join(" ");
        assert!(!cmd.contains("pw"));
        assert!(cmd.contains("--database=db"));
        assert!(client_env(Engine::MariaDb, 1, Some("pw")).contains(&"MYSQL_PWD=pw".into()));
        assert!(client_env(Engine::Postgres, 1, Some("pw")).contains(&"PGPASSWORD=pw".into()));
        assert!(sql_client(Engine::Postgres, 7, None).contains(&"--dbname=postgres".into()));
    }
}
