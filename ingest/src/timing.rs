//! Phase timings on stderr when `KVMTRACE_TIMINGS` is set (for benchmarks; never in tests).

use std::sync::OnceLock;
use std::time::Instant;

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("KVMTRACE_TIMINGS").is_some())
}

/// A running phase; prints its wall time when dropped.
pub(crate) struct Phase(Option<(&'static str, Instant)>);

/// Starts timing `name`.
pub(crate) fn phase(name: &'static str) -> Phase {
    Phase(enabled().then(|| (name, Instant::now())))
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some((name, t)) = self.0 {
            eprintln!(
                "kvmtrace: timing {name}: {:.3} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
}
