//! One module per subcommand.

pub(crate) mod bundle;
pub(crate) mod exits;
pub(crate) mod flame;
pub(crate) mod info;
pub(crate) mod ingest;
pub(crate) mod sql;
pub(crate) mod synth;

use std::io::IsTerminal;

/// A tiny stderr logger for the `log` facade (libraries log, only the CLI prints).
struct Logger(log::LevelFilter);

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "kvmtrace: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}

pub(crate) fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    let logger: &'static Logger = Box::leak(Box::new(Logger(level)));
    let _ = log::set_logger(logger).map(|()| log::set_max_level(level));
}

/// Whether the error chain ends in a closed pipe (exit 0, like ripgrep).
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A byte-progress bar on a terminal, nothing when stderr is not one.
pub(crate) fn progress_bar(total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    Some(pb)
}
