//! The dataset schema: every fixed table and column, with unit and meaning. This is the contract
//! between ingest, analyze and the notebooks; docs/schema.md is generated from it
//! ([`markdown`]) and a test checks that the two agree.

use crate::table::{ColType, ColumnDef};

/// One documented column.
#[derive(Debug, Clone)]
pub struct ColumnDoc {
    /// Column name.
    pub name: &'static str,
    /// Type.
    pub ty: ColType,
    /// Whether nulls occur.
    pub nullable: bool,
    /// Unit and clock domain (`ns, host perf clock`), or `-`.
    pub unit: &'static str,
    /// What the value means.
    pub meaning: &'static str,
}

/// One documented table.
#[derive(Debug, Clone)]
pub struct TableDoc {
    /// Table name (directory name in the dataset).
    pub name: &'static str,
    /// What one row is.
    pub row: &'static str,
    /// Its columns, in file order.
    pub columns: Vec<ColumnDoc>,
}

impl TableDoc {
    /// The column definitions for the writer.
    pub fn defs(&self) -> Vec<ColumnDef> {
        self.columns
            .iter()
            .map(|c| ColumnDef::new(c.name, c.ty, c.nullable))
            .collect()
    }

    /// Index of a column by name (for writers: computed once).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A [`ColumnDoc`] in one line: name, type, nullable, unit, meaning.
macro_rules! col {
    ($name:expr, $ty:ident, $null:expr, $unit:expr, $meaning:expr) => {
        ColumnDoc {
            name: $name,
            ty: ColType::$ty,
            nullable: $null,
            unit: $unit,
            meaning: $meaning,
        }
    };
}
pub(crate) use col;

const NS: &str = "ns, host perf clock";

/// `samples`.
pub fn samples() -> TableDoc {
    TableDoc {
        name: "samples",
        row: "one PERF_RECORD_SAMPLE, in perf's processing order (time order within the rounds perf flushes)",
        columns: vec![
            col!(
                "sample_idx",
                U64,
                false,
                "-",
                "0-based index of the sample in processing order; key shared with the tracepoint tables"
            ),
            col!(
                "time_ns",
                U64,
                true,
                NS,
                "PERF_SAMPLE_TIME; null when not recorded"
            ),
            col!("cpu", U32, true, "host cpu", "PERF_SAMPLE_CPU"),
            col!(
                "pid",
                I32,
                true,
                "-",
                "PERF_SAMPLE_TID pid (for guest-mode samples: the VMM process)"
            ),
            col!(
                "tid",
                I32,
                true,
                "-",
                "PERF_SAMPLE_TID tid (for guest-mode samples: the vCPU thread)"
            ),
            col!(
                "comm",
                Str,
                false,
                "-",
                "thread name when the sample was processed, as perf script prints it (`:tid` for unknown and guest-machine threads)"
            ),
            col!(
                "event",
                Str,
                false,
                "-",
                "event name as perf prints it (`cycles:ppp`, `kvm:kvm_exit`)"
            ),
            col!("event_idx", U32, false, "-", "row of the event in `events`"),
            col!(
                "period",
                U64,
                true,
                "event counts",
                "PERF_SAMPLE_PERIOD, or the attr's fixed sample_period when not recorded (as perf)"
            ),
            col!(
                "ip",
                U64,
                true,
                "address",
                "PERF_SAMPLE_IP (guest RIP for guest-mode samples)"
            ),
            col!(
                "cpumode",
                Str,
                false,
                "-",
                "host_kernel, host_user, guest_kernel, guest_user, hypervisor or unknown (record misc)"
            ),
            col!(
                "stack_id",
                U32,
                true,
                "-",
                "frames in `stacks` (the callchain, or the ip alone); null when the sample has neither"
            ),
            col!("addr", U64, true, "address", "PERF_SAMPLE_ADDR"),
            col!("id", U64, true, "-", "PERF_SAMPLE_ID / IDENTIFIER"),
            col!("stream_id", U64, true, "-", "PERF_SAMPLE_STREAM_ID"),
            col!(
                "read_time_enabled",
                U64,
                true,
                "ns",
                "PERF_SAMPLE_READ time_enabled"
            ),
            col!(
                "read_time_running",
                U64,
                true,
                "ns",
                "PERF_SAMPLE_READ time_running"
            ),
            col!(
                "read_values",
                ListU64,
                true,
                "event counts",
                "PERF_SAMPLE_READ values (one, or each group member's)"
            ),
            col!(
                "read_ids",
                ListU64,
                true,
                "-",
                "PERF_SAMPLE_READ ids, parallel to read_values (0 when not recorded)"
            ),
            col!(
                "read_periods",
                ListU64,
                true,
                "event counts",
                "each read value's growth since the previous sample reading the same id (time order): the period of the sample perf delivers for the id's event, none when 0"
            ),
            col!(
                "branch_from",
                ListU64,
                true,
                "address",
                "PERF_SAMPLE_BRANCH_STACK sources, newest first"
            ),
            col!(
                "branch_to",
                ListU64,
                true,
                "address",
                "PERF_SAMPLE_BRANCH_STACK targets"
            ),
            col!(
                "branch_flags",
                ListU64,
                true,
                "-",
                "PERF_SAMPLE_BRANCH_STACK flag words"
            ),
            col!("user_regs_abi", U64, true, "-", "PERF_SAMPLE_REGS_USER abi"),
            col!(
                "user_regs",
                ListU64,
                true,
                "-",
                "PERF_SAMPLE_REGS_USER registers in sample_regs_user bit order"
            ),
            col!(
                "user_stack",
                Bin,
                true,
                "bytes",
                "PERF_SAMPLE_STACK_USER copy, cut to dyn_size"
            ),
            col!(
                "weight",
                U64,
                true,
                "-",
                "PERF_SAMPLE_WEIGHT or WEIGHT_STRUCT (raw u64)"
            ),
            col!("data_src", U64, true, "-", "PERF_SAMPLE_DATA_SRC"),
            col!("transaction", U64, true, "-", "PERF_SAMPLE_TRANSACTION"),
            col!("phys_addr", U64, true, "address", "PERF_SAMPLE_PHYS_ADDR"),
            col!("cgroup", U64, true, "-", "PERF_SAMPLE_CGROUP id"),
            col!(
                "raw",
                Bin,
                true,
                "bytes",
                "PERF_SAMPLE_RAW, kept only when no tracepoint table decodes it"
            ),
            col!("intr_regs_abi", U64, true, "-", "PERF_SAMPLE_REGS_INTR abi"),
            col!(
                "intr_regs",
                ListU64,
                true,
                "-",
                "PERF_SAMPLE_REGS_INTR registers in sample_regs_intr bit order"
            ),
            col!(
                "data_page_size",
                U64,
                true,
                "bytes",
                "PERF_SAMPLE_DATA_PAGE_SIZE: page size of the data address"
            ),
            col!(
                "code_page_size",
                U64,
                true,
                "bytes",
                "PERF_SAMPLE_CODE_PAGE_SIZE: page size of the ip"
            ),
            col!("aux", Bin, true, "bytes", "PERF_SAMPLE_AUX data"),
        ],
    }
}

/// `stacks`.
pub fn stacks() -> TableDoc {
    TableDoc {
        name: "stacks",
        row: "one distinct callchain per address space (interned)",
        columns: vec![
            col!("stack_id", U32, false, "-", "key used by samples.stack_id"),
            col!(
                "pid",
                I32,
                false,
                "-",
                "process whose address space the user (or guest) frames belong to; -1 for kernel-only stacks"
            ),
            col!(
                "frames",
                ListU64,
                false,
                "address",
                "callchain addresses, leaf first, context markers removed; the sample ip alone when no callchain was recorded (or a guest-mode sample's has no address); empty when a host sample's recorded callchain has no address or holds a value at or above PERF_CONTEXT_MAX that is no context marker (perf script prints no frame for either; the raw chain stays in samples only as its ip); LBR-stitched for --call-graph lbr as perf shows it; for --call-graph dwarf the recorded kernel part then the user stack unwound from the sample's stack copy (ip, then return addresses - 1, as perf prints them)"
            ),
            col!(
                "frame_modes",
                ListStr,
                false,
                "-",
                "cpumode of each frame, from the PERF_CONTEXT_* markers (host_kernel, host_user, guest_kernel, guest_user, hypervisor)"
            ),
            col!(
                "frame_ids",
                ListU32,
                true,
                "-",
                "the frames table's frame_id of each frame (the guest_frames table's for guest_stacks), leaf first, parallel to `frames`; null when ingest resolved no symbols (--no-symbols)"
            ),
        ],
    }
}

/// `frames`.
pub fn frames() -> TableDoc {
    TableDoc {
        name: "frames",
        row: "one distinct frame × inline level: a callchain address as mapped (address space, dso, offset) when a stack holding it was first seen, resolved; `stacks.frame_ids` lists each stack's frames (join on frame_id; a frame's levels go root side first: inline_depth 0, then what is inlined into it)",
        columns: vec![
            col!(
                "frame_id",
                U32,
                false,
                "-",
                "key used by stacks.frame_ids (guest_stacks.frame_ids for the guest_frames table); with several guest recordings ids continue from one recording to the next"
            ),
            col!(
                "inline_depth",
                U32,
                false,
                "-",
                "0 = the function that contains the address; 1.. = functions inlined into it, innermost last"
            ),
            col!("addr", U64, false, "address", "the callchain address"),
            col!(
                "cpumode",
                Str,
                false,
                "-",
                "host_kernel, host_user, guest_kernel, guest_user, hypervisor"
            ),
            col!(
                "dso",
                Str,
                true,
                "-",
                "mapped file (`/tmp/perf-<pid>.map` for a process's anonymous executable memory, as perf names a JIT's code) or [kernel.kallsyms], [guest.kernel.kallsyms], [module]; null when no mapping covers the address"
            ),
            col!(
                "dso_offset",
                U64,
                true,
                "bytes",
                "address relative to the mapping as perf prints it (ip - start + pgoff; kernel: the address)"
            ),
            col!(
                "symbol",
                Str,
                true,
                "-",
                "demangled function name; null when unresolved"
            ),
            col!("sym_offset", U64, true, "bytes", "address - symbol start"),
            col!("file", Str, true, "-", "source file (DWARF)"),
            col!("line", U32, true, "-", "source line (DWARF)"),
            col!(
                "name",
                Str,
                false,
                "-",
                "the frame name flame graphs use: symbol as perf prints it (C++ without parameters, qualifiers, clone suffix or return type; a name no demangler changed whole; in an unwound frame each level as binutils' addr2line names it, as perf does there; JIT code as its perf map lists it), else `[<dso basename>]` (inferno's rule), else `[unknown]`"
            ),
            col!(
                "unwound",
                Bool,
                false,
                "-",
                "a user frame kvmtrace unwound from the sample's stack copy (--call-graph dwarf); perf script (6.1) lists inlined functions (inline_depth > 0) for such frames only, and `kvmtrace flame` by default too"
            ),
        ],
    }
}

/// `guest_samples`: the samples of a guest-side recording (`--guest-data`), on the host clock.
pub fn guest_samples() -> TableDoc {
    let mut t = samples();
    t.name = "guest_samples";
    t.row = "one PERF_RECORD_SAMPLE of a guest-side recording; `time_ns` is converted to the host perf clock, stack_id refers to guest_stacks; with several guest recordings, sample_idx, event_idx and stack_id continue from one recording to the next (keys within the recording)";
    t.columns.extend([
        col!(
            "vm_pid",
            I32,
            false,
            "-",
            "VMM process of the VM on the host"
        ),
        col!("vm", Str, false, "-", "VM display name"),
        col!("vcpu", U32, true, "-", "vCPU (= guest cpu)"),
        col!(
            "guest_time_ns",
            U64,
            true,
            "ns, guest perf clock",
            "the sample time as the guest recorded it"
        ),
    ]);
    t
}

/// `events`.
pub fn events() -> TableDoc {
    TableDoc {
        name: "events",
        row: "one perf_event_attr",
        columns: vec![
            col!(
                "event_idx",
                U32,
                false,
                "-",
                "key used by samples.event_idx"
            ),
            col!("name", Str, false, "-", "event name as perf prints it"),
            col!(
                "type",
                U32,
                false,
                "-",
                "attr.type (0 hardware, 1 software, 2 tracepoint, 4 raw …)"
            ),
            col!(
                "config",
                U64,
                false,
                "-",
                "attr.config (tracepoint id for tracepoints)"
            ),
            col!("sample_type", U64, false, "-", "attr.sample_type bits"),
            col!("read_format", U64, false, "-", "attr.read_format bits"),
            col!(
                "sample_period",
                U64,
                true,
                "event counts",
                "attr.sample_period (null when freq)"
            ),
            col!(
                "sample_freq",
                U64,
                true,
                "Hz",
                "attr.sample_freq (null when a period)"
            ),
            col!(
                "attr_flags",
                U64,
                false,
                "-",
                "attr flag bits (exclude_*, sample_id_all, precise_ip …)"
            ),
            col!("attr_size", U32, false, "bytes", "attr.size as recorded"),
            col!("ids", ListU64, false, "-", "sample ids of this event"),
            col!(
                "tracepoint_table",
                Str,
                true,
                "-",
                "name of the tracepoint table (`kvm__kvm_exit`), when decoded"
            ),
            col!(
                "n_samples",
                U64,
                false,
                "-",
                "samples of this event in the recording"
            ),
        ],
    }
}

/// `threads`.
pub fn threads() -> TableDoc {
    TableDoc {
        name: "threads",
        row: "one (thread, comm) interval, from COMM, FORK and EXIT records",
        columns: vec![
            col!("machine", Str, false, "-", "host or guest"),
            col!("pid", I32, false, "-", "process id"),
            col!("tid", I32, false, "-", "thread id"),
            col!("comm", Str, false, "-", "thread name during the interval"),
            col!(
                "start_ns",
                U64,
                true,
                NS,
                "when the name became current (null: before the recording / unknown)"
            ),
            col!(
                "end_ns",
                U64,
                true,
                NS,
                "when it was replaced (null: still current at the end)"
            ),
            col!("exit_ns", U64, true, NS, "EXIT time of the thread, if seen"),
            col!("exec", Bool, false, "-", "the name came from exec"),
        ],
    }
}

/// `mmaps`.
pub fn mmaps() -> TableDoc {
    TableDoc {
        name: "mmaps",
        row: "one MMAP or MMAP2 record (host and guest machines)",
        columns: vec![
            col!("time_ns", U64, true, NS, "sample_id_all time"),
            col!("machine", Str, false, "-", "host or guest (record cpumode)"),
            col!("cpumode", Str, false, "-", "record cpumode"),
            col!(
                "pid",
                I32,
                false,
                "-",
                "process id (-1 for the host kernel)"
            ),
            col!("tid", I32, false, "-", "thread id"),
            col!("start", U64, false, "address", "mapping start"),
            col!("len", U64, false, "bytes", "mapping length"),
            col!(
                "pgoff",
                U64,
                false,
                "bytes",
                "file offset of the mapping (kernel: the address of _text)"
            ),
            col!(
                "filename",
                Str,
                false,
                "-",
                "mapped file or [kernel.kallsyms], [vdso] …"
            ),
            col!(
                "build_id",
                Str,
                true,
                "-",
                "hex build id from MMAP2 (PERF_RECORD_MISC_MMAP_BUILD_ID) or the BUILD_ID header"
            ),
            col!("maj", U32, true, "-", "MMAP2 device major"),
            col!("min", U32, true, "-", "MMAP2 device minor"),
            col!("ino", U64, true, "-", "MMAP2 inode"),
            col!("prot", U32, true, "-", "MMAP2 protection"),
            col!("flags", U32, true, "-", "MMAP2 flags"),
        ],
    }
}

/// `build_ids`.
pub fn build_ids() -> TableDoc {
    TableDoc {
        name: "build_ids",
        row: "one entry of the BUILD_ID header feature",
        columns: vec![
            col!(
                "pid",
                I32,
                false,
                "-",
                "-1 for the host; for guest machines the VMM pid (0: the default guest)"
            ),
            col!(
                "cpumode",
                Str,
                false,
                "-",
                "host_kernel, host_user, guest_kernel, guest_user"
            ),
            col!("build_id", Str, false, "-", "hex build id"),
            col!("filename", Str, false, "-", "DSO path"),
        ],
    }
}

/// `meta`.
pub fn meta() -> TableDoc {
    TableDoc {
        name: "meta",
        row: "one recording (exactly one row per partition)",
        columns: vec![
            col!(
                "recording",
                Str,
                false,
                "-",
                "recording id: file stem and the first 8 hex digits of its SHA-256"
            ),
            col!(
                "host",
                Str,
                false,
                "-",
                "host partition key (sanitised hostname, `unknown` when absent)"
            ),
            col!(
                "source_file",
                Str,
                false,
                "-",
                "path of the perf.data as given (`-` for stdin; a perf.data directory's path)"
            ),
            col!(
                "source_sha256",
                Str,
                false,
                "-",
                "SHA-256 of the input bytes (of a perf.data directory: its `data` file, then each `data.N` in the order of N)"
            ),
            col!(
                "source_bytes",
                U64,
                false,
                "bytes",
                "input size (of a perf.data directory: `data` and the `data.N` files)"
            ),
            col!(
                "pipe_mode",
                Bool,
                false,
                "-",
                "the input was a pipe-mode stream"
            ),
            col!("hostname", Str, true, "-", "HEADER_HOSTNAME"),
            col!("os_release", Str, true, "-", "HEADER_OSRELEASE"),
            col!("perf_version", Str, true, "-", "HEADER_VERSION"),
            col!("arch", Str, true, "-", "HEADER_ARCH"),
            col!("nr_cpus_online", U32, true, "-", "HEADER_NRCPUS online"),
            col!("nr_cpus_avail", U32, true, "-", "HEADER_NRCPUS available"),
            col!("cpu_desc", Str, true, "-", "HEADER_CPUDESC"),
            col!(
                "cpuid",
                Str,
                true,
                "-",
                "HEADER_CPUID (perf kvm stat picks VMX/SVM from it)"
            ),
            col!("total_mem_kb", U64, true, "kB", "HEADER_TOTAL_MEM"),
            col!("cmdline", Str, true, "-", "HEADER_CMDLINE joined by spaces"),
            col!("clockid", U32, true, "-", "HEADER_CLOCK_DATA clock id"),
            col!(
                "clock_wall_ns",
                U64,
                true,
                "ns since the epoch",
                "HEADER_CLOCK_DATA wall clock at clock_ref_ns"
            ),
            col!(
                "clock_ref_ns",
                U64,
                true,
                NS,
                "HEADER_CLOCK_DATA perf clock at clock_wall_ns"
            ),
            col!(
                "time_first_ns",
                U64,
                true,
                NS,
                "HEADER_SAMPLE_TIME first, else the first sample time"
            ),
            col!(
                "time_last_ns",
                U64,
                true,
                NS,
                "HEADER_SAMPLE_TIME last, else the last sample time"
            ),
            col!("n_samples", U64, false, "-", "rows in samples"),
            col!(
                "kvmtrace_version",
                Str,
                false,
                "-",
                "version of kvmtrace that wrote the dataset"
            ),
            col!(
                "schema_version",
                U32,
                false,
                "-",
                "schema version of the tables"
            ),
        ],
    }
}

/// `lost`.
pub fn lost() -> TableDoc {
    TableDoc {
        name: "lost",
        row: "one LOST, LOST_SAMPLES, THROTTLE or UNTHROTTLE record",
        columns: vec![
            col!(
                "kind",
                Str,
                false,
                "-",
                "lost, lost_samples, throttle or unthrottle"
            ),
            col!("time_ns", U64, true, NS, "record or trailer time"),
            col!("cpu", U32, true, "host cpu", "trailer cpu"),
            col!("id", U64, true, "-", "event id"),
            col!(
                "n_lost",
                U64,
                true,
                "records",
                "how many records were lost (LOST, LOST_SAMPLES)"
            ),
        ],
    }
}

/// `ingest_report`.
pub fn ingest_report() -> TableDoc {
    TableDoc {
        name: "ingest_report",
        row: "one record type with its count, or one warning",
        columns: vec![
            col!(
                "kind",
                Str,
                false,
                "-",
                "record (a record type count) or warning"
            ),
            col!(
                "name",
                Str,
                false,
                "-",
                "record type (SAMPLE, MMAP2 …) or warning kind (truncated, corrupt_record …)"
            ),
            col!(
                "n_records",
                U64,
                false,
                "-",
                "records of that type, or occurrences of the warning"
            ),
            col!(
                "n_bytes",
                U64,
                false,
                "bytes",
                "bytes of those records, or bytes skipped"
            ),
            col!(
                "offset",
                U64,
                true,
                "byte offset",
                "where the (first) warning applies"
            ),
            col!("message", Str, true, "-", "the warning text"),
        ],
    }
}

/// The common columns that start every tracepoint table `<system>__<event>`; the event's own
/// fields follow, typed from the recording's format (unsigned ≤ 4 bytes → UInt32, 8 → UInt64,
/// signed → Int32/Int64, char arrays and `__data_loc char[]` → Utf8, other arrays → Binary).
/// A field whose name collides with a common column is written as `field_<name>`.
pub fn tracepoint_common() -> TableDoc {
    TableDoc {
        name: "<system>__<event>",
        row: "one sample of that tracepoint",
        columns: vec![
            col!("sample_idx", U64, false, "-", "the sample's row in samples"),
            col!("time_ns", U64, true, NS, "sample time"),
            col!("cpu", U32, true, "host cpu", "sample cpu"),
            col!("pid", I32, true, "-", "sample pid"),
            col!("tid", I32, true, "-", "sample tid"),
        ],
    }
}

/// `exit_symbols`: the guest code at every distinct guest RIP of the exits, resolved at ingest
/// through the VM's guest symbols.
pub fn exit_symbols() -> TableDoc {
    TableDoc {
        name: "exit_symbols",
        row: "one distinct (vm_pid, guest_rip) of `exits.guest_rip` and `kvm__kvm_emulate_insn.rip`, resolved at ingest through the VM's guest symbols (`--guest-symbols VM=BUNDLE`, or perf's `--guestkallsyms`/`--guestmodules`/`--guestvmlinux` for every VM without a bundle); join on (host, recording, vm_pid, guest_rip); not written when ingest does not symbolise",
        columns: vec![
            col!("vm_pid", I32, false, "-", "VMM process id (exits.vm_pid)"),
            col!(
                "guest_rip",
                U64,
                false,
                "guest address",
                "the guest RIP (exits.guest_rip; kvm__kvm_emulate_insn.rip)"
            ),
            col!(
                "cpumode",
                Str,
                false,
                "-",
                "guest_kernel (upper half of the address space) or guest_user; a guest user address stays unresolved (an exit does not say which guest process ran)"
            ),
            col!(
                "dso",
                Str,
                true,
                "-",
                "[guest.kernel.kallsyms] or the guest module's `[name]`; null for guest user addresses"
            ),
            col!(
                "symbol",
                Str,
                true,
                "-",
                "guest function that contains the address (guest kallsyms, else the guest vmlinux symbol table); null when unresolved (guest user space, or no guest symbols given at ingest for the VM)"
            ),
            col!("sym_offset", U64, true, "bytes", "guest_rip - symbol start"),
            col!(
                "inline_symbol",
                Str,
                true,
                "-",
                "innermost function inlined at the address (DWARF of the guest vmlinux); null when none"
            ),
            col!(
                "file",
                Str,
                true,
                "-",
                "source file of the innermost inline level (DWARF of the guest vmlinux)"
            ),
            col!(
                "line",
                U32,
                true,
                "-",
                "source line of the innermost inline level (DWARF of the guest vmlinux)"
            ),
        ],
    }
}

/// All fixed tables, in the order docs/schema.md lists them.
pub fn tables() -> Vec<TableDoc> {
    vec![
        samples(),
        stacks(),
        frames(),
        guest_samples(),
        events(),
        threads(),
        mmaps(),
        build_ids(),
        meta(),
        lost(),
        ingest_report(),
        tracepoint_common(),
    ]
    .into_iter()
    .chain(crate::kvm::tables())
    .chain([exit_symbols()])
    .collect()
}

/// The tables section of docs/schema.md, generated.
pub fn markdown() -> String {
    let mut out = String::new();
    for t in tables() {
        out.push_str(&format!("### `{}`\n\nOne row: {}.\n\n", t.name, t.row));
        out.push_str("| column | type | null | unit / clock | meaning |\n|---|---|---|---|---|\n");
        for c in &t.columns {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                c.name,
                c.ty.doc_name(),
                if c.nullable { "yes" } else { "no" },
                c.unit,
                c.meaning.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out
}
