//! [`restore`]: writes a store directory from a backup, up to an LSN: the newest
//! snapshot at or before it, and the log pieces from that snapshot to the LSN, the last
//! one cut there. Every object is checked before it is used (size and CRC-32 against
//! the index, each log piece read as recovery reads a segment, each manifest decoded);
//! the directory is written beside the output under a temporary name, synced, and
//! renamed into place, so a restore that fails leaves nothing at the output.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::stream::StreamExt;
use orderlog_wal::Lsn;
use orderlog_wal::format::segment_file_name;
use orderlog_wal::piece::segment_piece;

use crate::error::{Result, ShipError};
use crate::index::{BackupIndex, SnapshotObject};
use crate::layout::Generation;
use crate::shipper::{SNAPSHOT_DIR, WAL_DIR, newest_index};
use crate::target::{Target, is_not_found};
use crate::verify::{check_log_piece, check_manifest, get_checked};

/// Attempts when an object vanishes under the restore (the shipper replaced a prefix
/// piece and deleted the old one): each starts again from the newest index.
const ATTEMPTS: u32 = 5;
/// Objects fetched at once.
const CONCURRENT_GETS: usize = 4;

/// What [`restore`] wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Restored {
    /// The generation restored from.
    pub generation: Generation,
    /// The index used.
    pub index_seq: u64,
    /// The snapshot restored (0: none, the log from its start).
    pub snapshot_lsn: Lsn,
    /// The last LSN the restored log holds (the point asked for, or the end of the last
    /// whole batch before it).
    pub last_lsn: Lsn,
    /// The LSN the backup holds up to.
    pub backup_lsn: Lsn,
    /// Log segments written.
    pub segments: u64,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// Which snapshot a restore starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Base {
    /// The newest at or before the point (the least log to replay).
    Newest,
    /// The oldest the backup holds (or none, if its log starts at LSN 1): all the
    /// history the backup holds, to find a point in time in.
    Oldest,
}

/// Restores the newest generation of `target` into the new directory `out`, up to
/// `until` (`None`: everything the backup holds), from the snapshot `base` says.
/// `progress` is called with (bytes done, bytes in all).
pub async fn restore(
    target: &Target,
    out: &Path,
    until: Option<Lsn>,
    base: Base,
    mut progress: impl FnMut(u64, u64),
) -> Result<Restored> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some((generation, index)) = newest_index(target).await? else {
            return Err(ShipError::NoBackup { url: target.url().to_owned() });
        };
        match restore_index(target, out, generation, &index, until, base, &mut progress).await {
            Err(e) if is_not_found(&e) && attempt < ATTEMPTS => {
                tracing::info!(error = %e, "an object vanished under the restore; starting again");
            }
            other => return other,
        }
    }
}

/// Restores `index` (of `generation`) into the new directory `out`: [`restore`] with the
/// index chosen by the caller (two restores from one index see one history).
pub async fn restore_index(
    target: &Target,
    out: &Path,
    generation: Generation,
    index: &BackupIndex,
    until: Option<Lsn>,
    base: Base,
    progress: &mut impl FnMut(u64, u64),
) -> Result<Restored> {
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) || out.is_file() {
        return Err(ShipError::OutputExists { path: out.to_path_buf() });
    }
    let staging = staging_dir(out);
    if staging.exists() {
        return Err(ShipError::OutputExists { path: staging });
    }
    match write_staging(target, &staging, generation, index, until, base, progress).await {
        Ok(restored) => {
            // An empty output directory may exist; it is replaced.
            if out.is_dir() {
                std::fs::remove_dir(out).map_err(ShipError::io("remove", out))?;
            }
            std::fs::rename(&staging, out).map_err(ShipError::io("rename", &staging))?;
            sync_dir(parent_of(out))?;
            Ok(restored)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `<out>.restoring-<pid>-<random>`, beside the output: never a directory of anyone
/// else's.
fn staging_dir(out: &Path) -> PathBuf {
    beside(out, "restoring")
}

/// A new name beside `out`, `<out>.<what>-<pid>-<random>`: never a directory of anyone
/// else's.
pub fn beside(out: &Path, what: &str) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    out.with_file_name(name)
}

/// Which snapshot and log pieces reach `until`, or why none do.
pub fn plan(
    index: &BackupIndex,
    until: Lsn,
    base: Base,
) -> Result<(Option<&SnapshotObject>, Vec<usize>)> {
    let asked = format!("LSN {until}");
    let holds = || {
        let log = match (index.segments.first(), index.segments.last()) {
            (Some(first), Some(last)) => {
                format!("the log from LSN {} to {}", first.base_lsn, last.last_lsn)
            }
            _ => "no log".to_owned(),
        };
        let snapshots: Vec<String> = index.snapshots.iter().map(|s| s.lsn.to_string()).collect();
        if snapshots.is_empty() {
            format!("the backup holds {log} and no snapshot")
        } else {
            format!("the backup holds {log} and snapshots at LSNs {}", snapshots.join(", "))
        }
    };
    if until > index.shipped_lsn {
        return Err(ShipError::Unrestorable {
            asked,
            reason: format!("it is past the last LSN shipped ({}); {}", index.shipped_lsn, holds()),
        });
    }
    let log_from_start = index.segments.first().is_some_and(|s| s.base_lsn == 1);
    let snapshot = match base {
        Base::Newest => index.snapshots.iter().rev().find(|s| s.lsn <= until),
        Base::Oldest if log_from_start => None,
        // The oldest the log reaches on from.
        Base::Oldest => {
            let first = index.segments.first().map_or(Lsn::MAX, |s| s.base_lsn);
            index.snapshots.iter().find(|s| s.lsn <= until && first <= s.lsn + 1)
        }
    };
    let from = snapshot.map_or(0, |s| s.lsn);
    let pieces: Vec<usize> = (0..index.segments.len())
        .filter(|&i| {
            let s = &index.segments[i];
            s.last_lsn >= from && s.base_lsn <= until.saturating_add(1)
        })
        .collect();
    // The log must run from the snapshot (or LSN 1) to the point, without a gap.
    let first_base = pieces.first().map(|&i| index.segments[i].base_lsn);
    let reaches = match first_base {
        Some(base) => base <= from + 1,
        None => false,
    };
    if !reaches {
        return Err(ShipError::Unrestorable {
            asked,
            reason: format!(
                "no snapshot at or before it is followed by the log to it; {}",
                holds()
            ),
        });
    }
    Ok((snapshot, pieces))
}

async fn write_staging(
    target: &Target,
    staging: &Path,
    generation: Generation,
    index: &BackupIndex,
    until: Option<Lsn>,
    base: Base,
    progress: &mut impl FnMut(u64, u64),
) -> Result<Restored> {
    let until = until.unwrap_or(index.shipped_lsn);
    let (snapshot, pieces) = plan(index, until, base)?;
    let total = snapshot
        .map_or(0, |s| s.files.iter().map(|f| f.bytes).sum::<u64>() + s.manifest.bytes)
        + pieces.iter().map(|&i| index.segments[i].bytes).sum::<u64>();
    let mut done = 0;
    let snapshots = staging.join(SNAPSHOT_DIR);
    let wal = staging.join(WAL_DIR);
    std::fs::create_dir_all(&snapshots).map_err(ShipError::io("create directory", &snapshots))?;
    std::fs::create_dir_all(&wal).map_err(ShipError::io("create directory", &wal))?;
    let mut last_lsn = snapshot.map_or(0, |s| s.lsn);
    // The last piece first: a prefix piece is the one object a live shipper replaces
    // (and deletes a few intervals later). A few requests at a time.
    let mut fetched = futures_util::stream::iter(pieces.iter().rev().map(|&i| {
        let s = &index.segments[i];
        async move {
            let data = get_checked(target, &s.object, s.bytes, s.crc32).await?;
            check_log_piece(&s.object, &data, s.base_lsn, s.last_lsn, s.sealed)?;
            Ok::<_, ShipError>((s, data))
        }
    }))
    .buffered(CONCURRENT_GETS);
    while let Some(next) = fetched.next().await {
        let (s, data) = next?;
        let name = segment_file_name(s.base_lsn);
        let path = wal.join(&name);
        if s.last_lsn > until {
            let cut = segment_piece(Path::new(&s.object), &data, until)?;
            last_lsn = last_lsn.max(cut.last_lsn);
            write_file(&path, &cut.bytes, s.segment_bytes)?;
        } else {
            last_lsn = last_lsn.max(s.last_lsn);
            write_file(&path, &data, s.segment_bytes)?;
        }
        done += s.bytes;
        progress(done, total);
    }
    if let Some(snapshot) = snapshot {
        let m = &snapshot.manifest;
        let data = get_checked(target, &m.object, m.bytes, m.crc32).await?;
        let info = check_manifest(m, &data, snapshot.lsn, &snapshot.files)?;
        done += m.bytes;
        let mut fetched =
            futures_util::stream::iter(snapshot.files.iter().map(|file| async move {
                let data = get_checked(target, &file.object, file.bytes, file.crc32).await?;
                Ok::<_, ShipError>((file, data))
            }))
            .buffered(CONCURRENT_GETS);
        while let Some(next) = fetched.next().await {
            let (file, data) = next?;
            write_file(&snapshots.join(&file.name), &data, data.len() as u64)?;
            done += file.bytes;
            progress(done, total);
        }
        // A manifest naming only the snapshot restored.
        let manifest = orderlog_snapshot::encode_manifest(std::slice::from_ref(&info))?;
        write_file(
            &snapshots.join(orderlog_snapshot::MANIFEST_NAME),
            &manifest,
            manifest.len() as u64,
        )?;
        sync_tree(&snapshots)?;
    }
    sync_dir(&wal)?;
    sync_dir(staging)?;
    Ok(Restored {
        generation,
        index_seq: index.seq,
        snapshot_lsn: snapshot.map_or(0, |s| s.lsn),
        last_lsn,
        backup_lsn: index.shipped_lsn,
        segments: pieces.len() as u64,
        bytes: total,
    })
}

/// Writes `data` to the new file `path`, `len` bytes long (zeros after the data), and
/// syncs it.
fn write_file(path: &Path, data: &[u8], len: u64) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(ShipError::io("create directory", parent))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(ShipError::io("create", path))?;
    file.write_all(data).map_err(ShipError::io("write", path))?;
    if len > data.len() as u64 {
        file.set_len(len).map_err(ShipError::io("extend", path))?;
    }
    file.sync_all().map_err(ShipError::io("sync", path))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ShipError::io("sync directory", dir))
}

/// Syncs every directory under `dir` and `dir` itself.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(ShipError::io("list", dir))? {
        let entry = entry.map_err(ShipError::io("list", dir))?;
        if entry.file_type().map_err(ShipError::io("stat", entry.path()))?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    sync_dir(dir)
}
