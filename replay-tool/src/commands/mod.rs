//! One module per subcommand.

pub mod compact;
pub mod consumers;
pub mod demo;
pub mod dump;
pub mod generate;
pub mod replay;
pub mod sql;
pub mod stats;
pub mod tail;
pub mod verify;
