//! A snapshot of another schema, or holding a value the type rejects, is an error naming
//! the column (never a fallback: it is not damage); bad options are refused up front.

use orderlog_snapshot::{SnapshotError, SnapshotOptions, SnapshotStore};

use crate::support::{OtherSample, RawSample, Sample, small_options};

type Retyped = OtherSample<false>;
type Renamed = OtherSample<true>;

#[test]
fn load_as_another_schema_names_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.publish(&Retyped { n: 3 }, 1, 1, &small_options()).unwrap();
    match store.load::<Sample>() {
        Err(SnapshotError::WrongType { column, .. }) => assert_eq!(column, "qty"),
        other => panic!("{other:?}"),
    }

    // Same check with no rows at all: the file's schema is compared, not just batches.
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.publish(&Retyped { n: 0 }, 1, 1, &small_options()).unwrap();
    match store.load::<Sample>() {
        Err(SnapshotError::WrongType { column, .. }) => assert_eq!(column, "qty"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_renamed_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.publish(&Renamed { n: 2 }, 1, 1, &small_options()).unwrap();
    match store.load::<Sample>() {
        Err(SnapshotError::SchemaMismatch { column, detail }) => {
            assert_eq!(column, "price");
            assert!(detail.contains("cost"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // And the other way round.
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.publish(&Sample::generate(4, 1), 1, 1, &small_options()).unwrap();
    match store.load::<Renamed>() {
        Err(SnapshotError::SchemaMismatch { column, .. }) => assert_eq!(column, "cost"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_value_names_the_column_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let raw = RawSample { id: vec![1, 2, 3, 4, 5, 6], kind: vec![0, 1, 2, 3, 9, 0] };
    store.publish(&raw, 1, 1, &small_options()).unwrap();
    // Batches of 5: the bad byte is row 4 of the first batch.
    match store.load::<Sample>() {
        Err(SnapshotError::InvalidValue { column, row, .. }) => {
            assert_eq!(column, "kind");
            assert_eq!(row, 4);
        }
        other => panic!("{other:?}"),
    }
    // The raw type reads it fine: the files are intact, only the value is refused.
    let (back, _) = store.load::<RawSample>().unwrap().unwrap();
    assert_eq!(back.kind, raw.kind);
}

#[test]
fn bad_options_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let state = Sample::generate(3, 1);
    let bad = [
        SnapshotOptions { batch_rows: 0, ..SnapshotOptions::default() },
        SnapshotOptions { row_group_rows: 0, ..SnapshotOptions::default() },
        SnapshotOptions { keep_last: 0, ..SnapshotOptions::default() },
    ];
    for opts in bad {
        assert!(matches!(
            store.publish(&state, 1, 1, &opts),
            Err(SnapshotError::InvalidOptions { .. })
        ));
    }
    for column in ["price", "nope"] {
        let opts = SnapshotOptions { partition_by: Some(column.into()), ..Default::default() };
        match store.publish(&state, 1, 1, &opts) {
            Err(SnapshotError::Partition { column: c, .. }) => assert_eq!(c, column),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(crate::support::names_in(dir.path()), ["LOCK"], "nothing was written");
}

#[test]
fn too_many_partitions_is_an_error_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let state = Sample::generate(20, 1);
    let opts =
        SnapshotOptions { partition_by: Some("id".into()), partitions_max: 10, ..small_options() };
    match store.publish(&state, 1, 1, &opts) {
        Err(SnapshotError::Partition { column, .. }) => assert_eq!(column, "id"),
        other => panic!("{other:?}"),
    }
    assert!(store.current().unwrap().is_none());
    // The next publish cleans the leftover temp directory.
    store.publish(&state, 1, 1, &small_options()).unwrap();
    assert_eq!(
        crate::support::names_in(dir.path()),
        ["LOCK", "MANIFEST", "snap-00000000000000000001"]
    );
}
