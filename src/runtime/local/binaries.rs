//! Finding the server, bootstrap and client programs of an engine on this machine.
//!
//! Owns the search order only: Debian's versioned PostgreSQL directories first (the highest
//! version wins), then `PATH`, then the system `sbin` directories where Debian puts
//! `mariadbd`. It runs nothing.

use std::cmp::Reverse;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{Engine, LocalRuntimeError};

/// The programs one engine needs, all resolved to absolute paths.
#[derive(Debug, Clone)]
pub(super) struct Binaries {
    /// `initdb` or `mariadb-install-db`.
    pub(super) init: PathBuf,
    /// `postgres` or `mariadbd`.
    pub(super) server: PathBuf,
    /// `psql` or `mariadb`.
    pub(super) client: PathBuf,
}

/// Where to look, passed in so the search can be tested without the real machine.
#[derive(Debug, Clone)]
pub(super) struct SearchPath {
    /// Directories holding one subdirectory per PostgreSQL major version, each with `bin/`.
    pub(super) postgres_roots: Vec<PathBuf>,
    /// Directories searched in order for any program (`PATH`, then the sbin directories).
    pub(super) dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// The search path of this machine.
    pub(super) fn system() -> Self {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        // `mariadbd` lives in /usr/sbin, which is not on a normal user's PATH.
        for extra in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"] {
            let extra = PathBuf::from(extra);
            if !dirs.contains(&extra) {
                dirs.push(extra);
            }
        }
        Self {
            postgres_roots: vec![PathBuf::from("/usr/lib/postgresql")],
            dirs,
        }
    }
}

const POSTGRES_HINT: &str = "install PostgreSQL (Debian: postgresql)";
const MARIADB_SERVER_HINT: &str = "install MariaDB (Debian: mariadb-server)";
const MARIADB_CLIENT_HINT: &str = "install the MariaDB client (Debian: mariadb-client)";

/// Finds every program `engine` needs, or names the first one missing.
pub(super) fn find(engine: Engine, search: &SearchPath) -> Result<Binaries, LocalRuntimeError> {
    match engine {
        Engine::Postgres => find_postgres(search),
        Engine::MariaDb => find_mariadb(search),
    }
}

fn find_postgres(search: &SearchPath) -> Result<Binaries, LocalRuntimeError> {
    // initdb, postgres and psql must come from one installation: a cluster initialised by
    // one major version does not start under another.
    let bin_dir = versioned_postgres_bin_dirs(&search.postgres_roots)
        .into_iter()
        .find(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres")));
    if let Some(dir) = bin_dir {
        let client = Some(dir.join("psql"))
            .filter(|psql| is_executable(psql))
            .or_else(|| find_program(&["psql"], &search.dirs))
            .ok_or(LocalRuntimeError::BinaryNotFound {
                what: "psql",
                hint: POSTGRES_HINT,
            })?;
        return Ok(Binaries {
            init: dir.join("initdb"),
            server: dir.join("postgres"),
            client,
        });
    }
    let missing = |what| LocalRuntimeError::BinaryNotFound {
        what,
        hint: POSTGRES_HINT,
    };
    let init = find_program(&["initdb"], &search.dirs).ok_or(missing("initdb"))?;
    // Prefer the postgres beside initdb; PATH may hold a symlink to another version.
    let server = init
        .parent()
        .map(|dir| dir.join("postgres"))
        .filter(|p| is_executable(p))
        .or_else(|| find_program(&["postgres"], &search.dirs))
        .ok_or(missing("postgres"))?;
    let client = find_program(&["psql"], &search.dirs).ok_or(missing("psql"))?;
    Ok(Binaries {
        init,
        server,
        client,
    })
}

fn find_mariadb(search: &SearchPath) -> Result<Binaries, LocalRuntimeError> {
    let server = find_program(&["mariadbd", "mysqld"], &search.dirs).ok_or(
        LocalRuntimeError::BinaryNotFound {
            what: "mariadbd",
            hint: MARIADB_SERVER_HINT,
        },
    )?;
    let init = find_program(&["mariadb-install-db", "mysql_install_db"], &search.dirs).ok_or(
        LocalRuntimeError::BinaryNotFound {
            what: "mariadb-install-db",
            hint: MARIADB_SERVER_HINT,
        },
    )?;
    let client = find_program(&["mariadb", "mysql"], &search.dirs).ok_or(
        LocalRuntimeError::BinaryNotFound {
            what: "mariadb (the client)",
            hint: MARIADB_CLIENT_HINT,
        },
    )?;
    Ok(Binaries {
        init,
        server,
        client,
    })
}

/// `<root>/<major>/bin` for every root, highest major version first.
fn versioned_postgres_bin_dirs(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut found: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    for root in roots {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some(version) = parse_version(&name) {
                found.push((version, entry.path().join("bin")));
            }
        }
    }
    // Numeric, not lexical: 9.6 < 10 < 15.
    found.sort_by_key(|(version, _)| Reverse(version.clone()));
    found.into_iter().map(|(_, dir)| dir).collect()
}

fn parse_version(name: &OsString) -> Option<Vec<u64>> {
    name.to_str()?
        .split('.')
        .map(|part| part.parse::<u64>().ok())
        .collect()
}

/// The first of `names` found in the first directory holding any of them.
fn find_program(names: &[&str], dirs: &[PathBuf]) -> Option<PathBuf> {
    // Name order wins over directory order: `mariadbd` anywhere beats `mysqld` earlier on
    // PATH, since on MariaDB hosts `mysqld` is only a compatibility symlink.
    names.iter().find_map(|name| {
        dirs.iter()
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn touch_executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn missing_program_names_what_to_install() {
        let empty = SearchPath {
            postgres_roots: vec![],
            dirs: vec![],
        };
        for engine in [Engine::Postgres, Engine::MariaDb] {
            let err = find(engine, &empty).unwrap_err();
            assert!(
                matches!(err, LocalRuntimeError::BinaryNotFound { .. }),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains("scripts/install-test-deps"), "{message}");
        }
    }

    #[test]
    fn highest_postgres_major_version_wins_numerically() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9.6", "10", "15"] {
            for program in ["initdb", "postgres", "psql"] {
                touch_executable(&root.path().join(version).join("bin").join(program));
            }
        }
        let search = SearchPath {
            postgres_roots: vec![root.path().to_path_buf()],
            dirs: vec![],
        };
        let found = find(Engine::Postgres, &search).unwrap();
        assert_eq!(found.init, root.path().join("15/bin/initdb"));
        assert_eq!(found.server, root.path().join("15/bin/postgres"));
        assert_eq!(found.client, root.path().join("15/bin/psql"));
    }

    #[test]
    fn mariadb_names_beat_mysql_compatibility_names() {
        let dir = tempfile::tempdir().unwrap();
        let early = dir.path().join("early");
        let late = dir.path().join("late");
        touch_executable(&early.join("mysqld"));
        touch_executable(&late.join("mariadbd"));
        touch_executable(&late.join("mariadb-install-db"));
        touch_executable(&early.join("mysql"));
        let search = SearchPath {
            postgres_roots: vec![],
            dirs: vec![early.clone(), late.clone()],
        };
        let found = find(Engine::MariaDb, &search).unwrap();
        assert_eq!(found.server, late.join("mariadbd"));
        assert_eq!(found.client, early.join("mysql"));
    }
}
