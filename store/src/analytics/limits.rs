//! What one analytics handle's DuckDB may reach and use: the store's own snapshot files
//! and nothing else on the host, a memory limit, a number of threads, a spilling policy,
//! and a time limit per query.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use arrow::array::RecordBatch;
use duckdb::{Config, Connection};

use super::AnalyticsError;
use super::guard::string_literal;
pub use crate::analytics_options::{
    AnalyticsOptions, DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_TIMEOUT, MEMORY_LIMIT_MIN, Spill,
};

/// Opens an in-memory DuckDB with `options`' limits and no extension loading or
/// installing. File access stays open until [`seal`], so the store can set up its views.
pub(crate) fn open(options: &AnalyticsOptions) -> Result<Connection, AnalyticsError> {
    options.validate().map_err(|reason| AnalyticsError::InvalidOptions { reason })?;
    let fail = |e: duckdb::Error| AnalyticsError::query("open DuckDB", &e);
    let temp_directory = match &options.spill {
        Spill::Never => String::new(),
        Spill::To(dir) => dir.to_string_lossy().into_owned(),
    };
    let threads = i64::try_from(options.threads).unwrap_or(i64::MAX);
    let config = Config::default()
        .max_memory(&format!("{}B", options.memory_limit_bytes))
        .and_then(|c| c.threads(threads))
        .and_then(|c| c.with("temp_directory", &temp_directory))
        .and_then(|c| c.enable_autoload_extension(false))
        .and_then(|c| c.with("autoinstall_known_extensions", "false"))
        .and_then(|c| c.with("allow_community_extensions", "false"))
        .map_err(fail)?;
    Connection::open_in_memory_with_flags(config).map_err(fail)
}

/// Closes the handle's DuckDB to everything but `allowed` (the snapshot files its views
/// read): external access off (no other file, no URL, no `ATTACH`, no `COPY`, no
/// extension), then the configuration locked so no statement can undo it.
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

/// Runs `run` on `conn` under `timeout`: past it, a watchdog thread interrupts DuckDB and
/// the result (whatever came back) is [`AnalyticsError::Timeout`]. The watchdog is joined
/// before this returns, whether the query finished, failed or was interrupted.
pub(crate) fn with_timeout<T>(
    conn: &Connection,
    sql: &str,
    timeout: Option<Duration>,
    run: impl FnOnce() -> Result<T, AnalyticsError>,
) -> Result<T, AnalyticsError> {
    let Some(limit) = timeout else {
        return run();
    };
    let interrupt = conn.interrupt_handle();
    let fired = AtomicBool::new(false);
    let (done, finished) = mpsc::channel::<()>();
    let result = std::thread::scope(|scope| {
        let (fired, interrupt) = (&fired, &interrupt);
        let watchdog = std::thread::Builder::new().name(WATCHDOG_THREAD.into()).spawn_scoped(
            scope,
            move || {
                // Either the query ends first (the sender is dropped: `Disconnected`) or
                // the limit passes.
                if finished.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
                    fired.store(true, Ordering::SeqCst);
                    interrupt.interrupt();
                }
            },
        );
        if let Err(e) = watchdog {
            return Err(AnalyticsError::Result(format!("cannot start the query's timer: {e}")));
        }
        let result = run();
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

/// Sorts a DuckDB failure into the error a caller can act on: a refused file or
/// setting ([`AnalyticsError::Denied`]), the memory limit
/// ([`AnalyticsError::OutOfMemory`]), or any other failure ([`AnalyticsError::Query`]).
/// `memory_limit` is the handle's, if it set one.
pub(crate) fn classify(sql: &str, e: &duckdb::Error, memory_limit: Option<u64>) -> AnalyticsError {
    let message = e.to_string();
    if message.contains("Permission Error") || message.contains("Cannot change configuration") {
        AnalyticsError::Denied { sql: sql.to_owned(), message }
    } else if let (true, Some(limit_bytes)) =
        (message.contains("Out of Memory Error"), memory_limit)
    {
        AnalyticsError::OutOfMemory { sql: sql.to_owned(), limit_bytes, message }
    } else {
        AnalyticsError::Query { sql: sql.to_owned(), message }
    }
}

/// Runs `sql` with `params` on `conn` and returns every batch (at least one, empty with
/// the result's schema if there is no row); a failure fetching or converting a chunk is
/// an error, not a panic.
pub(crate) fn query_batches<P: duckdb::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    memory_limit: Option<u64>,
) -> Result<Vec<RecordBatch>, AnalyticsError> {
    let fail = |e: duckdb::Error| classify(sql, &e, memory_limit);
    let mut stmt = conn.prepare(sql).map_err(fail)?;
    let schema = stmt.query_arrow(params).map_err(fail)?.get_schema();
    let mut batches = Vec::new();
    while let Some(chunk) = stmt.step().map_err(fail)? {
        batches.push(RecordBatch::from(&chunk));
    }
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}
