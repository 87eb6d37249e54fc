//! Append throughput and commit latency of the WAL, beside its baselines, in one run:
//! a raw 4 KiB `pwrite` + `fdatasync` loop, a raw sequential write, and okaywal 0.3
//! appending the same frames.
//!
//! `cargo bench -p orderlog-wal --bench append` runs the whole matrix (payload 64/256 B,
//! policies Never and Always, batches 1/64/1024, 1 and 4 writers). Files go to
//! `ORDERLOG_BENCH_DIR` (default: the system temp dir), which should be on the disk being
//! measured. Besides criterion's report, the run prints single-commit latency
//! percentiles for orderlog and raw fdatasync, measured back to back.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on purpose"
)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orderlog_wal::{IoBackend, SyncPolicy, Wal, WalOptions};

fn bench_dir() -> tempfile::TempDir {
    let base =
        std::env::var_os("ORDERLOG_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    tempfile::Builder::new().prefix("orderlog-bench-").tempdir_in(base).expect("bench dir")
}

/// Runs `writers` threads, each doing `iters` calls of `op`, and returns the wall time.
fn run_writers(writers: usize, iters: u64, op: impl Fn() + Send + Sync + 'static) -> Duration {
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let (op, barrier) = (Arc::clone(&op), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    op();
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("writer thread");
    }
    start.elapsed()
}

const PAYLOADS: [usize; 2] = [64, 256];
const BATCHES: [usize; 3] = [1, 64, 1024];
const WRITERS: [usize; 2] = [1, 4];

/// A log that is replaced (outside the timed region) before it would roll, so that a
/// measurement times appends, not the segment roll's sync of everything written before.
struct RoomyLog {
    opts: WalOptions,
    /// Kept so the directory lives as long as its log.
    _dir: tempfile::TempDir,
    wal: Arc<Wal>,
}

impl RoomyLog {
    fn new(opts: WalOptions) -> Self {
        let dir = bench_dir();
        let wal = Arc::new(Wal::open(dir.path(), opts.clone()).expect("open"));
        RoomyLog { opts, _dir: dir, wal }
    }

    fn with_room(&mut self, bytes: u64) -> Arc<Wal> {
        let used = self.wal.stats().bytes % self.opts.segment_bytes;
        if used + bytes + 8192 > self.opts.segment_bytes {
            *self = RoomyLog::new(self.opts.clone());
        }
        Arc::clone(&self.wal)
    }
}

fn orderlog(c: &mut Criterion, policy: SyncPolicy, io_backend: IoBackend, label: &str) {
    let mut group = c.benchmark_group(format!("orderlog-{label}"));
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    for payload in PAYLOADS {
        for batch in BATCHES {
            for writers in WRITERS {
                let id = BenchmarkId::from_parameter(format!("{payload}B/batch{batch}/w{writers}"));
                group.throughput(Throughput::Elements((batch * writers) as u64));
                let opts = WalOptions {
                    segment_bytes: 1 << 30,
                    sync_policy: policy,
                    io_backend: Some(io_backend),
                    ..WalOptions::default()
                };
                let mut log = RoomyLog::new(opts);
                let frame = vec![0xabu8; payload];
                let frame_bytes = orderlog_wal::format::frame_size(payload);
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let bytes = iters * (batch * writers) as u64 * frame_bytes;
                        let wal = log.with_room(bytes);
                        let frame = frame.clone();
                        run_writers(writers, iters, move || {
                            let frames: Vec<&[u8]> = vec![&frame; batch];
                            wal.append_batch(&frames).expect("append");
                        })
                    })
                });
            }
        }
    }
    group.finish();
}

#[derive(Debug)]
struct NoCheckpoint;

impl okaywal::LogManager for NoCheckpoint {
    fn recover(&mut self, _entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        Ok(())
    }
    fn checkpoint_to(
        &mut self,
        _last: okaywal::EntryId,
        _entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

fn okaywal_baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("okaywal");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    for payload in PAYLOADS {
        for batch in BATCHES {
            for writers in WRITERS {
                let id = BenchmarkId::from_parameter(format!("{payload}B/batch{batch}/w{writers}"));
                group.throughput(Throughput::Elements((batch * writers) as u64));
                let dir = bench_dir();
                let log = Arc::new(
                    okaywal::WriteAheadLog::recover(dir.path(), NoCheckpoint).expect("okaywal"),
                );
                let frame = vec![0xabu8; payload];
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let log = Arc::clone(&log);
                        let frame = frame.clone();
                        run_writers(writers, iters, move || {
                            let mut entry = log.begin_entry().expect("entry");
                            for _ in 0..batch {
                                entry.write_chunk(&frame).expect("chunk");
                            }
                            entry.commit().expect("commit");
                        })
                    })
                });
            }
        }
    }
    group.finish();
}

/// A 64 MiB file of written, synced zeros: overwriting it in place is the fastest durable
/// write the disk offers (no block allocation, no unwritten-extent conversion).
fn zeroed_file(path: &std::path::Path) -> File {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .expect("raw file");
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..64 {
        file.write_all(&chunk).expect("zero fill");
    }
    file.sync_all().expect("sync");
    file
}

/// Raw baselines: the disk's own limits, measured in the same run.
fn raw_baselines(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    let dir = bench_dir();
    let file = zeroed_file(&dir.path().join("raw"));
    let block = [0x5au8; 4096];
    let mut at = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("pwrite4k+fdatasync", |b| {
        b.iter(|| {
            file.write_all_at(&block, at).expect("pwrite");
            file.sync_data().expect("fdatasync");
            at = (at + 4096) % (64 << 20);
        })
    });
    let chunk = vec![0x5au8; 1 << 20];
    group.throughput(Throughput::Bytes(64 << 20));
    group.bench_function("sequential-write-64MiB+fdatasync", |b| {
        b.iter(|| {
            let mut f = File::create(dir.path().join("seq")).expect("seq file");
            for _ in 0..64 {
                f.write_all(&chunk).expect("write");
            }
            f.sync_data().expect("fdatasync");
        })
    });
    group.finish();
}

/// Single-commit latency percentiles: orderlog (Always, 64 B) with each backend, okaywal
/// and raw fdatasync, interleaved so that all see the same disk conditions.
fn latency_report(_c: &mut Criterion) {
    const N: usize = 3000;
    let dir = bench_dir();
    let open = |backend, name: &str| {
        let opts = WalOptions {
            segment_bytes: 64 << 20,
            io_backend: Some(backend),
            ..WalOptions::default()
        };
        Wal::open(dir.path().join(name), opts).expect("open")
    };
    let mmap = open(IoBackend::Mmap, "mmap");
    let pwrite = open(IoBackend::Pwrite, "pwrite");
    let okay =
        okaywal::WriteAheadLog::recover(dir.path().join("okaywal"), NoCheckpoint).expect("okaywal");
    let raw = zeroed_file(&dir.path().join("raw"));
    let frame = [0xabu8; 64];
    let mut lat: [Vec<Duration>; 4] = Default::default();
    let mut timed = |i: usize, op: &mut dyn FnMut()| {
        let t = Instant::now();
        op();
        lat[i].push(t.elapsed());
    };
    for n in 0..N {
        timed(0, &mut || {
            mmap.append(&frame).expect("append");
        });
        timed(1, &mut || {
            pwrite.append(&frame).expect("append");
        });
        timed(2, &mut || {
            let mut entry = okay.begin_entry().expect("entry");
            entry.write_chunk(&frame).expect("chunk");
            entry.commit().expect("commit");
        });
        timed(3, &mut || {
            raw.write_all_at(&[0x5a; 4096], (n as u64 % 16384) * 4096).expect("pwrite");
            raw.sync_data().expect("fdatasync");
        });
    }
    let names = ["orderlog mmap", "orderlog pwrite", "okaywal", "raw 4 KiB pwrite+fdatasync"];
    let mut p50s = [0.0; 4];
    for (i, mut v) in lat.into_iter().enumerate() {
        v.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        p50s[i] = us(v[v.len() / 2]);
        println!(
            "latency: {:<28} p50 {:>7.1} µs  p99 {:>7.1} µs",
            names[i],
            p50s[i],
            us(v[v.len() * 99 / 100])
        );
    }
    println!(
        "latency: p50 ratio to raw fdatasync: mmap {:.2}, pwrite {:.2}, okaywal {:.2}",
        p50s[0] / p50s[3],
        p50s[1] / p50s[3],
        p50s[2] / p50s[3]
    );
}

fn never(c: &mut Criterion) {
    orderlog(c, SyncPolicy::Never, IoBackend::Mmap, "never-mmap");
}

fn always(c: &mut Criterion) {
    orderlog(c, SyncPolicy::Always, IoBackend::Mmap, "always-mmap");
    orderlog(c, SyncPolicy::Always, IoBackend::Pwrite, "always-pwrite");
}

criterion_group!(benches, latency_report, raw_baselines, always, okaywal_baseline, never);
criterion_main!(benches);
