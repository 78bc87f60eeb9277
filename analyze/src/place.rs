//! The host+guest join of [`crate::join`] as flame graphs and the guest-state report run it:
//! each sample placed by binary searches in the time-sorted events of its own thread or vCPU,
//! in parallel over samples, nothing gathered.
//!
//! Why not polars here: its as-of joins with `by` keys sort and hash every row of both sides
//! (12 M host samples, 9.6 M guest samples) and their output then had to be put back in sample
//! order and gathered into 14 placement columns per sample, which the fold read again. Here the
//! few thousand threads' events are grouped once (already time-sorted, as perf writes them) and
//! each sample costs a galloping search from where the previous sample of its thread stopped.
//! The answers are polars' (`join`'s public functions keep using polars and the tests compare
//! the two): backward takes the last event at or before a time, nearest the closer of the two
//! neighbours, the later one on a tie, the last of equal times.

use std::collections::HashMap;
use std::hash::Hash;

use polars::prelude::*;
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{Error, pl};
use crate::join::{self, JoinOptions, guest_state, placement};

/// HashMaps on the hot paths: foldhash instead of SipHash (no untrusted keys here; outputs are
/// sorted, so iteration order never shows).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// No row.
pub(crate) const NONE: u32 = u32::MAX;

/// Samples placed per parallel task; each task keeps its own search positions.
const CHUNK: usize = 1 << 16;

/// Recording ids → small integers, numbered as [`Dataset::recordings`] lists them.
pub(crate) fn recording_numbers(ds: &Dataset) -> FastMap<String, u32> {
    let mut out = FastMap::default();
    for r in ds.recordings() {
        let n = out.len() as u32;
        out.entry(r.recording.clone()).or_insert(n);
    }
    out
}

/// The rows of a table grouped by a key, each group's (time, row) sorted by time, ties in row
/// order.
pub(crate) struct Timeline<K> {
    groups: FastMap<K, u32>,
    starts: Vec<usize>,
    entries: Vec<(u64, u32)>,
}

impl<K: Copy + Eq + Hash + Send + Sync> Timeline<K> {
    /// Groups rows `0..n` by `key` (`None`: the row belongs to no group). Keys are read in
    /// parallel, a chunk of rows per task grouped on its own (reading the columns is most of
    /// the cost); the chunks' groups are then numbered in order of first appearance.
    pub(crate) fn new(n: usize, key: impl Fn(usize) -> Option<(K, u64)> + Sync) -> Self {
        Self::in_chunks(n, CHUNK, key)
    }

    /// [`Timeline::new`] with `chunk` rows a task.
    fn in_chunks(n: usize, chunk: usize, key: impl Fn(usize) -> Option<(K, u64)> + Sync) -> Self {
        let (keys, parts) = number_rows(n, chunk, key);
        let groups: FastMap<K, u32> = keys.iter().zip(0..).map(|(k, g)| (*k, g)).collect();
        let mut counts = vec![0usize; keys.len()];
        for (codes, _) in &parts {
            for &g in codes {
                if g != NONE {
                    counts[g as usize] += 1;
                }
            }
        }
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut at = 0;
        for c in &counts {
            starts.push(at);
            at += c;
        }
        starts.push(at);
        let mut fill = starts.clone();
        let mut entries = vec![(0u64, 0u32); at];
        for (c, (codes, times)) in parts.iter().enumerate() {
            for (k, (&g, &t)) in codes.iter().zip(times).enumerate() {
                if g == NONE {
                    continue;
                }
                let f = &mut fill[g as usize];
                entries[*f] = (t, (c * chunk + k) as u32);
                *f += 1;
            }
        }
        drop(parts);
        // Perf writes events in time order, so this is a check; rows keep their order on ties.
        let mut rest = entries.as_mut_slice();
        let mut slices = Vec::with_capacity(counts.len());
        for c in &counts {
            let (a, b) = rest.split_at_mut(*c);
            slices.push(a);
            rest = b;
        }
        slices.into_par_iter().for_each(|s| {
            if !s.is_sorted() {
                s.sort_unstable();
            }
        });
        Timeline {
            groups,
            starts,
            entries,
        }
    }

    /// The group of key `k`.
    pub(crate) fn group(&self, k: &K) -> Option<u32> {
        self.groups.get(k).copied()
    }

    /// The number of groups (for [`Timeline::new_hints`]).
    fn n_groups(&self) -> usize {
        self.starts.len() - 1
    }

    /// A search position per group, for one task's searches.
    pub(crate) fn new_hints(&self) -> Vec<usize> {
        vec![0; self.n_groups()]
    }

    fn slice(&self, g: u32) -> &[(u64, u32)] {
        &self.entries[self.starts[g as usize]..self.starts[g as usize + 1]]
    }

    /// The row of group `g`'s last entry at or before `t` (polars' backward as-of).
    pub(crate) fn last_at(&self, g: u32, t: u64, hints: &mut [usize]) -> Option<u32> {
        let s = self.slice(g);
        let p = upper_bound(s, hints[g as usize], t);
        hints[g as usize] = p;
        p.checked_sub(1).map(|i| s[i].1)
    }

    /// The row of group `g`'s entry nearest to `t`, within `tolerance` (polars' nearest as-of:
    /// the later on a tie, the last of equal times).
    pub(crate) fn nearest(
        &self,
        g: u32,
        t: u64,
        tolerance: u64,
        hints: &mut [usize],
    ) -> Option<u32> {
        let s = self.slice(g);
        let p = upper_bound(s, hints[g as usize], t);
        hints[g as usize] = p;
        let lower = p.checked_sub(1);
        let chosen = match (lower, s.get(p)) {
            (Some(lo), _) if s[lo].0 == t => lo,
            (None, None) => return None,
            (Some(lo), None) => lo,
            (lower, Some(&(up_t, _))) => {
                // The last of the entries at the first time after `t`.
                let up = upper_bound(s, p, up_t) - 1;
                match lower {
                    Some(lo) if t - s[lo].0 < up_t - t => lo,
                    _ => up,
                }
            }
        };
        let (v, row) = s[chosen];
        (v.abs_diff(t) <= tolerance).then_some(row)
    }
}

/// The number of entries of `s` at or before `t` (`s.partition_point(|e| e.0 <= t)`), searched
/// from `hint` outwards: samples come in time order, so the answer is usually at or just past
/// the previous one.
fn upper_bound(s: &[(u64, u32)], hint: usize, t: u64) -> usize {
    let n = s.len();
    let h = hint.min(n);
    let (lo, hi) = if h < n && s[h].0 <= t {
        // At least h + 1: gallop forwards.
        let (mut lo, mut step) = (h + 1, 1);
        let mut hi = (lo + step).min(n);
        while hi < n && s[hi - 1].0 <= t {
            lo = hi;
            step *= 2;
            hi = (lo + step).min(n);
        }
        (lo, hi)
    } else {
        // At most h: gallop backwards.
        let (mut hi, mut step) = (h, 1);
        let mut lo = h.saturating_sub(step);
        while lo > 0 && s[lo - 1].0 > t {
            hi = lo;
            step *= 2;
            lo = lo.saturating_sub(step);
        }
        (lo, hi)
    };
    lo + s[lo..hi].partition_point(|e| e.0 <= t)
}

fn col_of<'a>(df: &'a DataFrame, table: &str, name: &str) -> Result<&'a Column, Error> {
    df.column(name).map_err(pl(table))
}

fn u64_col(df: &DataFrame, table: &str, name: &str) -> Result<UInt64Chunked, Error> {
    Ok(col_of(df, table, name)?.u64().map_err(pl(table))?.clone())
}

fn u32_col(df: &DataFrame, table: &str, name: &str) -> Result<UInt32Chunked, Error> {
    Ok(col_of(df, table, name)?.u32().map_err(pl(table))?.clone())
}

fn i32_col(df: &DataFrame, table: &str, name: &str) -> Result<Int32Chunked, Error> {
    Ok(col_of(df, table, name)?.i32().map_err(pl(table))?.clone())
}

/// `table` of every recording through `query`, as one rechunked frame (its columns are read by
/// row) and the recording number of each row. Read file by file, so no row carries the
/// recording's name.
pub(crate) fn read_parts(
    ds: &Dataset,
    table: &str,
    recs: &FastMap<String, u32>,
    query: impl Fn(LazyFrame) -> LazyFrame,
) -> Result<(DataFrame, Vec<u32>), Error> {
    let mut df: Option<DataFrame> = None;
    let mut rec = Vec::new();
    for (r, lf) in ds.scan_parts(table)? {
        let part = query(lf).collect().map_err(pl(table))?;
        let id = recs.get(&r).copied().unwrap_or(NONE);
        rec.resize(rec.len() + part.height(), id);
        df = Some(match df {
            None => part,
            Some(mut d) => {
                d.vstack_mut_owned(part).map_err(pl(table))?;
                d
            }
        });
    }
    let Some(mut df) = df else {
        return Err(Error::MissingTable {
            path: ds.root().to_path_buf(),
            table: table.to_string(),
            hint: None,
        });
    };
    df.rechunk_mut_par();
    Ok((df, rec))
}

/// Interned strings of a column: an index per row, the distinct texts once.
pub(crate) fn interned(
    df: &DataFrame,
    table: &str,
    name: &str,
) -> Result<(Vec<u32>, Vec<String>), Error> {
    let ca = col_of(df, table, name)?.str().map_err(pl(table))?;
    let (names, parts) = number_rows(ca.len(), CHUNK, |i| Some((ca.get(i)?, ())));
    let idx = parts.into_iter().flat_map(|(codes, _)| codes).collect();
    Ok((idx, names.into_iter().map(str::to_string).collect()))
}

/// A chunk of [`number_rows`]: each row's number and value.
type NumberedChunk<X> = (Vec<u32>, Vec<X>);

/// Rows `0..n` numbered by their `key`, in parallel, `chunk` rows a task: the distinct keys
/// in order of first appearance, and for each chunk its rows' numbers (NONE: no key) and
/// values (the default for none). Each task numbers the keys of its rows on its own, its
/// numbers are then made the global ones.
fn number_rows<K, X>(
    n: usize,
    chunk: usize,
    key: impl Fn(usize) -> Option<(K, X)> + Sync,
) -> (Vec<K>, Vec<NumberedChunk<X>>)
where
    K: Copy + Eq + Hash + Send + Sync,
    X: Default + Send,
{
    let mut parts: Vec<(Vec<K>, Vec<u32>, Vec<X>)> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let rows = c * chunk..n.min((c + 1) * chunk);
            let mut ids: FastMap<K, u32> = FastMap::default();
            let mut keys = Vec::new();
            let mut codes = Vec::with_capacity(rows.len());
            let mut values = Vec::with_capacity(rows.len());
            let mut last: Option<(K, u32)> = None;
            for row in rows {
                let Some((k, x)) = key(row) else {
                    codes.push(NONE);
                    values.push(X::default());
                    continue;
                };
                let id = match last {
                    Some((lk, id)) if lk == k => id,
                    _ => {
                        let id = *ids.entry(k).or_insert_with(|| {
                            keys.push(k);
                            keys.len() as u32 - 1
                        });
                        last = Some((k, id));
                        id
                    }
                };
                codes.push(id);
                values.push(x);
            }
            (keys, codes, values)
        })
        .collect();
    let mut global: FastMap<K, u32> = FastMap::default();
    let mut keys = Vec::new();
    let remaps: Vec<Vec<u32>> = parts
        .iter()
        .map(|(local, _, _)| {
            local
                .iter()
                .map(|k| {
                    *global.entry(*k).or_insert_with(|| {
                        keys.push(*k);
                        keys.len() as u32 - 1
                    })
                })
                .collect()
        })
        .collect();
    parts
        .par_iter_mut()
        .zip(&remaps)
        .for_each(|((_, codes, _), remap)| {
            for c in codes.iter_mut().filter(|c| **c != NONE) {
                *c = remap[*c as usize];
            }
        });
    let parts = parts.into_iter().map(|(_, c, x)| (c, x)).collect();
    (keys, parts)
}

/// vCPU threads, as [`join::vcpu_threads`] lists them: one per (recording, tid).
pub(crate) struct Vcpus {
    by_tid: FastMap<(u32, i32), u32>,
    by_vcpu: FastMap<(u32, i32, u32), i32>,
    vm_pid: Vec<Option<i32>>,
    vm: Vec<String>,
    vcpu: Vec<u32>,
}

impl Vcpus {
    /// Thread row `v`: (VMM pid, VM name, vCPU index).
    pub(crate) fn thread(&self, v: u32) -> (Option<i32>, &str, u32) {
        let v = v as usize;
        (self.vm_pid[v], self.vm[v].as_str(), self.vcpu[v])
    }

    fn load(ds: &Dataset, recs: &FastMap<String, u32>) -> Result<Option<Vcpus>, Error> {
        const T: &str = "vcpus";
        if !ds.has(T) {
            return Ok(None);
        }
        let df = join::vcpu_threads(ds)?.collect().map_err(pl(T))?;
        if df.height() == 0 {
            return Ok(None);
        }
        let vm_pid = i32_col(&df, T, "vm_pid")?;
        let vcpu = u32_col(&df, T, "vcpu")?;
        let tid = i32_col(&df, T, "vcpu_tid")?;
        let vm = col_of(&df, T, "vm")?.str().map_err(pl(T))?;
        let names = col_of(&df, T, "recording")?.str().map_err(pl(T))?;
        let mut out = Vcpus {
            by_tid: FastMap::default(),
            by_vcpu: FastMap::default(),
            vm_pid: Vec::new(),
            vm: Vec::new(),
            vcpu: Vec::new(),
        };
        for i in 0..df.height() {
            let (Some(t), Some(v)) = (tid.get(i), vcpu.get(i)) else {
                continue;
            };
            let rec = names
                .get(i)
                .and_then(|r| recs.get(r).copied())
                .unwrap_or(NONE);
            let n = out.vcpu.len() as u32;
            out.by_tid.insert((rec, t), n);
            if let Some(p) = vm_pid.get(i) {
                // Rows come by thread id: the first thread of a vCPU answers for it.
                out.by_vcpu.entry((rec, p, v)).or_insert(t);
            }
            out.vm_pid.push(vm_pid.get(i));
            out.vm.push(vm.get(i).unwrap_or_default().to_string());
            out.vcpu.push(v);
        }
        Ok(Some(out))
    }
}

/// Exits with a time, by (recording, thread).
pub(crate) struct Exits {
    timeline: Timeline<(u32, i32)>,
    /// `exit_idx`.
    pub exit_idx: UInt64Chunked,
    /// `exit_time_ns`.
    pub exit_time: UInt64Chunked,
    /// `entry_time_ns`.
    pub entry_time: UInt64Chunked,
    /// The reason's name, an index into `reasons` (NONE: none).
    reason: Vec<u32>,
    /// Distinct reason names.
    reasons: Vec<String>,
    /// `guest_rip`.
    pub guest_rip: UInt64Chunked,
    /// Open to the end of the recording when no entry closes it (a kvm_exit, not a PVM point).
    open_ended: BooleanChunked,
}

impl Exits {
    fn load(ds: &Dataset, recs: &FastMap<String, u32>) -> Result<Option<Exits>, Error> {
        const T: &str = "exits";
        if !ds.has(T) {
            return Ok(None);
        }
        let reason = join::reason_name(ds)?;
        let (df, rec) = read_parts(ds, T, recs, |lf| {
            lf.filter(col("exit_time_ns").is_not_null()).select([
                col("tid"),
                col("exit_idx"),
                col("exit_time_ns"),
                col("entry_time_ns"),
                reason.clone().alias("reason_name"),
                col("guest_rip"),
                col("source").eq(lit("kvm_exit")).alias("open_ended"),
            ])
        })?;
        let tid = i32_col(&df, T, "tid")?;
        let exit_time = u64_col(&df, T, "exit_time_ns")?;
        let timeline = Timeline::new(df.height(), |i| {
            Some(((rec[i], tid.get(i)?), exit_time.get(i).unwrap_or_default()))
        });
        let (reason, reasons) = interned(&df, T, "reason_name")?;
        Ok(Some(Exits {
            timeline,
            exit_idx: u64_col(&df, T, "exit_idx")?,
            exit_time,
            entry_time: u64_col(&df, T, "entry_time_ns")?,
            reason,
            reasons,
            guest_rip: u64_col(&df, T, "guest_rip")?,
            open_ended: col_of(&df, T, "open_ended")?.bool().map_err(pl(T))?.clone(),
        }))
    }

    /// The exit of thread `key` that `t` lies in: the last one started at or before `t`, if it
    /// was not over by then.
    fn containing(&self, key: (u32, i32), t: u64, hints: &mut [usize]) -> u32 {
        let Some(g) = self.timeline.group(&key) else {
            return NONE;
        };
        match self.timeline.last_at(g, t, hints) {
            Some(r) if self.contains(r as usize, t) => r,
            _ => NONE,
        }
    }

    fn contains(&self, r: usize, t: u64) -> bool {
        match self.entry_time.get(r) {
            Some(e) => t < e,
            None => self.open_ended.get(r).unwrap_or(false),
        }
    }

    /// The reason of exit row `r`, as an id for [`Exits::reason_name`].
    pub(crate) fn reason_id(&self, r: usize) -> Option<u32> {
        self.reason.get(r).copied().filter(|&i| i != NONE)
    }

    /// The name of reason `id`.
    pub(crate) fn reason_name(&self, id: u32) -> &str {
        self.reasons.get(id as usize).map_or("", String::as_str)
    }
}

/// Guest-side samples, those with a time (of the joined event) by (recording, VM, vCPU).
pub(crate) struct GuestSamples {
    timeline: Timeline<(u32, i32, u32)>,
    rec: Vec<u32>,
    vm_pid: Int32Chunked,
    vcpu: UInt32Chunked,
    time: UInt64Chunked,
    /// `stack_id`.
    pub stack_id: UInt32Chunked,
    /// `ip`.
    pub ip: UInt64Chunked,
}

impl GuestSamples {
    fn load(
        ds: &Dataset,
        recs: &FastMap<String, u32>,
        event: Option<&str>,
    ) -> Result<Option<GuestSamples>, Error> {
        const T: &str = "guest_samples";
        if !ds.has(T) {
            return Ok(None);
        }
        // Host samples match guest samples of the same event when the guest recorded it, else
        // every guest sample.
        let same_event = match event {
            Some(ev) if join::guest_has_event(ds, ev)? => col("event").eq(lit(ev)),
            _ => lit(true),
        };
        let (df, rec) = read_parts(ds, T, recs, |lf| {
            lf.select([
                col("vm_pid").cast(DataType::Int32),
                col("vcpu").cast(DataType::UInt32),
                col("time_ns"),
                col("stack_id"),
                col("ip"),
                same_event.clone().alias("same_event"),
            ])
        })?;
        let vm_pid = i32_col(&df, T, "vm_pid")?;
        let vcpu = u32_col(&df, T, "vcpu")?;
        let time = u64_col(&df, T, "time_ns")?;
        let same = col_of(&df, T, "same_event")?.bool().map_err(pl(T))?;
        let timeline = Timeline::new(df.height(), |i| {
            let key = (rec[i], vm_pid.get(i)?, vcpu.get(i)?);
            same.get(i)?.then_some((key, time.get(i)?))
        });
        Ok(Some(GuestSamples {
            timeline,
            rec,
            vm_pid,
            vcpu,
            time,
            stack_id: u32_col(&df, T, "stack_id")?,
            ip: u64_col(&df, T, "ip")?,
        }))
    }
}

/// A host sample's cpumode, as placement needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// guest_kernel or guest_user.
    Guest,
    /// host_user (in an exit: the VMM handling it).
    HostUser,
    /// Anything else.
    Other,
}

impl Mode {
    /// Of a `cpumode` value.
    pub(crate) fn of(cpumode: Option<&str>) -> Mode {
        match cpumode {
            Some("guest_kernel" | "guest_user") => Mode::Guest,
            Some("host_user") => Mode::HostUser,
            _ => Mode::Other,
        }
    }
}

/// Where one host sample was: rows of [`Placer`]'s tables, [`NONE`] for none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    /// The vCPU thread ([`Vcpus`] row).
    pub vcpu: u32,
    /// The exit it fell in ([`Exits`] row).
    pub exit: u32,
    /// The nearest guest-side sample of its vCPU ([`GuestSamples`] row), in guest mode.
    pub guest: u32,
}

impl Placed {
    /// Not on a vCPU thread.
    const OTHER: Placed = Placed {
        vcpu: NONE,
        exit: NONE,
        guest: NONE,
    };

    /// The [`placement`] name.
    pub(crate) fn placement(&self, mode: Mode) -> &'static str {
        if self.vcpu == NONE {
            placement::OTHER
        } else if mode == Mode::Guest {
            placement::GUEST_MODE
        } else if self.exit != NONE && mode == Mode::HostUser {
            placement::IN_EXIT_VMM
        } else if self.exit != NONE {
            placement::IN_EXIT_KERNEL
        } else {
            placement::VCPU_OUTSIDE_EXIT
        }
    }
}

/// What samples are placed against: vCPU threads, exits, guest-side samples; each table read
/// once for both host samples and guest samples.
pub(crate) struct Placer {
    recs: FastMap<String, u32>,
    /// vCPU threads (none: every host sample is `other`).
    pub vcpus: Option<Vcpus>,
    /// Exits.
    pub exits: Option<Exits>,
    /// Guest-side samples.
    pub guests: Option<GuestSamples>,
    tolerance: u64,
}

impl Placer {
    /// Loads what [`join::place_host_samples`] joins, recordings numbered by `recs`.
    pub(crate) fn load(
        ds: &Dataset,
        recs: FastMap<String, u32>,
        opts: &JoinOptions,
    ) -> Result<Placer, Error> {
        let vcpus = Vcpus::load(ds, &recs)?;
        let (exits, guests) = rayon::join(
            || match vcpus {
                Some(_) => Exits::load(ds, &recs),
                None => Ok(None),
            },
            || GuestSamples::load(ds, &recs, opts.event.as_deref()),
        );
        let (exits, guests) = (exits?, guests?);
        Ok(Placer {
            recs,
            vcpus,
            exits,
            guests,
            tolerance: opts.match_tolerance_ns,
        })
    }

    /// Places each host sample (rows of `rec`, `tid`, `time`, `mode`), in parallel.
    pub(crate) fn place(
        &self,
        rec: &[u32],
        tid: &Int32Chunked,
        time: &UInt64Chunked,
        mode: &[Mode],
    ) -> Vec<Placed> {
        let mut out = vec![Placed::OTHER; rec.len()];
        let Some(vcpus) = &self.vcpus else {
            return out;
        };
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                let mut exit_hints = self.exits.as_ref().map(|x| x.timeline.new_hints());
                let mut guest_hints = self.guests.as_ref().map(|g| g.timeline.new_hints());
                for (k, p) in chunk.iter_mut().enumerate() {
                    let i = c * CHUNK + k;
                    let Some(t) = tid.get(i) else { continue };
                    let Some(&v) = vcpus.by_tid.get(&(rec[i], t)) else {
                        continue;
                    };
                    p.vcpu = v;
                    // Null times cannot be placed; key 0 matches nothing (as in `join`).
                    let at = time.get(i).unwrap_or(0);
                    if mode[i] != Mode::Guest {
                        if let (Some(x), Some(h)) = (&self.exits, &mut exit_hints) {
                            p.exit = x.containing((rec[i], t), at, h);
                        }
                    } else if let (Some(g), Some(h), Some(pid)) =
                        (&self.guests, &mut guest_hints, vcpus.vm_pid[v as usize])
                    {
                        let key = (rec[i], pid, vcpus.vcpu[v as usize]);
                        if let Some(grp) = g.timeline.group(&key) {
                            p.guest = g
                                .timeline
                                .nearest(grp, at, self.tolerance, h)
                                .unwrap_or(NONE);
                        }
                    }
                }
            });
        out
    }

    /// The number of guest-side samples in each [`guest_state`], as
    /// [`join::place_guest_samples`] places them (empty without guest samples).
    pub(crate) fn guest_state_counts(&self, ds: &Dataset) -> Result<Vec<(String, u64)>, Error> {
        let Some(gs) = &self.guests else {
            return Ok(Vec::new());
        };
        let switches = match &self.vcpus {
            Some(_) => Switches::load(ds, &self.recs)?,
            None => None,
        };
        const STATES: [&str; 4] = [
            guest_state::RUNNING,
            guest_state::EXITED,
            guest_state::SCHEDULED_OUT,
            guest_state::UNKNOWN,
        ];
        let counts = (0..gs.rec.len())
            .into_par_iter()
            .chunks(CHUNK)
            .map(|rows| {
                let mut n = [0u64; 4];
                let mut exit_hints = self.exits.as_ref().map(|x| x.timeline.new_hints());
                let mut switch_hints = switches.as_ref().map(|s| s.timeline.new_hints());
                for i in rows {
                    let rec = gs.rec[i];
                    let tid = match (&self.vcpus, gs.vm_pid.get(i), gs.vcpu.get(i)) {
                        (Some(vs), Some(p), Some(v)) => vs.by_vcpu.get(&(rec, p, v)).copied(),
                        _ => None,
                    };
                    let Some(tid) = tid else {
                        n[3] += 1;
                        continue;
                    };
                    let at = gs.time.get(i).unwrap_or(0);
                    let out = match (&switches, &mut switch_hints) {
                        (Some(s), Some(h)) => s.out_at((rec, tid), at, h),
                        _ => false,
                    };
                    let exited = match (&self.exits, &mut exit_hints) {
                        (Some(x), Some(h)) => x.containing((rec, tid), at, h) != NONE,
                        _ => false,
                    };
                    n[if out {
                        2
                    } else if exited {
                        1
                    } else {
                        0
                    }] += 1;
                }
                n
            })
            .reduce(|| [0u64; 4], |a, b| std::array::from_fn(|k| a[k] + b[k]));
        let mut out: Vec<(String, u64)> = STATES
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.to_string(), n))
            .collect();
        out.sort();
        Ok(out)
    }
}

/// [`Placer::guest_state_counts`] of a dataset.
pub(crate) fn guest_state_counts(ds: &Dataset) -> Result<Vec<(String, u64)>, Error> {
    Placer::load(ds, recording_numbers(ds), &JoinOptions::default())?.guest_state_counts(ds)
}

/// Host scheduler switches of each (recording, thread): in or out.
struct Switches {
    timeline: Timeline<(u32, i32)>,
    n_out: usize,
}

impl Switches {
    fn load(ds: &Dataset, recs: &FastMap<String, u32>) -> Result<Option<Switches>, Error> {
        const T: &str = "sched__sched_switch";
        if !ds.has(T) {
            return Ok(None);
        }
        let (df, rec) = read_parts(ds, T, recs, |lf| {
            lf.filter(col("time_ns").is_not_null()).select([
                col("prev_pid").cast(DataType::Int32),
                col("next_pid").cast(DataType::Int32),
                col("time_ns"),
            ])
        })?;
        let prev = i32_col(&df, T, "prev_pid")?;
        let next = i32_col(&df, T, "next_pid")?;
        let time = u64_col(&df, T, "time_ns")?;
        let n = df.height();
        // Each switch is an "out" of prev_pid and an "in" of next_pid: rows 0..n the outs,
        // n..2n the ins (so an out and an in at one time resolve as in `join`).
        let at = |i: usize, pid: Option<i32>| Some(((rec[i], pid?), time.get(i)?));
        let timeline = Timeline::new(2 * n, |i| match i.checked_sub(n) {
            None => at(i, prev.get(i)),
            Some(i) => at(i, next.get(i)),
        });
        Ok(Some(Switches { timeline, n_out: n }))
    }

    /// Whether thread `key` was switched out at `t` (its last switch at or before `t` was out).
    fn out_at(&self, key: (u32, i32), t: u64, hints: &mut [usize]) -> bool {
        self.timeline
            .group(&key)
            .and_then(|g| self.timeline.last_at(g, t, hints))
            .is_some_and(|r| (r as usize) < self.n_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (time, row) of `v` sorted by time, rows in order on ties.
    fn sorted(v: &[u64]) -> Vec<(u64, u32)> {
        let mut s: Vec<(u64, u32)> = v.iter().enumerate().map(|(i, t)| (*t, i as u32)).collect();
        s.sort_unstable();
        s
    }

    /// polars' nearest as-of, written as its definition: among the entries closest to `t`, the
    /// last (the later time wins a tie, the last row of equal times).
    fn nearest_by_definition(s: &[(u64, u32)], t: u64, tol: u64) -> Option<u32> {
        let best = s.iter().map(|e| e.0.abs_diff(t)).min()?;
        let exact = s.iter().rposition(|e| e.0 == t);
        let i = exact.or_else(|| {
            let later = s.iter().rposition(|e| e.0 > t && e.0 - t == best);
            // Of the earlier entries at `best`, the last.
            later.or_else(|| s.iter().rposition(|e| e.0 < t && t - e.0 == best))
        })?;
        (s[i].0.abs_diff(t) <= tol).then_some(s[i].1)
    }

    proptest! {
        #[test]
        fn upper_bound_from_any_hint_is_the_partition_point(
            v in proptest::collection::vec(0u64..50, 0..40),
            hint in 0usize..50,
            t in 0u64..60,
        ) {
            let s = sorted(&v);
            prop_assert_eq!(upper_bound(&s, hint, t), s.partition_point(|e| e.0 <= t));
        }

        #[test]
        fn nearest_and_last_at_answer_as_their_definitions(
            rows in proptest::collection::vec((0u8..4, 0u64..50), 0..40),
            queries in proptest::collection::vec(0u64..60, 1..20),
            tol in 0u64..20,
            chunk in 1usize..8,
        ) {
            // Key 3 is no group's: those rows are left out.
            let key = |i: usize| {
                let (k, t) = rows[i];
                (k < 3).then_some((k, t))
            };
            let line = Timeline::in_chunks(rows.len(), chunk, key);
            let mut hints = line.new_hints();
            for k in 0..4u8 {
                // The group's rows, numbered as in `rows`.
                let mine: Vec<(u64, u32)> = {
                    let mut s: Vec<(u64, u32)> = (0..rows.len())
                        .filter_map(|i| key(i).filter(|e| e.0 == k).map(|e| (e.1, i as u32)))
                        .collect();
                    s.sort_unstable();
                    s
                };
                for &t in &queries {
                    let Some(g) = line.group(&k) else {
                        prop_assert!(mine.is_empty());
                        continue;
                    };
                    let want_last = mine.iter().rposition(|e| e.0 <= t).map(|i| mine[i].1);
                    prop_assert_eq!(line.last_at(g, t, &mut hints), want_last);
                    let want = nearest_by_definition(&mine, t, tol);
                    prop_assert_eq!(line.nearest(g, t, tol, &mut hints), want);
                }
            }
        }
    }
}
