//! The real storage: a directory on the local file system.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::mmap::{self, MappedFile};
use super::{LockGuard, SegmentFile, Storage};
use crate::options::IoBackend;

/// Name of the lock file inside a log directory.
pub const LOCK_FILE: &str = "LOCK";

/// Storage on the real file system. With [`IoBackend::Mmap`] (the default) segments are
/// preallocated with `fallocate`, mapped shared and read-write (page tables prefaulted),
/// and synced with `msync(MS_SYNC)`; with [`IoBackend::Pwrite`] they are preallocated
/// with written zeros, written with `pwrite` and synced with `fdatasync`.
#[derive(Debug, Clone)]
pub struct FsStorage {
    dir: PathBuf,
    backend: IoBackend,
}

impl FsStorage {
    /// Storage rooted at `dir` (created on `create_dir`), with the mapped backend.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FsStorage { dir: dir.into(), backend: IoBackend::Mmap }
    }

    /// The same storage with another I/O backend.
    pub fn with_backend(mut self, backend: IoBackend) -> Self {
        self.backend = backend;
        self
    }

    /// Makes sure `file` holds `len` bytes of allocated, zero-initialised space.
    fn preallocate(&self, file: &File, len: u64) -> io::Result<()> {
        match self.backend {
            IoBackend::Mmap => mmap::fallocate(file, len),
            IoBackend::Pwrite => zero_fill(file, len),
        }
    }

    fn segment(&self, file: File, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(match self.backend {
            IoBackend::Mmap => Arc::new(MappedSegment { map: MappedFile::map(file, len, true)? }),
            IoBackend::Pwrite => Arc::new(PwriteSegment { file, len }),
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Writes zeros over `file` from its current end to `len`: real blocks, not a hole and
/// not unwritten extents, so later syncs of data written there carry no metadata.
fn zero_fill(file: &File, len: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK];
    let mut at = file.metadata()?.len();
    while at < len {
        let n = (len - at).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

struct MappedSegment {
    map: MappedFile,
}

impl SegmentFile for MappedSegment {
    fn size(&self) -> u64 {
        self.map.len()
    }
    fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()> {
        self.map.write_at(offset, parts)
    }
    fn sync_range(&self, offset: u64, len: u64) -> io::Result<()> {
        self.map.sync_range(offset, len)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.map.read_at(offset, buf)
    }
}

struct PwriteSegment {
    file: File,
    len: u64,
}

impl SegmentFile for PwriteSegment {
    fn size(&self) -> u64 {
        self.len
    }
    fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()> {
        if offset + parts.iter().map(|p| p.len() as u64).sum::<u64>() > self.len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "write past end of segment"));
        }
        match parts {
            [one] => self.file.write_all_at(one, offset),
            _ => self.file.write_all_at(&parts.concat(), offset),
        }
    }
    /// `fdatasync` of the whole file: a superset of the range.
    fn sync_range(&self, _offset: u64, _len: u64) -> io::Result<()> {
        self.file.sync_data()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

struct FsLock {
    _file: File,
}
impl LockGuard for FsLock {}

impl Storage for FsStorage {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn create_dir(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn try_lock(&self) -> io::Result<Option<Box<dyn LockGuard>>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.file(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(FsLock { _file: file }))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn create(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let path = self.file(name);
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        if let Err(e) = self.preallocate(&file, len) {
            drop(file);
            // No frame was written: leave no half-made file behind.
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.segment(file, len)
    }

    fn open(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new().read(true).write(true).open(self.file(name))?;
        if file.metadata()?.len() < len {
            self.preallocate(&file, len)?;
        }
        self.segment(file, len)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(name, &mut buf)?;
        Ok(buf)
    }

    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        let mut file = File::open(self.file(name))?;
        buf.clear();
        buf.reserve(file.metadata()?.len() as usize);
        file.read_to_end(buf)?;
        Ok(())
    }

    fn sync_file(&self, name: &str) -> io::Result<()> {
        File::open(self.file(name))?.sync_all()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.file(from), self.file(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.file(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn kill_point(&self, point: crate::KillPoint) -> io::Result<()> {
        crate::killpoint::pass_in_process(point);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_into_replaces_the_buffer_whatever_it_held() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path());
        fs::write(dir.path().join("long"), vec![7u8; 10_000])?;
        fs::write(dir.path().join("short"), b"abc")?;
        let mut buf = Vec::new();
        storage.read_into("long", &mut buf)?;
        assert_eq!(buf, vec![7u8; 10_000]);
        storage.read_into("short", &mut buf)?;
        assert_eq!(buf, b"abc");
        assert_eq!(storage.read("long")?, vec![7u8; 10_000]);
        assert!(storage.read_into("missing", &mut buf).is_err());
        Ok(())
    }
}
