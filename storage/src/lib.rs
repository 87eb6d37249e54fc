//! `orderlog-storage`: the one door to the disk, under the log's and the snapshots' file
//! I/O, and the platform layer under it (file mapping, `madvise`, `fallocate`,
//! `sync_file_range`, `posix_fadvise`): the only crate of the workspace with `unsafe`
//! code, all of it in `mmap.rs`, each block with its `SAFETY` argument. Nothing it hands
//! out lets safe code reach a mapping another process could truncate: segment mappings
//! stay inside [`FsStorage`], and every other file is read with `pread`.
//!
//! Neither the log nor the snapshot store calls the file system directly: both go through
//! [`Storage`] (a directory tree), [`SegmentFile`] (one preallocated segment) and
//! [`WriteFile`] (a file written from start to end). Two implementations exist:
//! [`FsStorage`], the real one (segments mapped with memmap2 and synced with
//! `msync(MS_SYNC)`, or written with `pwrite` and synced with `fdatasync`; other files
//! read with `pread`), and [`SimStorage`], a simulated disk that keeps durable and
//! pending bytes apart and can crash, tear and fail on demand, so tests run the same code
//! paths.

mod fs;
pub mod killpoint;
mod mmap;
pub mod sim;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use fs::{FsStorage, LOCK_FILE, create_dir_durable};
pub use killpoint::KillPoint;
pub use mmap::start_writeback;
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

/// A file being written from start to end (a snapshot file, a manifest): each `write`
/// lands in the file's cache and is durable only once [`WriteFile::sync`] returned Ok.
pub trait WriteFile: io::Write + Send {
    /// Makes the file's data and size durable (`fsync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Asks for the writeback of `len` bytes at `offset` to start now, without waiting
    /// for it (`sync_file_range`). Advisory: the default does nothing, and durability
    /// never depends on it.
    fn start_writeback(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
}

/// A directory tree of files: the log's segments and its lock file, a snapshot store's
/// snapshots and manifest.
///
/// Names are relative to the storage's root; `/` separates directories (`snap-1/data.arrow`),
/// and `""` is the root itself. A change to a directory (a new, renamed or removed entry)
/// is durable only once that directory is synced.
pub trait Storage: Send + Sync {
    /// The root's path, for error messages.
    fn path(&self) -> &Path;
    /// Creates the root directory if it does not exist, and makes every directory entry
    /// it created durable (syncing each new directory's parent).
    fn create_dir(&self) -> io::Result<()>;
    /// Names of the entries in directory `dir` (`""`: the root), sorted.
    fn list_dir(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Names of the entries in the root, sorted.
    fn list(&self) -> io::Result<Vec<String>> {
        self.list_dir("")
    }
    /// Takes the exclusive writer lock (`LOCK` in the root); `Ok(None)` if someone else
    /// holds it.
    fn try_lock(&self) -> io::Result<Option<Box<dyn LockGuard>>>;
    /// Creates `name` (which must not exist) preallocated to `len` zero bytes.
    /// Neither its data nor its directory entry is durable until synced.
    fn create(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>>;
    /// Opens an existing file for appending, extending it to at least `len` bytes.
    fn open(&self, name: &str, len: u64) -> io::Result<Arc<dyn SegmentFile>>;
    /// Creates `name` (which must not exist), empty, for writing from start to end.
    fn create_file(&self, name: &str) -> io::Result<Box<dyn WriteFile>>;
    /// Creates directory `dir` (its parent must exist); durable once the parent is synced.
    fn make_dir(&self, dir: &str) -> io::Result<()>;
    /// Removes directory `dir` and everything under it; durable once its parent is synced.
    fn remove_dir_all(&self, dir: &str) -> io::Result<()>;
    /// A file's length in bytes.
    fn file_len(&self, name: &str) -> io::Result<u64>;
    /// Reads `buf.len()` bytes of `name` at `offset` (`pread`: a failed read is an error,
    /// never a signal).
    fn read_exact_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Reads a whole file.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Reads a whole file into `buf`, replacing its contents. Reading segment after
    /// segment into one buffer spares a fresh allocation, its page faults and its release
    /// per segment; the default reads a new one.
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        *buf = self.read(name)?;
        Ok(())
    }
    /// Reads a whole file into `buf` like [`Storage::read_into`], except that the bytes
    /// from `from` on are what the disk holds, not what the page cache believes: the
    /// file's unsynced writes are synced first, then its cached pages from `from` on are
    /// dropped and read again. Linux keeps the pages of a failed writeback in the cache,
    /// clean and readable, though the disk never got them; this does not see them.
    fn read_past_cache(&self, name: &str, from: u64, buf: &mut Vec<u8>) -> io::Result<()>;
    /// Makes a file's data and size durable (`fsync`).
    fn sync_file(&self, name: &str) -> io::Result<()>;
    /// Renames a file or directory within its directory; durable once that directory is
    /// synced. An existing file at `to` is replaced.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file; durable once its directory is synced.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes directory `dir`'s entries durable (`fsync` on the directory).
    fn sync_dir_at(&self, dir: &str) -> io::Result<()>;
    /// Makes the root's entries durable.
    fn sync_dir(&self) -> io::Result<()> {
        self.sync_dir_at("")
    }
    /// Whether users may run I/O on it from background threads of their own (the log
    /// preallocates its next segment ahead of need). The simulated disk says no: its
    /// operations are counted and traced, and crash tests replay them in one order, so
    /// the log prepares that segment in line instead.
    fn background_io(&self) -> bool {
        true
    }
    /// The same storage rooted at its subdirectory `dir` (which need not exist yet).
    fn sub(&self, dir: &str) -> Arc<dyn Storage>;
    /// Where `name` is on the local file system, for readers that open files by path
    /// (DuckDB); `None` when the storage is not a local directory (the simulated disk).
    fn local_path(&self, name: &str) -> Option<PathBuf> {
        let _ = name;
        None
    }
    /// Called at each named kill point (see [`killpoint`]): a crash test's storage
    /// may end the process, or fail this and every later operation, there. The default
    /// does nothing.
    fn kill_point(&self, point: KillPoint) -> io::Result<()> {
        let _ = point;
        Ok(())
    }
}

/// Held while the writer lock is taken; dropping it releases the lock.
pub trait LockGuard: Send + Sync {}

/// Shared handle to a storage implementation.
pub type SharedStorage = Arc<dyn Storage>;

/// How frames reach the segment files on the real file system.
///
/// Both keep the same files, byte for byte; a log written with one opens with the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IoBackend {
    /// Segments are preallocated with `fallocate` and mapped shared; frames are copied
    /// into the mapping (no system call per append) and made durable with
    /// `msync(MS_SYNC)` of their range. Fastest when syncs are rare (`Never`, `Interval`).
    #[default]
    Mmap,
    /// Segments are preallocated by writing zeros (so no sync has to convert unwritten
    /// extents); frames are written with `pwrite` and made durable with `fdatasync`.
    /// Lower commit latency under `Always` on file systems where the first sync of an
    /// unwritten (fallocated) block also writes metadata (ext4: the extent conversion is
    /// a journal commit, or without a journal a synchronous inode write), and no mapped
    /// page to write-protect at each sync; one system call per append.
    Pwrite,
}
