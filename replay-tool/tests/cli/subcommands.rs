//! Each subcommand on generated data; text and JSON checked against the store's own
//! figures (the store opened after the read-only subcommands ran).

use std::collections::BTreeMap;

use orderlog_store::{OrderStatus, OrderStore, StoreOptions};

use crate::support::{arg, generated, image, run};

fn status_counts(store: &OrderStore) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> =
        OrderStatus::ALL.iter().map(|s| (s.name().to_string(), 0)).collect();
    for o in store.query(|_| true) {
        *counts.get_mut(o.status.name()).expect("status") += 1;
    }
    counts
}

#[test]
fn stats_dump_and_verify_agree_with_the_store() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    let summary = generated(&dir, 12_000, 36_000, 3);
    let before = image(&dir);

    let stats = run(&["stats", &arg(&dir), "--json"]).json();
    let text = run(&["stats", &arg(&dir)]);
    let dump = run(&["dump", &arg(&dir), "--json"]).json_lines();
    let verify = run(&["verify", &arg(&dir), "--json"]).json();
    let verify_text = run(&["verify", &arg(&dir)]);
    assert_eq!(image(&dir), before, "a read-only subcommand changed the directory");

    let store = OrderStore::open(&dir, StoreOptions::default()).expect("open");
    let log = &stats["log"];
    assert_eq!(log["first_lsn"], 1);
    assert_eq!(log["last_lsn"], store.last_lsn());
    assert_eq!(log["events"], summary["events"]);
    assert!(summary["events"].as_u64().unwrap() > 30_000, "{summary}");
    assert_eq!(log["events_by_kind"]["create"], 12_000);
    assert!(log["segments"].as_u64().expect("segments") >= 2, "1 MiB segments: several");
    assert_eq!(stats["state"]["orders"], store.len());
    let by_status: BTreeMap<String, u64> =
        serde_json::from_value(stats["state"]["orders_by_status"].clone()).expect("statuses");
    assert_eq!(by_status, status_counts(&store));
    assert!(text.ok().contains(&format!("orders at LSN {}", store.last_lsn())), "{}", text.stdout);

    assert_eq!(Some(dump.len() as u64), summary["events"].as_u64(), "one line per event");
    assert_eq!(dump.last().expect("lines")["lsn"], store.last_lsn());
    let creates = dump.iter().filter(|e| e["kind"] == "create").count();
    assert_eq!(creates, 12_000);

    assert_eq!(verify["ok"], true);
    assert_eq!(verify["orders"], store.len());
    assert_eq!(verify["findings"].as_array().expect("findings").len(), 0);
    assert!(verify_text.ok().contains("verdict: OK"), "{}", verify_text.stdout);
}

#[test]
fn dump_filters_by_lsn_time_order_and_limit() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    generated(&dir, 500, 3000, 4);
    let all = run(&["dump", &arg(&dir), "--json"]).json_lines();
    let d = arg(&dir);

    let limited = run(&["dump", &d, "--json", "--limit", "7"]).json_lines();
    assert_eq!(limited, all[..7]);

    let ranged = run(&["dump", &d, "--json", "--from-lsn", "10", "--to-lsn", "20"]).json_lines();
    let expected: Vec<_> =
        all.iter().filter(|e| (10..=20).contains(&e["lsn"].as_u64().unwrap())).cloned().collect();
    assert_eq!(ranged, expected);

    let id = all[40]["order_id"].as_u64().unwrap();
    let of_order = run(&["dump", &d, "--json", "--order-id", &id.to_string()]).json_lines();
    let expected: Vec<_> = all.iter().filter(|e| e["order_id"] == id).cloned().collect();
    assert!(!expected.is_empty());
    assert_eq!(of_order, expected);

    let (t0, t1) =
        (all[100]["timestamp_ms"].as_u64().unwrap(), all[200]["timestamp_ms"].as_u64().unwrap());
    let timed =
        run(&["dump", &d, "--json", "--from-time", &t0.to_string(), "--to-time", &t1.to_string()])
            .json_lines();
    let expected: Vec<_> = all
        .iter()
        .filter(|e| (t0..=t1).contains(&e["timestamp_ms"].as_u64().unwrap()))
        .cloned()
        .collect();
    assert_eq!(timed, expected);
    let rfc = all[100]["time"].as_str().unwrap();
    let from_rfc = run(&["dump", &d, "--json", "--from-time", rfc, "--limit", "1"]).json_lines();
    assert!(from_rfc[0]["timestamp_ms"].as_u64().unwrap() >= t0);

    let text = run(&["dump", &d, "--limit", "3"]);
    let lines: Vec<&str> = text.ok().lines().collect();
    assert!(lines[0].starts_with("frame lsn=1 "), "{}", text.stdout);
    assert_eq!(lines.iter().filter(|l| l.starts_with("  lsn=1 ")).count(), 3);
    let inspect = run(&["inspect", &d, "--limit", "3"]);
    assert_eq!(inspect.ok(), text.stdout, "inspect is dump");
}

#[test]
fn generate_is_reproducible_from_its_seed() {
    let tmp = tempfile::tempdir().expect("dir");
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    generated(&a, 300, 1500, 9);
    generated(&b, 300, 1500, 9);
    generated(&c, 300, 1500, 10);
    let dump = |d: &std::path::Path| run(&["dump", &arg(d), "--json"]).ok().to_owned();
    assert_eq!(dump(&a), dump(&b));
    assert_ne!(dump(&a), dump(&c));
    let summary = run(&[
        "generate",
        &arg(&tmp.path().join("d")),
        "--orders",
        "100",
        "--events",
        "400",
        "--writers",
        "3",
        "--sync",
        "interval",
        "--json",
    ])
    .json();
    assert_eq!(summary["orders"], 100);
    assert_eq!(summary["events"], 400);
}

#[test]
fn compact_folds_sealed_segments_and_the_store_reopens_the_same() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    generated(&dir, 12_000, 36_000, 5);
    let before = run(&["stats", &arg(&dir), "--json"]).json();
    let report = run(&["compact", &arg(&dir), "--json"]).json();
    assert!(report["to_lsn"].as_u64().unwrap() > 0, "{report}");
    assert!(report["segments_removed"].as_u64().unwrap() >= 1, "{report}");
    let after = run(&["stats", &arg(&dir), "--json"]).json();
    assert_eq!(after["state"], {
        let mut s = before["state"].clone();
        s["from_snapshot_lsn"] = report["to_lsn"].clone();
        s
    });
    assert_eq!(after["snapshots"][0]["lsn"], report["to_lsn"]);
    assert!(run(&["verify", &arg(&dir)]).ok().contains("verdict: OK"));
    let store = OrderStore::open(&dir, StoreOptions::default()).expect("open");
    assert_eq!(after["state"]["orders"], store.len());
    assert_eq!(store.open_report().snapshot_lsn, report["to_lsn"].as_u64().unwrap());
}

#[test]
fn write_subcommands_refuse_a_live_store_and_read_ones_work() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    generated(&dir, 200, 800, 6);
    let store = OrderStore::open(&dir, StoreOptions::default()).expect("open");
    let pid = std::process::id().to_string();
    run(&["compact", &arg(&dir)]).fails(2, "in use by a live store");
    run(&["generate", &arg(&dir)]).fails(2, &pid);
    let stats = run(&["stats", &arg(&dir), "--json"]).json();
    assert_eq!(stats["live_writer_pid"], std::process::id());
    assert_eq!(stats["state"]["orders"], store.len());
    assert!(run(&["verify", &arg(&dir)]).ok().contains("a live store holds"));
    store.close().expect("close");
}

#[test]
fn dump_follow_sees_frames_a_live_writer_appends() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    generated(&dir, 10, 20, 7);
    let store = OrderStore::open(&dir, StoreOptions::default()).expect("open");
    let last = store.last_lsn();
    let mut child = crate::support::bin()
        .args(["dump", &arg(&dir), "--json", "--follow", "--poll-ms", "20"])
        .args(["--from-lsn", &(last + 1).to_string(), "--to-lsn", &(last + 3).to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lsns = Vec::new();
    for i in 0..3 {
        let order = orderlog_store::Order::builder(1_000_000 + i)
            .customer(1)
            .product(1)
            .quantity(1)
            .unit_price(1.0)
            .build()
            .unwrap();
        lsns.push(store.apply(orderlog_store::Event::create(order)).expect("apply"));
    }
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<serde_json::Value> = BufReader::new(stdout)
        .lines()
        .map(|l| serde_json::from_str(&l.expect("line")).expect("json"))
        .collect();
    assert!(child.wait().expect("wait").success(), "--to-lsn ends the follow");
    let got: Vec<u64> = lines.iter().map(|l| l["lsn"].as_u64().unwrap()).collect();
    assert_eq!(got, lsns);
}
