//! `orderlog stats DIR`: what a store directory holds — the log's LSN range, segments and
//! bytes, events by type and their time range, the snapshots, and the orders by status
//! after replaying everything. Read-only.

use std::collections::BTreeMap;

use orderlog_store::{FoldTarget, OfflineStore, OrderStatus};
use serde_json::{Value, json};

use crate::error::Result;
use crate::layout::{existing_store, live_writer};
use crate::output::{Out, bytes, progress_bar, thousands};
use crate::timefmt::format_ms;
use crate::{DirArg, RecoveryModeArg};

/// Arguments of `stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dir: DirArg,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// How damage in the log is treated (as on recovery).
    #[arg(long, value_enum, default_value_t)]
    pub recovery_mode: RecoveryModeArg,
    /// Also show how far the backup at this URL (s3://bucket/prefix or file:///path)
    /// trails the log: LSNs, bytes and seconds (its newest index against the log).
    #[arg(long, value_name = "URL")]
    pub backup: Option<String>,
}

/// The backup's position against the log ([`Args::backup`]).
struct BackupLag {
    url: String,
    generation: String,
    shipped_lsn: u64,
    index_written_ms: u64,
    lag_lsns: u64,
    lag_bytes: u64,
    lag_seconds: f64,
}

fn backup_lag(url: &str, log: &orderlog_wal::LogReader) -> Result<BackupLag> {
    let target = crate::commands::backup::target(url)?;
    let runtime = crate::commands::backup::runtime()?;
    let newest = runtime
        .block_on(orderlog_ship::shipper::newest_index(&target))
        .map_err(orderlog_store::StoreError::from)?;
    let Some((generation, index)) = newest else {
        return Err(orderlog_store::StoreError::from(orderlog_ship::ShipError::NoBackup {
            url: url.to_owned(),
        })
        .into());
    };
    let shipped = index.shipped_lsn;
    let lag_lsns = log.last_lsn().saturating_sub(shipped);
    // Frames after the shipped LSN, by the share of each segment's frames they are.
    let lag_bytes = log
        .segments()
        .iter()
        .filter(|s| s.frames > 0 && s.base_lsn + s.frames - 1 > shipped)
        .map(|s| {
            let after = (s.base_lsn + s.frames - 1 - shipped).min(s.frames);
            s.frame_bytes * after / s.frames
        })
        .sum();
    let now = orderlog_ship::shipper::now_ms();
    Ok(BackupLag {
        url: url.to_owned(),
        generation: generation.to_string(),
        shipped_lsn: shipped,
        index_written_ms: index.written_ms,
        lag_lsns,
        lag_bytes,
        lag_seconds: if lag_lsns == 0 {
            0.0
        } else {
            now.saturating_sub(index.written_ms) as f64 / 1000.0
        },
    })
}

/// Events in the retained log, by type, and their time range.
#[derive(Default)]
struct EventCounts {
    frames: u64,
    events: u64,
    by_kind: BTreeMap<&'static str, u64>,
    first_ms: Option<u64>,
    last_ms: Option<u64>,
}

fn count_events(offline: &OfflineStore) -> Result<EventCounts> {
    let log = offline.log();
    let mut counts = EventCounts::default();
    for kind in ["create", "set_status", "amend", "change_payment", "cancel", "erase"] {
        counts.by_kind.insert(kind, 0);
    }
    let bar = progress_bar(log.last_lsn().saturating_sub(log.first_lsn()) + 1, "frames");
    bar.set_message("reading the log");
    for item in offline.batches_from(log.first_lsn())? {
        let (_, batch) = item?;
        counts.frames += 1;
        bar.inc(1);
        for e in &batch {
            counts.events += 1;
            *counts.by_kind.entry(e.kind_name()).or_default() += 1;
            counts.first_ms =
                Some(counts.first_ms.map_or(e.timestamp_ms, |t| t.min(e.timestamp_ms)));
            counts.last_ms = Some(counts.last_ms.map_or(e.timestamp_ms, |t| t.max(e.timestamp_ms)));
        }
    }
    bar.finish_and_clear();
    Ok(counts)
}

/// Runs `stats`.
pub fn run(args: &Args) -> Result<()> {
    let dir = existing_store(&args.dir.dir)?;
    let offline = OfflineStore::open(&dir, args.recovery_mode.into())?;
    let log = offline.log();
    let counts = count_events(&offline)?;
    let snapshots = offline.snapshot_list()?;
    let last = offline.last_lsn()?;
    let fold = offline.fold_until_with(FoldTarget::Lsn(last), &mut |_| {})?;
    let mut by_status: BTreeMap<&'static str, u64> =
        OrderStatus::ALL.iter().map(|s| (s.name(), 0)).collect();
    for status in fold.state.orders().statuses() {
        *by_status.entry(status.name()).or_default() += 1;
    }
    let frame_bytes: u64 = log.segments().iter().map(|s| s.frame_bytes).sum();
    let file_bytes: u64 = log.segments().iter().map(|s| s.file_bytes).sum();
    // Segments wholly below the newest snapshot: kept so that an older snapshot can
    // stand in for it (and for point-in-time replay), at this cost on disk.
    let newest = snapshots.first().map_or(0, |s| s.lsn);
    let segments = log.segments();
    let below = segments
        .windows(2)
        .take_while(|pair| pair[1].base_lsn <= newest.saturating_add(1))
        .map(|pair| &pair[0])
        .collect::<Vec<_>>();
    let below_bytes: u64 = below.iter().map(|s| s.file_bytes).sum();
    let live = live_writer(&dir);
    let (consumers, damaged_consumers) = crate::commands::consumers::consumer_lags(&offline)?;
    let truncation = log.report().truncated.as_ref();
    let backup = args.backup.as_deref().map(|url| backup_lag(url, log)).transpose()?;

    let mut out = Out::new();
    if args.json {
        out.json(&json!({
            "dir": dir.display().to_string(),
            "live_writer_pid": live.flatten(),
            "log": {
                "first_lsn": log.first_lsn(),
                "last_lsn": log.last_lsn(),
                "checkpointed_lsn": log.checkpointed_lsn(),
                "segments": log.segments().len(),
                "frame_bytes": frame_bytes,
                "file_bytes": file_bytes,
                "segments_below_newest_snapshot": below.len(),
                "file_bytes_below_newest_snapshot": below_bytes,
                "frames": counts.frames,
                "events": counts.events,
                "events_by_kind": counts.by_kind,
                "first_event_ms": counts.first_ms,
                "last_event_ms": counts.last_ms,
                "unfinished_tail": truncation.map(|t| json!({
                    "file": t.file.display().to_string(), "offset": t.offset, "bytes": t.bytes,
                })),
            },
            "snapshots": snapshots.iter().map(|s| json!({
                "lsn": s.lsn, "rows": s.rows, "bytes": s.total_bytes(),
                "created_unix_ms": s.created_unix_ms, "compression": s.compression.to_string(),
            })).collect::<Vec<Value>>(),
            "consumers": consumers.iter().map(crate::commands::consumers::consumer_json).collect::<Vec<Value>>(),
            "damaged_consumer_files": damaged_consumers,
            "backup": backup.as_ref().map(|b| json!({
                "url": b.url, "generation": b.generation, "shipped_lsn": b.shipped_lsn,
                "index_written_ms": b.index_written_ms, "lag_lsns": b.lag_lsns,
                "lag_bytes": b.lag_bytes, "lag_seconds": b.lag_seconds,
            })),
            "state": {
                "lsn": fold.lsn,
                "orders": fold.state.len(),
                "orders_by_status": by_status,
                "from_snapshot_lsn": fold.snapshot_lsn,
            },
        }))?;
        return Ok(());
    }
    let mut lines = vec![format!("store {}", dir.display())];
    if let Some(pid) = live {
        let who = pid.map(|p| format!(" (process {p})")).unwrap_or_default();
        lines.push(format!("  live writer{who}: figures are as of this read"));
    }
    lines.push(format!(
        "log: LSNs {}..={} ({} frames, checkpointed to {}), {} segments, {} of frames in {} of files",
        log.first_lsn(),
        log.last_lsn(),
        thousands(counts.frames),
        log.checkpointed_lsn(),
        log.segments().len(),
        bytes(frame_bytes),
        bytes(file_bytes)
    ));
    if !below.is_empty() {
        lines.push(format!(
            "  kept below the newest snapshot: {} segments, {} (an older snapshot can stand in for it)",
            below.len(),
            bytes(below_bytes)
        ));
    }
    if let Some(t) = truncation {
        lines.push(format!(
            "  unfinished tail: {} bytes at {} offset {} (recovery cuts it)",
            t.bytes,
            t.file.display(),
            t.offset
        ));
    }
    let kinds: Vec<String> =
        counts.by_kind.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect();
    lines.push(format!("events: {} ({})", thousands(counts.events), kinds.join(", ")));
    if let (Some(a), Some(b)) = (counts.first_ms, counts.last_ms) {
        lines.push(format!("  stamped {} .. {}", format_ms(a), format_ms(b)));
    }
    if snapshots.is_empty() {
        lines.push("snapshots: none".to_string());
    }
    for s in &snapshots {
        lines.push(format!(
            "snapshot: LSN {}, {} orders, {} ({}), created {}",
            s.lsn,
            thousands(s.rows),
            bytes(s.total_bytes()),
            s.compression,
            format_ms(s.created_unix_ms)
        ));
    }
    for c in &consumers {
        lines.push(format!("consumer {}", crate::commands::consumers::consumer_text(c)));
    }
    for error in &damaged_consumers {
        lines.push(format!("consumer file DAMAGED: {error}"));
    }
    if let Some(b) = &backup {
        lines.push(format!(
            "backup {}: generation {}, shipped to LSN {} ({} behind the log, about {}, {:.1} s; index written {})",
            b.url,
            b.generation,
            thousands(b.shipped_lsn),
            thousands(b.lag_lsns),
            bytes(b.lag_bytes),
            b.lag_seconds,
            format_ms(b.index_written_ms)
        ));
    }
    let statuses: Vec<String> =
        by_status.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect();
    lines.push(format!(
        "orders at LSN {}: {} ({})",
        fold.lsn,
        thousands(fold.state.len() as u64),
        statuses.join(", ")
    ));
    for line in lines {
        if !out.line(line)? {
            break;
        }
    }
    Ok(())
}
