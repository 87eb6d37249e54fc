//! `OrderStore`'s analytics handles: fresh, snapshot only, and time travel.

use std::ops::ControlFlow;
use std::time::{SystemTime, UNIX_EPOCH};

use orderlog_snapshot::{SnapshotInfo, SnapshotStore};
use orderlog_wal::{Lsn, Wal};

use super::tail::{IdSet, collect_touched};
use super::{Analytics, AnalyticsError, Tail, ViewKind};
use crate::error::Result;
use crate::state::OrderState;
use crate::store::{OrderStore, each_batch, replay_range_with};

/// True if every Parquet file of `info` is present with its recorded size.
fn parquet_present(store: &SnapshotStore, info: &SnapshotInfo) -> bool {
    store.first_missing_parquet(info).is_none()
}

/// The first LSN the log still holds.
fn log_first(wal: &Wal) -> Lsn {
    wal.stats().first_lsn
}

/// Loads a snapshot's state from its Arrow IPC file (every file's size and CRC checked).
fn load_snapshot(store: &SnapshotStore, info: &SnapshotInfo) -> Result<OrderState> {
    Ok(store.load_snapshot::<OrderState>(info)?)
}

impl OrderStore {
    /// The newest snapshot whose Parquet files are present and which the log continues
    /// (call with compactions held).
    fn newest_readable_snapshot(&self) -> Result<Option<SnapshotInfo>> {
        let first = log_first(self.wal());
        let listed = self.snapshots().list()?;
        let found = listed
            .into_iter()
            .find(|info| first <= info.lsn + 1 && parquet_present(self.snapshots(), info));
        Ok(found)
    }

    /// A DuckDB view of every order as the store holds it now: the newest snapshot's
    /// Parquet files, with the orders touched since then taken from memory (fresh mode).
    ///
    /// Cost: reads and decodes the log after the snapshot once (no lock held), then
    /// holds the state's read lock (writers wait) only to read the log written meanwhile
    /// and copy out the touched orders' rows. Compactions wait until the handle is made.
    pub fn analytics(&self) -> Result<Analytics> {
        let _no_compaction = self.hold_compactions();
        let base = self.newest_readable_snapshot()?;
        let base_lsn = base.as_ref().map_or(0, |i| i.lsn);
        if base.is_none() && log_first(self.wal()) > 1 {
            return Err(AnalyticsError::Unreachable {
                target: self.last_lsn(),
                oldest_snapshot: None,
                log_first: log_first(self.wal()),
            }
            .into());
        }
        let mut touched = IdSet::default();
        let scanned = self.last_lsn();
        collect_touched(self.wal(), base_lsn + 1, scanned, &mut touched)?;
        let (tail, lsn) = {
            let state = self.read_state();
            let lsn = self.last_lsn();
            collect_touched(self.wal(), scanned + 1, lsn, &mut touched)?;
            (Tail::gather(&state, touched)?, lsn)
        };
        let snapshot = base.as_ref().map(|info| (self.snapshots(), info));
        Ok(Analytics::over(snapshot, tail, lsn, ViewKind::Fresh, self.analytics_options())?)
    }

    /// A DuckDB view of the newest snapshot alone (mutations since are not seen). With no
    /// snapshot yet, the view is empty.
    pub fn analytics_snapshot(&self) -> Result<Analytics> {
        let _no_compaction = self.hold_compactions();
        let base = self.newest_readable_snapshot()?;
        let lsn = base.as_ref().map_or(0, |i| i.lsn);
        let snapshot = base.as_ref().map(|info| (self.snapshots(), info));
        Ok(Analytics::over(
            snapshot,
            Tail::empty(),
            lsn,
            ViewKind::Snapshot,
            self.analytics_options(),
        )?)
    }

    /// A DuckDB view of the orders as they were right after LSN `lsn` (time travel),
    /// without touching the live state.
    ///
    /// Folds the log from the newest retained snapshot at or below `lsn` (or from an empty
    /// state, if the log still starts at LSN 1) up to `lsn`; the view is that snapshot's
    /// Parquet files plus the rows the fold changed. Memory: one copy of the state at the
    /// snapshot. [`AnalyticsError::Unreachable`] if no retained snapshot and log reach
    /// back that far (keep more with `CompactionOptions::retain_segments` and
    /// `SnapshotOptions::keep_last`); [`AnalyticsError::Future`] beyond the last LSN.
    pub fn as_of(&self, lsn: Lsn) -> Result<Analytics> {
        let last = self.last_lsn();
        if lsn > last {
            return Err(AnalyticsError::Future { target: lsn, last }.into());
        }
        let _no_compaction = self.hold_compactions();
        let first = log_first(self.wal());
        let listed = self.snapshots().list()?;
        let oldest_snapshot = listed.last().map(|i| i.lsn);
        let mut base = None;
        for info in listed.iter().filter(|i| i.lsn <= lsn && first <= i.lsn + 1) {
            // A damaged snapshot is skipped for an older one, as on open.
            if !parquet_present(self.snapshots(), info) {
                continue;
            }
            if let Ok(state) = load_snapshot(self.snapshots(), info) {
                base = Some((info, state));
                break;
            }
        }
        let (info, mut state) = match base {
            Some((info, state)) => (Some(info), state),
            None if first <= 1 => (None, OrderState::new()),
            None => {
                return Err(AnalyticsError::Unreachable {
                    target: lsn,
                    oldest_snapshot,
                    log_first: first,
                }
                .into());
            }
        };
        let from = info.map_or(0, |i| i.lsn) + 1;
        let mut touched = IdSet::default();
        replay_range_with(self.wal(), from, lsn, &mut state, |batch| {
            touched.extend(batch.iter().map(|e| e.order_id));
        })?;
        let tail = Tail::gather(&state, touched)?;
        drop(state);
        let snapshot = info.map(|info| (self.snapshots(), info));
        Ok(Analytics::over(snapshot, tail, lsn, ViewKind::AsOf, self.analytics_options())?)
    }

    /// The LSN of the last logged batch at or before `time`: the log is read from its
    /// first retained frame until the first batch whose newest event is later than
    /// `time`. `None` if even the first retained batch is later (and the log does not
    /// start at LSN 1, so the answer lies in a dropped segment).
    pub fn lsn_at_time(&self, time: SystemTime) -> Result<Option<Lsn>> {
        let limit_ms = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let limit_ms = u64::try_from(limit_ms).unwrap_or(u64::MAX);
        let wal = self.wal();
        let first = log_first(wal);
        let mut at = None;
        each_batch(wal, first.max(1), wal.last_lsn(), |lsn, batch| {
            if batch.iter().any(|e| e.timestamp_ms > limit_ms) {
                return Ok(ControlFlow::Break(()));
            }
            at = Some(lsn);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(match at {
            Some(lsn) => Some(lsn),
            None if first <= 1 => Some(0),
            None => None,
        })
    }

    /// [`OrderStore::as_of`] at the LSN [`OrderStore::lsn_at_time`] finds for `time`.
    pub fn as_of_time(&self, time: SystemTime) -> Result<Analytics> {
        match self.lsn_at_time(time)? {
            Some(lsn) => self.as_of(lsn),
            None => Err(AnalyticsError::Unreachable {
                target: 0,
                oldest_snapshot: self.snapshots().list()?.last().map(|i| i.lsn),
                log_first: log_first(self.wal()),
            }
            .into()),
        }
    }
}
