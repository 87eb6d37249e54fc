//! `orderlog-ship`: the order store's backup in object storage.
//!
//! - [`layout`]: where each object of a backup lives under its prefix: generations (a
//!   restore that diverges starts a new one and never writes into an old one), log
//!   pieces named by their LSN range, snapshot files, and index objects named by a
//!   sequence number.
//! - [`index`]: the index object, versioned and checksummed, that names every object of
//!   a generation with its size and CRC-32 and the LSN up to which the log is shipped.
//!   Index objects are created, never overwritten (`If-None-Match: *` on S3, a new file on
//!   a file system): two writers can never both extend one generation, since only one of
//!   them creates the next index.
//! - [`target`]: a URL (`s3://`, `file://`) opened as an object store.
//! - [`shipper`]: ships a store directory into a generation, a round at a time.
//! - [`verify`]: checks every object a generation's index names.
//! - [`restore`]: writes a store directory from a backup, up to an LSN.
//!
//! The byte layouts are in `docs/format.md`.

pub mod error;
pub mod faults;
pub mod index;
pub mod layout;
pub mod marker;
pub mod restore;
pub mod shipper;
pub mod target;
pub mod verify;

pub use bytes::Bytes;
pub use error::{Result, ShipError};
pub use index::{BackupIndex, FileObject, INDEX_FORMAT, IndexError, SegmentObject, SnapshotObject};
pub use layout::{Generation, LogPiece};
pub use shipper::{Round, Shipper};
pub use target::Target;
