//! Recovery: validating every segment on open and deciding what damage means.
//!
//! The rules (ARCHITECTURE.md and docs/format.md say the same):
//! - Every segment but the last must be sealed (its writer synced it whole and said so in
//!   its checkpoint). Damage in a sealed segment is corruption.
//! - In the last segment, frames before the newest checkpoint's `durable_end` were synced
//!   before that checkpoint was written: damage there, or the log ending before it, is
//!   corruption. After it, only a crash can have left damage (unsynced writes dropped,
//!   torn or garbled), so a bad frame there is a torn tail: `TolerateTornTail` and
//!   `PointInTime` cut the log at the last complete group and report the cut.
//! - `Strict` reports any bad frame, and any non-zero byte after the end of the log.
//! - `PointInTime` stops at the first damage anywhere, keeps the log before it, and sets
//!   the later segments aside (renamed `*.discarded`), reporting all of it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Lsn;
use crate::error::{CorruptionKind, Result, WalError};
use crate::format::parse_segment_file_name;
use crate::options::RecoveryMode;
use crate::scan::{Damage, SegmentScan, scan_segment, written_extent};
use crate::storage::Storage;

/// Suffix of a segment that is being created; a leftover one is removed on open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// Suffix given to segments that `PointInTime` recovery set aside.
pub(crate) const DISCARDED_SUFFIX: &str = ".discarded";

/// Bytes recovery cut from the end of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The segment that was cut.
    pub file: PathBuf,
    /// Offset of the cut: the end of the last complete group kept.
    pub offset: u64,
    /// Bytes after the cut that held data (zeroed on a writable open).
    pub bytes: u64,
    /// What was found at the cut.
    pub reason: CorruptionKind,
    /// Offset of the damage itself (may lie after `offset` when a group was unfinished).
    pub damage_offset: u64,
}

/// What recovery found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The mode recovery ran in.
    pub mode: RecoveryMode,
    /// Segments validated.
    pub segments: usize,
    /// Frames found valid.
    pub frames: u64,
    /// LSN of the first frame kept (or of the next frame, if the log is empty).
    pub first_lsn: Lsn,
    /// LSN of the last frame kept (0 if the log is empty).
    pub last_lsn: Lsn,
    /// The tail cut, if any.
    pub truncated: Option<Truncation>,
    /// Segments set aside by `PointInTime` recovery (renamed `*.discarded`; a read-only
    /// recovery, which renames nothing, names them as they are).
    pub discarded_segments: Vec<PathBuf>,
    /// Half-created segment files removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// Time taken.
    pub elapsed: Duration,
}

/// One segment as recovery left it.
#[derive(Debug, Clone)]
pub(crate) struct RecoveredSegment {
    pub name: String,
    pub scan: SegmentScan,
    /// Offset past the last non-zero byte, where it must be zeroed before appending.
    pub written_extent: u64,
}

/// The result of recovery: the segments to keep and the report.
pub(crate) struct Recovered {
    pub segments: Vec<RecoveredSegment>,
    pub report: RecoveryReport,
}

fn corruption(storage: &dyn Storage, name: &str, damage: Damage) -> WalError {
    WalError::Corruption {
        file: storage.path().join(name),
        offset: damage.offset,
        kind: damage.kind,
    }
}

fn io(storage: &dyn Storage, op: &'static str, name: &str, e: std::io::Error) -> WalError {
    WalError::io(op, storage.path().join(name), e)
}

/// Validates the log in `storage`. With `writable`, also tidies it: removes leftover
/// temp files and sets aside discarded segments (the tail is zeroed by the writer).
pub(crate) fn recover(
    storage: &dyn Storage,
    mode: RecoveryMode,
    writable: bool,
) -> Result<Recovered> {
    let started = Instant::now();
    let names = storage.list().map_err(|e| io(storage, "listing", "", e))?;
    let mut report = RecoveryReport {
        mode,
        segments: 0,
        frames: 0,
        first_lsn: 1,
        last_lsn: 0,
        truncated: None,
        discarded_segments: Vec::new(),
        removed_temp_files: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut segment_names: Vec<(Lsn, String)> = Vec::new();
    for name in names {
        if name.ends_with(TMP_SUFFIX) && parse_segment_file_name(&name[..name.len() - 4]).is_some()
        {
            if writable {
                storage.remove(&name).map_err(|e| io(storage, "removing", &name, e))?;
                report.removed_temp_files.push(storage.path().join(&name));
            }
        } else if let Some(base) = parse_segment_file_name(&name) {
            segment_names.push((base, name));
        }
    }
    if writable && !report.removed_temp_files.is_empty() {
        storage.sync_dir().map_err(|e| io(storage, "syncing directory", "", e))?;
    }
    segment_names.sort();

    let mut kept: Vec<RecoveredSegment> = Vec::new();
    let mut stop_at: Option<usize> = None;
    // One buffer for every segment: only the scans are kept.
    let mut bytes = Vec::new();
    for (i, (base, name)) in segment_names.iter().enumerate() {
        let is_last = i + 1 == segment_names.len();
        storage.read_into(name, &mut bytes).map_err(|e| io(storage, "reading", name, e))?;
        let expected = kept.last().map(|s| s.scan.next_lsn);
        let verdict = judge_segment(&bytes, *base, expected, is_last, mode);
        match verdict {
            Verdict::Good(scan) => {
                let extent = written_extent(&bytes, scan.valid_end);
                kept.push(RecoveredSegment { name: name.clone(), scan, written_extent: extent });
            }
            Verdict::TornTail(scan, damage) => {
                let extent = written_extent(&bytes, scan.valid_end).max(damage.offset);
                report.truncated = Some(Truncation {
                    file: storage.path().join(name),
                    offset: scan.valid_end,
                    bytes: extent.saturating_sub(scan.valid_end),
                    reason: damage.kind,
                    damage_offset: damage.offset,
                });
                kept.push(RecoveredSegment { name: name.clone(), scan, written_extent: extent });
            }
            Verdict::Corrupt(scan, damage) => {
                if mode != RecoveryMode::PointInTime {
                    return Err(corruption(storage, name, damage));
                }
                // Keep this segment up to its last good group if its header is sound;
                // every later segment is set aside.
                let first_discarded = match scan {
                    Some(scan) => {
                        let extent = written_extent(&bytes, scan.valid_end).max(damage.offset);
                        report.truncated = Some(Truncation {
                            file: storage.path().join(name),
                            offset: scan.valid_end,
                            bytes: extent.saturating_sub(scan.valid_end),
                            reason: damage.kind,
                            damage_offset: damage.offset,
                        });
                        kept.push(RecoveredSegment {
                            name: name.clone(),
                            scan,
                            written_extent: extent,
                        });
                        i + 1
                    }
                    None => i,
                };
                stop_at = Some(first_discarded);
                break;
            }
        }
    }
    if let Some(first) = stop_at {
        for (_, name) in &segment_names[first..] {
            let aside = format!("{name}{DISCARDED_SUFFIX}");
            if writable {
                storage.rename(name, &aside).map_err(|e| io(storage, "setting aside", name, e))?;
                report.discarded_segments.push(storage.path().join(aside));
            } else {
                // A read-only recovery sets nothing aside: it names the segments it would.
                report.discarded_segments.push(storage.path().join(name));
            }
        }
        if writable && first < segment_names.len() {
            storage.sync_dir().map_err(|e| io(storage, "syncing directory", "", e))?;
        }
    }

    report.segments = kept.len();
    report.frames = kept.iter().map(|s| s.scan.frames.len() as u64).sum();
    if let Some(first) = kept.first() {
        report.first_lsn = first.scan.header.base_lsn;
    }
    if let Some(last) = kept.last() {
        report.last_lsn = last.scan.next_lsn - 1;
    }
    report.elapsed = started.elapsed();
    Ok(Recovered { segments: kept, report })
}

pub(crate) enum Verdict {
    /// Sound, possibly with harmless zero-filled space after its end.
    Good(SegmentScan),
    /// Sound up to `valid_end`; damage after the durable end of the last segment.
    TornTail(SegmentScan, Damage),
    /// Damage among durable data (scan absent when the header itself is bad).
    Corrupt(Option<SegmentScan>, Damage),
}

/// Judges one segment as recovery does: `expected` is the base LSN the previous segment
/// says must follow (`None` for the first).
pub(crate) fn judge_segment(
    bytes: &[u8],
    base: Lsn,
    expected: Option<Lsn>,
    is_last: bool,
    mode: RecoveryMode,
) -> Verdict {
    let scan = match scan_segment(bytes) {
        Ok(scan) => scan,
        Err(damage) => return Verdict::Corrupt(None, damage),
    };
    if scan.header.base_lsn != base {
        let why = format!("header says base LSN {}, file name says {base}", scan.header.base_lsn);
        return Verdict::Corrupt(
            None,
            Damage { offset: 0, kind: CorruptionKind::BadSegmentHeader(why) },
        );
    }
    if let Some(expected) = expected
        && base != expected
    {
        let kind = CorruptionKind::LsnGap { expected, found: base };
        return Verdict::Corrupt(None, Damage { offset: 0, kind });
    }
    if (bytes.len() as u64) < scan.header.segment_bytes {
        let kind = CorruptionKind::FileTooShort {
            len: bytes.len() as u64,
            expected: scan.header.segment_bytes,
        };
        return Verdict::Corrupt(Some(scan), Damage { offset: bytes.len() as u64, kind });
    }
    if !is_last && !scan.sealed() {
        let offset = scan.damage.as_ref().map_or(scan.valid_end, |d| d.offset);
        return Verdict::Corrupt(
            Some(scan),
            Damage { offset, kind: CorruptionKind::UnsealedSegment },
        );
    }
    let durable_end = scan.durable_end();
    if let Some(damage) = scan.damage.clone() {
        let in_durable = damage.offset < durable_end || scan.valid_end < durable_end;
        if !is_last || in_durable || mode == RecoveryMode::Strict {
            return Verdict::Corrupt(Some(scan), damage);
        }
        return Verdict::TornTail(scan, damage);
    }
    if scan.valid_end < durable_end {
        let damage = Damage {
            offset: scan.valid_end,
            kind: CorruptionKind::DurableDataMissing { durable_end },
        };
        return Verdict::Corrupt(Some(scan), damage);
    }
    let extent = written_extent(bytes, scan.valid_end);
    if extent > scan.valid_end && is_last {
        let damage = Damage { offset: scan.valid_end, kind: CorruptionKind::UnexpectedBytes };
        if mode == RecoveryMode::Strict {
            return Verdict::Corrupt(Some(scan), damage);
        }
        return Verdict::TornTail(scan, damage);
    }
    if extent > scan.valid_end && mode == RecoveryMode::Strict {
        // Garbage in the unused space of a sealed segment: no frame is affected, but
        // the file is not as its writer left it.
        let damage = Damage { offset: scan.valid_end, kind: CorruptionKind::UnexpectedBytes };
        return Verdict::Corrupt(Some(scan), damage);
    }
    Verdict::Good(scan)
}
