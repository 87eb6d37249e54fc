//! The real storage: a directory on the local file system.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::mmap::{self, MappedFile};
use super::{LockGuard, SegmentFile, Storage};

/// Name of the lock file inside a log directory.
pub const LOCK_FILE: &str = "LOCK";

/// Storage on the real file system: segments are preallocated with `fallocate`, mapped
/// shared and read-write, and synced with `msync(MS_SYNC)`.
#[derive(Debug, Clone)]
pub struct FsStorage {
    dir: PathBuf,
    populate: bool,
}

impl FsStorage {
    /// Storage rooted at `dir` (created on `create_dir`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FsStorage { dir: dir.into(), populate: true }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

struct FsSegment {
    map: MappedFile,
}

impl SegmentFile for FsSegment {
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
        if let Err(e) = mmap::fallocate(&file, len) {
            drop(file);
            // Nothing was written: leave no half-made file behind.
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(Arc::new(FsSegment { map: MappedFile::map(file, len, self.populate)? }))
    }

    fn open(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new().read(true).write(true).open(self.file(name))?;
        if file.metadata()?.len() < len {
            mmap::fallocate(&file, len)?;
        }
        Ok(Arc::new(FsSegment { map: MappedFile::map(file, len, self.populate)? }))
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut file = File::open(self.file(name))?;
        let mut buf = Vec::with_capacity(file.metadata()?.len() as usize);
        file.read_to_end(&mut buf)?;
        Ok(buf)
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
}
