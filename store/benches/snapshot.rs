//! Columnar snapshots of 1M orders: Arrow conversion, IPC and Parquet writes and reads,
//! each write beside a raw sequential write (+ fdatasync) of the same byte count in the
//! same run; and the resident bytes per order at 10M orders.
//!
//! `cargo bench -p orderlog-store --bench snapshot`. Files go to `ORDERLOG_BENCH_DIR`
//! (default: the system temp dir).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benches fail loudly on purpose")]

mod common;

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use common::bench_dir;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use orderlog_snapshot::{
    ParquetCompression, SnapshotOptions, ToArrow, read_ipc_file, read_parquet_file,
    write_ipc_batches, write_ipc_file, write_parquet_files,
};
use orderlog_store::{Order, OrderSoA, OrderStatus, PaymentMethod};

const ORDERS: u64 = 1_000_000;
/// Rows per IPC batch: columns of 8,192 rows stay under the allocator's mmap threshold,
/// so batch buffers are reused instead of page-faulted in fresh each time.
const IPC_BATCH_ROWS: usize = 65_536;

fn orders(n: u64) -> OrderSoA {
    let mut soa = OrderSoA::with_capacity(n as usize);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for id in 1..=n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let order = Order::builder(id)
            .customer(x % 100_000)
            .product(x % 5_000)
            .quantity((x % 9 + 1) as u32)
            .unit_price((x % 100_000) as f64 / 100.0)
            .build()
            .unwrap()
            .with_status(OrderStatus::ALL[(x % 6) as usize])
            .with_payment_method(PaymentMethod::ALL[(x % 5) as usize])
            .with_timestamp(1_600_000_000 + x % 150_000_000)
            .with_shipping_address_hash(x);
        soa.push(order).expect("valid order");
    }
    soa
}

/// The raw baseline: creates a file, writes `bytes` sequentially in 1 MiB chunks, and
/// makes it durable the way a snapshot file is made durable (fsync the file, then its
/// directory).
fn raw_write(dir: &std::path::Path, bytes: u64) {
    let chunk = vec![0x5au8; 1 << 20];
    let mut f = File::create(dir.join("raw")).expect("raw file");
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).expect("write");
        left -= n as u64;
    }
    f.sync_all().expect("fsync");
    File::open(dir).and_then(|d| d.sync_all()).expect("fsync dir");
}

/// The raw baseline written as the snapshot files are: the same chunks, with writeback
/// started every 8 MiB (`start_writeback`), then fsync file and directory.
fn raw_write_early_writeback(dir: &std::path::Path, bytes: u64) {
    const EVERY: u64 = 8 << 20;
    let chunk = vec![0x5au8; 1 << 20];
    let mut f = File::create(dir.join("raw")).expect("raw file");
    let (mut written, mut started) = (0u64, 0u64);
    while written < bytes {
        let n = (bytes - written).min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).expect("write");
        written += n as u64;
        if written - started >= EVERY {
            orderlog_wal::storage::start_writeback(&f, started, written - started)
                .expect("writeback");
            started = written;
        }
    }
    f.sync_all().expect("fsync");
    File::open(dir).and_then(|d| d.sync_all()).expect("fsync dir");
}

/// Median wall times of `runs` runs of `op` and of `baseline`, alternated so both see
/// the same disk conditions (each run in a fresh directory).
fn medians(
    runs: usize,
    mut op: impl FnMut(&std::path::Path),
    mut baseline: impl FnMut(&std::path::Path),
) -> (Duration, Duration) {
    let timed = |f: &mut dyn FnMut(&std::path::Path)| {
        let dir = bench_dir();
        let t = Instant::now();
        f(dir.path());
        t.elapsed()
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        a.push(timed(&mut op));
        b.push(timed(&mut baseline));
    }
    a.sort();
    b.sort();
    (a[runs / 2], b[runs / 2])
}

/// Each write format against a raw sequential write of the same byte count, back to back.
fn writes_against_raw(_c: &mut Criterion) {
    let soa = orders(ORDERS);
    let mb = |bytes: u64, d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let probe = bench_dir();
    let ipc_bytes = write_ipc_file(probe.path(), &soa, IPC_BATCH_ROWS).expect("ipc").bytes;
    let (ipc, raw) = medians(
        9,
        |d| {
            write_ipc_file(d, &soa, IPC_BATCH_ROWS).expect("ipc");
        },
        |d| raw_write(d, ipc_bytes),
    );
    println!(
        "write: arrow ipc   {:>6.1} MB in {:>7.1} ms = {:>7.1} MB/s; raw same bytes {:>7.1} MB/s; ratio {:.2}",
        ipc_bytes as f64 / 1e6,
        ipc.as_secs_f64() * 1e3,
        mb(ipc_bytes, ipc),
        mb(ipc_bytes, raw),
        raw.as_secs_f64() / ipc.as_secs_f64()
    );
    // The same against a raw write that also overlaps its writeback with writing.
    let (ipc, raw) = medians(
        9,
        |d| {
            write_ipc_file(d, &soa, IPC_BATCH_ROWS).expect("ipc");
        },
        |d| raw_write_early_writeback(d, ipc_bytes),
    );
    println!(
        "write: arrow ipc   {:>6.1} MB in {:>7.1} ms = {:>7.1} MB/s; raw same bytes, early writeback {:>7.1} MB/s; ratio {:.2}",
        ipc_bytes as f64 / 1e6,
        ipc.as_secs_f64() * 1e3,
        mb(ipc_bytes, ipc),
        mb(ipc_bytes, raw),
        raw.as_secs_f64() / ipc.as_secs_f64()
    );
    // An owned state (what the compactor holds) moves into Arrow without a copy and is
    // written as zero-copy slices of that one batch.
    let moved = soa.clone().into_record_batch().expect("into");
    let slices = || {
        (0..moved.num_rows())
            .step_by(IPC_BATCH_ROWS)
            .map(|at| moved.slice(at, IPC_BATCH_ROWS.min(moved.num_rows() - at)))
    };
    let (owned, raw) = medians(
        9,
        |d| {
            write_ipc_batches::<OrderSoA>(d, slices()).expect("ipc");
        },
        |d| raw_write(d, ipc_bytes),
    );
    println!(
        "write: arrow ipc, owned state (no conversion copy) {:>7.1} ms = {:>7.1} MB/s; raw same bytes {:>7.1} MB/s; ratio {:.2}",
        owned.as_secs_f64() * 1e3,
        mb(ipc_bytes, owned),
        mb(ipc_bytes, raw),
        raw.as_secs_f64() / owned.as_secs_f64()
    );
    for compression in
        [ParquetCompression::None, ParquetCompression::Snappy, ParquetCompression::Zstd]
    {
        let opts = SnapshotOptions { compression, ..SnapshotOptions::default() };
        let probe = bench_dir();
        let bytes: u64 = write_parquet_files(probe.path(), &soa, &opts)
            .expect("parquet")
            .iter()
            .map(|f| f.bytes)
            .sum();
        let (t, raw) = medians(
            3,
            |d| {
                write_parquet_files(d, &soa, &opts).expect("parquet");
            },
            |d| raw_write(d, bytes),
        );
        println!(
            "write: parquet {:<6} {:>6.1} MB in {:>7.1} ms = {:>7.1} MB/s ({:>5.1} MB/s of column data); raw same bytes {:>7.1} MB/s; ratio {:.2}",
            compression.as_str(),
            bytes as f64 / 1e6,
            t.as_secs_f64() * 1e3,
            mb(bytes, t),
            mb(soa.memory_stats().column_bytes as u64, t),
            mb(bytes, raw),
            raw.as_secs_f64() / t.as_secs_f64()
        );
    }
}

fn conversions(c: &mut Criterion) {
    let soa = orders(ORDERS);
    let column_bytes = soa.memory_stats().column_bytes as u64;
    let mut g = c.benchmark_group("arrow-1M-orders");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(column_bytes));
    g.bench_function("to_record_batch (copy)", |b| b.iter(|| soa.to_record_batch().expect("to")));
    g.bench_function("into_record_batch (move)", |b| {
        b.iter_batched(
            || soa.clone(),
            |s| s.into_record_batch().expect("into"),
            BatchSize::LargeInput,
        )
    });
    let batch = soa.to_record_batch().expect("to");
    g.bench_function("from_record_batch", |b| {
        b.iter(|| OrderSoA::from_record_batch(&batch).expect("from"))
    });
    g.finish();

    let mut g = c.benchmark_group("read-1M-orders");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(column_bytes));
    let dir = bench_dir();
    let ipc = write_ipc_file(dir.path(), &soa, IPC_BATCH_ROWS).expect("ipc");
    g.bench_function("ipc map+decode", |b| b.iter(|| read_ipc_file(&ipc.path).expect("read")));
    g.bench_function("ipc load into OrderSoA", |b| {
        b.iter(|| {
            let mut s = OrderSoA::with_capacity(ORDERS as usize);
            for batch in read_ipc_file(&ipc.path).expect("read") {
                s.extend_from_record_batch(&batch).expect("extend");
            }
            s
        })
    });
    for compression in
        [ParquetCompression::None, ParquetCompression::Snappy, ParquetCompression::Zstd]
    {
        let sub = dir.path().join(compression.as_str());
        std::fs::create_dir(&sub).expect("dir");
        let opts = SnapshotOptions { compression, ..SnapshotOptions::default() };
        let files = write_parquet_files(&sub, &soa, &opts).expect("parquet");
        g.bench_function(format!("parquet {} decode", compression.as_str()), |b| {
            b.iter(|| read_parquet_file(&files[0].path).expect("read"))
        });
    }
    g.finish();
}

/// Resident bytes per order at 10M orders: the columns' and index's sizes, and the
/// process's resident set growth while building them.
fn memory_at_ten_million(_c: &mut Criterion) {
    let rss = || {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        pages * 4096
    };
    let before = rss();
    let soa = orders(10_000_000);
    let after = rss();
    let stats = soa.memory_stats();
    println!(
        "memory: 10M orders: columns {:.1} B/order + index {:.1} B/order = {:.1} B/order; resident set grew {:.1} B/order",
        stats.column_bytes as f64 / 1e7,
        stats.index_bytes as f64 / 1e7,
        stats.bytes_per_order,
        (after.saturating_sub(before)) as f64 / 1e7
    );
    drop(soa);
}

criterion_group!(benches, memory_at_ten_million, writes_against_raw, conversions);
criterion_main!(benches);
