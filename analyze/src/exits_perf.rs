//! `kvmtrace exits --perf-compat`: what `perf kvm -i FILE stat report` (perf 6.1) computes, from
//! the raw tracepoint tables, replayed the way perf does it (builtin-kvm.c and
//! arch/x86/util/kvm-stat.c of perf 6.1):
//!
//! - a host thread takes part from its first `kvm_entry` on (that event carries the vcpu_id);
//! - vmexit: `kvm_exit` (key: the full exit_reason) → next `kvm_entry`; ioport: `kvm_pio`
//!   (port, rw) → `kvm_entry`; mmio: `kvm_mmio` write → `kvm_entry`, `kvm_exit` → `kvm_mmio`
//!   read (key gpa, type);
//! - statistics per key with perf's Welford update (mean, relative stddev of the mean);
//! - exit names from the CPUID header (`GenuineIntel` → VMX, `AuthenticAMD`/`HygonGenuine` →
//!   SVM), not from the tracepoint's isa, and with perf 6.1's own tables;
//! - rows sorted by the key (descending); ties keep perf's hash-table order (bucket `key & 4095`,
//!   newest event first);
//! - perf's quirks are kept: with `--vcpu` the minimum prints as 0.00us (per-vCPU statistics
//!   start zeroed), `--key time` sorts by mean time.

use std::collections::HashMap;

use polars::prelude::*;
use serde::Serialize;

use crate::dataset::Dataset;
use crate::error::{Error, pl};
use crate::exits_reasons;

/// `--event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub enum PerfEvent {
    /// VM exits by reason.
    #[default]
    Vmexit,
    /// Port I/O by port and direction.
    Ioport,
    /// MMIO by gpa and direction.
    Mmio,
}

impl std::str::FromStr for PerfEvent {
    type Err = Error;
    fn from_str(s: &str) -> Result<PerfEvent, Error> {
        Ok(match s {
            "vmexit" => PerfEvent::Vmexit,
            "ioport" => PerfEvent::Ioport,
            "mmio" => PerfEvent::Mmio,
            o => {
                return Err(Error::Invalid(format!(
                    "unknown --event {o:?}: use vmexit, ioport or mmio"
                )));
            }
        })
    }
}

/// `--key`: perf 6.1 knows `sample` (count) and `time` (mean time); `max_t`, `min_t` and
/// `mean_t` (later perf's names) sort by max, min and mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub enum PerfKey {
    /// Number of events.
    #[default]
    Sample,
    /// Mean time (perf 6.1: "sort by average time").
    Time,
    /// Longest.
    MaxT,
    /// Shortest.
    MinT,
    /// Mean time.
    MeanT,
}

impl std::str::FromStr for PerfKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<PerfKey, Error> {
        Ok(match s {
            "sample" => PerfKey::Sample,
            "time" => PerfKey::Time,
            "max_t" => PerfKey::MaxT,
            "min_t" => PerfKey::MinT,
            "mean_t" => PerfKey::MeanT,
            o => {
                return Err(Error::Invalid(format!(
                    "Unknown compare key:{o} (use sample, time, max_t, min_t or mean_t)"
                )));
            }
        })
    }
}

/// Options of [`perf_compat`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PerfCompatOptions {
    /// Which analysis.
    pub event: PerfEvent,
    /// Sort key.
    pub key: PerfKey,
    /// Only this vcpu_id (perf's `--vcpu`).
    pub vcpu: Option<u32>,
    /// Only samples of this pid (perf's `--pid`).
    pub pid: Option<i32>,
    /// The recording (needed when the dataset holds several).
    pub recording: Option<String>,
}

/// One printed row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfRow {
    /// The key as perf decodes it (`EPT_VIOLATION`, `0x3f8:POUT`, `0xfe003004:W`).
    pub name: String,
    /// Events.
    pub count: u64,
    /// Total time, ns.
    pub time_ns: u64,
    /// Shortest, ns.
    pub min_ns: u64,
    /// Longest, ns.
    pub max_ns: u64,
    /// Welford mean, ns.
    pub mean_ns: f64,
    /// Relative standard deviation of the mean, %.
    pub rel_stddev_pct: f64,
}

/// What `perf kvm stat report` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfKvmStat {
    /// The analysis.
    pub event: PerfEvent,
    /// `--vcpu`.
    pub vcpu: Option<u32>,
    /// `--pid`.
    pub pid: Option<i32>,
    /// Rows in perf's order.
    pub rows: Vec<PerfRow>,
    /// Total Samples.
    pub total_count: u64,
    /// Total events handled time, ns.
    pub total_time_ns: u64,
    /// `vmx` or `svm` (from the CPUID header).
    pub isa: String,
    /// Exit codes perf does not know (it prints `unknown kvm exit code:N on ISA` for each).
    pub unknown_codes: Vec<u64>,
}

const INVALID_KEY: u64 = u64::MAX;
const MMIO_READ: u64 = 1;
const MMIO_WRITE: u64 = 2;

#[derive(Debug, Clone, Copy)]
enum Ev {
    Exit(u64),
    Entry(u64),
    Pio(u64, u64),
    Mmio(u64, u64),
}

#[derive(Debug, Default)]
struct Stats {
    n: u64,
    mean: f64,
    m2: f64,
    min: u64,
    max: u64,
    time: u64,
}

#[derive(Debug, Default)]
struct VcpuRecord {
    vcpu_id: u64,
    start_time: u64,
    last_event: Option<usize>,
}

struct State {
    events: Vec<((u64, u64), Stats)>,
    index: HashMap<(u64, u64), usize>,
}

impl State {
    fn find_create(&mut self, key: (u64, u64)) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.events.push((
            key,
            Stats {
                min: u64::MAX,
                ..Default::default()
            },
        ));
        self.index.insert(key, self.events.len() - 1);
        self.events.len() - 1
    }
}

fn u64_of(c: &Column, i: usize) -> Option<u64> {
    match c.get(i).ok()? {
        AnyValue::UInt64(x) => Some(x),
        AnyValue::UInt32(x) => Some(x.into()),
        AnyValue::UInt16(x) => Some(x.into()),
        AnyValue::UInt8(x) => Some(x.into()),
        AnyValue::Int64(x) => Some(x as u64),
        AnyValue::Int32(x) => Some(x as u32 as u64),
        _ => None,
    }
}

/// Loads (time, sample_idx, pid, tid, event) of one tracepoint table.
fn load(
    ds: &Dataset,
    recording: &str,
    table: &str,
    fields: &[&str],
    make: impl Fn(&[u64]) -> Ev,
    out: &mut Vec<(u64, u64, i64, i64, Ev)>,
) -> Result<(), Error> {
    if !ds.has(table) {
        return Ok(());
    }
    let mut sel = vec![
        col("time_ns"),
        col("sample_idx"),
        col("pid").cast(DataType::Int64),
        col("tid").cast(DataType::Int64),
    ];
    sel.extend(fields.iter().map(|f| col(*f).cast(DataType::UInt64)));
    let df = ds
        .scan(table)?
        .filter(col("recording").eq(lit(recording)))
        .select(sel)
        .collect()
        .map_err(pl(table))?;
    let cols: Vec<&Column> = df.columns().iter().collect();
    let mut vals = vec![0u64; fields.len()];
    for i in 0..df.height() {
        let (Some(t), Some(idx)) = (u64_of(cols[0], i), u64_of(cols[1], i)) else {
            continue;
        };
        let pid = u64_of(cols[2], i).map_or(-1, |x| x as i64);
        let tid = u64_of(cols[3], i).map_or(-1, |x| x as i64);
        for (j, v) in vals.iter_mut().enumerate() {
            *v = u64_of(cols[4 + j], i).unwrap_or(0);
        }
        out.push((t, idx, pid, tid, make(&vals)));
    }
    Ok(())
}

fn cpuid_isa(cpuid: &str) -> Option<&'static str> {
    if cpuid.contains("Intel") {
        Some("vmx")
    } else if cpuid.contains("AMD") || cpuid.contains("Hygon") {
        Some("svm")
    } else {
        None
    }
}

/// Replays the recording's KVM tracepoints as `perf kvm stat report` does.
pub fn perf_compat(ds: &Dataset, opts: &PerfCompatOptions) -> Result<PerfKvmStat, Error> {
    let recording = match &opts.recording {
        Some(r) => r.clone(),
        None => match ds.recordings() {
            [one] => one.recording.clone(),
            [] => {
                return Err(Error::Dataset {
                    path: ds.root().to_path_buf(),
                    reason: "no recordings".into(),
                });
            }
            many => {
                return Err(Error::Invalid(format!(
                    "--perf-compat reads one recording; pick one with --recording ({})",
                    many.iter()
                        .map(|r| r.recording.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        },
    };
    let meta = ds
        .scan("meta")?
        .filter(col("recording").eq(lit(recording.as_str())))
        .select([col("cpuid")])
        .collect()
        .map_err(pl("meta"))?;
    let cpuid = match meta.column("cpuid").ok().and_then(|c| c.get(0).ok()) {
        Some(AnyValue::String(s)) => s.to_string(),
        _ => String::new(),
    };
    let isa = cpuid_isa(&cpuid).ok_or_else(|| {
        Error::Invalid(format!("CPU {cpuid:?} is not supported (perf kvm stat needs an Intel, AMD or Hygon CPUID header)"))
    })?;
    let table = if isa == "vmx" {
        exits_reasons::VMX
    } else {
        exits_reasons::SVM
    };

    let mut evs = Vec::new();
    load(
        ds,
        &recording,
        "kvm__kvm_exit",
        &["exit_reason"],
        |v| Ev::Exit(v[0]),
        &mut evs,
    )?;
    load(
        ds,
        &recording,
        "kvm__kvm_entry",
        &["vcpu_id"],
        |v| Ev::Entry(v[0]),
        &mut evs,
    )?;
    if opts.event == PerfEvent::Ioport {
        load(
            ds,
            &recording,
            "kvm__kvm_pio",
            &["port", "rw"],
            |v| Ev::Pio(v[0], v[1]),
            &mut evs,
        )?;
    }
    if opts.event == PerfEvent::Mmio {
        load(
            ds,
            &recording,
            "kvm__kvm_mmio",
            &["gpa", "type"],
            |v| Ev::Mmio(v[0], v[1]),
            &mut evs,
        )?;
    }
    // perf's ordered events: by time; the recording order breaks ties.
    evs.sort_by_key(|e| (e.0, e.1));

    let mut st = State {
        events: Vec::new(),
        index: HashMap::new(),
    };
    let mut threads: HashMap<i64, VcpuRecord> = HashMap::new();
    for &(time, _, pid, tid, ev) in &evs {
        if opts.pid.is_some_and(|p| i64::from(p) != pid) {
            continue;
        }
        if let Ev::Entry(v) = ev {
            threads.entry(tid).or_insert(VcpuRecord {
                vcpu_id: v,
                ..Default::default()
            });
        }
        let Some(rec) = threads.get_mut(&tid) else {
            continue;
        };
        if opts.vcpu.is_some_and(|v| u64::from(v) != rec.vcpu_id) {
            continue;
        }
        // is_begin_event, then is_end_event, with the key each one sets.
        let (begin, end, key) = match (opts.event, ev) {
            (PerfEvent::Vmexit, Ev::Exit(r)) => (true, false, (r, 0)),
            (PerfEvent::Vmexit | PerfEvent::Ioport, Ev::Entry(_)) => {
                (false, true, (INVALID_KEY, 0))
            }
            (PerfEvent::Ioport, Ev::Pio(port, rw)) => (true, false, (port, rw)),
            (PerfEvent::Mmio, Ev::Exit(_)) => (true, false, (INVALID_KEY, 0)),
            (PerfEvent::Mmio, Ev::Mmio(gpa, MMIO_WRITE)) => (true, false, (gpa, MMIO_WRITE)),
            (PerfEvent::Mmio, Ev::Entry(_)) => (false, true, (INVALID_KEY, 0)),
            (PerfEvent::Mmio, Ev::Mmio(gpa, MMIO_READ)) => (false, true, (gpa, MMIO_READ)),
            _ => (false, false, (INVALID_KEY, 0)),
        };
        if begin {
            rec.last_event = (key.0 != INVALID_KEY).then(|| st.find_create(key));
            rec.start_time = time;
        } else if end {
            let begin_time = rec.start_time;
            if begin_time == 0 {
                continue;
            }
            let event = match rec.last_event {
                Some(e) => e,
                None if key.0 == INVALID_KEY => continue,
                None => st.find_create(key),
            };
            rec.last_event = None;
            rec.start_time = 0;
            if time < begin_time {
                continue;
            }
            let d = time - begin_time;
            let s = &mut st.events[event].1;
            s.time += d;
            s.n += 1;
            let delta = d as f64 - s.mean;
            s.mean += delta / s.n as f64;
            s.m2 += delta * (d as f64 - s.mean);
            s.max = s.max.max(d);
            s.min = s.min.min(d);
        }
    }

    // perf's result tree: walk the hash buckets in order (newest first inside one), insert
    // each event with a count after every event it is not bigger than.
    let mut order: Vec<usize> = (0..st.events.len())
        .filter(|&i| st.events[i].1.n > 0)
        .collect();
    order.sort_by(|&a, &b| {
        (st.events[a].0.0 & 4095)
            .cmp(&(st.events[b].0.0 & 4095))
            .then(b.cmp(&a))
    });
    let metric = |s: &Stats| -> f64 {
        match opts.key {
            PerfKey::Sample => s.n as f64,
            PerfKey::Time | PerfKey::MeanT => s.mean,
            PerfKey::MaxT => s.max as f64,
            PerfKey::MinT => s.min as f64,
        }
    };
    let mut sorted: Vec<usize> = Vec::with_capacity(order.len());
    for i in order {
        let m = metric(&st.events[i].1);
        let pos = sorted
            .iter()
            .position(|&j| m > metric(&st.events[j].1))
            .unwrap_or(sorted.len());
        sorted.insert(pos, i);
    }
    let mut unknown_codes = Vec::new();
    let rows: Vec<PerfRow> = sorted
        .iter()
        .map(|&i| {
            let ((k, info), s) = &st.events[i];
            let hex = |x: u64| {
                if x == 0 {
                    "0".to_string()
                } else {
                    format!("{x:#x}")
                }
            };
            let mut name = match opts.event {
                PerfEvent::Vmexit => match table.iter().find(|(c, _)| c == k) {
                    Some((_, n)) => (*n).to_string(),
                    None => {
                        unknown_codes.push(*k);
                        "UNKNOWN".to_string()
                    }
                },
                PerfEvent::Ioport => {
                    format!("{}:{}", hex(*k), if *info != 0 { "POUT" } else { "PIN" })
                }
                PerfEvent::Mmio => format!(
                    "{}:{}",
                    hex(*k),
                    if *info == MMIO_WRITE { "W" } else { "R" }
                ),
            };
            // scnprintf into a 20-byte buffer.
            name.truncate(19);
            let stddev = if s.n < 2 {
                0.0
            } else {
                (s.m2 / (s.n - 1) as f64 / s.n as f64).sqrt()
            };
            let rel = if s.mean != 0.0 {
                100.0 * stddev / s.mean
            } else {
                0.0
            };
            // perf's per-vCPU statistics start zeroed (kvm_event_expand), so with --vcpu their
            // minimum stays 0: perf prints 0.00us, and so do we.
            let min_ns = if opts.vcpu.is_some() { 0 } else { s.min };
            PerfRow {
                name,
                count: s.n,
                time_ns: s.time,
                min_ns,
                max_ns: s.max,
                mean_ns: s.mean,
                rel_stddev_pct: rel,
            }
        })
        .collect();
    Ok(PerfKvmStat {
        event: opts.event,
        vcpu: opts.vcpu,
        pid: opts.pid,
        total_count: rows.iter().map(|r| r.count).sum(),
        total_time_ns: rows.iter().map(|r| r.time_ns).sum(),
        rows,
        isa: isa.to_string(),
        unknown_codes,
    })
}
