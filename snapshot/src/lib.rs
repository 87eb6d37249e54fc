//! `orderlog-snapshot`: columnar snapshots of a struct-of-arrays state.
//!
//! What it is: the [`ArrowSchemaGen`] and [`ToArrow`] traits a columnar state implements,
//! snapshot files (Arrow IPC and Parquet) and the manifest that says which snapshot is
//! current. What it is not: it never knows what the columns mean (no orders here), and it
//! never links DuckDB.

mod convert;
mod error;

pub use convert::{ArrowSchemaGen, ToArrow, check_schema};
pub use error::{Result, SnapshotError};
