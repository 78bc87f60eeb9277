//! Combined flame graphs of the real PVM host+guest recordings (`$KVMTRACE_CORPUS/kvm/*.data`
//! with guest samples, such as kvm-guest-host-4vcpu.data) against what perf made of the same
//! file: its `*.counts.json` and `perf script` outputs (`*.script-guest.txt` with
//! `--guestkallsyms`, `*.script.txt` with the host callchains), never against kvmtrace's own
//! output.
//!
//! Guest-mode samples there carry no callchain (only the leaf, the guest RIP, as on every x86
//! host), so each guest line is `VM <vm>;vCPU <n>;<guest function>`. Each recording is ingested
//! once (about 1 s in a debug build) with the corpus' guest symbols, as `perf kvm
//! --guestkallsyms=guest.kallsyms --guestmodules=guest.modules` reads it, and without host
//! symbols (`--kallsyms /dev/null`, an empty `--symfs`): the recording host's kernel and libc are
//! not in the corpus, so host frames stay `[<dso basename>]` on any machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use kvmtrace_analyze::Dataset;
use kvmtrace_analyze::flame::{self, Folded, Scope};
use serde_json::Value;

/// The recording every corpus holds (the one ../shared/testdata/kvm ships).
const SHIPPED: &str = "kvm-guest-host-4vcpu";

/// `$KVMTRACE_CORPUS/kvm`, or None (skip); a failure under CI=true.
fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KVMTRACE_CORPUS")
        .map(|p| PathBuf::from(p).join("kvm"))
        .filter(|d| d.join(format!("{SHIPPED}.data")).exists());
    if dir.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "KVMTRACE_CORPUS/kvm/{SHIPPED}.data is required when CI=true"
        );
        eprintln!("skipping {SHIPPED}: set KVMTRACE_CORPUS=/work/shared/testdata");
    }
    dir
}

/// One host+guest recording of the corpus ingested once, with perf's outputs of it.
struct Corpus {
    stem: String,
    dir: PathBuf,
    ds: Dataset,
    counts: Value,
}

impl Corpus {
    /// perf's output `<stem>.<what>` (script-guest.txt, script.txt).
    fn text(&self, what: &str) -> String {
        let p = self.dir.join(format!("{}.{what}", self.stem));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
}

/// Every recording of the corpus with guest-mode samples (counts.json's
/// `guest_samples_by_symbol`) and perf's script outputs beside it.
fn corpora() -> &'static [Corpus] {
    static C: OnceLock<Vec<Corpus>> = OnceLock::new();
    C.get_or_init(|| {
        let Some(dir) = corpus_dir() else {
            return Vec::new();
        };
        let mut stems: Vec<String> = std::fs::read_dir(&dir)
            .expect("corpus")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "data"))
            .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
            .filter(|s| {
                ["counts.json", "script-guest.txt", "script.txt"]
                    .iter()
                    .all(|w| dir.join(format!("{s}.{w}")).exists())
            })
            .collect();
        stems.sort();
        eprintln!("{}: {stems:?}", dir.display());
        let out: Vec<Corpus> = stems
            .into_iter()
            .filter_map(|stem| {
                let counts: Value = serde_json::from_str(
                    &std::fs::read_to_string(dir.join(format!("{stem}.counts.json")))
                        .expect("counts"),
                )
                .expect("counts.json");
                let guest = counts["guest_samples_by_symbol"]
                    .as_object()
                    .is_some_and(|o| !o.is_empty());
                guest.then(|| {
                    let tmp = crate::shared_scratch(&format!("flame-kvm-{stem}"));
                    let symfs = tmp.join("empty-symfs");
                    std::fs::create_dir(&symfs).expect("symfs");
                    let mut o = kvmtrace_ingest::Options::default();
                    o.output = tmp.join("ds");
                    o.guest_kallsyms = Some(dir.join("guest.kallsyms"));
                    o.guest_modules = Some(dir.join("guest.modules"));
                    o.kallsyms = Some("/dev/null".into());
                    // Nor any binary perf cached when it recorded here (~/.debug).
                    o.debug_dirs = vec![symfs.clone()];
                    o.symfs = Some(symfs);
                    kvmtrace_ingest::run(&dir.join(format!("{stem}.data")), &o).expect("ingest");
                    let ds = Dataset::open(&o.output).expect("open dataset");
                    Corpus {
                        stem,
                        dir: dir.clone(),
                        ds,
                        counts,
                    }
                })
            })
            .collect();
        assert!(
            out.iter().any(|c| c.stem == SHIPPED),
            "{SHIPPED} has guest samples"
        );
        out
    })
}

fn fold(ds: &Dataset, scope: Scope) -> Folded {
    let mut o = flame::Options::default();
    o.scope = scope;
    o.threads = 2;
    flame::fold(ds, &o).expect("fold")
}

fn json_u64s(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
        .collect()
}

/// vCPU thread id → vCPU index, from counts.json's `vcpu_thread_tids` (`CPU <n>/KVM`: tid).
fn vcpu_of_tid(counts: &Value) -> BTreeMap<u32, u32> {
    json_u64s(&counts["vcpu_thread_tids"])
        .into_iter()
        .map(|(name, tid)| {
            let n = name
                .strip_prefix("CPU ")
                .and_then(|s| s.strip_suffix("/KVM"))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("vCPU thread name {name:?}"));
            (u32::try_from(tid).expect("tid"), n)
        })
        .collect()
}

/// One sample header line of `perf script`: (comm, pid, tid, cpumode letter, event, rest of the
/// line after the event). Frame lines (tab-indented) and blank lines are None.
struct ScriptLine<'a> {
    comm: String,
    pid: Option<u32>,
    tid: u32,
    mode: Option<&'a str>,
    event: &'a str,
    rest: Vec<&'a str>,
}

fn script_line(line: &str) -> Option<ScriptLine<'_>> {
    if line.is_empty() || line.starts_with('\t') {
        return None;
    }
    let t: Vec<&str> = line.split_whitespace().collect();
    // `[001]`: the CPU; the token before it is `pid/tid` (or `tid`), the comm before that.
    let cpu = t.iter().position(|s| {
        s.len() > 2
            && s.starts_with('[')
            && s.ends_with(']')
            && s[1..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
    })?;
    let (pid, tid) = match t[cpu - 1].split_once('/') {
        Some((p, t)) => (Some(p.parse().ok()?), t.parse().ok()?),
        None => (None, t[cpu - 1].parse().ok()?),
    };
    let mut k = cpu + 1;
    // `-F …,misc` prints the cpumode letter (`K`, `U`, `G`) after the CPU.
    let mode = (t[k].len() == 1).then(|| t[k]);
    if mode.is_some() {
        k += 1;
    }
    // Then the time (`6469.532858:`), the period when printed, and `event:`.
    let ev = (k + 1..t.len()).find(|&i| t[i].ends_with(':'))?;
    Some(ScriptLine {
        comm: t[..cpu - 1].join(" "),
        pid,
        tid,
        mode,
        event: t[ev].trim_end_matches(':'),
        rest: t[ev + 1..].to_vec(),
    })
}

/// The dso of a `perf script` callchain line (`\t<addr> <sym>+<off> (<dso>)`), parentheses inside
/// the dso (`/memfd:x (deleted)`) included.
fn frame_dso(line: &str) -> &str {
    let s = line
        .trim_end()
        .strip_suffix(')')
        .expect("frame line ends with (dso)");
    let mut depth = 0;
    for (i, c) in s.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' if depth == 0 => return &s[i + 1..],
            '(' => depth -= 1,
            _ => {}
        }
    }
    panic!("no dso in frame line {line:?}")
}

/// The VM frame perf's output implies: `VM <comm>:<pid>` (the dataset's default VM name), the
/// VMM being the process of the guest-mode samples and its comm the last one perf printed for
/// its main thread.
fn want_vm(c: &Corpus) -> (u32, String) {
    let text = c.text("script-guest.txt");
    let mut pid = None;
    for l in text.lines().filter_map(script_line) {
        if l.mode == Some("G") {
            assert!(pid.is_none() || pid == l.pid, "one VMM process");
            pid = l.pid;
        }
    }
    let pid = pid.expect("guest-mode samples");
    let comm = text
        .lines()
        .filter_map(script_line)
        .rfind(|l| l.pid == Some(pid) && l.tid == pid)
        .expect("VMM main thread")
        .comm;
    (pid, format!("VM {comm}:{pid}"))
}

/// Guest-mode samples per (vCPU thread, guest function) in `*.script-guest.txt` (perf script
/// --guestkallsyms -G -F comm,pid,tid,cpu,time,event,misc,period,ip,sym,symoff,dso,trace).
fn perf_guest_samples(c: &Corpus) -> BTreeMap<(u32, String), u64> {
    let text = c.text("script-guest.txt");
    let mut out = BTreeMap::new();
    for l in text.lines().filter_map(script_line) {
        if l.mode != Some("G") || !is_cpu_clock(l.event) {
            continue;
        }
        // `<ip> <sym>+0x<off> ([guest.kernel.kallsyms])`
        let sym = l.rest.get(1).expect("sym");
        let sym = sym.rsplit_once("+0x").map_or(*sym, |(s, _)| s);
        *out.entry((l.tid, sym.to_string())).or_default() += 1;
    }
    out
}

/// `cpu-clock`, with any modifiers (`perf kvm record`'s default is `cpu-clock:ppp` here).
fn is_cpu_clock(event: &str) -> bool {
    event.split(':').next() == Some("cpu-clock")
}

/// The cpu-clock samples of a counts.json map of events.
fn cpu_clock_of(events: &Value) -> u64 {
    json_u64s(events)
        .into_iter()
        .filter(|(e, _)| is_cpu_clock(e))
        .map(|(_, n)| n)
        .sum()
}

/// Panics with the first differing (vCPU, key) entries of kvmtrace's counts and perf's.
fn assert_same_per_vcpu(
    got: &BTreeMap<(u32, String), u64>,
    want: &BTreeMap<(u32, String), u64>,
    what: &str,
) {
    if got == want {
        return;
    }
    let diff: Vec<String> = want
        .keys()
        .chain(got.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .take(10)
        .map(|k| {
            format!(
                "vCPU {} {}: perf {:?}, kvmtrace {:?}",
                k.0,
                k.1,
                want.get(k),
                got.get(k)
            )
        })
        .collect();
    panic!("{what} differ:\n{diff:#?}");
}

#[test]
fn pvm_guest_only_counts_per_vcpu_and_function_equal_perf() {
    for c in corpora() {
        guest_only_counts_equal_perf(c);
    }
}

fn guest_only_counts_equal_perf(c: &Corpus) {
    let (_, vm) = want_vm(c);
    let vcpus = vcpu_of_tid(&c.counts);

    // The reference: perf's guest samples per vCPU and function; summed over the vCPUs they
    // are counts.json's `guest_samples_by_symbol`, per vCPU its `guest_samples_by_thread`.
    let perf = perf_guest_samples(c);
    let mut by_symbol: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_tid: BTreeMap<u32, u64> = BTreeMap::new();
    for ((tid, sym), n) in &perf {
        *by_symbol.entry(sym.clone()).or_default() += n;
        *by_tid.entry(*tid).or_default() += n;
    }
    assert_eq!(
        by_symbol,
        json_u64s(&c.counts["guest_samples_by_symbol"]),
        "script-guest.txt against counts.json"
    );
    let by_thread: BTreeMap<u32, u64> = json_u64s(&c.counts["guest_samples_by_thread"])
        .into_iter()
        .map(|(k, n)| {
            let tid = k
                .strip_prefix("guest:")
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("thread key {k:?}"));
            (tid, n)
        })
        .collect();
    assert_eq!(by_tid, by_thread, "script-guest.txt against counts.json");
    let want: BTreeMap<(u32, String), u64> = perf
        .into_iter()
        .map(|((tid, sym), n)| {
            let v = *vcpus
                .get(&tid)
                .unwrap_or_else(|| panic!("guest sample of tid {tid}, not a vCPU thread"));
            ((v, sym), n)
        })
        .collect();

    let f = fold(&c.ds, Scope::GuestOnly);
    let mut got: BTreeMap<(u32, String), u64> = BTreeMap::new();
    for s in &f.stacks {
        let frames: Vec<&str> = s.stack.split(';').collect();
        assert_eq!(frames[0], vm, "{}", s.stack);
        let v: u32 = frames[1]
            .strip_prefix("vCPU ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no vCPU frame: {}", s.stack));
        // No guest callchain: the guest part is the leaf function alone.
        assert_eq!(frames.len(), 3, "{}", s.stack);
        assert_eq!((s.layout.n_header, s.layout.n_guest), (2, 1), "{}", s.stack);
        *got.entry((v, frames[2].to_string())).or_default() += s.count;
    }
    assert_same_per_vcpu(&got, &want, "guest samples per vCPU and function");
    let guest_mode = c.counts["cpu_clock_by_mode"]["guest-kernel"]
        .as_u64()
        .expect("guest-kernel");
    assert_eq!(f.report.n_samples, guest_mode);
    assert_eq!(f.report.n_guest_mode, guest_mode);
    assert_eq!(f.count_name, "samples");
}

/// Host-mode `cpu-clock` samples of the vCPU threads in `*.script.txt` (perf script, default
/// fields, host callchains), as the folded line kvmtrace writes for an unsymbolized stack:
/// (vCPU, frames root first, each `[<dso basename>]` or `[unknown]`).
fn perf_vcpu_host_stacks(c: &Corpus, vcpus: &BTreeMap<u32, u32>) -> BTreeMap<(u32, String), u64> {
    let text = c.text("script.txt");
    let mut out = BTreeMap::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(l) = script_line(line) else { continue };
        let name = |dso: &str| {
            if dso == "[unknown]" {
                "[unknown]".to_string()
            } else {
                format!("[{}]", dso.rsplit('/').next().unwrap_or(dso))
            }
        };
        let mut frames = Vec::new();
        while let Some(f) = lines.next_if(|f| f.starts_with('\t')) {
            frames.push(name(frame_dso(f)));
        }
        if frames.is_empty() {
            // Recorded without callchains: the sample line ends with its leaf `<ip> <sym> (<dso>)`.
            frames.push(name(frame_dso(line)));
        }
        let Some(&v) = vcpus.get(&l.tid) else {
            continue;
        };
        if !is_cpu_clock(l.event) {
            continue;
        }
        frames.reverse();
        *out.entry((v, frames.join(";"))).or_default() += 1;
    }
    out
}

#[test]
fn pvm_host_frames_of_vcpu_threads_under_their_vm() {
    for c in corpora() {
        host_frames_of_vcpu_threads_under_their_vm(c);
    }
}

fn host_frames_of_vcpu_threads_under_their_vm(c: &Corpus) {
    let (_, vm) = want_vm(c);
    let vcpus = vcpu_of_tid(&c.counts);
    let all = fold(&c.ds, Scope::All);
    let guest_only = fold(&c.ds, Scope::GuestOnly);

    // Guest-mode lines of the whole-system graph are the guest-only graph.
    let guest_lines: Vec<(&str, u64)> = all
        .stacks
        .iter()
        .filter(|s| s.layout.n_guest > 0 && s.layout.n_exit == 0)
        .map(|s| (s.stack.as_str(), s.count))
        .collect();
    let want_guest: Vec<(&str, u64)> = guest_only
        .stacks
        .iter()
        .map(|s| (s.stack.as_str(), s.count))
        .collect();
    assert_eq!(guest_lines, want_guest);

    // Every host-mode sample of a vCPU thread is under `VM <vm>;vCPU <n>` (after `<guest
    // function>;[exit R]` when it fell inside an exit), its host frames those perf printed.
    let mut got: BTreeMap<(u32, String), u64> = BTreeMap::new();
    let mut kernel_frames: BTreeMap<u32, u64> = BTreeMap::new();
    for s in all.stacks.iter().filter(|s| s.stack.starts_with("VM ")) {
        let frames: Vec<&str> = s.stack.split(';').collect();
        assert_eq!(frames[0], vm, "{}", s.stack);
        if s.layout.n_guest > 0 && s.layout.n_exit == 0 {
            continue;
        }
        let v: u32 = frames[1]
            .strip_prefix("vCPU ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no vCPU frame: {}", s.stack));
        let l = s.layout;
        let host = &frames[(l.n_header + l.n_guest + l.n_exit) as usize..];
        assert!(!host.is_empty() || l.n_exit > 0, "{}", s.stack);
        if host.iter().any(|f| f.contains("kernel.kallsyms")) {
            *kernel_frames.entry(v).or_default() += s.count;
        }
        *got.entry((v, host.join(";"))).or_default() += s.count;
    }
    let want = perf_vcpu_host_stacks(c, &vcpus);
    assert_same_per_vcpu(&got, &want, "host stacks of the vCPU threads");
    // Per vCPU that is counts.json's cpu-clock of its thread name less the guest-mode samples and
    // the KVM worker thread that inherited `CPU 0/KVM` (not a vCPU: not under the VM).
    let guest_by_thread = json_u64s(&c.counts["guest_samples_by_thread"]);
    let others = json_u64s(&c.counts["other_tids_with_vcpu_comm"]);
    for (tid, v) in &vcpus {
        let name = format!("CPU {v}/KVM");
        let host_total: u64 = got
            .iter()
            .filter(|((g, _), _)| g == v)
            .map(|(_, n)| n)
            .sum();
        let worker: u64 = others
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name} tid ")))
            .map(|(_, n)| n)
            .sum();
        let thread = cpu_clock_of(&c.counts["events_by_thread"][&name]);
        assert_eq!(host_total, thread - worker, "{name} host samples");
        assert!(
            guest_by_thread.contains_key(&format!("guest:{tid} ({name})")),
            "{name}"
        );
        assert!(
            kernel_frames.get(v).copied().unwrap_or(0) > 0,
            "no host kernel frames under {vm};vCPU {v}"
        );
    }
    // The worker's samples are plain `<comm>;<frames>` lines of its inherited comm.
    let mut worker_want: BTreeMap<String, u64> = BTreeMap::new();
    for (k, n) in &others {
        let comm = k.split(" tid ").next().expect("comm");
        *worker_want.entry(comm.replace(' ', "_")).or_default() += n;
    }
    for (comm, n) in worker_want {
        let lines: u64 = all
            .stacks
            .iter()
            .filter(|s| s.stack.starts_with(&format!("{comm};")))
            .map(|s| s.count)
            .sum();
        assert_eq!(lines, n, "KVM worker thread {comm}");
    }
    let total = cpu_clock_of(&c.counts["events"]);
    assert_eq!(all.report.n_samples, total);
    assert_eq!(all.report.n_no_stack, 0);
}
