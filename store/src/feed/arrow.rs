//! Delivered events as Arrow record batches.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Builder, RecordBatch, StringBuilder, UInt32Builder, UInt64Array,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use orderlog_snapshot::ToArrow;

use crate::error::Result;
use crate::events::EventKind;
use crate::feed::{FeedBatch, Filter};
use crate::state::OrderState;

/// The event columns: `(name, type)`; every column after `kind` is nullable (an event
/// carries only its kind's values).
const EVENT_COLUMNS: [(&str, DataType); 14] = [
    ("lsn", DataType::UInt64),
    ("index", DataType::UInt32),
    ("timestamp_ms", DataType::UInt64),
    ("order_id", DataType::UInt64),
    ("kind", DataType::Utf8),
    ("expected_version", DataType::UInt32),
    ("customer_id", DataType::UInt64),
    ("product_id", DataType::UInt64),
    ("quantity", DataType::UInt32),
    ("unit_price", DataType::Float64),
    ("status", DataType::Utf8),
    ("payment_method", DataType::Utf8),
    ("order_timestamp", DataType::UInt64),
    ("shipping_address_hash", DataType::UInt64),
];

/// The row columns (with rows): the order just after the event, null where it was
/// erased.
const ROW_COLUMNS: [(&str, DataType); 10] = [
    ("row_customer_id", DataType::UInt64),
    ("row_product_id", DataType::UInt64),
    ("row_quantity", DataType::UInt32),
    ("row_unit_price", DataType::Float64),
    ("row_total_amount", DataType::Float64),
    ("row_status", DataType::Utf8),
    ("row_payment_method", DataType::Utf8),
    ("row_order_timestamp", DataType::UInt64),
    ("row_shipping_address_hash", DataType::UInt64),
    ("row_version", DataType::UInt32),
];

/// The schema of [`to_record_batch`]: one row per event; with `with_rows`, the order's
/// row after it too (`row_*` columns).
pub fn feed_schema(with_rows: bool) -> SchemaRef {
    let mut fields: Vec<Field> = EVENT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| Field::new(*name, ty.clone(), i > 4))
        .collect();
    if with_rows {
        fields.extend(ROW_COLUMNS.iter().map(|(name, ty)| Field::new(*name, ty.clone(), true)));
    }
    Arc::new(Schema::new(fields))
}

/// Builders for the event columns.
#[derive(Default)]
struct EventColumns {
    lsn: UInt64Builder,
    index: UInt32Builder,
    timestamp_ms: UInt64Builder,
    order_id: UInt64Builder,
    kind: StringBuilder,
    expected_version: UInt32Builder,
    customer_id: UInt64Builder,
    product_id: UInt64Builder,
    quantity: UInt32Builder,
    unit_price: Float64Builder,
    status: StringBuilder,
    payment_method: StringBuilder,
    order_timestamp: UInt64Builder,
    shipping_address_hash: UInt64Builder,
}

/// Builders for the row columns.
#[derive(Default)]
struct RowColumns {
    customer_id: UInt64Builder,
    product_id: UInt64Builder,
    quantity: UInt32Builder,
    unit_price: Float64Builder,
    total_amount: Float64Builder,
    status: StringBuilder,
    payment_method: StringBuilder,
    order_timestamp: UInt64Builder,
    shipping_address_hash: UInt64Builder,
    version: UInt32Builder,
}

fn done(builder: &mut dyn arrow::array::ArrayBuilder) -> ArrayRef {
    builder.finish()
}

/// The delivered batches' events as one Arrow batch ([`feed_schema`]): one row per
/// event, in LSN and index order; with `with_rows`, each event's row after it.
pub fn to_record_batch(batches: &[FeedBatch], with_rows: bool) -> Result<RecordBatch> {
    let mut c = EventColumns::default();
    let mut r = RowColumns::default();
    for batch in batches {
        for fe in &batch.events {
            let e = &fe.event;
            c.lsn.append_value(batch.lsn);
            c.index.append_value(fe.index);
            c.timestamp_ms.append_value(e.timestamp_ms);
            c.order_id.append_value(e.order_id);
            c.kind.append_value(e.kind_name());
            c.expected_version.append_option(e.expected_version);
            let created = match e.kind {
                EventKind::Create(o) => Some(o),
                _ => None,
            };
            c.customer_id.append_option(created.map(|o| o.customer_id));
            c.product_id.append_option(created.map(|o| o.product_id));
            c.order_timestamp.append_option(created.map(|o| o.order_timestamp));
            c.shipping_address_hash.append_option(created.map(|o| o.shipping_address_hash));
            let (quantity, unit_price) = match e.kind {
                EventKind::Create(o) => (Some(o.quantity), Some(o.unit_price)),
                EventKind::Amend { quantity, unit_price } => (quantity, unit_price),
                _ => (None, None),
            };
            c.quantity.append_option(quantity);
            c.unit_price.append_option(unit_price);
            c.status.append_option(match e.kind {
                EventKind::Create(o) => Some(o.status.name()),
                EventKind::SetStatus(s) => Some(s.name()),
                _ => None,
            });
            c.payment_method.append_option(match e.kind {
                EventKind::Create(o) => Some(o.payment_method.name()),
                EventKind::ChangePayment(m) => Some(m.name()),
                _ => None,
            });
            if with_rows {
                let o = fe.row.map(|row| row.order);
                r.customer_id.append_option(o.map(|o| o.customer_id));
                r.product_id.append_option(o.map(|o| o.product_id));
                r.quantity.append_option(o.map(|o| o.quantity));
                r.unit_price.append_option(o.map(|o| o.unit_price));
                r.total_amount.append_option(o.map(|o| o.total_amount()));
                r.status.append_option(o.map(|o| o.status.name()));
                r.payment_method.append_option(o.map(|o| o.payment_method.name()));
                r.order_timestamp.append_option(o.map(|o| o.order_timestamp));
                r.shipping_address_hash.append_option(o.map(|o| o.shipping_address_hash));
                r.version.append_option(fe.row.map(|row| row.version));
            }
        }
    }
    // In schema order.
    let mut columns = vec![
        done(&mut c.lsn),
        done(&mut c.index),
        done(&mut c.timestamp_ms),
        done(&mut c.order_id),
        done(&mut c.kind),
        done(&mut c.expected_version),
        done(&mut c.customer_id),
        done(&mut c.product_id),
        done(&mut c.quantity),
        done(&mut c.unit_price),
        done(&mut c.status),
        done(&mut c.payment_method),
        done(&mut c.order_timestamp),
        done(&mut c.shipping_address_hash),
    ];
    if with_rows {
        columns.extend([
            done(&mut r.customer_id),
            done(&mut r.product_id),
            done(&mut r.quantity),
            done(&mut r.unit_price),
            done(&mut r.total_amount),
            done(&mut r.status),
            done(&mut r.payment_method),
            done(&mut r.order_timestamp),
            done(&mut r.shipping_address_hash),
            done(&mut r.version),
        ]);
    }
    Ok(RecordBatch::try_new(feed_schema(with_rows), columns)
        .map_err(orderlog_snapshot::SnapshotError::from)?)
}

/// A snapshot's orders as Arrow (the state's schema), only those the filter's order ids
/// name if it names any.
pub(crate) fn snapshot_orders(state: &OrderState, filter: &Filter) -> Result<RecordBatch> {
    let all = state.to_record_batch_range(0..state.num_rows())?;
    let Some(ids) = &filter.orders else { return Ok(all) };
    let keep: BooleanArray = match all.column(0).as_any().downcast_ref::<UInt64Array>() {
        Some(column) => column
            .iter()
            .map(|id| Some(id.is_some_and(|id| ids.binary_search(&id).is_ok())))
            .collect(),
        None => return Ok(all),
    };
    Ok(arrow::compute::filter_record_batch(&all, &keep)
        .map_err(orderlog_snapshot::SnapshotError::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use crate::feed::{FeedEvent, RowAfter};
    use crate::{Order, OrderStatus};

    #[test]
    fn events_and_rows_land_in_their_columns() -> Result<()> {
        let order = Order::builder(3).customer(4).product(5).quantity(2).unit_price(1.5).build()?;
        let batches = [
            FeedBatch {
                lsn: 1,
                timestamp_ms: 10,
                events: vec![FeedEvent {
                    index: 0,
                    event: Event::at(10, 3, EventKind::Create(order)),
                    row: Some(RowAfter { order, version: 0 }),
                }],
            },
            FeedBatch {
                lsn: 2,
                timestamp_ms: 11,
                events: vec![FeedEvent {
                    index: 1,
                    event: Event::at(11, 3, EventKind::SetStatus(OrderStatus::Confirmed)),
                    row: None,
                }],
            },
        ];
        let rb = to_record_batch(&batches, true)?;
        assert_eq!(rb.schema(), feed_schema(true));
        assert_eq!(rb.num_rows(), 2);
        let col = |name: &str| rb.column_by_name(name).map(Arc::clone);
        let fmt = |name: &str| {
            col(name)
                .map(|c| arrow::util::display::array_value_to_string(&c, 1).unwrap_or_default())
        };
        assert_eq!(fmt("kind").as_deref(), Some("set_status"));
        assert_eq!(fmt("status").as_deref(), Some(OrderStatus::Confirmed.name()));
        assert_eq!(fmt("index").as_deref(), Some("1"));
        assert_eq!(col("customer_id").map(|c| c.null_count()), Some(1));
        assert_eq!(col("row_total_amount").map(|c| c.null_count()), Some(1));
        let first = |name: &str| {
            col(name)
                .map(|c| arrow::util::display::array_value_to_string(&c, 0).unwrap_or_default())
        };
        assert_eq!(first("row_total_amount").as_deref(), Some("3.0"));
        assert_eq!(first("customer_id").as_deref(), Some("4"));
        assert_eq!(to_record_batch(&batches, false)?.num_columns(), 14);
        Ok(())
    }
}
