//! `OrderSoA`: every order field in its own vector (struct of arrays), with an
//! `order_id -> row` index.

use crate::domain::DomainError;
use crate::domain::index::{MAX_ROWS, RowIndex};
use crate::domain::order::{Order, OrderStatus, PaymentMethod};

/// Orders as columns. Rows have no particular order; erasing an order moves the last row
/// into its place. Enum columns hold bytes already validated on the way in.
#[derive(Debug, Clone, Default)]
pub struct OrderSoA {
    pub(crate) order_id: Vec<u64>,
    pub(crate) customer_id: Vec<u64>,
    pub(crate) product_id: Vec<u64>,
    pub(crate) quantity: Vec<u32>,
    pub(crate) unit_price: Vec<f64>,
    pub(crate) total_amount: Vec<f64>,
    pub(crate) status: Vec<u8>,
    pub(crate) payment_method: Vec<u8>,
    pub(crate) order_timestamp: Vec<u64>,
    pub(crate) shipping_address_hash: Vec<u64>,
    pub(crate) index: RowIndex,
}

/// Bytes of column data per order: the sum of the column element sizes.
pub const COLUMN_BYTES_PER_ORDER: usize = 3 * 8 + 4 + 2 * 8 + 1 + 1 + 2 * 8;

/// Memory held by an [`OrderSoA`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoaMemoryStats {
    /// Orders held.
    pub rows: usize,
    /// Bytes of column data in use (`rows × 62`).
    pub column_bytes: usize,
    /// Bytes the column vectors have allocated (capacity, which may exceed use). A
    /// store's state (`OrderState`, not a bare `OrderSoA`) makes room for 4 Mi orders
    /// when it first grows; with glibc, its large columns are then memory mapped from the
    /// kernel, which backs a page only once it is written, so most of that room is
    /// address space rather than resident memory.
    pub column_capacity_bytes: usize,
    /// Bytes of the `order_id -> row` index.
    pub index_bytes: usize,
    /// `(column_bytes + index_bytes) / rows`: what each order costs once the vectors
    /// are sized to their content (see [`OrderSoA::shrink_to_fit`]).
    pub bytes_per_order: f64,
}

macro_rules! columns {
    ($self:ident, $f:ident) => {{
        $f!($self.order_id);
        $f!($self.customer_id);
        $f!($self.product_id);
        $f!($self.quantity);
        $f!($self.unit_price);
        $f!($self.total_amount);
        $f!($self.status);
        $f!($self.payment_method);
        $f!($self.order_timestamp);
        $f!($self.shipping_address_hash);
    }};
}

impl OrderSoA {
    /// An empty set of orders.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set with room for `rows` orders.
    pub fn with_capacity(rows: usize) -> Self {
        let mut soa = Self::default();
        soa.reserve(rows);
        soa
    }

    /// Makes room for `additional` more orders.
    pub fn reserve(&mut self, additional: usize) {
        macro_rules! reserve {
            ($c:expr) => {
                $c.reserve_exact(additional)
            };
        }
        columns!(self, reserve);
        self.index.reserve(additional, &self.order_id);
    }

    /// [`OrderSoA::reserve`], reporting a failed allocation instead of aborting: the
    /// orders are unchanged either way (columns already grown keep their room). The
    /// caller has checked `len() + additional <= MAX_ROWS`.
    pub(crate) fn try_reserve(
        &mut self,
        additional: usize,
    ) -> Result<(), std::collections::TryReserveError> {
        self.try_reserve_columns_exact(additional)?;
        self.index.try_reserve(additional, &self.order_id)
    }

    /// Orders the columns hold before one of them must grow: their smallest capacity
    /// (the index grows apart).
    pub(crate) fn column_room(&self) -> usize {
        let mut room = usize::MAX;
        macro_rules! smallest {
            ($c:expr) => {
                room = room.min($c.capacity())
            };
        }
        columns!(self, smallest);
        room
    }

    /// Makes room in the columns, not the index, for exactly `additional` more orders,
    /// reporting a failed allocation (columns already grown keep their room).
    pub(crate) fn try_reserve_columns_exact(
        &mut self,
        additional: usize,
    ) -> Result<(), std::collections::TryReserveError> {
        macro_rules! reserve {
            ($c:expr) => {
                $c.try_reserve_exact(additional)?
            };
        }
        columns!(self, reserve);
        Ok(())
    }

    /// Releases unused vector capacity.
    pub fn shrink_to_fit(&mut self) {
        macro_rules! shrink {
            ($c:expr) => {
                $c.shrink_to_fit()
            };
        }
        columns!(self, shrink);
    }

    /// Drops rows `len..` (and their index entries): undoes appends made since the
    /// state had `len` rows. Nothing happens if it holds `len` rows or fewer.
    pub fn truncate_to(&mut self, len: usize) {
        for row in (len..self.len()).rev() {
            if self.index.get(self.order_id[row], &self.order_id) == Some(row) {
                self.index.remove(self.order_id[row], &self.order_id);
            }
        }
        macro_rules! truncate {
            ($c:expr) => {
                $c.truncate(len)
            };
        }
        columns!(self, truncate);
    }

    /// Orders held.
    pub fn len(&self) -> usize {
        self.order_id.len()
    }

    /// True if no order is held.
    pub fn is_empty(&self) -> bool {
        self.order_id.is_empty()
    }

    /// Validates and appends an order; returns its row.
    /// A duplicate `order_id` or an invalid value is an error and changes nothing.
    pub fn push(&mut self, order: Order) -> Result<usize, DomainError> {
        order.validate()?;
        if self.index.get(order.order_id, &self.order_id).is_some() {
            return Err(DomainError::DuplicateOrder { order_id: order.order_id });
        }
        if self.len() >= MAX_ROWS {
            return Err(DomainError::TooManyOrders { max: MAX_ROWS });
        }
        self.push_unchecked(order);
        Ok(self.len() - 1)
    }

    /// Appends an order already validated and known to be new.
    pub(crate) fn push_unchecked(&mut self, o: Order) {
        self.push_columns(o);
        self.index.insert(self.len() - 1, &self.order_id);
    }

    /// Appends orders already validated and indexes them together (their index probes
    /// overlap), refusing them all if one's id is already held or repeated among them:
    /// then nothing is changed. The caller has checked `len() + orders <= MAX_ROWS`.
    pub(crate) fn push_all_new(&mut self, orders: &[Order]) -> Result<(), DomainError> {
        let first = self.len();
        // Column by column: each is one sized append of a tight loop.
        macro_rules! extend {
            ($($column:ident: $value:expr),*) => {
                $(self.$column.extend(orders.iter().map($value));)*
            };
        }
        extend!(
            order_id: |o| o.order_id,
            customer_id: |o| o.customer_id,
            product_id: |o| o.product_id,
            quantity: |o| o.quantity,
            unit_price: |o| o.unit_price,
            total_amount: |o| o.total_amount(),
            status: |o| u8::from(o.status),
            payment_method: |o| u8::from(o.payment_method),
            order_timestamp: |o| o.order_timestamp,
            shipping_address_hash: |o| o.shipping_address_hash
        );
        if let Err((row, _)) = self.index.insert_all_new(first..self.len(), &self.order_id) {
            let order_id = self.order_id[row];
            self.truncate_to(first);
            return Err(DomainError::DuplicateOrder { order_id });
        }
        Ok(())
    }

    /// Appends an order's values to the columns (not to the index).
    fn push_columns(&mut self, o: Order) {
        self.order_id.push(o.order_id);
        self.customer_id.push(o.customer_id);
        self.product_id.push(o.product_id);
        self.quantity.push(o.quantity);
        self.unit_price.push(o.unit_price);
        self.total_amount.push(o.total_amount());
        self.status.push(o.status.into());
        self.payment_method.push(o.payment_method.into());
        self.order_timestamp.push(o.order_timestamp);
        self.shipping_address_hash.push(o.shipping_address_hash);
    }

    /// Brings the index entries of `order_ids` into the cache ahead of lookups (a batch
    /// at a time); changes nothing.
    pub(crate) fn warm_rows(&self, order_ids: impl Iterator<Item = u64>) {
        self.index.warm(order_ids, &self.order_id);
    }

    /// The row of an order.
    pub fn row_of(&self, order_id: u64) -> Option<usize> {
        self.index.get(order_id, &self.order_id)
    }

    /// True if the order is held.
    pub fn contains(&self, order_id: u64) -> bool {
        self.row_of(order_id).is_some()
    }

    /// The order at `row`.
    pub fn order_at(&self, row: usize) -> Option<Order> {
        (row < self.len()).then(|| Order {
            order_id: self.order_id[row],
            customer_id: self.customer_id[row],
            product_id: self.product_id[row],
            quantity: self.quantity[row],
            unit_price: self.unit_price[row],
            status: status_of(self.status[row]),
            payment_method: payment_of(self.payment_method[row]),
            order_timestamp: self.order_timestamp[row],
            shipping_address_hash: self.shipping_address_hash[row],
        })
    }

    /// The order with `order_id`.
    pub fn get(&self, order_id: u64) -> Option<Order> {
        self.row_of(order_id).and_then(|row| self.order_at(row))
    }

    /// Every order, in row order.
    pub fn iter(&self) -> impl Iterator<Item = Order> + '_ {
        (0..self.len()).filter_map(|row| self.order_at(row))
    }

    /// Removes an order (the last row moves into its place); returns it.
    pub fn remove(&mut self, order_id: u64) -> Option<Order> {
        let row = self.index.get(order_id, &self.order_id)?;
        let order = self.order_at(row)?;
        self.index.remove(order_id, &self.order_id);
        let last = self.len() - 1;
        macro_rules! swap_remove {
            ($c:expr) => {
                $c.swap_remove(row)
            };
        }
        columns!(self, swap_remove);
        if row != last {
            let moved = self.order_id[row];
            self.index.repoint(moved, last, row);
        }
        Some(order)
    }

    /// Memory held, and bytes per order.
    pub fn memory_stats(&self) -> SoaMemoryStats {
        fn allocated<T>(column: &Vec<T>) -> usize {
            column.capacity() * size_of::<T>()
        }
        let mut capacity = 0usize;
        macro_rules! cap {
            ($c:expr) => {
                capacity += allocated(&$c)
            };
        }
        columns!(self, cap);
        let rows = self.len();
        debug_assert_eq!(self.index.len(), rows, "index out of step with the columns");
        let column_bytes = rows * COLUMN_BYTES_PER_ORDER;
        let index_bytes = self.index.allocated_bytes();
        SoaMemoryStats {
            rows,
            column_bytes,
            column_capacity_bytes: capacity,
            index_bytes,
            bytes_per_order: if rows == 0 {
                0.0
            } else {
                (column_bytes + index_bytes) as f64 / rows as f64
            },
        }
    }
}

/// Decodes a status byte that was validated when it entered the columns.
pub(crate) fn status_of(b: u8) -> OrderStatus {
    // Every byte in a status column passed `OrderStatus::try_from` on the way in
    // (push, from_record_batch), so the fallback is never taken.
    OrderStatus::try_from(b).unwrap_or_default()
}

/// Decodes a payment byte that was validated when it entered the columns.
pub(crate) fn payment_of(b: u8) -> PaymentMethod {
    // As for `status_of`: validated on the way in.
    PaymentMethod::try_from(b).unwrap_or_default()
}

/// Column accessors: each column as a slice, enums as their bytes.
impl OrderSoA {
    /// The `order_id` column.
    pub fn order_id_raw_array(&self) -> &[u64] {
        &self.order_id
    }
    /// The `customer_id` column.
    pub fn customer_id_raw_array(&self) -> &[u64] {
        &self.customer_id
    }
    /// The `product_id` column.
    pub fn product_id_raw_array(&self) -> &[u64] {
        &self.product_id
    }
    /// The `quantity` column.
    pub fn quantity_raw_array(&self) -> &[u32] {
        &self.quantity
    }
    /// The `unit_price` column.
    pub fn unit_price_raw_array(&self) -> &[f64] {
        &self.unit_price
    }
    /// The `total_amount` column.
    pub fn total_amount_raw_array(&self) -> &[f64] {
        &self.total_amount
    }
    /// The `status` column as bytes (`OrderStatus as u8`).
    pub fn status_raw_array(&self) -> &[u8] {
        &self.status
    }
    /// The `payment_method` column as bytes (`PaymentMethod as u8`).
    pub fn payment_method_raw_array(&self) -> &[u8] {
        &self.payment_method
    }
    /// The `order_timestamp` column (seconds since the Unix epoch).
    pub fn order_timestamp_raw_array(&self) -> &[u64] {
        &self.order_timestamp
    }
    /// The `shipping_address_hash` column.
    pub fn shipping_address_hash_raw_array(&self) -> &[u64] {
        &self.shipping_address_hash
    }
    /// The statuses, decoded.
    pub fn statuses(&self) -> impl Iterator<Item = OrderStatus> + '_ {
        self.status.iter().map(|&b| status_of(b))
    }
    /// The payment methods, decoded.
    pub fn payment_methods(&self) -> impl Iterator<Item = PaymentMethod> + '_ {
        self.payment_method.iter().map(|&b| payment_of(b))
    }
}

impl PartialEq for OrderSoA {
    /// Two sets are equal when they hold the same orders in the same rows.
    fn eq(&self, other: &Self) -> bool {
        self.order_id == other.order_id
            && self.customer_id == other.customer_id
            && self.product_id == other.product_id
            && self.quantity == other.quantity
            && self
                .unit_price
                .iter()
                .map(|f| f.to_bits())
                .eq(other.unit_price.iter().map(|f| f.to_bits()))
            && self
                .total_amount
                .iter()
                .map(|f| f.to_bits())
                .eq(other.total_amount.iter().map(|f| f.to_bits()))
            && self.status == other.status
            && self.payment_method == other.payment_method
            && self.order_timestamp == other.order_timestamp
            && self.shipping_address_hash == other.shipping_address_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: u64) -> Order {
        Order::builder(id)
            .customer(id % 7)
            .product(id % 11)
            .quantity((id % 5 + 1) as u32)
            .unit_price(id as f64 * 0.5)
            .build()
            .unwrap()
            .with_timestamp(1_700_000_000 + id)
    }

    #[test]
    fn push_get_remove_keep_rows_and_index_in_step() {
        let mut soa = OrderSoA::new();
        for id in 1..=100 {
            assert_eq!(soa.push(order(id)).expect("push"), id as usize - 1);
        }
        assert!(matches!(soa.push(order(5)), Err(DomainError::DuplicateOrder { order_id: 5 })));
        assert_eq!(soa.len(), 100);
        for id in (1..=100).step_by(3) {
            assert_eq!(soa.remove(id), Some(order(id)));
        }
        assert_eq!(soa.remove(1), None);
        for id in 1..=100u64 {
            let expect = (id % 3 != 1).then(|| order(id));
            assert_eq!(soa.get(id), expect, "order {id}");
        }
        assert_eq!(soa.len(), 66);
        assert_eq!(soa.iter().count(), 66);
    }

    #[test]
    fn invalid_orders_change_nothing() {
        let mut soa = OrderSoA::new();
        soa.push(order(1)).expect("push");
        // Built past the builder's checks, as a decoded or hand-made value could be.
        assert!(soa.push(Order { quantity: 0, ..order(2) }).is_err());
        assert!(soa.push(Order { unit_price: f64::NAN, ..order(3) }).is_err());
        assert_eq!(soa.len(), 1);
        assert!(!soa.contains(2));
    }

    #[test]
    fn ten_million_orders_cost_at_most_seventy_bytes_each() {
        let rows = 10_000_000u64;
        let mut soa = OrderSoA::with_capacity(rows as usize);
        for id in 0..rows {
            soa.push_unchecked(order(id + 1));
        }
        let stats = soa.memory_stats();
        assert_eq!(stats.rows, rows as usize);
        assert_eq!(stats.column_capacity_bytes, stats.column_bytes, "capacity reserved exactly");
        assert!(stats.bytes_per_order <= 70.0, "{stats:?}");
        assert_eq!(soa.get(9_999_999).map(|o| o.order_id), Some(9_999_999));
    }
}
