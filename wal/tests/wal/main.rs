//! Integration tests of the write-ahead log, in one test binary.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on purpose"
)]

mod basic;
mod corruption;
mod faults;
mod fuzz_replay;
mod lock;
mod power_loss;
mod props;
mod reader;
mod support;
