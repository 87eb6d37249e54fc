//! What the store's benchmarks share: where their files go, and the orders they write.

#![allow(dead_code, reason = "each bench uses what it needs")]

use std::path::PathBuf;

use orderlog_store::Order;

/// A fresh directory under `ORDERLOG_BENCH_DIR` (default: the system temp dir).
pub fn bench_dir() -> tempfile::TempDir {
    let base =
        std::env::var_os("ORDERLOG_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    tempfile::Builder::new().prefix("orderlog-bench-").tempdir_in(base).expect("bench dir")
}

/// Order `id`: 100,000 customers, 5,000 products, prices up to 100.
pub fn order(id: u64) -> Order {
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
