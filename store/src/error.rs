//! The store's error type.

use orderlog_snapshot::SnapshotError;
use orderlog_wal::{Lsn, WalError};

use crate::domain::DomainError;
use crate::events::DecodeError;
use crate::point::{FoldTarget, Unreachable};
use crate::state::{MutationError, ReserveError};

/// Errors from the order store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The mutation was refused; nothing was written and the state is unchanged.
    #[error(transparent)]
    Mutation(#[from] MutationError),
    /// The write-ahead log failed (I/O, poisoned, locked, corrupt).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A snapshot or the manifest failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A logged batch cannot be decoded.
    #[error("log frame at LSN {lsn} cannot be decoded: {source}")]
    Decode {
        /// The frame's LSN.
        lsn: Lsn,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// A logged batch does not apply to the state it follows: the log is not what this
    /// store wrote.
    #[error("log frame at LSN {lsn} does not apply during replay: {source}")]
    Replay {
        /// The frame's LSN.
        lsn: Lsn,
        /// Why.
        #[source]
        source: MutationError,
    },
    /// The log does not hold the frames that follow the snapshot (segments missing, or the
    /// log is behind the snapshot): the state cannot be rebuilt.
    #[error(
        "the log (LSNs {first_lsn}..={last_lsn}) does not continue the snapshot at LSN {snapshot_lsn}{}",
        describe_recovery(.cut.as_ref(), .discarded_segments)
    )]
    LogDoesNotContinueSnapshot {
        /// The snapshot's LSN.
        snapshot_lsn: Lsn,
        /// The log's first LSN.
        first_lsn: Lsn,
        /// The log's last LSN.
        last_lsn: Lsn,
        /// Where the log's recovery cut it, if it did (the damage that shortened it).
        cut: Option<orderlog_wal::Truncation>,
        /// Segments the log's recovery set aside (`PointInTime`).
        discarded_segments: Vec<std::path::PathBuf>,
    },
    /// A point (an LSN or a time) that the retained snapshots and log cannot reach:
    /// beyond the newest LSN held, or before what the directory keeps. The store, its
    /// analytics and the offline tool all answer with this one error.
    #[error(
        "cannot reach {target}: {why} (the log holds LSNs {log_first_lsn}..={log_last_lsn}, snapshots at LSNs {snapshot_lsns:?})"
    )]
    Unreachable {
        /// The point asked for.
        target: FoldTarget,
        /// Why it cannot be reached.
        why: Unreachable,
        /// The log's first retained LSN.
        log_first_lsn: Lsn,
        /// The log's last LSN.
        log_last_lsn: Lsn,
        /// The LSNs of the snapshots the manifest lists, newest first.
        snapshot_lsns: Vec<Lsn>,
    },
    /// Room for more orders was refused; nothing changed.
    #[error(transparent)]
    Reserve(#[from] ReserveError),
    /// A background thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(String),
    /// An analytics query or view failed; the store is unaffected.
    #[cfg(feature = "analytics")]
    #[error(transparent)]
    Analytics(#[from] crate::analytics::AnalyticsError),
}

/// Result alias for the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What the log's recovery cut or set aside, as a clause for an error message.
fn describe_recovery(
    cut: Option<&orderlog_wal::Truncation>,
    discarded: &[std::path::PathBuf],
) -> String {
    let mut out = String::new();
    if let Some(cut) = cut {
        out += &format!(
            "; its recovery cut it at {} offset {} ({} at offset {})",
            cut.file.display(),
            cut.offset,
            cut.reason,
            cut.damage_offset
        );
    }
    if !discarded.is_empty() {
        let names: Vec<String> = discarded.iter().map(|p| p.display().to_string()).collect();
        out += &format!("; segments set aside: {}", names.join(", "));
    }
    out
}

/// A value the domain refuses (an order's builder, say) is a refused mutation: nothing
/// was written.
impl From<DomainError> for StoreError {
    fn from(e: DomainError) -> Self {
        StoreError::Mutation(MutationError::Domain(e))
    }
}
