//! What a published snapshot is (the values its manifest entry records), what a reader
//! skipped, and the steps of publishing.

use std::fmt;

use crate::error::SnapshotError;
use crate::options::ParquetCompression;

/// A log sequence number: the snapshot holds the state after applying every frame up to
/// and including this one.
pub type Lsn = u64;

/// One published snapshot, as its manifest entry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The state is the fold of every log frame up to and including this LSN.
    pub lsn: Lsn,
    /// Rows in the state.
    pub rows: u64,
    /// The caller's schema version, recorded as given.
    pub schema_version: u32,
    /// When the snapshot was published, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The newest event time the snapshot covers (ms since the Unix epoch), as its
    /// publisher gave it: every event folded into it was stamped at or before this.
    /// `None` if not known (a manifest of version 1, or a publisher that gave none).
    pub newest_event_ms: Option<u64>,
    /// The snapshot's directory, relative to the store: `snap-<lsn, 20 digits>`.
    pub dir: String,
    /// Compression of the Parquet files.
    pub compression: ParquetCompression,
    /// Most rows per Parquet row group.
    pub row_group_rows: u64,
    /// The Parquet partition column, if partitioned.
    pub partition_by: Option<String>,
    /// Every file of the snapshot: the Arrow IPC file first, then the Parquet files.
    pub files: Vec<SnapshotFile>,
}

/// What a snapshot covers, as its publisher states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covers {
    /// The state is the fold of every log frame up to and including this LSN.
    pub lsn: Lsn,
    /// The caller's schema version, recorded as given.
    pub schema_version: u32,
    /// The newest event time folded in (ms since the Unix epoch), if the publisher knows
    /// it; readers use it to find the snapshot to start a fold to a point in time from.
    pub newest_event_ms: Option<u64>,
}

impl SnapshotInfo {
    /// The Arrow IPC file (every valid snapshot has exactly one).
    pub fn ipc_file(&self) -> Option<&SnapshotFile> {
        self.files.iter().find(|f| f.kind == FileKind::ArrowIpc)
    }

    /// The Parquet files: one `data.parquet`, or one per partition (none for an empty
    /// partitioned state).
    pub fn parquet_files(&self) -> impl Iterator<Item = &SnapshotFile> + '_ {
        self.files.iter().filter(|f| f.kind == FileKind::Parquet)
    }

    /// Total bytes of the snapshot's files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// What a snapshot file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The Arrow IPC file format (`data.arrow`): read back through a mapping.
    ArrowIpc,
    /// A Parquet file: analytics and interchange.
    Parquet,
}

impl FileKind {
    /// The name recorded in the manifest: `arrow_ipc` or `parquet`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::ArrowIpc => "arrow_ipc",
            FileKind::Parquet => "parquet",
        }
    }

    /// Parses a name written by [`FileKind::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "arrow_ipc" => Some(FileKind::ArrowIpc),
            "parquet" => Some(FileKind::Parquet),
            _ => None,
        }
    }
}

/// One file of a snapshot, with what a reader checks before trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// What the file holds.
    pub kind: FileKind,
    /// Path relative to the store's directory, `/`-separated, starting with the
    /// snapshot's directory.
    pub path: String,
    /// Exact length in bytes.
    pub bytes: u64,
    /// CRC-32 (IEEE, crc32fast) of the whole file.
    pub crc32: u32,
}

/// A snapshot that passed verification (manifest checksum, every file's size and CRC),
/// with the newer snapshots the reader skipped to reach it.
#[derive(Debug)]
pub struct VerifiedSnapshot {
    /// The snapshot.
    pub info: SnapshotInfo,
    /// Newer snapshots listed in the manifest that failed verification, newest first,
    /// each with the reason. Empty when the newest snapshot is intact.
    pub skipped: Vec<SkippedSnapshot>,
}

/// A snapshot a reader did not trust, and why.
#[derive(Debug)]
pub struct SkippedSnapshot {
    /// The skipped snapshot's LSN.
    pub lsn: Lsn,
    /// Why: usually [`SnapshotError::FileCorrupt`] naming the file and offset, or
    /// [`SnapshotError::Io`] for a missing file.
    pub error: SnapshotError,
}

impl fmt::Display for SkippedSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snapshot at LSN {} skipped: {}", self.lsn, self.error)
    }
}

/// The steps of [`crate::SnapshotStore::publish_with_hook`], in order. The hook runs
/// after each one; a hook error stops the publish right there, as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishStep {
    /// The IPC and Parquet files are written in `snap-<lsn>.tmp/`.
    FilesWritten,
    /// Every file and directory under `snap-<lsn>.tmp/` is fsynced.
    FilesSynced,
    /// `snap-<lsn>.tmp/` is renamed to `snap-<lsn>/` and the store directory fsynced.
    DirRenamed,
    /// The new manifest is written to `MANIFEST.tmp`.
    ManifestTempWritten,
    /// `MANIFEST.tmp` is fsynced.
    ManifestSynced,
    /// `MANIFEST.tmp` is renamed over `MANIFEST`.
    ManifestRenamed,
    /// The store directory is fsynced: the new manifest is durable.
    DirSynced,
    /// Snapshots no longer listed (and leftovers of interrupted publishes) are deleted.
    Pruned,
}

impl PublishStep {
    /// Every step, in order.
    pub const ALL: [PublishStep; 8] = [
        PublishStep::FilesWritten,
        PublishStep::FilesSynced,
        PublishStep::DirRenamed,
        PublishStep::ManifestTempWritten,
        PublishStep::ManifestSynced,
        PublishStep::ManifestRenamed,
        PublishStep::DirSynced,
        PublishStep::Pruned,
    ];
}

impl fmt::Display for PublishStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What [`crate::SnapshotStore::publish`] did.
#[derive(Debug)]
pub struct Published {
    /// The new snapshot, now current.
    pub info: SnapshotInfo,
    /// Directories deleted after the manifest became durable (older snapshots and
    /// leftovers of interrupted publishes).
    pub pruned: Vec<String>,
    /// Deletions that failed. The snapshot is published regardless; the next publish
    /// tries again.
    pub prune_errors: Vec<SnapshotError>,
}
