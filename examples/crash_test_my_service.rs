//! How a service crash-tests its own use of orderlog, in its own `cargo test`.
//!
//! The "service" takes orders and confirms each one right after creating it, in one
//! atomic batch when it can. Its invariants: every order it acknowledged to a customer
//! survives any crash, and no order is ever confirmed without existing. For each seed
//! the example runs the service on a simulated disk, kills the "process" at a seeded
//! storage operation (every third seed: at a named kill point instead), cuts the power (unsynced writes dropped, kept, torn or garbled),
//! reopens, and checks both invariants. A failing seed names itself.
//!
//! `cargo run --release --example crash_test_my_service -- [seeds]` (default 300).

use orderlog::testing::{CrashDisk, KillPoint};
use orderlog::{CompactionOptions, Event, Order, OrderStatus, StoreOptions, WalOptions};

fn options() -> StoreOptions {
    StoreOptions {
        // Small segments, so crashes also hit segment rolls.
        wal: WalOptions { segment_bytes: 64 << 10, ..WalOptions::default() },
        compaction: CompactionOptions { background: false, ..CompactionOptions::default() },
        ..StoreOptions::default()
    }
}

/// The service's workload: returns the orders acknowledged to customers.
fn run_service(disk: &CrashDisk, seed: u64) -> Vec<u64> {
    let Ok(store) = disk.open() else { return Vec::new() };
    let mut acked = Vec::new();
    for id in 1..=400u64 {
        let order = Order::builder(id)
            .customer(id % 17)
            .product(seed % 5)
            .quantity(1 + (id % 3) as u32)
            .unit_price(9.5)
            .build();
        #[allow(clippy::expect_used, reason = "quantity 1 to 3 and price 9.5 are valid")]
        let order = order.expect("a valid order");
        let batch = [Event::create(order), Event::set_status(id, OrderStatus::Confirmed)];
        match store.apply_batch(&batch) {
            Ok(_) => acked.push(id),
            Err(_) => break, // the process died here
        }
        if id % 150 == 0 && store.compact().is_err() {
            break;
        }
    }
    acked
}

/// Runs one seed; returns how many orders were acknowledged before the crash.
fn check(seed: u64) -> Result<usize, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let disk = CrashDisk::new(dir.path(), options());
    if seed.is_multiple_of(3) {
        // Kill the process at a named moment: mid-write, mid-roll, mid-compaction.
        let point = KillPoint::ALL[(seed / 3) as usize % KillPoint::ALL.len()];
        disk.crash_at(point, 1 + seed % 2);
    } else {
        // Kill the process somewhere in its first few hundred storage operations.
        disk.crash_after(seed * 7919 % 600);
    }
    let acked = run_service(&disk, seed);
    let recovered = disk.power_cut(seed).open().map_err(|e| format!("recovery failed: {e}"))?;
    for id in &acked {
        match recovered.get(*id) {
            Some(order) if order.status == OrderStatus::Confirmed => {}
            Some(order) => return Err(format!("order {id} lost its confirmation: {order:?}")),
            None => return Err(format!("acknowledged order {id} was lost")),
        }
    }
    // Atomic batches: nothing is created without its confirmation.
    let half_done = recovered.query(|o| o.status != OrderStatus::Confirmed);
    if let Some(order) = half_done.first() {
        return Err(format!("order {} exists unconfirmed", order.order_id));
    }
    Ok(acked.len())
}

fn main() {
    let seeds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(300);
    let (mut failed, mut mid_workload) = (0, 0);
    for seed in 0..seeds {
        match check(seed) {
            Ok(acked) => mid_workload += usize::from(acked < 400),
            Err(why) => {
                failed += 1;
                eprintln!("seed {seed}: {why}");
            }
        }
    }
    println!("{seeds} seeds ({mid_workload} died mid-workload), {failed} invariant violations");
    if failed > 0 {
        std::process::exit(1);
    }
}
