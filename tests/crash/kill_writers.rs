//! Process crashes with concurrent writers: four threads of a child process commit
//! batches, each to orders of its own, while a fifth compacts, under every sync policy
//! and both I/O backends; the parent SIGKILLs the child at a random moment.
//!
//! Writer `w`'s batch `j` creates order `id(w, j)` and confirms order `id(w, j - 1)`; the
//! child prints `acked <w> <j>` once `apply_batch` returned. After each kill the parent
//! runs `verify`, reopens the store and checks, for each writer: its orders are exactly
//! `id(w, 0..k)` for some `k` (no gap: the log keeps each writer's batches in its order,
//! whatever the interleaving with the others), all confirmed at version 2 but the last,
//! pending at version 1 (each batch applied whole), and `k` covers every batch
//! acknowledged and at most one more (the one in flight). A process crash keeps the page
//! cache, so this holds under every policy: `Interval` and `Never` lose nothing to a
//! SIGKILL, only to a power cut (`power_loss`). Each store is killed several times in a
//! row; the child resumes each writer where the recovered store ends.
//!
//! `ORDERLOG_CRASH_WRITER_KILLS=N` runs N kills (default 60).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use orderlog_snapshot::SnapshotStore;
use orderlog_store::{
    CompactionOptions, Event, Order, OrderStatus, OrderStore, StoreOptions, SyncPolicy, WalOptions,
};
use orderlog_wal::options::SEGMENT_BYTES_MIN;
use orderlog_wal::{IoBackend, KillPoint, verify_log};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::env_count;
use crate::kill_loop::{CHILD_DIR, Death, run_child};

const WRITERS: u64 = 4;
/// Kills per store directory.
const KILLS_PER_STORE: u64 = 3;
/// The child's policy and backend: a name of [`CASES`].
pub(crate) const CASE_VAR: &str = "ORDERLOG_CRASH_CHILD_CASE";

/// The order writer `w` creates in its batch `j`.
fn id(w: u64, j: u64) -> u64 {
    ((w + 1) << 40) + j
}

/// The sync policies and backends the kills cycle through.
pub(crate) const CASES: [(&str, SyncPolicy, IoBackend); 6] = [
    ("always-mmap", SyncPolicy::Always, IoBackend::Mmap),
    ("always-pwrite", SyncPolicy::Always, IoBackend::Pwrite),
    ("interval-mmap", SyncPolicy::Interval(Duration::from_millis(2)), IoBackend::Mmap),
    ("interval-pwrite", SyncPolicy::Interval(Duration::from_millis(2)), IoBackend::Pwrite),
    ("never-mmap", SyncPolicy::Never, IoBackend::Mmap),
    ("never-pwrite", SyncPolicy::Never, IoBackend::Pwrite),
];

pub(crate) fn options(case: &str) -> StoreOptions {
    let (_, policy, backend) =
        CASES.iter().find(|(name, ..)| *name == case).copied().expect("a known case");
    StoreOptions {
        wal: WalOptions {
            segment_bytes: SEGMENT_BYTES_MIN * 4,
            sync_policy: policy,
            io_backend: Some(backend),
            ..WalOptions::default()
        },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        ..StoreOptions::default()
    }
}

/// How many batches of writer `w` the store holds: the `k` with `id(w, 0..k)` present.
fn batches_held(store: &OrderStore, w: u64) -> u64 {
    let mut k = 0;
    while store.get(id(w, k)).is_some() {
        k += 1;
    }
    k
}

/// The child's side: four writers and a compactor, until killed.
#[test]
#[ignore = "the child process of kill_writers_acknowledged_batches_survive_sigkill"]
fn child() {
    let (Ok(dir), Ok(case)) = (std::env::var(CHILD_DIR), std::env::var(CASE_VAR)) else {
        return;
    };
    let store = OrderStore::open(&dir, options(&case)).expect("child: open");
    let out = std::sync::Mutex::new(std::io::stdout());
    let say = |line: String| {
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(out, "{line}").expect("stdout");
        out.flush().expect("flush");
    };
    say(format!("opened {}", store.last_lsn()));
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (store, say) = (&store, &say);
            s.spawn(move || {
                for j in batches_held(store, w).. {
                    let create = Event::create(
                        Order::builder(id(w, j))
                            .customer(w)
                            .product(j)
                            .quantity(1)
                            .unit_price(1.0)
                            .build()
                            .unwrap(),
                    )
                    .stamped(j);
                    let mut batch = vec![create];
                    if j > 0 {
                        batch.push(Event::set_status(id(w, j - 1), OrderStatus::Confirmed));
                    }
                    store.apply_batch(&batch).expect("child: apply");
                    say(format!("acked {w} {j}"));
                }
            });
        }
        s.spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(20));
                store.compact().expect("child: compact");
            }
        });
    });
}

/// Checks the store in `dir` after a kill; `acked[w]` is the last batch writer `w` had
/// acknowledged (`None`: none since the store was created). Returns the batches held per
/// writer, and whether the store opened from a snapshot.
fn check_after_kill(
    dir: &Path,
    case: &str,
    acked: &[Option<u64>],
    context: &str,
) -> (Vec<u64>, bool) {
    let log = verify_log(dir.join("wal")).expect("verify the log");
    assert!(!log.is_corrupt(), "{context}: verify finds the log corrupt: {:?}", log.findings);
    let snapshots = SnapshotStore::open_read_only(dir.join("snapshots"));
    for info in snapshots.list().expect("list snapshots") {
        snapshots.verify(&info).unwrap_or_else(|e| panic!("{context}: snapshot damaged: {e}"));
    }
    let store = OrderStore::open(dir, options(case)).expect("reopen after the kill");
    let mut held = Vec::new();
    let mut total = 0;
    for (w, acked) in (0..WRITERS).zip(acked) {
        let k = batches_held(&store, w);
        let least = acked.map_or(0, |j| j + 1);
        assert!(k >= least, "{context}: writer {w} acknowledged batch {acked:?}, store holds {k}");
        assert!(k <= least + 1, "{context}: writer {w} holds {k} batches, acknowledged {acked:?}");
        for j in 0..k {
            let (order, version) = store.get_versioned(id(w, j)).expect("held");
            let want =
                if j + 1 < k { (OrderStatus::Confirmed, 2) } else { (OrderStatus::Pending, 1) };
            assert_eq!((order.status, version), want, "{context}: writer {w}, batch {j} of {k}");
        }
        held.push(k);
        total += k;
    }
    // Nothing else: no order of a batch beyond `k` (a gap) and no order from nowhere.
    assert_eq!(store.len() as u64, total, "{context}: orders beyond the writers' batches");
    (held, store.open_report().snapshot_lsn > 0)
}

/// Folds the child's `<w> <j>` acknowledgements into the last batch acknowledged per
/// writer.
fn record_acks(lines: &[String], acked: &mut [Option<u64>]) {
    for line in lines {
        let (w, j) = line.split_once(' ').expect("acked <w> <j>");
        let (w, j): (usize, u64) = (w.parse().expect("w"), j.parse().expect("j"));
        acked[w] = acked[w].max(Some(j));
    }
}

/// Every named kill point, at its first and second passage (`ORDERLOG_KILL_PASSAGES`
/// widens it), with the four writers and the compactor under `Always` (odd passages on
/// the mapped backend, even ones on `Pwrite`): the child aborts there and the store must
/// recover as after any kill.
#[test]
fn kill_writers_at_every_named_point() {
    let passages = env_count("ORDERLOG_KILL_PASSAGES", 2);
    let started = Instant::now();
    let mut kills = 0;
    for point in KillPoint::ALL {
        for nth in 1..=passages {
            let backend = if nth % 2 == 1 { "mmap" } else { "pwrite" };
            let name = format!("always-{backend}");
            let env = [(CASE_VAR, name.clone())];
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("store");
            let (_, lines) =
                run_child("kill_writers::child", &dir, nth, &env, Death::At { point, nth });
            // A point passed while opening kills the child before its first write.
            let mut acked = vec![None; WRITERS as usize];
            record_acks(&lines, &mut acked);
            check_after_kill(&dir, &name, &acked, &format!("{point}@{nth} ({name})"));
            kills += 1;
        }
    }
    println!(
        "kill_writers_points: {} points x {passages} passages, {kills} kills of {WRITERS} \
         writers and a compactor, 0 violations; {:.1?}",
        KillPoint::ALL.len(),
        started.elapsed()
    );
}

#[test]
fn kill_writers_acknowledged_batches_survive_sigkill() {
    let kills = env_count("ORDERLOG_CRASH_WRITER_KILLS", 60);
    let started = Instant::now();
    let (mut done, mut in_flight_kept, mut from_snapshot, mut store_seed) = (0u64, 0, 0, 0u64);
    while done < kills {
        let (name, ..) = CASES[(store_seed % CASES.len() as u64) as usize];
        let env = [(CASE_VAR, name.to_string())];
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        let mut rng = StdRng::seed_from_u64(store_seed);
        let mut acked: Vec<Option<u64>> = vec![None; WRITERS as usize];
        for round in 0..KILLS_PER_STORE.min(kills - done) {
            let death = Death::Sigkill {
                acks: rng.random_range(1..=400),
                delay_us: rng.random_range(0..300),
            };
            let (opened, lines) = run_child("kill_writers::child", &dir, store_seed, &env, death);
            let context = format!("{name}, store {store_seed}, round {round}");
            assert!(opened.is_some(), "{context}: the child died while opening");
            record_acks(&lines, &mut acked);
            let (held, snapshot) = check_after_kill(&dir, name, &acked, &context);
            from_snapshot += u64::from(snapshot);
            in_flight_kept +=
                held.iter().zip(&acked).filter(|(k, a)| **k > a.map_or(0, |j| j + 1)).count()
                    as u64;
            // The next child resumes from what the store holds.
            for (a, k) in acked.iter_mut().zip(&held) {
                *a = k.checked_sub(1);
            }
            done += 1;
        }
        store_seed += 1;
    }
    println!(
        "kill_writers: {done} kills of {WRITERS} writers and a compactor over {} policy and \
         backend pairs; {from_snapshot} reopened from a snapshot; {in_flight_kept} writers \
         kept a batch in flight; {:.1?}",
        CASES.len(),
        started.elapsed()
    );
}
