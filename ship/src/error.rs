//! [`ShipError`]: why shipping, verifying or restoring a backup failed.

use std::path::PathBuf;

use orderlog_wal::Lsn;

use crate::index::IndexError;

/// Why shipping, verifying or restoring a backup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipError {
    /// The target URL is not one this build can reach.
    #[error("backup target {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store refused or failed a request (after the retries, if any).
    #[error("{op} {object}: {source}")]
    ObjectStore {
        /// What was being done (`put`, `get`, `list`, ...).
        op: &'static str,
        /// The object (or prefix).
        object: String,
        /// The object store's error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// A request took longer than allowed.
    #[error("{op} {object}: no answer within {timeout_ms} ms")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// The object.
        object: String,
        /// The limit.
        timeout_ms: u64,
    },
    /// Another writer has created the index this one was about to create: two writers
    /// reached one generation, and this one stops shipping into it.
    #[error(
        "index {object} already exists: another writer ships into generation {generation}; \
         this one stops"
    )]
    Fenced {
        /// The generation.
        generation: String,
        /// The index object that exists.
        object: String,
    },
    /// The local log or snapshots no longer follow on from what the generation holds
    /// (a gap: the log was truncated before it was shipped).
    #[error("the local log starts at LSN {local_first}, after the backup's LSN {shipped}")]
    Gap {
        /// The LSN shipped so far.
        shipped: Lsn,
        /// The first LSN the local log holds.
        local_first: Lsn,
    },
    /// An object's bytes are not what the index says.
    #[error("object {object} is damaged at offset {offset}: {reason}")]
    Corrupt {
        /// The object.
        object: String,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An index object is damaged.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The bucket holds no backup under this prefix.
    #[error("no backup at {url}: no generation holds an index")]
    NoBackup {
        /// The target.
        url: String,
    },
    /// The point asked for cannot be restored from what the backup holds.
    #[error("cannot restore to {asked}: {reason}")]
    Unrestorable {
        /// The point asked for.
        asked: String,
        /// What the backup holds instead.
        reason: String,
    },
    /// The restore's output directory exists and is not empty.
    #[error("{path} exists and is not empty: a restore writes a new directory")]
    OutputExists {
        /// The directory.
        path: PathBuf,
    },
    /// The log failed (reading a segment, cutting a piece).
    #[error(transparent)]
    Wal(#[from] orderlog_wal::WalError),
    /// The snapshots failed (reading the manifest or a file).
    #[error(transparent)]
    Snapshot(#[from] orderlog_snapshot::SnapshotError),
    /// Local I/O failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ShipError {
    /// An I/O error on `path`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ShipError {
        let path = path.into();
        move |source| ShipError::Io { op, path, source }
    }

    /// An object store error on `object`.
    pub(crate) fn store(
        op: &'static str,
        object: &str,
    ) -> impl FnOnce(object_store::Error) -> ShipError {
        let object = object.to_owned();
        move |source| ShipError::ObjectStore { op, object, source: Box::new(source) }
    }

    /// Whether retrying later may succeed: the network, the object store, a file the
    /// store removed under the read. A damaged object, a fence or bad input are not.
    pub fn is_transient(&self) -> bool {
        match self {
            ShipError::ObjectStore { source, .. } => !matches!(
                **source,
                object_store::Error::AlreadyExists { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            ),
            ShipError::Timeout { .. } | ShipError::Io { .. } => true,
            _ => false,
        }
    }
}

/// Results of this crate.
pub type Result<T, E = ShipError> = std::result::Result<T, E>;
