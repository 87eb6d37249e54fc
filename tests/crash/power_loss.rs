//! Simulated power loss under the whole store, at a random moment of a random workload.
//!
//! Each seed opens an `OrderStore` whose directory lives on the simulated disk
//! (`SimStorage`: the log, with small segments that roll often, and the snapshots) and
//! runs the workload drawn from the seed (`apply`, `apply_batch`, refused batches,
//! compactions that fold and delete log segments) under `SyncPolicy::Always`. Some seeds
//! first close and reopen the store cleanly. Then the process "dies" after a random
//! number of storage operations — mid-append, mid-sync, mid-roll, mid-compaction — or a
//! compaction stops at a random step of publishing its snapshot, and the power is cut:
//! every unsynced write is dropped, kept, torn (at a 512 B or 4 KiB boundary, or sector
//! by sector) or garbled, and a random prefix or subset of unsynced directory operations
//! (segment creations and deletions, snapshot directories, the manifest's rename)
//! survives.
//!
//! Recovery must then open the store; every acknowledged write must be there (the log
//! ends at or after the last acknowledged LSN, and no later than the last write tried);
//! the state must equal the reference model's prefix at that LSN (nothing refused, lost,
//! reordered or half-applied); a second recovery of the same image must agree; and the
//! store must take the next write at the next LSN.
//!
//! `ORDERLOG_CRASH_SEEDS=N` runs N seeds (default 2,000); a failing seed panics with the
//! command replaying it alone: `ORDERLOG_CRASH_SEED=S cargo test --release --test crash
//! power_loss`.

use std::sync::Arc;

use orderlog_snapshot::SnapshotError;
use orderlog_store::{
    CompactionOptions, OrderStore, ParquetCompression, PublishStep, SnapshotOptions, StoreOptions,
    WalOptions,
};
use orderlog_wal::storage::SimStorage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::env_count;
use crate::workload::{Op, Workload};

pub(crate) fn options() -> StoreOptions {
    StoreOptions {
        wal: WalOptions {
            segment_bytes: orderlog_wal::options::SEGMENT_BYTES_MIN,
            ..WalOptions::default()
        },
        compaction: CompactionOptions {
            background: false,
            snapshot: SnapshotOptions {
                compression: ParquetCompression::None,
                ..SnapshotOptions::default()
            },
            ..CompactionOptions::default()
        },
        ..StoreOptions::default()
    }
}

pub(crate) fn open(disk: &SimStorage) -> orderlog_store::Result<OrderStore> {
    OrderStore::open_on(Arc::new(disk.clone()), options())
}

/// How the workload ended.
pub(crate) enum End {
    /// The simulated disk refused an operation: the process died there.
    Died,
    /// A compaction was stopped at this publish step.
    CompactionStopped,
    /// The workload ran out of operations (no crash point was reached).
    Finished,
}

/// Runs `ops` operations of `work` on `store`; returns how it ended and the highest LSN
/// acknowledged. Panics when the store and the model disagree on a write.
/// Where to stop a compaction, as a crash between two steps of its publish would.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    /// From which compaction of the run on (0: the first): the first from there that
    /// reaches `step` stops (one with nothing to fold publishes nothing and goes on).
    pub compaction: u32,
    /// After which step.
    pub step: PublishStep,
}

pub(crate) fn run_ops(
    store: &OrderStore,
    work: &mut Workload,
    ops: usize,
    mut stop: Option<&mut Stop>,
    acked: &mut u64,
) -> End {
    let mut compactions = 0u32;
    for _ in 0..ops {
        match work.next_op() {
            Op::Write { events, single, valid } => {
                let got = if single { store.apply(events[0]) } else { store.apply_batch(&events) };
                match got {
                    Ok(lsn) => {
                        assert!(
                            valid,
                            "the store acknowledged a write the model refuses: {events:?}"
                        );
                        assert_eq!(lsn, work.lsn(), "acknowledged at an unexpected LSN");
                        *acked = lsn;
                    }
                    Err(orderlog_store::StoreError::Mutation(_)) if !valid => {}
                    Err(e) => {
                        assert!(valid, "a refused write failed with {e}");
                        assert!(
                            matches!(
                                e,
                                orderlog_store::StoreError::Wal(
                                    orderlog_wal::WalError::Io { .. }
                                        | orderlog_wal::WalError::Poisoned { .. }
                                )
                            ),
                            "a valid write failed with {e:?}"
                        );
                        return End::Died;
                    }
                }
            }
            Op::Compact => {
                let this = compactions;
                compactions += 1;
                let result = match stop.as_deref_mut() {
                    Some(stop) if this >= stop.compaction => {
                        let at = stop.step;
                        let result = orderlog::testing::compact_with_hook(store, &mut |step| {
                            if step == at { Err(SnapshotError::Stopped { step }) } else { Ok(()) }
                        });
                        if result.is_err() {
                            return End::CompactionStopped;
                        }
                        result
                    }
                    _ => store.compact(),
                };
                if result.is_err() {
                    return End::Died;
                }
            }
        }
    }
    End::Finished
}

/// Runs one seed; panics on a violation. Returns what happened, for the tally.
fn run_seed(seed: u64) -> Vec<&'static str> {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut disk = SimStorage::new("/sim/store");
    let mut work = Workload::new(seed);
    let mut acked = 0u64;

    let mut store = open(&disk).expect("open");
    // A history in an earlier session of the store (closed cleanly, reopened).
    if rng.random_bool(0.3) {
        let n = rng.random_range(0..40);
        assert!(matches!(run_ops(&store, &mut work, n, None, &mut acked), End::Finished));
        store.close().expect("close");
        drop(store);
        store = open(&disk).expect("reopen");
        assert_eq!(store.last_lsn(), acked);
        assert_eq!(&store.state(), work.model());
    }

    // The session that dies.
    let mut stop = rng.random_bool(0.15).then(|| Stop {
        compaction: 0,
        step: PublishStep::ALL[rng.random_range(0..PublishStep::ALL.len())],
    });
    if stop.is_none() {
        disk.crash_after(rng.random_range(0..250));
    }
    let end = run_ops(&store, &mut work, rng.random_range(1..200), stop.as_mut(), &mut acked);
    let tried = work.lsn();
    let image = disk.crash(rng.random());
    drop(store);
    disk = image;

    let recovered = check_recovery(&disk, seed, acked, tried);
    let mut seen = vec![match end {
        End::Died => "died mid-workload",
        End::CompactionStopped => "compaction stopped",
        End::Finished => "cut after the workload",
    }];
    seen.extend(recovered.seen(acked));
    seen
}

/// What a checked recovery found.
pub(crate) struct Recovered {
    /// The recovered log's last LSN (before the write `check_recovery` adds).
    pub last: u64,
    /// What opening the store reported.
    pub report: orderlog_store::OpenReport,
}

impl Recovered {
    /// Labels for a tally of what recoveries met.
    pub fn seen(&self, acked: u64) -> Vec<&'static str> {
        let mut seen = Vec::new();
        if self.report.snapshot_lsn > 0 {
            seen.push("recovered from a snapshot");
        }
        if self.report.wal.truncated.is_some() {
            seen.push("torn tail cut");
        }
        if self.last > acked {
            seen.push("unacknowledged write survived");
        }
        seen
    }
}

/// Recovers the store over `image` twice (the first time on a copy) and checks
/// the promise: every acknowledged write is there (the log ends at or after `acked`),
/// nothing after the last write tried (`tried`), both recoveries agree, the state equals
/// the model of workload `seed` at the recovered LSN, and the store takes the next write
/// at the next LSN. Panics on a violation.
pub(crate) fn check_recovery(image: &SimStorage, seed: u64, acked: u64, tried: u64) -> Recovered {
    let first = open(&image.clone_synced()).expect("recovery").state();
    let store = open(image).expect("second recovery");
    let last = store.last_lsn();
    assert!(last >= acked, "acknowledged LSN {acked} lost: the log ends at {last}");
    assert!(last <= tried, "the log ends at {last}, after the last write tried ({tried})");
    let mut expected = Workload::at(seed, last);
    assert_eq!(first, store.state(), "two recoveries of one image differ");
    assert!(&store.state() == expected.model(), "state differs from the model at LSN {last}");

    // The recovered store takes the next write at the next LSN.
    let ok = loop {
        if let Op::Write { events, valid: true, .. } = expected.next_op() {
            break store.apply_batch(&events).expect("write after recovery");
        }
    };
    assert_eq!(ok, last + 1);
    assert!(&store.state() == expected.model());
    Recovered { last, report: store.open_report().clone() }
}

#[test]
fn power_loss_store_keeps_acknowledged_writes_and_equals_model() {
    let (first, count) = match std::env::var("ORDERLOG_CRASH_SEED") {
        Ok(s) => (s.parse().expect("ORDERLOG_CRASH_SEED: a number"), 1),
        Err(_) => (0, env_count("ORDERLOG_CRASH_SEEDS", 2_000)),
    };
    let started = std::time::Instant::now();
    let mut tally = std::collections::BTreeMap::new();
    for seed in first..first + count {
        let outcome = std::panic::catch_unwind(|| run_seed(seed));
        match outcome {
            Ok(seen) => {
                for what in seen {
                    *tally.entry(what).or_insert(0u64) += 1;
                }
            }
            Err(e) => {
                let msg = crate::panic_message(&*e);
                panic!(
                    "seed {seed} failed: {msg}\nreplay: ORDERLOG_CRASH_SEED={seed} cargo test \
                     --release --test crash power_loss"
                );
            }
        }
    }
    println!("power_loss: {count} seeds, {tally:?}, {:.1?}", started.elapsed());
}
