//! The ingest integration tests (one binary, as polars and samply do).

mod common;
mod conformance;
mod schema_doc;
