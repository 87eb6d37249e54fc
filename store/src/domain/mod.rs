//! The order domain: orders, their enums, the struct-of-arrays state and its index.

mod arrow;
pub(crate) mod index;
mod order;
mod soa;

pub use order::{Order, OrderBuilder, OrderStatus, PaymentMethod, now_epoch_seconds};
pub use soa::{COLUMN_BYTES_PER_ORDER, OrderSoA, SoaMemoryStats};

/// A value or an operation the order domain does not allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// A byte that is not one of the enum's values.
    #[error("{value} is not a valid {kind}")]
    InvalidEnum {
        /// The enum (`OrderStatus` or `PaymentMethod`).
        kind: &'static str,
        /// The byte found.
        value: u8,
    },
    /// Quantity must be at least 1.
    #[error("order {order_id}: quantity must be at least 1")]
    ZeroQuantity {
        /// The order.
        order_id: u64,
    },
    /// Prices must be finite and not negative (and so must their total).
    #[error("order {order_id}: unit price {value} is not a finite, non-negative amount")]
    InvalidPrice {
        /// The order.
        order_id: u64,
        /// The price given.
        value: f64,
    },
    /// A field an order cannot do without was not given to its builder.
    #[error("order {order_id}: no {field} given")]
    MissingField {
        /// The order.
        order_id: u64,
        /// The field's name in [`crate::OrderBuilder`].
        field: &'static str,
    },
    /// An order with this id already exists.
    #[error("order {order_id} already exists")]
    DuplicateOrder {
        /// The order.
        order_id: u64,
    },
    /// The state cannot hold more orders.
    #[error("too many orders (at most {max})")]
    TooManyOrders {
        /// The limit.
        max: usize,
    },
}
