//! The simulated disk's stricter fault kinds, each under the whole store: read and
//! listing errors during recovery, a crash in the middle of recovery itself, and a power
//! cut under concurrent writers sharing group commits. Each is a model of something a
//! real disk or kernel does; each was shown to catch a planted bug (docs/reliability.md).

use std::sync::Arc;

use orderlog_store::{Event, Order, OrderStore, RecoveryMode, StoreError};
use orderlog_wal::storage::SimStorage;
use orderlog_wal::storage::sim::{Fault, FaultKind, FaultTarget};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::env_count;
use crate::power_loss::{check_recovery, open, options, run_ops};
use crate::workload::Workload;

/// A store image after a seeded workload (compactions included) that died mid-way, and
/// what it acknowledged and tried.
fn died_image(seed: u64) -> (SimStorage, u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let disk = SimStorage::new("/sim/store");
    let store = open(&disk).expect("open");
    disk.crash_after(rng.random_range(100..400));
    let mut work = Workload::new(seed);
    let mut acked = 0;
    let _ = run_ops(&store, &mut work, 200, None, &mut acked);
    let tried = work.lsn();
    drop(store);
    (disk, acked, tried)
}

fn open_mode(disk: &SimStorage, mode: RecoveryMode) -> orderlog_store::Result<OrderStore> {
    let mut opts = options();
    opts.wal.recovery_mode = mode;
    OrderStore::open_on(Arc::new(disk.clone()), opts)
}

/// A read or a listing that fails while the store recovers is an I/O error naming what
/// failed, in every recovery mode: never a shorter log, a segment set aside, an older
/// snapshot taken for lack of a newer one, or a state that differs from the model. And
/// the failed open changes nothing: with the fault gone, recovery finds everything.
#[test]
fn disk_model_read_faults_during_recovery_are_errors_never_data() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let seeds = env_count("ORDERLOG_CRASH_READ_FAULT_SEEDS", 2);
    let mut faults = 0u64;
    let mut cases = 0u64;
    for seed in 0..seeds {
        let (image, acked, tried) = died_image(seed);
        let image = image.crash(seed);
        let counting = image.clone_synced();
        drop(open(&counting).expect("a clean recovery"));
        let reads = counting.read_count();
        for nth in 0..reads {
            for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime] {
                let copy = image.clone_synced();
                copy.inject(Fault {
                    target: FaultTarget::Read,
                    nth,
                    kind: FaultKind::Io,
                    persistent: false,
                });
                let what = format!("seed {seed}, read {nth} of {reads} failing, {mode:?}");
                match open_mode(&copy, mode) {
                    Err(StoreError::Wal(orderlog_wal::WalError::Io { .. }))
                    | Err(StoreError::Snapshot(orderlog_snapshot::SnapshotError::Io { .. }))
                    | Err(StoreError::Feed(orderlog_store::FeedError::ConsumerIo { .. })) => {
                        faults += 1;
                    }
                    // An unreadable snapshot file is skipped like a damaged one; with no
                    // older snapshot to stand in, that is the error, naming the read.
                    Err(StoreError::Snapshot(
                        orderlog_snapshot::SnapshotError::NoValidSnapshot { skipped },
                    )) if skipped.iter().all(|s| {
                        matches!(s.error, orderlog_snapshot::SnapshotError::Io { .. })
                    }) =>
                    {
                        faults += 1;
                    }
                    Err(e) => panic!("{what}: a read error became {e:?}"),
                    Ok(store) => {
                        // The fault hit a read whose failure the store may survive (a
                        // snapshot skipped only if an older one covers it): the state must
                        // still be the model's, with every acknowledged write.
                        let last = store.last_lsn();
                        assert!(last >= acked, "{what}: acknowledged LSN {acked} lost");
                        let expected = Workload::at(seed, last);
                        assert!(&store.state() == expected.model(), "{what}: state differs");
                    }
                }
                copy.clear_fault();
                check_recovery(&copy, seed, acked, tried);
                cases += 1;
            }
        }
    }
    assert!(faults > 0, "no read fault ever reached recovery");
    println!(
        "disk_model read faults: {seeds} images, {cases} failing reads, {faults} opens refused with the error, 0 violations"
    );
}

/// The process dies in the middle of recovery (at every storage operation of it, from a
/// disk whose unsynced writes are still in the page cache), the power is cut, and
/// recovery runs again: every acknowledged write is there and the state is the model's.
#[test]
fn disk_model_recovery_interrupted_anywhere_recovers_again() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let seeds = env_count("ORDERLOG_CRASH_REOPEN_SEEDS", 2);
    let mut points = 0u64;
    for seed in 0..seeds {
        let (died, acked, tried) = died_image(seed);
        // The next process finds the page cache as the dead one left it.
        let restarted = died.restart();
        let counting = restarted.restart();
        drop(open(&counting).expect("a clean recovery"));
        let ops = counting.op_count();
        for k in 0..ops {
            let copy = restarted.restart();
            copy.crash_after(k);
            let _ = open(&copy).map(drop);
            for cut in 0..2 {
                check_recovery(&copy.crash(seed ^ (k << 8) ^ cut), seed, acked, tried);
            }
            points += 1;
        }
    }
    assert!(points > 0);
    println!(
        "disk_model recovery interrupted: {seeds} images, {points} crash points x 2 power cuts, 0 violations"
    );
}

/// Four writer threads share group commits on the simulated disk (each sync taking
/// 200 µs, as a real disk's would, so that they do share them); the process dies after
/// a random number of storage operations and the power is cut. Every write any thread was
/// told is durable must be found: an acknowledgement that ran ahead of the sync covering
/// it would be lost here.
#[test]
fn disk_model_concurrent_writers_lose_no_acknowledged_write() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let seeds = env_count("ORDERLOG_CRASH_CONCURRENT_SEEDS", 40);
    let mut total = 0usize;
    for seed in 0..seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let disk = SimStorage::new("/sim/store");
        let store = open(&disk).expect("open");
        disk.set_sync_latency(std::time::Duration::from_micros(200));
        disk.crash_after(rng.random_range(20..400));
        let acked: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let store = store.clone();
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        for n in 0..10_000u64 {
                            let id = 1 + t + 4 * n;
                            let order = Order::builder(id)
                                .customer(t)
                                .product(1)
                                .quantity(1)
                                .unit_price(1.5)
                                .build()
                                .unwrap();
                            match store.apply(Event::create(order)) {
                                Ok(_) => mine.push(id),
                                Err(_) => break,
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("writer thread")).collect()
        });
        drop(store);
        let after = disk.crash(seed);
        let store = open(&after).unwrap_or_else(|e| panic!("seed {seed}: recovery: {e}"));
        total += acked.iter().map(Vec::len).sum::<usize>();
        for (t, ids) in acked.iter().enumerate() {
            for &id in ids {
                assert!(
                    store.get(id).is_some(),
                    "seed {seed}: thread {t}'s acknowledged order {id} lost"
                );
            }
        }
    }
    println!(
        "disk_model concurrent writers: {seeds} power cuts, {total} acknowledged writes, 0 lost"
    );
}
