//! I/O errors under the whole store: the N-th storage operation fails, once or from then
//! on, for every N in a range, counting every operation or only syncs, writes or file
//! creations.
//!
//! Each case opens an `OrderStore` on the simulated disk, injects the fault and runs a
//! seeded workload (`workload`) until a write or a compaction fails. Then: the log must
//! report nothing durable beyond the last acknowledged write; a failed write or sync must
//! leave the log poisoned (the next write is refused, never retried into success); and
//! after a power cut and a restart with the fault gone, every acknowledged write must be
//! there and the state must equal the reference model at the recovered LSN.
//!
//! `ORDERLOG_CRASH_FAULTS=N` runs N values of the failing operation's index per target and
//! mode (default 60: 480 cases).

use orderlog_store::{Event, Order, StoreError};
use orderlog_wal::WalError;
use orderlog_wal::storage::SimStorage;
use orderlog_wal::storage::sim::{Fault, FaultKind, FaultTarget};

use crate::env_count;
use crate::power_loss::{End, open, run_ops};
use crate::workload::Workload;

const TARGETS: [FaultTarget; 4] =
    [FaultTarget::Any, FaultTarget::Sync, FaultTarget::Write, FaultTarget::Create];

/// Runs one case; panics on a violation. Returns true if the fault fired mid-workload.
fn run_case(target: FaultTarget, nth: u64, persistent: bool) -> bool {
    let _no_spawn = crate::SPAWN.read().unwrap_or_else(|p| p.into_inner());
    let seed = nth * 31 + u64::from(persistent);
    let disk = SimStorage::new("/sim/store");
    let store = open(&disk).expect("open");
    disk.inject(Fault { target, nth, kind: FaultKind::Io, persistent });
    let mut work = Workload::new(seed);
    let mut acked = 0u64;
    let end = run_ops(&store, &mut work, 150, None, &mut acked);
    let fired = disk.fault_fired();
    assert!(
        store.durable_lsn() <= work.lsn(),
        "durable LSN {} beyond the last write tried",
        store.durable_lsn()
    );
    let mut extra_acked = false;
    if matches!(end, End::Died) {
        // Nothing written but not acknowledged is ever reported durable.
        assert!(
            store.durable_lsn() <= acked,
            "durable LSN {} beyond the last acknowledged {acked} after {target:?} #{nth}",
            store.durable_lsn()
        );
        // Once a write or sync failed, nothing more is acknowledged: the log is poisoned.
        let next = store.apply(Event::create(
            Order::builder(u64::MAX - 1)
                .customer(1)
                .product(1)
                .quantity(1)
                .unit_price(1.0)
                .build()
                .unwrap(),
        ));
        if let Err(StoreError::Wal(WalError::Poisoned { .. })) = next {
        } else if let Err(StoreError::Wal(WalError::Io { .. })) = next {
            assert!(persistent, "a one-off fault must poison, not fail again: {next:?}");
        } else {
            // A failed compaction (it does not poison the log) may let writes go on.
            assert!(next.is_ok() || !fired, "after {target:?} #{nth}: {next:?}");
            extra_acked = next.is_ok();
        }
    }
    let tried = work.lsn() + 1;
    drop(store);
    disk.clear_fault();
    let disk = disk.crash(seed);
    let store = open(&disk).expect("recovery after the fault");
    let last = store.last_lsn();
    assert!(last >= acked, "acknowledged LSN {acked} lost after {target:?} #{nth}");
    assert!(last <= tried, "the log ends at {last}, after the writes tried");
    let expected = Workload::at(seed, last);
    assert!(!extra_acked || store.get(u64::MAX - 1).is_some(), "an acknowledged write was lost");
    if store.get(u64::MAX - 1).is_none() {
        assert!(&store.state() == expected.model(), "state differs from the model at LSN {last}");
    }
    fired && matches!(end, End::Died)
}

#[test]
fn io_errors_never_lose_or_invent_an_acknowledged_write() {
    let faults = env_count("ORDERLOG_CRASH_FAULTS", 60);
    let (mut cases, mut mid) = (0u64, 0u64);
    for target in TARGETS {
        for persistent in [false, true] {
            for nth in 0..faults {
                let outcome = std::panic::catch_unwind(|| run_case(target, nth, persistent));
                match outcome {
                    Ok(died) => mid += u64::from(died),
                    Err(_) => panic!(
                        "{target:?} #{nth} (persistent: {persistent}) failed; replay with \
                         ORDERLOG_CRASH_FAULTS={} cargo test --release --test crash io_errors",
                        nth + 1
                    ),
                }
                cases += 1;
            }
        }
    }
    eprintln!("io_errors: {cases} cases, {mid} failed mid-workload, 0 violations");
    // The default range fires most faults mid-workload; larger ranges add later ones.
    assert!(mid >= cases.min(480) / 2, "too few faults fired mid-workload: {mid} of {cases}");
}
