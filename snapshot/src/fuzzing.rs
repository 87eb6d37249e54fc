//! Entry points for the fuzz targets in `fuzz/` and their replay tests.
//!
//! Each function runs one decoder of this crate on arbitrary bytes and checks what its
//! result promises; a broken promise panics, which is what a fuzzer reports. Garbage must
//! come back as a typed error naming the offset, never as a panic.

use std::path::Path;

use crate::error::SnapshotError;
use crate::info::SnapshotInfo;
use crate::manifest::{HEADER_BYTES, MANIFEST_FILE, MANIFEST_VERSION, decode, encode};

/// Runs the manifest decoder on arbitrary bytes, twice: as a whole `MANIFEST` file, and
/// as a body behind a correct header (its CRC-32 and length computed here), so that the
/// JSON parser and the checks of meaning are reached past the checksum.
///
/// Checked: an error is `ManifestCorrupt` at an offset inside the file, or
/// `UnsupportedVersion`; a manifest that decodes encodes again, and what it encodes to
/// decodes to the same snapshots. Returns the number of snapshots decoded.
pub fn decode_manifest(data: &[u8]) -> usize {
    let as_file = check_decode(data);
    let with_header = with_valid_header(data);
    as_file + check_decode(&with_header)
}

/// `body` behind a version-1 header that matches it.
pub fn with_valid_header(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "orderlog-manifest v{MANIFEST_VERSION:05} crc32={:08x} bytes={:017}\n",
        crc32fast::hash(body),
        body.len()
    )
    .into_bytes();
    debug_assert_eq!(out.len(), HEADER_BYTES);
    out.extend_from_slice(body);
    out
}

fn check_decode(bytes: &[u8]) -> usize {
    let path = Path::new(MANIFEST_FILE);
    match decode(path, bytes) {
        Ok(snapshots) => {
            check_round_trip(&snapshots);
            snapshots.len()
        }
        Err(SnapshotError::ManifestCorrupt { offset, .. }) => {
            assert!(offset <= bytes.len() as u64, "offset {offset} beyond {} bytes", bytes.len());
            0
        }
        Err(SnapshotError::UnsupportedVersion { .. }) => 0,
        Err(other) => panic!("the manifest decoder returned an untyped error: {other}"),
    }
}

fn check_round_trip(snapshots: &[SnapshotInfo]) {
    // `encode` itself decodes what it wrote and refuses anything that does not decode to
    // the same snapshots.
    let bytes = match encode(snapshots) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a decoded manifest does not encode again: {e}"),
    };
    match decode(Path::new(MANIFEST_FILE), &bytes) {
        Ok(back) => assert_eq!(back, snapshots, "decode(encode(x)) != x"),
        Err(e) => panic!("a re-encoded manifest does not decode: {e}"),
    }
    // The encoding is canonical: encoding twice gives the same bytes.
    assert_eq!(encode(snapshots).ok(), Some(bytes), "encoding is not deterministic");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_empty_inputs_are_errors() {
        assert_eq!(decode_manifest(&[]), 0);
        assert_eq!(decode_manifest(b"{}"), 0);
        assert_eq!(decode_manifest(&[0xff; 100]), 0);
    }

    #[test]
    fn a_body_behind_a_valid_header_reaches_the_meaning_checks() {
        let body = br#"{"version": 1, "snapshots": [{"lsn": 3, "rows": 0, "schema_version": 1,
            "created_unix_ms": 0, "dir": "snap-00000000000000000003", "compression": "none",
            "row_group_rows": 1, "partition_by": null, "files": [
            {"kind": "arrow_ipc", "path": "snap-00000000000000000003/data.arrow", "bytes": 1, "crc32": 2},
            {"kind": "parquet", "path": "snap-00000000000000000003/data.parquet", "bytes": 3, "crc32": 4}
            ]}]}"#;
        assert_eq!(decode_manifest(body), 1);
    }
}
