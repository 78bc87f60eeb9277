//! The I/O edge of ingest: walks the records of a perf.data file (mapped) or pipe stream (any
//! `Read`), decompresses `PERF_RECORD_COMPRESSED`/`COMPRESSED2`, swallows the payloads that
//! follow `HEADER_TRACING_DATA` and `AUXTRACE` records, and hands every record in file order to a
//! [`RecordHandler`].
//!
//! Why not linux-perf-data: it stops at pipe-mode `HEADER_TRACING_DATA` (the payload after the
//! record is not counted in its size), refuses files whose data size is 0 (unfinished
//! recordings), drops sample fields (READ groups, branch stacks, weights) and does not report
//! byte offsets. kvmtrace must read all of those and say where it stopped.

use std::io::Read;

use crate::error::{Error, Warning, WarningKind};
use crate::perf::attr::PerfEventAttr;
use crate::perf::bytes::ByteCursor;
use crate::perf::header::{self, AttrEntry, Features, FileHeader, Section};
use crate::perf::records::record_type as rt;

/// What a record walk tells the consumer.
pub trait RecordHandler {
    /// The events known before the first record (file mode), or each `HEADER_ATTR` (pipe mode).
    fn on_attr(&mut self, entry: AttrEntry);
    /// One `HEADER_EVENT_TYPE` entry (id = attr config, name).
    fn on_event_type(&mut self, id: u64, name: String);
    /// Header features (file mode: all at once before records; pipe mode: as they arrive).
    fn on_feature(&mut self, feat: u32, data: &[u8]);
    /// A record. `offset` is its byte offset in the file, or in the decompressed stream of the
    /// `COMPRESSED` record at `offset` for records that were compressed.
    fn on_record(&mut self, type_: u32, misc: u16, body: &[u8], offset: u64);
    /// Bytes consumed so far (for progress).
    fn on_progress(&mut self, _bytes: u64) {}
    /// A file of a perf.data directory (0: the header file's data section, k: the k-th
    /// `data.N`) is about to have its turn: the records until [`RecordHandler::on_turn_end`]
    /// are its.
    fn on_turn(&mut self, _file: usize, _files: usize) {}
    /// The turn of `file` is over; `done` when it has no more records.
    fn on_turn_end(&mut self, _file: usize, _done: bool) {}
}

/// Counts of what the walk did, for the ingest report.
#[derive(Debug, Default, Clone)]
pub struct WalkReport {
    /// Whether the input was a pipe-mode stream.
    pub pipe_mode: bool,
    /// Bytes of input read.
    pub bytes_read: u64,
    /// Records by type, including the compressed containers themselves.
    pub records: std::collections::BTreeMap<u32, (u64, u64)>,
    /// Warnings (truncation, corrupt records, skipped payloads).
    pub warnings: Vec<Warning>,
    /// Total size of the input, when known.
    pub input_size: Option<u64>,
    /// Bytes of records that could not be read (truncation or corruption stopped the walk),
    /// including `bytes_missing`.
    pub bytes_unread: u64,
    /// Of those, bytes the header's data section promises beyond the end of the file.
    pub bytes_missing: u64,
}

impl WalkReport {
    fn count(&mut self, type_: u32, size: u64) {
        let e = self.records.entry(type_).or_default();
        e.0 += 1;
        e.1 += size;
    }
}

/// The largest single record we accept from a compressed stream (records are at most 64 KiB;
/// COMPRESSED2 containers are bigger but are not nested).
const MAX_RECORD: usize = 1 << 16;

/// Incremental zstd decompression shared by all `COMPRESSED` records of one file: perf keeps one
/// stream, and a record may straddle two containers.
struct Decompressor {
    ctx: zstd::stream::raw::Decoder<'static>,
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl Decompressor {
    fn new() -> std::io::Result<Self> {
        Ok(Decompressor {
            ctx: zstd::stream::raw::Decoder::new()?,
            pending: Vec::new(),
            out: vec![0u8; 1 << 20],
        })
    }

    /// Decompresses `src`, appending to `pending`.
    fn feed(&mut self, src: &[u8]) -> std::io::Result<()> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut input = InBuffer::around(src);
        loop {
            let mut output = OutBuffer::around(&mut self.out[..]);
            self.ctx.run(&mut input, &mut output)?;
            let produced = output.pos();
            self.pending.extend_from_slice(&self.out[..produced]);
            if input.pos() >= src.len() && produced < self.out.len() {
                break;
            }
            if produced == 0 && input.pos() >= src.len() {
                break;
            }
        }
        Ok(())
    }
}

/// Bytes of records perf reads from one file of a perf.data directory before it turns to the
/// next (`READER_MAX_SIZE` in perf's session.c).
const READER_MAX_SIZE: u64 = 2 << 20;

struct Walker<'h, H: RecordHandler> {
    handler: &'h mut H,
    report: WalkReport,
    decomp: Option<Decompressor>,
    /// Whether `records` reports its position after each record (a directory's files report
    /// the bytes read of them all, after each turn).
    progress_per_record: bool,
}

impl<H: RecordHandler> Walker<'_, H> {
    /// Warns when the input ends inside a record that was compressed (a record may straddle two
    /// containers; the second never came).
    fn pending_warning(&mut self) {
        let pending = self.decomp.as_ref().map_or(0, |d| d.pending.len());
        if pending > 0 {
            self.report.warnings.push(Warning {
                kind: WarningKind::Truncated,
                offset: None,
                message: format!("the input ends inside a compressed record: {pending} bytes of decompressed data hold no complete record"),
            });
        }
    }

    /// Walks the records of `data[start..end]` until `budget` bytes of records have been read;
    /// `base` is added to every offset handed on (a `data.N` file of a perf.data directory
    /// continues the offsets of what came before it), `label` names the file in warnings.
    /// Returns where the walk stopped, and whether it stopped for the budget (records remain).
    fn records(
        &mut self,
        data: &[u8],
        (start, end): (u64, u64),
        base: u64,
        label: &str,
        budget: u64,
    ) -> (u64, bool) {
        let mut pos = start;
        while pos < end {
            if pos - start >= budget {
                return (pos, true);
            }
            let remaining = end - pos;
            let at = base + pos;
            if remaining < 8 {
                self.warn(
                    WarningKind::Truncated,
                    pos,
                    format!(
                        "{label}{remaining} bytes at the end of the data section do not hold a record header"
                    ),
                );
                break;
            }
            let Some(hb) = slice(data, pos, 8) else { break };
            let mut hc = ByteCursor::new(hb);
            let (t, misc, size) = (
                hc.u32().unwrap_or(0),
                hc.u16().unwrap_or(0),
                hc.u16().unwrap_or(0) as u64,
            );
            if size < 8 {
                self.warn(WarningKind::CorruptRecord, pos, format!("{label}record of type {t} with size {size} (< 8): cannot continue; {remaining} bytes not read"));
                break;
            }
            if size > remaining {
                self.warn(WarningKind::Truncated, pos, format!("{label}record of type {t} needs {size} bytes but only {remaining} bytes remain: the file is truncated"));
                break;
            }
            let Some(body) = slice(data, pos + 8, size - 8) else {
                break;
            };
            let extra = self.record(t, misc, body, at, false);
            pos += size;
            if extra > 0 {
                // File-mode AUXTRACE payloads sit inline after the record.
                pos = pos.saturating_add(extra);
                if pos > end {
                    self.warn(
                        WarningKind::Truncated,
                        pos,
                        format!("{label}AUXTRACE payload runs past the end of the data"),
                    );
                    pos = end;
                }
            }
            if self.progress_per_record {
                self.handler.on_progress(base + pos);
            }
        }
        (pos, false)
    }

    /// The records of a perf.data directory as perf reads them
    /// (`__perf_session__process_dir_events`): the header file's data section and each
    /// `data.N` take turns, each read until [`READER_MAX_SIZE`] bytes of records have passed,
    /// every file with a zstd stream of its own. Which of two records of equal time comes first
    /// is the order they are read in. Returns where the header file's section stopped; the
    /// bytes of the `data.N` files read and not read are added to the report.
    fn round_robin(&mut self, data: &[u8], section: (u64, u64), streams: &[Stream<'_>]) -> u64 {
        struct Turn<'a> {
            bytes: &'a [u8],
            release: Option<&'a (dyn Fn(usize, usize) + Send + Sync)>,
            released: u64,
            pos: u64,
            end: u64,
            base: u64,
            label: String,
            decomp: Option<Decompressor>,
            done: bool,
        }
        let mut turns = vec![Turn {
            bytes: data,
            release: None,
            released: 0,
            pos: section.0,
            end: section.1,
            base: 0,
            label: String::new(),
            decomp: None,
            done: false,
        }];
        let mut base = data.len() as u64;
        for st in streams {
            let len = st.bytes.len() as u64;
            turns.push(Turn {
                bytes: st.bytes,
                release: st.release.as_deref(),
                released: 0,
                pos: 0,
                end: len,
                base,
                label: format!("{}: ", st.name),
                decomp: None,
                done: false,
            });
            base += len;
        }
        let n = turns.len();
        let mut i = 0;
        let mut read = 0;
        self.progress_per_record = false;
        while turns.iter().any(|t| !t.done) {
            let file = i;
            let Some(t) = turns.get_mut(file) else { break };
            i = (i + 1) % n;
            if t.done {
                continue;
            }
            std::mem::swap(&mut self.decomp, &mut t.decomp);
            self.handler.on_turn(file, n);
            let (pos, more) =
                self.records(t.bytes, (t.pos, t.end), t.base, &t.label, READER_MAX_SIZE);
            self.handler.on_turn_end(file, !more);
            std::mem::swap(&mut self.decomp, &mut t.decomp);
            read += pos - t.pos;
            t.pos = pos;
            t.done = !more;
            // Released a turn at a time (the hashing thread beside the walk, behind it, reads
            // a released page back from the page cache).
            let upto = if t.done {
                t.end
            } else {
                pos / READER_MAX_SIZE * READER_MAX_SIZE
            };
            if let Some(release) = t.release
                && upto > t.released
            {
                release(t.released as usize, upto as usize);
                t.released = upto;
            }
            self.handler.on_progress(read);
        }
        self.progress_per_record = true;
        for t in turns.iter_mut().skip(1) {
            self.report.bytes_read += t.pos;
            self.report.bytes_unread += t.end - t.pos;
            // A compressed record cut at the end of one file does not continue in the next.
            std::mem::swap(&mut self.decomp, &mut t.decomp);
            self.pending_warning();
        }
        self.decomp = turns.first_mut().and_then(|t| t.decomp.take());
        turns.first().map_or(section.0, |t| t.pos)
    }

    fn warn(&mut self, kind: WarningKind, offset: u64, message: String) {
        self.report.warnings.push(Warning {
            kind,
            offset: Some(offset),
            message,
        });
    }

    /// Handles one record (already read whole). Returns the number of extra payload bytes that
    /// follow the record in the stream (pipe-mode TRACING_DATA, AUXTRACE).
    fn record(&mut self, type_: u32, misc: u16, body: &[u8], offset: u64, pipe: bool) -> u64 {
        self.report.count(type_, body.len() as u64 + 8);
        match type_ {
            rt::COMPRESSED | rt::COMPRESSED2 => {
                let payload = if type_ == rt::COMPRESSED2 {
                    let mut c = ByteCursor::new(body);
                    let size = c.u64().unwrap_or(0) as usize;
                    c.rest().get(..size).unwrap_or(c.rest())
                } else {
                    body
                };
                self.decompress(payload, offset);
                0
            }
            rt::HEADER_ATTR if pipe => {
                self.pipe_attr(body, offset);
                0
            }
            rt::HEADER_EVENT_TYPE => {
                let mut c = ByteCursor::new(body);
                if let (Some(id), Some(name)) = (c.u64(), c.fixed_str(64)) {
                    self.handler.on_event_type(id, name);
                }
                0
            }
            rt::HEADER_TRACING_DATA => {
                // The payload follows the record; its size is in the body.
                let size = ByteCursor::new(body).u32().unwrap_or(0) as u64;
                size.next_multiple_of(8)
            }
            rt::HEADER_FEATURE => {
                let mut c = ByteCursor::new(body);
                if let Some(feat) = c.u64() {
                    self.handler.on_feature(feat as u32, c.rest());
                }
                0
            }
            rt::HEADER_BUILD_ID => {
                // Re-wrap as a build-id section entry so one parser serves both.
                let mut entry = Vec::with_capacity(body.len() + 8);
                entry.extend_from_slice(&(type_).to_le_bytes());
                entry.extend_from_slice(&misc.to_le_bytes());
                entry.extend_from_slice(&((body.len() + 8) as u16).to_le_bytes());
                entry.extend_from_slice(body);
                self.handler.on_feature(header::feature::BUILD_ID, &entry);
                0
            }
            rt::AUXTRACE => {
                self.handler.on_record(type_, misc, body, offset);
                ByteCursor::new(body).u64().unwrap_or(0)
            }
            _ => {
                self.handler.on_record(type_, misc, body, offset);
                0
            }
        }
    }

    fn pipe_attr(&mut self, body: &[u8], offset: u64) {
        let Some(attr) = PerfEventAttr::parse(body) else {
            self.warn(
                WarningKind::CorruptRecord,
                offset,
                "HEADER_ATTR record too short".into(),
            );
            return;
        };
        let attr_len = if attr.size == 0 {
            64
        } else {
            attr.size as usize
        };
        let ids = body
            .get(attr_len..)
            .unwrap_or(&[])
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        self.handler.on_attr(AttrEntry { attr, ids });
    }

    fn decompress(&mut self, payload: &[u8], offset: u64) {
        if self.decomp.is_none() {
            match Decompressor::new() {
                Ok(d) => self.decomp = Some(d),
                Err(e) => {
                    self.warn(
                        WarningKind::CorruptRecord,
                        offset,
                        format!("cannot start zstd: {e}"),
                    );
                    return;
                }
            }
        }
        let Some(mut d) = self.decomp.take() else {
            return;
        };
        if let Err(e) = d.feed(payload) {
            self.warn(
                WarningKind::CorruptRecord,
                offset,
                format!(
                    "zstd data of the compressed record is corrupt ({e}); {} bytes skipped",
                    payload.len()
                ),
            );
            // A broken stream cannot be resumed; start over for the next container.
            d = match Decompressor::new() {
                Ok(d) => d,
                Err(_) => return,
            };
        }
        // Hand out every complete record; keep a partial one for the next container.
        let mut pos = 0usize;
        let buf = std::mem::take(&mut d.pending);
        while buf.len() - pos >= 8 {
            let mut c = ByteCursor::new(&buf[pos..]);
            let (Some(t), Some(misc), Some(size)) = (c.u32(), c.u16(), c.u16()) else {
                break;
            };
            let size = size as usize;
            if !(8..=MAX_RECORD).contains(&size) {
                self.warn(
                    WarningKind::CorruptRecord,
                    offset,
                    format!("record of size {size} inside the compressed record; rest of its data skipped"),
                );
                pos = buf.len();
                break;
            }
            if buf.len() - pos < size {
                break;
            }
            let body = &buf[pos + 8..pos + size];
            self.record(t, misc, body, offset, false);
            pos += size;
        }
        d.pending = buf[pos..].to_vec();
        self.decomp = Some(d);
    }
}

/// Walks a file-mode perf.data held in memory (typically mapped).
pub fn walk_file<H: RecordHandler>(data: &[u8], handler: &mut H) -> Result<WalkReport, Error> {
    walk_file_streams(data, &[], handler)
}

/// One `data.N` file of a perf.data directory (`perf record --threads` writes one per
/// recording thread beside the header file `data`): records only, no header.
pub struct Stream<'a> {
    /// The file's name, for warnings.
    pub name: String,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Releases the file's pages once the walk has passed them.
    pub release: Option<Release>,
}

/// Drops the pages of `from..to` of a mapped input from the process (they stay in the page
/// cache): a mapped perf.data would otherwise count in full in the resident set.
pub type Release = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

/// The bytes of a perf.data and of the `data.N` files that go with it.
pub fn total_len(data: &[u8], streams: &[Stream<'_>]) -> u64 {
    data.len() as u64 + streams.iter().map(|s| s.bytes.len() as u64).sum::<u64>()
}

/// Walks a file-mode perf.data and, when `streams` holds the `data.N` files of a perf.data
/// directory, their records too: the data section and the files take turns as perf reads them
/// (`Walker::round_robin`). Offsets continue from one file to the next, as in the files
/// concatenated in that order.
pub fn walk_file_streams<H: RecordHandler>(
    data: &[u8],
    streams: &[Stream<'_>],
    handler: &mut H,
) -> Result<WalkReport, Error> {
    let mut c = ByteCursor::new(data);
    let magic = c.u64().ok_or(Error::NotPerfData {
        offset: 0,
        reason: "file shorter than 8 bytes".into(),
    })?;
    if magic == header::MAGIC2_SWAPPED {
        return Err(Error::Unsupported {
            offset: 0,
            what: "big-endian perf.data".into(),
        });
    }
    if magic != header::MAGIC2 {
        return Err(Error::NotPerfData {
            offset: 0,
            reason: format!("bad magic {magic:#018x}, expected PERFILE2"),
        });
    }
    let size = c.u64().unwrap_or(0);
    if size == header::PIPE_HEADER_SIZE {
        return walk_pipe(data, handler);
    }
    let hdr = FileHeader::parse(data).ok_or(Error::NotPerfData {
        offset: 8,
        reason: "file header truncated".into(),
    })?;
    let mut w = Walker {
        handler,
        report: WalkReport::default(),
        decomp: None,
        progress_per_record: true,
    };
    w.report.input_size = Some(total_len(data, streams));

    // Attrs.
    if hdr.attr_size < 16 + 64 && hdr.attrs.size > 0 {
        return Err(Error::Corrupt {
            offset: 16,
            reason: format!("attr entry size {} is too small", hdr.attr_size),
        });
    }
    if hdr.attrs.size > 0 {
        let n = hdr.attrs.size / hdr.attr_size.max(1);
        for i in 0..n {
            let off = hdr.attrs.offset + i * hdr.attr_size;
            let Some(entry) = slice(data, off, hdr.attr_size) else {
                return Err(Error::Corrupt {
                    offset: off,
                    reason: format!("attr {i} lies past the end of the file"),
                });
            };
            let attr_bytes = &entry[..entry.len() - 16];
            let attr = PerfEventAttr::parse(attr_bytes).ok_or(Error::Corrupt {
                offset: off,
                reason: "attr too short".into(),
            })?;
            let mut ic = ByteCursor::new(&entry[entry.len() - 16..]);
            let ids_sec = Section {
                offset: ic.u64().unwrap_or(0),
                size: ic.u64().unwrap_or(0),
            };
            let ids = match slice(data, ids_sec.offset, ids_sec.size) {
                Some(b) => b
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                None => {
                    w.warn(
                        WarningKind::CorruptHeader,
                        off,
                        format!("ids of attr {i} lie past the end; ignored"),
                    );
                    Vec::new()
                }
            };
            w.handler.on_attr(AttrEntry { attr, ids });
        }
    }
    // Old event-type names.
    if let Some(types) = slice(data, hdr.event_types.offset, hdr.event_types.size) {
        for chunk in types.chunks_exact(72) {
            let mut ec = ByteCursor::new(chunk);
            if let (Some(id), Some(name)) = (ec.u64(), ec.fixed_str(64)) {
                w.handler.on_event_type(id, name);
            }
        }
    }

    // Data section; a size of 0 (an unfinished recording) means "to the end of the file".
    let file_len = data.len() as u64;
    let mut data_sec = hdr.data;
    if data_sec.offset > file_len {
        return Err(Error::Corrupt {
            offset: 40,
            reason: format!(
                "data section starts at {} past the end of the file ({file_len} bytes)",
                data_sec.offset
            ),
        });
    }
    let features_at = data_sec.end();
    if data_sec.size == 0 {
        data_sec.size = file_len - data_sec.offset;
        if data_sec.size > 0 {
            w.warn(
                WarningKind::Truncated,
                40,
                format!("header says the data section is empty (unfinished recording); reading {} bytes to the end of the file", data_sec.size),
            );
        }
    } else if data_sec.end() > file_len {
        // Warned after the walk, when the number of bytes lost is known.
        data_sec.size = file_len - data_sec.offset;
    }

    // Features follow the data section.
    let mut features = Features::default();
    let ids = hdr.feature_ids();
    if hdr.data.size != 0 {
        for (i, feat) in ids.iter().enumerate() {
            let at = features_at + i as u64 * 16;
            let Some(sec_bytes) = slice(data, at, 16) else {
                w.warn(
                    WarningKind::CorruptHeader,
                    at,
                    format!("feature table truncated before feature {feat}"),
                );
                break;
            };
            let mut sc = ByteCursor::new(sec_bytes);
            let sec = Section {
                offset: sc.u64().unwrap_or(0),
                size: sc.u64().unwrap_or(0),
            };
            match slice(data, sec.offset, sec.size) {
                Some(bytes) => {
                    features.apply(*feat, bytes);
                    w.handler.on_feature(*feat, bytes);
                }
                None => w.warn(
                    WarningKind::CorruptHeader,
                    at,
                    format!("feature {feat} section lies past the end; ignored"),
                ),
            }
        }
    }
    let _ = features;

    // Records.
    let start = data_sec.offset;
    let end = data_sec.end();
    let pos = match streams {
        [] => w.records(data, (start, end), 0, "", u64::MAX).0,
        _ => w.round_robin(data, (start, end), streams),
    };
    // (`round_robin` has counted the bytes of the `data.N` files.)
    w.report.bytes_read += pos.min(file_len);
    w.report.bytes_missing = hdr.data.end().saturating_sub(file_len).min(hdr.data.size);
    w.report.bytes_unread += end.saturating_sub(pos) + w.report.bytes_missing;
    if hdr.data.end() > file_len {
        let unread = w.report.bytes_unread;
        w.warn(
            WarningKind::Truncated,
            hdr.data.offset,
            format!(
                "data section ends at {} but the file has {file_len} bytes: the file is truncated; {unread} bytes of records could not be read",
                hdr.data.end()
            ),
        );
    }
    w.pending_warning();
    Ok(w.report)
}

fn slice(data: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let len = usize::try_from(size).ok()?;
    data.get(start..start.checked_add(len)?)
}

/// Walks a pipe-mode stream already in memory.
fn walk_pipe<H: RecordHandler>(data: &[u8], handler: &mut H) -> Result<WalkReport, Error> {
    walk_pipe_reader(&mut &data[16..], handler, 16, Some(data.len() as u64))
}

/// Walks a pipe-mode stream from `input`, whose 16-byte header has been read already.
pub fn walk_pipe_reader<H: RecordHandler, R: Read>(
    input: &mut R,
    handler: &mut H,
    start_offset: u64,
    input_size: Option<u64>,
) -> Result<WalkReport, Error> {
    let mut w = Walker {
        handler,
        report: WalkReport {
            pipe_mode: true,
            input_size,
            ..Default::default()
        },
        decomp: None,
        progress_per_record: true,
    };
    let mut pos = start_offset;
    let mut buf = vec![0u8; MAX_RECORD];
    loop {
        let mut hdr = [0u8; 8];
        match read_full(input, &mut hdr) {
            Ok(0) => break,
            Ok(n) if n < 8 => {
                w.warn(
                    WarningKind::Truncated,
                    pos,
                    format!("stream ends inside a record header ({n} of 8 bytes)"),
                );
                pos += n as u64;
                w.report.bytes_unread = n as u64;
                break;
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Error::Io {
                    path: None,
                    offset: Some(pos),
                    source: e,
                });
            }
        }
        let t = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let misc = u16::from_le_bytes([hdr[4], hdr[5]]);
        let size = u16::from_le_bytes([hdr[6], hdr[7]]) as usize;
        if size < 8 {
            // The rest of the stream cannot be framed; when its length is known, say how much.
            let unread = input_size.map_or(8, |n| n.saturating_sub(pos));
            w.warn(
                WarningKind::CorruptRecord,
                pos,
                format!("record of type {t} with size {size} (< 8): cannot continue; {unread} bytes not read"),
            );
            w.report.bytes_unread = unread;
            pos += 8;
            break;
        }
        let body = &mut buf[..size - 8];
        let got = read_full(input, body).map_err(|e| Error::Io {
            path: None,
            offset: Some(pos),
            source: e,
        })?;
        if got < size - 8 {
            w.warn(
                WarningKind::Truncated,
                pos,
                format!(
                    "record of type {t} needs {size} bytes but the stream ends after {} bytes",
                    got + 8
                ),
            );
            pos += 8 + got as u64;
            w.report.bytes_unread = 8 + got as u64;
            break;
        }
        let body: &[u8] = &buf[..size - 8];
        if t == rt::HEADER_TRACING_DATA {
            // Read the payload that follows and hand it over as the TRACING_DATA feature.
            let declared = ByteCursor::new(body).u32().unwrap_or(0) as u64;
            w.report.count(t, size as u64);
            let mut payload = Vec::new();
            let n = input
                .take(declared)
                .read_to_end(&mut payload)
                .map_err(|e| Error::Io {
                    path: None,
                    offset: Some(pos),
                    source: e,
                })?;
            pos += size as u64 + n as u64;
            if (n as u64) < declared {
                w.warn(
                    WarningKind::Truncated,
                    pos,
                    format!("tracing data payload cut after {n} of {declared} bytes"),
                );
                w.report.bytes_unread = n as u64;
                w.handler
                    .on_feature(header::feature::TRACING_DATA, &payload);
                break;
            }
            w.handler
                .on_feature(header::feature::TRACING_DATA, &payload);
            continue;
        }
        let extra = w.record(t, misc, body, pos, true);
        pos += size as u64;
        if extra > 0 {
            let skipped =
                std::io::copy(&mut input.take(extra), &mut std::io::sink()).map_err(|e| {
                    Error::Io {
                        path: None,
                        offset: Some(pos),
                        source: e,
                    }
                })?;
            pos += skipped;
            if skipped < extra {
                w.warn(
                    WarningKind::Truncated,
                    pos,
                    format!("payload after record type {t} cut after {skipped} of {extra} bytes"),
                );
                w.report.bytes_unread = skipped;
                break;
            }
        }
        w.handler.on_progress(pos);
    }
    w.report.bytes_read = pos;
    w.pending_warning();
    Ok(w.report)
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
