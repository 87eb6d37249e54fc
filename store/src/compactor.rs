//! The compactor: folds the previous snapshot plus sealed log segments into the next
//! snapshot, publishes it, then drops the log segments it covers.
//!
//! It never touches the live state: it loads the previous snapshot into a state of its
//! own and replays sealed segments (which no writer changes) with the same fold as
//! recovery. Writers are never blocked: the only shared things are the log (read from
//! sealed segments, then `truncate_before`) and the snapshot directory (its own lock).
//! The cost is memory: a compaction holds a second copy of the state.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use orderlog_snapshot::{Covers, PublishStep, SnapshotOptions, SnapshotStore};
use orderlog_wal::{KillPoint, Lsn, Wal};

use crate::error::Result;
use crate::fold::apply_range;
use crate::state::OrderState;

/// Schema version recorded in snapshots of [`OrderState`].
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// When the background compactor runs, and what it keeps.
#[derive(Debug, Clone)]
pub struct CompactionOptions {
    /// Run in the background (otherwise only [`crate::OrderStore::compact`] compacts).
    pub background: bool,
    /// Compact once the log holds this many bytes (default 256 MiB).
    pub wal_bytes_trigger: u64,
    /// ...or once this long has passed since the last compaction (default 10 minutes).
    pub interval: Duration,
    /// Sealed segments to keep below the oldest snapshot the manifest lists, for
    /// point-in-time replay (default 0). The log is always kept back to that snapshot,
    /// so that it can stand in for a newer one found damaged (with the default
    /// `snapshot.keep_last = 2`: about one compaction's worth of log more on disk; see
    /// `orderlog stats`, "kept below the newest snapshot").
    pub retain_segments: usize,
    /// How snapshots are written (compression, partitioning, snapshots kept). The
    /// default is `SnapshotOptions::default()` with `early_writeback` off: starting the
    /// snapshot files' writeback early makes every commit that syncs meanwhile wait
    /// for it (writers' p99 during a compaction of 1M orders, six rounds each: median
    /// 2.07× quiet with it, 1.70× without; docs/benchmarks.md), while the compaction
    /// takes as long either way.
    pub snapshot: SnapshotOptions,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            background: true,
            wal_bytes_trigger: 256 << 20,
            interval: Duration::from_secs(600),
            retain_segments: 0,
            snapshot: SnapshotOptions { early_writeback: false, ..SnapshotOptions::default() },
        }
    }
}

/// What one compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionReport {
    /// LSN of the snapshot it started from (0: none).
    pub from_lsn: Lsn,
    /// LSN of the snapshot it published (equal to `from_lsn` if there was nothing to do).
    pub to_lsn: Lsn,
    /// Log frames folded in.
    pub batches: u64,
    /// Orders in the new snapshot.
    pub orders: u64,
    /// Log segments deleted.
    pub segments_removed: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// Runs one compaction: snapshot at the last sealed LSN, then truncate the log.
/// `hook` sees each publish step (tests stop there to simulate a crash).
pub(crate) fn compact_once(
    engine: &Engine,
    hook: &mut dyn FnMut(PublishStep) -> orderlog_snapshot::Result<()>,
) -> Result<CompactionReport> {
    let (wal, snapshots, opts) = (&engine.wal, &engine.snapshots, &engine.compaction);
    let started = Instant::now();
    let (mut state, base) = match snapshots.load::<OrderState>()? {
        Some((state, verified)) => (state, Some(verified.info)),
        None => (OrderState::new(), None),
    };
    let from_lsn = base.as_ref().map_or(0, |b| b.lsn);
    let target = wal.sealed_lsn();
    let mut report = CompactionReport {
        from_lsn,
        to_lsn: from_lsn,
        batches: 0,
        orders: state.len() as u64,
        segments_removed: 0,
        elapsed: Duration::ZERO,
    };
    if target > from_lsn {
        let applied = apply_range(wal, from_lsn + 1, target, &mut state, &mut |_, _| {})?;
        // The newest event it covers: the newest folded now, or the base's, whichever is
        // later; unknown if the base's is (a snapshot of an older manifest).
        let newest_event_ms = match &base {
            None => applied.newest_event_ms,
            Some(b) => {
                b.newest_event_ms.map(|ms| applied.newest_event_ms.map_or(ms, |n| n.max(ms)))
            }
        };
        // Each step is also a named kill point of the log's storage (crash tests).
        let mut steps = |step: PublishStep| {
            wal.kill_point(publish_kill_point(step))
                .map_err(|_| orderlog_snapshot::SnapshotError::Stopped { step })?;
            hook(step)
        };
        let covers = Covers { lsn: target, schema_version: STATE_SCHEMA_VERSION, newest_event_ms };
        snapshots.publish_covering(&state, covers, &opts.snapshot, &mut steps)?;
        report.to_lsn = target;
        report.batches = applied.batches;
        report.orders = state.len() as u64;
    }
    // Only below the oldest listed snapshot: an older one stands in for a newer one found
    // damaged, and needs the log from it on. And only below a snapshot whose manifest is
    // known durable: the manifest read may be one whose rename a power cut can still undo
    // (its writer died, or its directory sync failed, before the sync), and the log is
    // all that would then hold those orders.
    let oldest_listed = snapshots.list()?.last().map_or(0, |s| s.lsn);
    let floor = report.to_lsn.min(oldest_listed).min(snapshots.durable_lsn());
    // And never past a registered consumer's position, unless it holds too much.
    let floor = crate::feed::consumer_floor(engine, floor);
    report.segments_removed = truncate_covered(wal, floor, opts.retain_segments)?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The kill point at the end of a publish step.
fn publish_kill_point(step: PublishStep) -> KillPoint {
    match step {
        PublishStep::FilesWritten => KillPoint::SnapshotFilesWritten,
        PublishStep::FilesSynced => KillPoint::SnapshotFilesSynced,
        PublishStep::DirRenamed => KillPoint::SnapshotDirRenamed,
        PublishStep::ManifestTempWritten => KillPoint::ManifestTempWritten,
        PublishStep::ManifestSynced => KillPoint::ManifestSynced,
        PublishStep::ManifestRenamed => KillPoint::ManifestRenamed,
        PublishStep::DirSynced => KillPoint::ManifestDurable,
        PublishStep::Pruned => KillPoint::SnapshotPublished,
    }
}

/// Deletes log segments wholly covered by the snapshot at `snapshot_lsn`, keeping
/// `retain` sealed segments below it.
fn truncate_covered(wal: &Wal, snapshot_lsn: Lsn, retain: usize) -> Result<usize> {
    if snapshot_lsn == 0 {
        return Ok(0);
    }
    let bases = wal.segment_bases();
    // Segments whose frames all lie at or below the snapshot: those before the one
    // holding `snapshot_lsn + 1`.
    let covered = bases.iter().take_while(|&&b| b <= snapshot_lsn + 1).count().saturating_sub(1);
    let keep_from = covered.saturating_sub(retain);
    match bases.get(keep_from) {
        Some(&base) if keep_from > 0 => Ok(wal.truncate_before(base)?),
        _ => Ok(0),
    }
}

/// Compactions run and failed since the store opened.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CompactionStats {
    /// Compactions that completed (on demand and in the background).
    pub completed: u64,
    /// Compactions that failed; each leaves the previous snapshot current and the log
    /// whole, and the background compactor tries again at its next trigger.
    pub failed: u64,
    /// The last failure's message, if any failed.
    pub last_error: Option<String>,
    /// The last completed compaction.
    pub last: Option<CompactionReport>,
}

/// What the store and its compactor share: the log and the snapshots, not the state.
pub(crate) struct Engine {
    pub(crate) wal: Wal,
    pub(crate) snapshots: SnapshotStore,
    /// The registered consumers, whose positions hold the log.
    pub(crate) consumers: crate::feed::consumers::Consumers,
    compaction: CompactionOptions,
    /// Serialises compactions (background and on demand); analytics holds it while it
    /// reads snapshots and log, so nothing it reads is pruned meanwhile.
    compacting: Mutex<()>,
    stats: Mutex<CompactionStats>,
}

impl Engine {
    pub(crate) fn new(
        wal: Wal,
        snapshots: SnapshotStore,
        consumers: crate::feed::consumers::Consumers,
        compaction: CompactionOptions,
    ) -> Engine {
        Engine {
            wal,
            snapshots,
            consumers,
            compaction,
            compacting: Mutex::new(()),
            stats: Mutex::new(CompactionStats::default()),
        }
    }

    /// Whether the background compactor should run.
    pub(crate) fn background(&self) -> bool {
        self.compaction.background
    }

    /// Holds compactions off while the guard lives.
    pub(crate) fn hold_compactions(&self) -> MutexGuard<'_, ()> {
        self.compacting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compactions run and failed so far.
    pub(crate) fn stats(&self) -> CompactionStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs one compaction (one at a time), counting and logging its outcome.
    pub(crate) fn compact(
        &self,
        hook: &mut dyn FnMut(PublishStep) -> orderlog_snapshot::Result<()>,
    ) -> Result<CompactionReport> {
        let _one_at_a_time = self.hold_compactions();
        let outcome = compact_once(self, hook);
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        match &outcome {
            Ok(report) => {
                stats.completed += 1;
                stats.last = Some(report.clone());
                tracing::info!(
                    from_lsn = report.from_lsn,
                    to_lsn = report.to_lsn,
                    batches = report.batches,
                    orders = report.orders,
                    segments_removed = report.segments_removed,
                    elapsed_ms = report.elapsed.as_millis() as u64,
                    "compaction done"
                );
            }
            Err(e) => {
                stats.failed += 1;
                stats.last_error = Some(e.to_string());
                tracing::error!(error = %e, failed = stats.failed, "compaction failed");
            }
        }
        outcome
    }

    /// The background compactor's loop: checks the triggers every second until
    /// `signal` says stop.
    pub(crate) fn run_compactor(&self, signal: &CompactorSignal) {
        let mut last = Instant::now();
        let mut last_lsn = self.snapshots.current().ok().flatten().map_or(0, |v| v.info.lsn);
        while !signal.sleep(Duration::from_secs(1)) {
            let due = self.wal.stats().bytes >= self.compaction.wal_bytes_trigger
                || last.elapsed() >= self.compaction.interval;
            if !due || self.wal.sealed_lsn() <= last_lsn {
                continue;
            }
            // A failed compaction (counted and logged by `compact`) leaves the previous
            // snapshot current and the log whole; the next trigger tries again.
            if let Ok(report) = self.compact(&mut |_| Ok(())) {
                last_lsn = report.to_lsn;
            }
            last = Instant::now();
        }
    }
}

/// Signals between the store and its background compactor thread.
#[derive(Debug, Default)]
pub(crate) struct CompactorSignal {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl CompactorSignal {
    /// Asks the thread to stop.
    pub fn stop(&self) {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Sleeps up to `timeout`; returns true if asked to stop.
    pub fn sleep(&self, timeout: Duration) -> bool {
        let stopped = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        if *stopped {
            return true;
        }
        let (stopped, _) =
            self.wake.wait_timeout(stopped, timeout).unwrap_or_else(|p| p.into_inner());
        *stopped
    }
}
