//! Tracepoint formats copied from a real kernel's tracefs (synth/formats/)
//! and the TRACING_DATA header section assembled as perf 6.1 writes it
//! (tools/perf/util/trace-event-info.c), plus builders of the raw payloads.

use crate::error::Error;

/// A tracepoint whose format is embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tp {
    KvmExit,
    KvmEntry,
    KvmUserspaceExit,
    KvmPio,
    KvmMmio,
    KvmMsr,
    KvmWriteTscOffset,
    SchedSwitch,
}

impl Tp {
    /// All tracepoints in the order of the perf record command line.
    pub(crate) const ALL: [Tp; 8] = [
        Tp::KvmExit,
        Tp::KvmEntry,
        Tp::KvmUserspaceExit,
        Tp::KvmPio,
        Tp::KvmMmio,
        Tp::KvmMsr,
        Tp::KvmWriteTscOffset,
        Tp::SchedSwitch,
    ];

    pub(crate) fn format(self) -> &'static str {
        match self {
            Tp::KvmExit => include_str!("../formats/kvm_exit.format"),
            Tp::KvmEntry => include_str!("../formats/kvm_entry.format"),
            Tp::KvmUserspaceExit => include_str!("../formats/kvm_userspace_exit.format"),
            Tp::KvmPio => include_str!("../formats/kvm_pio.format"),
            Tp::KvmMmio => include_str!("../formats/kvm_mmio.format"),
            Tp::KvmMsr => include_str!("../formats/kvm_msr.format"),
            Tp::KvmWriteTscOffset => include_str!("../formats/kvm_write_tsc_offset.format"),
            Tp::SchedSwitch => include_str!("../formats/sched_switch.format"),
        }
    }

    pub(crate) fn system(self) -> &'static str {
        match self {
            Tp::SchedSwitch => "sched",
            _ => "kvm",
        }
    }

    /// "kvm:kvm_exit" etc.
    pub(crate) fn full_name(self) -> String {
        format!("{}:{}", self.system(), self.name())
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Tp::KvmExit => "kvm_exit",
            Tp::KvmEntry => "kvm_entry",
            Tp::KvmUserspaceExit => "kvm_userspace_exit",
            Tp::KvmPio => "kvm_pio",
            Tp::KvmMmio => "kvm_mmio",
            Tp::KvmMsr => "kvm_msr",
            Tp::KvmWriteTscOffset => "kvm_write_tsc_offset",
            Tp::SchedSwitch => "sched_switch",
        }
    }
}

/// Parsed layout of one format file: id and field offsets.
#[derive(Debug, Clone)]
pub(crate) struct TpFormat {
    pub(crate) id: u16,
    pub(crate) size: usize,
    fields: Vec<(String, usize, usize)>,
}

impl TpFormat {
    pub(crate) fn parse(tp: Tp) -> Result<TpFormat, Error> {
        let text = tp.format();
        let mut id = None;
        let mut fields = Vec::new();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("ID: ") {
                id = v.trim().parse::<u16>().ok();
            }
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("field:") {
                let mut parts = rest.split(';');
                let decl = parts.next().unwrap_or("").trim();
                let name = decl
                    .rsplit(' ')
                    .next()
                    .unwrap_or("")
                    .split('[')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let mut off = None;
                let mut size = None;
                for p in parts {
                    let p = p.trim();
                    if let Some(v) = p.strip_prefix("offset:") {
                        off = v.parse::<usize>().ok();
                    } else if let Some(v) = p.strip_prefix("size:") {
                        size = v.parse::<usize>().ok();
                    }
                }
                if let (Some(o), Some(s)) = (off, size) {
                    fields.push((name, o, s));
                }
            }
        }
        let id = id.ok_or_else(|| Error::EmbeddedData(format!("no ID in {} format", tp.name())))?;
        let size = fields.iter().map(|f| f.1 + f.2).max().unwrap_or(8);
        Ok(TpFormat { id, size, fields })
    }

    fn field(&self, name: &str) -> Option<(usize, usize)> {
        self.fields.iter().find(|f| f.0 == name).map(|f| (f.1, f.2))
    }

    /// A zeroed payload in `buf` with the common fields set.
    pub(crate) fn payload<'a>(&'a self, buf: &'a mut Vec<u8>, pid: i32, flags: u8) -> Payload<'a> {
        buf.clear();
        buf.resize(self.size, 0);
        buf[0..2].copy_from_slice(&self.id.to_le_bytes());
        buf[2] = flags;
        buf[4..8].copy_from_slice(&pid.to_le_bytes());
        Payload { fmt: self, buf }
    }
}

/// A tracepoint payload under construction. Unknown fields are ignored so
/// that format drift (fields added or removed) never breaks generation.
pub(crate) struct Payload<'a> {
    fmt: &'a TpFormat,
    buf: &'a mut Vec<u8>,
}

impl Payload<'_> {
    pub(crate) fn set(&mut self, name: &str, v: u64) -> &mut Self {
        if let Some((o, s)) = self.fmt.field(name) {
            let b = v.to_le_bytes();
            let n = s.min(8);
            self.buf[o..o + n].copy_from_slice(&b[..n]);
        }
        self
    }

    pub(crate) fn set_str(&mut self, name: &str, v: &str) -> &mut Self {
        if let Some((o, s)) = self.fmt.field(name) {
            let b = v.as_bytes();
            let n = b.len().min(s.saturating_sub(1));
            self.buf[o..o + n].copy_from_slice(&b[..n]);
        }
        self
    }
}

/// The TRACING_DATA feature body for the given tracepoints.
pub(crate) fn tracing_data(tps: &[Tp]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&[23, 8, 68]);
    v.extend_from_slice(b"tracing");
    v.extend_from_slice(b"0.6\0");
    v.push(0); // little endian
    v.push(8); // sizeof(long)
    v.extend_from_slice(&4096u32.to_le_bytes());
    for (name, content) in [
        ("header_page", include_str!("../formats/header_page")),
        ("header_event", include_str!("../formats/header_event")),
    ] {
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        v.extend_from_slice(&(content.len() as u64).to_le_bytes());
        v.extend_from_slice(content.as_bytes());
    }
    v.extend_from_slice(&0u32.to_le_bytes()); // ftrace formats
    let mut systems: Vec<&str> = Vec::new();
    for tp in tps {
        if !systems.contains(&tp.system()) {
            systems.push(tp.system());
        }
    }
    v.extend_from_slice(&(systems.len() as u32).to_le_bytes());
    for sys in systems {
        v.extend_from_slice(sys.as_bytes());
        v.push(0);
        let members: Vec<&Tp> = tps.iter().filter(|t| t.system() == sys).collect();
        v.extend_from_slice(&(members.len() as u32).to_le_bytes());
        for tp in members {
            let f = tp.format();
            v.extend_from_slice(&(f.len() as u64).to_le_bytes());
            v.extend_from_slice(f.as_bytes());
        }
    }
    v.extend_from_slice(&0u32.to_le_bytes()); // kallsyms
    v.extend_from_slice(&0u32.to_le_bytes()); // printk formats
    v.extend_from_slice(&0u64.to_le_bytes()); // saved_cmdlines
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        for tp in Tp::ALL {
            let f = TpFormat::parse(tp).expect("format parses");
            assert!(f.size >= 8, "{tp:?}");
        }
        let exit = TpFormat::parse(Tp::KvmExit).expect("kvm_exit");
        assert!(exit.field("exit_reason").is_some());
        assert!(exit.field("guest_rip").is_some());
        let sw = TpFormat::parse(Tp::SchedSwitch).expect("sched_switch");
        assert_eq!(sw.field("prev_comm"), Some((8, 16)));
    }
}
