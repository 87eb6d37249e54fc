//! Entry points for the fuzz targets in `fuzz/` and their replay tests.
//!
//! Each function runs one decoder of this crate on arbitrary bytes and checks what its
//! result promises; a broken promise panics, which is what a fuzzer reports. Garbage must
//! come back as a typed error naming the offset, never as a panic.

use std::path::{Path, PathBuf};

use arrow::array::{Array, RecordBatch};
use arrow::buffer::{Buffer, MutableBuffer};
use bytes::Bytes;
use parquet::file::metadata::ParquetMetaDataReader;

use crate::error::SnapshotError;
use crate::info::SnapshotInfo;
use crate::manifest::{HEADER_BYTES, MANIFEST_FILE, MANIFEST_VERSION, decode, encode};
use crate::parquet_file::READ_BATCH_ROWS;
use crate::{ipc, parquet_file};

#[cfg(test)]
mod seed_corpus;

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

/// Runs the Arrow IPC decoder (`data.arrow`) on arbitrary bytes, in one aligned buffer as
/// the store and [`crate::read_ipc_file`] read a file.
///
/// Checked: an error is `FileCorrupt` naming the file, at an offset inside it; a file
/// that decodes has its footer inside the input after the leading magic, every batch has
/// the file's schema, every column the batch's length and the schema's type, and every
/// array is valid (`ArrayData::validate_full`). Returns the number of rows decoded.
pub fn decode_ipc(data: &[u8]) -> usize {
    let (path, map) = map_input(data, "arrow");
    match ipc::decode(&path, map) {
        Ok(contents) => {
            let footer = contents.footer_offset;
            assert!(
                (8..data.len() as u64).contains(&footer),
                "footer offset {footer} outside the {} bytes",
                data.len()
            );
            for batch in &contents.batches {
                assert_eq!(batch.schema(), contents.schema, "a batch with another schema");
            }
            check_batches(&contents.batches)
        }
        Err(e) => check_file_error(&path, e, data.len()),
    }
}

/// Runs the Parquet reader on arbitrary bytes (a `data.parquet` or a partition's
/// `part-0.parquet`), in one aligned buffer as the store and [`crate::read_parquet_file`]
/// read a file.
///
/// Checked: an error is `FileCorrupt` naming the file, at an offset inside it; in a file
/// that reads, every batch has the first one's schema and at most the reader's batch
/// size of rows, every column the batch's length and the schema's type, every array is
/// valid, and the rows read are the rows the file's row groups say they hold. Returns the
/// number of rows read.
pub fn decode_parquet(data: &[u8]) -> usize {
    let (path, map) = map_input(data, "parquet");
    match parquet_file::read(&path, map) {
        Ok(batches) => {
            if let Some(first) = batches.first() {
                for batch in &batches {
                    assert_eq!(batch.schema(), first.schema(), "a batch with another schema");
                    assert!(
                        batch.num_rows() <= READ_BATCH_ROWS,
                        "a batch of {} rows",
                        batch.num_rows()
                    );
                }
            }
            let rows = check_batches(&batches);
            match ParquetMetaDataReader::new().parse_and_finish(&Bytes::copy_from_slice(data)) {
                Ok(meta) => {
                    let said = meta
                        .row_groups()
                        .iter()
                        .try_fold(0i64, |sum, g| sum.checked_add(g.num_rows()));
                    assert_eq!(
                        i64::try_from(rows).ok(),
                        said,
                        "{rows} rows read, the row groups say {said:?}"
                    );
                }
                Err(e) => panic!("a file that reads has metadata that does not parse: {e}"),
            }
            rows
        }
        Err(e) => check_file_error(&path, e, data.len()),
    }
}

/// Checks each batch's columns against its schema and row count; returns the rows.
fn check_batches(batches: &[RecordBatch]) -> usize {
    let mut rows = 0;
    for batch in batches {
        let schema = batch.schema();
        assert_eq!(batch.num_columns(), schema.fields().len(), "columns != fields");
        for (column, field) in batch.columns().iter().zip(schema.fields()) {
            assert_eq!(column.len(), batch.num_rows(), "column {} length", field.name());
            assert_eq!(column.data_type(), field.data_type(), "column {} type", field.name());
            if let Err(e) = column.to_data().validate_full() {
                panic!("column {} decoded invalid: {e}", field.name());
            }
        }
        rows += batch.num_rows();
    }
    rows
}

/// A snapshot file's decoder must fail with `FileCorrupt` naming `path`, at an offset
/// inside its `len` bytes.
fn check_file_error(path: &Path, error: SnapshotError, len: usize) -> usize {
    match error {
        SnapshotError::FileCorrupt { path: named, offset, .. } => {
            assert_eq!(named, path, "the error names another file");
            assert!(offset <= len as u64, "offset {offset} beyond {len} bytes");
            0
        }
        other => panic!("the decoder returned an untyped error: {other}"),
    }
}

/// `data` in a 64-byte aligned buffer, as a snapshot file is read, with the path errors
/// must name.
fn map_input(data: &[u8], extension: &str) -> (PathBuf, Buffer) {
    let mut buffer = MutableBuffer::from_len_zeroed(data.len());
    buffer.as_slice_mut().copy_from_slice(data);
    (PathBuf::from(format!("input.{extension}")), buffer.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_empty_inputs_are_errors() {
        assert_eq!(decode_manifest(&[]), 0);
        assert_eq!(decode_manifest(b"{}"), 0);
        assert_eq!(decode_manifest(&[0xff; 100]), 0);
        for entry in [decode_ipc, decode_parquet] {
            assert_eq!(entry(&[]), 0);
            assert_eq!(entry(b"ARROW1\0\0ARROW1"), 0);
            assert_eq!(entry(b"PAR1\0\0\0\0PAR1"), 0);
            assert_eq!(entry(&[0xff; 100]), 0);
        }
    }

    #[test]
    fn a_body_behind_a_valid_header_reaches_the_meaning_checks() {
        let body = br#"{"version": 2, "snapshots": [{"lsn": 3, "rows": 0, "schema_version": 1,
            "created_unix_ms": 0, "newest_event_ms": 0, "dir": "snap-00000000000000000003", "compression": "none",
            "row_group_rows": 1, "partition_by": null, "files": [
            {"kind": "arrow_ipc", "path": "snap-00000000000000000003/data.arrow", "bytes": 1, "crc32": 2},
            {"kind": "parquet", "path": "snap-00000000000000000003/data.parquet", "bytes": 3, "crc32": 4}
            ]}]}"#;
        assert_eq!(decode_manifest(body), 1);
    }
}
