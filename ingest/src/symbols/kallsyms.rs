//! `/proc/kallsyms` and `/proc/modules` text into a sorted kernel symbol table.
//!
//! The semantics follow perf's `dso__load_kallsyms`: only the symbol types perf
//! keeps (`T`, `W`, `D`, `B`, any case) enter the table, ARM mapping symbols
//! (`$x`) are dropped, aliases at one address are reduced to the last of them in
//! file order (what perf's `choose_best_symbol` ends with, see below), and a symbol extends to the start of the
//! next one (`symbols__fixup_end`), except that the last symbol of the kernel
//! or of a module ends at the next page boundary.

use super::SymbolError;
use std::path::Path;

/// The DSO name perf gives the host kernel image.
pub const HOST_KERNEL_DSO: &str = "[kernel.kallsyms]";
/// The DSO name perf gives a guest kernel image.
pub const GUEST_KERNEL_DSO: &str = "[guest.kernel.kallsyms]";

/// Symbol names perf treats as idle loops (`symbol__is_idle`).
const IDLE_SYMBOLS: &[&str] = &[
    "acpi_idle_do_entry",
    "acpi_processor_ffh_cstate_enter",
    "arch_cpu_idle",
    "cpu_idle",
    "cpu_startup_entry",
    "idle_cpu",
    "intel_idle",
    "default_idle",
    "native_safe_halt",
    "enter_idle",
    "exit_idle",
    "mwait_idle",
    "mwait_idle_with_hints",
    "mwait_idle_with_hints.constprop.0",
    "poll_idle",
    "ppc64_runlatch_off",
    "pseries_dedicated_idle_sleep",
    "psw_idle",
    "psw_idle_exit",
];

/// True when perf would mark a kernel symbol of this name as idle (`symbol__is_idle`).
pub fn is_idle_symbol(name: &str) -> bool {
    IDLE_SYMBOLS.contains(&name)
}

/// How a kallsyms symbol is bound, from the case of its type letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KernelSymbolBinding {
    /// Lower-case type letter.
    Local,
    /// Upper-case type letter other than `W`.
    Global,
    /// `W` or `w`.
    Weak,
}

/// One symbol of a kernel symbol table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSymbol {
    /// Start address.
    pub start: u64,
    /// End address (exclusive), computed as perf does.
    pub end: u64,
    /// Symbol name without the module suffix.
    pub name: String,
    /// The kallsyms type letter as written.
    pub kind: char,
    /// Binding derived from the type letter.
    pub binding: KernelSymbolBinding,
    /// Index into [`KernelSymbols::modules`], or `None` for the kernel image.
    pub module_idx: Option<usize>,
}

/// One loaded kernel module, from `/proc/modules` or inferred from kallsyms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelModule {
    /// Module name without brackets.
    pub name: String,
    /// Load address of the module's core section.
    pub start: u64,
    /// Size in bytes as `/proc/modules` reports it (0 when inferred).
    pub size: u64,
}

impl KernelModule {
    /// The perf DSO name of the module, such as `[virtio_net]`.
    pub fn dso_name(&self) -> String {
        format!("[{}]", self.name)
    }
}

/// The result of a kernel address lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLookup<'a> {
    /// The symbol containing the address, if any.
    pub symbol: Option<&'a KernelSymbol>,
    /// Address minus the symbol start (0 without a symbol).
    pub offset: u64,
    /// The DSO name: the kernel image name or `[module]`.
    pub dso: &'a str,
}

/// A sorted kernel symbol table built from kallsyms and modules text.
#[derive(Debug, Clone, Default)]
pub struct KernelSymbols {
    symbols: Vec<KernelSymbol>,
    modules: Vec<KernelModule>,
    module_dso_names: Vec<String>,
    kernel_dso: String,
    n_lines: usize,
    addresses_restricted: bool,
}

struct RawSymbol {
    start: u64,
    name: String,
    kind: char,
    binding: KernelSymbolBinding,
    module: Option<String>,
    line_idx: usize,
}

fn is_kept_type(kind: char) -> bool {
    matches!(kind.to_ascii_uppercase(), 'T' | 'W' | 'D' | 'B')
}

fn binding_of(kind: char) -> KernelSymbolBinding {
    if kind == 'W' || kind == 'w' {
        KernelSymbolBinding::Weak
    } else if kind.is_ascii_uppercase() {
        KernelSymbolBinding::Global
    } else {
        KernelSymbolBinding::Local
    }
}

fn round_up_page(addr: u64) -> u64 {
    addr.saturating_add(4095) & !4095
}

/// Parses `/proc/modules` text: `name size refcount deps state 0xaddr [taint]`.
///
/// Lines that do not parse are skipped, as perf's `modules__parse` does. The
/// result is sorted by start address, then name.
pub fn parse_modules(text: &str) -> Vec<KernelModule> {
    let mut modules = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(name), Some(size)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(size) = size.parse::<u64>() else {
            continue;
        };
        let Some(addr) = line
            .split_ascii_whitespace()
            .find_map(|f| f.strip_prefix("0x"))
        else {
            continue;
        };
        let Ok(start) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        modules.push(KernelModule {
            name: name.to_owned(),
            start,
            size,
        });
    }
    modules.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.name.cmp(&b.name)));
    modules
}

impl KernelSymbols {
    /// Reads and parses a kallsyms file and an optional modules file.
    pub fn from_files(
        kallsyms: &Path,
        modules: Option<&Path>,
        kernel_dso: &str,
    ) -> Result<Self, SymbolError> {
        let text = read_text(kallsyms)?;
        let modules_text = match modules {
            Some(path) => Some(read_text(path)?),
            None => None,
        };
        Self::parse(&text, modules_text.as_deref(), kernel_dso).map_err(|e| e.with_path(kallsyms))
    }

    /// Parses kallsyms text and optional modules text.
    ///
    /// `kernel_dso` is the DSO name used for addresses outside every module,
    /// normally [`HOST_KERNEL_DSO`] or [`GUEST_KERNEL_DSO`]. A line that does
    /// not parse is an error naming its 1-based line number; an empty file
    /// gives an empty table.
    pub fn parse(
        kallsyms: &str,
        modules: Option<&str>,
        kernel_dso: &str,
    ) -> Result<Self, SymbolError> {
        let mut raw = Vec::new();
        let mut n_lines = 0;
        let mut n_nonzero = 0usize;
        for (line_idx, line) in kallsyms.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            n_lines += 1;
            let bad = || SymbolError::Kallsyms {
                path: None,
                line: line_idx + 1,
                reason: format!("expected `ADDRESS TYPE NAME [module]`, got {line:?}"),
            };
            let mut fields = line.split_ascii_whitespace();
            let (Some(addr), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad());
            };
            let start = u64::from_str_radix(addr, 16).map_err(|_| bad())?;
            let mut kind_chars = kind.chars();
            let (Some(kind), None) = (kind_chars.next(), kind_chars.next()) else {
                return Err(bad());
            };
            if start != 0 {
                n_nonzero += 1;
            }
            let module = fields
                .next()
                .and_then(|m| m.strip_prefix('['))
                .and_then(|m| m.strip_suffix(']'))
                .map(str::to_owned);
            if !is_kept_type(kind) || name.starts_with('$') {
                continue;
            }
            raw.push(RawSymbol {
                start,
                name: name.to_owned(),
                kind,
                binding: binding_of(kind),
                module,
                line_idx,
            });
        }
        let addresses_restricted = n_lines > 0 && n_nonzero == 0;
        let mut table = KernelSymbols {
            kernel_dso: kernel_dso.to_owned(),
            n_lines,
            addresses_restricted,
            ..KernelSymbols::default()
        };
        table.modules = modules.map(parse_modules).unwrap_or_default();
        if addresses_restricted {
            log::warn!(
                "kallsyms: all {n_lines} addresses are zero (kernel.kptr_restrict or no root); \
                 kernel addresses will stay unresolved"
            );
            return Ok(table);
        }
        // Stable sort by address keeps file order among aliases, as perf's rbtree insert does.
        raw.sort_by_key(|s| (s.start, s.line_idx));
        // Of the aliases at one address the last in file order stays: perf (6.1) runs
        // `symbols__fixup_end` before `symbols__fixup_duplicate`, so only the last of them
        // has a length, and `choose_best_symbol` prefers a symbol with a length to any other
        // rule (on this machine's kallsyms perf names `__pi_memcpy`, not `memcpy`, and
        // `__x64_sys_vfork`, not `__ia32_sys_vfork`).
        let mut deduped: Vec<RawSymbol> = Vec::with_capacity(raw.len());
        for sym in raw {
            match deduped.last_mut() {
                Some(last) if last.start == sym.start => *last = sym,
                _ => deduped.push(sym),
            }
        }
        // Modules only named by kallsyms get a module entry without a size.
        for sym in &deduped {
            if let Some(m) = &sym.module {
                if !table.modules.iter().any(|k| &k.name == m) {
                    table.modules.push(KernelModule {
                        name: m.clone(),
                        start: sym.start,
                        size: 0,
                    });
                } else if let Some(k) = table
                    .modules
                    .iter_mut()
                    .find(|k| &k.name == m && k.size == 0 && sym.start < k.start)
                {
                    k.start = sym.start;
                }
            }
        }
        table
            .modules
            .sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.name.cmp(&b.name)));
        table.module_dso_names = table.modules.iter().map(KernelModule::dso_name).collect();
        let n = deduped.len();
        let mut symbols = Vec::with_capacity(n);
        for (i, sym) in deduped.iter().enumerate() {
            let end = match deduped.get(i + 1) {
                Some(next) if next.module.is_some() != sym.module.is_some() => {
                    round_up_page(sym.start.saturating_add(4096))
                }
                Some(next) => next.start,
                None => round_up_page(sym.start).saturating_add(4096),
            };
            let module_idx = sym
                .module
                .as_ref()
                .and_then(|m| table.modules.iter().position(|k| &k.name == m));
            symbols.push(KernelSymbol {
                start: sym.start,
                end,
                name: sym.name.clone(),
                kind: sym.kind,
                binding: sym.binding,
                module_idx,
            });
        }
        table.symbols = symbols;
        Ok(table)
    }

    /// True when every address in the file was zero (`kernel.kptr_restrict`).
    pub fn addresses_restricted(&self) -> bool {
        self.addresses_restricted
    }

    /// The symbols, sorted by start address.
    pub fn symbols(&self) -> &[KernelSymbol] {
        &self.symbols
    }

    /// The modules, sorted by start address.
    pub fn modules(&self) -> &[KernelModule] {
        &self.modules
    }

    /// Number of non-empty lines in the kallsyms text.
    pub fn n_lines(&self) -> usize {
        self.n_lines
    }

    /// The DSO name used for the kernel image.
    pub fn kernel_dso(&self) -> &str {
        &self.kernel_dso
    }

    /// The start address of the first symbol with this name.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.start)
    }

    fn module_containing(&self, addr: u64) -> Option<usize> {
        let idx = self.modules.partition_point(|m| m.start <= addr);
        let m = self.modules.get(idx.checked_sub(1)?)?;
        (m.size > 0 && addr - m.start < m.size).then_some(idx - 1)
    }

    /// Looks an address up as perf does: the map (kernel or module) first, then
    /// the symbol of that map whose `[start, end)` holds the address.
    pub fn lookup(&self, addr: u64) -> KernelLookup<'_> {
        let map_module = self.module_containing(addr);
        let idx = self.symbols.partition_point(|s| s.start <= addr);
        let symbol = idx
            .checked_sub(1)
            .and_then(|i| self.symbols.get(i))
            .filter(|s| addr < s.end || s.start == addr);
        // A symbol belongs to the map it came from; without a modules size the
        // symbol's own module decides.
        let symbol = symbol.filter(|s| match map_module {
            Some(m) => s.module_idx == Some(m),
            None => s
                .module_idx
                .is_none_or(|i| self.modules.get(i).is_some_and(|k| k.size == 0)),
        });
        let module_idx = map_module.or_else(|| symbol.and_then(|s| s.module_idx));
        let dso = module_idx
            .and_then(|i| self.module_dso_names.get(i))
            .map_or(self.kernel_dso.as_str(), String::as_str);
        KernelLookup {
            symbol,
            offset: symbol.map_or(0, |s| addr - s.start),
            dso,
        }
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String, SymbolError> {
    let bytes = std::fs::read(path).map_err(|source| SymbolError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
