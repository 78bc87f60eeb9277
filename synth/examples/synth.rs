//! Generates a scenario: `cargo run --release -p kvmtrace-synth --example synth -- DIR [vms vcpus seconds freq isa seed]`.
#![allow(clippy::print_stdout)]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = kvmtrace_synth::Options::default();
    o.out_dir = args
        .first()
        .cloned()
        .unwrap_or_else(|| "synth-out".into())
        .into();
    if let Some(v) = args.get(1) {
        o.vms = v.parse()?;
    }
    if let Some(v) = args.get(2) {
        o.vcpus = v.parse()?;
    }
    if let Some(v) = args.get(3) {
        o.seconds = v.parse()?;
    }
    if let Some(v) = args.get(4) {
        o.freq = v.parse()?;
    }
    if let Some(v) = args.get(5) {
        o.isa = v.parse()?;
    }
    if let Some(v) = args.get(6) {
        o.seed = v.parse()?;
    }
    let t = std::time::Instant::now();
    let r = kvmtrace_synth::run(&o)?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "host.perf.data {} bytes, {} exits ({} open), {} host samples, {} guest samples in {:.2} s ({:.1} MB/s)",
        r.host_bytes,
        r.exits,
        r.open_at_end,
        r.host_samples,
        r.guest_samples,
        s,
        r.host_bytes as f64 / 1e6 / s
    );
    Ok(())
}
