//! Symbol resolution against perf's own output: real recordings of testdata/symbols/ (C, C++
//! with inlining, Rust; frame-pointer and DWARF call graphs), guest kernel symbols through a
//! bundle collected on this machine, and the guest-mode samples of the shared KVM corpus.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::common::{col_bool, col_str, col_u64, corpus, read_table, stack_frame_rows, testdata};

/// Where the test programs were when they were recorded (their MMAPs name this path).
const RECORDED_DIR: &str = "kvmtrace-symbols";

/// One frame as perf prints it (`--no-inline`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PerfFrame {
    symbol: Option<String>,
    dso: String,
}

/// One sample of `perf script --ns -F tid,time,ip,sym,dso --no-inline`.
#[derive(Debug)]
struct PerfSample {
    tid: i32,
    time_ns: u64,
    frames: Vec<PerfFrame>,
}

fn zstd_text(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    zstd::Decoder::new(file)
        .and_then(|mut d| d.read_to_string(&mut text))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text
}

fn parse_time_ns(s: &str) -> Option<u64> {
    let (secs, nanos) = s.trim().trim_end_matches(':').split_once('.')?;
    Some(secs.parse::<u64>().ok()? * 1_000_000_000 + nanos.parse::<u64>().ok()?)
}

/// `\t    addr symbol (dso)` → (addr, symbol, dso); inlined frames have no `(dso)`.
fn parse_frame_line(line: &str) -> Option<(u64, String, Option<String>)> {
    let rest = line.trim_start();
    let (addr, rest) = rest.split_once(' ')?;
    let addr = u64::from_str_radix(addr, 16).ok()?;
    if rest.ends_with(')')
        && let Some(at) = rest.rfind(" (")
    {
        let dso = rest.get(at + 2..rest.len() - 1)?.to_string();
        return Some((addr, rest.get(..at)?.to_string(), Some(dso)));
    }
    Some((addr, rest.to_string(), None))
}

fn parse_perf_script(text: &str) -> Vec<PerfSample> {
    let mut out: Vec<PerfSample> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('\t') {
            if let (Some((_, sym, Some(dso))), Some(sample)) =
                (parse_frame_line(line), out.last_mut())
            {
                sample.frames.push(PerfFrame {
                    symbol: (sym != "[unknown]").then_some(sym),
                    dso,
                });
            }
            continue;
        }
        // A sample header: ` tid  secs.nanos: `.
        let mut it = line.split_whitespace();
        if let (Some(tid), Some(time_ns)) = (
            it.next().and_then(|t| t.parse().ok()),
            it.next().and_then(parse_time_ns),
        ) {
            out.push(PerfSample {
                tid,
                time_ns,
                frames: Vec::new(),
            });
        }
    }
    out
}

/// One inline level of a `frames` row: (symbol, dso, file, line).
type KtLevel = (Option<String>, Option<String>, Option<String>, Option<u64>);

/// One frame of kvmtrace's `frames` table, all inline levels (outermost first).
#[derive(Debug, Clone, Default)]
struct KtFrame {
    levels: Vec<KtLevel>,
}

impl KtFrame {
    fn symbol(&self) -> Option<&str> {
        self.levels.first().and_then(|l| l.0.as_deref())
    }
    fn dso(&self) -> &str {
        self.levels
            .first()
            .and_then(|l| l.1.as_deref())
            .unwrap_or("")
    }
}

/// (tid, time_ns) → frames of the sample's stack, from an ingested dataset.
fn kvmtrace_samples(ds: &Path) -> HashMap<(i32, u64), Vec<KtFrame>> {
    let frames = read_table(ds, "frames");
    let (sym, dso, file, line) = (
        col_str(&frames, "symbol"),
        col_str(&frames, "dso"),
        col_str(&frames, "file"),
        col_u64(&frames, "line"),
    );
    let mut stacks: BTreeMap<u64, BTreeMap<u64, KtFrame>> = BTreeMap::new();
    for (sid, fidx, _, i) in stack_frame_rows(ds, "stacks", &frames) {
        let f = stacks.entry(sid).or_default().entry(fidx).or_default();
        f.levels
            .push((sym[i].clone(), dso[i].clone(), file[i].clone(), line[i]));
    }
    let samples = read_table(ds, "samples");
    let (tid, time, stack) = (
        col_u64(&samples, "tid"),
        col_u64(&samples, "time_ns"),
        col_u64(&samples, "stack_id"),
    );
    let mut out = HashMap::new();
    for i in 0..tid.len() {
        let frames = stack[i]
            .and_then(|s| stacks.get(&s))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        out.insert((tid[i].unwrap_or(0) as i32, time[i].unwrap_or(0)), frames);
    }
    out
}

/// The test binaries, unpacked under `<dir>/kvmtrace-symbols/` (the recorded path, under a symfs).
fn unpack_binaries(symfs: &Path) {
    let dir = symfs.join(RECORDED_DIR);
    std::fs::create_dir_all(&dir).expect("mkdir symfs");
    for name in ["cdemo", "cppinline", "rustdemo", "reexec", "labeldemo"] {
        let packed = testdata().join("symbols").join(format!("{name}.zst"));
        let file =
            std::fs::File::open(&packed).unwrap_or_else(|e| panic!("{}: {e}", packed.display()));
        let mut bytes = Vec::new();
        zstd::Decoder::new(file)
            .and_then(|mut d| d.read_to_end(&mut bytes))
            .expect("unzstd binary");
        std::fs::write(dir.join(name), bytes).expect("write binary");
    }
}

/// A temporary directory with a symfs of the unpacked test binaries and an empty debug
/// directory (as perf's references were made): (it, symfs, debug directory).
fn symfs_of_test_binaries() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let symfs = tmp.path().join("symfs");
    let debug = tmp.path().join("no-debug");
    std::fs::create_dir_all(&debug).expect("mkdir");
    unpack_binaries(&symfs);
    (tmp, symfs, debug)
}

/// Ingests testdata/symbols/`<name>.perf.data` against a symfs of the test binaries and an
/// empty debug directory (as perf's references were made); the stacks of its samples.
fn ingest_recording(name: &str, exact_unwind: bool) -> HashMap<(i32, u64), Vec<KtFrame>> {
    let (tmp, symfs, debug) = symfs_of_test_binaries();
    let ds = tmp.path().join("ds");
    let file = testdata().join("symbols").join(format!("{name}.perf.data"));
    ingest_symbols(&file, &ds, &symfs, &debug, |o| {
        o.exact_unwind = exact_unwind
    });
    kvmtrace_samples(&ds)
}

/// Ingests `file` into `out` against `symfs` and `debug_dir`, the options then set by `with`.
fn ingest_symbols(
    file: &Path,
    out: &Path,
    symfs: &Path,
    debug_dir: &Path,
    with: impl FnOnce(&mut kvmtrace_ingest::Options),
) {
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = out.to_path_buf();
    opts.threads = 2;
    opts.symfs = Some(symfs.to_path_buf());
    opts.debug_dirs = vec![debug_dir.to_path_buf()];
    with(&mut opts);
    kvmtrace_ingest::run(file, &opts).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

/// Agreement of one recording: frames compared and equal, leaf inline chains compared and equal.
#[derive(Debug, Default)]
struct Agreement {
    compared: usize,
    equal: usize,
    inline_compared: usize,
    inline_equal: usize,
    /// Levels of agreeing chains that perf named after the symbol table (see [`PerfLevel`]).
    inline_symtab_named: usize,
}

/// A demangled name as perf 6.1 prints it: no return type, no parameter list, no clone suffix
/// (`perf_name` has its own test against perf's text of real libLLVM names).
fn perf_style(name: &str) -> String {
    kvmtrace_ingest::symbols::perf_name(name).to_string()
}

/// One inline level of perf's leaf frame, as `perf script --inline -F ...,srcline` prints it.
#[derive(Debug, Clone)]
struct PerfLevel {
    /// The function perf names.
    name: String,
    /// `file:line` (perf's srcline: the file's base name).
    srcline: Option<String>,
    /// perf printed this level as a real frame (with its dso) instead of "inlined": binutils'
    /// addr2line could not name the innermost inlined function, and perf 6.1 then names the
    /// level after the symbol table. The level is still there, with its own srcline.
    named_by_symtab: bool,
}

/// The inline levels of each sample's leaf frame, innermost first, without the function itself
/// (the last entry at the leaf address: the symbol table's function, or the same function under
/// its DWARF name, printed as "inlined" with the line of its call to the next level in).
fn parse_perf_inline_leaves(text: &str) -> HashMap<(i32, u64), Vec<PerfLevel>> {
    let mut out = HashMap::new();
    let mut key: Option<(i32, u64)> = None;
    let mut leaf_addr: Option<u64> = None;
    let mut entries: Vec<PerfLevel> = Vec::new();
    let mut done = false;
    let mut finish = |key: Option<(i32, u64)>, mut entries: Vec<PerfLevel>| {
        if let Some(k) = key {
            entries.pop();
            out.insert(k, entries);
        }
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('\t') {
            let Some((addr, sym, dso)) = parse_frame_line(line) else {
                continue;
            };
            if done || leaf_addr.is_some_and(|a| a != addr) {
                done = true;
                continue;
            }
            leaf_addr = Some(addr);
            entries.push(PerfLevel {
                name: sym,
                srcline: None,
                named_by_symtab: dso.is_some(),
            });
            continue;
        }
        if line.starts_with("  ") {
            if let (false, Some(level)) = (done, entries.last_mut()) {
                let src = line.trim();
                level.srcline = Some(src.strip_suffix(" (inlined)").unwrap_or(src).to_string());
            }
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(tid), Some(time)) = (
            it.next().and_then(|t| t.parse().ok()),
            it.next().and_then(parse_time_ns),
        ) else {
            continue;
        };
        finish(key.take(), std::mem::take(&mut entries));
        key = Some((tid, time));
        leaf_addr = None;
        done = false;
    }
    finish(key, entries);
    out
}

/// `file:line` of a kvmtrace inline level as perf prints srclines (base name of the file).
fn srcline(level: &KtLevel) -> String {
    let file = level
        .2
        .as_deref()
        .map(|f| f.rsplit('/').next().unwrap_or(f).to_string())
        .unwrap_or_default();
    format!("{file}:{}", level.3.unwrap_or(0))
}

/// Whether kvmtrace's inline levels of a leaf frame (outermost first, the function itself
/// included) are perf's: the same number of levels and, level by level, the same function; a
/// level perf named after the symbol table (see [`PerfLevel`]) must carry the frame's symbol
/// in perf's output and the same srcline in both.
fn same_inline_levels(frame: &KtFrame, perf: &[PerfLevel]) -> bool {
    let ours: Vec<&KtLevel> = frame.levels.iter().skip(1).rev().collect();
    ours.len() == perf.len()
        && ours.iter().zip(perf).all(|(ours, theirs)| {
            if theirs.named_by_symtab {
                Some(perf_style(&theirs.name)) == frame.symbol().map(perf_style)
                    && theirs.srcline.as_deref() == Some(srcline(ours).as_str())
            } else {
                ours.0.as_deref().map(perf_style) == Some(perf_style(&theirs.name))
            }
        })
}

fn compare_recording(name: &str, dwarf_unwound: bool) -> Agreement {
    compare_with_perf(name, dwarf_unwound, &ingest_recording(name, false))
}

/// How the stacks `kt` of testdata/symbols/`<name>` agree with perf script's.
fn compare_with_perf(
    name: &str,
    dwarf_unwound: bool,
    kt: &HashMap<(i32, u64), Vec<KtFrame>>,
) -> Agreement {
    let dir = testdata().join("symbols");
    let perf = parse_perf_script(&zstd_text(&dir.join(format!("{name}.script.txt.zst"))));
    let perf_inline = parse_perf_inline_leaves(&zstd_text(
        &dir.join(format!("{name}.script-inline.txt.zst")),
    ));
    assert!(
        perf.len() > 500,
        "{name}: only {} samples in perf's output",
        perf.len()
    );
    assert_eq!(
        perf.len(),
        perf_inline.len(),
        "{name}: both perf outputs have every sample"
    );
    let mut a = Agreement::default();
    let mut n_diff = 0usize;
    for p in &perf {
        let Some(frames) = kt.get(&(p.tid, p.time_ns)) else {
            eprintln!(
                "{name}: sample tid {} time {} missing in kvmtrace",
                p.tid, p.time_ns
            );
            a.compared += p.frames.len();
            n_diff += 1;
            continue;
        };
        // Every frame of either side, the unwound user frames of DWARF call graphs included.
        let n = p.frames.len().max(frames.len());
        for i in 0..n {
            a.compared += 1;
            let (pf, kf) = (p.frames.get(i), frames.get(i));
            let ours = kf.map(|f| (f.symbol().map(perf_style), f.dso().to_string()));
            let theirs = pf.map(|f| (f.symbol.clone(), f.dso.clone()));
            // perf names frames outside every mapping `[unknown]`; kvmtrace leaves dso empty.
            let same = match (&ours, &theirs) {
                (Some((ks, kd)), Some((ps, pd))) => {
                    ks == ps && (kd == pd || (kd.is_empty() && pd == "[unknown]"))
                }
                _ => false,
            };
            if same {
                a.equal += 1;
            } else {
                n_diff += 1;
                eprintln!(
                    "{name}: tid {} time {} frame {i}: kvmtrace {ours:?} perf {theirs:?}",
                    p.tid, p.time_ns
                );
            }
        }
        // Inlined frames at the leaf (perf --inline expands them for DWARF call graphs only).
        if let (true, Some(theirs), Some(kf)) = (
            dwarf_unwound,
            perf_inline.get(&(p.tid, p.time_ns)),
            frames.first(),
        ) {
            a.inline_compared += 1;
            if same_inline_levels(kf, theirs) {
                a.inline_equal += 1;
                a.inline_symtab_named += theirs.iter().filter(|l| l.named_by_symtab).count();
            } else {
                let ours: Vec<(Option<String>, String)> = kf
                    .levels
                    .iter()
                    .skip(1)
                    .rev()
                    .map(|l| (l.0.as_deref().map(perf_style), srcline(l)))
                    .collect();
                eprintln!(
                    "{name}: tid {} time {} leaf inlines: kvmtrace {ours:?} perf {theirs:?}",
                    p.tid, p.time_ns
                );
            }
        }
    }
    eprintln!(
        "{name}: {}/{} frames agree ({} differ), inlined chains {}/{} \
         ({} levels perf named after the symbol table, same srcline)",
        a.equal, a.compared, n_diff, a.inline_equal, a.inline_compared, a.inline_symtab_named
    );
    a
}

fn assert_agrees(name: &str, dwarf_unwound: bool) {
    assert_agreement(name, &compare_recording(name, dwarf_unwound));
}

fn assert_agreement(name: &str, a: &Agreement) {
    assert!(
        a.compared > 500,
        "{name}: compared only {} frames",
        a.compared
    );
    let ratio = a.equal as f64 / a.compared as f64;
    assert!(
        ratio >= 0.999,
        "{name}: {}/{} frames agree with perf ({:.4})",
        a.equal,
        a.compared,
        ratio
    );
    let inline_ratio = a.inline_equal as f64 / a.inline_compared.max(1) as f64;
    assert!(
        a.inline_compared == 0 || inline_ratio >= 0.999,
        "{name}: {}/{} inline chains agree with perf",
        a.inline_equal,
        a.inline_compared
    );
}

#[test]
fn c_frame_pointer_recording_agrees_with_perf_script() {
    assert_agrees("cdemo.fp", false);
}

#[test]
fn cpp_inlining_recording_agrees_with_perf_script() {
    assert_agrees("cppinline.fp", false);
}

#[test]
fn rust_recording_agrees_with_perf_script() {
    assert_agrees("rustdemo.fp", false);
}

/// Samples in assembler labels (`STT_NOTYPE`): perf names a default-visibility label's and
/// skips a hidden one's (its samples fall to the symbol before it, `frame_dummy`), as it did for
/// zstd's hidden decoding loops on a live recording.
#[test]
fn assembler_label_recording_agrees_with_perf_script() {
    assert_agrees("labeldemo.fp", false);
}

#[test]
fn dwarf_call_graph_unwound_frames_agree_with_perf_script() {
    assert_agrees("cppinline.dwarf", true);
}

/// reexec exec'd itself to a higher address: perf (libunwind) looks for the CFI at the lower,
/// stale mapping, finds none and, the binary having no frame pointers, stops after the leaf.
/// kvmtrace reproduces that by default.
#[test]
fn dwarf_unwinding_after_exec_agrees_with_perf_script() {
    assert_agrees("reexec.dwarf", true);
}

/// With --exact-unwind the same samples unwind by the binary's CFI all the way to `main`
/// (the program's call graph: main → outer → middle → leaf, nothing else in a loop sample).
#[test]
fn exact_unwind_reaches_main_after_exec() {
    let kt = ingest_recording("reexec.dwarf", true);
    let (mut in_loop, mut to_main) = (0usize, 0usize);
    for frames in kt.values() {
        let names: Vec<&str> = frames.iter().filter_map(KtFrame::symbol).collect();
        if !matches!(names.first(), Some(&("leaf" | "middle" | "outer"))) {
            continue;
        }
        in_loop += 1;
        let callers: Vec<&str> = names
            .iter()
            .copied()
            .skip_while(|n| *n != "outer")
            .collect();
        if callers.first() == Some(&"outer") && callers.get(1) == Some(&"main") {
            to_main += 1;
        } else {
            eprintln!("not unwound to main: {names:?}");
        }
    }
    assert!(in_loop > 500, "only {in_loop} samples in the loop");
    assert_eq!(to_main, in_loop, "loop samples unwound to main");
}

/// The leaf of the DWARF recording is mostly inside always_inline helpers: kvmtrace must report
/// them with perf's file:line for the innermost level.
/// One row of a frames table: (frame_id, inline_depth, symbol, sym_offset, name, dso, file,
/// line, unwound).
type FrameRow = (
    u64,
    u64,
    Option<String>,
    Option<u64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u64>,
    bool,
);

fn frame_rows(ds: &Path) -> Vec<FrameRow> {
    let f = read_table(ds, "frames");
    let (id, depth, off, line) = (
        col_u64(&f, "frame_id"),
        col_u64(&f, "inline_depth"),
        col_u64(&f, "sym_offset"),
        col_u64(&f, "line"),
    );
    let (sym, name, dso, file) = (
        col_str(&f, "symbol"),
        col_str(&f, "name"),
        col_str(&f, "dso"),
        col_str(&f, "file"),
    );
    let unwound = col_bool(&f, "unwound");
    let mut rows: Vec<FrameRow> = (0..id.len())
        .map(|i| {
            (
                id[i].expect("frame_id"),
                depth[i].expect("inline_depth"),
                sym[i].clone(),
                off[i],
                name[i].clone(),
                dso[i].clone(),
                file[i].clone(),
                line[i],
                unwound[i].expect("unwound"),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// `source_lines: false` (what `kvmtrace flame perf.data` ingests with) reads DWARF only for
/// frames unwound from stack copies: those rows are the full ingest's; every other frame is
/// its depth-0 row of the full ingest without file and line (its name from the symbol table,
/// as before). On the C++ recordings with inlining, frame-pointer and DWARF call graphs.
#[test]
fn without_source_lines_only_unwound_frames_read_dwarf() {
    for name in ["cppinline.fp", "cppinline.dwarf"] {
        let (tmp, symfs, debug) = symfs_of_test_binaries();
        let file = testdata().join("symbols").join(format!("{name}.perf.data"));
        let full = tmp.path().join("full");
        ingest_symbols(&file, &full, &symfs, &debug, |_| {});
        let lean_ds = tmp.path().join("lean");
        ingest_symbols(&file, &lean_ds, &symfs, &debug, |o| o.source_lines = false);
        // The lean ingest's stacks are perf script's, frame by frame (and, unwound, their
        // leaves' inlined chains are perf --inline's).
        let unwound = name.ends_with("dwarf");
        assert_agreement(
            name,
            &compare_with_perf(name, unwound, &kvmtrace_samples(&lean_ds)),
        );
        let (full, lean) = (frame_rows(&full), frame_rows(&lean_ds));
        // The frame-pointer recording's full ingest has what the lean one leaves out (else
        // this compares nothing); the DWARF one's frames outside unwound stacks are kernel
        // frames, without DWARF here.
        if name.ends_with(".fp") {
            assert!(
                full.iter().any(|r| !r.8 && r.1 > 0 && r.6.is_some()),
                "{name}: no inlined frame outside unwound stacks"
            );
        }
        let want: Vec<FrameRow> = full
            .iter()
            .filter(|r| r.8 || r.1 == 0)
            .map(|r| {
                let mut r = r.clone();
                if !r.8 {
                    (r.6, r.7) = (None, None);
                }
                r
            })
            .collect();
        assert_eq!(lean, want, "{name}");
        if unwound {
            assert!(
                lean.iter().any(|r| r.8 && r.1 > 0 && r.6.is_some()),
                "{name}: unwound frames keep their inlined levels"
            );
        }
    }
}

#[test]
fn inlined_leaf_lines_agree_with_perf_srcline() {
    let dir = testdata().join("symbols");
    let kt = ingest_recording("cppinline.dwarf", false);
    let perf = parse_perf_inline_leaves(&zstd_text(
        &dir.join("cppinline.dwarf.script-inline.txt.zst"),
    ));
    let (mut compared, mut equal) = (0usize, 0usize);
    let mut keys: Vec<_> = perf.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let Some(kf) = kt.get(&key).and_then(|f| f.first()) else {
            continue;
        };
        let Some(perf_line) = perf
            .get(&key)
            .and_then(|l| l.first())
            .and_then(|l| l.srcline.as_deref())
        else {
            continue;
        };
        let Some(innermost) = kf.levels.last() else {
            continue;
        };
        compared += 1;
        let ours = srcline(innermost);
        if ours == perf_line {
            equal += 1;
        } else {
            eprintln!(
                "cppinline.dwarf: time {} innermost line: kvmtrace {ours} perf {perf_line}",
                key.1
            );
        }
    }
    eprintln!("cppinline.dwarf: innermost inlined lines {equal}/{compared}");
    assert!(compared > 300, "only {compared} inlined leaves");
    assert!(
        equal as f64 >= 0.999 * compared as f64,
        "{equal}/{compared} innermost lines agree"
    );
}

/// A bundle collected on this machine resolves guest kernel addresses exactly as a direct lookup
/// in the same kallsyms does.
#[test]
fn bundle_collected_here_resolves_like_its_kallsyms() {
    use kvmtrace_ingest::symbols::{
        AddrSpace, CollectOptions, FrameQuery, KernelSymbols, SymbolizeOptions, Symbolizer,
        collect_bundle,
    };
    let is_root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !is_root {
        eprintln!("skipping: not root (kallsyms addresses are hidden)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut opts = CollectOptions::default();
    opts.output = tmp.path().join("here.bundle.tar.zst");
    opts.vm = "here".into();
    opts.pids = vec![std::process::id()];
    let report = collect_bundle(&opts).expect("collect bundle");
    assert!(
        !report.kallsyms_restricted,
        "kallsyms restricted while root"
    );
    // The same kallsyms text the bundle holds, looked up directly.
    let bundle = kvmtrace_ingest::symbols::Bundle::open(&opts.output).expect("open bundle");
    let direct = KernelSymbols::from_files(
        bundle.kallsyms_path().expect("kallsyms in bundle"),
        bundle.modules_path(),
        "[guest.kernel.kallsyms]",
    )
    .expect("parse kallsyms");
    let mut sopts = SymbolizeOptions::default();
    sopts
        .guest_bundles
        .insert("here".into(), opts.output.clone());
    sopts.threads = 2;
    let symbolizer = Symbolizer::new(sopts).expect("symbolizer");
    // Every symbol's start, middle and last byte, for up to 20,000 symbols.
    let syms = direct.symbols();
    let step = (syms.len() / 20_000).max(1);
    let mut queries = Vec::new();
    for s in syms.iter().step_by(step) {
        let end = s.end.max(s.start + 1);
        for addr in [s.start, s.start + (end - s.start) / 2, end - 1] {
            queries.push(FrameQuery {
                space: AddrSpace::GuestKernel { vm: "here".into() },
                dso: "[guest.kernel.kallsyms]".into(),
                build_id: None,
                addr,
                file_offset: None,
                lines: true,
            });
        }
    }
    let resolved = symbolizer.resolve_all(&queries);
    let mut n_diff = 0;
    for (q, r) in queries.iter().zip(&resolved) {
        let hit = direct.lookup(q.addr);
        let want = (
            hit.symbol.map(|s| s.name.clone()),
            hit.symbol.map(|_| hit.offset),
            hit.dso.to_string(),
        );
        let got = r.last().map(|f| {
            (
                f.symbol.clone(),
                f.symbol.as_ref().map(|_| f.offset),
                f.dso.clone(),
            )
        });
        if got.as_ref() != Some(&want) {
            n_diff += 1;
            if n_diff <= 20 {
                eprintln!("{:#x}: bundle {got:?} direct {want:?}", q.addr);
            }
        }
    }
    eprintln!(
        "bundle vs direct kallsyms: {} addresses, {n_diff} differ",
        queries.len()
    );
    assert!(queries.len() > 1000, "kallsyms has too few symbols");
    assert_eq!(n_diff, 0);
    assert_eq!(report.manifest.vm, "here");
    let exe = std::env::current_exe().expect("current_exe");
    let exe = exe.to_string_lossy();
    assert!(
        report
            .manifest
            .binaries
            .iter()
            .any(|b| exe.starts_with(&b.path) || b.path == exe),
        "the test binary {exe} is collected"
    );
}

/// `perf kvm --guest` recording of a real guest: guest kernel symbols via --guestkallsyms equal
/// perf's per-symbol counts, and guest.elf (DWARF) gives lines that addr2line agrees with.
#[test]
fn kvm_guest_samples_resolve_like_perf() {
    let Some(corpus) = corpus() else { return };
    let kvm = corpus.join("kvm");
    let data = kvm.join("kvm-guest-host-4vcpu.data");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !data.is_file() {
        assert!(!ci, "{} missing", data.display());
        eprintln!("skipping: {} missing", data.display());
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let counts = |vmlinux: bool| -> (BTreeMap<String, u64>, PathBuf) {
        let ds = tmp.path().join(if vmlinux { "ds-elf" } else { "ds" });
        let mut opts = kvmtrace_ingest::Options::default();
        opts.output = ds.clone();
        opts.threads = 2;
        opts.guest_kallsyms = Some(kvm.join("guest.kallsyms"));
        opts.guest_modules = Some(kvm.join("guest.modules"));
        if vmlinux {
            opts.guest_vmlinux = Some(kvm.join("guest.elf"));
        }
        kvmtrace_ingest::run(&data, &opts).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
        (guest_leaf_counts(&ds), ds)
    };
    let (ours, _) = counts(false);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(kvm.join("kvm-guest-host-4vcpu.counts.json"))
            .expect("counts.json"),
    )
    .expect("json");
    let want: BTreeMap<String, u64> = json
        .get("guest_samples_by_symbol")
        .and_then(|v| v.as_object())
        .expect("guest_samples_by_symbol")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    let mut n_diff = 0;
    for k in want
        .keys()
        .chain(ours.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if want.get(k) != ours.get(k) {
            n_diff += 1;
            eprintln!(
                "guest symbol {k}: kvmtrace {:?} counts.json {:?}",
                ours.get(k),
                want.get(k)
            );
        }
    }
    eprintln!(
        "guest kernel samples: {} in {} symbols, {n_diff} symbols differ from counts.json",
        ours.values().sum::<u64>(),
        ours.len()
    );
    assert_eq!(
        n_diff, 0,
        "per-symbol guest sample counts differ from counts.json"
    );
    // perf script --guestkallsyms: the symbols of guest-mode samples.
    let script = std::fs::read_to_string(kvm.join("kvm-guest-host-4vcpu.script-guest.txt"))
        .expect("script-guest");
    let perf_syms = script_guest_leaf_counts(&script);
    if !perf_syms.is_empty() {
        let ours_set: Vec<&String> = ours.keys().collect();
        let perf_set: Vec<&String> = perf_syms.keys().collect();
        assert_eq!(
            ours_set, perf_set,
            "symbols of guest samples differ from perf script --guestkallsyms"
        );
    }
    // With guest.elf as --guestvmlinux: lines (and inlined frames) for guest kernel frames.
    let (with_elf, ds_elf) = counts(true);
    assert_eq!(with_elf, ours, "--guestvmlinux changes no symbol");
    spot_check_lines(&ds_elf, &kvm.join("guest.elf"));
}

/// The guest RIPs of a real PVM recording's exits, resolved at ingest through guest.elf
/// (`--guestvmlinux`, DWARF) and guest.kallsyms: every distinct (vm_pid, rip) of `exits` and
/// `kvm__kvm_emulate_insn` has exactly one `exit_symbols` row, and binutils
/// `addr2line -f -i -e guest.elf` names the same containing function, innermost inlined function,
/// file and line.
#[test]
fn kvm_exit_rips_resolve_like_addr2line() {
    let Some(corpus) = corpus() else { return };
    let kvm = corpus.join("kvm");
    let data = kvm.join("kvm-emulated-1vcpu.data");
    let elf = kvm.join("guest.elf");
    let tmp = tempfile::tempdir().expect("tempdir");
    let ds = tmp.path().join("ds");
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = ds.clone();
    opts.threads = 2;
    opts.guest_kallsyms = Some(kvm.join("guest.kallsyms"));
    opts.guest_modules = Some(kvm.join("guest.modules"));
    opts.guest_vmlinux = Some(elf.clone());
    kvmtrace_ingest::run(&data, &opts).unwrap_or_else(|e| panic!("{}: {e}", data.display()));

    let mut rips: std::collections::BTreeSet<(u64, u64)> = Default::default();
    let exits = read_table(&ds, "exits");
    for (p, r) in col_u64(&exits, "vm_pid")
        .into_iter()
        .zip(col_u64(&exits, "guest_rip"))
    {
        if let (Some(p), Some(r)) = (p, r) {
            rips.insert((p, r));
        }
    }
    let emu = read_table(&ds, "kvm__kvm_emulate_insn");
    for (p, r) in col_u64(&emu, "pid").into_iter().zip(col_u64(&emu, "rip")) {
        if let (Some(p), Some(r)) = (p, r) {
            rips.insert((p, r));
        }
    }
    let t = read_table(&ds, "exit_symbols");
    let (pid, rip, mode, sym, off, inl, file, line) = (
        col_u64(&t, "vm_pid"),
        col_u64(&t, "guest_rip"),
        col_str(&t, "cpumode"),
        col_str(&t, "symbol"),
        col_u64(&t, "sym_offset"),
        col_str(&t, "inline_symbol"),
        col_str(&t, "file"),
        col_u64(&t, "line"),
    );
    let keys: Vec<(u64, u64)> = pid
        .iter()
        .zip(&rip)
        .map(|(p, r)| (p.expect("vm_pid"), r.expect("guest_rip")))
        .collect();
    assert_eq!(
        keys,
        rips.iter().copied().collect::<Vec<_>>(),
        "exit_symbols: one row per distinct (vm_pid, guest_rip), sorted"
    );
    assert!(mode.iter().all(|m| m.as_deref() == Some("guest_kernel")));
    assert!(
        sym.iter().all(Option::is_some),
        "every guest kernel rip resolves"
    );
    // sym_offset against guest.kallsyms (nm -n): rip - start of the named symbol.
    let kallsyms = std::fs::read_to_string(kvm.join("guest.kallsyms")).expect("kallsyms");
    let starts: HashMap<&str, u64> = kallsyms
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let a = u64::from_str_radix(it.next()?, 16).ok()?;
            let _ty = it.next()?;
            Some((it.next()?, a))
        })
        .collect();
    for i in 0..keys.len() {
        let s = sym[i].as_deref().unwrap_or("");
        assert_eq!(
            off[i],
            starts.get(s).map(|a| keys[i].1 - a),
            "{:#x} {s}",
            keys[i].1
        );
    }

    // addr2line -f -i -a: the address, then (function, file:line) per level, innermost first.
    let input: String = keys.iter().map(|(_, r)| format!("{r:#x}\n")).collect();
    let Ok(mut child) = std::process::Command::new("addr2line")
        .args(["-f", "-i", "-a", "-e"])
        .arg(&elf)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "addr2line is required when CI=true"
        );
        eprintln!("skipping the addr2line comparison: addr2line not found");
        return;
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write addresses");
    }
    let out = child.wait_with_output().expect("addr2line runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        assert!(l.starts_with("0x"), "addr2line: unexpected line {l:?}");
        let mut levels = Vec::new();
        while let Some(f) = lines.next_if(|n| !n.starts_with("0x")) {
            let at = lines.next().expect("file:line");
            levels.push((f.to_string(), at.to_string()));
        }
        groups.push(levels);
    }
    assert_eq!(groups.len(), keys.len(), "one addr2line answer per address");
    let base = |f: &str| f.rsplit('/').next().unwrap_or(f).to_string();
    let mut n_inlined = 0;
    for (i, levels) in groups.iter().enumerate() {
        let a = keys[i].1;
        let (inner_fn, inner_at) = levels.first().expect("a level");
        let (outer_fn, _) = levels.last().expect("a level");
        if outer_fn != "??" {
            assert_eq!(
                sym[i].as_deref(),
                Some(outer_fn.as_str()),
                "{a:#x} function"
            );
        }
        let want_inl = (levels.len() > 1).then(|| inner_fn.clone());
        n_inlined += usize::from(want_inl.is_some());
        assert_eq!(inl[i], want_inl, "{a:#x} inlined function");
        // `file:line` or `file:line (discriminator n)`; `??:0` / `??:?` when unknown.
        let (f, l) = inner_at
            .split_whitespace()
            .next()
            .and_then(|x| x.rsplit_once(':'))
            .expect("file:line");
        let want = (f != "??").then(|| (base(f), l.parse::<u64>().ok()));
        let got = file[i].as_deref().map(|f| (base(f), line[i]));
        assert_eq!(got, want, "{a:#x} file:line ({inner_at})");
    }
    eprintln!(
        "exit_symbols: {} guest rips agree with addr2line ({n_inlined} inside inlined code)",
        keys.len()
    );
    assert!(n_inlined > 0, "the corpus has exits inside inlined code");
}

/// symbol → number of guest-kernel-mode samples whose leaf frame (outermost inline level) has it.
fn guest_leaf_counts(ds: &Path) -> BTreeMap<String, u64> {
    let frames = read_table(ds, "frames");
    let (sym, mode) = (col_str(&frames, "symbol"), col_str(&frames, "cpumode"));
    let mut leaf: HashMap<u64, String> = HashMap::new();
    for (sid, fidx, depth, i) in stack_frame_rows(ds, "stacks", &frames) {
        if fidx == 0 && depth == 0 && mode[i].as_deref() == Some("guest_kernel") {
            leaf.insert(sid, sym[i].clone().unwrap_or_else(|| "[unknown]".into()));
        }
    }
    let samples = read_table(ds, "samples");
    let (stack, smode) = (col_u64(&samples, "stack_id"), col_str(&samples, "cpumode"));
    let mut out = BTreeMap::new();
    for i in 0..stack.len() {
        if smode[i].as_deref() != Some("guest_kernel") {
            continue;
        }
        if let Some(s) = stack[i].and_then(|s| leaf.get(&s)) {
            *out.entry(s.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// Symbols of the leaf lines of `perf script --guestkallsyms` output (`... ip sym+off (dso)`),
/// guest kernel dso only.
fn script_guest_leaf_counts(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(at) = line.rfind(" (") else { continue };
        let dso = line.get(at + 2..).unwrap_or("").trim_end_matches(')');
        if !dso.contains("guest.kernel") {
            continue;
        }
        let head = &line[..at];
        let Some(sym) = head.split_whitespace().last() else {
            continue;
        };
        let sym = sym.rsplit_once("+0x").map_or(sym, |(s, _)| s);
        *out.entry(sym.to_string()).or_insert(0) += 1;
    }
    out
}

/// (inline depth, file, line, symbol) of the innermost level at one address.
type InnerLevel = (u64, Option<String>, Option<u64>, Option<String>);

/// Up to 20 guest kernel frames with a line: `addr2line -f -i -e guest.elf` names the same
/// innermost function and line.
fn spot_check_lines(ds: &Path, elf: &Path) {
    let frames = read_table(ds, "frames");
    let (addr, depth, mode, file, line, sym) = (
        col_u64(&frames, "addr"),
        col_u64(&frames, "inline_depth"),
        col_str(&frames, "cpumode"),
        col_str(&frames, "file"),
        col_u64(&frames, "line"),
        col_str(&frames, "symbol"),
    );
    // Innermost level per address.
    let mut inner: BTreeMap<u64, InnerLevel> = BTreeMap::new();
    for i in 0..addr.len() {
        if mode[i].as_deref() != Some("guest_kernel") {
            continue;
        }
        let (a, d) = (addr[i].unwrap_or(0), depth[i].unwrap_or(0));
        let e = inner
            .entry(a)
            .or_insert((d, file[i].clone(), line[i], sym[i].clone()));
        if d >= e.0 {
            *e = (d, file[i].clone(), line[i], sym[i].clone());
        }
    }
    let with_line: Vec<_> = inner.iter().filter(|(_, v)| v.2.is_some()).collect();
    assert!(
        !with_line.is_empty(),
        "no guest kernel frame got a line from guest.elf"
    );
    let n_inlined = inner.values().filter(|v| v.0 > 0).count();
    eprintln!(
        "guest kernel addresses: {} with lines, {} with inlined frames",
        with_line.len(),
        n_inlined
    );
    let step = (with_line.len() / 20).max(1);
    let mut checked = 0;
    for (a, (_, f, l, _)) in with_line.iter().step_by(step).take(20) {
        // Guest kernel frames are not under KASLR in this corpus when the elf's _stext equals
        // kallsyms'; addr2line takes link-time addresses.
        let Ok(out) = std::process::Command::new("addr2line")
            .arg("-e")
            .arg(elf)
            .arg("-i")
            .arg(format!("{a:#x}"))
            .output()
        else {
            eprintln!("skipping addr2line spot check: addr2line not found");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap_or("");
        let want_line = first
            .rsplit(':')
            .next()
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<u64>().ok());
        let want_file = first
            .rsplit_once(':')
            .map(|(f, _)| f.rsplit('/').next().unwrap_or(f).to_string());
        let got_file = f
            .as_deref()
            .map(|f| f.rsplit('/').next().unwrap_or(f).to_string());
        assert_eq!(
            (got_file.clone(), *l),
            (want_file.clone(), want_line),
            "{a:#x}: kvmtrace vs addr2line ({first})"
        );
        checked += 1;
    }
    assert!(checked > 0);
}

/// testdata/symbols/README.md describes every file of the folder, and every program it names exists.
#[test]
fn symbols_readme_matches_folder() {
    let dir = testdata().join("symbols");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("testdata/symbols")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.extend(
        std::fs::read_dir(dir.join("src"))
            .expect("src")
            .flatten()
            .map(|e| format!("src/{}", e.file_name().to_string_lossy())),
    );
    names.sort();
    for name in names.iter().filter(|n| *n != "README.md" && *n != "src") {
        // Recordings and references are described per kind: `X.fp.perf.data`, `R.script.txt.zst`.
        let kind = ["cdemo", "cppinline", "rustdemo", "reexec", "labeldemo"]
            .iter()
            .find_map(|p| {
                name.strip_prefix(p)
                    .filter(|rest| rest.starts_with('.') && rest.len() > 4)
            })
            .map(|rest| {
                rest.strip_prefix(".fp")
                    .or_else(|| rest.strip_prefix(".dwarf"))
                    .unwrap_or(rest)
            });
        let described =
            readme.contains(&format!("`{name}`")) || kind.is_some_and(|k| readme.contains(k));
        assert!(
            described,
            "testdata/symbols/{name} is not described in its README"
        );
    }
    for p in ["cdemo", "cppinline", "rustdemo", "labeldemo"] {
        for f in [
            format!("{p}.zst"),
            format!("{p}.fp.perf.data"),
            format!("{p}.fp.script.txt.zst"),
            format!("{p}.fp.script-inline.txt.zst"),
        ] {
            assert!(names.contains(&f), "README promises testdata/symbols/{f}");
        }
    }
    assert!(
        names.iter().any(|n| n == "cppinline.dwarf.perf.data"),
        "README promises cppinline.dwarf.perf.data"
    );
}

/// A kallsyms that does not parse costs the kernel symbols only: the binaries still resolve
/// under `--symfs` (the fallback had resolved this machine's paths instead, and left the test
/// binaries unnamed). The reference: the functions perf names in cdemo.fp.
#[test]
fn an_unreadable_kallsyms_keeps_the_symfs() {
    let (tmp, symfs, debug) = symfs_of_test_binaries();
    let bad = tmp.path().join("kallsyms");
    std::fs::write(&bad, "not a kallsyms line\n").expect("write");
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = tmp.path().join("ds");
    opts.threads = 2;
    opts.symfs = Some(symfs);
    opts.debug_dirs = vec![debug];
    opts.kallsyms = Some(bad);
    let file = testdata().join("symbols").join("cdemo.fp.perf.data");
    kvmtrace_ingest::run(&file, &opts).expect("ingest");
    let ours: std::collections::BTreeSet<String> = kvmtrace_samples(&opts.output)
        .values()
        .flatten()
        .filter(|f| f.dso().ends_with("/cdemo"))
        .filter_map(|f| f.symbol().map(str::to_owned))
        .collect();
    let perf: std::collections::BTreeSet<String> = parse_perf_script(&zstd_text(
        &testdata().join("symbols").join("cdemo.fp.script.txt.zst"),
    ))
    .iter()
    .flat_map(|s| &s.frames)
    .filter(|f| f.dso.ends_with("/cdemo"))
    .filter_map(|f| f.symbol.clone())
    .collect();
    assert!(!perf.is_empty());
    assert_eq!(ours, perf);
}
