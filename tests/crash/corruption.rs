//! Corruption of synced data: bit flips and zeroed 4 KiB blocks in log segments, snapshot
//! files and the manifest of a store that was closed cleanly (all on the simulated disk).
//!
//! A seeded workload (with compactions, so the store has snapshots and a log tail) runs
//! on the simulated disk and closes. Then each case damages one file of that image, a
//! bit flipped at a random offset or an aligned 4 KiB block zeroed (every block of the
//! written part of each segment; random ones in the other files), and opens the store in
//! each recovery mode:
//! - whatever the mode, an open that succeeds holds exactly the model's state at the LSN
//!   it recovered to: never a wrong, reordered or half-applied event;
//! - `Strict` either recovers everything or fails; it never drops data silently;
//! - `TolerateTornTail` may cut only the log's last frame (damage there is
//!   indistinguishable from a torn write); damage followed by valid frames is reported
//!   as corruption, never taken for a torn tail;
//! - `PointInTime` may stop at the damage, returning a prefix;
//! - damage to a snapshot or the manifest never loses a logged write: the store falls back
//!   to an older snapshot if the log still covers it, or fails;
//! - every failure is an error naming the damaged file.
//!
//! `ORDERLOG_CRASH_FLIPS=N` flips N random bits per file (default 40).

use std::collections::BTreeMap;
use std::sync::Arc;

use orderlog_store::{OrderStore, RecoveryMode};
use orderlog_wal::storage::SimStorage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::env_count;
use crate::power_loss::{End, options, run_ops};
use crate::workload::Workload;

const SEED: u64 = 8;
const OPS: usize = 120;
const BLOCK: usize = 4096;
/// Where a segment's frames start: before it, the header and checkpoint slots, and
/// unused bytes that no reader looks at (damage there is harmless).
const FRAMES_OFFSET: usize = orderlog_wal::format::FRAMES_OFFSET as usize;
const MODES: [RecoveryMode; 3] =
    [RecoveryMode::Strict, RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime];

/// A cleanly closed store's disk image.
struct Base {
    disk: SimStorage,
    last: u64,
}

fn build() -> Base {
    let disk = SimStorage::new("/sim/store");
    let store = open(disk.clone(), RecoveryMode::Strict).expect("open");
    let mut work = Workload::new(SEED);
    let mut acked = 0;
    assert!(matches!(run_ops(&store, &mut work, OPS, None, &mut acked), End::Finished));
    store.close().expect("close");
    drop(store);
    Base { disk: disk.clone_synced(), last: acked }
}

/// Opens the store with segments kept below its snapshots, so the log spans several
/// segments and an older snapshot can stand in for a damaged one.
fn open(disk: SimStorage, mode: RecoveryMode) -> orderlog_store::Result<OrderStore> {
    let mut opts = options();
    opts.wal.recovery_mode = mode;
    opts.compaction.retain_segments = 4;
    OrderStore::open_on(Arc::new(disk), opts)
}

/// Where the damage is, for the checks and the tally.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Place {
    Segment,
    Snapshot,
    Manifest,
}

/// Opens the damaged store in every mode and checks the promises; returns the outcome
/// of each mode for the tally.
fn check(base: &Base, image: &SimStorage, place: Place, file: &str, what: &str) -> Vec<String> {
    let mut outcomes = Vec::new();
    for mode in MODES {
        let context = format!("{what} in {file}, {mode:?}");
        match open(image.clone_synced(), mode) {
            Ok(store) => {
                let last = store.last_lsn();
                assert!(last <= base.last, "{context}: the log grew to {last}");
                let expected = Workload::at(SEED, last);
                assert!(
                    &store.state() == expected.model(),
                    "{context}: state differs from the model at LSN {last}"
                );
                match (place, mode) {
                    (Place::Segment, RecoveryMode::Strict)
                    | (Place::Snapshot | Place::Manifest, _) => {
                        assert_eq!(last, base.last, "{context}: data dropped silently");
                    }
                    (Place::Segment, RecoveryMode::TolerateTornTail) => assert!(
                        last + 1 >= base.last,
                        "{context}: damage before valid frames taken for a torn tail (log cut \
                         to {last} of {})",
                        base.last
                    ),
                    _ => {}
                }
                outcomes.push(if last == base.last {
                    format!("{mode:?}: recovered everything")
                } else {
                    format!("{mode:?}: recovered a prefix")
                });
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(file), "{context}: the error does not name the file: {msg}");
                outcomes.push(format!("{mode:?}: refused"));
            }
        }
    }
    outcomes
}

/// The damages tried on a file of `len` bytes whose written part ends at `used`: every
/// aligned block of it zeroed (or `blocks` random ones), then `flips` random bit flips.
fn damages(
    rng: &mut StdRng,
    len: usize,
    used: usize,
    blocks: Option<usize>,
    flips: u64,
) -> Vec<(usize, u8)> {
    let used = used.min(len);
    let n_blocks = used.div_ceil(BLOCK);
    let mut out: Vec<(usize, u8)> = match blocks {
        None => (0..n_blocks).map(|b| (b * BLOCK, 0)).collect(),
        Some(k) => {
            (0..k.min(n_blocks)).map(|_| (rng.random_range(0..n_blocks) * BLOCK, 0)).collect()
        }
    };
    for _ in 0..flips {
        // Mostly in the written part, sometimes in what follows it.
        let end = (used + BLOCK).min(len).max(1);
        out.push((rng.random_range(0..end), 1 << rng.random_range(0..8)));
    }
    out
}

/// Applies one damage: a zeroed block (`bit == 0`) or a flipped bit.
fn apply(bytes: &mut [u8], (at, bit): (usize, u8)) -> String {
    if bit == 0 {
        let end = (at + BLOCK).min(bytes.len());
        bytes[at..end].fill(0);
        format!("4 KiB zeroed at {at}")
    } else {
        bytes[at] ^= bit;
        format!("bit flipped at {at}")
    }
}

#[test]
fn corruption_is_reported_never_returned_as_data() {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let flips = env_count("ORDERLOG_CRASH_FLIPS", 40);
    let started = std::time::Instant::now();
    let base = build();
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut tally: BTreeMap<(Place, String), u64> = BTreeMap::new();
    let mut cases = 0u64;

    // Log segments: the image copied, one file damaged.
    let segments: Vec<String> = (base.disk.files().into_iter())
        .filter(|n| {
            n.strip_prefix("wal/")
                .is_some_and(|n| orderlog_wal::format::parse_segment_file_name(n).is_some())
        })
        .collect();
    assert!(segments.len() >= 2, "the workload left {} segments", segments.len());
    for name in &segments {
        let clean = base.disk.file_bytes(name).expect("segment bytes");
        let used = clean.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        for damage in damages(&mut rng, clean.len(), used, None, flips) {
            let mut bytes = clean.clone();
            let what = apply(&mut bytes, damage);
            let image = base.disk.clone_synced();
            image.set_file_bytes(name, bytes);
            let region = if damage.0 < FRAMES_OFFSET { "header page" } else { "frames" };
            for o in check(&base, &image, Place::Segment, name, &what) {
                *tally.entry((Place::Segment, format!("{region}, {o}"))).or_default() += 1;
            }
            cases += 1;
        }
    }

    // Snapshot files and the manifest: the image copied, one file damaged.
    let files: Vec<String> = (base.disk.files().into_iter())
        .filter(|n| n.starts_with("snapshots/") && !n.ends_with("/LOCK"))
        .collect();
    assert!(files.iter().any(|p| p.ends_with("/MANIFEST")), "no manifest in {files:?}");
    for name in &files {
        let place = if name.ends_with("/MANIFEST") { Place::Manifest } else { Place::Snapshot };
        let clean = base.disk.file_bytes(name).expect("snapshot file bytes");
        for damage in damages(&mut rng, clean.len(), clean.len(), Some(3), flips / 2) {
            let mut bytes = clean.clone();
            let what = apply(&mut bytes, damage);
            let image = base.disk.clone_synced();
            image.set_file_bytes(name, bytes);
            for o in check(&base, &image, place, name, &what) {
                *tally.entry((place, o)).or_default() += 1;
            }
            cases += 1;
        }
    }
    println!(
        "corruption: {cases} damaged images x {} modes, 0 violations, {:.1?}\n{tally:#?}",
        MODES.len(),
        started.elapsed()
    );
    let refused = |place| tally.iter().any(|((p, o), _)| *p == place && o.ends_with("refused"));
    assert!(refused(Place::Segment), "no segment damage was ever reported");
}
