//! The benchmark baseline of the ingest issue: a bare linux-perf-data record walk that parses
//! every record (samples included) and sums the callchain lengths, nothing else.
//! `cargo run --release -p kvmtrace-ingest --example lpd_walk -- perf.data`
#![allow(clippy::print_stdout)]

use linux_perf_data::linux_perf_event_reader::EventRecord;
use linux_perf_data::{PerfFileReader, PerfFileRecord};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: lpd_walk perf.data")?;
    let file = std::fs::File::open(&path)?;
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let PerfFileReader {
        mut perf_file,
        mut record_iter,
    } = PerfFileReader::parse_file(std::io::Cursor::new(&map[..]))?;
    let (mut records, mut samples, mut frames) = (0u64, 0u64, 0u64);
    while let Some(record) = record_iter.next_record(&mut perf_file)? {
        records += 1;
        if let PerfFileRecord::EventRecord { record, .. } = record
            && let Ok(EventRecord::Sample(s)) = record.parse()
        {
            samples += 1;
            frames += s.callchain.map_or(0, |c| c.len() as u64);
        }
    }
    println!("{records} records, {samples} samples, {frames} callchain entries");
    Ok(())
}
