//! `kvmtrace ingest`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::{EXIT_OK, EXIT_WARNINGS};

/// Turn a perf.data (file or pipe mode, zstd or not, perf 3.x to 6.x) into a Parquet dataset.
///
/// Writes DATASET/<table>/host=H/recording=R/part-0.parquet for every table of docs/schema.md
/// (samples, stacks, events, threads, mmaps, build_ids, meta, lost, ingest_report, one table per
/// tracepoint such as kvm__kvm_exit, and the KVM model: vms, vcpus, exits, tsc_offsets).
/// Open them with polars (`pl.scan_parquet("DATASET/samples")`), DuckDB or Spark.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The perf.data to read; `-` reads a pipe-mode stream (`perf record -o -`) from stdin.
    input: PathBuf,
    /// The dataset directory to write (replaced atomically unless --append).
    #[arg(short, long, default_value = "kvmtrace.dataset")]
    output: PathBuf,
    /// Add this recording to an existing dataset as a new host/recording partition.
    #[arg(long)]
    append: bool,
}

pub(crate) fn run(args: Args, threads: usize) -> anyhow::Result<u8> {
    let size = std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0);
    let pb = crate::cmd::progress_bar(size, "ingest");
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = args.output.clone();
    opts.append = args.append;
    opts.threads = threads;
    if let Some(pb) = pb.clone() {
        opts.progress = Some(Arc::new(move |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        }));
    }
    let report = kvmtrace_ingest::run(&args.input, &opts)
        .with_context(|| format!("ingesting {}", args.input.display()))?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let rows = |t: &str| report.tables.iter().find(|(n, _)| n == t).map(|(_, r)| *r).unwrap_or(0);
    eprintln!(
        "kvmtrace: {} -> {} (recording {}, host {}): {} samples, {} stacks, {} exits, {} tables",
        args.input.display(),
        args.output.display(),
        report.recording,
        report.host,
        report.n_samples,
        rows("stacks"),
        rows("exits"),
        report.tables.len()
    );
    for w in &report.warnings {
        eprintln!("kvmtrace: warning: {w}");
    }
    if report.has_warnings() {
        let counts: Vec<String> = report.warning_counts.iter().map(|(k, n)| format!("{n} {}", k.as_str())).collect();
        eprintln!(
            "kvmtrace: warning: finished with skipped data ({}); {} of {} input bytes could not be read",
            counts.join(", "),
            report.bytes_unread,
            report.input_bytes
        );
        return Ok(EXIT_WARNINGS);
    }
    Ok(EXIT_OK)
}
