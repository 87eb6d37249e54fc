//! The read-only reader: reads what recovery would keep, changes nothing, follows a live
//! log, and `verify_log` reports every damaged frame rather than the first.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use orderlog_wal::storage::{SimStorage, Storage};
use orderlog_wal::{
    FindingKind, LockState, LogReader, Lsn, RecoveryMode, Severity, SyncPolicy, Wal, WalOptions,
    verify_log, writer_lock_state,
};

use crate::support::{open_sim, payload, small_opts};

/// Every file of a directory with its bytes.
fn dir_image(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read"))
        })
        .collect()
}

/// A closed log of `n` frames (some in groups) over several small segments.
fn closed_log(dir: &Path, n: u64) -> Vec<(Lsn, Vec<u8>)> {
    let wal = Wal::open(dir, small_opts()).expect("open");
    let mut frames = Vec::new();
    let mut i = 0;
    while (frames.len() as u64) < n {
        if i % 4 == 3 {
            let g: Vec<Vec<u8>> = (0..2).map(|k| payload(3, i * 10 + k)).collect();
            let refs: Vec<&[u8]> = g.iter().map(Vec::as_slice).collect();
            let lsns = wal.append_batch(&refs).expect("batch");
            frames.extend(lsns.zip(g));
        } else {
            let p = payload(3, i * 10);
            frames.push((wal.append(&p).expect("append"), p));
        }
        i += 1;
    }
    wal.close().expect("close");
    frames
}

fn read_all(reader: &LogReader) -> Vec<(Lsn, Vec<u8>)> {
    reader
        .iter_from(reader.first_lsn())
        .expect("iter")
        .map(|f| f.map(|f| (f.lsn(), f.payload().to_vec())))
        .collect::<Result<_, _>>()
        .expect("frames")
}

#[test]
fn reader_reads_every_frame_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let frames = closed_log(dir.path(), 40);
    std::fs::remove_file(dir.path().join("LOCK")).expect("remove lock");
    let before = dir_image(dir.path());
    let reader = LogReader::open(dir.path(), RecoveryMode::Strict).expect("reader");
    assert_eq!(read_all(&reader), frames);
    assert_eq!(reader.last_lsn(), 40);
    assert_eq!(reader.checkpointed_lsn(), 40);
    assert!(reader.segments().len() >= 2, "small segments: several files");
    assert_eq!(reader.segments().iter().map(|s| s.frames).sum::<u64>(), 40);
    assert!(reader.segments().iter().rev().skip(1).all(|s| s.sealed));
    let from_middle: Vec<Lsn> =
        reader.iter_from(17).expect("iter").map(|f| f.expect("frame").lsn()).collect();
    assert_eq!(from_middle, (17..=40).collect::<Vec<_>>());
    assert_eq!(writer_lock_state(dir.path()), LockState::Free);
    assert_eq!(dir_image(dir.path()), before, "a reader changed the directory");
}

#[test]
fn reader_refuses_a_missing_directory_without_creating_it() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("nope");
    assert!(LogReader::open(&missing, RecoveryMode::default()).is_err());
    assert!(verify_log(&missing).is_err());
    assert!(!missing.exists());
}

#[test]
fn reader_and_tail_follow_a_live_log() {
    let dir = tempfile::tempdir().expect("dir");
    let opts = WalOptions { sync_policy: SyncPolicy::Never, ..small_opts() };
    let wal = Wal::open(dir.path(), opts).expect("open");
    for n in 0..5 {
        wal.append(&payload(1, n)).expect("append");
    }
    assert_eq!(writer_lock_state(dir.path()), LockState::Held { pid: std::process::id() });
    let reader = LogReader::open(dir.path(), RecoveryMode::default()).expect("reader");
    assert_eq!(reader.last_lsn(), 5, "unsynced but complete frames are read");
    let mut tail = reader.tail();
    assert!(tail.poll().expect("poll").is_empty());
    let mut expected = Vec::new();
    for n in 5..60 {
        let p = payload(1, n);
        expected.push((wal.append(&p).expect("append"), p));
    }
    let mut got = Vec::new();
    for frame in tail.poll().expect("poll") {
        got.push((frame.lsn(), frame.payload().to_vec()));
    }
    assert_eq!(got, expected, "the tail crosses segment rolls");
    assert_eq!(tail.next_lsn(), 61);
    wal.close().expect("close");
    drop(wal);
    assert_eq!(writer_lock_state(dir.path()), LockState::Free);
}

#[test]
fn a_durable_tail_delivers_only_what_the_checkpoints_prove_durable() {
    let dir = tempfile::tempdir().expect("dir");
    // Large segments (no roll seals a segment) and no syncs: nothing is durable.
    let opts =
        WalOptions { sync_policy: SyncPolicy::Never, segment_bytes: 1 << 20, ..small_opts() };
    let wal = Wal::open(dir.path(), opts).expect("open");
    for n in 0..5 {
        wal.append(&payload(1, n)).expect("append");
    }
    let reader = LogReader::open(dir.path(), RecoveryMode::default()).expect("reader");
    let mut durable = reader.durable_tail_from(2);
    let mut plain = reader.tail();
    assert!(durable.poll().expect("poll").is_empty(), "nothing is proven durable yet");
    assert_eq!(durable.next_lsn(), 2);
    for n in 5..8 {
        wal.append(&payload(1, n)).expect("append");
    }
    assert_eq!(plain.poll().expect("poll").len(), 3, "complete frames, durable or not");
    assert!(durable.poll().expect("poll").is_empty());
    // Closing syncs and writes the final checkpoint: now all of it is proven.
    wal.close().expect("close");
    let lsns: Vec<Lsn> = durable.poll().expect("poll").iter().map(|f| f.lsn()).collect();
    assert_eq!(lsns, (2..=8).collect::<Vec<_>>());
    assert!(durable.poll().expect("poll").is_empty());
}

#[test]
fn reader_reports_a_torn_tail_without_cutting_it() {
    let disk = SimStorage::new("/sim/wal");
    let wal = open_sim(&disk, small_opts()).expect("open");
    for n in 0..10 {
        wal.append(&payload(2, n)).expect("append");
    }
    // Unsynced writes after the last sync: a crash tears or drops them.
    let opts = WalOptions { sync_policy: SyncPolicy::Never, ..small_opts() };
    drop(wal);
    let wal = open_sim(&disk, opts).expect("reopen");
    for n in 10..14 {
        wal.append(&payload(2, n)).expect("append");
    }
    let crashed = (0..64)
        .map(|seed| disk.crash(seed))
        .find(|d| {
            LogReader::open_with(Arc::new(d.clone()), RecoveryMode::default())
                .expect("reader")
                .report()
                .truncated
                .is_some()
        })
        .expect("some crash seed tears the tail");
    drop(wal);
    let names = crashed.list().expect("list");
    let before: Vec<_> = names.iter().map(|n| crashed.file_bytes(n)).collect();
    let reader =
        LogReader::open_with(Arc::new(crashed.clone()), RecoveryMode::default()).expect("reader");
    assert!(reader.last_lsn() >= 10, "every synced frame is kept");
    assert!(matches!(
        LogReader::open_with(Arc::new(crashed.clone()), RecoveryMode::Strict),
        Err(e) if e.is_corruption()
    ));
    let after: Vec<_> = names.iter().map(|n| crashed.file_bytes(n)).collect();
    assert_eq!(crashed.list().expect("list"), names);
    assert_eq!(before, after, "a reader cut the tail");
    let verified = orderlog_wal::reader::verify_log_with(&crashed).expect("verify");
    assert!(!verified.is_corrupt(), "a torn tail is not corruption: {:?}", verified.findings);
    assert!(verified.findings.iter().any(|f| f.severity == Severity::TornTail));
}

/// Offset of the frame whose payload starts with `marker`, in `bytes`.
fn frame_offset(bytes: &[u8], marker: &[u8]) -> Option<usize> {
    bytes.windows(marker.len()).position(|w| w == marker).map(|p| p - 16)
}

#[test]
fn verify_reports_every_damaged_frame_with_file_and_offset() {
    let dir = tempfile::tempdir().expect("dir");
    closed_log(dir.path(), 40);
    let clean = verify_log(dir.path()).expect("verify");
    assert!(clean.findings.is_empty(), "{:?}", clean.findings);
    assert_eq!(clean.frames, 40);

    // Flip one payload byte in three single frames (two in one segment if they share it).
    let mut damaged = Vec::new();
    for n in [0u64, 10, 20, 60, 100] {
        let marker = format!("s3n{n}:").into_bytes();
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let path = entry.expect("entry").path();
            let mut bytes = std::fs::read(&path).expect("read");
            if let Some(at) = frame_offset(&bytes, &marker) {
                bytes[at + 16 + marker.len()] ^= 0x10;
                std::fs::write(&path, &bytes).expect("write");
                damaged.push((path, at as u64));
                break;
            }
        }
    }
    assert_eq!(damaged.len(), 5);
    let report = verify_log(dir.path()).expect("verify");
    assert!(report.is_corrupt());
    for (file, offset) in &damaged {
        assert!(
            report.findings.iter().any(|f| &f.file == file
                && f.offset == *offset
                && f.severity == Severity::Corruption
                && matches!(f.kind, FindingKind::Damage(_))),
            "no finding at {}:{offset}: {:?}",
            file.display(),
            report.findings
        );
    }
    assert_eq!(report.frames, 35, "every other frame still checks");
    assert!(LogReader::open(dir.path(), RecoveryMode::default()).is_err());
}
