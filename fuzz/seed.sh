#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds from the test data (the corpus dirs are gitignored).
# Usage: fuzz/seed.sh [SHARED_TESTDATA]   (default: $KVMTRACE_CORPUS or ../shared/testdata)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=${1:-${KVMTRACE_CORPUS:-$repo/../shared/testdata}}
max=${SEED_MAX_BYTES:-262144}   # larger inputs make libFuzzer slow; skip them
c=$here/corpus
mkdir -p "$c"/{perf_file,perf_pipe,tracing_data,kallsyms,bundle}

# Committed seeds and regression inputs first (one directory per target).
for t in perf_file perf_pipe tracing_data kallsyms bundle; do
    for d in "$repo/ingest/tests/data/fuzz-seeds/$t" "$repo/ingest/tests/data/regressions/$t"; do
        [ -d "$d" ] && find "$d" -maxdepth 1 -type f -exec cp {} "$c/$t/" \;
    done
done

# perf.data files: file mode to perf_file, pipe mode (size field 16) without its header to perf_pipe.
for f in "$shared"/public/*.data "$shared"/kvm/*.data "$repo"/testdata/*/*.data; do
    [ -f "$f" ] || continue
    [ "$(stat -c %s "$f")" -le "$max" ] || continue
    if [ "$(od -An -tu8 -j8 -N8 "$f" | tr -d ' ')" = 16 ]; then
        tail -c +17 "$f" > "$c/perf_pipe/$(basename "$f")"
    else
        cp "$f" "$c/perf_file/"
    fi
done

# Tracing data blobs and format files.
cp "$repo"/ingest/tests/data/tracefmt/*.tracing "$repo"/ingest/tests/data/tracefmt/*.format "$c/tracing_data/"

# kallsyms NUL modules.
for dir in "$shared/kvm:guest" "$repo/testdata/synth-small/guest-0.bundle:"; do
    d=${dir%%:*}; p=${dir##*:}
    k=$d/${p:+$p.}kallsyms; m=$d/${p:+$p.}modules
    [ -f "$k" ] || continue
    { head -c 65536 "$k"; printf '\0'; [ -f "$m" ] && cat "$m"; } > "$c/kallsyms/$(basename "$d")-$p"
done
[ -f "$repo/testdata/synth-small/host.kallsyms" ] && head -c 65536 "$repo/testdata/synth-small/host.kallsyms" > "$c/kallsyms/host"

# Bundles as plain tar (the target compresses them).
for b in "$repo"/testdata/*/*.bundle; do
    [ -d "$b" ] || continue
    tar -C "$b" --owner=0 --group=0 --numeric-owner -cf - . | head -c "$max" > "$c/bundle/$(basename "$b").tar"
done
for t in "$c"/*; do echo "$(basename "$t"): $(ls "$t" | wc -l) seeds, $(du -sh "$t" | cut -f1)"; done
