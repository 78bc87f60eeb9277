//! The `kvmtrace` command: clap options → library calls, progress bars, exit codes. No logic.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: glibc returns polars' large column buffers to the kernel and gets them back zeroed,
/// page by page; mimalloc reuses them (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option setter (libmimalloc-sys links mimalloc's C library; its Rust bindings do not
// name the purge option).
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Keeps freed memory for reuse instead of purging it 10 ms after the free (mimalloc's default):
/// polars and the exit statistics free and allocate column-sized buffers batch after batch, and
/// each purged page came back as a fresh one the kernel had to zero (on 10 M exits 17% of the
/// CPU time, on a flame graph 13%). An explicit `MIMALLOC_PURGE_DELAY` wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called before any other thread exists (mi_option_set is not thread safe);
        // the option is a plain integer setting.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Exit codes, documented in `--help`.
pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_WARNINGS: u8 = 1;
pub(crate) const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "kvmtrace",
    version,
    about = "Look at a KVM host and its guests as one system: perf.data to Parquet, VM exits, host+guest flame graphs",
    long_about = None,
    after_help = "EXIT STATUS:\n  0  success\n  1  finished, but data was skipped (truncated or corrupt input): see the warnings\n  2  error\n\nSTART HERE:\n  kvmtrace ingest perf.data -o ds        # perf.data -> Parquet dataset\n  kvmtrace info ds                       # what is in it\n  kvmtrace exits ds                      # VM exits by reason (superset of perf kvm stat report)\n  kvmtrace flame ds -o flame.svg         # combined host+guest flame graph"
)]
struct Cli {
    /// Log more (repeat for debug output).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Worker threads, kvmtrace's and polars' (0: all cores). Output is identical at any count.
    #[arg(short = 'j', long, global = true, default_value_t = 0)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Ingest(cmd::ingest::Args),
    Bundle(cmd::bundle::Args),
    Info(cmd::info::Args),
    Exits(cmd::exits::Args),
    Flame(cmd::flame::Args),
    Sql(cmd::sql::Args),
    Synth(cmd::synth::Args),
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    if cli.threads > 0 && std::env::var_os("POLARS_MAX_THREADS").is_none() {
        // polars sizes its thread pool from this variable once, on first use: `-j` bounds the
        // polars side of `exits` and `flame` too, not only kvmtrace's own workers.
        // SAFETY: no other thread exists yet (nothing has run but argument parsing).
        unsafe { std::env::set_var("POLARS_MAX_THREADS", cli.threads.to_string()) };
    }
    cmd::init_logging(cli.verbose);
    let result = match cli.command {
        Command::Ingest(a) => cmd::ingest::run(a, cli.threads),
        Command::Bundle(a) => cmd::bundle::run(a),
        Command::Info(a) => cmd::info::run(a),
        Command::Exits(a) => cmd::exits::run(a, cli.threads),
        Command::Flame(a) => cmd::flame::run(a, cli.threads),
        Command::Sql(a) => cmd::sql::run(a),
        Command::Synth(a) => cmd::synth::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if cmd::is_broken_pipe(&e) {
                return ExitCode::from(EXIT_OK);
            }
            eprintln!("kvmtrace: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
