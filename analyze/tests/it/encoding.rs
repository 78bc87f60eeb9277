//! The encodings ingest writes read back exactly through polars: times and durations (`*_ns`)
//! and `sample_idx` are DELTA_BINARY_PACKED, whose deltas wrap around for values far apart (0 next to
//! u64::MAX); the reference is the values written.

use kvmtrace_ingest::table::{ColType, ColumnDef, TableWriter};
use polars::prelude::*;

#[test]
fn delta_packed_times_read_back_exactly_at_the_extremes() {
    let values: Vec<Option<u64>> = vec![
        Some(0),
        Some(u64::MAX),
        Some(1),
        None,
        Some(u64::MAX - 7),
        Some(1 << 63),
        Some((1 << 63) - 1),
        Some(42),
        Some(4_575_752_648_222),
        Some(4_575_752_648_221),
    ];
    // Enough rows for several miniblocks and pages, extremes in every one.
    let rows: Vec<Option<u64>> = (0..50_000).map(|i| values[i % values.len()]).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.parquet");
    let mut w = TableWriter::new(
        "t",
        path.clone(),
        &[
            ColumnDef::new("time_ns", ColType::U64, true),
            ColumnDef::new("duration_ns", ColType::I64, true),
            ColumnDef::new("sample_idx", ColType::U64, true),
        ],
        Vec::new(),
    );
    for v in &rows {
        w.u64(0, *v);
        w.i64(1, v.map(|v| v as i64));
        w.u64(2, *v);
        w.end_row().expect("row");
    }
    let (_, n) = w.close().expect("close");
    assert_eq!(n, rows.len() as u64);

    let df = ParquetReader::new(std::fs::File::open(&path).expect("open"))
        .finish()
        .expect("polars reads the file");
    let got: Vec<Option<u64>> = df
        .column("time_ns")
        .expect("time_ns")
        .u64()
        .expect("u64")
        .iter()
        .collect();
    assert_eq!(got, rows);
    let got: Vec<Option<i64>> = df
        .column("duration_ns")
        .expect("duration_ns")
        .i64()
        .expect("i64")
        .iter()
        .collect();
    let want: Vec<Option<i64>> = rows.iter().map(|v| v.map(|v| v as i64)).collect();
    assert_eq!(got, want);
    let got: Vec<Option<u64>> = df
        .column("sample_idx")
        .expect("sample_idx")
        .u64()
        .expect("u64")
        .iter()
        .collect();
    assert_eq!(got, rows);
    // The file says which columns are delta-packed (else this tests the plain encoding).
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::reader::SerializedFileReader::new(
            std::fs::File::open(&path).expect("open"),
        )
        .expect("parquet reads the file"),
    )
    .clone();
    for c in meta.row_group(0).columns() {
        assert!(
            c.encodings()
                .any(|e| e == parquet::basic::Encoding::DELTA_BINARY_PACKED),
            "{} is not delta-packed",
            c.column_path()
        );
    }
}
