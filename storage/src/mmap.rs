//! The one module of orderlog that uses `unsafe`: a segment file mapped into memory,
//! `fallocate` and [`start_writeback`] (`sync_file_range`).
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
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use memmap2::{MmapOptions, MmapRaw};

/// A read-write shared mapping of a whole segment file.
pub(super) struct MappedFile {
    map: MmapRaw,
    /// The system's page size: the unit of [`MappedFile::release_written`].
    page: usize,
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
        Ok(MappedFile { map, page: page_size(), _file: file })
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
    ///
    /// When the range holds several whole pages, they are first unmapped from this
    /// process ([`MappedFile::release_written`]): writing back a page that is still
    /// mapped write-protects it in the page tables, and each such change sends a
    /// TLB-flush interrupt to every other CPU running one of our threads, page by page.
    /// Unmapped, the pages are written back from the page cache without touching page
    /// tables.
    pub(super) fn sync_range(&self, offset: u64, len: u64) -> io::Result<()> {
        let at = self.check(offset, len as usize)?;
        self.release_written(at, len as usize);
        self.map.flush_range(at, len as usize)
    }

    /// Drops this process's mapping of the pages that end within `at..at + len`, the
    /// range being synced (`madvise(MADV_DONTNEED)`), keeping their contents: for a
    /// shared file mapping the bytes live in the file's page cache, which keeps them,
    /// dirty until written back; a later access maps the page again from there. The
    /// page holding `at + len` stays mapped: the next append goes into it.
    ///
    /// Dropping pages flushes the TLB once for all of them where writeback would flush
    /// it once per page, so it pays only for several pages: fewer than
    /// [`RELEASE_PAGES_MIN`] are left to the sync. Only an optimisation: if the call
    /// fails, the pages stay mapped and the sync cleans them as it otherwise would.
    fn release_written(&self, at: usize, len: usize) {
        let start = at / self.page * self.page;
        let end = (at + len) / self.page * self.page;
        if end < start + RELEASE_PAGES_MIN * self.page {
            return;
        }
        // SAFETY: `start..end` lies inside the mapping (`at..at + len` was checked by the
        // caller) and is page-aligned, as madvise requires (the mapping starts on a page).
        // For a shared file mapping MADV_DONTNEED changes no byte anyone can observe: the
        // page cache keeps the data (a dirty page-table entry marks its page dirty as it
        // is dropped) and the next access maps the same page again. No reference into
        // the mapping exists (module docs), and appends only go beyond `at + len`, so no
        // writer is copying into these pages. A checkpoint rewriting the segment header
        // races with nothing here either: it lands in the page cache whether or not its
        // page is mapped at that instant.
        let _ = unsafe {
            self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
    }
}

/// The fewest whole pages a sync unmaps before writing them back (see
/// [`MappedFile::release_written`]).
const RELEASE_PAGES_MIN: usize = 8;

/// The system's page size (4096 if it cannot be read).
fn page_size() -> usize {
    // SAFETY: sysconf takes an integer name and touches no memory of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|s| s.is_power_of_two()).unwrap_or(4096)
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

/// Drops the page cache's clean pages of `file` from `offset` to its end
/// (`posix_fadvise(POSIX_FADV_DONTNEED)`), so the next read of them comes from the disk.
/// Call it after an `fdatasync`: dirty pages are not dropped. Pages whose writeback
/// failed are clean, so they go: Linux would otherwise keep serving their bytes,
/// although the disk never received them.
pub(super) fn drop_cached(file: &File, offset: u64) -> io::Result<()> {
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset overflows off_t"))?;
    // SAFETY: `file` is an open descriptor for the lifetime of the call; posix_fadvise
    // takes plain integers (length 0: to the end of the file) and touches no memory of
    // ours.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
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

#[cfg(test)]
mod tests {
    use super::{MappedFile, fallocate};

    /// KiB of `map` mapped into this process (the `Rss` of its entry in /proc/self/smaps).
    fn mapped_kib(map: &MappedFile) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", map.map.as_ptr() as usize);
        let entry = smaps.lines().skip_while(|l| !l.starts_with(&start)).skip(1);
        let rss = entry.take_while(|l| !l.contains('-')).find(|l| l.starts_with("Rss:"));
        rss.unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn synced_pages_are_unmapped_and_keep_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path);
        let file = file.unwrap();
        let len = 64 * 4096u64;
        fallocate(&file, len).unwrap();
        let map = MappedFile::map(file, len, true).unwrap();
        let page = map.page;
        let pattern = |from: usize, n: usize| -> Vec<u8> {
            (from..from + n).map(|i| (i * 7 % 251) as u8).collect()
        };

        let first = pattern(0, 10 * page + 100);
        map.write_at(0, &[&first]).unwrap();
        let before = mapped_kib(&map);
        map.sync_range(0, first.len() as u64).unwrap();
        let after = mapped_kib(&map);
        assert!(before >= after + 10 * page / 1024, "mapped {before} KiB, then {after} KiB");

        // The next append goes into the page that stayed mapped and on beyond it.
        let second = pattern(first.len(), 3 * page);
        map.write_at(first.len() as u64, &[&second]).unwrap();
        map.sync_range(first.len() as u64, second.len() as u64).unwrap();

        let all = pattern(0, first.len() + second.len());
        let mut back = vec![0; all.len()];
        map.read_at(0, &mut back).unwrap();
        assert_eq!(back, all, "read through the mapping");
        assert_eq!(&std::fs::read(&path).unwrap()[..all.len()], &all[..], "read from the file");
    }
}
