//! How a snapshot is written: Parquet compression, row-group and batch sizes, optional
//! partitioning, and how many snapshots to keep.

use std::fmt;

use arrow::datatypes::{DataType, Schema};

use crate::error::{Result, SnapshotError};

/// Most snapshots a manifest lists (so the most `keep_last` may be).
pub const SNAPSHOTS_MAX: usize = 64;

/// Hard ceiling on [`SnapshotOptions::partitions_max`]: a snapshot has at most this many
/// Parquet files.
pub const PARTITIONS_LIMIT: usize = 65_536;

/// Longest partition column name accepted (it becomes a directory name).
const PARTITION_COLUMN_BYTES_MAX: usize = 128;

/// Compression of the Parquet file's pages. The Arrow IPC file is never compressed: it is
/// mapped and read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParquetCompression {
    /// No compression.
    None,
    /// Snappy: fast, modest ratio.
    Snappy,
    /// Zstandard at the parquet crate's default level: the best ratio for analytics.
    #[default]
    Zstd,
}

impl ParquetCompression {
    /// The name recorded in the manifest: `none`, `snappy` or `zstd`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParquetCompression::None => "none",
            ParquetCompression::Snappy => "snappy",
            ParquetCompression::Zstd => "zstd",
        }
    }

    /// Parses a name written by [`ParquetCompression::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(ParquetCompression::None),
            "snappy" => Some(ParquetCompression::Snappy),
            "zstd" => Some(ParquetCompression::Zstd),
            _ => None,
        }
    }

    pub(crate) fn to_parquet(self) -> parquet::basic::Compression {
        match self {
            ParquetCompression::None => parquet::basic::Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => parquet::basic::Compression::SNAPPY,
            ParquetCompression::Zstd => {
                parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::default())
            }
        }
    }
}

impl fmt::Display for ParquetCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of [`crate::SnapshotStore::publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// Parquet page compression (default zstd).
    pub compression: ParquetCompression,
    /// Most rows in one Parquet row group (default 1,000,000: large groups suit
    /// analytical scans; column statistics are written per group and per page).
    pub row_group_rows: usize,
    /// Rows converted from the state at a time (default 65,536): memory for conversion is
    /// bounded by one batch, never a copy of the whole state. It is also the size of the
    /// record batches in the Arrow IPC file.
    pub batch_rows: usize,
    /// Partition the Parquet output hive-style by this column:
    /// `parquet/<column>=<value>/part-0.parquet`, one file per distinct value, each keeping
    /// every column. The column must be an integer or boolean column without nulls.
    /// `None` (default): one `data.parquet`.
    pub partition_by: Option<String>,
    /// Most partitions (distinct values) accepted (default 1,024, at most
    /// [`PARTITIONS_LIMIT`]): each open partition buffers up to a row group in memory.
    pub partitions_max: usize,
    /// Snapshots kept, the new one included (default 2, between 1 and
    /// [`SNAPSHOTS_MAX`]). Older ones leave the manifest and are deleted once the new
    /// manifest is durable. Keeping at least 2 lets a reader fall back when the newest
    /// snapshot is damaged.
    pub keep_last: usize,
    /// Start the kernel's writeback of each snapshot file every 8 MiB as it is written
    /// (default true), so the disk works while the rest is encoded and the closing fsync
    /// waits for the last stretch only: the IPC file is written at the disk's bandwidth.
    /// The price is paid by whoever else syncs on the same disk meanwhile: each of their
    /// flushes waits for the writeback in flight. An order store's background compactor
    /// turns it off, so that writers' commits are not slowed while it runs.
    pub early_writeback: bool,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            compression: ParquetCompression::Zstd,
            row_group_rows: 1_000_000,
            batch_rows: 65_536,
            partition_by: None,
            partitions_max: 1_024,
            keep_last: 2,
            early_writeback: true,
        }
    }
}

impl SnapshotOptions {
    /// Checks the options against the schema of the state to be written.
    pub(crate) fn validate(&self, schema: &Schema) -> Result<()> {
        let invalid = |detail: String| Err(SnapshotError::InvalidOptions { detail });
        if self.row_group_rows == 0 {
            return invalid("row_group_rows must be at least 1".into());
        }
        if self.batch_rows == 0 {
            return invalid("batch_rows must be at least 1".into());
        }
        if self.keep_last == 0 || self.keep_last > SNAPSHOTS_MAX {
            return invalid(format!(
                "keep_last is {}, must be between 1 and {SNAPSHOTS_MAX}",
                self.keep_last
            ));
        }
        if self.partitions_max == 0 || self.partitions_max > PARTITIONS_LIMIT {
            return invalid(format!(
                "partitions_max is {}, must be between 1 and {PARTITIONS_LIMIT}",
                self.partitions_max
            ));
        }
        if let Some(column) = &self.partition_by {
            check_partition_column(schema, column)?;
        }
        Ok(())
    }
}

/// The partition column must exist, be an integer or boolean column, and have a name that
/// is safe as a directory name.
pub(crate) fn check_partition_column(schema: &Schema, column: &str) -> Result<usize> {
    let partition = |detail: String| SnapshotError::Partition { column: column.into(), detail };
    let safe = !column.is_empty()
        && column.len() <= PARTITION_COLUMN_BYTES_MAX
        && column.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !safe {
        return Err(partition(format!(
            "a partition column name must be 1 to {PARTITION_COLUMN_BYTES_MAX} ASCII letters, \
             digits or underscores"
        )));
    }
    let (index, field) = schema
        .column_with_name(column)
        .ok_or_else(|| partition("no such column in the schema".into()))?;
    if !partition_type_supported(field.data_type()) {
        return Err(partition(format!(
            "type {} cannot partition (integer or boolean columns only)",
            field.data_type()
        )));
    }
    Ok(index)
}

/// Types whose values name partitions.
pub(crate) fn partition_type_supported(data_type: &DataType) -> bool {
    data_type.is_integer() || *data_type == DataType::Boolean
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Field;

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Arc::new(Field::new("id", DataType::UInt64, false)),
            Arc::new(Field::new("price", DataType::Float64, false)),
            Arc::new(Field::new("flag", DataType::Boolean, false)),
        ])
    }

    #[test]
    fn defaults_are_valid() {
        SnapshotOptions::default().validate(&schema()).unwrap();
        assert_eq!(SnapshotOptions::default().compression, ParquetCompression::Zstd);
    }

    #[test]
    fn zero_sizes_and_bad_keep_last_are_rejected() {
        for opts in [
            SnapshotOptions { row_group_rows: 0, ..Default::default() },
            SnapshotOptions { batch_rows: 0, ..Default::default() },
            SnapshotOptions { keep_last: 0, ..Default::default() },
            SnapshotOptions { keep_last: SNAPSHOTS_MAX + 1, ..Default::default() },
            SnapshotOptions { partitions_max: 0, ..Default::default() },
        ] {
            assert!(matches!(opts.validate(&schema()), Err(SnapshotError::InvalidOptions { .. })));
        }
    }

    #[test]
    fn partition_column_is_checked() {
        let by = |c: &str| SnapshotOptions { partition_by: Some(c.into()), ..Default::default() };
        by("id").validate(&schema()).unwrap();
        by("flag").validate(&schema()).unwrap();
        for bad in ["price", "missing", "", "../id", "a=b"] {
            match by(bad).validate(&schema()) {
                Err(SnapshotError::Partition { column, .. }) => assert_eq!(column, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn compression_names_round_trip() {
        for c in [ParquetCompression::None, ParquetCompression::Snappy, ParquetCompression::Zstd] {
            assert_eq!(ParquetCompression::from_name(c.as_str()), Some(c));
        }
        assert_eq!(ParquetCompression::from_name("gzip"), None);
    }
}
