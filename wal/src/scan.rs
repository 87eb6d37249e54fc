//! Validating a segment's bytes: header, checkpoint, and the chain of frames.
//!
//! `scan_segment` is a pure function of the bytes; recovery and iteration both use it and
//! decide from its result what the damage (if any) means.

use std::ops::Range;

use crate::Lsn;
use crate::error::CorruptionKind;
use crate::format::{
    Checkpoint, FRAME_HEADER_BYTES, FrameHeader, GROUP_CONTINUES, LEN_MASK, SegmentHeader,
    chain_seed, frame_crc, frame_size,
};

/// One valid frame inside a scanned segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannedFrame {
    pub lsn: Lsn,
    /// Where the payload lies in the segment's bytes.
    pub payload: Range<usize>,
    /// False for the last frame of its group (and for frames appended alone).
    pub group_continues: bool,
}

/// The first thing in a segment that is not a valid frame or the clean end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub offset: u64,
    pub kind: CorruptionKind,
}

/// Result of scanning one segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentScan {
    pub header: SegmentHeader,
    pub header_crc: u32,
    pub checkpoint: Option<Checkpoint>,
    /// Frames of complete groups, in order.
    pub frames: Vec<ScannedFrame>,
    /// Offset just past the last complete group: where the next frame goes.
    pub valid_end: u64,
    /// The chain state at `valid_end`: the last complete frame's crc (or the header crc).
    pub last_crc: u32,
    /// The LSN the next frame must carry.
    pub next_lsn: Lsn,
    /// The first bad frame, or an unfinished group at the end, if any.
    pub damage: Option<Damage>,
}

impl SegmentScan {
    /// Offset up to which the newest checkpoint says frames were durable.
    pub fn durable_end(&self) -> u64 {
        self.checkpoint.map_or(self.header.frames_offset(), |c| c.durable_end)
    }

    /// True if the segment was sealed (full and synced) by its writer.
    pub fn sealed(&self) -> bool {
        self.checkpoint.is_some_and(|c| c.sealed)
    }
}

/// Reads `at..at + 16` as a frame header, treating bytes past the end of the file as zero.
fn header_at(bytes: &[u8], at: usize) -> FrameHeader {
    let mut buf = [0u8; FRAME_HEADER_BYTES];
    if at < bytes.len() {
        let n = (bytes.len() - at).min(FRAME_HEADER_BYTES);
        buf[..n].copy_from_slice(&bytes[at..at + n]);
    }
    FrameHeader::read(&buf)
}

/// Scans a segment. Errors only for a bad header (offset 0); frame damage is reported in
/// [`SegmentScan::damage`] for the caller to judge.
pub(crate) fn scan_segment(bytes: &[u8]) -> Result<SegmentScan, Damage> {
    let (header, header_crc) = SegmentHeader::decode(bytes)
        .map_err(|why| Damage { offset: 0, kind: CorruptionKind::BadSegmentHeader(why) })?;
    let checkpoint = Checkpoint::newest(bytes, &header, header_crc);
    let start =
        ChainPoint { offset: header.frames_offset(), prev_crc: header_crc, lsn: header.base_lsn };
    Ok(scan_frames_from(bytes, header, header_crc, checkpoint, start))
}

/// Where a scan of frames starts: an offset, the chain state there and the LSN expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainPoint {
    pub offset: u64,
    pub prev_crc: u32,
    pub lsn: Lsn,
}

/// Scans frames from `start` to the end of the log in the segment (or the first damage).
/// `scan_segment` starts at the first frame; the verifier resumes after a damaged frame
/// whose length it can still trust, to report every finding rather than the first.
pub(crate) fn scan_frames_from(
    bytes: &[u8],
    header: SegmentHeader,
    header_crc: u32,
    checkpoint: Option<Checkpoint>,
    start: ChainPoint,
) -> SegmentScan {
    // The file may be shorter than its header says (cut by a copy): the missing bytes
    // read as unwritten.
    let seg_len = header.segment_bytes as usize;

    let mut scan = SegmentScan {
        header,
        header_crc,
        checkpoint,
        frames: Vec::new(),
        valid_end: start.offset,
        last_crc: start.prev_crc,
        next_lsn: start.lsn,
        damage: None,
    };
    let mut pos = start.offset as usize;
    let mut prev_crc = start.prev_crc;
    let mut lsn = start.lsn;
    let mut group: Vec<ScannedFrame> = Vec::new();
    let stop = loop {
        if pos + FRAME_HEADER_BYTES > seg_len {
            break None;
        }
        let h = header_at(bytes, pos);
        if h.is_end() {
            break None;
        }
        let len = h.payload_len();
        if h.len_field & !(LEN_MASK | GROUP_CONTINUES) != 0 {
            break Some(CorruptionKind::BadFrameLength(h.len_field));
        }
        let end = pos as u64 + frame_size(len);
        if end > seg_len as u64 {
            break Some(CorruptionKind::BadFrameLength(h.len_field));
        }
        let payload = pos + FRAME_HEADER_BYTES..pos + FRAME_HEADER_BYTES + len;
        let Some(payload_bytes) = bytes.get(payload.clone()) else {
            // The file was cut inside this frame.
            break Some(CorruptionKind::BadFrameLength(h.len_field));
        };
        let pad = &bytes[payload.end..(end as usize).min(bytes.len())];
        if pad.iter().any(|&b| b != 0) {
            // Padding is not checksummed but is always written as zeros.
            break Some(CorruptionKind::UnexpectedBytes);
        }
        let computed =
            frame_crc(chain_seed(prev_crc, header.salt), h.len_field, h.lsn, payload_bytes);
        if computed != h.crc {
            break Some(CorruptionKind::ChecksumMismatch { stored: h.crc, computed });
        }
        if h.lsn != lsn {
            break Some(CorruptionKind::LsnGap { expected: lsn, found: h.lsn });
        }
        // The last LSN has no successor: a frame carrying it (only a forged header or
        // prefix gets there) cannot be followed, and the next LSN must stay representable.
        let Some(next_lsn) = lsn.checked_add(1) else {
            break Some(CorruptionKind::LsnOutOfRange(h.lsn));
        };
        group.push(ScannedFrame { lsn, payload, group_continues: h.group_continues() });
        prev_crc = h.crc;
        lsn = next_lsn;
        pos = end as usize;
        if !h.group_continues() {
            scan.frames.append(&mut group);
            scan.valid_end = pos as u64;
            scan.last_crc = prev_crc;
            scan.next_lsn = lsn;
        }
    };
    scan.damage = match stop {
        Some(kind) => Some(Damage { offset: pos as u64, kind }),
        None if !group.is_empty() => {
            Some(Damage { offset: scan.valid_end, kind: CorruptionKind::OpenGroup })
        }
        None => None,
    };
    scan
}

/// Offset just past the last non-zero byte at or after `from` (or `from` if none).
pub(crate) fn written_extent(bytes: &[u8], from: u64) -> u64 {
    let from = (from as usize).min(bytes.len());
    bytes[from..].iter().rposition(|&b| b != 0).map_or(from as u64, |i| (from + i + 1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{FRAMES_OFFSET, GROUP_CONTINUES, encode_frame};

    /// Builds a segment image holding the given groups of payloads.
    fn image(groups: &[&[&[u8]]]) -> Vec<u8> {
        let header = SegmentHeader::new(10, 99, 32768);
        let mut bytes = vec![0u8; 32768];
        bytes[..64].copy_from_slice(&header.encode());
        let (_, mut prev) = SegmentHeader::decode(&bytes).expect("header");
        let mut pos = FRAMES_OFFSET as usize;
        let mut lsn = 10;
        for group in groups {
            for (i, p) in group.iter().enumerate() {
                let (h, pad) = encode_frame(prev, 99, lsn, p, i + 1 < group.len());
                let frame = [&h.encode()[..], p, pad].concat();
                bytes[pos..pos + frame.len()].copy_from_slice(&frame);
                pos += frame.len();
                prev = h.crc;
                lsn += 1;
            }
        }
        bytes
    }

    #[test]
    fn scan_returns_every_frame_of_a_clean_segment() {
        let bytes = image(&[&[b"a"], &[b"bb", b"ccc"], &[b""]]);
        let scan = scan_segment(&bytes).expect("header");
        assert_eq!(scan.damage, None);
        let got: Vec<&[u8]> = scan.frames.iter().map(|f| &bytes[f.payload.clone()]).collect();
        assert_eq!(got, vec![&b"a"[..], b"bb", b"ccc", b""]);
        assert_eq!(scan.next_lsn, 14);
        assert!(scan.frames[1].group_continues);
        assert!(!scan.frames[2].group_continues);
    }

    #[test]
    fn scan_drops_an_unfinished_group_and_reports_it() {
        let mut bytes = image(&[&[b"a"], &[b"bb", b"ccc"]]);
        // Cut the closing frame of the group: zero its header.
        let closing = FRAMES_OFFSET as usize + 24 + 24;
        bytes[closing..closing + 16].fill(0);
        let scan = scan_segment(&bytes).expect("header");
        assert_eq!(scan.frames.len(), 1);
        assert_eq!(scan.valid_end, FRAMES_OFFSET + 24);
        assert_eq!(scan.damage.map(|d| d.kind), Some(CorruptionKind::OpenGroup));
    }

    #[test]
    fn scan_stops_at_a_flipped_payload_byte() {
        let mut bytes = image(&[&[b"a"], &[b"hello"], &[b"c"]]);
        bytes[FRAMES_OFFSET as usize + 24 + 16] ^= 1;
        let scan = scan_segment(&bytes).expect("header");
        assert_eq!(scan.frames.len(), 1);
        let damage = scan.damage.expect("damage");
        assert_eq!(damage.offset, FRAMES_OFFSET + 24);
        assert!(matches!(damage.kind, CorruptionKind::ChecksumMismatch { .. }));
    }

    #[test]
    fn scan_rejects_reserved_length_bits_and_oversized_lengths() {
        let mut bytes = image(&[&[b"a"]]);
        let at = FRAMES_OFFSET as usize;
        bytes[at + 3] |= 0x40;
        let damage = scan_segment(&bytes).expect("header").damage.expect("damage");
        assert!(matches!(damage.kind, CorruptionKind::BadFrameLength(_)));
        let mut bytes = image(&[&[b"a"]]);
        bytes[at..at + 4].copy_from_slice(&(LEN_MASK & !GROUP_CONTINUES).to_le_bytes());
        let damage = scan_segment(&bytes).expect("header").damage.expect("damage");
        assert!(matches!(damage.kind, CorruptionKind::BadFrameLength(_)));
    }

    #[test]
    fn a_frame_at_the_last_lsn_is_damage_not_an_overflow() {
        let header = SegmentHeader::new(u64::MAX, 5, 16384);
        let mut bytes = vec![0u8; 16384];
        bytes[..64].copy_from_slice(&header.encode());
        let (_, crc) = SegmentHeader::decode(&bytes).expect("header");
        let (h, _) = encode_frame(crc, 5, u64::MAX, b"last", false);
        let at = FRAMES_OFFSET as usize;
        bytes[at..at + 16].copy_from_slice(&h.encode());
        bytes[at + 16..at + 20].copy_from_slice(b"last");
        let scan = scan_segment(&bytes).expect("header");
        assert!(scan.frames.is_empty());
        assert_eq!(scan.next_lsn, u64::MAX);
        let damage = scan.damage.expect("damage");
        assert_eq!(damage.offset, FRAMES_OFFSET);
        assert_eq!(damage.kind, CorruptionKind::LsnOutOfRange(u64::MAX));
    }

    #[test]
    fn written_extent_finds_the_last_nonzero_byte() {
        let mut bytes = vec![0u8; 100];
        assert_eq!(written_extent(&bytes, 10), 10);
        bytes[57] = 3;
        assert_eq!(written_extent(&bytes, 10), 58);
        assert_eq!(written_extent(&bytes, 80), 80);
    }
}
