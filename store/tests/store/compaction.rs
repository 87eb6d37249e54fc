//! Compaction: snapshot + log tail gives the same state as the whole log; a compaction
//! stopped at any publish step leaves a store that reopens to the right state; erased
//! orders leave the snapshot; the log is truncated behind the snapshot, minus retention.

use std::time::{Duration, Instant};

use orderlog_snapshot::{PublishStep, SnapshotError, SnapshotStore};
use orderlog_store::{
    CompactionOptions, Event, Order, OrderState, OrderStatus, OrderStore, StoreOptions, WalOptions,
};

fn options(background: bool) -> StoreOptions {
    StoreOptions {
        wal: WalOptions {
            segment_bytes: orderlog_wal::options::SEGMENT_BYTES_MIN,
            ..WalOptions::default()
        },
        compaction: CompactionOptions { background, ..CompactionOptions::default() },
        ..StoreOptions::default()
    }
}

/// A deterministic workload; applies it to the store and to a model state.
fn workload(store: &OrderStore, model: &mut OrderState, ids: std::ops::Range<u64>) {
    for id in ids {
        let batch = vec![
            Event::create(
                Order::builder(id)
                    .customer(id % 7)
                    .product(id % 5)
                    .quantity(2)
                    .unit_price(3.0 + id as f64)
                    .build()
                    .unwrap()
                    .with_timestamp(1_700_000_000 + id),
            ),
            Event::set_status(id, OrderStatus::Confirmed),
        ];
        store.apply_batch(&batch).expect("apply");
        model.apply_batch(&batch).expect("model");
        if id % 4 == 0 {
            let e = [Event::amend(id, Some(5), None)];
            store.apply_batch(&e).expect("amend");
            model.apply_batch(&e).expect("model");
        }
        if id % 9 == 0 {
            let e = [Event::erase(id)];
            store.apply_batch(&e).expect("erase");
            model.apply_batch(&e).expect("model");
        }
    }
}

#[test]
fn compaction_snapshot_plus_tail_equals_the_whole_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), options(false)).expect("open");
    let mut model = OrderState::new();
    workload(&store, &mut model, 1..200);
    let report = store.compact().expect("compact");
    assert!(report.to_lsn > 0 && report.segments_removed > 0, "{report:?}");
    workload(&store, &mut model, 200..260);
    assert_eq!(store.state(), model);
    store.close().expect("close");
    drop(store);

    let store = OrderStore::open(dir.path(), options(false)).expect("reopen");
    let open = store.open_report().clone();
    assert_eq!(open.snapshot_lsn, report.to_lsn);
    assert_eq!(open.snapshot_orders as u64, report.orders);
    assert_eq!(open.batches_replayed, store.last_lsn() - report.to_lsn);
    assert_eq!(store.state(), model);
    // A second compaction starts from the first snapshot.
    let again = store.compact().expect("compact again");
    assert_eq!(again.from_lsn, report.to_lsn);
}

#[test]
fn compaction_drops_erased_orders_from_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), options(false)).expect("open");
    let mut model = OrderState::new();
    workload(&store, &mut model, 1..120);
    store.compact().expect("compact");
    let snapshots = SnapshotStore::open_read_only(dir.path().join("snapshots"));
    let current = snapshots.current().expect("current").expect("a snapshot");
    let mut ids = Vec::new();
    for batch in snapshots.read_parquet_batches(&current.info).expect("parquet") {
        let col =
            batch.column(0).as_any().downcast_ref::<arrow::array::UInt64Array>().expect("u64");
        ids.extend(col.values().iter().copied());
    }
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| id % 9 != 0), "an erased order is still in the snapshot");
}

#[test]
fn compaction_stopped_at_any_publish_step_leaves_a_correct_store() {
    for stop_at in PublishStep::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut model = OrderState::new();
        {
            let store = OrderStore::open(dir.path(), options(false)).expect("open");
            workload(&store, &mut model, 1..80);
            store.compact().expect("first compaction");
            workload(&store, &mut model, 80..160);
            let stopped = store.compact_with_hook(&mut |step| {
                if step == stop_at { Err(SnapshotError::Stopped { step }) } else { Ok(()) }
            });
            assert!(stopped.is_err(), "{stop_at:?}: the hook did not stop the compaction");
            // The process "dies" here: no close.
        }
        let store = OrderStore::open(dir.path(), options(false))
            .expect("reopen after a stopped compaction");
        assert_eq!(store.state(), model, "stopped at {stop_at:?}");
        store.compact().expect("compaction after the stop");
        workload(&store, &mut model, 160..170);
        drop(store);
        let store = OrderStore::open(dir.path(), options(false)).expect("reopen");
        assert_eq!(store.state(), model, "stopped at {stop_at:?}, then compacted");
    }
}

#[test]
fn compaction_keeps_the_retained_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(false);
    opts.compaction.retain_segments = 2;
    let store = OrderStore::open(dir.path(), opts).expect("open");
    let mut model = OrderState::new();
    workload(&store, &mut model, 1..200);
    let report = store.compact().expect("compact");
    let bases: Vec<u64> = std::fs::read_dir(dir.path().join("wal"))
        .expect("wal dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".wal")?.parse().ok())
        .collect();
    let below = bases.iter().filter(|&&b| b <= report.to_lsn).count();
    // The retained two, plus the segment holding the frames after the snapshot.
    assert!(below >= 2, "bases {bases:?}, snapshot at {}", report.to_lsn);
    assert!(report.segments_removed > 0);
}

#[test]
fn compaction_runs_in_the_background_when_the_log_grows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(true);
    opts.compaction.wal_bytes_trigger = 1;
    let store = OrderStore::open(dir.path(), opts).expect("open");
    let mut model = OrderState::new();
    workload(&store, &mut model, 1..100);
    let snapshots = SnapshotStore::open_read_only(dir.path().join("snapshots"));
    // Wait for the compactor (it checks once a second); the deadline is generous and
    // only bounds a hang, it measures nothing.
    let deadline = Instant::now() + Duration::from_secs(60);
    while snapshots.current().expect("current").is_none() {
        assert!(Instant::now() < deadline, "the background compactor never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    workload(&store, &mut model, 100..120);
    store.close().expect("close");
    drop(store);
    let store = OrderStore::open(dir.path(), options(false)).expect("reopen");
    assert!(store.open_report().snapshot_lsn > 0);
    assert_eq!(store.state(), model);
}

#[test]
fn compaction_failures_are_counted_in_the_stores_stats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = OrderState::new();
    let store = OrderStore::open(dir.path(), options(false)).expect("open");
    assert_eq!(store.stats().compaction, Default::default());
    workload(&store, &mut model, 1..80);
    let stopped = store.compact_with_hook(&mut |step| {
        if step == PublishStep::FilesSynced { Err(SnapshotError::Stopped { step }) } else { Ok(()) }
    });
    assert!(stopped.is_err());
    let stats = store.stats().compaction;
    assert_eq!((stats.completed, stats.failed), (0, 1), "{stats:?}");
    assert!(stats.last_error.as_deref().is_some_and(|e| e.contains("stopped")), "{stats:?}");
    let report = store.compact().expect("compaction");
    let stats = store.stats();
    assert_eq!((stats.compaction.completed, stats.compaction.failed), (1, 1));
    assert_eq!(stats.compaction.last, Some(report));
    assert_eq!(stats.wal.last_lsn, store.last_lsn());
}
