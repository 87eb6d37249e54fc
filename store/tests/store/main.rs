//! Integration tests of the order store, in one test binary.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests fail loudly on purpose")]

#[cfg(feature = "analytics")]
mod analytics;
mod async_api;
mod compaction;
mod feed;
mod lifecycle;
mod model;
#[cfg(feature = "analytics")]
mod parquet_duckdb;
mod replication;
#[cfg(feature = "analytics")]
mod sql_limits;
#[cfg(feature = "analytics")]
mod sql_types;
