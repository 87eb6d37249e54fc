//! [`verify`]: checks a backup's newest index and every object it names: size and
//! CRC-32 against the index, each log piece read as recovery would read it (frames,
//! chain, checkpoint) and holding the LSNs its name says, the pieces contiguous, each
//! snapshot's manifest listing its files with the sizes and CRCs the index gives.

use std::path::Path;

use bytes::Bytes;
use orderlog_wal::Lsn;
use orderlog_wal::piece::check_piece;

use crate::error::{Result, ShipError};
use crate::index::{BackupIndex, FileObject};
use crate::layout::Generation;
use crate::shipper::{generations, index_seqs, read_index};
use crate::target::Target;

/// What [`verify`] found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Verification {
    /// Every generation in the target, oldest first.
    pub generations: Vec<Generation>,
    /// The generation checked (the newest holding an index).
    pub generation: Generation,
    /// Its newest index.
    pub index: BackupIndex,
    /// Objects read and checked (the index included).
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Everything wrong, each naming the object and offset; empty if the backup is whole.
    pub problems: Vec<ShipError>,
}

impl Verification {
    /// The first LSN the log pieces hold (`None`: no pieces).
    pub fn first_lsn(&self) -> Option<Lsn> {
        self.index.segments.first().map(|s| s.base_lsn)
    }
}

/// Reads `object` and checks its size and CRC-32 against the index's.
pub async fn get_checked(target: &Target, object: &str, bytes: u64, crc32: u32) -> Result<Bytes> {
    let data = target.get_sized(object, bytes).await?;
    if data.len() as u64 != bytes {
        return Err(ShipError::Corrupt {
            object: object.to_owned(),
            offset: (data.len() as u64).min(bytes),
            reason: format!("{} bytes; the index says {bytes}", data.len()),
        });
    }
    let crc = crc32fast::hash(&data);
    if crc != crc32 {
        return Err(ShipError::Corrupt {
            object: object.to_owned(),
            offset: 0,
            reason: format!("CRC-32 {crc:08x}; the index says {crc32:08x}"),
        });
    }
    Ok(data)
}

/// Checks the log piece `object` read back: what it holds is what the index says.
pub fn check_log_piece(
    object: &str,
    data: &[u8],
    base: Lsn,
    last: Lsn,
    sealed: bool,
) -> Result<()> {
    let checked = check_piece(Path::new(object), data)?;
    if (checked.base_lsn, checked.last_lsn, checked.sealed) != (base, last, sealed) {
        return Err(ShipError::Corrupt {
            object: object.to_owned(),
            offset: 0,
            reason: format!(
                "it holds LSNs {}..={} (sealed: {}); the index says {base}..={last} (sealed: {sealed})",
                checked.base_lsn, checked.last_lsn, checked.sealed
            ),
        });
    }
    Ok(())
}

/// Checks a manifest object: it decodes, and lists the snapshot at `lsn` with exactly
/// the files `files` (names, sizes, CRCs).
pub fn check_manifest(
    manifest: &FileObject,
    data: &[u8],
    lsn: Lsn,
    files: &[FileObject],
) -> Result<orderlog_snapshot::SnapshotInfo> {
    let listed = orderlog_snapshot::decode_manifest(Path::new(&manifest.object), data)?;
    let Some(info) = listed.into_iter().find(|s| s.lsn == lsn) else {
        return Err(ShipError::Corrupt {
            object: manifest.object.clone(),
            offset: 0,
            reason: format!("it does not list the snapshot at LSN {lsn}"),
        });
    };
    let mut listed: Vec<(&str, u64, u32)> =
        info.files.iter().map(|f| (f.path.as_str(), f.bytes, f.crc32)).collect();
    let mut indexed: Vec<(&str, u64, u32)> =
        files.iter().map(|f| (f.name.as_str(), f.bytes, f.crc32)).collect();
    listed.sort_unstable();
    indexed.sort_unstable();
    if listed != indexed {
        return Err(ShipError::Corrupt {
            object: manifest.object.clone(),
            offset: 0,
            reason: format!("the snapshot at LSN {lsn} lists other files than the index"),
        });
    }
    Ok(info)
}

/// Verifies the newest index of `target` and every object it names; `progress` is
/// called with (objects done, objects in all) as it goes.
pub async fn verify(target: &Target, mut progress: impl FnMut(u64, u64)) -> Result<Verification> {
    let all = generations(target).await?;
    let mut newest = None;
    for &generation in all.iter().rev() {
        if let Some(&seq) = index_seqs(target, generation).await?.last() {
            newest = Some((generation, read_index(target, generation, seq).await?));
            break;
        }
    }
    let Some((generation, index)) = newest else {
        return Err(ShipError::NoBackup { url: target.url().to_owned() });
    };
    let total = 1
        + index.segments.len() as u64
        + index.snapshots.iter().map(|s| s.files.len() as u64 + 1).sum::<u64>();
    let mut report = Verification {
        generations: all,
        generation,
        objects: 1,
        bytes: index.encode().len() as u64,
        problems: Vec::new(),
        index: index.clone(),
    };
    progress(1, total);
    for s in &index.segments {
        match get_checked(target, &s.object, s.bytes, s.crc32).await {
            Ok(data) => {
                if let Err(e) = check_log_piece(&s.object, &data, s.base_lsn, s.last_lsn, s.sealed)
                {
                    report.problems.push(e);
                }
            }
            Err(e) => report.problems.push(e),
        }
        report.objects += 1;
        report.bytes += s.bytes;
        progress(report.objects, total);
    }
    for snapshot in &index.snapshots {
        for file in &snapshot.files {
            if let Err(e) = get_checked(target, &file.object, file.bytes, file.crc32).await {
                report.problems.push(e);
            }
            report.objects += 1;
            report.bytes += file.bytes;
            progress(report.objects, total);
        }
        let m = &snapshot.manifest;
        match get_checked(target, &m.object, m.bytes, m.crc32).await {
            Ok(data) => {
                if let Err(e) = check_manifest(m, &data, snapshot.lsn, &snapshot.files) {
                    report.problems.push(e);
                }
            }
            Err(e) => report.problems.push(e),
        }
        report.objects += 1;
        report.bytes += m.bytes;
        progress(report.objects, total);
    }
    Ok(report)
}
