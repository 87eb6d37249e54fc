//! Order mutations (events) and their binary encoding.
//!
//! A batch of events is one WAL frame and applies atomically. The layout is versioned
//! and little-endian; `docs/format.md` draws it:
//!
//! ```text
//! batch:  [format u8 = 1][count u32][event]*count
//! event:  [tag u8][flags u8][timestamp_ms u64][order_id u64]
//!         [expected_version u32, only if flags bit 0][body, by tag]
//! bodies: 1 Create        customer_id u64, product_id u64, quantity u32, unit_price f64,
//!                         status u8, payment_method u8, order_timestamp u64,
//!                         shipping_address_hash u64
//!         2 SetStatus     status u8
//!         3 Amend         which u8 (bit 0 quantity, bit 1 unit_price), quantity u32 if
//!                         bit 0, unit_price f64 if bit 1
//!         4 ChangePayment payment_method u8
//!         5 Cancel        (none)
//!         6 Erase         (none)
//! ```
//! An order's total is never encoded: it is always derived (`Order::total_amount`).

use crate::domain::{Order, OrderStatus, PaymentMethod};

/// Version of the batch layout written by this code.
pub const EVENT_FORMAT: u8 = 1;

/// Most events in one batch.
pub const BATCH_EVENTS_MAX: usize = 65_536;

/// What happens to an order.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// A new order enters the state.
    Create(Order),
    /// The order moves to another status (legal transitions only).
    SetStatus(OrderStatus),
    /// Quantity and/or unit price change; the total is recomputed.
    Amend {
        /// The new quantity, if it changes.
        quantity: Option<u32>,
        /// The new unit price, if it changes.
        unit_price: Option<f64>,
    },
    /// The payment method changes.
    ChangePayment(PaymentMethod),
    /// The order is cancelled (from Pending or Confirmed).
    Cancel,
    /// The order leaves the state and every later snapshot (erasure on request).
    Erase,
}

/// One mutation of one order.
///
/// **Where its time comes from.** `timestamp_ms` is when the mutation happened by the
/// caller's clock. [`Event::now`] and the shorthands ([`Event::create`],
/// [`Event::set_status`], ...) stamp it from the system clock at the moment they are
/// called, not when the store applies the event; [`Event::at`] builds an event stamped
/// with a time the caller gives (importing history, relaying another system's events,
/// tests), and [`Event::stamped`] restamps one. The store keeps the stamp as given and
/// never reorders by it: a point in time (`as_of_time`, `orderlog replay --until-time`)
/// is the log's prefix before the first event stamped later than that time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// The order concerned (for `Create`, the new order's id).
    pub order_id: u64,
    /// When the mutation happened, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// If set, the mutation applies only if the order's current version is this
    /// (optimistic concurrency; a new order's expected version is 0).
    pub expected_version: Option<u32>,
    /// What happens.
    pub kind: EventKind,
}

impl Event {
    /// A mutation of `order_id`, stamped with the system clock now.
    pub fn now(order_id: u64, kind: EventKind) -> Event {
        Event::at(now_ms(), order_id, kind)
    }

    /// A mutation of `order_id`, stamped `timestamp_ms` (milliseconds since the Unix epoch).
    pub fn at(timestamp_ms: u64, order_id: u64, kind: EventKind) -> Event {
        Event { order_id, timestamp_ms, expected_version: None, kind }
    }

    /// Creates `order`; stamped with the system clock now.
    pub fn create(order: Order) -> Event {
        Event::now(order.order_id, EventKind::Create(order))
    }

    /// Moves an order to `status`; stamped with the system clock now.
    pub fn set_status(order_id: u64, status: OrderStatus) -> Event {
        Event::now(order_id, EventKind::SetStatus(status))
    }

    /// Changes quantity and/or unit price; stamped with the system clock now.
    pub fn amend(order_id: u64, quantity: Option<u32>, unit_price: Option<f64>) -> Event {
        Event::now(order_id, EventKind::Amend { quantity, unit_price })
    }

    /// Changes the payment method; stamped with the system clock now.
    pub fn change_payment(order_id: u64, method: PaymentMethod) -> Event {
        Event::now(order_id, EventKind::ChangePayment(method))
    }

    /// Cancels an order; stamped with the system clock now.
    pub fn cancel(order_id: u64) -> Event {
        Event::now(order_id, EventKind::Cancel)
    }

    /// Erases an order; stamped with the system clock now.
    pub fn erase(order_id: u64) -> Event {
        Event::now(order_id, EventKind::Erase)
    }

    /// The same event, stamped `timestamp_ms` instead.
    pub fn stamped(mut self, timestamp_ms: u64) -> Event {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// The same event, applied only if the order is at `version`.
    pub fn expecting(mut self, version: u32) -> Event {
        self.expected_version = Some(version);
        self
    }

    /// The event's type name.
    pub fn kind_name(&self) -> &'static str {
        self.event_type().name()
    }
}

/// An event's kind without its values: what a feed's filter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventType {
    /// [`EventKind::Create`].
    Create,
    /// [`EventKind::SetStatus`].
    SetStatus,
    /// [`EventKind::Amend`].
    Amend,
    /// [`EventKind::ChangePayment`].
    ChangePayment,
    /// [`EventKind::Cancel`].
    Cancel,
    /// [`EventKind::Erase`].
    Erase,
}

impl EventType {
    /// Every type, in tag order.
    pub const ALL: [EventType; 6] = [
        EventType::Create,
        EventType::SetStatus,
        EventType::Amend,
        EventType::ChangePayment,
        EventType::Cancel,
        EventType::Erase,
    ];

    /// The type's name, as [`Event::kind_name`] gives it (`create`, `set_status`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EventType::Create => "create",
            EventType::SetStatus => "set_status",
            EventType::Amend => "amend",
            EventType::ChangePayment => "change_payment",
            EventType::Cancel => "cancel",
            EventType::Erase => "erase",
        }
    }

    /// The type named `name` (as [`EventType::name`] gives it).
    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// A bit of its own, for sets of types.
    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self.kind {
            EventKind::Create(_) => EventType::Create,
            EventKind::SetStatus(_) => EventType::SetStatus,
            EventKind::Amend { .. } => EventType::Amend,
            EventKind::ChangePayment(_) => EventType::ChangePayment,
            EventKind::Cancel => EventType::Cancel,
            EventKind::Erase => EventType::Erase,
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why a batch could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The batch layout version is not one this code reads.
    #[error("unknown event batch format {0}")]
    UnknownFormat(u8),
    /// An event tag is not one this code knows.
    #[error("unknown event tag {tag} at byte {offset}")]
    UnknownTag {
        /// The tag.
        tag: u8,
        /// Its offset in the payload.
        offset: usize,
    },
    /// A field holds a value the domain does not allow.
    #[error("invalid {field} at byte {offset}: {detail}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Its offset in the payload.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
    /// The payload ends inside an event.
    #[error("payload truncated at byte {0}")]
    Truncated(usize),
    /// Bytes follow the last event.
    #[error("{0} unexpected bytes after the last event")]
    TrailingBytes(usize),
    /// The count says more events than a batch may hold.
    #[error("batch claims {0} events (at most {BATCH_EVENTS_MAX})")]
    TooManyEvents(u32),
}

const TAG_CREATE: u8 = 1;
const TAG_SET_STATUS: u8 = 2;
const TAG_AMEND: u8 = 3;
const TAG_CHANGE_PAYMENT: u8 = 4;
const TAG_CANCEL: u8 = 5;
const TAG_ERASE: u8 = 6;
const FLAG_EXPECTED_VERSION: u8 = 1;

/// Encodes a batch into `out` (cleared first).
pub fn encode_batch(events: &[Event], out: &mut Vec<u8>) {
    out.clear();
    out.push(EVENT_FORMAT);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        encode_event(e, out);
    }
}

fn encode_event(e: &Event, out: &mut Vec<u8>) {
    let tag = match e.kind {
        EventKind::Create(_) => TAG_CREATE,
        EventKind::SetStatus(_) => TAG_SET_STATUS,
        EventKind::Amend { .. } => TAG_AMEND,
        EventKind::ChangePayment(_) => TAG_CHANGE_PAYMENT,
        EventKind::Cancel => TAG_CANCEL,
        EventKind::Erase => TAG_ERASE,
    };
    out.push(tag);
    out.push(if e.expected_version.is_some() { FLAG_EXPECTED_VERSION } else { 0 });
    out.extend_from_slice(&e.timestamp_ms.to_le_bytes());
    out.extend_from_slice(&e.order_id.to_le_bytes());
    if let Some(v) = e.expected_version {
        out.extend_from_slice(&v.to_le_bytes());
    }
    match e.kind {
        EventKind::Create(o) => {
            out.extend_from_slice(&o.customer_id.to_le_bytes());
            out.extend_from_slice(&o.product_id.to_le_bytes());
            out.extend_from_slice(&o.quantity.to_le_bytes());
            out.extend_from_slice(&o.unit_price.to_le_bytes());
            out.push(o.status.into());
            out.push(o.payment_method.into());
            out.extend_from_slice(&o.order_timestamp.to_le_bytes());
            out.extend_from_slice(&o.shipping_address_hash.to_le_bytes());
        }
        EventKind::SetStatus(s) => out.push(s.into()),
        EventKind::Amend { quantity, unit_price } => {
            out.push(u8::from(quantity.is_some()) | (u8::from(unit_price.is_some()) << 1));
            if let Some(q) = quantity {
                out.extend_from_slice(&q.to_le_bytes());
            }
            if let Some(p) = unit_price {
                out.extend_from_slice(&p.to_le_bytes());
            }
        }
        EventKind::ChangePayment(m) => out.push(m.into()),
        EventKind::Cancel | EventKind::Erase => {}
    }
}

/// A cursor over a payload that reports where it ran out.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let end = self.at.checked_add(N).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(DecodeError::Truncated(self.at))?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..end]);
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.take()?))
    }
    fn status(&mut self) -> Result<OrderStatus, DecodeError> {
        let at = self.at;
        OrderStatus::try_from(self.u8()?).map_err(|e| invalid("status", at, e))
    }
    fn payment(&mut self) -> Result<PaymentMethod, DecodeError> {
        let at = self.at;
        PaymentMethod::try_from(self.u8()?).map_err(|e| invalid("payment_method", at, e))
    }
}

fn invalid(field: &'static str, offset: usize, e: impl ToString) -> DecodeError {
    DecodeError::InvalidField { field, offset, detail: e.to_string() }
}

/// Decodes a batch. Values are checked against the domain's rules for their type
/// (enum bytes, quantity ≥ 1, finite non-negative prices); whether the events apply to
/// a state is decided by the fold, not here.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.u8()?;
    if format != EVENT_FORMAT {
        return Err(DecodeError::UnknownFormat(format));
    }
    let count = r.u32()?;
    if count as usize > BATCH_EVENTS_MAX {
        return Err(DecodeError::TooManyEvents(count));
    }
    // Every event takes at least 18 bytes: never reserve more than the payload can hold.
    let mut events = Vec::with_capacity((count as usize).min(bytes.len() / 18));
    for _ in 0..count {
        events.push(decode_event(&mut r)?);
    }
    if r.at != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - r.at));
    }
    Ok(events)
}

fn decode_event(r: &mut Reader<'_>) -> Result<Event, DecodeError> {
    let tag_at = r.at;
    let tag = r.u8()?;
    let flags_at = r.at;
    let flags = r.u8()?;
    if flags & !FLAG_EXPECTED_VERSION != 0 {
        return Err(invalid("flags", flags_at, format!("unknown bits {flags:#04x}")));
    }
    let timestamp_ms = r.u64()?;
    let order_id = r.u64()?;
    let expected_version = if flags & FLAG_EXPECTED_VERSION != 0 { Some(r.u32()?) } else { None };
    let kind = match tag {
        TAG_CREATE => {
            let body_at = r.at;
            let order = Order {
                order_id,
                customer_id: r.u64()?,
                product_id: r.u64()?,
                quantity: r.u32()?,
                unit_price: r.f64()?,
                status: r.status()?,
                payment_method: r.payment()?,
                order_timestamp: r.u64()?,
                shipping_address_hash: r.u64()?,
            };
            order.validate().map_err(|e| invalid("order", body_at, e))?;
            EventKind::Create(order)
        }
        TAG_SET_STATUS => EventKind::SetStatus(r.status()?),
        TAG_AMEND => {
            let which_at = r.at;
            let which = r.u8()?;
            if which == 0 || which > 3 {
                return Err(invalid("amend fields", which_at, format!("bits {which:#04x}")));
            }
            let quantity = if which & 1 != 0 { Some(r.u32()?) } else { None };
            let unit_price = if which & 2 != 0 { Some(r.f64()?) } else { None };
            if quantity == Some(0) {
                return Err(invalid("quantity", which_at + 1, "quantity must be at least 1"));
            }
            if let Some(p) = unit_price.filter(|p| !p.is_finite() || *p < 0.0) {
                return Err(invalid("unit_price", r.at - 8, format!("{p} is not a valid price")));
            }
            EventKind::Amend { quantity, unit_price }
        }
        TAG_CHANGE_PAYMENT => EventKind::ChangePayment(r.payment()?),
        TAG_CANCEL => EventKind::Cancel,
        TAG_ERASE => EventKind::Erase,
        _ => return Err(DecodeError::UnknownTag { tag, offset: tag_at }),
    };
    Ok(Event { order_id, timestamp_ms, expected_version, kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn event_strategy() -> impl Strategy<Value = Event> {
        let order = (
            any::<u64>(),
            any::<u64>(),
            1u32..10_000,
            0.0f64..1e6,
            0usize..6,
            0usize..5,
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(c, p, q, price, s, m, ts, h)| {
                Order::builder(0)
                    .customer(c)
                    .product(p)
                    .quantity(q)
                    .unit_price(price)
                    .build()
                    .unwrap()
                    .with_status(OrderStatus::ALL[s])
                    .with_payment_method(PaymentMethod::ALL[m])
                    .with_timestamp(ts)
                    .with_shipping_address_hash(h)
            });
        let kind = prop_oneof![
            order.prop_map(EventKind::Create),
            (0usize..6).prop_map(|s| EventKind::SetStatus(OrderStatus::ALL[s])),
            (proptest::option::of(1u32..100), proptest::option::of(0.0f64..1e4))
                .prop_filter("at least one field", |(q, p)| q.is_some() || p.is_some())
                .prop_map(|(quantity, unit_price)| EventKind::Amend { quantity, unit_price }),
            (0usize..5).prop_map(|m| EventKind::ChangePayment(PaymentMethod::ALL[m])),
            Just(EventKind::Cancel),
            Just(EventKind::Erase),
        ];
        (any::<u64>(), any::<u64>(), proptest::option::of(any::<u32>()), kind).prop_map(
            |(id, ts, v, kind)| {
                let kind = match kind {
                    EventKind::Create(o) => EventKind::Create(Order { order_id: id, ..o }),
                    k => k,
                };
                Event { order_id: id, timestamp_ms: ts, expected_version: v, kind }
            },
        )
    }

    proptest! {
        #[test]
        fn codec_round_trips_any_batch(events in proptest::collection::vec(event_strategy(), 0..50)) {
            let mut bytes = Vec::new();
            encode_batch(&events, &mut bytes);
            prop_assert_eq!(decode_batch(&bytes).expect("decodes"), events);
        }

        #[test]
        fn codec_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_batch(&bytes);
        }

        #[test]
        fn codec_rejects_every_truncation(events in proptest::collection::vec(event_strategy(), 1..5)) {
            let mut bytes = Vec::new();
            encode_batch(&events, &mut bytes);
            for len in 0..bytes.len() {
                prop_assert!(decode_batch(&bytes[..len]).is_err(), "truncated to {} accepted", len);
            }
        }
    }

    #[test]
    fn codec_names_unknown_formats_tags_and_values() {
        let mut bytes = Vec::new();
        encode_batch(&[Event::cancel(7).stamped(1)], &mut bytes);
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert_eq!(decode_batch(&bad), Err(DecodeError::UnknownFormat(2)));
        let mut bad = bytes.clone();
        bad[5] = 99;
        assert_eq!(decode_batch(&bad), Err(DecodeError::UnknownTag { tag: 99, offset: 5 }));
        let mut bytes = Vec::new();
        encode_batch(&[Event::set_status(7, OrderStatus::Shipped).stamped(1)], &mut bytes);
        let last = bytes.len() - 1;
        bytes[last] = 42;
        assert!(matches!(
            decode_batch(&bytes),
            Err(DecodeError::InvalidField { field: "status", .. })
        ));
        let mut bytes = Vec::new();
        encode_batch(&[Event::erase(1)], &mut bytes);
        bytes.push(0);
        assert_eq!(decode_batch(&bytes), Err(DecodeError::TrailingBytes(1)));
        let huge = [EVENT_FORMAT, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(decode_batch(&huge), Err(DecodeError::TooManyEvents(u32::MAX)));
    }
}
