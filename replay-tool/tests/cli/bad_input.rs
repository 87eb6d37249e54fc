//! Every subcommand on missing directories, empty directories, plain files, garbage
//! segments and truncated segments: exit 2 (or 1 for verify's verdict) with a clear
//! message, never a panic, and nothing written.

use std::path::Path;

use crate::support::{Run, arg, copy_tree, generated, image, run};

/// Runs every read-only and writing subcommand (but generate) against `dir`.
fn every_subcommand(dir: &Path, out: &Path) -> Vec<(&'static str, Run)> {
    let d = arg(dir);
    vec![
        ("dump", run(&["dump", &d])),
        ("dump --json", run(&["dump", &d, "--json"])),
        ("stats", run(&["stats", &d])),
        ("tail", run(&["tail", &d])),
        ("tail --json", run(&["tail", &d, "--json"])),
        ("consumers", run(&["consumers", &d])),
        ("verify", run(&["verify", &d])),
        ("verify --json", run(&["verify", &d, "--json"])),
        ("replay", run(&["replay", &d, "--until-lsn", "1", "--out", &arg(out)])),
        ("sql", run(&["sql", &d, "SELECT count(*) FROM orders"])),
        ("compact", run(&["compact", &d])),
    ]
}

fn assert_refused(dir: &Path, message: &str) {
    let tmp = tempfile::tempdir().expect("dir");
    let out = tmp.path().join("out");
    let before = image(dir);
    let existed = dir.exists();
    for (name, result) in every_subcommand(dir, &out) {
        assert_eq!(result.code, 2, "{name}: {}", result.stderr);
        result.fails(2, message);
    }
    assert_eq!(dir.exists(), existed, "a subcommand created {}", dir.display());
    assert_eq!(image(dir), before, "a subcommand wrote into {}", dir.display());
    assert!(!out.exists());
}

#[test]
fn missing_empty_and_file_directories_are_refused() {
    let tmp = tempfile::tempdir().expect("dir");
    assert_refused(&tmp.path().join("missing"), "does not exist");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert_refused(&empty, "holds no wal/ directory");
    let file = tmp.path().join("file");
    std::fs::write(&file, b"not a store").expect("write");
    assert_refused(&file, "not a directory");
    run(&["generate", &arg(&file)]).fails(2, "not an orderlog store directory");
    std::fs::write(empty.join("notes.txt"), b"mine").expect("write");
    let before = image(&empty);
    run(&["generate", &arg(&empty)]).fails(2, "holds no wal/ directory");
    assert_eq!(image(&empty), before);
}

#[test]
fn garbage_segments_are_damage_not_panics() {
    let tmp = tempfile::tempdir().expect("dir");
    let out = tmp.path().join("out");
    for (i, garbage) in [vec![], vec![0u8; 100], vec![0xAB; 8192], b"ORDLOGWL garbage".to_vec()]
        .into_iter()
        .enumerate()
    {
        let dir = tmp.path().join(format!("g{i}"));
        std::fs::create_dir_all(dir.join("wal")).expect("mkdir");
        std::fs::write(dir.join("wal/00000000000000000001.wal"), &garbage).expect("write");
        let before = image(&dir);
        for (name, result) in every_subcommand(&dir, &out) {
            let expected = if name.starts_with("verify") { 1 } else { 2 };
            let message = if name.starts_with("verify") { "damaged" } else { "corruption" };
            assert_eq!(result.code, expected, "{name} on garbage {i}: {}", result.stderr);
            result.fails(expected, message);
        }
        assert_eq!(image(&dir), before, "garbage {i}: a subcommand wrote");
        assert!(!out.exists());
    }
}

#[test]
fn garbage_manifest_and_snapshot_files_are_reported() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("store");
    generated(&dir, 300, 1200, 21);
    std::fs::create_dir_all(dir.join("snapshots")).expect("mkdir");
    std::fs::write(dir.join("snapshots/MANIFEST"), b"{\"version\": 1}").expect("write");
    let verify = run(&["verify", &arg(&dir), "--json"]);
    assert_eq!(verify.code, 1, "{}", verify.stderr);
    let report: serde_json::Value = serde_json::from_str(verify.stdout.trim()).expect("json");
    assert_eq!(report["ok"], false);
    assert!(report["findings"][0]["file"].as_str().unwrap().ends_with("MANIFEST"), "{report}");
    run(&["stats", &arg(&dir)]).fails(2, "manifest");
}

#[test]
fn truncated_and_flipped_segments_are_found_with_file_and_offset() {
    let tmp = tempfile::tempdir().expect("dir");
    let good = tmp.path().join("good");
    generated(&good, 2000, 6000, 22);
    let first_segment = good.join("wal/00000000000000000001.wal");

    // A segment cut short: corruption (a crash never shortens a preallocated segment).
    let cut = tmp.path().join("cut");
    copy_tree(&good, &cut);
    let seg = cut.join("wal/00000000000000000001.wal");
    let len = std::fs::metadata(&seg).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len / 3)
        .expect("cut");
    let before = image(&cut);
    let verify = run(&["verify", &arg(&cut), "--json"]);
    assert_eq!(verify.code, 1, "{}", verify.stderr);
    let report: serde_json::Value = serde_json::from_str(verify.stdout.trim()).expect("json");
    let finding = &report["findings"][0];
    assert_eq!(finding["severity"], "corruption");
    assert!(finding["file"].as_str().unwrap().ends_with("00000000000000000001.wal"), "{report}");
    run(&["dump", &arg(&cut)]).fails(2, "00000000000000000001.wal");
    run(&["compact", &arg(&cut)]).fails(2, "corruption");
    assert_eq!(image(&cut), before);

    // Two flipped payload bytes in one segment: both found, each at its frame's offset.
    let flipped = tmp.path().join("flipped");
    copy_tree(&good, &flipped);
    let seg = flipped.join("wal/00000000000000000001.wal");
    let mut bytes = std::fs::read(&first_segment).expect("read");
    let frame_offsets = frame_starts(&bytes);
    let (a, b) = (frame_offsets[5], frame_offsets[40]);
    bytes[a + 20] ^= 0x01;
    bytes[b + 20] ^= 0x01;
    std::fs::write(&seg, &bytes).expect("write");
    let text = run(&["verify", &arg(&flipped)]);
    assert_eq!(text.code, 1);
    for offset in [a, b] {
        let needle = format!("00000000000000000001.wal at offset {offset}: checksum mismatch");
        assert!(text.stdout.contains(&needle), "{needle} not in {}", text.stdout);
    }
    assert!(text.stdout.contains("verdict: DAMAGED"));
}

/// Offsets of the frames in a segment (walking the length fields from the first frame).
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut at = orderlog_wal::format::FRAMES_OFFSET as usize;
    let mut out = Vec::new();
    loop {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) & ((1 << 30) - 1);
        if len == 0 {
            return out;
        }
        out.push(at);
        at += 16 + (len as usize).next_multiple_of(8);
    }
}

#[test]
fn usage_errors_exit_2_and_help_explains_every_subcommand() {
    run(&["frobnicate"]).fails(2, "unrecognized subcommand");
    run(&["dump"]).fails(2, "<DIR>");
    run(&["generate", "/nonexistent/x", "--orders", "10", "--events", "5"])
        .fails(2, "below --orders");
    run(&["dump", ".", "--limit", "minus one"]).fails(2, "invalid value");
    let help = run(&["--help"]);
    for sub in [
        "dump",
        "verify",
        "replay",
        "stats",
        "sql",
        "compact",
        "generate",
        "demo",
        "tail",
        "consumers",
    ] {
        assert!(help.ok().contains(sub), "{sub} missing from --help");
        let sub_help = run(&[sub, "--help"]);
        assert!(sub_help.ok().contains("Usage: orderlog"), "{sub}");
    }
    assert!(!help.stdout.contains("__demo-writer"), "the internal subcommand is hidden");
}
