//! Untrusted input: the fuzz corpus replayed, every corpus file truncated, corrupt headers. Ingest
//! must end in a clear error or warning, within bounded time and memory, and never panic.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kvmtrace_ingest::perf::attr::{PerfEventAttr, read_format, sample_type as st};
use kvmtrace_ingest::perf::header::FileHeader;
use kvmtrace_ingest::perf::records::{Sample, record_type as rt};
use kvmtrace_ingest::perf::tracing::parse_tracing_data;
use kvmtrace_ingest::reader::{RecordHandler, WalkReport, walk_file};
use kvmtrace_ingest::{Error, Report, WarningKind};

use crate::common::{corpus, testdata};
use crate::fuzz_entry::{self, Sink};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A scratch directory on tmpfs when there is one: these tests write many small datasets.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(t) = tempfile::Builder::new()
            .prefix("kvmtrace-it-")
            .tempdir_in(shm)
    {
        return t;
    }
    tempfile::tempdir().expect("tempdir")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Every committed seed and regression input through the fuzz targets' own entry points.
#[test]
fn replay_fuzz_corpus() {
    let tmp = scratch();
    let mut n = 0;
    for kind in ["fuzz-seeds", "regressions"] {
        for target in fuzz_entry::TARGETS {
            for f in files_in(&data_dir().join(kind).join(target)) {
                let bytes = std::fs::read(&f).expect("read seed");
                let t = Instant::now();
                let r = std::panic::catch_unwind(|| fuzz_entry::run(target, &bytes, tmp.path()));
                assert!(
                    r.is_ok(),
                    "fuzz target {target} panicked on {}",
                    f.display()
                );
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "{target} took {:?} on {}",
                    t.elapsed(),
                    f.display()
                );
                n += 1;
            }
        }
    }
    assert!(n >= 20, "only {n} fuzz inputs found under tests/data");
    let size: u64 = ["fuzz-seeds", "regressions"]
        .iter()
        .flat_map(|k| {
            fuzz_entry::TARGETS
                .iter()
                .flat_map(move |t| files_in(&data_dir().join(k).join(t)))
        })
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    assert!(
        size < 1 << 20,
        "the committed fuzz corpus is {size} bytes; keep it under 1 MiB"
    );
}

// ---------------------------------------------------------------------------------------------
// Truncation.

/// Sample record ends (file offset + size) of a walk, for "every complete record is kept".
#[derive(Default)]
struct SampleEnds {
    ends: Vec<u64>,
    compressed: bool,
}

impl RecordHandler for SampleEnds {
    fn on_attr(&mut self, _entry: kvmtrace_ingest::perf::header::AttrEntry) {}
    fn on_event_type(&mut self, _id: u64, _name: String) {}
    fn on_feature(&mut self, _feat: u32, _data: &[u8]) {}
    fn on_record(&mut self, type_: u32, _misc: u16, body: &[u8], offset: u64) {
        if type_ == rt::SAMPLE {
            self.ends.push(offset + 8 + body.len() as u64);
        }
    }
}

fn is_pipe(data: &[u8]) -> bool {
    data.get(8..16) == Some(&16u64.to_le_bytes()[..])
}

/// Whether the reader reads records up to the end of the input (pipe mode, or a file whose
/// header says the data section is empty): such an input cut on a record boundary looks whole.
fn reads_to_end(data: &[u8]) -> bool {
    is_pipe(data) || FileHeader::parse(data).is_some_and(|h| h.data.size == 0)
}

/// (offset, size) of the first record.
fn first_record(data: &[u8]) -> Option<(u64, u64)> {
    let off = if is_pipe(data) {
        16
    } else {
        FileHeader::parse(data)?.data.offset
    };
    let at = usize::try_from(off).ok()?;
    let size = u16::from_le_bytes(data.get(at + 6..at + 8)?.try_into().ok()?);
    Some((off, u64::from(size)))
}

/// The number in "N bytes" phrases of a message.
fn mentions_bytes(message: &str, n: u64) -> bool {
    message.contains(&format!("{n} bytes")) || message.contains(&format!("{n} of "))
}

fn check_cut(
    name: &str,
    data: &[u8],
    cut: usize,
    full: &SampleEnds,
    data_end: u64,
) -> Option<(u64, WalkReport)> {
    let prefix = &data[..cut];
    let mut sink = Sink::default();
    let (first_off, _) = first_record(data)?;
    let report = match walk_file(prefix, &mut sink) {
        Ok(r) => r,
        Err(e) => {
            // Only the header part may be fatal, and the error says where.
            assert!(
                (cut as u64) < first_off,
                "{name} cut at {cut} (records start at {first_off}): {e}"
            );
            assert!(
                e.to_string().contains("byte"),
                "{name} cut at {cut}: error without an offset: {e}"
            );
            return None;
        }
    };
    let complete = full.ends.iter().filter(|&&end| end <= cut as u64).count() as u64;
    if !full.compressed {
        assert_eq!(
            sink.n_samples, complete,
            "{name} cut at {cut}: complete samples lost or invented"
        );
    }
    assert!(
        sink.n_samples <= full.ends.len() as u64,
        "{name} cut at {cut}: more samples than the whole file"
    );
    if (cut as u64) < data_end {
        let truncated: Vec<_> = report
            .warnings
            .iter()
            .filter(|w| w.kind == WarningKind::Truncated)
            .collect();
        if reads_to_end(data) {
            // A cut on a record boundary is a complete stream; any other cut leaves bytes unread.
            if is_pipe(data) {
                assert_eq!(
                    report.bytes_read, cut as u64,
                    "{name} cut at {cut}: not every byte consumed"
                );
            }
        } else {
            assert!(
                report.bytes_unread >= data_end - cut as u64,
                "{name} cut at {cut}: bytes_unread {}",
                report.bytes_unread
            );
            // What the file lacks is told apart from what it holds but could not be read.
            assert_eq!(
                report.bytes_missing,
                data_end - cut as u64,
                "{name} cut at {cut}: bytes_missing"
            );
            assert!(
                report.bytes_unread - report.bytes_missing <= cut as u64,
                "{name} cut at {cut}: more unread bytes than the file holds"
            );
            assert!(
                !truncated.is_empty(),
                "{name} cut at {cut}: no truncation warning: {:?}",
                report.warnings
            );
        }
        if report.bytes_unread > 0 {
            assert!(
                truncated
                    .iter()
                    .any(|w| mentions_bytes(&w.message, report.bytes_unread)),
                "{name} cut at {cut}: no warning says {} bytes could not be read: {:?}",
                report.bytes_unread,
                report.warnings
            );
        }
    } else if !full.compressed {
        assert_eq!(
            sink.n_samples,
            full.ends.len() as u64,
            "{name} cut at {cut} (after the data)"
        );
    }
    Some((sink.n_samples, report))
}

/// Cut points: every 4 KiB boundary (at most `max_cuts`, evenly spread, for the biggest files),
/// and several offsets inside the first record.
fn cut_points(data: &[u8], max_cuts: usize) -> Vec<usize> {
    let len = data.len();
    let boundaries: Vec<usize> = (1..=len / 4096)
        .map(|i| i * 4096)
        .filter(|&c| c < len)
        .collect();
    let step = boundaries.len().div_ceil(max_cuts).max(1);
    let mut cuts: Vec<usize> = boundaries.into_iter().step_by(step).collect();
    if let Some((off, size)) = first_record(data) {
        for k in [
            0,
            1,
            4,
            7,
            8,
            9,
            size / 2,
            size.saturating_sub(1),
            size,
            size + 1,
        ] {
            cuts.push((off + k) as usize);
        }
    }
    cuts.extend([0, 7, 8, 15, 16, 64, 103, 104]);
    cuts.retain(|&c| c < len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

fn corpus_perf_files() -> Option<Vec<PathBuf>> {
    let root = corpus()?;
    let mut files: Vec<PathBuf> = files_in(&root.join("public"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    files.extend(
        files_in(&root.join("kvm"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "data")),
    );
    Some(files)
}

/// Every corpus file cut at every 4 KiB boundary and inside its first record: the reader never
/// panics, keeps exactly the complete samples before the cut, and its truncation warning says how
/// many bytes could not be read.
#[test]
fn truncated_corpus_files_keep_complete_records() {
    let Some(files) = corpus_perf_files() else {
        return;
    };
    let started = Instant::now();
    let n_cuts = std::sync::atomic::AtomicUsize::new(0);
    let work = std::sync::Mutex::new(files.clone());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some(path) = work.lock().expect("lock").pop() else {
                        break;
                    };
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let data = std::fs::read(&path).expect("read corpus file");
                    let mut full = SampleEnds::default();
                    let full_report = walk_file(&data, &mut full).expect("the full file walks");
                    full.compressed = full_report.records.contains_key(&rt::COMPRESSED)
                        || full_report.records.contains_key(&rt::COMPRESSED2);
                    let data_end = if reads_to_end(&data) {
                        data.len() as u64
                    } else {
                        FileHeader::parse(&data).map_or(0, |h| h.data.end().min(data.len() as u64))
                    };
                    let mut last = 0;
                    for cut in cut_points(&data, 160) {
                        if let Some((n, _)) = check_cut(&name, &data, cut, &full, data_end) {
                            assert!(
                                n >= last,
                                "{name}: {n} samples at cut {cut}, {last} at an earlier cut"
                            );
                            last = n;
                        }
                        n_cuts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    assert_eq!(
                        full.ends.len() as u64,
                        walk_count(&data),
                        "{name}: walk not deterministic"
                    );
                }
            });
        }
    });
    eprintln!(
        "{} files, {} cuts in {:?}",
        files.len(),
        n_cuts.into_inner(),
        started.elapsed()
    );
}

fn walk_count(data: &[u8]) -> u64 {
    let mut s = Sink::default();
    let _ = walk_file(data, &mut s);
    s.n_samples
}

/// The whole ingest (session and tables) at a few cuts per corpus file: no panic, sample counts
/// monotone in the cut and equal to the full count at the full length, and a truncated input
/// reports warnings and the bytes it could not read.
#[test]
fn truncated_corpus_files_ingest() {
    let Some(files) = corpus_perf_files() else {
        return;
    };
    let started = Instant::now();
    let tmp = scratch();
    for path in files {
        let data = std::fs::read(&path).expect("read");
        let name = path.display().to_string();
        let len = data.len();
        let data_end = FileHeader::parse(&data).map_or(0, |h| h.data.end());
        let mut cuts: Vec<usize> = Vec::new();
        if let Some((off, size)) = first_record(&data) {
            cuts.push((off + size / 2) as usize);
        }
        // Small files: two 4 KiB boundaries and the whole file; big ones (debug-mode runtime): one
        // boundary (the walk test above covers every boundary and the full length).
        if len <= 256 << 10 {
            cuts.extend([len / 3 / 4096 * 4096, len * 2 / 3 / 4096 * 4096, len]);
        } else {
            cuts.push(len / 4 / 4096 * 4096);
        }
        cuts.retain(|&c| c > 0 && c <= len);
        cuts.sort_unstable();
        cuts.dedup();
        let mut last = 0;
        for cut in cuts {
            match fuzz_entry::ingest(&data[..cut], tmp.path()) {
                Ok(r) => {
                    assert!(
                        r.n_samples >= last,
                        "{name}: {} samples at cut {cut}, {last} before",
                        r.n_samples
                    );
                    last = r.n_samples;
                    // Whatever the reader warned about, the ingest reports.
                    let walked = walk_file(&data[..cut], &mut Sink::default()).expect("walk");
                    if !walked.warnings.is_empty() || walked.bytes_unread > 0 {
                        assert!(
                            r.has_warnings() && r.bytes_unread == walked.bytes_unread,
                            "{name} cut at {cut}: {:?}",
                            r.warnings
                        );
                    }
                    if cut < len && !reads_to_end(&data) {
                        assert!(r.has_warnings(), "{name} cut at {cut}: no warning");
                    }
                    if (cut as u64) < data_end && !reads_to_end(&data) {
                        assert!(
                            r.bytes_unread > 0,
                            "{name} cut at {cut}: no warning: {:?}",
                            r.warnings
                        );
                    }
                    if cut == len {
                        let mut full = Sink::default();
                        let _ = walk_file(&data, &mut full);
                        assert!(
                            r.n_samples <= full.n_samples,
                            "{name}: ingest found more samples than records"
                        );
                    }
                }
                Err(e) => assert!(cut < len, "{name}: the whole file fails: {e}"),
            }
        }
    }
    eprintln!("whole-ingest truncation in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Corrupt headers: hand-patched copies of small real files.

fn seed(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join("fuzz-seeds/perf_file").join(name)).expect("committed seed")
}

fn put_u64(data: &mut [u8], at: usize, v: u64) {
    data[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"))
}

/// Runs the whole ingest with a time bound.
fn bounded(data: &[u8]) -> Result<Report, Error> {
    let tmp = scratch();
    let t = Instant::now();
    let r = fuzz_entry::ingest(data, tmp.path());
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "ingest took {:?}",
        t.elapsed()
    );
    r
}

fn assert_warns(r: &Result<Report, Error>, kind: WarningKind) -> &Report {
    match r {
        Ok(rep) => {
            assert!(
                rep.warnings.iter().any(|w| w.kind == kind),
                "expected a {kind:?} warning, got {:?}",
                rep.warnings
            );
            rep
        }
        Err(e) => panic!("expected a {kind:?} warning, got error {e}"),
    }
}

fn assert_error(r: &Result<Report, Error>, needle: &str) {
    match r {
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains(needle) && text.contains("byte"),
                "error {text:?} lacks {needle:?} or an offset"
            );
        }
        Ok(rep) => panic!("expected an error with {needle:?}, got {:?}", rep.warnings),
    }
}

const SMALL: &str = "x86_64_perf3.8_singleprocess.data";

#[test]
fn attr_size_too_small_is_an_error() {
    let mut d = seed(SMALL);
    put_u64(&mut d, 16, 8);
    assert_error(&bounded(&d), "attr entry size");
}

#[test]
fn attr_size_larger_than_the_attrs_is_bounded() {
    for size in [1 << 40, u64::MAX, get_u64(&seed(SMALL), 32) + 8] {
        let mut d = seed(SMALL);
        put_u64(&mut d, 16, size);
        // No attr fits: every sample has an unknown event, or the header is rejected.
        if let Ok(r) = bounded(&d) {
            assert!(r.has_warnings(), "attr_size {size}: no warning");
        }
    }
}

#[test]
fn attrs_past_the_end_are_an_error() {
    let mut d = seed(SMALL);
    let len = d.len() as u64;
    put_u64(&mut d, 24, len + 100);
    assert_error(&bounded(&d), "past the end");
    let mut d = seed(SMALL);
    put_u64(&mut d, 32, u64::MAX - 7);
    assert_error(&bounded(&d), "past the end");
}

#[test]
fn attr_ids_past_the_end_are_a_warning() {
    let mut d = seed(SMALL);
    let attrs = get_u64(&d, 24) as usize;
    let attr_size = get_u64(&d, 16) as usize;
    put_u64(&mut d, attrs + attr_size - 16, u64::MAX - 4);
    put_u64(&mut d, attrs + attr_size - 8, 64);
    assert_warns(&bounded(&d), WarningKind::CorruptHeader);
}

#[test]
fn data_section_past_the_end() {
    let mut d = seed(SMALL);
    let len = d.len() as u64;
    put_u64(&mut d, 40, len + 1);
    assert_error(&bounded(&d), "past the end");
    for size in [d.len() as u64 * 2, u64::MAX] {
        let mut d = seed(SMALL);
        put_u64(&mut d, 48, size);
        let r = bounded(&d);
        let rep = assert_warns(&r, WarningKind::Truncated);
        assert!(rep.bytes_unread > 0);
        assert!(
            rep.warnings
                .iter()
                .any(|w| mentions_bytes(&w.message, rep.bytes_unread)),
            "{:?}",
            rep.warnings
        );
    }
}

fn data_offset(d: &[u8]) -> usize {
    get_u64(d, 40) as usize
}

#[test]
fn zero_sized_record_stops_with_a_warning() {
    let mut d = seed(SMALL);
    let at = data_offset(&d) + 6;
    d[at..at + 2].copy_from_slice(&0u16.to_le_bytes());
    let r = bounded(&d);
    let rep = assert_warns(&r, WarningKind::CorruptRecord);
    assert_eq!(
        rep.bytes_unread,
        get_u64(&d, 48),
        "the whole data section is unread"
    );
}

#[test]
fn record_size_past_the_end() {
    let mut d = seed(SMALL);
    // The last record of the data section claims 64 KiB.
    let (start, end) = (data_offset(&d), data_offset(&d) + get_u64(&d, 48) as usize);
    let mut pos = start;
    let mut last = start;
    while pos + 8 <= end {
        last = pos;
        pos += usize::from(u16::from_le_bytes([d[pos + 6], d[pos + 7]])).max(8);
    }
    d[last + 6..last + 8].copy_from_slice(&u16::MAX.to_le_bytes());
    let r = bounded(&d);
    assert_warns(&r, WarningKind::Truncated);
}

#[test]
fn feature_sections_past_the_end_or_looping() {
    let base = seed(SMALL);
    let table = data_offset(&base) + get_u64(&base, 48) as usize;
    // Feature 0's section: past the end, huge, and pointing back at the file header / the table.
    for (off, size) in [
        (u64::MAX - 3, 16),
        (0, u64::MAX),
        (16, u64::MAX / 2),
        (0, 104),
        (table as u64, 16 * 64),
    ] {
        let mut d = base.clone();
        put_u64(&mut d, table, off);
        put_u64(&mut d, table + 8, size);
        let r = bounded(&d);
        assert!(r.is_ok(), "feature section ({off}, {size}): {:?}", r.err());
    }
    // Every feature bit set: the table runs past the end of the file.
    let mut d = base.clone();
    d[72..104].fill(0xff);
    assert_warns(&bounded(&d), WarningKind::CorruptHeader);
}

/// Offset of the first SAMPLE record in a file-mode seed (uncompressed).
fn first_sample(d: &[u8]) -> usize {
    let mut pos = data_offset(d);
    loop {
        let t = u32::from_le_bytes(d[pos..pos + 4].try_into().expect("4 bytes"));
        if t == rt::SAMPLE {
            return pos;
        }
        pos += usize::from(u16::from_le_bytes([d[pos + 6], d[pos + 7]]));
    }
}

fn huge_nr_skips_one_sample(file: &str, nr_offset_in_body: usize) {
    let base = seed(file);
    let full = bounded(&base).expect("seed ingests");
    for nr in [u64::MAX, 1 << 61, 1 << 32, 4096] {
        let mut d = base.clone();
        let at = first_sample(&d) + 8 + nr_offset_in_body;
        put_u64(&mut d, at, nr);
        let r = bounded(&d);
        let rep = assert_warns(&r, WarningKind::CorruptRecord);
        assert_eq!(
            rep.n_samples + 1,
            full.n_samples,
            "{file} nr={nr}: one sample skipped"
        );
    }
}

#[test]
fn huge_callchain_nr() {
    // sample_type IP|TID|TIME|CALLCHAIN|PERIOD|BRANCH_STACK: nr after four u64 fields.
    huge_nr_skips_one_sample("x86_64_perf5.4_lbr-callgraph.data", 32);
}

#[test]
fn huge_branch_stack_nr() {
    // sample_type IP|TID|TIME|PERIOD|BRANCH_STACK.
    huge_nr_skips_one_sample("x86_64_k4.14_branch-stack.data", 32);
}

#[test]
fn huge_read_group_nr() {
    let attr = PerfEventAttr {
        sample_type: st::IP | st::READ | st::CALLCHAIN,
        read_format: read_format::GROUP | read_format::ID | read_format::TOTAL_TIME_ENABLED,
        ..Default::default()
    };
    for nr in [u64::MAX, 1 << 61, 1 << 32, 3] {
        let mut body = Vec::new();
        body.extend_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
        body.extend_from_slice(&nr.to_le_bytes());
        body.extend_from_slice(&[0u8; 40]);
        let t = Instant::now();
        assert!(Sample::parse(&body, &attr).is_none(), "nr={nr}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}

#[test]
fn huge_tracing_data_size_in_a_pipe_stream() {
    let mut s = Vec::new();
    s.extend_from_slice(b"PERFILE2");
    s.extend_from_slice(&16u64.to_le_bytes());
    s.extend_from_slice(&rt::HEADER_TRACING_DATA.to_le_bytes());
    s.extend_from_slice(&0u16.to_le_bytes());
    s.extend_from_slice(&16u16.to_le_bytes());
    s.extend_from_slice(&u32::MAX.to_le_bytes());
    s.extend_from_slice(&[0u8; 4]);
    s.extend_from_slice(&[0x17, 0x08, 0x44]);
    s.extend_from_slice(b"tracing0.6\0");
    let r = bounded(&s);
    let rep = assert_warns(&r, WarningKind::Truncated);
    assert!(
        rep.warnings
            .iter()
            .any(|w| w.message.contains(&u32::MAX.to_string())),
        "{:?}",
        rep.warnings
    );
}

#[test]
fn huge_sizes_inside_tracing_data() {
    let base =
        std::fs::read(data_dir().join("tracefmt/kvm-tp-2vcpu.tracing")).expect("tracing data");
    let mut patched = 0;
    for needle in [&b"header_page\0"[..], b"header_event\0"] {
        let Some(at) = base.windows(needle.len()).position(|w| w == needle) else {
            continue;
        };
        for v in [u64::MAX, 1 << 40, base.len() as u64] {
            let mut d = base.clone();
            put_u64(&mut d, at + needle.len(), v);
            let t = Instant::now();
            let _ = parse_tracing_data(&d);
            assert!(t.elapsed() < Duration::from_secs(2));
            patched += 1;
        }
    }
    // The counts that follow the headers (ftrace formats, systems, events per system).
    for at in (0..base.len().saturating_sub(4)).step_by(97) {
        let mut d = base.clone();
        d[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let t = Instant::now();
        let _ = parse_tracing_data(&d);
        assert!(t.elapsed() < Duration::from_secs(2), "patch at {at}");
    }
    assert!(patched >= 3);
}

/// `--append` to a dataset of an older schema version is refused with the versions named (its
/// frames table has another layout), and nothing is added to it.
#[test]
fn append_refuses_a_dataset_of_an_older_schema() {
    let tmp = scratch();
    let out = tmp.path().join("ds");
    let input = testdata().join("host-tid-minus-1.data");
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = out.clone();
    opts.symbolize = false;
    kvmtrace_ingest::run(&input, &opts).expect("first ingest");
    let meta = out.join("dataset.json");
    let text = std::fs::read_to_string(&meta).expect("dataset.json");
    let v1 = text.replace("\"schema_version\": 2", "\"schema_version\": 1");
    assert_ne!(v1, text, "dataset.json names schema version 2: {text}");
    std::fs::write(&meta, v1).expect("write dataset.json");
    let before = files_in(&out);
    opts.append = true;
    let err = kvmtrace_ingest::run(&testdata().join("host-corrupt-callchains.data"), &opts)
        .expect_err("append to a version-1 dataset");
    let text = err.to_string();
    assert!(
        text.contains("schema version 1") && text.contains("writes 2"),
        "{text}"
    );
    assert_eq!(files_in(&out), before);
}
