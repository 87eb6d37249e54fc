//! Writes the seed corpus of `decode_ipc` and `decode_parquet` into
//! `fuzz/corpus/<target>/` (an ignored test: run it to regenerate the seeds).
//!
//! Every seed is made by the crate's own writers (`write_ipc_file`,
//! `write_parquet_files`) from a small state of five columns (integers, a float, an enum
//! byte and a nullable string): Arrow IPC files of several batches, one row and no rows;
//! Parquet files with each compression, several row groups, no rows, and a partition's
//! part file; then a few damaged copies. Run from the repository root:
//!
//! ```text
//! cargo test --release -p orderlog-snapshot --lib write_seed_corpus -- --ignored
//! ```
//!
//! The writers are deterministic, so the files are the same on every run.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    AsArray, Float64Array, RecordBatch, StringArray, UInt8Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Schema, SchemaRef, UInt8Type, UInt32Type, UInt64Type,
};

use crate::{
    ArrowSchemaGen, ParquetCompression, Result, SnapshotOptions, ToArrow, check_schema,
    write_ipc_file, write_parquet_files,
};

/// A small struct-of-arrays state; `kind` is the partition column.
#[derive(Debug, Default, PartialEq)]
struct Seed {
    id: Vec<u64>,
    qty: Vec<u32>,
    price: Vec<f64>,
    kind: Vec<u8>,
    note: Vec<Option<String>>,
}

impl ArrowSchemaGen for Seed {
    fn arrow_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("qty", DataType::UInt32, false),
            Field::new("price", DataType::Float64, false),
            Field::new("kind", DataType::UInt8, false),
            Field::new("note", DataType::Utf8, true),
        ]))
    }
    fn arrow_field_names() -> Vec<&'static str> {
        vec!["id", "qty", "price", "kind", "note"]
    }
    fn arrow_field_types() -> Vec<DataType> {
        vec![DataType::UInt64, DataType::UInt32, DataType::Float64, DataType::UInt8, DataType::Utf8]
    }
}

impl ToArrow for Seed {
    fn num_rows(&self) -> usize {
        self.id.len()
    }
    fn to_record_batch_range(&self, r: Range<usize>) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            Self::arrow_schema(),
            vec![
                Arc::new(UInt64Array::from(self.id[r.clone()].to_vec())),
                Arc::new(UInt32Array::from(self.qty[r.clone()].to_vec())),
                Arc::new(Float64Array::from(self.price[r.clone()].to_vec())),
                Arc::new(UInt8Array::from(self.kind[r.clone()].to_vec())),
                Arc::new(StringArray::from(self.note[r].to_vec())),
            ],
        )?)
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Self> {
        let mut out = Seed::default();
        out.extend_from_record_batch(batch)?;
        Ok(out)
    }
    fn extend_from_record_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        check_schema::<Self>(batch)?;
        self.id.extend(batch.column(0).as_primitive::<UInt64Type>().values());
        self.qty.extend(batch.column(1).as_primitive::<UInt32Type>().values());
        self.price.extend(batch.column(2).as_primitive::<Float64Type>().values());
        self.kind.extend(batch.column(3).as_primitive::<UInt8Type>().values());
        self.note.extend(batch.column(4).as_string::<i32>().iter().map(|s| s.map(String::from)));
        Ok(())
    }
}

fn seed(rows: u64) -> Seed {
    let mut s = Seed::default();
    for i in 0..rows {
        s.id.push(1_000 + i);
        s.qty.push(u32::try_from(i % 7).expect("small"));
        s.price.push(9.5 + i as f64 * 0.25);
        s.kind.push(u8::try_from(i % 3).expect("small"));
        s.note.push((i % 4 != 1).then(|| format!("note {i}")));
    }
    s
}

#[test]
#[ignore = "writes fuzz/corpus: run it to regenerate the seeds"]
fn write_seed_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");

    let ipc = target(&corpus, "decode_ipc");
    let ipc_file = |state: &Seed, batch_rows: usize| {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = write_ipc_file(dir.path(), state, batch_rows).expect("write IPC");
        fs::read(written.path).expect("read IPC")
    };
    let three = ipc_file(&seed(10), 4);
    assert_eq!(super::decode_ipc(&three), 10, "a valid IPC seed does not decode");
    write(&ipc, "ipc-10-rows-3-batches", &three);
    write(&ipc, "ipc-1-row", &ipc_file(&seed(1), 4));
    write(&ipc, "ipc-no-rows", &ipc_file(&seed(0), 4));
    write(&ipc, "damaged-cut-before-footer", &three[..three.len() / 2]);
    let mut flipped = three.clone();
    flipped[three.len() - 12] ^= 0x7f;
    write(&ipc, "damaged-footer-length", &flipped);
    let mut flipped = three.clone();
    flipped[200] ^= 0x55;
    write(&ipc, "damaged-first-message", &flipped);

    let parquet = target(&corpus, "decode_parquet");
    let parquet_files = |state: &Seed, opts: &SnapshotOptions| {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = write_parquet_files(dir.path(), state, opts).expect("write Parquet");
        written.iter().map(|f| fs::read(&f.path).expect("read Parquet")).collect::<Vec<_>>()
    };
    let opts = |compression| SnapshotOptions {
        compression,
        row_group_rows: 4,
        batch_rows: 4,
        ..SnapshotOptions::default()
    };
    let mut zstd = Vec::new();
    for compression in
        [ParquetCompression::None, ParquetCompression::Snappy, ParquetCompression::Zstd]
    {
        let files = parquet_files(&seed(10), &opts(compression));
        assert_eq!(files.len(), 1);
        write(&parquet, &format!("parquet-{compression}-3-row-groups"), &files[0]);
        assert_eq!(super::decode_parquet(&files[0]), 10, "a valid Parquet seed does not read");
        zstd.clone_from(&files[0]);
    }
    let one = parquet_files(&seed(1), &opts(ParquetCompression::None));
    write(&parquet, "parquet-none-1-row", &one[0]);
    let empty = parquet_files(&seed(0), &opts(ParquetCompression::Zstd));
    write(&parquet, "parquet-zstd-no-rows", &empty[0]);
    let partitioned =
        SnapshotOptions { partition_by: Some("kind".into()), ..opts(ParquetCompression::Snappy) };
    let parts = parquet_files(&seed(10), &partitioned);
    assert_eq!(parts.len(), 3);
    write(&parquet, "parquet-snappy-partition-part", &parts[1]);
    assert!(super::decode_parquet(&parts[1]) > 0, "a partition's part file does not read");
    write(&parquet, "damaged-cut-before-footer", &zstd[..zstd.len() / 2]);
    let mut flipped = zstd.clone();
    flipped[zstd.len() - 9] ^= 0x7f;
    write(&parquet, "damaged-footer-length", &flipped);
    let mut flipped = zstd;
    flipped[40] ^= 0x55;
    write(&parquet, "damaged-first-page", &flipped);
}

fn target(corpus: &Path, name: &str) -> PathBuf {
    let dir = corpus.join(name);
    fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("write seed");
}
