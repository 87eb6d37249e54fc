//! A directory committed whole: its files are written under a temporary name, every file
//! and directory is synced, then it is renamed to its final name and its parent synced.
//! A crash before the rename leaves only the temporary directory (which readers ignore
//! and the next writer removes); after the parent's sync, the directory is whole and
//! durable under its name. The snapshot store publishes each snapshot's directory this
//! way, and other crates (the struct-of-arrays persistence's parts) reuse it.

use std::io::{self, Write};
use std::sync::Arc;

use orderlog_storage::Storage;

use crate::convert::{ToArrow, check_schema};
use crate::error::Result;
use crate::files::{CrcWriter, WrittenFile, io_err, join, sync_dir};
use crate::info::PublishStep;
use crate::ipc::IpcMeta;
use crate::options::SnapshotOptions;
use crate::parquet_file::ParquetSink;

/// A file of a staged directory, once written: its path inside the directory, its size
/// and its CRC-32.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StagedFile {
    /// `/`-separated path inside the directory (`data.parquet`,
    /// `parquet/kind=3/part-0.parquet`).
    pub rel_path: String,
    /// Exact length.
    pub bytes: u64,
    /// CRC-32 (IEEE) of the whole content.
    pub crc32: u32,
}

/// A directory being written under a temporary name; see the module docs.
pub struct StagedDir {
    storage: Arc<dyn Storage>,
    tmp: String,
    files: Vec<WrittenFile>,
    /// Subdirectories made for the files (synced before the directory itself).
    dirs: Vec<String>,
}

impl std::fmt::Debug for StagedDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedDir").field("tmp", &self.tmp).finish_non_exhaustive()
    }
}

impl StagedDir {
    /// Creates the directory `tmp` in `storage`'s root, first removing a leftover of
    /// that name (a crashed writer's).
    pub fn create(storage: Arc<dyn Storage>, tmp: &str) -> Result<StagedDir> {
        remove_dir_if_exists(storage.as_ref(), tmp)?;
        storage.make_dir(tmp).map_err(io_err("create directory", &storage.path().join(tmp)))?;
        Ok(StagedDir { storage, tmp: tmp.to_owned(), files: Vec::new(), dirs: Vec::new() })
    }

    /// The directory's temporary name, relative to the storage's root.
    pub fn tmp_name(&self) -> &str {
        &self.tmp
    }

    /// The storage it is written on.
    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Adds a file already written into the directory (its path relative to it).
    pub(crate) fn push(&mut self, file: WrittenFile) {
        self.files.push(file);
    }

    /// Adds subdirectories made for such files (synced before the directory itself).
    pub(crate) fn push_dirs(&mut self, dirs: Vec<String>) {
        self.dirs.extend(dirs);
    }

    /// Writes `state` as Parquet as `opts` says: `data.parquet`, or one file per value of
    /// the partition column under `parquet/<column>=<value>/part-0.parquet`. An empty
    /// state writes no file when partitioned, and an empty `data.parquet` otherwise.
    pub fn write_parquet<T: ToArrow>(&mut self, state: &T, opts: &SnapshotOptions) -> Result<()> {
        opts.validate(&T::arrow_schema())?;
        let meta = IpcMeta { lsn: 0, rows: state.num_rows() as u64, schema_version: 0 };
        let mut sink =
            ParquetSink::create(&self.storage, &self.tmp, T::arrow_schema(), opts, meta)?;
        for batch in state.record_batches(opts.batch_rows) {
            let batch = batch?;
            check_schema::<T>(&batch)?;
            sink.write(&batch)?;
        }
        let output = sink.finish()?;
        self.files.extend(output.files);
        self.dirs.extend(output.dirs);
        Ok(())
    }

    /// Writes a small file `name` (relative to the directory) holding `bytes`.
    pub fn write_file(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let rel = join(&self.tmp, name);
        let path = self.storage.path().join(&rel);
        let file = self.storage.create_file(&rel).map_err(io_err("create file", &path))?;
        let mut writer = CrcWriter::new(file);
        writer
            .write_all(bytes)
            .and_then(|()| writer.flush())
            .map_err(io_err("write file", &path))?;
        let (file, written, crc32) = writer.finish();
        self.files.push(WrittenFile {
            rel_path: name.to_owned(),
            path,
            file,
            bytes: written,
            crc32,
        });
        Ok(())
    }

    /// The files written so far, in order.
    pub fn files(&self) -> Vec<StagedFile> {
        self.files
            .iter()
            .map(|f| StagedFile { rel_path: f.rel_path.clone(), bytes: f.bytes, crc32: f.crc32 })
            .collect()
    }

    /// Syncs every file and directory written, then `hook(FilesSynced)`; renames the
    /// directory to `name` (replacing a leftover of that name, which no reader may be
    /// using) and syncs the root, then `hook(DirRenamed)`. Returns the files. On an error
    /// nothing is renamed; the temporary directory is left for the next writer.
    pub fn commit(
        mut self,
        name: &str,
        hook: &mut dyn FnMut(PublishStep) -> Result<()>,
    ) -> Result<Vec<StagedFile>> {
        let storage = Arc::clone(&self.storage);
        for file in &mut self.files {
            file.sync()?;
        }
        let tmp = self.tmp.clone();
        for dir in self.dirs.iter().map(String::as_str).chain(std::iter::once(tmp.as_str())) {
            sync_dir(storage.as_ref(), dir)?;
        }
        hook(PublishStep::FilesSynced)?;
        remove_dir_if_exists(storage.as_ref(), name)?;
        storage
            .rename(&tmp, name)
            .map_err(io_err("rename directory", &storage.path().join(&tmp)))?;
        sync_dir(storage.as_ref(), "")?;
        hook(PublishStep::DirRenamed)?;
        Ok(self.files())
    }

    /// Gives up: removes the temporary directory, best effort (what is left is never
    /// read, and the next writer removes it).
    pub fn abandon(self) {
        let _ = self.storage.remove_dir_all(&self.tmp);
    }
}

/// Removes the directory `name` and everything in it, if it exists.
pub(crate) fn remove_dir_if_exists(storage: &dyn Storage, name: &str) -> Result<()> {
    match storage.remove_dir_all(name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove leftover directory", &storage.path().join(name))(e)),
    }
}
