//! One order, its status and payment method.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::DomainError;

/// Where an order is in its life. Stored as one byte (`u8`); the values are part of the
/// on-disk formats (events, snapshots) and never change.
///
/// Legal transitions: `Pending → Confirmed → Shipped → Delivered → Returned`, and
/// `Pending | Confirmed → Cancelled`. `Cancelled` and `Returned` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum OrderStatus {
    /// Created, not yet confirmed.
    #[default]
    Pending = 0,
    /// Confirmed (paid), not yet shipped.
    Confirmed = 1,
    /// Handed to the carrier.
    Shipped = 2,
    /// Received by the customer.
    Delivered = 3,
    /// Cancelled before shipping.
    Cancelled = 4,
    /// Sent back after delivery.
    Returned = 5,
}

impl OrderStatus {
    /// Every status, in byte order.
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Returned,
    ];

    /// The status's name, as shown to people and SQL.
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::Pending => "Pending",
            OrderStatus::Confirmed => "Confirmed",
            OrderStatus::Shipped => "Shipped",
            OrderStatus::Delivered => "Delivered",
            OrderStatus::Cancelled => "Cancelled",
            OrderStatus::Returned => "Returned",
        }
    }

    /// True if an order may move from `self` to `next`.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Confirmed)
                | (Confirmed, Shipped)
                | (Shipped, Delivered)
                | (Delivered, Returned)
                | (Pending, Cancelled)
                | (Confirmed, Cancelled)
        )
    }
}

impl From<OrderStatus> for u8 {
    fn from(s: OrderStatus) -> u8 {
        s as u8
    }
}

impl TryFrom<u8> for OrderStatus {
    type Error = DomainError;
    fn try_from(b: u8) -> Result<Self, DomainError> {
        OrderStatus::ALL
            .get(usize::from(b))
            .copied()
            .ok_or(DomainError::InvalidEnum { kind: "OrderStatus", value: b })
    }
}

/// How an order is paid. Stored as one byte (`u8`); the values never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum PaymentMethod {
    /// Credit card.
    #[default]
    CreditCard = 0,
    /// Debit card.
    DebitCard = 1,
    /// PayPal.
    PayPal = 2,
    /// Bank transfer.
    BankTransfer = 3,
    /// Cash on delivery.
    CashOnDelivery = 4,
}

impl PaymentMethod {
    /// Every method, in byte order.
    pub const ALL: [PaymentMethod; 5] = [
        PaymentMethod::CreditCard,
        PaymentMethod::DebitCard,
        PaymentMethod::PayPal,
        PaymentMethod::BankTransfer,
        PaymentMethod::CashOnDelivery,
    ];

    /// The method's name, as shown to people and SQL.
    pub fn name(self) -> &'static str {
        match self {
            PaymentMethod::CreditCard => "CreditCard",
            PaymentMethod::DebitCard => "DebitCard",
            PaymentMethod::PayPal => "PayPal",
            PaymentMethod::BankTransfer => "BankTransfer",
            PaymentMethod::CashOnDelivery => "CashOnDelivery",
        }
    }
}

impl From<PaymentMethod> for u8 {
    fn from(p: PaymentMethod) -> u8 {
        p as u8
    }
}

impl TryFrom<u8> for PaymentMethod {
    type Error = DomainError;
    fn try_from(b: u8) -> Result<Self, DomainError> {
        PaymentMethod::ALL
            .get(usize::from(b))
            .copied()
            .ok_or(DomainError::InvalidEnum { kind: "PaymentMethod", value: b })
    }
}

/// An order. `total_amount` is always `quantity × unit_price`;
/// `order_timestamp` is seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    /// Unique id.
    pub order_id: u64,
    /// Who ordered.
    pub customer_id: u64,
    /// What was ordered.
    pub product_id: u64,
    /// How many; at least 1.
    pub quantity: u32,
    /// Price of one unit; finite and not negative.
    pub unit_price: f64,
    /// `quantity × unit_price`.
    pub total_amount: f64,
    /// Where the order is in its life.
    pub status: OrderStatus,
    /// How it is paid.
    pub payment_method: PaymentMethod,
    /// When it was placed, in seconds since the Unix epoch.
    pub order_timestamp: u64,
    /// A hash of the shipping address (the address itself is not stored).
    pub shipping_address_hash: u64,
}

/// Seconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_epoch_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Order {
    /// A new pending order paid by credit card, placed now, with its total derived.
    pub fn new(
        order_id: u64,
        customer_id: u64,
        product_id: u64,
        quantity: u32,
        unit_price: f64,
    ) -> Self {
        Order {
            order_id,
            customer_id,
            product_id,
            quantity,
            unit_price,
            total_amount: f64::from(quantity) * unit_price,
            status: OrderStatus::Pending,
            payment_method: PaymentMethod::CreditCard,
            order_timestamp: now_epoch_seconds(),
            shipping_address_hash: 0,
        }
    }

    /// The same order with another status.
    pub fn with_status(mut self, status: OrderStatus) -> Self {
        self.status = status;
        self
    }

    /// The same order with another payment method.
    pub fn with_payment_method(mut self, payment_method: PaymentMethod) -> Self {
        self.payment_method = payment_method;
        self
    }

    /// The same order placed at another time (seconds since the Unix epoch).
    pub fn with_timestamp(mut self, order_timestamp: u64) -> Self {
        self.order_timestamp = order_timestamp;
        self
    }

    /// The same order shipped to another address hash.
    pub fn with_shipping_address_hash(mut self, hash: u64) -> Self {
        self.shipping_address_hash = hash;
        self
    }

    /// Checks the value rules: quantity ≥ 1, prices finite and ≥ 0, total consistent.
    pub fn validate(&self) -> Result<(), DomainError> {
        validate_values(self.order_id, self.quantity, self.unit_price)?;
        let expected = f64::from(self.quantity) * self.unit_price;
        if !self.total_amount.is_finite() || !totals_agree(expected, self.total_amount) {
            return Err(DomainError::InconsistentTotal {
                order_id: self.order_id,
                expected,
                found: self.total_amount,
            });
        }
        Ok(())
    }
}

/// Quantity ≥ 1 and a finite, non-negative unit price whose total is finite.
fn validate_values(order_id: u64, quantity: u32, unit_price: f64) -> Result<(), DomainError> {
    if quantity == 0 {
        return Err(DomainError::ZeroQuantity { order_id });
    }
    if !unit_price.is_finite()
        || unit_price < 0.0
        || !(f64::from(quantity) * unit_price).is_finite()
    {
        return Err(DomainError::InvalidPrice { order_id, value: unit_price });
    }
    Ok(())
}

/// Totals agree when equal up to rounding of the multiplication.
fn totals_agree(expected: f64, found: f64) -> bool {
    (expected - found).abs() <= 1e-9 * expected.abs().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_bytes_and_reject_unknown_ones() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::try_from(u8::from(s)).ok(), Some(s));
        }
        for p in PaymentMethod::ALL {
            assert_eq!(PaymentMethod::try_from(u8::from(p)).ok(), Some(p));
        }
        assert!(matches!(
            OrderStatus::try_from(6),
            Err(DomainError::InvalidEnum { kind: "OrderStatus", value: 6 })
        ));
        assert!(matches!(
            PaymentMethod::try_from(200),
            Err(DomainError::InvalidEnum { value: 200, .. })
        ));
    }

    #[test]
    fn status_machine_allows_only_the_documented_moves() {
        use OrderStatus::*;
        let legal = [
            (Pending, Confirmed),
            (Confirmed, Shipped),
            (Shipped, Delivered),
            (Delivered, Returned),
            (Pending, Cancelled),
            (Confirmed, Cancelled),
        ];
        for a in OrderStatus::ALL {
            for b in OrderStatus::ALL {
                assert_eq!(a.can_become(b), legal.contains(&(a, b)), "{a:?} -> {b:?}");
            }
        }
    }

    #[test]
    fn new_derives_the_total_and_validate_rejects_bad_values() {
        let o = Order::new(1, 101, 1001, 2, 25.99);
        assert_eq!(o.total_amount, 51.98);
        assert!(o.validate().is_ok());
        assert!(matches!(
            Order::new(1, 1, 1, 0, 1.0).validate(),
            Err(DomainError::ZeroQuantity { .. })
        ));
        for price in [f64::NAN, f64::INFINITY, -0.01] {
            assert!(matches!(
                Order::new(1, 1, 1, 1, price).validate(),
                Err(DomainError::InvalidPrice { .. })
            ));
        }
        let mut o = Order::new(1, 1, 1, 3, 10.0);
        o.total_amount = 31.0;
        assert!(matches!(o.validate(), Err(DomainError::InconsistentTotal { .. })));
    }
}
