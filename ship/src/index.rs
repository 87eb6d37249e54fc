//! The index object: which objects make up a generation of a backup, each with its size
//! and CRC-32, and the LSN up to which the log is shipped.
//!
//! ```text
//! [magic "OLBKIDX1" 8][body_len u32][body: JSON, body_len bytes][crc32 u32 of all before]
//! ```
//!
//! The body is a JSON object ([`BackupIndex`]); `docs/format.md` lists its fields. A
//! decoder checks the magic, the length, the checksum, the format version, and that the
//! index is consistent (log pieces contiguous and within their segments, every object
//! named inside its generation), and names the object and the offset of what is wrong.

use orderlog_wal::Lsn;
use serde::{Deserialize, Serialize};

use crate::layout::{Generation, LogPiece};

/// Version of the index body written by this code.
pub const INDEX_FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"OLBKIDX1";
/// Largest index body accepted (a million log pieces fit in far less).
const BODY_MAX: usize = 256 << 20;

/// A log piece in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentObject {
    /// The piece: its segment's first LSN, its last LSN, sealed or a prefix.
    pub base_lsn: Lsn,
    /// The last LSN it holds.
    pub last_lsn: Lsn,
    /// A whole sealed segment (otherwise the durable prefix of the active one).
    pub sealed: bool,
    /// The object's name (under the prefix).
    pub object: String,
    /// The object's size in bytes.
    pub bytes: u64,
    /// CRC-32 of the object's bytes.
    pub crc32: u32,
    /// The segment file's size, to restore it with (its preallocated length).
    pub segment_bytes: u64,
}

/// One file of a snapshot in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileObject {
    /// Its path inside the snapshot store (`snap-<lsn>/<file>`).
    pub name: String,
    /// The object's name.
    pub object: String,
    /// Size in bytes.
    pub bytes: u64,
    /// CRC-32 of its bytes.
    pub crc32: u32,
}

/// A snapshot in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotObject {
    /// The snapshot's LSN.
    pub lsn: Lsn,
    /// Its files.
    pub files: Vec<FileObject>,
    /// The manifest that lists it.
    pub manifest: FileObject,
}

/// A generation's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupIndex {
    /// [`INDEX_FORMAT`].
    pub format: u32,
    /// The generation (`<ms hex>-<tag hex>`).
    pub generation: String,
    /// This index's number: the next one is `seq + 1`.
    pub seq: u64,
    /// When it was written, ms since the epoch.
    pub written_ms: u64,
    /// Every frame up to this LSN is in the log pieces listed (0: none).
    pub shipped_lsn: Lsn,
    /// The log pieces, oldest first, contiguous.
    pub segments: Vec<SegmentObject>,
    /// The snapshots, oldest first.
    pub snapshots: Vec<SnapshotObject>,
}

/// Why an index object is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("backup index {object} is damaged at offset {offset}: {reason}")]
pub struct IndexError {
    /// The object.
    pub object: String,
    /// Where the damage is (for a body that parses but does not hold together: the
    /// body's first byte).
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl BackupIndex {
    /// The index's bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of strings and integers cannot fail.
        let body = serde_json::to_vec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(body.len() + 16);
        out.extend_from_slice(MAGIC);
        // Bodies are far below 4 GiB (`BODY_MAX`).
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks the index object `object`.
    pub fn decode(object: &str, bytes: &[u8]) -> Result<BackupIndex, IndexError> {
        let fail = |offset: usize, reason: String| IndexError {
            object: object.to_owned(),
            offset: offset as u64,
            reason,
        };
        if bytes.len() < 16 {
            return Err(fail(
                bytes.len(),
                format!("{} bytes, shorter than any index", bytes.len()),
            ));
        }
        if &bytes[..8] != MAGIC {
            return Err(fail(0, "not a backup index (bad magic)".into()));
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[8..12]);
        let len = u32::from_le_bytes(len) as usize;
        if len > BODY_MAX || bytes.len() != 12 + len + 4 {
            return Err(fail(
                8,
                format!("a body of {len} bytes does not fit the object's {} bytes", bytes.len()),
            ));
        }
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[12 + len..]);
        if u32::from_le_bytes(crc) != crc32fast::hash(&bytes[..12 + len]) {
            return Err(fail(12 + len, "the checksum does not match".into()));
        }
        let index: BackupIndex = serde_json::from_slice(&bytes[12..12 + len])
            .map_err(|e| fail(12, format!("the body is not an index: {e}")))?;
        if index.format != INDEX_FORMAT {
            return Err(fail(12, format!("unknown index format {}", index.format)));
        }
        index.check().map_err(|reason| fail(12, reason))?;
        Ok(index)
    }

    /// Checks that the index holds together; the reason if not.
    pub fn check(&self) -> Result<(), String> {
        let Some(generation) = Generation::parse(&self.generation) else {
            return Err(format!("generation {:?} is not a generation id", self.generation));
        };
        let mut next = None;
        for (i, s) in self.segments.iter().enumerate() {
            let piece = LogPiece { base: s.base_lsn, last: s.last_lsn, sealed: s.sealed };
            if s.object != generation.log_piece(piece) {
                return Err(format!(
                    "log piece {i} is named {:?}, not {:?}",
                    s.object,
                    generation.log_piece(piece)
                ));
            }
            if s.base_lsn == 0 || s.last_lsn + 1 < s.base_lsn {
                return Err(format!("log piece {i} holds LSNs {}..={}", s.base_lsn, s.last_lsn));
            }
            if next.is_some_and(|n| n != s.base_lsn) {
                return Err(format!(
                    "log piece {i} starts at LSN {}, not where the previous ended",
                    s.base_lsn
                ));
            }
            if !s.sealed && i + 1 != self.segments.len() {
                return Err(format!("log piece {i} is a prefix but not the last piece"));
            }
            next = Some(s.last_lsn + 1);
        }
        let last = self.segments.last().map_or(0, |s| s.last_lsn);
        let first = self.segments.first().map_or(1, |s| s.base_lsn);
        if self.shipped_lsn > last || (self.shipped_lsn > 0 && self.shipped_lsn + 1 < first) {
            return Err(format!(
                "shipped LSN {} lies outside the pieces ({first}..={last})",
                self.shipped_lsn
            ));
        }
        let inside = format!("{}/", generation.dir());
        for s in &self.snapshots {
            for f in s.files.iter().chain(std::iter::once(&s.manifest)) {
                if !f.object.starts_with(&inside) || f.name.contains("..") {
                    return Err(format!(
                        "snapshot {} names {:?} outside its generation",
                        s.lsn, f.object
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index(pieces: &[(Lsn, Lsn, bool)]) -> BackupIndex {
        let generation = Generation { started_ms: 1_700_000_000_000, tag: 7 };
        let segments = pieces
            .iter()
            .map(|&(base, last, sealed)| SegmentObject {
                base_lsn: base,
                last_lsn: last,
                sealed,
                object: generation.log_piece(LogPiece { base, last, sealed }),
                bytes: 100,
                crc32: 5,
                segment_bytes: 1 << 20,
            })
            .collect();
        let manifest = FileObject {
            name: "MANIFEST".into(),
            object: generation.manifest(10),
            bytes: 50,
            crc32: 9,
        };
        let file = FileObject {
            name: "snap-00000000000000000010/orders.arrow".into(),
            object: generation.snapshot_file("snap-00000000000000000010/orders.arrow"),
            bytes: 999,
            crc32: 3,
        };
        BackupIndex {
            format: INDEX_FORMAT,
            generation: generation.to_string(),
            seq: 4,
            written_ms: 1,
            shipped_lsn: pieces.last().map_or(0, |p| p.1),
            segments,
            snapshots: vec![SnapshotObject { lsn: 10, files: vec![file], manifest }],
        }
    }

    #[test]
    fn an_index_round_trips() {
        let i = index(&[(1, 40, true), (41, 90, true), (91, 95, false)]);
        assert_eq!(BackupIndex::decode("x", &i.encode()), Ok(i));
    }

    #[test]
    fn an_index_that_does_not_hold_together_is_refused() {
        for (pieces, why) in [
            (vec![(1, 40, true), (42, 90, true)], "not where the previous ended"),
            (vec![(1, 40, false), (41, 90, true)], "prefix but not the last"),
            (vec![(5, 3, true)], "holds LSNs"),
        ] {
            let bytes = index(&pieces).encode();
            let err = BackupIndex::decode("gen/index/4", &bytes).unwrap_err();
            assert!(err.reason.contains(why), "{err}");
            assert_eq!(err.offset, 12);
        }
        let mut outside = index(&[(1, 4, true)]);
        outside.snapshots[0].files[0].object = "elsewhere/orders.arrow".into();
        assert!(BackupIndex::decode("x", &outside.encode()).is_err());
        let mut beyond = index(&[(1, 4, true)]);
        beyond.shipped_lsn = 5;
        assert!(BackupIndex::decode("x", &beyond.encode()).is_err());
    }

    proptest! {
        #[test]
        fn damage_anywhere_is_an_error_naming_the_object_never_a_panic(at in 0usize..400, bit in 0u8..8, cut in 0usize..400) {
            let bytes = index(&[(1, 40, true), (41, 95, false)]).encode();
            let mut flipped = bytes.clone();
            let at = at % flipped.len();
            flipped[at] ^= 1 << bit;
            let err = BackupIndex::decode("gen/index/4", &flipped).unwrap_err();
            prop_assert_eq!(err.object.as_str(), "gen/index/4");
            let cut = cut % bytes.len();
            prop_assert!(BackupIndex::decode("gen/index/4", &bytes[..cut]).is_err());
        }

        #[test]
        fn garbage_is_refused_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(BackupIndex::decode("x", &bytes).is_err());
        }
    }
}
