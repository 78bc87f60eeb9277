//! kvmtrace-ingest: raw `perf.data` (file or pipe mode, zstd-compressed or not, perf 3.x to
//! 6.x) into a directory of Parquet tables with a documented, versioned schema
//! (docs/schema.md; [`schema`]).
//!
//! ```no_run
//! let mut opts = kvmtrace_ingest::Options::default();
//! opts.output = "dataset".into();
//! let report = kvmtrace_ingest::run(std::path::Path::new("perf.data"), &opts)?;
//! println!("{} samples", report.n_samples);
//! # Ok::<(), kvmtrace_ingest::Error>(())
//! ```
//!
//! Layout: `perf` parses bytes into typed records and never does I/O; [`reader`] is the I/O
//! edge (mapped file or stdin stream); the session orders records as perf does and writes the
//! tables through [`table`].

#![deny(missing_docs)]

pub mod dataset;
pub mod error;
pub mod kvm;
pub mod perf;
pub mod reader;
pub mod schema;
pub mod symbols;
pub mod table;

mod addrspace;
mod ingest_symbols;
mod session;
mod threads;
mod timing;
mod unwind;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use error::{Error, Warning, WarningKind};
pub use table::Compression;

use session::{Session, SessionConfig};
use table::{SCHEMA_VERSION, TableWriter, partition_path};

/// Ingest options.
#[non_exhaustive]
pub struct Options {
    /// The dataset directory to write.
    pub output: PathBuf,
    /// Add the recording to an existing dataset instead of replacing it.
    pub append: bool,
    /// Worker threads (reserved for symbolisation; decoding is sequential, as perf's order is).
    pub threads: usize,
    /// Keep PERF_SAMPLE_RAW in `samples.raw` even for tracepoints decoded into their tables.
    pub keep_raw: bool,
    /// Called with (bytes done, bytes total) as the input is read.
    pub progress: Option<std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>>,
    /// Resolve symbols into the `frames` tables (default true).
    pub symbolize: bool,
    /// Host kallsyms (default: /proc/kallsyms when the recording's hostname and os release
    /// are this machine's).
    pub kallsyms: Option<PathBuf>,
    /// Prefix for host user DSO paths (perf's `--symfs`).
    pub symfs: Option<PathBuf>,
    /// Separate debug-info directories (default /usr/lib/debug and perf's build-id cache,
    /// `$PERF_BUILDID_DIR` or `~/.debug`).
    pub debug_dirs: Vec<PathBuf>,
    /// Guest-side recordings (`--guest-data`).
    pub guest_data: Vec<GuestData>,
    /// Guest symbol bundles: (VM pid or name, bundle path) (`--guest-symbols`).
    pub guest_symbols: Vec<(String, PathBuf)>,
    /// perf's `--guestkallsyms`: kallsyms of the default guest (every VM without a bundle).
    pub guest_kallsyms: Option<PathBuf>,
    /// perf's `--guestmodules`.
    pub guest_modules: Option<PathBuf>,
    /// perf's `--guestvmlinux`.
    pub guest_vmlinux: Option<PathBuf>,
    /// Unwind `--call-graph dwarf` user stacks by every module's CFI, even where perf would not
    /// (see [`unwind`]'s perf rule; default false: stacks equal `perf script`'s).
    pub exact_unwind: bool,
    /// Read source lines and inlined functions from DWARF for every frame (default true);
    /// false: only for frames unwound from stack copies, which perf names by DWARF (their
    /// `file`/`line` then stay null elsewhere, and no inline rows are written for them). A
    /// flame graph shows no more (`kvmtrace flame perf.data` ingests so, unless `--inline
    /// all`): the DWARF lookups were three fifths of symbolising a 79 MB recording of a test run.
    pub source_lines: bool,
    /// How the tables' pages are compressed (default zstd; `kvmtrace flame perf.data`, which
    /// deletes its dataset when done, writes plain pages for inputs up to 256 MiB).
    pub compression: Compression,
}

/// One guest-side recording: `VM=PATH[,tsc-offset=N][,tsc-scale=M][,name=NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestData {
    /// The VM: VMM pid, or VMM process name.
    pub vm: String,
    /// The guest's perf.data.
    pub path: PathBuf,
    /// guest_tsc = host_tsc × scale + offset; default: the host's kvm_write_tsc_offset.
    pub tsc_offset: Option<u64>,
    /// Default 1.
    pub tsc_scale: Option<f64>,
    /// Display name of the VM (default: the `vm` token if it is not a pid, else the bundle's).
    pub name: Option<String>,
}

impl std::str::FromStr for GuestData {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (vm, rest) = s.split_once('=').ok_or_else(|| {
            format!("expected VM=PATH[,tsc-offset=N][,tsc-scale=M][,name=NAME], got {s:?}")
        })?;
        let mut parts = rest.split(',');
        let path = PathBuf::from(parts.next().unwrap_or_default());
        let mut g = GuestData {
            vm: vm.to_string(),
            path,
            tsc_offset: None,
            tsc_scale: None,
            name: None,
        };
        for p in parts {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("bad option {p:?} in --guest-data"))?;
            match k {
                "tsc-offset" => {
                    let parsed = if let Some(h) = v.strip_prefix("0x") {
                        u64::from_str_radix(h, 16).ok()
                    } else if let Some(neg) = v.strip_prefix('-') {
                        neg.parse::<u64>().ok().map(|n| n.wrapping_neg())
                    } else {
                        v.parse::<u64>().ok()
                    };
                    g.tsc_offset = Some(parsed.ok_or_else(|| format!("bad tsc-offset {v:?}"))?);
                }
                "tsc-scale" => {
                    g.tsc_scale = Some(v.parse().map_err(|_| format!("bad tsc-scale {v:?}"))?)
                }
                "name" => g.name = Some(v.to_string()),
                other => return Err(format!("unknown --guest-data option {other:?}")),
            }
        }
        Ok(g)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            output: PathBuf::from("dataset"),
            append: false,
            threads: 0,
            keep_raw: false,
            progress: None,
            symbolize: true,
            kallsyms: None,
            symfs: None,
            debug_dirs: Vec::new(),
            guest_data: Vec::new(),
            guest_symbols: Vec::new(),
            guest_kallsyms: None,
            guest_modules: None,
            guest_vmlinux: None,
            exact_unwind: false,
            source_lines: true,
            compression: Compression::Zstd,
        }
    }
}

/// What an ingest did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Recording id (partition key).
    pub recording: String,
    /// Host partition key.
    pub host: String,
    /// Samples written.
    pub n_samples: u64,
    /// Rows per table.
    pub tables: Vec<(String, u64)>,
    /// Non-fatal problems (the first ones of each kind, with text).
    pub warnings: Vec<Warning>,
    /// Warning counts by kind.
    pub warning_counts: Vec<(WarningKind, u64)>,
    /// Bytes of input that could not be read (truncation, corruption), including
    /// `bytes_missing`.
    pub bytes_unread: u64,
    /// Of those, bytes the file's header promises beyond its end (a truncated file).
    pub bytes_missing: u64,
    /// Input size in bytes.
    pub input_bytes: u64,
}

impl Report {
    /// Whether data was skipped (exit code 1 in the CLI).
    pub fn has_warnings(&self) -> bool {
        !self.warning_counts.is_empty() || self.bytes_unread > 0
    }
}

/// Ingests `input` (a perf.data file or directory, or `-` for a pipe-mode stream on stdin)
/// into `opts.output`. The dataset is written under a temporary name and renamed when complete.
pub fn run(input: &Path, opts: &Options) -> Result<Report, Error> {
    if input.is_dir() {
        return run_dir(input, opts);
    }
    let (bytes, name) = read_input(input, &opts.output)?;
    let release = FileBytes::releaser(&bytes);
    ingest_impl(&bytes, &[], &name, opts, release)
}

/// Whether `path` is a perf.data directory (what `perf record --threads` or `--kcore` writes):
/// a directory whose `data` file starts with perf's magic.
pub fn is_perf_data_dir(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    path.is_dir()
        && std::fs::File::open(path.join("data"))
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && [perf::header::MAGIC2, perf::header::MAGIC2_SWAPPED].contains(&u64::from_le_bytes(magic))
}

/// The bytes of a perf.data: a file's size, or a perf.data directory's `data` and `data.N`
/// files together.
pub fn input_size(path: &Path) -> Option<u64> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return Some(meta.len());
    }
    let files = std::iter::once(path.join("data"))
        .chain(data_parts(path).ok()?.into_iter().map(|(_, p)| p));
    files.map(|f| Some(std::fs::metadata(f).ok()?.len())).sum()
}

/// The `data.N` files of a perf.data directory, in the order of N.
fn data_parts(path: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let file = entry?.path();
        let n = file
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_prefix("data."))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = n
            && file.is_file()
        {
            parts.push((n, file));
        }
    }
    parts.sort();
    Ok(parts)
}

/// A perf.data directory (`perf record --threads`, `--kcore`), ingested as perf reads one.
fn run_dir(input: &Path, opts: &Options) -> Result<Report, Error> {
    let perf_data = map_perf_data(input)?;
    ingest_impl(
        &perf_data.main,
        &perf_data.streams(),
        &input.display().to_string(),
        opts,
        perf_data.release(),
    )
}

/// A mapped perf.data: a file, or a perf.data directory's header file `data` and its `data.N`
/// files in the order of N (perf reads them in directory order, which decides only between
/// records of equal time).
pub(crate) struct PerfData {
    pub(crate) main: Arc<FileBytes>,
    parts: Vec<(String, Arc<FileBytes>)>,
}

impl PerfData {
    /// The `data.N` files, to walk after `main`.
    pub(crate) fn streams(&self) -> Vec<reader::Stream<'_>> {
        self.parts
            .iter()
            .map(|(name, bytes)| reader::Stream {
                name: name.clone(),
                bytes,
                release: FileBytes::releaser(bytes),
            })
            .collect()
    }

    /// What releases the pages of `main` as progress passes them: a file's. A directory's
    /// progress counts the bytes of all its files, and the walk releases each `data.N` itself
    /// (the header file's data section is small).
    pub(crate) fn release(&self) -> Option<Release> {
        self.parts
            .is_empty()
            .then(|| FileBytes::releaser(&self.main))
            .flatten()
    }
}

/// Maps the perf.data file or directory at `path`.
pub(crate) fn map_perf_data(path: &Path) -> Result<PerfData, Error> {
    if !path.is_dir() {
        return Ok(PerfData {
            main: map_file(path)?,
            parts: Vec::new(),
        });
    }
    let main = path.join("data");
    if !main.is_file() {
        return Err(Error::NotPerfData {
            offset: 0,
            reason: format!(
                "{} is a directory without a `data` file (a perf.data directory holds one)",
                path.display()
            ),
        });
    }
    let parts = data_parts(path).map_err(|e| Error::Io {
        path: Some(path.to_path_buf()),
        offset: None,
        source: e,
    })?;
    Ok(PerfData {
        main: map_file(&main)?,
        parts: parts
            .iter()
            .map(|(n, p)| Ok((format!("data.{n}"), map_file(p)?)))
            .collect::<Result<_, Error>>()?,
    })
}

/// A perf.data file, mapped (guest-side recordings are read this way too).
pub(crate) fn map_file(path: &Path) -> Result<Arc<FileBytes>, Error> {
    let io = |e| Error::Io {
        path: Some(path.to_path_buf()),
        offset: None,
        source: e,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() == 0 {
        return Ok(Arc::new(FileBytes::Copied(Vec::new())));
    }
    // SAFETY: as in read_input: only read, every read bounds-checked.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok(Arc::new(FileBytes::Mapped(map)))
}

/// A session progress callback that reports to `progress` and releases the pages the walk
/// has passed.
pub(crate) fn progress_releasing(
    progress: Option<std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>>,
    release: Option<Release>,
    total: u64,
) -> Option<Box<dyn FnMut(u64) + Send>> {
    if progress.is_none() && release.is_none() {
        return None;
    }
    let mut released = 0usize;
    Some(Box::new(move |done| {
        if let Some(p) = &progress {
            p(done, total);
        }
        if let Some(r) = &release {
            let upto = usize::try_from(done).unwrap_or(usize::MAX) / RELEASE_STEP * RELEASE_STEP;
            if upto > released {
                r(released, upto);
                released = upto;
            }
        }
    }))
}

pub(crate) use reader::Release;

/// Inputs are walked in steps of this many bytes, each released when passed (the hashing
/// thread beside the walk reads a released page back in from the page cache).
const RELEASE_STEP: usize = 64 << 20;

/// The input's bytes. stdin is spooled to an unnamed temporary file beside the output (not
/// into memory: a pipe-mode stream can be any size), then mapped like a file; the recording's
/// id is the stream's SHA-256, known only once it has ended.
fn read_input(input: &Path, output: &Path) -> Result<(Arc<FileBytes>, String), Error> {
    let (file, name) = if input.as_os_str() == "-" {
        let io = |e| Error::Io {
            path: Some(input.to_path_buf()),
            offset: None,
            source: e,
        };
        let dir = match output.parent() {
            Some(d) if d.as_os_str().is_empty() => PathBuf::from("."),
            Some(d) if d.is_dir() => d.to_path_buf(),
            _ => std::env::temp_dir(),
        };
        let mut spool = tempfile::tempfile_in(&dir).map_err(|e| Error::Io {
            path: Some(dir.clone()),
            offset: None,
            source: e,
        })?;
        let n = std::io::copy(&mut std::io::stdin().lock(), &mut spool).map_err(io)?;
        if n == 0 {
            return Ok((Arc::new(FileBytes::Copied(Vec::new())), "-".to_string()));
        }
        (spool, "-".to_string())
    } else {
        let file = std::fs::File::open(input).map_err(|e| Error::Io {
            path: Some(input.to_path_buf()),
            offset: None,
            source: e,
        })?;
        (file, input.display().to_string())
    };
    // SAFETY: the file is only read; a concurrent writer could change the bytes under us,
    // which the parser tolerates (every read is bounds-checked).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Io {
        path: Some(input.to_path_buf()),
        offset: None,
        source: e,
    })?;
    Ok((Arc::new(FileBytes::Mapped(map)), name))
}

/// A file's bytes: mapped, or owned (an empty input, bytes handed over in memory). The input
/// perf.data and the ELF files the symbolizer reads alike; shared (`Arc`) where something keeps
/// pointing into them (symbol names, DWARF sections, a page releaser).
pub(crate) enum FileBytes {
    Copied(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl FileBytes {
    /// For a mapped file, what releases its pages.
    pub(crate) fn releaser(bytes: &Arc<FileBytes>) -> Option<Release> {
        match &**bytes {
            FileBytes::Copied(_) => None,
            FileBytes::Mapped(_) => {
                let bytes = Arc::clone(bytes);
                Some(Arc::new(move |from: usize, to: usize| {
                    let FileBytes::Mapped(m) = &*bytes else {
                        return;
                    };
                    // SAFETY: a read-only shared file mapping: after MADV_DONTNEED a later
                    // read faults the same bytes back in from the page cache or the file, so
                    // no slice of it ever sees other contents.
                    let _ = unsafe {
                        m.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            from,
                            to.saturating_sub(from),
                        )
                    };
                }))
            }
        }
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Copied(v) => v,
            FileBytes::Mapped(m) => m,
        }
    }
}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileBytes({} bytes)", self.len())
    }
}

/// Whether a file has at least one byte (`/proc` files report a size of 0, so this reads).
fn has_content(path: &Path) -> bool {
    use std::io::Read;
    let mut byte = [0u8; 1];
    std::fs::File::open(path).is_ok_and(|mut f| f.read(&mut byte).is_ok_and(|n| n == 1))
}

/// Ingests a perf.data held in memory. `source_name` is recorded in `meta.source_file`.
pub fn ingest_bytes(data: &[u8], source_name: &str, opts: &Options) -> Result<Report, Error> {
    ingest_impl(data, &[], source_name, opts, None)
}

/// Ingests the perf.data `data`, followed by the record streams of a perf.data directory.
fn ingest_impl(
    data: &[u8],
    streams: &[reader::Stream<'_>],
    source_name: &str,
    opts: &Options,
    release: Option<Release>,
) -> Result<Report, Error> {
    let stem = Path::new(source_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty() && s != "-")
        .unwrap_or_else(|| "stdin".to_string());
    let stem = session::sanitize(&stem);

    let staging = dataset::Staging::begin(&opts.output, opts.append, &stem)?;
    let (preload, preloading) = if opts.symbolize {
        ingest_symbols::start_preload(opts)
    } else {
        (None, None)
    };
    // Host is known only after the header; write under a placeholder and move at the end.
    let cfg = SessionConfig {
        preload,
        root: staging.dir().to_path_buf(),
        host: "_pending".to_string(),
        // The recording id (the input's hash) is known after the walk: files are written
        // under a placeholder, renamed when the recording is published.
        recording: dataset::PENDING.to_string(),
        keep_raw: opts.keep_raw,
        prefix: "",
        guest: None,
        vm_specs: ingest_symbols::vm_specs(opts),
        ids: session::IdBase::default(),
        map_frames: opts.symbolize,
        unwind: opts.symbolize.then(|| unwind::UnwindConfig {
            sysroot: opts.symfs.clone(),
            debug_dirs: if opts.debug_dirs.is_empty() {
                symbols::default_debug_dirs()
            } else {
                opts.debug_dirs.clone()
            },
            perf_compat: !opts.exact_unwind,
        }),
        kernel_fallback_map: opts.kallsyms.as_deref().is_none_or(has_content),
        compression: opts.compression,
        source_lines: opts.source_lines,
    };
    let mut sess = Session::new(cfg);
    let total = reader::total_len(data, streams);
    sess.progress = progress_releasing(opts.progress.clone(), release, total);
    // The input is hashed on a thread of its own beside the walk (it only names the recording).
    let (sha, walk) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| {
            let _t = timing::phase("ingest: sha256 (beside the walk)");
            let mut h = Sha256::new();
            h.update(data);
            for st in streams {
                h.update(st.bytes);
            }
            hex(&h.finalize())
        });
        let t_walk = timing::phase("ingest: walk records");
        let walk = reader::walk_file_streams(data, streams, &mut sess);
        let walk = walk.and_then(|w| sess.finish_records().map(|()| w));
        drop(t_walk);
        (hashing.join(), walk)
    });
    let walk = walk?;
    let sha = sha.map_err(|_| Error::Invalid("the thread hashing the input panicked".into()))?;
    let recording = format!("{stem}-{}", &sha[..8]);
    let fatal = sess.take_fatal();
    if let Some(e) = fatal {
        return Err(e);
    }
    let features = sess.features.clone();
    let host = features
        .hostname
        .as_deref()
        .map(session::sanitize)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let t_close = timing::phase("ingest: close session tables");
    let (mut tables, mut summary) = sess.close()?;
    drop(t_close);
    // The session (and with it the preload sender) is gone: the loading thread finishes.
    let t_wait = timing::phase("ingest: wait for the symbols preload");
    let preloaded = preloading.and_then(|h| h.join().ok());
    drop(t_wait);
    // Every guest recording writes its own part of the shared guest_* tables, its ids
    // continuing after the previous one's.
    let mut guest_stacks = Vec::new();
    let mut ids = session::IdBase::default();
    for g in &opts.guest_data {
        let gi =
            ingest_symbols::ingest_guest(g, &summary, staging.dir(), dataset::PENDING, opts, ids)?;
        tables.extend(gi.tables);
        guest_stacks.push((ids.frame_id, gi.stacks));
        summary.warnings.extend(gi.warnings);
        ids = gi.next;
    }
    if opts.symbolize {
        let _t = timing::phase("ingest: frames");
        let (t, warnings) = ingest_symbols::write_frames(
            &summary,
            &guest_stacks,
            staging.dir(),
            dataset::PENDING,
            opts,
            preloaded,
        )?;
        tables.extend(t);
        summary.warnings.extend(warnings);
    }

    // Meta.
    let root = staging.dir().to_path_buf();
    let mut w = TableWriter::new(
        "meta",
        partition_path(&root, "meta", "_pending", dataset::PENDING),
        &schema::meta().defs(),
        Vec::new(),
    )
    .compressed(opts.compression);
    let f = &summary.features;
    w.str(0, Some(&recording));
    w.str(1, Some(&host));
    w.str(2, Some(source_name));
    w.str(3, Some(&sha));
    w.u64(4, Some(total));
    w.bool(5, Some(walk.pipe_mode));
    w.str(6, f.hostname.as_deref());
    w.str(7, f.os_release.as_deref());
    w.str(8, f.perf_version.as_deref());
    w.str(9, f.arch.as_deref());
    w.u32(10, f.nr_cpus_online);
    w.u32(11, f.nr_cpus_avail);
    w.str(12, f.cpu_desc.as_deref());
    w.str(13, f.cpuid.as_deref());
    w.u64(14, f.total_mem_kb);
    w.str(15, f.cmdline.as_deref());
    w.u32(16, f.clock_data.map(|c| c.0));
    w.u64(17, f.clock_data.map(|c| c.1));
    w.u64(18, f.clock_data.map(|c| c.2));
    w.u64(19, f.sample_time.map(|t| t.0).or(summary.first_time));
    w.u64(20, f.sample_time.map(|t| t.1).or(summary.last_time));
    w.u64(21, Some(summary.n_samples));
    w.str(22, Some(env!("CARGO_PKG_VERSION")));
    w.u32(23, Some(SCHEMA_VERSION));
    w.end_row()?;
    let mut all_tables: Vec<(String, PathBuf, u64)> = tables;
    let (p, n) = w.close()?;
    all_tables.push(("meta".into(), p, n));

    // Ingest report: record counts, then warnings.
    let mut warnings = walk.warnings.clone();
    warnings.extend(summary.warnings.iter().cloned());
    let bytes_unread = walk.bytes_unread;
    let mut w = TableWriter::new(
        "ingest_report",
        partition_path(&root, "ingest_report", "_pending", dataset::PENDING),
        &schema::ingest_report().defs(),
        Vec::new(),
    )
    .compressed(opts.compression);
    for (t, (n, b)) in &walk.records {
        w.str(0, Some("record"));
        w.str(1, Some(perf::records::record_type::name(*t)));
        w.u64(2, Some(*n));
        w.u64(3, Some(*b));
        w.u64(4, None);
        w.str(5, None);
        w.end_row()?;
    }
    let mut counts: std::collections::BTreeMap<WarningKind, u64> =
        std::collections::BTreeMap::new();
    for wn in &walk.warnings {
        *counts.entry(wn.kind).or_default() += 1;
    }
    for (k, n) in &summary.warning_counts {
        *counts.entry(*k).or_default() += n;
    }
    for wn in &warnings {
        w.str(0, Some("warning"));
        w.str(1, Some(wn.kind.as_str()));
        w.u64(2, Some(1));
        w.u64(
            3,
            Some(if wn.kind == WarningKind::Truncated {
                bytes_unread
            } else {
                0
            }),
        );
        w.u64(4, wn.offset);
        w.str(5, Some(&wn.message));
        w.end_row()?;
    }
    let (p, n) = w.close()?;
    all_tables.push(("ingest_report".into(), p, n));

    // One entry per table: the guest recordings' parts of a guest_* table add up.
    let mut table_rows: Vec<(String, u64)> = Vec::new();
    for (n, _, r) in &all_tables {
        match table_rows.iter_mut().find(|(t, _)| t == n) {
            Some((_, rows)) => *rows += r,
            None => table_rows.push((n.clone(), *r)),
        }
    }
    staging.commit(&host, &recording, &table_rows)?;
    Ok(Report {
        recording,
        host,
        n_samples: summary.n_samples,
        tables: table_rows,
        warnings,
        warning_counts: counts.into_iter().collect(),
        bytes_unread,
        bytes_missing: walk.bytes_missing,
        input_bytes: total,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
