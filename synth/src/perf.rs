//! A streaming writer of perf.data version 2 files ("PERFILE2", file mode,
//! little endian) as perf 6.1 writes them: header, id arrays, attrs, data
//! records, then feature sections. The header is rewritten at the end with
//! the data size and the feature bitmap.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;

pub(crate) const PERF_TYPE_SOFTWARE: u32 = 1;
pub(crate) const PERF_TYPE_TRACEPOINT: u32 = 2;
pub(crate) const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
pub(crate) const PERF_COUNT_SW_DUMMY: u64 = 9;

pub(crate) const SAMPLE_IP: u64 = 1;
pub(crate) const SAMPLE_TID: u64 = 1 << 1;
pub(crate) const SAMPLE_TIME: u64 = 1 << 2;
pub(crate) const SAMPLE_CALLCHAIN: u64 = 1 << 5;
pub(crate) const SAMPLE_CPU: u64 = 1 << 7;
pub(crate) const SAMPLE_PERIOD: u64 = 1 << 8;
pub(crate) const SAMPLE_RAW: u64 = 1 << 10;
pub(crate) const SAMPLE_IDENTIFIER: u64 = 1 << 16;

pub(crate) const FORMAT_ID: u64 = 1 << 2;
pub(crate) const FORMAT_LOST: u64 = 1 << 4;

/// perf_event_attr flag bits.
pub(crate) mod flag {
    pub(crate) const DISABLED: u64 = 1;
    pub(crate) const INHERIT: u64 = 1 << 1;
    pub(crate) const MMAP: u64 = 1 << 8;
    pub(crate) const COMM: u64 = 1 << 9;
    pub(crate) const FREQ: u64 = 1 << 10;
    pub(crate) const TASK: u64 = 1 << 13;
    pub(crate) const SAMPLE_ID_ALL: u64 = 1 << 18;
    pub(crate) const MMAP2: u64 = 1 << 23;
    pub(crate) const COMM_EXEC: u64 = 1 << 24;
    pub(crate) const KSYMBOL: u64 = 1 << 29;
    pub(crate) const BPF_EVENT: u64 = 1 << 30;
}

pub(crate) const MISC_KERNEL: u16 = 1;
pub(crate) const MISC_USER: u16 = 2;
pub(crate) const MISC_GUEST_KERNEL: u16 = 4;
pub(crate) const MISC_GUEST_USER: u16 = 5;
pub(crate) const MISC_COMM_EXEC: u16 = 1 << 13;
pub(crate) const MISC_BUILD_ID_SIZE: u16 = 1 << 15;

pub(crate) const PERF_CONTEXT_KERNEL: u64 = (-128i64) as u64;
pub(crate) const PERF_CONTEXT_USER: u64 = (-512i64) as u64;

const RECORD_MMAP: u32 = 1;
const RECORD_COMM: u32 = 3;
const RECORD_SAMPLE: u32 = 9;
const RECORD_FORK: u32 = 7;
const RECORD_MMAP2: u32 = 10;
const RECORD_FINISHED_ROUND: u32 = 68;
const RECORD_ID_INDEX: u32 = 69;
const RECORD_TIME_CONV: u32 = 79;
const RECORD_FINISHED_INIT: u32 = 82;

/// Header feature bits (tools/perf/util/header.h).
pub(crate) mod feat {
    pub(crate) const TRACING_DATA: usize = 1;
    pub(crate) const BUILD_ID: usize = 2;
    pub(crate) const HOSTNAME: usize = 3;
    pub(crate) const OSRELEASE: usize = 4;
    pub(crate) const VERSION: usize = 5;
    pub(crate) const ARCH: usize = 6;
    pub(crate) const NRCPUS: usize = 7;
    pub(crate) const CPUDESC: usize = 8;
    pub(crate) const CPUID: usize = 9;
    pub(crate) const TOTAL_MEM: usize = 10;
    pub(crate) const CMDLINE: usize = 11;
    pub(crate) const EVENT_DESC: usize = 12;
    pub(crate) const SAMPLE_TIME: usize = 21;
}

const HEADER_SIZE: u64 = 104;
const ATTR_SIZE: usize = 128;
const FILE_ATTR_SIZE: u64 = ATTR_SIZE as u64 + 16;

/// One event of the recording (a perf evsel).
#[derive(Debug, Clone)]
pub(crate) struct Evsel {
    pub(crate) name: String,
    pub(crate) type_: u32,
    pub(crate) config: u64,
    pub(crate) period_or_freq: u64,
    pub(crate) sample_type: u64,
    pub(crate) flags: u64,
    pub(crate) ids: Vec<u64>,
}

impl Evsel {
    pub(crate) fn attr_bytes(&self) -> [u8; ATTR_SIZE] {
        let mut a = [0u8; ATTR_SIZE];
        a[0..4].copy_from_slice(&self.type_.to_le_bytes());
        a[4..8].copy_from_slice(&(ATTR_SIZE as u32).to_le_bytes());
        a[8..16].copy_from_slice(&self.config.to_le_bytes());
        a[16..24].copy_from_slice(&self.period_or_freq.to_le_bytes());
        a[24..32].copy_from_slice(&self.sample_type.to_le_bytes());
        a[32..40].copy_from_slice(&(FORMAT_ID | FORMAT_LOST).to_le_bytes());
        a[40..48].copy_from_slice(&self.flags.to_le_bytes());
        a
    }
}

/// Parameters of PERF_RECORD_TIME_CONV (TSC <-> perf time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeConv {
    pub(crate) time_shift: u16,
    pub(crate) time_mult: u32,
    pub(crate) time_zero: u64,
}

/// Identification of the task and CPU a sideband record belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SampleId {
    pub(crate) pid: i32,
    pub(crate) tid: i32,
    pub(crate) time: u64,
    pub(crate) cpu: u32,
    /// Identifier (an evsel id), 0 for synthesized records.
    pub(crate) id: u64,
}

/// Streaming perf.data writer.
pub(crate) struct PerfWriter {
    path: PathBuf,
    out: BufWriter<File>,
    evsels: Vec<Evsel>,
    attr_offset: u64,
    data_offset: u64,
    pos: u64,
    buf: Vec<u8>,
    first_sample: Option<u64>,
    last_sample: u64,
    records_since_round: u32,
    /// Number of samples written per evsel.
    pub(crate) samples_per_evsel: Vec<u64>,
}

fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

impl PerfWriter {
    /// Creates the file and writes the placeholder header, id arrays and attrs.
    pub(crate) fn create(path: &Path, evsels: Vec<Evsel>) -> Result<PerfWriter, Error> {
        let file = File::create(path).map_err(Error::io(path))?;
        let mut w = PerfWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            samples_per_evsel: vec![0; evsels.len()],
            evsels,
            attr_offset: 0,
            data_offset: 0,
            pos: 0,
            buf: Vec::with_capacity(4096),
            first_sample: None,
            last_sample: 0,
            records_since_round: 0,
        };
        w.put(&[0u8; HEADER_SIZE as usize])?;
        let mut id_offsets = Vec::new();
        for e in w.evsels.clone() {
            id_offsets.push(w.pos);
            let mut b = Vec::new();
            for id in &e.ids {
                b.extend_from_slice(&id.to_le_bytes());
            }
            w.put(&b)?;
        }
        w.attr_offset = w.pos;
        for (e, off) in w.evsels.clone().iter().zip(id_offsets) {
            let mut b = e.attr_bytes().to_vec();
            b.extend_from_slice(&off.to_le_bytes());
            b.extend_from_slice(&((e.ids.len() * 8) as u64).to_le_bytes());
            w.put(&b)?;
        }
        w.data_offset = w.pos;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<(), Error> {
        self.out.write_all(b).map_err(Error::io(&self.path))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn begin(&mut self, type_: u32, misc: u16) {
        self.buf.clear();
        self.buf.extend_from_slice(&type_.to_le_bytes());
        self.buf.extend_from_slice(&misc.to_le_bytes());
        self.buf.extend_from_slice(&0u16.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn str_padded(&mut self, s: &str) {
        let n = pad8(s.len() + 1);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.resize(self.buf.len() + n - s.len(), 0);
    }

    fn trailer(&mut self, sid: &SampleId) {
        self.u32(sid.pid as u32);
        self.u32(sid.tid as u32);
        self.u64(sid.time);
        self.u32(sid.cpu);
        self.u32(0);
        self.u64(sid.id);
    }

    fn finish_record(&mut self) -> Result<(), Error> {
        let size = self.buf.len() as u16;
        self.buf[6..8].copy_from_slice(&size.to_le_bytes());
        let b = std::mem::take(&mut self.buf);
        let r = self.put(&b);
        self.buf = b;
        self.records_since_round += 1;
        r
    }

    /// The id of `evsel` on `cpu`.
    pub(crate) fn id(&self, evsel: usize, cpu: u32) -> u64 {
        self.evsels
            .get(evsel)
            .and_then(|e| e.ids.get(cpu as usize))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn id_index(&mut self) -> Result<(), Error> {
        self.begin(RECORD_ID_INDEX, 0);
        let n: usize = self.evsels.iter().map(|e| e.ids.len()).sum();
        self.u64(n as u64);
        for e in self.evsels.clone() {
            for (cpu, id) in e.ids.iter().enumerate() {
                self.u64(*id);
                self.u64(cpu as u64);
                self.u64(cpu as u64);
                self.u64(u64::MAX);
            }
        }
        self.finish_record()
    }

    pub(crate) fn time_conv(&mut self, tc: &TimeConv) -> Result<(), Error> {
        self.begin(RECORD_TIME_CONV, 0);
        self.u64(u64::from(tc.time_shift));
        self.u64(u64::from(tc.time_mult));
        self.u64(tc.time_zero);
        self.u64(0); // time_cycles
        self.u64(0); // time_mask
        self.buf.push(1); // cap_user_time_zero
        self.buf.push(0); // cap_user_time_short
        self.buf.extend_from_slice(&[0u8; 6]);
        self.finish_record()
    }

    pub(crate) fn finished_init(&mut self) -> Result<(), Error> {
        self.begin(RECORD_FINISHED_INIT, 0);
        self.finish_record()
    }

    pub(crate) fn finished_round(&mut self) -> Result<(), Error> {
        self.begin(RECORD_FINISHED_ROUND, 0);
        self.finish_record()?;
        self.records_since_round = 0;
        Ok(())
    }

    /// Writes a FINISHED_ROUND when enough records accumulated.
    pub(crate) fn maybe_round(&mut self) -> Result<(), Error> {
        if self.records_since_round >= 16384 {
            self.finished_round()?;
        }
        Ok(())
    }

    pub(crate) fn comm(&mut self, sid: &SampleId, comm: &str, exec: bool) -> Result<(), Error> {
        self.begin(RECORD_COMM, if exec { MISC_COMM_EXEC } else { 0 });
        self.u32(sid.pid as u32);
        self.u32(sid.tid as u32);
        let c: String = comm.chars().take(15).collect();
        self.str_padded(&c);
        self.trailer(sid);
        self.finish_record()
    }

    pub(crate) fn fork(&mut self, sid: &SampleId, ppid: i32, ptid: i32) -> Result<(), Error> {
        self.begin(RECORD_FORK, 0);
        self.u32(sid.pid as u32);
        self.u32(ppid as u32);
        self.u32(sid.tid as u32);
        self.u32(ptid as u32);
        self.u64(sid.time);
        self.trailer(sid);
        self.finish_record()
    }

    /// PERF_RECORD_MMAP of a kernel (pid -1, "[kernel.kallsyms]_text").
    pub(crate) fn kernel_mmap(
        &mut self,
        sid: &SampleId,
        start: u64,
        len: u64,
    ) -> Result<(), Error> {
        self.begin(RECORD_MMAP, MISC_KERNEL);
        self.u32(u32::MAX);
        self.u32(0);
        self.u64(start);
        self.u64(len);
        self.u64(start);
        self.str_padded("[kernel.kallsyms]_text");
        self.trailer(sid);
        self.finish_record()
    }

    /// PERF_RECORD_MMAP2 of an executable file mapping.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mmap2(
        &mut self,
        sid: &SampleId,
        start: u64,
        len: u64,
        pgoff: u64,
        ino: u64,
        filename: &str,
    ) -> Result<(), Error> {
        self.begin(RECORD_MMAP2, MISC_USER);
        self.u32(sid.pid as u32);
        self.u32(sid.tid as u32);
        self.u64(start);
        self.u64(len);
        self.u64(pgoff);
        self.u32(0xfd); // maj
        self.u32(1); // min
        self.u64(ino);
        self.u64(0); // ino_generation
        self.u32(5); // PROT_READ | PROT_EXEC
        self.u32(2); // MAP_PRIVATE
        self.str_padded(filename);
        self.trailer(sid);
        self.finish_record()
    }

    /// PERF_RECORD_SAMPLE; `raw` is the tracepoint payload (unpadded).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sample(
        &mut self,
        evsel: usize,
        misc: u16,
        sid: &SampleId,
        ip: u64,
        period: u64,
        chain: &[u64],
        raw: Option<&[u8]>,
    ) -> Result<(), Error> {
        let st = self.evsels.get(evsel).map(|e| e.sample_type).unwrap_or(0);
        self.begin(RECORD_SAMPLE, misc);
        self.u64(sid.id);
        self.u64(ip);
        self.u32(sid.pid as u32);
        self.u32(sid.tid as u32);
        self.u64(sid.time);
        self.u32(sid.cpu);
        self.u32(0);
        if st & SAMPLE_PERIOD != 0 {
            self.u64(period);
        }
        self.u64(chain.len() as u64);
        for &c in chain {
            self.u64(c);
        }
        if st & SAMPLE_RAW != 0 {
            let raw = raw.unwrap_or(&[]);
            // The kernel pads size(u32) + data to a multiple of 8.
            let total = pad8(raw.len() + 4);
            self.u32((total - 4) as u32);
            self.buf.extend_from_slice(raw);
            self.buf.resize(self.buf.len() + total - 4 - raw.len(), 0);
        }
        if let Some(c) = self.samples_per_evsel.get_mut(evsel) {
            *c += 1;
        }
        if self.first_sample.is_none() {
            self.first_sample = Some(sid.time);
        }
        self.last_sample = self.last_sample.max(sid.time);
        self.finish_record()
    }

    /// Writes the feature sections and rewrites the header. `features` is
    /// (feature bit, body) in increasing bit order.
    pub(crate) fn finish(mut self, mut features: Vec<(usize, Vec<u8>)>) -> Result<u64, Error> {
        let data_size = self.pos - self.data_offset;
        let first = self.first_sample.unwrap_or(0);
        let mut st = Vec::new();
        st.extend_from_slice(&first.to_le_bytes());
        st.extend_from_slice(&self.last_sample.to_le_bytes());
        features.push((feat::SAMPLE_TIME, st));
        features.sort_by_key(|f| f.0);
        let table_size = features.len() as u64 * 16;
        let mut off = self.pos + table_size;
        let mut table = Vec::new();
        let mut bitmap = [0u64; 4];
        for (bit, body) in &features {
            bitmap[bit / 64] |= 1 << (bit % 64);
            table.extend_from_slice(&off.to_le_bytes());
            table.extend_from_slice(&(body.len() as u64).to_le_bytes());
            off += body.len() as u64;
        }
        self.put(&table)?;
        for (_, body) in &features {
            self.put(body)?;
        }
        let total = self.pos;
        let mut h = Vec::with_capacity(HEADER_SIZE as usize);
        h.extend_from_slice(b"PERFILE2");
        h.extend_from_slice(&HEADER_SIZE.to_le_bytes());
        h.extend_from_slice(&FILE_ATTR_SIZE.to_le_bytes());
        h.extend_from_slice(&self.attr_offset.to_le_bytes());
        h.extend_from_slice(&(self.evsels.len() as u64 * FILE_ATTR_SIZE).to_le_bytes());
        h.extend_from_slice(&self.data_offset.to_le_bytes());
        h.extend_from_slice(&data_size.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        for b in bitmap {
            h.extend_from_slice(&b.to_le_bytes());
        }
        let path = self.path.clone();
        self.out
            .seek(SeekFrom::Start(0))
            .map_err(Error::io(&path))?;
        self.out.write_all(&h).map_err(Error::io(&path))?;
        self.out.flush().map_err(Error::io(&path))?;
        Ok(total)
    }

    pub(crate) fn evsels(&self) -> &[Evsel] {
        &self.evsels
    }
}

/// Feature body helpers (perf's do_write_string etc.).
pub(crate) mod body {
    /// perf_header_string: u32 length (NUL included, aligned to 64) + bytes.
    pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
        let len = s.len() + 1;
        let olen = (len + 63) & !63;
        out.extend_from_slice(&(olen as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.resize(out.len() + olen - s.len(), 0);
    }

    pub(crate) fn string_only(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        string(&mut v, s);
        v
    }

    pub(crate) fn cmdline(args: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(args.len() as u32).to_le_bytes());
        for a in args {
            string(&mut v, a);
        }
        v
    }

    pub(crate) fn nrcpus(n: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&n.to_le_bytes());
        v.extend_from_slice(&n.to_le_bytes());
        v
    }

    pub(crate) fn event_desc(evsels: &[super::Evsel]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(evsels.len() as u32).to_le_bytes());
        v.extend_from_slice(&(super::ATTR_SIZE as u32).to_le_bytes());
        for e in evsels {
            v.extend_from_slice(&e.attr_bytes());
            v.extend_from_slice(&(e.ids.len() as u32).to_le_bytes());
            string(&mut v, &e.name);
            for id in &e.ids {
                v.extend_from_slice(&id.to_le_bytes());
            }
        }
        v
    }

    /// One build-id entry (perf_record_header_build_id, type 0 as perf writes it).
    pub(crate) fn build_id(out: &mut Vec<u8>, misc: u16, pid: i32, id: &[u8; 20], name: &str) {
        let name_len = (name.len() + 1 + 63) & !63;
        let size = 8 + 4 + 24 + name_len;
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(misc | super::MISC_BUILD_ID_SIZE).to_le_bytes());
        out.extend_from_slice(&(size as u16).to_le_bytes());
        out.extend_from_slice(&pid.to_le_bytes());
        out.extend_from_slice(id);
        out.push(20);
        out.extend_from_slice(&[0u8; 3]);
        out.extend_from_slice(name.as_bytes());
        out.resize(out.len() + name_len - name.len(), 0);
    }
}
