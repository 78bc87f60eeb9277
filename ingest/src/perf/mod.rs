//! Pure perf.data parsing: bytes in, typed records out. No file I/O, no Arrow, no printing.

pub mod attr;
pub mod bytes;
pub mod format;
pub mod header;
pub mod printfmt;
pub mod records;
pub mod tracing;
