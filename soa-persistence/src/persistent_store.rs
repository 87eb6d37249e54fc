//! `PersistentOrderStore`: a domain-friendly wrapper, an in-memory order store whose
//! additions are persisted through any [`SoAPersistence`] backend.

use std::path::Path;

use crate::arrow_backend::ArrowPersistence;
use crate::error::Result;
use crate::event_sourced::EventSourcedPersistence;
use crate::persistence::{MemoryStats, SoAPersistence};
use orderlog_store::StoreOptions;
use orderlog_store::domain::{DomainError, Order, OrderSoA, SoaMemoryStats};

/// The in-memory domain store: orders as a struct of arrays ([`OrderSoA`]) with its
/// `order_id -> row` index, and nothing else — no log, no file.
///
/// It is **not** the durable, event-sourced [`orderlog_store::OrderStore`]: it lives in one
/// process and is what [`PersistentOrderStore::store`] returns. Changes made to it
/// directly (through [`PersistentOrderStore::store_mut`]) are not persisted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InMemoryOrderStore {
    kernel: OrderSoA,
}

impl InMemoryOrderStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates and adds an order; returns its row. A duplicate id or an invalid value
    /// is an error and changes nothing.
    pub fn add(&mut self, order: Order) -> Result<usize, DomainError> {
        self.kernel.push(order)
    }

    /// The order with `order_id`.
    pub fn get(&self, order_id: u64) -> Option<Order> {
        self.kernel.get(order_id)
    }

    /// True if the order is held.
    pub fn contains(&self, order_id: u64) -> bool {
        self.kernel.contains(order_id)
    }

    /// Removes an order (the last row moves into its place) and returns it.
    pub fn remove(&mut self, order_id: u64) -> Option<Order> {
        self.kernel.remove(order_id)
    }

    /// Orders held.
    pub fn len(&self) -> usize {
        self.kernel.len()
    }

    /// True if no order is held.
    pub fn is_empty(&self) -> bool {
        self.kernel.is_empty()
    }

    /// The orders matching `predicate`, in row order.
    pub fn query(&self, predicate: impl Fn(&Order) -> bool) -> Vec<Order> {
        self.kernel.iter().filter(|o| predicate(o)).collect()
    }

    /// The columns: `*_raw_array()` accessors and more.
    pub fn kernel(&self) -> &OrderSoA {
        &self.kernel
    }

    /// The columns, taken out.
    pub fn into_kernel(self) -> OrderSoA {
        self.kernel
    }

    /// Memory held by the columns and the index.
    pub fn memory_stats(&self) -> SoaMemoryStats {
        self.kernel.memory_stats()
    }
}

impl From<OrderSoA> for InMemoryOrderStore {
    fn from(kernel: OrderSoA) -> Self {
        InMemoryOrderStore { kernel }
    }
}

/// An [`InMemoryOrderStore`] whose additions are persisted through a [`SoAPersistence`]
/// backend `P`.
///
/// - [`add`](Self::add) / [`add_batch`](Self::add_batch) validate against the in-memory
///   store, then [`append`](SoAPersistence::append) **only the new rows** to the backend
///   (never the whole state, which would make n adds quadratic in work and I/O). If the
///   backend fails, the in-memory store is rolled back, so the two agree.
/// - [`query_storage`](Self::query_storage) asks the backend for the matching rows
///   only.
/// - [`open`](Self::open) / [`load_from_storage`](Self::load_from_storage) rebuild the
///   in-memory store from what the backend holds (after a restart).
///
/// Backends: [`ArrowPersistence`] (in memory, the default of [`new`](Self::new)),
/// [`crate::ParquetPersistence`] and [`crate::PartitionedParquetPersistence`]
/// (files), [`EventSourcedPersistence`] (the durable event log, see
/// [`event_sourced`](Self::event_sourced)).
///
/// If a future of `add` or `add_batch` is dropped before it completes, the backend may
/// or may not have stored the rows while the in-memory store has them; call
/// [`load_from_storage`](Self::load_from_storage) to make them agree again.
#[derive(Debug)]
pub struct PersistentOrderStore<P = ArrowPersistence<OrderSoA>> {
    store: InMemoryOrderStore,
    persistence: P,
}

impl PersistentOrderStore {
    /// An empty store persisted in memory ([`ArrowPersistence`]).
    pub fn new() -> Self {
        Self::with_persistence(ArrowPersistence::new())
    }
}

impl Default for PersistentOrderStore {
    fn default() -> Self {
        Self::new()
    }
}

impl PersistentOrderStore<EventSourcedPersistence> {
    /// The event-sourced flavour: persistence in the durable [`orderlog_store::OrderStore`] in
    /// `dir` (opened, recovered, and loaded into the in-memory store). `add(order)` is
    /// `apply(Event::create(order))`, acknowledged once logged durably; `add_batch` is one
    /// logged batch (up to [`orderlog_store::events::BATCH_EVENTS_MAX`] orders).
    ///
    /// The durable store keeps its own copy of the state, so orders are held twice in
    /// memory; use [`orderlog_store::OrderStore`] directly when that matters.
    pub fn event_sourced(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        let persistence = EventSourcedPersistence::open(dir, options)?;
        let store = InMemoryOrderStore::from(persistence.store().kernel());
        Ok(PersistentOrderStore { store, persistence })
    }
}

impl<P: SoAPersistence<OrderSoA>> PersistentOrderStore<P> {
    /// An empty in-memory store persisted through `persistence`. What the backend
    /// already holds is not loaded: see [`open`](Self::open).
    pub fn with_persistence(persistence: P) -> Self {
        PersistentOrderStore { store: InMemoryOrderStore::new(), persistence }
    }

    /// A store persisted through `persistence`, starting from everything it holds.
    pub async fn open(persistence: P) -> Result<Self> {
        let mut store = Self::with_persistence(persistence);
        store.load_from_storage().await?;
        Ok(store)
    }

    /// Replaces the in-memory store with what the backend holds; returns the orders
    /// loaded.
    pub async fn load_from_storage(&mut self) -> Result<usize> {
        let loaded = self.persistence.load().await?.unwrap_or_default();
        self.store = InMemoryOrderStore::from(loaded);
        Ok(self.store.len())
    }

    /// Adds an order and persists it (one append of one row); returns its row in the
    /// in-memory store. An invalid or duplicate order is refused before anything is
    /// written.
    pub async fn add(&mut self, order: Order) -> Result<usize> {
        let row = self.store.kernel.push(order)?;
        let mut new_rows = OrderSoA::with_capacity(1);
        // Valid and new: the store just took it.
        new_rows.push(order)?;
        self.persist(row, &new_rows).await?;
        Ok(row)
    }

    /// Adds orders, all or none, and persists them as one append; returns their rows.
    /// One invalid or duplicate order (also within the batch) refuses the whole batch
    /// before anything is written. An empty batch writes nothing.
    pub async fn add_batch(&mut self, orders: Vec<Order>) -> Result<Vec<usize>> {
        let first = self.store.len();
        let mut new_rows = OrderSoA::with_capacity(orders.len());
        let mut rows = Vec::with_capacity(orders.len());
        for order in orders {
            match self.store.kernel.push(order) {
                Ok(row) => rows.push(row),
                Err(e) => {
                    self.store.kernel.truncate_to(first);
                    return Err(e.into());
                }
            }
            // Valid, and new in this batch: the store just took it.
            if let Err(e) = new_rows.push(order) {
                self.store.kernel.truncate_to(first);
                return Err(e.into());
            }
        }
        if !rows.is_empty() {
            self.persist(first, &new_rows).await?;
        }
        Ok(rows)
    }

    /// Appends `new_rows` (rows `first..` of the in-memory store) to the backend; on
    /// failure drops them from the in-memory store again.
    async fn persist(&mut self, first: usize, new_rows: &OrderSoA) -> Result<()> {
        if let Err(e) = self.persistence.append(new_rows).await {
            self.store.kernel.truncate_to(first);
            return Err(e);
        }
        Ok(())
    }

    /// Writes the whole in-memory store as the backend's new content (a
    /// [`save`](SoAPersistence::save)): after changes made through
    /// [`store_mut`](Self::store_mut), or to compact an append-only backend.
    pub async fn save_all(&mut self) -> Result<()> {
        self.persistence.save(self.store.kernel()).await
    }

    /// The persisted orders matching `predicate`, and only those (`None` if none match),
    /// read from the backend.
    pub async fn query_storage(
        &self,
        predicate: impl Fn(&Order) -> bool + Send,
    ) -> Result<Option<OrderSoA>> {
        self.persistence.query(predicate).await
    }

    /// What the backend holds (rows, batches or files, bytes).
    pub async fn memory_stats(&self) -> Result<MemoryStats> {
        self.persistence.memory_stats().await
    }

    /// The in-memory domain store (see [`InMemoryOrderStore`]).
    pub fn store(&self) -> &InMemoryOrderStore {
        &self.store
    }

    /// The in-memory domain store, for changes that are **not** persisted;
    /// [`save_all`](Self::save_all) persists them.
    pub fn store_mut(&mut self) -> &mut InMemoryOrderStore {
        &mut self.store
    }

    /// The backend.
    pub fn persistence(&self) -> &P {
        &self.persistence
    }

    /// The backend, mutably: writing through it bypasses the in-memory store (use
    /// [`load_from_storage`](Self::load_from_storage) afterwards).
    pub fn persistence_mut(&mut self) -> &mut P {
        &mut self.persistence
    }

    /// The in-memory store and the backend.
    pub fn into_parts(self) -> (InMemoryOrderStore, P) {
        (self.store, self.persistence)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::error::PersistenceError;
    use crate::parquet_backend::ParquetPersistence;
    use crate::test_support::{ids, order, range};
    use orderlog_store::domain::OrderStatus;

    /// What a backend was asked to do.
    #[derive(Debug, Default)]
    struct Calls {
        saves: usize,
        /// Rows of each append.
        appends: Vec<usize>,
        /// Fail the next writes.
        fail: bool,
    }

    /// An in-memory backend that records its writes and can fail them.
    #[derive(Clone, Default)]
    struct Recording {
        inner: ArrowPersistence<OrderSoA>,
        calls: Arc<Mutex<Calls>>,
    }

    impl Recording {
        fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
            self.calls.lock().expect("calls")
        }

        fn refuse(&self) -> Result<()> {
            if self.calls().fail {
                return Err(PersistenceError::Poisoned { detail: "told to fail".into() });
            }
            Ok(())
        }
    }

    impl SoAPersistence<OrderSoA> for Recording {
        async fn save(&mut self, data: &OrderSoA) -> Result<()> {
            self.refuse()?;
            self.calls().saves += 1;
            self.inner.save(data).await
        }
        async fn load(&self) -> Result<Option<OrderSoA>> {
            self.inner.load().await
        }
        async fn append(&mut self, data: &OrderSoA) -> Result<()> {
            self.refuse()?;
            self.calls().appends.push(data.len());
            self.inner.append(data).await
        }
        async fn query(
            &self,
            predicate: impl Fn(&Order) -> bool + Send,
        ) -> Result<Option<OrderSoA>> {
            self.inner.query(predicate).await
        }
        async fn count(&self) -> Result<usize> {
            self.inner.count().await
        }
        async fn clear(&mut self) -> Result<()> {
            self.inner.clear().await
        }
        async fn memory_stats(&self) -> Result<MemoryStats> {
            self.inner.memory_stats().await
        }
    }

    /// `add` appends just the new rows, never the whole state.
    #[tokio::test]
    async fn add_appends_only_the_new_rows_never_the_whole_state() {
        let backend = Recording::default();
        let mut store = PersistentOrderStore::with_persistence(backend.clone());
        for id in 1..=100 {
            assert_eq!(store.add(order(id)).await.expect("add"), id as usize - 1);
        }
        let rows = store.add_batch((101..=150).map(order).collect()).await.expect("batch");
        assert_eq!(rows, (100..150).collect::<Vec<_>>());
        assert_eq!(store.add_batch(Vec::new()).await.expect("empty batch"), Vec::<usize>::new());
        {
            let calls = backend.calls();
            assert_eq!(calls.saves, 0, "add must not save the whole state");
            assert_eq!(calls.appends.len(), 101);
            assert!(calls.appends[..100].iter().all(|&rows| rows == 1), "{:?}", calls.appends);
            assert_eq!(calls.appends[100], 50);
        }
        assert_eq!(backend.count().await.expect("count"), 150);
    }

    #[tokio::test]
    async fn refused_orders_write_nothing_and_change_nothing() {
        let backend = Recording::default();
        let mut store = PersistentOrderStore::with_persistence(backend.clone());
        store.add(order(1)).await.expect("add");
        assert!(matches!(store.add(order(1)).await, Err(PersistenceError::Domain(_))));
        let bad = Order { quantity: 0, ..order(9) };
        assert!(store.add(bad).await.is_err());
        // One bad order (here a duplicate within the batch) refuses the whole batch.
        let batch = vec![order(2), order(3), order(2)];
        assert!(matches!(store.add_batch(batch).await, Err(PersistenceError::Domain(_))));
        assert_eq!(ids(store.store().kernel()), [1]);
        assert_eq!(backend.calls().appends, [1]);
    }

    #[tokio::test]
    async fn a_failed_append_rolls_the_in_memory_store_back() {
        let backend = Recording::default();
        let mut store = PersistentOrderStore::with_persistence(backend.clone());
        store.add_batch((1..=3).map(order).collect()).await.expect("batch");
        backend.calls().fail = true;
        assert!(store.add(order(4)).await.is_err());
        assert!(store.add_batch((5..=9).map(order).collect()).await.is_err());
        assert_eq!(ids(store.store().kernel()), [1, 2, 3]);
        assert!(!store.store().contains(4) && !store.store().contains(5));
        backend.calls().fail = false;
        store.add(order(4)).await.expect("add once the backend works");
        assert_eq!(backend.count().await.expect("count"), 4);
    }

    /// `query_storage` returns only the matching orders, not every order.
    #[tokio::test]
    async fn query_storage_returns_only_matching_orders() {
        let mut store = PersistentOrderStore::new();
        store.add_batch((1..=60).map(order).collect()).await.expect("batch");
        let delivered = store.query_storage(|o| o.status == OrderStatus::Delivered).await;
        let delivered = delivered.expect("query").expect("matches");
        assert_eq!(ids(&delivered), (1..=60).filter(|id| id % 6 == 3).collect::<Vec<_>>());
        assert!(store.query_storage(|o| o.order_id > 60).await.expect("query").is_none());
        let stats = store.memory_stats().await.expect("stats");
        assert_eq!((stats.total_rows, stats.num_batches), (60, 1));
    }

    #[tokio::test]
    async fn open_rebuilds_the_in_memory_store_and_save_all_persists_direct_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = PersistentOrderStore::with_persistence(ParquetPersistence::new(dir.path()));
        store.add_batch((1..=10).map(order).collect()).await.expect("batch");
        store.add(order(11)).await.expect("add");
        // Not persisted until `save_all`.
        store.store_mut().remove(5);
        drop(store);
        let backend = ParquetPersistence::<OrderSoA>::new(dir.path());
        let mut store = PersistentOrderStore::open(backend).await.expect("open");
        assert_eq!(ids(store.store().kernel()), range(1..=11));
        store.store_mut().remove(5);
        store.save_all().await.expect("save_all");
        assert_eq!(store.persistence().parts().expect("parts").len(), 1);
        assert_eq!(store.load_from_storage().await.expect("reload"), 10);
        assert!(!store.store().contains(5));
        let (memory, _backend) = store.into_parts();
        assert_eq!(memory.len(), 10);
    }

    #[test]
    fn store_futures_are_send_so_tasks_can_be_spawned() {
        fn assert_send<F: std::future::Future + Send>(_: &F) {}
        let mut parquet = PersistentOrderStore::with_persistence(
            ParquetPersistence::<OrderSoA>::new("/nonexistent"),
        );
        assert_send(&parquet.add(order(1)));
        assert_send(&parquet.query_storage(|_| true));
        let mut memory = PersistentOrderStore::new();
        assert_send(&memory.add_batch(Vec::new()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_runs_inside_spawned_tasks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let task = tokio::spawn(async move {
            let backend = ParquetPersistence::<OrderSoA>::new(path);
            let mut store = PersistentOrderStore::with_persistence(backend);
            for id in 1..=20 {
                store.add(order(id)).await?;
            }
            store.memory_stats().await
        });
        let stats = task.await.expect("join").expect("task");
        assert_eq!((stats.total_rows, stats.num_batches), (20, 20));
    }
}
