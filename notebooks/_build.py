"""Writes the notebooks (cells below) with nbformat: python3 _build.py. Edit here, not in the .ipynb."""
import nbformat as nbf

SETUP = """import sys, os
sys.path.insert(0, os.getcwd())
import polars as pl
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from common import DATASET, TRUTH, table, committed
print(DATASET, committed())
def scan(name):
    lf = pl.scan_parquet(table(name), hive_partitioning=True)
    return lf.filter(pl.col("recording").is_in(committed()))"""

NB = {
"01_exits_across_vms.ipynb": ["# Exits across VMs and vCPUs\nLatency histograms per reason and a heat map of exits over time, from the `exits` table (one row per VM exit; `duration_ns` = kvm_exit → next kvm_entry on the host perf clock).", SETUP,
"""exits = scan("exits").filter(pl.col("entry_time_ns").is_not_null()).collect()
vms = scan("vms").collect()
by_reason = exits.group_by("reason_name").agg(n=pl.len(), total_ns=pl.col("duration_ns").sum()).sort("n", descending=True)
by_vcpu = exits.join(vms.select("host", "recording", "vm_pid", "name"), on=["host", "recording", "vm_pid"], how="left").group_by("host", "recording", "name", "vcpu").agg(n=pl.len(), total_ns=pl.col("duration_ns").sum()).sort("host", "recording", "name", "vcpu")
print(by_reason); print(by_vcpu)""",
"""if TRUTH:
    want = {r["reason_name"]: (r["count"], r["total_ns"]) for r in TRUTH["exits"]["by_reason"]}
    got = {r["reason_name"]: (r["n"], r["total_ns"]) for r in by_reason.iter_rows(named=True)}
    assert got == want, (got, want)
    want_v = {(r["vm"], r["vcpu"]): (r["count"], r["total_ns"]) for r in TRUTH["exits"]["by_vm_vcpu"]}
    got_v = {(r["name"], r["vcpu"]): (r["n"], r["total_ns"]) for r in by_vcpu.iter_rows(named=True)}
    assert got_v == want_v, (got_v, want_v)
    print("matches truth.json")""",
"""import numpy as np
top = by_reason["reason_name"].head(6).to_list()
fig, axes = plt.subplots(2, 3, figsize=(12, 6))
bins = np.logspace(2, 8, 40)
for ax, reason in zip(axes.flat, top):
    d = exits.filter(pl.col("reason_name") == reason)["duration_ns"].to_numpy()
    ax.hist(d, bins=bins); ax.set_xscale("log"); ax.set_title(f"{reason} (n={len(d)})"); ax.set_xlabel("ns")
fig.tight_layout()""",
"""t0 = exits["exit_time_ns"].min()
heat = (exits.with_columns(bucket=((pl.col("exit_time_ns") - t0) // 10_000_000).cast(pl.Int64),
                           lane=pl.col("recording") + "/" + pl.col("vm_pid").cast(pl.String) + "/vcpu" + pl.col("vcpu").cast(pl.String))
        .group_by("lane", "bucket").agg(n=pl.len()))
lanes = sorted(heat["lane"].unique().to_list()); nb = int(heat["bucket"].max()) + 1
grid = np.zeros((len(lanes), nb))
for r in heat.iter_rows(named=True):
    grid[lanes.index(r["lane"]), r["bucket"]] = r["n"]
assert grid.sum() == exits.height
fig, ax = plt.subplots(figsize=(12, 1 + len(lanes) * 0.5))
im = ax.imshow(grid, aspect="auto", interpolation="nearest"); ax.set_yticks(range(len(lanes)), lanes)
ax.set_xlabel("10 ms buckets"); fig.colorbar(im, label="exits")"""],

"02_guest_functions.ipynb": ["# Which guest functions cause the most exit time\n`exits` ⋈ `exit_symbols` on (host, recording, vm_pid, guest_rip): `exit_symbols` holds the guest function at every distinct guest RIP of the exits, resolved at ingest through the VM's guest symbols (`--guest-symbols VM=BUNDLE`, `--guestkallsyms`), so the dataset alone answers it. A guest user-space RIP stays unresolved (null symbol): an exit does not say which guest process ran.", SETUP,
"""keys = ["host", "recording", "vm_pid", "guest_rip"]
exits = scan("exits").filter(pl.col("entry_time_ns").is_not_null() & pl.col("guest_rip").is_not_null())
syms = scan("exit_symbols").select(*keys, "symbol", "cpumode")
vms = scan("vms").select("host", "recording", "vm_pid", pl.col("name").alias("vm"))
j = exits.join(syms, on=keys, how="left").join(vms, on=["host", "recording", "vm_pid"], how="left").collect()
top = j.group_by("vm", "symbol").agg(n_exits=pl.len(), exit_ns=pl.col("duration_ns").sum()).sort("exit_ns", descending=True)
print(top.head(15))""",
"""assert top["n_exits"].sum() == j.height
assert top["exit_ns"].sum() == j["duration_ns"].sum()
if TRUTH:
    assert j.height == sum(r["count"] for r in TRUTH["exits"]["by_reason"])
    # The generator's truth: exits and their time per VM and guest kernel function.
    want = {(r["vm"], r["guest_symbol"]): (r["count"], r["total_ns"]) for r in TRUTH["exits"]["by_vm_guest_symbol"] if r["guest_kernel"]}
    got = {(r["vm"], r["symbol"]): (r["n_exits"], r["exit_ns"]) for r in top.filter(pl.col("symbol").is_not_null()).iter_rows(named=True)}
    assert got == want, (got, want)
    user = sum(r["count"] for r in TRUTH["exits"]["by_vm_guest_symbol"] if not r["guest_kernel"])
    assert top.filter(pl.col("symbol").is_null())["n_exits"].sum() == user
    print("resolved:", top.filter(pl.col("symbol").is_not_null())["n_exits"].sum(), "of", j.height, "(the rest: guest user space)")
h = top.head(12).filter(pl.col("symbol").is_not_null())
fig, ax = plt.subplots(figsize=(8, 4)); ax.barh(h["symbol"].to_list()[::-1], (h["exit_ns"] / 1e6).to_list()[::-1]); ax.set_xlabel("exit time (ms)")"""],

"03_flame_polars.ipynb": ["# Flame-graph-style aggregation in polars\nsamples ⋈ stacks ⋈ frames (host) and guest_samples ⋈ guest_stacks ⋈ guest_frames, grouped by the whole stack (root first), as folded lines `a;b;c count`. `stacks.frame_ids` lists each stack's frames leaf first; a frame's inline levels go outermost first (inline_depth 0).", SETUP,
"""def folded(samples, stacks, frames, events):
    # Profile events only (tracepoints are no profile: their samples fall where the event fires).
    profile = scan(events).filter(pl.col("type") != 2).select("host", "recording", "event_idx")  # 2: PERF_TYPE_TRACEPOINT
    s = (scan(samples).filter(pl.col("stack_id").is_not_null()).join(profile, on=["host", "recording", "event_idx"])
         .select("host", "recording", "stack_id", "comm"))
    # One row per stack position (pos 0 = leaf), then the frame's levels.
    pos = (scan(stacks).select("host", "recording", "stack_id", "frame_ids")
           .with_columns(pos=pl.int_ranges(pl.col("frame_ids").list.len()))
           .explode("frame_ids", "pos").rename({"frame_ids": "frame_id"}))
    names = scan(frames).select("host", "recording", "frame_id", "inline_depth",
                                name=pl.col("name").fill_null(pl.col("symbol")).fill_null("[unknown]"))
    f = (pos.join(names, on=["host", "recording", "frame_id"])
         .sort("host", "recording", "stack_id", "pos", "inline_depth", descending=[False, False, False, True, False])
         .group_by("host", "recording", "stack_id", maintain_order=True).agg(stack=pl.col("name").str.join(";")))
    return (s.join(f, on=["host", "recording", "stack_id"], how="left")
             .with_columns(stack=pl.col("comm").fill_null("?") + pl.lit(";") + pl.col("stack").fill_null(""))
             .group_by("stack").agg(n_samples=pl.len()).sort("n_samples", descending=True).collect())
host = folded("samples", "stacks", "frames", "events"); guest = folded("guest_samples", "guest_stacks", "guest_frames", "guest_events")
print(host.head(10)); print(guest.head(10))""",
"""def n_profile(samples, events):
    profile = scan(events).filter(pl.col("type") != 2).select("host", "recording", "event_idx")
    return scan(samples).filter(pl.col("stack_id").is_not_null()).join(profile, on=["host", "recording", "event_idx"]).select(pl.len()).collect().item()
n_host = n_profile("samples", "events"); n_guest = n_profile("guest_samples", "guest_events")
assert host["n_samples"].sum() == n_host and guest["n_samples"].sum() == n_guest
if TRUTH:
    assert n_guest == sum(v["guest_samples"] for v in TRUTH["vms"]), n_guest
    # The generator's folded ground truth: every host process that is no vCPU thread folds as
    # it says (comm with spaces as `_`, as inferno writes it).
    want = dict(l.rsplit(" ", 1) for l in open("../testdata/synth-small/folded.txt").read().splitlines() if not l.startswith("VM "))
    got = {s.replace(" ", "_", s.index(";")) if ";" in s else s: n for s, n in host.iter_rows()}
    assert want and all(got.get(k) == int(v) for k, v in want.items()), [(k, v, got.get(k)) for k, v in want.items() if got.get(k) != int(v)][:5]
    print(len(want), "host stacks equal the generator's folded.txt")
print(n_host, n_guest)
leaf = host.with_columns(leaf=pl.col("stack").str.split(";").list.last()).group_by("leaf").agg(pl.col("n_samples").sum()).sort("n_samples", descending=True).head(12)
fig, ax = plt.subplots(figsize=(8, 4)); ax.barh(leaf["leaf"].to_list()[::-1], leaf["n_samples"].to_list()[::-1]); ax.set_xlabel("host samples (self)")"""],

"04_duckdb.ipynb": ["# The same questions in DuckDB SQL\nThe partitioned dataset read with `read_parquet(..., hive_partitioning = true)`.", SETUP,
"""import duckdb
con = duckdb.connect()
rec = ",".join(f"'{r}'" for r in committed())
for t in ["exits", "vms", "samples", "stacks", "frames"]:
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{table(t)}', hive_partitioning = true) WHERE recording IN ({rec})")
by_reason = con.sql("SELECT reason_name, count(*) AS n, sum(duration_ns) AS total_ns FROM exits WHERE entry_time_ns IS NOT NULL GROUP BY 1 ORDER BY n DESC").pl()
by_vcpu = con.sql("SELECT v.name, e.vcpu, count(*) AS n, sum(e.duration_ns) AS total_ns FROM exits e LEFT JOIN vms v USING (host, recording, vm_pid) WHERE e.entry_time_ns IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2").pl()
print(by_reason); print(by_vcpu)""",
"""if TRUTH:
    assert {r["reason_name"]: (r["n"], r["total_ns"]) for r in by_reason.iter_rows(named=True)} == {r["reason_name"]: (r["count"], r["total_ns"]) for r in TRUTH["exits"]["by_reason"]}
    assert {(r["name"], r["vcpu"]): r["n"] for r in by_vcpu.iter_rows(named=True)} == {(r["vm"], r["vcpu"]): r["count"] for r in TRUTH["exits"]["by_vm_vcpu"]}
    print("matches truth.json")
# Exit latency histogram (log2 buckets) per reason, as perf kvm stat would bucket it.
hist = con.sql("SELECT reason_name, floor(log2(greatest(duration_ns, 1)))::INT AS log2_ns, count(*) AS n FROM exits WHERE entry_time_ns IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2").pl()
assert hist["n"].sum() == by_reason["n"].sum()
# Flame-style: folded host stacks.
folded = con.sql(\"\"\"WITH p AS (SELECT host, recording, stack_id, unnest(frame_ids) AS frame_id, unnest(generate_series(1, len(frame_ids))) AS pos FROM stacks),
  f AS (SELECT host, recording, stack_id, string_agg(coalesce(name, symbol, '[unknown]'), ';' ORDER BY pos DESC, inline_depth) AS stack FROM p JOIN frames USING (host, recording, frame_id) GROUP BY ALL)
  SELECT s.comm || ';' || coalesce(f.stack, '') AS stack, count(*) AS n_samples FROM samples s LEFT JOIN f USING (host, recording, stack_id) WHERE s.stack_id IS NOT NULL GROUP BY 1 ORDER BY 2 DESC\"\"\").pl()
assert folded["n_samples"].sum() == con.execute("SELECT count(*) FROM samples WHERE stack_id IS NOT NULL").fetchone()[0]
print(folded.head(5))
fig, ax = plt.subplots(figsize=(8, 4))
for reason in by_reason["reason_name"].head(4):
    h = hist.filter(pl.col("reason_name") == reason); ax.plot(h["log2_ns"], h["n"], marker="o", label=reason)
ax.set_xlabel("log2(ns)"); ax.set_ylabel("exits"); ax.legend()"""],

"05_spark.ipynb": ["# The same dataset on Spark (local mode)\nPer-reason exit counts with PySpark equal `kvmtrace exits --format json`; see docs/data-science.md.", SETUP,
"""import json, subprocess
from spark_exits import spark_counts, kvmtrace_counts
got = spark_counts(DATASET)
want = kvmtrace_counts(DATASET)
print(got)
assert got == want, (got, want)
if TRUTH:
    assert got == {r["reason_name"]: r["count"] for r in TRUTH["exits"]["by_reason"]}
print("spark == kvmtrace exits")"""],
}

for name, cells in NB.items():
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbf.v4.new_markdown_cell(cells[0])] + [nbf.v4.new_code_cell(c) for c in cells[1:]]
    nbf.write(nb, name)
