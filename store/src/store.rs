//! `OrderStore`: validated, logged, durable mutations over the in-memory state.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use orderlog_snapshot::SnapshotStore;
use orderlog_wal::storage::{FsStorage, Storage};
use orderlog_wal::{Lsn, RecoveryReport, SyncPolicy, Wal, WalOptions};

use crate::compactor::{
    CompactionOptions, CompactionReport, CompactionStats, CompactorSignal, Engine,
};
use crate::domain::{Order, SoaMemoryStats};
use crate::error::{Result, StoreError};
use crate::events::{Event, encode_batch};
use crate::fold::apply_range;
use crate::layout::{SNAPSHOT_DIR, WAL_DIR};
use crate::state::OrderState;

/// Options for [`OrderStore::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The write-ahead log's options (sync policy, recovery mode, segment size, ...).
    pub wal: WalOptions,
    /// When and how the log is folded into snapshots.
    pub compaction: CompactionOptions,
    /// Limits on the SQL analytics handles the store makes (memory, threads, spilling,
    /// time per query; used with the cargo feature `analytics`).
    pub analytics: crate::AnalyticsOptions,
    /// Most bytes of log one registered consumer may hold below what compaction would
    /// otherwise remove ([`OrderStore::consumer`]); one that would hold more is marked
    /// lagging (a warning, `StoreStats::consumers`, `orderlog consumers`) and no longer
    /// holds the log. Default 4 GiB.
    pub consumer_hold_bytes_max: u64,
    /// Continuous backup to object storage (`None`: off, the default).
    pub replication: Option<crate::ReplicationOptions>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            wal: WalOptions::default(),
            compaction: CompactionOptions::default(),
            analytics: crate::AnalyticsOptions::default(),
            consumer_hold_bytes_max: 4 << 30,
            replication: None,
        }
    }
}

impl StoreOptions {
    /// Options for tests: the smallest log segments (4 KiB of frames, so a few dozen
    /// writes roll a segment and a compaction has sealed segments to fold), no background
    /// compaction (a test compacts when it means to), everything else the default.
    pub fn for_tests() -> StoreOptions {
        StoreOptions {
            wal: WalOptions {
                segment_bytes: orderlog_wal::options::SEGMENT_BYTES_MIN,
                ..WalOptions::default()
            },
            compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
            ..StoreOptions::default()
        }
    }
}

/// What opening the store found and did.
#[derive(Debug, Clone)]
pub struct OpenReport {
    /// LSN of the snapshot loaded (0: none).
    pub snapshot_lsn: Lsn,
    /// Orders in that snapshot.
    pub snapshot_orders: usize,
    /// Log frames (batches) replayed on top of it.
    pub batches_replayed: u64,
    /// Events in those batches.
    pub events_replayed: u64,
    /// What the log's recovery found and cut.
    pub wal: RecoveryReport,
    /// Time taken, end to end.
    pub elapsed: Duration,
}

pub(crate) struct Inner {
    dir: PathBuf,
    #[cfg(feature = "analytics")]
    analytics: crate::analytics::AnalyticsOptions,
    engine: std::sync::Arc<Engine>,
    state: RwLock<OrderState>,
    report: OpenReport,
    compactor:
        std::sync::Mutex<Option<(std::sync::Arc<CompactorSignal>, std::thread::JoinHandle<()>)>>,
    /// The shipper, when replication is on.
    replicator: std::sync::Mutex<Option<Arc<crate::replication::Replicator>>>,
    /// A read replica's follower (`None`: a writer).
    replica: std::sync::Mutex<Option<Arc<crate::replica::Follower>>>,
    /// A read replica: writes are refused.
    read_only: std::sync::atomic::AtomicBool,
    /// A replica's shipping, started once it is promoted.
    replication_after_promotion: std::sync::Mutex<Option<crate::ReplicationOptions>>,
    /// The storage the store was opened on (its root).
    storage: Arc<dyn Storage>,
}

impl Inner {
    /// Stops the shipper after a last round (which ships what is durable now).
    fn stop_replicator(&self) {
        // Kept (stopped) so that `stats` still shows where shipping ended; stopped
        // outside the lock, so `stats` does not wait for the last round.
        let replicator = self.replicator.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(replicator) = replicator {
            replicator.stop();
        }
    }

    /// Stops a replica's follower (it stays a replica: writes are still refused).
    fn stop_follower(&self) {
        let follower = self.replica.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(follower) = follower {
            follower.stop();
        }
    }

    fn stop_compactor(&self) {
        let running = self.compactor.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((signal, handle)) = running {
            signal.stop();
            // The thread only returns; a panic there has already been reported.
            let _ = handle.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_compactor();
        self.stop_replicator();
        self.stop_follower();
        // Subscriptions share the log: close it now (errors ignored, as documented on
        // `close`), so they end once they have delivered what is durable.
        let _ = self.engine.wal.close();
    }
}

/// An event-sourced, durable order store. Cloning the handle shares the store.
///
/// ```
/// use orderlog_store::{Event, Order, OrderStatus, OrderStore, StoreOptions};
///
/// # fn main() -> orderlog_store::Result<()> {
/// let dir = tempfile::tempdir().expect("a temporary directory");
/// let store = OrderStore::open(dir.path(), StoreOptions::default())?;
/// // Validated, logged as one frame, applied; returns once it is on disk.
/// // Every field named; the total (quantity × unit price) is derived.
/// let first = Order::builder(1).customer(101).product(1001).quantity(2).unit_price(25.99);
/// let second = Order::builder(2).customer(102).product(1002).quantity(1).unit_price(49.99);
/// store.apply_batch(&[Event::create(first.build()?), Event::create(second.build()?)])?;
/// store.apply(Event::set_status(1, OrderStatus::Confirmed))?;
/// assert_eq!(store.get(1).map(|o| o.status), Some(OrderStatus::Confirmed));
/// // A refused mutation writes nothing: order 2 is pending, it cannot be delivered yet.
/// assert!(store.apply(Event::set_status(2, OrderStatus::Delivered)).is_err());
///
/// # #[cfg(feature = "analytics")] {
/// let sql = store.analytics()?; // DuckDB over the snapshots and the live tail
/// let rows = sql.analytics_query("SELECT count(*) AS n FROM orders")?;
/// assert_eq!(rows[0]["n"], 2);
/// # }
/// store.close()?;
/// drop(store);
/// let reopened = OrderStore::open(dir.path(), StoreOptions::default())?; // recovers
/// assert_eq!(reopened.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OrderStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OrderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderStore").field("dir", &self.inner.dir).finish_non_exhaustive()
    }
}

impl OrderStore {
    /// Opens (creating if needed) the store in `dir`: takes the directory's lock,
    /// recovers the log, replays it into the state, and reports what happened.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<OrderStore> {
        let storage = FsStorage::new(dir.as_ref()).with_backend(options.wal.backend());
        Self::open_on(Arc::new(storage), options)
    }

    /// [`OrderStore::open`] on any storage rooted at the store's directory (the simulated
    /// disk in crash tests): the log in its `wal/`, the snapshots in its `snapshots/`.
    pub fn open_on(storage: Arc<dyn Storage>, options: StoreOptions) -> Result<OrderStore> {
        Self::open_shipping_to(storage, options, None)
    }

    /// [`OrderStore::open`] with its log and snapshots shipped to `target`, an object
    /// store of the caller's own (one wrapped to count, throttle or inject faults, or a
    /// client configured beyond what a URL says), on `options.replication`'s schedule
    /// (its `target` URL then only names the backup in stats and logs).
    pub fn open_with_target(
        dir: impl AsRef<Path>,
        options: StoreOptions,
        target: orderlog_ship::Target,
    ) -> Result<OrderStore> {
        let storage = FsStorage::new(dir.as_ref()).with_backend(options.wal.backend());
        Self::open_shipping_to(Arc::new(storage), options, Some(target))
    }

    fn open_shipping_to(
        storage: Arc<dyn Storage>,
        options: StoreOptions,
        target: Option<orderlog_ship::Target>,
    ) -> Result<OrderStore> {
        let started = Instant::now();
        #[cfg(feature = "analytics")]
        options
            .analytics
            .validate()
            .map_err(|reason| crate::AnalyticsError::InvalidOptions { reason })?;
        let dir = storage.path().to_path_buf();
        // The log's lock is the store's; then the snapshot to start from; then the log's
        // recovery, which changes nothing until the store has checked that what it would
        // keep continues that snapshot.
        let locked = Wal::lock(storage.sub(WAL_DIR), options.wal.clone())?;
        let snapshots = SnapshotStore::open_on(storage.sub(SNAPSHOT_DIR))?;
        let (mut state, snapshot_lsn) = match snapshots.load::<OrderState>()? {
            Some((state, verified)) => (state, verified.info.lsn),
            None => (OrderState::new(), 0),
        };
        let snapshot_orders = state.len();
        let recovered = locked.recover(snapshot_lsn)?;
        check_log_continues(recovered.report(), snapshot_lsn)?;
        let wal = recovered.open()?;
        let applied =
            apply_range(&wal, snapshot_lsn + 1, wal.last_lsn(), &mut state, &mut |_, _| {})?;
        let report = OpenReport {
            snapshot_lsn,
            snapshot_orders,
            batches_replayed: applied.batches,
            events_replayed: applied.events,
            wal: wal.recovery_report().clone(),
            elapsed: started.elapsed(),
        };
        log_open(&dir, &report);
        let consumers = crate::feed::consumers::Consumers::open(
            storage.sub(crate::feed::CONSUMER_DIR),
            options.consumer_hold_bytes_max,
            wal.last_lsn(),
        )?;
        let engine = Arc::new(Engine::new(wal, snapshots, consumers, options.compaction));
        let background = engine.background();
        let inner = Inner {
            dir,
            #[cfg(feature = "analytics")]
            analytics: options.analytics,
            engine: Arc::clone(&engine),
            state: RwLock::new(state),
            report,
            compactor: std::sync::Mutex::new(None),
            replicator: std::sync::Mutex::new(None),
            replica: std::sync::Mutex::new(None),
            read_only: std::sync::atomic::AtomicBool::new(false),
            replication_after_promotion: std::sync::Mutex::new(None),
            storage: Arc::clone(&storage),
        };
        if options.replication.is_none() {
            crate::replication::forget_consumer(&engine)?;
        }
        if let Some(replication) = options.replication {
            let replicator = crate::replication::Replicator::start(
                Arc::clone(&engine),
                Arc::clone(&storage),
                replication,
                target,
            )?;
            *inner.replicator.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Arc::new(replicator));
        }
        if background {
            let signal = Arc::new(CompactorSignal::default());
            let thread_signal = Arc::clone(&signal);
            let handle = std::thread::Builder::new()
                .name("orderlog-compactor".into())
                .spawn(move || engine.run_compactor(&thread_signal))
                .map_err(|e| StoreError::Thread(e.to_string()))?;
            *inner.compactor.lock().unwrap_or_else(|p| p.into_inner()) = Some((signal, handle));
        }
        Ok(OrderStore { inner: Arc::new(inner) })
    }

    /// Folds the last snapshot and the sealed log segments into a new snapshot now, and
    /// drops the log segments it covers (beyond the retained ones). Writers carry on.
    pub fn compact(&self) -> Result<CompactionReport> {
        self.inner.engine.compact(&mut |_| Ok(()))
    }

    /// [`OrderStore::compact`], calling `hook` after each step of publishing the snapshot;
    /// an error from the hook stops the compaction there. A crash-testing hook, hidden from
    /// the API's documentation: `orderlog::testing::compact_with_hook` is its documented
    /// form.
    #[doc(hidden)]
    pub fn compact_with_hook(
        &self,
        hook: &mut dyn FnMut(orderlog_snapshot::PublishStep) -> orderlog_snapshot::Result<()>,
    ) -> Result<CompactionReport> {
        self.inner.engine.compact(hook)
    }

    /// What opening the store found and did.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.report
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn read(&self) -> RwLockReadGuard<'_, OrderState> {
        // Writers never panic while holding the lock (apply_batch validates first), so a
        // poisoned lock still guards a consistent state.
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle on `inner` (a replica's follower holds a weak reference).
    pub(crate) fn from_inner(inner: Arc<Inner>) -> OrderStore {
        OrderStore { inner }
    }

    /// The state's write lock.
    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, OrderState> {
        self.write()
    }

    /// Refuses writes on a read replica.
    fn check_writable(&self) -> Result<()> {
        if self.inner.read_only.load(std::sync::atomic::Ordering::Acquire) {
            let target = self
                .inner
                .replica
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|f| f.target.url().to_owned())
                .unwrap_or_default();
            return Err(StoreError::ReadOnlyReplica { dir: self.inner.dir.clone(), target });
        }
        Ok(())
    }

    /// Opens a read replica of the backup `source.target` in `dir`: restored from the
    /// backup first if `dir` holds no store, then following it every `source.interval`
    /// (see [`crate::replica`]). Reads, analytics and subscriptions are served; writes
    /// are refused with [`StoreError::ReadOnlyReplica`] until [`OrderStore::promote`].
    /// `options.replication`, if set, is the shipping the store starts once promoted.
    pub fn open_replica(
        source: crate::ReplicationOptions,
        dir: impl AsRef<Path>,
        mut options: StoreOptions,
    ) -> Result<OrderStore> {
        let dir = dir.as_ref();
        let target = orderlog_ship::Target::open(&source.target, &source.client_options)?
            .with_timeout(source.request_timeout);
        if !dir.join(WAL_DIR).exists() {
            let runtime = crate::replica::runtime()?;
            let restored = runtime.block_on(orderlog_ship::restore::restore(
                &target,
                dir,
                None,
                orderlog_ship::restore::Base::Newest,
                |_, _| {},
            ))?;
            tracing::info!(
                dir = %dir.display(),
                target = target.url(),
                generation = %restored.generation,
                last_lsn = restored.last_lsn,
                "replica restored from its backup"
            );
        }
        let shipping = options.replication.take();
        let store = OrderStore::open(dir, options)?;
        // A directory that shipped before (a failed primary reopened as a replica)
        // follows another writer now: its record of its own generation is void.
        orderlog_ship::marker::remove(store.inner.storage.as_ref())?;
        store.inner.read_only.store(true, std::sync::atomic::Ordering::Release);
        *store.inner.replication_after_promotion.lock().unwrap_or_else(|p| p.into_inner()) =
            shipping;
        let follower =
            crate::replica::Follower::start(Arc::downgrade(&store.inner), target, source.interval)?;
        *store.inner.replica.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(follower));
        Ok(store)
    }

    /// Whether the store is a read replica (not yet promoted).
    pub fn is_replica(&self) -> bool {
        self.inner.read_only.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Makes a read replica a writer: applies what the backup holds, fences the
    /// primary (see [`crate::replica`]), then accepts writes and, with
    /// `StoreOptions::replication`, ships into a new generation.
    pub fn promote(&self) -> Result<()> {
        // Taken: a second promotion at once, or one after `close`, is refused.
        let follower = self.inner.replica.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(follower) = follower else {
            return Err(StoreError::NotAReplica { dir: self.inner.dir.clone() });
        };
        // The shipping the promoted store starts is checked before the primary is fenced.
        let shipping = self
            .inner
            .replication_after_promotion
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let shipping_target = match &shipping {
            Some(options) if options.interval.is_zero() => {
                return Err(orderlog_ship::ShipError::Url {
                    url: options.target.clone(),
                    reason: "the replication interval must be more than zero".into(),
                }
                .into());
            }
            Some(options) => {
                Some(orderlog_ship::Target::open(&options.target, &options.client_options)?)
            }
            None => None,
        };
        follower.stop();
        if let Err(e) = crate::replica::fence(self, &follower) {
            // Still a replica: follow again.
            let restarted = crate::replica::Follower::start(
                Arc::downgrade(&self.inner),
                follower.target.clone(),
                follower.interval,
            )?;
            *self.inner.replica.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Arc::new(restarted));
            return Err(e);
        }
        self.inner.read_only.store(false, std::sync::atomic::Ordering::Release);
        tracing::info!(dir = %self.inner.dir.display(), last_lsn = self.last_lsn(), "replica promoted");
        if let Some(shipping) = shipping {
            // A new generation: every shipper starts one, after every generation there.
            let replicator = crate::replication::Replicator::start(
                Arc::clone(&self.inner.engine),
                Arc::clone(&self.inner.storage),
                shipping,
                shipping_target,
            )?;
            *self.inner.replicator.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Arc::new(replicator));
        }
        Ok(())
    }

    fn write(&self) -> RwLockWriteGuard<'_, OrderState> {
        self.inner.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one mutation; see [`OrderStore::apply_batch`].
    pub fn apply(&self, event: Event) -> Result<Lsn> {
        self.apply_batch(&[event])
    }

    /// Validates a batch against the state, logs it as one frame, applies it, and
    /// returns its LSN once it is durable as the sync policy promises. A batch with one
    /// bad event writes nothing and changes nothing.
    ///
    /// The state is updated before the sync completes (so the next writer validates
    /// against it), which lets a concurrent reader see a mutation up to one group commit
    /// before its writer is acknowledged; if that sync fails the log is poisoned and the
    /// store refuses all further writes, and reopening recovers exactly the durable log.
    pub fn apply_batch(&self, events: &[Event]) -> Result<Lsn> {
        let lsn = self.log_and_apply(events)?;
        if self.inner.engine.wal.options().sync_policy == SyncPolicy::Always {
            self.inner.engine.wal.wait_durable(lsn)?;
        }
        Ok(lsn)
    }

    /// Refuses a batch above the most events one frame may hold, before any work.
    pub(crate) fn check_batch_size(&self, events: &[Event]) -> Result<()> {
        if events.len() > crate::events::BATCH_EVENTS_MAX {
            return Err(crate::state::MutationError::BatchTooLarge {
                len: events.len(),
                max: crate::events::BATCH_EVENTS_MAX,
            }
            .into());
        }
        Ok(())
    }

    fn log_and_apply(&self, events: &[Event]) -> Result<Lsn> {
        // Encoding needs no state: do it before taking the writer lock. Limits are
        // checked first so an oversized batch costs nothing.
        self.check_batch_size(events)?;
        let mut payload = Vec::with_capacity(16 + events.len() * 64);
        encode_batch(events, &mut payload);
        self.log_and_apply_payload(events, &payload)
    }

    /// Logs `payload` (the encoding of `events`) and applies `events`, under the state's
    /// write lock.
    pub(crate) fn log_and_apply_payload(&self, events: &[Event], payload: &[u8]) -> Result<Lsn> {
        let mut state = self.write();
        self.log_and_apply_locked(&mut state, events, payload)
    }

    /// The state's write lock if it is free now.
    pub(crate) fn try_write(
        &self,
    ) -> std::result::Result<
        RwLockWriteGuard<'_, OrderState>,
        std::sync::TryLockError<RwLockWriteGuard<'_, OrderState>>,
    > {
        self.inner.state.try_write()
    }

    /// What the store shares with its compactor and its subscriptions.
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// The log (the async API waits on its group commit).
    pub(crate) fn wal_handle(&self) -> &Wal {
        &self.inner.engine.wal
    }

    /// Validates `events` against `state`, logs `payload` as one frame and applies them;
    /// a batch of creates is applied first and undone if the log refuses it.
    pub(crate) fn log_and_apply_locked(
        &self,
        state: &mut OrderState,
        events: &[Event],
        payload: &[u8],
    ) -> Result<Lsn> {
        self.check_writable()?;
        let wal = &self.inner.engine.wal;
        if let Some(before) = state.try_append_creates(events) {
            // New orders are checked as they are applied; readers wait on the lock, so
            // none sees them unless the log takes them.
            return match wal.write(&[payload]) {
                Ok(lsns) => Ok(*lsns.end()),
                Err(e) => {
                    state.undo_appends(before);
                    Err(e.into())
                }
            };
        }
        state.check_batch(events)?;
        let lsn = *wal.write(&[payload])?.end();
        // Checked above against this state, under the same lock.
        state.apply_checked_batch(events);
        Ok(lsn)
    }

    /// What analytics reads of the store, with compactions held off while the view
    /// lives (no snapshot is published or pruned and no log segment removed meanwhile).
    #[cfg(feature = "analytics")]
    pub(crate) fn read_view(&self) -> ReadView<'_> {
        ReadView {
            wal: &self.inner.engine.wal,
            snapshots: &self.inner.engine.snapshots,
            analytics: &self.inner.analytics,
            state: &self.inner.state,
            _no_compaction: self.inner.engine.hold_compactions(),
        }
    }

    /// An order, if present.
    pub fn get(&self, order_id: u64) -> Option<Order> {
        self.read().get(order_id).map(|(order, _)| order)
    }

    /// An order and its version (for optimistic concurrency).
    pub fn get_versioned(&self, order_id: u64) -> Option<(Order, u32)> {
        self.read().get(order_id)
    }

    /// Orders held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True if no order is held.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The orders matching `predicate` (only those: an empty result if none match).
    pub fn query(&self, predicate: impl Fn(&Order) -> bool) -> Vec<Order> {
        self.read().orders().iter().filter(|o| predicate(o)).collect()
    }

    /// Runs `f` on the state's columns under a read lock (no copy).
    pub fn with_kernel<R>(&self, f: impl FnOnce(&crate::domain::OrderSoA) -> R) -> R {
        f(self.read().orders())
    }

    /// A copy of the state's columns.
    pub fn kernel(&self) -> crate::domain::OrderSoA {
        self.read().orders().clone()
    }

    /// A copy of the whole state (orders and versions).
    pub fn state(&self) -> OrderState {
        self.read().clone()
    }

    /// Makes room for `additional` more orders than the store holds, so that growing to
    /// that size neither copies the columns nor rebuilds the index under the writers'
    /// lock (each growth does both: tens of milliseconds at a million orders, during
    /// which no write proceeds). The index's share (4–8 bytes per order) is resident at
    /// once; the columns' is address space until orders fill it. For this process only:
    /// a reopened store starts sized to what it holds. Refused, with the orders
    /// unchanged, beyond the most orders a store can hold or when memory cannot be had.
    pub fn reserve(&self, additional: usize) -> Result<()> {
        Ok(self.write().reserve(additional)?)
    }

    /// Memory held by the state.
    pub fn memory_stats(&self) -> SoaMemoryStats {
        self.read().orders().memory_stats()
    }

    /// LSN of the last mutation logged.
    pub fn last_lsn(&self) -> Lsn {
        self.inner.engine.wal.last_lsn()
    }

    /// LSN of the last mutation known durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.inner.engine.wal.durable_lsn()
    }

    /// What the store has done since it opened: the log's counters and the
    /// compactions run and failed.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            wal: self.inner.engine.wal.stats(),
            compaction: self.inner.engine.stats(),
            consumers: self.consumers(),
            replication: self
                .inner
                .replicator
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|r| r.stats()),
            replica: self
                .inner
                .replica
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|f| f.stats(self.last_lsn())),
        }
    }

    /// Makes every logged mutation durable (whatever the policy).
    pub fn sync(&self) -> Result<()> {
        Ok(self.inner.engine.wal.sync()?)
    }

    /// Stops the compactor, syncs and closes the log; later writes return an error.
    /// Dropping the last handle does the same, ignoring errors.
    pub fn close(&self) -> Result<()> {
        self.inner.stop_compactor();
        self.inner.stop_follower();
        // What is durable is shipped before the shipper stops.
        let synced = self.inner.engine.wal.sync();
        self.inner.stop_replicator();
        synced?;
        Ok(self.inner.engine.wal.close()?)
    }
}

/// The log must hold every frame after the snapshot: its first LSN at most one past the
/// snapshot's, and its last at least the snapshot's.
/// Checks, on what the log's recovery would keep, that the log continues the snapshot at
/// `snapshot_lsn`: it starts at or before the next LSN and reaches the snapshot.
fn check_log_continues(report: &RecoveryReport, snapshot_lsn: Lsn) -> Result<()> {
    let (first_lsn, last_lsn) = (report.first_lsn, report.last_lsn);
    if first_lsn > snapshot_lsn.saturating_add(1) || last_lsn < snapshot_lsn {
        return Err(StoreError::LogDoesNotContinueSnapshot {
            snapshot_lsn,
            first_lsn,
            last_lsn,
            cut: report.truncated.clone(),
            discarded_segments: report.discarded_segments.clone(),
        });
    }
    Ok(())
}

/// What a store has done since it opened ([`OrderStore::stats`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreStats {
    /// The log's counters (LSNs, segments, bytes, syncs).
    pub wal: orderlog_wal::WalStats,
    /// Compactions completed and failed, the last failure and the last report.
    pub compaction: CompactionStats,
    /// The registered consumers: positions, lag, log held, and which are lagging.
    pub consumers: Vec<crate::feed::ConsumerInfo>,
    /// The shipper's progress and lag (`None`: replication is off).
    pub replication: Option<crate::ReplicationStats>,
    /// A read replica's position against its backup (`None`: not a replica).
    pub replica: Option<crate::replica::ReplicaStats>,
}

/// What analytics reads of a store ([`OrderStore::read_view`]): the log, the snapshots
/// and the state, with compactions held off while it lives.
#[cfg(feature = "analytics")]
pub(crate) struct ReadView<'a> {
    pub(crate) wal: &'a Wal,
    pub(crate) snapshots: &'a SnapshotStore,
    pub(crate) analytics: &'a crate::analytics::AnalyticsOptions,
    state: &'a RwLock<OrderState>,
    _no_compaction: std::sync::MutexGuard<'a, ()>,
}

#[cfg(feature = "analytics")]
impl ReadView<'_> {
    /// The state under a read lock (writers wait while it is held).
    pub(crate) fn state(&self) -> RwLockReadGuard<'_, OrderState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Tells an operator what opening found and did.
fn log_open(dir: &Path, report: &OpenReport) {
    let wal = &report.wal;
    tracing::info!(
        dir = %dir.display(),
        snapshot_lsn = report.snapshot_lsn,
        snapshot_orders = report.snapshot_orders,
        batches_replayed = report.batches_replayed,
        events_replayed = report.events_replayed,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "store opened"
    );
    if let Some(cut) = &wal.truncated {
        tracing::warn!(
            file = %cut.file.display(),
            offset = cut.offset,
            reason = %cut.reason,
            "recovery cut the log's unfinished tail"
        );
    }
    for segment in &wal.discarded_segments {
        tracing::warn!(segment = %segment.display(), "recovery set a damaged segment aside");
    }
}
