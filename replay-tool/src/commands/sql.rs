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
//! must be one query expression (a statement that writes is refused by DuckDB).

use std::collections::HashSet;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use orderlog_store::analytics::{Analytics, Tail, ViewKind, batches_to_json};
use orderlog_store::{FoldTarget, Lsn, OfflineStore, StoreError};

use crate::error::{CliError, Result};
use crate::layout::existing_store;
use crate::output::{Out, progress_bar};
use crate::timefmt::parse_time_ms;
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
}

/// The analytics view of `offline` at `target` (the newest LSN if `None`).
pub fn view(offline: &OfflineStore, target: Option<FoldTarget>) -> Result<Analytics> {
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
    Ok(Analytics::over(snapshot, tail, fold.lsn, kind).map_err(StoreError::from)?)
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
    let analytics = view(&offline, target)?;
    let batches = analytics.query_sql(&args.query).map_err(StoreError::from)?;
    let mut out = Out::new();
    if args.json {
        out.line(batches_to_json(&batches).map_err(StoreError::from)?)?;
    } else if args.csv {
        for line in csv_lines(&batches)? {
            if !out.line(line)? {
                break;
            }
        }
    } else {
        for line in table_lines(&batches)? {
            if !out.line(line)? {
                break;
            }
        }
    }
    Ok(())
}

/// The column names of a result.
fn header(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .first()
        .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
        .unwrap_or_default()
}

/// Every row of `batches` as text cells (NULL as `null_text`).
fn cells(batches: &[RecordBatch], null_text: &str) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null(null_text);
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter<'_>> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| CliError::Usage(format!("cannot display the result: {e}")))?;
        for row in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(row).to_string()).collect());
        }
    }
    Ok(rows)
}

/// An aligned text table: header, rule, rows (numbers right-aligned), and a row count.
fn table_lines(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let names = header(batches);
    let numeric: Vec<bool> = batches
        .first()
        .map(|b| b.columns().iter().map(|c| c.data_type().is_numeric()).collect())
        .unwrap_or_default();
    let rows = cells(batches, "NULL")?;
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String], align_numbers: bool| {
        let parts: Vec<String> =
            row.iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((cell, &w), &num)| {
                    if num && align_numbers { format!("{cell:>w$}") } else { format!("{cell:<w$}") }
                })
                .collect();
        parts.join(" | ").trim_end().to_owned()
    };
    let mut lines = vec![line(&names, false)];
    lines.push(widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>().join("-+-"));
    for row in &rows {
        lines.push(line(row, true));
    }
    let n = rows.len();
    lines.push(format!("({n} row{})", if n == 1 { "" } else { "s" }));
    Ok(lines)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// CSV (RFC 4180): a header line, then one line per row; NULL is an empty field.
fn csv_lines(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let mut lines =
        vec![header(batches).iter().map(|n| csv_field(n)).collect::<Vec<_>>().join(",")];
    for row in cells(batches, "")? {
        lines.push(row.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
