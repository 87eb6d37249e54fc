//! Shared helpers: deterministic payloads, small-segment options, reading a log back.

use std::sync::Arc;

use orderlog_wal::storage::{SimStorage, Storage};
use orderlog_wal::{Lsn, RecoveryMode, SyncPolicy, Wal, WalOptions};

/// Options with the smallest segments, so a few frames already span several segments.
pub fn small_opts() -> WalOptions {
    WalOptions {
        segment_bytes: orderlog_wal::options::SEGMENT_BYTES_MIN,
        frame_bytes_max: 2000,
        batch_bytes_max: 4096,
        sync_policy: SyncPolicy::Always,
        ..WalOptions::default()
    }
}

/// The payload a test appends as its `n`-th frame: content and length depend on `n`
/// and `seed`, so any misplaced or stale frame is caught by comparison.
pub fn payload(seed: u64, n: u64) -> Vec<u8> {
    let len = ((seed.wrapping_mul(31) ^ n.wrapping_mul(2654435761)) % 300) as usize;
    let mut p = format!("s{seed}n{n}:").into_bytes();
    p.extend((0..len).map(|i| (i as u64 ^ n ^ seed) as u8));
    p
}

/// Opens a log on a simulated disk.
pub fn open_sim(disk: &SimStorage, opts: WalOptions) -> orderlog_wal::Result<Wal> {
    Wal::open_with(Arc::new(disk.clone()) as Arc<dyn Storage>, opts)
}

/// Opens with a given recovery mode.
pub fn open_sim_mode(disk: &SimStorage, mode: RecoveryMode) -> orderlog_wal::Result<Wal> {
    open_sim(disk, WalOptions { recovery_mode: mode, ..small_opts() })
}

/// Every frame in the log as (lsn, payload).
pub fn read_all(wal: &Wal) -> orderlog_wal::Result<Vec<(Lsn, Vec<u8>)>> {
    let first = wal.stats().first_lsn;
    wal.iter_from(first)?.map(|f| f.map(|f| (f.lsn(), f.payload().to_vec()))).collect()
}
