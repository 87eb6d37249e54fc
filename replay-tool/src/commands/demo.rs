//! `orderlog demo [DIR]`: the main job end to end, with measured figures.
//!
//! 1. A writer child process (this binary, re-executed as the hidden `__demo-writer`)
//!    generates ~1M orders / ~3M events with `--sync always`, printing `acked <lsn>` as
//!    batches become durable and `progress <events>` as it goes.
//! 2. Mid-stream the parent kills it with SIGKILL.
//! 3. The parent opens the store (recovery: log checked, unfinished tail cut, log
//!    replayed), reports what recovery did, and checks that every acknowledged LSN
//!    survived.
//! 4. One compaction folds the log into an Arrow IPC + Parquet snapshot (segments are
//!    retained, so the whole history stays replayable).
//! 5. Analytics: the three standard reports (revenue by status, top customers, monthly
//!    trends) in DuckDB over the snapshot's Parquet file plus the live tail, then the
//!    same report as of an earlier LSN (time travel in SQL), each timed.
//! 6. Time travel offline: a fold of the directory to that earlier LSN.
//! 7. A summary of the figures. DIR is left in place for the other subcommands.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use orderlog_store::{
    CompactionOptions, FoldTarget, OfflineStore, OpenReport, OrderStatus, OrderStore, RecoveryMode,
    StoreError, StoreOptions,
};

use crate::commands::generate;
use crate::error::{CliError, Result};
use crate::layout::snapshot_dir;
use crate::output::{Out, bytes, millis, progress_bar, thousands};

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to build the demo store: a new or empty directory (default: a fresh
    /// directory under the system's temporary directory). It is left in place.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Orders the writer is asked to create.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub orders: u64,
    /// Events the writer is asked to write, creates included.
    #[arg(long, value_name = "M", default_value_t = 3_000_000)]
    pub events: u64,
    /// Kill the writer once it has written this percentage of the events.
    #[arg(long, value_name = "PCT", default_value_t = 85, value_parser = clap::value_parser!(u64).range(1..=99))]
    pub kill_at: u64,
    /// Writer threads in the child.
    #[arg(long, value_name = "W", default_value_t = 4)]
    pub writers: u64,
    /// Events per batch.
    #[arg(long, value_name = "B", default_value_t = 64)]
    pub batch: u64,
    /// Workload seed.
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub seed: u64,
}

/// Runs the hidden `__demo-writer` subcommand: `generate` with progress lines.
pub fn run_writer(args: &generate::Args) -> Result<()> {
    let generated = generate::generate(args, true)?;
    generate::report(args, &generated)
}

/// What the writer child did before it was killed.
struct WriterRun {
    events: u64,
    acked: u64,
    max_acked: u64,
    elapsed: Duration,
    killed: bool,
}

fn demo_dir(arg: Option<&Path>) -> Result<PathBuf> {
    let dir = match arg {
        Some(dir) => dir.to_path_buf(),
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            std::env::temp_dir().join(format!("orderlog-demo-{secs}-{}", std::process::id()))
        }
    };
    match std::fs::read_dir(&dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(CliError::Usage(format!(
            "{} is not empty: the demo builds a new store (give a new directory)",
            dir.display()
        ))),
        Ok(false) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(dir),
        Err(e) => Err(CliError::io("reading", &dir)(e)),
    }
}

fn spawn_writer(args: &Args, dir: &Path) -> Result<Child> {
    let exe = std::env::current_exe().map_err(CliError::io("finding", "this executable"))?;
    Command::new(&exe)
        .arg("__demo-writer")
        .arg(dir)
        .args(["--orders", &args.orders.to_string(), "--events", &args.events.to_string()])
        .args(["--seed", &args.seed.to_string(), "--writers", &args.writers.to_string()])
        .args(["--batch", &args.batch.to_string(), "--segment-mib", "16", "--sync", "always"])
        .arg("--print-acks")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(CliError::io("starting", exe))
}

/// Runs the writer child until it has written `kill_at` % of the events, then SIGKILLs it.
fn run_and_kill_writer(args: &Args, dir: &Path) -> Result<WriterRun> {
    let mut child = spawn_writer(args, dir)?;
    let started = Instant::now();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(CliError::Usage("the writer's output was not captured".into()));
    };
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(std::io::Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        BufReader::new(stderr).lines().map_while(std::io::Result::ok).collect::<Vec<_>>().join("\n")
    });
    let kill_events = args.events * args.kill_at / 100;
    let bar = progress_bar(args.events, "events");
    bar.set_message("writer process (sync always)");
    let mut run =
        WriterRun { events: 0, acked: 0, max_acked: 0, elapsed: Duration::ZERO, killed: false };
    for line in rx.iter() {
        if let Some(lsn) = line.strip_prefix("acked ").and_then(|n| n.parse::<u64>().ok()) {
            run.acked += 1;
            run.max_acked = run.max_acked.max(lsn);
        } else if let Some(n) = line.strip_prefix("progress ").and_then(|n| n.parse::<u64>().ok()) {
            run.events = n;
            run.elapsed = started.elapsed();
            bar.set_position(n);
            if n >= kill_events && !run.killed {
                // SIGKILL: no destructor, no final sync, no close.
                child.kill().map_err(CliError::io("killing", "the writer process"))?;
                run.killed = true;
            }
        }
    }
    bar.finish_and_clear();
    let status = child.wait().map_err(CliError::io("waiting for", "the writer process"))?;
    let stderr = errors.join().unwrap_or_default();
    if !run.killed && !status.success() {
        return Err(CliError::Usage(format!("the writer process failed ({status}): {stderr}")));
    }
    Ok(run)
}

fn recover(dir: &Path) -> Result<(OrderStore, OpenReport)> {
    let options = StoreOptions {
        compaction: CompactionOptions {
            background: false,
            // Keep every segment so the whole history stays replayable (time travel).
            retain_segments: usize::MAX,
            ..CompactionOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = OrderStore::open(dir, options)?;
    let report = store.open_report().clone();
    Ok((store, report))
}

fn status_counts(state: &orderlog_store::OrderState) -> String {
    let mut counts = [0u64; 6];
    for s in state.orders().statuses() {
        counts[u8::from(s) as usize] += 1;
    }
    OrderStatus::ALL
        .iter()
        .map(|s| format!("{} {}", s.name(), thousands(counts[u8::from(*s) as usize])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How long the analytics step's queries took.
struct QueryTimes {
    view: Duration,
    by_status: Duration,
    top_customers: Duration,
    monthly: Duration,
    as_of: Duration,
}

/// `1234567.891` as `1,234,567.89`.
fn money(value: f64) -> String {
    let cents = (value.abs() * 100.0).round() as u64;
    let sign = if value < 0.0 { "-" } else { "" };
    format!("{sign}{}.{:02}", thousands(cents / 100), cents % 100)
}

/// Runs `f` and returns its value and how long it took.
fn timed<T, E>(f: impl FnOnce() -> std::result::Result<T, E>) -> Result<(T, Duration)>
where
    StoreError: From<E>,
{
    let started = Instant::now();
    let value = f().map_err(StoreError::from)?;
    Ok((value, started.elapsed()))
}

/// Step 4: the reports in DuckDB over the newest snapshot plus the live tail,
/// then the same report as of an earlier LSN.
fn run_analytics(store: &OrderStore, earlier: u64, out: &mut Out) -> Result<QueryTimes> {
    out.line("4. analytics: DuckDB over the snapshot's Parquet file plus the live tail (fresh)")?;
    let (analytics, view) = timed(|| store.analytics())?;
    let info = analytics.info().clone();
    out.line(format!(
        "   view at LSN {}: snapshot at LSN {} ({} rows, read in place) + {} orders touched since, made in {}",
        info.lsn,
        info.snapshot_lsn,
        thousands(info.snapshot_rows),
        thousands(info.touched as u64),
        millis(view)
    ))?;
    let (by_status, by_status_time) = timed(|| analytics.revenue_by_status())?;
    out.line(format!("   revenue_by_status ({}):", millis(by_status_time)))?;
    for row in &by_status {
        out.line(format!(
            "     {:<10} {:>10} orders {:>18}",
            row.status.name(),
            thousands(row.orders),
            money(row.revenue)
        ))?;
    }
    let (top, top_time) = timed(|| analytics.top_customers(5))?;
    out.line(format!("   top_customers(5) ({}):", millis(top_time)))?;
    for row in &top {
        out.line(format!(
            "     customer {:>8} {:>4} orders {:>14}",
            row.customer_id,
            row.order_count,
            money(row.total_spent)
        ))?;
    }
    let (months, monthly_time) = timed(|| analytics.monthly_trends())?;
    let shown = match months.len() {
        1 => "1 month".to_string(),
        n if n <= 3 => format!("{n} months"),
        n => format!("{n} months, the first 3"),
    };
    out.line(format!("   monthly_trends ({}): {shown}:", millis(monthly_time)))?;
    for row in months.iter().take(3) {
        out.line(format!(
            "     {}-{:02} {:>10} orders {:>18}  avg {:>9}",
            row.year,
            row.month,
            thousands(row.order_count),
            money(row.revenue),
            money(row.avg_order_value)
        ))?;
    }
    drop(analytics);

    let (past, as_of) = timed(|| {
        let past = store.as_of(earlier)?;
        let rows = past.revenue_by_status().map_err(StoreError::from)?;
        Ok::<_, StoreError>((past.info().clone(), rows))
    })?;
    let (past_info, past_rows) = past;
    let orders: u64 = past_rows.iter().map(|r| r.orders).sum();
    let revenue: f64 = past_rows.iter().map(|r| r.revenue).sum();
    out.line(format!(
        "   time travel: as_of(LSN {earlier}) + revenue_by_status in {}: {} orders, revenue {} (folded from {})",
        millis(as_of),
        thousands(orders),
        money(revenue),
        if past_info.snapshot_lsn == 0 {
            "the start of the log".to_string()
        } else {
            format!("the snapshot at LSN {}", past_info.snapshot_lsn)
        }
    ))?;
    Ok(QueryTimes {
        view,
        by_status: by_status_time,
        top_customers: top_time,
        monthly: monthly_time,
        as_of,
    })
}

/// Runs `demo`.
pub fn run(args: &Args) -> Result<()> {
    if args.events < args.orders {
        return Err(CliError::Usage("--events must be at least --orders".into()));
    }
    let dir = demo_dir(args.dir.as_deref())?;
    let mut out = Out::new();
    out.line(format!("orderlog demo in {}", dir.display()))?;
    out.line(format!(
        "1. a writer process generates {} orders / {} events ({} threads, batches of {}, sync always); it is killed with SIGKILL at {}%",
        thousands(args.orders), thousands(args.events), args.writers, args.batch, args.kill_at
    ))?;
    let writer = run_and_kill_writer(args, &dir)?;
    let ingest_rate = writer.events as f64 / writer.elapsed.as_secs_f64().max(1e-9);
    out.line(format!(
        "   {} after {} events in {:.2} s ({} events/s durable); {} batches acknowledged, highest LSN {}",
        if writer.killed { "killed" } else { "finished before the kill point" },
        thousands(writer.events),
        writer.elapsed.as_secs_f64(),
        thousands(ingest_rate as u64),
        thousands(writer.acked),
        writer.max_acked
    ))?;

    out.line("2. recovery: open the store")?;
    let (store, opened) = recover(&dir)?;
    let tail = match &opened.wal.truncated {
        Some(t) => format!(
            "cut an unfinished tail of {} bytes at {} offset {}",
            t.bytes,
            t.file.display(),
            t.offset
        ),
        None => "no unfinished tail".to_string(),
    };
    out.line(format!(
        "   {} segments checked, {tail}; replayed {} batches / {} events into {} orders in {}",
        opened.wal.segments,
        thousands(opened.batches_replayed),
        thousands(opened.events_replayed),
        thousands(store.len() as u64),
        millis(opened.elapsed)
    ))?;
    let last_lsn = store.last_lsn();
    if writer.max_acked > last_lsn {
        return Err(CliError::Verdict(format!(
            "acknowledged LSN {} is missing after recovery (log ends at {last_lsn})",
            writer.max_acked
        )));
    }
    out.line(format!(
        "   every acknowledged batch survived: {} acks, highest {} <= recovered last LSN {last_lsn}",
        thousands(writer.acked),
        writer.max_acked
    ))?;

    out.line("3. compaction: fold the sealed segments into a snapshot")?;
    let compaction = store.compact()?;
    let orders_now = store.len() as u64;
    let state_now = status_counts(&store.state());
    let snapshot = orderlog_snapshot::SnapshotStore::open_read_only(snapshot_dir(&dir)).list()?;
    let (ipc_bytes, parquet_bytes) = snapshot.first().map_or((0, 0), |s| {
        let ipc = s.ipc_file().map_or(0, |f| f.bytes);
        (ipc, s.total_bytes() - ipc)
    });
    let snap_rows = snapshot.first().map_or(0, |s| s.rows).max(1);
    out.line(format!(
        "   snapshot at LSN {}: {} orders, {} batches folded in {}; IPC {} ({:.1} B/order), Parquet {} ({:.1} B/order)",
        compaction.to_lsn,
        thousands(compaction.orders),
        thousands(compaction.batches),
        millis(compaction.elapsed),
        bytes(ipc_bytes),
        ipc_bytes as f64 / snap_rows as f64,
        bytes(parquet_bytes),
        parquet_bytes as f64 / snap_rows as f64
    ))?;

    let earlier = (last_lsn / 2).max(1);
    let queries = run_analytics(&store, earlier, &mut out)?;
    store.close()?;
    drop(store);

    out.line(format!("5. time travel: fold the directory offline to LSN {earlier} (read-only)"))?;
    let offline = OfflineStore::open(&dir, RecoveryMode::TolerateTornTail)?;
    let started = Instant::now();
    let fold = offline.fold_until_with(FoldTarget::Lsn(earlier), &mut |_| {})?;
    let fold_time = started.elapsed();
    out.line(format!(
        "   at LSN {}: {} orders ({}) — folded {} batches / {} events in {}",
        fold.lsn,
        thousands(fold.state.len() as u64),
        status_counts(&fold.state),
        thousands(fold.batches),
        thousands(fold.events),
        millis(fold_time)
    ))?;
    out.line(format!("   now (LSN {last_lsn}): {} orders ({state_now})", thousands(orders_now)))?;

    let log_bytes: u64 = offline.log().segments().iter().map(|s| s.frame_bytes).sum();
    out.line("summary")?;
    for line in [
        format!(
            "  durable ingest      {} events/s ({} writer threads, sync always, batches of {})",
            thousands(ingest_rate as u64),
            args.writers,
            args.batch
        ),
        format!(
            "  recovery            {} for {} events after SIGKILL",
            millis(opened.elapsed),
            thousands(opened.events_replayed)
        ),
        format!(
            "  compaction          {} for {} orders",
            millis(compaction.elapsed),
            thousands(compaction.orders)
        ),
        format!(
            "  analytics (DuckDB)  view {}; revenue_by_status {}, top_customers(5) {}, monthly_trends {}",
            millis(queries.view),
            millis(queries.by_status),
            millis(queries.top_customers),
            millis(queries.monthly)
        ),
        format!(
            "  time travel         as_of(LSN {earlier}) view + query {}; offline fold of {} events {}",
            millis(queries.as_of),
            thousands(fold.events),
            millis(fold_time)
        ),
        format!(
            "  bytes per order     IPC {:.1}, Parquet {:.1}; log {:.1} bytes per event",
            ipc_bytes as f64 / snap_rows as f64,
            parquet_bytes as f64 / snap_rows as f64,
            log_bytes as f64 / opened.events_replayed.max(1) as f64
        ),
        format!("DIR {} is left in place; look inside with:", dir.display()),
        format!(
            "  orderlog stats {0}\n  orderlog verify {0}\n  orderlog dump {0} --limit 10\n  orderlog replay {0} --until-lsn {earlier} --out /tmp/orderlog-replay-{earlier}\n  orderlog sql {0} \"SELECT status, count(*) AS orders FROM orders GROUP BY ALL\"",
            dir.display()
        ),
    ] {
        out.line(line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_dir_refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("x"), b"keep me").expect("write");
        assert!(demo_dir(Some(dir.path())).is_err());
        assert!(demo_dir(Some(&dir.path().join("new"))).is_ok());
    }
}
