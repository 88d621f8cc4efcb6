//! A readiness probe that speaks just enough of Cassandra's native protocol (version 4) to
//! get a real answer: `STARTUP`, then `SELECT release_version FROM system.local`.
//!
//! The runtime must not use the CQL driver (that is `store`, the one scylla user), and a
//! node counts as ready only once it answers a query, not once its port accepts connections.
//! Frames are built and parsed by hand; only what the probe sends and expects is understood.
//!
//! This module must not talk to the Docker engine, nor send anything but the probe.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Protocol version 4, as a request; responses carry the high bit.
const VERSION_REQUEST: u8 = 0x04;
const VERSION_RESPONSE: u8 = 0x84;
const HEADER_LEN: usize = 9;
/// Far more than the probe's answers take: a guard against reading garbage as a length.
const MAX_BODY: usize = 1024 * 1024;

const OP_ERROR: u8 = 0x00;
const OP_STARTUP: u8 = 0x01;
const OP_READY: u8 = 0x02;
const OP_AUTHENTICATE: u8 = 0x03;
const OP_QUERY: u8 = 0x07;
const OP_RESULT: u8 = 0x08;

const RESULT_ROWS: i32 = 0x0002;
const ROWS_GLOBAL_TABLES_SPEC: i32 = 0x0001;
const ROWS_HAS_MORE_PAGES: i32 = 0x0002;
const ROWS_NO_METADATA: i32 = 0x0004;
const CONSISTENCY_ONE: u16 = 0x0001;

const RELEASE_VERSION_QUERY: &str = "SELECT release_version FROM system.local";

/// What the node answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// It ran the query: its `release_version` (`None` if the row or the value was missing).
    Version(Option<String>),
    /// It asked for credentials: it is up, but the probe has none to query with.
    AuthenticationRequired,
}

/// Connects to `address`, starts a session and asks for the release version. Any error
/// (refused, reset, a CQL error such as a node still starting) means "not ready yet".
pub(super) async fn probe(address: SocketAddr) -> io::Result<Answer> {
    let mut stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    stream.write_all(&startup_frame()).await?;
    let (opcode, body) = read_frame(&mut stream).await?;
    match opcode {
        OP_READY => {}
        OP_AUTHENTICATE => return Ok(Answer::AuthenticationRequired),
        other => return Err(unexpected(other, &body, "READY")),
    }
    stream
        .write_all(&query_frame(1, RELEASE_VERSION_QUERY))
        .await?;
    let (opcode, body) = read_frame(&mut stream).await?;
    if opcode != OP_RESULT {
        return Err(unexpected(opcode, &body, "RESULT"));
    }
    Ok(Answer::Version(first_text_cell(&body)?))
}

fn frame(stream: i16, opcode: u8, body: &[u8]) -> Vec<u8> {
    let length = i32::try_from(body.len()).expect("the probe's frames are a few bytes long");
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.push(VERSION_REQUEST);
    frame.push(0); // no flags: no compression, no tracing
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.push(opcode);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

fn push_string(body: &mut Vec<u8>, s: &str) {
    let length = u16::try_from(s.len()).expect("the probe's strings are short");
    body.extend_from_slice(&length.to_be_bytes());
    body.extend_from_slice(s.as_bytes());
}

fn startup_frame() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1_u16.to_be_bytes());
    push_string(&mut body, "CQL_VERSION");
    push_string(&mut body, "3.0.0");
    frame(0, OP_STARTUP, &body)
}

fn query_frame(stream: i16, query: &str) -> Vec<u8> {
    let mut body = Vec::new();
    let length = i32::try_from(query.len()).expect("the probe's query is short");
    body.extend_from_slice(&length.to_be_bytes());
    body.extend_from_slice(query.as_bytes());
    body.extend_from_slice(&CONSISTENCY_ONE.to_be_bytes());
    body.push(0); // no query flags: no values, default page size
    frame(stream, OP_QUERY, &body)
}

async fn read_frame(stream: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut header = [0_u8; HEADER_LEN];
    stream.read_exact(&mut header).await?;
    let (opcode, length) = parse_header(&header)?;
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body).await?;
    Ok((opcode, body))
}

fn parse_header(header: &[u8; HEADER_LEN]) -> io::Result<(u8, usize)> {
    if header[0] != VERSION_RESPONSE {
        return Err(invalid(format!(
            "answered with protocol byte {:#04x}, not a version 4 response",
            header[0]
        )));
    }
    let length = i32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    let length = usize::try_from(length)
        .ok()
        .filter(|&l| l <= MAX_BODY)
        .ok_or_else(|| invalid(format!("answered a frame of {length} bytes")))?;
    Ok((header[4], length))
}

fn unexpected(opcode: u8, body: &[u8], wanted: &str) -> io::Error {
    if opcode == OP_ERROR {
        let mut reader = Reader(body);
        let code = reader.int().unwrap_or(0);
        let message = reader.string().unwrap_or_default();
        return io::Error::other(format!("answered CQL error {code:#06x}: {message}"));
    }
    invalid(format!("answered opcode {opcode:#04x} instead of {wanted}"))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The first column of the first row of a `Rows` result, as text.
fn first_text_cell(body: &[u8]) -> io::Result<Option<String>> {
    let truncated = || invalid("answered a truncated RESULT".to_owned());
    let mut reader = Reader(body);
    let kind = reader.int().ok_or_else(truncated)?;
    if kind != RESULT_ROWS {
        return Err(invalid(format!(
            "answered a RESULT of kind {kind}, not rows"
        )));
    }
    let flags = reader.int().ok_or_else(truncated)?;
    let columns = reader.int().ok_or_else(truncated)?;
    if flags & ROWS_HAS_MORE_PAGES != 0 {
        reader.bytes().ok_or_else(truncated)?;
    }
    if flags & ROWS_NO_METADATA == 0 {
        let global = flags & ROWS_GLOBAL_TABLES_SPEC != 0;
        if global {
            reader.string().ok_or_else(truncated)?;
            reader.string().ok_or_else(truncated)?;
        }
        for _ in 0..columns {
            if !global {
                reader.string().ok_or_else(truncated)?;
                reader.string().ok_or_else(truncated)?;
            }
            reader.string().ok_or_else(truncated)?;
            // A text column's type is a bare option id; anything else is not what we asked.
            let type_id = reader.short().ok_or_else(truncated)?;
            if type_id != 0x000D && type_id != 0x0001 {
                return Err(invalid(format!("answered a column of type {type_id:#06x}")));
            }
        }
    }
    let rows = reader.int().ok_or_else(truncated)?;
    if rows < 1 || columns < 1 {
        return Ok(None);
    }
    let cell = reader.bytes().ok_or_else(truncated)?;
    Ok(cell.map(|value| String::from_utf8_lossy(value).into_owned()))
}

/// Reads the protocol's big-endian notations off a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn short(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn int(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Option<String> {
        let length = self.short()?;
        self.take(usize::from(length))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// `[bytes]`: `None` when truncated, `Some(None)` for a null value.
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let length = self.int()?;
        match usize::try_from(length) {
            Ok(length) => self.take(length).map(Some),
            Err(_) => Some(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_asks_for_cql_3() {
        let frame = startup_frame();
        assert_eq!(&frame[..5], &[0x04, 0, 0, 0, OP_STARTUP]);
        let length = i32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
        assert_eq!(usize::try_from(length).unwrap(), frame.len() - HEADER_LEN);
        assert!(frame.ends_with(b"\x00\x0bCQL_VERSION\x00\x053.0.0"));
    }

    #[test]
    fn a_query_frame_carries_the_query_and_consistency_one() {
        let frame = query_frame(1, "SELECT 1");
        assert_eq!(&frame[..5], &[0x04, 0, 0, 1, OP_QUERY]);
        assert_eq!(&frame[HEADER_LEN..HEADER_LEN + 4], &8_i32.to_be_bytes());
        assert!(frame.ends_with(b"SELECT 1\x00\x01\x00"));
    }

    fn rows_body(global: bool, value: Option<&[u8]>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&RESULT_ROWS.to_be_bytes());
        let flags = if global { ROWS_GLOBAL_TABLES_SPEC } else { 0 };
        body.extend_from_slice(&flags.to_be_bytes());
        body.extend_from_slice(&1_i32.to_be_bytes());
        // With one column, the table's spec sits at the same place either way: once for the
        // whole result, or before the column's name.
        push_string(&mut body, "system");
        push_string(&mut body, "local");
        push_string(&mut body, "release_version");
        body.extend_from_slice(&0x000D_u16.to_be_bytes());
        body.extend_from_slice(&1_i32.to_be_bytes());
        match value {
            Some(v) => {
                body.extend_from_slice(&i32::try_from(v.len()).unwrap().to_be_bytes());
                body.extend_from_slice(v);
            }
            None => body.extend_from_slice(&(-1_i32).to_be_bytes()),
        }
        body
    }

    #[test]
    fn the_release_version_is_read_from_a_rows_result() {
        assert_eq!(
            first_text_cell(&rows_body(true, Some(b"5.0.6"))).unwrap(),
            Some("5.0.6".to_owned())
        );
        assert_eq!(
            first_text_cell(&rows_body(false, Some(b"4.1.3"))).unwrap(),
            Some("4.1.3".to_owned())
        );
        assert_eq!(first_text_cell(&rows_body(true, None)).unwrap(), None);
    }

    #[test]
    fn truncated_or_foreign_answers_are_errors() {
        let body = rows_body(true, Some(b"5.0.6"));
        assert!(first_text_cell(&body[..body.len() - 2]).is_err());
        assert!(first_text_cell(&1_i32.to_be_bytes()).is_err());
        let mut header = [0_u8; HEADER_LEN];
        header[0] = 0x85;
        assert!(parse_header(&header).is_err());
        header[0] = VERSION_RESPONSE;
        header[5..].copy_from_slice(&(-1_i32).to_be_bytes());
        assert!(parse_header(&header).is_err());
    }

    #[test]
    fn a_cql_error_is_reported_with_its_message() {
        let mut body = 0x1001_i32.to_be_bytes().to_vec();
        push_string(&mut body, "Bootstrapping");
        let error = unexpected(OP_ERROR, &body, "RESULT");
        assert!(error.to_string().contains("Bootstrapping"), "{error}");
    }
}
