//! Round trips: a state written as a snapshot reads back equal, from the mapped IPC file
//! and from the Parquet files, for every compression, partitioned or not.

use std::fs::File;

use orderlog_snapshot::{ParquetCompression, SnapshotOptions, SnapshotStore};
use parquet::file::reader::{FileReader, SerializedFileReader};
use proptest::prelude::*;

use crate::support::{Sample, any_compression, any_sample, small_options};

/// Publishes `state`, then checks the IPC load, the IPC batches and the Parquet batches.
fn round_trip(state: &Sample, opts: &SnapshotOptions) {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let published = store.publish(state, 17, 3, opts).unwrap();
    assert_eq!(published.info.rows, state.id.len() as u64);
    assert_eq!(published.info.schema_version, 3);

    let (back, verified) = store.load::<Sample>().unwrap().unwrap();
    assert!(back.same_as(state), "IPC load differs");
    assert_eq!(verified.info, published.info);
    assert!(verified.skipped.is_empty());

    let ipc = store.read_ipc_batches(&verified.info).unwrap();
    assert!(ipc.iter().all(|b| b.num_rows() <= opts.batch_rows), "IPC batches are bounded");
    assert!(Sample::from_batches(&ipc).same_as(state));

    let parquet = Sample::from_batches(&store.read_parquet_batches(&verified.info).unwrap());
    if opts.partition_by.is_none() {
        assert!(parquet.same_as(state), "Parquet differs");
    } else {
        assert_eq!(parquet.sorted_rows(), state.sorted_rows(), "partitioned Parquet differs");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_round_trips(
        state in any_sample(40),
        compression in any_compression(),
        partitioned in any::<bool>(),
        batch_rows in 1usize..12,
        row_group_rows in 1usize..20,
    ) {
        let opts = SnapshotOptions {
            compression,
            batch_rows,
            row_group_rows,
            partition_by: partitioned.then(|| "kind".to_string()),
            ..SnapshotOptions::default()
        };
        round_trip(&state, &opts);
    }
}

#[test]
fn every_compression_partitioned_or_not() {
    let state = Sample::generate(103, 9);
    for compression in
        [ParquetCompression::None, ParquetCompression::Snappy, ParquetCompression::Zstd]
    {
        for partition_by in [None, Some("kind"), Some("qty"), Some("id")] {
            let opts = SnapshotOptions {
                compression,
                partition_by: partition_by.map(Into::into),
                partitions_max: 200,
                ..small_options()
            };
            round_trip(&state, &opts);
        }
    }
}

#[test]
fn empty_state_round_trips() {
    for partition_by in [None, Some("kind".to_string())] {
        let opts = SnapshotOptions { partition_by, ..SnapshotOptions::default() };
        round_trip(&Sample::default(), &opts);
    }
}

#[test]
fn partitions_are_hive_style_and_keep_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let state = Sample::generate(50, 1);
    let opts = SnapshotOptions { partition_by: Some("kind".into()), ..small_options() };
    let info = store.publish(&state, 5, 1, &opts).unwrap().info;
    let files = store.parquet_files(&info);
    let rel: Vec<String> = info.parquet_files().map(|f| f.path.clone()).collect();
    assert_eq!(
        rel,
        [
            "snap-00000000000000000005/parquet/kind=0/part-0.parquet",
            "snap-00000000000000000005/parquet/kind=1/part-0.parquet",
            "snap-00000000000000000005/parquet/kind=2/part-0.parquet",
            "snap-00000000000000000005/parquet/kind=3/part-0.parquet",
        ]
    );
    for (i, path) in files.iter().enumerate() {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        let schema = reader.metadata().file_metadata().schema_descr();
        assert_eq!(schema.num_columns(), 4, "partition files keep every column");
        let part = Sample::from_batches(&parquet_batches(path));
        assert!(part.kind.iter().all(|k| *k as usize == i), "{path:?} holds other kinds");
    }
}

fn parquet_batches(path: &std::path::Path) -> Vec<arrow::array::RecordBatch> {
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        File::open(path).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(|b| b.unwrap())
    .collect()
}

#[test]
fn parquet_has_row_groups_statistics_compression_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let state = Sample::generate(30, 4);
    let opts = SnapshotOptions { compression: ParquetCompression::Snappy, ..small_options() };
    let info = store.publish(&state, 8, 2, &opts).unwrap().info;
    assert_eq!(info.compression, ParquetCompression::Snappy);
    let path = &store.parquet_files(&info)[0];
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    let meta = reader.metadata();
    // 30 rows in groups of at most 7.
    assert_eq!(meta.num_row_groups(), 5);
    for rg in meta.row_groups() {
        assert!(rg.num_rows() <= 7);
        for col in rg.columns() {
            assert!(col.statistics().is_some(), "statistics are on");
            assert_eq!(col.compression(), parquet::basic::Compression::SNAPPY);
        }
    }
    let kv = meta.file_metadata().key_value_metadata().unwrap();
    let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    assert_eq!(get("orderlog.lsn").as_deref(), Some("8"));
    assert_eq!(get("orderlog.rows").as_deref(), Some("30"));
    assert_eq!(get("orderlog.schema_version").as_deref(), Some("2"));
}

#[test]
fn default_options_write_one_row_group_per_million_rows() {
    let opts = SnapshotOptions::default();
    assert_eq!(opts.row_group_rows, 1_000_000);
    assert_eq!(opts.compression, ParquetCompression::Zstd);
    assert_eq!(opts.keep_last, 2);
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    // More rows than one conversion batch: several IPC batches, one row group.
    let state = Sample::generate(70_000, 2);
    let info = store.publish(&state, 1, 1, &opts).unwrap().info;
    let batches = store.read_ipc_batches(&info).unwrap();
    assert_eq!(batches.len(), 2);
    let path = &store.parquet_files(&info)[0];
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    assert_eq!(reader.metadata().num_row_groups(), 1);
    assert!(store.load::<Sample>().unwrap().unwrap().0.same_as(&state));
}
