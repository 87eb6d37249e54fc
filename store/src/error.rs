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
    /// A subscription or a consumer was refused or failed.
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// A backup target could not be opened, or shipping, restoring or a replica failed.
    #[error(transparent)]
    Replication(#[from] orderlog_ship::ShipError),
    /// The backup a replica follows no longer continues the replica's log (another
    /// history was restored and shipped): the replica stops following; re-create it.
    #[error("the replica's log diverges from its backup at LSN {lsn}: {reason}")]
    ReplicaDiverged {
        /// The LSN where they part.
        lsn: orderlog_wal::Lsn,
        /// How.
        reason: String,
    },
    /// `promote` on a store that is not a replica.
    #[error("the store at {dir} is not a read replica")]
    NotAReplica {
        /// Its directory.
        dir: std::path::PathBuf,
    },
    /// Promotion could not fence the primary: it kept shipping new indexes.
    #[error(
        "the primary still ships into generation {generation} ({attempts} attempts to fence it): stop it, then promote"
    )]
    PrimaryStillShipping {
        /// The generation.
        generation: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The store is a read replica: it refuses writes.
    #[error(
        "the store at {dir} is a read replica of {target}: it refuses writes (promote it first)"
    )]
    ReadOnlyReplica {
        /// The replica's directory.
        dir: std::path::PathBuf,
        /// The backup it follows.
        target: String,
    },
    /// An analytics query or view failed; the store is unaffected.
    #[cfg(feature = "analytics")]
    #[error(transparent)]
    Analytics(#[from] crate::analytics::AnalyticsError),
}

/// Why a subscription or a consumer was refused or failed ([`crate::OrderStore::subscribe`],
/// [`crate::OrderStore::consumer`]). Nothing was written unless the variant says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// No consumer of that name is registered.
    #[error("no consumer named {name:?} is registered")]
    UnknownConsumer {
        /// The name asked for.
        name: String,
    },
    /// A consumer name that cannot be used (it names a file).
    #[error("invalid consumer name {name:?}: {reason}")]
    InvalidConsumerName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A subscription from an LSN the log has not reached.
    #[error("cannot subscribe from LSN {requested}: the log's last LSN is {last_lsn}")]
    FutureLsn {
        /// The LSN asked for.
        requested: Lsn,
        /// The log's last LSN (a subscription may start at the one after it).
        last_lsn: Lsn,
    },
    /// A filter that can match nothing (it names no event kind, or no order).
    #[error("the filter names no {what}: it would match nothing")]
    EmptyFilter {
        /// `event kind` or `order`.
        what: &'static str,
    },
    /// The subscription asked for the log itself (`require_log`), and the log no longer
    /// holds its position: a compaction truncated it.
    #[error(
        "the log no longer holds LSN {from} (it begins at LSN {first_lsn}), and the subscription requires the log, not a snapshot in its place"
    )]
    LogTruncated {
        /// The position asked for.
        from: Lsn,
        /// The log's first retained LSN.
        first_lsn: Lsn,
    },
    /// An acknowledgement of an LSN not yet durable (or never written).
    #[error("cannot acknowledge LSN {lsn}: only LSNs up to {durable_lsn} are durable")]
    AckBeyondDurable {
        /// The LSN acknowledged.
        lsn: Lsn,
        /// The log's durable LSN.
        durable_lsn: Lsn,
    },
    /// A consumer's file is damaged.
    #[error("consumer file {} is damaged at offset {offset}: {reason}", .file.display())]
    CorruptConsumer {
        /// The file.
        file: std::path::PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a consumer's file failed.
    #[error("{doing} consumer file {}: {source}", .path.display())]
    ConsumerIo {
        /// What was being done.
        doing: &'static str,
        /// The file (or the consumers' directory).
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier acknowledgement of this consumer could not be made durable: its
    /// position on disk is unknown until the store is reopened.
    #[error(
        "consumer {name:?} refuses acknowledgements: an earlier one could not be made durable ({cause}); reopen the store"
    )]
    ConsumerFailed {
        /// The consumer.
        name: String,
        /// The failure.
        cause: String,
    },
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
