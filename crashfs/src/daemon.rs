//! The daemon: the process that serves one mount (the `orderlog-crashfs` binary).
//!
//! The file system is served from a process of its own. A process that both serves a
//! FUSE mount and maps files from it can deadlock: unmapping a dirty page waits for the
//! server while holding the process's memory-map lock, which the server's own page
//! faults and allocations need.
//!
//! Protocol, one line each way per command, on stdin and stdout:
//!
//! | command | answer |
//! |---|---|
//! | (at start) | `ready <protocol version>`, or `error <why>` and exit 1 |
//! | `inject <op> <nth> <eio\|enospc> <0\|1 persistent> <name hex, or ->` | `ok` |
//! | `clear` | `ok` |
//! | `fired` | `fired <faults that fired>` |
//! | `stats` | `stats <writes> <bytes> <file syncs> <dir syncs> <faults> <refused> <operations>` |
//! | `cutafter <n>` | `ok`: the power goes off at the `n`-th mutating operation from now |
//! | `cut <seed>` | `cut <files>`: power cut, image written to the backing directory, exit |
//! | `unmount` | `unmounted`, exit |
//!
//! End of input counts as `unmount`: the controlling process is gone. Teardown aborts
//! the kernel's connection first (`/sys/fs/fuse/connections/<n>/abort`, where the
//! `fusectl` file system is mounted or can be), so every request in flight and every
//! dirty page still cached fail at once: nothing reaches the backing directory.

use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::fault::{Fault, FaultError, FaultOp};
use crate::fs::CrashFsOps;
use crate::model::Model;

/// The protocol's version, in the `ready` line: a daemon binary left from another
/// version of this crate is refused, not misunderstood.
pub(crate) const PROTOCOL: u32 = 2;

/// Runs the daemon on `backing` and `mountpoint`; the binary's `main`.
pub fn run(backing: &Path, mountpoint: &Path) -> Result<(), String> {
    let model = Model::load(backing).map_err(|e| format!("{}: {e}", backing.display()))?;
    let model = Arc::new(Mutex::new(model));
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("orderlog-crashfs".into()),
        fuser::MountOption::Subtype("crashfs".into()),
        fuser::MountOption::RW,
    ];
    let session = fuser::spawn_mount(CrashFsOps::new(model.clone()), mountpoint, &config)
        .map_err(|e| format!("mounting at {}: {e}", mountpoint.display()))?;
    let abort = connection_abort_file(mountpoint);
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        // The controlling process reads every line; if it is gone, so is the reason to
        // serve, and the loop below ends at the end of input.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    say(format!("ready {PROTOCOL}"));
    let lock = || model.lock().unwrap_or_else(|p| p.into_inner());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["inject", fault @ ..] => match parse_fault(fault) {
                Ok(fault) => {
                    lock().inject(fault);
                    say("ok".into());
                }
                Err(e) => say(format!("error {e}")),
            },
            ["clear"] => {
                lock().clear_faults();
                say("ok".into());
            }
            ["fired"] => say(format!("fired {}", lock().faults_fired())),
            ["stats"] => {
                let s = lock().stats();
                say(format!(
                    "stats {} {} {} {} {} {} {}",
                    s.writes,
                    s.bytes_written,
                    s.file_syncs,
                    s.dir_syncs,
                    s.faults_fired,
                    s.refused_after_cut,
                    s.operations
                ));
            }
            ["cutafter", n] => match n.parse::<u64>() {
                Ok(n) => {
                    lock().cut_after(n);
                    say("ok".into());
                }
                Err(_) => say(format!("error bad count {n}")),
            },
            ["cut", seed] => {
                let Ok(seed) = seed.parse::<u64>() else {
                    say(format!("error bad seed {seed}"));
                    continue;
                };
                let image = lock().power_cut(seed);
                teardown(session, abort.as_deref(), mountpoint)?;
                clear_dir(backing)?;
                image.write_to(backing).map_err(|e| format!("{}: {e}", backing.display()))?;
                say(format!("cut {}", image.files.len()));
                return Ok(());
            }
            ["unmount"] => {
                teardown(session, abort.as_deref(), mountpoint)?;
                say("unmounted".into());
                return Ok(());
            }
            _ => say(format!("error unknown command: {line}")),
        }
    }
    teardown(session, abort.as_deref(), mountpoint)
}

/// The `abort` file of the mount's connection, mounting `fusectl` if needed; `None` when
/// it cannot be had (not root): teardown then only unmounts.
fn connection_abort_file(mountpoint: &Path) -> Option<PathBuf> {
    const CONNECTIONS: &str = "/sys/fs/fuse/connections";
    let dev = std::fs::metadata(mountpoint).ok()?.dev();
    // The connection is named by the minor number of the mount's device.
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    let abort = Path::new(CONNECTIONS).join(minor.to_string()).join("abort");
    if !abort.exists() {
        let _ = nix::mount::mount(
            Some("fusectl"),
            CONNECTIONS,
            Some("fusectl"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    abort.exists().then_some(abort)
}

/// Aborts the connection (what is in flight fails, cached dirty pages are dropped),
/// unmounts (lazily if a process still holds a file there) and waits for the session.
fn teardown(
    session: fuser::BackgroundSession,
    abort: Option<&Path>,
    mountpoint: &Path,
) -> Result<(), String> {
    if let Some(abort) = abort {
        let _ = std::fs::write(abort, "1");
    }
    let err = |e: &dyn std::fmt::Display| format!("unmounting {}: {e}", mountpoint.display());
    use nix::mount::{MntFlags, umount2};
    match umount2(mountpoint, MntFlags::empty()) {
        Ok(()) => {}
        // Busy (a process still holds a file there), or the aborted connection refuses
        // the unmount's own requests: detach it, the kernel finishes when it can.
        Err(
            nix::errno::Errno::EBUSY
            | nix::errno::Errno::ECONNABORTED
            | nix::errno::Errno::ENOTCONN,
        ) => {
            umount2(mountpoint, MntFlags::MNT_DETACH).map_err(|e| err(&e))?;
        }
        // Not root: through fusermount3.
        Err(nix::errno::Errno::EPERM) => return session.umount_and_join().map_err(|e| err(&e)),
        Err(e) => return Err(err(&e)),
    }
    // Unmounted (or aborted), the kernel ends the connection: the session's loop ends.
    session.join().map_err(|e| err(&e))
}

fn clear_dir(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The protocol's words for a fault: `<op> <nth> <eio|enospc> <0|1> <name hex or ->`.
pub(crate) fn fault_words(fault: &Fault) -> String {
    let op = match fault.op {
        FaultOp::Write => "write",
        FaultOp::Fsync => "fsync",
        FaultOp::FsyncDir => "fsyncdir",
        FaultOp::Fallocate => "fallocate",
        FaultOp::Create => "create",
        FaultOp::Rename => "rename",
        FaultOp::Remove => "remove",
    };
    let error = match fault.error {
        FaultError::Io => "eio",
        FaultError::NoSpace => "enospc",
    };
    let name = if fault.name.is_empty() {
        "-".to_string()
    } else {
        fault.name.iter().map(|b| format!("{b:02x}")).collect()
    };
    format!("{op} {} {error} {} {name}", fault.nth, u8::from(fault.persistent))
}

fn parse_fault(words: &[&str]) -> Result<Fault, String> {
    let [op, nth, error, persistent, name] = words else {
        return Err(format!("a fault is 5 words, not {}", words.len()));
    };
    let op = match *op {
        "write" => FaultOp::Write,
        "fsync" => FaultOp::Fsync,
        "fsyncdir" => FaultOp::FsyncDir,
        "fallocate" => FaultOp::Fallocate,
        "create" => FaultOp::Create,
        "rename" => FaultOp::Rename,
        "remove" => FaultOp::Remove,
        other => return Err(format!("unknown operation {other}")),
    };
    let error = match *error {
        "eio" => FaultError::Io,
        "enospc" => FaultError::NoSpace,
        other => return Err(format!("unknown error {other}")),
    };
    let nth = nth.parse().map_err(|_| format!("bad count {nth}"))?;
    let name = if *name == "-" {
        Vec::new()
    } else {
        (0..name.len() / 2)
            .map(|i| name.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| format!("bad name {name}"))?
    };
    Ok(Fault { op, nth, error, name, persistent: *persistent == "1" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_round_trip_through_the_protocol() {
        for fault in [
            Fault::eio_on_fsync(3).on_names_containing(".wal").persistent(),
            Fault::enospc_on_fallocate(1),
            Fault::new(FaultOp::Rename, 2, FaultError::Io).on_names_containing("MANIFEST"),
        ] {
            let words = fault_words(&fault);
            let parsed = parse_fault(&words.split_whitespace().collect::<Vec<_>>()).unwrap();
            assert_eq!(parsed, fault, "{words}");
        }
        assert!(parse_fault(&["fsync", "x", "eio", "0", "-"]).is_err());
        assert!(parse_fault(&["fsync", "1", "eio", "0", "zz"]).is_err());
        assert!(parse_fault(&["fsync"]).is_err());
    }
}
