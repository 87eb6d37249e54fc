//! The fuzz targets' seed corpus and saved crash inputs (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`), replayed through the same entry points as ordinary tests.

use std::path::{Path, PathBuf};

use orderlog_snapshot::fuzzing::{decode_ipc, decode_manifest, decode_parquet};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> =
                entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
            files.sort();
            files
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

/// Runs `entry` on every corpus and regression input of `target`; returns the inputs
/// read and the total `entry` returned (snapshots or rows decoded).
fn replay(target: &str, entry: fn(&[u8]) -> usize) -> (usize, usize) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = inputs(&fuzz.join("corpus").join(target));
    assert!(!corpus.is_empty(), "no corpus for {target} in {}", fuzz.display());
    let regressions = inputs(&fuzz.join("regressions").join(target));
    let mut accepted = 0;
    for path in corpus.iter().chain(&regressions) {
        accepted += entry(&std::fs::read(path).unwrap());
    }
    (corpus.len() + regressions.len(), accepted)
}

#[test]
fn manifest_decoder_corpus_and_regressions() {
    let (files, snapshots) = replay("decode_manifest", decode_manifest);
    assert!(
        files > 0 && snapshots > 0,
        "{files} inputs, {snapshots} snapshots: the seeds are stale"
    );
}

#[test]
fn ipc_decoder_corpus_and_regressions() {
    let (files, rows) = replay("decode_ipc", decode_ipc);
    assert!(files > 0 && rows > 0, "{files} inputs, {rows} rows: the seeds are stale");
}

#[test]
fn parquet_decoder_corpus_and_regressions() {
    let (files, rows) = replay("decode_parquet", decode_parquet);
    assert!(files > 0 && rows > 0, "{files} inputs, {rows} rows: the seeds are stale");
}

/// Inputs on which the parquet crate itself panics, below anything the reader can check
/// first (`fuzz/regressions/decode_parquet/upstream/`; see docs/reliability.md,
/// "Fuzzing"): the reader catches the panic and reports the file as corrupt, which
/// `decode_parquet` checks. (The crate's panic message is still printed.)
#[test]
fn parquet_crate_panics_are_errors() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/decode_parquet/upstream");
    let files = inputs(&dir);
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    for path in files {
        decode_parquet(&std::fs::read(&path).unwrap());
    }
}
