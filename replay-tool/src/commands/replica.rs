//! `orderlog replica URL DIR`: runs a read replica of the backup at URL in DIR (restored
//! from the backup first if DIR holds no store), printing its position as it follows.
//! `--once` stops once it has applied the backup's newest index.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orderlog_store::{OrderStore, ReplicationOptions, StoreOptions};
use serde_json::json;

use crate::error::{CliError, Result};
use crate::output::{Out, thousands};

/// Arguments of `replica`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup: s3://bucket/prefix or file:///path.
    #[arg(value_name = "URL")]
    pub url: String,
    /// The replica's directory (restored from the backup if it holds no store).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// How often the backup's index is read, such as 500ms or 2s.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Stop once the backup's newest index is applied (else run until killed).
    #[arg(long)]
    pub once: bool,
    /// Give up `--once` after this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `orderlog replica URL DIR`.
pub fn run(args: &Args) -> Result<()> {
    let source = ReplicationOptions::new(&args.url).with_interval(args.interval);
    let store = OrderStore::open_replica(source, &args.dir, StoreOptions::default())?;
    let started = Instant::now();
    let mut out = Out::new();
    let mut printed = None;
    loop {
        std::thread::sleep(args.interval.min(Duration::from_millis(200)));
        let stats = store.stats();
        let Some(replica) = stats.replica else { break };
        if let Some(stopped) = &replica.stopped {
            return Err(CliError::Verdict(format!("the replica stopped: {stopped}")));
        }
        let position = (replica.applied_lsn, replica.backup_lsn);
        if printed != Some(position) && replica.rounds > 0 {
            printed = Some(position);
            if args.json {
                out.json(&json!({
                    "generation": replica.generation,
                    "applied_lsn": replica.applied_lsn,
                    "backup_lsn": replica.backup_lsn,
                    "lag_seconds": replica.lag_seconds,
                    "orders": store.len(),
                    "errors": replica.errors,
                    "last_error": replica.last_error,
                }))?;
            } else {
                out.line(format_args!(
                    "replica of {}: LSN {} applied of {} in the backup ({} orders, lag {:.1} s{})",
                    args.url,
                    thousands(replica.applied_lsn),
                    thousands(replica.backup_lsn),
                    thousands(store.len() as u64),
                    replica.lag_seconds,
                    replica
                        .last_error
                        .as_ref()
                        .map(|e| format!("; last error: {e}"))
                        .unwrap_or_default()
                ))?;
            }
        }
        if args.once
            && replica.rounds > 0
            && replica.applied_lsn >= replica.backup_lsn
            && replica.errors < replica.rounds
        {
            break;
        }
        if args.once && started.elapsed() > args.timeout {
            return Err(CliError::Verdict(format!(
                "the replica did not catch up within {}",
                humantime::format_duration(args.timeout)
            )));
        }
    }
    store.close()?;
    Ok(())
}
