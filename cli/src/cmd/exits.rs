//! `kvmtrace exits`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use kvmtrace_analyze::exits::{self, By, SortKey, TimeRange};
use kvmtrace_analyze::exits_perf::{self, PerfEvent, PerfKey};
use kvmtrace_analyze::exits_render::{self, Format};
use kvmtrace_analyze::exits_symbols::GuestKallsyms;

use crate::EXIT_OK;

const EXAMPLES: &str = "\
COLUMNS:
  count, %count, total, %time, min, p50, p90, p99, max, mean ± stddev (times in us; JSON/CSV in ns
  with keys reason_name, count, count_pct, total_ns, time_pct, min_ns, p50_ns, p90_ns, p99_ns,
  max_ns, mean_ns, stddev_ns and the --by keys). Percentiles are sorted[floor(q*(n-1))].
  On hosts where kvm_exit never fires (PVM) exits come from kvm_userspace_exit and kvm_msr:
  counts are exact, durations cannot be known; the output says so.

EXAMPLES:
  kvmtrace exits ds                                  # per exit reason, like perf kvm stat report
  kvmtrace exits ds --by vm,vcpu,reason --sort time  # which vCPU spends its time in which exit
  kvmtrace exits ds --vm qemu-system-x86:3100 --vcpu 1 --time 4321.1,4321.3
  kvmtrace exits ds --by reason --histogram          # log2 latency buckets per reason
  kvmtrace exits ds --split                          # kernel / VMM round trip / sched out / halted
  kvmtrace exits ds --by vm,guest-symbol --sort time # guest code causing exits, and their host time
                                                     # (guest symbols given to ingest: --guest-symbols
                                                     # VM=BUNDLE, --guestkallsyms)
  kvmtrace exits ds --by guest-symbol --guest-kallsyms guest.kallsyms   # or name them now
  kvmtrace exits ds --by port --format csv           # port I/O exits; also --by msr, --by gpa
  kvmtrace exits ds --emulated --by guest-symbol     # instructions the PVM emulator ran, per function
  kvmtrace exits ds --perf-compat --event ioport     # byte for byte what
                                                     # `perf kvm -i FILE stat report --event=ioport` prints";

/// VM exits per reason, vCPU, VM, guest function, port, MSR or gpa: counts, time, percentiles.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    /// The dataset directory (from `kvmtrace ingest`).
    dataset: PathBuf,
    /// Group by these, comma separated: reason, vcpu, vm, guest-symbol, port, msr, gpa.
    #[arg(long, value_delimiter = ',', default_value = "reason")]
    by: Vec<String>,
    /// Row order (descending): count, time, max or p99.
    #[arg(long, default_value = "count")]
    sort: String,
    /// Only this VM: VMM pid, name (`comm:pid`) or comm.
    #[arg(long)]
    vm: Option<String>,
    /// Only this vCPU index.
    #[arg(long)]
    vcpu: Option<u32>,
    /// Only exits in START,END (host perf clock seconds, perf's --time syntax; either side optional).
    #[arg(long)]
    time: Option<String>,
    /// Only this recording of the dataset.
    #[arg(long)]
    recording: Option<String>,
    /// table, csv or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Add log2 latency histograms per row.
    #[arg(long)]
    histogram: bool,
    /// Split exit time into kernel, VMM round trip, scheduled out and halted.
    #[arg(long)]
    split: bool,
    /// Guest /proc/kallsyms (or `nm -n` output) for --by guest-symbol; overrides the guest
    /// symbols resolved at ingest (the dataset's exit_symbols).
    #[arg(long, value_name = "FILE")]
    guest_kallsyms: Option<PathBuf>,
    /// Count every kvm_emulate_insn (instructions KVM emulated: PVM) instead of exits.
    #[arg(long)]
    emulated: bool,
    /// Print what `perf kvm -i FILE stat report` (perf 6.1) prints for the recording.
    #[arg(long)]
    perf_compat: bool,
    /// With --perf-compat: vmexit, ioport or mmio.
    #[arg(long, default_value = "vmexit", requires = "perf_compat")]
    event: String,
    /// With --perf-compat: sample, time (perf 6.1: mean time), max_t, min_t or mean_t.
    #[arg(long, default_value = "sample", requires = "perf_compat")]
    key: String,
}

pub(crate) fn run(args: Args, threads: usize) -> anyhow::Result<u8> {
    let ds = kvmtrace_analyze::Dataset::open(&args.dataset)?;
    let mut out = std::io::stdout().lock();
    if args.perf_compat {
        let mut o = exits_perf::PerfCompatOptions::default();
        o.event = args.event.parse::<PerfEvent>()?;
        o.key = args.key.parse::<PerfKey>()?;
        o.vcpu = args.vcpu;
        o.pid = match &args.vm {
            Some(v) => Some(
                v.parse()
                    .context("--perf-compat takes --vm as a pid (perf's --pid)")?,
            ),
            None => None,
        };
        o.recording = args.recording.clone();
        let stat = exits_perf::perf_compat(&ds, &o)
            .with_context(|| format!("reading {}", args.dataset.display()))?;
        for code in &stat.unknown_codes {
            eprintln!(
                "unknown kvm exit code:{code} on {}",
                stat.isa.to_uppercase()
            );
        }
        exits_render::render_perf(&stat, &mut out)?;
        return Ok(EXIT_OK);
    }
    let mut o = exits::Options::default();
    o.by = args
        .by
        .iter()
        .map(|b| b.trim().parse::<By>())
        .collect::<Result<_, _>>()?;
    o.sort = args.sort.parse::<SortKey>()?;
    o.vm = args.vm.clone();
    o.vcpu = args.vcpu;
    if let Some(t) = &args.time {
        o.time = TimeRange::parse(t)?;
    }
    o.recording = args.recording.clone();
    o.histogram = args.histogram;
    o.split = args.split;
    o.emulated = args.emulated;
    o.threads = threads;
    if let Some(p) = &args.guest_kallsyms {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        o.guest_kallsyms = Some(GuestKallsyms::parse(&text));
    }
    let format = args.format.parse::<Format>()?;
    let report =
        exits::run(&ds, &o).with_context(|| format!("reading {}", args.dataset.display()))?;
    if format != Format::Table {
        for n in &report.notes {
            eprintln!("kvmtrace: note: {n}");
        }
    }
    exits_render::render(&report, format, &mut out)?;
    out.flush()?;
    Ok(EXIT_OK)
}
