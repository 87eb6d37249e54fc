//! Read replicas ([`OrderStore::open_replica`]): a store that follows a backup. It is
//! restored from the backup if its directory is new, then a thread reads the backup's
//! newest index every interval and appends the frames it has not seen to its own log,
//! with their LSNs, and applies them: `get`, `query`, analytics and subscriptions serve
//! the primary's orders at a lag of about one shipping interval plus one following
//! interval. Writes are refused ([`StoreError::ReadOnlyReplica`]).
//!
//! Promotion ([`OrderStore::promote`]) fences the primary before the replica becomes a
//! writer: it applies the newest index, then creates the generation's next index itself
//! (a copy of the newest, one sequence number on). Index objects are create-only, so
//! from then on the primary's next index is refused and its shipper stops
//! ([`orderlog_ship::ShipError::Fenced`]): two writers never both ship into one
//! generation. The promoted store ships (with `StoreOptions::replication`) into a new
//! generation, since its log's bytes are its own.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use orderlog_ship::shipper::newest_index;
use orderlog_ship::verify::get_checked;
use orderlog_ship::{ShipError, Target};
use orderlog_wal::Lsn;
use orderlog_wal::piece::{PieceGroup, piece_groups};

use crate::error::{Result, StoreError};
use crate::store::{Inner, OrderStore};

/// Times promotion tries to fence the primary (each after catching up again).
const FENCE_ATTEMPTS: u32 = 5;

/// A replica's position against its backup ([`crate::StoreStats::replica`]).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ReplicaStats {
    /// The backup followed.
    pub target: String,
    /// The generation followed.
    pub generation: Option<String>,
    /// The last LSN applied.
    pub applied_lsn: Lsn,
    /// The LSN the backup's newest index holds.
    pub backup_lsn: Lsn,
    /// When the primary wrote the newest index applied, ms since the epoch.
    pub index_written_ms: u64,
    /// Seconds behind the backup: 0 when caught up, else since the replica first saw
    /// the backup ahead of it.
    pub lag_seconds: f64,
    /// Rounds run.
    pub rounds: u64,
    /// Rounds failed.
    pub errors: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Following stopped for good (the backup diverged from the replica's log).
    pub stopped: Option<String>,
}

pub(crate) struct Follower {
    pub(crate) target: Target,
    pub(crate) interval: Duration,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stats: Arc<Mutex<(ReplicaStats, Option<Instant>)>>,
    /// Serialises rounds with promotion.
    round: Arc<Mutex<()>>,
}

impl Follower {
    pub(crate) fn start(
        store: Weak<Inner>,
        target: Target,
        interval: Duration,
    ) -> Result<Follower> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stats = Arc::new(Mutex::new((
            ReplicaStats { target: target.url().to_owned(), ..ReplicaStats::default() },
            None,
        )));
        let round = Arc::new(Mutex::new(()));
        let runtime = runtime()?;
        let (t_stop, t_stats, t_round, t_target) =
            (Arc::clone(&stop), Arc::clone(&stats), Arc::clone(&round), target.clone());
        let thread = std::thread::Builder::new()
            .name("orderlog-replica".into())
            .spawn(move || {
                let mut wait = Duration::ZERO;
                loop {
                    {
                        let (lock, wake) = &*t_stop;
                        let stop = lock.lock().unwrap_or_else(|p| p.into_inner());
                        let (stop, _) = wake
                            .wait_timeout_while(stop, wait, |s| !*s)
                            .unwrap_or_else(|p| p.into_inner());
                        if *stop {
                            return;
                        }
                    }
                    wait = interval;
                    let Some(inner) = store.upgrade() else { return };
                    let store = OrderStore::from_inner(inner);
                    let _one_round = t_round.lock().unwrap_or_else(|p| p.into_inner());
                    let outcome = follow_round(&store, &t_target, &runtime, &t_stats);
                    let mut guard = t_stats.lock().unwrap_or_else(|p| p.into_inner());
                    guard.0.rounds += 1;
                    if let Err(e) = outcome {
                        guard.0.errors += 1;
                        guard.0.last_error = Some(e.to_string());
                        if matches!(e, StoreError::ReplicaDiverged { .. }) {
                            guard.0.stopped = Some(e.to_string());
                            tracing::error!(error = %e, "the replica stopped following its backup");
                            return;
                        }
                        tracing::warn!(error = %e, "the replica could not follow its backup; retrying");
                    }
                }
            })
            .map_err(|e| StoreError::Thread(e.to_string()))?;
        Ok(Follower { target, interval, stop, thread: Mutex::new(Some(thread)), stats, round })
    }

    pub(crate) fn stats(&self, applied: Lsn) -> ReplicaStats {
        let guard = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let mut stats = guard.0.clone();
        stats.applied_lsn = applied;
        // Since the replica first saw the backup ahead of it, and has not caught up.
        stats.lag_seconds = match guard.1 {
            Some(behind_since) if stats.backup_lsn > applied => {
                behind_since.elapsed().as_secs_f64()
            }
            _ => 0.0,
        };
        stats
    }

    /// Stops the thread (not from the thread itself, which stops on its own).
    pub(crate) fn stop(&self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread
            && thread.thread().id() != std::thread::current().id()
        {
            // The thread only returns; a panic there has already been reported.
            let _ = thread.join();
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Thread(e.to_string()))
}

/// Applies what the backup's newest index holds beyond the replica's last LSN. When the
/// generation changes (and on the first round), the backup's frames up to the replica's
/// last LSN are first compared with the replica's own: another history is
/// [`StoreError::ReplicaDiverged`].
fn follow_round(
    store: &OrderStore,
    target: &Target,
    runtime: &tokio::runtime::Runtime,
    stats: &Mutex<(ReplicaStats, Option<Instant>)>,
) -> Result<()> {
    let Some((generation, index)) = runtime.block_on(newest_index(target))? else {
        return Err(ShipError::NoBackup { url: target.url().to_owned() }.into());
    };
    let generation_name = generation.to_string();
    let mut last = store.last_lsn();
    let changed = {
        let mut guard = stats.lock().unwrap_or_else(|p| p.into_inner());
        let (s, behind_since) = &mut *guard;
        s.backup_lsn = index.shipped_lsn;
        if index.shipped_lsn > last {
            behind_since.get_or_insert_with(Instant::now);
        }
        s.generation.as_deref() != Some(generation_name.as_str())
    };
    if changed && last > 0 {
        check_history(store, target, runtime, &index, last)?;
    }
    stats.lock().unwrap_or_else(|p| p.into_inner()).0.generation = Some(generation_name);
    if index.shipped_lsn < last {
        return Err(StoreError::ReplicaDiverged {
            lsn: last,
            reason: format!(
                "generation {generation}'s index {} holds the log to LSN {} only",
                index.seq, index.shipped_lsn
            ),
        });
    }
    let start = last;
    for piece in index.segments.iter().filter(|s| s.last_lsn > start) {
        let data =
            runtime.block_on(get_checked(target, &piece.object, piece.bytes, piece.crc32))?;
        let groups = piece_groups(std::path::Path::new(&piece.object), &data, last)?;
        if let Some(applied) = store.replicate(&groups)? {
            last = applied;
        }
    }
    let mut guard = stats.lock().unwrap_or_else(|p| p.into_inner());
    guard.0.index_written_ms = index.written_ms;
    if last >= index.shipped_lsn {
        guard.1 = None;
    }
    Ok(())
}

/// Checks that `index`'s history holds the replica's log up to `last`: the piece holding
/// `last` has the replica's frames (so the rest follows on from the same history).
fn check_history(
    store: &OrderStore,
    target: &Target,
    runtime: &tokio::runtime::Runtime,
    index: &orderlog_ship::BackupIndex,
    last: Lsn,
) -> Result<()> {
    let holding = index.segments.iter().find(|s| s.base_lsn <= last && last <= s.last_lsn);
    let Some(piece) = holding else {
        let first = index.segments.first().map_or(0, |s| s.base_lsn);
        return Err(StoreError::ReplicaDiverged {
            lsn: last,
            reason: format!(
                "generation {} holds the log from LSN {first} to {}, not the replica's last LSN: re-create the replica",
                index.generation, index.shipped_lsn
            ),
        });
    };
    let data = runtime.block_on(get_checked(target, &piece.object, piece.bytes, piece.crc32))?;
    let all = piece_groups(std::path::Path::new(&piece.object), &data, 0)?;
    store.check_same_frames(&all, piece.base_lsn, last)
}

impl OrderStore {
    /// Appends the groups (frames the primary logged, with their LSNs) to the log,
    /// makes them durable and applies them; the last LSN applied (`None`: no groups).
    fn replicate(&self, groups: &[PieceGroup]) -> Result<Option<Lsn>> {
        if groups.is_empty() {
            return Ok(None);
        }
        let wal = self.wal_handle();
        let mut state = self.write_state();
        let from = wal.last_lsn() + 1;
        let mut written = Ok(());
        for group in groups {
            if group.first_lsn != wal.last_lsn() + 1 {
                written = Err(StoreError::ReplicaDiverged {
                    lsn: wal.last_lsn(),
                    reason: format!("the backup's next batch is at LSN {}", group.first_lsn),
                });
                break;
            }
            let payloads: Vec<&[u8]> = group.payloads.iter().map(Vec::as_slice).collect();
            if let Err(e) = wal.write(&payloads) {
                written = Err(e.into());
                break;
            }
        }
        let last = wal.last_lsn();
        // What the log took is applied even if a later group failed: the state never
        // trails the log it serves.
        if last >= from {
            crate::fold::apply_range(wal, from, last, &mut state, &mut |_, _| {})?;
        }
        drop(state);
        written?;
        wal.wait_durable(last)?;
        Ok(Some(last))
    }

    /// Checks that the frames `base..=last` of `groups` are the replica's own.
    fn check_same_frames(&self, groups: &[PieceGroup], base: Lsn, last: Lsn) -> Result<()> {
        let wal = self.wal_handle();
        let from = base.max(wal.first_lsn());
        if from > last {
            return Ok(());
        }
        let mut theirs = groups
            .iter()
            .flat_map(|g| {
                g.payloads.iter().enumerate().map(move |(i, p)| (g.first_lsn + i as u64, p))
            })
            .filter(|(lsn, _)| (from..=last).contains(lsn));
        for frame in wal.iter_from(from)? {
            let frame = frame?;
            if frame.lsn() > last {
                break;
            }
            let same = theirs
                .next()
                .is_some_and(|(lsn, p)| lsn == frame.lsn() && p.as_slice() == frame.payload());
            if !same {
                return Err(StoreError::ReplicaDiverged {
                    lsn: frame.lsn(),
                    reason: "the backup's frame at this LSN differs from the replica's".into(),
                });
            }
        }
        Ok(())
    }
}

/// Catches up with the backup and creates its generation's next index, so the primary's
/// next one is refused; retries while the primary ships more.
pub(crate) fn fence(store: &OrderStore, follower: &Follower) -> Result<()> {
    let _no_round = follower.round.lock().unwrap_or_else(|p| p.into_inner());
    let runtime = runtime()?;
    let target = &follower.target;
    let mut generation = String::new();
    for _ in 0..FENCE_ATTEMPTS {
        follow_round(store, target, &runtime, &follower.stats)?;
        let Some((g, index)) = runtime.block_on(newest_index(target))? else {
            return Err(ShipError::NoBackup { url: target.url().to_owned() }.into());
        };
        generation = g.to_string();
        if index.shipped_lsn > store.last_lsn() {
            continue; // the primary shipped more meanwhile
        }
        let mut fence = index.clone();
        fence.seq += 1;
        fence.written_ms = orderlog_ship::shipper::now_ms();
        fence.fenced_by = Some(format!(
            "the promotion of the replica in {} at LSN {}",
            store.dir().display(),
            store.last_lsn()
        ));
        let name = g.index(fence.seq);
        let bytes = orderlog_ship::Bytes::from(fence.encode());
        let created = runtime.block_on(target.create(&name, bytes.clone()));
        // A create whose answer was lost (or retried by the client) may have been done:
        // the fence is ours if the index there is these bytes.
        let ours = match &created {
            Ok(()) => true,
            Err(_) => runtime.block_on(target.get(&name)).is_ok_and(|there| there == bytes),
        };
        match created {
            _ if ours => {
                tracing::info!(generation, index = name, "the primary is fenced");
                return Ok(());
            }
            Err(e) if orderlog_ship::target::is_already_exists(&e) => continue,
            Err(e) => return Err(e.into()),
            Ok(()) => return Ok(()),
        }
    }
    Err(StoreError::PrimaryStillShipping { generation, attempts: FENCE_ATTEMPTS })
}
