//! SQL analytics in DuckDB over the snapshots and the live tail (cargo feature
//! `analytics`, on by default).
//!
//! An [`Analytics`] handle is an in-memory DuckDB connection holding a fixed, consistent
//! view of the orders at one LSN:
//!
//! ```text
//! orders_raw  = snapshot Parquet files (read in place by DuckDB's read_parquet)
//!               minus the rows of orders touched after the snapshot (ANTI JOIN touched)
//!               UNION ALL the current rows of those orders (table tail, from Arrow)
//! orders      = orders_raw with status and payment_method as ENUM names
//! ```
//!
//! The parts are queryable too: `snapshot_orders` (the Parquet files), `touched` (ids),
//! `stale` (the snapshot rows of touched orders, copied at creation) and `tail`. The
//! built-in reports aggregate `snapshot_orders - stale + tail` rather than `orders_raw`,
//! which avoids the anti-join on every query.
//!
//! - [`crate::OrderStore::analytics`] (fresh): the newest snapshot plus the live tail, so
//!   a query sees every mutation the store has applied;
//!   [`crate::OrderStore::analytics_snapshot`]: the newest snapshot alone;
//!   [`crate::OrderStore::as_of`] / [`crate::OrderStore::as_of_time`]: the orders as
//!   they were at an earlier LSN or time, folded from the nearest retained snapshot.
//! - [`Analytics::query_sql`] runs one read-only query and returns every batch;
//!   [`Analytics::analytics_query`] returns the rows as JSON; the three standard reports
//!   ([`Analytics::revenue_by_status`], [`Analytics::top_customers`],
//!   [`Analytics::monthly_trends`]) return typed rows.
//!
//! Safety: user queries are refused unless they are one query expression (see
//! [`Analytics::query_sql`]); identifiers are validated ([`validate_identifier`]);
//! values are bound as parameters. A bad query is an [`AnalyticsError::Query`] carrying
//! DuckDB's message; the store is never affected.
//!
//! Reach: each handle's DuckDB reads the Parquet files of its own snapshot and nothing
//! else. External access is off (no other file, directory listing, URL, `ATTACH`,
//! `COPY`, extension install or load), the files the views read are the only allowed
//! paths, and the configuration is locked; the tail is copied in through DuckDB's Arrow
//! appender, so no table function that reads Arrow stays callable. A query naming any
//! other path is [`AnalyticsError::Denied`].
//!
//! Limits ([`AnalyticsOptions`], in `StoreOptions::analytics`): a memory limit (1 GiB by
//! default; past it a query fails with [`AnalyticsError::OutOfMemory`]), threads (half
//! the cores), spilling (never, by default: DuckDB writes no file), a time limit per
//! query (60 s; past it DuckDB is interrupted and [`AnalyticsError::Timeout`] returned;
//! DuckDB notices while it executes, not while it plans), and a bound on a result once
//! out of DuckDB (256 MiB; [`AnalyticsError::ResultTooLarge`]).
//!
//! Columns (all non-null): `order_id`, `customer_id`, `product_id` (UBIGINT),
//! `quantity` (UINTEGER), `unit_price`, `total_amount` (DOUBLE), `status`
//! (`order_status` ENUM in `orders`, UTINYINT in `orders_raw`), `payment_method`
//! (`payment_method` ENUM / UTINYINT), `order_timestamp` (UBIGINT, **seconds** since the
//! Unix epoch, UTC), `shipping_address_hash` (UBIGINT), `version` (UINTEGER). Lookup
//! tables `order_statuses(code, name)` and `payment_methods(code, name)` map the codes.

mod display;
mod guard;
mod limits;
mod reports;
mod tables;
mod tail;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use duckdb::Connection;
use orderlog_snapshot::{SnapshotInfo, SnapshotStore};
use orderlog_wal::Lsn;

pub use display::{
    SHOWN_AS_TEXT, batches_to_json, csv_lines, table_lines, text_column_notes, write_csv,
    write_table,
};
pub use guard::quoted_identifier;
pub(crate) use guard::string_literal;
pub use guard::{IDENTIFIER_MAX, validate_identifier};
pub use limits::{
    AnalyticsOptions, DEFAULT_MAX_RESULT_BYTES, DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_TIMEOUT,
    MEMORY_LIMIT_MAX, MEMORY_LIMIT_MIN, Spill, THREADS_MAX, WATCHDOG_THREAD,
};
pub use reports::{CustomerTotal, MonthTrend, StatusRevenue};
pub use reports::{monthly_trends_sql, revenue_by_status_sql, top_customers_sql};
pub use tables::sql_type as duckdb_sql_type;
pub use tables::{append as append_batch, create_sql as create_table_sql};
pub(crate) use tail::IdSet;
pub use tail::Tail;

use crate::domain::{OrderStatus, PaymentMethod};
use crate::state::OrderState;
use orderlog_snapshot::ArrowSchemaGen;

/// Errors from analytics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyticsError {
    /// DuckDB refused or failed the statement; the message is DuckDB's.
    #[error("DuckDB failed on `{sql}`: {message}")]
    Query {
        /// The statement (as sent, after wrapping).
        sql: String,
        /// DuckDB's message.
        message: String,
    },
    /// The text given to [`Analytics::query_sql`] is not one query.
    #[error("not a single read-only query ({reason}): {sql}")]
    NotAQuery {
        /// The text given.
        sql: String,
        /// Why it was refused.
        reason: String,
    },
    /// The query reached for something outside the store's own snapshot files (another
    /// file, a directory listing, a URL, a database to attach) or a setting; the message
    /// is DuckDB's.
    #[error("refused: the query reaches outside the store ({message}): {sql}")]
    Denied {
        /// The statement (as sent, after wrapping).
        sql: String,
        /// DuckDB's message.
        message: String,
    },
    /// The query needed more memory than the handle's limit (and spilling was off or
    /// not enough).
    #[error("the query needs more than the memory limit of {limit_bytes} bytes ({message}): {sql}")]
    OutOfMemory {
        /// The statement (as sent, after wrapping).
        sql: String,
        /// The limit ([`AnalyticsOptions::memory_limit_bytes`]).
        limit_bytes: u64,
        /// DuckDB's message.
        message: String,
    },
    /// The query ran past the handle's time limit and was interrupted.
    #[error("the query ran past its time limit of {limit:?} and was stopped: {sql}")]
    Timeout {
        /// The statement (as sent, after wrapping).
        sql: String,
        /// The limit ([`AnalyticsOptions::timeout`]).
        limit: std::time::Duration,
    },
    /// The result held more than the handle's bound once out of DuckDB.
    #[error("the result holds more than {limit_bytes} bytes, the bound for one result: {sql}")]
    ResultTooLarge {
        /// The statement (as sent, after wrapping).
        sql: String,
        /// The bound ([`AnalyticsOptions::max_result_bytes`]).
        limit_bytes: u64,
    },
    /// [`AnalyticsOptions`] that cannot be used.
    #[error("invalid analytics options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// A table or column name is not a plain identifier.
    #[error("{name:?} is not a valid identifier: {reason}")]
    InvalidIdentifier {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A result does not have the shape the report expects (a value out of range).
    #[error("unexpected result from DuckDB: {0}")]
    Result(String),
    /// The snapshot chosen for the view lacks a Parquet file (for example pruned after
    /// newer snapshots were published).
    #[error("snapshot file {} is missing or has the wrong size", path.display())]
    SnapshotFile {
        /// The file.
        path: PathBuf,
    },
}

impl AnalyticsError {
    pub(crate) fn query(sql: &str, e: &duckdb::Error) -> Self {
        AnalyticsError::Query { sql: sql.to_owned(), message: e.to_string() }
    }
}

/// Which orders an [`Analytics`] handle sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViewKind {
    /// The newest snapshot only.
    Snapshot,
    /// The newest snapshot plus every mutation applied since (the live tail).
    Fresh,
    /// The orders as they were at an earlier LSN.
    AsOf,
}

/// What an [`Analytics`] handle sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsInfo {
    /// How the view was made.
    pub kind: ViewKind,
    /// Queries see the orders after every mutation up to and including this LSN.
    pub lsn: Lsn,
    /// LSN of the snapshot read from Parquet (0: none, everything is in the tail).
    pub snapshot_lsn: Lsn,
    /// Rows in that snapshot.
    pub snapshot_rows: u64,
    /// Parquet files of that snapshot.
    pub snapshot_files: Vec<PathBuf>,
    /// Orders touched after the snapshot: their snapshot rows are hidden.
    pub touched: usize,
    /// Current rows of those orders (erased ones have none), held in DuckDB.
    pub tail_rows: usize,
}

/// A DuckDB connection over a fixed view of the orders; see the module docs.
///
/// Queries are serialised on the one connection (the handle is `Send + Sync`). The view
/// does not move: make a new handle to see later mutations. It reads its snapshot's
/// Parquet files at query time, so a handle kept across many compactions can find them
/// pruned ([`AnalyticsError::Query`] naming the file); a fresh handle reads the newest.
pub struct Analytics {
    conn: Mutex<Connection>,
    info: AnalyticsInfo,
    options: AnalyticsOptions,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics").field("info", &self.info).finish_non_exhaustive()
    }
}

/// The store's status names, in code order, as a DuckDB list literal.
fn names_list(names: impl Iterator<Item = &'static str>) -> String {
    let quoted: Vec<String> = names.map(string_literal).collect();
    format!("[{}]", quoted.join(", "))
}

impl Analytics {
    /// A view of `snapshot` (its Parquet files, read in place) with the rows of the
    /// orders in `tail.touched` replaced by `tail.rows`, at `lsn`.
    ///
    /// `tail` must be the current rows (at `lsn`) of every order a mutation touched after
    /// the snapshot; [`Tail::gather`] makes it from a state. The snapshot's Parquet files
    /// are checked for presence and size, not read: DuckDB reads them at query time, and
    /// they are the only files it may read. `options` bound its memory, threads, spilling
    /// and time per query.
    pub fn over(
        snapshot: Option<(&SnapshotStore, &SnapshotInfo)>,
        tail: Tail,
        lsn: Lsn,
        kind: ViewKind,
        options: &AnalyticsOptions,
    ) -> Result<Analytics, AnalyticsError> {
        let (snapshot_lsn, snapshot_rows, snapshot_files) = match snapshot {
            Some((store, info)) => {
                if let Some(path) = store.first_missing_parquet(info) {
                    return Err(AnalyticsError::SnapshotFile { path });
                }
                (info.lsn, info.rows, store.parquet_files(info))
            }
            None => (0, 0, Vec::new()),
        };
        // Snapshots off the local file system (the simulated disk) are read through the
        // storage and handed to DuckDB as Arrow; local ones DuckDB reads in place.
        let in_memory = match snapshot {
            Some((store, info)) if store.local_parquet_files(info).is_none() => {
                let batches = store.read_parquet_batches(info).map_err(|e| {
                    AnalyticsError::Result(format!("reading snapshot {}: {e}", info.lsn))
                })?;
                let schema = batches.first().map_or_else(OrderState::arrow_schema, |b| b.schema());
                let batch = arrow::compute::concat_batches(&schema, &batches)
                    .map_err(|e| AnalyticsError::Result(e.to_string()))?;
                Some(batch)
            }
            _ => None,
        };
        let info = AnalyticsInfo {
            kind,
            lsn,
            snapshot_lsn,
            snapshot_rows,
            snapshot_files,
            touched: tail.touched.len(),
            tail_rows: tail.rows.num_rows(),
        };
        let conn = limits::open(options)?;
        let analytics = Analytics { conn: Mutex::new(conn), info, options: options.clone() };
        analytics.create_views(tail, in_memory)?;
        Ok(analytics)
    }

    /// What the handle sees.
    pub fn info(&self) -> &AnalyticsInfo {
        &self.info
    }

    /// The handle's limits.
    pub fn options(&self) -> &AnalyticsOptions {
        &self.options
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection (none is expected) leaves DuckDB's own
        // state consistent: every statement is atomic on its side.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn execute(&self, conn: &Connection, sql: &str) -> Result<(), AnalyticsError> {
        conn.execute_batch(sql).map_err(|e| AnalyticsError::query(sql, &e))
    }

    fn create_views(
        &self,
        tail: Tail,
        snapshot_rows: Option<RecordBatch>,
    ) -> Result<(), AnalyticsError> {
        let conn = self.conn();
        let statuses = names_list(OrderStatus::ALL.iter().map(|s| s.name()));
        let methods = names_list(PaymentMethod::ALL.iter().map(|m| m.name()));
        self.execute(
            &conn,
            &format!(
                "CREATE TYPE order_status AS ENUM ({inner_s});
                 CREATE TYPE payment_method AS ENUM ({inner_m});
                 CREATE TEMP TABLE order_statuses AS
                     SELECT (i - 1)::UTINYINT AS code, s::order_status AS name
                     FROM unnest({statuses}) WITH ORDINALITY AS t(s, i);
                 CREATE TEMP TABLE payment_methods AS
                     SELECT (i - 1)::UTINYINT AS code, m::payment_method AS name
                     FROM unnest({methods}) WITH ORDINALITY AS t(m, i);",
                inner_s = &statuses[1..statuses.len() - 1],
                inner_m = &methods[1..methods.len() - 1],
            ),
        )?;

        let touched_any = !tail.touched.is_empty();
        let ids = UInt64Array::from(tail.touched);
        let ids_schema =
            Arc::new(Schema::new(vec![Field::new("order_id", DataType::UInt64, false)]));
        let ids = RecordBatch::try_new(ids_schema, vec![Arc::new(ids)])
            .map_err(|e| AnalyticsError::Result(e.to_string()))?;
        tables::load(&conn, "touched", ids)?;
        tables::load(&conn, "tail", tail.rows)?;

        let reads_files = snapshot_rows.is_none();
        let snapshot = if let Some(rows) = snapshot_rows {
            tables::load(&conn, "snapshot_rows", rows)?;
            "SELECT * FROM snapshot_rows".to_owned()
        } else if self.info.snapshot_files.is_empty() {
            // No snapshot: an empty relation with the tail's columns.
            "SELECT * FROM tail WHERE false".to_owned()
        } else {
            let files: Vec<String> = self
                .info
                .snapshot_files
                .iter()
                .map(|p| string_literal(&p.to_string_lossy()))
                .collect();
            format!("SELECT * FROM read_parquet([{}], hive_partitioning = false)", files.join(", "))
        };
        self.execute(&conn, &format!("CREATE TEMP VIEW snapshot_orders AS {snapshot};"))?;
        // The snapshot's rows of the touched orders, found once here so that reports can
        // subtract them instead of anti-joining the whole snapshot on every query.
        let stale = if touched_any {
            "SELECT s.* FROM snapshot_orders AS s SEMI JOIN touched AS t ON s.order_id = t.order_id"
        } else {
            "SELECT * FROM snapshot_orders WHERE false"
        };
        self.execute(&conn, &format!("CREATE TEMP TABLE stale AS {stale};"))?;
        let raw = if touched_any {
            "SELECT s.* FROM snapshot_orders AS s ANTI JOIN touched AS t ON s.order_id = t.order_id
             UNION ALL BY NAME SELECT * FROM tail"
        } else {
            "SELECT * FROM snapshot_orders UNION ALL BY NAME SELECT * FROM tail"
        };
        self.execute(
            &conn,
            &format!(
                "CREATE TEMP VIEW orders_raw AS {raw};
                 CREATE TEMP VIEW orders AS SELECT
                     order_id, customer_id, product_id, quantity, unit_price, total_amount,
                     ({statuses})[status + 1]::order_status AS status,
                     ({methods})[payment_method + 1]::payment_method AS payment_method,
                     order_timestamp, shipping_address_hash, version
                 FROM orders_raw;"
            ),
        )?;
        // The only files DuckDB may open are the ones its views read, if it reads any.
        let allowed = if reads_files { self.info.snapshot_files.as_slice() } else { &[] };
        limits::seal(&conn, allowed)
    }

    /// Runs one read-only query and returns every result batch (at least one: a query
    /// with no rows returns one empty batch carrying the result's schema).
    ///
    /// The text must be a single query expression (`SELECT`, `WITH ...`, `FROM ...`,
    /// `VALUES`, `DESCRIBE`, `SUMMARIZE`, ...): any other statement (`COPY`, `ATTACH`,
    /// `INSERT`, `CREATE`, `SET`, `INSTALL`, ...) and a `;` before the end are refused
    /// ([`AnalyticsError::NotAQuery`]), and the query runs as `SELECT * FROM (<query>)`,
    /// where only a query expression parses. A query reaching for a file other than the
    /// snapshot's, or for a URL, is [`AnalyticsError::Denied`]; one past the memory limit
    /// [`AnalyticsError::OutOfMemory`]; one past the time limit
    /// [`AnalyticsError::Timeout`].
    ///
    /// Every DuckDB type comes back: a column of a type Arrow cannot carry faithfully
    /// (`VARIANT`, `TIMETZ`, `UHUGEINT`, `BIT`, `BIGNUM`, `GEOMETRY`, or a nested type
    /// holding one) arrives as text, its field marked with [`SHOWN_AS_TEXT`].
    pub fn query_sql(&self, sql: &str) -> Result<Vec<RecordBatch>, AnalyticsError> {
        let wrapped = guard::read_only_query(sql)?;
        let conn = self.conn();
        limits::with_timeout(&conn, &wrapped, self.options.timeout, |deadline| {
            let fetch = self.fetch(deadline);
            let fail = |e: duckdb::Error| limits::classify(&wrapped, &e, fetch.memory_limit);
            let text = display::text_columns(&conn, &wrapped, &fail)?;
            deadline.check()?;
            let sql = text.sql.as_deref().unwrap_or(&wrapped);
            let batches = limits::query_batches(&conn, sql, [], &fetch)?;
            display::mark_text_columns(batches, &text.columns)
        })
    }

    /// The handle's limits on one result.
    fn fetch<'a>(&self, deadline: &'a limits::Deadline<'a>) -> limits::Fetch<'a> {
        limits::Fetch {
            memory_limit: Some(self.options.memory_limit_bytes),
            max_result_bytes: self.options.max_result_bytes,
            deadline: Some(deadline),
        }
    }

    /// [`Analytics::query_sql`] as JSON: an array with one object per row, keyed by
    /// column name (ENUM columns as their names, timestamps in RFC 3339; see
    /// [`batches_to_json`] for every type).
    pub fn analytics_query(&self, sql: &str) -> Result<serde_json::Value, AnalyticsError> {
        batches_to_json(&self.query_sql(sql)?)
    }

    /// Runs a statement with bound parameters, under the handle's limits.
    pub(crate) fn run<P: duckdb::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> Result<Vec<RecordBatch>, AnalyticsError> {
        let conn = self.conn();
        limits::with_timeout(&conn, sql, self.options.timeout, |deadline| {
            limits::query_batches(&conn, sql, params, &self.fetch(deadline))
        })
    }
}

/// Runs `sql` with `params` on a connection of the caller's own (no limits of a handle)
/// and returns every batch (at least one, empty with the result's schema if there is no
/// row). For other crates' DuckDB tables (the DuckDB persistence backend).
pub fn query_batches<P: duckdb::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> Result<Vec<RecordBatch>, AnalyticsError> {
    limits::query_batches(conn, sql, params, &limits::Fetch::UNBOUNDED)
}
