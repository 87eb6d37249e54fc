//! Entry points for the fuzz targets in `fuzz/` and their replay tests.
//!
//! Each function runs one decoder of this crate on arbitrary bytes and checks what its
//! result promises. They never return an error: a broken promise panics, which is what
//! a fuzzer reports. Garbage must come back as a typed finding (an error or a
//! [`CorruptionKind`](crate::CorruptionKind) with its offset), never as a panic.

use crate::format::{
    FRAME_HEADER_BYTES, FrameHeader, GROUP_CONTINUES, LEN_MASK, SegmentHeader, chain_seed,
    encode_frame, frame_crc, frame_size,
};
use crate::scan::{ChainPoint, SegmentScan, scan_frames_from, scan_segment as scan};

/// Bytes of the prefix [`decode_frames`] reads its chain state from: salt (u64), previous
/// crc (u32) and first LSN (u64), little-endian.
pub const FRAMES_PREFIX_BYTES: usize = 20;

/// Runs the frame decoder (the chained-CRC frame walk of a segment) over arbitrary bytes.
///
/// `data` is a [`FRAMES_PREFIX_BYTES`]-byte prefix giving the chain state (salt, previous
/// crc, first LSN), then a run of frames as they lie in a segment after its header page.
/// The run is decoded twice: as given, and with every frame's stored crc replaced by the
/// correct one first, so that lengths, groups, padding and LSNs are exercised past the
/// checksum. Checked: every accepted frame lies inside the input, carries the expected
/// LSN, re-encodes to exactly the bytes it was read from, and the accepted frames and the
/// damage (if any) partition the bytes up to where decoding stopped.
pub fn decode_frames(data: &[u8]) -> usize {
    let Some((prefix, frames)) = data.split_at_checked(FRAMES_PREFIX_BYTES) else {
        return 0;
    };
    let salt = u64::from_le_bytes(array(&prefix[0..8]));
    let prev_crc = u32::from_le_bytes(array(&prefix[8..12]));
    let lsn = u64::from_le_bytes(array(&prefix[12..20]));
    let mut accepted = decode_frame_run(frames, salt, prev_crc, lsn);
    let repaired = with_valid_crcs(frames, salt, prev_crc);
    accepted += decode_frame_run(&repaired, salt, prev_crc, lsn);
    accepted
}

/// Decodes `frames` as the frame area of a segment whose size is the input's length
/// rounded up to a frame boundary, starting at offset 0 with the given chain state.
fn decode_frame_run(frames: &[u8], salt: u64, prev_crc: u32, lsn: u64) -> usize {
    let header = SegmentHeader::new(lsn, salt, frames.len().next_multiple_of(8) as u64);
    let start = ChainPoint { offset: 0, prev_crc, lsn };
    let result = scan_frames_from(frames, header, prev_crc, None, start);
    check_scan(frames, &result, 0, prev_crc, lsn);
    result.frames.len()
}

/// A copy of `frames` in which every frame the walk reaches carries its correct crc.
fn with_valid_crcs(frames: &[u8], salt: u64, mut prev_crc: u32) -> Vec<u8> {
    let mut out = frames.to_vec();
    let mut pos = 0usize;
    while pos + FRAME_HEADER_BYTES <= out.len() {
        let h = FrameHeader::read(&out[pos..pos + FRAME_HEADER_BYTES]);
        if h.is_end() || h.len_field & !(LEN_MASK | GROUP_CONTINUES) != 0 {
            break;
        }
        let payload = pos + FRAME_HEADER_BYTES..pos + FRAME_HEADER_BYTES + h.payload_len();
        let Some(payload_bytes) = out.get(payload) else { break };
        let crc = frame_crc(chain_seed(prev_crc, salt), h.len_field, h.lsn, payload_bytes);
        out[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        prev_crc = crc;
        pos += frame_size(h.payload_len()) as usize;
    }
    out
}

/// Runs the segment scanner (the crate's `scan_segment`, which recovery and readers use)
/// on arbitrary bytes taken as a whole segment file (possibly cut short, as a copy may
/// leave it).
///
/// Checked: a bad header is reported at offset 0; otherwise every accepted frame lies
/// inside the input and re-encodes to the bytes it was read from, LSNs run on from the
/// header's base LSN, the valid end never lies beyond the segment or beyond the input
/// (but for the zero padding of a cut last frame), and damage lies at or after it.
/// Returns the number of frames accepted.
pub fn scan_segment(data: &[u8]) -> usize {
    match scan(data) {
        Err(damage) => {
            assert_eq!(damage.offset, 0, "a header error lies at offset 0");
            assert!(SegmentHeader::decode(data).is_err(), "the scanner rejects a valid header");
            0
        }
        Ok(result) => {
            let (header, header_crc) = match SegmentHeader::decode(data) {
                Ok(h) => h,
                Err(why) => panic!("the scanner accepted a header that does not decode: {why}"),
            };
            assert_eq!(result.header, header);
            assert_eq!(result.header_crc, header_crc);
            assert!(result.valid_end <= header.segment_bytes, "valid end beyond the segment");
            check_scan(data, &result, header.frames_offset(), header_crc, header.base_lsn);
            result.frames.len()
        }
    }
}

/// The promises of a frame scan that started at `start` with chain state `prev_crc` and
/// LSN `lsn` over `bytes`.
fn check_scan(bytes: &[u8], scan: &SegmentScan, start: u64, mut prev_crc: u32, mut lsn: u64) {
    let salt = scan.header.salt;
    // Payloads are read from the input; only the zero padding of a frame cut at the end of
    // the input may lie beyond it (missing bytes read as unwritten).
    let limit = bytes.len().next_multiple_of(8) as u64;
    assert!(scan.valid_end >= start, "valid end {} before the start", scan.valid_end);
    assert!(scan.valid_end <= limit.max(start), "valid end {} beyond the input", scan.valid_end);
    let mut pos = start as usize;
    for (i, frame) in scan.frames.iter().enumerate() {
        assert_eq!(frame.lsn, lsn, "frame {i}: LSN");
        assert_eq!(frame.payload.start, pos + FRAME_HEADER_BYTES, "frame {i}: not contiguous");
        let Some(payload) = bytes.get(frame.payload.clone()) else {
            panic!("frame {i}: payload {:?} beyond the input", frame.payload)
        };
        let (h, pad) = encode_frame(prev_crc, salt, lsn, payload, frame.group_continues);
        assert_eq!(&bytes[pos..pos + FRAME_HEADER_BYTES], &h.encode()[..], "frame {i}: header");
        let stored_pad =
            &bytes[frame.payload.end..(frame.payload.end + pad.len()).min(bytes.len())];
        assert!(stored_pad.iter().all(|&b| b == 0), "frame {i}: non-zero padding accepted");
        prev_crc = h.crc;
        lsn += 1;
        pos = frame.payload.end + pad.len();
    }
    assert_eq!(pos as u64, scan.valid_end, "frames do not end at the valid end");
    assert!(scan.frames.last().is_none_or(|f| !f.group_continues), "an open group delivered");
    assert_eq!(scan.last_crc, prev_crc, "chain state at the valid end");
    assert_eq!(scan.next_lsn, lsn, "next LSN");
    if let Some(damage) = &scan.damage {
        assert!(damage.offset >= scan.valid_end, "damage before the valid end");
        assert!(damage.offset <= limit.max(start), "damage beyond the input");
    }
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_empty_inputs_are_findings() {
        assert_eq!(decode_frames(&[]), 0);
        assert_eq!(decode_frames(&[0; 19]), 0);
        assert_eq!(decode_frames(&[0; 20]), 0);
        assert_eq!(scan_segment(&[]), 0);
        assert_eq!(scan_segment(b"ORDLOGWL"), 0);
    }

    #[test]
    fn repaired_crcs_reach_the_length_checks() {
        // One frame of 3 payload bytes with a wrong crc: accepted only once repaired.
        let mut data = vec![0u8; FRAMES_PREFIX_BYTES];
        data[12] = 1; // first LSN 1
        data.extend_from_slice(&3u32.to_le_bytes());
        data.extend_from_slice(&0xdead_beefu32.to_le_bytes());
        data.extend_from_slice(&1u64.to_le_bytes());
        data.extend_from_slice(b"abc\0\0\0\0\0");
        assert_eq!(decode_frames(&data), 1);
    }
}
