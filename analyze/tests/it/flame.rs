//! Flame graphs against references kvmtrace did not make: the generator's folded.txt and truth.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kvmtrace_analyze::Dataset;
use kvmtrace_analyze::flame::{self, Scope};

fn synth_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/synth-small")
}

/// testdata/synth-small ingested once with its guest recording, bundle, kallsyms and sysroot.
fn synth_small() -> &'static Dataset {
    static DS: OnceLock<Dataset> = OnceLock::new();
    DS.get_or_init(|| {
        let d = synth_dir();
        let mut o = kvmtrace_ingest::Options::default();
        o.output = crate::shared_scratch("flame-synth-small").join("ds");
        o.guest_data = vec![
            format!(
                "3100={},name=guest-0",
                d.join("guest-0.perf.data").display()
            )
            .parse()
            .expect("guest data"),
        ];
        o.guest_symbols = vec![("3100".into(), d.join("guest-0.bundle"))];
        o.kallsyms = Some(d.join("host.kallsyms"));
        o.symfs = Some(d.join("host-root"));
        kvmtrace_ingest::run(&d.join("host.perf.data"), &o).expect("ingest synth-small");
        Dataset::open(&o.output).expect("open")
    })
}

fn folded_text(f: &flame::Folded) -> String {
    let mut out = Vec::new();
    flame::render_folded(f, &mut out).expect("render");
    String::from_utf8(out).expect("utf8")
}

fn opts(threads: usize) -> flame::Options {
    let mut o = flame::Options::default();
    o.threads = threads;
    o
}

#[test]
fn synth_small_folded_equals_ground_truth() {
    let f = flame::fold(synth_small(), &opts(2)).expect("fold");
    let want = std::fs::read_to_string(synth_dir().join("folded.txt")).expect("folded.txt");
    assert_eq!(folded_text(&f), want);
    // Placement of the samples equals the generator's categories.
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(synth_dir().join("truth.json")).expect("truth"),
    )
    .expect("json");
    let t = &truth["samples"];
    let r = &f.report;
    assert_eq!(r.n_samples, t["host_total"].as_u64().expect("n"));
    assert_eq!(r.n_guest_mode, t["guest_mode"].as_u64().expect("n"));
    assert_eq!(r.n_in_exit_kernel, t["in_exit_kernel"].as_u64().expect("n"));
    assert_eq!(r.n_in_exit_vmm, t["in_exit_vmm"].as_u64().expect("n"));
    assert_eq!(
        r.n_other + r.n_vcpu_outside_exit,
        t["other"].as_u64().expect("n")
    );
    assert_eq!(r.match_rate(), Some(1.0));
}

/// `join::place_host_samples` (polars' as-of joins; flame places by its own searches) puts the
/// generator's samples where the generator did, and finds every guest-mode sample's guest stack.
#[test]
fn place_host_samples_equals_the_generators_placement() {
    let ds = synth_small();
    let mut o = kvmtrace_analyze::join::JoinOptions::default();
    o.event = flame::default_event(ds).expect("default event");
    let df = kvmtrace_analyze::join::place_host_samples(ds, &o).expect("place");
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    let place = df
        .column("placement")
        .expect("placement")
        .str()
        .expect("str");
    let guest_stack = df.column("guest_stack_id").expect("guest_stack_id");
    let mut guest_unmatched = 0;
    for (i, p) in place.iter().enumerate() {
        let p = p.expect("every sample is placed");
        *by.entry(p.to_string()).or_default() += 1;
        if p == "guest_mode" && guest_stack.get(i).expect("row").is_null() {
            guest_unmatched += 1;
        }
    }
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(synth_dir().join("truth.json")).expect("truth"),
    )
    .expect("json");
    let t = |k: &str| truth["samples"][k].as_u64().expect(k);
    let n = |k: &str| by.get(k).copied().unwrap_or(0);
    assert_eq!(df.height() as u64, t("host_total"));
    assert_eq!(n("guest_mode"), t("guest_mode"));
    assert_eq!(n("in_exit_kernel"), t("in_exit_kernel"));
    assert_eq!(n("in_exit_vmm"), t("in_exit_vmm"));
    assert_eq!(n("other") + n("vcpu_outside_exit"), t("other"));
    assert_eq!(guest_unmatched, 0);
}

/// Stacks read a few at a time (13 and 97 rows a batch, batches cut into parts per thread)
/// fold as when read whole.
#[test]
fn stacks_read_in_small_batches_fold_to_the_ground_truth() {
    let want = std::fs::read_to_string(synth_dir().join("folded.txt")).expect("folded.txt");
    for rows in [13, 97] {
        let mut o = opts(2);
        o.stack_batch_rows = rows;
        let f = flame::fold(synth_small(), &o).expect("fold");
        assert_eq!(folded_text(&f), want, "{rows} rows a batch");
        assert_eq!(f.report.match_rate(), Some(1.0));
    }
}

/// Ingest options for a generated recording in `d`: every VM's guest recording and bundle, the
/// host's kallsyms and root.
fn with_synth_guests(o: &mut kvmtrace_ingest::Options, d: &Path, truth: &serde_json::Value) {
    for vm in truth["vms"].as_array().expect("vms") {
        let name = vm["name"].as_str().expect("name");
        let pid = vm["pid"].as_i64().expect("pid");
        o.guest_data.push(
            format!(
                "{pid}={},name={name}",
                d.join(format!("{name}.perf.data")).display()
            )
            .parse()
            .expect("guest data"),
        );
        o.guest_symbols
            .push((pid.to_string(), d.join(format!("{name}.bundle"))));
    }
    o.kallsyms = Some(d.join("host.kallsyms"));
    o.symfs = Some(d.join("host-root"));
}

/// A two-VM scenario generated at test time (seed 1, 2 vCPUs each, 0.2 s), ingested with both
/// guest recordings and bundles: (directory holding the generator's output, dataset, truth.json).
fn synth_two_vms() -> &'static (PathBuf, Dataset, serde_json::Value) {
    static DS: OnceLock<(PathBuf, Dataset, serde_json::Value)> = OnceLock::new();
    DS.get_or_init(|| {
        let tmp = crate::shared_scratch("flame-two-vms");
        let d = tmp.join("synth");
        let mut s = kvmtrace_synth::Options::default();
        s.out_dir = d.clone();
        s.vms = 2;
        s.vcpus = 2;
        s.seconds = 0.2;
        s.seed = 1;
        kvmtrace_synth::run(&s).expect("synth");
        let truth: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("truth.json")).expect("truth"))
                .expect("json");
        let mut o = kvmtrace_ingest::Options::default();
        o.output = tmp.join("ds");
        with_synth_guests(&mut o, &d, &truth);
        kvmtrace_ingest::run(&d.join("host.perf.data"), &o).expect("ingest two VMs");
        let ds = Dataset::open(&o.output).expect("open");
        (tmp, ds, truth)
    })
}

#[test]
fn two_guest_recordings_keep_every_guest_sample() {
    let (_, ds, truth) = synth_two_vms();
    let vms = truth["vms"].as_array().expect("vms");
    assert_eq!(vms.len(), 2);
    let got = kvmtrace_analyze::sql::query(
        ds,
        "SELECT vm, count(sample_idx) AS n, count(DISTINCT sample_idx) AS n_idx \
         FROM guest_samples GROUP BY vm ORDER BY vm",
    )
    .expect("guest_samples by vm");
    let names: Vec<String> = got
        .column("vm")
        .expect("vm")
        .str()
        .expect("str")
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect();
    let want_names: Vec<&str> = vms
        .iter()
        .map(|v| v["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, want_names);
    let count = |c: &str| -> Vec<u64> {
        let col = got
            .column(c)
            .expect(c)
            .cast(&polars::prelude::DataType::UInt64);
        col.expect("u64")
            .u64()
            .expect("u64")
            .into_no_null_iter()
            .collect()
    };
    let want: Vec<u64> = vms
        .iter()
        .map(|v| v["guest_samples"].as_u64().expect("guest_samples"))
        .collect();
    assert_eq!(count("n"), want, "guest_samples per VM");
    // The manifest (`kvmtrace info`) counts both guests' rows, once per table.
    let info = kvmtrace_analyze::info::info(ds).expect("info");
    let tables = &info.recordings[0].tables;
    let rows: Vec<u64> = tables
        .iter()
        .filter(|(t, _)| t == "guest_samples")
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(rows, vec![want.iter().sum::<u64>()]);
    // sample_idx and stack_id stay keys within the recording across the two guests.
    let keys = kvmtrace_analyze::sql::query(
        ds,
        "SELECT count(sample_idx) AS n, count(DISTINCT sample_idx) AS n_idx FROM guest_samples",
    )
    .expect("sample keys");
    assert_eq!(
        keys.column("n").expect("n").get(0).ok(),
        keys.column("n_idx").expect("n").get(0).ok()
    );
    let keys = kvmtrace_analyze::sql::query(
        ds,
        "SELECT count(stack_id) AS n, count(DISTINCT stack_id) AS n_id FROM guest_stacks",
    )
    .expect("stack keys");
    assert_eq!(
        keys.column("n").expect("n").get(0).ok(),
        keys.column("n_id").expect("n").get(0).ok()
    );
}

#[test]
fn two_guest_recordings_folded_equals_ground_truth() {
    let (tmp, ds, truth) = synth_two_vms();
    let want = std::fs::read_to_string(tmp.join("synth/folded.txt")).expect("folded.txt");
    for threads in [1, 2] {
        let f = flame::fold(ds, &opts(threads)).expect("fold");
        let got = folded_text(&f);
        if got != want {
            let only = |a: &str, b: &str| -> Vec<String> {
                let b: std::collections::HashSet<&str> = b.lines().collect();
                a.lines()
                    .filter(|l| !b.contains(l))
                    .take(5)
                    .map(str::to_string)
                    .collect()
            };
            panic!(
                "{threads} threads: folded stacks differ from the generator's folded.txt\n\
                 first lines only kvmtrace has: {:#?}\nfirst lines only folded.txt has: {:#?}",
                only(&got, &want),
                only(&want, &got)
            );
        }
        let t = &truth["samples"];
        let r = &f.report;
        assert_eq!(r.n_samples, t["host_total"].as_u64().expect("n"));
        assert_eq!(r.n_guest_mode, t["guest_mode"].as_u64().expect("n"));
        assert_eq!(r.match_rate(), Some(1.0));
    }
}

#[test]
fn one_and_two_threads_give_identical_bytes() {
    let ds = synth_small();
    for exits in [false, true] {
        let mut a = opts(1);
        a.exits = exits;
        let mut b = opts(2);
        b.exits = exits;
        let fa = flame::fold(ds, &a).expect("fold 1");
        let fb = flame::fold(ds, &b).expect("fold 2");
        assert_eq!(folded_text(&fa), folded_text(&fb));
        let (mut sa, mut sb) = (Vec::new(), Vec::new());
        flame::render_svg(&fa, &flame::SvgOptions::default(), &mut sa).expect("svg 1");
        flame::render_svg(&fb, &flame::SvgOptions::default(), &mut sb).expect("svg 2");
        assert!(
            sa == sb,
            "SVG differs between 1 and 2 threads (exits: {exits})"
        );
    }
}

#[test]
fn guest_only_vcpu1_snapshot() {
    let mut o = opts(1);
    o.scope = Scope::GuestOnly;
    o.vcpus = vec![1];
    let f = flame::fold(synth_small(), &o).expect("fold");
    insta::assert_snapshot!(folded_text(&f));
}

#[test]
fn exit_time_weight_sums_to_exit_durations() {
    let ds = synth_small();
    let mut o = opts(2);
    o.weight = Some(flame::Weight::ExitTime);
    let f = flame::fold(ds, &o).expect("fold");
    let total: u64 = f.stacks.iter().map(|s| s.count).sum();
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(synth_dir().join("truth.json")).expect("truth"),
    )
    .expect("json");
    let want: u64 = truth["exits"]["by_reason"]
        .as_array()
        .expect("by_reason")
        .iter()
        .map(|v| v["total_ns"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, want);
    assert!(
        f.stacks
            .iter()
            .all(|s| s.stack.starts_with("VM guest-0;vCPU ") && s.stack.contains(";[exit "))
    );
}

/// The public corpus, or None (a failure under CI=true).
fn corpus(rel: &str) -> Option<PathBuf> {
    let root = std::env::var_os("KVMTRACE_CORPUS").map(PathBuf::from);
    let p = root.map(|r| r.join(rel)).filter(|p| p.exists());
    if p.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("KVMTRACE_CORPUS/{rel} missing under CI");
    }
    p
}

/// `perf script -F comm,pid,tid,time,period,event,ip,sym,dso` without symbols, folded by
/// inferno's own collapser (which weights by the printed period); a field the recording lacks
/// (perf refuses to print it) is left out, as a user would.
fn perf_inferno(file: &Path, binaries: Option<&Path>) -> Option<String> {
    perf_inferno_event(file, binaries, None)
}

/// As [`perf_inferno`], folding only `event` (inferno's `--event-filter`; else the first event
/// it meets).
fn perf_inferno_event(file: &Path, binaries: Option<&Path>, event: Option<&str>) -> Option<String> {
    use inferno::collapse::Collapse;
    let home = tempfile::tempdir().expect("home");
    let empty = tempfile::tempdir().expect("symfs");
    let symfs = binaries.unwrap_or(empty.path());
    let mut fields = vec![
        "comm", "pid", "tid", "time", "period", "event", "ip", "sym", "dso",
    ];
    let out = loop {
        let out = std::process::Command::new("perf")
            .env("HOME", home.path())
            .arg("script")
            .arg("-i")
            .arg(file)
            .args(["--kallsyms", "/dev/null", "--symfs"])
            .arg(symfs)
            .args(["-F", &fields.join(",")])
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("perf script under CI: {e}")
            }
            Err(_) => return None,
        };
        let err = String::from_utf8_lossy(&out.stderr);
        let missing = fields
            .iter()
            .position(|f| err.contains(&format!("Cannot print '{f}' field")));
        match missing {
            Some(i) if out.stdout.is_empty() => {
                fields.remove(i);
            }
            _ => break out,
        }
    };
    let mut script = out.stdout;
    if event.is_some() {
        script = one_space_before_event(&script);
    }
    let mut folded = Vec::new();
    let mut o = inferno::collapse::perf::Options::default();
    o.event_filter = event.map(str::to_string);
    inferno::collapse::perf::Folder::from(o)
        .collapse(&script[..], &mut folded)
        .expect("collapse");
    let mut lines: Vec<&str> = std::str::from_utf8(&folded)
        .expect("utf8")
        .lines()
        .collect();
    lines.sort_unstable();
    Some(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// perf script right-aligns event names to the longest one (`  1019862  task-clock:`), and
/// inferno-collapse-perf reads a period only when one space parts it from the name (it takes
/// the word before the name); one space in every sample line, so that inferno weighs each
/// event of a recording by its period.
fn one_space_before_event(script: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let name_start = (!line.starts_with('\t'))
            .then(|| line.find(": ").map(|colon| colon + 2))
            .flatten()
            .and_then(|after_time| {
                let rest = &line[after_time..];
                let period_end = after_time
                    + rest.trim_start().find(' ')?
                    + (rest.len() - rest.trim_start().len());
                let gap = line[period_end..].len() - line[period_end..].trim_start().len();
                (gap > 1).then_some((period_end, gap))
            });
        match name_start {
            Some((period_end, gap)) => {
                out.push_str(&line[..period_end + 1]);
                out.push_str(&line[period_end + gap..]);
            }
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// The `--host-only` fold of `file` with its defaults (weight: the period where recorded) and
/// perf's `--kallsyms /dev/null` and a symfs (`binaries`, else an empty one; no debug
/// directory), lines sorted whole; and whether any event records callchains.
fn host_only_fold(file: &Path, binaries: Option<&Path>) -> (String, bool) {
    host_only_fold_event(file, binaries, None)
}

/// As [`host_only_fold`], folding `event` (else the default event).
fn host_only_fold_event(
    file: &Path,
    binaries: Option<&Path>,
    event: Option<&str>,
) -> (String, bool) {
    let tmp = tempfile::tempdir().expect("tmp");
    let empty = tempfile::tempdir().expect("symfs");
    let mut o = kvmtrace_ingest::Options::default();
    o.output = tmp.path().join("ds");
    o.kallsyms = Some("/dev/null".into());
    o.symfs = Some(binaries.unwrap_or(empty.path()).to_path_buf());
    o.debug_dirs = vec![empty.path().to_path_buf()];
    kvmtrace_ingest::run(file, &o).expect("ingest");
    let ds = Dataset::open(&o.output).expect("open");
    let mut f = opts(2);
    f.scope = Scope::HostOnly;
    f.event = event.map(str::to_string);
    // Both sides sorted as whole lines (kvmtrace sorts by stack: a frame ending in a space,
    // as inferno makes of a "(deleted)" dso, would order differently).
    let mut got: Vec<String> = folded_text(&flame::fold(&ds, &f).expect("fold"))
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    got.sort_unstable();
    const PERF_SAMPLE_CALLCHAIN: u64 = 1 << 5;
    let events = ds
        .scan("events")
        .expect("events")
        .collect()
        .expect("events");
    let callchains = events
        .column("sample_type")
        .expect("sample_type")
        .u64()
        .expect("u64")
        .iter()
        .flatten()
        .any(|t| t & PERF_SAMPLE_CALLCHAIN != 0);
    (got.concat(), callchains)
}

fn check_against_perf(rel: &str) {
    let Some(file) = corpus(rel) else { return };
    check_file_against_perf(&file);
}

fn check_file_against_perf(file: &Path) {
    check_file_against_perf_with(file, None);
}

/// As [`check_file_against_perf`], both sides resolving symbols in the binaries under `symfs`.
fn check_file_against_perf_with(file: &Path, symfs: Option<&Path>) {
    let Some(want) = perf_inferno(file, symfs) else {
        return;
    };
    let (got, _) = host_only_fold(file, symfs);
    let diff: Vec<_> = got.lines().filter(|l| !want.contains(l)).take(5).collect();
    assert_eq!(
        got,
        want,
        "{}: first lines only kvmtrace has: {diff:#?}",
        file.display()
    );
}

/// A sample of thread -1 (a task caught while exiting): perf script prints it as `:-1    -1
/// [001] …`, a line inferno-collapse-perf misreads (the period as the thread id, the event's
/// modifiers as its name) and leaves out; `--host-only` leaves it out too.
#[test]
fn a_sample_of_thread_minus_1_is_left_out_as_by_perf_and_inferno() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/host-tid-minus-1.data");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut o = kvmtrace_ingest::Options::default();
    o.output = tmp.path().join("ds");
    o.symbolize = false;
    kvmtrace_ingest::run(&file, &o).expect("ingest");
    let ds = Dataset::open(&o.output).expect("open");
    let samples = ds
        .scan("samples")
        .expect("samples")
        .collect()
        .expect("collect");
    let tid = samples.column("tid").expect("tid").i32().expect("i32");
    assert_eq!(
        tid.iter().filter(|t| *t == Some(-1)).count(),
        1,
        "the fixture holds one sample of thread -1"
    );
    check_file_against_perf(&file);
}

/// Leader sampling (`-e '{cpu-clock,task-clock,page-faults}:S'`, testdata/README.md): only
/// cpu-clock samples, each reading the group's counts. perf reports each member with the
/// leader's stacks and the growth of its count as the period; so does `--event MEMBER` (with
/// the record's own event and period, task-clock and page-faults would be empty and cpu-clock's
/// periods the nominal 1 ms).
#[test]
fn leader_sampled_group_members_fold_as_perf_script_and_inferno() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/leader-sampling.data");
    for event in ["cpu-clock", "task-clock", "page-faults"] {
        let Some(want) = perf_inferno_event(&file, None, Some(event)) else {
            return;
        };
        let (got, _) = host_only_fold_event(&file, None, Some(event));
        assert!(
            got.lines().count() > 100,
            "{event}: {} lines",
            got.lines().count()
        );
        let diff: Vec<_> = got.lines().filter(|l| !want.contains(l)).take(5).collect();
        assert_eq!(
            got, want,
            "{event}: first lines only kvmtrace has: {diff:#?}"
        );
    }
}

/// `--host-only` without `--event` and `--weight` folds what `perf script | inferno-collapse-perf`
/// folds: every event whose name reads as the first one's up to its first colon (`cpu-clock` and
/// `cpu-clock:u`; `lock:contention_begin` and `lock:contention_end`), each sample weighed by its
/// period only where perf prints it one space from the event name (the longest names), else 1
/// (leader sampling's cpu-clock, padded to page-faults' width). Our recordings
/// (testdata/README.md).
#[test]
fn host_only_default_folds_the_events_and_weights_inferno_reads() {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    for f in [
        "host-mixed-width.data",
        "host-lock-tracepoints.data",
        "leader-sampling.data",
    ] {
        check_file_against_perf(&testdata.join(f));
    }
}

/// Our recordings of test programs with DWARF (testdata/symbols), folded with symbols by both
/// sides: perf 6.1 names the functions inlined at an address only while it unwinds a stack
/// copy (`--call-graph dwarf`), never in a frame-pointer chain, and prints C++ names without
/// parameters or return type (kvmtrace put every inline level into every stack, and C++
/// parameters into names, before).
#[test]
fn stacks_with_symbols_and_inlines_equal_perf_script_and_inferno() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/symbols");
    let symfs = tempfile::tempdir().expect("symfs");
    let bin = symfs.path().join("kvmtrace-symbols");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for name in [
        "cdemo",
        "cppinline",
        "rustdemo",
        "reexec",
        "forkdemo",
        "libforkdemo.so",
    ] {
        let packed = std::fs::read(dir.join(format!("{name}.zst"))).expect("binary");
        let bytes = zstd::decode_all(&packed[..]).expect("unzstd");
        std::fs::write(bin.join(name), bytes).expect("write");
    }
    // forkdemo.dwarf: a child whose FORK perf synthesized (it ran before the recording) and
    // whose parent has the library lower in memory: perf does not give the child the parent's
    // maps, so the library's CFI unwinds it (kvmtrace copied them, lost the CFI to perf's
    // base-address rule and ended the stacks in the library).
    for rec in ["cppinline.fp", "rustdemo.fp", "cdemo.fp", "forkdemo.dwarf"] {
        check_file_against_perf_with(&dir.join(format!("{rec}.perf.data")), Some(symfs.path()));
    }
    // DWARF call graph: perf lists the inlined functions, named as binutils' addr2line names
    // them. Where bfd picks other inline levels than the DWARF reading of kvmtrace (inside
    // `std::sort` with a lambda inlined into `demo::sort_block`), the stacks differ: those are
    // compared by weight, every other one exactly (`demo::step;demo::rotl` among them).
    let file = dir.join("cppinline.dwarf.perf.data");
    let Some(want) = perf_inferno(&file, Some(symfs.path())) else {
        return;
    };
    let (got, _) = host_only_fold(&file, Some(symfs.path()));
    let split = |text: &str| {
        let (mut exact, mut sorted) = (Vec::new(), 0u64);
        for line in text.lines() {
            if line.contains("demo::sort_block") {
                let (_, n) = line.rsplit_once(' ').expect("count");
                sorted += n.parse::<u64>().expect("count");
            } else {
                exact.push(line.to_string());
            }
        }
        (exact, sorted)
    };
    let (want_exact, want_sort) = split(&want);
    let (got_exact, got_sort) = split(&got);
    assert!(
        want_exact
            .iter()
            .any(|l| l.contains("demo::step;demo::rotl")),
        "perf lists inlined functions of a DWARF-unwound stack"
    );
    assert_eq!(got_exact, want_exact);
    assert_eq!(got_sort, want_sort);
    // Where binutils names the innermost level by the ELF symbol (an inlined template without
    // a linkage name becomes `demo::sort_block`), the stacks equal perf's.
    let symtab_leaf: Vec<&str> = want
        .lines()
        .filter(|l| {
            l.rsplit_once(' ')
                .is_some_and(|(s, _)| s.ends_with(";demo::sort_block"))
        })
        .collect();
    assert!(!symtab_leaf.is_empty());
    for line in symtab_leaf {
        assert!(got.lines().any(|g| g == line), "missing: {line}");
    }
}

/// Frame-pointer chains walked through code built without frame pointers (rustc's LLVM) hold
/// garbage, sometimes a value perf takes for an unknown context marker (at or above
/// PERF_CONTEXT_MAX, e.g. `0xffffffffffffffff`): perf throws the whole chain away and prints no
/// frame, inferno leaves the sample out. Our recording (testdata/README.md) holds such chains.
#[test]
fn a_chain_perf_discards_as_corrupt_is_left_out_as_by_perf_and_inferno() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/host-corrupt-callchains.data");
    check_file_against_perf(&file);
}

#[test]
fn host_callchains_equal_perf_script_and_inferno() {
    check_against_perf("public/x86_64_perf3.8_callgraph-fp.data");
}

#[test]
fn host_samples_of_a_kvm_host_equal_perf_script_and_inferno() {
    check_against_perf("public/x86_64_perf4.13_kvm-host-record_guest-samples.data");
}

/// Recordings of the corpus whose perf|inferno fold kvmtrace does not reproduce, and why.
const KNOWN_DIFFERENT: &[(&str, &str)] = &[(
    "x86_64_perf5.4_lbr-callgraph.data",
    "its LBR samples hold an empty branch stack; perf 6.1 still adds the first entry's target, \
     read from the bytes after the record (the next record's pid/tid, 0x358b2300358b23)",
)];

/// Every recording with callchains in the public corpus that perf reads: the `--host-only`
/// fold equals `perf script | inferno-collapse-perf` (the flame issue's acceptance; one table
/// row per file, every difference listed). Recordings without callchains are left out:
/// inferno-collapse-perf cannot fold perf script's one-line samples of several events (it keeps
/// the first sample only, and ignores periods padded by several spaces).
#[test]
fn public_corpus_host_stacks_equal_perf_script_and_inferno() {
    let Some(public) =
        corpus("public/manifest.tsv").and_then(|p| p.parent().map(Path::to_path_buf))
    else {
        return;
    };
    let manifest = std::fs::read_to_string(public.join("manifest.tsv")).expect("manifest");
    let mut failures = Vec::new();
    let (mut equal, mut known) = (0, 0);
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(file), Some(reads)) = (cols.first(), cols.get(4)) else {
            continue;
        };
        if *reads != "yes" {
            continue;
        }
        let path = public.join(file);
        let (got, callchains) = host_only_fold(&path, None);
        if !callchains {
            continue;
        }
        let Some(want) = perf_inferno(&path, None) else {
            continue;
        };
        let why = KNOWN_DIFFERENT
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, w)| w);
        let status = match (got == want, why) {
            (true, _) => "equal",
            (false, Some(_)) => "KNOWN",
            (false, None) => "DIFFERENT",
        };
        eprintln!("{status:9} {file}");
        match status {
            "equal" => equal += 1,
            "KNOWN" => known += 1,
            _ => {
                let only_ours: Vec<&str> =
                    got.lines().filter(|l| !want.contains(l)).take(3).collect();
                let only_perf: Vec<&str> =
                    want.lines().filter(|l| !got.contains(l)).take(3).collect();
                failures.push(format!(
                    "{file}: kvmtrace only {only_ours:?}; perf only {only_perf:?}"
                ));
            }
        }
    }
    eprintln!(
        "{equal} equal, {known} known differences, {} different",
        failures.len()
    );
    assert!(
        equal >= 10,
        "only {equal} recordings with callchains compared"
    );
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Two recordings appended into one dataset: the fold is the sum of the two generators'
/// folded.txt, line for line (the joins keep each recording's samples, exits and guest samples
/// apart even where their VMs, pids and times coincide), and so are the exits per reason.
#[test]
fn two_recordings_in_one_dataset_fold_as_the_sum_of_their_truths() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("ds");
    let mut want: std::collections::BTreeMap<String, u64> = Default::default();
    let mut want_exits: std::collections::BTreeMap<String, u64> = Default::default();
    for seed in [3, 4] {
        let d = tmp.path().join(format!("synth-{seed}"));
        let mut s = kvmtrace_synth::Options::default();
        s.out_dir = d.clone();
        s.vms = 1;
        s.vcpus = 2;
        s.seconds = 0.1;
        s.seed = seed;
        kvmtrace_synth::run(&s).expect("synth");
        let folded = std::fs::read_to_string(d.join("folded.txt")).expect("folded.txt");
        for line in folded.lines() {
            let (stack, n) = line.rsplit_once(' ').expect("stack count");
            *want.entry(stack.to_string()).or_default() += n.parse::<u64>().expect("count");
        }
        let truth: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("truth.json")).expect("truth"))
                .expect("json");
        for r in truth["exits"]["by_reason"].as_array().expect("by_reason") {
            let name = r["reason_name"].as_str().expect("reason_name").to_string();
            *want_exits.entry(name).or_default() += r["count"].as_u64().expect("count");
        }
        let mut o = kvmtrace_ingest::Options::default();
        o.output = out.clone();
        o.append = seed == 4;
        with_synth_guests(&mut o, &d, &truth);
        kvmtrace_ingest::run(&d.join("host.perf.data"), &o).expect("ingest");
    }
    let ds = Dataset::open(&out).expect("open");
    assert_eq!(ds.recordings().len(), 2, "two recordings in the dataset");
    let want: String = want.iter().map(|(s, n)| format!("{s} {n}\n")).collect();
    for threads in [1, 2] {
        let got = folded_text(&flame::fold(&ds, &opts(threads)).expect("fold"));
        assert_eq!(got, want, "{threads} threads");
    }
    let report = kvmtrace_analyze::exits::run(&ds, &kvmtrace_analyze::exits::Options::default())
        .expect("exits");
    let got_exits: std::collections::BTreeMap<String, u64> = report
        .rows
        .iter()
        .map(|r| (r.keys[0].to_string(), r.count))
        .collect();
    assert_eq!(got_exits, want_exits);
}

#[test]
fn guest_state_counts_cover_every_guest_sample_once() {
    let (_, ds, truth) = synth_two_vms();
    let counts = kvmtrace_analyze::join::guest_state_counts(ds).expect("counts");
    let placed = kvmtrace_analyze::join::place_guest_samples(ds).expect("placed");
    let mut by_state: std::collections::BTreeMap<String, u64> = Default::default();
    for s in placed
        .column("state")
        .expect("state")
        .str()
        .expect("str")
        .iter()
    {
        *by_state
            .entry(s.expect("every sample has a state").to_string())
            .or_default() += 1;
    }
    assert_eq!(counts, by_state.into_iter().collect::<Vec<_>>());
    // Every guest-side sample of the generator's recording counted once.
    let want: u64 = truth["vms"]
        .as_array()
        .expect("vms")
        .iter()
        .map(|v| v["guest_samples"].as_u64().expect("guest_samples"))
        .sum();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), want);
    assert!(
        counts.iter().any(|(s, n)| s == "running" && *n > 0),
        "{counts:?}"
    );
}

/// testdata/host-tid-minus-1.data ingested (an empty kallsyms) with its frames table rewritten
/// by `damage`: (tempdir holding the dataset, dataset).
fn with_frames_rewritten(
    damage: impl Fn(polars::prelude::DataFrame) -> polars::prelude::DataFrame,
) -> (tempfile::TempDir, Dataset) {
    use polars::prelude::*;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = kvmtrace_ingest::Options::default();
    o.output = tmp.path().join("ds");
    o.kallsyms = Some(PathBuf::from("/dev/null"));
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/host-tid-minus-1.data");
    kvmtrace_ingest::run(&input, &o).expect("ingest");
    let ds = Dataset::open(&o.output).expect("open");
    assert!(
        flame::fold(&ds, &opts(1)).is_ok(),
        "folds before the damage"
    );
    for (path, _) in ds.files("frames") {
        let file = std::fs::File::open(&path).expect("open frames");
        let df = ParquetReader::new(file).finish().expect("read frames");
        let mut damaged = damage(df);
        ParquetWriter::new(std::fs::File::create(&path).expect("rewrite frames"))
            .finish(&mut damaged)
            .expect("write frames");
    }
    (tmp, ds)
}

/// A dataset whose frames table has the layout of schema version 1 (a row per stack × frame,
/// no frame_id) is refused with a hint to ingest again, not folded into wrong stacks.
#[test]
fn a_frames_table_without_frame_ids_asks_for_a_new_ingest() {
    let (_tmp, ds) = with_frames_rewritten(|mut df| {
        df.rename("frame_id", "stack_id".into()).expect("rename");
        df
    });
    let err = flame::fold(&ds, &opts(1)).expect_err("a version-1 frames table");
    assert!(
        err.to_string().contains("ingest the recording again"),
        "{err}"
    );
}

/// A frames table with a frame_id far beyond its rows (a damaged file) is an error naming it,
/// not a table of 4 G entries.
#[test]
fn a_frame_id_beyond_the_rows_is_an_error() {
    use polars::prelude::*;
    let (_tmp, ds) = with_frames_rewritten(|df| {
        df.lazy()
            .with_column(
                when(col("frame_id").eq(lit(0u32)))
                    .then(lit(u32::MAX - 1))
                    .otherwise(col("frame_id"))
                    .alias("frame_id"),
            )
            .collect()
            .expect("damage")
    });
    let err = flame::fold(&ds, &opts(1)).expect_err("a frame_id beyond the rows");
    assert!(err.to_string().contains("beyond"), "{err}");
}

/// JIT code (testdata/jit/node-jit.data: `node --perf-basic-prof hot.js`, recorded here) is
/// named by the process's perf map (`/tmp/perf-16409.map`, kept beside the recording), as perf
/// reads it: the `--host-only` fold equals perf script | inferno-collapse-perf, JS frames and
/// all. Before, kvmtrace named those frames `[perf-16409.map]`.
#[test]
fn jit_frames_are_named_by_the_perf_map_as_perf_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/jit");
    let fixture = std::fs::read(dir.join("perf-16409.map")).expect("perf map");
    // perf reads a perf map where the process wrote it, whatever --symfs says: so it must be
    // there for the reference (kvmtrace also looks under its symfs first).
    let map = Path::new("/tmp/perf-16409.map");
    let placed = match std::fs::read(map) {
        Ok(b) if b == fixture => false,
        Ok(_) => panic!("{} holds another process's map", map.display()),
        Err(_) => {
            std::fs::write(map, &fixture).expect("write the perf map");
            true
        }
    };
    let file = dir.join("node-jit.data");
    let want = perf_inferno(&file, None);
    let (got, _) = host_only_fold(&file, None);
    if placed {
        let _ = std::fs::remove_file(map);
    }
    let Some(want) = want else { return };
    let named = got.lines().filter(|l| l.contains(";JS:")).count();
    assert!(named > 0, "no JIT frame named:\n{got}");
    let diff: Vec<_> = got.lines().filter(|l| !want.contains(l)).take(3).collect();
    assert_eq!(got, want, "first lines only kvmtrace has: {diff:#?}");
}

/// JIT code through perf's jitdump (testdata/jit/jitdump.data: `node --perf-prof` recorded with
/// `-k mono`, then `perf inject --jit`, which writes each compiled function as an ELF
/// `jitted-<pid>-<n>.so`; the 45 of them the samples hit are under jitdump-root/): their
/// symbols are names such as `JS:~ node:internal/main/run_main_module:1:1`, not mangled, and
/// perf prints them whole. The `--host-only` fold equals perf script | inferno-collapse-perf
/// with that symfs on both sides; before, kvmtrace cut such a name at its last space, as it
/// cuts the return type off a demangled C++ name.
#[test]
fn jitdump_frames_keep_their_names_whole_as_perf_prints_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/jit");
    let root = dir.join("jitdump-root");
    let file = dir.join("jitdump.data");
    let Some(want) = perf_inferno(&file, Some(&root)) else {
        return;
    };
    let (got, _) = host_only_fold(&file, Some(&root));
    let whole = got.lines().filter(|l| l.contains(";JS:~ node:")).count();
    assert!(whole > 0, "no jitted frame named whole:\n{got}");
    let diff: Vec<_> = got.lines().filter(|l| !want.contains(l)).take(3).collect();
    assert_eq!(got, want, "first lines only kvmtrace has: {diff:#?}");
}
