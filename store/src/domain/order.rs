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

/// An order. Its total is derived ([`Order::total_amount`]), never stored in it, so no
/// caller can set one that disagrees with quantity × unit price.
///
/// Build one with [`Order::builder`], which names every field and checks the values:
///
/// ```
/// use orderlog_store::{Order, PaymentMethod};
///
/// let order = Order::builder(1)
///     .customer(101)
///     .product(1001)
///     .quantity(2)
///     .unit_price(25.99)
///     .payment(PaymentMethod::PayPal)
///     .placed_at(1_700_000_000)
///     .build()?;
/// assert_eq!(order.total_amount(), 51.98);
/// # Ok::<(), orderlog_store::DomainError>(())
/// ```
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
    /// Where the order is in its life.
    pub status: OrderStatus,
    /// How it is paid.
    pub payment_method: PaymentMethod,
    /// When it was placed, in seconds since the Unix epoch (UTC).
    pub order_timestamp: u64,
    /// A hash of the shipping address (the address itself is not stored).
    pub shipping_address_hash: u64,
}

/// Seconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_epoch_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Order {
    /// Starts an order with id `order_id`. Customer, product, quantity and unit price
    /// must be named; the rest default to a pending order paid by credit card, placed
    /// now (the system clock, when [`OrderBuilder::build`] runs), with address hash 0.
    pub fn builder(order_id: u64) -> OrderBuilder {
        OrderBuilder {
            order_id,
            customer_id: None,
            product_id: None,
            quantity: None,
            unit_price: None,
            status: OrderStatus::Pending,
            payment_method: PaymentMethod::CreditCard,
            order_timestamp: None,
            shipping_address_hash: 0,
        }
    }

    /// `quantity × unit_price`: the only total an order has.
    pub fn total_amount(&self) -> f64 {
        f64::from(self.quantity) * self.unit_price
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

    /// Checks the value rules: quantity ≥ 1; unit price and total finite and ≥ 0.
    pub fn validate(&self) -> Result<(), DomainError> {
        validate_values(self.order_id, self.quantity, self.unit_price)
    }
}

/// An order under construction ([`Order::builder`]): every field set by name.
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "an order builder does nothing until `build` is called"]
pub struct OrderBuilder {
    order_id: u64,
    customer_id: Option<u64>,
    product_id: Option<u64>,
    quantity: Option<u32>,
    unit_price: Option<f64>,
    status: OrderStatus,
    payment_method: PaymentMethod,
    order_timestamp: Option<u64>,
    shipping_address_hash: u64,
}

impl OrderBuilder {
    /// Who orders (required).
    pub fn customer(mut self, customer_id: u64) -> Self {
        self.customer_id = Some(customer_id);
        self
    }

    /// What is ordered (required).
    pub fn product(mut self, product_id: u64) -> Self {
        self.product_id = Some(product_id);
        self
    }

    /// How many (required; at least 1).
    pub fn quantity(mut self, quantity: u32) -> Self {
        self.quantity = Some(quantity);
        self
    }

    /// The price of one unit (required; finite and not negative).
    pub fn unit_price(mut self, unit_price: f64) -> Self {
        self.unit_price = Some(unit_price);
        self
    }

    /// The status it starts in (default: pending).
    pub fn status(mut self, status: OrderStatus) -> Self {
        self.status = status;
        self
    }

    /// How it is paid (default: credit card).
    pub fn payment(mut self, payment_method: PaymentMethod) -> Self {
        self.payment_method = payment_method;
        self
    }

    /// When it was placed, in seconds since the Unix epoch (default: the system clock
    /// when [`OrderBuilder::build`] runs).
    pub fn placed_at(mut self, epoch_seconds: u64) -> Self {
        self.order_timestamp = Some(epoch_seconds);
        self
    }

    /// A hash of the shipping address (default: 0).
    pub fn shipping_address_hash(mut self, hash: u64) -> Self {
        self.shipping_address_hash = hash;
        self
    }

    /// The order, or which required field is missing or which value is invalid.
    pub fn build(self) -> Result<Order, DomainError> {
        let order_id = self.order_id;
        let missing = |field| DomainError::MissingField { order_id, field };
        let order = Order {
            order_id,
            customer_id: self.customer_id.ok_or_else(|| missing("customer"))?,
            product_id: self.product_id.ok_or_else(|| missing("product"))?,
            quantity: self.quantity.ok_or_else(|| missing("quantity"))?,
            unit_price: self.unit_price.ok_or_else(|| missing("unit_price"))?,
            status: self.status,
            payment_method: self.payment_method,
            order_timestamp: self.order_timestamp.unwrap_or_else(now_epoch_seconds),
            shipping_address_hash: self.shipping_address_hash,
        };
        order.validate()?;
        Ok(order)
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
    fn the_builder_names_every_field_derives_the_total_and_refuses_bad_values() {
        let base = || Order::builder(1).customer(101).product(1001).quantity(2).unit_price(25.99);
        let o = base().placed_at(1_700_000_000).build().expect("a valid order");
        assert_eq!((o.customer_id, o.product_id, o.quantity), (101, 1001, 2));
        assert_eq!(o.total_amount(), 51.98);
        assert_eq!(o.order_timestamp, 1_700_000_000);
        assert_eq!((o.status, o.payment_method), (OrderStatus::Pending, PaymentMethod::CreditCard));
        let before = now_epoch_seconds();
        let placed = base().build().expect("a valid order").order_timestamp;
        assert!(placed >= before && placed <= now_epoch_seconds());

        let missing = |b: OrderBuilder| match b.build() {
            Err(DomainError::MissingField { order_id: 1, field }) => field,
            other => panic!("{other:?}"),
        };
        let full = [("customer", 0), ("product", 1), ("quantity", 2), ("unit_price", 3)];
        for (field, skip) in full {
            let mut b = Order::builder(1);
            for (_, i) in full {
                if i != skip {
                    b = match i {
                        0 => b.customer(1),
                        1 => b.product(1),
                        2 => b.quantity(1),
                        _ => b.unit_price(1.0),
                    };
                }
            }
            assert_eq!(missing(b), field);
        }
        assert!(matches!(base().quantity(0).build(), Err(DomainError::ZeroQuantity { .. })));
        for price in [f64::NAN, f64::INFINITY, -0.01, f64::MAX] {
            assert!(
                matches!(base().unit_price(price).build(), Err(DomainError::InvalidPrice { .. })),
                "{price}"
            );
        }
    }
}
