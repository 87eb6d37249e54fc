//! `orderlog-store`: the event-sourced order store.
//!
//! Today: the order domain — [`Order`], [`OrderStatus`], [`PaymentMethod`] and the
//! struct-of-arrays state [`OrderSoA`] with its `order_id -> row` index and its Arrow
//! conversion. Events, recovery, the compactor, the async API and analytics follow.

pub mod domain;
pub mod events;
pub mod state;

pub use domain::{DomainError, Order, OrderSoA, OrderStatus, PaymentMethod, SoaMemoryStats};
pub use events::{DecodeError, Event, EventKind};
pub use state::{MutationError, OrderState};
