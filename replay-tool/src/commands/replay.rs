//! `orderlog replay DIR --until-lsn N | --until-time T --out OUT`: folds the directory's
//! snapshots and log to a point and publishes that state as a snapshot (Arrow IPC +
//! Parquet, under a manifest) in OUT, a new directory outside DIR. DIR is only read.
//!
//! OUT is a snapshot directory (`MANIFEST`, `snap-<lsn>/data.arrow`, `data.parquet`)
//! written by the same publisher the compactor uses; `orderlog_snapshot::SnapshotStore`
//! reads it, and DuckDB reads its Parquet file.

use std::path::{Path, PathBuf};

use orderlog_snapshot::{ParquetCompression, SnapshotOptions, SnapshotStore};
use orderlog_store::{FoldTarget, Lsn, OfflineStore, STATE_SCHEMA_VERSION};
use serde_json::json;

use crate::error::{CliError, Result};
use crate::layout::existing_store;
use crate::output::{Out, bytes, millis, progress_bar, thousands};
use crate::timefmt::{format_ms, parse_time_ms};
use crate::{DirArg, RecoveryModeArg};

/// Parquet compression of the snapshot written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CompressionArg {
    /// No compression.
    None,
    /// Snappy.
    Snappy,
    /// Zstandard (default).
    #[default]
    Zstd,
}

impl From<CompressionArg> for ParquetCompression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => ParquetCompression::None,
            CompressionArg::Snappy => ParquetCompression::Snappy,
            CompressionArg::Zstd => ParquetCompression::Zstd,
        }
    }
}

/// Arguments of `replay`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("until").required(true).args(["until_lsn", "until_time"])))]
pub struct Args {
    #[command(flatten)]
    pub dir: DirArg,
    /// Fold every frame up to and including this LSN.
    #[arg(long, value_name = "LSN")]
    pub until_lsn: Option<Lsn>,
    /// Fold the longest log prefix with no event stamped after this time (ms since the
    /// epoch, or RFC 3339 such as 2025-01-01T12:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    pub until_time: Option<u64>,
    /// Where to write the snapshot: a new or empty directory, outside DIR.
    #[arg(long, value_name = "OUT")]
    pub out: PathBuf,
    /// Parquet compression.
    #[arg(long, value_enum, default_value_t)]
    pub compression: CompressionArg,
    /// How damage in the log is treated (as on recovery).
    #[arg(long, value_enum, default_value_t)]
    pub recovery_mode: RecoveryModeArg,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// OUT must be new or empty and must not lie inside DIR (nor DIR inside OUT).
fn check_out(dir: &Path, out: &Path) -> Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(CliError::Usage(format!("--out {} is not empty", out.display())));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CliError::io("reading", out)(e)),
    }
    let canonical_dir = dir.canonicalize().map_err(CliError::io("resolving", dir))?;
    // OUT may not exist yet: resolve its nearest existing ancestor.
    let mut probe = out.to_path_buf();
    let mut rest = Vec::new();
    let resolved = loop {
        match probe.canonicalize() {
            Ok(p) => break rest.iter().rev().fold(p, |acc: PathBuf, part| acc.join(part)),
            Err(_) => match (probe.file_name().map(ToOwned::to_owned), probe.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    probe = if parent.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        parent.to_path_buf()
                    };
                }
                _ => {
                    return Err(CliError::Usage(format!("cannot resolve --out {}", out.display())));
                }
            },
        }
    };
    if resolved.starts_with(&canonical_dir) || canonical_dir.starts_with(&resolved) {
        return Err(CliError::Usage(format!(
            "--out {} overlaps the store directory {}: replay never writes into the directory it reads",
            out.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Runs `replay`.
pub fn run(args: &Args) -> Result<()> {
    let dir = existing_store(&args.dir.dir)?;
    check_out(&dir, &args.out)?;
    let target = match (args.until_lsn, args.until_time) {
        (Some(lsn), None) => FoldTarget::Lsn(lsn),
        (None, Some(ms)) => FoldTarget::TimeMs(ms),
        _ => {
            return Err(CliError::Usage("give exactly one of --until-lsn and --until-time".into()));
        }
    };
    let offline = OfflineStore::open(&dir, args.recovery_mode.into())?;
    let started = std::time::Instant::now();
    let bar = progress_bar(offline.last_lsn()?, "frames");
    bar.set_message("folding");
    let fold = offline.fold_until_with(target, &mut |lsn| bar.set_position(lsn))?;
    bar.finish_and_clear();
    let fold_time = started.elapsed();

    let opts =
        SnapshotOptions { compression: args.compression.into(), ..SnapshotOptions::default() };
    let store = SnapshotStore::open(&args.out)?;
    let published = store.publish(&fold.state, fold.lsn, STATE_SCHEMA_VERSION, &opts)?;
    let total = started.elapsed();
    let files: Vec<(String, u64)> = published
        .info
        .files
        .iter()
        .map(|f| (store.file_path(f).display().to_string(), f.bytes))
        .collect();

    let mut out = Out::new();
    if args.json {
        out.json(&json!({
            "target": target.to_string(),
            "lsn": fold.lsn,
            "orders": fold.state.len(),
            "from_snapshot_lsn": fold.snapshot_lsn,
            "skipped_snapshots": fold.skipped.iter().map(|s| s.lsn).collect::<Vec<_>>(),
            "batches": fold.batches,
            "events": fold.events,
            "fold_ms": fold_time.as_secs_f64() * 1000.0,
            "total_ms": total.as_secs_f64() * 1000.0,
            "out": args.out.display().to_string(),
            "files": files.iter().map(|(p, b)| json!({ "path": p, "bytes": b })).collect::<Vec<_>>(),
        }))?;
        return Ok(());
    }
    let start = match fold.snapshot_lsn {
        Some(lsn) => format!("the snapshot at LSN {lsn}"),
        None => "the empty state".to_string(),
    };
    let target_text = match target {
        FoldTarget::TimeMs(ms) => format!("time {}", format_ms(ms)),
        other => other.to_string(),
    };
    out.line(format!(
        "replayed to LSN {} ({target_text}): {} orders, from {start} + {} batches / {} events in {}",
        fold.lsn,
        thousands(fold.state.len() as u64),
        thousands(fold.batches),
        thousands(fold.events),
        millis(fold_time)
    ))?;
    for skipped in &fold.skipped {
        out.line(format!("  skipped damaged {skipped}"))?;
    }
    for (path, size) in &files {
        out.line(format!("  wrote {path} ({})", bytes(*size)))?;
    }
    Ok(())
}
