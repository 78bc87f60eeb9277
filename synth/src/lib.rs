//! `kvmtrace-synth`: a generator of genuine perf.data files of a KVM host and
//! its guests whose ground truth is known.
//!
//! [`run`] writes into `Options::out_dir`:
//!
//! * `host.perf.data` — what `perf kvm --host --guest record -a -g -e
//!   kvm:kvm_exit -e kvm:kvm_entry -e kvm:kvm_userspace_exit -e kvm:kvm_pio -e
//!   kvm:kvm_mmio -e kvm:kvm_msr -e kvm:kvm_write_tsc_offset -e
//!   sched:sched_switch -e cpu-clock` records on a QEMU/KVM host (perf 6.1
//!   layout, real tracepoint formats in TRACING_DATA, CPUID header selecting
//!   VMX or SVM exit tables), plus `host.kallsyms` (a subset of a real
//!   kallsyms) and `host-root/` (QEMU and libc ELFs with symbol tables);
//! * `guest-N.perf.data` — what `perf record -a -g` inside guest N records,
//!   on the guest clock (`guest_tsc = host_tsc * 1.0 + tsc_offset`);
//! * `guest-N.bundle/` — `manifest.json`, `kallsyms`, `modules` and
//!   `binaries/<build-id>/guestapp`;
//! * `truth.json` and `folded.txt` — the expected analysis results.
//!
//! # Folded stack naming rules (`folded.txt`)
//!
//! One line `frame;frame;... count` per distinct stack, sorted bytewise;
//! count = number of host `cpu-clock` samples (tracepoint samples are not
//! counted). Frames are root first.
//!
//! * Samples of threads that are not vCPU threads:
//!   `<comm>;<frames>` as `inferno-collapse-perf` folds `perf script` output:
//!   spaces in comm become `_`, a frame is the symbol name without `+offset`,
//!   an unresolved frame is `[<dso basename>]` (e.g. `[sshd]`).
//! * Samples of a vCPU thread (`CPU n/KVM` of VM `guest-N`):
//!   * in guest mode: `VM guest-N;vCPU n;<guest frames>` — the stack of the
//!     matching guest-side sample, user frames then kernel frames;
//!   * inside an exit: `VM guest-N;vCPU n;<guest symbol of guest_rip>;[exit
//!     <reason name>];<host frames>` where host frames are the sample's own
//!     callchain reversed (QEMU user frames then host kernel frames), context
//!     markers removed, and the reason name is the one perf prints for the
//!     ISA (`EPT_VIOLATION`, `npf`, ...);
//!   * outside any exit (setup before the first `kvm_entry`):
//!     `VM guest-N;vCPU n;<host frames>`.
//! * While a vCPU thread is scheduled out (HLT), its CPU runs `swapper`,
//!   folded as `swapper;<idle frames>`.
//!
//! # truth.json
//!
//! `seed`, `isa`, `freq`, `seconds`; `host` (hostname, nr_cpus, kallsyms,
//! sysroot, time_zero and tsc_hz of TIME_CONV, start/end ns); `vms[]` (name,
//! QEMU pid, comm, tsc_offset (signed; guest_tsc = host_tsc + offset),
//! tsc_scale, guest_time_zero, guest_samples, `vcpus[]` with tid and host
//! CPU); `events` (samples per host event); `exits` (total, open_at_end,
//! open_by_reason, by_reason with count/total/min/max/mean/p50/p90/p99 in ns —
//! percentile p = sorted\[floor(q (n-1))\], duration = kvm_entry.time −
//! kvm_exit.time —, by_vm_vcpu, by_vm_vcpu_reason, by_vm_guest_symbol: count
//! and total_ns per VM and guest function at the exit's guest_rip, `guest_kernel` false for a
//! guest user function); `perf_kvm_stat`,
//! `perf_kvm_stat_ioport`, `perf_kvm_stat_mmio` (what `perf kvm stat report
//! --event=vmexit|ioport|mmio` prints, as strings with 2 decimals); `samples`
//! (host cpu-clock samples: host_total = guest_mode + in_exit_kernel +
//! in_exit_vmm + other); `folded` (the file name of folded.txt).
//!
//! # Example
//!
//! ```no_run
//! let mut opts = kvmtrace_synth::Options::default();
//! opts.out_dir = "/tmp/synth".into();
//! opts.seconds = 0.5;
//! let report = kvmtrace_synth::run(&opts)?;
//! assert!(report.exits > 0);
//! # Ok::<(), kvmtrace_synth::Error>(())
//! ```
#![deny(missing_docs)]

mod elf;
mod error;
mod model;
mod perf;
mod rng;
mod sim;
mod tracing;
mod truth;

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

pub use error::Error;

use crate::model::{GuestSymbols, HostKernel, UserMap, host};
use crate::perf::{Evsel, PerfWriter, SampleId, TimeConv, body, feat, flag};
use crate::sim::{Acc, Ev, Scenario, Sinks, Source, TEv, VmStacks};
use crate::tracing::{Tp, TpFormat};

/// Virtualization extension whose exit codes are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isa {
    /// Intel VT-x (`GenuineIntel` CPUID header, VMX exit reasons, isa=1).
    #[default]
    Vmx,
    /// AMD-V (`AuthenticAMD` CPUID header, SVM exit codes, isa=2).
    Svm,
}

impl Isa {
    /// "vmx" or "svm".
    pub fn as_str(self) -> &'static str {
        match self {
            Isa::Vmx => "vmx",
            Isa::Svm => "svm",
        }
    }
}

impl std::str::FromStr for Isa {
    type Err = Error;
    fn from_str(s: &str) -> Result<Isa, Error> {
        match s.to_ascii_lowercase().as_str() {
            "vmx" | "intel" => Ok(Isa::Vmx),
            "svm" | "amd" => Ok(Isa::Svm),
            _ => Err(Error::InvalidOptions(format!(
                "unknown isa {s:?} (vmx|svm)"
            ))),
        }
    }
}

/// Scenario parameters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Output directory (created if missing).
    pub out_dir: PathBuf,
    /// Number of VMs (QEMU processes).
    pub vms: u32,
    /// vCPUs per VM.
    pub vcpus: u32,
    /// Recording length in seconds.
    pub seconds: f64,
    /// cpu-clock sampling frequency in Hz (host and guests).
    pub freq: u32,
    /// VMX or SVM.
    pub isa: Isa,
    /// PRNG seed; the output is a pure function of the options.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            out_dir: PathBuf::from("synth-out"),
            vms: 2,
            vcpus: 4,
            seconds: 10.0,
            freq: 4000,
            isa: Isa::Vmx,
            seed: 1,
        }
    }
}

/// What [`run`] wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// Every file written (perf.data files, truth, folded, bundles, ELFs).
    pub files: Vec<PathBuf>,
    /// Size of host.perf.data in bytes.
    pub host_bytes: u64,
    /// Closed exits (kvm_exit with its kvm_entry in the file).
    pub exits: u64,
    /// Exits still open at the end of the recording.
    pub open_at_end: u64,
    /// Host cpu-clock samples.
    pub host_samples: u64,
    /// Guest cpu-clock samples, all VMs.
    pub guest_samples: u64,
}

/// The host kernel release the shipped host.kallsyms comes from.
pub(crate) const HOST_OSRELEASE: &str = "6.18.44-fc-v782";
/// Guest kernel release written to the bundles and guest headers.
pub(crate) const GUEST_OSRELEASE: &str = "6.1.0-27-amd64";
pub(crate) const PERF_VERSION: &str = "6.1.187";
pub(crate) const HOSTNAME: &str = "kvmhost-synth";
const T_START: u64 = 4_321_000_000_000;
const HOST_TIME_ZERO: u64 = 12_345_678;

fn write_file(path: &Path, data: &[u8], files: &mut Vec<PathBuf>) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    fs::write(path, data).map_err(Error::io(path))?;
    files.push(path.to_path_buf());
    Ok(())
}

fn validate(o: &Options) -> Result<(), Error> {
    if o.vms == 0 || o.vms > 64 {
        return Err(Error::InvalidOptions("vms must be 1..=64".into()));
    }
    if o.vcpus == 0 || o.vcpus > 64 {
        return Err(Error::InvalidOptions("vcpus must be 1..=64".into()));
    }
    if !(o.seconds.is_finite() && o.seconds > 0.0 && o.seconds <= 86_400.0) {
        return Err(Error::InvalidOptions(
            "seconds must be in (0, 86400]".into(),
        ));
    }
    if o.freq == 0 || o.freq > 100_000 {
        return Err(Error::InvalidOptions("freq must be 1..=100000".into()));
    }
    Ok(())
}

fn cpuid(isa: Isa) -> (&'static str, &'static str, &'static str) {
    match isa {
        Isa::Vmx => (
            "GenuineIntel,6,85,4",
            "Intel(R) Xeon(R) Gold 6138 CPU @ 2.00GHz",
            "Intel Xeon Processor (Skylake, IBRS)",
        ),
        Isa::Svm => (
            "AuthenticAMD,25,1,1",
            "AMD EPYC 7713 64-Core Processor",
            "AMD EPYC-Milan Processor",
        ),
    }
}

fn round_page(n: u64) -> u64 {
    (n + 0xfff) & !0xfff
}

/// Generates the scenario described by `opts` into `opts.out_dir`.
pub fn run(opts: &Options) -> Result<Report, Error> {
    validate(opts)?;
    let out = &opts.out_dir;
    fs::create_dir_all(out).map_err(Error::io(out))?;
    let mut files = Vec::new();
    let isa = opts.isa;
    let nr_vcpus = opts.vms * opts.vcpus;
    let nr_cpus = nr_vcpus + 2;
    let period = (1_000_000_000 / u64::from(opts.freq)).max(1);
    let t_end = T_START + (opts.seconds * 1e9).round() as u64;

    // Static images.
    let kernel = HostKernel::parse()?;
    let qemu_img = elf::build("qemu-system-x86_64-8.2.2", false, model::QEMU_FUNCS);
    let libc_img = elf::build("libc.so.6-2.36", false, model::LIBC_FUNCS);
    let guest_syms = GuestSymbols::new();
    write_file(
        &out.join("host.kallsyms"),
        model::HOST_KALLSYMS.as_bytes(),
        &mut files,
    )?;
    write_file(
        &out.join("host-root").join(&model::QEMU_PATH[1..]),
        &qemu_img.bytes,
        &mut files,
    )?;
    write_file(
        &out.join("host-root").join(&model::LIBC_PATH[1..]),
        &libc_img.bytes,
        &mut files,
    )?;

    let mut comms: Vec<String> = Vec::new();
    let swapper_comms: Vec<u32> = (0..nr_cpus)
        .map(|c| Scenario::comm_id(&mut comms, &format!("swapper/{c}")))
        .collect();
    let mut stacks = Vec::new();
    let host_libc = UserMap {
        start: 0x7f5e_2a62_8000 + elf::TEXT_OFFSET,
        image: Some(libc_img.clone()),
    };
    let add = |stacks: &mut Vec<_>,
               q: Option<&UserMap>,
               l: &UserMap,
               specs: Vec<model::StackSpec>|
     -> Result<Vec<u32>, Error> {
        specs
            .iter()
            .map(|s| Scenario::add_stack(stacks, &kernel, q, l, s))
            .collect()
    };
    let idle_stacks = add(&mut stacks, None, &host_libc, host::idle())?;
    let idle_switch_out = add(
        &mut stacks,
        None,
        &host_libc,
        vec![host::tp_switch_idle_out()],
    )?[0];
    let sshd_stacks = add(&mut stacks, None, &host_libc, host::sshd())?;
    let sshd_user = host::sshd()[1].user.clone();
    let sshd_switch = add(
        &mut stacks,
        None,
        &host_libc,
        vec![host::tp_switch_task_out(&sshd_user)],
    )?[0];
    let kworker_stacks = add(&mut stacks, None, &host_libc, host::kworker())?;
    let sshd_comm = Scenario::comm_id(&mut comms, "sshd");
    let kworker_comm = Scenario::comm_id(&mut comms, &format!("kworker/{}:1", nr_cpus - 1));
    let qemu_comm = Scenario::comm_id(&mut comms, "qemu-system-x86");
    let io_comm = Scenario::comm_id(&mut comms, "IO iothread0");
    let vcpu_comms: Vec<u32> = (0..opts.vcpus)
        .map(|n| Scenario::comm_id(&mut comms, &format!("CPU {n}/KVM")))
        .collect();
    let systemd_comm = Scenario::comm_id(&mut comms, "systemd");
    let kthreadd_comm = Scenario::comm_id(&mut comms, "kthreadd");
    let libvirtd_comm = Scenario::comm_id(&mut comms, "libvirtd");

    let mut vms = Vec::new();
    for v in 0..opts.vms {
        let vi = u64::from(v);
        let pid = 3100 + 100 * v as i32;
        let qemu = UserMap {
            start: 0x55d4_c8a0_0000 + vi * 0x1_2340_0000 + elf::TEXT_OFFSET,
            image: Some(qemu_img.clone()),
        };
        let libc = UserMap {
            start: 0x7f3a_1c20_0000 + vi * 0x10_0000_0000 + elf::TEXT_OFFSET,
            image: Some(libc_img.clone()),
        };
        let mut st = VmStacks::default();
        for kind in model::EXIT_KINDS {
            let (k, q, r) = model::exit_stacks(kind);
            st.exit_kernel
                .push(add(&mut stacks, Some(&qemu), &libc, k)?);
            st.exit_vmm.push(add(&mut stacks, Some(&qemu), &libc, q)?);
            st.exit_reentry
                .push(add(&mut stacks, Some(&qemu), &libc, r)?);
        }
        let mut one = |s: model::StackSpec| -> Result<u32, Error> {
            Scenario::add_stack(&mut stacks, &kernel, Some(&qemu), &libc, &s)
        };
        st.tp_exit = one(host::tp_exit())?;
        st.tp_entry = one(host::tp_entry())?;
        st.tp_pio = one(host::tp_pio())?;
        st.tp_mmio = one(host::tp_mmio())?;
        st.tp_mmio_complete = one(host::tp_mmio_complete())?;
        st.tp_msr_w = one(host::tp_msr(true))?;
        st.tp_msr_r = one(host::tp_msr(false))?;
        st.tp_uexit = one(host::tp_userspace_exit())?;
        st.tp_tsc = one(host::tp_tsc_offset())?;
        st.tp_switch_out = one(host::tp_switch_vcpu_out())?;
        st.main_switch_out = one(host::tp_switch_task_out(&host::QEMU_MAIN_USER))?;
        st.io_switch_out = one(host::tp_switch_task_out(&host::QEMU_IO_TAIL[..5]))?;
        st.setup = add(&mut stacks, Some(&qemu), &libc, host::vcpu_setup())?;
        st.main = add(&mut stacks, Some(&qemu), &libc, host::qemu_main())?;
        st.io = add(&mut stacks, Some(&qemu), &libc, host::qemu_io())?;
        // Guest booted (300 + 37 v) s before the recording; guest TSC 0 at boot.
        let boot_ns = T_START - (300 + 37 * vi) * 1_000_000_000;
        let tsc_offset = -2 * (boot_ns as i64 - HOST_TIME_ZERO as i64);
        vms.push(sim::Vm {
            name: format!("guest-{v}"),
            pid,
            created: T_START + 2_000_000 + vi * 1_000_000,
            tsc_offset,
            guest_time_zero: 987_654_000 + 2 * vi,
            qemu,
            libc,
            stacks: st,
            vcpu_tids: (0..opts.vcpus).map(|n| pid + 2 + n as i32).collect(),
        });
    }
    let templates = model::guest_templates();
    let guest_stacks = templates
        .iter()
        .map(|t| guest_syms.resolve(t))
        .collect::<Result<Vec<_>, _>>()?;
    let formats = Tp::ALL
        .iter()
        .map(|t| TpFormat::parse(*t))
        .collect::<Result<Vec<_>, _>>()?;
    let sc = Scenario {
        isa,
        seed: opts.seed,
        nr_cpus,
        vcpus: opts.vcpus,
        period,
        t_start: T_START,
        t_end,
        host_time_zero: HOST_TIME_ZERO,
        kernel,
        vms,
        stacks,
        templates,
        guest_stacks,
        guest_syms,
        formats,
        comms,
        idle_stacks,
        idle_switch_out,
        sshd: sim::HostTask {
            pid: sim::SSHD_PID,
            tid: sim::SSHD_PID,
            comm: sshd_comm,
            stacks: sshd_stacks,
            switch_out: sshd_switch,
        },
        kworker: sim::HostTask {
            pid: sim::KWORKER_PID,
            tid: sim::KWORKER_PID,
            comm: kworker_comm,
            stacks: kworker_stacks.clone(),
            switch_out: kworker_stacks[0],
        },
        libvirtd_pid: sim::LIBVIRTD_PID,
        host_libc,
    };

    // Bundles.
    let guest_kernel_build_id = elf::build_id_of(&format!("vmlinux-{GUEST_OSRELEASE}"));
    for vm in &sc.vms {
        truth::write_bundle(
            out,
            &vm.name,
            &sc.guest_syms,
            &guest_kernel_build_id,
            &mut files,
        )?;
    }

    // Host writer.
    let (cpuid_str, cpudesc, guest_cpudesc) = cpuid(isa);
    let mut evsels = Vec::new();
    let mut next_id = 5000u64;
    let mut ids = |n: u32| -> Vec<u64> {
        let v: Vec<u64> = (0..u64::from(n)).map(|i| next_id + i).collect();
        next_id += u64::from(n);
        v
    };
    let tp_st = perf::SAMPLE_IP
        | perf::SAMPLE_TID
        | perf::SAMPLE_TIME
        | perf::SAMPLE_CALLCHAIN
        | perf::SAMPLE_CPU
        | perf::SAMPLE_PERIOD
        | perf::SAMPLE_IDENTIFIER;
    for (i, tp) in Tp::ALL.iter().enumerate() {
        evsels.push(Evsel {
            name: tp.full_name(),
            type_: perf::PERF_TYPE_TRACEPOINT,
            config: u64::from(sc.formats[i].id),
            period_or_freq: 1,
            sample_type: tp_st | perf::SAMPLE_RAW,
            flags: flag::DISABLED | flag::INHERIT | flag::SAMPLE_ID_ALL,
            ids: ids(nr_cpus),
        });
    }
    let clock = |ids: Vec<u64>| Evsel {
        name: "cpu-clock".into(),
        type_: perf::PERF_TYPE_SOFTWARE,
        config: perf::PERF_COUNT_SW_CPU_CLOCK,
        period_or_freq: u64::from(opts.freq),
        sample_type: tp_st,
        flags: flag::DISABLED | flag::INHERIT | flag::FREQ | flag::SAMPLE_ID_ALL,
        ids,
    };
    let dummy = |ids: Vec<u64>| Evsel {
        name: "dummy:HG".into(),
        type_: perf::PERF_TYPE_SOFTWARE,
        config: perf::PERF_COUNT_SW_DUMMY,
        period_or_freq: 1,
        sample_type: tp_st & !perf::SAMPLE_PERIOD,
        flags: flag::INHERIT
            | flag::MMAP
            | flag::COMM
            | flag::TASK
            | flag::SAMPLE_ID_ALL
            | flag::MMAP2
            | flag::COMM_EXEC
            | flag::KSYMBOL
            | flag::BPF_EVENT,
        ids,
    };
    evsels.push(clock(ids(nr_cpus)));
    evsels.push(dummy(ids(nr_cpus)));
    let host_path = out.join("host.perf.data");
    let mut host_w = PerfWriter::create(&host_path, evsels)?;
    host_w.id_index()?;
    host_w.time_conv(&TimeConv {
        time_shift: 31,
        time_mult: 1 << 30,
        time_zero: HOST_TIME_ZERO,
    })?;

    // Guest writers.
    let mut guest_ws = Vec::new();
    for (gi, vm) in sc.vms.iter().enumerate() {
        let mut gid = 100_000 + 1000 * gi as u64;
        let mut gids = |n: u32| -> Vec<u64> {
            let v: Vec<u64> = (0..u64::from(n)).map(|i| gid + i).collect();
            gid += u64::from(n);
            v
        };
        let ev = vec![clock(gids(opts.vcpus)), dummy(gids(opts.vcpus))];
        let p = out.join(format!("{}.perf.data", vm.name));
        let mut w = PerfWriter::create(&p, ev)?;
        w.id_index()?;
        w.time_conv(&TimeConv {
            time_shift: 31,
            time_mult: 1 << 30,
            time_zero: vm.guest_time_zero,
        })?;
        let sid = |pid: i32, tid: i32| SampleId {
            pid,
            tid,
            time: 0,
            cpu: 0,
            id: 0,
        };
        w.kernel_mmap(
            &sid(-1, 0),
            model::GUEST_KERNEL_BASE,
            sc.guest_syms.kernel_end - model::GUEST_KERNEL_BASE,
        )?;
        for n in 0..opts.vcpus {
            let k = 40 + n as i32;
            w.fork(&sid(k, k), 2, 2)?;
            w.comm(&sid(k, k), &format!("kworker/{n}:1"), false)?;
        }
        let app = sim::GUESTAPP_PID;
        w.fork(&sid(app, app), 1, 1)?;
        w.comm(&sid(app, app), "guestapp", true)?;
        w.mmap2(
            &sid(app, app),
            sc.guest_syms.app.base + elf::TEXT_OFFSET,
            round_page(sc.guest_syms.app.text_size),
            elf::TEXT_OFFSET,
            0x2_0000 + gi as u64,
            model::GUESTAPP_PATH,
        )?;
        for n in 1..opts.vcpus {
            w.fork(&sid(app, app + n as i32), app, app)?;
            w.comm(&sid(app, app + n as i32), "guestapp", false)?;
        }
        w.finished_init()?;
        guest_ws.push(w);
    }
    let mut sinks = Sinks::new(host_w, guest_ws);

    // Synthesized host sideband (time 0), then FINISHED_INIT.
    let synth = |ev: Ev| TEv {
        time: 0,
        cpu: 0,
        synthesized: true,
        ev,
    };
    let mut pre = vec![synth(Ev::KernelMmap)];
    for (pid, ppid, comm) in [
        (1, 0, systemd_comm),
        (2, 0, kthreadd_comm),
        (sim::KWORKER_PID, 2, kworker_comm),
        (sim::LIBVIRTD_PID, 1, libvirtd_comm),
        (sim::SSHD_PID, 1, sshd_comm),
    ] {
        pre.push(synth(Ev::Fork {
            pid,
            ppid,
            tid: pid,
            ptid: ppid,
        }));
        pre.push(synth(Ev::Comm {
            pid,
            tid: pid,
            comm,
            exec: false,
        }));
        if pid == sim::SSHD_PID || pid == sim::LIBVIRTD_PID {
            let path = if pid == sim::SSHD_PID {
                "/usr/sbin/sshd"
            } else {
                "/usr/sbin/libvirtd"
            };
            let start = if pid == sim::SSHD_PID {
                0x5612_3450_0000
            } else {
                0x55aa_0010_0000
            };
            pre.push(synth(Ev::Mmap2 {
                pid,
                start,
                len: 0x10_0000,
                path,
            }));
            pre.push(synth(Ev::Mmap2 {
                pid,
                start: sc.host_libc.start,
                len: round_page(libc_img.text_size),
                path: model::LIBC_PATH,
            }));
        }
    }
    for e in &pre {
        sinks.write(&sc, e)?;
    }
    sinks.host.finished_init()?;

    // VM creation sideband.
    let misc_a = nr_cpus - 2;
    let mut list = VecDeque::new();
    for vm in &sc.vms {
        let t = vm.created;
        let ev = |dt: u64, ev: Ev| TEv {
            time: t + dt,
            cpu: misc_a,
            synthesized: false,
            ev,
        };
        list.push_back(ev(
            0,
            Ev::Fork {
                pid: vm.pid,
                ppid: sc.libvirtd_pid,
                tid: vm.pid,
                ptid: sc.libvirtd_pid,
            },
        ));
        list.push_back(ev(
            20_000,
            Ev::Comm {
                pid: vm.pid,
                tid: vm.pid,
                comm: qemu_comm,
                exec: true,
            },
        ));
        list.push_back(ev(
            30_000,
            Ev::Mmap2 {
                pid: vm.pid,
                start: vm.qemu.start,
                len: round_page(qemu_img.text_size),
                path: model::QEMU_PATH,
            },
        ));
        list.push_back(ev(
            35_000,
            Ev::Mmap2 {
                pid: vm.pid,
                start: vm.libc.start,
                len: round_page(libc_img.text_size),
                path: model::LIBC_PATH,
            },
        ));
        list.push_back(ev(
            60_000,
            Ev::Fork {
                pid: vm.pid,
                ppid: vm.pid,
                tid: vm.pid + 1,
                ptid: vm.pid,
            },
        ));
        list.push_back(ev(
            65_000,
            Ev::Comm {
                pid: vm.pid,
                tid: vm.pid + 1,
                comm: io_comm,
                exec: false,
            },
        ));
    }
    list.retain(|e| e.time < t_end);
    let mut sources = vec![Source::List(list)];
    for v in 0..opts.vms as usize {
        for n in 0..opts.vcpus {
            let cpu = v as u32 * opts.vcpus + n;
            sources.push(Source::Vcpu(Box::new(sim::VcpuGen::new(
                &sc,
                v,
                n,
                vcpu_comms[n as usize],
                swapper_comms[cpu as usize],
            ))));
        }
    }
    let misc_comms: Vec<(u32, u32)> = sc.vms.iter().map(|_| (qemu_comm, io_comm)).collect();
    for which in 0..2 {
        sources.push(Source::Misc(Box::new(sim::MiscGen::new(
            &sc,
            which,
            swapper_comms[(nr_cpus - 2 + which) as usize],
            &misc_comms,
        ))));
    }
    let mut acc = Acc {
        guest_samples: vec![0; sc.vms.len()],
        ..Acc::default()
    };
    log::info!(
        "generating {} VMs x {} vCPUs, {} s, isa {}",
        opts.vms,
        opts.vcpus,
        opts.seconds,
        isa.as_str()
    );
    sim::run_merge(&sc, sources, &mut sinks, &mut acc)?;

    // Finish files.
    let Sinks {
        host: mut host_w,
        guests,
        ..
    } = sinks;
    host_w.finished_round()?;
    let host_counts: Vec<(String, u64)> = host_w
        .evsels()
        .iter()
        .map(|e| e.name.clone())
        .zip(host_w.samples_per_evsel.iter().copied())
        .collect();
    let mut bid = Vec::new();
    body::build_id(
        &mut bid,
        perf::MISC_USER,
        -1,
        &qemu_img.build_id,
        model::QEMU_PATH,
    );
    body::build_id(
        &mut bid,
        perf::MISC_USER,
        -1,
        &libc_img.build_id,
        model::LIBC_PATH,
    );
    let mut cmd = vec![
        "/usr/bin/perf",
        "kvm",
        "--host",
        "--guest",
        "record",
        "-a",
        "-g",
    ];
    for tp in Tp::ALL {
        cmd.push("-e");
        cmd.push(match tp {
            Tp::KvmExit => "kvm:kvm_exit",
            Tp::KvmEntry => "kvm:kvm_entry",
            Tp::KvmUserspaceExit => "kvm:kvm_userspace_exit",
            Tp::KvmPio => "kvm:kvm_pio",
            Tp::KvmMmio => "kvm:kvm_mmio",
            Tp::KvmMsr => "kvm:kvm_msr",
            Tp::KvmWriteTscOffset => "kvm:kvm_write_tsc_offset",
            Tp::SchedSwitch => "sched:sched_switch",
        });
    }
    cmd.extend_from_slice(&["-e", "cpu-clock"]);
    let total_mem = 263_921_344u64.to_le_bytes().to_vec();
    let host_features = vec![
        (feat::TRACING_DATA, tracing::tracing_data(&Tp::ALL)),
        (feat::BUILD_ID, bid),
        (feat::HOSTNAME, body::string_only(HOSTNAME)),
        (feat::OSRELEASE, body::string_only(HOST_OSRELEASE)),
        (feat::VERSION, body::string_only(PERF_VERSION)),
        (feat::ARCH, body::string_only("x86_64")),
        (feat::NRCPUS, body::nrcpus(nr_cpus)),
        (feat::CPUDESC, body::string_only(cpudesc)),
        (feat::CPUID, body::string_only(cpuid_str)),
        (feat::TOTAL_MEM, total_mem),
        (feat::CMDLINE, body::cmdline(&cmd)),
        (feat::EVENT_DESC, body::event_desc(host_w.evsels())),
    ];
    let host_bytes = host_w.finish(host_features)?;
    files.push(host_path);
    let mut guest_counts = Vec::new();
    for (gi, mut w) in guests.into_iter().enumerate() {
        w.finished_round()?;
        guest_counts.push(w.samples_per_evsel.first().copied().unwrap_or(0));
        let mut bid = Vec::new();
        body::build_id(
            &mut bid,
            perf::MISC_KERNEL,
            -1,
            &guest_kernel_build_id,
            "[kernel.kallsyms]",
        );
        body::build_id(
            &mut bid,
            perf::MISC_USER,
            -1,
            &sc.guest_syms.app.build_id,
            model::GUESTAPP_PATH,
        );
        let name = sc.vms[gi].name.clone();
        let features = vec![
            (feat::BUILD_ID, bid),
            (feat::HOSTNAME, body::string_only(&name)),
            (feat::OSRELEASE, body::string_only(GUEST_OSRELEASE)),
            (feat::VERSION, body::string_only(PERF_VERSION)),
            (feat::ARCH, body::string_only("x86_64")),
            (feat::NRCPUS, body::nrcpus(opts.vcpus)),
            (feat::CPUDESC, body::string_only(guest_cpudesc)),
            (feat::CPUID, body::string_only(cpuid_str)),
            (feat::TOTAL_MEM, 4_026_532u64.to_le_bytes().to_vec()),
            (
                feat::CMDLINE,
                body::cmdline(&[
                    "/usr/bin/perf",
                    "record",
                    "-a",
                    "-g",
                    "-o",
                    "guest.perf.data",
                ]),
            ),
            (feat::EVENT_DESC, body::event_desc(w.evsels())),
        ];
        w.finish(features)?;
        files.push(out.join(format!("{name}.perf.data")));
    }

    let exits: u64 = acc.durations.values().map(|v| v.len() as u64).sum();
    let report = Report {
        files: Vec::new(),
        host_bytes,
        exits,
        open_at_end: acc.open_at_end,
        host_samples: acc.host_total,
        guest_samples: acc.guest_samples.iter().sum(),
    };
    truth::write_truth(
        out,
        opts,
        &sc,
        &mut acc,
        &host_counts,
        &guest_counts,
        &mut files,
    )?;
    log::info!(
        "wrote {} bytes of host.perf.data, {} exits",
        host_bytes,
        exits
    );
    Ok(Report { files, ..report })
}
