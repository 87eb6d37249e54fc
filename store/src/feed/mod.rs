//! The change feed: the store's durable events, in LSN order, from any point on, as they
//! are made durable ([`OrderStore::subscribe`]); and durable named consumers whose
//! acknowledged positions hold the log ([`OrderStore::consumer`]).
//!
//! **Only durable events are delivered.** Under [`SyncPolicy::Interval`] and
//! [`SyncPolicy::Never`] an event reaches a subscriber only after the sync that made it
//! durable (under `Never`, a segment roll, [`OrderStore::sync`] or the close), so no
//! subscriber ever acts on an event that a power cut could still undo.
//!
//! **How it reads.** A subscription reads the log from disk while it is behind, then
//! switches to the log's in-memory cache of recent frames at exactly the next LSN
//! ([`orderlog_wal::LogFollower`]); a subscriber too slow for the cache (writers never
//! wait for subscribers) reads from disk again until it catches up. Every LSN is
//! examined once, in order: no gap, no duplicate, whichever way it was read.
//!
//! **Behind a truncated log.** A position below the log's first retained LSN (a
//! compaction folded those frames into a snapshot and removed them) is served the
//! newest snapshot's orders, as [`FeedItem::Snapshot`], then the log after it; or is
//! refused with [`FeedError::LogTruncated`] if the subscription asked for the log
//! itself ([`FeedOptions::require_log`]). A registered consumer's position is never
//! truncated unless it held more log than allowed and was marked lagging.
//!
//! [`SyncPolicy::Interval`]: orderlog_wal::SyncPolicy::Interval
//! [`SyncPolicy::Never`]: orderlog_wal::SyncPolicy::Never

mod arrow;
pub(crate) mod consumers;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderlog_wal::{Followed, LogFollower, Lsn, WalError};

use crate::compactor::Engine;
use crate::domain::Order;
use crate::error::{FeedError, Result, StoreError};
use crate::events::{Event, EventType, decode_batch};
use crate::fold::{fold_to, lsn_at_time};
use crate::point::FoldTarget;
use crate::state::OrderState;

pub use arrow::{feed_schema, to_record_batch};
pub use consumers::{CONSUMER_DIR, ConsumerRecord, read_consumers};

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartAt {
    /// The first LSN (behind a truncated log: the newest snapshot, then the log).
    Beginning,
    /// This LSN: the first frame delivered carries it. At most one past the last LSN.
    Lsn(Lsn),
    /// The first frame holding an event stamped later than this time (ms since the
    /// epoch): the events after the state [`OrderStore::as_of_time`] shows.
    TimeMs(u64),
    /// Whatever is made durable from now on: the LSN after the durable LSN now.
    End,
    /// Just after the named consumer's acknowledged position.
    Consumer(String),
}

/// Which events a subscription delivers: all of them by default; narrowed to some event
/// types and/or some orders. A frame none of whose events match is skipped whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Bit set of [`EventType`]s (`None`: every type).
    types: Option<u8>,
    /// Order ids, sorted (`None`: every order).
    orders: Option<Vec<u64>>,
}

impl Filter {
    /// Every event.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Only events of these types. Naming none is refused when subscribing
    /// ([`FeedError::EmptyFilter`]).
    pub fn types(mut self, types: impl IntoIterator<Item = EventType>) -> Filter {
        self.types = Some(types.into_iter().fold(0, |set, t| set | t.bit()));
        self
    }

    /// Only events of these orders. Naming none is refused when subscribing.
    pub fn orders(mut self, ids: impl IntoIterator<Item = u64>) -> Filter {
        let mut ids: Vec<u64> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        self.orders = Some(ids);
        self
    }

    /// True if `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        self.types.is_none_or(|set| set & event.event_type().bit() != 0)
            && self.matches_order(event.order_id)
    }

    fn matches_order(&self, order_id: u64) -> bool {
        self.orders.as_ref().is_none_or(|ids| ids.binary_search(&order_id).is_ok())
    }

    fn check(&self) -> Result<()> {
        if self.types == Some(0) {
            return Err(FeedError::EmptyFilter { what: "event kind" }.into());
        }
        if self.orders.as_ref().is_some_and(Vec::is_empty) {
            return Err(FeedError::EmptyFilter { what: "order" }.into());
        }
        Ok(())
    }
}

/// How a subscription delivers.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// Which events.
    pub filter: Filter,
    /// With each event, the order's row just after it ([`FeedEvent::row`]). The
    /// subscription then keeps a state of its own, folded to its position (a copy of the
    /// store's orders in memory).
    pub with_rows: bool,
    /// Refuse ([`FeedError::LogTruncated`]) rather than deliver a snapshot in place of
    /// log frames a compaction removed.
    pub require_log: bool,
    /// Most frames read per step (default 1,024): bounds the memory and the time one
    /// step takes.
    pub frames_per_step: usize,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            filter: Filter::all(),
            with_rows: false,
            require_log: false,
            frames_per_step: 1024,
        }
    }
}

impl From<Filter> for FeedOptions {
    fn from(filter: Filter) -> Self {
        FeedOptions { filter, ..FeedOptions::default() }
    }
}

/// The order's row just after an event ([`FeedOptions::with_rows`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowAfter {
    /// The order.
    pub order: Order,
    /// Its version (mutations applied since it was created).
    pub version: u32,
}

/// One delivered event.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// Its position in its frame (0-based): with the frame's LSN, a key unique in the
    /// log (an idempotency key for whatever acts on it).
    pub index: u32,
    /// The event.
    pub event: Event,
    /// The order's row after it (requested with [`FeedOptions::with_rows`]; `None` if
    /// not requested or the event erased the order).
    pub row: Option<RowAfter>,
}

/// The matching events of one log frame (one atomic batch).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedBatch {
    /// The frame's LSN.
    pub lsn: Lsn,
    /// The newest event stamp in the frame (ms since the epoch), filtered or not.
    pub timestamp_ms: u64,
    /// The frame's events that pass the filter, in order (at least one).
    pub events: Vec<FeedEvent>,
}

/// What a subscription delivers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FeedItem {
    /// The newest snapshot's orders, standing in for log frames a compaction removed:
    /// the state after every frame up to `lsn`. The log after it follows.
    Snapshot {
        /// The snapshot's LSN.
        lsn: Lsn,
        /// Its orders (those the filter's order ids name, if it names any), with the
        /// store's order columns and `version`.
        orders: ::arrow::array::RecordBatch,
    },
    /// A frame's matching events.
    Batch(FeedBatch),
}

impl FeedItem {
    /// The LSN the item brings the subscriber to.
    pub fn lsn(&self) -> Lsn {
        match self {
            FeedItem::Snapshot { lsn, .. } => *lsn,
            FeedItem::Batch(b) => b.lsn,
        }
    }

    /// The batch, if this is one.
    pub fn as_batch(&self) -> Option<&FeedBatch> {
        match self {
            FeedItem::Batch(b) => Some(b),
            FeedItem::Snapshot { .. } => None,
        }
    }
}

/// How far behind the durable log a subscription is.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Lag {
    /// Durable LSNs not yet delivered (nor skipped by the filter).
    pub lsns: u64,
    /// About how many bytes of log those take (whole segments, pro rata for the
    /// segment holding the position).
    pub bytes: u64,
    /// Seconds since the subscription was last caught up (0 while it is).
    pub seconds: f64,
}

/// What one step of reading found.
enum Step {
    /// Items were queued, or the position moved past frames the filter skipped.
    Progress,
    /// Everything durable has been examined; the durable LSN then.
    CaughtUp(Lsn),
    /// The next step reads from disk (async callers run it on the blocking pool).
    NeedsDisk,
}

/// A subscription's state, shared by its blocking and async forms.
pub(crate) struct Core {
    engine: Arc<Engine>,
    follower: LogFollower,
    options: FeedOptions,
    /// The subscription's own state at its position (with rows).
    rows: Option<OrderState>,
    /// Items read, not yet handed out, each with the position it brings.
    pending: VecDeque<(Lsn, FeedItem)>,
    /// Every LSN up to this has been handed out or skipped.
    position: Lsn,
    /// Every LSN up to this has been read (handed out or queued, or skipped).
    examined: Lsn,
    caught_up_at: Instant,
    ended: bool,
    /// With rows: no state at the position could be folded; the newest snapshot must
    /// stand in before anything is delivered.
    needs_base: bool,
}

impl Core {
    pub(crate) fn new(engine: Arc<Engine>, from: StartAt, options: FeedOptions) -> Result<Core> {
        options.filter.check()?;
        let wal = &engine.wal;
        let next = match from {
            StartAt::Beginning => 1,
            StartAt::Lsn(lsn) => {
                let last = wal.last_lsn();
                if lsn > last + 1 {
                    return Err(FeedError::FutureLsn { requested: lsn, last_lsn: last }.into());
                }
                lsn.max(1)
            }
            StartAt::TimeMs(ms) => {
                let _no_compaction = engine.hold_compactions();
                let listed = engine.snapshots.list()?;
                match lsn_at_time(wal, &listed, ms)? {
                    Ok(prefix_end) => prefix_end + 1,
                    // The time lies before the retained log: from the beginning (the
                    // newest snapshot stands in for what is gone).
                    Err(_) => 1,
                }
            }
            StartAt::End => wal.durable_lsn() + 1,
            StartAt::Consumer(name) => engine.consumers.get(&name)?.acked_lsn.saturating_add(1),
        };
        let first_lsn = wal.first_lsn();
        if options.require_log && next < first_lsn {
            return Err(FeedError::LogTruncated { from: next, first_lsn }.into());
        }
        let rows = if options.with_rows { initial_rows(&engine, next)? } else { None };
        // With rows and no state reachable at the position (no retained snapshot at or
        // below it that the log continues), the newest snapshot stands in first.
        let needs_base = options.with_rows && rows.is_none() && next > 1;
        if needs_base && options.require_log {
            return Err(FeedError::LogTruncated { from: next, first_lsn }.into());
        }
        let follower = wal.follow(next);
        Ok(Core {
            engine,
            follower,
            options,
            rows,
            pending: VecDeque::new(),
            position: next - 1,
            examined: next - 1,
            caught_up_at: Instant::now(),
            ended: false,
            needs_base,
        })
    }

    fn pop(&mut self) -> Option<FeedItem> {
        let (position, item) = self.pending.pop_front()?;
        self.position = position;
        Some(item)
    }

    fn position(&self) -> Lsn {
        if self.pending.is_empty() { self.examined } else { self.position }
    }

    /// One step: reads up to `frames_per_step` frames (from disk only if `allow_disk`).
    fn step(&mut self, allow_disk: bool) -> Result<Step> {
        if self.needs_base {
            if !allow_disk {
                return Ok(Step::NeedsDisk);
            }
            self.take_snapshot()?;
            self.needs_base = false;
            return Ok(Step::Progress);
        }
        let max = self.options.frames_per_step;
        let followed = if allow_disk {
            self.follower.poll(max)?
        } else {
            match self.follower.poll_cached(max) {
                Some(followed) => followed,
                None => return Ok(Step::NeedsDisk),
            }
        };
        match followed {
            Followed::Frames(frames) => {
                for frame in &frames {
                    self.take_frame(frame.lsn(), frame.payload())?;
                }
                Ok(Step::Progress)
            }
            Followed::CaughtUp { durable } => {
                self.caught_up_at = Instant::now();
                Ok(Step::CaughtUp(durable))
            }
            Followed::Behind { first_lsn } => {
                if self.options.require_log {
                    return Err(FeedError::LogTruncated {
                        from: self.follower.next_lsn(),
                        first_lsn,
                    }
                    .into());
                }
                if !allow_disk {
                    return Ok(Step::NeedsDisk);
                }
                self.take_snapshot()?;
                Ok(Step::Progress)
            }
            _ => Ok(Step::Progress),
        }
    }

    /// Decodes a frame, folds it into the subscription's state (with rows), and queues
    /// its matching events.
    fn take_frame(&mut self, lsn: Lsn, payload: &[u8]) -> Result<()> {
        let events = decode_batch(payload).map_err(|source| StoreError::Decode { lsn, source })?;
        let timestamp_ms = events.iter().map(|e| e.timestamp_ms).max().unwrap_or(0);
        let mut delivered = Vec::new();
        for (index, event) in events.iter().enumerate() {
            let row = match self.rows.as_mut() {
                Some(state) => {
                    state
                        .apply_batch(std::slice::from_ref(event))
                        .map_err(|source| StoreError::Replay { lsn, source })?;
                    state.get(event.order_id).map(|(order, version)| RowAfter { order, version })
                }
                None => None,
            };
            if self.options.filter.matches(event) {
                // At most 65,536 events in a frame (`BATCH_EVENTS_MAX`).
                delivered.push(FeedEvent { index: index as u32, event: *event, row });
            }
        }
        self.examined = lsn;
        if !delivered.is_empty() {
            let batch = FeedBatch { lsn, timestamp_ms, events: delivered };
            self.pending.push_back((lsn, FeedItem::Batch(batch)));
        }
        Ok(())
    }

    /// Stands the newest snapshot in for the frames the log no longer holds.
    fn take_snapshot(&mut self) -> Result<()> {
        let next = self.follower.next_lsn();
        let loaded = {
            let _no_compaction = self.engine.hold_compactions();
            self.engine.snapshots.load::<OrderState>()?
        };
        let Some((state, verified)) = loaded else {
            return Err(FeedError::LogTruncated {
                from: next,
                first_lsn: self.engine.wal.first_lsn(),
            }
            .into());
        };
        let lsn = verified.info.lsn;
        if lsn + 1 < next {
            // The log continues every snapshot it outlived: this cannot be, but a
            // snapshot behind the position must never move it backwards.
            return Err(FeedError::LogTruncated {
                from: next,
                first_lsn: self.engine.wal.first_lsn(),
            }
            .into());
        }
        let orders = arrow::snapshot_orders(&state, &self.options.filter)?;
        tracing::info!(
            from = next,
            snapshot_lsn = lsn,
            "a subscription behind the truncated log gets the newest snapshot, then the log after it"
        );
        if self.options.with_rows {
            self.rows = Some(state);
        }
        self.follower.skip_to(lsn + 1);
        self.examined = lsn;
        self.pending.push_back((lsn, FeedItem::Snapshot { lsn, orders }));
        Ok(())
    }

    fn lag(&self) -> Lag {
        let durable = self.engine.wal.durable_lsn();
        let position = self.position();
        let lsns = durable.saturating_sub(position);
        let seconds = if lsns == 0 { 0.0 } else { self.caught_up_at.elapsed().as_secs_f64() };
        Lag { lsns, bytes: log_bytes_after(&self.engine.wal, position), seconds }
    }

    /// Blocks until an item is ready, the timeout passes (`None`), or the store is
    /// closed with everything durable delivered (`None`, and `ended`).
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<FeedItem>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(item) = self.pop() {
                return Ok(Some(item));
            }
            if self.ended {
                return Ok(None);
            }
            match self.step(true)? {
                // Frames the filter skipped: read on, within the timeout.
                Step::Progress | Step::NeedsDisk
                    if self.pending.is_empty() && Instant::now() >= deadline =>
                {
                    return Ok(None);
                }
                Step::Progress | Step::NeedsDisk => continue,
                Step::CaughtUp(durable) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    match self.engine.wal.wait_durable_beyond(durable, left) {
                        Ok(_) => {}
                        Err(WalError::Closed) => self.end_after_drain()?,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }

    /// The store closed: read what is left, then end.
    fn end_after_drain(&mut self) -> Result<()> {
        while let Step::Progress | Step::NeedsDisk = self.step(true)? {}
        self.ended = true;
        Ok(())
    }
}

/// With rows: the state at `next - 1`, folded from a snapshot and the log; `None` if the
/// retained log cannot reach it (the newest snapshot then stands in, as behind a
/// truncated log).
fn initial_rows(engine: &Engine, next: Lsn) -> Result<Option<OrderState>> {
    let _no_compaction = engine.hold_compactions();
    match fold_to(&engine.wal, &engine.snapshots, FoldTarget::Lsn(next - 1), &mut |_, _| {}) {
        Ok(fold) => Ok(Some(fold.state)),
        Err(StoreError::Unreachable { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// About how many bytes of log lie after `lsn`: whole segments after the one holding
/// it, and that one pro rata by LSN.
pub(crate) fn log_bytes_after(wal: &orderlog_wal::Wal, lsn: Lsn) -> u64 {
    let segments = wal.segment_sizes();
    let last = wal.last_lsn();
    let mut total = 0u64;
    for (i, &(base, bytes)) in segments.iter().enumerate() {
        let end = segments.get(i + 1).map_or(last, |next| next.0.saturating_sub(1));
        if end <= lsn || end < base {
            continue;
        }
        if base > lsn {
            total += bytes;
        } else {
            let frames = end - base + 1;
            total += bytes * (end - lsn) / frames;
        }
    }
    total
}

/// A subscription to the store's durable events ([`OrderStore::subscribe`]): a
/// blocking iterator of [`FeedItem`]s that waits for new events, and ends once the
/// store is closed and every durable event delivered. [`Subscription::into_stream`]
/// gives the async form.
///
/// A subscription holds a handle on the store's log: the store's directory stays locked
/// until the subscription is dropped, even after its last store handle is.
pub struct Subscription {
    core: Core,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("position", &self.core.position())
            .field("pending", &self.core.pending.len())
            .field("follower", &self.core.follower)
            .field("ended", &self.core.ended)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(core: Core) -> Subscription {
        Subscription { core }
    }

    /// The next item, waiting at most `timeout` for one; `Ok(None)` on a timeout or
    /// once the store is closed and everything durable delivered
    /// ([`Subscription::is_ended`]).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<FeedItem>> {
        self.core.recv_timeout(timeout)
    }

    /// The next item if one is durable now, without waiting for a sync (it may read from
    /// disk).
    pub fn try_recv(&mut self) -> Result<Option<FeedItem>> {
        self.core.recv_timeout(Duration::ZERO)
    }

    /// True once the store was closed and every durable event delivered.
    pub fn is_ended(&self) -> bool {
        self.core.ended && self.core.pending.is_empty()
    }

    /// Every LSN up to this has been delivered or skipped by the filter: the position to
    /// acknowledge once what was delivered is processed.
    pub fn delivered_lsn(&self) -> Lsn {
        self.core.position()
    }

    /// How far behind the durable log the subscription is.
    pub fn lag(&self) -> Lag {
        self.core.lag()
    }

    /// Frames read so far from disk and from the log's cache of recent frames.
    pub fn frames_read(&self) -> (u64, u64) {
        self.core.follower.delivered()
    }

    /// The async form: a [`futures_core::Stream`] of the same items.
    pub fn into_stream(self) -> FeedStream {
        FeedStream::new(self.core)
    }
}

impl Iterator for Subscription {
    type Item = Result<FeedItem>;

    /// Blocks until the next item; `None` once the store is closed and every durable
    /// event delivered. After an error (a poisoned log, damage read), `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.core.ended && self.core.pending.is_empty() {
            return None;
        }
        loop {
            match self.core.recv_timeout(Duration::from_secs(3600)) {
                Ok(Some(item)) => return Some(Ok(item)),
                Ok(None) if self.core.ended => return None,
                Ok(None) => continue,
                Err(e) => {
                    self.core.ended = true;
                    self.core.pending.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

type Pending = std::pin::Pin<Box<dyn Future<Output = Option<Result<FeedItem>>> + Send>>;

/// A subscription as a [`futures_core::Stream`] for tokio ([`Subscription::into_stream`]):
/// the same items, and no runtime worker ever blocks. Frames from the log's cache are
/// decoded on the polling task (microseconds); a read from disk or a snapshot load runs
/// on tokio's blocking pool; waiting for the next sync is a future. Dropping a pending
/// `next` loses nothing: what a blocking read found is delivered by the next call.
pub struct FeedStream {
    core: Arc<tokio::sync::Mutex<Core>>,
    pending: Option<Pending>,
}

impl std::fmt::Debug for FeedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedStream").finish_non_exhaustive()
    }
}

impl FeedStream {
    fn new(core: Core) -> FeedStream {
        FeedStream { core: Arc::new(tokio::sync::Mutex::new(core)), pending: None }
    }

    /// The next item; `None` once the store is closed and every durable event delivered.
    pub async fn next_item(&mut self) -> Option<Result<FeedItem>> {
        std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut *self), cx)
        })
        .await
    }

    /// Every LSN up to this has been delivered or skipped ([`Subscription::delivered_lsn`]).
    pub async fn delivered_lsn(&self) -> Lsn {
        self.core.lock().await.position()
    }

    /// How far behind the durable log the subscription is (on the blocking pool: it
    /// reads the log's segment table, which a segment roll holds).
    pub async fn lag(&self) -> Result<Lag> {
        let core = Arc::clone(&self.core);
        tokio::task::spawn_blocking(move || core.blocking_lock().lag())
            .await
            .map_err(|e| StoreError::Thread(format!("measuring a subscription's lag failed: {e}")))
    }
}

async fn next_async(core: Arc<tokio::sync::Mutex<Core>>) -> Option<Result<FeedItem>> {
    loop {
        let mut guard = core.lock().await;
        if let Some(item) = guard.pop() {
            return Some(Ok(item));
        }
        if guard.ended {
            return None;
        }
        let step = match guard.step(false) {
            Ok(step) => step,
            Err(e) => return Some(Err(fail(&mut guard, e))),
        };
        match step {
            Step::Progress => {
                if guard.pending.is_empty() {
                    // Frames the filter skipped: let other tasks run between steps.
                    drop(guard);
                    tokio::task::yield_now().await;
                }
            }
            Step::NeedsDisk => {
                drop(guard);
                let shared = Arc::clone(&core);
                let read = tokio::task::spawn_blocking(move || {
                    let mut guard = shared.blocking_lock();
                    guard.step(true).map(|_| ()).map_err(|e| fail(&mut guard, e))
                })
                .await;
                match read {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Some(Err(e)),
                    Err(e) => {
                        let e = StoreError::Thread(format!(
                            "a subscription's read from disk failed: {e}"
                        ));
                        return Some(Err(fail(&mut *core.lock().await, e)));
                    }
                }
            }
            Step::CaughtUp(durable) => {
                let engine = Arc::clone(&guard.engine);
                drop(guard);
                match engine.wal.durable_beyond_async(durable).await {
                    Ok(_) => {}
                    Err(WalError::Closed) => {
                        let shared = Arc::clone(&core);
                        let drained = tokio::task::spawn_blocking(move || {
                            let mut guard = shared.blocking_lock();
                            guard.end_after_drain().map_err(|e| fail(&mut guard, e))
                        })
                        .await;
                        match drained {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Some(Err(e)),
                            Err(e) => {
                                let e = StoreError::Thread(format!(
                                    "a subscription's last read failed: {e}"
                                ));
                                return Some(Err(fail(&mut *core.lock().await, e)));
                            }
                        }
                    }
                    Err(e) => return Some(Err(fail(&mut *core.lock().await, e.into()))),
                }
            }
        }
    }
}

/// An error ends the subscription: it is reported once, then the stream ends.
fn fail(core: &mut Core, e: StoreError) -> StoreError {
    core.ended = true;
    core.pending.clear();
    e
}

impl futures_core::Stream for FeedStream {
    type Item = Result<FeedItem>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        let core = Arc::clone(&this.core);
        let fut = this.pending.get_or_insert_with(|| Box::pin(next_async(core)));
        let out = fut.as_mut().poll(cx);
        if out.is_ready() {
            this.pending = None;
        }
        out
    }
}

/// A registered consumer ([`OrderStore::consumer`]): a name whose acknowledged position
/// is durable, survives restarts, and holds the log (up to
/// [`crate::StoreOptions::consumer_hold_bytes_max`]).
#[derive(Clone)]
pub struct Consumer {
    engine: Arc<Engine>,
    name: String,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A consumer's position and lag ([`OrderStore::consumers`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConsumerInfo {
    /// Its durable record.
    pub record: ConsumerRecord,
    /// Durable LSNs after its acknowledged position.
    pub lag_lsns: u64,
    /// About how many bytes of log lie after its position.
    pub lag_bytes: u64,
    /// Seconds since it last acknowledged, while it is behind (0 when caught up).
    pub lag_seconds: f64,
    /// Bytes of log kept only because of it (what a compaction could otherwise remove).
    pub held_bytes: u64,
}

impl Consumer {
    pub(crate) fn new(engine: Arc<Engine>, name: String) -> Consumer {
        Consumer { engine, name }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its acknowledged position: every event up to this LSN is processed (0: none).
    pub fn acked_lsn(&self) -> Result<Lsn> {
        Ok(self.engine.consumers.get(&self.name)?.acked_lsn)
    }

    /// Records durably (one synced write of its file) that every event up to `lsn` is
    /// processed; on return it survives a crash. A position at or below the recorded one
    /// changes nothing. An LSN not yet durable is refused ([`FeedError::AckBeyondDurable`]).
    pub fn ack(&self, lsn: Lsn) -> Result<()> {
        let durable = self.engine.wal.durable_lsn();
        if lsn > durable {
            return Err(FeedError::AckBeyondDurable { lsn, durable_lsn: durable }.into());
        }
        let engine = &self.engine;
        // A lagging consumer may hold the log again: not while a compaction is choosing
        // what to truncate (it would not see the change).
        let _no_compaction =
            engine.consumers.get(&self.name)?.lagging.then(|| engine.hold_compactions());
        engine.consumers.ack(&self.name, lsn, |lsn| {
            let segments = engine.wal.segment_sizes();
            held_bytes(&segments, lsn, engine.wal.durable_lsn()) <= engine.consumers.hold_bytes_max
        })
    }

    /// Async form of [`Consumer::ack`], on the blocking pool.
    pub async fn ack_async(&self, lsn: Lsn) -> Result<()> {
        let consumer = self.clone();
        tokio::task::spawn_blocking(move || consumer.ack(lsn))
            .await
            .map_err(|e| StoreError::Thread(format!("an acknowledgement failed: {e}")))?
    }

    /// Subscribes from just after its acknowledged position.
    pub fn subscribe(&self, options: impl Into<FeedOptions>) -> Result<Subscription> {
        let core = Core::new(
            Arc::clone(&self.engine),
            StartAt::Consumer(self.name.clone()),
            options.into(),
        )?;
        Ok(Subscription::new(core))
    }

    /// Its position and lag.
    pub fn info(&self) -> Result<ConsumerInfo> {
        Ok(consumer_info(&self.engine, self.engine.consumers.get(&self.name)?))
    }
}

pub(crate) fn consumer_info(engine: &Engine, record: ConsumerRecord) -> ConsumerInfo {
    let wal = &engine.wal;
    let durable = wal.durable_lsn();
    let lag_lsns = durable.saturating_sub(record.acked_lsn);
    let lag_seconds = if lag_lsns == 0 {
        0.0
    } else {
        crate::events::now_ms().saturating_sub(record.acked_ms) as f64 / 1000.0
    };
    let segments = wal.segment_sizes();
    let held = if record.lagging { 0 } else { held_bytes(&segments, record.acked_lsn, durable) };
    ConsumerInfo {
        lag_bytes: log_bytes_after(wal, record.acked_lsn),
        held_bytes: held,
        lag_lsns,
        lag_seconds,
        record,
    }
}

/// Bytes of the segments a truncation to `floor` would remove and one to `acked` would
/// keep: what a consumer at `acked` holds when compaction could cut to `floor`.
pub(crate) fn held_bytes(segments: &[(Lsn, u64)], acked: Lsn, floor: Lsn) -> u64 {
    segments
        .windows(2)
        .filter(|pair| pair[1].0 <= floor + 1 && pair[1].0 > acked + 1)
        .map(|pair| pair[0].1)
        .sum()
}

/// The floor the compactor may truncate the log to, given the registered consumers:
/// `floor` lowered to the slowest consumer's position, except that a consumer holding
/// more than the limit is marked lagging and holds nothing. Runs under the compaction
/// lock, which registration and a lagging consumer's return to holding also take, so no
/// consumer starts holding between this and the truncation.
pub(crate) fn consumer_floor(engine: &Engine, floor: Lsn) -> Lsn {
    let segments = engine.wal.segment_sizes();
    let mut out = floor;
    for record in engine.consumers.list() {
        if record.lagging || record.acked_lsn >= floor {
            continue;
        }
        let held = |acked: Lsn| held_bytes(&segments, acked, floor);
        let holds = if held(record.acked_lsn) > engine.consumers.hold_bytes_max {
            // Checked again at its position now, under its lock: it may have acknowledged.
            engine.consumers.mark_lagging_if(&record.name, held)
        } else {
            Ok(Some(record.acked_lsn))
        };
        match holds {
            Ok(Some(acked)) => out = out.min(acked),
            Ok(None) => {}
            // Deleted meanwhile: it holds nothing.
            Err(StoreError::Feed(FeedError::UnknownConsumer { .. })) => {}
            // Its file cannot be written: it keeps holding the log at its last known
            // position (reported; a reopen reads what its file holds).
            Err(e) => {
                tracing::error!(consumer = %record.name, error = %e, "cannot mark a consumer lagging: it keeps holding the log");
                out = out.min(record.acked_lsn);
            }
        }
    }
    out
}

use crate::store::OrderStore;

impl OrderStore {
    /// Subscribes to the store's durable events from `from` on, filtered by `options`
    /// (a [`Filter`] converts). See [the module docs](crate::feed) for what is delivered
    /// and when.
    ///
    /// Refused with a typed error, before anything is read: a filter naming no event
    /// kind or no order ([`FeedError::EmptyFilter`]), an LSN past the log's end
    /// ([`FeedError::FutureLsn`]), an unknown consumer ([`FeedError::UnknownConsumer`]),
    /// or, with `require_log`, a position the log no longer holds
    /// ([`FeedError::LogTruncated`]).
    ///
    /// ```
    /// use orderlog_store::feed::{FeedItem, Filter, StartAt};
    /// use orderlog_store::{Event, EventType, Order, OrderStore, StoreOptions};
    ///
    /// # fn main() -> orderlog_store::Result<()> {
    /// let dir = tempfile::tempdir().expect("a temporary directory");
    /// let store = OrderStore::open(dir.path(), StoreOptions::for_tests())?;
    /// let order = Order::builder(7).customer(1).product(2).quantity(1).unit_price(9.5);
    /// store.apply(Event::create(order.build()?))?;
    /// let mut feed = store.subscribe(StartAt::Beginning, Filter::all().types([EventType::Create]))?;
    /// let Some(Ok(FeedItem::Batch(batch))) = feed.next() else { panic!("a batch") };
    /// assert_eq!((batch.lsn, batch.events[0].event.order_id), (1, 7));
    /// # Ok(()) }
    /// ```
    pub fn subscribe(
        &self,
        from: StartAt,
        options: impl Into<FeedOptions>,
    ) -> Result<Subscription> {
        Ok(Subscription::new(Core::new(Arc::clone(self.engine()), from, options.into())?))
    }

    /// Async form of [`OrderStore::subscribe`]: the subscription as a stream. Resolving
    /// the start (a time, with rows a fold) runs on the blocking pool.
    pub async fn subscribe_async(
        &self,
        from: StartAt,
        options: impl Into<FeedOptions>,
    ) -> Result<FeedStream> {
        let engine = Arc::clone(self.engine());
        let options = options.into();
        let core = tokio::task::spawn_blocking(move || Core::new(engine, from, options))
            .await
            .map_err(|e| StoreError::Thread(format!("subscribing failed: {e}")))??;
        Ok(FeedStream::new(core))
    }

    /// The consumer `name`, registered durably first (at position 0: it has processed
    /// nothing) if it does not exist. Its position then holds the log: no compaction
    /// removes frames after it, up to [`crate::StoreOptions::consumer_hold_bytes_max`].
    pub fn consumer(&self, name: &str) -> Result<Consumer> {
        // Not while a compaction is choosing what to truncate: it would not see the new
        // consumer's position.
        let _no_compaction = self.engine().hold_compactions();
        self.engine().consumers.register(name)?;
        Ok(Consumer::new(Arc::clone(self.engine()), name.to_owned()))
    }

    /// The consumer `name` if it is registered ([`FeedError::UnknownConsumer`] if not).
    pub fn existing_consumer(&self, name: &str) -> Result<Consumer> {
        self.engine().consumers.get(name)?;
        Ok(Consumer::new(Arc::clone(self.engine()), name.to_owned()))
    }

    /// Every registered consumer with its position and lag, by name.
    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        let engine = self.engine();
        engine.consumers.list().into_iter().map(|r| consumer_info(engine, r)).collect()
    }

    /// Deletes the consumer `name` durably: it no longer holds the log.
    pub fn delete_consumer(&self, name: &str) -> Result<()> {
        self.engine().consumers.delete(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_bytes_counts_the_segments_only_the_consumer_keeps() {
        // Segments at 1, 11, 21, 31 (active), 100 bytes each.
        let segments = [(1, 100), (11, 100), (21, 100), (31, 100)];
        // Compaction could cut to 30 (segments 1 and 11 and 21 removable).
        assert_eq!(held_bytes(&segments, 30, 30), 0);
        assert_eq!(held_bytes(&segments, 0, 30), 300);
        assert_eq!(held_bytes(&segments, 10, 30), 200);
        assert_eq!(held_bytes(&segments, 15, 30), 200);
        assert_eq!(held_bytes(&segments, 20, 30), 100);
        assert_eq!(held_bytes(&segments, 5, 12), 100);
    }

    #[test]
    fn filters_match_types_and_orders() {
        let e = Event::set_status(5, crate::OrderStatus::Confirmed);
        assert!(Filter::all().matches(&e));
        assert!(Filter::all().types([EventType::SetStatus]).matches(&e));
        assert!(!Filter::all().types([EventType::Create, EventType::Cancel]).matches(&e));
        assert!(Filter::all().orders([9, 5]).matches(&e));
        assert!(!Filter::all().orders([9]).types([EventType::SetStatus]).matches(&e));
        assert!(Filter::all().types([]).check().is_err());
        assert!(Filter::all().orders([]).check().is_err());
    }
}
