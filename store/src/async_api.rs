//! The store's async API for services on tokio: every operation that may block (open and
//! its recovery, a write that must wait for the state's lock or start a new log segment,
//! a compaction, a sync, a close, an analytics view) runs on tokio's blocking pool, so no
//! runtime worker ever waits on the disk or on a lock held by a long reader. A write
//! that finds the lock free and room in the log's segment is applied at once (it takes
//! microseconds), and its wait for the group commit is a future.
//!
//! Each `*_async` method needs a tokio runtime (any flavour).

use std::path::PathBuf;
use std::sync::TryLockError;

use orderlog_wal::{Lsn, SyncPolicy};

use crate::compactor::CompactionReport;
use crate::error::{Result, StoreError};
use crate::events::{Event, encode_batch};
use crate::store::{OrderStore, StoreOptions};

/// Runs `f` on tokio's blocking pool and waits for it without blocking the runtime.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Thread(format!("a blocking task of the store failed: {e}")))?
}

impl OrderStore {
    /// Async form of [`OrderStore::open`]: recovery (loading the snapshot, replaying the
    /// log) runs on the blocking pool.
    pub async fn open_async(dir: impl Into<PathBuf>, options: StoreOptions) -> Result<OrderStore> {
        let dir = dir.into();
        blocking(move || OrderStore::open(dir, options)).await
    }

    /// Async form of [`OrderStore::apply`].
    pub async fn apply_async(&self, event: Event) -> Result<Lsn> {
        self.apply_batch_async(&[event]).await
    }

    /// Async form of [`OrderStore::apply_batch`]: completes when the batch is durable as
    /// the sync policy promises (under `Always`, once a group commit has synced it).
    ///
    /// The batch is validated, logged and applied on the calling task when the state's
    /// lock is free and the log's segment has room (the common case: microseconds);
    /// otherwise (a long analytics gather holds the lock, or the batch starts a new
    /// segment, which creates and syncs a file) on the blocking pool.
    pub async fn apply_batch_async(&self, events: &[Event]) -> Result<Lsn> {
        self.check_batch_size(events)?;
        let mut payload = Vec::with_capacity(16 + events.len() * 64);
        encode_batch(events, &mut payload);
        let wal = self.wal_handle();
        let inline = if wal.would_roll(payload.len()) {
            None
        } else {
            match self.try_write() {
                Ok(mut state) => Some(self.log_and_apply_locked(&mut state, events, &payload)),
                Err(TryLockError::WouldBlock) => None,
                Err(TryLockError::Poisoned(p)) => {
                    let mut state = p.into_inner();
                    Some(self.log_and_apply_locked(&mut state, events, &payload))
                }
            }
        };
        let lsn = match inline {
            Some(outcome) => outcome?,
            None => {
                let store = self.clone();
                let events = events.to_vec();
                blocking(move || store.log_and_apply_payload(&events, &payload)).await?
            }
        };
        if wal.options().sync_policy == SyncPolicy::Always {
            wal.wait_durable_async(lsn).await?;
        }
        Ok(lsn)
    }

    /// Async form of [`OrderStore::compact`], on the blocking pool.
    pub async fn compact_async(&self) -> Result<CompactionReport> {
        let store = self.clone();
        blocking(move || store.compact()).await
    }

    /// Async form of [`OrderStore::sync`], on the blocking pool.
    pub async fn sync_async(&self) -> Result<()> {
        let store = self.clone();
        blocking(move || store.sync()).await
    }

    /// Async form of [`OrderStore::close`], on the blocking pool.
    pub async fn close_async(&self) -> Result<()> {
        let store = self.clone();
        blocking(move || store.close()).await
    }

    /// Async form of [`OrderStore::reserve`], on the blocking pool.
    pub async fn reserve_async(&self, additional: usize) -> Result<()> {
        let store = self.clone();
        blocking(move || store.reserve(additional)).await
    }
}

#[cfg(feature = "analytics")]
mod analytics_async {
    use std::time::SystemTime;

    use orderlog_wal::Lsn;

    use super::blocking;
    use crate::analytics::Analytics;
    use crate::error::Result;
    use crate::point::FoldTarget;
    use crate::store::OrderStore;

    impl OrderStore {
        /// Async form of [`OrderStore::analytics`], on the blocking pool.
        pub async fn analytics_async(&self) -> Result<Analytics> {
            let store = self.clone();
            blocking(move || store.analytics()).await
        }

        /// Async form of [`OrderStore::analytics_snapshot`], on the blocking pool.
        pub async fn analytics_snapshot_async(&self) -> Result<Analytics> {
            let store = self.clone();
            blocking(move || store.analytics_snapshot()).await
        }

        /// Async form of [`OrderStore::as_of`], on the blocking pool.
        pub async fn as_of_async(&self, lsn: Lsn) -> Result<Analytics> {
            self.as_of_point_async(FoldTarget::Lsn(lsn)).await
        }

        /// Async form of [`OrderStore::as_of_time`], on the blocking pool.
        pub async fn as_of_time_async(&self, time: SystemTime) -> Result<Analytics> {
            let store = self.clone();
            blocking(move || store.as_of_time(time)).await
        }

        /// Async form of [`OrderStore::as_of_point`], on the blocking pool.
        pub async fn as_of_point_async(&self, target: FoldTarget) -> Result<Analytics> {
            let store = self.clone();
            blocking(move || store.as_of_point(target)).await
        }
    }

    impl Analytics {
        /// Async form of [`Analytics::query_sql`], on the blocking pool (the handle is
        /// shared: `Arc` it to keep using it meanwhile).
        pub async fn query_sql_async(
            self: std::sync::Arc<Self>,
            sql: String,
        ) -> Result<Vec<arrow::array::RecordBatch>> {
            blocking(move || Ok(self.query_sql(&sql)?)).await
        }
    }
}
