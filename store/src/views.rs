//! `OrderStore`'s analytics handles: fresh, snapshot only, and time travel. They read
//! the store through its narrow [`ReadView`] and fold with the one fold
//! ([`crate::fold`]), so a point gives the state the offline tool gives for it.

use std::ops::ControlFlow;
use std::time::{SystemTime, UNIX_EPOCH};

use orderlog_snapshot::{SnapshotInfo, SnapshotStore};
use orderlog_wal::{Lsn, ReadLog};

use crate::analytics::{Analytics, IdSet, Tail, ViewKind};
use crate::error::{Result, StoreError};
use crate::fold::{each_batch, fold_to, lsn_at_time};
use crate::point::{FoldTarget, Unreachable};
use crate::store::{OrderStore, ReadView};

/// True if every Parquet file of `info` is present with its recorded size.
fn parquet_present(store: &SnapshotStore, info: &SnapshotInfo) -> bool {
    store.first_missing_parquet(info).is_none()
}

/// Adds to `ids` every order touched by the logged batches with LSNs in `from..=to`.
fn collect_touched(log: &dyn ReadLog, from: Lsn, to: Lsn, ids: &mut IdSet) -> Result<()> {
    each_batch(log, from, to, |_, batch| {
        ids.extend(batch.iter().map(|e| e.order_id));
        Ok(ControlFlow::Continue(()))
    })
}

impl ReadView<'_> {
    /// The newest snapshot whose Parquet files are present and which the log continues.
    fn newest_readable_snapshot(&self) -> Result<Option<SnapshotInfo>> {
        let first = self.wal.first_lsn();
        let listed = self.snapshots.list()?;
        Ok(listed
            .into_iter()
            .find(|info| first <= info.lsn + 1 && parquet_present(self.snapshots, info)))
    }

    fn unreachable(&self, target: FoldTarget, why: Unreachable) -> Result<StoreError> {
        Ok(StoreError::Unreachable {
            target,
            why,
            log_first_lsn: self.wal.first_lsn(),
            log_last_lsn: self.wal.last_lsn(),
            snapshot_lsns: self.snapshots.list()?.iter().map(|s| s.lsn).collect(),
        })
    }
}

impl OrderStore {
    /// A DuckDB view of every order as the store holds it now: the newest snapshot's
    /// Parquet files, with the orders touched since then taken from memory (fresh mode).
    ///
    /// Cost: reads and decodes the log after the snapshot once (no lock held), then
    /// holds the state's read lock (writers wait) only to read the log written meanwhile
    /// and copy out the touched orders' rows. Compactions wait until the handle is made.
    pub fn analytics(&self) -> Result<Analytics> {
        let view = self.read_view();
        let base = view.newest_readable_snapshot()?;
        let base_lsn = base.as_ref().map_or(0, |i| i.lsn);
        if base.is_none() && view.wal.first_lsn() > 1 {
            let target = FoldTarget::Lsn(self.last_lsn());
            return Err(view.unreachable(target, Unreachable::NoBase)?);
        }
        let mut touched = IdSet::default();
        let scanned = view.wal.last_lsn();
        collect_touched(view.wal, base_lsn + 1, scanned, &mut touched)?;
        let (tail, lsn) = {
            let state = view.state();
            let lsn = view.wal.last_lsn();
            collect_touched(view.wal, scanned + 1, lsn, &mut touched)?;
            (Tail::gather(&state, touched)?, lsn)
        };
        let snapshot = base.as_ref().map(|info| (view.snapshots, info));
        Ok(Analytics::over(snapshot, tail, lsn, ViewKind::Fresh, view.analytics)?)
    }

    /// A DuckDB view of the newest snapshot alone (mutations since are not seen). With no
    /// snapshot yet, the view is empty.
    pub fn analytics_snapshot(&self) -> Result<Analytics> {
        let view = self.read_view();
        let base = view.newest_readable_snapshot()?;
        let lsn = base.as_ref().map_or(0, |i| i.lsn);
        let snapshot = base.as_ref().map(|info| (view.snapshots, info));
        Ok(Analytics::over(snapshot, Tail::empty(), lsn, ViewKind::Snapshot, view.analytics)?)
    }

    /// A DuckDB view of the orders as they were right after LSN `lsn` (time travel),
    /// without touching the live state; see [`OrderStore::as_of_point`].
    pub fn as_of(&self, lsn: Lsn) -> Result<Analytics> {
        self.as_of_point(FoldTarget::Lsn(lsn))
    }

    /// A DuckDB view of the orders as they were at `time`: the longest log prefix with no
    /// event stamped after it; see [`OrderStore::as_of_point`].
    pub fn as_of_time(&self, time: SystemTime) -> Result<Analytics> {
        self.as_of_point(FoldTarget::TimeMs(millis(time)))
    }

    /// A DuckDB view of the orders at `target`, folded by the store's one fold (as the
    /// offline tool folds): from the newest retained snapshot at or below the target
    /// that loads (or the empty state, if the log still starts at LSN 1), up to the
    /// target; the view is that snapshot's Parquet files plus the rows the fold changed.
    /// Memory: one copy of the state at the snapshot.
    ///
    /// [`StoreError::Unreachable`] beyond the last LSN, or before what the store retains
    /// (keep more with `CompactionOptions::retain_segments` and
    /// `SnapshotOptions::keep_last`).
    pub fn as_of_point(&self, target: FoldTarget) -> Result<Analytics> {
        let view = self.read_view();
        let mut touched = IdSet::default();
        let fold = fold_to(view.wal, view.snapshots, target, &mut |_, batch| {
            touched.extend(batch.iter().map(|e| e.order_id));
        })?;
        let base = match fold.snapshot_lsn {
            Some(lsn) => view.snapshots.list()?.into_iter().find(|s| s.lsn == lsn),
            None => None,
        };
        let tail = Tail::gather(&fold.state, touched)?;
        drop(fold.state);
        let snapshot = base.as_ref().map(|info| (view.snapshots, info));
        Ok(Analytics::over(snapshot, tail, fold.lsn, ViewKind::AsOf, view.analytics)?)
    }

    /// The LSN of the last logged batch of the longest log prefix with no event after
    /// `time`, as the store's fold finds it (the retained log, then the snapshot just
    /// before it by its newest event time). `None` if the store no longer holds what is
    /// needed to tell.
    pub fn lsn_at_time(&self, time: SystemTime) -> Result<Option<Lsn>> {
        let view = self.read_view();
        let listed = view.snapshots.list()?;
        Ok(lsn_at_time(view.wal, &listed, millis(time))?.ok())
    }
}

/// `time` in milliseconds since the Unix epoch (0 before it).
fn millis(time: SystemTime) -> u64 {
    let ms = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    u64::try_from(ms).unwrap_or(u64::MAX)
}
