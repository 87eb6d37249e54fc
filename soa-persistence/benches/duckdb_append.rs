//! The DuckDB backend's Arrow append of 1M orders against `SQLOrderStore::add`, one order
//! per call. `cargo bench -p soa-persistence --bench duckdb_append`.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benches fail loudly on purpose")]
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orderlog_store::{Order, OrderSoA};
use soa_persistence::{DuckDBPersistence, SQLOrderStore, SoAPersistence};

/// The same orders as the store's benches.
fn order(id: u64) -> Order {
    Order::builder(id)
        .customer(id % 100_000)
        .product(id % 5_000)
        .quantity((id % 9 + 1) as u32)
        .unit_price((id % 10_000) as f64 / 100.0)
        .build()
        .unwrap()
        .with_timestamp(1_600_000_000 + id % 150_000_000)
        .with_shipping_address_hash(id.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn soa(range: std::ops::Range<u64>) -> OrderSoA {
    let mut soa = OrderSoA::with_capacity((range.end - range.start) as usize);
    for id in range {
        soa.push(order(id)).expect("valid");
    }
    soa
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut group = c.benchmark_group("duckdb_append");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    let n = 1_000_000u64;
    let data = soa(1..n + 1);
    group.throughput(Throughput::Elements(n));
    group.bench_function(BenchmarkId::new("arrow_appender", n), |b| {
        b.iter(|| {
            let mut p = DuckDBPersistence::<OrderSoA>::new(None, "orders").expect("open");
            rt.block_on(p.append(&data)).expect("append");
        })
    });
    // `SQLOrderStore::add`: one order per call. Fewer rows, same per-row rate.
    let rows = 2_000u64;
    let orders: Vec<Order> = (1..=rows).map(order).collect();
    group.throughput(Throughput::Elements(rows));
    group.bench_function(BenchmarkId::new("sql_order_store_add_row_by_row", rows), |b| {
        b.iter(|| {
            let mut s = SQLOrderStore::new(None).expect("open");
            rt.block_on(async {
                for o in &orders {
                    s.add(*o).await.expect("add");
                }
            });
        })
    });
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
