//! The store directory a subcommand is given: checked before anything opens it, so a
//! wrong path is a clear message and never a directory created by accident.

use std::path::{Path, PathBuf};

pub use orderlog_store::layout::{snapshot_dir, wal_dir};
use orderlog_wal::{LockState, writer_lock_state};

use crate::error::{CliError, Result};

/// Checks that `dir` is an existing store directory (holding `wal/`).
pub fn existing_store(dir: &Path) -> Result<PathBuf> {
    let not = |why: &str| CliError::NotAStore { path: dir.to_path_buf(), why: why.to_string() };
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => not("it does not exist"),
        _ => CliError::io("reading", dir)(e),
    })?;
    if !meta.is_dir() {
        return Err(not("it is not a directory"));
    }
    if !wal_dir(dir).is_dir() {
        return Err(not(
            "it holds no wal/ directory (a store directory holds wal/ and snapshots/)",
        ));
    }
    Ok(dir.to_path_buf())
}

/// The live writer holding `dir`, if any: `Some(pid)` (`None` inside when unknown).
pub fn live_writer(dir: &Path) -> Option<Option<u32>> {
    match writer_lock_state(wal_dir(dir)) {
        LockState::Held { pid } => Some(Some(pid)),
        LockState::Free => None,
        _ => None,
    }
}

/// Refuses a directory a live store holds, for subcommands that write.
pub fn refuse_if_live(dir: &Path, command: &'static str) -> Result<()> {
    match live_writer(dir) {
        Some(pid) => Err(CliError::Locked { path: dir.to_path_buf(), pid, command }),
        None => Ok(()),
    }
}

/// Maps the store's "locked" errors to the tool's clear message.
pub fn locked_to_cli(dir: &Path, command: &'static str, e: orderlog_store::StoreError) -> CliError {
    use orderlog_store::{StoreError, WalError};
    match e {
        StoreError::Wal(WalError::Locked { .. })
        | StoreError::Snapshot(orderlog_snapshot::SnapshotError::Locked { .. }) => {
            CliError::Locked { path: dir.to_path_buf(), pid: live_writer(dir).flatten(), command }
        }
        e => CliError::Store(e),
    }
}
