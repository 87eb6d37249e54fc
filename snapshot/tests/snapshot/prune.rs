//! Keep-last-K pruning, LSN order, the writer lock and read-only stores.

use orderlog_snapshot::{Covers, SnapshotError, SnapshotOptions, SnapshotStore};

use crate::support::{Sample, names_in, small_options};

#[test]
fn keeps_the_last_k_snapshots() {
    for keep_last in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let opts = SnapshotOptions { keep_last, ..small_options() };
        let mut states = Vec::new();
        for lsn in 1..=5u64 {
            let state = Sample::generate(lsn as usize, lsn);
            let published = store.publish(&state, lsn * 10, 1, &opts).unwrap();
            assert!(published.prune_errors.is_empty());
            // What falls out of the window is deleted by this publish.
            if lsn as usize > keep_last {
                assert_eq!(
                    published.pruned,
                    [format!("snap-{:020}", (lsn - keep_last as u64) * 10)]
                );
            } else {
                assert!(published.pruned.is_empty());
            }
            states.push(state);
        }
        let listed: Vec<u64> = store.list().unwrap().iter().map(|s| s.lsn).collect();
        let expected: Vec<u64> = (0..keep_last as u64).map(|i| (5 - i) * 10).collect();
        assert_eq!(listed, expected);
        let mut dirs: Vec<String> = expected.iter().map(|l| format!("snap-{l:020}")).collect();
        dirs.sort();
        let mut names = vec!["LOCK".to_string(), "MANIFEST".to_string()];
        names.extend(dirs);
        assert_eq!(names_in(dir.path()), names);
        // Each kept snapshot still reads back.
        for info in store.list().unwrap() {
            let batches = store.read_ipc_batches(&info).unwrap();
            let i = (info.lsn / 10 - 1) as usize;
            assert!(Sample::from_batches(&batches).same_as(&states[i]));
        }
    }
}

#[test]
fn lsns_must_increase() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let state = Sample::generate(2, 1);
    store.publish(&state, 5, 1, &small_options()).unwrap();
    for lsn in [5, 4, 0] {
        match store.publish(&state, lsn, 1, &small_options()) {
            Err(SnapshotError::StaleLsn { lsn: l, newest: 5 }) => assert_eq!(l, lsn),
            other => panic!("{other:?}"),
        }
    }
    store.publish(&state, 6, 1, &small_options()).unwrap();
}

#[test]
fn one_writer_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    assert!(matches!(SnapshotStore::open(dir.path()), Err(SnapshotError::Locked { .. })));
    // A read-only store reads alongside the writer but cannot publish.
    store.publish(&Sample::generate(2, 1), 1, 1, &small_options()).unwrap();
    let reader = SnapshotStore::open_read_only(dir.path());
    assert_eq!(reader.current().unwrap().unwrap().info.lsn, 1);
    assert!(matches!(
        reader.publish(&Sample::generate(2, 1), 2, 1, &small_options()),
        Err(SnapshotError::ReadOnly { .. })
    ));
    drop(store);
    SnapshotStore::open(dir.path()).unwrap();
}

#[test]
fn an_empty_or_missing_directory_has_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open_read_only(dir.path().join("never-created"));
    assert!(store.current().unwrap().is_none());
    assert!(store.load::<Sample>().unwrap().is_none());
    let store = SnapshotStore::open(dir.path()).unwrap();
    assert!(store.current().unwrap().is_none());
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn the_manifest_is_readable_json_after_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let info = store.publish(&Sample::generate(3, 1), 7, 4, &small_options()).unwrap().info;
    let text = std::fs::read_to_string(dir.path().join("MANIFEST")).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    assert!(header.starts_with("orderlog-manifest v00002 crc32="), "{header}");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let snap = &json["snapshots"][0];
    assert_eq!(snap["lsn"], 7);
    assert_eq!(snap["schema_version"], 4);
    assert_eq!(snap["rows"], 3);
    assert_eq!(snap["files"][0]["kind"], "arrow_ipc");
    assert_eq!(snap["files"][0]["crc32"], info.files[0].crc32);
    assert_eq!(snap["files"][1]["path"], "snap-00000000000000000007/data.parquet");
    assert!(snap.get("newest_event_ms").is_none(), "none given, none written: {snap}");

    // A publisher that knows its newest event time records it; a reader gets it back.
    let covers = Covers { lsn: 9, schema_version: 4, newest_event_ms: Some(1_700_000_000_123) };
    store
        .publish_covering(&Sample::generate(4, 2), covers, &small_options(), &mut |_| Ok(()))
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("MANIFEST")).unwrap();
    let json: serde_json::Value = serde_json::from_str(text.split_once('\n').unwrap().1).unwrap();
    assert_eq!(json["snapshots"][0]["newest_event_ms"], 1_700_000_000_123u64);
    let listed = SnapshotStore::open_read_only(dir.path()).list().unwrap();
    assert_eq!(listed[0].newest_event_ms, Some(1_700_000_000_123));
    assert_eq!(listed[1].newest_event_ms, None);
}
