//! `orderlog sql`: the same answers as the store's own analytics views, in every output
//! shape, read-only.

use std::path::Path;

use orderlog_store::{Analytics, OrderStore, StoreOptions};

use crate::support::{arg, copy_tree, generated, image, run};

/// A store with a snapshot and a log tail after it; returns its directory.
fn store_with_tail(root: &Path) -> std::path::PathBuf {
    let dir = root.join("store");
    generated(&dir, 12_000, 36_000, 11);
    let report = run(&["compact", &arg(&dir), "--json"]).json();
    assert!(report["to_lsn"].as_u64().unwrap() > 0, "{report}");
    dir
}

/// `(count, sum of total_amount)` from the store's own view.
fn count_and_sum(analytics: &Analytics) -> (u64, f64) {
    let json = analytics
        .analytics_query("SELECT count(*) AS n, sum(total_amount) AS revenue FROM orders")
        .expect("query");
    (json[0]["n"].as_u64().unwrap(), json[0]["revenue"].as_f64().unwrap())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

const TOTALS: &str = "SELECT count(*) AS n, sum(total_amount) AS revenue FROM orders";
const BY_STATUS: &str = "SELECT status, count(*) AS orders, sum(total_amount) AS revenue \
                         FROM orders GROUP BY status ORDER BY revenue DESC, status";

#[test]
fn sql_answers_as_the_store_does_now_and_as_of_an_lsn() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = store_with_tail(tmp.path());
    let before = image(&dir);

    let totals = run(&["sql", &arg(&dir), TOTALS, "--json"]).json();
    let by_status = run(&["sql", &arg(&dir), BY_STATUS, "--json"]).json();
    let stats = run(&["stats", &arg(&dir), "--json"]).json();
    let first_lsn = stats["log"]["first_lsn"].as_u64().unwrap();
    let last_lsn = stats["log"]["last_lsn"].as_u64().unwrap();
    assert!(first_lsn > 1 && last_lsn > first_lsn + 10, "{stats}");
    let earlier = first_lsn + (last_lsn - first_lsn) / 2;
    let as_of =
        run(&["sql", &arg(&dir), TOTALS, "--json", "--as-of-lsn", &earlier.to_string()]).json();
    assert_eq!(image(&dir), before, "sql wrote into the store directory");

    // The store's own views, on a copy (opening a store writes).
    let copy = tmp.path().join("copy");
    copy_tree(&dir, &copy);
    let store = OrderStore::open(&copy, StoreOptions::default()).expect("open");
    let fresh = store.analytics().expect("analytics");
    assert_eq!(fresh.info().lsn, last_lsn);
    assert!(fresh.info().snapshot_lsn > 0 && fresh.info().touched > 0, "{:?}", fresh.info());
    let (n, revenue) = count_and_sum(&fresh);
    assert_eq!(n, store.len() as u64);
    assert_eq!(totals[0]["n"].as_u64().unwrap(), n, "{totals}");
    assert!(close(totals[0]["revenue"].as_f64().unwrap(), revenue), "{totals} vs {revenue}");

    let report = fresh.revenue_by_status().expect("report");
    let rows = by_status.as_array().unwrap();
    assert_eq!(rows.len(), report.len(), "{by_status}");
    for (row, want) in rows.iter().zip(&report) {
        assert_eq!(row["status"], want.status.name(), "{by_status}");
        assert_eq!(row["orders"].as_u64().unwrap(), want.orders);
        assert!(close(row["revenue"].as_f64().unwrap(), want.revenue), "{row} vs {want:?}");
    }

    let (n, revenue) = count_and_sum(&store.as_of(earlier).expect("as_of"));
    assert_eq!(as_of[0]["n"].as_u64().unwrap(), n, "{as_of}");
    assert!(close(as_of[0]["revenue"].as_f64().unwrap(), revenue), "{as_of} vs {revenue}");
    assert_ne!(as_of, totals, "the earlier LSN sees other orders");
}

#[test]
fn sql_prints_a_table_json_rows_and_csv() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = store_with_tail(tmp.path());
    let query = "SELECT status, count(*) AS orders FROM orders GROUP BY status ORDER BY status";
    let json = run(&["sql", &arg(&dir), query, "--json"]).json();
    let rows = json.as_array().expect("a JSON array");
    assert!(!rows.is_empty());
    for row in rows {
        let keys: Vec<&String> = row.as_object().expect("a row object").keys().collect();
        assert_eq!(keys, ["orders", "status"], "{row}");
    }

    let table = run(&["sql", &arg(&dir), query]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert_eq!(lines.len(), rows.len() + 3, "{}", table.stdout);
    assert!(lines[0].starts_with("status") && lines[0].contains("| orders"), "{}", table.stdout);
    assert!(lines[1].chars().all(|c| c == '-' || c == '+'), "{}", table.stdout);
    assert_eq!(lines[lines.len() - 1], format!("({} rows)", rows.len()));
    for (line, row) in lines[2..].iter().zip(rows) {
        let (status, orders) = line.split_once('|').expect("two columns");
        assert_eq!(status.trim(), row["status"].as_str().unwrap());
        assert_eq!(orders.trim(), row["orders"].to_string());
        assert_eq!(line.len(), lines[0].len().max(line.len()), "aligned");
    }

    let csv = run(&["sql", &arg(&dir), query, "--csv"]);
    let lines: Vec<&str> = csv.ok().lines().collect();
    assert_eq!(lines[0], "status,orders");
    assert_eq!(lines.len(), rows.len() + 1);
    for (line, row) in lines[1..].iter().zip(rows) {
        assert_eq!(*line, format!("{},{}", row["status"].as_str().unwrap(), row["orders"]));
    }

    // No rows: an empty array, and a table that says so.
    let none = "SELECT order_id FROM orders WHERE order_id = 0";
    assert_eq!(run(&["sql", &arg(&dir), none, "--json"]).json(), serde_json::json!([]));
    assert!(run(&["sql", &arg(&dir), none]).ok().ends_with("(0 rows)\n"));
    run(&["sql", &arg(&dir), none, "--json", "--csv"]).fails(2, "cannot be used with");
}

#[test]
fn sql_refuses_writes_bad_queries_and_non_stores_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = store_with_tail(tmp.path());
    let before = image(&dir);
    let target = tmp.path().join("leak.csv");
    let copy = format!("COPY orders TO '{}'", target.display());
    run(&["sql", &arg(&dir), &copy]).fails(2, "\"COPY\" does not start a query");
    let two = format!("SELECT 1; {copy}");
    run(&["sql", &arg(&dir), &two]).fails(2, "one statement only");
    let attach = format!("ATTACH '{}' AS x", tmp.path().join("x.db").display());
    run(&["sql", &arg(&dir), &attach]).fails(2, "\"ATTACH\" does not start a query");
    run(&["sql", &arg(&dir), "SELEC count(*) FROM orders"])
        .fails(2, "\"SELEC\" does not start a query");
    run(&["sql", &arg(&dir), "SELECT count(*) FRM orders"]).fails(2, "Parser Error");
    run(&["sql", &arg(&dir), "SELECT nope FROM orders"]).fails(2, "nope");
    run(&["sql", &arg(&dir), "SELECT 1", "--as-of-lsn", "999999999"]).fails(2, "beyond");
    assert!(!target.exists() && !tmp.path().join("x.db").exists());
    assert_eq!(image(&dir), before, "sql wrote into the store directory");

    let garbage = tmp.path().join("garbage");
    std::fs::create_dir_all(garbage.join("wal")).expect("mkdir");
    std::fs::write(garbage.join("wal").join("00000000000000000001.wal"), vec![0xAB; 4096])
        .expect("write");
    let before = image(&garbage);
    let result = run(&["sql", &arg(&garbage), "SELECT count(*) FROM orders"]);
    assert_eq!(result.code, 2, "{}", result.stderr);
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
    assert_eq!(image(&garbage), before);
    run(&["sql", &arg(&tmp.path().join("missing")), "SELECT 1"]).fails(2, "does not exist");
}

#[test]
fn a_small_demo_runs_the_reports_and_time_travel_and_sql_agrees() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("demo");
    let demo = run(&["demo", &arg(&dir), "--orders", "30000", "--events", "90000"]);
    let text = demo.ok();
    for needle in [
        "revenue_by_status (",
        "top_customers(5) (",
        "monthly_trends (",
        "time travel: as_of(LSN ",
        "analytics (DuckDB)  view ",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    // The fresh view's order count is the recovered store's.
    let now = text.lines().find(|l| l.trim_start().starts_with("now (LSN")).expect("now line");
    let orders: u64 = now
        .split("): ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .map(|n| n.replace(',', "").parse().expect("a count"))
        .expect("orders");
    let totals = run(&["sql", &arg(&dir), TOTALS, "--json"]).json();
    assert_eq!(totals[0]["n"].as_u64().unwrap(), orders, "{now}");
}

#[test]
fn sql_reads_the_stores_files_and_nothing_else_on_the_host() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = store_with_tail(tmp.path());
    let other = store_with_tail(&tmp.path().join("other"));
    let other_file = std::fs::read_dir(other.join("snapshots"))
        .expect("snapshots")
        .filter_map(|e| e.ok())
        .find(|e| e.path().is_dir())
        .map(|e| e.path().join("data.parquet"))
        .expect("a snapshot of the other store");
    assert!(other_file.exists(), "{}", other_file.display());
    let before = image(&dir);
    for query in [
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        "SELECT count(*) FROM glob('/etc/*')".to_owned(),
        "SELECT * FROM read_text('/etc/hostname')".to_owned(),
        format!("SELECT count(*) FROM read_parquet('{}')", other_file.display()),
        "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')".to_owned(),
    ] {
        run(&["sql", &arg(&dir), &query]).fails(2, "refused: the query reaches outside the store");
    }
    for statement in ["INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true"] {
        run(&["sql", &arg(&dir), statement]).fails(2, "does not start a query");
    }
    assert_eq!(image(&dir), before, "sql wrote into the store directory");
    // The store's own files stay readable.
    let n = run(&["sql", &arg(&dir), "SELECT count(*) AS n FROM snapshot_orders", "--json"]).json();
    assert!(n[0]["n"].as_u64().unwrap() > 0, "{n}");
}

#[test]
fn sql_limits_memory_threads_and_time() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = store_with_tail(tmp.path());
    let heavy = "SELECT count(*) FROM (SELECT DISTINCT range * 7 AS k FROM range(50000000))";
    run(&["sql", &arg(&dir), heavy, "--memory-limit", "64MiB", "--threads", "1"])
        .fails(2, "memory limit of 67108864 bytes");
    let endless = "SELECT sum(range % 7) FROM range(10000000000)";
    run(&["sql", &arg(&dir), endless, "--timeout", "300ms"]).fails(2, "time limit of 300ms");
    let settings = "SELECT current_setting('threads') AS threads, \
                    current_setting('memory_limit') AS memory, \
                    current_setting('temp_directory') AS temp";
    let json =
        run(&["sql", &arg(&dir), settings, "--threads", "1", "--memory-limit", "512MiB", "--json"])
            .json();
    assert_eq!(json[0]["threads"], 1, "{json}");
    assert_eq!(json[0]["memory"], "512.0 MiB", "{json}");
    assert_eq!(json[0]["temp"], "", "nothing spills by default: {json}");
    let spill = tmp.path().join("spill");
    let spill_settings = "SELECT current_setting('temp_directory') AS temp, \
                          current_setting('max_temp_directory_size') AS room";
    let json =
        run(&["sql", &arg(&dir), spill_settings, "--spill-dir", &arg(&spill), "--json"]).json();
    assert_eq!(json[0]["temp"], spill.to_string_lossy().as_ref(), "{json}");
    assert_eq!(json[0]["room"], "10.0 GiB", "{json}");
    let args = ["--spill-dir", &arg(&spill), "--spill-limit", "2GiB", "--json"];
    let json = run(&[&["sql", &arg(&dir), spill_settings][..], &args[..]].concat()).json();
    assert_eq!(json[0]["room"], "2.0 GiB", "{json}");
    run(&["sql", &arg(&dir), "SELECT 1", "--spill-limit", "2GiB"]).fails(2, "--spill-dir");
    // A result past --max-result stops with an error; an aggregate of the same rows fits.
    run(&["sql", &arg(&dir), "SELECT range FROM range(1000000)", "--max-result", "1MiB"])
        .fails(2, "the bound for one result");
    let n = run(&["sql", &arg(&dir), "SELECT count(*) AS n FROM range(1000000)", "--json"]).json();
    assert_eq!(n[0]["n"], 1_000_000);
    run(&["sql", &arg(&dir), "SELECT 1", "--memory-limit", "lots"]).fails(2, "bad size");
    run(&["sql", &arg(&dir), "SELECT 1", "--timeout", "30"]).fails(2, "bad duration");
    run(&["sql", &arg(&dir), "SELECT 1", "--threads", "0"]).fails(2, "--threads");
    run(&["sql", &arg(&dir), "SELECT 1", "--memory-limit", "1MiB"]).fails(2, "below the least");
}

#[test]
fn sql_shows_times_and_every_type_in_each_format() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = store_with_tail(tmp.path());
    // The epoch seconds of the orders as times: the most natural query on them.
    let placed = "SELECT order_id, to_timestamp(order_timestamp) AS placed FROM orders \
                  ORDER BY order_id LIMIT 2";
    let table = run(&["sql", &arg(&dir), placed]);
    assert!(table.ok().lines().nth(2).unwrap().ends_with('Z'), "{}", table.stdout);
    let json = run(&["sql", &arg(&dir), placed, "--json"]).json();
    assert!(json[0]["placed"].as_str().unwrap().ends_with('Z'), "{json}");
    let csv = run(&["sql", &arg(&dir), placed, "--csv"]);
    assert_eq!(csv.ok().lines().count(), 3, "{}", csv.stdout);

    let many = "SELECT TIMESTAMPTZ '2024-01-02 03:04:05+02' AS tz, INTERVAL 3 DAY AS i, \
                1.25::DECIMAL(10,2) AS d, [1, 2] AS l, {'a': 1} AS s, MAP {'k': 1} AS m, \
                uuid() IS NOT NULL AS u, 'ab'::BLOB AS b, 42::VARIANT AS v, NULL AS n";
    let json = run(&["sql", &arg(&dir), many, "--json"]);
    assert!(json.stderr.contains("column \"v\" holds VARIANT"), "{}", json.stderr);
    assert_eq!(
        json.json(),
        serde_json::json!([{"tz": "2024-01-02T01:04:05Z", "i": "3 days", "d": 1.25, "l": [1, 2],
            "s": {"a": 1}, "m": {"k": 1}, "u": true, "b": "6162", "v": "42", "n": null}])
    );
    let csv = run(&["sql", &arg(&dir), many, "--csv"]);
    assert_eq!(
        csv.ok().lines().nth(1).unwrap(),
        "2024-01-02T01:04:05Z,3 days,1.25,\"[1, 2]\",{a: 1},{k: 1},true,6162,42,"
    );
    let table = run(&["sql", &arg(&dir), many]);
    assert!(table.ok().lines().nth(2).unwrap().ends_with("| 42 | NULL"), "{}", table.stdout);
    let settings = run(&["sql", &arg(&dir), "SELECT * FROM duckdb_settings()"]);
    assert!(settings.ok().lines().count() > 100, "{}", settings.stdout);
}
