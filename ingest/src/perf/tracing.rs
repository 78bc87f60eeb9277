//! Parser for perf's tracing data: the `HEADER_TRACING_DATA` feature section of a perf.data
//! file, and the payload of a pipe-mode `PERF_RECORD_HEADER_TRACING_DATA` record.
//!
//! Layout (perf `util/trace-event-info.c` writes it, `util/trace-event-read.c` reads it):
//! magic `\x17\x08\x44tracing`, a NUL-terminated version ("0.5", "0.6"), one byte
//! big-endian flag, one byte `long` size, u32 page size, then `header_page` and `header_event`
//! (name, u64 size, text), the ftrace formats (u32 count, each u64 size + text), the event
//! systems (u32 count, each a NUL-terminated name, u32 count, each u64 size + format text),
//! u32 size + kallsyms text, u32 size + printk formats, and from 0.6 on u64 size + saved
//! cmdlines. All integers after the flag byte are in the file's byte order.

use super::format::{self, EventFormat};

const MAGIC: &[u8; 10] = b"\x17\x08\x44tracing";

/// Fatal error: the bytes are not tracing data at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TracingError {
    /// The first bytes are not `\x17\x08\x44tracing`.
    #[error("tracing data: bad magic at byte 0")]
    BadMagic,
    /// The fixed header (version, endianness, long size, page size) is cut short.
    #[error("tracing data: truncated header at byte {offset}")]
    TruncatedHeader {
        /// Offset where more bytes were needed.
        offset: usize,
    },
}

/// One printk format string registered by address (the `printk` part of the tracing data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintkFormat {
    /// Kernel address of the format string.
    pub addr: u64,
    /// The format text without quotes and trailing `\n`.
    pub format: String,
}

/// The parsed tracing data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracingData {
    /// Version string, e.g. `0.6`.
    pub version: String,
    /// Whether the recording machine was big-endian (all payload integers follow it).
    pub big_endian: bool,
    /// `sizeof(long)` on the recording machine.
    pub long_size: u8,
    /// Page size of the recording machine.
    pub page_size: u32,
    /// `header_page` text (ring-buffer page header format).
    pub header_page: String,
    /// `header_event` text.
    pub header_event: String,
    /// All event formats: ftrace ones (system `ftrace`) first, then per system, in file order.
    pub events: Vec<EventFormat>,
    /// How many of `events` (at their start) are ftrace formats.
    pub ftrace_formats: usize,
    /// printk format strings by address, sorted by address.
    pub printk: Vec<PrintkFormat>,
    /// `pid comm` pairs from saved_cmdlines (version >= 0.6).
    pub cmdlines: Vec<(i32, String)>,
    /// Non-fatal problems: formats that failed to parse, a truncated tail, ...
    pub warnings: Vec<String>,
}

impl TracingData {
    /// The event format whose id is `id` (the perf attr `config` of a tracepoint event).
    pub fn event_by_id(&self, id: u64) -> Option<&EventFormat> {
        self.events.iter().find(|e| e.id == id)
    }

    /// The event format named `system:name`.
    pub fn event_by_name(&self, system: &str, name: &str) -> Option<&EventFormat> {
        self.events
            .iter()
            .find(|e| e.system == system && e.name == name)
    }

    /// The printk format registered at `addr`, if any.
    pub fn printk_at(&self, addr: u64) -> Option<&str> {
        self.printk
            .binary_search_by_key(&addr, |p| p.addr)
            .ok()
            .and_then(|i| self.printk.get(i))
            .map(|p| p.format.as_str())
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn u32(&mut self) -> Option<u32> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&mut self) -> Option<u64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.bytes.get(self.pos..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        let out = rest.get(..len)?;
        self.pos += len + 1;
        Some(out)
    }

    /// A block whose length was read from the file: the length is checked against the
    /// remaining input before anything is sliced, so no allocation follows it blindly.
    fn block(&mut self, len: u64) -> Option<&'a [u8]> {
        let len = usize::try_from(len).ok()?;
        self.take(len)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses printk formats: lines `0xffffffff81234567 : "format\n"`.
fn parse_printk(body: &str) -> Vec<PrintkFormat> {
    let mut out = Vec::new();
    for line in body.lines() {
        let Some((addr, fmt)) = line.split_once(" : ") else {
            continue;
        };
        let Some(addr) = format::parse_c_uint(addr) else {
            continue;
        };
        let mut fmt = fmt.strip_prefix('"').unwrap_or(fmt);
        fmt = fmt.strip_suffix('"').unwrap_or(fmt);
        fmt = fmt.strip_suffix("\\n").unwrap_or(fmt);
        out.push(PrintkFormat {
            addr,
            format: fmt.to_string(),
        });
    }
    out.sort_by_key(|p| p.addr);
    out
}

fn parse_cmdlines(body: &str) -> Vec<(i32, String)> {
    body.lines()
        .filter_map(|line| {
            let (pid, comm) = line.trim_start().split_once(' ')?;
            Some((pid.parse().ok()?, comm.to_string()))
        })
        .collect()
}

/// Parses tracing data. Only a bad magic or a truncated fixed header is fatal; a truncated or
/// malformed tail keeps everything parsed before it and adds a warning.
pub fn parse_tracing_data(bytes: &[u8]) -> Result<TracingData, TracingError> {
    if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(TracingError::BadMagic);
    }
    let mut cur = Cursor {
        bytes,
        pos: MAGIC.len(),
        big_endian: false,
    };
    let version = cur
        .cstr()
        .ok_or(TracingError::TruncatedHeader { offset: cur.pos })?;
    let mut data = TracingData {
        version: text(version),
        ..TracingData::default()
    };
    let fixed = cur
        .take(2)
        .ok_or(TracingError::TruncatedHeader { offset: cur.pos })?;
    data.big_endian = fixed.first().copied().unwrap_or(0) != 0;
    data.long_size = fixed.get(1).copied().unwrap_or(8);
    cur.big_endian = data.big_endian;
    data.page_size = cur
        .u32()
        .ok_or(TracingError::TruncatedHeader { offset: cur.pos })?;
    if let Err(what) = parse_body(&mut cur, &mut data) {
        data.warnings.push(format!(
            "tracing data truncated at byte {}: {what}",
            cur.pos
        ));
    }
    Ok(data)
}

fn parse_body(cur: &mut Cursor<'_>, data: &mut TracingData) -> Result<(), &'static str> {
    for (label, slot) in [("header_page", 0), ("header_event", 1)] {
        let name = cur.cstr().ok_or("no header name")?;
        if name != label.as_bytes() {
            return Err("unexpected header name");
        }
        let size = cur.u64().ok_or("no header size")?;
        let body = text(cur.block(size).ok_or("header text cut short")?);
        if slot == 0 {
            data.header_page = body;
        } else {
            data.header_event = body;
        }
    }

    let count = cur.u32().ok_or("no ftrace format count")?;
    for _ in 0..count {
        let size = cur.u64().ok_or("no ftrace format size")?;
        let body = cur.block(size).ok_or("ftrace format cut short")?;
        push_format(data, "ftrace", body);
        data.ftrace_formats = data.events.len();
    }

    let systems = cur.u32().ok_or("no system count")?;
    for _ in 0..systems {
        let system = text(cur.cstr().ok_or("no system name")?);
        let count = cur.u32().ok_or("no event count")?;
        for _ in 0..count {
            let size = cur.u64().ok_or("no event format size")?;
            let body = cur.block(size).ok_or("event format cut short")?;
            push_format(data, &system, body);
        }
    }

    let size = cur.u32().ok_or("no kallsyms size")?;
    cur.block(u64::from(size)).ok_or("kallsyms cut short")?;

    let size = cur.u32().ok_or("no printk size")?;
    let body = cur.block(u64::from(size)).ok_or("printk cut short")?;
    data.printk = parse_printk(&text(body));

    if data.version.as_str() >= "0.6" {
        if cur.remaining() == 0 {
            return Err("no saved_cmdlines");
        }
        let size = cur.u64().ok_or("no saved_cmdlines size")?;
        let body = cur.block(size).ok_or("saved_cmdlines cut short")?;
        data.cmdlines = parse_cmdlines(&text(body));
    }
    Ok(())
}

fn push_format(data: &mut TracingData, system: &str, body: &[u8]) {
    match format::parse_event_format(system, &text(body)) {
        Ok(event) => data.events.push(event),
        Err(err) => data.warnings.push(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // HEADER_TRACING_DATA feature section of /work/shared/testdata/kvm/kvm-tp-2vcpu.data
    // (perf 6.1, Linux 6.18; `perf report --header-only` lists the kvm events with these ids).
    const KVM_TP: &[u8] = include_bytes!("../../tests/data/tracefmt/kvm-tp-2vcpu.tracing");
    // Same section of /work/shared/testdata/public/
    // x86_64_perf4.13_timechart-sched-power-tracepoints.data (perf 4.13, kernel 4.x).
    const TIMECHART: &[u8] = include_bytes!("../../tests/data/tracefmt/timechart-perf4.13.tracing");

    #[test]
    fn kvm_tracing_data() {
        let td = parse_tracing_data(KVM_TP).unwrap();
        assert_eq!(td.version, "0.6");
        assert!(!td.big_endian);
        assert_eq!((td.long_size, td.page_size), (8, 4096));
        assert!(td.warnings.is_empty(), "{:?}", td.warnings);
        assert_eq!(td.ftrace_formats, 0);
        assert!(td.header_page.contains("field: u64 timestamp;"));
        assert!(td.header_event.contains("type_len    :    5 bits"));
        // Event ids as the perf attrs give them (config = 0x67, 0x73, 0x2a, ...).
        let mut ids: Vec<(String, u64)> = td.events.iter().map(|e| (e.full_name(), e.id)).collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                ("kvm:kvm_emulate_insn".to_string(), 0x55),
                ("kvm:kvm_entry".to_string(), 0x73),
                ("kvm:kvm_exit".to_string(), 0x67),
                ("kvm:kvm_mmio".to_string(), 0x26),
                ("kvm:kvm_msr".to_string(), 0x63),
                ("kvm:kvm_pio".to_string(), 0x6e),
                ("kvm:kvm_userspace_exit".to_string(), 0x2a),
            ]
        );
        assert_eq!(td.event_by_id(0x67).unwrap().name, "kvm_exit");
        assert_eq!(td.event_by_name("kvm", "kvm_pio").unwrap().id, 110);
        assert!(td.event_by_id(1).is_none());
        assert_eq!(td.printk.len(), 128);
        assert!(td.printk.windows(2).all(|w| w[0].addr <= w[1].addr));
        let first = &td.printk[0];
        assert_eq!(td.printk_at(first.addr), Some(first.format.as_str()));
    }

    #[test]
    fn formats_match_the_hosts_tracefs_files() {
        // The tracefs files were copied from the host that recorded kvm-tp-2vcpu.data: the
        // formats embedded in the recording must parse to the same thing.
        let td = parse_tracing_data(KVM_TP).unwrap();
        for (name, text) in [
            (
                "kvm_exit",
                include_str!("../../tests/data/tracefmt/kvm_exit.format"),
            ),
            (
                "kvm_entry",
                include_str!("../../tests/data/tracefmt/kvm_entry.format"),
            ),
            (
                "kvm_userspace_exit",
                include_str!("../../tests/data/tracefmt/kvm_userspace_exit.format"),
            ),
            (
                "kvm_pio",
                include_str!("../../tests/data/tracefmt/kvm_pio.format"),
            ),
            (
                "kvm_mmio",
                include_str!("../../tests/data/tracefmt/kvm_mmio.format"),
            ),
            (
                "kvm_msr",
                include_str!("../../tests/data/tracefmt/kvm_msr.format"),
            ),
            (
                "kvm_emulate_insn",
                include_str!("../../tests/data/tracefmt/kvm_emulate_insn.format"),
            ),
        ] {
            let from_file = format::parse_event_format("kvm", text).unwrap();
            assert_eq!(Some(&from_file), td.event_by_name("kvm", name), "{name}");
        }
    }

    #[test]
    fn old_kernel_tracing_data() {
        let td = parse_tracing_data(TIMECHART).unwrap();
        assert!(td.warnings.is_empty(), "{:?}", td.warnings);
        let switch = td.event_by_name("sched", "sched_switch").unwrap();
        assert_eq!(switch.own_field("prev_comm").unwrap().offset, 8);
        assert!(td.event_by_name("power", "cpu_idle").is_some());
        assert!(td.event_by_name("sched", "sched_wakeup").is_some());
    }

    #[test]
    fn bad_magic_and_short_header_are_errors() {
        assert_eq!(parse_tracing_data(b""), Err(TracingError::BadMagic));
        assert_eq!(
            parse_tracing_data(b"PERFILE2xxxxxxxx"),
            Err(TracingError::BadMagic)
        );
        assert!(matches!(
            parse_tracing_data(&KVM_TP[..14]),
            Err(TracingError::TruncatedHeader { .. })
        ));
    }

    #[test]
    fn truncated_tail_keeps_what_was_parsed() {
        let full = parse_tracing_data(KVM_TP).unwrap();
        let mut last_events = 0;
        for end in 0..KVM_TP.len() {
            match parse_tracing_data(&KVM_TP[..end]) {
                Ok(td) => {
                    assert!(td.events.len() >= last_events);
                    assert!(td.events.len() <= full.events.len());
                    last_events = td.events.len();
                    assert!(!td.warnings.is_empty(), "prefix {end} gave no warning");
                }
                Err(_) => assert!(end < 20, "prefix {end} failed"),
            }
        }
        // Cutting inside the printk block still returns all seven formats.
        let printk_start = KVM_TP.len() - 8 - 4 - 40;
        let td = parse_tracing_data(&KVM_TP[..printk_start]).unwrap();
        assert_eq!(td.events.len(), 7);
        assert!(td.warnings[0].contains("truncated"));
    }

    #[test]
    fn huge_length_fields_do_not_allocate() {
        let mut bytes = KVM_TP[..20].to_vec();
        bytes.extend_from_slice(b"header_page\0");
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let td = parse_tracing_data(&bytes).unwrap();
        assert!(td.events.is_empty());
        assert_eq!(td.warnings.len(), 1);
    }
}
