//! Simulated power loss at every kind of moment.
//!
//! Each seed runs a random workload (single appends, atomic groups, unsynced writes,
//! explicit syncs, segment rolls) on the simulated disk under `SyncPolicy::Always`, kills
//! it after a random number of storage operations (mid-append, mid-sync, mid-roll,
//! mid-segment-creation), then cuts the power: every unsynced write is dropped, kept,
//! torn or garbled, and unsynced directory entries may vanish. Recovery must then open
//! the log, return every acknowledged frame, return no frame that was not written, keep
//! groups whole, and give the same answer when run again.
//!
//! `ORDERLOG_WAL_POWER_SEEDS=N` runs N seeds (default 1000). A failing seed is printed
//! with the command that replays it alone: `ORDERLOG_WAL_POWER_SEED=S`.

use std::collections::BTreeMap;

use orderlog_wal::storage::SimStorage;
use orderlog_wal::{Lsn, Wal};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::{open_sim, payload, read_all, small_opts};

struct Outcome {
    /// Everything the workload tried to write, by LSN.
    written: BTreeMap<Lsn, Vec<u8>>,
    /// The highest LSN acknowledged durable.
    acked: Lsn,
    /// Groups written (first, last).
    groups: Vec<(Lsn, Lsn)>,
}

fn workload(wal: &Wal, rng: &mut StdRng, seed: u64) -> Outcome {
    let mut out = Outcome { written: BTreeMap::new(), acked: 0, groups: Vec::new() };
    let mut n = 0u64;
    for _ in 0..rng.random_range(1..80) {
        let step = rng.random_range(0..10u8);
        let result = match step {
            0..=4 => {
                let p = payload(seed, n);
                n += 1;
                let next = wal.last_lsn() + 1;
                out.written.insert(next, p.clone());
                wal.append(&p).map(|lsn| out.acked = out.acked.max(lsn))
            }
            5..=6 => {
                // Group frames longer than a sector: a power cut can keep a later one's
                // sectors without an earlier one's payload.
                let g: Vec<Vec<u8>> = (0..rng.random_range(1..5))
                    .map(|i| long_payload(seed, 1000 + n * 8 + i))
                    .collect();
                n += 1;
                let next = wal.last_lsn() + 1;
                out.groups.push((next, next + g.len() as u64 - 1));
                for (i, p) in g.iter().enumerate() {
                    out.written.insert(next + i as u64, p.clone());
                }
                let refs: Vec<&[u8]> = g.iter().map(Vec::as_slice).collect();
                wal.append_batch(&refs).map(|lsns| out.acked = out.acked.max(*lsns.end()))
            }
            7..=8 => {
                let p = payload(seed, n);
                n += 1;
                let next = wal.last_lsn() + 1;
                out.written.insert(next, p.clone());
                wal.write(&[&p]).map(|_| ())
            }
            _ => {
                let last = wal.last_lsn();
                wal.sync().map(|()| out.acked = out.acked.max(last))
            }
        };
        if result.is_err() {
            break;
        }
    }
    out
}

/// A payload of 520 to 900 bytes, so a frame spans two sectors or more.
fn long_payload(seed: u64, n: u64) -> Vec<u8> {
    let mut p = payload(seed, n);
    let len = 520 + (seed ^ n.wrapping_mul(0x9e37_79b9)) % 380;
    p.resize(len as usize, (n as u8) | 1);
    p
}

/// Runs one seed; returns whether recovery had a torn tail to cut.
fn run_seed(seed: u64) -> bool {
    let mut rng = StdRng::seed_from_u64(seed);
    let disk = SimStorage::new("/sim/wal");
    // A history before the crash window: some of it in earlier sessions of the log.
    if rng.random_bool(0.3) {
        let wal = open_sim(&disk, small_opts()).expect("first open");
        for n in 0..rng.random_range(0..30) {
            wal.append(&payload(seed ^ 0xabc, n)).expect("history append");
        }
    }
    let before: Vec<(Lsn, Vec<u8>)> = match open_sim(&disk, small_opts()) {
        Ok(wal) => read_all(&wal).expect("history"),
        Err(e) => panic!("seed {seed}: reopen before crash window failed: {e}"),
    };
    let wal = open_sim(&disk, small_opts()).expect("open");
    disk.crash_after(rng.random_range(0..150));
    let mut out = workload(&wal, &mut rng, seed);
    drop(wal);
    let history_last = before.len() as Lsn;
    for (lsn, p) in before {
        out.written.insert(lsn, p);
    }
    let acked = out.acked.max(history_last);

    let crashed = disk.crash(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let again = crashed.clone_synced();
    let torn = match open_sim(&crashed.clone_synced(), small_opts()) {
        Ok(wal) => wal.recovery_report().truncated.is_some(),
        Err(_) => false,
    };
    let first = recover_and_check(&crashed, &out, acked, seed);
    let second = recover_and_check(&again, &out, acked, seed);
    assert_eq!(first, second, "seed {seed}: two recoveries of one crash differ");
    // Recovering the recovered log changes nothing either.
    let third = recover_and_check(&crashed, &out, acked, seed);
    assert_eq!(first, third, "seed {seed}: recovery is not idempotent");
    torn
}

fn recover_and_check(
    disk: &SimStorage,
    out: &Outcome,
    acked: Lsn,
    seed: u64,
) -> Vec<(Lsn, Vec<u8>)> {
    let wal = match open_sim(disk, small_opts()) {
        Ok(wal) => wal,
        Err(e) => panic!(
            "seed {seed}: recovery failed: {e}\n  replay: ORDERLOG_WAL_POWER_SEED={seed} cargo test --release -p orderlog-wal --test wal power_loss"
        ),
    };
    let got = read_all(&wal).unwrap_or_else(|e| panic!("seed {seed}: reading recovered log: {e}"));
    let replay = format!(
        "replay: ORDERLOG_WAL_POWER_SEED={seed} cargo test --release -p orderlog-wal --test wal power_loss"
    );
    let last = got.last().map_or(0, |f| f.0);
    assert!(
        last >= acked,
        "seed {seed}: acknowledged LSN {acked} lost (log ends at {last})\n  {replay}"
    );
    for (i, (lsn, p)) in got.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1, "seed {seed}: LSNs not contiguous from 1\n  {replay}");
        assert_eq!(
            out.written.get(lsn),
            Some(p),
            "seed {seed}: frame {lsn} was never written\n  {replay}"
        );
    }
    for &(a, b) in &out.groups {
        assert!(!(a <= last && last < b), "seed {seed}: group {a}..={b} cut at {last}\n  {replay}");
    }
    wal.close().expect("close recovered log");
    got
}

#[test]
fn power_loss_never_loses_an_acknowledged_frame() {
    if let Ok(seed) = std::env::var("ORDERLOG_WAL_POWER_SEED") {
        run_seed(seed.parse().expect("ORDERLOG_WAL_POWER_SEED is a number"));
        return;
    }
    let seeds: u64 =
        std::env::var("ORDERLOG_WAL_POWER_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let torn = (0..seeds).filter(|&seed| run_seed(seed)).count() as u64;
    // The campaign must actually produce torn tails, or it proves nothing about them.
    assert!(torn * 20 > seeds, "only {torn} of {seeds} seeds left a torn tail");
    println!("power loss: {seeds} seeds, {torn} with a torn tail cut by recovery");
}

/// A power cut in the middle of `truncate_before`, with the file system free to persist
/// unsynced removals in any order: whatever survives must still read as one log holding
/// every frame at or above the cut. (Removing all the segments and syncing once left, in
/// some orders, an older segment without the one after it: an LSN gap.)
#[test]
fn power_loss_mid_truncation_leaves_one_log() {
    for k in 0..12 {
        for seed in 0..40 {
            let disk = SimStorage::new("/sim/wal");
            let wal = open_sim(&disk, small_opts()).expect("open");
            let mut frames = Vec::new();
            let mut n = 0;
            while wal.segment_bases().len() < 6 {
                let p = payload(seed, n);
                frames.push((wal.append(&p).expect("append"), p));
                n += 1;
            }
            let cut = wal.segment_bases()[4];
            disk.crash_after(k);
            let _ = wal.truncate_before(cut);
            drop(wal);
            let after = disk.crash(seed);
            let wal = open_sim(&after, small_opts())
                .unwrap_or_else(|e| panic!("crash after {k} operations, seed {seed}: {e}"));
            let got = read_all(&wal).expect("read");
            for frame in frames.iter().filter(|f| f.0 >= cut) {
                assert!(got.contains(frame), "k {k} seed {seed}: frame {} lost", frame.0);
            }
        }
    }
}

/// Once writes stop, the checkpoint catches up with the durable end on its own: damage
/// to an acknowledged frame after that is corruption, never a torn tail cut in silence.
/// (Before, the checkpoint trailed by up to 1 MiB or 100 ms of writes for as long as no
/// further sync came, so the first frames of an idle segment had none.)
#[test]
fn power_loss_an_idle_log_checkpoints_what_it_acknowledged() {
    let disk = SimStorage::new("/sim/wal");
    let wal = open_sim(&disk, small_opts()).expect("open");
    for n in 0..3 {
        wal.append(&payload(4, n)).expect("append");
    }
    // Bounded wait for the background checkpoint (it comes about 50 ms after the last
    // sync); only a log that never checkpoints gets to the limit.
    let started = std::time::Instant::now();
    while wal.stats().checkpoint_lsn < 3 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the checkpoint never caught up: {:?}",
            wal.stats()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let image = disk.crash(0);
    drop(wal);
    let name = orderlog_wal::format::segment_file_name(1);
    let mut bytes = image.file_bytes(&name).expect("segment");
    bytes[orderlog_wal::format::FRAMES_OFFSET as usize + 18] ^= 1;
    image.set_file_bytes(&name, bytes);
    match open_sim(&image, small_opts()) {
        Err(e) if e.is_corruption() => {}
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(wal) => panic!(
            "damage to an acknowledged frame was cut as a torn tail: {:?}",
            wal.recovery_report().truncated
        ),
    }
}
