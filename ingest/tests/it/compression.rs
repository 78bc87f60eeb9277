//! `Options::compression`: plain pages hold the same tables as zstd ones, in every file an
//! ingest writes (a table writer left out of the setting keeps zstd pages and fails here).

use std::path::{Path, PathBuf};

use arrow::compute::concat_batches;
use kvmtrace_ingest::Compression;
use parquet::basic::Compression as Codec;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::common::read_table;

fn ingest_synth_small(out: &Path, compression: Compression) -> Vec<String> {
    let (input, mut opts) = crate::common::synth_small(out);
    opts.compression = compression;
    let report = kvmtrace_ingest::run(&input, &opts).expect("ingest synth-small");
    let mut tables: Vec<String> = report.tables.into_iter().map(|(t, _)| t).collect();
    tables.sort();
    tables.dedup();
    tables
}

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

/// The codec of every column chunk of every Parquet file under `dir`, by file relative to it.
fn codecs(dir: &Path) -> Vec<(PathBuf, Vec<Codec>)> {
    let mut files = Vec::new();
    parquet_files(dir, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let reader =
                SerializedFileReader::new(std::fs::File::open(&f).expect("open")).expect("parquet");
            let codecs = reader
                .metadata()
                .row_groups()
                .iter()
                .flat_map(|rg| rg.columns().iter().map(|c| c.compression()))
                .collect();
            (
                f.strip_prefix(dir).expect("under dir").to_path_buf(),
                codecs,
            )
        })
        .collect()
}

#[test]
fn uncompressed_datasets_hold_the_same_tables() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (zstd, plain) = (tmp.path().join("zstd"), tmp.path().join("plain"));
    let tables = ingest_synth_small(&zstd, Compression::Zstd);
    assert_eq!(ingest_synth_small(&plain, Compression::None), tables);
    // The scenario exercises every kind of writer: session tables, tracepoints, the KVM
    // model's, frames and exit symbols, guest tables, meta and the report.
    for t in [
        "samples",
        "stacks",
        "frames",
        "exits",
        "vcpus",
        "vms",
        "tsc_offsets",
        "exit_symbols",
        "guest_samples",
        "guest_frames",
        "meta",
        "ingest_report",
        "kvm__kvm_userspace_exit",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} not written: {tables:?}");
    }

    let (zc, pc) = (codecs(&zstd), codecs(&plain));
    let names = |c: &[(PathBuf, Vec<Codec>)]| c.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>();
    assert_eq!(names(&zc), names(&pc), "the same files");
    for (file, codecs) in &pc {
        assert!(
            codecs.iter().all(|c| *c == Codec::UNCOMPRESSED),
            "{}: {codecs:?}",
            file.display()
        );
    }
    // The default compresses every file with rows (times and indices, delta-packed, stay
    // plain).
    for (file, codecs) in &zc {
        assert!(
            codecs.is_empty() || codecs.iter().any(|c| matches!(c, Codec::ZSTD(_))),
            "{}: {codecs:?}",
            file.display()
        );
    }

    let mut rows = 0;
    for t in &tables {
        let (a, b) = (read_table(&zstd, t), read_table(&plain, t));
        if a.is_empty() {
            assert!(b.is_empty(), "{t}");
            continue;
        }
        let a = concat_batches(&a[0].schema(), &a).expect("concat");
        let b = concat_batches(&b[0].schema(), &b).expect("concat");
        assert_eq!(a, b, "{t}");
        rows += a.num_rows();
    }
    assert!(rows > 10_000, "{rows} rows compared");
}
