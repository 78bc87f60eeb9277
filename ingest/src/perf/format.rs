//! Parser for one tracefs event `format` file, e.g.
//! `/sys/kernel/tracing/events/kvm/kvm_exit/format`, and typed access to the fields of a raw
//! tracepoint payload (`PERF_SAMPLE_RAW`).
//!
//! The field flags follow libtraceevent's `event_read_fields` so that the `print fmt`
//! evaluator in [`super::printfmt`] can reproduce perf's text exactly.

use std::borrow::Cow;

/// Error while parsing a `format` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The `name:` line is missing.
    #[error("format of {system}: no `name:` line")]
    MissingName {
        /// Event system the text was given for.
        system: String,
    },
    /// The `ID:` line is missing or not a number.
    #[error("format of {system}:{name}: no valid `ID:` line")]
    MissingId {
        /// Event system.
        system: String,
        /// Event name.
        name: String,
    },
    /// A `field:` line could not be parsed.
    #[error("format of {system}:{name}, line {line}: bad field line")]
    BadField {
        /// Event system.
        system: String,
        /// Event name.
        name: String,
        /// 1-based line number in the format text.
        line: usize,
    },
}

/// How the bytes of a field are stored in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldStorage {
    /// The value lives at `offset..offset + size`.
    Inline,
    /// `__data_loc`: a u32 at `offset` whose low 16 bits are the offset of the data in the
    /// payload and whose high 16 bits are its length.
    DataLoc,
    /// `__rel_loc`: like `DataLoc`, but the offset is relative to the end of the field.
    RelLoc,
}

/// What a field holds, as the table writer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// A scalar integer (1, 2, 4 or 8 bytes); see [`FieldFormat::signed`].
    Int,
    /// A pointer (type ends in `*`); read as an unsigned integer.
    Pointer,
    /// Text: a `char` array, fixed or dynamic; NUL-terminated inside its bytes.
    Str,
    /// Any other array, fixed or dynamic (e.g. `u8 insn[15]`, `__data_loc u8[] buf`).
    Bytes,
}

/// The column type a field maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// Unsigned integer of `bytes` bytes (1, 2, 4 or 8).
    Unsigned {
        /// Width in bytes.
        bytes: u8,
    },
    /// Signed integer of `bytes` bytes (1, 2, 4 or 8).
    Signed {
        /// Width in bytes.
        bytes: u8,
    },
    /// UTF-8 text (lossy).
    Str,
    /// Raw bytes.
    Bytes,
}

/// One `field:` line of a format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFormat {
    /// Field name, e.g. `exit_reason`.
    pub name: String,
    /// Declared C type without the name, e.g. `unsigned int`, `char[16]`, `__data_loc char[]`.
    pub type_name: String,
    /// Byte offset in the payload.
    pub offset: usize,
    /// Size in bytes as declared (`0` for a flexible array: the rest of the payload).
    pub size: usize,
    /// The `signed:` flag.
    pub signed: bool,
    /// What the field holds.
    pub kind: FieldKind,
    /// Where its bytes are.
    pub storage: FieldStorage,
    /// Element count of a fixed array (`Some(0)` for `[]`), `None` for scalars.
    pub array_len: Option<usize>,
}

/// A decoded field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// Unsigned integer or pointer.
    Unsigned(u64),
    /// Signed integer, sign-extended from its size.
    Signed(i64),
    /// Text up to the first NUL (lossy UTF-8).
    Str(Cow<'a, str>),
    /// Raw bytes of an array.
    Bytes(&'a [u8]),
}

/// One tracepoint event format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    /// System (directory) name, e.g. `kvm`.
    pub system: String,
    /// Event name, e.g. `kvm_exit`.
    pub name: String,
    /// Event id (`common_type` of its payloads, `config` of its perf attr).
    pub id: u64,
    /// The `common_*` fields (before the blank line).
    pub common_fields: Vec<FieldFormat>,
    /// The event's own fields.
    pub fields: Vec<FieldFormat>,
    /// The `print fmt:` text (quoted format string plus arguments), empty if absent.
    pub print_fmt: String,
}

impl EventFormat {
    /// Looks a field up by name: common fields first, then the event's own (libtraceevent's
    /// `tep_find_any_field`).
    pub fn field(&self, name: &str) -> Option<&FieldFormat> {
        self.common_fields
            .iter()
            .chain(self.fields.iter())
            .find(|f| f.name == name)
    }

    /// Looks up one of the event's own (non-common) fields by name.
    pub fn own_field(&self, name: &str) -> Option<&FieldFormat> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// `system:name`, as perf names the event.
    pub fn full_name(&self) -> String {
        format!("{}:{}", self.system, self.name)
    }
}

/// Reads an unsigned integer of `size` bytes (1, 2, 4, 8) at `offset`; `None` when out of
/// bounds or of another size.
pub fn read_uint(raw: &[u8], offset: usize, size: usize, big_endian: bool) -> Option<u64> {
    let bytes = raw.get(offset..offset.checked_add(size)?)?;
    let mut buf = [0u8; 8];
    match size {
        1 | 2 | 4 | 8 => {}
        _ => return None,
    }
    if big_endian {
        buf[8 - size..].copy_from_slice(bytes);
        Some(u64::from_be_bytes(buf))
    } else {
        buf[..size].copy_from_slice(bytes);
        Some(u64::from_le_bytes(buf))
    }
}

fn sign_extend(value: u64, size: usize) -> i64 {
    match size {
        1 => value as u8 as i8 as i64,
        2 => value as u16 as i16 as i64,
        4 => value as u32 as i32 as i64,
        _ => value as i64,
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => bytes.get(..end).unwrap_or(bytes),
        None => bytes,
    }
}

impl FieldFormat {
    /// True for fixed or dynamic arrays (libtraceevent `TEP_FIELD_IS_ARRAY`).
    pub fn is_array(&self) -> bool {
        self.array_len.is_some() || self.storage != FieldStorage::Inline
    }

    /// True for `__data_loc` / `__rel_loc` fields.
    pub fn is_dynamic(&self) -> bool {
        self.storage != FieldStorage::Inline
    }

    /// libtraceevent's `TEP_FIELD_IS_STRING`: an array whose type mentions `char`, `u8` or
    /// `s8` (so `u8 insn[15]` counts; it decides how perf prints a field, not its column).
    pub fn is_string_like(&self) -> bool {
        (self.is_array()
            && (self.type_name.contains("char")
                || self.type_name.contains("u8")
                || self.type_name.contains("s8")))
            || (self.is_dynamic() && self.size == 2)
    }

    /// libtraceevent's `TEP_FIELD_IS_LONG`: the type mentions `long`.
    pub fn is_long(&self) -> bool {
        self.type_name.contains("long")
    }

    /// Size of one array element (libtraceevent `elementsize`); the field size for scalars.
    pub fn element_size(&self, long_size: u8) -> usize {
        if !self.is_array() {
            return self.size;
        }
        match self.array_len {
            Some(n) if n > 0 => self.size / n,
            _ if self.is_dynamic() => {
                let elem = self
                    .type_name
                    .rsplit(' ')
                    .next()
                    .unwrap_or("")
                    .trim_end_matches("[]");
                match elem {
                    "u8" | "s8" | "char" => 1,
                    "u16" | "s16" => 2,
                    "u32" | "s32" => 4,
                    "u64" | "s64" => 8,
                    _ => 0,
                }
            }
            _ if self.is_string_like() => 1,
            _ if self.is_long() => usize::from(long_size),
            _ => 0,
        }
    }

    /// The column type this field maps to.
    pub fn column_kind(&self) -> ColumnKind {
        match self.kind {
            FieldKind::Int | FieldKind::Pointer => {
                let bytes = match self.size {
                    1 | 2 | 4 | 8 => self.size as u8,
                    _ => return ColumnKind::Bytes,
                };
                if self.signed && self.kind == FieldKind::Int {
                    ColumnKind::Signed { bytes }
                } else {
                    ColumnKind::Unsigned { bytes }
                }
            }
            FieldKind::Str => ColumnKind::Str,
            FieldKind::Bytes => ColumnKind::Bytes,
        }
    }

    /// The byte range of the field's data in `raw`: for dynamic fields the range its
    /// descriptor points to, for inline fields `offset..offset + size` (size 0: to the end).
    /// `None` when the range is outside `raw`.
    pub fn data_range(&self, raw: &[u8], big_endian: bool) -> Option<std::ops::Range<usize>> {
        match self.storage {
            FieldStorage::Inline => {
                let end = if self.size == 0 {
                    raw.len()
                } else {
                    self.offset.checked_add(self.size)?
                };
                (self.offset <= end && end <= raw.len()).then_some(self.offset..end)
            }
            FieldStorage::DataLoc | FieldStorage::RelLoc => {
                let desc = read_uint(raw, self.offset, self.size, big_endian)?;
                let mut start = (desc & 0xffff) as usize;
                let len = if self.size == 2 {
                    raw.len().checked_sub(start)?
                } else {
                    ((desc >> 16) & 0xffff) as usize
                };
                if self.storage == FieldStorage::RelLoc {
                    start = start.checked_add(self.offset.checked_add(self.size)?)?;
                }
                let end = start.checked_add(len)?;
                (end <= raw.len()).then_some(start..end)
            }
        }
    }

    /// Decodes the field from a raw payload; `None` if it lies outside `raw`.
    pub fn value<'a>(&self, raw: &'a [u8], big_endian: bool) -> Option<FieldValue<'a>> {
        match self.kind {
            FieldKind::Int | FieldKind::Pointer => {
                let v = read_uint(raw, self.offset, self.size, big_endian)?;
                if self.signed && self.kind == FieldKind::Int {
                    Some(FieldValue::Signed(sign_extend(v, self.size)))
                } else {
                    Some(FieldValue::Unsigned(v))
                }
            }
            FieldKind::Str => {
                let bytes = raw.get(self.data_range(raw, big_endian)?)?;
                Some(FieldValue::Str(String::from_utf8_lossy(until_nul(bytes))))
            }
            FieldKind::Bytes => {
                let bytes = raw.get(self.data_range(raw, big_endian)?)?;
                Some(FieldValue::Bytes(bytes))
            }
        }
    }
}

/// Parses the declaration part of a field line (`TYPE NAME[N]`) into a field.
fn parse_declaration(decl: &str) -> Option<(String, String, Option<usize>, bool)> {
    let decl = decl.trim();
    let (mut head, array_len) = match decl.strip_suffix(']') {
        Some(rest) => {
            let open = rest.rfind('[')?;
            let inner = rest.get(open + 1..)?.trim();
            // The last token inside the brackets is the length (libtraceevent does the same for
            // `[TASK_COMM_LEN]`-style leftovers: non-numeric gives 0).
            let last = inner
                .rsplit(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("");
            (
                rest.get(..open)?.trim_end(),
                Some(parse_c_uint(last).unwrap_or(0) as usize),
            )
        }
        None => (decl, None),
    };
    let mut pointer = false;
    let split = head.rfind(|c: char| c.is_whitespace() || c == '*')?;
    let mut name = head.get(split + 1..)?.to_string();
    head = head.get(..=split)?;
    let mut type_name = head.trim_end().to_string();
    if name.is_empty() {
        return None;
    }
    if type_name.ends_with('*') {
        pointer = true;
    }
    if let Some(n) = array_len {
        if n > 0 {
            type_name = format!("{type_name}[{n}]");
        } else {
            type_name.push_str("[]");
        }
    }
    // Keep names plain identifiers.
    name.retain(|c| c != '*');
    Some((type_name, name, array_len, pointer))
}

/// Parses a C unsigned literal (decimal, `0x` hex, leading-zero octal), like `strtoul(.., 0)`.
pub(crate) fn parse_c_uint(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(t.get(1..)?, 8).ok()
    } else {
        t.parse().ok()
    }
}

fn parse_field_line(line: &str) -> Option<FieldFormat> {
    let rest = line.trim_start().strip_prefix("field")?;
    let rest = rest.trim_start();
    // Old ftrace formats say `field special:`.
    let rest = rest.strip_prefix("special").unwrap_or(rest).trim_start();
    let rest = rest.strip_prefix(':')?;
    let mut parts = rest.split(';');
    let decl = parts.next()?;
    let (type_name, name, array_len, pointer) = parse_declaration(decl)?;
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for part in parts {
        let Some((key, value)) = part.split_once(':') else {
            continue;
        };
        let value = parse_c_uint(value);
        match key.trim() {
            "offset" => offset = Some(value? as usize),
            "size" => size = Some(value? as usize),
            "signed" => signed = value.unwrap_or(0) != 0,
            _ => {}
        }
    }
    let storage = if type_name.starts_with("__data_loc") {
        FieldStorage::DataLoc
    } else if type_name.starts_with("__rel_loc") {
        FieldStorage::RelLoc
    } else {
        FieldStorage::Inline
    };
    let is_array = array_len.is_some() || storage != FieldStorage::Inline;
    let kind = if is_array {
        if type_name.contains("char") {
            FieldKind::Str
        } else {
            FieldKind::Bytes
        }
    } else if pointer {
        FieldKind::Pointer
    } else {
        FieldKind::Int
    };
    Some(FieldFormat {
        name,
        type_name,
        offset: offset?,
        size: size?,
        signed,
        kind,
        storage,
        array_len,
    })
}

/// Parses one format file. `system` is the directory the file came from (it is not in the
/// text). Unknown lines are ignored; the common/own split is the first blank line after
/// `format:` (or the `common_` prefix when there is none).
pub fn parse_event_format(system: &str, text: &str) -> Result<EventFormat, FormatError> {
    let mut name = None;
    let mut id = None;
    let mut common_fields = Vec::new();
    let mut fields = Vec::new();
    let mut print_fmt = String::new();
    let mut in_format = false;
    let mut seen_blank = false;
    let mut line_start = 0usize;
    for (idx, line) in text.split('\n').enumerate() {
        let this_start = line_start;
        line_start += line.len() + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim();
        if let Some(v) = line.strip_prefix("name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("ID:") {
            id = parse_c_uint(v);
        } else if line.starts_with("format:") {
            in_format = true;
        } else if line.starts_with("print fmt:") {
            // The format string may contain raw newlines: the print fmt runs to the end.
            let rest = text.get(this_start + "print fmt:".len()..).unwrap_or("");
            print_fmt = rest.trim_start().trim_end_matches(['\n', '\r']).to_string();
            break;
        } else if in_format && trimmed.is_empty() {
            if !common_fields.is_empty() || !fields.is_empty() {
                seen_blank = true;
            }
        } else if in_format && trimmed.starts_with("field") {
            let field = parse_field_line(line).ok_or_else(|| FormatError::BadField {
                system: system.to_string(),
                name: name.clone().unwrap_or_default(),
                line: idx + 1,
            })?;
            if !seen_blank && field.name.starts_with("common_") {
                common_fields.push(field);
            } else {
                seen_blank = true;
                fields.push(field);
            }
        }
    }
    let name = name.ok_or_else(|| FormatError::MissingName {
        system: system.to_string(),
    })?;
    let id = id.ok_or_else(|| FormatError::MissingId {
        system: system.to_string(),
        name: name.clone(),
    })?;
    Ok(EventFormat {
        system: system.to_string(),
        name,
        id,
        common_fields,
        fields,
        print_fmt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Format files copied from /sys/kernel/tracing/events/*/*/format of the Linux 6.18 host
    // that recorded /work/shared/testdata/kvm.
    const KVM_EXIT: &str = include_str!("../../tests/data/tracefmt/kvm_exit.format");
    const KVM_EMULATE_INSN: &str =
        include_str!("../../tests/data/tracefmt/kvm_emulate_insn.format");
    const SCHED_SWITCH: &str = include_str!("../../tests/data/tracefmt/sched_switch.format");
    const SCHED_PROCESS_EXEC: &str =
        include_str!("../../tests/data/tracefmt/sched_process_exec.format");
    const EXT4_FC_STATS: &str = include_str!("../../tests/data/tracefmt/ext4_fc_stats.format");

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn kvm_exit_fields() {
        let ev = parse_event_format("kvm", KVM_EXIT).unwrap();
        assert_eq!(
            (ev.system.as_str(), ev.name.as_str(), ev.id),
            ("kvm", "kvm_exit", 103)
        );
        let common: Vec<_> = ev.common_fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            common,
            [
                "common_type",
                "common_flags",
                "common_preempt_count",
                "common_pid"
            ]
        );
        let names: Vec<_> = ev.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "exit_reason",
                "guest_rip",
                "isa",
                "info1",
                "info2",
                "intr_info",
                "error_code",
                "vcpu_id",
                "requests"
            ]
        );
        let reason = ev.own_field("exit_reason").unwrap();
        assert_eq!((reason.offset, reason.size, reason.signed), (8, 4, false));
        assert_eq!(reason.type_name, "unsigned int");
        assert_eq!(reason.column_kind(), ColumnKind::Unsigned { bytes: 4 });
        let rip = ev.own_field("guest_rip").unwrap();
        assert_eq!(
            (rip.type_name.as_str(), rip.offset, rip.size),
            ("unsigned long", 16, 8)
        );
        assert!(rip.is_long());
        let pid = ev.field("common_pid").unwrap();
        assert_eq!(pid.column_kind(), ColumnKind::Signed { bytes: 4 });
        assert!(
            ev.print_fmt
                .starts_with("\"vcpu %u reason %s%s%s rip 0x%lx")
        );
        assert!(ev.print_fmt.ends_with("REC->error_code, REC->requests"));
    }

    #[test]
    fn byte_array_and_values() {
        let ev = parse_event_format("kvm", KVM_EMULATE_INSN).unwrap();
        let insn = ev.own_field("insn").unwrap();
        assert_eq!(insn.kind, FieldKind::Bytes);
        assert_eq!(insn.array_len, Some(15));
        assert_eq!(insn.type_name, "__u8[15]");
        // libtraceevent counts u8 arrays as strings when printing.
        assert!(insn.is_string_like());
        assert_eq!(insn.element_size(8), 1);
        // Payload of the sample printed as `0:ffffffff81000000:31 ed (prot64)`
        // (kvm/kvm-emulated-1vcpu.script.txt line 1).
        let raw = hex(
            "55000001105e000000000081ffffffff000000000231ed4883e4f0e885040000f4ebfd660900000000000000",
        );
        assert_eq!(
            ev.own_field("rip").unwrap().value(&raw, false),
            Some(FieldValue::Unsigned(0xffff_ffff_8100_0000))
        );
        assert_eq!(
            ev.own_field("len").unwrap().value(&raw, false),
            Some(FieldValue::Unsigned(2))
        );
        match insn.value(&raw, false) {
            Some(FieldValue::Bytes(b)) => assert_eq!(&b[..2], &[0x31, 0xed]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ev.field("common_pid").unwrap().value(&raw, false),
            Some(FieldValue::Signed(0x5e10))
        );
        // Out of bounds reads give None, not a panic.
        assert_eq!(insn.value(&raw[..30], false), None);
        assert_eq!(
            ev.own_field("failed").unwrap().value(&raw[..37], false),
            None
        );
    }

    #[test]
    fn char_array_is_string() {
        let ev = parse_event_format("sched", SCHED_SWITCH).unwrap();
        let prev = ev.own_field("prev_comm").unwrap();
        assert_eq!(
            (prev.kind, prev.array_len, prev.size),
            (FieldKind::Str, Some(16), 16)
        );
        assert_eq!(prev.column_kind(), ColumnKind::Str);
        let state = ev.own_field("prev_state").unwrap();
        assert_eq!(state.column_kind(), ColumnKind::Signed { bytes: 8 });
        // A 6.18 sched_switch payload built field by field (prev_comm "swapper/1").
        let mut raw = vec![0u8; 64];
        raw[8..17].copy_from_slice(b"swapper/1");
        raw[40..44].copy_from_slice(b"perf");
        raw[56..60].copy_from_slice(&22128i32.to_le_bytes());
        assert_eq!(
            prev.value(&raw, false),
            Some(FieldValue::Str("swapper/1".into()))
        );
        assert_eq!(
            ev.own_field("next_comm").unwrap().value(&raw, false),
            Some(FieldValue::Str("perf".into()))
        );
        assert_eq!(
            ev.own_field("next_pid").unwrap().value(&raw, false),
            Some(FieldValue::Signed(22128))
        );
    }

    #[test]
    fn data_loc_string() {
        let ev = parse_event_format("sched", SCHED_PROCESS_EXEC).unwrap();
        let f = ev.own_field("filename").unwrap();
        assert_eq!(f.type_name, "__data_loc char[]");
        assert_eq!(
            (f.storage, f.kind, f.size),
            (FieldStorage::DataLoc, FieldKind::Str, 4)
        );
        // Descriptor: offset 20, length 8 ("/bin/ls\0").
        let mut raw = vec![0u8; 28];
        raw[8..12].copy_from_slice(&((8u32 << 16) | 20).to_le_bytes());
        raw[20..28].copy_from_slice(b"/bin/ls\0");
        assert_eq!(f.data_range(&raw, false), Some(20..28));
        assert_eq!(
            f.value(&raw, false),
            Some(FieldValue::Str("/bin/ls".into()))
        );
        // A descriptor pointing past the payload is rejected.
        raw[8..12].copy_from_slice(&((64u32 << 16) | 20).to_le_bytes());
        assert_eq!(f.value(&raw, false), None);
        // Big-endian descriptor.
        let mut be = raw.clone();
        be[8..12].copy_from_slice(&((8u32 << 16) | 20).to_be_bytes());
        assert_eq!(f.value(&be, true), Some(FieldValue::Str("/bin/ls".into())));
    }

    #[test]
    fn rel_loc_is_relative_to_field_end() {
        let text = "name: foo\nID: 7\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:__rel_loc char[] msg;\toffset:8;\tsize:4;\tsigned:0;\n\nprint fmt: \"%s\", __get_rel_str(msg)\n";
        let ev = parse_event_format("test", text).unwrap();
        let f = ev.own_field("msg").unwrap();
        assert_eq!(f.storage, FieldStorage::RelLoc);
        let mut raw = vec![0u8; 16];
        // Offset 0 relative to the end of the field (12), length 3.
        raw[8..12].copy_from_slice(&(3u32 << 16).to_le_bytes());
        raw[12..15].copy_from_slice(b"hi\0");
        assert_eq!(f.data_range(&raw, false), Some(12..15));
        assert_eq!(f.value(&raw, false), Some(FieldValue::Str("hi".into())));
    }

    #[test]
    fn multi_line_print_fmt_is_kept_whole() {
        let ev = parse_event_format("ext4", EXT4_FC_STATS).unwrap();
        assert!(
            ev.print_fmt
                .starts_with("\"dev %d,%d fc ineligible reasons:\n")
        );
        assert!(
            ev.print_fmt
                .ends_with("REC->fc_ineligible_commits, REC->fc_numblks")
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_event_format("kvm", "garbage"),
            Err(FormatError::MissingName { .. })
        ));
        assert!(matches!(
            parse_event_format("kvm", "name: x\nformat:\n"),
            Err(FormatError::MissingId { .. })
        ));
        assert!(matches!(
            parse_event_format("kvm", "name: x\nID: 1\nformat:\n\tfield:int a;\toffset:;\n"),
            Err(FormatError::BadField { line: 4, .. })
        ));
        for end in 0..KVM_EXIT.len() {
            if KVM_EXIT.is_char_boundary(end) {
                let _ = parse_event_format("kvm", &KVM_EXIT[..end]);
            }
        }
    }
}
