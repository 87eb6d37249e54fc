//! The DuckDB backend: the backend contract, every row back, the table name
//! validated, `SQLOrderStore`'s reports equal to Rust aggregates; and a store's Parquet
//! snapshot read by a DuckDB file database through ATTACH + read_parquet.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type, UInt8Type, UInt64Type};
use orderlog_store::{
    AnalyticsError, CompactionOptions, Event, Order, OrderSoA, OrderStore, StoreOptions, WalOptions,
};
use soa_persistence::{DuckDBPersistence, PersistenceError, SQLOrderStore, SoAPersistence};

use crate::api::{backend_contract, order, soa, sorted_ids};

#[tokio::test]
async fn duckdb_backend_keeps_the_contract_in_memory_and_in_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let memory = DuckDBPersistence::<OrderSoA>::new(None, "orders").expect("in memory");
    backend_contract("duckdb in memory", memory).await;
    let path = dir.path().join("orders.duckdb");
    let file = DuckDBPersistence::<OrderSoA>::new(Some(path.to_str().expect("utf-8")), "orders")
        .expect("file");
    backend_contract("duckdb file", file).await;
}

/// DuckDB `load` returns every record batch, not only the first.
#[tokio::test]
async fn duckdb_load_returns_every_row_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.duckdb");
    let path = path.to_str().expect("utf-8");
    {
        let mut p = DuckDBPersistence::<OrderSoA>::new(Some(path), "big_orders").expect("open");
        p.append(&soa(1..=150_000)).await.expect("append");
        p.append(&soa(150_001..=150_100)).await.expect("append");
        let batches = p.query_sql("SELECT * FROM big_orders").await.expect("sql");
        assert!(batches.len() > 1, "{} batches", batches.len());
    }
    let p = DuckDBPersistence::<OrderSoA>::new(Some(path), "big_orders").expect("reopen");
    assert_eq!(sorted_ids(p.load().await.expect("load")), (1..=150_100).collect::<Vec<_>>());
    let stats = p.memory_stats().await.expect("stats");
    assert_eq!(stats.total_rows, 150_100);
    assert!(stats.total_bytes > 0);
}

#[tokio::test]
async fn duckdb_table_names_are_checked_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.duckdb");
    for bad in ["orders; DROP TABLE orders", "o\"rders", "1orders", "", "orders --"] {
        let err = DuckDBPersistence::<OrderSoA>::new(Some(path.to_str().expect("utf-8")), bad)
            .expect_err(bad);
        assert!(
            matches!(err, PersistenceError::Database(AnalyticsError::InvalidIdentifier { .. })),
            "{bad}: {err}"
        );
    }
    assert!(!path.exists(), "a refused name must not create the database");
}

#[tokio::test]
async fn sql_order_store_reports_equal_rust_aggregates() {
    let mut sql = SQLOrderStore::new(None).expect("open");
    let mut soa = OrderSoA::new();
    for i in 1..=1000u64 {
        // The DuckDB demo's data.
        let o = Order::builder(i)
            .customer(100 + (i % 100))
            .product(1000 + (i % 50))
            .quantity(1 + (i % 5) as u32)
            .unit_price(10.0 + i as f64 * 0.99)
            .build()
            .unwrap()
            .with_status(order(i).status)
            .with_timestamp(order(i).order_timestamp + i * 86_400);
        sql.add(o).await.expect("add");
        soa.push(o).expect("valid");
    }
    let bad = Order { order_id: 5000, quantity: 0, ..order(1) };
    assert!(matches!(sql.add(bad).await, Err(PersistenceError::Domain(_))));
    assert_eq!(sql.persistence().count().await.expect("count"), 1000);

    let mut per_status: BTreeMap<u8, f64> = BTreeMap::new();
    for o in soa.iter() {
        *per_status.entry(o.status as u8).or_default() += o.total_amount();
    }
    let batches = sql.revenue_by_status().await.expect("revenue");
    let mut got = BTreeMap::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let status =
                b.column_by_name("status").expect("status").as_primitive::<UInt8Type>().value(i);
            let revenue = b
                .column_by_name("revenue")
                .expect("revenue")
                .as_primitive::<Float64Type>()
                .value(i);
            got.insert(status, revenue);
        }
    }
    assert_eq!(got.len(), per_status.len());
    for (status, sum) in &per_status {
        assert!((got[status] - sum).abs() < 1e-6 * sum, "{status}");
    }

    let mut per_customer: BTreeMap<u64, f64> = BTreeMap::new();
    for o in soa.iter() {
        *per_customer.entry(o.customer_id).or_default() += o.total_amount();
    }
    let mut best: Vec<(u64, f64)> = per_customer.into_iter().collect();
    best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top = sql.top_customers(3).await.expect("top");
    let ids: Vec<u64> = top
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<UInt64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, best.iter().take(3).map(|c| c.0).collect::<Vec<_>>());

    let months = sql.monthly_trends().await.expect("months");
    let counted: i64 = months
        .iter()
        .map(|b| {
            b.column_by_name("order_count")
                .expect("count")
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(counted, 1000);
    let json =
        sql.persistence().analytics_query("SELECT count(*) AS n FROM orders").await.expect("json");
    assert_eq!(json, serde_json::json!([{ "n": 1000 }]));
}

#[test]
fn store_snapshot_reads_in_a_duckdb_file_database_through_attach() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        wal: WalOptions {
            segment_bytes: orderlog_wal::options::SEGMENT_BYTES_MIN,
            ..WalOptions::default()
        },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        ..StoreOptions::default()
    };
    let store = OrderStore::open(dir.path().join("store"), options).expect("open");
    for chunk in (1..=3000u64).collect::<Vec<_>>().chunks(50) {
        let batch: Vec<Event> = chunk.iter().map(|&id| Event::create(order(id))).collect();
        store.apply_batch(&batch).expect("apply");
    }
    let report = store.compact().expect("compact");
    let analytics = store.analytics_snapshot().expect("snapshot view");
    assert_eq!(analytics.info().snapshot_lsn, report.to_lsn);
    let files: Vec<String> = analytics
        .info()
        .snapshot_files
        .iter()
        .map(|p| format!("'{}'", p.display().to_string().replace('\'', "''")))
        .collect();
    let expected = store.with_kernel(|soa| {
        let n = soa.iter().filter(|o| o.order_id <= report.to_lsn * 50).count() as i64;
        let total: f64 =
            soa.iter().filter(|o| o.order_id <= report.to_lsn * 50).map(|o| o.total_amount()).sum();
        (n, total)
    });

    let db = dir.path().join("analytics.duckdb");
    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    conn.execute_batch(&format!(
        "ATTACH '{}' AS f; CREATE TABLE f.orders AS SELECT * FROM read_parquet([{}]); DETACH f;",
        db.display(),
        files.join(", ")
    ))
    .expect("attach and copy");
    drop(conn);
    let conn = duckdb::Connection::open(&db).expect("reopen the file database");
    let (n, total): (i64, f64) = conn
        .query_row("SELECT count(*), sum(total_amount) FROM orders", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("query");
    assert_eq!(n, expected.0);
    assert!((total - expected.1).abs() <= 1e-9 * expected.1);
    assert!(n > 0 && n as u64 == analytics.info().snapshot_rows);
    let status_ok: i64 = conn
        .query_row("SELECT count(*) FROM orders WHERE status <= 5 AND version = 1", [], |r| {
            r.get(0)
        })
        .expect("query");
    assert_eq!(status_ok, n);
}
