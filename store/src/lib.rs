//! `orderlog-store`: the event-sourced order store.
//!
//! - The order domain: [`Order`], [`OrderStatus`], [`PaymentMethod`] and the
//!   struct-of-arrays state [`OrderSoA`] with its `order_id -> row` index and its Arrow
//!   conversion.
//! - Mutations as [`Event`]s, encoded in batches (one log frame each) and applied by one
//!   fold, [`OrderState::apply_batch`], shared by live writes, recovery and compaction.
//! - [`OrderStore`]: validated, logged, durable mutations (blocking and async), recovery
//!   from the newest snapshot plus the log tail, and a compactor ([`OrderStore::compact`],
//!   or in the background) that folds the log into Arrow IPC + Parquet snapshots.
//!
//! - [`analytics`] (cargo feature `analytics`, on by default): SQL in DuckDB over the
//!   snapshots and the live tail, time travel, and the three standard reports.

#[cfg(feature = "analytics")]
pub mod analytics;
mod analytics_options;
mod async_api;
mod compactor;
pub mod domain;
mod error;
pub mod events;
pub mod feed;
mod fold;
#[doc(hidden)]
pub mod fuzzing;
pub mod layout;
mod offline;
mod point;
pub mod replica;
pub mod replication;
pub mod state;
mod state_arrow;
mod store;
#[cfg(feature = "analytics")]
mod views;

#[cfg(feature = "analytics")]
pub use analytics::{
    Analytics, AnalyticsError, AnalyticsInfo, CustomerTotal, MonthTrend, StatusRevenue, ViewKind,
};
pub use analytics_options::{AnalyticsOptions, Spill};
pub use compactor::{CompactionOptions, CompactionReport, CompactionStats, STATE_SCHEMA_VERSION};
pub use domain::{
    DomainError, Order, OrderBuilder, OrderSoA, OrderStatus, PaymentMethod, SoaMemoryStats,
};
pub use error::{FeedError, Result, StoreError};
pub use events::{DecodeError, Event, EventKind, EventType};
pub use fold::Fold;
pub use offline::OfflineStore;
pub use orderlog_snapshot::{ParquetCompression, PublishStep, SnapshotOptions};
pub use orderlog_wal::{Lsn, RecoveryMode, SyncPolicy, WalError, WalOptions};
pub use point::{FoldTarget, Unreachable};
pub use replication::{LagPolicy, REPLICATION_CONSUMER, ReplicationOptions, ReplicationStats};
pub use state::{MutationError, OrderState, ReserveError};
pub use store::{OpenReport, OrderStore, StoreOptions, StoreStats};
