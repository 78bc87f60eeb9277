//! The batch resolver used by ingest.

use super::SymbolError;
use super::bundle::Bundle;
use super::debuginfo::{DwarfContext, DwarfFrame, find_debug_file};
use super::elf::ElfSymbols;
use super::kallsyms::{GUEST_KERNEL_DSO, HOST_KERNEL_DSO, KernelSymbols};
use super::perfmap::{PerfMap, is_perf_map};
use crate::FileBytes;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Options of [`Symbolizer::new`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SymbolizeOptions {
    /// Separate-debug directories searched by build id and debuglink (empty: `/usr/lib/debug`).
    pub debug_dirs: Vec<PathBuf>,
    /// Host kallsyms file (`None`: host kernel frames keep no symbol).
    pub kallsyms: Option<PathBuf>,
    /// Host `/proc/modules` copy, for module ranges.
    pub modules: Option<PathBuf>,
    /// Prefix for host user DSO paths (perf's `--symfs`).
    pub sysroot: Option<PathBuf>,
    /// Guest symbol bundles by VM name (see [`Bundle::open`]).
    pub guest_bundles: BTreeMap<String, PathBuf>,
    /// Worker threads of the local pool (0: one per CPU).
    pub threads: usize,
    /// Report inlined frames from DWARF.
    pub inlines: bool,
}

impl Default for SymbolizeOptions {
    fn default() -> Self {
        SymbolizeOptions {
            debug_dirs: Vec::new(),
            kallsyms: None,
            modules: None,
            sysroot: None,
            guest_bundles: BTreeMap::new(),
            threads: 1,
            inlines: true,
        }
    }
}

/// Which address space (and machine) an address belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrSpace {
    /// The host kernel and its modules.
    HostKernel,
    /// A host user process.
    HostUser,
    /// The kernel of a guest VM.
    GuestKernel {
        /// VM name, as given in [`SymbolizeOptions::guest_bundles`].
        vm: String,
    },
    /// A user process of a guest VM.
    GuestUser {
        /// VM name, as given in [`SymbolizeOptions::guest_bundles`].
        vm: String,
    },
}

impl AddrSpace {
    fn vm(&self) -> Option<&str> {
        match self {
            AddrSpace::GuestKernel { vm } | AddrSpace::GuestUser { vm } => Some(vm),
            _ => None,
        }
    }

    fn is_kernel(&self) -> bool {
        matches!(self, AddrSpace::HostKernel | AddrSpace::GuestKernel { .. })
    }
}

/// One address to resolve.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameQuery {
    /// Address space and machine.
    pub space: AddrSpace,
    /// DSO path from the mmap record, or `[kernel.kallsyms]`-style name for kernels.
    pub dso: String,
    /// Build id from the perf.data header, when known.
    pub build_id: Option<Vec<u8>>,
    /// The instruction pointer.
    pub addr: u64,
    /// For user DSOs: `ip - map.start + map.pgoff`, computed by the caller.
    /// `None` means `addr` is already an SVMA (non-PIE executables).
    pub file_offset: Option<u64>,
    /// Read source lines and inlined functions from DWARF (else the symbol table only).
    pub lines: bool,
}

/// One resolved frame. A query yields its inlined frames innermost first;
/// the last frame is the real (outermost) function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedFrame {
    /// Demangled function name; `None` when unresolved.
    pub symbol: Option<String>,
    /// Address minus symbol start for the outermost frame; 0 for inlined frames.
    pub offset: u64,
    /// Inline nesting: 0 for the outermost function, n for the n-th inlined level.
    pub inline_depth: u32,
    /// Source file (the call site for outer frames, as `addr2line -i` prints).
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
    /// DSO name: the query's path, `[kernel.kallsyms]`, `[guest.kernel.kallsyms]` or `[module]`.
    pub dso: String,
    /// The name perf 6.1 gives this level while it unwinds a stack copy, when DWARF describes
    /// the address: every level named as binutils' `addr2line -f -i` names it (the DWARF name;
    /// for the innermost level without a linkage name, the ELF symbol `bfd` picks). `None`:
    /// the same as `symbol` (or no DWARF), so that most levels carry no second string.
    pub unwound_symbol: Option<String>,
    /// `symbol` is no demangled name (a JIT's from its perf map, an ELF symbol that was not
    /// mangled): perf prints it as it is, not as it shortens C++ names ([`super::perf_name`]).
    pub verbatim: bool,
}

impl ResolvedFrame {
    fn unresolved(dso: &str) -> Self {
        ResolvedFrame {
            symbol: None,
            offset: 0,
            inline_depth: 0,
            file: None,
            line: None,
            dso: dso.to_owned(),
            unwound_symbol: None,
            verbatim: false,
        }
    }
}

/// An ELF file loaded for symbolisation, with its DWARF.
struct ElfDso {
    elf: ElfSymbols,
    dwarf: LazyDwarf,
    /// Runtime address minus SVMA (kernel images under KASLR).
    bias: u64,
}

impl ElfDso {
    fn frames(&self, svma: u64, inlines: bool) -> Vec<DwarfFrame> {
        match self.dwarf.get() {
            Some(ctx) => match ctx.lock() {
                Ok(ctx) => ctx.frames(svma, inlines),
                Err(_) => Vec::new(),
            },
            None => Vec::new(),
        }
    }
}

/// A binary's DWARF, opened when first asked for: opening parses every unit's header, which
/// for a test binary's half a gigabyte of DWARF took a few tenths of a second, and a flame
/// graph without source lines ([`FrameQuery::lines`]) asks only for the binaries of frames
/// unwound from stack copies. (Guarded: addr2line contexts are not `Sync`.)
#[derive(Default)]
struct LazyDwarf {
    /// The file holding it and its bytes when they are mapped already.
    source: Option<(PathBuf, Option<Arc<FileBytes>>)>,
    ctx: OnceLock<Option<Mutex<DwarfContext>>>,
}

impl LazyDwarf {
    /// The DWARF of `elf`, read from `path`, when it has any.
    fn of(path: &Path, elf: &ElfSymbols) -> LazyDwarf {
        LazyDwarf {
            source: elf
                .has_dwarf()
                .then(|| (path.to_owned(), elf.file_bytes().cloned())),
            ctx: OnceLock::new(),
        }
    }

    /// The context, opened on the first call; `None` without DWARF or when it does not open.
    fn get(&self) -> Option<&Mutex<DwarfContext>> {
        self.ctx
            .get_or_init(|| {
                let (path, bytes) = self.source.as_ref()?;
                // The file as its symbols were read from it (not mapped a second time).
                let ctx = match bytes {
                    Some(bytes) => DwarfContext::with_bytes(path, bytes),
                    None => DwarfContext::open(path),
                };
                match ctx {
                    Ok(ctx) => Some(Mutex::new(ctx)),
                    Err(e) => {
                        log::warn!("{e}; lines unavailable");
                        None
                    }
                }
            })
            .as_ref()
    }
}

struct Machine {
    kernel: Option<KernelSymbols>,
    vmlinux: Option<PathBuf>,
    bundle: Option<Bundle>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct DsoKey {
    vm: Option<String>,
    kernel: bool,
    dso: String,
    build_id: Option<Vec<u8>>,
}

type DsoSlot = Arc<OnceLock<Option<Arc<ElfDso>>>>;
type PerfMapSlot = Arc<OnceLock<Option<Arc<PerfMap>>>>;

/// Resolves addresses of the host and of guest VMs to symbols, lines and
/// inlined frames. Loaded ELF files and DWARF contexts are cached per DSO.
pub struct Symbolizer {
    options: SymbolizeOptions,
    host: Machine,
    guests: BTreeMap<String, Machine>,
    dsos: Mutex<HashMap<DsoKey, DsoSlot>>,
    /// Perf maps (JIT symbols) by dso path, each read once (outside the lock, as the dsos).
    perf_maps: Mutex<HashMap<String, PerfMapSlot>>,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("options", &self.options)
            .field("guests", &self.guests.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Where a host binary may be, in order: its path (under `sysroot`, perf's `--symfs`), then by
/// build id in each debug directory (`.build-id/xx/rest`, a whole binary as in perf's build-id
/// cache, `.build-id/xx/rest.debug`, and the cache's own `<path>/<build id>/elf`).
pub(crate) fn binary_candidates(
    sysroot: Option<&Path>,
    debug_dirs: &[PathBuf],
    dso: &str,
    build_id: Option<&[u8]>,
) -> Vec<PathBuf> {
    let path = Path::new(dso);
    let mut out = vec![match sysroot {
        Some(root) => root.join(strip_root(path)),
        None => path.to_owned(),
    }];
    if let Some(id) = build_id.filter(|id| !id.is_empty()) {
        // perf's build-id cache keeps a binary as `DIR/<path>/<build id>/elf` (the vdso as
        // `DIR/[vdso]/<build id>/vdso`), linked from `DIR/.build-id/xx/rest` for most.
        let leaf = if dso == "[vdso]" { "vdso" } else { "elf" };
        let hex = super::hex_string(id);
        for dir in debug_dirs {
            out.extend(super::debuginfo::build_id_debug_path(dir, id, ""));
            out.extend(super::debuginfo::build_id_debug_path(dir, id, ".debug"));
            out.push(dir.join(strip_root(path)).join(&hex).join(leaf));
        }
    }
    out
}

fn strip_root(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

impl Symbolizer {
    /// Loads the host kallsyms and opens every guest bundle.
    pub fn new(options: SymbolizeOptions) -> Result<Self, SymbolError> {
        let host_kernel = match &options.kallsyms {
            Some(path) => Some(KernelSymbols::from_files(
                path,
                options.modules.as_deref(),
                HOST_KERNEL_DSO,
            )?),
            None => None,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .build()
            .map_err(|e| SymbolError::ThreadPool(e.to_string()))?;
        let mut symbolizer = Symbolizer {
            host: Machine {
                kernel: host_kernel,
                vmlinux: None,
                bundle: None,
            },
            guests: BTreeMap::new(),
            dsos: Mutex::new(HashMap::new()),
            perf_maps: Mutex::new(HashMap::new()),
            pool,
            options,
        };
        for (vm, path) in symbolizer.options.guest_bundles.clone() {
            let bundle = Bundle::open(&path)?;
            symbolizer.add_guest_bundle(&vm, bundle)?;
        }
        Ok(symbolizer)
    }

    /// Loads a host binary (its symbols, and its DWARF when `with_dwarf`: source lines will
    /// be asked for) before any query asks for it: ingest calls this from a thread of its own
    /// for each binary as the recording's walk first maps a frame into it, so that loading
    /// overlaps the walk.
    pub fn preload_user(&self, dso: &str, build_id: Option<&[u8]>, with_dwarf: bool) {
        if is_perf_map(dso) {
            self.perf_map(dso);
            return;
        }
        let key = DsoKey {
            vm: None,
            kernel: false,
            dso: dso.to_owned(),
            build_id: build_id.map(<[u8]>::to_vec),
        };
        if let Some(dso) = self.dso(&key, None)
            && with_dwarf
        {
            let _ = dso.dwarf.get();
        }
    }

    /// Takes over the host binaries another symbolizer loaded ([`Symbolizer::preload_user`]).
    /// The caller promises that both search the same `sysroot` and `debug_dirs`, the only
    /// options a host binary's loading reads.
    pub fn adopt_preloaded(&self, other: Symbolizer) {
        if let (Ok(theirs), Ok(mut ours)) = (other.perf_maps.into_inner(), self.perf_maps.lock()) {
            for (path, slot) in theirs {
                if slot.get().is_some() {
                    ours.entry(path).or_insert(slot);
                }
            }
        }
        let Ok(theirs) = other.dsos.into_inner() else {
            return;
        };
        let Ok(mut ours) = self.dsos.lock() else {
            return;
        };
        for (key, slot) in theirs {
            if key.vm.is_none() && !key.kernel && slot.get().is_some() {
                ours.entry(key).or_insert(slot);
            }
        }
    }

    /// Sets the host kernel's symbols (kallsyms read ahead, as [`SymbolizeOptions::kallsyms`]
    /// would have them read).
    pub fn set_host_kernel(&mut self, kernel: KernelSymbols) {
        self.host.kernel = Some(kernel);
    }

    /// Adds (or replaces) the symbol bundle of a guest VM.
    pub fn add_guest_bundle(&mut self, vm: &str, bundle: Bundle) -> Result<(), SymbolError> {
        let kernel = bundle.kernel_symbols(GUEST_KERNEL_DSO)?;
        if kernel
            .as_ref()
            .is_some_and(KernelSymbols::addresses_restricted)
        {
            log::warn!(
                "guest {vm}: bundle kallsyms has only zero addresses (kptr_restrict); \
                 guest kernel frames stay unresolved"
            );
        }
        let vmlinux = bundle.vmlinux_path().map(Path::to_owned);
        self.guests.insert(
            vm.to_owned(),
            Machine {
                kernel,
                vmlinux,
                bundle: Some(bundle),
            },
        );
        if let Ok(mut dsos) = self.dsos.lock() {
            dsos.retain(|k, _| k.vm.as_deref() != Some(vm));
        }
        Ok(())
    }

    /// The kernel symbol table of the host (`None`) or a guest VM.
    pub fn kernel_symbols(&self, vm: Option<&str>) -> Option<&KernelSymbols> {
        self.machine(vm)?.kernel.as_ref()
    }

    fn machine(&self, vm: Option<&str>) -> Option<&Machine> {
        match vm {
            None => Some(&self.host),
            Some(vm) => self.guests.get(vm),
        }
    }

    /// Resolves a batch. Returns one `Vec` per query, inlined frames innermost
    /// first, never empty (an unresolved address gives one frame with
    /// `symbol: None` and the query's DSO). Each distinct query is resolved
    /// once; the result is the same for every thread count.
    pub fn resolve_all(&self, queries: &[FrameQuery]) -> Vec<Vec<ResolvedFrame>> {
        // Distinct queries in first-occurrence order; results depend only on the
        // query, so hashing order cannot change the output.
        // foldhash: a million queries of a large recording hash too slowly with SipHash.
        let mut first_seen: HashMap<&FrameQuery, usize, foldhash::fast::RandomState> =
            HashMap::default();
        let mut distinct: Vec<&FrameQuery> = Vec::new();
        let query_idx: Vec<usize> = queries
            .iter()
            .map(|q| {
                *first_seen.entry(q).or_insert_with(|| {
                    distinct.push(q);
                    distinct.len() - 1
                })
            })
            .collect();
        drop(first_seen);
        let mut by_idx = self.resolve_refs(&distinct);
        // Each result moves to the last query that asked for it and is cloned for the
        // others (callers usually ask once: no copy).
        let mut uses = vec![0u32; by_idx.len()];
        for &i in &query_idx {
            if let Some(u) = uses.get_mut(i) {
                *u += 1;
            }
        }
        queries
            .iter()
            .zip(query_idx)
            .map(|(q, i)| {
                let last = uses.get_mut(i).is_some_and(|u| {
                    *u -= 1;
                    *u == 0
                });
                match by_idx.get_mut(i) {
                    Some(f) if last => std::mem::take(f),
                    Some(f) => f.clone(),
                    None => vec![ResolvedFrame::unresolved(&q.dso)],
                }
            })
            .collect()
    }

    /// [`Symbolizer::resolve_all`] for queries that are all distinct (a caller that made
    /// them from distinct frames): no hashing of every query to find the repeated ones (a
    /// million queries of a large recording). A repeated query is resolved again, to the
    /// same frames.
    pub fn resolve_distinct(&self, queries: &[FrameQuery]) -> Vec<Vec<ResolvedFrame>> {
        let refs: Vec<&FrameQuery> = queries.iter().collect();
        self.resolve_refs(&refs)
    }

    /// The frames of each query, in order (an unresolved one: one frame naming its dso).
    fn resolve_refs(&self, distinct: &[&FrameQuery]) -> Vec<Vec<ResolvedFrame>> {
        // Group by DSO so that each DWARF context is used by one task at a time.
        // Keyed by borrowed parts of the query: the owned key is made once per group.
        type Borrowed<'q> = (Option<&'q str>, bool, &'q str, Option<&'q [u8]>);
        fn borrowed(q: &FrameQuery) -> Borrowed<'_> {
            if q.space.is_kernel() {
                (q.space.vm(), true, "", None)
            } else {
                (q.space.vm(), false, q.dso.as_str(), q.build_id.as_deref())
            }
        }
        let mut group_of: HashMap<Borrowed<'_>, usize, foldhash::fast::RandomState> =
            HashMap::default();
        let mut groups: Vec<(DsoKey, Vec<(&FrameQuery, usize)>)> = Vec::new();
        for (idx, &q) in distinct.iter().enumerate() {
            let g = *group_of.entry(borrowed(q)).or_insert_with(|| {
                groups.push((self.dso_key(q), Vec::new()));
                groups.len() - 1
            });
            if let Some((_, items)) = groups.get_mut(g) {
                items.push((q, idx));
            }
        }
        let resolved: Vec<Vec<(usize, Vec<ResolvedFrame>)>> = self.pool.install(|| {
            groups
                .par_iter()
                .map(|(key, items)| self.resolve_group(key, items))
                .collect()
        });
        let mut by_idx: Vec<Vec<ResolvedFrame>> = vec![Vec::new(); distinct.len()];
        for (idx, frames) in resolved.into_iter().flatten() {
            if let Some(slot) = by_idx.get_mut(idx) {
                *slot = frames;
            }
        }
        for (frames, q) in by_idx.iter_mut().zip(distinct) {
            if frames.is_empty() {
                *frames = vec![ResolvedFrame::unresolved(&q.dso)];
            }
        }
        by_idx
    }

    /// Resolves one query (convenience over [`Symbolizer::resolve_all`]).
    pub fn resolve(&self, query: &FrameQuery) -> Vec<ResolvedFrame> {
        self.resolve_all(std::slice::from_ref(query))
            .pop()
            .unwrap_or_default()
    }

    fn dso_key(&self, q: &FrameQuery) -> DsoKey {
        if q.space.is_kernel() {
            DsoKey {
                vm: q.space.vm().map(str::to_owned),
                kernel: true,
                dso: String::new(),
                build_id: None,
            }
        } else {
            DsoKey {
                vm: q.space.vm().map(str::to_owned),
                kernel: false,
                dso: q.dso.clone(),
                build_id: q.build_id.clone(),
            }
        }
    }

    fn resolve_group(
        &self,
        key: &DsoKey,
        items: &[(&FrameQuery, usize)],
    ) -> Vec<(usize, Vec<ResolvedFrame>)> {
        // A JIT's code: named by the process's perf map at its address (perf: identity map).
        if !key.kernel && key.vm.is_none() && is_perf_map(&key.dso) {
            let map = self.perf_map(&key.dso);
            return items
                .iter()
                .map(|&(q, idx)| {
                    let symbol = map
                        .as_deref()
                        .and_then(|m| m.lookup(q.addr))
                        .map(|(name, off)| (name.to_owned(), off));
                    (idx, build_frames(symbol, true, Vec::new(), || None, &q.dso))
                })
                .collect();
        }
        // For a kernel, only a query naming the kernel image carries its build id
        // (module frames carry the module's).
        let first = items
            .iter()
            .map(|(q, _)| *q)
            .find(|q| !key.kernel || (is_kernel_image_dso(&q.dso) && q.build_id.is_some()));
        let dso = self.dso(key, first);
        // (Asking opens the DWARF: only when a query wants it.)
        let uses_dwarf = items.iter().any(|(q, _)| q.lines)
            && dso.as_ref().is_some_and(|d| d.dwarf.get().is_some());
        let one =
            |&(q, idx): &(&FrameQuery, usize)| (idx, self.resolve_one(key, dso.as_deref(), q));
        if uses_dwarf {
            items.iter().map(one).collect()
        } else {
            items.par_iter().with_min_len(1024).map(one).collect()
        }
    }

    /// The perf map at `path`, read once: under the sysroot when it is there (as a binary is
    /// looked for), else where the process wrote it (perf reads only there); `None` when
    /// there is none.
    fn perf_map(&self, path: &str) -> Option<Arc<PerfMap>> {
        let slot = {
            let mut maps = self.perf_maps.lock().ok()?;
            Arc::clone(maps.entry(path.to_owned()).or_default())
        };
        slot.get_or_init(|| {
            let rooted = binary_candidates(self.options.sysroot.as_deref(), &[], path, None);
            let file = rooted
                .into_iter()
                .find(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from(path));
            match std::fs::read(&file) {
                Ok(bytes) => Some(Arc::new(PerfMap::parse(&bytes))),
                Err(e) => {
                    log::warn!(
                        "{}: {e}; the JIT frames it names stay unresolved",
                        file.display()
                    );
                    None
                }
            }
        })
        .clone()
    }

    fn dso(&self, key: &DsoKey, first: Option<&FrameQuery>) -> Option<Arc<ElfDso>> {
        let slot = {
            let mut dsos = self.dsos.lock().ok()?;
            Arc::clone(dsos.entry(key.clone()).or_default())
        };
        slot.get_or_init(|| {
            let loaded = if key.kernel {
                self.load_vmlinux(key.vm.as_deref(), first)
            } else {
                self.load_user_dso(key)
            };
            loaded.map(Arc::new)
        })
        .clone()
    }

    fn load_vmlinux(&self, vm: Option<&str>, first: Option<&FrameQuery>) -> Option<ElfDso> {
        let machine = self.machine(vm)?;
        let path = match &machine.vmlinux {
            Some(p) => p.clone(),
            None => {
                // Host: a vmlinux debug file found by the kernel's build id.
                let id = first.and_then(|q| q.build_id.as_deref())?;
                find_debug_file(
                    Path::new("vmlinux"),
                    Some(id),
                    None,
                    &self.options.debug_dirs,
                )?
            }
        };
        let elf = match ElfSymbols::from_path(&path) {
            Ok(elf) => elf,
            Err(e) => {
                log::warn!("{e}; kernel lines unavailable");
                return None;
            }
        };
        // KASLR: runtime _stext (kallsyms) minus link-time _stext.
        let bias = ["_stext", "_text", "startup_64"]
            .iter()
            .find_map(|name| {
                let runtime = machine.kernel.as_ref()?.address_of(name)?;
                Some(runtime.wrapping_sub(elf.address_of(name)?))
            })
            .unwrap_or(0);
        let dwarf = LazyDwarf::of(&path, &elf);
        Some(ElfDso { elf, dwarf, bias })
    }

    fn load_user_dso(&self, key: &DsoKey) -> Option<ElfDso> {
        let want = key.build_id.as_deref().filter(|id| !id.is_empty());
        let mut debug_hint = None;
        let mut extra_dirs = Vec::new();
        let mut candidates: Vec<PathBuf> = Vec::new();
        match key.vm.as_deref() {
            None => {
                candidates = binary_candidates(
                    self.options.sysroot.as_deref(),
                    &self.debug_dirs(),
                    &key.dso,
                    want,
                );
            }
            Some(vm) => {
                let bundle = self.guests.get(vm)?.bundle.as_ref()?;
                let files = bundle.find_binary(&key.dso, want)?;
                candidates.push(files.binary);
                debug_hint = files.debug;
                extra_dirs.push(bundle.root().to_owned());
            }
        }
        let mut found = None;
        for candidate in candidates {
            if !std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
                continue;
            }
            // The build id first: a wrong build is turned down before its symbols are parsed.
            if want.is_some() {
                match ElfSymbols::build_id_of(&candidate) {
                    Ok(id) if id.as_deref() == want => {}
                    Ok(id) => {
                        log::warn!(
                            "{}: build id {} differs from the recorded {}; ignored",
                            candidate.display(),
                            hex_or_none(id.as_deref()),
                            hex_or_none(want)
                        );
                        continue;
                    }
                    Err(e) => {
                        log::warn!("{e}");
                        continue;
                    }
                }
            }
            match ElfSymbols::from_path(&candidate) {
                Ok(elf) => {
                    found = Some((candidate, elf));
                    break;
                }
                Err(e) => log::warn!("{e}"),
            }
        }
        let Some((path, elf)) = found else {
            // [vdso], //anon and friends are not files; say so only at debug level.
            if key.dso.starts_with('/') && !key.dso.starts_with("//") {
                log::warn!("{}: binary not found; its frames stay unresolved", key.dso);
            } else {
                log::debug!("{}: not a file; frames stay unresolved", key.dso);
            }
            return None;
        };
        let mut elf = elf;
        let dwarf = if elf.has_dwarf() {
            // The binary holds its own DWARF: its symbols are parsed already (a second parse
            // of a test binary's 1.3 M symbols cost ~0.7 s).
            LazyDwarf::of(&path, &elf)
        } else {
            let mut dirs = self.debug_dirs();
            dirs.extend(extra_dirs);
            debug_hint
                .filter(|p| p.is_file())
                .or_else(|| find_debug_file(&path, elf.build_id(), elf.debuglink(), &dirs))
                .and_then(|p| {
                    let debug_elf = ElfSymbols::from_path(&p).ok()?;
                    // A stripped binary takes its symbol table from the debug file.
                    if elf.symbols().len() < debug_elf.symbols().len() {
                        elf.take_symbols_of(&debug_elf);
                    }
                    Some(LazyDwarf::of(&p, &debug_elf))
                })
                .unwrap_or_default()
        };
        Some(ElfDso {
            elf,
            dwarf,
            bias: 0,
        })
    }

    fn debug_dirs(&self) -> Vec<PathBuf> {
        if self.options.debug_dirs.is_empty() {
            super::debuginfo::default_debug_dirs()
        } else {
            self.options.debug_dirs.clone()
        }
    }

    fn resolve_one(
        &self,
        key: &DsoKey,
        dso: Option<&ElfDso>,
        q: &FrameQuery,
    ) -> Vec<ResolvedFrame> {
        if key.kernel {
            return self.resolve_kernel(key.vm.as_deref(), dso, q);
        }
        let Some(dso) = dso else {
            return vec![ResolvedFrame::unresolved(&q.dso)];
        };
        let svma = match q.file_offset {
            Some(off) => match dso.elf.file_offset_to_svma(off) {
                Some(svma) => svma,
                None => return vec![ResolvedFrame::unresolved(&q.dso)],
            },
            None => q.addr,
        };
        // A name the demanglers leave as it is was not mangled: perf prints it whole.
        let mut verbatim = false;
        let symbol = dso.elf.lookup(svma).map(|(s, off)| {
            let demangled = dso.elf.demangled(s);
            verbatim = *demangled == *dso.elf.name(s);
            (demangled.to_string(), off)
        });
        let dwarf = if q.lines {
            dso.frames(svma, self.options.inlines)
        } else {
            Vec::new()
        };
        let bfd = || dso.elf.bfd_lookup(svma);
        build_frames(symbol, verbatim, dwarf, bfd, &q.dso)
    }

    fn resolve_kernel(
        &self,
        vm: Option<&str>,
        dso: Option<&ElfDso>,
        q: &FrameQuery,
    ) -> Vec<ResolvedFrame> {
        let table = self.machine(vm).and_then(|m| m.kernel.as_ref());
        let (symbol, dso_name) = match table {
            Some(t) if !t.addresses_restricted() => {
                let hit = t.lookup(q.addr);
                match hit.symbol {
                    Some(s) => (Some((s.name.clone(), hit.offset)), hit.dso.to_owned()),
                    // Not in this kallsyms (a module it does not list, or an empty file): the
                    // recording's own kernel map names the dso, as perf's maps__find does.
                    None => (None, q.dso.clone()),
                }
            }
            _ => (None, q.dso.clone()),
        };
        let in_image = table.is_none_or(|t| t.kernel_dso() == dso_name);
        let dwarf = match dso {
            Some(d) if in_image && q.lines => {
                d.frames(q.addr.wrapping_sub(d.bias), self.options.inlines)
            }
            _ => Vec::new(),
        };
        // Without kallsyms, the vmlinux symbol table names the function.
        let symbol = symbol.or_else(|| {
            let d = dso.filter(|_| in_image)?;
            d.elf
                .lookup(q.addr.wrapping_sub(d.bias))
                .map(|(s, off)| (d.elf.name(s).into_owned(), off))
        });
        build_frames(symbol, false, dwarf, || None, &dso_name)
    }
}

/// `[kernel.kallsyms]`, `[guest.kernel.kallsyms]` and perf's `[kernel.kallsyms]_text`-style names.
fn is_kernel_image_dso(dso: &str) -> bool {
    dso.starts_with(HOST_KERNEL_DSO) || dso.starts_with(GUEST_KERNEL_DSO)
}

fn hex_or_none(id: Option<&[u8]>) -> String {
    id.map_or_else(|| "(none)".to_owned(), super::hex_string)
}

/// Combines the symbol-table hit with DWARF frames: inlined frames keep their
/// DWARF names, the outermost frame takes the symbol-table name when there is one.
/// `bfd`: the ELF symbol binutils names an address by (demangled), for the names perf gives
/// levels while unwinding ([`ResolvedFrame::unwound_symbol`]); asked only where it is used.
fn build_frames(
    symbol: Option<(String, u64)>,
    verbatim: bool,
    dwarf: Vec<DwarfFrame>,
    bfd: impl FnOnce() -> Option<String>,
    dso: &str,
) -> Vec<ResolvedFrame> {
    let verbatim = verbatim && symbol.is_some();
    if dwarf.is_empty() {
        let (name, offset) = match symbol {
            Some((n, o)) => (Some(n), o),
            None => (None, 0),
        };
        return vec![ResolvedFrame {
            symbol: name,
            offset,
            inline_depth: 0,
            file: None,
            line: None,
            dso: dso.to_owned(),
            unwound_symbol: None,
            verbatim,
        }];
    }
    let n = dwarf.len();
    let mut bfd = Some(bfd);
    dwarf
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let outermost = i + 1 == n;
            // binutils names the innermost level by the ELF symbol when its DWARF entry has
            // no linkage name (bfd's `_bfd_dwarf2_find_nearest_line`); the callers keep theirs.
            let by_elf = (i == 0 && !f.linkage)
                .then(|| bfd.take().and_then(|b| b()))
                .flatten();
            let (name, offset, unwound) = match (&symbol, outermost) {
                (Some((s, o)), true) => (Some(s.clone()), *o, by_elf.or(f.function)),
                _ => (f.function, 0, by_elf),
            };
            let unwound_symbol = unwound.filter(|u| name.as_ref() != Some(u));
            ResolvedFrame {
                symbol: name,
                offset,
                inline_depth: u32::try_from(n - 1 - i).unwrap_or(u32::MAX),
                file: f.file,
                line: f.line,
                dso: dso.to_owned(),
                unwound_symbol,
                verbatim: verbatim && outermost,
            }
        })
        .collect()
}
