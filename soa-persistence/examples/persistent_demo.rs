//! Comprehensive demo (`cargo run --release -p soa-persistence --example
//! persistent_demo`): the whole persistence workflow on the durable event-sourced
//! backend, with memory statistics, queries, batches, and a restart simulation.
//!
//! Orders are written through `PersistentOrderStore::event_sourced`, whose backend is
//! the durable `OrderStore` (every add is logged and synced before it returns). The
//! store is then dropped — an application restart — and reopened from the same
//! directory: recovery replays the log and every order is back. The directory is a
//! temporary one, removed at the end.

use orderlog_store::{DomainError, Order, OrderStatus, PaymentMethod, StoreOptions};
use soa_persistence::PersistentOrderStore;

fn sample_orders(first_id: u64, n: u64) -> Result<Vec<Order>, DomainError> {
    (first_id..first_id + n)
        .map(|id| {
            let status = OrderStatus::ALL[(id % 4) as usize];
            let payment = PaymentMethod::ALL[(id % 5) as usize];
            Order::builder(id)
                .customer(100 + id % 37)
                .product(1000 + id % 11)
                .quantity(1 + (id % 5) as u32)
                .unit_price(9.99 + (id % 90) as f64)
                .status(status)
                .payment(payment)
                .build()
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    println!("store directory: {}", dir.path().display());

    // Session 1: a fresh store.
    let mut store = PersistentOrderStore::event_sourced(dir.path(), StoreOptions::default())?;
    store
        .add(Order::builder(1).customer(101).product(1001).quantity(2).unit_price(25.99).build()?)
        .await?;
    store
        .add(Order::builder(2).customer(102).product(1002).quantity(1).unit_price(49.99).build()?)
        .await?;
    println!("added 2 orders one by one (each durable when add returns)");
    let rows = store.add_batch(sample_orders(3, 10_000)?).await?;
    println!("added {} orders in one batch (one log frame, atomic)", rows.len());

    let stats = store.memory_stats().await?;
    println!(
        "memory: {} bytes for {} rows ({} batches)",
        stats.total_bytes, stats.total_rows, stats.num_batches
    );
    let kernel = store.store().memory_stats();
    println!("in-memory columns: {kernel:?}");

    let delivered = store.query_storage(|o| o.status == OrderStatus::Delivered).await?;
    let big = store.query_storage(|o| o.total_amount() > 400.0).await?;
    println!(
        "queries: {} delivered, {} above 400.00",
        delivered.as_ref().map_or(0, |soa| soa.len()),
        big.as_ref().map_or(0, |soa| soa.len())
    );
    let before = store.store().len();

    // Application restart simulation: drop everything, reopen from disk.
    drop(store);
    println!("-- restart --");
    let store = PersistentOrderStore::event_sourced(dir.path(), StoreOptions::default())?;
    let report = store.persistence().store().open_report();
    println!(
        "recovered {} orders: replayed {} batches / {} events in {:?}",
        store.store().len(),
        report.batches_replayed,
        report.events_replayed,
        report.elapsed
    );
    let after_delivered = store.query_storage(|o| o.status == OrderStatus::Delivered).await?;
    assert_eq!(store.store().len(), before, "every order survives the restart");
    assert_eq!(after_delivered.map(|v| v.len()), delivered.map(|v| v.len()));
    println!("same orders and the same answers after the restart");
    Ok(())
}
