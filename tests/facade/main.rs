//! The facade crate exposes the log under `orderlog::wal` and at its root.

#![allow(clippy::expect_used, reason = "tests fail loudly on purpose")]

use orderlog::{SyncPolicy, Wal, WalOptions};

#[test]
fn facade_log_round_trips_through_reexports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions { sync_policy: SyncPolicy::Always, ..WalOptions::default() };
    let wal = Wal::open(dir.path(), opts.clone()).expect("open");
    let lsn = wal.append(b"order 1 created").expect("append");
    wal.close().expect("close");
    drop(wal);
    let wal = orderlog::wal::Wal::open(dir.path(), opts).expect("reopen");
    let frame = wal.iter_from(lsn).expect("iter").next().expect("one frame").expect("valid");
    assert_eq!(frame.payload(), b"order 1 created");
}
