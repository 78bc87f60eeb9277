//! The timeline generator: one source per host CPU produces time-ordered
//! events, a k-way merge writes them to the host file and the guest files,
//! and the truth is accumulated from the model as events are generated.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use crate::Isa;
use crate::error::Error;
use crate::model::{
    self, EXIT_KINDS, ExitKind, GuestStack, GuestSymbols, GuestTask, GuestTemplate, HostKernel,
    HostStack, StackSpec, UserMap,
};
use crate::perf::{
    MISC_GUEST_KERNEL, MISC_GUEST_USER, MISC_KERNEL, MISC_USER, PERF_CONTEXT_KERNEL,
    PERF_CONTEXT_USER, PerfWriter, SampleId,
};
use crate::rng::Rng;
use crate::tracing::{Tp, TpFormat};

/// Evsel indices of the host file (order of the perf command line).
pub(crate) const EV_CPU_CLOCK: usize = 8;
pub(crate) const EV_DUMMY: usize = 9;

pub(crate) fn tp_evsel(tp: Tp) -> usize {
    Tp::ALL.iter().position(|t| *t == tp).unwrap_or(0)
}

/// Guest file evsels.
pub(crate) const GEV_CPU_CLOCK: usize = 0;

/// Per-VM constants.
#[derive(Debug, Clone)]
pub(crate) struct Vm {
    pub(crate) name: String,
    pub(crate) pid: i32,
    pub(crate) created: u64,
    pub(crate) tsc_offset: i64,
    pub(crate) guest_time_zero: u64,
    pub(crate) qemu: UserMap,
    pub(crate) libc: UserMap,
    pub(crate) stacks: VmStacks,
    pub(crate) vcpu_tids: Vec<i32>,
}

/// Stack ids (indices into `Scenario::stacks`) of one QEMU process.
#[derive(Debug, Clone, Default)]
pub(crate) struct VmStacks {
    pub(crate) exit_kernel: Vec<Vec<u32>>,
    pub(crate) exit_vmm: Vec<Vec<u32>>,
    pub(crate) exit_reentry: Vec<Vec<u32>>,
    pub(crate) tp_exit: u32,
    pub(crate) tp_entry: u32,
    pub(crate) tp_pio: u32,
    pub(crate) tp_mmio: u32,
    pub(crate) tp_mmio_complete: u32,
    pub(crate) tp_msr_w: u32,
    pub(crate) tp_msr_r: u32,
    pub(crate) tp_uexit: u32,
    pub(crate) tp_tsc: u32,
    pub(crate) tp_switch_out: u32,
    pub(crate) setup: Vec<u32>,
    pub(crate) main: Vec<u32>,
    pub(crate) io: Vec<u32>,
    pub(crate) main_switch_out: u32,
    pub(crate) io_switch_out: u32,
}

/// Everything static about a scenario.
pub(crate) struct Scenario {
    pub(crate) isa: Isa,
    pub(crate) seed: u64,
    pub(crate) nr_cpus: u32,
    pub(crate) vcpus: u32,
    pub(crate) period: u64,
    pub(crate) t_start: u64,
    pub(crate) t_end: u64,
    pub(crate) host_time_zero: u64,
    pub(crate) kernel: HostKernel,
    pub(crate) vms: Vec<Vm>,
    pub(crate) stacks: Vec<HostStack>,
    pub(crate) templates: Vec<GuestTemplate>,
    pub(crate) guest_stacks: Vec<GuestStack>,
    pub(crate) guest_syms: GuestSymbols,
    pub(crate) formats: Vec<TpFormat>,
    pub(crate) comms: Vec<String>,
    pub(crate) idle_stacks: Vec<u32>,
    pub(crate) idle_switch_out: u32,
    pub(crate) sshd: HostTask,
    pub(crate) kworker: HostTask,
    pub(crate) libvirtd_pid: i32,
    pub(crate) host_libc: UserMap,
}

/// A non-vCPU host task (sshd, kworker).
#[derive(Debug, Clone)]
pub(crate) struct HostTask {
    pub(crate) pid: i32,
    pub(crate) tid: i32,
    pub(crate) comm: u32,
    pub(crate) stacks: Vec<u32>,
    pub(crate) switch_out: u32,
}

pub(crate) const SSHD_PID: i32 = 812;
pub(crate) const KWORKER_PID: i32 = 143;
pub(crate) const LIBVIRTD_PID: i32 = 701;
pub(crate) const GUESTAPP_PID: i32 = 1000;

impl Scenario {
    pub(crate) fn comm_id(comms: &mut Vec<String>, s: &str) -> u32 {
        if let Some(i) = comms.iter().position(|c| c == s) {
            return i as u32;
        }
        comms.push(s.to_string());
        (comms.len() - 1) as u32
    }

    pub(crate) fn add_stack(
        stacks: &mut Vec<HostStack>,
        kernel: &HostKernel,
        qemu: Option<&UserMap>,
        libc: &UserMap,
        spec: &StackSpec,
    ) -> Result<u32, Error> {
        stacks.push(model::resolve(kernel, qemu, libc, spec)?);
        Ok((stacks.len() - 1) as u32)
    }

    pub(crate) fn fmt(&self, tp: Tp) -> &TpFormat {
        &self.formats[tp_evsel(tp)]
    }

    /// Guest perf time of a host perf time.
    pub(crate) fn guest_time(&self, vm: &Vm, host_ns: u64) -> u64 {
        guest_time(
            self.host_time_zero,
            vm.tsc_offset,
            vm.guest_time_zero,
            host_ns,
        )
    }
}

/// Host perf time -> guest perf time with a 2 GHz TSC on both sides
/// (time_mult / 2^time_shift = 1/2): host_tsc = 2 (t - tz_h);
/// guest_tsc = host_tsc + offset; t_g = tz_g + guest_tsc / 2. Exact for the
/// even offsets the generator uses.
pub(crate) fn guest_time(
    host_time_zero: u64,
    tsc_offset: i64,
    guest_time_zero: u64,
    host_ns: u64,
) -> u64 {
    let host_tsc = 2 * (i128::from(host_ns) - i128::from(host_time_zero));
    let guest_tsc = host_tsc + i128::from(tsc_offset);
    (i128::from(guest_time_zero) + guest_tsc / 2) as u64
}

/// Compact tracepoint payload description.
#[derive(Debug, Clone)]
pub(crate) enum TpData {
    Exit {
        reason: u32,
        rip: u64,
        info1: u64,
        info2: u64,
        intr_info: u32,
        vcpu: u32,
    },
    Entry {
        vcpu: u32,
        rip: u64,
    },
    UserspaceExit {
        reason: u32,
    },
    Pio {
        write: bool,
        port: u32,
        size: u32,
        val: u32,
    },
    Mmio {
        ty: u32,
        len: u32,
        gpa: u64,
        val: u64,
    },
    Msr {
        write: bool,
        ecx: u32,
        data: u64,
    },
    TscOffset {
        vcpu: u32,
        prev: u64,
        next: u64,
    },
    Switch {
        prev_comm: u32,
        prev_pid: i32,
        prev_state: u64,
        next_comm: u32,
        next_pid: i32,
    },
}

/// One generated event.
#[derive(Debug, Clone)]
pub(crate) enum Ev {
    /// cpu-clock sample in host mode with a resolved stack.
    HostSample {
        pid: i32,
        tid: i32,
        stack: u32,
        leaf_ip: u64,
    },
    /// cpu-clock sample while the vCPU runs guest code.
    GuestModeSample {
        pid: i32,
        tid: i32,
        misc: u16,
        ip: u64,
    },
    Tp {
        tp: Tp,
        pid: i32,
        tid: i32,
        stack: u32,
        data: TpData,
    },
    Comm {
        pid: i32,
        tid: i32,
        comm: u32,
        exec: bool,
    },
    Fork {
        pid: i32,
        ppid: i32,
        tid: i32,
        ptid: i32,
    },
    Mmap2 {
        pid: i32,
        start: u64,
        len: u64,
        path: &'static str,
    },
    KernelMmap,
    /// A sample of guest `vm` on guest CPU `vcpu` (written to the guest file).
    GuestSample {
        vm: u16,
        vcpu: u32,
        tpl: u16,
        ip: u64,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct TEv {
    pub(crate) time: u64,
    pub(crate) cpu: u32,
    /// Sideband records synthesized at record start carry time 0.
    pub(crate) synthesized: bool,
    pub(crate) ev: Ev,
}

/// Exit statistics and folded stacks accumulated from the model.
#[derive(Debug, Default)]
pub(crate) struct Acc {
    pub(crate) durations: BTreeMap<u32, Vec<u64>>,
    pub(crate) by_vcpu: BTreeMap<(usize, u32), (u64, u64)>,
    pub(crate) by_vcpu_reason: BTreeMap<(usize, u32, u32), (u64, u64)>,
    /// (vm, guest symbol at the exit's guest_rip, whether it is a guest kernel symbol) ->
    /// (count, total ns) of the closed exits.
    pub(crate) by_guest_symbol: BTreeMap<(usize, &'static str, bool), (u64, u64)>,
    pub(crate) open_at_end: u64,
    pub(crate) open_by_reason: BTreeMap<u32, u64>,
    pub(crate) folded: BTreeMap<String, u64>,
    pub(crate) host_total: u64,
    pub(crate) guest_mode: u64,
    pub(crate) in_exit_kernel: u64,
    pub(crate) in_exit_vmm: u64,
    pub(crate) other: u64,
    pub(crate) guest_samples: Vec<u64>,
    /// `perf kvm stat --event=ioport` keys: (port, is_write) -> kvm_pio..kvm_entry.
    pub(crate) ioport: BTreeMap<(u32, bool), Stat>,
    /// `perf kvm stat --event=mmio` keys: (gpa, is_write); write = kvm_mmio..kvm_entry,
    /// read = kvm_exit..kvm_mmio(read).
    pub(crate) mmio: BTreeMap<(u64, bool), Stat>,
}

/// Count, sum, min and max of durations in ns.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stat {
    pub(crate) n: u64,
    pub(crate) sum: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl Stat {
    fn add(&mut self, d: u64) {
        self.min = if self.n == 0 { d } else { self.min.min(d) };
        self.max = self.max.max(d);
        self.n += 1;
        self.sum += d;
    }
}

impl Acc {
    fn fold(&mut self, key: String) {
        *self.folded.entry(key).or_insert(0) += 1;
    }
}

/// What the vCPU thread is doing during a segment.
#[derive(Debug, Clone, Copy)]
enum Seg {
    /// CPU idle (swapper) with no guest context.
    Idle,
    /// vCPU thread in host code outside an exit.
    Setup(u32),
    /// Guest mode running template.
    Guest(u16),
    /// Inside an exit on the vCPU thread.
    Exit {
        stack: u32,
        vmm: bool,
        tpl: u16,
        rip: u64,
        kind: ExitKind,
    },
    /// vCPU thread scheduled out during HLT; guest frozen at rip.
    HaltedOut { tpl: u16, rip: u64 },
}

struct Ticker {
    next: u64,
    nominal: u64,
}

impl Ticker {
    fn new(rng: &mut Rng, t_start: u64, period: u64) -> Ticker {
        let nominal = t_start + rng.below(period);
        Ticker {
            next: nominal + rng.below(1000),
            nominal,
        }
    }
    fn advance(&mut self, rng: &mut Rng, period: u64) {
        self.nominal += period;
        self.next = self.nominal + rng.below(1000);
    }
}

fn ns(us: f64) -> u64 {
    ((us * 1000.0).round() as u64).max(1)
}

fn pick(rng: &mut Rng, v: &[u32]) -> u32 {
    v.get(rng.below(v.len() as u64) as usize)
        .copied()
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Before,
    Run,
    Done,
}

/// Generator of one vCPU's host CPU.
pub(crate) struct VcpuGen {
    vm: usize,
    vcpu: u32,
    cpu: u32,
    pid: i32,
    tid: i32,
    comm: u32,
    swapper_comm: u32,
    rng: Rng,
    phase: Phase,
    /// Next kvm_entry time (Run) / fork time (Before).
    t: u64,
    tpl: usize,
    entry_rip: u64,
    first_entry: u64,
    ticker: Ticker,
    events: Vec<TEv>,
    segs: Vec<(u64, u64, Seg)>,
}

impl VcpuGen {
    pub(crate) fn new(
        sc: &Scenario,
        vm: usize,
        vcpu: u32,
        comm: u32,
        swapper_comm: u32,
    ) -> VcpuGen {
        let cpu = vm as u32 * sc.vcpus + vcpu;
        let mut rng = Rng::new(sc.seed, 1000 + u64::from(cpu));
        let ticker = Ticker::new(&mut rng, sc.t_start, sc.period);
        let v = &sc.vms[vm];
        VcpuGen {
            vm,
            vcpu,
            cpu,
            pid: v.pid,
            tid: v.vcpu_tids[vcpu as usize],
            comm,
            swapper_comm,
            rng,
            phase: Phase::Before,
            t: v.created + 300_000 + u64::from(vcpu) * 60_000,
            tpl: model::IDLE_TEMPLATE,
            entry_rip: 0,
            first_entry: u64::MAX,
            ticker,
            events: Vec::new(),
            segs: Vec::new(),
        }
    }

    fn ev(&mut self, time: u64, ev: Ev) {
        self.events.push(TEv {
            time,
            cpu: self.cpu,
            synthesized: false,
            ev,
        });
    }

    fn tp(&mut self, sc: &Scenario, time: u64, tp: Tp, stack: u32, data: TpData) {
        let _ = sc;
        self.ev(
            time,
            Ev::Tp {
                tp,
                pid: self.pid,
                tid: self.tid,
                stack,
                data,
            },
        );
    }

    /// Generates the next chunk of events into `out`, sorted by time.
    pub(crate) fn refill(&mut self, sc: &Scenario, acc: &mut Acc, out: &mut VecDeque<TEv>) {
        self.events.clear();
        self.segs.clear();
        match self.phase {
            Phase::Done => return,
            Phase::Before => self.gen_setup(sc),
            Phase::Run => self.gen_cycle(sc, acc),
        }
        let end = self
            .segs
            .last()
            .map(|s| s.1)
            .unwrap_or(self.t)
            .min(sc.t_end);
        self.ticks(sc, acc, end);
        self.events.retain(|e| e.time < sc.t_end);
        self.events.sort_by_key(|e| e.time);
        out.extend(self.events.drain(..));
    }

    fn gen_setup(&mut self, sc: &Scenario) {
        let vm = &sc.vms[self.vm];
        let st = &vm.stacks;
        let t_fork = self.t;
        let t_on = t_fork + 20_000;
        let t_entry = t_on + ns(self.rng.lognormal(800.0, 0.3));
        self.segs.push((sc.t_start, t_on, Seg::Idle));
        let mut t = t_on;
        while t < t_entry {
            let d = ns(self.rng.lognormal(120.0, 0.5)).min(t_entry - t);
            let s = pick(&mut self.rng, &st.setup);
            self.segs.push((t, t + d, Seg::Setup(s)));
            t += d;
        }
        self.ev(
            t_fork,
            Ev::Fork {
                pid: self.pid,
                ppid: self.pid,
                tid: self.tid,
                ptid: self.pid,
            },
        );
        self.ev(
            t_fork + 5_000,
            Ev::Comm {
                pid: self.pid,
                tid: self.tid,
                comm: self.comm,
                exec: false,
            },
        );
        let sw = TpData::Switch {
            prev_comm: self.swapper_comm,
            prev_pid: 0,
            prev_state: 0,
            next_comm: self.comm,
            next_pid: self.tid,
        };
        self.ev(
            t_on,
            Ev::Tp {
                tp: Tp::SchedSwitch,
                pid: 0,
                tid: 0,
                stack: sc.idle_switch_out,
                data: sw,
            },
        );
        let off = vm.tsc_offset as u64;
        self.tp(
            sc,
            t_entry - 40_000,
            Tp::KvmWriteTscOffset,
            st.tp_tsc,
            TpData::TscOffset {
                vcpu: self.vcpu,
                prev: 0,
                next: off,
            },
        );
        self.tpl = model::IDLE_TEMPLATE;
        self.entry_rip = self.guest_ip(sc, self.tpl);
        self.first_entry = t_entry;
        self.t = t_entry;
        self.phase = Phase::Run;
        if t_entry >= sc.t_end {
            self.phase = Phase::Done;
            // Tick through the end in setup.
            if let Some(last) = self.segs.last_mut() {
                last.1 = last.1.max(sc.t_end);
            }
        }
    }

    fn guest_ip(&mut self, sc: &Scenario, tpl: usize) -> u64 {
        let g = &sc.guest_stacks[tpl];
        let base = g.chain.get(1).copied().unwrap_or(0);
        base + self.rng.below(g.leaf_size)
    }

    fn gen_cycle(&mut self, sc: &Scenario, acc: &mut Acc) {
        let t0 = self.t;
        let vm = &sc.vms[self.vm];
        let st = vm.stacks.clone();
        self.tp(
            sc,
            t0,
            Tp::KvmEntry,
            st.tp_entry,
            TpData::Entry {
                vcpu: self.vcpu,
                rip: self.entry_rip,
            },
        );
        let tpl = &sc.templates[self.tpl];
        let run = ns(self.rng.exp(tpl.run_mean_us)).max(300);
        let t_exit = t0 + run;
        let tpl_id = self.tpl as u16;
        self.segs.push((t0, t_exit, Seg::Guest(tpl_id)));
        if t_exit >= sc.t_end {
            self.phase = Phase::Done;
            return;
        }
        let kind = EXIT_KINDS[self.rng.weighted(&tpl.exits)];
        let (code, _) = kind.code(sc.isa);
        let rip = self.guest_ip(sc, self.tpl);
        let ki = kind.index();
        let kstack = pick(&mut self.rng, &st.exit_kernel[ki]);
        let mut info1 = 0u64;
        let mut info2 = 0u64;
        let mut intr_info = 0u32;
        let mut insn_len = 0u64;
        let r = &mut self.rng;
        let mut segs: Vec<(u64, u64, Seg)> = Vec::new();
        let mut evs: Vec<(u64, Tp, u32, TpData)> = Vec::new();
        let ex = |stack: u32, vmm: bool| Seg::Exit {
            stack,
            vmm,
            tpl: tpl_id,
            rip,
            kind,
        };
        let t_ret;
        match kind {
            ExitKind::IoInstruction | ExitKind::EptMisconfig => {
                let mmio = kind == ExitKind::EptMisconfig;
                let k1 = ns(r.lognormal(if mmio { 2.5 } else { 1.5 }, 0.4));
                let q = ns(r.lognormal(if mmio { 15.0 } else { 8.0 }, 0.9));
                let k2 = ns(r.lognormal(1.0, 0.3));
                let vstack = pick(r, &st.exit_vmm[ki]);
                let rstack = pick(r, &st.exit_reentry[ki]);
                segs.push((t_exit, t_exit + k1, ex(kstack, false)));
                segs.push((t_exit + k1, t_exit + k1 + q, ex(vstack, true)));
                segs.push((t_exit + k1 + q, t_exit + k1 + q + k2, ex(rstack, false)));
                t_ret = t_exit + k1 + q + k2;
                let t_ev = t_exit + k1 * 6 / 10;
                if mmio {
                    let read = r.below(5) == 0;
                    let gpa = 0xfe00_3000 + 4 * r.below(4);
                    evs.push((
                        t_ev,
                        Tp::KvmMmio,
                        st.tp_mmio,
                        TpData::Mmio {
                            ty: if read { 0 } else { 2 },
                            len: if read { 4 } else { 2 },
                            gpa,
                            val: if read { 0 } else { r.below(256) },
                        },
                    ));
                    evs.push((
                        t_exit + k1,
                        Tp::KvmUserspaceExit,
                        st.tp_uexit,
                        TpData::UserspaceExit { reason: 6 },
                    ));
                    if read {
                        let t_rd = t_exit + k1 + q + k2 / 3;
                        if t_rd < sc.t_end {
                            acc.mmio.entry((gpa, false)).or_default().add(t_rd - t_exit);
                        }
                    } else if t_exit + k1 + q + k2 < sc.t_end {
                        acc.mmio
                            .entry((gpa, true))
                            .or_default()
                            .add(k1 + q + k2 - (t_ev - t_exit));
                    }
                    if read {
                        evs.push((
                            t_exit + k1 + q + k2 / 3,
                            Tp::KvmMmio,
                            st.tp_mmio_complete,
                            TpData::Mmio {
                                ty: 1,
                                len: 4,
                                gpa,
                                val: r.below(1 << 16),
                            },
                        ));
                    }
                    insn_len = 3;
                    if sc.isa == Isa::Svm {
                        info1 = 0x1_0000_000d;
                        info2 = gpa;
                    }
                } else {
                    let port = if r.below(4) == 0 { 0x3fd } else { 0x3f8 };
                    let write = port == 0x3f8;
                    if t_exit + k1 + q + k2 < sc.t_end {
                        acc.ioport
                            .entry((port, write))
                            .or_default()
                            .add(k1 + q + k2 - (t_ev - t_exit));
                    }
                    evs.push((
                        t_ev,
                        Tp::KvmPio,
                        st.tp_pio,
                        TpData::Pio {
                            write,
                            port,
                            size: 1,
                            val: if write {
                                0x20 + r.below(0x5f) as u32
                            } else {
                                0x60
                            },
                        },
                    ));
                    evs.push((
                        t_exit + k1,
                        Tp::KvmUserspaceExit,
                        st.tp_uexit,
                        TpData::UserspaceExit { reason: 2 },
                    ));
                    insn_len = 1;
                    let inb = u64::from(!write);
                    info1 = match sc.isa {
                        Isa::Vmx => (u64::from(port) << 16) | (inb << 3),
                        Isa::Svm => (u64::from(port) << 16) | (1 << 4) | inb,
                    };
                    if sc.isa == Isa::Svm {
                        info2 = rip + 1;
                    }
                }
            }
            ExitKind::Hlt => {
                let mut d_us = 2.0 + r.lognormal(400.0, 1.3);
                if d_us > 50_000.0 {
                    // Guest timer tick bound: fold the extreme tail back below 50 ms.
                    d_us = 25_000.0 + 25_000.0 * r.f64();
                }
                let d = ns(d_us);
                let poll = ns(r.lognormal(20.0, 0.5)).min(d);
                insn_len = 1;
                let st_emul = st.exit_kernel[ki].last().copied().unwrap_or(kstack);
                let first = ns(0.8).min(poll);
                segs.push((t_exit, t_exit + first, ex(st_emul, false)));
                let poll_stack = pick(
                    r,
                    &st.exit_kernel[ki][..st.exit_kernel[ki].len().saturating_sub(1).max(1)],
                );
                if d > poll + 10_000 {
                    let wake_k = ns(r.lognormal(3.0, 0.3)).min(d - poll - 1);
                    segs.push((t_exit + first, t_exit + poll, ex(poll_stack, false)));
                    let t_out = t_exit + poll;
                    let t_in = t_exit + d - wake_k;
                    segs.push((t_out, t_in, Seg::HaltedOut { tpl: tpl_id, rip }));
                    let rstack = pick(r, &st.exit_reentry[ki]);
                    segs.push((t_in, t_exit + d, ex(rstack, false)));
                    evs.push((
                        t_out,
                        Tp::SchedSwitch,
                        st.tp_switch_out,
                        TpData::Switch {
                            prev_comm: self.comm,
                            prev_pid: self.tid,
                            prev_state: 1,
                            next_comm: self.swapper_comm,
                            next_pid: 0,
                        },
                    ));
                    // The switch back is recorded in the context of swapper.
                    self.events.push(TEv {
                        time: t_in,
                        cpu: self.cpu,
                        synthesized: false,
                        ev: Ev::Tp {
                            tp: Tp::SchedSwitch,
                            pid: 0,
                            tid: 0,
                            stack: sc.idle_switch_out,
                            data: TpData::Switch {
                                prev_comm: self.swapper_comm,
                                prev_pid: 0,
                                prev_state: 0,
                                next_comm: self.comm,
                                next_pid: self.tid,
                            },
                        },
                    });
                } else {
                    segs.push((
                        t_exit + first,
                        t_exit + d.max(first + 1),
                        ex(poll_stack, false),
                    ));
                }
                t_ret = t_exit + d.max(first + 1);
            }
            _ => {
                let (median, sigma) = match kind {
                    ExitKind::EptViolation => (2.5, 0.8),
                    ExitKind::MsrWrite => (1.0, 0.5),
                    ExitKind::MsrRead => (0.8, 0.4),
                    ExitKind::ExternalInterrupt => (1.5, 0.6),
                    ExitKind::Cpuid => (0.9, 0.3),
                    ExitKind::Pause => (2.0, 0.9),
                    _ => (1.2, 0.5),
                };
                // A floor of 0.25 us: the VM exit/entry round trip itself.
                let mut d = 0.25 + r.lognormal(median - 0.25, sigma);
                if r.below(400) == 0 {
                    // Rare host-side hiccup: heavy Pareto tail.
                    d += r.pareto(20.0, 1.3).min(20_000.0);
                }
                let d = ns(d);
                segs.push((t_exit, t_exit + d, ex(kstack, false)));
                t_ret = t_exit + d;
                match kind {
                    ExitKind::MsrWrite | ExitKind::MsrRead => {
                        let write = kind == ExitKind::MsrWrite;
                        let ecx = if write {
                            if r.below(10) < 7 { 0x6e0 } else { 0x830 }
                        } else if r.below(2) == 0 {
                            0x1b
                        } else {
                            0xc000_0103
                        };
                        let data = if ecx == 0x1b {
                            0xfee0_0d00
                        } else {
                            r.next_u64() >> 20
                        };
                        evs.push((
                            t_exit + d / 2,
                            Tp::KvmMsr,
                            if write { st.tp_msr_w } else { st.tp_msr_r },
                            TpData::Msr { write, ecx, data },
                        ));
                        insn_len = 2;
                        if sc.isa == Isa::Svm {
                            info1 = u64::from(write);
                        }
                    }
                    ExitKind::Cpuid => insn_len = 2,
                    ExitKind::Pause => insn_len = 2,
                    ExitKind::ExternalInterrupt if sc.isa == Isa::Vmx => intr_info = 0x8000_00ec,
                    ExitKind::EptViolation => {
                        info1 = match sc.isa {
                            Isa::Vmx => [0x181, 0x182, 0x183, 0x184, 0x1a1][r.below(5) as usize],
                            Isa::Svm => {
                                [0x1_0000_0004, 0x1_0000_0006, 0x1_0000_0007][r.below(3) as usize]
                            }
                        };
                        if sc.isa == Isa::Svm {
                            info2 = (r.below(1 << 20)) << 12;
                        }
                    }
                    _ => {}
                }
            }
        }
        // kvm_exit itself
        self.tp(
            sc,
            t_exit,
            Tp::KvmExit,
            st.tp_exit,
            TpData::Exit {
                reason: code,
                rip,
                info1,
                info2,
                intr_info,
                vcpu: self.vcpu,
            },
        );
        for (t, tp, stack, data) in evs {
            self.tp(sc, t, tp, stack, data);
        }
        self.segs.extend(segs);
        if t_ret >= sc.t_end {
            acc.open_at_end += 1;
            *acc.open_by_reason.entry(code).or_insert(0) += 1;
            self.phase = Phase::Done;
            if let Some(last) = self.segs.last_mut() {
                last.1 = last.1.max(sc.t_end);
            }
            return;
        }
        let dur = t_ret - t_exit;
        acc.durations.entry(code).or_default().push(dur);
        let e = acc.by_vcpu.entry((self.vm, self.vcpu)).or_insert((0, 0));
        e.0 += 1;
        e.1 += dur;
        let e = acc
            .by_vcpu_reason
            .entry((self.vm, self.vcpu, code))
            .or_insert((0, 0));
        e.0 += 1;
        e.1 += dur;
        // guest_rip lies in the leaf function of the template the vCPU ran.
        let g = &sc.guest_stacks[usize::from(tpl_id)];
        let e = acc
            .by_guest_symbol
            .entry((self.vm, g.leaf_name, g.leaf_is_kernel))
            .or_insert((0, 0));
        e.0 += 1;
        e.1 += dur;
        self.t = t_ret;
        self.entry_rip = rip + insn_len;
        // Next guest activity.
        let stay = match kind {
            ExitKind::Hlt => false,
            _ => self.rng.below(10) < 7,
        };
        if !stay {
            let mut w: Vec<u32> = sc.templates.iter().map(|t| t.weight).collect();
            if kind == ExitKind::Hlt {
                w[model::IDLE_TEMPLATE] = 0;
            }
            self.tpl = self.rng.weighted(&w);
            self.entry_rip = self.guest_ip(sc, self.tpl);
        }
    }

    fn ticks(&mut self, sc: &Scenario, acc: &mut Acc, end: u64) {
        let vm = &sc.vms[self.vm];
        let mut si = 0;
        while self.ticker.next < end {
            let t = self.ticker.next;
            while si < self.segs.len() && self.segs[si].1 <= t {
                si += 1;
            }
            let seg = if si < self.segs.len() && self.segs[si].0 <= t {
                self.segs[si].2
            } else {
                Seg::Idle
            };
            let prefix = format!("VM {};vCPU {}", vm.name, self.vcpu);
            acc.host_total += 1;
            let mut guest: Option<(u16, u64)> = None;
            match seg {
                Seg::Idle => {
                    let s = pick(&mut self.rng, &sc.idle_stacks);
                    self.host_sample(sc, t, 0, 0, s);
                    acc.other += 1;
                    acc.fold(format!("swapper;{}", sc.stacks[s as usize].folded));
                }
                Seg::Setup(s) => {
                    self.host_sample(sc, t, self.pid, self.tid, s);
                    acc.other += 1;
                    acc.fold(format!("{prefix};{}", sc.stacks[s as usize].folded));
                }
                Seg::Guest(tpl) => {
                    let ip = self.guest_ip(sc, usize::from(tpl));
                    let g = &sc.guest_stacks[usize::from(tpl)];
                    let misc = if g.leaf_is_kernel {
                        MISC_GUEST_KERNEL
                    } else {
                        MISC_GUEST_USER
                    };
                    self.ev(
                        t,
                        Ev::GuestModeSample {
                            pid: self.pid,
                            tid: self.tid,
                            misc,
                            ip,
                        },
                    );
                    acc.guest_mode += 1;
                    acc.fold(format!("{prefix};{}", g.folded));
                    guest = Some((tpl, ip));
                }
                Seg::Exit {
                    stack,
                    vmm,
                    tpl,
                    rip,
                    kind,
                } => {
                    self.host_sample(sc, t, self.pid, self.tid, stack);
                    if vmm {
                        acc.in_exit_vmm += 1;
                    } else {
                        acc.in_exit_kernel += 1;
                    }
                    let g = &sc.guest_stacks[usize::from(tpl)];
                    acc.fold(format!(
                        "{prefix};{};[exit {}];{}",
                        g.leaf_name,
                        kind.code(sc.isa).1,
                        sc.stacks[stack as usize].folded
                    ));
                    guest = Some((tpl, rip));
                }
                Seg::HaltedOut { tpl, rip } => {
                    let s = pick(&mut self.rng, &sc.idle_stacks);
                    self.host_sample(sc, t, 0, 0, s);
                    acc.other += 1;
                    acc.fold(format!("swapper;{}", sc.stacks[s as usize].folded));
                    guest = Some((tpl, rip));
                }
            }
            if let Some((tpl, ip)) = guest
                && t >= self.first_entry
            {
                self.ev(
                    t,
                    Ev::GuestSample {
                        vm: self.vm as u16,
                        vcpu: self.vcpu,
                        tpl,
                        ip,
                    },
                );
                acc.guest_samples[self.vm] += 1;
            }
            self.ticker.advance(&mut self.rng, sc.period);
        }
    }

    fn host_sample(&mut self, sc: &Scenario, t: u64, pid: i32, tid: i32, stack: u32) {
        let s = &sc.stacks[stack as usize];
        let leaf_ip = s.leaf_base() + self.rng.below(s.leaf_size);
        self.ev(
            t,
            Ev::HostSample {
                pid,
                tid,
                stack,
                leaf_ip,
            },
        );
    }
}

/// A task runnable on a misc CPU.
#[derive(Debug, Clone)]
struct MiscTask {
    pid: i32,
    tid: i32,
    comm: u32,
    stacks: Vec<u32>,
    switch_out: u32,
    from: u64,
    weight: u32,
}

/// Generator of a host CPU that runs no vCPU (other processes, QEMU main and
/// I/O threads, idle).
pub(crate) struct MiscGen {
    cpu: u32,
    rng: Rng,
    t: u64,
    cur: Option<usize>,
    tasks: Vec<MiscTask>,
    swapper_comm: u32,
    ticker: Ticker,
    done: bool,
}

impl MiscGen {
    pub(crate) fn new(
        sc: &Scenario,
        which: u32,
        swapper_comm: u32,
        comms: &[(u32, u32)],
    ) -> MiscGen {
        let cpu = sc.nr_cpus - 2 + which;
        let mut rng = Rng::new(sc.seed, 5000 + u64::from(cpu));
        let ticker = Ticker::new(&mut rng, sc.t_start, sc.period);
        let mut tasks = Vec::new();
        if which == 0 {
            tasks.push(MiscTask {
                pid: sc.sshd.pid,
                tid: sc.sshd.tid,
                comm: sc.sshd.comm,
                stacks: sc.sshd.stacks.clone(),
                switch_out: sc.sshd.switch_out,
                from: 0,
                weight: 3,
            });
            for (i, vm) in sc.vms.iter().enumerate() {
                tasks.push(MiscTask {
                    pid: vm.pid,
                    tid: vm.pid,
                    comm: comms[i].0,
                    stacks: vm.stacks.main.clone(),
                    switch_out: vm.stacks.main_switch_out,
                    from: vm.created + 100_000,
                    weight: 4,
                });
            }
        } else {
            tasks.push(MiscTask {
                pid: sc.kworker.pid,
                tid: sc.kworker.tid,
                comm: sc.kworker.comm,
                stacks: sc.kworker.stacks.clone(),
                switch_out: sc.kworker.switch_out,
                from: 0,
                weight: 3,
            });
            for (i, vm) in sc.vms.iter().enumerate() {
                tasks.push(MiscTask {
                    pid: vm.pid,
                    tid: vm.pid + 1,
                    comm: comms[i].1,
                    stacks: vm.stacks.io.clone(),
                    switch_out: vm.stacks.io_switch_out,
                    from: vm.created + 100_000,
                    weight: 5,
                });
            }
        }
        MiscGen {
            cpu,
            rng,
            t: sc.t_start,
            cur: None,
            tasks,
            swapper_comm,
            ticker,
            done: false,
        }
    }

    pub(crate) fn refill(&mut self, sc: &Scenario, acc: &mut Acc, out: &mut VecDeque<TEv>) {
        if self.done {
            return;
        }
        let mut evs: Vec<TEv> = Vec::new();
        let start = self.t;
        // Pick the next task (None = idle) and its duration.
        let mut w: Vec<u32> = vec![8];
        for t in &self.tasks {
            w.push(if t.from <= start { t.weight } else { 0 });
        }
        let choice = self.rng.weighted(&w);
        let next = if choice == 0 { None } else { Some(choice - 1) };
        let dur = ns(self
            .rng
            .lognormal(if next.is_none() { 1500.0 } else { 700.0 }, 0.9)
            .min(20_000.0));
        let end = (start + dur).min(sc.t_end);
        if next != self.cur {
            let (prev_comm, prev_pid, prev_state, stack) = match self.cur {
                None => (self.swapper_comm, 0, 0, sc.idle_switch_out),
                Some(i) => {
                    let t = &self.tasks[i];
                    (t.comm, t.tid, 1, t.switch_out)
                }
            };
            let (next_comm, next_pid) = match next {
                None => (self.swapper_comm, 0),
                Some(i) => (self.tasks[i].comm, self.tasks[i].tid),
            };
            let (pid, tid) = match self.cur {
                None => (0, 0),
                Some(i) => (self.tasks[i].pid, self.tasks[i].tid),
            };
            if start > sc.t_start {
                evs.push(TEv {
                    time: start,
                    cpu: self.cpu,
                    synthesized: false,
                    ev: Ev::Tp {
                        tp: Tp::SchedSwitch,
                        pid,
                        tid,
                        stack,
                        data: TpData::Switch {
                            prev_comm,
                            prev_pid,
                            prev_state,
                            next_comm,
                            next_pid,
                        },
                    },
                });
            }
        }
        self.cur = next;
        while self.ticker.next < end {
            let t = self.ticker.next;
            acc.host_total += 1;
            acc.other += 1;
            let (pid, tid, comm, stack) = match next {
                None => (
                    0,
                    0,
                    "swapper".to_string(),
                    pick(&mut self.rng, &sc.idle_stacks),
                ),
                Some(i) => {
                    let task = &self.tasks[i];
                    let s = pick(&mut self.rng, &task.stacks);
                    (
                        task.pid,
                        task.tid,
                        sc.comms[task.comm as usize].replace(' ', "_"),
                        s,
                    )
                }
            };
            let s = &sc.stacks[stack as usize];
            let leaf_ip = s.leaf_base() + self.rng.below(s.leaf_size);
            acc.fold(format!("{comm};{}", s.folded));
            evs.push(TEv {
                time: t,
                cpu: self.cpu,
                synthesized: false,
                ev: Ev::HostSample {
                    pid,
                    tid,
                    stack,
                    leaf_ip,
                },
            });
            self.ticker.advance(&mut self.rng, sc.period);
        }
        self.t = end;
        if end >= sc.t_end {
            self.done = true;
        }
        out.extend(evs);
    }
}

/// An event source of the merge.
pub(crate) enum Source {
    Vcpu(Box<VcpuGen>),
    Misc(Box<MiscGen>),
    /// A fixed list of events (sideband of VM creation).
    List(VecDeque<TEv>),
}

/// Output sinks.
pub(crate) struct Sinks {
    pub(crate) host: PerfWriter,
    pub(crate) guests: Vec<PerfWriter>,
    scratch: Vec<u8>,
    chain: Vec<u64>,
}

impl Sinks {
    pub(crate) fn new(host: PerfWriter, guests: Vec<PerfWriter>) -> Sinks {
        Sinks {
            host,
            guests,
            scratch: Vec::with_capacity(128),
            chain: Vec::with_capacity(64),
        }
    }

    pub(crate) fn write(&mut self, sc: &Scenario, e: &TEv) -> Result<(), Error> {
        let time = if e.synthesized { 0 } else { e.time };
        let side = |w: &PerfWriter, pid: i32, tid: i32| SampleId {
            pid,
            tid,
            time,
            cpu: e.cpu,
            id: if e.synthesized {
                0
            } else {
                w.id(EV_DUMMY, e.cpu)
            },
        };
        match &e.ev {
            Ev::HostSample {
                pid,
                tid,
                stack,
                leaf_ip,
            } => {
                let s = &sc.stacks[*stack as usize];
                self.chain.clear();
                self.chain.extend_from_slice(&s.chain);
                if let Some(x) = self.chain.get_mut(s.leaf_idx) {
                    *x = *leaf_ip;
                }
                let sid = SampleId {
                    pid: *pid,
                    tid: *tid,
                    time,
                    cpu: e.cpu,
                    id: self.host.id(EV_CPU_CLOCK, e.cpu),
                };
                self.host.sample(
                    EV_CPU_CLOCK,
                    s.misc,
                    &sid,
                    *leaf_ip,
                    sc.period,
                    &self.chain,
                    None,
                )?;
            }
            Ev::GuestModeSample { pid, tid, misc, ip } => {
                let sid = SampleId {
                    pid: *pid,
                    tid: *tid,
                    time,
                    cpu: e.cpu,
                    id: self.host.id(EV_CPU_CLOCK, e.cpu),
                };
                self.host.sample(
                    EV_CPU_CLOCK,
                    *misc,
                    &sid,
                    *ip,
                    sc.period,
                    &[PERF_CONTEXT_KERNEL, PERF_CONTEXT_USER],
                    None,
                )?;
            }
            Ev::Tp {
                tp,
                pid,
                tid,
                stack,
                data,
            } => {
                let s = &sc.stacks[*stack as usize];
                let fmt = sc.fmt(*tp);
                let flags = if matches!(tp, Tp::SchedSwitch | Tp::KvmExit) {
                    1
                } else {
                    0
                };
                {
                    let mut p = fmt.payload(&mut self.scratch, *tid, flags);
                    fill_payload(&mut p, sc, data);
                }
                let ev = tp_evsel(*tp);
                let sid = SampleId {
                    pid: *pid,
                    tid: *tid,
                    time,
                    cpu: e.cpu,
                    id: self.host.id(ev, e.cpu),
                };
                let ip = s.leaf_base() + 0x10.min(s.leaf_size.saturating_sub(1));
                self.chain.clear();
                self.chain.extend_from_slice(&s.chain);
                if let Some(x) = self.chain.get_mut(s.leaf_idx) {
                    *x = ip;
                }
                let raw = std::mem::take(&mut self.scratch);
                let r = self
                    .host
                    .sample(ev, MISC_KERNEL, &sid, ip, 1, &self.chain, Some(&raw));
                self.scratch = raw;
                r?;
            }
            Ev::Comm {
                pid,
                tid,
                comm,
                exec,
            } => {
                let sid = side(&self.host, *pid, *tid);
                self.host.comm(&sid, &sc.comms[*comm as usize], *exec)?;
            }
            Ev::Fork {
                pid,
                ppid,
                tid,
                ptid,
            } => {
                let sid = side(&self.host, *pid, *tid);
                self.host.fork(&sid, *ppid, *ptid)?;
            }
            Ev::Mmap2 {
                pid,
                start,
                len,
                path,
            } => {
                let sid = side(&self.host, *pid, *pid);
                let ino = 0x10_0000 + crate::rng::hash_str(path) % 0x10_0000;
                self.host.mmap2(&sid, *start, *len, 0x1000, ino, path)?;
            }
            Ev::KernelMmap => {
                let sid = side(&self.host, -1, 0);
                self.host.kernel_mmap(
                    &sid,
                    sc.kernel.text_start,
                    sc.kernel.text_end - sc.kernel.text_start,
                )?;
            }
            Ev::GuestSample { vm, vcpu, tpl, ip } => {
                let v = &sc.vms[usize::from(*vm)];
                let g = &sc.guest_stacks[usize::from(*tpl)];
                let t = &sc.templates[usize::from(*tpl)];
                let (pid, tid) = match t.task {
                    GuestTask::App => (GUESTAPP_PID, GUESTAPP_PID + *vcpu as i32),
                    GuestTask::Idle => (0, 0),
                    GuestTask::Kworker => (40 + *vcpu as i32, 40 + *vcpu as i32),
                };
                let Some(w) = self.guests.get_mut(usize::from(*vm)) else {
                    return Ok(());
                };
                let sid = SampleId {
                    pid,
                    tid,
                    time: sc.guest_time(v, e.time),
                    cpu: *vcpu,
                    id: w.id(GEV_CPU_CLOCK, *vcpu),
                };
                self.chain.clear();
                self.chain.extend_from_slice(&g.chain);
                if let Some(x) = self.chain.get_mut(1) {
                    *x = *ip;
                }
                let misc = if g.leaf_is_kernel {
                    MISC_KERNEL
                } else {
                    MISC_USER
                };
                w.sample(GEV_CPU_CLOCK, misc, &sid, *ip, sc.period, &self.chain, None)?;
                w.maybe_round()?;
                return Ok(());
            }
        }
        self.host.maybe_round()
    }
}

fn fill_payload(p: &mut crate::tracing::Payload<'_>, sc: &Scenario, data: &TpData) {
    match data {
        TpData::Exit {
            reason,
            rip,
            info1,
            info2,
            intr_info,
            vcpu,
        } => {
            p.set("exit_reason", u64::from(*reason))
                .set("guest_rip", *rip)
                .set("isa", if sc.isa == Isa::Vmx { 1 } else { 2 })
                .set("info1", *info1)
                .set("info2", *info2)
                .set("intr_info", u64::from(*intr_info))
                .set("error_code", 0)
                .set("vcpu_id", u64::from(*vcpu))
                .set("requests", 0);
        }
        TpData::Entry { vcpu, rip } => {
            p.set("vcpu_id", u64::from(*vcpu))
                .set("rip", *rip)
                .set("immediate_exit", 0)
                .set("intr_info", 0)
                .set("error_code", 0);
        }
        TpData::UserspaceExit { reason } => {
            p.set("reason", u64::from(*reason)).set("errno", 0);
        }
        TpData::Pio {
            write,
            port,
            size,
            val,
        } => {
            p.set("rw", u64::from(*write))
                .set("port", u64::from(*port))
                .set("size", u64::from(*size))
                .set("count", 1)
                .set("val", u64::from(*val));
        }
        TpData::Mmio { ty, len, gpa, val } => {
            p.set("type", u64::from(*ty))
                .set("len", u64::from(*len))
                .set("gpa", *gpa)
                .set("val", *val);
        }
        TpData::Msr { write, ecx, data } => {
            p.set("write", u64::from(*write))
                .set("ecx", u64::from(*ecx))
                .set("data", *data)
                .set("exception", 0);
        }
        TpData::TscOffset { vcpu, prev, next } => {
            p.set("vcpu_id", u64::from(*vcpu))
                .set("previous_tsc_offset", *prev)
                .set("next_tsc_offset", *next);
        }
        TpData::Switch {
            prev_comm,
            prev_pid,
            prev_state,
            next_comm,
            next_pid,
        } => {
            p.set_str("prev_comm", &sc.comms[*prev_comm as usize])
                .set("prev_pid", *prev_pid as u32 as u64)
                .set("prev_prio", 120)
                .set("prev_state", *prev_state)
                .set_str("next_comm", &sc.comms[*next_comm as usize])
                .set("next_pid", *next_pid as u32 as u64)
                .set("next_prio", 120);
        }
    }
}

/// Runs the k-way merge over all sources, writing every event.
pub(crate) fn run_merge(
    sc: &Scenario,
    mut sources: Vec<Source>,
    sinks: &mut Sinks,
    acc: &mut Acc,
) -> Result<(), Error> {
    // One buffer per source; List sources come pre-filled.
    let mut bufs: Vec<VecDeque<TEv>> = Vec::new();
    for s in sources.iter_mut() {
        match s {
            Source::List(v) => bufs.push(std::mem::take(v)),
            _ => bufs.push(VecDeque::new()),
        }
    }
    let mut heap: BinaryHeap<Reverse<(u64, u8, usize)>> = BinaryHeap::new();
    let key = |e: &TEv| {
        (
            if e.synthesized { 0 } else { e.time },
            u8::from(!e.synthesized),
        )
    };
    for i in 0..sources.len() {
        fill(sc, &mut sources[i], &mut bufs[i], acc);
        if let Some(e) = bufs[i].front() {
            let (t, s) = key(e);
            heap.push(Reverse((t, s, i)));
        }
    }
    while let Some(Reverse((_, _, i))) = heap.pop() {
        let Some(e) = bufs[i].pop_front() else {
            continue;
        };
        sinks.write(sc, &e)?;
        if bufs[i].is_empty() {
            fill(sc, &mut sources[i], &mut bufs[i], acc);
        }
        if let Some(e) = bufs[i].front() {
            let (t, s) = key(e);
            heap.push(Reverse((t, s, i)));
        }
    }
    Ok(())
}

fn fill(sc: &Scenario, src: &mut Source, buf: &mut VecDeque<TEv>, acc: &mut Acc) {
    // Generators may produce chunks with no event (e.g. a short cycle with no
    // tick beyond the end); loop until something arrives or the source ends.
    for _ in 0..1_000_000 {
        let before = buf.len();
        match src {
            Source::Vcpu(g) => {
                if g.phase == Phase::Done {
                    return;
                }
                g.refill(sc, acc, buf);
            }
            Source::Misc(g) => {
                if g.done {
                    return;
                }
                g.refill(sc, acc, buf);
            }
            Source::List(_) => return,
        }
        if buf.len() > before {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // perf's tools/perf/util/tsc.c
    fn perf_time_to_tsc(ns: u64, shift: u32, mult: u64, zero: u64) -> u64 {
        let t = ns - zero;
        let quot = t / mult;
        let rem = t % mult;
        (quot << shift) + (rem << shift) / mult
    }
    fn tsc_to_perf_time(cyc: u64, shift: u32, mult: u64, zero: u64) -> u64 {
        let quot = cyc >> shift;
        let rem = cyc & ((1u64 << shift) - 1);
        zero + quot * mult + ((rem * mult) >> shift)
    }

    #[test]
    fn guest_time_agrees_with_perf_tsc_conversion() {
        let (tz_h, tz_g) = (12_345_678u64, 987_654_000u64);
        let boot = 4_000_000_000_000u64;
        let off = -2 * (boot as i64 - tz_h as i64);
        for t in [4_321_000_000_000u64, 4_321_123_456_789, 4_330_000_000_001] {
            let host_tsc = perf_time_to_tsc(t, 31, 1 << 30, tz_h);
            assert_eq!(tsc_to_perf_time(host_tsc, 31, 1 << 30, tz_h), t);
            let guest_tsc = host_tsc.wrapping_add(off as u64);
            let g = tsc_to_perf_time(guest_tsc, 31, 1 << 30, tz_g);
            assert_eq!(g, guest_time(tz_h, off, tz_g, t));
        }
    }
}
