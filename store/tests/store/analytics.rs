//! DuckDB analytics: the reports equal the same aggregates computed in Rust from
//! the state, on the snapshot alone, on snapshot + tail, after amends and erasures, and
//! back in time; user queries cannot write; identifiers are checked.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, UInt8Type, UInt32Type, UInt64Type};
use orderlog_store::analytics::{AnalyticsOptions, Tail, validate_identifier};
use orderlog_store::{
    Analytics, AnalyticsError, Event, FoldTarget, Lsn, Order, OrderState, OrderStatus, OrderStore,
    PaymentMethod, StoreError, StoreOptions, Unreachable, ViewKind,
};

fn options() -> StoreOptions {
    let mut options = StoreOptions::for_tests();
    options.compaction.retain_segments = 1_000;
    options
}

/// Every batch applied, by LSN: the reference for any point in time.
#[derive(Default)]
struct History(Vec<(Lsn, Vec<Event>)>);

impl History {
    fn apply(&mut self, store: &OrderStore, batch: Vec<Event>) {
        let lsn = store.apply_batch(&batch).expect("apply");
        self.0.push((lsn, batch));
    }

    fn state_at(&self, lsn: Lsn) -> OrderState {
        let mut state = OrderState::new();
        for (_, batch) in self.0.iter().filter(|(l, _)| *l <= lsn) {
            state.apply_batch(batch).expect("reference fold");
        }
        state
    }
}

/// Orders spread over customers, products, payment methods and months (one every 3 days).
fn create(history: &mut History, store: &OrderStore, ids: std::ops::Range<u64>) {
    for chunk in ids.collect::<Vec<_>>().chunks(16) {
        let batch = chunk
            .iter()
            .map(|&id| {
                let mut order = Order::builder(id)
                    .customer(id % 13)
                    .product(id % 7)
                    .quantity(1 + (id % 4) as u32)
                    .unit_price(5.0 + (id % 11) as f64 * 1.25)
                    .build()
                    .unwrap()
                    .with_timestamp(1_700_000_000 + id * 3 * 86_400);
                order.payment_method = PaymentMethod::ALL[(id % 5) as usize];
                Event::create(order)
            })
            .collect();
        history.apply(store, batch);
    }
}

/// Moves orders through their lifecycle, amends some, cancels and erases others.
fn mutate(history: &mut History, store: &OrderStore, ids: std::ops::Range<u64>) {
    for id in ids {
        let mut batch = Vec::new();
        match id % 6 {
            0 => batch.push(Event::amend(id, Some(9), Some(2.5))),
            1 => batch.push(Event::cancel(id)),
            2 => batch.push(Event::erase(id)),
            3 => {
                batch.push(Event::set_status(id, OrderStatus::Confirmed));
                batch.push(Event::set_status(id, OrderStatus::Shipped));
                batch.push(Event::set_status(id, OrderStatus::Delivered));
            }
            4 => batch.push(Event::change_payment(id, PaymentMethod::BankTransfer)),
            _ => batch.push(Event::set_status(id, OrderStatus::Confirmed)),
        }
        history.apply(store, batch);
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// (status -> (orders, revenue)) from the state.
fn revenue_by_status(state: &OrderState) -> BTreeMap<u8, (u64, f64)> {
    let mut out = BTreeMap::new();
    for o in state.orders().iter() {
        let e = out.entry(o.status as u8).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += o.total_amount();
    }
    out
}

/// The top `limit` customers by total spent, ties by id.
fn top_customers(state: &OrderState, limit: usize) -> Vec<(u64, u64, f64)> {
    let mut per: BTreeMap<u64, (u64, f64)> = BTreeMap::new();
    for o in state.orders().iter() {
        let e = per.entry(o.customer_id).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += o.total_amount();
    }
    let mut rows: Vec<(u64, u64, f64)> = per.into_iter().map(|(c, (n, s))| (c, n, s)).collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    rows.truncate(limit);
    rows
}

/// The UTC calendar (year, month) of a Unix time in seconds.
fn year_month(secs: u64) -> (i32, u32) {
    // Days to civil date (proleptic Gregorian), after H. Hinnant's algorithm.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month)
}

fn monthly(state: &OrderState) -> BTreeMap<(i32, u32), (u64, f64)> {
    let mut out = BTreeMap::new();
    for o in state.orders().iter() {
        let e = out.entry(year_month(o.order_timestamp)).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += o.total_amount();
    }
    out
}

/// Every report of `analytics` equals the Rust aggregate over `state`, and so does every
/// row (id, version, total, status).
fn assert_matches(analytics: &Analytics, state: &OrderState) {
    let expected = revenue_by_status(state);
    let got = analytics.revenue_by_status().expect("revenue_by_status");
    assert_eq!(got.len(), expected.len(), "{got:?} vs {expected:?}");
    for row in &got {
        let (n, sum) = expected[&(row.status as u8)];
        assert_eq!(row.orders, n, "{row:?}");
        assert!(close(row.revenue, sum), "{row:?} vs {sum}");
    }
    assert!(got.windows(2).all(|w| w[0].revenue >= w[1].revenue), "largest first");

    for limit in [1, 5, 100] {
        let expected = top_customers(state, limit);
        let got = analytics.top_customers(limit).expect("top_customers");
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!((g.customer_id, g.order_count), (e.0, e.1));
            assert!(close(g.total_spent, e.2));
        }
    }

    let expected = monthly(state);
    let got = analytics.monthly_trends().expect("monthly_trends");
    assert_eq!(got.len(), expected.len());
    for (g, ((y, m), (n, sum))) in got.iter().zip(&expected) {
        assert_eq!((g.year, g.month, g.order_count), (*y, *m, *n));
        assert!(close(g.revenue, *sum) && close(g.avg_order_value, sum / *n as f64));
    }

    let mut want: Vec<(u64, u32, f64, u8)> = state
        .orders()
        .iter()
        .zip(state.versions())
        .map(|(o, v)| (o.order_id, *v, o.total_amount(), o.status as u8))
        .collect();
    want.sort_by_key(|r| r.0);
    let batches = analytics
        .query_sql(
            "SELECT order_id, version, total_amount, status FROM orders_raw ORDER BY order_id",
        )
        .expect("rows");
    let mut rows = Vec::new();
    for b in &batches {
        let ids = b.column(0).as_primitive::<UInt64Type>();
        let versions = b.column(1).as_primitive::<UInt32Type>();
        let totals = b.column(2).as_primitive::<Float64Type>();
        let statuses = b.column(3).as_primitive::<UInt8Type>();
        for i in 0..b.num_rows() {
            rows.push((ids.value(i), versions.value(i), totals.value(i), statuses.value(i)));
        }
    }
    assert_eq!(rows, want);
}

#[test]
fn analytics_reports_equal_rust_aggregates_on_snapshot_tail_and_after_erasure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), options()).expect("open");
    let mut history = History::default();

    // No snapshot yet: everything comes from the tail.
    create(&mut history, &store, 1..400);
    let fresh = store.analytics().expect("analytics");
    assert_eq!((fresh.info().snapshot_lsn, fresh.info().kind), (0, ViewKind::Fresh));
    assert_matches(&fresh, &store.state());
    let empty = store.analytics_snapshot().expect("snapshot view");
    assert_eq!(empty.revenue_by_status().expect("empty"), vec![]);

    let report = store.compact().expect("compact");
    assert!(report.to_lsn > 0);
    mutate(&mut history, &store, 1..300);
    create(&mut history, &store, 400..450);

    let snapshot = store.analytics_snapshot().expect("snapshot view");
    assert_eq!(snapshot.info().snapshot_lsn, report.to_lsn);
    assert_eq!(snapshot.info().lsn, report.to_lsn);
    assert_matches(&snapshot, &history.state_at(report.to_lsn));

    let fresh = store.analytics().expect("analytics");
    let info = fresh.info().clone();
    assert_eq!((info.snapshot_lsn, info.lsn), (report.to_lsn, store.last_lsn()));
    assert!(info.touched > info.tail_rows && info.tail_rows > 0, "{info:?}");
    assert_matches(&fresh, &store.state());
    assert_eq!(store.state(), history.state_at(store.last_lsn()));
}

#[test]
fn analytics_as_of_equals_the_log_replayed_to_that_lsn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), options()).expect("open");
    let mut history = History::default();
    create(&mut history, &store, 1..300);
    let first = store.compact().expect("compact").to_lsn;
    mutate(&mut history, &store, 1..150);
    let second = store.compact().expect("compact").to_lsn;
    mutate(&mut history, &store, 150..300);
    let last = store.last_lsn();

    for lsn in [0, 1, first / 2, first, first + 3, second, (second + last) / 2, last] {
        let view = store.as_of(lsn).expect("as_of");
        assert_eq!((view.info().lsn, view.info().kind), (lsn, ViewKind::AsOf));
        assert!(view.info().snapshot_lsn <= lsn);
        assert_matches(&view, &history.state_at(lsn));
    }
    assert!(matches!(
        store.as_of(last + 1),
        Err(StoreError::Unreachable {
            target: FoldTarget::Lsn(target),
            why: Unreachable::Future { last: l },
            ..
        }) if target == last + 1 && l == last
    ));

    // Time travel by event time: every event so far is older than now.
    let now = std::time::SystemTime::now();
    assert_eq!(store.lsn_at_time(now).expect("lsn_at_time"), Some(last));
    assert_eq!(store.lsn_at_time(std::time::UNIX_EPOCH).expect("epoch"), Some(0));
    assert_matches(&store.as_of_time(now).expect("as_of_time"), &store.state());
}

#[test]
fn analytics_as_of_before_the_retained_log_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options();
    opts.compaction.retain_segments = 0;
    opts.compaction.snapshot.keep_last = 1;
    let store = OrderStore::open(dir.path(), opts).expect("open");
    let mut history = History::default();
    create(&mut history, &store, 1..400);
    let report = store.compact().expect("compact");
    assert!(report.segments_removed > 0, "{report:?}");
    mutate(&mut history, &store, 1..50);
    match store.as_of(1) {
        Err(StoreError::Unreachable {
            target: FoldTarget::Lsn(1),
            why: Unreachable::NoBase,
            log_first_lsn,
            ..
        }) => {
            assert!(log_first_lsn > 2)
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // From the snapshot on, it still works.
    assert_matches(&store.as_of(report.to_lsn).expect("as_of"), &history.state_at(report.to_lsn));
}

#[test]
fn analytics_names_enums_answers_json_and_refuses_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = OrderStore::open(dir.path(), options()).expect("open");
    let mut history = History::default();
    create(&mut history, &store, 1..200);
    store.compact().expect("compact");
    mutate(&mut history, &store, 1..100);
    let analytics = store.analytics().expect("analytics");
    let state = store.state();

    // Enum names, as a user's SQL names them.
    let delivered = state.orders().iter().filter(|o| o.status == OrderStatus::Delivered).count();
    let batches = analytics
        .query_sql("SELECT count(*) AS n FROM orders WHERE status = 'Delivered';")
        .expect("enum filter");
    assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), delivered as i64);
    let json = analytics
        .analytics_query(
            "SELECT payment_method, count(*) AS n FROM orders GROUP BY ALL ORDER BY payment_method",
        )
        .expect("json");
    let rows = json.as_array().expect("array");
    assert_eq!(rows.len(), PaymentMethod::ALL.len());
    assert_eq!(rows[0]["payment_method"], "CreditCard");
    let total: u64 = rows.iter().map(|r| r["n"].as_u64().expect("count")).sum();
    assert_eq!(total, state.len() as u64);
    assert_eq!(
        analytics.analytics_query("SELECT 1 AS x WHERE false").expect("empty"),
        serde_json::json!([])
    );
    let empty = analytics.query_sql("SELECT order_id FROM orders WHERE false").expect("empty");
    assert_eq!((empty.len(), empty[0].num_rows(), empty[0].num_columns()), (1, 0, 1));

    // Nothing that writes gets through; the store is unaffected.
    let target = dir.path().join("snapshots").join("stolen.csv");
    let writes = [
        format!("COPY orders TO '{}'", target.display()),
        format!("SELECT 1; COPY orders TO '{}'", target.display()),
        "ATTACH 'x.duckdb' AS x".to_owned(),
        "CREATE TABLE t AS SELECT 1".to_owned(),
        "INSERT INTO order_statuses VALUES (9, 'Pending')".to_owned(),
        "SET threads = 1".to_owned(),
        "DROP VIEW orders".to_owned(),
        "x) ; COPY orders TO 'y' ; SELECT (1".to_owned(),
    ];
    for sql in &writes {
        let err = analytics.query_sql(sql).expect_err(sql);
        assert!(
            matches!(err, AnalyticsError::Query { .. } | AnalyticsError::NotAQuery { .. }),
            "{sql}: {err}"
        );
    }
    assert!(!target.exists());
    assert_eq!(analytics.query_sql("SELECT count(*) FROM orders").expect("still there").len(), 1);
    match analytics.query_sql("SELECT no_such_column FROM orders") {
        Err(AnalyticsError::Query { message, .. }) => {
            assert!(message.contains("no_such_column"), "{message}")
        }
        other => panic!("expected a query error, got {other:?}"),
    }
    store.apply(Event::set_status(150, OrderStatus::Confirmed)).expect("store still writes");

    for bad in ["orders; DROP", "a\"b", "1x", ""] {
        assert!(matches!(validate_identifier(bad), Err(AnalyticsError::InvalidIdentifier { .. })));
    }
}

#[test]
fn analytics_over_a_state_without_a_store() {
    let mut state = OrderState::new();
    let batch: Vec<Event> = (1..=50)
        .map(|id| {
            Event::create(
                Order::builder(id)
                    .customer(id % 3)
                    .product(1)
                    .quantity(1)
                    .unit_price(id as f64)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    state.apply_batch(&batch).expect("fold");
    let tail = Tail::gather(&state, 1..=60).expect("tail");
    let view =
        Analytics::over(None, tail, 1, ViewKind::AsOf, &AnalyticsOptions::default()).expect("view");
    assert_eq!(view.info().tail_rows, 50);
    assert_eq!(view.info().touched, 60);
    assert_matches(&view, &state);
    let n = view.query_sql("SELECT count(*) FROM orders").expect("count");
    assert_eq!(n[0].column(0).as_primitive::<Int64Type>().value(0), 50);
    assert!(n[0].column(0).null_count() == 0);
}
