//! The change feed's figures, each against a baseline run in the same process:
//!
//! 1. catch-up: a subscription reading a closed log from disk, in events per second,
//!    against the store's own replay of the same log on open;
//! 2. live lag: commit -> delivery to a subscriber (the writer's call to the
//!    subscriber's receipt), p50 and p99, at batch 1 and 64, against the commit latency
//!    (the writer's call to its acknowledgement) of the same run, under `Always`;
//! 3. ingest: four writers' durable events per second with four live subscribers
//!    draining the feed, against the same writers with none.
//!
//! `cargo bench -p orderlog-store --bench feed` (figures in docs/benchmarks.md);
//! `ORDERLOG_FEED_BENCH_QUICK=1` runs a small version of each.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use orderlog_store::feed::{FeedItem, Filter, StartAt};
use orderlog_store::{
    CompactionOptions, Event, Order, OrderStatus, OrderStore, StoreOptions, SyncPolicy, WalOptions,
};

fn quick() -> bool {
    std::env::var_os("ORDERLOG_FEED_BENCH_QUICK").is_some()
}

fn options(policy: SyncPolicy) -> StoreOptions {
    StoreOptions {
        wal: WalOptions { sync_policy: policy, ..WalOptions::default() },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        ..StoreOptions::default()
    }
}

/// Batch `k` of `size` events: creates of new orders, every other batch their
/// confirmations instead.
fn batch(k: u64, size: u64) -> Vec<Event> {
    (0..size)
        .map(|i| {
            let id = (k / 2) * size + i + 1;
            if k.is_multiple_of(2) {
                let order =
                    Order::builder(id).customer(id % 1000).product(7).quantity(2).unit_price(9.5);
                Event::create(order.build().unwrap())
            } else {
                Event::set_status(id, OrderStatus::Confirmed)
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Events per second: the feed reading the log from disk, and the store's replay.
fn catch_up() {
    let events: u64 = if quick() { 200_000 } else { 4_000_000 };
    let size = 64;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = OrderStore::open(dir.path(), options(SyncPolicy::Never)).unwrap();
        store.reserve(events as usize).unwrap();
        for k in 0..events / size {
            store.apply_batch(&batch(k, size)).unwrap();
        }
        store.close().unwrap();
    }
    let (mut feed_rates, mut replay_rates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let store = OrderStore::open(dir.path(), options(SyncPolicy::Never)).unwrap();
        let report = store.open_report();
        replay_rates.push(report.events_replayed as f64 / report.elapsed.as_secs_f64());
        let end = store.durable_lsn();
        let started = Instant::now();
        let mut sub = store.subscribe(StartAt::Beginning, Filter::all()).unwrap();
        let mut n = 0u64;
        while sub.delivered_lsn() < end {
            if let Some(FeedItem::Batch(b)) = sub.try_recv().unwrap() {
                n += b.events.len() as u64;
            }
        }
        feed_rates.push(n as f64 / started.elapsed().as_secs_f64());
        assert_eq!(n, events);
        drop(sub);
        store.close().unwrap();
    }
    let (feed, replay) = (median(feed_rates), median(replay_rates));
    println!(
        "catch-up from disk: {:.2} M events/s; the store's replay of the same log: {:.2} M events/s; ratio {:.2} ({} events in batches of {size}, median of 3)",
        feed / 1e6,
        replay / 1e6,
        feed / replay,
        events
    );
}

/// Commit latency and commit -> delivery lag under `Always`, one writer, one subscriber.
fn lag(size: u64) {
    let batches: u64 = if quick() { 2_000 } else { 20_000 };
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), options(SyncPolicy::Always)).unwrap();
    let mut sub = store.subscribe(StartAt::End, Filter::all()).unwrap();
    let first = store.durable_lsn() + 1;
    let reader = std::thread::spawn(move || {
        let mut received = Vec::with_capacity(batches as usize);
        while received.len() < batches as usize {
            if let Some(item) = sub.recv_timeout(Duration::from_secs(10)).unwrap() {
                received.push((item.lsn(), Instant::now()));
            }
        }
        received
    });
    let mut calls = Vec::with_capacity(batches as usize);
    for k in 0..batches {
        let events = batch(k, size);
        let t0 = Instant::now();
        let lsn = store.apply_batch(&events).unwrap();
        calls.push((lsn, t0, Instant::now()));
    }
    let received = reader.join().unwrap();
    let mut commit: Vec<Duration> = calls.iter().map(|(_, t0, t1)| *t1 - *t0).collect();
    let mut delivery: Vec<Duration> = received
        .iter()
        .map(|(lsn, at)| {
            let (_, t0, _) = calls[(lsn - first) as usize];
            at.saturating_duration_since(t0)
        })
        .collect();
    commit.sort();
    delivery.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "live lag, batch {size}: commit p50 {:.0} µs p99 {:.0} µs; commit -> delivery p50 {:.0} µs p99 {:.0} µs; delivery p99 / commit p99 = {:.2} ({batches} batches)",
        us(percentile(&commit, 0.5)),
        us(percentile(&commit, 0.99)),
        us(percentile(&delivery, 0.5)),
        us(percentile(&delivery, 0.99)),
        percentile(&delivery, 0.99).as_secs_f64() / percentile(&commit, 0.99).as_secs_f64()
    );
    store.close().unwrap();
}

/// Four writers' durable events per second under `Always`, with `subscribers` draining
/// the feed meanwhile (or, not `reading`, only subscribed: the cache of recent frames is
/// filled, nobody reads it).
fn ingest_once(subscribers: usize, reading: bool) -> f64 {
    let per_writer: u64 = if quick() { 2_000 } else { 15_000 };
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), options(SyncPolicy::Always)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut sub = store.subscribe(StartAt::End, Filter::all()).unwrap();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !done.load(Ordering::Acquire) {
                    if !reading {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    if let Some(FeedItem::Batch(b)) =
                        sub.recv_timeout(Duration::from_millis(20)).unwrap()
                    {
                        n += b.events.len() as u64;
                    }
                }
                n
            })
        })
        .collect();
    let started = Instant::now();
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for k in 0..per_writer {
                    let id = w * 1_000_000 + k + 1;
                    let order = Order::builder(id)
                        .customer(id % 100)
                        .product(3)
                        .quantity(1)
                        .unit_price(2.0);
                    store.apply(Event::create(order.build().unwrap())).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let rate = (4 * per_writer) as f64 / started.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    store.close().unwrap();
    rate
}

fn ingest() {
    let (mut without, mut with, mut idle) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        without.push(ingest_once(0, false));
        with.push(ingest_once(4, true));
        idle.push(ingest_once(4, false));
    }
    let (a, b, c) = (median(without), median(with), median(idle));
    println!(
        "ingest, 4 writers under Always: {:.0} events/s without subscribers, {:.0} with 4 live subscribers (ratio {:.3}), {:.0} with 4 subscribed that do not read (ratio {:.3}; the cost of filling the cache) (median of 3, alternated)",
        a,
        b,
        b / a,
        c,
        c / a
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter on the section name.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wanted("catch_up") {
        catch_up();
    }
    if wanted("lag") {
        lag(1);
        lag(64);
    }
    if wanted("ingest") {
        ingest();
    }
}
