//! Exit codes and crash safety of the dataset.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use assert_cmd::prelude::OutputAssertExt;

fn kvmtrace() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin!("kvmtrace"))
}

/// Runs `cmd`, asserts its exit code with assert_cmd, returns its stderr.
fn expect_code(cmd: &mut Command, code: i32) -> String {
    let assert = cmd.assert().code(code);
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// A small real recording that ingests cleanly (committed with the fuzz seeds).
fn good_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ingest/tests/data/fuzz-seeds/perf_file/x86_64_perf3.8_singleprocess.data")
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("run kvmtrace");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_documents_exit_codes() {
    let assert = kvmtrace().arg("--help").assert().success();
    let text = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for line in [
        "0  success",
        "1  finished, but data was skipped",
        "2  error",
    ] {
        assert!(text.contains(line), "--help lacks {line:?}:\n{text}");
    }
}

#[test]
fn exit_0_on_a_good_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    expect_code(
        kvmtrace()
            .arg("ingest")
            .arg(good_file())
            .arg("-o")
            .arg(tmp.path().join("ds"))
            .arg("--no-symbols"),
        0,
    );
    assert!(tmp.path().join("ds/dataset.json").is_file());
}

#[test]
fn exit_1_on_a_truncated_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = std::fs::read(good_file()).expect("read");
    let cut = tmp.path().join("cut.data");
    std::fs::write(&cut, &data[..data.len() / 2]).expect("write");
    let err = expect_code(
        kvmtrace()
            .arg("ingest")
            .arg(&cut)
            .arg("-o")
            .arg(tmp.path().join("ds"))
            .arg("--no-symbols"),
        1,
    );
    assert!(
        err.contains("truncated") && err.contains("could not be read"),
        "{err}"
    );
    // The data that was read is there.
    assert!(tmp.path().join("ds/dataset.json").is_file());
}

#[test]
fn exit_2_on_a_non_perf_file_naming_file_and_offset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("notes.txt");
    std::fs::write(&bad, "this is not a perf.data file\n").expect("write");
    let err = expect_code(
        kvmtrace()
            .arg("ingest")
            .arg(&bad)
            .arg("-o")
            .arg(tmp.path().join("ds")),
        2,
    );
    assert!(
        err.contains("notes.txt") && err.contains("at byte 0"),
        "{err}"
    );
    assert!(
        !tmp.path().join("ds").exists(),
        "a failed ingest left a dataset"
    );

    let err = expect_code(
        kvmtrace()
            .arg("ingest")
            .arg(tmp.path().join("missing.data"))
            .arg("-o")
            .arg(tmp.path().join("ds")),
        2,
    );
    assert!(err.contains("missing.data"), "{err}");
}

/// The committed recordings of a dataset, from its manifests.
fn committed(ds: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(ds.join("recordings"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every table a committed recording lists has its partition with readable Parquet files.
fn assert_consistent(ds: &Path) {
    assert!(
        ds.join("dataset.json").is_file(),
        "{} lacks dataset.json",
        ds.display()
    );
    for name in committed(ds) {
        let text = std::fs::read_to_string(ds.join("recordings").join(&name)).expect("manifest");
        let v: serde_json::Value = serde_json::from_str(&text).expect("manifest json");
        let (rec, host) = (
            v["recording"].as_str().unwrap_or_default(),
            v["host"].as_str().unwrap_or_default(),
        );
        for t in v["tables"].as_array().expect("tables") {
            let table = t["table"].as_str().unwrap_or_default();
            let part = ds
                .join(table)
                .join(format!("host={host}"))
                .join(format!("recording={rec}"));
            assert!(
                part.is_dir(),
                "committed recording {rec} lacks {}",
                part.display()
            );
            for f in std::fs::read_dir(&part).expect("partition").flatten() {
                let bytes = std::fs::read(f.path()).expect("read parquet");
                assert!(
                    bytes.len() >= 12 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
                    "{} is not a whole Parquet file",
                    f.path().display()
                );
            }
        }
    }
}

/// A synth scenario big enough that ingest takes a few seconds in a debug build.
fn big_input(dir: &Path) -> PathBuf {
    let mut o = kvmtrace_synth::Options::default();
    o.out_dir = dir.join("synth");
    o.vms = 1;
    o.vcpus = 2;
    o.seconds = 1.0;
    kvmtrace_synth::run(&o).expect("synth");
    o.out_dir.join("host.perf.data")
}

fn spawn_and_kill(args: &[&std::ffi::OsStr], after: Duration) -> bool {
    let mut child = kvmtrace()
        .args(args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(after);
    let finished = child.try_wait().expect("wait").is_some();
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    finished
}

/// kill -9 during an ingest leaves the target path with the old dataset (or nothing), never a
/// half-written one; `--append` publishes a recording whole or not at all.
#[test]
fn sigkill_leaves_old_dataset_or_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = big_input(tmp.path());
    let small = good_file();
    let ds = tmp.path().join("ds");
    let t0 = std::time::Instant::now();
    let (code, err) = run(kvmtrace()
        .arg("ingest")
        .arg(&input)
        .arg("-o")
        .arg(&ds)
        .arg("--no-symbols"));
    assert!(code <= 1, "{err}");
    let full = t0.elapsed();
    let old = committed(&ds);
    assert_eq!(old.len(), 1);

    // Replace: killed at points spread over the run.
    let mut killed = 0;
    for frac in [0.1, 0.4, 0.7, 0.95] {
        let args = [
            "ingest".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            ds.as_os_str(),
            "--no-symbols".as_ref(),
        ];
        let finished = spawn_and_kill(&args, full.mul_f64(frac));
        killed += usize::from(!finished);
        if ds.exists() {
            assert_consistent(&ds);
            assert_eq!(committed(&ds), old, "killed at {frac}: the dataset changed");
        }
    }
    assert!(
        killed >= 2,
        "only {killed} runs were killed before they finished"
    );

    // Append: a second recording is listed only when it is complete.
    let ds2 = tmp.path().join("ds2");
    let (code, err) = run(kvmtrace()
        .arg("ingest")
        .arg(&small)
        .arg("-o")
        .arg(&ds2)
        .arg("--no-symbols"));
    assert_eq!(code, 0, "{err}");
    let before = committed(&ds2);
    for frac in [0.3, 0.9] {
        let args = [
            "ingest".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            ds2.as_os_str(),
            "--append".as_ref(),
            "--no-symbols".as_ref(),
        ];
        let _ = spawn_and_kill(&args, full.mul_f64(frac));
        assert_consistent(&ds2);
        let now = committed(&ds2);
        assert!(
            now == before || now.len() == before.len() + 1,
            "killed at {frac}: {now:?}"
        );
        if now.len() > before.len() {
            break;
        }
    }
    // A finished append lists both recordings.
    let (code, err) = run(kvmtrace()
        .arg("ingest")
        .arg(&input)
        .arg("-o")
        .arg(&ds2)
        .arg("--append")
        .arg("--no-symbols"));
    assert!(code <= 1, "{err}");
    assert_consistent(&ds2);
    assert_eq!(committed(&ds2).len(), before.len() + 1);
}

/// `-o` naming a FIFO (as `/dev/null` or a terminal, no regular file): the graph goes into it,
/// and it stays a FIFO. The write through a temporary file and a rename had replaced such a
/// path with a regular file (on this machine `kvmtrace flame … -o /dev/null` turned /dev/null
/// into a file, and every later reader of /dev/null saw kvmtrace's output).
#[test]
fn output_to_a_fifo_writes_into_it_and_keeps_it() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("out.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::open(&fifo)
                .expect("open fifo")
                .read_to_string(&mut text)
                .expect("read fifo");
            text
        })
    };
    let mut cmd = kvmtrace();
    cmd.arg("flame")
        .arg(good_file())
        .args(["--folded", "-o"])
        .arg(&fifo);
    let (code, err) = run(&mut cmd);
    assert_eq!(code, 0, "{err}");
    // Checked before waiting for the reader: were the FIFO replaced, its reader would wait
    // for a writer forever.
    let kind = std::fs::symlink_metadata(&fifo).expect("fifo").file_type();
    assert!(kind.is_fifo(), "{} is no longer a FIFO", fifo.display());
    let through_fifo = reader.join().expect("reader");
    let to_stdout = kvmtrace()
        .arg("flame")
        .arg(good_file())
        .args(["--folded", "-o", "-"])
        .output()
        .expect("run");
    assert!(!through_fifo.is_empty());
    assert_eq!(through_fifo, String::from_utf8_lossy(&to_stdout.stdout));
}

/// `kvmtrace flame` takes a perf.data directory (`perf record --threads`) for a perf.data, not
/// for a dataset: testdata/threads-zstd.data's 917 samples (perf script's count) are all in
/// the folded graph.
#[test]
fn flame_of_a_perf_data_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let folded = tmp.path().join("flame.folded");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/threads-zstd.data");
    expect_code(
        kvmtrace()
            .arg("flame")
            .arg(&dir)
            .args(["--host-only", "--weight", "samples", "--folded", "-o"])
            .arg(&folded),
        0,
    );
    let text = std::fs::read_to_string(&folded).expect("folded");
    let total: u64 = text
        .lines()
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    assert_eq!(total, 917, "{text}");
}
