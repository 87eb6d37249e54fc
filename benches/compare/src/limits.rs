//! The machine's physical limits, measured in the same run: a durable 4 KiB write, the
//! disk's sequential write bandwidth, memory copy bandwidth.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::report::percentile;
use crate::workload::{Result, fresh_dir};

/// The limits measured.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// `pwrite` of 4 KiB + `fdatasync` into a written, synced file: ops/s.
    pub fdatasync_rate: f64,
    /// Its p50 latency.
    pub fdatasync_p50: Duration,
    /// Its p99 latency.
    pub fdatasync_p99: Duration,
    /// Sequential write of a new file in 1 MiB writes + `fdatasync`: bytes/s.
    pub seq_write: f64,
    /// Bytes written for `seq_write`.
    pub seq_bytes: u64,
    /// `copy_from_slice` between two 64 MiB buffers: bytes/s.
    pub memcpy: f64,
}

impl Limits {
    /// The better of two measurements of each limit.
    pub fn best(&self, other: &Limits) -> Limits {
        let sync = if other.fdatasync_p50 < self.fdatasync_p50 { other } else { self };
        Limits {
            fdatasync_rate: self.fdatasync_rate.max(other.fdatasync_rate),
            fdatasync_p50: sync.fdatasync_p50,
            fdatasync_p99: sync.fdatasync_p99,
            seq_write: self.seq_write.max(other.seq_write),
            seq_bytes: self.seq_bytes,
            memcpy: self.memcpy.max(other.memcpy),
        }
    }
}

/// Measures the limits: `syncs` durable 4 KiB writes, `seq_mib` MiB written
/// sequentially, `copy_mib` MiB copied in memory.
pub fn measure(syncs: usize, seq_mib: u64, copy_mib: u64) -> Result<Limits> {
    let dir = fresh_dir()?;
    // A 64 MiB file of written, synced zeros: overwriting it in place is the fastest
    // durable write the disk offers (no allocation, no unwritten-extent conversion).
    let path = dir.path().join("raw");
    let mut file =
        OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    let mib = vec![0u8; 1 << 20];
    for _ in 0..64 {
        file.write_all(&mib)?;
    }
    file.sync_all()?;
    let block = [0x5au8; 4096];
    let mut lat = Vec::with_capacity(syncs);
    let start = Instant::now();
    for i in 0..syncs {
        let t = Instant::now();
        file.write_all_at(&block, (i as u64 % 16_384) * 4096)?;
        file.sync_data()?;
        lat.push(t.elapsed());
    }
    let fdatasync_rate = syncs as f64 / start.elapsed().as_secs_f64();
    lat.sort_unstable();
    drop(file);

    let chunk = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut f = File::create(dir.path().join("seq"))?;
    for _ in 0..seq_mib {
        f.write_all(&chunk)?;
    }
    f.sync_data()?;
    let seq_write = (seq_mib << 20) as f64 / start.elapsed().as_secs_f64();
    drop(f);

    let src = vec![0x3cu8; 64 << 20];
    let mut dst = vec![0u8; 64 << 20];
    dst.copy_from_slice(&src); // fault the pages in first
    let reps = (copy_mib / 64).max(1);
    let start = Instant::now();
    for _ in 0..reps {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    }
    let memcpy = (reps * (64 << 20)) as f64 / start.elapsed().as_secs_f64();

    Ok(Limits {
        fdatasync_rate,
        fdatasync_p50: percentile(&lat, 50.0),
        fdatasync_p99: percentile(&lat, 99.0),
        seq_write,
        seq_bytes: seq_mib << 20,
        memcpy,
    })
}
