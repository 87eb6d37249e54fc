//! DuckDB demo (`cargo run --release -p soa-persistence --example duckdb_demo`): a
//! `SQLOrderStore` backed by a DuckDB database file, 1000 orders added one by one (each
//! appended through DuckDB's Arrow appender in a transaction), the three standard
//! reports printed row by row, and one ad hoc query as JSON rows.
//!
//! The reports aggregate the `orders` table as stored: `status` and `payment_method`
//! are the store's byte codes (`OrderStatus::ALL` order), `order_timestamp` is seconds
//! since the Unix epoch. The database file lives in a temporary directory, removed at
//! the end.

use arrow::util::pretty::pretty_format_batches;
use orderlog_store::{Order, OrderStatus};
use soa_persistence::SQLOrderStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let db_path = data.path().join("orders.db");
    let db_path = db_path.to_str().ok_or("the temporary path is not UTF-8")?;

    // Create DuckDB-backed store with SQL capabilities
    let mut sql_store = SQLOrderStore::new(Some(db_path))?;

    // Add sample data (statuses spread over the lifecycle so the reports have rows)
    for i in 1..=1000u64 {
        let order = Order::builder(i)
            .customer(100 + (i % 100))
            .product(1000 + (i % 50))
            .quantity(1 + (i % 5) as u32)
            .unit_price(10.0 + i as f64 * 0.99)
            .build()?
            .with_status(OrderStatus::ALL[(i % 6) as usize]);
        sql_store.add(order).await?;
    }
    println!("✅ Added 1000 orders to DuckDB ({db_path})");
    let legend: Vec<String> =
        OrderStatus::ALL.iter().map(|s| format!("{} = {}", u8::from(*s), s.name())).collect();
    println!("   status codes: {}", legend.join(", "));

    // Run analytical queries
    let revenue_by_status = sql_store.revenue_by_status().await?;
    println!("📊 Revenue by status:\n{}", pretty_format_batches(&revenue_by_status)?);

    let top_customers = sql_store.top_customers(10).await?;
    println!("🏆 Top 10 customers:\n{}", pretty_format_batches(&top_customers)?);

    let monthly_trends = sql_store.monthly_trends().await?;
    println!("📈 Monthly trends:\n{}", pretty_format_batches(&monthly_trends)?);

    // Any query, as JSON rows
    let query = "SELECT product_id, COUNT(*) AS orders, ROUND(SUM(total_amount), 2) AS revenue \
                 FROM orders GROUP BY product_id ORDER BY revenue DESC LIMIT 3";
    let json = sql_store.persistence().analytics_query(query).await?;
    println!("🔎 analytics_query({query}):\n{}", serde_json::to_string_pretty(&json)?);

    Ok(())
}
