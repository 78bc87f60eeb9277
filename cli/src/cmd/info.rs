//! `kvmtrace info`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::EXIT_OK;

/// Print a dataset's recordings: header facts (meta), events with sample counts, rows per table.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The dataset directory.
    dataset: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<u8> {
    let ds = kvmtrace_analyze::Dataset::open(&args.dataset)?;
    let info = kvmtrace_analyze::info::info(&ds)
        .with_context(|| format!("reading {}", args.dataset.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &info)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    for r in &info.recordings {
        writeln!(out, "recording {} (host {})", r.recording, r.host)?;
        for (k, v) in &r.meta {
            writeln!(out, "  {k:<16} {v}")?;
        }
        writeln!(out, "  events:")?;
        for (n, c) in &r.events {
            writeln!(out, "    {n:<40} {c:>12} samples")?;
        }
        writeln!(out, "  tables:")?;
        for (t, n) in &r.tables {
            writeln!(out, "    {t:<40} {n:>12} rows")?;
        }
    }
    Ok(EXIT_OK)
}
