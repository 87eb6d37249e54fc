//! Helpers shared by the crate's unit tests.

use std::ops::RangeInclusive;

use orderlog_store::domain::{Order, OrderSoA, OrderStatus, PaymentMethod};

/// Order `id`: status and payment vary with the id, the total is `2 × id × 1.5`.
pub(crate) fn order(id: u64) -> Order {
    Order::builder(id)
        .customer(id % 17)
        .product(id % 5)
        .quantity(2)
        .unit_price(id as f64 * 1.5)
        .build()
        .unwrap()
        .with_status(OrderStatus::ALL[(id % 6) as usize])
        .with_payment_method(PaymentMethod::ALL[(id % 5) as usize])
        .with_timestamp(1_700_000_000 + id)
}

/// Orders `ids` as a struct of arrays.
pub(crate) fn orders(ids: RangeInclusive<u64>) -> OrderSoA {
    let mut soa = OrderSoA::with_capacity(ids.clone().count());
    for id in ids {
        soa.push(order(id)).expect("valid order");
    }
    soa
}

/// The order ids of `soa`, in row order.
pub(crate) fn ids(soa: &OrderSoA) -> Vec<u64> {
    soa.order_id_raw_array().to_vec()
}

/// Every id in `ids`.
pub(crate) fn range(ids: RangeInclusive<u64>) -> Vec<u64> {
    ids.collect()
}
