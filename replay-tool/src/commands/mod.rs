//! One module per subcommand.

pub mod compact;
pub mod demo;
pub mod dump;
pub mod generate;
pub mod replay;
pub mod sql;
pub mod stats;
pub mod verify;
