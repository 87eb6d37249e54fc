//! `orderlog compact DIR`: opens the store (recovering it, as any open does), runs one
//! compaction and closes it. Writes; refuses a directory a live store holds.

use orderlog_store::{CompactionOptions, OrderStore, StoreOptions};
use serde_json::json;

use crate::DirArg;
use crate::error::Result;
use crate::layout::{existing_store, locked_to_cli, refuse_if_live};
use crate::output::{Out, millis, thousands};

/// Arguments of `compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dir: DirArg,
    /// Sealed log segments to keep below the new snapshot (for point-in-time replay).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retain_segments: usize,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `compact`.
pub fn run(args: &Args) -> Result<()> {
    let dir = existing_store(&args.dir.dir)?;
    refuse_if_live(&dir, "compact")?;
    // Check the log read-only first: opening the store on a damaged log would fail too,
    // but only after creating its lock file.
    orderlog_wal::LogReader::open(crate::layout::wal_dir(&dir), Default::default())?;
    let options = StoreOptions {
        compaction: CompactionOptions {
            background: false,
            retain_segments: args.retain_segments,
            ..CompactionOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = OrderStore::open(&dir, options).map_err(|e| locked_to_cli(&dir, "compact", e))?;
    let opened = store.open_report().clone();
    let report = store.compact()?;
    store.close()?;
    let mut out = Out::new();
    if args.json {
        out.json(&json!({
            "recovery": {
                "snapshot_lsn": opened.snapshot_lsn,
                "batches_replayed": opened.batches_replayed,
                "tail_cut_bytes": opened.wal.truncated.as_ref().map(|t| t.bytes),
                "elapsed_ms": opened.elapsed.as_secs_f64() * 1000.0,
            },
            "from_lsn": report.from_lsn,
            "to_lsn": report.to_lsn,
            "batches": report.batches,
            "orders": report.orders,
            "segments_removed": report.segments_removed,
            "elapsed_ms": report.elapsed.as_secs_f64() * 1000.0,
        }))?;
        return Ok(());
    }
    if let Some(t) = &opened.wal.truncated {
        out.line(format!(
            "recovery cut an unfinished tail: {} bytes at {} offset {}",
            t.bytes,
            t.file.display(),
            t.offset
        ))?;
    }
    if report.to_lsn == report.from_lsn {
        out.line(format!(
            "nothing to compact: the snapshot is at LSN {} and no sealed segment lies after it ({} orders)",
            report.to_lsn,
            thousands(report.orders)
        ))?;
    } else {
        out.line(format!(
            "compacted LSNs {}..={} into a snapshot at LSN {}: {} batches folded, {} orders, {} segments removed, in {}",
            report.from_lsn + 1,
            report.to_lsn,
            report.to_lsn,
            thousands(report.batches),
            thousands(report.orders),
            report.segments_removed,
            millis(report.elapsed)
        ))?;
    }
    Ok(())
}
