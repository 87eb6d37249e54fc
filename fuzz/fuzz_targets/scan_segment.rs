//! Fuzz target: `orderlog_wal::fuzzing::scan_segment` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    orderlog_wal::fuzzing::scan_segment(data);
});
