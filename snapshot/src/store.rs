//! [`SnapshotStore`]: a directory of snapshots and the manifest that says which is
//! current. Publishing, verifying with fallback, loading, and pruning.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use orderlog_storage::{FsStorage, LockGuard, Storage};

use crate::convert::{ToArrow, check_schema};
use crate::error::{Result, SnapshotError};
use crate::files::{check_size, check_verified, crc_mismatch, io_err, read_verified, sync_dir};
use crate::info::{
    Covers, FileKind, Lsn, PublishStep, Published, SkippedSnapshot, SnapshotFile, SnapshotInfo,
    VerifiedSnapshot,
};
use crate::ipc::{self, IpcContents, IpcMeta, IpcSink, Ranges};
use crate::manifest::{
    self, MANIFEST_BYTES_MAX, MANIFEST_FILE, MANIFEST_TMP_FILE, parse_snapshot_dir_name,
    snapshot_dir_name,
};
use crate::options::SnapshotOptions;
use crate::parquet_file::{self, ParquetSink};
use crate::staged::StagedDir;

/// The writer lock's file name in the store directory (taken by `Storage::try_lock`).
const LOCK_FILE: &str = "LOCK";
/// Suffix of a snapshot directory being written.
const TMP_SUFFIX: &str = ".tmp";

/// A directory of snapshots and its manifest.
///
/// ```text
/// <dir>/LOCK                                   writer lock (flock), empty
/// <dir>/MANIFEST                               which snapshots exist, newest first
/// <dir>/snap-<lsn:020>/data.arrow              Arrow IPC file (restart; read whole)
/// <dir>/snap-<lsn:020>/data.parquet            Parquet (analytics), or, partitioned:
/// <dir>/snap-<lsn:020>/parquet/<col>=<v>/part-0.parquet
/// ```
///
/// One writer per directory: [`SnapshotStore::open`] holds `LOCK` for the store's life;
/// [`SnapshotStore::open_read_only`] takes no lock and cannot publish (for offline
/// verification). Files are immutable once published; a snapshot is deleted only after
/// a manifest without it is durable. All I/O goes through a [`Storage`] (the real file
/// system, or the simulated disk in crash tests). The byte layout is in `docs/format.md`.
pub struct SnapshotStore {
    storage: Arc<dyn Storage>,
    /// The writer lock, held while the store lives; `None` when read-only.
    lock: Option<Box<dyn LockGuard>>,
    /// Serialises publishes within the process.
    publishing: Mutex<()>,
    /// LSN of the newest snapshot named by a manifest this store has made durable itself:
    /// synced at open, or published by it (0: none). A manifest read from the directory
    /// may be newer and not durable yet (a rename whose directory sync never happened or
    /// failed); nothing may be deleted on its word.
    durable_lsn: Mutex<Lsn>,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("dir", &self.path())
            .field("writer", &self.lock.is_some())
            .finish_non_exhaustive()
    }
}

impl SnapshotStore {
    /// Opens (creating if needed) the snapshot directory `dir` as its one writer.
    /// Fails with [`SnapshotError::Locked`] if another store holds it.
    pub fn open(dir: impl AsRef<Path>) -> Result<SnapshotStore> {
        SnapshotStore::open_on(Arc::new(FsStorage::new(dir.as_ref())))
    }

    /// [`SnapshotStore::open`] on any storage (rooted at the snapshot directory).
    pub fn open_on(storage: Arc<dyn Storage>) -> Result<SnapshotStore> {
        let dir = storage.path().to_path_buf();
        // The directory's own entry must be durable before anything in it is.
        storage.create_dir().map_err(io_err("create snapshot directory", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = storage
            .try_lock()
            .map_err(io_err("lock", &lock_path))?
            .ok_or(SnapshotError::Locked { path: lock_path })?;
        let store = SnapshotStore {
            storage,
            lock: Some(lock),
            publishing: Mutex::new(()),
            durable_lsn: Mutex::new(0),
        };
        store.sync_manifest()?;
        Ok(store)
    }

    /// Makes the manifest found at open durable, whatever the process that wrote it
    /// managed to sync before it stopped: the file, then the directory holding its name
    /// (and the names of the snapshot directories it lists). Only then does its newest
    /// LSN count as durable. A damaged manifest counts as nothing.
    fn sync_manifest(&self) -> Result<()> {
        let storage = self.storage.as_ref();
        match storage.sync_file(MANIFEST_FILE) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("fsync manifest", &self.path().join(MANIFEST_FILE))(e)),
        }
        sync_dir(storage, "")?;
        if let Ok(listed) = self.list() {
            self.set_durable(listed.first().map_or(0, |s| s.lsn));
        }
        Ok(())
    }

    fn set_durable(&self, lsn: Lsn) {
        *self.durable_lsn.lock().unwrap_or_else(PoisonError::into_inner) = lsn;
    }

    /// LSN of the newest snapshot whose manifest this store made durable itself (synced
    /// at open, or published by it); 0 if none, and always 0 when read-only. Whatever a
    /// snapshot at or below it covers may be deleted elsewhere (the log below it); a
    /// newer manifest read from the directory may still be undone by a power cut.
    pub fn durable_lsn(&self) -> Lsn {
        *self.durable_lsn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens `dir` for reading only: no lock, no changes; [`SnapshotStore::publish`]
    /// fails with [`SnapshotError::ReadOnly`]. A missing directory reads as empty.
    pub fn open_read_only(dir: impl AsRef<Path>) -> SnapshotStore {
        SnapshotStore::read_only_on(Arc::new(FsStorage::new(dir.as_ref())))
    }

    /// [`SnapshotStore::open_read_only`] on any storage.
    pub fn read_only_on(storage: Arc<dyn Storage>) -> SnapshotStore {
        SnapshotStore {
            storage,
            lock: None,
            publishing: Mutex::new(()),
            durable_lsn: Mutex::new(0),
        }
    }

    /// The snapshot directory.
    pub fn path(&self) -> &Path {
        self.storage.path()
    }

    /// The path of one snapshot file (for messages; see
    /// [`SnapshotStore::local_parquet_files`] for readers that open files by path).
    pub fn file_path(&self, file: &SnapshotFile) -> PathBuf {
        self.path().join(&file.path)
    }

    /// Every Parquet file of a snapshot, partitioned or not, by path. Empty for an empty
    /// partitioned snapshot.
    pub fn parquet_files(&self, info: &SnapshotInfo) -> Vec<PathBuf> {
        info.parquet_files().map(|f| self.file_path(f)).collect()
    }

    /// Every Parquet file of a snapshot on the local file system, for readers that open
    /// files by path (DuckDB); `None` when the snapshots are not in a local directory
    /// (the simulated disk): read them with [`SnapshotStore::read_parquet_batches`].
    pub fn local_parquet_files(&self, info: &SnapshotInfo) -> Option<Vec<PathBuf>> {
        info.parquet_files().map(|f| self.storage.local_path(&f.path)).collect()
    }

    /// The first Parquet file of `info` that is missing or whose size is not the one its
    /// manifest entry records (the content is not read); `None` if all are present.
    pub fn first_missing_parquet(&self, info: &SnapshotInfo) -> Option<PathBuf> {
        info.parquet_files()
            .find(|f| !self.storage.file_len(&f.path).is_ok_and(|len| len == f.bytes))
            .map(|f| self.file_path(f))
    }

    /// The snapshots the manifest lists, newest first, after checking the manifest's
    /// header and checksum (but not the snapshot files). Empty if there is no manifest.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>> {
        let path = self.path().join(MANIFEST_FILE);
        let len = match self.storage.file_len(MANIFEST_FILE) {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("open manifest", &path)(e)),
        };
        if len > MANIFEST_BYTES_MAX {
            return Err(SnapshotError::ManifestCorrupt {
                path,
                offset: MANIFEST_BYTES_MAX,
                detail: format!("longer than the {MANIFEST_BYTES_MAX}-byte limit"),
            });
        }
        let mut bytes = vec![0u8; len as usize];
        self.storage
            .read_exact_at(MANIFEST_FILE, 0, &mut bytes)
            .map_err(io_err("read manifest", &path))?;
        manifest::decode(&path, &bytes)
    }

    /// Checks every file of `info` against the manifest: exact size and CRC-32 of the
    /// whole content. A missing file is an [`SnapshotError::Io`] error naming it.
    pub fn verify(&self, info: &SnapshotInfo) -> Result<()> {
        for file in &info.files {
            check_verified(self.storage.as_ref(), &file.path, file)?;
        }
        Ok(())
    }

    /// The newest snapshot whose files all verify, with the newer ones skipped and why.
    ///
    /// `Ok(None)`: no manifest (nothing was ever published). A damaged manifest is an
    /// error ([`SnapshotError::ManifestCorrupt`]); so is a manifest whose snapshots all
    /// fail ([`SnapshotError::NoValidSnapshot`], listing each reason). I/O errors other
    /// than a missing file are returned, not treated as damage.
    ///
    /// Cost: reads every byte of the chosen snapshot's files once (through the page
    /// cache) to check their CRCs.
    pub fn current(&self) -> Result<Option<VerifiedSnapshot>> {
        self.first_valid(|store, info| store.verify(info))
            .map(|found| found.map(|(info, skipped, ())| VerifiedSnapshot { info, skipped }))
    }

    /// Loads the newest snapshot that verifies, falling back like
    /// [`SnapshotStore::current`]; see [`SnapshotStore::load_snapshot`].
    ///
    /// A snapshot whose schema does not match `T`, or holds a value `T` rejects, is an
    /// error naming the column, not a reason to fall back: it is not damage.
    pub fn load<T: ToArrow>(&self) -> Result<Option<(T, VerifiedSnapshot)>> {
        let found = self.first_valid(|store, info| store.load_snapshot::<T>(info))?;
        Ok(found.map(|(info, skipped, state)| (state, VerifiedSnapshot { info, skipped })))
    }

    /// Loads the snapshot `info` into a `T`. The Parquet files' sizes and CRCs are checked
    /// first (so the snapshot is known whole); then the Arrow IPC file is read once, a
    /// record batch at a time with `pread`, each batch handed to `T`'s
    /// `extend_from_record_batch` while the file's CRC-32 is computed on the way: memory
    /// beyond the state stays bounded by one batch. The state is returned only if the CRC
    /// matches the manifest; on a mismatch it is dropped and the error is damage (even if
    /// `T` refused a value first: a garbled value is damage, not a schema error).
    pub fn load_snapshot<T: ToArrow>(&self, info: &SnapshotInfo) -> Result<T> {
        for file in info.parquet_files() {
            check_verified(self.storage.as_ref(), &file.path, file)?;
        }
        let entry = self.ipc_entry(info)?;
        let path = check_size(self.storage.as_ref(), &entry.path, entry)?;
        let mut source = Ranges::new(self.storage.as_ref(), &entry.path, &path, entry.bytes)?;
        let mut state = T::from_record_batch(&RecordBatch::new_empty(T::arrow_schema()))?;
        // Each row takes bytes in the file: its size bounds what to make room for.
        state.reserve_rows(usize::try_from(info.rows.min(entry.bytes)).unwrap_or(usize::MAX));
        let mut checked = false;
        let decoded = ipc::decode_each(&path, &mut source, &mut |batch| {
            if !checked {
                check_schema::<T>(&batch)?;
                checked = true;
            }
            state.extend_from_record_batch(&batch)
        });
        let crc = source.finish()?;
        if crc != entry.crc32 {
            return Err(crc_mismatch(path, entry, crc));
        }
        let summary = decoded?;
        check_schema::<T>(&RecordBatch::new_empty(summary.schema.clone()))?;
        check_ipc_meta(&path, info, summary.rows, &summary.metadata, summary.footer_offset)?;
        Ok(state)
    }

    /// The record batches of a snapshot's Arrow IPC file, after checking its size and
    /// CRC. The arrays point into one buffer holding the file (no copy); the buffer
    /// lives as long as any of them.
    pub fn read_ipc_batches(&self, info: &SnapshotInfo) -> Result<Vec<RecordBatch>> {
        Ok(self.decode_ipc(info)?.batches)
    }

    /// The record batches of every Parquet file of a snapshot, file after file (for a
    /// partitioned snapshot the rows come grouped by partition), after checking each
    /// file's size and CRC.
    pub fn read_parquet_batches(&self, info: &SnapshotInfo) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for file in info.parquet_files() {
            let map = read_verified(self.storage.as_ref(), &file.path, file)?;
            out.extend(parquet_file::read(&self.file_path(file), map)?);
        }
        Ok(out)
    }

    /// Publishes `state` as the snapshot at `lsn`, which must be above the newest
    /// published LSN. See [`SnapshotStore::publish_with_hook`].
    pub fn publish<T: ToArrow>(
        &self,
        state: &T,
        lsn: Lsn,
        schema_version: u32,
        opts: &SnapshotOptions,
    ) -> Result<Published> {
        self.publish_with_hook(state, lsn, schema_version, opts, &mut |_| Ok(()))
    }

    /// Publishes `state` as the snapshot at `lsn`, calling `hook` after each
    /// [`PublishStep`]; a hook error stops the publish at once and is returned (tests
    /// use it to simulate a crash between steps).
    ///
    /// The protocol: write the files into `snap-<lsn>.tmp/` in batches of
    /// `opts.batch_rows`; fsync every file and directory; rename to `snap-<lsn>/` and
    /// fsync the store directory; write the new manifest (this snapshot and the newest
    /// `keep_last - 1` listed ones) to `MANIFEST.tmp`, fsync it, rename it over
    /// `MANIFEST`, fsync the directory; only then delete the snapshots no longer listed.
    /// A crash at any point leaves the old or the new manifest, each naming complete,
    /// synced snapshots. An error after [`PublishStep::DirSynced`] cannot happen:
    /// deletion failures are reported in [`Published::prune_errors`].
    ///
    /// Refuses to run if the existing manifest is damaged (it would lose the record of
    /// the older snapshots).
    pub fn publish_with_hook<T: ToArrow>(
        &self,
        state: &T,
        lsn: Lsn,
        schema_version: u32,
        opts: &SnapshotOptions,
        hook: &mut dyn FnMut(PublishStep) -> Result<()>,
    ) -> Result<Published> {
        let covers = Covers { lsn, schema_version, newest_event_ms: None };
        self.publish_covering(state, covers, opts, hook)
    }

    /// [`SnapshotStore::publish_with_hook`] with everything the snapshot records about
    /// what it covers ([`Covers`]: its LSN, schema version and newest event time).
    pub fn publish_covering<T: ToArrow>(
        &self,
        state: &T,
        covers: Covers,
        opts: &SnapshotOptions,
        hook: &mut dyn FnMut(PublishStep) -> Result<()>,
    ) -> Result<Published> {
        let Covers { lsn, schema_version, newest_event_ms } = covers;
        if self.lock.is_none() {
            return Err(SnapshotError::ReadOnly { path: self.path().to_path_buf() });
        }
        opts.validate(&T::arrow_schema())?;
        let _publishing = self.publishing.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.list()?;
        if let Some(newest) = old.first()
            && lsn <= newest.lsn
        {
            return Err(SnapshotError::StaleLsn { lsn, newest: newest.lsn });
        }
        let meta = IpcMeta { lsn, rows: state.num_rows() as u64, schema_version };
        let mut info = self.write_snapshot_dir(state, meta, opts, hook)?;
        info.newest_event_ms = newest_event_ms;

        let mut listed = Vec::with_capacity(opts.keep_last);
        listed.push(info.clone());
        listed.extend(old.into_iter().take(opts.keep_last - 1));
        self.publish_manifest(&listed, hook)?;
        self.set_durable(lsn);

        let (pruned, prune_errors) = self.prune(&listed);
        hook(PublishStep::Pruned)?;
        Ok(Published { info, pruned, prune_errors })
    }

    /// Steps up to [`PublishStep::DirRenamed`]: the snapshot's directory, complete and
    /// durable under its final name.
    fn write_snapshot_dir<T: ToArrow>(
        &self,
        state: &T,
        meta: IpcMeta,
        opts: &SnapshotOptions,
        hook: &mut dyn FnMut(PublishStep) -> Result<()>,
    ) -> Result<SnapshotInfo> {
        let name = snapshot_dir_name(meta.lsn);
        // A directory of the final name is not in the manifest (its LSN is above the
        // newest listed): a leftover of a publish that crashed before its manifest; the
        // commit replaces it.
        let mut staged =
            StagedDir::create(Arc::clone(&self.storage), &format!("{name}{TMP_SUFFIX}"))?;
        write_files(&mut staged, state, opts, meta)?;
        hook(PublishStep::FilesWritten)?;
        let files = staged
            .commit(&name, hook)?
            .into_iter()
            .map(|f| SnapshotFile {
                kind: if f.rel_path == ipc::IPC_FILE {
                    FileKind::ArrowIpc
                } else {
                    FileKind::Parquet
                },
                path: format!("{name}/{}", f.rel_path),
                bytes: f.bytes,
                crc32: f.crc32,
            })
            .collect();
        Ok(SnapshotInfo {
            lsn: meta.lsn,
            rows: meta.rows,
            schema_version: meta.schema_version,
            created_unix_ms: now_unix_ms(),
            newest_event_ms: None,
            dir: name,
            compression: opts.compression,
            row_group_rows: opts.row_group_rows as u64,
            partition_by: opts.partition_by.clone(),
            files,
        })
    }

    /// Steps [`PublishStep::ManifestTempWritten`] to [`PublishStep::DirSynced`].
    fn publish_manifest(
        &self,
        listed: &[SnapshotInfo],
        hook: &mut dyn FnMut(PublishStep) -> Result<()>,
    ) -> Result<()> {
        let storage = self.storage.as_ref();
        let bytes = manifest::encode(listed)?;
        let tmp = storage.path().join(MANIFEST_TMP_FILE);
        // A leftover of a publish that stopped before its rename.
        match storage.remove(MANIFEST_TMP_FILE) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove leftover manifest", &tmp)(e));
            }
            _ => {}
        }
        let mut file =
            storage.create_file(MANIFEST_TMP_FILE).map_err(io_err("create manifest", &tmp))?;
        file.write_all(&bytes).map_err(io_err("write manifest", &tmp))?;
        hook(PublishStep::ManifestTempWritten)?;
        file.sync().map_err(io_err("fsync manifest", &tmp))?;
        drop(file);
        hook(PublishStep::ManifestSynced)?;
        storage
            .rename(MANIFEST_TMP_FILE, MANIFEST_FILE)
            .map_err(io_err("rename manifest", &tmp))?;
        hook(PublishStep::ManifestRenamed)?;
        sync_dir(storage, "")?;
        hook(PublishStep::DirSynced)
    }

    /// Deletes every snapshot directory not in `listed` (pruned snapshots, leftovers of
    /// interrupted publishes). Runs only once the manifest naming `listed` is durable.
    fn prune(&self, listed: &[SnapshotInfo]) -> (Vec<String>, Vec<SnapshotError>) {
        let mut pruned = Vec::new();
        let mut errors = Vec::new();
        let storage = self.storage.as_ref();
        let entries = match storage.list() {
            Ok(entries) => entries,
            Err(e) => return (pruned, vec![io_err("list snapshot directory", self.path())(e)]),
        };
        for name in entries {
            let base = name.strip_suffix(TMP_SUFFIX).unwrap_or(&name);
            let Some(lsn) = parse_snapshot_dir_name(base) else { continue };
            if base == name && listed.iter().any(|s| s.lsn == lsn) {
                continue;
            }
            match storage.remove_dir_all(&name) {
                Ok(()) => pruned.push(name),
                Err(e) => {
                    errors.push(io_err("delete old snapshot", &storage.path().join(&name))(e))
                }
            }
        }
        pruned.sort();
        (pruned, errors)
    }

    /// Tries the listed snapshots newest first; returns the first that `check` accepts
    /// (with its result) and those skipped before it.
    fn first_valid<R>(
        &self,
        mut check: impl FnMut(&Self, &SnapshotInfo) -> Result<R>,
    ) -> Result<Option<(SnapshotInfo, Vec<SkippedSnapshot>, R)>> {
        let listed = self.list()?;
        if listed.is_empty() {
            return Ok(None);
        }
        let mut skipped = Vec::new();
        for info in listed {
            match check(self, &info) {
                Ok(r) => return Ok(Some((info, skipped, r))),
                Err(error) if error.is_damage() => {
                    skipped.push(SkippedSnapshot { lsn: info.lsn, error })
                }
                Err(error) => return Err(error),
            }
        }
        Err(SnapshotError::NoValidSnapshot { skipped })
    }

    /// Maps, verifies and decodes a snapshot's IPC file, and checks that what it says
    /// about itself matches the manifest.
    fn decode_ipc(&self, info: &SnapshotInfo) -> Result<IpcContents> {
        let entry = self.ipc_entry(info)?;
        let path = self.file_path(entry);
        let contents =
            ipc::decode(&path, read_verified(self.storage.as_ref(), &entry.path, entry)?)?;
        let rows: u64 = contents.batches.iter().map(|b| b.num_rows() as u64).sum();
        check_ipc_meta(&path, info, rows, &contents.metadata, contents.footer_offset)?;
        Ok(contents)
    }

    /// The manifest's entry for the snapshot's IPC file.
    fn ipc_entry<'i>(&self, info: &'i SnapshotInfo) -> Result<&'i SnapshotFile> {
        info.ipc_file().ok_or_else(|| SnapshotError::ManifestCorrupt {
            path: self.path().join(MANIFEST_FILE),
            offset: manifest::HEADER_BYTES as u64,
            detail: format!("snapshot {} lists no Arrow IPC file", info.lsn),
        })
    }
}

/// Checks that what an IPC file holds and says about itself (its rows, the LSN and rows
/// in its footer) matches the manifest.
fn check_ipc_meta(
    path: &Path,
    info: &SnapshotInfo,
    rows: u64,
    metadata: &std::collections::HashMap<String, String>,
    footer_offset: u64,
) -> Result<()> {
    let says = |key: &str| metadata.get(key).map(String::as_str);
    let lsn = info.lsn.to_string();
    let expect_rows = info.rows.to_string();
    if rows != info.rows
        || says(ipc::META_LSN) != Some(lsn.as_str())
        || says(ipc::META_ROWS) != Some(expect_rows.as_str())
    {
        return Err(SnapshotError::FileCorrupt {
            path: path.to_path_buf(),
            offset: footer_offset,
            detail: format!(
                "file holds {rows} rows and says LSN {:?}, rows {:?}; the manifest says \
                 LSN {}, {} rows",
                says(ipc::META_LSN),
                says(ipc::META_ROWS),
                info.lsn,
                info.rows
            ),
        });
    }
    Ok(())
}

/// Converts `state` one batch of `opts.batch_rows` rows at a time and writes each batch
/// to the IPC file and to the Parquet output: one pass, memory bounded by a batch (plus
/// the Parquet row groups being built).
/// Writes `state` into `staged`: the Arrow IPC file and the Parquet files, one batch of
/// `opts.batch_rows` rows at a time into both.
fn write_files<T: ToArrow>(
    staged: &mut StagedDir,
    state: &T,
    opts: &SnapshotOptions,
    meta: IpcMeta,
) -> Result<()> {
    let schema = T::arrow_schema();
    let storage = Arc::clone(staged.storage());
    let dir = staged.tmp_name().to_owned();
    let mut ipc_sink = IpcSink::create(storage.as_ref(), &dir, &schema, opts.early_writeback)?;
    let mut parquet_sink = ParquetSink::create(&storage, &dir, schema, opts, meta)?;
    let mut rows = 0u64;
    for batch in state.record_batches(opts.batch_rows) {
        let batch = batch?;
        // Check the state's own conversion right before its bytes go to disk.
        check_schema::<T>(&batch)?;
        rows += batch.num_rows() as u64;
        ipc_sink.write(&batch)?;
        parquet_sink.write(&batch)?;
    }
    if rows != meta.rows {
        return Err(SnapshotError::InvalidValue {
            column: String::new(),
            row: usize::try_from(rows).unwrap_or(usize::MAX),
            detail: format!("record_batches yielded {rows} rows, num_rows says {}", meta.rows),
        });
    }
    staged.push(ipc_sink.finish(meta)?);
    let parquet = parquet_sink.finish()?;
    for file in parquet.files {
        staged.push(file);
    }
    staged.push_dirs(parquet.dirs);
    Ok(())
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
