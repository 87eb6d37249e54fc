//! `orderlog consumers DIR`: the change feed's registered consumers, their acknowledged
//! positions and how far behind the log they are. Read-only; safe on a live store (the
//! positions are those last made durable).

use orderlog_store::feed::ConsumerRecord;
use orderlog_store::{Lsn, OfflineStore};
use serde_json::{Value, json};

use crate::error::{CliError, Result};
use crate::layout::existing_store;
use crate::output::{Out, bytes, thousands};
use crate::timefmt::format_ms;
use crate::{DirArg, RecoveryModeArg};

/// Arguments of `consumers`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dir: DirArg,
    /// One JSON object per consumer (JSON lines) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How damage in the log is treated (as on recovery).
    #[arg(long, value_enum, default_value_t)]
    pub recovery_mode: RecoveryModeArg,
}

/// A consumer's position against the log.
pub struct ConsumerLag {
    /// Its durable record.
    pub record: ConsumerRecord,
    /// LSNs in the log after its position.
    pub lag_lsns: u64,
    /// About how many bytes of log lie after its position.
    pub lag_bytes: u64,
    /// Its position lies below the log's first retained LSN: it will get the newest
    /// snapshot in place of the frames removed.
    pub behind_log: bool,
}

/// Every consumer in the directory with its lag, and the damaged consumer files (each
/// error names the file and the offset).
pub fn consumer_lags(offline: &OfflineStore) -> Result<(Vec<ConsumerLag>, Vec<String>)> {
    let log = offline.log();
    let (first, last) = (log.first_lsn(), log.last_lsn());
    let lag_bytes = |acked: Lsn| -> u64 {
        log.segments()
            .iter()
            .filter(|s| s.frames > 0 && s.base_lsn + s.frames - 1 > acked)
            .map(|s| {
                if s.base_lsn > acked {
                    s.frame_bytes
                } else {
                    let after = s.base_lsn + s.frames - 1 - acked;
                    s.frame_bytes * after / s.frames
                }
            })
            .sum()
    };
    let (mut lags, mut damaged) = (Vec::new(), Vec::new());
    for outcome in offline.consumers()? {
        match outcome {
            Ok(record) => lags.push(ConsumerLag {
                lag_lsns: last.saturating_sub(record.acked_lsn),
                lag_bytes: lag_bytes(record.acked_lsn),
                behind_log: record.acked_lsn.saturating_add(1) < first,
                record,
            }),
            Err(e) => damaged.push(e.to_string()),
        }
    }
    Ok((lags, damaged))
}

/// A consumer as a JSON object (`consumers --json`, `stats --json`).
pub fn consumer_json(c: &ConsumerLag) -> Value {
    json!({
        "name": c.record.name,
        "acked_lsn": c.record.acked_lsn,
        "acked_ms": c.record.acked_ms,
        "acked_time": format_ms(c.record.acked_ms),
        "created_ms": c.record.created_ms,
        "lagging": c.record.lagging,
        "lag_lsns": c.lag_lsns,
        "lag_bytes": c.lag_bytes,
        "behind_log": c.behind_log,
    })
}

/// A consumer as one line of text.
pub fn consumer_text(c: &ConsumerLag) -> String {
    let mut line = format!(
        "{}: acked LSN {}, {} LSNs ({}) behind, last ack {}",
        c.record.name,
        thousands(c.record.acked_lsn),
        thousands(c.lag_lsns),
        bytes(c.lag_bytes),
        format_ms(c.record.acked_ms)
    );
    if c.record.lagging {
        line.push_str(", LAGGING: it held more log than allowed and no longer holds it");
    }
    if c.behind_log {
        line.push_str(", behind the retained log (the newest snapshot stands in)");
    }
    line
}

/// Runs `consumers`: exit 1 if a consumer file is damaged (every other one is listed).
pub fn run(args: &Args) -> Result<()> {
    let dir = existing_store(&args.dir.dir)?;
    let offline = OfflineStore::open(&dir, args.recovery_mode.into())?;
    let (lags, damaged) = consumer_lags(&offline)?;
    let mut out = Out::new();
    if lags.is_empty() && damaged.is_empty() && !args.json {
        out.line("no consumers registered")?;
    }
    for c in &lags {
        let alive =
            if args.json { out.json(&consumer_json(c))? } else { out.line(consumer_text(c))? };
        if !alive {
            return Ok(());
        }
    }
    for error in &damaged {
        if args.json {
            out.json(&json!({ "damaged": error }))?;
        } else {
            out.line(format!("DAMAGED: {error}"))?;
        }
    }
    if !damaged.is_empty() {
        return Err(CliError::Verdict(format!("{} damaged consumer file(s)", damaged.len())));
    }
    Ok(())
}
