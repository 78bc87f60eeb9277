//! `kvmtrace sql`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::EXIT_OK;

/// Run one SQL query (polars SQL) over a dataset; every table is registered by name.
///
/// Tables span all committed recordings and carry `host` and `recording` columns.
/// Example: kvmtrace sql ds "SELECT reason_name, count(*) AS n FROM exits GROUP BY 1 ORDER BY n DESC"
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The dataset directory.
    dataset: PathBuf,
    /// The SQL statement.
    query: String,
    /// Output format: table, csv or json.
    #[arg(long, default_value = "table")]
    format: kvmtrace_analyze::sql::Format,
}

pub(crate) fn run(args: Args) -> anyhow::Result<u8> {
    let ds = kvmtrace_analyze::Dataset::open(&args.dataset)?;
    let df = kvmtrace_analyze::sql::query(&ds, &args.query)
        .with_context(|| format!("querying {}", args.dataset.display()))?;
    let text = kvmtrace_analyze::sql::render(&df, args.format)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(EXIT_OK)
}
