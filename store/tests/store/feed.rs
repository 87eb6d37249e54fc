//! The change feed: subscriptions (catch-up, live, filters, rows, behind a truncated
//! log, async), durable consumers (positions, holding the log, lagging, deletion), what
//! a power cut leaves of what was delivered, bad input, and a property test with four
//! writers, random subscribe points and filters, and compactions throughout.
//!
//! `PROPTEST_CASES=N` runs N cases of the property test (default 12 here).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orderlog_store::feed::{FeedItem, FeedOptions, Filter, StartAt, to_record_batch};
use orderlog_store::{
    Event, EventType, FeedError, Lsn, Order, OrderStatus, OrderStore, StoreError, StoreOptions,
    SyncPolicy, WalOptions,
};
use orderlog_wal::storage::SimStorage;
use orderlog_wal::storage::sim::{Fault, FaultKind, FaultTarget};
use proptest::prelude::*;

fn create(id: u64) -> Event {
    Event::create(
        Order::builder(id)
            .customer(id % 7)
            .product(id % 11)
            .quantity(1 + (id % 3) as u32)
            .unit_price(2.5)
            .build()
            .unwrap(),
    )
}

/// Writes `n` batches on orders `first..`: a create, then a confirmation, per order.
/// Returns each batch's LSN and events.
fn write(store: &OrderStore, first: u64, n: u64) -> Vec<(Lsn, Vec<Event>)> {
    let mut out = Vec::new();
    for id in first..first + n {
        let batch = vec![create(id)];
        out.push((store.apply_batch(&batch).unwrap(), batch));
        let batch = vec![Event::set_status(id, OrderStatus::Confirmed)];
        out.push((store.apply_batch(&batch).unwrap(), batch));
    }
    out
}

/// Reads items until the subscription's position reaches `upto` (or it ends). A wait
/// that ends without an item may still have moved the position past frames the filter
/// skipped.
fn read_until(sub: &mut orderlog_store::feed::Subscription, upto: Lsn) -> Vec<FeedItem> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut items = Vec::new();
    while sub.delivered_lsn() < upto {
        match sub.recv_timeout(Duration::from_millis(50)).unwrap() {
            Some(item) => items.push(item),
            None if sub.is_ended() => break,
            None if std::time::Instant::now() > deadline => {
                panic!("position {} short of {upto} after 30 s: {sub:?}", sub.delivered_lsn())
            }
            None => {}
        }
    }
    items
}

fn lsns(items: &[FeedItem]) -> Vec<Lsn> {
    items.iter().map(FeedItem::lsn).collect()
}

#[test]
fn catch_up_from_disk_then_live_from_the_cache_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    let before = write(&store, 1, 100);
    let mut sub = store.subscribe(StartAt::Beginning, Filter::all()).unwrap();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || write(&store, 1_000, 300))
    };
    let after = writer.join().unwrap();
    let last = after.last().unwrap().0;
    let items = read_until(&mut sub, last);
    let expected: Vec<Lsn> = before.iter().chain(&after).map(|(lsn, _)| *lsn).collect();
    assert_eq!(lsns(&items), expected);
    for (item, (_, events)) in items.iter().zip(before.iter().chain(&after)) {
        let batch = item.as_batch().unwrap();
        let got: Vec<Event> = batch.events.iter().map(|e| e.event).collect();
        assert_eq!(&got, events);
    }
    // Caught up, it reads the log's cache: new frames come from memory.
    let (_, cached_before) = sub.frames_read();
    let more = write(&store, 5_000, 5);
    let items = read_until(&mut sub, more.last().unwrap().0);
    assert_eq!(items.len(), 10);
    let (_, cached_after) = sub.frames_read();
    assert!(cached_after >= cached_before + 10, "{cached_before} -> {cached_after}");
    assert_eq!(sub.lag().lsns, 0);
}

#[test]
fn a_subscriber_too_slow_for_the_cache_reads_from_disk_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::for_tests();
    // A cache of about two frames: every subscriber falls behind it at once.
    options.wal.follow_cache_bytes = 64;
    let store = OrderStore::open(dir.path(), options).unwrap();
    let mut sub = store.subscribe(StartAt::End, Filter::all()).unwrap();
    let written = write(&store, 1, 200);
    let items = read_until(&mut sub, written.last().unwrap().0);
    assert_eq!(lsns(&items), written.iter().map(|w| w.0).collect::<Vec<_>>());
    let (disk, _) = sub.frames_read();
    assert!(disk > 100, "read {disk} frames from disk");
}

#[test]
fn filters_select_types_and_orders_and_skipped_frames_still_advance_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    let written = write(&store, 1, 20);
    let last = written.last().unwrap().0;
    let mut creates =
        store.subscribe(StartAt::Beginning, Filter::all().types([EventType::Create])).unwrap();
    let items = read_until(&mut creates, last);
    assert_eq!(items.len(), 20);
    assert!(
        items
            .iter()
            .all(|i| i.as_batch().unwrap().events[0].event.event_type() == EventType::Create)
    );
    assert_eq!(creates.delivered_lsn(), last);
    let mut one = store
        .subscribe(StartAt::Lsn(3), Filter::all().orders([4]).types([EventType::SetStatus]))
        .unwrap();
    let items = read_until(&mut one, last);
    assert_eq!(lsns(&items), vec![8]);
    // The Arrow form: one row per event.
    let batches: Vec<_> = items.iter().filter_map(|i| i.as_batch().cloned()).collect();
    let rb = to_record_batch(&batches, false).unwrap();
    assert_eq!(rb.num_rows(), 1);
}

#[test]
fn rows_after_each_event_match_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    write(&store, 1, 10);
    store.compact().unwrap();
    let options = FeedOptions { with_rows: true, ..FeedOptions::default() };
    // From the middle: the subscription folds its own state to LSN 6 first.
    let mut sub = store.subscribe(StartAt::Lsn(7), options).unwrap();
    store.apply(Event::amend(2, Some(9), None)).unwrap();
    store.apply(Event::erase(3)).unwrap();
    let items = read_until(&mut sub, store.durable_lsn());
    let mut latest = BTreeMap::new();
    for item in &items {
        for e in &item.as_batch().unwrap().events {
            latest.insert(e.event.order_id, e.row.map(|r| r.order));
        }
    }
    assert_eq!(latest[&2], store.get(2));
    assert_eq!(latest[&2].map(|o| o.quantity), Some(9));
    assert_eq!(latest[&3], None);
    let batches: Vec<_> = items.iter().filter_map(|i| i.as_batch().cloned()).collect();
    assert_eq!(to_record_batch(&batches, true).unwrap().num_columns(), 24);
}

#[test]
fn with_rows_from_a_position_no_snapshot_reaches_the_newest_snapshot_stands_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::for_tests();
    // Sealed segments kept below the older snapshot: the log begins before it.
    options.compaction.retain_segments = 2;
    let store = OrderStore::open(dir.path(), options).unwrap();
    write(&store, 1, 150);
    let older = store.compact().unwrap().to_lsn;
    write(&store, 1_000, 150);
    let newer = store.compact().unwrap().to_lsn;
    let first = store.stats().wal.first_lsn;
    // The log begins before the older snapshot, the position lies between the two: no
    // state at the position can be folded (no snapshot at or below it).
    assert!(first > 1 && first + 1 < older, "log from {first}, snapshots {older}, {newer}");
    let options = FeedOptions { with_rows: true, ..FeedOptions::default() };
    let mut sub = store.subscribe(StartAt::Lsn(first + 1), options.clone()).unwrap();
    let items = read_until(&mut sub, store.durable_lsn());
    assert!(
        matches!(&items[0], FeedItem::Snapshot { lsn, .. } if *lsn == newer),
        "{:?}",
        items.first().map(FeedItem::lsn)
    );
    let rows = items[1..].iter().flat_map(|i| i.as_batch().unwrap().events.iter());
    assert!(rows.clone().count() > 0 && rows.clone().all(|e| e.row.is_some()));
    let required = FeedOptions { require_log: true, ..options };
    assert!(matches!(
        store.subscribe(StartAt::Lsn(first + 1), required),
        Err(StoreError::Feed(FeedError::LogTruncated { .. }))
    ));
}

#[test]
fn dropping_the_last_store_handle_ends_its_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    let sub = store.subscribe(StartAt::Beginning, Filter::all()).unwrap();
    let reader = std::thread::spawn(move || sub.map(|i| i.unwrap().lsn()).collect::<Vec<_>>());
    write(&store, 1, 3);
    drop(store);
    assert_eq!(reader.join().unwrap(), (1..=6).collect::<Vec<_>>());
}

#[test]
fn behind_a_truncated_log_the_newest_snapshot_stands_in_unless_the_log_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    write(&store, 1, 200);
    let report = store.compact().unwrap();
    assert!(report.segments_removed > 0, "{report:?}");
    let first = store.stats().wal.first_lsn;
    assert!(first > 1);
    let tail = write(&store, 1_000, 3);
    let mut sub = store.subscribe(StartAt::Beginning, Filter::all().orders([5, 1_001])).unwrap();
    let items = read_until(&mut sub, tail.last().unwrap().0);
    let FeedItem::Snapshot { lsn, orders } = &items[0] else { panic!("{:?}", items[0]) };
    assert_eq!(*lsn, report.to_lsn);
    assert_eq!(orders.num_rows(), 1, "only order 5 passes the filter");
    assert!(items[1..].iter().all(|i| i.lsn() > *lsn));
    assert_eq!(lsns(&items[1..]), vec![tail[2].0, tail[3].0]);
    let required = FeedOptions { require_log: true, ..FeedOptions::default() };
    let err = store.subscribe(StartAt::Beginning, required.clone()).unwrap_err();
    assert!(
        matches!(err, StoreError::Feed(FeedError::LogTruncated { from: 1, first_lsn }) if first_lsn == first),
        "{err}"
    );
    assert!(store.subscribe(StartAt::Lsn(first), required).is_ok());
}

#[test]
fn bad_input_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    write(&store, 1, 2);
    fn err<T>(r: Result<T, StoreError>) -> StoreError {
        r.map(|_| ()).unwrap_err()
    }
    assert!(matches!(
        err(store.subscribe(StartAt::Consumer("nobody".into()), Filter::all())),
        StoreError::Feed(FeedError::UnknownConsumer { .. })
    ));
    assert!(matches!(
        err(store.subscribe(StartAt::Lsn(6), Filter::all())),
        StoreError::Feed(FeedError::FutureLsn { requested: 6, last_lsn: 4 })
    ));
    assert!(store.subscribe(StartAt::Lsn(5), Filter::all()).is_ok());
    assert!(matches!(
        err(store.subscribe(StartAt::Beginning, Filter::all().types([]))),
        StoreError::Feed(FeedError::EmptyFilter { what: "event kind" })
    ));
    assert!(matches!(
        err(store.subscribe(StartAt::Beginning, Filter::all().orders([]))),
        StoreError::Feed(FeedError::EmptyFilter { what: "order" })
    ));
    assert!(matches!(
        err(store.consumer("no/slash")),
        StoreError::Feed(FeedError::InvalidConsumerName { .. })
    ));
    assert!(matches!(
        err(store.existing_consumer("nobody")),
        StoreError::Feed(FeedError::UnknownConsumer { .. })
    ));
    assert!(matches!(
        err(store.delete_consumer("nobody")),
        StoreError::Feed(FeedError::UnknownConsumer { .. })
    ));
    let consumer = store.consumer("c").unwrap();
    assert!(matches!(
        err(consumer.ack(5)),
        StoreError::Feed(FeedError::AckBeyondDurable { lsn: 5, durable_lsn: 4 })
    ));
    assert_eq!(consumer.acked_lsn().unwrap(), 0);
}

#[test]
fn from_a_time_starts_after_the_prefix_as_of_that_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    for (i, id) in (1..=6u64).enumerate() {
        store.apply(create(id).stamped(1_000 + i as u64 * 10)).unwrap();
    }
    let mut sub = store.subscribe(StartAt::TimeMs(1_025), Filter::all()).unwrap();
    let items = read_until(&mut sub, 6);
    assert_eq!(lsns(&items), vec![4, 5, 6]);
}

#[test]
fn consumers_resume_where_they_acked_and_hold_the_log_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    let consumer = store.consumer("relay").unwrap();
    let written = write(&store, 1, 150);
    let mut sub = consumer.subscribe(Filter::all()).unwrap();
    let items = read_until(&mut sub, 10);
    consumer.ack(items.last().unwrap().lsn()).unwrap();
    // Compaction keeps everything after the consumer's position.
    let report = store.compact().unwrap();
    assert!(store.stats().wal.first_lsn <= 11, "{report:?}");
    let info = &store.consumers()[0];
    assert_eq!((info.record.acked_lsn, info.record.lagging), (10, false));
    assert!(info.held_bytes > 0 && info.lag_lsns == written.last().unwrap().0 - 10);
    store.close().unwrap();
    drop((store, consumer, sub));
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    let consumer = store.existing_consumer("relay").unwrap();
    assert_eq!(consumer.acked_lsn().unwrap(), 10);
    let mut sub = consumer.subscribe(Filter::all()).unwrap();
    assert_eq!(sub.next().unwrap().unwrap().lsn(), 11);
    drop(sub);
    store.delete_consumer("relay").unwrap();
    let report = store.compact().unwrap();
    assert!(store.stats().wal.first_lsn > 11, "{report:?}");
    assert!(store.consumers().is_empty());
}

#[test]
fn a_consumer_holding_more_than_the_limit_is_marked_lagging_and_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { consumer_hold_bytes_max: 8 << 10, ..StoreOptions::for_tests() };
    let store = OrderStore::open(dir.path(), options.clone()).unwrap();
    let slow = store.consumer("slow").unwrap();
    write(&store, 1, 300);
    store.compact().unwrap();
    let info = slow.info().unwrap();
    assert!(info.record.lagging, "{info:?}");
    assert_eq!(info.held_bytes, 0);
    assert!(store.stats().wal.first_lsn > 1);
    // Its subscription gets the snapshot, then the log.
    let mut sub = slow.subscribe(Filter::all()).unwrap();
    assert!(matches!(sub.next(), Some(Ok(FeedItem::Snapshot { .. }))));
    // Caught up again, it holds the log again.
    let position = read_until(&mut sub, store.durable_lsn()).last().unwrap().lsn();
    slow.ack(position).unwrap();
    assert!(!slow.info().unwrap().record.lagging);
    drop(sub);
    store.close().unwrap();
    drop((store, slow));
    let store = OrderStore::open(dir.path(), options).unwrap();
    assert!(!store.consumers()[0].record.lagging);
}

#[test]
fn a_consumer_whose_file_cannot_be_written_fails_its_acks_not_the_compactions() {
    let disk = SimStorage::new("/sim/failing-consumer");
    let options = StoreOptions {
        wal: WalOptions { sync_policy: SyncPolicy::Never, ..StoreOptions::for_tests().wal },
        // Any position holds too much: a compaction tries to mark it lagging.
        consumer_hold_bytes_max: 1,
        ..StoreOptions::for_tests()
    };
    let store = OrderStore::open_on(Arc::new(disk.clone()), options).unwrap();
    let consumer = store.consumer("c").unwrap();
    write(&store, 1, 150);
    store.sync().unwrap();
    // The next sync (the acknowledgement's) fails.
    disk.inject(Fault {
        target: FaultTarget::Sync,
        nth: 0,
        kind: FaultKind::Io,
        persistent: false,
    });
    assert!(matches!(consumer.ack(5), Err(StoreError::Feed(FeedError::ConsumerIo { .. }))));
    disk.clear_fault();
    assert!(matches!(consumer.ack(6), Err(StoreError::Feed(FeedError::ConsumerFailed { .. }))));
    // Its position on disk is unknown: it keeps holding the log from where it was known,
    // and the compaction completes.
    let report = store.compact().unwrap();
    assert!(report.to_lsn > 0);
    assert_eq!(store.stats().wal.first_lsn, 1);
    assert_eq!(store.stats().compaction.failed, 0);
}

#[test]
fn only_durable_events_are_delivered_and_a_power_cut_takes_none_of_them_back() {
    let disk = SimStorage::new("/sim/feed");
    let options = StoreOptions {
        wal: WalOptions { sync_policy: SyncPolicy::Never, ..StoreOptions::for_tests().wal },
        ..StoreOptions::for_tests()
    };
    let store = OrderStore::open_on(Arc::new(disk.clone()), options.clone()).unwrap();
    let mut sub = store.subscribe(StartAt::Beginning, Filter::all()).unwrap();
    store.apply(create(1)).unwrap();
    store.apply(create(2)).unwrap();
    assert!(sub.try_recv().unwrap().is_none(), "nothing is durable yet");
    store.sync().unwrap();
    let delivered = read_until(&mut sub, 2);
    assert_eq!(lsns(&delivered), vec![1, 2]);
    store.apply(create(3)).unwrap();
    assert!(sub.try_recv().unwrap().is_none());
    let image = disk.crash(7);
    drop((sub, store));
    let store = OrderStore::open_on(Arc::new(image), options).unwrap();
    // Whatever the cut kept of order 3, what was delivered is there.
    assert!(store.get(1).is_some() && store.get(2).is_some());
}

#[test]
fn a_cancelled_next_on_the_async_stream_loses_nothing() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut options = StoreOptions::for_tests();
        // A small cache: most of the log is read from disk, on the blocking pool.
        options.wal.follow_cache_bytes = 256;
        let store = OrderStore::open_async(dir.path(), options).await.unwrap();
        let written = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || write(&store, 1, 600)).await.unwrap()
        };
        // Four frames per read: many reads from disk, each on the blocking pool.
        let options = FeedOptions { frames_per_step: 4, ..FeedOptions::default() };
        let mut stream = store.subscribe_async(StartAt::Beginning, options).await.unwrap();
        let (mut seen, mut cancelled) = (Vec::new(), 0);
        for call in 0u64.. {
            if seen.len() == written.len() {
                break;
            }
            if call % 2 == 0 {
                // Polled once and dropped if it must wait (a read on the blocking pool):
                // what that read finds comes with a later call.
                let mut next = Box::pin(stream.next_item());
                let once =
                    std::future::poll_fn(|cx| std::task::Poll::Ready(next.as_mut().poll(cx))).await;
                match once {
                    std::task::Poll::Ready(item) => seen.push(item.unwrap().unwrap().lsn()),
                    std::task::Poll::Pending => cancelled += 1,
                }
            } else {
                let item = tokio::time::timeout(Duration::from_secs(10), stream.next_item())
                    .await
                    .unwrap_or_else(|_| panic!("no item within 10 s after {} of them", seen.len()));
                seen.push(item.unwrap().unwrap().lsn());
            }
        }
        assert_eq!(seen, written.iter().map(|w| w.0).collect::<Vec<_>>());
        assert!(cancelled > 0, "no call was cancelled");
        store.close_async().await.unwrap();
    });
}

#[test]
fn a_subscription_ends_once_the_store_is_closed_and_everything_durable_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    let mut sub = store.subscribe(StartAt::Beginning, Filter::all()).unwrap();
    let reader =
        std::thread::spawn(move || sub.by_ref().map(|i| i.unwrap().lsn()).collect::<Vec<_>>());
    write(&store, 1, 5);
    store.close().unwrap();
    assert_eq!(reader.join().unwrap(), (1..=10).collect::<Vec<_>>());
}

#[test]
fn the_async_stream_delivers_the_same_items() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = OrderStore::open_async(dir.path(), StoreOptions::for_tests()).await.unwrap();
        for id in 1..=50 {
            store.apply_async(create(id)).await.unwrap();
        }
        let mut stream = store.subscribe_async(StartAt::Beginning, Filter::all()).await.unwrap();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for id in 51..=100 {
                    store.apply_async(create(id)).await.unwrap();
                }
            })
        };
        let mut seen = Vec::new();
        while seen.len() < 100 {
            let item = tokio::time::timeout(Duration::from_secs(30), stream.next_item())
                .await
                .expect("an item within 30 s")
                .unwrap()
                .unwrap();
            seen.push(item.lsn());
        }
        writer.await.unwrap();
        assert_eq!(seen, (1..=100).collect::<Vec<_>>());
        assert_eq!(stream.delivered_lsn().await, 100);
        store.close_async().await.unwrap();
        assert!(stream.next_item().await.is_none());
    });
}

/// The property test's plan: per writer, batches of events on its own orders; where
/// subscribers start, their filters, how many frames each reads per step and how slowly;
/// when to compact; the size of the log's cache of recent frames.
#[derive(Debug, Clone)]
struct Plan {
    batches_per_writer: usize,
    /// (where it starts, its filter, frames per step, pause between items in µs)
    subscribers: Vec<(u8, u8, u8, u8)>,
    compact_every: u8,
    cache_bytes: usize,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        20usize..120,
        prop::collection::vec((any::<u8>(), any::<u8>(), 1u8..16, any::<u8>()), 1..6),
        3u8..40,
        prop_oneof![Just(256usize), Just(4096), Just(16 << 20)],
    )
        .prop_map(|(batches_per_writer, subscribers, compact_every, cache_bytes)| Plan {
            batches_per_writer,
            subscribers,
            compact_every,
            cache_bytes,
        })
}

fn filter_of(code: u8) -> Filter {
    match code % 4 {
        0 => Filter::all(),
        1 => Filter::all().types([EventType::Create]),
        2 => Filter::all().types([EventType::SetStatus, EventType::Amend]),
        _ => Filter::all().orders((0..40).map(|k| u64::from(code) + k * 3)),
    }
}

/// What one subscriber read: its first position and its items.
type Read = (Lsn, Vec<FeedItem>);

fn run_plan(plan: Plan) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::for_tests();
    options.wal.follow_cache_bytes = plan.cache_bytes;
    let store = OrderStore::open(dir.path(), options).unwrap();
    // Every acknowledged batch, by LSN.
    let log = Arc::new(std::sync::Mutex::new(BTreeMap::<Lsn, Vec<Event>>::new()));
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (store, log, written) = (store.clone(), Arc::clone(&log), Arc::clone(&written));
            let (n, every) = (plan.batches_per_writer as u64, u64::from(plan.compact_every));
            std::thread::spawn(move || {
                for k in 0..n {
                    let id = w * 10_000 + k;
                    let batch = if k % 3 == 2 {
                        vec![Event::set_status(id - 1, OrderStatus::Confirmed), create(id)]
                    } else {
                        vec![create(id)]
                    };
                    let lsn = store.apply_batch(&batch).unwrap();
                    log.lock().unwrap().insert(lsn, batch);
                    if written.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % every == 0 {
                        store.compact().unwrap();
                    }
                }
            })
        })
        .collect();
    // Subscribers start at random points while the writers run, and read as they write,
    // some slowly; the last LSN to read to is known once the writers are done.
    let end = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let mut readers = Vec::new();
    for &(at, code, per_step, pause) in &plan.subscribers {
        std::thread::sleep(Duration::from_micros(u64::from(at) * 20));
        let last = store.last_lsn();
        let from = match at % 4 {
            0 => StartAt::Beginning,
            1 => StartAt::End,
            _ => StartAt::Lsn(1 + u64::from(at) * last / 256),
        };
        let options = FeedOptions {
            filter: filter_of(code),
            frames_per_step: usize::from(per_step),
            ..FeedOptions::default()
        };
        let mut sub = store.subscribe(from, options).unwrap();
        let start = sub.delivered_lsn() + 1;
        let end = Arc::clone(&end);
        readers.push(std::thread::spawn(move || -> Read {
            let mut items = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while sub.delivered_lsn() < end.load(std::sync::atomic::Ordering::Acquire) {
                assert!(std::time::Instant::now() < deadline, "stuck: {sub:?}");
                if let Some(item) = sub.recv_timeout(Duration::from_millis(20)).unwrap() {
                    items.push(item);
                    if pause > 200 {
                        std::thread::sleep(Duration::from_micros(u64::from(pause) * 4));
                    }
                }
            }
            (start, items)
        }));
    }
    for w in writers {
        w.join().unwrap();
    }
    end.store(store.durable_lsn(), std::sync::atomic::Ordering::Release);
    let end = store.durable_lsn();
    let log = log.lock().unwrap().clone();
    prop_assert_eq!(log.len() as u64, end);
    for ((_, code, _, _), reader) in plan.subscribers.iter().zip(readers) {
        let filter = filter_of(*code);
        let (start, items) = reader.join().unwrap();
        let mut next = start;
        for item in items {
            match item {
                FeedItem::Snapshot { lsn, .. } => {
                    prop_assert!(lsn + 1 >= next, "a snapshot at {} behind position {}", lsn, next);
                    next = lsn + 1;
                }
                FeedItem::Batch(batch) => {
                    prop_assert!(batch.lsn >= next, "LSN {} after position {}", batch.lsn, next);
                    // Every frame skipped between matched nothing.
                    for lsn in next..batch.lsn {
                        prop_assert!(
                            !log[&lsn].iter().any(|e| filter.matches(e)),
                            "LSN {} matched but was skipped (start {})",
                            lsn,
                            start
                        );
                    }
                    let expected: Vec<Event> =
                        log[&batch.lsn].iter().filter(|e| filter.matches(e)).copied().collect();
                    let got: Vec<Event> = batch.events.iter().map(|e| e.event).collect();
                    prop_assert_eq!(got, expected, "at LSN {}", batch.lsn);
                    next = batch.lsn + 1;
                }
                _ => {}
            }
        }
        for lsn in next..=end {
            prop_assert!(!log[&lsn].iter().any(|e| filter.matches(e)), "LSN {} missing", lsn);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_subscriber_sees_exactly_the_durable_log_from_its_point(plan in plan()) {
        run_plan(plan)?;
    }
}
