//! `orderlog tail DIR`: the store's durable events from a position on, as text or JSON
//! lines; `--follow` keeps printing them as a live store makes them durable. Read-only:
//! it takes no lock and changes nothing, so it is safe on a live store.

use std::time::Duration;

use orderlog_store::events::decode_batch;
use orderlog_store::{Event, EventType, FeedError, Lsn, OfflineStore, StoreError};
use orderlog_wal::Frame;
use serde_json::json;

use crate::describe::{event_json, event_text};
use crate::error::{CliError, Result};
use crate::layout::existing_store;
use crate::output::Out;
use crate::timefmt::parse_time_ms;
use crate::{DirArg, RecoveryModeArg};

/// Arguments of `tail`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Only durable events are printed: those the log's checkpoints prove synced (on a live \
store they trail its durable LSN by about 50 ms). So nothing printed can be undone by \
a power cut. Without a position, tail starts at the first LSN the log retains.

A position below the retained log (a compaction removed those frames) prints one \
`snapshot` line for the newest snapshot, whose orders stand in for the frames removed \
(see them with `orderlog sql` or `orderlog replay`), then the log after it; \
--require-log refuses instead.")]
pub struct Args {
    #[command(flatten)]
    pub dir: DirArg,
    /// Start at this LSN (at most one past the log's last).
    #[arg(long, value_name = "LSN", group = "start")]
    pub from_lsn: Option<Lsn>,
    /// Start after the log's longest prefix with no event stamped later than this time
    /// (ms since the epoch, or RFC 3339): the events after the state as of that time.
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms, group = "start")]
    pub from_time: Option<u64>,
    /// Start just after this registered consumer's acknowledged position (read only:
    /// tail never acknowledges).
    #[arg(long, value_name = "NAME", group = "start")]
    pub consumer: Option<String>,
    /// Only events of these kinds (create, set_status, amend, change_payment, cancel,
    /// erase); repeat or separate with commas.
    #[arg(long, value_name = "KIND", value_delimiter = ',', value_parser = parse_kind)]
    pub kind: Vec<EventType>,
    /// Only events of these orders; repeat or separate with commas.
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    pub order_id: Vec<u64>,
    /// After the durable end, keep printing events as the store makes them durable
    /// (stop with Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Poll interval of --follow, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100, requires = "follow")]
    pub poll_ms: u64,
    /// Stop after printing this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// One JSON object per event (JSON lines) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Refuse a position the log no longer holds instead of printing the newest
    /// snapshot in its place.
    #[arg(long)]
    pub require_log: bool,
    /// How damage in the log is treated (as on recovery).
    #[arg(long, value_enum, default_value_t)]
    pub recovery_mode: RecoveryModeArg,
}

fn parse_kind(s: &str) -> std::result::Result<EventType, String> {
    EventType::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
        format!("unknown event kind {s:?} (one of {})", names.join(", "))
    })
}

struct Printer<'a> {
    args: &'a Args,
    out: Out,
    printed: u64,
}

impl Printer<'_> {
    fn wanted(&self, e: &Event) -> bool {
        (self.args.kind.is_empty() || self.args.kind.contains(&e.event_type()))
            && (self.args.order_id.is_empty() || self.args.order_id.contains(&e.order_id))
    }

    /// Prints a frame's matching events; `Ok(false)` once nothing more is wanted.
    fn frame(&mut self, frame: &Frame) -> Result<bool> {
        let lsn = frame.lsn();
        let events = decode_batch(frame.payload())
            .map_err(|source| CliError::Store(StoreError::Decode { lsn, source }))?;
        for (index, e) in events.iter().enumerate() {
            if !self.wanted(e) {
                continue;
            }
            let alive = if self.args.json {
                self.out.json(&event_json(lsn, index, e))?
            } else {
                self.out.line(event_text(lsn, index, e))?
            };
            self.printed += 1;
            if !alive || self.args.limit.is_some_and(|limit| self.printed >= limit) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Runs `tail`.
pub fn run(args: &Args) -> Result<()> {
    let dir = existing_store(&args.dir.dir)?;
    if args.limit == Some(0) {
        return Ok(());
    }
    let offline = OfflineStore::open(&dir, args.recovery_mode.into())?;
    let log = offline.log();
    let (first, last) = (log.first_lsn(), log.last_lsn());
    let mut next = if let Some(lsn) = args.from_lsn {
        if lsn > last + 1 {
            return Err(CliError::Usage(format!(
                "--from-lsn {lsn} is past the log's end (its last LSN is {last})"
            )));
        }
        lsn.max(1)
    } else if let Some(ms) = args.from_time {
        offline.lsn_after_time(ms)?.unwrap_or(1)
    } else if let Some(name) = &args.consumer {
        let (consumers, damaged): (Vec<_>, Vec<_>) =
            offline.consumers()?.into_iter().partition(|c| c.is_ok());
        let consumers: Vec<_> = consumers.into_iter().filter_map(|c| c.ok()).collect();
        let Some(found) = consumers.iter().find(|c| &c.name == name) else {
            // A damaged file of that name says so.
            let file = std::ffi::OsString::from(format!("{name}.consumer"));
            let names_file = |e: &StoreError| match e {
                StoreError::Feed(FeedError::CorruptConsumer { file: path, .. })
                | StoreError::Feed(FeedError::ConsumerIo { path, .. }) => {
                    path.file_name() == Some(file.as_os_str())
                }
                _ => false,
            };
            if let Some(e) = damaged.into_iter().filter_map(|c| c.err()).find(|e| names_file(e)) {
                return Err(CliError::Store(e));
            }
            let names: Vec<&str> = consumers.iter().map(|c| c.name.as_str()).collect();
            return Err(CliError::Usage(format!(
                "no consumer named {name:?} is registered (registered: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )));
        };
        found.acked_lsn.saturating_add(1)
    } else {
        first
    };
    let mut printer = Printer { args, out: Out::new(), printed: 0 };
    if next < first {
        if args.require_log {
            return Err(CliError::Store(
                orderlog_store::FeedError::LogTruncated { from: next, first_lsn: first }.into(),
            ));
        }
        let newest = offline.snapshot_list()?.into_iter().next();
        let Some(snapshot) = newest.filter(|s| s.lsn + 1 >= next) else {
            return Err(CliError::Store(
                orderlog_store::FeedError::LogTruncated { from: next, first_lsn: first }.into(),
            ));
        };
        let line = if args.json {
            json!({ "snapshot_lsn": snapshot.lsn, "orders": snapshot.rows, "log_first_lsn": first })
                .to_string()
        } else {
            format!(
                "snapshot lsn={} orders={}: the log before LSN {first} was compacted into it; its orders stand in for those frames",
                snapshot.lsn, snapshot.rows
            )
        };
        if !printer.out.line(line)? {
            return Ok(());
        }
        next = snapshot.lsn + 1;
    }
    // What the checkpoints prove durable now, read a segment at a time...
    let proven = log.checkpointed_lsn().min(last);
    if next <= proven {
        for frame in log.iter_from(next)? {
            let frame = frame?;
            if frame.lsn() > proven {
                break;
            }
            next = frame.lsn() + 1;
            if !printer.frame(&frame)? {
                return Ok(());
            }
        }
    }
    if !args.follow {
        return Ok(());
    }
    // ...then what they prove from then on.
    let mut tail = log.durable_tail_from(next);
    loop {
        let frames = tail.poll()?;
        for frame in &frames {
            if !printer.frame(frame)? {
                return Ok(());
            }
        }
        if frames.is_empty() {
            std::thread::sleep(Duration::from_millis(args.poll_ms.max(1)));
        }
    }
}
