//! Errors of the generator.

use std::path::PathBuf;

/// Everything that can go wrong while generating a scenario.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options are out of range (zero VMs, zero frequency, ...).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// Creating or writing an output file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Serializing truth.json or a manifest failed.
    #[error("serializing {path}: {source}")]
    Json {
        /// The JSON file being written.
        path: PathBuf,
        /// The underlying serde error.
        #[source]
        source: serde_json::Error,
    },
    /// An embedded data file (kallsyms, tracepoint format) is inconsistent.
    #[error("embedded data: {0}")]
    EmbeddedData(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
