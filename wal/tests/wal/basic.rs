//! The log on the real file system: appends, reopen, rolls, truncation, limits, async.

use std::sync::Arc;

use orderlog_wal::{IoBackend, SyncPolicy, Wal, WalError, WalOptions};

use crate::support::{payload, read_all, small_opts};

#[test]
fn wal_append_reopen_returns_every_frame_across_segments() {
    append_reopen(IoBackend::Mmap, IoBackend::Mmap);
}

#[test]
fn wal_pwrite_backend_keeps_the_same_promises() {
    append_reopen(IoBackend::Pwrite, IoBackend::Pwrite);
}

#[test]
fn wal_backends_read_each_others_files() {
    append_reopen(IoBackend::Mmap, IoBackend::Pwrite);
    append_reopen(IoBackend::Pwrite, IoBackend::Mmap);
}

fn append_reopen(write_with: IoBackend, reopen_with: IoBackend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), WalOptions { io_backend: Some(write_with), ..small_opts() })
        .expect("open");
    let mut expected = Vec::new();
    for n in 0..200 {
        let p = payload(1, n);
        let lsn = wal.append(&p).expect("append");
        assert_eq!(lsn, n + 1);
        expected.push((lsn, p));
    }
    let group: Vec<Vec<u8>> = (200..205).map(|n| payload(1, n)).collect();
    let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
    let lsns = wal.append_batch(&refs).expect("batch");
    assert_eq!(lsns, 201..=205);
    expected.extend(lsns.zip(group));
    let stats = wal.stats();
    assert!(stats.segments > 3, "small segments should roll: {stats:?}");
    assert_eq!(stats.durable_lsn, 205);
    assert_eq!(read_all(&wal).expect("read"), expected);
    wal.close().expect("close");
    drop(wal);

    let wal = Wal::open(dir.path(), WalOptions { io_backend: Some(reopen_with), ..small_opts() })
        .expect("reopen");
    let report = wal.recovery_report().clone();
    assert_eq!(report.truncated, None);
    assert_eq!((report.first_lsn, report.last_lsn), (1, 205));
    assert_eq!(read_all(&wal).expect("read"), expected);
    assert_eq!(wal.append(b"after reopen").expect("append"), 206);
}

#[test]
fn wal_iter_from_any_lsn_starts_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small_opts()).expect("open");
    for n in 0..120 {
        wal.append(&payload(2, n)).expect("append");
    }
    for from in [1, 2, 37, 64, 119, 120] {
        let got: Vec<u64> =
            wal.iter_from(from).expect("iter").map(|f| f.expect("frame").lsn()).collect();
        assert_eq!(got, (from..=120).collect::<Vec<_>>());
    }
    assert!(wal.iter_from(121).expect("empty iter").next().is_none());
    assert!(matches!(wal.iter_from(122), Err(WalError::LsnOutOfRange { .. })));
}

#[test]
fn wal_truncate_before_keeps_the_needed_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small_opts()).expect("open");
    for n in 0..150 {
        wal.append(&payload(3, n)).expect("append");
    }
    let before = wal.stats().segments;
    let removed = wal.truncate_before(100).expect("truncate");
    assert!(removed > 0);
    let stats = wal.stats();
    assert_eq!(stats.segments, before - removed);
    assert!(stats.first_lsn <= 100 && stats.first_lsn > 1, "{stats:?}");
    let lsns: Vec<u64> =
        wal.iter_from(100).expect("iter").map(|f| f.expect("frame").lsn()).collect();
    assert_eq!(lsns, (100..=150).collect::<Vec<_>>());
    assert!(matches!(wal.iter_from(1), Err(WalError::LsnOutOfRange { .. })));
    assert_eq!(wal.truncate_before(u64::MAX).expect("truncate all"), stats.segments - 1);
    drop(wal);
    let wal = Wal::open(dir.path(), small_opts()).expect("reopen after truncation");
    assert_eq!(wal.last_lsn(), 150);
}

#[test]
fn wal_limits_are_typed_errors_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions { frame_bytes_max: 100, batch_frames_max: 3, ..small_opts() };
    let wal = Wal::open(dir.path(), opts).expect("open");
    wal.append(b"one").expect("append");
    assert!(matches!(wal.append(&[0u8; 101]), Err(WalError::FrameTooLarge { len: 101, max: 100 })));
    let four: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
    assert!(matches!(wal.append_batch(&four), Err(WalError::BatchTooLarge { frames: 4, .. })));
    assert!(matches!(wal.append_batch(&[]), Err(WalError::EmptyBatch)));
    let mixed: [&[u8]; 2] = [b"fine", &[0u8; 200]];
    assert!(matches!(wal.append_batch(&mixed), Err(WalError::FrameTooLarge { .. })));
    assert_eq!(wal.last_lsn(), 1);
    assert_eq!(wal.append(b"two").expect("append"), 2);
    assert_eq!(read_all(&wal).expect("read").len(), 2);
}

#[test]
fn wal_rejects_invalid_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    for opts in [
        WalOptions { segment_bytes: 1000, ..WalOptions::default() },
        WalOptions { segment_bytes: (64 << 20) + 1, ..WalOptions::default() },
        WalOptions { frame_bytes_max: 0, ..WalOptions::default() },
        WalOptions { batch_bytes_max: 0, ..WalOptions::default() },
        WalOptions { batch_frames_max: 0, ..WalOptions::default() },
        WalOptions {
            sync_policy: SyncPolicy::Interval(std::time::Duration::ZERO),
            ..WalOptions::default()
        },
    ] {
        assert!(matches!(Wal::open(dir.path(), opts), Err(WalError::InvalidOptions(_))));
    }
}

#[test]
fn wal_concurrent_writers_share_syncs_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Arc::new(
        Wal::open(dir.path(), WalOptions { segment_bytes: 1 << 20, ..WalOptions::default() })
            .expect("open"),
    );
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                (0..150u64)
                    .map(|n| (wal.append(&payload(t, n)).expect("append"), payload(t, n)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<(u64, Vec<u8>)> =
        threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    acked.sort();
    let stats = wal.stats();
    assert_eq!(stats.durable_lsn, 600);
    assert_eq!(stats.frames_synced, 600);
    assert!(stats.syncs >= 1 && stats.syncs <= 600, "{stats:?}");
    assert_eq!(read_all(&wal).expect("read"), acked);
}

#[test]
fn wal_async_appends_complete_after_group_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Arc::new(Wal::open(dir.path(), small_opts()).expect("open"));
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let acked = rt.block_on(async {
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let wal = Arc::clone(&wal);
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    for n in 0..25u64 {
                        let p = payload(10 + t, n);
                        let lsn = wal.append_async(&p).await.expect("append");
                        assert!(wal.durable_lsn() >= lsn, "acknowledged before durable");
                        out.push((lsn, p));
                    }
                    let group = [payload(99, t), payload(98, t)];
                    let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
                    let lsns = wal.append_batch_async(&refs).await.expect("batch");
                    out.extend(lsns.zip(group));
                    out
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let mut acked = acked;
    acked.sort();
    assert_eq!(acked.len(), 8 * 27);
    assert_eq!(read_all(&wal).expect("read"), acked);
}

#[test]
fn wal_interval_and_never_policies_sync_in_the_background_or_on_demand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions {
        sync_policy: SyncPolicy::Interval(std::time::Duration::from_millis(5)),
        ..small_opts()
    };
    let wal = Wal::open(dir.path(), opts).expect("open");
    let lsn = wal.append(b"soon durable").expect("append");
    // The background syncer covers it within a few intervals; wait on it, not on time.
    wal.wait_durable(lsn).expect("durable");
    drop(wal);

    let opts = WalOptions { sync_policy: SyncPolicy::Never, ..small_opts() };
    let wal = Wal::open(dir.path(), opts).expect("open");
    let lsn = wal.append(b"synced on demand").expect("append");
    assert!(wal.durable_lsn() < lsn);
    wal.sync().expect("sync");
    assert_eq!(wal.durable_lsn(), lsn);
    wal.close().expect("close");
    assert!(matches!(wal.append(b"late"), Err(WalError::Closed)));
}

#[test]
fn wal_waiting_for_an_unwritten_lsn_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small_opts()).expect("open");
    let lsn = wal.append(b"one").expect("append");
    assert!(matches!(wal.wait_durable(lsn + 5), Err(WalError::LsnOutOfRange { .. })));
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let waited = rt.block_on(wal.wait_durable_async(lsn + 1));
    assert!(matches!(waited, Err(WalError::LsnOutOfRange { .. })));
    wal.wait_durable(lsn).expect("written LSN");
    wal.close().expect("close does not hang");
}

#[test]
fn wal_close_racing_appends_leaves_a_log_that_reopens_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Arc::new(Wal::open(dir.path(), small_opts()).expect("open"));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for n in 0..200u64 {
                    match wal.append(&payload(40 + t, n)) {
                        Ok(lsn) => acked.push(lsn),
                        Err(WalError::Closed) => break,
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(5));
    wal.close().expect("close");
    let acked: Vec<u64> = writers.into_iter().flat_map(|w| w.join().expect("writer")).collect();
    drop(wal);
    let opts = WalOptions { recovery_mode: orderlog_wal::RecoveryMode::Strict, ..small_opts() };
    let wal = Wal::open(dir.path(), opts).expect("a closed log opens in Strict mode");
    let last = wal.last_lsn();
    assert!(acked.iter().all(|&l| l <= last));
}

/// A log written in format version 1 (header and checkpoint slots in the first page) is
/// still read, appended to in its own layout, and continued in new segments of the
/// current version.
#[test]
fn basic_a_version_1_segment_is_read_and_appended_to() {
    use orderlog_wal::format::{
        Checkpoint, FORMAT_VERSION, FORMAT_VERSION_1, SegmentHeader, encode_frame,
        segment_file_name,
    };
    use orderlog_wal::storage::{SimStorage, Storage};

    let opts = crate::support::small_opts();
    let header = SegmentHeader {
        version: FORMAT_VERSION_1,
        ..SegmentHeader::new(1, 77, opts.segment_bytes)
    };
    let mut bytes = vec![0u8; opts.segment_bytes as usize];
    bytes[..64].copy_from_slice(&header.encode());
    let (_, header_crc) = SegmentHeader::decode(&bytes).expect("a version 1 header");
    let mut at = header.frames_offset() as usize;
    assert_eq!(at, 4096);
    let mut prev = header_crc;
    let mut written = Vec::new();
    for lsn in 1..=5u64 {
        let payload = format!("v1 frame {lsn}").into_bytes();
        let (h, pad) = encode_frame(prev, header.salt, lsn, &payload, false);
        let frame = [&h.encode()[..], &payload, pad].concat();
        bytes[at..at + frame.len()].copy_from_slice(&frame);
        at += frame.len();
        prev = h.crc;
        written.push((lsn, payload));
    }
    let checkpoint = Checkpoint { seq: 1, durable_end: at as u64, last_lsn: 5, sealed: false };
    let slot = checkpoint.slot_offset(&header);
    assert!(slot < 128, "version 1 keeps its slots in the first page");
    bytes[slot..slot + 32].copy_from_slice(&checkpoint.encode(header_crc));

    let disk = SimStorage::new("/sim/wal");
    disk.create(&segment_file_name(1), opts.segment_bytes).expect("create");
    disk.sync_dir().expect("sync");
    disk.set_file_bytes(&segment_file_name(1), bytes);

    let wal = crate::support::open_sim(&disk, opts.clone()).expect("open a version 1 log");
    assert_eq!(crate::support::read_all(&wal).expect("read"), written);
    let mut n = 0;
    while wal.segment_bases().len() < 3 {
        let p = crate::support::payload(3, n);
        written.push((wal.append(&p).expect("append"), p));
        n += 1;
    }
    drop(wal);
    let wal = crate::support::open_sim(&disk, opts).expect("reopen");
    assert_eq!(crate::support::read_all(&wal).expect("read"), written);
    let second = disk.file_bytes(&segment_file_name(wal.segment_bases()[1])).expect("second");
    let (h, _) = SegmentHeader::decode(&second).expect("header");
    assert_eq!(h.version, FORMAT_VERSION, "new segments are written in the current version");
}

/// A segment file longer than its header declares is damage named with file and offset,
/// found by recovery, not a late "outside the mapping" error when it is appended to.
#[test]
fn basic_a_segment_longer_than_its_header_is_damage() {
    use orderlog_wal::storage::SimStorage;
    use orderlog_wal::{RecoveryMode, WalError};
    let disk = SimStorage::new("/sim/wal");
    let opts = crate::support::small_opts();
    let wal = crate::support::open_sim(&disk, opts.clone()).expect("open");
    wal.append(b"one").expect("append");
    drop(wal);
    let name = orderlog_wal::format::segment_file_name(1);
    let mut bytes = disk.file_bytes(&name).expect("segment");
    bytes.extend_from_slice(&[0u8; 4096]);
    disk.set_file_bytes(&name, bytes);
    match crate::support::open_sim(&disk, opts.clone()) {
        Err(WalError::Corruption { file, offset, kind }) => {
            assert!(file.ends_with(&name), "{file:?}");
            assert_eq!(offset, opts.segment_bytes);
            assert!(matches!(kind, orderlog_wal::CorruptionKind::FileTooLong { .. }), "{kind}");
        }
        other => panic!("expected FileTooLong, got {other:?}"),
    }
    // PointInTime sets it aside whole instead of keeping a segment it cannot append to.
    let wal = crate::support::open_sim_mode(&disk, RecoveryMode::PointInTime).expect("open");
    assert_eq!(wal.recovery_report().discarded_segments.len(), 1);
    wal.append(b"after").expect("append after setting it aside");
}

/// A file named like a segment but longer than any segment may be (a sparse 1 TiB file)
/// is refused before anything is read or allocated for it.
#[test]
fn basic_a_huge_file_named_like_a_segment_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = orderlog_wal::format::segment_file_name(1);
    let file = std::fs::File::create(dir.path().join(&name)).expect("create");
    file.set_len(1 << 40).expect("a sparse 1 TiB file");
    match orderlog_wal::Wal::open(dir.path(), orderlog_wal::WalOptions::default()) {
        Err(orderlog_wal::WalError::Corruption { file, kind, .. }) => {
            assert!(file.ends_with(&name), "{file:?}");
            assert!(matches!(kind, orderlog_wal::CorruptionKind::FileTooLong { .. }), "{kind}");
        }
        other => panic!("expected FileTooLong, got {other:?}"),
    }
    let verification = orderlog_wal::verify_log(dir.path()).expect("verify");
    assert!(verification.is_corrupt(), "{verification:?}");
}

/// The next segment is preallocated ahead of need: once the active segment is half full a
/// spare appears (made by the log's background thread), and the roll takes that very file
/// (the same inode) under the new segment's name. Closing removes the spare; a leftover
/// one is removed by recovery, and `verify` notes it.
#[test]
fn basic_a_roll_takes_the_spare_segment_prepared_ahead() {
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};

    for backend in [IoBackend::Mmap, IoBackend::Pwrite] {
        let dir = tempfile::tempdir().unwrap();
        let spare = dir.path().join(orderlog_wal::format::SPARE_SEGMENT);
        let opts =
            WalOptions { io_backend: Some(backend), segment_bytes: 256 << 10, ..small_opts() };
        let half = opts.segment_bytes / 2;
        let wal = Wal::open(dir.path(), opts).unwrap();
        // Appends until the spare exists; none is asked for below half full.
        let fill_until_spare = || {
            let start = wal.stats().bytes;
            while !spare.exists() {
                assert!(wal.stats().bytes - start < half, "{backend:?}: a spare before half full");
                wal.append(&[7u8; 500]).unwrap();
                if wal.stats().bytes - start >= half {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !spare.exists() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    break;
                }
            }
            std::fs::metadata(&spare).expect("a spare segment is prepared").ino()
        };
        let inode = fill_until_spare();
        let segments = wal.stats().segments;
        while wal.stats().segments == segments {
            wal.append(&[7u8; 500]).unwrap();
        }
        let bases = wal.segment_bases();
        let newest =
            dir.path().join(orderlog_wal::format::segment_file_name(bases[bases.len() - 1]));
        assert_eq!(
            std::fs::metadata(&newest).unwrap().ino(),
            inode,
            "{backend:?}: the roll took the spare"
        );
        assert!(!spare.exists(), "{backend:?}: the new segment asks for no spare yet");
        fill_until_spare();
        wal.close().unwrap();
        drop(wal);
        assert!(!spare.exists(), "{backend:?}: close removes the spare");

        // A spare left by a crash: noted by verify, removed by the next writable open.
        std::fs::write(&spare, vec![0u8; 4096]).unwrap();
        let verification = orderlog_wal::verify_log(dir.path()).unwrap();
        assert!(
            verification
                .findings
                .iter()
                .any(|f| f.kind == orderlog_wal::FindingKind::LeftoverTempSegment),
            "{verification:?}"
        );
        let wal = Wal::open(dir.path(), small_opts()).unwrap();
        assert!(
            wal.recovery_report().removed_temp_files.iter().any(|p| p.ends_with("spare.wal.tmp"))
        );
    }
}
