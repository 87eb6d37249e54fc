//! The snapshot's Parquet output: one `data.parquet`, or hive-style partitions
//! `parquet/<column>=<value>/part-0.parquet`, written one bounded batch at a time.
//!
//! Every file keeps every column (the partition column too), so each file reads back as
//! rows of the same schema, and a reader that ignores the directory names loses nothing.
//! Row groups hold up to `row_group_rows` rows; statistics are written per column chunk
//! and per page. The file's key-value metadata records the same `orderlog.*` keys as the
//! IPC footer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::buffer::Buffer;
use arrow::compute::take_record_batch;
use arrow::datatypes::{
    DataType, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use orderlog_storage::Storage;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Result, SnapshotError};
use crate::files::{CrcWriter, WritebackFile, WrittenFile, io_err, join};
use crate::ipc::{IpcMeta, META_LSN, META_ROWS, META_SCHEMA_VERSION};
use crate::options::{SnapshotOptions, check_partition_column};

/// The Parquet file's name when not partitioned.
pub(crate) const PARQUET_FILE: &str = "data.parquet";
/// The directory holding the partitions.
pub(crate) const PARTITIONS_DIR: &str = "parquet";
/// The file's name inside each partition directory.
pub(crate) const PART_FILE: &str = "part-0.parquet";
/// Rows per batch when reading Parquet back.
pub(crate) const READ_BATCH_ROWS: usize = 65_536;

/// Files written, and the directories created under the snapshot directory (deepest
/// first, named from the storage's root), which must be fsynced too.
pub(crate) struct ParquetOutput {
    pub(crate) files: Vec<WrittenFile>,
    pub(crate) dirs: Vec<String>,
}

type Writer = ArrowWriter<CrcWriter<WritebackFile>>;

/// The Parquet output being written: batches go in one at a time.
pub(crate) enum ParquetSink {
    /// One `data.parquet` (boxed: the writer is large, and there is one per snapshot).
    Single(Box<Partition>),
    /// One file per value of the partition column.
    Partitioned(Partitions),
}

impl ParquetSink {
    /// Starts the Parquet output under `dir` of `storage` for batches of `schema`, as
    /// `opts` says.
    pub(crate) fn create(
        storage: &Arc<dyn Storage>,
        dir: &str,
        schema: SchemaRef,
        opts: &SnapshotOptions,
        meta: IpcMeta,
    ) -> Result<ParquetSink> {
        let props = properties(opts, meta);
        match &opts.partition_by {
            None => {
                let name = join(dir, PARQUET_FILE);
                let writer =
                    create(storage.as_ref(), &name, &props, schema.clone(), opts.early_writeback)?;
                Ok(ParquetSink::Single(Box::new(Partition {
                    writer,
                    rel_path: PARQUET_FILE.into(),
                    path: storage.path().join(name),
                })))
            }
            Some(column) => Ok(ParquetSink::Partitioned(Partitions {
                index: check_partition_column(&schema, column)?,
                column: column.clone(),
                storage: Arc::clone(storage),
                root: join(dir, PARTITIONS_DIR),
                schema,
                props,
                partitions_max: opts.partitions_max,
                early_writeback: opts.early_writeback,
                open: BTreeMap::new(),
                dirs: Vec::new(),
            })),
        }
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            ParquetSink::Single(part) => Ok(part.writer.write(batch)?),
            ParquetSink::Partitioned(parts) => parts.write(batch),
        }
    }

    /// Finishes every file (last row group, footer, flush); they still need an fsync.
    pub(crate) fn finish(self) -> Result<ParquetOutput> {
        match self {
            ParquetSink::Single(part) => {
                Ok(ParquetOutput { files: vec![part.finish()?], dirs: Vec::new() })
            }
            ParquetSink::Partitioned(mut parts) => {
                if !parts.open.is_empty() {
                    parts.dirs.push(parts.root);
                }
                let files =
                    parts.open.into_values().map(Partition::finish).collect::<Result<Vec<_>>>()?;
                Ok(ParquetOutput { files, dirs: parts.dirs })
            }
        }
    }
}

fn properties(opts: &SnapshotOptions, meta: IpcMeta) -> Arc<WriterProperties> {
    let kv = |k: &str, v: String| KeyValue::new(k.to_string(), v);
    Arc::new(
        WriterProperties::builder()
            .set_compression(opts.compression.to_parquet())
            // `validate` guarantees row_group_rows >= 1 (the builder panics on 0).
            .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_key_value_metadata(Some(vec![
                kv(META_LSN, meta.lsn.to_string()),
                kv(META_ROWS, meta.rows.to_string()),
                kv(META_SCHEMA_VERSION, meta.schema_version.to_string()),
            ]))
            .build(),
    )
}

fn create(
    storage: &dyn Storage,
    name: &str,
    props: &Arc<WriterProperties>,
    schema: SchemaRef,
    early_writeback: bool,
) -> Result<Writer> {
    let path = storage.path().join(name);
    let file = storage.create_file(name).map_err(io_err("create Parquet file", &path))?;
    let sink = CrcWriter::new(WritebackFile::new(file, early_writeback));
    Ok(ArrowWriter::try_new(sink, schema, Some(props.as_ref().clone()))?)
}

/// One Parquet file being written.
pub(crate) struct Partition {
    writer: Writer,
    rel_path: String,
    path: PathBuf,
}

impl Partition {
    fn finish(self) -> Result<WrittenFile> {
        // `into_inner` flushes the last row group, writes the footer, flushes the buffer.
        let (file, bytes, crc32) = self.writer.into_inner()?.finish();
        let file = file.into_inner();
        Ok(WrittenFile { rel_path: self.rel_path, path: self.path, file, bytes, crc32 })
    }
}

/// Hive-style partitions, opened as their values first appear.
pub(crate) struct Partitions {
    /// The partition column's index and name.
    index: usize,
    column: String,
    storage: Arc<dyn Storage>,
    /// `<snapshot>/parquet`, created with the first partition.
    root: String,
    schema: SchemaRef,
    props: Arc<WriterProperties>,
    partitions_max: usize,
    early_writeback: bool,
    open: BTreeMap<i128, Partition>,
    /// Partition directories created, to fsync.
    dirs: Vec<String>,
}

impl Partitions {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let values = batch.column(self.index);
        for (key, rows) in group_rows(values.as_ref(), &self.column)? {
            if !self.open.contains_key(&key) {
                let part = self.open_partition(values.data_type(), key)?;
                self.open.insert(key, part);
            }
            let taken = take_record_batch(batch, &UInt32Array::from(rows))?;
            if let Some(part) = self.open.get_mut(&key) {
                part.writer.write(&taken)?;
            }
        }
        Ok(())
    }

    fn open_partition(&mut self, data_type: &DataType, key: i128) -> Result<Partition> {
        if self.open.len() == self.partitions_max {
            return Err(SnapshotError::Partition {
                column: self.column.clone(),
                detail: format!("more than partitions_max = {} values", self.partitions_max),
            });
        }
        let storage = self.storage.as_ref();
        let make_dir = |dir: &str| {
            storage.make_dir(dir).map_err(io_err("create directory", &storage.path().join(dir)))
        };
        if self.open.is_empty() {
            make_dir(&self.root)?;
        }
        let name = format!("{}={}", self.column, value_name(data_type, key));
        let dir = join(&self.root, &name);
        make_dir(&dir)?;
        let file = join(&dir, PART_FILE);
        let writer =
            create(storage, &file, &self.props, self.schema.clone(), self.early_writeback)?;
        self.dirs.push(dir);
        let path = storage.path().join(file);
        Ok(Partition { writer, rel_path: format!("{PARTITIONS_DIR}/{name}/{PART_FILE}"), path })
    }
}

/// The rows of a batch grouped by the partition column's value (as an `i128` key; a
/// boolean is 0 or 1), in key order.
fn group_rows(array: &dyn Array, column: &str) -> Result<BTreeMap<i128, Vec<u32>>> {
    if array.null_count() > 0 {
        return Err(SnapshotError::Partition {
            column: column.into(),
            detail: format!("{} null values", array.null_count()),
        });
    }
    let keys: Vec<i128> = match array.data_type() {
        DataType::Boolean => array.as_boolean().values().iter().map(i128::from).collect(),
        DataType::Int8 => keys_of::<Int8Type>(array),
        DataType::Int16 => keys_of::<Int16Type>(array),
        DataType::Int32 => keys_of::<Int32Type>(array),
        DataType::Int64 => keys_of::<Int64Type>(array),
        DataType::UInt8 => keys_of::<UInt8Type>(array),
        DataType::UInt16 => keys_of::<UInt16Type>(array),
        DataType::UInt32 => keys_of::<UInt32Type>(array),
        DataType::UInt64 => keys_of::<UInt64Type>(array),
        other => {
            return Err(SnapshotError::Partition {
                column: column.into(),
                detail: format!("type {other} cannot partition"),
            });
        }
    };
    let mut groups: BTreeMap<i128, Vec<u32>> = BTreeMap::new();
    for (row, key) in keys.into_iter().enumerate() {
        // A batch has at most `batch_rows` rows, far below u32::MAX... unless a caller
        // asks for more; then the conversion refuses instead of wrapping.
        let row = u32::try_from(row).map_err(|_| SnapshotError::InvalidOptions {
            detail: "a partitioned batch may hold at most u32::MAX rows".into(),
        })?;
        groups.entry(key).or_default().push(row);
    }
    Ok(groups)
}

fn keys_of<P>(array: &dyn Array) -> Vec<i128>
where
    P: arrow::datatypes::ArrowPrimitiveType,
    P::Native: Into<i128>,
{
    array.as_primitive::<P>().values().iter().map(|&v| v.into()).collect()
}

/// A partition value as it appears in the directory name.
fn value_name(data_type: &DataType, key: i128) -> String {
    match data_type {
        DataType::Boolean => (key != 0).to_string(),
        _ => key.to_string(),
    }
}

/// Reads a Parquet file read whole into `map`, whose size and CRC the caller has checked.
///
/// Before any page is read, the footer's row counts must not be negative and every column
/// chunk it lists must lie inside the file: the parquet crate asserts (panics) on a
/// negative chunk offset or size, and sums row counts cast to `usize`. Each row group is
/// then read on its own, and must yield the rows it says it holds.
///
/// The parquet crate's errors do not say where, so an error names the footer's metadata
/// (where its length field says it starts; 0 if that does not fit) when the footer is at
/// fault, and otherwise the first byte of the row group that failed.
pub(crate) fn read(path: &Path, map: Buffer) -> Result<Vec<RecordBatch>> {
    let corrupt = |offset: u64, detail: String| SnapshotError::FileCorrupt {
        path: path.to_path_buf(),
        offset,
        detail,
    };
    let len = map.len();
    // The footer's metadata ends 8 bytes before the end (its length, then `PAR1`); the
    // reader refuses a file where it does not fit.
    let footer_at = len
        .checked_sub(8)
        .and_then(|at| map.get(at..at + 4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .and_then(|b| len.checked_sub(8 + u32::from_le_bytes(b) as usize))
        .map_or(0, |at| at as u64);
    let file = bytes::Bytes::from_owner(map);
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::default())
        .map_err(|e| corrupt(footer_at, e.to_string()))?;
    let groups = check_footer(meta.metadata(), len).map_err(|d| corrupt(footer_at, d))?;
    let in_group = |g: usize, detail: String| {
        let at = groups.get(g).map_or(footer_at, |span| span.at);
        corrupt(at, format!("row group {g}: {detail}"))
    };
    // The parquet crate panics on some damage it does not check for (a dictionary-encoded
    // page in a column chunk without a dictionary page). Everything the closure touches is
    // its own and dropped with it, except the index of the row group it was reading, so a
    // panic leaves nothing half-changed behind: it is this file's corruption, reported as
    // such.
    let mut reading = 0;
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut batches = Vec::new();
        for (g, span) in groups.iter().enumerate() {
            reading = g;
            let reader =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file.clone(), meta.clone())
                    .with_row_groups(vec![g])
                    .with_batch_size(READ_BATCH_ROWS)
                    .build()
                    .map_err(|e| in_group(g, e.to_string()))?;
            let mut rows = 0u64;
            for batch in reader {
                let batch = batch.map_err(|e| in_group(g, e.to_string()))?;
                rows += batch.num_rows() as u64;
                batches.push(batch);
            }
            // The parquet crate may stop early without an error (a schema without
            // columns, a column chunk holding fewer values than its row group says).
            if rows != span.rows {
                return Err(in_group(
                    g,
                    format!("{rows} rows read, the row group says it holds {}", span.rows),
                ));
            }
        }
        Ok(batches)
    }));
    match decoded {
        Ok(batches) => batches,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(in_group(reading, format!("the Parquet decoder failed: {message}")))
        }
    }
}

/// A row group as the footer lists it: where its first column chunk starts, and its rows.
struct RowGroupSpan {
    at: u64,
    rows: u64,
}

/// Every row group's row count is not negative and their total fits, and every column
/// chunk's byte range (from its dictionary page if it has one, as the parquet crate
/// reads it) lies inside the file's `len` bytes.
/// Returns each row group's span, in file order.
fn check_footer(
    meta: &ParquetMetaData,
    len: usize,
) -> std::result::Result<Vec<RowGroupSpan>, String> {
    let mut rows: u64 = 0;
    let mut spans = Vec::with_capacity(meta.num_row_groups());
    for (g, group) in meta.row_groups().iter().enumerate() {
        rows = u64::try_from(group.num_rows())
            .ok()
            .and_then(|n| rows.checked_add(n))
            .ok_or_else(|| format!("row group {g} holds {} rows", group.num_rows()))?;
        let mut at = len as u64;
        for (c, column) in group.columns().iter().enumerate() {
            let start = column.dictionary_page_offset().unwrap_or(column.data_page_offset());
            let bytes = column.compressed_size();
            let fits = usize::try_from(start)
                .ok()
                .zip(usize::try_from(bytes).ok())
                .and_then(|(s, b)| s.checked_add(b))
                .is_some_and(|end| end <= len);
            if !fits {
                return Err(format!(
                    "row group {g}, column {c}: chunk at {start} (+{bytes}) outside the file"
                ));
            }
            // `fits` proved `start` is not negative.
            at = at.min(start.unsigned_abs());
        }
        // `rows` above proved the count is not negative.
        spans.push(RowGroupSpan { at, rows: group.num_rows().unsigned_abs() });
    }
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use arrow::array::{BooleanArray, Int8Array, UInt64Array};

    use super::*;

    #[test]
    fn rows_group_by_value_in_key_order() {
        let a = Int8Array::from(vec![3, -1, 3, 0, -1]);
        let g = group_rows(&a, "c").unwrap();
        assert_eq!(
            g.into_iter().collect::<Vec<_>>(),
            vec![(-1, vec![1, 4]), (0, vec![3]), (3, vec![0, 2])]
        );
        let big = UInt64Array::from(vec![u64::MAX, 0]);
        let g = group_rows(&big, "c").unwrap();
        assert_eq!(value_name(&DataType::UInt64, *g.keys().last().unwrap()), u64::MAX.to_string());
        let b = BooleanArray::from(vec![true, false, true]);
        let g = group_rows(&b, "flag").unwrap();
        assert_eq!(
            g.keys().map(|&k| value_name(&DataType::Boolean, k)).collect::<Vec<_>>(),
            ["false", "true"]
        );
    }

    #[test]
    fn nulls_and_floats_cannot_partition() {
        let a = Int8Array::from(vec![Some(1), None]);
        assert!(matches!(group_rows(&a, "c"), Err(SnapshotError::Partition { .. })));
        let f = arrow::array::Float64Array::from(vec![1.0]);
        assert!(matches!(group_rows(&f, "c"), Err(SnapshotError::Partition { .. })));
    }
}
