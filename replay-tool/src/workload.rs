//! A realistic synthetic order workload, reproducible from a seed.
//!
//! Each writer owns a disjoint set of order ids (`first_id + writer + k × writers`) and a
//! model of its orders' statuses, so every event it emits is legal and no two writers
//! touch the same order. Per event it creates an order with probability
//! `orders left / events left` (so the counts come out as asked), otherwise it moves one
//! of its open orders on: Pending → Confirmed → Shipped → Delivered (→ Returned
//! sometimes), with amends and payment changes while Pending or Confirmed, cancels from
//! Pending or Confirmed, and a few erases. Timestamps follow a virtual clock that starts
//! at 2025-01-01T00:00:00Z and advances 1–40 ms per event, so a seed (with one writer)
//! reproduces the log byte for byte.

use orderlog_store::{Event, Order, OrderStatus, PaymentMethod};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// 2025-01-01T00:00:00Z in milliseconds since the epoch: where the virtual clock starts.
pub const CLOCK_START_MS: u64 = 1_735_689_600_000;

/// One writer's share of a workload.
pub struct WriterWorkload {
    rng: StdRng,
    next_id: u64,
    id_step: u64,
    orders_left: u64,
    events_left: u64,
    /// Orders still moving through their lifecycle, with their status.
    open: Vec<(u64, OrderStatus)>,
    clock_ms: u64,
}

impl WriterWorkload {
    /// Writer `writer` of `writers` for a workload of `orders` creates among `events`
    /// events, with ids from `first_id`.
    pub fn new(
        seed: u64,
        writer: u64,
        writers: u64,
        orders: u64,
        events: u64,
        first_id: u64,
    ) -> Self {
        let writers = writers.max(1);
        let share = |total: u64| total / writers + u64::from(writer < total % writers);
        WriterWorkload {
            rng: StdRng::seed_from_u64(seed ^ writer.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            next_id: first_id + writer,
            id_step: writers,
            orders_left: share(orders),
            events_left: share(events).max(share(orders)),
            open: Vec::new(),
            clock_ms: CLOCK_START_MS + writer,
        }
    }

    /// The next batch of at most `max` events (empty when the writer is done).
    pub fn next_batch(&mut self, max: usize) -> Vec<Event> {
        let mut batch = Vec::with_capacity(max);
        while batch.len() < max {
            let Some(event) = self.next_event() else { break };
            batch.push(event);
        }
        batch
    }

    fn next_event(&mut self) -> Option<Event> {
        while self.events_left > 0 {
            let create = self.orders_left > 0
                && (self.open.is_empty()
                    || self.rng.random_range(0..self.events_left) < self.orders_left);
            if create {
                return Some(self.emit(|w| w.create()));
            }
            if self.open.is_empty() {
                // Every order has finished its lifecycle and no creates are left.
                self.events_left = 0;
                return None;
            }
            if let Some(event) = self.mutate() {
                return Some(self.emit(|_| event));
            }
        }
        None
    }

    fn emit(&mut self, make: impl FnOnce(&mut Self) -> Event) -> Event {
        self.clock_ms += self.rng.random_range(1..=40);
        self.events_left -= 1;
        let at = self.clock_ms;
        make(self).stamped(at)
    }

    fn create(&mut self) -> Event {
        let id = self.next_id;
        self.next_id += self.id_step;
        self.orders_left -= 1;
        let rng = &mut self.rng;
        let customer = rng.random_range(1..=50_000u64);
        let product = rng.random_range(1..=2_000u64);
        let quantity = if rng.random_bool(0.7) { 1 } else { rng.random_range(2..=10) };
        let cents: u32 = rng.random_range(199..=49_999);
        let payment = PaymentMethod::ALL[rng.random_range(0..PaymentMethod::ALL.len())];
        let built = Order::builder(id)
            .customer(customer)
            .product(product)
            .quantity(quantity)
            .unit_price(f64::from(cents) / 100.0)
            .payment(payment)
            .placed_at(self.clock_ms / 1000)
            .shipping_address_hash(rng.random())
            .build();
        #[allow(
            clippy::expect_used,
            reason = "every field named, quantity 1 to 10, price 1.99 to 499.99"
        )]
        let order = built.expect("a generated order is valid");
        self.open.push((id, OrderStatus::Pending));
        Event::create(order)
    }

    /// Moves a random open order on; `None` if the order just left the open set
    /// without an event (delivered and done).
    fn mutate(&mut self) -> Option<Event> {
        use OrderStatus::*;
        let i = self.rng.random_range(0..self.open.len());
        let (id, status) = self.open[i];
        let r: f64 = self.rng.random();
        let (event, next) = match status {
            Pending | Confirmed => {
                let forward = if status == Pending { Confirmed } else { Shipped };
                if r < 0.70 {
                    (Event::set_status(id, forward), Some(forward))
                } else if r < 0.82 {
                    let quantity = self.rng.random_bool(0.5).then(|| self.rng.random_range(1..=10));
                    let price = quantity
                        .is_none()
                        .then(|| f64::from(self.rng.random_range(199..=49_999u32)) / 100.0);
                    (Event::amend(id, quantity, price), Some(status))
                } else if r < 0.90 {
                    let method =
                        PaymentMethod::ALL[self.rng.random_range(0..PaymentMethod::ALL.len())];
                    (Event::change_payment(id, method), Some(status))
                } else if r < 0.99 {
                    (Event::cancel(id), None)
                } else {
                    (Event::erase(id), None)
                }
            }
            Shipped => (Event::set_status(id, Delivered), Some(Delivered)),
            Delivered if r < 0.08 => (Event::set_status(id, Returned), None),
            Delivered if r < 0.09 => (Event::erase(id), None),
            _ => {
                self.open.swap_remove(i);
                return None;
            }
        };
        match next {
            Some(s) => self.open[i].1 = s,
            None => {
                self.open.swap_remove(i);
            }
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use orderlog_store::OrderState;

    use super::*;

    fn run(seed: u64, writers: u64, orders: u64, events: u64) -> (OrderState, Vec<Vec<Event>>) {
        let mut state = OrderState::new();
        let mut batches = Vec::new();
        for w in 0..writers {
            let mut writer = WriterWorkload::new(seed, w, writers, orders, events, 1);
            loop {
                let batch = writer.next_batch(7);
                if batch.is_empty() {
                    break;
                }
                state.apply_batch(&batch).expect("every generated batch applies");
                batches.push(batch);
            }
        }
        (state, batches)
    }

    #[test]
    fn workload_is_legal_counts_right_and_reproducible() {
        let (state, batches) = run(7, 3, 300, 1000);
        let events: Vec<&Event> = batches.iter().flatten().collect();
        let creates = events.iter().filter(|e| e.kind_name() == "create").count();
        assert_eq!(creates, 300);
        assert!(events.len() > 900 && events.len() <= 1000, "{}", events.len());
        for kind in ["set_status", "amend", "change_payment", "cancel"] {
            assert!(events.iter().any(|e| e.kind_name() == kind), "no {kind}");
        }
        assert!(state.len() <= 300 && state.len() > 250);
        assert_eq!(run(7, 3, 300, 1000).1, batches, "same seed, same workload");
        assert_ne!(run(8, 3, 300, 1000).1, batches);
    }

    #[test]
    fn more_orders_than_events_means_creates_only() {
        let (state, batches) = run(1, 2, 50, 10);
        assert_eq!(batches.iter().flatten().count(), 50);
        assert_eq!(state.len(), 50);
    }
}
