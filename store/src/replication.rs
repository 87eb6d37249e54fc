//! Continuous backup to object storage ([`ReplicationOptions`]): a background thread
//! ships the log and the snapshots into a backup target every interval, through
//! [`orderlog_ship::Shipper`]. Writers never wait for it: it reads the durable log from
//! the files and the snapshots as published. Its lag is in [`ReplicationStats`]
//! (`OrderStore::stats`); failures are retried with backoff and reported through
//! `tracing`. With [`LagPolicy::HoldTruncation`] it is the durable consumer
//! [`REPLICATION_CONSUMER`], so the compactor never deletes a segment it has not shipped
//! (up to `StoreOptions::consumer_hold_bytes_max`, beyond which the consumer is marked
//! lagging and stops holding: the next round then starts a new generation from the
//! newest snapshot).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use orderlog_ship::{ShipError, Shipper, Target};
use orderlog_wal::Lsn;
use orderlog_wal::storage::Storage;

use crate::compactor::Engine;
use crate::error::{Result, StoreError};
use crate::feed::Consumer;

/// The consumer that holds the log for the shipper ([`LagPolicy::HoldTruncation`]).
pub const REPLICATION_CONSUMER: &str = "orderlog-replication";

/// What happens when shipping falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LagPolicy {
    /// Report the lag only: the compactor truncates the log as it would without
    /// shipping; what it deletes before it was shipped is covered by a new generation
    /// started from the newest snapshot.
    ReportOnly,
    /// The shipper is a durable consumer: the compactor keeps every segment not yet
    /// shipped, up to `StoreOptions::consumer_hold_bytes_max` of log.
    #[default]
    HoldTruncation,
}

/// Where and how often the store ships its log and snapshots.
#[derive(Debug, Clone)]
pub struct ReplicationOptions {
    /// The backup's URL: `s3://bucket/prefix` (endpoint, region and credentials from the
    /// usual `AWS_*` environment variables and [`ReplicationOptions::client_options`]),
    /// or `file:///path`.
    pub target: String,
    /// `object_store` configuration keys (`aws_endpoint`, `aws_access_key_id`, ...)
    /// that override the environment.
    pub client_options: Vec<(String, String)>,
    /// How often the active segment's durable prefix is shipped (the recovery point
    /// objective is about one interval). Default 1 s.
    pub interval: Duration,
    /// What a growing lag does. Default [`LagPolicy::HoldTruncation`].
    pub on_lag: LagPolicy,
    /// The longest one request may take. Default 60 s.
    pub request_timeout: Duration,
    /// The longest wait between retries after failures (it doubles from `interval`).
    /// Default 30 s.
    pub backoff_max: Duration,
}

impl ReplicationOptions {
    /// Shipping to `target` with the defaults.
    pub fn new(target: impl Into<String>) -> ReplicationOptions {
        ReplicationOptions {
            target: target.into(),
            client_options: Vec::new(),
            interval: Duration::from_secs(1),
            on_lag: LagPolicy::default(),
            request_timeout: orderlog_ship::target::REQUEST_TIMEOUT_DEFAULT,
            backoff_max: Duration::from_secs(30),
        }
    }

    /// The same with `object_store` options (`aws_endpoint`, ...).
    pub fn with_client_options(mut self, options: Vec<(String, String)>) -> Self {
        self.client_options = options;
        self
    }

    /// The same with another interval.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The same with another lag policy.
    pub fn with_lag_policy(mut self, on_lag: LagPolicy) -> Self {
        self.on_lag = on_lag;
        self
    }
}

/// The shipper's progress and lag ([`crate::StoreStats::replication`]).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ReplicationStats {
    /// The target's URL.
    pub target: String,
    /// The generation shipped into (once the first round has run).
    pub generation: Option<String>,
    /// Every frame up to this LSN is in the backup.
    pub shipped_lsn: Lsn,
    /// The store's durable LSN when these stats were taken.
    pub durable_lsn: Lsn,
    /// LSNs durable but not shipped.
    pub lag_lsns: u64,
    /// Bytes of log written after the shipped LSN (about what the next round uploads).
    pub lag_bytes: u64,
    /// Seconds since the backup last held everything durable at the time (0: it does).
    pub lag_seconds: f64,
    /// Rounds run (successful or not).
    pub rounds: u64,
    /// Objects uploaded.
    pub objects: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Rounds failed.
    pub errors: u64,
    /// Failures in a row so far (0: the last round succeeded).
    pub failing_for: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Another writer ships into the generation: shipping has stopped.
    pub fenced: bool,
    /// Generations started by this store since it opened.
    pub generations_started: u64,
}

struct Shared {
    stats: Mutex<(ReplicationStats, Instant, (Lsn, u64))>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The running shipper of a store; stops when dropped.
pub(crate) struct Replicator {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    engine: Arc<Engine>,
}

impl Replicator {
    /// Starts shipping the store in `storage` (its root) to `options.target`.
    pub(crate) fn start(
        engine: Arc<Engine>,
        storage: Arc<dyn Storage>,
        options: ReplicationOptions,
        target: Option<Target>,
    ) -> Result<Replicator> {
        if options.interval.is_zero() {
            return Err(StoreError::Replication(ShipError::Url {
                url: options.target.clone(),
                reason: "the replication interval must be more than zero".into(),
            }));
        }
        let target = match target {
            Some(target) => target,
            None => Target::open(&options.target, &options.client_options)?,
        }
        .with_timeout(options.request_timeout);
        let consumer = match options.on_lag {
            LagPolicy::HoldTruncation => {
                let _no_compaction = engine.hold_compactions();
                engine.consumers.register(REPLICATION_CONSUMER)?;
                Some(Consumer::new(Arc::clone(&engine), REPLICATION_CONSUMER.to_owned()))
            }
            LagPolicy::ReportOnly => {
                forget_consumer(&engine)?;
                None
            }
        };
        let shared = Arc::new(Shared {
            stats: Mutex::new((
                ReplicationStats { target: options.target.clone(), ..ReplicationStats::default() },
                Instant::now(),
                (0, 0),
            )),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let runtime = crate::replica::runtime()?;
        let shipper = Shipper::new(target, storage).recording_generation();
        let (thread_shared, thread_engine) = (Arc::clone(&shared), Arc::clone(&engine));
        let thread = std::thread::Builder::new()
            .name("orderlog-shipper".into())
            .spawn(move || {
                run(&thread_engine, &thread_shared, shipper, consumer, &options, &runtime)
            })
            .map_err(|e| StoreError::Thread(e.to_string()))?;
        Ok(Replicator { shared, thread: Mutex::new(Some(thread)), engine })
    }

    /// The shipper's stats now.
    pub(crate) fn stats(&self) -> ReplicationStats {
        let guard = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        let (stats, caught_up_at, (piece_base, piece_bytes)) = &*guard;
        let mut stats = stats.clone();
        let durable = self.engine.wal.durable_lsn();
        stats.durable_lsn = durable;
        stats.lag_lsns = durable.saturating_sub(stats.shipped_lsn);
        stats.lag_bytes = lag_bytes(&self.engine.wal.segment_sizes(), *piece_base, *piece_bytes);
        stats.lag_seconds =
            if stats.lag_lsns == 0 { 0.0 } else { caught_up_at.elapsed().as_secs_f64() };
        stats
    }

    /// Stops the thread after its current round (a last round ships what is durable).
    pub(crate) fn stop(&self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            let mut guard = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
            guard.0.last_error = Some("the shipper's thread panicked".into());
            tracing::error!("the shipper's thread panicked");
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Deletes the shipper's consumer, if a store that held the log for its shipper no
/// longer does (shipping off, or reporting lag only): it would hold the log for nothing.
pub(crate) fn forget_consumer(engine: &Engine) -> Result<()> {
    if engine.consumers.get(REPLICATION_CONSUMER).is_ok() {
        engine.consumers.delete(REPLICATION_CONSUMER)?;
        tracing::info!(consumer = REPLICATION_CONSUMER, "the shipper no longer holds the log");
    }
    Ok(())
}

/// Bytes of log after the shipped piece (`piece_bytes` of the segment at `piece_base`).
fn lag_bytes(segments: &[(Lsn, u64)], piece_base: Lsn, piece_bytes: u64) -> u64 {
    segments
        .iter()
        .map(|&(base, bytes)| match base.cmp(&piece_base) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal => bytes.saturating_sub(piece_bytes),
            std::cmp::Ordering::Greater => bytes,
        })
        .sum()
}

fn run(
    engine: &Engine,
    shared: &Shared,
    mut shipper: Shipper,
    consumer: Option<Consumer>,
    options: &ReplicationOptions,
    runtime: &tokio::runtime::Runtime,
) {
    let mut wait = options.interval;
    loop {
        let stopping = {
            let stop = shared.stop.lock().unwrap_or_else(|p| p.into_inner());
            let (stop, _) = shared
                .wake
                .wait_timeout_while(stop, wait, |stop| !*stop)
                .unwrap_or_else(|p| p.into_inner());
            *stop
        };
        let durable = engine.wal.durable_lsn();
        let started = Instant::now();
        let outcome = runtime.block_on(shipper.round(durable));
        let mut guard = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        let (stats, caught_up_at, piece) = &mut *guard;
        stats.rounds += 1;
        match outcome {
            Ok(round) => {
                stats.generation = Some(round.generation.clone());
                stats.generations_started += u64::from(round.new_generation && round.index_seq > 0);
                stats.shipped_lsn = round.shipped_lsn;
                stats.objects += round.objects;
                stats.bytes += round.bytes;
                stats.failing_for = 0;
                *piece = shipper.last_piece();
                if round.shipped_lsn >= durable {
                    *caught_up_at = started;
                }
                drop(guard);
                if round.index_seq > 0 {
                    tracing::debug!(
                        generation = %round.generation,
                        index = round.index_seq,
                        shipped_lsn = round.shipped_lsn,
                        objects = round.objects,
                        bytes = round.bytes,
                        "shipped"
                    );
                }
                if let Some(consumer) = &consumer
                    && round.shipped_lsn > 0
                    && let Err(e) = consumer.ack(round.shipped_lsn.min(durable))
                {
                    tracing::warn!(error = %e, "the shipper's consumer position was not saved");
                }
                // The next round an interval after this one ended. (Starting rounds an
                // interval apart instead cut the p99 lag from 2.2 to 1.6 intervals here,
                // but re-uploading the active segment's prefix back to back cost the
                // writers 10-13%; see docs/benchmarks.md.)
                wait = options.interval;
            }
            Err(e) => {
                stats.errors += 1;
                stats.failing_for += 1;
                stats.last_error = Some(e.to_string());
                let failing_for = stats.failing_for;
                match &e {
                    ShipError::Fenced { .. } => {
                        stats.fenced = true;
                        drop(guard);
                        tracing::error!(error = %e, "shipping stopped: another writer ships into the generation");
                        return;
                    }
                    ShipError::Gap { .. } => {
                        drop(guard);
                        tracing::warn!(error = %e, "the log was truncated before it was shipped; starting a new generation");
                        shipper.restart_generation();
                        wait = Duration::ZERO;
                    }
                    _ => {
                        drop(guard);
                        wait = options
                            .interval
                            .saturating_mul(1 << failing_for.min(16))
                            .min(options.backoff_max);
                        tracing::warn!(
                            error = %e,
                            failing_for,
                            retry_in_ms = wait.as_millis() as u64,
                            "shipping failed; retrying"
                        );
                    }
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// Where a restore stops ([`restore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestorePoint {
    /// Everything the backup holds.
    Latest,
    /// Every frame up to this LSN (cut at the end of the last whole batch at or before it).
    Lsn(Lsn),
    /// The longest log prefix with no event stamped after this time (ms since the Unix
    /// epoch), as `orderlog replay --until-time` folds it.
    TimeMs(u64),
}

pub use orderlog_ship::restore::Restored;

/// Restores the backup at `target` into the new directory `out`, which then opens as a
/// normal store: the newest generation, up to `point`. Every object is checked (size,
/// CRC-32, frames) before it is used; a failed restore leaves nothing at `out`. A point
/// the backup cannot reach (before its oldest snapshot and log, or past what it holds)
/// is [`orderlog_ship::ShipError::Unrestorable`], naming what it holds. `progress` gets
/// (bytes done, bytes in all). Blocking: not from inside an async runtime.
pub fn restore(
    target: &str,
    client_options: &[(String, String)],
    out: &std::path::Path,
    point: RestorePoint,
    mut progress: impl FnMut(u64, u64),
) -> Result<Restored> {
    use orderlog_ship::restore::{Base, restore as ship_restore, restore_index};
    let target = Target::open(target, client_options)?;
    let runtime = crate::replica::runtime()?;
    let ms = match point {
        RestorePoint::Latest => {
            return Ok(runtime.block_on(ship_restore(
                &target,
                out,
                None,
                Base::Newest,
                progress,
            ))?);
        }
        RestorePoint::Lsn(lsn) => {
            return Ok(runtime.block_on(ship_restore(
                &target,
                out,
                Some(lsn),
                Base::Newest,
                progress,
            ))?);
        }
        RestorePoint::TimeMs(ms) => ms,
    };
    // One index for both steps: the whole history it holds, folded to the time, says
    // which LSN; then that LSN from the same index. An object vanishing meanwhile (a
    // prefix piece a live shipper replaced) starts both again from the newest index.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some((generation, index)) =
            runtime.block_on(orderlog_ship::shipper::newest_index(&target))?
        else {
            return Err(ShipError::NoBackup { url: target.url().to_owned() }.into());
        };
        let history = orderlog_ship::restore::beside(out, "history");
        let steps = (|| {
            runtime.block_on(restore_index(
                &target,
                &history,
                generation,
                &index,
                None,
                Base::Oldest,
                &mut progress,
            ))?;
            let folded = crate::OfflineStore::open(&history, crate::RecoveryMode::Strict)
                .and_then(|offline| offline.fold_until(crate::FoldTarget::TimeMs(ms)));
            let lsn = match folded {
                Ok((_, lsn)) => lsn,
                Err(e @ StoreError::Unreachable { .. }) => {
                    return Err(ShipError::Unrestorable {
                        asked: format!("time {ms} ms since the epoch"),
                        reason: format!("in the backup's history: {e}"),
                    }
                    .into());
                }
                Err(e) => return Err(e),
            };
            Ok(runtime.block_on(restore_index(
                &target,
                out,
                generation,
                &index,
                Some(lsn),
                Base::Newest,
                &mut progress,
            ))?)
        })();
        let _ = std::fs::remove_dir_all(&history);
        match steps {
            Err(StoreError::Replication(e))
                if orderlog_ship::target::is_not_found(&e) && attempt < 5 => {}
            other => return other,
        }
    }
}
