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
//! The file system is served by a daemon process (the `orderlog-crashfs` binary of this
//! crate), so the process under test and the test itself may both use the mount, maps
//! included: a process that maps files from a FUSE mount it serves itself can deadlock.
//! [`CrashFs`] finds the binary through `ORDERLOG_CRASHFS_BIN`, then beside the running
//! executable or up to two directories above it (a test binary in `target/release/deps`
//! finds `target/release/orderlog-crashfs`), then on `PATH`.
//!
//! Needs Linux, `/dev/fuse`, either root or `fusermount3` (Debian's `fuse3`), and that
//! binary (`cargo build --release -p orderlog-crashfs` in this workspace; `cargo install
//! --path crashfs` for a service's own workspace). [`CrashFs::check_available`]
//! says what is missing, so a test can skip with a clear message.
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

mod daemon;
mod fault;
mod fs;
mod model;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use fault::{Fault, FaultError, FaultOp};
pub use model::FsStats;

/// The daemon's entry point, for the `orderlog-crashfs` binary.
#[doc(hidden)]
pub use daemon::run as run_daemon;

/// The daemon binary's name.
pub const DAEMON_BINARY: &str = "orderlog-crashfs";
/// The environment variable naming the daemon binary's path.
pub const DAEMON_BINARY_VAR: &str = "ORDERLOG_CRASHFS_BIN";

/// Why the file system could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrashFsError {
    /// FUSE or the daemon binary is not usable here (not Linux, no `/dev/fuse`, neither
    /// root nor `fusermount3`, no `orderlog-crashfs` binary).
    #[error("the crash file system is not available: {reason}")]
    Unavailable {
        /// What is missing.
        reason: String,
    },
    /// The daemon could not be started or talked to.
    #[error("the crash file system's daemon ({binary}): {source}")]
    Spawn {
        /// The daemon binary.
        binary: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The daemon refused a command or failed (mounting, unmounting, writing the image).
    #[error("the crash file system at {mountpoint}: {message}")]
    Daemon {
        /// Where it is (or was to be) mounted.
        mountpoint: PathBuf,
        /// What the daemon said, or how it ended.
        message: String,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, CrashFsError>;

/// A mounted crash-consistency file system; see the crate docs. Dropping it unmounts,
/// leaving the backing directory as the last power cut (or the mount) left it.
#[derive(Debug)]
pub struct CrashFs {
    daemon: Mutex<Daemon>,
    mountpoint: PathBuf,
    backing: PathBuf,
}

/// The daemon process, its input, and its output's lines (read by a thread of their own,
/// so that waiting for an answer has a deadline).
#[derive(Debug)]
struct Daemon {
    child: Child,
    input: Option<ChildStdin>,
    output: Receiver<std::io::Result<String>>,
    /// Set once it has unmounted (or been killed): nothing more to ask.
    done: bool,
}

/// How long a daemon may take to exit after unmounting before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// How long a daemon may take to answer (a power cut writes the whole image) before it is
/// killed. Killed, it closes the kernel connection, so no process hangs on the mount.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads `output` line by line into a channel, until its end.
fn read_lines(output: ChildStdout) -> Receiver<std::io::Result<String>> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

impl CrashFs {
    /// Ok if a mount can work here; otherwise what is missing, for a test to print as
    /// it skips.
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
        if !root && on_path("fusermount3").is_none() {
            return unavailable(
                "neither root nor fusermount3 (Debian's fuse3 package) to mount with".into(),
            );
        }
        daemon_binary().map(drop)
    }

    /// Mounts at `mountpoint` (an existing, empty directory) the tree in `backing` (a
    /// directory, possibly empty), all of it durable, served by a new daemon process.
    pub fn mount(backing: impl AsRef<Path>, mountpoint: impl AsRef<Path>) -> Result<CrashFs> {
        let backing = backing.as_ref().to_path_buf();
        let mountpoint = mountpoint.as_ref().to_path_buf();
        let binary = daemon_binary()?;
        let spawn_err = |source| CrashFsError::Spawn { binary: binary.clone(), source };
        // Its own process group: a Ctrl-C at the terminal stops the test, whose exit
        // closes the daemon's input, and the daemon then unmounts cleanly.
        let mut child = Command::new(&binary)
            .process_group(0)
            .arg(&backing)
            .arg(&mountpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_err(std::io::Error::other("no pipes to the daemon")));
        };
        let daemon = Daemon { child, input: Some(input), output: read_lines(output), done: false };
        let fs = CrashFs { daemon: Mutex::new(daemon), mountpoint, backing };
        let ready = fs.daemon().read_line();
        let expected = format!("ready {}", daemon::PROTOCOL);
        match ready {
            Ok(line) if line == expected => {}
            Ok(line) if line.starts_with("ready") => {
                let _ = fs.daemon().finish(true);
                return Err(fs.daemon_error(format!(
                    "{} answered `{line}`, not `{expected}`: a binary of another version \
                     (rebuild it: cargo build --release -p orderlog-crashfs)",
                    binary.display()
                )));
            }
            other => {
                let message = match other {
                    Ok(line) => line.strip_prefix("error ").unwrap_or(&line).to_string(),
                    Err(e) => e,
                };
                // It exits after saying why; reap it.
                let _ = fs.daemon().finish(false);
                return Err(fs.daemon_error(message));
            }
        }
        tracing::debug!(mountpoint = %fs.mountpoint.display(), backing = %fs.backing.display(), "crash file system mounted");
        Ok(fs)
    }

    /// Where the file system is mounted: the directory the program under test uses.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The backing directory: the durable image as of the mount or the last power cut.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    fn daemon(&self) -> MutexGuard<'_, Daemon> {
        // The guarded value is a process handle and its pipes: whole whatever a panic
        // interrupted.
        self.daemon.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn daemon_error(&self, message: String) -> CrashFsError {
        CrashFsError::Daemon { mountpoint: self.mountpoint.clone(), message }
    }

    /// Sends `command` and returns the answer, which must start with `expect`.
    fn ask(&self, command: &str, expect: &str) -> Result<String> {
        let answer = self.daemon().ask(command).map_err(|e| self.daemon_error(e))?;
        match answer.strip_prefix(expect) {
            Some(rest) => Ok(rest.trim().to_string()),
            None => Err(self.daemon_error(format!("`{command}` answered `{answer}`"))),
        }
    }

    /// Arms a fault; several may be armed, each counting its own operations.
    pub fn inject(&self, fault: Fault) -> Result<()> {
        self.ask(&format!("inject {}", daemon::fault_words(&fault)), "ok").map(drop)
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) -> Result<()> {
        self.ask("clear", "ok").map(drop)
    }

    /// How many of the armed faults have fired.
    pub fn faults_fired(&self) -> Result<usize> {
        let n = self.ask("fired", "fired ")?;
        n.parse().map_err(|_| self.daemon_error(format!("fired `{n}`")))
    }

    /// What the file system has done since it was mounted.
    pub fn stats(&self) -> Result<FsStats> {
        let line = self.ask("stats", "stats ")?;
        let n: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [
            writes,
            bytes_written,
            file_syncs,
            dir_syncs,
            faults_fired,
            refused_after_cut,
            operations,
        ] = n[..]
        else {
            return Err(self.daemon_error(format!("stats `{line}`")));
        };
        Ok(FsStats {
            writes,
            bytes_written,
            file_syncs,
            dir_syncs,
            faults_fired,
            refused_after_cut,
            operations,
        })
    }

    /// Cuts the power at an operation rather than at a moment: the `n`-th mutating
    /// operation from now (from 1; see [`FsStats::operations`]) and every later one fail
    /// with `EIO` and change nothing, as if the power had gone off just before it. The
    /// program under test sees errors from then on; kill it, then [`CrashFs::power_cut`]
    /// draws the image from the state at that point. A kill lands where timing lets it;
    /// this reaches every step, such as the instant between a rename and the sync that
    /// should have preceded it.
    pub fn cut_power_after(&self, n: u64) -> Result<()> {
        self.ask(&format!("cutafter {n}"), "ok").map(drop)
    }

    /// Cuts the power: from now on every operation on the mount fails. The image a power
    /// cut leaves is drawn from `seed` (the same state and seed give the same image) and
    /// written to the backing directory, replacing what was there. The kernel's
    /// connection is aborted and the file system unmounted, the kernel's cached pages
    /// dying with it; then the image is mounted again at the same place. Stop the
    /// program under test first (kill it); a process still holding files on the mount
    /// only gets errors from them.
    pub fn power_cut(self, seed: u64) -> Result<CrashFs> {
        self.ask(&format!("cut {seed}"), "cut ")?;
        self.daemon().finish(false).map_err(|e| self.daemon_error(e))?;
        tracing::debug!(seed, mountpoint = %self.mountpoint.display(), "power cut");
        CrashFs::mount(&self.backing, &self.mountpoint)
    }
}

impl Daemon {
    fn read_line(&mut self) -> std::result::Result<String, String> {
        match self.output.recv_timeout(ANSWER_TIMEOUT) {
            Ok(Ok(line)) => Ok(line.trim_end().to_string()),
            Ok(Err(e)) => Err(format!("reading from the daemon: {e}")),
            Err(RecvTimeoutError::Disconnected) => Err(self.ended()),
            Err(RecvTimeoutError::Timeout) => {
                self.done = true;
                let _ = self.child.kill();
                let _ = self.child.wait();
                Err(format!("no answer from the daemon within {ANSWER_TIMEOUT:?}: killed"))
            }
        }
    }

    fn ask(&mut self, command: &str) -> std::result::Result<String, String> {
        if self.done {
            return Err("the daemon has unmounted".into());
        }
        let Some(input) = self.input.as_mut() else { return Err("no pipe to the daemon".into()) };
        if let Err(e) = writeln!(input, "{command}").and_then(|()| input.flush()) {
            return Err(format!("writing to the daemon: {e} ({})", self.ended()));
        }
        self.read_line()
    }

    /// How the daemon ended, once it has.
    fn ended(&mut self) -> String {
        match self.child.wait() {
            Ok(status) => format!("the daemon exited ({status})"),
            Err(e) => format!("the daemon is gone: {e}"),
        }
    }

    /// Waits for the daemon to exit (asking it to unmount first if `unmount`), killing it
    /// after [`EXIT_GRACE`]: killed, it closes the kernel connection, which fails every
    /// request on the mount.
    fn finish(&mut self, unmount: bool) -> std::result::Result<(), String> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        if unmount && let Some(input) = self.input.as_mut() {
            let _ = writeln!(input, "unmount").and_then(|()| input.flush());
        }
        // End of input: a daemon still serving unmounts and exits.
        drop(self.input.take());
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the daemon exited ({status})")),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) | Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!("the daemon did not exit within {EXIT_GRACE:?}: killed"));
                }
            }
        }
    }
}

impl Drop for CrashFs {
    fn drop(&mut self) {
        if let Err(e) = self.daemon().finish(true) {
            // A killed daemon leaves its mount behind, disconnected: detach it (as root;
            // otherwise `fusermount3 -uz <mount point>` does).
            let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
            tracing::warn!(error = %e, mountpoint = %self.mountpoint.display(), "crash file system not unmounted cleanly");
        }
    }
}

/// `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The daemon binary: `ORDERLOG_CRASHFS_BIN`, beside the running executable or up to two
/// directories above it, or on `PATH`.
fn daemon_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(DAEMON_BINARY_VAR) {
        return Ok(PathBuf::from(path));
    }
    let near = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors().skip(1).take(3).map(|d| d.join(DAEMON_BINARY)).find(|p| p.is_file())
    });
    near.or_else(|| on_path(DAEMON_BINARY)).ok_or_else(|| CrashFsError::Unavailable {
        reason: format!(
            "no {DAEMON_BINARY} binary beside this program, on PATH or in \
             {DAEMON_BINARY_VAR}: build it with `cargo build --release -p orderlog-crashfs`"
        ),
    })
}
