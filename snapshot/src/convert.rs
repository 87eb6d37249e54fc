//! Struct-of-arrays <-> Arrow: the traits a columnar state implements to be snapshotted.
//!
//! The trait names and the first methods of each are the ones services already use
//! (`arrow_schema`, `arrow_field_names`, `arrow_field_types`, `to_record_batch`,
//! `from_record_batch`); the rest let large states be written in bounded batches and let
//! owned columns move into Arrow buffers without a copy.

use std::ops::Range;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};

use crate::error::{Result, SnapshotError};

/// The Arrow schema of a struct-of-arrays type.
pub trait ArrowSchemaGen {
    /// The schema every batch of this type has.
    fn arrow_schema() -> SchemaRef;
    /// Column names, in schema order.
    fn arrow_field_names() -> Vec<&'static str>;
    /// Column types, in schema order.
    fn arrow_field_types() -> Vec<DataType>;
}

/// Conversion between a struct-of-arrays value and Arrow record batches.
pub trait ToArrow: ArrowSchemaGen {
    /// Rows held.
    fn num_rows(&self) -> usize;

    /// Rows `range` as one batch (copies that slice of each column).
    fn to_record_batch_range(&self, range: Range<usize>) -> Result<RecordBatch>;

    /// Every row as one batch. Prefer [`ToArrow::record_batches`] for large states.
    fn to_record_batch(&self) -> Result<RecordBatch> {
        self.to_record_batch_range(0..self.num_rows())
    }

    /// Consumes the value and moves its column vectors into Arrow buffers without
    /// copying. The default copies; implementations override it.
    fn into_record_batch(self) -> Result<RecordBatch>
    where
        Self: Sized,
    {
        self.to_record_batch()
    }

    /// Builds a value from a batch, checking the schema (names, types, nullability)
    /// and every value; a mismatch is an error naming the column.
    fn from_record_batch(batch: &RecordBatch) -> Result<Self>
    where
        Self: Sized;

    /// Appends the rows of `batch` (schema-checked like `from_record_batch`).
    fn extend_from_record_batch(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Makes room for `additional` more rows before a bulk load (a hint: the default
    /// does nothing).
    fn reserve_rows(&mut self, additional: usize) {
        let _ = additional;
    }

    /// The rows in batches of at most `max_rows`, converted one at a time, so a large
    /// state is never copied whole.
    fn record_batches(&self, max_rows: usize) -> impl Iterator<Item = Result<RecordBatch>> + '_
    where
        Self: Sized,
    {
        let max_rows = max_rows.max(1);
        let n = self.num_rows();
        (0..n.div_ceil(max_rows)).map(move |i| {
            let start = i * max_rows;
            self.to_record_batch_range(start..(start + max_rows).min(n))
        })
    }
}

/// Checks that `batch` has exactly the columns of `T`'s schema: same names in the same
/// order, same types, and no nulls where the schema forbids them.
pub fn check_schema<T: ArrowSchemaGen>(batch: &RecordBatch) -> Result<()> {
    let expected = T::arrow_schema();
    let found = batch.schema();
    if found.fields().len() != expected.fields().len() {
        return Err(SnapshotError::SchemaMismatch {
            column: String::new(),
            detail: format!(
                "batch has {} columns, expected {}",
                found.fields().len(),
                expected.fields().len()
            ),
        });
    }
    for (i, (want, got)) in expected.fields().iter().zip(found.fields().iter()).enumerate() {
        if want.name() != got.name() {
            return Err(SnapshotError::SchemaMismatch {
                column: want.name().clone(),
                detail: format!("column {i} is named {:?}", got.name()),
            });
        }
        if want.data_type() != got.data_type() {
            return Err(SnapshotError::WrongType {
                column: want.name().clone(),
                expected: want.data_type().clone(),
                found: got.data_type().clone(),
            });
        }
        if !want.is_nullable() && batch.column(i).null_count() > 0 {
            return Err(SnapshotError::SchemaMismatch {
                column: want.name().clone(),
                detail: format!(
                    "{} null values in a non-nullable column",
                    batch.column(i).null_count()
                ),
            });
        }
    }
    Ok(())
}
