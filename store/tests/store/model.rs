//! Model-based recovery test (proptest, with shrinking).
//!
//! Random sequences of valid and invalid batches, compactions, simulated power cuts
//! between operations and in the middle of one (the log on the simulated disk: unsynced
//! writes dropped, torn or garbled), compactions stopped after any step of their
//! snapshot's publish or killed while deleting log segments, and plain reopens, run against the store and against
//! a plain in-memory model that applies only what the store acknowledged. After every step
//! the store equals the model; after a cut in the middle of a batch it equals the model
//! with or without that batch, never anything else; recovering twice gives the same state;
//! a snapshot plus its log tail gives the same state as the whole log.
//!
//! `PROPTEST_CASES=N` runs N cases (default 48 here).

use std::sync::Arc;

use orderlog_snapshot::SnapshotError;
use orderlog_store::{
    Event, Order, OrderState, OrderStatus, OrderStore, PaymentMethod, PublishStep, StoreError,
    StoreOptions,
};
use orderlog_wal::storage::SimStorage;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Ev {
    Create(u8),
    Status(u8, u8),
    Amend(u8, u8, u16),
    Payment(u8, u8),
    Cancel(u8),
    Erase(u8),
}

impl Ev {
    fn event(&self) -> Event {
        let id = |i: &u8| u64::from(*i % 24) + 1;
        let e = match self {
            Ev::Create(i) => Event::create(
                Order::builder(id(i))
                    .customer(u64::from(*i) * 3)
                    .product(7)
                    .quantity(u32::from(*i % 5) + 1)
                    .unit_price(f64::from(*i) * 1.25)
                    .build()
                    .unwrap()
                    .with_timestamp(1_700_000_000 + u64::from(*i)),
            ),
            Ev::Status(i, s) => Event::set_status(id(i), OrderStatus::ALL[usize::from(*s % 6)]),
            // Quantity 0 is invalid: some amends are refused.
            Ev::Amend(i, q, p) => {
                Event::amend(id(i), Some(u32::from(*q % 6)), Some(f64::from(*p) / 8.0))
            }
            Ev::Payment(i, m) => {
                Event::change_payment(id(i), PaymentMethod::ALL[usize::from(*m % 5)])
            }
            Ev::Cancel(i) => Event::cancel(id(i)),
            Ev::Erase(i) => Event::erase(id(i)),
        };
        e.stamped(1_700_000_000_000)
    }
}

#[derive(Debug, Clone)]
enum Step {
    Apply(Vec<Ev>),
    /// Creates this many new orders in one batch: fills segments so they roll and the
    /// compactor has sealed segments to fold.
    Fill(u8),
    Compact,
    Crash(u64),
    CrashDuring {
        ops: u8,
        seed: u64,
        batch: Vec<Ev>,
    },
    /// A compaction stops after publish step `step % 8`, then the power is cut.
    CompactStopped {
        step: u8,
        seed: u64,
    },
    /// The process dies at the `ops`-th storage operation of a compaction (deleting log
    /// segments below the new snapshot), then the power is cut.
    CrashDuringCompact {
        ops: u8,
        seed: u64,
    },
    Reopen,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        4 => any::<u8>().prop_map(Ev::Create),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(i, s)| Ev::Status(i, s)),
        1 => (any::<u8>(), any::<u8>(), any::<u16>()).prop_map(|(i, q, p)| Ev::Amend(i, q, p)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(i, m)| Ev::Payment(i, m)),
        1 => any::<u8>().prop_map(Ev::Cancel),
        1 => any::<u8>().prop_map(Ev::Erase),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let batch = || proptest::collection::vec(ev(), 1..4);
    prop_oneof![
        10 => batch().prop_map(Step::Apply),
        2 => (1u8..60).prop_map(Step::Fill),
        1 => Just(Step::Compact),
        1 => any::<u64>().prop_map(Step::Crash),
        1 => (any::<u8>(), any::<u64>(), batch()).prop_map(|(ops, seed, batch)| Step::CrashDuring { ops: ops % 8, seed, batch }),
        1 => (any::<u8>(), any::<u64>()).prop_map(|(step, seed)| Step::CompactStopped { step, seed }),
        1 => (any::<u8>(), any::<u64>()).prop_map(|(ops, seed)| Step::CrashDuringCompact { ops: ops % 6, seed }),
        1 => Just(Step::Reopen),
    ]
}

fn options() -> StoreOptions {
    StoreOptions::for_tests()
}

fn open(disk: &SimStorage) -> OrderStore {
    OrderStore::open_on(Arc::new(disk.clone()), options()).expect("open")
}

/// Recovers twice from the same image: both must equal `expected` (or, with `or`, both
/// must equal one of the two). Returns the state found and the open store.
fn recover(image: &SimStorage) -> (OrderStore, OrderState) {
    let copy = image.clone_synced();
    let first = open(&copy).state();
    let store = open(image);
    let second = store.state();
    assert_eq!(first, second, "two recoveries of one image differ");
    (store, second)
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut disk = SimStorage::new("/sim/store");
    let mut store = open(&disk);
    let mut model = OrderState::new();
    let mut next_fill_id = 1_000u64;
    for step in steps {
        match step {
            Step::Fill(n) => {
                let events: Vec<Event> = (0..u64::from(n))
                    .map(|k| {
                        Event::create(
                            Order::builder(next_fill_id + k)
                                .customer(k)
                                .product(k)
                                .quantity(1)
                                .unit_price(2.5)
                                .placed_at(k)
                                .build()
                                .unwrap(),
                        )
                        .stamped(1)
                    })
                    .collect();
                next_fill_id += u64::from(n);
                store.apply_batch(&events).expect("fill");
                model.apply_batch(&events).expect("model fill");
            }
            Step::Apply(batch) => {
                let events: Vec<Event> = batch.iter().map(Ev::event).collect();
                let expected = model.check_batch(&events);
                let got = store.apply_batch(&events);
                prop_assert_eq!(
                    expected.is_ok(),
                    got.is_ok(),
                    "store and model disagree on {:?}: {:?}",
                    events,
                    got.err()
                );
                if expected.is_ok() {
                    model.apply_batch(&events).expect("checked");
                }
            }
            Step::Compact => {
                store.compact().expect("compact");
            }
            Step::Crash(seed) => {
                let image = disk.crash(seed);
                drop(store);
                disk = image;
                let (reopened, state) = recover(&disk);
                store = reopened;
                prop_assert_eq!(&state, &model);
            }
            Step::CrashDuring { ops, seed, batch } => {
                let events: Vec<Event> = batch.iter().map(Ev::event).collect();
                let valid = model.check_batch(&events).is_ok();
                disk.crash_after(u64::from(ops));
                let acked = store.apply_batch(&events).is_ok();
                let image = disk.crash(seed);
                drop(store);
                disk = image;
                let (reopened, state) = recover(&disk);
                store = reopened;
                let mut with = model.clone();
                let applied = valid && with.apply_batch(&events).is_ok();
                if acked {
                    prop_assert!(applied);
                    prop_assert_eq!(&state, &with, "an acknowledged batch was lost");
                    model = with;
                } else if state != model {
                    prop_assert!(applied, "a refused batch left a trace");
                    prop_assert_eq!(
                        &state,
                        &with,
                        "recovered a state that is neither before nor after"
                    );
                    model = with;
                }
            }
            Step::CompactStopped { step, seed } => {
                let at = PublishStep::ALL[usize::from(step) % PublishStep::ALL.len()];
                // With nothing to fold, nothing is published and the compaction succeeds.
                if let Err(e) = store.compact_with_hook(&mut |s| {
                    if s == at { Err(SnapshotError::Stopped { step: s }) } else { Ok(()) }
                }) {
                    prop_assert!(
                        matches!(e, StoreError::Snapshot(SnapshotError::Stopped { .. })),
                        "compaction failed with {:?}",
                        e
                    );
                }
                let image = disk.crash(seed);
                drop(store);
                disk = image;
                let (reopened, state) = recover(&disk);
                store = reopened;
                prop_assert_eq!(
                    &state,
                    &model,
                    "a compaction stopped after {:?} changed the state",
                    at
                );
            }
            Step::CrashDuringCompact { ops, seed } => {
                disk.crash_after(u64::from(ops));
                // It fails if it reached the crash point, succeeds if it had fewer
                // operations to do: either way only the recovered state matters.
                let _ = store.compact();
                let image = disk.crash(seed);
                drop(store);
                disk = image;
                let (reopened, state) = recover(&disk);
                store = reopened;
                prop_assert_eq!(&state, &model, "a crash in a compaction changed the state");
            }
            Step::Reopen => {
                drop(store);
                store = open(&disk);
                prop_assert_eq!(&store.state(), &model);
            }
        }
        prop_assert_eq!(&store.state(), &model);
    }
    // Snapshot plus tail equals the whole log.
    store.compact().expect("final compact");
    drop(store);
    let store = open(&disk);
    prop_assert_eq!(&store.state(), &model);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_store_equals_model_of_acknowledged_writes(steps in proptest::collection::vec(step(), 1..40)) {
        run(steps)?;
    }
}
