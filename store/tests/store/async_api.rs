//! The async API never blocks a runtime worker: a write that must wait for the state's
//! lock (held by a long reader) or start a new log segment waits on the blocking pool
//! while the runtime's one thread keeps running other tasks; open, compact, sync, close
//! and analytics have async forms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use orderlog_store::{Event, Order, OrderStatus, OrderStore, StoreOptions};

fn options() -> StoreOptions {
    StoreOptions::for_tests()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime")
}

#[test]
fn async_write_behind_a_long_reader_leaves_the_runtime_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), options()).expect("open");
    store
        .apply(Event::create(
            Order::builder(1).customer(1).product(1).quantity(1).unit_price(1.0).build().unwrap(),
        ))
        .expect("create");

    // A reader on another thread holds the state's lock until told to let go (or, if
    // the runtime is stuck, after 20 s so the test fails instead of hanging).
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reader_store = store.clone();
    let reader = std::thread::spawn(move || {
        reader_store.with_kernel(|_| {
            held_tx.send(()).expect("tell");
            // Ok: released by the runtime's other task, so the runtime was not stuck.
            release_rx.recv_timeout(Duration::from_secs(20)).is_ok()
        })
    });
    held_rx.recv().expect("the reader holds the lock");

    let ticks = Arc::new(AtomicU64::new(0));
    let ran_while_held = Arc::new(AtomicBool::new(false));
    current_thread().block_on(async {
        // The write waits for the lock: on the blocking pool, not on this thread.
        let write = tokio::spawn({
            let store = store.clone();
            async move { store.apply_async(Event::set_status(1, OrderStatus::Confirmed)).await }
        });
        // Meanwhile this thread runs another task; once it has run a while, with the
        // lock still held, the reader is released.
        let ticker = tokio::spawn({
            let (ticks, ran_while_held) = (Arc::clone(&ticks), Arc::clone(&ran_while_held));
            async move {
                for _ in 0..100 {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
                ran_while_held.store(true, Ordering::SeqCst);
                let _ = release_tx.send(());
            }
        });
        ticker.await.expect("ticker");
        let lsn = write.await.expect("join").expect("write");
        assert_eq!(lsn, 2);
    });
    let released_by_the_runtime = reader.join().expect("reader");
    assert!(released_by_the_runtime, "the write blocked the runtime's only thread");
    assert!(ran_while_held.load(Ordering::SeqCst));
    assert_eq!(ticks.load(Ordering::SeqCst), 100);
    assert_eq!(store.get(1).map(|o| o.status), Some(OrderStatus::Confirmed));
}

#[test]
#[cfg(feature = "analytics")]
fn every_blocking_operation_has_an_async_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    current_thread().block_on(async move {
        let store = OrderStore::open_async(path.clone(), options()).await.expect("open");
        // Enough single writes to roll many small segments: each roll runs on the pool.
        let rolls_before = store.stats().wal.segments;
        for id in 1..=300 {
            store
                .apply_async(Event::create(
                    Order::builder(id)
                        .customer(id % 7)
                        .product(1)
                        .quantity(1)
                        .unit_price(2.0)
                        .build()
                        .unwrap(),
                ))
                .await
                .expect("w");
        }
        assert!(store.stats().wal.segments > rolls_before + 3, "{:?}", store.stats().wal);
        store.reserve_async(1_000).await.expect("reserve");
        let report = store.compact_async().await.expect("compact");
        assert!(report.to_lsn > 0);
        store.sync_async().await.expect("sync");
        let view = store.analytics_async().await.expect("analytics");
        assert_eq!(view.info().lsn, 300);
        let earlier = store.as_of_async(report.to_lsn).await.expect("as of");
        assert_eq!(earlier.info().lsn, report.to_lsn);
        let rows = Arc::new(view).query_sql_async("SELECT count(*) AS n FROM orders".into());
        assert_eq!(rows.await.expect("query")[0].num_rows(), 1);
        store.close_async().await.expect("close");
        drop(store);
        let reopened = OrderStore::open_async(path, options()).await.expect("reopen");
        assert_eq!(reopened.len(), 300);
    });
}
