//! Folded stacks and flame graphs of a host and its guests as one system.
//!
//! [`fold`] turns a dataset into folded stacks ([`Folded`]), root first, one line per distinct
//! stack, sorted bytewise:
//!
//! * samples of threads that are not vCPU threads: `<comm>;<frames>`, as `perf script |
//!   inferno-collapse-perf` folds them (spaces in comm become `_`; an unresolved frame is
//!   `[<dso basename>]`);
//! * a vCPU thread in guest mode: `VM <vm>;vCPU <n>;<guest frames>`, the stack of the nearest
//!   guest-side sample of that vCPU when its leaf agrees (same address or same symbol), else the
//!   sample's own guest frames;
//! * a vCPU thread inside an exit: `VM <vm>;vCPU <n>;<guest symbol of guest_rip>;[exit
//!   <reason>];<host frames>`;
//! * a vCPU thread in host mode outside any exit: `VM <vm>;vCPU <n>;<host frames>`.
//!
//! With [`Options::exits`] the graph is of exits instead: `VM <vm>;vCPU <n>;<guest
//! frames>;[exit <reason>]`, weighted by exit duration. [`render_svg`] draws any of them with
//! inferno (guest, exit and host frames in distinct hues); [`render_folded`] writes the text,
//! which inferno, FlameGraph and speedscope read. The output does not depend on the thread
//! count.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use polars::prelude::*;
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{Error, pl};
use crate::join::{self, JoinOptions, placement};
use crate::place::{self, FastMap};
use crate::reads::EventIds;

pub use crate::flame_svg::{SvgOptions, render_svg};

/// Which samples a flame graph shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Host and guest as one system.
    #[default]
    All,
    /// Only samples taken while a vCPU was in guest mode, under their VM and vCPU.
    GuestOnly,
    /// Only host-mode samples, folded as `perf script | inferno-collapse-perf` folds them
    /// (`<comm>;<frames>`, no VM grouping).
    HostOnly,
}

/// What one stack line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Samples (or, with [`Options::exits`], exits).
    Samples,
    /// The samples' periods (event counts), as inferno counts `perf script` output with periods.
    Period,
    /// Nanoseconds of exit time: each exit's duration is shared among the host samples taken
    /// during it; an exit without samples counts under `[exit <reason>]` alone.
    ExitTime,
}

/// A time window `[start_ns, end_ns)` on the host perf clock; an open side is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    /// First included time.
    pub start_ns: Option<u64>,
    /// First excluded time.
    pub end_ns: Option<u64>,
}

impl TimeRange {
    fn contains(&self, t: Option<u64>) -> bool {
        let Some(t) = t else { return false };
        self.start_ns.is_none_or(|s| t >= s) && self.end_ns.is_none_or(|e| t < e)
    }
}

/// What to fold.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Host and guest, guest only or host only.
    pub scope: Scope,
    /// An exit flame graph (guest code → exit reason) instead of a sample flame graph.
    pub exits: bool,
    /// The weight; `None`: samples, or exit time with `exits`; with [`Scope::HostOnly`] (and no
    /// `event`) what inferno-collapse-perf reads of perf script's lines (`InfernoFold`).
    pub weight: Option<Weight>,
    /// The host event to fold (`samples.event`); `None`: the first non-tracepoint event of the
    /// recording (inferno folds the first event it meets), with [`Scope::HostOnly`] (and no
    /// `weight`) every event inferno folds with it (`InfernoFold`).
    pub event: Option<String>,
    /// Only these VMs (display name or VMM pid); empty: all (and non-VM samples).
    pub vms: Vec<String>,
    /// Only these vCPU indices; empty: all.
    pub vcpus: Vec<u32>,
    /// Only samples (or exits) starting in this window.
    pub time: Option<TimeRange>,
    /// Largest distance between a host guest-mode sample and the guest-side sample whose stack
    /// it takes, in ns.
    pub match_tolerance_ns: u64,
    /// Worker threads (0: all cores). The output is identical at any count.
    pub threads: usize,
    /// Keep at most this many innermost frames (callchain entries) of each stack, as perf's
    /// `--max-stack` (perf's default: 127); `None`: all.
    pub max_stack: Option<u32>,
    /// Which functions inlined at a frame's address become frames of their own.
    pub inline: Inline,
    /// Rows of a stacks table read at a time (the result does not depend on it; tests read
    /// the stacks a few at a time).
    pub stack_batch_rows: usize,
}

/// Which inlined functions (rows of a frames table with `inline_depth > 0`) a stack shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inline {
    /// Those of user frames unwound from a stack copy (`--call-graph dwarf`), as perf script
    /// 6.1 does: it lists inlined functions while unwinding only, never for the frames of a
    /// recorded callchain (frame pointers, LBR, kernel).
    #[default]
    Unwound,
    /// Every frame's, wherever the debug info has them.
    All,
    /// None: each address is the function that contains it.
    None,
}

/// perf script's and perf report's default `--max-stack` (`PERF_MAX_STACK_DEPTH`).
pub const PERF_MAX_STACK: u32 = 127;

impl Default for Options {
    fn default() -> Self {
        Options {
            scope: Scope::All,
            exits: false,
            weight: None,
            event: None,
            vms: Vec::new(),
            vcpus: Vec::new(),
            time: None,
            match_tolerance_ns: JoinOptions::default().match_tolerance_ns,
            threads: 0,
            max_stack: Some(PERF_MAX_STACK),
            inline: Inline::Unwound,
            stack_batch_rows: STACK_BATCH_ROWS,
        }
    }
}

/// Which frames of a folded stack are which: `n_header` VM/vCPU frames, then `n_guest` guest
/// frames, then `n_exit` exit frames, then host frames (used to colour the SVG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StackLayout {
    /// `VM …` and `vCPU …` frames.
    pub n_header: u32,
    /// Guest frames.
    pub n_guest: u32,
    /// `[exit …]` frames.
    pub n_exit: u32,
}

/// One folded stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedStack {
    /// Frames root first, separated by `;`.
    pub stack: String,
    /// Its weight.
    pub count: u64,
    /// Its weight in the baseline of a differential graph ([`diff`]).
    pub baseline: Option<u64>,
    /// Frame kinds.
    pub layout: StackLayout,
}

/// What the join found, for the user to judge the graph by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlameReport {
    /// The folded host event.
    pub event: Option<String>,
    /// Host samples folded (after filters).
    pub n_samples: u64,
    /// Of those: vCPU threads in guest mode.
    pub n_guest_mode: u64,
    /// vCPU threads inside an exit, host kernel.
    pub n_in_exit_kernel: u64,
    /// vCPU threads inside an exit, VMM user space.
    pub n_in_exit_vmm: u64,
    /// vCPU threads in host mode outside exits.
    pub n_vcpu_outside_exit: u64,
    /// Other threads.
    pub n_other: u64,
    /// Guest-mode samples that took the stack of a guest-side sample (leaf validated).
    pub n_guest_matched: u64,
    /// Guest-mode samples whose nearest guest-side sample had another leaf.
    pub n_guest_mismatched: u64,
    /// Guest-mode samples with no guest-side sample within the tolerance.
    pub n_guest_unmatched: u64,
    /// Samples dropped because they have no frames (inferno drops them too).
    pub n_no_stack: u64,
    /// Exits folded (exit graphs and exit-time weight).
    pub n_exits: u64,
    /// Exits skipped by the exit-time weight because their duration is unknown.
    pub n_exits_without_duration: u64,
    /// Guest-side samples by the state of their vCPU (`running`, `exited`, `scheduled_out`,
    /// `unknown`), when guest recordings were ingested.
    pub guest_states: BTreeMap<String, u64>,
}

impl FlameReport {
    /// Matched share of the guest-mode samples whose guest recording exists; `None` without
    /// candidates.
    pub fn match_rate(&self) -> Option<f64> {
        let n = self.n_guest_matched + self.n_guest_mismatched + self.n_guest_unmatched;
        (n > 0).then(|| self.n_guest_matched as f64 / n as f64)
    }

    fn add(&mut self, o: &FlameReport) {
        self.n_samples += o.n_samples;
        self.n_guest_mode += o.n_guest_mode;
        self.n_in_exit_kernel += o.n_in_exit_kernel;
        self.n_in_exit_vmm += o.n_in_exit_vmm;
        self.n_vcpu_outside_exit += o.n_vcpu_outside_exit;
        self.n_other += o.n_other;
        self.n_guest_matched += o.n_guest_matched;
        self.n_guest_mismatched += o.n_guest_mismatched;
        self.n_guest_unmatched += o.n_guest_unmatched;
        self.n_no_stack += o.n_no_stack;
        self.n_exits += o.n_exits;
        self.n_exits_without_duration += o.n_exits_without_duration;
    }
}

/// Folded stacks, sorted bytewise by stack.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Folded {
    /// The stacks.
    pub stacks: Vec<FoldedStack>,
    /// What `count` counts (`samples`, `events`, `ns`, `exits`).
    pub count_name: String,
    /// Join statistics.
    pub report: FlameReport,
}

/// inferno-collapse-perf's `tidy_generic`: `;` becomes `:` and a top-level argument list is
/// removed (but not Go's `.(` nor C++ `(anonymous namespace)`).
fn tidy_generic(func: &str) -> String {
    let func = func.replace(';', ":");
    let mut depth = 0i32;
    let mut last_dot = None;
    let mut cut = func.len();
    for (idx, c) in func.char_indices() {
        match c {
            '<' | '{' | '[' => depth += 1,
            '>' | '}' | ']' | ')' => depth -= 1,
            '(' => {
                if depth == 0 {
                    let go = last_dot == Some(idx);
                    let anon = func[idx..].starts_with("(anonymous namespace)");
                    if !go && !anon {
                        cut = idx;
                        break;
                    }
                }
                depth += 1;
            }
            '.' => last_dot = Some(idx + 1),
            _ => {}
        }
    }
    let mut func = func;
    func.truncate(cut);
    func
}

/// What inferno-collapse-perf makes of perf's `<ip> <symbol> (<dso>)` line when the dso has a
/// space (`/tmp/x (deleted)`): it splits at the last space, so the start of the dso joins the
/// function, which `tidy_generic` then cuts at its `(` (`[unknown] `). `None`: inferno cannot
/// split the line and drops the frame.
fn inferno_frame(symbol: Option<&str>, dso: &str) -> Option<String> {
    let line = format!("{} ({dso})", symbol.unwrap_or("[unknown]"));
    let (rest, module) = line.rsplit_once(' ')?;
    let module = module.strip_prefix('(')?.strip_suffix(')')?;
    let func = match rest.trim() {
        "" => " ",
        f => f,
    };
    Some(if func == "[unknown]" {
        format!("[{}]", module.rsplit('/').next().unwrap_or(module))
    } else {
        func.to_string()
    })
}

/// The names of one interned stack.
#[derive(Debug, Clone, Copy, Default)]
struct StackNames {
    /// Where its frame names (root first) start in [`Stacks::ids`].
    start: u32,
    /// Number of names.
    n: u32,
    /// Symbol of the leaf frame (inline depth 0) when it is resolved and a guest frame: an id
    /// of [`Stacks::names`].
    leaf_symbol: Option<u32>,
    /// Address of the leaf frame.
    leaf_addr: Option<u64>,
    /// The least stack id of the recording with the same names: lines are keyed by it, so
    /// that stacks differing only in addresses fold into one key.
    canon: u32,
}

impl StackNames {
    /// No stack (a hole of [`Stacks::dense`]).
    const ABSENT: StackNames = StackNames {
        start: u32::MAX,
        n: u32::MAX,
        leaf_symbol: None,
        leaf_addr: None,
        canon: u32::MAX,
    };

    fn is_absent(&self) -> bool {
        self.n == u32::MAX
    }
}

/// Distinct texts (frame names, symbols), each once: stacks hold 4-byte ids, and their text is
/// only built for the distinct lines of the output (a 97 MB recording has 419 k stacks of
/// ~10 names but 83 k distinct lines).
#[derive(Debug, Default)]
struct Names {
    ids: FastMap<Box<str>, u32>,
    texts: Vec<Box<str>>,
}

impl Names {
    fn id(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(text.into());
        self.ids.insert(text.into(), id);
        id
    }

    fn text(&self, id: u32) -> &str {
        self.texts.get(id as usize).map_or("", |t| t)
    }
}

/// Interned stacks of one frames table by (recording, stack_id), their names as ids.
#[derive(Debug, Default)]
struct Stacks {
    /// By recording number, then stack id ([`StackNames::ABSENT`] where there is none): ingest
    /// numbers each recording's stacks densely from 0, and every sample looks its stack up
    /// (a hash map's probe was a fifth of folding a 79 MB recording's samples).
    dense: Vec<Vec<StackNames>>,
    /// Stacks whose ids are far beyond the others' (another writer's sparse ids).
    sparse: FastMap<(u32, u32), StackNames>,
    /// Of the dense stacks, set by [`canonicalize`]: `canon << 1 | has frames`, `u32::MAX`
    /// where there is none ([`Stacks::get`] is asked then). What most samples ask of their
    /// stack, from an eighth of the memory of [`Stacks::dense`]: it is asked at random.
    canon: Vec<Vec<u32>>,
    n: usize,
    /// The name ids of every stack, root first, one stack after the other.
    ids: Vec<u32>,
    names: Names,
}

impl Stacks {
    fn get(&self, &(r, s): &(u32, u32)) -> Option<&StackNames> {
        match self.dense.get(r as usize).and_then(|v| v.get(s as usize)) {
            Some(e) if !e.is_absent() => Some(e),
            _ if self.sparse.is_empty() => None,
            _ => self.sparse.get(&(r, s)),
        }
    }

    fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// [`StackNames::canon`] of stack `s` of recording `r` and whether it has frames.
    fn canon(&self, r: u32, s: u32) -> Option<(u32, bool)> {
        match self.canon.get(r as usize).and_then(|v| v.get(s as usize)) {
            Some(&c) if c != u32::MAX => Some((c >> 1, c & 1 == 1)),
            _ => self.get(&(r, s)).map(|e| (e.canon, e.n > 0)),
        }
    }

    /// Every stack: ((recording, stack id), names), dense ones first, in id order.
    fn iter(&self) -> impl Iterator<Item = ((u32, u32), &StackNames)> {
        let dense = self.dense.iter().enumerate().flat_map(|(r, v)| {
            v.iter()
                .enumerate()
                .filter(|(_, e)| !e.is_absent())
                .map(move |(s, e)| ((r as u32, s as u32), e))
        });
        dense.chain(self.sparse.iter().map(|(k, e)| (*k, e)))
    }

    /// [`Stacks::iter`], mutable (the same order while nothing is added).
    fn iter_mut(&mut self) -> impl Iterator<Item = ((u32, u32), &mut StackNames)> {
        let dense = self.dense.iter_mut().enumerate().flat_map(|(r, v)| {
            v.iter_mut()
                .enumerate()
                .filter(|(_, e)| !e.is_absent())
                .map(move |(s, e)| ((r as u32, s as u32), e))
        });
        dense.chain(self.sparse.iter_mut().map(|(k, e)| (*k, e)))
    }

    /// The name ids of `s`, root first.
    fn ids_of(&self, s: &StackNames) -> &[u32] {
        let a = s.start as usize;
        self.ids.get(a..a + s.n as usize).unwrap_or_default()
    }

    /// Appends the names of `s`, root first and `;`-joined.
    fn push_folded(&self, s: &StackNames, line: &mut String) {
        for (k, &id) in self.ids_of(s).iter().enumerate() {
            if k > 0 {
                line.push(';');
            }
            line.push_str(self.names.text(id));
        }
    }

    /// The leaf's (last) name of `s`.
    fn leaf_name(&self, s: &StackNames) -> Option<&str> {
        self.ids_of(s).last().map(|&id| self.names.text(id))
    }

    /// The symbol of the leaf of `s`, when that is a guest frame.
    fn leaf_symbol(&self, s: &StackNames) -> Option<&str> {
        s.leaf_symbol.map(|id| self.names.text(id))
    }

    /// Adds the stacks `p` built over rows of a stacks table (names already ours).
    fn absorb(&mut self, p: PartStacks) {
        let base = self.ids.len() as u32;
        self.ids.extend_from_slice(&p.ids);
        // Dense up to twice the stacks seen and a million more: a corrupt or sparse id
        // cannot size the table.
        let bound = 2 * (self.n + p.out.len()) + (1 << 20);
        for ((r, sid), mut e) in p.out {
            e.start += base;
            let (r_at, at) = (r as usize, sid as usize);
            if r_at < 1 << 16 && at < bound {
                if self.dense.len() <= r_at {
                    self.dense.resize_with(r_at + 1, Vec::new);
                }
                let v = &mut self.dense[r_at];
                if v.len() <= at {
                    v.resize(at + 1, StackNames::ABSENT);
                }
                if v[at].is_absent() {
                    self.n += 1;
                }
                v[at] = e;
            } else if self.sparse.insert((r, sid), e).is_none() {
                self.n += 1;
            }
        }
    }
}

/// Sets [`StackNames::canon`].
fn canonicalize(stacks: &mut Stacks) {
    // One hash per stack: each stack notes its group, each group its least id.
    let mut group: FastMap<(u32, &[u32]), usize> =
        FastMap::with_capacity_and_hasher(stacks.n, Default::default());
    let mut least: Vec<u32> = Vec::new();
    let mut of: Vec<usize> = Vec::with_capacity(stacks.n);
    for ((r, s), e) in stacks.iter() {
        let g = *group.entry((r, stacks.ids_of(e))).or_insert_with(|| {
            least.push(s);
            least.len() - 1
        });
        least[g] = least[g].min(s);
        of.push(g);
    }
    drop(group);
    // The same order again (nothing was added or removed).
    for ((_, e), g) in stacks.iter_mut().zip(of) {
        e.canon = least.get(g).copied().unwrap_or(e.canon);
    }
    let packed = |e: &StackNames| match e.canon.checked_mul(2) {
        Some(c) if !e.is_absent() && c < u32::MAX - 1 => c | u32::from(e.n > 0),
        _ => u32::MAX,
    };
    stacks.canon = stacks
        .dense
        .iter()
        .map(|v| v.iter().map(packed).collect())
        .collect();
}

/// Guest code addresses → names, for `guest_rip`.
#[derive(Debug, Default)]
struct RipIndex {
    exact: FastMap<(u32, u64), String>,
    /// (recording, symbol start, name), sorted.
    starts: Vec<(u32, u64, String)>,
}

impl RipIndex {
    /// The innermost name at `rip`, else the symbol whose start is the nearest below it
    /// (within 64 KiB), else `[unknown]`.
    fn name(&self, rec: u32, rip: u64) -> String {
        if let Some(n) = self.exact.get(&(rec, rip)) {
            return n.clone();
        }
        let at = self
            .starts
            .partition_point(|(r, s, _)| (*r, *s) <= (rec, rip));
        if at > 0
            && let Some((r, s, n)) = self.starts.get(at - 1)
            && *r == rec
            && rip - s < 0x10000
        {
            return n.clone();
        }
        "[unknown]".to_string()
    }
}

/// Recording ids → small integers.
#[derive(Debug, Default)]
struct Recordings(FastMap<String, u32>);

impl Recordings {
    /// The dataset's recordings, numbered as [`place`] numbers them.
    fn of(ds: &Dataset) -> Recordings {
        Recordings(place::recording_numbers(ds))
    }

    fn numbers(&self) -> &FastMap<String, u32> {
        &self.0
    }

    fn id(&mut self, r: &str) -> u32 {
        let n = self.0.len() as u32;
        *self.0.entry(r.to_string()).or_insert(n)
    }
}

fn column<'a>(df: &'a DataFrame, table: &str, name: &str) -> Result<&'a Column, Error> {
    df.column(name).map_err(pl(table))
}

fn strs<'a>(df: &'a DataFrame, table: &str, name: &str) -> Result<Vec<Option<&'a str>>, Error> {
    Ok(column(df, table, name)?
        .str()
        .map_err(pl(table))?
        .iter()
        .collect())
}

fn u64s(df: &DataFrame, table: &str, name: &str) -> Result<Vec<Option<u64>>, Error> {
    Ok(column(df, table, name)?
        .u64()
        .map_err(pl(table))?
        .iter()
        .collect())
}

fn u32s(df: &DataFrame, table: &str, name: &str) -> Result<Vec<Option<u32>>, Error> {
    Ok(column(df, table, name)?
        .u32()
        .map_err(pl(table))?
        .iter()
        .collect())
}

fn i32s(df: &DataFrame, table: &str, name: &str) -> Result<Vec<Option<i32>>, Error> {
    Ok(column(df, table, name)?
        .i32()
        .map_err(pl(table))?
        .iter()
        .collect())
}

/// Rows of a stacks table read at a time ([`Options::stack_batch_rows`]), one row group of
/// ingest's: memory holds one batch of stacks, not the table.
pub const STACK_BATCH_ROWS: usize = 1 << 18;

/// The frames of one recording, by frame_id: each one's names as a stack shows them.
#[derive(Debug, Default)]
struct FrameTable {
    /// Where a frame's names (outermost function first, then what is inlined into it, those
    /// kept by [`Options::inline`]) start in `ids`, and how many; `UNKNOWN` when the frames
    /// table has no such frame. 8 bytes a frame: stacks look up ~9 M of them at random.
    spans: Vec<(u32, u32)>,
    /// Symbol of the function containing the address (inline depth 0, an id of the names)
    /// and the address, for a stack's leaf.
    leaf: Vec<(Option<u32>, Option<u64>)>,
    ids: Vec<u32>,
}

impl FrameTable {
    const UNKNOWN: (u32, u32) = (u32::MAX, 0);

    /// The names of frame `id`, None when the table has no such frame.
    fn names(&self, id: u32) -> Option<&[u32]> {
        let &(a, n) = self.spans.get(id as usize)?;
        if (a, n) == Self::UNKNOWN {
            return None;
        }
        self.ids.get(a as usize..a as usize + n as usize)
    }

    fn leaf(&self, id: u32) -> (Option<u32>, Option<u64>) {
        self.leaf.get(id as usize).copied().unwrap_or_default()
    }
}

/// Loads a stacks table (`stacks` or `guest_stacks`) and its frames table (`frames` or
/// `guest_frames`) into names per (recording, stack_id), and guest code addresses into `rips`.
///
/// Each distinct frame's names are made once, from the frames table (a 100 MB `-g -a`
/// recording: ~1 M frames for ~9 M callchain positions); a stack is then the names of its
/// `frame_ids`, root first. The stacks table is read in batches, each cut into parts built in
/// parallel and absorbed in row order.
fn load_stacks(
    ds: &Dataset,
    stacks_table: &str,
    table: &str,
    opts: &Options,
    recs: &mut Recordings,
    rips: &mut RipIndex,
) -> Result<Stacks, Error> {
    let mut stacks = Stacks::default();
    if !ds.has(table) || !ds.has(stacks_table) {
        return Ok(stacks);
    }
    let schema = ds.scan(table)?.collect_schema().map_err(pl(table))?;
    if !schema.contains("frame_id") {
        return Err(Error::Invalid(format!(
            "{}: its {table} table has a row per stack and frame (written by kvmtrace before schema version 2); ingest the recording again with this kvmtrace",
            ds.root().display()
        )));
    }
    let inline_filter = match opts.inline {
        Inline::All => None,
        Inline::None => Some(col("inline_depth").eq(lit(0u32))),
        Inline::Unwound => Some(col("inline_depth").eq(lit(0u32)).or(col("unwound"))),
    };
    let mut tables: FastMap<u32, FrameTable> = FastMap::default();
    let mut exact: FastMap<(u32, u64), String> = FastMap::default();
    let mut starts: BTreeMap<(u32, u64), String> = BTreeMap::new();
    let t = crate::timing::phase("flame: read frames");
    for (path, rec) in ds.files(table) {
        let r = recs.id(&rec.recording);
        let lf = crate::dataset::scan_file(&path, table)?;
        let lf = match &inline_filter {
            Some(f) => lf.filter(f.clone()),
            None => lf,
        };
        let tc = crate::timing::phase("flame: read frames: collect");
        let df = lf
            .select([
                col("frame_id"),
                col("inline_depth"),
                col("addr"),
                col("cpumode")
                    .str()
                    .starts_with(lit("guest"))
                    .alias("guest"),
                col("symbol"),
                col("sym_offset"),
                col("name"),
                col("dso"),
            ])
            .collect()
            .map_err(pl(table))?;
        drop(tc);
        // Ingest writes the rows in that order; another writer's file is sorted here.
        let df = if sorted_by_frame(&df, table)? {
            df
        } else {
            df.sort(
                ["frame_id", "inline_depth"],
                SortMultipleOptions::default().with_maintain_order(true),
            )
            .map_err(pl(table))?
        };
        let ft = tables.entry(r).or_default();
        add_frames(
            &df,
            table,
            r,
            ft,
            &mut stacks.names,
            &mut exact,
            &mut starts,
        )?;
    }
    drop(t);
    rips.exact.extend(exact);
    rips.starts
        .extend(starts.into_iter().map(|((r, s), n)| (r, s, n)));
    rips.starts.sort();
    rips.starts.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);

    let max_stack = opts.max_stack.map_or(usize::MAX, |m| m as usize);
    let empty = FrameTable::default();
    for (path, rec) in ds.files(stacks_table) {
        let r = recs.id(&rec.recording);
        let ft = tables.get(&r).unwrap_or(&empty);
        let lf = crate::dataset::scan_file(&path, stacks_table)?;
        for lf in crate::dataset::windows(&path, lf, opts.stack_batch_rows) {
            let t = crate::timing::phase("flame: read stacks");
            let df = lf
                .select([col("stack_id"), col("frame_ids")])
                .collect()
                .map_err(pl(stacks_table))?;
            drop(t);
            let _t = crate::timing::phase("flame: build stacks");
            let n = df.height();
            let n_parts = (rayon::current_num_threads() * 4).clamp(1, n.max(1));
            let parts: Vec<PartStacks> = (0..n_parts)
                .into_par_iter()
                .map(|k| {
                    let (a, z) = (k * n / n_parts, (k + 1) * n / n_parts);
                    stacks_of_part(&df.slice(a as i64, z - a), stacks_table, r, ft, max_stack)
                })
                .collect::<Result<_, _>>()?;
            for p in parts {
                stacks.absorb(p);
            }
        }
    }
    Ok(stacks)
}

/// Whether the rows of a frames table are in (frame_id, inline_depth) order.
fn sorted_by_frame(df: &DataFrame, table: &str) -> Result<bool, Error> {
    let ids = column(df, table, "frame_id")?.u32().map_err(pl(table))?;
    let depths = column(df, table, "inline_depth")?
        .u32()
        .map_err(pl(table))?;
    let mut prev: Option<(Option<u32>, Option<u32>)> = None;
    for key in ids.iter().zip(depths.iter()) {
        if prev.is_some_and(|p| p > key) {
            return Ok(false);
        }
        prev = Some(key);
    }
    Ok(true)
}

/// Adds the frames of `df` (rows of a frames table of recording `r`, sorted by frame_id and
/// inline depth) to `ft`, their names to `names`, guest code addresses to `exact` and `starts`.
fn add_frames(
    df: &DataFrame,
    table: &str,
    r: u32,
    ft: &mut FrameTable,
    names: &mut Names,
    exact: &mut FastMap<(u32, u64), String>,
    starts: &mut BTreeMap<(u32, u64), String>,
) -> Result<(), Error> {
    let c = |name: &str| column(df, table, name);
    let mut frame_id = c("frame_id")?.u32().map_err(pl(table))?.iter();
    let mut depth = c("inline_depth")?.u32().map_err(pl(table))?.iter();
    let mut addr = c("addr")?.u64().map_err(pl(table))?.iter();
    let mut guest = c("guest")?.bool().map_err(pl(table))?.iter();
    let mut symbol = c("symbol")?.str().map_err(pl(table))?.iter();
    let mut sym_offset = c("sym_offset")?.u64().map_err(pl(table))?.iter();
    let mut name = c("name")?.str().map_err(pl(table))?.iter();
    let mut dso = c("dso")?.str().map_err(pl(table))?.iter();
    // A row's name → its text's id (a name repeats at every address of its function).
    let mut by_name: FastMap<&str, (u32, bool)> = FastMap::default();
    for _ in 0..df.height() {
        let (Some(id), depth, addr, guest, symbol, sym_offset, name, dso) = (
            frame_id.next().flatten(),
            depth.next().flatten(),
            addr.next().flatten(),
            guest.next().flatten().unwrap_or(false),
            symbol.next().flatten(),
            sym_offset.next().flatten(),
            name.next().flatten(),
            dso.next().flatten(),
        ) else {
            continue;
        };
        let i = id as usize;
        // Ids are dense (every frame has a row): one beyond the rows read is corrupt, and
        // would size the table by a number read from the file.
        if i > ft.spans.len() + df.height() {
            return Err(Error::Invalid(format!(
                "{table}: frame_id {id} is beyond the {} frames of its rows",
                ft.spans.len() + df.height()
            )));
        }
        if ft.spans.len() <= i {
            ft.spans.resize(i + 1, FrameTable::UNKNOWN);
            ft.leaf.resize(i + 1, (None, None));
        }
        let (Some(f), Some(leaf)) = (ft.spans.get_mut(i), ft.leaf.get_mut(i)) else {
            continue;
        };
        if *f == FrameTable::UNKNOWN {
            *f = (ft.ids.len() as u32, 0);
        }
        // inferno drops a line it cannot split: as a frame named "(…)".
        let emulated = dso
            .filter(|d| d.contains(' '))
            .map(|d| inferno_frame(symbol, d).unwrap_or_else(|| "(".to_string()));
        let (text, skip) = match emulated {
            Some(raw) => (names.id(&tidy_generic(&raw)), raw.starts_with('(')),
            None => {
                let raw = name.unwrap_or("[unknown]");
                match by_name.get(raw) {
                    Some(&v) => v,
                    None => {
                        // Two memchr scans: much faster than one scan for either character.
                        let id = if raw.contains(';') || raw.contains('(') {
                            names.id(&tidy_generic(raw))
                        } else {
                            names.id(raw)
                        };
                        by_name.insert(raw, (id, raw.starts_with('(')));
                        (id, raw.starts_with('('))
                    }
                }
            }
        };
        // inferno-collapse-perf skips frames named like "(…)". A frame's rows are together
        // (sorted by frame_id), so its names are the last ones pushed.
        if !skip && f.0 as usize + f.1 as usize == ft.ids.len() {
            ft.ids.push(text);
            f.1 += 1;
        }
        if depth == Some(0) {
            // The leaf's symbol validates a guest-mode sample's match (its leaf and the guest
            // sample's are one function): needed of guest frames only, and interning it for
            // every frame hashed each host frame's symbol once more.
            *leaf = (symbol.filter(|_| guest).map(|s| names.id(s)), addr);
        }
        if guest && let Some(a) = addr {
            // Sorted by inline depth ascending: the last one written is the innermost.
            exact.insert((r, a), names.text(text).to_string());
            if depth == Some(0)
                && let (Some(sym), Some(off)) = (symbol, sym_offset)
            {
                starts
                    .entry((r, a.wrapping_sub(off)))
                    .or_insert_with(|| tidy_generic(sym));
            }
        }
    }
    Ok(())
}

/// polars' (arrow) arrays of a chunk: polars re-exports no array type by name.
type ListArray = <ListType as PolarsDataType>::Array;
type U32Array = <UInt32Type as PolarsDataType>::Array;

/// The stacks of some rows of a stacks table of recording `r`, named through `ft`, each cut
/// to its `max_stack` innermost frames.
fn stacks_of_part(
    df: &DataFrame,
    table: &str,
    r: u32,
    ft: &FrameTable,
    max_stack: usize,
) -> Result<PartStacks, Error> {
    let mut b = PartStacks::default();
    let stack_ids = column(df, table, "stack_id")?.u32().map_err(pl(table))?;
    let lists = column(df, table, "frame_ids")?
        .as_materialized_series()
        .list()
        .map_err(pl(table))?;
    let mut stack_id = stack_ids.iter();
    for arr in lists.downcast_iter() {
        let arr: &ListArray = arr;
        let values: Option<&U32Array> = arr.values().as_any().downcast_ref();
        let Some(values) = values else {
            return Err(Error::Invalid(format!(
                "{table}: frame_ids is not a list of UInt32"
            )));
        };
        let offsets = arr.offsets().buffer();
        for (i, w) in offsets.windows(2).enumerate() {
            let Some(sid) = stack_id.next().flatten() else {
                continue;
            };
            if arr.validity().is_some_and(|v| !v.get_bit(i)) {
                continue;
            }
            let (a, z) = match w {
                [a, z] => (*a as usize, *z as usize),
                _ => continue,
            };
            let ids = values.values().get(a..z).unwrap_or_default();
            let ids = ids.get(..max_stack.min(ids.len())).unwrap_or_default();
            let mut e = StackNames {
                start: b.ids.len() as u32,
                ..StackNames::default()
            };
            let mut any = false;
            for &fid in ids.iter().rev() {
                let Some(names) = ft.names(fid) else { continue };
                any = true;
                b.ids.extend_from_slice(names);
                e.n += names.len() as u32;
            }
            if !any {
                continue;
            }
            if let Some(&fid) = ids.first() {
                (e.leaf_symbol, e.leaf_addr) = ft.leaf(fid);
            }
            b.out.push(((r, sid), e));
        }
    }
    Ok(b)
}

/// Stacks built over some rows of a stacks table, names as ids of [`Stacks::names`].
#[derive(Default)]
struct PartStacks {
    out: Vec<((u32, u32), StackNames)>,
    /// Name ids of the stacks, one after the other.
    ids: Vec<u32>,
}

/// The first non-tracepoint event in sample order (inferno folds the first event it meets, and
/// tracepoints are not profiles); the first event when all are tracepoints.
///
/// One small aggregation (the first sample of each event of each recording), not a sort of
/// every sample.
pub fn default_event(ds: &Dataset) -> Result<Option<String>, Error> {
    let events = if ds.has("events") {
        Some(
            ds.scan("events")?
                .select([
                    col("recording"),
                    col("event_idx"),
                    col("type"),
                    col("name"),
                    col("n_samples"),
                ])
                .collect()
                .map_err(pl("events"))?,
        )
    } else {
        None
    };
    if let Some(only) = events
        .as_ref()
        .map(only_sampled_event)
        .transpose()?
        .flatten()
    {
        return Ok(Some(only));
    }
    // Per partition file: keyed by the event index alone.
    let mut parts = Vec::new();
    for (rec, lf) in ds.scan_parts("samples")? {
        parts.push(
            lf.group_by([col("event_idx")])
                .agg([
                    col("sample_idx").min().alias("first"),
                    col("event").first().alias("event"),
                ])
                .with_column(lit(rec).alias("recording")),
        );
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let firsts = concat(parts, UnionArgs::default())
        .map_err(pl("samples"))?
        .collect()
        .map_err(pl("samples"))?;
    // (recording, event_idx) → perf_event_attr type.
    let mut types: HashMap<(String, u32), u32> = HashMap::new();
    if let Some(ev) = &events {
        let (r, i, t) = (
            strs(ev, "events", "recording")?,
            u32s(ev, "events", "event_idx")?,
            u32s(ev, "events", "type")?,
        );
        for k in 0..ev.height() {
            if let (Some(r), Some(i), Some(t)) = (r[k], i[k], t[k]) {
                types.insert((r.to_string(), i), t);
            }
        }
    }
    let rec = strs(&firsts, "samples", "recording")?;
    let idx = u32s(&firsts, "samples", "event_idx")?;
    let first = u64s(&firsts, "samples", "first")?;
    let event = strs(&firsts, "samples", "event")?;
    let mut any: Option<(&str, u64, Option<&str>)> = None;
    let mut profiled: Option<(&str, u64, Option<&str>)> = None;
    for k in 0..firsts.height() {
        let (Some(r), Some(f)) = (rec[k], first[k]) else {
            continue;
        };
        let cand = (r, f, event[k]);
        let earlier = |best: &Option<(&str, u64, Option<&str>)>| {
            best.is_none_or(|(br, bf, _)| (r, f) < (br, bf))
        };
        if earlier(&any) {
            any = Some(cand);
        }
        let is_profile = idx[k]
            .and_then(|i| types.get(&(r.to_string(), i)))
            .is_some_and(|&t| t != PERF_TYPE_TRACEPOINT);
        if is_profile && earlier(&profiled) {
            profiled = Some(cand);
        }
    }
    Ok(profiled.or(any).and_then(|(_, _, e)| e.map(str::to_string)))
}

/// perf_event_attr.type of tracepoints (not profiles).
const PERF_TYPE_TRACEPOINT: u32 = 2;

/// The answer of [`default_event`] when the `events` rows `ev` alone give it: every profiling
/// event with samples (or, without any, every event with samples) has one name. Then no sample
/// is read (on 12 M samples the scan took 1.2 s).
fn only_sampled_event(ev: &DataFrame) -> Result<Option<String>, Error> {
    let (names, types, counts) = (
        strs(ev, "events", "name")?,
        u32s(ev, "events", "type")?,
        u64s(ev, "events", "n_samples")?,
    );
    let sampled: Vec<(Option<&str>, Option<u32>)> = names
        .iter()
        .zip(&types)
        .zip(&counts)
        .filter(|(_, n)| n.is_some_and(|n| n > 0))
        .map(|((&name, &t), _)| (name, t))
        .collect();
    let profiles: Vec<Option<&str>> = sampled
        .iter()
        .filter(|(_, t)| t.is_some_and(|t| t != PERF_TYPE_TRACEPOINT))
        .map(|&(n, _)| n)
        .collect();
    let candidates: Vec<Option<&str>> = if profiles.is_empty() {
        sampled.iter().map(|&(n, _)| n).collect()
    } else {
        profiles
    };
    Ok(match candidates.split_first() {
        Some((&Some(first), rest)) if rest.iter().all(|&n| n == Some(first)) => {
            Some(first.to_string())
        }
        _ => None,
    })
}

fn pool(threads: usize) -> Result<rayon::ThreadPool, Error> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start {threads} worker threads: {e}")))
}

/// Accumulated stacks: stack → (weight, layout).
type Acc = FastMap<String, (u64, StackLayout)>;

/// One of the interned stacks of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum StackRef {
    /// Of the host recording (`frames`).
    Host(u32),
    /// Of a guest recording (`guest_frames`).
    Guest(u32),
}

/// What one folded line is made of, before its text is built: numbers only, so that hashing
/// a key per sample hashes no text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LineKey {
    /// A thread that is not a vCPU: `<comm>;<frames>` (`comm` an id of [`LineNames::comms`]).
    Plain { rec: u32, comm: u32, stack: u32 },
    /// A vCPU thread: `VM <vm>;vCPU <n>[;<guest frames>][;<guest symbol>;[exit R]][;<host frames>]`.
    Vm {
        rec: u32,
        /// The vCPU thread (a row of [`place::Vcpus`]).
        vcpu: u32,
        /// Guest frames (guest mode).
        guest: Option<StackRef>,
        /// guest_rip and reason (an id of [`place::Exits::reason_name`]) of the exit the
        /// sample fell in.
        exit: Option<(Option<u64>, u32)>,
        /// The host stack (inside or outside an exit).
        host: Option<u32>,
    },
}

/// Weights per line key. The keys of threads that are not vCPUs (most samples of most
/// recordings) go to a map of their own, whose entries take 24 bytes instead of 56: every
/// sample probes the map at a random place.
#[derive(Default)]
struct KeyAcc {
    /// [`LineKey::Plain`]'s (rec, comm, stack).
    plain: FastMap<(u32, u32, u32), u64>,
    /// [`LineKey::Vm`]s.
    vm: FastMap<LineKey, u64>,
}

impl KeyAcc {
    fn add(&mut self, key: LineKey, w: u64) {
        if w == 0 {
            return;
        }
        match key {
            LineKey::Plain { rec, comm, stack } => {
                *self.plain.entry((rec, comm, stack)).or_default() += w
            }
            vm => *self.vm.entry(vm).or_default() += w,
        }
    }

    fn len(&self) -> usize {
        self.plain.len() + self.vm.len()
    }

    /// The sums of both (the smaller added into the larger).
    fn merge(self, other: KeyAcc) -> KeyAcc {
        let (mut big, small) = if self.len() < other.len() {
            (other, self)
        } else {
            (self, other)
        };
        for (k, w) in small.plain {
            *big.plain.entry(k).or_default() += w;
        }
        for (k, w) in small.vm {
            *big.vm.entry(k).or_default() += w;
        }
        big
    }

    fn into_keys(self) -> Vec<(LineKey, u64)> {
        let plain = self
            .plain
            .into_iter()
            .map(|((rec, comm, stack), w)| (LineKey::Plain { rec, comm, stack }, w));
        plain.chain(self.vm).collect()
    }
}

/// Builds the text of line keys.
struct LineNames<'a> {
    /// The comms of [`LineKey::Plain`].
    comms: &'a [String],
    host: &'a Stacks,
    guest: &'a Stacks,
    rips: &'a RipIndex,
    vcpus: Option<&'a place::Vcpus>,
    exits: Option<&'a place::Exits>,
}

impl LineNames<'_> {
    fn line(&self, key: &LineKey) -> (String, StackLayout) {
        match *key {
            LineKey::Plain { rec, comm, stack } => {
                let comm = self.comms.get(comm as usize).map_or("", String::as_str);
                let mut line = String::with_capacity(comm.len() + 256);
                for c in comm.chars() {
                    line.push(if c == ' ' { '_' } else { c });
                }
                line.push(';');
                if let Some(s) = self.host.get(&(rec, stack)) {
                    self.host.push_folded(s, &mut line);
                }
                (line, StackLayout::default())
            }
            LineKey::Vm {
                rec,
                vcpu,
                guest,
                exit,
                host,
            } => {
                let v = self.vcpus.map(|vs| vs.thread(vcpu));
                let mut line = header(v.map(|v| v.1), v.map(|v| v.2));
                let mut layout = StackLayout {
                    n_header: 2,
                    ..StackLayout::default()
                };
                let stack = |r: StackRef| match r {
                    StackRef::Host(s) => self.host.get(&(rec, s)).map(|e| (self.host, e)),
                    StackRef::Guest(s) => self.guest.get(&(rec, s)).map(|e| (self.guest, e)),
                };
                if let Some((t, s)) = guest.and_then(stack) {
                    if s.n > 0 {
                        line.push(';');
                        t.push_folded(s, &mut line);
                    }
                    layout.n_guest = s.n;
                }
                if let Some((rip, reason)) = exit {
                    if let Some(rip) = rip {
                        line.push(';');
                        line.push_str(&self.rips.name(rec, rip));
                        layout.n_guest = 1;
                    }
                    line.push_str(";[exit ");
                    line.push_str(self.exits.map_or("", |x| x.reason_name(reason)));
                    line.push(']');
                    layout.n_exit = 1;
                }
                if let Some((t, s)) = host.and_then(|s| stack(StackRef::Host(s)))
                    && s.n > 0
                {
                    line.push(';');
                    t.push_folded(s, &mut line);
                }
                (line, layout)
            }
        }
    }
}

fn add(acc: &mut Acc, stack: String, w: u64, layout: StackLayout) {
    if w == 0 {
        return;
    }
    acc.entry(stack)
        .and_modify(|e| e.0 += w)
        .or_insert((w, layout));
}

fn merge(mut a: (Acc, FlameReport), b: (Acc, FlameReport)) -> (Acc, FlameReport) {
    if a.0.len() < b.0.len() {
        return merge(b, a);
    }
    for (k, (w, l)) in b.0 {
        add(&mut a.0, k, w, l);
    }
    a.1.add(&b.1);
    a
}

fn finish(acc: Acc, report: FlameReport, count_name: &str) -> Folded {
    let mut stacks: Vec<FoldedStack> = acc
        .into_iter()
        .map(|(stack, (count, layout))| FoldedStack {
            stack,
            count,
            baseline: None,
            layout,
        })
        .collect();
    stacks.sort_unstable_by(|a, b| a.stack.as_bytes().cmp(b.stack.as_bytes()));
    Folded {
        stacks,
        count_name: count_name.to_string(),
        report,
    }
}

/// Sorts stacks bytewise and merges equal ones (weights summed; of differing layouts the least,
/// so the result does not depend on the input order).
fn sorted_merged(mut stacks: Vec<FoldedStack>) -> Vec<FoldedStack> {
    let lkey = |l: &StackLayout| (l.n_header, l.n_guest, l.n_exit);
    stacks.par_sort_unstable_by(|a, b| {
        a.stack
            .as_bytes()
            .cmp(b.stack.as_bytes())
            .then_with(|| lkey(&a.layout).cmp(&lkey(&b.layout)))
    });
    let mut out: Vec<FoldedStack> = Vec::with_capacity(stacks.len());
    for s in stacks {
        match out.last_mut() {
            Some(last) if last.stack == s.stack => last.count += s.count,
            _ => out.push(s),
        }
    }
    out
}

/// `VM <vm>;vCPU <n>` header.
fn header(vm: Option<&str>, vcpu: Option<u32>) -> String {
    let vm = vm.unwrap_or("?");
    match vcpu {
        Some(n) => format!("VM {vm};vCPU {n}"),
        None => format!("VM {vm};vCPU ?"),
    }
}

fn vm_selected(opts: &Options, vm: Option<&str>, vm_pid: Option<i32>) -> bool {
    if opts.vms.is_empty() {
        return true;
    }
    opts.vms
        .iter()
        .any(|w| Some(w.as_str()) == vm || vm_pid.is_some_and(|p| p.to_string() == *w))
}

/// Whether every event named `event` (every event when `None`) records PERF_SAMPLE_PERIOD.
fn records_period(ds: &Dataset, event: Option<&str>) -> Result<bool, Error> {
    const PERF_SAMPLE_PERIOD: u64 = 1 << 8;
    if !ds.has("events") {
        return Ok(false);
    }
    let ev = ds
        .scan("events")?
        .select([col("name"), col("sample_type")])
        .collect()
        .map_err(pl("events"))?;
    let names = strs(&ev, "events", "name")?;
    let types = u64s(&ev, "events", "sample_type")?;
    let mut chosen = names
        .iter()
        .zip(&types)
        .filter(|(n, _)| event.is_none() || **n == event)
        .peekable();
    Ok(chosen.peek().is_some()
        && chosen.all(|(_, t)| t.is_some_and(|t| t & PERF_SAMPLE_PERIOD != 0)))
}

/// What `--host-only` folds when neither `--event` nor `--weight` is given: what
/// `perf script | inferno-collapse-perf` folds of the same recording.
///
/// - inferno keeps the events whose name, as perf script prints it, reads as the first one's up
///   to its first colon (it splits the line at colons): `sched:sched_switch` keeps every
///   `sched:` tracepoint, `cycles:u` every `cycles` and `cycles:…` event;
/// - perf script right-aligns event names to the longest in the recording
///   (`%10 PRIu64 " %*s: "`), and inferno reads the word before the name as its period, so a
///   sample weighs its period only when its event's name is of that longest length (and the
///   event records PERF_SAMPLE_PERIOD), 1 otherwise.
#[derive(Debug, Clone)]
struct InfernoFold {
    /// The events folded.
    events: Vec<String>,
    /// Those of them weighed by their period.
    by_period: Vec<String>,
}

impl InfernoFold {
    /// The events inferno folds when the first it meets is `first`.
    fn of(ds: &Dataset, first: &str) -> Result<Option<InfernoFold>, Error> {
        const PERF_SAMPLE_PERIOD: u64 = 1 << 8;
        if !ds.has("events") {
            return Ok(None);
        }
        let ev = ds
            .scan("events")?
            .select([col("name"), col("sample_type")])
            .collect()
            .map_err(pl("events"))?;
        let names = strs(&ev, "events", "name")?;
        let types = u64s(&ev, "events", "sample_type")?;
        let width = names.iter().flatten().map(|n| n.len()).max().unwrap_or(0);
        let key = first.split(':').next().unwrap_or(first);
        let mut events = Vec::new();
        let mut by_period = Vec::new();
        for (name, t) in names.iter().zip(&types) {
            let Some(name) = name else { continue };
            if name.split(':').next() != Some(key) || events.iter().any(|e| e == name) {
                continue;
            }
            events.push(name.to_string());
            if name.len() >= width && t.is_some_and(|t| t & PERF_SAMPLE_PERIOD != 0) {
                by_period.push(name.to_string());
            }
        }
        events.sort();
        by_period.sort();
        Ok((!events.is_empty()).then_some(InfernoFold { events, by_period }))
    }

    fn weight(&self) -> Weight {
        if self.by_period.is_empty() {
            Weight::Samples
        } else {
            Weight::Period
        }
    }

    /// Each sample's weight under [`Weight::Period`]: its period, or 1 where inferno reads none.
    fn period(&self) -> Expr {
        if self.by_period == self.events {
            col("period")
        } else {
            when(any_event(&self.by_period))
                .then(col("period"))
                .otherwise(lit(1u64))
                .alias("period")
        }
    }
}

/// Samples of any of `events`.
fn any_event(events: &[String]) -> Expr {
    events
        .iter()
        .map(|e| col("event").eq(lit(e.as_str())))
        .reduce(Expr::or)
        .unwrap_or(lit(false))
}

/// Folds the dataset's samples (or exits) into stacks.
pub fn fold(ds: &Dataset, opts: &Options) -> Result<Folded, Error> {
    let pool = pool(opts.threads)?;
    let event = match &opts.event {
        Some(e) => Some(e.clone()),
        None => {
            let _t = crate::timing::phase("flame: default event");
            default_event(ds)?
        }
    };
    let jopts = JoinOptions {
        event: event.clone(),
        match_tolerance_ns: opts.match_tolerance_ns,
    };
    if !ds.has("frames") && ds.has("samples") {
        return Err(Error::MissingTable {
            path: ds.root().to_path_buf(),
            table: "frames".into(),
            hint: Some("re-ingest the recording with this kvmtrace version".into()),
        });
    }
    let recs = Recordings::of(ds);
    let inferno = match (&event, opts) {
        (
            Some(first),
            Options {
                scope: Scope::HostOnly,
                event: None,
                weight: None,
                exits: false,
                ..
            },
        ) => InfernoFold::of(ds, first)?,
        _ => None,
    };
    let weight = match (&inferno, opts.exits) {
        (_, true) => None,
        (Some(i), false) => Some(i.weight()),
        (None, false) => Some(sample_weight(ds, opts, &jopts)?),
    };
    // The samples (and what they are placed against) are read while the stacks load: neither
    // needs the other, and each has stretches on one thread.
    let numbers = recs.numbers().clone();
    let t = crate::timing::phase("flame: load stacks, read samples");
    let (stacks, samples) = pool.install(|| {
        rayon::join(
            || {
                let (mut recs, mut rips) = (recs, RipIndex::default());
                let t = crate::timing::phase("flame: load stacks");
                let host = load_stacks(ds, "stacks", "frames", opts, &mut recs, &mut rips)?;
                let guest = load_stacks(
                    ds,
                    "guest_stacks",
                    "guest_frames",
                    opts,
                    &mut recs,
                    &mut rips,
                )?;
                drop(t);
                Ok::<_, Error>((host, guest, recs, rips))
            },
            || {
                weight
                    .map(|w| read_host_samples(ds, &jopts, inferno.as_ref(), w, &numbers))
                    .transpose()
            },
        )
    });
    drop(t);
    let (mut host_stacks, mut guest_stacks, mut recs, rips) = stacks?;
    let samples = samples?;
    let t = crate::timing::phase("flame: canonical stacks");
    pool.install(|| {
        rayon::join(
            || canonicalize(&mut host_stacks),
            || canonicalize(&mut guest_stacks),
        )
    });
    drop(t);
    let mut folded = match (samples, weight) {
        (Some(samples), Some(weight)) => fold_samples(
            ds,
            opts,
            &jopts,
            &pool,
            &mut recs,
            &rips,
            &host_stacks,
            &guest_stacks,
            samples,
            weight,
        )?,
        _ => fold_exits(ds, opts, &jopts, &pool, &mut recs, &rips, &guest_stacks)?,
    };
    folded.report.event = event;
    Ok(folded)
}

/// What samples are weighted by: `opts.weight`, else the period for `--host-only` (with
/// `--event`) where the event records it, else 1.
fn sample_weight(ds: &Dataset, opts: &Options, jopts: &JoinOptions) -> Result<Weight, Error> {
    let weight = match opts.weight {
        Some(w) => w,
        None if opts.scope == Scope::HostOnly && records_period(ds, jopts.event.as_deref())? => {
            Weight::Period
        }
        None => Weight::Samples,
    };
    if weight == Weight::ExitTime && opts.scope != Scope::All {
        return Err(Error::Invalid(
            "--weight exit-time needs host and guest: drop --guest-only/--host-only".into(),
        ));
    }
    Ok(weight)
}

/// The host samples to fold (of the folded event), each one's recording number and mode, and
/// the placer that places them.
struct HostSamples {
    df: DataFrame,
    rec: Vec<u32>,
    mode: Vec<place::Mode>,
    /// Each sample's comm as a number (consecutive samples mostly share it): line keys hash
    /// and compare no text.
    comm: Vec<u32>,
    /// The texts of those numbers.
    comms: Vec<String>,
    placer: place::Placer,
}

/// Reads the host samples and, side by side, what they are placed against (each read has
/// stretches on one thread: concatenating files, grouping by thread).
fn read_host_samples(
    ds: &Dataset,
    jopts: &JoinOptions,
    inferno: Option<&InfernoFold>,
    weight: Weight,
    numbers: &FastMap<String, u32>,
) -> Result<HostSamples, Error> {
    let _t = crate::timing::phase("flame: read host samples, exits, guest samples");
    const T: &str = "samples";
    // The samples of the folded events: `--host-only`'s default folds inferno's (one event or
    // several), otherwise one event.
    let events: Option<Vec<String>> = match (inferno, &jopts.event) {
        (Some(i), _) => Some(i.events.clone()),
        (None, Some(ev)) => Some(vec![ev.clone()]),
        (None, None) => None,
    };
    // Samples that read counters are reported as perf reports them (`crate::reads`).
    let reads = match events.as_deref() {
        Some([ev]) => EventIds::of(ds, ev, numbers)?,
        _ => None,
    };
    let read_samples = || {
        let (df, rec) = place::read_parts(ds, T, numbers, |lf| {
            let lf = match (&reads, &events) {
                (Some(reads), _) => lf.filter(reads.filter()),
                (None, Some(events)) => lf.filter(any_event(events)),
                (None, None) => lf,
            };
            // The period is read only to weigh by it (one zstd column fewer to decode).
            let period = match (weight, inferno) {
                (Weight::Period, Some(i)) => i.period(),
                (Weight::Period, None) => col("period"),
                _ => lit(NULL).cast(DataType::UInt64).alias("period"),
            };
            let mut cols = vec![
                col("time_ns"),
                col("tid"),
                col("comm"),
                period,
                col("ip"),
                col("stack_id"),
                col("cpumode"),
            ];
            if reads.is_some() {
                cols.extend([col("event"), col("read_ids"), col("read_periods")]);
            }
            lf.select(cols)
        })?;
        let (df, rec) = match &reads {
            Some(reads) => {
                let (mut df, rec) = reads.deliver(df, rec)?;
                df.rechunk_mut_par();
                (df, rec)
            }
            None => (df, rec),
        };
        let cpumode = column(&df, T, "cpumode")?.str().map_err(pl(T))?;
        let mode: Vec<place::Mode> = (0..df.height())
            .into_par_iter()
            .with_min_len(1 << 16)
            .map(|i| place::Mode::of(cpumode.get(i)))
            .collect();
        let (comm, comms) = place::interned(&df, T, "comm")?;
        Ok::<_, Error>((df, rec, mode, comm, comms))
    };
    let (samples, placer) = rayon::join(read_samples, || {
        place::Placer::load(ds, numbers.clone(), jopts)
    });
    let ((df, rec, mode, comm, comms), placer) = (samples?, placer?);
    Ok(HostSamples {
        df,
        rec,
        mode,
        comm,
        comms,
        placer,
    })
}

#[allow(clippy::too_many_arguments)]
fn fold_samples(
    ds: &Dataset,
    opts: &Options,
    jopts: &JoinOptions,
    pool: &rayon::ThreadPool,
    recs: &mut Recordings,
    rips: &RipIndex,
    host_stacks: &Stacks,
    guest_stacks: &Stacks,
    samples: HostSamples,
    weight: Weight,
) -> Result<Folded, Error> {
    const T: &str = "samples";
    let HostSamples {
        df,
        rec,
        mode,
        comm,
        comms,
        placer,
    } = samples;
    // Columns are read by row index from the (rechunked) arrays.
    let time = column(&df, T, "time_ns")?.u64().map_err(pl(T))?;
    let period = column(&df, T, "period")?.u64().map_err(pl(T))?;
    let ip = column(&df, T, "ip")?.u64().map_err(pl(T))?;
    let stack_id = column(&df, T, "stack_id")?.u32().map_err(pl(T))?;
    let t = crate::timing::phase("flame: place host samples");
    let tid = column(&df, T, "tid")?.i32().map_err(pl(T))?;
    let placed = pool.install(|| placer.place(&rec, tid, time, &mode));
    drop(t);
    let _t = crate::timing::phase("flame: fold samples");
    let vcpus = placer.vcpus.as_ref();
    let exits = placer.exits.as_ref();
    let guests = placer.guests.as_ref();
    let row = |r: u32| (r != place::NONE).then_some(r as usize);
    // The sample's vCPU thread: (vm_pid, vm, vcpu).
    let vcpu_of = |i: usize| Some(vcpus?.thread(row(placed[i].vcpu)? as u32));
    let exit_of = |i: usize| Some((exits?, row(placed[i].exit)?));
    let guest_of = |i: usize| Some((guests?, row(placed[i].guest)?));

    let selected: Vec<bool> = pool.install(|| {
        (0..df.height())
            .into_par_iter()
            .with_min_len(4096)
            .map(|i| {
                let is_guest = placed[i].placement(mode[i]) == placement::GUEST_MODE;
                let scope_ok = match opts.scope {
                    Scope::All => true,
                    Scope::GuestOnly => is_guest,
                    // Host mode only: not guest mode on a vCPU, nor a guest-mode sample perf
                    // could not place on one (perf script skips those), nor a sample of thread
                    // -1: perf script prints it as `:-1    -1 [001] …`, where
                    // inferno-collapse-perf takes the period for the thread id and the event's
                    // modifiers for its name, and leaves the stack out.
                    Scope::HostOnly => {
                        !is_guest && mode[i] != place::Mode::Guest && tid.get(i) != Some(-1)
                    }
                };
                let vc = vcpu_of(i);
                let vm_ok = opts.vms.is_empty()
                    || vc.is_some_and(|(pid, vm, _)| vm_selected(opts, Some(vm), pid));
                let vcpu_ok =
                    opts.vcpus.is_empty() || vc.is_some_and(|(_, _, v)| opts.vcpus.contains(&v));
                let time_ok = opts.time.is_none_or(|r| r.contains(time.get(i)));
                scope_ok && vm_ok && vcpu_ok && time_ok
            })
            .collect()
    });

    // Exit-time weight: each exit's duration shared among its samples, in sample order (the
    // order ingest writes them in).
    let mut exit_share: Vec<u64> = Vec::new();
    let mut exits_with_samples: HashMap<(u32, u64), ()> = HashMap::new();
    if weight == Weight::ExitTime {
        let mut n_in: HashMap<(u32, u64), u64> = HashMap::new();
        for i in 0..df.height() {
            if let (true, Some((x, r))) = (selected[i], exit_of(i)) {
                *n_in
                    .entry((rec[i], x.exit_idx.get(r).unwrap_or_default()))
                    .or_default() += 1;
            }
        }
        let mut seen: HashMap<(u32, u64), u64> = HashMap::new();
        exit_share = (0..df.height())
            .map(|i| {
                let (true, Some((xs, r))) = (selected[i], exit_of(i)) else {
                    return 0;
                };
                let (x, a) = (
                    xs.exit_idx.get(r).unwrap_or_default(),
                    xs.exit_time.get(r).unwrap_or_default(),
                );
                let Some(b) = xs.entry_time.get(r) else {
                    return 0;
                };
                let n = n_in.get(&(rec[i], x)).copied().unwrap_or(1).max(1);
                let k = seen.entry((rec[i], x)).or_default();
                let d = b.saturating_sub(a);
                let share = d / n + u64::from(*k < d % n);
                *k += 1;
                share
            })
            .collect();
        exits_with_samples = n_in.into_keys().map(|k| (k, ())).collect();
    }

    // Pass 1, per sample (parallel): a small key naming the stack line, weights summed per key.
    // Pass 2, per distinct key: the line's text. Samples outnumber distinct lines by far.
    let host_only = opts.scope == Scope::HostOnly;
    let one = |i: usize, acc: &mut KeyAcc, rep: &mut FlameReport| {
        if !selected[i] {
            return;
        }
        let sid = stack_id.get(i);
        // (canonical id, whether it has frames): all most samples ask of their stack.
        let own = sid.and_then(|s| host_stacks.canon(rec[i], s));
        let own_id = own.map(|(c, _)| c);
        let w = match weight {
            Weight::Samples => 1,
            Weight::Period => period.get(i).unwrap_or(1),
            Weight::ExitTime => exit_share.get(i).copied().unwrap_or(0),
        };
        rep.n_samples += 1;
        let pl = placed[i].placement(mode[i]);
        let other = match pl {
            placement::GUEST_MODE => {
                rep.n_guest_mode += 1;
                false
            }
            placement::IN_EXIT_KERNEL => {
                rep.n_in_exit_kernel += 1;
                false
            }
            placement::IN_EXIT_VMM => {
                rep.n_in_exit_vmm += 1;
                false
            }
            placement::VCPU_OUTSIDE_EXIT => {
                rep.n_vcpu_outside_exit += 1;
                false
            }
            _ => {
                rep.n_other += 1;
                pl == placement::OTHER
            }
        };
        if other || host_only {
            match own {
                Some((stack, true)) => acc.add(
                    LineKey::Plain {
                        rec: rec[i],
                        comm: comm.get(i).copied().unwrap_or(place::NONE),
                        stack,
                    },
                    w,
                ),
                _ => rep.n_no_stack += 1,
            }
            return;
        }
        let own_ref = own_id.map(StackRef::Host);
        // Guest mode: guest frames only; else the exit (if any) and the host stack.
        let (guest, exit, host) = if pl == placement::GUEST_MODE {
            let matched = guest_of(i);
            let candidate = matched
                .and_then(|(gs, r)| gs.stack_id.get(r))
                .and_then(|g| guest_stacks.get(&(rec[i], g)).map(|s| (s.canon, s)));
            let host_ip = ip.get(i);
            let valid = candidate.filter(|(_, g)| {
                (host_ip.is_some() && matched.and_then(|(gs, r)| gs.ip.get(r)) == host_ip)
                    || sid
                        .and_then(|s| host_stacks.get(&(rec[i], s)))
                        .and_then(|o| host_stacks.leaf_symbol(o))
                        .is_some_and(|s| guest_stacks.leaf_symbol(g) == Some(s))
            });
            let chosen = match (valid, matched) {
                (Some((g, _)), _) => {
                    rep.n_guest_matched += 1;
                    Some(StackRef::Guest(g))
                }
                (None, Some(_)) => {
                    rep.n_guest_mismatched += 1;
                    own_ref
                }
                (None, None) => {
                    if !guest_stacks.is_empty() {
                        rep.n_guest_unmatched += 1;
                    }
                    own_ref
                }
            };
            (chosen, None, None)
        } else {
            let exit = exit_of(i)
                .and_then(|(xs, r)| xs.reason_id(r).map(|reason| (xs.guest_rip.get(r), reason)));
            (None, exit, own_id)
        };
        acc.add(
            LineKey::Vm {
                rec: rec[i],
                vcpu: placed[i].vcpu,
                guest,
                exit,
                host,
            },
            w,
        );
    };
    let t_keys = crate::timing::phase("flame: fold samples: keys");
    let (keys, mut report) = pool.install(|| {
        (0..df.height())
            .into_par_iter()
            .with_min_len(4096)
            .fold(
                || (KeyAcc::default(), FlameReport::default()),
                |(mut acc, mut rep), i| {
                    one(i, &mut acc, &mut rep);
                    (acc, rep)
                },
            )
            .reduce(
                || (KeyAcc::default(), FlameReport::default()),
                |(a, mut ra), (b, rb)| {
                    ra.add(&rb);
                    (a.merge(b), ra)
                },
            )
    });
    drop(t_keys);
    let t_lines = crate::timing::phase("flame: fold samples: lines");
    let lines = LineNames {
        comms: &comms,
        host: host_stacks,
        guest: guest_stacks,
        rips,
        vcpus,
        exits,
    };
    // Distinct keys can still make the same text (e.g. a guest stack without frames): lines are
    // sorted and equal neighbours merged, instead of hashing every long line.
    let mut acc: Vec<FoldedStack> = pool.install(|| {
        let keys = keys.into_keys();
        keys.into_par_iter()
            .with_min_len(1024)
            .map(|(k, w)| {
                let (stack, layout) = lines.line(&k);
                FoldedStack {
                    stack,
                    count: w,
                    baseline: None,
                    layout,
                }
            })
            .collect()
    });
    drop(t_lines);
    if weight == Weight::ExitTime {
        // Exits in which no sample fell still count, under their reason alone.
        let exits = join::place_exits(ds, jopts)?;
        const X: &str = "exits";
        let xrec = strs(&exits, X, "recording")?;
        let xidx = u64s(&exits, X, "exit_idx")?;
        let xvm = strs(&exits, X, "vm")?;
        let xpid = i32s(&exits, X, "vm_pid")?;
        let xvcpu = u32s(&exits, X, "vcpu")?;
        let xtime = u64s(&exits, X, "exit_time_ns")?;
        let xdur = u64s(&exits, X, "duration_ns")?;
        let xreason = strs(&exits, X, "reason_name")?;
        let xrip = u64s(&exits, X, "guest_rip")?;
        for i in 0..exits.height() {
            let r = recs.id(xrec[i].unwrap_or_default());
            if !(vm_selected(opts, xvm[i], xpid[i])
                && (opts.vcpus.is_empty() || xvcpu[i].is_some_and(|v| opts.vcpus.contains(&v)))
                && opts.time.is_none_or(|t| t.contains(xtime[i])))
            {
                continue;
            }
            let Some(d) = xdur[i] else {
                report.n_exits_without_duration += 1;
                continue;
            };
            report.n_exits += 1;
            if xidx[i].is_some_and(|x| exits_with_samples.contains_key(&(r, x))) {
                continue;
            }
            let mut line = header(xvm[i], xvcpu[i]);
            let mut layout = StackLayout {
                n_header: 2,
                n_exit: 1,
                ..StackLayout::default()
            };
            if let Some(rip) = xrip[i] {
                line.push(';');
                line.push_str(&rips.name(r, rip));
                layout.n_guest = 1;
            }
            line.push_str(&format!(";[exit {}]", xreason[i].unwrap_or("?")));
            if d > 0 {
                acc.push(FoldedStack {
                    stack: line,
                    count: d,
                    baseline: None,
                    layout,
                });
            }
        }
    }
    if placer.guests.is_some() {
        let _t = crate::timing::phase("flame: place guest samples");
        report.guest_states = pool
            .install(|| placer.guest_state_counts(ds))?
            .into_iter()
            .collect();
    }
    let count_name = match weight {
        Weight::Samples => "samples",
        Weight::Period => "events",
        Weight::ExitTime => "ns",
    };
    report.event = None;
    let _t = crate::timing::phase("flame: fold samples: sort lines");
    Ok(Folded {
        stacks: pool.install(|| sorted_merged(acc)),
        count_name: count_name.to_string(),
        report,
    })
}

#[allow(clippy::too_many_arguments)]
fn fold_exits(
    ds: &Dataset,
    opts: &Options,
    jopts: &JoinOptions,
    pool: &rayon::ThreadPool,
    recs: &mut Recordings,
    rips: &RipIndex,
    guest_stacks: &Stacks,
) -> Result<Folded, Error> {
    let weight = opts.weight.unwrap_or(Weight::ExitTime);
    if weight == Weight::Period {
        return Err(Error::Invalid(
            "exit graphs are weighted by exit-time or samples (exits), not period".into(),
        ));
    }
    if opts.scope != Scope::All {
        return Err(Error::Invalid(
            "--exits shows guest code and exit reasons: drop --guest-only/--host-only".into(),
        ));
    }
    let df = join::place_exits(ds, jopts)?;
    const X: &str = "exits";
    let rec: Vec<u32> = strs(&df, X, "recording")?
        .into_iter()
        .map(|r| recs.id(r.unwrap_or_default()))
        .collect();
    let vm = strs(&df, X, "vm")?;
    let vm_pid = i32s(&df, X, "vm_pid")?;
    let vcpu = u32s(&df, X, "vcpu")?;
    let time = u64s(&df, X, "exit_time_ns")?;
    let dur = u64s(&df, X, "duration_ns")?;
    let reason = strs(&df, X, "reason_name")?;
    let rip = u64s(&df, X, "guest_rip")?;
    let guest_stack = u32s(&df, X, "guest_stack_id")?;
    let guest_ip = u64s(&df, X, "guest_ip")?;
    let one = |i: usize, acc: &mut Acc, rep: &mut FlameReport| {
        if !(vm_selected(opts, vm[i], vm_pid[i])
            && (opts.vcpus.is_empty() || vcpu[i].is_some_and(|v| opts.vcpus.contains(&v)))
            && opts.time.is_none_or(|t| t.contains(time[i])))
        {
            return;
        }
        let w = match weight {
            Weight::ExitTime => match dur[i] {
                Some(d) => d,
                None => {
                    rep.n_exits_without_duration += 1;
                    return;
                }
            },
            _ => 1,
        };
        rep.n_exits += 1;
        let mut line = header(vm[i], vcpu[i]);
        let mut layout = StackLayout {
            n_header: 2,
            n_exit: 1,
            ..StackLayout::default()
        };
        let rip_name = rip[i].map(|r| rips.name(rec[i], r));
        // The guest stack of the guest sample nearest to the exit, when its leaf is the exit's
        // guest_rip (same address, or the same function).
        let g = guest_stack[i]
            .and_then(|g| guest_stacks.get(&(rec[i], g)))
            .filter(|g| {
                rip[i].is_some()
                    && (guest_ip[i] == rip[i] || g.leaf_addr == rip[i] || {
                        let leaf = guest_stacks.leaf_name(g);
                        leaf.is_some() && leaf == rip_name.as_deref()
                    })
            });
        match (g, rip_name) {
            (Some(g), _) if g.n > 0 => {
                rep.n_guest_matched += 1;
                line.push(';');
                guest_stacks.push_folded(g, &mut line);
                layout.n_guest = g.n;
            }
            (_, Some(n)) => {
                rep.n_guest_unmatched += 1;
                line.push(';');
                line.push_str(&n);
                layout.n_guest = 1;
            }
            _ => rep.n_guest_unmatched += 1,
        }
        line.push_str(&format!(";[exit {}]", reason[i].unwrap_or("?")));
        add(acc, line, w, layout);
    };
    let (acc, report) = pool.install(|| {
        (0..df.height())
            .into_par_iter()
            .with_min_len(4096)
            .fold(
                || (Acc::default(), FlameReport::default()),
                |(mut acc, mut rep), i| {
                    one(i, &mut acc, &mut rep);
                    (acc, rep)
                },
            )
            .reduce(|| (Acc::default(), FlameReport::default()), merge)
    });
    Ok(finish(
        acc,
        report,
        if weight == Weight::ExitTime {
            "ns"
        } else {
            "exits"
        },
    ))
}

/// A differential graph: `current` coloured by its change from `baseline` (inferno's
/// `differential`; stacks of either side, the baseline count in [`FoldedStack::baseline`]).
pub fn diff(baseline: &Folded, current: &Folded) -> Result<Folded, Error> {
    let mut before = Vec::new();
    let mut after = Vec::new();
    render_folded(baseline, &mut before)?;
    render_folded(current, &mut after)?;
    let mut out = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        &before[..],
        &after[..],
        &mut out,
    )
    .map_err(|e| Error::Render(format!("differential: {e}")))?;
    let text = String::from_utf8_lossy(&out);
    let layouts: HashMap<&str, StackLayout> = baseline
        .stacks
        .iter()
        .chain(current.stacks.iter())
        .map(|s| (s.stack.as_str(), s.layout))
        .collect();
    let mut stacks = Vec::new();
    for line in text.lines() {
        let mut it = line.rsplitn(3, ' ');
        let (Some(c2), Some(c1), Some(stack)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let (Ok(c1), Ok(c2)) = (c1.parse::<u64>(), c2.parse::<u64>()) else {
            continue;
        };
        let layout = layouts.get(stack).copied().unwrap_or_default();
        stacks.push(FoldedStack {
            stack: stack.to_string(),
            count: c2,
            baseline: Some(c1),
            layout,
        });
    }
    stacks.sort_unstable_by(|a, b| a.stack.as_bytes().cmp(b.stack.as_bytes()));
    Ok(Folded {
        stacks,
        count_name: current.count_name.clone(),
        report: current.report.clone(),
    })
}

/// Writes folded text: `stack count` lines (`stack baseline count` for a differential graph).
pub fn render_folded(folded: &Folded, mut w: impl Write) -> Result<(), Error> {
    let io = |e| Error::Io {
        path: "<output>".into(),
        source: e,
    };
    for s in &folded.stacks {
        match s.baseline {
            Some(b) => writeln!(w, "{} {} {}", s.stack, b, s.count).map_err(io)?,
            None => writeln!(w, "{} {}", s.stack, s.count).map_err(io)?,
        }
    }
    w.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_matches_inferno() {
        assert_eq!(tidy_generic("foo(int, char)"), "foo");
        assert_eq!(
            tidy_generic("net/http.(*Client).Do"),
            "net/http.(*Client).Do"
        );
        assert_eq!(
            tidy_generic("(anonymous namespace)::f(int)"),
            "(anonymous namespace)::f"
        );
        assert_eq!(tidy_generic("a;b"), "a:b");
        assert_eq!(tidy_generic("[sshd]"), "[sshd]");
    }

    #[test]
    fn rip_index_exact_then_range() {
        let mut r = RipIndex::default();
        r.exact.insert((0, 0x1010), "f".into());
        r.starts = vec![(0, 0x1000, "f".into()), (0, 0x2000, "g".into())];
        assert_eq!(r.name(0, 0x1010), "f");
        assert_eq!(r.name(0, 0x2004), "g");
        assert_eq!(r.name(0, 0x10), "[unknown]");
        assert_eq!(r.name(1, 0x2004), "[unknown]");
    }
}
