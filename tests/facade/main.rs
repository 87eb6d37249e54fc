//! The facade crate exposes the log under `orderlog::wal` and at its root.

#![allow(clippy::expect_used, reason = "tests fail loudly on purpose")]

use orderlog::{SyncPolicy, Wal, WalOptions};

#[test]
fn facade_log_round_trips_through_reexports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions { sync_policy: SyncPolicy::Always, ..WalOptions::default() };
    let wal = Wal::open(dir.path(), opts.clone()).expect("open");
    let lsn = wal.append(b"order 1 created").expect("append");
    wal.close().expect("close");
    drop(wal);
    let wal = orderlog::wal::Wal::open(dir.path(), opts).expect("reopen");
    let frame = wal.iter_from(lsn).expect("iter").next().expect("one frame").expect("valid");
    assert_eq!(frame.payload(), b"order 1 created");
}

#[test]
fn facade_store_round_trips_through_reexports() {
    use orderlog::{Event, Order, OrderStatus, OrderStore, StoreOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("open");
    store
        .apply(Event::create(
            Order::builder(1)
                .customer(101)
                .product(1001)
                .quantity(2)
                .unit_price(25.99)
                .build()
                .unwrap(),
        ))
        .expect("create");
    store.apply(Event::set_status(1, OrderStatus::Confirmed)).expect("confirm");
    store.close().expect("close");
    drop(store);
    let store = OrderStore::open(dir.path(), StoreOptions::default()).expect("reopen");
    assert_eq!(store.get(1).map(|o| o.status), Some(OrderStatus::Confirmed));
}
