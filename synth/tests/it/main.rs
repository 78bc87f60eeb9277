//! Integration tests: generate small scenarios and check them against
//! perf 6.1 itself (`perf script`, `perf kvm stat report`), a reference
//! kvmtrace did not write.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use kvmtrace_synth::{Isa, Options};
use serde_json::Value;

/// True when perf can be run; fails when CI=true and perf is missing.
fn have_perf() -> bool {
    let ok = Command::new("perf")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "perf is required when CI=true"
        );
        eprintln!("skipping: perf not found");
    }
    ok
}

fn generate(dir: &Path, isa: Isa, seconds: f64) -> Value {
    let mut o = Options::default();
    o.out_dir = dir.to_path_buf();
    o.vms = 2;
    o.vcpus = 2;
    o.seconds = seconds;
    o.isa = isa;
    kvmtrace_synth::run(&o).expect("generation succeeds");
    let t = std::fs::read_to_string(dir.join("truth.json")).expect("truth.json");
    serde_json::from_str(&t).expect("truth.json parses")
}

fn perf(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("perf")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("perf runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "perf {args:?} failed: {stderr}");
    assert!(stderr.trim().is_empty(), "perf {args:?} warned: {stderr}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The event name and the rest of a `perf script` sample header line:
/// `comm tid [cpu] time: [period] event: rest`.
fn event_of(line: &str) -> Option<(&str, &str)> {
    let after_cpu = &line[line.find("] ")? + 2..];
    let after_time = &after_cpu[after_cpu.find(": ")? + 2..];
    let mut rest = after_time.trim_start();
    // Optional period.
    if let Some(sp) = rest.find(' ')
        && rest[..sp].bytes().all(|b| b.is_ascii_digit())
    {
        rest = rest[sp..].trim_start();
    }
    let colon = rest.find(':')?;
    let (mut ev, mut tail) = (&rest[..colon], &rest[colon + 1..]);
    // Tracepoint names contain one ':' (kvm:kvm_exit:).
    if let Some(c2) = tail.find(':')
        && !tail[..c2].contains(' ')
    {
        ev = &rest[..colon + 1 + c2];
        tail = &tail[c2 + 1..];
    }
    Some((ev, tail.trim()))
}

/// perf kvm stat prints its table on stderr: return both streams and check
/// that nothing but the table was printed.
fn perf_kvm_stat(dir: &Path, event: &str) -> String {
    let ev = format!("--event={event}");
    let o = Command::new("perf")
        .current_dir(dir)
        .args(["kvm", "-i", "host.perf.data", "stat", "report", &ev])
        .output()
        .expect("perf runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "perf kvm stat failed: {text}");
    for bad in ["arning", "unknown", "UNKNOWN", "skipping", "rror"] {
        assert!(!text.contains(bad), "perf kvm stat printed {bad:?}: {text}");
    }
    text
}

/// Rows of a perf kvm stat table: first column -> the other columns.
fn stat_rows(out: &str, header: &str) -> BTreeMap<String, Vec<String>> {
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.contains(header) {
            in_table = true;
            continue;
        }
        if in_table {
            if line.trim().is_empty() {
                if !rows.is_empty() {
                    break;
                }
                continue;
            }
            let w: Vec<String> = line.split_whitespace().map(String::from).collect();
            rows.insert(w[0].clone(), w[1..].to_vec());
        }
    }
    rows
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("integer")
}

fn check(isa: Isa) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let truth = generate(dir, isa, 0.1);
    let samples = &truth["samples"];
    let folded = std::fs::read_to_string(dir.join("folded.txt")).expect("folded.txt");
    let folded_sum: u64 = folded
        .lines()
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|c| c.parse::<u64>().ok())
                .expect("count")
        })
        .sum();
    assert_eq!(folded_sum, u(&samples["host_total"]));
    let parts: u64 = ["guest_mode", "in_exit_kernel", "in_exit_vmm", "other"]
        .iter()
        .map(|k| u(&samples[*k]))
        .sum();
    assert_eq!(parts, u(&samples["host_total"]));
    if !have_perf() {
        return;
    }

    // perf script: event counts and exit reasons.
    let out = perf(dir, &["script", "-G", "-i", "host.perf.data"]);
    let mut events: BTreeMap<String, u64> = BTreeMap::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for line in out.lines() {
        let Some((ev, rest)) = event_of(line) else {
            continue;
        };
        *events.entry(ev.to_string()).or_insert(0) += 1;
        if ev == "kvm:kvm_exit" {
            let r = rest
                .split_whitespace()
                .skip_while(|w| *w != "reason")
                .nth(1)
                .expect("reason");
            *reasons.entry(r.to_string()).or_insert(0) += 1;
        }
    }
    for (name, count) in truth["events"].as_object().expect("events") {
        let want = if name == "cpu-clock" {
            // Plain perf script drops guest-mode samples.
            u(count) - u(&samples["guest_mode"])
        } else {
            u(count)
        };
        assert_eq!(events.get(name).copied().unwrap_or(0), want, "{name}");
    }
    let mut want_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for r in truth["exits"]["by_reason"].as_array().expect("by_reason") {
        *want_reasons
            .entry(r["reason_name"].as_str().expect("name").into())
            .or_insert(0) += u(&r["count"]);
    }
    for r in truth["exits"]["open_by_reason"].as_array().expect("open") {
        *want_reasons
            .entry(r["reason_name"].as_str().expect("name").into())
            .or_insert(0) += u(&r["count"]);
    }
    assert_eq!(reasons, want_reasons);

    // With the guest kallsyms perf keeps guest-mode samples.
    let out = perf(
        dir,
        &[
            "script",
            "-i",
            "host.perf.data",
            "--guestkallsyms=guest-0.bundle/kallsyms",
            "--guestmodules=guest-0.bundle/modules",
            "-F",
            "event",
        ],
    );
    let n = out.lines().filter(|l| l.contains("cpu-clock")).count() as u64;
    assert_eq!(n, u(&samples["host_total"]));

    // QEMU and libc frames resolve against host-root.
    let out = perf(
        dir,
        &[
            "script",
            "-i",
            "host.perf.data",
            "--symfs=host-root",
            "--kallsyms=host.kallsyms",
            "--comms=CPU 0/KVM",
        ],
    );
    assert!(out.contains("kvm_cpu_exec") && out.contains("clone3"));

    // perf kvm stat report.
    let out = perf_kvm_stat(dir, "vmexit");
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.contains("VM-EXIT") {
            in_table = true;
            continue;
        }
        if in_table {
            if line.trim().is_empty() {
                if !rows.is_empty() {
                    break;
                }
                continue;
            }
            let w: Vec<String> = line.split_whitespace().map(String::from).collect();
            rows.insert(w[0].clone(), w[1..].to_vec());
        }
    }
    let stat = &truth["perf_kvm_stat"];
    let want = stat["reasons"].as_array().expect("reasons");
    assert_eq!(rows.len(), want.len());
    for r in want {
        let name = r["reason_name"].as_str().expect("name");
        let row = rows
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing in {out}"));
        assert_eq!(
            row[0].parse::<u64>().ok(),
            r["samples"].as_u64(),
            "{name} samples"
        );
        assert_eq!(
            row[1],
            format!("{}%", r["samples_pct"].as_str().unwrap_or(""))
        );
        assert_eq!(
            row[3],
            format!("{}us", r["min_us"].as_str().unwrap_or("")),
            "{name} min"
        );
        assert_eq!(
            row[4],
            format!("{}us", r["max_us"].as_str().unwrap_or("")),
            "{name} max"
        );
        assert_eq!(
            row[5],
            format!("{}us", r["avg_us"].as_str().unwrap_or("")),
            "{name} avg"
        );
    }
    assert!(out.contains(&format!("Total Samples:{},", u(&stat["total_samples"]))));

    // perf kvm stat --event=ioport / mmio.
    for (event, field, header) in [
        ("ioport", "perf_kvm_stat_ioport", "IO Port Access"),
        ("mmio", "perf_kvm_stat_mmio", "MMIO Access"),
    ] {
        let out = perf_kvm_stat(dir, event);
        let rows = stat_rows(&out, header);
        let want = truth[field]["keys"].as_array().expect("keys");
        assert_eq!(rows.len(), want.len(), "{event}: {out}");
        for r in want {
            let key = r["key"].as_str().expect("key");
            let row = rows
                .get(key)
                .unwrap_or_else(|| panic!("{key} missing in {out}"));
            assert_eq!(row[0].parse::<u64>().ok(), r["samples"].as_u64(), "{key}");
            assert_eq!(
                row[3],
                format!("{}us", r["min_us"].as_str().unwrap_or("")),
                "{key}"
            );
            assert_eq!(
                row[4],
                format!("{}us", r["max_us"].as_str().unwrap_or("")),
                "{key}"
            );
            assert_eq!(
                row[5],
                format!("{}us", r["avg_us"].as_str().unwrap_or("")),
                "{key}"
            );
        }
    }

    // Guest recordings.
    for vm in truth["vms"].as_array().expect("vms") {
        let name = vm["name"].as_str().expect("name");
        let ks = format!("{name}.bundle/kallsyms");
        let out = perf(
            dir,
            &[
                "script",
                "-i",
                &format!("{name}.perf.data"),
                "--kallsyms",
                &ks,
                "-F",
                "event",
            ],
        );
        let n = out.lines().filter(|l| l.contains("cpu-clock")).count() as u64;
        assert_eq!(n, u(&vm["guest_samples"]), "{name}");
    }
}

#[test]
fn vmx_matches_perf() {
    check(Isa::Vmx);
}

#[test]
fn svm_matches_perf() {
    check(Isa::Svm);
}

#[test]
fn deterministic_per_seed() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    generate(a.path(), Isa::Vmx, 0.05);
    generate(b.path(), Isa::Vmx, 0.05);
    for f in [
        "host.perf.data",
        "guest-1.perf.data",
        "truth.json",
        "folded.txt",
    ] {
        let x = std::fs::read(a.path().join(f)).expect("read");
        let y = std::fs::read(b.path().join(f)).expect("read");
        assert!(x == y, "{f} differs between runs");
    }
}

#[test]
fn non_vm_folded_matches_perf_script() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let truth = generate(dir, Isa::Vmx, 0.1);
    let _ = truth;
    if !have_perf() {
        return;
    }
    // Fold perf script output as inferno-collapse-perf does, for threads that
    // are not vCPU threads, and compare with the generator's folded.txt.
    let out = perf(
        dir,
        &[
            "script",
            "-i",
            "host.perf.data",
            "--symfs=host-root",
            "--kallsyms=host.kallsyms",
        ],
    );
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    let mut comm = String::new();
    let mut stack: Vec<String> = Vec::new();
    // Host frames of vCPU-thread samples, root first.
    let mut got_vcpu: BTreeMap<String, u64> = BTreeMap::new();
    let mut flush = |comm: &str, stack: &mut Vec<String>, got: &mut BTreeMap<String, u64>| {
        if !stack.is_empty() && !comm.is_empty() {
            stack.reverse();
            if comm.starts_with("CPU ") {
                *got_vcpu.entry(stack.join(";")).or_insert(0) += 1;
            } else {
                let key = format!("{};{}", comm.replace(' ', "_"), stack.join(";"));
                *got.entry(key).or_insert(0) += 1;
            }
        }
        stack.clear();
    };
    for line in out.lines() {
        if line.is_empty() {
            flush(&comm, &mut stack, &mut got);
        } else if line.starts_with('\t')
            || line.starts_with(' ')
                && line
                    .trim_start()
                    .starts_with(|c: char| c.is_ascii_hexdigit())
                && line.contains(" (")
        {
            let l = line.trim();
            let (_, rest) = l.split_once(' ').expect("frame");
            let (sym, module) = rest.rsplit_once(" (").expect("module");
            let module = module.trim_end_matches(')');
            let sym = match sym.rfind("+0x") {
                Some(i) => &sym[..i],
                None => sym,
            };
            let f = if sym == "[unknown]" {
                format!("[{}]", module.rsplit('/').next().unwrap_or(module))
            } else {
                sym.to_string()
            };
            stack.push(f);
        } else {
            flush(&comm, &mut stack, &mut got);
            // "comm  tid [cpu] time: period event:"; only cpu-clock samples count.
            let l = line.trim_start();
            let head = &l[..l.find(" [").expect("cpu")];
            let mut parts: Vec<&str> = head.split_whitespace().collect();
            parts.pop();
            comm = if event_of(line).map(|e| e.0) == Some("cpu-clock") {
                parts.join(" ")
            } else {
                String::new()
            };
        }
    }
    flush(&comm, &mut stack, &mut got);
    let folded = std::fs::read_to_string(dir.join("folded.txt")).expect("folded");
    let want: BTreeMap<String, u64> = folded
        .lines()
        .filter(|l| !l.starts_with("VM "))
        .map(|l| {
            let (k, c) = l.rsplit_once(' ').expect("count");
            (k.to_string(), c.parse().expect("count"))
        })
        .collect();
    assert_eq!(got, want);
    // vCPU-thread host samples: the host part of the VM lines (after the
    // exit frame, or setup stacks rooted at clone3).
    let mut want_vcpu: BTreeMap<String, u64> = BTreeMap::new();
    for l in folded.lines().filter(|l| l.starts_with("VM ")) {
        let (k, c) = l.rsplit_once(' ').expect("count");
        let c: u64 = c.parse().expect("count");
        let host = if let Some(i) = k.find("];") {
            Some(&k[i + 2..])
        } else {
            let rest = k.splitn(3, ';').nth(2).unwrap_or("");
            rest.starts_with("clone3;").then_some(rest)
        };
        if let Some(h) = host {
            *want_vcpu.entry(h.to_string()).or_insert(0) += c;
        }
    }
    assert_eq!(got_vcpu, want_vcpu);
}

/// Every host guest-mode sample has a guest-side sample on guest CPU = vCPU
/// at the same instant (converted with the truth's TSC offset) and IP.
#[test]
fn guest_samples_match_host_guest_mode_samples() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let truth = generate(dir, Isa::Vmx, 0.1);
    if !have_perf() {
        return;
    }
    let tz_h = i128::from(u(&truth["host"]["time_zero"]));
    let mut tid_map = BTreeMap::new();
    for (vi, vm) in truth["vms"].as_array().expect("vms").iter().enumerate() {
        for v in vm["vcpus"].as_array().expect("vcpus") {
            tid_map.insert(u(&v["tid"]), (vi, u(&v["vcpu"])));
        }
    }
    let ns = |s: &str| -> u64 {
        let (a, b) = s.trim_end_matches(':').split_once('.').expect("time");
        a.parse::<u64>().expect("s") * 1_000_000_000 + b.parse::<u64>().expect("ns")
    };
    let out = perf(
        dir,
        &[
            "script",
            "-i",
            "host.perf.data",
            "--guestkallsyms=guest-0.bundle/kallsyms",
            "--guestmodules=guest-0.bundle/modules",
            "-F",
            "tid,time,event,ip,misc",
            "--ns",
            "-G",
        ],
    );
    let mut want: Vec<(usize, u64, u64, String)> = Vec::new();
    for l in out.lines().filter(|l| l.contains("cpu-clock")) {
        let w: Vec<&str> = l.split_whitespace().collect();
        if !w[1].contains('G') {
            continue;
        }
        let (vm, vcpu) = tid_map[&w[0].parse::<u64>().expect("tid")];
        let v = &truth["vms"][vm];
        let off = i128::from(v["tsc_offset"].as_i64().expect("offset"));
        let tz_g = i128::from(u(&v["guest_time_zero"]));
        let t = i128::from(ns(w[2]));
        let g = (tz_g + (2 * (t - tz_h) + off) / 2) as u64;
        want.push((vm, vcpu, g, w[4].to_string()));
    }
    assert_eq!(want.len() as u64, u(&truth["samples"]["guest_mode"]));
    let mut have = std::collections::BTreeSet::new();
    for (vi, vm) in truth["vms"].as_array().expect("vms").iter().enumerate() {
        let name = vm["name"].as_str().expect("name");
        let ks = format!("{name}.bundle/kallsyms");
        let out = perf(
            dir,
            &[
                "script",
                "-i",
                &format!("{name}.perf.data"),
                "--kallsyms",
                &ks,
                "-F",
                "cpu,time,ip",
                "--ns",
                "-G",
            ],
        );
        for l in out.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            let cpu: u64 = w[0].trim_matches(['[', ']']).parse().expect("cpu");
            have.insert((vi, cpu, ns(w[1]), w[2].to_string()));
        }
    }
    for s in &want {
        assert!(
            have.contains(s),
            "no guest sample for host guest-mode sample {s:?}"
        );
    }
    assert!(have.len() > want.len());
}

/// One sample of `perf script` default output: header line and frames.
struct ScriptSample {
    comm: String,
    tid: u64,
    cpu: u64,
    time_ns: u64,
    event: String,
    rest: String,
    /// Frames leaf first, folded names (symbol without offset or `[dso]`).
    frames: Vec<String>,
}

fn parse_script(out: &str) -> Vec<ScriptSample> {
    let mut v: Vec<ScriptSample> = Vec::new();
    for line in out.lines() {
        if line.is_empty() {
            continue;
        }
        if line.starts_with('\t') {
            let l = line.trim();
            let (_, rest) = l.split_once(' ').expect("frame");
            let (sym, module) = rest.rsplit_once(" (").expect("module");
            let module = module.trim_end_matches(')');
            let sym = match sym.rfind("+0x") {
                Some(i) => &sym[..i],
                None => sym,
            };
            let f = if sym == "[unknown]" {
                format!("[{}]", module.rsplit('/').next().unwrap_or(module))
            } else {
                sym.to_string()
            };
            if let Some(s) = v.last_mut() {
                s.frames.push(f);
            }
            continue;
        }
        let open = line.find(" [").expect("cpu");
        let mut head: Vec<&str> = line[..open].split_whitespace().collect();
        let tid = head.pop().expect("tid").parse().expect("tid");
        let close = line[open..].find(']').expect("]") + open;
        let cpu = line[open + 2..close].parse().expect("cpu");
        let after = line[close + 1..].trim_start();
        let time = after.split_whitespace().next().expect("time");
        let (a, b) = time.trim_end_matches(':').split_once('.').expect("time");
        let time_ns = a.parse::<u64>().expect("s") * 1_000_000_000 + b.parse::<u64>().expect("ns");
        let (event, rest) = event_of(line).expect("event");
        v.push(ScriptSample {
            comm: head.join(" "),
            tid,
            cpu,
            time_ns,
            event: event.to_string(),
            rest: rest.to_string(),
            frames: Vec::new(),
        });
    }
    v
}

/// Rebuilds folded.txt from perf's own decoding of the host and guest files
/// (symbols from host.kallsyms, host-root, the bundles) following the naming
/// rules of the crate docs, and compares it with the generator's folded.txt.
#[test]
fn folded_matches_perf_reconstruction() {
    use object::{Object, ObjectSymbol};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let truth = generate(dir, Isa::Svm, 0.1);
    if !have_perf() {
        return;
    }
    let tz_h = i128::from(u(&truth["host"]["time_zero"]));
    let vms = truth["vms"].as_array().expect("vms");
    let mut tid_map = BTreeMap::new();
    let mut guest_stacks = Vec::new();
    let mut guest_syms = Vec::new();
    for (vi, vm) in vms.iter().enumerate() {
        let name = vm["name"].as_str().expect("name");
        for v in vm["vcpus"].as_array().expect("vcpus") {
            tid_map.insert(u(&v["tid"]), (vi, u(&v["vcpu"])));
        }
        // Guest symbols: bundle kallsyms + guestapp ELF symtab.
        let bundle = dir.join(format!("{name}.bundle"));
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(bundle.join("manifest.json")).expect("manifest"),
        )
        .expect("manifest parses");
        let app_rel = manifest["binaries"][0]["file"].as_str().expect("file");
        let app = std::fs::read(bundle.join(app_rel)).expect("guestapp");
        let mut syms: Vec<(u64, String)> = std::fs::read_to_string(bundle.join("kallsyms"))
            .expect("kallsyms")
            .lines()
            .filter_map(|l| {
                let mut p = l.split_whitespace();
                let a = u64::from_str_radix(p.next()?, 16).ok()?;
                Some((a, p.nth(1)?.to_string()))
            })
            .filter(|s| !matches!(s.1.as_str(), "_text" | "_stext" | "_etext"))
            .collect();
        let elf = object::File::parse(&*app).expect("elf");
        for s in elf.symbols() {
            syms.push((s.address(), s.name().expect("name").to_string()));
        }
        syms.sort();
        guest_syms.push(syms);
        let symfs = dir.join(format!("gsymfs-{vi}/usr/bin"));
        std::fs::create_dir_all(&symfs).expect("mkdir");
        std::fs::write(symfs.join("guestapp"), &app).expect("copy");
        let ks = format!("{name}.bundle/kallsyms");
        let fs = format!("gsymfs-{vi}");
        let out = perf(
            dir,
            &[
                "script",
                "-i",
                &format!("{name}.perf.data"),
                "--kallsyms",
                &ks,
                "--symfs",
                &fs,
                "--ns",
            ],
        );
        let mut m = BTreeMap::new();
        for s in parse_script(&out) {
            let mut f = s.frames.clone();
            f.reverse();
            m.insert((s.cpu, s.time_ns), f.join(";"));
        }
        guest_stacks.push(m);
    }
    let lookup = |vm: usize, a: u64| -> String {
        let syms = &guest_syms[vm];
        let i = syms.partition_point(|s| s.0 <= a);
        syms[i - 1].1.clone()
    };
    let out = perf(
        dir,
        &[
            "script",
            "-i",
            "host.perf.data",
            "--symfs=host-root",
            "--kallsyms=host.kallsyms",
            "--guestkallsyms=guest-0.bundle/kallsyms",
            "--guestmodules=guest-0.bundle/modules",
            "--ns",
        ],
    );
    let mut open: BTreeMap<u64, (u64, String)> = BTreeMap::new();
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for s in parse_script(&out) {
        match s.event.as_str() {
            "kvm:kvm_exit" => {
                let w: Vec<&str> = s.rest.split_whitespace().collect();
                let reason = w[w.iter().position(|x| *x == "reason").expect("reason") + 1];
                let rip = w[w.iter().position(|x| *x == "rip").expect("rip") + 1];
                let rip = u64::from_str_radix(rip.trim_start_matches("0x"), 16).expect("rip");
                open.insert(s.tid, (rip, reason.to_string()));
            }
            "kvm:kvm_entry" => {
                open.remove(&s.tid);
            }
            "cpu-clock" => {
                let mut frames = s.frames.clone();
                frames.reverse();
                let host = frames.join(";");
                let key = if let Some(&(vm, vcpu)) = tid_map.get(&s.tid) {
                    let name = vms[vm]["name"].as_str().expect("name");
                    let prefix = format!("VM {name};vCPU {vcpu}");
                    if s.comm.starts_with(':') {
                        let v = &vms[vm];
                        let off = i128::from(v["tsc_offset"].as_i64().expect("offset"));
                        let tz_g = i128::from(u(&v["guest_time_zero"]));
                        let g = (tz_g + (2 * (i128::from(s.time_ns) - tz_h) + off) / 2) as u64;
                        let stack = guest_stacks[vm].get(&(vcpu, g)).expect("guest sample");
                        format!("{prefix};{stack}")
                    } else if let Some((rip, reason)) = open.get(&s.tid) {
                        format!("{prefix};{};[exit {reason}];{host}", lookup(vm, *rip))
                    } else {
                        format!("{prefix};{host}")
                    }
                } else {
                    format!("{};{host}", s.comm.replace(' ', "_"))
                };
                *got.entry(key).or_insert(0) += 1;
            }
            _ => {}
        }
    }
    let folded = std::fs::read_to_string(dir.join("folded.txt")).expect("folded");
    let want: BTreeMap<String, u64> = folded
        .lines()
        .map(|l| {
            let (k, c) = l.rsplit_once(' ').expect("count");
            (k.to_string(), c.parse().expect("count"))
        })
        .collect();
    let diff: Vec<_> = got
        .iter()
        .filter(|(k, v)| want.get(*k) != Some(v))
        .take(5)
        .collect();
    assert!(diff.is_empty(), "first differences (perf side): {diff:?}");
    assert_eq!(got, want);
}

/// testdata/synth-small is exactly what the generator makes today.
#[test]
fn shipped_scenario_is_current() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/synth-small");
    if !shipped.join("truth.json").exists() {
        eprintln!("skipping: {} not present", shipped.display());
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = Options::default();
    o.out_dir = tmp.path().to_path_buf();
    o.vms = 1;
    o.vcpus = 2;
    o.seconds = 0.5;
    o.freq = 4000;
    o.isa = Isa::Vmx;
    o.seed = 1;
    let r = kvmtrace_synth::run(&o).expect("generation succeeds");
    for f in &r.files {
        let rel = f.strip_prefix(tmp.path()).expect("inside out_dir");
        let a = std::fs::read(f).expect("read generated");
        let b = std::fs::read(shipped.join(rel))
            .unwrap_or_else(|e| panic!("{} missing in testdata: {e}", rel.display()));
        assert!(
            a == b,
            "{} differs: regenerate testdata/synth-small (see its README.md)",
            rel.display()
        );
    }
}
