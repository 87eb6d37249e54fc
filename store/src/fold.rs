//! The one fold: pick the base snapshot for a point, then apply the logged batches after
//! it up to the point. Recovery, the compactor, time travel in analytics and the offline
//! tool all go through here, over any [`ReadLog`] (the live [`orderlog_wal::Wal`] or an
//! offline [`orderlog_wal::LogReader`]), so they give the same state for the same point.

use std::ops::ControlFlow;

use orderlog_snapshot::{SkippedSnapshot, SnapshotInfo, SnapshotStore};
use orderlog_wal::{Lsn, ReadLog};

use crate::error::{Result, StoreError};
use crate::events::{Event, decode_batch};
use crate::point::{FoldTarget, Unreachable};
use crate::state::OrderState;

/// A state folded to a point, and how it was reached.
#[derive(Debug)]
#[non_exhaustive]
pub struct Fold {
    /// The state after every frame up to `lsn`.
    pub state: OrderState,
    /// The last frame folded in (or the snapshot's LSN, if no frame was needed).
    pub lsn: Lsn,
    /// The snapshot the fold started from (`None`: the empty state at LSN 0).
    pub snapshot_lsn: Option<Lsn>,
    /// Newer snapshots at or below the target that were damaged and skipped.
    pub skipped: Vec<SkippedSnapshot>,
    /// Log frames (batches) folded on top of the starting state.
    pub batches: u64,
    /// Events in those batches.
    pub events: u64,
}

/// What [`apply_range`] applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Batches (log frames) applied.
    pub(crate) batches: u64,
    /// Events in them.
    pub(crate) events: u64,
    /// The newest event time among them (ms since the epoch), if any was applied.
    pub(crate) newest_event_ms: Option<u64>,
    /// The LSN of the last batch applied (0 if none).
    pub(crate) last_lsn: Lsn,
}

/// Decodes every logged batch with an LSN in `from..=to`, in order, and hands it to `f`
/// until `f` breaks.
pub(crate) fn each_batch(
    log: &dyn ReadLog,
    from: Lsn,
    to: Lsn,
    mut f: impl FnMut(Lsn, Vec<Event>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    if from > to {
        return Ok(());
    }
    for frame in log.iter_from(from)? {
        let frame = frame?;
        let lsn = frame.lsn();
        if lsn > to {
            break;
        }
        let batch =
            decode_batch(frame.payload()).map_err(|source| StoreError::Decode { lsn, source })?;
        if f(lsn, batch)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// Applies every logged batch with an LSN in `from..=to` to `state`, showing each to
/// `observe` once it is applied. A batch that does not apply is [`StoreError::Replay`]:
/// the log is not what this store wrote.
pub(crate) fn apply_range(
    log: &dyn ReadLog,
    from: Lsn,
    to: Lsn,
    state: &mut OrderState,
    observe: &mut dyn FnMut(Lsn, &[Event]),
) -> Result<Applied> {
    let mut applied = Applied::default();
    each_batch(log, from, to, |lsn, batch| {
        state.apply_batch(&batch).map_err(|source| StoreError::Replay { lsn, source })?;
        observe(lsn, &batch);
        applied.batches += 1;
        applied.events += batch.len() as u64;
        let newest = batch.iter().map(|e| e.timestamp_ms).max();
        applied.newest_event_ms = applied.newest_event_ms.max(newest);
        applied.last_lsn = lsn;
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(applied)
}

/// The LSN a time stands for: the last LSN of the longest log prefix with no event
/// stamped after `ms`.
///
/// The retained log is read from its first frame until a batch holds a later event. If
/// even the first retained batch does, the prefix ends before the retained log, and is
/// known only if it ends at LSN 0 (the log starts at 1) or exactly at a listed snapshot
/// just before the log whose newest event is at or before `ms` (its recorded
/// `newest_event_ms`; for a snapshot of an older manifest without it, its publication
/// time, which no event it covers can be later than).
pub(crate) fn lsn_at_time(
    log: &dyn ReadLog,
    listed: &[SnapshotInfo],
    ms: u64,
) -> Result<std::result::Result<Lsn, Unreachable>> {
    let first = log.first_lsn();
    let mut prefix_end = first - 1;
    each_batch(log, first, log.last_lsn(), |lsn, batch| {
        if batch.iter().any(|e| e.timestamp_ms > ms) {
            return Ok(ControlFlow::Break(()));
        }
        prefix_end = lsn;
        Ok(ControlFlow::Continue(()))
    })?;
    if prefix_end >= first || first == 1 {
        return Ok(Ok(prefix_end));
    }
    let ends_by = |s: &SnapshotInfo| s.newest_event_ms.unwrap_or(s.created_unix_ms) <= ms;
    if listed.iter().any(|s| s.lsn == first - 1 && ends_by(s)) {
        return Ok(Ok(first - 1));
    }
    Ok(Err(Unreachable::TimeBeforeRetainedLog))
}

/// The error for a point the directory cannot reach.
fn unreachable(
    target: FoldTarget,
    why: Unreachable,
    log: &dyn ReadLog,
    listed: &[SnapshotInfo],
) -> StoreError {
    StoreError::Unreachable {
        target,
        why,
        log_first_lsn: log.first_lsn(),
        log_last_lsn: log.last_lsn(),
        snapshot_lsns: listed.iter().map(|s| s.lsn).collect(),
    }
}

/// The LSN `target` stands for, or why it cannot be reached: beyond the newest LSN the
/// log or a snapshot holds, or (a time) before what the directory retains.
pub(crate) fn target_lsn(
    log: &dyn ReadLog,
    listed: &[SnapshotInfo],
    target: FoldTarget,
) -> Result<Lsn> {
    let lsn = match target {
        FoldTarget::Lsn(lsn) => lsn,
        FoldTarget::TimeMs(ms) => {
            lsn_at_time(log, listed, ms)?.map_err(|why| unreachable(target, why, log, listed))?
        }
    };
    let last = log.last_lsn().max(listed.first().map_or(0, |s| s.lsn));
    if lsn > last {
        return Err(unreachable(target, Unreachable::Future { last }, log, listed));
    }
    Ok(lsn)
}

/// Folds to `target`: starts from the newest listed snapshot at or below the target LSN
/// that the log continues up to it and that loads (falling back past damaged ones), or
/// from the empty state if the log still begins at LSN 1, and applies the logged batches
/// up to the target. `observe` sees every batch applied on top of the starting state.
///
/// [`StoreError::Unreachable`] if the retained snapshots and log cannot reach the target.
pub(crate) fn fold_to(
    log: &dyn ReadLog,
    snapshots: &SnapshotStore,
    target: FoldTarget,
    observe: &mut dyn FnMut(Lsn, &[Event]),
) -> Result<Fold> {
    let listed = snapshots.list()?;
    let target_lsn = target_lsn(log, &listed, target)?;
    let (first, last) = (log.first_lsn(), log.last_lsn());
    // The log holds every frame after `from` up to the target.
    let log_covers = |from: Lsn| from == target_lsn || (first <= from + 1 && last >= target_lsn);
    let mut skipped = Vec::new();
    for info in listed.iter().filter(|s| s.lsn <= target_lsn && log_covers(s.lsn)) {
        match snapshots.load_snapshot::<OrderState>(info) {
            Ok(state) => {
                return fold_from(log, state, Some(info.lsn), target_lsn, skipped, observe);
            }
            Err(error) if error.is_damage() => {
                skipped.push(SkippedSnapshot { lsn: info.lsn, error })
            }
            Err(error) => return Err(error.into()),
        }
    }
    if target_lsn == 0 || log_covers(0) {
        return fold_from(log, OrderState::new(), None, target_lsn, skipped, observe);
    }
    Err(unreachable(target, Unreachable::NoBase, log, &listed))
}

fn fold_from(
    log: &dyn ReadLog,
    mut state: OrderState,
    snapshot_lsn: Option<Lsn>,
    target: Lsn,
    skipped: Vec<SkippedSnapshot>,
    observe: &mut dyn FnMut(Lsn, &[Event]),
) -> Result<Fold> {
    let from = snapshot_lsn.unwrap_or(0);
    let applied = apply_range(log, from + 1, target, &mut state, observe)?;
    Ok(Fold {
        state,
        lsn: if applied.batches > 0 { applied.last_lsn } else { from },
        snapshot_lsn,
        skipped,
        batches: applied.batches,
        events: applied.events,
    })
}
