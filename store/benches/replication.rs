//! Continuous backup's costs, printed as ratios against the same work without it, in
//! the same process:
//!
//! - `ingest`: durable ingest (two writers, `SyncPolicy::Always`, batches of 64 and 1024
//!   creates) with shipping to `file://` and to an S3 server on loopback every second,
//!   against no shipping (median of three runs, alternated).
//! - `lag`: under the batch-64 load with shipping every second to the loopback S3
//!   server, the time from each batch's acknowledgement until the backup holds it
//!   (p50/p99), sampled from the shipper's stats every millisecond.
//! - `restore`: a store of 1M orders (10M with `ORDERLOG_RESTORE_10M=1`), snapshot and
//!   log, restored from `file://` and from the loopback S3 server, against opening the
//!   same store locally.
//!
//! `cargo bench -p orderlog-store --bench replication [ingest|lag|restore]`;
//! `ORDERLOG_REPLICATION_BENCH_QUICK=1` for a short run.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use orderlog_s3_server::S3Server;
use orderlog_store::replication::{RestorePoint, restore};
use orderlog_store::{
    CompactionOptions, Event, Order, OrderStore, ReplicationOptions, StoreOptions, SyncPolicy,
    WalOptions,
};

fn quick() -> bool {
    std::env::var_os("ORDERLOG_REPLICATION_BENCH_QUICK").is_some()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    None,
    File,
    S3,
    /// `file://` behind a store that fails every request.
    Failing,
}

/// A target of `kind` (its server kept alive by the returned guard).
fn target(kind: Kind, root: &std::path::Path) -> (Option<ReplicationOptions>, Option<S3Server>) {
    match kind {
        Kind::None => (None, None),
        Kind::Failing => (
            Some(ReplicationOptions::new(format!("file://{}", root.join("backup").display()))),
            None,
        ),
        Kind::File => (
            Some(ReplicationOptions::new(format!("file://{}", root.join("backup").display()))),
            None,
        ),
        Kind::S3 => {
            let server = S3Server::start(&root.join("s3"), "bench").unwrap();
            let options = ReplicationOptions::new(format!("{}/store", server.url()))
                .with_client_options(server.client_options());
            (Some(options), Some(server))
        }
    }
}

fn order(id: u64) -> Event {
    let order = Order::builder(id).customer(id % 1000).product(id % 77).quantity(1).unit_price(2.0);
    Event::create(order.build().unwrap())
}

/// Two writers write creates in batches of `batch` for `run`; events per second, and
/// (with `sample`) each batch's LSN, acknowledgement time and time the backup held it.
fn ingest_once(
    kind: Kind,
    batch: u64,
    run: Duration,
    sample: Option<&mut Vec<(u64, Duration, Duration)>>,
) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (replication, _server) = target(kind, dir.path());
    let options = StoreOptions {
        wal: WalOptions { sync_policy: SyncPolicy::Always, ..WalOptions::default() },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        replication,
        ..StoreOptions::default()
    };
    let store = if kind == Kind::Failing {
        let url = format!("file://{}", dir.path().join("backup").display());
        let plan = Arc::new(orderlog_ship::faults::FaultPlan::default());
        plan.fail_all(true);
        let inner = orderlog_ship::Target::open(&url, &[]).unwrap().object_store().clone();
        let failing = orderlog_ship::faults::FaultyStore::wrap(inner, plan);
        let target = orderlog_ship::Target::new(&url, failing, "");
        OrderStore::open_with_target(dir.path().join("store"), options, target).unwrap()
    } else {
        OrderStore::open(dir.path().join("store"), options).unwrap()
    };
    let clock = Instant::now();
    let shipped: Arc<std::sync::Mutex<Vec<(Duration, u64)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = sample.is_some().then(|| {
        let (store, shipped, done) = (store.clone(), Arc::clone(&shipped), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                let lsn = store.stats().replication.map_or(0, |r| r.shipped_lsn);
                shipped.lock().unwrap().push((clock.elapsed(), lsn));
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    });
    let started = Instant::now();
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut acks = Vec::new();
                for k in 0.. {
                    if started.elapsed() >= run {
                        break;
                    }
                    let first = ((k * 2 + w) * batch) + 1;
                    let events: Vec<Event> = (first..first + batch).map(order).collect();
                    let lsn = store.apply_batch(&events).unwrap();
                    acks.push((lsn, clock.elapsed()));
                }
                acks
            })
        })
        .collect();
    let mut acks = Vec::new();
    for w in writers {
        acks.extend(w.join().unwrap());
    }
    let rate = (acks.len() as u64 * batch) as f64 / started.elapsed().as_secs_f64();
    if let Some(sample) = sample {
        // Until the backup holds the last batch.
        let last = store.last_lsn();
        while store.stats().replication.map_or(0, |r| r.shipped_lsn) < last {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(5));
        done.store(true, Ordering::Release);
        if let Some(s) = sampler {
            s.join().unwrap();
        }
        let shipped = shipped.lock().unwrap();
        for (lsn, at) in acks {
            // Shipped LSNs only grow: the first sample holding the batch.
            let i = shipped.partition_point(|(_, s)| *s < lsn);
            let held = shipped.get(i).map_or(at, |(t, _)| *t);
            sample.push((lsn, at, held));
        }
    }
    store.close().unwrap();
    rate
}

fn ingest() {
    let run = if quick() { Duration::from_secs(2) } else { Duration::from_secs(5) };
    for batch in [64, 1024] {
        let (mut none, mut file, mut s3, mut failing) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            none.push(ingest_once(Kind::None, batch, run, None));
            file.push(ingest_once(Kind::File, batch, run, None));
            s3.push(ingest_once(Kind::S3, batch, run, None));
            if batch == 64 {
                failing.push(ingest_once(Kind::Failing, batch, run, None));
            }
        }
        if batch == 64 {
            let (a, d) = (median(none.clone()), median(failing));
            println!(
                "ingest, batch 64, while the object store fails every request (the shipper retrying with backoff, the log held): {d:.0} events/s (ratio {:.3} of no shipping)",
                d / a
            );
        }
        let (a, b, c) = (median(none), median(file), median(s3));
        println!(
            "ingest, batch {batch}, 2 writers under Always, {} s a run: {a:.0} events/s without shipping, {b:.0} shipping to file:// (ratio {:.3}), {c:.0} shipping to S3 on loopback (ratio {:.3}) (median of 3, alternated)",
            run.as_secs(),
            b / a,
            c / a
        );
    }
}

fn lag() {
    let run = if quick() { Duration::from_secs(3) } else { Duration::from_secs(10) };
    let mut sample = Vec::new();
    ingest_once(Kind::S3, 64, run, Some(&mut sample));
    let mut lags: Vec<f64> = sample
        .iter()
        .map(|(_, at, held)| held.saturating_sub(*at).as_secs_f64() * 1000.0)
        .collect();
    lags.sort_by(f64::total_cmp);
    let p = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    println!(
        "replication lag to S3 on loopback, interval 1 s, batch 64 under load ({} batches): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lags.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
}

fn restore_bench(orders: u64) {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"), "bench").unwrap();
    let file_url = format!("file://{}", dir.path().join("backup").display());
    let store_dir = dir.path().join("store");
    // 4 MiB segments: the compaction at nine tenths has sealed segments to fold.
    let options = StoreOptions {
        wal: WalOptions {
            sync_policy: SyncPolicy::Never,
            segment_bytes: 4 << 20,
            ..WalOptions::default()
        },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        ..StoreOptions::default()
    };
    let store = OrderStore::open(&store_dir, options.clone()).unwrap();
    let batch = 1024;
    for k in 0..orders / batch {
        let events: Vec<Event> = (k * batch + 1..=(k + 1) * batch).map(order).collect();
        store.apply_batch(&events).unwrap();
        if k == orders / batch * 9 / 10 {
            store.compact().unwrap(); // nine tenths in the snapshot, the rest in the log
        }
    }
    let snapshot_lsn = store.stats().compaction.last.map_or(0, |c| c.to_lsn);
    assert!(snapshot_lsn > 0, "the compaction folded nothing");
    store.close().unwrap();
    drop(store);
    let s3_url = format!("{}/store", s3.url());
    for (url, opts) in [(&file_url, Vec::new()), (&s3_url, s3.client_options())] {
        let store = OrderStore::open(
            &store_dir,
            StoreOptions {
                replication: Some(ReplicationOptions::new(url).with_client_options(opts)),
                ..options.clone()
            },
        )
        .unwrap();
        store.close().unwrap();
    }
    let open_local = || {
        let started = Instant::now();
        let store = OrderStore::open(&store_dir, options.clone()).unwrap();
        assert_eq!(store.len() as u64, orders / batch * batch);
        drop(store);
        started.elapsed().as_secs_f64()
    };
    let local = median((0..3).map(|_| open_local()).collect());
    for (name, url, opts) in
        [("file://", &file_url, Vec::new()), ("S3 on loopback", &s3_url, s3.client_options())]
    {
        let mut times = Vec::new();
        let mut total_bytes = 0;
        for i in 0..3 {
            let out = dir.path().join(format!("restored-{}-{i}", name.len()));
            let started = Instant::now();
            let report = restore(url, &opts, &out, RestorePoint::Latest, |_, _| {}).unwrap();
            let restored = started.elapsed().as_secs_f64();
            total_bytes = report.bytes;
            let store = OrderStore::open(&out, options.clone()).unwrap();
            assert_eq!(store.len() as u64, orders / batch * batch);
            drop(store);
            times.push((restored, started.elapsed().as_secs_f64()));
            std::fs::remove_dir_all(&out).unwrap();
        }
        // The transfer alone: every object the restore reads, fetched and dropped.
        let target = orderlog_ship::Target::open(url, &opts).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let raw = median(
            (0..3)
                .map(|_| {
                    let started = Instant::now();
                    runtime.block_on(async {
                        let (_, index) =
                            orderlog_ship::shipper::newest_index(&target).await.unwrap().unwrap();
                        let snapshot = index.snapshots.last().expect("the snapshot was shipped");
                        for f in &snapshot.files {
                            target.get(&f.object).await.unwrap();
                        }
                        for s in index.segments.iter().filter(|s| s.last_lsn >= snapshot.lsn) {
                            target.get(&s.object).await.unwrap();
                        }
                    });
                    started.elapsed().as_secs_f64()
                })
                .collect(),
        );
        // The disk alone: the same bytes written to one file and synced.
        let write = median(
            (0..3)
                .map(|_| {
                    let path = dir.path().join("raw-write");
                    let chunk = vec![7u8; 4 << 20];
                    let started = Instant::now();
                    let mut file = std::fs::File::create(&path).unwrap();
                    let mut left = total_bytes;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        std::io::Write::write_all(&mut file, &chunk[..n]).unwrap();
                        left -= n as u64;
                    }
                    file.sync_all().unwrap();
                    let elapsed = started.elapsed().as_secs_f64();
                    std::fs::remove_file(&path).unwrap();
                    elapsed
                })
                .collect(),
        );
        println!(
            "  baselines: the same objects fetched and dropped, one at a time, {raw:.2} s; their {} MB written to one file and synced, {write:.2} s",
            total_bytes >> 20
        );
        let restore_only = median(times.iter().map(|t| t.0).collect());
        let with_open = median(times.iter().map(|t| t.1).collect());
        println!(
            "restore of {orders} orders from {name}: {:.2} s (ratio {:.2} of opening the store locally, {local:.2} s); restore then open {:.2} s (ratio {:.2}) (median of 3)",
            restore_only,
            restore_only / local,
            with_open,
            with_open / local
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter on the section name.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wanted("ingest") {
        ingest();
    }
    if wanted("lag") {
        lag();
    }
    if wanted("restore") {
        restore_bench(if quick() { 100_000 } else { 1_000_000 });
        if std::env::var_os("ORDERLOG_RESTORE_10M").is_some() {
            restore_bench(10_000_000);
        }
    }
}
