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

use orderlog_wal::options::{SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MIN};

use crate::layout::{GENERATIONS, Generation, LogPiece};

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
    /// Set on the index a promoted replica creates to fence the generation's writer
    /// (who promoted, and when): that writer never ships into this generation again,
    /// nor, after a restart, into a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_by: Option<String>,
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
        let body = &bytes[12..12 + len];
        // The format first, so a later format reads as such, not as garbage.
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let format: Format = serde_json::from_slice(body)
            .map_err(|e| fail(12, format!("the body is not an index: {e}")))?;
        if format.format != INDEX_FORMAT {
            return Err(fail(12, format!("unknown index format {}", format.format)));
        }
        let index: BackupIndex = serde_json::from_slice(body)
            .map_err(|e| fail(12, format!("the body is not an index: {e}")))?;
        // The index describes the generation and the sequence number its name says.
        let named = format!("{}/{GENERATIONS}/{}/index/{:020}", "", index.generation, index.seq);
        if !format!("/{object}").ends_with(&named) {
            return Err(fail(
                12,
                format!(
                    "its body is index {} of generation {}, not this object",
                    index.seq, index.generation
                ),
            ));
        }
        index.check().map_err(|reason| fail(12, reason))?;
        Ok(index)
    }

    /// Checks that the index holds together; the reason if not.
    pub fn check(&self) -> Result<(), String> {
        let Some(generation) = Generation::parse(&self.generation) else {
            return Err(format!("generation {:?} is not a generation id", self.generation));
        };
        let mut next: Option<Lsn> = None;
        let pieces = self.segments.len();
        for (i, s) in self.segments.iter().enumerate() {
            let piece = LogPiece { base: s.base_lsn, last: s.last_lsn, sealed: s.sealed };
            if LogPiece::parse(s.object.rsplit('/').next().unwrap_or_default()) != Some(piece)
                || s.object != generation.log_piece(piece)
            {
                return Err(format!("log piece {i} ({:?}) is not named by its LSNs", s.object));
            }
            if next.is_some_and(|n| n != s.base_lsn) {
                return Err(format!(
                    "log piece {i} starts at LSN {}, not where the previous ended",
                    s.base_lsn
                ));
            }
            if i + 1 != pieces && (!s.sealed || s.last_lsn < s.base_lsn) {
                return Err(format!("log piece {i} is a prefix or empty but not the last piece"));
            }
            if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT).contains(&s.segment_bytes)
                || s.bytes > s.segment_bytes
            {
                return Err(format!(
                    "log piece {i}: {} bytes of a segment of {}",
                    s.bytes, s.segment_bytes
                ));
            }
            // Parsed above: `last_lsn < Lsn::MAX`.
            next = Some(s.last_lsn + 1);
        }
        let last = self.segments.last().map_or(0, |s| s.last_lsn);
        let first = self.segments.first().map_or(1, |s| s.base_lsn);
        if self.shipped_lsn > last
            || (self.shipped_lsn > 0 && self.shipped_lsn < first.saturating_sub(1))
        {
            return Err(format!(
                "shipped LSN {} lies outside the pieces ({first}..={last})",
                self.shipped_lsn
            ));
        }
        let mut previous = None;
        for s in &self.snapshots {
            if previous.is_some_and(|p| p >= s.lsn) {
                return Err(format!("snapshot {} is listed after a newer one", s.lsn));
            }
            previous = Some(s.lsn);
            let dir = format!("snap-{:020}/", s.lsn);
            for f in &s.files {
                let file = f.name.strip_prefix(&dir).unwrap_or_default();
                // A relative path down the snapshot's directory (a partitioned Parquet
                // file lies a few directories down): no empty, `.` or `..` component.
                let plain = !file.is_empty()
                    && file.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
                if !plain || f.object != generation.snapshot_file(&f.name) {
                    return Err(format!("snapshot {} lists {:?} as {:?}", s.lsn, f.name, f.object));
                }
            }
            if s.manifest.name != "MANIFEST" || s.manifest.object != generation.manifest(s.lsn) {
                return Err(format!("snapshot {}'s manifest is {:?}", s.lsn, s.manifest.object));
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
            fenced_by: None,
        }
    }

    fn name(i: &BackupIndex) -> String {
        Generation::parse(&i.generation).map(|g| g.index(i.seq)).unwrap_or_default()
    }

    #[test]
    fn an_index_round_trips() {
        let i = index(&[(1, 40, true), (41, 90, true), (91, 95, false)]);
        assert_eq!(BackupIndex::decode(&name(&i), &i.encode()), Ok(i.clone()));
        // Under a prefix too; but not under another generation's or sequence's name.
        assert!(BackupIndex::decode(&format!("backups/{}", name(&i)), &i.encode()).is_ok());
        let other = Generation { started_ms: 1, tag: 1 }.index(4);
        assert!(BackupIndex::decode(&other, &i.encode()).is_err());
        let next = Generation::parse(&i.generation).map(|g| g.index(5)).unwrap_or_default();
        assert!(BackupIndex::decode(&next, &i.encode()).is_err());
    }

    #[test]
    fn an_index_that_does_not_hold_together_is_refused() {
        for (pieces, why) in [
            (vec![(1, 40, true), (42, 90, true)], "not where the previous ended"),
            (vec![(1, 40, false), (41, 90, true)], "prefix or empty but not the last"),
            (
                vec![(1, 40, true), (41, 40, true), (41, 90, true)],
                "prefix or empty but not the last",
            ),
            (vec![(5, 3, true)], "not named by its LSNs"),
            (vec![(1, u64::MAX, true)], "not named by its LSNs"),
        ] {
            let i = index(&pieces);
            let err = BackupIndex::decode(&name(&i), &i.encode()).unwrap_err();
            assert!(err.reason.contains(why), "{err}");
            assert_eq!(err.offset, 12);
        }
        let refused = |change: &dyn Fn(&mut BackupIndex)| {
            let mut i = index(&[(1, 4, true)]);
            change(&mut i);
            BackupIndex::decode(&name(&i), &i.encode()).is_err()
        };
        let g = |i: &BackupIndex| {
            Generation::parse(&i.generation).unwrap_or(Generation { started_ms: 0, tag: 0 })
        };
        assert!(refused(&|i| i.snapshots[0].files[0].object = "elsewhere/orders.arrow".into()));
        assert!(refused(&|i| {
            i.snapshots[0].files[0].object = format!("{}/../../../etc/shadow", g(i).dir());
        }));
        assert!(refused(&|i| {
            i.snapshots[0].files[0].name = "/etc/passwd".into();
            i.snapshots[0].files[0].object = g(i).snapshot_file("/etc/passwd");
        }));
        assert!(refused(&|i| {
            i.snapshots[0].files[0].name = "snap-00000000000000000010/../x".into();
            i.snapshots[0].files[0].object = g(i).snapshot_file("snap-00000000000000000010/../x");
        }));
        assert!(refused(&|i| i.snapshots[0].manifest.object =
            g(i).log_piece(LogPiece { base: 1, last: 4, sealed: true })));
        assert!(refused(&|i| i.shipped_lsn = 5));
        assert!(refused(&|i| i.segments[0].segment_bytes = 1 << 62));
        assert!(refused(&|i| i.segments[0].bytes = (1 << 20) + 1));
        assert!(refused(&|i| i.generation = "0000000000000009-FFFFFFFF".into()));
        let mut later = index(&[(1, 4, true)]);
        later.format = 2;
        let err = BackupIndex::decode(&name(&later), &later.encode()).unwrap_err();
        assert!(err.reason.contains("unknown index format 2"), "{err}");
    }

    proptest! {
        #[test]
        fn damage_anywhere_is_an_error_naming_the_object_never_a_panic(at in 0usize..400, bit in 0u8..8, cut in 0usize..400) {
            let i = index(&[(1, 40, true), (41, 95, false)]);
            let bytes = i.encode();
            let mut flipped = bytes.clone();
            let at = at % flipped.len();
            flipped[at] ^= 1 << bit;
            let err = BackupIndex::decode(&name(&i), &flipped).unwrap_err();
            prop_assert_eq!(err.object, name(&i));
            let cut = cut % bytes.len();
            prop_assert!(BackupIndex::decode(&name(&i), &bytes[..cut]).is_err());
        }

        #[test]
        fn garbage_is_refused_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(BackupIndex::decode("x", &bytes).is_err());
        }
    }
}
