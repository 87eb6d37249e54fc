//! Power cuts through the real kernel I/O path: the store in a child process on a
//! crash-consistency FUSE mount ([`CrashFs`]), with `FsStorage` and both I/O backends as
//! users run them: page cache, mapped writeback, `msync`, `fdatasync`, `fallocate`,
//! renames and directory syncs.
//!
//! Each round:
//! 1. A child (`kill_loop::child`) runs the seeded workload under one sync policy and
//!    backend, compactions included. It prints `acked <lsn> <durable lsn> <µs since the
//!    epoch>` after each acknowledged write.
//! 2. It dies, one of three ways drawn from the seed: SIGKILL after a number of
//!    acknowledgements; an abort at a named kill point (a segment roll, a snapshot's
//!    publish); or the power goes off under it at its N-th file-system operation
//!    (`CrashFs::cut_power_after`: every step is reachable, not only where a kill lands),
//!    after which it fails and ends.
//! 3. The power is cut: the mount keeps only what was synced (plus seeded torn,
//!    reordered leftovers), the kernel's cached pages die with it, and the image is
//!    mounted again.
//! 4. The parent runs `verify`, reopens the store on the mount, and checks what
//!    survived:
//!    - under `Always`, every acknowledged write;
//!    - under every policy, every LSN the store had reported durable;
//!    - the state equals the reference model at the recovered LSN.
//!
//! The loss window of `Interval` writes is measured and printed. Each store is cut
//! several times in a row, so recovery also runs on recovered stores.
//!
//! `ORDERLOG_POWER_CUTS=N` runs N cuts (default 60, across the six policy × backend
//! cases). The fault tests fail the N-th `fsync`, write or `fallocate` on the mount and
//! check the poison path and a reopen after a failed sync. Without FUSE they are skipped
//! with the reason printed; with `ORDERLOG_REQUIRE_FUSE=1` (CI) that is a failure.

use std::path::Path;
use std::time::Instant;

use orderlog::testing::{CrashFs, FsFault as Fault};
use orderlog_store::{Event, Order, OrderStore, StoreOptions, SyncPolicy};
use orderlog_wal::{IoBackend, KillPoint};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::env_count;
use crate::kill_loop::{
    COMPACT_EVERY_VAR, Death, POWER_OFF_VAR, Tally, check_after_kill, run_child,
};
use crate::kill_writers::{CASE_VAR, CASES, options};

/// Power cuts per store directory.
const CUTS_PER_STORE: u64 = 3;
/// A cut at a file-system operation picks one of the child's first this many (its
/// opening, up to a few dozen commits, a compaction's publish or two).
const OPERATIONS_MAX: u64 = 400;

/// A fresh mount in `tmp`, or `None` where FUSE is unavailable (the test is skipped).
fn mount(tmp: &Path) -> Option<CrashFs> {
    if let Err(e) = CrashFs::check_available() {
        assert!(std::env::var_os("ORDERLOG_REQUIRE_FUSE").is_none(), "{e}");
        eprintln!("skipped: {e}");
        return None;
    }
    std::fs::create_dir(tmp.join("backing")).expect("backing dir");
    std::fs::create_dir(tmp.join("mnt")).expect("mount point");
    let _spawning = crate::SPAWN.write().unwrap_or_else(|p| p.into_inner());
    Some(CrashFs::mount(tmp.join("backing"), tmp.join("mnt")).expect("mount"))
}

/// `fs.power_cut(seed)`: it starts a new daemon process, so it waits for the stores of
/// other tests in this process to be between opens (see `crate::SPAWN`).
fn cut(fs: CrashFs, seed: u64) -> CrashFs {
    let _spawning = crate::SPAWN.write().unwrap_or_else(|p| p.into_inner());
    fs.power_cut(seed).expect("power cut")
}

/// A child that died as `death` and ended by itself (before its last acknowledgement)
/// may only have done so because the power went off under it.
fn assert_ended_by_the_power(fs: &CrashFs, death: Death, acked: usize, context: &str) {
    if let Death::PowerOff { acks, .. } = death
        && acks > acked
    {
        let stats = fs.stats().expect("stats");
        assert!(stats.refused_after_cut > 0, "{context}: the child ended with the power on");
    }
}

/// One acknowledgement line of the child.
struct Ack {
    lsn: u64,
    durable: u64,
    at_us: u64,
}

fn parse_ack(line: &str) -> Ack {
    let f: Vec<u64> = line.split_whitespace().map(|v| v.parse().expect("number")).collect();
    Ack { lsn: f[0], durable: f[1], at_us: f[2] }
}

/// What the campaign saw, per sync policy.
#[derive(Default)]
struct Losses {
    /// Acknowledged writes a cut took.
    lost_acks: u64,
    /// Cuts that took at least one.
    cuts_with_loss: u64,
    /// The longest time between a lost write's acknowledgement and the child's last one.
    window_us: u64,
}

#[test]
fn power_cut_acknowledged_writes_survive_on_the_kernel_path() {
    let cuts = env_count("ORDERLOG_POWER_CUTS", 60);
    let base = env_count("ORDERLOG_POWER_CUT_SEED", 0);
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut losses: [Losses; 3] = Default::default();
    let mut at_points = 0;
    let mut at_operations = 0;
    let mut never_created = 0;
    let mut store_seed = base;
    while tally.kills < cuts {
        let tmp = tempfile::tempdir().expect("tempdir");
        let Some(mut fs) = mount(tmp.path()) else { return };
        let (case, policy, _) = CASES[(store_seed % CASES.len() as u64) as usize];
        let mut rng = StdRng::seed_from_u64(store_seed);
        // What the previous round's recovery found: durable since, whatever comes next.
        let mut recovered_before = 0;
        for round in 0..CUTS_PER_STORE.min(cuts - tally.kills) {
            let dir = fs.path().join("store");
            // A third of the deaths at a named point (a roll, a publish, a segment
            // deletion), a third at a file-system operation (any step, such as between
            // two syncs of a publish), a third at a moment.
            let kind = rng.random_range(0..3u8);
            let death = if kind == 0 {
                at_points += 1;
                // Under `Never` no commit syncs: a sync's point may never come.
                let points: Vec<KillPoint> = KillPoint::ALL
                    .into_iter()
                    .filter(|&p| policy != SyncPolicy::Never || p != KillPoint::SyncDone)
                    .collect();
                let point = points[rng.random_range(0..points.len())];
                Death::At { point, nth: rng.random_range(1..=3) }
            } else if kind == 1 {
                at_operations += 1;
                fs.cut_power_after(rng.random_range(1..=OPERATIONS_MAX)).expect("arm the cut");
                Death::PowerOff { acks: rng.random_range(1..=120), delay_us: 0 }
            } else {
                Death::Sigkill {
                    acks: rng.random_range(1..=120),
                    delay_us: rng.random_range(0..300),
                }
            };
            let mut env = vec![(CASE_VAR, case.to_string())];
            if matches!(death, Death::PowerOff { .. }) {
                env.push((POWER_OFF_VAR, "1".to_string()));
            }
            let (_, acked) = run_child("kill_loop::child", &dir, store_seed, &env, death);
            let acks: Vec<Ack> = acked.iter().map(|a| parse_ack(a)).collect();
            let cut_seed = rng.random::<u64>();
            assert_ended_by_the_power(&fs, death, acked.len(), case);
            fs = cut(fs, cut_seed);
            let context = format!(
                "{case}, store seed {store_seed} round {round}, {death:?}, cut seed {cut_seed} \
                 (ORDERLOG_POWER_CUT_SEED={base})"
            );
            let durable = acks.iter().map(|a| a.durable).max().unwrap_or(0);
            let must_hold = match policy {
                SyncPolicy::Always => acks.last().map_or(0, |a| a.lsn).max(durable),
                _ => durable,
            }
            .max(recovered_before);
            if !dir.join("wal").exists() {
                // The power went off while the first open was creating the store: no
                // directory of it became durable, and nothing was acknowledged.
                assert_eq!(must_hold, 0, "{context}: the store's directory is gone");
                tally.kills += 1;
                never_created += 1;
                continue;
            }
            let recovered = {
                let _open = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
                check_after_kill(&dir, store_seed, must_hold, &context, &mut tally)
            };
            recovered_before = recovered;
            let lost: Vec<&Ack> = acks.iter().filter(|a| a.lsn > recovered).collect();
            if let (Some(first), Some(last)) = (lost.first(), acks.last()) {
                let l = &mut losses[policy_index(policy)];
                l.lost_acks += lost.len() as u64;
                l.cuts_with_loss += 1;
                l.window_us = l.window_us.max(last.at_us.saturating_sub(first.at_us));
            }
        }
        store_seed += 1;
    }
    println!(
        "power_cut: {} cuts ({at_points} at named kill points, {at_operations} at file-system \
         operations; {never_created} before the store's first directory was durable); {} kept \
         unacknowledged writes, {} recovered from a snapshot, {} cut a torn tail; {:.1?}",
        tally.kills,
        tally.unacked_survived,
        tally.from_snapshot,
        tally.torn,
        started.elapsed()
    );
    for (name, l) in ["always", "interval(2ms)", "never"].iter().zip(&losses) {
        println!(
            "power_cut: {name}: {} acknowledged writes lost in {} cuts; longest loss window {} µs",
            l.lost_acks, l.cuts_with_loss, l.window_us
        );
    }
}

/// The power goes off at every file-system operation, one after another, of the same
/// seeded workload's first commits and compactions: every step of every roll and publish
/// is reached (between a rename and a sync, between two syncs), where a kill lands only
/// where timing lets it. Both backends under `Always`; `ORDERLOG_POWER_CUT_SWEEP=N`
/// sweeps the first N operations (default 160).
#[test]
fn power_cut_sweep_every_file_system_operation() {
    let last_op = env_count("ORDERLOG_POWER_CUT_SWEEP", 160);
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut failed_alone = 0;
    let mut never_created = 0;
    for case in ["always-pwrite", "always-mmap"] {
        for op in 1..=last_op {
            let tmp = tempfile::tempdir().expect("tempdir");
            let Some(fs) = mount(tmp.path()) else { return };
            let dir = fs.path().join("store");
            fs.cut_power_after(op).expect("arm the cut");
            // Killed after 60 acknowledgements if the cut comes later than that.
            let death = Death::PowerOff { acks: 60, delay_us: 0 };
            let env = [
                (CASE_VAR, case.to_string()),
                (COMPACT_EVERY_VAR, "6".to_string()),
                (POWER_OFF_VAR, "1".to_string()),
            ];
            let (_, acked) = run_child("kill_loop::child", &dir, SWEEP_SEED, &env, death);
            failed_alone += u64::from(acked.len() < 60);
            let must_hold = acked.last().map_or(0, |a| parse_ack(a).lsn);
            assert_ended_by_the_power(&fs, death, acked.len(), &format!("{case}, operation {op}"));
            let fs = cut(fs, op);
            if !dir.join("wal").exists() {
                assert_eq!(must_hold, 0, "{case}, operation {op}: the store's directory is gone");
                never_created += 1;
                continue;
            }
            let context = format!("{case}, power off at file-system operation {op}");
            {
                let _open = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
                check_after_kill(&dir, SWEEP_SEED, must_hold, &context, &mut tally);
            }
            drop(fs);
        }
    }
    println!(
        "power_cut sweep: {} runs, the power off at each of operations 1..={last_op} of both \
         backends; {never_created} before the store's first directory was durable, {} killed \
         after 60 acknowledgements (the cut still ahead); {} recovered from a snapshot, {} cut \
         a torn tail; {:.1?}",
        2 * last_op,
        2 * last_op - failed_alone,
        tally.from_snapshot,
        tally.torn,
        started.elapsed()
    );
}

/// The sweep's workload.
const SWEEP_SEED: u64 = 21;

fn policy_index(policy: SyncPolicy) -> usize {
    match policy {
        SyncPolicy::Always => 0,
        SyncPolicy::Interval(_) => 1,
        _ => 2,
    }
}

/// Options for the in-process fault tests: the log's syncs are every commit's.
fn fault_options(backend: IoBackend) -> StoreOptions {
    let mut options =
        options(if backend == IoBackend::Mmap { "always-mmap" } else { "always-pwrite" });
    options.wal.sync_policy = SyncPolicy::Always;
    options
}

fn order(id: u64) -> Event {
    Event::create(
        Order::builder(id)
            .customer(id % 11)
            .product(id % 5)
            .quantity(1)
            .unit_price(4.25)
            .build()
            .expect("valid"),
    )
    .stamped(id)
}

/// Writes batches of 8 new orders from `next` until one fails or `limit` orders were
/// acknowledged; returns the acknowledged ids and the error, if any.
fn write_until_error(
    store: &OrderStore,
    next: u64,
    limit: u64,
) -> (Vec<u64>, Option<orderlog_store::StoreError>) {
    let mut acked = Vec::new();
    let mut id = next;
    while (acked.len() as u64) < limit {
        let batch: Vec<Event> = (id..id + 8).map(order).collect();
        match store.apply_batch(&batch) {
            Ok(_) => acked.extend(id..id + 8),
            Err(e) => return (acked, Some(e)),
        }
        id += 8;
    }
    (acked, None)
}

fn assert_holds(store: &OrderStore, acked: &[u64], context: &str) {
    for &id in acked {
        assert!(store.get(id).is_some(), "{context}: acknowledged order {id} lost");
    }
}

/// A failed `fsync`/`msync` of a segment on the kernel path poisons the log; a store
/// reopened on the same mount (the kernel still caching the failed pages) must not
/// take them for durable, and what it acknowledges next survives a power cut.
#[test]
fn power_cut_failed_sync_poisons_and_reopen_reads_past_the_cache() {
    for backend in [IoBackend::Mmap, IoBackend::Pwrite] {
        for nth in [2, 9] {
            let context = format!("{backend:?}, fsync #{nth} of a segment fails");
            let tmp = tempfile::tempdir().expect("tempdir");
            let Some(fs) = mount(tmp.path()) else { return };
            let dir = fs.path().join("store");
            let open = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
            let store = OrderStore::open(&dir, fault_options(backend)).expect("open");
            fs.inject(Fault::eio_on_fsync(nth).on_names_containing(".wal")).expect("inject");
            let (mut acked, err) = write_until_error(&store, 1, 10_000);
            assert!(err.is_some(), "{context}: the fault never hit a commit");
            assert_eq!(fs.faults_fired().expect("fired"), 1, "{context}");
            let again = store.apply(order(1_000_000));
            assert!(again.is_err(), "{context}: a poisoned log accepted a write: {again:?}");
            let durable_before = store.durable_lsn();
            drop(store);
            fs.clear_faults().expect("clear");

            let store = OrderStore::open(&dir, fault_options(backend)).expect("reopen");
            assert_eq!(
                store.last_lsn(),
                durable_before,
                "{context}: the reopened log holds frames whose sync failed"
            );
            assert_holds(&store, &acked, &context);
            let (more, err) = write_until_error(&store, 500_000, 200);
            assert!(err.is_none(), "{context}: after reopening: {err:?}");
            acked.extend(more);
            drop((store, open));
            let fs = cut(fs, nth);
            let _open = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
            let store =
                OrderStore::open(fs.path().join("store"), fault_options(backend)).expect("recover");
            assert_holds(&store, &acked, &format!("{context}, after the power cut"));
        }
    }
}

/// A failed write (`pwrite`, or the mapping's writeback that `msync` reports) and a full
/// disk at `fallocate`: the commit fails with a typed error, nothing acknowledged is lost.
#[test]
fn power_cut_failed_write_or_full_disk_loses_nothing_acknowledged() {
    let cases = [
        (IoBackend::Pwrite, Fault::eio_on_write(5).on_names_containing(".wal")),
        (IoBackend::Mmap, Fault::eio_on_write(5).on_names_containing(".wal")),
        (IoBackend::Mmap, Fault::enospc_on_fallocate(2).on_names_containing(".wal").persistent()),
    ];
    for (backend, fault) in cases {
        let context = format!("{backend:?}, {fault:?}");
        let tmp = tempfile::tempdir().expect("tempdir");
        let Some(fs) = mount(tmp.path()) else { return };
        let dir = fs.path().join("store");
        let open = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
        let store = OrderStore::open(&dir, fault_options(backend)).expect("open");
        fs.inject(fault).expect("inject");
        let (acked, err) = write_until_error(&store, 1, 20_000);
        let err = err.unwrap_or_else(|| panic!("{context}: the fault never failed a commit"));
        assert!(fs.faults_fired().expect("fired") >= 1, "{context}");
        let message = err.to_string();
        drop((store, open));
        let fs = cut(fs, 3);
        let _open = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
        let store = OrderStore::open(fs.path().join("store"), fault_options(backend))
            .unwrap_or_else(|e| panic!("{context}: recovery after `{message}`: {e}"));
        assert_holds(&store, &acked, &context);
    }
}
