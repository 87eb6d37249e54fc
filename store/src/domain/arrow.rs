//! `OrderSoA` <-> Arrow: the schema and the conversions.
//!
//! Columns map one to one; enums are `UInt8` holding their byte values. No column is
//! nullable. `into_record_batch` moves each vector into an Arrow buffer without copying;
//! the borrowing conversions copy only the rows asked for.

use std::ops::Range;
use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, ArrowPrimitiveType, AsArray, PrimitiveArray, RecordBatch};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{
    DataType, Field, Float64Type, Schema, SchemaRef, UInt8Type, UInt32Type, UInt64Type,
};
use orderlog_snapshot::{ArrowSchemaGen, Result, SnapshotError, ToArrow, check_schema};

use crate::domain::DomainError;
use crate::domain::index::MAX_ROWS;
use crate::domain::order::{Order, OrderStatus, PaymentMethod};
use crate::domain::soa::OrderSoA;

/// Column names and types, in schema order.
const COLUMNS: [(&str, DataType); 10] = [
    ("order_id", DataType::UInt64),
    ("customer_id", DataType::UInt64),
    ("product_id", DataType::UInt64),
    ("quantity", DataType::UInt32),
    ("unit_price", DataType::Float64),
    ("total_amount", DataType::Float64),
    ("status", DataType::UInt8),
    ("payment_method", DataType::UInt8),
    ("order_timestamp", DataType::UInt64),
    ("shipping_address_hash", DataType::UInt64),
];

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(
        COLUMNS.iter().map(|(name, ty)| Field::new(*name, ty.clone(), false)).collect::<Vec<_>>(),
    ))
});

impl ArrowSchemaGen for OrderSoA {
    fn arrow_schema() -> SchemaRef {
        Arc::clone(&SCHEMA)
    }
    fn arrow_field_names() -> Vec<&'static str> {
        COLUMNS.iter().map(|(name, _)| *name).collect()
    }
    fn arrow_field_types() -> Vec<DataType> {
        COLUMNS.iter().map(|(_, ty)| ty.clone()).collect()
    }
}

/// A primitive array that owns `values` (no copy).
fn owned<T: ArrowPrimitiveType>(values: Vec<T::Native>) -> ArrayRef {
    Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), None))
}

/// A primitive array holding a copy of `values`.
fn copied<T: ArrowPrimitiveType>(values: &[T::Native]) -> ArrayRef {
    owned::<T>(values.to_vec())
}

fn values<T: ArrowPrimitiveType>(batch: &RecordBatch, column: usize) -> &[T::Native] {
    // `check_schema` ran first: column `column` has exactly type `T`'s data type.
    batch.column(column).as_primitive::<T>().values()
}

impl ToArrow for OrderSoA {
    fn num_rows(&self) -> usize {
        self.len()
    }

    fn to_record_batch_range(&self, r: Range<usize>) -> Result<RecordBatch> {
        let columns = vec![
            copied::<UInt64Type>(&self.order_id[r.clone()]),
            copied::<UInt64Type>(&self.customer_id[r.clone()]),
            copied::<UInt64Type>(&self.product_id[r.clone()]),
            copied::<UInt32Type>(&self.quantity[r.clone()]),
            copied::<Float64Type>(&self.unit_price[r.clone()]),
            copied::<Float64Type>(&self.total_amount[r.clone()]),
            copied::<UInt8Type>(&self.status[r.clone()]),
            copied::<UInt8Type>(&self.payment_method[r.clone()]),
            copied::<UInt64Type>(&self.order_timestamp[r.clone()]),
            copied::<UInt64Type>(&self.shipping_address_hash[r]),
        ];
        Ok(RecordBatch::try_new(Self::arrow_schema(), columns)?)
    }

    fn into_record_batch(self) -> Result<RecordBatch> {
        let columns = vec![
            owned::<UInt64Type>(self.order_id),
            owned::<UInt64Type>(self.customer_id),
            owned::<UInt64Type>(self.product_id),
            owned::<UInt32Type>(self.quantity),
            owned::<Float64Type>(self.unit_price),
            owned::<Float64Type>(self.total_amount),
            owned::<UInt8Type>(self.status),
            owned::<UInt8Type>(self.payment_method),
            owned::<UInt64Type>(self.order_timestamp),
            owned::<UInt64Type>(self.shipping_address_hash),
        ];
        Ok(RecordBatch::try_new(Self::arrow_schema(), columns)?)
    }

    fn reserve_rows(&mut self, additional: usize) {
        self.reserve(additional);
    }

    fn from_record_batch(batch: &RecordBatch) -> Result<Self> {
        let mut soa = OrderSoA::new();
        soa.extend_from_record_batch(batch)?;
        Ok(soa)
    }

    fn extend_from_record_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        check_schema::<Self>(batch)?;
        let n = batch.num_rows();
        let ids = values::<UInt64Type>(batch, 0);
        let quantity = values::<UInt32Type>(batch, 3);
        let unit_price = values::<Float64Type>(batch, 4);
        let total = values::<Float64Type>(batch, 5);
        let status = values::<UInt8Type>(batch, 6);
        let payment = values::<UInt8Type>(batch, 7);
        let invalid = |column: &str, row: usize, detail: String| SnapshotError::InvalidValue {
            column: column.to_owned(),
            row,
            detail,
        };
        // Check every value before changing anything.
        if self.len() + n > MAX_ROWS {
            return Err(invalid(
                "order_id",
                n.saturating_sub(1),
                format!("more than {MAX_ROWS} orders"),
            ));
        }
        for row in 0..n {
            let status_ok = OrderStatus::try_from(status[row]);
            let status_ok = status_ok.map_err(|e| invalid("status", row, e.to_string()))?;
            let pay_ok = PaymentMethod::try_from(payment[row]);
            let pay_ok = pay_ok.map_err(|e| invalid("payment_method", row, e.to_string()))?;
            let order = Order {
                order_id: ids[row],
                customer_id: 0,
                product_id: 0,
                quantity: quantity[row],
                unit_price: unit_price[row],
                status: status_ok,
                payment_method: pay_ok,
                order_timestamp: 0,
                shipping_address_hash: 0,
            };
            order.validate().map_err(|e| invalid(column_of(&e), row, e.to_string()))?;
            let expected = order.total_amount();
            if !totals_agree(expected, total[row]) {
                let why =
                    format!("total {} differs from quantity × unit price = {expected}", total[row]);
                return Err(invalid("total_amount", row, why));
            }
        }
        self.reserve(n);
        self.order_id.extend_from_slice(ids);
        self.customer_id.extend_from_slice(values::<UInt64Type>(batch, 1));
        self.product_id.extend_from_slice(values::<UInt64Type>(batch, 2));
        self.quantity.extend_from_slice(quantity);
        self.unit_price.extend_from_slice(unit_price);
        self.total_amount.extend_from_slice(total);
        self.status.extend_from_slice(status);
        self.payment_method.extend_from_slice(payment);
        self.order_timestamp.extend_from_slice(values::<UInt64Type>(batch, 8));
        self.shipping_address_hash.extend_from_slice(values::<UInt64Type>(batch, 9));
        // Index the new rows; a duplicate id undoes the whole batch.
        let first = self.len() - n;
        if let Err((row, _)) = self.index.insert_all_new(first..self.len(), &self.order_id) {
            let duplicate = self.order_id[row];
            self.truncate_to(first);
            return Err(invalid(
                "order_id",
                row - first,
                format!("duplicate order id {duplicate}"),
            ));
        }
        Ok(())
    }
}

/// The column a value error is about.
fn column_of(e: &DomainError) -> &'static str {
    match e {
        DomainError::ZeroQuantity { .. } => "quantity",
        _ => "unit_price",
    }
}

/// A stored total agrees with quantity × unit price up to rounding of the product.
fn totals_agree(expected: f64, found: f64) -> bool {
    found.is_finite() && (expected - found).abs() <= 1e-9 * expected.abs().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, UInt8Array};
    use proptest::prelude::*;

    fn order_strategy() -> impl Strategy<Value = Order> {
        (
            any::<u64>(),
            any::<u64>(),
            1u32..1000,
            0.0f64..10_000.0,
            0usize..6,
            0usize..5,
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(customer, product, qty, price, s, p, ts, hash)| Order {
                order_id: 0,
                customer_id: customer,
                product_id: product,
                quantity: qty,
                unit_price: price,
                status: OrderStatus::ALL[s],
                payment_method: PaymentMethod::ALL[p],
                order_timestamp: ts,
                shipping_address_hash: hash,
            })
    }

    fn soa_of(orders: Vec<Order>) -> OrderSoA {
        let mut soa = OrderSoA::new();
        for (i, mut o) in orders.into_iter().enumerate() {
            o.order_id = i as u64 * 7 + 1;
            soa.push(o).expect("valid order");
        }
        soa
    }

    proptest! {
        #[test]
        fn arrow_round_trip_keeps_every_value(orders in proptest::collection::vec(order_strategy(), 0..200), chunk in 1usize..50) {
            let soa = soa_of(orders);
            let batch = soa.to_record_batch().expect("to arrow");
            prop_assert_eq!(&OrderSoA::from_record_batch(&batch).expect("from arrow"), &soa);
            let mut rebuilt = OrderSoA::new();
            for b in soa.record_batches(chunk) {
                rebuilt.extend_from_record_batch(&b.expect("chunk")).expect("extend");
            }
            prop_assert_eq!(&rebuilt, &soa);
            let moved = soa.clone().into_record_batch().expect("into arrow");
            prop_assert_eq!(&moved, &batch);
            for o in soa.iter() {
                prop_assert_eq!(rebuilt.get(o.order_id), Some(o));
            }
        }
    }

    /// One valid order (ids are given by `soa_of`).
    fn sample() -> Order {
        Order::builder(0).customer(1).product(2).quantity(3).unit_price(4.0).build().unwrap()
    }

    #[test]
    fn into_record_batch_moves_buffers_without_copying() {
        let soa = soa_of(vec![sample(); 1000]);
        let ptr = soa.order_id_raw_array().as_ptr();
        let batch = soa.into_record_batch().expect("into arrow");
        let ids = batch.column(0).as_primitive::<UInt64Type>();
        assert_eq!(ids.values().as_ptr(), ptr, "order_id buffer was copied");
    }

    #[test]
    fn from_record_batch_names_the_bad_column() {
        let soa = soa_of(vec![sample(); 3]);
        let batch = soa.to_record_batch().expect("to arrow");
        // An out-of-range status byte.
        let mut columns = batch.columns().to_vec();
        columns[6] = Arc::new(UInt8Array::from(vec![0u8, 9, 1]));
        let bad = RecordBatch::try_new(OrderSoA::arrow_schema(), columns).expect("batch");
        match OrderSoA::from_record_batch(&bad) {
            Err(SnapshotError::InvalidValue { column, row, .. }) => {
                assert_eq!((column.as_str(), row), ("status", 1));
            }
            other => panic!("expected InvalidValue, got {other:?}"),
        }
        // A wrong type: quantity as UInt64.
        let mut fields: Vec<Field> =
            OrderSoA::arrow_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[3] = Field::new("quantity", DataType::UInt64, false);
        let mut columns = batch.columns().to_vec();
        columns[3] = Arc::new(arrow::array::UInt64Array::from(vec![3u64; 3]));
        let bad =
            RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), columns).expect("batch");
        assert!(
            matches!(OrderSoA::from_record_batch(&bad), Err(SnapshotError::WrongType { column, .. }) if column == "quantity")
        );
        // A renamed column.
        fields[3] = Field::new("qty", DataType::UInt32, false);
        let bad = RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec())
            .expect("batch");
        assert!(
            matches!(OrderSoA::from_record_batch(&bad), Err(SnapshotError::SchemaMismatch { column, .. }) if column == "quantity")
        );
        // Duplicate ids within one batch.
        let dup = RecordBatch::try_new(
            OrderSoA::arrow_schema(),
            batch
                .columns()
                .iter()
                .map(|c| arrow::compute::concat(&[c.as_ref(), c.as_ref()]).expect("concat"))
                .collect(),
        )
        .expect("batch");
        assert!(
            matches!(OrderSoA::from_record_batch(&dup), Err(SnapshotError::InvalidValue { column, .. }) if column == "order_id")
        );
        assert_eq!(batch.column(0).null_count(), 0);
    }

    #[test]
    fn a_rejected_batch_leaves_the_state_as_it_was() {
        let mut soa = soa_of(vec![sample(); 100]);
        let before = soa.clone();
        // Rows 1..=50 of a second state: new ids, then one that already exists.
        let mut other = OrderSoA::new();
        for id in 1000..1050 {
            other
                .push(
                    Order::builder(id)
                        .customer(1)
                        .product(2)
                        .quantity(3)
                        .unit_price(4.0)
                        .build()
                        .unwrap(),
                )
                .expect("push");
        }
        other
            .push(
                Order::builder(soa.order_id_raw_array()[10])
                    .customer(1)
                    .product(2)
                    .quantity(3)
                    .unit_price(4.0)
                    .build()
                    .unwrap(),
            )
            .expect("push");
        let batch = other.to_record_batch().expect("to arrow");
        assert!(matches!(
            soa.extend_from_record_batch(&batch),
            Err(SnapshotError::InvalidValue { row: 50, .. })
        ));
        assert_eq!(soa, before);
        assert!(!soa.contains(1000) && !soa.contains(1049));
        for o in before.iter() {
            assert_eq!(soa.get(o.order_id), Some(o));
        }
        assert_eq!(soa.memory_stats().rows, 100);
    }
}
