//! The file system mounted for real: what the kernel forwards, what survives a power cut.
//! Skipped, with the reason printed, where FUSE is unavailable, unless
//! `ORDERLOG_REQUIRE_FUSE=1` (CI sets it) makes that a failure.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests fail loudly on purpose")]

use std::fs::File;
use std::io::Write;
use std::path::Path;

use orderlog_crashfs::{CrashFs, Fault};
use orderlog_storage::{FsStorage, IoBackend, Storage};

/// A mounted file system over a fresh backing directory, or `None` (skip).
fn mounted() -> Option<(CrashFs, tempfile::TempDir)> {
    if let Err(e) = CrashFs::check_available() {
        assert!(std::env::var_os("ORDERLOG_REQUIRE_FUSE").is_none(), "{e}");
        eprintln!("skipped: {e}");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("backing")).unwrap();
    std::fs::create_dir(tmp.path().join("mnt")).unwrap();
    let fs = CrashFs::mount(tmp.path().join("backing"), tmp.path().join("mnt")).unwrap();
    Some((fs, tmp))
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

#[test]
fn mount_unsynced_files_vanish_synced_ones_survive() {
    let Some((fs, _tmp)) = mounted() else { return };
    let root = fs.path().to_path_buf();
    std::fs::create_dir(root.join("d")).unwrap();
    let mut durable = File::create(root.join("d/durable")).unwrap();
    durable.write_all(b"synced bytes").unwrap();
    durable.sync_all().unwrap();
    sync_dir(&root.join("d"));
    sync_dir(&root);
    durable.write_all(b", then more").unwrap();
    // Synced data under a name never synced: the name may go, with the data.
    let mut nameless = File::create(root.join("d/nameless")).unwrap();
    nameless.write_all(b"data").unwrap();
    nameless.sync_all().unwrap();
    std::fs::write(root.join("unsynced"), b"never synced").unwrap();
    drop((durable, nameless));
    let stats = fs.stats().unwrap();
    assert!(stats.file_syncs >= 2 && stats.dir_syncs >= 2, "{stats:?}");

    let mut fs = fs;
    for seed in 0..8 {
        // Each cut is of the image the previous one left: what survived is durable now.
        fs = fs.power_cut(seed).unwrap();
        let bytes = std::fs::read(fs.path().join("d/durable")).unwrap();
        assert!(bytes.starts_with(b"synced bytes"), "seed {seed}: {bytes:?}");
        if let Ok(bytes) = std::fs::read(fs.path().join("unsynced")) {
            assert!(bytes.len() <= 12, "seed {seed}: {bytes:?}");
        }
    }
    assert!(fs.backing().join("d/durable").is_file(), "the backing directory holds the image");
}

#[test]
fn mount_segment_keeps_what_its_sync_covered() {
    for backend in [IoBackend::Mmap, IoBackend::Pwrite] {
        let Some((fs, _tmp)) = mounted() else { return };
        let storage = FsStorage::new(fs.path()).with_backend(backend);
        storage.create_dir().unwrap();
        let segment = storage.create("seg.wal", 64 * 1024).unwrap();
        segment.sync_range(0, 64 * 1024).unwrap();
        storage.sync_dir().unwrap();
        segment.write_at(0, &[&[1u8; 8192]]).unwrap();
        segment.sync_range(0, 8192).unwrap();
        segment.write_at(8192, &[&[2u8; 8192]]).unwrap(); // in the page cache only
        drop(segment);
        drop(storage);
        // The synced 8 KiB reached the file system through the kernel (for the mapping:
        // the page cache's writeback, which msync started).
        assert!(
            fs.stats().unwrap().bytes_written >= 8192,
            "{backend:?}: {:?}",
            fs.stats().unwrap()
        );
        let fs = fs.power_cut(1).unwrap();
        let bytes = std::fs::read(fs.path().join("seg.wal")).unwrap();
        assert_eq!(bytes.len(), 64 * 1024, "{backend:?}");
        assert!(bytes[..8192].iter().all(|&b| b == 1), "{backend:?}: synced frames lost");
    }
}

#[test]
fn mount_a_failed_fsync_is_reported_and_its_writes_are_lost() {
    let Some((fs, _tmp)) = mounted() else { return };
    let path = fs.path().join("x.wal");
    let mut f = File::create(&path).unwrap();
    f.write_all(b"first").unwrap();
    f.sync_all().unwrap();
    sync_dir(fs.path());
    fs.inject(Fault::eio_on_fsync(1).on_names_containing(".wal")).unwrap();
    f.write_all(b" second").unwrap();
    let err = f.sync_all().expect_err("the injected fault");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert_eq!(fs.faults_fired().unwrap(), 1);
    // Linux reports a writeback error once; the next sync succeeds without the data.
    f.sync_all().unwrap();
    drop(f);
    let fs = fs.power_cut(0).unwrap();
    assert_eq!(std::fs::read(fs.path().join("x.wal")).unwrap(), b"first");
}

#[test]
fn mount_a_directory_emptied_while_listed_can_be_removed() {
    // `remove_dir_all` unlinks entries while it lists them: a listing must not shift
    // under it (more entries than one `getdents` of the standard library returns).
    let Some((fs, _tmp)) = mounted() else { return };
    let dir = fs.path().join("snapshot-1");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..3000 {
        std::fs::write(dir.join(format!("part-{i:04}.parquet")), b"x").unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!dir.exists());
}
