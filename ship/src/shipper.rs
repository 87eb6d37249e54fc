//! [`Shipper`]: ships a store directory's log and snapshots into a generation of a
//! backup, one round at a time.
//!
//! A round reads what is new locally and uploads it, data first and each index last:
//!
//! 1. every log segment from the last LSN shipped, each as a piece cut at the LSN the
//!    caller says is durable (a sealed segment whole, the active one's durable prefix,
//!    which a later round replaces by a longer one), then the next index;
//! 2. every snapshot the manifest lists that the generation lacks, each file checked
//!    against the manifest's size and CRC-32 as it is read, then the manifest, then the
//!    next index.
//!
//! Index objects are created, never overwritten. Before creating one, the shipper
//! checks that no generation was started after its own; if one was, or its index is
//! already there (and is not its own, from a create whose answer was lost), another
//! writer has taken over and this one stops ([`ShipError::Fenced`]).
//!
//! Objects are named by LSN and never change once an index names them; a prefix piece
//! no kept index names any more is deleted with the last index that named it. A round
//! that fails leaves the last index as it was: the next round uploads again what it
//! needs.
//!
//! Every shipper starts a new generation, started after every generation in the target:
//! one writer per generation, and the newest generation is the current writer's.

use std::sync::Arc;

use bytes::Bytes;
use orderlog_storage::Storage;
use orderlog_wal::Lsn;
use orderlog_wal::format::parse_segment_file_name;
use orderlog_wal::piece::segment_piece;

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
    /// The generation was started and has no index yet.
    fresh: bool,
    /// Record the generation in the store directory ([`Shipper::recording_generation`]).
    record: bool,
    /// Objects no index will name once index `.0` is deleted: deleted then.
    superseded: Vec<(u64, String)>,
    /// An index whose create failed without saying whether it was done (a lost answer):
    /// its name, bytes, and what it was, with the objects it superseded.
    uncertain: Option<(String, Bytes, BackupIndex, Vec<String>)>,
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
    /// below it) into `target`. It writes nothing into the directory (a one-shot backup
    /// of a live store); a store's own shipper is [`Shipper::recording_generation`].
    pub fn new(target: Target, store: Arc<dyn Storage>) -> Shipper {
        Shipper {
            target,
            store,
            current: None,
            fresh: false,
            record: false,
            superseded: Vec::new(),
            uncertain: None,
        }
    }

    /// The same, recording each generation it starts in the store directory
    /// (`replication/GENERATION`): a store whose generation a promoted replica fenced
    /// then refuses to ship again after a restart ([`ShipError::Fenced`]), instead of
    /// starting a new generation that restores and replicas would follow.
    pub fn recording_generation(mut self) -> Shipper {
        self.record = true;
        self
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

    /// Forgets the generation: the next round starts a new one. After a
    /// [`ShipError::Gap`].
    pub fn restart_generation(&mut self) {
        self.current = None;
        self.uncertain = None;
        self.superseded.clear();
    }

    /// Settles an index create whose answer was lost: if the index is there with our
    /// bytes, it was done, and it is the current index.
    async fn settle_uncertain(&mut self, generation: Generation) -> Result<()> {
        let Some((name, bytes, index, superseded)) = self.uncertain.take() else { return Ok(()) };
        match self.target.get(&name).await {
            Ok(there) if there == bytes => {
                tracing::info!(object = name, "an index whose create went unanswered was written");
                let seq = index.seq;
                self.current = Some((generation, index));
                self.fresh = false;
                self.superseded.extend(superseded.into_iter().map(|o| (seq, o)));
                Ok(())
            }
            // Not there: never done. Another writer's: the create will say so.
            Ok(_) => Ok(()),
            Err(e) if crate::target::is_not_found(&e) => Ok(()),
            Err(e) => {
                self.uncertain = Some((name, bytes, index, superseded));
                Err(e)
            }
        }
    }

    /// Ships what is new, with the log up to `durable` (frames after it are not shipped:
    /// they may not survive a crash of the store). The log's progress is indexed before
    /// the snapshots are shipped, so a snapshot that cannot be shipped does not hold the
    /// log back (its error is returned after the log's index is written).
    pub async fn round(&mut self, durable: Lsn) -> Result<Round> {
        let wal = self.store.sub(WAL_DIR);
        let mut bases: Vec<Lsn> = wal
            .list()
            .map_err(ShipError::io("list", wal.path()))?
            .iter()
            .filter_map(|name| parse_segment_file_name(name))
            .collect();
        bases.sort_unstable();
        if self.current.is_none() {
            self.current = Some(self.start_generation().await?);
            self.fresh = true;
        }
        if let Some(generation) = self.generation() {
            self.settle_uncertain(generation).await?;
        }
        let Some((generation, old)) = self.current.clone() else {
            return Err(ShipError::NoBackup { url: self.target.url().to_owned() });
        };
        let mut round = Round {
            generation: generation.to_string(),
            new_generation: self.fresh,
            ..Round::default()
        };
        let mut index = old.clone();
        let mut superseded = Vec::new();
        self.ship_log(generation, &mut index, &bases, durable, &mut round, &mut superseded).await?;
        index.shipped_lsn = index.segments.last().map_or(0, |s| s.last_lsn);
        // A new generation's first index waits for its snapshots: restores follow the
        // newest generation, which must restore from its first index on.
        let fresh = self.fresh;
        let mut pending = None;
        if fresh {
            pending = Some((index, superseded));
        } else if index != old {
            self.write_index(generation, index, superseded, &mut round).await?;
        }
        // The manifest is read after the segments were listed: a snapshot that let the
        // compactor remove a segment not listed is in it.
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
        if let Some((mut index, superseded)) = pending {
            if let Some(manifest) = &manifest {
                self.ship_snapshots(generation, &mut index, manifest, &mut round).await?;
            }
            // Nothing to restore yet (an empty store): no index until there is.
            let holds = !index.segments.is_empty() || !index.snapshots.is_empty();
            if holds {
                crate::restore::plan(&index, index.shipped_lsn, crate::restore::Base::Newest)?;
                self.write_index(generation, index, superseded, &mut round).await?;
            }
        } else if let Some(manifest) = manifest
            && let Some((_, current)) = self.current.clone()
        {
            let mut index = current.clone();
            self.ship_snapshots(generation, &mut index, &manifest, &mut round).await?;
            if index != current {
                self.write_index(generation, index, Vec::new(), &mut round).await?;
            }
        }
        round.shipped_lsn = self.shipped_lsn();
        Ok(round)
    }

    /// Creates the generation's next index, `index` (its `seq` one past the current's);
    /// then deletes what no kept index names any more.
    async fn write_index(
        &mut self,
        generation: Generation,
        mut index: BackupIndex,
        superseded: Vec<String>,
        round: &mut Round,
    ) -> Result<()> {
        // A generation started after this one, holding an index, is another writer's:
        // this one is fenced. (One without an index is debris no reader follows.)
        for newer in generations(&self.target).await?.into_iter().filter(|g| *g > generation) {
            if !index_seqs(&self.target, newer).await?.is_empty() {
                self.current = None;
                return Err(ShipError::Fenced {
                    generation: generation.to_string(),
                    object: newer.dir(),
                });
            }
        }
        if self.fresh && self.record {
            // Just before the first index: the generation this store shipped before
            // must not have been fenced meanwhile; then this one is recorded.
            self.check_recorded_fence().await?;
            crate::marker::write(self.store.as_ref(), self.target.url(), generation)?;
        }
        index.seq += 1;
        index.written_ms = now_ms();
        let name = generation.index(index.seq);
        let bytes = Bytes::from(index.encode());
        round.objects += 1;
        round.bytes += bytes.len() as u64;
        if let Err(e) = self.target.create(&name, bytes.clone()).await {
            if !is_already_exists(&e) {
                // Done or not: the next round looks before it writes another.
                self.uncertain = Some((name, bytes, index, superseded));
                return Err(e);
            }
            // A create retried by the client after a lost answer finds its own index:
            // ours if it is these bytes; another writer's if it is not.
            match self.target.get(&name).await {
                Ok(there) if there == bytes => {}
                Ok(_) => {
                    self.current = None;
                    return Err(ShipError::Fenced {
                        generation: generation.to_string(),
                        object: name,
                    });
                }
                // Unknown yet: settled at the next round.
                Err(read) => {
                    self.uncertain = Some((name, bytes, index, superseded));
                    return Err(read);
                }
            }
        }
        round.index_seq = index.seq;
        let seq = index.seq;
        self.current = Some((generation, index));
        self.fresh = false;
        // The newest `INDEXES_KEPT` indexes are kept; what only older ones name goes.
        self.superseded.extend(superseded.into_iter().map(|o| (seq, o)));
        if seq > INDEXES_KEPT {
            let gone = seq - INDEXES_KEPT;
            let old = generation.index(gone);
            if let Err(e) = self.target.delete(&old).await {
                tracing::warn!(object = old, error = %e, "an old index was not deleted");
            }
            // Named last by index `stop - 1`: unnamed once that index is gone.
            let (due, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.superseded)
                .into_iter()
                .partition(|(stop, _)| stop - 1 <= gone);
            self.superseded = kept;
            for (_, object) in due {
                if let Err(e) = self.target.delete(&object).await {
                    tracing::warn!(object, error = %e, "a superseded log piece was not deleted");
                }
            }
        }
        Ok(())
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

    /// A new generation, started after every generation in the target (so it is the
    /// newest even if this machine's clock is behind), and recorded in the store
    /// directory when recording. Refused ([`ShipError::Fenced`]) if the generation this
    /// store recorded last was fenced by a promoted replica.
    async fn start_generation(&self) -> Result<(Generation, BackupIndex)> {
        if self.record {
            self.check_recorded_fence().await?;
        }
        let newest = generations(&self.target).await?.last().map_or(0, |g| g.started_ms + 1);
        let generation = Generation::new(now_ms().max(newest));
        tracing::info!(generation = %generation, target = self.target.url(), "shipping starts a new generation");
        let index = BackupIndex {
            format: INDEX_FORMAT,
            generation: generation.to_string(),
            seq: 0,
            written_ms: now_ms(),
            shipped_lsn: 0,
            segments: Vec::new(),
            snapshots: Vec::new(),
            fenced_by: None,
        };
        Ok((generation, index))
    }
}

impl Shipper {
    /// [`ShipError::Fenced`] if the generation this store recorded last has been fenced.
    async fn check_recorded_fence(&self) -> Result<()> {
        if let Some(previous) = crate::marker::read(self.store.as_ref(), self.target.url())?
            && let Some(&seq) = index_seqs(&self.target, previous).await?.last()
        {
            let index = read_index(&self.target, previous, seq).await?;
            if let Some(by) = index.fenced_by {
                return Err(ShipError::Fenced {
                    generation: previous.to_string(),
                    object: format!("{} (fenced by {by})", previous.index(seq)),
                });
            }
        }
        Ok(())
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
