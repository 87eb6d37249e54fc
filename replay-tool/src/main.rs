//! `orderlog`: inspect, verify, replay, compact, generate and demonstrate orderlog store
//! directories.
//!
//! Offline by default: the read-only subcommands (`dump`/`inspect`, `verify`, `stats`,
//! `replay`, `sql`) take no lock and never write into the directory they read, so they are
//! safe on a directory a live store holds open (they see what its writer has written so
//! far; see `orderlog_wal::reader`). `compact` and `generate` write, and refuse a
//! directory a live store holds. Exit codes: 0 ok, 1 verdict failed (`verify` found
//! damage), 2 usage or I/O error. The JSON output schemas are in docs/cli.md.

mod commands;
mod describe;
mod error;
mod layout;
mod output;
mod timefmt;
mod units;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::{EXIT_OK, Result};

/// Inspect, verify, replay, query, compact and generate orderlog store directories.
///
/// A store directory holds `wal/` (the write-ahead log) and `snapshots/` (Arrow IPC +
/// Parquet snapshots under a checksummed manifest). Read-only subcommands never write
/// into it and are safe while a live store runs; `compact` and `generate` write and
/// refuse a directory in use. Exit codes: 0 ok, 1 verdict failed, 2 usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "orderlog", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the log's frames and events as text or JSON lines (read-only).
    #[command(visible_alias = "inspect")]
    Dump(commands::dump::Args),
    /// Print the store's durable events from a position (an LSN, a time, a consumer's
    /// checkpoint) as text or JSON lines; --follow keeps printing them as a live store
    /// makes them durable (read-only).
    Tail(commands::tail::Args),
    /// List the change feed's registered consumers, their positions and lag
    /// (read-only).
    Consumers(commands::consumers::Args),
    /// Check every segment header, frame CRC and chain, LSN continuity, the manifest and
    /// every snapshot file; print each finding with file and offset. Exit 1 on damage.
    /// Given a backup's URL (s3://..., file://...) instead: every object its newest index
    /// names (size, CRC-32, frames, manifests) and the log pieces' continuity.
    Verify(commands::verify::Args),
    /// Ship the store in DIR into the backup at URL (s3://bucket/prefix or file:///path)
    /// once, as a new generation (which restores and replicas then follow). Safe on a
    /// live store; never writes into DIR.
    Backup(commands::backup::BackupArgs),
    /// Restore the backup at URL into a new directory OUT, to its end or to an LSN or a
    /// time; every object is checked before use, and OUT then opens as a store.
    Restore(commands::backup::RestoreArgs),
    /// Run a read replica of the backup at URL in DIR (restored first if DIR is new),
    /// printing its position as it follows the backup.
    Replica(commands::replica::Args),
    /// Fold the log to an LSN or a time and write that state as a snapshot (Arrow IPC +
    /// Parquet) into a new directory OUT, never into DIR.
    Replay(commands::replay::Args),
    /// LSN range, segments, bytes, events by type, snapshots, orders by status.
    Stats(commands::stats::Args),
    /// Run one compaction: fold sealed log segments into a new snapshot and drop the
    /// segments it covers. Writes; refuses a directory a live store holds.
    Compact(commands::compact::Args),
    /// Write a realistic synthetic workload (creates, status lifecycle, amends, payment
    /// changes, cancels, a few erases) into a store. Writes; refuses a live directory.
    Generate(commands::generate::Args),
    /// Run one read-only SQL query in DuckDB over the orders in DIR (the newest snapshot
    /// plus the log after it, or the orders as of an earlier LSN or time).
    Sql(commands::sql::Args),
    /// The main job end to end: generate ~1M orders / ~3M events in a writer process,
    /// kill it mid-stream, recover, compact, query in DuckDB, travel back in time, and
    /// report figures.
    Demo(commands::demo::Args),
    /// The demo's writer process (internal).
    #[command(name = "__demo-writer", hide = true)]
    DemoWriter(commands::generate::Args),
}

/// How damage in the log is treated when reading it (as on recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum RecoveryModeArg {
    /// Any bad frame is an error naming file and offset.
    Strict,
    /// A bad frame is accepted only as the unfinished end of the last segment (default).
    #[default]
    TolerateTornTail,
    /// Read up to the first bad frame anywhere and ignore the rest.
    PointInTime,
}

impl From<RecoveryModeArg> for orderlog_store::RecoveryMode {
    fn from(mode: RecoveryModeArg) -> Self {
        match mode {
            RecoveryModeArg::Strict => orderlog_store::RecoveryMode::Strict,
            RecoveryModeArg::TolerateTornTail => orderlog_store::RecoveryMode::TolerateTornTail,
            RecoveryModeArg::PointInTime => orderlog_store::RecoveryMode::PointInTime,
        }
    }
}

/// The store directory argument shared by subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct DirArg {
    /// The store directory (holding wal/ and snapshots/).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dump(args) => commands::dump::run(&args),
        Command::Verify(args) => commands::verify::run(&args),
        Command::Backup(args) => commands::backup::run_backup(&args),
        Command::Restore(args) => commands::backup::run_restore(&args),
        Command::Replica(args) => commands::replica::run(&args),
        Command::Tail(args) => commands::tail::run(&args),
        Command::Consumers(args) => commands::consumers::run(&args),
        Command::Replay(args) => commands::replay::run(&args),
        Command::Stats(args) => commands::stats::run(&args),
        Command::Compact(args) => commands::compact::run(&args),
        Command::Generate(args) => commands::generate::run(&args),
        Command::Sql(args) => commands::sql::run(&args),
        Command::Demo(args) => commands::demo::run(&args),
        Command::DemoWriter(args) => commands::demo::run_writer(&args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("orderlog: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let text = s.to_string();
                if !e.to_string().contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                source = s.source();
            }
            ExitCode::from(e.exit_code())
        }
    }
}
