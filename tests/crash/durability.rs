//! One test per durability defect that a line-by-line read of the log, the snapshots and
//! the store found, each on the simulated disk: what was acknowledged must survive a
//! power cut whatever the store did on its way there (restart, retried compaction,
//! point-in-time recovery).

use std::sync::Arc;

use orderlog_snapshot::SnapshotError;
use orderlog_store::{Event, Order, OrderStore, PublishStep};
use orderlog_wal::KillPoint;
use orderlog_wal::storage::SimStorage;

use crate::power_loss::options;

fn open(disk: &SimStorage) -> orderlog_store::Result<OrderStore> {
    OrderStore::open_on(Arc::new(disk.clone()), options())
}

/// Creates orders `ids` in batches of 20; returns them.
fn create(store: &OrderStore, ids: std::ops::Range<u64>) -> Vec<u64> {
    let all: Vec<u64> = ids.collect();
    for chunk in all.chunks(20) {
        let events: Vec<Event> =
            chunk.iter().map(|&id| Event::create(Order::new(id, id % 7, 3, 1, 9.5))).collect();
        store.apply_batch(&events).expect("create");
    }
    all
}

/// A store with a durable snapshot, then enough writes after it that the log has sealed
/// segments beyond that snapshot.
fn store_with_two_generations(disk: &SimStorage) -> (OrderStore, Vec<u64>) {
    let store = open(disk).expect("open");
    let mut acked = create(&store, 1..400);
    store.compact().expect("first compaction");
    acked.extend(create(&store, 400..900));
    (store, acked)
}

fn assert_survives_power_cuts(disk: &SimStorage, acked: &[u64], what: &str) {
    for seed in 0..40 {
        let after = disk.crash(seed);
        let store = open(&after)
            .unwrap_or_else(|e| panic!("{what}, seed {seed}: the store cannot open: {e}"));
        for &id in acked {
            assert!(store.get(id).is_some(), "{what}, seed {seed}: acknowledged order {id} lost");
        }
    }
}

/// The process dies right after the manifest's rename, before the directory sync; a new
/// process opens the store and compacts with nothing new to fold. It must not delete the
/// log below a manifest whose rename a power cut can still undo.
#[test]
fn durability_no_truncation_below_a_manifest_renamed_but_not_synced() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let disk = SimStorage::new("/sim/store");
    let (store, acked) = store_with_two_generations(&disk);
    disk.crash_at(KillPoint::ManifestRenamed, 1);
    assert!(store.compact().is_err(), "the process was to die at the manifest's rename");
    drop(store);
    let restarted = disk.restart();
    let store = open(&restarted).expect("restart");
    store.compact().expect("compaction after restart");
    drop(store);
    assert_survives_power_cuts(&restarted, &acked, "restart after the rename, then compact");
}

/// The same within one process: the compaction stops after the rename (as when the
/// directory sync after it fails), and the next one, with nothing new to fold, must not
/// truncate on the word of that manifest.
#[test]
fn durability_no_truncation_after_a_publish_that_stopped_past_the_rename() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let disk = SimStorage::new("/sim/store");
    let (store, acked) = store_with_two_generations(&disk);
    let stopped = store.compact_with_hook(&mut |step| match step {
        PublishStep::ManifestRenamed => Err(SnapshotError::Stopped { step }),
        _ => Ok(()),
    });
    assert!(stopped.is_err(), "the publish was to stop after the rename");
    store.compact().expect("the next compaction");
    drop(store);
    assert_survives_power_cuts(&disk, &acked, "a retried compaction after a stopped publish");
}
