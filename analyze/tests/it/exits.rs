//! `exits` and `--perf-compat` against synth truth, real perf, and the PVM corpus.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kvmtrace_analyze::Dataset;
use kvmtrace_analyze::exits::{self, By, ExitReport, KeyValue};
use kvmtrace_analyze::exits_perf::{self, PerfCompatOptions, PerfEvent, PerfKey};
use kvmtrace_analyze::exits_render::{self, Format};
use kvmtrace_analyze::exits_symbols::GuestKallsyms;
use kvmtrace_synth::Isa;
use serde_json::Value;

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn have_perf() -> bool {
    let ok = Command::new("perf")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(!ci(), "perf is required when CI=true");
        eprintln!("skipping the perf comparison: perf not found");
    }
    ok
}

fn ingest(data: &Path, out: &Path) -> Dataset {
    let mut o = kvmtrace_ingest::Options::default();
    o.output = out.to_path_buf();
    kvmtrace_ingest::run(data, &o).expect("ingest");
    Dataset::open(out).expect("open dataset")
}

/// Generates a small scenario and ingests it.
fn synth(dir: &Path, isa: Isa, vms: u32) -> (Dataset, Value) {
    let mut o = kvmtrace_synth::Options::default();
    o.out_dir = dir.join("rec");
    o.vms = vms;
    o.vcpus = 2;
    o.seconds = 0.2;
    o.isa = isa;
    o.seed = 7;
    kvmtrace_synth::run(&o).expect("synth");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(o.out_dir.join("truth.json")).unwrap())
            .unwrap();
    (
        ingest(&o.out_dir.join("host.perf.data"), &dir.join("ds")),
        truth,
    )
}

fn opts(by: &[By], threads: usize) -> exits::Options {
    let mut o = exits::Options::default();
    o.by = by.to_vec();
    o.threads = threads;
    o
}

fn s(k: &KeyValue) -> String {
    k.to_string()
}

fn check_truth(ds: &Dataset, truth: &Value) {
    let r1 = exits::run(ds, &opts(&[By::Reason], 1)).unwrap();
    let r2 = exits::run(ds, &opts(&[By::Reason], 2)).unwrap();
    assert_eq!(r1, r2, "output depends on the thread count");
    let by_reason = truth["exits"]["by_reason"].as_array().unwrap();
    assert_eq!(r1.rows.len(), by_reason.len());
    for t in by_reason {
        let name = t["reason_name"].as_str().unwrap();
        let row = r1
            .rows
            .iter()
            .find(|r| s(&r.keys[0]) == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        let u = |k: &str| t[k].as_u64().unwrap();
        assert_eq!(row.count, u("count"), "{name} count");
        assert_eq!(row.total_ns, Some(u("total_ns")), "{name} total");
        assert_eq!(row.min_ns, Some(u("min_ns")), "{name} min");
        assert_eq!(row.max_ns, Some(u("max_ns")), "{name} max");
        assert_eq!(row.p50_ns, Some(u("p50_ns")), "{name} p50");
        assert_eq!(row.p90_ns, Some(u("p90_ns")), "{name} p90");
        assert_eq!(row.p99_ns, Some(u("p99_ns")), "{name} p99");
        let mean = t["mean_ns"].as_f64().unwrap();
        assert!(
            (row.mean_ns.unwrap() - mean).abs() <= 1e-9 * mean.max(1.0),
            "{name} mean"
        );
    }
    assert_eq!(r1.total.count, truth["exits"]["total"].as_u64().unwrap());
    assert_eq!(
        r1.n_open_at_end,
        truth["exits"]["open_at_end"].as_u64().unwrap()
    );

    // Per vCPU (vCPU n of two VMs stays two rows) and per vCPU × reason.
    let v = exits::run(ds, &opts(&[By::Vcpu], 2)).unwrap();
    let pid_of = |vm: &KeyValue| s(vm).rsplit(':').next().unwrap().parse::<u64>().unwrap();
    let got: BTreeMap<(u64, i64), (u64, u64)> = v
        .rows
        .iter()
        .map(|r| {
            (
                (
                    pid_of(&r.keys[0]),
                    if let KeyValue::Int(x) = r.keys[1] {
                        x
                    } else {
                        -1
                    },
                ),
                (r.count, r.total_ns.unwrap()),
            )
        })
        .collect();
    let want: BTreeMap<(u64, i64), (u64, u64)> = truth["exits"]["by_vm_vcpu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                (t["vm_pid"].as_u64().unwrap(), t["vcpu"].as_i64().unwrap()),
                (
                    t["count"].as_u64().unwrap(),
                    t["total_ns"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, want, "per-vCPU counts and totals");
    let v = exits::run(ds, &opts(&[By::Vcpu, By::Reason], 2)).unwrap();
    let got: BTreeMap<(u64, String, String), (u64, u64)> = v
        .rows
        .iter()
        .map(|r| {
            (
                (pid_of(&r.keys[0]), s(&r.keys[1]), s(&r.keys[2])),
                (r.count, r.total_ns.unwrap()),
            )
        })
        .collect();
    let want: BTreeMap<(u64, String, String), (u64, u64)> = truth["exits"]["by_vm_vcpu_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                (
                    t["vm_pid"].as_u64().unwrap(),
                    t["vcpu"].to_string(),
                    t["reason_name"].as_str().unwrap().to_string(),
                ),
                (
                    t["count"].as_u64().unwrap(),
                    t["total_ns"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, want, "per vCPU × reason");
}

fn perf_text(ds: &Dataset, event: PerfEvent, key: PerfKey) -> String {
    perf_text_vcpu(ds, event, key, None)
}

fn perf_text_vcpu(ds: &Dataset, event: PerfEvent, key: PerfKey, vcpu: Option<u32>) -> String {
    let mut o = PerfCompatOptions::default();
    o.event = event;
    o.key = key;
    o.vcpu = vcpu;
    let stat = exits_perf::perf_compat(ds, &o).unwrap();
    let mut out = Vec::new();
    exits_render::render_perf(&stat, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// `perf kvm -i FILE stat report ARGS`: its stderr is the report.
fn real_perf(file: &Path, args: &[String]) -> String {
    let o = Command::new("perf")
        .arg("kvm")
        .arg("-i")
        .arg(file)
        .args(["stat", "report"])
        .args(args)
        .output()
        .expect("perf runs");
    assert!(
        o.status.success(),
        "perf failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn check_perf(ds: &Dataset, file: &Path) {
    if !have_perf() {
        return;
    }
    for (event, name) in [
        (PerfEvent::Vmexit, "vmexit"),
        (PerfEvent::Ioport, "ioport"),
        (PerfEvent::Mmio, "mmio"),
    ] {
        for (key, kname) in [(PerfKey::Sample, "sample"), (PerfKey::Time, "time")] {
            let ours = perf_text(ds, event, key);
            assert_eq!(
                ours,
                real_perf(file, &[format!("--event={name}"), format!("--key={kname}")]),
                "--event={name} --key={kname}"
            );
            assert!(ours.contains("Total Samples:"), "{ours}");
        }
        // perf's per-vCPU view (with its zero minimum).
        let ours = perf_text_vcpu(ds, event, PerfKey::Sample, Some(1));
        assert_eq!(
            ours,
            real_perf(file, &[format!("--event={name}"), "--vcpu=1".into()]),
            "--event={name} --vcpu=1"
        );
    }
}

#[test]
fn synth_vmx_equals_truth_and_perf() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, truth) = synth(dir.path(), Isa::Vmx, 2);
    check_truth(&ds, &truth);
    check_perf(&ds, &dir.path().join("rec/host.perf.data"));
}

#[test]
fn synth_svm_equals_truth_and_perf() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, truth) = synth(dir.path(), Isa::Svm, 1);
    check_truth(&ds, &truth);
    check_perf(&ds, &dir.path().join("rec/host.perf.data"));
}

/// Generates a scenario and ingests it with each VM's guest symbol bundle (`--guest-symbols
/// PID=guest-N.bundle`): the guest functions of the exits, their counts and exit time, against
/// the generator's truth (`exits.by_vm_guest_symbol`).
fn synth_guest_symbols(isa: Isa, vms: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut o = kvmtrace_synth::Options::default();
    o.out_dir = dir.path().join("rec");
    o.vms = vms;
    o.vcpus = 2;
    o.seconds = 0.2;
    o.isa = isa;
    o.seed = 11;
    kvmtrace_synth::run(&o).expect("synth");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(o.out_dir.join("truth.json")).unwrap())
            .unwrap();
    let mut io = kvmtrace_ingest::Options::default();
    io.output = dir.path().join("ds");
    io.guest_symbols = truth["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["pid"].as_u64().unwrap().to_string(),
                o.out_dir.join(v["bundle"].as_str().unwrap()),
            )
        })
        .collect();
    kvmtrace_ingest::run(&o.out_dir.join("host.perf.data"), &io).expect("ingest");
    let ds = Dataset::open(&io.output).expect("open dataset");

    let r = exits::run(&ds, &opts(&[By::Vm, By::GuestSymbol], 2)).unwrap();
    assert_eq!(
        r,
        exits::run(&ds, &opts(&[By::Vm, By::GuestSymbol], 1)).unwrap()
    );
    assert!(
        r.notes.iter().any(|n| n.contains("resolved at ingest")),
        "{:?}",
        r.notes
    );
    // Guest kernel functions by name; guest user code (the exit does not say which guest
    // process ran) stays a hex address: compared as one sum per VM.
    let mut got: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for row in &r.rows {
        let sym = s(&row.keys[1]);
        assert_ne!(sym, "[no rip]", "every kvm_exit has a guest_rip");
        let key = if sym.starts_with("0x") {
            "[guest user]".to_string()
        } else {
            sym
        };
        let e = got.entry((s(&row.keys[0]), key)).or_default();
        e.0 += row.count;
        e.1 += row.total_ns.unwrap();
    }
    let mut want: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for t in truth["exits"]["by_vm_guest_symbol"].as_array().unwrap() {
        let key = if t["guest_kernel"].as_bool().unwrap() {
            t["guest_symbol"].as_str().unwrap().to_string()
        } else {
            "[guest user]".to_string()
        };
        let e = want
            .entry((t["vm"].as_str().unwrap().to_string(), key))
            .or_default();
        e.0 += t["count"].as_u64().unwrap();
        e.1 += t["total_ns"].as_u64().unwrap();
    }
    assert!(want.keys().any(|(_, k)| k != "[guest user]"));
    assert_eq!(got, want, "per VM × guest symbol: (count, total_ns)");
    assert_eq!(r.total.count, truth["exits"]["total"].as_u64().unwrap());
}

#[test]
fn synth_vmx_guest_symbols_equal_truth() {
    synth_guest_symbols(Isa::Vmx, 2);
}

#[test]
fn synth_svm_guest_symbols_equal_truth() {
    synth_guest_symbols(Isa::Svm, 1);
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn small() -> (tempfile::TempDir, Dataset) {
    let dir = tempfile::tempdir().unwrap();
    let ds = ingest(
        &repo().join("testdata/synth-small/host.perf.data"),
        &dir.path().join("ds"),
    );
    (dir, ds)
}

#[test]
fn perf_compat_equals_committed_perf_output() {
    let (_dir, ds) = small();
    for (event, name) in [
        (PerfEvent::Vmexit, "vmexit"),
        (PerfEvent::Ioport, "ioport"),
        (PerfEvent::Mmio, "mmio"),
    ] {
        let want = std::fs::read_to_string(
            repo().join(format!("testdata/synth-small/host.kvm-stat-{name}.txt")),
        )
        .unwrap();
        assert_eq!(perf_text(&ds, event, PerfKey::Sample), want, "{name}");
    }
}

#[test]
fn snapshots_table_and_json() {
    let (_dir, ds) = small();
    let mut o = opts(&[By::Reason], 2);
    o.histogram = true;
    let r = exits::run(&ds, &o).unwrap();
    let mut t = Vec::new();
    exits_render::render(&r, Format::Table, &mut t).unwrap();
    insta::assert_snapshot!("synth_small_by_reason_table", String::from_utf8(t).unwrap());
    let r = exits::run(&ds, &opts(&[By::Vcpu, By::Reason], 1)).unwrap();
    let mut j = Vec::new();
    exits_render::render(&r, Format::Json, &mut j).unwrap();
    insta::assert_snapshot!(
        "synth_small_by_vcpu_reason_json",
        String::from_utf8(j).unwrap()
    );
}

#[test]
fn filters_vcpu_and_time() {
    let (_dir, ds) = small();
    let all = exits::run(&ds, &opts(&[By::Vcpu], 1)).unwrap();
    let mut o = opts(&[By::Reason], 1);
    o.vcpu = Some(1);
    let one = exits::run(&ds, &o).unwrap();
    let want = all
        .rows
        .iter()
        .find(|r| r.keys[1] == KeyValue::Int(1))
        .unwrap();
    assert_eq!(one.total.count, want.count);
    assert_eq!(one.total.total_ns, want.total_ns);
    // An empty window, and the whole recording.
    o.vcpu = None;
    o.time = exits::TimeRange::parse("1,2").unwrap();
    assert_eq!(exits::run(&ds, &o).unwrap().total.count, 0);
    o.time = exits::TimeRange::parse("4321.0,").unwrap();
    assert_eq!(exits::run(&ds, &o).unwrap().total.count, 8173);
    o.time = exits::TimeRange::default();
    o.vm = Some("3100".into());
    assert_eq!(exits::run(&ds, &o).unwrap().total.count, 8173);
    o.vm = Some("nope".into());
    assert_eq!(exits::run(&ds, &o).unwrap().total.count, 0);
}

// ---- Real PVM recordings -------------------------------------------------------------------

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("KVMTRACE_CORPUS") {
        Some(p) => Some(PathBuf::from(p).join("kvm")),
        None => {
            assert!(!ci(), "KVMTRACE_CORPUS must be set when CI=true");
            eprintln!("skipping the PVM corpus: set KVMTRACE_CORPUS=/work/shared/testdata");
            None
        }
    }
}

fn counts(report: &ExitReport, fmt: impl Fn(&[KeyValue]) -> String) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in &report.rows {
        *m.entry(fmt(&r.keys)).or_default() += r.count;
    }
    m
}

fn json_counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

/// The recordings of the PVM corpus directory: every `*.data` with a `*.counts.json` beside it.
fn pvm_stems(dir: &Path) -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .filter(|p| p.with_extension("counts.json").exists())
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    stems.sort();
    stems
}

/// Every real PVM recording of the corpus (the four of ../shared/testdata/kvm, or any other
/// made the same way), each against its counts.json, on threads of its own.
#[test]
fn pvm_corpus_equals_perf_script_counts() {
    let Some(dir) = corpus() else { return };
    let stems = pvm_stems(&dir);
    assert!(
        !stems.is_empty(),
        "{}: no recording with a counts.json",
        dir.display()
    );
    eprintln!("{}: {stems:?}", dir.display());
    std::thread::scope(|scope| {
        let runs: Vec<_> = stems
            .iter()
            .map(|stem| {
                scope.spawn(move || {
                    pvm(stem);
                    pvm_guest_symbols(stem);
                })
            })
            .collect();
        for run in runs {
            run.join()
                .expect("a recording differs (its message is above)");
        }
    });
}

/// Counts of one real PVM recording against its `*.counts.json` (made with perf script).
fn pvm(stem: &str) {
    let Some(dir) = corpus() else { return };
    let kallsyms =
        GuestKallsyms::parse(&std::fs::read_to_string(dir.join("guest.kallsyms")).unwrap());
    let file = dir.join(format!("{stem}.data"));
    {
        let want: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{stem}.counts.json"))).unwrap(),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let ds = ingest(&file, &tmp.path().join("ds"));
        let by_reason = exits::run(&ds, &opts(&[By::Reason], 2)).unwrap();
        assert!(!by_reason.durations_known, "{stem}");
        let recorded = |k: &str| want[k].as_object().is_some_and(|o| !o.is_empty());
        if !recorded("userspace_exit_reasons") && !recorded("msr") {
            // No exit event recorded (e.g. `perf kvm record` of cpu-clock alone): no exit, and
            // the note says why.
            assert_eq!(by_reason.total.count, 0, "{stem}");
            assert!(
                by_reason.notes.iter().any(|n| n.contains("holds no exit")),
                "{stem}: {:?}",
                by_reason.notes
            );
            return;
        }
        assert!(
            by_reason
                .notes
                .iter()
                .any(|n| n.contains("cannot be known")),
            "{stem}: {:?}",
            by_reason.notes
        );
        let userspace = counts(&by_reason, |k| s(&k[0]));
        let userspace: BTreeMap<String, u64> = userspace
            .into_iter()
            .filter(|(k, _)| k.starts_with("KVM_EXIT_"))
            .collect();
        assert_eq!(
            userspace,
            json_counts(&want["userspace_exit_reasons"]),
            "{stem} reasons"
        );
        // Every exit is a userspace exit or an in-kernel MSR access: no stray port/MMIO rows.
        if !userspace.is_empty() {
            let n_msr: u64 = json_counts(&want["msr"]).values().sum();
            assert_eq!(
                by_reason.total.count,
                userspace.values().sum::<u64>() + n_msr,
                "{stem} exits"
            );
        }

        // Per vCPU thread: counts.json keys by comm `CPU n/KVM`.
        let v = exits::run(&ds, &opts(&[By::Vcpu, By::Reason], 1)).unwrap();
        let mut got: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for r in &v.rows {
            let name = s(&r.keys[2]);
            if name.starts_with("KVM_EXIT_") {
                *got.entry(format!("CPU {}/KVM", s(&r.keys[1])))
                    .or_default()
                    .entry(name)
                    .or_default() += r.count;
            }
        }
        let want_t: BTreeMap<String, BTreeMap<String, u64>> =
            want["userspace_exit_reasons_by_thread"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), json_counts(v))).collect())
                .unwrap_or_default();
        assert_eq!(got, want_t, "{stem} per vCPU");

        // Ports: `pio_write 0x3f8 size 1`.
        if ds.has("kvm__kvm_pio") {
            let p = exits::run(&ds, &opts(&[By::Port], 1)).unwrap();
            let got = counts(&p, |k| {
                format!(
                    "pio_{} {} size {}",
                    if s(&k[1]) == "out" { "write" } else { "read" },
                    s(&k[0]),
                    s(&k[2])
                )
            });
            assert_eq!(got, json_counts(&want["pio"]), "{stem} ports");
        }
        // MSRs: `read 1b` (kvm_msr is its own exit under PVM).
        if ds.has("kvm__kvm_msr") {
            let m = exits::run(&ds, &opts(&[By::Msr], 1)).unwrap();
            let got = counts(&m, |k| {
                format!("{} {}", s(&k[1]), s(&k[0]).trim_start_matches("0x"))
            });
            assert_eq!(got, json_counts(&want["msr"]), "{stem} msrs");
        }
        // MMIO: one exit per write and per read (`unsatisfied-read`, completed by one `read`).
        if ds.has("kvm__kvm_mmio") {
            let m = exits::run(&ds, &opts(&[By::Gpa], 1)).unwrap();
            let mut got = counts(&m, |k| format!("{} len {}", s(&k[1]), s(&k[2])));
            let reads: Vec<(String, u64)> = got
                .iter()
                .filter(|(k, _)| k.starts_with("unsatisfied-read"))
                .map(|(k, v)| (k.replacen("unsatisfied-read", "read", 1), *v))
                .collect();
            got.extend(reads);
            assert_eq!(got, json_counts(&want["mmio"]), "{stem} mmio");
        }
        // Guest functions of the instructions KVM emulated.
        if ds.has("kvm__kvm_emulate_insn") {
            let mut o = opts(&[By::GuestSymbol], 2);
            o.emulated = true;
            o.guest_kallsyms = Some(kallsyms.clone());
            let g = exits::run(&ds, &o).unwrap();
            assert_eq!(
                counts(&g, |k| s(&k[0])),
                json_counts(&want["emulate_insn_by_guest_symbol"]),
                "{stem} guest symbols"
            );
        }
        // No guest symbols at ingest nor here: guest code as raw addresses, and the note says so.
        let g = exits::run(&ds, &opts(&[By::GuestSymbol], 1)).unwrap();
        assert!(
            g.rows.iter().all(|r| {
                let k = s(&r.keys[0]);
                k == "[no rip]" || k.starts_with("0x")
            }),
            "{stem}: {:?}",
            g.rows
        );
        if g.rows.iter().any(|r| s(&r.keys[0]).starts_with("0x")) {
            assert!(
                g.notes
                    .iter()
                    .any(|n| n.contains("none were given at ingest")),
                "{stem}: {:?}",
                g.notes
            );
        }
    }
}

/// `--by guest-symbol` of a real PVM recording ingested with the guest's symbols (perf's
/// `--guestkallsyms`/`--guestmodules`), none given to `exits`: the exits per guest function are
/// what counts.json (perf script) and the guest program (README: which function makes which
/// access) imply:
/// - `do_port_io`: its OUT 0xe9, OUT 0x502 and IN 0x503; `guest_main`: the OUT 0x501 "done";
///   `serial_puts` + `serial_put_hex`: every OUT 0x3f8 (counts.json does not split them);
/// - `do_mmio`: every KVM_EXIT_MMIO; `do_halt`: every KVM_EXIT_HLT;
/// - `pvm_register_vif`: its WRMSR 0x4b564d10; `do_msr_ops`: every other kvm_msr;
/// - once the vCPU registered its VIF area, PVM runs it natively and every instruction KVM still
///   emulates traps: for the functions entered only after that, exits = counts.json's
///   `emulate_insn_by_guest_symbol` exactly (this splits the serial output too).
///
/// Without kvm_emulate_insn no exit has a guest rip: one `[no rip]` row.
fn pvm_guest_symbols(stem: &str) {
    let Some(dir) = corpus() else { return };
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{stem}.counts.json"))).unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut io = kvmtrace_ingest::Options::default();
    io.output = tmp.path().join("ds");
    io.guest_kallsyms = Some(dir.join("guest.kallsyms"));
    io.guest_modules = Some(dir.join("guest.modules"));
    kvmtrace_ingest::run(&dir.join(format!("{stem}.data")), &io).expect("ingest");
    let ds = Dataset::open(&io.output).expect("open dataset");
    assert!(ds.has("exit_symbols"), "{stem}");

    let r = exits::run(&ds, &opts(&[By::GuestSymbol], 2)).unwrap();
    let got = counts(&r, |k| s(&k[0]));
    let emulated = json_counts(&want["emulate_insn_by_guest_symbol"]);
    if emulated.is_empty() {
        let no_rip = BTreeMap::from([("[no rip]".to_string(), r.total.count)]);
        let want = if r.total.count > 0 {
            no_rip
        } else {
            BTreeMap::new()
        };
        assert_eq!(got, want, "{stem}");
        return;
    }
    assert!(
        r.notes.iter().any(|n| n.contains("resolved at ingest")),
        "{stem}: {:?}",
        r.notes
    );
    let pio = json_counts(&want["pio"]);
    let port = |p: &str| -> u64 {
        pio.iter()
            .filter(|(k, _)| k.split_whitespace().nth(1) == Some(p))
            .map(|(_, n)| n)
            .sum()
    };
    let msr = json_counts(&want["msr"]);
    let vif = msr.get("write 4b564d10").copied().unwrap_or(0);
    let reasons = json_counts(&want["userspace_exit_reasons"]);
    let reason = |r: &str| reasons.get(r).copied().unwrap_or(0);
    let mut expect: BTreeMap<String, u64> = [
        ("do_port_io", port("0xe9") + port("0x502") + port("0x503")),
        ("guest_main", port("0x501")),
        ("do_mmio", reason("KVM_EXIT_MMIO")),
        ("do_halt", reason("KVM_EXIT_HLT")),
        ("do_msr_ops", msr.values().sum::<u64>() - vif),
        ("pvm_register_vif", vif),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(f, n)| (f.to_string(), n))
    .collect();
    let serial = ["serial_puts", "serial_put_hex"];
    let mut rest = got.clone();
    let n_serial: u64 = serial.iter().filter_map(|f| rest.remove(*f)).sum();
    assert_eq!(n_serial, port("0x3f8"), "{stem}: serial output exits");
    assert_eq!(rest, expect, "{stem}: exits per guest function");
    if vif > 0 {
        // Functions only entered after the VIF registration.
        let before = ["startup_64", "guest_main", "pvm_register_vif"];
        let after: BTreeMap<String, u64> = emulated
            .iter()
            .filter(|(f, _)| !before.contains(&f.as_str()))
            .map(|(f, n)| (f.clone(), *n))
            .collect();
        let got_after: BTreeMap<String, u64> = got
            .iter()
            .filter(|(f, _)| !before.contains(&f.as_str()))
            .map(|(f, n)| (f.clone(), *n))
            .collect();
        assert_eq!(got_after, after, "{stem}: exits = emulated instructions");
        for f in serial {
            expect.insert(f.to_string(), emulated[f]);
        }
        assert_eq!(got, expect, "{stem}: every function");
    }
    // kvm_emulate_insn's rips are in exit_symbols too: the emulated instructions per guest
    // function without --guest-kallsyms equal counts.json.
    let mut o = opts(&[By::GuestSymbol], 2);
    o.emulated = true;
    let e = exits::run(&ds, &o).unwrap();
    assert_eq!(counts(&e, |k| s(&k[0])), emulated, "{stem}: emulated");
    // An explicit --guest-kallsyms still overrides (same symbols here), and says so.
    let mut o = opts(&[By::GuestSymbol], 1);
    o.guest_kallsyms = Some(GuestKallsyms::parse(
        &std::fs::read_to_string(dir.join("guest.kallsyms")).unwrap(),
    ));
    let k = exits::run(&ds, &o).unwrap();
    assert_eq!(counts(&k, |k| s(&k[0])), got, "{stem}: --guest-kallsyms");
    assert!(
        k.notes.iter().any(|n| n.contains("overrides")),
        "{stem}: {:?}",
        k.notes
    );
}

/// `--split` per reason equals the sums of the exits table's own columns, aggregated by polars
/// (not by kvmtrace's aggregator), and its parts add up to the exit time.
#[test]
fn split_equals_the_exit_columns_summed_by_polars() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let (ds, _) = synth(dir.path(), Isa::Vmx, 1);
    let mut o = opts(&[By::Reason], 2);
    o.split = true;
    let r = exits::run(&ds, &o).expect("exits");
    let df = ds
        .scan("exits")
        .unwrap()
        .filter(col("entry_time_ns").is_not_null())
        .group_by([col("reason_name")])
        .agg([
            col("duration_ns").sum().alias("total"),
            col("userspace_ns").sum().alias("vmm"),
            col("wakeup_ns").sum().alias("halted"),
            col("sched_out_ns").sum().alias("sched"),
        ])
        .collect()
        .unwrap();
    let names = df.column("reason_name").unwrap().str().unwrap().clone();
    let get = |c: &str, i: usize| {
        df.column(c)
            .unwrap()
            .get(i)
            .unwrap()
            .try_extract::<u64>()
            .unwrap_or(0)
    };
    assert_eq!(r.rows.len(), df.height());
    let mut with_vmm = 0;
    for i in 0..df.height() {
        let name = names.get(i).unwrap();
        let row = r
            .rows
            .iter()
            .find(|s| s.keys == vec![KeyValue::Str(name.into())])
            .unwrap_or_else(|| panic!("no row for {name}"));
        let split = row.split.expect("split");
        let (total, vmm, halted, sched) = (
            get("total", i),
            get("vmm", i),
            get("halted", i),
            get("sched", i),
        );
        assert_eq!(row.total_ns, Some(total), "{name}");
        // A part the recording cannot show (no such tracepoint) is None, its column empty.
        let part = |p: Option<u64>| p.unwrap_or(0);
        assert_eq!(part(split.vmm_ns), vmm, "{name}");
        assert_eq!(part(split.halted_ns), halted, "{name}");
        assert_eq!(
            part(split.sched_out_ns),
            sched.saturating_sub(halted),
            "{name}"
        );
        assert_eq!(
            split.kernel_ns.unwrap() + vmm + halted + sched.saturating_sub(halted),
            total,
            "{name}"
        );
        with_vmm += u64::from(vmm > 0);
    }
    assert!(
        with_vmm > 0,
        "no exit with a VMM round trip: the check is vacuous"
    );
}
