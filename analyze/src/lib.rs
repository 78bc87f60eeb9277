//! kvmtrace-analyze: joins, exit statistics and flame graphs over kvmtrace Parquet datasets.
//!
//! It reads only the Parquet tables documented in docs/schema.md (never ingest's internals).

#![deny(missing_docs)]

pub mod dataset;
pub mod error;
pub mod info;

pub use dataset::Dataset;
pub use error::Error;
