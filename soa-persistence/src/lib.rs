//! Persistence for struct-of-arrays data: `SoAPersistence<T>`, its backends and
//! `PersistentOrderStore`.
//!
//! A struct of arrays is persisted through an async trait with interchangeable backends:
//!
//! ```text
//! PersistentOrderStore<P>        add, add_batch, query_storage, memory_stats, store()
//!   ├── InMemoryOrderStore       the in-memory domain store (an `OrderSoA`, no log)
//!   └── P: SoAPersistence<T>     save, load, append, query, count, clear, memory_stats
//!        ├── ArrowPersistence<T>               record batches in memory
//!        ├── ParquetPersistence<T>             immutable Parquet parts on disk
//!        ├── PartitionedParquetPersistence<T>  the same, hive-partitioned by a column
//!        ├── DuckDBPersistence<T>              a DuckDB table (feature `duckdb`)
//!        └── EventSourcedPersistence           the durable event-sourced `OrderStore`
//! ```
//!
//! Guarantees:
//! - `append` adds rows and keeps the existing ones; on disk it writes one new part and
//!   never rewrites the old ones.
//! - `load` returns every row of every batch and file.
//! - `PersistentOrderStore::add` appends just the new row, not the whole state.
//! - `query` takes a predicate over one row (`&Order`) and returns exactly the matching
//!   rows, or `None` if none match.
//! - Files are fsynced (files, then directories), committed by a rename, checksummed
//!   (size and CRC-32 per file), and read back with a typed error naming the damaged
//!   file ([`PersistenceError::Corrupt`]).
//! - Compression is [`ParquetCompression`] (none, snappy, zstd; snappy by default,
//!   [`DEFAULT_PARQUET_COMPRESSION`]) rather than the parquet crate's type.
//! - The DuckDB backend (`DuckDBPersistence`, `SQLOrderStore`; cargo feature
//!   `duckdb`) validates its table name, appends through DuckDB's Arrow appender in
//!   one transaction, and binds the report's limit as a parameter.
//!
//! ```
//! # async fn demo() -> soa_persistence::Result<()> {
//! use soa_persistence::{ParquetPersistence, PersistentOrderStore};
//! use orderlog_store::{Order, ParquetCompression};
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let backend = ParquetPersistence::new(dir.path()).with_compression(ParquetCompression::Zstd);
//! let mut store = PersistentOrderStore::with_persistence(backend);
//! store.add(Order::builder(1).customer(101).product(1001).quantity(2).unit_price(25.99).build().unwrap()).await?;
//! store.add(Order::builder(2).customer(102).product(1002).quantity(1).unit_price(49.99).build().unwrap()).await?;
//!
//! let big = store.query_storage(|o| o.total_amount() > 50.0).await?;
//! assert_eq!(big.map(|orders| orders.len()), Some(1));
//! let stats = store.memory_stats().await?;
//! assert_eq!((stats.total_rows, stats.num_batches), (2, 2)); // one file per add
//!
//! drop(store); // a restart
//! let store = PersistentOrderStore::open(ParquetPersistence::new(dir.path())).await?;
//! assert_eq!(store.store().len(), 2);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().expect("rt").block_on(demo()).expect("demo");
//! ```

mod arrow_backend;
#[cfg(feature = "duckdb")]
mod duckdb_backend;
mod error;
mod event_sourced;
mod parquet_backend;
pub mod parts;
mod persistence;
mod persistent_store;
#[cfg(test)]
mod test_support;

pub use arrow_backend::{ARROW_BATCH_ROWS, ArrowPersistence};
#[cfg(feature = "duckdb")]
pub use duckdb_backend::{DUCKDB_APPEND_ROWS, DuckDBPersistence, SQLOrderStore, sql_type};
pub use error::{PersistenceError, Result};
pub use event_sourced::EventSourcedPersistence;
pub use orderlog_snapshot::ParquetCompression;
pub use parquet_backend::{
    DEFAULT_PARQUET_COMPRESSION, ParquetPersistence, PartitionedParquetPersistence,
};
pub use parts::{PartInfo, PartKind, StoredFile};
pub use persistence::{MemoryStats, SoAPersistence, SoaRows};
pub use persistent_store::{InMemoryOrderStore, PersistentOrderStore};
