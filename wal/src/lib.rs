//! `orderlog-wal`: a segmented, memory-mapped, checksummed write-ahead log of opaque
//! byte frames with monotonically increasing LSNs.
//!
//! What it is:
//! - Frames are appended into preallocated, memory-mapped segment files and made durable
//!   with `msync(MS_SYNC)`; concurrent writers share one sync (group commit), from
//!   threads ([`Wal::append`]) or tokio tasks ([`Wal::append_async`]).
//! - Every frame carries a CRC chained from its predecessor and the segment's random salt;
//!   recovery validates every header, checksum and LSN, tells a torn tail from corruption,
//!   and reports what it cut ([`RecoveryReport`]).
//! - A group of frames appended with [`Wal::append_batch`] is atomic across crashes.
//! - A failed sync poisons the log: every later call returns [`WalError::Poisoned`].
//!
//! What it is not: it never interprets payloads, never retries a failed sync, and is
//! not a multi-process log: one `Wal` per directory (an exclusive lock file enforces it).
//!
//! Limits: a frame's payload is at most [`WalOptions::frame_bytes_max`] (hard ceiling
//! [`options::FRAME_BYTES_LIMIT`], 1 GiB − 1); a group at most
//! [`WalOptions::batch_frames_max`] frames and [`WalOptions::batch_bytes_max`] bytes, and
//! always within one segment. The byte layout is in `docs/format.md` and [`format`].
//!
//! ```
//! use orderlog_wal::{Wal, WalOptions};
//! # fn main() -> Result<(), orderlog_wal::WalError> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let opts = WalOptions { segment_bytes: 1 << 20, ..WalOptions::default() };
//! let wal = Wal::open(dir.path(), opts.clone())?;
//! let first = wal.append(b"order 1 created")?; // durable when this returns
//! wal.append_batch(&[b"order 2 created", b"order 2 paid"])?; // atomic
//! wal.close()?;
//! drop(wal);
//!
//! let wal = Wal::open(dir.path(), opts)?;
//! let payloads: Vec<Vec<u8>> =
//!     wal.iter_from(first)?.map(|f| f.map(|f| f.payload().to_vec())).collect::<Result<_, _>>()?;
//! assert_eq!(payloads.len(), 3);
//! # Ok(()) }
//! ```

mod commit;
mod error;
mod follow;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
mod iter;
pub mod options;
pub mod piece;
pub mod reader;
mod recovery;
mod scan;
mod wal;

/// A log sequence number: the position of a frame in the log, starting at 1.
pub type Lsn = u64;

pub use error::{CorruptionKind, Result, WalError};
pub use follow::{Followed, LogFollower};
pub use iter::{Frame, ReadLog, WalIter};
pub use options::{IoBackend, RecoveryMode, SyncPolicy, WalOptions};
/// The storage door the log writes through (the `orderlog-storage` crate).
pub use orderlog_storage as storage;
pub use orderlog_storage::killpoint::{self, KillPoint};
pub use reader::{
    Finding, FindingKind, LockState, LogReader, LogTail, LogVerification, SegmentSummary, Severity,
    verify_log, writer_lock_state,
};
pub use recovery::{RecoveryReport, Truncation};
pub use wal::{LockedLog, RecoveredLog, Wal, WalStats};
