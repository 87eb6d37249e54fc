//! Open, mutate, reopen: the store keeps every acknowledged mutation and refuses bad ones.

use std::sync::Arc;

use orderlog_store::{
    Event, MutationError, Order, OrderStatus, OrderStore, PaymentMethod, ReserveError, StoreError,
    StoreOptions,
};

fn order(id: u64) -> Order {
    Order::builder(id)
        .customer(id % 13)
        .product(id % 17)
        .quantity((id % 4 + 1) as u32)
        .unit_price(10.0 + id as f64)
        .build()
        .unwrap()
        .with_timestamp(1_700_000_000 + id)
}

#[test]
fn store_reopen_gives_identical_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("open");
    for id in 1..=200 {
        store.apply(Event::create(order(id))).expect("create");
    }
    store
        .apply_batch(&[
            Event::set_status(5, OrderStatus::Confirmed),
            Event::amend(6, Some(9), Some(2.5)),
            Event::change_payment(7, PaymentMethod::BankTransfer),
            Event::cancel(8),
            Event::erase(9),
        ])
        .expect("batch");
    let before = store.state();
    assert_eq!(before.len(), 199);
    store.close().expect("close");
    drop(store);

    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("reopen");
    assert_eq!(store.state(), before);
    let report = store.open_report();
    assert_eq!((report.batches_replayed, report.events_replayed), (201, 205));
    assert_eq!(store.get(6).map(|o| o.total_amount()), Some(22.5));
    assert_eq!(store.get(9), None);
    assert_eq!(
        store.get_versioned(5).map(|(o, v)| (o.status, v)),
        Some((OrderStatus::Confirmed, 2))
    );
}

/// Recognises the error a refused batch must produce.
type Matcher = fn(&StoreError) -> bool;

#[test]
fn store_refuses_bad_mutations_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("open");
    store.apply(Event::create(order(1))).expect("create");
    let lsn = store.last_lsn();
    let state = store.state();
    let refusals: Vec<(Vec<Event>, Matcher)> = vec![
        (vec![Event::create(order(1))], |e| {
            matches!(e, StoreError::Mutation(MutationError::Domain(_)))
        }),
        (vec![Event::cancel(2)], |e| {
            matches!(e, StoreError::Mutation(MutationError::UnknownOrder { .. }))
        }),
        (vec![Event::set_status(1, OrderStatus::Delivered)], |e| {
            matches!(e, StoreError::Mutation(MutationError::IllegalTransition { .. }))
        }),
        (vec![Event::amend(1, Some(0), None)], |e| {
            matches!(e, StoreError::Mutation(MutationError::Domain(_)))
        }),
        (vec![Event::cancel(1).expecting(3)], |e| {
            matches!(
                e,
                StoreError::Mutation(MutationError::VersionConflict { expected: 3, actual: 1, .. })
            )
        }),
        (vec![Event::create(order(2)), Event::amend(2, None, Some(-1.0))], |e| {
            matches!(e, StoreError::Mutation(MutationError::Domain(_)))
        }),
        (vec![], |e| matches!(e, StoreError::Mutation(MutationError::EmptyBatch))),
    ];
    for (batch, expected) in refusals {
        let err = store.apply_batch(&batch).expect_err("refused");
        assert!(expected(&err), "{batch:?}: unexpected {err}");
        assert_eq!(store.last_lsn(), lsn, "{batch:?} was logged");
        assert_eq!(store.state(), state, "{batch:?} changed the state");
    }
    store.apply(Event::cancel(1).expecting(1)).expect("right version");
}

/// New orders are checked as they are appended; when the log then refuses their batch,
/// the appends are undone: the state is as before and the ids stay free.
#[test]
fn store_undoes_new_orders_the_log_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = StoreOptions::default();
    options.wal.frame_bytes_max = 4096;
    let store = OrderStore::open(dir.path(), options.clone()).expect("open");
    let creates = |ids: std::ops::RangeInclusive<u64>| -> Vec<Event> {
        ids.map(|id| Event::create(order(id))).collect()
    };
    store.apply_batch(&creates(1..=10)).expect("fits one frame");
    let (lsn, state) = (store.last_lsn(), store.state());

    let err = store.apply_batch(&creates(11..=400)).expect_err("larger than a frame");
    assert!(
        matches!(err, StoreError::Wal(orderlog_store::WalError::FrameTooLarge { .. })),
        "unexpected {err}"
    );
    assert_eq!(store.last_lsn(), lsn);
    assert_eq!(store.state(), state);
    assert!((11..=400).all(|id| store.get(id).is_none()));

    // The ids are free and the index whole: the same orders go in smaller batches.
    for first in (11..=400).step_by(30) {
        store.apply_batch(&creates(first..=(first + 29).min(400))).expect("fits");
    }
    assert_eq!(store.len(), 400);
    let after = store.state();
    store.close().expect("close");
    drop(store);
    let store = OrderStore::open(dir.path(), options).expect("reopen");
    assert_eq!(store.state(), after);
}

/// Room made up front is used as orders arrive: no column or index grows on the way,
/// and asking for more than a store can hold is refused with nothing changed.
#[test]
fn store_reserve_makes_room_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("open");
    store.apply(Event::create(order(1))).expect("create");
    store.reserve(20_000).expect("reserve");
    let room = store.memory_stats();
    assert!(room.column_capacity_bytes >= 20_001 * 62, "{room:?}");
    assert!(room.index_bytes >= 20_001 * 4, "{room:?}");
    for first in (2..=20_001).step_by(1000) {
        let batch: Vec<Event> = (first..first + 1000).map(|id| Event::create(order(id))).collect();
        store.apply_batch(&batch).expect("creates");
    }
    let full = store.memory_stats();
    assert_eq!(full.rows, 20_001);
    assert_eq!(
        (full.column_capacity_bytes, full.index_bytes),
        (room.column_capacity_bytes, room.index_bytes),
        "the reserved room was enough"
    );
    assert_eq!(store.get(20_001).map(|o| o.order_id), Some(20_001));

    let state = store.state();
    let err = store.reserve(usize::MAX).expect_err("more than a store can hold");
    assert!(
        matches!(
            err,
            StoreError::Reserve(ReserveError::TooLarge {
                additional: usize::MAX,
                held: 20_001,
                ..
            })
        ),
        "unexpected {err}"
    );
    assert_eq!(store.state(), state);
    assert_eq!(store.memory_stats(), full);
}

#[test]
fn store_query_returns_only_matching_orders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("open");
    let creates: Vec<Event> = (1..=100).map(|id| Event::create(order(id))).collect();
    store.apply_batch(&creates).expect("creates");
    let big = store.query(|o| o.total_amount() > 300.0);
    assert!(!big.is_empty() && big.len() < 100);
    assert!(big.iter().all(|o| o.total_amount() > 300.0));
    assert!(store.query(|o| o.order_id > 1000).is_empty());
}

#[test]
fn store_concurrent_threads_and_tasks_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("open");
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    let id = t * 1000 + n + 1;
                    let lsn = store.apply(Event::create(order(id))).expect("create");
                    assert!(store.durable_lsn() >= lsn, "acknowledged before durable");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let store = Arc::new(store);
    rt.block_on(async {
        let tasks: Vec<_> = (0..4u64)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for n in 0..50 {
                        let id = t * 1000 + n + 1;
                        store
                            .apply_async(Event::set_status(id, OrderStatus::Confirmed))
                            .await
                            .expect("confirm");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
    });
    assert_eq!(store.len(), 200);
    let state = store.state();
    store.close().expect("close");
    drop(store);
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("reopen");
    assert_eq!(store.state(), state);
    assert!(store.query(|o| o.status != OrderStatus::Confirmed).is_empty());
}

#[test]
fn store_second_open_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = OrderStore::open(dir.path(), StoreOptions::default()).expect("open");
    let err = OrderStore::open(dir.path(), StoreOptions::default()).expect_err("locked");
    assert!(matches!(err, StoreError::Wal(orderlog_wal::WalError::Locked { .. })), "{err}");
}

#[test]
fn store_derives_the_total_of_a_created_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("open");
    let o = Order::builder(1).customer(2).product(3).quantity(3).unit_price(0.1).build().unwrap();
    store.apply(Event::create(o)).expect("create");
    let live = store.get(1).map(|o| o.total_amount());
    assert_eq!(live, Some(3.0 * 0.1));
    store.close().expect("close");
    drop(store);
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("reopen");
    assert_eq!(store.get(1).map(|o| o.total_amount()), live);
}
