//! A per-process scratch directory for the fuzz targets, on tmpfs when there is one (Parquet
//! writing and bundle extraction stay off the disk). It also becomes `TMPDIR`, where bundles are
//! extracted.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[allow(dead_code)]
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("kvmtrace-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        // SAFETY: set once, on the first input, before the code under test reads the environment.
        unsafe { std::env::set_var("TMPDIR", &dir) };
        dir
    })
}
