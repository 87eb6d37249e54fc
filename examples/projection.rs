//! A projection: per-customer order counts and totals kept in a table of their own (a
//! DuckDB database file beside the store), built from the store's change feed by a
//! durable consumer. It is rebuilt from the beginning (the newest snapshot standing in
//! for the log a compaction removed), then kept current as orders are written; in the
//! end it equals what the store's own analytics computes.
//!
//! Exactly once, whatever crashes: the projection's position (the last LSN applied) is
//! written in the same DuckDB transaction as its rows, and a restart resumes just after
//! it. The consumer's acknowledgement, after the commit, only tells the store which log
//! it may drop; it may lag the table's position, never lead it.
//!
//! ```text
//! cargo run --release --example projection [ORDERS]     (default 20,000)
//! ```

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use duckdb::{Connection, params};
use orderlog::feed::{FeedItem, FeedOptions, StartAt};
use orderlog::{Event, Lsn, Order, OrderStatus, OrderStore, PaymentMethod, StoreOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The consumer's name: the store keeps the log after its acknowledged position.
const CONSUMER: &str = "customer-totals";

/// The projection: its DuckDB tables, mirrored in memory for the deltas.
struct Projection {
    conn: Connection,
    /// order -> (customer, total): each order's contribution.
    orders: HashMap<u64, (u64, f64)>,
    /// customer -> (orders, total spent).
    customers: HashMap<u64, (u64, f64)>,
    /// Every LSN up to this is applied.
    position: Lsn,
}

impl Projection {
    /// Opens (creating if needed) the projection's database and loads it.
    fn open(path: &Path) -> Result<Projection, Error> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS order_totals
                 (order_id UBIGINT PRIMARY KEY, customer_id UBIGINT, total DOUBLE);
             CREATE TABLE IF NOT EXISTS customer_totals
                 (customer_id UBIGINT PRIMARY KEY, order_count UBIGINT, total_spent DOUBLE);
             CREATE TABLE IF NOT EXISTS projection_position (lsn UBIGINT);",
        )?;
        let mut orders = HashMap::new();
        let mut stmt = conn.prepare("SELECT order_id, customer_id, total FROM order_totals")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get(1)?, r.get(2)?)))?;
        for row in rows {
            let (id, customer, total) = row?;
            orders.insert(id, (customer, total));
        }
        let mut customers = HashMap::new();
        let mut stmt =
            conn.prepare("SELECT customer_id, order_count, total_spent FROM customer_totals")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get(1)?, r.get(2)?)))?;
        for row in rows {
            let (customer, n, total) = row?;
            customers.insert(customer, (n, total));
        }
        let position: Option<u64> =
            conn.query_row("SELECT max(lsn) FROM projection_position", [], |r| r.get(0))?;
        drop(stmt);
        Ok(Projection { conn, orders, customers, position: position.unwrap_or(0) })
    }

    /// Moves `order`'s contribution to `new` (none: it left the store).
    fn set(&mut self, order: u64, new: Option<(u64, f64)>, touched: &mut HashSet<u64>) {
        if let Some((customer, total)) = self.orders.remove(&order) {
            let entry = self.customers.entry(customer).or_default();
            entry.0 -= 1;
            entry.1 -= total;
            touched.insert(customer);
        }
        if let Some((customer, total)) = new {
            self.orders.insert(order, (customer, total));
            let entry = self.customers.entry(customer).or_default();
            entry.0 += 1;
            entry.1 += total;
            touched.insert(customer);
        }
    }

    /// Applies `items` and their position in one transaction.
    fn apply(&mut self, items: &[FeedItem]) -> Result<(), Error> {
        let mut touched_orders = HashSet::new();
        let mut touched_customers = HashSet::new();
        let mut rebuilt = false;
        for item in items {
            match item {
                FeedItem::Snapshot { orders, .. } => {
                    // Rebuild from the snapshot's orders (the state at its LSN).
                    self.orders.clear();
                    self.customers.clear();
                    rebuilt = true;
                    let column = |name: &str| orders.column_by_name(name).cloned();
                    let (Some(ids), Some(customers), Some(totals)) =
                        (column("order_id"), column("customer_id"), column("total_amount"))
                    else {
                        return Err("a snapshot batch without the order columns".into());
                    };
                    use arrow::array::AsArray;
                    use arrow::datatypes::{Float64Type, UInt64Type};
                    let ids = ids.as_primitive::<UInt64Type>();
                    let customers = customers.as_primitive::<UInt64Type>();
                    let totals = totals.as_primitive::<Float64Type>();
                    for i in 0..orders.num_rows() {
                        let new = Some((customers.value(i), totals.value(i)));
                        self.set(ids.value(i), new, &mut touched_customers);
                    }
                }
                FeedItem::Batch(batch) => {
                    for e in &batch.events {
                        let new = e.row.map(|r| (r.order.customer_id, r.order.total_amount()));
                        self.set(e.event.order_id, new, &mut touched_customers);
                        touched_orders.insert(e.event.order_id);
                    }
                }
                _ => {}
            }
            self.position = item.lsn();
        }
        let tx = self.conn.transaction()?;
        if rebuilt {
            tx.execute_batch("DELETE FROM order_totals; DELETE FROM customer_totals;")?;
            let mut orders = tx.appender("order_totals")?;
            for (id, (customer, total)) in &self.orders {
                orders.append_row(params![id, customer, total])?;
            }
            drop(orders);
            let mut customers = tx.appender("customer_totals")?;
            for (customer, (n, total)) in self.customers.iter().filter(|c| c.1.0 > 0) {
                customers.append_row(params![customer, n, total])?;
            }
        } else {
            let mut delete = tx.prepare_cached("DELETE FROM order_totals WHERE order_id = ?")?;
            let mut insert = tx.prepare_cached("INSERT INTO order_totals VALUES (?, ?, ?)")?;
            for id in &touched_orders {
                delete.execute(params![id])?;
                if let Some((customer, total)) = self.orders.get(id) {
                    insert.execute(params![id, customer, total])?;
                }
            }
            let mut delete =
                tx.prepare_cached("DELETE FROM customer_totals WHERE customer_id = ?")?;
            let mut insert = tx.prepare_cached("INSERT INTO customer_totals VALUES (?, ?, ?)")?;
            for customer in &touched_customers {
                delete.execute(params![customer])?;
                match self.customers.get(customer) {
                    Some((n, total)) if *n > 0 => {
                        insert.execute(params![customer, n, total])?;
                    }
                    _ => {}
                }
            }
        }
        tx.execute("DELETE FROM projection_position", [])?;
        tx.execute("INSERT INTO projection_position VALUES (?)", params![self.position])?;
        tx.commit()?;
        Ok(())
    }

    /// The customer totals, by customer.
    fn totals(&self) -> Result<Vec<(u64, u64, f64)>, Error> {
        let mut stmt = self.conn.prepare(
            "SELECT customer_id, order_count, total_spent FROM customer_totals ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Runs the projection until its position reaches `until` (or `stop_after` items, a
/// crash in the middle), acknowledging each committed transaction.
fn run_projection(
    store: &OrderStore,
    db: &Path,
    until: impl Fn() -> Option<Lsn>,
    stop_after: Option<usize>,
) -> Result<Projection, Error> {
    let mut projection = Projection::open(db)?;
    let consumer = store.consumer(CONSUMER)?;
    // The table's position, not the acknowledgement, says where to resume: the
    // acknowledgement may lag it (a crash between the commit and the ack).
    let from = StartAt::Lsn(projection.position + 1);
    let mut feed =
        store.subscribe(from, FeedOptions { with_rows: true, ..FeedOptions::default() })?;
    let mut applied = 0;
    loop {
        if until().is_some_and(|end| feed.delivered_lsn() >= end) {
            break;
        }
        // Up to 1,000 items per transaction: whatever is durable now.
        let mut items = Vec::new();
        if let Some(item) = feed.recv_timeout(Duration::from_millis(50))? {
            items.push(item);
            while items.len() < 1_000 {
                match feed.try_recv()? {
                    Some(item) => items.push(item),
                    None => break,
                }
            }
        }
        if items.is_empty() {
            continue;
        }
        applied += items.len();
        projection.apply(&items)?;
        if stop_after.is_some_and(|n| applied >= n) {
            // A crash after the commit, before the acknowledgement.
            return Ok(projection);
        }
        consumer.ack(projection.position)?;
    }
    consumer.ack(projection.position)?;
    Ok(projection)
}

/// A workload: `n` orders over 500 customers, each confirmed, amended, cancelled,
/// shipped or erased at random (a fixed seed), some batched.
fn write_orders(store: &OrderStore, first: u64, n: u64) -> Result<(), Error> {
    let mut x = first.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for id in first..first + n {
        let order = Order::builder(id)
            .customer(next() % 500)
            .product(next() % 100)
            .quantity(1 + (next() % 5) as u32)
            .unit_price(((next() % 20_000) as f64) / 100.0)
            .payment(PaymentMethod::ALL[(next() % 5) as usize]);
        store.apply(Event::create(order.build()?))?;
        let then = match next() % 6 {
            0 => vec![Event::set_status(id, OrderStatus::Confirmed)],
            1 => {
                vec![Event::amend(id, Some(7), None), Event::set_status(id, OrderStatus::Confirmed)]
            }
            2 => vec![Event::cancel(id)],
            3 => vec![
                Event::set_status(id, OrderStatus::Confirmed),
                Event::set_status(id, OrderStatus::Shipped),
            ],
            4 if id % 7 == 0 => vec![Event::erase(id)],
            _ => vec![],
        };
        if !then.is_empty() {
            store.apply_batch(&then)?;
        }
    }
    Ok(())
}

/// The whole story; returns the number of customers compared.
fn run(orders: u64, dir: &Path) -> Result<usize, Error> {
    let started = Instant::now();
    let options = StoreOptions {
        wal: orderlog::WalOptions { segment_bytes: 1 << 20, ..orderlog::WalOptions::default() },
        compaction: orderlog::CompactionOptions { background: false, ..Default::default() },
        ..StoreOptions::default()
    };
    let store = OrderStore::open(dir.join("store"), options)?;
    let db = dir.join("projection.duckdb");
    // Half the orders exist, compacted, before the projection starts: it is rebuilt from
    // the newest snapshot, then the log after it.
    write_orders(&store, 1, orders / 2)?;
    store.compact()?;
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || -> Result<(), Error> {
            write_orders(&store, 1 + orders / 2, orders - orders / 2)?;
            store.compact()?;
            Ok(())
        })
    };
    // A first run that crashes after some transactions, then a second that resumes from
    // the table's position and catches up once the writer is done.
    drop(run_projection(&store, &db, || None, Some(orders as usize / 4))?);
    writer.join().map_err(|_| "the writer panicked")??;
    let end = store.durable_lsn();
    let projection = run_projection(&store, &db, || Some(end), None)?;
    let ours = projection.totals()?;
    // The store's analytics (DuckDB over its snapshots and live tail) must agree.
    let sql = store.analytics()?;
    let batches = sql.query_sql(
        "SELECT customer_id, count(*) AS n, sum(total_amount) AS s FROM orders GROUP BY 1 ORDER BY 1",
    )?;
    let mut theirs = Vec::new();
    for batch in &batches {
        use arrow::array::AsArray;
        use arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
        let ids = batch.column(0).as_primitive::<UInt64Type>();
        let counts = batch.column(1).as_primitive::<Int64Type>();
        let sums = batch.column(2).as_primitive::<Float64Type>();
        for i in 0..ids.len() {
            theirs.push((ids.value(i), counts.value(i) as u64, sums.value(i)));
        }
    }
    if ours.len() != theirs.len() {
        return Err(
            format!("{} customers projected, {} in the store", ours.len(), theirs.len()).into()
        );
    }
    for (a, b) in ours.iter().zip(&theirs) {
        let close = (a.2 - b.2).abs() <= 1e-6 * b.2.abs().max(1.0);
        if a.0 != b.0 || a.1 != b.1 || !close {
            return Err(format!("projected {a:?}, the store says {b:?}").into());
        }
    }
    let consumer = store.existing_consumer(CONSUMER)?.info()?;
    println!(
        "projection: {} customers over {} orders equal the store's analytics; position {}, acknowledged {} ({} LSNs behind); {:.1} s",
        ours.len(),
        orders,
        projection.position,
        consumer.record.acked_lsn,
        consumer.lag_lsns,
        started.elapsed().as_secs_f64()
    );
    store.close()?;
    Ok(ours.len())
}

fn main() -> Result<(), Error> {
    let orders = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 20_000,
    };
    let dir = tempfile::tempdir()?;
    run(orders, dir.path())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_projection_equals_the_stores_analytics_after_a_crash_and_a_rebuild() {
        let dir = tempfile::tempdir().expect("dir");
        let customers = super::run(3_000, dir.path()).expect("the projection");
        assert!(customers > 400, "{customers} customers");
    }
}
