#!/usr/bin/env bash
# Installs the notebooks' Python packages and executes every notebook plus the Spark test
# against a dataset ingested from testdata. Needs target/debug/kvmtrace (or $KVMTRACE_BIN) and Java 17.
# Measured on the shared 2-core dev box: cold pip install into a fresh venv 5m17s (pyspark 4.3.0 is a 456 MB sdist, 491 MB
# installed), notebooks/run_all.sh 3m06s (notebooks 01-04 ~8 s each, Spark ~2 min).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r notebooks/requirements.txt
notebooks/run_all.sh
