//! The guest symbol bundle reader on a `.tar.zst` (plain tar inputs are compressed first).
//! The logic lives in ingest/tests/it/fuzz_entry.rs, which the replay test shares.

#![no_main]

#[path = "../../ingest/tests/it/fuzz_entry.rs"]
mod fuzz_entry;
#[path = "scratch.rs"]
mod scratch;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_entry::bundle(data, scratch::dir());
});
