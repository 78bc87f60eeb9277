//! `sql::query` against outputs kvmtrace did not make (synth truth.json, PVM counts.json), and
//! multi-recording datasets made with `ingest --append`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kvmtrace_analyze::Dataset;
use kvmtrace_analyze::sql::{Format, query, render};
use polars::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kvmtrace() -> PathBuf {
    let bin = std::env::var_os("KVMTRACE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/debug/kvmtrace"));
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --workspace --tests --bins` first",
        bin.display()
    );
    bin
}

/// `$KVMTRACE_CORPUS/kvm/kvm-stat-2vcpu` (a real PVM recording, without its extension), or
/// None (skip); a failure under CI=true.
fn pvm() -> Option<String> {
    let stem = std::env::var_os("KVMTRACE_CORPUS")
        .map(|c| PathBuf::from(c).join("kvm/kvm-stat-2vcpu"))
        .filter(|s| s.with_extension("data").exists());
    if stem.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "KVMTRACE_CORPUS/kvm/kvm-stat-2vcpu.data is required when CI=true"
        );
        eprintln!("skipping the PVM recording: set KVMTRACE_CORPUS=/work/shared/testdata");
    }
    stem.map(|s| s.display().to_string())
}

fn ingest(args: &[&str], out: &Path) -> Result<std::process::Output, Box<dyn std::error::Error>> {
    Ok(Command::new(kvmtrace())
        .args(args)
        .arg("-o")
        .arg(out)
        .output()?)
}

fn ingest_synth(out: &Path, append: bool) -> TestResult {
    let s = repo().join("testdata/synth-small");
    let p = |f: &str| s.join(f).to_string_lossy().into_owned();
    let mut args = vec![
        "ingest".to_string(),
        p("host.perf.data"),
        "--guest-data".into(),
        format!("3100={},name=guest-0", p("guest-0.perf.data")),
        "--guest-symbols".into(),
        format!("guest-0={}", p("guest-0.bundle")),
        "--kallsyms".into(),
        p("host.kallsyms"),
        "--symfs".into(),
        p("host-root"),
    ];
    if append {
        args.push("--append".into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = ingest(&refs, out)?;
    assert!(
        o.status.success(),
        "ingest failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(())
}

fn truth() -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        repo().join("testdata/synth-small/truth.json"),
    )?)?)
}

/// (string key, u64 count) pairs of a two-column result.
fn counts(df: &DataFrame) -> Result<BTreeMap<String, u64>, Box<dyn std::error::Error>> {
    let keys = df.column(df.get_column_names()[0].as_str())?.str()?.clone();
    let n = df
        .column(df.get_column_names()[1].as_str())?
        .cast(&DataType::UInt64)?;
    let n = n.u64()?;
    Ok(keys
        .iter()
        .zip(n.iter())
        .filter_map(|(k, n)| Some((k?.to_string(), n?)))
        .collect())
}

#[test]
fn exit_counts_by_reason_equal_synth_truth() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds_path = dir.path().join("ds");
    ingest_synth(&ds_path, false)?;
    let ds = Dataset::open(&ds_path)?;
    let df = query(
        &ds,
        "SELECT reason_name, count(*) AS n, sum(duration_ns) AS total_ns FROM exits \
         WHERE entry_time_ns IS NOT NULL GROUP BY 1 ORDER BY 1",
    )?;
    let truth = truth()?;
    let mut want = BTreeMap::new();
    let mut want_total = BTreeMap::new();
    for r in truth["exits"]["by_reason"].as_array().ok_or("by_reason")? {
        let name = r["reason_name"].as_str().ok_or("reason_name")?.to_string();
        want.insert(name.clone(), r["count"].as_u64().ok_or("count")?);
        want_total.insert(name, r["total_ns"].as_u64().ok_or("total_ns")?);
    }
    assert_eq!(counts(&df)?, want);
    let totals = df.select(["reason_name", "total_ns"])?;
    assert_eq!(counts(&totals)?, want_total);
    // Every renderer shows the same rows.
    assert_eq!(render(&df, Format::Csv)?.lines().count(), want.len() + 1);
    assert_eq!(render(&df, Format::Table)?.lines().count(), want.len() + 1);
    let json: serde_json::Value = serde_json::from_str(&render(&df, Format::Json)?)?;
    assert_eq!(json.as_array().map(Vec::len), Some(want.len()));
    Ok(())
}

#[test]
fn two_recordings_are_queried_together_and_newer_schemas_are_refused() -> TestResult {
    let Some(pvm_stem) = pvm() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let ds_path = dir.path().join("fleet");
    ingest_synth(&ds_path, false)?;
    let pvm = format!("{pvm_stem}.data");
    let o = ingest(&["ingest", &pvm, "--append"], &ds_path)?;
    assert!(
        o.status.success(),
        "append failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let ds = Dataset::open(&ds_path)?;
    assert_eq!(ds.recordings().len(), 2);
    // count(sample_idx), not count(*): polars 0.55 pushes a bare count(*) of only the partition
    // columns into the union of recordings and then needs the dtype-u128 feature.
    let by_rec = query(
        &ds,
        "SELECT host || '/' || recording AS rec, count(sample_idx) AS n FROM samples GROUP BY 1",
    )?;
    let by_rec = counts(&by_rec)?;
    assert_eq!(by_rec.len(), 2, "{by_rec:?}");
    let synth_host = ds
        .recordings()
        .iter()
        .find(|r| r.recording.starts_with("host_perf"))
        .ok_or("synth")?;
    let pvm_rec = ds
        .recordings()
        .iter()
        .find(|r| r.recording.starts_with("kvm_stat_2vcpu"))
        .ok_or("pvm")?;
    let pvm_key = format!("{}/{}", pvm_rec.host, pvm_rec.recording);
    assert_ne!(synth_host.host, pvm_rec.host);

    // PVM: per-event and per-thread sample counts equal perf script's (counts.json).
    let counts_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{pvm_stem}.counts.json"))?)?;
    let want_events: BTreeMap<String, u64> = counts_json["events"]
        .as_object()
        .ok_or("events")?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
        .collect();
    let sql = format!(
        "SELECT event, count(*) AS n FROM samples WHERE recording = '{}' AND event LIKE 'kvm:%' GROUP BY 1",
        pvm_rec.recording
    );
    assert_eq!(counts(&query(&ds, &sql)?)?, want_events);
    assert_eq!(by_rec[&pvm_key], want_events.values().sum::<u64>());
    let sql = format!(
        "SELECT comm || ' ' || event AS k, count(*) AS n FROM samples \
         WHERE recording = '{}' AND event LIKE 'kvm:%' GROUP BY 1",
        pvm_rec.recording
    );
    let mut want_threads = BTreeMap::new();
    for (comm, events) in counts_json["events_by_thread"]
        .as_object()
        .ok_or("events_by_thread")?
    {
        for (ev, n) in events.as_object().ok_or("thread events")? {
            want_threads.insert(format!("{comm} {ev}"), n.as_u64().ok_or("n")?);
        }
    }
    assert_eq!(counts(&query(&ds, &sql)?)?, want_threads);

    // Synth exits are unchanged by the second recording; every row names its recording.
    let sql = format!(
        "SELECT reason_name, count(*) AS n FROM exits WHERE recording = '{}' AND entry_time_ns IS NOT NULL GROUP BY 1",
        synth_host.recording
    );
    let truth = truth()?;
    let want: BTreeMap<String, u64> = truth["exits"]["by_reason"]
        .as_array()
        .ok_or("by_reason")?
        .iter()
        .filter_map(|r| Some((r["reason_name"].as_str()?.to_string(), r["count"].as_u64()?)))
        .collect();
    assert_eq!(counts(&query(&ds, &sql)?)?, want);
    let nulls = query(
        &ds,
        "SELECT count(exit_idx) AS n FROM exits WHERE host IS NULL OR recording IS NULL",
    )?;
    assert_eq!(
        nulls.column("n")?.cast(&DataType::UInt64)?.u64()?.get(0),
        Some(0)
    );

    // A dataset from a newer kvmtrace: analyze and ingest --append both refuse, saying why.
    let meta = ds_path.join("dataset.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&meta)?)?;
    let current = v["schema_version"].as_u64().ok_or("schema_version")?;
    let newer = current + 1;
    v["schema_version"] = newer.into();
    std::fs::write(&meta, serde_json::to_string(&v)?)?;
    let err = Dataset::open(&ds_path)
        .err()
        .ok_or("newer dataset was opened")?
        .to_string();
    assert!(
        err.contains(&format!("schema version {newer}")) && err.contains("upgrade kvmtrace"),
        "{err}"
    );
    let o = ingest(&["ingest", &pvm, "--append"], &ds_path)?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("schema version {newer}")) && stderr.contains("upgrade kvmtrace"),
        "{stderr}"
    );
    let o = Command::new(kvmtrace())
        .arg("sql")
        .arg(&ds_path)
        .arg("SELECT 1")
        .output()?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("schema version {newer}")),
        "{stderr}"
    );
    // Nothing was added by the refused append.
    assert_eq!(std::fs::read_dir(ds_path.join("recordings"))?.count(), 2);
    Ok(())
}

#[test]
fn unknown_table_and_bad_sql_are_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds_path = dir.path().join("ds");
    ingest_synth(&ds_path, false)?;
    let ds = Dataset::open(&ds_path)?;
    assert!(query(&ds, "SELECT * FROM no_such_table").is_err());
    assert!(query(&ds, "SELEC 1").is_err());
    Ok(())
}

/// A recording appended by an earlier kvmtrace of the same schema version lacks the `samples`
/// columns added since (`read_periods` in session 18, `intr_regs` … `aux` in 19): the tables of
/// both recordings are still queried together, its missing columns null.
#[test]
fn recordings_of_earlier_kvmtrace_versions_are_queried_together() -> TestResult {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::WriterProperties;

    let dir = tempfile::tempdir()?;
    let ds_path = dir.path().join("mixed");
    ingest_synth(&ds_path, false)?;
    let leader = repo().join("testdata/leader-sampling.data");
    let o = ingest(
        &[
            "ingest",
            &leader.to_string_lossy(),
            "--append",
            "--no-symbols",
        ],
        &ds_path,
    )?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let per_recording = "SELECT recording, count(sample_idx) AS n FROM samples GROUP BY 1";
    let read_periods = "SELECT recording, count(read_periods) AS n FROM samples GROUP BY 1";
    let before = counts(&query(&Dataset::open(&ds_path)?, per_recording)?)?;
    let leader_rec = before
        .keys()
        .find(|r| r.starts_with("leader_sampling"))
        .ok_or("leader recording")?
        .clone();
    // `perf report -D` counts 1775 PERF_RECORD_SAMPLE records in leader-sampling.data, each
    // reading its group.
    assert_eq!(before[&leader_rec], 1775);
    let reads = counts(&query(&Dataset::open(&ds_path)?, read_periods)?)?;
    assert_eq!(reads[&leader_rec], 1775);

    // Its samples file as an earlier kvmtrace wrote it: without the newer columns.
    let file = std::fs::read_dir(ds_path.join("samples"))?
        .flatten()
        .flat_map(|host| {
            std::fs::read_dir(host.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|rec| rec.path().join("part-0.parquet"))
        .find(|p| p.to_string_lossy().contains(&leader_rec))
        .ok_or("leader samples file")?;
    let newer = [
        "read_periods",
        "intr_regs_abi",
        "intr_regs",
        "data_page_size",
        "code_page_size",
        "aux",
    ];
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file)?)?;
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned();
    let batches = builder.build()?.collect::<Result<Vec<_>, _>>()?;
    let keep: Vec<usize> = batches[0]
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !newer.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keep.len() + newer.len(), batches[0].num_columns());
    let older: Vec<_> = batches
        .iter()
        .map(|b| b.project(&keep))
        .collect::<Result<_, _>>()?;
    let props = WriterProperties::builder()
        .set_key_value_metadata(kv)
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&file)?,
        older[0].schema(),
        Some(props),
    )?;
    for b in &older {
        w.write(b)?;
    }
    w.close()?;

    // Both recordings' rows: the synth host's events as its generator recorded them, the
    // leader-sampling records as perf counts them.
    let truth = truth()?;
    let synth_events: u64 = truth["events"]
        .as_object()
        .ok_or("events")?
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    let ds = Dataset::open(&ds_path)?;
    let after = counts(&query(&ds, per_recording)?)?;
    assert_eq!(after.len(), 2, "{after:?}");
    for (rec, n) in &after {
        let want = if *rec == leader_rec {
            1775
        } else {
            synth_events
        };
        assert_eq!(*n, want, "{rec}");
    }
    let reads = counts(&query(&ds, read_periods)?)?;
    assert_eq!(reads[&leader_rec], 0, "{reads:?}");
    Ok(())
}
