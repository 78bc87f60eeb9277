//! `kvmtrace bundle`.

use std::path::PathBuf;

use anyhow::Context;

use crate::{EXIT_OK, EXIT_WARNINGS};

/// Collect a guest symbol bundle: run this INSIDE the guest (as root), copy the result to the host.
///
/// The bundle holds what the host needs to name the guest's addresses: /proc/kallsyms,
/// /proc/modules, the kernel build id (/sys/kernel/notes), optionally a vmlinux with DWARF and
/// .ko files, and every ELF file mapped by the chosen processes, stored once by build id with
/// its separate debug file when one is found. A directory, or one file when OUTPUT ends in
/// .tar.zst. It works the same on any Linux machine.
#[derive(clap::Args)]
#[command(after_help = "EXAMPLES:\n  \
    sudo kvmtrace bundle -o guest.bundle.tar.zst                      # kernel symbols only\n  \
    sudo kvmtrace bundle -o guest.bundle.tar.zst --all-running        # + every running program\n  \
    sudo kvmtrace bundle -o web.bundle --binaries-of $(pidof nginx) --vmlinux /usr/lib/debug/boot/vmlinux-$(uname -r)\n\n\
    Then, on the host (VM: the VMM's pid or process name, as `kvmtrace info` shows):\n  \
    kvmtrace ingest host.perf.data -o ds --guest-symbols VM=guest.bundle.tar.zst\n\n\
    Run it as root: with kernel.kptr_restrict set (or as a user), /proc/kallsyms shows only zero\n\
    addresses and guest kernel frames cannot be named; the command warns and exits 1 then.")]
pub(crate) struct Args {
    /// The bundle to write: a directory, or one file when the name ends in .tar.zst. Must not exist.
    #[arg(short, long, value_name = "OUTPUT")]
    output: PathBuf,
    /// Collect the ELF files (executables, shared libraries) mapped by these processes.
    #[arg(long = "binaries-of", value_name = "PID", num_args = 1..)]
    binaries_of: Vec<u32>,
    /// Collect the ELF files mapped by every running process (can be large).
    #[arg(long = "all-running", conflicts_with = "binaries_of")]
    all_running: bool,
    /// Include this kernel image (with DWARF, guest kernel frames get lines and inlined frames).
    #[arg(long, value_name = "PATH")]
    vmlinux: Option<PathBuf>,
    /// Include this kernel module file (.ko) as kmod/<name>. Repeatable.
    #[arg(long = "module", value_name = "PATH")]
    modules: Vec<PathBuf>,
    /// The VM's name in the manifest (default: this machine's hostname).
    #[arg(long, value_name = "NAME")]
    vm: Option<String>,
    /// Where to look for separate debug files of the binaries (default /usr/lib/debug). Repeatable.
    #[arg(long = "debug-dir", value_name = "DIR")]
    debug_dirs: Vec<PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<u8> {
    let mut opts = kvmtrace_ingest::symbols::CollectOptions::default();
    opts.output = args.output.clone();
    opts.vm = args.vm.clone().unwrap_or_default();
    opts.pids = args.binaries_of.clone();
    opts.all_running = args.all_running;
    opts.vmlinux = args.vmlinux.clone();
    opts.kernel_module_files = args.modules.clone();
    opts.debug_dirs = args.debug_dirs.clone();
    let report = kvmtrace_ingest::symbols::collect_bundle(&opts)
        .with_context(|| format!("writing bundle {}", args.output.display()))?;
    let m = &report.manifest;
    eprintln!(
        "kvmtrace: {}: vm {}, kernel {} ({}), build id {}, {} kallsyms lines, {} modules, {} binaries ({} debug files), {} bytes",
        report.output.display(),
        m.vm,
        m.kernel_release,
        m.architecture,
        m.kernel_build_id.as_deref().unwrap_or("unknown"),
        report.n_kallsyms,
        report.n_modules,
        m.binaries.len(),
        report.n_debug_files,
        report.n_bytes
    );
    for s in &report.skipped {
        eprintln!("kvmtrace: warning: {} not included: {}", s.path, s.reason);
    }
    if report.kallsyms_restricted {
        eprintln!(
            "kvmtrace: warning: /proc/kallsyms shows only zero addresses (kernel.kptr_restrict, or not \
             root): this bundle cannot name guest kernel frames; rerun as root, after \
             `sysctl kernel.kptr_restrict=0` if needed"
        );
        return Ok(EXIT_WARNINGS);
    }
    Ok(EXIT_OK)
}
