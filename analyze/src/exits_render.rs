//! The one place exit reports become bytes: text table, CSV, JSON, and perf's own layout.

use std::io::{self, Write};

use crate::exits::{ExitReport, ExitStats, KeyValue};
use crate::exits_perf::{PerfEvent, PerfKvmStat};

/// Output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// Aligned text with a totals line and notes.
    #[default]
    Table,
    /// CSV with a header line (times in ns); with histograms one line per bucket.
    Csv,
    /// A JSON array, one object per row, keys = the column names.
    Json,
}

impl std::str::FromStr for Format {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Format, crate::Error> {
        Ok(match s {
            "table" | "text" => Format::Table,
            "csv" => Format::Csv,
            "json" => Format::Json,
            o => {
                return Err(crate::Error::Invalid(format!(
                    "unknown format {o:?}: use table, csv or json"
                )));
            }
        })
    }
}

fn us(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".into(), |v| format!("{:.2}us", v as f64 / 1000.0))
}

fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "-".into(), |v| format!("{v:.2}%"))
}

fn mean_sd(r: &ExitStats) -> String {
    match (r.mean_ns, r.stddev_ns) {
        (Some(m), Some(s)) => format!("{:.2} ± {:.2}us", m / 1000.0, s / 1000.0),
        _ => "-".into(),
    }
}

const STAT_NAMES: [&str; 12] = [
    "count",
    "count_pct",
    "total_ns",
    "time_pct",
    "min_ns",
    "p50_ns",
    "p90_ns",
    "p99_ns",
    "max_ns",
    "mean_ns",
    "stddev_ns",
    "",
];
const SPLIT_NAMES: [&str; 4] = ["kernel_ns", "vmm_ns", "sched_out_ns", "halted_ns"];

fn json_row(report: &ExitReport, r: &ExitStats) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in report.key_names.iter().zip(&r.keys) {
        m.insert(
            k.clone(),
            serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
        );
    }
    let o = |x: Option<u64>| x.map_or(serde_json::Value::Null, serde_json::Value::from);
    let f = |x: Option<f64>| {
        x.map_or(serde_json::Value::Null, |v| {
            serde_json::Value::from((v * 1000.0).round() / 1000.0)
        })
    };
    m.insert("count".into(), r.count.into());
    m.insert("count_pct".into(), f(Some(r.count_pct)));
    m.insert("total_ns".into(), o(r.total_ns));
    m.insert("time_pct".into(), f(r.time_pct));
    m.insert("min_ns".into(), o(r.min_ns));
    m.insert("p50_ns".into(), o(r.p50_ns));
    m.insert("p90_ns".into(), o(r.p90_ns));
    m.insert("p99_ns".into(), o(r.p99_ns));
    m.insert("max_ns".into(), o(r.max_ns));
    m.insert("mean_ns".into(), f(r.mean_ns));
    m.insert("stddev_ns".into(), f(r.stddev_ns));
    if let Some(s) = &r.split {
        for (n, v) in SPLIT_NAMES
            .iter()
            .zip([s.kernel_ns, s.vmm_ns, s.sched_out_ns, s.halted_ns])
        {
            m.insert((*n).into(), o(v));
        }
    }
    if !r.histogram.is_empty() {
        m.insert(
            "histogram".into(),
            serde_json::to_value(&r.histogram).unwrap_or(serde_json::Value::Null),
        );
    }
    serde_json::Value::Object(m)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `report` in `format`.
pub fn render(report: &ExitReport, format: Format, w: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> =
                report.rows.iter().map(|r| json_row(report, r)).collect();
            // Serialise first: a closed pipe must surface as the io::Error it is.
            let text = serde_json::to_string_pretty(&rows).map_err(io::Error::other)?;
            writeln!(w, "{text}")
        }
        Format::Csv => render_csv(report, w),
        Format::Table => render_table(report, w),
    }
}

fn render_csv(report: &ExitReport, w: &mut dyn Write) -> io::Result<()> {
    let opt = |x: Option<u64>| x.map_or(String::new(), |v| v.to_string());
    let optf = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.3}"));
    let hist = report.rows.iter().any(|r| !r.histogram.is_empty());
    let split = report.rows.iter().any(|r| r.split.is_some());
    let mut head: Vec<String> = report.key_names.clone();
    if hist {
        head.extend(["lo_ns", "hi_ns", "count"].map(String::from));
    } else {
        head.extend(
            STAT_NAMES
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string()),
        );
        if split {
            head.extend(SPLIT_NAMES.map(String::from));
        }
    }
    writeln!(w, "{}", head.join(","))?;
    for r in &report.rows {
        let keys: Vec<String> = r.keys.iter().map(|k| csv_field(&k.to_string())).collect();
        if hist {
            for b in &r.histogram {
                writeln!(w, "{},{},{},{}", keys.join(","), b.lo_ns, b.hi_ns, b.count)?;
            }
            continue;
        }
        let mut f = keys;
        f.push(r.count.to_string());
        f.push(format!("{:.3}", r.count_pct));
        f.push(opt(r.total_ns));
        f.push(optf(r.time_pct));
        for x in [r.min_ns, r.p50_ns, r.p90_ns, r.p99_ns, r.max_ns] {
            f.push(opt(x));
        }
        f.push(optf(r.mean_ns));
        f.push(optf(r.stddev_ns));
        if split {
            let s = r.split.unwrap_or_default();
            for x in [s.kernel_ns, s.vmm_ns, s.sched_out_ns, s.halted_ns] {
                f.push(opt(x));
            }
        }
        writeln!(w, "{}", f.join(","))?;
    }
    Ok(())
}

fn render_table(report: &ExitReport, w: &mut dyn Write) -> io::Result<()> {
    let split = report.rows.iter().any(|r| r.split.is_some());
    let mut head: Vec<String> = report.key_names.clone();
    head.extend(
        [
            "count",
            "%count",
            "total",
            "%time",
            "min",
            "p50",
            "p90",
            "p99",
            "max",
            "mean ± stddev",
        ]
        .map(String::from),
    );
    if split {
        head.extend(["kernel", "vmm", "sched out", "halted"].map(String::from));
    }
    let nk = report.key_names.len();
    let line = |r: &ExitStats, total: bool| -> Vec<String> {
        let mut f: Vec<String> = if total {
            let mut v = vec![String::new(); nk];
            if let Some(first) = v.first_mut() {
                *first = "total".into();
            }
            v
        } else {
            r.keys.iter().map(KeyValue::to_string).collect()
        };
        f.push(r.count.to_string());
        f.push(pct(Some(r.count_pct)));
        f.push(us(r.total_ns));
        f.push(pct(r.time_pct));
        for x in [r.min_ns, r.p50_ns, r.p90_ns, r.p99_ns, r.max_ns] {
            f.push(us(x));
        }
        f.push(mean_sd(r));
        if split {
            let s = r.split.unwrap_or_default();
            for x in [s.kernel_ns, s.vmm_ns, s.sched_out_ns, s.halted_ns] {
                f.push(us(x));
            }
        }
        f
    };
    let mut lines: Vec<Vec<String>> = vec![head];
    lines.extend(report.rows.iter().map(|r| line(r, false)));
    let total_line = line(&report.total, true);
    let mut width = vec![0usize; lines[0].len()];
    for l in lines.iter().chain(std::iter::once(&total_line)) {
        for (i, c) in l.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let fmt = |l: &[String]| -> String {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = width[i] - c.chars().count();
                if i < nk {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        cells.join("  ").trim_end().to_string()
    };
    let sources: Vec<String> = report
        .sources
        .iter()
        .map(|s| format!("{} {}", s.source, s.n_exits))
        .collect();
    writeln!(
        w,
        "exits from: {}",
        if sources.is_empty() {
            "none".to_string()
        } else {
            sources.join(", ")
        }
    )?;
    writeln!(w)?;
    for l in &lines {
        writeln!(w, "{}", fmt(l))?;
    }
    let rule: usize = width.iter().sum::<usize>() + 2 * (width.len().saturating_sub(1));
    writeln!(w, "{}", "-".repeat(rule))?;
    writeln!(w, "{}", fmt(&total_line))?;
    if report.rows.iter().any(|r| !r.histogram.is_empty()) {
        writeln!(w)?;
        writeln!(w, "latency histograms (log2 buckets):")?;
        for r in &report.rows {
            let name: Vec<String> = r.keys.iter().map(KeyValue::to_string).collect();
            writeln!(w, "  {}  ({} exits)", name.join(" "), r.count)?;
            let maxc = r
                .histogram
                .iter()
                .map(|b| b.count)
                .max()
                .unwrap_or(1)
                .max(1);
            for b in &r.histogram {
                let bar = "#".repeat(((b.count * 40).div_ceil(maxc)) as usize);
                writeln!(
                    w,
                    "    {:>10} .. {:<10} {:>8}  {bar}",
                    human_ns(b.lo_ns),
                    human_ns(b.hi_ns),
                    b.count
                )?;
            }
        }
    }
    if !report.notes.is_empty() {
        writeln!(w)?;
        for n in &report.notes {
            writeln!(w, "note: {n}")?;
        }
    }
    Ok(())
}

fn human_ns(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.3}s", ns as f64 / 1e9)
    } else if ns >= 1_000_000 {
        format!("{:.3}ms", ns as f64 / 1e6)
    } else if ns >= 1000 {
        format!("{:.3}us", ns as f64 / 1e3)
    } else {
        format!("{ns}ns")
    }
}

/// Writes `stat` exactly as perf 6.1's `perf kvm stat report` prints it (perf prints on stderr).
pub fn render_perf(stat: &PerfKvmStat, w: &mut dyn Write) -> io::Result<()> {
    let name = match stat.event {
        PerfEvent::Vmexit => "VM-EXIT",
        PerfEvent::Ioport => "IO Port Access",
        PerfEvent::Mmio => "MMIO Access",
    };
    write!(w, "\n\n")?;
    write!(w, "Analyze events for ")?;
    match stat.pid {
        Some(p) => write!(w, "pid(s) {p}, ")?,
        None => write!(w, "all VMs, ")?,
    }
    match stat.vcpu {
        Some(v) => write!(w, "VCPU {v}:\n\n")?,
        None => write!(w, "all VCPUs:\n\n")?,
    }
    write!(
        w,
        "{name:>20} {:>10} {:>9} {:>9} {:>11} {:>11} {:>16} \n\n",
        "Samples", "Samples%", "Time%", "Min Time", "Max Time", "Avg time"
    )?;
    for r in &stat.rows {
        write!(w, "{:>20} {:>10} ", r.name, r.count)?;
        write!(
            w,
            "{:>8.2}% ",
            r.count as f64 / stat.total_count as f64 * 100.0
        )?;
        write!(
            w,
            "{:>8.2}% ",
            r.time_ns as f64 / stat.total_time_ns as f64 * 100.0
        )?;
        write!(w, "{:>9.2}us ", r.min_ns as f64 / 1000.0)?;
        write!(w, "{:>9.2}us ", r.max_ns as f64 / 1000.0)?;
        write!(
            w,
            "{:>9.2}us ( +-{:>7.2}% )",
            r.time_ns as f64 / r.count as f64 / 1000.0,
            r.rel_stddev_pct
        )?;
        writeln!(w)?;
    }
    write!(
        w,
        "\nTotal Samples:{}, Total events handled time:{:.2}us.\n\n",
        stat.total_count,
        stat.total_time_ns as f64 / 1000.0
    )?;
    Ok(())
}
