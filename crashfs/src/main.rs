//! `orderlog-crashfs <backing dir> <mount point>`: serves a crash-consistency file system
//! (see the crate docs), driven by commands on stdin: `inject <op> <nth> <eio|enospc>
//! <0|1> <name hex|->`, `clear`, `fired`, `stats`, `cut <seed>` (power cut: the durable
//! image is written to the backing directory, then the daemon exits) and `unmount`.
//! Started by `orderlog_crashfs::CrashFs::mount`; usable by hand too.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [backing, mountpoint] = &args[..] else {
        eprintln!("usage: orderlog-crashfs <backing dir> <mount point>");
        return ExitCode::from(2);
    };
    match orderlog_crashfs::run_daemon(backing, mountpoint) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error {e}");
            eprintln!("orderlog-crashfs: {e}");
            ExitCode::FAILURE
        }
    }
}
