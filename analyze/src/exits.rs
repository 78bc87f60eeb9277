//! `kvmtrace exits`: VM-exit statistics from the `exits` table (a strict superset of `perf kvm
//! stat report`): count, share, total, min, p50, p90, p99, max, mean ± stddev per reason, vCPU,
//! VM, guest symbol, port, MSR or gpa, with filters, log2 histograms and a split of the exit time.
//!
//! Polars does the relational part (filters, the `vms`/`vcpus` joins, the group-by); the
//! percentiles and histograms are computed here from each group's sorted durations, exactly as
//! the generator's ground truth defines them (`sorted[floor(q * (n - 1))]`).
//!
//! [`perf_compat`](crate::exits_perf) replays the raw tracepoints the way `perf kvm stat report`
//! does; [`render`](crate::exits_render) turns either report into bytes.

use std::collections::BTreeMap;

use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::dataset::Dataset;
use crate::error::{Error, pl};
use crate::exits_stats::{Durations, Summary, summarize};
use crate::exits_symbols::GuestKallsyms;
use crate::place::FastMap;

/// A grouping dimension of `--by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum By {
    /// Exit reason name as the kernel prints it (`reason_name`).
    Reason,
    /// vCPU within its VM (`vm`, `vcpu`): vCPU 0 of two VMs are two rows.
    Vcpu,
    /// VM (`vm`, named `<comm>:<pid>`).
    Vm,
    /// Guest function at `guest_rip` (`guest_symbol`).
    GuestSymbol,
    /// I/O port of a kvm_pio in the exit (`port`, `port_dir`, `port_size`).
    Port,
    /// MSR of a kvm_msr in the exit (`msr`, `msr_dir`).
    Msr,
    /// Guest physical address of a kvm_mmio in the exit (`gpa`, `mmio_type`, `mmio_len`).
    Gpa,
}

impl std::str::FromStr for By {
    type Err = Error;
    fn from_str(s: &str) -> Result<By, Error> {
        Ok(match s {
            "reason" => By::Reason,
            "vcpu" => By::Vcpu,
            "vm" => By::Vm,
            "guest-symbol" | "guest_symbol" | "symbol" => By::GuestSymbol,
            "port" => By::Port,
            "msr" => By::Msr,
            "gpa" | "mmio" => By::Gpa,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown --by key {other:?}: use reason, vcpu, vm, guest-symbol, port, msr or gpa"
                )));
            }
        })
    }
}

/// Row order of the report (descending; ties by key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub enum SortKey {
    /// Number of exits.
    #[default]
    Count,
    /// Total time.
    Time,
    /// Longest exit.
    Max,
    /// 99th percentile.
    P99,
}

impl std::str::FromStr for SortKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<SortKey, Error> {
        Ok(match s {
            "count" | "sample" => SortKey::Count,
            "time" | "total" => SortKey::Time,
            "max" => SortKey::Max,
            "p99" => SortKey::P99,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown sort key {other:?}: use count, time, max or p99"
                )));
            }
        })
    }
}

/// A time window on the host perf clock, in ns; either end open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    /// First ns included.
    pub start_ns: Option<u64>,
    /// Last ns included.
    pub end_ns: Option<u64>,
}

impl TimeRange {
    /// Parses perf's `--time` syntax: `START,END` in seconds with decimals, either side optional
    /// (`4321.1,4321.2`, `4321.1,`, `,4321.2`).
    pub fn parse(s: &str) -> Result<TimeRange, Error> {
        let bad = || {
            Error::Invalid(format!(
                "--time {s:?}: expected START,END in seconds (perf's syntax), e.g. 4321.1,4321.25"
            ))
        };
        let (a, b) = s.split_once(',').ok_or_else(bad)?;
        let sec = |x: &str| -> Result<Option<u64>, Error> {
            let x = x.trim();
            if x.is_empty() {
                return Ok(None);
            }
            // Whole seconds and the fraction separately: no float rounding of the ns value.
            let (whole, frac) = x.split_once('.').unwrap_or((x, ""));
            if frac.len() > 9
                || !whole
                    .chars()
                    .chain(frac.chars())
                    .all(|c| c.is_ascii_digit())
                || whole.is_empty() && frac.is_empty()
            {
                return Err(bad());
            }
            let w: u64 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| bad())?
            };
            let f: u64 = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<9}").parse().map_err(|_| bad())?
            };
            Ok(Some(w.saturating_mul(1_000_000_000).saturating_add(f)))
        };
        let r = TimeRange {
            start_ns: sec(a)?,
            end_ns: sec(b)?,
        };
        if let (Some(x), Some(y)) = (r.start_ns, r.end_ns)
            && x > y
        {
            return Err(bad());
        }
        Ok(r)
    }
}

/// Options of [`run`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Grouping dimensions, in output order (empty: by reason).
    pub by: Vec<By>,
    /// Row order.
    pub sort: SortKey,
    /// Only this VM: its VMM pid, its name (`<comm>:<pid>`) or its comm.
    pub vm: Option<String>,
    /// Only this vCPU index.
    pub vcpu: Option<u32>,
    /// Only exits that start in this window.
    pub time: TimeRange,
    /// Only this recording (default: all of the dataset).
    pub recording: Option<String>,
    /// Compute log2 latency histograms per row.
    pub histogram: bool,
    /// Compute the split of exit time (kernel, VMM round trip, scheduled out, halted).
    pub split: bool,
    /// Guest symbols for [`By::GuestSymbol`].
    pub guest_kallsyms: Option<GuestKallsyms>,
    /// Count every `kvm_emulate_insn` (instructions KVM emulated, PVM) instead of exits.
    pub emulated: bool,
    /// Worker threads for the per-group work (0: all cores). Output is identical at any count.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            by: vec![By::Reason],
            sort: SortKey::Count,
            vm: None,
            vcpu: None,
            time: TimeRange::default(),
            recording: None,
            histogram: false,
            split: false,
            guest_kallsyms: None,
            emulated: false,
            threads: 0,
        }
    }
}

/// One value of a grouping key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum KeyValue {
    /// Missing (e.g. an exit without a known vCPU).
    Null,
    /// A number (vCPU, size, length).
    Int(i64),
    /// A name or a hex address.
    Str(String),
}

impl std::fmt::Display for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyValue::Null => f.write_str("-"),
            KeyValue::Int(v) => write!(f, "{v}"),
            KeyValue::Str(s) => f.write_str(s),
        }
    }
}

/// One log2 latency bucket: durations in `[lo_ns, hi_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Lower bound (inclusive), ns.
    pub lo_ns: u64,
    /// Upper bound (exclusive), ns.
    pub hi_ns: u64,
    /// Exits in the bucket.
    pub count: u64,
}

/// Where the exit time went (sums over the row's exits, ns). `None`: the recording cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Split {
    /// In the host kernel (what is left of the exit time).
    pub kernel_ns: Option<u64>,
    /// From kvm_userspace_exit to kvm_entry: the VMM round trip.
    pub vmm_ns: Option<u64>,
    /// The vCPU thread scheduled out (sched_switch), outside halts.
    pub sched_out_ns: Option<u64>,
    /// Halted (kvm_vcpu_wakeup ns: polling or blocked).
    pub halted_ns: Option<u64>,
}

/// One row of the report: a group of exits and its statistics. Times are `None` when the
/// recording has no durations (PVM).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitStats {
    /// Key values, one per [`ExitReport::key_names`].
    pub keys: Vec<KeyValue>,
    /// Exits.
    pub count: u64,
    /// Share of all exits, %.
    pub count_pct: f64,
    /// Sum of durations, ns.
    pub total_ns: Option<u64>,
    /// Share of all exit time, %.
    pub time_pct: Option<f64>,
    /// Shortest, ns.
    pub min_ns: Option<u64>,
    /// Median (`sorted[floor(0.5 (n-1))]`), ns.
    pub p50_ns: Option<u64>,
    /// 90th percentile, ns.
    pub p90_ns: Option<u64>,
    /// 99th percentile, ns.
    pub p99_ns: Option<u64>,
    /// Longest, ns.
    pub max_ns: Option<u64>,
    /// Mean, ns.
    pub mean_ns: Option<f64>,
    /// Sample standard deviation (n - 1), ns.
    pub stddev_ns: Option<f64>,
    /// log2 buckets (with `histogram`).
    pub histogram: Vec<Bucket>,
    /// Time split (with `split`).
    pub split: Option<Split>,
}

/// Exits per detection source (`exits.source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceCount {
    /// `kvm_exit`, `kvm_userspace_exit`, `kvm_msr` or `kvm_emulate_insn`.
    pub source: String,
    /// Rows counted.
    pub n_exits: u64,
}

/// The result of [`run`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitReport {
    /// Names of the key columns (`reason_name`, `vm`, `vcpu`, `guest_symbol`, `port`, …).
    pub key_names: Vec<String>,
    /// The rows, sorted.
    pub rows: Vec<ExitStats>,
    /// All selected exits together (keys empty).
    pub total: ExitStats,
    /// Where the exits came from.
    pub sources: Vec<SourceCount>,
    /// Whether durations are known (a kvm_exit/kvm_entry recording).
    pub durations_known: bool,
    /// Exits still open at the end of the recording (left out of the statistics).
    pub n_open_at_end: u64,
    /// What the output cannot know or had to leave out, one sentence each.
    pub notes: Vec<String>,
}

const EXITS: &str = "exits";

/// One key column: its output name, the expression that makes it, how to print it.
struct KeyCol {
    name: &'static str,
    expr: Expr,
    hex: bool,
}

fn key_cols(by: &[By]) -> Vec<KeyCol> {
    let mut out: Vec<KeyCol> = Vec::new();
    let mut push = |name: &'static str, expr: Expr, hex: bool| {
        if !out.iter().any(|k| k.name == name) {
            out.push(KeyCol {
                name,
                expr: expr.alias(name),
                hex,
            });
        }
    };
    for b in by {
        match b {
            By::Reason => push("reason_name", col("reason_name"), false),
            By::Vm => push("vm", col("vm"), false),
            By::Vcpu => {
                push("vm", col("vm"), false);
                push("vcpu", col("vcpu").cast(DataType::Int64), false);
            }
            By::GuestSymbol => push("guest_symbol", col("guest_symbol"), false),
            By::Port => {
                push("port", col("pio_port"), true);
                push(
                    "port_dir",
                    when(col("pio_write")).then(lit("out")).otherwise(lit("in")),
                    false,
                );
                push("port_size", col("pio_size").cast(DataType::Int64), false);
            }
            By::Msr => {
                push("msr", col("msr_index"), true);
                push(
                    "msr_dir",
                    when(col("msr_write"))
                        .then(lit("write"))
                        .otherwise(lit("read")),
                    false,
                );
            }
            By::Gpa => {
                push("gpa", col("mmio_gpa"), true);
                push("mmio_type", col("mmio_type"), false);
                push("mmio_len", col("mmio_len").cast(DataType::Int64), false);
            }
        }
    }
    out
}

/// The table the unified row set is made of: `exits`, or with `emulated` kvm_emulate_insn;
/// an error naming it (and how to get it) when the dataset has none.
fn base_table(ds: &Dataset, opts: &Options) -> Result<&'static str, Error> {
    let table = if opts.emulated {
        "kvm__kvm_emulate_insn"
    } else {
        EXITS
    };
    if !ds.has(table) {
        return Err(Error::MissingTable {
            path: ds.root().to_path_buf(),
            table: table.into(),
            hint: Some(if opts.emulated {
                "record with -e kvm:kvm_emulate_insn".into()
            } else {
                "re-ingest with a kvmtrace that builds the KVM model".into()
            }),
        });
    }
    Ok(table)
}

/// Rows per batch of the statistics' main pass: a few row groups (256 k rows each).
const BATCH_ROWS: usize = 1 << 20;

/// The unified row set of a frame of [`base_table`]: its rows, or every kvm_emulate_insn with
/// `emulated`, with the VM's name (`vm`, `vm_comm`) joined in when `with_vm` (a string-keyed
/// join over every row: the largest cost of a per-reason breakdown, so only when a key or
/// filter needs it).
fn base_frame(
    ds: &Dataset,
    table: LazyFrame,
    opts: &Options,
    with_vm: bool,
) -> Result<LazyFrame, Error> {
    let null_u64 = || lit(Null {}).cast(DataType::UInt64);
    let lf = if opts.emulated {
        let vcpus = ds
            .scan("vcpus")?
            .select([col("host"), col("recording"), col("tid"), col("vcpu")])
            .unique_stable(None, UniqueKeepStrategy::First);
        table
            .select([
                col("host"),
                col("recording"),
                col("pid").alias("vm_pid"),
                col("tid"),
                col("time_ns").alias("exit_time_ns"),
                col("rip").cast(DataType::UInt64).alias("guest_rip"),
            ])
            .join(
                vcpus,
                [col("host"), col("recording"), col("tid")],
                [col("host"), col("recording"), col("tid")],
                JoinArgs::new(JoinType::Left),
            )
            .with_columns([
                lit("kvm_emulate_insn").alias("source"),
                lit("emulate_insn").alias("reason_name"),
                null_u64().alias("entry_time_ns"),
                null_u64().alias("duration_ns"),
                null_u64().alias("pio_port"),
                null_u64().alias("pio_size"),
                lit(Null {}).cast(DataType::Boolean).alias("pio_write"),
                null_u64().alias("mmio_gpa"),
                null_u64().alias("mmio_len"),
                lit(Null {}).cast(DataType::String).alias("mmio_type"),
                null_u64().alias("msr_index"),
                lit(Null {}).cast(DataType::Boolean).alias("msr_write"),
                null_u64().alias("userspace_ns"),
                null_u64().alias("sched_out_ns"),
                null_u64().alias("wakeup_ns"),
            ])
    } else {
        // A code without a name gets `code N` in `run`, only when there is one: building
        // that string for every row would cost more than the whole breakdown.
        table
    };
    if !with_vm {
        return Ok(lf.with_columns([
            lit(Null {}).cast(DataType::String).alias("vm"),
            lit(Null {}).cast(DataType::String).alias("vm_comm"),
        ]));
    }
    let vms = ds.scan("vms")?.select([
        col("host"),
        col("recording"),
        col("vm_pid"),
        col("name").alias("vm"),
        col("comm").alias("vm_comm"),
    ]);
    Ok(lf
        .join(
            vms,
            [col("host"), col("recording"), col("vm_pid")],
            [col("host"), col("recording"), col("vm_pid")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([col("vm").fill_null(lit(":") + col("vm_pid").cast(DataType::String))]))
}

fn filters(lf: LazyFrame, opts: &Options) -> LazyFrame {
    let mut lf = lf;
    if let Some(r) = &opts.recording {
        lf = lf.filter(col("recording").eq(lit(r.as_str())));
    }
    if let Some(vm) = &opts.vm {
        let by_name = col("vm")
            .eq(lit(vm.as_str()))
            .or(col("vm_comm").eq(lit(vm.as_str())));
        lf = match vm.parse::<i32>() {
            Ok(pid) => lf.filter(col("vm_pid").eq(lit(pid)).or(by_name)),
            Err(_) => lf.filter(by_name),
        };
    }
    if let Some(v) = opts.vcpu {
        lf = lf.filter(col("vcpu").cast(DataType::Int64).eq(lit(i64::from(v))));
    }
    if let Some(s) = opts.time.start_ns {
        lf = lf.filter(col("exit_time_ns").gt_eq(lit(s)));
    }
    if let Some(e) = opts.time.end_ns {
        lf = lf.filter(col("exit_time_ns").lt_eq(lit(e)));
    }
    lf
}

fn any_u64(v: AnyValue<'_>) -> Option<u64> {
    match v {
        AnyValue::UInt64(x) => Some(x),
        AnyValue::UInt32(x) => Some(x.into()),
        AnyValue::Int64(x) => u64::try_from(x).ok(),
        AnyValue::Int32(x) => u64::try_from(x).ok(),
        AnyValue::Float64(x) => Some(x as u64),
        _ => None,
    }
}

fn key_value(v: AnyValue<'_>, hex: bool) -> KeyValue {
    match v {
        AnyValue::Null => KeyValue::Null,
        AnyValue::String(s) => KeyValue::Str(s.to_string()),
        AnyValue::StringOwned(s) => KeyValue::Str(s.to_string()),
        AnyValue::Boolean(b) => KeyValue::Str(b.to_string()),
        other => match (any_u64(other.clone()), hex) {
            (Some(x), true) => KeyValue::Str(format!("{x:#x}")),
            (Some(x), false) => KeyValue::Int(x as i64),
            (None, _) => match other {
                AnyValue::Int64(x) => KeyValue::Int(x),
                AnyValue::Int32(x) => KeyValue::Int(x.into()),
                o => KeyValue::Str(o.to_string()),
            },
        },
    }
}

/// One group's exits, summed exactly (integers), so that no statistic depends on the order in
/// which rows or chunks arrive.
#[derive(Default)]
struct Acc {
    keys: Vec<KeyValue>,
    count: u64,
    /// Known durations.
    durations: Durations,
    sum: u128,
    sum_sq: u128,
    /// Sums of userspace_ns, sched_out_ns, wakeup_ns (with `split`).
    sums: [Option<u64>; 3],
}

impl Acc {
    fn add(&mut self, other: &Acc) {
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        for (a, b) in self.sums.iter_mut().zip(other.sums) {
            *a = match (*a, b) {
                (Some(x), Some(y)) => Some(x + y),
                (x, y) => x.or(y),
            };
        }
    }
}

/// polars' (arrow) arrays of a chunk: polars re-exports no array type by name.
type U64Array = <UInt64Type as PolarsDataType>::Array;
type BoolArray = <BooleanType as PolarsDataType>::Array;

/// The one array of a column of a chunk's slice (`DataFrame::slice` of an aligned chunk).
fn u64_array<'a>(df: &'a DataFrame, name: &str) -> Result<&'a U64Array, Error> {
    let ca = df
        .column(name)
        .map_err(pl(EXITS))?
        .as_materialized_series()
        .u64()
        .map_err(pl(EXITS))?;
    one_chunk(ca.downcast_iter())
}

fn bool_array<'a>(df: &'a DataFrame, name: &str) -> Result<&'a BoolArray, Error> {
    let ca = df
        .column(name)
        .map_err(pl(EXITS))?
        .as_materialized_series()
        .bool()
        .map_err(pl(EXITS))?;
    one_chunk(ca.downcast_iter())
}

fn one_chunk<'a, A: 'a>(mut arrays: impl Iterator<Item = &'a A>) -> Result<&'a A, Error> {
    match (arrays.next(), arrays.next()) {
        (Some(a), None) => Ok(a),
        _ => Err(Error::Invalid(
            "exits: a row chunk's columns are not aligned".into(),
        )),
    }
}

/// The value at `i` unless null.
#[inline]
fn u64_at(a: &U64Array, i: usize) -> Option<u64> {
    let v = a.values().get(i).copied()?;
    a.validity().is_none_or(|m| m.get_bit(i)).then_some(v)
}

/// The value at `i` (null: false).
#[inline]
fn bool_at(a: &BoolArray, i: usize) -> bool {
    a.values().get(i).unwrap_or(false) && a.validity().is_none_or(|m| m.get_bit(i))
}

/// One code per row for the values of a key column, and the value of each code.
///
/// Strings are the common key (reason names, VM names, sources): a column read from a
/// dictionary-encoded Parquet page repeats the same view for the same value, so each distinct
/// view is looked up as a string once per chunk, every other row costs one integer hash.
fn codes(c: &Column, hex: bool) -> Result<(Vec<u32>, Vec<KeyValue>), Error> {
    let s = c.as_materialized_series();
    if !matches!(s.dtype(), DataType::String) && !s.dtype().is_integer() {
        let s = s.cast(&DataType::String).map_err(pl(EXITS))?;
        return codes(&Column::from(s), hex);
    }
    let mut out: Vec<u32> = Vec::with_capacity(s.len());
    let mut values: Vec<KeyValue> = Vec::new();
    let mut new_code = |v: KeyValue| -> u32 {
        values.push(v);
        (values.len() - 1) as u32
    };
    match s.dtype() {
        DataType::String => {
            let ca = s.str().map_err(pl(EXITS))?;
            let mut by_str: FastMap<Option<&str>, u32> = FastMap::default();
            let mut null_code: Option<u32> = None;
            for (arr, validity) in ca.downcast_iter().zip(ca.iter_validities()) {
                let mut by_view: FastMap<u128, u32> = FastMap::default();
                // Runs of one value (sources, sorted keys) cost one comparison a row, the few
                // distinct views of a dictionary page a direct-mapped cache probe before the map.
                let mut last: Option<(u128, u32)> = None;
                let mut cache = [(0u128, u32::MAX); 64];
                let slot = |key: u128| {
                    (((key as u64) ^ ((key >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        >> 58) as usize
                };
                for (i, view) in arr.views().iter().enumerate() {
                    if !validity.is_none_or(|m| m.get_bit(i)) {
                        let code = *null_code.get_or_insert_with(|| {
                            *by_str
                                .entry(None)
                                .or_insert_with(|| new_code(KeyValue::Null))
                        });
                        out.push(code);
                        continue;
                    }
                    let key = view.as_u128();
                    let code = match (last, cache.get(slot(key))) {
                        (Some((k, code)), _) if k == key => code,
                        (_, Some(&(k, code))) if k == key && code != u32::MAX => code,
                        _ => {
                            let code = match by_view.get(&key) {
                                Some(&code) => code,
                                None => {
                                    let v = arr.value(i);
                                    let code = *by_str
                                        .entry(Some(v))
                                        .or_insert_with(|| new_code(KeyValue::Str(v.into())));
                                    by_view.insert(key, code);
                                    code
                                }
                            };
                            if let Some(c) = cache.get_mut(slot(key)) {
                                *c = (key, code);
                            }
                            code
                        }
                    };
                    last = Some((key, code));
                    out.push(code);
                }
            }
        }
        DataType::UInt64 => {
            let mut by: FastMap<Option<u64>, u32> = FastMap::default();
            for v in s.u64().map_err(pl(EXITS))?.iter() {
                let code = *by.entry(v).or_insert_with(|| {
                    new_code(v.map_or(KeyValue::Null, |v| key_value(AnyValue::UInt64(v), hex)))
                });
                out.push(code);
            }
        }
        dt if dt.is_integer() => {
            let s = s.cast(&DataType::Int64).map_err(pl(EXITS))?;
            let mut by: FastMap<Option<i64>, u32> = FastMap::default();
            for v in s.i64().map_err(pl(EXITS))?.iter() {
                let code = *by.entry(v).or_insert_with(|| {
                    new_code(v.map_or(KeyValue::Null, |v| key_value(AnyValue::Int64(v), hex)))
                });
                out.push(code);
            }
        }
        _ => {}
    }
    Ok((out, values))
}

/// One group id per row for the key columns of `df` (all rows one group without keys), and each
/// group's key values.
fn group_ids(df: &DataFrame, keys: &[KeyCol]) -> Result<(Vec<u32>, Vec<Vec<KeyValue>>), Error> {
    let mut gid: Vec<u32> = vec![0; df.height()];
    let mut groups: Vec<Vec<KeyValue>> = vec![Vec::new()];
    for (n, k) in keys.iter().enumerate() {
        let (codes, values) = codes(df.column(k.name).map_err(pl(EXITS))?, k.hex)?;
        if n == 0 {
            // The first key's codes are the groups (both numbered by first appearance).
            gid = codes;
            groups = values.into_iter().map(|v| vec![v]).collect();
            continue;
        }
        // (group so far, this key's code) → the new group.
        let mut next: FastMap<(u32, u32), u32> = FastMap::default();
        let mut next_groups: Vec<Vec<KeyValue>> = Vec::new();
        for (g, c) in gid.iter_mut().zip(codes) {
            *g = *next.entry((*g, c)).or_insert_with(|| {
                let mut kv = groups.get(*g as usize).cloned().unwrap_or_default();
                kv.push(values.get(c as usize).cloned().unwrap_or(KeyValue::Null));
                next_groups.push(kv);
                (next_groups.len() - 1) as u32
            });
        }
        groups = next_groups;
    }
    if df.height() == 0 && !keys.is_empty() {
        groups.clear();
    }
    Ok((gid, groups))
}

/// What one pass over the exits found.
struct Pass {
    rows: Vec<ExitStats>,
    total: ExitStats,
    /// Rows per `exits.source`, before `required` (sorted by source).
    sources: Vec<SourceCount>,
    /// kvm_exit rows without an entry: still open at the end of the recording, left out.
    n_open_at_end: u64,
}

/// One row chunk's share: its groups (key values) with their accumulators, rows per source,
/// kvm_exits without a duration.
struct ChunkPass {
    accs: Vec<Acc>,
    sources: Vec<(KeyValue, u64)>,
    /// kvm_exits without a duration, left for [`aggregate`] to tell open from unordered.
    pending: u64,
    rows: u64,
}

/// Groups and accumulates the rows of `part` (one aligned row chunk of the selected columns).
///
/// `resolving`: the rows are kvm_exits without a duration but with an entry (see [`aggregate`]):
/// all counted, none counted again per source.
fn chunk_pass(
    part: &DataFrame,
    keys: &[KeyCol],
    split: bool,
    resolving: bool,
) -> Result<ChunkPass, Error> {
    if part.height() == 0 {
        // (An empty slice may hold no array at all.)
        return Ok(ChunkPass {
            accs: Vec::new(),
            sources: Vec::new(),
            pending: 0,
            rows: 0,
        });
    }
    let (gid, group_keys) = group_ids(part, keys)?;
    let (source, source_names) = codes(part.column("_source").map_err(pl(EXITS))?, false)?;
    let kvm_exit = source_names
        .iter()
        .position(|v| *v == KeyValue::Str("kvm_exit".into()))
        .map(|i| i as u32);
    let dur = u64_array(part, "_d")?;
    let req = if part.column("_required").is_ok() {
        Some(bool_array(part, "_required")?)
    } else {
        None
    };
    let parts: Vec<&U64Array> = if split {
        SPLIT_COLS
            .iter()
            .map(|c| u64_array(part, &format!("_{c}")))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let rows = part.height();
    // Each group's piece allocated once at its size (growing them was a tenth of the run: the
    // copies and the fresh pages the kernel zeroes).
    let mut sizes = vec![0usize; group_keys.len()];
    for &g in &gid {
        if let Some(n) = sizes.get_mut(g as usize) {
            *n += 1;
        }
    }
    let mut accs: Vec<Acc> = group_keys
        .into_iter()
        .zip(sizes)
        .map(|(keys, n)| Acc {
            keys,
            durations: Durations::with_piece(n),
            ..Acc::default()
        })
        .collect();
    let mut per_source = vec![0u64; source_names.len()];
    let mut pending = 0u64;
    for (i, (&src, &g)) in source.iter().zip(&gid).enumerate().take(rows) {
        let d = u64_at(dur, i);
        if !resolving {
            if let Some(n) = per_source.get_mut(src as usize) {
                *n += 1;
            }
            if d.is_none() && Some(src) == kvm_exit {
                pending += 1;
                continue;
            }
        }
        if req.is_some_and(|r| !bool_at(r, i)) {
            continue;
        }
        let Some(a) = accs.get_mut(g as usize) else {
            continue;
        };
        a.count += 1;
        if let Some(d) = d {
            a.durations.push(d);
            a.sum += u128::from(d);
            a.sum_sq += u128::from(d) * u128::from(d);
        }
        for (s, c) in a.sums.iter_mut().zip(&parts) {
            if let Some(v) = u64_at(c, i) {
                *s = Some(s.unwrap_or(0) + v);
            }
        }
    }
    Ok(ChunkPass {
        accs,
        sources: source_names.into_iter().zip(per_source).collect(),
        pending,
        rows: rows as u64,
    })
}

/// The columns `--split` sums.
const SPLIT_COLS: [&str; 3] = ["userspace_ns", "sched_out_ns", "wakeup_ns"];

/// [`chunk_pass`]es merged in order: groups and sources by value.
#[derive(Default)]
struct Merged {
    accs: Vec<Acc>,
    at: FastMap<Vec<KeyValue>, usize>,
    per_source: BTreeMap<String, u64>,
}

impl Merged {
    /// Reads `lfs` one at a time and merges their chunks. Returns the pending rows (main pass)
    /// or the rows read (`resolving`).
    fn batches(
        &mut self,
        lfs: &[LazyFrame],
        sel: &[Expr],
        keys: &[KeyCol],
        split: bool,
        resolving: bool,
        pool: &rayon::ThreadPool,
    ) -> Result<u64, Error> {
        let mut n = 0;
        for lf in lfs {
            let mut df = lf.clone().select(sel).collect().map_err(pl(EXITS))?;
            // Every column chunked alike (usually already so: one chunk per row group read).
            df.align_chunks_par();
            let lens: Vec<usize> = df
                .column("_d")
                .map_err(pl(EXITS))?
                .as_materialized_series()
                .chunk_lengths()
                .collect();
            let starts: Vec<usize> = lens
                .iter()
                .scan(0, |at, &n| {
                    let s = *at;
                    *at += n;
                    Some(s)
                })
                .collect();
            let chunks: Vec<ChunkPass> = pool.install(|| {
                starts
                    .par_iter()
                    .zip(&lens)
                    .map(|(&start, &len)| {
                        chunk_pass(&df.slice(start as i64, len), keys, split, resolving)
                    })
                    .collect::<Result<_, _>>()
            })?;
            drop(df);
            for c in chunks {
                self.add(c.accs);
                for (name, k) in c.sources {
                    let name = match name {
                        KeyValue::Str(s) => s,
                        other => other.to_string(),
                    };
                    *self.per_source.entry(name).or_default() += k;
                }
                n += if resolving { c.rows } else { c.pending };
            }
        }
        Ok(n)
    }

    fn add(&mut self, accs: Vec<Acc>) {
        for mut a in accs {
            if a.count == 0 {
                continue;
            }
            match self.at.get(&a.keys) {
                Some(&i) => {
                    if let Some(m) = self.accs.get_mut(i) {
                        m.add(&a);
                        m.durations.append(std::mem::take(&mut a.durations));
                    }
                }
                None => {
                    self.at.insert(a.keys.clone(), self.accs.len());
                    self.accs.push(a);
                }
            }
        }
    }
}

/// The rows `exits` aggregates: in batches for the main pass, and whole for the query of the few
/// rows the main pass cannot place (see [`aggregate`]). The same rows, the same columns.
struct Frames {
    batches: Vec<LazyFrame>,
    whole: LazyFrame,
}

impl Frames {
    fn map(self, f: impl Fn(LazyFrame) -> LazyFrame) -> Frames {
        Frames {
            batches: self.batches.into_iter().map(&f).collect(),
            whole: f(self.whole),
        }
    }
}

/// Aggregates `frames` by `keys` (none: one total row) into statistics per group and over all,
/// counting rows per source on the way. Rows still open at the end (a kvm_exit without entry)
/// and rows where `required` is false are left out of the statistics.
///
/// polars reads the columns of one batch at a time; the grouping and the statistics are done
/// here, in parallel over the batch's row chunks ([`chunk_pass`]), merged in order (groups in
/// order of first appearance): counts and exact integer sums (mean and standard deviation from
/// them, independent of the order rows arrive in), percentiles by histogram and selection
/// ([`summarize`]). Only the known durations stay in memory: 10 M exits in 235 MB (RSS), not
/// 690 MB with every column read at once.
///
/// A kvm_exit without a duration is open when it has no entry either, else its entry came
/// before it (clock disorder): an exit of unknown duration. Telling them apart needs
/// `entry_time_ns`, whose decoding cost a third of the run; the main pass leaves such rows
/// aside and one filtered query reads the entries of just those (Parquet statistics skip every
/// row group without a null duration).
fn aggregate(
    frames: &Frames,
    keys: &[KeyCol],
    required: Option<Expr>,
    opts: &Options,
    split_avail: &Split,
) -> Result<Pass, Error> {
    let t = crate::timing::phase("exits: read and group");
    let mut sel: Vec<Expr> = keys.iter().map(|k| k.expr.clone()).collect();
    sel.push(col("source").alias("_source"));
    sel.push(col("duration_ns").cast(DataType::UInt64).alias("_d"));
    if opts.split {
        for c in SPLIT_COLS {
            sel.push(col(c).cast(DataType::UInt64).alias(format!("_{c}")));
        }
    }
    if let Some(r) = &required {
        sel.push(r.clone().alias("_required"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| Error::Invalid(format!("thread pool: {e}")))?;
    let mut m = Merged::default();
    let pending = m.batches(&frames.batches, &sel, keys, opts.split, false, &pool)?;
    let n_open_at_end = if pending > 0 {
        let unordered = frames.whole.clone().filter(
            col("source")
                .eq(lit("kvm_exit"))
                .and(col("duration_ns").is_null())
                .and(col("entry_time_ns").is_not_null()),
        );
        let resolved = m.batches(&[unordered], &sel, keys, opts.split, true, &pool)?;
        pending.saturating_sub(resolved)
    } else {
        0
    };
    let Merged {
        accs, per_source, ..
    } = m;
    drop(t);
    let _t = crate::timing::phase("exits: statistics");
    let mut all = Acc::default();
    for a in &accs {
        all.add(a);
    }
    let (summaries, all_summary) = pool.install(|| {
        let parts: Vec<&Durations> = accs.iter().map(|a| &a.durations).collect();
        summarize(&parts, &[0.5, 0.9, 0.99])
    });
    let build = |a: &Acc, n: u64, sm: Summary| -> ExitStats {
        let n = u128::from(n);
        let known = n > 0;
        let total = u64::try_from(a.sum).unwrap_or(u64::MAX);
        let mean = known.then(|| a.sum as f64 / n as f64);
        // n Σd² - (Σd)² is exact in integers; the sample variance is that / (n (n - 1)).
        let std = (n > 1).then(|| {
            let num = (n * a.sum_sq).saturating_sub(a.sum * a.sum);
            (num as f64 / (n * (n - 1)) as f64).sqrt()
        });
        let split = (opts.split && known).then(|| {
            let vmm = split_avail.vmm_ns.map(|_| a.sums[0].unwrap_or(0));
            let halted = split_avail.halted_ns.map(|_| a.sums[2].unwrap_or(0));
            // Blocked halts are scheduled out too: count that time once, as halted.
            let sched = split_avail
                .sched_out_ns
                .map(|_| a.sums[1].unwrap_or(0).saturating_sub(halted.unwrap_or(0)));
            let kernel = total
                .saturating_sub(vmm.unwrap_or(0))
                .saturating_sub(sched.unwrap_or(0))
                .saturating_sub(halted.unwrap_or(0));
            Split {
                kernel_ns: Some(kernel),
                vmm_ns: vmm,
                sched_out_ns: sched,
                halted_ns: halted,
            }
        });
        let histogram = if opts.histogram {
            sm.log2
                .iter()
                .map(|&(k, count)| {
                    let (lo_ns, hi_ns) = if k == 0 {
                        (0, 1)
                    } else {
                        (1u64 << (k - 1), (1u64 << (k - 1)).saturating_mul(2))
                    };
                    Bucket {
                        lo_ns,
                        hi_ns,
                        count,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let p = |i: usize| sm.percentiles.get(i).copied().flatten();
        ExitStats {
            keys: a.keys.clone(),
            count: a.count,
            count_pct: 0.0,
            total_ns: known.then_some(total),
            time_pct: None,
            min_ns: sm.min,
            p50_ns: p(0),
            p90_ns: p(1),
            p99_ns: p(2),
            max_ns: sm.max,
            mean_ns: mean,
            stddev_ns: if known { std.or(Some(0.0)) } else { None },
            histogram,
            split,
        }
    };
    let n_all: u64 = accs.iter().map(|a| a.durations.len()).sum();
    let rows: Vec<ExitStats> = accs
        .iter()
        .zip(summaries)
        .map(|(a, sm)| build(a, a.durations.len(), sm))
        .collect();
    let total = build(&all, n_all, all_summary);
    let sources: Vec<SourceCount> = per_source
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(source, n_exits)| SourceCount { source, n_exits })
        .collect();
    Ok(Pass {
        rows,
        total,
        sources,
        n_open_at_end,
    })
}

/// The table of guest symbols resolved at ingest (docs/schema.md).
const EXIT_SYMBOLS: &str = "exit_symbols";

/// Adds the `guest_symbol` column: the guest function at `guest_rip`, from an explicit
/// `--guest-kallsyms` (it overrides), else from the dataset's `exit_symbols` (resolved at ingest
/// through the VM's guest symbols); an unresolved rip is shown as hex, an exit without a rip as
/// `[no rip]`. Returns the frame and the notes saying which source named the rows.
fn guest_symbols(
    ds: &Dataset,
    lf: LazyFrame,
    opts: &Options,
) -> Result<(LazyFrame, Vec<String>), Error> {
    const T: &str = EXIT_SYMBOLS;
    // The key: (host, recording, vm_pid, guest_rip); a row without a pid keys as -1.
    let key_names = ["host", "recording", "_gs_pid", "guest_rip"];
    let keys = || key_names.map(col);
    let lf = lf.with_columns([
        col("vm_pid")
            .cast(DataType::Int32)
            .fill_null(lit(-1i32))
            .alias("_gs_pid"),
        col("guest_rip").cast(DataType::UInt64),
    ]);
    let mut distinct = lf
        .clone()
        .select(keys())
        .filter(col("guest_rip").is_not_null())
        .unique_stable(None, UniqueKeepStrategy::First);
    let from_dataset = opts.guest_kallsyms.is_none() && ds.has(T);
    if from_dataset {
        let syms = ds.scan(T)?.select([
            col("host"),
            col("recording"),
            col("vm_pid").cast(DataType::Int32).alias("_gs_pid"),
            col("guest_rip").cast(DataType::UInt64),
            col("symbol"),
        ]);
        distinct = distinct.join(syms, keys(), keys(), JoinArgs::new(JoinType::Left));
    } else {
        distinct = distinct.with_columns([lit(Null {}).cast(DataType::String).alias("symbol")]);
    }
    let df = distinct.collect().map_err(pl(T))?;
    let strs = |name: &str| -> Result<StringChunked, Error> {
        Ok(df
            .column(name)
            .map_err(pl(T))?
            .str()
            .map_err(pl(T))?
            .clone())
    };
    let (hosts, recs, syms) = (strs("host")?, strs("recording")?, strs("symbol")?);
    let pids = df
        .column("_gs_pid")
        .map_err(pl(T))?
        .i32()
        .map_err(pl(T))?
        .clone();
    let rips = df
        .column("guest_rip")
        .map_err(pl(T))?
        .u64()
        .map_err(pl(T))?
        .clone();
    let mut unresolved = 0usize;
    let mut names: Vec<String> = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let rip = rips.get(i).unwrap_or(0);
        let name = match &opts.guest_kallsyms {
            Some(k) => k.lookup(rip).map(str::to_string),
            None => syms.get(i).map(str::to_string),
        };
        names.push(name.unwrap_or_else(|| {
            unresolved += 1;
            format!("{rip:#x}")
        }));
    }
    let map = DataFrame::new_infer_height(vec![
        Column::new("host".into(), hosts),
        Column::new("recording".into(), recs),
        Column::new("_gs_pid".into(), pids),
        Column::new("guest_rip".into(), rips),
        Column::new("guest_symbol".into(), names),
    ])
    .map_err(pl(T))?;
    let n = df.height();
    let mut notes = Vec::new();
    match (&opts.guest_kallsyms, ds.has(T)) {
        (Some(_), true) => notes.push(
            "guest symbols from --guest-kallsyms (it overrides the guest symbols resolved at ingest, exit_symbols)"
                .into(),
        ),
        (Some(_), false) => notes.push("guest symbols from --guest-kallsyms".into()),
        (None, true) if unresolved == n && n > 0 => notes.push(
            "no guest symbols: none were given at ingest (--guest-symbols VM=BUNDLE, --guestkallsyms) nor here (--guest-kallsyms); guest code shown as raw guest_rip"
                .into(),
        ),
        (None, true) => notes.push(
            "guest symbols resolved at ingest through the VM's guest symbols (exit_symbols)"
                .into(),
        ),
        (None, false) => notes.push(
            "no guest symbols: the dataset has no exit_symbols (re-ingest with --guest-symbols VM=BUNDLE or --guestkallsyms) and no --guest-kallsyms was given; guest code shown as raw guest_rip"
                .into(),
        ),
    }
    if unresolved > 0 && unresolved < n {
        notes.push(format!(
            "{unresolved} of {n} distinct guest rips have no guest symbol (guest user space, or no symbols for that VM): shown as hex"
        ));
    }
    let lf = lf
        .join(map.lazy(), keys(), keys(), JoinArgs::new(JoinType::Left))
        .with_columns([col("guest_symbol").fill_null(lit("[no rip]"))]);
    Ok((lf, notes))
}

/// Computes the exit statistics of `ds`.
pub fn run(ds: &Dataset, opts: &Options) -> Result<ExitReport, Error> {
    let by: Vec<By> = if opts.by.is_empty() {
        vec![By::Reason]
    } else {
        opts.by.clone()
    };
    let with_vm = opts.vm.is_some() || by.iter().any(|b| matches!(b, By::Vm | By::Vcpu));
    // Guest symbols name each distinct (recording, VM, rip) once over all rows: one frame.
    // Otherwise every step is row by row, so the statistics stream over batches.
    let by_symbol = by.contains(&By::GuestSymbol);
    let table = base_table(ds, opts)?;
    let whole = filters(base_frame(ds, ds.scan(table)?, opts, with_vm)?, opts);
    let mut symbol_notes = Vec::new();
    let mut frames = if by_symbol {
        let (lf, notes) = guest_symbols(ds, whole, opts)?;
        symbol_notes = notes;
        Frames {
            batches: vec![lf.clone()],
            whole: lf,
        }
    } else {
        Frames {
            batches: ds
                .scan_batches(table, BATCH_ROWS)?
                .into_iter()
                .map(|lf| Ok(filters(base_frame(ds, lf, opts, with_vm)?, opts)))
                .collect::<Result<_, Error>>()?,
            whole,
        }
    };
    // Port, MSR and gpa rows only exist for exits that carry one.
    let mut required: Option<Expr> = None;
    let mut only_notes = Vec::new();
    for (b, c, what) in [
        (By::Port, "pio_port", "kvm_pio"),
        (By::Msr, "msr_index", "kvm_msr"),
        (By::Gpa, "mmio_gpa", "kvm_mmio"),
    ] {
        if by.contains(&b) {
            let has = col(c).is_not_null();
            required = Some(match required {
                Some(r) => r.and(has),
                None => has,
            });
            only_notes.push(format!("only exits with a {what} event are counted"));
        }
    }
    let split_avail = Split {
        kernel_ns: Some(0),
        vmm_ns: ds.has("kvm__kvm_userspace_exit").then_some(0),
        sched_out_ns: ds.has("sched__sched_switch").then_some(0),
        halted_ns: ds.has("kvm__kvm_vcpu_wakeup").then_some(0),
    };

    let keys = key_cols(&by);
    let mut pass = aggregate(&frames, &keys, required.clone(), opts, &split_avail)?;
    let reason_at = keys.iter().position(|k| k.name == "reason_name");
    if let Some(at) = reason_at
        && pass
            .rows
            .iter()
            .any(|r| r.keys.get(at).is_some_and(|k| *k == KeyValue::Null))
    {
        // A code without a name keeps its number (made only when one occurs: a string per
        // row would cost more than the whole breakdown).
        let named = col("reason_name")
            .fill_null(lit("code ") + col("reason").cast(DataType::String).fill_null(lit("?")));
        frames = frames.map(|lf| lf.with_columns([named.clone()]));
        pass = aggregate(&frames, &keys, required, opts, &split_avail)?;
    }
    let Pass {
        mut rows,
        mut total,
        sources,
        n_open_at_end,
    } = pass;

    // Notes: the sources, exits left out, then what the keys and --split could not know.
    let mut notes = Vec::new();
    let durations_known = sources.iter().any(|s| s.source == "kvm_exit");
    let pvm: Vec<&str> = sources
        .iter()
        .filter(|s| s.source != "kvm_exit")
        .map(|s| s.source.as_str())
        .collect();
    if !pvm.is_empty() {
        if opts.emulated {
            notes.push("rows are kvm:kvm_emulate_insn events (instructions KVM emulated), not exits; they have no duration".into());
        } else {
            notes.push(format!(
                "exits built from {} (kvm_exit/kvm_entry never fired: software virtualisation such as PVM): counts are exact; durations, time shares and percentiles cannot be known without an entry event",
                pvm.join(" and ")
            ));
        }
    }
    if sources.is_empty()
        && ds
            .scan(table)?
            .limit(1)
            .collect()
            .map_err(pl(table))?
            .height()
            == 0
    {
        notes.push(if opts.emulated {
            "the recording holds no kvm:kvm_emulate_insn event".into()
        } else {
            "the recording holds no exit: none of the events exits are built from (kvm:kvm_exit with kvm:kvm_entry; without them kvm:kvm_userspace_exit and kvm:kvm_msr) was recorded; `perf kvm stat record -a` or `perf record -a -e 'kvm:*'` records them".into()
        });
    }
    if n_open_at_end > 0 {
        notes.push(format!(
            "{n_open_at_end} exit(s) still open at the end of the recording are left out"
        ));
    }
    if by.contains(&By::GuestSymbol) {
        notes.extend(symbol_notes);
        if !durations_known && !opts.emulated {
            notes.push(
                "guest_rip of a PVM exit is the rip of the last kvm_emulate_insn before it".into(),
            );
        }
    }
    notes.extend(only_notes);
    if opts.split {
        let mut missing = Vec::new();
        if split_avail.vmm_ns.is_none() {
            missing.push("VMM round trip (no kvm:kvm_userspace_exit)");
        }
        if split_avail.sched_out_ns.is_none() {
            missing.push("scheduled out (no sched:sched_switch)");
        }
        if split_avail.halted_ns.is_none() {
            missing.push("halted (no kvm:kvm_vcpu_wakeup)");
        }
        if !missing.is_empty() {
            notes.push(format!(
                "split: not recorded, counted as kernel time: {}",
                missing.join(", ")
            ));
        }
        if !durations_known {
            notes.push("split: needs exit durations; none here".into());
        }
    }
    if total.count == 0 {
        rows.clear();
    }
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    let (tc, tt) = (total.count, total.total_ns);
    for r in rows.iter_mut().chain(std::iter::once(&mut total)) {
        r.count_pct = pct(r.count, tc);
        r.time_pct = match (r.total_ns, tt) {
            (Some(a), Some(b)) => Some(pct(a, b)),
            _ => None,
        };
    }
    let metric = |r: &ExitStats| -> u64 {
        match opts.sort {
            SortKey::Count => r.count,
            SortKey::Time => r.total_ns.unwrap_or(0),
            SortKey::Max => r.max_ns.unwrap_or(0),
            SortKey::P99 => r.p99_ns.unwrap_or(0),
        }
    };
    rows.sort_by(|a, b| {
        metric(b)
            .cmp(&metric(a))
            .then_with(|| b.count.cmp(&a.count))
            .then_with(|| a.keys.cmp(&b.keys))
    });
    Ok(ExitReport {
        key_names: keys.iter().map(|k| k.name.to_string()).collect(),
        rows,
        total,
        sources,
        durations_known,
        n_open_at_end,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_kvm_exit_without_entry_is_open() {
        // A kvm_exit whose entry came before it (clock disorder: entry known, duration null)
        // is an exit of unknown duration, not open; a PVM row has neither and is not open.
        let df = df!(
            "reason_name" => ["HLT", "HLT", "HLT", "CPUID", "CPUID"],
            "source" => ["kvm_exit", "kvm_exit", "kvm_userspace_exit", "kvm_exit", "kvm_exit"],
            "entry_time_ns" => [Some(90u64), None, None, Some(105), None],
            "duration_ns" => [None, None, None, Some(5u64), None],
        )
        .expect("frame");
        // In batches of one and two rows, and whole: the same answer.
        for rows in [1, 2, 5] {
            let batches = (0..df.height())
                .step_by(rows)
                .map(|at| df.slice(at as i64, rows).lazy())
                .collect();
            let frames = Frames {
                batches,
                whole: df.clone().lazy(),
            };
            let opts = Options::default();
            let pass = aggregate(
                &frames,
                &key_cols(&[By::Reason]),
                None,
                &opts,
                &Split::default(),
            )
            .expect("pass");
            assert_eq!(pass.n_open_at_end, 2, "batches of {rows}");
            let counts: Vec<(Vec<KeyValue>, u64, Option<u64>)> = pass
                .rows
                .iter()
                .map(|r| (r.keys.clone(), r.count, r.total_ns))
                .collect();
            assert_eq!(
                counts,
                vec![
                    (vec![KeyValue::Str("HLT".into())], 2, None),
                    (vec![KeyValue::Str("CPUID".into())], 1, Some(5)),
                ],
                "batches of {rows}"
            );
            assert_eq!(pass.total.count, 3);
            let sources: Vec<(String, u64)> = pass
                .sources
                .iter()
                .map(|s| (s.source.clone(), s.n_exits))
                .collect();
            assert_eq!(
                sources,
                vec![("kvm_exit".into(), 4), ("kvm_userspace_exit".into(), 1)]
            );
        }
    }

    #[test]
    fn no_exits_is_an_empty_breakdown() {
        let df = df!(
            "reason_name" => Vec::<String>::new(),
            "source" => Vec::<String>::new(),
            "entry_time_ns" => Vec::<u64>::new(),
            "duration_ns" => Vec::<u64>::new(),
        )
        .expect("frame");
        let frames = Frames {
            batches: vec![df.clone().lazy(), df.clone().lazy()],
            whole: df.lazy(),
        };
        let pass = aggregate(
            &frames,
            &key_cols(&[By::Reason]),
            None,
            &Options::default(),
            &Split::default(),
        )
        .expect("pass");
        assert!(pass.rows.is_empty());
        assert_eq!((pass.total.count, pass.n_open_at_end), (0, 0));
        assert!(pass.sources.is_empty());
    }

    #[test]
    fn time_range_parses_perf_syntax() {
        let r = TimeRange::parse("4321.1,4321.25").unwrap();
        assert_eq!(
            r,
            TimeRange {
                start_ns: Some(4_321_100_000_000),
                end_ns: Some(4_321_250_000_000)
            }
        );
        assert_eq!(
            TimeRange::parse(",5").unwrap(),
            TimeRange {
                start_ns: None,
                end_ns: Some(5_000_000_000)
            }
        );
        assert_eq!(
            TimeRange::parse("5,").unwrap(),
            TimeRange {
                start_ns: Some(5_000_000_000),
                end_ns: None
            }
        );
        assert!(TimeRange::parse("5").is_err());
        assert!(TimeRange::parse("6,5").is_err());
        assert!(TimeRange::parse("x,5").is_err());
    }
}
