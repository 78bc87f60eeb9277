//! A file-mode perf.data (a pipe stream works too) through the walk and the whole ingest: reader,
//! decompression, session, Parquet tables.
//! The logic lives in ingest/tests/it/fuzz_entry.rs, which the replay test shares.

#![no_main]

#[path = "../../ingest/tests/it/fuzz_entry.rs"]
mod fuzz_entry;
#[path = "scratch.rs"]
mod scratch;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_entry::perf_file(data, scratch::dir());
});
