//! A tour of the write-ahead log: durable appends from several threads with group commit,
//! an atomic group, reopen with recovery, and a simulated power cut with a torn tail.
//!
//! `cargo run --release -p orderlog-wal --example wal_tour [DIR]`
//! (DIR defaults to a fresh temporary directory; it is left in place for inspection).

use std::sync::Arc;
use std::time::Instant;

use orderlog_wal::storage::SimStorage;
use orderlog_wal::{SyncPolicy, Wal, WalError, WalOptions};

const WRITERS: u64 = 4;
const APPENDS_PER_WRITER: u64 = 5_000;

fn main() -> Result<(), WalError> {
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("orderlog-wal-tour-{}", std::process::id())),
    };
    println!("log directory: {}", dir.display());

    let wal = Arc::new(Wal::open(&dir, WalOptions::default())?);
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || -> Result<(), WalError> {
                for n in 0..APPENDS_PER_WRITER {
                    // An 80-byte record, durable (msync'd) when `append` returns.
                    let record = format!("writer {w} order {n:>10} {:>48}", "created");
                    wal.append(record.as_bytes())?;
                }
                Ok(())
            })
        })
        .collect();
    for w in writers {
        w.join().map_err(|_| WalError::Closed)??;
    }
    let elapsed = started.elapsed();
    let stats = wal.stats();
    println!(
        "{} durable appends from {WRITERS} threads in {:.2?}: {:.0}/s, {} syncs, {:.1} frames per sync",
        stats.last_lsn,
        elapsed,
        stats.last_lsn as f64 / elapsed.as_secs_f64(),
        stats.syncs,
        stats.mean_frames_per_sync
    );
    let group = wal.append_batch(&[b"order 1 paid", b"order 1 shipped"])?;
    println!("atomic group written at LSNs {group:?}");
    wal.close()?;
    drop(wal);

    let wal = Wal::open(&dir, WalOptions::default())?;
    let report = wal.recovery_report();
    println!(
        "reopened: {} frames in {} segment(s) validated in {:.2?}, LSNs {}..={}, truncated: {:?}",
        report.frames,
        report.segments,
        report.elapsed,
        report.first_lsn,
        report.last_lsn,
        report.truncated
    );
    let last = wal.iter_from(group.start().to_owned())?.last().transpose()?;
    if let Some(frame) = last {
        println!(
            "last frame: LSN {} = {:?}",
            frame.lsn(),
            String::from_utf8_lossy(frame.payload())
        );
    }
    drop(wal);

    // The same code on the simulated disk: unsynced writes, then the power goes out.
    let disk = SimStorage::new("/simulated/log");
    let opts = WalOptions {
        sync_policy: SyncPolicy::Never,
        segment_bytes: 1 << 20,
        ..WalOptions::default()
    };
    let wal = Wal::open_with(Arc::new(disk.clone()), opts.clone())?;
    for n in 0..100u32 {
        wal.append(&n.to_le_bytes())?;
    }
    wal.sync()?;
    for n in 100..200u32 {
        wal.append(&n.to_le_bytes())?; // never synced
    }
    let crashed = disk.crash(7);
    drop(wal);
    let wal = Wal::open_with(Arc::new(crashed), opts)?;
    let report = wal.recovery_report();
    println!(
        "after a simulated power cut: {} frames kept (100 were synced), cut: {}",
        report.last_lsn,
        report.truncated.as_ref().map_or("nothing".to_string(), |t| format!(
            "{} bytes at offset {} of {} ({})",
            t.bytes,
            t.offset,
            t.file.display(),
            t.reason
        ))
    );
    Ok(())
}
