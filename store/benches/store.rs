//! The order store end to end: durable ingest against the log's own frame rate, open
//! (recovery) time for 1M and 10M orders with a 1M-event tail, compaction time and its
//! effect on writers' commit latency, and naive persistence (the whole state rewritten as
//! one Parquet file after each add) as a baseline.
//!
//! `cargo bench -p orderlog-store --bench store` (about 70 seconds). Files go to
//! `ORDERLOG_BENCH_DIR` (default: the system temp dir). `ORDERLOG_BENCH_MAX_ORDERS`
//! lowers the largest recovery size (default 10,000,000).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benches fail loudly on purpose")]

mod common;

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{bench_dir, order};
use criterion::{Criterion, criterion_group, criterion_main};
use orderlog_snapshot::{SnapshotOptions, write_parquet_files};
use orderlog_store::{
    CompactionOptions, Event, OrderSoA, OrderStatus, OrderStore, StoreOptions, SyncPolicy,
    WalOptions,
};
use orderlog_wal::{IoBackend, Wal};

fn options(policy: SyncPolicy, background: bool) -> StoreOptions {
    StoreOptions {
        wal: WalOptions { sync_policy: policy, ..WalOptions::default() },
        compaction: CompactionOptions { background, ..CompactionOptions::default() },
        ..StoreOptions::default()
    }
}

/// Runs `work(writer)` on `writers` threads released together; returns the wall time.
fn run_writers(writers: u64, work: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(writers as usize + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(w);
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        for h in handles {
            h.join().expect("writer");
        }
        t.elapsed()
    })
}

/// Segment size for the ingest runs: larger than any run's log, so that both the store
/// and the log alone are timed appending and committing, not creating segments (which
/// costs the same per byte to both, but one 64 MiB segment is 5% of a short run).
const INGEST_SEGMENT_BYTES: u64 = 256 << 20;

/// `writers` threads each apply `batches` batches of `batch` creates; returns events/s.
/// With `reserve`, the store makes room for them all first (`OrderStore::reserve`).
fn store_ingest(backend: IoBackend, writers: u64, batch: u64, batches: u64, reserve: bool) -> f64 {
    let dir = bench_dir();
    let mut opts = options(SyncPolicy::Always, false);
    opts.wal.io_backend = Some(backend);
    opts.wal.segment_bytes = INGEST_SEGMENT_BYTES;
    let store = OrderStore::open(dir.path(), opts).expect("open");
    if reserve {
        store.reserve((writers * batch * batches) as usize).expect("reserve");
    }
    // Built before the clock starts, as the log's frames are: making an `Event` reads the
    // clock twice (the order's and the event's timestamps), which is the caller's work.
    let prepared: Vec<Vec<Vec<Event>>> = (0..writers)
        .map(|w| {
            let base = (w + 1) << 40;
            (0..batches)
                .map(|b| {
                    (0..batch)
                        .map(|i| Event::create(order(base + b * batch + i)).stamped(1))
                        .collect()
                })
                .collect()
        })
        .collect();
    let took = run_writers(writers, |w| {
        for events in &prepared[w as usize] {
            store.apply_batch(events).expect("apply");
        }
    });
    (writers * batch * batches) as f64 / took.as_secs_f64()
}

/// The log alone: the same writers appending groups of `batch` frames of an encoded
/// create's size (61 bytes); returns frames/s.
fn wal_ingest(backend: IoBackend, writers: u64, batch: u64, batches: u64) -> f64 {
    let dir = bench_dir();
    let opts = WalOptions {
        io_backend: Some(backend),
        segment_bytes: INGEST_SEGMENT_BYTES,
        ..WalOptions::default()
    };
    let wal = Wal::open(dir.path(), opts).expect("open");
    let frame = [7u8; 61];
    let frames: Vec<&[u8]> = vec![&frame; batch as usize];
    let took = run_writers(writers, |_| {
        for _ in 0..batches {
            wal.append_batch(&frames).expect("append");
        }
    });
    (writers * batch * batches) as f64 / took.as_secs_f64()
}

/// The median of a few rates.
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn ingest_report(_c: &mut Criterion) {
    // Nine runs of each, alternating, and the medians: one run moves by ±15% here, and
    // the median of five still moved by ±5% between bench runs.
    const RUNS: usize = 9;
    // (backend, writers, batch, batches per writer, room reserved first). No run fills
    // its first segment (`INGEST_SEGMENT_BYTES`), so neither side creates one while timed.
    let cases = [
        (IoBackend::Mmap, 4, 1u64, 1_000u64, false),
        (IoBackend::Mmap, 4, 64, 300, false),
        (IoBackend::Mmap, 4, 1024, 400, false),
        (IoBackend::Mmap, 4, 1024, 400, true),
        (IoBackend::Pwrite, 4, 1024, 400, false),
        (IoBackend::Mmap, 1, 1024, 1_200, false),
    ];
    for (backend, writers, batch, batches, reserve) in cases {
        let (mut store, mut wal) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            store.push(store_ingest(backend, writers, batch, batches, reserve));
            wal.push(wal_ingest(backend, writers, batch, batches));
        }
        // Each store run against the log run right after it: the spread within this run.
        let pairs: Vec<f64> = store.iter().zip(&wal).map(|(s, w)| s / w).collect();
        let (low, high) = pairs.iter().fold((f64::MAX, 0f64), |(l, h), &r| (l.min(r), h.max(r)));
        let (store, wal) = (median(store), median(wal));
        println!(
            "ingest: Always, {backend:?}, {writers} writer(s), batch {batch:>4}{} (median of {RUNS}): store {store:>10.0} events/s; log alone {wal:>10.0} frames/s; ratio {:.2} (single pairs {low:.2}–{high:.2})",
            if reserve { ", room reserved" } else { "" },
            store / wal
        );
    }
}

/// Builds a store of `orders` orders (snapshotted) plus a `tail`-event log tail, then
/// times opening it.
fn recovery_report(_c: &mut Criterion) {
    let max: u64 = std::env::var("ORDERLOG_BENCH_MAX_ORDERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    for orders in [1_000_000u64, 10_000_000].into_iter().filter(|&n| n <= max) {
        let dir = bench_dir();
        let tail = 1_000_000u64;
        // 16 MiB segments, so that even 1M orders fill sealed segments for the snapshot.
        let mut opts = options(SyncPolicy::Never, false);
        opts.wal.segment_bytes = 16 << 20;
        {
            let store = OrderStore::open(dir.path(), opts.clone()).expect("open");
            for chunk in (1..=orders).collect::<Vec<_>>().chunks(4096) {
                let events: Vec<Event> =
                    chunk.iter().map(|&id| Event::create(order(id)).stamped(1)).collect();
                store.apply_batch(&events).expect("apply");
            }
            store.sync().expect("sync");
            let t = Instant::now();
            let report = store.compact().expect("compact");
            let compact_time = t.elapsed();
            println!(
                "compaction: {orders} orders ({} frames folded) in {:.2?} (snapshot at LSN {})",
                report.batches, compact_time, report.to_lsn
            );
            for chunk in (1..=tail).collect::<Vec<_>>().chunks(1024) {
                let events: Vec<Event> = chunk
                    .iter()
                    .map(|&i| Event::set_status(i, OrderStatus::Confirmed).stamped(2))
                    .collect();
                store.apply_batch(&events).expect("tail");
            }
            store.close().expect("close");
        }
        // Three opens (each closes before the next), and the median: one open moves by
        // ±20% here.
        opts.wal.sync_policy = SyncPolicy::Always;
        let mut opens = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let store = OrderStore::open(dir.path(), opts.clone()).expect("reopen");
            let open = t.elapsed().as_secs_f64();
            opens.push(open);
            let r = store.open_report().clone();
            let stats = store.memory_stats();
            println!(
                "recovery: {} orders from snapshot (LSN {}) + {} events in {} frames replayed: open {:.0} ms ({:.1}M replayed events/s over the whole open); {:.1} B/order resident",
                r.snapshot_orders,
                r.snapshot_lsn,
                r.events_replayed,
                r.batches_replayed,
                open * 1e3,
                r.events_replayed as f64 / open / 1e6,
                stats.bytes_per_order
            );
            store.close().expect("close");
        }
        println!("recovery: {orders} orders: median open {:.0} ms", median(opens) * 1e3);
    }
}

/// A writer's commit latency: p50, p99, and the commits measured.
type Latency = (Duration, Duration, usize);

/// One store of 1M orders: a writer's commit latency (`Always`, batch 1) while nothing
/// else runs, then while the store compacts; and the compaction's time.
fn compaction_round() -> (Duration, Latency, Latency) {
    let dir = bench_dir();
    // 16 MiB segments: 1M orders fill several, so the compaction has sealed ones to fold.
    let mut opts = options(SyncPolicy::Always, false);
    opts.wal.segment_bytes = 16 << 20;
    let store = OrderStore::open(dir.path(), opts).expect("open");
    for chunk in (1..=1_000_000u64).collect::<Vec<_>>().chunks(4096) {
        let events: Vec<Event> =
            chunk.iter().map(|&id| Event::create(order(id)).stamped(1)).collect();
        store.apply_batch(&events).expect("apply");
    }
    let measure = |store: &OrderStore, stop: &AtomicBool, first_id: u64| {
        let mut lat = Vec::new();
        let mut id = first_id;
        while (!stop.load(Ordering::Relaxed) || lat.len() < 200) && lat.len() < 20_000 {
            let t = Instant::now();
            store.apply(Event::create(order(id)).stamped(3)).expect("apply");
            lat.push(t.elapsed());
            id += 1;
        }
        lat.sort();
        (lat[lat.len() / 2], lat[lat.len() * 99 / 100], lat.len())
    };
    let stop = AtomicBool::new(false);
    let quiet = std::thread::scope(|s| {
        let h = s.spawn(|| measure(&store, &stop, 10_000_000));
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        h.join().expect("writer")
    });
    let stop = AtomicBool::new(false);
    let (busy, compaction) = std::thread::scope(|s| {
        let h = s.spawn(|| measure(&store, &stop, 20_000_000));
        let t = Instant::now();
        store.compact().expect("compact");
        let took = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        (h.join().expect("writer"), took)
    });
    (compaction, quiet, busy)
}

fn compaction_latency_report(_c: &mut Criterion) {
    // Three stores, and the median ratio: a compaction lasts under a second, so its p99
    // rests on a few dozen commits and one round can catch the disk busy elsewhere.
    const ROUNDS: usize = 3;
    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        let (compaction, quiet, busy) = compaction_round();
        let ratio = busy.1.as_secs_f64() / quiet.1.as_secs_f64();
        ratios.push(ratio);
        println!(
            "compaction under load, round {round}: 1M orders compacted in {:.2?}; writer p50/p99 {:.0}/{:.0} µs quiet ({} commits) vs {:.0}/{:.0} µs during compaction ({} commits); p99 ratio {ratio:.2}",
            compaction,
            quiet.0.as_secs_f64() * 1e6,
            quiet.1.as_secs_f64() * 1e6,
            quiet.2,
            busy.0.as_secs_f64() * 1e6,
            busy.1.as_secs_f64() * 1e6,
            busy.2,
        );
    }
    println!("compaction under load: median p99 ratio {:.2} over {ROUNDS} rounds", median(ratios));
}

/// Naive persistence: after each add, save the whole state as one Parquet file.
fn naive_report(_c: &mut Criterion) {
    let dir = bench_dir();
    let n = 2_000u64;
    let mut soa = OrderSoA::new();
    let t = Instant::now();
    for id in 1..=n {
        soa.push(order(id)).expect("push");
        let sub = dir.path().join(format!("s{id}"));
        std::fs::create_dir(&sub).expect("dir");
        write_parquet_files(&sub, &soa, &SnapshotOptions::default()).expect("parquet");
        std::fs::remove_dir_all(&sub).expect("cleanup");
    }
    let naive = n as f64 / t.elapsed().as_secs_f64();
    let store_dir = bench_dir();
    let store =
        OrderStore::open(store_dir.path(), options(SyncPolicy::Always, false)).expect("open");
    let t = Instant::now();
    for id in 1..=n {
        store.apply(Event::create(order(id))).expect("apply");
    }
    let ours = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "naive baseline: save the whole state to Parquet after each add: {naive:.0} adds/s over {n} adds; the store (durable, one by one): {ours:.0} adds/s; ratio {:.1}",
        ours / naive
    );
}

criterion_group!(benches, ingest_report, naive_report, compaction_latency_report, recovery_report);
criterion_main!(benches);
