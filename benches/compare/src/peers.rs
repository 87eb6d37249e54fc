//! Durable ingest of the same orders by each system: one function per system, each on a
//! fresh directory, each checking after the timed part that every row landed.

use std::sync::Arc;
use std::time::Duration;

use orderlog_store::events::encode_batch;
use orderlog_store::{CompactionOptions, Event, OrderSoA, OrderStore, StoreOptions, SyncPolicy};
use orderlog_wal::{IoBackend, Wal, WalOptions};

use crate::workload::{
    Ingest, Result, Writer, check, drive, fresh_dir, order, record, writer_orders,
};

/// The systems and modes of the ingest grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// `OrderStore`, `SyncPolicy::Always`, the default options (the log's backend chosen
    /// by the policy: `pwrite` + `fdatasync`).
    OrderlogAlways,
    /// `OrderStore`, `SyncPolicy::Always`, the mapped log backend (`IoBackend::Mmap`).
    OrderlogAlwaysMmap,
    /// `OrderStore`, `SyncPolicy::Interval(10 ms)`: not durable per commit.
    OrderlogInterval,
    /// `orderlog_wal::Wal` alone, `Always`, the 80-byte records as frames.
    OrderlogWal,
    /// okaywal 0.3: one entry of `batch` chunks (the records), then commit.
    Okaywal,
    /// SQLite, WAL mode, `synchronous=FULL`.
    SqliteFull,
    /// SQLite, WAL mode, `synchronous=NORMAL`: not durable per commit.
    SqliteNormal,
    /// fjall 3, one write batch per commit with `PersistMode::SyncData`.
    Fjall,
}

impl System {
    /// Every system of the grid, in table order.
    #[cfg(feature = "fjall")]
    pub const ALL: [System; 8] = [
        System::OrderlogAlways,
        System::OrderlogAlwaysMmap,
        System::OrderlogInterval,
        System::OrderlogWal,
        System::Okaywal,
        System::SqliteFull,
        System::SqliteNormal,
        System::Fjall,
    ];

    /// Every system of the grid, in table order (built without fjall).
    #[cfg(not(feature = "fjall"))]
    pub const ALL: [System; 7] = [
        System::OrderlogAlways,
        System::OrderlogAlwaysMmap,
        System::OrderlogInterval,
        System::OrderlogWal,
        System::Okaywal,
        System::SqliteFull,
        System::SqliteNormal,
    ];

    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            System::OrderlogAlways => "orderlog store, Always (default options)",
            System::OrderlogAlwaysMmap => "orderlog store, Always, Mmap backend",
            System::OrderlogInterval => "orderlog store, Interval(10 ms) ¹",
            System::OrderlogWal => "orderlog-wal alone, Always (80 B frames)",
            System::Okaywal => "okaywal 0.3 (80 B chunks)",
            System::SqliteFull => "SQLite WAL, synchronous=FULL",
            System::SqliteNormal => "SQLite WAL, synchronous=NORMAL ¹",
            System::Fjall => "fjall 3, PersistMode::SyncData",
        }
    }

    /// Runs `writers` writers, each making up to `commits` commits of `batch` orders.
    pub fn ingest(
        self,
        batch: usize,
        writers: usize,
        commits: u64,
        cap: Duration,
    ) -> Result<Ingest> {
        match self {
            System::OrderlogAlways => {
                orderlog(SyncPolicy::Always, None, batch, writers, commits, cap)
            }
            System::OrderlogAlwaysMmap => {
                orderlog(SyncPolicy::Always, Some(IoBackend::Mmap), batch, writers, commits, cap)
            }
            System::OrderlogInterval => orderlog(
                SyncPolicy::Interval(Duration::from_millis(10)),
                None,
                batch,
                writers,
                commits,
                cap,
            ),
            System::OrderlogWal => orderlog_wal(batch, writers, commits, cap),
            System::Okaywal => okaywal(batch, writers, commits, cap),
            System::SqliteFull => sqlite(true, batch, writers, commits, cap),
            System::SqliteNormal => sqlite(false, batch, writers, commits, cap),
            #[cfg(feature = "fjall")]
            System::Fjall => fjall(batch, writers, commits, cap),
            #[cfg(not(feature = "fjall"))]
            System::Fjall => Err(crate::workload::Error("built without the fjall feature".into())),
        }
    }
}

/// Store options: this policy and backend (`None`: the default for the policy), no
/// background compaction.
pub fn store_options(policy: SyncPolicy, backend: Option<IoBackend>) -> StoreOptions {
    StoreOptions {
        wal: WalOptions { sync_policy: policy, io_backend: backend, ..WalOptions::default() },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        ..StoreOptions::default()
    }
}

/// Creates, one batch per commit, as `OrderStore::apply_batch` takes them.
fn events(orders: &[Vec<orderlog_store::Order>]) -> Vec<Vec<Event>> {
    orders.iter().map(|b| b.iter().map(|&o| Event::create(o).stamped(1)).collect()).collect()
}

/// Bytes the log writes for a batch of events: its encoded frame.
pub fn frame_bytes(events: &[Event]) -> u64 {
    let mut buf = Vec::new();
    encode_batch(events, &mut buf);
    orderlog_wal::format::frame_size(buf.len())
}

fn orderlog(
    policy: SyncPolicy,
    backend: Option<IoBackend>,
    batch: usize,
    writers: usize,
    commits: u64,
    cap: Duration,
) -> Result<Ingest> {
    let dir = fresh_dir()?;
    let store = OrderStore::open(dir.path(), store_options(policy, backend))?;
    let prepared: Vec<Vec<Vec<Event>>> =
        (0..writers).map(|w| events(&writer_orders(w, commits, batch))).collect();
    let sizes: Vec<Vec<u64>> =
        prepared.iter().map(|w| w.iter().map(|b| frame_bytes(b)).collect()).collect();
    let ws: Vec<Writer<'_>> = prepared
        .iter()
        .map(|evs| {
            let store = &store;
            Box::new(move |c: u64| {
                store.apply_batch(&evs[c as usize])?;
                Ok(())
            }) as Writer<'_>
        })
        .collect();
    let mut r = drive(ws, commits, batch, cap)?;
    // Every writer made the same number of commits, give or take the cap: count bytes of
    // the mean writer's commits.
    let per_writer = r.commits / writers as u64;
    r.log_bytes = Some(sizes.iter().map(|s| s.iter().take(per_writer as usize).sum::<u64>()).sum());
    check(store.len() as u64 >= r.ops, || format!("orderlog holds {} < {}", store.len(), r.ops))?;
    store.close()?;
    Ok(r)
}

/// Each writer's commits as the log-layer peers write them: one 80-byte record per order.
fn writer_records(writers: usize, commits: u64, batch: usize) -> Vec<Vec<Vec<[u8; 80]>>> {
    (0..writers)
        .map(|w| {
            writer_orders(w, commits, batch)
                .iter()
                .map(|b| b.iter().map(record).collect())
                .collect()
        })
        .collect()
}

fn orderlog_wal(batch: usize, writers: usize, commits: u64, cap: Duration) -> Result<Ingest> {
    let dir = fresh_dir()?;
    let wal = Wal::open(dir.path(), WalOptions::default())?;
    let prepared = writer_records(writers, commits, batch);
    let ws: Vec<Writer<'_>> = prepared
        .iter()
        .map(|recs| {
            let wal = &wal;
            Box::new(move |c: u64| {
                let frames: Vec<&[u8]> = recs[c as usize].iter().map(|r| &r[..]).collect();
                wal.append_batch(&frames)?;
                Ok(())
            }) as Writer<'_>
        })
        .collect();
    let mut r = drive(ws, commits, batch, cap)?;
    r.log_bytes = Some(r.ops * orderlog_wal::format::frame_size(crate::workload::RECORD_BYTES));
    let frames = wal.last_lsn();
    check(frames >= r.ops, || format!("orderlog-wal holds {frames} frames < {}", r.ops))?;
    wal.close()?;
    Ok(r)
}

/// A log manager that records the order id (first 8 bytes) of every chunk it is handed,
/// at recovery and at checkpoints, so that a reopen can check every committed record
/// is in the log or was checkpointed from it.
#[derive(Debug, Default, Clone)]
pub struct SeenIds(pub Arc<std::sync::Mutex<std::collections::HashSet<u64>>>);

impl SeenIds {
    fn read(&self, entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        while let okaywal::ReadChunkResult::Chunk(mut chunk) = entry.read_chunk()? {
            let bytes = chunk.read_all()?;
            let id = bytes.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
            if let Ok(mut seen) = self.0.lock() {
                seen.insert(id);
            }
        }
        Ok(())
    }

    /// Distinct ids seen.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |s| s.len())
    }

    /// None seen.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl okaywal::LogManager for SeenIds {
    fn recover(&mut self, entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        self.read(entry)
    }

    fn checkpoint_to(
        &mut self,
        _last: okaywal::EntryId,
        entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> std::io::Result<()> {
        while let Some(mut entry) = entries.read_entry()? {
            self.read(&mut entry)?;
        }
        Ok(())
    }
}

fn okaywal(batch: usize, writers: usize, commits: u64, cap: Duration) -> Result<Ingest> {
    let dir = fresh_dir()?;
    // Default configuration; the manager reads back the segments okaywal checkpoints
    // (the price of checking its row count: a read of data still in the page cache).
    let seen = SeenIds::default();
    let log = okaywal::WriteAheadLog::recover(dir.path(), seen.clone())?;
    let prepared = writer_records(writers, commits, batch);
    let ws: Vec<Writer<'_>> = prepared
        .iter()
        .map(|recs| {
            let log = &log;
            Box::new(move |c: u64| {
                let mut entry = log.begin_entry()?;
                for r in &recs[c as usize] {
                    entry.write_chunk(r)?;
                }
                entry.commit()?;
                Ok(())
            }) as Writer<'_>
        })
        .collect();
    let r = drive(ws, commits, batch, cap)?;
    log.shutdown()?;
    let log = okaywal::WriteAheadLog::recover(dir.path(), seen.clone())?;
    log.shutdown()?;
    let ids = seen.len() as u64;
    check(ids >= r.ops, || format!("okaywal holds {ids} records < {}", r.ops))?;
    Ok(r)
}

/// The orders table, its insert and the revenue-by-status query.
pub const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL, unit_price REAL NOT NULL, total_amount REAL NOT NULL,
    status INTEGER NOT NULL, payment_method INTEGER NOT NULL,
    order_timestamp INTEGER NOT NULL, shipping_address_hash INTEGER NOT NULL)";
const SQLITE_INSERT: &str = "INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Opens (creating) the SQLite database at `path`: WAL mode, `synchronous` FULL or
/// NORMAL, a 30 s busy timeout so concurrent writers queue rather than fail.
pub fn sqlite_open(path: &std::path::Path, full: bool) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    check(mode == "wal", || format!("SQLite journal_mode is {mode}"))?;
    conn.execute_batch(if full { "PRAGMA synchronous=FULL" } else { "PRAGMA synchronous=NORMAL" })?;
    conn.execute_batch(SQLITE_SCHEMA)?;
    Ok(conn)
}

/// Inserts `orders` in one `BEGIN IMMEDIATE` transaction.
pub fn sqlite_insert(
    conn: &mut rusqlite::Connection,
    orders: &[orderlog_store::Order],
) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut st = tx.prepare_cached(SQLITE_INSERT)?;
        for o in orders {
            st.execute(rusqlite::params![
                o.order_id as i64,
                o.customer_id as i64,
                o.product_id as i64,
                o.quantity,
                o.unit_price,
                o.total_amount(),
                u8::from(o.status),
                u8::from(o.payment_method),
                o.order_timestamp as i64,
                o.shipping_address_hash as i64,
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Rows in the orders table.
pub fn sqlite_count(conn: &rusqlite::Connection) -> Result<u64> {
    Ok(conn.query_row("SELECT count(*) FROM orders", [], |r| r.get::<_, i64>(0))? as u64)
}

fn sqlite(full: bool, batch: usize, writers: usize, commits: u64, cap: Duration) -> Result<Ingest> {
    let dir = fresh_dir()?;
    let path = dir.path().join("orders.db");
    // One connection per writer thread (a connection is not shared between threads);
    // writers queue on SQLite's write lock through BEGIN IMMEDIATE and the busy timeout.
    let mut conns = Vec::new();
    for _ in 0..writers {
        conns.push(sqlite_open(&path, full)?);
    }
    let prepared: Vec<_> = (0..writers).map(|w| writer_orders(w, commits, batch)).collect();
    let ws: Vec<Writer<'_>> = conns
        .into_iter()
        .zip(&prepared)
        .map(|(mut conn, orders)| {
            Box::new(move |c: u64| sqlite_insert(&mut conn, &orders[c as usize])) as Writer<'_>
        })
        .collect();
    let r = drive(ws, commits, batch, cap)?;
    let rows = sqlite_count(&sqlite_open(&path, full)?)?;
    check(rows >= r.ops, || format!("SQLite holds {rows} rows < {}", r.ops))?;
    Ok(r)
}

#[cfg(feature = "fjall")]
/// Opens (creating) a fjall database at `path` and its `orders` keyspace.
pub fn fjall_open(path: &std::path::Path) -> Result<(fjall::Database, fjall::Keyspace)> {
    let db = fjall::Database::builder(path).open()?;
    let ks = db.keyspace("orders", fjall::KeyspaceCreateOptions::default)?;
    Ok((db, ks))
}

#[cfg(feature = "fjall")]
/// Writes `orders` as one batch (key: big-endian id; value: the 80-byte record),
/// committed with `PersistMode::SyncData`.
pub fn fjall_insert(
    db: &fjall::Database,
    ks: &fjall::Keyspace,
    orders: &[orderlog_store::Order],
) -> Result<()> {
    let mut b = db.batch().durability(Some(fjall::PersistMode::SyncData));
    for o in orders {
        b.insert(ks, o.order_id.to_be_bytes(), record(o));
    }
    b.commit()?;
    Ok(())
}

#[cfg(feature = "fjall")]
fn fjall(batch: usize, writers: usize, commits: u64, cap: Duration) -> Result<Ingest> {
    let dir = fresh_dir()?;
    let (db, ks) = fjall_open(dir.path())?;
    let prepared: Vec<_> = (0..writers).map(|w| writer_orders(w, commits, batch)).collect();
    let ws: Vec<Writer<'_>> = prepared
        .iter()
        .map(|orders| {
            let (db, ks) = (&db, &ks);
            Box::new(move |c: u64| fjall_insert(db, ks, &orders[c as usize])) as Writer<'_>
        })
        .collect();
    let r = drive(ws, commits, batch, cap)?;
    let rows = ks.len()? as u64;
    check(rows >= r.ops, || format!("fjall holds {rows} rows < {}", r.ops))?;
    Ok(r)
}

/// Naive persistence: after each add, the whole state rewritten as Parquet
/// (`write_parquet_files`, fsynced) into a fresh directory; `n` adds, one writer.
pub fn naive(n: u64) -> Result<Ingest> {
    let dir = fresh_dir()?;
    let mut soa = OrderSoA::new();
    let opts = orderlog_snapshot::SnapshotOptions::default();
    let w: Writer<'_> = Box::new(move |c: u64| -> Result<()> {
        soa.push(order(c + 1))?;
        let sub = dir.path().join(format!("s{c}"));
        std::fs::create_dir(&sub)?;
        orderlog_snapshot::write_parquet_files(&sub, &soa, &opts)?;
        if c > 0 {
            std::fs::remove_dir_all(dir.path().join(format!("s{}", c - 1)))?;
        }
        check(soa.len() as u64 == c + 1, || "naive store lost an order".into())
    });
    drive(vec![w], n, 1, Duration::from_secs(3600))
}
