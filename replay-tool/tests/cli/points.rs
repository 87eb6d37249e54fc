//! One answer for one point: the store's own analytics (`as_of_point`), the offline fold
//! (`OfflineStore::fold_until`) and the tool (`orderlog sql --as-of-lsn/--as-of-time`)
//! give the same orders for the same LSN or time, and refuse the same unreachable
//! points, before and after the log is truncated behind a snapshot.

use std::path::Path;

use orderlog_store::{
    Event, FoldTarget, OfflineStore, Order, OrderState, OrderStatus, OrderStore, RecoveryMode,
    StoreError, StoreOptions,
};

use crate::support::{arg, run};

/// Event times: batch `i` is stamped `T0 + 10 * i` ms.
const T0: u64 = 1_700_000_000_000;

const SUMMARY: &str = "SELECT count(*) AS n, coalesce(sum(quantity), 0)::BIGINT AS quantity, \
                       coalesce(sum(version), 0)::BIGINT AS versions FROM orders";

fn options() -> StoreOptions {
    let mut options = StoreOptions::for_tests();
    options.compaction.snapshot.keep_last = 1;
    options
}

/// `(orders, sum of quantities, sum of versions)` of a state.
fn summary_of(state: &OrderState) -> (u64, u64, u64) {
    let orders = state.orders();
    let quantity: u64 = orders.iter().map(|o| u64::from(o.quantity)).sum();
    let versions: u64 =
        orders.iter().map(|o| u64::from(state.get(o.order_id).map_or(0, |(_, v)| v))).sum();
    (orders.len() as u64, quantity, versions)
}

fn summary_json(json: &serde_json::Value) -> (u64, u64, u64) {
    let field = |k: &str| json[0][k].as_u64().unwrap_or_else(|| panic!("{k} in {json}"));
    (field("n"), field("quantity"), field("versions"))
}

/// Applies batch `i` (creates for even `i` and the first four, a status change or an
/// amend of order `i - 2`, created two batches before, for the other odd `i`), stamped
/// `T0 + 10 i`.
fn apply(store: &OrderStore, i: u64) {
    let ts = T0 + 10 * i;
    let event = if i.is_multiple_of(2) || i < 4 {
        Event::create(
            Order::builder(i + 1)
                .customer(i % 5)
                .product(3)
                .quantity(1 + (i % 3) as u32)
                .unit_price(2.5)
                .build()
                .unwrap(),
        )
    } else if i % 4 == 1 {
        Event::set_status(i - 2, OrderStatus::Confirmed)
    } else {
        Event::amend(i - 2, Some(7), None)
    };
    store.apply(event.stamped(ts)).unwrap_or_else(|e| panic!("batch {i}: {e}"));
}

/// Checks every probe against the three readers; returns how many were reachable.
fn check_points(store: &OrderStore, dir: &Path, probes: &[FoldTarget]) -> usize {
    let offline = OfflineStore::open(dir, RecoveryMode::Strict).expect("offline open");
    let mut reachable = 0;
    for &target in probes {
        let flag = match target {
            FoldTarget::Lsn(lsn) => ["--as-of-lsn".to_owned(), lsn.to_string()],
            FoldTarget::TimeMs(ms) => ["--as-of-time".to_owned(), ms.to_string()],
            _ => unreachable!("two kinds of target"),
        };
        let tool = run(&["sql", &arg(dir), SUMMARY, "--json", &flag[0], &flag[1]]);
        match (store.as_of_point(target), offline.fold_until(target)) {
            (Ok(view), Ok((state, lsn))) => {
                reachable += 1;
                assert_eq!(view.info().lsn, lsn, "{target}: store and offline fold stop apart");
                let from_store = summary_json(&view.analytics_query(SUMMARY).expect("query"));
                assert_eq!(from_store, summary_of(&state), "{target}: store vs offline");
                assert_eq!(summary_json(&tool.json()), from_store, "{target}: tool vs store");
            }
            (
                Err(StoreError::Unreachable { why: a, .. }),
                Err(StoreError::Unreachable { why: b, .. }),
            ) => {
                assert_eq!(a, b, "{target}: the store and the offline fold give other reasons");
                tool.fails(2, "cannot reach");
            }
            (store_says, offline_says) => panic!(
                "{target}: the store says {:?}, the offline fold {:?}",
                store_says.map(|v| v.info().lsn),
                offline_says.map(|(_, lsn)| lsn)
            ),
        }
    }
    reachable
}

#[test]
fn points_give_one_answer_from_the_store_the_offline_fold_and_the_tool() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    let store = OrderStore::open(&dir, options()).expect("open");
    for i in 0..120 {
        apply(&store, i);
    }
    let last = store.last_lsn();
    let probes = |last: u64| -> Vec<FoldTarget> {
        let mut p: Vec<FoldTarget> =
            [0, 1, 2, last / 3, last / 2, last - 1, last, last + 1].map(FoldTarget::Lsn).to_vec();
        p.extend(
            [0, 5, 10 * (last / 2) + 5, 10 * last, 10 * last + 1_000]
                .map(|d| FoldTarget::TimeMs(T0 + d)),
        );
        p.push(FoldTarget::TimeMs(T0 - 1));
        p
    };

    // Before any compaction: the whole log, every point but the future one reachable.
    let before = probes(last);
    assert_eq!(check_points(&store, &dir, &before), before.len() - 1);

    // One snapshot, the log truncated behind it (keep_last = 1: the first retained LSN is
    // the one after the snapshot's).
    let report = store.compact().expect("compact");
    assert!(report.segments_removed > 0, "{report:?}");
    for i in 120..160 {
        apply(&store, i);
    }
    let snapshot = report.to_lsn;
    let offline = OfflineStore::open(&dir, RecoveryMode::Strict).expect("offline");
    assert_eq!(offline.log().first_lsn(), snapshot + 1, "truncated right behind the snapshot");
    let listed = offline.snapshot_list().expect("list");
    assert_eq!(listed[0].newest_event_ms, Some(T0 + 10 * (snapshot - 1)), "{listed:?}");
    let last = store.last_lsn();
    let mut after = probes(last);
    // The snapshot's own time: before the retained log, reachable only through the
    // snapshot's recorded newest event time.
    after.push(FoldTarget::TimeMs(T0 + 10 * (snapshot - 1) + 5));
    after.push(FoldTarget::Lsn(snapshot));
    after.push(FoldTarget::Lsn(snapshot + 1));
    let reachable = check_points(&store, &dir, &after);
    // Unreachable now: LSNs 1, 2, last/3 (below the snapshot), the future LSN, and the
    // times before the snapshot's newest event (T0 - 1, T0, T0 + 5).
    assert_eq!(reachable, after.len() - 7, "{after:?}");
    let at_snapshot_time = store
        .as_of_point(FoldTarget::TimeMs(T0 + 10 * (snapshot - 1) + 5))
        .expect("the snapshot's time");
    assert_eq!(at_snapshot_time.info().lsn, snapshot);
    assert_eq!(at_snapshot_time.info().snapshot_lsn, snapshot);
}
