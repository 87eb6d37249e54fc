//! `orderlog-store`: the event-sourced order store.
//!
//! Today: the order domain — [`Order`], [`OrderStatus`], [`PaymentMethod`] and the
//! struct-of-arrays state [`OrderSoA`] with its `order_id -> row` index and its Arrow
//! conversion. Events, recovery, the compactor, the async API and analytics follow.

mod compactor;
pub mod domain;
mod error;
pub mod events;
pub mod seed;
pub mod state;
mod state_arrow;
mod store;

pub use compactor::{CompactionOptions, CompactionReport, STATE_SCHEMA_VERSION};
pub use domain::{DomainError, Order, OrderSoA, OrderStatus, PaymentMethod, SoaMemoryStats};
pub use error::{Result, StoreError};
pub use events::{DecodeError, Event, EventKind};
pub use orderlog_snapshot::{ParquetCompression, PublishStep, SnapshotOptions};
pub use orderlog_wal::{Lsn, RecoveryMode, SyncPolicy, WalError, WalOptions};
pub use seed::{
    ArrowPersistence, EventSourcedPersistence, InMemoryOrderStore, MemoryStats, ParquetPersistence,
    PartitionedParquetPersistence, PersistenceError, PersistentOrderStore, SoAPersistence, SoaRows,
};
pub use state::{MutationError, OrderState};
pub use store::{OpenReport, OrderStore, StoreOptions};
