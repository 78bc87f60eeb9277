//! The entry points the fuzz targets drive, shared with the replay test: `fuzz/fuzz_targets/*.rs`
//! include this file (`#[path]`), and `robustness::replay_fuzz_corpus` feeds every committed seed
//! and regression input through the same functions. Each panics only on a broken invariant.

#![allow(dead_code)]

use std::io::Read;
use std::path::Path;

use kvmtrace_ingest::perf::format::{EventFormat, parse_event_format};
use kvmtrace_ingest::perf::header::AttrEntry;
use kvmtrace_ingest::perf::printfmt::{PrintFmt, RenderOptions};
use kvmtrace_ingest::perf::tracing::{PrintkFormat, parse_tracing_data};
use kvmtrace_ingest::reader::{RecordHandler, walk_file, walk_pipe_reader};
use kvmtrace_ingest::symbols::{Bundle, BundleLimits, KernelSymbols, parse_modules};

/// The fuzz targets, by corpus directory name.
pub(crate) const TARGETS: &[&str] = &[
    "perf_file",
    "perf_pipe",
    "tracing_data",
    "kallsyms",
    "bundle",
];

/// Runs target `name` on `data`, using `scratch` for datasets and bundle files.
pub(crate) fn run(name: &str, data: &[u8], scratch: &Path) {
    match name {
        "perf_file" => perf_file(data, scratch),
        "perf_pipe" => perf_pipe(data, scratch),
        "tracing_data" => tracing_data(data),
        "kallsyms" => kallsyms(data),
        "bundle" => bundle(data, scratch),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// A record handler that only touches what it is given.
#[derive(Default)]
pub(crate) struct Sink {
    pub(crate) n_records: u64,
    pub(crate) n_samples: u64,
    pub(crate) bytes: u64,
}

impl RecordHandler for Sink {
    fn on_attr(&mut self, entry: AttrEntry) {
        self.bytes += entry.ids.len() as u64;
    }
    fn on_event_type(&mut self, _id: u64, name: String) {
        self.bytes += name.len() as u64;
    }
    fn on_feature(&mut self, _feat: u32, data: &[u8]) {
        self.bytes += data.len() as u64;
    }
    fn on_record(&mut self, type_: u32, _misc: u16, body: &[u8], _offset: u64) {
        self.n_records += 1;
        self.n_samples += u64::from(type_ == kvmtrace_ingest::perf::records::record_type::SAMPLE);
        self.bytes += body.len() as u64;
    }
}

/// The whole ingest (reader, decompression, session, Parquet tables), without symbols.
pub(crate) fn ingest(
    data: &[u8],
    scratch: &Path,
) -> Result<kvmtrace_ingest::Report, kvmtrace_ingest::Error> {
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = scratch.join("dataset");
    opts.symbolize = false;
    opts.threads = 1;
    let r = kvmtrace_ingest::ingest_bytes(data, "fuzz.data", &opts);
    if let Ok(report) = &r {
        // bytes_unread counts the bytes a truncated file lacks too, so it may exceed the input.
        assert!(
            report.bytes_unread == 0 || report.has_warnings(),
            "bytes unread without a warning: {report:?}"
        );
    }
    r
}

/// A perf.data file (or a pipe stream with its header).
pub(crate) fn perf_file(data: &[u8], scratch: &Path) {
    let walked = walk_file(data, &mut Sink::default());
    let ingested = ingest(data, scratch);
    // The walk is the ingest's first step: if it fails, so does the ingest.
    if walked.is_err() {
        assert!(ingested.is_err(), "walk failed but ingest succeeded");
    }
}

/// Hands out at most `step` bytes per read, as a pipe does.
pub(crate) struct Dribble<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) step: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A pipe-mode stream without its 16-byte header: the whole ingest, then the streaming reader fed
/// a few bytes per `read`, which must see the same records as the in-memory walk.
pub(crate) fn perf_pipe(data: &[u8], scratch: &Path) {
    let mut stream = Vec::with_capacity(data.len() + 16);
    stream.extend_from_slice(b"PERFILE2");
    stream.extend_from_slice(&16u64.to_le_bytes());
    stream.extend_from_slice(data);
    let _ = ingest(&stream, scratch);

    let mut whole = Sink::default();
    let whole_report = walk_file(&stream, &mut whole);
    let step = 1 + data.first().map_or(0, |b| usize::from(*b % 13));
    let mut dribbled = Sink::default();
    let report = walk_pipe_reader(&mut Dribble { data, step }, &mut dribbled, 16, None);
    if let (Ok(a), Ok(b)) = (&whole_report, &report) {
        assert_eq!(a.bytes_read, b.bytes_read, "short reads changed the walk");
        assert_eq!(
            (whole.n_records, whole.n_samples),
            (dribbled.n_records, dribbled.n_samples),
            "short reads changed the records"
        );
        assert!(
            b.bytes_read <= stream.len() as u64,
            "read more than the stream"
        );
    }
}

fn exercise_event(event: &EventFormat, raw: &[u8], printk: &[PrintkFormat]) {
    let fmt = PrintFmt::parse_or_failed(&event.print_fmt);
    for big_endian in [false, true] {
        for long_size in [4u8, 8] {
            let opts = RenderOptions {
                big_endian,
                long_size,
                printk,
                symbolize: None,
            };
            let mut out = String::new();
            fmt.render_with(event, raw, &opts, &mut out);
            assert!(out.len() < (1 << 24), "rendered {} bytes", out.len());
            for f in event.common_fields.iter().chain(&event.fields) {
                let _ = f.value(raw, big_endian);
                let _ = f.element_size(long_size);
            }
        }
    }
    for t in fmt.symbolic_tables() {
        let _ = fmt.symbol_name(event, raw, false, 8, &t.field);
    }
}

/// A tracing-data blob (HEADER_TRACING_DATA) and, as text, one format file and one `print fmt`;
/// the payload rendered is the input itself (every field read must be bounds-checked).
pub(crate) fn tracing_data(data: &[u8]) {
    if let Ok(td) = parse_tracing_data(data) {
        let raw = data.get(data.len().saturating_sub(256)..).unwrap_or(data);
        for ev in td.events.iter().take(64) {
            exercise_event(ev, raw, &td.printk);
        }
        let _ = td.printk_at(u64::from_le_bytes(
            data.get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 8]),
        ));
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(ev) = parse_event_format("fuzz", &text) {
        exercise_event(&ev, data, &[]);
    }
    let _ = PrintFmt::parse(&text);
}

/// kallsyms text, then a NUL byte, then /proc/modules text.
pub(crate) fn kallsyms(data: &[u8]) {
    let (k, m) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let k = String::from_utf8_lossy(k);
    let m = m.map(String::from_utf8_lossy);
    if let Some(m) = &m {
        let _ = parse_modules(m);
    }
    if let Ok(syms) = KernelSymbols::parse(&k, m.as_deref(), "[kernel.kallsyms]") {
        for s in syms.symbols().iter().take(32) {
            let _ = syms.lookup(s.start);
            let _ = syms.lookup(s.start.wrapping_add(1));
            let _ = syms.address_of(&s.name);
        }
        for module in syms.modules().iter().take(8) {
            let _ = syms.lookup(module.start);
            let _ = module.dso_name();
        }
        let _ = syms.lookup(0);
        let _ = syms.lookup(u64::MAX);
    }
}

/// A `.tar.zst` bundle. An input that is not zstd already is taken as the tar archive and
/// compressed first, so that mutations hit the tar structure.
pub(crate) fn bundle(data: &[u8], scratch: &Path) {
    let path = scratch.join("fuzz.tar.zst");
    let bytes = if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        data.to_vec()
    } else {
        match zstd::bulk::compress(data, 1) {
            Ok(b) => b,
            Err(_) => return,
        }
    };
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    let mut limits = BundleLimits::default();
    limits.max_file_bytes = 8 << 20;
    limits.max_total_bytes = 16 << 20;
    limits.max_entries = 256;
    if let Ok(bundle) = Bundle::open_with_limits(&path, limits) {
        let _ = bundle.manifest();
        let _ = bundle.kernel_symbols("[guest.kernel.kallsyms]");
        let _ = bundle.find_binary("/usr/bin/true", None);
        let _ = bundle.find_binary("/usr/bin/true", Some(&[1, 2, 3, 4]));
    }
}
