//! `orderlog generate DIR`: writes a synthetic workload (see `crate::workload`) into a
//! store, from `--writers` threads in batches of `--batch` events, with a progress bar.
//! With `--print-acks`, prints `acked <lsn>` on stdout for each batch once it is durable
//! (after its sync under `--sync always`; once a later sync covers it otherwise), so an
//! outside test can kill the process and check that every acknowledged LSN survived.
//! Writes; refuses a directory a live store holds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use orderlog_store::{CompactionOptions, Lsn, OrderStore, StoreOptions, SyncPolicy, WalOptions};
use serde_json::json;

use crate::DirArg;
use crate::error::{CliError, Result};
use crate::layout::{existing_store, locked_to_cli, refuse_if_live};
use crate::output::{Out, bytes, progress_bar, thousands};
use crate::workload::WriterWorkload;

/// When writes become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SyncArg {
    /// Each batch is acknowledged after an msync covering it (group commit).
    #[default]
    Always,
    /// Batches are acknowledged at once; a background sync runs every --sync-interval-ms.
    Interval,
    /// Only segment rolls and the final close sync.
    Never,
}

/// Arguments of `generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dir: DirArg,
    /// Orders to create.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub orders: u64,
    /// Events in all, creates included (at least --orders). Fewer are written if every
    /// order has finished its lifecycle first (about 4–5 events per order at most).
    #[arg(long, value_name = "M", default_value_t = 30_000)]
    pub events: u64,
    /// Seed of the workload: the same seed (with one writer) writes the same log.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// When writes become durable.
    #[arg(long, value_enum, default_value_t)]
    pub sync: SyncArg,
    /// Background sync period for --sync interval, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub sync_interval_ms: u64,
    /// Writer threads, each with its own orders.
    #[arg(long, value_name = "W", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub writers: u64,
    /// Events per batch (one log frame, applied atomically).
    #[arg(long, value_name = "B", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch: u64,
    /// Size of new log segment files, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=16_384))]
    pub segment_mib: u64,
    /// Print `acked <lsn>` on stdout for every batch once it is durable (the summary then
    /// goes to stderr).
    #[arg(long)]
    pub print_acks: bool,
    /// One JSON summary object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What a generate run did.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Events written.
    pub events: u64,
    /// Orders created.
    pub orders: u64,
    /// Batches (frames) written.
    pub batches: u64,
    /// First and last LSN written.
    pub lsns: (Lsn, Lsn),
    /// Wall time of the writing.
    pub elapsed: Duration,
    /// Bytes of log frames after the run.
    pub log_bytes: u64,
}

/// The store directory for `generate`: new (created), empty, or an existing store.
fn target_dir(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                existing_store(dir)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if dir.is_file() => {
            Err(CliError::NotAStore { path: dir.to_path_buf(), why: format!("it is a file ({e})") })
        }
        Err(e) => Err(CliError::io("reading", dir)(e)),
    }
}

/// Runs `generate`.
pub fn run(args: &Args) -> Result<()> {
    let generated = generate(args, false)?;
    report(args, &generated)
}

/// Prints the summary (on stderr when stdout carries the acks).
pub fn report(args: &Args, g: &Generated) -> Result<()> {
    let secs = g.elapsed.as_secs_f64().max(1e-9);
    if args.json {
        let value = json!({
            "orders": g.orders, "events": g.events, "batches": g.batches,
            "first_lsn": g.lsns.0, "last_lsn": g.lsns.1,
            "elapsed_ms": secs * 1000.0, "events_per_sec": g.events as f64 / secs,
            "log_bytes": g.log_bytes,
        });
        if args.print_acks {
            eprintln!("{value}");
        } else {
            Out::new().json(&value)?;
        }
        return Ok(());
    }
    let text = format!(
        "generated {} orders / {} events in {} batches (LSNs {}..={}) in {:.2} s: {} events/s, log {}",
        thousands(g.orders),
        thousands(g.events),
        thousands(g.batches),
        g.lsns.0,
        g.lsns.1,
        secs,
        thousands((g.events as f64 / secs) as u64),
        bytes(g.log_bytes)
    );
    if args.print_acks {
        eprintln!("{text}");
    } else {
        Out::new().line(text)?;
    }
    Ok(())
}

fn store_options(args: &Args) -> StoreOptions {
    let sync_policy = match args.sync {
        SyncArg::Always => SyncPolicy::Always,
        SyncArg::Interval => {
            SyncPolicy::Interval(Duration::from_millis(args.sync_interval_ms.max(1)))
        }
        SyncArg::Never => SyncPolicy::Never,
    };
    StoreOptions {
        wal: WalOptions {
            sync_policy,
            segment_bytes: args.segment_mib << 20,
            ..WalOptions::default()
        },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        ..StoreOptions::default()
    }
}

/// Writes the workload; with `progress_lines`, also prints `progress <events>` lines on
/// stdout every 100 ms (the demo's parent reads them).
pub fn generate(args: &Args, progress_lines: bool) -> Result<Generated> {
    let dir = &args.dir.dir;
    if args.events < args.orders {
        return Err(CliError::Usage(format!(
            "--events {} is below --orders {}: every order is created by an event",
            args.events, args.orders
        )));
    }
    target_dir(dir)?;
    refuse_if_live(dir, "generate")?;
    let store = OrderStore::open(dir, store_options(args))
        .map_err(|e| locked_to_cli(dir, "generate", e))?;
    let first_id =
        store.with_kernel(|k| k.order_id_raw_array().iter().copied().max()).map_or(1, |m| m + 1);
    let first_lsn = store.last_lsn() + 1;
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let bar = progress_bar(args.events, "events");
    bar.set_message("generating");
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<Lsn>();
    let outcome = std::thread::scope(|scope| -> Result<(u64, u64)> {
        let printer = args
            .print_acks
            .then(|| scope.spawn(|| print_acks(&store, rx, &done, &finished, progress_lines)));
        let progress = (progress_lines && !args.print_acks)
            .then(|| scope.spawn(|| print_progress(&done, &finished)));
        let writers: Vec<_> = (0..args.writers)
            .map(|w| {
                let (store, tx, done, bar) = (&store, tx.clone(), &done, &bar);
                scope.spawn(move || -> Result<(u64, u64)> {
                    let mut workload = WriterWorkload::new(
                        args.seed,
                        w,
                        args.writers,
                        args.orders,
                        args.events,
                        first_id,
                    );
                    let (mut batches, mut creates) = (0, 0);
                    loop {
                        let batch = workload.next_batch(args.batch as usize);
                        if batch.is_empty() {
                            return Ok((batches, creates));
                        }
                        let lsn = store.apply_batch(&batch)?;
                        batches += 1;
                        creates +=
                            batch.iter().filter(|e| e.kind_name() == "create").count() as u64;
                        done.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        bar.inc(batch.len() as u64);
                        if args.print_acks {
                            // The printer outlives the writers; a send cannot fail before.
                            let _ = tx.send(lsn);
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut totals = (0, 0);
        let mut first_error = None;
        for writer in writers {
            match writer.join() {
                Ok(Ok((b, c))) => totals = (totals.0 + b, totals.1 + c),
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(_) => {
                    first_error =
                        first_error.or(Some(CliError::Usage("a writer thread panicked".into())))
                }
            }
        }
        // Make everything durable before the last acks are printed.
        let synced = store.sync();
        finished.store(true, Ordering::Release);
        for handle in printer.into_iter().chain(progress) {
            if let Ok(Err(e)) = handle.join() {
                first_error = first_error.or(Some(e));
            }
        }
        synced?;
        first_error.map_or(Ok(totals), Err)
    });
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let (batches, orders) = outcome?;
    let last_lsn = store.last_lsn();
    store.close()?;
    let log_bytes = orderlog_wal::LogReader::open(crate::layout::wal_dir(dir), Default::default())
        .map(|r| r.segments().iter().map(|s| s.frame_bytes).sum())
        .unwrap_or(0);
    Ok(Generated {
        events: done.load(Ordering::Relaxed),
        orders,
        batches,
        lsns: (first_lsn, last_lsn),
        elapsed,
        log_bytes,
    })
}

/// Prints `acked <lsn>` for every LSN received once the store's durable LSN covers it.
fn print_acks(
    store: &OrderStore,
    rx: mpsc::Receiver<Lsn>,
    done: &AtomicU64,
    finished: &AtomicBool,
    progress_lines: bool,
) -> Result<()> {
    let mut out = Out::new();
    let mut pending = BinaryHeap::new();
    let mut last_progress = Instant::now();
    loop {
        let disconnected = match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(lsn) => {
                pending.push(Reverse(lsn));
                pending.extend(rx.try_iter().map(Reverse));
                false
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        let durable = store.durable_lsn();
        while let Some(&Reverse(lsn)) = pending.peek() {
            if lsn > durable {
                break;
            }
            pending.pop();
            out.line(format!("acked {lsn}"))?;
        }
        if progress_lines && last_progress.elapsed() >= Duration::from_millis(100) {
            out.line(format!("progress {}", done.load(Ordering::Relaxed)))?;
            last_progress = Instant::now();
        }
        if disconnected && finished.load(Ordering::Acquire) {
            for Reverse(lsn) in pending.into_sorted_vec().into_iter().rev() {
                if lsn <= store.durable_lsn() {
                    out.line(format!("acked {lsn}"))?;
                }
            }
            if progress_lines {
                out.line(format!("progress {}", done.load(Ordering::Relaxed)))?;
            }
            return Ok(());
        }
    }
}

/// Prints `progress <events>` every 100 ms until the writers finish.
fn print_progress(done: &AtomicU64, finished: &AtomicBool) -> Result<()> {
    let mut out = Out::new();
    while !finished.load(Ordering::Acquire) {
        out.line(format!("progress {}", done.load(Ordering::Relaxed)))?;
        std::thread::sleep(Duration::from_millis(100));
    }
    out.line(format!("progress {}", done.load(Ordering::Relaxed)))?;
    Ok(())
}
