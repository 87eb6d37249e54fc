//! Integration tests of the struct-of-arrays persistence API, in one test binary.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod api;
#[cfg(feature = "duckdb")]
mod duckdb;
