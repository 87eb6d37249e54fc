//! What one analytics handle's DuckDB may reach and use: the store's own snapshot files
//! and nothing else on the host, a memory limit, a number of threads, a spilling policy,
//! a time limit per query and a bound on what a result may hold.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use arrow::array::{Array, RecordBatch};
use duckdb::{Config, Connection};

use super::AnalyticsError;
use super::guard::string_literal;
pub use crate::analytics_options::{
    AnalyticsOptions, DEFAULT_MAX_RESULT_BYTES, DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_TIMEOUT,
    MEMORY_LIMIT_MAX, MEMORY_LIMIT_MIN, Spill, THREADS_MAX,
};

/// Opens an in-memory DuckDB with `options`' limits and no extension loading or
/// installing. File access stays open until [`seal`], so the store can set up its views.
pub(crate) fn open(options: &AnalyticsOptions) -> Result<Connection, AnalyticsError> {
    options.validate().map_err(|reason| AnalyticsError::InvalidOptions { reason })?;
    let fail = |e: duckdb::Error| AnalyticsError::query("open DuckDB", &e);
    let (temp_directory, spill_bytes) = match &options.spill {
        Spill::Never => (String::new(), 0),
        Spill::To { dir, max_bytes } => (path_text(dir), *max_bytes),
    };
    let threads = i64::try_from(options.threads).unwrap_or(i64::MAX);
    let config = Config::default()
        .max_memory(&format!("{}B", options.memory_limit_bytes))
        .and_then(|c| c.threads(threads))
        .and_then(|c| c.with("temp_directory", &temp_directory))
        .and_then(|c| c.with("max_temp_directory_size", format!("{spill_bytes}B")))
        .and_then(|c| c.enable_autoload_extension(false))
        .and_then(|c| c.with("autoinstall_known_extensions", "false"))
        .and_then(|c| c.with("allow_community_extensions", "false"))
        .map_err(fail)?;
    Connection::open_in_memory_with_flags(config).map_err(fail)
}

/// Closes the handle's DuckDB to everything but `allowed` (the files its views read, if
/// DuckDB reads any): external access off (no other file, no URL, no `ATTACH`, no `COPY`,
/// no extension), then the configuration locked so no statement can undo it.
pub(crate) fn seal(conn: &Connection, allowed: &[PathBuf]) -> Result<(), AnalyticsError> {
    let paths: Vec<String> = allowed.iter().map(|p| string_literal(&path_text(p))).collect();
    let sql = format!(
        "SET allowed_paths = [{}];
         SET enable_external_access = false;
         SET lock_configuration = true;",
        paths.join(", ")
    );
    conn.execute_batch(&sql).map_err(|e| AnalyticsError::query(&sql, &e))
}

/// A path as the views name it (DuckDB compares the text).
pub(crate) fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Whether a query's time is up, for the steps of one call between DuckDB statements.
pub(crate) struct Deadline<'a> {
    fired: &'a AtomicBool,
    sql: &'a str,
    limit: Duration,
}

impl Deadline<'_> {
    /// [`AnalyticsError::Timeout`] once the time is up.
    pub(crate) fn check(&self) -> Result<(), AnalyticsError> {
        if self.fired.load(Ordering::SeqCst) {
            return Err(AnalyticsError::Timeout { sql: self.sql.to_owned(), limit: self.limit });
        }
        Ok(())
    }
}

/// How often the watchdog interrupts DuckDB again once the time is up: DuckDB clears the
/// interrupt when the next statement starts, and planning (binding, folding constants)
/// does not look at it, so one interrupt can be lost.
const INTERRUPT_AGAIN: Duration = Duration::from_millis(5);

/// Runs `run` on `conn` under `timeout`: past it, a watchdog thread interrupts DuckDB,
/// again every few milliseconds until `run` returns, and the result (whatever came back)
/// is [`AnalyticsError::Timeout`]; `run` can ask its [`Deadline`] between statements. The
/// watchdog is joined before this returns, whether the query finished, failed or was
/// interrupted. DuckDB looks at the interrupt while it executes and fetches, not while it
/// plans: a query whose planning alone outlasts the limit returns when planning ends.
pub(crate) fn with_timeout<T>(
    conn: &Connection,
    sql: &str,
    timeout: Option<Duration>,
    run: impl FnOnce(&Deadline<'_>) -> Result<T, AnalyticsError>,
) -> Result<T, AnalyticsError> {
    let fired = AtomicBool::new(false);
    let Some(limit) = timeout else {
        return run(&Deadline { fired: &fired, sql, limit: Duration::MAX });
    };
    let interrupt = conn.interrupt_handle();
    let (done, finished) = mpsc::channel::<()>();
    let result = std::thread::scope(|scope| {
        let (fired, interrupt) = (&fired, &interrupt);
        let watchdog = std::thread::Builder::new().name(WATCHDOG_THREAD.into()).spawn_scoped(
            scope,
            move || {
                // Either the query ends first (the sender is dropped: `Disconnected`) or
                // the limit passes; then interrupt until it ends.
                let mut wait = limit;
                while finished.recv_timeout(wait) == Err(mpsc::RecvTimeoutError::Timeout) {
                    fired.store(true, Ordering::SeqCst);
                    interrupt.interrupt();
                    wait = INTERRUPT_AGAIN;
                }
            },
        );
        if let Err(e) = watchdog {
            return Err(AnalyticsError::Result(format!("cannot start the query's timer: {e}")));
        }
        let result = run(&Deadline { fired, sql, limit });
        drop(done);
        result
    });
    if fired.load(Ordering::SeqCst) {
        return Err(AnalyticsError::Timeout { sql: sql.to_owned(), limit });
    }
    result
}

/// The name of the thread that times a query (at most 15 bytes, so Linux shows it
/// whole).
pub const WATCHDOG_THREAD: &str = "ol-sql-timeout";

/// Sorts a DuckDB failure by the kind DuckDB names first in its message: a refused file
/// or setting ([`AnalyticsError::Denied`]), the memory limit
/// ([`AnalyticsError::OutOfMemory`]), or any other failure ([`AnalyticsError::Query`]).
/// (A query's own text, `error('Permission Error')`, comes back as an `Invalid Input
/// Error` and stays a query error.) `memory_limit` is the handle's, if it set one.
pub(crate) fn classify(sql: &str, e: &duckdb::Error, memory_limit: Option<u64>) -> AnalyticsError {
    let message = e.to_string();
    if message.starts_with("Permission Error") {
        AnalyticsError::Denied { sql: sql.to_owned(), message }
    } else if let (true, Some(limit_bytes)) =
        (message.starts_with("Out of Memory Error"), memory_limit)
    {
        AnalyticsError::OutOfMemory { sql: sql.to_owned(), limit_bytes, message }
    } else {
        AnalyticsError::Query { sql: sql.to_owned(), message }
    }
}

/// What [`query_batches`] may take and how it reports failures.
pub(crate) struct Fetch<'a> {
    /// The handle's memory limit, if it has one (for [`classify`]).
    pub(crate) memory_limit: Option<u64>,
    /// The most the result's Arrow buffers may hold.
    pub(crate) max_result_bytes: u64,
    /// Checked between chunks.
    pub(crate) deadline: Option<&'a Deadline<'a>>,
}

impl Fetch<'_> {
    /// No limits: the caller's own connection.
    pub(crate) const UNBOUNDED: Fetch<'static> =
        Fetch { memory_limit: None, max_result_bytes: u64::MAX, deadline: None };
}

/// Runs `sql` with `params` on `conn` and returns every batch (at least one, empty with
/// the result's schema if there is no row). The result is streamed out of DuckDB a chunk
/// at a time, and stops with [`AnalyticsError::ResultTooLarge`] once it holds more than
/// `fetch.max_result_bytes`; a failure fetching or converting a chunk is an error, not a
/// panic.
pub(crate) fn query_batches<P: duckdb::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    fetch: &Fetch<'_>,
) -> Result<Vec<RecordBatch>, AnalyticsError> {
    let fail = |e: duckdb::Error| classify(sql, &e, fetch.memory_limit);
    let mut stmt = conn.prepare(sql).map_err(fail)?;
    let schema = stmt.stream_arrow(params).map_err(fail)?.get_schema();
    let mut batches = Vec::new();
    let mut bytes = 0u64;
    while let Some(chunk) = stmt.step().map_err(fail)? {
        // A chunk is a struct of columns with no nulls of its own; arrow's conversion
        // would panic on one that had.
        if chunk.null_count() != 0 {
            return Err(AnalyticsError::Result(format!(
                "DuckDB returned a chunk with null rows for `{sql}`"
            )));
        }
        let batch = RecordBatch::from(&chunk);
        bytes += batch.get_array_memory_size() as u64;
        if bytes > fetch.max_result_bytes {
            return Err(AnalyticsError::ResultTooLarge {
                sql: sql.to_owned(),
                limit_bytes: fetch.max_result_bytes,
            });
        }
        if let Some(deadline) = fetch.deadline {
            deadline.check()?;
        }
        batches.push(batch);
    }
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}
