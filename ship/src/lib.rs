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
//!
//! The byte layouts are in `docs/format.md`.

pub mod index;
pub mod layout;

pub use index::{BackupIndex, FileObject, INDEX_FORMAT, IndexError, SegmentObject, SnapshotObject};
pub use layout::{Generation, LogPiece};
