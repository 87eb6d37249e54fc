//! The persistence trait, its statistics, and what every backend shares: the
//! row view that queries filter on, and folding stored batches back into a value.

use std::future::Future;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use orderlog_snapshot::ToArrow;

use crate::error::Result;
use orderlog_store::domain::{Order, OrderSoA};

/// A struct-of-arrays type seen one row at a time: what a
/// [`SoAPersistence::query`] predicate looks at.
///
/// A predicate over one row, rather than over the whole struct of arrays, lets a backend
/// return exactly the rows that match.
pub trait SoaRows: ToArrow + Sized {
    /// One row (for [`OrderSoA`]: an [`Order`]).
    type Row;

    /// Every row, in row order (row `i` of the value is row `i` of its record batch).
    fn rows(&self) -> impl Iterator<Item = Self::Row> + '_;
}

impl SoaRows for OrderSoA {
    type Row = Order;

    fn rows(&self) -> impl Iterator<Item = Order> + '_ {
        self.iter()
    }
}

/// What a backend holds: bytes, rows and batches.
///
/// `total_bytes` is what the backend counts as its footprint: Arrow buffer memory for
/// [`crate::ArrowPersistence`], bytes of Parquet files on disk for the Parquet
/// backends, the in-memory state for [`crate::EventSourcedPersistence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// Bytes held (see the type's docs for what each backend counts).
    pub total_bytes: usize,
    /// Rows held.
    pub total_rows: usize,
    /// Record batches (in memory) or files (on disk) holding them.
    pub num_batches: usize,
    /// `total_bytes / num_batches`, rounded down (0 when there is no batch): bytes per
    /// batch, not rows.
    pub average_batch_size: usize,
}

impl MemoryStats {
    /// Statistics of `total_rows` rows in `num_batches` batches of `total_bytes` bytes.
    pub fn new(total_bytes: usize, total_rows: usize, num_batches: usize) -> Self {
        MemoryStats {
            total_bytes,
            total_rows,
            num_batches,
            average_batch_size: total_bytes.checked_div(num_batches).unwrap_or(0),
        }
    }
}

/// Persistence of a struct-of-arrays value `T`.
///
/// Every method is async and its future is `Send`, so a store over any backend can be
/// driven from `tokio::spawn`. Implementations write `async fn` (native async functions
/// in traits); the trait spells out the `Send` bound on each returned future.
///
/// The contract every backend keeps:
/// - [`append`](SoAPersistence::append) adds rows and keeps every row already stored;
///   it writes only the new rows.
/// - [`load`](SoAPersistence::load) returns every stored row, from every batch and file.
/// - [`query`](SoAPersistence::query) returns only the rows that match.
pub trait SoAPersistence<T: SoaRows> {
    /// Replaces everything stored with `data`.
    fn save(&mut self, data: &T) -> impl Future<Output = Result<()>> + Send;

    /// Every stored row as one value, in the order stored (oldest batch first), or `None`
    /// if no row is stored.
    ///
    /// The stored rows must form a valid `T` (for [`OrderSoA`]: unique order ids); the
    /// same order appended twice is an error here, not a silent duplicate.
    fn load(&self) -> impl Future<Output = Result<Option<T>>> + Send;

    /// Adds the rows of `data` to what is stored, writing only them. Appending no rows
    /// does nothing.
    fn append(&mut self, data: &T) -> impl Future<Output = Result<()>> + Send;

    /// The stored rows for which `predicate` is true, and only those, in the order
    /// stored; `None` if no row matches (never `Some` of an empty value).
    ///
    /// Backends filter one stored batch at a time: memory grows with the matches, not
    /// with everything stored.
    fn query(
        &self,
        predicate: impl Fn(&T::Row) -> bool + Send,
    ) -> impl Future<Output = Result<Option<T>>> + Send;

    /// Rows stored.
    fn count(&self) -> impl Future<Output = Result<usize>> + Send;

    /// Removes every stored row.
    fn clear(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// What is stored: rows, batches (or files) and bytes.
    fn memory_stats(&self) -> impl Future<Output = Result<MemoryStats>> + Send;
}

/// Runs blocking file I/O from an async method without stalling the runtime: on tokio's
/// multi-thread runtime through `block_in_place` (the worker hands its other tasks to
/// another thread), elsewhere (current-thread runtime, another executor, no runtime)
/// inline. Unlike `spawn_blocking`, it may borrow the caller's data, so backends need
/// neither `Clone` nor `'static` values.
pub(crate) fn run_blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Stored batches folded into one value.
pub(crate) struct Gather<T> {
    out: Option<T>,
}

impl<T: SoaRows> Gather<T> {
    pub(crate) fn new() -> Self {
        Gather { out: None }
    }

    /// Adds the rows of `batch` (schema and values checked by `T`'s conversion).
    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match &mut self.out {
            Some(value) => value.extend_from_record_batch(batch)?,
            None => self.out = Some(T::from_record_batch(batch)?),
        }
        Ok(())
    }

    /// The value, or `None` if no batch had a row.
    pub(crate) fn finish(self) -> Option<T> {
        self.out
    }
}

/// The rows of stored batches that match a predicate, gathered one batch at a time.
pub(crate) struct Matches<T> {
    gathered: Gather<T>,
}

impl<T: SoaRows> Matches<T> {
    pub(crate) fn new() -> Self {
        Matches { gathered: Gather::new() }
    }

    /// Decodes `batch`, tests each row, and keeps the rows that match.
    pub(crate) fn add(
        &mut self,
        batch: &RecordBatch,
        predicate: &impl Fn(&T::Row) -> bool,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let decoded = T::from_record_batch(batch)?;
        let mask: BooleanArray = decoded.rows().map(|row| Some(predicate(&row))).collect();
        debug_assert_eq!(mask.len(), batch.num_rows(), "rows() disagrees with the batch");
        match mask.true_count() {
            0 => Ok(()),
            n if n == batch.num_rows() => self.gathered.add(batch),
            _ => self.gathered.add(&filter_record_batch(batch, &mask)?),
        }
    }

    /// The matching rows, or `None` if none matched.
    pub(crate) fn finish(self) -> Option<T> {
        self.gathered.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderlog_store::domain::OrderStatus;

    fn soa(ids: impl IntoIterator<Item = u64>) -> OrderSoA {
        let mut soa = OrderSoA::new();
        for id in ids {
            let status = OrderStatus::ALL[(id % 6) as usize];
            soa.push(
                Order::builder(id)
                    .customer(id % 3)
                    .product(7)
                    .quantity(1)
                    .unit_price(id as f64)
                    .status(status)
                    .build()
                    .unwrap(),
            )
            .expect("push");
        }
        soa
    }

    #[test]
    fn matches_keep_only_matching_rows_across_batches() {
        let all = soa(1..=100);
        let mut matches = Matches::<OrderSoA>::new();
        for batch in all.record_batches(7) {
            matches
                .add(&batch.expect("batch"), &|o: &Order| o.order_id.is_multiple_of(10))
                .expect("add");
        }
        let found = matches.finish().expect("some match");
        assert_eq!(found.order_id_raw_array(), (1..=10).map(|i| i * 10).collect::<Vec<u64>>());
        let mut none = Matches::<OrderSoA>::new();
        none.add(&all.to_record_batch().expect("batch"), &|_: &Order| false).expect("add");
        assert!(none.finish().is_none(), "no match must be None, not an empty value");
    }

    #[test]
    fn gather_skips_empty_batches_and_keeps_order() {
        let all = soa(1..=50);
        let mut gather = Gather::<OrderSoA>::new();
        gather
            .add(&RecordBatch::new_empty(
                <OrderSoA as orderlog_snapshot::ArrowSchemaGen>::arrow_schema(),
            ))
            .expect("empty");
        assert!(Gather::<OrderSoA>::new().finish().is_none());
        for batch in all.record_batches(9) {
            gather.add(&batch.expect("batch")).expect("add");
        }
        assert_eq!(gather.finish().expect("rows"), all);
    }

    #[test]
    fn stats_average_is_bytes_per_batch() {
        assert_eq!(MemoryStats::new(100, 7, 3).average_batch_size, 33);
        assert_eq!(MemoryStats::new(0, 0, 0), MemoryStats::default());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_blocking_works_on_both_runtime_flavours() {
        assert_eq!(run_blocking(|| 4), 4);
        let on_current = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        assert_eq!(
            std::thread::spawn(move || on_current.block_on(async { run_blocking(|| 5) }))
                .join()
                .expect("join"),
            5
        );
        assert_eq!(run_blocking(|| 6), 6);
    }
}
