//! The one module of orderlog that uses `unsafe`: a segment file mapped into memory,
//! `fallocate`, [`start_writeback`] (`sync_file_range`) and [`ReadOnlyMap`] (a read-only
//! mapping of an immutable file, used by the snapshot crate).
//!
//! For segments, soundness rests on three facts, each enforced outside this module and
//! restated at each block:
//! - the directory is held under an exclusive lock by one `Wal`, so no other orderlog
//!   process writes or truncates a mapped segment while it is mapped;
//! - the log serialises writers: concurrent `write_at` calls never overlap (the appender
//!   hands out disjoint ranges under its lock);
//! - readers only read ranges whose writes have returned (published through the log's
//!   written-offset, with acquire/release ordering).
//!
//! No reference into a segment's mapping is ever handed out: bytes are copied in and out
//! through raw pointers, so a write to one range never aliases a `&[u8]` of another.
//! `ReadOnlyMap` does hand out `&[u8]`; its own argument is on the type.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use memmap2::{MmapOptions, MmapRaw};

/// A read-write shared mapping of a whole segment file.
pub(super) struct MappedFile {
    map: MmapRaw,
    /// Kept open so the mapping's file stays the one we locked and sized.
    _file: File,
}

impl MappedFile {
    /// Maps `len` bytes of `file`. `populate` prefaults the page tables so the first
    /// append to each page does not stall on a fault.
    pub(super) fn map(file: File, len: u64, populate: bool) -> io::Result<Self> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
        let mut opts = MmapOptions::new();
        opts.len(len);
        if populate {
            opts.populate();
        }
        let map = opts.map_raw(&file)?;
        Ok(MappedFile { map, _file: file })
    }

    pub(super) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn check(&self, offset: u64, len: usize) -> io::Result<usize> {
        let end = offset.checked_add(len as u64);
        match end {
            Some(end) if end <= self.len() => Ok(offset as usize),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("range {offset}+{len} outside mapping of {} bytes", self.len()),
            )),
        }
    }

    pub(super) fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut at = self.check(offset, total)?;
        for part in parts {
            // SAFETY: `check` proved `at..at + total` lies inside the mapping, and each part
            // is copied within it. The mapping is shared and writable and stays mapped for
            // `self`'s lifetime. The log never issues overlapping concurrent writes and no
            // reader reads this range before the call returns (module docs), so the copy
            // races with nothing. `part` is a caller-owned slice, never inside the mapping.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.as_ptr(),
                    self.map.as_mut_ptr().add(at),
                    part.len(),
                );
            }
            at += part.len();
        }
        Ok(())
    }

    pub(super) fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = self.check(offset, buf.len())?;
        // SAFETY: `check` proved the range is inside the mapping. Callers only read ranges
        // whose writes have completed (module docs), so no write races with this copy.
        // `buf` is caller-owned memory, never inside the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.as_ptr().add(at), buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }

    /// `msync(MS_SYNC)` over the range: returns once the bytes are on disk.
    pub(super) fn sync_range(&self, offset: u64, len: u64) -> io::Result<()> {
        let at = self.check(offset, len as usize)?;
        self.map.flush_range(at, len as usize)
    }
}

/// Allocates `len` bytes of real blocks for `file` (not a sparse hole: writing a hole
/// through a mapping raises SIGBUS when the disk is full, while a failed `fallocate`
/// returns `ENOSPC` here, before anything is written).
pub(super) fn fallocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length overflows off_t"))?;
    loop {
        // SAFETY: `file` is an open descriptor for the lifetime of the call; fallocate
        // takes plain integers and touches no memory of ours.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Starts writing back the dirty pages of `file` in `offset..offset + len` and returns
/// without waiting for them (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). A file written
/// sequentially and fsynced at the end calls it as it goes, so the disk works while the
/// rest is produced and the final `fsync` has less left to wait for. It promises nothing
/// about durability: only that `fsync` does.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let too_far = |_| io::Error::new(io::ErrorKind::InvalidInput, "range overflows off64_t");
    let offset = libc::off64_t::try_from(offset).map_err(too_far)?;
    let len = libc::off64_t::try_from(len).map_err(too_far)?;
    // SAFETY: `file` is an open descriptor for the lifetime of the call; sync_file_range
    // takes plain integers and touches no memory of ours.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// A read-only mapping of a whole file that is immutable once published.
///
/// This is the door through which other crates (the snapshot files) read a file through
/// the page cache without copying it. It hands out `&[u8]` into the mapping, which is
/// sound only while no one changes or shortens the file: that is the caller's protocol,
/// and the one user's protocol guarantees it:
/// - snapshot files are written under a temporary name, fsynced and renamed into place,
///   and never opened for writing again — never modified in place, never truncated;
///   replacing or deleting a file (rename over it, unlink) leaves an existing mapping on
///   the old inode, which stays intact;
/// - the snapshot directory is owned by one store (one process writes it).
///
/// Do not map files that anything may write or truncate while the map lives: a
/// truncation raises `SIGBUS` on access and an in-place write changes bytes under a
/// shared reference.
pub struct ReadOnlyMap {
    map: memmap2::Mmap,
}

impl ReadOnlyMap {
    /// Maps the whole file at `path` read-only. The file must be one that is never
    /// modified in place or truncated while mapped (see the type's docs).
    pub fn open_immutable(path: &std::path::Path) -> io::Result<Self> {
        let file = File::open(path)?;
        // SAFETY: `Mmap::map` is unsafe because the file could be changed or truncated
        // while mapped, which would change bytes behind a `&[u8]` or raise SIGBUS. The
        // mapping is read-only and private to this value, and the files mapped through
        // this function are immutable once published: written under a temporary name,
        // fsynced, renamed into place, never opened for writing again (type docs), in a
        // directory owned by one store. Empty files are handled by memmap2 (an empty
        // slice). The descriptor may close after mapping: the mapping keeps the inode.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(ReadOnlyMap { map })
    }

    /// The mapped length in bytes (the file's length when it was mapped).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the file was empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl std::ops::Deref for ReadOnlyMap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl AsRef<[u8]> for ReadOnlyMap {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl std::fmt::Debug for ReadOnlyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyMap").field("len", &self.map.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::ReadOnlyMap;

    #[test]
    fn read_only_map_sees_the_file_and_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ReadOnlyMap>();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"immutable bytes").unwrap();
        let map = ReadOnlyMap::open_immutable(&path).unwrap();
        assert_eq!(&map[..], b"immutable bytes");
        assert_eq!(map.len(), 15);

        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let map = ReadOnlyMap::open_immutable(&empty).unwrap();
        assert!(map.is_empty());
        assert_eq!(map.as_ref(), b"");

        assert!(ReadOnlyMap::open_immutable(&dir.path().join("missing")).is_err());
    }
}
