//! Symbolisation of host and guest addresses: kallsyms tables, ELF symbol
//! tables, DWARF lines and inlined frames, separate debug files, and guest
//! symbol bundles.
//!
//! The entry point for ingest is [`Symbolizer::resolve_all`]: a batch of
//! [`FrameQuery`]s in, one `Vec<ResolvedFrame>` per query out (inlined frames
//! innermost first, never empty). Each distinct address is resolved once, in a
//! local rayon pool, and the output does not depend on the thread count.
//!
//! Guest symbols come from a [`Bundle`] (a directory or `.tar.zst` made by
//! [`collect_bundle`] inside the guest, or a plain directory holding
//! `kallsyms`, `modules` and ELF files).

mod bundle;
mod debuginfo;
mod elf;
mod kallsyms;
mod perfmap;
mod resolve;
#[cfg(test)]
mod tests;

pub use bundle::{
    BUNDLE_FORMAT_VERSION, Bundle, BundleBinary, BundleFiles, BundleLimits, BundleManifest,
    BundleReport, CollectOptions, SkippedBinary, collect_bundle,
};
pub(crate) use debuginfo::default_debug_dirs;
pub use debuginfo::{DwarfFrame, find_debug_file, gnu_debuglink_crc32};
pub(crate) use elf::map_file;
pub use elf::{ElfLoadSegment, ElfSymbol, ElfSymbols, parse_build_id_note, perf_name};
pub use kallsyms::{
    GUEST_KERNEL_DSO, HOST_KERNEL_DSO, KernelLookup, KernelModule, KernelSymbol,
    KernelSymbolBinding, KernelSymbols, is_idle_symbol, parse_modules,
};
pub(crate) use resolve::binary_candidates;
pub use resolve::{AddrSpace, FrameQuery, ResolvedFrame, SymbolizeOptions, Symbolizer};

use std::path::{Path, PathBuf};

/// An error of the symbol layer. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SymbolError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A kallsyms line did not parse.
    #[error("{}: line {line}: {reason}", path.as_deref().map_or_else(|| "kallsyms".into(), |p| p.display().to_string()))]
    Kallsyms {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// 1-based line number (0 for the whole file).
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// An ELF file could not be parsed.
    #[error("{}: not a usable ELF file: {reason}", path.display())]
    Elf {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// DWARF data could not be loaded.
    #[error("{}: bad DWARF: {reason}", path.display())]
    Dwarf {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A bundle is malformed (missing files, bad manifest, unsupported version).
    #[error("bundle {}: {reason}", path.display())]
    Bundle {
        /// The bundle directory or archive.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The local thread pool could not be started.
    #[error("thread pool: {0}")]
    ThreadPool(String),
    /// A bundle archive entry was refused as unsafe (path escape, link out, device, too large).
    #[error("bundle {}: refused entry {entry:?} at byte {offset}: {reason}", path.display())]
    UnsafeBundleEntry {
        /// The archive.
        path: PathBuf,
        /// The entry's path as stored in the archive.
        entry: String,
        /// Byte offset of the entry's header in the decompressed tar stream.
        offset: u64,
        /// Why it was refused.
        reason: String,
    },
}

impl SymbolError {
    fn with_path(self, new_path: &Path) -> Self {
        match self {
            SymbolError::Kallsyms {
                path: None,
                line,
                reason,
            } => SymbolError::Kallsyms {
                path: Some(new_path.to_owned()),
                line,
                reason,
            },
            other => other,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        SymbolError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Lower-case hex of a byte string (build ids).
pub fn hex_string(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses hex text into bytes; `None` for odd length or non-hex characters.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}
