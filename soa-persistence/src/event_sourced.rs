//! `EventSourcedPersistence`: the persistence trait over the durable, event-sourced
//! [`OrderStore`]: every write is logged as events, every read comes from its state.

use std::path::Path;

use crate::error::Result;
use crate::persistence::{MemoryStats, SoAPersistence};
use orderlog_store::domain::{Order, OrderSoA};
use orderlog_store::events::{BATCH_EVENTS_MAX, Event};
use orderlog_store::{OrderStore, StoreOptions};

/// Persistence of orders in the durable [`OrderStore`]: `append` is one
/// `apply_batch(Event::create(..)...)`, logged to the write-ahead log and acknowledged
/// once durable as the store's sync policy says; reads come from the store's in-memory
/// state (no file is read).
///
/// Writes are atomic per logged batch of at most [`BATCH_EVENTS_MAX`] events: an append,
/// save or clear needing more events is logged as several batches, each atomic, the whole
/// not. [`save`](SoAPersistence::save) logs only the difference: orders to erase (absent
/// from the new value, or different) and orders to create.
///
/// The handle is cheap to clone (it shares the store); the store's own API stays
/// available through [`EventSourcedPersistence::store`] (status changes, amendments,
/// compaction).
#[derive(Debug, Clone)]
pub struct EventSourcedPersistence {
    store: OrderStore,
}

impl EventSourcedPersistence {
    /// Opens (creating if needed) the durable store in `dir`; see [`OrderStore::open`].
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        Ok(EventSourcedPersistence { store: OrderStore::open(dir, options)? })
    }

    /// Persistence over a store already open.
    pub fn from_store(store: OrderStore) -> Self {
        EventSourcedPersistence { store }
    }

    /// The durable store.
    pub fn store(&self) -> &OrderStore {
        &self.store
    }

    /// Logs `events` in batches of at most [`BATCH_EVENTS_MAX`].
    async fn apply_all(&self, events: &[Event]) -> Result<()> {
        for batch in events.chunks(BATCH_EVENTS_MAX) {
            self.store.apply_batch_async(batch).await?;
        }
        Ok(())
    }
}

/// Orders as a struct of arrays (they come from a valid state: unique, valid).
fn soa_of(orders: impl IntoIterator<Item = Order>) -> Result<OrderSoA> {
    let mut soa = OrderSoA::new();
    for order in orders {
        soa.push(order)?;
    }
    Ok(soa)
}

impl SoAPersistence<OrderSoA> for EventSourcedPersistence {
    async fn save(&mut self, data: &OrderSoA) -> Result<()> {
        let events = self.store.with_kernel(|current| {
            let erase = current
                .iter()
                .filter(|o| data.get(o.order_id) != Some(*o))
                .map(|o| Event::erase(o.order_id));
            let create =
                data.iter().filter(|o| current.get(o.order_id) != Some(*o)).map(Event::create);
            erase.chain(create).collect::<Vec<_>>()
        });
        self.apply_all(&events).await
    }

    async fn load(&self) -> Result<Option<OrderSoA>> {
        let orders = self.store.kernel();
        Ok((!orders.is_empty()).then_some(orders))
    }

    async fn append(&mut self, data: &OrderSoA) -> Result<()> {
        let events: Vec<Event> = data.iter().map(Event::create).collect();
        self.apply_all(&events).await
    }

    async fn query(&self, predicate: impl Fn(&Order) -> bool + Send) -> Result<Option<OrderSoA>> {
        let found = self.store.query(predicate);
        if found.is_empty() {
            return Ok(None);
        }
        Ok(Some(soa_of(found)?))
    }

    async fn count(&self) -> Result<usize> {
        Ok(self.store.len())
    }

    async fn clear(&mut self) -> Result<()> {
        let events = self.store.with_kernel(|current| {
            current.order_id_raw_array().iter().map(|&id| Event::erase(id)).collect::<Vec<_>>()
        });
        self.apply_all(&events).await
    }

    async fn memory_stats(&self) -> Result<MemoryStats> {
        let stats = self.store.memory_stats();
        let batches = usize::from(stats.rows > 0);
        Ok(MemoryStats::new(stats.column_bytes + stats.index_bytes, stats.rows, batches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistent_store::PersistentOrderStore;
    use crate::test_support::{ids, order, orders, range};
    use orderlog_store::domain::OrderStatus;

    fn open(dir: &Path) -> EventSourcedPersistence {
        EventSourcedPersistence::open(dir, StoreOptions::default()).expect("open")
    }

    #[tokio::test]
    async fn event_sourced_add_is_one_logged_create_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store =
            PersistentOrderStore::event_sourced(dir.path(), StoreOptions::default()).expect("open");
        for id in 1..=5 {
            store.add(order(id)).await.expect("add");
            assert_eq!(store.persistence().store().last_lsn(), id, "one frame per add");
        }
        let rows = store.add_batch((6..=20).map(order).collect()).await.expect("add_batch");
        assert_eq!(rows, (5..20).collect::<Vec<usize>>());
        assert_eq!(store.persistence().store().last_lsn(), 6, "one frame per batch");
        // A duplicate is refused by the in-memory store: nothing is logged.
        assert!(store.add(order(3)).await.is_err());
        assert_eq!(store.persistence().store().last_lsn(), 6);
        store.persistence().store().close().expect("close");
        drop(store);

        let durable =
            orderlog_store::OrderStore::open(dir.path(), StoreOptions::default()).expect("open");
        let report = durable.open_report();
        assert_eq!((report.batches_replayed, report.events_replayed), (6, 20));
        assert_eq!(durable.get(7), Some(order(7)));
        drop(durable);
        let store =
            PersistentOrderStore::event_sourced(dir.path(), StoreOptions::default()).expect("open");
        assert_eq!(ids(store.store().kernel()), range(1..=20));
    }

    #[tokio::test]
    async fn event_sourced_save_logs_only_the_difference() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = open(dir.path());
        p.append(&orders(1..=10)).await.expect("append");
        let mut next = orders(5..=12);
        next.remove(7);
        let changed = order(8).with_status(OrderStatus::Returned);
        next.remove(8);
        next.push(changed).expect("push");
        p.save(&next).await.expect("save");
        let mut loaded = ids(&p.load().await.expect("load").expect("rows"));
        loaded.sort_unstable();
        assert_eq!(loaded, [5, 6, 8, 9, 10, 11, 12]);
        assert_eq!(p.store().get(8), Some(changed));
        // Erase 1..=4, 7 and 8; create 8, 11 and 12: nine events in one frame.
        let report = {
            p.store().close().expect("close");
            drop(p);
            let reopened = open(dir.path());
            reopened.store().open_report().clone()
        };
        assert_eq!((report.batches_replayed, report.events_replayed), (2, 19));
    }

    #[tokio::test]
    async fn event_sourced_reads_query_count_clear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = open(dir.path());
        assert!(p.load().await.expect("load").is_none());
        p.append(&orders(1..=30)).await.expect("append");
        let found = p.query(|o: &Order| o.total_amount() > 81.0).await.expect("query");
        assert_eq!(ids(&found.expect("matches")), range(28..=30));
        assert!(p.query(|o: &Order| o.order_id == 0).await.expect("query").is_none());
        assert_eq!(p.count().await.expect("count"), 30);
        let stats = p.memory_stats().await.expect("stats");
        assert_eq!((stats.total_rows, stats.num_batches), (30, 1));
        assert!(stats.total_bytes >= 30 * orderlog_store::domain::COLUMN_BYTES_PER_ORDER);
        p.clear().await.expect("clear");
        assert_eq!(p.count().await.expect("count"), 0);
        assert_eq!(p.memory_stats().await.expect("stats").num_batches, 0);
        // Appending an order the store holds is refused by the fold: nothing is logged.
        p.append(&orders(1..=2)).await.expect("append");
        let lsn = p.store().last_lsn();
        assert!(matches!(p.append(&orders(2..=3)).await, Err(crate::PersistenceError::Store(_))));
        assert_eq!((p.store().last_lsn(), p.store().len()), (lsn, 2));
    }
}
