//! Crash-recovery suite of the whole store: one binary, one module per kind of crash.
//!
//! - `corruption`: bit flips and zeroed blocks in the synced log, snapshots and manifest.
//! - `disk_model`: the simulated disk's stricter faults under the store (read errors in
//!   recovery, a crash inside recovery, a power cut under four writers).
//! - `drill`: a disaster drill: writing under load with shipping to an S3 server on
//!   loopback, SIGKILL, the directory deleted, the store restored from the bucket.
//! - `durability`: one case per durability defect found by reading the code.
//! - `feed`: the change feed's durable consumers under power cuts (simulated disk) and
//!   SIGKILL, in the middle of an acknowledgement too.
//! - `io_errors`: the N-th storage operation fails, once or from then on, for every N.
//! - `kill_loop`: the store in a child process, SIGKILLed at random moments.
//! - `kill_writers`: the same with four writer threads and a compactor, under every sync
//!   policy and both I/O backends.
//! - `power_cut`: the store in a child process on a crash-consistency FUSE mount, both
//!   backends and every sync policy, power cut through the real kernel I/O path; and
//!   failed syncs, writes and `fallocate` there.
//! - `power_loss`: the store's log on the simulated disk, power cut at a random point.
//! - `sweep`: a crash after every storage operation of a workload, and after every step
//!   of every compaction's publish.
//!
//! Each runs a deterministic workload (`workload`) and compares the recovered store with
//! the reference model folded from the same workload. See `docs/reliability.md`.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod corruption;
mod disk_model;
mod drill;
mod durability;
mod feed;
mod io_errors;
mod kill_loop;
mod kill_writers;
mod power_cut;
mod power_loss;
mod sweep;
mod workload;

/// Held (shared) by tests while they have a store open in this process, and
/// (exclusively) by the kill loop while it spawns a child: between `fork` and `exec` a
/// child holds copies of the parent's descriptors, `flock` locks included, so a store
/// closed and reopened in that window would find its own directory locked.
pub static SPAWN: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A count from the environment, or `default`.
pub fn env_count(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// The message of a caught panic.
pub fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default()
}
