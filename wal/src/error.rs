//! The WAL's error type.
//!
//! One enum for the crate: callers match on the variant that concerns them
//! (`Poisoned`, `Locked`, `Corruption`, the size limits) and treat the rest as I/O.

use std::io;
use std::path::PathBuf;

use crate::Lsn;

/// Why a [`WalError::Corruption`] was reported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The segment header's magic, version, checksum or fields are wrong.
    BadSegmentHeader(String),
    /// A frame's checksum does not match its bytes (or the chain from its predecessor).
    ChecksumMismatch {
        /// The checksum stored in the frame.
        stored: u32,
        /// The checksum computed over the frame's bytes and chain seed.
        computed: u32,
    },
    /// A frame header declares a length that cannot be right.
    BadFrameLength(u32),
    /// A frame carries the wrong LSN for its place in the log.
    LsnGap {
        /// The LSN the log expected next.
        expected: Lsn,
        /// The LSN the frame carries.
        found: Lsn,
    },
    /// A frame carries an LSN no log can reach: `Lsn::MAX`, which has no successor.
    LsnOutOfRange(Lsn),
    /// Bytes that must be unwritten (zero) are not.
    UnexpectedBytes,
    /// The log ends before data its checkpoint says was durable.
    DurableDataMissing {
        /// The offset up to which the checkpoint says frames were durable.
        durable_end: u64,
    },
    /// A segment that is followed by another one was not sealed.
    UnsealedSegment,
    /// A frame group is not closed by its last frame.
    OpenGroup,
    /// The file is shorter than the size its header says it was preallocated to
    /// (a crash never shortens a segment: something cut it).
    FileTooShort {
        /// The file's length.
        len: u64,
        /// The length its header declares.
        expected: u64,
    },
    /// The file is longer than its header says it was preallocated to (or than any
    /// segment may be, before its header is read): a segment never grows.
    FileTooLong {
        /// The file's length.
        len: u64,
        /// The most it may hold.
        expected: u64,
    },
}

impl std::fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadSegmentHeader(why) => write!(f, "bad segment header: {why}"),
            Self::ChecksumMismatch { stored, computed } => {
                write!(f, "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
            Self::BadFrameLength(len) => write!(f, "impossible frame length {len}"),
            Self::LsnGap { expected, found } => {
                write!(f, "LSN discontinuity (expected {expected}, found {found})")
            }
            Self::LsnOutOfRange(lsn) => write!(f, "LSN {lsn} is out of range (no successor)"),
            Self::UnexpectedBytes => write!(f, "non-zero bytes where the log must be unwritten"),
            Self::DurableDataMissing { durable_end } => {
                write!(f, "log ends before its checkpointed durable end {durable_end}")
            }
            Self::UnsealedSegment => write!(f, "segment followed by another was never sealed"),
            Self::OpenGroup => write!(f, "frame group without its closing frame"),
            Self::FileTooShort { len, expected } => {
                write!(f, "file is {len} bytes, its header declares {expected}")
            }
            Self::FileTooLong { len, expected } => {
                write!(f, "file is {len} bytes, longer than the {expected} a segment may hold")
            }
        }
    }
}

/// Errors returned by the write-ahead log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An I/O operation failed.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file system is full; nothing was written and the log stays usable.
    #[error("no space left on device while {op} {}", path.display())]
    NoSpace {
        /// What the log was doing.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
    },
    /// An earlier sync or write failed; the log refuses all further work until reopened.
    #[error("log is poisoned by an earlier failure ({cause}); reopen it to recover")]
    Poisoned {
        /// The failure that poisoned the log.
        cause: String,
    },
    /// Another `Wal` (in this or another process) holds the directory's lock.
    #[error("log directory {} is locked by another writer", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// A payload exceeds the configured maximum frame size; nothing was written.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The payload's length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A group exceeds the configured batch limits; nothing was written.
    #[error(
        "batch of {frames} frames / {bytes} bytes exceeds the maximum of {max_frames} frames / {max_bytes} bytes"
    )]
    BatchTooLarge {
        /// Frames in the batch.
        frames: usize,
        /// Encoded bytes of the batch.
        bytes: u64,
        /// The configured frame-count limit.
        max_frames: usize,
        /// The configured byte limit.
        max_bytes: u64,
    },
    /// An empty group was appended.
    #[error("cannot append an empty batch")]
    EmptyBatch,
    /// The on-disk log is damaged.
    #[error("corruption in {} at offset {offset}: {kind}", file.display())]
    Corruption {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the damage within that file.
        offset: u64,
        /// What is wrong.
        kind: CorruptionKind,
    },
    /// An option is out of its allowed range.
    #[error("invalid option: {0}")]
    InvalidOptions(String),
    /// The requested LSN is not in the log (already truncated, or not yet written).
    #[error("LSN {requested} is not in the log (available: {first}..={last})")]
    LsnOutOfRange {
        /// The LSN asked for.
        requested: Lsn,
        /// The first LSN still in the log.
        first: Lsn,
        /// The last LSN written.
        last: Lsn,
    },
    /// The log was closed.
    #[error("log is closed")]
    Closed,
}

impl WalError {
    /// Wraps an I/O error, mapping `ENOSPC` to [`WalError::NoSpace`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ENOSPC)
            || source.kind() == io::ErrorKind::StorageFull
        {
            WalError::NoSpace { op, path }
        } else {
            WalError::Io { op, path, source }
        }
    }

    /// True when the error is [`WalError::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, WalError::Corruption { .. })
    }
}

/// Result alias for the crate.
pub type Result<T, E = WalError> = std::result::Result<T, E>;
