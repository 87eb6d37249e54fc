//! Reading a log without owning it: [`LogReader`], [`LogTail`] and [`verify_log`].
//!
//! Nothing here takes the writer's lock, creates, writes, renames, truncates or removes
//! a file: a reader opens segments for reading only. It validates exactly as recovery
//! does (the same `scan_segment` and `judge_segment`), but where a writable open would
//! cut a torn tail or set segments aside, a reader only reports what recovery would do
//! and reads the log as recovery would leave it.
//!
//! **A live log** (one a `Wal` holds open, in this or another process) can be read too.
//! A reader then sees what the writer has copied into its segments so far: every group
//! whose frames all pass their chained checksums is delivered, and an unfinished group
//! at the end of the last segment (a copy in progress) reads as the end of the log, as a
//! torn tail would after a crash. Two things follow:
//! - frames read from a live log are complete but not necessarily durable: the writer
//!   may not have synced them yet (policy `Interval` or `Never`, or a group commit in
//!   flight). [`LogReader::checkpointed_lsn`] is the part its checkpoints prove durable.
//! - `RecoveryMode::Strict` reports such an unfinished tail as damage; use the default
//!   `TolerateTornTail` on a live log.
//!
//! The ordering that makes this safe: a segment's header page (with its checkpoints) is
//! read before its frames, and a checkpoint only ever claims frames written before it;
//! a segment is sealed before the next one is created, so a segment followed by another
//! in a directory listing is read sealed. A segment deleted between the listing and the
//! read (a compaction truncating the log) is an I/O error naming it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Lsn;
use crate::error::{CorruptionKind, Result, WalError};
use crate::format::{FrameHeader, frame_size, parse_segment_file_name};
use crate::iter::{Frame, WalIter};
use crate::options::RecoveryMode;
use crate::recovery::{RecoveryReport, Verdict, judge_segment, parse_discarded_name, recover};
use crate::scan::{
    ChainPoint, Damage, SegmentScan, scan_frames_from, scan_segment, written_extent,
};
use crate::storage::{FsStorage, Storage};

/// One segment of a log as a reader found it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentSummary {
    /// The segment file.
    pub file: PathBuf,
    /// LSN of its first frame.
    pub base_lsn: Lsn,
    /// Valid frames in it (after any cut recovery would make).
    pub frames: u64,
    /// Bytes those frames occupy, headers and padding included.
    pub frame_bytes: u64,
    /// The file's preallocated size.
    pub file_bytes: u64,
    /// True once its writer sealed it (full and synced).
    pub sealed: bool,
    /// LSN of the last frame its newest checkpoint proves durable (0: none).
    pub checkpointed_lsn: Lsn,
}

/// A read-only view of a log directory.
pub struct LogReader {
    storage: Arc<dyn Storage>,
    segments: Vec<SegmentSummary>,
    names: Vec<(Lsn, String)>,
    report: RecoveryReport,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("dir", &self.storage.path())
            .field("first_lsn", &self.report.first_lsn)
            .field("last_lsn", &self.report.last_lsn)
            .finish_non_exhaustive()
    }
}

impl LogReader {
    /// Opens the log in `dir` for reading, validating it as recovery in `mode` would.
    /// `dir` must exist; nothing in it is created or changed.
    ///
    /// Errors as recovery's: [`WalError::Corruption`] for damage `mode` does not accept
    /// (naming file and offset), [`WalError::Io`] for a missing or unreadable directory.
    pub fn open(dir: impl AsRef<Path>, mode: RecoveryMode) -> Result<LogReader> {
        LogReader::open_with(Arc::new(FsStorage::new(dir.as_ref())), mode)
    }

    /// [`LogReader::open`] on any storage (the simulated disk in tests).
    pub fn open_with(storage: Arc<dyn Storage>, mode: RecoveryMode) -> Result<LogReader> {
        let recovered = recover(storage.as_ref(), mode, 0, false)?;
        let segments = recovered
            .segments
            .iter()
            .map(|s| summary(storage.path().join(&s.name), &s.scan))
            .collect();
        let names =
            recovered.segments.iter().map(|s| (s.scan.header.base_lsn, s.name.clone())).collect();
        Ok(LogReader { storage, segments, names, report: recovered.report })
    }

    /// The log's directory.
    pub fn path(&self) -> &Path {
        self.storage.path()
    }

    /// What recovery would find and do on a writable open (a reader does none of it:
    /// `truncated` and `discarded_segments` say what it would cut and set aside).
    pub fn report(&self) -> &RecoveryReport {
        &self.report
    }

    /// LSN of the first frame in the log (the next LSN if it is empty).
    pub fn first_lsn(&self) -> Lsn {
        self.report.first_lsn
    }

    /// LSN of the last frame a reader delivers (0 if none).
    pub fn last_lsn(&self) -> Lsn {
        self.report.last_lsn
    }

    /// LSN of the last frame the segments' checkpoints prove durable (0 if none). For a
    /// log closed cleanly this is [`LogReader::last_lsn`]; for a live log it may lag.
    pub fn checkpointed_lsn(&self) -> Lsn {
        self.segments.iter().map(|s| s.checkpointed_lsn).max().unwrap_or(0)
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[SegmentSummary] {
        &self.segments
    }

    /// Frames `from..=last_lsn()`, validated again as each segment is read.
    pub fn iter_from(&self, from: Lsn) -> Result<WalIter> {
        WalIter::new(Arc::clone(&self.storage), self.names.clone(), from, self.report.last_lsn)
    }

    /// A tail that delivers the frames after `last_lsn()` as a writer appends them.
    pub fn tail(&self) -> LogTail {
        LogTail {
            storage: Arc::clone(&self.storage),
            next: self.report.last_lsn + 1,
            durable_only: false,
        }
    }

    /// A tail from `next` on that delivers only frames the log's checkpoints prove
    /// durable (a live writer's checkpoint trails its durable LSN by about 50 ms, and
    /// catches up when it goes idle or closes): what a reader may act on without a power
    /// cut taking it back.
    pub fn durable_tail_from(&self, next: Lsn) -> LogTail {
        LogTail { storage: Arc::clone(&self.storage), next: next.max(1), durable_only: true }
    }
}

fn summary(file: PathBuf, scan: &SegmentScan) -> SegmentSummary {
    SegmentSummary {
        file,
        base_lsn: scan.header.base_lsn,
        frames: scan.frames.len() as u64,
        frame_bytes: scan.valid_end - scan.header.frames_offset(),
        file_bytes: scan.header.segment_bytes,
        sealed: scan.sealed(),
        checkpointed_lsn: scan.checkpoint.map_or(0, |c| c.last_lsn),
    }
}

/// Follows a (possibly live) log: each [`LogTail::poll`] returns the complete groups
/// appended since the last one. Reads only; see the module docs for what "live" means.
///
/// Cost: a poll re-reads the segment holding the next LSN (and any later ones) whole.
pub struct LogTail {
    storage: Arc<dyn Storage>,
    next: Lsn,
    /// Deliver only frames a checkpoint (or the segment's seal) proves durable.
    durable_only: bool,
}

impl std::fmt::Debug for LogTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTail").field("next", &self.next).finish_non_exhaustive()
    }
}

impl LogTail {
    /// The LSN the next frame delivered will carry.
    pub fn next_lsn(&self) -> Lsn {
        self.next
    }

    /// The frames appended since the last poll (possibly none), in LSN order.
    ///
    /// Damage recovery would call corruption is an error; an unfinished group at the end
    /// of the last segment is not (it is read once complete). If the segment holding the
    /// next LSN was deleted (the log was truncated past it), the error is
    /// [`WalError::LsnOutOfRange`].
    pub fn poll(&mut self) -> Result<Vec<Frame>> {
        let path = self.storage.path().to_path_buf();
        let names = self.storage.list().map_err(|e| WalError::io("listing", &path, e))?;
        let mut segments: Vec<(Lsn, String)> = names
            .into_iter()
            .filter_map(|n| parse_segment_file_name(&n).map(|base| (base, n)))
            .collect();
        segments.sort();
        let Some(start) = segments.iter().rposition(|s| s.0 <= self.next) else {
            return match segments.first() {
                Some(&(first, _)) => Err(WalError::LsnOutOfRange {
                    requested: self.next,
                    first,
                    last: first.saturating_sub(1),
                }),
                None => Ok(Vec::new()),
            };
        };
        let mut out = Vec::new();
        let first_next = self.next;
        // The last LSN a checkpoint or a seal proves durable, among the segments read.
        let mut proven = 0;
        for (i, (base, name)) in segments.iter().enumerate().skip(start) {
            let is_last = i + 1 == segments.len();
            let file = path.join(name);
            let bytes = match self.storage.read(name) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && i == start => {
                    // Truncated between the listing and the read: the next poll says so.
                    return Ok(out);
                }
                Err(e) => return Err(WalError::io("reading segment", &file, e)),
            };
            // The first segment read continues what was delivered only if it holds
            // `next`; later ones must start exactly where the previous one ended.
            let expected = (i > start).then_some(self.next);
            let scan = match judge_segment(
                &bytes,
                *base,
                expected,
                is_last,
                RecoveryMode::TolerateTornTail,
            ) {
                Verdict::Good(scan) | Verdict::TornTail(scan, _) => scan,
                Verdict::Corrupt(_, damage) => return Err(corruption(file, damage)),
            };
            let sealed = scan.sealed();
            proven = proven.max(scan.checkpoint.map_or(0, |c| c.last_lsn));
            let bytes = Arc::new(bytes);
            let from = self.next;
            for frame in scan.frames.into_iter().filter(|f| f.lsn >= from) {
                self.next = frame.lsn + 1;
                out.push(Frame::new(Arc::clone(&bytes), frame));
            }
            if !sealed {
                break;
            }
        }
        if self.durable_only {
            out.retain(|f| f.lsn() <= proven);
            self.next = out.last().map_or(first_next, |f| f.lsn() + 1);
        }
        Ok(out)
    }
}

fn corruption(file: PathBuf, damage: Damage) -> WalError {
    WalError::Corruption { file, offset: damage.offset, kind: damage.kind }
}

/// How much a verification finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing, changes nothing (a leftover temporary file, a set-aside segment).
    Note,
    /// An unfinished tail after the last durable frame: what a crash (or a live writer)
    /// leaves. Recovery cuts it; no acknowledged frame is lost.
    TornTail,
    /// Damage among durable data: recovery in the default mode refuses the log.
    Corruption,
}

impl Severity {
    /// `note`, `torn_tail` or `corruption`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::TornTail => "torn_tail",
            Severity::Corruption => "corruption",
        }
    }
}

/// What a verification finding is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindingKind {
    /// Damage to a segment's header, checkpoint, frames or continuity.
    Damage(CorruptionKind),
    /// A half-created segment (`*.wal.tmp`) or a spare (`spare.wal.tmp`): no frame in it;
    /// a writable open removes it.
    LeftoverTempSegment,
    /// A segment an earlier `PointInTime` recovery set aside (`*.wal.discarded`).
    DiscardedSegment,
    /// Non-zero bytes after the end of a sealed segment's frames (no frame affected).
    BytesAfterSealedEnd,
    /// A file that is not part of a log.
    UnknownFile,
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FindingKind::Damage(kind) => write!(f, "{kind}"),
            FindingKind::LeftoverTempSegment => {
                write!(f, "half-created segment (removed by the next writable open)")
            }
            FindingKind::DiscardedSegment => {
                write!(f, "segment set aside by an earlier point-in-time recovery")
            }
            FindingKind::BytesAfterSealedEnd => {
                write!(f, "non-zero bytes after the end of a sealed segment's frames")
            }
            FindingKind::UnknownFile => write!(f, "file that is not part of the log"),
        }
    }
}

/// One thing [`verify_log`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The file concerned.
    pub file: PathBuf,
    /// Byte offset within the file (0 for the file as a whole).
    pub offset: u64,
    /// What was found.
    pub kind: FindingKind,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} at offset {}: {}",
            self.severity.as_str(),
            self.file.display(),
            self.offset,
            self.kind
        )
    }
}

/// The result of [`verify_log`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogVerification {
    /// Segment files checked.
    pub segments: usize,
    /// Frames that passed every check.
    pub frames: u64,
    /// Every finding, in file order, at most [`FINDINGS_MAX`].
    pub findings: Vec<Finding>,
    /// Findings left out beyond [`FINDINGS_MAX`].
    pub findings_omitted: u64,
}

impl LogVerification {
    /// True if any finding is [`Severity::Corruption`].
    pub fn is_corrupt(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Corruption)
            || self.findings_omitted > 0
    }
}

/// Most findings [`verify_log`] lists; a log damaged beyond that is damaged enough.
pub const FINDINGS_MAX: usize = 1000;

/// Checks every segment of the log in `dir` (header, checkpoints, every frame's length,
/// padding and chained CRC, LSN continuity within and across segments, sealing and
/// durable ends) and reports every finding with file and offset, rather than stopping
/// at the first. Judges like recovery in `TolerateTornTail` mode; reads only.
///
/// After a frame whose checksum fails but whose length is plausible, the scan resumes
/// at the next frame (the chain continues from the stored checksum), so independent
/// damage further on is found too. A bad length or a bad header ends the segment's scan.
pub fn verify_log(dir: impl AsRef<Path>) -> Result<LogVerification> {
    verify_log_with(&FsStorage::new(dir.as_ref()))
}

/// [`verify_log`] on any storage.
pub fn verify_log_with(storage: &dyn Storage) -> Result<LogVerification> {
    let dir = storage.path().to_path_buf();
    let names = storage.list().map_err(|e| WalError::io("listing", &dir, e))?;
    let mut out = Collector { findings: Vec::new(), omitted: 0 };
    let mut segments: Vec<(Lsn, String)> = Vec::new();
    for name in names {
        let note =
            |kind| Finding { severity: Severity::Note, file: dir.join(&name), offset: 0, kind };
        if let Some(base) = parse_segment_file_name(&name) {
            segments.push((base, name));
        } else if crate::format::is_temp_segment_name(&name) {
            out.push(note(FindingKind::LeftoverTempSegment));
        } else if parse_discarded_name(&name).is_some() {
            out.push(note(FindingKind::DiscardedSegment));
        } else if name != crate::storage::LOCK_FILE {
            out.push(note(FindingKind::UnknownFile));
        }
    }
    segments.sort();
    let mut verification = LogVerification {
        segments: segments.len(),
        frames: 0,
        findings: Vec::new(),
        findings_omitted: 0,
    };
    let mut expected: Option<Lsn> = None;
    // One buffer for every segment (see `Storage::read_into`).
    let mut bytes = Vec::new();
    for (i, (base, name)) in segments.iter().enumerate() {
        let file = dir.join(name);
        let is_last = i + 1 == segments.len();
        // A file longer than any segment may be is not read (nor allocated for).
        let len = storage.file_len(name).map_err(|e| WalError::io("reading segment", &file, e))?;
        if len > crate::options::SEGMENT_BYTES_LIMIT {
            let limit = crate::options::SEGMENT_BYTES_LIMIT;
            out.push(Finding {
                severity: Severity::Corruption,
                file,
                offset: limit,
                kind: FindingKind::Damage(CorruptionKind::FileTooLong { len, expected: limit }),
            });
            expected = None;
            continue;
        }
        storage
            .read_into(name, &mut bytes)
            .map_err(|e| WalError::io("reading segment", &file, e))?;
        let checked = verify_segment(&bytes, *base, expected, is_last, &file, &mut out);
        verification.frames += checked.frames;
        expected = checked.next_lsn;
    }
    verification.findings = out.findings;
    verification.findings_omitted = out.omitted;
    Ok(verification)
}

struct Collector {
    findings: Vec<Finding>,
    omitted: u64,
}

impl Collector {
    fn push(&mut self, finding: Finding) {
        if self.findings.len() < FINDINGS_MAX {
            self.findings.push(finding);
        } else {
            self.omitted += 1;
        }
    }
}

/// What checking one segment established.
struct SegmentChecked {
    frames: u64,
    /// The base LSN the next segment must have, if known.
    next_lsn: Option<Lsn>,
}

fn verify_segment(
    bytes: &[u8],
    base: Lsn,
    expected: Option<Lsn>,
    is_last: bool,
    file: &Path,
    out: &mut Collector,
) -> SegmentChecked {
    let finding = |severity, damage: Damage| Finding {
        severity,
        file: file.to_path_buf(),
        offset: damage.offset,
        kind: FindingKind::Damage(damage.kind),
    };
    match judge_segment(bytes, base, expected, is_last, RecoveryMode::TolerateTornTail) {
        Verdict::Good(scan) => {
            if !is_last && written_extent(bytes, scan.valid_end) > scan.valid_end {
                out.push(Finding {
                    severity: Severity::Note,
                    file: file.to_path_buf(),
                    offset: scan.valid_end,
                    kind: FindingKind::BytesAfterSealedEnd,
                });
            }
            SegmentChecked { frames: scan.frames.len() as u64, next_lsn: Some(scan.next_lsn) }
        }
        Verdict::TornTail(scan, damage) => {
            out.push(finding(Severity::TornTail, damage));
            SegmentChecked { frames: scan.frames.len() as u64, next_lsn: Some(scan.next_lsn) }
        }
        Verdict::Corrupt(_, first) => {
            let first_offset = first.offset;
            out.push(finding(Severity::Corruption, first));
            // Find every other damaged frame, resuming after each one we can step over.
            let Ok(mut scan) = scan_segment(bytes) else {
                return SegmentChecked { frames: 0, next_lsn: None };
            };
            let mut frames = scan.frames.len() as u64;
            let mut resumes = 0;
            while let Some(damage) = scan.damage.clone() {
                if damage.offset != first_offset {
                    out.push(finding(Severity::Corruption, damage.clone()));
                }
                resumes += 1;
                let Some(start) =
                    step_over(bytes, &scan, &damage).filter(|_| resumes <= FINDINGS_MAX)
                else {
                    break;
                };
                scan =
                    scan_frames_from(bytes, scan.header, scan.header_crc, scan.checkpoint, start);
                frames += scan.frames.len() as u64;
            }
            let next_lsn = if scan.damage.is_none() {
                Some(scan.next_lsn)
            } else {
                scan.checkpoint.filter(|c| c.sealed).and_then(|c| c.last_lsn.checked_add(1))
            };
            SegmentChecked { frames, next_lsn }
        }
    }
}

/// Where to resume scanning after `damage`: past a frame whose length field is
/// plausible (its checksum, padding or LSN is what failed), continuing the chain from its
/// stored checksum. `None` when the frame's extent cannot be trusted.
fn step_over(bytes: &[u8], scan: &SegmentScan, damage: &Damage) -> Option<ChainPoint> {
    let steppable = matches!(
        damage.kind,
        CorruptionKind::ChecksumMismatch { .. }
            | CorruptionKind::LsnGap { .. }
            | CorruptionKind::UnexpectedBytes
    );
    if !steppable {
        return None;
    }
    let at = usize::try_from(damage.offset).ok()?;
    let header = FrameHeader::read(bytes.get(at..at + crate::format::FRAME_HEADER_BYTES)?);
    let next = damage.offset.checked_add(frame_size(header.payload_len()))?;
    if next > scan.header.segment_bytes || next > bytes.len() as u64 {
        return None;
    }
    Some(ChainPoint { offset: next, prev_crc: header.crc, lsn: header.lsn.checked_add(1)? })
}

/// Who holds a log directory's writer lock, as far as can be told without touching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// No process holds the lock (or there is no lock file): no live writer.
    Free,
    /// A process holds it: a live writer.
    Held {
        /// The holder's process id, as the kernel reports it.
        pid: u32,
    },
    /// Cannot be told on this system (no `/proc/locks`).
    Unknown,
}

/// Whether a live writer holds the log directory `dir`, read from the kernel's lock
/// table (`/proc/locks` on Linux) so that the probe itself takes no lock: taking even a
/// shared lock for a moment could make a writer opening at that moment fail.
pub fn writer_lock_state(dir: impl AsRef<Path>) -> LockState {
    use std::os::unix::fs::MetadataExt;
    let lock = dir.as_ref().join(crate::storage::LOCK_FILE);
    let Ok(meta) = std::fs::metadata(&lock) else {
        return LockState::Free;
    };
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return LockState::Unknown;
    };
    let id =
        format!("{:02x}:{:02x}:{}", libc::major(meta.dev()), libc::minor(meta.dev()), meta.ino());
    lock_holder(&table, &id).map_or(LockState::Free, |pid| LockState::Held { pid })
}

/// The pid holding a granted lock on the file `id` (`major:minor:inode`, as
/// `/proc/locks` writes it) in the lock table `table`. Blocked waiters (`->`) are not
/// holders.
fn lock_holder(table: &str, id: &str) -> Option<u32> {
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK ADVISORY WRITE 11729 fe:00:10037469 0 EOF"
        if fields.get(1) == Some(&"->") || fields.get(5) != Some(&id) {
            return None;
        }
        fields.get(4)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_holder_reads_granted_locks_only() {
        let table = "1: FLOCK  ADVISORY  WRITE 11729 fe:00:10037469 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 222 fe:00:77 0 EOF\n\
                     2: POSIX  ADVISORY  READ 33 08:01:77 0 EOF\n";
        assert_eq!(lock_holder(table, "fe:00:10037469"), Some(11729));
        assert_eq!(lock_holder(table, "fe:00:77"), None);
        assert_eq!(lock_holder(table, "08:01:77"), Some(33));
        assert_eq!(lock_holder(table, "08:01:78"), None);
        assert_eq!(lock_holder("", "08:01:78"), None);
    }

    #[test]
    fn severities_order_by_gravity() {
        assert!(Severity::Corruption > Severity::TornTail);
        assert!(Severity::TornTail > Severity::Note);
        assert_eq!(Severity::TornTail.as_str(), "torn_tail");
    }
}
