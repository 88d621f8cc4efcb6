//! Byte pipes through the wall of a sandbox that has a network of its own.
//!
//! A Cassandra node speaks only TCP (CQL to the tool, JMX to nodetool), yet a node that has
//! loaded a backup must reach nothing on the machine and be reached by nothing but the tool.
//! So it runs in a network namespace of its own (a loopback and nothing else,
//! [`Network::Isolated`](super::sandbox::Network::Isolated)), and its ports are carried out
//! through Unix sockets the tool made in its own directory, which nobody else on the machine
//! may enter:
//!
//! - Inside the node's sandbox, [`serve`] (the tool's own binary, run as the hidden
//!   `scalardb-verify bridge` command, the sandbox's first process) accepts on listening Unix
//!   sockets the tool handed in as file descriptors, dials the server's port on the sandbox's
//!   loopback for each connection, runs the server as its child and exits with it.
//! - A client that must run confined too (nodetool, since JMX hands it remote objects to
//!   call) gets the mirror image in a sandbox of its own: [`serve`] listens on that sandbox's
//!   loopback, on the port the client expects, and dials a Unix socket bound into it.
//! - On the host, a [`HostPort`] listens on a free loopback port for the tool's own CQL driver
//!   (which speaks only TCP) and accepts a connection only when its other end is a socket of
//!   this process or of one it started: a connection from any other process on the machine is
//!   closed unread.
//!
//! This module moves bytes; it must not read, change or log them.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The first file descriptor a sandbox's listening sockets are handed in at.
pub const FIRST_FD: RawFd = 3;
/// The most connections one listener carries at once (a CQL driver opens a handful; JMX two).
const MAX_CONNECTIONS: usize = 64;

/// Where a bridge takes connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A listening Unix socket handed in at this file descriptor.
    Fd(RawFd),
    /// A TCP port on loopback.
    Tcp(SocketAddrV4),
    /// A Unix socket the bridge makes at this path (mode 0666: it is for a directory the
    /// tool mounted into a container, private to the tool's user on the host).
    Unix(PathBuf),
}

/// Where a bridge carries each connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// A TCP port on loopback.
    Tcp(SocketAddrV4),
    /// A Unix socket.
    Unix(PathBuf),
}

/// One `LISTEN=DIAL` pair: `fd:3=tcp:127.0.0.1:9042`, `tcp:127.0.0.1:7199=unix:/x/jmx.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub listen: Listen,
    pub dial: Dial,
}

/// Why a `--forward` argument is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("read the forward `{spec}`: {reason}")]
pub struct ForwardSyntax {
    spec: String,
    reason: &'static str,
}

impl FromStr for Forward {
    type Err = ForwardSyntax;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let error = |reason| ForwardSyntax {
            spec: spec.to_owned(),
            reason,
        };
        let (listen, dial) = spec
            .split_once('=')
            .ok_or_else(|| error("expected LISTEN=DIAL"))?;
        let listen = if let Some(fd) = listen.strip_prefix("fd:") {
            let fd: RawFd = fd
                .parse()
                .map_err(|_| error("fd: takes a file descriptor number"))?;
            if fd < FIRST_FD {
                return Err(error(
                    "fd: takes a descriptor above stdin, stdout and stderr",
                ));
            }
            Listen::Fd(fd)
        } else if let Some(address) = listen.strip_prefix("tcp:") {
            Listen::Tcp(loopback(address).ok_or_else(|| error("tcp: takes 127.0.0.1:PORT"))?)
        } else if let Some(path) = listen.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(error("unix: takes an absolute path"));
            }
            Listen::Unix(PathBuf::from(path))
        } else {
            return Err(error("LISTEN is fd:N, tcp:127.0.0.1:PORT or unix:PATH"));
        };
        let dial = if let Some(address) = dial.strip_prefix("tcp:") {
            Dial::Tcp(loopback(address).ok_or_else(|| error("tcp: takes 127.0.0.1:PORT"))?)
        } else if let Some(path) = dial.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(error("unix: takes an absolute path"));
            }
            Dial::Unix(PathBuf::from(path))
        } else {
            return Err(error("DIAL is tcp:127.0.0.1:PORT or unix:PATH"));
        };
        Ok(Self { listen, dial })
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.listen {
            Listen::Fd(fd) => write!(f, "fd:{fd}=")?,
            Listen::Tcp(address) => write!(f, "tcp:{address}=")?,
            Listen::Unix(path) => write!(f, "unix:{}=", path.display())?,
        }
        match &self.dial {
            Dial::Tcp(address) => write!(f, "tcp:{address}"),
            Dial::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// An IPv4 loopback `ADDRESS:PORT`.
fn loopback(text: &str) -> Option<SocketAddrV4> {
    let address: SocketAddrV4 = text.parse().ok()?;
    address.ip().is_loopback().then_some(address)
}

/// What went wrong running a bridge. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("take the listening socket handed in at file descriptor {fd}: {reason}")]
    NotAListener { fd: RawFd, reason: String },
    #[error("listen on {address}")]
    Listen {
        address: SocketAddrV4,
        #[source]
        source: io::Error,
    },
    #[error("listen on {}", path.display())]
    ListenUnix {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("give up root (become nobody, 65534)")]
    DropRoot(#[source] io::Error),
    #[error("run {}", program.display())]
    Run {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// Runs `program` with `args` (its environment and standard streams are this process's) and
/// carries every forward's connections until it exits; its exit code (128 + the signal that
/// killed it).
pub fn serve(
    forwards: &[Forward],
    drop_root: bool,
    program: &OsStr,
    args: &[OsString],
) -> Result<u8, BridgeError> {
    let mut listeners = Vec::with_capacity(forwards.len());
    for forward in forwards {
        let listener = match &forward.listen {
            Listen::Fd(fd) => Listener::Unix(adopt_listener(*fd)?),
            Listen::Tcp(address) => Listener::Tcp(TcpListener::bind(address).map_err(
                |source| BridgeError::Listen {
                    address: *address,
                    source,
                },
            )?),
            Listen::Unix(path) => {
                Listener::Unix(listen_at(path).map_err(|source| BridgeError::ListenUnix {
                    path: path.clone(),
                    source,
                })?)
            }
        };
        listeners.push((listener, forward.dial.clone()));
    }
    let run_error = |source| BridgeError::Run {
        program: PathBuf::from(program),
        source,
    };
    // The listeners were adopted close-on-exec: the program inherits none of them.
    let mut child = std::process::Command::new(program)
        .args(args)
        .spawn()
        .map_err(run_error)?;
    // Started as a container's root (whose entrypoint needs it to hand the server its
    // files), the bridge itself keeps nothing: it becomes `nobody`, every capability gone,
    // before it carries a byte.
    if drop_root && nix::unistd::geteuid().is_root() {
        become_nobody().map_err(|e| BridgeError::DropRoot(io::Error::from(e)))?;
    }
    for (listener, dial) in listeners {
        std::thread::spawn(move || match listener {
            Listener::Unix(listener) => accept_loop(listener.incoming(), &dial),
            Listener::Tcp(listener) => accept_loop(listener.incoming(), &dial),
        });
    }
    let status = child.wait().map_err(run_error)?;
    Ok(exit_code(status))
}

/// Becomes `nobody` (65534:65534, no supplementary groups); leaving root this way clears
/// every capability.
fn become_nobody() -> nix::Result<()> {
    use nix::unistd::{Gid, Uid};
    const NOBODY: u32 = 65534;
    nix::unistd::setgroups(&[])?;
    nix::unistd::setgid(Gid::from_raw(NOBODY))?;
    nix::unistd::setuid(Uid::from_raw(NOBODY))
}

/// A fresh listening socket at `path` (a socket left there by an earlier start is replaced;
/// anything else is not), which any account may dial: the directory is the tool's.
fn listen_at(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "something that is not a socket is there",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    u8::try_from(code).unwrap_or(1)
}

/// The listening Unix socket at `fd`, checked to be one and made close-on-exec.
fn adopt_listener(fd: RawFd) -> Result<UnixListener, BridgeError> {
    let not_one = |reason: String| BridgeError::NotAListener { fd, reason };
    // Only descriptors this process was started with are named here, and each is taken once.
    let borrowed = nix::fcntl::fcntl(
        // SAFETY: `fd` names a descriptor handed in by the tool (the bridge's command line is
        // built by the tool alone); fcntl on a closed one fails with EBADF and nothing else.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    );
    if let Err(e) = borrowed {
        return Err(not_one(format!("it is not open ({e})")));
    }
    // SAFETY: `fd` is open (checked above), was handed in by the tool for this bridge alone,
    // and is taken exactly once: nothing else in this process owns or closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = std::fs::File::from(owned);
    let is_socket = file
        .metadata()
        .map_err(|e| not_one(e.to_string()))?
        .file_type()
        .is_socket();
    if !is_socket {
        return Err(not_one("it is not a socket".to_owned()));
    }
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| not_one(e.to_string()))?;
    let listener = UnixListener::from(OwnedFd::from(file));
    // A Unix listener has a local address (possibly unnamed); a TCP socket has none of that
    // family, a connected stream has a peer.
    if listener.local_addr().is_err() {
        return Err(not_one("it is not a Unix socket".to_owned()));
    }
    Ok(listener)
}

/// Carries every connection `incoming` yields to `dial`, a few at a time.
fn accept_loop<S: Duplex>(incoming: impl Iterator<Item = io::Result<S>>, dial: &Dial) {
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for stream in incoming {
        let Ok(stream) = stream else { continue };
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue;
        }
        let carried = match dial {
            Dial::Tcp(address) => TcpStream::connect(address).and_then(|out| {
                // CQL frames are small and latency-bound.
                out.set_nodelay(true)?;
                pipe(stream, out, &open)
            }),
            Dial::Unix(path) => UnixStream::connect(path).and_then(|out| pipe(stream, out, &open)),
        };
        // The server is not listening yet, or gone: the client sees its connection close.
        drop(carried);
    }
}

/// A stream whose two directions can be carried by two threads.
trait Duplex: Read + Write + Send + Sized + 'static {
    fn duplicate(&self) -> io::Result<Self>;
    fn close(&self, how: Shutdown);
}

impl Duplex for TcpStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
}

impl Duplex for UnixStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
}

/// Copies `a` to `b` and `b` to `a`, one thread each, until both directions end; `open`
/// counts the pipes running.
fn pipe<A: Duplex, B: Duplex>(
    a: A,
    b: B,
    open: &Arc<std::sync::atomic::AtomicUsize>,
) -> io::Result<()> {
    let (a_back, b_back) = (a.duplicate()?, b.duplicate()?);
    open.fetch_add(1, Ordering::SeqCst);
    let done = Arc::clone(open);
    let ended = Arc::new(AtomicBool::new(false));
    let ended_back = Arc::clone(&ended);
    let finish = move |ended: &AtomicBool| {
        // The second direction to end closes the pipe's count.
        if ended.swap(true, Ordering::SeqCst) {
            done.fetch_sub(1, Ordering::SeqCst);
        }
    };
    let finish_back = finish.clone();
    std::thread::spawn(move || {
        copy_then_close(a, b_back);
        finish(&ended);
    });
    std::thread::spawn(move || {
        copy_then_close(b, a_back);
        finish_back(&ended_back);
    });
    Ok(())
}

/// Copies `from` into `to` until the end or an error, then tells both ends: `to` gets no
/// more, `from` is read no more.
fn copy_then_close<F: Duplex, T: Duplex>(mut from: F, mut to: T) {
    let _ = io::copy(&mut from, &mut to);
    to.close(Shutdown::Write);
    from.close(Shutdown::Read);
}

/// A loopback TCP port on the host, open to this process and those it started alone, whose
/// connections are
/// carried to a Unix socket (a bridge's, in the tool's own directory). Closed on drop.
#[derive(Debug)]
pub struct HostPort {
    address: SocketAddrV4,
    stopping: Arc<AtomicBool>,
}

impl HostPort {
    /// Listens on a free port of 127.0.0.1 and carries each connection from this process (or
    /// one it started) to `socket`.
    pub fn open(socket: &Path) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let address = match listener.local_addr()? {
            SocketAddr::V4(address) => address,
            SocketAddr::V6(_) => return Err(io::Error::other("bound 127.0.0.1, got IPv6")),
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopping);
        let socket = socket.to_owned();
        // Detached: dropping the port stops it (see `Drop`).
        std::thread::Builder::new()
            .name("host-port".to_owned())
            .spawn(move || {
                let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let ours = stream
                        .peer_addr()
                        .is_ok_and(|peer| is_this_process(peer, address));
                    if !ours || open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    // A socket, not a link a container that can write its directory put
                    // there to send the tool elsewhere on the host.
                    let is_socket =
                        std::fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_socket());
                    if !is_socket {
                        continue;
                    }
                    if let Ok(out) = UnixStream::connect(&socket) {
                        let _ = pipe(stream, out, &open);
                    }
                }
            })?;
        Ok(Self { address, stopping })
    }

    /// `127.0.0.1:PORT`, for this process's clients.
    pub fn address(&self) -> SocketAddrV4 {
        self.address
    }
}

impl Drop for HostPort {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which sees the flag, ends and closes the port. Not
        // joined: should the wake fail (no descriptor left), teardown must not hang on it;
        // the port then refuses every other process until this one exits.
        let _ = TcpStream::connect(self.address);
    }
}

/// Whether the TCP connection from `peer` to `local` (both on loopback) was made by a socket
/// this process or one it started holds: the kernel's socket table names the connecting
/// socket's inode, and only the descriptors of those processes are looked in. (The sandboxes
/// the tool starts have networks of their own, so none of their processes can connect here.)
fn is_this_process(peer: SocketAddr, local: SocketAddrV4) -> bool {
    let SocketAddr::V4(peer) = peer else {
        return false;
    };
    let Ok(table) = std::fs::read_to_string("/proc/self/net/tcp") else {
        return false;
    };
    let Some(inode) = socket_inode(&table, peer, local) else {
        return false;
    };
    let wanted = format!("socket:[{inode}]");
    let holds = |pid: &str| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|link| link.as_os_str() == OsStr::new(&wanted))
            })
        })
    };
    holds("self")
        || super::local::process::descendants(std::process::id())
            .iter()
            .any(|pid| holds(&pid.to_string()))
}

/// The inode of the socket `from` → `to` in a `/proc/net/tcp` table; `None` if absent (or
/// 0: a socket no process holds).
fn socket_inode(table: &str, from: SocketAddrV4, to: SocketAddrV4) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
        if table_address(local)? != from || table_address(remote)? != to {
            return None;
        }
        inode.parse::<u64>().ok().filter(|inode| *inode != 0)
    })
}

/// `0100007F:1F90` (the address as the kernel's in-memory word, the port) → 127.0.0.1:8080.
fn table_address(field: &str) -> Option<SocketAddrV4> {
    let (ip, port) = field.split_once(':')?;
    if ip.len() != 8 {
        return None;
    }
    let word = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(word.to_ne_bytes()), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_read_and_print_back() {
        for spec in [
            "fd:3=tcp:127.0.0.1:9042",
            "tcp:127.0.0.1:7199=unix:/tmp/x/jmx.sock",
            "unix:/run/s/cql.sock=tcp:127.0.0.1:9042",
        ] {
            let forward: Forward = spec.parse().unwrap();
            assert_eq!(forward.to_string(), spec);
        }
        for bad in [
            "fd:3",
            "fd:2=tcp:127.0.0.1:9042",
            "fd:x=tcp:127.0.0.1:9042",
            "tcp:10.0.0.1:9042=unix:/x",
            "tcp:127.0.0.1:1=tcp:192.168.1.1:22",
            "tcp:127.0.0.1:1=unix:relative",
            "udp:127.0.0.1:1=unix:/x",
        ] {
            assert!(bad.parse::<Forward>().is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn the_kernel_table_names_addresses_in_memory_order() {
        let loopback = u32::from_ne_bytes([127, 0, 0, 1]);
        let field = format!("{loopback:08X}:1F90");
        assert_eq!(
            table_address(&field),
            Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080))
        );
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
             0: {loopback:08X}:D431 {loopback:08X}:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 20 4 30 10 -1\n"
        );
        let from = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0xD431);
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
        assert_eq!(socket_inode(&table, from, to), Some(4242));
        assert_eq!(socket_inode(&table, to, from), None);
    }

    /// A Unix echo server in a temporary directory.
    fn echo_server(dir: &Path) -> PathBuf {
        let path = dir.join("echo.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut back = stream.try_clone().unwrap();
                    let _ = io::copy(&mut &stream, &mut back);
                });
            }
        });
        path
    }

    #[test]
    fn a_host_port_carries_this_process_and_refuses_every_other() {
        let dir = tempfile::tempdir().unwrap();
        let port = HostPort::open(&echo_server(dir.path())).unwrap();
        let mut ours = TcpStream::connect(port.address()).unwrap();
        ours.write_all(b"ping").unwrap();
        let mut echoed = [0u8; 4];
        ours.read_exact(&mut echoed).unwrap();
        assert_eq!(&echoed, b"ping");

        // A process this one started is admitted...
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{}; printf ping >&3; timeout 5 head -c 4 <&3",
            port.address().port()
        );
        let child = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&child.stdout), "ping");
        // ...one that is not ours (started by a process that has exited, so the machine's
        // init is its parent) is closed unread: nothing comes back.
        let out = tempfile::NamedTempFile::new().unwrap();
        let orphan = format!(
            "(sleep 0.3; exec 3<>/dev/tcp/127.0.0.1/{}; echo connected; printf ping >&3; \
             timeout 5 head -c 4 <&3; echo; echo done) >{} 2>&1 </dev/null & disown",
            port.address().port(),
            out.path().display()
        );
        std::process::Command::new("setsid")
            .args(["bash", "-c", &orphan])
            .status()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let orphaned = loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let text = std::fs::read_to_string(out.path()).unwrap();
            if text.contains("done") || std::time::Instant::now() > deadline {
                break text;
            }
        };
        assert!(
            orphaned.starts_with("connected\n") && orphaned.ends_with("done\n"),
            "the other process did not run to its end: {orphaned:?}"
        );
        assert!(
            !orphaned.contains("ping"),
            "another process got an answer: {orphaned:?}"
        );
        // And ours still works after it.
        ours.write_all(b"pong").unwrap();
        ours.read_exact(&mut echoed).unwrap();
        assert_eq!(&echoed, b"pong");
        drop(port);
    }
}
