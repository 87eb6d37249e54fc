//! DuckDB analytics: the reports `revenue_by_status` and `top_customers(10)` over stores
//! of 1M and 10M orders, from the snapshot alone and fresh (snapshot + a 1M-row tail),
//! each against DuckDB's own `read_parquet` query on the same files in the same
//! process. (The DuckDB persistence backend's append is benched in `soa-persistence`.)
//!
//! `cargo bench -p orderlog-store --bench analytics` (about 5 minutes). Files go to
//! `ORDERLOG_BENCH_DIR` (default: the system temp dir); `ORDERLOG_BENCH_MAX_ORDERS`
//! lowers the largest store (default 10,000,000). After criterion's runs it prints the
//! ratios from interleaved timings (median of 15 alternating runs).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benches fail loudly on purpose")]

mod common;

use std::time::{Duration, Instant};

use common::{bench_dir, order};
use criterion::{Criterion, criterion_group, criterion_main};
use orderlog_store::{
    Analytics, AnalyticsOptions, CompactionOptions, Event, OrderStatus, OrderStore, StoreOptions,
    SyncPolicy, WalOptions,
};

const TAIL: u64 = 1_000_000;

/// A store of `n` orders compacted into a snapshot, then `TAIL` mutations of existing
/// orders (status changes and amends) left in the log.
fn build_store(dir: &std::path::Path, n: u64) -> OrderStore {
    let options = StoreOptions {
        wal: WalOptions {
            sync_policy: SyncPolicy::Never,
            segment_bytes: 8 << 20,
            ..WalOptions::default()
        },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        // Every core and no time limit, as the plain DuckDB connection it is compared with
        // has (the store's default is half the cores, for writers' sake).
        analytics: AnalyticsOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout: None,
            ..AnalyticsOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = OrderStore::open(dir, options).expect("open");
    let ids: Vec<u64> = (1..=n).collect();
    for chunk in ids.chunks(1024) {
        let batch: Vec<Event> = chunk.iter().map(|&id| Event::create(order(id))).collect();
        store.apply_batch(&batch).expect("create");
    }
    store.compact().expect("compact");
    let step = (n / TAIL).max(1);
    let touched: Vec<u64> = (0..TAIL.min(n)).map(|i| 1 + i * step).collect();
    for chunk in touched.chunks(1024) {
        let batch: Vec<Event> = chunk
            .iter()
            .map(|&id| {
                if id % 2 == 0 {
                    Event::set_status(id, OrderStatus::Confirmed)
                } else {
                    Event::amend(id, Some(3), None)
                }
            })
            .collect();
        store.apply_batch(&batch).expect("mutate");
    }
    store.sync().expect("sync");
    store
}

/// DuckDB's own query on the snapshot's Parquet files: the baseline.
struct Direct {
    conn: duckdb::Connection,
    files: String,
}

impl Direct {
    fn new(analytics: &Analytics) -> Direct {
        let files: Vec<String> = analytics
            .info()
            .snapshot_files
            .iter()
            .map(|p| format!("'{}'", p.display().to_string().replace('\'', "''")))
            .collect();
        Direct {
            conn: duckdb::Connection::open_in_memory().expect("duckdb"),
            files: format!("read_parquet([{}])", files.join(", ")),
        }
    }

    fn revenue_by_status(&self) -> usize {
        let sql = format!(
            "SELECT status, COUNT(*) AS orders, SUM(total_amount) AS revenue FROM {} \
             GROUP BY status ORDER BY revenue DESC, status",
            self.files
        );
        self.rows(&sql)
    }

    fn top_customers(&self, limit: i64) -> usize {
        let sql = format!(
            "SELECT customer_id, COUNT(*) AS order_count, SUM(total_amount) AS total_spent \
             FROM {} GROUP BY customer_id ORDER BY total_spent DESC, customer_id LIMIT {limit}",
            self.files
        );
        self.rows(&sql)
    }

    fn rows(&self, sql: &str) -> usize {
        let mut stmt = self.conn.prepare(sql).expect("prepare");
        stmt.query_arrow([]).expect("query").map(|b| b.num_rows()).sum()
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median times of `a` and `b` over 15 alternating runs, after one warm-up each.
fn interleaved(mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    a();
    b();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let t = Instant::now();
        a();
        ta.push(t.elapsed());
        let t = Instant::now();
        b();
        tb.push(t.elapsed());
    }
    (median(ta), median(tb))
}

fn queries(c: &mut Criterion) {
    let max: u64 = std::env::var("ORDERLOG_BENCH_MAX_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let mut summary = Vec::new();
    for n in [1_000_000u64, 10_000_000].into_iter().filter(|&n| n <= max) {
        let dir = bench_dir();
        let t = Instant::now();
        let store = build_store(dir.path(), n);
        eprintln!("built a store of {n} orders + {TAIL} tail mutations in {:?}", t.elapsed());
        let snapshot = store.analytics_snapshot().expect("snapshot view");
        let t = Instant::now();
        let fresh = store.analytics().expect("fresh view");
        let open_fresh = t.elapsed();
        let direct = Direct::new(&snapshot);
        assert_eq!(direct.revenue_by_status(), snapshot.revenue_by_status().expect("q").len());

        let mut group = c.benchmark_group(format!("analytics/{n}"));
        group.sample_size(10).measurement_time(Duration::from_secs(4));
        group.bench_function("revenue_by_status/read_parquet", |b| {
            b.iter(|| direct.revenue_by_status())
        });
        group.bench_function("revenue_by_status/snapshot", |b| {
            b.iter(|| snapshot.revenue_by_status().expect("q"))
        });
        group.bench_function("revenue_by_status/fresh", |b| {
            b.iter(|| fresh.revenue_by_status().expect("q"))
        });
        group.bench_function("top_customers_10/read_parquet", |b| {
            b.iter(|| direct.top_customers(10))
        });
        group.bench_function("top_customers_10/snapshot", |b| {
            b.iter(|| snapshot.top_customers(10).expect("q"))
        });
        group.bench_function("top_customers_10/fresh", |b| {
            b.iter(|| fresh.top_customers(10).expect("q"))
        });
        group.finish();

        let (d, s) = interleaved(
            || {
                std::hint::black_box(direct.revenue_by_status());
            },
            || {
                std::hint::black_box(snapshot.revenue_by_status().expect("q"));
            },
        );
        let (_, f) = interleaved(
            || {
                std::hint::black_box(snapshot.revenue_by_status().expect("q"));
            },
            || {
                std::hint::black_box(fresh.revenue_by_status().expect("q"));
            },
        );
        summary.push(format!(
            "{n} orders, revenue_by_status: read_parquet {d:?}, snapshot {s:?} (ratio {:.2}), \
             fresh {f:?} (fresh/snapshot {:.2})",
            s.as_secs_f64() / d.as_secs_f64(),
            f.as_secs_f64() / s.as_secs_f64()
        ));
        let (d, s) = interleaved(
            || {
                std::hint::black_box(direct.top_customers(10));
            },
            || {
                std::hint::black_box(snapshot.top_customers(10).expect("q"));
            },
        );
        let (_, f) = interleaved(
            || {
                std::hint::black_box(snapshot.top_customers(10).expect("q"));
            },
            || {
                std::hint::black_box(fresh.top_customers(10).expect("q"));
            },
        );
        summary.push(format!(
            "{n} orders, top_customers(10): read_parquet {d:?}, snapshot {s:?} (ratio {:.2}), \
             fresh {f:?} (fresh/snapshot {:.2})",
            s.as_secs_f64() / d.as_secs_f64(),
            f.as_secs_f64() / s.as_secs_f64()
        ));
        summary.push(format!(
            "{n} orders: making the fresh handle (tail of {} touched orders) took {open_fresh:?}",
            fresh.info().touched
        ));
    }
    for line in summary {
        println!("{line}");
    }
}

criterion_group!(benches, queries);
criterion_main!(benches);
