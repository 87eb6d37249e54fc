//! `ArrowPersistence`: the in-memory backend, Arrow record batches behind a lock.

use std::marker::PhantomData;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::persistence::{Gather, Matches, MemoryStats, SoAPersistence, SoaRows};

/// Most rows converted into one record batch: a large value is stored as several
/// bounded batches, never copied whole into one.
pub const ARROW_BATCH_ROWS: usize = 65_536;

/// In-memory persistence: the rows as Arrow record batches in a lock-protected vector.
///
/// Nothing survives the process; use it for tests, caches and as the default backend of
/// [`crate::PersistentOrderStore::new`]. Cloning the handle shares the batches
/// (an `Arc<RwLock<Vec<RecordBatch>>>`). Each [`append`](SoAPersistence::append)
/// adds its rows as new batches (of at most [`ARROW_BATCH_ROWS`] rows); nothing already
/// stored is copied or rewritten.
pub struct ArrowPersistence<T> {
    batches: Arc<RwLock<Vec<RecordBatch>>>,
    // `fn() -> T`: the handle holds no `T`, so it is `Send` and `Sync` whatever `T` is.
    _rows: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ArrowPersistence<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let batches = self.read();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        f.debug_struct("ArrowPersistence")
            .field("batches", &batches.len())
            .field("rows", &rows)
            .finish()
    }
}

impl<T> Clone for ArrowPersistence<T> {
    fn clone(&self) -> Self {
        ArrowPersistence { batches: Arc::clone(&self.batches), _rows: PhantomData }
    }
}

impl<T> Default for ArrowPersistence<T> {
    fn default() -> Self {
        ArrowPersistence { batches: Arc::default(), _rows: PhantomData }
    }
}

impl<T> ArrowPersistence<T> {
    /// An empty in-memory store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored batches (cheap: batches share their buffers), oldest first.
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.read().clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<RecordBatch>> {
        // Nothing panics while holding the lock (batches are built before it is taken),
        // so a poisoned lock still guards a whole vector.
        self.batches.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<RecordBatch>> {
        self.batches.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: SoaRows> ArrowPersistence<T> {
    /// The schema every stored batch has (`T`'s).
    pub fn schema(&self) -> SchemaRef {
        T::arrow_schema()
    }

    /// `data` as bounded batches, empty ones left out.
    fn to_batches(data: &T) -> Result<Vec<RecordBatch>> {
        Ok(data.record_batches(ARROW_BATCH_ROWS).collect::<Result<Vec<_>, _>>()?)
    }
}

impl<T: SoaRows + Sync> SoAPersistence<T> for ArrowPersistence<T> {
    async fn save(&mut self, data: &T) -> Result<()> {
        let batches = Self::to_batches(data)?;
        *self.write() = batches;
        Ok(())
    }

    async fn load(&self) -> Result<Option<T>> {
        let batches = self.batches();
        let mut gather = Gather::new();
        for batch in &batches {
            gather.add(batch)?;
        }
        Ok(gather.finish())
    }

    async fn append(&mut self, data: &T) -> Result<()> {
        let batches = Self::to_batches(data)?;
        self.write().extend(batches);
        Ok(())
    }

    async fn query(&self, predicate: impl Fn(&T::Row) -> bool + Send) -> Result<Option<T>> {
        let batches = self.batches();
        let mut matches = Matches::new();
        for batch in &batches {
            matches.add(batch, &predicate)?;
        }
        Ok(matches.finish())
    }

    async fn count(&self) -> Result<usize> {
        Ok(self.read().iter().map(RecordBatch::num_rows).sum())
    }

    async fn clear(&mut self) -> Result<()> {
        self.write().clear();
        Ok(())
    }

    async fn memory_stats(&self) -> Result<MemoryStats> {
        let batches = self.read();
        let bytes = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        Ok(MemoryStats::new(bytes, rows, batches.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderlog_store::domain::{Order, OrderSoA};

    fn soa(ids: std::ops::RangeInclusive<u64>) -> OrderSoA {
        let mut soa = OrderSoA::new();
        for id in ids {
            soa.push(
                Order::builder(id)
                    .customer(id % 5)
                    .product(3)
                    .quantity(2)
                    .unit_price(id as f64 * 1.5)
                    .build()
                    .unwrap(),
            )
            .expect("push");
        }
        soa
    }

    fn ids(soa: &OrderSoA) -> Vec<u64> {
        soa.order_id_raw_array().to_vec()
    }

    #[tokio::test]
    async fn arrow_append_keeps_rows_and_load_returns_every_batch() {
        let mut store = ArrowPersistence::<OrderSoA>::new();
        assert!(store.load().await.expect("load").is_none());
        store.save(&soa(1..=10)).await.expect("save");
        store.append(&soa(11..=20)).await.expect("append");
        store.append(&soa(21..=100_000)).await.expect("append large");
        store.append(&OrderSoA::new()).await.expect("append nothing");
        // 1 + 1 + 2 batches (99,980 rows in batches of 65,536): load must use all four.
        assert_eq!(store.batches().len(), 4);
        let loaded = store.load().await.expect("load").expect("rows");
        assert_eq!(ids(&loaded), (1..=100_000).collect::<Vec<_>>());
        assert_eq!(store.count().await.expect("count"), 100_000);
    }

    #[tokio::test]
    async fn arrow_save_replaces_and_clear_empties() {
        let mut store = ArrowPersistence::<OrderSoA>::new();
        store.append(&soa(1..=10)).await.expect("append");
        store.save(&soa(50..=52)).await.expect("save");
        assert_eq!(ids(&store.load().await.expect("load").expect("rows")), [50, 51, 52]);
        let stats = store.memory_stats().await.expect("stats");
        assert_eq!((stats.total_rows, stats.num_batches), (3, 1));
        assert!(
            stats.total_bytes >= 3 * orderlog_store::domain::COLUMN_BYTES_PER_ORDER,
            "{stats:?}"
        );
        store.clear().await.expect("clear");
        assert_eq!(store.count().await.expect("count"), 0);
        assert!(store.load().await.expect("load").is_none());
        assert_eq!(store.memory_stats().await.expect("stats"), MemoryStats::default());
    }

    #[tokio::test]
    async fn arrow_query_returns_only_matching_rows() {
        let mut store = ArrowPersistence::<OrderSoA>::new();
        store.append(&soa(1..=10)).await.expect("append");
        store.append(&soa(11..=20)).await.expect("append");
        let big = store.query(|o: &Order| o.total_amount() > 45.0).await.expect("query");
        // total = 2 × 1.5 × id > 45 ⇔ id > 15: 5 of the 20 rows.
        assert_eq!(ids(&big.expect("matches")), [16, 17, 18, 19, 20]);
        assert!(store.query(|o: &Order| o.order_id > 99).await.expect("query").is_none());
    }

    #[tokio::test]
    async fn arrow_clones_share_the_batches() {
        let mut a = ArrowPersistence::<OrderSoA>::new();
        let b = a.clone();
        a.append(&soa(1..=3)).await.expect("append");
        assert_eq!(b.count().await.expect("count"), 3);
        assert_eq!(format!("{b:?}"), "ArrowPersistence { batches: 1, rows: 3 }");
        assert_eq!(b.schema(), <OrderSoA as orderlog_snapshot::ArrowSchemaGen>::arrow_schema());
    }
}
