//! A store directory's layout: `wal/` holds the log, `snapshots/` the snapshots and
//! their manifest. The store, the offline reader and the `orderlog` tool all name the
//! parts through here.

use std::path::{Path, PathBuf};

/// The log's directory, inside a store directory.
pub const WAL_DIR: &str = "wal";
/// The snapshots' directory, inside a store directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// `dir/wal`: the log of the store in `dir`.
pub fn wal_dir(dir: &Path) -> PathBuf {
    dir.join(WAL_DIR)
}

/// `dir/snapshots`: the snapshots of the store in `dir`.
pub fn snapshot_dir(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_DIR)
}
