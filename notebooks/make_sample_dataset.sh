#!/usr/bin/env bash
# Builds the sample dataset the notebooks default to (target/kvmtrace-sample.dataset) from
# testdata/synth-small with the kvmtrace binary in $KVMTRACE_BIN (default target/debug/kvmtrace).
# Usage (from anywhere): notebooks/make_sample_dataset.sh [OUT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${KVMTRACE_BIN:-target/debug/kvmtrace}"
out="${1:-target/kvmtrace-sample.dataset}"
src=testdata/synth-small
if [ ! -x "$bin" ]; then
    echo "make_sample_dataset.sh: no kvmtrace binary at $bin (cargo build --workspace --bins, or set KVMTRACE_BIN)" >&2
    exit 2
fi
"$bin" ingest "$src/host.perf.data" \
    --guest-data "3100=$src/guest-0.perf.data,name=guest-0" \
    --guest-symbols "guest-0=$src/guest-0.bundle" \
    --kallsyms "$src/host.kallsyms" --symfs "$src/host-root" \
    -o "$out"
echo "$out"
