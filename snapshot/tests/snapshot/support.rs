//! The test state type, `Sample`, and helpers shared by the modules.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float64Array, RecordBatch, UInt8Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Schema, SchemaRef, UInt8Type, UInt32Type, UInt64Type,
};
use orderlog_snapshot::{
    ArrowSchemaGen, ParquetCompression, Result, SnapshotError, SnapshotOptions, ToArrow,
    check_schema,
};
use proptest::prelude::*;

/// An enum stored as a u8, like the states of many domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    Red = 0,
    Green = 1,
    Blue = 2,
    Black = 3,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        [Kind::Red, Kind::Green, Kind::Blue, Kind::Black].get(usize::from(b)).copied()
    }
}

/// A generic struct-of-arrays state: four columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub id: Vec<u64>,
    pub qty: Vec<u32>,
    pub price: Vec<f64>,
    pub kind: Vec<Kind>,
}

pub fn sample_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("qty", DataType::UInt32, false),
        Field::new("price", DataType::Float64, false),
        Field::new("kind", DataType::UInt8, false),
    ]))
}

impl ArrowSchemaGen for Sample {
    fn arrow_schema() -> SchemaRef {
        sample_schema()
    }
    fn arrow_field_names() -> Vec<&'static str> {
        vec!["id", "qty", "price", "kind"]
    }
    fn arrow_field_types() -> Vec<DataType> {
        vec![DataType::UInt64, DataType::UInt32, DataType::Float64, DataType::UInt8]
    }
}

impl ToArrow for Sample {
    fn num_rows(&self) -> usize {
        self.id.len()
    }

    fn to_record_batch_range(&self, r: Range<usize>) -> Result<RecordBatch> {
        let kind: Vec<u8> = self.kind[r.clone()].iter().map(|k| *k as u8).collect();
        Ok(RecordBatch::try_new(
            Self::arrow_schema(),
            vec![
                Arc::new(UInt64Array::from(self.id[r.clone()].to_vec())),
                Arc::new(UInt32Array::from(self.qty[r.clone()].to_vec())),
                Arc::new(Float64Array::from(self.price[r].to_vec())),
                Arc::new(UInt8Array::from(kind)),
            ],
        )?)
    }

    fn from_record_batch(batch: &RecordBatch) -> Result<Self> {
        let mut out = Sample::default();
        out.extend_from_record_batch(batch)?;
        Ok(out)
    }

    fn extend_from_record_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        check_schema::<Self>(batch)?;
        let mut kinds = Vec::with_capacity(batch.num_rows());
        for (row, &b) in batch.column(3).as_primitive::<UInt8Type>().values().iter().enumerate() {
            kinds.push(Kind::from_u8(b).ok_or_else(|| SnapshotError::InvalidValue {
                column: "kind".into(),
                row,
                detail: format!("{b} is not a Kind"),
            })?);
        }
        self.id.extend(batch.column(0).as_primitive::<UInt64Type>().values());
        self.qty.extend(batch.column(1).as_primitive::<UInt32Type>().values());
        self.price.extend(batch.column(2).as_primitive::<Float64Type>().values());
        self.kind.extend(kinds);
        Ok(())
    }
}

impl Sample {
    /// A deterministic state of `n` rows, different for each `seed`.
    pub fn generate(n: usize, seed: u64) -> Sample {
        let mut s = Sample::default();
        for i in 0..n as u64 {
            let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed;
            s.id.push(seed * 1_000_000 + i);
            s.qty.push((x % 1000) as u32);
            s.price.push((x % 100_000) as f64 / 100.0);
            s.kind.push(Kind::from_u8((x % 4) as u8).unwrap());
        }
        s
    }

    /// The rows as comparable tuples (f64 by its bits), sorted: equality of two states up
    /// to row order (partitioned Parquet groups rows by partition).
    pub fn sorted_rows(&self) -> Vec<(u64, u32, u64, Kind)> {
        let mut rows: Vec<_> = (0..self.id.len())
            .map(|i| (self.id[i], self.qty[i], self.price[i].to_bits(), self.kind[i]))
            .collect();
        rows.sort();
        rows
    }

    /// Equality with floats compared by bits (NaN equals itself).
    pub fn same_as(&self, other: &Sample) -> bool {
        self.id == other.id
            && self.qty == other.qty
            && self.kind == other.kind
            && self.price.len() == other.price.len()
            && self.price.iter().zip(&other.price).all(|(a, b)| a.to_bits() == b.to_bits())
    }

    /// Builds a state from record batches (IPC or Parquet read-back).
    pub fn from_batches(batches: &[RecordBatch]) -> Sample {
        let mut s = Sample::default();
        for b in batches {
            s.extend_from_record_batch(b).unwrap();
        }
        s
    }
}

/// The same schema as `Sample` but the `kind` column is a raw byte: it can write values
/// `Sample` rejects.
#[derive(Debug, Clone, Default)]
pub struct RawSample {
    pub id: Vec<u64>,
    pub kind: Vec<u8>,
}

impl ArrowSchemaGen for RawSample {
    fn arrow_schema() -> SchemaRef {
        sample_schema()
    }
    fn arrow_field_names() -> Vec<&'static str> {
        Sample::arrow_field_names()
    }
    fn arrow_field_types() -> Vec<DataType> {
        Sample::arrow_field_types()
    }
}

impl ToArrow for RawSample {
    fn num_rows(&self) -> usize {
        self.id.len()
    }
    fn to_record_batch_range(&self, r: Range<usize>) -> Result<RecordBatch> {
        let n = r.len();
        Ok(RecordBatch::try_new(
            Self::arrow_schema(),
            vec![
                Arc::new(UInt64Array::from(self.id[r.clone()].to_vec())),
                Arc::new(UInt32Array::from(vec![0u32; n])),
                Arc::new(Float64Array::from(vec![0.0; n])),
                Arc::new(UInt8Array::from(self.kind[r].to_vec())),
            ],
        )?)
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Self> {
        let mut out = RawSample::default();
        out.extend_from_record_batch(batch)?;
        Ok(out)
    }
    fn extend_from_record_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        check_schema::<Self>(batch)?;
        self.id.extend(batch.column(0).as_primitive::<UInt64Type>().values());
        self.kind.extend(batch.column(3).as_primitive::<UInt8Type>().values());
        Ok(())
    }
}

/// Another type. `RENAMED = false`: `qty` is a u64 (a type change). `RENAMED = true`:
/// `price` is called `cost` (a name change).
#[derive(Debug, Clone, Default)]
pub struct OtherSample<const RENAMED: bool> {
    pub n: usize,
}

impl<const RENAMED: bool> ArrowSchemaGen for OtherSample<RENAMED> {
    fn arrow_schema() -> SchemaRef {
        let (qty, price) =
            if RENAMED { (DataType::UInt32, "cost") } else { (DataType::UInt64, "price") };
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("qty", qty, false),
            Field::new(price, DataType::Float64, false),
            Field::new("kind", DataType::UInt8, false),
        ]))
    }
    fn arrow_field_names() -> Vec<&'static str> {
        vec!["id", "qty", if RENAMED { "cost" } else { "price" }, "kind"]
    }
    fn arrow_field_types() -> Vec<DataType> {
        Self::arrow_schema().fields().iter().map(|f| f.data_type().clone()).collect()
    }
}

impl<const RENAMED: bool> ToArrow for OtherSample<RENAMED> {
    fn num_rows(&self) -> usize {
        self.n
    }
    fn to_record_batch_range(&self, r: Range<usize>) -> Result<RecordBatch> {
        let n = r.len();
        let qty: Arc<dyn Array> = if RENAMED {
            Arc::new(UInt32Array::from(vec![2u32; n]))
        } else {
            Arc::new(UInt64Array::from(vec![2u64; n]))
        };
        Ok(RecordBatch::try_new(
            Self::arrow_schema(),
            vec![
                Arc::new(UInt64Array::from(vec![1u64; n])),
                qty,
                Arc::new(Float64Array::from(vec![3.0; n])),
                Arc::new(UInt8Array::from(vec![0u8; n])),
            ],
        )?)
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Self> {
        check_schema::<Self>(batch)?;
        Ok(OtherSample { n: batch.num_rows() })
    }
    fn extend_from_record_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        check_schema::<Self>(batch)?;
        self.n += batch.num_rows();
        Ok(())
    }
}

/// Any `Sample` of up to `max_rows` rows, floats of every kind (NaN, infinities, -0.0).
pub fn any_sample(max_rows: usize) -> impl Strategy<Value = Sample> {
    prop::collection::vec((any::<u64>(), any::<u32>(), any::<f64>(), 0u8..4), 0..=max_rows)
        .prop_map(|rows| {
            let mut s = Sample::default();
            for (id, qty, price, kind) in rows {
                s.id.push(id);
                s.qty.push(qty);
                s.price.push(price);
                s.kind.push(Kind::from_u8(kind).unwrap());
            }
            s
        })
}

pub fn any_compression() -> impl Strategy<Value = ParquetCompression> {
    prop_oneof![
        Just(ParquetCompression::None),
        Just(ParquetCompression::Snappy),
        Just(ParquetCompression::Zstd),
    ]
}

/// Small sizes, so a few rows already make several batches and row groups.
pub fn small_options() -> SnapshotOptions {
    SnapshotOptions { row_group_rows: 7, batch_rows: 5, ..SnapshotOptions::default() }
}

/// Names in a directory, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}
