//! The change feed's durable consumers under crashes.
//!
//! - On the simulated disk (`ORDERLOG_FEED_CRASHES=N` rounds, default 60): a writer
//!   writes and compacts, a consumer reads, processes and acknowledges; each round
//!   either the power goes off at a random storage operation (anywhere: in a write, a
//!   sync, a compaction, the middle of an acknowledgement) and the store is reopened from
//!   what the cut left, or only the consumer stops, at a random item, and starts again.
//! - In a child process on the real file system (`ORDERLOG_FEED_KILLS=N`, default 12):
//!   a writer thread and a consumer thread, SIGKILLed at a random moment after a random
//!   number of acknowledgements (so also in the middle of one).
//!
//! After every restart: the consumer's position is at or after its last acknowledgement
//! that returned, and at most the last LSN it had processed; its subscription resumes at
//! exactly the next LSN; the log still holds every frame after its position (no
//! compaction removed what it had not acknowledged); and what it receives is the log.

use std::sync::Arc;
use std::time::Duration;

use orderlog_store::feed::{FeedItem, Filter};
use orderlog_store::{
    CompactionOptions, Event, Lsn, Order, OrderStatus, OrderStore, StoreOptions, SyncPolicy,
    WalOptions,
};
use orderlog_wal::storage::SimStorage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::env_count;
use crate::kill_loop::{Death, run_child};

const CONSUMER: &str = "projection";

fn options() -> StoreOptions {
    StoreOptions {
        wal: WalOptions {
            segment_bytes: orderlog_wal::options::SEGMENT_BYTES_MIN * 2,
            sync_policy: SyncPolicy::Always,
            ..WalOptions::default()
        },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        ..StoreOptions::default()
    }
}

/// The batch written at LSN-independent step `k`: a create of order `k + 1`, or a
/// confirmation of the order created two steps before.
fn batch(k: u64) -> Vec<Event> {
    if k % 3 == 2 {
        vec![Event::set_status(k - 1, OrderStatus::Confirmed)]
    } else {
        let order = Order::builder(k + 1).customer(k % 9).product(4).quantity(1).unit_price(3.0);
        vec![Event::create(order.build().expect("a valid order")).stamped(k)]
    }
}

/// Checks a restarted store against what the consumer knew before the crash:
/// `acked_ok` (its last acknowledgement that returned) and `processed` (the last LSN it
/// had processed, which bounds any acknowledgement in flight). Returns its position.
fn check_restart(store: &OrderStore, acked_ok: Lsn, processed: Lsn) -> Lsn {
    let consumer = store.existing_consumer(CONSUMER).expect("the consumer survives");
    let acked = consumer.acked_lsn().expect("acked");
    assert!(acked >= acked_ok, "position {acked} lost the acknowledgement of {acked_ok}");
    assert!(
        acked <= processed.max(acked_ok),
        "position {acked} beyond what was processed ({processed})"
    );
    let first = store.stats().wal.first_lsn;
    assert!(first <= acked + 1, "the log (from {first}) lost frames after position {acked}");
    assert!(!consumer.info().expect("info").record.lagging);
    // It resumes at exactly the next LSN, and what it reads is the log.
    let mut sub = consumer.subscribe(Filter::all()).expect("subscribe");
    if store.durable_lsn() > acked {
        match sub.recv_timeout(Duration::from_secs(10)).expect("recv") {
            Some(FeedItem::Batch(b)) => assert_eq!(b.lsn, acked + 1),
            other => panic!("after position {acked}: {other:?}"),
        }
    }
    acked
}

#[test]
fn consumers_survive_power_cuts_and_restarts_on_the_simulated_disk() {
    let rounds = env_count("ORDERLOG_FEED_CRASHES", 60);
    let seed = env_count("ORDERLOG_FEED_SEED", 0x5eed_feed);
    let mut rng = StdRng::seed_from_u64(seed);
    let _open = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let mut disk = SimStorage::new("/sim/feed");
    let mut store = OrderStore::open_on(Arc::new(disk.clone()), options()).expect("open");
    store.consumer(CONSUMER).expect("register");
    let (mut step, mut acked_ok, mut processed) = (0u64, 0, 0);
    let (mut cuts, mut consumer_restarts) = (0, 0);
    for round in 0..rounds {
        let cut = rng.random_bool(0.6);
        if cut {
            disk.crash_after(rng.random_range(0..400));
        }
        let consumer = store.existing_consumer(CONSUMER).expect("consumer");
        let mut sub = consumer.subscribe(Filter::all()).expect("subscribe");
        // Sometimes the consumer falls well behind first: several compactions run past
        // its position, which they must keep.
        if rng.random_bool(0.3) {
            for k in 0..rng.random_range(20..120) {
                if store.apply_batch(&batch(step)).is_err() {
                    break;
                }
                step += 1;
                if k % 10 == 9 {
                    let _ = store.compact();
                }
            }
        }
        let stop_at = rng.random_range(5..60);
        // The writer and the consumer interleave; both stop at the first failure (the
        // power went off) or after `stop_at` items.
        for i in 0..stop_at {
            let wrote = store.apply_batch(&batch(step)).map(|_| step += 1);
            if i % 13 == 12 && wrote.is_ok() {
                let _ = store.compact();
            }
            let item = match sub.try_recv() {
                Ok(item) => item,
                Err(_) => break,
            };
            if let Some(item) = item {
                processed = processed.max(item.lsn());
                if rng.random_bool(0.4) {
                    match consumer.ack(sub.delivered_lsn()) {
                        Ok(()) => acked_ok = sub.delivered_lsn(),
                        Err(_) => break,
                    }
                }
            }
            if wrote.is_err() {
                break;
            }
        }
        drop(sub);
        if cut {
            cuts += 1;
            let image = disk.crash(seed ^ round);
            drop(consumer);
            store = OrderStore::open_on(Arc::new(image.clone()), options()).expect("reopen");
            disk = image;
            // The workload resumes at the log's end (writes the cut undid are redone).
            step = store.last_lsn();
        } else {
            consumer_restarts += 1;
        }
        acked_ok = check_restart(&store, acked_ok, processed);
    }
    eprintln!(
        "feed on the simulated disk: {rounds} rounds ({cuts} power cuts, {consumer_restarts} consumer restarts), {step} batches, position {acked_ok}: no acknowledgement lost, none beyond what was processed, the log after it kept"
    );
}

/// The child: a writer thread (compacting every 20 batches) and a consumer that
/// processes slowly and acknowledges every few items, printing `consumed <lsn>` and
/// `acked <lsn>` (after the acknowledgement returned).
#[test]
#[ignore = "the child process of the feed kill loop"]
fn child() {
    let Ok(dir) = std::env::var(crate::kill_loop::CHILD_DIR) else { return };
    let store = OrderStore::open(&dir, options()).expect("open");
    let consumer = store.consumer(CONSUMER).expect("register");
    println!("opened {}", store.last_lsn());
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut k = store.last_lsn();
            loop {
                store.apply_batch(&batch(k)).expect("write");
                k += 1;
                if k.is_multiple_of(20) {
                    store.compact().expect("compact");
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let mut sub = consumer.subscribe(Filter::all()).expect("subscribe");
    let mut n = 0u64;
    for item in sub.by_ref() {
        let item = item.expect("item");
        println!("consumed {}", item.lsn());
        n += 1;
        if n.is_multiple_of(3) {
            std::thread::sleep(Duration::from_micros(300));
        }
        if n.is_multiple_of(4) {
            let position = item.lsn();
            consumer.ack(position).expect("ack");
            println!("acked {position}");
        }
    }
    drop(writer);
}

#[test]
fn consumers_survive_sigkill_of_the_process_in_the_middle_of_anything() {
    let kills = env_count("ORDERLOG_FEED_KILLS", 12);
    let seed = env_count("ORDERLOG_FEED_SEED", 0xfeed);
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    let mut acked_ok = 0;
    for kill in 0..kills {
        let death =
            Death::Sigkill { acks: rng.random_range(1..12), delay_us: rng.random_range(0..400) };
        let (_, acks) = run_child("feed::child", &dir, seed ^ kill, &[], death);
        let last_printed: Lsn = acks.last().and_then(|a| a.trim().parse().ok()).unwrap_or(acked_ok);
        let _open = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
        let store = OrderStore::open(&dir, options()).expect("reopen");
        // The ack in flight (if any) acknowledged at most what the log held.
        acked_ok = check_restart(&store, last_printed, store.last_lsn());
        store.close().expect("close");
    }
    eprintln!(
        "feed kill loop: {kills} SIGKILLs, position {acked_ok}: every printed acknowledgement kept"
    );
}
