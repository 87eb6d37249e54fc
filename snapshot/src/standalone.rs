//! Single snapshot files outside a [`crate::SnapshotStore`]: for exports, tools and
//! benchmarks that want one format at a time. Same writers and readers as the store
//! uses, without the manifest (so without its size and CRC checks on read: the decoders
//! still reject malformed files with an error, never a panic).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use orderlog_storage::{FsStorage, Storage};

use crate::convert::{ToArrow, check_schema};
use crate::error::Result;
use crate::files::{WrittenFile, io_err, read_whole, sync_dir};
use crate::ipc::{self, IpcMeta, IpcSink};
use crate::options::SnapshotOptions;
use crate::parquet_file::{self, ParquetSink};

/// A file written, with its size and CRC-32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFileInfo {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// CRC-32 of its content.
    pub crc32: u32,
}

fn meta<T: ToArrow>(state: &T) -> IpcMeta {
    IpcMeta { lsn: 0, rows: state.num_rows() as u64, schema_version: 0 }
}

/// Syncs a finished file and its directory; what it was.
fn synced(storage: &dyn Storage, mut written: WrittenFile) -> Result<WrittenFileInfo> {
    written.sync()?;
    sync_dir(storage, "")?;
    Ok(WrittenFileInfo { path: written.path, bytes: written.bytes, crc32: written.crc32 })
}

/// Writes `state` as `dir/data.arrow` (which must not exist) in batches of `batch_rows`,
/// and fsyncs the file and `dir`.
pub fn write_ipc_file<T: ToArrow>(
    dir: &Path,
    state: &T,
    batch_rows: usize,
) -> Result<WrittenFileInfo> {
    let storage = FsStorage::new(dir);
    let mut sink = IpcSink::create(&storage, "", &T::arrow_schema(), true)?;
    for batch in state.record_batches(batch_rows) {
        let batch = batch?;
        check_schema::<T>(&batch)?;
        sink.write(&batch)?;
    }
    synced(&storage, sink.finish(meta(state))?)
}

/// Writes record batches that already exist (for example slices of a state moved into
/// Arrow with `into_record_batch`, so nothing is copied) as `dir/data.arrow`, and fsyncs
/// the file and `dir`. Every batch must have `T`'s schema.
pub fn write_ipc_batches<T: ToArrow>(
    dir: &Path,
    batches: impl IntoIterator<Item = RecordBatch>,
) -> Result<WrittenFileInfo> {
    let storage = FsStorage::new(dir);
    let mut sink = IpcSink::create(&storage, "", &T::arrow_schema(), true)?;
    let mut rows = 0u64;
    for batch in batches {
        check_schema::<T>(&batch)?;
        rows += batch.num_rows() as u64;
        sink.write(&batch)?;
    }
    synced(&storage, sink.finish(IpcMeta { lsn: 0, rows, schema_version: 0 })?)
}

/// Reads a whole file at `path` into one Arrow buffer.
fn read_file(path: &Path, op: &'static str) -> Result<arrow::buffer::Buffer> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    read_whole(&FsStorage::new(dir), &name).map_err(io_err(op, path))
}

/// Reads an Arrow IPC file whole into memory; the batches share one buffer.
pub fn read_ipc_file(path: &Path) -> Result<Vec<RecordBatch>> {
    Ok(ipc::decode(path, read_file(path, "read IPC file")?)?.batches)
}

/// Writes `state` as Parquet under `dir` as `opts` says (`dir/data.parquet`, or one file
/// per partition), and fsyncs the files and directories.
pub fn write_parquet_files<T: ToArrow>(
    dir: &Path,
    state: &T,
    opts: &SnapshotOptions,
) -> Result<Vec<WrittenFileInfo>> {
    opts.validate(&T::arrow_schema())?;
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir));
    let mut sink = ParquetSink::create(&storage, "", T::arrow_schema(), opts, meta(state))?;
    for batch in state.record_batches(opts.batch_rows) {
        let batch = batch?;
        check_schema::<T>(&batch)?;
        sink.write(&batch)?;
    }
    let output = sink.finish()?;
    let mut out = Vec::with_capacity(output.files.len());
    for mut f in output.files {
        f.sync()?;
        out.push(WrittenFileInfo { path: f.path, bytes: f.bytes, crc32: f.crc32 });
    }
    for d in &output.dirs {
        sync_dir(storage.as_ref(), d)?;
    }
    sync_dir(storage.as_ref(), "")?;
    Ok(out)
}

/// Reads a Parquet file whole into memory.
pub fn read_parquet_file(path: &Path) -> Result<Vec<RecordBatch>> {
    parquet_file::read(path, read_file(path, "read Parquet file")?)
}

/// Decodes a Parquet file already read into `bytes` (its size and checksum checked by
/// the caller); `path` names it in errors.
pub fn decode_parquet(path: &Path, bytes: Vec<u8>) -> Result<Vec<RecordBatch>> {
    parquet_file::read(path, arrow::buffer::Buffer::from_vec(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArrowSchemaGen, SnapshotError};
    use arrow::array::{AsArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
    use std::sync::Arc;

    #[derive(Debug, Default, PartialEq)]
    struct Ids {
        id: Vec<u64>,
    }

    impl ArrowSchemaGen for Ids {
        fn arrow_schema() -> SchemaRef {
            Arc::new(Schema::new(vec![Field::new("id", DataType::UInt64, false)]))
        }
        fn arrow_field_names() -> Vec<&'static str> {
            vec!["id"]
        }
        fn arrow_field_types() -> Vec<DataType> {
            vec![DataType::UInt64]
        }
    }

    impl ToArrow for Ids {
        fn num_rows(&self) -> usize {
            self.id.len()
        }
        fn to_record_batch_range(&self, range: std::ops::Range<usize>) -> Result<RecordBatch> {
            let col = UInt64Array::from(self.id[range].to_vec());
            Ok(RecordBatch::try_new(Self::arrow_schema(), vec![Arc::new(col)])?)
        }
        fn from_record_batch(batch: &RecordBatch) -> Result<Self> {
            let mut out = Ids::default();
            out.extend_from_record_batch(batch)?;
            Ok(out)
        }
        fn extend_from_record_batch(&mut self, batch: &RecordBatch) -> Result<()> {
            check_schema::<Self>(batch)?;
            self.id.extend(batch.column(0).as_primitive::<UInt64Type>().values());
            Ok(())
        }
    }

    #[test]
    fn standalone_files_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = Ids { id: (0..10_000).collect() };
        let ipc = write_ipc_file(dir.path(), &state, 1000).expect("write ipc");
        let mut back = Ids::default();
        for b in read_ipc_file(&ipc.path).expect("read ipc") {
            back.extend_from_record_batch(&b).expect("extend");
        }
        assert_eq!(back, state);
        let files = write_parquet_files(dir.path(), &state, &SnapshotOptions::default())
            .expect("write parquet");
        let mut back = Ids::default();
        for b in read_parquet_file(&files[0].path).expect("read parquet") {
            back.extend_from_record_batch(&b).expect("extend");
        }
        assert_eq!(back, state);
        assert!(write_ipc_file(dir.path(), &state, 1000).is_err(), "existing file overwritten");
    }

    /// A Parquet decoding error names the first byte of the row group that failed, and a
    /// damaged footer the footer's start.
    #[test]
    fn parquet_errors_name_the_row_group_or_footer_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = Ids { id: (0..10_000).collect() };
        let opts =
            SnapshotOptions { row_group_rows: 2_500, batch_rows: 2_500, ..Default::default() };
        let path = write_parquet_files(dir.path(), &state, &opts).expect("write").remove(0).path;
        let good = std::fs::read(&path).expect("read");
        let meta = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes::Bytes::from(good.clone()))
            .expect("footer");
        assert_eq!(meta.num_row_groups(), 4);
        let chunk = meta.row_group(2).column(0);
        let at = chunk.dictionary_page_offset().unwrap_or(chunk.data_page_offset());
        let at = usize::try_from(at).expect("offset");

        // The third row group's first page header, overwritten.
        let mut bad = good.clone();
        bad[at..at + 16].fill(0xFF);
        std::fs::write(&path, &bad).expect("write");
        match read_parquet_file(&path) {
            Err(SnapshotError::FileCorrupt { path: named, offset, detail }) => {
                assert_eq!(named, path);
                assert_eq!(offset, at as u64, "{detail}");
                assert!(detail.starts_with("row group 2: "), "{detail}");
            }
            other => panic!("{other:?}"),
        }

        // The footer's metadata: its first bytes, overwritten.
        let footer_len =
            u32::from_le_bytes(good[good.len() - 8..good.len() - 4].try_into().expect("4 bytes"));
        let footer_at = good.len() - 8 - footer_len as usize;
        let mut bad = good;
        bad[footer_at..footer_at + 16].fill(0xFF);
        std::fs::write(&path, &bad).expect("write");
        match read_parquet_file(&path) {
            Err(SnapshotError::FileCorrupt { offset, .. }) => assert_eq!(offset, footer_at as u64),
            other => panic!("{other:?}"),
        }
    }
}
