//! `orderlog sql DIR "SELECT ..."`: one read-only DuckDB query over the orders a store
//! directory holds, offline.
//!
//! The view is the store's fresh view rebuilt from the files: the newest snapshot that
//! verifies (its Parquet files, read in place by DuckDB) with the orders touched by the
//! log after it replaced by their folded rows. With `--as-of-lsn N` / `--as-of-time T`
//! the fold starts from the newest snapshot at or below the target and stops there, so
//! the query sees the orders as they were then. Tables and columns are those of
//! `orderlog_store::analytics` (`orders`, `orders_raw`, `order_statuses`,
//! `payment_methods`). DIR is only read: no lock, no file written, and the query itself
//! must be one query expression (any other statement is refused). DuckDB may read the
//! snapshot's Parquet files and nothing else: no other file, no URL, no extension.
//! `--memory-limit`, `--threads`, `--timeout` and `--spill-dir` bound what it may use.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use orderlog_store::analytics::{
    Analytics, AnalyticsOptions, DEFAULT_MEMORY_LIMIT_BYTES, Spill, Tail, ViewKind,
    batches_to_json, text_column_notes, write_csv, write_table,
};
use orderlog_store::{FoldTarget, Lsn, OfflineStore, StoreError};

use crate::error::{CliError, Result};
use crate::layout::existing_store;
use crate::output::{Out, progress_bar};
use crate::timefmt::parse_time_ms;
use crate::units::{parse_duration, parse_size};
use crate::{DirArg, RecoveryModeArg};

/// Arguments of `sql`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("format").args(["json", "csv"])))]
#[command(group(clap::ArgGroup::new("as_of").args(["as_of_lsn", "as_of_time"])))]
pub struct Args {
    #[command(flatten)]
    pub dir: DirArg,
    /// One query (SELECT, WITH, FROM-first, VALUES, DESCRIBE, SUMMARIZE) over the views
    /// `orders` (status and payment_method as ENUM names), `orders_raw` (as codes),
    /// `order_statuses` and `payment_methods`.
    #[arg(value_name = "QUERY")]
    pub query: String,
    /// Query the orders as they were right after this LSN.
    #[arg(long, value_name = "LSN")]
    pub as_of_lsn: Option<Lsn>,
    /// Query the orders as they were at this time: the longest log prefix with no event
    /// stamped after it (ms since the epoch, or RFC 3339 such as 2025-01-01T12:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    pub as_of_time: Option<u64>,
    /// A JSON array of row objects instead of a table.
    #[arg(long)]
    pub json: bool,
    /// CSV with a header line instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// How damage in the log is treated (as on recovery).
    #[arg(long, value_enum, default_value_t)]
    pub recovery_mode: RecoveryModeArg,
    /// DuckDB's memory limit (bytes, or with a unit: 512MiB, 2GB, 4GiB); a query that
    /// needs more fails, unless --spill-dir lets it spill [default: 1GiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Threads the query may use [default: half the cores, at least 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Option<u32>,
    /// Stop the query after this long (such as 30s, 2m, 1500ms) and fail [default: no limit].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Let a query past the memory limit spill temporary files into DIR (DuckDB removes
    /// them); by default nothing is written anywhere.
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// The most the files in --spill-dir may hold at once.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "10GiB", requires = "spill_dir")]
    pub spill_limit: u64,
    /// The most a result may hold once out of DuckDB (its Arrow buffers); past it the
    /// query stops with an error (use LIMIT, or aggregate) [default: 1GiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_result: Option<u64>,
}

impl Args {
    /// The limits the flags ask for.
    pub fn analytics_options(&self) -> AnalyticsOptions {
        let defaults = AnalyticsOptions::default();
        AnalyticsOptions {
            memory_limit_bytes: self.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT_BYTES),
            threads: self.threads.map_or(defaults.threads, |n| n as usize),
            spill: match &self.spill_dir {
                None => Spill::Never,
                Some(dir) => Spill::To { dir: dir.clone(), max_bytes: self.spill_limit },
            },
            // The command runs one query for a person at a terminal: no time limit unless
            // asked, and results up to 1 GiB (printed a row at a time).
            timeout: self.timeout,
            max_result_bytes: self.max_result.unwrap_or(1 << 30),
        }
    }
}

/// The analytics view of `offline` at `target` (the newest LSN if `None`), within
/// `options`' limits.
pub fn view(
    offline: &OfflineStore,
    target: Option<FoldTarget>,
    options: &AnalyticsOptions,
) -> Result<Analytics> {
    let (target, kind) = match target {
        Some(t) => (t, ViewKind::AsOf),
        None => (FoldTarget::Lsn(offline.last_lsn()?), ViewKind::Fresh),
    };
    let bar = progress_bar(offline.last_lsn()?, "frames");
    bar.set_message("folding");
    let mut touched: HashSet<u64> = HashSet::new();
    let fold = offline.fold_until_observing(target, &mut |lsn, batch| {
        touched.extend(batch.iter().map(|e| e.order_id));
        bar.set_position(lsn);
    })?;
    bar.finish_and_clear();
    let snapshot = match fold.snapshot_lsn {
        Some(lsn) => offline.snapshot_list()?.into_iter().find(|s| s.lsn == lsn),
        None => None,
    };
    let tail = Tail::gather(&fold.state, touched).map_err(StoreError::from)?;
    drop(fold.state);
    let snapshot = snapshot.as_ref().map(|info| (offline.snapshots(), info));
    Ok(Analytics::over(snapshot, tail, fold.lsn, kind, options).map_err(StoreError::from)?)
}

/// Runs `sql`.
pub fn run(args: &Args) -> Result<()> {
    let dir = existing_store(&args.dir.dir)?;
    let offline = OfflineStore::open(&dir, args.recovery_mode.into())?;
    let target = match (args.as_of_lsn, args.as_of_time) {
        (Some(lsn), None) => Some(FoldTarget::Lsn(lsn)),
        (None, Some(ms)) => Some(FoldTarget::TimeMs(ms)),
        (None, None) => None,
        _ => {
            return Err(CliError::Usage("give at most one of --as-of-lsn and --as-of-time".into()));
        }
    };
    let analytics = view(&offline, target, &args.analytics_options())?;
    let batches = analytics.query_sql(&args.query).map_err(StoreError::from)?;
    for note in text_column_notes(&batches) {
        eprintln!("note: {note}");
    }
    let mut out = Out::new();
    if args.json {
        // One JSON document: the rows as values, whole (see --max-result).
        out.line(batches_to_json(&batches).map_err(StoreError::from)?)?;
        return Ok(());
    }
    // Tables and CSV go out a line at a time; a closed pipe stops them, a write error is
    // kept and returned.
    let mut failed = None;
    let mut sink = |line: String| match out.line(line) {
        Ok(open) => open,
        Err(e) => {
            failed = Some(e);
            false
        }
    };
    if args.csv {
        write_csv(&batches, &mut sink).map_err(StoreError::from)?;
    } else {
        write_table(&batches, &mut sink).map_err(StoreError::from)?;
    }
    failed.map_or(Ok(()), Err)
}
