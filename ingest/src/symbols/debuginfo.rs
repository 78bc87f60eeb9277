//! Separate debug files (build-id directory and `.gnu_debuglink` with CRC
//! check, which addr2line's `Loader` does not follow) and DWARF frames.

use super::SymbolError;
use super::elf::{ElfSymbols, map_file};
use crate::FileBytes;
use addr2line::LookupContinuation;
use object::{Object, ObjectSection};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// The default separate-debug directory.
pub(crate) const DEFAULT_DEBUG_DIR: &str = "/usr/lib/debug";

/// The directories searched when none is given: `/usr/lib/debug`, then perf's build-id cache
/// (`$PERF_BUILDID_DIR`, else `~/.debug`), where `perf record` keeps a copy of every binary it
/// saw, `[vdso]` included: perf script finds them there, and so does kvmtrace.
pub(crate) fn default_debug_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(DEFAULT_DEBUG_DIR)];
    let cache = std::env::var_os("PERF_BUILDID_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".debug")));
    dirs.extend(cache);
    dirs
}

/// One DWARF frame for an address: a function (inlined or not) and the source
/// position inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DwarfFrame {
    /// Demangled function name.
    pub function: Option<String>,
    /// binutils takes the name as the function's linkage name (a mangled name, or any name in
    /// C): else it names the address by the ELF symbol table.
    pub linkage: bool,
    /// Source file path as DWARF names it.
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<u32>,
}

/// Languages whose names binutils demangles (`mangle_style` ≠ 0 in bfd's dwarf2.c).
fn mangles(lang: addr2line::gimli::DwLang) -> bool {
    use addr2line::gimli as g;
    [
        g::DW_LANG_C_plus_plus,
        g::DW_LANG_C_plus_plus_03,
        g::DW_LANG_C_plus_plus_11,
        g::DW_LANG_C_plus_plus_14,
        g::DW_LANG_Java,
        g::DW_LANG_D,
        g::DW_LANG_Rust,
        g::DW_LANG_Ada83,
        g::DW_LANG_Ada95,
    ]
    .contains(&lang)
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// The CRC-32 (IEEE, as zlib and `.gnu_debuglink` use it) of a byte string.
pub fn gnu_debuglink_crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC_TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8);
    }
    !crc
}

fn is_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// `<dir>/.build-id/xx/rest.debug` for a build id.
pub(crate) fn build_id_debug_path(dir: &Path, build_id: &[u8], suffix: &str) -> Option<PathBuf> {
    let hex = super::hex_string(build_id);
    let (head, rest) = (hex.get(..2)?, hex.get(2..)?);
    if rest.is_empty() {
        return None;
    }
    Some(
        dir.join(".build-id")
            .join(head)
            .join(format!("{rest}{suffix}")),
    )
}

/// Relative form of an absolute path, for joining under another directory.
fn strip_root(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// Finds the separate debug file of an ELF binary.
///
/// Order (as gdb and perf do): `<debug-dir>/.build-id/xx/rest.debug` whose
/// build id matches; then the `.gnu_debuglink` name, whose CRC32 must match,
/// next to the binary, in its `.debug/` subdirectory, and under each debug
/// directory at the binary's own directory path. `debug_dirs` empty means
/// `/usr/lib/debug`.
pub fn find_debug_file(
    binary: &Path,
    build_id: Option<&[u8]>,
    debuglink: Option<(&str, u32)>,
    debug_dirs: &[PathBuf],
) -> Option<PathBuf> {
    let default_dirs = default_debug_dirs();
    let dirs = if debug_dirs.is_empty() {
        &default_dirs[..]
    } else {
        debug_dirs
    };
    if let Some(id) = build_id.filter(|id| !id.is_empty()) {
        for dir in dirs {
            let Some(candidate) = build_id_debug_path(dir, id, ".debug") else {
                continue;
            };
            if !is_file(&candidate) {
                continue;
            }
            match ElfSymbols::build_id_of(&candidate) {
                Ok(found) if found.as_deref() == Some(id) => return Some(candidate),
                Ok(_) => log::warn!(
                    "{}: build id does not match {}; ignored",
                    candidate.display(),
                    super::hex_string(id)
                ),
                Err(e) => log::warn!("{e}; ignored"),
            }
        }
    }
    let (name, crc) = debuglink?;
    // A debuglink is a bare file name; refuse anything that would walk elsewhere.
    if name.is_empty() || name.contains('/') || name == ".." {
        return None;
    }
    let bin_dir = binary.parent().unwrap_or(Path::new(""));
    let abs_dir = std::fs::canonicalize(bin_dir).unwrap_or_else(|_| bin_dir.to_owned());
    let mut candidates = vec![bin_dir.join(name), bin_dir.join(".debug").join(name)];
    for dir in dirs {
        candidates.push(dir.join(strip_root(&abs_dir)).join(name));
    }
    let binary_real = std::fs::canonicalize(binary).ok();
    for candidate in candidates {
        if !is_file(&candidate) {
            continue;
        }
        if binary_real.is_some() && std::fs::canonicalize(&candidate).ok() == binary_real {
            continue;
        }
        let Ok(map) = map_file(&candidate) else {
            continue;
        };
        let got = gnu_debuglink_crc32(&map);
        if got == crc {
            return Some(candidate);
        }
        log::warn!(
            "{}: debuglink CRC {got:08x} differs from {crc:08x} in {}; ignored",
            candidate.display(),
            binary.display()
        );
    }
    None
}

/// A DWARF section's bytes: a range of the mapped file, or a decompressed copy.
#[derive(Clone)]
struct SectionBytes {
    file: Arc<FileBytes>,
    range: std::ops::Range<usize>,
}

impl SectionBytes {
    fn empty() -> SectionBytes {
        SectionBytes {
            file: Arc::new(FileBytes::Copied(Vec::new())),
            range: 0..0,
        }
    }
}

impl std::ops::Deref for SectionBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.file.get(self.range.clone()).unwrap_or_default()
    }
}

impl std::fmt::Debug for SectionBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SectionBytes({} bytes)", self.range.len())
    }
}

// SAFETY: the bytes live in the `Arc`'s allocation (a mapping or a Vec that is never
// resized), so they stay put when a `SectionBytes` moves, and every clone shares that
// allocation and range, so it derefs to the same address.
unsafe impl stable_deref_trait::StableDeref for SectionBytes {}
// SAFETY: as above.
unsafe impl stable_deref_trait::CloneStableDeref for SectionBytes {}

type Reader = gimli::EndianReader<gimli::RunTimeEndian, SectionBytes>;

/// A DWARF context for one file: addr2line's `Context` on the mapped file, split DWARF
/// (`.dwo` files, a `.dwp` package) followed as addr2line's `Loader` follows it. Not the
/// `Loader` itself: it also builds a map of every symbol of the file, which kvmtrace reads
/// itself (`ElfSymbols`): for a test binary of 1.3 M symbols the `Loader` took 0.29–0.32 s,
/// nearly all of it that map.
/// Relocatable files (kernel modules) keep the `Loader`, which applies their relocations.
pub(crate) struct DwarfContext {
    lookup: Lookup,
    /// Demangled function names by raw name: each function is demangled once, not once per
    /// sampled address in it.
    demangled: std::cell::RefCell<std::collections::HashMap<Vec<u8>, String>>,
}

enum Lookup {
    Mapped {
        ctx: Box<addr2line::Context<Reader>>,
        package: Option<Box<gimli::DwarfPackage<Reader>>>,
    },
    Loader(Box<addr2line::Loader>),
}

fn endian_of(file: &object::File<'_>) -> gimli::RunTimeEndian {
    if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    }
}

/// A section of a parsed `file` (whose bytes are `bytes`), decompressed if need be; empty
/// when absent.
fn section_bytes(
    bytes: &Arc<FileBytes>,
    file: &object::File<'_>,
    name: Option<&str>,
) -> SectionBytes {
    let Some(section) = name.and_then(|n| file.section_by_name(n)) else {
        return SectionBytes::empty();
    };
    match section.uncompressed_data() {
        Ok(std::borrow::Cow::Borrowed(b)) => {
            let at = (b.as_ptr() as usize).wrapping_sub(bytes.as_ptr() as usize);
            match bytes.len().checked_sub(b.len()) {
                Some(max) if at <= max => SectionBytes {
                    file: Arc::clone(bytes),
                    range: at..at + b.len(),
                },
                _ => SectionBytes::empty(),
            }
        }
        Ok(std::borrow::Cow::Owned(v)) => SectionBytes {
            range: 0..v.len(),
            file: Arc::new(FileBytes::Copied(v)),
        },
        Err(_) => SectionBytes::empty(),
    }
}

/// The DWARF sections of a parsed `file` (whose bytes are `bytes`); `dwo`: by their `.dwo`
/// names (split DWARF).
fn dwarf_of(
    bytes: &Arc<FileBytes>,
    file: &object::File<'_>,
    dwo: bool,
) -> Result<gimli::Dwarf<Reader>, gimli::Error> {
    let endian = endian_of(file);
    gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
        let name = if dwo { id.dwo_name() } else { Some(id.name()) };
        Ok(gimli::EndianReader::new(
            section_bytes(bytes, file, name),
            endian,
        ))
    })
}

impl DwarfContext {
    /// Loads the DWARF of a file (the binary itself or its debug file).
    pub(crate) fn open(path: &Path) -> Result<Self, SymbolError> {
        Self::with_bytes(path, &Arc::new(FileBytes::Mapped(map_file(path)?)))
    }

    /// Loads the DWARF of a file already read (`bytes`: the file at `path`, e.g. as
    /// [`ElfSymbols`] mapped it).
    pub(crate) fn with_bytes(path: &Path, bytes: &Arc<FileBytes>) -> Result<Self, SymbolError> {
        let err = |reason: String| SymbolError::Dwarf {
            path: path.to_owned(),
            reason,
        };
        let file = object::File::parse(&***bytes).map_err(|e| err(e.to_string()))?;
        let lookup = if file.kind() == object::ObjectKind::Relocatable {
            Lookup::Loader(Box::new(
                addr2line::Loader::new(path).map_err(|e| err(e.to_string()))?,
            ))
        } else {
            let mut dwarf = dwarf_of(bytes, &file, false).map_err(|e| err(e.to_string()))?;
            dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
            let ctx = addr2line::Context::from_dwarf(dwarf).map_err(|e| err(e.to_string()))?;
            // The package of split DWARF beside the file (`prog.dwp`, `lib.so.dwp`), if any.
            let mut dwp = path.as_os_str().to_owned();
            dwp.push(".dwp");
            let package = map_file(Path::new(&dwp)).ok().and_then(|map| {
                let bytes = Arc::new(FileBytes::Mapped(map));
                let file = object::File::parse(&**bytes).ok()?;
                let endian = endian_of(&file);
                gimli::DwarfPackage::load(
                    |id| -> Result<Reader, gimli::Error> {
                        Ok(gimli::EndianReader::new(
                            section_bytes(&bytes, &file, id.dwo_name()),
                            endian,
                        ))
                    },
                    gimli::EndianReader::new(SectionBytes::empty(), endian),
                )
                .ok()
                .map(Box::new)
            });
            Lookup::Mapped {
                ctx: Box::new(ctx),
                package,
            }
        };
        Ok(DwarfContext {
            lookup,
            demangled: Default::default(),
        })
    }

    /// A split unit's DWARF: from the package, else from its `.dwo` file (addr2line's
    /// `Loader::load_dwo`).
    fn load_dwo(
        package: Option<&gimli::DwarfPackage<Reader>>,
        load: &addr2line::SplitDwarfLoad<Reader>,
    ) -> Option<Arc<gimli::Dwarf<Reader>>> {
        use gimli::Reader as _;
        if let Some(cu) = package.and_then(|p| p.find_cu(load.dwo_id, &load.parent).ok().flatten())
        {
            return Some(Arc::new(cu));
        }
        let mut path = PathBuf::new();
        if let Some(dir) = load.comp_dir.as_ref() {
            path.push(os_path(&dir.to_slice().ok()?));
        }
        path.push(os_path(&load.path.as_ref()?.to_slice().ok()?));
        let bytes = Arc::new(FileBytes::Mapped(map_file(&path).ok()?));
        let file = object::File::parse(&**bytes).ok()?;
        let mut dwo = dwarf_of(&bytes, &file, true).ok()?;
        let header = dwo.units().next().ok()??;
        if dwo.unit(header).ok()?.dwo_id != Some(load.dwo_id) {
            return None;
        }
        dwo.make_dwo(&load.parent);
        Some(Arc::new(dwo))
    }

    /// Frames for an SVMA, innermost first; with `inlines` false, one frame
    /// (the outermost function, with the innermost line).
    pub(crate) fn frames(&self, svma: u64, inlines: bool) -> Vec<DwarfFrame> {
        let mut out = Vec::new();
        match &self.lookup {
            Lookup::Mapped { ctx, package } => {
                let mut lookup = ctx.find_frames(svma);
                let iter = loop {
                    match lookup {
                        addr2line::LookupResult::Output(Ok(iter)) => break iter,
                        addr2line::LookupResult::Output(Err(_)) => return out,
                        addr2line::LookupResult::Load { load, continuation } => {
                            lookup = continuation.resume(Self::load_dwo(package.as_deref(), &load));
                        }
                    }
                };
                self.collect_frames(iter, &mut out);
            }
            Lookup::Loader(loader) => {
                if let Ok(iter) = loader.find_frames(svma) {
                    self.collect_frames(iter, &mut out);
                }
            }
        }
        if !inlines && out.len() > 1 {
            let innermost = out.first().map(|f| (f.file.clone(), f.line));
            if let (Some(mut outer), Some((file, line))) = (out.pop(), innermost) {
                outer.file = file;
                outer.line = line;
                out = vec![outer];
            }
        }
        out
    }

    fn collect_frames<R: gimli::Reader>(
        &self,
        mut iter: addr2line::FrameIter<'_, R>,
        out: &mut Vec<DwarfFrame>,
    ) {
        while let Ok(Some(frame)) = iter.next() {
            let raw = frame.function.as_ref().and_then(|f| {
                addr2line::gimli::Reader::to_slice(&f.name)
                    .ok()
                    .map(|r| (f, r))
            });
            // binutils' `is_linkage`: a mangled linkage name, or any name of a language that
            // does not mangle (its `mangle_style` is 0: C, Fortran, …).
            let linkage = raw.as_ref().is_some_and(|(f, raw)| {
                raw.starts_with(b"_Z") || raw.starts_with(b"_R") || !f.language.is_some_and(mangles)
            });
            let function = raw.and_then(|(f, raw)| {
                if let Some(n) = self.demangled.borrow().get(&*raw) {
                    return Some(n.clone());
                }
                // As the symbol table's names (`elf::demangle`), whatever the unit's language.
                let n = match std::str::from_utf8(&raw) {
                    Ok(name) => super::elf::demangle(name),
                    Err(_) => f.demangle().ok()?.into_owned(),
                };
                self.demangled
                    .borrow_mut()
                    .insert(raw.into_owned(), n.clone());
                Some(n)
            });
            let (file, line) = frame
                .location
                .as_ref()
                .map_or((None, None), |l| (l.file.map(str::to_owned), l.line));
            out.push(DwarfFrame {
                function,
                linkage,
                file,
                line,
            });
            if out.len() > 256 {
                break;
            }
        }
    }
}

#[cfg(unix)]
fn os_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn os_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}
