//! Durable named consumers: each one's acknowledged position in a file of its own under
//! the store's `consumers/`, written in place with a checksummed slot per
//! acknowledgement (two slots, alternating, so a torn write leaves the previous one).
//!
//! ```text
//! consumers/<name>.consumer, 12,288 bytes, one 4 KiB page each:
//!   0     header: magic "OLCONSUM", version u16 = 1, name_len u16, reserved u32,
//!                 created_ms u64, name [u8; 128] (zero-padded), crc32 u32 of bytes 0..152
//!   4096  slot A: seq u64, acked_lsn u64, acked_ms u64, flags u32 (bit 0: lagging),
//!                 reserved u32, crc32 u32 (of the header's crc, then bytes 0..32)
//!   8192  slot B: the same; slot `seq % 2` is written; the valid slot with the higher
//!                 seq is current
//! ```
//!
//! A consumer is registered by writing `<name>.consumer.tmp` whole, syncing it, renaming
//! it and syncing the directory; deleted by removing the file and syncing the directory.
//! `docs/format.md` draws the layout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use orderlog_wal::Lsn;
use orderlog_wal::storage::{SegmentFile, Storage};

use crate::error::{FeedError, Result, StoreError};
use crate::events::now_ms;

/// The consumers' directory, inside a store directory.
pub const CONSUMER_DIR: &str = "consumers";
/// A consumer file's name ends with this.
const SUFFIX: &str = ".consumer";
const TMP_SUFFIX: &str = ".consumer.tmp";
const MAGIC: &[u8; 8] = b"OLCONSUM";
/// Version of the consumer file's layout written by this code.
pub const CONSUMER_FORMAT: u16 = 1;
const PAGE: u64 = 4096;
const FILE_BYTES: u64 = 3 * PAGE;
const HEADER_BYTES: usize = 152;
const SLOT_BYTES: usize = 32;
/// Longest consumer name, in bytes.
pub const CONSUMER_NAME_MAX: usize = 128;
const LAGGING: u32 = 1;

/// A consumer's durable record, as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerRecord {
    /// Its name.
    pub name: String,
    /// Every event up to this LSN is acknowledged (0: none).
    pub acked_lsn: Lsn,
    /// When it last acknowledged (or was registered), ms since the epoch.
    pub acked_ms: u64,
    /// When it was registered, ms since the epoch.
    pub created_ms: u64,
    /// It held more log than allowed and no longer holds the log.
    pub lagging: bool,
}

/// Checks a consumer name: 1 to 128 bytes of ASCII letters, digits, `_`, `-` and `.`,
/// not starting with `.`.
pub fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > CONSUMER_NAME_MAX {
        Some("it is longer than 128 bytes")
    } else if name.starts_with('.') {
        Some("it starts with '.'")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
        Some("only ASCII letters, digits, '_', '-' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => {
            Err(FeedError::InvalidConsumerName { name: name.to_owned(), reason: reason.into() }
                .into())
        }
        None => Ok(()),
    }
}

fn file_name(name: &str) -> String {
    format!("{name}{SUFFIX}")
}

fn encode_header(name: &str, created_ms: u64) -> ([u8; HEADER_BYTES + 4], u32) {
    let mut out = [0u8; HEADER_BYTES + 4];
    out[0..8].copy_from_slice(MAGIC);
    out[8..10].copy_from_slice(&CONSUMER_FORMAT.to_le_bytes());
    // Checked by `check_name`: at most 128 bytes.
    out[10..12].copy_from_slice(&(name.len() as u16).to_le_bytes());
    out[16..24].copy_from_slice(&created_ms.to_le_bytes());
    out[24..24 + name.len()].copy_from_slice(name.as_bytes());
    let crc = crc32fast::hash(&out[..HEADER_BYTES]);
    out[HEADER_BYTES..].copy_from_slice(&crc.to_le_bytes());
    (out, crc)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    seq: u64,
    acked_lsn: Lsn,
    acked_ms: u64,
    lagging: bool,
}

fn slot_crc(header_crc: u32, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header_crc.to_le_bytes());
    h.update(body);
    h.finalize()
}

fn encode_slot(header_crc: u32, slot: Slot) -> [u8; SLOT_BYTES + 4] {
    let mut out = [0u8; SLOT_BYTES + 4];
    out[0..8].copy_from_slice(&slot.seq.to_le_bytes());
    out[8..16].copy_from_slice(&slot.acked_lsn.to_le_bytes());
    out[16..24].copy_from_slice(&slot.acked_ms.to_le_bytes());
    out[24..28].copy_from_slice(&(if slot.lagging { LAGGING } else { 0 }).to_le_bytes());
    let crc = slot_crc(header_crc, &out[..SLOT_BYTES]);
    out[SLOT_BYTES..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn decode_slot(header_crc: u32, bytes: &[u8]) -> Option<Slot> {
    let body = &bytes[..SLOT_BYTES];
    if u32_at(bytes, SLOT_BYTES) != slot_crc(header_crc, body) || body.iter().all(|&b| b == 0) {
        return None;
    }
    Some(Slot {
        seq: u64_at(body, 0),
        acked_lsn: u64_at(body, 8),
        acked_ms: u64_at(body, 16),
        lagging: u32_at(body, 24) & LAGGING != 0,
    })
}

/// Decodes a consumer file: its header and its current slot. Garbage is an error naming
/// the file and the offset of the first bad part.
fn decode(path: &std::path::Path, bytes: &[u8]) -> Result<(ConsumerRecord, u32, u64)> {
    let corrupt = |offset: u64, reason: &str| -> StoreError {
        FeedError::CorruptConsumer { file: path.to_path_buf(), offset, reason: reason.into() }
            .into()
    };
    if (bytes.len() as u64) < FILE_BYTES {
        return Err(corrupt(bytes.len() as u64, "the file is shorter than 12,288 bytes"));
    }
    if &bytes[0..8] != MAGIC {
        return Err(corrupt(0, "not a consumer file (bad magic)"));
    }
    let header_crc = u32_at(bytes, HEADER_BYTES);
    if header_crc != crc32fast::hash(&bytes[..HEADER_BYTES]) {
        return Err(corrupt(0, "the header's checksum does not match"));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != CONSUMER_FORMAT {
        return Err(corrupt(8, &format!("unknown format version {version}")));
    }
    let name_len = usize::from(u16::from_le_bytes([bytes[10], bytes[11]]));
    if name_len == 0 || name_len > CONSUMER_NAME_MAX {
        return Err(corrupt(10, "the name's length is out of range"));
    }
    let name = std::str::from_utf8(&bytes[24..24 + name_len])
        .map_err(|_| corrupt(24, "the name is not UTF-8"))?
        .to_owned();
    let slots = [PAGE as usize, 2 * PAGE as usize]
        .map(|at| decode_slot(header_crc, &bytes[at..at + SLOT_BYTES + 4]));
    let current = match slots {
        [Some(a), Some(b)] => Some(if a.seq >= b.seq { a } else { b }),
        [a, b] => a.or(b),
    };
    let Some(slot) = current else {
        return Err(corrupt(PAGE, "neither position slot is valid"));
    };
    if slot.seq == u64::MAX || slot.acked_lsn == u64::MAX {
        return Err(corrupt(PAGE, "a position slot's sequence or LSN is out of range"));
    }
    if check_name(&name).is_err()
        || path.file_name().and_then(|f| f.to_str()) != Some(file_name(&name).as_str())
    {
        return Err(corrupt(24, "the name in the header is not the file's"));
    }
    let record = ConsumerRecord {
        name,
        acked_lsn: slot.acked_lsn,
        acked_ms: slot.acked_ms,
        created_ms: u64_at(bytes, 16),
        lagging: slot.lagging,
    };
    Ok((record, header_crc, slot.seq))
}

/// Reads every consumer in `storage` (a store's `consumers/`), changing nothing: for the
/// offline tool. One outcome per file, by file name: a damaged file is an error naming
/// it and the offset, and does not hide the others. A missing directory holds none; a
/// file removed between the listing and its read (a consumer deleted meanwhile) is left
/// out.
pub fn read_consumers(storage: &dyn Storage) -> Result<Vec<Result<ConsumerRecord>>> {
    let mut names = match storage.list() {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("listing", storage.path().to_path_buf(), e)),
    };
    names.sort();
    let mut out = Vec::new();
    for file in names.iter().filter(|n| n.ends_with(SUFFIX)) {
        let path = storage.path().join(file);
        match storage.read(file) {
            Ok(bytes) => out.push(decode(&path, &bytes).map(|(record, _, _)| record)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out.push(Err(io_error("reading", path, e))),
        }
    }
    Ok(out)
}

fn io_error(doing: &'static str, path: PathBuf, source: std::io::Error) -> StoreError {
    FeedError::ConsumerIo { doing, path, source }.into()
}

/// One registered consumer, open for acknowledgements.
struct Entry {
    record: ConsumerRecord,
    file: Arc<dyn SegmentFile>,
    header_crc: u32,
    seq: u64,
    path: PathBuf,
    /// A write or sync of its file failed: its position on disk is unknown until the
    /// store is reopened, so it refuses further acknowledgements.
    failed: Option<String>,
}

impl Entry {
    /// Writes `slot` durably into the slot its sequence number picks.
    fn write(&mut self, acked_lsn: Lsn, lagging: bool) -> Result<()> {
        if let Some(cause) = &self.failed {
            return Err(FeedError::ConsumerFailed {
                name: self.record.name.clone(),
                cause: cause.clone(),
            }
            .into());
        }
        let slot = Slot { seq: self.seq + 1, acked_lsn, acked_ms: now_ms(), lagging };
        let at = if slot.seq % 2 == 1 { PAGE } else { 2 * PAGE };
        let bytes = encode_slot(self.header_crc, slot);
        let written =
            self.file.write_at(at, &[&bytes]).and_then(|()| self.file.sync_range(at, PAGE));
        if let Err(e) = written {
            // Never trust the cached copy of a slot whose writeback failed.
            self.failed = Some(e.to_string());
            tracing::error!(consumer = %self.record.name, error = %e, "a consumer's acknowledgement could not be made durable: it refuses further acknowledgements until the store is reopened");
            return Err(io_error("writing", self.path.clone(), e));
        }
        self.seq = slot.seq;
        self.record.acked_lsn = acked_lsn;
        self.record.acked_ms = slot.acked_ms;
        self.record.lagging = lagging;
        Ok(())
    }
}

/// The store's consumers: their files, their positions, and the limit on the log each
/// may hold.
pub(crate) struct Consumers {
    storage: Arc<dyn Storage>,
    entries: Mutex<BTreeMap<String, Arc<Mutex<Entry>>>>,
    /// Most bytes of log a consumer may hold below what compaction would keep anyway.
    pub(crate) hold_bytes_max: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain field updates under these locks: nothing panics while one is held.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Consumers {
    /// Opens the consumers in `storage` (creating the directory if needed), removing the
    /// leftovers of interrupted registrations. `last_lsn`: the log's last LSN after
    /// recovery; a position beyond it (the log lost frames its consumer had seen: a
    /// damaged log recovered in `PointInTime`) is brought back to it, with a warning.
    pub(crate) fn open(
        storage: Arc<dyn Storage>,
        hold_bytes_max: u64,
        last_lsn: Lsn,
    ) -> Result<Consumers> {
        let dir = storage.path().to_path_buf();
        storage.create_dir().map_err(|e| io_error("creating", dir.clone(), e))?;
        let names = storage.list().map_err(|e| io_error("listing", dir.clone(), e))?;
        let mut entries = BTreeMap::new();
        for file in &names {
            if file.ends_with(TMP_SUFFIX) {
                storage.remove(file).map_err(|e| io_error("removing", dir.join(file), e))?;
                continue;
            }
            if !file.ends_with(SUFFIX) {
                continue;
            }
            let path = dir.join(file);
            let bytes = storage.read(file).map_err(|e| io_error("reading", path.clone(), e))?;
            let (record, header_crc, seq) = decode(&path, &bytes)?;
            let handle =
                storage.open(file, FILE_BYTES).map_err(|e| io_error("opening", path.clone(), e))?;
            let mut entry = Entry { record, file: handle, header_crc, seq, path, failed: None };
            if entry.record.acked_lsn > last_lsn {
                tracing::warn!(
                    consumer = %entry.record.name,
                    acked_lsn = entry.record.acked_lsn,
                    last_lsn,
                    "a consumer acknowledged LSNs the recovered log no longer holds: its position moves back to the log's end"
                );
                let lagging = entry.record.lagging;
                entry.write(last_lsn, lagging)?;
            }
            entries.insert(entry.record.name.clone(), Arc::new(Mutex::new(entry)));
        }
        Ok(Consumers { storage, entries: Mutex::new(entries), hold_bytes_max })
    }

    /// The consumer `name`'s record, registering it first (at position 0: it has seen
    /// nothing) if it does not exist.
    pub(crate) fn register(&self, name: &str) -> Result<ConsumerRecord> {
        check_name(name)?;
        let mut entries = lock(&self.entries);
        if let Some(entry) = entries.get(name) {
            return Ok(lock(entry).record.clone());
        }
        let dir = self.storage.path().to_path_buf();
        let (tmp, file) = (format!("{name}{TMP_SUFFIX}"), file_name(name));
        let created_ms = now_ms();
        let (header, header_crc) = encode_header(name, created_ms);
        let slot = Slot { seq: 1, acked_lsn: 0, acked_ms: created_ms, lagging: false };
        let made = (|| {
            let _ = self.storage.remove(&tmp);
            let handle = self.storage.create(&tmp, FILE_BYTES)?;
            handle.write_at(0, &[&header])?;
            handle.write_at(PAGE, &[&encode_slot(header_crc, slot)])?;
            handle.sync_range(0, FILE_BYTES)?;
            drop(handle);
            self.storage.rename(&tmp, &file)?;
            self.storage.sync_dir()?;
            self.storage.open(&file, FILE_BYTES)
        })();
        let handle = made.map_err(|e| io_error("registering", dir.join(&file), e))?;
        let record = ConsumerRecord {
            name: name.to_owned(),
            acked_lsn: 0,
            acked_ms: created_ms,
            created_ms,
            lagging: false,
        };
        let entry = Entry {
            record: record.clone(),
            file: handle,
            header_crc,
            seq: 1,
            path: dir.join(&file),
            failed: None,
        };
        entries.insert(name.to_owned(), Arc::new(Mutex::new(entry)));
        tracing::info!(consumer = name, "consumer registered");
        Ok(record)
    }

    fn entry(&self, name: &str) -> Result<Arc<Mutex<Entry>>> {
        lock(&self.entries)
            .get(name)
            .cloned()
            .ok_or_else(|| FeedError::UnknownConsumer { name: name.to_owned() }.into())
    }

    /// The consumer `name`'s record.
    pub(crate) fn get(&self, name: &str) -> Result<ConsumerRecord> {
        let entry = self.entry(name)?;
        let record = lock(&entry).record.clone();
        Ok(record)
    }

    /// Every consumer's record, by name.
    pub(crate) fn list(&self) -> Vec<ConsumerRecord> {
        let entries: Vec<_> = lock(&self.entries).values().cloned().collect();
        entries.iter().map(|e| lock(e).record.clone()).collect()
    }

    /// Records durably that `name` has processed every event up to `lsn`. A position at
    /// or below the one recorded changes nothing. `unlag`: the position is back within
    /// the log the consumer may hold, so it holds the log again.
    pub(crate) fn ack(&self, name: &str, lsn: Lsn, unlag: impl Fn(Lsn) -> bool) -> Result<()> {
        let entry = self.entry(name)?;
        let mut entry = lock(&entry);
        if lsn <= entry.record.acked_lsn {
            return Ok(());
        }
        let lagging = entry.record.lagging && !unlag(lsn);
        if entry.record.lagging && !lagging {
            tracing::info!(
                consumer = name,
                acked_lsn = lsn,
                "consumer caught up: it holds the log again"
            );
        }
        entry.write(lsn, lagging)
    }

    /// Marks `name` lagging (it no longer holds the log) if, at its position now, it
    /// still holds more than allowed (`held` gives the bytes it holds at a position).
    /// Returns its position if it holds the log after all (it acknowledged meanwhile),
    /// `None` if it is lagging.
    pub(crate) fn mark_lagging_if(
        &self,
        name: &str,
        held: impl Fn(Lsn) -> u64,
    ) -> Result<Option<Lsn>> {
        let entry = self.entry(name)?;
        let mut entry = lock(&entry);
        if entry.record.lagging {
            return Ok(None);
        }
        let acked = entry.record.acked_lsn;
        let held_bytes = held(acked);
        if held_bytes <= self.hold_bytes_max {
            return Ok(Some(acked));
        }
        tracing::warn!(
            consumer = name,
            acked_lsn = acked,
            held_bytes,
            limit = self.hold_bytes_max,
            "consumer is lagging: it would hold more log than allowed, and no longer holds it"
        );
        entry.write(acked, true)?;
        Ok(None)
    }

    /// Deletes the consumer `name`: it holds the log no more.
    pub(crate) fn delete(&self, name: &str) -> Result<()> {
        let mut entries = lock(&self.entries);
        if !entries.contains_key(name) {
            return Err(FeedError::UnknownConsumer { name: name.to_owned() }.into());
        }
        let file = file_name(name);
        let path = self.storage.path().join(&file);
        self.storage.remove(&file).map_err(|e| io_error("deleting", path.clone(), e))?;
        // Gone from the directory: it holds the log no more, whether or not the removal
        // is durable yet (a power cut before the sync may bring the file back, with the
        // position it had).
        entries.remove(name);
        self.storage.sync_dir().map_err(|e| io_error("deleting", path, e))?;
        tracing::info!(consumer = name, "consumer deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderlog_wal::storage::FsStorage;

    fn storage(dir: &std::path::Path) -> Arc<dyn Storage> {
        FsStorage::new(dir).sub(CONSUMER_DIR)
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("outbox-relay_1.v2").is_ok());
        for bad in ["", ".hidden", "a/b", "spaced name", &"x".repeat(129)] {
            assert!(
                matches!(
                    check_name(bad),
                    Err(StoreError::Feed(FeedError::InvalidConsumerName { .. }))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn positions_survive_a_reopen_and_a_torn_slot() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| io_error("tempdir", PathBuf::new(), e))?;
        let s = storage(dir.path());
        let consumers = Consumers::open(Arc::clone(&s), 1 << 20, 100)?;
        assert_eq!(consumers.register("relay")?.acked_lsn, 0);
        consumers.ack("relay", 7, |_| true)?;
        consumers.ack("relay", 9, |_| true)?;
        consumers.ack("relay", 3, |_| true)?; // backwards: nothing changes
        drop(consumers);
        let consumers = Consumers::open(Arc::clone(&s), 1 << 20, 100)?;
        assert_eq!(consumers.get("relay")?.acked_lsn, 9);
        drop(consumers);
        // Tear the newest slot (seq 3, slot B... whichever): the other one stands.
        let path = dir.path().join(CONSUMER_DIR).join("relay.consumer");
        let mut bytes = std::fs::read(&path).map_err(|e| io_error("read", path.clone(), e))?;
        let newest = if u64_at(&bytes, PAGE as usize) > u64_at(&bytes, 2 * PAGE as usize) {
            PAGE as usize
        } else {
            2 * PAGE as usize
        };
        bytes[newest + 9] ^= 0xff;
        std::fs::write(&path, &bytes).map_err(|e| io_error("write", path.clone(), e))?;
        let consumers = Consumers::open(Arc::clone(&s), 1 << 20, 100)?;
        assert_eq!(consumers.get("relay")?.acked_lsn, 7);
        // Clamped to the log's end.
        drop(consumers);
        let consumers = Consumers::open(Arc::clone(&s), 1 << 20, 5)?;
        assert_eq!(consumers.get("relay")?.acked_lsn, 5);
        consumers.delete("relay")?;
        assert!(matches!(
            consumers.get("relay"),
            Err(StoreError::Feed(FeedError::UnknownConsumer { .. }))
        ));
        assert!(read_consumers(s.as_ref())?.is_empty());
        // A damaged file is reported, naming it, and does not hide the others.
        consumers.register("a")?;
        consumers.register("b")?;
        let damaged = dir.path().join(CONSUMER_DIR).join("a.consumer");
        let mut bytes =
            std::fs::read(&damaged).map_err(|e| io_error("read", damaged.clone(), e))?;
        bytes[0] ^= 1;
        std::fs::write(&damaged, &bytes).map_err(|e| io_error("write", damaged.clone(), e))?;
        let read = read_consumers(s.as_ref())?;
        assert_eq!(read.len(), 2);
        let err = read[0].as_ref().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("a.consumer") && err.contains("offset 0"), "{err}");
        assert_eq!(read[1].as_ref().map(|r| r.name.as_str()).ok(), Some("b"));
        Ok(())
    }

    #[test]
    fn garbage_is_an_error_naming_file_and_offset() {
        let path = std::path::Path::new("consumers/x.consumer");
        let (header, crc) = encode_header("x", 1);
        let mut bytes = vec![0u8; FILE_BYTES as usize];
        bytes[..header.len()].copy_from_slice(&header);
        // No valid slot.
        let err = decode(path, &bytes).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("offset 4096"), "{err}");
        bytes[PAGE as usize..PAGE as usize + SLOT_BYTES + 4].copy_from_slice(&encode_slot(
            crc,
            Slot { seq: 1, acked_lsn: 4, acked_ms: 2, lagging: true },
        ));
        let record = decode(path, &bytes).map(|(r, _, _)| r);
        assert!(matches!(record, Ok(ConsumerRecord { acked_lsn: 4, lagging: true, .. })));
        bytes[3] = b'!';
        let err = decode(path, &bytes).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("x.consumer") && err.contains("offset 0"), "{err}");
        let err = decode(path, &bytes[..100]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("shorter"), "{err}");
        // A valid file under another name: refused, naming the header's name field.
        bytes[3] = MAGIC[3];
        assert!(decode(path, &bytes).is_ok());
        let other = std::path::Path::new("consumers/y.consumer");
        let err = decode(other, &bytes).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("offset 24"), "{err}");
    }
}
