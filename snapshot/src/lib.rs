//! `orderlog-snapshot`: columnar snapshots of a struct-of-arrays state.
//!
//! What it is: the [`ArrowSchemaGen`] and [`ToArrow`] traits a columnar state implements,
//! snapshot files (Arrow IPC and Parquet) and the manifest that says which snapshot is
//! current. What it is not: it never knows what the columns mean (no orders here), and it
//! never links DuckDB.
//!
//! A snapshot at LSN N is a directory `snap-<N:020>/` holding
//! - `data.arrow`: the Arrow IPC file format, uncompressed, written in batches of
//!   [`SnapshotOptions::batch_rows`]; read back through a read-only mapping, zero-copy
//!   ([`SnapshotStore::read_ipc_batches`], [`SnapshotStore::load`]);
//! - `data.parquet`, or hive-style partitions `parquet/<column>=<value>/part-0.parquet`
//!   ([`SnapshotOptions::partition_by`]): compressed (zstd by default), large row groups,
//!   page statistics; for analytics ([`SnapshotStore::parquet_files`]).
//!
//! The `MANIFEST` lists the last [`SnapshotOptions::keep_last`] snapshots, newest first,
//! with every file's size and CRC-32; it is checksummed and replaced atomically. Readers
//! verify before trusting and fall back to an older snapshot when a newer one is damaged,
//! reporting what they skipped ([`VerifiedSnapshot::skipped`]).
//!
//! ```
//! # use std::sync::Arc;
//! # use arrow::array::{Array, AsArray, RecordBatch, UInt64Array};
//! # use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
//! use orderlog_snapshot::{ArrowSchemaGen, SnapshotOptions, SnapshotStore, ToArrow};
//!
//! /// A one-column struct-of-arrays state.
//! #[derive(Debug, Default, PartialEq)]
//! struct Ids { id: Vec<u64> }
//!
//! impl ArrowSchemaGen for Ids {
//!     fn arrow_schema() -> SchemaRef {
//!         Arc::new(Schema::new(vec![Field::new("id", DataType::UInt64, false)]))
//!     }
//!     fn arrow_field_names() -> Vec<&'static str> { vec!["id"] }
//!     fn arrow_field_types() -> Vec<DataType> { vec![DataType::UInt64] }
//! }
//!
//! impl ToArrow for Ids {
//!     fn num_rows(&self) -> usize { self.id.len() }
//!     fn to_record_batch_range(
//!         &self,
//!         range: std::ops::Range<usize>,
//!     ) -> orderlog_snapshot::Result<RecordBatch> {
//!         let col = UInt64Array::from(self.id[range].to_vec());
//!         Ok(RecordBatch::try_new(Self::arrow_schema(), vec![Arc::new(col)])?)
//!     }
//!     fn from_record_batch(batch: &RecordBatch) -> orderlog_snapshot::Result<Self> {
//!         let mut out = Ids::default();
//!         out.extend_from_record_batch(batch)?;
//!         Ok(out)
//!     }
//!     fn extend_from_record_batch(
//!         &mut self,
//!         batch: &RecordBatch,
//!     ) -> orderlog_snapshot::Result<()> {
//!         orderlog_snapshot::check_schema::<Self>(batch)?;
//!         self.id.extend(batch.column(0).as_primitive::<UInt64Type>().values());
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> orderlog_snapshot::Result<()> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let store = SnapshotStore::open(dir.path())?;
//! let state = Ids { id: vec![7, 8, 9] };
//! store.publish(&state, 42, 1, &SnapshotOptions::default())?;
//!
//! let (back, verified) = store.load::<Ids>()?.expect("a snapshot");
//! assert_eq!(back, state);
//! assert_eq!(verified.info.lsn, 42);
//! assert!(verified.skipped.is_empty());
//! assert_eq!(store.parquet_files(&verified.info).len(), 1);
//! # Ok(()) }
//! ```
//!
//! Limits: a manifest lists at most [`SNAPSHOTS_MAX`] snapshots; a partitioned snapshot
//! at most [`SnapshotOptions::partitions_max`] (hard ceiling [`PARTITIONS_LIMIT`])
//! partitions; partition columns are integer or boolean columns without nulls. The byte
//! layouts are in `docs/format.md`.

mod convert;
mod error;
mod files;
#[doc(hidden)]
pub mod fuzzing;
mod info;
mod ipc;
mod manifest;
mod options;
mod parquet_file;
mod staged;
mod standalone;
mod store;

pub use convert::{ArrowSchemaGen, ToArrow, check_schema};
pub use error::{Result, SnapshotError};
pub use info::{
    Covers, FileKind, Lsn, PublishStep, Published, SkippedSnapshot, SnapshotFile, SnapshotInfo,
    VerifiedSnapshot,
};
pub use manifest::MANIFEST_VERSION;

/// The manifest's file name in a snapshot directory.
pub const MANIFEST_NAME: &str = manifest::MANIFEST_FILE;

/// Decodes and checks a manifest's bytes (read from `path`, named in errors): the
/// snapshots it lists, newest first. For tools that carry manifests elsewhere (a backup).
pub fn decode_manifest(path: &std::path::Path, bytes: &[u8]) -> Result<Vec<SnapshotInfo>> {
    manifest::decode(path, bytes)
}

/// A manifest's bytes listing `snapshots` (newest first): what a restore writes.
pub fn encode_manifest(snapshots: &[SnapshotInfo]) -> Result<Vec<u8>> {
    manifest::encode(snapshots)
}

/// A snapshot directory's name (`snap-<lsn, 20 digits>`).
pub fn snapshot_dir_name(lsn: Lsn) -> String {
    manifest::snapshot_dir_name(lsn)
}
pub use options::{PARTITIONS_LIMIT, ParquetCompression, SNAPSHOTS_MAX, SnapshotOptions};
pub use staged::{StagedDir, StagedFile};
pub use standalone::{
    WrittenFileInfo, decode_parquet, read_ipc_file, read_parquet_file, write_ipc_batches,
    write_ipc_file, write_parquet_files,
};
pub use store::SnapshotStore;
