//! orderlog: an embedded, durable, event-sourced store for orders.
//!
//! One import path for the whole public API: the store, its options, domain, events and
//! errors at the root; SQL analytics in [`analytics`] (cargo feature `analytics`, on by
//! default); the offline reader [`OfflineStore`]; struct-of-arrays persistence in
//! [`persistence`]; the layers under the store as [`wal`], [`snapshot`] and [`storage`];
//! and, with the cargo feature `testing`, [`testing`], a store on a simulated disk for
//! crash tests. See `ARCHITECTURE.md` for the map.
//!
//! ```
//! use orderlog::{Event, Order, OrderStatus, OrderStore, StoreOptions};
//!
//! # fn main() -> Result<(), orderlog::StoreError> {
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! let store = OrderStore::open(dir.path(), StoreOptions::default())?; // recovers
//! let order = Order::builder(1).customer(101).product(1001).quantity(2).unit_price(25.99);
//! let lsn = store.apply(Event::create(order.build()?))?; // validated, logged, durable
//! store.apply(Event::set_status(1, OrderStatus::Confirmed))?;
//! assert_eq!(store.get(1).map(|o| o.status), Some(OrderStatus::Confirmed));
//! assert!(lsn >= 1);
//!
//! let sql = store.analytics()?; // DuckDB over the snapshots and every mutation since
//! let by_status = sql.revenue_by_status()?;
//! assert_eq!(by_status[0].status, OrderStatus::Confirmed);
//! # Ok(()) }
//! ```

#[cfg(feature = "testing")]
pub mod testing;

/// Backups in object storage: layout, index, shipping, verifying and restoring.
pub use orderlog_ship as ship;
pub use orderlog_snapshot as snapshot;
pub use orderlog_storage as storage;
pub use orderlog_wal as wal;
/// Struct-of-arrays persistence: `SoAPersistence` and its backends, `PersistentOrderStore`.
pub use soa_persistence as persistence;

#[cfg(feature = "analytics")]
pub use orderlog_store::analytics;
#[cfg(feature = "analytics")]
pub use orderlog_store::{
    Analytics, AnalyticsError, AnalyticsInfo, CustomerTotal, MonthTrend, StatusRevenue, ViewKind,
};
pub use orderlog_store::{
    AnalyticsOptions, CompactionOptions, CompactionReport, CompactionStats, DecodeError,
    DomainError, Event, EventKind, EventType, FeedError, Fold, FoldTarget, MutationError,
    OfflineStore, OpenReport, Order, OrderSoA, OrderState, OrderStatus, OrderStore,
    ParquetCompression, PaymentMethod, ReserveError, SnapshotOptions, SoaMemoryStats, Spill,
    StoreError, StoreOptions, StoreStats, Unreachable, domain, events, feed, layout,
};
pub use orderlog_store::{
    LagPolicy, REPLICATION_CONSUMER, ReplicationOptions, ReplicationStats, replica, replication,
};
pub use orderlog_wal::{IoBackend, Lsn, RecoveryMode, SyncPolicy, Wal, WalError, WalOptions};
