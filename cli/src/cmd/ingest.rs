//! `kvmtrace ingest`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::{EXIT_OK, EXIT_WARNINGS};

/// Turn a perf.data (file or pipe mode, zstd or not, perf 3.x to 6.x) into a Parquet dataset.
///
/// Writes DATASET/<table>/host=H/recording=R/part-0.parquet for every table of docs/schema.md
/// (samples, stacks, events, threads, mmaps, build_ids, meta, lost, ingest_report, one table per
/// tracepoint such as kvm__kvm_exit, and the KVM model: vms, vcpus, exits, tsc_offsets); the
/// k-th --guest-data recording writes part-<k>.parquet of the guest_* tables.
/// Open them with polars (`pl.scan_parquet("DATASET/samples")`), DuckDB or Spark.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The perf.data to read: a file, or the directory `perf record --threads` writes (its
    /// `data` and `data.N` files); `-` reads a pipe-mode stream (`perf record -o -`) from
    /// stdin, spooled to an unnamed temporary file beside the output (memory stays bounded).
    input: PathBuf,
    /// The dataset directory to write (replaced atomically unless --append).
    #[arg(short, long, default_value = "kvmtrace.dataset")]
    output: PathBuf,
    /// Add this recording to an existing dataset as a new host/recording partition.
    #[arg(long)]
    append: bool,
    /// A recording made inside a guest (`perf record -a -g`), joined by time and vCPU:
    /// VM=PATH[,tsc-offset=N][,tsc-scale=M][,name=NAME]; VM is the VMM pid or process name.
    /// guest_tsc = host_tsc × scale + offset; the offset defaults to the host's
    /// kvm_write_tsc_offset. Repeat per VM.
    #[arg(long = "guest-data", value_name = "VM=PATH[,..]")]
    guest_data: Vec<kvmtrace_ingest::GuestData>,
    /// A guest symbol bundle (`kvmtrace bundle`, a .tar.zst, or a plain directory with
    /// kallsyms/modules/ELF files): VM=BUNDLE. Repeat per VM.
    #[arg(long = "guest-symbols", value_name = "VM=BUNDLE", value_parser = parse_vm_path)]
    guest_symbols: Vec<(String, PathBuf)>,
    /// perf kvm's --guestkallsyms: kallsyms of the default guest (every VM without a bundle).
    #[arg(long = "guestkallsyms", value_name = "FILE")]
    guest_kallsyms: Option<PathBuf>,
    /// perf kvm's --guestmodules.
    #[arg(long = "guestmodules", value_name = "FILE")]
    guest_modules: Option<PathBuf>,
    /// perf kvm's --guestvmlinux.
    #[arg(long = "guestvmlinux", value_name = "FILE")]
    guest_vmlinux: Option<PathBuf>,
    /// Host kallsyms (default: /proc/kallsyms, only when the recording was made on this machine).
    #[arg(long, value_name = "FILE")]
    kallsyms: Option<PathBuf>,
    /// Look for host binaries under DIR (perf's --symfs).
    #[arg(long, value_name = "DIR")]
    symfs: Option<PathBuf>,
    /// Separate debug-info directory (build-id and debuglink lookups), repeatable; default
    /// /usr/lib/debug and perf's build-id cache ($PERF_BUILDID_DIR or ~/.debug, where perf
    /// record keeps every binary it saw, [vdso] included).
    #[arg(long = "debug-dir", value_name = "DIR")]
    debug_dirs: Vec<PathBuf>,
    /// Unwind --call-graph dwarf user stacks by every library's CFI. By default kvmtrace
    /// unwinds as perf 6.1 does, so that its stacks equal `perf script`'s: perf looks for a
    /// library's unwind tables at the lowest address any mapping of that file ever had in the
    /// process, so in a process that exec'd after its parent had the library mapped elsewhere
    /// it falls back to frame pointers there and its stacks end early.
    #[arg(long)]
    exact_unwind: bool,
    /// Do not resolve symbols (no frames tables).
    #[arg(long)]
    no_symbols: bool,
    /// Keep PERF_SAMPLE_RAW bytes in samples.raw even for decoded tracepoints.
    #[arg(long)]
    keep_raw: bool,
    /// How the Parquet pages are compressed: zstd (level 1), or none (files ~5× larger,
    /// written with a sixth less CPU: for a dataset read once and deleted).
    #[arg(long, value_enum, default_value_t = Compression::Zstd)]
    compression: Compression,
}

/// `--compression`'s values: [`kvmtrace_ingest::Compression`] as clap parses it (the library
/// does not depend on clap).
#[derive(Clone, Copy, clap::ValueEnum)]
enum Compression {
    Zstd,
    None,
}

fn parse_vm_path(s: &str) -> Result<(String, PathBuf), String> {
    let (vm, path) = s
        .split_once('=')
        .ok_or_else(|| format!("expected VM=PATH, got {s:?}"))?;
    Ok((vm.to_string(), PathBuf::from(path)))
}

pub(crate) fn run(args: Args, threads: usize) -> anyhow::Result<u8> {
    let size = kvmtrace_ingest::input_size(&args.input).unwrap_or(0);
    let pb = crate::cmd::progress_bar(size, "ingest");
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = args.output.clone();
    opts.append = args.append;
    opts.threads = threads;
    opts.guest_data = args.guest_data.clone();
    opts.guest_symbols = args.guest_symbols.clone();
    opts.guest_kallsyms = args.guest_kallsyms.clone();
    opts.guest_modules = args.guest_modules.clone();
    opts.guest_vmlinux = args.guest_vmlinux.clone();
    opts.kallsyms = args.kallsyms.clone();
    opts.symfs = args.symfs.clone();
    opts.debug_dirs = args.debug_dirs.clone();
    opts.symbolize = !args.no_symbols;
    opts.exact_unwind = args.exact_unwind;
    opts.keep_raw = args.keep_raw;
    opts.compression = match args.compression {
        Compression::Zstd => kvmtrace_ingest::Compression::Zstd,
        Compression::None => kvmtrace_ingest::Compression::None,
    };
    if let Some(pb) = pb.clone() {
        opts.progress = Some(Arc::new(move |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        }));
    }
    let report = kvmtrace_ingest::run(&args.input, &opts)
        .with_context(|| format!("ingesting {}", args.input.display()))?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let rows = |t: &str| {
        report
            .tables
            .iter()
            .find(|(n, _)| n == t)
            .map(|(_, r)| *r)
            .unwrap_or(0)
    };
    eprintln!(
        "kvmtrace: {} -> {} (recording {}, host {}): {} samples, {} stacks, {} exits, {} tables",
        args.input.display(),
        args.output.display(),
        report.recording,
        report.host,
        report.n_samples,
        rows("stacks"),
        rows("exits"),
        report.tables.len()
    );
    for w in &report.warnings {
        eprintln!("kvmtrace: warning: {w}");
    }
    if report.has_warnings() {
        let counts: Vec<String> = report
            .warning_counts
            .iter()
            .map(|(k, n)| format!("{n} {}", k.as_str()))
            .collect();
        let in_file = report.bytes_unread.saturating_sub(report.bytes_missing);
        let missing = if report.bytes_missing > 0 {
            format!(
                ", and the file ends {} bytes before its header says its data does",
                report.bytes_missing
            )
        } else {
            String::new()
        };
        eprintln!(
            "kvmtrace: warning: finished with skipped data ({}); {in_file} of {} input bytes could not be read{missing}",
            counts.join(", "),
            report.input_bytes
        );
        return Ok(EXIT_WARNINGS);
    }
    Ok(EXIT_OK)
}
