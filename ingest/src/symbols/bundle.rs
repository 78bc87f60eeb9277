//! Guest symbol bundles: reading (directory or `.tar.zst`, untrusted) and
//! collecting (run inside the guest, or on any Linux machine).
//!
//! Layout:
//! ```text
//! manifest.json                       BundleManifest (format_version 1)
//! kallsyms                            /proc/kallsyms
//! modules                             /proc/modules
//! vmlinux                             optional kernel image with symbols/DWARF
//! kmod/<name>.ko                      optional kernel modules
//! binaries/<build-id-hex>/<basename>  user ELF files mapped by the collected processes
//! binaries/<build-id-hex>/<basename>.debug   their separate debug files, when found
//! ```

use super::debuginfo::find_debug_file;
use super::elf::{ElfSymbols, parse_build_id_note};
use super::kallsyms::KernelSymbols;
use super::{SymbolError, hex_string, parse_hex};
use crate::FileBytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// The bundle format this code reads and writes.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// `manifest.json` of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Always [`BUNDLE_FORMAT_VERSION`].
    pub format_version: u32,
    /// VM name (the guest's hostname unless given).
    pub vm: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: String,
    /// Kernel build id from `/sys/kernel/notes`, lower-case hex.
    pub kernel_build_id: Option<String>,
    /// Machine architecture, e.g. `x86_64`.
    #[serde(alias = "arch")]
    pub architecture: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Bundle-relative path of the kernel image, if included.
    #[serde(default)]
    pub vmlinux: Option<String>,
    /// Bundle-relative paths of included kernel modules.
    #[serde(default)]
    pub kernel_modules: Vec<String>,
    /// User ELF files, sorted by original path.
    #[serde(default)]
    pub binaries: Vec<BundleBinary>,
}

/// One user binary of a bundle: original path to build id and stored files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleBinary {
    /// Path in the guest, as `/proc/PID/maps` shows it.
    pub path: String,
    /// Build id, lower-case hex.
    pub build_id: String,
    /// Bundle-relative path of the stored binary.
    pub file: String,
    /// Bundle-relative path of its separate debug file, if one was found.
    #[serde(default)]
    pub debug_file: Option<String>,
}

/// Size caps for extracting an untrusted `.tar.zst` bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BundleLimits {
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Largest sum of file sizes.
    pub max_total_bytes: u64,
    /// Most archive entries.
    pub max_entries: usize,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_file_bytes: 1 << 30,
            max_total_bytes: 4 << 30,
            max_entries: 100_000,
        }
    }
}

/// Files found for a binary in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFiles {
    /// The binary (or the only ELF file known for it).
    pub binary: PathBuf,
    /// Its separate debug file, if the bundle has one.
    pub debug: Option<PathBuf>,
}

/// A directory removed on drop (extracted archives).
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn new() -> Result<Self, SymbolError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "kvmtrace-bundle-{}-{nanos}-{n}",
            std::process::id()
        ));
        let mut builder = std::fs::DirBuilder::new();
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&path)
            .map_err(|e| SymbolError::io(&path, e))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            log::warn!("{}: could not remove: {e}", self.path.display());
        }
    }
}

#[derive(Debug, Clone)]
struct IndexedElf {
    path: PathBuf,
    build_id: Option<Vec<u8>>,
    file_name: String,
}

/// An opened guest symbol bundle.
#[derive(Debug)]
pub struct Bundle {
    source: PathBuf,
    root: PathBuf,
    _extracted: Option<TempDir>,
    manifest: Option<BundleManifest>,
    kallsyms: Option<PathBuf>,
    modules: Option<PathBuf>,
    vmlinux: Option<PathBuf>,
    index: Vec<IndexedElf>,
}

/// A bundle-relative path made only of normal components, or `None`.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn is_tar_zst(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase());
    name.is_some_and(|n| n.ends_with(".tar.zst") || n.ends_with(".tzst"))
}

fn is_elf_file(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// A file named `name`, or the only file ending in `.name`.
fn find_named(root: &Path, name: &str) -> Option<PathBuf> {
    let exact = root.join(name);
    if exact.is_file() {
        return Some(exact);
    }
    let suffix = format!(".{name}");
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
        })
        .collect();
    found.sort();
    (found.len() == 1).then(|| found.pop()).flatten()
}

impl Bundle {
    /// Opens a bundle directory, a `.tar.zst` bundle, or a plain directory
    /// holding `kallsyms`/`modules` (or `*.kallsyms`/`*.modules`) and ELF files.
    pub fn open(path: &Path) -> Result<Self, SymbolError> {
        Self::open_with_limits(path, BundleLimits::default())
    }

    /// [`Bundle::open`] with explicit extraction limits.
    pub fn open_with_limits(path: &Path, limits: BundleLimits) -> Result<Self, SymbolError> {
        let meta = std::fs::metadata(path).map_err(|e| SymbolError::io(path, e))?;
        if meta.is_dir() {
            return Self::open_dir(path, path.to_owned(), None);
        }
        if !is_tar_zst(path) {
            return Err(SymbolError::Bundle {
                path: path.to_owned(),
                reason: "not a directory and not a .tar.zst file".into(),
            });
        }
        let temp = TempDir::new()?;
        extract_tar_zst(path, temp.path(), limits)?;
        let root = temp.path().to_owned();
        Self::open_dir(path, root, Some(temp))
    }

    fn open_dir(
        source: &Path,
        root: PathBuf,
        extracted: Option<TempDir>,
    ) -> Result<Self, SymbolError> {
        let bad = |reason: String| SymbolError::Bundle {
            path: source.to_owned(),
            reason,
        };
        let manifest_path = root.join("manifest.json");
        let manifest: Option<BundleManifest> = if manifest_path.is_file() {
            let text =
                std::fs::read(&manifest_path).map_err(|e| SymbolError::io(&manifest_path, e))?;
            let manifest: BundleManifest =
                serde_json::from_slice(&text).map_err(|e| bad(format!("manifest.json: {e}")))?;
            if manifest.format_version != BUNDLE_FORMAT_VERSION {
                return Err(bad(format!(
                    "manifest.json: format_version {} is not supported (expected {BUNDLE_FORMAT_VERSION})",
                    manifest.format_version
                )));
            }
            Some(manifest)
        } else {
            None
        };
        let real_root = std::fs::canonicalize(&root).map_err(|e| SymbolError::io(&root, e))?;
        let resolve = |rel: &str| -> Result<PathBuf, SymbolError> {
            let rel_path = safe_relative(rel)
                .ok_or_else(|| bad(format!("manifest.json: unsafe path {rel:?}")))?;
            let path = root.join(rel_path);
            // A directory bundle may hold links; what the manifest names must stay inside.
            if let Ok(real) = std::fs::canonicalize(&path)
                && !real.starts_with(&real_root)
            {
                return Err(bad(format!(
                    "manifest.json: {rel:?} resolves outside the bundle"
                )));
            }
            Ok(path)
        };
        let kallsyms = find_named(&root, "kallsyms");
        let modules = find_named(&root, "modules").filter(|p| p.is_file());
        let mut bundle = Bundle {
            source: source.to_owned(),
            root: root.clone(),
            _extracted: extracted,
            manifest: None,
            kallsyms,
            modules,
            vmlinux: None,
            index: Vec::new(),
        };
        if let Some(manifest) = manifest {
            if bundle.kallsyms.is_none() {
                return Err(bad("manifest.json present but no kallsyms file".into()));
            }
            if let Some(v) = &manifest.vmlinux {
                bundle.vmlinux = Some(resolve(v)?);
            }
            for b in &manifest.binaries {
                resolve(&b.file)?;
                if let Some(d) = &b.debug_file {
                    resolve(d)?;
                }
            }
            bundle.manifest = Some(manifest);
            return Ok(bundle);
        }
        bundle.index = index_elf_files(&root);
        let named_vmlinux = root.join("vmlinux");
        bundle.vmlinux = if named_vmlinux.is_file() {
            Some(named_vmlinux)
        } else {
            bundle.guess_vmlinux()
        };
        if bundle.kallsyms.is_none() && bundle.index.is_empty() {
            return Err(bad(
                "no manifest.json, no kallsyms file and no ELF files".into()
            ));
        }
        Ok(bundle)
    }

    /// In a plain directory: the `ET_EXEC` ELF whose entry point is the
    /// kallsyms address of `_text`/`_stext`/`startup_64`.
    fn guess_vmlinux(&self) -> Option<PathBuf> {
        let table = self.kernel_symbols("[kernel]").ok().flatten()?;
        let starts: Vec<u64> = ["_text", "_stext", "startup_64"]
            .iter()
            .filter_map(|n| table.address_of(n))
            .collect();
        self.index.iter().find_map(|e| {
            let elf = ElfSymbols::from_path(&e.path).ok()?;
            (elf.is_executable_type() && starts.contains(&elf.entry())).then(|| e.path.clone())
        })
    }

    /// The bundle's directory (a private temporary copy for archives).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path the bundle was opened from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The manifest, for bundles that have one.
    pub fn manifest(&self) -> Option<&BundleManifest> {
        self.manifest.as_ref()
    }

    /// The kallsyms file, if any.
    pub fn kallsyms_path(&self) -> Option<&Path> {
        self.kallsyms.as_deref()
    }

    /// The modules file, if any.
    pub fn modules_path(&self) -> Option<&Path> {
        self.modules.as_deref()
    }

    /// The kernel image, if any.
    pub fn vmlinux_path(&self) -> Option<&Path> {
        self.vmlinux.as_deref()
    }

    /// Parses the bundle's kallsyms and modules; `None` without a kallsyms file.
    pub fn kernel_symbols(&self, kernel_dso: &str) -> Result<Option<KernelSymbols>, SymbolError> {
        match &self.kallsyms {
            Some(k) => KernelSymbols::from_files(k, self.modules.as_deref(), kernel_dso).map(Some),
            None => Ok(None),
        }
    }

    /// Finds a user binary by its guest path and build id. With a build id,
    /// only a file with that id matches; without one, the path (manifest) or
    /// the file name (plain directory) decides.
    pub fn find_binary(&self, original_path: &str, build_id: Option<&[u8]>) -> Option<BundleFiles> {
        if let Some(manifest) = &self.manifest {
            let entry = manifest.binaries.iter().find(|b| match build_id {
                Some(id) => {
                    parse_hex(&b.build_id).as_deref() == Some(id) && b.path == original_path
                }
                None => b.path == original_path,
            });
            let entry = entry.or_else(|| {
                let id = build_id?;
                manifest
                    .binaries
                    .iter()
                    .find(|b| parse_hex(&b.build_id).as_deref() == Some(id))
            })?;
            return Some(BundleFiles {
                binary: self.root.join(safe_relative(&entry.file)?),
                debug: entry
                    .debug_file
                    .as_deref()
                    .and_then(safe_relative)
                    .map(|d| self.root.join(d)),
            });
        }
        let file_name = Path::new(original_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())?;
        let binary = match build_id {
            Some(id) => self
                .index
                .iter()
                .find(|e| e.build_id.as_deref() == Some(id))?,
            None => self.index.iter().find(|e| e.file_name == file_name)?,
        };
        Some(BundleFiles {
            binary: binary.path.clone(),
            debug: None,
        })
    }
}

/// ELF files under a plain directory (depth 4, at most 10,000 files looked at).
fn index_elf_files(root: &Path) -> Vec<IndexedElf> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_owned(), 0usize)];
    let mut n_seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            n_seen += 1;
            if n_seen > 10_000 {
                log::warn!(
                    "{}: more than 10000 files; rest not indexed",
                    root.display()
                );
                return out;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() && depth < 4 {
                stack.push((path, depth + 1));
            } else if meta.is_file() && is_elf_file(&path) {
                // Its notes only: the index needs no symbols.
                let build_id = ElfSymbols::build_id_of(&path).ok().flatten();
                let file_name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push(IndexedElf {
                    path,
                    build_id,
                    file_name,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Lexically resolves `target` relative to `link_dir` (both bundle-relative);
/// `None` when it leaves the bundle.
fn resolve_inside(link_dir: &Path, target: &Path) -> Option<PathBuf> {
    if target.is_absolute() {
        return None;
    }
    let mut parts: Vec<std::ffi::OsString> = link_dir
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            _ => None,
        })
        .collect();
    for c in target.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// True when an existing ancestor of `rel` under `root` is a symlink.
fn through_symlink(root: &Path, rel: &Path) -> bool {
    let mut cur = root.to_owned();
    let n = rel.components().count();
    for (i, c) in rel.components().enumerate() {
        if i + 1 == n {
            break;
        }
        cur.push(c);
        if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

/// Extracts an untrusted `.tar.zst` into `dest`, refusing path escapes, links
/// out of the bundle, hard links, devices and entries over the size caps.
fn extract_tar_zst(archive: &Path, dest: &Path, limits: BundleLimits) -> Result<(), SymbolError> {
    let io_err = |e: std::io::Error| SymbolError::io(archive, e);
    let file = std::fs::File::open(archive).map_err(io_err)?;
    let decoder = zstd::Decoder::new(file).map_err(io_err)?;
    let mut tar = tar::Archive::new(decoder);
    let mut total = 0u64;
    let mut symlinks: Vec<(PathBuf, String, u64)> = Vec::new();
    let entries = tar.entries().map_err(io_err)?;
    for (n, entry) in entries.enumerate() {
        let mut entry = entry.map_err(io_err)?;
        let offset = entry.raw_header_position();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason: String| SymbolError::UnsafeBundleEntry {
            path: archive.to_owned(),
            entry: name.clone(),
            offset,
            reason,
        };
        if n >= limits.max_entries {
            return Err(refuse(format!("more than {} entries", limits.max_entries)));
        }
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        let raw = Path::new(&name);
        if raw.is_absolute() {
            return Err(refuse("absolute path".into()));
        }
        if raw.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(refuse("path contains `..`".into()));
        }
        let Some(rel) = safe_relative(&name) else {
            if kind.is_dir() {
                continue; // "./"
            }
            return Err(refuse("empty or unsafe path".into()));
        };
        if through_symlink(dest, &rel) {
            return Err(refuse("path goes through a symbolic link".into()));
        }
        let target = dest.join(&rel);
        match kind {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(|e| SymbolError::io(&target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(io_err)?;
                if size > limits.max_file_bytes {
                    return Err(refuse(format!(
                        "{size} bytes is over the {} byte per-file limit",
                        limits.max_file_bytes
                    )));
                }
                total = total.saturating_add(size);
                if total > limits.max_total_bytes {
                    return Err(refuse(format!(
                        "bundle is over the {} byte total limit",
                        limits.max_total_bytes
                    )));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| SymbolError::io(parent, e))?;
                }
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| SymbolError::io(&target, e))?;
                let copied = std::io::copy(&mut (&mut entry).take(size), &mut out)
                    .map_err(|e| SymbolError::io(&target, e))?;
                if copied != size {
                    return Err(refuse(format!("truncated: {copied} of {size} bytes")));
                }
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let parent = rel.parent().unwrap_or(Path::new(""));
                if resolve_inside(parent, Path::new(&link)).is_none() {
                    return Err(refuse(format!(
                        "symbolic link to {link:?} points outside the bundle"
                    )));
                }
                if let Some(p) = target.parent() {
                    std::fs::create_dir_all(p).map_err(|e| SymbolError::io(p, e))?;
                }
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| SymbolError::io(&target, e))?;
                symlinks.push((target, name.clone(), offset));
            }
            tar::EntryType::Link => return Err(refuse("hard links are not accepted".into())),
            other => return Err(refuse(format!("entry type {other:?} is not accepted"))),
        }
    }
    // Chains of in-bundle links can still leave it; check what they really resolve to.
    let real_root = std::fs::canonicalize(dest).map_err(|e| SymbolError::io(dest, e))?;
    for (link, name, offset) in symlinks {
        let inside = std::fs::canonicalize(&link).is_ok_and(|real| real.starts_with(&real_root));
        if !inside {
            return Err(SymbolError::UnsafeBundleEntry {
                path: archive.to_owned(),
                entry: name,
                offset,
                reason: "symbolic link resolves outside the bundle or dangles".into(),
            });
        }
    }
    Ok(())
}

/// Options of [`collect_bundle`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CollectOptions {
    /// Output directory, or a file ending in `.tar.zst`. Must not exist.
    pub output: PathBuf,
    /// VM name for the manifest (empty: the hostname).
    pub vm: String,
    /// Processes whose mapped ELF files are collected (`--binaries-of`).
    pub pids: Vec<u32>,
    /// Collect the mapped ELF files of every running process (`--all-running`).
    pub all_running: bool,
    /// Kernel image to include (`--vmlinux`).
    pub vmlinux: Option<PathBuf>,
    /// Kernel module files to include as `kmod/<file name>`.
    pub kernel_module_files: Vec<PathBuf>,
    /// Debug directories searched for the binaries' debug files (empty: `/usr/lib/debug`).
    pub debug_dirs: Vec<PathBuf>,
    /// procfs mount (default `/proc`).
    pub proc_dir: PathBuf,
    /// sysfs mount (default `/sys`).
    pub sys_dir: PathBuf,
    /// Fixed `created_at` (tests); `None` uses the current time.
    pub created_at: Option<String>,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            output: PathBuf::new(),
            vm: String::new(),
            pids: Vec::new(),
            all_running: false,
            vmlinux: None,
            kernel_module_files: Vec::new(),
            debug_dirs: Vec::new(),
            proc_dir: PathBuf::from("/proc"),
            sys_dir: PathBuf::from("/sys"),
            created_at: None,
        }
    }
}

/// A binary the collector did not include, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedBinary {
    /// Path as mapped.
    pub path: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What [`collect_bundle`] wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BundleReport {
    /// The bundle written.
    pub output: PathBuf,
    /// Its manifest.
    pub manifest: BundleManifest,
    /// Lines of kallsyms.
    pub n_kallsyms: usize,
    /// All kallsyms addresses were zero (kptr_restrict): the bundle cannot resolve kernel frames.
    pub kallsyms_restricted: bool,
    /// Loaded modules listed.
    pub n_modules: usize,
    /// Separate debug files included.
    pub n_debug_files: usize,
    /// Mapped files that were not included (no build id, unreadable).
    pub skipped: Vec<SkippedBinary>,
    /// Bytes of file content written (before compression).
    pub n_bytes: u64,
}

enum Content {
    Bytes(Vec<u8>),
    /// A mapped ELF file, as parsed (it may be gone from its path by the time it is written).
    Mapped(Arc<FileBytes>),
    File(PathBuf),
}

fn read_proc(path: &Path) -> Result<Vec<u8>, SymbolError> {
    std::fs::read(path).map_err(|e| SymbolError::io(path, e))
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Days-from-civil inverse (Howard Hinnant), for an RFC 3339 UTC timestamp.
fn rfc3339_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Mapped file paths of one process from `/proc/PID/maps`.
fn mapped_paths(maps: &str) -> BTreeSet<String> {
    maps.lines()
        .filter_map(|line| {
            // start-end perms offset dev inode pathname
            let mut rest = line;
            for _ in 0..5 {
                rest = rest.trim_start().split_once(char::is_whitespace)?.1;
            }
            let path = rest.trim();
            (path.starts_with('/') && !path.ends_with(" (deleted)")).then(|| path.to_owned())
        })
        .collect()
}

/// Collects a guest symbol bundle from the running system (see the module docs
/// for the layout). Writes under a temporary name, then renames.
pub fn collect_bundle(options: &CollectOptions) -> Result<BundleReport, SymbolError> {
    let output = &options.output;
    if output.as_os_str().is_empty() {
        return Err(SymbolError::Bundle {
            path: output.clone(),
            reason: "no output path given".into(),
        });
    }
    if std::fs::symlink_metadata(output).is_ok() {
        return Err(SymbolError::Bundle {
            path: output.clone(),
            reason: "output already exists".into(),
        });
    }
    let proc = &options.proc_dir;
    let kallsyms = read_proc(&proc.join("kallsyms"))?;
    let table = KernelSymbols::parse(&String::from_utf8_lossy(&kallsyms), None, "[kernel]")
        .map_err(|e| e.with_path(&proc.join("kallsyms")))?;
    if table.addresses_restricted() {
        log::warn!(
            "{}: every address is zero (kernel.kptr_restrict, or not root): the bundle's \
             kallsyms cannot resolve guest kernel frames; run as root or set \
             kernel.kptr_restrict=0",
            proc.join("kallsyms").display()
        );
    }
    let modules = match std::fs::read(proc.join("modules")) {
        Ok(m) => m,
        Err(e) => {
            log::warn!(
                "{}: {e}; writing an empty modules file",
                proc.join("modules").display()
            );
            Vec::new()
        }
    };
    let n_modules = super::kallsyms::parse_modules(&String::from_utf8_lossy(&modules)).len();
    let notes_path = options.sys_dir.join("kernel/notes");
    let kernel_build_id = match std::fs::read(&notes_path) {
        Ok(notes) => parse_build_id_note(&notes, cfg!(target_endian = "little")),
        Err(e) => {
            log::warn!("{}: {e}; no kernel build id", notes_path.display());
            None
        }
    };
    let kernel_release = read_trimmed(&proc.join("sys/kernel/osrelease")).unwrap_or_default();
    let architecture = read_trimmed(&proc.join("sys/kernel/arch"))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let vm = if options.vm.is_empty() {
        read_trimmed(&proc.join("sys/kernel/hostname")).unwrap_or_else(|| "guest".into())
    } else {
        options.vm.clone()
    };
    let created_at = options.created_at.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        rfc3339_utc(secs)
    });

    // Which files are mapped, and by which pid (for /proc/PID/root fallback).
    let mut pids: BTreeSet<u32> = options.pids.iter().copied().collect();
    if options.all_running {
        let entries = std::fs::read_dir(proc).map_err(|e| SymbolError::io(proc, e))?;
        pids.extend(
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()),
        );
    }
    let mut mapped: BTreeMap<String, u32> = BTreeMap::new();
    for pid in &pids {
        let maps_path = proc.join(pid.to_string()).join("maps");
        match std::fs::read_to_string(&maps_path) {
            Ok(text) => {
                for path in mapped_paths(&text) {
                    mapped.entry(path).or_insert(*pid);
                }
            }
            Err(e) if options.pids.contains(pid) => return Err(SymbolError::io(&maps_path, e)),
            Err(e) => log::debug!("{}: {e}; process skipped", maps_path.display()),
        }
    }

    let mut files: BTreeMap<String, Content> = BTreeMap::new();
    let mut binaries = Vec::new();
    let mut skipped = Vec::new();
    let mut stored: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    let mut n_debug_files = 0;
    for (path, pid) in &mapped {
        let direct = PathBuf::from(path);
        let via_root = proc
            .join(pid.to_string())
            .join("root")
            .join(path.trim_start_matches('/'));
        let source = if direct.is_file() { direct } else { via_root };
        if !is_elf_file(&source) {
            log::debug!("{path}: not an ELF file");
            continue;
        }
        let elf = match ElfSymbols::from_path(&source) {
            Ok(elf) => elf,
            Err(e) => {
                skipped.push(SkippedBinary {
                    path: path.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let Some(id) = elf.build_id().map(hex_string) else {
            skipped.push(SkippedBinary {
                path: path.clone(),
                reason: "no build id".into(),
            });
            continue;
        };
        let (file, debug_file) = stored
            .entry(id.clone())
            .or_insert_with(|| {
                let base = source
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "binary".into());
                let file = format!("binaries/{id}/{base}");
                let content = elf.file_bytes().map_or_else(
                    || Content::File(source.clone()),
                    |b| Content::Mapped(Arc::clone(b)),
                );
                files.insert(file.clone(), content);
                let debug = if elf.has_dwarf() {
                    None
                } else {
                    find_debug_file(
                        &source,
                        elf.build_id(),
                        elf.debuglink(),
                        &options.debug_dirs,
                    )
                };
                let debug_file = debug.map(|d| {
                    let name = format!("binaries/{id}/{base}.debug");
                    files.insert(name.clone(), Content::File(d));
                    n_debug_files += 1;
                    name
                });
                (file, debug_file)
            })
            .clone();
        binaries.push(BundleBinary {
            path: path.clone(),
            build_id: id,
            file,
            debug_file,
        });
    }
    let vmlinux = match &options.vmlinux {
        Some(path) => {
            let elf = ElfSymbols::from_path(path)?;
            let id = elf.build_id().map(hex_string);
            if kernel_build_id.is_some() && id != kernel_build_id.as_ref().map(|k| hex_string(k)) {
                log::warn!(
                    "{}: build id {} differs from the running kernel's {}",
                    path.display(),
                    id.as_deref().unwrap_or("(none)"),
                    kernel_build_id
                        .as_deref()
                        .map(hex_string)
                        .unwrap_or_default()
                );
            }
            files.insert("vmlinux".into(), Content::File(path.clone()));
            Some("vmlinux".to_owned())
        }
        None => None,
    };
    let mut kernel_modules = Vec::new();
    for ko in &options.kernel_module_files {
        let name = ko
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| SymbolError::Bundle {
                path: ko.clone(),
                reason: "module path has no file name".into(),
            })?;
        let rel = format!("kmod/{name}");
        files.insert(rel.clone(), Content::File(ko.clone()));
        kernel_modules.push(rel);
    }
    kernel_modules.sort();
    let manifest = BundleManifest {
        format_version: BUNDLE_FORMAT_VERSION,
        vm,
        kernel_release,
        kernel_build_id: kernel_build_id.as_deref().map(hex_string),
        architecture,
        created_at,
        vmlinux,
        kernel_modules,
        binaries,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| SymbolError::Bundle {
        path: output.clone(),
        reason: format!("manifest: {e}"),
    })?;
    files.insert("kallsyms".into(), Content::Bytes(kallsyms));
    files.insert("modules".into(), Content::Bytes(modules));
    let mut ordered: Vec<(String, Content)> =
        vec![("manifest.json".into(), Content::Bytes(manifest_json))];
    ordered.extend(files);
    let n_bytes = if is_tar_zst(output) {
        write_tar_zst(output, &ordered)?
    } else {
        write_dir(output, &ordered)?
    };
    Ok(BundleReport {
        output: output.clone(),
        manifest,
        n_kallsyms: table.n_lines(),
        kallsyms_restricted: table.addresses_restricted(),
        n_modules,
        n_debug_files,
        skipped,
        n_bytes,
    })
}

fn temp_sibling(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn write_dir(output: &Path, files: &[(String, Content)]) -> Result<u64, SymbolError> {
    let tmp = temp_sibling(output);
    std::fs::create_dir(&tmp).map_err(|e| SymbolError::io(&tmp, e))?;
    let result = (|| {
        let mut n_bytes = 0u64;
        for (name, content) in files {
            let target = tmp.join(name);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| SymbolError::io(parent, e))?;
            }
            n_bytes += match content {
                Content::Bytes(b) => {
                    std::fs::write(&target, b).map_err(|e| SymbolError::io(&target, e))?;
                    b.len() as u64
                }
                Content::Mapped(b) => {
                    std::fs::write(&target, &***b).map_err(|e| SymbolError::io(&target, e))?;
                    b.len() as u64
                }
                Content::File(src) => {
                    std::fs::copy(src, &target).map_err(|e| SymbolError::io(src, e))?
                }
            };
        }
        std::fs::rename(&tmp, output).map_err(|e| SymbolError::io(output, e))?;
        Ok(n_bytes)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn write_tar_zst(output: &Path, files: &[(String, Content)]) -> Result<u64, SymbolError> {
    let tmp = temp_sibling(output);
    let result = (|| {
        let io = |e: std::io::Error| SymbolError::io(&tmp, e);
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let encoder = zstd::Encoder::new(file, 3).map_err(io)?;
        let mut builder = tar::Builder::new(encoder);
        builder.mode(tar::HeaderMode::Deterministic);
        let mut n_bytes = 0u64;
        for (name, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            match content {
                Content::Bytes(b) => {
                    header.set_size(b.len() as u64);
                    builder
                        .append_data(&mut header, name, b.as_slice())
                        .map_err(io)?;
                    n_bytes += b.len() as u64;
                }
                Content::Mapped(b) => {
                    header.set_size(b.len() as u64);
                    builder.append_data(&mut header, name, &***b).map_err(io)?;
                    n_bytes += b.len() as u64;
                }
                Content::File(src) => {
                    let f = std::fs::File::open(src).map_err(|e| SymbolError::io(src, e))?;
                    let size = f.metadata().map_err(|e| SymbolError::io(src, e))?.len();
                    header.set_size(size);
                    builder
                        .append_data(&mut header, name, f.take(size))
                        .map_err(|e| SymbolError::io(src, e))?;
                    n_bytes += size;
                }
            }
        }
        let encoder = builder.into_inner().map_err(io)?;
        let mut file = encoder.finish().map_err(io)?;
        file.flush().map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, output).map_err(|e| SymbolError::io(output, e))?;
        Ok(n_bytes)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
