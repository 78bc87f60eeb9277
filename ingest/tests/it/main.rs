//! The ingest integration tests (one binary, as polars and samply do).

mod common;
mod compression;
mod conformance;
mod fuzz_entry;
mod robustness;
mod schema_doc;
mod symbols;
