//! ELF facts the symboliser needs, copied out of the file: PT_LOAD segments
//! (file offset to SVMA, as perf's `map__map_ip` plus dso adjust), function
//! symbols from `.symtab`/`.dynsym`, the build id and `.gnu_debuglink`.

use super::SymbolError;
use crate::FileBytes;
use object::read::elf::{ElfFile, FileHeader, Rel, Rela, SectionHeader};
use object::{Endianness, Object, ObjectSection, ObjectSegment, SegmentFlags};
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

/// One PT_LOAD program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfLoadSegment {
    /// `p_offset`.
    pub file_offset: u64,
    /// `p_filesz`.
    pub file_size: u64,
    /// `p_vaddr`.
    pub address: u64,
    /// `p_memsz`.
    pub memory_size: u64,
    /// `PF_X` is set.
    pub executable: bool,
}

/// One function symbol with perf's end rule applied. Its name is read through the
/// [`ElfSymbols`] holding it ([`ElfSymbols::name`], [`ElfSymbols::demangled`]): 24 bytes a
/// symbol (a test binary has 1.3 M of them, and a recording of a test run maps several).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfSymbol {
    /// Start SVMA.
    pub start: u64,
    /// End SVMA (exclusive): `start + st_size`, or the next start for size 0.
    pub end: u64,
    name: NameRef,
}

/// Where a symbol's raw name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NameRef {
    /// `st_name`: an offset into the string table of the symbols ([`SymNames::strtab`]).
    Table(u32),
    /// An index of [`SymNames::owned`] (synthesized `@plt` names).
    Owned(u32),
}

/// The names of a symbol table: its string table in the mapped file (a test binary's 1.3 M
/// names are 218 MB of it; a recording names a small part of them, read when looked up), and
/// the names made here.
#[derive(Clone, Default)]
struct SymNames {
    bytes: Option<Arc<FileBytes>>,
    /// The string table's byte range in `bytes`.
    strtab: std::ops::Range<usize>,
    owned: Vec<String>,
}

impl SymNames {
    /// The raw bytes of a name (up to its NUL); empty when out of range.
    fn raw(&self, name: NameRef) -> &[u8] {
        match name {
            NameRef::Table(at) => {
                let table = self
                    .bytes
                    .as_deref()
                    .and_then(|b| b.get(self.strtab.clone()))
                    .unwrap_or_default();
                let s = table.get(at as usize..).unwrap_or_default();
                s.get(..memchr::memchr(0, s).unwrap_or(s.len()))
                    .unwrap_or_default()
            }
            NameRef::Owned(i) => self.owned.get(i as usize).map_or(&[][..], |s| s.as_bytes()),
        }
    }

    /// A name as text: a name that is not UTF-8 (never seen) is shown with replacement
    /// characters, as a terminal would show perf's bytes.
    fn text(&self, name: NameRef) -> Cow<'_, str> {
        String::from_utf8_lossy(self.raw(name))
    }

    fn own(&mut self, name: String) -> NameRef {
        self.owned.push(name);
        NameRef::Owned(self.owned.len() as u32 - 1)
    }
}

impl std::fmt::Debug for SymNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SymNames")
            .field("strtab", &self.strtab)
            .field("owned", &self.owned.len())
            .finish()
    }
}

/// Demangled names made so far, by raw name (a symbol holds many sampled addresses; frames
/// of one binary are resolved on several threads).
#[derive(Default)]
struct DemangledNames(
    std::sync::Mutex<std::collections::HashMap<NameRef, Arc<str>, foldhash::fast::FixedState>>,
);

impl Clone for DemangledNames {
    fn clone(&self) -> Self {
        DemangledNames::default()
    }
}

impl std::fmt::Debug for DemangledNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DemangledNames")
    }
}

/// The symbol-relevant contents of one ELF file; the file stays mapped while its symbols live
/// (their names are read from it).
#[derive(Debug, Clone, Default)]
pub struct ElfSymbols {
    segments: Vec<ElfLoadSegment>,
    symbols: Vec<ElfSymbol>,
    /// The synthesized `@plt` symbols (kept when a debug file's symbols replace the rest).
    plt: Vec<ElfSymbol>,
    names: SymNames,
    demangled: DemangledNames,
    /// Where binutils names an address differently from perf: (start, raw name), by start.
    bfd_names: Vec<(u64, String)>,
    build_id: Option<Vec<u8>>,
    debuglink: Option<(String, u32)>,
    has_dwarf: bool,
    /// Kernel anchor labels (`_stext`, `_text`), often `STT_NOTYPE`, for KASLR offsets.
    anchors: Vec<(String, u64)>,
    entry: u64,
    is_executable_type: bool,
    /// The file's bytes as parsed (mapped, or copied by [`ElfSymbols::parse`]).
    bytes: Option<Arc<FileBytes>>,
}

/// A symbol as read from the table, before perf's choice among aliases. 32 bytes: its name is
/// an offset, read only where aliases tie (see [`collect_text_symbols`]).
struct RawSym {
    start: u64,
    size: u64,
    name: NameRef,
    weak: bool,
    global: bool,
}

/// The positions of `raw` ordered by (start, position): aliases stay in symbol-table order.
///
/// A stable radix sort of (start − least start, position) by the first where starts span less
/// than 4 GiB (every file seen; 4 byte-digits at most, fewer for a smaller span): sorting the
/// 32-byte symbols by comparison was 40% of parsing a test binary (1 M symbols). Otherwise the
/// comparison sort of positions.
fn sorted_order(raw: &[RawSym]) -> Vec<u32> {
    let (least, most) = raw
        .iter()
        .fold((u64::MAX, 0), |(l, m), s| (l.min(s.start), m.max(s.start)));
    let least = least.min(most);
    if let (Ok(_), Ok(_)) = (u32::try_from(most - least), u32::try_from(raw.len())) {
        let mut pairs: Vec<(u32, u32)> = (0u32..)
            .zip(raw)
            .map(|(i, s)| ((s.start - least) as u32, i))
            .collect();
        radsort::sort_by_key(&mut pairs, |p| p.0);
        pairs.into_iter().map(|(_, i)| i).collect()
    } else {
        let mut order: Vec<u32> = (0..raw.len() as u32).collect();
        order.sort_unstable_by_key(|&i| (raw.get(i as usize).map(|s| s.start), i));
        order
    }
}

impl RawSym {
    fn synthetic(&self) -> bool {
        matches!(self.name, NameRef::Owned(_))
    }
}

fn leading_underscores(name: &str) -> usize {
    name.bytes().take_while(|&b| b == b'_').count()
}

/// perf's `choose_best_symbol`: true keeps `a`. Names compare as perf holds them, demangled
/// ([`perf_name`]; `dso__load_sym` demangles before `symbol__new`, so
/// `symbols__fixup_duplicate` sees demangled names): of the nine Rust aliases of one
/// `RawVec::grow_one` in cargo, perf 6.1 names the longest demangled one (crate hashes left
/// out), not the longest mangled one; of two C++ functions folded into one in libLLVM, the
/// longer name without parameters.
fn prefer_first(a: &RawSym, b: &RawSym, names: &SymNames) -> bool {
    if (a.size == 0) != (b.size == 0) {
        return a.size != 0;
    }
    if a.weak != b.weak {
        return !a.weak;
    }
    if a.global != b.global {
        return a.global;
    }
    let (a, b) = (demangle(&names.text(a.name)), demangle(&names.text(b.name)));
    let (an, bn) = (perf_name(&a), perf_name(&b));
    let (ua, ub) = (leading_underscores(&an), leading_underscores(&bn));
    if ua != ub {
        return ua < ub;
    }
    if an.len() != bn.len() {
        return an.len() > bn.len();
    }
    true
}

/// Which sections are named like text (by name, as perf's `elf_sec__is_text`: a debug file's
/// sections hold no data), by section index.
fn text_sections(file: &object::File<'_>) -> Vec<bool> {
    let mut text = Vec::new();
    for section in file.sections() {
        let i = section.index().0;
        if i >= text.len() {
            text.resize(i + 1, false);
        }
        text[i] = section.name().is_ok_and(|n| n.contains("text"));
    }
    text
}

/// The function symbols of `.symtab`, else of `.dynsym` (perf prefers `.symtab`), and the
/// file range of the string table their names are in.
fn text_symbols<Elf: FileHeader<Endian = Endianness>>(
    file: &ElfFile<'_, Elf>,
    text_sections: &[bool],
    anchors: &mut Vec<(String, u64)>,
) -> (Vec<RawSym>, std::ops::Range<usize>) {
    let mut raw = Vec::new();
    for (table, anchors) in [
        (file.elf_symbol_table(), Some(anchors)),
        (file.elf_dynamic_symbol_table(), None),
    ] {
        let endian = file.endian();
        let strtab = file
            .elf_section_table()
            .section(table.string_section())
            .ok()
            .and_then(|s| s.file_range(endian))
            .and_then(|(at, size)| {
                Some(usize::try_from(at).ok()?..usize::try_from(at + size).ok()?)
            })
            .filter(|r| r.end <= file.data().len())
            .unwrap_or(0..0);
        let strings = file.data().get(strtab.clone()).unwrap_or_default();
        raw.reserve(table.symbols().len());
        collect_text_symbols(file, table, strings, text_sections, &mut raw, anchors);
        if !raw.is_empty() {
            return (raw, strtab);
        }
    }
    (raw, 0..0)
}

/// perf's `dso__load_sym` filter: functions, and labels (`STT_NOTYPE`, e.g. ld.so's `_start`)
/// of default or protected visibility (`elf_sym__is_label`: zstd's hidden assembler loops stay
/// unnamed) in sections named like text; not ARM/AArch64 mapping symbols (`$a`, `$d`, `$t`,
/// `$x`). With `anchors`, also the kernel anchor labels `_stext`/`_text` of any kind (linker
/// labels: size 0).
///
/// Reads the table's entries directly, not through `object::Symbol`: its `name()` scans each
/// name for its end and checks it as UTF-8, a third of the parse of a test binary (1.3 M
/// symbols, 218 MB of names), of which a recording names a few thousand. Here no name is read
/// but those that may be anchors or mapping symbols, and those only to their 8th byte.
fn collect_text_symbols<Elf: FileHeader<Endian = Endianness>>(
    file: &ElfFile<'_, Elf>,
    table: &object::read::elf::SymbolTable<'_, Elf>,
    strings: &[u8],
    text_sections: &[bool],
    raw: &mut Vec<RawSym>,
    mut anchors: Option<&mut Vec<(String, u64)>>,
) {
    use object::elf;
    use object::read::elf::Sym;
    let endian = file.endian();
    let arm = matches!(
        file.elf_header().e_machine(endian),
        elf::EM_ARM | elf::EM_AARCH64
    );
    for (i, sym) in table.symbols().iter().enumerate().skip(1) {
        if sym.is_undefined(endian) {
            continue;
        }
        let st_name = sym.st_name(endian);
        // perf's `elf_sym__is_function`/`is_label`: a symbol without a name (st_name 0) is
        // none; the name itself is not read.
        if st_name == 0 {
            continue;
        }
        let size: u64 = sym.st_size(endian).into();
        // The name's first bytes, up to 8 and its NUL, read only where they matter: a name's
        // first byte is a cache miss in a string table of hundreds of MB, and reading it for
        // every symbol was a third of the parse of a test binary. The anchors are linker
        // labels (size 0); mapping symbols exist on ARM and AArch64 only (perf checks them
        // there only).
        let want_anchor = anchors.is_some() && size == 0;
        let head: &[u8] = if want_anchor || arm {
            let head = strings.get(st_name as usize..).unwrap_or_default();
            let head = head.get(..head.len().min(8)).unwrap_or_default();
            // (A loop: a call of memchr for 8 bytes cost a sixth of the parse.)
            head.get(..head.iter().position(|&b| b == 0).unwrap_or(head.len()))
                .unwrap_or_default()
        } else {
            &[]
        };
        let address: u64 = sym.st_value(endian).into();
        if let Some(anchors) = anchors.as_deref_mut()
            && let name @ (b"_stext" | b"_text") = head
        {
            anchors.push((String::from_utf8_lossy(name).into_owned(), address));
        }
        if address == 0 {
            continue;
        }
        let kind = sym.st_type();
        // `object` calls a symbol of any other type `SymbolKind::Unknown`: perf's labels.
        let is_label = || {
            !matches!(
                kind,
                elf::STT_OBJECT
                    | elf::STT_COMMON
                    | elf::STT_FUNC
                    | elf::STT_GNU_IFUNC
                    | elf::STT_SECTION
                    | elf::STT_FILE
                    | elf::STT_TLS
            ) && !matches!(sym.st_visibility(), elf::STV_HIDDEN | elf::STV_INTERNAL)
                && table
                    .symbol_section(endian, sym, object::SymbolIndex(i))
                    .ok()
                    .flatten()
                    .is_some_and(|s| text_sections.get(s.0).copied().unwrap_or(false))
        };
        if !matches!(kind, elf::STT_FUNC | elf::STT_GNU_IFUNC) && !is_label() {
            continue;
        }
        if arm && is_mapping_symbol(head) {
            continue;
        }
        raw.push(RawSym {
            start: address,
            size,
            name: NameRef::Table(st_name),
            weak: sym.st_bind() == elf::STB_WEAK,
            global: sym.st_bind() != elf::STB_LOCAL,
        });
    }
}

/// An ARM/AArch64 mapping symbol (`$a`, `$d`, `$t`, `$x`, optionally `.suffix`).
fn is_mapping_symbol(b: &[u8]) -> bool {
    b.first() == Some(&b'$')
        && b.get(1).is_some_and(|c| b"adtx".contains(c))
        && matches!(b.get(2), None | Some(b'.'))
}

/// perf 6.1's `dso__synthesize_plt_symbols`: one `NAME@plt` symbol per `.rela.plt`/`.rel.plt`
/// entry, in order, over `.plt` after its header (names demangled first, as perf does; an
/// IRELATIVE entry without a symbol is plain `@plt`). (start svma, size, name).
fn plt_symbols(file: &object::File<'_>) -> Vec<(u64, u64, String)> {
    match file {
        object::File::Elf64(elf) => plt_symbols_of(elf),
        object::File::Elf32(elf) => plt_symbols_of(elf),
        _ => None,
    }
    .unwrap_or_default()
}

fn plt_symbols_of<Elf: FileHeader<Endian = Endianness>>(
    file: &ElfFile<'_, Elf>,
) -> Option<Vec<(u64, u64, String)>> {
    let data = file.data();
    let endian = file.endian();
    let sections = file.elf_section_table();
    let dynsym = sections
        .symbols(endian, data, object::elf::SHT_DYNSYM)
        .ok()?;
    let (_, rel) = sections
        .section_by_name(endian, b".rela.plt")
        .or_else(|| sections.section_by_name(endian, b".rel.plt"))?;
    if rel.sh_link(endian) != dynsym.section().0 as u32 {
        return None;
    }
    let (_, plt) = sections.section_by_name(endian, b".plt")?;
    let (header, entry) = match file.elf_header().e_machine(endian) {
        object::elf::EM_ARM => (20, 12),
        object::elf::EM_AARCH64 => (32, 16),
        _ => {
            let e: u64 = plt.sh_entsize(endian).into();
            (e, e)
        }
    };
    // A `.plt` whose sh_entsize is 0 (lld's, e.g. rustup's cargo, rustc, rust-lld): perf 6.1
    // puts every entry's symbol at the start of `.plt`, zero bytes long, after the other
    // symbols' ends were fixed. Its lookup then goes right at them and finds nothing above that
    // address, not even the symbol before (`_fini`, which the last-entry rule stretched over
    // `.plt`): perf prints `[unknown]` there. One such symbol stands for them all.
    let degenerate = entry == 0;
    let syms: Vec<u32> = match rel.sh_type(endian) {
        object::elf::SHT_RELA => rel
            .data_as_array::<Elf::Rela, _>(endian, data)
            .ok()?
            .iter()
            .map(|r| r.r_sym(endian, false))
            .collect(),
        object::elf::SHT_REL => rel
            .data_as_array::<Elf::Rel, _>(endian, data)
            .ok()?
            .iter()
            .map(|r| r.r_sym(endian))
            .collect(),
        _ => return None,
    };
    let mut at = Into::<u64>::into(plt.sh_addr(endian)).saturating_add(header);
    let mut out = Vec::with_capacity(syms.len());
    for idx in syms {
        let name = dynsym
            .symbol(object::SymbolIndex(idx as usize))
            .ok()
            .and_then(|s| dynsym.symbol_name(endian, s).ok())
            .map(|n| demangle(&String::from_utf8_lossy(n)))
            .unwrap_or_default();
        out.push((at, entry, format!("{name}@plt")));
        if degenerate {
            break;
        }
        at = at.saturating_add(entry);
    }
    Some(out)
}

pub(crate) fn map_file(path: &Path) -> Result<memmap2::Mmap, SymbolError> {
    let file = std::fs::File::open(path).map_err(|e| SymbolError::io(path, e))?;
    // SAFETY: the mapping is read-only; a file truncated underneath us is the
    // same hazard every ELF reader (perf, addr2line's Loader) accepts.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| SymbolError::io(path, e))
}

impl ElfSymbols {
    /// Reads an ELF file from disk.
    pub fn from_path(path: &Path) -> Result<Self, SymbolError> {
        let map = map_file(path)?;
        Self::parse_bytes(Arc::new(FileBytes::Mapped(map))).map_err(|reason| SymbolError::Elf {
            path: path.to_owned(),
            reason,
        })
    }

    /// The GNU build id of the ELF file at `path` (None: it has none), read from its headers
    /// and notes only: a candidate of the wrong build is turned down without parsing its
    /// symbols (a Rust test binary's million took 0.2 s).
    pub fn build_id_of(path: &Path) -> Result<Option<Vec<u8>>, SymbolError> {
        let map = map_file(path)?;
        let elf_err = |reason: String| SymbolError::Elf {
            path: path.to_owned(),
            reason,
        };
        let file = object::File::parse(&*map).map_err(|e| elf_err(e.to_string()))?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(elf_err(format!("{:?} object, not ELF", file.format())));
        }
        Ok(file.build_id().ok().flatten().map(<[u8]>::to_vec))
    }

    /// Parses ELF bytes (copied); the error is a reason without a path.
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        Self::parse_bytes(Arc::new(FileBytes::Copied(data.to_vec())))
    }

    fn parse_bytes(bytes: Arc<FileBytes>) -> Result<Self, String> {
        let data: &[u8] = &bytes;
        let file = object::File::parse(data).map_err(|e| e.to_string())?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(format!("{:?} object, not ELF", file.format()));
        }
        let mut segments: Vec<ElfLoadSegment> = file
            .segments()
            .map(|seg| {
                let (file_offset, file_size) = seg.file_range();
                let executable = match seg.flags() {
                    SegmentFlags::Elf { p_flags, .. } => p_flags.0 & object::elf::PF_X.0 != 0,
                    _ => false,
                };
                ElfLoadSegment {
                    file_offset,
                    file_size,
                    address: seg.address(),
                    memory_size: seg.size(),
                    executable,
                }
            })
            .collect();
        segments.sort_by_key(|s| (s.file_offset, s.address));
        let mut anchors = Vec::new();
        let text = text_sections(&file);
        let (mut raw, strtab) = match &file {
            object::File::Elf64(elf) => text_symbols(elf, &text, &mut anchors),
            object::File::Elf32(elf) => text_symbols(elf, &text, &mut anchors),
            _ => (Vec::new(), 0..0),
        };
        let mut names = SymNames {
            bytes: Some(Arc::clone(&bytes)),
            strtab,
            owned: Vec::new(),
        };
        let plt: Vec<ElfSymbol> = plt_symbols(&file)
            .into_iter()
            .map(|(start, size, name)| ElfSymbol {
                start,
                end: start.saturating_add(size),
                name: names.own(name),
            })
            .collect();
        for p in plt.iter().filter(|p| p.end > p.start) {
            raw.push(RawSym {
                start: p.start,
                size: p.end - p.start,
                name: p.name,
                weak: false,
                global: true,
            });
        }
        // Aliases stay in symbol-table order (the @plt symbols after them), and an exact tie
        // keeps the first, as perf's rbtree (equal starts go right) and
        // `symbols__fixup_duplicate` do.
        let order = sorted_order(&raw);
        let at = |i: &u32| raw.get(*i as usize);
        // perf's choice at each address, and binutils' (`_bfd_elf_find_function`: the larger
        // symbol, then the first in the table) kept where it is not perf's: (start, raw name).
        let mut picks: Vec<&RawSym> = Vec::with_capacity(raw.len());
        let mut bfd_names: Vec<(u64, String)> = Vec::new();
        for group in order.chunk_by(|a, b| at(a).map(|s| s.start) == at(b).map(|s| s.start)) {
            let mut group = group.iter().filter_map(at);
            let Some(mut perf) = group.next() else {
                continue;
            };
            let mut bfd = (!perf.synthetic()).then_some(perf);
            for sym in group {
                if !prefer_first(perf, sym, &names) {
                    perf = sym;
                }
                if !sym.synthetic() && bfd.is_none_or(|b| sym.size > b.size) {
                    bfd = Some(sym);
                }
            }
            if let Some(b) = bfd
                && !std::ptr::eq(b, perf)
                && names.raw(b.name) != names.raw(perf.name)
            {
                bfd_names.push((b.start, names.text(b.name).into_owned()));
            }
            picks.push(perf);
        }
        let mut symbols = Vec::with_capacity(picks.len() + 1);
        for (i, sym) in picks.iter().enumerate() {
            let end = if sym.size > 0 {
                sym.start.saturating_add(sym.size)
            } else {
                match picks.get(i + 1) {
                    Some(next) => next.start,
                    None => (sym.start & !4095).saturating_add(8192),
                }
            };
            symbols.push(ElfSymbol {
                start: sym.start,
                end,
                name: sym.name,
            });
        }
        drop(picks);
        drop(order);
        drop(raw);
        // A degenerate `.plt`'s symbol (zero bytes): inserted as it is, it ends the lookup.
        for p in plt.iter().filter(|p| p.end == p.start) {
            let at = symbols.partition_point(|s| s.start <= p.start);
            symbols.insert(at, *p);
        }
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        let debuglink = file
            .gnu_debuglink()
            .ok()
            .flatten()
            .map(|(name, crc)| (String::from_utf8_lossy(name).into_owned(), crc));
        let has_dwarf = file
            .section_by_name(".debug_info")
            .is_some_and(|s| s.size() > 0 && s.kind() != object::SectionKind::UninitializedData);
        Ok(ElfSymbols {
            segments,
            symbols,
            plt,
            names,
            demangled: DemangledNames::default(),
            bfd_names,
            build_id,
            debuglink,
            has_dwarf,
            anchors,
            entry: file.entry(),
            is_executable_type: file.kind() == object::ObjectKind::Executable,
            bytes: Some(Arc::clone(&bytes)),
        })
    }

    /// The bytes the symbols were read from: what a bundle stores, even when the file is
    /// replaced or deleted after it was parsed (the mapping keeps them).
    pub(crate) fn file_bytes(&self) -> Option<&Arc<FileBytes>> {
        self.bytes.as_ref()
    }

    /// The PT_LOAD segments, sorted by file offset.
    pub fn segments(&self) -> &[ElfLoadSegment] {
        &self.segments
    }

    /// The function symbols, sorted by start.
    pub fn symbols(&self) -> &[ElfSymbol] {
        &self.symbols
    }

    /// The GNU build id, if the file has one.
    pub fn build_id(&self) -> Option<&[u8]> {
        self.build_id.as_deref()
    }

    /// The `.gnu_debuglink` file name and CRC32.
    pub fn debuglink(&self) -> Option<(&str, u32)> {
        self.debuglink.as_ref().map(|(n, c)| (n.as_str(), *c))
    }

    /// True when the file carries a non-empty `.debug_info`.
    pub fn has_dwarf(&self) -> bool {
        self.has_dwarf
    }

    /// The ELF entry point.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// True for `ET_EXEC` files.
    pub fn is_executable_type(&self) -> bool {
        self.is_executable_type
    }

    /// Maps a file offset to an SVMA through the PT_LOAD segment holding it,
    /// preferring executable segments (perf: `map__map_ip`, then the dso's
    /// `p_vaddr - p_offset` adjust).
    pub fn file_offset_to_svma(&self, file_offset: u64) -> Option<u64> {
        let holds = |s: &&ElfLoadSegment| {
            file_offset >= s.file_offset && file_offset - s.file_offset < s.file_size
        };
        let seg = self
            .segments
            .iter()
            .filter(holds)
            .find(|s| s.executable)
            .or_else(|| self.segments.iter().find(holds))?;
        Some(seg.address.wrapping_add(file_offset - seg.file_offset))
    }

    /// The name binutils' `addr2line` gives an SVMA from the symbol table, demangled
    /// (`_bfd_elf_find_function`): the symbol starting closest below it, whatever its size
    /// (of several at one address the larger, then the first in the table).
    pub fn bfd_lookup(&self, svma: u64) -> Option<String> {
        let idx = self.symbols.partition_point(|s| s.start <= svma);
        let s = self.symbols.get(idx.checked_sub(1)?)?;
        Some(
            match self.bfd_names.binary_search_by_key(&s.start, |b| b.0) {
                Ok(i) => demangle(&self.bfd_names.get(i)?.1),
                Err(_) => self.demangled(s).to_string(),
            },
        )
    }

    /// The symbol holding an SVMA and the offset into it.
    pub fn lookup(&self, svma: u64) -> Option<(&ElfSymbol, u64)> {
        let idx = self.symbols.partition_point(|s| s.start <= svma);
        // Nested symbols: look back a few entries for one that still holds the address.
        let first = idx.saturating_sub(8);
        let candidates = self.symbols.get(first..idx)?;
        for s in candidates.iter().rev() {
            if svma < s.end || s.start == svma {
                return Some((s, svma - s.start));
            }
            // A zero-byte symbol (a degenerate `.plt`'s, see `plt_symbols_of`) below the
            // address: perf's search turns right at it and never meets the symbols before.
            if s.start == s.end {
                return None;
            }
        }
        None
    }

    /// Replaces the symbol table with another file's (a stripped binary
    /// takes the symbols of its debug file; segments stay the binary's).
    pub(crate) fn take_symbols_of(&mut self, other: &ElfSymbols) {
        // The names are the other file's now; the @plt names move over with their symbols.
        let mut names = other.names.clone();
        let plt: Vec<ElfSymbol> = self
            .plt
            .iter()
            .map(|p| ElfSymbol {
                name: names.own(self.names.text(p.name).into_owned()),
                ..*p
            })
            .collect();
        // A debug file's .rela.plt/.plt hold no data: the binary's @plt symbols stay.
        let mut symbols = other.symbols.clone();
        symbols.extend(plt.iter().filter(|p| {
            other
                .symbols
                .binary_search_by_key(&p.start, |s| s.start)
                .is_err()
        }));
        symbols.sort_by_key(|s| s.start);
        self.symbols = symbols;
        self.plt = plt;
        self.names = names;
        self.demangled = DemangledNames::default();
        self.bfd_names = other.bfd_names.clone();
    }

    /// The raw (mangled) name of one of the symbols.
    pub fn name(&self, sym: &ElfSymbol) -> Cow<'_, str> {
        self.names.text(sym.name)
    }

    /// The demangled name of one of the symbols, made on first use.
    pub fn demangled(&self, sym: &ElfSymbol) -> Arc<str> {
        let cached = |m: &std::collections::HashMap<_, Arc<str>, _>| m.get(&sym.name).cloned();
        if let Some(d) = self.demangled.0.lock().ok().as_deref().and_then(cached) {
            return d;
        }
        let d: Arc<str> = demangle(&self.name(sym)).into();
        if let Ok(mut m) = self.demangled.0.lock() {
            m.insert(sym.name, Arc::clone(&d));
        }
        d
    }

    /// The address of the first function symbol with this raw name, or of the
    /// `_stext`/`_text` labels.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.anchors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .or_else(|| {
                self.symbols
                    .iter()
                    .find(|s| self.names.raw(s.name) == name.as_bytes())
                    .map(|s| s.start)
            })
    }
}

/// Demangles a Rust or C++ symbol name; other names come back unchanged.
///
/// Rust first (rustc-demangle: legacy `_ZN…17h<hash>E` names are Rust's, printed as perf's
/// Rust pass prints them), then C++ by libstdc++'s `__cxa_demangle` (the text of c++filt and
/// perf; cpp_demangle 0.5 prints an empty pack as `AnalysisManager<llvm::Function, >` and
/// `0u` as `(unsigned int)0`, seen in every second libLLVM frame of a live recording), then
/// cpp_demangle when libstdc++ is missing or refuses the name.
pub(crate) fn demangle(name: &str) -> String {
    // A Rust v0 name's `.` suffix (`.warm`, `.cold`, `.llvm.…`): libiberty's demangler (perf's)
    // stops at the first `.`; rustc-demangle would print it.
    let name = match name.split_once('.') {
        Some((v0, _)) if v0.starts_with("_R") => v0,
        _ => name,
    };
    if let Some(d) = addr2line::demangle(name, addr2line::gimli::DW_LANG_Rust) {
        return d;
    }
    if let Some(d) = demangle_libstdcxx(name) {
        return d;
    }
    match addr2line::demangle_auto(Cow::Borrowed(name), None) {
        Cow::Borrowed(_) => name.to_owned(),
        demangled => demangled.into_owned(),
    }
}

/// A demangled name as perf 6.1 prints it. perf demangles C++ without `DMGL_PARAMS`: no
/// parameter list, cv/ref qualifiers, clone suffixes (`[clone .warm]`) or the return type a
/// template function's mangled name carries ("void std::vector<…>::_M_realloc_insert<…>(…)"
/// is "std::vector<…>::_M_realloc_insert<…>"); kvmtrace keeps the full name in
/// `frames.symbol` and this one in `frames.name`. Other names (C, Rust, Go) come back as
/// they are: none ends with a parameter list or holds a space outside brackets. A synthesized
/// PLT symbol is named as perf's `dso__synthesize_plt_symbols` names it: the target's name so
/// demangled, then `@plt` ("std::error_category::error_category@plt").
pub fn perf_name(name: &str) -> Cow<'_, str> {
    let name = name.trim();
    if let Some(target) = name.strip_suffix("@plt") {
        let shown = perf_name_of_function(target);
        if shown.len() != target.len() {
            return Cow::Owned(format!("{shown}@plt"));
        }
    }
    Cow::Borrowed(perf_name_of_function(name))
}

/// [`perf_name`] of a function's demangled name.
fn perf_name_of_function(name: &str) -> &str {
    let mut name = name.trim();
    // Called for every frame row: a name without a space or a closing parenthesis (C, kernel,
    // most Rust) has nothing to drop, and two memchr scans say so.
    if !name.contains(' ') && !name.ends_with(')') {
        return name;
    }
    while let Some(at) = name.rfind(" [clone ") {
        if !name.ends_with(']') {
            break;
        }
        name = name[..at].trim_end();
    }
    let mut unqualified = name;
    while let Some(n) = [" &&", " &", " volatile", " const"]
        .iter()
        .find_map(|q| unqualified.strip_suffix(q))
    {
        unqualified = n;
    }
    if unqualified.ends_with(')') {
        name = unqualified;
    }
    // A trailing "(…)" is the parameter list (not the "()" of `operator()` itself).
    if name.ends_with(')') && !name.ends_with("operator()") {
        let mut depth = 0i32;
        for (i, c) in name.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' => {
                    depth -= 1;
                    if depth == 0 {
                        name = &name[..i];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    // The demangler's special names ("non-virtual thunk to X::~X") start with words, not a
    // return type.
    const SPECIAL: [&str; 8] = [
        "non-virtual thunk to ",
        "virtual thunk to ",
        "covariant return thunk to ",
        "construction vtable for ",
        "vtable for ",
        "typeinfo ",
        "guard variable for ",
        "transaction clone for ",
    ];
    if SPECIAL.iter().any(|p| name.starts_with(p)) {
        return name;
    }
    // A leading return type ends at the last space outside brackets ("unsigned long*
    // std::__fill_n_a<…>", "decltype(auto) llvm::operator<< <…>"), not at the one of
    // "operator new" nor before the qualifier of an enclosing function ("f(int)
    // const::$_0::operator()", a local entity).
    let mut depth = 0i32;
    let mut at = 0;
    for (i, c) in name.char_indices() {
        match c {
            '<' | '(' | '{' | '[' => depth += 1,
            '>' | ')' | '}' | ']' => depth -= 1,
            ' ' if depth == 0
                && !name[..i].ends_with("operator")
                && !(name[..i].ends_with(')')
                    && ["const", "volatile", "&"]
                        .iter()
                        .any(|q| name[i + 1..].starts_with(q))) =>
            {
                at = i + 1
            }
            _ => {}
        }
    }
    if at < name.len() { &name[at..] } else { name }
}

/// Demangles a C++ name with libstdc++'s own `__cxa_demangle` (GCC's demangler, the one
/// behind c++filt and perf), loaded at run time. cpp_demangle 0.5 rejects
/// names GCC emits, e.g. libstdc++'s `std::__fill_a1`, whose return type holds
/// `srSt11__is_scalarIT0_E7__value` (GCC's `sr <type>` spelling of
/// `std::__is_scalar<T>::__value`); a patch to the crate would have to replay libiberty's
/// substitution order. `None` for names that are not `_Z` names, when libstdc++ is not
/// installed, or when it fails too: the caller keeps the mangled name.
pub(crate) fn demangle_libstdcxx(name: &str) -> Option<String> {
    // Names come from untrusted binaries: a bound on what reaches the C demangler (whose
    // recursion is bounded too), far above real names (libstdc++'s longest are ~1 KiB).
    const MAX_NAME: usize = 16 << 10;
    if !name.starts_with("_Z") || name.len() > MAX_NAME {
        return None;
    }
    cxa::demangle(name)
}

/// `__cxa_demangle` from libstdc++.so.6 through dlopen: no link-time dependency on C++.
mod cxa {
    use std::ffi::{CStr, CString, c_char, c_int, c_void};
    use std::sync::OnceLock;

    type CxaDemangle = unsafe extern "C" fn(
        mangled: *const c_char,
        buf: *mut c_char,
        len: *mut usize,
        status: *mut c_int,
    ) -> *mut c_char;

    fn function() -> Option<CxaDemangle> {
        static FUNCTION: OnceLock<Option<CxaDemangle>> = OnceLock::new();
        *FUNCTION.get_or_init(|| {
            // SAFETY: dlopen/dlsym with valid C strings; the library stays loaded for the
            // process's life (no dlclose), so the function pointer stays valid.
            unsafe {
                let lib = libc::dlopen(
                    c"libstdc++.so.6".as_ptr(),
                    libc::RTLD_NOW | libc::RTLD_LOCAL,
                );
                if lib.is_null() {
                    return None;
                }
                let sym = libc::dlsym(lib, c"__cxa_demangle".as_ptr());
                (!sym.is_null()).then(|| std::mem::transmute::<*mut c_void, CxaDemangle>(sym))
            }
        })
    }

    pub(super) fn demangle(name: &str) -> Option<String> {
        let f = function()?;
        let mangled = CString::new(name).ok()?;
        let mut status: c_int = -1;
        // SAFETY: `__cxa_demangle(mangled, NULL, NULL, &status)` returns a malloc'd C string
        // or NULL (status != 0); it is thread-safe. The result is copied, then freed with the
        // C library's free, as its contract says.
        unsafe {
            let out = f(
                mangled.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut status,
            );
            if out.is_null() {
                return None;
            }
            let text = (status == 0).then(|| CStr::from_ptr(out).to_string_lossy().into_owned());
            libc::free(out.cast());
            text
        }
    }
}

/// Finds the GNU build id (note type 3, name `GNU`) in a raw ELF note stream
/// such as `/sys/kernel/notes` or a `PT_NOTE` segment.
pub fn parse_build_id_note(data: &[u8], little_endian: bool) -> Option<Vec<u8>> {
    let word = |at: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if little_endian {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut at = 0usize;
    while at.checked_add(12)? <= data.len() {
        let namesz = usize::try_from(word(at)?).ok()?;
        let descsz = usize::try_from(word(at + 4)?).ok()?;
        let kind = word(at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at.checked_add(align4(namesz)?)?;
        let next = desc_at.checked_add(align4(descsz)?)?;
        let name = data.get(name_at..name_at.checked_add(namesz)?)?;
        let desc = data.get(desc_at..desc_at.checked_add(descsz)?)?;
        if kind == object::elf::NT_GNU_BUILD_ID.0 && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.to_vec());
        }
        if next <= at {
            return None;
        }
        at = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two aliases named `a` and `b`, and their names.
    fn pair(a: &str, b: &str) -> (RawSym, RawSym, SymNames) {
        let mut names = SymNames::default();
        let mut sym = |name: &str| RawSym {
            start: 0x1000,
            size: 100,
            name: names.own(name.to_string()),
            weak: false,
            global: true,
        };
        let (a, b) = (sym(a), sym(b));
        (a, b, names)
    }

    /// Aliases perf 6.1 chose on a live recording (`perf script` on this machine): cargo's
    /// `RawVec::grow_one` (longest demangled name, where the longest mangled one loses) and two
    /// C++ functions libLLVM folded into one (longer without parameters, shorter with them).
    #[test]
    fn aliases_are_chosen_by_the_names_perf_prints() {
        let perf = "_RNvMs3_NtCslNYArtu3iFV_5alloc7raw_vecINtB5_6RawVecTNtNtNtNtNtCs26ezDKuLN16_5cargo4core8compiler7timings6report11SectionNameNtBP_11SectionDataEE8grow_oneBX_";
        let other = "_RNvMs3_NtCslNYArtu3iFV_5alloc7raw_vecINtB5_6RawVecINtCshM9mHYv9SnI_8indexmap6BucketNtNtNtNtCs26ezDKuLN16_5cargo4core8compiler4unit9UnitIndexINtNtB7_3vec3VecNtNtB7_6string6StringEEE8grow_oneB1r_";
        assert!(other.len() > perf.len());
        let (p, o, names) = pair(perf, other);
        assert!(prefer_first(&p, &o, &names));
        assert!(!prefer_first(&o, &p, &names));
        let perf = "_ZN4llvm9AAResults5ModelINS_21ScopedNoAliasAAResultEE17getModRefInfoMaskERKNS_14MemoryLocationERNS_11AAQueryInfoEb";
        let other = "_ZN4llvm9AAResults5ModelINS_15GlobalsAAResultEE13getModRefInfoEPKNS_8CallBaseES6_RNS_11AAQueryInfoE";
        assert!(demangle(other).len() > demangle(perf).len());
        let (p, o, names) = pair(perf, other);
        assert!(!prefer_first(&o, &p, &names));
        assert_eq!(
            perf_name(&demangle(perf)),
            "llvm::AAResults::Model<llvm::ScopedNoAliasAAResult>::getModRefInfoMask"
        );
    }

    fn raw_at(starts: &[u64]) -> Vec<RawSym> {
        starts
            .iter()
            .map(|&start| RawSym {
                start,
                size: 0,
                name: NameRef::Table(0),
                weak: false,
                global: true,
            })
            .collect()
    }

    /// The order a stable sort by start gives (positions of equal starts ascending).
    fn stable_order(starts: &[u64]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..starts.len() as u32).collect();
        order.sort_by_key(|&i| starts[i as usize]);
        order
    }

    proptest::proptest! {
        /// The radix sort of (start offset, position) pairs orders as a stable sort by start,
        /// duplicates included.
        #[test]
        fn sorted_order_is_a_stable_sort_by_start(
            starts in proptest::collection::vec(0x40_0000u64..0x40_0400, 0..600),
        ) {
            proptest::prop_assert_eq!(sorted_order(&raw_at(&starts)), stable_order(&starts));
        }

        /// Starts 4 GiB or more apart take the comparison sort, with the same order.
        #[test]
        fn sorted_order_of_wide_starts(
            mut starts in proptest::collection::vec(proptest::num::u64::ANY, 2..300),
        ) {
            starts[0] = 0;
            starts[1] = u64::MAX;
            proptest::prop_assert_eq!(sorted_order(&raw_at(&starts)), stable_order(&starts));
        }
    }
}
