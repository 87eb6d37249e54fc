//! The deterministic workload both crash tests run, and its reference model.
//!
//! A seed fixes the whole sequence of operations: single mutations, batches (some with a
//! bad event, which the store must refuse without writing anything), large batches that
//! roll log segments, and compactions. The generator folds every valid operation into its
//! own `OrderState`, so the `n`-th valid operation is the store's LSN `n` and the model's
//! state after it is the state a recovered store at `last_lsn == n` must have.

use orderlog_store::{Event, Order, OrderState, OrderStatus, PaymentMethod};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One operation of the workload.
#[derive(Debug, Clone)]
pub enum Op {
    /// `apply` (one event) or `apply_batch` (several); `valid` is the model's verdict.
    Write { events: Vec<Event>, single: bool, valid: bool },
    /// `compact`.
    Compact,
}

/// The workload's generator and reference model.
pub struct Workload {
    rng: StdRng,
    model: OrderState,
    next_id: u64,
    /// Valid writes generated so far: the LSN of the last one.
    lsn: u64,
}

const TIME: u64 = 1_700_000_000_000;

impl Workload {
    /// The workload of `seed`, from its start.
    pub fn new(seed: u64) -> Workload {
        Workload {
            rng: StdRng::seed_from_u64(seed ^ 0x6f72_6465_726c_6f67),
            model: OrderState::new(),
            next_id: 1,
            lsn: 0,
        }
    }

    /// The workload of `seed`, positioned just after its `lsn`-th valid write: the model
    /// is the state a store whose log ends at `lsn` must have.
    pub fn at(seed: u64, lsn: u64) -> Workload {
        let mut w = Workload::new(seed);
        while w.lsn < lsn {
            w.next_op();
        }
        w
    }

    /// The reference model: every valid write generated so far, folded.
    pub fn model(&self) -> &OrderState {
        &self.model
    }

    /// LSN of the last valid write generated (the LSN the next valid write gets, minus one).
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    fn existing(&mut self) -> u64 {
        // Mostly ids that exist, sometimes one that does not (a refused write).
        self.rng.random_range(1..self.next_id + 2)
    }

    fn event(&mut self) -> Event {
        let e = match self.rng.random_range(0..10u8) {
            0..=3 => {
                let id = self.next_id;
                self.next_id += 1;
                let qty = self.rng.random_range(1..6u32);
                let price = f64::from(self.rng.random_range(1..4000u32)) / 8.0;
                Event::create(
                    Order::builder(id)
                        .customer(id * 7)
                        .product(id % 13)
                        .quantity(qty)
                        .unit_price(price)
                        .placed_at(TIME)
                        .build()
                        .unwrap(),
                )
            }
            4..=6 => {
                let id = self.existing();
                let s = OrderStatus::ALL[self.rng.random_range(0..OrderStatus::ALL.len())];
                Event::set_status(id, s)
            }
            7 => {
                let id = self.existing();
                // Quantity 0 is invalid: some amends are refused.
                let q = self.rng.random_range(0..6u32);
                Event::amend(id, Some(q), Some(f64::from(self.rng.random_range(1..800u32)) / 4.0))
            }
            8 => {
                let id = self.existing();
                let m = PaymentMethod::ALL[self.rng.random_range(0..PaymentMethod::ALL.len())];
                Event::change_payment(id, m)
            }
            _ => {
                let id = self.existing();
                if self.rng.random_bool(0.5) { Event::cancel(id) } else { Event::erase(id) }
            }
        };
        e.stamped(TIME + self.lsn)
    }

    /// The next operation; a valid write is folded into the model.
    pub fn next_op(&mut self) -> Op {
        let roll = self.rng.random_range(0..100u8);
        if roll < 4 {
            return Op::Compact;
        }
        let (events, single) = match roll {
            4..=43 => (vec![self.event()], true),
            44..=91 => {
                let n = self.rng.random_range(1..6);
                ((0..n).map(|_| self.event()).collect(), false)
            }
            _ => {
                // A large batch of new orders: rolls small segments, gives compaction
                // sealed segments to fold.
                let n = self.rng.random_range(15..60u64);
                let first = self.next_id;
                self.next_id += n;
                let events = (first..first + n)
                    .map(|id| {
                        Event::create(
                            Order::builder(id)
                                .customer(id)
                                .product(1)
                                .quantity(1)
                                .unit_price(2.5)
                                .placed_at(TIME)
                                .build()
                                .unwrap(),
                        )
                        .stamped(TIME + self.lsn)
                    })
                    .collect();
                (events, false)
            }
        };
        let valid = self.model.apply_batch(&events).is_ok();
        if valid {
            self.lsn += 1;
        }
        Op::Write { events, single, valid }
    }
}
