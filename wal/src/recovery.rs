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
//! - A caller that holds the state up to some LSN elsewhere (a snapshot) may say so
//!   (`covered`): then segments wholly at or below it may be missing, and older ones left
//!   behind a gap there (a truncation whose removals a power cut persisted out of order)
//!   are orphans, not an LSN gap.
//!
//! Recovery itself only reads: [`recover`] decides, and its [`Plan`] says what a writable
//! open must then change (remove, set aside, cut). The caller may refuse the plan first
//! (the store does, if the log would not continue its snapshot), and nothing is lost.
//! Every byte the plan cuts is first copied to a file of its own, and no earlier copy or
//! set-aside segment is ever overwritten.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Lsn;
use crate::error::{CorruptionKind, Result, WalError};
use crate::format::{Checkpoint, FRAMES_OFFSET, SegmentHeader, parse_segment_file_name};
use crate::options::{RecoveryMode, SEGMENT_BYTES_LIMIT};
use crate::scan::{Damage, SegmentScan, scan_segment, written_extent};
use crate::storage::Storage;

/// Suffix of a segment that is being created; a leftover one is removed on open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// Suffix given to segments that `PointInTime` recovery set aside, and to the copies of
/// the bytes recovery cut from a segment (`<segment>.cut-<offset>.discarded`). A name
/// already taken gets `.2`, `.3`, ... after it.
pub(crate) const DISCARDED_SUFFIX: &str = ".discarded";

/// The segment's base LSN if `name` is a set-aside segment or a copy of bytes cut from
/// one (see [`DISCARDED_SUFFIX`]).
pub(crate) fn parse_discarded_name(name: &str) -> Option<Lsn> {
    let name = match name.rsplit_once('.') {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    };
    let name = name.strip_suffix(DISCARDED_SUFFIX)?;
    let name = match name.rsplit_once(".cut-") {
        Some((head, offset)) if offset.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    };
    parse_segment_file_name(name)
}

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
    /// Copies of the bytes cut from the log's end (`<segment>.cut-<offset>.discarded`),
    /// made before the cut; empty for a read-only recovery.
    pub cut_copies: Vec<PathBuf>,
    /// Segments wholly below the LSN the caller said it holds elsewhere, left behind a gap
    /// by a truncation that a power cut interrupted: removed (a read-only recovery names
    /// them and removes nothing).
    pub orphaned_segments: Vec<PathBuf>,
    /// Half-created segment files removed (a read-only recovery names none).
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

/// What a writable open must change for the log to be what recovery decided, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// Half-created segments to remove.
    pub temp_files: Vec<String>,
    /// Orphaned segments (see [`RecoveryReport::orphaned_segments`]) to remove.
    pub orphaned: Vec<String>,
    /// Segments to set aside.
    pub set_aside: Vec<String>,
    /// Every name in the directory, so new names never replace one.
    pub names: Vec<String>,
}

/// The result of recovery: the segments to keep, the report, and the changes to make.
pub(crate) struct Recovered {
    pub segments: Vec<RecoveredSegment>,
    pub report: RecoveryReport,
    pub plan: Plan,
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

/// Validates the log in `storage` and decides what to keep, changing no byte. `covered`:
/// the caller holds the state up to this LSN elsewhere (0: nothing), so segments wholly
/// at or below it may be missing. With `past_cache` (a writable open), the last segment
/// after its newest checkpoint is read as the disk holds it, not as the page cache does
/// (see [`Storage::read_past_cache`]): frames whose sync failed must not be taken for
/// durable ones.
pub(crate) fn recover(
    storage: &dyn Storage,
    mode: RecoveryMode,
    covered: Lsn,
    past_cache: bool,
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
        cut_copies: Vec::new(),
        orphaned_segments: Vec::new(),
        removed_temp_files: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut plan = Plan { names: names.clone(), ..Plan::default() };
    let mut segment_names: Vec<(Lsn, String)> = Vec::new();
    for name in names {
        if crate::format::is_temp_segment_name(&name) {
            plan.temp_files.push(name);
        } else if let Some(base) = parse_segment_file_name(&name) {
            segment_names.push((base, name));
        }
    }
    segment_names.sort();
    // The first LSN the caller needs from the log.
    let needed = covered.saturating_add(1);

    let mut kept: Vec<RecoveredSegment> = Vec::new();
    let mut stop_at: Option<usize> = None;
    // One buffer for every segment: only the scans are kept.
    let mut bytes = Vec::new();
    for (i, (base, name)) in segment_names.iter().enumerate() {
        let is_last = i + 1 == segment_names.len();
        let mut expected = kept.last().map(|s| s.scan.next_lsn);
        if expected.is_some_and(|e| e != *base) && *base <= needed {
            // A gap wholly below what the caller needs: the segments before it are
            // leftovers of a truncation, not part of the log.
            plan.orphaned.extend(kept.drain(..).map(|s| s.name));
            expected = None;
        }
        // Nothing is read (or allocated for) a file longer than any segment may be.
        let len = storage.file_len(name).map_err(|e| io(storage, "reading", name, e))?;
        let verdict = if len > SEGMENT_BYTES_LIMIT {
            let kind = CorruptionKind::FileTooLong { len, expected: SEGMENT_BYTES_LIMIT };
            Verdict::Corrupt(None, Damage { offset: SEGMENT_BYTES_LIMIT, kind })
        } else {
            if is_last && past_cache {
                let from = unverified_from(storage, name, len)?;
                storage.read_past_cache(name, from, &mut bytes)
            } else {
                storage.read_into(name, &mut bytes)
            }
            .map_err(|e| io(storage, "reading", name, e))?;
            judge_segment(&bytes, *base, expected, is_last, mode)
        };
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
        plan.set_aside = segment_names[first..].iter().map(|(_, name)| name.clone()).collect();
        // Named as they are; a writable open names them as it set them aside.
        report.discarded_segments = plan.set_aside.iter().map(|n| storage.path().join(n)).collect();
    }
    report.orphaned_segments = plan.orphaned.iter().map(|n| storage.path().join(n)).collect();

    report.segments = kept.len();
    report.frames = kept.iter().map(|s| s.scan.frames.len() as u64).sum();
    if let Some(first) = kept.first() {
        report.first_lsn = first.scan.header.base_lsn;
    }
    if let Some(last) = kept.last() {
        report.last_lsn = last.scan.next_lsn - 1;
    }
    report.elapsed = started.elapsed();
    Ok(Recovered { segments: kept, report, plan })
}

/// Where the bytes of segment `name` (of `len` bytes) stop being proven durable: its
/// newest checkpoint's `durable_end` (every sync before that checkpoint succeeded), or 0
/// if its header or checkpoints cannot be read.
fn unverified_from(storage: &dyn Storage, name: &str, len: u64) -> Result<u64> {
    let mut head = vec![0u8; len.min(FRAMES_OFFSET) as usize];
    storage.read_exact_at(name, 0, &mut head).map_err(|e| io(storage, "reading", name, e))?;
    let Ok((header, header_crc)) = SegmentHeader::decode(&head) else { return Ok(0) };
    Ok(Checkpoint::newest(&head, &header, header_crc).map_or(0, |c| c.durable_end))
}

/// `base`, or `base.2`, `base.3`, ...: the first that names nothing in `names`.
pub(crate) fn unused_name(names: &mut Vec<String>, base: String) -> String {
    let mut name = base.clone();
    let mut n = 1;
    while names.contains(&name) {
        n += 1;
        name = format!("{base}.{n}");
    }
    names.push(name.clone());
    name
}

impl Recovered {
    /// Carries out the plan on a writable open, each step durable before the next:
    /// removes half-created and orphaned segments, copies the bytes to be cut from the
    /// last kept segment to a file of their own, and sets aside the later segments under
    /// names not taken. The cut itself (zeroing) is the writer's, once this returned.
    pub(crate) fn apply(&mut self, storage: &dyn Storage) -> Result<()> {
        let sync_dir = |storage: &dyn Storage| {
            storage.sync_dir().map_err(|e| io(storage, "syncing directory", "", e))
        };
        let plan = &mut self.plan;
        for name in &plan.temp_files {
            storage.remove(name).map_err(|e| io(storage, "removing", name, e))?;
            self.report.removed_temp_files.push(storage.path().join(name));
        }
        if !plan.temp_files.is_empty() {
            sync_dir(storage)?;
        }
        for name in &plan.orphaned {
            storage.remove(name).map_err(|e| io(storage, "removing orphaned segment", name, e))?;
            sync_dir(storage)?;
        }
        if let (Some(cut), Some(last)) = (&self.report.truncated, self.segments.last())
            && last.written_extent > cut.offset
        {
            let name = unused_name(
                &mut plan.names,
                format!("{}.cut-{}{DISCARDED_SUFFIX}", last.name, cut.offset),
            );
            copy_range(storage, &last.name, cut.offset, last.written_extent, &name)
                .map_err(|e| io(storage, "copying the bytes to cut", &name, e))?;
            sync_dir(storage)?;
            self.report.cut_copies.push(storage.path().join(name));
        }
        if !plan.set_aside.is_empty() {
            self.report.discarded_segments.clear();
            for name in &plan.set_aside {
                let aside = unused_name(&mut plan.names, format!("{name}{DISCARDED_SUFFIX}"));
                storage.rename(name, &aside).map_err(|e| io(storage, "setting aside", name, e))?;
                self.report.discarded_segments.push(storage.path().join(aside));
            }
            sync_dir(storage)?;
        }
        Ok(())
    }
}

/// Copies `from..to` of file `source` into a new file `dest`, synced.
fn copy_range(
    storage: &dyn Storage,
    source: &str,
    from: u64,
    to: u64,
    dest: &str,
) -> std::io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let mut out = storage.create_file(dest)?;
    let mut buf = vec![0u8; CHUNK.min(to.saturating_sub(from)) as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK) as usize;
        storage.read_exact_at(source, at, &mut buf[..n])?;
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    out.sync()
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
    if (bytes.len() as u64) > scan.header.segment_bytes {
        let kind = CorruptionKind::FileTooLong {
            len: bytes.len() as u64,
            expected: scan.header.segment_bytes,
        };
        // Not kept even up to its last good frame: it could not be opened for appending.
        return Verdict::Corrupt(None, Damage { offset: scan.header.segment_bytes, kind });
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
