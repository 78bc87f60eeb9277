//! Shared helpers: reading the Parquet tables back, the corpus location, perf script parsing.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The shared corpus root (`KVMTRACE_CORPUS`, e.g. ../shared/testdata). `None` means skip; when
/// `CI=true` a missing corpus fails the test instead.
pub(crate) fn corpus() -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match std::env::var_os("KVMTRACE_CORPUS").map(PathBuf::from) {
        Some(p) if p.join("public").is_dir() => Some(p),
        other => {
            assert!(
                !ci,
                "KVMTRACE_CORPUS must point at the shared testdata when CI=true (got {other:?})"
            );
            eprintln!("skipping: KVMTRACE_CORPUS is not set to the shared testdata");
            None
        }
    }
}

/// The repository's own testdata/.
pub(crate) fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Options ingesting testdata/synth-small (the generated host+guest scenario) into `out`, with
/// its guest recording, guest bundle, host kallsyms and host binaries; the input to pass.
pub(crate) fn synth_small(out: &Path) -> (PathBuf, kvmtrace_ingest::Options) {
    let base = testdata().join("synth-small");
    let mut opts = kvmtrace_ingest::Options::default();
    opts.output = out.to_path_buf();
    opts.guest_data = ["3100=".to_string()
        + &base.join("guest-0.perf.data").display().to_string()
        + ",name=guest-0"]
    .iter()
    .map(|s| s.parse().expect("guest data"))
    .collect();
    opts.guest_symbols = vec![("guest-0".into(), base.join("guest-0.bundle"))];
    opts.kallsyms = Some(base.join("host.kallsyms"));
    opts.symfs = Some(base.join("host-root"));
    (base.join("host.perf.data"), opts)
}

/// Every batch of one table of a dataset (all partitions).
pub(crate) fn read_table(dataset: &Path, table: &str) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let dir = dataset.join(table);
    let mut files = Vec::new();
    walk(&dir, &mut files);
    files.sort();
    for f in files {
        let file = std::fs::File::open(&f).expect("open parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
        for b in reader {
            out.push(b.expect("batch"));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

/// Column `name` of every batch (a test fails on a missing column).
fn columns<'a>(
    batches: &'a [RecordBatch],
    name: &'a str,
) -> impl Iterator<Item = &'a arrow::array::ArrayRef> {
    batches.iter().map(move |b| {
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
    })
}

/// A column of a table as `Option<u64>` per row (UInt64/UInt32/Int32/Int64 widened).
pub(crate) fn col_u64(batches: &[RecordBatch], name: &str) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for c in columns(batches, name) {
        for i in 0..c.len() {
            if c.is_null(i) {
                out.push(None);
                continue;
            }
            let v = match c.data_type() {
                arrow::datatypes::DataType::UInt64 => c.as_primitive::<UInt64Type>().value(i),
                arrow::datatypes::DataType::UInt32 => {
                    u64::from(c.as_primitive::<UInt32Type>().value(i))
                }
                arrow::datatypes::DataType::Int32 => {
                    c.as_primitive::<Int32Type>().value(i) as i64 as u64
                }
                arrow::datatypes::DataType::Int64 => {
                    c.as_primitive::<arrow::datatypes::Int64Type>().value(i) as u64
                }
                other => panic!("column {name} has type {other}"),
            };
            out.push(Some(v));
        }
    }
    out
}

/// A boolean column.
pub(crate) fn col_bool(batches: &[RecordBatch], name: &str) -> Vec<Option<bool>> {
    let mut out = Vec::new();
    for c in columns(batches, name) {
        let c = c.as_boolean();
        out.extend((0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i))));
    }
    out
}

/// A string column.
pub(crate) fn col_str(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for c in columns(batches, name) {
        let s = c.as_string::<i32>();
        for i in 0..s.len() {
            out.push(if s.is_null(i) {
                None
            } else {
                Some(s.value(i).to_string())
            });
        }
    }
    out
}

/// A binary column.
pub(crate) fn col_bin(batches: &[RecordBatch], name: &str) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    for c in columns(batches, name) {
        let s = c.as_binary::<i32>();
        for i in 0..s.len() {
            out.push(if s.is_null(i) {
                None
            } else {
                Some(s.value(i).to_vec())
            });
        }
    }
    out
}

/// A List<UInt64> column.
pub(crate) fn col_list_u64(batches: &[RecordBatch], name: &str) -> Vec<Option<Vec<u64>>> {
    col_list::<UInt64Type>(batches, name)
}

/// A List<UInt32> column.
pub(crate) fn col_list_u32(batches: &[RecordBatch], name: &str) -> Vec<Option<Vec<u32>>> {
    col_list::<UInt32Type>(batches, name)
}

fn col_list<T: arrow::datatypes::ArrowPrimitiveType>(
    batches: &[RecordBatch],
    name: &str,
) -> Vec<Option<Vec<T::Native>>> {
    let mut out = Vec::new();
    for c in columns(batches, name) {
        let l = c.as_list::<i32>();
        for i in 0..l.len() {
            if l.is_null(i) {
                out.push(None);
            } else {
                out.push(Some(l.value(i).as_primitive::<T>().values().to_vec()));
            }
        }
    }
    out
}

/// Every (stack_id, frame index, inline depth, row of `frames`) of a stacks table
/// (`stacks.frame_ids` joined with `frames.frame_id`), sorted: the rows of each stack, leaf
/// frame first, each frame's levels outermost first.
pub(crate) fn stack_frame_rows(
    dataset: &Path,
    stacks_table: &str,
    frames: &[RecordBatch],
) -> Vec<(u64, u64, u64, usize)> {
    let (frame_id, depth) = (col_u64(frames, "frame_id"), col_u64(frames, "inline_depth"));
    let mut rows_of: std::collections::HashMap<u64, Vec<usize>> = Default::default();
    for (i, id) in frame_id.iter().enumerate() {
        rows_of.entry(id.expect("frame_id")).or_default().push(i);
    }
    let stacks = read_table(dataset, stacks_table);
    let (sid, ids) = (
        col_u64(&stacks, "stack_id"),
        col_list_u32(&stacks, "frame_ids"),
    );
    let mut out = Vec::new();
    for (s, ids) in sid.iter().zip(ids) {
        for (k, id) in ids.expect("frame_ids").into_iter().enumerate() {
            for &i in rows_of.get(&u64::from(id)).expect("frame_id of frame_ids") {
                out.push((s.expect("stack_id"), k as u64, depth[i].expect("depth"), i));
            }
        }
    }
    out.sort();
    out
}

/// Rows per table from a dataset, as ingest wrote them.
pub(crate) fn row_count(dataset: &Path, table: &str) -> usize {
    read_table(dataset, table)
        .iter()
        .map(|b| b.num_rows())
        .sum()
}

/// Reads a reference text file, gunzipping `.gz`.
pub(crate) fn read_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .expect("gunzip");
        s
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// One sample of `perf script -F comm,pid,tid,cpu,time,period,event,ip,dso,trace --ns` output.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ScriptSample {
    pub(crate) comm: String,
    pub(crate) pid: Option<i64>,
    pub(crate) tid: Option<i64>,
    pub(crate) cpu: Option<u64>,
    pub(crate) time_ns: Option<u64>,
    pub(crate) period: Option<u64>,
    pub(crate) event: String,
    pub(crate) ip: Option<u64>,
    pub(crate) trace: Option<String>,
    pub(crate) callchain: Vec<u64>,
    pub(crate) line: usize,
    /// The line after the event name: with a callchain perf prints the frames on lines of their
    /// own and nothing after the trace text, so no `<ip> (<dso>)` is to be split off it (a
    /// kvm_emulate_insn text ends as one: `31 ed (prot64)`).
    after_event: String,
}

fn parse_time(tok: &str) -> Option<u64> {
    let t = tok.strip_suffix(':')?;
    let (s, ns) = t.split_once('.')?;
    let frac: String = format!("{ns:0<9}");
    Some(s.parse::<u64>().ok()? * 1_000_000_000 + frac[..9].parse::<u64>().ok()?)
}

fn is_pid_tid(tok: &str) -> Option<(i64, i64)> {
    let (a, b) = tok.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Splits a trailing `<hex-ip> (<dso>)` (or `<hex-ip> sym+off (<dso>)`) off a line.
fn split_ip_dso(rest: &str) -> (String, Option<u64>) {
    let rest = rest.trim_end();
    if rest.ends_with(')')
        && let Some(open) = rest.rfind(" (")
    {
        let before = rest[..open].trim_end();
        // The ip is the last whitespace token before "(dso)" (symbols are not printed here).
        let (head, last) = match before.rsplit_once(char::is_whitespace) {
            Some((h, l)) => (h.trim_end(), l),
            None => ("", before),
        };
        if let Ok(ip) = u64::from_str_radix(last, 16) {
            return (head.to_string(), Some(ip));
        }
    }
    (rest.to_string(), None)
}

/// Parses perf script output into samples (in perf's order).
pub(crate) fn parse_script(
    text: &str,
    tracepoint_events: &HashMap<String, bool>,
) -> Vec<ScriptSample> {
    let mut out: Vec<ScriptSample> = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        if line.starts_with('\t') {
            if let Some(s) = out.last_mut() {
                if s.callchain.is_empty() && s.trace.is_some() {
                    s.trace = Some(s.after_event.clone());
                    s.ip = None;
                }
                let t = line.trim_start();
                let tok = t.split_whitespace().next().unwrap_or("");
                if let Ok(ip) = u64::from_str_radix(tok, 16) {
                    s.callchain.push(ip);
                }
            }
            continue;
        }
        let toks: Vec<&str> = line.split_whitespace().collect();
        // Locate pid/tid.
        let Some(pt_idx) = toks.iter().position(|t| is_pid_tid(t).is_some()) else {
            continue;
        };
        let (pid, tid) = is_pid_tid(toks[pt_idx]).unwrap_or((0, 0));
        // comm: the text before the pid/tid token, trimmed.
        let pt_pos = find_token_pos(line, pt_idx);
        let comm = line[..pt_pos].trim().to_string();
        let mut i = pt_idx + 1;
        let mut cpu = None;
        if let Some(t) = toks
            .get(i)
            .filter(|t| t.starts_with('[') && t.ends_with(']'))
        {
            cpu = t[1..t.len() - 1].parse().ok();
            i += 1;
        }
        let time_ns = toks.get(i).and_then(|t| parse_time(t));
        if time_ns.is_some() {
            i += 1;
        }
        let period = toks.get(i).and_then(|t| t.parse::<u64>().ok());
        if period.is_some() {
            i += 1;
        }
        let event = toks
            .get(i)
            .map(|t| t.trim_end_matches(':').to_string())
            .unwrap_or_default();
        let rest_pos = find_token_pos(line, i) + toks.get(i).map_or(0, |t| t.len());
        let rest = line.get(rest_pos..).unwrap_or("").trim();
        let is_tp = tracepoint_events.get(&event).copied().unwrap_or(false);
        let (trace_text, ip) = split_ip_dso(rest);
        let trace = if is_tp {
            Some(trace_text.trim().to_string())
        } else {
            None
        };
        out.push(ScriptSample {
            comm,
            pid: Some(pid),
            tid: Some(tid),
            cpu,
            time_ns,
            period,
            event,
            ip,
            trace,
            callchain: Vec::new(),
            line: lineno + 1,
            after_event: rest.to_string(),
        });
    }
    out
}

fn find_token_pos(line: &str, idx: usize) -> usize {
    let mut count = 0;
    let mut in_tok = false;
    for (pos, c) in line.char_indices() {
        if c.is_whitespace() {
            in_tok = false;
        } else if !in_tok {
            if count == idx {
                return pos;
            }
            count += 1;
            in_tok = true;
        }
    }
    line.len()
}
