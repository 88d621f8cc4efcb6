//! What each engine's image expects: the official images' environment contract, the server
//! arguments that put it on a Unix socket only (no TCP listener) with durability off, the
//! line it logs when ready, and how to run its own SQL client inside the container.
//!
//! Pure: builds argument and environment lists, talks to nothing.

use super::super::Engine;

/// Where the host's socket directory is mounted in a PostgreSQL container: the server's
/// socket is there, and nothing else of the host is.
pub(super) const POSTGRES_SOCKET_DIR: &str = "/run/scalardb-verify";
/// Where it is mounted in a MySQL or MariaDB container: the images' own socket directory
/// (`/var/run` is `/run` in them), which their configuration files name for every client,
/// so the image's tools find the server with no flags (a `[client] socket` in my.cnf
/// outranks `MYSQL_UNIX_PORT`).
pub(super) const MYSQL_SOCKET_DIR: &str = "/run/mysqld";
/// The directory of the container, uploaded before it starts, that holds the superuser's
/// password (root's alone, 0700), and the file in it. The images read it through their
/// `*_PASSWORD_FILE` variables, so neither `docker inspect` nor any argv shows the password.
pub(super) const SECRET_DIR: &str = "scalardb-verify-secret";
pub(super) const SECRET_FILE: &str = "superuser-password";
/// PostgreSQL's port: only the name of its socket (`.s.PGSQL.5433`). Not the image's 5432,
/// on which the official image's entrypoint runs its temporary setup server, so a probe
/// never mistakes that one for the real server.
pub(super) const POSTGRES_PORT: u16 = 5433;
/// The MySQL-family server's time zone. The official images' entrypoints run a temporary
/// setup server on the same socket with `--default-time-zone=SYSTEM` after our arguments:
/// a server that says `+00:00` is the real one.
pub(super) const MYSQL_TIME_ZONE: &str = "+00:00";

/// The image used when none is given.
pub(super) fn default_image(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "postgres:16",
        Engine::MariaDb => "mysql:8.4",
    }
}

/// The port the server is known by inside the container (its socket's name on PostgreSQL).
pub(super) fn port(engine: Engine) -> u16 {
    match engine {
        Engine::Postgres => POSTGRES_PORT,
        Engine::MariaDb => 3306,
    }
}

/// Where the host's socket directory is mounted in the container.
pub(super) fn socket_dir(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => POSTGRES_SOCKET_DIR,
        Engine::MariaDb => MYSQL_SOCKET_DIR,
    }
}

/// The socket's file name in [`socket_dir`] (and in the host directory mounted there).
pub(super) fn socket_name(engine: Engine) -> String {
    match engine {
        Engine::Postgres => format!(".s.PGSQL.{POSTGRES_PORT}"),
        Engine::MariaDb => "mysqld.sock".to_owned(),
    }
}

/// The server's command line. Both families of official images (and the test images of
/// `scripts/build-test-images`) take it as the container's command: PostgreSQL's starts with
/// `postgres`, and arguments starting with `-` are given to `mysqld` or `mariadbd`,
/// whichever the image has.
pub(super) fn server_args(engine: Engine) -> Vec<String> {
    let args: Vec<String> = match engine {
        Engine::Postgres => [
            "postgres".to_owned(),
            "-c".to_owned(),
            format!("port={POSTGRES_PORT}"),
            // No TCP listener at all: the socket is the only way in.
            "-c".to_owned(),
            "listen_addresses=".to_owned(),
            // Ours first; the image's own directory too, where its entrypoint's setup
            // client looks.
            "-c".to_owned(),
            format!("unix_socket_directories={POSTGRES_SOCKET_DIR},/var/run/postgresql"),
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
            // No TCP listener at all: the socket is the only way in.
            "--skip-networking".to_owned(),
            format!("--socket={MYSQL_SOCKET_DIR}/mysqld.sock"),
            "--skip-name-resolve".to_owned(),
            "--skip-log-bin".to_owned(),
            "--innodb-flush-log-at-trx-commit=0".to_owned(),
            "--innodb-doublewrite=OFF".to_owned(),
            // MySQL's X protocol has a listener of its own. `loose-`: MariaDB has no such
            // option.
            "--loose-mysqlx=OFF".to_owned(),
            format!("--default-time-zone={MYSQL_TIME_ZONE}"),
            // MySQL 8.4 creates root with caching_sha2_password, whose full authentication
            // over a socket sqlx 0.8 gets wrong (it asks for an RSA key where the server
            // expects the password): root gets mysql_native_password instead. MariaDB has
            // neither option, nor needs them.
            "--loose-mysql-native-password=ON".to_owned(),
            "--loose-authentication-policy=mysql_native_password,,".to_owned(),
            "--character-set-server=utf8mb4".to_owned(),
            "--collation-server=utf8mb4_general_ci".to_owned(),
        ],
    };
    args
}

/// The environment that initializes the server with password authentication everywhere,
/// the superuser's password read from the uploaded file ([`password_file`]), and the
/// MySQL-family root account on `localhost` (the socket) only.
pub(super) fn server_env(engine: Engine) -> Vec<String> {
    let file = password_file();
    match engine {
        Engine::Postgres => vec![
            format!("POSTGRES_PASSWORD_FILE={file}"),
            "POSTGRES_HOST_AUTH_METHOD=scram-sha-256".to_owned(),
            // The images trust the socket by default (`local all all trust`): not ours.
            "POSTGRES_INITDB_ARGS=--auth-local=scram-sha-256 --auth-host=scram-sha-256".to_owned(),
        ],
        // MariaDB's images read MARIADB_* first and MYSQL_* as a fallback; MySQL's only
        // MYSQL_*.
        Engine::MariaDb => vec![
            format!("MYSQL_ROOT_PASSWORD_FILE={file}"),
            format!("MARIADB_ROOT_PASSWORD_FILE={file}"),
            "MYSQL_ROOT_HOST=localhost".to_owned(),
            "MARIADB_ROOT_HOST=localhost".to_owned(),
        ],
    }
}

/// Where the superuser's password is inside the container.
pub(super) fn password_file() -> String {
    format!("/{SECRET_DIR}/{SECRET_FILE}")
}

/// The environment of every command run inside the container: the engine's own tools
/// (`psql`, `pg_restore`, `mysql`, `mariadb`, ...) reach the server through its socket with
/// it and no flags.
pub(super) fn client_env(engine: Engine, password: &str) -> Vec<String> {
    // The password in the environment rather than argv, where `ps` would show it.
    match engine {
        Engine::Postgres => vec![
            format!("PGHOST={POSTGRES_SOCKET_DIR}"),
            format!("PGPORT={POSTGRES_PORT}"),
            "PGUSER=postgres".to_owned(),
            format!("PGPASSWORD={password}"),
        ],
        Engine::MariaDb => vec![
            format!("MYSQL_UNIX_PORT={MYSQL_SOCKET_DIR}/mysqld.sock"),
            format!("MYSQL_PWD={password}"),
        ],
    }
}

/// The account the engine's clients run as inside the container: the server's own, which
/// every image of the contract has. Never root: what a dump makes a client do (psql's `\!`,
/// the mariadb client's `system`) runs as an account without a capability, in a container
/// without a network.
pub(super) fn client_user(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "postgres",
        Engine::MariaDb => "mysql",
    }
}

/// The engine's own SQL client reading a script on stdin and stopping at its first error.
/// `database: None` is `postgres` on PostgreSQL and none selected on MySQL and MariaDB (so a
/// dump's own `USE` applies).
pub(super) fn sql_client(engine: Engine, database: Option<&str>) -> Vec<String> {
    match engine {
        Engine::Postgres => {
            // -X: no ~/.psqlrc; -w: never prompt, since stdin is the script.
            let mut cmd: Vec<String> = ["psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1"]
                .map(str::to_owned)
                .to_vec();
            cmd.extend(["-h", POSTGRES_SOCKET_DIR, "-U", "postgres"].map(str::to_owned));
            cmd.push(format!("--port={POSTGRES_PORT}"));
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
                "--protocol=SOCKET",
                "--user=root",
                "--batch",
                "--default-character-set=utf8mb4",
            ]
            .map(str::to_owned)
            .to_vec();
            cmd.push(format!("--socket={MYSQL_SOCKET_DIR}/mysqld.sock"));
            if let Some(database) = database {
                cmd.push(format!("--database={database}"));
            }
            cmd
        }
    }
}

/// A line the server logs once it accepts connections. The official images log it twice
/// (once for the socket-only server that initializes the data directory, once for the real
/// one), so it is a confirmation after a successful probe, not a signal on its own.
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
    fn postgres_listens_on_our_socket_only_without_durability() {
        let args = server_args(Engine::Postgres).join(" ");
        assert!(
            args.starts_with(
                "postgres -c port=5433 -c listen_addresses= \
                 -c unix_socket_directories=/run/scalardb-verify,/var/run/postgresql"
            ),
            "{args}"
        );
        for setting in [
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ] {
            assert!(args.contains(&format!("-c {setting}")), "{args}");
        }
        assert_eq!(socket_name(Engine::Postgres), ".s.PGSQL.5433");
    }

    #[test]
    fn mysql_family_args_go_to_the_image_server() {
        let args = server_args(Engine::MariaDb);
        assert!(args.iter().all(|a| a.starts_with("--")), "{args:?}");
        assert!(args.contains(&"--skip-networking".to_owned()));
        assert!(args.contains(&"--socket=/run/mysqld/mysqld.sock".to_owned()));
        assert!(args.contains(&"--skip-log-bin".to_owned()));
        assert!(!args.iter().any(|a| a.starts_with("--port")), "{args:?}");
    }

    #[test]
    fn the_password_is_in_a_file_and_every_method_asks_for_it() {
        let pg = server_env(Engine::Postgres);
        assert!(
            pg.contains(
                &"POSTGRES_PASSWORD_FILE=/scalardb-verify-secret/superuser-password".into()
            )
        );
        assert!(
            pg.iter().any(|e| e.contains("--auth-local=scram-sha-256")),
            "{pg:?}"
        );
        assert!(!pg.iter().any(|e| e.contains("trust")), "{pg:?}");
        let my = server_env(Engine::MariaDb);
        assert!(my.contains(
            &"MYSQL_ROOT_PASSWORD_FILE=/scalardb-verify-secret/superuser-password".into()
        ));
        assert!(!my.iter().any(|e| e.contains("ALLOW_EMPTY")), "{my:?}");
    }

    #[test]
    fn the_client_password_travels_in_the_environment() {
        let cmd = sql_client(Engine::MariaDb, Some("db")).join(" ");
        assert!(cmd.contains("--database=db"));
        assert!(cmd.contains("--protocol=SOCKET"));
        assert!(client_env(Engine::MariaDb, "pw").contains(&"MYSQL_PWD=pw".into()));
        assert!(client_env(Engine::Postgres, "pw").contains(&"PGPASSWORD=pw".into()));
        assert!(sql_client(Engine::Postgres, None).contains(&"--dbname=postgres".into()));
    }
}
