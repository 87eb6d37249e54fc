//! N orders ingested by each system in large batches (its fastest durable mode); then
//! on-disk bytes per order, the time to reopen, and revenue by status over the same data.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use duckdb::arrow::datatypes::DataType;
use orderlog_snapshot::{ArrowSchemaGen, ToArrow};
use orderlog_store::{Event, OrderSoA, OrderStore, SyncPolicy};

#[cfg(feature = "fjall")]
use crate::peers::{fjall_insert, fjall_open};
use crate::peers::{sqlite_count, sqlite_insert, sqlite_open, store_options};
use crate::workload::{Error, Result, check, disk_bytes, fresh_dir, order};

/// Reopening one system's data set.
#[derive(Debug, Clone)]
pub struct Reopen {
    /// The system and how it reopens.
    pub system: String,
    /// Orders in the data set.
    pub orders: u64,
    /// Ingest rate of the build (mutations/s; commit calls only), if this row built it.
    pub ingest_rate: Option<f64>,
    /// Bytes allocated on disk after the build, closed.
    pub disk_bytes: u64,
    /// Time to reopen and answer a first query.
    pub open: Duration,
    /// Events replayed per second of that open, where the open replays (orderlog).
    pub replay_rate: Option<f64>,
    /// Time to read every order after the open (count over a full scan), where the open
    /// does not load them.
    pub scan: Option<Duration>,
}

/// Revenue by status: `status -> (orders, revenue)`.
pub type Totals = BTreeMap<u8, (u64, f64)>;

/// One system's revenue-by-status query.
#[derive(Debug, Clone)]
pub struct Query {
    /// The system.
    pub system: String,
    /// Orders queried.
    pub orders: u64,
    /// Median query time.
    pub time: Duration,
    /// What had to happen first (orderlog: making the analytics handle; DuckDB: loading
    /// the table), timed once.
    pub prepare: Option<Duration>,
    /// The answer.
    pub totals: Totals,
}

/// Everything measured at one size.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Orders.
    pub orders: u64,
    /// The reopen rows.
    pub reopens: Vec<Reopen>,
    /// The query rows.
    pub queries: Vec<Query>,
}

/// The revenue-by-status SQL shared by SQLite and DuckDB.
pub const REVENUE_SQL: &str = "SELECT status, count(*) AS orders, sum(total_amount) AS revenue \
     FROM orders GROUP BY status ORDER BY status";

/// Whether two answers agree: the same statuses and counts, revenue within 1e-9 relative.
pub fn totals_agree(a: &Totals, b: &Totals) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((sa, (na, ra)), (sb, (nb, rb)))| {
            sa == sb && na == nb && (ra - rb).abs() <= 1e-9 * ra.abs().max(rb.abs()).max(1.0)
        })
}

fn median_of(runs: usize, mut f: impl FnMut() -> Result<Totals>) -> Result<(Duration, Totals)> {
    let mut times = Vec::new();
    let mut totals = Totals::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        totals = f()?;
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Ok((times[times.len() / 2], totals))
}

/// Orders `from..=to` in commits of `batch`, each passed to `commit`; returns the time
/// spent inside `commit` (the orders are built outside it).
fn ingest(
    from: u64,
    to: u64,
    batch: usize,
    mut commit: impl FnMut(&[orderlog_store::Order]) -> Result<()>,
) -> Result<Duration> {
    let mut spent = Duration::ZERO;
    let mut next = from;
    let mut orders = Vec::with_capacity(batch);
    while next <= to {
        orders.clear();
        let end = (next + batch as u64 - 1).min(to);
        orders.extend((next..=end).map(order));
        let t = Instant::now();
        commit(&orders)?;
        spent += t.elapsed();
        next = end + 1;
    }
    Ok(spent)
}

fn store_ingest(store: &OrderStore, from: u64, to: u64, batch: usize) -> Result<Duration> {
    let mut events = Vec::with_capacity(batch);
    ingest(from, to, batch, |orders| {
        events.clear();
        events.extend(orders.iter().map(|&o| Event::create(o).stamped(1)));
        store.apply_batch(&events)?;
        Ok(())
    })
}

fn duckdb_type(t: &DataType) -> Result<&'static str> {
    orderlog_store::analytics::duckdb_sql_type(t)
        .ok_or_else(|| Error(format!("no DuckDB type for {t}")))
}

/// An in-memory DuckDB with a native `orders` table holding `soa` (Arrow appender).
pub fn duckdb_native(soa: &OrderSoA) -> Result<duckdb::Connection> {
    let conn = duckdb::Connection::open_in_memory()?;
    let schema = OrderSoA::arrow_schema();
    let mut cols = Vec::new();
    for f in schema.fields() {
        cols.push(format!("\"{}\" {} NOT NULL", f.name(), duckdb_type(f.data_type())?));
    }
    conn.execute_batch(&format!("CREATE TABLE orders ({})", cols.join(", ")))?;
    {
        let mut app = conn.appender("orders")?;
        for b in soa.record_batches(1 << 17) {
            app.append_record_batch(b?)?;
        }
        app.flush()?;
    }
    Ok(conn)
}

/// Folds `(status, orders, revenue)` rows into totals.
fn totals<E>(rows: impl Iterator<Item = std::result::Result<(u8, i64, f64), E>>) -> Result<Totals>
where
    Error: From<E>,
{
    let mut t = Totals::new();
    for row in rows {
        let (s, n, rev) = row?;
        t.insert(s, (n as u64, rev));
    }
    Ok(t)
}

/// Revenue by status from DuckDB.
pub fn duckdb_revenue(conn: &duckdb::Connection) -> Result<Totals> {
    let mut st = conn.prepare(REVENUE_SQL)?;
    totals(st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
}

/// Revenue by status from SQLite.
pub fn sqlite_revenue(conn: &rusqlite::Connection) -> Result<Totals> {
    let mut st = conn.prepare(REVENUE_SQL)?;
    totals(st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
}

/// Revenue by status from orderlog's analytics handle.
pub fn orderlog_revenue(a: &orderlog_store::Analytics) -> Result<Totals> {
    Ok(a.revenue_by_status()?
        .into_iter()
        .map(|r| (u8::from(r.status), (r.orders, r.revenue)))
        .collect())
}

/// Builds and measures every system at `n` orders, committing `batch` orders at a time;
/// queries run `runs` times (median). `log` reports progress.
pub fn measure(n: u64, batch: usize, runs: usize, log: &dyn Fn(&str)) -> Result<Dataset> {
    let mut out = Dataset { orders: n, ..Dataset::default() };
    let opts = || store_options(SyncPolicy::Always, None);

    // orderlog, the log alone: every order replayed on open.
    {
        log(&format!("{n} orders: orderlog, log only"));
        let dir = fresh_dir()?;
        let store = OrderStore::open(dir.path(), opts())?;
        let spent = store_ingest(&store, 1, n, batch)?;
        store.close()?;
        drop(store);
        let bytes = disk_bytes(dir.path())?;
        let t = Instant::now();
        let store = OrderStore::open(dir.path(), opts())?;
        let first = store.get(n);
        let open = t.elapsed();
        check(store.len() as u64 == n && first.is_some(), || "orderlog lost orders".into())?;
        let replayed = store.open_report().events_replayed;
        out.reopens.push(Reopen {
            system: "orderlog: replay the whole log".into(),
            orders: n,
            ingest_rate: Some(n as f64 / spent.as_secs_f64()),
            disk_bytes: bytes,
            open,
            replay_rate: Some(replayed as f64 / open.as_secs_f64()),
            scan: None,
        });
    }

    // orderlog with a snapshot (compacted after the build) and the unsealed log tail.
    let (store, _dir) = {
        log(&format!("{n} orders: orderlog, snapshot + tail"));
        let dir = fresh_dir()?;
        // Compaction folds sealed segments: segments of about an eighth of the log
        // (at most 16 MiB, as the store's own benches use) leave a snapshot of most
        // orders and the last segment's events as the tail.
        let mut snap_opts = opts();
        snap_opts.wal.segment_bytes = (n * 70 / 8).clamp(256 << 10, 16 << 20) & !4095;
        let store = OrderStore::open(dir.path(), snap_opts.clone())?;
        store_ingest(&store, 1, n, batch)?;
        store.compact()?;
        store.close()?;
        drop(store);
        let bytes = disk_bytes(dir.path())?;
        let t = Instant::now();
        let store = OrderStore::open(dir.path(), snap_opts)?;
        let first = store.get(n);
        let open = t.elapsed();
        check(store.len() as u64 == n && first.is_some(), || "orderlog lost orders".into())?;
        let r = store.open_report();
        out.reopens.push(Reopen {
            system: format!(
                "orderlog: snapshot ({} orders) + log tail ({} events)",
                r.snapshot_orders, r.events_replayed
            ),
            orders: n,
            ingest_rate: None,
            disk_bytes: bytes,
            open,
            replay_rate: Some(
                (r.snapshot_orders as u64 + r.events_replayed) as f64 / open.as_secs_f64(),
            ),
            scan: None,
        });
        (store, dir)
    };
    log(&format!("{n} orders: analytics"));
    let t = Instant::now();
    let analytics = store.analytics()?;
    let handle = t.elapsed();
    let (time, totals) = median_of(runs, || orderlog_revenue(&analytics))?;
    drop(analytics);
    out.queries.push(Query {
        system: "orderlog analytics (DuckDB over snapshot + tail)".into(),
        orders: n,
        time,
        prepare: Some(handle),
        totals,
    });
    let t = Instant::now();
    let duck = duckdb_native(&store.kernel())?;
    let load = t.elapsed();
    store.close()?;
    drop(store);
    drop(_dir);
    let (time, totals) = median_of(runs, || duckdb_revenue(&duck))?;
    drop(duck);
    out.queries.push(Query {
        system: "DuckDB native table (in memory)".into(),
        orders: n,
        time,
        prepare: Some(load),
        totals,
    });

    // SQLite, synchronous=FULL, one transaction per batch.
    {
        log(&format!("{n} orders: SQLite"));
        let dir = fresh_dir()?;
        let path = dir.path().join("orders.db");
        let mut conn = sqlite_open(&path, true)?;
        let spent = ingest(1, n, batch, |orders| sqlite_insert(&mut conn, orders))?;
        drop(conn);
        let bytes = disk_bytes(dir.path())?;
        let t = Instant::now();
        let conn = sqlite_open(&path, true)?;
        let first: f64 = conn.query_row(
            "SELECT total_amount FROM orders WHERE order_id = ?1",
            [n as i64],
            |r| r.get(0),
        )?;
        let open = t.elapsed();
        check(first >= 0.0, || "SQLite lost an order".into())?;
        let t = Instant::now();
        let rows = sqlite_count(&conn)?;
        let scan = t.elapsed();
        check(rows == n, || format!("SQLite holds {rows} of {n}"))?;
        out.reopens.push(Reopen {
            system: "SQLite: open + first query".into(),
            orders: n,
            ingest_rate: Some(n as f64 / spent.as_secs_f64()),
            disk_bytes: bytes,
            open,
            replay_rate: None,
            scan: Some(scan),
        });
        let (time, totals) = median_of(runs, || sqlite_revenue(&conn))?;
        out.queries.push(Query {
            system: "SQLite GROUP BY".into(),
            orders: n,
            time,
            prepare: None,
            totals,
        });
    }

    // fjall, one SyncData batch per commit.
    #[cfg(feature = "fjall")]
    {
        log(&format!("{n} orders: fjall"));
        let dir = fresh_dir()?;
        let (db, ks) = fjall_open(dir.path())?;
        let spent = ingest(1, n, batch, |orders| fjall_insert(&db, &ks, orders))?;
        drop(ks);
        drop(db);
        let bytes = disk_bytes(dir.path())?;
        let t = Instant::now();
        let (db, ks) = fjall_open(dir.path())?;
        let first = ks.get(n.to_be_bytes())?;
        let open = t.elapsed();
        check(first.is_some(), || "fjall lost an order".into())?;
        let t = Instant::now();
        let rows = ks.len()? as u64;
        let scan = t.elapsed();
        check(rows == n, || format!("fjall holds {rows} of {n}"))?;
        drop(ks);
        drop(db);
        out.reopens.push(Reopen {
            system: "fjall: open + first get".into(),
            orders: n,
            ingest_rate: Some(n as f64 / spent.as_secs_f64()),
            disk_bytes: bytes,
            open,
            replay_rate: None,
            scan: Some(scan),
        });
    }

    let first = &out.queries[0].totals;
    for q in &out.queries[1..] {
        check(totals_agree(first, &q.totals), || {
            format!(
                "revenue by status differs: {} {first:?} vs {} {:?}",
                out.queries[0].system, q.system, q.totals
            )
        })?;
    }
    let count: u64 = first.values().map(|(c, _)| c).sum();
    check(count == n, || format!("revenue by status counts {count} orders of {n}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_agree_within_tolerance_only() {
        let a: Totals = [(0, (2, 10.0)), (1, (3, 1e12))].into_iter().collect();
        let mut b = a.clone();
        b.insert(1, (3, 1e12 + 1e-3));
        assert!(totals_agree(&a, &b));
        b.insert(1, (3, 1e12 + 1e4));
        assert!(!totals_agree(&a, &b));
        b.insert(1, (4, 1e12));
        assert!(!totals_agree(&a, &b));
        b.remove(&1);
        assert!(!totals_agree(&a, &b));
    }
}
