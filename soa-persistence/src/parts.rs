//! The directory layout and commit protocol the Parquet backends share: a directory of
//! immutable, checksummed parts.
//!
//! ```text
//! <base>/
//!   LOCK                                   flock'ed by the one writer
//!   save-00000000000000000004/             a save: replaces every older part
//!     PART                                 what the part holds (checksummed, below)
//!     data.parquet                         or, partitioned, hive-style:
//!     parquet/<column>=<value>/part-0.parquet
//!   append-00000000000000000005/           an append: adds to the parts before it
//!     PART
//!     data.parquet
//!   .tmp-00000000000000000006/             being written; never read
//! ```
//!
//! Writing a part is the snapshot crate's commit of a whole directory
//! ([`orderlog_snapshot::StagedDir`], the one the snapshot store publishes snapshots
//! with): the Parquet files and `PART` are written under `.tmp-<seq>/`, every file and
//! directory is fsynced, then the directory is renamed to `save-<seq>` or `append-<seq>`
//! and `<base>` is fsynced. The rename is the commit: a crash before it leaves a `.tmp-`
//! directory that readers ignore and the next writer deletes; after it, the part is
//! whole. Parts are never opened for writing again. Every file operation, reads too,
//! goes through the storage door (`orderlog_storage::Storage`).
//!
//! The stored rows are those of the newest `save-` part and of every `append-` part after
//! it, in sequence order. Parts older than the newest save are shadowed: readers skip
//! them, and writers delete them once the save is durable (a crash in between leaves them
//! shadowed, and the next writer deletes them).
//!
//! `PART` is one header line, `ORDERLOG-PART 1 <crc32 of body, 8 hex digits> <body
//! bytes>`, then a JSON body: `{"kind", "seq", "rows", "compression", "partition_by",
//! "files": [{"path", "bytes", "crc32"}]}` with paths relative to the part. Readers check
//! the header, then each file's size and CRC-32 against the body, before decoding.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use orderlog_snapshot::{
    PARTITIONS_LIMIT, ParquetCompression, SnapshotError, SnapshotOptions, StagedDir, StagedFile,
    decode_parquet,
};
use orderlog_storage::{FsStorage, LockGuard, Storage};
use serde_json::{Value, json};

use crate::error::{PersistenceError, Result, io_err};
use crate::persistence::{Gather, Matches, MemoryStats, SoaRows};

/// A part's description.
const PART_FILE: &str = "PART";
/// Prefix of a part being written.
const TMP_PREFIX: &str = ".tmp-";
/// First word of a `PART` file.
const PART_MAGIC: &str = "ORDERLOG-PART";
/// Version of the `PART` format.
const PART_VERSION: u32 = 1;
/// Largest `PART` file read (a part lists at most `PARTITIONS_LIMIT` files).
const PART_BYTES_MAX: u64 = 32 << 20;

/// Whether a part replaces what came before it or adds to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartKind {
    /// Written by `save` (or `clear`, with no rows): replaces every older part.
    Save,
    /// Written by `append`: adds its rows to the parts before it.
    Append,
}

impl PartKind {
    /// The name's prefix: `save` or `append`.
    pub fn as_str(self) -> &'static str {
        match self {
            PartKind::Save => "save",
            PartKind::Append => "append",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "save" => Some(PartKind::Save),
            "append" => Some(PartKind::Append),
            _ => None,
        }
    }
}

/// A Parquet file of a part, as the part's description records it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// CRC-32 (IEEE) of its content.
    pub crc32: u32,
}

/// A committed part: one save or append, in its own directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartInfo {
    /// Save or append.
    pub kind: PartKind,
    /// Its sequence number (parts apply in this order).
    pub seq: u64,
    /// Its directory, `<base>/<kind>-<seq:020>`.
    pub dir: PathBuf,
    /// Rows it holds.
    pub rows: u64,
    /// Its Parquet files (none for an empty save, one per partition value when
    /// partitioned).
    pub files: Vec<StoredFile>,
}

/// A part directory found by name, not yet read.
#[derive(Debug, Clone)]
struct Listed {
    kind: PartKind,
    seq: u64,
    /// Its name in `<base>`.
    name: String,
}

/// A directory's parts by name, oldest first, and its temporary directories' names.
#[derive(Debug, Default)]
struct Listing {
    parts: Vec<Listed>,
    tmps: Vec<(u64, String)>,
}

/// What the writer keeps: the lock and the next sequence number.
struct Writer {
    // Held for the life of the writer: one writer per directory.
    _lock: Box<dyn LockGuard>,
    next_seq: u64,
}

/// A directory of parts (see the module docs), read by anyone, written by one handle.
pub(crate) struct PartDir {
    base: PathBuf,
    storage: Arc<dyn Storage>,
    options: SnapshotOptions,
    writer: Option<Writer>,
    poisoned: Option<String>,
}

impl std::fmt::Debug for PartDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartDir").field("base", &self.base).finish_non_exhaustive()
    }
}

impl PartDir {
    /// Parts under `base` on the real file system, written with `options` (compression,
    /// partition column). Nothing is touched on disk until the first write.
    pub(crate) fn new(base: PathBuf, options: SnapshotOptions) -> Self {
        Self::on(Arc::new(FsStorage::new(&base)), options)
    }

    /// Parts in `storage`'s root (the simulated disk in crash tests).
    pub(crate) fn on(storage: Arc<dyn Storage>, options: SnapshotOptions) -> Self {
        let base = storage.path().to_path_buf();
        PartDir { base, storage, options, writer: None, poisoned: None }
    }

    pub(crate) fn base(&self) -> &Path {
        &self.base
    }

    pub(crate) fn compression(&self) -> ParquetCompression {
        self.options.compression
    }

    pub(crate) fn set_compression(&mut self, compression: ParquetCompression) {
        self.options.compression = compression;
    }

    pub(crate) fn partition_by(&self) -> Option<&str> {
        self.options.partition_by.as_deref()
    }

    /// Writes `data` as a new part of `kind`; see the module docs for the protocol.
    /// An append of no rows writes nothing; a save of no rows writes an empty save
    /// (that is how `clear` is atomic).
    pub(crate) fn write<T: SoaRows>(&mut self, kind: PartKind, data: &T) -> Result<()> {
        if kind == PartKind::Append && data.num_rows() == 0 {
            return Ok(());
        }
        let writer = self.writer()?;
        let seq = writer.next_seq;
        // The number is used up whatever happens below: a failed write's leftovers never
        // collide with the next one.
        writer.next_seq += 1;
        let name = part_name(kind, seq);
        let mut staged =
            StagedDir::create(Arc::clone(&self.storage), &format!("{TMP_PREFIX}{seq:020}"))?;
        if let Err(e) = self.stage(&mut staged, kind, seq, data) {
            // Not committed: nothing refers to the temporary directory.
            staged.abandon();
            return Err(e);
        }
        if let Err(e) = staged.commit(&name, &mut |_| Ok(())) {
            if self.storage.list().is_ok_and(|names| names.contains(&name)) {
                // The part is in place but perhaps not durable: whether it survives a
                // crash is unknown, so no further write may build on it.
                self.poisoned = Some(e.to_string());
            }
            return Err(e.into());
        }
        if kind == PartKind::Save {
            self.collect_garbage(seq);
        }
        Ok(())
    }

    /// The part's Parquet files, then its `PART` description, into `staged`.
    fn stage<T: SoaRows>(
        &self,
        staged: &mut StagedDir,
        kind: PartKind,
        seq: u64,
        data: &T,
    ) -> Result<()> {
        if data.num_rows() > 0 {
            staged.write_parquet(data, &self.options)?;
        }
        let body = self.describe(kind, seq, data.num_rows() as u64, &staged.files());
        staged.write_file(PART_FILE, &encode_part(&body))?;
        Ok(())
    }

    /// The JSON body of a part's `PART` file.
    fn describe(&self, kind: PartKind, seq: u64, rows: u64, files: &[StagedFile]) -> Vec<u8> {
        let entries: Vec<Value> = files
            .iter()
            .map(|f| json!({ "path": f.rel_path, "bytes": f.bytes, "crc32": f.crc32 }))
            .collect();
        let body = json!({
            "kind": kind.as_str(),
            "seq": seq,
            "rows": rows,
            "compression": self.options.compression.as_str(),
            "partition_by": self.options.partition_by,
            "files": entries,
        });
        body.to_string().into_bytes()
    }

    /// The writer, opened on first use: creates `base`, takes `LOCK`, deletes what a
    /// crash left (temporary and shadowed parts) and finds the next sequence number.
    fn writer(&mut self) -> Result<&mut Writer> {
        if let Some(detail) = &self.poisoned {
            return Err(PersistenceError::Poisoned { detail: detail.clone() });
        }
        let writer = match self.writer.take() {
            Some(writer) => writer,
            None => self.open_writer()?,
        };
        Ok(self.writer.insert(writer))
    }

    fn open_writer(&self) -> Result<Writer> {
        // Creates `base` if needed, its own entry made durable too.
        self.storage.create_dir().map_err(io_err("create directory", self.base.clone()))?;
        let lock_path = self.base.join(orderlog_storage::LOCK_FILE);
        let lock = match self.storage.try_lock() {
            Ok(Some(lock)) => lock,
            Ok(None) => return Err(PersistenceError::Locked { path: lock_path }),
            Err(e) => return Err(io_err("lock", lock_path)(e)),
        };
        let Listing { parts, tmps } = self.list()?;
        let newest = parts.iter().map(|p| p.seq).chain(tmps.iter().map(|(seq, _)| *seq)).max();
        for (_, tmp) in &tmps {
            // Uncommitted leftovers of a crash; if one cannot go, its number is skipped.
            let _ = self.storage.remove_dir_all(tmp);
        }
        if let Some(save) = parts.iter().rev().find(|p| p.kind == PartKind::Save) {
            self.collect_garbage(save.seq);
        }
        Ok(Writer { _lock: lock, next_seq: newest.map_or(1, |n| n + 1) })
    }

    /// Deletes the parts older than the save `seq`, which shadows them. Best effort: a
    /// part that cannot be deleted now stays shadowed (never read) until the next try.
    fn collect_garbage(&self, seq: u64) {
        let Ok(Listing { parts, .. }) = self.list() else { return };
        let mut deleted = false;
        for part in parts.iter().filter(|p| p.seq < seq) {
            deleted |= self.storage.remove_dir_all(&part.name).is_ok();
        }
        if deleted {
            let _ = self.storage.sync_dir();
        }
    }

    /// Committed parts by name, oldest first, and temporary directories.
    fn list(&self) -> Result<Listing> {
        let names = match self.storage.list() {
            Ok(names) => names,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => return Err(io_err("list directory", self.base.clone())(e)),
        };
        let (mut parts, mut tmps) = (Vec::new(), Vec::new());
        for name in names {
            // Names this layout does not use are left alone (LOCK, a user's notes).
            if let Some(seq) = name.strip_prefix(TMP_PREFIX).and_then(parse_seq) {
                tmps.push((seq, name));
            } else if let Some((kind, seq)) = name
                .split_once('-')
                .and_then(|(k, s)| Some((PartKind::from_name(k)?, parse_seq(s)?)))
            {
                parts.push(Listed { kind, seq, name });
            }
        }
        parts.sort_by_key(|p| p.seq);
        Ok(Listing { parts, tmps })
    }

    /// The parts holding the stored rows: the newest save and the appends after it,
    /// oldest first, each description read and checked.
    pub(crate) fn live_parts(&self) -> Result<Vec<PartInfo>> {
        let parts = self.list()?.parts;
        let start = parts.iter().rposition(|p| p.kind == PartKind::Save).unwrap_or(0);
        parts[start..].iter().map(|p| self.read_part(p)).collect()
    }

    /// Every stored row (see [`crate::SoAPersistence::load`]).
    pub(crate) fn load<T: SoaRows>(&self) -> Result<Option<T>> {
        let mut gather = Gather::new();
        self.for_each_batch(|path, batch| in_file(path, gather.add(batch)))?;
        Ok(gather.finish())
    }

    /// The stored rows matching `predicate`, one batch at a time.
    pub(crate) fn query<T: SoaRows>(
        &self,
        predicate: &impl Fn(&T::Row) -> bool,
    ) -> Result<Option<T>> {
        let mut matches = Matches::new();
        self.for_each_batch(|path, batch| in_file(path, matches.add(batch, predicate)))?;
        Ok(matches.finish())
    }

    /// Calls `f` with every batch of every live file, in order, after checking each file
    /// and that each part holds the rows its description says.
    fn for_each_batch(&self, mut f: impl FnMut(&Path, &RecordBatch) -> Result<()>) -> Result<()> {
        for part in self.live_parts()? {
            let mut rows = 0u64;
            for file in &part.files {
                for batch in self.read_verified(file)? {
                    rows += batch.num_rows() as u64;
                    f(&file.path, &batch)?;
                }
            }
            if rows != part.rows {
                return Err(PersistenceError::Corrupt {
                    path: part.dir.join(PART_FILE),
                    detail: format!("the part says {} rows, its files hold {rows}", part.rows),
                    source: None,
                });
            }
        }
        Ok(())
    }

    /// Rows stored, from the parts' descriptions (no data file is read).
    pub(crate) fn count(&self) -> Result<usize> {
        let rows: u64 = self.live_parts()?.iter().map(|p| p.rows).sum();
        Ok(usize::try_from(rows).unwrap_or(usize::MAX))
    }

    /// Bytes and files on disk, and rows, of the live parts.
    pub(crate) fn stats(&self) -> Result<MemoryStats> {
        let parts = self.live_parts()?;
        let files = parts.iter().flat_map(|p| &p.files);
        let bytes: u64 = files.clone().map(|f| f.bytes).sum();
        let rows: u64 = parts.iter().map(|p| p.rows).sum();
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(MemoryStats::new(to_usize(bytes), to_usize(rows), files.count()))
    }
}

/// Attributes a decoding error to the file whose rows were being decoded.
fn in_file(path: &Path, result: Result<()>) -> Result<()> {
    result.map_err(|e| match e {
        PersistenceError::Snapshot(source) => PersistenceError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("its rows cannot be loaded: {source}"),
            source: Some(source),
        },
        other => other,
    })
}

/// `<kind>-<seq:020>`.
fn part_name(kind: PartKind, seq: u64) -> String {
    format!("{}-{seq:020}", kind.as_str())
}

/// A sequence number as written in names: exactly 20 decimal digits.
fn parse_seq(s: &str) -> Option<u64> {
    (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// `PART`'s bytes: the header line, then the body.
fn encode_part(body: &[u8]) -> Vec<u8> {
    let header = format!("{PART_MAGIC} {PART_VERSION} {:08x} {}\n", crc32(body), body.len());
    let mut out = header.into_bytes();
    out.extend_from_slice(body);
    out
}

impl PartDir {
    /// Reads and checks a committed part's `PART` file.
    fn read_part(&self, listed: &Listed) -> Result<PartInfo> {
        let name = format!("{}/{PART_FILE}", listed.name);
        let bytes = self.read_small(&name, PART_BYTES_MAX)?;
        parse_part(&self.base, listed, &self.base.join(&name), &bytes)
    }

    /// A file's content, refusing files above `max` bytes.
    fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let path = self.base.join(name);
        let len = self.storage.file_len(name).map_err(|e| missing_or_io(&path, "stat", e))?;
        if len > max {
            return Err(PersistenceError::Corrupt {
                path,
                detail: format!("{len} bytes, at most {max} expected"),
                source: None,
            });
        }
        self.storage.read(name).map_err(|e| missing_or_io(&path, "read", e))
    }

    /// A part's file, read once and checked against its description (size, then
    /// CRC-32) before the Parquet decoder sees a byte.
    fn read_verified(&self, file: &StoredFile) -> Result<Vec<RecordBatch>> {
        let corrupt = |detail: String, source: Option<SnapshotError>| PersistenceError::Corrupt {
            path: file.path.clone(),
            detail,
            source,
        };
        let name = file
            .path
            .strip_prefix(&self.base)
            .ok()
            .and_then(Path::to_str)
            .ok_or_else(|| corrupt(format!("outside {}", self.base.display()), None))?;
        let len = self.storage.file_len(name).map_err(|e| missing_or_io(&file.path, "stat", e))?;
        if len != file.bytes {
            return Err(corrupt(format!("{len} bytes, its part says {}", file.bytes), None));
        }
        let bytes = self.storage.read(name).map_err(|e| missing_or_io(&file.path, "read", e))?;
        let crc = crc32(&bytes);
        if bytes.len() as u64 != file.bytes || crc != file.crc32 {
            return Err(corrupt(
                format!("CRC-32 {crc:08x}, its part says {:08x}", file.crc32),
                None,
            ));
        }
        decode_parquet(&file.path, bytes).map_err(|e| match e {
            e @ SnapshotError::Io { .. } => PersistenceError::Snapshot(e),
            e => corrupt(format!("not decodable: {e}"), Some(e)),
        })
    }
}

/// Checks a committed part's `PART` file, read from `path`, and says what it holds.
fn parse_part(base: &Path, listed: &Listed, path: &Path, bytes: &[u8]) -> Result<PartInfo> {
    let corrupt = |detail: String| PersistenceError::Corrupt {
        path: path.to_path_buf(),
        detail,
        source: None,
    };
    let newline = bytes.iter().position(|&b| b == b'\n');
    let (header, body) = match newline {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => return Err(corrupt("no header line".into())),
    };
    let header = std::str::from_utf8(header).map_err(|_| corrupt("header is not text".into()))?;
    let fields: Vec<&str> = header.split(' ').collect();
    let expected_header = format!("{PART_MAGIC} {PART_VERSION} {:08x} {}", crc32(body), body.len());
    if fields.len() != 4 || fields[0] != PART_MAGIC {
        return Err(corrupt(format!("header {header:?} is not a part header")));
    }
    if fields[1] != PART_VERSION.to_string() {
        return Err(corrupt(format!(
            "format version {} (this build reads {PART_VERSION})",
            fields[1]
        )));
    }
    if header != expected_header {
        return Err(corrupt(format!(
            "header {header:?} does not match the body ({} bytes, CRC-32 {:08x})",
            body.len(),
            crc32(body)
        )));
    }
    let body: Value =
        serde_json::from_slice(body).map_err(|e| corrupt(format!("body is not JSON: {e}")))?;
    decode_part(&base.join(&listed.name), listed, &body).map_err(corrupt)
}

/// The meaning of a `PART` body whose checksum matched.
fn decode_part(dir: &Path, listed: &Listed, body: &Value) -> Result<PartInfo, String> {
    let u64_of = |v: &Value, key: &str| {
        v.get(key).and_then(Value::as_u64).ok_or_else(|| format!("{key:?} missing or not a number"))
    };
    let kind = body.get("kind").and_then(Value::as_str).and_then(PartKind::from_name);
    if kind != Some(listed.kind) || u64_of(body, "seq")? != listed.seq {
        return Err(format!(
            "the body names another part than {}",
            part_name(listed.kind, listed.seq)
        ));
    }
    let rows = u64_of(body, "rows")?;
    let entries = body.get("files").and_then(Value::as_array).ok_or("\"files\" missing")?;
    if entries.len() > PARTITIONS_LIMIT {
        return Err(format!("{} files, at most {PARTITIONS_LIMIT}", entries.len()));
    }
    let mut files = Vec::with_capacity(entries.len());
    for entry in entries {
        let rel = entry.get("path").and_then(Value::as_str).ok_or("a file has no path")?;
        let confined = !rel.is_empty()
            && Path::new(rel).components().all(|c| matches!(c, Component::Normal(_)));
        if !confined {
            return Err(format!("file path {rel:?} leaves the part"));
        }
        let bytes = u64_of(entry, "bytes")?;
        let crc32 = u32::try_from(u64_of(entry, "crc32")?).map_err(|_| "crc32 too large")?;
        if bytes == 0 {
            return Err(format!("file {rel:?} has 0 bytes"));
        }
        files.push(StoredFile { path: dir.join(rel), bytes, crc32 });
    }
    if (rows == 0) != files.is_empty() {
        return Err(format!("{rows} rows in {} files", files.len()));
    }
    Ok(PartInfo { kind: listed.kind, seq: listed.seq, dir: dir.to_path_buf(), rows, files })
}

/// A file a part lists but that is missing is damage; any other failure is I/O.
fn missing_or_io(path: &Path, op: &'static str, e: std::io::Error) -> PersistenceError {
    if e.kind() == ErrorKind::NotFound {
        PersistenceError::Corrupt {
            path: path.to_path_buf(),
            detail: "missing".into(),
            source: None,
        }
    } else {
        io_err(op, path)(e)
    }
}

/// CRC-32 (IEEE 802.3, as `crc32fast` computes it): the checksum snapshot files use too.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A save and two appends on the simulated disk, the power cut after every storage
    /// operation (and in four ways at each): what a reader finds after is always the
    /// rows of a prefix of the writes that returned Ok, at least those acknowledged, and
    /// never a damaged part.
    #[test]
    fn a_power_cut_anywhere_leaves_whole_parts_only() {
        use orderlog_storage::SimStorage;
        use orderlog_store::OrderSoA;

        use crate::test_support::{ids, orders, range};
        let writes: [(PartKind, std::ops::RangeInclusive<u64>); 3] =
            [(PartKind::Save, 1..=5), (PartKind::Append, 6..=8), (PartKind::Append, 9..=12)];
        let run = |disk: &SimStorage| -> usize {
            let mut parts = PartDir::on(Arc::new(disk.clone()), SnapshotOptions::default());
            writes
                .iter()
                .take_while(|(kind, r)| parts.write(*kind, &orders(r.clone())).is_ok())
                .count()
        };
        let clean = SimStorage::new("/parts");
        assert_eq!(run(&clean), 3);
        let total = clean.op_count();
        assert!(total > 20, "{total} operations");
        for k in 0..=total {
            let disk = SimStorage::new("/parts");
            disk.crash_after(k);
            let acked = run(&disk);
            for seed in 0..4 {
                let after = disk.crash(seed);
                let reader = PartDir::on(Arc::new(after), SnapshotOptions::default());
                let found = match reader.load::<OrderSoA>() {
                    Ok(found) => found.map(|soa| ids(&soa)).unwrap_or_default(),
                    Err(e) => panic!("crash after {k} ops, seed {seed}: {e}"),
                };
                let prefixes: Vec<Vec<u64>> = (0..=3)
                    .map(|n| writes[..n].iter().flat_map(|(_, r)| range(r.clone())).collect())
                    .collect();
                let at = prefixes.iter().position(|p| *p == found);
                assert!(
                    at.is_some_and(|n| n >= acked),
                    "crash after {k} ops, seed {seed}: found {found:?}, {acked} writes acknowledged"
                );
            }
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn sequence_numbers_parse_only_in_their_written_form() {
        assert_eq!(parse_seq("00000000000000000042"), Some(42));
        for bad in ["42", "0000000000000000004x", "+0000000000000000042", "99999999999999999999"] {
            assert_eq!(parse_seq(bad), None, "{bad}");
        }
        assert_eq!(part_name(PartKind::Append, 7), "append-00000000000000000007");
    }

    #[test]
    fn part_header_and_body_are_checked() {
        let base = tempfile::tempdir().expect("tempdir");
        let parts = PartDir::new(base.path().to_path_buf(), SnapshotOptions::default());
        let name = part_name(PartKind::Append, 3);
        let dir = base.path().join(&name);
        std::fs::create_dir(&dir).expect("part dir");
        let listed = Listed { kind: PartKind::Append, seq: 3, name };
        let read_part = |listed: &Listed| parts.read_part(listed);
        let write = |body: &str| {
            std::fs::write(dir.join(PART_FILE), encode_part(body.as_bytes())).expect("write");
        };
        let good = r#"{"kind":"append","seq":3,"rows":2,"files":[{"path":"a/b.parquet","bytes":9,"crc32":1}]}"#;
        write(good);
        let info = read_part(&listed).expect("good part");
        assert_eq!(info.files[0].path, dir.join("a/b.parquet"));
        for (body, why) in [
            (r#"{"kind":"save","seq":3,"rows":2,"files":[]}"#, "another kind"),
            (r#"{"kind":"append","seq":4,"rows":2,"files":[]}"#, "another seq"),
            (r#"{"kind":"append","seq":3,"rows":2,"files":[]}"#, "rows without files"),
            (
                r#"{"kind":"append","seq":3,"rows":1,"files":[{"path":"../x","bytes":9,"crc32":1}]}"#,
                "escaping path",
            ),
            (
                r#"{"kind":"append","seq":3,"rows":1,"files":[{"path":"/x","bytes":9,"crc32":1}]}"#,
                "absolute path",
            ),
            ("not json", "not JSON"),
        ] {
            write(body);
            assert!(matches!(read_part(&listed), Err(PersistenceError::Corrupt { .. })), "{why}");
        }
        // Every single-byte flip of a good PART is caught.
        let bytes = encode_part(good.as_bytes());
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            std::fs::write(dir.join(PART_FILE), &flipped).expect("write");
            match read_part(&listed) {
                Err(PersistenceError::Corrupt { path, .. }) => {
                    assert_eq!(path, dir.join(PART_FILE));
                }
                other => panic!("flip at {i}: {other:?}"),
            }
        }
    }
}
