//! The confinement every server and client a drill runs on backup data lives in.
//!
//! A backup is untrusted input: a dump can carry psql meta-commands, `COPY … TO PROGRAM`, a
//! function planted by an application user, a crafted archive. So every process that reads
//! or executes anything from it (postgres, initdb, psql, pg_restore, mariadbd, the mariadb
//! client, …) runs in a [`Sandbox`]:
//!
//! - as a **fresh account** (a random uid and gid with no entry in the host's user database,
//!   so it owns nothing on the host and no other process runs as it) when the tool runs as
//!   root, else as the invoking user inside a user namespace;
//! - with **no capabilities** and `no_new_privs`, so nothing inside can gain any back;
//! - in **its own mount namespace** ([bubblewrap](https://github.com/containers/bubblewrap)):
//!   `/usr` read only, a synthetic `/etc/passwd` and `/etc/group` naming only that account,
//!   a small private `/tmp`, the instance's own directory read-write at [`BOX`], and the
//!   backup read only at [`BACKUP`] when it is handed in; nothing else of the host's files;
//! - in **its own network namespace** ([`Network::Isolated`]): no interface but a loopback of
//!   its own, so no server on the machine can be reached. The tool talks to the server
//!   through a Unix socket in the instance directory, which only the tool can open (a
//!   server that speaks only TCP gets its ports carried out by [`bridge`](super::bridge));
//! - in its own PID, IPC and UTS namespaces, killed with the tool (`--die-with-parent`),
//!   unless it is to outlive it ([`Sandbox::outliving_the_tool`], for `--keep`).
//!
//! This module only builds the command line; it must not decide what runs inside, and it
//! must not weaken a layer because a program inside fails: such a program is refused.

use std::ffi::OsString;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User, getegid, geteuid};

/// Where the instance's own directory appears inside the sandbox (read-write).
pub const BOX: &str = "/box";
/// Where a backup handed to the sandbox appears inside it (read only).
pub const BACKUP: &str = "/backup";
/// The sandbox's host name.
const HOSTNAME: &str = "sandbox";
/// The size of the sandbox's private `/tmp`.
const TMP_BYTES: u64 = 64 * 1024 * 1024;
/// The uids a fresh account is drawn from: high enough to be clear of system, user and
/// the usual subordinate ranges (`/etc/subuid` starts at 100000 and grows by 65536).
const FRESH_IDS: std::ops::Range<u32> = 0x6000_0000..0x7000_0000;
/// The directories of a merged-`/usr` system (and their pre-merge equivalents).
const USR_LINKS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Files of the host's `/etc` that programs inside need to start: the dynamic linker's cache,
/// the `alternatives` links some of `/usr/bin` points through, and the time zone.
const ETC_READ_ONLY: [&str; 4] = [
    "/etc/ld.so.cache",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/java-17-openjdk",
];

/// What went wrong building a sandbox. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "find bubblewrap (`bwrap`) on the PATH: every server and client a local drill runs \
         on backup data is confined with it (Debian: apt-get install bubblewrap; or use \
         --runtime docker)"
    )]
    NoBubblewrap,
    #[error("read random bytes from /dev/urandom")]
    Random(#[source] io::Error),
    #[error("find a free uid for the sandbox account")]
    NoFreeId,
    #[error("prepare the sandbox directory {}", path.display())]
    Prepare {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Whether the processes inside may reach the host's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A network namespace of its own: loopback only, and nothing else listens there.
    Isolated,
    /// The host's network (for a server that can only be reached over TCP); it still sees
    /// none of the host's files.
    Host,
}

/// The account the processes inside run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    /// Whether the tool runs as root and so must drop to `uid` itself (else bubblewrap's
    /// user namespace maps the invoking user).
    switch: bool,
}

impl Account {
    /// A fresh account when running as root (a random id no user or group of the host
    /// database has), else the invoking user.
    pub fn fresh() -> Result<Self, SandboxError> {
        if !geteuid().is_root() {
            return Ok(Self {
                uid: geteuid().as_raw(),
                gid: getegid().as_raw(),
                switch: false,
            });
        }
        for _ in 0..64 {
            let draw = u32::from_le_bytes(random_bytes::<4>()?);
            let id = FRESH_IDS.start + draw % (FRESH_IDS.end - FRESH_IDS.start);
            let taken = User::from_uid(Uid::from_raw(id)).ok().flatten().is_some()
                || nix::unistd::Group::from_gid(Gid::from_raw(id))
                    .ok()
                    .flatten()
                    .is_some();
            if !taken {
                return Ok(Self {
                    uid: id,
                    gid: id,
                    switch: true,
                });
            }
        }
        Err(SandboxError::NoFreeId)
    }

    /// Gives `path` to this account (only when the tool is root: otherwise it is ours).
    pub fn chown(&self, path: &Path) -> io::Result<()> {
        if self.switch {
            std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))?;
        }
        Ok(())
    }

    /// Gives the open file or directory `fd` to this account (only when the tool is root).
    pub fn chown_fd(&self, fd: &impl std::os::fd::AsFd) -> io::Result<()> {
        if self.switch {
            nix::unistd::fchown(
                fd,
                Some(Uid::from_raw(self.uid)),
                Some(Gid::from_raw(self.gid)),
            )?;
        }
        Ok(())
    }

    /// Whether this account may read `path` and reach it through its parents: it belongs to
    /// no group of the host and owns nothing there, so only the "other" permission bits
    /// count.
    pub fn can_read(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        if !self.can_read_bound(path) {
            return false;
        }
        if !self.switch {
            return true;
        }
        let Ok(absolute) = std::path::absolute(path) else {
            return false;
        };
        absolute
            .ancestors()
            .skip(1)
            .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0))
    }

    /// Whether this account may read `path` (a file, or a directory and every file in it)
    /// once it is bound into the sandbox, where its host parents don't count.
    pub fn can_read_bound(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        if !self.switch {
            return true;
        }
        let Ok(metadata) = std::fs::metadata(path) else {
            return false;
        };
        let wanted = if metadata.is_dir() { 0o005 } else { 0o004 };
        if metadata.mode() & wanted != wanted {
            return false;
        }
        // A directory archive's files must be readable too (pg_dump makes them 0600).
        if metadata.is_dir() {
            let Ok(entries) = std::fs::read_dir(path) else {
                return false;
            };
            let readable = entries.flatten().all(|entry| {
                entry
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.mode() & 0o004 != 0)
            });
            if !readable {
                return false;
            }
        }
        true
    }
}

/// One confinement: an account, a directory of the instance's, maybe a backup, a network.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    account: Account,
    /// The instance's directory on the host, seen inside as [`BOX`].
    box_dir: PathBuf,
    /// The synthetic `/etc/passwd` and `/etc/group`, kept outside `box_dir` so nothing
    /// inside can change them.
    passwd: PathBuf,
    group: PathBuf,
    /// `localhost` and the sandbox's own host name, for programs that look them up.
    hosts: PathBuf,
    backup: Option<PathBuf>,
    read_only: Vec<PathBuf>,
    network: Network,
    /// Whether everything inside is killed when the tool's process (the spawning thread)
    /// ends; not for an instance `--keep` leaves running, which every teardown (`stop`,
    /// `cleanup`) then kills explicitly, process by process.
    dies_with_tool: bool,
}

impl Sandbox {
    /// Prepares a sandbox whose writable directory is `box_dir` (created here, given to the
    /// account, mode 0700) and whose account files live in `private_dir` (the tool's own).
    pub fn prepare(
        private_dir: &Path,
        box_dir: &Path,
        account: Account,
        network: Network,
    ) -> Result<Self, SandboxError> {
        let bwrap = find_on_path("bwrap").ok_or(SandboxError::NoBubblewrap)?;
        fn prepare(path: &Path) -> impl FnOnce(io::Error) -> SandboxError + '_ {
            move |source| SandboxError::Prepare {
                path: path.to_owned(),
                source,
            }
        }
        std::fs::create_dir(box_dir).map_err(prepare(box_dir))?;
        set_mode(box_dir, 0o700).map_err(prepare(box_dir))?;
        account.chown(box_dir).map_err(prepare(box_dir))?;
        let passwd = private_dir.join("passwd");
        let group = private_dir.join("group");
        // The names the engines expect to find for their own uid.
        std::fs::write(
            &passwd,
            format!(
                "sandbox:x:{}:{}:scalardb-verify sandbox:{BOX}:/usr/sbin/nologin\n",
                account.uid, account.gid
            ),
        )
        .map_err(prepare(&passwd))?;
        std::fs::write(&group, format!("sandbox:x:{}:\n", account.gid)).map_err(prepare(&group))?;
        let hosts = private_dir.join("hosts");
        std::fs::write(
            &hosts,
            format!("127.0.0.1 localhost {HOSTNAME}\n::1 localhost\n"),
        )
        .map_err(prepare(&hosts))?;
        for file in [&passwd, &group, &hosts] {
            set_mode(file, 0o644).map_err(prepare(file))?;
        }
        Ok(Self {
            bwrap,
            account,
            box_dir: box_dir.to_owned(),
            passwd,
            group,
            hosts,
            backup: None,
            read_only: Vec::new(),
            network,
            dies_with_tool: true,
        })
    }

    pub fn account(&self) -> Account {
        self.account
    }

    /// The instance directory on the host.
    pub fn box_dir(&self) -> &Path {
        &self.box_dir
    }

    /// `host` (a path inside [`box_dir`](Self::box_dir)) as the processes inside see it.
    pub fn inside(&self, host: &Path) -> PathBuf {
        match host.strip_prefix(&self.box_dir) {
            Ok(rest) => Path::new(BOX).join(rest),
            Err(_) => host.to_owned(),
        }
    }

    /// The same sandbox with `backup` visible read only at [`BACKUP`].
    pub fn with_backup(&self, backup: &Path) -> Self {
        Self {
            backup: Some(backup.to_owned()),
            ..self.clone()
        }
    }

    /// The same sandbox, whose processes outlive the tool (for `--keep`).
    pub fn outliving_the_tool(mut self) -> Self {
        self.dies_with_tool = false;
        self
    }

    /// Makes `dir` (outside `/usr`, e.g. a JVM's jars) visible read only at its own path;
    /// its parents inside are empty directories the account may pass through.
    pub fn with_read_only(mut self, dir: &Path) -> Self {
        self.read_only.push(dir.to_owned());
        self
    }

    /// A command running `program` (a path visible inside: under `/usr`, a read-only
    /// directory, or [`BOX`]) with `args` in this sandbox. The environment is cleared; set
    /// what the program needs with [`std::process::Command::env`] (never on its arguments,
    /// which `ps` shows).
    pub fn command(&self, program: &Path) -> std::process::Command {
        let mut command = std::process::Command::new(&self.bwrap);
        command.args(self.arguments());
        command.arg(program);
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", BOX)
            .env("LC_ALL", "C.UTF-8")
            .env("TMPDIR", "/tmp");
        command
    }

    /// The same as [`command`](Self::command), for tokio.
    pub fn tokio_command(&self, program: &Path) -> tokio::process::Command {
        tokio::process::Command::from(self.command(program))
    }

    fn arguments(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        if self.dies_with_tool {
            push(&["--die-with-parent"]);
        }
        push(&[
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            HOSTNAME,
        ]);
        if self.network == Network::Isolated {
            push(&["--unshare-net"]);
        }
        if !self.account.switch {
            push(&["--unshare-user"]);
        }
        push(&["--ro-bind", "/usr", "/usr"]);
        for link in USR_LINKS {
            let host = Path::new("/").join(link);
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&host) {
                        args.extend([
                            OsString::from("--symlink"),
                            target.into_os_string(),
                            host.into_os_string(),
                        ]);
                    }
                }
                Ok(m) if m.is_dir() => {
                    args.extend([
                        OsString::from("--ro-bind"),
                        host.clone().into_os_string(),
                        host.into_os_string(),
                    ]);
                }
                _ => {}
            }
        }
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        // Directories bubblewrap creates on its own are private to root (0700).
        push(&["--perms", "0755", "--dir", "/etc"]);
        for path in ETC_READ_ONLY {
            push(&["--ro-bind-try", path, path]);
        }
        let pair = |flag: &str, host: &Path, inside: &Path| {
            [
                OsString::from(flag),
                host.as_os_str().to_owned(),
                inside.as_os_str().to_owned(),
            ]
        };
        args.extend(pair("--ro-bind", &self.passwd, Path::new("/etc/passwd")));
        args.extend(pair("--ro-bind", &self.group, Path::new("/etc/group")));
        args.extend(pair("--ro-bind", &self.hosts, Path::new("/etc/hosts")));
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        push(&["--proc", "/proc", "--dev", "/dev"]);
        push(&[
            "--size",
            &TMP_BYTES.to_string(),
            "--perms",
            "1777",
            "--tmpfs",
            "/tmp",
        ]);
        for dir in &self.read_only {
            // Parents bubblewrap creates on its own are private to root (0700), which the
            // account could not pass through.
            let mut parents: Vec<&Path> = dir
                .ancestors()
                .skip(1)
                .filter(|p| *p != Path::new("/") && !p.starts_with("/usr"))
                .collect();
            parents.reverse();
            for parent in parents {
                args.extend([
                    OsString::from("--perms"),
                    OsString::from("0755"),
                    OsString::from("--dir"),
                    parent.as_os_str().to_owned(),
                ]);
            }
            args.extend(pair("--ro-bind", dir, dir));
        }
        args.extend(pair("--bind", &self.box_dir, Path::new(BOX)));
        if let Some(backup) = &self.backup {
            args.extend(pair("--ro-bind", backup, Path::new(BACKUP)));
        }
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        push(&["--chdir", BOX]);
        if self.account.switch {
            // Bubblewrap keeps root's capabilities for its own set-up; setpriv then drops to
            // the fresh account, clears every capability set, and forbids regaining any.
            let uid = self.account.uid.to_string();
            let gid = self.account.gid.to_string();
            push(&[
                "--",
                "/usr/bin/setpriv",
                "--reuid",
                &uid,
                "--regid",
                &gid,
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]);
        } else {
            push(&["--cap-drop", "ALL", "--"]);
        }
        args
    }
}

/// `N` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SandboxError> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(SandboxError::Random)?;
    Ok(bytes)
}

/// A fresh password: 32 lowercase hex digits (128 random bits), safe in any URL, SQL
/// literal or configuration file without quoting.
pub fn random_password() -> Result<String, SandboxError> {
    use std::fmt::Write as _;
    let bytes = random_bytes::<16>()?;
    Ok(bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_fresh_hex() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_fresh_account_reads_only_what_others_may_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let account = Account::fresh().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive");
        std::fs::create_dir(&archive).unwrap();
        let file = archive.join("toc.dat");
        std::fs::write(&file, b"PGDMP").unwrap();
        let chmod = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        chmod(dir.path(), 0o755);
        chmod(&archive, 0o755);
        chmod(&file, 0o600);
        if !geteuid().is_root() {
            // The invoking user's own files, in a user namespace.
            assert!(account.can_read(&archive));
            return;
        }
        assert!(!account.can_read(&file));
        assert!(!account.can_read(&archive), "a 0600 file inside");
        chmod(&file, 0o644);
        assert!(account.can_read(&file));
        assert!(account.can_read(&archive));
        chmod(dir.path(), 0o700);
        assert!(!account.can_read(&file), "a parent it cannot enter");
        assert!(
            account.can_read_bound(&archive),
            "bound into the sandbox, its host parents don't count"
        );
    }

    #[test]
    fn paths_inside_the_box_are_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(sandbox) = Sandbox::prepare(
            dir.path(),
            &dir.path().join("box"),
            Account::fresh().unwrap(),
            Network::Isolated,
        ) else {
            panic!("bubblewrap is needed for the sandbox (apt-get install bubblewrap)");
        };
        assert_eq!(
            sandbox.inside(&dir.path().join("box/data")),
            Path::new("/box/data")
        );
        let args = sandbox.arguments();
        assert!(args.iter().any(|a| a == "--unshare-net"));
        assert!(args.iter().any(|a| a == "--die-with-parent"));
        let jars = Path::new("/root/.cache/jars");
        let args = sandbox.with_read_only(jars).arguments();
        let text: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = |needle: &[&str]| {
            text.windows(needle.len())
                .position(|w| w == needle)
                .unwrap_or_else(|| panic!("{needle:?} not in {text:?}"))
        };
        let root = at(&["--perms", "0755", "--dir", "/root"]);
        let cache = at(&["--perms", "0755", "--dir", "/root/.cache"]);
        let bind = at(&["--ro-bind", "/root/.cache/jars", "/root/.cache/jars"]);
        assert!(
            root < cache && cache < bind,
            "parents first, passable: {text:?}"
        );
    }
}
