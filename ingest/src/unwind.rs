//! DWARF CFI unwinding of `--call-graph dwarf` user stacks (`PERF_SAMPLE_REGS_USER` +
//! `PERF_SAMPLE_STACK_USER`), as `perf script` does with libdw.
//!
//! framehop (samply's unwinder) does the CFI work; this module gives it the process's modules,
//! found the way the symbolizer finds binaries (`--symfs`, then by build id in the debug
//! directories), and mirrors perf's libdw walk:
//! - the first frame is the sample's user ip, every later one its return address − 1 (libdw's
//!   `--pc` for non-activation frames);
//! - a frame whose address has no mapping, or whose binary cannot be read, is kept and ends the
//!   walk (libdw cannot unwind through a module it cannot open);
//! - a walk ends where the stack copy ends, and after [`MAX_FRAMES`] frames;
//! - perf's libunwind glue (`read_unwind_spec_eh_frame`) looks for a library's `.eh_frame_hdr`
//!   relative to the lowest start of any mapping of that file the process ever had, minus the
//!   ELF's first `p_vaddr - p_offset`. perf never forgets mappings, so after an exec whose
//!   parent had the library lower in memory that base is wrong, no CFI is found and libunwind
//!   falls back to frame pointers. With [`UnwindConfig::perf_compat`] such a module is given
//!   to framehop without CFI (its fallback is the same frame-pointer step), so the stacks equal
//!   `perf script`'s; without it every module is unwound by its CFI.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, Range};
use std::path::PathBuf;
use std::sync::Arc;

use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use object::{Object, ObjectSection, ObjectSegment};

use crate::addrspace::{AddressSpaces, Map};

/// perf's default `--max-stack` (`sysctl kernel.perf_event_max_stack`).
pub(crate) const MAX_FRAMES: usize = 127;

/// Where binaries are looked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct UnwindConfig {
    /// perf's `--symfs`.
    pub(crate) sysroot: Option<PathBuf>,
    /// Separate-debug directories (build-id paths there may hold whole binaries, as perf's
    /// build-id cache does).
    pub(crate) debug_dirs: Vec<PathBuf>,
    /// Reproduce perf's base-address rule (module doc).
    pub(crate) perf_compat: bool,
}

/// The CPU architectures framehop unwinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// From the recording's `HEADER_ARCH` (`uname -m`).
    pub(crate) fn from_uname(arch: &str) -> Option<Arch> {
        match arch {
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

/// A section of a mapped binary, without copying it.
#[derive(Clone)]
pub(crate) struct Section {
    file: Arc<memmap2::Mmap>,
    range: Range<usize>,
}

impl Deref for Section {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.file.get(self.range.clone()).unwrap_or(&[])
    }
}

/// What framehop needs of one binary, read once per file.
struct Binary {
    info: ExplicitModuleSectionInfo<Section>,
    /// (file offset, file size, svma, executable) of each PT_LOAD segment.
    segments: Vec<(u64, u64, u64, bool)>,
    /// perf's `elf_base_address`: the first PT_LOAD's `p_vaddr - p_offset`.
    elf_base: u64,
}

impl Binary {
    fn open(path: &std::path::Path, build_id: Option<&[u8]>) -> Option<Binary> {
        let map = Arc::new(crate::symbols::map_file(path).ok()?);
        let file = object::File::parse(&map[..]).ok()?;
        if let Some(want) = build_id.filter(|b| !b.is_empty())
            && file
                .build_id()
                .ok()
                .flatten()
                .is_some_and(|have| have != want)
        {
            return None;
        }
        let section = |name: &str| -> Option<(Range<u64>, Section)> {
            let s = file.section_by_name(name)?;
            let (off, size) = s.file_range()?;
            let range = usize::try_from(off).ok()?..usize::try_from(off + size).ok()?;
            (range.end <= map.len() && size > 0).then(|| {
                (
                    s.address()..s.address() + s.size(),
                    Section {
                        file: Arc::clone(&map),
                        range,
                    },
                )
            })
        };
        let text = section(".text");
        let eh_frame = section(".eh_frame");
        let eh_frame_hdr = section(".eh_frame_hdr");
        let debug_frame = section(".debug_frame");
        if eh_frame.is_none() && debug_frame.is_none() {
            return None;
        }
        let got = file
            .section_by_name(".got")
            .map(|s| s.address()..s.address() + s.size());
        let segments = file
            .segments()
            .filter_map(|s| {
                let (off, size) = s.file_range();
                let exec = match s.flags() {
                    object::SegmentFlags::Elf { p_flags, .. } => {
                        p_flags.0 & object::elf::PF_X.0 != 0
                    }
                    _ => false,
                };
                (size > 0).then_some((off, size, s.address(), exec))
            })
            .collect();
        let elf_base = file
            .segments()
            .next()
            .map_or(0, |s| s.address().wrapping_sub(s.file_range().0));
        let (text_svma, text) = text.unzip();
        let (eh_frame_svma, eh_frame) = eh_frame.unzip();
        let (eh_frame_hdr_svma, eh_frame_hdr) = eh_frame_hdr.unzip();
        Some(Binary {
            info: ExplicitModuleSectionInfo {
                base_svma: 0,
                text_svma,
                text,
                got_svma: got,
                eh_frame_svma,
                eh_frame,
                eh_frame_hdr_svma,
                eh_frame_hdr,
                debug_frame: debug_frame.map(|(_, d)| d),
                stubs_svma: None,
                stub_helper_svma: None,
                unwind_info: None,
                text_segment_svma: None,
                text_segment: None,
            },
            segments,
            elf_base,
        })
    }

    /// The svma mapped at a mapping's start, from its page-aligned file offset `pgoff`: the
    /// executable segment whose pages hold it (a segment's file offset need not be page-aligned,
    /// so the previous segment's last page may hold it too).
    fn svma_of(&self, pgoff: u64) -> Option<u64> {
        let holds = |(off, size, _, _): &&(u64, u64, u64, bool)| {
            pgoff >= off & !0xfff && pgoff < off + size
        };
        let (off, _, svma, _) = self
            .segments
            .iter()
            .filter(holds)
            .find(|s| s.3)
            .or_else(|| self.segments.iter().find(holds))?;
        Some(svma.wrapping_add(pgoff).wrapping_sub(*off))
    }
}

/// A binary's identity: (path, build id).
type BinaryKey = (Arc<str>, Option<Arc<[u8]>>);

type X86 = framehop::x86_64::UnwinderX86_64<Section>;
type A64 = framehop::aarch64::UnwinderAarch64<Section>;

/// One process's unwinder and the mappings it holds modules for.
enum ProcUnwinder {
    X86(X86),
    A64(A64),
}

#[derive(Default)]
struct Proc {
    /// Some mapping's binary could be read (perf's address space exists).
    readable: bool,
    unwinder: Option<ProcUnwinder>,
    /// Module start → the mapping it was made from, and whether framehop has its CFI.
    added: BTreeMap<u64, (Map, bool)>,
}

/// The user registers an unwind starts from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserRegs {
    pub(crate) ip: u64,
    pub(crate) sp: u64,
    /// rbp on x86_64, x29 on aarch64.
    pub(crate) fp: u64,
    /// x30 on aarch64.
    pub(crate) lr: u64,
}

impl UserRegs {
    /// Reads the registers framehop needs from a `PERF_SAMPLE_REGS_USER` block (values in
    /// `sample_regs_user` bit order), perf's register numbering per architecture.
    pub(crate) fn parse(arch: Arch, mask: u64, regs: &[u8]) -> Option<UserRegs> {
        let get = |bit: u32| -> Option<u64> {
            if mask & (1u64 << bit) == 0 {
                return None;
            }
            let i = (mask & ((1u64 << bit) - 1)).count_ones() as usize * 8;
            Some(u64::from_le_bytes(regs.get(i..i + 8)?.try_into().ok()?))
        };
        match arch {
            // PERF_REG_X86_BP 6, SP 7, IP 8.
            Arch::X86_64 => Some(UserRegs {
                ip: get(8)?,
                sp: get(7)?,
                fp: get(6).unwrap_or(0),
                lr: 0,
            }),
            // PERF_REG_ARM64_X29 29, LR 30, SP 31, PC 32.
            Arch::Aarch64 => Some(UserRegs {
                ip: get(32)?,
                sp: get(31)?,
                fp: get(29).unwrap_or(0),
                lr: get(30).unwrap_or(0),
            }),
        }
    }
}

/// Unwinds user stacks of the host machine's processes.
pub(crate) struct DwarfUnwinder {
    arch: Arch,
    config: UnwindConfig,
    procs: HashMap<i32, Proc>,
    /// (path, build id) → the binary, or None when it cannot be read.
    binaries: HashMap<BinaryKey, Option<Arc<Binary>>>,
    cache_x86: framehop::x86_64::CacheX86_64,
    cache_a64: framehop::aarch64::CacheAarch64,
}

impl DwarfUnwinder {
    pub(crate) fn new(arch: Arch, config: UnwindConfig) -> Self {
        DwarfUnwinder {
            arch,
            config,
            procs: HashMap::new(),
            binaries: HashMap::new(),
            cache_x86: framehop::x86_64::CacheX86_64::new(),
            cache_a64: framehop::aarch64::CacheAarch64::new(),
        }
    }

    pub(crate) fn arch(&self) -> Arch {
        self.arch
    }

    /// Appends the user frames of one sample to the callchain bytes `out`: its ip, then
    /// return addresses − 1. `stack` is the copy of the user stack starting at `regs.sp`.
    /// False when perf would not unwind at all: its libunwind address space is made at the
    /// first mapping whose binary it can open, so a process none of whose binaries can be read
    /// gets no unwound frames (perf then shows the recorded callchain, or the sample ip).
    pub(crate) fn unwind(
        &mut self,
        spaces: &AddressSpaces,
        pid: i32,
        regs: UserRegs,
        stack: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        if !self.procs.get(&pid).is_some_and(|p| p.readable) {
            let readable = spaces
                .maps(false, pid)
                .iter()
                .any(|m| self.binary(m).is_some());
            if !readable {
                return false;
            }
            self.procs.entry(pid).or_default().readable = true;
        }
        // perf's access_mem refuses reads outside the stack copy, and its last word too
        // (`addr + 8 >= end`), and answers 0. libunwind then leaves a callee-saved register 0,
        // which ends the walk only when a later rule computes a CFA from it (framehop would
        // stop at once, or keep the register in a first frame's epilogue); a return address
        // read as 0 ends a CFI step with ip 0, which perf prints as ip − 1 = u64::MAX.
        let failed = std::cell::Cell::new(false);
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let word = usize::try_from(addr.wrapping_sub(regs.sp))
                .ok()
                .filter(|off| off.checked_add(8).is_some_and(|end| end < stack.len()))
                .and_then(|off| stack.get(off..off + 8))
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes);
            failed.set(failed.get() || word.is_none());
            Ok(word.unwrap_or(0))
        };
        out.extend_from_slice(&regs.ip.to_le_bytes());
        let mut frames = 1;
        let mut address = FrameAddress::InstructionPointer(regs.ip);
        let mut x86_regs = framehop::x86_64::UnwindRegsX86_64::new(regs.ip, regs.sp, regs.fp);
        let mut a64_regs = framehop::aarch64::UnwindRegsAarch64::new(regs.lr, regs.sp, regs.fp);
        while frames < MAX_FRAMES {
            // Unwinding stops at a module perf cannot open.
            let Some(cfi) = self.ensure_module(spaces, pid, address.address_for_lookup()) else {
                break;
            };
            let Some(proc_unwinder) = self.procs.get(&pid).and_then(|p| p.unwinder.as_ref()) else {
                break;
            };
            failed.set(false);
            let next = match proc_unwinder {
                ProcUnwinder::X86(u) => {
                    u.unwind_frame(address, &mut x86_regs, &mut self.cache_x86, &mut read_stack)
                }
                ProcUnwinder::A64(u) => {
                    u.unwind_frame(address, &mut a64_regs, &mut self.cache_a64, &mut read_stack)
                }
            };
            match next {
                Ok(Some(ret)) => {
                    let Some(a) = FrameAddress::from_return_address(ret) else {
                        break;
                    };
                    address = a;
                    out.extend_from_slice(&(ret - 1).to_le_bytes());
                    frames += 1;
                }
                Ok(None) if cfi && failed.get() => {
                    out.extend_from_slice(&u64::MAX.to_le_bytes());
                    break;
                }
                _ => break,
            }
        }
        true
    }

    /// The binary of a mapping, read once per (path, build id).
    fn binary(&mut self, map: &Map) -> Option<Arc<Binary>> {
        let key = (Arc::clone(&map.filename), map.build_id.clone());
        if let Some(b) = self.binaries.get(&key) {
            return b.clone();
        }
        let b = self.find_binary(&map.filename, map.build_id.as_deref());
        self.binaries.insert(key, b.clone());
        b
    }

    /// Makes sure the process's unwinder knows the mapping at `addr`: Some(whether its CFI is
    /// used), None when there is no mapping or its binary cannot be read.
    fn ensure_module(&mut self, spaces: &AddressSpaces, pid: i32, addr: u64) -> Option<bool> {
        let map = spaces.find(false, pid, addr)?;
        let arch = self.arch;
        let proc_ = self.procs.entry(pid).or_default();
        if let Some((m, cfi)) = proc_.added.get(&map.start)
            && m == map
        {
            return Some(*cfi);
        }
        let binary = self.binary(map)?;
        let svma = binary.svma_of(map.pgoff)?;
        let bias = map.start.wrapping_sub(svma);
        let perf_finds_cfi = !self.config.perf_compat || {
            let lowest = spaces
                .maps(false, pid)
                .iter()
                .filter(|m| m.filename == map.filename)
                .map(|m| m.start)
                .min()
                .unwrap_or(map.start);
            lowest.wrapping_sub(binary.elf_base) == bias
        };
        let proc_ = self.procs.entry(pid).or_default();
        let unwinder = proc_.unwinder.get_or_insert_with(|| match arch {
            Arch::X86_64 => ProcUnwinder::X86(X86::new()),
            Arch::Aarch64 => ProcUnwinder::A64(A64::new()),
        });
        // Drop modules of older mappings this one replaced.
        let stale: Vec<u64> = proc_
            .added
            .iter()
            .filter(|(_, (m, _))| m.start < map.end && m.end > map.start)
            .map(|(&s, _)| s)
            .collect();
        for s in stale {
            proc_.added.remove(&s);
            match unwinder {
                ProcUnwinder::X86(u) => u.remove_module(s),
                ProcUnwinder::A64(u) => u.remove_module(s),
            }
        }
        proc_.added.insert(map.start, (map.clone(), perf_finds_cfi));
        if !perf_finds_cfi {
            // No module: framehop's fallback for an address outside every module is the
            // frame-pointer step libunwind takes without CFI.
            return Some(false);
        }
        let module = Module::new(
            map.filename.to_string(),
            map.start..map.end,
            bias,
            binary.info.clone(),
        );
        match unwinder {
            ProcUnwinder::X86(u) => u.add_module(module),
            ProcUnwinder::A64(u) => u.add_module(module),
        }
        Some(true)
    }

    /// The binary of a host mapping: under `--symfs` (or at its path), else a whole binary
    /// stored by build id in a debug directory (the vdso only there, as perf's build-id cache
    /// keeps it).
    fn find_binary(&self, dso: &str, build_id: Option<&[u8]>) -> Option<Arc<Binary>> {
        if dso != "[vdso]" && (!dso.starts_with('/') || dso.starts_with("//")) {
            return None;
        }
        crate::symbols::binary_candidates(
            self.config.sysroot.as_deref(),
            &self.config.debug_dirs,
            dso,
            build_id,
        )
        .into_iter()
        .filter(|p| p.is_file())
        .find_map(|p| Binary::open(&p, build_id))
        .map(Arc::new)
    }
}
