#!/usr/bin/env bash
# Times whole commands side by side: kvmtrace vs a bare linux-perf-data walk, perf script,
# perf script | inferno-collapse-perf | inferno-flamegraph, and perf kvm stat report.
# Usage: benches/run.sh [WORKDIR]   (needs perf, inferno binaries on PATH, a release build)
# Writes benches/runs/<host>-<date>.csv with one row per measurement.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:-/tmp/kvmtrace-bench}"
mkdir -p "$work"
cd "$here/.."
cargo build --release --locked --bins --examples -p kvmtrace -p kvmtrace-ingest >/dev/null
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target/release/kvmtrace"
walk="$target/release/examples/lpd_walk"
csv="$here/runs/$(hostname)-$(date +%Y%m%d).csv"
echo "what,input,seconds" > "$csv"
t() { local name=$1 input=$2; shift 2; local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$name,$input,$(echo "$e - $s" | bc)" | tee -a "$csv"; }

cd "$work"
# ~100 MB host recording (issue 2): perf record -F 20000 -g -a for 20 s.
[ -f big.data ] || perf record -F 20000 -g -a -o big.data -- sleep 20 >/dev/null 2>&1
t lpd_walk big.data "$walk" big.data
t kvmtrace_ingest_no_symbols big.data "$bin" ingest big.data -o ds --no-symbols
t kvmtrace_ingest big.data "$bin" ingest big.data -o ds
t perf_script big.data sh -c 'perf script -i big.data > /dev/null'
t perf_script_inferno big.data sh -c 'perf script -i big.data | inferno-collapse-perf | inferno-flamegraph > ref.svg'
t kvmtrace_flame_from_perfdata big.data "$bin" flame big.data -o f.svg
t kvmtrace_flame_from_dataset big.data "$bin" flame ds -o f.svg
# Generated KVM host (issue 4).
[ -f syn/host.perf.data ] || "$bin" synth -o syn --vms 2 --vcpus 4 --seconds 5
t perf_kvm_stat_report syn/host.perf.data sh -c 'perf kvm -i syn/host.perf.data stat report --event=vmexit'
t kvmtrace_ingest syn/host.perf.data "$bin" ingest syn/host.perf.data -o synds --no-symbols
t kvmtrace_exits_from_dataset syn/host.perf.data "$bin" exits synds
t kvmtrace_exits_perf_compat syn/host.perf.data "$bin" exits synds --perf-compat
# Large generated files (issue 4: 10 M exits, 6.2 GB; issue 6: the join), with BENCH_LARGE=1.
if [ "${BENCH_LARGE:-0}" = 1 ]; then
  [ -f syn10m/host.perf.data ] || "$bin" synth -o syn10m --vms 2 --vcpus 4 --seconds 157 --freq 100
  t perf_kvm_stat_report syn10m/host.perf.data sh -c 'perf kvm -i syn10m/host.perf.data stat report'
  t kvmtrace_ingest syn10m/host.perf.data "$bin" ingest syn10m/host.perf.data -o syn10mds --no-symbols
  t kvmtrace_exits_from_dataset syn10m/host.perf.data "$bin" exits syn10mds
  [ -f synjoin/host.perf.data ] || "$bin" synth -o synjoin --vms 2 --vcpus 4 --seconds 60 --freq 20000
  t kvmtrace_ingest_guests synjoin "$bin" ingest synjoin/host.perf.data -o synjoinds \
    --guest-data 3100=synjoin/guest-0.perf.data,name=guest-0 \
    --guest-data 3200=synjoin/guest-1.perf.data,name=guest-1 \
    --guest-symbols 3100=synjoin/guest-0.bundle --guest-symbols 3200=synjoin/guest-1.bundle \
    --kallsyms synjoin/host.kallsyms --symfs synjoin/host-root
  t kvmtrace_flame_join_2_threads synjoin env POLARS_MAX_THREADS=2 "$bin" -j 2 flame synjoinds --folded -o j2.folded
  t kvmtrace_flame_join_1_thread synjoin env POLARS_MAX_THREADS=1 "$bin" -j 1 flame synjoinds --folded -o j1.folded
fi
echo "results: $csv"
