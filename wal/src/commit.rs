//! Group commit: many writers, one sync at a time, every waiter woken by the sync that
//! covers its frame.
//!
//! A writer that needs durability calls [`Committer::wait_durable`]. If no sync is running,
//! it becomes the leader: it syncs everything written so far (its own frame and every
//! frame other writers copied in meanwhile) and wakes the others. If a sync is running, it
//! waits for it and checks again. Async callers hand the sync to the background syncer
//! thread and await a `tokio::sync::watch` of the durable LSN.
//!
//! A failed sync poisons the log: the error is kept, every waiter gets it, and no LSN is
//! ever reported durable again until the log is reopened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::Lsn;
use crate::error::{Result, WalError};

/// A sync that takes at least this long is reported through `tracing`: a disk this slow
/// holds every waiting writer.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(500);
/// What the commit protocol knows, guarded by one mutex.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// Every frame up to this LSN is durable.
    pub durable_lsn: Lsn,
    /// A sync is running.
    pub syncing: bool,
    /// Highest LSN an async caller is waiting for.
    pub requested_lsn: Lsn,
    /// The background syncer must exit.
    pub shutdown: bool,
    /// Set by the first failed sync; never cleared.
    pub poisoned: Option<String>,
    /// Every frame up to this LSN is covered by a checkpoint written (see
    /// [`Committer::checkpointed`]): what recovery will take as durable without question.
    pub checkpointed_lsn: Lsn,
    /// The background syncer sleeps with no timeout (nothing to checkpoint): a sync that
    /// leaves the checkpoint behind must wake it.
    pub syncer_parked: bool,
    /// The log is closed and its last frame durable: the durable LSN moves no more.
    pub closed: bool,
}

/// The durable LSN as published to async waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Published {
    pub durable_lsn: Lsn,
    pub poisoned: bool,
    pub closed: bool,
}

pub(crate) struct Committer {
    state: Mutex<SyncState>,
    /// Wakes blocking waiters when a sync finishes.
    changed: Condvar,
    /// Wakes the background syncer (async requests, shutdown). Kept apart from `changed`
    /// so a finished sync does not wake a thread with nothing to do.
    syncer_wake: Condvar,
    published: watch::Sender<Published>,
    /// Mirrors `SyncState::poisoned.is_some()` so appends check it without the mutex.
    poisoned: AtomicBool,
}

impl Committer {
    pub fn new(durable_lsn: Lsn) -> Self {
        let state =
            SyncState { durable_lsn, checkpointed_lsn: durable_lsn, ..SyncState::default() };
        let (published, _) =
            watch::channel(Published { durable_lsn, poisoned: false, closed: false });
        Committer {
            state: Mutex::new(state),
            changed: Condvar::new(),
            syncer_wake: Condvar::new(),
            published,
            poisoned: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, SyncState> {
        // Nothing panics while this lock is held (plain field updates), so a poisoned
        // mutex cannot hold a half-made state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn wait<'a>(&self, guard: MutexGuard<'a, SyncState>) -> MutexGuard<'a, SyncState> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }

    /// The background syncer's wait for work.
    pub fn wait_for_work<'a>(
        &self,
        guard: MutexGuard<'a, SyncState>,
        timeout: Option<std::time::Duration>,
    ) -> MutexGuard<'a, SyncState> {
        match timeout {
            Some(t) => self.syncer_wake.wait_timeout(guard, t).unwrap_or_else(|p| p.into_inner()).0,
            None => self.syncer_wake.wait(guard).unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Wakes blocking waiters.
    pub fn notify(&self) {
        self.changed.notify_all();
    }

    /// Wakes the background syncer.
    pub fn wake_syncer(&self) {
        self.syncer_wake.notify_all();
    }

    pub fn poisoned_error(cause: &str) -> WalError {
        WalError::Poisoned { cause: cause.to_owned() }
    }

    /// Blocks until `lsn` is durable, syncing as leader when no sync runs.
    /// `sync` writes and syncs everything written so far and returns the LSN it covered.
    pub fn wait_durable(&self, lsn: Lsn, sync: impl Fn() -> Result<Lsn>) -> Result<()> {
        let mut st = self.lock();
        loop {
            if let Some(cause) = &st.poisoned {
                return Err(Self::poisoned_error(cause));
            }
            if st.durable_lsn >= lsn {
                return Ok(());
            }
            if st.syncing {
                st = self.wait(st);
                continue;
            }
            st.syncing = true;
            drop(st);
            let started = std::time::Instant::now();
            let outcome = sync();
            let took = started.elapsed();
            if took >= SLOW_SYNC {
                tracing::warn!(
                    took_ms = took.as_millis() as u64,
                    "a sync of the log took longer than {} ms",
                    SLOW_SYNC.as_millis()
                );
            }
            st = self.lock();
            st.syncing = false;
            self.finish(&mut st, &outcome);
            // The leader whose sync failed reports the failure itself; everyone after
            // it sees `Poisoned`.
            outcome?;
        }
    }

    /// Records a sync's outcome and wakes everyone.
    fn finish(&self, st: &mut SyncState, outcome: &Result<Lsn>) {
        match outcome {
            Ok(covered) => st.durable_lsn = st.durable_lsn.max(*covered),
            Err(e) => {
                if st.poisoned.is_none() {
                    tracing::error!(error = %e, "a sync of the log failed: the log is poisoned and refuses every write until it is reopened");
                    st.poisoned = Some(e.to_string());
                }
            }
        }
        self.publish(st);
        self.notify();
        self.wake_parked_syncer(st);
    }

    /// Records durability reached outside `wait_durable` (a segment roll syncs too).
    pub fn advance(&self, covered: Lsn) {
        let mut st = self.lock();
        if covered > st.durable_lsn && st.poisoned.is_none() {
            st.durable_lsn = covered;
            self.publish(&st);
            self.notify();
            self.wake_parked_syncer(&mut st);
        }
    }

    /// Records that a checkpoint covering every frame up to `lsn` was written.
    pub fn checkpointed(&self, lsn: Lsn) {
        let mut st = self.lock();
        st.checkpointed_lsn = st.checkpointed_lsn.max(lsn);
    }

    /// A sync left the checkpoint behind while the syncer sleeps without a timeout: wake
    /// it, so it checkpoints if the log then goes idle. Once per idle spell, not per sync.
    fn wake_parked_syncer(&self, st: &mut SyncState) {
        if st.syncer_parked && st.durable_lsn > st.checkpointed_lsn {
            st.syncer_parked = false;
            self.wake_syncer();
        }
    }

    /// Poisons the log (a write or sync failed outside the commit protocol).
    pub fn poison(&self, cause: &WalError) {
        let mut st = self.lock();
        if st.poisoned.is_none() {
            tracing::error!(error = %cause, "a write to the log failed: the log is poisoned and refuses every write until it is reopened");
            st.poisoned = Some(cause.to_string());
        }
        self.publish(&st);
        self.notify();
    }

    fn publish(&self, st: &SyncState) {
        if st.poisoned.is_some() {
            self.poisoned.store(true, Ordering::Release);
        }
        self.published.send_replace(Published {
            durable_lsn: st.durable_lsn,
            poisoned: st.poisoned.is_some(),
            closed: st.closed,
        });
    }

    /// Asks the background syncer to make `lsn` durable.
    pub fn request(&self, lsn: Lsn) {
        let mut st = self.lock();
        if lsn > st.requested_lsn {
            st.requested_lsn = lsn;
        }
        drop(st);
        self.wake_syncer();
    }

    /// Awaits durability of `lsn` (after [`Committer::request`]).
    pub async fn durable_async(&self, lsn: Lsn) -> Result<()> {
        let mut rx = self.published.subscribe();
        // Copy the value out at once: the `Ref` holds the channel's read lock, and
        // `publish` takes its write lock while holding the state mutex taken below.
        let seen = rx.wait_for(|p| p.poisoned || p.durable_lsn >= lsn).await.map(|r| *r);
        match seen {
            Ok(p) if !p.poisoned => Ok(()),
            _ => {
                let st = self.lock();
                Err(Self::poisoned_error(st.poisoned.as_deref().unwrap_or("log closed")))
            }
        }
    }

    pub fn durable_lsn(&self) -> Lsn {
        self.lock().durable_lsn
    }

    /// Records that the log is closed with everything durable, and wakes every waiter.
    pub fn closed(&self) {
        let mut st = self.lock();
        st.closed = true;
        self.publish(&st);
        self.notify();
    }

    /// Blocks until the durable LSN passes `seen` or `timeout` passes; returns it.
    pub fn wait_beyond(&self, seen: Lsn, timeout: std::time::Duration) -> Result<Lsn> {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if st.durable_lsn > seen {
                return Ok(st.durable_lsn);
            }
            if let Some(cause) = &st.poisoned {
                return Err(Self::poisoned_error(cause));
            }
            if st.closed {
                return Err(WalError::Closed);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(st.durable_lsn);
            }
            st = self.changed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Awaits the durable LSN passing `seen`; returns it.
    pub async fn beyond_async(&self, seen: Lsn) -> Result<Lsn> {
        let mut rx = self.published.subscribe();
        // Copied out at once: the `Ref` holds the channel's read lock (see above).
        let found =
            rx.wait_for(|p| p.poisoned || p.closed || p.durable_lsn > seen).await.map(|r| *r);
        match found {
            Ok(p) if p.durable_lsn > seen => Ok(p.durable_lsn),
            Ok(p) if !p.poisoned => Err(WalError::Closed),
            _ => {
                let st = self.lock();
                Err(Self::poisoned_error(st.poisoned.as_deref().unwrap_or("log closed")))
            }
        }
    }

    pub fn check_poisoned(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        match &self.lock().poisoned {
            Some(cause) => Err(Self::poisoned_error(cause)),
            None => Ok(()),
        }
    }
}
