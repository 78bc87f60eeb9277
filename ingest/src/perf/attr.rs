//! `struct perf_event_attr` and the event names perf derives from it.

use super::bytes::ByteCursor;

/// `PERF_SAMPLE_*` bits of `attr.sample_type`.
#[allow(missing_docs)]
pub mod sample_type {
    pub const IP: u64 = 1 << 0;
    pub const TID: u64 = 1 << 1;
    pub const TIME: u64 = 1 << 2;
    pub const ADDR: u64 = 1 << 3;
    pub const READ: u64 = 1 << 4;
    pub const CALLCHAIN: u64 = 1 << 5;
    pub const ID: u64 = 1 << 6;
    pub const CPU: u64 = 1 << 7;
    pub const PERIOD: u64 = 1 << 8;
    pub const STREAM_ID: u64 = 1 << 9;
    pub const RAW: u64 = 1 << 10;
    pub const BRANCH_STACK: u64 = 1 << 11;
    pub const REGS_USER: u64 = 1 << 12;
    pub const STACK_USER: u64 = 1 << 13;
    pub const WEIGHT: u64 = 1 << 14;
    pub const DATA_SRC: u64 = 1 << 15;
    pub const IDENTIFIER: u64 = 1 << 16;
    pub const TRANSACTION: u64 = 1 << 17;
    pub const REGS_INTR: u64 = 1 << 18;
    pub const PHYS_ADDR: u64 = 1 << 19;
    pub const AUX: u64 = 1 << 20;
    pub const CGROUP: u64 = 1 << 21;
    pub const DATA_PAGE_SIZE: u64 = 1 << 22;
    pub const CODE_PAGE_SIZE: u64 = 1 << 23;
    pub const WEIGHT_STRUCT: u64 = 1 << 24;
}

/// `PERF_FORMAT_*` bits of `attr.read_format`.
#[allow(missing_docs)]
pub mod read_format {
    pub const TOTAL_TIME_ENABLED: u64 = 1 << 0;
    pub const TOTAL_TIME_RUNNING: u64 = 1 << 1;
    pub const ID: u64 = 1 << 2;
    pub const GROUP: u64 = 1 << 3;
    pub const LOST: u64 = 1 << 4;
}

/// `PERF_SAMPLE_BRANCH_HW_INDEX` in `attr.branch_sample_type`.
pub const BRANCH_HW_INDEX: u64 = 1 << 17;
/// `PERF_SAMPLE_BRANCH_COUNTERS` in `attr.branch_sample_type`.
pub const BRANCH_COUNTERS: u64 = 1 << 19;

/// `PERF_TYPE_*` values of `attr.type`.
#[allow(missing_docs)]
pub mod event_type {
    pub const HARDWARE: u32 = 0;
    pub const SOFTWARE: u32 = 1;
    pub const TRACEPOINT: u32 = 2;
    pub const HW_CACHE: u32 = 3;
    pub const RAW: u32 = 4;
    pub const BREAKPOINT: u32 = 5;
}

/// The fields of `perf_event_attr` that kvmtrace uses. Attr sizes 64 (perf 3.x) to 136 and
/// beyond are read; fields past the recorded size are zero, as the kernel defines them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerfEventAttr {
    /// `attr.type`.
    pub type_: u32,
    /// `attr.size` as recorded (0 in some very old files).
    pub size: u32,
    /// `attr.config`.
    pub config: u64,
    /// `attr.sample_period` or `sample_freq` (see `freq`).
    pub sample_period_or_freq: u64,
    /// `attr.sample_type`.
    pub sample_type: u64,
    /// `attr.read_format`.
    pub read_format: u64,
    /// The flag bits (disabled, inherit, …, sample_id_all, exclude_host, exclude_guest…).
    pub flags: u64,
    /// `attr.branch_sample_type`.
    pub branch_sample_type: u64,
    /// `attr.sample_regs_user`.
    pub sample_regs_user: u64,
    /// `attr.sample_stack_user`.
    pub sample_stack_user: u32,
    /// `attr.sample_regs_intr`.
    pub sample_regs_intr: u64,
    /// `attr.config1`.
    pub config1: u64,
    /// `attr.config2`.
    pub config2: u64,
}

macro_rules! flag {
    ($name:ident, $bit:expr, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(&self) -> bool {
            self.flags & (1 << $bit) != 0
        }
    };
}

impl PerfEventAttr {
    /// Parses an attr from `data`, which holds at least the recorded attr.
    pub fn parse(data: &[u8]) -> Option<PerfEventAttr> {
        // Pad to the largest layout we know so that missing tail fields read as zero.
        let mut buf = [0u8; 160];
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        let mut c = ByteCursor::new(&buf);
        let type_ = c.u32()?;
        let size = c.u32()?;
        let config = c.u64()?;
        let sample_period_or_freq = c.u64()?;
        let sample_type = c.u64()?;
        let read_format = c.u64()?;
        let flags = c.u64()?;
        let _wakeup = c.u32()?;
        let _bp_type = c.u32()?;
        let config1 = c.u64()?; // offset 56
        let config2 = c.u64()?; // 64
        let branch_sample_type = c.u64()?; // 72
        let sample_regs_user = c.u64()?; // 80
        let sample_stack_user = c.u32()?; // 88
        let _clockid = c.u32()?; // 92
        let sample_regs_intr = c.u64()?; // 96
        // Zero the fields past the recorded size (attr sizes: 64, 72, 80, 96, 104, 112, 120, 128, 136).
        let recorded = if size == 0 { 64 } else { size as usize }.min(n);
        let past = |off: usize, v: u64| if off >= recorded { 0 } else { v };
        Some(PerfEventAttr {
            type_,
            size,
            config,
            sample_period_or_freq,
            sample_type,
            read_format,
            flags,
            branch_sample_type: past(72, branch_sample_type),
            sample_regs_user: past(80, sample_regs_user),
            sample_stack_user: past(88, u64::from(sample_stack_user)) as u32,
            sample_regs_intr: past(96, sample_regs_intr),
            config1: past(56, config1),
            config2: past(64, config2),
        })
    }

    flag!(
        freq,
        10,
        "`attr.freq`: `sample_period_or_freq` is a frequency."
    );
    flag!(exclude_user, 4, "`attr.exclude_user`.");
    flag!(exclude_kernel, 5, "`attr.exclude_kernel`.");
    flag!(exclude_hv, 6, "`attr.exclude_hv`.");
    flag!(exclude_idle, 7, "`attr.exclude_idle`.");
    flag!(
        sample_id_all,
        18,
        "`attr.sample_id_all`: non-sample records carry a trailer."
    );
    flag!(exclude_host, 19, "`attr.exclude_host`.");
    flag!(exclude_guest, 20, "`attr.exclude_guest`.");

    /// `attr.precise_ip` (0..=3).
    pub fn precise_ip(&self) -> u64 {
        (self.flags >> 15) & 3
    }

    /// The sample period perf assumes when `PERF_SAMPLE_PERIOD` is not recorded.
    pub fn fixed_period(&self) -> u64 {
        if self.freq() {
            0
        } else {
            self.sample_period_or_freq
        }
    }

    /// Whether `sample_type` has all of `bits`.
    pub fn has(&self, bits: u64) -> bool {
        self.sample_type & bits == bits
    }

    /// The name perf gives the event when the file does not name it (`evsel__name`): the generic
    /// hardware/software names plus perf's modifier suffix (`cycles:ppp`, `cycles:u`).
    pub fn default_name(&self) -> String {
        let base = match self.type_ {
            event_type::HARDWARE => HW_NAMES
                .get(self.config as usize)
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("unknown-hardware:{:#x}", self.config)),
            event_type::SOFTWARE => SW_NAMES
                .get(self.config as usize)
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("unknown-software:{:#x}", self.config)),
            event_type::RAW => format!("r{:x}", self.config),
            event_type::TRACEPOINT => format!("unknown tracepoint {}", self.config),
            event_type::HW_CACHE => hw_cache_name(self.config),
            event_type::BREAKPOINT => "mem:breakpoint".to_string(),
            other => format!("unknown attr type: {other}"),
        };
        format!("{base}{}", self.modifiers())
    }

    /// perf's `evsel__add_modifiers`.
    fn modifiers(&self) -> String {
        let mut mods = String::new();
        let mut exclude_guest_default = false;
        if self.exclude_kernel() || self.exclude_user() || self.exclude_hv() {
            if !self.exclude_kernel() {
                mods.push('k');
            }
            if !self.exclude_user() {
                mods.push('u');
            }
            if !self.exclude_hv() {
                mods.push('h');
            }
            exclude_guest_default = true;
        }
        let precise = self.precise_ip() as usize;
        if precise > 0 {
            mods.push_str(&"ppp"[..precise]);
            exclude_guest_default = true;
        }
        if self.exclude_host() || self.exclude_guest() == exclude_guest_default {
            if !self.exclude_host() {
                mods.push('H');
            }
            if !self.exclude_guest() {
                mods.push('G');
            }
        }
        if mods.is_empty() {
            mods
        } else {
            format!(":{mods}")
        }
    }
}

const HW_NAMES: [&str; 10] = [
    "cycles",
    "instructions",
    "cache-references",
    "cache-misses",
    "branches",
    "branch-misses",
    "bus-cycles",
    "stalled-cycles-frontend",
    "stalled-cycles-backend",
    "ref-cycles",
];

const SW_NAMES: [&str; 13] = [
    "cpu-clock",
    "task-clock",
    "page-faults",
    "context-switches",
    "cpu-migrations",
    "minor-faults",
    "major-faults",
    "alignment-faults",
    "emulation-faults",
    "dummy",
    "bpf-output",
    "cgroup-switches",
    "unknown-software",
];

fn hw_cache_name(config: u64) -> String {
    const CACHE: [&str; 7] = [
        "L1-dcache",
        "L1-icache",
        "LLC",
        "dTLB",
        "iTLB",
        "branch",
        "node",
    ];
    const OP: [&str; 3] = ["load", "store", "prefetch"];
    const RESULT: [&str; 2] = ["refs", "misses"];
    let cache = CACHE.get((config & 0xff) as usize);
    let op = OP.get(((config >> 8) & 0xff) as usize);
    let result = RESULT.get(((config >> 16) & 0xff) as usize);
    match (cache, op, result) {
        (Some(c), Some(o), Some(r)) => format!("{c}-{o}-{r}"),
        _ => format!("unknown-hw-cache:{config:#x}"),
    }
}

/// Number of set bits, for register masks.
pub fn hweight(mask: u64) -> usize {
    mask.count_ones() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(type_: u32, config: u64, flags: u64) -> PerfEventAttr {
        PerfEventAttr {
            type_,
            config,
            flags,
            size: 112,
            ..Default::default()
        }
    }

    #[test]
    fn names_follow_perf_modifiers() {
        // The rule of perf 6.1's evsel__add_modifiers; pipe-mode corpus files (named this way)
        // are checked against perf script in tests/it/conformance.rs.
        // perf record sets exclude_guest by default: plain "cycles".
        assert_eq!(attr(0, 0, 1 << 20).default_name(), "cycles");
        // Neither host nor guest excluded: ":HG" (as the dummy:HG event of `-a` recordings).
        assert_eq!(attr(0, 0, 0).default_name(), "cycles:HG");
        // exclude_kernel + exclude_hv => ":u" (evsel__add_modifiers).
        assert_eq!(attr(0, 0, (1 << 5) | (1 << 6)).default_name(), "cycles:u");
        // precise_ip = 3 => ":ppp".
        assert_eq!(attr(0, 0, 3 << 15).default_name(), "cycles:ppp");
        assert_eq!(attr(1, 0, 1 << 20).default_name(), "cpu-clock");
    }
}
