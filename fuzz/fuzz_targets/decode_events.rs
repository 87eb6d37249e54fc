//! Fuzz target: `orderlog_store::fuzzing::decode_events` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    orderlog_store::fuzzing::decode_events(data);
});
