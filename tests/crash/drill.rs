//! Disaster drill: a store in a child process writes under load (two writer threads,
//! background compaction) with shipping on to an S3 server on loopback, every 100 ms.
//! It is SIGKILLed at a random moment, its directory deleted, and the store restored
//! from the bucket, which opens and verifies. Every order whose LSN the shipper had
//! reported shipped before the loss is in it (exact, whatever the machine's load), and
//! every order acknowledged more than 1 s before the loss (ten intervals: a margin for a
//! loaded machine; the oldest missing one measured is printed, about one interval).
//!
//! `ORDERLOG_DRILLS=N` runs N drills (default 2), `ORDERLOG_DRILL_SEED` seeds them.

use std::time::Duration;

use orderlog::ship::shipper::now_ms;
use orderlog_s3_server::S3Server;
use orderlog_store::replication::{RestorePoint, restore};
use orderlog_store::{
    CompactionOptions, Event, Order, OrderStore, ReplicationOptions, StoreOptions, WalOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::env_count;
use crate::kill_loop::{Death, run_child};

const URL_VAR: &str = "ORDERLOG_DRILL_URL";
/// The shipping interval of the drill's store.
const INTERVAL: Duration = Duration::from_millis(100);
/// Beyond this age an acknowledged order must be in the backup, however loaded the
/// machine (the age measured is about one interval; see the printed figure).
const RPO_BOUND: Duration = Duration::from_secs(1);

fn options(url: String) -> StoreOptions {
    let mut replication = ReplicationOptions::new(url).with_interval(INTERVAL);
    // The endpoint and credentials come from the environment (`AWS_*`), as in a service.
    replication.request_timeout = Duration::from_secs(10);
    StoreOptions {
        wal: WalOptions { segment_bytes: 1 << 20, ..WalOptions::default() },
        compaction: CompactionOptions {
            wal_bytes_trigger: 2 << 20,
            interval: Duration::from_millis(200),
            ..CompactionOptions::default()
        },
        replication: Some(replication),
        ..StoreOptions::default()
    }
}

/// The child: two writers creating orders, printing `acked <id> <ms> <lsn> <shipped>`
/// once each create is acknowledged (durable), with the LSN the shipper reports
/// shipped at that moment.
#[test]
#[ignore = "the child process of the disaster drill"]
fn child() {
    let Ok(dir) = std::env::var(crate::kill_loop::CHILD_DIR) else { return };
    let url = std::env::var(URL_VAR).expect("the bucket's URL");
    let store = OrderStore::open(&dir, options(url)).expect("open");
    println!("opened {}", store.last_lsn());
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for k in 0.. {
                    let id = w + 2 * k + 1;
                    let order =
                        Order::builder(id).customer(id % 13).product(7).quantity(1).unit_price(3.0);
                    let events: Vec<Event> = vec![Event::create(order.build().expect("order"))];
                    let lsn = store.apply_batch(&events).expect("write");
                    let shipped = store.stats().replication.map_or(0, |r| r.shipped_lsn);
                    println!("acked {id} {} {lsn} {shipped}", now_ms());
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
}

#[test]
fn disaster_drill_restores_every_order_acknowledged_before_the_last_interval() {
    let drills = env_count("ORDERLOG_DRILLS", 2);
    let seed = env_count("ORDERLOG_DRILL_SEED", 0xd1);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut worst_missing_age_ms = 0;
    for drill in 0..drills {
        let tmp = tempfile::tempdir().expect("dir");
        let server = S3Server::start(&tmp.path().join("s3"), "drill").expect("S3 server");
        let url = format!("{}/drill-{drill}", server.url());
        let dir = tmp.path().join("store");
        let mut env: Vec<(&str, String)> = vec![(URL_VAR, url.clone())];
        let vars = server.env();
        env.extend(vars.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let acks = rng.random_range(4_000..12_000);
        let death = Death::Sigkill { acks, delay_us: rng.random_range(0..2_000) };
        let (_, acked) = run_child("drill::child", &dir, seed ^ drill, &env, death);
        let lost_ms = now_ms();
        // The disaster: the machine's disk is gone.
        std::fs::remove_dir_all(&dir).expect("delete the store");
        let out = tmp.path().join("restored");
        let options: Vec<(String, String)> = server.client_options();
        let restored =
            restore(&url, &options, &out, RestorePoint::Latest, |_, _| {}).expect("restore");
        let store =
            OrderStore::open(&out, StoreOptions::default()).expect("the restored store opens");
        let bound = RPO_BOUND.as_millis() as u64;
        let field = |line: &String, i: usize| -> u64 {
            line.split_whitespace().nth(i).and_then(|p| p.parse().ok()).expect("a number")
        };
        let shipped = acked.iter().map(|line| field(line, 3)).max().unwrap_or(0);
        assert!(shipped > 0, "drill {drill}: nothing was reported shipped");
        let mut missing = 0;
        for line in &acked {
            let (id, at, lsn) = (field(line, 0), field(line, 1), field(line, 2));
            if store.get(id).is_none() {
                missing += 1;
                let age = lost_ms.saturating_sub(at);
                worst_missing_age_ms = worst_missing_age_ms.max(age);
                assert!(
                    lsn > shipped,
                    "drill {drill}: order {id} at LSN {lsn} is not in the backup, which the shipper said held LSN {shipped}"
                );
                assert!(
                    age <= bound,
                    "drill {drill}: order {id}, acknowledged {age} ms before the loss, is not in the backup"
                );
            }
        }
        store.close().expect("close");
        drop(store);
        let verification = orderlog::wal::verify_log(out.join("wal")).expect("verify");
        assert!(!verification.is_corrupt(), "{:?}", verification.findings);
        eprintln!(
            "drill {drill}: {} acknowledged, {missing} not in the backup (all after LSN {shipped}, reported shipped, and within {bound} ms of the loss), restored to LSN {}",
            acked.len(),
            restored.last_lsn
        );
    }
    eprintln!(
        "disaster drills: {drills}; the oldest acknowledgement missing was {worst_missing_age_ms} ms before the loss"
    );
}
