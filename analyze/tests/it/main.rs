//! Integration tests of kvmtrace-analyze over datasets ingested from testdata.
//!
//! analyze does not depend on ingest (the Parquet files are the only contract): the tests
//! generate recordings with kvmtrace-synth and ingest them with kvmtrace-ingest
//! (dev-dependencies, for tests only); the `sql` tests run the `kvmtrace` binary
//! (`$KVMTRACE_BIN`, else target/debug/kvmtrace, built by the README's test command).

mod encoding;
mod exits;
mod flame;
mod flame_kvm;
mod sql;

use std::path::{Path, PathBuf};

/// An empty directory `name` under Cargo's scratch space for integration tests, for data a
/// `static` keeps for the whole test binary. A `static` is never dropped, so a `TempDir` in one
/// was never removed (each run left its datasets in /tmp); this directory is emptied by the next
/// run instead.
pub(crate) fn shared_scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{}: {e}", dir.display()),
        _ => {}
    }
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
