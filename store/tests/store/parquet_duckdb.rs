//! The Parquet snapshot of an order state is readable by DuckDB unchanged: counts and
//! sums computed by DuckDB's `read_parquet` equal the ones computed in Rust, partitioned
//! (hive-style by status) or not, for every compression.

use orderlog_snapshot::{ParquetCompression, SnapshotOptions, SnapshotStore};
use orderlog_store::{Order, OrderSoA, OrderStatus, PaymentMethod};

fn orders(n: u64) -> OrderSoA {
    let mut soa = OrderSoA::new();
    for id in 1..=n {
        let order = Order::builder(id)
            .customer(id % 97)
            .product(id % 31)
            .quantity((id % 9 + 1) as u32)
            .unit_price((id % 500) as f64 * 0.25)
            .build()
            .unwrap()
            .with_status(OrderStatus::ALL[(id % 6) as usize])
            .with_payment_method(PaymentMethod::ALL[(id % 5) as usize])
            .with_timestamp(1_700_000_000 + id * 37);
        soa.push(order).expect("valid order");
    }
    soa
}

/// Quotes a path as a SQL string literal (paths come from the snapshot store, but quote
/// them properly anyway).
fn sql_string(path: &std::path::Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

#[test]
fn parquet_snapshot_reads_back_in_duckdb_with_equal_counts_and_sums() {
    let soa = orders(20_000);
    let rust_total: f64 = soa.total_amount_raw_array().iter().sum();
    let rust_quantity: u64 = soa.quantity_raw_array().iter().map(|&q| u64::from(q)).sum();
    let rust_delivered = soa.statuses().filter(|s| *s == OrderStatus::Delivered).count() as i64;

    for (compression, partition_by) in [
        (ParquetCompression::Zstd, None),
        (ParquetCompression::Snappy, None),
        (ParquetCompression::None, None),
        (ParquetCompression::Zstd, Some("status".to_string())),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("snapshot store");
        let opts = SnapshotOptions {
            compression,
            partition_by: partition_by.clone(),
            ..SnapshotOptions::default()
        };
        store.publish(&soa, 7, 1, &opts).expect("publish");
        let verified = store.current().expect("current").expect("a snapshot");
        let files: Vec<String> =
            store.parquet_files(&verified.info).iter().map(|p| sql_string(p)).collect();
        let hive = if partition_by.is_some() { ", hive_partitioning = false" } else { "" };
        let sql = format!(
            "SELECT count(*), sum(total_amount), sum(quantity)::UBIGINT, count(*) FILTER (WHERE status = {})
             FROM read_parquet([{}]{hive})",
            u8::from(OrderStatus::Delivered),
            files.join(", ")
        );
        let conn = duckdb::Connection::open_in_memory().expect("duckdb");
        let (count, total, quantity, delivered): (i64, f64, u64, i64) = conn
            .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query");
        let what = format!("{compression:?} partition_by={partition_by:?}");
        assert_eq!(count, soa.len() as i64, "{what}");
        assert!((total - rust_total).abs() <= 1e-6 * rust_total, "{what}: {total} vs {rust_total}");
        assert_eq!(quantity, rust_quantity, "{what}");
        assert_eq!(delivered, rust_delivered, "{what}");
    }
}
