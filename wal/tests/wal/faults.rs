//! Injected I/O faults: a failed sync poisons the log; a full disk on segment creation
//! is a clear error that leaves the log readable and writable once space returns.

use orderlog_wal::storage::SimStorage;
use orderlog_wal::storage::sim::{Fault, FaultKind, FaultTarget};
use orderlog_wal::{Lsn, WalError};

use crate::support::{open_sim, payload, read_all, small_opts};

#[test]
fn faults_failed_sync_poisons_and_nothing_later_is_acknowledged() {
    let mut poisoned_runs = 0;
    for nth in 0..8 {
        let disk = SimStorage::new("/sim/wal");
        let wal = open_sim(&disk, small_opts()).expect("open");
        disk.inject(Fault {
            target: FaultTarget::Sync,
            nth,
            kind: FaultKind::Io,
            persistent: false,
        });
        let mut acked: Vec<Lsn> = Vec::new();
        let mut failed_at = None;
        for n in 0..40 {
            match wal.append(&payload(5, n)) {
                Ok(lsn) => {
                    assert!(
                        failed_at.is_none(),
                        "nth {nth}: acknowledged LSN {lsn} after a failed sync"
                    );
                    acked.push(lsn);
                }
                Err(WalError::Poisoned { .. }) => {
                    assert!(failed_at.is_some(), "poisoned before any failure")
                }
                Err(e) => {
                    assert!(failed_at.is_none(), "second non-poison error {e}");
                    failed_at = Some(n);
                }
            }
        }
        if failed_at.is_none() {
            // The failed sync was the spare segment's, made ahead of need: no frame was
            // at stake, so the log goes on, counts it, and makes its next segment in line.
            assert_eq!(wal.stats().spare_failures, 1, "nth {nth}: the fault never fired");
            continue;
        }
        poisoned_runs += 1;
        assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
        assert!(matches!(wal.append_batch(&[b"x"]), Err(WalError::Poisoned { .. })));
        assert!(wal.durable_lsn() <= acked.last().copied().unwrap_or(0));
        drop(wal);
        // Reopening recovers: the fault is gone (it fired once) and every acked frame is there.
        let wal = open_sim(&disk, small_opts()).expect("reopen after poison");
        let got = read_all(&wal).expect("read");
        assert!(got.len() >= acked.len(), "nth {nth}: acknowledged frames lost");
        let fresh = wal.append(b"fresh start").expect("append after reopen");
        acked.push(fresh);
        drop(wal);
        // The frames whose sync failed never reached the disk, though the cache still
        // serves them; whatever the reopen acknowledged must survive a power cut anyway.
        for seed in 0..20 {
            let after = disk.crash(seed);
            let wal = open_sim(&after, small_opts())
                .unwrap_or_else(|e| panic!("nth {nth} seed {seed}: open after power cut: {e}"));
            let got: Vec<Lsn> = read_all(&wal).expect("read").iter().map(|f| f.0).collect();
            for lsn in &acked {
                assert!(got.contains(lsn), "nth {nth} seed {seed}: acknowledged LSN {lsn} lost");
            }
        }
    }
    assert!(poisoned_runs >= 6, "only {poisoned_runs} of 8 faults hit the log's own syncs");
}

/// A failed sync's writes stay readable (the cache serves them) but are not on the disk,
/// and no later sync writes them: a reopen must read past the cache what follows the last
/// checkpoint, or its checkpoint claims them and every write it acknowledges rests on
/// frames a power cut takes away.
#[test]
fn faults_reopen_after_failed_sync_rereads_what_it_cannot_trust() {
    for nth in 0..8 {
        for seed in 0..10 {
            let disk = SimStorage::new("/sim/wal");
            let wal = open_sim(&disk, small_opts()).expect("open");
            let mut acked: Vec<(Lsn, Vec<u8>)> = Vec::new();
            for n in 0..4 {
                acked.push((wal.append(&payload(9, n)).expect("append"), payload(9, n)));
            }
            disk.inject(Fault {
                target: FaultTarget::Sync,
                nth,
                kind: FaultKind::Io,
                persistent: false,
            });
            let mut n = 4;
            while let Ok(lsn) = wal.append(&payload(9, n)) {
                acked.push((lsn, payload(9, n)));
                n += 1;
                assert!(n < 200, "nth {nth}: the fault never fired");
            }
            drop(wal);
            let wal = open_sim(&disk, small_opts()).expect("reopen after a failed sync");
            for k in 0..6 {
                let p = payload(10, k);
                acked.push((wal.append(&p).expect("append after reopen"), p));
            }
            drop(wal);
            let after = disk.crash(seed);
            let wal = open_sim(&after, small_opts())
                .unwrap_or_else(|e| panic!("nth {nth} seed {seed}: open after power cut: {e}"));
            let got = read_all(&wal).expect("read");
            for frame in &acked {
                assert!(got.contains(frame), "nth {nth} seed {seed}: frame {} lost", frame.0);
            }
        }
    }
}

/// Repeated because the failure races the waiter: the syncer publishes the poison while
/// the waiter is between its wake-up and its look at the cause. A lock-order mistake there
/// once hung one run in a few dozen; the watchdog turns such a hang into a failure.
#[test]
fn faults_failed_async_sync_poisons_every_waiter() {
    const ROUNDS: usize = 300;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..ROUNDS {
            let disk = SimStorage::new("/sim/wal");
            let wal = open_sim(&disk, small_opts()).expect("open");
            disk.inject(Fault {
                target: FaultTarget::Sync,
                nth: 0,
                kind: FaultKind::Io,
                persistent: true,
            });
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            rt.block_on(async {
                let first = wal.append_async(b"doomed").await;
                assert!(first.is_err());
                assert!(matches!(wal.append_async(b"after").await, Err(WalError::Poisoned { .. })));
                assert!(matches!(wal.wait_durable_async(1).await, Err(WalError::Poisoned { .. })));
            });
        }
        let _ = done_tx.send(());
    });
    // Generous: the rounds take well under a second; only a deadlock reaches this.
    let finished = done_rx.recv_timeout(std::time::Duration::from_secs(120));
    assert!(finished.is_ok(), "async waiters deadlocked with the syncer (or a round panicked)");
}

#[test]
fn faults_failed_write_poisons() {
    let disk = SimStorage::new("/sim/wal");
    let wal = open_sim(&disk, small_opts()).expect("open");
    wal.append(b"kept").expect("append");
    disk.inject(Fault {
        target: FaultTarget::Write,
        nth: 0,
        kind: FaultKind::Io,
        persistent: false,
    });
    assert!(matches!(wal.append(b"lost"), Err(WalError::Io { .. })));
    assert!(matches!(wal.append(b"refused"), Err(WalError::Poisoned { .. })));
    drop(wal);
    let wal = open_sim(&disk, small_opts()).expect("reopen");
    let got = read_all(&wal).expect("read");
    assert_eq!(got, vec![(1, b"kept".to_vec())]);
}

#[test]
fn faults_full_disk_on_segment_creation_is_clear_and_recoverable() {
    let disk = SimStorage::new("/sim/wal");
    let wal = open_sim(&disk, small_opts()).expect("open");
    disk.inject(Fault {
        target: FaultTarget::Create,
        nth: 0,
        kind: FaultKind::NoSpace,
        persistent: true,
    });
    let mut acked = Vec::new();
    let mut refused = 0;
    for n in 0..60 {
        match wal.append(&payload(6, n)) {
            Ok(lsn) => acked.push((lsn, payload(6, n))),
            Err(WalError::NoSpace { .. }) => refused += 1,
            Err(e) => panic!("expected NoSpace, got {e}"),
        }
    }
    assert!(refused > 0, "the segment never filled");
    assert_eq!(read_all(&wal).expect("log stays readable"), acked);
    disk.clear_fault();
    let lsn = wal.append(b"space again").expect("appends resume");
    assert_eq!(lsn, acked.len() as u64 + 1);
    acked.push((lsn, b"space again".to_vec()));
    drop(wal);
    let wal = open_sim(&disk, small_opts()).expect("reopen");
    assert_eq!(read_all(&wal).expect("read"), acked);
}

#[test]
fn faults_any_single_failed_operation_loses_no_acknowledged_frame() {
    // Fail the N-th storage operation once, for every N the workload performs, then
    // crash and recover: acknowledged frames survive whatever failed.
    for nth in 0..120 {
        let disk = SimStorage::new("/sim/wal");
        let wal = open_sim(&disk, small_opts()).expect("open");
        disk.inject(Fault {
            target: FaultTarget::Any,
            nth,
            kind: FaultKind::Io,
            persistent: false,
        });
        let mut acked = Vec::new();
        for n in 0..30 {
            if let Ok(lsn) = wal.append(&payload(8, n)) {
                acked.push((lsn, payload(8, n)));
            }
        }
        drop(wal);
        let crashed = disk.crash(nth);
        let wal = open_sim(&crashed, small_opts()).unwrap_or_else(|e| panic!("nth {nth}: {e}"));
        let got = read_all(&wal).expect("read");
        for frame in &acked {
            assert!(got.contains(frame), "nth {nth}: acknowledged frame {} lost", frame.0);
        }
    }
}
