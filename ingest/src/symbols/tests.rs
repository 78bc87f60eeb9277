//! Tests of the symbol layer against references kvmtrace did not produce:
//! perf 6.1's own `perf script` output, `nm`, binutils/LLVM `addr2line`,
//! `/proc/kallsyms` itself.

// Options are `#[non_exhaustive]`: the tests build them field by field, as other crates must.
#![allow(clippy::field_reassign_with_default)]

use super::bundle::TempDir;
use super::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kvm_data() -> PathBuf {
    // The shared recordings sit beside the repository (see their README.md).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/kvm")
}

fn symbols_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/symbols")
}

fn guest_table() -> KernelSymbols {
    let dir = kvm_data();
    KernelSymbols::from_files(
        &dir.join("guest.kallsyms"),
        Some(&dir.join("guest.modules")),
        GUEST_KERNEL_DSO,
    )
    .expect("guest.kallsyms parses")
}

#[test]
fn symbolizer_and_bundle_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Symbolizer>();
    assert_send_sync::<Bundle>();
    assert_send_sync::<SymbolError>();
}

fn tool_exists(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `TOOL ARGS... ADDRS` with `-a` and splits the output per address.
fn addr2line_tool(
    tool: &str,
    args: &[&str],
    file: &Path,
    addrs: &[u64],
) -> BTreeMap<u64, Vec<String>> {
    let mut cmd = Command::new(tool);
    cmd.args(args).arg("-a").arg("-e").arg(file);
    cmd.args(addrs.iter().map(|a| format!("{a:#x}")));
    let out = cmd.output().expect("addr2line runs");
    let mut res: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut cur = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(hex) = line.strip_prefix("0x") {
            let a = u64::from_str_radix(hex, 16).expect("hex address");
            cur = Some(a);
            res.entry(a).or_default();
        } else if let Some(a) = cur {
            res.entry(a).or_default().push(line.to_owned());
        }
    }
    res
}

#[test]
fn guest_kallsyms_lookups_match_nm_order_and_addr2line() {
    let table = guest_table();
    assert!(!table.addresses_restricted());
    // `nm -n guest.elf` is what guest.kallsyms was made from (README); text symbols in order.
    let kallsyms_text =
        std::fs::read_to_string(kvm_data().join("guest.kallsyms")).expect("guest.kallsyms");
    let text: Vec<(u64, &str)> = kallsyms_text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let addr = u64::from_str_radix(f.next()?, 16).ok()?;
            let kind = f.next()?;
            let name = f.next()?;
            (kind == "T").then_some((addr, name))
        })
        .collect();
    // The reference list itself, straight from binutils when it is installed.
    if let Ok(out) = Command::new("nm")
        .arg("-n")
        .arg(kvm_data().join("guest.elf"))
        .output()
    {
        let nm = String::from_utf8_lossy(&out.stdout);
        let nm_text: Vec<(u64, &str)> = nm
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let addr = u64::from_str_radix(f.next()?, 16).ok()?;
                (f.next()? == "T").then_some((addr, f.next()?))
            })
            .collect();
        assert_eq!(
            nm_text, text,
            "nm -n guest.elf disagrees with guest.kallsyms"
        );
    }
    let functions: Vec<(u64, &str)> = text
        .iter()
        .copied()
        .filter(|(_, n)| !matches!(*n, "_stext" | "_text" | "_etext"))
        .collect();
    let etext = text
        .iter()
        .find(|(_, n)| *n == "_etext")
        .map(|x| x.0)
        .expect("_etext");
    let mut probes = Vec::new();
    for (i, &(start, name)) in functions.iter().enumerate() {
        let end = functions.get(i + 1).map_or(etext, |n| n.0);
        for addr in [start, start + 1, end - 1] {
            let hit = table.lookup(addr);
            assert_eq!(hit.symbol.map(|s| s.name.as_str()), Some(name), "{addr:#x}");
            assert_eq!(hit.offset, addr - start);
            assert_eq!(hit.dso, GUEST_KERNEL_DSO);
            probes.push((addr, name));
        }
    }
    // perf picks startup_64 over its aliases _stext/_text (the last of them in the file).
    assert_eq!(
        table
            .lookup(0xffff_ffff_8100_0000)
            .symbol
            .map(|s| s.name.as_str()),
        Some("startup_64")
    );
    // Data symbols perf keeps (B) resolve too; `r` (read-only data) is ignored by perf.
    assert_eq!(
        table
            .lookup(0xffff_ffff_8100_2200)
            .symbol
            .map(|s| s.name.as_str()),
        Some("sink")
    );
    assert_eq!(
        table
            .lookup(0xffff_ffff_8100_1020)
            .symbol
            .map(|s| s.name.as_str()),
        Some("_etext")
    );
    if tool_exists("addr2line") {
        let addrs: Vec<u64> = probes.iter().map(|p| p.0).collect();
        // With -i the last function printed is the outermost (non-inlined) one.
        let got = addr2line_tool(
            "addr2line",
            &["-i", "-f"],
            &kvm_data().join("guest.elf"),
            &addrs,
        );
        let mut n_compared = 0;
        for (addr, name) in &probes {
            let lines = got.get(addr).expect("addr2line answered");
            let outermost = lines.len().checked_sub(2).and_then(|i| lines.get(i));
            if outermost.is_some_and(|f| f != "??") {
                assert_eq!(outermost.map(String::as_str), Some(*name), "{addr:#x}");
                n_compared += 1;
            }
        }
        assert!(n_compared >= 40, "only {n_compared} addresses compared");
    } else {
        println!("binutils addr2line not installed: compared against guest.kallsyms order only");
    }
}

/// perf 6.1's `perf script --guestkallsyms` resolved every guest sample of this
/// recording; each of our lookups must print the same `sym+0xoff`.
#[test]
fn guest_samples_match_perf_script_and_counts() {
    let table = guest_table();
    let script = std::fs::read_to_string(kvm_data().join("kvm-guest-host-4vcpu.script-guest.txt"))
        .expect("script-guest.txt");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut n = 0;
    for line in script
        .lines()
        .filter(|l| l.ends_with("([guest.kernel.kallsyms])"))
    {
        let mut fields = line.rsplit(' ');
        let (_dso, symoff, ip) = (fields.next(), fields.next(), fields.next());
        let ip = u64::from_str_radix(ip.expect("ip"), 16).expect("hex ip");
        let hit = table.lookup(ip);
        let sym = hit.symbol.expect("resolved");
        assert_eq!(
            format!("{}+{:#x}", sym.name, hit.offset),
            symoff.expect("sym"),
            "{line}"
        );
        assert_eq!(hit.dso, GUEST_KERNEL_DSO);
        *counts.entry(sym.name.clone()).or_default() += 1;
        n += 1;
    }
    assert_eq!(n, 1743);
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(kvm_data().join("kvm-guest-host-4vcpu.counts.json")).expect("json"),
    )
    .expect("json parses");
    let expected: BTreeMap<String, u64> =
        serde_json::from_value(json["guest_samples_by_symbol"].clone()).expect("map");
    assert_eq!(counts, expected);
}

/// `kvm_emulate_insn`'s guest RIP, resolved by perf's tooling into the counts files.
#[test]
fn emulate_insn_rips_match_counts() {
    let table = guest_table();
    for name in ["kvm-tp-2vcpu", "kvm-emulated-1vcpu"] {
        let script =
            std::fs::read_to_string(kvm_data().join(format!("{name}.script.txt"))).expect("script");
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for line in script.lines() {
            let Some((_, rest)) = line.split_once("kvm:kvm_emulate_insn: ") else {
                continue;
            };
            let rip = rest.split(':').nth(1).expect("csbase:rip:bytes");
            let rip = u64::from_str_radix(rip, 16).expect("hex");
            let sym = table.lookup(rip).symbol.expect("resolved").name.clone();
            *counts.entry(sym).or_default() += 1;
        }
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(kvm_data().join(format!("{name}.counts.json"))).expect("json"),
        )
        .expect("parses");
        let expected: BTreeMap<String, u64> =
            serde_json::from_value(json["emulate_insn_by_guest_symbol"].clone()).expect("map");
        assert_eq!(counts, expected, "{name}");
    }
}

/// Aliases at one kernel address resolve to the last of them in kallsyms order. The groups and
/// perf's choices are from a `perf record -a -g` on this machine's 6.18 kernel: `perf script`
/// (perf 6.1) printed `__pi_memcpy` (not `memcpy`: fewer underscores, nor `__memcpy`),
/// `__x64_sys_vfork` (not the longer `__ia32_sys_vfork`) and `__x86_indirect_thunk_rax` (not
/// the longer `__pi___x86_indirect_thunk_rax`) for addresses in them.
#[test]
fn kallsyms_aliases_resolve_as_perf_names_them() {
    let kallsyms = "\
ffffffff81000000 T startup_64
ffffffff81410000 T __do_sys_vfork
ffffffff81410000 T __ia32_sys_vfork
ffffffff81410000 T __x64_sys_vfork
ffffffff81410040 T do_other
ffffffff82260000 T memcpy
ffffffff82260000 T __memcpy
ffffffff82260000 T __pi_memcpy
ffffffff82260100 T memset
ffffffff82260100 T __memset
ffffffff82260100 T __pi_memset
ffffffff82270000 T __pi___x86_indirect_thunk_rax
ffffffff82270000 T __x86_indirect_thunk_array
ffffffff82270000 T __x86_indirect_thunk_rax
ffffffff82270020 T __pi___x86_indirect_thunk_r12
ffffffff82270020 T __x86_indirect_thunk_r12
ffffffff82270040 T __pi___x86_indirect_thunk_rdx
";
    let t = KernelSymbols::parse(kallsyms, None, HOST_KERNEL_DSO).expect("parses");
    let name = |a: u64| t.lookup(a).symbol.map(|s| s.name.clone());
    assert_eq!(name(0xffffffff81410010).as_deref(), Some("__x64_sys_vfork"));
    assert_eq!(name(0xffffffff82260010).as_deref(), Some("__pi_memcpy"));
    assert_eq!(name(0xffffffff82260110).as_deref(), Some("__pi_memset"));
    assert_eq!(
        name(0xffffffff82270006).as_deref(),
        Some("__x86_indirect_thunk_rax")
    );
    assert_eq!(
        name(0xffffffff82270026).as_deref(),
        Some("__x86_indirect_thunk_r12")
    );
}

#[test]
fn kallsyms_modules_boundaries_and_restriction() {
    let kallsyms = "\
ffffffff81000000 T _text
ffffffff81000000 T startup_64
ffffffff81000100 t local_fn
ffffffff81000180 r some_rodata
ffffffff81000200 W weak_fn
ffffffff81000300 D some_data
ffffffffc0001000 t vnet_open\t[virtio_net]
ffffffffc0001080 T vnet_xmit\t[virtio_net]
ffffffffc0002000 t $x\t[arm_mod]
ffffffffc0005000 T other_init\t[other]
";
    let modules = "virtio_net 8192 0 - Live 0xffffffffc0001000\nother 4096 1 virtio_net, Live 0xffffffffc0005000 (OE)\n";
    let t = KernelSymbols::parse(kallsyms, Some(modules), HOST_KERNEL_DSO).expect("parses");
    let name = |a: u64| t.lookup(a).symbol.map(|s| s.name.clone());
    assert_eq!(name(0xffffffff81000000).as_deref(), Some("startup_64"));
    // `r` is dropped, so local_fn extends to weak_fn.
    assert_eq!(name(0xffffffff810001ff).as_deref(), Some("local_fn"));
    // The last kernel symbol before module symbols ends at the next page boundary.
    assert_eq!(name(0xffffffff81001fff).as_deref(), Some("some_data"));
    assert_eq!(name(0xffffffff81002000), None);
    let hit = t.lookup(0xffffffffc0001090);
    assert_eq!(hit.symbol.map(|s| s.name.as_str()), Some("vnet_xmit"));
    assert_eq!(hit.offset, 0x10);
    assert_eq!(hit.dso, "[virtio_net]");
    // A module symbol extends to the next symbol, within the module's range.
    let hit = t.lookup(0xffffffffc0002ff0);
    assert_eq!(hit.symbol.map(|s| s.name.as_str()), Some("vnet_xmit"));
    assert_eq!(hit.dso, "[virtio_net]");
    // Past the module's size: the kernel map, which has no symbol there.
    let hit = t.lookup(0xffffffffc0003000);
    assert_eq!(hit.symbol, None);
    assert_eq!(hit.dso, HOST_KERNEL_DSO);
    assert_eq!(t.lookup(0xffffffffc0005010).dso, "[other]");
    assert_eq!(
        t.modules().len(),
        2,
        "ARM mapping symbols do not create modules"
    );
    assert_eq!(name(0xffffffff80000000), None);

    let restricted = "0000000000000000 T startup_64\n0000000000000000 t foo\n";
    let t = KernelSymbols::parse(restricted, None, HOST_KERNEL_DSO).expect("parses");
    assert!(t.addresses_restricted());
    assert!(t.symbols().is_empty());
    let err = KernelSymbols::parse("zzz T x\n", None, HOST_KERNEL_DSO).expect_err("bad hex");
    assert!(err.to_string().contains("line 1"), "{err}");
    assert!(is_idle_symbol("intel_idle"));
}

/// A tiny xorshift so the garbage is the same on every run.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn parsers_never_panic_on_garbage_or_truncation() {
    let elf = std::fs::read(symbols_data().join("inl")).expect("inl");
    for len in (0..elf.len()).step_by(97) {
        let _ = ElfSymbols::parse(&elf[..len]);
    }
    let kallsyms = std::fs::read(kvm_data().join("guest.kallsyms")).expect("kallsyms");
    for len in 0..kallsyms.len() {
        let text = String::from_utf8_lossy(&kallsyms[..len]);
        let _ = KernelSymbols::parse(&text, Some(&text), GUEST_KERNEL_DSO);
    }
    for seed in 0..300u64 {
        let g = garbage(seed, (seed as usize * 7) % 512);
        let mut corrupted = elf.clone();
        for (i, b) in g.iter().enumerate() {
            let at = (i * 131 + seed as usize * 17) % corrupted.len();
            corrupted[at] = *b;
        }
        let _ = ElfSymbols::parse(&corrupted);
        let _ = ElfSymbols::parse(&g);
        let _ = parse_build_id_note(&g, true);
        let _ = parse_modules(&String::from_utf8_lossy(&g));
        let _ = KernelSymbols::parse(&String::from_utf8_lossy(&g), None, HOST_KERNEL_DSO);
    }
    // A well-formed note stream: one unrelated note, then the build id.
    let mut notes = Vec::new();
    for (name, kind, desc) in [
        (&b"Xen\0"[..], 1u32, &[9u8, 9, 9][..]),
        (b"GNU\0", 3, &[0xab, 0xcd, 0xef, 0x01]),
    ] {
        notes.extend((name.len() as u32).to_le_bytes());
        notes.extend((desc.len() as u32).to_le_bytes());
        notes.extend(kind.to_le_bytes());
        notes.extend(name);
        notes.extend(desc);
        notes.resize(notes.len().next_multiple_of(4), 0);
    }
    assert_eq!(
        parse_build_id_note(&notes, true),
        Some(vec![0xab, 0xcd, 0xef, 0x01])
    );
    assert_eq!(parse_build_id_note(&notes[..notes.len() - 4], true), None);
}

fn guest_symbolizer(threads: usize, inlines: bool) -> Symbolizer {
    let mut options = SymbolizeOptions::default();
    options.threads = threads;
    options.inlines = inlines;
    options.guest_bundles.insert("g".into(), kvm_data());
    Symbolizer::new(options).expect("symbolizer")
}

fn strip_discriminator(s: &str) -> &str {
    s.split(" (discriminator").next().unwrap_or(s)
}

/// Every byte of guest text through the plain-directory bundle (guest.kallsyms +
/// guest.elf found as vmlinux by its entry point): inlined frames and lines equal
/// binutils `addr2line -i -f -e guest.elf` (2.40 here).
#[test]
fn guest_dwarf_frames_match_binutils() {
    let addrs: Vec<u64> = (0xffff_ffff_8100_0000u64..0xffff_ffff_8100_075b).collect();
    let queries: Vec<FrameQuery> = addrs
        .iter()
        .map(|&addr| FrameQuery {
            space: AddrSpace::GuestKernel { vm: "g".into() },
            dso: GUEST_KERNEL_DSO.into(),
            build_id: None,
            addr,
            file_offset: None,
            lines: true,
        })
        .collect();
    let one = guest_symbolizer(1, true).resolve_all(&queries);
    let two = guest_symbolizer(2, true).resolve_all(&queries);
    assert_eq!(one, two, "thread count changed the output");
    assert!(one.iter().all(|f| !f.is_empty()));
    let table = guest_table();
    for (frames, &addr) in one.iter().zip(&addrs) {
        let outer = frames.last().expect("non-empty");
        let expect = table.lookup(addr).symbol.map(|s| s.name.clone());
        assert_eq!(outer.symbol, expect, "{addr:#x}");
        assert_eq!(outer.inline_depth, 0);
    }
    // Hand-checked with `addr2line -i -f -e guest.elf 0xffffffff81000017` (binutils 2.40).
    let f = &one[0x17];
    let got: Vec<(Option<&str>, Option<u32>)> =
        f.iter().map(|x| (x.symbol.as_deref(), x.line)).collect();
    assert_eq!(
        got,
        vec![(Some("outb"), Some(38)), (Some("serial_puts"), Some(58))]
    );
    assert_eq!(f[0].inline_depth, 1);
    assert!(f[0].file.as_deref().is_some_and(|p| p.ends_with("guest.c")));
    if !tool_exists("addr2line") {
        println!("binutils addr2line not installed: compared the pasted frames only");
        return;
    }
    let reference = addr2line_tool(
        "addr2line",
        &["-i", "-f"],
        &kvm_data().join("guest.elf"),
        &addrs,
    );
    let mut n_compared = 0;
    let mut n_inlined = 0;
    for (frames, addr) in one.iter().zip(&addrs) {
        let lines = reference.get(addr).expect("answered");
        let pairs: Vec<(&str, &str)> = lines
            .chunks(2)
            .filter_map(|c| Some((c.first()?.as_str(), c.get(1)?.as_str())))
            .collect();
        // Skip what binutils itself cannot place (assembly without line info).
        if pairs
            .iter()
            .any(|(f, l)| *f == "??" || l.ends_with(":?") || l.starts_with("??"))
        {
            continue;
        }
        assert_eq!(
            frames.len(),
            pairs.len(),
            "{addr:#x}: {frames:?} vs {pairs:?}"
        );
        for (frame, (func, loc)) in frames.iter().zip(&pairs) {
            let loc = strip_discriminator(loc);
            let (file, line) = loc.rsplit_once(':').expect("file:line");
            assert_eq!(frame.symbol.as_deref(), Some(*func), "{addr:#x}");
            assert_eq!(frame.line, line.parse().ok(), "{addr:#x}");
            let ours = frame
                .file
                .as_deref()
                .and_then(|p| Path::new(p).file_name())
                .map(|n| n.to_string_lossy().into_owned());
            let theirs = Path::new(file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            assert_eq!(ours, theirs, "{addr:#x}");
        }
        n_compared += 1;
        n_inlined += usize::from(pairs.len() > 1);
    }
    assert!(
        n_compared > 1500 && n_inlined > 150,
        "{n_compared} compared, {n_inlined} inlined"
    );

    // Without inlines: one frame, the kallsyms name and the innermost line.
    let flat = guest_symbolizer(1, false).resolve(&queries[0x17]);
    assert_eq!(flat.len(), 1);
    assert_eq!(
        (flat[0].symbol.as_deref(), flat[0].line),
        (Some("serial_puts"), Some(38))
    );
}

/// (symbol, file name, line, inline_depth) innermost first.
type Expected = Vec<(&'static str, u32, u32)>;

/// Frames of `tests/data/symbols/inl` (g++ 12.2 -O2 -g, see inl.cpp), pasted from
/// `addr2line -i -f -C -e inl ADDR` (binutils 2.40) and `llvm-addr2line -i -f -C`
/// (LLVM 14). Both print the same lines; for 0x401230 and 0x401240 binutils names
/// the innermost inlined frame after its enclosing function instead of
/// `decode_reason`, which llvm-addr2line (and readelf's DW_TAG_inlined_subroutine)
/// show; we expect `decode_reason`.
fn inl_expected() -> Vec<(u64, Expected)> {
    let dispatch = "int kvm::exits::dispatch<int>(int)";
    vec![
        (0x401220, vec![(dispatch, 28, 0)]),
        (
            0x401230,
            vec![
                ("decode_reason", 13, 2),
                ("handle_io", 18, 1),
                (dispatch, 29, 0),
            ],
        ),
        (
            0x401240,
            vec![
                ("decode_reason", 14, 2),
                ("handle_io", 18, 1),
                (dispatch, 29, 0),
            ],
        ),
        (0x401244, vec![("handle_io", 20, 1), (dispatch, 29, 0)]),
        (0x401250, vec![(dispatch, 29, 0)]),
        (0x4011a0, vec![("Counter::add(long)", 42, 0)]),
        (0x4011c0, vec![("c_entry", 47, 0)]),
        (0x401050, vec![("main", 50, 0)]),
    ]
}

fn check_inl(symbolizer: &Symbolizer, dso: &Path, build_id: Option<Vec<u8>>, map_start: u64) {
    // An executable mapping at `map_start` with pgoff 0x1000 (the R E segment).
    let queries: Vec<FrameQuery> = inl_expected()
        .iter()
        .map(|(svma, _)| {
            let file_offset = svma - 0x401000 + 0x1000;
            FrameQuery {
                space: AddrSpace::HostUser,
                dso: dso.to_string_lossy().into_owned(),
                build_id: build_id.clone(),
                addr: map_start + (file_offset - 0x1000),
                file_offset: Some(file_offset),
                lines: true,
            }
        })
        .collect();
    let got = symbolizer.resolve_all(&queries);
    // The queries are distinct: ingest's path (no search for repeats) answers the same.
    assert_eq!(symbolizer.resolve_distinct(&queries), got);
    for ((svma, expected), frames) in inl_expected().iter().zip(&got) {
        let ours: Vec<(&str, u32, u32)> = frames
            .iter()
            .map(|f| {
                (
                    f.symbol.as_deref().unwrap_or("??"),
                    f.line.unwrap_or(0),
                    f.inline_depth,
                )
            })
            .collect();
        assert_eq!(&ours, expected, "{svma:#x} in {}", dso.display());
        assert!(
            frames
                .iter()
                .all(|f| f.file.as_deref().is_some_and(|p| p.ends_with("inl.cpp")))
        );
        assert!(frames.iter().all(|f| f.dso == dso.to_string_lossy()));
    }
    let outer = got[1].last().expect("frame");
    assert_eq!(outer.offset, 0x10, "offset into dispatch<int>");
}

#[test]
fn cpp_inlined_frames_match_addr2line_with_debuglink_and_build_id() {
    let data = symbols_data();
    let build_id = parse_hex("eb785b8224d061191f9ea7e8a23691085610d32d");
    let mut options = SymbolizeOptions::default();
    let empty_debug = TempDir::new().expect("tmp");
    options.debug_dirs = vec![empty_debug.path().to_owned()];
    for threads in [1, 2] {
        options.threads = threads;
        let s = Symbolizer::new(options.clone()).expect("symbolizer");
        // Unstripped binary, non-PIE-like and PIE-like mapping addresses.
        check_inl(&s, &data.join("inl"), build_id.clone(), 0x401000);
        check_inl(&s, &data.join("inl"), None, 0x7f12_3456_7000);
    }

    // Stripped binary + debug file found through .gnu_debuglink (CRC checked).
    let dir = TempDir::new().expect("tmp");
    std::fs::copy(data.join("inl.stripped"), dir.path().join("inl")).expect("copy");
    std::fs::copy(data.join("inl.debug"), dir.path().join("inl.debug")).expect("copy");
    let s = Symbolizer::new(options.clone()).expect("symbolizer");
    check_inl(&s, &dir.path().join("inl"), build_id.clone(), 0x401000);

    // Stripped binary + debug file only under <debug-dir>/.build-id/eb/785b….debug.
    let bin_dir = TempDir::new().expect("tmp");
    let debug_dir = TempDir::new().expect("tmp");
    std::fs::copy(data.join("inl.stripped"), bin_dir.path().join("inl")).expect("copy");
    let by_id = debug_dir.path().join(".build-id/eb");
    std::fs::create_dir_all(&by_id).expect("mkdir");
    std::fs::copy(
        data.join("inl.debug"),
        by_id.join("785b8224d061191f9ea7e8a23691085610d32d.debug"),
    )
    .expect("copy");
    let mut with_dir = options.clone();
    with_dir.debug_dirs = vec![debug_dir.path().to_owned()];
    let s = Symbolizer::new(with_dir).expect("symbolizer");
    check_inl(&s, &bin_dir.path().join("inl"), build_id.clone(), 0x401000);

    // A debuglink target with the wrong CRC is refused: no symbols, no lines.
    let bad = TempDir::new().expect("tmp");
    std::fs::copy(data.join("inl.stripped"), bad.path().join("inl")).expect("copy");
    let mut corrupt = std::fs::read(data.join("inl.debug")).expect("read");
    if let Some(last) = corrupt.last_mut() {
        *last ^= 0xff;
    }
    std::fs::write(bad.path().join("inl.debug"), corrupt).expect("write");
    let s = Symbolizer::new(options.clone()).expect("symbolizer");
    let frames = s.resolve(&FrameQuery {
        space: AddrSpace::HostUser,
        dso: bad.path().join("inl").to_string_lossy().into_owned(),
        build_id: None,
        addr: 0x401230,
        file_offset: Some(0x1230),
        lines: true,
    });
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].symbol.as_deref(), frames[0].line), (None, None));

    // A wrong build id refuses the file; a missing file stays unresolved with its dso kept.
    for (dso, id) in [
        (data.join("inl"), Some(vec![1u8; 20])),
        (PathBuf::from("/nonexistent/libfoo.so"), None),
    ] {
        let frames = s.resolve(&FrameQuery {
            space: AddrSpace::HostUser,
            dso: dso.to_string_lossy().into_owned(),
            build_id: id,
            addr: 0x401230,
            file_offset: Some(0x1230),
            lines: true,
        });
        assert_eq!(
            frames,
            vec![ResolvedFrame {
                symbol: None,
                offset: 0,
                inline_depth: 0,
                file: None,
                line: None,
                dso: dso.to_string_lossy().into_owned(),
                unwound_symbol: None,
                verbatim: false,
            }]
        );
    }
    assert_eq!(gnu_debuglink_crc32(b"123456789"), 0xcbf4_3926);
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

#[inline(never)]
fn marker_function_for_bundle_test(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(31)
}

/// The collector run on this machine (as a guest would run it), then every
/// kallsyms symbol looked up through the bundle equals a direct lookup in
/// /proc/kallsyms, and this test binary's own function resolves through it.
#[test]
fn collected_bundle_matches_proc_kallsyms() {
    if !is_root() {
        println!("skipped: collecting a bundle needs root (kallsyms addresses are zero otherwise)");
        return;
    }
    let out = TempDir::new().expect("tmp");
    let mut direct_text = String::new();
    let mut report = None;
    for attempt in 0..3 {
        let mut options = CollectOptions::default();
        options.output = out.path().join(format!("bundle-{attempt}.tar.zst"));
        options.vm = "self".into();
        options.pids = vec![std::process::id()];
        options.created_at = Some("2026-01-01T00:00:00Z".into());
        let r = collect_bundle(&options).expect("collect");
        direct_text = std::fs::read_to_string("/proc/kallsyms").expect("kallsyms");
        let bundle_text = Bundle::open(&r.output)
            .ok()
            .and_then(|b| std::fs::read_to_string(b.kallsyms_path()?).ok());
        // BPF programs come and go; retry until both reads agree.
        if bundle_text.as_deref() == Some(direct_text.as_str()) {
            report = Some(r);
            break;
        }
    }
    let report = report.expect("kallsyms stable across 3 attempts");
    assert!(!report.kallsyms_restricted);
    assert_eq!(report.manifest.format_version, 1);
    assert_eq!(report.manifest.vm, "self");
    assert!(
        report
            .manifest
            .binaries
            .iter()
            .any(|b| b.path.contains("libc.so")),
        "{:?}",
        report.manifest.binaries
    );
    let kernel_id = report
        .manifest
        .kernel_build_id
        .clone()
        .expect("kernel build id");
    // perf's own reading of the kernel build id, when perf is installed.
    if let Ok(o) = Command::new("perf").args(["buildid-list", "-k"]).output() {
        let text = String::from_utf8_lossy(&o.stdout);
        if let Some(perf_id) = text.split_whitespace().next().filter(|s| s.len() >= 16) {
            assert_eq!(perf_id, kernel_id);
        }
    }
    assert_eq!(
        report.manifest.kernel_release,
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .expect("osrelease")
            .trim()
    );

    let direct_modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    let direct = KernelSymbols::parse(&direct_text, Some(&direct_modules), GUEST_KERNEL_DSO)
        .expect("parses");
    let mut options = SymbolizeOptions::default();
    options.threads = 2;
    options
        .guest_bundles
        .insert("self".into(), report.output.clone());
    let s = Symbolizer::new(options).expect("symbolizer");
    let space = AddrSpace::GuestKernel { vm: "self".into() };
    let addrs: Vec<u64> = direct
        .symbols()
        .iter()
        .flat_map(|s| [s.start, s.start + 1])
        .collect();
    assert!(addrs.len() > 1000);
    let queries: Vec<FrameQuery> = addrs
        .iter()
        .map(|&addr| FrameQuery {
            space: space.clone(),
            dso: GUEST_KERNEL_DSO.into(),
            build_id: None,
            addr,
            file_offset: None,
            lines: true,
        })
        .collect();
    let got = s.resolve_all(&queries);
    for (frames, &addr) in got.iter().zip(&addrs) {
        let want = direct.lookup(addr);
        let f = frames.last().expect("frame");
        assert_eq!(
            f.symbol.as_deref(),
            want.symbol.map(|s| s.name.as_str()),
            "{addr:#x}"
        );
        assert_eq!(f.offset, want.offset);
        assert_eq!(f.dso, want.dso);
    }

    // This process's own code, through the bundle's copy of the test binary.
    let ip = marker_function_for_bundle_test as *const () as u64;
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let (start, pgoff, path) = maps
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let (range, _perms, off) = (f.next()?, f.next()?, f.next()?);
            let path = f.nth(2)?;
            let (a, b) = range.split_once('-')?;
            let (a, b) = (
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            );
            (a <= ip && ip < b).then(|| (a, u64::from_str_radix(off, 16).ok(), path.to_owned()))
        })
        .expect("mapping of the test binary");
    let frames = s.resolve(&FrameQuery {
        space: AddrSpace::GuestUser { vm: "self".into() },
        dso: path,
        build_id: None,
        addr: ip,
        file_offset: pgoff.map(|p| ip - start + p),
        lines: true,
    });
    let outer = frames.last().expect("frame");
    assert!(
        outer
            .symbol
            .as_deref()
            .is_some_and(|s| s.contains("marker_function_for_bundle_test")),
        "{frames:?}"
    );
    assert_eq!(outer.offset, 0);

    // The same collector writing a directory opens the same way.
    let mut options = CollectOptions::default();
    options.output = out.path().join("bundle-dir");
    options.vm = "self".into();
    let r = collect_bundle(&options).expect("collect dir");
    let b = Bundle::open(&r.output).expect("open dir");
    assert_eq!(b.manifest().map(|m| m.vm.as_str()), Some("self"));
    assert!(b.kallsyms_path().is_some());
    let again = collect_bundle(&options).expect_err("output exists");
    assert!(again.to_string().contains("already exists"), "{again}");
}

/// Writes a .tar.zst whose entries are given as raw (name, type, link, data),
/// bypassing the tar crate's own path checks.
/// A crafted archive entry: (name, type, link name, data).
type RawEntry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);

fn craft_tar_zst(path: &Path, entries: &[RawEntry<'_>]) {
    let file = std::fs::File::create(path).expect("create");
    let encoder = zstd::Encoder::new(file, 1).expect("zstd");
    let mut builder = tar::Builder::new(encoder);
    for (name, kind, link, data) in entries {
        let mut header = tar::Header::new_old();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, *data).expect("append");
    }
    builder
        .into_inner()
        .expect("tar")
        .finish()
        .expect("zstd finish");
}

#[test]
fn bundle_archives_refuse_escapes_links_and_oversize() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let dir = TempDir::new().expect("tmp");
    let ok: &[u8] = b"ffffffff81000000 T startup_64\n";
    let cases: Vec<(&str, Vec<RawEntry<'_>>, &str)> = vec![
        (
            "dotdot",
            vec![
                ("kallsyms", Regular, "", ok),
                ("../x", Regular, "", b"evil"),
            ],
            "`..`",
        ),
        (
            "nested-dotdot",
            vec![("a/../../x", Regular, "", b"evil")],
            "`..`",
        ),
        (
            "absolute",
            vec![("/tmp/kvmtrace-evil", Regular, "", b"evil")],
            "absolute",
        ),
        (
            "symlink-out",
            vec![
                ("kallsyms", Regular, "", ok),
                ("out", Symlink, "../../../etc", b""),
            ],
            "outside",
        ),
        (
            "symlink-abs",
            vec![("passwd", Symlink, "/etc/passwd", b"")],
            "outside",
        ),
        (
            "symlink-chain",
            vec![
                ("d", Directory, "", b""),
                ("d/u", Symlink, ".", b""),
                ("x", Symlink, "d/u/../..", b""),
            ],
            "outside",
        ),
        (
            "write-through-link",
            vec![("l", Symlink, "sub", b""), ("l/x", Regular, "", b"x")],
            "symbolic link",
        ),
        (
            "hardlink",
            vec![("h", Link, "/etc/passwd", b"")],
            "hard links",
        ),
    ];
    for (name, entries, reason) in cases {
        let path = dir.path().join(format!("{name}.tar.zst"));
        craft_tar_zst(&path, &entries);
        let err = Bundle::open(&path).expect_err(name);
        assert!(
            matches!(err, SymbolError::UnsafeBundleEntry { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(reason), "{name}: {err}");
    }
    assert!(!Path::new("/tmp/kvmtrace-evil").exists());

    let big = vec![b'x'; 4096];
    let path = dir.path().join("big.tar.zst");
    craft_tar_zst(
        &path,
        &[("kallsyms", Regular, "", ok), ("huge", Regular, "", &big)],
    );
    let mut limits = BundleLimits::default();
    limits.max_file_bytes = 1024;
    let err = Bundle::open_with_limits(&path, limits).expect_err("too big");
    assert!(err.to_string().contains("per-file limit"), "{err}");
    let mut limits = BundleLimits::default();
    limits.max_total_bytes = 2048;
    let err = Bundle::open_with_limits(&path, limits).expect_err("too big");
    assert!(err.to_string().contains("total limit"), "{err}");

    // A harmless archive with an in-bundle link opens, and its kallsyms resolves.
    let path = dir.path().join("good.tar.zst");
    craft_tar_zst(
        &path,
        &[
            ("syms", Regular, "", ok),
            ("kallsyms", Symlink, "syms", b""),
        ],
    );
    let bundle = Bundle::open(&path).expect("good bundle");
    let table = bundle
        .kernel_symbols(GUEST_KERNEL_DSO)
        .expect("parse")
        .expect("kallsyms");
    assert_eq!(
        table
            .lookup(0xffffffff81000004)
            .symbol
            .map(|s| s.name.as_str()),
        Some("startup_64")
    );
    let root = bundle.root().to_owned();
    drop(bundle);
    assert!(!root.exists(), "extracted copy removed on drop");
}

#[test]
fn manifest_version_and_paths_are_checked() {
    let dir = TempDir::new().expect("tmp");
    std::fs::write(
        dir.path().join("kallsyms"),
        "ffffffff81000000 T startup_64\n",
    )
    .expect("write");
    let manifest = |version: u32, file: &str| {
        format!(
            r#"{{"format_version":{version},"vm":"v","kernel_release":"6.1","kernel_build_id":null,
            "architecture":"x86_64","created_at":"2026-01-01T00:00:00Z",
            "binaries":[{{"path":"/bin/x","build_id":"ab","file":"{file}"}}]}}"#
        )
    };
    std::fs::write(
        dir.path().join("manifest.json"),
        manifest(2, "binaries/ab/x"),
    )
    .expect("write");
    let err = Bundle::open(dir.path()).expect_err("version 2");
    assert!(err.to_string().contains("format_version 2"), "{err}");
    std::fs::write(
        dir.path().join("manifest.json"),
        manifest(1, "../../etc/passwd"),
    )
    .expect("write");
    let err = Bundle::open(dir.path()).expect_err("unsafe path");
    assert!(err.to_string().contains("unsafe path"), "{err}");
    std::fs::create_dir_all(dir.path().join("binaries/ab")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("binaries/ab/x")).expect("link");
    std::fs::write(
        dir.path().join("manifest.json"),
        manifest(1, "binaries/ab/x"),
    )
    .expect("write");
    let err = Bundle::open(dir.path()).expect_err("link out");
    assert!(err.to_string().contains("outside the bundle"), "{err}");
    std::fs::remove_file(dir.path().join("binaries/ab/x")).expect("rm");
    let b = Bundle::open(dir.path()).expect("opens");
    assert_eq!(
        b.find_binary("/bin/x", Some(&[0xab])).map(|f| f.binary),
        Some(dir.path().join("binaries/ab/x"))
    );
    assert_eq!(b.find_binary("/bin/x", Some(&[0xcd])), None);
}

/// The system libc (stripped) with its debug file from the distribution's
/// `/usr/lib/debug/.build-id` tree (libc6-dbg; compressed DWARF): lines and
/// inlined frames equal binutils `addr2line -i -f -e <debug file>`. Skipped
/// when the debug package or binutils is missing.
#[test]
fn system_libc_through_build_id_debug_dir_matches_binutils() {
    let libc = Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6");
    let Ok(elf) = ElfSymbols::from_path(libc) else {
        println!("skipped: no {}", libc.display());
        return;
    };
    let Some(id) = elf.build_id().map(<[u8]>::to_vec) else {
        println!("skipped: libc has no build id");
        return;
    };
    let Some(debug) = find_debug_file(libc, Some(&id), None, &[]) else {
        println!("skipped: no libc debug file under /usr/lib/debug (install libc6-dbg)");
        return;
    };
    if !tool_exists("addr2line") {
        println!("skipped: binutils addr2line not installed");
        return;
    }
    let debug_elf = ElfSymbols::from_path(&debug).expect("debug file parses");
    // Every 97th function, at start + 5, mapped back to a file offset via the text segment.
    let text = elf
        .segments()
        .iter()
        .find(|s| s.executable)
        .copied()
        .expect("text segment");
    let svmas: Vec<u64> = debug_elf
        .symbols()
        .iter()
        .step_by(97)
        .map(|s| s.start + 5)
        .filter(|&a| a >= text.address && a - text.address < text.file_size)
        .collect();
    assert!(svmas.len() > 20);
    let queries: Vec<FrameQuery> = svmas
        .iter()
        .map(|&svma| {
            let file_offset = svma - text.address + text.file_offset;
            FrameQuery {
                space: AddrSpace::HostUser,
                dso: libc.to_string_lossy().into_owned(),
                build_id: Some(id.clone()),
                addr: 0x7f00_0000_0000 + file_offset,
                file_offset: Some(file_offset),
                lines: true,
            }
        })
        .collect();
    let s = Symbolizer::new(SymbolizeOptions::default()).expect("symbolizer");
    let got = s.resolve_all(&queries);
    let reference = addr2line_tool("addr2line", &["-i", "-f"], &debug, &svmas);
    // binutils names the including file for code #included from another .c file
    // (wcscoll_l.c vs strcoll_l.c); LLVM names the line table's file, as gimli does.
    let llvm = if tool_exists("llvm-addr2line") {
        addr2line_tool("llvm-addr2line", &["-i", "-f"], &debug, &svmas)
    } else {
        BTreeMap::new()
    };
    let mut n_compared = 0;
    for (frames, svma) in got.iter().zip(&svmas) {
        let lines = reference.get(svma).expect("answered");
        let pairs: Vec<(&str, &str)> = lines
            .chunks(2)
            .filter_map(|c| Some((c.first()?.as_str(), c.get(1)?.as_str())))
            .collect();
        if pairs
            .iter()
            .any(|(f, l)| *f == "??" || l.ends_with(":?") || l.starts_with("??"))
        {
            continue;
        }
        assert_eq!(
            frames.len(),
            pairs.len(),
            "{svma:#x}: {frames:?} vs {pairs:?}"
        );
        for (i, (frame, (func, loc))) in frames.iter().zip(&pairs).enumerate() {
            let (file, line) = strip_discriminator(loc)
                .rsplit_once(':')
                .expect("file:line");
            assert_eq!(frame.line, line.parse().ok(), "{svma:#x}");
            let ours = frame.file.as_deref().and_then(|p| Path::new(p).file_name());
            let llvm_file = llvm
                .get(svma)
                .and_then(|l| l.get(2 * i + 1))
                .and_then(|loc| strip_discriminator(loc).rsplit_once(':'))
                .and_then(|(f, _)| Path::new(f).file_name());
            assert!(
                ours == Path::new(file).file_name() || (ours.is_some() && ours == llvm_file),
                "{svma:#x}: {ours:?} vs {file} / {llvm_file:?}"
            );
            // The outermost name comes from the symbol table (perf's choice), which may
            // be an alias of the DWARF name; inlined frames carry DWARF names.
            if i + 1 < frames.len() {
                assert_eq!(frame.symbol.as_deref(), Some(*func), "{svma:#x}");
            }
        }
        assert!(frames.last().is_some_and(|f| f.symbol.is_some()));
        n_compared += 1;
    }
    assert!(n_compared > 10, "only {n_compared} compared");
}

/// A KASLR-shifted guest: kallsyms 2 MiB above the link address, `vmlinux`
/// (guest.elf) linked at 0xffffffff81000000; DWARF must be read at addr - 2 MiB.
#[test]
fn kaslr_shifted_kallsyms_uses_vmlinux_offset() {
    let dir = TempDir::new().expect("tmp");
    let shift = 0x20_0000u64;
    let text = std::fs::read_to_string(kvm_data().join("guest.kallsyms")).expect("kallsyms");
    let shifted: String = text
        .lines()
        .filter_map(|l| {
            let (addr, rest) = l.split_once(' ')?;
            let addr = u64::from_str_radix(addr, 16).ok()? + shift;
            Some(format!("{addr:016x} {rest}\n"))
        })
        .collect();
    std::fs::write(dir.path().join("kallsyms"), shifted).expect("write");
    std::fs::copy(kvm_data().join("guest.elf"), dir.path().join("vmlinux")).expect("copy");
    let mut options = SymbolizeOptions::default();
    options
        .guest_bundles
        .insert("k".into(), dir.path().to_owned());
    let s = Symbolizer::new(options).expect("symbolizer");
    let frames = s.resolve(&FrameQuery {
        space: AddrSpace::GuestKernel { vm: "k".into() },
        dso: GUEST_KERNEL_DSO.into(),
        build_id: None,
        addr: 0xffff_ffff_8100_0017 + shift,
        file_offset: None,
        lines: true,
    });
    let got: Vec<(Option<&str>, Option<u32>, u64)> = frames
        .iter()
        .map(|f| (f.symbol.as_deref(), f.line, f.offset))
        .collect();
    // Same frames as the unshifted `addr2line -i -f -e guest.elf 0xffffffff81000017`.
    assert_eq!(
        got,
        vec![
            (Some("outb"), Some(38), 0),
            (Some("serial_puts"), Some(58), 7)
        ]
    );
}

/// The committed cdemo binary (testdata/symbols) and its build id (`readelf -n`).
fn cdemo() -> (Vec<u8>, &'static str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/symbols/cdemo.zst");
    let bytes = zstd::decode_all(std::fs::File::open(path).expect("cdemo.zst")).expect("zstd");
    (bytes, "c9b6a806cbfe56ee94ce3538054715d01b01ec45")
}

/// `[vdso]` frames resolve through perf's build-id cache layout (`DIR/[vdso]/<build id>/vdso`),
/// as perf script finds the vdso `perf record` saved there. The "vdso" here is the committed
/// cdemo binary (the real one is kernel code, not committable); `main` is at 0x12a0 (nm).
#[test]
fn vdso_resolves_from_perf_build_id_cache() {
    let cache = tempfile::tempdir().expect("cache");
    let (bytes, id) = cdemo();
    let dir = cache.path().join("[vdso]").join(id);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("vdso"), &bytes).expect("write");
    let query = |build_id: &str| FrameQuery {
        space: AddrSpace::HostUser,
        dso: "[vdso]".into(),
        build_id: Some(parse_hex(build_id).expect("hex")),
        addr: 0x7ffc_0000_12a4,
        file_offset: Some(0x12a4),
        lines: true,
    };
    let resolve = |dirs: Vec<PathBuf>, build_id: &str| {
        let mut o = SymbolizeOptions::default();
        o.debug_dirs = dirs;
        let frames = Symbolizer::new(o)
            .expect("symbolizer")
            .resolve(&query(build_id));
        frames.last().and_then(|f| f.symbol.clone())
    };
    assert_eq!(
        resolve(vec![cache.path().to_path_buf()], id),
        Some("main".to_string())
    );
    // Another build id, or no cache: the frame stays unresolved.
    let other = "00b6a806cbfe56ee94ce3538054715d01b01ec45";
    assert_eq!(resolve(vec![cache.path().to_path_buf()], other), None);
    let empty = tempfile::tempdir().expect("empty");
    assert_eq!(resolve(vec![empty.path().to_path_buf()], id), None);
}

/// A plain bundle directory (no manifest) finds a binary by its build id, whatever its name:
/// the index reads each ELF file's id from its notes. cdemo's id is `readelf -n`'s; `inl`'s
/// differs.
#[test]
fn plain_bundle_directory_finds_binaries_by_build_id() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cdemo, id) = cdemo();
    let bin = dir.path().join("usr/bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::write(bin.join("renamed"), &cdemo).expect("write");
    std::fs::copy(symbols_data().join("inl"), bin.join("cdemo")).expect("copy");
    let b = Bundle::open(dir.path()).expect("open dir");
    let found = b
        .find_binary("/usr/bin/cdemo", Some(&parse_hex(id).expect("hex")))
        .expect("cdemo by its build id");
    assert_eq!(found.binary, bin.join("renamed"));
    // Without a build id the file name decides.
    let by_name = b.find_binary("/usr/bin/cdemo", None).expect("by name");
    assert_eq!(by_name.binary, bin.join("cdemo"));
    assert_eq!(b.find_binary("/usr/bin/cdemo", Some(&[0xab; 20])), None);
}

/// A binary rebuilt since the recording (another build id at its path) is turned down and
/// the copy perf's build-id cache keeps (`DIR/<path>/<build id>/elf`) is read instead; the
/// cache copy of yet another build is turned down too.
#[test]
fn rebuilt_binary_gives_way_to_the_build_id_cache() {
    let root = tempfile::tempdir().expect("tmp");
    let (cdemo, id) = cdemo();
    let id_bytes = parse_hex(id).expect("hex");
    // At the recorded path: another program (its own build id).
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::copy(symbols_data().join("inl"), bin.join("cdemo")).expect("copy");
    let dso = bin.join("cdemo").to_string_lossy().into_owned();
    let cache = root.path().join("cache");
    let cached = cache.join(dso.trim_start_matches('/')).join(id).join("elf");
    std::fs::create_dir_all(cached.parent().expect("parent")).expect("mkdir");
    let resolve = |elf: &[u8]| {
        std::fs::write(&cached, elf).expect("write");
        let mut o = SymbolizeOptions::default();
        o.debug_dirs = vec![cache.clone()];
        let frames = Symbolizer::new(o)
            .expect("symbolizer")
            .resolve(&FrameQuery {
                space: AddrSpace::HostUser,
                dso: dso.clone(),
                build_id: Some(id_bytes.clone()),
                addr: 0x5555_5555_52a4,
                file_offset: Some(0x12a4),
                lines: false,
            });
        frames.last().and_then(|f| f.symbol.clone())
    };
    // `main` is at 0x12a0 in cdemo (nm); nothing in `inl` is named so.
    assert_eq!(resolve(&cdemo), Some("main".to_string()));
    let inl = std::fs::read(symbols_data().join("inl")).expect("inl");
    assert_eq!(resolve(&inl), None);
}

/// libstdc++'s `std::__fill_a1` carries `srSt11__is_scalarIT0_E7__value` in its return type, a
/// form cpp_demangle 0.5 rejects; the expected texts are what binutils' c++filt 2.40 prints
/// (libstdc++ is installed wherever g++ or perf is).
#[test]
fn names_cpp_demangle_rejects_demangle_like_cxxfilt() {
    let cases = [
        (
            "_ZSt9__fill_a1IPmmEN9__gnu_cxx11__enable_ifIXsrSt11__is_scalarIT0_E7__valueEvE6__typeET_S8_RKS4_",
            "__gnu_cxx::__enable_if<std::__is_scalar<unsigned long>::__value, void>::__type \
             std::__fill_a1<unsigned long*, unsigned long>(unsigned long*, unsigned long*, \
             unsigned long const&)",
        ),
        (
            "_ZSt9__fill_a1IPiiEN9__gnu_cxx11__enable_ifIXsrSt11__is_scalarIT0_E7__valueEvE6__typeET_S8_RKS4_",
            "__gnu_cxx::__enable_if<std::__is_scalar<int>::__value, void>::__type \
             std::__fill_a1<int*, int>(int*, int*, int const&)",
        ),
    ];
    for (mangled, cxxfilt) in cases {
        assert_eq!(elf::demangle(mangled), cxxfilt, "{mangled}");
    }
    // cpp_demangle 0.5 printed an empty pack as "AnalysisManager<llvm::Function, >".
    assert_eq!(
        elf::demangle(
            "_ZN4llvm15AnalysisManagerINS_8FunctionEJEE10invalidateERS1_RKNS_17PreservedAnalysesE"
        ),
        "llvm::AnalysisManager<llvm::Function>::invalidate(llvm::Function&, llvm::PreservedAnalyses const&)"
    );
    // A Rust v0 name with LLVM's `.warm` suffix, as perf 6.1 prints it (librustc_driver).
    assert_eq!(
        elf::demangle(
            "_RNvXNtNtNtCsdadwybgsbvk_12rustc_middle2ty7context13impl_internerNtB4_6TyCtxtNtNtCsdoLGDhjbLAL_13rustc_type_ir8interner8Interner13alias_ty_kind.warm"
        ),
        "<rustc_middle::ty::context::TyCtxt as rustc_type_ir::interner::Interner>::alias_ty_kind"
    );
    // Names that do not demangle at all are left to the caller.
    assert_eq!(elf::demangle_libstdcxx("_ZsrStXXX"), None);
    assert_eq!(elf::demangle_libstdcxx("main"), None);
    assert_eq!(elf::demangle("main"), "main");
    assert_eq!(
        elf::demangle("_ZN4demo4stepEm"),
        "demo::step(unsigned long)"
    );
}

/// perf 6.1's text of real libLLVM symbols (`perf script` on a live recording of rustc) from
/// c++filt's: no parameters, clone suffix or return type; "operator new" keeps its space.
#[test]
fn perf_name_is_what_perf_script_prints() {
    let cases = [
        (
            "llvm::AnalysisManager<llvm::Function>::invalidate(llvm::Function&, llvm::PreservedAnalyses const&)",
            "llvm::AnalysisManager<llvm::Function>::invalidate",
        ),
        (
            "void std::vector<llvm::MCDwarfFrameInfo, std::allocator<llvm::MCDwarfFrameInfo> >::_M_realloc_insert<llvm::MCDwarfFrameInfo>(__gnu_cxx::__normal_iterator<llvm::MCDwarfFrameInfo*, std::vector<llvm::MCDwarfFrameInfo, std::allocator<llvm::MCDwarfFrameInfo> > >, llvm::MCDwarfFrameInfo&&)",
            "std::vector<llvm::MCDwarfFrameInfo, std::allocator<llvm::MCDwarfFrameInfo> >::_M_realloc_insert<llvm::MCDwarfFrameInfo>",
        ),
        (
            "llvm::GlobalOptPass::run(llvm::Module&, llvm::AnalysisManager<llvm::Module>&) [clone .warm]",
            "llvm::GlobalOptPass::run",
        ),
        (
            "llvm::raw_ostream::operator<<(unsigned long)",
            "llvm::raw_ostream::operator<<",
        ),
        (
            "llvm::SCCPSolver::removeNonFeasibleEdges(llvm::BasicBlock*, llvm::DomTreeUpdater&, llvm::BasicBlock*&) const",
            "llvm::SCCPSolver::removeNonFeasibleEdges",
        ),
        ("operator new(unsigned long)", "operator new"),
        (
            "decltype(auto) llvm::operator<< <llvm::raw_string_ostream&>(llvm::raw_string_ostream&, llvm::InlineCost const&)",
            "llvm::operator<< <llvm::raw_string_ostream&>",
        ),
        (
            "non-virtual thunk to llvm::VPInstruction::~VPInstruction()",
            "non-virtual thunk to llvm::VPInstruction::~VPInstruction",
        ),
        // A lambda in a const member function: perf prints the enclosing parameters.
        (
            "llvm::ScalarEvolution::LoopGuards::rewrite(llvm::SCEV const*) const::SCEVLoopGuardRewriter::visitAddExpr(llvm::SCEVAddExpr const*)::{lambda(llvm::SCEV const*)#1}::operator()(llvm::SCEV const*) const",
            "llvm::ScalarEvolution::LoopGuards::rewrite(llvm::SCEV const*) const::SCEVLoopGuardRewriter::visitAddExpr(llvm::SCEVAddExpr const*)::{lambda(llvm::SCEV const*)#1}::operator()",
        ),
        ("(anonymous namespace)::f()", "(anonymous namespace)::f"),
        (
            "<alloc::sync::Arc<dyn core::marker::Sync + core::marker::Send>>::drop_slow",
            "<alloc::sync::Arc<dyn core::marker::Sync + core::marker::Send>>::drop_slow",
        ),
        (
            "entry_SYSCALL_64_after_hwframe",
            "entry_SYSCALL_64_after_hwframe",
        ),
        // A PLT entry of libstdc++ (perf script on a live recording: `…error_category@plt`).
        (
            "std::error_category::error_category()@plt",
            "std::error_category::error_category@plt",
        ),
        ("memcpy@plt", "memcpy@plt"),
    ];
    for (full, perf) in cases {
        assert_eq!(perf_name(full), perf, "{full}");
    }
}

/// lld writes `.plt` with sh_entsize 0 (rustup's cargo, rustc and rust-lld are linked so):
/// perf 6.1 then makes every PLT symbol zero bytes long at the start of `.plt`, and its lookup
/// finds nothing above that address, where it would otherwise stretch the last symbol
/// (`_fini`, zero bytes long) over `.plt`. On a live recording perf printed `[unknown]` for the
/// samples in cargo's, rustc's and rust-lld's PLT. testdata/symbols/pltdemo is such a binary.
#[test]
fn a_zero_entsize_plt_leaves_its_addresses_unnamed_as_perf_does() {
    let bytes = zstd::decode_all(
        std::fs::File::open(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/symbols/pltdemo.zst"),
        )
        .expect("pltdemo"),
    )
    .expect("unzstd");
    let elf = ElfSymbols::parse(&bytes).expect("parse");
    let name = |svma: u64| elf.lookup(svma).map(|(s, _)| elf.name(s).into_owned());
    // .plt: 0x1940..0x1990 (sh_entsize 0); _fini: 0x1928, size 0; main: 0x1839..0x190e.
    assert_eq!(name(0x1839).as_deref(), Some("main"));
    assert_eq!(name(0x1930).as_deref(), Some("_fini"));
    assert_eq!(name(0x1950), None);
    assert_eq!(name(0x1985), None);
}

/// Split DWARF: `splitdemo`'s skeleton unit holds its line table only; the function DIEs live
/// in `splitdemo.dwp` beside it (testdata/symbols/make.sh). Reference: `llvm-addr2line -f -i -e
/// splitdemo 0x113b` (LLVM 14) prints `work` and `splitdemo.c:9` with the package, and the
/// package is what names the function (without it the DWARF holds no function at all).
#[test]
fn split_dwarf_functions_come_from_the_dwarf_package() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/symbols");
    let binary = dir.path().join("splitdemo");
    let packed = std::fs::File::open(data.join("splitdemo.zst")).expect("splitdemo.zst");
    std::fs::write(&binary, zstd::decode_all(packed).expect("unzstd")).expect("write");
    let frames =
        |ctx: &debuginfo::DwarfContext| -> Vec<(Option<String>, Option<String>, Option<u32>)> {
            ctx.frames(0x113b, true)
                .into_iter()
                .map(|f| {
                    let file = f
                        .file
                        .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned());
                    (f.function, file, f.line)
                })
                .collect()
        };
    let skeleton = debuginfo::DwarfContext::open(&binary).expect("skeleton DWARF");
    assert_eq!(
        frames(&skeleton),
        [(None, Some("splitdemo.c".into()), Some(9))]
    );
    std::fs::copy(data.join("splitdemo.dwp"), dir.path().join("splitdemo.dwp")).expect("dwp");
    let packaged = debuginfo::DwarfContext::open(&binary).expect("DWARF and package");
    assert_eq!(
        frames(&packaged),
        [(Some("work".into()), Some("splitdemo.c".into()), Some(9))]
    );
}
