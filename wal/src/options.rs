//! Options for opening a log.

use std::time::Duration;

use crate::error::{Result, WalError};
use crate::format::FRAMES_OFFSET;

/// When appended frames are made durable, and when `append` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// `append` returns only after an `msync(MS_SYNC)` covering the frame returned Ok.
    /// Concurrent writers share one sync (group commit).
    Always,
    /// `append` returns at once; a background thread syncs every interval. A crash can
    /// lose the frames appended during the last interval (plus the sync's own duration).
    Interval(Duration),
    /// Frames are synced only by an explicit [`crate::Wal::sync`], a segment roll, or close.
    Never,
}

/// How recovery treats a frame that fails validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Any bad frame, and any non-zero byte after the end of the log, is an error
    /// naming file and offset.
    Strict,
    /// A bad frame is accepted only at the tail of the last segment, after the last
    /// checkpointed durable offset (the only place a crash can leave one); the tail is
    /// zeroed and the truncation reported. A bad frame among durable frames is corruption.
    #[default]
    TolerateTornTail,
    /// Recovery stops at the first bad frame anywhere and discards everything after it
    /// (reported), recovering the log to the last consistent point.
    PointInTime,
}

pub use orderlog_storage::IoBackend;

/// Options for [`crate::Wal::open`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Size of each segment file, preallocated on creation. Default 64 MiB.
    pub segment_bytes: u64,
    /// Largest payload of a single frame. Default 16 MiB (capped to fit one segment).
    pub frame_bytes_max: usize,
    /// Most frames in one atomic group. Default 65,536.
    pub batch_frames_max: usize,
    /// Most encoded bytes in one atomic group. Default 32 MiB (capped at one segment).
    pub batch_bytes_max: u64,
    /// When appends become durable.
    pub sync_policy: SyncPolicy,
    /// How recovery treats bad frames.
    pub recovery_mode: RecoveryMode,
    /// How frames are written and synced ([`crate::Wal::open`] only; storage passed to
    /// [`crate::Wal::open_with`] decides for itself). `None` (the default): the fastest
    /// safe choice for the sync policy, [`WalOptions::backend`].
    pub io_backend: Option<IoBackend>,
    /// Most payload bytes of recent frames kept in memory for followers
    /// ([`crate::Wal::follow`]) while one lives; a follower further behind reads from
    /// disk. Default 16 MiB.
    pub follow_cache_bytes: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            frame_bytes_max: 16 << 20,
            batch_frames_max: 65_536,
            batch_bytes_max: 32 << 20,
            sync_policy: SyncPolicy::Always,
            recovery_mode: RecoveryMode::TolerateTornTail,
            io_backend: None,
            follow_cache_bytes: 16 << 20,
        }
    }
}

/// Hard ceiling on the segment size: offsets inside a segment fit comfortably in `usize`
/// on 64-bit targets, and a mapping of this size is cheap to reserve.
pub const SEGMENT_BYTES_LIMIT: u64 = 1 << 34;

/// Smallest allowed segment: the header page plus one page of frames.
pub const SEGMENT_BYTES_MIN: u64 = FRAMES_OFFSET + 4096;

/// Hard ceiling on one frame's payload: the length field keeps its top bit for flags.
pub const FRAME_BYTES_LIMIT: usize = (1 << 30) - 1;

impl WalOptions {
    /// The I/O backend used: the one asked for, or by default the one the sync policy
    /// favours. Under `Always` every commit syncs, and `pwrite` + `fdatasync` commits
    /// faster ([`IoBackend::Pwrite`]: no mapped page to write-protect at each sync, no
    /// unwritten extent to convert; docs/benchmarks.md); with `Interval` or `Never` syncs
    /// are rare and copying into the mapping saves a system call per append
    /// ([`IoBackend::Mmap`]).
    pub fn backend(&self) -> IoBackend {
        self.io_backend.unwrap_or(match self.sync_policy {
            SyncPolicy::Always => IoBackend::Pwrite,
            SyncPolicy::Interval(_) | SyncPolicy::Never => IoBackend::Mmap,
        })
    }

    /// The largest payload that can be appended: the configured maximum, or less if a
    /// frame that large would not fit in one segment.
    pub fn frame_bytes_limit(&self) -> usize {
        let room = self
            .segment_bytes
            .saturating_sub(FRAMES_OFFSET + crate::format::FRAME_HEADER_BYTES as u64);
        self.frame_bytes_max.min((room & !7) as usize)
    }

    /// The most encoded bytes one group may take: the configured maximum, or one
    /// segment's frame space if that is smaller (a group never spans segments).
    pub fn batch_bytes_limit(&self) -> u64 {
        self.batch_bytes_max.min(self.segment_bytes.saturating_sub(FRAMES_OFFSET))
    }

    /// Checks every limit against the others; returns the first violation.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(WalError::InvalidOptions(why));
        if self.segment_bytes < SEGMENT_BYTES_MIN || self.segment_bytes > SEGMENT_BYTES_LIMIT {
            return bad(format!(
                "segment_bytes {} outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_LIMIT}",
                self.segment_bytes
            ));
        }
        if !self.segment_bytes.is_multiple_of(4096) {
            return bad(format!("segment_bytes {} is not a multiple of 4096", self.segment_bytes));
        }
        if self.frame_bytes_max == 0 || self.frame_bytes_max > FRAME_BYTES_LIMIT {
            return bad(format!(
                "frame_bytes_max {} outside 1..={FRAME_BYTES_LIMIT}",
                self.frame_bytes_max
            ));
        }
        if self.batch_frames_max == 0 {
            return bad("batch_frames_max must be at least 1".into());
        }
        if self.batch_bytes_max == 0 {
            return bad("batch_bytes_max must be at least 1".into());
        }
        if let SyncPolicy::Interval(d) = self.sync_policy
            && d.is_zero()
        {
            return bad("sync interval must be positive".into());
        }
        Ok(())
    }
}
