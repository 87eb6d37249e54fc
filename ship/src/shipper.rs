//! [`Shipper`]: ships a store directory's log and snapshots into a generation of a
//! backup, one round at a time.
//!
//! A round reads what is new locally and uploads it, data first and the index last:
//!
//! 1. every log segment from the last LSN shipped, each as a piece cut at the LSN the
//!    caller says is durable (a sealed segment whole, the active one's durable prefix,
//!    which the next round replaces by a longer one);
//! 2. every snapshot the manifest lists that the generation lacks, each file checked
//!    against the manifest's size and CRC-32 as it is read, then the manifest;
//! 3. the next index object, created (never overwritten): if it exists, another writer
//!    ships into this generation and this one stops ([`ShipError::Fenced`]).
//!
//! Objects are named by LSN and never change once an index names them; a prefix piece an
//! index no longer names is deleted after that index is written. A round that fails
//! leaves the last index as it was: the next round uploads again what it needs.
//!
//! A shipper starting on a store continues the newest generation if its last piece is
//! the store's log, byte for byte (same segment, same frames); otherwise (a store
//! restored from a backup, a log truncated before it was shipped, another store) it
//! starts a new generation, never writing into an old one.

use std::sync::Arc;

use bytes::Bytes;
use orderlog_storage::Storage;
use orderlog_wal::format::parse_segment_file_name;
use orderlog_wal::piece::segment_piece;
use orderlog_wal::{Lsn, WalError};

use crate::error::{Result, ShipError};
use crate::index::{BackupIndex, FileObject, INDEX_FORMAT, SegmentObject, SnapshotObject};
use crate::layout::{GENERATIONS, Generation, LogPiece};
use crate::target::{Target, is_already_exists};

/// The log's directory in a store directory.
pub const WAL_DIR: &str = "wal";
/// The snapshots' directory in a store directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// Index objects kept per generation (older ones are deleted once a newer one exists).
const INDEXES_KEPT: u64 = 3;

/// What a round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Round {
    /// The generation shipped into.
    pub generation: String,
    /// Every frame up to this LSN is in the backup.
    pub shipped_lsn: Lsn,
    /// The index written (0: none this round, nothing was new).
    pub index_seq: u64,
    /// Objects uploaded.
    pub objects: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// The round started a new generation.
    pub new_generation: bool,
}

/// Ships one store directory into a backup target.
pub struct Shipper {
    target: Target,
    store: Arc<dyn Storage>,
    current: Option<(Generation, BackupIndex)>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("target", &self.target.url())
            .field("store", &self.store.path())
            .field("generation", &self.generation())
            .field("shipped_lsn", &self.shipped_lsn())
            .finish()
    }
}

impl Shipper {
    /// A shipper of the store directory `store` (its root: `wal/` and `snapshots/`
    /// below it) into `target`.
    pub fn new(target: Target, store: Arc<dyn Storage>) -> Shipper {
        Shipper { target, store, current: None }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The LSN up to which the log is in the backup (0: nothing yet).
    pub fn shipped_lsn(&self) -> Lsn {
        self.current.as_ref().map_or(0, |(_, index)| index.shipped_lsn)
    }

    /// The generation being shipped into, once the first round has chosen it.
    pub fn generation(&self) -> Option<Generation> {
        self.current.as_ref().map(|(g, _)| *g)
    }

    /// The last log piece shipped: its segment's base LSN and its bytes ((0, 0): none).
    pub fn last_piece(&self) -> (Lsn, u64) {
        self.current
            .as_ref()
            .and_then(|(_, index)| index.segments.last())
            .map_or((0, 0), |s| (s.base_lsn, s.bytes))
    }

    /// Forgets the generation: the next round chooses again (continues it if it still
    /// matches the log, or starts a new one). After a [`ShipError::Gap`].
    pub fn restart_generation(&mut self) {
        self.current = None;
    }

    /// Ships what is new, with the log up to `durable` (frames after it are not shipped:
    /// they may not survive a crash of the store).
    pub async fn round(&mut self, durable: Lsn) -> Result<Round> {
        let wal = self.store.sub(WAL_DIR);
        let mut bases: Vec<Lsn> = wal
            .list()
            .map_err(ShipError::io("list", wal.path()))?
            .iter()
            .filter_map(|name| parse_segment_file_name(name))
            .collect();
        bases.sort_unstable();
        let snapshots = self.store.sub(SNAPSHOT_DIR);
        let manifest = match snapshots.read(orderlog_snapshot::MANIFEST_NAME) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(ShipError::Io {
                    op: "read",
                    path: snapshots.path().join(orderlog_snapshot::MANIFEST_NAME),
                    source: e,
                });
            }
        };
        let mut new_generation = false;
        if self.current.is_none() {
            let (current, fresh) = self.resume_or_start(&bases).await?;
            self.current = Some(current);
            new_generation = fresh;
        }
        let Some((generation, old)) = self.current.clone() else {
            return Err(ShipError::NoBackup { url: self.target.url().to_owned() });
        };
        let mut index = old.clone();
        let mut round =
            Round { generation: generation.to_string(), new_generation, ..Round::default() };
        let mut superseded = Vec::new();
        self.ship_log(generation, &mut index, &bases, durable, &mut round, &mut superseded).await?;
        if let Some(manifest) = manifest {
            self.ship_snapshots(generation, &mut index, &manifest, &mut round).await?;
        }
        index.shipped_lsn = index.segments.last().map_or(0, |s| s.last_lsn);
        if index == old && !new_generation {
            round.shipped_lsn = index.shipped_lsn;
            return Ok(round);
        }
        index.seq += 1;
        index.written_ms = now_ms();
        let name = generation.index(index.seq);
        let bytes = Bytes::from(index.encode());
        round.objects += 1;
        round.bytes += bytes.len() as u64;
        if let Err(e) = self.target.create(&name, bytes).await {
            if is_already_exists(&e) {
                self.current = None;
                return Err(ShipError::Fenced { generation: generation.to_string(), object: name });
            }
            return Err(e);
        }
        round.index_seq = index.seq;
        round.shipped_lsn = index.shipped_lsn;
        let seq = index.seq;
        self.current = Some((generation, index));
        // The index no longer names these; a failed delete leaves garbage, not damage.
        for object in superseded {
            if let Err(e) = self.target.delete(&object).await {
                tracing::warn!(object, error = %e, "a superseded log piece was not deleted");
            }
        }
        if seq > INDEXES_KEPT {
            let old = generation.index(seq - INDEXES_KEPT);
            if let Err(e) = self.target.delete(&old).await {
                tracing::warn!(object = old, error = %e, "an old index was not deleted");
            }
        }
        Ok(round)
    }

    async fn ship_log(
        &self,
        generation: Generation,
        index: &mut BackupIndex,
        bases: &[Lsn],
        durable: Lsn,
        round: &mut Round,
        superseded: &mut Vec<String>,
    ) -> Result<()> {
        let wal = self.store.sub(WAL_DIR);
        // The next LSN to ship (None: a new generation, from the first local segment).
        let mut next = index.segments.last().map(|s| s.last_lsn + 1);
        for (i, &base) in bases.iter().enumerate() {
            let last_piece = index.segments.last();
            let open_piece = last_piece.is_some_and(|s| s.base_lsn == base && !s.sealed);
            if let (Some(n), Some(&later)) = (next, bases.get(i + 1))
                && later <= n
                && !open_piece
            {
                continue; // wholly shipped
            }
            if let Some(n) = next
                && base > n
            {
                return Err(ShipError::Gap { shipped: n - 1, local_first: base });
            }
            let name = orderlog_wal::format::segment_file_name(base);
            let path = wal.path().join(&name);
            let bytes = wal.read(&name).map_err(ShipError::io("read", &path))?;
            let piece = segment_piece(&path, &bytes, durable)?;
            drop(bytes);
            if piece.last_lsn < piece.base_lsn {
                if piece.sealed && bases.get(i + 1).is_some() {
                    continue; // a sealed segment without frames: nothing to ship
                }
                break; // nothing durable in it yet
            }
            if let Some(n) = next
                && piece.last_lsn + 1 < n
            {
                // The local log holds less than the backup did: it is another log.
                return Err(ShipError::Gap { shipped: n - 1, local_first: piece.last_lsn + 1 });
            }
            let same = last_piece.filter(|s| s.base_lsn == base);
            if same.is_some_and(|s| s.last_lsn == piece.last_lsn && s.sealed == piece.sealed) {
                next = Some(piece.last_lsn + 1);
                if !piece.sealed {
                    break;
                }
                continue;
            }
            let object = generation.log_piece(LogPiece {
                base: piece.base_lsn,
                last: piece.last_lsn,
                sealed: piece.sealed,
            });
            let entry = SegmentObject {
                base_lsn: piece.base_lsn,
                last_lsn: piece.last_lsn,
                sealed: piece.sealed,
                object: object.clone(),
                bytes: piece.bytes.len() as u64,
                crc32: crc32fast::hash(&piece.bytes),
                segment_bytes: piece.segment_bytes,
            };
            round.objects += 1;
            round.bytes += entry.bytes;
            self.target.put(&object, Bytes::from(piece.bytes)).await?;
            if same.is_some()
                && let Some(old) = index.segments.pop()
            {
                superseded.push(old.object);
            }
            index.segments.push(entry);
            next = Some(piece.last_lsn + 1);
            if !piece.sealed {
                break; // the active segment: nothing after it
            }
        }
        Ok(())
    }

    async fn ship_snapshots(
        &self,
        generation: Generation,
        index: &mut BackupIndex,
        manifest: &[u8],
        round: &mut Round,
    ) -> Result<()> {
        let dir = self.store.sub(SNAPSHOT_DIR);
        let manifest_path = dir.path().join(orderlog_snapshot::MANIFEST_NAME);
        let listed = orderlog_snapshot::decode_manifest(&manifest_path, manifest)?;
        for info in listed.iter().rev() {
            if index.snapshots.iter().any(|s| s.lsn == info.lsn) {
                continue;
            }
            let mut files = Vec::with_capacity(info.files.len());
            for file in &info.files {
                let path = dir.path().join(&file.path);
                let bytes = dir.read(&file.path).map_err(ShipError::io("read", &path))?;
                let crc32 = crc32fast::hash(&bytes);
                if bytes.len() as u64 != file.bytes || crc32 != file.crc32 {
                    return Err(ShipError::Corrupt {
                        object: path.display().to_string(),
                        offset: 0,
                        reason: format!(
                            "{} bytes with CRC-32 {crc32:08x}; the manifest says {} bytes, {:08x}",
                            bytes.len(),
                            file.bytes,
                            file.crc32
                        ),
                    });
                }
                let object = generation.snapshot_file(&file.path);
                round.objects += 1;
                round.bytes += file.bytes;
                self.target.put(&object, Bytes::from(bytes)).await?;
                files.push(FileObject {
                    name: file.path.clone(),
                    object,
                    bytes: file.bytes,
                    crc32,
                });
            }
            let object = generation.manifest(info.lsn);
            round.objects += 1;
            round.bytes += manifest.len() as u64;
            self.target.put(&object, Bytes::copy_from_slice(manifest)).await?;
            let manifest = FileObject {
                name: orderlog_snapshot::MANIFEST_NAME.to_owned(),
                object,
                bytes: manifest.len() as u64,
                crc32: crc32fast::hash(manifest),
            };
            index.snapshots.push(SnapshotObject { lsn: info.lsn, files, manifest });
            index.snapshots.sort_by_key(|s| s.lsn);
        }
        Ok(())
    }

    /// The newest generation if this store's log continues it, else a new one.
    async fn resume_or_start(&self, bases: &[Lsn]) -> Result<((Generation, BackupIndex), bool)> {
        if let Some((generation, index)) = newest_index(&self.target).await? {
            match self.continues(&index, bases) {
                Ok(true) => {
                    tracing::info!(
                        generation = %generation,
                        shipped_lsn = index.shipped_lsn,
                        "shipping continues the backup's newest generation"
                    );
                    return Ok(((generation, index), false));
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "the local log could not be matched"),
            }
        }
        let generation = Generation::new(now_ms());
        tracing::info!(generation = %generation, "shipping starts a new generation");
        let index = BackupIndex {
            format: INDEX_FORMAT,
            generation: generation.to_string(),
            seq: 0,
            written_ms: now_ms(),
            shipped_lsn: 0,
            segments: Vec::new(),
            snapshots: Vec::new(),
        };
        Ok(((generation, index), true))
    }

    /// Whether the index's last log piece is this store's log, byte for byte.
    fn continues(&self, index: &BackupIndex, bases: &[Lsn]) -> Result<bool> {
        let Some(last) = index.segments.last() else { return Ok(false) };
        if !bases.contains(&last.base_lsn) {
            return Ok(false);
        }
        let wal = self.store.sub(WAL_DIR);
        let name = orderlog_wal::format::segment_file_name(last.base_lsn);
        let path = wal.path().join(&name);
        let bytes = wal.read(&name).map_err(ShipError::io("read", &path))?;
        let piece = match segment_piece(&path, &bytes, last.last_lsn) {
            Ok(piece) => piece,
            Err(WalError::Corruption { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        Ok(piece.last_lsn == last.last_lsn
            && piece.sealed == last.sealed
            && piece.bytes.len() as u64 == last.bytes
            && crc32fast::hash(&piece.bytes) == last.crc32)
    }
}

/// The generations in the target, oldest first.
pub async fn generations(target: &Target) -> Result<Vec<Generation>> {
    let mut found: Vec<Generation> = target
        .list_dirs(GENERATIONS)
        .await?
        .iter()
        .filter_map(|name| Generation::parse(name))
        .collect();
    found.sort();
    Ok(found)
}

/// The index objects of `generation`, by sequence number, oldest first.
pub async fn index_seqs(target: &Target, generation: Generation) -> Result<Vec<u64>> {
    let dir = format!("{}/index", generation.dir());
    let mut seqs: Vec<u64> = target
        .list_objects(&dir)
        .await?
        .iter()
        .filter_map(|(name, _)| {
            let seq = name.rsplit('/').next()?;
            (seq.len() == 20 && seq.bytes().all(|b| b.is_ascii_digit()))
                .then(|| seq.parse().ok())?
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Reads and checks index `seq` of `generation`.
pub async fn read_index(target: &Target, generation: Generation, seq: u64) -> Result<BackupIndex> {
    let name = generation.index(seq);
    let bytes = target.get(&name).await?;
    Ok(BackupIndex::decode(&name, &bytes)?)
}

/// The newest index of the newest generation holding one, if any. A damaged newest
/// index is an error (it is never skipped silently).
pub async fn newest_index(target: &Target) -> Result<Option<(Generation, BackupIndex)>> {
    for generation in generations(target).await?.into_iter().rev() {
        if let Some(&seq) = index_seqs(target, generation).await?.last() {
            return Ok(Some((generation, read_index(target, generation, seq).await?)));
        }
    }
    Ok(None)
}
