//! Errors (fatal) and warnings (data skipped, ingest went on).

use std::path::PathBuf;

/// A fatal ingest error. Variants say where: file, byte offset, table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a perf.data file.
    #[error("not a perf.data file (at byte {offset}): {reason}")]
    NotPerfData {
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A header structure is corrupt beyond use.
    #[error("corrupt perf.data header at byte {offset}: {reason}")]
    Corrupt {
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A valid but unsupported variant.
    #[error("unsupported at byte {offset}: {what}")]
    Unsupported {
        /// Byte offset.
        offset: u64,
        /// What is not supported.
        what: String,
    },
    /// Reading or writing failed.
    #[error("I/O error{}{}: {source}", path.as_ref().map(|p| format!(" on {}", p.display())).unwrap_or_default(), offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
    Io {
        /// The file, when known.
        path: Option<PathBuf>,
        /// The byte offset, when known.
        offset: Option<u64>,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a Parquet table failed.
    #[error("writing table {table}: {source}")]
    Parquet {
        /// The table.
        table: String,
        /// The cause.
        source: parquet::errors::ParquetError,
    },
    /// Building an Arrow batch failed.
    #[error("building table {table}: {source}")]
    Arrow {
        /// The table.
        table: String,
        /// The cause.
        source: arrow::error::ArrowError,
    },
    /// The dataset directory cannot be used.
    #[error("dataset {path}: {reason}")]
    Dataset {
        /// The dataset path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A guest symbol bundle or option is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// The kinds of non-fatal problems, counted in the ingest report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum WarningKind {
    /// The input ends early.
    Truncated,
    /// A record could not be decoded and was skipped.
    CorruptRecord,
    /// A header feature or section could not be used.
    CorruptHeader,
    /// A sample whose event id matches no attr.
    UnknownEvent,
    /// A tracepoint without a format description.
    MissingFormat,
    /// Something in the KVM model could not be inferred.
    Kvm,
    /// Symbols could not be loaded.
    Symbols,
}

impl WarningKind {
    /// A stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::Truncated => "truncated",
            WarningKind::CorruptRecord => "corrupt_record",
            WarningKind::CorruptHeader => "corrupt_header",
            WarningKind::UnknownEvent => "unknown_event",
            WarningKind::MissingFormat => "missing_format",
            WarningKind::Kvm => "kvm",
            WarningKind::Symbols => "symbols",
        }
    }
}

/// A non-fatal problem: ingest kept going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What kind.
    pub kind: WarningKind,
    /// Byte offset in the input, when it applies.
    pub offset: Option<u64>,
    /// A lowercase sentence saying what was skipped.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{} at byte {o}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}
