//! The persistence API, used as an application would use it, with each guarantee pinned by
//! a test:
//! - Parquet `append` keeps the rows already stored and writes only the new ones;
//! - `load` returns every record batch, not only the first;
//! - `PersistentOrderStore::add` appends the new order, never the whole state;
//! - `query` returns only the matching rows, never the whole dataset because one matched.
//!
//! The backend contract is written once (`backend_contract`) and run on every backend.

use std::path::Path;

use orderlog_store::{
    Order, OrderSoA, OrderStatus, OrderStore, ParquetCompression, PaymentMethod, StoreOptions,
};
use soa_persistence::{
    ArrowPersistence, EventSourcedPersistence, MemoryStats, ParquetPersistence,
    PartitionedParquetPersistence, PersistenceError, PersistentOrderStore, SoAPersistence,
};

pub(crate) fn order(id: u64) -> Order {
    Order::builder(id)
        .customer(100 + id % 1000)
        .product(1000 + id % 100)
        .quantity((id % 3 + 1) as u32)
        .unit_price(10.0 + id as f64)
        .build()
        .unwrap()
        .with_status(OrderStatus::ALL[(id % 6) as usize])
        .with_payment_method(PaymentMethod::ALL[(id % 5) as usize])
        .with_timestamp(1_700_000_000 + id)
}

pub(crate) fn soa(ids: impl IntoIterator<Item = u64>) -> OrderSoA {
    let mut soa = OrderSoA::new();
    for id in ids {
        soa.push(order(id)).expect("valid order");
    }
    soa
}

/// Sorted ids (partitioned backends return rows grouped by partition).
pub(crate) fn sorted_ids(soa: Option<OrderSoA>) -> Vec<u64> {
    let mut ids = soa.map(|s| s.order_id_raw_array().to_vec()).unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// What every backend must do.
pub(crate) async fn backend_contract<P: SoAPersistence<OrderSoA>>(name: &str, mut p: P) {
    assert!(p.load().await.expect("load").is_none(), "{name}: starts empty");
    assert_eq!(p.memory_stats().await.expect("stats"), MemoryStats::default(), "{name}");

    p.save(&soa(1..=40)).await.expect("save");
    p.append(&soa(41..=70)).await.expect("append");
    p.append(&OrderSoA::new()).await.expect("append nothing");
    // Append keeps what was there.
    assert_eq!(sorted_ids(p.load().await.expect("load")), (1..=70).collect::<Vec<_>>(), "{name}");
    assert_eq!(p.count().await.expect("count"), 70, "{name}");

    // Only the matching rows come back.
    let found = p.query(|o: &Order| o.order_id.is_multiple_of(10)).await.expect("query");
    assert_eq!(sorted_ids(found), [10, 20, 30, 40, 50, 60, 70], "{name}");
    assert!(p.query(|o: &Order| o.order_id > 70).await.expect("query").is_none(), "{name}");

    let stats = p.memory_stats().await.expect("stats");
    assert_eq!(stats.total_rows, 70, "{name}");
    assert!(stats.num_batches >= 1 && stats.total_bytes > 0, "{name}: {stats:?}");
    assert_eq!(stats.average_batch_size, stats.total_bytes / stats.num_batches, "{name}");

    p.save(&soa(100..=102)).await.expect("save replaces");
    assert_eq!(sorted_ids(p.load().await.expect("load")), [100, 101, 102], "{name}");
    p.clear().await.expect("clear");
    assert_eq!(p.count().await.expect("count"), 0, "{name}");
    assert!(p.load().await.expect("load").is_none(), "{name}: cleared");
}

#[tokio::test]
async fn backends_keep_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    backend_contract("arrow", ArrowPersistence::new()).await;
    backend_contract("parquet", ParquetPersistence::new(dir.path().join("parquet"))).await;
    for compression in [ParquetCompression::None, ParquetCompression::Zstd] {
        let p = ParquetPersistence::new(dir.path().join(compression.as_str()))
            .with_compression(compression);
        backend_contract(compression.as_str(), p).await;
    }
    let by_status = PartitionedParquetPersistence::new(dir.path().join("by_status"), "status");
    backend_contract("partitioned", by_status).await;
    let events = EventSourcedPersistence::open(dir.path().join("events"), StoreOptions::default())
        .expect("open");
    backend_contract("event-sourced", events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_keep_the_contract_on_the_multi_thread_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    backend_contract("parquet", ParquetPersistence::new(dir.path().join("p"))).await;
    let by_payment = PartitionedParquetPersistence::new(dir.path().join("q"), "payment_method");
    backend_contract("partitioned", by_payment).await;
}

/// Parquet `append` adds a part; the parts already written are not touched.
#[tokio::test]
async fn parquet_append_adds_a_part_and_keeps_the_old_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = ParquetPersistence::<OrderSoA>::new(dir.path());
    p.save(&soa(1..=100)).await.expect("save");
    let first_files = p.files().expect("files");
    let first_bytes: Vec<Vec<u8>> =
        first_files.iter().map(|f| std::fs::read(f).expect("read")).collect();
    p.append(&soa(101..=110)).await.expect("append");

    let files = p.files().expect("files");
    assert_eq!(files.len(), 2);
    assert_eq!(files[0], first_files[0]);
    assert_eq!(std::fs::read(&files[0]).expect("read"), first_bytes[0], "old part rewritten");
    let parts = p.parts().expect("parts");
    assert_eq!(parts.iter().map(|p| p.rows).collect::<Vec<_>>(), [100, 10]);
    let reopened = ParquetPersistence::<OrderSoA>::new(dir.path());
    assert_eq!(sorted_ids(reopened.load().await.expect("load")), (1..=110).collect::<Vec<_>>());
}

/// `load` returns every batch. A file of 150,000 rows is read back as several batches,
/// and more parts and partition files follow it: all must come back.
#[tokio::test]
async fn load_returns_every_batch_and_every_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = ParquetPersistence::<OrderSoA>::new(dir.path().join("flat"));
    p.append(&soa(1..=150_000)).await.expect("append");
    p.append(&soa(150_001..=150_100)).await.expect("append");
    let big = &p.files().expect("files")[0];
    let batches = orderlog_snapshot::read_parquet_file(big).expect("read");
    assert!(batches.len() >= 3, "{} batches", batches.len());
    let loaded = p.load().await.expect("load").expect("rows");
    assert_eq!(loaded.len(), 150_100);
    assert_eq!(loaded.get(150_100), Some(order(150_100)));

    let mut arrow = ArrowPersistence::<OrderSoA>::new();
    arrow.append(&soa(1..=100_000)).await.expect("append");
    arrow.append(&soa(100_001..=100_002)).await.expect("append");
    assert_eq!(arrow.batches().len(), 3);
    assert_eq!(arrow.load().await.expect("load").expect("rows").len(), 100_002);

    let mut by_status =
        PartitionedParquetPersistence::<OrderSoA>::new(dir.path().join("h"), "status");
    by_status.append(&soa(1..=60)).await.expect("append");
    assert_eq!(by_status.files().expect("files").len(), 6);
    assert_eq!(by_status.load().await.expect("load").expect("rows").len(), 60);
}

/// Each add writes one Parquet part of one row and leaves the earlier parts untouched
/// (that no add saves the whole state is the unit tests' `Recording` backend's check).
#[tokio::test]
async fn add_writes_one_part_per_add_and_leaves_earlier_parts_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = PersistentOrderStore::with_persistence(ParquetPersistence::new(dir.path()));
    store.add(order(1)).await.expect("add");
    let first = store.persistence().files().expect("files");
    let first_bytes = std::fs::read(&first[0]).expect("read");
    store.add(order(2)).await.expect("add");
    store.add(order(3)).await.expect("add");
    let parts = store.persistence().parts().expect("parts");
    assert_eq!(parts.iter().map(|p| p.rows).collect::<Vec<_>>(), [1, 1, 1]);
    assert_eq!(std::fs::read(&first[0]).expect("read"), first_bytes);
}

/// `query_storage` returns only the matching orders, not every order.
#[tokio::test]
async fn query_storage_returns_only_matching_orders() {
    let mut store = PersistentOrderStore::new();
    store.add_batch((1..=10_000).map(order).collect()).await.expect("add_batch");
    let high_value = store.query_storage(|o| o.total_amount() > 29_000.0).await.expect("query");
    let high_value = high_value.expect("some match");
    assert!(high_value.total_amount_raw_array().iter().all(|&t| t > 29_000.0));
    let expected = store.store().query(|o| o.total_amount() > 29_000.0).len();
    assert_eq!(high_value.len(), expected);
    assert!(expected > 0 && expected < 10_000);
    assert!(store.query_storage(|o| o.customer_id > 5_000).await.expect("query").is_none());
}

/// The two orders the usage examples start with.
fn first_orders() -> [Order; 2] {
    let first = Order::builder(1).customer(101).product(1001).quantity(2).unit_price(25.99);
    let second = Order::builder(2).customer(102).product(1002).quantity(1).unit_price(49.99);
    [first.build().unwrap(), second.build().unwrap()]
}

/// Typical usage: basic adds and queries, batches, and Parquet across a restart.
#[tokio::test]
async fn usage_examples_run() {
    // Basic usage.
    let mut store = PersistentOrderStore::new();
    store.add(first_orders()[0]).await.expect("add");
    store.add(first_orders()[1]).await.expect("add");
    let delivered = store.query_storage(|o| o.status == OrderStatus::Delivered).await;
    assert!(delivered.expect("query").is_none());
    let stats = store.memory_stats().await.expect("stats");
    assert_eq!(stats.total_rows, 2);

    // Batch operations.
    let mut store = PersistentOrderStore::new();
    let orders = vec![
        Order::builder(1)
            .customer(100)
            .product(1000)
            .quantity(5)
            .unit_price(15.99)
            .build()
            .unwrap(),
        Order::builder(2)
            .customer(101)
            .product(1001)
            .quantity(3)
            .unit_price(29.99)
            .build()
            .unwrap(),
        Order::builder(3)
            .customer(102)
            .product(1002)
            .quantity(1)
            .unit_price(99.99)
            .build()
            .unwrap(),
    ];
    let indices = store.add_batch(orders).await.expect("add_batch");
    assert_eq!(indices, [0, 1, 2]);
    let high_value_orders = store.query_storage(|o| o.total_amount() > 50.0).await.expect("q");
    if let Some(orders) = high_value_orders {
        assert_eq!(orders.len(), 3);
    }

    // Parquet, across a restart.
    let dir = tempfile::tempdir().expect("tempdir");
    let parquet_persistence = ParquetPersistence::new(dir.path().join("orders"))
        .with_compression(ParquetCompression::Snappy);
    let mut store = PersistentOrderStore::with_persistence(parquet_persistence);
    store.add(first_orders()[0]).await.expect("add");
    store.add(first_orders()[1]).await.expect("add");
    let stats = store.memory_stats().await.expect("stats");
    assert_eq!((stats.total_rows, stats.num_batches), (2, 2));
    drop(store);
    let mut store =
        PersistentOrderStore::with_persistence(ParquetPersistence::new(dir.path().join("orders")));
    assert_eq!(store.load_from_storage().await.expect("load"), 2);
    store
        .add(
            Order::builder(3)
                .customer(1003)
                .product(2003)
                .quantity(1)
                .unit_price(100.0)
                .build()
                .unwrap(),
        )
        .await
        .expect("add");
    assert_eq!(store.store().kernel().len(), 3);
}

#[tokio::test]
async fn damaged_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = PersistentOrderStore::with_persistence(ParquetPersistence::new(dir.path()));
    store.add_batch((1..=50).map(order).collect()).await.expect("add_batch");
    store.add(order(51)).await.expect("add");
    let file = store.persistence().files().expect("files")[0].clone();
    let mut bytes = std::fs::read(&file).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).expect("write");
    drop(store);

    let backend = ParquetPersistence::<OrderSoA>::new(dir.path());
    match PersistentOrderStore::open(backend).await {
        Err(PersistenceError::Corrupt { path, .. }) => assert_eq!(path, file),
        other => panic!("expected Corrupt naming {}, got {other:?}", file.display()),
    }
}

#[tokio::test]
async fn event_sourced_add_is_apply_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store =
        PersistentOrderStore::event_sourced(dir.path(), StoreOptions::default()).expect("open");
    store.add(order(1)).await.expect("add");
    store.add(order(2)).await.expect("add");
    store.add_batch((3..=10).map(order).collect()).await.expect("add_batch");
    assert_eq!(store.persistence().store().last_lsn(), 3);
    let shipped = store.query_storage(|o| o.status == OrderStatus::Shipped).await;
    assert_eq!(sorted_ids(shipped.expect("query")), [2, 8]);
    store.persistence().store().close().expect("close");
    drop(store);

    let durable = OrderStore::open(dir.path(), StoreOptions::default()).expect("reopen");
    assert_eq!(durable.len(), 10);
    assert_eq!(durable.get(10), Some(order(10)));
    assert_eq!(durable.open_report().events_replayed, 10);
}

#[test]
fn parquet_persistence_touches_nothing_until_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("lazy");
    let p = ParquetPersistence::<OrderSoA>::new(&base);
    assert_eq!(p.base_path(), Path::new(&base));
    assert!(p.parts().expect("parts").is_empty());
    assert!(!base.exists());
}
