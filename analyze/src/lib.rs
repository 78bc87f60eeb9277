//! kvmtrace-analyze: joins, exit statistics and flame graphs over kvmtrace Parquet datasets.
//!
//! It reads only the Parquet tables documented in docs/schema.md (never ingest's internals).

#![deny(missing_docs)]

pub mod dataset;
pub mod error;
pub mod exits;
pub mod exits_perf;
mod exits_reasons;
pub mod exits_render;
mod exits_stats;
pub mod exits_symbols;
pub mod flame;
mod flame_svg;
pub mod info;
pub mod join;
mod place;
mod reads;
pub mod sql;
mod timing;

pub use dataset::Dataset;
pub use error::Error;
