//! `kvmtrace bundle` on this machine, exactly as inside a guest.

use std::process::Command;

fn kvmtrace() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin!("kvmtrace"))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

#[test]
fn bundle_help_teaches_the_round_trip() {
    let out = kvmtrace()
        .args(["bundle", "--help"])
        .output()
        .expect("run kvmtrace");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "--binaries-of",
        "--all-running",
        "--vmlinux",
        "--guest-symbols VM=",
        "kptr_restrict",
        ".tar.zst",
    ] {
        assert!(
            help.contains(want),
            "bundle --help does not mention {want}:\n{help}"
        );
    }
}

#[test]
fn bundle_of_this_process_opens_and_names_its_kernel() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_path = tmp.path().join("here.bundle.tar.zst");
    let out = kvmtrace()
        .args([
            "bundle",
            "--vm",
            "here",
            "--binaries-of",
            &std::process::id().to_string(),
            "-o",
        ])
        .arg(&out_path)
        .output()
        .expect("run kvmtrace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !is_root() {
        // Without root, kallsyms addresses read as zero: a clear warning and exit 1.
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("kptr_restrict"), "{stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let bundle = kvmtrace_ingest::symbols::Bundle::open(&out_path).expect("open bundle");
    let manifest = bundle.manifest().expect("manifest");
    assert_eq!(manifest.vm, "here");
    assert!(
        !manifest.binaries.is_empty(),
        "the test binary's mapped ELF files are collected"
    );
    let kernel = bundle
        .kernel_symbols("[guest.kernel.kallsyms]")
        .expect("kallsyms")
        .expect("kallsyms present");
    assert!(!kernel.addresses_restricted());
    // Refuses to overwrite.
    let again = kvmtrace()
        .args(["bundle", "-o"])
        .arg(&out_path)
        .output()
        .expect("run kvmtrace");
    assert_eq!(again.status.code(), Some(2));
}
