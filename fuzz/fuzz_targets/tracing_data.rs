//! The tracing-data parser (HEADER_TRACING_DATA), the event format parser and the `print fmt`
//! parser and renderer.
//! The logic lives in ingest/tests/it/fuzz_entry.rs, which the replay test shares.

#![no_main]

#[path = "../../ingest/tests/it/fuzz_entry.rs"]
mod fuzz_entry;
#[path = "scratch.rs"]
mod scratch;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_entry::tracing_data(data);
});
