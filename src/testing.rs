//! Crash testing for services that embed orderlog (cargo feature `testing`).
//!
//! A [`CrashDisk`] runs an [`OrderStore`] whose whole directory (its log and its
//! snapshots) lives on a simulated disk that remembers which bytes and which directory
//! entries were synced. A test runs its own workload on it, lets the
//! "process" die at the N-th storage operation ([`CrashDisk::crash_after`]) or at a named
//! moment ([`CrashDisk::crash_at`] a [`KillPoint`]), cuts the power ([`CrashDisk::power_cut`]:
//! unsynced writes dropped, kept, torn or garbled, unsynced directory changes lost, all
//! drawn from a seed), reopens, and checks its own invariants. No root, no FUSE, no
//! real power loss: seeded and reproducible, in an ordinary `cargo test`.
//!
//! What it does not simulate: the kernel's own I/O path (the page cache, the mapping's
//! writeback). For that, [`CrashFs`] mounts a file system that drops what was not synced
//! at a power cut, under the store running with its production storage in a child
//! process (Linux, `/dev/fuse`, root or `fusermount3`; see `examples/power_cut.rs`).
//! Neither simulates real devices, whose write caches are trusted to honour `fsync`. See
//! `docs/reliability.md`.
//!
//! ```
//! use orderlog::testing::CrashDisk;
//! use orderlog::{Event, Order, StoreOptions};
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let disk = CrashDisk::new(dir.path(), StoreOptions::default());
//! let store = disk.open().expect("open");
//! let mut acked = Vec::new();
//! disk.crash_after(40); // the 40th storage operation from now kills the "process"
//! for id in 1..=1_000u64 {
//!     let order = Order::builder(id).customer(7).product(9).quantity(1).unit_price(5.0);
//!     match store.apply(Event::create(order.build().expect("a valid order"))) {
//!         Ok(_) => acked.push(id),
//!         Err(_) => break, // the process died
//!     }
//! }
//! drop(store);
//! let after = disk.power_cut(42).open().expect("recovery");
//! assert!(acked.iter().all(|&id| after.get(id).is_some()), "an acknowledged order was lost");
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use orderlog_wal::KillPoint;
pub use orderlog_wal::storage::SimStorage;
pub use orderlog_wal::storage::sim::{Fault, FaultKind, FaultTarget};

use crate::{CompactionReport, OrderStore, StoreError, StoreOptions};
pub use orderlog_snapshot::PublishStep;

/// A crash-consistency FUSE file system: power cuts through the real kernel I/O path
/// (page cache, mapped writeback, `msync`, `fdatasync`, renames, directory syncs), for
/// tests that run the store in a child process with its production storage. See
/// [`orderlog_crashfs`] and `examples/power_cut.rs`.
pub use orderlog_crashfs::{
    CrashFs, CrashFsError, Fault as FsFault, FaultError as FsFaultError, FaultOp as FsFaultOp,
    FsStats,
};

/// [`OrderStore::compact`], calling `hook` after each step of publishing the snapshot; an
/// error from the hook stops the compaction right there, as a crash would (the next open
/// must recover either the old snapshot or the new one, whole).
pub fn compact_with_hook(
    store: &OrderStore,
    hook: &mut dyn FnMut(PublishStep) -> orderlog_snapshot::Result<()>,
) -> Result<CompactionReport, StoreError> {
    store.compact_with_hook(hook)
}

/// A store directory on a simulated disk; see the module docs.
#[derive(Debug, Clone)]
pub struct CrashDisk {
    disk: SimStorage,
    dir: PathBuf,
    options: StoreOptions,
}

impl CrashDisk {
    /// A fresh simulated disk for a store, and `options` for every open. `dir` only
    /// names the store in messages: nothing is written there.
    pub fn new(dir: impl AsRef<Path>, options: StoreOptions) -> CrashDisk {
        let dir = dir.as_ref().to_path_buf();
        CrashDisk { disk: SimStorage::new(&dir), dir, options }
    }

    /// Opens (recovering) the store over this disk. One store at a time: drop the
    /// previous one first, as a restarted process would.
    pub fn open(&self) -> Result<OrderStore, StoreError> {
        OrderStore::open_on(Arc::new(self.disk.clone()), self.options.clone())
    }

    /// From the `n`-th mutating storage operation on (0-based, counted from now), every
    /// operation fails as if the process had died there: the store returns errors and
    /// acknowledges nothing more.
    pub fn crash_after(&self, n: u64) {
        self.disk.crash_after(n);
    }

    /// At the `nth` passage (from 1, counted from now) of the named kill `point` (in a
    /// write, a sync, a segment roll, a compaction's publish or its deletion of log
    /// segments), the "process" dies: that step and every later storage operation fail.
    pub fn crash_at(&self, point: KillPoint, nth: u64) {
        self.disk.crash_at(point, nth);
    }

    /// Fails one storage operation (or every one from it on) with an I/O error or a full
    /// disk; a failed sync poisons the log.
    pub fn inject(&self, fault: Fault) {
        self.disk.inject(fault);
    }

    /// Mutating storage operations performed so far (to pick crash points).
    pub fn operations(&self) -> u64 {
        self.disk.op_count()
    }

    /// The disk as a power cut now would leave it, drawn from `seed`: synced bytes
    /// survive; each unsynced write is dropped, kept, torn (at a 512 B or 4 KiB boundary,
    /// or sector by sector) or garbled; unsynced directory changes may be lost, in any
    /// order. The same seed gives the same disk. Open the result to recover.
    pub fn power_cut(&self, seed: u64) -> CrashDisk {
        CrashDisk {
            disk: self.disk.crash(seed),
            dir: self.dir.clone(),
            options: self.options.clone(),
        }
    }

    /// The disk as a restarted process finds it after this one died, without a power
    /// cut: unsynced writes still in the page cache, readable, not yet durable.
    pub fn restart(&self) -> CrashDisk {
        CrashDisk {
            disk: self.disk.restart(),
            dir: self.dir.clone(),
            options: self.options.clone(),
        }
    }

    /// The simulated disk itself (for faults and inspection), seen from the store's
    /// directory: the log's segments are under `wal/`, the snapshots under `snapshots/`.
    pub fn storage(&self) -> &SimStorage {
        &self.disk
    }
}
