//! Integration tests of kvmtrace-analyze over datasets ingested from testdata.
//!
//! analyze does not depend on ingest (the Parquet files are the only contract), so datasets are
//! made with the `kvmtrace` binary: `$KVMTRACE_BIN`, else target/debug/kvmtrace, built by
//! `cargo build --workspace --tests --bins` (the README's test command).
//!
//! The `exits` tests also generate recordings with kvmtrace-synth and ingest them with
//! kvmtrace-ingest (dev-dependencies, for tests only).

mod encoding;
mod exits;
mod flame;
mod flame_kvm;
mod sql;
