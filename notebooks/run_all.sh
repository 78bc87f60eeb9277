#!/usr/bin/env bash
# Executes every notebook top to bottom (nbclient) against $KVMTRACE_DATASET (default: the sample
# dataset, built here when missing), then the Spark test; fails on the first error.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export KVMTRACE_BIN="${KVMTRACE_BIN:-$here/../target/debug/kvmtrace}"
case "$KVMTRACE_BIN" in /*) ;; *) KVMTRACE_BIN="$here/../$KVMTRACE_BIN" ;; esac
if [ -z "${KVMTRACE_DATASET:-}" ]; then
    ./make_sample_dataset.sh >/dev/null
fi
for nb in [0-9][0-9]_*.ipynb; do
    start=$(date +%s)
    python3 - "$nb" <<'PY'
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
PY
    echo "run_all.sh: $nb ok ($(( $(date +%s) - start )) s)"
done
python3 spark_exits.py "${KVMTRACE_DATASET:-$here/../target/kvmtrace-sample.dataset}"
