//! Fuzz target: `orderlog_snapshot::fuzzing::decode_parquet` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    orderlog_snapshot::fuzzing::decode_parquet(data);
});
