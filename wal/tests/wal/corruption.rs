//! Damage to a cleanly closed log: every byte flipped, every length cut.
//!
//! The log was synced and checkpointed on close, so every frame in it is durable: any
//! damage to a frame is corruption, never a torn tail. For each damaged copy we check
//! that no mode ever returns a wrong frame or panics, that `Strict` reports every damaged
//! frame or header, that `TolerateTornTail` returns the whole log or an error (never a
//! silently shorter log), and that `PointInTime` returns a prefix of whole groups.

use orderlog_wal::storage::SimStorage;
use orderlog_wal::{Lsn, RecoveryMode, WalError};

use crate::support::{open_sim, open_sim_mode, payload, read_all, small_opts};

/// Where a segment's first frame starts.
const FRAMES: usize = orderlog_wal::format::FRAMES_OFFSET as usize;

/// A closed log of single frames and groups over a few small segments.
/// Returns the disk, the frames, and the LSN ranges appended as groups.
/// Frames as (LSN, payload).
type Frames = Vec<(Lsn, Vec<u8>)>;

fn clean_log() -> (SimStorage, Frames, Vec<(Lsn, Lsn)>) {
    let disk = SimStorage::new("/sim/wal");
    let wal = open_sim(&disk, small_opts()).expect("open");
    let mut frames = Vec::new();
    let mut groups = Vec::new();
    let mut n = 0;
    while frames.len() < 40 {
        if n % 5 == 4 {
            let g: Vec<Vec<u8>> = (0..3).map(|i| payload(7, n * 10 + i)).collect();
            let refs: Vec<&[u8]> = g.iter().map(Vec::as_slice).collect();
            let lsns = wal.append_batch(&refs).expect("batch");
            groups.push((*lsns.start(), *lsns.end()));
            frames.extend(lsns.zip(g));
        } else {
            let p = payload(7, n * 10);
            frames.push((wal.append(&p).expect("append"), p));
        }
        n += 1;
    }
    wal.close().expect("close");
    drop(wal);
    (disk.clone_synced(), frames, groups)
}

/// The files of the log and where frames lie in each (header, then frames up to end).
fn layout(disk: &SimStorage) -> Vec<(String, Vec<u8>)> {
    use orderlog_wal::storage::Storage;
    disk.list()
        .expect("list")
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .map(|n| {
            let bytes = disk.file_bytes(&n).expect("bytes");
            (n, bytes)
        })
        .collect()
}

/// Offset past the last non-zero byte: the part of the file a flip can meaningfully hit.
/// The offsets below `end` that someone reads: the header, the two checkpoint slots and
/// the frames (the zero bytes between them are read by no one: a flip there, or a cut
/// inside them, changes nothing the next offset would not show).
fn meaningful(end: usize) -> impl Iterator<Item = usize> {
    let slots = orderlog_wal::format::CHECKPOINT_SLOT_OFFSETS;
    let slot = orderlog_wal::format::CHECKPOINT_BYTES;
    (0..64)
        .chain(slots[0]..slots[0] + slot)
        .chain(slots[1]..slots[1] + slot)
        .chain(FRAMES..end.max(FRAMES))
        .filter(move |&at| at < end)
}

fn used_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

fn check_damaged_copy(
    damaged: &SimStorage,
    frames: &[(Lsn, Vec<u8>)],
    groups: &[(Lsn, Lsn)],
    must_report: bool,
    what: &str,
) {
    for mode in [RecoveryMode::Strict, RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime] {
        let copy = damaged.clone_synced();
        let outcome = open_sim_mode(&copy, mode).and_then(|wal| read_all(&wal));
        match (mode, outcome) {
            (RecoveryMode::PointInTime, Ok(got)) => {
                assert_eq!(got[..], frames[..got.len()], "{what} {mode:?}: not a prefix");
                if let Some(&(last, _)) = got.last() {
                    assert!(
                        !groups.iter().any(|&(a, b)| a <= last && last < b),
                        "{what}: PointInTime split a group at {last}"
                    );
                }
            }
            (RecoveryMode::PointInTime, Err(e)) => panic!("{what}: PointInTime failed: {e}"),
            (_, Ok(got)) => {
                assert!(
                    !(must_report && mode == RecoveryMode::Strict),
                    "{what}: Strict missed damage"
                );
                assert_eq!(got, frames, "{what} {mode:?}: returned a different log");
            }
            (_, Err(e)) => {
                assert!(e.is_corruption(), "{what} {mode:?}: unexpected error {e}");
            }
        }
    }
}

#[test]
fn corruption_every_flipped_byte_is_caught_or_harmless() {
    let (disk, frames, groups) = clean_log();
    let files = layout(&disk);
    assert!(files.len() >= 3, "log should span segments");
    let mut cases = 0;
    for (name, bytes) in &files {
        let used = used_len(bytes);
        for at in meaningful(used) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            let copy = disk.clone_synced();
            copy.set_file_bytes(name, damaged);
            // A flip in the fixed header or inside the frames must be reported by Strict.
            let in_header = at < 64;
            let in_frames = at >= FRAMES;
            let what = format!("flip {name}@{at}");
            check_damaged_copy(&copy, &frames, &groups, in_header || in_frames, &what);
            cases += 1;
        }
    }
    assert!(cases > 4000, "swept only {cases} offsets");
}

#[test]
fn corruption_every_cut_length_is_caught_or_harmless() {
    let (disk, frames, groups) = clean_log();
    for (name, bytes) in layout(&disk) {
        let used = used_len(&bytes);
        for len in meaningful(used + 1) {
            let copy = disk.clone_synced();
            copy.set_file_bytes(&name, bytes[..len].to_vec());
            let what = format!("cut {name} to {len}");
            check_damaged_copy(&copy, &frames, &groups, len < used, &what);
        }
    }
}

#[test]
fn corruption_mid_log_frame_is_reported_with_file_and_offset() {
    let (disk, frames, _) = clean_log();
    let files = layout(&disk);
    let (name, bytes) = &files[files.len() - 1];
    let mut damaged = bytes.clone();
    damaged[FRAMES + 20] ^= 1; // inside the first frame's payload of the last segment
    disk.set_file_bytes(name, damaged);
    let err = open_sim_mode(&disk, RecoveryMode::TolerateTornTail).expect_err("corruption");
    match err {
        WalError::Corruption { file, offset, .. } => {
            assert!(file.ends_with(name), "{file:?}");
            assert_eq!(offset, FRAMES as u64);
        }
        other => panic!("expected corruption, got {other}"),
    }
    let wal = open_sim_mode(&disk, RecoveryMode::PointInTime).expect("point in time");
    let report = wal.recovery_report().clone();
    let cut = report.truncated.expect("truncation reported");
    assert_eq!(cut.offset, FRAMES as u64);
    assert!(read_all(&wal).expect("read").len() < frames.len());
}

/// The log's files, name and bytes, as the disk holds them now.
fn snapshot_of(disk: &SimStorage) -> Vec<(String, Vec<u8>)> {
    disk.files().into_iter().map(|n| (n.clone(), disk.file_bytes(&n).unwrap_or_default())).collect()
}

/// `PointInTime` recovery decides on a read-only pass: a caller that looks at what it
/// would cut and walks away leaves every byte where it was.
#[test]
fn corruption_point_in_time_plan_refused_changes_nothing() {
    let (disk, _, _) = clean_log();
    let files = layout(&disk);
    let (name, bytes) = &files[0];
    let mut damaged = bytes.clone();
    damaged[FRAMES + 20] ^= 1;
    disk.set_file_bytes(name, damaged);
    let before = snapshot_of(&disk);
    let opts =
        orderlog_wal::WalOptions { recovery_mode: RecoveryMode::PointInTime, ..small_opts() };
    let storage = std::sync::Arc::new(disk.clone());
    let recovered =
        orderlog_wal::Wal::lock(storage, opts).expect("lock").recover(0).expect("recover");
    let report = recovered.report().clone();
    assert!(report.truncated.is_some(), "the plan cuts the damaged segment");
    assert!(!report.discarded_segments.is_empty(), "the plan sets later segments aside");
    drop(recovered);
    assert!(snapshot_of(&disk) == before, "a refused plan changed the log");
}

/// Flips a bit in the first frame of the `i`-th segment (or, with `header`, in its
/// header); returns the segment's name, its bytes before and after, and the later ones.
fn damage_segment(disk: &SimStorage, i: usize, header: bool) -> (String, Vec<u8>, Frames2) {
    let files = layout(disk);
    let (name, bytes) = &files[i];
    let mut damaged = bytes.clone();
    damaged[if header { 10 } else { FRAMES + 20 }] ^= 1;
    disk.set_file_bytes(name, damaged.clone());
    (name.clone(), damaged, files[i + 1..].to_vec())
}

type Frames2 = Vec<(String, Vec<u8>)>;

/// Appends until the log has `segments` segments, then closes it.
fn grow(wal: orderlog_wal::Wal, segments: usize) {
    let mut n = 10_000;
    while wal.segment_bases().len() < segments {
        wal.append(&payload(8, n)).expect("append");
        n += 1;
    }
    wal.close().expect("close");
}

/// What `PointInTime` cuts is copied to a file of its own first, and a second cut at the
/// same place does not replace the first copy.
#[test]
fn corruption_point_in_time_copies_every_byte_it_cuts() {
    let (disk, _, _) = clean_log();
    let (name, damaged, later) = damage_segment(&disk, 1, false);
    let wal = open_sim_mode(&disk, RecoveryMode::PointInTime).expect("point in time");
    let report = wal.recovery_report().clone();
    let cut = report.truncated.clone().expect("a cut");
    let copy_name = |r: &orderlog_wal::RecoveryReport, i: usize| {
        r.cut_copies[i].file_name().expect("name").to_string_lossy().into_owned()
    };
    assert_eq!(report.cut_copies.len(), 1, "{report:?}");
    assert_eq!(copy_name(&report, 0), format!("{name}.cut-{}.discarded", cut.offset));
    let first_copy = disk.file_bytes(&copy_name(&report, 0)).expect("the copy");
    assert!(first_copy == damaged[cut.offset as usize..used_len(&damaged)], "the copy's bytes");
    for (later_name, bytes) in &later {
        let aside = disk.file_bytes(&format!("{later_name}.discarded"));
        assert!(aside.as_ref() == Some(bytes), "{later_name} not set aside whole");
    }
    grow(wal, 3);
    let (again, damaged_again, _) = damage_segment(&disk, 1, false);
    assert_eq!(again, name);
    let wal = open_sim_mode(&disk, RecoveryMode::PointInTime).expect("point in time again");
    let report2 = wal.recovery_report().clone();
    assert_eq!(copy_name(&report2, 0), format!("{name}.cut-{}.discarded.2", cut.offset));
    let cut2 = report2.truncated.clone().expect("a second cut");
    let second_copy = disk.file_bytes(&copy_name(&report2, 0)).expect("the second copy");
    assert!(second_copy == damaged_again[cut2.offset as usize..used_len(&damaged_again)]);
    assert!(disk.file_bytes(&copy_name(&report, 0)) == Some(first_copy), "the first copy changed");
}

/// A segment set aside under a name an earlier recovery already used gets a name of its
/// own; the earlier one is never replaced.
#[test]
fn corruption_point_in_time_never_sets_aside_over_an_earlier_segment() {
    let (disk, _, _) = clean_log();
    let (name, damaged, _) = damage_segment(&disk, 1, true);
    let wal = open_sim_mode(&disk, RecoveryMode::PointInTime).expect("point in time");
    assert!(disk.file_bytes(&format!("{name}.discarded")) == Some(damaged.clone()), "set aside");
    // The log continues from the end of the first segment: its next segment takes the
    // set-aside one's name (the same first LSN).
    grow(wal, 3);
    let (again, damaged_again, _) = damage_segment(&disk, 1, true);
    assert_eq!(again, name, "the log's second segment begins at the same LSN");
    let wal = open_sim_mode(&disk, RecoveryMode::PointInTime).expect("point in time again");
    drop(wal);
    assert!(disk.file_bytes(&format!("{name}.discarded")) == Some(damaged), "replaced");
    assert!(disk.file_bytes(&format!("{name}.discarded.2")) == Some(damaged_again), "lost");
}

/// A checkpoint write whose whole page is torn or garbled by a power cut (a page is what
/// the page cache writes back) costs at most that checkpoint: the segment's header and
/// the other slot live in pages of their own, so the log opens with every frame. (With
/// the header and both slots in one page, one garbled page made the segment unreadable.)
#[test]
fn corruption_a_garbled_checkpoint_page_loses_nothing() {
    let (disk, frames, _) = clean_log();
    let files = layout(&disk);
    let (name, bytes) = &files[files.len() - 1];
    for slot in orderlog_wal::format::CHECKPOINT_SLOT_OFFSETS {
        let page = slot / 4096 * 4096;
        for seed in 0..4u8 {
            let mut damaged = bytes.clone();
            for (i, b) in damaged[page..page + 4096].iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(31).wrapping_add(seed.wrapping_mul(97)) ^ 0x5a;
            }
            let copy = disk.clone_synced();
            copy.set_file_bytes(name, damaged);
            for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime] {
                let what = format!("page {page} of {name} garbled ({seed}), {mode:?}");
                let wal = open_sim_mode(&copy.clone_synced(), mode)
                    .unwrap_or_else(|e| panic!("{what}: the log does not open: {e}"));
                let got = read_all(&wal).expect("read");
                assert!(got == frames, "{what}: {} of {} frames", got.len(), frames.len());
            }
        }
    }
}

/// A group whose middle frame lost a sector of its payload while the sectors of the
/// frames after it survived (a power cut may keep a later sector without an earlier one)
/// is cut whole: every frame of a group is checked, not only the one that closes it.
#[test]
fn corruption_a_group_missing_a_middle_sector_is_cut_whole() {
    let disk = SimStorage::new("/sim/wal");
    let wal = open_sim(&disk, small_opts()).expect("open");
    wal.append(b"before").expect("append");
    let frames: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; 1200]).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let lsns = wal.append_batch(&refs).expect("group");
    drop(wal);
    let name = orderlog_wal::format::segment_file_name(1);
    let mut bytes = disk.file_bytes(&name).expect("segment");
    // The group starts after the first frame (16 + 8 bytes); its second frame's payload
    // runs from 24 + 1216 + 16 onwards: zero one whole sector inside it.
    let second_payload = FRAMES + 24 + 1216 + 16;
    let sector = second_payload.next_multiple_of(512);
    assert!(sector + 512 <= second_payload + 1200, "the sector lies inside the payload");
    bytes[sector..sector + 512].fill(0);
    disk.set_file_bytes(&name, bytes);
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime] {
        match open_sim_mode(&disk.clone_synced(), mode) {
            Ok(wal) => {
                let got = read_all(&wal).expect("read");
                let lsns_got: Vec<Lsn> = got.iter().map(|f| f.0).collect();
                assert!(
                    got == vec![(1, b"before".to_vec())],
                    "{mode:?}: the group {lsns:?} was not cut whole: LSNs {lsns_got:?} read"
                );
            }
            Err(e) => assert!(e.is_corruption(), "{mode:?}: {e}"),
        }
    }
}
