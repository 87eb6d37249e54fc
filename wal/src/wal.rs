//! The log: opening (with recovery), appending, group commit, segment rolls, truncation.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::Lsn;
use crate::commit::Committer;
use crate::error::{Result, WalError};
use crate::follow::{LogFollower, RecentFrames};
use crate::format::{
    Checkpoint, PAD, SPARE_SEGMENT, SegmentHeader, encode_frame, frame_size, segment_file_name,
};
use crate::iter::WalIter;
use crate::killpoint::KillPoint;
use crate::options::{SyncPolicy, WalOptions};
use crate::recovery::{Recovered, RecoveredSegment, RecoveryReport, TMP_SUFFIX, recover};
use crate::storage::{FsStorage, LockGuard, SegmentFile, Storage};

/// Counters describing the log.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WalStats {
    /// First LSN still in the log (the next LSN if it is empty).
    pub first_lsn: Lsn,
    /// Last LSN written (0 if none).
    pub last_lsn: Lsn,
    /// Last LSN known durable.
    pub durable_lsn: Lsn,
    /// Last LSN covered by a checkpoint written: recovery takes every frame up to it as
    /// durable (damage there is corruption, never a torn tail). It trails `durable_lsn`
    /// by at most 256 KiB of frames or 50 ms under load, plus one sync, and catches up
    /// about 50 ms after the log goes idle.
    pub checkpoint_lsn: Lsn,
    /// Segment files in the log.
    pub segments: usize,
    /// Bytes of frames in the log (headers and padding included).
    pub bytes: u64,
    /// Syncs performed since open (group commits, rolls and explicit syncs).
    pub syncs: u64,
    /// Frames made durable by those syncs.
    pub frames_synced: u64,
    /// `frames_synced / syncs`: how many frames one sync carried on average.
    pub mean_frames_per_sync: f64,
    /// Spare segments that could not be prepared ahead of need (each is reported through
    /// `tracing`; the roll after one creates its segment on the commit path instead).
    pub spare_failures: u64,
}

/// The segment being appended to.
struct Active {
    file: Arc<dyn SegmentFile>,
    name: String,
    /// Its header: the salt, and the layout (where checkpoints and frames go).
    header: SegmentHeader,
    header_crc: u32,
    sealed: bool,
    checkpoint_seq: u64,
    /// `durable_end` of the newest checkpoint written.
    checkpoint_end: u64,
    /// When the newest checkpoint was written.
    checkpoint_at: Instant,
}

/// A sync carries a new checkpoint once the durable end has moved this far past the
/// last one...
const CHECKPOINT_LAG_BYTES: u64 = 256 << 10;
/// ...or the last one is this old. Under load, this spares most syncs a second page.
/// When the log goes idle, the background syncer writes the checkpoint this long after
/// the sync that left it behind (so it never lags for good once writes stop).
const CHECKPOINT_LAG: std::time::Duration = std::time::Duration::from_millis(50);

/// Everything the appender changes, under one mutex.
struct Writer {
    active: Active,
    offset: u64,
    next_lsn: Lsn,
    prev_crc: u32,
    synced_offset: u64,
    synced_lsn: Lsn,
    /// All segments (base LSN, file name, frame bytes), oldest first; the last is active.
    segments: Vec<(Lsn, String, u64)>,
    closed: bool,
    /// The spare for the next roll has been asked for (once the active segment is half
    /// full: the spare's preallocation then competes with commits for the disk only
    /// once per segment, and a short-lived log never makes one).
    spare_asked: bool,
}

pub(crate) struct Shared {
    storage: Arc<dyn Storage>,
    /// The frames appended most recently, while a follower lives.
    pub(crate) recent: RecentFrames,
    /// The first LSN a truncation keeps, set before it deletes a segment: a follower
    /// below it is behind, though the segments are not all gone yet.
    truncating_to: AtomicU64,
    opts: WalOptions,
    writer: Mutex<Writer>,
    committer: Committer,
    written_lsn: AtomicU64,
    syncs: AtomicU64,
    frames_synced: AtomicU64,
    /// Held across every sync of segment data, and until a failed one has poisoned the
    /// log: the kernel reports a writeback error to one caller only, so a sync that starts
    /// after another failed must see the poison, not a clean (and false) Ok.
    sync_gate: Mutex<()>,
    /// Spare segments that could not be prepared.
    spare_failures: AtomicU64,
    /// The spare segment prepared ahead of need ([`SPARE_SEGMENT`]).
    spare: Mutex<Spare>,
    spare_wake: Condvar,
    _lock: Box<dyn LockGuard>,
}

/// The spare segment's slot: the file once prepared, and what the preparer is asked.
#[derive(Default)]
struct Spare {
    file: Option<Arc<dyn SegmentFile>>,
    /// The active segment is half full: prepare the spare for the next roll.
    wanted: bool,
    /// The log is closing: the preparer stops.
    closed: bool,
}

/// A log whose directory is locked (see [`Wal::lock`]); nothing in it read or changed.
pub struct LockedLog {
    storage: Arc<dyn Storage>,
    opts: WalOptions,
    lock: Box<dyn LockGuard>,
}

impl std::fmt::Debug for LockedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedLog").field("dir", &self.storage.path()).finish_non_exhaustive()
    }
}

impl LockedLog {
    /// Runs recovery in the options' mode, reading only. `covered`: the caller holds the
    /// state up to this LSN elsewhere (a snapshot; 0: nothing), so the log need not keep
    /// segments wholly at or below it, and older ones stranded behind a gap there (by a
    /// truncation a power cut interrupted) are orphans to remove, not an LSN gap.
    pub fn recover(self, covered: Lsn) -> Result<RecoveredLog> {
        let recovered = recover(self.storage.as_ref(), self.opts.recovery_mode, covered, true)?;
        Ok(RecoveredLog { locked: self, recovered })
    }
}

/// A locked log whose recovery has decided what to keep, with nothing changed yet:
/// [`RecoveredLog::report`] says what it would cut, set aside and remove;
/// [`RecoveredLog::open`] does it and opens the log for appending. Dropping it changes
/// nothing and releases the lock.
pub struct RecoveredLog {
    locked: LockedLog,
    recovered: Recovered,
}

impl std::fmt::Debug for RecoveredLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveredLog")
            .field("dir", &self.locked.storage.path())
            .field("report", &self.recovered.report)
            .finish_non_exhaustive()
    }
}

impl RecoveredLog {
    /// What recovery decided: the LSNs the log will hold, what it would cut and set aside
    /// (named as they are now; the opened log's report names them as it left them).
    pub fn report(&self) -> &RecoveryReport {
        &self.recovered.report
    }

    /// Carries out the decision (every byte cut is first copied to a file of its own;
    /// set-aside segments are renamed, never over an existing name), reopens the last
    /// segment for appending and starts the background syncer.
    pub fn open(self) -> Result<Wal> {
        let RecoveredLog { locked: LockedLog { storage, opts, lock }, mut recovered } = self;
        let follow_cache_bytes = opts.follow_cache_bytes;
        recovered.apply(storage.as_ref())?;
        let writer = prepare_writer(storage.as_ref(), &opts, recovered.segments)?;
        let last = writer.next_lsn - 1;
        let shared = Arc::new(Shared {
            storage,
            opts,
            recent: RecentFrames::new(follow_cache_bytes),
            truncating_to: AtomicU64::new(0),
            writer: Mutex::new(writer),
            committer: Committer::new(last),
            written_lsn: AtomicU64::new(last),
            syncs: AtomicU64::new(0),
            frames_synced: AtomicU64::new(0),
            sync_gate: Mutex::new(()),
            spare_failures: AtomicU64::new(0),
            spare: Mutex::new(Spare::default()),
            spare_wake: Condvar::new(),
            _lock: lock,
        });
        let background = Arc::clone(&shared);
        let syncer = std::thread::Builder::new()
            .name("orderlog-wal-sync".into())
            .spawn(move || background.run_syncer())
            .map_err(|e| WalError::io("starting sync thread", shared.storage.path(), e))?;
        let preparer = if shared.storage.background_io() {
            let background = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("orderlog-wal-spare".into())
                .spawn(move || background.run_preparer());
            match spawned {
                Ok(handle) => Some(handle),
                Err(e) => {
                    // The log works without it: each roll creates its segment in line.
                    tracing::warn!(error = %e, "cannot start the spare-segment thread");
                    None
                }
            }
        } else {
            None
        };
        Ok(Wal {
            shared,
            syncer: Mutex::new(Some(syncer)),
            preparer: Mutex::new(preparer),
            report: recovered.report,
        })
    }
}

/// A segmented, memory-mapped, checksummed write-ahead log of opaque byte frames.
///
/// `Wal` is `Send + Sync`: share it (in an `Arc`) between writer threads and tasks;
/// concurrent appends are serialised only for the copy into the mapping and share syncs.
pub struct Wal {
    shared: Arc<Shared>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    /// Prepares the spare segment in the background (none on a storage that wants its
    /// I/O in line, the simulated disk).
    preparer: Mutex<Option<JoinHandle<()>>>,
    report: RecoveryReport,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.shared.storage.path()).finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<Wal> {
        let storage = FsStorage::new(dir.as_ref()).with_backend(opts.backend());
        Wal::open_with(Arc::new(storage), opts)
    }

    /// Opens the log on any storage (the simulated disk in tests).
    pub fn open_with(storage: Arc<dyn Storage>, opts: WalOptions) -> Result<Wal> {
        Wal::lock(storage, opts)?.recover(0)?.open()
    }

    /// The first step of an open in three: creates the log's directory if needed and
    /// takes its writer lock. Then [`LockedLog::recover`] decides what to keep, reading
    /// only, and [`RecoveredLog::open`] carries it out; a caller may look at the decision
    /// in between (the store checks that the log continues its snapshot) and walk away
    /// with nothing changed.
    pub fn lock(storage: Arc<dyn Storage>, opts: WalOptions) -> Result<LockedLog> {
        opts.validate()?;
        let dir = storage.path().to_path_buf();
        storage.create_dir().map_err(|e| WalError::io("creating directory", &dir, e))?;
        let lock = storage
            .try_lock()
            .map_err(|e| WalError::io("locking", &dir, e))?
            .ok_or(WalError::Locked { path: dir })?;
        Ok(LockedLog { storage, opts, lock })
    }

    /// What recovery found and did when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.shared.opts
    }

    /// The log's directory.
    pub fn path(&self) -> &Path {
        self.shared.storage.path()
    }

    /// Appends one frame; returns once it is durable as the sync policy promises.
    pub fn append(&self, payload: &[u8]) -> Result<Lsn> {
        let lsns = self.shared.write_group(&[payload])?;
        self.commit(*lsns.end())?;
        Ok(*lsns.end())
    }

    /// Appends a group of frames atomically: after a crash, all of them or none are found.
    pub fn append_batch(&self, payloads: &[&[u8]]) -> Result<RangeInclusive<Lsn>> {
        let lsns = self.shared.write_group(payloads)?;
        self.commit(*lsns.end())?;
        Ok(lsns)
    }

    /// Copies a group into the log without waiting for durability, whatever the policy.
    /// Pair with [`Wal::wait_durable`] to release a lock between the two.
    pub fn write(&self, payloads: &[&[u8]]) -> Result<RangeInclusive<Lsn>> {
        self.shared.write_group(payloads)
    }

    /// Blocks until every frame up to `lsn` is durable, syncing if needed.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        self.check_written(lsn)?;
        let shared = &self.shared;
        shared.committer.wait_durable(lsn, || shared.sync_written())
    }

    /// Syncs everything written so far.
    pub fn sync(&self) -> Result<()> {
        self.wait_durable(self.last_lsn())
    }

    /// Async form of [`Wal::append`]: the future completes when group commit has synced
    /// the frame (policy `Always`) or at once (other policies). The copy into the mapping
    /// happens before the first await.
    pub async fn append_async(&self, payload: &[u8]) -> Result<Lsn> {
        let lsns = self.shared.write_group(&[payload])?;
        self.commit_async(*lsns.end()).await?;
        Ok(*lsns.end())
    }

    /// Async form of [`Wal::append_batch`].
    pub async fn append_batch_async(&self, payloads: &[&[u8]]) -> Result<RangeInclusive<Lsn>> {
        let lsns = self.shared.write_group(payloads)?;
        self.commit_async(*lsns.end()).await?;
        Ok(lsns)
    }

    /// Async form of [`Wal::wait_durable`]: the background syncer does the sync.
    pub async fn wait_durable_async(&self, lsn: Lsn) -> Result<()> {
        self.check_written(lsn)?;
        self.shared.committer.request(lsn);
        self.shared.committer.durable_async(lsn).await
    }

    /// An LSN not yet written can never become durable: refuse to wait for it.
    fn check_written(&self, lsn: Lsn) -> Result<()> {
        let last = self.last_lsn();
        if lsn > last {
            let first = self.stats().first_lsn;
            return Err(WalError::LsnOutOfRange { requested: lsn, first, last });
        }
        Ok(())
    }

    fn commit(&self, lsn: Lsn) -> Result<()> {
        match self.shared.opts.sync_policy {
            SyncPolicy::Always => self.wait_durable(lsn),
            _ => self.shared.committer.check_poisoned(),
        }
    }

    async fn commit_async(&self, lsn: Lsn) -> Result<()> {
        match self.shared.opts.sync_policy {
            SyncPolicy::Always => self.wait_durable_async(lsn).await,
            _ => self.shared.committer.check_poisoned(),
        }
    }

    /// Whether a frame of `payload_len` bytes would start a new segment (which creates,
    /// preallocates and syncs a file: milliseconds, where an append is microseconds).
    /// A hint: another writer may fill the segment first.
    pub fn would_roll(&self, payload_len: usize) -> bool {
        let w = self.shared.lock_writer();
        w.active.sealed || w.offset + frame_size(payload_len) > w.active.file.size()
    }

    /// LSN of the first frame still in the log (the next LSN if it holds none).
    pub fn first_lsn(&self) -> Lsn {
        self.shared.first_lsn()
    }

    /// LSN of the last frame written (durable or not); 0 if none.
    pub fn last_lsn(&self) -> Lsn {
        self.shared.last_lsn()
    }

    /// LSN of the last frame known durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.committer.durable_lsn()
    }

    /// Blocks until the durable LSN passes `seen`, or `timeout` passes; returns the
    /// durable LSN then (`seen` or below on a timeout). A poisoned log is an error; a
    /// closed one is [`WalError::Closed`] once its last frame is durable (nothing more
    /// will become durable).
    pub fn wait_durable_beyond(&self, seen: Lsn, timeout: std::time::Duration) -> Result<Lsn> {
        self.shared.committer.wait_beyond(seen, timeout)
    }

    /// Async form of [`Wal::wait_durable_beyond`], without a timeout.
    pub async fn durable_beyond_async(&self, seen: Lsn) -> Result<Lsn> {
        self.shared.committer.beyond_async(seen).await
    }

    /// A follower of the log's durable frames from `from` on ([`LogFollower`]). While
    /// one lives, writers also copy each frame into a cache of recent frames (at most
    /// [`WalOptions::follow_cache_bytes`] of payload) that followers read once caught
    /// up; with none, appending costs what it did.
    pub fn follow(&self, from: Lsn) -> LogFollower {
        LogFollower::new(Arc::clone(&self.shared), from)
    }

    /// LSN of the last frame in a sealed segment: every frame up to it is durable and its
    /// segment will not change again (0 if no segment is sealed). What a compactor may fold.
    pub fn sealed_lsn(&self) -> Lsn {
        let w = self.shared.lock_writer();
        if w.active.sealed {
            return w.next_lsn - 1;
        }
        w.segments.last().map_or(0, |s| s.0 - 1)
    }

    /// The base LSN of every segment, oldest first (the last one is being appended to).
    pub fn segment_bases(&self) -> Vec<Lsn> {
        self.shared.lock_writer().segments.iter().map(|s| s.0).collect()
    }

    /// Every segment's base LSN and bytes of frames (headers and padding included),
    /// oldest first (the last one is being appended to).
    pub fn segment_sizes(&self) -> Vec<(Lsn, u64)> {
        self.shared.lock_writer().segments.iter().map(|s| (s.0, s.2)).collect()
    }

    /// Reads frames from `from` to the last LSN written when the iterator was made.
    pub fn iter_from(&self, from: Lsn) -> Result<WalIter> {
        self.shared.iter_from(from)
    }

    /// Passes the named kill `point` (see [`crate::killpoint`]): the log's storage may end
    /// the process there (real storage, `ORDERLOG_KILL_POINT`) or fail from then on (the
    /// simulated disk). For the store's compactor, whose steps the log does not see.
    pub fn kill_point(&self, point: KillPoint) -> Result<()> {
        let storage = &self.shared.storage;
        storage.kill_point(point).map_err(|e| WalError::io("kill point", storage.path(), e))
    }

    /// Deletes segments all of whose frames are below `lsn`; never the active segment.
    /// Returns how many were deleted.
    pub fn truncate_before(&self, lsn: Lsn) -> Result<usize> {
        // Choose under the lock, delete outside it (writers carry on), then forget only
        // the segments actually deleted, so a failed delete is retried next time.
        let doomed: Vec<String> = {
            let w = self.shared.lock_writer();
            let covered = w.segments.windows(2).take_while(|pair| pair[1].0 <= lsn).count();
            if let Some(kept) = w.segments.get(covered) {
                self.shared.truncating_to.fetch_max(kept.0, Ordering::AcqRel);
            }
            w.segments[..covered].iter().map(|(_, name, _)| name.clone()).collect()
        };
        // Oldest first, each removal made durable before the next: a file system may
        // persist unsynced removals in any order, and a log missing a middle segment
        // while an older one survived would not read as one log after a power cut.
        let storage = &self.shared.storage;
        let mut deleted = Vec::with_capacity(doomed.len());
        let mut failure = None;
        for name in doomed {
            let removed = match storage.remove(&name) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
            let durable = removed
                .and_then(|()| storage.kill_point(KillPoint::SegmentRemoved))
                .and_then(|()| storage.sync_dir());
            match durable {
                Ok(()) => deleted.push(name),
                Err(e) => {
                    failure = Some(WalError::io("removing segment", storage.path().join(&name), e));
                    break;
                }
            }
        }
        if !deleted.is_empty() {
            self.shared.lock_writer().segments.retain(|(_, name, _)| !deleted.contains(name));
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(deleted.len()),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> WalStats {
        let w = self.shared.lock_writer();
        let first_lsn = w.segments.first().map_or(w.next_lsn, |s| s.0);
        let sealed_bytes: u64 = w.segments[..w.segments.len() - 1].iter().map(|s| s.2).sum();
        let bytes = sealed_bytes + (w.offset - w.active.header.frames_offset());
        let segments = w.segments.len();
        drop(w);
        let syncs = self.shared.syncs.load(Ordering::Relaxed);
        let frames_synced = self.shared.frames_synced.load(Ordering::Relaxed);
        WalStats {
            first_lsn,
            last_lsn: self.last_lsn(),
            durable_lsn: self.durable_lsn(),
            checkpoint_lsn: self.shared.committer.lock().checkpointed_lsn,
            segments,
            bytes,
            syncs,
            frames_synced,
            mean_frames_per_sync: if syncs == 0 {
                0.0
            } else {
                frames_synced as f64 / syncs as f64
            },
            spare_failures: self.shared.spare_failures.load(Ordering::Relaxed),
        }
    }

    /// Syncs everything, writes a final checkpoint and stops the background syncer.
    /// Later calls return [`WalError::Closed`]. Dropping the log does the same, ignoring
    /// errors; call `close` to see them.
    pub fn close(&self) -> Result<()> {
        self.stop_syncer();
        self.stop_preparer();
        self.shared.close()
    }

    /// Stops the spare-segment thread and removes the spare (best effort: it holds no
    /// frame, and the next open removes a leftover).
    fn stop_preparer(&self) {
        self.shared.lock_spare().closed = true;
        self.shared.spare_wake.notify_all();
        let handle = self.preparer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            // The preparer only returns; a panic there is already reported on its thread.
            let _ = handle.join();
        }
        // Under the writer's lock: a roll racing this close has either renamed the spare
        // already or finds none and creates its segment itself.
        let _writer = self.shared.lock_writer();
        self.shared.lock_spare().file = None;
        let _ = self.shared.storage.remove(SPARE_SEGMENT);
    }

    fn stop_syncer(&self) {
        {
            let mut st = self.shared.committer.lock();
            st.shutdown = true;
        }
        self.shared.committer.wake_syncer();
        let handle = self.syncer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            // The syncer only returns; a panic there is already reported on its thread.
            let _ = handle.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Reopens the last segment for appending (zeroing a torn tail and checkpointing what
/// recovery kept), or creates the first segment.
fn prepare_writer(
    storage: &dyn Storage,
    opts: &WalOptions,
    segments: Vec<RecoveredSegment>,
) -> Result<Writer> {
    let mut list: Vec<(Lsn, String, u64)> = segments
        .iter()
        .map(|s| {
            let frame_bytes = s.scan.valid_end - s.scan.header.frames_offset();
            (s.scan.header.base_lsn, s.name.clone(), frame_bytes)
        })
        .collect();
    let Some(last) = segments.into_iter().last() else {
        let active = create_segment(storage, opts, 1)?;
        return Ok(fresh_writer(active, 1, vec![(1, segment_file_name(1), 0)]));
    };
    let scan = &last.scan;
    let path = storage.path().join(&last.name);
    let file = storage
        .open(&last.name, scan.header.segment_bytes)
        .map_err(|e| WalError::io("opening segment", &path, e))?;
    let io = |op, e| WalError::io(op, &path, e);
    zero_range(file.as_ref(), scan.valid_end, last.written_extent)
        .map_err(|e| io("zeroing torn tail", e))?;
    // Everything recovery kept becomes durable, and the checkpoint says so, so that a
    // second recovery finds exactly the same log. (Recovery read what follows the last
    // checkpoint past the page cache, so none of it is a failed sync's leftover.)
    let mut active = Active {
        file,
        name: last.name.clone(),
        header: scan.header,
        header_crc: scan.header_crc,
        sealed: false,
        checkpoint_seq: scan.checkpoint.map_or(0, |c| c.seq),
        checkpoint_end: scan.header.frames_offset(),
        checkpoint_at: Instant::now(),
    };
    let sync_len = scan.valid_end.max(last.written_extent);
    active.file.sync_range(0, sync_len).map_err(|e| io("syncing segment", e))?;
    let sealed = scan.sealed() && scan.valid_end == scan.durable_end();
    write_checkpoint(&mut active, scan.valid_end, scan.next_lsn - 1, sealed, 2)
        .map_err(|e| io("writing checkpoint", e))?;
    active
        .file
        .sync_range(0, scan.header.frames_offset())
        .map_err(|e| io("syncing checkpoint", e))?;
    active.sealed = sealed;
    if let Some(entry) = list.last_mut() {
        entry.2 = scan.valid_end - scan.header.frames_offset();
    }
    Ok(Writer {
        active,
        offset: scan.valid_end,
        next_lsn: scan.next_lsn,
        prev_crc: scan.last_crc,
        synced_offset: scan.valid_end,
        synced_lsn: scan.next_lsn - 1,
        segments: list,
        closed: false,
        spare_asked: false,
    })
}

fn fresh_writer(active: Active, next_lsn: Lsn, segments: Vec<(Lsn, String, u64)>) -> Writer {
    let start = active.header.frames_offset();
    Writer {
        prev_crc: active.header_crc,
        active,
        offset: start,
        next_lsn,
        synced_offset: start,
        synced_lsn: next_lsn - 1,
        segments,
        closed: false,
        spare_asked: false,
    }
}

/// Writes zeros over `from..to` (a torn tail recovery cut off).
fn zero_range(file: &dyn SegmentFile, from: u64, to: u64) -> std::io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(to.saturating_sub(from) as usize)];
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK as u64) as usize;
        file.write_at(at, &[&zeros[..n]])?;
        at += n as u64;
    }
    Ok(())
}

/// Writes a checkpoint into `copies` alternating slots (2 = both, for a final one).
fn write_checkpoint(
    active: &mut Active,
    durable_end: u64,
    last_lsn: Lsn,
    sealed: bool,
    copies: u64,
) -> std::io::Result<()> {
    for _ in 0..copies {
        active.checkpoint_seq += 1;
        let c = Checkpoint { seq: active.checkpoint_seq, durable_end, last_lsn, sealed };
        let at = c.slot_offset(&active.header) as u64;
        active.file.write_at(at, &[&c.encode(active.header_crc)])?;
    }
    active.checkpoint_end = durable_end;
    active.checkpoint_at = Instant::now();
    Ok(())
}

/// Creates and preallocates a new segment under a temporary name, then stamps it as
/// [`stamp_segment`] does. On failure nothing is left behind.
fn create_segment(storage: &dyn Storage, opts: &WalOptions, base_lsn: Lsn) -> Result<Active> {
    let tmp = format!("{}{TMP_SUFFIX}", segment_file_name(base_lsn));
    let file = storage
        .create(&tmp, opts.segment_bytes)
        .map_err(|e| WalError::io("creating segment", storage.path().join(&tmp), e))?;
    stamp_segment(storage, file, &tmp, base_lsn)
}

/// Makes the preallocated `file` (named `spare_name`: the spare, or a segment just
/// created under a temporary name) the segment starting at `base_lsn`: stamps and syncs
/// its header, then renames it and makes the name durable, before anything is appended
/// to it. On failure the file is removed.
fn stamp_segment(
    storage: &dyn Storage,
    file: Arc<dyn SegmentFile>,
    spare_name: &str,
    base_lsn: Lsn,
) -> Result<Active> {
    let name = segment_file_name(base_lsn);
    let path = storage.path().join(&name);
    let header = SegmentHeader::new(base_lsn, rand::random(), file.size());
    let bytes = header.encode();
    let stamped = file
        .write_at(0, &[&bytes])
        .and_then(|()| storage.kill_point(KillPoint::SegmentCreated))
        .and_then(|()| file.sync_range(0, header.frames_offset()))
        .and_then(|()| storage.sync_file(spare_name))
        .and_then(|()| storage.rename(spare_name, &name))
        .and_then(|()| storage.sync_dir())
        .and_then(|()| storage.kill_point(KillPoint::SegmentReady));
    if let Err(e) = stamped {
        // Best effort: the file holds no frames, so leaving it would be harmless too.
        let _ = storage.remove(spare_name);
        let _ = storage.remove(&name);
        return Err(WalError::io("creating segment", &path, e));
    }
    let (_, header_crc) = SegmentHeader::decode(&bytes)
        .map_err(|why| WalError::InvalidOptions(format!("new segment header invalid: {why}")))?;
    Ok(Active {
        file,
        name,
        header,
        header_crc,
        sealed: false,
        checkpoint_seq: 0,
        checkpoint_end: header.frames_offset(),
        checkpoint_at: Instant::now(),
    })
}

impl Shared {
    /// See [`Wal::first_lsn`].
    pub(crate) fn first_lsn(&self) -> Lsn {
        let w = self.lock_writer();
        w.segments.first().map_or(w.next_lsn, |s| s.0)
    }

    /// The first LSN a follower can still read: [`Wal::first_lsn`], or the first LSN a
    /// truncation under way keeps.
    pub(crate) fn follow_floor(&self) -> Lsn {
        self.first_lsn().max(self.truncating_to.load(Ordering::Acquire))
    }

    /// See [`Wal::last_lsn`].
    pub(crate) fn last_lsn(&self) -> Lsn {
        self.written_lsn.load(Ordering::Acquire)
    }

    /// See [`Wal::durable_lsn`].
    pub(crate) fn durable_lsn(&self) -> Lsn {
        self.committer.durable_lsn()
    }

    /// See [`Wal::iter_from`].
    pub(crate) fn iter_from(self: &Arc<Self>, from: Lsn) -> Result<WalIter> {
        let w = self.lock_writer();
        let segments = w.segments.iter().map(|(b, n, _)| (*b, n.clone())).collect();
        let last = w.next_lsn - 1;
        drop(w);
        WalIter::new(Arc::clone(&self.storage), segments, from, last)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // Code under this lock returns errors rather than panicking; if a panic ever
        // happened mid-update, the poisoned flag below keeps writers out.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.storage.path().join(name)
    }

    fn check_limits(&self, payloads: &[&[u8]]) -> Result<u64> {
        let opts = &self.opts;
        if payloads.is_empty() {
            return Err(WalError::EmptyBatch);
        }
        let mut bytes = 0u64;
        let frame_max = opts.frame_bytes_limit();
        for p in payloads {
            if p.len() > frame_max {
                return Err(WalError::FrameTooLarge { len: p.len(), max: frame_max });
            }
            bytes += frame_size(p.len());
        }
        let bytes_max = opts.batch_bytes_limit();
        if payloads.len() > opts.batch_frames_max || bytes > bytes_max {
            return Err(WalError::BatchTooLarge {
                frames: payloads.len(),
                bytes,
                max_frames: opts.batch_frames_max,
                max_bytes: bytes_max,
            });
        }
        Ok(bytes)
    }

    /// Copies a group into the active segment (rolling first if it does not fit).
    fn write_group(&self, payloads: &[&[u8]]) -> Result<RangeInclusive<Lsn>> {
        let need = self.check_limits(payloads)?;
        let mut w = self.lock_writer();
        if w.closed {
            return Err(WalError::Closed);
        }
        self.committer.check_poisoned()?;
        if w.active.sealed || w.offset + need > w.active.file.size() {
            self.roll(&mut w)?;
        }
        let first = w.next_lsn;
        let (written, crc) = Self::copy_frames(&w, payloads);
        let written = written.and_then(|()| self.storage.kill_point(KillPoint::AppendWritten));
        if let Err(e) = written {
            // Part of the group may be in the file: nothing more can be appended safely.
            let err = WalError::io("writing frames", self.path_of(&w.active.name), e);
            self.committer.poison(&err);
            return Err(err);
        }
        let last = first + payloads.len() as u64 - 1;
        if self.recent.wanted() {
            // Before the frames can be synced (the writer's lock is held): a follower
            // that sees them durable finds them here, unless the cache moved past them.
            self.recent.record(first, payloads);
        }
        w.offset += need;
        w.next_lsn = last + 1;
        w.prev_crc = crc;
        if let Some(entry) = w.segments.last_mut() {
            entry.2 += need;
        }
        self.written_lsn.store(last, Ordering::Release);
        if !w.spare_asked && w.offset >= w.active.file.size() / 2 {
            w.spare_asked = true;
            self.want_spare();
        }
        Ok(first..=last)
    }

    /// Encodes `payloads` as frames chained from the writer's state and copies them into
    /// the active segment with one write. Returns the write's outcome and the last crc.
    fn copy_frames(w: &Writer, payloads: &[&[u8]]) -> (std::io::Result<()>, u32) {
        let salt = w.active.header.salt;
        let pad_of = |p: &[u8]| &PAD[..p.len().next_multiple_of(8) - p.len()];
        if let [payload] = payloads {
            // The common case, without allocating.
            let (h, _) = encode_frame(w.prev_crc, salt, w.next_lsn, payload, false);
            let header = h.encode();
            return (w.active.file.write_at(w.offset, &[&header, payload, pad_of(payload)]), h.crc);
        }
        let mut crc = w.prev_crc;
        let mut headers = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            let lsn = w.next_lsn + i as u64;
            let (h, _) = encode_frame(crc, salt, lsn, p, i + 1 < payloads.len());
            crc = h.crc;
            headers.push(h.encode());
        }
        let mut parts: Vec<&[u8]> = Vec::with_capacity(payloads.len() * 3);
        for (header, payload) in headers.iter().zip(payloads) {
            parts.extend_from_slice(&[header, payload, pad_of(payload)]);
        }
        (w.active.file.write_at(w.offset, &parts), crc)
    }

    /// Seals the active segment (if not yet) and starts a new one.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        if !w.active.sealed
            && let Err(e) = self.seal(w)
        {
            self.committer.poison(&e);
            return Err(e);
        }
        let spare = {
            let mut spare = self.lock_spare();
            spare.wanted = false;
            spare.file.take()
        };
        let active = match spare {
            Some(file) => stamp_segment(self.storage.as_ref(), file, SPARE_SEGMENT, w.next_lsn)?,
            None => create_segment(self.storage.as_ref(), &self.opts, w.next_lsn)?,
        };
        w.segments.push((w.next_lsn, active.name.clone(), 0));
        let next = w.next_lsn;
        let segments = std::mem::take(&mut w.segments);
        *w = fresh_writer(active, next, segments);
        Ok(())
    }

    fn lock_spare(&self) -> MutexGuard<'_, Spare> {
        // Plain field updates under this lock: nothing panics while it is held.
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for the next spare: the background thread makes it, or (on a storage that
    /// wants its I/O in line) it is made here and now, in the same order every time.
    fn want_spare(&self) {
        if self.storage.background_io() {
            self.lock_spare().wanted = true;
            self.spare_wake.notify_all();
        } else if let Some(file) = self.prepare_spare() {
            self.lock_spare().file = Some(file);
        }
    }

    /// Creates, preallocates and syncs the spare segment (removing a leftover first).
    /// A failure is counted and reported, and leaves no spare (nor its file, whose
    /// zeros the disk may not hold): the next roll creates its segment in line.
    fn prepare_spare(&self) -> Option<Arc<dyn SegmentFile>> {
        let prepared = match self.storage.remove(SPARE_SEGMENT) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => self.storage.create(SPARE_SEGMENT, self.opts.segment_bytes).and_then(|file| {
                // Its zeros and its allocation durable now, so the roll that takes it
                // syncs its header only.
                self.storage.sync_file(SPARE_SEGMENT).map(|()| file)
            }),
        };
        match prepared {
            Ok(file) => Some(file),
            Err(e) => {
                self.spare_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    error = %e,
                    "cannot prepare the spare log segment: the next roll creates its segment on the commit path"
                );
                let _ = self.storage.remove(SPARE_SEGMENT);
                None
            }
        }
    }

    /// The spare-segment thread: prepares a spare whenever one is wanted, until the log
    /// closes.
    fn run_preparer(&self) {
        loop {
            {
                let mut spare = self.lock_spare();
                let work = |s: &Spare| s.closed || (s.wanted && s.file.is_none());
                while !work(&spare) {
                    spare = self.spare_wake.wait(spare).unwrap_or_else(|p| p.into_inner());
                }
                if spare.closed {
                    return;
                }
                spare.wanted = false;
            }
            if let Some(file) = self.prepare_spare() {
                let mut spare = self.lock_spare();
                if spare.closed {
                    return;
                }
                spare.file = Some(file);
            }
        }
    }

    /// Syncs the rest of the active segment and marks it sealed, durably.
    fn seal(&self, w: &mut Writer) -> Result<()> {
        let path = self.path_of(&w.active.name);
        let (from, to) = (w.synced_offset, w.offset);
        let last = w.next_lsn - 1;
        let synced = self.gated_sync(|| {
            w.active
                .file
                .sync_range(from, to - from)
                .map_err(|e| WalError::io("syncing segment", &path, e))?;
            write_checkpoint(&mut w.active, to, last, true, 2)
                .map_err(|e| WalError::io("writing checkpoint", &path, e))?;
            w.active
                .file
                .sync_range(0, w.active.header.frames_offset())
                .map_err(|e| WalError::io("syncing checkpoint", &path, e))
        });
        synced?;
        self.count_sync(last - w.synced_lsn);
        w.active.sealed = true;
        w.synced_offset = to;
        w.synced_lsn = last;
        self.committer.checkpointed(last);
        self.committer.advance(last);
        Ok(())
    }

    /// Runs `sync` under the sync gate: refuses if the log is already poisoned, and
    /// poisons it before releasing the gate if `sync` fails.
    fn gated_sync(&self, sync: impl FnOnce() -> Result<()>) -> Result<()> {
        let _gate = self.sync_gate.lock().unwrap_or_else(|p| p.into_inner());
        self.committer.check_poisoned()?;
        let outcome = sync();
        if let Err(e) = &outcome {
            self.committer.poison(e);
        }
        outcome
    }

    fn count_sync(&self, frames: u64) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.frames_synced.fetch_add(frames, Ordering::Relaxed);
    }

    /// Makes everything written so far durable; returns the LSN covered. Run by one
    /// leader at a time (see `commit`).
    fn sync_written(&self) -> Result<Lsn> {
        let (file, name, start, to, lsn, before, piggybacked) = {
            let mut w = self.lock_writer();
            if w.offset == w.synced_offset {
                return Ok(w.synced_lsn);
            }
            // Piggyback a checkpoint of what the previous syncs made durable: it rides
            // on this sync's flush and lets recovery tell durable frames from a torn tail.
            let mut start = w.synced_offset;
            let mut piggybacked = None;
            let behind = w.synced_offset - w.active.checkpoint_end.min(w.synced_offset);
            if behind > 0
                && (behind >= CHECKPOINT_LAG_BYTES
                    || w.active.checkpoint_at.elapsed() >= CHECKPOINT_LAG)
            {
                let (end, last) = (w.synced_offset, w.synced_lsn);
                let name = w.active.name.clone();
                write_checkpoint(&mut w.active, end, last, false, 1)
                    .map_err(|e| WalError::io("writing checkpoint", self.path_of(&name), e))?;
                start = 0;
                piggybacked = Some(last);
            }
            let file = Arc::clone(&w.active.file);
            let name = w.active.name.clone();
            (file, name, start, w.offset, w.next_lsn - 1, w.synced_lsn, piggybacked)
        };
        self.gated_sync(|| {
            file.sync_range(start, to - start)
                .and_then(|()| self.storage.kill_point(KillPoint::SyncDone))
                .map_err(|e| WalError::io("syncing segment", self.path_of(&name), e))
        })?;
        self.count_sync(lsn.saturating_sub(before));
        if let Some(last) = piggybacked {
            self.committer.checkpointed(last);
        }
        let mut w = self.lock_writer();
        if Arc::ptr_eq(&w.active.file, &file) && to > w.synced_offset {
            w.synced_offset = to;
            w.synced_lsn = lsn;
        }
        Ok(lsn)
    }

    /// The background syncer: serves async waiters and the `Interval` policy, and writes
    /// the checkpoint once the log goes idle with it behind.
    fn run_syncer(&self) {
        enum Work {
            Sync(Lsn),
            Checkpoint,
        }
        let interval = match self.opts.sync_policy {
            SyncPolicy::Interval(d) => Some(d),
            _ => None,
        };
        let mut next_tick = interval.map(|d| Instant::now() + d);
        // Since when the checkpoint has been seen behind the durable end.
        let mut behind_since: Option<Instant> = None;
        loop {
            let work = {
                let mut st = self.committer.lock();
                loop {
                    if st.shutdown {
                        return;
                    }
                    if st.poisoned.is_none() && st.requested_lsn > st.durable_lsn {
                        break Work::Sync(st.requested_lsn);
                    }
                    let now = Instant::now();
                    if let (Some(d), Some(tick)) = (interval, next_tick)
                        && now >= tick
                    {
                        next_tick = Some(now + d);
                        let written = self.written_lsn.load(Ordering::Acquire);
                        if st.poisoned.is_none() && written > st.durable_lsn {
                            break Work::Sync(written);
                        }
                        continue;
                    }
                    let behind = st.poisoned.is_none() && st.durable_lsn > st.checkpointed_lsn;
                    let checkpoint_at = match (behind, behind_since) {
                        (false, _) => {
                            behind_since = None;
                            None
                        }
                        (true, Some(since)) => Some(since + CHECKPOINT_LAG),
                        (true, None) => {
                            behind_since = Some(now);
                            Some(now + CHECKPOINT_LAG)
                        }
                    };
                    if checkpoint_at.is_some_and(|at| now >= at) {
                        behind_since = None;
                        break Work::Checkpoint;
                    }
                    let wake_at = match (checkpoint_at, next_tick) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    st = match wake_at {
                        Some(at) => self.committer.wait_for_work(st, Some(at - now)),
                        None => {
                            st.syncer_parked = true;
                            let mut st = self.committer.wait_for_work(st, None);
                            st.syncer_parked = false;
                            st
                        }
                    };
                }
            };
            match work {
                // Failures poison the log inside `wait_durable`; waiters see it there.
                Work::Sync(target) => {
                    let _ = self.committer.wait_durable(target, || self.sync_written());
                }
                // A failure poisons the log inside `gated_sync`.
                Work::Checkpoint => {
                    let _ = self.checkpoint_if_idle();
                }
            }
        }
    }

    /// Writes and syncs a checkpoint of what earlier syncs made durable, if the newest
    /// one lags behind it and is at least [`CHECKPOINT_LAG`] old (under load, syncs carry
    /// checkpoints themselves and this does nothing).
    fn checkpoint_if_idle(&self) -> Result<()> {
        let (file, name, pages, last) = {
            let mut w = self.lock_writer();
            let (end, last) = (w.synced_offset, w.synced_lsn);
            if w.closed
                || w.active.sealed
                || w.active.checkpoint_end >= end
                || w.active.checkpoint_at.elapsed() < CHECKPOINT_LAG
            {
                return Ok(());
            }
            let name = w.active.name.clone();
            write_checkpoint(&mut w.active, end, last, false, 1)
                .map_err(|e| WalError::io("writing checkpoint", self.path_of(&name), e))?;
            (Arc::clone(&w.active.file), name, w.active.header.frames_offset(), last)
        };
        self.gated_sync(|| {
            file.sync_range(0, pages)
                .map_err(|e| WalError::io("syncing checkpoint", self.path_of(&name), e))
        })?;
        self.committer.checkpointed(last);
        Ok(())
    }

    /// Final sync and checkpoint; marks the writer closed.
    fn close(&self) -> Result<()> {
        // Refuse new writes first, so that everything synced below is everything written.
        let last = {
            let mut w = self.lock_writer();
            if w.closed {
                return Ok(());
            }
            w.closed = true;
            w.next_lsn - 1
        };
        self.committer.check_poisoned()?;
        self.committer.wait_durable(last, || self.sync_written())?;
        let mut w = self.lock_writer();
        let path = self.path_of(&w.active.name);
        // Only what the syncs made durable: equal to everything written, as writes stopped.
        let (end, last, sealed) = (w.synced_offset, w.synced_lsn, w.active.sealed);
        if w.active.checkpoint_end != end || !sealed {
            self.gated_sync(|| {
                write_checkpoint(&mut w.active, end, last, sealed, 2)
                    .and_then(|()| w.active.file.sync_range(0, w.active.header.frames_offset()))
                    .map_err(|e| WalError::io("writing final checkpoint", &path, e))
            })?;
            self.committer.checkpointed(last);
        }
        drop(w);
        self.committer.closed();
        Ok(())
    }
}
