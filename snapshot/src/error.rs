//! The snapshot crate's error type.

use std::io;
use std::path::PathBuf;

use arrow::datatypes::DataType;

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
}

/// Result alias for the crate.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;
