//! `orderlog-compare`: orderlog beside what a user would use instead — SQLite, fjall,
//! okaywal, naive Parquet persistence — and beside the machine's physical limits,
//! on the same order workload in one run.
//!
//! `cargo run --release -p orderlog-compare -- [--quick] [--write-docs]` prints the
//! tables; `--write-docs` also replaces the generated section of `docs/benchmarks.md`.

pub mod datasets;
pub mod limits;
pub mod peers;
pub mod report;
pub mod workload;

use std::time::Duration;

use datasets::Dataset;
use limits::Limits;
use peers::System;
use report::{Table, duration, percentile, rate, ratio};
use workload::{Ingest, Result};

/// Batch sizes (orders per commit or transaction) of the ingest grid.
pub const BATCHES: [usize; 3] = [1, 64, 1024];
/// Writer counts of the ingest grid.
pub const WRITERS: [usize; 2] = [1, 4];

/// How much of everything to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Commits per cell (shared by its writers) for each of [`BATCHES`].
    pub commits: [u64; 3],
    /// A cell's writers stop after this long even if commits remain.
    pub cap: Duration,
    /// Data set sizes for reopen, bytes per order and analytics.
    pub sizes: Vec<u64>,
    /// Orders per commit when building the data sets.
    pub dataset_batch: usize,
    /// Runs of each analytics query (the median is reported).
    pub query_runs: usize,
    /// Adds of the naive Parquet-after-each-add baseline.
    pub naive_adds: u64,
    /// Durable 4 KiB writes of the fdatasync limit.
    pub syncs: usize,
    /// MiB of the sequential-write limit.
    pub seq_mib: u64,
    /// MiB of the memcpy limit.
    pub copy_mib: u64,
    /// Only the limits and the ingest grid (no naive baseline, data sets or analytics):
    /// what depends on the file system.
    pub ingest_only: bool,
}

impl Plan {
    /// The full comparison (under 10 minutes on the project's 2-core VM).
    pub fn full() -> Self {
        Plan {
            commits: [4_000, 1_200, 600],
            cap: Duration::from_secs(4),
            sizes: vec![1_000_000, 10_000_000],
            dataset_batch: 8_192,
            query_runs: 3,
            naive_adds: 1_000,
            syncs: 2_000,
            seq_mib: 256,
            copy_mib: 2_048,
            ingest_only: false,
        }
    }

    /// `--quick`: fewer commits, 1M orders only (under 2 minutes).
    pub fn quick() -> Self {
        Plan {
            commits: [400, 150, 60],
            cap: Duration::from_millis(700),
            sizes: vec![1_000_000],
            dataset_batch: 8_192,
            query_runs: 1,
            naive_adds: 200,
            syncs: 500,
            seq_mib: 64,
            copy_mib: 512,
            ingest_only: false,
        }
    }

    /// A few of everything: for tests of correctness, not speed.
    pub fn tiny() -> Self {
        Plan {
            commits: [8, 4, 4],
            cap: Duration::from_secs(60),
            sizes: vec![5_000],
            dataset_batch: 1_000,
            query_runs: 1,
            naive_adds: 5,
            syncs: 5,
            seq_mib: 2,
            copy_mib: 64,
            ingest_only: false,
        }
    }
}

/// One cell of the ingest grid.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The system.
    pub system: System,
    /// Orders per commit.
    pub batch: usize,
    /// Writer threads.
    pub writers: usize,
    /// What it measured.
    pub ingest: Ingest,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Physical limits.
    pub limits: Limits,
    /// The ingest grid.
    pub cells: Vec<Cell>,
    /// The naive baseline (one writer, one order per save).
    pub naive: Ingest,
    /// Data sets, one per size.
    pub datasets: Vec<Dataset>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Results {
    /// The cell of `system` at `batch` and `writers`.
    pub fn cell(&self, system: System, batch: usize, writers: usize) -> Option<&Ingest> {
        self.cells
            .iter()
            .find(|c| c.system == system && c.batch == batch && c.writers == writers)
            .map(|c| &c.ingest)
    }
}

/// Runs `plan`, reporting progress through `log`.
pub fn run(plan: &Plan, log: &dyn Fn(&str)) -> Result<Results> {
    let start = std::time::Instant::now();
    let mut out = Results::default();
    log("physical limits");
    out.limits = limits::measure(plan.syncs, plan.seq_mib, plan.copy_mib)?;
    for system in System::ALL {
        for (i, &batch) in BATCHES.iter().enumerate() {
            for &writers in &WRITERS {
                let commits = plan.commits[i].div_ceil(writers as u64);
                log(&format!("ingest: {} batch {batch} writers {writers}", system.name()));
                let ingest = system.ingest(batch, writers, commits, plan.cap)?;
                out.cells.push(Cell { system, batch, writers, ingest });
            }
        }
    }
    // The limits again after the grid: a limit is the best the machine showed in the run.
    log("physical limits, again");
    out.limits = out.limits.best(&limits::measure(plan.syncs, plan.seq_mib, plan.copy_mib)?);
    if plan.ingest_only {
        out.elapsed = start.elapsed();
        return Ok(out);
    }
    log("naive: Parquet after each add");
    out.naive = peers::naive(plan.naive_adds)?;
    for &n in &plan.sizes {
        out.datasets.push(datasets::measure(n, plan.dataset_batch, plan.query_runs, log)?);
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

fn grid_header(first: &str) -> Vec<String> {
    let mut h = vec![first.to_string()];
    for b in BATCHES {
        for w in WRITERS {
            h.push(format!("b{b} w{w}"));
        }
    }
    h
}

fn table(header: &[String], left: usize) -> Table {
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    Table::new(&h, left)
}

/// The grid's values of `system`, one per (batch, writers).
fn grid_row(r: &Results, system: System, f: impl Fn(&Ingest) -> String) -> Vec<String> {
    let mut row = vec![system.name().to_string()];
    for b in BATCHES {
        for w in WRITERS {
            row.push(r.cell(system, b, w).map_or_else(|| "–".into(), &f));
        }
    }
    row
}

/// A row of ratios `f(orderlog cell, peer cell)` over the grid.
fn ratio_row(
    r: &Results,
    label: &str,
    ours: System,
    peer: System,
    f: impl Fn(&Ingest, &Ingest) -> String,
) -> Vec<String> {
    let mut row = vec![label.to_string()];
    for b in BATCHES {
        for w in WRITERS {
            row.push(match (r.cell(ours, b, w), r.cell(peer, b, w)) {
                (Some(a), Some(p)) => f(a, p),
                _ => "–".into(),
            });
        }
    }
    row
}

/// Whether `pred` holds for every grid cell (orderlog cell, peer cell).
fn all_cells(
    r: &Results,
    ours: System,
    peer: System,
    pred: impl Fn(&Ingest, &Ingest) -> bool,
) -> bool {
    BATCHES.iter().all(|&b| {
        WRITERS.iter().all(|&w| match (r.cell(ours, b, w), r.cell(peer, b, w)) {
            (Some(a), Some(p)) => pred(a, p),
            _ => false,
        })
    })
}

fn mb(bytes_per_sec: f64) -> String {
    format!("{:.0} MB/s", bytes_per_sec / 1e6)
}

/// The physical limits' table.
fn render_limits(r: &Results) -> String {
    let l = &r.limits;
    let mut s = String::new();
    s.push_str("#### Physical limits (same run; the better of two measurements, before and after the ingest grid)\n\n");
    let mut t = Table::new(&["limit", "figure"], 1);
    t.row(vec![
        "raw 4 KiB `pwrite` + `fdatasync` (written file)".into(),
        format!(
            "{}/s, p50 {}, p99 {}",
            rate(l.fdatasync_rate),
            duration(l.fdatasync_p50),
            duration(l.fdatasync_p99)
        ),
    ]);
    t.row(vec![
        format!("sequential write, {} MiB in 1 MiB writes + `fdatasync`", l.seq_bytes >> 20),
        format!("{} (= {}/s of 80 B records)", mb(l.seq_write), rate(l.seq_write / 80.0)),
    ]);
    t.row(vec!["memcpy (64 MiB buffers)".into(), format!("{:.1} GB/s", l.memcpy / 1e9)]);
    s.push_str(&t.markdown());
    s
}

/// The tables of an `--ingest-only` run: the limits, the ingest grid and its latencies,
/// and the two I/O backends of the store under `Always` side by side.
pub fn render_ingest(r: &Results) -> String {
    use System::*;
    let l = &r.limits;
    let mut s = render_limits(r);
    s.push_str("\n#### Durable ingest (mutations/s) and commit latency p50 / p99\n\n");
    let mut t = table(&grid_header("system"), 1);
    for system in System::ALL {
        t.row(grid_row(r, system, |c| {
            format!(
                "{} ({} / {})",
                rate(c.rate()),
                duration(percentile(&c.latencies, 50.0)),
                duration(percentile(&c.latencies, 99.0))
            )
        }));
    }
    s.push_str(&t.markdown());
    s.push_str("\n#### The store's I/O backends under `Always` (> 1: the first is faster)\n\n");
    let mut t = table(&grid_header("ratio"), 1);
    let tput = |a: &Ingest, p: &Ingest| ratio(Some(a.rate()), Some(p.rate()));
    t.row(ratio_row(r, "Pwrite ÷ Mmap", OrderlogAlways, OrderlogAlwaysMmap, tput));
    for (label, ours) in [("Pwrite", OrderlogAlways), ("Mmap", OrderlogAlwaysMmap)] {
        t.row(ratio_row(
            r,
            &format!("{label}: commits/s ÷ raw fdatasync/s"),
            ours,
            ours,
            |a, _| ratio(Some(a.commits as f64 / a.elapsed.as_secs_f64()), Some(l.fdatasync_rate)),
        ));
        for (name, peer) in
            [("okaywal", Okaywal), ("fjall SyncData", Fjall), ("SQLite FULL", SqliteFull)]
        {
            t.row(ratio_row(r, &format!("{label} ÷ {name}"), ours, peer, tput));
        }
    }
    s.push_str(&t.markdown());
    s
}

/// The generated section: every table, ratios and goals.
pub fn render(r: &Results) -> String {
    let l = &r.limits;
    let mut s = render_limits(r);

    s.push_str(
        "\n#### Durable ingest (mutations/s; bN = orders per commit, wN = writer threads)\n\n",
    );
    let mut t = table(&grid_header("system"), 1);
    for system in System::ALL {
        t.row(grid_row(r, system, |c| rate(c.rate())));
    }
    let mut naive =
        vec![format!("naive: whole state to Parquet after each add ({} adds)", r.naive.ops)];
    naive.push(rate(r.naive.rate()));
    t.row(naive);
    s.push_str(&t.markdown());
    s.push_str("\n¹ Not durable at commit: a crash can lose the last interval (orderlog) or the last transactions (SQLite NORMAL in WAL mode). orderlog's `Interval` commit is an in-memory append, so at batch 1 its cell lasts microseconds and its rate is not meaningful beyond \"far above any sync\".\n");

    s.push_str("\n#### Commit latency, p50 / p99\n\n");
    let mut t = table(&grid_header("system"), 1);
    for system in System::ALL {
        t.row(grid_row(r, system, |c| {
            format!(
                "{} / {}",
                duration(percentile(&c.latencies, 50.0)),
                duration(percentile(&c.latencies, 99.0))
            )
        }));
    }
    let mut naive = vec!["naive: whole state to Parquet (per add)".to_string()];
    naive.push(format!(
        "{} / {}",
        duration(percentile(&r.naive.latencies, 50.0)),
        duration(percentile(&r.naive.latencies, 99.0))
    ));
    t.row(naive);
    s.push_str(&t.markdown());

    s.push_str("\n#### Ratios: orderlog ÷ peer and orderlog ÷ limit (throughput: > 1 is orderlog ahead)\n\n");
    let tput = |a: &Ingest, p: &Ingest| ratio(Some(a.rate()), Some(p.rate()));
    let mut t = table(&grid_header("ratio"), 1);
    use System::*;
    for (label, ours, peer) in [
        ("store Always ÷ SQLite FULL", OrderlogAlways, SqliteFull),
        ("store Always ÷ fjall SyncData", OrderlogAlways, Fjall),
        ("store Always ÷ okaywal", OrderlogAlways, Okaywal),
        ("store Always, Mmap ÷ SQLite FULL", OrderlogAlwaysMmap, SqliteFull),
        ("store Always, Mmap ÷ fjall SyncData", OrderlogAlwaysMmap, Fjall),
        ("store Always, Mmap ÷ okaywal", OrderlogAlwaysMmap, Okaywal),
        ("orderlog-wal ÷ okaywal (log layer, same frames)", OrderlogWal, Okaywal),
        (
            "store Interval ÷ SQLite NORMAL (neither durable at commit)",
            OrderlogInterval,
            SqliteNormal,
        ),
    ] {
        t.row(ratio_row(r, label, ours, peer, tput));
    }
    for (label, ours) in
        [("store Always", OrderlogAlways), ("store Always, Mmap", OrderlogAlwaysMmap)]
    {
        t.row(ratio_row(
            r,
            &format!("{label}: commits/s ÷ raw fdatasync/s"),
            ours,
            ours,
            |a, _| ratio(Some(a.commits as f64 / a.elapsed.as_secs_f64()), Some(l.fdatasync_rate)),
        ));
        t.row(ratio_row(
            r,
            &format!("{label}: p50 ÷ raw fdatasync p50 (< 1.3 is the goal)"),
            ours,
            ours,
            |a, _| {
                ratio(
                    Some(percentile(&a.latencies, 50.0).as_secs_f64()),
                    Some(l.fdatasync_p50.as_secs_f64()),
                )
            },
        ));
        t.row(ratio_row(
            r,
            &format!("{label}: log bytes/s ÷ raw sequential write"),
            ours,
            ours,
            |a, _| ratio(a.log_bandwidth(), Some(l.seq_write)),
        ));
    }
    t.row(ratio_row(
        r,
        "orderlog-wal: log bytes/s ÷ raw sequential write",
        OrderlogWal,
        OrderlogWal,
        |a, _| ratio(a.log_bandwidth(), Some(l.seq_write)),
    ));
    s.push_str(&t.markdown());
    if let Some(ours) = r.cell(OrderlogAlways, 1, 1) {
        s.push_str(&format!(
            "\nstore Always, one order per commit ÷ naive Parquet-after-each-add: **{}**.\n",
            ratio(Some(ours.rate()), Some(r.naive.rate()))
        ));
    }

    s.push_str("\n#### Reopen after N orders, and bytes on disk\n\n");
    s.push_str("Each system ingests orders 1..N in commits of its fastest durable mode (large batches; orderlog Always, SQLite FULL, fjall SyncData; one writer), closes, and reopens. \"open\" is until a first point query is answered; orderlog's open loads every order into memory, so it is compared also with the peers' open + full scan. Bytes on disk are allocated blocks after close (orderlog's log segments are preallocated, 64 MiB each; the snapshot variant keeps Arrow IPC and zstd Parquet copies). Every reopen follows its close at once, so all read from the page cache.\n\n");
    let mut t = Table::new(
        &[
            "system",
            "orders",
            "ingest",
            "bytes/order",
            "open",
            "events/s loaded",
            "open + full scan",
        ],
        1,
    );
    for d in &r.datasets {
        for o in &d.reopens {
            t.row(vec![
                o.system.clone(),
                rate(o.orders as f64),
                o.ingest_rate.map_or_else(|| "–".into(), |x| format!("{}/s", rate(x))),
                format!("{:.1}", o.disk_bytes as f64 / o.orders as f64),
                duration(o.open),
                o.replay_rate.map_or_else(|| "–".into(), rate),
                o.scan.map_or_else(
                    || format!("{} (the open loads all)", duration(o.open)),
                    |x| duration(o.open + x),
                ),
            ]);
        }
    }
    s.push_str(&t.markdown());
    let mut t = Table::new(&["orders", "ratio (time: < 1 is orderlog faster)", "value"], 2);
    for d in &r.datasets {
        let find = |p: &str| d.reopens.iter().find(|o| o.system.starts_with(p));
        if let (Some(log), Some(snap)) = (find("orderlog: replay"), find("orderlog: snapshot")) {
            for peer in ["SQLite", "fjall"] {
                if let Some(p) = find(peer) {
                    for (ours, name) in [(log, "log replay"), (snap, "snapshot + tail")] {
                        t.row(vec![
                            rate(d.orders as f64),
                            format!("orderlog open ({name}) ÷ {peer} open"),
                            ratio(Some(ours.open.as_secs_f64()), Some(p.open.as_secs_f64())),
                        ]);
                        t.row(vec![
                            rate(d.orders as f64),
                            format!("orderlog open ({name}) ÷ {peer} open + full scan"),
                            ratio(
                                Some(ours.open.as_secs_f64()),
                                p.scan.map(|x| (x + p.open).as_secs_f64()),
                            ),
                        ]);
                    }
                    t.row(vec![
                        rate(d.orders as f64),
                        format!("orderlog bytes/order (log only) ÷ {peer}"),
                        ratio(Some(log.disk_bytes as f64), Some(p.disk_bytes as f64)),
                    ]);
                }
            }
        }
    }
    s.push('\n');
    s.push_str(&t.markdown());

    s.push_str(
        "\n#### Analytics: revenue by status over the same N orders (median query time)\n\n",
    );
    s.push_str("All three answers are checked equal (counts exactly, revenue within 1e-9 relative) before any figure is printed.\n\n");
    let mut t = Table::new(
        &[
            "system",
            "orders",
            "query",
            "prepared first",
            "orderlog query time ÷ this (< 1: orderlog faster)",
        ],
        1,
    );
    for d in &r.datasets {
        let ours = d.queries.first().map(|q| q.time.as_secs_f64());
        for q in &d.queries {
            t.row(vec![
                q.system.clone(),
                rate(q.orders as f64),
                duration(q.time),
                q.prepare.map_or_else(|| "–".into(), duration),
                ratio(ours, Some(q.time.as_secs_f64())),
            ]);
        }
    }
    s.push_str(&t.markdown());
    s.push_str("\n\"prepared first\": orderlog's `analytics()` handle (snapshot views + the log tail copied in); DuckDB native: loading the table through the Arrow appender.\n");

    s.push_str("\n#### Goals\n\n");
    let mut t = Table::new(&["goal", "result"], 2);
    let yes = |b: bool| if b { "**met**" } else { "**missed**" };
    for (label, ours) in
        [("store Always (default)", OrderlogAlways), ("store Always, Mmap", OrderlogAlwaysMmap)]
    {
        // Ahead, or within 3% where the peer commits at the disk's raw sync rate (one
        // fdatasync per commit: nobody can go faster there, and 3% is the noise).
        let at_sync_rate =
            |p: &Ingest| p.commits as f64 / p.elapsed.as_secs_f64() >= 0.9 * l.fdatasync_rate;
        let ahead = [SqliteFull, Fjall, Okaywal].iter().all(|&p| {
            all_cells(r, ours, p, |a, b| {
                a.rate() > b.rate() || (at_sync_rate(b) && a.rate() >= 0.97 * b.rate())
            })
        });
        t.row(vec![
            format!(
                "{label} ahead of SQLite FULL, fjall and okaywal in every cell (or within 3% \
                 of one committing at the raw fdatasync rate)"
            ),
            yes(ahead).into(),
        ]);
        let bw = WRITERS
            .iter()
            .filter_map(|&w| r.cell(ours, 1024, w).and_then(Ingest::log_bandwidth))
            .map(|b| b / l.seq_write)
            .fold(0.0, f64::max);
        t.row(vec![
            format!("{label}: ≥ 90% of raw disk bandwidth at batch 1024"),
            format!("{} (best {:.0}%)", yes(bw >= 0.9), bw * 100.0),
        ]);
        if let Some(c) = r.cell(ours, 1, 1) {
            let x = percentile(&c.latencies, 50.0).as_secs_f64() / l.fdatasync_p50.as_secs_f64();
            t.row(vec![
                format!("{label}: single-commit p50 ≤ 1.3× raw fdatasync"),
                format!("{} ({x:.2}×)", yes(x <= 1.3)),
            ]);
        }
    }
    for d in &r.datasets {
        for o in d.reopens.iter().filter(|o| o.system.starts_with("orderlog")) {
            let rr = o.replay_rate.unwrap_or(0.0);
            let peers = d.reopens.iter().filter(|p| !p.system.starts_with("orderlog"));
            let name = |p: &datasets::Reopen| p.system.split(':').next().unwrap_or("").to_string();
            let peers_faster: Vec<String> =
                peers.clone().filter(|p| p.open < o.open).map(name).collect();
            let scan_faster: Vec<String> =
                peers.filter(|p| p.scan.is_some_and(|x| x + p.open < o.open)).map(name).collect();
            t.row(vec![
                format!(
                    "{} orders, {}: recovery ≥ 5M events/s and faster than each peer's reopen",
                    rate(d.orders as f64),
                    o.system
                ),
                format!(
                    "{} ({}/s; {})",
                    yes(rr >= 5e6 && peers_faster.is_empty()),
                    rate(rr),
                    if peers_faster.is_empty() {
                        "no peer reopens faster".into()
                    } else {
                        format!(
                            "open slower than {}'s; than open + full scan: {}",
                            peers_faster.join(", "),
                            if scan_faster.is_empty() {
                                "faster than every peer".to_string()
                            } else {
                                format!("slower than {}", scan_faster.join(", "))
                            }
                        )
                    }
                ),
            ]);
        }
    }
    s.push_str(&t.markdown());
    s
}
