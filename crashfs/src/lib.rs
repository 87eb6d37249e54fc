//! A crash-consistency file system for tests: power cuts through the real kernel I/O path.
//!
//! [`CrashFs`] mounts a FUSE file system whose files and directories behave as a disk's
//! do across a power cut. Everything a program writes is readable at once, but it
//! becomes *durable* only under POSIX's rules:
//! - a file's written bytes and length become durable when the file is synced: `fsync`,
//!   `fdatasync`, or `msync(MS_SYNC)` on a mapping of it (the kernel writes the mapping's
//!   dirty pages back, then syncs);
//! - a new name, a rename or a removal becomes durable when its directory is synced.
//!
//! [`CrashFs::power_cut`] unmounts and keeps only what was durable. Some unsynced changes
//! may also survive, drawn from a seed:
//! - an unsynced write may be kept whole, torn at a 512 B or 4 KiB boundary, kept sector
//!   by sector in any order, or garbled. Only its new bytes: the page cache writes a
//!   mapped page back whole, and the bytes it rewrites unchanged stay as they were;
//! - of each directory's unsynced changes, a prefix or any subset may be kept, each
//!   change whole (a rename never half done).
//!
//! The image is written to the backing directory and mounted again for recovery. The
//! program under test must be dead by then: a child process, killed. The kernel's own
//! page cache dies with the mount, so a test that passes here has not leaned on cached
//! pages that a real power cut would drop. Examples: a missing `msync`, or a missing
//! directory sync after creating a file.
//!
//! [`CrashFs::inject`] fails the N-th write, sync or `fallocate` with `EIO` or `ENOSPC`.
//! A failed file sync loses that file's unsynced writes for good, as Linux's writeback
//! does. The kernel's page cache may keep serving them (clean, as on a local file system).
//! A read past the cache (`posix_fadvise(POSIX_FADV_DONTNEED)`) finds what the device
//! holds.
//!
//! It is modelled on LazyFS, which keeps unsynced data in its own cache and drops it on
//! command. Differences:
//! - the whole tree is held in memory: the backing directory is read at mount and
//!   rewritten at each power cut, so size tests accordingly;
//! - only regular files and directories exist here (no links, no special files).
//!
//! Needs Linux, `/dev/fuse`, and either root or `fusermount3` (Debian's `fuse3`).
//! [`CrashFs::check_available`] says why not, so a test can skip with a clear message.
//!
//! ```no_run
//! use orderlog_crashfs::{CrashFs, Fault};
//!
//! let backing = tempfile::tempdir()?; // the durable image between mounts
//! let mount = tempfile::tempdir()?; // where the program under test sees its files
//! let fs = CrashFs::mount(backing.path(), mount.path())?;
//! std::fs::write(fs.path().join("data"), b"unsynced")?;
//! // ... run the program under test in a child process on fs.path(), kill it ...
//! let fs = fs.power_cut(7)?; // only durable state (plus seeded leftovers) remains
//! assert!(std::fs::read(fs.path().join("data")).is_err()); // the name was never synced
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod fault;
mod fs;
mod model;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use fault::{Fault, FaultError, FaultOp};
pub use model::FsStats;

use model::Model;

/// Why the file system could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrashFsError {
    /// FUSE is not usable here (not Linux, no `/dev/fuse`, or neither root nor
    /// `fusermount3`).
    #[error("FUSE is not available: {reason}")]
    Unavailable {
        /// What is missing.
        reason: String,
    },
    /// Mounting at `mountpoint` failed.
    #[error("mounting the crash file system at {mountpoint}: {source}")]
    Mount {
        /// Where.
        mountpoint: PathBuf,
        /// The mount's error.
        source: std::io::Error,
    },
    /// Unmounting failed.
    #[error("unmounting the crash file system at {mountpoint}: {source}")]
    Unmount {
        /// Where.
        mountpoint: PathBuf,
        /// The unmount's error.
        source: std::io::Error,
    },
    /// Reading or writing the backing directory failed.
    #[error("backing directory {path}: {source}")]
    Backing {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, CrashFsError>;

/// A mounted crash-consistency file system; see the crate docs. Dropping it unmounts,
/// leaving the backing directory as the last power cut (or the mount) left it.
#[derive(Debug)]
pub struct CrashFs {
    model: Arc<Mutex<Model>>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
    backing: PathBuf,
}

impl CrashFs {
    /// Ok if a mount can work here; otherwise why not, for a test to print as it skips.
    pub fn check_available() -> Result<()> {
        let unavailable = |reason: String| Err(CrashFsError::Unavailable { reason });
        if !cfg!(target_os = "linux") {
            return unavailable("it needs Linux".into());
        }
        if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
            return unavailable(format!("cannot open /dev/fuse: {e}"));
        }
        let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1))
                == Some("0")
        });
        let fusermount = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|d| d.join("fusermount3").is_file())
        });
        if !root && !fusermount {
            return unavailable(
                "neither root nor fusermount3 (Debian's fuse3 package) to mount with".into(),
            );
        }
        Ok(())
    }

    /// Mounts at `mountpoint` (an existing, empty directory) the tree in `backing` (a
    /// directory, possibly empty), all of it durable.
    pub fn mount(backing: impl AsRef<Path>, mountpoint: impl AsRef<Path>) -> Result<CrashFs> {
        let backing = backing.as_ref().to_path_buf();
        let mountpoint = mountpoint.as_ref().to_path_buf();
        let model = Model::load(&backing)
            .map_err(|source| CrashFsError::Backing { path: backing.clone(), source })?;
        let model = Arc::new(Mutex::new(model));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("orderlog-crashfs".into()),
            fuser::MountOption::Subtype("crashfs".into()),
            fuser::MountOption::RW,
        ];
        let session = fuser::spawn_mount(fs::CrashFsOps::new(model.clone()), &mountpoint, &config)
            .map_err(|source| CrashFsError::Mount { mountpoint: mountpoint.clone(), source })?;
        tracing::debug!(mountpoint = %mountpoint.display(), backing = %backing.display(), "crash file system mounted");
        Ok(CrashFs { model, session: Some(session), mountpoint, backing })
    }

    /// Where the file system is mounted: the directory the program under test uses.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The backing directory: the durable image as of the mount or the last power cut.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        // A panic while holding the lock leaves a model that is still whole: every
        // operation changes it in one step after its checks.
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms a fault; several may be armed, each counting its own operations.
    pub fn inject(&self, fault: Fault) {
        self.model().inject(fault);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.model().clear_faults();
    }

    /// How many of the armed faults have fired.
    pub fn faults_fired(&self) -> usize {
        self.model().faults_fired()
    }

    /// What the file system has done since it was mounted.
    pub fn stats(&self) -> FsStats {
        self.model().stats()
    }

    /// Cuts the power: from now on every operation on the mount fails. The image a power
    /// cut leaves is drawn from `seed` (the same state and seed give the same image) and
    /// written to the backing directory, replacing what was there. Then the file system
    /// is unmounted, the kernel's cached pages dying with it, and the image is mounted
    /// again at the same place. Stop the program under test first (kill it); a process
    /// still holding files on the mount only delays the unmount.
    pub fn power_cut(mut self, seed: u64) -> Result<CrashFs> {
        let image = self.model().power_cut(seed);
        self.unmount()?;
        let backing = self.backing.clone();
        let backing_err = |source| CrashFsError::Backing { path: backing.clone(), source };
        for entry in std::fs::read_dir(&backing).map_err(backing_err)? {
            let path = entry.map_err(backing_err)?.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|source| CrashFsError::Backing { path, source })?;
        }
        image.write_to(&backing).map_err(backing_err)?;
        tracing::debug!(seed, files = image.files.len(), "power cut: durable image written");
        CrashFs::mount(&self.backing, &self.mountpoint)
    }

    /// Unmounts (lazily if something still holds a file there) and stops serving.
    fn unmount(&mut self) -> Result<()> {
        let Some(session) = self.session.take() else { return Ok(()) };
        let err = |source| CrashFsError::Unmount { mountpoint: self.mountpoint.clone(), source };
        use nix::mount::{MntFlags, umount2};
        match umount2(&self.mountpoint, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::errno::Errno::EBUSY) => {
                umount2(&self.mountpoint, MntFlags::MNT_DETACH).map_err(|e| err(e.into()))?;
            }
            // Not root: through fusermount3.
            Err(nix::errno::Errno::EPERM) => return session.umount_and_join().map_err(err),
            Err(e) => return Err(err(e.into())),
        }
        // The kernel closes the connection once unmounted: the session's loop ends.
        session.join().map_err(err)
    }
}

impl Drop for CrashFs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!(error = %e, "crash file system not unmounted cleanly");
        }
    }
}
