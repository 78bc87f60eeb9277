//! Ingest throughput on the shipped synth scenario (criterion; `cargo bench -p kvmtrace-ingest`).
//! Whole-command comparisons with perf and inferno are in benches/run.sh.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn ingest(c: &mut Criterion) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/synth-small/host.perf.data");
    let Ok(data) = std::fs::read(&file) else {
        return;
    };
    let tmp = std::env::temp_dir().join(format!("kvmtrace-bench-{}", std::process::id()));
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    for symbolize in [false, true] {
        group.bench_function(
            if symbolize {
                "synth-small/symbols"
            } else {
                "synth-small/no-symbols"
            },
            |b| {
                b.iter(|| {
                    let mut opts = kvmtrace_ingest::Options::default();
                    opts.output = tmp.join("ds");
                    opts.symbolize = symbolize;
                    kvmtrace_ingest::ingest_bytes(&data, "host.perf.data", &opts)
                        .map(|r| r.n_samples)
                        .unwrap_or(0)
                })
            },
        );
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&tmp);
}

criterion_group!(benches, ingest);
criterion_main!(benches);
