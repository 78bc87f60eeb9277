//! Analysis errors.

use std::path::PathBuf;

/// An analysis error; variants say which dataset, table or column.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The dataset cannot be used.
    #[error("dataset {path}: {reason}")]
    Dataset {
        /// Dataset root.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A table the analysis needs is missing.
    #[error("dataset {path} has no table {table}{}", hint.as_ref().map(|h| format!(": {h}")).unwrap_or_default())]
    MissingTable {
        /// Dataset root.
        path: PathBuf,
        /// The table.
        table: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// A query failed in polars.
    #[error("query on table {table}: {source}")]
    Polars {
        /// The table (or tables) involved.
        table: String,
        /// The cause.
        source: polars::error::PolarsError,
    },
    /// Rendering failed.
    #[error("rendering: {0}")]
    Render(String),
    /// I/O.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A bad option value.
    #[error("{0}")]
    Invalid(String),
}

/// Wraps a polars error with the table it concerns.
pub(crate) fn pl(table: &str) -> impl FnOnce(polars::error::PolarsError) -> Error + '_ {
    move |source| Error::Polars {
        table: table.to_string(),
        source,
    }
}
