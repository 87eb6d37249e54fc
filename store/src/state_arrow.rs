//! `OrderState` <-> Arrow: the order columns plus each order's `version` (UInt32), so a
//! snapshot restores optimistic-concurrency versions too.

use std::ops::Range;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, AsArray, Float64Array, RecordBatch, UInt8Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};
use orderlog_snapshot::{ArrowSchemaGen, Result, SnapshotError, ToArrow, check_schema};

use crate::domain::OrderSoA;
use crate::state::OrderState;

/// Name of the version column, after the order columns.
const VERSION: &str = "version";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> =
        OrderSoA::arrow_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(VERSION, DataType::UInt32, false));
    Arc::new(Schema::new(fields))
});

impl ArrowSchemaGen for OrderState {
    fn arrow_schema() -> SchemaRef {
        Arc::clone(&SCHEMA)
    }
    fn arrow_field_names() -> Vec<&'static str> {
        let mut names = OrderSoA::arrow_field_names();
        names.push(VERSION);
        names
    }
    fn arrow_field_types() -> Vec<DataType> {
        let mut types = OrderSoA::arrow_field_types();
        types.push(DataType::UInt32);
        types
    }
}

/// Adds the version column to a batch of order columns.
fn with_versions(orders: RecordBatch, versions: Vec<u32>) -> Result<RecordBatch> {
    let mut columns = orders.columns().to_vec();
    columns.push(Arc::new(UInt32Array::from(versions)));
    Ok(RecordBatch::try_new(OrderState::arrow_schema(), columns)?)
}

impl ToArrow for OrderState {
    fn num_rows(&self) -> usize {
        self.orders.len()
    }

    fn to_record_batch_range(&self, range: Range<usize>) -> Result<RecordBatch> {
        let versions = self.versions[range.clone()].to_vec();
        with_versions(self.orders.to_record_batch_range(range)?, versions)
    }

    fn into_record_batch(self) -> Result<RecordBatch> {
        with_versions(self.orders.into_record_batch()?, self.versions)
    }

    fn reserve_rows(&mut self, additional: usize) {
        self.orders.reserve(additional);
        self.versions.reserve_exact(additional);
    }

    fn from_record_batch(batch: &RecordBatch) -> Result<Self> {
        let mut state = OrderState::new();
        state.extend_from_record_batch(batch)?;
        Ok(state)
    }

    fn extend_from_record_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        check_schema::<Self>(batch)?;
        let order_columns: Vec<usize> = (0..batch.num_columns() - 1).collect();
        let versions = batch.column(batch.num_columns() - 1).as_primitive::<UInt32Type>().values();
        if let Some(row) = versions.iter().position(|&v| v == 0) {
            return Err(SnapshotError::InvalidValue {
                column: VERSION.into(),
                row,
                detail: "an order's version is at least 1".into(),
            });
        }
        // The order columns are checked (and applied all or nothing) by OrderSoA.
        self.orders.extend_from_record_batch(&batch.project(&order_columns)?)?;
        self.versions.extend_from_slice(versions);
        Ok(())
    }
}

impl OrderState {
    /// The given rows (by row index, in the order given) as one batch in the state's
    /// schema: each column gathered into a new buffer, the rest of the state untouched.
    #[cfg_attr(not(feature = "analytics"), allow(dead_code, reason = "used by analytics"))]
    pub(crate) fn gather_record_batch(&self, rows: &[usize]) -> Result<RecordBatch> {
        fn gather<T: Copy>(column: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&r| column[r]).collect()
        }
        let o = &self.orders;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(gather(o.order_id_raw_array(), rows))),
            Arc::new(UInt64Array::from(gather(o.customer_id_raw_array(), rows))),
            Arc::new(UInt64Array::from(gather(o.product_id_raw_array(), rows))),
            Arc::new(UInt32Array::from(gather(o.quantity_raw_array(), rows))),
            Arc::new(Float64Array::from(gather(o.unit_price_raw_array(), rows))),
            Arc::new(Float64Array::from(gather(o.total_amount_raw_array(), rows))),
            Arc::new(UInt8Array::from(gather(o.status_raw_array(), rows))),
            Arc::new(UInt8Array::from(gather(o.payment_method_raw_array(), rows))),
            Arc::new(UInt64Array::from(gather(o.order_timestamp_raw_array(), rows))),
            Arc::new(UInt64Array::from(gather(o.shipping_address_hash_raw_array(), rows))),
            Arc::new(UInt32Array::from(gather(&self.versions, rows))),
        ];
        Ok(RecordBatch::try_new(OrderState::arrow_schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Order, OrderStatus};
    use crate::events::Event;

    #[test]
    fn state_round_trips_with_versions() {
        let mut state = OrderState::new();
        let creates: Vec<Event> = (1..=50)
            .map(|id| {
                Event::create(
                    Order::builder(id)
                        .customer(1)
                        .product(2)
                        .quantity(3)
                        .unit_price(4.5)
                        .build()
                        .unwrap(),
                )
            })
            .collect();
        state.apply_batch(&creates).expect("creates");
        for id in (1..=50).step_by(5) {
            state.apply_batch(&[Event::set_status(id, OrderStatus::Confirmed)]).expect("confirm");
        }
        let batch = state.to_record_batch().expect("to arrow");
        assert_eq!(batch.num_columns(), 11);
        let back = OrderState::from_record_batch(&batch).expect("from arrow");
        assert_eq!(back, state);
        assert_eq!(back.get(6).map(|(_, v)| v), Some(2));
        let mut bad = batch.columns().to_vec();
        bad[10] = Arc::new(UInt32Array::from(vec![0u32; 50]));
        let bad = RecordBatch::try_new(OrderState::arrow_schema(), bad).expect("batch");
        assert!(
            matches!(OrderState::from_record_batch(&bad), Err(SnapshotError::InvalidValue { column, .. }) if column == "version")
        );
    }

    #[test]
    fn gathered_rows_equal_the_same_rows_of_the_whole_batch() {
        let mut state = OrderState::new();
        let batch: Vec<Event> = (1..=20)
            .map(|id| {
                Event::create(
                    Order::builder(id)
                        .customer(id % 3)
                        .product(7)
                        .quantity(2)
                        .unit_price(id as f64)
                        .build()
                        .unwrap(),
                )
            })
            .collect();
        state.apply_batch(&batch).expect("fold");
        state.apply_batch(&[Event::set_status(4, OrderStatus::Confirmed)]).expect("fold");
        let whole = state.to_record_batch().expect("batch");
        let rows = [3usize, 0, 19, 3];
        let gathered = state.gather_record_batch(&rows).expect("gather");
        assert_eq!(gathered.schema(), whole.schema());
        for (i, &r) in rows.iter().enumerate() {
            assert_eq!(gathered.slice(i, 1), whole.slice(r, 1), "row {r}");
        }
        assert_eq!(state.gather_record_batch(&[]).expect("empty").num_rows(), 0);
    }
}
