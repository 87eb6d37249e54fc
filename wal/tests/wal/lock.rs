//! One writer per directory, across threads and processes.

use std::process::Command;

use orderlog_wal::{Wal, WalError};

use crate::support::small_opts;

const CHILD_DIR_VAR: &str = "ORDERLOG_WAL_LOCK_CHILD_DIR";

#[test]
fn wal_second_open_in_this_process_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small_opts()).expect("open");
    assert!(matches!(Wal::open(dir.path(), small_opts()), Err(WalError::Locked { .. })));
    drop(wal);
    Wal::open(dir.path(), small_opts()).expect("lock released on drop");
}

#[test]
fn wal_open_in_another_process_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small_opts()).expect("open");
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "lock::wal_lock_child_process", "--ignored", "--nocapture"])
        .env(CHILD_DIR_VAR, dir.path())
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("child saw: locked"), "child output: {stdout}");
    drop(wal);
}

/// Run only as the child of `wal_open_in_another_process_is_locked`.
#[test]
#[ignore = "spawned by wal_open_in_another_process_is_locked"]
fn wal_lock_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else { return };
    match Wal::open(&dir, small_opts()) {
        Err(WalError::Locked { .. }) => println!("child saw: locked"),
        other => panic!("expected Locked, got {other:?}"),
    }
}
