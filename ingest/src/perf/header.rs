//! The perf.data file header, its attr section and the header feature sections.

use super::attr::PerfEventAttr;
use super::bytes::{ByteCursor, c_str};

/// `PERFILE2` as a little-endian u64.
pub const MAGIC2: u64 = u64::from_le_bytes(*b"PERFILE2");
/// `PERFILE2` written by a big-endian machine.
pub const MAGIC2_SWAPPED: u64 = u64::from_be_bytes(*b"PERFILE2");
/// Size of the pipe-mode header.
pub const PIPE_HEADER_SIZE: u64 = 16;

/// A file section: offset and size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Section {
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

impl Section {
    fn read(c: &mut ByteCursor<'_>) -> Option<Section> {
        Some(Section {
            offset: c.u64()?,
            size: c.u64()?,
        })
    }

    /// The end offset, saturating.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }
}

/// The file-mode header (`struct perf_file_header`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileHeader {
    /// Header size (104 for perf.data v2).
    pub header_size: u64,
    /// Size of one attr entry in the attr section (attr + ids section).
    pub attr_size: u64,
    /// The attr section.
    pub attrs: Section,
    /// The data section.
    pub data: Section,
    /// The old `HEADER_EVENT_TYPE` section.
    pub event_types: Section,
    /// The feature bitmap.
    pub features: [u64; 4],
}

/// Feature ids (`HEADER_*` bits of `adds_features`).
#[allow(missing_docs)]
pub mod feature {
    pub const TRACING_DATA: u32 = 1;
    pub const BUILD_ID: u32 = 2;
    pub const HOSTNAME: u32 = 3;
    pub const OSRELEASE: u32 = 4;
    pub const VERSION: u32 = 5;
    pub const ARCH: u32 = 6;
    pub const NRCPUS: u32 = 7;
    pub const CPUDESC: u32 = 8;
    pub const CPUID: u32 = 9;
    pub const TOTAL_MEM: u32 = 10;
    pub const CMDLINE: u32 = 11;
    pub const EVENT_DESC: u32 = 12;
    pub const CPU_TOPOLOGY: u32 = 13;
    pub const NUMA_TOPOLOGY: u32 = 14;
    pub const BRANCH_STACK: u32 = 15;
    pub const PMU_MAPPINGS: u32 = 16;
    pub const GROUP_DESC: u32 = 17;
    pub const AUXTRACE: u32 = 18;
    pub const STAT: u32 = 19;
    pub const CACHE: u32 = 20;
    pub const SAMPLE_TIME: u32 = 21;
    pub const MEM_TOPOLOGY: u32 = 22;
    pub const CLOCKID: u32 = 23;
    pub const DIR_FORMAT: u32 = 24;
    pub const BPF_PROG_INFO: u32 = 25;
    pub const BPF_BTF: u32 = 26;
    pub const COMPRESSED: u32 = 27;
    pub const CPU_PMU_CAPS: u32 = 28;
    pub const CLOCK_DATA: u32 = 29;
    pub const HYBRID_TOPOLOGY: u32 = 30;
    pub const PMU_CAPS: u32 = 31;
}

impl FileHeader {
    /// Parses the header from the first bytes of a file. `None` if too short.
    pub fn parse(data: &[u8]) -> Option<FileHeader> {
        let mut c = ByteCursor::new(data);
        let _magic = c.u64()?;
        let header_size = c.u64()?;
        let attr_size = c.u64()?;
        let attrs = Section::read(&mut c)?;
        let data_sec = Section::read(&mut c)?;
        let event_types = Section::read(&mut c)?;
        let mut features = [0u64; 4];
        // Very old headers (size 72+16) stop before the bitmap; leave it empty then.
        if header_size >= 104 {
            for f in &mut features {
                *f = c.u64()?;
            }
        }
        Some(FileHeader {
            header_size,
            attr_size,
            attrs,
            data: data_sec,
            event_types,
            features,
        })
    }

    /// Whether feature bit `feat` is set.
    pub fn has_feature(&self, feat: u32) -> bool {
        let word = (feat / 64) as usize;
        self.features
            .get(word)
            .is_some_and(|w| w & (1u64 << (feat % 64)) != 0)
    }

    /// The set feature ids, in the order their sections follow the data.
    pub fn feature_ids(&self) -> Vec<u32> {
        (0..256).filter(|&f| self.has_feature(f)).collect()
    }
}

/// One event's attr and sample ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrEntry {
    /// The attr.
    pub attr: PerfEventAttr,
    /// Sample ids that belong to it.
    pub ids: Vec<u64>,
}

/// Parsed header features; every field is optional, as in real files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    /// `HEADER_HOSTNAME`.
    pub hostname: Option<String>,
    /// `HEADER_OSRELEASE`.
    pub os_release: Option<String>,
    /// `HEADER_VERSION`.
    pub perf_version: Option<String>,
    /// `HEADER_ARCH`.
    pub arch: Option<String>,
    /// `HEADER_NRCPUS`: available.
    pub nr_cpus_avail: Option<u32>,
    /// `HEADER_NRCPUS`: online.
    pub nr_cpus_online: Option<u32>,
    /// `HEADER_CPUDESC`.
    pub cpu_desc: Option<String>,
    /// `HEADER_CPUID`.
    pub cpuid: Option<String>,
    /// `HEADER_TOTAL_MEM` in kB.
    pub total_mem_kb: Option<u64>,
    /// `HEADER_CMDLINE`, joined by spaces.
    pub cmdline: Option<String>,
    /// `HEADER_EVENT_DESC`: (attr, name, ids).
    pub event_desc: Vec<(PerfEventAttr, String, Vec<u64>)>,
    /// `HEADER_SAMPLE_TIME`: first and last sample time.
    pub sample_time: Option<(u64, u64)>,
    /// `HEADER_CLOCKID`: the clock resolution perf recorded (ns).
    pub clockid_res_ns: Option<u64>,
    /// `HEADER_CLOCK_DATA`: clockid, wall-clock ns and clockid ns at the same instant.
    pub clock_data: Option<(u32, u64, u64)>,
    /// `HEADER_TRACING_DATA` raw bytes (file mode) or the pipe-mode payload.
    pub tracing_data: Option<Vec<u8>>,
    /// `HEADER_BUILD_ID` entries.
    pub build_ids: Vec<BuildIdEntry>,
    /// `HEADER_COMPRESSED`: (version, type, level, ratio, mmap_len).
    pub compressed: Option<(u32, u32, u32, u32, u32)>,
    /// Feature ids present in the file.
    pub present: Vec<u32>,
}

/// One `HEADER_BUILD_ID` entry (`struct perf_record_header_build_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildIdEntry {
    /// The pid perf recorded: -1 for the host, the VMM pid (or 0) for a guest machine.
    pub pid: i32,
    /// The entry's cpumode (`misc & 7`): host/guest, kernel/user.
    pub misc: u16,
    /// The build id bytes.
    pub build_id: Vec<u8>,
    /// The DSO path.
    pub filename: String,
}

/// `PERF_RECORD_MISC_BUILD_ID_SIZE`: the build id size is in byte 20 of the id field.
const MISC_BUILD_ID_SIZE: u16 = 1 << 15;

/// Parses a chain of build-id records (the `HEADER_BUILD_ID` section, or one
/// `PERF_RECORD_HEADER_BUILD_ID` body preceded by its header).
pub fn parse_build_ids(data: &[u8]) -> Vec<BuildIdEntry> {
    let mut out = Vec::new();
    let mut c = ByteCursor::new(data);
    while c.remaining() >= 8 {
        let start = c.pos();
        let (Some(_type), Some(misc), Some(size)) = (c.u32(), c.u16(), c.u16()) else {
            break;
        };
        let size = size as usize;
        if size < 8 + 4 + 24 {
            break;
        }
        let (Some(pid), Some(id)) = (c.u32(), c.bytes(24)) else {
            break;
        };
        let name_len = size - 8 - 4 - 24;
        let Some(name) = c.bytes(name_len) else { break };
        let id_len = if misc & MISC_BUILD_ID_SIZE != 0 {
            (id[20] as usize).min(20)
        } else {
            20
        };
        let mut build_id = id[..id_len].to_vec();
        if misc & MISC_BUILD_ID_SIZE == 0 {
            // Old files store 20 bytes; trailing zeros are padding of shorter ids.
            while build_id.len() > 1 && build_id.last() == Some(&0) {
                build_id.pop();
            }
        }
        out.push(BuildIdEntry {
            pid: pid as i32,
            misc: misc & !MISC_BUILD_ID_SIZE,
            build_id,
            filename: c_str(name),
        });
        debug_assert!(c.pos() == start + size);
    }
    out
}

/// Parses `HEADER_EVENT_DESC`.
pub fn parse_event_desc(data: &[u8]) -> Option<Vec<(PerfEventAttr, String, Vec<u64>)>> {
    let mut c = ByteCursor::new(data);
    let nr = c.u32()? as usize;
    let attr_size = c.u32()? as usize;
    let mut out = Vec::new();
    for _ in 0..nr {
        let attr = PerfEventAttr::parse(c.bytes(attr_size)?)?;
        let nr_ids = c.u32()? as usize;
        let name = c.perf_str()?;
        if nr_ids.checked_mul(8)? > c.remaining() {
            return None;
        }
        let mut ids = Vec::with_capacity(nr_ids);
        for _ in 0..nr_ids {
            ids.push(c.u64()?);
        }
        out.push((attr, name, ids));
    }
    Some(out)
}

impl Features {
    /// Applies one feature section's bytes.
    pub fn apply(&mut self, feat: u32, data: &[u8]) {
        let mut c = ByteCursor::new(data);
        if !self.present.contains(&feat) {
            self.present.push(feat);
        }
        match feat {
            feature::HOSTNAME => self.hostname = c.perf_str(),
            feature::OSRELEASE => self.os_release = c.perf_str(),
            feature::VERSION => self.perf_version = c.perf_str(),
            feature::ARCH => self.arch = c.perf_str(),
            feature::CPUDESC => self.cpu_desc = c.perf_str(),
            feature::CPUID => self.cpuid = c.perf_str(),
            feature::NRCPUS => {
                self.nr_cpus_avail = c.u32();
                self.nr_cpus_online = c.u32();
            }
            feature::TOTAL_MEM => self.total_mem_kb = c.u64(),
            feature::CMDLINE => {
                if let Some(n) = c.u32() {
                    let mut parts = Vec::new();
                    for _ in 0..n {
                        match c.perf_str() {
                            Some(s) => parts.push(s),
                            None => break,
                        }
                    }
                    self.cmdline = Some(parts.join(" "));
                }
            }
            feature::EVENT_DESC => {
                if let Some(d) = parse_event_desc(data) {
                    self.event_desc = d;
                }
            }
            feature::SAMPLE_TIME => {
                if let (Some(a), Some(b)) = (c.u64(), c.u64()) {
                    self.sample_time = Some((a, b));
                }
            }
            feature::CLOCKID => self.clockid_res_ns = c.u64(),
            feature::CLOCK_DATA => {
                if let (Some(_ver), Some(id), Some(wall), Some(clk)) =
                    (c.u32(), c.u32(), c.u64(), c.u64())
                {
                    self.clock_data = Some((id, wall, clk));
                }
            }
            feature::TRACING_DATA => self.tracing_data = Some(data.to_vec()),
            feature::BUILD_ID => self.build_ids.extend(parse_build_ids(data)),
            feature::COMPRESSED => {
                if let (Some(a), Some(b), Some(l), Some(r), Some(m)) =
                    (c.u32(), c.u32(), c.u32(), c.u32(), c.u32())
                {
                    self.compressed = Some((a, b, l, r, m));
                }
            }
            _ => {}
        }
    }
}
