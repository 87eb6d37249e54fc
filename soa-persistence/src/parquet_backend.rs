//! `ParquetPersistence` and `PartitionedParquetPersistence`: the Parquet backends,
//! durable, append-only parts on disk (layout and protocol in [`crate::parts`]).

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use orderlog_snapshot::{ParquetCompression, SnapshotOptions};

use crate::error::Result;
use crate::parts::{PartDir, PartInfo, PartKind};
use crate::persistence::{MemoryStats, SoAPersistence, SoaRows, run_blocking};

/// The default compression of the Parquet backends.
pub const DEFAULT_PARQUET_COMPRESSION: ParquetCompression = ParquetCompression::Snappy;

/// Rows in Parquet files under one directory: one immutable part per save or append.
///
/// `new(base_path)` touches nothing; the first write creates the directory and takes its
/// `LOCK` (one writer per directory, held until the handle is dropped; readers need no
/// lock). Each [`append`](SoAPersistence::append) writes one new part holding only the
/// appended rows (`<base>/append-<seq>/data.parquet`); [`save`](SoAPersistence::save)
/// writes one part that replaces everything older; [`clear`](SoAPersistence::clear) is a
/// save of no rows. Every part is fsynced (files, then directories) and committed by a
/// rename, so a crash leaves each write whole or absent.
/// [`load`](SoAPersistence::load) reads every file of every live part, checking each
/// file's size and CRC-32 first; damage is a [`crate::PersistenceError::Corrupt`]
/// naming the file.
///
/// Parts accumulate with appends: [`ParquetPersistence::compact`] rewrites them as one.
/// A reader in another handle may see a file vanish while a save or compaction deletes
/// the parts it replaced (an error naming the file); reading again sees the new state.
pub struct ParquetPersistence<T> {
    parts: PartDir,
    _rows: PhantomData<fn() -> T>,
}

/// [`ParquetPersistence`] with each part split hive-style by the value of one column:
/// `<base>/<kind>-<seq>/parquet/<column>=<value>/part-0.parquet`, every file keeping every
/// column. The column must be an integer or boolean column of `T` (for orders:
/// `status`, `payment_method`, `customer_id`, ...); a bad column is an error at the first
/// write. Since each file keeps the partition column, a query engine needs no hive
/// decoding: hand it the paths from [`PartitionedParquetPersistence::files`] (exactly the
/// live files), e.g. DuckDB's `read_parquet([...], hive_partitioning = false)`; a reader
/// that prunes by directory can use the `<column>=<value>` names.
pub struct PartitionedParquetPersistence<T> {
    parts: PartDir,
    _rows: PhantomData<fn() -> T>,
}

macro_rules! parquet_backend {
    ($name:ident) => {
        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).field("parts", &self.parts).finish()
            }
        }

        impl<T> $name<T> {
            /// Sets the Parquet compression of later writes (none, snappy or zstd; the
            /// default is snappy). Files already written keep theirs.
            pub fn with_compression(mut self, compression: ParquetCompression) -> Self {
                self.parts.set_compression(compression);
                self
            }

            /// The compression of new files.
            pub fn compression(&self) -> ParquetCompression {
                self.parts.compression()
            }

            /// The directory holding the parts.
            pub fn base_path(&self) -> &Path {
                self.parts.base()
            }

            /// The parts holding the stored rows (the newest save and the appends after
            /// it), oldest first.
            pub fn parts(&self) -> Result<Vec<PartInfo>> {
                self.parts.live_parts()
            }

            /// The Parquet files holding the stored rows, in order: what to hand to a
            /// query engine.
            pub fn files(&self) -> Result<Vec<PathBuf>> {
                let parts = self.parts.live_parts()?;
                Ok(parts.into_iter().flat_map(|p| p.files).map(|f| f.path).collect())
            }
        }

        impl<T: SoaRows> $name<T> {
            /// Rewrites every live part as one save part (then deletes the old ones), so
            /// reads open one part again. Loads every row into memory to do so.
            pub async fn compact(&mut self) -> Result<()> {
                run_blocking(|| {
                    let all = match self.parts.load::<T>()? {
                        Some(all) => all,
                        None => T::from_record_batch(&RecordBatch::new_empty(T::arrow_schema()))?,
                    };
                    self.parts.write(PartKind::Save, &all)
                })
            }
        }

        impl<T: SoaRows + Sync> SoAPersistence<T> for $name<T> {
            async fn save(&mut self, data: &T) -> Result<()> {
                run_blocking(|| self.parts.write(PartKind::Save, data))
            }

            async fn load(&self) -> Result<Option<T>> {
                run_blocking(|| self.parts.load())
            }

            async fn append(&mut self, data: &T) -> Result<()> {
                run_blocking(|| self.parts.write(PartKind::Append, data))
            }

            async fn query(&self, predicate: impl Fn(&T::Row) -> bool + Send) -> Result<Option<T>> {
                run_blocking(|| self.parts.query(&predicate))
            }

            async fn count(&self) -> Result<usize> {
                run_blocking(|| self.parts.count())
            }

            async fn clear(&mut self) -> Result<()> {
                run_blocking(|| {
                    let empty = T::from_record_batch(&RecordBatch::new_empty(T::arrow_schema()))?;
                    self.parts.write(PartKind::Save, &empty)
                })
            }

            async fn memory_stats(&self) -> Result<MemoryStats> {
                run_blocking(|| self.parts.stats())
            }
        }
    };
}

parquet_backend!(ParquetPersistence);
parquet_backend!(PartitionedParquetPersistence);

impl<T> ParquetPersistence<T> {
    /// Parquet parts under `base_path` (created on the first write), snappy-compressed.
    pub fn new(base_path: impl AsRef<Path>) -> Self {
        let options = SnapshotOptions {
            compression: DEFAULT_PARQUET_COMPRESSION,
            ..SnapshotOptions::default()
        };
        ParquetPersistence {
            parts: PartDir::new(base_path.as_ref().to_path_buf(), options),
            _rows: PhantomData,
        }
    }
}

impl<T> PartitionedParquetPersistence<T> {
    /// Parquet parts under `base_path`, each split by the value of column `partition_by`
    /// (checked against `T`'s schema at the first write), snappy-compressed.
    pub fn new(base_path: impl AsRef<Path>, partition_by: impl Into<String>) -> Self {
        let options = SnapshotOptions {
            compression: DEFAULT_PARQUET_COMPRESSION,
            partition_by: Some(partition_by.into()),
            ..SnapshotOptions::default()
        };
        PartitionedParquetPersistence {
            parts: PartDir::new(base_path.as_ref().to_path_buf(), options),
            _rows: PhantomData,
        }
    }

    /// The partition column.
    pub fn partition_by(&self) -> &str {
        self.parts.partition_by().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::error::PersistenceError;
    use crate::parts::crc32;
    use crate::test_support::{ids, orders, range};
    use orderlog_snapshot::ToArrow;
    use orderlog_store::domain::{Order, OrderSoA, OrderStatus};

    type Parquet = ParquetPersistence<OrderSoA>;
    type Partitioned = PartitionedParquetPersistence<OrderSoA>;

    async fn load_ids<P: SoAPersistence<OrderSoA>>(p: &P) -> Vec<u64> {
        p.load().await.expect("load").map(|soa| ids(&soa)).unwrap_or_default()
    }

    /// `append` writes only the new rows, as a new part; the old file stays as it was.
    #[tokio::test]
    async fn parquet_append_keeps_existing_rows_and_never_rewrites_old_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Parquet::new(dir.path());
        p.save(&orders(1..=10)).await.expect("save");
        let first = p.parts().expect("parts");
        let first_file = &first[0].files[0];
        let before = (fs::read(&first_file.path).expect("read"), modified(&first_file.path));

        p.append(&orders(11..=20)).await.expect("append");
        assert_eq!(load_ids(&p).await, range(1..=20), "append dropped the rows before it");
        let parts = p.parts().expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].kind, parts[0].rows), (PartKind::Save, 10));
        assert_eq!((parts[1].kind, parts[1].rows), (PartKind::Append, 10), "only new rows");
        assert_eq!(parts[0], first[0], "the first part changed");
        let after = (fs::read(&first_file.path).expect("read"), modified(&first_file.path));
        assert!(before == after, "the first part's file was rewritten");
        assert_eq!(p.count().await.expect("count"), 20);
    }

    fn modified(path: &Path) -> std::time::SystemTime {
        fs::metadata(path).and_then(|m| m.modified()).expect("mtime")
    }

    /// `load` returns every batch, not only the first. 100,000 rows in one file
    /// read back as two batches; with two more parts and a partitioned store, every
    /// batch of every file must come back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parquet_load_returns_every_batch_of_every_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Parquet::new(dir.path().join("flat"));
        p.append(&orders(1..=100_000)).await.expect("append");
        p.append(&orders(100_001..=100_010)).await.expect("append");
        p.append(&orders(100_011..=100_020)).await.expect("append");
        let file = &p.parts().expect("parts")[0].files[0];
        let batches = orderlog_snapshot::read_parquet_file(&file.path).expect("read");
        assert!(batches.len() > 1, "the big file must read as several batches");
        assert_eq!(load_ids(&p).await, range(1..=100_020));

        let mut q = Partitioned::new(dir.path().join("by_status"), "status");
        q.append(&orders(1..=600)).await.expect("append");
        q.append(&orders(601..=1200)).await.expect("append");
        assert_eq!(q.files().expect("files").len(), 12, "6 statuses × 2 parts");
        let mut loaded = load_ids(&q).await;
        loaded.sort_unstable();
        assert_eq!(loaded, range(1..=1200));
    }

    /// `query` returns only the rows that match, not the whole dataset.
    #[tokio::test]
    async fn parquet_query_returns_only_matching_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Parquet::new(dir.path());
        p.append(&orders(1..=50)).await.expect("append");
        p.append(&orders(51..=100)).await.expect("append");
        let found = p.query(|o: &Order| o.total_amount() > 285.0).await.expect("query");
        assert_eq!(ids(&found.expect("matches")), range(96..=100));
        let delivered = p.query(|o: &Order| o.status == OrderStatus::Delivered).await;
        let delivered = delivered.expect("query").expect("matches");
        assert!(delivered.statuses().all(|s| s == OrderStatus::Delivered));
        assert_eq!(delivered.len(), 17);
        assert!(p.query(|o: &Order| o.order_id > 100).await.expect("query").is_none());
    }

    #[tokio::test]
    async fn parquet_save_replaces_everything_and_deletes_older_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Parquet::new(dir.path());
        p.append(&orders(1..=5)).await.expect("append");
        p.append(&orders(6..=9)).await.expect("append");
        p.save(&orders(20..=22)).await.expect("save");
        assert_eq!(load_ids(&p).await, [20, 21, 22]);
        let parts = p.parts().expect("parts");
        assert_eq!(
            parts.iter().map(|p| (p.kind, p.seq)).collect::<Vec<_>>(),
            [(PartKind::Save, 3)]
        );
        assert_eq!(part_dirs(dir.path()), ["save-00000000000000000003"]);

        p.clear().await.expect("clear");
        assert!(p.load().await.expect("load").is_none());
        assert_eq!(p.count().await.expect("count"), 0);
        assert_eq!(p.memory_stats().await.expect("stats"), MemoryStats::default());
        p.append(&orders(7..=8)).await.expect("append after clear");
        assert_eq!(load_ids(&p).await, [7, 8]);
    }

    /// The part directories under `base`, sorted.
    fn part_dirs(base: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(base)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n != "LOCK")
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn parquet_empty_directory_holds_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Parquet::new(dir.path().join("not-yet"));
        assert!(p.load().await.expect("load").is_none());
        assert_eq!(p.count().await.expect("count"), 0);
        assert_eq!(p.memory_stats().await.expect("stats"), MemoryStats::default());
        assert!(p.query(|_: &Order| true).await.expect("query").is_none());
        p.append(&OrderSoA::new()).await.expect("append nothing");
        assert!(!dir.path().join("not-yet").exists(), "an empty append wrote something");
    }

    #[tokio::test]
    async fn parquet_reopened_handle_sees_every_write_and_one_writer_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = Parquet::new(dir.path());
        first.append(&orders(1..=3)).await.expect("append");
        let mut second = Parquet::new(dir.path());
        assert_eq!(load_ids(&second).await, [1, 2, 3], "readers need no lock");
        match second.append(&orders(4..=4)).await {
            Err(PersistenceError::Locked { path }) => assert_eq!(path, dir.path().join("LOCK")),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        second.append(&orders(4..=4)).await.expect("append once the first writer is gone");
        assert_eq!(load_ids(&Parquet::new(dir.path())).await, [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn parquet_crash_leftovers_are_ignored_then_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Parquet::new(dir.path());
        p.append(&orders(1..=3)).await.expect("append");
        p.append(&orders(4..=6)).await.expect("append");
        // A save that crashed after its rename, before deleting what it shadows: keep a
        // copy of the first append and put it back after the save.
        let old = dir.path().join("append-00000000000000000001");
        let kept = dir.path().join("kept");
        copy_dir(&old, &kept);
        p.save(&orders(10..=11)).await.expect("save");
        fs::rename(&kept, &old).expect("restore shadowed part");
        // A write that crashed before its rename.
        let tmp = dir.path().join(".tmp-00000000000000000009");
        fs::create_dir(&tmp).expect("tmp");
        fs::write(tmp.join("data.parquet"), b"half a file").expect("write");
        drop(p);

        let mut p = Parquet::new(dir.path());
        assert_eq!(load_ids(&p).await, [10, 11], "a shadowed or unfinished part was read");
        p.append(&orders(12..=12)).await.expect("append");
        assert_eq!(load_ids(&p).await, [10, 11, 12]);
        assert_eq!(
            part_dirs(dir.path()),
            ["append-00000000000000000010", "save-00000000000000000003"],
            "the writer must delete leftovers and number after them"
        );
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("mkdir");
        for entry in fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), target).expect("copy");
            }
        }
    }

    /// Every byte flipped in a data file, a cut file, a missing file and a damaged PART
    /// are each an error naming the file; nothing is returned from damaged data.
    #[tokio::test]
    async fn parquet_damage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Parquet::new(dir.path()).with_compression(ParquetCompression::None);
        p.append(&orders(1..=3)).await.expect("append");
        p.append(&orders(4..=6)).await.expect("append");
        let parts = p.parts().expect("parts");
        let file = parts[1].files[0].path.clone();
        let good = fs::read(&file).expect("read");
        assert_eq!(crc32(&good), parts[1].files[0].crc32, "our CRC-32 is the writer's");

        let expect_corrupt =
            |what: &str, named: &Path, result: Result<Option<OrderSoA>>| match result {
                Err(PersistenceError::Corrupt { path, .. }) => assert_eq!(path, named, "{what}"),
                other => panic!("{what}: expected Corrupt, got {other:?}"),
            };
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            fs::write(&file, &bad).expect("write");
            expect_corrupt(&format!("flip at {i}"), &file, p.load().await);
        }
        fs::write(&file, &good[..good.len() - 1]).expect("cut");
        expect_corrupt("cut", &file, p.load().await);
        expect_corrupt("cut, query", &file, p.query(|_: &Order| true).await);
        fs::remove_file(&file).expect("remove");
        expect_corrupt("missing", &file, p.load().await);
        fs::write(&file, &good).expect("restore");
        assert_eq!(load_ids(&p).await, range(1..=6));

        let part = parts[0].dir.join("PART");
        let text = fs::read(&part).expect("read PART");
        let mut bad = text.clone();
        let last = bad.len() - 2;
        bad[last] ^= 0x01;
        fs::write(&part, &bad).expect("write");
        expect_corrupt("PART", &part, p.load().await);
        assert!(matches!(p.count().await, Err(PersistenceError::Corrupt { .. })));
    }

    #[tokio::test]
    async fn parquet_compression_choice_is_what_the_files_use() {
        use parquet::basic::Compression;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().expect("tempdir");
        for (choice, name) in [
            (ParquetCompression::None, "UNCOMPRESSED"),
            (ParquetCompression::Snappy, "SNAPPY"),
            (ParquetCompression::Zstd, "ZSTD"),
        ] {
            let mut p = Parquet::new(dir.path().join(choice.as_str())).with_compression(choice);
            assert_eq!(p.compression(), choice);
            p.append(&orders(1..=1000)).await.expect("append");
            let path = &p.files().expect("files")[0];
            let reader =
                SerializedFileReader::new(fs::File::open(path).expect("open")).expect("parquet");
            let codec: Compression = reader.metadata().row_group(0).column(0).compression();
            assert!(codec.to_string().starts_with(name), "{choice}: {codec}");
            assert_eq!(load_ids(&p).await, range(1..=1000));
        }
        assert_eq!(Parquet::new(dir.path()).compression(), ParquetCompression::Snappy);
    }

    #[tokio::test]
    async fn partitioned_parts_are_hive_style_one_value_per_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Partitioned::new(dir.path(), "payment_method");
        assert_eq!(p.partition_by(), "payment_method");
        p.save(&orders(1..=100)).await.expect("save");
        p.append(&orders(101..=103)).await.expect("append");
        let files = p.files().expect("files");
        assert_eq!(files.len(), 5 + 3);
        for path in &files {
            let rel = path.strip_prefix(dir.path()).expect("under base");
            let hive = rel.parent().and_then(|d| d.file_name()).expect("partition dir");
            let value: u8 = hive
                .to_str()
                .and_then(|s| s.strip_prefix("payment_method="))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("not hive-style: {}", rel.display()));
            for batch in orderlog_snapshot::read_parquet_file(path).expect("read") {
                let soa = OrderSoA::from_record_batch(&batch).expect("decode");
                assert!(soa.payment_method_raw_array().iter().all(|&m| m == value));
            }
        }
        let stats = p.memory_stats().await.expect("stats");
        assert_eq!((stats.total_rows, stats.num_batches), (103, 8));
        let on_disk: u64 = files.iter().map(|f| fs::metadata(f).expect("stat").len()).sum();
        assert_eq!(stats.total_bytes as u64, on_disk);
        assert_eq!(stats.average_batch_size, stats.total_bytes / 8);
        let found = p.query(|o: &Order| o.order_id.is_multiple_of(50)).await.expect("query");
        let mut found = ids(&found.expect("matches"));
        found.sort_unstable();
        assert_eq!(found, [50, 100]);
    }

    #[tokio::test]
    async fn partitioned_by_a_bad_column_is_refused_at_the_first_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        for column in ["unit_price", "no_such_column", "../status"] {
            let mut p = Partitioned::new(dir.path().join("x"), column);
            match p.append(&orders(1..=3)).await {
                Err(PersistenceError::Snapshot(_)) => {}
                other => panic!("{column}: expected a snapshot error, got {other:?}"),
            }
            assert!(p.load().await.expect("load").is_none(), "{column}: something was stored");
        }
    }

    #[tokio::test]
    async fn parquet_compact_rewrites_the_parts_as_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Parquet::new(dir.path());
        for i in 0..10 {
            p.append(&orders(i * 10 + 1..=i * 10 + 10)).await.expect("append");
        }
        assert_eq!(p.parts().expect("parts").len(), 10);
        p.compact().await.expect("compact");
        let parts = p.parts().expect("parts");
        assert_eq!((parts.len(), parts[0].kind, parts[0].rows), (1, PartKind::Save, 100));
        assert_eq!(load_ids(&p).await, range(1..=100));
    }

    #[tokio::test]
    async fn parquet_same_order_appended_twice_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Parquet::new(dir.path());
        p.append(&orders(1..=3)).await.expect("append");
        p.append(&orders(3..=4)).await.expect("append");
        let second = p.files().expect("files")[1].clone();
        match p.load().await {
            Err(PersistenceError::Corrupt { path, source: Some(_), .. }) => {
                assert_eq!(path, second);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
