//! Pure perf.data parsing: bytes in, typed records out. No file I/O, no Arrow, no printing.

pub mod format;
pub mod printfmt;
pub mod tracing;
pub mod attr;
pub mod bytes;
pub mod header;
pub mod records;
