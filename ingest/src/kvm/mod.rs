//! The KVM model built while records stream by: VMs, vCPU threads and one row per VM exit.
//!
//! Two sources of exits (docs/schema.md, `exits.source`):
//! - `kvm_exit`: hosts with VMX/SVM. A `kvm:kvm_exit` opens an exit on its host thread, the next
//!   `kvm:kvm_entry` of the same thread closes it. What fires in between (kvm_pio, kvm_mmio,
//!   kvm_msr, kvm_userspace_exit, sched_switch away from the thread, kvm_vcpu_wakeup) is attached.
//! - `kvm_userspace_exit` / `kvm_msr`: hosts where kvm_exit never fires (PVM, software
//!   virtualisation). Each exit to the VMM and each in-kernel MSR access is one row, with the
//!   port/gpa/msr of the kvm_pio/kvm_mmio/kvm_msr before it and the guest RIP of the last
//!   kvm_emulate_insn. A kvm_pio/kvm_mmio that no kvm_userspace_exit claims (the recording has
//!   none, or KVM handled the access in the kernel) is an exit of its own (`kvm_pio`,
//!   `kvm_mmio`). Durations are unknown there (no entry event): `duration_ns` is null.
//!
//! The vCPU of a thread comes from the tracepoints' `vcpu_id` when they carry one, else from
//! the thread's own COMM record `CPU <n>/KVM` (QEMU's naming; a thread that only inherited such
//! a name through FORK, like KVM's per-VM worker, is not a vCPU). Disagreements are reported in
//! `vcpus.conflict`, never hidden; VMs are told apart by their VMM pid.

pub mod reasons;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use crate::error::Error;
use crate::perf::format::{EventFormat, FieldValue};
use crate::schema::{ColumnDoc, TableDoc, col};
use crate::table::{ColType, TableWriter};

/// `KVM_EXIT_IO` of kvm_userspace_exit.
const KVM_EXIT_IO: u64 = 2;

/// Which instruction set a `kvm_exit`'s `isa` field names.
const ISA_VMX: u64 = 1;
const ISA_SVM: u64 = 2;

/// One exit being built.
#[derive(Debug, Clone, Default)]
struct ExitRow {
    exit_idx: u64,
    vm_pid: i32,
    vcpu: Option<u32>,
    tid: i32,
    cpu: Option<u32>,
    exit_time_ns: Option<u64>,
    entry_time_ns: Option<u64>,
    reason: Option<u64>,
    reason_name: Option<String>,
    isa: Option<&'static str>,
    flags: Option<u64>,
    flag_names: Option<String>,
    guest_rip: Option<u64>,
    info1: Option<u64>,
    info2: Option<u64>,
    intr_info: Option<u64>,
    error_code: Option<u64>,
    source: &'static str,
    userspace_reason: Option<String>,
    userspace_time_ns: Option<u64>,
    pio_port: Option<u64>,
    pio_size: Option<u64>,
    pio_write: Option<bool>,
    mmio_gpa: Option<u64>,
    mmio_len: Option<u64>,
    mmio_type: Option<String>,
    msr_index: Option<u64>,
    msr_write: Option<bool>,
    sched_out_ns: Option<u64>,
    wakeup_ns: Option<u64>,
    wakeup_waited: Option<bool>,
    wakeup_valid: Option<bool>,
    sample_idx: u64,
    perf_kvm_counted: bool,
}

/// Per host thread state.
#[derive(Debug, Default)]
struct ThreadState {
    pid: i32,
    vcpu_from_events: Option<u32>,
    vcpu_from_name: Option<u32>,
    first_ns: Option<u64>,
    last_ns: Option<u64>,
    seen_entry: bool,
    n_events: u64,
    open: Option<ExitRow>,
    sched_out_at: Option<u64>,
    /// PVM: details seen since the last exit, for the next one.
    pending: ExitRow,
    /// `pending` holds a kvm_pio/kvm_mmio that may become an exit of its own, at
    /// `pending.sample_idx`.
    pending_any: bool,
    /// PVM: key in `done` of the thread's last KVM_EXIT_IO without a port: the kvm_pio of a
    /// port read fires when the VMM completes it, after the userspace exit.
    io_exit_awaiting_pio: Option<ExitKey>,
}

/// Where a finished exit sits until it is written: the recording order of the event that
/// started it (sample_idx), then creation order.
type ExitKey = (u64, u64);

/// Finished exits are written once no exit can come before them any more, every this many.
const FLUSH_EVERY: usize = 1 << 16;

/// Finished exits whose vCPU is not known yet wait for it, up to this many buffered exits.
const HOLD_UNKNOWN_VCPU: usize = 1 << 20;

/// The KVM model. Feed it records in processing order; [`KvmModel::close`] writes the tables.
///
/// Exits are streamed: a finished exit waits in `done` only until every exit still open (or
/// pending, or awaiting its port) started after it, then goes to the `exits` table in recording
/// order. Memory is bounded by the exits in flight, not by the recording's length.
#[derive(Default)]
pub struct KvmModel {
    threads: HashMap<i32, ThreadState>,
    /// Process names (pid == tid COMMs).
    process_comm: HashMap<i32, String>,
    /// Finished exits not written yet.
    done: BTreeMap<ExitKey, ExitRow>,
    /// The `exits` table file; without one, every exit waits for [`KvmModel::close`].
    exits_path: Option<PathBuf>,
    exits_out: Option<TableWriter>,
    /// Exits written (the next exit_idx).
    n_written: u64,
    /// Try writing every this many finished exits (FLUSH_EVERY; tests use less).
    flush_every: usize,
    /// sample_idx of the event being processed: no exit created from now on comes before it.
    now_idx: u64,
    /// The first write error, returned by [`KvmModel::close`].
    write_error: Option<Error>,
    /// How its tables' pages are compressed.
    compression: crate::Compression,
    n_exits: u64,
    n_kvm_exit_events: u64,
    tsc_offsets: Vec<(i32, i32, u32, u64, u64, Option<u64>)>,
    /// Names evaluated through the recording's print fmt, by (event, field, value, isa): the
    /// print fmt is evaluated once per distinct value, not per event.
    names: HashMap<(&'static str, u64, u64), Option<String>>,
    /// Every distinct (VMM pid, guest RIP) of the exits written and of the kvm_emulate_insn
    /// events, for `exit_symbols` (grows with the distinct guest code addresses, not the exits).
    guest_rips: HashSet<(i32, u64), foldhash::fast::FixedState>,
}

/// What [`KvmModel::close`] wrote and collected.
#[derive(Debug)]
pub struct KvmTables {
    /// (table, file, rows) of `vms`, `vcpus`, `exits` and `tsc_offsets`.
    pub tables: Vec<(String, PathBuf, u64)>,
    /// Every distinct (VMM pid, guest RIP) of `exits.guest_rip` and of kvm_emulate_insn's rip,
    /// sorted.
    pub guest_rips: Vec<(i32, u64)>,
}

impl std::fmt::Debug for KvmModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvmModel")
            .field("threads", &self.threads.len())
            .field("buffered_exits", &self.done.len())
            .field("written_exits", &self.n_written)
            .field("exits_path", &self.exits_path)
            .finish_non_exhaustive()
    }
}

fn field_u64(f: &EventFormat, raw: &[u8], big: bool, name: &str) -> Option<u64> {
    match f.field(name)?.value(raw, big)? {
        FieldValue::Unsigned(v) => Some(v),
        FieldValue::Signed(v) => Some(v as u64),
        _ => None,
    }
}

fn field_i64(f: &EventFormat, raw: &[u8], big: bool, name: &str) -> Option<i64> {
    match f.field(name)?.value(raw, big)? {
        FieldValue::Unsigned(v) => Some(v as i64),
        FieldValue::Signed(v) => Some(v),
        _ => None,
    }
}

/// `CPU <n>/KVM` → n.
pub fn vcpu_from_comm(comm: &str) -> Option<u32> {
    comm.strip_prefix("CPU ")?
        .strip_suffix("/KVM")?
        .parse()
        .ok()
}

/// The exit-reason name of a kvm_exit from the built-in tables (the fallback when the
/// recording's own `print fmt` does not name it).
pub fn builtin_exit_reason_name(isa: u64, reason: u64) -> Option<String> {
    let basic = if isa == ISA_SVM {
        reason
    } else {
        reason & 0xffff
    };
    let table = if isa == ISA_SVM {
        reasons::SVM
    } else {
        reasons::VMX
    };
    reasons::lookup(table, basic).map(str::to_string)
}

impl KvmModel {
    /// The name the recording's print fmt gives `field` of this payload, cached by value.
    fn symbol(
        &mut self,
        key: (&'static str, u64, u64),
        f: &EventFormat,
        raw: &[u8],
        big: bool,
        field: &str,
    ) -> Option<String> {
        self.names
            .entry(key)
            .or_insert_with(|| crate::perf::printfmt::symbol_name(f, raw, big, 8, field))
            .clone()
    }

    fn thread(&mut self, pid: i32, tid: i32) -> &mut ThreadState {
        self.threads.entry(tid).or_insert_with(|| ThreadState {
            pid,
            ..Default::default()
        })
    }

    /// A model that streams its `exits` table to `path` while records come.
    pub fn streaming(path: PathBuf) -> Self {
        KvmModel {
            exits_path: Some(path),
            flush_every: FLUSH_EVERY,
            ..Default::default()
        }
    }

    /// Compresses the tables' pages so (zstd unless told).
    pub fn compressed(mut self, compression: crate::Compression) -> Self {
        self.compression = compression;
        self
    }

    /// A finished exit.
    fn push_exit(&mut self, row: ExitRow) {
        self.done.insert((row.sample_idx, row.exit_idx), row);
        if self.flush_every > 0
            && self.done.len().is_multiple_of(self.flush_every)
            && self.exits_path.is_some()
        {
            let mark = self.watermark();
            if let Err(e) = self.write_done(mark) {
                self.write_error.get_or_insert(e);
            }
        }
    }

    /// No exit not yet finished can sort before this sample_idx.
    fn watermark(&self) -> u64 {
        let mut mark = self.now_idx;
        for t in self.threads.values() {
            if let Some(o) = &t.open {
                mark = mark.min(o.sample_idx);
            }
            if t.pending_any {
                mark = mark.min(t.pending.sample_idx);
            }
            if let Some((idx, _)) = t.io_exit_awaiting_pio {
                mark = mark.min(idx);
            }
        }
        if self.done.len() < HOLD_UNKNOWN_VCPU
            && let Some(((idx, _), _)) = self.done.iter().find(|(_, r)| {
                r.vcpu.is_none()
                    && self
                        .threads
                        .get(&r.tid)
                        .is_none_or(|t| t.vcpu_from_events.or(t.vcpu_from_name).is_none())
            })
        {
            mark = mark.min(*idx);
        }
        mark
    }

    /// Writes the finished exits that started before `mark`, in order.
    fn write_done(&mut self, mark: u64) -> Result<(), Error> {
        while let Some(entry) = self.done.first_entry() {
            if entry.key().0 >= mark {
                break;
            }
            let mut r = entry.remove();
            // The vCPU of rows emitted before the thread's vCPU was known.
            if r.vcpu.is_none()
                && let Some(t) = self.threads.get(&r.tid)
            {
                r.vcpu = t.vcpu_from_events.or(t.vcpu_from_name);
            }
            r.exit_idx = self.n_written;
            self.n_written += 1;
            if let Some(rip) = r.guest_rip {
                self.guest_rips.insert((r.vm_pid, rip));
            }
            let w = match &mut self.exits_out {
                Some(w) => w,
                None => {
                    let Some(path) = self.exits_path.clone() else {
                        return Err(Error::Invalid("exits: no output path".into()));
                    };
                    self.exits_out.insert(
                        TableWriter::new("exits", path, &exits_doc().defs(), Vec::new())
                            .compressed(self.compression),
                    )
                }
            };
            write_exit(w, &r)?;
        }
        Ok(())
    }

    /// The VMM pids of every VM (processes with a vCPU thread).
    pub fn vm_pids(&self) -> Vec<i32> {
        let mut p: Vec<i32> = self
            .threads
            .values()
            .filter(|t| t.vcpu_from_events.is_some() || t.vcpu_from_name.is_some())
            .map(|t| t.pid)
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    }

    /// The kvm_write_tsc_offset values seen: (VMM pid, vcpu, next offset).
    pub fn tsc_offsets(&self) -> Vec<(i32, u32, u64)> {
        self.tsc_offsets
            .iter()
            .map(|(pid, _, vcpu, _, next, _)| (*pid, *vcpu, *next))
            .collect()
    }

    /// The vCPU thread `tid` has now.
    fn vcpu_of(&self, tid: i32) -> Option<u32> {
        let t = self.threads.get(&tid)?;
        t.vcpu_from_events.or(t.vcpu_from_name)
    }

    /// Before the vCPU of thread `tid` changes (rename, reused tid, events disagreeing with its
    /// name): its buffered exits made while its vCPU was unknown take the vCPU it has now, the
    /// one they were written with if they were written already.
    fn settle_vcpu(&mut self, tid: i32) {
        let Some(v) = self.vcpu_of(tid) else {
            return;
        };
        for r in self.done.values_mut() {
            if r.tid == tid && r.vcpu.is_none() {
                r.vcpu = Some(v);
            }
        }
    }

    /// A COMM record (not a FORK inheritance).
    pub fn on_comm(&mut self, pid: i32, tid: i32, comm: &str, _time: Option<u64>) {
        if pid == tid {
            self.process_comm.insert(pid, comm.to_string());
        }
        let n = vcpu_from_comm(comm);
        if n.is_some() || self.threads.contains_key(&tid) {
            let events = self.threads.get(&tid).and_then(|t| t.vcpu_from_events);
            if self.vcpu_of(tid).is_some_and(|v| Some(v) != events.or(n)) {
                self.settle_vcpu(tid);
            }
            let t = self.thread(pid, tid);
            t.pid = pid;
            t.vcpu_from_name = n;
        }
    }

    /// A FORK record: the child inherits nothing vCPU-like.
    pub fn on_fork(&mut self, pid: i32, tid: i32, _ppid: i32, _ptid: i32, _time: u64) {
        self.settle_vcpu(tid);
        if let Some(t) = self.threads.get_mut(&tid) {
            // A reused tid starts over.
            *t = ThreadState {
                pid,
                ..Default::default()
            };
        }
    }

    /// A tracepoint sample.
    #[allow(clippy::too_many_arguments)]
    pub fn on_tracepoint(
        &mut self,
        f: &EventFormat,
        raw: &[u8],
        big: bool,
        idx: u64,
        time: Option<u64>,
        cpu: Option<u32>,
        pid: Option<i32>,
        tid: Option<i32>,
    ) {
        if f.system == "sched" && f.name == "sched_switch" {
            self.sched_switch(f, raw, big, time);
            return;
        }
        if f.system != "kvm" {
            return;
        }
        let (Some(pid), Some(tid)) = (pid, tid) else {
            return;
        };
        self.now_idx = idx;
        let vcpu_field = field_u64(f, raw, big, "vcpu_id").map(|v| v as u32);
        if let Some(v) = vcpu_field
            && f.name != "kvm_write_tsc_offset"
            && self.vcpu_of(tid).is_some_and(|old| old != v)
        {
            self.settle_vcpu(tid);
        }
        {
            let t = self.thread(pid, tid);
            t.pid = pid;
            t.n_events += 1;
            if let Some(ts) = time {
                t.first_ns = Some(t.first_ns.map_or(ts, |x| x.min(ts)));
                t.last_ns = Some(t.last_ns.map_or(ts, |x| x.max(ts)));
            }
            if let Some(v) = vcpu_field
                && f.name != "kvm_write_tsc_offset"
            {
                t.vcpu_from_events = Some(v);
            }
        }
        match f.name.as_str() {
            "kvm_exit" => {
                self.n_kvm_exit_events += 1;
                let isa = field_u64(f, raw, big, "isa").unwrap_or(ISA_VMX);
                let reason = field_u64(f, raw, big, "exit_reason").unwrap_or(0);
                let mut row = self.new_row(pid, tid, cpu, time, idx, "kvm_exit");
                row.isa = Some(if isa == ISA_SVM { "svm" } else { "vmx" });
                row.reason = Some(reason);
                row.reason_name = self
                    .symbol(("kvm_exit", isa, reason), f, raw, big, "exit_reason")
                    .or_else(|| builtin_exit_reason_name(isa, reason));
                if isa != ISA_SVM {
                    let flags = reason & !0xffff;
                    row.flags = Some(flags);
                    if flags != 0 {
                        let mut names = Vec::new();
                        if flags & 0x8000_0000 != 0 {
                            names.push("FAILED_VMENTRY");
                        }
                        if flags & 0x0800_0000 != 0 {
                            names.push("SGX_ENCLAVE_MODE");
                        }
                        row.flag_names = Some(names.join(" "));
                    }
                }
                row.guest_rip = field_u64(f, raw, big, "guest_rip");
                row.info1 = field_u64(f, raw, big, "info1");
                row.info2 = field_u64(f, raw, big, "info2");
                row.intr_info = field_u64(f, raw, big, "intr_info");
                row.error_code = field_u64(f, raw, big, "error_code");
                row.vcpu = vcpu_field.or(row.vcpu);
                let t = self.thread(pid, tid);
                row.perf_kvm_counted = t.seen_entry;
                if let Some(prev) = t.open.replace(row) {
                    // An exit without its entry (lost events): keep it, open-ended.
                    self.push_exit(prev);
                }
            }
            "kvm_entry" => {
                let t = self.thread(pid, tid);
                t.seen_entry = true;
                if let Some(mut row) = t.open.take() {
                    row.entry_time_ns = time;
                    if let (Some(ts), Some(u)) = (time, row.userspace_time_ns) {
                        // userspace_time_ns holds the kvm_userspace_exit time until the entry.
                        row.userspace_time_ns = Some(ts.saturating_sub(u));
                    }
                    self.push_exit(row);
                }
            }
            "kvm_userspace_exit" => {
                let reason = field_u64(f, raw, big, "reason");
                let errno = field_i64(f, raw, big, "errno").unwrap_or(0);
                let name = if errno < 0 {
                    Some(if errno == -4 {
                        "restart".to_string()
                    } else {
                        "error".to_string()
                    })
                } else {
                    reason.and_then(|r| {
                        self.symbol(("kvm_userspace_exit", r, 0), f, raw, big, "reason")
                            .or_else(|| reasons::lookup(reasons::KVM_EXIT, r).map(str::to_string))
                    })
                };
                let has_open = self.threads.get(&tid).is_some_and(|t| t.open.is_some());
                if has_open {
                    if let Some(row) = self.thread(pid, tid).open.as_mut() {
                        row.userspace_reason = name;
                        row.userspace_time_ns = time;
                    }
                } else {
                    let mut row = self.take_pending(pid, tid, cpu, time, idx, "kvm_userspace_exit");
                    row.reason = reason;
                    row.reason_name = name.clone();
                    row.userspace_reason = name;
                    let awaits_pio =
                        errno >= 0 && reason == Some(KVM_EXIT_IO) && row.pio_port.is_none();
                    let key = (row.sample_idx, row.exit_idx);
                    self.push_exit(row);
                    self.thread(pid, tid).io_exit_awaiting_pio = awaits_pio.then_some(key);
                }
            }
            "kvm_pio" => {
                let port = field_u64(f, raw, big, "port");
                let size = field_u64(f, raw, big, "size");
                let write = field_u64(f, raw, big, "rw").map(|v| v != 0);
                let awaiting = self.threads.get_mut(&tid).and_then(|t| {
                    if t.open.is_none() {
                        t.io_exit_awaiting_pio.take()
                    } else {
                        None
                    }
                });
                if let (Some(i), Some(false)) = (awaiting, write) {
                    // A port read completing: it belongs to the KVM_EXIT_IO just before.
                    if let Some(row) = self.done.get_mut(&i) {
                        row.pio_port = port;
                        row.pio_size = size;
                        row.pio_write = write;
                    }
                    return;
                }
                self.flush_pending_io(pid, tid);
                self.detail(pid, tid, cpu, time, idx, |r| {
                    r.pio_port = port;
                    r.pio_size = size;
                    r.pio_write = write;
                });
            }
            "kvm_mmio" => {
                let gpa = field_u64(f, raw, big, "gpa");
                let len = field_u64(f, raw, big, "len");
                let ty = field_u64(f, raw, big, "type").map(|v| {
                    self.symbol(("kvm_mmio", v, 0), f, raw, big, "type")
                        .unwrap_or_else(|| match v {
                            0 => "unsatisfied-read".to_string(),
                            1 => "read".to_string(),
                            2 => "write".to_string(),
                            _ => v.to_string(),
                        })
                });
                // A read completes after the userspace exit; it belongs to that exit already.
                if ty.as_deref() == Some("read")
                    && self.threads.get(&tid).is_none_or(|t| t.open.is_none())
                {
                    return;
                }
                self.flush_pending_io(pid, tid);
                self.detail(pid, tid, cpu, time, idx, |r| {
                    if r.mmio_type.is_none() {
                        r.mmio_gpa = gpa;
                        r.mmio_len = len;
                        r.mmio_type = ty.clone();
                    }
                });
            }
            "kvm_msr" => {
                let index = field_u64(f, raw, big, "ecx");
                let write = field_u64(f, raw, big, "write").map(|v| v != 0);
                let has_open = self.threads.get(&tid).is_some_and(|t| t.open.is_some());
                if has_open {
                    if let Some(row) = self.thread(pid, tid).open.as_mut() {
                        row.msr_index = index;
                        row.msr_write = write;
                    }
                } else {
                    // PVM: MSR accesses are handled in the kernel, without a userspace exit.
                    self.flush_pending_io(pid, tid);
                    let mut row = self.take_pending(pid, tid, cpu, time, idx, "kvm_msr");
                    row.msr_index = index;
                    row.msr_write = write;
                    row.reason_name = Some(
                        if write == Some(true) {
                            "MSR_WRITE"
                        } else {
                            "MSR_READ"
                        }
                        .to_string(),
                    );
                    self.push_exit(row);
                }
            }
            "kvm_emulate_insn" => {
                let rip = field_u64(f, raw, big, "rip");
                if let Some(r) = rip {
                    self.guest_rips.insert((pid, r));
                }
                let has_open = self.threads.get(&tid).is_some_and(|t| t.open.is_some());
                let t = self.thread(pid, tid);
                if !has_open {
                    // Not `pending_any`: a guest RIP alone makes no row of its own (the next
                    // exit, made later, takes it), so it must not hold the watermark back.
                    t.pending.guest_rip = rip;
                }
            }
            "kvm_vcpu_wakeup" => {
                let ns = field_u64(f, raw, big, "ns");
                let waited = field_u64(f, raw, big, "waited").map(|v| v != 0);
                let valid = field_u64(f, raw, big, "valid").map(|v| v != 0);
                if let Some(row) = self.thread(pid, tid).open.as_mut() {
                    row.wakeup_ns = ns;
                    row.wakeup_waited = waited;
                    row.wakeup_valid = valid;
                }
            }
            "kvm_write_tsc_offset" => {
                let prev = field_u64(f, raw, big, "previous_tsc_offset").unwrap_or(0);
                let next = field_u64(f, raw, big, "next_tsc_offset").unwrap_or(0);
                self.tsc_offsets
                    .push((pid, tid, vcpu_field.unwrap_or(0), prev, next, time));
            }
            _ => {}
        }
    }

    fn new_row(
        &mut self,
        pid: i32,
        tid: i32,
        cpu: Option<u32>,
        time: Option<u64>,
        idx: u64,
        source: &'static str,
    ) -> ExitRow {
        let exit_idx = self.n_exits;
        self.n_exits += 1;
        let t = self.thread(pid, tid);
        ExitRow {
            exit_idx,
            vm_pid: pid,
            vcpu: t.vcpu_from_events.or(t.vcpu_from_name),
            tid,
            cpu,
            exit_time_ns: time,
            source,
            sample_idx: idx,
            ..Default::default()
        }
    }

    /// A PVM exit row from the details gathered since the previous one.
    fn take_pending(
        &mut self,
        pid: i32,
        tid: i32,
        cpu: Option<u32>,
        time: Option<u64>,
        idx: u64,
        source: &'static str,
    ) -> ExitRow {
        let mut row = self.new_row(pid, tid, cpu, time, idx, source);
        let t = self.thread(pid, tid);
        let p = std::mem::take(&mut t.pending);
        t.pending_any = false;
        t.io_exit_awaiting_pio = None;
        row.guest_rip = p.guest_rip;
        row.pio_port = p.pio_port;
        row.pio_size = p.pio_size;
        row.pio_write = p.pio_write;
        row.mmio_gpa = p.mmio_gpa;
        row.mmio_len = p.mmio_len;
        row.mmio_type = p.mmio_type;
        row
    }

    fn detail(
        &mut self,
        pid: i32,
        tid: i32,
        cpu: Option<u32>,
        time: Option<u64>,
        idx: u64,
        apply: impl FnOnce(&mut ExitRow),
    ) {
        let t = self.thread(pid, tid);
        match t.open.as_mut() {
            Some(row) => apply(row),
            None => {
                apply(&mut t.pending);
                // Where the port/MMIO access happened, should it stay an exit of its own.
                t.pending.exit_time_ns = time;
                t.pending.cpu = cpu;
                t.pending.sample_idx = idx;
                t.pending_any = true;
            }
        }
    }

    /// PVM: a kvm_pio/kvm_mmio that no kvm_userspace_exit claimed (the recording has none, or
    /// KVM handled the access in the kernel) becomes an exit of its own (`source` kvm_pio or
    /// kvm_mmio) when the next access or MSR exit of the thread comes, or at the end.
    fn flush_pending_io(&mut self, pid: i32, tid: i32) {
        let Some(t) = self.threads.get_mut(&tid) else {
            return;
        };
        if t.open.is_some() || (t.pending.pio_port.is_none() && t.pending.mmio_type.is_none()) {
            return;
        }
        let p = std::mem::take(&mut t.pending);
        t.pending_any = false;
        t.io_exit_awaiting_pio = None;
        let (source, name) = if p.pio_port.is_some() {
            ("kvm_pio", "pio")
        } else {
            ("kvm_mmio", "mmio")
        };
        let mut row = self.new_row(pid, tid, p.cpu, p.exit_time_ns, p.sample_idx, source);
        row.reason_name = Some(name.to_string());
        row.guest_rip = p.guest_rip;
        row.pio_port = p.pio_port;
        row.pio_size = p.pio_size;
        row.pio_write = p.pio_write;
        row.mmio_gpa = p.mmio_gpa;
        row.mmio_len = p.mmio_len;
        row.mmio_type = p.mmio_type;
        self.push_exit(row);
    }

    fn sched_switch(&mut self, f: &EventFormat, raw: &[u8], big: bool, time: Option<u64>) {
        let Some(ts) = time else { return };
        let prev = field_i64(f, raw, big, "prev_pid").map(|v| v as i32);
        let next = field_i64(f, raw, big, "next_pid").map(|v| v as i32);
        if let Some(t) = prev.and_then(|p| self.threads.get_mut(&p))
            && t.open.is_some()
        {
            t.sched_out_at = Some(ts);
        }
        if let Some(t) = next.and_then(|p| self.threads.get_mut(&p))
            && let (Some(at), Some(row)) = (t.sched_out_at.take(), t.open.as_mut())
        {
            *row.sched_out_ns.get_or_insert(0) += ts.saturating_sub(at);
        }
    }

    /// Writes `vms`, `vcpus`, `exits` and `tsc_offsets`, and hands over the distinct guest RIPs.
    /// `part` maps a table name to its file.
    pub fn close(
        mut self,
        part: &dyn Fn(&str) -> PathBuf,
        names: &HashMap<i32, String>,
    ) -> Result<KvmTables, Error> {
        if let Some(e) = self.write_error.take() {
            return Err(e);
        }
        // No more writes before the end: the open exits taken out of their threads below no
        // longer hold the watermark back.
        self.flush_every = 0;
        // Exits still open at the end are kept with a null entry time.
        let open: Vec<ExitRow> = self
            .threads
            .values_mut()
            .filter_map(|t| t.open.take())
            .collect();
        for r in open {
            self.push_exit(r);
        }
        let mut unclaimed: Vec<(i32, i32)> =
            self.threads.iter().map(|(tid, t)| (t.pid, *tid)).collect();
        unclaimed.sort_unstable();
        for (pid, tid) in unclaimed {
            self.flush_pending_io(pid, tid);
        }
        if let Some(e) = self.write_error.take() {
            return Err(e);
        }
        // The rest, in recording order of the event that started each exit.
        if self.exits_path.is_none() {
            self.exits_path = Some(part("exits"));
        }
        for t in self.threads.values_mut() {
            t.io_exit_awaiting_pio = None;
        }
        self.write_done(u64::MAX)?;
        let mut out = Vec::new();
        // vCPUs: threads that emitted vCPU events or carry a vCPU name of their own.
        let mut vcpus: BTreeMap<(i32, i32), &ThreadState> = BTreeMap::new();
        for (tid, t) in &self.threads {
            if t.vcpu_from_events.is_some() || t.vcpu_from_name.is_some() {
                vcpus.insert((t.pid, *tid), t);
            }
        }
        let doc = vcpus_doc();
        let mut w = TableWriter::new("vcpus", part("vcpus"), &doc.defs(), Vec::new())
            .compressed(self.compression);
        let mut vms: BTreeMap<i32, (u32, Option<u64>, Option<u64>)> = BTreeMap::new();
        // Two threads of one VM claiming the same vCPU is a conflict too.
        let mut claims: HashMap<(i32, u32), Vec<i32>> = HashMap::new();
        for ((pid, tid), t) in &vcpus {
            if let Some(v) = t.vcpu_from_events.or(t.vcpu_from_name) {
                claims.entry((*pid, v)).or_default().push(*tid);
            }
        }
        for ((pid, tid), t) in &vcpus {
            let vcpu = t.vcpu_from_events.or(t.vcpu_from_name);
            let mut conflict = match (t.vcpu_from_events, t.vcpu_from_name) {
                (Some(a), Some(b)) if a != b => Some(format!(
                    "kvm events say vcpu {a}, thread name says CPU {b}/KVM"
                )),
                _ => None,
            };
            if let Some(v) = vcpu
                && let Some(others) = claims.get(&(*pid, v)).filter(|o| o.len() > 1)
            {
                let msg = format!("tids {others:?} all claim vcpu {v}");
                conflict = Some(conflict.map_or(msg.clone(), |c| format!("{c}; {msg}")));
            }
            let source = match (t.vcpu_from_events, t.vcpu_from_name) {
                (Some(_), Some(_)) => "kvm_events+thread_name",
                (Some(_), None) => "kvm_events",
                _ => "thread_name",
            };
            w.i32(0, Some(*pid));
            w.u32(1, vcpu);
            w.i32(2, Some(*tid));
            w.u64(3, t.first_ns);
            w.u64(4, t.last_ns);
            w.str(5, Some(source));
            w.u64(6, Some(t.n_events));
            w.str(7, conflict.as_deref());
            w.end_row()?;
            let e = vms.entry(*pid).or_insert((0, None, None));
            e.0 += 1;
            if let Some(f) = t.first_ns {
                e.1 = Some(e.1.map_or(f, |x: u64| x.min(f)));
            }
            if let Some(l) = t.last_ns {
                e.2 = Some(e.2.map_or(l, |x: u64| x.max(l)));
            }
        }
        let (p, n) = w.close()?;
        out.push(("vcpus".to_string(), p, n));

        let doc = vms_doc();
        let mut w = TableWriter::new("vms", part("vms"), &doc.defs(), Vec::new())
            .compressed(self.compression);
        for (pid, (n, first, last)) in &vms {
            let comm = self
                .process_comm
                .get(pid)
                .cloned()
                .unwrap_or_else(|| format!(":{pid}"));
            w.i32(0, Some(*pid));
            w.str(1, Some(&comm));
            w.str(
                2,
                Some(
                    &names
                        .get(pid)
                        .cloned()
                        .unwrap_or_else(|| format!("{comm}:{pid}")),
                ),
            );
            w.u32(3, Some(*n));
            w.u64(4, *first);
            w.u64(5, *last);
            w.end_row()?;
        }
        let (p, n) = w.close()?;
        out.push(("vms".to_string(), p, n));

        let w = match self.exits_out.take() {
            Some(w) => w,
            None => TableWriter::new("exits", part("exits"), &exits_doc().defs(), Vec::new())
                .compressed(self.compression),
        };
        let (p, n) = w.close()?;
        out.push(("exits".to_string(), p, n));

        let doc = tsc_doc();
        let mut w = TableWriter::new("tsc_offsets", part("tsc_offsets"), &doc.defs(), Vec::new())
            .compressed(self.compression);
        for (pid, tid, vcpu, prev, next, time) in &self.tsc_offsets {
            w.i32(0, Some(*pid));
            w.i32(1, Some(*tid));
            w.u32(2, Some(*vcpu));
            w.u64(3, *time);
            w.u64(4, Some(*prev));
            w.u64(5, Some(*next));
            w.end_row()?;
        }
        let (p, n) = w.close()?;
        out.push(("tsc_offsets".to_string(), p, n));
        let mut guest_rips: Vec<(i32, u64)> =
            std::mem::take(&mut self.guest_rips).into_iter().collect();
        guest_rips.sort_unstable();
        Ok(KvmTables {
            tables: out,
            guest_rips,
        })
    }
}

/// One row of the `exits` table.
fn write_exit(w: &mut TableWriter, r: &ExitRow) -> Result<(), Error> {
    let duration = match (r.exit_time_ns, r.entry_time_ns) {
        (Some(a), Some(b)) if b >= a => Some(b - a),
        _ => None,
    };
    let userspace_ns = if r.entry_time_ns.is_some() && r.source == "kvm_exit" {
        r.userspace_time_ns.filter(|_| r.userspace_reason.is_some())
    } else {
        None
    };
    w.u64(0, Some(r.exit_idx));
    w.i32(1, Some(r.vm_pid));
    w.u32(2, r.vcpu);
    w.i32(3, Some(r.tid));
    w.u32(4, r.cpu);
    w.u64(5, r.exit_time_ns);
    w.u64(6, r.entry_time_ns);
    w.u64(7, duration);
    w.u64(8, r.reason);
    w.str(9, r.reason_name.as_deref());
    w.str(10, r.isa);
    w.u64(11, r.flags);
    w.str(12, r.flag_names.as_deref());
    w.u64(13, r.guest_rip);
    w.u64(14, r.info1);
    w.u64(15, r.info2);
    w.u64(16, r.intr_info);
    w.u64(17, r.error_code);
    w.str(18, Some(r.source));
    w.str(19, r.userspace_reason.as_deref());
    w.u64(20, userspace_ns);
    w.u64(21, r.pio_port);
    w.u64(22, r.pio_size);
    w.bool(23, r.pio_write);
    w.u64(24, r.mmio_gpa);
    w.u64(25, r.mmio_len);
    w.str(26, r.mmio_type.as_deref());
    w.u64(27, r.msr_index);
    w.bool(28, r.msr_write);
    w.u64(
        29,
        if r.source == "kvm_exit" && r.entry_time_ns.is_some() {
            Some(r.sched_out_ns.unwrap_or(0))
        } else {
            None
        },
    );
    w.u64(30, r.wakeup_ns);
    w.bool(31, r.wakeup_waited);
    w.bool(32, r.wakeup_valid);
    w.u64(33, Some(r.sample_idx));
    w.bool(34, Some(r.perf_kvm_counted && duration.is_some()));
    w.end_row()?;
    Ok(())
}

const NS: &str = "ns, host perf clock";

fn vms_doc() -> TableDoc {
    TableDoc {
        name: "vms",
        row: "one VM: a VMM process with at least one vCPU thread",
        columns: vec![
            col!("vm_pid", I32, false, "-", "VMM process id (the VM key)"),
            col!("comm", Str, false, "-", "VMM process name"),
            col!(
                "name",
                Str,
                false,
                "-",
                "default VM name `<comm>:<pid>` (ingest --guest-data/--guest-symbols VM=… names override it in analyses)"
            ),
            col!("n_vcpus", U32, false, "-", "vCPU threads seen"),
            col!("first_ns", U64, true, NS, "first KVM event of the VM"),
            col!("last_ns", U64, true, NS, "last KVM event of the VM"),
        ],
    }
}

fn vcpus_doc() -> TableDoc {
    TableDoc {
        name: "vcpus",
        row: "one vCPU thread of a VM",
        columns: vec![
            col!("vm_pid", I32, false, "-", "VMM process id"),
            col!("vcpu", U32, true, "-", "vCPU index within the VM"),
            col!("tid", I32, false, "-", "host thread running the vCPU"),
            col!("first_ns", U64, true, NS, "first KVM event of the thread"),
            col!("last_ns", U64, true, NS, "last KVM event of the thread"),
            col!(
                "source",
                Str,
                false,
                "-",
                "kvm_events (vcpu_id fields), thread_name (`CPU n/KVM`) or both"
            ),
            col!(
                "n_events",
                U64,
                false,
                "-",
                "KVM tracepoint samples of the thread"
            ),
            col!(
                "conflict",
                Str,
                true,
                "-",
                "set when the sources disagree or two threads claim one vCPU"
            ),
        ],
    }
}

fn exits_doc() -> TableDoc {
    TableDoc {
        name: "exits",
        row: "one VM exit (see `source` for how it was detected)",
        columns: vec![
            col!(
                "exit_idx",
                U64,
                false,
                "-",
                "0-based order of the exit in the recording"
            ),
            col!("vm_pid", I32, false, "-", "VMM process id"),
            col!("vcpu", U32, true, "-", "vCPU index within the VM"),
            col!("tid", I32, false, "-", "host thread of the vCPU"),
            col!("cpu", U32, true, "host cpu", "cpu of the exit event"),
            col!(
                "exit_time_ns",
                U64,
                true,
                NS,
                "kvm_exit time (PVM: the kvm_userspace_exit/kvm_msr time)"
            ),
            col!(
                "entry_time_ns",
                U64,
                true,
                NS,
                "next kvm_entry of the thread; null when still open at the end or unknown (PVM)"
            ),
            col!(
                "duration_ns",
                U64,
                true,
                "ns",
                "entry_time_ns - exit_time_ns"
            ),
            col!(
                "reason",
                U64,
                true,
                "-",
                "raw exit_reason (VMX with flag bits) / SVM exit code / KVM_EXIT_* code"
            ),
            col!(
                "reason_name",
                Str,
                true,
                "-",
                "name as the kernel prints it (EPT_VIOLATION, npf, KVM_EXIT_IO, MSR_WRITE for PVM in-kernel MSR exits, pio/mmio for PVM accesses without a kvm_userspace_exit)"
            ),
            col!(
                "isa",
                Str,
                true,
                "-",
                "vmx or svm from kvm_exit's isa field; null for PVM rows"
            ),
            col!(
                "flags",
                U64,
                true,
                "-",
                "VMX flag bits (exit_reason & ~0xffff)"
            ),
            col!(
                "flag_names",
                Str,
                true,
                "-",
                "FAILED_VMENTRY, SGX_ENCLAVE_MODE"
            ),
            col!(
                "guest_rip",
                U64,
                true,
                "guest address",
                "kvm_exit guest_rip (PVM: rip of the last kvm_emulate_insn)"
            ),
            col!(
                "info1",
                U64,
                true,
                "-",
                "kvm_exit info1 (exit qualification)"
            ),
            col!("info2", U64, true, "-", "kvm_exit info2"),
            col!("intr_info", U64, true, "-", "kvm_exit intr_info"),
            col!("error_code", U64, true, "-", "kvm_exit error_code"),
            col!(
                "source",
                Str,
                false,
                "-",
                "kvm_exit; on PVM hosts kvm_userspace_exit, kvm_msr, or kvm_pio/kvm_mmio for an access no kvm_userspace_exit claimed (not recorded, or handled in the kernel)"
            ),
            col!(
                "userspace_reason",
                Str,
                true,
                "-",
                "KVM_EXIT_* of a kvm_userspace_exit in the exit (handled by the VMM)"
            ),
            col!(
                "userspace_ns",
                U64,
                true,
                "ns",
                "from kvm_userspace_exit to kvm_entry: the VMM round trip"
            ),
            col!("pio_port", U64, true, "-", "kvm_pio port"),
            col!("pio_size", U64, true, "bytes", "kvm_pio size"),
            col!("pio_write", Bool, true, "-", "kvm_pio direction"),
            col!(
                "mmio_gpa",
                U64,
                true,
                "guest physical address",
                "kvm_mmio gpa"
            ),
            col!("mmio_len", U64, true, "bytes", "kvm_mmio len"),
            col!(
                "mmio_type",
                Str,
                true,
                "-",
                "write, read or unsatisfied-read"
            ),
            col!("msr_index", U64, true, "-", "kvm_msr ecx"),
            col!("msr_write", Bool, true, "-", "kvm_msr direction"),
            col!(
                "sched_out_ns",
                U64,
                true,
                "ns",
                "time the vCPU thread was scheduled out during the exit (sched_switch); null when not measurable"
            ),
            col!(
                "wakeup_ns",
                U64,
                true,
                "ns",
                "kvm_vcpu_wakeup ns (halt polling / blocking)"
            ),
            col!(
                "wakeup_waited",
                Bool,
                true,
                "-",
                "kvm_vcpu_wakeup: blocked (true) or polled"
            ),
            col!("wakeup_valid", Bool, true, "-", "kvm_vcpu_wakeup valid"),
            col!(
                "sample_idx",
                U64,
                false,
                "-",
                "samples row of the event that started the exit"
            ),
            col!(
                "perf_kvm_counted",
                Bool,
                false,
                "-",
                "perf kvm stat counts this exit (after the thread's first kvm_entry, with an entry)"
            ),
        ],
    }
}

fn tsc_doc() -> TableDoc {
    TableDoc {
        name: "tsc_offsets",
        row: "one kvm_write_tsc_offset event",
        columns: vec![
            col!("vm_pid", I32, false, "-", "VMM process id"),
            col!("tid", I32, false, "-", "thread that wrote it"),
            col!("vcpu", U32, false, "-", "vcpu_id field"),
            col!("time_ns", U64, true, NS, "event time"),
            col!(
                "previous_tsc_offset",
                U64,
                false,
                "TSC ticks",
                "offset before"
            ),
            col!(
                "next_tsc_offset",
                U64,
                false,
                "TSC ticks",
                "offset after (guest_tsc = host_tsc × scale + offset)"
            ),
        ],
    }
}

/// The KVM tables' documentation.
pub fn tables() -> Vec<TableDoc> {
    vec![vms_doc(), vcpus_doc(), exits_doc(), tsc_doc()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::format::parse_event_format;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::path::Path;

    // /sys/kernel/tracing/events/kvm/*/format of the Linux 6.18 host of the tracefmt fixtures.
    const KVM_EXIT: &str = include_str!("../../tests/data/tracefmt/kvm_exit.format");
    const KVM_ENTRY: &str = include_str!("../../tests/data/tracefmt/kvm_entry.format");
    const KVM_USERSPACE_EXIT: &str =
        include_str!("../../tests/data/tracefmt/kvm_userspace_exit.format");
    const KVM_PIO: &str = include_str!("../../tests/data/tracefmt/kvm_pio.format");
    const KVM_EMULATE_INSN: &str =
        include_str!("../../tests/data/tracefmt/kvm_emulate_insn.format");

    struct Formats {
        exit: EventFormat,
        entry: EventFormat,
        uexit: EventFormat,
        pio: EventFormat,
        emulate: EventFormat,
    }

    /// A payload of `f` with `common_type`, `common_pid` and `values` at their format offsets.
    fn payload(f: &EventFormat, tid: i32, values: &[(&str, u64)]) -> Vec<u8> {
        let len = f
            .common_fields
            .iter()
            .chain(&f.fields)
            .map(|x| x.offset + x.size)
            .max()
            .unwrap_or(0);
        let mut raw = vec![0u8; len];
        let common = [("common_type", f.id), ("common_pid", tid as u32 as u64)];
        for (name, v) in common.iter().chain(values) {
            let fld = f.field(name).unwrap_or_else(|| panic!("no field {name}"));
            assert!(fld.size <= 8);
            raw[fld.offset..fld.offset + fld.size].copy_from_slice(&v.to_le_bytes()[..fld.size]);
        }
        raw
    }

    enum Kind {
        Comm(&'static str),
        /// A FORK record giving the event's tid to a new thread.
        Fork,
        Exit {
            reason: u64,
            rip: u64,
        },
        Entry,
        Uexit {
            reason: u64,
        },
        Pio {
            write: bool,
            port: u64,
        },
        Emulate {
            rip: u64,
        },
    }

    struct Ev {
        time: u64,
        seq: usize,
        pid: i32,
        tid: i32,
        vcpu: u32,
        kind: Kind,
        /// The exit (index in the wanted list) this event starts.
        starts: Option<usize>,
    }

    /// One exit as the scenario defines it.
    #[derive(Debug, Clone)]
    struct Want {
        pid: i32,
        tid: i32,
        vcpu: u32,
        exit_ns: u64,
        entry_ns: Option<u64>,
        reason: Option<u64>,
        reason_name: &'static str,
        source: &'static str,
        port: Option<u64>,
        sample_idx: u64,
    }

    struct Scenario {
        events: Vec<Ev>,
        wants: Vec<Want>,
    }

    impl Scenario {
        fn ev(&mut self, time: u64, pid: i32, tid: i32, vcpu: u32, kind: Kind) -> &mut Ev {
            let seq = self.events.len();
            self.events.push(Ev {
                time,
                seq,
                pid,
                tid,
                vcpu,
                kind,
                starts: None,
            });
            self.events.last_mut().unwrap_or_else(|| unreachable!())
        }

        fn want(&mut self, w: Want) -> usize {
            self.wants.push(w);
            self.wants.len() - 1
        }

        /// Recording order: by time (COMM and FORK records are not samples); the exits in the
        /// order of the samples that start them.
        fn finish(mut self) -> Self {
            self.events.sort_by_key(|e| (e.time, e.seq));
            let mut idx = 0u64;
            for e in &self.events {
                if matches!(e.kind, Kind::Comm(_) | Kind::Fork) {
                    continue;
                }
                if let Some(w) = e.starts {
                    self.wants[w].sample_idx = idx;
                }
                idx += 1;
            }
            self.wants.sort_by_key(|w| w.sample_idx);
            self
        }
    }

    /// xorshift64: a reproducible scenario without a rand dependency.
    struct Rng(u64);
    impl Rng {
        fn range(&mut self, lo: u64, hi: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            lo + self.0 % (hi - lo)
        }
    }

    /// kvm_exit/kvm_entry exits of one VMX vCPU thread from `start`; exit `long` is a 2.5 ms
    /// HLT, the last one stays open when `open_at_end`. Returns the time after the last exit.
    #[allow(clippy::too_many_arguments)]
    fn vmx_thread(
        s: &mut Scenario,
        rng: &mut Rng,
        pid: i32,
        tid: i32,
        vcpu: u32,
        start: u64,
        n: usize,
        long: Option<usize>,
        open_at_end: bool,
    ) -> u64 {
        const REASONS: [(u64, &str, u64, u64); 4] = [
            (1, "EXTERNAL_INTERRUPT", 400, 3_000),
            (48, "EPT_VIOLATION", 1_000, 8_000),
            (30, "IO_INSTRUCTION", 5_000, 40_000),
            (32, "MSR_WRITE", 300, 1_500),
        ];
        let mut t = start;
        for k in 0..n {
            let (reason, name, dur) = if long == Some(k) {
                (12, "HLT", 2_500_000)
            } else {
                let (r, name, lo, hi) = REASONS[rng.range(0, REASONS.len() as u64) as usize];
                (r, name, rng.range(lo, hi))
            };
            let open = open_at_end && k + 1 == n;
            let port = (reason == 30).then_some(0x3f8);
            let w = s.want(Want {
                pid,
                tid,
                vcpu,
                exit_ns: t,
                entry_ns: (!open).then_some(t + dur),
                reason: Some(reason),
                reason_name: name,
                source: "kvm_exit",
                port,
                sample_idx: 0,
            });
            let rip = 0xffff_ffff_8100_0000 + rng.range(0, 0x10_0000);
            s.ev(t, pid, tid, vcpu, Kind::Exit { reason, rip }).starts = Some(w);
            if let Some(port) = port {
                // Attached to the open exit.
                s.ev(t + 150, pid, tid, vcpu, Kind::Pio { write: true, port });
            }
            if !open {
                s.ev(t + dur, pid, tid, vcpu, Kind::Entry);
            }
            t += dur + rng.range(200, 5_000);
        }
        t
    }

    /// A PVM vCPU thread (no kvm_exit/kvm_entry): kvm_userspace_exit and kvm_pio only, in a
    /// cycle of port read (the kvm_pio comes when the VMM completes it, 20 µs after the
    /// userspace exit), two port accesses handled in the kernel (exits of their own), a port
    /// write (kvm_pio before the userspace exit) and an MMIO userspace exit. Its vCPU (thread
    /// name) becomes known only after its first `named_after` exits.
    fn pvm_thread(
        s: &mut Scenario,
        rng: &mut Rng,
        (pid, tid, vcpu): (i32, i32, u32),
        start: u64,
        n: usize,
        named_after: usize,
    ) {
        let mut t = start;
        for k in 0..n {
            if k == named_after {
                s.ev(t, pid, tid, vcpu, Kind::Comm("CPU 1/KVM"));
                t += 100;
            }
            let mut want = Want {
                pid,
                tid,
                vcpu,
                exit_ns: t,
                entry_ns: None,
                reason: Some(KVM_EXIT_IO),
                reason_name: "KVM_EXIT_IO",
                source: "kvm_userspace_exit",
                port: None,
                sample_idx: 0,
            };
            match k % 5 {
                0 => {
                    want.port = Some(0x71);
                    let w = s.want(want);
                    s.ev(
                        t,
                        pid,
                        tid,
                        vcpu,
                        Kind::Uexit {
                            reason: KVM_EXIT_IO,
                        },
                    )
                    .starts = Some(w);
                    t += 20_000;
                    let port = 0x71;
                    s.ev(t, pid, tid, vcpu, Kind::Pio { write: false, port });
                }
                1 | 2 => {
                    let port = if k % 5 == 1 { 0x80 } else { 0x61 };
                    want.reason = None;
                    want.reason_name = "pio";
                    want.source = "kvm_pio";
                    want.port = Some(port);
                    let w = s.want(want);
                    s.ev(t, pid, tid, vcpu, Kind::Pio { write: true, port })
                        .starts = Some(w);
                }
                3 => {
                    let port = 0x3f8;
                    s.ev(t, pid, tid, vcpu, Kind::Pio { write: true, port });
                    t += 800;
                    want.exit_ns = t;
                    want.port = Some(port);
                    let w = s.want(want);
                    s.ev(
                        t,
                        pid,
                        tid,
                        vcpu,
                        Kind::Uexit {
                            reason: KVM_EXIT_IO,
                        },
                    )
                    .starts = Some(w);
                }
                _ => {
                    want.reason = Some(6);
                    want.reason_name = "KVM_EXIT_MMIO";
                    let w = s.want(want);
                    s.ev(t, pid, tid, vcpu, Kind::Uexit { reason: 6 }).starts = Some(w);
                }
            }
            t += rng.range(2_000, 15_000);
        }
    }

    /// Two VMs. VM 1000: vCPU 0 sits in a 2.5 ms HLT while vCPU 2 and VM 2000's vCPU 0 exit
    /// hundreds of times, then keeps exiting to the end; vCPU 1 ends inside an exit. VM 2000:
    /// vCPU 0 exits during the HLT, pauses, comes back and ends inside an exit; vCPU 1 is a PVM
    /// thread (after the HLT) named only after its first exits, ending with an unclaimed kvm_pio.
    fn scenario() -> Scenario {
        let mut s = Scenario {
            events: Vec::new(),
            wants: Vec::new(),
        };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for (pid, tid, comm) in [
            (1000, 1000, "qemu-system-x86"),
            (1000, 1001, "CPU 0/KVM"),
            (1000, 1002, "CPU 1/KVM"),
            (1000, 1003, "CPU 2/KVM"),
            (2000, 2000, "qemu-system-x86"),
            (2000, 2001, "CPU 0/KVM"),
        ] {
            s.ev(0, pid, tid, 0, Kind::Comm(comm));
        }
        let us = 1_000;
        let t0 = 1_000_000;
        // (pid, tid, vcpu, start, exits, the long HLT, open at the end)
        let vmx = [
            (1000, 1001, 0, t0, 200, Some(3), false),
            (1000, 1003, 2, t0 + 2_222, 150, None, false),
            (2000, 2001, 0, t0 + 3_333, 90, None, false),
            (1000, 1002, 1, t0 + 2_800 * us, 115, None, true),
            (2000, 2001, 0, t0 + 3_600 * us, 40, None, true),
        ];
        for (pid, tid, vcpu, start, n, long, open) in vmx {
            vmx_thread(&mut s, &mut rng, pid, tid, vcpu, start, n, long, open);
        }
        let pvm = (2000, 2002, 1);
        pvm_thread(&mut s, &mut rng, pvm, t0 + 2_600 * us, 5 * 24 + 2, 7);

        // The scenario has what it claims.
        let hlt = s.wants.iter().find(|w| w.reason_name == "HLT").cloned();
        let hlt = hlt.expect("a HLT");
        let hlt_end = hlt.entry_ns.expect("HLT entry");
        let during_hlt = s
            .wants
            .iter()
            .filter(|w| w.exit_ns > hlt.exit_ns && w.exit_ns < hlt_end);
        let during_hlt = during_hlt.count();
        assert!(during_hlt >= 200, "{during_hlt} exits during the HLT");
        let mut pvm: Vec<u64> = s
            .wants
            .iter()
            .filter(|w| w.tid == 2002)
            .map(|w| w.exit_ns)
            .collect();
        pvm.sort_unstable();
        let open: Vec<u64> = s
            .wants
            .iter()
            .filter(|w| w.entry_ns.is_none() && w.source == "kvm_exit")
            .map(|w| w.exit_ns)
            .collect();
        let last_open = open.iter().copied().max().unwrap_or(0);
        let last_vmx = s
            .wants
            .iter()
            .filter(|w| w.source == "kvm_exit")
            .map(|w| w.exit_ns);
        let last_vmx = last_vmx.max().unwrap_or(0);
        assert!(
            open.len() == 2
                && pvm[0] > hlt_end
                && open.iter().all(|&o| o > pvm[80] && o < pvm[pvm.len() - 1])
                && last_vmx > last_open,
            "HLT to {hlt_end}, PVM {}..{}, open at end {open:?}, last kvm_exit {last_vmx}",
            pvm[0],
            pvm[pvm.len() - 1]
        );

        s.finish()
    }

    /// Feeds the scenario to a model (streaming with `flush_every`, or `KvmModel::default()`
    /// writing everything at close) and reads its `exits` table back. Also returns the exits
    /// written before close and the most exits buffered at once.
    fn run(
        s: &Scenario,
        f: &Formats,
        flush_every: Option<usize>,
        dir: &Path,
    ) -> (RecordBatch, u64, usize) {
        let mut m = match flush_every {
            Some(n) => {
                let mut m = KvmModel::streaming(dir.join("exits.parquet"));
                m.flush_every = n;
                m
            }
            None => KvmModel::default(),
        };
        let mut idx = 0u64;
        let mut max_buffered = 0;
        for e in &s.events {
            let (fmt, raw) = match e.kind {
                Kind::Comm(comm) => {
                    m.on_comm(e.pid, e.tid, comm, Some(e.time));
                    continue;
                }
                Kind::Fork => {
                    m.on_fork(e.pid, e.tid, e.pid, e.pid, e.time);
                    continue;
                }
                Kind::Exit { reason, rip } => (
                    &f.exit,
                    payload(
                        &f.exit,
                        e.tid,
                        &[
                            ("exit_reason", reason),
                            ("guest_rip", rip),
                            ("isa", ISA_VMX),
                            ("info1", 0x181),
                            ("vcpu_id", u64::from(e.vcpu)),
                        ],
                    ),
                ),
                Kind::Entry => (
                    &f.entry,
                    payload(&f.entry, e.tid, &[("vcpu_id", u64::from(e.vcpu))]),
                ),
                Kind::Uexit { reason } => (
                    &f.uexit,
                    payload(&f.uexit, e.tid, &[("reason", reason), ("errno", 0)]),
                ),
                Kind::Pio { write, port } => (
                    &f.pio,
                    payload(
                        &f.pio,
                        e.tid,
                        &[
                            ("rw", u64::from(write)),
                            ("port", port),
                            ("size", 1),
                            ("count", 1),
                        ],
                    ),
                ),
                Kind::Emulate { rip } => (
                    &f.emulate,
                    payload(&f.emulate, e.tid, &[("rip", rip), ("len", 3)]),
                ),
            };
            let cpu = Some((e.tid % 8) as u32);
            m.on_tracepoint(
                fmt,
                &raw,
                false,
                idx,
                Some(e.time),
                cpu,
                Some(e.pid),
                Some(e.tid),
            );
            idx += 1;
            max_buffered = max_buffered.max(m.done.len());
        }
        assert!(m.write_error.is_none());
        let written_before_close = m.n_written;
        let part = |name: &str| dir.join(format!("{name}.parquet"));
        let closed = m.close(&part, &HashMap::new()).expect("close");
        let out = &closed.tables;
        let (_, path, rows) = out
            .iter()
            .find(|(name, _, _)| name == "exits")
            .expect("exits table");
        assert_eq!(*rows, s.wants.len() as u64);
        let file = std::fs::File::open(path).expect("open exits");
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader")
            .map(|b| b.expect("batch"))
            .collect();
        let schema = batches.first().expect("a batch").schema();
        let table = arrow::compute::concat_batches(&schema, &batches).expect("concat");
        // The guest RIPs handed over for exit_symbols: those of the exits written and of every
        // kvm_emulate_insn, each once, sorted.
        let mut rips: Vec<(i32, u64)> = u64s(&table, "vm_pid")
            .into_iter()
            .zip(u64s(&table, "guest_rip"))
            .filter_map(|(p, r)| Some((p? as i32, r?)))
            .chain(s.events.iter().filter_map(|e| match e.kind {
                Kind::Emulate { rip } => Some((e.pid, rip)),
                _ => None,
            }))
            .collect();
        rips.sort_unstable();
        rips.dedup();
        assert_eq!(closed.guest_rips, rips);
        (table, written_before_close, max_buffered)
    }

    fn u64s(b: &RecordBatch, name: &str) -> Vec<Option<u64>> {
        let c = b.column_by_name(name).expect(name);
        (0..c.len())
            .map(|i| {
                c.is_valid(i).then(|| match c.data_type() {
                    arrow::datatypes::DataType::UInt64 => c.as_primitive::<UInt64Type>().value(i),
                    arrow::datatypes::DataType::UInt32 => {
                        u64::from(c.as_primitive::<UInt32Type>().value(i))
                    }
                    arrow::datatypes::DataType::Int32 => {
                        c.as_primitive::<Int32Type>().value(i) as u64
                    }
                    t => panic!("{name}: {t}"),
                })
            })
            .collect()
    }

    fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let c = b.column_by_name(name).expect(name).as_string::<i32>();
        (0..c.len())
            .map(|i| c.is_valid(i).then(|| c.value(i).to_string()))
            .collect()
    }

    fn formats() -> Formats {
        Formats {
            exit: parse_event_format("kvm", KVM_EXIT).expect("kvm_exit"),
            entry: parse_event_format("kvm", KVM_ENTRY).expect("kvm_entry"),
            uexit: parse_event_format("kvm", KVM_USERSPACE_EXIT).expect("kvm_userspace_exit"),
            pio: parse_event_format("kvm", KVM_PIO).expect("kvm_pio"),
            emulate: parse_event_format("kvm", KVM_EMULATE_INSN).expect("kvm_emulate_insn"),
        }
    }

    /// The flush settings compared: every exit, every 7, production, and none before close
    /// (`KvmModel::default()`, the reference).
    const FLUSHES: [Option<usize>; 4] = [Some(1), Some(7), Some(FLUSH_EVERY), None];

    /// Runs `s` with every setting of [`FLUSHES`]; checks the tables are identical, in
    /// recording order, and hold exactly the scenario's exits. Returns the table and, per
    /// setting, the exits written before close and the most buffered at once.
    fn check(s: &Scenario) -> (RecordBatch, Vec<(Option<usize>, u64, usize)>) {
        let formats = formats();
        let mut tables = Vec::new();
        let mut stats = Vec::new();
        for flush_every in FLUSHES {
            let dir = tempfile::tempdir().expect("tempdir");
            let (t, written, buffered) = run(s, &formats, flush_every, dir.path());
            tables.push((flush_every, t));
            stats.push((flush_every, written, buffered));
        }
        let (_, reference) = &tables[tables.len() - 1];
        for (flush_every, t) in &tables {
            let order = u64s(t, "sample_idx");
            let unordered = order.windows(2).position(|p| p[0] >= p[1]);
            assert_eq!(
                unordered,
                None,
                "flush_every {flush_every:?}: rows out of recording order: {:?}",
                unordered.map(|i| &order[i.saturating_sub(2)..(i + 3).min(order.len())])
            );
            assert_eq!(t.schema(), reference.schema());
            for (field, (a, b)) in t
                .schema()
                .fields()
                .iter()
                .zip(t.columns().iter().zip(reference.columns()))
            {
                let first_diff = (0..a.len().max(b.len()))
                    .find(|&i| i >= a.len() || i >= b.len() || a.slice(i, 1) != b.slice(i, 1));
                assert_eq!(
                    first_diff,
                    None,
                    "flush_every {flush_every:?}: column {} differs from the table written at close",
                    field.name()
                );
            }
            assert_eq!(t, reference, "flush_every {flush_every:?}");
        }

        // Against the scenario's own exits, in recording order.
        let b = reference;
        assert_eq!(b.num_rows(), s.wants.len());
        let exit_idx = u64s(b, "exit_idx");
        let sample_idx = u64s(b, "sample_idx");
        let (vm_pid, tid, vcpu) = (u64s(b, "vm_pid"), u64s(b, "tid"), u64s(b, "vcpu"));
        let (exit_ns, entry_ns) = (u64s(b, "exit_time_ns"), u64s(b, "entry_time_ns"));
        let (duration, reason) = (u64s(b, "duration_ns"), u64s(b, "reason"));
        let (reason_name, source) = (strs(b, "reason_name"), strs(b, "source"));
        let port = u64s(b, "pio_port");
        for (i, w) in s.wants.iter().enumerate() {
            let ctx = format!("row {i}: {w:?}");
            assert_eq!(exit_idx[i], Some(i as u64), "{ctx}");
            assert_eq!(sample_idx[i], Some(w.sample_idx), "{ctx}");
            assert_eq!(vm_pid[i], Some(w.pid as u64), "{ctx}");
            assert_eq!(tid[i], Some(w.tid as u64), "{ctx}");
            assert_eq!(vcpu[i], Some(u64::from(w.vcpu)), "{ctx}");
            assert_eq!(exit_ns[i], Some(w.exit_ns), "{ctx}");
            assert_eq!(entry_ns[i], w.entry_ns, "{ctx}");
            assert_eq!(duration[i], w.entry_ns.map(|e| e - w.exit_ns), "{ctx}");
            assert_eq!(reason[i], w.reason, "{ctx}");
            assert_eq!(reason_name[i].as_deref(), Some(w.reason_name), "{ctx}");
            assert_eq!(source[i].as_deref(), Some(w.source), "{ctx}");
            assert_eq!(port[i], w.port, "{ctx}");
        }
        (b.clone(), stats)
    }

    /// The streamed `exits` table does not depend on how often finished exits are written:
    /// out-of-order entries across threads (a 2.5 ms HLT spanning hundreds of exits), exits
    /// open at the end on two threads, a PVM thread whose vCPU is named after its first exits,
    /// port reads completed after their userspace exit and unclaimed port accesses.
    #[test]
    fn streamed_exits_do_not_depend_on_flush_every() {
        let s = scenario();
        assert!(s.wants.len() > 500, "{} exits", s.wants.len());
        for (flush_every, written, buffered) in check(&s).1 {
            match flush_every {
                // The table was streamed, and the long HLT and the late vCPU name held it back.
                Some(n) if n < s.wants.len() => {
                    assert!(written > 0, "flush_every {n}: nothing written before close");
                    assert!(
                        buffered > 50,
                        "flush_every {n}: at most {buffered} buffered"
                    );
                }
                _ => assert_eq!(written, 0, "flush_every {flush_every:?}"),
            }
        }
    }

    /// Exits made before their thread's vCPU was known keep the vCPU the thread had, even when
    /// the thread is renamed or its tid is reused (FORK) before they are written.
    #[test]
    fn buffered_exits_keep_the_vcpu_of_their_thread() {
        let mut s = Scenario {
            events: Vec::new(),
            wants: Vec::new(),
        };
        // Two PVM threads of VM 3000, named after their first exits.
        let mut t = 1_000;
        for (tid, vcpu, comm, then, then_vcpu) in [
            (3001, 0, "CPU 0/KVM", Kind::Fork, 0),
            (3002, 1, "CPU 1/KVM", Kind::Comm("worker"), 1),
            (3003, 2, "CPU 2/KVM", Kind::Entry, 5),
        ] {
            for k in 0..6 {
                if k == 3 {
                    s.ev(t, 3000, tid, vcpu, Kind::Comm(comm));
                }
                let w = s.want(Want {
                    pid: 3000,
                    tid,
                    vcpu,
                    exit_ns: t,
                    entry_ns: None,
                    reason: Some(6),
                    reason_name: "KVM_EXIT_MMIO",
                    source: "kvm_userspace_exit",
                    port: None,
                    sample_idx: 0,
                });
                s.ev(t, 3000, tid, vcpu, Kind::Uexit { reason: 6 }).starts = Some(w);
                t += 1_000;
            }
            // The tid goes to another thread, the thread stops being a vCPU, or its events
            // (kvm_entry's vcpu_id) disagree with its name.
            s.ev(t, 3000, tid, then_vcpu, then);
            t += 1_000;
        }
        check(&s.finish());
    }

    /// A PVM thread whose last event is a kvm_emulate_insn (no exit row made yet, nothing that
    /// can come before the rows after it) does not keep the other threads' exits buffered.
    #[test]
    fn an_emulated_instruction_does_not_stall_streaming() {
        let mut s = Scenario {
            events: Vec::new(),
            wants: Vec::new(),
        };
        let (pid, pvm, vmx) = (4000, 4001, 4002);
        s.ev(0, pid, pvm, 0, Kind::Comm("CPU 0/KVM"));
        s.ev(0, pid, vmx, 1, Kind::Comm("CPU 1/KVM"));
        let rip = 0xffff_ffff_8123_4567;
        s.ev(1_000, pid, pvm, 0, Kind::Emulate { rip });
        let w = s.want(Want {
            pid,
            tid: pvm,
            vcpu: 0,
            exit_ns: 2_000,
            entry_ns: None,
            reason: Some(6),
            reason_name: "KVM_EXIT_MMIO",
            source: "kvm_userspace_exit",
            port: None,
            sample_idx: 0,
        });
        s.ev(2_000, pid, pvm, 0, Kind::Uexit { reason: 6 }).starts = Some(w);
        // Emulated in the kernel; the vCPU then idles.
        s.ev(3_000, pid, pvm, 0, Kind::Emulate { rip: rip + 3 });
        let mut rng = Rng(7);
        vmx_thread(&mut s, &mut rng, pid, vmx, 1, 4_000, 200, None, false);
        let s = s.finish();
        let (table, stats) = check(&s);
        // The MMIO exit has the RIP of the instruction emulated before it.
        assert_eq!(u64s(&table, "guest_rip")[0], Some(rip));
        for (flush_every, written, buffered) in stats {
            if flush_every == Some(1) {
                assert!(
                    buffered < 10,
                    "{buffered} exits buffered, {written} written"
                );
            }
        }
    }
}
