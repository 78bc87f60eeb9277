//! `kvmtrace synth`.

use std::path::PathBuf;

use anyhow::Context;

use crate::EXIT_OK;

/// Generate genuine perf.data recordings of a QEMU/KVM host and its guests whose truth is known.
///
/// Writes DIR/host.perf.data (what `perf kvm --host --guest record -a -g -e kvm:kvm_exit
/// -e kvm:kvm_entry …` records: kvm_exit/kvm_entry pairs with a realistic reason mix and
/// heavy-tailed durations, userspace exits, HLT with the vCPU scheduled out, host and
/// guest-mode cpu-clock samples), DIR/guest-N.perf.data (what `perf record -a -g` records
/// inside guest N, on the guest clock), DIR/guest-N.bundle (guest symbols), DIR/host.kallsyms,
/// DIR/host-root (QEMU/libc ELFs for --symfs), DIR/truth.json and DIR/folded.txt.
/// Real `perf script` and `perf kvm stat report` read every file. Deterministic per seed.
///
/// Example: kvmtrace synth -o /tmp/s --vms 2 --vcpus 4 --seconds 10 --isa svm
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Output directory.
    #[arg(short, long)]
    output: PathBuf,
    /// Number of VMs.
    #[arg(long, default_value_t = 2)]
    vms: u32,
    /// vCPUs per VM.
    #[arg(long, default_value_t = 4)]
    vcpus: u32,
    /// Recording length in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// cpu-clock sampling frequency (Hz).
    #[arg(long, default_value_t = 4000)]
    freq: u32,
    /// vmx (Intel, CPUID GenuineIntel) or svm (AMD).
    #[arg(long, default_value = "vmx")]
    isa: kvmtrace_synth::Isa,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(crate) fn run(args: Args) -> anyhow::Result<u8> {
    let mut o = kvmtrace_synth::Options::default();
    o.out_dir = args.output.clone();
    o.vms = args.vms;
    o.vcpus = args.vcpus;
    o.seconds = args.seconds;
    o.freq = args.freq;
    o.isa = args.isa;
    o.seed = args.seed;
    let report = kvmtrace_synth::run(&o)
        .with_context(|| format!("generating into {}", args.output.display()))?;
    eprintln!(
        "kvmtrace: wrote {} ({} bytes host.perf.data, {} exits, {} host samples, {} guest samples)",
        args.output.display(),
        report.host_bytes,
        report.exits,
        report.host_samples,
        report.guest_samples
    );
    Ok(EXIT_OK)
}
