//! Entry point for the event-decoder fuzz target in `fuzz/` and its replay test.
//!
//! The function runs [`decode_batch`] on arbitrary bytes and checks what its result
//! promises; a broken promise panics, which is what a fuzzer reports. Garbage must come
//! back as a typed [`DecodeError`] naming the offset, never as a panic.

use crate::events::{BATCH_EVENTS_MAX, DecodeError, decode_batch, encode_batch};

/// Runs the event batch decoder on arbitrary bytes.
///
/// Checked: an error names an offset inside the payload; a batch that decodes holds at
/// most [`BATCH_EVENTS_MAX`] events, re-encodes to exactly the bytes it was read from
/// (the encoding is canonical), and every proper prefix of it is rejected. Returns the
/// number of events decoded.
pub fn decode_events(data: &[u8]) -> usize {
    match decode_batch(data) {
        Ok(events) => {
            assert!(events.len() <= BATCH_EVENTS_MAX);
            let mut again = Vec::with_capacity(data.len());
            encode_batch(&events, &mut again);
            assert_eq!(again, data, "a decoded batch re-encodes to other bytes");
            assert_eq!(decode_batch(&again).as_ref(), Ok(&events), "decode(encode(x)) != x");
            if let Some(cut) = data.len().checked_sub(1) {
                assert!(decode_batch(&data[..cut]).is_err(), "a batch cut by one byte decodes");
            }
            events.len()
        }
        Err(e) => {
            let within = match &e {
                DecodeError::UnknownFormat(_) | DecodeError::TooManyEvents(_) => true,
                DecodeError::UnknownTag { offset, .. }
                | DecodeError::InvalidField { offset, .. }
                | DecodeError::Truncated(offset) => *offset <= data.len(),
                DecodeError::TrailingBytes(n) => *n > 0 && *n <= data.len(),
            };
            assert!(within, "{e:?} points beyond {} bytes", data.len());
            0
        }
    }
}

#[cfg(test)]
mod seed_corpus;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn inputs(dir: &Path) -> Vec<PathBuf> {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> = entries
                    .map(|e| e.expect("directory entry").path())
                    .filter(|p| p.is_file())
                    .collect();
                files.sort();
                files
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{}: {e}", dir.display()),
        }
    }

    /// The fuzz target's seed corpus and saved crash inputs, replayed as tests.
    #[test]
    fn fuzz_corpus_and_regressions_replay() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let corpus = inputs(&fuzz.join("corpus/decode_events"));
        assert!(!corpus.is_empty(), "no corpus in {}", fuzz.display());
        let mut decoded = 0;
        for path in corpus.iter().chain(&inputs(&fuzz.join("regressions/decode_events"))) {
            let data = std::fs::read(path).expect("read input");
            decoded += decode_events(&data);
        }
        assert!(decoded > 0, "no corpus input decodes: the seeds are stale");
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(decode_events(&[]), 0);
        assert_eq!(decode_events(&[1, 0xff, 0xff, 0xff, 0xff]), 0);
        assert_eq!(decode_events(&[1, 0, 0, 0, 0]), 0);
    }
}
