//! `orderlog tail` and `orderlog consumers`: durable events from an LSN, a time or a
//! consumer's position, filters, JSON lines, the snapshot standing in for a compacted
//! log, following a live store, and bad input.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use orderlog_store::{Event, Order, OrderStatus, OrderStore, StoreOptions};

use crate::support::{arg, bin, run};

fn create(id: u64, ts: u64) -> Event {
    let order = Order::builder(id).customer(id % 5).product(3).quantity(1).unit_price(4.0);
    Event::create(order.build().unwrap()).stamped(ts)
}

/// A closed store of 40 batches (LSN k creates order k, stamped 1,000 + k), with a
/// consumer at LSN 25.
fn store(dir: &std::path::Path) {
    let store = OrderStore::open(dir, StoreOptions::for_tests()).unwrap();
    for id in 1..=40 {
        store.apply(create(id, 1_000 + id)).unwrap();
    }
    store.consumer("relay").unwrap().ack(25).unwrap();
    store.close().unwrap();
}

fn lsns(lines: &[serde_json::Value]) -> Vec<u64> {
    lines.iter().map(|l| l["lsn"].as_u64().unwrap()).collect()
}

#[test]
fn tail_prints_durable_events_from_an_lsn_a_time_or_a_consumer() {
    let tmp = tempfile::tempdir().unwrap();
    let d = arg(tmp.path());
    store(tmp.path());
    assert_eq!(lsns(&run(&["tail", &d, "--json"]).json_lines()), (1..=40).collect::<Vec<_>>());
    assert_eq!(
        lsns(&run(&["tail", &d, "--json", "--from-lsn", "38"]).json_lines()),
        vec![38, 39, 40]
    );
    // After the prefix with no event later than 1,037: from LSN 38.
    let from_time = run(&["tail", &d, "--json", "--from-time", "1037"]).json_lines();
    assert_eq!(lsns(&from_time), vec![38, 39, 40]);
    let from_consumer = run(&["tail", &d, "--json", "--consumer", "relay", "--limit", "2"]);
    assert_eq!(lsns(&from_consumer.json_lines()), vec![26, 27]);
    let filtered = run(&["tail", &d, "--json", "--order-id", "3,7", "--kind", "create"]);
    assert_eq!(lsns(&filtered.json_lines()), vec![3, 7]);
    assert!(run(&["tail", &d, "--from-lsn", "40"]).ok().contains("lsn=40 #0"));
    // The consumers, as a table and as JSON lines.
    let listed = run(&["consumers", &d, "--json"]).json_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["name"].as_str(), listed[0]["acked_lsn"].as_u64()),
        (Some("relay"), Some(25))
    );
    assert_eq!(listed[0]["lag_lsns"].as_u64(), Some(15));
    assert!(run(&["consumers", &d]).ok().contains("relay: acked LSN 25, 15 LSNs"));
    assert!(run(&["stats", &d]).ok().contains("consumer relay: acked LSN 25"));
    assert_eq!(
        run(&["stats", &d, "--json"]).json()["consumers"][0]["acked_lsn"].as_u64(),
        Some(25)
    );
}

#[test]
fn tail_refuses_bad_positions_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let d = arg(tmp.path());
    store(tmp.path());
    run(&["tail", &d, "--from-lsn", "42"]).fails(2, "past the log's end");
    run(&["tail", &d, "--consumer", "nobody"]).fails(2, "no consumer named \"nobody\"");
    run(&["tail", &d, "--kind", "refund"]).fails(2, "unknown event kind");
    run(&["tail", &d, "--from-lsn", "3", "--consumer", "relay"]).fails(2, "cannot be used with");
}

#[test]
fn a_damaged_consumer_file_is_named_and_hides_no_other() {
    let tmp = tempfile::tempdir().unwrap();
    let d = arg(tmp.path());
    store(tmp.path());
    {
        let store = OrderStore::open(tmp.path(), StoreOptions::for_tests()).unwrap();
        store.consumer("audit").unwrap().ack(3).unwrap();
        store.close().unwrap();
    }
    let file = tmp.path().join("consumers").join("relay.consumer");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[30] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let listed = run(&["consumers", &d]);
    listed.fails(1, "damaged consumer file");
    assert!(listed.stdout.contains("audit: acked LSN 3"), "{}", listed.stdout);
    assert!(listed.stdout.contains("relay.consumer") && listed.stdout.contains("offset 0"));
    let stats = run(&["stats", &d]);
    assert!(
        stats.ok().contains("consumer file DAMAGED") && stats.stdout.contains("consumer audit")
    );
    run(&["tail", &d, "--consumer", "relay"]).fails(2, "relay.consumer is damaged at offset 0");
    assert_eq!(
        lsns(&run(&["tail", &d, "--json", "--consumer", "audit", "--limit", "1"]).json_lines()),
        vec![4]
    );
}

#[test]
fn behind_the_compacted_log_a_snapshot_line_stands_in_unless_the_log_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let d = arg(tmp.path());
    let store = OrderStore::open(tmp.path(), StoreOptions::for_tests()).unwrap();
    for id in 1..=200 {
        store.apply(create(id, 1_000 + id)).unwrap();
    }
    let report = store.compact().unwrap();
    let first = store.stats().wal.first_lsn;
    assert!(first > 1, "{report:?}");
    store.close().unwrap();
    drop(store);
    let lines = run(&["tail", &d, "--json", "--from-lsn", "1"]).json_lines();
    assert_eq!(lines[0]["snapshot_lsn"].as_u64(), Some(report.to_lsn));
    assert_eq!(lines[1]["lsn"].as_u64(), Some(report.to_lsn + 1));
    assert_eq!(lines.len() as u64, 1 + 200 - report.to_lsn);
    run(&["tail", &d, "--from-lsn", "1", "--require-log"]).fails(2, "no longer holds LSN 1");
}

#[test]
fn tail_follows_a_live_store_and_prints_only_what_is_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let store = OrderStore::open(tmp.path(), StoreOptions::for_tests()).unwrap();
    store.apply(create(1, 1)).unwrap();
    let mut child = bin()
        .args(["tail", &arg(tmp.path()), "--json", "--follow", "--poll-ms", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for id in 2..=30 {
        store.apply(create(id, id)).unwrap();
        if id % 10 == 0 {
            store.apply(Event::set_status(id, OrderStatus::Confirmed)).unwrap();
        }
    }
    let mut seen = Vec::new();
    while seen.len() < 33 {
        let line = lines.next().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let lsn = v["lsn"].as_u64().unwrap();
        assert!(lsn <= store.durable_lsn(), "LSN {lsn} printed before it was durable");
        seen.push(lsn);
    }
    assert_eq!(seen, (1..=33).collect::<Vec<_>>());
    child.kill().unwrap();
    child.wait().unwrap();
}
