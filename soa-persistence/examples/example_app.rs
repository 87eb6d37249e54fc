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
    traditional.add(
        Order::builder(1).customer(101).product(1001).quantity(2).unit_price(25.99).build()?,
    )?;
    traditional.add(
        Order::builder(2).customer(102).product(1002).quantity(1).unit_price(49.99).build()?,
    )?;
    println!("traditional store: {} orders, in memory only", traditional.len());

    // Create persistent store (preserves your domain API)
    let mut store = PersistentOrderStore::new();

    // Add orders - automatically persisted
    let order1 =
        Order::builder(1).customer(101).product(1001).quantity(2).unit_price(25.99).build()?;
    let order2 = Order::builder(2)
        .customer(102)
        .product(1002)
        .quantity(1)
        .unit_price(49.99)
        .status(OrderStatus::Delivered)
        .build()?;
    store.add(order1).await?;
    store.add(order2).await?;
    println!("Added 2 orders with automatic persistence");

    // Efficient batch operations: one persistence operation for the whole batch.
    let orders = vec![
        Order::builder(3).customer(100).product(1000).quantity(5).unit_price(15.99).build()?,
        Order::builder(4).customer(101).product(1001).quantity(3).unit_price(29.99).build()?,
        Order::builder(5).customer(102).product(1002).quantity(1).unit_price(99.99).build()?,
    ];
    let indices = store.add_batch(orders).await?;
    println!("Added {} orders at indices: {:?}", indices.len(), indices);

    // Query persistent storage: only the matching rows come back.
    let delivered = store.query_storage(|o| o.status == OrderStatus::Delivered).await?;
    println!("Delivered orders in storage: {}", delivered.map_or(0, |soa| soa.len()));
    let high_value = store.query_storage(|o| o.total_amount() > 50.0).await?;
    if let Some(orders) = high_value {
        println!("Found {} high-value orders", orders.len());
        for o in orders.iter() {
            println!("  order {} total {:.2}", o.order_id, o.total_amount());
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
