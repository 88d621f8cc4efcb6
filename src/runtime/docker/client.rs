//! The one door to the Docker engine: a crate-private facade over bollard.
//!
//! Every engine operation the docker runtime needs is one method here, and each maps its
//! failure to its own [`DockerRuntimeError`] variant, carrying the container or image it was
//! about. bollard's types stop at this file: callers pass and get plain Rust values, and a
//! bollard error travels only as the opaque [`EngineError`].
//!
//! This module must not know about database engines, ports or readiness.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWriteExt as _};

use super::DockerRuntimeError;

/// Where the engine is when `DOCKER_HOST` is unset.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// Ordinary requests: everything but uploads, which take as long as the archive does.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// An upload is answered only once the engine has unpacked all of it.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// How long the engine may take to record an exec's exit code after its output ends.
const EXEC_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// An error from the Docker engine or the connection to it. Opaque: its message is the
/// engine's, and nothing outside this module depends on the client library.
pub struct EngineError(bollard::errors::Error);

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl EngineError {
    fn status(&self) -> Option<u16> {
        match &self.0 {
            bollard::errors::Error::DockerResponseServerError { status_code, .. } => {
                Some(*status_code)
            }
            _ => None,
        }
    }

    fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

fn engine(error: bollard::errors::Error) -> EngineError {
    EngineError(error)
}

/// What a container is created from. The image's own entrypoint runs `cmd`.
#[derive(Debug, Clone)]
pub(super) struct ContainerSpec {
    pub(super) name: String,
    pub(super) image: String,
    /// `None`: the image's own entrypoint.
    pub(super) entrypoint: Option<Vec<String>>,
    /// `None`: the engine's (the container id, which only a network of the engine's names).
    pub(super) hostname: Option<String>,
    pub(super) cmd: Vec<String>,
    pub(super) env: Vec<String>,
    pub(super) labels: HashMap<String, String>,
    pub(super) stop_signal: Option<String>,
}

/// How a container is confined: no capabilities beyond those the images' entrypoints need
/// to drop to their server account, no new privileges, a pids limit, no network but a
/// loopback of its own, one host directory mounted for the server's socket (and, for a
/// Cassandra node, the tool's binary read only, which carries its CQL port to that socket).
#[derive(Debug, Clone, Default)]
pub(super) struct Confinement {
    /// `none`.
    pub(super) network_mode: String,
    /// Host directories mounted read-write: `(host path, container path)`.
    pub(super) binds: Vec<(String, String)>,
    /// Host files or directories mounted read only: `(host path, container path)`.
    pub(super) read_only_binds: Vec<(String, String)>,
    /// `None`: the engine's default capabilities.
    pub(super) capabilities: Option<Vec<String>>,
    pub(super) no_new_privileges: bool,
    pub(super) pids_limit: Option<i64>,
}

impl Confinement {
    /// No network at all, `bind` the only host mount, and only `capabilities`.
    pub(super) fn isolated(bind: (String, String), capabilities: &[&str], pids_limit: i64) -> Self {
        Self {
            network_mode: "none".to_owned(),
            binds: vec![bind],
            read_only_binds: Vec::new(),
            capabilities: Some(capabilities.iter().map(|&c| c.to_owned()).collect()),
            no_new_privileges: true,
            pids_limit: Some(pids_limit),
        }
    }

    fn host_config(&self) -> HostConfig {
        HostConfig {
            network_mode: Some(self.network_mode.clone()),
            // Mounts rather than `binds` strings, which a `:` in a path would break.
            mounts: (!self.binds.is_empty() || !self.read_only_binds.is_empty()).then(|| {
                let writable = self.binds.iter().map(|bind| (bind, false));
                let read_only = self.read_only_binds.iter().map(|bind| (bind, true));
                writable
                    .chain(read_only)
                    .map(|((source, target), read_only)| Mount {
                        source: Some(source.clone()),
                        target: Some(target.clone()),
                        typ: Some(MountType::BIND),
                        read_only: read_only.then_some(true),
                        ..Default::default()
                    })
                    .collect()
            }),
            cap_drop: self.capabilities.as_ref().map(|_| vec!["ALL".to_owned()]),
            cap_add: self.capabilities.clone(),
            security_opt: self
                .no_new_privileges
                .then(|| vec!["no-new-privileges".to_owned()]),
            pids_limit: self.pids_limit,
            ..Default::default()
        }
    }
}

/// A container's state as the engine reports it.
#[derive(Debug, Clone)]
pub(super) struct ContainerState {
    pub(super) running: bool,
    /// `created`, `running`, `exited`, ...
    pub(super) status: String,
    pub(super) exit_code: Option<i64>,
}

/// One labelled container, from a listing.
#[derive(Debug, Clone)]
pub(super) struct ListedContainer {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) image: Option<String>,
    pub(super) state: Option<String>,
    pub(super) labels: HashMap<String, String>,
}

/// What an exec'd command did. Each stream keeps at most its last `limit` bytes.
#[derive(Debug, Clone)]
pub(super) struct ExecResult {
    pub(super) exit_code: i64,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

/// A command to run in a container.
pub(super) struct ExecRequest<'a> {
    pub(super) cmd: Vec<String>,
    pub(super) env: Vec<String>,
    /// The account it runs as (`name`, `uid` or `uid:gid`). `None`: the image's default
    /// user.
    pub(super) user: Option<String>,
    /// Copied to the command's stdin, which is then closed. `None`: no stdin at all.
    pub(super) stdin: Option<Box<dyn AsyncRead + Send + Unpin + 'a>>,
    /// The most of each output stream kept, from its end.
    pub(super) limit: usize,
}

/// A connection to the Docker engine, at a negotiated API version.
#[derive(Clone)]
pub(super) struct Client {
    docker: Docker,
    host: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("host", &self.host).finish()
    }
}

impl Client {
    /// Connects to the engine at `DOCKER_HOST` (or the default socket) and agrees on an API
    /// version with it, within `timeout`.
    pub(super) async fn connect(timeout: Duration) -> Result<Self, DockerRuntimeError> {
        let host = engine_host();
        let docker = Docker::connect_with_defaults()
            .map_err(|source| DockerRuntimeError::Connect {
                host: host.clone(),
                source: engine(source),
            })?
            .with_timeout(REQUEST_TIMEOUT);
        // bollard speaks a newer API than many engines (Debian bookworm's dockerd stops at
        // 1.41), and an engine refuses requests newer than it knows.
        let docker = match tokio::time::timeout(timeout, docker.negotiate_version()).await {
            Ok(Ok(docker)) => docker,
            Ok(Err(source)) => {
                return Err(DockerRuntimeError::Unreachable {
                    host,
                    timeout,
                    source: Some(engine(source)),
                });
            }
            Err(_elapsed) => {
                return Err(DockerRuntimeError::Unreachable {
                    host,
                    timeout,
                    source: None,
                });
            }
        };
        Ok(Self { docker, host })
    }

    /// Whether the engine answers a ping within `timeout`.
    pub(super) async fn ping(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.docker.ping()).await,
            Ok(Ok(_))
        )
    }

    /// The entrypoint `image` declares (empty when it declares none).
    pub(super) async fn image_entrypoint(
        &self,
        image: &str,
    ) -> Result<Vec<String>, DockerRuntimeError> {
        let inspected = self.docker.inspect_image(image).await.map_err(|source| {
            DockerRuntimeError::InspectImage {
                image: image.to_owned(),
                source: engine(source),
            }
        })?;
        Ok(inspected
            .config
            .and_then(|config| config.entrypoint)
            .unwrap_or_default())
    }

    pub(super) async fn image_exists(&self, image: &str) -> Result<bool, DockerRuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = engine(e);
                if e.is_not_found() {
                    Ok(false)
                } else {
                    Err(DockerRuntimeError::InspectImage {
                        image: image.to_owned(),
                        source: e,
                    })
                }
            }
        }
    }

    /// Pulls `image` from its registry.
    pub(super) async fn pull(&self, image: &str) -> Result<(), DockerRuntimeError> {
        let (name, tag) = split_reference(image);
        let mut options = CreateImageOptionsBuilder::new().from_image(name);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        let options = options.build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|source| DockerRuntimeError::PullImage {
                image: image.to_owned(),
                source: engine(source),
            })?;
        }
        Ok(())
    }

    /// Creates a container confined as `confinement` says.
    pub(super) async fn create_confined_container(
        &self,
        spec: &ContainerSpec,
        confinement: &Confinement,
    ) -> Result<String, DockerRuntimeError> {
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            hostname: spec.hostname.clone(),
            cmd: Some(spec.cmd.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            stop_signal: spec.stop_signal.clone(),
            // Never a bridge: some hosts forbid creating one on a private range.
            host_config: Some(confinement.host_config()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|source| DockerRuntimeError::CreateContainer {
                image: spec.image.clone(),
                name: spec.name.clone(),
                source: engine(source),
            })?;
        Ok(created.id)
    }

    pub(super) async fn start_container(&self, id: &str) -> Result<(), DockerRuntimeError> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|source| DockerRuntimeError::StartContainer {
                container: id.to_owned(),
                source: engine(source),
            })
    }

    pub(super) async fn container_state(
        &self,
        id: &str,
    ) -> Result<ContainerState, DockerRuntimeError> {
        let inspected = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|source| DockerRuntimeError::InspectContainer {
                container: id.to_owned(),
                source: engine(source),
            })?;
        let state = inspected.state.unwrap_or_default();
        Ok(ContainerState {
            running: state.running.unwrap_or(false),
            status: state
                .status
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            exit_code: state.exit_code,
        })
    }

    /// The last `lines` lines of the container's stdout and stderr, interleaved as written.
    pub(super) async fn logs_tail(
        &self,
        id: &str,
        lines: usize,
    ) -> Result<String, DockerRuntimeError> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| DockerRuntimeError::ContainerLogs {
                container: id.to_owned(),
                source: engine(source),
            })?;
            text.push_str(&String::from_utf8_lossy(chunk.as_ref()));
        }
        Ok(text)
    }

    /// Runs a command in a running container as `request.user`, feeding its stdin, and
    /// waits for its exit code.
    pub(super) async fn exec(
        &self,
        id: &str,
        request: ExecRequest<'_>,
    ) -> Result<ExecResult, DockerRuntimeError> {
        let command = request.cmd.join(" ");
        let created = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(request.stdin.is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    // No TTY: stdout and stderr stay apart, and the input is not echoed.
                    tty: Some(false),
                    env: Some(request.env),
                    cmd: Some(request.cmd),
                    user: request.user,
                    ..Default::default()
                },
            )
            .await
            .map_err(|source| DockerRuntimeError::CreateExec {
                container: id.to_owned(),
                command: command.clone(),
                source: engine(source),
            })?;
        let exec_error = |source| DockerRuntimeError::Exec {
            container: id.to_owned(),
            command: command.clone(),
            source: engine(source),
        };
        let started = self
            .docker
            .start_exec(&created.id, Some(StartExecOptions::default()))
            .await
            .map_err(exec_error)?;
        let StartExecResults::Attached { output, mut input } = started else {
            unreachable!("an exec started without `detach` is attached");
        };

        let feed = async {
            let Some(mut stdin) = request.stdin else {
                return Ok(());
            };
            let copied = tokio::io::copy(&mut stdin, &mut input).await;
            // EOF for the command either way. After a failed read it then runs what it got;
            // the error is reported all the same.
            let _ = input.shutdown().await;
            match copied {
                Ok(_) => Ok(()),
                // The command may exit without reading all of its input; its exit code and
                // stderr say why, so a failed write is not the error to report.
                Err(e) if is_write_side(&e) => Ok(()),
                Err(e) => Err(e),
            }
        };
        let drain = drain_output(output, request.limit);
        // Fed and drained together: a command blocked on a full output pipe would otherwise
        // never read the rest of its input. The output ends when the command exits, and then
        // the feed stops too: the engine no longer reads the input of a command that exited
        // without reading all of it, so a write would block until the engine times out.
        tokio::pin!(feed, drain);
        let mut fed = Ok(());
        let mut feeding = true;
        let drained = loop {
            tokio::select! {
                result = &mut feed, if feeding => {
                    fed = result;
                    feeding = false;
                }
                drained = &mut drain => break drained,
            }
        };
        fed.map_err(|source| DockerRuntimeError::ExecInput {
            container: id.to_owned(),
            command: command.clone(),
            source,
        })?;
        let (stdout, stderr) = drained.map_err(exec_error)?;

        let exit_code = self.exec_exit_code(id, &created.id, &command).await?;
        Ok(ExecResult {
            exit_code,
            stdout,
            stderr,
        })
    }

    /// The exit code of a finished exec, waiting briefly for the engine to record it.
    async fn exec_exit_code(
        &self,
        container: &str,
        exec_id: &str,
        command: &str,
    ) -> Result<i64, DockerRuntimeError> {
        let deadline = tokio::time::Instant::now() + EXEC_EXIT_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        loop {
            let inspected = self.docker.inspect_exec(exec_id).await.map_err(|source| {
                DockerRuntimeError::InspectExec {
                    container: container.to_owned(),
                    command: command.to_owned(),
                    source: Some(engine(source)),
                }
            })?;
            if let (false, Some(code)) = (inspected.running == Some(true), inspected.exit_code) {
                return Ok(code);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DockerRuntimeError::InspectExec {
                    container: container.to_owned(),
                    command: command.to_owned(),
                    source: None,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Unpacks a tar archive, streamed from `tar`, into the directory `dir` of the container.
    pub(super) async fn upload(
        &self,
        id: &str,
        dir: &str,
        tar: impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    ) -> Result<(), DockerRuntimeError> {
        let options = UploadToContainerOptionsBuilder::new().path(dir).build();
        self.docker
            .clone()
            .with_timeout(UPLOAD_TIMEOUT)
            .upload_to_container(id, Some(options), bollard::body_try_stream(tar))
            .await
            .map_err(|source| DockerRuntimeError::Upload {
                container: id.to_owned(),
                dir: dir.to_owned(),
                source: engine(source),
            })
    }

    /// Unpacks a small tar archive held in memory into the directory `dir` of the container
    /// (which may be created but not yet started).
    pub(super) async fn upload_bytes(
        &self,
        id: &str,
        dir: &str,
        tar: Vec<u8>,
    ) -> Result<(), DockerRuntimeError> {
        let chunk: Result<Bytes, io::Error> = Ok(Bytes::from(tar));
        self.upload(id, dir, futures::stream::iter([chunk])).await
    }

    /// Kills and removes a container with its anonymous volumes (official database images
    /// declare one for the data directory). `Ok(false)`: it was already gone.
    pub(super) async fn remove_container(&self, id: &str) -> Result<bool, DockerRuntimeError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = engine(e);
                // 404: gone. 409: a removal is already in progress (a concurrent sweep).
                if e.is_not_found() || e.status() == Some(409) {
                    Ok(false)
                } else {
                    Err(DockerRuntimeError::RemoveContainer {
                        container: id.to_owned(),
                        source: e,
                    })
                }
            }
        }
    }

    /// Every container, running or not, carrying all of `labels` (`key=value`).
    pub(super) async fn list_labelled(
        &self,
        labels: &[String],
    ) -> Result<Vec<ListedContainer>, DockerRuntimeError> {
        let filters = HashMap::from([("label", labels.to_vec())]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|source| DockerRuntimeError::ListContainers {
                source: engine(source),
            })?;
        Ok(listed
            .into_iter()
            .filter_map(|c| {
                Some(ListedContainer {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|names| names.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_owned()),
                    image: c.image,
                    state: c.state.map(|s| s.to_string()),
                    labels: c.labels.unwrap_or_default(),
                })
            })
            .collect())
    }
}

/// Where the engine is: `DOCKER_HOST`, or the default socket.
pub(super) fn engine_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_HOST.to_owned())
}

/// An image reference as the pull API wants it: the name, and the tag (`latest` when none is
/// given, since no tag at all would pull every tag). A digest stays in the name.
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    // A colon after the last slash starts the tag; one before it is a registry's port.
    let last_component = image.rfind('/').map_or(0, |slash| slash + 1);
    match image[last_component..].rfind(':') {
        Some(colon) => {
            let colon = last_component + colon;
            (&image[..colon], Some(&image[colon + 1..]))
        }
        None => (image, Some("latest")),
    }
}

/// Whether a copy into the exec's stdin failed on the writing side (the command went away)
/// rather than on reading the input.
fn is_write_side(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
    )
}

/// Collects an exec's stdout and stderr, keeping the last `limit` bytes of each.
async fn drain_output(
    mut output: std::pin::Pin<
        Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    limit: usize,
) -> Result<(Vec<u8>, Vec<u8>), bollard::errors::Error> {
    let mut stdout = TailBuffer::new(limit);
    let mut stderr = TailBuffer::new(limit);
    while let Some(chunk) = output.next().await {
        match chunk? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.push(&message);
            }
            LogOutput::StdErr { message } => stderr.push(&message),
            LogOutput::StdIn { .. } => {}
        }
    }
    Ok((stdout.into_bytes(), stderr.into_bytes()))
}

/// The last `limit` bytes written to it.
struct TailBuffer {
    bytes: Vec<u8>,
    limit: usize,
}

impl TailBuffer {
    fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        // Trimmed in batches, so a long stream of small chunks is not quadratic.
        if self.bytes.len() > self.limit.saturating_mul(2).max(4096) {
            let excess = self.bytes.len() - self.limit;
            self.bytes.drain(..excess);
        }
    }

    fn into_bytes(mut self) -> Vec<u8> {
        let excess = self.bytes.len().saturating_sub(self.limit);
        self.bytes.drain(..excess);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_buffer_keeps_the_last_bytes() {
        let mut tail = TailBuffer::new(10);
        for i in 0..10_000u32 {
            tail.push(format!("{:04}", i % 10_000).as_bytes());
        }
        assert_eq!(tail.into_bytes(), b"9799989999");
    }

    #[test]
    fn tail_buffer_keeps_everything_under_the_limit() {
        let mut tail = TailBuffer::new(100);
        tail.push(b"abc");
        tail.push(b"def");
        assert_eq!(tail.into_bytes(), b"abcdef");
    }

    #[test]
    fn a_pull_names_one_tag() {
        assert_eq!(split_reference("postgres:16"), ("postgres", Some("16")));
        assert_eq!(split_reference("postgres"), ("postgres", Some("latest")));
        assert_eq!(
            split_reference("registry.local:5000/db/mysql"),
            ("registry.local:5000/db/mysql", Some("latest"))
        );
        assert_eq!(
            split_reference("registry.local:5000/mysql:8.4"),
            ("registry.local:5000/mysql", Some("8.4"))
        );
        assert_eq!(
            split_reference("postgres@sha256:abcd"),
            ("postgres@sha256:abcd", None)
        );
    }

    #[test]
    fn engine_errors_are_send_and_sync() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<EngineError>();
    }
}
