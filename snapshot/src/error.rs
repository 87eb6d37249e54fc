//! The snapshot crate's error type.

use std::io;
use std::path::PathBuf;

use arrow::datatypes::DataType;

use crate::info::{PublishStep, SkippedSnapshot};

/// Errors from conversion, snapshot files and the manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A batch's schema does not match the type's schema.
    #[error("schema mismatch in column {column:?}: {detail}")]
    SchemaMismatch {
        /// The column concerned (or the expected one, if a column is missing).
        column: String,
        /// What differs.
        detail: String,
    },
    /// A column's data type is not the one expected.
    #[error("column {column:?} has type {found}, expected {expected}")]
    WrongType {
        /// The column.
        column: String,
        /// The type the schema requires.
        expected: DataType,
        /// The type found.
        found: DataType,
    },
    /// A value cannot be represented in the in-memory type (e.g. an unknown enum byte).
    #[error("invalid value in column {column:?} at row {row}: {detail}")]
    InvalidValue {
        /// The column.
        column: String,
        /// The row.
        row: usize,
        /// What is wrong.
        detail: String,
    },
    /// An Arrow operation failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A Parquet operation failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// An I/O operation failed.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A snapshot file failed verification or decoding: wrong size, wrong CRC-32, or
    /// bytes that do not decode. `offset` is where the damage was found (for a checksum
    /// mismatch: 0, the start of the range the checksum covers).
    #[error("snapshot file {} damaged at offset {offset}: {detail}", path.display())]
    FileCorrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset in the file.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// The `MANIFEST` file is damaged or not a manifest. No snapshot can be trusted.
    #[error("manifest {} damaged at offset {offset}: {detail}", path.display())]
    ManifestCorrupt {
        /// The manifest file.
        path: PathBuf,
        /// Byte offset in the file.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// The manifest was written by a newer (or unknown) format version.
    #[error(
        "manifest {} has format version {found}; this build reads version {supported}",
        path.display()
    )]
    UnsupportedVersion {
        /// The manifest file.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The manifest lists snapshots but none of them verified. Every one is listed with
    /// the reason it was skipped, newest first.
    #[error("no valid snapshot: all {} listed are damaged{}", skipped.len(), first(skipped))]
    NoValidSnapshot {
        /// The snapshots skipped, newest first.
        skipped: Vec<SkippedSnapshot>,
    },
    /// A snapshot must have a higher LSN than the newest one published.
    #[error("snapshot LSN {lsn} is not above the newest published LSN {newest}")]
    StaleLsn {
        /// The LSN asked for.
        lsn: u64,
        /// The newest LSN in the manifest.
        newest: u64,
    },
    /// The options cannot be used (a zero size, an unknown partition column, ...).
    #[error("invalid snapshot options: {detail}")]
    InvalidOptions {
        /// What is wrong.
        detail: String,
    },
    /// The partition column cannot partition this state (its type, or too many values).
    #[error("cannot partition by column {column:?}: {detail}")]
    Partition {
        /// The partition column.
        column: String,
        /// What is wrong.
        detail: String,
    },
    /// Another `SnapshotStore` holds the directory's writer lock.
    #[error("snapshot directory {} is locked by another writer", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The store was opened read-only and cannot publish.
    #[error("snapshot store {} is open read-only", path.display())]
    ReadOnly {
        /// The snapshot directory.
        path: PathBuf,
    },
    /// A publish hook stopped the publish after `step` (tests use this to simulate a
    /// crash between steps).
    #[error("publish stopped by its hook after step {step}")]
    Stopped {
        /// The last step completed.
        step: PublishStep,
    },
}

/// The newest skipped snapshot, for the `NoValidSnapshot` message.
fn first(skipped: &[SkippedSnapshot]) -> String {
    skipped.first().map(|s| format!("; newest: {s}")).unwrap_or_default()
}

/// Result alias for the crate.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

impl SnapshotError {
    /// Whether the error means "this snapshot is damaged, gone or unreadable": a reader
    /// skips such a snapshot for an older one (and says so). A file the device cannot
    /// read (`EIO`) is as lost as a damaged one. Anything else (a schema the caller's
    /// type does not match, a value it refuses, a lock, bad options) is not damage.
    pub fn is_damage(&self) -> bool {
        match self {
            SnapshotError::FileCorrupt { .. } => true,
            SnapshotError::Io { source, .. } => {
                matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
                ) || source.raw_os_error() == Some(EIO)
            }
            _ => false,
        }
    }
}

/// Linux's `EIO`: the device could not read (or write) the data.
const EIO: i32 = 5;
