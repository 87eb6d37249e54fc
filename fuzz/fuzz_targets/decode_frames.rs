//! Fuzz target: `orderlog_wal::fuzzing::decode_frames` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    orderlog_wal::fuzzing::decode_frames(data);
});
