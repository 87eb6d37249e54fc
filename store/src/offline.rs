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

use orderlog_snapshot::{SnapshotInfo, SnapshotStore};
use orderlog_wal::{Frame, LogReader, Lsn, RecoveryMode};

use crate::error::{Result, StoreError};
use crate::events::{Event, decode_batch};
use crate::fold::{Fold, fold_to};
use crate::layout::{snapshot_dir, wal_dir};
use crate::point::FoldTarget;
use crate::state::OrderState;

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

    /// The registered consumers of the change feed, one outcome per consumer file, by
    /// file name (read from their files; nothing changed): a damaged file is an error
    /// naming it and the offset, and does not hide the others.
    pub fn consumers(&self) -> Result<Vec<Result<crate::feed::ConsumerRecord>>> {
        use orderlog_wal::storage::Storage;
        let storage =
            orderlog_wal::storage::FsStorage::new(&self.dir).sub(crate::feed::CONSUMER_DIR);
        crate::feed::read_consumers(storage.as_ref())
    }

    /// The first LSN after the log's longest prefix with no event stamped later than
    /// `ms` (where a subscription from that time starts); `None` if that prefix ends
    /// before the retained log begins (a compaction removed it).
    pub fn lsn_after_time(&self, ms: u64) -> Result<Option<Lsn>> {
        let listed = self.snapshot_list()?;
        Ok(crate::fold::lsn_at_time(&self.log, &listed, ms)?.ok().map(|end| end + 1))
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
    /// [`StoreError::Unreachable`] if the retained snapshots and log cannot reach the
    /// target (it lies beyond the log's end, or before every retained snapshot with the
    /// log truncated past it).
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
    /// Parquet files needs (`analytics::Tail::gather`). The fold is the store's own
    /// ([`crate::fold`]), so the state equals what the store's `as_of` sees.
    pub fn fold_until_observing(
        &self,
        target: FoldTarget,
        observe: &mut dyn FnMut(Lsn, &[Event]),
    ) -> Result<Fold> {
        fold_to(&self.log, &self.snapshots, target, observe)
    }
}

fn decode_frame(frame: &Frame) -> Result<(Lsn, Vec<Event>)> {
    let lsn = frame.lsn();
    let batch =
        decode_batch(frame.payload()).map_err(|source| StoreError::Decode { lsn, source })?;
    Ok((lsn, batch))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::{Order, OrderStatus, OrderStore, PaymentMethod, StoreOptions};

    fn options(retain_segments: usize) -> StoreOptions {
        let mut options = StoreOptions::for_tests();
        options.compaction.retain_segments = retain_segments;
        options.compaction.snapshot.keep_last = 8;
        options
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
            Event::create(
                Order::builder(*next_id)
                    .customer(*next_id % 13)
                    .product(7)
                    .quantity(1 + u32::from(op % 4))
                    .unit_price(9.5)
                    .build()
                    .unwrap(),
            )
        });
        vec![event.stamped(ts)]
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
                matches!(err, StoreError::Unreachable { target: t, .. } if t == target),
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
