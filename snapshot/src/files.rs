//! File-system helpers: a writer that checksums what it writes, directory fsync, and
//! mapping a snapshot file after checking its size and CRC-32.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use orderlog_wal::storage::{ReadOnlyMap, start_writeback};

use crate::error::{Result, SnapshotError};
use crate::info::SnapshotFile;

/// Wraps an I/O error with what was being done and where.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io { op, path, source }
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
    file: File,
    written: u64,
    started: u64,
    /// Off: a plain file (see `SnapshotOptions::early_writeback`).
    enabled: bool,
}

/// How much a [`WritebackFile`] lets pile up before starting its writeback.
pub(crate) const WRITEBACK_BYTES: u64 = 8 << 20;

impl WritebackFile {
    pub(crate) fn new(file: File, enabled: bool) -> Self {
        WritebackFile { file, written: 0, started: 0, enabled }
    }

    pub(crate) fn into_inner(self) -> File {
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
            let _ = start_writeback(&self.file, self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A file written for a snapshot, still open so it can be fsynced.
pub(crate) struct WrittenFile {
    /// Path relative to the snapshot's directory.
    pub(crate) rel_path: String,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) bytes: u64,
    pub(crate) crc32: u32,
}

/// Makes a directory's entries durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    File::open(path).and_then(|dir| dir.sync_all()).map_err(io_err("fsync directory", path))
}

/// Maps a snapshot file and checks it against its manifest entry: exact size, then the
/// CRC-32 of the whole content. Only then may its bytes be decoded.
pub(crate) fn map_verified(path: &Path, entry: &SnapshotFile) -> Result<ReadOnlyMap> {
    let map = ReadOnlyMap::open_immutable(path).map_err(io_err("map snapshot file", path))?;
    let len = map.len() as u64;
    if len != entry.bytes {
        return Err(SnapshotError::FileCorrupt {
            path: path.to_path_buf(),
            offset: len.min(entry.bytes),
            detail: format!("file is {len} bytes, the manifest says {}", entry.bytes),
        });
    }
    let crc = crc32fast::hash(&map);
    if crc != entry.crc32 {
        return Err(SnapshotError::FileCorrupt {
            path: path.to_path_buf(),
            offset: 0,
            detail: format!(
                "CRC-32 of bytes 0..{len} is {crc:08x}, the manifest says {:08x}",
                entry.crc32
            ),
        });
    }
    Ok(map)
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
    fn map_verified_checks_size_then_crc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"snapshot bytes").unwrap();
        let entry = SnapshotFile {
            kind: crate::info::FileKind::Parquet,
            path: "f".into(),
            bytes: 14,
            crc32: crc32fast::hash(b"snapshot bytes"),
        };
        assert_eq!(&map_verified(&path, &entry).unwrap()[..], b"snapshot bytes");

        let short = SnapshotFile { bytes: 20, ..entry.clone() };
        match map_verified(&path, &short) {
            Err(SnapshotError::FileCorrupt { offset: 14, .. }) => {}
            other => panic!("{other:?}"),
        }
        let wrong = SnapshotFile { crc32: entry.crc32 ^ 1, ..entry };
        match map_verified(&path, &wrong) {
            Err(SnapshotError::FileCorrupt { offset: 0, detail, .. }) => {
                assert!(detail.contains("CRC-32"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
