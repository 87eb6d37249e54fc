//! The workload every system runs: the same orders, the same record per order, the same
//! batches and writers; and the driver that times it.

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use orderlog_store::{Order, OrderStatus, PaymentMethod};

/// An error from any system under test, as text (the harness only reports it).
pub struct Error(pub String);

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::fmt::Display> From<E> for Error {
    fn from(e: E) -> Self {
        Error(e.to_string())
    }
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Fails with `msg` unless `ok`.
pub fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { Err(Error(msg())) }
}

/// Statuses cycled through by the generator, so revenue by status has several groups.
pub const STATUSES: [OrderStatus; 4] =
    [OrderStatus::Pending, OrderStatus::Confirmed, OrderStatus::Shipped, OrderStatus::Delivered];

/// Order `id`: 100,000 customers, 5,000 products, prices up to 100 (as the store's
/// benches), statuses and payment methods cycling.
pub fn order(id: u64) -> Order {
    let built = Order::builder(id)
        .customer(id % 100_000)
        .product(id % 5_000)
        .quantity((id % 9 + 1) as u32)
        .unit_price((id % 10_000) as f64 / 100.0)
        .status(STATUSES[(id % 4) as usize])
        .payment(if id.is_multiple_of(3) {
            PaymentMethod::PayPal
        } else {
            PaymentMethod::CreditCard
        })
        .placed_at(1_600_000_000 + id % 150_000_000)
        .shipping_address_hash(id.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .build();
    #[allow(clippy::expect_used, reason = "every field named, quantity 1 to 9, price 0 to 99.99")]
    built.expect("a generated order is valid")
}

/// Size of [`record`]: what the log-layer peers (and fjall's values) store per order.
pub const RECORD_BYTES: usize = 80;

/// The fixed 80-byte little-endian record of an order: its nine fields, padding, and an
/// 8-byte event timestamp (as an event log would carry).
pub fn record(o: &Order) -> [u8; RECORD_BYTES] {
    let mut r = [0u8; RECORD_BYTES];
    r[0..8].copy_from_slice(&o.order_id.to_le_bytes());
    r[8..16].copy_from_slice(&o.customer_id.to_le_bytes());
    r[16..24].copy_from_slice(&o.product_id.to_le_bytes());
    r[24..28].copy_from_slice(&o.quantity.to_le_bytes());
    r[28] = u8::from(o.status);
    r[29] = u8::from(o.payment_method);
    r[32..40].copy_from_slice(&o.unit_price.to_le_bytes());
    r[40..48].copy_from_slice(&o.total_amount().to_le_bytes());
    r[48..56].copy_from_slice(&o.order_timestamp.to_le_bytes());
    r[56..64].copy_from_slice(&o.shipping_address_hash.to_le_bytes());
    r[64..72].copy_from_slice(&1u64.to_le_bytes());
    r
}

/// The ids writer `w` of a cell uses for its `n`-th order: disjoint per writer.
pub fn order_id(writer: usize, n: u64) -> u64 {
    ((writer as u64 + 1) << 36) + n
}

/// Writer `w`'s orders for `commits` commits of `batch`, grouped by commit.
pub fn writer_orders(writer: usize, commits: u64, batch: usize) -> Vec<Vec<Order>> {
    (0..commits)
        .map(|c| (0..batch as u64).map(|i| order(order_id(writer, c * batch as u64 + i))).collect())
        .collect()
}

/// A fresh directory under `ORDERLOG_BENCH_DIR` (default: the system temp dir).
pub fn fresh_dir() -> Result<tempfile::TempDir> {
    let base =
        std::env::var_os("ORDERLOG_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    Ok(tempfile::Builder::new().prefix("orderlog-compare-").tempdir_in(base)?)
}

/// Bytes allocated on disk under `dir` (blocks, not apparent sizes), recursively.
pub fn disk_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { disk_bytes(&entry.path())? } else { meta.blocks() * 512 };
    }
    Ok(total)
}

/// One measured cell: `ops` mutations (records) committed in `elapsed`, with each
/// commit's latency.
#[derive(Debug, Clone, Default)]
pub struct Ingest {
    /// Mutations committed.
    pub ops: u64,
    /// Commits made.
    pub commits: u64,
    /// Wall time from the writers' release to the last one's end.
    pub elapsed: Duration,
    /// Every commit's latency, sorted.
    pub latencies: Vec<Duration>,
    /// Bytes the log wrote for these commits, where known (orderlog).
    pub log_bytes: Option<u64>,
}

impl Ingest {
    /// Mutations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Log bytes per second, where known.
    pub fn log_bandwidth(&self) -> Option<f64> {
        self.log_bytes.map(|b| b as f64 / self.elapsed.as_secs_f64().max(1e-9))
    }
}

/// A writer: called with its commit number, commits one batch.
pub type Writer<'a> = Box<dyn FnMut(u64) -> Result<()> + Send + 'a>;

/// Runs each writer for up to `commits` commits of `batch` records, all released
/// together; a writer stops early once `cap` has passed since the release. Returns the
/// mutations committed, wall time and latencies.
pub fn drive(
    writers: Vec<Writer<'_>>,
    commits: u64,
    batch: usize,
    cap: Duration,
) -> Result<Ingest> {
    let barrier = Barrier::new(writers.len() + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = writers
            .into_iter()
            .map(|mut w| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<Vec<Duration>> {
                    barrier.wait();
                    let start = Instant::now();
                    let mut lat = Vec::with_capacity(commits as usize);
                    for c in 0..commits {
                        let t = Instant::now();
                        w(c)?;
                        lat.push(t.elapsed());
                        if start.elapsed() > cap {
                            break;
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut latencies = Vec::new();
        for h in handles {
            let lat = h.join().map_err(|_| Error("writer thread panicked".into()))??;
            latencies.extend(lat);
        }
        let elapsed = start.elapsed();
        latencies.sort_unstable();
        let commits = latencies.len() as u64;
        Ok(Ingest { ops: commits * batch as u64, commits, elapsed, latencies, log_bytes: None })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_80_bytes_and_distinct() {
        let a = record(&order(1));
        let b = record(&order(2));
        assert_eq!(a.len(), RECORD_BYTES);
        assert_ne!(a, b);
        assert_eq!(u64::from_le_bytes(a[0..8].try_into().unwrap_or_default()), 1);
    }

    #[test]
    fn writers_use_disjoint_ids() {
        let a = writer_orders(0, 3, 4);
        let b = writer_orders(1, 3, 4);
        assert_eq!(a.len(), 3);
        assert!(a.iter().flatten().all(|x| b.iter().flatten().all(|y| x.order_id != y.order_id)));
        assert!(a.iter().flatten().all(|o| o.validate().is_ok()));
    }

    #[test]
    fn drive_counts_commits_of_every_writer() -> Result<()> {
        let writers: Vec<Writer<'_>> = (0..3).map(|_| Box::new(|_| Ok(())) as Writer<'_>).collect();
        let r = drive(writers, 5, 10, Duration::from_secs(60))?;
        assert_eq!((r.commits, r.ops, r.latencies.len()), (15, 150, 15));
        Ok(())
    }
}
