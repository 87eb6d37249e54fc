//! Integration tests of the `orderlog` binary, each run as a process, in one test binary.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod backup;
mod bad_input;
mod kill;
mod points;
mod replay;
mod sql;
mod subcommands;
mod support;
mod tail;
