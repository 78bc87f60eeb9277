//! A pipe-mode stream without its 16-byte header: the whole ingest, then the streaming reader fed a
//! few bytes per read.
//! The logic lives in ingest/tests/it/fuzz_entry.rs, which the replay test shares.

#![no_main]

#[path = "../../ingest/tests/it/fuzz_entry.rs"]
mod fuzz_entry;
#[path = "scratch.rs"]
mod scratch;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_entry::perf_pipe(data, scratch::dir());
});
