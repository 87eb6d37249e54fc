//! A segment's frames up to an LSN, as the bytes of a segment file that recovery reads
//! back as exactly those frames: what a backup ships and a point-in-time restore writes.
//!
//! A piece is the segment's first bytes (its header, its checkpoint slots, its frames up
//! to the end of the last whole group at or before the LSN asked for), with both
//! checkpoint slots rewritten to claim exactly those frames (and the seal, if the piece
//! is the whole of a sealed segment). Written into a file of the segment's size, zeros
//! after it, it is a segment that ends cleanly where the piece ends: no torn tail, no
//! checkpoint claiming frames that are not there.

use crate::Lsn;
use crate::error::{CorruptionKind, Result, WalError};
use crate::format::{CHECKPOINT_BYTES, Checkpoint, FRAME_HEADER_BYTES, SegmentHeader, frame_size};
use crate::scan::scan_segment;

/// A piece of a segment ([`segment_piece`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentPiece {
    /// The piece's bytes: a segment file's first bytes.
    pub bytes: Vec<u8>,
    /// The segment's first LSN.
    pub base_lsn: Lsn,
    /// The last LSN the piece holds (`base_lsn - 1`: none).
    pub last_lsn: Lsn,
    /// The piece is the whole of a sealed segment.
    pub sealed: bool,
    /// The segment file's size (its header says), to restore it with.
    pub segment_bytes: u64,
}

/// The piece of the segment in `bytes` (a whole segment file, as read) holding its
/// frames up to `upto` (or up to its last whole group, if that comes first). `file` names
/// the segment in errors: damage before the cut is an error naming it and the offset.
pub fn segment_piece(file: &std::path::Path, bytes: &[u8], upto: Lsn) -> Result<SegmentPiece> {
    let corrupt = |offset: u64, kind: CorruptionKind| WalError::Corruption {
        file: file.to_path_buf(),
        offset,
        kind,
    };
    let scan = scan_segment(bytes).map_err(|d| corrupt(d.offset, d.kind))?;
    let header = scan.header;
    // Damage is an error where a piece would need what lies behind it: in a sealed
    // segment, before the LSN asked for, or among frames a checkpoint says are durable.
    // After all of those it is the active segment's unfinished end (a write in progress).
    if let Some(damage) = &scan.damage
        && (scan.sealed() || scan.next_lsn <= upto || damage.offset < scan.durable_end())
    {
        return Err(corrupt(damage.offset, damage.kind.clone()));
    }
    // The end of the last whole group at or before `upto`.
    let mut end = header.frames_offset();
    let mut last = header.base_lsn - 1;
    for frame in scan.frames.iter().take_while(|f| f.lsn <= upto) {
        let frame_end =
            (frame.payload.start - FRAME_HEADER_BYTES) as u64 + frame_size(frame.payload.len());
        if !frame.group_continues {
            end = frame_end;
            last = frame.lsn;
        }
    }
    let whole = scan.damage.is_none() && scan.frames.last().is_none_or(|f| f.lsn == last);
    let sealed = scan.sealed() && whole;
    let Some(kept) = usize::try_from(end).ok().and_then(|end| bytes.get(..end)) else {
        return Err(corrupt(
            bytes.len() as u64,
            CorruptionKind::BadSegmentHeader(format!(
                "the segment's {} bytes end before its frames do ({end})",
                bytes.len()
            )),
        ));
    };
    let mut out = kept.to_vec();
    // A fixed sequence number: both slots hold the same checkpoint, and the piece's
    // bytes depend only on the frames it holds, so shipping one twice writes the same
    // object (a piece is immutable under its name).
    let seq = 1;
    let checkpoint = Checkpoint { seq, durable_end: end, last_lsn: last, sealed };
    let slot = checkpoint.encode(scan.header_crc);
    for at in header.checkpoint_slots() {
        out[at..at + CHECKPOINT_BYTES].copy_from_slice(&slot);
    }
    Ok(SegmentPiece {
        bytes: out,
        base_lsn: header.base_lsn,
        last_lsn: last,
        sealed,
        segment_bytes: header.segment_bytes,
    })
}

/// What [`check_piece`] found: the segment a piece restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckedPiece {
    /// The segment's first LSN.
    pub base_lsn: Lsn,
    /// The piece's last LSN (`base_lsn - 1`: none).
    pub last_lsn: Lsn,
    /// The piece is the whole of a sealed segment.
    pub sealed: bool,
    /// The segment file's size, to restore it with.
    pub segment_bytes: u64,
}

/// Checks a piece read back (from a backup) as recovery would read the segment it
/// restores, and returns what that segment holds: every frame whole,
/// the chain unbroken, nothing after the last frame, the checkpoint claiming exactly
/// the frames there. `name` names the piece in errors.
pub fn check_piece(name: &std::path::Path, bytes: &[u8]) -> Result<CheckedPiece> {
    let corrupt = |offset: u64, kind: CorruptionKind| WalError::Corruption {
        file: name.to_path_buf(),
        offset,
        kind,
    };
    let scan = scan_segment(bytes).map_err(|d| corrupt(d.offset, d.kind))?;
    if let Some(damage) = scan.damage {
        return Err(corrupt(damage.offset, damage.kind));
    }
    let header: SegmentHeader = scan.header;
    let last = scan.next_lsn - 1;
    let claims = scan.checkpoint.map(|c| (c.durable_end, c.last_lsn));
    if scan.valid_end != bytes.len() as u64 || claims != Some((scan.valid_end, last)) {
        return Err(corrupt(
            scan.valid_end,
            CorruptionKind::BadSegmentHeader(format!(
                "a piece of {} bytes whose frames end at {} and whose checkpoint claims {claims:?}",
                bytes.len(),
                scan.valid_end
            )),
        ));
    }
    let size = header.segment_bytes;
    if !(crate::options::SEGMENT_BYTES_MIN..=crate::options::SEGMENT_BYTES_LIMIT).contains(&size)
        || bytes.len() as u64 > size
    {
        return Err(corrupt(
            0,
            CorruptionKind::BadSegmentHeader(format!(
                "a segment size of {size} bytes (a piece of {} bytes)",
                bytes.len()
            )),
        ));
    }
    Ok(CheckedPiece {
        base_lsn: header.base_lsn,
        last_lsn: last,
        sealed: scan.sealed(),
        segment_bytes: size,
    })
}

/// A whole group of frames of a piece: what one atomic append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PieceGroup {
    /// The LSN of its first frame.
    pub first_lsn: Lsn,
    /// Its frames' payloads, in order.
    pub payloads: Vec<Vec<u8>>,
}

/// The groups of frames a piece holds after `after` (a read replica appends them to its
/// own log), checked as [`check_piece`] checks the piece.
pub fn piece_groups(name: &std::path::Path, bytes: &[u8], after: Lsn) -> Result<Vec<PieceGroup>> {
    check_piece(name, bytes)?;
    let scan = scan_segment(bytes).map_err(|d| WalError::Corruption {
        file: name.to_path_buf(),
        offset: d.offset,
        kind: d.kind,
    })?;
    let mut groups = Vec::new();
    let mut current: Option<PieceGroup> = None;
    for frame in &scan.frames {
        let group = current
            .get_or_insert_with(|| PieceGroup { first_lsn: frame.lsn, payloads: Vec::new() });
        group.payloads.push(bytes[frame.payload.clone()].to_vec());
        if !frame.group_continues
            && let Some(group) = current.take()
            && group.first_lsn > after
        {
            groups.push(group);
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{SyncPolicy, WalOptions};
    use crate::wal::Wal;

    fn opts() -> WalOptions {
        // Small segments: the frames below fill several.
        let segment_bytes = crate::options::SEGMENT_BYTES_MIN * 2;
        WalOptions { segment_bytes, sync_policy: SyncPolicy::Never, ..WalOptions::default() }
    }

    fn payloads(wal: &Wal, from: Lsn) -> Vec<(Lsn, Vec<u8>)> {
        wal.iter_from(from)
            .map(|it| {
                it.map(|f| f.map(|f| (f.lsn(), f.payload().to_vec()))).collect::<Result<Vec<_>>>()
            })
            .and_then(|r| r)
            .unwrap_or_default()
    }

    #[test]
    fn pieces_restore_as_segments_that_end_where_they_were_cut() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| WalError::io("tempdir", "", e))?;
        let wal = Wal::open(dir.path(), opts())?;
        for n in 0..400u32 {
            let payload = vec![n as u8; 50 + (n as usize % 90)];
            if n % 7 == 0 {
                wal.append_batch(&[&payload, &payload])?;
            } else {
                wal.append(&payload)?;
            }
        }
        wal.close()?;
        let all = payloads(&wal, 1);
        let bases = wal.segment_bases();
        assert!(bases.len() >= 2, "{bases:?}");
        drop(wal);
        let read = |base: Lsn| -> Result<Vec<u8>> {
            let name = crate::format::segment_file_name(base);
            std::fs::read(dir.path().join(&name)).map_err(|e| WalError::io("reading", &name, e))
        };
        // Cut the second segment at each of a few LSNs (some inside a group of two).
        let second = bases[1];
        for upto in [second - 1, second, second + 3, second + 10, u64::MAX] {
            let out = tempfile::tempdir().map_err(|e| WalError::io("tempdir", "", e))?;
            let mut last = 0;
            for &base in &bases[..2] {
                let piece = segment_piece(std::path::Path::new("seg"), &read(base)?, upto)?;
                let checked = check_piece(std::path::Path::new("piece"), &piece.bytes)?;
                assert_eq!(
                    (checked.base_lsn, checked.last_lsn, checked.sealed),
                    (piece.base_lsn, piece.last_lsn, piece.sealed)
                );
                let size = checked.segment_bytes;
                let mut file = piece.bytes.clone();
                file.resize(size as usize, 0);
                let name = crate::format::segment_file_name(base);
                std::fs::write(out.path().join(&name), &file)
                    .map_err(|e| WalError::io("writing", &name, e))?;
                last = piece.last_lsn;
                if !piece.sealed {
                    break;
                }
            }
            let strict = WalOptions { recovery_mode: crate::RecoveryMode::Strict, ..opts() };
            let restored = Wal::open(out.path(), strict)?;
            assert_eq!(restored.last_lsn(), last, "cut at {upto}");
            assert!(restored.recovery_report().truncated.is_none());
            let expected: Vec<_> = all.iter().filter(|(lsn, _)| *lsn <= last).cloned().collect();
            assert_eq!(payloads(&restored, 1), expected);
            // Never inside a group: a group of two at the cut is whole or absent.
            assert!(last <= upto.min(all.last().map_or(0, |f| f.0)));
        }
        Ok(())
    }

    #[test]
    fn a_damaged_piece_is_refused_naming_the_offset() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| WalError::io("tempdir", "", e))?;
        let wal = Wal::open(dir.path(), opts())?;
        for n in 0..20u8 {
            wal.append(&[n; 40])?;
        }
        wal.close()?;
        drop(wal);
        let name = crate::format::segment_file_name(1);
        let bytes =
            std::fs::read(dir.path().join(&name)).map_err(|e| WalError::io("reading", &name, e))?;
        let piece = segment_piece(std::path::Path::new("seg"), &bytes, 12)?;
        assert_eq!(piece.last_lsn, 12);
        let mut damaged = piece.bytes.clone();
        let at = damaged.len() - 30;
        damaged[at] ^= 0x40;
        let err = check_piece(std::path::Path::new("gen/log/x.part"), &damaged)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("gen/log/x.part"), "{err}");
        // Cut short: the checkpoint claims more than is there.
        assert!(
            check_piece(std::path::Path::new("p"), &piece.bytes[..piece.bytes.len() - 8]).is_err()
        );
        // Damage among frames a checkpoint says are durable (a closed log: all of them) is
        // an error whatever the cut.
        let mut flipped = bytes.clone();
        flipped[piece.bytes.len() + 20] ^= 0x40;
        let err =
            segment_piece(std::path::Path::new("seg"), &flipped, 12).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("seg")));
        // Bytes after the last durable frame (an append in progress): the active segment's
        // unfinished end, an error only for a piece that would need what lies behind it.
        let end = segment_piece(std::path::Path::new("seg"), &bytes, u64::MAX)?.bytes.len();
        let mut torn = bytes.clone();
        torn[end..end + 16].fill(0xab);
        assert_eq!(segment_piece(std::path::Path::new("seg"), &torn, 12)?.last_lsn, 12);
        assert!(segment_piece(std::path::Path::new("seg"), &torn, 25).is_err());
        // A file shorter than its frames: an error, not a panic.
        assert!(segment_piece(std::path::Path::new("seg"), &piece.bytes[..100], 12).is_err());
        // Extra bytes after the last frame.
        let mut longer = piece.bytes.clone();
        longer.extend_from_slice(&[0; 8]);
        assert!(check_piece(std::path::Path::new("p"), &longer).is_err());
        Ok(())
    }
}
