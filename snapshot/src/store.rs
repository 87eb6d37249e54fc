//! [`SnapshotStore`]: a directory of snapshots and the manifest that says which is
//! current. Publishing, verifying with fallback, loading, and pruning.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;

use crate::convert::{ToArrow, check_schema};
use crate::error::{Result, SnapshotError};
use crate::files::{WrittenFile, io_err, map_verified, sync_dir};
use crate::info::{
    FileKind, Lsn, PublishStep, Published, SkippedSnapshot, SnapshotFile, SnapshotInfo,
    VerifiedSnapshot,
};
use crate::ipc::{self, IpcContents, IpcMeta, IpcSink};
use crate::manifest::{
    self, MANIFEST_BYTES_MAX, MANIFEST_FILE, MANIFEST_TMP_FILE, parse_snapshot_dir_name,
    snapshot_dir_name,
};
use crate::options::SnapshotOptions;
use crate::parquet_file::{self, ParquetOutput, ParquetSink};

/// The writer lock's file name in the store directory.
const LOCK_FILE: &str = "LOCK";
/// Suffix of a snapshot directory being written.
const TMP_SUFFIX: &str = ".tmp";

/// A directory of snapshots and its manifest.
///
/// ```text
/// <dir>/LOCK                                   writer lock (flock), empty
/// <dir>/MANIFEST                               which snapshots exist, newest first
/// <dir>/snap-<lsn:020>/data.arrow              Arrow IPC file (restart; read mapped)
/// <dir>/snap-<lsn:020>/data.parquet            Parquet (analytics), or, partitioned:
/// <dir>/snap-<lsn:020>/parquet/<col>=<v>/part-0.parquet
/// ```
///
/// One writer per directory: [`SnapshotStore::open`] holds `LOCK` for the store's life;
/// [`SnapshotStore::open_read_only`] takes no lock and cannot publish (for offline
/// verification). Files are immutable once published; a snapshot is deleted only after
/// a manifest without it is durable. The byte layout is in `docs/format.md`.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    /// The writer lock, held while the store lives; `None` when read-only.
    lock: Option<File>,
    /// Serialises publishes within the process.
    publishing: Mutex<()>,
}

impl SnapshotStore {
    /// Opens (creating if needed) the snapshot directory `dir` as its one writer.
    /// Fails with [`SnapshotError::Locked`] if another store holds it.
    pub fn open(dir: impl AsRef<Path>) -> Result<SnapshotStore> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io_err("create snapshot directory", &dir))?;
            // The directory's own entry must be durable before anything in it is.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(SnapshotError::Locked { path: lock_path }),
            Err(TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
        }
        Ok(SnapshotStore { dir, lock: Some(lock), publishing: Mutex::new(()) })
    }

    /// Opens `dir` for reading only: no lock, no changes; [`SnapshotStore::publish`]
    /// fails with [`SnapshotError::ReadOnly`]. A missing directory reads as empty.
    pub fn open_read_only(dir: impl AsRef<Path>) -> SnapshotStore {
        SnapshotStore { dir: dir.as_ref().to_path_buf(), lock: None, publishing: Mutex::new(()) }
    }

    /// The snapshot directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The absolute path of one snapshot file.
    pub fn file_path(&self, file: &SnapshotFile) -> PathBuf {
        self.dir.join(&file.path)
    }

    /// Every Parquet file of a snapshot, partitioned or not (for readers such as DuckDB).
    /// Empty for an empty partitioned snapshot.
    pub fn parquet_files(&self, info: &SnapshotInfo) -> Vec<PathBuf> {
        info.parquet_files().map(|f| self.file_path(f)).collect()
    }

    /// The snapshots the manifest lists, newest first, after checking the manifest's
    /// header and checksum (but not the snapshot files). Empty if there is no manifest.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>> {
        let path = self.dir.join(MANIFEST_FILE);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("open manifest", &path)(e)),
        };
        let mut bytes = Vec::new();
        // Read one byte past the limit to tell "at the limit" from "over it".
        file.take(MANIFEST_BYTES_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read manifest", &path))?;
        if bytes.len() as u64 > MANIFEST_BYTES_MAX {
            return Err(SnapshotError::ManifestCorrupt {
                path,
                offset: MANIFEST_BYTES_MAX,
                detail: format!("longer than the {MANIFEST_BYTES_MAX}-byte limit"),
            });
        }
        manifest::decode(&path, &bytes)
    }

    /// Checks every file of `info` against the manifest: exact size and CRC-32 of the
    /// whole content. A missing file is an [`SnapshotError::Io`] error naming it.
    pub fn verify(&self, info: &SnapshotInfo) -> Result<()> {
        for file in &info.files {
            map_verified(&self.file_path(file), file)?;
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
    /// [`SnapshotStore::current`], from its Arrow IPC file read through a mapping.
    ///
    /// The IPC file is decoded without copying (arrays over the mapping); `T`'s
    /// `from_record_batch` / `extend_from_record_batch` then build the state. The Parquet
    /// files are checked (size and CRC) too, so the snapshot returned is whole.
    ///
    /// A snapshot whose schema does not match `T`, or holds a value `T` rejects, is an
    /// error naming the column, not a reason to fall back: it is not damage.
    pub fn load<T: ToArrow>(&self) -> Result<Option<(T, VerifiedSnapshot)>> {
        let found = self.first_valid(|store, info| {
            for file in info.parquet_files() {
                map_verified(&store.file_path(file), file)?;
            }
            store.decode_ipc(info)
        })?;
        let Some((info, skipped, contents)) = found else {
            return Ok(None);
        };
        check_schema::<T>(&RecordBatch::new_empty(contents.schema.clone()))?;
        let mut state = T::from_record_batch(&RecordBatch::new_empty(T::arrow_schema()))?;
        state.reserve_rows(contents.batches.iter().map(RecordBatch::num_rows).sum());
        for batch in &contents.batches {
            state.extend_from_record_batch(batch)?;
        }
        Ok(Some((state, VerifiedSnapshot { info, skipped })))
    }

    /// The record batches of a snapshot's Arrow IPC file, after checking its size and
    /// CRC. The arrays point into a read-only mapping of the file (no copy); the mapping
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
            let path = self.file_path(file);
            let map = map_verified(&path, file)?;
            out.extend(parquet_file::read(&path, map)?);
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
        if self.lock.is_none() {
            return Err(SnapshotError::ReadOnly { path: self.dir.clone() });
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
        let info = self.write_snapshot_dir(state, meta, opts, hook)?;

        let mut listed = Vec::with_capacity(opts.keep_last);
        listed.push(info.clone());
        listed.extend(old.into_iter().take(opts.keep_last - 1));
        self.publish_manifest(&listed, hook)?;

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
        let final_dir = self.dir.join(&name);
        let tmp_dir = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        remove_dir_if_exists(&tmp_dir)?;
        std::fs::create_dir(&tmp_dir).map_err(io_err("create directory", &tmp_dir))?;

        let (ipc_file, parquet) = write_files(&tmp_dir, state, opts, meta)?;
        hook(PublishStep::FilesWritten)?;

        let written: Vec<&WrittenFile> =
            std::iter::once(&ipc_file).chain(parquet.files.iter()).collect();
        for file in &written {
            file.file.sync_all().map_err(io_err("fsync snapshot file", &file.path))?;
        }
        for dir in parquet.dirs.iter().chain(std::iter::once(&tmp_dir)) {
            sync_dir(dir)?;
        }
        hook(PublishStep::FilesSynced)?;

        // A directory of this name is not in the manifest (its LSN is above the newest
        // listed): a leftover of a publish that crashed before its manifest. Replace it.
        remove_dir_if_exists(&final_dir)?;
        std::fs::rename(&tmp_dir, &final_dir).map_err(io_err("rename snapshot", &tmp_dir))?;
        sync_dir(&self.dir)?;
        hook(PublishStep::DirRenamed)?;

        let files = written
            .iter()
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
        let bytes = manifest::encode(listed)?;
        let tmp = self.dir.join(MANIFEST_TMP_FILE);
        let mut file = File::create(&tmp).map_err(io_err("create manifest", &tmp))?;
        file.write_all(&bytes).map_err(io_err("write manifest", &tmp))?;
        hook(PublishStep::ManifestTempWritten)?;
        file.sync_all().map_err(io_err("fsync manifest", &tmp))?;
        drop(file);
        hook(PublishStep::ManifestSynced)?;
        let path = self.dir.join(MANIFEST_FILE);
        std::fs::rename(&tmp, &path).map_err(io_err("rename manifest", &tmp))?;
        hook(PublishStep::ManifestRenamed)?;
        sync_dir(&self.dir)?;
        hook(PublishStep::DirSynced)
    }

    /// Deletes every snapshot directory not in `listed` (pruned snapshots, leftovers of
    /// interrupted publishes). Runs only once the manifest naming `listed` is durable.
    fn prune(&self, listed: &[SnapshotInfo]) -> (Vec<String>, Vec<SnapshotError>) {
        let mut pruned = Vec::new();
        let mut errors = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => return (pruned, vec![io_err("list snapshot directory", &self.dir)(e)]),
        };
        for entry in entries {
            let name = match entry {
                Ok(entry) => entry.file_name().to_string_lossy().into_owned(),
                Err(e) => {
                    errors.push(io_err("list snapshot directory", &self.dir)(e));
                    continue;
                }
            };
            let base = name.strip_suffix(TMP_SUFFIX).unwrap_or(&name);
            let Some(lsn) = parse_snapshot_dir_name(base) else { continue };
            if base == name && listed.iter().any(|s| s.lsn == lsn) {
                continue;
            }
            let path = self.dir.join(&name);
            match std::fs::remove_dir_all(&path) {
                Ok(()) => pruned.push(name),
                Err(e) => errors.push(io_err("delete old snapshot", &path)(e)),
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
                Err(error) if is_damage(&error) => {
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
        let entry = info.ipc_file().ok_or_else(|| SnapshotError::ManifestCorrupt {
            path: self.dir.join(MANIFEST_FILE),
            offset: manifest::HEADER_BYTES as u64,
            detail: format!("snapshot {} lists no Arrow IPC file", info.lsn),
        })?;
        let path = self.file_path(entry);
        let contents = ipc::decode(&path, map_verified(&path, entry)?)?;
        let rows: u64 = contents.batches.iter().map(|b| b.num_rows() as u64).sum();
        let says = |key: &str| contents.metadata.get(key).map(String::as_str);
        let lsn = info.lsn.to_string();
        let expect_rows = info.rows.to_string();
        if rows != info.rows
            || says(ipc::META_LSN) != Some(lsn.as_str())
            || says(ipc::META_ROWS) != Some(expect_rows.as_str())
        {
            return Err(SnapshotError::FileCorrupt {
                path,
                offset: contents.footer_offset,
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
        Ok(contents)
    }
}

/// Converts `state` one batch of `opts.batch_rows` rows at a time and writes each batch
/// to the IPC file and to the Parquet output: one pass, memory bounded by a batch (plus
/// the Parquet row groups being built).
fn write_files<T: ToArrow>(
    dir: &Path,
    state: &T,
    opts: &SnapshotOptions,
    meta: IpcMeta,
) -> Result<(WrittenFile, ParquetOutput)> {
    let schema = T::arrow_schema();
    let mut ipc_sink = IpcSink::create(dir, &schema, opts.early_writeback)?;
    let mut parquet_sink = ParquetSink::create(dir, schema, opts, meta)?;
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
    Ok((ipc_sink.finish(meta)?, parquet_sink.finish()?))
}

/// Errors that mean "this snapshot is damaged or gone": a reader skips it.
fn is_damage(error: &SnapshotError) -> bool {
    match error {
        SnapshotError::FileCorrupt { .. } => true,
        SnapshotError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
        _ => false,
    }
}

fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove leftover directory", path)(e)),
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
