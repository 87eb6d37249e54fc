//! The generation a store last started, recorded in its directory
//! (`replication/GENERATION`), so that a store fenced by a promoted replica refuses to
//! ship again after a restart. Layout (`docs/format.md`):
//!
//! ```text
//! [magic "OLREPGEN" 8][body_len u32][body: JSON {format, target, generation}][crc32 u32]
//! ```
//!
//! Written to `GENERATION.tmp`, synced, renamed, the directory synced.

use orderlog_storage::Storage;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ShipError};
use crate::layout::Generation;

/// The marker's directory in a store directory.
pub const DIR: &str = "replication";
const FILE: &str = "GENERATION";
const TMP: &str = "GENERATION.tmp";
const MAGIC: &[u8; 8] = b"OLREPGEN";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Body {
    format: u32,
    target: String,
    generation: String,
}

/// The generation recorded for `target`, if the store recorded one for it.
pub fn read(store: &dyn Storage, target: &str) -> Result<Option<Generation>> {
    let dir = store.sub(DIR);
    let path = dir.path().join(FILE);
    let bytes = match dir.read(FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ShipError::Io { op: "read", path, source: e }),
    };
    let corrupt = |offset: usize, reason: &str| ShipError::Corrupt {
        object: path.display().to_string(),
        offset: offset as u64,
        reason: reason.to_owned(),
    };
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(corrupt(0, "not a generation marker (bad magic or too short)"));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[8..12]);
    let len = u32::from_le_bytes(len) as usize;
    if bytes.len() != 16 + len {
        return Err(corrupt(8, "its length does not fit the file"));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[12 + len..]);
    if u32::from_le_bytes(crc) != crc32fast::hash(&bytes[..12 + len]) {
        return Err(corrupt(12 + len, "the checksum does not match"));
    }
    let body: Body =
        serde_json::from_slice(&bytes[12..12 + len]).map_err(|e| corrupt(12, &e.to_string()))?;
    if body.format != FORMAT {
        return Err(corrupt(12, &format!("unknown format {}", body.format)));
    }
    let generation =
        Generation::parse(&body.generation).ok_or_else(|| corrupt(12, "not a generation id"))?;
    Ok((body.target == target).then_some(generation))
}

/// Records `generation` as the one this store ships `target` into, durably.
pub fn write(store: &dyn Storage, target: &str, generation: Generation) -> Result<()> {
    let dir = store.sub(DIR);
    let io = |op: &'static str| ShipError::io(op, dir.path().join(FILE));
    dir.create_dir().map_err(io("create directory"))?;
    let body =
        Body { format: FORMAT, target: target.to_owned(), generation: generation.to_string() };
    // Plain strings and an integer: serialising cannot fail.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut bytes = Vec::with_capacity(body.len() + 16);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&body);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let mut file = dir.create_file(TMP).map_err(io("create"))?;
    std::io::Write::write_all(&mut file, &bytes).map_err(io("write"))?;
    file.sync().map_err(io("sync"))?;
    drop(file);
    dir.rename(TMP, FILE).map_err(io("rename"))?;
    dir.sync_dir().map_err(io("sync directory"))?;
    store.sync_dir().map_err(io("sync directory"))
}

/// Forgets the recorded generation (a store that becomes a replica, or is promoted,
/// ships its own history from then on), durably.
pub fn remove(store: &dyn Storage) -> Result<()> {
    let dir = store.sub(DIR);
    match dir.remove(FILE) {
        Ok(()) => dir.sync_dir().map_err(ShipError::io("sync directory", dir.path())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ShipError::Io { op: "remove", path: dir.path().join(FILE), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderlog_storage::FsStorage;

    #[test]
    fn a_marker_reads_back_for_its_target_only_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStorage::new(dir.path());
        assert_eq!(read(&store, "s3://a").unwrap(), None);
        let g = Generation { started_ms: 5, tag: 9 };
        write(&store, "s3://a", g).unwrap();
        assert_eq!(read(&store, "s3://a").unwrap(), Some(g));
        assert_eq!(read(&store, "s3://b").unwrap(), None);
        remove(&store).unwrap();
        assert_eq!(read(&store, "s3://a").unwrap(), None);
        remove(&store).unwrap();
        write(&store, "s3://a", g).unwrap();
        let path = dir.path().join(DIR).join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[14] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read(&store, "s3://a"), Err(ShipError::Corrupt { .. })));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(read(&store, "s3://a"), Err(ShipError::Corrupt { .. })));
    }
}
