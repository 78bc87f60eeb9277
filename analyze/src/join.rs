//! The host+guest join: where each host sample of a vCPU thread was (guest mode, inside an exit,
//! outside any exit), which guest-side sample gives its guest stack, and what the host was doing
//! with a vCPU when the guest took a sample.
//!
//! The relational part is polars lazy: an equi-join of samples on `vcpus.tid`, an as-of join
//! (backward, by recording and thread) of sample times on `exits.exit_time_ns`, and an as-of join
//! (nearest, by recording, VM and vCPU, within a tolerance) on `guest_samples.time_ns`. Every key
//! includes `recording`, so datasets with several recordings join correctly.

use polars::prelude::*;

use crate::dataset::Dataset;
use crate::error::{Error, pl};

/// Where a host sample was, relative to its vCPU (`placement` column of [`place_host_samples`]).
pub mod placement {
    /// A vCPU thread in guest mode (cpumode guest_kernel / guest_user).
    pub const GUEST_MODE: &str = "guest_mode";
    /// A vCPU thread inside an exit, in the host kernel.
    pub const IN_EXIT_KERNEL: &str = "in_exit_kernel";
    /// A vCPU thread inside an exit, in the VMM's user space (handling an exit to user space).
    pub const IN_EXIT_VMM: &str = "in_exit_vmm";
    /// A vCPU thread in host mode outside any exit (VMM setup before the first entry, or no exit
    /// events recorded).
    pub const VCPU_OUTSIDE_EXIT: &str = "vcpu_outside_exit";
    /// Not a vCPU thread.
    pub const OTHER: &str = "other";
}

/// The state of a vCPU when its guest took a sample (`state` column of [`place_guest_samples`]).
pub mod guest_state {
    /// In guest mode (no exit open, thread on a CPU).
    pub const RUNNING: &str = "running";
    /// Inside an exit (the `reason_name` column says which), thread on a CPU.
    pub const EXITED: &str = "exited";
    /// The vCPU thread was scheduled out on the host (steal).
    pub const SCHEDULED_OUT: &str = "scheduled_out";
    /// No vCPU thread is known for this VM and vCPU.
    pub const UNKNOWN: &str = "unknown";
}

/// How to join.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JoinOptions {
    /// Only host samples of this event (`samples.event`); `None` keeps all.
    pub event: Option<String>,
    /// Largest distance between a host guest-mode sample and the guest-side sample whose stack
    /// it takes, in ns.
    pub match_tolerance_ns: u64,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            event: None,
            match_tolerance_ns: 1_000_000,
        }
    }
}

fn asof(
    strategy: AsofStrategy,
    left_by: &[&str],
    right_by: &[&str],
    tolerance: Option<u64>,
) -> JoinType {
    JoinType::AsOf(Box::new(AsOfOptions {
        strategy,
        tolerance: tolerance.map(|t| Scalar::new(DataType::UInt64, AnyValue::UInt64(t))),
        tolerance_str: None,
        left_by: Some(left_by.iter().map(|s| PlSmallStr::from(*s)).collect()),
        right_by: Some(right_by.iter().map(|s| PlSmallStr::from(*s)).collect()),
        allow_eq: true,
        // Both sides are sorted on the time key below; with `by` groups polars cannot check it.
        check_sortedness: false,
    }))
}

/// The recording as a small integer, numbered in name order (as-of joins hash their `by`
/// columns and sorts compare their keys row by row: an integer instead of a string, and a
/// constant when the dataset holds one recording).
fn rec_key(ds: &Dataset) -> Expr {
    let mut recs: Vec<&str> = ds
        .recordings()
        .iter()
        .map(|r| r.recording.as_str())
        .collect();
    recs.sort_unstable();
    recs.dedup();
    if recs.len() <= 1 {
        return lit(0u32);
    }
    recs.iter()
        .enumerate()
        .rev()
        .fold(lit(u32::MAX), |otherwise, (i, r)| {
            when(col("recording").eq(lit(*r)))
                .then(lit(i as u32))
                .otherwise(otherwise)
        })
}

fn sort_by(lf: LazyFrame, cols: &[&str]) -> LazyFrame {
    lf.sort_by_exprs(
        cols.iter().map(|c| col(*c)).collect::<Vec<_>>(),
        SortMultipleOptions::default().with_maintain_order(true),
    )
}

/// `vcpus` as (recording, vm_pid, vcpu, tid), one row per thread, plus the VM display name.
pub(crate) fn vcpu_threads(ds: &Dataset) -> Result<LazyFrame, Error> {
    let vcpus = ds.scan("vcpus")?.filter(col("vcpu").is_not_null()).select([
        col("recording"),
        col("vm_pid"),
        col("vcpu"),
        col("tid").alias("vcpu_tid"),
    ]);
    let vcpus = sort_by(vcpus, &["recording", "vcpu_tid", "vcpu"]).unique_stable_generic(
        Some(vec![col("recording"), col("vcpu_tid")]),
        UniqueKeepStrategy::First,
    );
    with_vm_names(vcpus, ds)
}

/// Adds `vm`: the VM's name from `vms` by (recording, vm_pid); a VM without a name there is
/// shown as perf shows unnamed guests, `pid:N`.
fn with_vm_names(lf: LazyFrame, ds: &Dataset) -> Result<LazyFrame, Error> {
    let with_names = if ds.has("vms") {
        let vms = ds.scan("vms")?.select([
            col("recording").alias("vm_recording"),
            col("vm_pid").alias("vm_vm_pid"),
            col("name").alias("vm"),
        ]);
        lf.join(
            vms,
            [col("recording"), col("vm_pid")],
            [col("vm_recording"), col("vm_vm_pid")],
            JoinArgs::new(JoinType::Left),
        )
    } else {
        lf.with_column(lit(NULL).cast(DataType::String).alias("vm"))
    };
    Ok(with_names.with_column(
        when(col("vm").is_null())
            .then(concat_str(
                [lit("pid:"), col("vm_pid").cast(DataType::String)],
                "",
                true,
            ))
            .otherwise(col("vm"))
            .alias("vm"),
    ))
}

/// The exit reason as a name: `reason_name`, else the numeric code as text.
pub(crate) fn reason_name(ds: &Dataset) -> Result<Expr, Error> {
    let names = ds.scan("exits")?.collect_schema().map_err(pl("exits"))?;
    Ok(if names.contains("reason_name") {
        when(col("reason_name").is_null())
            .then(col("reason").cast(DataType::String))
            .otherwise(col("reason_name"))
    } else {
        col("reason").cast(DataType::String)
    })
}

/// Joins each row (sorted by `time_key`) to the last exit of its thread that started at or
/// before it (as-of on recording and tid), with [`exit_intervals`]' columns.
fn with_last_exit(lf: LazyFrame, ds: &Dataset) -> Result<LazyFrame, Error> {
    Ok(lf
        .join_builder()
        .with(exit_intervals(ds)?)
        .left_on([col("time_key")])
        .right_on([col("exit_time_ns")])
        .how(asof(
            AsofStrategy::Backward,
            &["_rec", "tid"],
            &["x_rec", "x_tid"],
            None,
        ))
        .coalesce(JoinCoalesce::KeepColumns)
        .finish())
}

/// After [`with_last_exit`]: `time_key` lies inside that exit, i.e. before its entry; an exit
/// never closed by a kvm_entry is open to the end of the recording. PVM rows
/// (kvm_userspace_exit, kvm_msr) carry no entry time: points, never containing a sample.
fn inside_last_exit() -> Expr {
    col("exit_time_ns").is_not_null().and(
        col("time_key")
            .lt(col("entry_time_ns"))
            .fill_null(lit(false))
            .or(col("entry_time_ns")
                .is_null()
                .and(col("exit_source").eq(lit("kvm_exit")))),
    )
}

/// Exits as (recording, tid, exit columns) sorted by exit time; only those with a time.
fn exit_intervals(ds: &Dataset) -> Result<LazyFrame, Error> {
    let reason = reason_name(ds)?;
    let lf = ds
        .scan("exits")?
        .filter(col("exit_time_ns").is_not_null())
        .select([
            rec_key(ds).alias("x_rec"),
            col("tid").alias("x_tid"),
            col("exit_idx"),
            col("exit_time_ns"),
            col("entry_time_ns"),
            reason.alias("reason_name"),
            col("guest_rip"),
            col("source").alias("exit_source"),
        ]);
    Ok(sort_by(lf, &["exit_time_ns"]))
}

/// The `samples` columns [`place_host_samples`] keeps, first in its output.
const SAMPLE_COLS: [&str; 11] = [
    "recording",
    "sample_idx",
    "time_ns",
    "pid",
    "tid",
    "comm",
    "event",
    "period",
    "ip",
    "cpumode",
    "stack_id",
];

/// The columns [`place_host_samples`] adds, after [`SAMPLE_COLS`].
const PLACEMENT_COLS: [&str; 14] = [
    "vm_pid",
    "vm",
    "vcpu",
    "placement",
    "exit_idx",
    "exit_time_ns",
    "entry_time_ns",
    "into_exit_ns",
    "reason_name",
    "guest_rip",
    "guest_sample_idx",
    "guest_stack_id",
    "guest_ip",
    "guest_time_ns",
];

/// Places every host sample (of `opts.event`) relative to its vCPU.
///
/// Columns: `recording, sample_idx, time_ns, pid, tid, comm, event, period, ip, cpumode, stack_id`
/// (from `samples`), `vm_pid, vm, vcpu` (null when not a vCPU thread), `placement` (see
/// [`placement`]), `exit_idx, exit_time_ns, entry_time_ns, into_exit_ns, reason_name, guest_rip`
/// (the exit the sample falls into, and how far into it), `guest_sample_idx, guest_stack_id,
/// guest_ip, guest_time_ns` (the nearest guest-side sample of the same VM and vCPU within the
/// tolerance, for guest-mode samples; null otherwise). Sorted by recording and sample_idx.
/// Leaf validation of the guest match needs symbols and is done by the caller.
pub fn place_host_samples(ds: &Dataset, opts: &JoinOptions) -> Result<DataFrame, Error> {
    let mut samples = ds
        .scan("samples")?
        .select(SAMPLE_COLS.map(col))
        .with_column(rec_key(ds).alias("_rec"));
    if let Some(ev) = &opts.event {
        samples = samples.filter(col("event").eq(lit(ev.as_str())));
    }
    if !(ds.has("vcpus") && has_vcpu_threads(ds)?) {
        // No vCPU threads: every sample is placement OTHER, outside any exit and without a guest
        // sample, so the exit and guest joins (and their sort by time) are skipped.
        return no_vcpu_placement(samples);
    }
    let samples = samples
        .collect()
        .map_err(pl("samples, vcpus, exits, guest_samples"))?;
    // The joins and sorts carry only the keys they need and each sample's row; the sample
    // columns are put back by row at the end. (Sorting the wide rows by time and back again
    // moved every sample column twice: on 12 M host samples that, and the fresh pages it
    // needed, was most of the join.)
    let narrow = samples
        .clone()
        .lazy()
        .select([
            col("_rec"),
            col("recording"),
            col("tid"),
            col("time_ns"),
            col("cpumode"),
        ])
        .with_row_index(ROW, None);
    let mut lf = narrow.join(
        vcpu_threads(ds)?,
        [col("recording"), col("tid")],
        [col("recording"), col("vcpu_tid")],
        JoinArgs::new(JoinType::Left),
    );
    // Null times cannot be placed; key 0 matches no exit and no guest sample.
    lf = lf.with_column(col("time_ns").fill_null(lit(0u64)).alias("time_key"));
    lf = sort_by(lf, &["time_key"]);

    let is_guest = col("cpumode")
        .eq(lit("guest_kernel"))
        .or(col("cpumode").eq(lit("guest_user")));
    if ds.has("exits") {
        lf = with_last_exit(lf, ds)?;
        // A guest-mode sample is never inside an exit, nor a thread that is no vCPU.
        let inside = inside_last_exit()
            .and(col("vcpu").is_not_null())
            .and(is_guest.clone().not());
        let keep = |c: &str, dt: DataType| {
            when(inside.clone())
                .then(col(c))
                .otherwise(lit(NULL).cast(dt))
                .alias(c)
        };
        lf = lf.with_columns(exit_cols().map(|(c, dt)| keep(c, dt)));
    } else {
        lf = lf.with_columns(exit_cols().map(|(c, dt)| null_col(c, dt)));
    }
    lf = lf.with_column((col("time_key") - col("exit_time_ns")).alias("into_exit_ns"));

    if ds.has("guest_samples") {
        lf = with_nearest_guest_sample(lf, ds, opts)?;
        let keep = |c: &str, dt: DataType| {
            when(is_guest.clone().and(col("vcpu").is_not_null()))
                .then(col(c))
                .otherwise(lit(NULL).cast(dt))
                .alias(c)
        };
        lf = lf.with_columns(guest_match_cols().map(|(c, dt)| keep(c, dt)));
    } else {
        lf = lf.with_columns(guest_match_cols().map(|(c, dt)| null_col(c, dt)));
    }
    let placement = when(col("vcpu").is_null())
        .then(lit(placement::OTHER))
        .when(is_guest)
        .then(lit(placement::GUEST_MODE))
        .when(
            col("exit_idx")
                .is_not_null()
                .and(col("cpumode").eq(lit("host_user"))),
        )
        .then(lit(placement::IN_EXIT_VMM))
        .when(col("exit_idx").is_not_null())
        .then(lit(placement::IN_EXIT_KERNEL))
        .otherwise(lit(placement::VCPU_OUTSIDE_EXIT))
        .alias("placement");
    let placed = sort_by(lf.with_column(placement), &[ROW])
        .select(PLACEMENT_COLS.map(col))
        .collect()
        .map_err(pl("samples, vcpus, exits, guest_samples"))?;
    let out = samples
        .hstack(placed.columns())
        .map_err(pl("samples, vcpus, exits, guest_samples"))?;
    if in_sample_order(&out)? {
        // The usual case: partitions are scanned in recording order, rows in sample order.
        return out
            .select(SAMPLE_COLS.iter().chain(&PLACEMENT_COLS).copied())
            .map_err(pl("samples"));
    }
    placed_in_sample_order(out.lazy())
}

/// The row index [`place_host_samples`] carries through its joins.
const ROW: &str = "_row";

/// Whether `df`'s rows are sorted by `_rec` then `sample_idx`.
fn in_sample_order(df: &DataFrame) -> Result<bool, Error> {
    let rec = df.column("_rec").map_err(pl("samples"))?;
    let rec = rec.cast(&DataType::UInt32).map_err(pl("samples"))?;
    let rec = rec.u32().map_err(pl("samples"))?;
    let idx = df.column("sample_idx").map_err(pl("samples"))?;
    let idx = idx.cast(&DataType::UInt64).map_err(pl("samples"))?;
    let idx = idx.u64().map_err(pl("samples"))?;
    let mut last: Option<(Option<u32>, Option<u64>)> = None;
    for k in rec.iter().zip(idx.iter()) {
        if last.is_some_and(|l| l > k) {
            return Ok(false);
        }
        last = Some(k);
    }
    Ok(true)
}

/// Whether `vcpus` names any vCPU thread.
fn has_vcpu_threads(ds: &Dataset) -> Result<bool, Error> {
    // One row is enough (and a bare `len()` over several parquet parts fails in polars 0.55).
    let df = ds
        .scan("vcpus")?
        .select([col("vcpu")])
        .filter(col("vcpu").is_not_null())
        .limit(1)
        .collect()
        .map_err(pl("vcpus"))?;
    Ok(df.height() > 0)
}

/// [`place_host_samples`] of a dataset without vCPU threads: the same columns, all samples
/// `other`.
fn no_vcpu_placement(samples: LazyFrame) -> Result<DataFrame, Error> {
    let lf = samples
        .with_columns([
            null_col("vm_pid", DataType::Int32),
            null_col("vm", DataType::String),
            null_col("vcpu", DataType::UInt32),
            lit(placement::OTHER).alias("placement"),
            null_col("into_exit_ns", DataType::UInt64),
        ])
        .with_columns(exit_cols().map(|(c, dt)| null_col(c, dt)))
        .with_columns(guest_match_cols().map(|(c, dt)| null_col(c, dt)));
    placed_in_sample_order(lf)
}

/// The columns a host sample takes from the exit it fell in (null outside every exit).
fn exit_cols() -> [(&'static str, DataType); 5] {
    [
        ("exit_idx", DataType::UInt64),
        ("exit_time_ns", DataType::UInt64),
        ("entry_time_ns", DataType::UInt64),
        ("reason_name", DataType::String),
        ("guest_rip", DataType::UInt64),
    ]
}

/// The columns a guest-mode host sample takes from its nearest guest-side sample.
fn guest_match_cols() -> [(&'static str, DataType); 4] {
    [
        ("guest_time_ns", DataType::UInt64),
        ("guest_sample_idx", DataType::UInt64),
        ("guest_stack_id", DataType::UInt32),
        ("guest_ip", DataType::UInt64),
    ]
}

/// A null column of type `dt`.
fn null_col(name: &str, dt: DataType) -> Expr {
    lit(NULL).cast(dt).alias(name)
}

/// [`place_host_samples`]'s output: [`SAMPLE_COLS`] then [`PLACEMENT_COLS`], by recording and
/// sample_idx.
fn placed_in_sample_order(lf: LazyFrame) -> Result<DataFrame, Error> {
    sort_by(lf, &["_rec", "sample_idx"])
        .select(
            SAMPLE_COLS
                .iter()
                .chain(&PLACEMENT_COLS)
                .map(|c| col(*c))
                .collect::<Vec<_>>(),
        )
        .collect()
        .map_err(pl("samples, vcpus, exits, guest_samples"))
}

/// Places every guest-side sample: was its vCPU running, inside an exit, or scheduled out on the
/// host (from `sched__sched_switch`, when recorded)?
///
/// Columns: `recording, sample_idx, vm_pid, vm, vcpu, time_ns, tid` (the host thread of the vCPU),
/// `state` (see [`guest_state`]), `exit_idx, reason_name`. Sorted by recording and sample_idx.
pub fn place_guest_samples(ds: &Dataset) -> Result<DataFrame, Error> {
    sort_by(guest_placement(ds)?, &["_rec", "sample_idx"])
        .select([
            col("recording"),
            col("sample_idx"),
            col("vm_pid"),
            col("vm"),
            col("vcpu"),
            col("time_ns"),
            col("tid"),
            col("state"),
            col("exit_idx"),
            col("reason_name"),
        ])
        .collect()
        .map_err(pl(GUEST_TABLES))
}

/// The number of guest-side samples in each [`guest_state`], as [`place_guest_samples`] places
/// them (by sorted searches in each vCPU thread's exits and switches, in parallel: see
/// `place.rs`; not put back in sample order, no columns gathered).
pub fn guest_state_counts(ds: &Dataset) -> Result<Vec<(String, u64)>, Error> {
    crate::place::guest_state_counts(ds)
}

/// The tables [`place_guest_samples`] reads, for error messages.
const GUEST_TABLES: &str = "guest_samples, vcpus, exits, sched__sched_switch";

/// [`place_guest_samples`]'s rows in time order, with `_rec` and `state`.
fn guest_placement(ds: &Dataset) -> Result<LazyFrame, Error> {
    let guest = ds.scan("guest_samples")?.select([
        col("recording"),
        rec_key(ds).alias("_rec"),
        col("sample_idx"),
        col("vm_pid"),
        col("vcpu"),
        col("time_ns"),
    ]);
    let mut lf = if ds.has("vcpus") {
        guest.join(
            vcpu_threads(ds)?.select([
                col("recording").alias("t_recording"),
                col("vm_pid").alias("t_vm_pid"),
                col("vcpu").alias("t_vcpu"),
                col("vcpu_tid").alias("tid"),
                col("vm"),
            ]),
            [col("recording"), col("vm_pid"), col("vcpu")],
            [col("t_recording"), col("t_vm_pid"), col("t_vcpu")],
            JoinArgs::new(JoinType::Left),
        )
    } else {
        guest.with_columns([
            lit(NULL).cast(DataType::Int32).alias("tid"),
            lit(NULL).cast(DataType::String).alias("vm"),
        ])
    };
    lf = sort_by(
        lf.with_column(col("time_ns").fill_null(lit(0u64)).alias("time_key")),
        &["time_key"],
    );
    let mut exited = lit(false);
    if ds.has("exits") {
        lf = with_last_exit(lf, ds)?;
        exited = inside_last_exit();
    } else {
        lf = lf.with_columns([
            lit(NULL).cast(DataType::UInt64).alias("exit_idx"),
            lit(NULL).cast(DataType::String).alias("reason_name"),
        ]);
    }
    let mut out = lit(false);
    if ds.has("sched__sched_switch") {
        // Each switch is an "out" event of prev_pid and an "in" event of next_pid.
        let sw = ds
            .scan("sched__sched_switch")?
            .filter(col("time_ns").is_not_null());
        let outs = sw.clone().select([
            rec_key(ds).alias("s_rec"),
            col("prev_pid").cast(DataType::Int32).alias("s_tid"),
            col("time_ns").alias("switch_ns"),
            lit(true).alias("switched_out"),
        ]);
        let ins = sw.select([
            rec_key(ds).alias("s_rec"),
            col("next_pid").cast(DataType::Int32).alias("s_tid"),
            col("time_ns").alias("switch_ns"),
            lit(false).alias("switched_out"),
        ]);
        let all = sort_by(
            concat([outs, ins], UnionArgs::default()).map_err(pl("sched__sched_switch"))?,
            &["switch_ns"],
        );
        lf = lf
            .join_builder()
            .with(all)
            .left_on([col("time_key")])
            .right_on([col("switch_ns")])
            .how(asof(
                AsofStrategy::Backward,
                &["_rec", "tid"],
                &["s_rec", "s_tid"],
                None,
            ))
            .coalesce(JoinCoalesce::KeepColumns)
            .finish();
        out = col("switched_out").fill_null(lit(false));
    }
    let state = when(col("tid").is_null())
        .then(lit(guest_state::UNKNOWN))
        .when(out)
        .then(lit(guest_state::SCHEDULED_OUT))
        .when(exited.clone())
        .then(lit(guest_state::EXITED))
        .otherwise(lit(guest_state::RUNNING))
        .alias("state");
    Ok(lf.with_columns([
        state,
        when(exited.clone())
            .then(col("exit_idx"))
            .otherwise(lit(NULL).cast(DataType::UInt64))
            .alias("exit_idx"),
        when(exited)
            .then(col("reason_name"))
            .otherwise(lit(NULL).cast(DataType::String))
            .alias("reason_name"),
    ]))
}

/// Every exit with the guest-side sample nearest to its start (same VM and vCPU, within the
/// tolerance), for exit flame graphs.
///
/// Columns: `recording, exit_idx, vm_pid, vm, vcpu, tid, exit_time_ns, entry_time_ns,
/// duration_ns, reason_name, guest_rip, guest_sample_idx, guest_stack_id, guest_ip,
/// guest_time_ns`. Sorted by recording and exit_idx.
pub fn place_exits(ds: &Dataset, opts: &JoinOptions) -> Result<DataFrame, Error> {
    let reason = reason_name(ds)?;
    let mut lf = ds.scan("exits")?.select([
        col("recording"),
        rec_key(ds).alias("_rec"),
        col("exit_idx"),
        col("vm_pid"),
        col("vcpu"),
        col("tid"),
        col("exit_time_ns"),
        col("entry_time_ns"),
        col("duration_ns"),
        reason.alias("reason_name"),
        col("guest_rip"),
    ]);
    lf = with_vm_names(lf, ds)?;
    lf = sort_by(
        lf.with_column(col("exit_time_ns").fill_null(lit(0u64)).alias("time_key")),
        &["time_key"],
    );
    if ds.has("guest_samples") {
        lf = with_nearest_guest_sample(lf, ds, opts)?;
    } else {
        lf = lf.with_columns([
            lit(NULL).cast(DataType::UInt64).alias("guest_time_ns"),
            lit(NULL).cast(DataType::UInt64).alias("guest_sample_idx"),
            lit(NULL).cast(DataType::UInt32).alias("guest_stack_id"),
            lit(NULL).cast(DataType::UInt64).alias("guest_ip"),
        ]);
    }
    sort_by(lf, &["_rec", "exit_idx"])
        .select([
            col("recording"),
            col("exit_idx"),
            col("vm_pid"),
            col("vm"),
            col("vcpu"),
            col("tid"),
            col("exit_time_ns"),
            col("entry_time_ns"),
            col("duration_ns"),
            col("reason_name"),
            col("guest_rip"),
            col("guest_sample_idx"),
            col("guest_stack_id"),
            col("guest_ip"),
            col("guest_time_ns"),
        ])
        .collect()
        .map_err(pl("exits, guest_samples"))
}

/// As-of joins the nearest guest-side sample of the same recording, VM and vCPU (within the
/// tolerance) on `time_key`, adding `guest_time_ns`, `guest_sample_idx`, `guest_stack_id` and
/// `guest_ip` (null when none is near).
fn with_nearest_guest_sample(
    lf: LazyFrame,
    ds: &Dataset,
    opts: &JoinOptions,
) -> Result<LazyFrame, Error> {
    let guest = ds
        .scan("guest_samples")?
        .filter(col("time_ns").is_not_null());
    // The same event when the guest recorded it, else every guest sample.
    let guest = match &opts.event {
        Some(ev) if guest_has_event(ds, ev)? => guest.filter(col("event").eq(lit(ev.as_str()))),
        _ => guest,
    };
    let guest = sort_by(
        guest.select([
            rec_key(ds).alias("g_rec"),
            col("vm_pid").alias("g_vm_pid"),
            col("vcpu").alias("g_vcpu"),
            col("time_ns").alias("guest_time_ns"),
            col("sample_idx").alias("guest_sample_idx"),
            col("stack_id").alias("guest_stack_id"),
            col("ip").alias("guest_ip"),
        ]),
        &["guest_time_ns"],
    );
    Ok(lf
        .join_builder()
        .with(guest)
        .left_on([col("time_key")])
        .right_on([col("guest_time_ns")])
        .how(asof(
            AsofStrategy::Nearest,
            &["_rec", "vm_pid", "vcpu"],
            &["g_rec", "g_vm_pid", "g_vcpu"],
            Some(opts.match_tolerance_ns),
        ))
        .coalesce(JoinCoalesce::KeepColumns)
        .finish())
}

/// Whether the guest recordings have samples of `event`.
pub(crate) fn guest_has_event(ds: &Dataset, event: &str) -> Result<bool, Error> {
    // One matching row is enough. (A bare `len()` over several parquet parts fails in polars
    // 0.55: "casting from UInt32 to UInt128 not supported".)
    let found = ds
        .scan("guest_samples")?
        .select([col("event")])
        .filter(col("event").eq(lit(event)))
        .limit(1)
        .collect()
        .map_err(pl("guest_samples"))?;
    Ok(found.height() > 0)
}
