//! The real storage: a directory on the local file system.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::mmap::{self, MappedFile};
use super::{LockGuard, SegmentFile, Storage, WriteFile};
use crate::IoBackend;

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
        if name.is_empty() { self.dir.clone() } else { self.dir.join(name) }
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

/// A file of the real storage written from start to end.
struct FsWriteFile {
    file: File,
}

impl io::Write for FsWriteFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteFile for FsWriteFile {
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
    fn start_writeback(&mut self, offset: u64, len: u64) -> io::Result<()> {
        mmap::start_writeback(&self.file, offset, len)
    }
}

/// Creates `dir` and whichever of its ancestors are missing, syncing the parent of each
/// directory it creates, so that the new entries survive a power cut.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && !at.is_dir() {
        missing.push(at);
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    for created in missing.into_iter().rev() {
        match fs::create_dir(created) {
            Ok(()) => {}
            // Another process made it meanwhile: its entry may not be durable yet either.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let parent =
            created.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

impl Storage for FsStorage {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn create_dir(&self) -> io::Result<()> {
        create_dir_durable(&self.dir)
    }

    fn list_dir(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.file(dir))? {
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
        let actual = file.metadata()?.len();
        if actual > len {
            // Mapped at `len`, the bytes past it would be out of reach: refuse now rather
            // than fail later at an offset outside the mapping.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file is {actual} bytes, longer than the {len} expected"),
            ));
        }
        if actual < len {
            self.preallocate(&file, len)?;
        }
        self.segment(file, len)
    }

    fn create_file(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        let file = OpenOptions::new().write(true).create_new(true).open(self.file(name))?;
        Ok(Box::new(FsWriteFile { file }))
    }

    fn make_dir(&self, dir: &str) -> io::Result<()> {
        fs::create_dir(self.file(dir))
    }

    fn remove_dir_all(&self, dir: &str) -> io::Result<()> {
        fs::remove_dir_all(self.file(dir))
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.file(name))?.len())
    }

    fn read_exact_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        File::open(self.file(name))?.read_exact_at(buf, offset)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(name, &mut buf)?;
        Ok(buf)
    }

    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        let mut file = File::open(self.file(name))?;
        buf.clear();
        // A hint only: the length may change before the read, which reads what is there.
        let len = file.metadata()?.len();
        buf.try_reserve(usize::try_from(len).unwrap_or(usize::MAX))
            .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e.to_string()))?;
        file.read_to_end(buf)?;
        Ok(())
    }

    fn read_past_cache(&self, name: &str, from: u64, buf: &mut Vec<u8>) -> io::Result<()> {
        let file = File::open(self.file(name))?;
        file.sync_data()?;
        mmap::drop_cached(&file, from)?;
        drop(file);
        self.read_into(name, buf)
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

    fn sync_dir_at(&self, dir: &str) -> io::Result<()> {
        File::open(self.file(dir))?.sync_all()
    }

    fn sub(&self, dir: &str) -> Arc<dyn Storage> {
        Arc::new(FsStorage { dir: self.file(dir), backend: self.backend })
    }

    fn local_path(&self, name: &str) -> Option<PathBuf> {
        Some(self.file(name))
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
