#!/usr/bin/env bash
# Compiles the cargo-fuzz targets (fuzz/), if cargo-fuzz is installed; the seed and regression
# inputs are replayed by the ordinary test `replay_fuzz_corpus` (ingest/tests/it/robustness.rs).
# The toolchain is stable, so cargo-fuzz's nightly flags (-Zsanitizer, -Cpasses=sancov-module)
# need RUSTC_BOOTSTRAP=1. Built without a sanitizer (`-s none`): the targets are safe Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-build: cargo-fuzz is not installed (cargo install cargo-fuzz); skipped"
    exit 0
fi
start=$(date +%s)
RUSTC_BOOTSTRAP=1 cargo fuzz build -s none
echo "fuzz-build: targets built in $(( $(date +%s) - start )) s"
