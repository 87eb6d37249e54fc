//! The error type of the persistence API.

use std::io;
use std::path::PathBuf;

use orderlog_snapshot::SnapshotError;

use orderlog_store::StoreError;
use orderlog_store::domain::DomainError;

/// Errors from the persistence API (this crate).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistenceError {
    /// DuckDB failed (the DuckDB backend), or a table or column name is not a plain
    /// identifier.
    #[cfg(feature = "duckdb")]
    #[error(transparent)]
    Database(#[from] orderlog_store::analytics::AnalyticsError),
    /// The order was refused by the in-memory domain store (invalid value, duplicate id);
    /// nothing was stored.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Converting between the struct of arrays and Arrow failed (schema, value), or a
    /// Parquet file could not be written.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// An Arrow kernel (filter, concatenation) failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A file-system operation failed.
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
    /// A stored file is damaged: wrong size or checksum, not decodable, or not what its
    /// part's description says. Nothing was returned from it.
    #[error("stored file {} is damaged: {detail}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
        /// The decoder's error, when a decoder found the damage.
        #[source]
        source: Option<SnapshotError>,
    },
    /// Another writer holds the directory's `LOCK` (one writer per directory).
    #[error("{} is locked by another writer", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// An earlier write may or may not have become durable (a directory sync failed after
    /// the part was renamed into place): this handle refuses further writes. Open a new
    /// handle on the directory to see what is on disk.
    #[error("the backend is poisoned by an earlier failure: {detail}")]
    Poisoned {
        /// The earlier failure.
        detail: String,
    },
    /// The durable event-sourced store refused or failed (event-sourced backend).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Result alias of the persistence API.
pub type Result<T, E = PersistenceError> = std::result::Result<T, E>;

/// Wraps an I/O error with what was being done and where.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> PersistenceError {
    let path = path.into();
    move |source| PersistenceError::Io { op, path, source }
}
