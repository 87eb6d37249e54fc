//! Integration tests of the snapshot files and the manifest, in one test binary.
//!
//! Every test uses `support::Sample`, a generic struct-of-arrays type defined here (a u64,
//! a u32, an f64 and a u8-backed enum column): the snapshot crate never knows about
//! orders, and neither do its tests.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on purpose"
)]

mod corruption;
mod crash;
mod fuzz_replay;
mod prune;
mod roundtrip;
mod schema;
mod support;
