//! The storage layer under all of the log's file I/O.
//!
//! The log never calls the file system directly: it goes through [`Storage`] (a directory)
//! and [`SegmentFile`] (one preallocated segment). Two implementations exist:
//! [`FsStorage`], the real one (segments mapped with memmap2 and synced with
//! `msync(MS_SYNC)`), and [`SimStorage`], a simulated disk that keeps durable and pending
//! bytes apart and can crash, tear and fail on demand, so tests run the same code paths.
//!
//! [`ReadOnlyMap`] is not part of the log: it is the one read-only mapping other crates
//! may use (the snapshot crate maps its immutable snapshot files with it), kept here
//! because `mmap.rs` is the only module allowed `unsafe`.

mod fs;
mod mmap;
pub mod sim;

use std::io;
use std::path::Path;
use std::sync::Arc;

pub use fs::FsStorage;
pub(crate) use fs::LOCK_FILE;
pub use mmap::{ReadOnlyMap, start_writeback};
pub use sim::SimStorage;

/// One preallocated segment file, open for appending.
///
/// Writes land in the file's cache (for the real storage: in its shared mapping) and are
/// durable only once a `sync_range` covering them returns Ok.
pub trait SegmentFile: Send + Sync {
    /// The file's preallocated length.
    fn size(&self) -> u64;
    /// Writes the concatenation of `parts` at `offset`: one write operation.
    ///
    /// The caller guarantees that concurrent calls never overlap and that no reader
    /// looks at the range until the call returned.
    fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()>;
    /// Makes `len` bytes at `offset` durable (`msync(MS_SYNC)` for the real storage).
    fn sync_range(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Copies bytes written earlier into `buf`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// A directory of files: the log's segments and its lock file.
pub trait Storage: Send + Sync {
    /// The directory's path, for error messages.
    fn path(&self) -> &Path;
    /// Creates the directory if it does not exist.
    fn create_dir(&self) -> io::Result<()>;
    /// Names of the files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Takes the exclusive writer lock; `Ok(None)` if someone else holds it.
    fn try_lock(&self) -> io::Result<Option<Box<dyn LockGuard>>>;
    /// Creates `name` (which must not exist) preallocated to `len` zero bytes.
    /// Neither its data nor its directory entry is durable until synced.
    fn create(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>>;
    /// Opens an existing file for appending, extending it to at least `len` bytes.
    fn open(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>>;
    /// Reads a whole file.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Reads a whole file into `buf`, replacing its contents. Reading segment after
    /// segment into one buffer spares a fresh allocation, its page faults and its release
    /// per segment; the default reads a new one.
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        *buf = self.read(name)?;
        Ok(())
    }
    /// Makes a file's data and size durable (`fsync`).
    fn sync_file(&self, name: &str) -> io::Result<()>;
    /// Renames a file; durable once the directory is synced.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file; durable once the directory is synced.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries durable (`fsync` on the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// Called at each named kill point (see [`crate::killpoint`]): a crash test's storage
    /// may end the process, or fail this and every later operation, there. The default
    /// does nothing.
    fn kill_point(&self, point: crate::KillPoint) -> io::Result<()> {
        let _ = point;
        Ok(())
    }
}

/// Held while the writer lock is taken; dropping it releases the lock.
pub trait LockGuard: Send + Sync {}

/// Shared handle to a storage implementation.
pub type SharedStorage = Arc<dyn Storage>;
