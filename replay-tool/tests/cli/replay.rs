//! `replay` writes exactly what `OfflineStore::fold_until` folds, into OUT only.

use orderlog_snapshot::SnapshotStore;
use orderlog_store::{FoldTarget, OfflineStore, OrderState, RecoveryMode};

use crate::support::{arg, generated, image, run};

fn load(out: &std::path::Path) -> (OrderState, u64) {
    let (state, verified) =
        SnapshotStore::open_read_only(out).load::<OrderState>().expect("load").expect("a snapshot");
    (state, verified.info.lsn)
}

#[test]
fn replay_until_lsn_equals_fold_until() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    generated(&dir, 12_000, 36_000, 11);
    // A snapshot in the middle, segments retained: folds start from it or from scratch.
    run(&["compact", &arg(&dir), "--retain-segments", "100"]).ok();
    let before = image(&dir);
    let offline = OfflineStore::open(&dir, RecoveryMode::Strict).expect("open");
    let snapshot = offline.snapshot_list().expect("list")[0].lsn;
    let last = offline.log().last_lsn();
    for (i, lsn) in [0, 1, snapshot / 2, snapshot, snapshot + 1, last].into_iter().enumerate() {
        let out = tmp.path().join(format!("out-{i}"));
        let report = run(&[
            "replay",
            &arg(&dir),
            "--until-lsn",
            &lsn.to_string(),
            "--out",
            &arg(&out),
            "--json",
        ])
        .json();
        let (expected, at) = offline.fold_until(FoldTarget::Lsn(lsn)).expect("fold");
        assert_eq!(report["lsn"], at);
        assert_eq!(report["orders"], expected.len());
        let (state, snap_lsn) = load(&out);
        assert_eq!(snap_lsn, lsn);
        assert_eq!(state, expected, "replay to {lsn}");
        assert!(std::fs::read_dir(&out).expect("out").count() >= 2);
    }
    assert_eq!(image(&dir), before, "replay wrote into DIR");
}

#[test]
fn replay_until_time_equals_fold_until_and_text_names_the_files() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    generated(&dir, 300, 2000, 12);
    let events = run(&["dump", &arg(&dir), "--json"]).json_lines();
    let time = events[900]["time"].as_str().unwrap().to_owned();
    let ms = events[900]["timestamp_ms"].as_u64().unwrap();
    let out = tmp.path().join("out");
    let text = run(&["replay", &arg(&dir), "--until-time", &time, "--out", &arg(&out)]);
    assert!(text.ok().contains("data.parquet"), "{}", text.stdout);
    assert!(text.stdout.contains("data.arrow"));
    let offline = OfflineStore::open(&dir, RecoveryMode::default()).expect("open");
    let (expected, lsn) = offline.fold_until(FoldTarget::TimeMs(ms)).expect("fold");
    assert_eq!(load(&out), (expected, lsn));
}

#[test]
fn replay_refuses_out_inside_dir_non_empty_out_and_unreachable_targets() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    generated(&dir, 100, 300, 13);
    let before = image(&dir);
    let d = arg(&dir);
    run(&["replay", &d, "--until-lsn", "3", "--out", &arg(&dir.join("x"))]).fails(2, "overlaps");
    run(&["replay", &d, "--until-lsn", "3", "--out", &d]).fails(2, "not empty");
    run(&["replay", &d, "--until-lsn", "3", "--out", &arg(&dir.join("wal"))]).fails(2, "not empty");
    let out = tmp.path().join("out");
    run(&["replay", &d, "--until-lsn", "999999", "--out", &arg(&out)])
        .fails(2, "beyond the newest LSN held");
    assert!(!out.exists(), "a failed replay left OUT behind");
    run(&["replay", &d, "--out", &arg(&out)]).fails(2, "--until-lsn");
    run(&["replay", &d, "--until-lsn", "1", "--until-time", "5", "--out", &arg(&out)])
        .fails(2, "cannot be used");
    run(&["replay", &d, "--until-time", "next tuesday", "--out", &arg(&out)]).fails(2, "RFC 3339");
    assert_eq!(image(&dir), before);
}
