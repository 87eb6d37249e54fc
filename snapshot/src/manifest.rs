//! The `MANIFEST` file: which snapshots exist, newest first, and what each file's size
//! and CRC-32 must be.
//!
//! Layout (version 2; version 1 is still read): a 64-byte ASCII header line, then a JSON
//! body the header checksums. Version 2 adds each snapshot's `newest_event_ms`.
//!
//! ```text
//! offset size  content
//!      0   19  "orderlog-manifest v"             MAGIC
//!     19    5  format version, 5 decimal digits  "00001"
//!     24    7  " crc32="
//!     31    8  CRC-32 of the body, lowercase hex
//!     39    7  " bytes="
//!     46   17  body length in bytes, 17 decimal digits
//!     63    1  "\n"
//!     64    …  body: pretty-printed JSON and a final "\n", exactly `bytes` long
//! ```
//!
//! So `tail -n +2 MANIFEST | jq .` shows the body. Decoding checks every header field,
//! the exact length, the CRC, then parses the JSON and checks its meaning
//! ([`decode`]); nothing in the body is trusted before the CRC matched.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SnapshotError};
use crate::info::{FileKind, Lsn, SnapshotFile, SnapshotInfo};
use crate::options::{PARTITIONS_LIMIT, ParquetCompression, SNAPSHOTS_MAX};

/// The manifest's file name in the store directory.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";
/// The new manifest's name until it is renamed over [`MANIFEST_FILE`].
pub(crate) const MANIFEST_TMP_FILE: &str = "MANIFEST.tmp";

/// The format version this build writes. It reads this one and
/// [`MANIFEST_VERSION_OLDEST`].
pub const MANIFEST_VERSION: u32 = 2;
/// The oldest format version this build reads: version 1, whose entries have no
/// `newest_event_ms`.
pub const MANIFEST_VERSION_OLDEST: u32 = 1;

const MAGIC: &[u8] = b"orderlog-manifest v";
const VERSION_OFFSET: usize = MAGIC.len();
const VERSION_DIGITS: usize = 5;
const CRC_TAG: &[u8] = b" crc32=";
const CRC_TAG_OFFSET: usize = VERSION_OFFSET + VERSION_DIGITS;
const CRC_OFFSET: usize = CRC_TAG_OFFSET + CRC_TAG.len();
const CRC_DIGITS: usize = 8;
const LEN_TAG: &[u8] = b" bytes=";
const LEN_TAG_OFFSET: usize = CRC_OFFSET + CRC_DIGITS;
const LEN_OFFSET: usize = LEN_TAG_OFFSET + LEN_TAG.len();
const LEN_DIGITS: usize = 17;
const NEWLINE_OFFSET: usize = LEN_OFFSET + LEN_DIGITS;
/// Bytes before the body.
pub(crate) const HEADER_BYTES: usize = NEWLINE_OFFSET + 1;
const _: () = assert!(HEADER_BYTES == 64);

/// Largest manifest accepted (header and body): far above what [`SNAPSHOTS_MAX`]
/// snapshots need, low enough to read whole.
pub(crate) const MANIFEST_BYTES_MAX: u64 = 64 << 20;

/// The snapshot directory name for `lsn`.
pub(crate) fn snapshot_dir_name(lsn: Lsn) -> String {
    format!("snap-{lsn:020}")
}

/// The LSN named by a snapshot directory name (`snap-` and 20 digits), if it is one.
pub(crate) fn parse_snapshot_dir_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_prefix("snap-")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The body of versions 1 and 2 (version 1 entries have no `newest_event_ms`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    version: u32,
    snapshots: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    lsn: u64,
    rows: u64,
    schema_version: u32,
    created_unix_ms: u64,
    /// Version 2: the newest event time the snapshot covers (ms since the epoch), if
    /// known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest_event_ms: Option<u64>,
    dir: String,
    compression: String,
    row_group_rows: u64,
    partition_by: Option<String>,
    files: Vec<File>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    kind: String,
    path: String,
    bytes: u64,
    crc32: u32,
}

/// Encodes a manifest listing `snapshots` (newest first).
pub(crate) fn encode(snapshots: &[SnapshotInfo]) -> Result<Vec<u8>> {
    let body = Body {
        version: MANIFEST_VERSION,
        snapshots: snapshots
            .iter()
            .map(|s| Entry {
                lsn: s.lsn,
                rows: s.rows,
                schema_version: s.schema_version,
                created_unix_ms: s.created_unix_ms,
                newest_event_ms: s.newest_event_ms,
                dir: s.dir.clone(),
                compression: s.compression.as_str().into(),
                row_group_rows: s.row_group_rows,
                partition_by: s.partition_by.clone(),
                files: s
                    .files
                    .iter()
                    .map(|f| File {
                        kind: f.kind.as_str().into(),
                        path: f.path.clone(),
                        bytes: f.bytes,
                        crc32: f.crc32,
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut body_bytes = serde_json::to_vec_pretty(&body).map_err(|e| {
        SnapshotError::InvalidOptions { detail: format!("manifest does not encode: {e}") }
    })?;
    body_bytes.push(b'\n');
    let mut out = format!(
        "orderlog-manifest v{MANIFEST_VERSION:05} crc32={:08x} bytes={:017}\n",
        crc32fast::hash(&body_bytes),
        body_bytes.len()
    )
    .into_bytes();
    debug_assert_eq!(out.len(), HEADER_BYTES);
    out.extend_from_slice(&body_bytes);
    // Check the invariant right before the bytes go to disk: what we write decodes, passes
    // every reader check, and means what we meant.
    let invalid = |detail: String| SnapshotError::InvalidOptions {
        detail: format!("the new manifest would not be valid: {detail}"),
    };
    match decode(Path::new(MANIFEST_FILE), &out) {
        Ok(decoded) if decoded == snapshots => Ok(out),
        Ok(_) => Err(invalid("it decodes to other values".into())),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// Decodes and checks a manifest read from `path`: header, length, CRC, JSON, meaning.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<Vec<SnapshotInfo>> {
    let corrupt = |offset: usize, detail: String| SnapshotError::ManifestCorrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        detail,
    };
    if bytes.len() < HEADER_BYTES {
        return Err(corrupt(
            bytes.len(),
            format!("{} bytes, shorter than the {HEADER_BYTES}-byte header", bytes.len()),
        ));
    }
    expect_bytes(bytes, 0, MAGIC).map_err(|at| corrupt(at, "bad magic".into()))?;
    let version = decimal(bytes, VERSION_OFFSET, VERSION_DIGITS)
        .ok_or_else(|| corrupt(VERSION_OFFSET, "version is not 5 decimal digits".into()))?;
    if !(u64::from(MANIFEST_VERSION_OLDEST)..=u64::from(MANIFEST_VERSION)).contains(&version) {
        return Err(SnapshotError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: MANIFEST_VERSION,
        });
    }
    expect_bytes(bytes, CRC_TAG_OFFSET, CRC_TAG)
        .map_err(|at| corrupt(at, "bad crc32 tag".into()))?;
    let crc = lower_hex(&bytes[CRC_OFFSET..CRC_OFFSET + CRC_DIGITS])
        .ok_or_else(|| corrupt(CRC_OFFSET, "crc32 is not 8 lowercase hex digits".into()))?;
    expect_bytes(bytes, LEN_TAG_OFFSET, LEN_TAG)
        .map_err(|at| corrupt(at, "bad bytes tag".into()))?;
    let body_len = decimal(bytes, LEN_OFFSET, LEN_DIGITS)
        .ok_or_else(|| corrupt(LEN_OFFSET, "body length is not 17 decimal digits".into()))?;
    if bytes[NEWLINE_OFFSET] != b'\n' {
        return Err(corrupt(NEWLINE_OFFSET, "header does not end with a newline".into()));
    }
    let body = &bytes[HEADER_BYTES..];
    if body.len() as u64 != body_len {
        return Err(corrupt(
            HEADER_BYTES + body.len().min(body_len as usize),
            format!("body is {} bytes, the header says {body_len}", body.len()),
        ));
    }
    let actual = crc32fast::hash(body);
    if actual != crc {
        return Err(corrupt(
            HEADER_BYTES,
            format!("CRC-32 of the body is {actual:08x}, the header says {crc:08x}"),
        ));
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        corrupt(HEADER_BYTES + offset_of(body, e.line(), e.column()), format!("JSON: {e}"))
    })?;
    // Checked above: 1 or 2.
    let version = u32::try_from(version).unwrap_or(MANIFEST_VERSION);
    check_body(parsed, version).map_err(|detail| corrupt(HEADER_BYTES, detail))
}

/// `Err(offset)` of the first byte of `bytes[at..]` that differs from `want`.
fn expect_bytes(bytes: &[u8], at: usize, want: &[u8]) -> std::result::Result<(), usize> {
    match bytes[at..at + want.len()].iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(at + i),
    }
}

fn decimal(bytes: &[u8], at: usize, digits: usize) -> Option<u64> {
    let field = &bytes[at..at + digits];
    if !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

fn lower_hex(field: &[u8]) -> Option<u32> {
    if !field.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(field).ok()?, 16).ok()
}

/// Byte offset of a serde_json (1-based line, column) position in `body`.
fn offset_of(body: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize =
        body.split_inclusive(|&b| b == b'\n').take(line.saturating_sub(1)).map(<[u8]>::len).sum();
    (line_start + column.saturating_sub(1)).min(body.len())
}

/// Checks what the body of a `version` manifest means: version, order, names, paths,
/// limits.
fn check_body(body: Body, version: u32) -> std::result::Result<Vec<SnapshotInfo>, String> {
    if body.version != version {
        return Err(format!("body version {} differs from the header's", body.version));
    }
    if version < 2
        && let Some(i) = body.snapshots.iter().position(|e| e.newest_event_ms.is_some())
    {
        return Err(format!("snapshot {i}: newest_event_ms is not part of version {version}"));
    }
    if body.snapshots.is_empty() || body.snapshots.len() > SNAPSHOTS_MAX {
        return Err(format!(
            "lists {} snapshots, must list 1 to {SNAPSHOTS_MAX}",
            body.snapshots.len()
        ));
    }
    let mut out: Vec<SnapshotInfo> = Vec::with_capacity(body.snapshots.len());
    for (i, entry) in body.snapshots.into_iter().enumerate() {
        let info = check_entry(entry).map_err(|e| format!("snapshot {i}: {e}"))?;
        if let Some(newer) = out.last()
            && info.lsn >= newer.lsn
        {
            return Err(format!(
                "snapshot {i}: LSN {} is not below the previous entry's {}",
                info.lsn, newer.lsn
            ));
        }
        out.push(info);
    }
    Ok(out)
}

fn check_entry(e: Entry) -> std::result::Result<SnapshotInfo, String> {
    if e.lsn == u64::MAX {
        // No log can follow it: the LSN after a snapshot's is where replay starts.
        return Err(format!("LSN {} leaves no LSN after it", e.lsn));
    }
    if e.dir != snapshot_dir_name(e.lsn) {
        return Err(format!("directory {:?} does not name LSN {}", e.dir, e.lsn));
    }
    let compression = ParquetCompression::from_name(&e.compression)
        .ok_or_else(|| format!("unknown compression {:?}", e.compression))?;
    if e.row_group_rows == 0 {
        return Err("row_group_rows is 0".into());
    }
    if let Some(column) = &e.partition_by
        && (column.is_empty() || !column.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(format!("partition column {column:?} is not a plain name"));
    }
    if e.files.len() > PARTITIONS_LIMIT + 1 {
        return Err(format!("lists {} files", e.files.len()));
    }
    let mut files = Vec::with_capacity(e.files.len());
    for f in e.files {
        let kind = FileKind::from_name(&f.kind)
            .ok_or_else(|| format!("file {:?} has unknown kind {:?}", f.path, f.kind))?;
        check_path(&e.dir, &f.path)?;
        files.push(SnapshotFile { kind, path: f.path, bytes: f.bytes, crc32: f.crc32 });
    }
    let ipc: Vec<_> = files.iter().filter(|f| f.kind == FileKind::ArrowIpc).collect();
    if ipc.len() != 1 || ipc[0].path != format!("{}/data.arrow", e.dir) {
        return Err(format!("must list exactly one Arrow IPC file {}/data.arrow", e.dir));
    }
    if files[0].kind != FileKind::ArrowIpc {
        return Err("the Arrow IPC file must come first".into());
    }
    let parquet: Vec<_> = files.iter().filter(|f| f.kind == FileKind::Parquet).collect();
    match &e.partition_by {
        None if parquet.len() != 1 || parquet[0].path != format!("{}/data.parquet", e.dir) => {
            return Err(format!("must list exactly one Parquet file {}/data.parquet", e.dir));
        }
        Some(column) => {
            let prefix = format!("{}/parquet/{column}=", e.dir);
            if let Some(bad) = parquet
                .iter()
                .find(|f| !f.path.starts_with(&prefix) || !f.path.ends_with("/part-0.parquet"))
            {
                return Err(format!("partition file {:?} is not under {prefix}", bad.path));
            }
        }
        None => {}
    }
    Ok(SnapshotInfo {
        lsn: e.lsn,
        rows: e.rows,
        schema_version: e.schema_version,
        created_unix_ms: e.created_unix_ms,
        newest_event_ms: e.newest_event_ms,
        dir: e.dir,
        compression,
        row_group_rows: e.row_group_rows,
        partition_by: e.partition_by,
        files,
    })
}

/// A file path must stay inside its snapshot's directory: `/`-separated plain names
/// (ASCII letters, digits, `_`, `-`, `.`, `=`), no `.` or `..`, no empty component.
fn check_path(dir: &str, path: &str) -> std::result::Result<(), String> {
    let bad = || format!("file path {path:?} is not a plain path under {dir}/");
    let mut parts = path.split('/');
    if parts.next() != Some(dir) {
        return Err(bad());
    }
    let mut rest = 0;
    for part in parts {
        rest += 1;
        let plain = !part.is_empty()
            && part != "."
            && part != ".."
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.=".contains(&b));
        if !plain {
            return Err(bad());
        }
    }
    if rest == 0 {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(lsn: Lsn, partition_by: Option<&str>) -> SnapshotInfo {
        let dir = snapshot_dir_name(lsn);
        let mut files = vec![SnapshotFile {
            kind: FileKind::ArrowIpc,
            path: format!("{dir}/data.arrow"),
            bytes: 1000 + lsn,
            crc32: 0xdead_beef,
        }];
        match partition_by {
            None => files.push(SnapshotFile {
                kind: FileKind::Parquet,
                path: format!("{dir}/data.parquet"),
                bytes: 500,
                crc32: 7,
            }),
            Some(c) => {
                for v in ["0", "3"] {
                    files.push(SnapshotFile {
                        kind: FileKind::Parquet,
                        path: format!("{dir}/parquet/{c}={v}/part-0.parquet"),
                        bytes: 200,
                        crc32: 9,
                    });
                }
            }
        }
        SnapshotInfo {
            lsn,
            rows: 10 * lsn,
            schema_version: 3,
            created_unix_ms: 1_700_000_000_000,
            newest_event_ms: lsn.is_multiple_of(2).then_some(1_699_999_999_000 + lsn),
            dir,
            compression: ParquetCompression::Snappy,
            row_group_rows: 1_000_000,
            partition_by: partition_by.map(Into::into),
            files,
        }
    }

    fn path() -> &'static Path {
        Path::new("MANIFEST")
    }

    #[test]
    fn header_layout_is_64_bytes_and_round_trips() {
        let list = vec![info(9, Some("kind")), info(5, None)];
        let bytes = encode(&list).unwrap();
        assert_eq!(&bytes[..VERSION_OFFSET], MAGIC);
        assert_eq!(&bytes[VERSION_OFFSET..CRC_TAG_OFFSET], b"00002");
        assert_eq!(bytes[HEADER_BYTES - 1], b'\n');
        assert_eq!(
            decimal(&bytes, LEN_OFFSET, LEN_DIGITS),
            Some((bytes.len() - HEADER_BYTES) as u64)
        );
        assert_eq!(decode(path(), &bytes).unwrap(), list);
    }

    #[test]
    fn every_byte_flip_and_every_cut_is_an_error() {
        let bytes = encode(&[info(2, None)]).unwrap();
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x20, 0x80] {
                let mut damaged = bytes.clone();
                damaged[i] ^= bit;
                match decode(path(), &damaged) {
                    Err(SnapshotError::ManifestCorrupt { offset, .. }) => {
                        assert!(offset as usize <= bytes.len());
                    }
                    Err(SnapshotError::UnsupportedVersion { .. }) => {
                        assert!((VERSION_OFFSET..CRC_TAG_OFFSET).contains(&i));
                    }
                    other => panic!("flip {bit:#x} at {i}: {other:?}"),
                }
            }
        }
        for len in 0..bytes.len() {
            assert!(decode(path(), &bytes[..len]).is_err(), "cut at {len}");
        }
    }

    /// Re-encodes a body with a valid header of `version`, as a hand edit would.
    fn with_body_of(version: u32, body: &str) -> Vec<u8> {
        let mut out = format!(
            "orderlog-manifest v{version:05} crc32={:08x} bytes={:017}\n",
            crc32fast::hash(body.as_bytes()),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }

    fn with_body(body: &str) -> Vec<u8> {
        with_body_of(MANIFEST_VERSION, body)
    }

    #[test]
    fn version_1_is_read_without_event_times_and_refuses_them() {
        let good = String::from_utf8(encode(&[info(3, None)]).unwrap()).unwrap();
        let v1 = good[HEADER_BYTES..].replace("\"version\": 2", "\"version\": 1");
        assert!(!v1.contains("newest_event_ms"), "odd LSNs carry none");
        let decoded = decode(path(), &with_body_of(1, &v1)).unwrap();
        assert_eq!(decoded, [info(3, None)]);
        assert_eq!(decoded[0].newest_event_ms, None);
        // A version 1 body naming an event time was not written by version 1.
        let good = String::from_utf8(encode(&[info(4, None)]).unwrap()).unwrap();
        let v1 = good[HEADER_BYTES..].replace("\"version\": 2", "\"version\": 1");
        assert!(v1.contains("newest_event_ms"));
        match decode(path(), &with_body_of(1, &v1)) {
            Err(SnapshotError::ManifestCorrupt { detail, .. }) => {
                assert!(detail.contains("not part of version 1"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        // Version 3 is not this build's.
        assert!(matches!(
            decode(path(), &with_body_of(3, &good[HEADER_BYTES..])),
            Err(SnapshotError::UnsupportedVersion { found: 3, supported: 2, .. })
        ));
    }

    #[test]
    fn a_checksummed_body_is_still_checked_for_meaning() {
        let good = String::from_utf8(encode(&[info(2, None)]).unwrap()).unwrap();
        let body = &good[HEADER_BYTES..];
        for (from, to) in [
            ("snap-00000000000000000002/data.parquet", "snap-00000000000000000002/../x"),
            ("snap-00000000000000000002/data.parquet", "/etc/passwd"),
            ("\"zstd\"", "\"gzip\""),
            ("\"snappy\"", "\"gzip\""),
            ("\"lsn\": 2", "\"lsn\": 3"),
            ("\"arrow_ipc\"", "\"parquet\""),
            ("\"version\": 2", "\"version\": 1"),
            ("\"newest_event_ms\": 1699999999002", "\"newest_event_ms\": \"x\""),
            ("\"rows\"", "\"rowz\""),
        ] {
            let edited = body.replacen(from, to, 1);
            if edited == body {
                continue;
            }
            match decode(path(), &with_body(&edited)) {
                Err(SnapshotError::ManifestCorrupt { .. }) => {}
                other => panic!("{from} -> {to}: {other:?}"),
            }
        }
        assert!(decode(path(), &with_body("{\"version\": 2, \"snapshots\": []}")).is_err());
        assert!(decode(path(), &with_body("not json")).is_err());
    }

    #[test]
    fn the_largest_lsn_is_refused_not_overflowed() {
        let good = String::from_utf8(encode(&[info(2, None)]).unwrap()).unwrap();
        let body = good[HEADER_BYTES..]
            .replace("\"lsn\": 2", &format!("\"lsn\": {}", u64::MAX))
            .replace("snap-00000000000000000002", &snapshot_dir_name(u64::MAX));
        match decode(path(), &with_body(&body)) {
            Err(SnapshotError::ManifestCorrupt { detail, .. }) => {
                assert!(detail.contains("leaves no LSN after it"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lsns_must_decrease() {
        // The encoder checks its output like a reader would, so it refuses too.
        assert!(matches!(
            encode(&[info(5, None), info(5, None)]),
            Err(SnapshotError::InvalidOptions { .. })
        ));
        assert!(encode(&[info(4, None), info(5, None)]).is_err());
        assert!(encode(&[info(6, None), info(5, None)]).is_ok());
    }

    #[test]
    fn directory_names() {
        assert_eq!(snapshot_dir_name(42), "snap-00000000000000000042");
        assert_eq!(parse_snapshot_dir_name("snap-00000000000000000042"), Some(42));
        assert_eq!(parse_snapshot_dir_name("snap-42"), None);
        assert_eq!(parse_snapshot_dir_name("snap-00000000000000000042.tmp"), None);
        assert_eq!(parse_snapshot_dir_name("snap-0000000000000000004x"), None);
    }
}
