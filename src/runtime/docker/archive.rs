//! Host files and directories as a tar stream, for uploading into a container.
//!
//! The archive is built on a blocking thread and streamed in chunks, so an upload of a
//! multi-gigabyte `pg_dump` directory never sits in memory. Owners and times are left out
//! (every entry belongs to root and is readable by all), so any user in the container can
//! read what was uploaded. Backup files (a dump, the files of a directory archive, a
//! Cassandra snapshot's components) are read only through [`open_regular`]: never through a
//! link, never from a FIFO. Secrets are
//! small in-memory archives of a private directory, root's or the server account's.
//!
//! This module must not talk to the engine; it only produces bytes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use crate::backup::cassandra::open_regular;

/// The size of one streamed chunk.
const CHUNK: usize = 256 * 1024;
/// Chunks built ahead of the upload.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A tar archive of `source` under `top/name`, where `top` is a fresh directory.
///
/// Returns the byte stream and a handle on the builder's result: when the stream ends early
/// or with an error, the handle says why (a file that could not be read, say).
pub(super) fn tar_stream(
    source: PathBuf,
    top: String,
    name: String,
) -> (
    impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    stream_with(move |writer| write_archive(writer, &source, &top, &name))
}

/// A tar archive of `files` (regular files, by path) under `top/dir/<file name>`, where
/// `top` is a fresh directory and `dir` a relative path of one or more components. Each file
/// is opened with [`open_regular`]: a symbolic link or anything but a regular file fails the
/// archive, naming it. Streamed like [`tar_stream`].
pub(super) fn files_stream(
    files: Vec<PathBuf>,
    top: String,
    dir: String,
) -> (
    impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    stream_with(move |writer| write_files(writer, &files, &top, &dir))
}

/// A tar archive of a directory `dir` holding one file `name` with `contents`, both root's
/// alone (0700 and 0400): a secret for the container's entrypoint, which reads it as root.
/// Small, so built in memory.
pub(super) fn secret_archive(dir: &str, name: &str, contents: &[u8]) -> io::Result<Vec<u8>> {
    private_dir_archive(dir, 0, 0o400, &[(name, contents)])
}

/// A tar archive of a directory `dir` holding `files` (name, contents), all owned by the
/// account `owner` (uid and gid) and readable by it alone (0700 and 0600): secrets for a
/// server that runs as that account and reads them itself. Small, so built in memory.
pub(super) fn owned_secret_archive(
    dir: &str,
    owner: u64,
    files: &[(&str, &[u8])],
) -> io::Result<Vec<u8>> {
    private_dir_archive(dir, owner, 0o600, files)
}

fn private_dir_archive(
    dir: &str,
    owner: u64,
    file_mode: u32,
    files: &[(&str, &[u8])],
) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o700);
    header.set_uid(owner);
    header.set_gid(owner);
    header.set_size(0);
    builder.append_data(&mut header, format!("{dir}/"), io::empty())?;
    for (name, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(file_mode);
        header.set_uid(owner);
        header.set_gid(owner);
        header.set_size(u64::try_from(contents.len()).map_err(io::Error::other)?);
        builder.append_data(&mut header, format!("{dir}/{name}"), *contents)?;
    }
    builder.into_inner()
}

fn stream_with(
    write: impl FnOnce(&mut ChannelWriter) -> io::Result<()> + Send + 'static,
) -> (
    impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let builder = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            sender,
            buffer: Vec::with_capacity(CHUNK),
        };
        let result = write(&mut writer);
        match &result {
            Ok(()) => writer.flush_chunk(),
            // Ends the stream with the error, so the engine never unpacks half an archive
            // as if it were all of it.
            Err(e) => {
                let _ = writer
                    .sender
                    .blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                Ok(())
            }
        }
        .and(result)
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    (stream, builder)
}

fn append_dir(builder: &mut tar::Builder<&mut ChannelWriter>, path: &str) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    builder.append_data(&mut header, format!("{path}/"), io::empty())
}

fn write_files(
    writer: &mut ChannelWriter,
    files: &[PathBuf],
    top: &str,
    dir: &str,
) -> io::Result<()> {
    let mut builder = tar::Builder::new(writer);
    builder.mode(tar::HeaderMode::Deterministic);
    // Every directory on the way has its own entry, so none is left to the engine's defaults.
    let mut path = top.to_owned();
    append_dir(&mut builder, &path)?;
    for component in dir.split('/').filter(|c| !c.is_empty()) {
        path = format!("{path}/{component}");
        append_dir(&mut builder, &path)?;
    }
    for file in files {
        let name = file.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no file", file.display()),
            )
        })?;
        // Opened as the local runtime's copy opens them: a link or a FIFO swapped in since
        // the listing is refused, never followed or blocked on.
        let mut opened = open_regular(file)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", file.display())))?;
        builder.append_file(format!("{path}/{}", name.to_string_lossy()), &mut opened)?;
    }
    builder.into_inner()?.flush()
}

fn write_archive(
    writer: &mut ChannelWriter,
    source: &Path,
    top: &str,
    name: &str,
) -> io::Result<()> {
    let mut builder = tar::Builder::new(writer);
    builder.mode(tar::HeaderMode::Deterministic);
    append_dir(&mut builder, top)?;
    let open = |path: &Path| {
        open_regular(path)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))
    };
    let path_in_archive = format!("{top}/{name}");
    // The path the user named may be a link (`latest.dump`); what is inside a directory
    // archive is the backup's, read only as regular files directly in it (a `pg_dump -Fd`
    // directory is flat): a link or FIFO swapped in since the archive was checked is refused,
    // never followed or blocked on.
    let source = std::fs::canonicalize(source)?;
    if std::fs::metadata(&source)?.is_dir() {
        append_dir(&mut builder, &path_in_archive)?;
        let mut entries = std::fs::read_dir(&source)?.collect::<Result<Vec<_>, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let file_name = entry.file_name();
            let mut opened = open(&entry.path())?;
            builder.append_file(
                format!("{path_in_archive}/{}", file_name.to_string_lossy()),
                &mut opened,
            )?;
        }
    } else {
        builder.append_file(&path_in_archive, &mut open(&source)?)?;
    }
    builder.into_inner()?.flush()
}

/// Sends what is written to it down a channel, a chunk at a time.
struct ChannelWriter {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.sender
            .blocking_send(Ok(Bytes::from(chunk)))
            // The upload stopped reading: it failed, and says why.
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload ended early"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_chunk()
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt as _;

    use super::*;

    async fn entries(source: PathBuf) -> Vec<(String, u32, Vec<u8>)> {
        let (stream, builder) = tar_stream(source, "top".into(), "name".into());
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        builder.await.unwrap().unwrap();
        let bytes: Vec<u8> = chunks.concat();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mode = entry.header().mode().unwrap();
            let mut data = Vec::new();
            io::Read::read_to_end(&mut entry, &mut data).unwrap();
            out.push((path, mode, data));
        }
        out
    }

    #[tokio::test]
    async fn a_file_lands_under_a_fresh_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dump.custom");
        let data: Vec<u8> = (0..CHUNK * 3 + 17)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        std::fs::write(&file, &data).unwrap();
        let entries = entries(file).await;
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, "top/");
        assert_eq!(entries[1].0, "top/name");
        assert_eq!(entries[1].1 & 0o444, 0o444, "readable by all");
        assert_eq!(entries[1].2, data);
    }

    #[tokio::test]
    async fn a_directory_archive_is_archived_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("toc.dat"), b"toc").unwrap();
        std::fs::write(dir.path().join("3001.dat.gz"), b"rows").unwrap();
        let names: Vec<String> = entries(dir.path().to_owned())
            .await
            .into_iter()
            .map(|(path, _, _)| path)
            .collect();
        assert_eq!(
            names,
            [
                "top/",
                "top/name/",
                "top/name/3001.dat.gz",
                "top/name/toc.dat"
            ]
        );
    }

    #[tokio::test]
    async fn a_link_fifo_or_directory_inside_a_directory_archive_fails_it_unread() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"host secret").unwrap();
        for plant in ["link", "fifo", "dir"] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("toc.dat"), b"toc").unwrap();
            let planted = dir.path().join("3001.dat");
            match plant {
                "link" => std::os::unix::fs::symlink(&secret, &planted).unwrap(),
                "fifo" => nix::unistd::mkfifo(&planted, nix::sys::stat::Mode::S_IRWXU).unwrap(),
                _ => std::fs::create_dir(&planted).unwrap(),
            }
            let (stream, builder) = tar_stream(dir.path().to_owned(), "top".into(), "n".into());
            let chunks: Result<Vec<Bytes>, io::Error> = stream.try_collect().await;
            assert!(chunks.is_err(), "{plant}: the stream ends with the error");
            let error = builder.await.unwrap().unwrap_err().to_string();
            assert!(error.contains("3001.dat"), "{plant}: {error}");
        }
    }

    #[tokio::test]
    async fn a_link_the_user_names_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("dump-2026-12-01.custom");
        std::fs::write(&dump, b"PGDMP").unwrap();
        let latest = dir.path().join("latest.custom");
        std::os::unix::fs::symlink(&dump, &latest).unwrap();
        let entries = entries(latest).await;
        assert_eq!(entries[1].0, "top/name");
        assert_eq!(entries[1].2, b"PGDMP");
    }

    #[tokio::test]
    async fn listed_files_land_under_every_directory_of_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nb-1-big-Data.db");
        let toc = dir.path().join("nb-1-big-TOC.txt");
        std::fs::write(&data, b"rows").unwrap();
        std::fs::write(&toc, b"Data.db").unwrap();
        let (stream, builder) = files_stream(vec![data, toc], "top".into(), "ks/tbl".into());
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        builder.await.unwrap().unwrap();
        let bytes: Vec<u8> = chunks.concat();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "top/",
                "top/ks/",
                "top/ks/tbl/",
                "top/ks/tbl/nb-1-big-Data.db",
                "top/ks/tbl/nb-1-big-TOC.txt"
            ]
        );
    }

    #[tokio::test]
    async fn a_listed_link_or_fifo_fails_the_archive_unread() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"host secret").unwrap();
        let link = dir.path().join("nb-1-big-Data.db");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let fifo = dir.path().join("nb-2-big-Data.db");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for file in [link, fifo] {
            let (stream, builder) = files_stream(vec![file.clone()], "top".into(), "ks/t".into());
            let chunks: Result<Vec<Bytes>, io::Error> = stream.try_collect().await;
            assert!(chunks.is_err(), "the stream ends with the error");
            let error = builder.await.unwrap().unwrap_err().to_string();
            assert!(error.contains(&file.display().to_string()), "{error}");
        }
    }

    #[test]
    fn owned_secrets_are_their_owners_alone() {
        let tar = owned_secret_archive("s", 999, &[("a", b"1"), ("b", b"22")]).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let header = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("s/".to_owned(), 0o700, 999),
                ("s/a".to_owned(), 0o600, 999),
                ("s/b".to_owned(), 0o600, 999)
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_source_ends_the_stream_with_an_error() {
        let (stream, builder) = tar_stream("/nonexistent/x".into(), "top".into(), "n".into());
        let collected: Result<Vec<Bytes>, io::Error> = stream.try_collect().await;
        assert!(collected.is_err());
        let built = builder.await.unwrap();
        assert_eq!(built.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
