//! `generate --print-acks` killed with SIGKILL: `verify` passes afterwards and every
//! acknowledged LSN is in the log.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use orderlog_store::{OfflineStore, RecoveryMode};

use crate::support::{arg, bin, run};

fn kill_after_acks(sync: &str, acks_before_kill: usize) {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    let mut child = bin()
        .args(["generate", &arg(&dir), "--orders", "200000", "--events", "600000"])
        .args(["--writers", "3", "--batch", "8", "--segment-mib", "1", "--sync", sync])
        .args(["--sync-interval-ms", "2", "--print-acks"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let lsn: u64 = line.strip_prefix("acked ").expect("only ack lines").parse().expect("lsn");
        acked.push(lsn);
        if acked.len() == acks_before_kill {
            child.kill().expect("SIGKILL");
            killed = true;
        }
    }
    child.wait().expect("wait");
    assert!(killed, "the writer finished before {acks_before_kill} acks");

    let verify = run(&["verify", &arg(&dir), "--json"]).json();
    assert_eq!(verify["ok"], true, "{verify}");
    let offline = OfflineStore::open(&dir, RecoveryMode::Strict)
        .or_else(|_| OfflineStore::open(&dir, RecoveryMode::TolerateTornTail))
        .expect("open");
    let present: std::collections::HashSet<u64> =
        offline.log().iter_from(1).expect("iter").map(|f| f.expect("frame").lsn()).collect();
    for lsn in &acked {
        assert!(present.contains(lsn), "acknowledged LSN {lsn} is missing ({sync})");
    }
}

#[test]
fn generate_killed_with_sigkill_keeps_every_acked_lsn_sync_always() {
    kill_after_acks("always", 2000);
}

#[test]
fn generate_killed_with_sigkill_keeps_every_acked_lsn_sync_interval() {
    kill_after_acks("interval", 2000);
}
