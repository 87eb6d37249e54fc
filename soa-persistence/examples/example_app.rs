//! Basic integration (`cargo run --release -p soa-persistence --example example_app`):
//! the domain API unchanged, side by side with its persistent form.
//!
//! A traditional in-memory repository (`InMemoryOrderStore`) and a
//! `PersistentOrderStore` (here persisted as Arrow record batches in memory) take the
//! same orders; the persistent one also answers queries from its storage and reports
//! what the storage holds.

use orderlog_store::{Order, OrderStatus};
use soa_persistence::{InMemoryOrderStore, PersistentOrderStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Traditional repository: the domain API as services already call it.
    let mut traditional = InMemoryOrderStore::new();
    traditional.add(Order::new(1, 101, 1001, 2, 25.99))?;
    traditional.add(Order::new(2, 102, 1002, 1, 49.99))?;
    println!("traditional store: {} orders, in memory only", traditional.len());

    // Create persistent store (preserves your domain API)
    let mut store = PersistentOrderStore::new();

    // Add orders - automatically persisted
    let order1 = Order::new(1, 101, 1001, 2, 25.99);
    let order2 = Order::new(2, 102, 1002, 1, 49.99).with_status(OrderStatus::Delivered);
    store.add(order1).await?;
    store.add(order2).await?;
    println!("Added 2 orders with automatic persistence");

    // Efficient batch operations: one persistence operation for the whole batch.
    let orders = vec![
        Order::new(3, 100, 1000, 5, 15.99),
        Order::new(4, 101, 1001, 3, 29.99),
        Order::new(5, 102, 1002, 1, 99.99),
    ];
    let indices = store.add_batch(orders).await?;
    println!("Added {} orders at indices: {:?}", indices.len(), indices);

    // Query persistent storage: only the matching rows come back.
    let delivered = store.query_storage(|o| o.status == OrderStatus::Delivered).await?;
    println!("Delivered orders in storage: {}", delivered.map_or(0, |soa| soa.len()));
    let high_value = store.query_storage(|o| o.total_amount > 50.0).await?;
    if let Some(orders) = high_value {
        println!("Found {} high-value orders", orders.len());
        for o in orders.iter() {
            println!("  order {} total {:.2}", o.order_id, o.total_amount);
        }
    }

    // Get memory statistics
    let stats = store.memory_stats().await?;
    println!(
        "Memory usage: {} bytes, {} rows in {} batches",
        stats.total_bytes, stats.total_rows, stats.num_batches
    );

    // Side by side: the same orders, the same domain answers.
    let same = traditional.get(1) == store.store().get(1);
    println!("order 1 identical in both stores: {same}");
    Ok(())
}
