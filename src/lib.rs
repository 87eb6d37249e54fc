//! orderlog: an embedded, durable, event-sourced store for orders.
//!
//! This facade re-exports the public API of the workspace's crates. Today that is the
//! write-ahead log ([`wal`]); the order store, snapshots and analytics join it as they
//! land. See `ARCHITECTURE.md` for the map.

pub use orderlog_wal as wal;
pub use orderlog_wal::{Lsn, RecoveryMode, SyncPolicy, Wal, WalError, WalOptions};
