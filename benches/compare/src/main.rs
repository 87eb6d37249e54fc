//! `cargo run --release -p orderlog-compare -- [--quick] [--write-docs | --ingest-only]`:
//! runs the comparison, prints its tables, and with `--write-docs` replaces the generated
//! section of `docs/benchmarks.md`; `--ingest-only` runs the file-system-dependent part.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use orderlog_compare::report::replace_section;
use orderlog_compare::workload::Result;
use orderlog_compare::{Plan, render, render_ingest, run};

/// Compare orderlog with SQLite, fjall, okaywal, naive Parquet persistence and the
/// machine's limits, on the same order workload.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Fewer commits per cell and 1M orders only (under 2 minutes).
    #[arg(long)]
    quick: bool,
    /// Only the physical limits and the durable-ingest grid (every system, both I/O
    /// backends of the store), in a few minutes: for comparing file systems
    /// (`ORDERLOG_BENCH_DIR` on each). Prints its tables; never writes the document.
    #[arg(long, conflicts_with = "write_docs")]
    ingest_only: bool,
    /// Replace the generated section of the benchmarks document.
    #[arg(long)]
    write_docs: bool,
    /// The document `--write-docs` edits.
    #[arg(long, default_value_os_t = default_docs())]
    docs: PathBuf,
}

fn default_docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md")
}

/// A line about the machine: CPU, memory, kernel, and the disk under the temp dir.
fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let base =
        std::env::var_os("ORDERLOG_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    // The longest mount point containing the temp dir.
    let mounts = read("/proc/mounts");
    let disk = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && base.starts_with(f[1]))
                .then(|| (f[1].len(), f[0].to_string(), f[2].to_string()))
        })
        .max()
        .map(|(_, dev, fs)| {
            let name = dev.trim_start_matches("/dev/").trim_end_matches(char::is_numeric);
            let cache = read(&format!("/sys/block/{name}/queue/write_cache"));
            let cache = cache.trim();
            if cache.is_empty() {
                format!("{dev}, {fs}")
            } else {
                format!("{dev}, {fs}, write cache: {cache}")
            }
        })
        .unwrap_or_else(|| "unknown disk".into());
    format!(
        "{cpus} vCPU ({model}), {mem_gib:.0} GiB RAM, Linux {kernel}; files in {} ({disk})",
        base.display()
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut plan = if args.quick { Plan::quick() } else { Plan::full() };
    plan.ingest_only = args.ingest_only;
    let command = format!(
        "cargo run --release -p orderlog-compare{}",
        if args.quick { " -- --quick" } else { "" }
    );
    let started = Instant::now();
    let log = |m: &str| eprintln!("[{:>6.1} s] {m}", started.elapsed().as_secs_f64());
    let results = run(&plan, &log)?;
    if args.ingest_only {
        println!(
            "### Ingest on {}\n\nGenerated in {:.0} s.\n\n{}",
            machine(),
            results.elapsed.as_secs_f64(),
            render_ingest(&results)
        );
        return Ok(());
    }
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let section = format!(
        "### Figures of the last run\n\n\
         ```sh\n{command}\n```\n\n\
         Generated {date} in {:.0} s. **Machine:** {}.\n\n{}",
        results.elapsed.as_secs_f64(),
        machine(),
        render(&results)
    );
    println!("{section}");
    if args.write_docs {
        let doc = std::fs::read_to_string(&args.docs)?;
        std::fs::write(&args.docs, replace_section(&doc, &section))?;
        eprintln!("wrote {}", args.docs.display());
    }
    Ok(())
}
