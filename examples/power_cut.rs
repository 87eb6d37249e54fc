//! A power-cut test of a service that embeds orderlog, through the real kernel I/O path.
//!
//! `cargo run --release --example power_cut [cuts]` (Linux, `/dev/fuse`, root or
//! `fusermount3`; built with the `testing` feature, which the crate's own examples have).
//!
//! The "service" is this same program, run again as a child process on a
//! crash-consistency FUSE mount ([`CrashFs`]):
//! 1. The child opens the store with the production storage and takes orders, printing
//!    `acked <id>` once each is durable.
//! 2. The parent kills it after a random number of acknowledgements and cuts the power:
//!    only what was synced survives, and the kernel's cached pages die with the mount.
//! 3. The parent reopens the store on the remounted image and checks the service's
//!    invariant: every acknowledged order is there.
//!
//! A service's own test follows the same shape with its own workload and invariants.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use orderlog::testing::CrashFs;
use orderlog::{Event, Order, OrderStore, StoreOptions, SyncPolicy};

/// Set in the child: the store's directory on the mount.
const CHILD_DIR: &str = "POWER_CUT_EXAMPLE_DIR";

fn options() -> StoreOptions {
    let mut options = StoreOptions::default();
    options.wal.sync_policy = SyncPolicy::Always;
    // Small segments, so a run of a few hundred orders rolls several.
    options.wal.segment_bytes = 64 * 1024;
    options
}

/// The child: takes orders from where the store ends until it is killed.
fn service(dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = OrderStore::open(dir, options())?;
    let mut out = std::io::stdout().lock();
    for id in (store.len() as u64 + 1).. {
        let order = Order::builder(id).customer(id % 97).product(id % 13).quantity(1);
        store.apply(Event::create(order.unit_price(12.5).build()?))?;
        writeln!(out, "acked {id}")?;
        out.flush()?;
        if id % 50 == 0 {
            store.compact()?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        return service(&dir);
    }
    let cuts: u64 = std::env::args().nth(1).map_or(Ok(20), |n| n.parse())?;
    if let Err(e) = CrashFs::check_available() {
        println!("power_cut example skipped: {e}");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    std::fs::create_dir(tmp.path().join("backing"))?;
    std::fs::create_dir(tmp.path().join("mnt"))?;
    let mut fs = CrashFs::mount(tmp.path().join("backing"), tmp.path().join("mnt"))?;
    let mut acked_total = 0;
    for seed in 0..cuts {
        let dir = fs.path().join("store");
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD_DIR, &dir)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // A different number of acknowledgements before each kill: 1 to 200.
        let kill_after = 1 + (seed * 7919) % 200;
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            if let Some(id) = line?.strip_prefix("acked ") {
                acked.push(id.parse::<u64>()?);
                if acked.len() as u64 == kill_after {
                    child.kill()?;
                }
            }
        }
        child.wait()?;
        fs = fs.power_cut(seed)?;
        let store = OrderStore::open(fs.path().join("store"), options())?;
        let lost: Vec<u64> = acked.iter().copied().filter(|&id| store.get(id).is_none()).collect();
        if !lost.is_empty() {
            return Err(format!("cut {seed}: acknowledged orders lost: {lost:?}").into());
        }
        acked_total += acked.len();
        println!(
            "cut {seed}: {} acknowledged, all recovered; the store holds {} orders",
            acked.len(),
            store.len()
        );
    }
    println!("{cuts} power cuts, {acked_total} acknowledged orders, none lost");
    Ok(())
}
