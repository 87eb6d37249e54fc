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
        let events: Vec<Event> = chunk
            .iter()
            .map(|&id| {
                Event::create(
                    Order::builder(id)
                        .customer(id % 7)
                        .product(3)
                        .quantity(1)
                        .unit_price(9.5)
                        .build()
                        .unwrap(),
                )
            })
            .collect();
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

/// Panics unless `store` holds every order in `acked`.
fn assert_holds(store: &OrderStore, acked: &[u64], what: &str) {
    for &id in acked {
        assert!(store.get(id).is_some(), "{what}: acknowledged order {id} lost");
    }
}

fn assert_survives_power_cuts(disk: &SimStorage, acked: &[u64], what: &str) {
    for seed in 0..40 {
        let after = disk.crash(seed);
        let store = open(&after)
            .unwrap_or_else(|e| panic!("{what}, seed {seed}: the store cannot open: {e}"));
        assert_holds(&store, acked, &format!("{what}, seed {seed}"));
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
    let stopped = orderlog::testing::compact_with_hook(&store, &mut |step| match step {
        PublishStep::ManifestRenamed => Err(SnapshotError::Stopped { step }),
        _ => Ok(()),
    });
    assert!(stopped.is_err(), "the publish was to stop after the rename");
    store.compact().expect("the next compaction");
    drop(store);
    assert_survives_power_cuts(&disk, &acked, "a retried compaction after a stopped publish");
}

/// The store's files, name and bytes.
fn files_of(disk: &SimStorage) -> Vec<(String, Vec<u8>)> {
    disk.files().into_iter().map(|n| (n.clone(), disk.file_bytes(&n).unwrap_or_default())).collect()
}

/// `PointInTime` recovery of a log damaged below the snapshot would end the log before
/// the snapshot: the store refuses to open, and refusing must leave every byte as it
/// was (the log's recovery decides first and changes nothing until the store agreed).
#[test]
fn durability_point_in_time_refused_by_the_store_destroys_nothing() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let disk = SimStorage::new("/sim/store");
    let mut opts = options();
    opts.compaction.retain_segments = 3;
    let store = OrderStore::open_on(Arc::new(disk.clone()), opts.clone()).expect("open");
    create(&store, 1..900);
    store.compact().expect("compaction");
    store.close().expect("close");
    drop(store);
    // Damage the first frame of the oldest retained segment: below the snapshot.
    let segments: Vec<String> =
        disk.files().into_iter().filter(|n| n.starts_with("wal/") && n.ends_with(".wal")).collect();
    assert!(segments.len() >= 3, "{segments:?}");
    let mut bytes = disk.file_bytes(&segments[0]).expect("segment");
    bytes[orderlog_wal::format::FRAMES_OFFSET as usize + 20] ^= 1;
    disk.set_file_bytes(&segments[0], bytes);
    let before = files_of(&disk);
    opts.wal.recovery_mode = orderlog_store::RecoveryMode::PointInTime;
    match OrderStore::open_on(Arc::new(disk.clone()), opts) {
        Err(orderlog_store::StoreError::LogDoesNotContinueSnapshot { .. }) => {}
        other => panic!("expected LogDoesNotContinueSnapshot, got {other:?}"),
    }
    let after = files_of(&disk);
    let changed: Vec<&String> = before
        .iter()
        .filter(|(n, b)| !after.iter().any(|(m, c)| m == n && c == b))
        .map(|(n, _)| n)
        .collect();
    assert!(
        changed.is_empty() && before.len() == after.len(),
        "a refused open changed {changed:?}"
    );
}

/// A log whose oldest segments lie behind a gap below the snapshot (a truncation whose
/// removals were persisted out of order, or by an older version that synced once after
/// them all) opens: the stranded segments are orphans, removed and reported, not an LSN
/// gap that makes the store unopenable.
#[test]
fn durability_segments_stranded_below_the_snapshot_are_orphans_not_a_gap() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let disk = SimStorage::new("/sim/store");
    let mut opts = options();
    opts.compaction.retain_segments = 3;
    let store = OrderStore::open_on(Arc::new(disk.clone()), opts.clone()).expect("open");
    let acked = create(&store, 1..900);
    store.compact().expect("compaction");
    store.close().expect("close");
    drop(store);
    let segments: Vec<String> =
        disk.files().into_iter().filter(|n| n.starts_with("wal/") && n.ends_with(".wal")).collect();
    assert!(segments.len() >= 4, "{segments:?}");
    // The oldest retained segment survives, the next one is gone: a gap below the snapshot.
    use orderlog_wal::storage::Storage;
    disk.remove(&segments[1]).expect("remove");
    disk.sync_dir_at("wal").expect("sync");
    let store = OrderStore::open_on(Arc::new(disk.clone()), opts).expect("open over the gap");
    let report = store.open_report().wal.clone();
    assert_eq!(report.orphaned_segments.len(), 1, "{report:?}");
    assert!(report.orphaned_segments[0].ends_with(&segments[0]), "{report:?}");
    assert_holds(&store, &acked, "a log with orphans");
    assert!(disk.file_bytes(&segments[0]).is_none(), "the orphan is still there");
}

/// A store with two snapshots listed (the default `keep_last = 2`) and a log tail.
fn store_with_two_snapshots(disk: &SimStorage) -> (Vec<u64>, Vec<orderlog_snapshot::SnapshotInfo>) {
    let store = open(disk).expect("open");
    let mut acked = create(&store, 1..400);
    store.compact().expect("first compaction");
    acked.extend(create(&store, 400..900));
    store.compact().expect("second compaction");
    acked.extend(create(&store, 900..1000));
    store.close().expect("close");
    drop(store);
    let snapshots = orderlog_snapshot::SnapshotStore::read_only_on(Arc::new(disk.at("snapshots")))
        .list()
        .expect("list");
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    (acked, snapshots)
}

/// With the default options, a damaged newest snapshot is stood in for by the older one,
/// and the log from it on is still there to replay (it used to be deleted below the
/// newest snapshot, leaving the store unopenable).
#[test]
fn durability_a_damaged_newest_snapshot_falls_back_with_the_log_to_replay() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let disk = SimStorage::new("/sim/store");
    let (acked, snapshots) = store_with_two_snapshots(&disk);
    let ipc = snapshots[0].ipc_file().expect("an IPC file").path.clone();
    let name = format!("snapshots/{ipc}");
    let mut bytes = disk.file_bytes(&name).expect("the newest snapshot's IPC file");
    bytes[100] ^= 0x10;
    disk.set_file_bytes(&name, bytes);
    let store = open(&disk).expect("open with the newest snapshot damaged");
    assert_eq!(store.open_report().snapshot_lsn, snapshots[1].lsn, "fell back to the older one");
    assert_holds(&store, &acked, "fallback from a damaged snapshot");
}

/// An I/O error reading a snapshot file is an error value, and a snapshot that cannot be
/// read is skipped for an older one like a damaged one (with a mapping, the same error
/// was a SIGBUS that killed the process).
#[test]
fn durability_an_unreadable_snapshot_file_is_skipped_not_a_crash() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let disk = SimStorage::new("/sim/store");
    let (acked, snapshots) = store_with_two_snapshots(&disk);
    let ipc = snapshots[0].ipc_file().expect("an IPC file").path.clone();
    disk.make_unreadable(&format!("snapshots/{ipc}"));
    let store = open(&disk).expect("open with the newest snapshot unreadable");
    assert_eq!(store.open_report().snapshot_lsn, snapshots[1].lsn);
    assert_holds(&store, &acked, "fallback from an unreadable snapshot");
}

/// A new store's directories (the store's own, `wal/`, `snapshots/`) are durable before
/// its first write is acknowledged: a power cut right after it finds the write. (A new
/// directory's entry is durable only once its parent is synced.)
#[test]
fn durability_a_new_store_survives_a_power_cut_after_its_first_write() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    for seed in 0..40 {
        let disk = SimStorage::new("/sim");
        let root = disk.at("deep/new/store");
        let store = open(&root).expect("open");
        let acked = create(&store, 1..2);
        drop(store);
        let after = disk.crash(seed).at("deep/new/store");
        let store = open(&after).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(store.get(acked[0]).is_some(), "seed {seed}: the first write was lost");
    }
}
