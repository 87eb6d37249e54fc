//! Points in the log a fold can stop at, and why one may not be reachable.

use orderlog_wal::Lsn;

/// The point a fold stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FoldTarget {
    /// Every frame up to and including this LSN (0: the empty state).
    Lsn(Lsn),
    /// Every frame before the first frame holding an event stamped later than this time
    /// (milliseconds since the Unix epoch). Frames are atomic batches and concurrent
    /// writers stamp events before they are ordered, so the fold is the longest log
    /// prefix with no event after the time.
    TimeMs(u64),
}

impl std::fmt::Display for FoldTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FoldTarget::Lsn(lsn) => write!(f, "LSN {lsn}"),
            FoldTarget::TimeMs(ms) => write!(f, "time {ms} ms since the epoch"),
        }
    }
}

/// Why the retained snapshots and log cannot reach a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unreachable {
    /// The point lies beyond the newest LSN held (`last`): it has not been written.
    Future {
        /// The newest LSN the log or a snapshot holds.
        last: Lsn,
    },
    /// No retained snapshot at or below the point is followed by the log up to it.
    NoBase,
    /// The retained log begins after the time, and no retained snapshot is known to end
    /// exactly where the prefix before the time ends.
    TimeBeforeRetainedLog,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreachable::Future { last } => {
                write!(f, "it lies beyond the newest LSN held, {last}")
            }
            Unreachable::NoBase => {
                f.write_str("no retained snapshot at or below it is followed by the log up to it")
            }
            Unreachable::TimeBeforeRetainedLog => f.write_str(
                "the retained log begins after that time, and no retained snapshot is known to \
                 end where the orders of that time end",
            ),
        }
    }
}
