//! The store's state and the one fold function that applies events to it.
//!
//! Recovery, the compactor and the offline replay all call [`OrderState::apply_batch`]:
//! live writes validate a batch against the state before it is logged, and replay applies
//! logged batches with the same rules, so a batch that fails during replay means the log
//! is not what this code wrote (reported as corruption with its LSN).
//!
//! Rules, checked per event in batch order (later events see earlier ones):
//! - `Create`: the id must be new; the order's values valid.
//! - `SetStatus`: the transition must be legal (`OrderStatus::can_become`).
//! - `Cancel`: from `Pending` or `Confirmed` only.
//! - `Amend` and `ChangePayment`: while `Pending` or `Confirmed` only.
//! - `Erase`: any existing order.
//! - `expected_version`, when set, must equal the order's version (0 for an absent order).
//!   An order's version is 1 when created and grows by one with every mutation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::domain::index::{MAX_ROWS, RowIndex};
use crate::domain::{DomainError, Order, OrderSoA, OrderStatus};
use crate::events::{BATCH_EVENTS_MAX, Event, EventKind};

/// Why room for more orders was refused; the orders are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReserveError {
    /// Room was asked for beyond what the state can ever hold.
    #[error("cannot make room for {additional} more orders beside the {held} held: at most {max}")]
    TooLarge {
        /// The orders asked room for.
        additional: usize,
        /// The orders held.
        held: usize,
        /// The most orders the state can hold.
        max: usize,
    },
    /// The memory could not be allocated.
    #[error("cannot make room for {additional} more orders beside the {held} held: {source}")]
    Failed {
        /// The orders asked room for.
        additional: usize,
        /// The orders held.
        held: usize,
        /// The allocator's refusal.
        #[source]
        source: std::collections::TryReserveError,
    },
}

/// Why a mutation was refused. Nothing was written and the state is unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MutationError {
    /// The order does not exist.
    #[error("order {order_id} does not exist")]
    UnknownOrder {
        /// The order.
        order_id: u64,
    },
    /// The status change is not allowed.
    #[error("order {order_id} cannot go from {from:?} to {to:?}")]
    IllegalTransition {
        /// The order.
        order_id: u64,
        /// Its status.
        from: OrderStatus,
        /// The status asked for.
        to: OrderStatus,
    },
    /// The order is past the point where this change is allowed.
    #[error("order {order_id} is {status:?}: {what} is only allowed while Pending or Confirmed")]
    NotModifiable {
        /// The order.
        order_id: u64,
        /// Its status.
        status: OrderStatus,
        /// The change refused.
        what: &'static str,
    },
    /// The order's version is not the one the caller expected.
    #[error("order {order_id} is at version {actual}, expected {expected}")]
    VersionConflict {
        /// The order.
        order_id: u64,
        /// The version the caller expected.
        expected: u32,
        /// The order's version.
        actual: u32,
    },
    /// A value the domain does not allow (or a duplicate id).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A batch with no events.
    #[error("a batch needs at least one event")]
    EmptyBatch,
    /// A batch with too many events.
    #[error("batch of {len} events exceeds the maximum of {max}")]
    BatchTooLarge {
        /// Events in the batch.
        len: usize,
        /// The maximum.
        max: usize,
    },
}

/// Orders the state makes room for when it first grows: 4 Mi, so that each 8-byte column
/// (seven of the ten) is 32 MiB, the size from which glibc's allocator always maps memory
/// from the kernel. The kernel backs such a column's pages only once written, and growing
/// it moves pages (`mremap`) instead of copying bytes. A smaller block sits in the
/// allocator's heap, where each doubling copies every byte under the state's write lock;
/// the 4-byte and 1-byte columns and the versions (16 and 4 MiB here) may still do so,
/// copying under a fifth of what the 8-byte ones would (10 bytes an order against 56).
/// Measured with ten vectors of the columns' types, one core: 1.6M appends took 89 ms
/// from empty and 58 ms from this room; over 16M appends, the slowest batch of 1024 took
/// 61 ms, and 10 ms from this room. Another allocator may copy on growth at any size.
pub(crate) const FIRST_ROOM_ORDERS: usize = 1 << 22;
const _: () = assert!(FIRST_ROOM_ORDERS < MAX_ROWS);

/// The orders a state holding `held` grows room for when `incoming` more would not fit:
/// twice `held`, [`FIRST_ROOM_ORDERS`] at least, [`MAX_ROWS`] at most, and always enough
/// for the incoming (`held + incoming <= MAX_ROWS`).
fn room_target(held: usize, incoming: usize) -> usize {
    // `FIRST_ROOM_ORDERS < MAX_ROWS` (asserted at compile time): `clamp` cannot panic.
    held.saturating_mul(2).clamp(FIRST_ROOM_ORDERS, MAX_ROWS).max(held + incoming)
}

/// The orders, plus each order's version (kept row for row beside the columns).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderState {
    pub(crate) orders: OrderSoA,
    pub(crate) versions: Vec<u32>,
}

/// An order as a batch sees it while being checked: `None` once erased in the batch.
type Overlay = HashMap<u64, Option<(Order, u32)>, BuildHasherDefault<IdHasher>>;

/// Hashes order ids (already well-spread integers) with one multiplication, instead of
/// SipHash: batch checking hashes every event's id.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

impl OrderState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The orders, as columns.
    pub fn orders(&self) -> &OrderSoA {
        &self.orders
    }

    /// Each row's version, in row order.
    pub fn versions(&self) -> &[u32] {
        &self.versions
    }

    /// Orders held.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    /// True if no order is held.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// An order and its version.
    pub fn get(&self, order_id: u64) -> Option<(Order, u32)> {
        let row = self.orders.row_of(order_id)?;
        Some((self.orders.order_at(row)?, self.versions[row]))
    }

    /// Checks a batch against the state without changing it.
    pub fn check_batch(&self, events: &[Event]) -> Result<(), MutationError> {
        if events.is_empty() {
            return Err(MutationError::EmptyBatch);
        }
        if events.len() > BATCH_EVENTS_MAX {
            return Err(MutationError::BatchTooLarge { len: events.len(), max: BATCH_EVENTS_MAX });
        }
        // The index addresses rows with `u32`: refuse a batch that could go past it (it
        // counts every event as a create; the limit is ≈4.3 billion orders).
        if self.len().saturating_add(events.len()) > MAX_ROWS {
            return Err(DomainError::TooManyOrders { max: MAX_ROWS }.into());
        }
        if events.len() >= 8 {
            self.orders.warm_rows(events.iter().map(|e| e.order_id));
        }
        if ids_are_distinct(events) {
            // No event sees another's effect: each is checked against the state alone.
            for e in events {
                next_state(self.get(e.order_id), e)?;
            }
            return Ok(());
        }
        let mut overlay = Overlay::with_capacity_and_hasher(events.len(), Default::default());
        for e in events {
            let current = match overlay.get(&e.order_id) {
                Some(seen) => *seen,
                None => self.get(e.order_id),
            };
            let next = next_state(current, e)?;
            overlay.insert(e.order_id, next);
        }
        Ok(())
    }

    /// Checks a batch and, if every event applies, applies them all; otherwise changes
    /// nothing. This is the fold used by live writes, recovery, compaction and replay.
    pub fn apply_batch(&mut self, events: &[Event]) -> Result<(), MutationError> {
        if self.try_append_creates(events).is_some() {
            return Ok(());
        }
        self.check_batch(events)?;
        self.apply_checked_batch(events);
        Ok(())
    }

    /// Applies a batch that only creates orders in one pass, if it applies: the index
    /// probe that places each new order is the one that would find its id already held,
    /// so checking costs nothing more. Returns the number of orders held before (for
    /// [`OrderState::undo_appends`]).
    ///
    /// `None`, with the state unchanged, if the batch holds another kind of event, or
    /// an expected version other than 0, or would be refused: the caller then checks it
    /// event by event ([`OrderState::check_batch`]), which names the first refusal.
    pub(crate) fn try_append_creates(&mut self, events: &[Event]) -> Option<usize> {
        let before = self.len();
        let fits = !events.is_empty()
            && events.len() <= BATCH_EVENTS_MAX
            && before.saturating_add(events.len()) <= MAX_ROWS;
        // A new order is at version 0: expecting 0 is expecting it to be new.
        let creates = |e: &Event| {
            matches!(e.kind, EventKind::Create(_)) && e.expected_version.is_none_or(|v| v == 0)
        };
        // Other batches leave before anything is allocated.
        if !fits || !events.iter().all(creates) {
            return None;
        }
        let mut orders = Vec::with_capacity(events.len());
        for e in events {
            let EventKind::Create(order) = e.kind else { return None };
            let order = Order { order_id: e.order_id, ..order };
            order.validate().ok()?;
            orders.push(order);
        }
        self.make_room(orders.len());
        // A duplicate id (held, or twice in the batch) undoes the appends.
        self.orders.push_all_new(&orders).ok()?;
        self.versions.resize(self.orders.len(), 1);
        Some(before)
    }

    /// Makes room for `additional` more orders (columns, index and versions), so that
    /// growing to that size copies nothing and rebuilds nothing. Refused, with the
    /// orders unchanged, past [`MAX_ROWS`] or when memory cannot be had.
    pub fn reserve(&mut self, additional: usize) -> Result<(), ReserveError> {
        let held = self.len();
        if held.saturating_add(additional) > MAX_ROWS {
            return Err(ReserveError::TooLarge { additional, held, max: MAX_ROWS });
        }
        let failed = |source| ReserveError::Failed { additional, held, source };
        self.orders.try_reserve(additional).map_err(failed)?;
        self.versions.try_reserve_exact(additional).map_err(failed)
    }

    /// Grows the columns and versions, if `incoming` more orders would not fit, to
    /// [`room_target`]. Each column is reserved exactly, so all ten and the versions
    /// grow to the same size; the index grows on its own (a rebuild, whose size it
    /// chooses). The callers have checked that `len() + incoming <= MAX_ROWS`.
    fn make_room(&mut self, incoming: usize) {
        let held = self.len();
        if held.saturating_add(incoming) <= self.room() {
            return;
        }
        let room = room_target(held, incoming) - held;
        if self.orders.try_reserve_columns_exact(room).is_err()
            || self.versions.try_reserve_exact(room).is_err()
        {
            // The room ahead cannot be had: make only the room needed. If even that
            // fails, the appends that follow abort, as any growing vector does.
            let _ = self.orders.try_reserve_columns_exact(incoming);
            let _ = self.versions.try_reserve_exact(incoming);
        }
    }

    /// Orders the ten columns and the versions all hold before one of them must grow.
    fn room(&self) -> usize {
        self.orders.column_room().min(self.versions.capacity())
    }

    /// Undoes the appends of [`OrderState::try_append_creates`]: back to the `len`
    /// orders held before them.
    pub(crate) fn undo_appends(&mut self, len: usize) {
        self.orders.truncate_to(len);
        self.versions.truncate(len);
    }

    /// Applies a batch that [`OrderState::check_batch`] accepted against this very state.
    pub(crate) fn apply_checked_batch(&mut self, events: &[Event]) {
        self.make_room(events.iter().filter(|e| matches!(e.kind, EventKind::Create(_))).count());
        for e in events {
            self.apply_checked(e);
        }
    }

    /// Applies one event already checked in its batch.
    fn apply_checked(&mut self, e: &Event) {
        // `check_batch` proved the event applies to the state as it is at this point.
        let row = match e.kind {
            // A checked create's id is absent: no lookup needed.
            EventKind::Create(_) => None,
            _ => self.orders.row_of(e.order_id),
        };
        let current = row.and_then(|r| Some((self.orders.order_at(r)?, self.versions[r])));
        let next = match next_state(current, e) {
            Ok(next) => next,
            // `check_batch` ran `next_state` on this same order and event, under the same
            // write lock, and it succeeded: a refusal here is a bug in this file, and
            // going on would apply a batch only in part.
            Err(refusal) => unreachable!("a checked event was refused: {e:?}: {refusal}"),
        };
        match (row, next) {
            (Some(row), Some((order, version))) => self.overwrite(row, order, version),
            (Some(row), None) => {
                self.orders.remove(e.order_id);
                self.versions.swap_remove(row);
            }
            (None, Some((order, version))) => {
                self.orders.push_unchecked(order);
                self.versions.push(version);
            }
            (None, None) => {}
        }
    }

    fn overwrite(&mut self, row: usize, order: Order, version: u32) {
        let soa = &mut self.orders;
        soa.quantity[row] = order.quantity;
        soa.unit_price[row] = order.unit_price;
        soa.total_amount[row] = order.total_amount();
        soa.status[row] = order.status.into();
        soa.payment_method[row] = order.payment_method.into();
        self.versions[row] = version;
    }
}

/// True if no two events of `events` name the same order: a batch of new orders, or of
/// changes to different ones, needs no overlay to be checked.
fn ids_are_distinct(events: &[Event]) -> bool {
    if events.len() < 2 {
        return true;
    }
    let ids: Vec<u64> = events.iter().map(|e| e.order_id).collect();
    // `events.len() <= BATCH_EVENTS_MAX`, far below the index's row limit.
    RowIndex::default().insert_all_new(0..ids.len(), &ids).is_ok()
}

/// What one event makes of an order (`None`: absent), or why it cannot apply.
fn next_state(
    current: Option<(Order, u32)>,
    e: &Event,
) -> Result<Option<(Order, u32)>, MutationError> {
    let order_id = e.order_id;
    let version = current.map_or(0, |(_, v)| v);
    if let Some(expected) = e.expected_version
        && expected != version
    {
        return Err(MutationError::VersionConflict { order_id, expected, actual: version });
    }
    let (mut order, version) = match (e.kind, current) {
        (EventKind::Create(order), None) => {
            let order = Order { order_id, ..order };
            order.validate()?;
            return Ok(Some((order, 1)));
        }
        (_, None) => return Err(MutationError::UnknownOrder { order_id }),
        (_, Some(current)) => current,
    };
    let modifiable = matches!(order.status, OrderStatus::Pending | OrderStatus::Confirmed);
    let refuse = |what| MutationError::NotModifiable { order_id, status: order.status, what };
    match e.kind {
        EventKind::Create(_) => return Err(DomainError::DuplicateOrder { order_id }.into()),
        EventKind::SetStatus(to) => {
            if !order.status.can_become(to) {
                return Err(MutationError::IllegalTransition { order_id, from: order.status, to });
            }
            order.status = to;
        }
        EventKind::Cancel => {
            let to = OrderStatus::Cancelled;
            if !order.status.can_become(to) {
                return Err(MutationError::IllegalTransition { order_id, from: order.status, to });
            }
            order.status = to;
        }
        EventKind::Amend { quantity, unit_price } => {
            if !modifiable {
                return Err(refuse("amending"));
            }
            order = Order {
                quantity: quantity.unwrap_or(order.quantity),
                unit_price: unit_price.unwrap_or(order.unit_price),
                ..order
            };
            order.validate()?;
        }
        EventKind::ChangePayment(method) => {
            if !modifiable {
                return Err(refuse("changing the payment method"));
            }
            order.payment_method = method;
        }
        EventKind::Erase => return Ok(None),
    }
    Ok(Some((order, version.saturating_add(1))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaymentMethod;
    use proptest::prelude::*;

    fn create(id: u64) -> Event {
        Event::create(
            Order::builder(id)
                .customer(10)
                .product(20)
                .quantity(2)
                .unit_price(5.0)
                .placed_at(1_700_000_000)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn growth_makes_the_first_room_whole_and_only_for_creates() {
        // Both paths of the fold: a batch of creates, and a batch checked event by event.
        let mut creates_only = OrderState::new();
        creates_only.apply_batch(&[create(1), create(2)]).expect("creates");
        assert!(creates_only.room() >= FIRST_ROOM_ORDERS);
        let mut mixed = OrderState::new();
        mixed.apply_batch(&[create(1), Event::cancel(1)]).expect("create, cancel");
        assert!(mixed.room() >= FIRST_ROOM_ORDERS);

        // A clone holds exactly its orders, as a state loaded from a snapshot does.
        let mut exact = creates_only.clone();
        assert_eq!(exact.room(), 2);
        exact.apply_batch(&[Event::cancel(1), Event::erase(2)]).expect("no create");
        assert_eq!(exact.room(), 2, "no create, no growth");
        exact.apply_batch(&[create(3), create(4)]).expect("creates");
        assert!(exact.room() >= FIRST_ROOM_ORDERS);
        assert_eq!(exact.len(), 3);

        // A refused batch of creates leaves columns, index and versions as they were.
        let before = exact.clone();
        let refused = exact.apply_batch(&[create(5), create(1)]).expect_err("1 is held");
        assert_eq!(refused, MutationError::Domain(DomainError::DuplicateOrder { order_id: 1 }));
        assert_eq!(exact, before);
        assert_eq!((exact.orders.index.len(), exact.versions.len()), (3, 3));
        assert_eq!(exact.get(5), None);
    }

    #[test]
    fn room_target_doubles_from_the_first_room_up_to_max_rows() {
        assert_eq!(room_target(0, 1), FIRST_ROOM_ORDERS);
        assert_eq!(room_target(FIRST_ROOM_ORDERS, 1), 2 * FIRST_ROOM_ORDERS);
        assert_eq!(room_target(10, BATCH_EVENTS_MAX), FIRST_ROOM_ORDERS);
        // Past half the limit, the limit; and always the room the batch needs.
        assert_eq!(room_target(MAX_ROWS / 2 + 1, 1), MAX_ROWS);
        assert_eq!(room_target(MAX_ROWS - 1, 1), MAX_ROWS);
        assert_eq!(room_target(5 << 20, BATCH_EVENTS_MAX), 10 << 20);
    }

    #[test]
    fn fold_follows_the_lifecycle_and_counts_versions() {
        let mut s = OrderState::new();
        s.apply_batch(&[create(1)]).expect("create");
        for to in [
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            OrderStatus::Returned,
        ] {
            s.apply_batch(&[Event::set_status(1, to)]).expect("transition");
        }
        let (order, version) = s.get(1).expect("order");
        assert_eq!((order.status, version), (OrderStatus::Returned, 5));
        assert!(matches!(
            s.apply_batch(&[Event::set_status(1, OrderStatus::Pending)]),
            Err(MutationError::IllegalTransition { .. })
        ));
    }

    #[test]
    fn fold_amends_recompute_the_total_and_stop_after_shipping() {
        let mut s = OrderState::new();
        s.apply_batch(&[create(1), Event::amend(1, Some(3), Some(1.5))]).expect("amend");
        assert_eq!(s.get(1).map(|(o, _)| o.total_amount()), Some(4.5));
        s.apply_batch(&[Event::change_payment(1, PaymentMethod::PayPal)]).expect("payment");
        s.apply_batch(&[
            Event::set_status(1, OrderStatus::Confirmed),
            Event::set_status(1, OrderStatus::Shipped),
        ])
        .expect("ship");
        assert!(matches!(
            s.apply_batch(&[Event::amend(1, Some(1), None)]),
            Err(MutationError::NotModifiable { .. })
        ));
        assert!(matches!(
            s.apply_batch(&[Event::cancel(1)]),
            Err(MutationError::IllegalTransition { .. })
        ));
    }

    #[test]
    fn fold_rejects_a_whole_batch_for_one_bad_event() {
        let mut s = OrderState::new();
        s.apply_batch(&[create(1)]).expect("create");
        let before = s.clone();
        let bad = [create(2), Event::amend(1, Some(0), None)];
        assert!(matches!(
            s.apply_batch(&bad),
            Err(MutationError::Domain(DomainError::ZeroQuantity { .. }))
        ));
        assert_eq!(s, before);
        for bad in [
            vec![create(1)],
            vec![Event::cancel(9)],
            vec![Event::amend(1, None, Some(f64::NAN))],
            vec![Event::cancel(1).expecting(7)],
            vec![create(3).expecting(1)],
            vec![],
        ] {
            assert!(s.apply_batch(&bad).is_err(), "{bad:?} accepted");
            assert_eq!(s, before);
        }
    }

    #[test]
    fn fold_sees_earlier_events_of_its_own_batch() {
        let mut s = OrderState::new();
        s.apply_batch(&[
            create(1),
            Event::set_status(1, OrderStatus::Confirmed).expecting(1),
            Event::erase(1),
            create(1),
        ])
        .expect("batch");
        assert_eq!(s.get(1).map(|(o, v)| (o.status, v)), Some((OrderStatus::Pending, 1)));
        assert!(s.apply_batch(&[Event::erase(1), Event::cancel(1)]).is_err());
        assert_eq!(s.len(), 1);
    }

    /// Any event on orders `0..ids`, often invalid for the state it meets.
    fn any_event(ids: u64) -> impl Strategy<Value = Event> {
        let status = prop_oneof![
            Just(OrderStatus::Pending),
            Just(OrderStatus::Confirmed),
            Just(OrderStatus::Shipped),
            Just(OrderStatus::Delivered),
            Just(OrderStatus::Cancelled),
            Just(OrderStatus::Returned),
        ];
        (0..7u8, 0..ids, status, 0..4u32, proptest::option::of(0..3u32)).prop_map(
            |(kind, id, status, quantity, expected)| {
                let e = match kind {
                    0 | 1 => create(id),
                    2 => Event::set_status(id, status),
                    3 => Event::amend(id, Some(quantity), None),
                    4 => Event::change_payment(id, PaymentMethod::PayPal),
                    5 => Event::cancel(id),
                    _ => Event::erase(id),
                };
                match expected {
                    Some(v) => e.expecting(v),
                    None => e,
                }
            },
        )
    }

    proptest! {
        /// A batch applies as its events would one at a time, all or nothing, whichever
        /// way it is checked (ids all distinct, or some repeated) and applied (creates
        /// only, or mixed): same rows in the same order, same versions, same index, and
        /// a refused batch names the refusal its first failing event meets.
        #[test]
        fn a_batch_folds_as_its_events_one_by_one(
            batches in proptest::collection::vec(
                proptest::collection::vec(any_event(24), 1..12), 1..40),
            creates_first in 0..24u64,
        ) {
            let mut batched = OrderState::new();
            let mut one_by_one = OrderState::new();
            let first: Vec<Event> = (0..creates_first).map(create).collect();
            if !first.is_empty() {
                batched.apply_batch(&first).expect("distinct creates");
                for e in &first {
                    one_by_one.apply_batch(std::slice::from_ref(e)).expect("create");
                }
            }
            for batch in &batches {
                let mut model = one_by_one.clone();
                let each = batch.iter().try_for_each(|e| model.apply_batch(std::slice::from_ref(e)));
                let got = batched.apply_batch(batch);
                prop_assert_eq!(&got, &each, "{:?}", batch);
                if each.is_ok() {
                    one_by_one = model;
                }
                prop_assert_eq!(&batched, &one_by_one);
                for id in 0..24 {
                    prop_assert_eq!(batched.get(id), one_by_one.get(id));
                }
            }
        }
    }

    #[test]
    fn fold_erase_keeps_rows_and_versions_in_step() {
        let mut s = OrderState::new();
        let creates: Vec<Event> = (1..=50).map(create).collect();
        s.apply_batch(&creates).expect("creates");
        for id in (1..=50).step_by(2) {
            s.apply_batch(&[Event::set_status(id, OrderStatus::Confirmed)]).expect("confirm");
        }
        for id in (1..=50).step_by(3) {
            s.apply_batch(&[Event::erase(id)]).expect("erase");
        }
        for id in 1..=50u64 {
            let expect = (id % 3 != 1).then_some(if id % 2 == 1 { 2 } else { 1 });
            assert_eq!(s.get(id).map(|(_, v)| v), expect, "order {id}");
        }
    }
}
