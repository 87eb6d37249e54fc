//! One module per subcommand.

pub mod backup;
pub mod compact;
pub mod consumers;
pub mod demo;
pub mod dump;
pub mod generate;
pub mod replay;
pub mod replica;
pub mod sql;
pub mod stats;
pub mod tail;
pub mod verify;
