//! End-to-end tests of the `kvmtrace` binary (one test binary, as in ingest/tests/it).

mod bundle;
mod robustness;
