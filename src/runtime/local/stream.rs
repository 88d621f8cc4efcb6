//! Feeding a client in the sandbox, and what comes back: the tool reads the backup and
//! streams it to the client's standard input (the sandbox never sees the file), counting
//! bytes against a limit, and keeps only the end of the client's standard error.
//!
//! Owns the one copy loop; it interprets nothing in the stream but the two psql commands
//! that switch restricted mode, which it removes so that the tool's own restriction holds.

use std::io::{self, Read, Seek as _, SeekFrom};
use std::path::Path;
use std::process::{ExitStatus, Stdio};

/// How many bytes a restore may feed its client. `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreLimit(Option<u64>);

impl RestoreLimit {
    pub fn unlimited() -> Self {
        Self(None)
    }

    pub fn bytes(limit: u64) -> Self {
        Self(Some(limit))
    }

    pub fn get(self) -> Option<u64> {
        self.0
    }
}

/// The error a [`Limited`] reader returns once its limit is passed.
#[derive(Debug, thiserror::Error)]
#[error("the input is larger than {limit} bytes")]
pub struct TooLarge {
    pub limit: u64,
}

/// What a client gets on its standard input.
pub(super) struct Input {
    reader: Option<Box<dyn Read + Send>>,
}

impl Input {
    pub(super) fn none() -> Self {
        Self { reader: None }
    }

    pub(super) fn plain(reader: Box<dyn Read + Send>, limit: RestoreLimit) -> Self {
        Self {
            reader: Some(Box::new(Limited::new(reader, limit))),
        }
    }

    /// psql input that starts in restricted mode under `key`, which the input cannot know:
    /// no backslash command after the first line runs. A dump's own `\restrict` and
    /// `\unrestrict` lines (pg_dump writes them since 17.6) are removed, since restricted
    /// psql refuses a second `\restrict`.
    pub(super) fn restricted(reader: Box<dyn Read + Send>, key: &str, limit: RestoreLimit) -> Self {
        let first = io::Cursor::new(format!("\\restrict {key}\n").into_bytes());
        let body = DropRestrictLines::new(Limited::new(reader, limit));
        Self {
            reader: Some(Box::new(first.chain(body))),
        }
    }
}

/// How a client ended.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) status: ExitStatus,
    /// The end of its standard error, lossily decoded.
    pub(super) stderr: String,
    /// Set when the input passed its limit: the client got only part of it.
    pub(super) too_large: Option<u64>,
}

/// Runs `command` with `input` on its standard input, its standard output discarded and
/// the last `stderr_limit` bytes of its standard error kept.
pub(super) async fn run(
    mut command: std::process::Command,
    input: Input,
    stderr_limit: usize,
) -> io::Result<Outcome> {
    command
        .stdin(if input.reader.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || run_blocking(command, input, stderr_limit))
        .await
        .map_err(io::Error::other)?
}

fn run_blocking(
    mut command: std::process::Command,
    input: Input,
    stderr_limit: usize,
) -> io::Result<Outcome> {
    let mut child = command.spawn()?;
    let stdin = child.stdin.take();
    let feeder = match (stdin, input.reader) {
        (Some(mut stdin), Some(mut reader)) => Some(std::thread::spawn(move || {
            // Dropping stdin at the end (or on an error) is the client's end of input.
            match io::copy(&mut reader, &mut stdin) {
                Ok(_) => None,
                Err(e) => e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<TooLarge>())
                    .map(|too_large| too_large.limit),
            }
        })),
        _ => None,
    };
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        let mut chunk = vec![0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    stderr.extend_from_slice(&chunk[..n]);
                    if stderr.len() > 2 * stderr_limit {
                        stderr.drain(..stderr.len() - stderr_limit);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    let status = child.wait()?;
    // A write error other than the limit means the client exited early; its status and
    // stderr say why.
    let too_large = feeder.and_then(|f| f.join().ok().flatten());
    let start = stderr.len().saturating_sub(stderr_limit);
    Ok(Outcome {
        status,
        stderr: String::from_utf8_lossy(&stderr[start..]).into_owned(),
        too_large,
    })
}

/// The last `limit` bytes of the file at `path`, lossily decoded.
pub(super) fn read_tail(path: &Path, limit: usize) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let length = file.seek(SeekFrom::End(0))?;
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    file.seek(SeekFrom::Start(length.saturating_sub(limit)))?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A reader that fails with [`TooLarge`] once more than its limit has been read.
pub struct Limited<R> {
    inner: R,
    read: u64,
    limit: RestoreLimit,
}

impl<R> Limited<R> {
    pub fn new(inner: R, limit: RestoreLimit) -> Self {
        Self {
            inner,
            read: 0,
            limit,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self
            .read
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        match self.limit.get() {
            Some(limit) if self.read > limit => Err(io::Error::other(TooLarge { limit })),
            _ => Ok(n),
        }
    }
}

const RESTRICT: &[u8] = b"\\restrict ";
const UNRESTRICT: &[u8] = b"\\unrestrict ";

/// Where [`DropRestrictLines`] is in the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// At a line's start, holding the first bytes until they decide the line.
    Start,
    /// Passing the rest of a line through.
    Pass,
    /// Discarding a `\restrict`/`\unrestrict` line up to its newline.
    Drop,
}

/// Removes lines starting with `\restrict ` or `\unrestrict `, passing every other byte
/// through unchanged and buffering at most a few bytes of any line, however long.
struct DropRestrictLines<R> {
    inner: R,
    state: LineState,
    /// The held start of the current line (shorter than the longer prefix).
    probe: Vec<u8>,
    /// Bytes ready to hand out, and how far they have been.
    out: Vec<u8>,
    out_pos: usize,
    chunk: Vec<u8>,
    eof: bool,
}

impl<R: Read> DropRestrictLines<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            state: LineState::Start,
            probe: Vec::with_capacity(UNRESTRICT.len()),
            out: Vec::new(),
            out_pos: 0,
            chunk: vec![0; 64 * 1024],
            eof: false,
        }
    }

    fn process(&mut self, n: usize) {
        let mut i = 0;
        while i < n {
            let byte = self.chunk[i];
            match self.state {
                LineState::Pass => {
                    let rest = &self.chunk[i..n];
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(at) => {
                            self.out.extend_from_slice(&rest[..=at]);
                            i += at + 1;
                            self.state = LineState::Start;
                        }
                        None => {
                            self.out.extend_from_slice(rest);
                            i = n;
                        }
                    }
                }
                LineState::Drop => match self.chunk[i..n].iter().position(|&b| b == b'\n') {
                    Some(at) => {
                        i += at + 1;
                        self.state = LineState::Start;
                    }
                    None => i = n,
                },
                LineState::Start => {
                    self.probe.push(byte);
                    i += 1;
                    if self.probe == RESTRICT || self.probe == UNRESTRICT {
                        self.probe.clear();
                        self.state = LineState::Drop;
                    } else if !RESTRICT.starts_with(&self.probe)
                        && !UNRESTRICT.starts_with(&self.probe)
                    {
                        self.out.append(&mut self.probe);
                        self.state = if byte == b'\n' {
                            LineState::Start
                        } else {
                            LineState::Pass
                        };
                    }
                }
            }
        }
    }
}

impl<R: Read> Read for DropRestrictLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.eof {
                return Ok(0);
            }
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                self.eof = true;
                // A last line that is only the start of a prefix is ordinary text.
                self.out.append(&mut self.probe);
            } else {
                self.process(n);
            }
        }
        let n = (self.out.len() - self.out_pos).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
fn filtered(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    DropRestrictLines::new(input).read_to_end(&mut out).unwrap();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restrict_lines_are_dropped_and_nothing_else_changes() {
        let dump = b"--\n\\restrict abc\nSET x = 1;\n\\!  echo no\nSELECT '\\restrict x';\n\\unrestrict abc\n\\restric\n";
        assert_eq!(
            filtered(dump),
            b"--\nSET x = 1;\n\\!  echo no\nSELECT '\\restrict x';\n\\restric\n".to_vec()
        );
        assert_eq!(filtered(b"\\re"), b"\\re".to_vec());
        assert_eq!(filtered(b""), b"".to_vec());
        assert_eq!(filtered(b"\n\n"), b"\n\n".to_vec());
    }

    #[test]
    fn long_lines_pass_through_in_pieces() {
        let mut dump = vec![b'x'; 1_000_000];
        dump.push(b'\n');
        dump.extend_from_slice(b"\\unrestrict k\nend\n");
        let mut expected = vec![b'x'; 1_000_000];
        expected.extend_from_slice(b"\nend\n");
        assert_eq!(filtered(&dump), expected);
    }

    #[test]
    fn a_reader_past_its_limit_fails_with_too_large() {
        let mut reader = Limited::new(&[0u8; 100][..], RestoreLimit::bytes(10));
        let error = io::copy(&mut reader, &mut io::sink()).unwrap_err();
        let too_large = error.get_ref().and_then(|e| e.downcast_ref::<TooLarge>());
        assert_eq!(too_large.map(|t| t.limit), Some(10));
        let mut reader = Limited::new(&[0u8; 100][..], RestoreLimit::bytes(100));
        assert_eq!(io::copy(&mut reader, &mut io::sink()).unwrap(), 100);
    }
}
