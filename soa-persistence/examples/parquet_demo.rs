//! Parquet demo (`cargo run --release -p soa-persistence --example
//! parquet_demo`): a Parquet-backed `PersistentOrderStore`, persistence across an
//! application restart, and the files any Parquet reader (DuckDB, Polars, pandas) opens.
//!
//! Each add writes one immutable, checksummed part (`append-<seq>/data.parquet` with its
//! `PART` record) and never rewrites earlier ones; `compact` folds the parts into one
//! `save-<seq>` part. The data directory is a temporary one, removed at the end.

use orderlog_store::{Order, OrderStatus, ParquetCompression};
use soa_persistence::{ParquetPersistence, PartitionedParquetPersistence, PersistentOrderStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let orders_dir = data.path().join("orders");

    // Create Parquet-backed store
    let parquet_persistence =
        ParquetPersistence::new(&orders_dir).with_compression(ParquetCompression::Snappy);
    let mut store = PersistentOrderStore::with_persistence(parquet_persistence);

    // Add orders - automatically persisted to disk
    store
        .add(Order::builder(1).customer(101).product(1001).quantity(2).unit_price(25.99).build()?)
        .await?;
    store
        .add(Order::builder(2).customer(102).product(1002).quantity(1).unit_price(49.99).build()?)
        .await?;
    let batch: Vec<Order> = (3..1003)
        .map(|id| {
            Order::builder(id)
                .customer(100 + id % 50)
                .product(1000 + id % 7)
                .quantity(1 + (id % 3) as u32)
                .unit_price(5.0 + (id % 40) as f64)
                .build()
        })
        .collect::<Result<_, _>>()?;
    store.add_batch(batch).await?;
    println!("✅ Orders persisted to Parquet files");

    let stats = store.memory_stats().await?;
    println!(
        "📁 File size: {} bytes, {} rows in {} files",
        stats.total_bytes, stats.total_rows, stats.num_batches
    );
    for file in store.persistence().files()? {
        println!("   {}", file.display());
    }

    // Demonstrate persistence across application restarts
    drop(store);
    let mut store = PersistentOrderStore::open(ParquetPersistence::new(&orders_dir)).await?;
    println!("🔄 after a restart: {} orders loaded from Parquet", store.store().len());
    assert_eq!(store.store().len(), 1002);

    // Fold the parts into one.
    store.persistence_mut().compact().await?;
    let stats = store.memory_stats().await?;
    println!(
        "🗜  after compact: {} bytes, {} rows in {} file",
        stats.total_bytes, stats.total_rows, stats.num_batches
    );

    // Hive-style partitioning by status, for readers that prune partitions.
    let by_status = PartitionedParquetPersistence::new(data.path().join("by_status"), "status");
    let mut partitioned = PersistentOrderStore::with_persistence(by_status);
    let mixed: Vec<Order> = (1..=60)
        .map(|id| {
            Order::builder(id)
                .customer(id)
                .product(id)
                .quantity(1)
                .unit_price(10.0)
                .status(OrderStatus::ALL[(id % 3) as usize])
                .build()
        })
        .collect::<Result<_, _>>()?;
    partitioned.add_batch(mixed).await?;
    println!("📂 partitioned by status:");
    for file in partitioned.persistence().files()? {
        println!("   {}", file.strip_prefix(data.path()).unwrap_or(&file).display());
    }
    Ok(())
}
