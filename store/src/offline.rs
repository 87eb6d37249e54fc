//! [`OfflineStore`]: a store directory read without opening the store — no lock, no
//! write, no recovery applied — for inspection and point-in-time replay.
//!
//! The log is read with [`orderlog_wal::LogReader`] (validated as recovery would, torn
//! tail read as the end, nothing cut) and the snapshots with a read-only
//! [`SnapshotStore`]. The fold is the store's own: [`decode_batch`] and
//! [`OrderState::apply_batch`] over the frames after a snapshot, as recovery and the
//! compactor do, so a point-in-time state is exactly what a store replayed to that LSN
//! held.
//!
//! On a directory a live store holds open, reads see the log as its writer has written it
//! so far (see the `orderlog_wal::reader` docs: complete frames, not necessarily synced)
//! and the snapshots its manifest names.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use orderlog_snapshot::{
    ArrowSchemaGen, SkippedSnapshot, SnapshotError, SnapshotInfo, SnapshotStore, ToArrow,
};
use orderlog_wal::{Frame, LogReader, Lsn, RecoveryMode};

use crate::error::{Result, StoreError};
use crate::events::{Event, decode_batch};
use crate::state::OrderState;
use crate::store::{snapshot_dir, wal_dir};

/// The point a fold stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FoldTarget {
    /// Every frame up to and including this LSN (0: the empty state).
    Lsn(Lsn),
    /// Every frame before the first retained frame holding an event stamped later than
    /// this time (milliseconds since the Unix epoch). Frames are atomic batches and
    /// concurrent writers stamp events before they are ordered, so the fold is the
    /// longest log prefix with no event after the time.
    TimeMs(u64),
}

impl std::fmt::Display for FoldTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FoldTarget::Lsn(lsn) => write!(f, "LSN {lsn}"),
            FoldTarget::TimeMs(ms) => write!(f, "time {ms} ms since the epoch"),
        }
    }
}

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

/// A store directory, read-only.
#[derive(Debug)]
pub struct OfflineStore {
    dir: PathBuf,
    log: LogReader,
    snapshots: SnapshotStore,
}

impl OfflineStore {
    /// Opens the store directory `dir` (holding `wal/` and, once compacted,
    /// `snapshots/`) for reading: validates the log as recovery in `mode` would, takes no
    /// lock and changes nothing. A missing `wal/` is an I/O error naming it.
    pub fn open(dir: impl AsRef<Path>, mode: RecoveryMode) -> Result<OfflineStore> {
        let dir = dir.as_ref().to_path_buf();
        let log = LogReader::open(wal_dir(&dir), mode)?;
        let snapshots = SnapshotStore::open_read_only(snapshot_dir(&dir));
        Ok(OfflineStore { dir, log, snapshots })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log, read-only.
    pub fn log(&self) -> &LogReader {
        &self.log
    }

    /// The snapshot directory, read-only.
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    /// The snapshots the manifest lists, newest first (empty if none); a damaged
    /// manifest is an error.
    pub fn snapshot_list(&self) -> Result<Vec<SnapshotInfo>> {
        Ok(self.snapshots.list()?)
    }

    /// The newest LSN the directory can reach: the log's last frame, or the newest
    /// snapshot if the log holds nothing after it.
    pub fn last_lsn(&self) -> Result<Lsn> {
        let newest = self.snapshot_list()?.first().map_or(0, |s| s.lsn);
        Ok(self.log.last_lsn().max(newest))
    }

    /// The logged batches from LSN `from` on, decoded: `(lsn, events)`.
    pub fn batches_from(
        &self,
        from: Lsn,
    ) -> Result<impl Iterator<Item = Result<(Lsn, Vec<Event>)>> + use<>> {
        Ok(self.log.iter_from(from)?.map(|frame| decode_frame(&frame?)))
    }

    /// The state after every frame up to `target`, and the LSN of the last frame in it.
    /// See [`OfflineStore::fold_until_with`].
    pub fn fold_until(&self, target: FoldTarget) -> Result<(OrderState, Lsn)> {
        let fold = self.fold_until_with(target, &mut |_| {})?;
        Ok((fold.state, fold.lsn))
    }

    /// Folds to `target`: starts from the newest snapshot at or below the target LSN that
    /// verifies (falling back past damaged ones), or from the empty state if the log
    /// still begins at LSN 1, and applies the logged batches up to the target with the
    /// store's fold. `progress` sees each LSN applied.
    ///
    /// [`StoreError::FoldTargetUnreachable`] if the retained snapshots and log cannot
    /// reach the target (it lies beyond the log's end, or before every retained snapshot
    /// with the log truncated past it).
    pub fn fold_until_with(
        &self,
        target: FoldTarget,
        progress: &mut dyn FnMut(Lsn),
    ) -> Result<Fold> {
        self.fold_until_observing(target, &mut |lsn, _| progress(lsn))
    }

    /// [`OfflineStore::fold_until_with`], with `observe` seeing every batch folded on
    /// top of the starting snapshot (after it is applied): for example to collect the
    /// orders the fold touched, which is what an analytics view over that snapshot's
    /// Parquet files needs (`analytics::Tail::gather`).
    pub fn fold_until_observing(
        &self,
        target: FoldTarget,
        observe: &mut dyn FnMut(Lsn, &[Event]),
    ) -> Result<Fold> {
        let listed = self.snapshot_list()?;
        let target_lsn = match target {
            FoldTarget::Lsn(lsn) => lsn,
            FoldTarget::TimeMs(ms) => self.lsn_at_time(ms, target, &listed)?,
        };
        let (first, last) = (self.log.first_lsn(), self.log.last_lsn());
        let unreachable = |why: &'static str| StoreError::FoldTargetUnreachable {
            target,
            why,
            log_first_lsn: first,
            log_last_lsn: last,
            snapshot_lsns: listed.iter().map(|s| s.lsn).collect(),
        };
        let newest = listed.first().map_or(0, |s| s.lsn);
        if target_lsn > last.max(newest) {
            return Err(unreachable("it lies beyond the end of the log"));
        }
        let log_covers =
            |from: Lsn| from == target_lsn || (first <= from + 1 && last >= target_lsn);
        let mut skipped = Vec::new();
        for info in listed.iter().filter(|s| s.lsn <= target_lsn && log_covers(s.lsn)) {
            match load_snapshot(&self.snapshots, info) {
                Ok(state) => {
                    return self.fold_from(state, Some(info.lsn), target_lsn, skipped, observe);
                }
                Err(error) if is_damage(&error) => {
                    skipped.push(SkippedSnapshot { lsn: info.lsn, error })
                }
                Err(error) => return Err(error.into()),
            }
        }
        if target_lsn == 0 || log_covers(0) {
            return self.fold_from(OrderState::new(), None, target_lsn, skipped, observe);
        }
        Err(unreachable("no retained snapshot at or below it is followed by the log up to it"))
    }

    fn fold_from(
        &self,
        mut state: OrderState,
        snapshot_lsn: Option<Lsn>,
        target: Lsn,
        skipped: Vec<SkippedSnapshot>,
        observe: &mut dyn FnMut(Lsn, &[Event]),
    ) -> Result<Fold> {
        let from = snapshot_lsn.unwrap_or(0);
        let mut fold = Fold {
            state: OrderState::new(),
            lsn: from,
            snapshot_lsn,
            skipped,
            batches: 0,
            events: 0,
        };
        if target > from {
            for frame in self.log.iter_from(from + 1)? {
                let (lsn, batch) = decode_frame(&frame?)?;
                if lsn > target {
                    break;
                }
                state.apply_batch(&batch).map_err(|source| StoreError::Replay { lsn, source })?;
                fold.batches += 1;
                fold.events += batch.len() as u64;
                fold.lsn = lsn;
                observe(lsn, &batch);
            }
        }
        fold.state = state;
        Ok(fold)
    }

    /// The last LSN of the longest retained log prefix with no event after `ms`.
    ///
    /// Before the retained log, only snapshots remain, and they do not record event
    /// times; but every event in a snapshot was stamped before the snapshot was
    /// published, so a snapshot created at or before `ms` is wholly at or before it.
    fn lsn_at_time(&self, ms: u64, target: FoldTarget, listed: &[SnapshotInfo]) -> Result<Lsn> {
        let (first, last) = (self.log.first_lsn(), self.log.last_lsn());
        let mut prefix_end = first - 1;
        for item in self.batches_from(first)? {
            let (lsn, batch) = item?;
            if batch.iter().any(|e| e.timestamp_ms > ms) {
                break;
            }
            prefix_end = lsn;
        }
        let before_log_known =
            first == 1 || listed.iter().any(|s| s.lsn == first - 1 && s.created_unix_ms <= ms);
        if prefix_end >= first || before_log_known {
            return Ok(prefix_end.min(last.max(first - 1)));
        }
        Err(StoreError::FoldTargetUnreachable {
            target,
            why: "the retained log begins after that time, and no snapshot before it is known \
                  to be older (snapshots do not record event times)",
            log_first_lsn: first,
            log_last_lsn: last,
            snapshot_lsns: listed.iter().map(|s| s.lsn).collect(),
        })
    }
}

fn decode_frame(frame: &Frame) -> Result<(Lsn, Vec<Event>)> {
    let lsn = frame.lsn();
    let batch =
        decode_batch(frame.payload()).map_err(|source| StoreError::Decode { lsn, source })?;
    Ok((lsn, batch))
}

/// Loads one listed snapshot (not only the newest), after checking every file's size and
/// CRC, from its Arrow IPC file.
fn load_snapshot(
    snapshots: &SnapshotStore,
    info: &SnapshotInfo,
) -> orderlog_snapshot::Result<OrderState> {
    snapshots.verify(info)?;
    let batches = snapshots.read_ipc_batches(info)?;
    let mut state =
        OrderState::from_record_batch(&RecordBatch::new_empty(OrderState::arrow_schema()))?;
    state.reserve_rows(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in &batches {
        orderlog_snapshot::check_schema::<OrderState>(batch)?;
        state.extend_from_record_batch(batch)?;
    }
    Ok(state)
}

/// Damage is a reason to fall back to an older snapshot; other errors are returned.
fn is_damage(error: &SnapshotError) -> bool {
    match error {
        SnapshotError::FileCorrupt { .. } => true,
        SnapshotError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::{
        CompactionOptions, Order, OrderStatus, OrderStore, PaymentMethod, StoreOptions, WalOptions,
    };

    fn options(retain_segments: usize) -> StoreOptions {
        StoreOptions {
            wal: WalOptions {
                segment_bytes: orderlog_wal::options::SEGMENT_BYTES_MIN,
                ..WalOptions::default()
            },
            compaction: CompactionOptions {
                background: false,
                retain_segments,
                snapshot: orderlog_snapshot::SnapshotOptions { keep_last: 8, ..Default::default() },
                ..CompactionOptions::default()
            },
            ..StoreOptions::default()
        }
    }

    /// A valid batch for step `op` of a workload, from the store's current state.
    fn batch_for(store: &OrderStore, op: u8, next_id: &mut u64, ts: u64) -> Vec<Event> {
        let ids: Vec<u64> = store.with_kernel(|k| k.order_id_raw_array().to_vec());
        let pick = ids.get(usize::from(op) * 7 % ids.len().max(1)).copied();
        let event = match (op % 6, pick) {
            (1, Some(id)) => store.get(id).and_then(|o| {
                let next = OrderStatus::ALL.into_iter().find(|s| o.status.can_become(*s))?;
                Some(Event::set_status(id, next))
            }),
            (2, Some(id)) => store
                .get(id)
                .filter(|o| matches!(o.status, OrderStatus::Pending | OrderStatus::Confirmed))
                .map(|_| Event::amend(id, Some(u32::from(op) + 1), Some(2.5))),
            (3, Some(id)) => store
                .get(id)
                .filter(|o| matches!(o.status, OrderStatus::Pending | OrderStatus::Confirmed))
                .map(|_| Event::change_payment(id, PaymentMethod::PayPal)),
            (4, Some(id)) if op.is_multiple_of(5) => Some(Event::erase(id)),
            _ => None,
        };
        let event = event.unwrap_or_else(|| {
            *next_id += 1;
            Event::create(Order::new(*next_id, *next_id % 13, 7, 1 + u32::from(op % 4), 9.5))
        });
        vec![event.at(ts)]
    }

    /// Every file under `dir` with its bytes.
    fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("read dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    out.insert(path.clone(), Vec::new());
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).expect("read");
                    out.insert(path, bytes);
                }
            }
        }
        out
    }

    /// Runs `ops` against a store (compacting where asked), recording the state after
    /// every LSN and each batch's timestamp.
    fn history(
        dir: &Path,
        ops: &[(u8, bool)],
        retain: usize,
    ) -> (BTreeMap<Lsn, OrderState>, Vec<(Lsn, u64)>) {
        let store = OrderStore::open(dir, options(retain)).expect("open");
        let mut states = BTreeMap::from([(0, OrderState::new())]);
        let mut times = Vec::new();
        let mut next_id = 0;
        for (i, &(op, compact)) in ops.iter().enumerate() {
            let ts = 1_000_000 + i as u64 * 10;
            let lsn = store.apply_batch(&batch_for(&store, op, &mut next_id, ts)).expect("apply");
            states.insert(lsn, store.state());
            times.push((lsn, ts));
            if compact {
                store.compact().expect("compact");
            }
        }
        store.close().expect("close");
        (states, times)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn fold_until_equals_the_store_at_that_lsn(
            ops in proptest::collection::vec((any::<u8>(), proptest::bool::weighted(0.08)), 1..120),
            probes in proptest::collection::vec(any::<proptest::sample::Index>(), 1..6),
        ) {
            let dir = tempfile::tempdir().expect("dir");
            let (states, times) = history(dir.path(), &ops, 1000);
            let before = tree(dir.path());
            let offline = OfflineStore::open(dir.path(), RecoveryMode::Strict).expect("open");
            let last = *states.keys().last().expect("states");
            for probe in &probes {
                let lsn = probe.index(last as usize + 1) as Lsn;
                let (state, at) = offline.fold_until(FoldTarget::Lsn(lsn)).expect("fold");
                prop_assert_eq!(at, lsn);
                prop_assert_eq!(&state, &states[&lsn]);
                // A time target stops before the first later batch.
                let (lsn_t, ts) = times[probe.index(times.len())];
                let (state, at) = offline.fold_until(FoldTarget::TimeMs(ts)).expect("fold");
                prop_assert_eq!(at, lsn_t);
                prop_assert_eq!(&state, &states[&lsn_t]);
            }
            prop_assert_eq!(tree(dir.path()), before, "an offline read changed the directory");
        }
    }

    #[test]
    fn fold_until_starts_from_a_snapshot_and_refuses_what_was_compacted_away() {
        let dir = tempfile::tempdir().expect("dir");
        let ops: Vec<(u8, bool)> = (0..300u32).map(|i| ((i * 37 % 251) as u8, i == 200)).collect();
        let (states, _) = history(dir.path(), &ops, 0);
        let offline = OfflineStore::open(dir.path(), RecoveryMode::default()).expect("open");
        let snapshot = offline.snapshot_list().expect("list")[0].lsn;
        assert!(offline.log().first_lsn() > 1, "the log was truncated behind the snapshot");
        let mut seen = Vec::new();
        let fold = offline
            .fold_until_observing(FoldTarget::Lsn(snapshot + 3), &mut |lsn, batch| {
                seen.push((lsn, batch.len()));
            })
            .expect("fold");
        assert_eq!(fold.snapshot_lsn, Some(snapshot));
        assert_eq!(fold.batches, 3);
        assert_eq!(seen, (1..=3).map(|i| (snapshot + i, 1)).collect::<Vec<_>>());
        assert_eq!(fold.state, states[&(snapshot + 3)]);
        let (state, _) = offline.fold_until(FoldTarget::Lsn(snapshot)).expect("fold");
        assert_eq!(state, states[&snapshot]);
        for target in [FoldTarget::Lsn(1), FoldTarget::Lsn(300 + 1), FoldTarget::TimeMs(5)] {
            let err = offline.fold_until(target).expect_err("unreachable");
            assert!(
                matches!(err, StoreError::FoldTargetUnreachable { target: t, .. } if t == target),
                "{err}"
            );
        }
    }

    #[test]
    fn open_refuses_a_directory_without_a_log_and_creates_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let err = OfflineStore::open(dir.path(), RecoveryMode::default()).expect_err("no log");
        assert!(matches!(err, StoreError::Wal(_)), "{err}");
        assert!(tree(dir.path()).is_empty());
    }
}
