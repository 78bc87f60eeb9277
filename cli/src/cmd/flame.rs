//! `kvmtrace flame`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use kvmtrace_analyze::flame::{self, Inline, Scope, TimeRange, Weight};

use crate::EXIT_OK;

/// Flame graph of a host and its guests as one system (SVG, or folded text with --folded).
///
/// Stacks are root first: `VM <vm>;vCPU <n>;<guest frames>;[exit REASON];<host frames>` for vCPU
/// threads, `<comm>;<frames>` for other threads. INPUT is a dataset directory or a perf.data (then
/// ingested to a temporary dataset first).
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Dataset directory, or a perf.data file or directory (ingested to a temporary dataset
    /// first, with DWARF source lines only for the frames the graph names by them).
    input: PathBuf,
    /// Output file (`-`: stdout).
    #[arg(short, long, default_value = "flame.svg")]
    output: PathBuf,
    /// Write folded stacks (`a;b;c N`, sorted) instead of an SVG.
    #[arg(long)]
    folded: bool,
    /// samples, period or exit-time (default: samples; with --host-only what
    /// inferno-collapse-perf reads of perf script's lines: the period where perf prints it one
    /// space from the event name, else samples; exit-time with --exits).
    #[arg(long, value_parser = ["samples", "period", "exit-time"])]
    weight: Option<String>,
    /// Exit flame graph: guest code → exit reason, weighted by exit time.
    #[arg(long)]
    exits: bool,
    /// Only this VM (name or VMM pid); repeatable.
    #[arg(long)]
    vm: Vec<String>,
    /// Only this vCPU index; repeatable.
    #[arg(long)]
    vcpu: Vec<u32>,
    /// Time window START,END in seconds of the perf clock (as perf script prints); either side may be empty.
    #[arg(long)]
    time: Option<String>,
    /// Only guest-mode samples.
    #[arg(long, conflicts_with = "host_only")]
    guest_only: bool,
    /// Only host-mode samples, folded as perf script | inferno-collapse-perf does (without
    /// --event: every event named as the first one up to its first colon, as inferno's filter
    /// keeps `sched:*` for `sched:sched_switch`).
    #[arg(long)]
    host_only: bool,
    /// Host event to fold (default: the first non-tracepoint event). With leader sampling
    /// (`-e '{cycles,instructions}:S'`) a member folds the leader's samples, each weighted by
    /// the growth of the member's count, as perf report shows it.
    #[arg(long)]
    event: Option<String>,
    /// Differential graph against this baseline dataset (or perf.data).
    #[arg(long)]
    diff: Option<PathBuf>,
    /// SVG title.
    #[arg(long, default_value = "Flame Graph")]
    title: String,
    /// Icicle graph (root at the top).
    #[arg(long)]
    inverted: bool,
    /// Omit frames narrower than this percentage of the graph's width (inferno-flamegraph's
    /// --minwidth).
    #[arg(long, default_value_t = flame::SvgOptions::default().min_width)]
    min_width: f64,
    /// Keep the innermost N frames of each callchain, as perf's --max-stack (0: all).
    #[arg(long, default_value_t = flame::PERF_MAX_STACK)]
    max_stack: u32,
    /// Which inlined functions become frames: `unwound` (those of user frames unwound from a
    /// stack copy, --call-graph dwarf, as perf script 6.1 shows them; never for frame-pointer,
    /// LBR or kernel callchains), `all` (wherever DWARF has them), `none`.
    #[arg(long, value_parser = ["unwound", "all", "none"], default_value = "unwound")]
    inline: String,
    /// Guest-sample match tolerance in microseconds.
    #[arg(long, default_value_t = 1000)]
    tolerance_us: u64,
}

fn parse_time(s: &str) -> anyhow::Result<TimeRange> {
    let (a, b) = s.split_once(',').context("--time wants START,END")?;
    let secs = |x: &str| -> anyhow::Result<Option<u64>> {
        let x = x.trim();
        if x.is_empty() {
            return Ok(None);
        }
        let v: f64 = x.parse().with_context(|| format!("bad time {x:?}"))?;
        Ok(Some((v * 1e9).round() as u64))
    };
    Ok(TimeRange {
        start_ns: secs(a)?,
        end_ns: secs(b)?,
    })
}

/// The largest perf.data whose temporary dataset is written with plain pages (~180 MB of them).
const PLAIN_PAGES_UP_TO: u64 = 256 << 20;

/// A temporary dataset directory, removed on drop.
pub(crate) struct TempDataset(PathBuf);

impl Drop for TempDataset {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens a dataset, ingesting a perf.data into `tmp` first (with DWARF source lines for every
/// frame only when `source_lines`: the graph shows inlined functions).
fn open(
    input: &Path,
    threads: usize,
    source_lines: bool,
    tmp: &mut Vec<TempDataset>,
) -> anyhow::Result<kvmtrace_analyze::Dataset> {
    let root = if input.is_dir() && !kvmtrace_ingest::is_perf_data_dir(input) {
        input.to_path_buf()
    } else {
        let dir = TempDataset(std::env::temp_dir().join(format!(
            "kvmtrace-flame-{}-{}",
            std::process::id(),
            tmp.len()
        )));
        let mut opts = kvmtrace_ingest::Options::default();
        opts.output = dir.0.join("ds");
        opts.threads = threads;
        opts.source_lines = source_lines;
        // Read once and deleted: plain pages spare compressing them (flame end to end on a
        // 84 MB `-g -a` recording: 17% less CPU, the dataset 12 → 57 MB). Up to a size: the
        // temporary directory may be memory (tmpfs), and a plain dataset is ~0.7× its input.
        let size = kvmtrace_ingest::input_size(input).unwrap_or(u64::MAX);
        if size <= PLAIN_PAGES_UP_TO {
            opts.compression = kvmtrace_ingest::Compression::None;
        }
        kvmtrace_ingest::run(input, &opts)
            .with_context(|| format!("ingesting {}", input.display()))?;
        let root = opts.output.clone();
        tmp.push(dir);
        root
    };
    kvmtrace_analyze::Dataset::open(&root).with_context(|| format!("opening {}", root.display()))
}

pub(crate) fn run(args: Args, threads: usize) -> anyhow::Result<u8> {
    let mut tmp = Vec::new();
    let source_lines = args.inline == "all";
    let ds = open(&args.input, threads, source_lines, &mut tmp)?;
    let mut opts = flame::Options::default();
    opts.scope = if args.guest_only {
        Scope::GuestOnly
    } else if args.host_only {
        Scope::HostOnly
    } else {
        Scope::All
    };
    opts.exits = args.exits;
    opts.weight = args.weight.as_deref().map(|w| match w {
        "period" => Weight::Period,
        "exit-time" => Weight::ExitTime,
        _ => Weight::Samples,
    });
    opts.event = args.event.clone();
    opts.vms = args.vm.clone();
    opts.vcpus = args.vcpu.clone();
    opts.time = args.time.as_deref().map(parse_time).transpose()?;
    opts.match_tolerance_ns = args.tolerance_us.saturating_mul(1000);
    opts.threads = threads;
    opts.max_stack = (args.max_stack > 0).then_some(args.max_stack);
    opts.inline = match args.inline.as_str() {
        "all" => Inline::All,
        "none" => Inline::None,
        _ => Inline::Unwound,
    };
    let mut folded = flame::fold(&ds, &opts).context("folding stacks")?;
    let r = &folded.report;
    if let Some(rate) = r.match_rate() {
        eprintln!(
            "kvmtrace: guest stacks matched for {:.1}% of {} guest-mode samples ({} other leaf, {} none within tolerance)",
            rate * 100.0,
            r.n_guest_matched + r.n_guest_mismatched + r.n_guest_unmatched,
            r.n_guest_mismatched,
            r.n_guest_unmatched
        );
    }
    if !r.guest_states.is_empty() {
        // Where each guest-side sample's vCPU was on the host at that instant (steal shows as
        // scheduled_out).
        let states: Vec<String> = r
            .guest_states
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect();
        eprintln!(
            "kvmtrace: guest-side samples by vCPU state: {}",
            states.join(", ")
        );
    }
    if let Some(base) = &args.diff {
        let base_ds = open(base, threads, source_lines, &mut tmp)?;
        let baseline = flame::fold(&base_ds, &opts).context("folding the baseline")?;
        folded = flame::diff(&baseline, &folded)?;
    }
    let render = |out: &mut dyn Write| -> anyhow::Result<()> {
        if args.folded {
            flame::render_folded(&folded, out)?;
        } else {
            let mut svg = flame::SvgOptions::default();
            svg.title = args.title.clone();
            svg.inverted = args.inverted;
            svg.min_width = args.min_width;
            flame::render_svg(&folded, &svg, out)?;
        }
        Ok(())
    };
    if args.output == Path::new("-") {
        let mut out = std::io::stdout().lock();
        render(&mut out)?;
        out.flush().context("writing stdout")?;
    } else {
        write_atomically(&args.output, render)?;
    }
    Ok(EXIT_OK)
}

/// Writes `path` through a temporary file beside it, renamed over `path` once complete: a
/// failed or interrupted run never leaves a half-written graph under the final name. A path
/// that exists and is no regular file (`/dev/null`, a FIFO, a terminal) is written in place:
/// a rename would replace the device with a file.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        write(&mut out)?;
        return out
            .flush()
            .with_context(|| format!("writing {}", path.display()));
    }
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = std::io::BufWriter::new(file);
        write(&mut out)?;
        out.flush()
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(out);
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
