//! Named kill points: moments inside a write, a sync, a segment roll, a truncation or a
//! compaction at which a crash test can stop the store, by name.
//!
//! The log (and the store's compactor, through the log's `Wal::kill_point`) passes each
//! point to its [`Storage`](crate::Storage):
//! - the real storage kills the process there (`abort`, no unwinding, no destructors)
//!   when the environment variable `ORDERLOG_KILL_POINT` names the point: `<name>` at
//!   its first passage, `<name>@<n>` at its n-th (from 1). A name that is not a kill
//!   point aborts at the first point passed, with the list of names, so a misspelt
//!   crash test fails loudly instead of passing without crashing;
//! - the simulated disk "dies" there when armed with
//!   [`SimStorage::crash_at`](crate::SimStorage::crash_at): that operation and
//!   every later one fail, as after a crash.
//!
//! Passing a kill point costs one relaxed atomic load when none is armed.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A named moment at which a crash test may stop the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KillPoint {
    /// A group of frames is in the segment, not yet synced (nothing acknowledged).
    AppendWritten,
    /// A sync covering written frames returned; their writers are not yet told.
    SyncDone,
    /// A new segment file is created and stamped, not yet synced or named.
    SegmentCreated,
    /// A new segment is durable under its name; no frame is in it yet.
    SegmentReady,
    /// A segment below a snapshot is deleted; the directory is not yet synced.
    SegmentRemoved,
    /// Compaction: the snapshot's files are written in its temporary directory.
    SnapshotFilesWritten,
    /// Compaction: those files and their directories are synced.
    SnapshotFilesSynced,
    /// Compaction: the snapshot's directory has its final name, durably.
    SnapshotDirRenamed,
    /// Compaction: the new manifest is written to `MANIFEST.tmp`, not synced.
    ManifestTempWritten,
    /// Compaction: `MANIFEST.tmp` is synced.
    ManifestSynced,
    /// Compaction: `MANIFEST.tmp` is renamed over `MANIFEST`; the directory not synced.
    ManifestRenamed,
    /// Compaction: the new manifest is durable; older snapshots not yet deleted.
    ManifestDurable,
    /// Compaction: the snapshot is published and older ones deleted; the log segments
    /// it covers are not yet deleted.
    SnapshotPublished,
}

impl KillPoint {
    /// Every kill point, in the order a write, a roll and a compaction pass them.
    pub const ALL: [KillPoint; 13] = [
        KillPoint::AppendWritten,
        KillPoint::SyncDone,
        KillPoint::SegmentCreated,
        KillPoint::SegmentReady,
        KillPoint::SegmentRemoved,
        KillPoint::SnapshotFilesWritten,
        KillPoint::SnapshotFilesSynced,
        KillPoint::SnapshotDirRenamed,
        KillPoint::ManifestTempWritten,
        KillPoint::ManifestSynced,
        KillPoint::ManifestRenamed,
        KillPoint::ManifestDurable,
        KillPoint::SnapshotPublished,
    ];

    /// The point's name, as `ORDERLOG_KILL_POINT` spells it.
    pub fn name(self) -> &'static str {
        match self {
            KillPoint::AppendWritten => "wal.append.written",
            KillPoint::SyncDone => "wal.sync.done",
            KillPoint::SegmentCreated => "wal.segment.created",
            KillPoint::SegmentReady => "wal.segment.ready",
            KillPoint::SegmentRemoved => "wal.segment.removed",
            KillPoint::SnapshotFilesWritten => "snapshot.files.written",
            KillPoint::SnapshotFilesSynced => "snapshot.files.synced",
            KillPoint::SnapshotDirRenamed => "snapshot.dir.renamed",
            KillPoint::ManifestTempWritten => "snapshot.manifest.written",
            KillPoint::ManifestSynced => "snapshot.manifest.synced",
            KillPoint::ManifestRenamed => "snapshot.manifest.renamed",
            KillPoint::ManifestDurable => "snapshot.manifest.durable",
            KillPoint::SnapshotPublished => "snapshot.published",
        }
    }

    /// The kill point named `name`.
    pub fn from_name(name: &str) -> Option<KillPoint> {
        KillPoint::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for KillPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The environment variable naming the kill point of a process.
pub const KILL_POINT_VAR: &str = "ORDERLOG_KILL_POINT";

/// What `ORDERLOG_KILL_POINT` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Armed {
    /// Nothing: the variable is unset.
    Nothing,
    /// Kill at the `n`-th passage (from 1) of the point.
    At(KillPoint, u64),
    /// The variable is set but names no kill point.
    Invalid(String),
}

/// Parses `<name>` or `<name>@<n>`.
fn parse(value: &str) -> Armed {
    let (name, nth) = match value.split_once('@') {
        Some((name, n)) => match n.parse::<u64>() {
            Ok(n) if n > 0 => (name, n),
            _ => return Armed::Invalid(value.to_owned()),
        },
        None => (value, 1),
    };
    match KillPoint::from_name(name) {
        Some(point) => Armed::At(point, nth),
        None => Armed::Invalid(value.to_owned()),
    }
}

/// Passages of the armed point so far, in this process.
static PASSED: AtomicU64 = AtomicU64::new(0);

/// Called by the real storage at each kill point: aborts the process if
/// `ORDERLOG_KILL_POINT` names this passage of `point`.
pub(crate) fn pass_in_process(point: KillPoint) {
    static ARMED: OnceLock<Armed> = OnceLock::new();
    let armed = ARMED.get_or_init(|| match std::env::var(KILL_POINT_VAR) {
        Ok(value) => parse(&value),
        Err(_) => Armed::Nothing,
    });
    match armed {
        Armed::Nothing => {}
        Armed::At(target, nth) => {
            if *target == point && PASSED.fetch_add(1, Ordering::Relaxed) + 1 == *nth {
                eprintln!("{KILL_POINT_VAR}: killed at {point} (passage {nth})");
                std::process::abort();
            }
        }
        Armed::Invalid(value) => {
            let names: Vec<&str> = KillPoint::ALL.iter().map(|p| p.name()).collect();
            eprintln!(
                "{KILL_POINT_VAR}={value}: not <name> or <name>@<n> (n from 1) with a name \
                 among {}",
                names.join(", ")
            );
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for point in KillPoint::ALL {
            assert_eq!(KillPoint::from_name(point.name()), Some(point));
        }
        let mut names: Vec<&str> = KillPoint::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KillPoint::ALL.len());
    }

    #[test]
    fn parse_accepts_name_and_passage() {
        assert_eq!(parse("wal.sync.done"), Armed::At(KillPoint::SyncDone, 1));
        assert_eq!(parse("snapshot.published@3"), Armed::At(KillPoint::SnapshotPublished, 3));
        for bad in ["", "wal.sync", "wal.sync.done@0", "wal.sync.done@x", "@2"] {
            assert_eq!(parse(bad), Armed::Invalid(bad.to_owned()), "{bad}");
        }
    }
}
