//! The acceptance test of the ingest issue: every file of the shared public corpus that perf 6.1
//! reads is ingested, and each sample is compared with the `*.script.txt` reference that real
//! `perf script -F comm,pid,tid,cpu,time,period,event,ip,dso,trace --ns` wrote. Files perf
//! cannot read are ingested as far as they are readable; their sample counts must equal
//! manifest.tsv (an independent record walk).

use std::collections::HashMap;
use std::path::Path;

use kvmtrace_ingest::perf::header::feature;
use kvmtrace_ingest::perf::printfmt::{RenderOptions, render_event};
use kvmtrace_ingest::perf::tracing::{TracingData, parse_tracing_data};
use kvmtrace_ingest::reader::{RecordHandler, walk_file};

use crate::common::*;

#[derive(Default)]
struct TracingGrab(Option<Vec<u8>>);

impl RecordHandler for TracingGrab {
    fn on_attr(&mut self, _: kvmtrace_ingest::perf::header::AttrEntry) {}
    fn on_event_type(&mut self, _: u64, _: String) {}
    fn on_feature(&mut self, feat: u32, data: &[u8]) {
        if feat == feature::TRACING_DATA {
            self.0 = Some(data.to_vec());
        }
    }
    fn on_record(&mut self, _: u32, _: u16, _: &[u8], _: u64) {}
}

fn tracing_of(data: &[u8]) -> Option<TracingData> {
    let mut g = TracingGrab::default();
    walk_file(data, &mut g).ok()?;
    parse_tracing_data(&g.0?).ok()
}

/// Ingests `file` into a fresh temp dataset with raw payloads kept.
pub(crate) fn ingest(
    file: &Path,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    kvmtrace_ingest::Report,
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("ds");
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = out.clone();
    opts.keep_raw = true;
    // perf's reference outputs were made where the recordings' binaries are absent (so perf
    // unwound no DWARF user stacks): resolve against an empty symfs, not this machine's files.
    let nothing = tmp.path().join("empty-symfs");
    std::fs::create_dir_all(&nothing).expect("mkdir");
    opts.symfs = Some(nothing.clone());
    opts.debug_dirs = vec![nothing];
    let report =
        kvmtrace_ingest::run(file, &opts).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    (tmp, out, report)
}

struct FileResult {
    name: String,
    perf_samples: usize,
    ours: usize,
    /// The samples perf delivers from ours (several per PERF_SAMPLE_READ group sample).
    ours_delivered: usize,
    mismatches: Vec<String>,
    n_mismatched_samples: usize,
}

/// Compares one ingested file with perf's script output; returns the differences.
fn compare(file: &Path, reference: &Path) -> FileResult {
    // A perf.data directory's header (and its tracing data) is in its `data` file.
    let header_file = if file.is_dir() {
        file.join("data")
    } else {
        file.to_path_buf()
    };
    let data = std::fs::read(header_file).expect("read corpus file");
    let (_tmp, ds, _report) = ingest(file);
    let samples = read_table(&ds, "samples");
    let stacks = read_table(&ds, "stacks");
    let events = read_table(&ds, "events");

    let ev_names = col_str(&events, "name");
    let ev_types = col_u64(&events, "type");
    let ev_config = col_u64(&events, "config");
    let mut is_tp: HashMap<String, bool> = HashMap::new();
    for (n, t) in ev_names.iter().zip(&ev_types) {
        is_tp.insert(n.clone().unwrap_or_default(), *t == Some(2));
    }
    let tracing = tracing_of(&data);
    let text = read_text(reference);
    let perf = parse_script(&text, &is_tp);

    let comm = col_str(&samples, "comm");
    let pid = col_u64(&samples, "pid");
    let tid = col_u64(&samples, "tid");
    let cpu = col_u64(&samples, "cpu");
    let time = col_u64(&samples, "time_ns");
    let period = col_u64(&samples, "period");
    let event = col_str(&samples, "event");
    let event_idx = col_u64(&samples, "event_idx");
    let ip = col_u64(&samples, "ip");
    let stack_id = col_u64(&samples, "stack_id");
    let raw = col_bin(&samples, "raw");
    let frames = col_list_u64(&stacks, "frames");
    let branch_from = col_list_u64(&samples, "branch_from");

    let ev_ids = col_list_u64(&events, "ids");
    let read_ids = col_list_u64(&samples, "read_ids");
    let read_periods = col_list_u64(&samples, "read_periods");
    // perf delivers a PERF_SAMPLE_READ sample once per read value whose id names an event and
    // whose period (its growth since that id's last sample) is not 0, as that event with that
    // period (evlist__deliver_sample); other samples once, as they are.
    let mut event_of_id: HashMap<u64, String> = HashMap::new();
    for (n, ids) in ev_names.iter().zip(&ev_ids) {
        for id in ids.iter().flatten() {
            event_of_id.insert(*id, n.clone().unwrap_or_default());
        }
    }
    let mut delivered: Vec<(usize, Option<String>, Option<u64>)> = Vec::new();
    for i in 0..comm.len() {
        match (&read_ids[i], &read_periods[i]) {
            (Some(ids), Some(periods)) => {
                for (id, p) in ids.iter().zip(periods) {
                    if let (Some(name), true) = (event_of_id.get(id), *p != 0) {
                        delivered.push((i, Some(name.clone()), Some(*p)));
                    }
                }
            }
            _ => delivered.push((i, event[i].clone(), period[i])),
        }
    }

    let mut res = FileResult {
        name: file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        perf_samples: perf.len(),
        ours: comm.len(),
        ours_delivered: delivered.len(),
        mismatches: Vec::new(),
        n_mismatched_samples: 0,
    };
    // Per-event counts first.
    let mut ours_by_event: HashMap<String, usize> = HashMap::new();
    for (_, e, _) in &delivered {
        *ours_by_event
            .entry(e.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let mut perf_by_event: HashMap<String, usize> = HashMap::new();
    for s in &perf {
        *perf_by_event.entry(s.event.clone()).or_default() += 1;
    }
    if ours_by_event != perf_by_event {
        res.mismatches.push(format!(
            "samples per event: perf {perf_by_event:?}, kvmtrace {ours_by_event:?}"
        ));
    }
    let n = perf.len().min(delivered.len());
    for (k, (i, event, period)) in delivered.into_iter().take(n).enumerate() {
        let p = &perf[k];
        let mut diffs = Vec::new();
        let eq = |a: Option<u64>, b: Option<u64>| a.is_none() || b.is_none() || a == b;
        if comm[i].as_deref() != Some(p.comm.as_str()) {
            diffs.push(format!("comm {:?} vs perf {:?}", comm[i], p.comm));
        }
        if pid[i].map(|v| v as u32 as i32 as i64) != p.pid {
            diffs.push(format!("pid {:?} vs {:?}", pid[i], p.pid));
        }
        if tid[i].map(|v| v as u32 as i32 as i64) != p.tid {
            diffs.push(format!("tid {:?} vs {:?}", tid[i], p.tid));
        }
        if !eq(cpu[i], p.cpu) {
            diffs.push(format!("cpu {:?} vs {:?}", cpu[i], p.cpu));
        }
        if time[i] != p.time_ns && p.time_ns.is_some() {
            diffs.push(format!("time {:?} vs {:?}", time[i], p.time_ns));
        }
        if !eq(period, p.period) {
            diffs.push(format!("period {:?} vs {:?}", period, p.period));
        }
        if event.as_deref() != Some(p.event.as_str()) {
            diffs.push(format!("event {:?} vs {:?}", event, p.event));
        }
        if p.callchain.is_empty() {
            if p.ip.is_some() && ip[i] != p.ip {
                diffs.push(format!("ip {:x?} vs {:x?}", ip[i], p.ip));
            }
        } else {
            let ours: &[u64] = stack_id[i]
                .and_then(|s| frames.get(s as usize))
                .and_then(|f| f.as_deref())
                .unwrap_or(&[]);
            // perf prints user frames that fall in a mapping as map-relative addresses
            // (ip - map start + pgoff); map starts and offsets are page-aligned, so such a frame
            // differs from the absolute one by a multiple of the page size.
            let same =
                |a: u64, b: u64| a == b || (b < a && (a - b).is_multiple_of(4096) && a >> 47 == 0);
            let prefix = ours.iter().zip(&p.callchain).all(|(a, b)| same(*a, *b));
            // perf script stops after 127 callchain entries (PERF_MAX_STACK_DEPTH, markers
            // included); the stacks table keeps all of them.
            let perf_truncated = p.callchain.len() < ours.len() && p.callchain.len() >= 120;
            // With `--call-graph lbr` and an empty branch stack, perf 6.1 still appends
            // `entries[0].to`, reading past the empty LBR (resolve_lbr_callchain_sample); that
            // frame is not in the recording.
            let lbr_empty = branch_from[i].as_ref().is_some_and(|b| b.is_empty());
            let perf_past_empty_lbr = lbr_empty && p.callchain.len() == ours.len() + 1;
            if !(prefix
                && (ours.len() == p.callchain.len() || perf_truncated || perf_past_empty_lbr))
            {
                diffs.push(format!("callchain {:x?} vs perf {:x?}", ours, p.callchain));
            }
        }
        if let (Some(expected), Some(t), Some(raw)) =
            (p.trace.as_ref(), tracing.as_ref(), raw[i].as_ref())
        {
            let ev = event_idx[i].unwrap_or(0) as usize;
            if let Some(fmt) = ev_config
                .get(ev)
                .copied()
                .flatten()
                .and_then(|c| t.event_by_id(c))
            {
                let opts = RenderOptions {
                    big_endian: t.big_endian,
                    long_size: t.long_size,
                    printk: &t.printk,
                    symbolize: None,
                };
                let got = render_event(fmt, raw, &opts);
                if got.trim() != expected.trim() {
                    diffs.push(format!(
                        "trace {:?} vs perf {:?}",
                        got.trim(),
                        expected.trim()
                    ));
                }
            }
        }
        if !diffs.is_empty() {
            res.n_mismatched_samples += 1;
            if res.mismatches.len() < 5 {
                res.mismatches.push(format!(
                    "sample {i} (perf line {}): {}",
                    p.line,
                    diffs.join("; ")
                ));
            }
        }
    }
    res
}

#[test]
fn public_corpus_agrees_with_perf_script() {
    let Some(corpus) = corpus() else { return };
    let public = corpus.join("public");
    let manifest = std::fs::read_to_string(public.join("manifest.tsv")).expect("manifest.tsv");
    let mut failures = Vec::new();
    let mut table = String::from("file | perf | kvmtrace | mismatched samples\n");
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(name), Some(reads), Some(samples)) = (cols.first(), cols.get(4), cols.get(5))
        else {
            continue;
        };
        let file = public.join(name);
        let expected: usize = samples.parse().unwrap_or(0);
        if *reads != "yes" {
            // perf cannot read it: we must, as far as it is readable, with the walk's count.
            let (_tmp, ds, report) = ingest(&file);
            let n = row_count(&ds, "samples");
            table.push_str(&format!(
                "{name} | (unreadable) {expected} | {n} | warnings {}\n",
                report.warnings.len()
            ));
            if n != expected {
                failures.push(format!("{name}: {n} samples, manifest says {expected}"));
            }
            continue;
        }
        let reference = cols.get(9).map(|r| public.join(r)).filter(|p| p.exists());
        let Some(reference) = reference else { continue };
        let r = compare(&file, &reference);
        table.push_str(&format!(
            "{} | {} | {} | {}\n",
            r.name, r.perf_samples, r.ours, r.n_mismatched_samples
        ));
        // The manifest counts records (perf report -D); perf script prints what perf delivers.
        if r.ours != expected || r.perf_samples != r.ours_delivered || !r.mismatches.is_empty() {
            failures.push(format!(
                "{}: perf {} / manifest {} / kvmtrace {} samples ({} delivered); {} mismatched\n    {}",
                r.name,
                r.perf_samples,
                expected,
                r.ours,
                r.ours_delivered,
                r.n_mismatched_samples,
                r.mismatches.join("\n    ")
            ));
        }
    }
    println!("{table}");
    assert!(
        failures.is_empty(),
        "{} files differ from perf:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Leader sampling (`-e '{cpu-clock,task-clock,page-faults}:S'`): only the leader samples, each
/// sample reads the whole group, and perf script prints it once per member whose count grew, with
/// that growth as the period. `read_periods` must give perf's periods sample for sample.
#[test]
fn leader_sampled_group_agrees_with_perf_script() {
    let dir = testdata();
    let r = compare(
        &dir.join("leader-sampling.data"),
        &dir.join("leader-sampling.script.txt.gz"),
    );
    // `perf report -D` counts 1775 PERF_RECORD_SAMPLE records; perf script prints 4077 samples.
    assert_eq!(r.ours, 1775);
    assert_eq!(r.perf_samples, 4077);
    assert_eq!(r.ours_delivered, r.perf_samples);
    assert!(r.mismatches.is_empty(), "{}", r.mismatches.join("\n"));
}

/// KVM tracepoints with callchains (testdata/kvm-emulate-callchains.data, our PVM recording):
/// every field of every sample equals perf script's, the kvm_emulate_insn texts (`…:31 ed
/// (prot64)`) whole.
#[test]
fn kvm_tracepoints_with_callchains_agree_with_perf_script() {
    let dir = testdata();
    let reference = dir.join("kvm-emulate-callchains.script.txt.gz");
    let r = compare(&dir.join("kvm-emulate-callchains.data"), &reference);
    assert_eq!((r.ours, r.perf_samples), (3010, 3010));
    assert!(r.mismatches.is_empty(), "{}", r.mismatches.join("\n"));
    let emulated = read_text(&reference)
        .lines()
        .filter(|l| l.contains("kvm:kvm_emulate_insn:") && l.ends_with("(prot64)"))
        .count();
    assert!(emulated > 1000, "{emulated} emulated instructions");
}

/// Uprobe events (testdata/uprobes.data, recorded here): every sample equals perf script's, and
/// each probe's table holds in its typed columns the values perf prints: fetch arguments typed
/// `u64`, `s32` and `x16` (`mal2`), a uretprobe's function and return address (`__probe_func`,
/// `__probe_ret_ip`) and return value, a `__data_loc char[]` string and a bitfield (`opn`).
#[test]
fn uprobe_events_agree_with_perf_script() {
    let dir = testdata();
    let (file, reference) = (dir.join("uprobes.data"), dir.join("uprobes.script.txt.gz"));
    let r = compare(&file, &reference);
    assert_eq!((r.ours, r.perf_samples), (961, 961));
    assert!(r.mismatches.is_empty(), "{}", r.mismatches.join("\n"));

    let events = [
        "probe_libc:mal2",
        "probe_libc:mallocret__return",
        "probe_libc:opn",
    ];
    let is_tp: HashMap<String, bool> = events.iter().map(|e| (e.to_string(), true)).collect();
    let perf = parse_script(&read_text(&reference), &is_tp);
    let (_tmp, ds, _) = ingest(&file);
    // `key=value` pairs of a probe's text, after its `(<ip>)` or `(<func> <- <ret>)`.
    let values = |text: &str| -> HashMap<String, String> {
        let after = text.split_once(") ").map_or("", |(_, a)| a);
        after
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect()
    };
    let hex = |v: &str| u64::from_str_radix(v.trim_start_matches("0x"), 16).expect("hex");
    let mut checked = HashMap::new();
    for event in events {
        let table = event.replace(':', "__");
        let rows = read_table(&ds, &table);
        let time = col_u64(&rows, "time_ns");
        let printed: Vec<&ScriptSample> = perf.iter().filter(|s| s.event == event).collect();
        assert_eq!(time.len(), printed.len(), "{table}: rows");
        for (i, p) in printed.iter().enumerate() {
            assert_eq!(time[i], p.time_ns, "{table} row {i}");
            let text = p.trace.as_deref().unwrap_or_default();
            let kv = values(text);
            let at = |name: &str| col_u64(&rows, name)[i];
            match event {
                "probe_libc:mal2" => {
                    let size: u64 = kv["size"].parse().expect("size");
                    assert_eq!(at("size"), Some(size), "{text}");
                    let sz32: i32 = kv["sz32"].parse().expect("sz32");
                    assert_eq!(at("sz32"), Some(sz32 as i64 as u64), "{text}");
                    assert_eq!(at("hex"), Some(hex(&kv["hex"])), "{text}");
                    assert_eq!(at("hex"), Some(size & 0xffff), "{text}");
                }
                "probe_libc:mallocret__return" => {
                    let inner = text.trim_start_matches('(').split(')').next().unwrap_or("");
                    let (func, ret) = inner.split_once(" <- ").expect("func <- ret");
                    assert_eq!(at("__probe_func"), Some(hex(func)), "{text}");
                    assert_eq!(at("__probe_ret_ip"), Some(hex(ret)), "{text}");
                    assert_eq!(at("arg1"), Some(hex(&kv["arg1"])), "{text}");
                }
                _ => {
                    let path = col_str(&rows, "path")[i].clone();
                    assert_eq!(path.as_deref(), Some(kv["path"].as_str()), "{text}");
                    assert_eq!(at("fl"), Some(kv["fl"].parse().expect("fl")), "{text}");
                }
            }
        }
        checked.insert(event, printed.len());
    }
    println!("{checked:?}");
    assert!(checked.values().all(|&n| n > 0), "{checked:?}");
    assert!(checked["probe_libc:opn"] >= 3, "{checked:?}");
}

/// A perf.data directory (testdata/threads-zstd.data, `perf record --threads=cpu -z`, recorded
/// here): the header file `data` holds the synthesized records only, the samples are in the
/// zstd-compressed `data.0` and `data.1`; every sample equals perf script's, in perf's order.
#[test]
fn perf_data_directory_agrees_with_perf_script() {
    let dir = testdata().join("threads-zstd.data");
    assert!(kvmtrace_ingest::is_perf_data_dir(&dir));
    assert!(!kvmtrace_ingest::is_perf_data_dir(&testdata()));
    let on_disk: u64 = ["data", "data.0", "data.1"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).expect("fixture file").len())
        .sum();
    assert_eq!(kvmtrace_ingest::input_size(&dir), Some(on_disk));
    // The header file alone holds no sample.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = tmp.path().join("ds");
    opts.symbolize = false;
    let data = std::fs::read(dir.join("data")).expect("data");
    let header_only = kvmtrace_ingest::ingest_bytes(&data, "data", &opts).expect("data alone");
    assert_eq!(header_only.n_samples, 0);

    let r = compare(&dir, &testdata().join("threads-zstd.script.txt.gz"));
    assert_eq!((r.ours, r.perf_samples), (917, 917));
    assert!(r.mismatches.is_empty(), "{}", r.mismatches.join("\n"));
}

/// The order of a perf.data directory's samples (testdata/threads-ties.data.tar.zst: `perf
/// record --threads -a -g`, 199 533 samples in a 17 MB `data.0` and a 10 MB `data.1`, recorded
/// here) is perf's: the files take turns of 2 MiB of records, and of two samples of equal time
/// the one read first comes first. The reference is perf script's (tid, cpu, time) per sample;
/// reading each file whole before the next puts 18 samples elsewhere.
#[test]
fn perf_data_directory_samples_in_perf_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = std::fs::read(testdata().join("threads-ties.data.tar.zst")).expect("fixture");
    let tar = zstd::stream::read::Decoder::new(&archive[..]).expect("zstd");
    tar::Archive::new(tar).unpack(tmp.path()).expect("untar");
    let dir = tmp.path().join("big-thr.data");
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = tmp.path().join("ds");
    opts.symbolize = false;
    kvmtrace_ingest::run(&dir, &opts).expect("ingest");
    let samples = read_table(&opts.output, "samples");
    let ours: Vec<(Option<u64>, Option<u64>, Option<u64>)> = col_u64(&samples, "tid")
        .into_iter()
        .zip(col_u64(&samples, "cpu"))
        .zip(col_u64(&samples, "time_ns"))
        .map(|((tid, cpu), time)| (tid, cpu, time))
        .collect();
    // ` 8031 [000] 52236.344314213: `
    let perf: Vec<(Option<u64>, Option<u64>, Option<u64>)> =
        read_text(&testdata().join("threads-ties.order.txt.gz"))
            .lines()
            .map(|l| {
                let mut t = l.split_whitespace();
                let tid = t.next().and_then(|v| v.parse().ok());
                let cpu = t
                    .next()
                    .and_then(|c| c.trim_matches(['[', ']']).parse().ok());
                let time = t.next().and_then(|s| {
                    let (sec, ns) = s.trim_end_matches(':').split_once('.')?;
                    Some(sec.parse::<u64>().ok()? * 1_000_000_000 + ns.parse::<u64>().ok()?)
                });
                (tid, cpu, time)
            })
            .collect();
    assert_eq!(ours.len(), 199_533);
    assert_eq!(perf.len(), ours.len());
    // The fixture holds what the order decides: samples of equal time on both CPUs, perf's
    // later file's first.
    let ties = perf
        .windows(2)
        .filter(|w| w[0].2 == w[1].2 && w[0].1 > w[1].1)
        .count();
    assert!(ties > 0, "no tie read from data.1 first");
    let differ: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != perf[i]).collect();
    assert!(
        differ.is_empty(),
        "{} samples out of perf's order, first at {:?}: ours {:?}, perf {:?}",
        differ.len(),
        differ.first(),
        differ.first().map(|&i| ours[i]),
        differ.first().map(|&i| perf[i])
    );
}

/// Interrupt registers and page sizes (testdata/intr-regs-page-sizes.data, recorded here with
/// `--intr-regs=ax,bx,cx,ip,sp --data-page-size --code-page-size`): `samples.intr_regs_abi`,
/// `intr_regs` (in mask order, as perf prints them), `data_page_size` and `code_page_size` hold
/// what `perf script -F ip,iregs,data_page_size,code_page_size` prints, sample for sample.
#[test]
fn intr_regs_and_page_sizes_agree_with_perf_script() {
    let dir = testdata();
    let (_tmp, ds, _) = ingest(&dir.join("intr-regs-page-sizes.data"));
    let samples = read_table(&ds, "samples");
    let ip = col_u64(&samples, "ip");
    let abi = col_u64(&samples, "intr_regs_abi");
    let regs = col_list_u64(&samples, "intr_regs");
    let data_page = col_u64(&samples, "data_page_size");
    let code_page = col_u64(&samples, "code_page_size");
    // perf's get_page_size_name: N/A for 0, else unit_number__scnprintf.
    let page = |size: Option<u64>| match size {
        None | Some(0) => "N/A".to_string(),
        Some(mut n) => {
            let mut unit = 0;
            while n / 1024 > 1 && unit < 6 {
                n /= 1024;
                unit += 1;
            }
            format!("{n}{}", &"BKMGTPE"[unit..unit + 1])
        }
    };
    let text = read_text(&dir.join("intr-regs-page-sizes.script.txt"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 164);
    assert_eq!(ip.len(), lines.len());
    let mut seen_pages = std::collections::BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        // ` ffffffff8175336a ABI:2    AX:0x0    BX:0x3 …  IP:0x…  N/A 2M`
        let t: Vec<&str> = line.split_whitespace().collect();
        let perf_ip = u64::from_str_radix(t[0], 16).expect("ip");
        let perf_abi: u64 = t[1]
            .strip_prefix("ABI:")
            .expect("ABI")
            .parse()
            .expect("abi");
        let perf_regs: Vec<u64> = t[2..t.len() - 2]
            .iter()
            .map(|r| {
                let v = r.split_once(":0x").expect("REG:0x…").1;
                u64::from_str_radix(v, 16).expect("register")
            })
            .collect();
        let pages = (t[t.len() - 2], t[t.len() - 1]);
        assert_eq!(ip[i], Some(perf_ip), "sample {i}");
        assert_eq!(abi[i], Some(perf_abi), "sample {i}");
        assert_eq!(regs[i].as_deref(), Some(&perf_regs[..]), "sample {i}");
        assert_eq!(
            (page(data_page[i]).as_str(), page(code_page[i]).as_str()),
            pages,
            "sample {i}"
        );
        seen_pages.insert(pages);
    }
    // The fixture holds both sizes and both unknowns.
    assert!(seen_pages.contains(&("4K", "4K")) && seen_pages.contains(&("N/A", "2M")));
}
