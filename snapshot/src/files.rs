//! Helpers over the storage door: a writer that checksums what it writes, directory
//! sync, and reading a snapshot file (with `pread`, never a mapping: a failed read is an
//! error value, not a `SIGBUS`) after checking its size and CRC-32.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use arrow::buffer::Buffer;
use orderlog_storage::{Storage, WriteFile};

use crate::error::{Result, SnapshotError};
use crate::info::SnapshotFile;

/// Wraps an I/O error with what was being done and where.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io { op, path, source }
}

/// `dir/name`, or `name` when `dir` is the root (`""`).
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

/// A writer that counts and checksums every byte passed to the inner writer, so a file's
/// size and CRC-32 are known without reading it back.
pub(crate) struct CrcWriter<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> CrcWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        CrcWriter { inner, hasher: crc32fast::Hasher::new(), bytes: 0 }
    }

    /// The inner writer, the byte count and the CRC-32 of everything written.
    pub(crate) fn finish(self) -> (W, u64, u32) {
        (self.inner, self.bytes, self.hasher.finalize())
    }
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Only the bytes the inner writer accepted are counted: a short write is retried
        // by the caller with the rest.
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A file written sequentially that asks the kernel to start writing back each
/// [`WRITEBACK_BYTES`] as they fill: the disk then works while the rest of the snapshot is
/// encoded, and the fsync at the end waits for the last stretch only.
pub(crate) struct WritebackFile {
    file: Box<dyn WriteFile>,
    written: u64,
    started: u64,
    /// Off: a plain file (see `SnapshotOptions::early_writeback`).
    enabled: bool,
}

/// How much a [`WritebackFile`] lets pile up before starting its writeback.
pub(crate) const WRITEBACK_BYTES: u64 = 8 << 20;

impl WritebackFile {
    pub(crate) fn new(file: Box<dyn WriteFile>, enabled: bool) -> Self {
        WritebackFile { file, written: 0, started: 0, enabled }
    }

    pub(crate) fn into_inner(self) -> Box<dyn WriteFile> {
        self.file
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.enabled && self.written - self.started >= WRITEBACK_BYTES {
            // Advisory only: if it fails, the final fsync still writes everything back,
            // so durability does not depend on it.
            let _ = self.file.start_writeback(self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A file written for a snapshot, still open so it can be synced.
pub(crate) struct WrittenFile {
    /// Path relative to the snapshot's directory.
    pub(crate) rel_path: String,
    /// Where it is, for messages.
    pub(crate) path: PathBuf,
    pub(crate) file: Box<dyn WriteFile>,
    pub(crate) bytes: u64,
    pub(crate) crc32: u32,
}

impl WrittenFile {
    /// Makes the file durable (`fsync`).
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.file.sync().map_err(io_err("fsync snapshot file", &self.path))
    }
}

/// Makes directory `dir`'s entries durable.
pub(crate) fn sync_dir(storage: &dyn Storage, dir: &str) -> Result<()> {
    storage.sync_dir_at(dir).map_err(io_err("fsync directory", &storage.path().join(dir)))
}

/// How much [`check_verified`] reads at a time.
const CHECK_CHUNK_BYTES: usize = 1 << 20;

/// The size check of a snapshot file against its manifest entry, before any byte is read.
pub(crate) fn check_size(
    storage: &dyn Storage,
    name: &str,
    entry: &SnapshotFile,
) -> Result<PathBuf> {
    let path = storage.path().join(name);
    let len = storage.file_len(name).map_err(io_err("read snapshot file", &path))?;
    if len != entry.bytes {
        return Err(SnapshotError::FileCorrupt {
            path,
            offset: len.min(entry.bytes),
            detail: format!("file is {len} bytes, the manifest says {}", entry.bytes),
        });
    }
    Ok(path)
}

pub(crate) fn crc_mismatch(path: PathBuf, entry: &SnapshotFile, crc: u32) -> SnapshotError {
    SnapshotError::FileCorrupt {
        path,
        offset: 0,
        detail: format!(
            "CRC-32 of bytes 0..{} is {crc:08x}, the manifest says {:08x}",
            entry.bytes, entry.crc32
        ),
    }
}

/// Checks a snapshot file (`name`, relative to the storage's root) against its manifest
/// entry without keeping it: exact size, then the CRC-32 of the whole content, read a
/// chunk at a time.
pub(crate) fn check_verified(
    storage: &dyn Storage,
    name: &str,
    entry: &SnapshotFile,
) -> Result<()> {
    let path = check_size(storage, name, entry)?;
    let mut buf =
        vec![0u8; CHECK_CHUNK_BYTES.min(usize::try_from(entry.bytes).unwrap_or(usize::MAX))];
    let mut hasher = crc32fast::Hasher::new();
    let mut at = 0u64;
    while at < entry.bytes {
        let n = (entry.bytes - at).min(buf.len() as u64) as usize;
        storage
            .read_exact_at(name, at, &mut buf[..n])
            .map_err(io_err("read snapshot file", &path))?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    let crc = hasher.finalize();
    if crc != entry.crc32 {
        return Err(crc_mismatch(path, entry, crc));
    }
    Ok(())
}

/// Reads a whole file into one Arrow buffer (decoded arrays point into it without
/// copying; a buffer the allocator did not align enough for a column is realigned by the
/// decoder). Nothing is zero-filled first: the read fills the allocation.
pub(crate) fn read_whole(storage: &dyn Storage, name: &str) -> io::Result<Buffer> {
    let mut bytes = Vec::new();
    storage.read_into(name, &mut bytes)?;
    Ok(Buffer::from_vec(bytes))
}

/// Reads a snapshot file after checking it against its manifest entry: exact size (before
/// anything is allocated), then the CRC-32 of the whole content. Only then may its bytes
/// be decoded.
pub(crate) fn read_verified(
    storage: &dyn Storage,
    name: &str,
    entry: &SnapshotFile,
) -> Result<Buffer> {
    let path = check_size(storage, name, entry)?;
    let buffer = read_whole(storage, name).map_err(io_err("read snapshot file", &path))?;
    if buffer.len() as u64 != entry.bytes {
        // The file changed under the read: as damaged as a wrong size.
        return Err(SnapshotError::FileCorrupt {
            path,
            offset: (buffer.len() as u64).min(entry.bytes),
            detail: format!("read {} bytes, the manifest says {}", buffer.len(), entry.bytes),
        });
    }
    let crc = crc32fast::hash(&buffer);
    if crc != entry.crc32 {
        return Err(crc_mismatch(path, entry, crc));
    }
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_writer_counts_and_checksums() {
        let mut w = CrcWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (inner, bytes, crc) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(bytes, 11);
        assert_eq!(crc, crc32fast::hash(b"hello world"));
    }

    #[test]
    fn reads_check_size_then_crc() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"snapshot bytes").unwrap();
        let storage = orderlog_storage::FsStorage::new(dir.path());
        let entry = SnapshotFile {
            kind: crate::info::FileKind::Parquet,
            path: "f".into(),
            bytes: 14,
            crc32: crc32fast::hash(b"snapshot bytes"),
        };
        assert_eq!(&read_verified(&storage, "f", &entry).unwrap()[..], b"snapshot bytes");
        check_verified(&storage, "f", &entry).unwrap();

        let short = SnapshotFile { bytes: 20, ..entry.clone() };
        for result in [
            read_verified(&storage, "f", &short).map(|_| ()),
            check_verified(&storage, "f", &short),
        ] {
            match result {
                Err(SnapshotError::FileCorrupt { offset: 14, .. }) => {}
                other => panic!("{other:?}"),
            }
        }
        let wrong = SnapshotFile { crc32: entry.crc32 ^ 1, ..entry };
        for result in [
            read_verified(&storage, "f", &wrong).map(|_| ()),
            check_verified(&storage, "f", &wrong),
        ] {
            match result {
                Err(SnapshotError::FileCorrupt { offset: 0, detail, .. }) => {
                    assert!(detail.contains("CRC-32"), "{detail}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
