//! `orderlog backup`, `verify URL`, `restore` and `replica`, against an S3 server on
//! loopback (credentials and endpoint in the environment, as an operator sets them) and
//! a `file://` directory: a backup of a generated store restores to the same orders at
//! its end, at an LSN and at a time; `backup` again ships only what is new; damage is
//! reported with exit 1; bad points and outputs are refused with nothing written.

use std::process::Command;

use orderlog_s3_server::S3Server;

use crate::support::{Run, arg, bin, generated, image, run};

/// Runs the binary with the S3 server's environment.
fn run_env(server: &S3Server, args: &[&str]) -> Run {
    let mut command: Command = bin();
    command.args(args);
    for (key, value) in server.env() {
        command.env(key, value);
    }
    let out = command.output().expect("run orderlog");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn orders_at(dir: &str, lsn: u64) -> serde_json::Value {
    let sql = "SELECT count(*) AS n, sum(total_amount) AS total, sum(quantity) AS q FROM orders";
    run(&["sql", dir, sql, "--as-of-lsn", &lsn.to_string(), "--json"]).json_lines()[0].clone()
}

#[test]
fn backup_verify_restore_over_s3_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let summary = generated(&dir, 10_000, 80_000, 7);
    let last = summary["last_lsn"].as_u64().unwrap();
    run(&["compact", &arg(&dir)]).ok();
    let d = arg(&dir);
    let server = S3Server::start(&tmp.path().join("s3"), "bucket").unwrap();
    let file_url = format!("file://{}", tmp.path().join("file-backup").display());
    for url in [format!("{}/orders", server.url()), file_url] {
        let before = image(&dir);
        let shipped = run_env(&server, &["backup", &d, &url, "--json"]).json();
        assert_eq!(shipped["shipped_lsn"].as_u64(), Some(last), "{shipped}");
        assert_eq!(shipped["new_generation"], true);
        assert_eq!(image(&dir), before, "backup wrote into the store directory");
        // Again: a new generation (one writer per generation), newer than the first.
        let again = run_env(&server, &["backup", &d, &url, "--json"]).json();
        assert_eq!(again["shipped_lsn"].as_u64(), Some(last), "{again}");
        assert!(again["generation"].as_str() > shipped["generation"].as_str(), "{again}");

        let stats = run_env(&server, &["stats", &d, "--backup", &url, "--json"]).json();
        assert_eq!(stats["backup"]["shipped_lsn"].as_u64(), Some(last), "{stats}");
        assert_eq!(stats["backup"]["lag_lsns"], 0);
        let verified = run_env(&server, &["verify", &url, "--json"]).json();
        assert_eq!(verified["ok"], true, "{verified}");
        assert_eq!(verified["shipped_lsn"].as_u64(), Some(last));
        assert_eq!(verified["generations"].as_array().unwrap().len(), 2);
        assert_eq!(verified["generation"], again["generation"]);
        assert!(!verified["snapshots"].as_array().unwrap().is_empty());
        assert!(run_env(&server, &["verify", &url]).ok().contains("verdict: ok"));

        let out = tmp.path().join(format!("restored-{}", url.len()));
        let restored = run_env(&server, &["restore", &url, &arg(&out), "--json"]).json();
        assert_eq!(restored["last_lsn"].as_u64(), Some(last), "{restored}");
        assert_eq!(orders_at(&arg(&out), last), orders_at(&d, last));
        run(&["verify", &arg(&out)]).ok();

        // The compaction removed the log before its snapshot: a point before it is
        // refused, naming what the backup holds.
        let first = verified["first_lsn"].as_u64().unwrap();
        assert!(first > 1, "{verified}");
        let out = tmp.path().join(format!("early-{}", url.len()));
        run_env(&server, &["restore", &url, &arg(&out), "--until-lsn", "3"])
            .fails(2, "snapshots at LSNs");
        assert!(!out.exists());
        let mid = (first + last) / 2;
        let out = tmp.path().join(format!("mid-{}", url.len()));
        let restored = run_env(
            &server,
            &["restore", &url, &arg(&out), "--until-lsn", &mid.to_string(), "--json"],
        )
        .json();
        let at = restored["last_lsn"].as_u64().unwrap();
        assert!(at <= mid && at + 16 >= mid, "{restored}");
        assert_eq!(orders_at(&arg(&out), at), orders_at(&d, at));

        // Refused, nothing written: past the end; an output in use.
        let out = tmp.path().join(format!("future-{}", url.len()));
        run_env(&server, &["restore", &url, &arg(&out), "--until-lsn", &(last + 10).to_string()])
            .fails(2, "past the last LSN shipped");
        assert!(!out.exists());
        let used = tmp.path().join("restored-used");
        std::fs::create_dir_all(used.join("x")).unwrap();
        run_env(&server, &["restore", &url, &arg(&used)]).fails(2, "exists and is not empty");
    }
    run_env(&server, &["verify", "s3://no-such-bucket/x"]).fails(2, "no-such-bucket");
    run(&["restore", "ftp://x", &arg(&tmp.path().join("nope"))]).fails(2, "scheme");
}

#[test]
fn verify_url_reports_a_damaged_object_and_restore_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    generated(&dir, 300, 900, 3);
    let backup = tmp.path().join("backup");
    let url = format!("file://{}", backup.display());
    run(&["backup", &arg(&dir), &url]).ok();
    let verified = run(&["verify", &url, "--json"]).json();
    let generation = verified["generation"].as_str().unwrap().to_owned();
    let log = backup.join("generations").join(&generation).join("log");
    let piece = std::fs::read_dir(&log).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&piece).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    std::fs::write(&piece, &bytes).unwrap();
    let damaged = run(&["verify", &url]);
    damaged.fails(1, "damaged object");
    assert!(damaged.stdout.contains("DAMAGED"), "{}", damaged.stdout);
    let out = tmp.path().join("out");
    run(&["restore", &url, &arg(&out)]).fails(2, "CRC-32");
    assert!(!out.exists());
}

#[test]
fn restore_into_a_relative_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let summary = generated(&dir, 200, 600, 9);
    let url = format!("file://{}", tmp.path().join("backup").display());
    run(&["backup", &arg(&dir), &url]).ok();
    let out = bin()
        .current_dir(tmp.path())
        .args(["restore", &url, "relative", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(restored["last_lsn"], summary["last_lsn"]);
    assert!(tmp.path().join("relative/wal").is_dir());
}

#[test]
fn a_replica_restores_and_catches_up_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let summary = generated(&dir, 500, 1_500, 5);
    let last = summary["last_lsn"].as_u64().unwrap();
    let url = format!("file://{}", tmp.path().join("backup").display());
    run(&["backup", &arg(&dir), &url]).ok();
    let replica = tmp.path().join("replica");
    let lines = run(&["replica", &url, &arg(&replica), "--once", "--interval", "50ms", "--json"])
        .json_lines();
    let end = lines.last().unwrap();
    assert_eq!(end["applied_lsn"].as_u64(), Some(last), "{end}");
    assert_eq!(orders_at(&arg(&replica), last), orders_at(&arg(&dir), last));
}
