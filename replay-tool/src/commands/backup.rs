//! Backups in object storage:
//!
//! - `orderlog backup DIR URL`: ships the store in DIR into the backup at URL once, as a
//!   new generation. Safe on a live store: it reads only what the log's checkpoints
//!   prove durable, and never writes into DIR. (A live store shipping to the same URL
//!   is then fenced: the newest generation is the one restores and replicas follow.)
//! - `orderlog verify URL`: every object the newest index names, its size, CRC-32 and
//!   frames; the log pieces contiguous; each snapshot's manifest.
//! - `orderlog restore URL OUT [--until-lsn N | --until-time T]`: a point-in-time
//!   restore into a new directory, which is then opened read-only and checked.
//!
//! URLs: `s3://bucket/prefix` (endpoint, region and credentials from `AWS_ENDPOINT`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, ...),
//! or `file:///path`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use orderlog_ship::{Shipper, Target};
use orderlog_store::replication::{RestorePoint, restore};
use orderlog_store::{Lsn, OfflineStore, RecoveryMode};
use orderlog_wal::storage::FsStorage;
use serde_json::json;

use crate::error::{CliError, Result};
use crate::layout::existing_store;
use crate::output::{Out, bytes, millis, progress_bar, thousands};
use crate::timefmt::{format_ms, parse_time_ms};

/// Arguments of `backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The store directory to back up (live or not; never written).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The backup: s3://bucket/prefix or file:///path.
    #[arg(value_name = "URL")]
    pub url: String,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `restore`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("until").required(false).args(["until_lsn", "until_time"])))]
pub struct RestoreArgs {
    /// The backup: s3://bucket/prefix or file:///path.
    #[arg(value_name = "URL")]
    pub url: String,
    /// The new store directory (must not exist, or be empty).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Restore every frame up to this LSN (cut at the end of the last whole batch).
    #[arg(long, value_name = "LSN")]
    pub until_lsn: Option<Lsn>,
    /// Restore the longest log prefix with no event stamped after this time (ms since
    /// the epoch, or RFC 3339 such as 2026-01-02T03:04:05Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    pub until_time: Option<u64>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `url` opened as a backup target (the `AWS_*` environment for S3).
pub(crate) fn target(url: &str) -> Result<Target> {
    Ok(Target::open(url, &[]).map_err(orderlog_store::StoreError::from)?)
}

/// A runtime for one command's requests.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| CliError::Io {
        what: "start a runtime",
        path: PathBuf::new(),
        source: e,
    })
}

/// `orderlog backup DIR URL`.
pub fn run_backup(args: &BackupArgs) -> Result<()> {
    let dir = existing_store(&args.dir)?;
    let started = Instant::now();
    // Only what the checkpoints prove durable: a live writer's unsynced frames may
    // still be lost, and a backup must never hold what the store may not.
    let durable =
        orderlog_wal::LogReader::open(crate::layout::wal_dir(&dir), RecoveryMode::TolerateTornTail)
            .map_err(orderlog_store::StoreError::from)?
            .checkpointed_lsn();
    let mut shipper = Shipper::new(target(&args.url)?, Arc::new(FsStorage::new(&dir)));
    let bar = progress_bar(0, "objects");
    bar.set_message("shipping");
    let round =
        runtime()?.block_on(shipper.round(durable)).map_err(orderlog_store::StoreError::from)?;
    bar.finish_and_clear();
    let mut out = Out::new();
    if args.json {
        out.json(&json!({
            "dir": dir.display().to_string(),
            "url": args.url,
            "generation": round.generation,
            "new_generation": round.new_generation,
            "index": round.index_seq,
            "shipped_lsn": round.shipped_lsn,
            "objects": round.objects,
            "bytes": round.bytes,
            "elapsed_ms": started.elapsed().as_millis() as u64,
        }))?;
    } else {
        out.line(format_args!(
            "backed up {} to {}: generation {}{}, log up to LSN {}",
            dir.display(),
            args.url,
            round.generation,
            if round.new_generation { " (new)" } else { "" },
            thousands(round.shipped_lsn)
        ))?;
        out.line(format_args!(
            "uploaded {} objects, {} in {}{}",
            thousands(round.objects),
            bytes(round.bytes),
            millis(started.elapsed()),
            if round.index_seq == 0 {
                " (nothing new)".to_owned()
            } else {
                format!("; index {}", round.index_seq)
            }
        ))?;
    }
    Ok(())
}

/// `orderlog verify URL`: exit 1 if anything is damaged.
pub fn run_verify(url: &str, json_out: bool) -> Result<()> {
    let target = target(url)?;
    let bar = progress_bar(0, "objects");
    bar.set_message("verifying");
    let report = runtime()?
        .block_on(orderlog_ship::verify::verify(&target, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        }))
        .map_err(orderlog_store::StoreError::from)?;
    bar.finish_and_clear();
    let index = &report.index;
    let ok = report.problems.is_empty();
    let mut out = Out::new();
    if json_out {
        out.json(&json!({
            "ok": ok,
            "url": url,
            "generations": report.generations.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "generation": report.generation.to_string(),
            "index": index.seq,
            "index_written_ms": index.written_ms,
            "first_lsn": report.first_lsn(),
            "shipped_lsn": index.shipped_lsn,
            "log_pieces": index.segments.len(),
            "snapshots": index.snapshots.iter().map(|s| s.lsn).collect::<Vec<_>>(),
            "objects": report.objects,
            "bytes": report.bytes,
            "problems": report.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))?;
    } else {
        out.line(format_args!(
            "{url}: {} generation(s); newest {} at index {} (written {})",
            report.generations.len(),
            report.generation,
            index.seq,
            format_ms(index.written_ms)
        ))?;
        out.line(format_args!(
            "log: {} pieces, LSN {} to {}; snapshots at LSN {}",
            index.segments.len(),
            report.first_lsn().map_or("-".to_owned(), thousands),
            thousands(index.shipped_lsn),
            if index.snapshots.is_empty() {
                "(none)".to_owned()
            } else {
                index.snapshots.iter().map(|s| thousands(s.lsn)).collect::<Vec<_>>().join(", ")
            }
        ))?;
        out.line(format_args!(
            "checked {} objects, {}",
            thousands(report.objects),
            bytes(report.bytes)
        ))?;
        for problem in &report.problems {
            out.line(format_args!("DAMAGED: {problem}"))?;
        }
        out.line(if ok { "verdict: ok" } else { "verdict: DAMAGED" })?;
    }
    if ok {
        Ok(())
    } else {
        Err(CliError::Verdict(format!("{} damaged object(s) in {url}", report.problems.len())))
    }
}

/// `orderlog restore URL OUT`.
pub fn run_restore(args: &RestoreArgs) -> Result<()> {
    let started = Instant::now();
    let point = match (args.until_lsn, args.until_time) {
        (Some(lsn), _) => RestorePoint::Lsn(lsn),
        (None, Some(ms)) => RestorePoint::TimeMs(ms),
        (None, None) => RestorePoint::Latest,
    };
    let bar = progress_bar(0, "bytes");
    bar.set_message("restoring");
    let restored = restore(&args.url, &[], &args.out, point, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let downloaded = started.elapsed();
    // The restored directory opens as a store, and holds what the backup said.
    let offline = OfflineStore::open(&args.out, RecoveryMode::Strict)?;
    let (state, lsn) = offline.fold_until(orderlog_store::FoldTarget::Lsn(restored.last_lsn))?;
    let mut out = Out::new();
    if args.json {
        out.json(&json!({
            "url": args.url,
            "out": args.out.display().to_string(),
            "generation": restored.generation.to_string(),
            "index": restored.index_seq,
            "snapshot_lsn": restored.snapshot_lsn,
            "last_lsn": lsn,
            "backup_lsn": restored.backup_lsn,
            "segments": restored.segments,
            "bytes": restored.bytes,
            "orders": state.len(),
            "elapsed_ms": started.elapsed().as_millis() as u64,
        }))?;
    } else {
        out.line(format_args!(
            "restored {} into {}: generation {}, snapshot at LSN {}, log to LSN {} (the backup holds {})",
            args.url,
            args.out.display(),
            restored.generation,
            thousands(restored.snapshot_lsn),
            thousands(lsn),
            thousands(restored.backup_lsn)
        ))?;
        out.line(format_args!(
            "{} orders; {} downloaded and checked in {}, opened in {}",
            thousands(state.len() as u64),
            bytes(restored.bytes),
            millis(downloaded),
            millis(started.elapsed() - downloaded)
        ))?;
    }
    Ok(())
}
