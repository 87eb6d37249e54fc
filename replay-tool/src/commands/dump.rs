//! `orderlog dump DIR` (alias `inspect`): the log's frames and events, filtered, as text
//! or JSON lines; `--follow` keeps reading as a live writer appends. Read-only.

use std::time::Duration;

use orderlog_store::events::decode_batch;
use orderlog_store::{Event, Lsn, StoreError};
use orderlog_wal::{Frame, LogReader};

use crate::describe::{event_json, event_text};
use crate::error::{CliError, Result};
use crate::layout::{existing_store, wal_dir};
use crate::output::Out;
use crate::timefmt::parse_time_ms;
use crate::{DirArg, RecoveryModeArg};

/// Arguments of `dump`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dir: DirArg,
    /// First LSN to show (default: the first the log retains).
    #[arg(long, value_name = "LSN")]
    pub from_lsn: Option<Lsn>,
    /// Last LSN to show.
    #[arg(long, value_name = "LSN")]
    pub to_lsn: Option<Lsn>,
    /// Only events stamped at or after this time (ms since the epoch, or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    pub from_time: Option<u64>,
    /// Only events stamped at or before this time (ms since the epoch, or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    pub to_time: Option<u64>,
    /// Only events of this order.
    #[arg(long, value_name = "ID")]
    pub order_id: Option<u64>,
    /// Stop after printing this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// One JSON object per event (JSON lines) instead of text; no frame lines.
    #[arg(long)]
    pub json: bool,
    /// Print only one line per frame (LSN, bytes, event count), not its events.
    #[arg(long, conflicts_with = "json")]
    pub frames_only: bool,
    /// After the end of the log, keep polling for frames a live writer appends (read-
    /// only; stop with Ctrl-C). Frames are shown once complete, before they are
    /// necessarily durable.
    #[arg(long)]
    pub follow: bool,
    /// Poll interval of --follow, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 200, requires = "follow")]
    pub poll_ms: u64,
    /// How damage in the log is treated (as on recovery).
    #[arg(long, value_enum, default_value_t)]
    pub recovery_mode: RecoveryModeArg,
}

struct Printer<'a> {
    args: &'a Args,
    out: Out,
    printed: u64,
}

impl Printer<'_> {
    /// Prints a frame; `Ok(false)` once nothing more is wanted.
    fn frame(&mut self, frame: &Frame) -> Result<bool> {
        let lsn = frame.lsn();
        if self.args.to_lsn.is_some_and(|to| lsn > to) {
            return Ok(false);
        }
        let events = decode_batch(frame.payload())
            .map_err(|source| CliError::Store(StoreError::Decode { lsn, source }))?;
        let shown: Vec<(usize, &Event)> =
            events.iter().enumerate().filter(|(_, e)| self.wanted(e)).collect();
        if shown.is_empty() {
            return Ok(true);
        }
        if !self.args.json {
            let line = format!(
                "frame lsn={lsn} bytes={} events={}{}",
                frame.payload().len(),
                events.len(),
                if frame.group_continues() { " group_continues" } else { "" }
            );
            if !self.out.line(line)? {
                return Ok(false);
            }
            if self.args.frames_only {
                return Ok(self.count(1));
            }
        }
        for (index, e) in shown {
            let alive = if self.args.json {
                self.out.json(&event_json(lsn, index, e))?
            } else {
                self.out.line(format!("  {}", event_text(lsn, index, e)))?
            };
            if !alive || !self.count(1) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn count(&mut self, n: u64) -> bool {
        self.printed += n;
        self.args.limit.is_none_or(|limit| self.printed < limit)
    }

    fn wanted(&self, e: &Event) -> bool {
        let a = self.args;
        a.order_id.is_none_or(|id| e.order_id == id)
            && a.from_time.is_none_or(|t| e.timestamp_ms >= t)
            && a.to_time.is_none_or(|t| e.timestamp_ms <= t)
    }
}

/// Runs `dump`.
pub fn run(args: &Args) -> Result<()> {
    let dir = existing_store(&args.dir.dir)?;
    if let (Some(from), Some(to)) = (args.from_lsn, args.to_lsn)
        && from > to
    {
        return Err(CliError::Usage(format!("--from-lsn {from} is after --to-lsn {to}")));
    }
    if args.limit == Some(0) {
        return Ok(());
    }
    let reader = LogReader::open(wal_dir(&dir), args.recovery_mode.into())?;
    let from = args.from_lsn.unwrap_or(reader.first_lsn()).max(1);
    let mut printer = Printer { args, out: Out::new(), printed: 0 };
    if from <= reader.last_lsn() {
        for frame in reader.iter_from(from)? {
            if !printer.frame(&frame?)? {
                return Ok(());
            }
        }
    } else if from < reader.first_lsn() || (from > reader.last_lsn() + 1 && !args.follow) {
        return Err(CliError::Usage(format!(
            "--from-lsn {from} is outside the log (LSNs {}..={})",
            reader.first_lsn(),
            reader.last_lsn()
        )));
    }
    if !args.follow {
        return Ok(());
    }
    let mut tail = reader.tail();
    loop {
        if args.to_lsn.is_some_and(|to| tail.next_lsn() > to) {
            return Ok(());
        }
        for frame in tail.poll()? {
            if frame.lsn() >= from && !printer.frame(&frame)? {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(args.poll_ms.max(1)));
    }
}
