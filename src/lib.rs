//! orderlog: an embedded, durable, event-sourced store for orders.
//!
//! This facade re-exports the workspace's public API: the order store and its domain
//! ([`store`]), columnar snapshots ([`snapshot`]) and the write-ahead log ([`wal`]).
//! With the cargo feature `testing`, [`testing`] runs a store on a simulated disk for
//! crash tests. See `ARCHITECTURE.md` for the map.

#[cfg(feature = "testing")]
pub mod testing;

pub use orderlog_snapshot as snapshot;
pub use orderlog_store as store;
pub use orderlog_wal as wal;

pub use orderlog_store::{
    CompactionOptions, CompactionReport, Event, EventKind, MutationError, OpenReport, Order,
    OrderSoA, OrderState, OrderStatus, OrderStore, PaymentMethod, StoreError, StoreOptions,
};
pub use orderlog_wal::{Lsn, RecoveryMode, SyncPolicy, Wal, WalError, WalOptions};
pub use soa_persistence;
