//! truth.json, folded.txt and the guest symbol bundles.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::Error;
use crate::model::{self, EXIT_KINDS, GuestSymbols};
use crate::sim::{Acc, Scenario};
use crate::{Options, elf};

fn write(path: &Path, data: &[u8], files: &mut Vec<PathBuf>) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    fs::write(path, data).map_err(Error::io(path))?;
    files.push(path.to_path_buf());
    Ok(())
}

fn write_json(path: &Path, v: &Value, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut s = serde_json::to_string_pretty(v).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    s.push('\n');
    write(path, s.as_bytes(), files)
}

/// Writes `<out>/<vm>.bundle/`.
pub(crate) fn write_bundle(
    out: &Path,
    vm: &str,
    syms: &GuestSymbols,
    kernel_build_id: &[u8; 20],
    files: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let dir = out.join(format!("{vm}.bundle"));
    write(&dir.join("kallsyms"), syms.kallsyms().as_bytes(), files)?;
    write(&dir.join("modules"), b"", files)?;
    let app_id = elf::hex(&syms.app.build_id);
    let rel = format!("binaries/{app_id}/guestapp");
    write(&dir.join(&rel), &syms.app.bytes, files)?;
    let manifest = json!({
        "format_version": 1,
        "vm": vm,
        "kernel_release": crate::GUEST_OSRELEASE,
        "kernel_build_id": elf::hex(kernel_build_id),
        "architecture": "x86_64",
        "created_at": "2026-01-01T00:00:00Z",
        "generator": "kvmtrace-synth",
        "binaries": [{"path": model::GUESTAPP_PATH, "build_id": app_id, "file": rel}],
    });
    write_json(&dir.join("manifest.json"), &manifest, files)
}

fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = (q * (sorted.len() - 1) as f64).floor() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn reason_name(sc: &Scenario, code: u32) -> &'static str {
    EXIT_KINDS
        .iter()
        .map(|k| k.code(sc.isa))
        .find(|c| c.0 == code)
        .map(|c| c.1)
        .unwrap_or("UNKNOWN")
}

/// Writes truth.json and folded.txt.
pub(crate) fn write_truth(
    out: &Path,
    opts: &Options,
    sc: &Scenario,
    acc: &mut Acc,
    host_counts: &[(String, u64)],
    guest_counts: &[u64],
    files: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let mut by_reason = Vec::new();
    let mut stat_rows = Vec::new();
    let total: u64 = acc.durations.values().map(|v| v.len() as u64).sum();
    let total_time: u64 = acc.durations.values().flatten().sum();
    for (code, d) in acc.durations.iter_mut() {
        d.sort_unstable();
        let n = d.len() as u64;
        let sum: u64 = d.iter().sum();
        let min = d.first().copied().unwrap_or(0);
        let max = d.last().copied().unwrap_or(0);
        let name = reason_name(sc, *code);
        by_reason.push(json!({
            "reason": code,
            "reason_name": name,
            "count": n,
            "total_ns": sum,
            "min_ns": min,
            "max_ns": max,
            "mean_ns": sum as f64 / n as f64,
            "p50_ns": pct(d, 0.5),
            "p90_ns": pct(d, 0.9),
            "p99_ns": pct(d, 0.99),
        }));
        // Same arithmetic as perf's print_result().
        stat_rows.push((
            n,
            json!({
                "reason_name": name,
                "samples": n,
                "samples_pct": format!("{:.2}", n as f64 / total as f64 * 100.0),
                "time_pct": format!("{:.2}", sum as f64 / total_time as f64 * 100.0),
                "min_us": format!("{:.2}", min as f64 / 1000.0),
                "max_us": format!("{:.2}", max as f64 / 1000.0),
                "avg_us": format!("{:.2}", sum as f64 / n as f64 / 1000.0),
            }),
        ));
    }
    stat_rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let keyed = |rows: Vec<(String, crate::sim::Stat)>| -> Value {
        let n: u64 = rows.iter().map(|r| r.1.n).sum();
        let t: u64 = rows.iter().map(|r| r.1.sum).sum();
        let mut v: Vec<(u64, Value)> = rows
            .iter()
            .map(|(k, s)| {
                (
                    s.n,
                    json!({
                        "key": k,
                        "samples": s.n,
                        "total_ns": s.sum,
                        "samples_pct": format!("{:.2}", s.n as f64 / n as f64 * 100.0),
                        "time_pct": format!("{:.2}", s.sum as f64 / t as f64 * 100.0),
                        "min_us": format!("{:.2}", s.min as f64 / 1000.0),
                        "max_us": format!("{:.2}", s.max as f64 / 1000.0),
                        "avg_us": format!("{:.2}", s.sum as f64 / s.n as f64 / 1000.0),
                    }),
                )
            })
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.0));
        json!({
            "total_samples": n,
            "total_time_us": format!("{:.2}", t as f64 / 1000.0),
            "keys": v.into_iter().map(|r| r.1).collect::<Vec<_>>(),
        })
    };
    let ioport = keyed(
        acc.ioport
            .iter()
            .map(|((port, w), s)| (format!("{port:#x}:{}", if *w { "POUT" } else { "PIN" }), *s))
            .collect(),
    );
    let mmio = keyed(
        acc.mmio
            .iter()
            .map(|((gpa, w), s)| (format!("{gpa:#x}:{}", if *w { "W" } else { "R" }), *s))
            .collect(),
    );
    let by_vm_vcpu: Vec<Value> = acc
        .by_vcpu
        .iter()
        .map(|((vm, vcpu), (n, t))| {
            json!({"vm": sc.vms[*vm].name, "vm_pid": sc.vms[*vm].pid, "vcpu": vcpu, "count": n, "total_ns": t})
        })
        .collect();
    let by_vm_vcpu_reason: Vec<Value> = acc
        .by_vcpu_reason
        .iter()
        .map(|((vm, vcpu, code), (n, t))| {
            json!({"vm": sc.vms[*vm].name, "vm_pid": sc.vms[*vm].pid, "vcpu": vcpu,
                   "reason": code, "reason_name": reason_name(sc, *code), "count": n, "total_ns": t})
        })
        .collect();
    let by_vm_guest_symbol: Vec<Value> = acc
        .by_guest_symbol
        .iter()
        .map(|((vm, sym, kernel), (n, t))| {
            json!({"vm": sc.vms[*vm].name, "vm_pid": sc.vms[*vm].pid, "guest_symbol": sym,
                   "guest_kernel": kernel, "count": n, "total_ns": t})
        })
        .collect();
    let vms: Vec<Value> = sc
        .vms
        .iter()
        .enumerate()
        .map(|(i, vm)| {
            json!({
                "name": vm.name,
                "pid": vm.pid,
                "comm": "qemu-system-x86",
                "tsc_offset": vm.tsc_offset,
                "tsc_offset_u64": format!("{:#x}", vm.tsc_offset as u64),
                "tsc_scale": 1.0,
                "guest_time_zero": vm.guest_time_zero,
                "guest_perf_data": format!("{}.perf.data", vm.name),
                "bundle": format!("{}.bundle", vm.name),
                "guest_samples": guest_counts.get(i).copied().unwrap_or(0),
                "vcpus": vm.vcpu_tids.iter().enumerate().map(|(n, tid)| json!({
                    "vcpu": n, "tid": tid, "comm": format!("CPU {n}/KVM"),
                    "host_cpu": i as u32 * sc.vcpus + n as u32,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let events: serde_json::Map<String, Value> = host_counts
        .iter()
        .filter(|(n, _)| n != "dummy:HG")
        .map(|(n, c)| (n.clone(), json!(c)))
        .collect();
    let truth = json!({
        "generator": "kvmtrace-synth",
        "seed": opts.seed,
        "isa": opts.isa.as_str(),
        "freq": opts.freq,
        "seconds": opts.seconds,
        "host": {
            "hostname": crate::HOSTNAME,
            "os_release": crate::HOST_OSRELEASE,
            "perf_version": crate::PERF_VERSION,
            "nr_cpus": sc.nr_cpus,
            "kallsyms": "host.kallsyms",
            "sysroot": "host-root",
            "time_zero": sc.host_time_zero,
            "tsc_hz": 2_000_000_000u64,
            "start_ns": sc.t_start,
            "end_ns": sc.t_end,
        },
        "vms": vms,
        "events": events,
        "exits": {
            "total": total,
            "open_at_end": acc.open_at_end,
            "open_by_reason": acc.open_by_reason.iter().map(|(code, n)| json!({
                "reason": code, "reason_name": reason_name(sc, *code), "count": n,
            })).collect::<Vec<_>>(),
            "by_reason": by_reason,
            "by_vm_vcpu": by_vm_vcpu,
            "by_vm_vcpu_reason": by_vm_vcpu_reason,
            "by_vm_guest_symbol": by_vm_guest_symbol,
        },
        "perf_kvm_stat": {
            "event": "vmexit",
            "total_samples": total,
            "total_time_us": format!("{:.2}", total_time as f64 / 1000.0),
            "reasons": stat_rows.into_iter().map(|r| r.1).collect::<Vec<_>>(),
        },
        "perf_kvm_stat_ioport": ioport,
        "perf_kvm_stat_mmio": mmio,
        "samples": {
            "host_total": acc.host_total,
            "guest_mode": acc.guest_mode,
            "in_exit_kernel": acc.in_exit_kernel,
            "in_exit_vmm": acc.in_exit_vmm,
            "other": acc.other,
        },
        "folded": "folded.txt",
    });
    write_json(&out.join("truth.json"), &truth, files)?;
    let mut folded = String::new();
    for (k, v) in &acc.folded {
        folded.push_str(k);
        folded.push(' ');
        folded.push_str(&v.to_string());
        folded.push('\n');
    }
    write(&out.join("folded.txt"), folded.as_bytes(), files)
}
