//! Continuous backup to object storage, restore and read replicas, against a real S3
//! API (an `s3s-fs` server on loopback, reached through `object_store`'s S3 client) and
//! against `file://`: shipping and restoring (to the end, to an LSN, to a time), a
//! backup that verifies object by object, damage and faults (a partial object, a store
//! that fails for a while, a log truncated before it was shipped), replicas that follow,
//! refuse writes, and are promoted with the primary fenced.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orderlog_s3_server::S3Server;
use orderlog_ship::{ShipError, Target};
use orderlog_store::replication::{RestorePoint, restore};
use orderlog_store::{
    Event, FoldTarget, LagPolicy, Lsn, OfflineStore, Order, OrderStatus, OrderStore, RecoveryMode,
    ReplicationOptions, StoreError, StoreOptions,
};

/// A backup target for a test: a loopback S3 server or a directory.
struct Bucket {
    url: String,
    options: Vec<(String, String)>,
    _server: Option<S3Server>,
    _dir: tempfile::TempDir,
}

impl Bucket {
    fn s3() -> Bucket {
        let dir = tempfile::tempdir().unwrap();
        let server = S3Server::start(dir.path(), "backups").unwrap();
        Bucket {
            url: format!("{}/store", server.url()),
            options: server.client_options(),
            _server: Some(server),
            _dir: dir,
        }
    }

    fn file() -> Bucket {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("backup").display());
        Bucket { url, options: Vec::new(), _server: None, _dir: dir }
    }

    fn both() -> [Bucket; 2] {
        [Bucket::file(), Bucket::s3()]
    }

    fn replication(&self) -> ReplicationOptions {
        ReplicationOptions::new(&self.url)
            .with_client_options(self.options.clone())
            .with_interval(Duration::from_millis(20))
    }

    fn target(&self) -> Target {
        Target::open(&self.url, &self.options).unwrap()
    }

    /// The same target behind a store that misbehaves as the plan returned says.
    fn faulty(&self) -> (Target, Arc<orderlog_ship::faults::FaultPlan>) {
        let faults = Arc::new(orderlog_ship::faults::FaultPlan::default());
        let inner = self.target().object_store().clone();
        let store = orderlog_ship::faults::FaultyStore::wrap(inner, Arc::clone(&faults));
        let prefix = if self._server.is_some() { "store" } else { "" };
        (Target::new(&self.url, store, prefix), faults)
    }

    fn verify(&self) -> orderlog_ship::verify::Verification {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(orderlog_ship::verify::verify(&self.target(), |_, _| {})).unwrap()
    }

    fn restore(
        &self,
        out: &std::path::Path,
        point: RestorePoint,
    ) -> orderlog_store::Result<orderlog_store::replication::Restored> {
        restore(&self.url, &self.options, out, point, |_, _| {})
    }
}

fn create(id: u64) -> Event {
    Event::create(
        Order::builder(id)
            .customer(id % 7)
            .product(id % 11)
            .quantity(1 + (id % 3) as u32)
            .unit_price(2.5)
            .build()
            .unwrap(),
    )
}

/// Orders `first..first + n`, each created then confirmed, in batches of two events.
fn write(store: &OrderStore, first: u64, n: u64) -> Lsn {
    let mut lsn = 0;
    for id in first..first + n {
        lsn = store
            .apply_batch(&[create(id), Event::set_status(id, OrderStatus::Confirmed)])
            .unwrap();
    }
    lsn
}

fn options(bucket: &Bucket) -> StoreOptions {
    StoreOptions { replication: Some(bucket.replication()), ..StoreOptions::for_tests() }
}

/// Every order, sorted, as text (orders compare field by field).
fn orders_of(store: &OrderStore) -> Vec<String> {
    let mut all: Vec<String> = store.query(|_| true).iter().map(|o| format!("{o:?}")).collect();
    all.sort();
    all
}

fn orders_at(dir: &std::path::Path, lsn: Lsn) -> Vec<String> {
    let (state, _) = OfflineStore::open(dir, RecoveryMode::Strict)
        .unwrap()
        .fold_until(FoldTarget::Lsn(lsn))
        .unwrap();
    let mut all: Vec<String> = state.orders().iter().map(|o| format!("{o:?}")).collect();
    all.sort();
    all
}

/// Waits (bounded) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "waited 60 s for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_shipped_store_restores_whole_to_its_end_and_to_an_lsn() {
    for bucket in Bucket::both() {
        let dir = tempfile::tempdir().unwrap();
        let store = OrderStore::open(dir.path(), options(&bucket)).unwrap();
        let early = write(&store, 1, 60);
        store.compact().unwrap();
        write(&store, 1000, 80);
        store.apply(Event::set_status(1, OrderStatus::Shipped)).unwrap();
        let last = store.last_lsn();
        let expected = orders_of(&store);
        store.close().unwrap();
        let stats = store.stats().replication.unwrap();
        assert_eq!(stats.shipped_lsn, last, "{}: {stats:?}", bucket.url);
        assert!(!stats.fenced);
        drop(store);

        let verified = bucket.verify();
        assert!(verified.problems.is_empty(), "{:?}", verified.problems);
        assert_eq!(verified.index.shipped_lsn, last);
        assert!(!verified.index.snapshots.is_empty(), "the snapshot was shipped");

        let out = tempfile::tempdir().unwrap();
        let whole = out.path().join("whole");
        let restored = bucket.restore(&whole, RestorePoint::Latest).unwrap();
        assert_eq!(restored.last_lsn, last);
        let reopened = OrderStore::open(&whole, StoreOptions::for_tests()).unwrap();
        assert_eq!(orders_of(&reopened), expected, "{}", bucket.url);
        assert_eq!(reopened.last_lsn(), last);
        // It is a normal store: it takes writes.
        write(&reopened, 5000, 3);
        drop(reopened);

        // To an LSN: exactly the state the original log folds to there.
        let at = early - 7;
        let partial = out.path().join("partial");
        let restored = bucket.restore(&partial, RestorePoint::Lsn(at)).unwrap();
        assert!(restored.last_lsn <= at && restored.last_lsn + 1 >= at);
        assert_eq!(
            orders_at(&partial, restored.last_lsn),
            orders_at(dir.path(), restored.last_lsn)
        );
        let reopened = OrderStore::open(&partial, StoreOptions::for_tests()).unwrap();
        assert_eq!(reopened.last_lsn(), restored.last_lsn);
    }
}

#[test]
fn a_restore_to_a_time_folds_the_backups_history() {
    let bucket = Bucket::s3();
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), options(&bucket)).unwrap();
    write(&store, 1, 30);
    std::thread::sleep(Duration::from_millis(5));
    let cut_ms = orderlog_ship::shipper::now_ms();
    std::thread::sleep(Duration::from_millis(5));
    let before_cut = store.last_lsn();
    store.compact().unwrap();
    write(&store, 100, 30);
    store.close().unwrap();
    drop(store);
    let out = tempfile::tempdir().unwrap().keep();
    let restored = bucket.restore(&out.join("t"), RestorePoint::TimeMs(cut_ms)).unwrap();
    assert_eq!(restored.last_lsn, before_cut);
    assert_eq!(orders_at(&out.join("t"), before_cut), orders_at(dir.path(), before_cut));
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn bad_restores_are_typed_errors_that_write_nothing() {
    let bucket = Bucket::file();
    let out = tempfile::tempdir().unwrap();
    // No backup at all.
    let err = bucket.restore(&out.path().join("a"), RestorePoint::Latest).unwrap_err();
    assert!(matches!(err, StoreError::Replication(ShipError::NoBackup { .. })), "{err}");
    assert!(!out.path().join("a").exists());

    // A store whose log was truncated before shipping started: the backup begins at its
    // snapshot, and a point before that cannot be restored.
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    write(&store, 1, 80);
    let report = store.compact().unwrap();
    assert!(store.stats().wal.first_lsn > 1, "the log was truncated: {report:?}");
    write(&store, 500, 5);
    store.close().unwrap();
    drop(store);
    let store = OrderStore::open(dir.path(), options(&bucket)).unwrap();
    store.close().unwrap();
    drop(store);
    let err = bucket.restore(&out.path().join("b"), RestorePoint::Lsn(3)).unwrap_err();
    match &err {
        StoreError::Replication(ShipError::Unrestorable { reason, .. }) => {
            assert!(reason.contains("snapshots at LSNs"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert!(!out.path().join("b").exists());
    let err = bucket.restore(&out.path().join("c"), RestorePoint::Lsn(1 << 40)).unwrap_err();
    assert!(matches!(err, StoreError::Replication(ShipError::Unrestorable { .. })), "{err}");
    // An output that exists is refused, and left as it was.
    std::fs::create_dir(out.path().join("d")).unwrap();
    std::fs::write(out.path().join("d/keep"), b"x").unwrap();
    let err = bucket.restore(&out.path().join("d"), RestorePoint::Latest).unwrap_err();
    assert!(matches!(err, StoreError::Replication(ShipError::OutputExists { .. })), "{err}");
    assert_eq!(std::fs::read(out.path().join("d/keep")).unwrap(), b"x");
    // A bad URL.
    let err = restore("ftp://x/y", &[], &out.path().join("e"), RestorePoint::Latest, |_, _| {})
        .unwrap_err();
    assert!(matches!(err, StoreError::Replication(ShipError::Url { .. })), "{err}");
}

#[test]
fn a_damaged_object_is_found_and_never_restored() {
    let bucket = Bucket::file();
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open(dir.path(), options(&bucket)).unwrap();
    write(&store, 1, 50);
    store.close().unwrap();
    drop(store);
    let verified = bucket.verify();
    assert!(verified.problems.is_empty());
    // A partial object: the first log piece cut short, as an interrupted write to a
    // store without atomic puts would leave it.
    let piece = &verified.index.segments[0].object;
    let root = bucket.url.strip_prefix("file://").unwrap();
    let path = std::path::Path::new(root).join(piece);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let verified = bucket.verify();
    assert_eq!(verified.problems.len(), 1, "{:?}", verified.problems);
    assert!(verified.problems[0].to_string().contains(piece.as_str()));
    let out = tempfile::tempdir().unwrap();
    let err = bucket.restore(&out.path().join("r"), RestorePoint::Latest).unwrap_err();
    assert!(matches!(err, StoreError::Replication(ShipError::Corrupt { .. })), "{err}");
    assert!(!out.path().join("r").exists());
    // A flipped byte with the size intact.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    std::fs::write(&path, &flipped).unwrap();
    let err = bucket.restore(&out.path().join("r"), RestorePoint::Latest).unwrap_err();
    assert!(matches!(err, StoreError::Replication(ShipError::Corrupt { .. })), "{err}");
    assert!(!out.path().join("r").exists());
}

#[test]
fn shipping_resumes_after_the_store_fails_for_a_while_and_writers_never_wait() {
    let bucket = Bucket::s3();
    let (faulty, faults) = bucket.faulty();
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(&bucket);
    options.replication.as_mut().unwrap().request_timeout = Duration::from_millis(300);
    let store = OrderStore::open_with_target(dir.path(), options, faulty).unwrap();
    write(&store, 1, 20);
    wait_for("the first shipment", || {
        store.stats().replication.unwrap().shipped_lsn == store.last_lsn()
    });
    // Every request fails (errors, then requests that hang past the time limit); the
    // writers carry on.
    faults.fail_all(true);
    let failing = store.stats().replication.unwrap().errors;
    let during = write(&store, 100, 40);
    assert_eq!(store.durable_lsn(), during, "writes are durable while the backup fails");
    wait_for("failed rounds", || store.stats().replication.unwrap().errors >= failing + 2);
    faults.fail_all(false);
    faults.hang(true);
    let hanging = store.stats().replication.unwrap().errors;
    write(&store, 300, 5);
    wait_for("timed-out rounds", || store.stats().replication.unwrap().errors > hanging);
    let stats = store.stats().replication.unwrap();
    assert!(stats.lag_lsns > 0 && stats.lag_bytes > 0, "{stats:?}");
    assert!(stats.last_error.is_some());
    faults.hang(false);
    let last = store.last_lsn();
    wait_for("shipping to resume", || store.stats().replication.unwrap().shipped_lsn == last);
    let stats = store.stats().replication.unwrap();
    assert_eq!((stats.lag_lsns, stats.failing_for), (0, 0), "{stats:?}");
    let expected = orders_of(&store);
    drop(store);
    let out = tempfile::tempdir().unwrap();
    bucket.restore(&out.path().join("r"), RestorePoint::Latest).unwrap();
    let restored = OrderStore::open(out.path().join("r"), StoreOptions::for_tests()).unwrap();
    assert_eq!(orders_of(&restored), expected);
}

#[test]
fn a_log_truncated_before_it_was_shipped_starts_a_new_generation() {
    let bucket = Bucket::file();
    let (faulty, faults) = bucket.faulty();
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(&bucket);
    options.replication.as_mut().unwrap().on_lag = LagPolicy::ReportOnly;
    let store = OrderStore::open_with_target(dir.path(), options, faulty).unwrap();
    write(&store, 1, 10);
    wait_for("the first shipment", || {
        store.stats().replication.unwrap().shipped_lsn == store.last_lsn()
    });
    let first = store.stats().replication.unwrap().generation.unwrap();
    faults.fail_all(true);
    write(&store, 100, 80);
    store.compact().unwrap();
    assert!(store.stats().wal.first_lsn > 21, "the compactor did not wait for the shipper");
    faults.fail_all(false);
    let last = store.last_lsn();
    wait_for("a new generation", || {
        let s = store.stats().replication.unwrap();
        s.shipped_lsn == last && s.generation.as_deref() != Some(first.as_str())
    });
    let expected = orders_of(&store);
    drop(store);
    let out = tempfile::tempdir().unwrap();
    bucket.restore(&out.path().join("r"), RestorePoint::Latest).unwrap();
    let restored = OrderStore::open(out.path().join("r"), StoreOptions::for_tests()).unwrap();
    assert_eq!(orders_of(&restored), expected);
}

#[test]
fn hold_truncation_keeps_what_is_not_shipped() {
    let bucket = Bucket::file();
    let (faulty, faults) = bucket.faulty();
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open_with_target(dir.path(), options(&bucket), faulty).unwrap();
    write(&store, 1, 10);
    wait_for("the first shipment", || {
        store.stats().replication.unwrap().shipped_lsn == store.last_lsn()
    });
    let shipped = store.stats().replication.unwrap().shipped_lsn;
    faults.fail_all(true);
    write(&store, 100, 80);
    store.compact().unwrap();
    assert!(store.stats().wal.first_lsn <= shipped + 1, "a segment not shipped was deleted");
    faults.fail_all(false);
    let last = store.last_lsn();
    wait_for("shipping to catch up", || store.stats().replication.unwrap().shipped_lsn == last);
    assert_eq!(store.stats().replication.unwrap().generations_started, 1);
}

#[test]
fn a_replica_follows_refuses_writes_and_is_promoted_with_the_primary_fenced() {
    for bucket in Bucket::both() {
        let primary_dir = tempfile::tempdir().unwrap();
        let primary = OrderStore::open(primary_dir.path(), options(&bucket)).unwrap();
        write(&primary, 1, 40);
        primary.compact().unwrap();
        write(&primary, 100, 10);
        wait_for("the primary's shipment", || {
            primary.stats().replication.unwrap().shipped_lsn == primary.last_lsn()
        });
        let replica_dir = tempfile::tempdir().unwrap();
        let replica = OrderStore::open_replica(
            bucket.replication(),
            replica_dir.path().join("r"),
            StoreOptions::for_tests(),
        )
        .unwrap();
        assert!(replica.is_replica());
        let caught_up =
            |replica: &OrderStore, primary: &OrderStore| replica.last_lsn() == primary.last_lsn();
        wait_for("the replica", || caught_up(&replica, &primary));
        assert_eq!(orders_of(&replica), orders_of(&primary));
        // Live: what the primary writes next reaches the replica.
        let written = AtomicU64::new(0);
        written.store(write(&primary, 200, 25), Ordering::SeqCst);
        wait_for("the replica to follow", || replica.last_lsn() == written.load(Ordering::SeqCst));
        assert_eq!(orders_of(&replica), orders_of(&primary));
        let stats = replica.stats().replica.unwrap();
        assert_eq!(stats.applied_lsn, primary.last_lsn());
        // Subscriptions are served on a replica.
        let sub = replica.subscribe(
            orderlog_store::feed::StartAt::Lsn(1),
            orderlog_store::feed::FeedOptions::default(),
        );
        assert!(sub.is_ok());
        let err = replica.apply(create(9999)).unwrap_err();
        assert!(matches!(err, StoreError::ReadOnlyReplica { .. }), "{err}");
        // Promotion: the replica fences the primary, which stops shipping at its next
        // round, and becomes a writer.
        let before = primary.last_lsn();
        replica.promote().unwrap();
        assert!(!replica.is_replica());
        write(&replica, 7000, 3);
        write(&primary, 8000, 3);
        wait_for("the primary to be fenced", || primary.stats().replication.unwrap().fenced);
        let err = replica.promote().unwrap_err();
        assert!(matches!(err, StoreError::NotAReplica { .. }), "{err}");
        assert!(replica.last_lsn() > before);
        drop(primary);
    }
}

#[test]
fn an_index_create_whose_answer_was_lost_is_adopted_not_taken_for_a_fence() {
    let bucket = Bucket::s3();
    let (faulty, faults) = bucket.faulty();
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open_with_target(dir.path(), options(&bucket), faulty).unwrap();
    write(&store, 1, 5);
    wait_for("the first shipment", || {
        store.stats().replication.unwrap().shipped_lsn == store.last_lsn()
    });
    // Every write is done but answered with an error: the index is created, its
    // creator told it failed.
    faults.lose_answers(true);
    let errors = store.stats().replication.unwrap().errors;
    write(&store, 100, 5);
    wait_for("a failed round", || store.stats().replication.unwrap().errors > errors);
    faults.lose_answers(false);
    let last = store.last_lsn();
    wait_for("shipping to resume", || store.stats().replication.unwrap().shipped_lsn == last);
    let stats = store.stats().replication.unwrap();
    assert!(!stats.fenced, "{stats:?}");
    write(&store, 200, 5);
    let last = store.last_lsn();
    wait_for("shipping to go on", || store.stats().replication.unwrap().shipped_lsn == last);
    assert!(!store.stats().replication.unwrap().fenced);
    assert!(bucket.verify().problems.is_empty());
}

#[test]
fn a_fenced_primary_never_ships_again_and_the_promoted_store_ships_a_newer_generation() {
    let bucket = Bucket::file();
    let primary_dir = tempfile::tempdir().unwrap();
    let primary = OrderStore::open(primary_dir.path(), options(&bucket)).unwrap();
    write(&primary, 1, 30);
    wait_for("the primary's shipment", || {
        primary.stats().replication.unwrap().shipped_lsn == primary.last_lsn()
    });
    let old_generation = primary.stats().replication.unwrap().generation.unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = OrderStore::open_replica(
        bucket.replication(),
        replica_dir.path().join("r"),
        StoreOptions { replication: Some(bucket.replication()), ..StoreOptions::for_tests() },
    )
    .unwrap();
    wait_for("the replica", || replica.last_lsn() == primary.last_lsn());
    replica.promote().unwrap();
    write(&replica, 7000, 5);
    let promoted_last = replica.last_lsn();
    wait_for("the promoted store's shipment", || {
        replica.stats().replication.is_some_and(|r| r.shipped_lsn == promoted_last)
    });
    let new_generation = replica.stats().replication.unwrap().generation.unwrap();
    assert!(new_generation > old_generation, "{new_generation} after {old_generation}");
    // The old primary writes on; its next index is refused.
    write(&primary, 8000, 5);
    wait_for("the primary to be fenced", || primary.stats().replication.unwrap().fenced);
    drop(primary);
    // Restarted, it refuses to ship (it would otherwise start a newer generation).
    let primary = OrderStore::open(primary_dir.path(), options(&bucket)).unwrap();
    write(&primary, 9000, 2);
    wait_for("the restarted primary to refuse", || primary.stats().replication.unwrap().fenced);
    assert_eq!(primary.stats().replication.unwrap().generations_started, 0);
    drop(primary);
    // The backup is the promoted store's history.
    let out = tempfile::tempdir().unwrap();
    bucket.restore(&out.path().join("r"), RestorePoint::Latest).unwrap();
    let restored = OrderStore::open(out.path().join("r"), StoreOptions::for_tests()).unwrap();
    assert_eq!(orders_of(&restored), orders_of(&replica));
    assert!(
        restored.get(7000).is_some()
            && restored.get(8000).is_none()
            && restored.get(9000).is_none()
    );
}

#[test]
fn a_replica_stops_when_the_backup_becomes_another_history() {
    let bucket = Bucket::file();
    let primary_dir = tempfile::tempdir().unwrap();
    let primary = OrderStore::open(primary_dir.path(), options(&bucket)).unwrap();
    write(&primary, 1, 20);
    wait_for("the primary's shipment", || {
        primary.stats().replication.unwrap().shipped_lsn == primary.last_lsn()
    });
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = OrderStore::open_replica(
        bucket.replication(),
        replica_dir.path().join("r"),
        StoreOptions::for_tests(),
    )
    .unwrap();
    wait_for("the replica", || replica.last_lsn() == primary.last_lsn());
    let seen = replica.last_lsn();
    drop(primary);
    // Another store, with other orders and more of them, ships into the same bucket.
    let other_dir = tempfile::tempdir().unwrap();
    let other = OrderStore::open(other_dir.path(), options(&bucket)).unwrap();
    write(&other, 50_000, 40);
    wait_for("the other store's shipment", || {
        other.stats().replication.unwrap().shipped_lsn == other.last_lsn()
    });
    wait_for("the replica to stop", || replica.stats().replica.unwrap().stopped.is_some());
    let stopped = replica.stats().replica.unwrap().stopped.unwrap();
    assert!(stopped.contains("diverges"), "{stopped}");
    assert_eq!(replica.last_lsn(), seen, "nothing of the other history was applied");
    assert!(replica.get(50_000).is_none());
}

#[test]
fn a_slow_store_delays_the_backup_never_the_writers() {
    let bucket = Bucket::s3();
    let (faulty, faults) = bucket.faulty();
    let dir = tempfile::tempdir().unwrap();
    let store = OrderStore::open_with_target(dir.path(), options(&bucket), faulty).unwrap();
    // Every request waits 300 ms: a round takes seconds, the writers none of it.
    faults.delay(Duration::from_millis(300));
    let last = write(&store, 1, 30);
    assert_eq!(store.durable_lsn(), last);
    wait_for("the slow shipment", || store.stats().replication.unwrap().shipped_lsn == last);
    assert!(faults.requests() > 0);
    let stats = store.stats().replication.unwrap();
    assert_eq!((stats.errors, stats.lag_lsns), (0, 0), "{stats:?}");
    faults.delay(Duration::ZERO);
    drop(store);
    let out = tempfile::tempdir().unwrap();
    bucket.restore(&out.path().join("r"), RestorePoint::Latest).unwrap();
    let restored = OrderStore::open(out.path().join("r"), StoreOptions::for_tests()).unwrap();
    assert_eq!(restored.last_lsn(), last);
}

#[test]
fn a_new_generations_first_index_restores_a_store_whose_log_was_truncated() {
    let bucket = Bucket::file();
    let dir = tempfile::tempdir().unwrap();
    // Compacted before any shipping: the log no longer starts at LSN 1.
    let store = OrderStore::open(dir.path(), StoreOptions::for_tests()).unwrap();
    write(&store, 1, 80);
    store.compact().unwrap();
    assert!(store.stats().wal.first_lsn > 1);
    store.close().unwrap();
    drop(store);
    let store = OrderStore::open(dir.path(), options(&bucket)).unwrap();
    wait_for("the shipment", || store.stats().replication.unwrap().shipped_lsn == store.last_lsn());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let target = bucket.target();
    let generation =
        *runtime.block_on(orderlog_ship::shipper::generations(&target)).unwrap().last().unwrap();
    let seqs = runtime.block_on(orderlog_ship::shipper::index_seqs(&target, generation)).unwrap();
    assert_eq!(seqs.first(), Some(&1), "{seqs:?}");
    // Every index of the generation restores, the first one too (it names the snapshot).
    for seq in seqs {
        let index =
            runtime.block_on(orderlog_ship::shipper::read_index(&target, generation, seq)).unwrap();
        orderlog_ship::restore::plan(
            &index,
            index.shipped_lsn,
            orderlog_ship::restore::Base::Newest,
        )
        .unwrap_or_else(|e| panic!("index {seq}: {e}"));
    }
}
