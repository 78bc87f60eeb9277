//! The bodies of perf records: samples with every field, task and mmap records, and the
//! `sample_id_all` trailer.

use super::attr::{self, PerfEventAttr, hweight, read_format, sample_type as st};
use super::bytes::{ByteCursor, c_str};

/// `PERF_RECORD_*` kernel record types and perf's user record types (>= 64).
#[allow(missing_docs)]
pub mod record_type {
    pub const MMAP: u32 = 1;
    pub const LOST: u32 = 2;
    pub const COMM: u32 = 3;
    pub const EXIT: u32 = 4;
    pub const THROTTLE: u32 = 5;
    pub const UNTHROTTLE: u32 = 6;
    pub const FORK: u32 = 7;
    pub const READ: u32 = 8;
    pub const SAMPLE: u32 = 9;
    pub const MMAP2: u32 = 10;
    pub const AUX: u32 = 11;
    pub const ITRACE_START: u32 = 12;
    pub const LOST_SAMPLES: u32 = 13;
    pub const SWITCH: u32 = 14;
    pub const SWITCH_CPU_WIDE: u32 = 15;
    pub const NAMESPACES: u32 = 16;
    pub const KSYMBOL: u32 = 17;
    pub const BPF_EVENT: u32 = 18;
    pub const CGROUP: u32 = 19;
    pub const TEXT_POKE: u32 = 20;
    pub const AUX_OUTPUT_HW_ID: u32 = 21;
    pub const HEADER_ATTR: u32 = 64;
    pub const HEADER_EVENT_TYPE: u32 = 65;
    pub const HEADER_TRACING_DATA: u32 = 66;
    pub const HEADER_BUILD_ID: u32 = 67;
    pub const FINISHED_ROUND: u32 = 68;
    pub const ID_INDEX: u32 = 69;
    pub const AUXTRACE_INFO: u32 = 70;
    pub const AUXTRACE: u32 = 71;
    pub const AUXTRACE_ERROR: u32 = 72;
    pub const THREAD_MAP: u32 = 73;
    pub const CPU_MAP: u32 = 74;
    pub const STAT_CONFIG: u32 = 75;
    pub const STAT: u32 = 76;
    pub const STAT_ROUND: u32 = 77;
    pub const EVENT_UPDATE: u32 = 78;
    pub const TIME_CONV: u32 = 79;
    pub const HEADER_FEATURE: u32 = 80;
    pub const COMPRESSED: u32 = 81;
    pub const FINISHED_INIT: u32 = 82;
    pub const COMPRESSED2: u32 = 83;

    /// perf's name for a record type, as `perf report -D` prints it.
    pub fn name(t: u32) -> &'static str {
        match t {
            MMAP => "MMAP",
            LOST => "LOST",
            COMM => "COMM",
            EXIT => "EXIT",
            THROTTLE => "THROTTLE",
            UNTHROTTLE => "UNTHROTTLE",
            FORK => "FORK",
            READ => "READ",
            SAMPLE => "SAMPLE",
            MMAP2 => "MMAP2",
            AUX => "AUX",
            ITRACE_START => "ITRACE_START",
            LOST_SAMPLES => "LOST_SAMPLES",
            SWITCH => "SWITCH",
            SWITCH_CPU_WIDE => "SWITCH_CPU_WIDE",
            NAMESPACES => "NAMESPACES",
            KSYMBOL => "KSYMBOL",
            BPF_EVENT => "BPF_EVENT",
            CGROUP => "CGROUP",
            TEXT_POKE => "TEXT_POKE",
            AUX_OUTPUT_HW_ID => "AUX_OUTPUT_HW_ID",
            HEADER_ATTR => "ATTR",
            HEADER_EVENT_TYPE => "EVENT_TYPE",
            HEADER_TRACING_DATA => "TRACING_DATA",
            HEADER_BUILD_ID => "BUILD_ID",
            FINISHED_ROUND => "FINISHED_ROUND",
            ID_INDEX => "ID_INDEX",
            AUXTRACE_INFO => "AUXTRACE_INFO",
            AUXTRACE => "AUXTRACE",
            AUXTRACE_ERROR => "AUXTRACE_ERROR",
            THREAD_MAP => "THREAD_MAP",
            CPU_MAP => "CPU_MAP",
            STAT_CONFIG => "STAT_CONFIG",
            STAT => "STAT",
            STAT_ROUND => "STAT_ROUND",
            EVENT_UPDATE => "EVENT_UPDATE",
            TIME_CONV => "TIME_CONV",
            HEADER_FEATURE => "FEATURE",
            COMPRESSED => "COMPRESSED",
            FINISHED_INIT => "FINISHED_INIT",
            COMPRESSED2 => "COMPRESSED2",
            _ => "UNKNOWN",
        }
    }
}

/// `PERF_RECORD_MISC_*` cpumode values (`misc & 7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CpuMode {
    /// 0: unknown.
    Unknown,
    /// 1: host kernel.
    HostKernel,
    /// 2: host user.
    HostUser,
    /// 3: hypervisor.
    Hypervisor,
    /// 4: guest kernel.
    GuestKernel,
    /// 5: guest user.
    GuestUser,
}

impl CpuMode {
    /// From a record header's `misc`.
    pub fn from_misc(misc: u16) -> CpuMode {
        match misc & 7 {
            1 => CpuMode::HostKernel,
            2 => CpuMode::HostUser,
            3 => CpuMode::Hypervisor,
            4 => CpuMode::GuestKernel,
            5 => CpuMode::GuestUser,
            _ => CpuMode::Unknown,
        }
    }

    /// The name used in the `cpumode` columns.
    pub fn as_str(self) -> &'static str {
        match self {
            CpuMode::Unknown => "unknown",
            CpuMode::HostKernel => "host_kernel",
            CpuMode::HostUser => "host_user",
            CpuMode::Hypervisor => "hypervisor",
            CpuMode::GuestKernel => "guest_kernel",
            CpuMode::GuestUser => "guest_user",
        }
    }

    /// Whether this is a guest mode.
    pub fn is_guest(self) -> bool {
        matches!(self, CpuMode::GuestKernel | CpuMode::GuestUser)
    }

    /// A user-space mode, host or guest.
    pub fn is_user(self) -> bool {
        matches!(self, CpuMode::HostUser | CpuMode::GuestUser)
    }
}

/// Callchain context markers (`PERF_CONTEXT_*`), as u64.
#[allow(missing_docs)]
pub mod context {
    pub const HV: u64 = (-32i64) as u64;
    pub const KERNEL: u64 = (-128i64) as u64;
    pub const USER: u64 = (-512i64) as u64;
    pub const GUEST: u64 = (-2048i64) as u64;
    pub const GUEST_KERNEL: u64 = (-2176i64) as u64;
    pub const GUEST_USER: u64 = (-2560i64) as u64;
    pub const MAX: u64 = (-4095i64) as u64;
}

/// What a recorded callchain holds for perf 6.1, in one pass over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedChain {
    /// At least one address.
    Frames,
    /// Context markers only.
    NoFrame,
    /// A value at or above `PERF_CONTEXT_MAX` that is no context perf knows: its
    /// `add_callchain_ip` says "invalid callchain context", resets the cursor and the sample
    /// shows no frame. Seen on live recordings: a user chain of garbage frame pointers that
    /// reads `0xffffffffffffffff`. The guest contexts are known here: perf never meets them
    /// (the kernel writes no callchain for a guest-mode sample), kvmtrace's generator writes
    /// them.
    Discarded,
}

/// Classifies a recorded (not unwound) callchain: [`context_mode`]'s markers, with
/// `u64::MAX`, an address only in chains kvmtrace unwinds, taken for the unknown context it is
/// in a recorded one.
pub fn classify_callchain(raw: &[u8]) -> RecordedChain {
    let mut kind = RecordedChain::NoFrame;
    for ip in callchain_ips(raw) {
        match context_mode(ip) {
            _ if ip == u64::MAX => return RecordedChain::Discarded,
            Some(CpuMode::Unknown) => return RecordedChain::Discarded,
            Some(_) => {}
            None => kind = RecordedChain::Frames,
        }
    }
    kind
}

/// The cpumode a callchain context marker switches to, if `ip` is a marker. `u64::MAX` is an
/// address: the ip − 1 perf prints for a DWARF-unwound frame whose return address could not be
/// read (kvmtrace's unwinder writes it the same way).
pub fn context_mode(ip: u64) -> Option<CpuMode> {
    if ip < context::MAX || ip == u64::MAX {
        return None;
    }
    Some(match ip {
        context::HV => CpuMode::Hypervisor,
        context::KERNEL => CpuMode::HostKernel,
        context::USER => CpuMode::HostUser,
        context::GUEST | context::GUEST_KERNEL => CpuMode::GuestKernel,
        context::GUEST_USER => CpuMode::GuestUser,
        _ => CpuMode::Unknown,
    })
}

/// One counter value of `PERF_SAMPLE_READ`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadValue {
    /// The counter value.
    pub value: u64,
    /// Its id, when `PERF_FORMAT_ID` is set.
    pub id: Option<u64>,
    /// Lost count, when `PERF_FORMAT_LOST` is set.
    pub lost: Option<u64>,
}

/// `PERF_SAMPLE_READ` contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadData {
    /// `time_enabled`.
    pub time_enabled: Option<u64>,
    /// `time_running`.
    pub time_running: Option<u64>,
    /// One value, or every group member's.
    pub values: Vec<ReadValue>,
}

/// One `PERF_SAMPLE_BRANCH_STACK` entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BranchEntry {
    /// Branch source.
    pub from: u64,
    /// Branch target.
    pub to: u64,
    /// The flag bits (mispred, predicted, in_tx, abort, cycles, type…).
    pub flags: u64,
}

/// A decoded `PERF_RECORD_SAMPLE`, borrowing variable-size parts from the record.
#[derive(Debug, Clone, Default)]
pub struct Sample<'a> {
    /// `PERF_SAMPLE_IDENTIFIER` or `PERF_SAMPLE_ID`.
    pub id: Option<u64>,
    /// `PERF_SAMPLE_IP`.
    pub ip: Option<u64>,
    /// `PERF_SAMPLE_TID`: pid.
    pub pid: Option<i32>,
    /// `PERF_SAMPLE_TID`: tid.
    pub tid: Option<i32>,
    /// `PERF_SAMPLE_TIME`.
    pub time: Option<u64>,
    /// `PERF_SAMPLE_ADDR`.
    pub addr: Option<u64>,
    /// `PERF_SAMPLE_STREAM_ID`.
    pub stream_id: Option<u64>,
    /// `PERF_SAMPLE_CPU`.
    pub cpu: Option<u32>,
    /// `PERF_SAMPLE_PERIOD`.
    pub period: Option<u64>,
    /// `PERF_SAMPLE_READ`.
    pub read: Option<ReadData>,
    /// `PERF_SAMPLE_CALLCHAIN`: raw u64s, context markers included.
    pub callchain: Option<&'a [u8]>,
    /// `PERF_SAMPLE_RAW`.
    pub raw: Option<&'a [u8]>,
    /// `PERF_SAMPLE_BRANCH_STACK`.
    pub branch_stack: Option<Vec<BranchEntry>>,
    /// `hw_idx` of the branch stack, when recorded.
    pub branch_hw_idx: Option<u64>,
    /// `PERF_SAMPLE_REGS_USER`: abi.
    pub user_regs_abi: Option<u64>,
    /// `PERF_SAMPLE_REGS_USER`: registers (raw u64s).
    pub user_regs: Option<&'a [u8]>,
    /// `PERF_SAMPLE_STACK_USER`: the copied stack, cut to `dyn_size`.
    pub user_stack: Option<&'a [u8]>,
    /// `PERF_SAMPLE_WEIGHT` or `WEIGHT_STRUCT`.
    pub weight: Option<u64>,
    /// `PERF_SAMPLE_DATA_SRC`.
    pub data_src: Option<u64>,
    /// `PERF_SAMPLE_TRANSACTION`.
    pub transaction: Option<u64>,
    /// `PERF_SAMPLE_REGS_INTR`: abi.
    pub intr_regs_abi: Option<u64>,
    /// `PERF_SAMPLE_REGS_INTR`: registers.
    pub intr_regs: Option<&'a [u8]>,
    /// `PERF_SAMPLE_PHYS_ADDR`.
    pub phys_addr: Option<u64>,
    /// `PERF_SAMPLE_CGROUP`.
    pub cgroup: Option<u64>,
    /// `PERF_SAMPLE_DATA_PAGE_SIZE`.
    pub data_page_size: Option<u64>,
    /// `PERF_SAMPLE_CODE_PAGE_SIZE`.
    pub code_page_size: Option<u64>,
    /// `PERF_SAMPLE_AUX`.
    pub aux: Option<&'a [u8]>,
}

/// The callchain as u64s.
pub fn callchain_ips(raw: &[u8]) -> impl Iterator<Item = u64> + '_ {
    raw.chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
}

impl<'a> Sample<'a> {
    /// Parses a sample body with the attr it belongs to. `None` when the body is too short
    /// for what `sample_type` says it holds.
    pub fn parse(body: &'a [u8], attr: &PerfEventAttr) -> Option<Sample<'a>> {
        let t = attr.sample_type;
        let mut c = ByteCursor::new(body);
        let mut s = Sample::default();
        if t & st::IDENTIFIER != 0 {
            s.id = Some(c.u64()?);
        }
        if t & st::IP != 0 {
            s.ip = Some(c.u64()?);
        }
        if t & st::TID != 0 {
            s.pid = Some(c.u32()? as i32);
            s.tid = Some(c.u32()? as i32);
        }
        if t & st::TIME != 0 {
            s.time = Some(c.u64()?);
        }
        if t & st::ADDR != 0 {
            s.addr = Some(c.u64()?);
        }
        if t & st::ID != 0 {
            s.id = Some(c.u64()?);
        }
        if t & st::STREAM_ID != 0 {
            s.stream_id = Some(c.u64()?);
        }
        if t & st::CPU != 0 {
            s.cpu = Some(c.u32()?);
            c.u32()?;
        }
        if t & st::PERIOD != 0 {
            s.period = Some(c.u64()?);
        }
        if t & st::READ != 0 {
            s.read = Some(parse_read(&mut c, attr.read_format)?);
        }
        if t & st::CALLCHAIN != 0 {
            let nr = c.u64()?;
            let len = usize::try_from(nr).ok()?.checked_mul(8)?;
            s.callchain = Some(c.bytes(len)?);
        }
        if t & st::RAW != 0 {
            let size = c.u32()? as usize;
            s.raw = Some(c.bytes(size)?);
        }
        if t & st::BRANCH_STACK != 0 {
            let nr = usize::try_from(c.u64()?).ok()?;
            if attr.branch_sample_type & attr::BRANCH_HW_INDEX != 0 {
                s.branch_hw_idx = Some(c.u64()?);
            }
            if nr.checked_mul(24)? > c.remaining() {
                return None;
            }
            let mut entries = Vec::with_capacity(nr);
            for _ in 0..nr {
                entries.push(BranchEntry {
                    from: c.u64()?,
                    to: c.u64()?,
                    flags: c.u64()?,
                });
            }
            if attr.branch_sample_type & attr::BRANCH_COUNTERS != 0 {
                c.skip(nr.checked_mul(8)?)?;
            }
            s.branch_stack = Some(entries);
        }
        if t & st::REGS_USER != 0 {
            let abi = c.u64()?;
            s.user_regs_abi = Some(abi);
            if abi != 0 {
                s.user_regs = Some(c.bytes(hweight(attr.sample_regs_user) * 8)?);
            }
        }
        if t & st::STACK_USER != 0 {
            let size = usize::try_from(c.u64()?).ok()?;
            let data = c.bytes(size)?;
            if size != 0 {
                let dyn_size = usize::try_from(c.u64()?).ok()?;
                s.user_stack = Some(data.get(..dyn_size.min(size))?);
            } else {
                s.user_stack = Some(data);
            }
        }
        if t & (st::WEIGHT | st::WEIGHT_STRUCT) != 0 {
            s.weight = Some(c.u64()?);
        }
        if t & st::DATA_SRC != 0 {
            s.data_src = Some(c.u64()?);
        }
        if t & st::TRANSACTION != 0 {
            s.transaction = Some(c.u64()?);
        }
        if t & st::REGS_INTR != 0 {
            let abi = c.u64()?;
            s.intr_regs_abi = Some(abi);
            if abi != 0 {
                s.intr_regs = Some(c.bytes(hweight(attr.sample_regs_intr) * 8)?);
            }
        }
        if t & st::PHYS_ADDR != 0 {
            s.phys_addr = Some(c.u64()?);
        }
        if t & st::CGROUP != 0 {
            s.cgroup = Some(c.u64()?);
        }
        if t & st::DATA_PAGE_SIZE != 0 {
            s.data_page_size = Some(c.u64()?);
        }
        if t & st::CODE_PAGE_SIZE != 0 {
            s.code_page_size = Some(c.u64()?);
        }
        if t & st::AUX != 0 {
            let size = usize::try_from(c.u64()?).ok()?;
            s.aux = Some(c.bytes(size)?);
        }
        Some(s)
    }
}

fn parse_read(c: &mut ByteCursor<'_>, rf: u64) -> Option<ReadData> {
    let mut out = ReadData::default();
    if rf & read_format::GROUP != 0 {
        let nr = usize::try_from(c.u64()?).ok()?;
        if rf & read_format::TOTAL_TIME_ENABLED != 0 {
            out.time_enabled = Some(c.u64()?);
        }
        if rf & read_format::TOTAL_TIME_RUNNING != 0 {
            out.time_running = Some(c.u64()?);
        }
        if nr.checked_mul(8)? > c.remaining() {
            return None;
        }
        for _ in 0..nr {
            out.values.push(read_value(c, rf)?);
        }
    } else {
        let value = c.u64()?;
        if rf & read_format::TOTAL_TIME_ENABLED != 0 {
            out.time_enabled = Some(c.u64()?);
        }
        if rf & read_format::TOTAL_TIME_RUNNING != 0 {
            out.time_running = Some(c.u64()?);
        }
        let mut v = ReadValue {
            value,
            ..Default::default()
        };
        if rf & read_format::ID != 0 {
            v.id = Some(c.u64()?);
        }
        if rf & read_format::LOST != 0 {
            v.lost = Some(c.u64()?);
        }
        out.values.push(v);
    }
    Some(out)
}

fn read_value(c: &mut ByteCursor<'_>, rf: u64) -> Option<ReadValue> {
    let mut v = ReadValue {
        value: c.u64()?,
        ..Default::default()
    };
    if rf & read_format::ID != 0 {
        v.id = Some(c.u64()?);
    }
    if rf & read_format::LOST != 0 {
        v.lost = Some(c.u64()?);
    }
    Some(v)
}

/// The `sample_id_all` trailer of a non-sample record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleId {
    /// pid.
    pub pid: Option<i32>,
    /// tid.
    pub tid: Option<i32>,
    /// time.
    pub time: Option<u64>,
    /// id (ID or IDENTIFIER).
    pub id: Option<u64>,
    /// stream id.
    pub stream_id: Option<u64>,
    /// cpu.
    pub cpu: Option<u32>,
}

/// Size in bytes of the `sample_id_all` trailer for `sample_type`.
pub fn sample_id_size(sample_type: u64) -> usize {
    let mut n = 0;
    for bit in [
        st::TID,
        st::TIME,
        st::ID,
        st::STREAM_ID,
        st::CPU,
        st::IDENTIFIER,
    ] {
        if sample_type & bit != 0 {
            n += 8;
        }
    }
    n
}

impl SampleId {
    /// Parses the trailer at the end of `body`.
    pub fn parse_trailer(body: &[u8], sample_type: u64) -> Option<SampleId> {
        let size = sample_id_size(sample_type);
        let start = body.len().checked_sub(size)?;
        let mut c = ByteCursor::new(body.get(start..)?);
        let mut s = SampleId::default();
        if sample_type & st::TID != 0 {
            s.pid = Some(c.u32()? as i32);
            s.tid = Some(c.u32()? as i32);
        }
        if sample_type & st::TIME != 0 {
            s.time = Some(c.u64()?);
        }
        if sample_type & st::ID != 0 {
            s.id = Some(c.u64()?);
        }
        if sample_type & st::STREAM_ID != 0 {
            s.stream_id = Some(c.u64()?);
        }
        if sample_type & st::CPU != 0 {
            s.cpu = Some(c.u32()?);
            c.u32()?;
        }
        if sample_type & st::IDENTIFIER != 0 {
            s.id = Some(c.u64()?);
        }
        Some(s)
    }
}

/// `PERF_RECORD_COMM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommRecord {
    /// pid.
    pub pid: i32,
    /// tid.
    pub tid: i32,
    /// The new name.
    pub comm: String,
    /// Set by exec (`PERF_RECORD_MISC_COMM_EXEC`).
    pub exec: bool,
}

/// `PERF_RECORD_FORK` / `PERF_RECORD_EXIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRecord {
    /// pid.
    pub pid: i32,
    /// parent pid.
    pub ppid: i32,
    /// tid.
    pub tid: i32,
    /// parent tid.
    pub ptid: i32,
    /// time.
    pub time: u64,
}

/// `PERF_RECORD_MMAP` / `PERF_RECORD_MMAP2`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MmapRecord {
    /// pid.
    pub pid: i32,
    /// tid.
    pub tid: i32,
    /// Start address.
    pub start: u64,
    /// Length.
    pub len: u64,
    /// Offset in the file.
    pub pgoff: u64,
    /// MMAP2 device major.
    pub maj: Option<u32>,
    /// MMAP2 device minor.
    pub min: Option<u32>,
    /// MMAP2 inode.
    pub ino: Option<u64>,
    /// MMAP2 inode generation.
    pub ino_generation: Option<u64>,
    /// MMAP2 build id (`PERF_RECORD_MISC_MMAP_BUILD_ID`).
    pub build_id: Option<Vec<u8>>,
    /// MMAP2 protection.
    pub prot: Option<u32>,
    /// MMAP2 flags.
    pub flags: Option<u32>,
    /// File name.
    pub filename: String,
}

/// `PERF_RECORD_MISC_COMM_EXEC`.
pub const MISC_COMM_EXEC: u16 = 1 << 13;
/// `PERF_RECORD_MISC_MMAP_BUILD_ID`.
pub const MISC_MMAP_BUILD_ID: u16 = 1 << 14;

/// Parses `PERF_RECORD_COMM`. `trailer` is the size of the `sample_id_all` trailer.
pub fn parse_comm(body: &[u8], misc: u16, trailer: usize) -> Option<CommRecord> {
    let mut c = ByteCursor::new(body);
    let pid = c.u32()? as i32;
    let tid = c.u32()? as i32;
    let name_len = c.remaining().saturating_sub(trailer);
    let comm = c_str(c.bytes(name_len)?);
    Some(CommRecord {
        pid,
        tid,
        comm,
        exec: misc & MISC_COMM_EXEC != 0,
    })
}

/// Parses `PERF_RECORD_FORK` and `PERF_RECORD_EXIT`.
pub fn parse_task(body: &[u8]) -> Option<TaskRecord> {
    let mut c = ByteCursor::new(body);
    Some(TaskRecord {
        pid: c.u32()? as i32,
        ppid: c.u32()? as i32,
        tid: c.u32()? as i32,
        ptid: c.u32()? as i32,
        time: c.u64()?,
    })
}

/// Parses `PERF_RECORD_MMAP` (`mmap2 == false`) or `PERF_RECORD_MMAP2`.
pub fn parse_mmap(body: &[u8], misc: u16, mmap2: bool, trailer: usize) -> Option<MmapRecord> {
    let mut c = ByteCursor::new(body);
    let mut m = MmapRecord {
        pid: c.u32()? as i32,
        tid: c.u32()? as i32,
        start: c.u64()?,
        len: c.u64()?,
        pgoff: c.u64()?,
        ..Default::default()
    };
    if mmap2 {
        if misc & MISC_MMAP_BUILD_ID != 0 {
            let size = c.u8()? as usize;
            c.skip(3)?;
            let id = c.bytes(20)?;
            m.build_id = Some(id.get(..size.min(20))?.to_vec());
        } else {
            m.maj = Some(c.u32()?);
            m.min = Some(c.u32()?);
            m.ino = Some(c.u64()?);
            m.ino_generation = Some(c.u64()?);
        }
        m.prot = Some(c.u32()?);
        m.flags = Some(c.u32()?);
    }
    let name_len = c.remaining().saturating_sub(trailer);
    m.filename = c_str(c.bytes(name_len)?);
    Some(m)
}

/// The frames of a callchain, each with its cpumode: the context markers turned into
/// per-frame cpumodes, as perf does (`thread__resolve_callchain_sample`). `sample_mode` is the
/// sample's own cpumode, which applies until the first marker.
pub fn callchain_frames(
    raw: &[u8],
    sample_mode: CpuMode,
) -> impl Iterator<Item = (u64, CpuMode)> + '_ {
    callchain_ips(raw)
        .scan(sample_mode, |mode, ip| {
            Some(match context_mode(ip) {
                Some(m) => {
                    *mode = m;
                    None
                }
                None => Some((ip, *mode)),
            })
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// perf 6.1's rule (`add_callchain_ip`): a value at or above PERF_CONTEXT_MAX that is not
    /// a context it knows discards the chain; an address just below it does not.
    #[test]
    fn a_chain_with_an_unknown_context_is_discarded() {
        let discarded = |raw: &[u8]| classify_callchain(raw) == RecordedChain::Discarded;
        let chain = |ips: &[u64]| {
            ips.iter()
                .flat_map(|ip| ip.to_le_bytes())
                .collect::<Vec<u8>>()
        };
        assert!(!discarded(&chain(&[
            context::USER,
            0x7f00_0000_1000,
            0x40_1000
        ])));
        assert!(!discarded(&chain(&[
            context::KERNEL,
            0xffff_ffff_8100_0000
        ])));
        assert!(!discarded(&chain(&[context::USER, 0xffff_ffff_ffff_f000])));
        assert!(discarded(&chain(&[
            context::USER,
            0x7f00_0000_1000,
            u64::MAX
        ])));
        assert!(discarded(&chain(&[
            context::USER,
            0x7f00_0000_1000,
            context::MAX
        ])));
        assert!(discarded(&chain(&[context::USER, (-3i64) as u64])));
    }

    #[test]
    fn truncated_sample_is_none_not_panic() {
        let attr = PerfEventAttr {
            sample_type: st::IP | st::TID | st::TIME | st::CALLCHAIN,
            ..Default::default()
        };
        let mut body = Vec::new();
        body.extend_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&7u64.to_le_bytes());
        body.extend_from_slice(&u64::MAX.to_le_bytes()); // absurd callchain nr
        assert!(Sample::parse(&body, &attr).is_none());
        for cut in 0..body.len() {
            let _ = Sample::parse(&body[..cut], &attr);
        }
    }

    #[test]
    fn markers_become_modes() {
        let mut raw = Vec::new();
        for ip in [
            context::KERNEL,
            0xffff_ffff_8100_0010,
            context::USER,
            0x4000,
        ] {
            raw.extend_from_slice(&ip.to_le_bytes());
        }
        assert_eq!(
            callchain_frames(&raw, CpuMode::HostKernel).collect::<Vec<_>>(),
            vec![
                (0xffff_ffff_8100_0010, CpuMode::HostKernel),
                (0x4000, CpuMode::HostUser)
            ]
        );
    }
}
