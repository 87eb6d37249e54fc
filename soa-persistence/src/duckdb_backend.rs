//! The DuckDB backend, `DuckDBPersistence<T>`, and `SQLOrderStore` (cargo feature
//! `duckdb`).
//!
//! Rows live in one DuckDB table whose columns follow `T`'s Arrow schema (UInt64 as
//! UBIGINT, UInt8 as UTINYINT, ...; non-nullable fields are `NOT NULL`). Rows go in
//! through DuckDB's Arrow appender, a bounded batch at a time, inside one transaction
//! (all or nothing), never row by row; they come back as Arrow batches.
//!
//! Guarantees: the table name is validated as an identifier; `load` returns every row,
//! from every batch; `top_customers` binds its limit as a parameter; `analytics_query`
//! returns JSON rows; an unsupported column type is an error rather than a silent
//! VARCHAR.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;
use duckdb::Connection;

use super::persistence::{Gather, Matches, MemoryStats, SoAPersistence, SoaRows, run_blocking};
use super::{PersistenceError, PersistentOrderStore, Result};
use orderlog_store::analytics::{
    AnalyticsError, append_batch, batches_to_json, create_table_sql, monthly_trends_sql,
    query_batches, quoted_identifier, revenue_by_status_sql, top_customers_sql,
};
use orderlog_store::domain::{Order, OrderSoA};

/// Rows per batch handed to DuckDB's appender.
pub const DUCKDB_APPEND_ROWS: usize = 122_880;

/// A DuckDB table holding `T`'s rows.
pub struct DuckDBPersistence<T> {
    conn: Mutex<Connection>,
    /// The table name as given (validated).
    table: String,
    /// The same, double-quoted for statements.
    quoted: String,
    _rows: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for DuckDBPersistence<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDBPersistence").field("table", &self.table).finish_non_exhaustive()
    }
}

pub use orderlog_store::analytics::duckdb_sql_type as sql_type;

fn db_err(sql: &str, e: &duckdb::Error) -> PersistenceError {
    AnalyticsError::Query { sql: sql.to_owned(), message: e.to_string() }.into()
}

impl<T: SoaRows> DuckDBPersistence<T> {
    /// Opens `db_path` (a DuckDB database file, created if needed; `":memory:"` or `None`
    /// for an in-memory database) and creates `table_name` if it does not exist.
    ///
    /// The name must be a plain identifier ([`orderlog_store::analytics::validate_identifier`]);
    /// so must every column name of `T`.
    pub fn new(db_path: Option<&str>, table_name: impl Into<String>) -> Result<Self> {
        let table = table_name.into();
        let quoted = quoted_identifier(&table)?;
        let conn = match db_path {
            Some(path) if path != ":memory:" => Connection::open(path),
            _ => Connection::open_in_memory(),
        }
        .map_err(|e| db_err("open", &e))?;
        let backend =
            DuckDBPersistence { conn: Mutex::new(conn), table, quoted, _rows: PhantomData };
        backend.create_table()?;
        Ok(backend)
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // DuckDB keeps its own state consistent per statement; a panic elsewhere while
        // the lock was held leaves nothing half-done on our side.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create_table(&self) -> Result<()> {
        let sql = create_table_sql(&self.table, &T::arrow_schema(), true)?;
        self.conn().execute_batch(&sql).map_err(|e| db_err(&sql, &e))
    }

    /// Appends every row of `data` through the Arrow appender, in one transaction.
    fn append_rows(&self, conn: &Connection, data: &T) -> Result<()> {
        for batch in data.record_batches(DUCKDB_APPEND_ROWS) {
            append_batch(conn, &self.table, batch?)?;
        }
        Ok(())
    }

    /// Runs `f` inside a transaction, rolled back if it fails.
    fn transaction(&self, f: impl FnOnce(&Connection) -> Result<()>) -> Result<()> {
        let conn = self.conn();
        conn.execute_batch("BEGIN TRANSACTION").map_err(|e| db_err("BEGIN", &e))?;
        match f(&conn) {
            Ok(()) => conn.execute_batch("COMMIT").map_err(|e| db_err("COMMIT", &e)),
            Err(e) => {
                // The original error is what the caller needs; a failed rollback leaves
                // DuckDB aborting the transaction itself.
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Every stored batch, re-labelled with `T`'s schema (DuckDB reports every column
    /// nullable; `T`'s conversion then checks there is no null).
    fn batches(&self) -> Result<Vec<RecordBatch>> {
        let sql = format!("SELECT * FROM {}", self.quoted);
        let batches = query_batches(&self.conn(), &sql, [])?;
        let schema = T::arrow_schema();
        batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()).map_err(|e| {
                    PersistenceError::from(AnalyticsError::Result(format!(
                        "table {} does not hold {}'s rows: {e}",
                        self.table,
                        std::any::type_name::<T>()
                    )))
                })
            })
            .collect()
    }

    /// Runs any SQL on the backend's database and returns every result batch. Unlike
    /// [`orderlog_store::Analytics::query_sql`] this may write: the database is the
    /// caller's own.
    pub async fn query_sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        run_blocking(|| Ok(query_batches(&self.conn(), sql, [])?))
    }

    /// [`DuckDBPersistence::query_sql`] as a JSON array of row objects.
    pub async fn analytics_query(&self, sql: &str) -> Result<serde_json::Value> {
        let batches = self.query_sql(sql).await?;
        Ok(batches_to_json(&batches)?)
    }

    /// Runs one of the store's own statements with bound parameters.
    fn run<P: duckdb::Params>(&self, sql: &str, params: P) -> Result<Vec<RecordBatch>> {
        run_blocking(|| Ok(query_batches(&self.conn(), sql, params)?))
    }
}

impl<T: SoaRows + Sync> SoAPersistence<T> for DuckDBPersistence<T> {
    async fn save(&mut self, data: &T) -> Result<()> {
        run_blocking(|| {
            self.transaction(|conn| {
                let sql = format!("DELETE FROM {}", self.quoted);
                conn.execute_batch(&sql).map_err(|e| db_err(&sql, &e))?;
                self.append_rows(conn, data)
            })
        })
    }

    async fn load(&self) -> Result<Option<T>> {
        run_blocking(|| {
            let mut gather = Gather::new();
            for batch in &self.batches()? {
                gather.add(batch)?;
            }
            Ok(gather.finish())
        })
    }

    async fn append(&mut self, data: &T) -> Result<()> {
        if data.num_rows() == 0 {
            return Ok(());
        }
        run_blocking(|| self.transaction(|conn| self.append_rows(conn, data)))
    }

    async fn query(&self, predicate: impl Fn(&T::Row) -> bool + Send) -> Result<Option<T>> {
        run_blocking(|| {
            let mut matches = Matches::new();
            for batch in &self.batches()? {
                matches.add(batch, &predicate)?;
            }
            Ok(matches.finish())
        })
    }

    async fn count(&self) -> Result<usize> {
        run_blocking(|| self.count_rows())
    }

    async fn clear(&mut self) -> Result<()> {
        run_blocking(|| {
            let sql = format!("DELETE FROM {}", self.quoted);
            self.conn().execute_batch(&sql).map_err(|e| db_err(&sql, &e))
        })
    }

    /// Rows, one "batch" (the table), and the bytes DuckDB reports for the database:
    /// used blocks times block size for a file, the buffer memory for an in-memory one.
    /// All zero while the table is empty.
    async fn memory_stats(&self) -> Result<MemoryStats> {
        run_blocking(|| {
            let rows = self.count_rows()?;
            if rows == 0 {
                return Ok(MemoryStats::default());
            }
            let sql = "SELECT coalesce(max(used_blocks * block_size), 0)::BIGINT, \
                       (SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()) \
                       FROM pragma_database_size()";
            let (on_disk, in_memory): (i64, i64) = self
                .conn()
                .query_row(sql, [], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(|e| db_err(sql, &e))?;
            let bytes = if on_disk > 0 { on_disk } else { in_memory };
            let bytes = usize::try_from(bytes).unwrap_or(0);
            Ok(MemoryStats::new(bytes, rows, usize::from(rows > 0)))
        })
    }
}

impl<T: SoaRows> DuckDBPersistence<T> {
    fn count_rows(&self) -> Result<usize> {
        let sql = format!("SELECT COUNT(*) FROM {}", self.quoted);
        let n: i64 =
            self.conn().query_row(&sql, [], |row| row.get(0)).map_err(|e| db_err(&sql, &e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

/// An order store over DuckDB, with the three standard reports as Arrow batches.
#[derive(Debug)]
pub struct SQLOrderStore {
    duckdb: DuckDBPersistence<OrderSoA>,
}

impl SQLOrderStore {
    /// Opens (or creates) the database at `db_path` (`None`: in memory) with its
    /// `orders` table.
    pub fn new(db_path: Option<&str>) -> Result<Self> {
        Ok(SQLOrderStore { duckdb: DuckDBPersistence::new(db_path, "orders")? })
    }

    /// Validates and appends one order.
    pub async fn add(&mut self, order: Order) -> Result<()> {
        let mut soa = OrderSoA::new();
        soa.push(order)?;
        self.duckdb.append(&soa).await
    }

    /// Revenue and order count per status (as its byte code), largest revenue first.
    pub async fn revenue_by_status(&self) -> Result<Vec<RecordBatch>> {
        self.duckdb.run(&revenue_by_status_sql(&self.duckdb.quoted), [])
    }

    /// The `limit` customers with the largest total spent (limit bound as a parameter).
    pub async fn top_customers(&self, limit: usize) -> Result<Vec<RecordBatch>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.duckdb.run(&top_customers_sql(&self.duckdb.quoted), [limit])
    }

    /// Orders, revenue and mean order value per calendar month (UTC).
    pub async fn monthly_trends(&self) -> Result<Vec<RecordBatch>> {
        self.duckdb.run(&monthly_trends_sql(&self.duckdb.quoted), [])
    }

    /// Any SQL on the database.
    pub async fn query_sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.duckdb.query_sql(sql).await
    }

    /// The backend.
    pub fn persistence(&self) -> &DuckDBPersistence<OrderSoA> {
        &self.duckdb
    }
}

impl PersistentOrderStore<DuckDBPersistence<OrderSoA>> {
    /// SQL over the backend's database.
    pub async fn query_sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.persistence().query_sql(sql).await
    }
}
