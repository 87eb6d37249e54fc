//! Events as one line of text or one JSON object (the `dump` output; schema in
//! docs/cli.md).

use orderlog_store::{Event, EventKind, Lsn};
use serde_json::{Value, json};

use crate::timefmt::format_ms;

/// `lsn=12 #0 2025-01-01T00:00:00.000Z order=42 create customer=7 ...`
pub fn event_text(lsn: Lsn, index: usize, e: &Event) -> String {
    let mut line = format!(
        "lsn={lsn} #{index} {} order={} {}",
        format_ms(e.timestamp_ms),
        e.order_id,
        e.kind_name()
    );
    let detail = match e.kind {
        EventKind::Create(o) => format!(
            " customer={} product={} quantity={} unit_price={} total={} status={} payment={} placed={} address_hash={:#x}",
            o.customer_id,
            o.product_id,
            o.quantity,
            o.unit_price,
            o.total_amount(),
            o.status.name(),
            o.payment_method.name(),
            o.order_timestamp,
            o.shipping_address_hash
        ),
        EventKind::SetStatus(s) => format!(" status={}", s.name()),
        EventKind::Amend { quantity, unit_price } => {
            let mut s = String::new();
            if let Some(q) = quantity {
                s.push_str(&format!(" quantity={q}"));
            }
            if let Some(p) = unit_price {
                s.push_str(&format!(" unit_price={p}"));
            }
            s
        }
        EventKind::ChangePayment(p) => format!(" payment={}", p.name()),
        _ => String::new(),
    };
    line.push_str(&detail);
    if let Some(v) = e.expected_version {
        line.push_str(&format!(" expected_version={v}"));
    }
    line
}

/// The event as a JSON object (one `dump --json` line).
pub fn event_json(lsn: Lsn, index: usize, e: &Event) -> Value {
    let mut v = json!({
        "lsn": lsn,
        "index": index,
        "timestamp_ms": e.timestamp_ms,
        "time": format_ms(e.timestamp_ms),
        "order_id": e.order_id,
        "kind": e.kind_name(),
        "expected_version": e.expected_version,
    });
    let extra = match e.kind {
        EventKind::Create(o) => json!({
            "customer_id": o.customer_id,
            "product_id": o.product_id,
            "quantity": o.quantity,
            "unit_price": o.unit_price,
            "total_amount": o.total_amount(),
            "status": o.status.name(),
            "payment_method": o.payment_method.name(),
            "order_timestamp": o.order_timestamp,
            "shipping_address_hash": o.shipping_address_hash,
        }),
        EventKind::SetStatus(s) => json!({ "status": s.name() }),
        EventKind::Amend { quantity, unit_price } => {
            json!({ "quantity": quantity, "unit_price": unit_price })
        }
        EventKind::ChangePayment(p) => json!({ "payment_method": p.name() }),
        _ => json!({}),
    };
    if let (Some(obj), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        obj.extend(extra.clone());
    }
    v
}
