//! The parts of an ingest that come after the host walk: guest-side recordings on the host
//! clock, and symbol resolution of every stack into the `frames` tables.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Warning, WarningKind};
use crate::schema;
use crate::session::{
    GuestContext, IdBase, Preload, Session, SessionConfig, SessionSummary, Slot, Space, Stacks,
    WrittenTable,
};
use crate::symbols::{
    AddrSpace, Bundle, FrameQuery, GUEST_KERNEL_DSO, HOST_KERNEL_DSO, KernelSymbols, ResolvedFrame,
    SymbolizeOptions, Symbolizer,
};
use crate::table::{TableWriter, partition_path};
use crate::{GuestData, Options};

/// The VM names the user gave: (VMM pid or process name, display name).
pub(crate) fn vm_specs(opts: &Options) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in &opts.guest_data {
        out.push((
            g.vm.clone(),
            display_name(&g.vm, g.name.as_deref(), bundle_for(opts, &g.vm).as_deref()),
        ));
    }
    for (vm, path) in &opts.guest_symbols {
        if !out.iter().any(|(t, _)| t == vm) {
            out.push((vm.clone(), display_name(vm, None, Some(path))));
        }
    }
    out
}

fn bundle_for(opts: &Options, vm: &str) -> Option<PathBuf> {
    opts.guest_symbols
        .iter()
        .find(|(t, _)| t == vm)
        .map(|(_, p)| p.clone())
}

/// The display name: given name, else the bundle manifest's VM name, else the token itself when
/// it is a process name (a bare pid is not a name).
fn display_name(token: &str, given: Option<&str>, bundle: Option<&Path>) -> String {
    if let Some(n) = given {
        return n.to_string();
    }
    if let Some(b) = bundle.and_then(|p| Bundle::open(p).ok())
        && let Some(m) = b.manifest()
        && !m.vm.is_empty()
    {
        return m.vm.clone();
    }
    token.to_string()
}

/// What a guest-side ingest wrote.
pub(crate) struct GuestIngest {
    pub(crate) tables: Vec<WrittenTable>,
    /// Its stacks (for symbolisation); the first has the id the recording started at.
    pub(crate) stacks: Stacks,
    pub(crate) warnings: Vec<Warning>,
    /// Where the next guest recording's part number and ids start.
    pub(crate) next: IdBase,
}

/// Ingests one guest-side recording into the `guest_*` tables of the same partition: part
/// `ids.part` of each, ids from `ids` on (see [`IdBase`]).
pub(crate) fn ingest_guest(
    g: &GuestData,
    host: &SessionSummary,
    root: &Path,
    recording: &str,
    opts: &Options,
    ids: IdBase,
) -> Result<GuestIngest, Error> {
    let mut warnings = Vec::new();
    let name = vm_specs(opts)
        .into_iter()
        .find(|(t, _)| *t == g.vm)
        .map(|(_, n)| n)
        .unwrap_or_else(|| g.vm.clone());
    // The VMM pid: the token itself, or the VM whose display name or process name matches.
    let vm_pid = g.vm.parse::<i32>().ok().or_else(|| {
        host.vms
            .iter()
            .find(|(_, n)| *n == name || n.split(':').next() == Some(g.vm.as_str()))
            .map(|(p, _)| *p)
    });
    let Some(vm_pid) = vm_pid else {
        return Err(Error::Invalid(format!(
            "--guest-data {}: no VM with that pid or name in the host recording (VMs seen: {})",
            g.vm,
            host.vms
                .iter()
                .map(|(p, n)| format!("{n} (pid {p})"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let tsc_offset = match g.tsc_offset {
        Some(o) => o,
        None => match host
            .tsc_offsets
            .iter()
            .filter(|(p, _, _)| *p == vm_pid)
            .min_by_key(|(_, v, _)| *v)
        {
            Some((_, _, o)) => *o,
            None => {
                warnings.push(Warning {
                    kind: WarningKind::Kvm,
                    offset: None,
                    message: format!(
                        "no kvm_write_tsc_offset for VM {name} in the host recording and no tsc-offset given: guest times taken as host times"
                    ),
                });
                0
            }
        },
    };
    if host.time_conv.is_none() {
        warnings.push(Warning {
            kind: WarningKind::Kvm,
            offset: None,
            message: "the host recording has no TIME_CONV: guest times cannot be converted and are taken as host times".into(),
        });
    }
    // Mapped, its pages released as the walk passes them: memory does not grow with the file.
    let data = crate::map_perf_data(&g.path)?;
    let cfg = SessionConfig {
        preload: None,
        root: root.to_path_buf(),
        host: "_pending".to_string(),
        recording: recording.to_string(),
        keep_raw: opts.keep_raw,
        prefix: "guest_",
        guest: Some(GuestContext {
            vm_pid,
            vm: Arc::from(name.as_str()),
            host_tc: host.time_conv,
            tsc_offset,
            tsc_scale: g.tsc_scale.unwrap_or(1.0),
        }),
        vm_specs: Vec::new(),
        ids,
        map_frames: opts.symbolize,
        // Guest binaries live in bundles: guest user stacks keep what the guest recorded.
        unwind: None,
        kernel_fallback_map: true,
        compression: opts.compression,
        source_lines: opts.source_lines,
    };
    let mut sess = Session::new(cfg);
    let streams = data.streams();
    let total = crate::reader::total_len(&data.main, &streams);
    sess.progress = crate::progress_releasing(None, data.release(), total);
    let walk = crate::reader::walk_file_streams(&data.main, &streams, &mut sess)?;
    sess.finish_records()?;
    if let Some(e) = sess.take_fatal() {
        return Err(e);
    }
    let (tables, mut summary) = sess.close()?;
    warnings.extend(walk.warnings);
    warnings.append(&mut summary.warnings);
    if summary.time_conv.is_none() && host.time_conv.is_some() {
        warnings.push(Warning {
            kind: WarningKind::Kvm,
            offset: None,
            message: format!(
                "guest recording {} has no TIME_CONV: its times are taken as host times",
                g.path.display()
            ),
        });
    }
    let stacks = std::mem::take(&mut summary.stacks);
    let next = u32::try_from(stacks.frames.len())
        .ok()
        .and_then(|n_frames| {
            Some(IdBase {
                part: ids.part.checked_add(1)?,
                sample_idx: ids.sample_idx.checked_add(summary.n_samples)?,
                event_idx: ids.event_idx.checked_add(summary.n_events)?,
                stack_id: ids.stack_id.checked_add(stacks.n_stacks)?,
                frame_id: ids.frame_id.checked_add(n_frames)?,
            })
        })
        .ok_or_else(|| {
            Error::Invalid(format!(
                "--guest-data {}: the guest recordings hold more than 2^32 distinct stacks, frames or events",
                g.path.display()
            ))
        })?;
    Ok(GuestIngest {
        tables,
        stacks,
        warnings,
        next,
    })
}

/// Whether this machine is the one that recorded (same hostname and os release).
fn recorded_here(host: &SessionSummary) -> bool {
    is_this_machine(
        host.features.hostname.as_deref(),
        host.features.os_release.as_deref(),
    )
}

/// Whether this machine has this host name and kernel release.
fn is_this_machine(hostname: Option<&str>, os_release: Option<&str>) -> bool {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .ok()
    };
    let (Some(h), Some(r)) = (hostname, os_release) else {
        return false;
    };
    read("/proc/sys/kernel/hostname").as_deref() == Some(h)
        && read("/proc/sys/kernel/osrelease").as_deref() == Some(r)
}

/// What the loading thread loaded while the walk ran ([`start_preload`]).
pub(crate) struct Preloaded {
    /// Holds the host binaries.
    symbolizer: Symbolizer,
    /// The host kallsyms: the file given, or /proc/kallsyms once the recording was found to
    /// be this machine's (as `write_frames` decides); reading and parsing it took a tenth of a
    /// second after the walk.
    kernel: Option<(PathBuf, KernelSymbols)>,
    /// Host user frames resolved during the walk: (frame id, its frames), in the order sent.
    early: Vec<(u32, Vec<ResolvedFrame>)>,
}

/// Starts the thread that loads host binaries (and the host kallsyms) while the walk runs:
/// the sender for the session, the thread's handle.
pub(crate) fn start_preload(
    opts: &Options,
) -> (
    Option<std::sync::mpsc::Sender<Preload>>,
    Option<std::thread::JoinHandle<Preloaded>>,
) {
    // What `write_frames` gives its symbolizer for host binaries: the same binaries load.
    let sopts = SymbolizeOptions {
        threads: 1,
        debug_dirs: opts.debug_dirs.clone(),
        sysroot: opts.symfs.clone(),
        ..SymbolizeOptions::default()
    };
    let Ok(pre) = Symbolizer::new(sopts) else {
        return (None, None);
    };
    let (tx, rx) = std::sync::mpsc::channel::<Preload>();
    let given = opts.kallsyms.clone();
    // Without source lines DWARF is read only for frames unwound from stack copies: opened
    // when one asks.
    let with_dwarf = opts.source_lines;
    let handle = std::thread::Builder::new()
        .name("symbols preload".into())
        .spawn(move || {
            // A file that does not parse is read again by `write_frames`, which says why.
            let load = |p: &Path| {
                KernelSymbols::from_files(p, None, HOST_KERNEL_DSO)
                    .ok()
                    .map(|k| (p.to_path_buf(), k))
            };
            let mut kernel = given.as_deref().and_then(load);
            let mut early = Vec::new();
            for msg in rx {
                match msg {
                    Preload::User(dso, build_id) => {
                        pre.preload_user(&dso, build_id.as_deref(), with_dwarf)
                    }
                    Preload::Frames(batch) => {
                        let (ids, queries): (Vec<u32>, Vec<FrameQuery>) = batch.into_iter().unzip();
                        early.extend(ids.into_iter().zip(pre.resolve_distinct(&queries)));
                    }
                    Preload::Host {
                        hostname,
                        os_release,
                    } => {
                        if given.is_none()
                            && kernel.is_none()
                            && is_this_machine(Some(&hostname), Some(&os_release))
                        {
                            kernel = load(Path::new("/proc/kallsyms"));
                        }
                    }
                }
            }
            Preloaded {
                symbolizer: pre,
                kernel,
                early,
            }
        })
        .ok();
    (handle.is_some().then_some(tx), handle)
}

/// The symbolizer's question for the frame at `addr` of `slot` (`lines`: source lines and
/// inlined functions are wanted; a frame unwound from a stack copy always wants them).
pub(crate) fn frame_query(addr: u64, slot: &Slot, lines: bool) -> FrameQuery {
    let o = &slot.origin;
    let kernel = matches!(o.space, Space::HostKernel | Space::GuestKernel(_));
    FrameQuery {
        space: match &o.space {
            Space::HostKernel => AddrSpace::HostKernel,
            Space::HostUser => AddrSpace::HostUser,
            Space::GuestKernel(vm) => AddrSpace::GuestKernel { vm: vm.to_string() },
            Space::GuestUser(vm) => AddrSpace::GuestUser { vm: vm.to_string() },
        },
        dso: o.dso.as_deref().unwrap_or("").to_string(),
        build_id: o.build_id.as_deref().map(<[u8]>::to_vec),
        addr,
        file_offset: if kernel { None } else { slot.dso_offset(addr) },
        lines: lines || slot.unwound,
    }
}

/// Resolves every frame of every stack and writes `frames` (and `guest_frames`), and every
/// distinct guest RIP of the exits into `exit_symbols`, all through one [`Symbolizer`] (so the
/// exits see the same guest symbols as the guest frames).
/// `guest_stacks` holds each guest recording's frames with the id of its first one;
/// `preloaded`, the host binaries loaded while the walk ran ([`start_preload`]).
pub(crate) fn write_frames(
    host: &SessionSummary,
    guest_stacks: &[(u32, Stacks)],
    root: &Path,
    recording: &str,
    opts: &Options,
    preloaded: Option<Preloaded>,
) -> Result<(Vec<WrittenTable>, Vec<Warning>), Error> {
    let mut warnings = Vec::new();
    let mut sopts = SymbolizeOptions {
        threads: opts.threads,
        debug_dirs: opts.debug_dirs.clone(),
        sysroot: opts.symfs.clone(),
        kallsyms: opts
            .kallsyms
            .clone()
            .or_else(|| recorded_here(host).then(|| PathBuf::from("/proc/kallsyms"))),
        ..SymbolizeOptions::default()
    };
    // Guest bundles by VM display name.
    let specs = vm_specs(opts);
    let mut bundles: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (tok, path) in &opts.guest_symbols {
        let name = specs
            .iter()
            .find(|(t, _)| t == tok)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| tok.clone());
        bundles.insert(name, path.clone());
    }
    // perf's --guestkallsyms/--guestmodules/--guestvmlinux: one default guest for every VM
    // without its own bundle, given as a plain bundle directory.
    let default_dir = root.join(".default-guest-symbols");
    if opts.guest_kallsyms.is_some() || opts.guest_vmlinux.is_some() {
        std::fs::create_dir_all(&default_dir).map_err(|e| Error::Io {
            path: Some(default_dir.clone()),
            offset: None,
            source: e,
        })?;
        for (src, dst) in [
            (&opts.guest_kallsyms, "kallsyms"),
            (&opts.guest_modules, "modules"),
            (&opts.guest_vmlinux, "vmlinux"),
        ] {
            if let Some(src) = src {
                std::fs::copy(src, default_dir.join(dst)).map_err(|e| Error::Io {
                    path: Some(src.clone()),
                    offset: None,
                    source: e,
                })?;
            }
        }
        let mut names: Vec<String> = host.vms.iter().map(|(_, n)| n.clone()).collect();
        for slot in &host.stacks.slots {
            if let Space::GuestKernel(vm) | Space::GuestUser(vm) = &slot.origin.space {
                names.push(vm.to_string());
            }
        }
        names.sort();
        names.dedup();
        for n in names {
            bundles.entry(n).or_insert_with(|| default_dir.clone());
        }
    }
    sopts.guest_bundles = bundles;
    // Without the kernel and guest symbols that failed to load, but still under the user's
    // --symfs and debug directories (the defaults would resolve this machine's binaries).
    let fallback = SymbolizeOptions {
        threads: sopts.threads,
        debug_dirs: sopts.debug_dirs.clone(),
        sysroot: sopts.sysroot.clone(),
        ..SymbolizeOptions::default()
    };
    let t_new = crate::timing::phase("ingest: frames: symbolizer");
    // The kallsyms the loading thread read, when they are the ones wanted.
    let (preloaded, kernel, mut early) = match preloaded {
        Some(Preloaded {
            symbolizer,
            kernel,
            early,
        }) => (
            Some(symbolizer),
            kernel.filter(|(p, _)| sopts.kallsyms.as_ref() == Some(p)),
            early,
        ),
        None => (None, None, Vec::new()),
    };
    if kernel.is_some() {
        sopts.kallsyms = None;
    }
    let symbolizer = match Symbolizer::new(sopts) {
        Ok(mut s) => {
            if let Some((_, k)) = kernel {
                s.set_host_kernel(k);
            }
            s
        }
        Err(e) => {
            warnings.push(Warning {
                kind: WarningKind::Symbols,
                offset: None,
                message: format!("kernel and guest symbols not loaded: {e}"),
            });
            Symbolizer::new(fallback).map_err(|e| Error::Invalid(e.to_string()))?
        }
    };
    if let Some(p) = preloaded {
        symbolizer.adopt_preloaded(p);
    }
    drop(t_new);
    let mut out = Vec::new();
    let sets: Vec<(&str, u32, &Stacks)> = std::iter::once(("frames", 0, &host.stacks))
        .chain(
            guest_stacks
                .iter()
                .map(|(base, g)| ("guest_frames", *base, g)),
        )
        .collect();
    // guest_frames of several guest recordings go into one file: their frame ids do not
    // overlap (each guest's continue after the previous one's).
    let mut writers: HashMap<&str, TableWriter> = HashMap::new();
    for (table, id_base, stacks) in sets {
        let t_q = crate::timing::phase("ingest: frames: queries");
        // One query per distinct frame; frames whose slots differ only in their mode or in
        // whether they were unwound (rare: none in a 100 MB `-g -a` recording) ask the same
        // query twice, which resolves to the same frames (searching a million queries for
        // such repeats cost more than it saved).
        // (frame id, address, slot): every frame's slot is interned before it.
        let frames: Vec<(u32, u64, &Slot)> = stacks
            .frames
            .iter()
            .enumerate()
            .filter_map(|(id, &(addr, slot))| {
                Some((id as u32, addr, stacks.slots.get(slot as usize)?))
            })
            .collect();
        // The host's user frames the loading thread resolved while the walk went on
        // (`Preload::Frames`) are not asked again.
        let mut resolved: Vec<Option<Vec<ResolvedFrame>>> = vec![None; frames.len()];
        if table == "frames" {
            for (id, r) in early.drain(..) {
                if let Some(slot) = resolved.get_mut(id as usize) {
                    *slot = Some(r);
                }
            }
        }
        let mut queries: Vec<FrameQuery> = Vec::with_capacity(frames.len());
        for (&(_, addr, slot), done) in frames.iter().zip(&resolved) {
            if done.is_none() {
                queries.push(frame_query(addr, slot, opts.source_lines));
            }
        }
        drop(t_q);
        let t_r = crate::timing::phase("ingest: frames: resolve");
        let mut late = if queries.iter().all(|q| q.dso.is_empty()) {
            vec![Vec::new(); queries.len()]
        } else {
            symbolizer.resolve_distinct(&queries)
        }
        .into_iter();
        let resolved: Vec<Vec<ResolvedFrame>> = resolved
            .into_iter()
            .map(|r| r.or_else(|| late.next()).unwrap_or_default())
            .collect();
        drop(t_r);
        let _t_w = crate::timing::phase("ingest: frames: rows");
        let w = match writers.get_mut(table) {
            Some(w) => w,
            None => {
                let path = partition_path(root, table, "_pending", recording);
                writers.entry(table).or_insert(
                    TableWriter::new(table, path, &schema::frames().defs(), Vec::new())
                        .compressed(opts.compression),
                )
            }
        };
        for (&(frame_id, addr, slot), res) in frames.iter().zip(&resolved) {
            // Outermost function first, then what is inlined into it.
            // An unresolved frame is one row without a level (no allocation per frame).
            let levels = res
                .iter()
                .rev()
                .map(Some)
                .chain(res.is_empty().then_some(None));
            for (depth, level) in levels.enumerate() {
                let dso = level
                    .map(|l| l.dso.as_str())
                    .filter(|d| !d.is_empty())
                    .or(slot.origin.dso.as_deref());
                let symbol = level.and_then(|l| l.symbol.as_deref());
                // perf names the levels of a frame it unwinds as binutils' addr2line does.
                // A name that was not demangled (a JIT's, a C or Go symbol) is printed whole.
                let (shown, verbatim) = match level.and_then(|l| l.unwound_symbol.as_deref()) {
                    Some(u) if slot.unwound => (Some(u), false),
                    _ => (symbol, level.is_some_and(|l| l.verbatim)),
                };
                let name: std::borrow::Cow<'_, str> = match (shown, dso) {
                    (Some(s), _) if verbatim => s.into(),
                    (Some(s), _) => crate::symbols::perf_name(s),
                    (None, Some(d)) if !d.is_empty() => {
                        format!("[{}]", d.rsplit('/').next().unwrap_or(d)).into()
                    }
                    _ => "[unknown]".into(),
                };
                w.u32(0, Some(id_base + frame_id));
                w.u32(1, Some(depth as u32));
                w.u64(2, Some(addr));
                w.str(3, Some(slot.mode.as_str()));
                w.str(4, dso);
                w.u64(5, slot.dso_offset(addr));
                w.str(6, symbol);
                w.u64(
                    7,
                    level
                        .filter(|l| l.symbol.is_some() && l.inline_depth == 0)
                        .map(|l| l.offset),
                );
                w.str(8, level.and_then(|l| l.file.as_deref()));
                w.u32(9, level.and_then(|l| l.line));
                w.str(10, Some(&name));
                w.bool(11, Some(slot.unwound));
                w.end_row()?;
            }
        }
    }
    let _t_close = crate::timing::phase("ingest: frames: close");
    let mut names: Vec<&str> = writers.keys().copied().collect();
    names.sort();
    for n in names {
        if let Some(w) = writers.remove(n) {
            let (p, rows) = w.close()?;
            out.push((n.to_string(), p, rows));
        }
    }
    out.push(write_exit_symbols(
        &symbolizer,
        host,
        root,
        recording,
        opts.compression,
    )?);
    let _ = std::fs::remove_dir_all(&default_dir);
    Ok((out, warnings))
}

/// Whether a guest address is in the kernel half of the address space (x86-64 and arm64 alike:
/// the top bit of a canonical kernel address is set).
fn is_guest_kernel_addr(addr: u64) -> bool {
    addr >> 63 == 1
}

/// Writes `exit_symbols`: each distinct (VMM pid, guest RIP) of the exits and kvm_emulate_insn
/// events, resolved through the VM's guest kernel symbols. A guest user address stays
/// unresolved: nothing in an exit says which guest process (hence which mappings) ran.
fn write_exit_symbols(
    symbolizer: &Symbolizer,
    host: &SessionSummary,
    root: &Path,
    recording: &str,
    compression: crate::Compression,
) -> Result<WrittenTable, Error> {
    let vm_names: HashMap<i32, &str> = host.vms.iter().map(|(p, n)| (*p, n.as_str())).collect();
    let mut queries = Vec::new();
    // Row → its query, when it has one.
    let mut query_of: Vec<Option<usize>> = Vec::with_capacity(host.guest_rips.len());
    for &(pid, rip) in &host.guest_rips {
        match vm_names.get(&pid) {
            Some(vm) if is_guest_kernel_addr(rip) => {
                query_of.push(Some(queries.len()));
                queries.push(FrameQuery {
                    space: AddrSpace::GuestKernel { vm: vm.to_string() },
                    dso: GUEST_KERNEL_DSO.to_string(),
                    build_id: None,
                    addr: rip,
                    file_offset: None,
                    lines: true,
                });
            }
            _ => query_of.push(None),
        }
    }
    let resolved = symbolizer.resolve_all(&queries);
    let doc = schema::exit_symbols();
    let mut w = TableWriter::new(
        doc.name,
        partition_path(root, doc.name, "_pending", recording),
        &doc.defs(),
        Vec::new(),
    )
    .compressed(compression);
    for (&(pid, rip), q) in host.guest_rips.iter().zip(&query_of) {
        // Innermost inline level first, the containing function last.
        let levels = q
            .and_then(|i| resolved.get(i))
            .map_or(&[][..], Vec::as_slice);
        let outer = levels.last();
        let inner = levels.first();
        let kernel = is_guest_kernel_addr(rip);
        w.i32(0, Some(pid));
        w.u64(1, Some(rip));
        w.str(2, Some(if kernel { "guest_kernel" } else { "guest_user" }));
        w.str(
            3,
            outer
                .map(|l| l.dso.as_str())
                .filter(|d| !d.is_empty())
                .or(kernel.then_some(GUEST_KERNEL_DSO)),
        );
        let symbol = outer.and_then(|l| l.symbol.as_deref());
        w.str(4, symbol);
        w.u64(5, outer.filter(|l| l.symbol.is_some()).map(|l| l.offset));
        w.str(
            6,
            inner
                .filter(|l| l.inline_depth > 0)
                .and_then(|l| l.symbol.as_deref()),
        );
        w.str(7, inner.and_then(|l| l.file.as_deref()));
        w.u32(8, inner.and_then(|l| l.line));
        w.end_row()?;
    }
    let (p, rows) = w.close()?;
    Ok((doc.name.to_string(), p, rows))
}
