//! A publish stopped after each step, as a crash would stop it: on reopening, the current
//! snapshot is the old one or the new one, complete, never a broken one; the next publish
//! succeeds and clears what the stopped one left behind.

use orderlog_snapshot::{PublishStep, SnapshotError, SnapshotOptions, SnapshotStore};

use crate::support::{Sample, names_in, small_options};

fn stop_after(step: PublishStep) -> impl FnMut(PublishStep) -> orderlog_snapshot::Result<()> {
    move |done| if done == step { Err(SnapshotError::Stopped { step }) } else { Ok(()) }
}

#[test]
fn publish_stopped_after_each_step_leaves_old_or_new() {
    let old = Sample::generate(9, 1);
    let new = Sample::generate(11, 2);
    let next = Sample::generate(5, 3);
    for partitioned in [false, true] {
        let opts = SnapshotOptions {
            partition_by: partitioned.then(|| "kind".to_string()),
            ..small_options()
        };
        for step in PublishStep::ALL {
            let dir = tempfile::tempdir().unwrap();
            {
                let store = SnapshotStore::open(dir.path()).unwrap();
                store.publish(&old, 10, 1, &opts).unwrap();
                let result = store.publish_with_hook(&new, 20, 1, &opts, &mut stop_after(step));
                assert!(
                    matches!(result, Err(SnapshotError::Stopped { step: s }) if s == step),
                    "{step}: {result:?}"
                );
            } // the store is dropped, as by a crash: its lock is released

            let store = SnapshotStore::open(dir.path()).unwrap();
            let (state, verified) = store.load::<Sample>().unwrap().unwrap();
            assert!(verified.skipped.is_empty(), "{step}: {:?}", verified.skipped);
            let renamed = matches!(
                step,
                PublishStep::ManifestRenamed | PublishStep::DirSynced | PublishStep::Pruned
            );
            if renamed {
                assert_eq!(verified.info.lsn, 20, "{step}");
                assert!(state.same_as(&new), "{step}");
            } else {
                assert_eq!(verified.info.lsn, 10, "{step}");
                assert!(state.same_as(&old), "{step}");
            }
            // Every listed snapshot verifies, not just the current one.
            for info in store.list().unwrap() {
                store.verify(&info).unwrap();
            }

            // The next publish works and leaves exactly what the manifest lists.
            let published = store.publish(&next, 30, 1, &opts).unwrap();
            assert!(published.prune_errors.is_empty());
            let listed: Vec<String> = store.list().unwrap().into_iter().map(|s| s.dir).collect();
            let expected_older = if renamed { 20 } else { 10 };
            assert_eq!(
                listed,
                ["snap-00000000000000000030".to_string(), format!("snap-{expected_older:020}")]
            );
            let mut expected = vec!["LOCK".to_string(), "MANIFEST".to_string()];
            expected.extend(listed.iter().rev().cloned());
            assert_eq!(names_in(dir.path()), expected, "{step}");
        }
    }
}

#[test]
fn first_publish_stopped_after_each_step_leaves_nothing_or_the_snapshot() {
    let state = Sample::generate(4, 1);
    for step in PublishStep::ALL {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SnapshotStore::open(dir.path()).unwrap();
            let _ = store.publish_with_hook(&state, 1, 1, &small_options(), &mut stop_after(step));
        }
        let store = SnapshotStore::open_read_only(dir.path());
        match store.load::<Sample>().unwrap() {
            None => assert!(
                PublishStep::ALL.iter().position(|s| *s == step)
                    < PublishStep::ALL.iter().position(|s| *s == PublishStep::ManifestRenamed),
                "{step}"
            ),
            Some((back, v)) => {
                assert_eq!(v.info.lsn, 1);
                assert!(back.same_as(&state), "{step}");
            }
        }
    }
}

#[test]
fn a_hook_sees_every_step_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let mut seen = Vec::new();
    store
        .publish_with_hook(&Sample::generate(3, 1), 1, 1, &small_options(), &mut |s| {
            seen.push(s);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, PublishStep::ALL);
}
