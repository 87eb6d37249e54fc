//! On-disk layout of segments and frames. `docs/format.md` draws the same tables.
//!
//! All multi-byte integers are little-endian.
//!
//! ```text
//! segment file (format version 2)
//! +--------------------+ 0
//! | segment header     |  60 bytes + header CRC (u32) = 64 bytes; zero up to 4096
//! +--------------------+ 4096
//! | checkpoint slot A  |  32 bytes; zero up to 8192
//! +--------------------+ 8192
//! | checkpoint slot B  |  32 bytes; zero up to 12288
//! +--------------------+ 12288 = FRAMES_OFFSET
//! | frame, frame, ...  |  each 8-byte aligned
//! | zero (unwritten)   |  up to segment_bytes
//! +--------------------+
//!
//! Each checkpoint slot has a page of its own, apart from the header's: a checkpoint
//! write dirties only its slot's page, so a write of it torn or garbled at any size up
//! to a page leaves the header and the other slot whole. Version 1 (header and both slots
//! in the first page: slots at 64 and 96, frames at 4096) is still read and appended to.
//!
//! frame
//! +---------+---------+---------+-------------+-----------+
//! | len u32 | crc u32 | lsn u64 | payload     | pad to 8  |
//! +---------+---------+---------+-------------+-----------+
//! len: bits 0..=29 payload length, bit 31 set = more frames of this group follow.
//! crc: CRC-32 (crc32fast) seeded with (previous frame's crc XOR salt32) over
//!      len (4 bytes), lsn (8 bytes) and payload; the first frame of a segment is
//!      seeded with (header crc XOR salt32).
//! A frame header of 16 zero bytes marks the end of the log (LSNs start at 1).
//! ```

use crate::Lsn;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ORDLOGWL";
/// Version of the segment and frame layout new segments are written in.
pub const FORMAT_VERSION: u32 = 2;
/// The first version (header and checkpoint slots in one page), still read.
pub const FORMAT_VERSION_1: u32 = 1;

/// Offset of the magic.
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the format version (u32).
pub const VERSION_OFFSET: usize = MAGIC_OFFSET + SEGMENT_MAGIC.len();
/// Offset of the frames offset (u32): where the first frame starts.
pub const FRAMES_OFFSET_OFFSET: usize = VERSION_OFFSET + size_of::<u32>();
/// Offset of the base LSN (u64): the LSN of the segment's first frame.
pub const BASE_LSN_OFFSET: usize = FRAMES_OFFSET_OFFSET + size_of::<u32>();
/// Offset of the random salt (u64) drawn when the segment was created.
pub const SALT_OFFSET: usize = BASE_LSN_OFFSET + size_of::<u64>();
/// Offset of the segment size (u64) the file was preallocated to.
pub const SEGMENT_BYTES_OFFSET: usize = SALT_OFFSET + size_of::<u64>();
/// Offset of the reserved, zero bytes.
pub const RESERVED_OFFSET: usize = SEGMENT_BYTES_OFFSET + size_of::<u64>();
/// Offset of the header CRC (u32) over bytes `0..HEADER_CRC_OFFSET`.
pub const HEADER_CRC_OFFSET: usize = 60;
/// Length of the fixed header, CRC included.
pub const HEADER_BYTES: usize = HEADER_CRC_OFFSET + size_of::<u32>();
/// The page: the unit the page cache writes back, and the layout's unit.
pub const PAGE_BYTES: usize = 4096;
/// Offsets of the two checkpoint slots (version 2): a page each, after the header's.
pub const CHECKPOINT_SLOT_OFFSETS: [usize; 2] = [PAGE_BYTES, 2 * PAGE_BYTES];
/// Length of one checkpoint slot.
pub const CHECKPOINT_BYTES: usize = 32;
/// Where frames start (version 2): after the header page and the two slot pages.
pub const FRAMES_OFFSET: u64 = 3 * PAGE_BYTES as u64;
/// Offsets of the two checkpoint slots in version 1: right after the header.
pub const CHECKPOINT_SLOT_OFFSETS_V1: [usize; 2] = [HEADER_BYTES, HEADER_BYTES + CHECKPOINT_BYTES];
/// Where frames start in version 1: after the first page.
pub const FRAMES_OFFSET_V1: u64 = PAGE_BYTES as u64;

/// Length of a frame header.
pub const FRAME_HEADER_BYTES: usize = 16;
/// Bit of the length field that says "more frames of this group follow".
pub const GROUP_CONTINUES: u32 = 1 << 31;
/// Bits of the length field that hold the payload length.
pub const LEN_MASK: u32 = (1 << 30) - 1;

/// The file name of the segment whose first frame has `base_lsn`.
pub fn segment_file_name(base_lsn: Lsn) -> String {
    format!("{base_lsn:020}.wal")
}

/// The spare segment: preallocated (and synced) ahead of need by a background thread,
/// then stamped and renamed to the next segment's name when the log rolls, so the
/// preallocation (a 64 MiB zero fill with the `pwrite` backend) is never on a commit's
/// path. It holds no frames; recovery removes it like a half-created segment.
pub const SPARE_SEGMENT: &str = "spare.wal.tmp";

/// Whether `name` is a half-created segment (`<segment>.tmp`) or the spare segment:
/// files holding no frame, which recovery removes.
pub fn is_temp_segment_name(name: &str) -> bool {
    name == SPARE_SEGMENT || name.strip_suffix(".tmp").and_then(parse_segment_file_name).is_some()
}

/// Parses a segment file name back into its base LSN.
pub fn parse_segment_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Bytes a frame with `payload_len` bytes of payload occupies, padding included.
pub const fn frame_size(payload_len: usize) -> u64 {
    (FRAME_HEADER_BYTES + payload_len.next_multiple_of(8)) as u64
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The fixed header at the start of every segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// LSN of the segment's first frame.
    pub base_lsn: Lsn,
    /// Random value drawn at creation; mixed into every frame checksum of the segment.
    pub salt: u64,
    /// Size the file was preallocated to.
    pub segment_bytes: u64,
    /// The layout's version: [`FORMAT_VERSION`] for new segments, [`FORMAT_VERSION_1`]
    /// for segments written before it.
    pub version: u32,
}

impl SegmentHeader {
    /// The header of a new segment, in the current layout.
    pub fn new(base_lsn: Lsn, salt: u64, segment_bytes: u64) -> SegmentHeader {
        SegmentHeader { base_lsn, salt, segment_bytes, version: FORMAT_VERSION }
    }

    /// Where the segment's first frame starts.
    pub fn frames_offset(&self) -> u64 {
        if self.version == FORMAT_VERSION_1 { FRAMES_OFFSET_V1 } else { FRAMES_OFFSET }
    }

    /// Where the segment's two checkpoint slots are.
    pub fn checkpoint_slots(&self) -> [usize; 2] {
        if self.version == FORMAT_VERSION_1 {
            CHECKPOINT_SLOT_OFFSETS_V1
        } else {
            CHECKPOINT_SLOT_OFFSETS
        }
    }

    /// Encodes the header, CRC included.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(&SEGMENT_MAGIC);
        out[VERSION_OFFSET..FRAMES_OFFSET_OFFSET].copy_from_slice(&self.version.to_le_bytes());
        out[FRAMES_OFFSET_OFFSET..BASE_LSN_OFFSET]
            .copy_from_slice(&(self.frames_offset() as u32).to_le_bytes());
        out[BASE_LSN_OFFSET..SALT_OFFSET].copy_from_slice(&self.base_lsn.to_le_bytes());
        out[SALT_OFFSET..SEGMENT_BYTES_OFFSET].copy_from_slice(&self.salt.to_le_bytes());
        out[SEGMENT_BYTES_OFFSET..RESERVED_OFFSET]
            .copy_from_slice(&self.segment_bytes.to_le_bytes());
        let crc = crc32fast::hash(&out[..HEADER_CRC_OFFSET]);
        out[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a header; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<(SegmentHeader, u32), String> {
        if bytes.len() < HEADER_BYTES {
            return Err(format!("file holds {} bytes, shorter than a header", bytes.len()));
        }
        if bytes[..VERSION_OFFSET] != SEGMENT_MAGIC {
            return Err("magic is not ORDLOGWL".into());
        }
        let stored = u32_at(bytes, HEADER_CRC_OFFSET);
        let computed = crc32fast::hash(&bytes[..HEADER_CRC_OFFSET]);
        if stored != computed {
            return Err(format!(
                "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ));
        }
        let version = u32_at(bytes, VERSION_OFFSET);
        if version != FORMAT_VERSION && version != FORMAT_VERSION_1 {
            return Err(format!(
                "unsupported format version {version} (this build reads {FORMAT_VERSION_1} and \
                 {FORMAT_VERSION})"
            ));
        }
        if bytes[RESERVED_OFFSET..HEADER_CRC_OFFSET].iter().any(|&b| b != 0) {
            return Err("reserved header bytes are not zero".into());
        }
        let header = SegmentHeader {
            base_lsn: u64_at(bytes, BASE_LSN_OFFSET),
            salt: u64_at(bytes, SALT_OFFSET),
            segment_bytes: u64_at(bytes, SEGMENT_BYTES_OFFSET),
            version,
        };
        let frames_offset = u32_at(bytes, FRAMES_OFFSET_OFFSET);
        if u64::from(frames_offset) != header.frames_offset() {
            return Err(format!("frames offset {frames_offset} is not version {version}'s"));
        }
        if header.base_lsn == 0 {
            return Err("base LSN is zero".into());
        }
        if header.segment_bytes < header.frames_offset() + FRAME_HEADER_BYTES as u64 {
            return Err(format!("segment size {} is too small", header.segment_bytes));
        }
        Ok((header, computed))
    }
}

/// The low 32 bits of a salt, as mixed into frame checksums.
pub fn salt32(salt: u64) -> u32 {
    salt as u32 ^ (salt >> 32) as u32
}

/// A checkpoint: how far the segment was known durable when it was written.
///
/// Written into one of two alternating slots while the next sync runs, so it always
/// lags the true durable end by at most one sync. Recovery treats every frame before
/// `durable_end` as durable: damage there is corruption, never a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Increases with every checkpoint written to the segment; the higher valid slot wins.
    pub seq: u64,
    /// Offset just past the last frame known durable.
    pub durable_end: u64,
    /// LSN of the last frame before `durable_end` (0 if none).
    pub last_lsn: Lsn,
    /// True once the segment is full and synced: nothing more is appended to it.
    pub sealed: bool,
}

impl Checkpoint {
    /// Encodes the slot; the CRC is seeded with the segment header's CRC so a slot
    /// copied from another segment does not validate.
    pub fn encode(&self, header_crc: u32) -> [u8; CHECKPOINT_BYTES] {
        let mut out = [0u8; CHECKPOINT_BYTES];
        out[0..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&self.durable_end.to_le_bytes());
        out[16..24].copy_from_slice(&self.last_lsn.to_le_bytes());
        out[24..28].copy_from_slice(&u32::from(self.sealed).to_le_bytes());
        let mut h = crc32fast::Hasher::new_with_initial(header_crc);
        h.update(&out[..28]);
        out[28..32].copy_from_slice(&h.finalize().to_le_bytes());
        out
    }

    /// Decodes a slot; `None` if it is blank or fails its checksum.
    pub fn decode(slot: &[u8], header_crc: u32) -> Option<Checkpoint> {
        if slot.len() < CHECKPOINT_BYTES || slot[..CHECKPOINT_BYTES].iter().all(|&b| b == 0) {
            return None;
        }
        let mut h = crc32fast::Hasher::new_with_initial(header_crc);
        h.update(&slot[..28]);
        if h.finalize() != u32_at(slot, 28) {
            return None;
        }
        let flags = u32_at(slot, 24);
        if flags > 1 {
            return None;
        }
        Some(Checkpoint {
            seq: u64_at(slot, 0),
            durable_end: u64_at(slot, 8),
            last_lsn: u64_at(slot, 16),
            sealed: flags == 1,
        })
    }

    /// The newest valid checkpoint among the two slots of a segment (`bytes`: the
    /// segment's start, at least up to its frames).
    pub fn newest(bytes: &[u8], header: &SegmentHeader, header_crc: u32) -> Option<Checkpoint> {
        header
            .checkpoint_slots()
            .iter()
            .filter_map(|&at| bytes.get(at..at + CHECKPOINT_BYTES))
            .filter_map(|slot| Checkpoint::decode(slot, header_crc))
            .max_by_key(|c| c.seq)
    }

    /// The slot of `header`'s segment this checkpoint is written to (alternating, so a
    /// torn write of one slot leaves the other intact).
    pub fn slot_offset(&self, header: &SegmentHeader) -> usize {
        header.checkpoint_slots()[(self.seq % 2) as usize]
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The raw length field, flags included.
    pub len_field: u32,
    /// Stored checksum.
    pub crc: u32,
    /// The frame's LSN.
    pub lsn: Lsn,
}

impl FrameHeader {
    /// Reads a header from the first 16 bytes of `bytes`.
    pub fn read(bytes: &[u8]) -> FrameHeader {
        FrameHeader { len_field: u32_at(bytes, 0), crc: u32_at(bytes, 4), lsn: u64_at(bytes, 8) }
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        (self.len_field & LEN_MASK) as usize
    }

    /// True when more frames of the same group follow.
    pub fn group_continues(&self) -> bool {
        self.len_field & GROUP_CONTINUES != 0
    }

    /// True for the all-zero header that marks the end of the log.
    pub fn is_end(&self) -> bool {
        self.len_field == 0 && self.crc == 0 && self.lsn == 0
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; FRAME_HEADER_BYTES] {
        let mut out = [0u8; FRAME_HEADER_BYTES];
        out[0..4].copy_from_slice(&self.len_field.to_le_bytes());
        out[4..8].copy_from_slice(&self.crc.to_le_bytes());
        out[8..16].copy_from_slice(&self.lsn.to_le_bytes());
        out
    }
}

/// Computes a frame's chained checksum.
pub fn frame_crc(seed: u32, len_field: u32, lsn: Lsn, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(&len_field.to_le_bytes());
    h.update(&lsn.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// The seed of the checksum of the frame after one whose crc is `prev_crc`.
pub fn chain_seed(prev_crc: u32, salt: u64) -> u32 {
    prev_crc ^ salt32(salt)
}

/// Zero bytes used for padding.
pub const PAD: [u8; 8] = [0; 8];

/// Encodes a header for `payload` and returns it with the padding to write after it.
pub fn encode_frame(
    prev_crc: u32,
    salt: u64,
    lsn: Lsn,
    payload: &[u8],
    group_continues: bool,
) -> (FrameHeader, &'static [u8]) {
    debug_assert!(payload.len() <= LEN_MASK as usize);
    let mut len_field = payload.len() as u32;
    if group_continues {
        len_field |= GROUP_CONTINUES;
    }
    let crc = frame_crc(chain_seed(prev_crc, salt), len_field, lsn, payload);
    let pad = payload.len().next_multiple_of(8) - payload.len();
    (FrameHeader { len_field, crc, lsn }, &PAD[..pad])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn segment_names_round_trip_and_reject_strangers() {
        assert_eq!(segment_file_name(42), "00000000000000000042.wal");
        assert_eq!(parse_segment_file_name("00000000000000000042.wal"), Some(42));
        for bad in ["42.wal", "0000000000000000004x.wal", "00000000000000000042.tmp", "LOCK"] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_round_trips_and_rejects_each_damaged_byte() {
        let h = SegmentHeader::new(7, 0xdead_beef_cafe, 1 << 20);
        let bytes = h.encode();
        let (back, _) = SegmentHeader::decode(&bytes).expect("valid header decodes");
        assert_eq!(back, h);
        for i in 0..bytes.len() {
            let mut bad = bytes;
            bad[i] ^= 0x40;
            assert!(SegmentHeader::decode(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(SegmentHeader::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn checkpoint_newest_slot_wins_and_damaged_slot_is_ignored() {
        let crc = 0x1234_5678;
        for version in [FORMAT_VERSION, FORMAT_VERSION_1] {
            let header = SegmentHeader { version, ..SegmentHeader::new(1, 2, 1 << 20) };
            let mut page = vec![0u8; header.frames_offset() as usize];
            assert_eq!(Checkpoint::newest(&page, &header, crc), None);
            for seq in 1..=3 {
                let c =
                    Checkpoint { seq, durable_end: 12288 + seq * 8, last_lsn: seq, sealed: false };
                let at = c.slot_offset(&header);
                page[at..at + CHECKPOINT_BYTES].copy_from_slice(&c.encode(crc));
            }
            assert_eq!(Checkpoint::newest(&page, &header, crc).map(|c| c.seq), Some(3));
            let at = header.checkpoint_slots()[1];
            page[at + 3] ^= 1;
            assert_eq!(Checkpoint::newest(&page, &header, crc).map(|c| c.seq), Some(2));
            assert_eq!(Checkpoint::newest(&page, &header, crc ^ 1), None, "foreign crc accepted");
        }
    }

    #[test]
    fn version_2_keeps_the_header_and_each_slot_in_a_page_of_its_own() {
        let header = SegmentHeader::new(1, 2, 1 << 20);
        let page = |at: usize| at / PAGE_BYTES;
        let [a, b] = header.checkpoint_slots();
        assert_eq!(page(0), page(HEADER_BYTES - 1));
        let pages = [page(0), page(a), page(a + CHECKPOINT_BYTES - 1), page(b)];
        assert_eq!(pages, [0, 1, 1, 2]);
        assert_eq!(page(b + CHECKPOINT_BYTES - 1), 2);
        assert_eq!(header.frames_offset(), 3 * PAGE_BYTES as u64);
        // Version 1 decodes with its own layout.
        let v1 = SegmentHeader { version: FORMAT_VERSION_1, ..header };
        let (back, _) = SegmentHeader::decode(&v1.encode()).expect("version 1 decodes");
        assert_eq!(back, v1);
        assert_eq!(back.frames_offset(), 4096);
        let mut v3 = v1.encode();
        v3[VERSION_OFFSET] = 3;
        let crc = crc32fast::hash(&v3[..HEADER_CRC_OFFSET]);
        v3[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        let err = SegmentHeader::decode(&v3).expect_err("version 3");
        assert!(err.contains("unsupported format version 3"), "{err}");
    }

    proptest! {
        #[test]
        fn frame_crc_detects_any_single_bit_flip(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            lsn in 1u64..u64::MAX,
            prev in any::<u32>(),
            salt in any::<u64>(),
            bit in any::<proptest::sample::Index>(),
        ) {
            let (h, pad) = encode_frame(prev, salt, lsn, &payload, false);
            prop_assert_eq!(pad.len() + payload.len(), payload.len().next_multiple_of(8));
            let mut frame = h.encode().to_vec();
            frame.extend_from_slice(&payload);
            let back = FrameHeader::read(&frame);
            prop_assert_eq!(back, h);
            prop_assert_eq!(back.payload_len(), payload.len());
            // Flip one bit anywhere in len, lsn or payload: the checksum no longer matches.
            let covered: Vec<usize> = (0..4).chain(8..frame.len()).collect();
            let at = covered[bit.index(covered.len())];
            frame[at] ^= 0x01;
            let h2 = FrameHeader::read(&frame);
            let body = &frame[16..];
            let len = h2.payload_len().min(body.len());
            let computed = frame_crc(chain_seed(prev, salt), h2.len_field, h2.lsn, &body[..len]);
            prop_assert!(computed != h2.crc || h2.payload_len() != payload.len());
        }
    }
}
