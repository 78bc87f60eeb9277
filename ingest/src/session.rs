//! The decoding session: receives records in file order from [`crate::reader`], orders them as
//! perf does (time order within FINISHED_ROUND windows), tracks threads, interns callchains and
//! writes every table.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Arc;

use crate::addrspace::{AddressSpaces, Map, kernel_dso_name};
use crate::error::{Error, Warning, WarningKind};
use crate::ingest_symbols::frame_query;
use crate::kvm::KvmModel;
use crate::perf::attr::{PerfEventAttr, event_type, sample_type as st};
use crate::perf::bytes::u64_at;
use crate::perf::format::{ColumnKind, EventFormat, FieldValue};
use crate::perf::header::{AttrEntry, Features, feature};
use crate::perf::records::{
    self, CpuMode, RecordedChain, Sample, SampleId, callchain_ips, record_type as rt,
    sample_id_size,
};
use crate::perf::tracing::{TracingData, parse_tracing_data};
use crate::reader::RecordHandler;
use crate::schema;
use crate::symbols::FrameQuery;
use crate::table::{ColType, ColumnDef, TableWriter, partition_part};
use crate::threads::ThreadModel;
use crate::unwind::{Arch, DwarfUnwinder, UnwindConfig, UserRegs};

/// One event (attr) of the recording.
#[derive(Debug, Clone)]
pub(crate) struct EventInfo {
    pub(crate) attr: PerfEventAttr,
    pub(crate) ids: Vec<u64>,
    pub(crate) name: Option<String>,
    pub(crate) n_samples: u64,
}

/// A record held back until its round is flushed.
struct Queued {
    time: u64,
    type_: u32,
    misc: u16,
    offset: u64,
    /// Where its body is in [`Session::queue_bytes`].
    at: usize,
    len: usize,
}

/// A tracepoint table being written.
struct TpTable {
    format: EventFormat,
    writer: TableWriter,
    /// Column index of each field in `format.common_fields` (minus common_type) then `fields`.
    columns: Vec<(bool, usize, usize)>,
}

/// Where a frame's address lives, for symbolisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Space {
    /// The host kernel.
    HostKernel,
    /// A host process.
    HostUser,
    /// A guest kernel (VM name).
    GuestKernel(Arc<str>),
    /// A guest process (VM name).
    GuestUser(Arc<str>),
}

/// Where a frame's code comes from: its address space and dso. Interned per session (one
/// allocation per distinct origin, shared by every frame from it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FrameOrigin {
    pub(crate) space: Space,
    pub(crate) dso: Option<Arc<str>>,
    pub(crate) build_id: Option<Arc<[u8]>>,
}

/// What a frame takes from the mapping it falls in, interned: frames that hit the same mapping
/// share one slot, and a distinct frame is (slot, address). A 100 MB `-g -a` recording has
/// ~9 M callchain positions in ~1 M distinct frames and a few thousand slots.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// The frames' cpumode (a guest recording's own modes are its guest modes).
    pub(crate) mode: CpuMode,
    pub(crate) origin: Arc<FrameOrigin>,
    /// `dso_offset = addr + bias` (wrapping): `map__map_ip` for a user frame (pgoff − start),
    /// 0 for a kernel frame (perf prints the address); None when no mapping covers it.
    pub(crate) bias: Option<u64>,
    /// User frames unwound from a stack copy (`--call-graph dwarf`): perf names them, and
    /// lists their inlined functions, as binutils' addr2line does.
    pub(crate) unwound: bool,
}

impl Slot {
    /// The offset perf prints for `addr` in this slot's mapping.
    pub(crate) fn dso_offset(&self, addr: u64) -> Option<u64> {
        self.bias.map(|b| addr.wrapping_add(b))
    }
}

/// A slot known by its [`SlotKey`], with the mapping's file name and build id the key names by
/// address (held, so that their allocations cannot be reused while they key a slot).
struct CachedSlot {
    slot: u32,
    _filename: Arc<str>,
    _build_id: Option<Arc<[u8]>>,
}

/// What makes a frame's slot, for a host frame found in a mapping: its mode in the callchain,
/// the mapping's file name and build id (their allocations, by address), its bias, and whether
/// it was unwound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SlotKey {
    mode: CpuMode,
    filename: usize,
    build_id: usize,
    bias: Option<u64>,
    unwound: bool,
}

/// Interned [`FrameOrigin`]s, and the perf dso names of kernel maps.
#[derive(Default)]
struct Origins {
    all: FastMap<FrameOrigin, Arc<FrameOrigin>>,
    /// (guest machine, map file name) → the dso name perf prints for it.
    kernel_dso: FastMap<(bool, Arc<str>), Arc<str>>,
}

impl Origins {
    /// The interned origin, and whether it is new.
    fn get(&mut self, o: FrameOrigin) -> (Arc<FrameOrigin>, bool) {
        if let Some(a) = self.all.get(&o) {
            return (Arc::clone(a), false);
        }
        let a = Arc::new(o.clone());
        self.all.insert(o, Arc::clone(&a));
        (a, true)
    }
}

/// What the symbols' loading thread can load while the walk goes on.
pub(crate) enum Preload {
    /// A host binary a frame falls in: (path as mapped, build id).
    User(Arc<str>, Option<Arc<[u8]>>),
    /// The recording's host name and kernel release, once both are known (when both are this
    /// machine's, so is the kernel whose kallsyms name its kernel frames).
    Host {
        hostname: String,
        os_release: String,
    },
    /// New distinct host user frames (frame id, the symbolizer's question), resolved there
    /// while the walk goes on: on a 100 MB `-g -a` recording of Rust test binaries, their
    /// DWARF lookups took longer than everything else after the walk.
    Frames(Vec<(u32, FrameQuery)>),
}

/// foldhash on hot maps whose keys come from our own parsing (callchain hashes, dso names).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The distinct frames of a recording's stacks, for the frames table.
#[derive(Default)]
pub(crate) struct Stacks {
    /// Number of stacks (ids from the recording's first).
    pub(crate) n_stacks: u32,
    /// Distinct frames by frame id (minus the recording's first): (address, slot).
    pub(crate) frames: Vec<(u64, u32)>,
    /// Slots, by index.
    pub(crate) slots: Vec<Slot>,
}

/// perf's `is_anon_memory`.
fn is_anon_memory(filename: &str) -> bool {
    filename == "//anon"
        || filename.starts_with("/dev/zero")
        || filename.starts_with("/anon_hugepage")
}

/// Callchain interning: (sample cpumode, address-space owner, raw callchain) → stack id; and
/// the slots of their frames.
///
/// A stack is known by a 128-bit hash of what tells it from another (XXH3-128 of the chain,
/// seeded at random per ingest, with the mode and owner xor-ed in): among a million stacks
/// two share a hash with probability below 10⁻²⁵. The raw chains are not kept to be compared:
/// on a 77 MB `-g -a` recording that comparison (the table's entry, then the chain, each a
/// cache miss) was near a third of the record thread's time. Ids follow the stacks' first
/// appearance, so the output does not depend on the seed.
struct StackInterner {
    /// The hash as two halves (a u128 key's 16-byte alignment made each entry 32 bytes).
    by_hash: HashMap<(u64, u64), u32, std::hash::BuildHasherDefault<Low64>>,
    seed: u64,
    /// (mode, origin allocation, bias, unwound) → index in `slots` (origins are interned: the
    /// same origin is the same allocation).
    slot_ids: FastMap<(CpuMode, usize, Option<u64>, bool), u32>,
    slots: Vec<Slot>,
}

impl Default for StackInterner {
    fn default() -> Self {
        use std::hash::BuildHasher;
        StackInterner {
            by_hash: HashMap::default(),
            seed: std::collections::hash_map::RandomState::new().hash_one(0u64),
            slot_ids: FastMap::default(),
            slots: Vec::new(),
        }
    }
}

/// The hasher of a map whose keys are already uniform hashes: their words folded together.
#[derive(Default)]
struct Low64(u64);

impl std::hash::Hasher for Low64 {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 words reach here (`write_u64`); anything else still spreads.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = self.0.rotate_left(32) ^ v;
    }
}

impl StackInterner {
    /// The number of stacks.
    fn len(&self) -> u32 {
        self.by_hash.len() as u32
    }

    /// The id of this stack, and whether it is new (then the caller writes its frames).
    fn intern(&mut self, mode: CpuMode, pid: i32, raw: &[u8]) -> (u32, bool) {
        // The mode and owner are xor-ed in: the same chain of another owner or mode is another
        // key, whatever the hash. (Not through the seed: XXH3 folds the seed of a short input
        // so that distinct seeds can give one hash.)
        let h = xxhash_rust::xxh3::xxh3_128_with_seed(raw, self.seed);
        let key = (
            (h >> 64) as u64,
            h as u64 ^ (u64::from(pid as u32) << 8 | mode as u64),
        );
        let next = self.by_hash.len() as u32;
        match self.by_hash.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => (*e.get(), false),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(next);
                (next, true)
            }
        }
    }

    /// The slot's index, interned.
    fn slot(&mut self, slot: Slot) -> u32 {
        let key = (
            slot.mode,
            Arc::as_ptr(&slot.origin) as usize,
            slot.bias,
            slot.unwound,
        );
        let slots = &mut self.slots;
        *self.slot_ids.entry(key).or_insert_with(|| {
            slots.push(slot);
            (slots.len() - 1) as u32
        })
    }
}

/// The distinct frames of the stacks: (slot, address) → frame id.
#[derive(Default)]
struct FrameInterner {
    /// (slot, address) → index in `frames`.
    frame_ids: FastMap<(u32, u64), u32>,
    frames: Vec<(u64, u32)>,
    /// The last frame seen at each hash of (slot, address), before `frame_ids`: ~8 of 10
    /// frames of a new stack are in it (a 100 MB `-g -a` recording: 9 M frames, 1 M distinct,
    /// and the map of those misses the cache at nearly every probe).
    recent: Vec<(u64, u32, u32)>,
}

impl FrameInterner {
    /// The frame id (minus the recording's first) of `addr` in `slot`, interned.
    fn frame(&mut self, slot: u32, addr: u64) -> u32 {
        const RECENT_BITS: u32 = 12;
        if self.recent.is_empty() {
            self.recent = vec![(0, u32::MAX, 0); 1 << RECENT_BITS];
        }
        let h = (addr ^ u64::from(slot).rotate_left(40)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            >> (64 - RECENT_BITS);
        let at = self.recent.get_mut(h as usize);
        if let Some(&mut (a, s, id)) = at
            && a == addr
            && s == slot
        {
            return id;
        }
        let frames = &mut self.frames;
        let id = *self.frame_ids.entry((slot, addr)).or_insert_with(|| {
            frames.push((addr, slot));
            (frames.len() - 1) as u32
        });
        if let Some(r) = self.recent.get_mut(h as usize) {
            *r = (addr, slot, id);
        }
        id
    }
}

/// New stacks for the stack thread, many at a time, their frames in flat arrays.
#[derive(Default)]
struct StackBatch {
    /// Per stack: id (minus the recording's first), address-space owner, end of its frames.
    stacks: Vec<(u32, i32, usize)>,
    addrs: Vec<u64>,
    modes: Vec<CpuMode>,
    /// Each frame's slot; empty without symbols.
    slots: Vec<u32>,
    /// The slots interned since the last batch (in index order), for the frames' questions.
    new_slots: Vec<Slot>,
}

/// Stacks per [`StackBatch`].
const STACK_BATCH: usize = 4096;

/// The `stacks` rows and the frame ids of their frames, made on a thread of their own while
/// the session walks on: interning 9 M callchain positions into 1 M frames (a 100 MB `-g -a`
/// recording) is mostly waiting on memory, and it took a third of the walk.
struct StackThread {
    batches: Option<std::sync::mpsc::SyncSender<StackBatch>>,
    batch: StackBatch,
    /// How many slots went out in batches ([`StackBatch::new_slots`]).
    slots_sent: usize,
    done: std::thread::JoinHandle<Result<StacksWritten, Error>>,
}

/// Where the stack thread sends new host user frames to be resolved while the walk goes on.
struct EarlyFrames {
    tx: std::sync::mpsc::Sender<Preload>,
    /// [`SessionConfig::source_lines`].
    lines: bool,
}

/// Frames per [`Preload::Frames`] (about: sent after the stack that reaches it).
const EARLY_BATCH: usize = 1024;

/// What the stack thread made: the distinct frames, and the `stacks` file with its rows.
type StacksWritten = (FrameInterner, (PathBuf, u64));

impl StackThread {
    /// Starts the thread writing `w`; ids are offset by `ids`.
    fn start(
        mut w: TableWriter,
        ids: IdBase,
        map_frames: bool,
        early: Option<EarlyFrames>,
    ) -> Result<StackThread, Error> {
        let (batches, rx) = std::sync::mpsc::sync_channel::<StackBatch>(2);
        let done = std::thread::Builder::new()
            .name(format!("{} rows", w.name()))
            .spawn(move || {
                let mut frames = FrameInterner::default();
                let mut modes: Vec<&'static str> = Vec::new();
                let mut frame_ids: Vec<u32> = Vec::new();
                let mut slots: Vec<Slot> = Vec::new();
                let mut pending: Vec<(u32, FrameQuery)> = Vec::new();
                // A send fails only when the loading thread stopped: the frames are then
                // resolved after the walk.
                let flush = |pending: &mut Vec<(u32, FrameQuery)>| {
                    if let Some(e) = &early
                        && !pending.is_empty()
                    {
                        let _ = e.tx.send(Preload::Frames(std::mem::take(pending)));
                    }
                };
                for mut b in rx {
                    slots.append(&mut b.new_slots);
                    let mut start = 0;
                    for &(id, pid, end) in &b.stacks {
                        let addrs = b.addrs.get(start..end).unwrap_or_default();
                        modes.clear();
                        modes.extend(
                            b.modes
                                .get(start..end)
                                .unwrap_or_default()
                                .iter()
                                .map(|m| m.as_str()),
                        );
                        w.u32(0, Some(ids.stack_id + id));
                        w.i32(1, Some(pid));
                        w.list_u64(2, Some(&mut addrs.iter().copied()));
                        w.list_str(3, Some(&modes));
                        if map_frames {
                            let frame_slots = b.slots.get(start..end).unwrap_or_default();
                            frame_ids.clear();
                            for (&slot, &addr) in frame_slots.iter().zip(addrs) {
                                let known = frames.frames.len();
                                let id = frames.frame(slot, addr);
                                if let Some(e) = &early
                                    && frames.frames.len() > known
                                    && let Some(s) = slots.get(slot as usize)
                                    && s.origin.space == Space::HostUser
                                    && s.origin.dso.is_some()
                                {
                                    pending.push((id, frame_query(addr, s, e.lines)));
                                }
                                frame_ids.push(ids.frame_id + id);
                            }
                            w.list_u32(4, Some(&frame_ids));
                        } else {
                            w.list_u32(4, None);
                        }
                        w.end_row()?;
                        start = end;
                        if pending.len() >= EARLY_BATCH {
                            flush(&mut pending);
                        }
                    }
                }
                flush(&mut pending);
                Ok((frames, w.close()?))
            })
            .map_err(|e| Error::Io {
                path: None,
                offset: None,
                source: e,
            })?;
        Ok(StackThread {
            batches: Some(batches),
            batch: StackBatch::default(),
            slots_sent: 0,
            done,
        })
    }

    /// Hands the batch over (when full, or with `all`).
    fn send(&mut self, all: bool) {
        if self.batch.stacks.is_empty() || (!all && self.batch.stacks.len() < STACK_BATCH) {
            return;
        }
        // The next batch starts with room for as much as this one held (no doubling).
        let next = StackBatch {
            stacks: Vec::with_capacity(self.batch.stacks.len()),
            addrs: Vec::with_capacity(self.batch.addrs.len()),
            modes: Vec::with_capacity(self.batch.modes.len()),
            slots: Vec::with_capacity(self.batch.slots.len()),
            new_slots: Vec::new(),
        };
        let b = std::mem::replace(&mut self.batch, next);
        // A send fails only when the thread stopped: its error comes out of `finish`.
        if let Some(tx) = &self.batches
            && tx.send(b).is_err()
        {
            self.batches = None;
        }
    }

    /// Waits for every row to be written: the distinct frames and the written table.
    fn finish(mut self) -> Result<StacksWritten, Error> {
        self.send(true);
        drop(self.batches.take());
        match self.done.join() {
            Ok(r) => r,
            Err(_) => Err(Error::Invalid("stacks thread panicked".into())),
        }
    }
}

/// How a guest-side recording relates to the host.
pub(crate) struct GuestContext {
    pub(crate) vm_pid: i32,
    pub(crate) vm: Arc<str>,
    /// The host recording's TIME_CONV.
    pub(crate) host_tc: Option<TimeConv>,
    /// guest_tsc = host_tsc × scale + offset.
    pub(crate) tsc_offset: u64,
    pub(crate) tsc_scale: f64,
}

impl GuestContext {
    /// Guest perf time → host perf time: guest perf time → guest TSC (guest TIME_CONV), the
    /// exact inverse of guest_tsc = host_tsc × scale + offset (subtract, then divide: trace-cmd
    /// divides first and is wrong when scale ≠ 1), host TSC → host perf time (host TIME_CONV).
    /// Without both TIME_CONVs the clocks are taken as equal.
    pub(crate) fn to_host(&self, guest_tc: Option<TimeConv>, guest_ns: u64) -> u64 {
        let (Some(gtc), Some(htc)) = (guest_tc, self.host_tc) else {
            return guest_ns;
        };
        let guest_tsc = gtc.perf_time_to_tsc(guest_ns);
        let shifted = guest_tsc.wrapping_sub(self.tsc_offset);
        let host_tsc = if self.tsc_scale == 1.0 {
            shifted
        } else {
            (shifted as f64 / self.tsc_scale) as u64
        };
        htc.tsc_to_perf_time(host_tsc)
    }
}

/// Where a session's ids and files start. Several guest-side recordings of one ingest share the
/// `guest_*` tables of one partition: the k-th writes part k of each, and its ids continue after
/// those of the recordings before it, so (recording, sample_idx), (recording, event_idx) and
/// (recording, stack_id) stay keys of those tables. Zero for the host.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdBase {
    /// Parquet part number (`part-<part>.parquet`).
    pub(crate) part: u32,
    pub(crate) sample_idx: u64,
    pub(crate) event_idx: u32,
    pub(crate) stack_id: u32,
    pub(crate) frame_id: u32,
}

/// Where and how to write, decided by the caller.
pub(crate) struct SessionConfig {
    /// Where each host binary a frame falls in is announced once, the first time, so that its
    /// symbols load while the walk goes on (`Symbolizer::preload_user`), and the recording's
    /// host once its name and kernel release are read.
    pub(crate) preload: Option<std::sync::mpsc::Sender<Preload>>,
    pub(crate) root: PathBuf,
    pub(crate) host: String,
    pub(crate) recording: String,
    pub(crate) keep_raw: bool,
    /// `guest_` for a guest-side recording, empty for the host.
    pub(crate) prefix: &'static str,
    /// Set for a guest-side recording.
    pub(crate) guest: Option<GuestContext>,
    /// VM names given by the user: (VMM pid or process name, display name).
    pub(crate) vm_specs: Vec<(String, String)>,
    /// First part number and ids.
    pub(crate) ids: IdBase,
    /// Map every frame to its dso and intern it as a frame id (`stacks.frame_ids`), for the
    /// frames table; off without symbols.
    pub(crate) map_frames: bool,
    /// Unwind `--call-graph dwarf` user stacks of host processes with these binaries (None:
    /// such samples keep their leaf only).
    pub(crate) unwind: Option<UnwindConfig>,
    /// Whether a host kernel address outside every recorded kernel map (a recording without
    /// kernel MMAPs) is named `[kernel.kallsyms]`: perf makes that map from the kallsyms it
    /// reads, so with an empty one (`--kallsyms /dev/null`) it has none and prints `[unknown]`.
    pub(crate) kernel_fallback_map: bool,
    /// How the tables' pages are compressed.
    pub(crate) compression: crate::Compression,
    /// Frames are resolved with source lines and inlined functions ([`crate::Options::source_lines`]).
    pub(crate) source_lines: bool,
}

/// Column indices of `samples`, looked up once.
struct SampleCols {
    idx: [usize; 37],
}

const SAMPLE_COLS: [&str; 37] = [
    "sample_idx",
    "time_ns",
    "cpu",
    "pid",
    "tid",
    "comm",
    "event",
    "event_idx",
    "period",
    "ip",
    "cpumode",
    "stack_id",
    "addr",
    "id",
    "stream_id",
    "read_time_enabled",
    "read_time_running",
    "read_values",
    "read_ids",
    "branch_from",
    "branch_to",
    "branch_flags",
    "user_regs_abi",
    "user_regs",
    "user_stack",
    "weight",
    "data_src",
    "transaction",
    "phys_addr",
    "cgroup",
    "raw",
    "read_periods",
    "intr_regs_abi",
    "intr_regs",
    "data_page_size",
    "code_page_size",
    "aux",
];

/// The decoding session.
pub(crate) struct Session {
    cfg: SessionConfig,
    pub(crate) events: Vec<EventInfo>,
    id_map: FastMap<u64, usize>,
    event_types: HashMap<u64, String>,
    pub(crate) features: Features,
    pub(crate) tracing: Option<TracingData>,
    names_ready: bool,
    /// [`Preload::Host`] was sent.
    host_announced: bool,
    // Ordering.
    ordering: Option<bool>,
    queue: Vec<Queued>,
    /// The queued records' bodies, one after the other (a copy per record was an allocation
    /// per record); `queue_spare` is the last round's, reused.
    queue_bytes: Vec<u8>,
    queue_spare: Vec<u8>,
    next_flush: u64,
    max_ts: u64,
    /// Of a perf.data directory: the file whose turn it is, and the latest time queued from
    /// each file (`None` before its first), or `u64::MAX` once it has no more records.
    turn: Option<usize>,
    turn_max: Vec<Option<u64>>,
    // State.
    threads: ThreadModel,
    spaces: AddressSpaces,
    stacks: StackInterner,
    origins: Origins,
    /// The last PERF_SAMPLE_READ value of each sample id (for `read_periods`).
    read_prev: FastMap<u64, u64>,
    /// The last frame's slot: frame after frame hits the same mapping.
    last_slot: Option<(SlotKey, u32)>,
    /// Slots of the mappings frames were found in (host frames; a guest of the host is named
    /// after its VMM's comm at each stack).
    slot_cache: FastMap<SlotKey, CachedSlot>,
    /// `stacks`, a row written when a stack is first seen (None once closed, or when its
    /// thread could not start: then `fatal` says why).
    stack_thread: Option<StackThread>,
    /// PERF_RECORD_TIME_CONV: (time_shift, time_mult, time_zero, time_cycles, time_mask, cap_short).
    pub(crate) time_conv: Option<TimeConv>,
    pub(crate) kvm: KvmModel,
    // Output.
    samples: TableWriter,
    sample_cols: SampleCols,
    mmaps: TableWriter,
    lost: TableWriter,
    tp_tables: BTreeMap<String, TpTable>,
    tp_by_event: FastMap<usize, Arc<str>>,
    /// Reused per sample: the comm and event name written to `samples` (no allocation per row).
    comm_buf: String,
    name_buf: String,
    pub(crate) sample_idx: u64,
    pub(crate) first_time: Option<u64>,
    pub(crate) last_time: Option<u64>,
    pub(crate) warnings: Vec<Warning>,
    warned: HashMap<WarningKind, u64>,
    /// Bytes consumed, for progress.
    pub(crate) progress: Option<Box<dyn FnMut(u64) + Send>>,
    pub(crate) build_ids_by_path: HashMap<String, String>,
    /// Paths of the build-id table entries recorded in kernel mode (perf's module dsos).
    kernel_build_id_paths: std::collections::HashSet<String>,
    /// The first error that must stop the ingest (a table could not be written).
    fatal: Option<Error>,
    /// VMs (pid, display name), known at close.
    vms: Vec<(i32, String)>,
    /// kvm_write_tsc_offset values: (vm pid, vcpu, next offset), known at close.
    tsc: Vec<(i32, u32, u64)>,
    /// Distinct (VMM pid, guest RIP) of the KVM model, once it is closed.
    guest_rips: Vec<(i32, u64)>,
    /// Made at the first sample with a user stack copy (needs the recording's arch).
    unwinder: Option<DwarfUnwinder>,
    /// Reused per sample: a callchain with unwound user frames.
    unwound_buf: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Session {
    pub(crate) fn new(cfg: SessionConfig) -> Self {
        let prefix = cfg.prefix;
        let part = |t: &str| {
            partition_part(
                &cfg.root,
                &format!("{prefix}{t}"),
                &cfg.host,
                &cfg.recording,
                cfg.ids.part,
            )
        };
        let sdoc = if cfg.guest.is_some() {
            schema::guest_samples()
        } else {
            schema::samples()
        };
        let sample_cols = SampleCols {
            idx: SAMPLE_COLS.map(|n| sdoc.index(n).unwrap_or(usize::MAX)),
        };
        // The host's exits stream to their table as they finish (guest recordings have no
        // KVM model tables).
        let kvm = if cfg.guest.is_none() {
            KvmModel::streaming(partition_part(
                &cfg.root,
                "exits",
                &cfg.host,
                &cfg.recording,
                cfg.ids.part,
            ))
            .compressed(cfg.compression)
        } else {
            KvmModel::default()
        };
        let stacks_w = TableWriter::new(
            &format!("{prefix}stacks"),
            part("stacks"),
            &schema::stacks().defs(),
            Vec::new(),
        )
        .compressed(cfg.compression);
        // Host user frames go to the symbols' loading thread as they are first seen.
        let early = cfg
            .preload
            .clone()
            .filter(|_| cfg.map_frames && cfg.guest.is_none())
            .map(|tx| EarlyFrames {
                tx,
                lines: cfg.source_lines,
            });
        let (stack_thread, fatal) =
            match StackThread::start(stacks_w, cfg.ids, cfg.map_frames, early) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e)),
            };
        Session {
            samples: TableWriter::new(
                &format!("{prefix}samples"),
                part("samples"),
                &sdoc.defs(),
                Vec::new(),
            )
            .compressed(cfg.compression),
            mmaps: TableWriter::new(
                &format!("{prefix}mmaps"),
                part("mmaps"),
                &schema::mmaps().defs(),
                Vec::new(),
            )
            .compressed(cfg.compression),
            lost: TableWriter::new(
                &format!("{prefix}lost"),
                part("lost"),
                &schema::lost().defs(),
                Vec::new(),
            )
            .compressed(cfg.compression),
            sample_cols,
            cfg,
            events: Vec::new(),
            id_map: FastMap::default(),
            event_types: HashMap::new(),
            features: Features::default(),
            tracing: None,
            names_ready: false,
            host_announced: false,
            ordering: None,
            queue: Vec::new(),
            queue_bytes: Vec::new(),
            queue_spare: Vec::new(),
            next_flush: 0,
            max_ts: 0,
            turn: None,
            turn_max: Vec::new(),
            threads: ThreadModel::new(),
            spaces: AddressSpaces::default(),
            stacks: StackInterner::default(),
            origins: Origins::default(),
            last_slot: None,
            read_prev: FastMap::default(),
            slot_cache: FastMap::default(),
            stack_thread,
            time_conv: None,
            kvm,
            tp_tables: BTreeMap::new(),
            tp_by_event: FastMap::default(),
            comm_buf: String::new(),
            name_buf: String::new(),
            sample_idx: 0,
            first_time: None,
            last_time: None,
            warnings: Vec::new(),
            warned: HashMap::new(),
            progress: None,
            build_ids_by_path: HashMap::new(),
            kernel_build_id_paths: Default::default(),
            fatal,
            vms: Vec::new(),
            tsc: Vec::new(),
            guest_rips: Vec::new(),
            unwinder: None,
            unwound_buf: Vec::new(),
        }
    }

    /// The file of `table` (prefixed for guest recordings).
    pub(crate) fn part(&self, table: &str) -> PathBuf {
        self.part_of(&self.table_name(table))
    }

    /// The file of an already prefixed table name.
    fn part_of(&self, table: &str) -> PathBuf {
        partition_part(
            &self.cfg.root,
            table,
            &self.cfg.host,
            &self.cfg.recording,
            self.cfg.ids.part,
        )
    }

    fn table_name(&self, table: &str) -> String {
        format!("{}{table}", self.cfg.prefix)
    }

    /// The display name of the VM whose VMM is `pid`.
    fn vm_name(&mut self, pid: i32) -> Arc<str> {
        let comm = self.threads.comm(false, pid, pid).to_string();
        let pid_s = pid.to_string();
        if let Some((_, n)) = self
            .cfg
            .vm_specs
            .iter()
            .find(|(tok, _)| *tok == pid_s || *tok == comm)
        {
            return Arc::from(n.as_str());
        }
        Arc::from(format!("{comm}:{pid}").as_str())
    }

    /// Hands a new stack to the stack thread, which writes its `stacks` row: its addresses
    /// and modes and, when symbols are resolved, each frame mapped here to its slot (perf's
    /// map lookup at the sample's time), interned there as a frame id.
    fn write_stack(&mut self, id: u32, mode: CpuMode, pid: i32, raw: &[u8], unwound: bool) {
        let Some(mut t) = self.stack_thread.take() else {
            return;
        };
        let in_guest = self.cfg.guest.is_some();
        for (ip, m) in records::callchain_frames(raw, mode) {
            let kernel = matches!(
                m,
                CpuMode::HostKernel | CpuMode::GuestKernel | CpuMode::Hypervisor
            );
            // Inside a guest recording, its "host" modes are the guest's own.
            let mode_out = match m {
                _ if in_guest && kernel => CpuMode::GuestKernel,
                _ if in_guest => CpuMode::GuestUser,
                m => m,
            };
            t.batch.addrs.push(ip);
            t.batch.modes.push(mode_out);
            if self.cfg.map_frames {
                let slot = self.slot_of(m, mode_out, kernel, pid, ip, unwound);
                t.batch.slots.push(slot);
            }
        }
        let end = t.batch.addrs.len();
        t.batch.stacks.push((id, pid, end));
        if let Some(new) = self.stacks.slots.get(t.slots_sent..) {
            t.batch.new_slots.extend_from_slice(new);
            t.slots_sent = self.stacks.slots.len();
        }
        t.send(false);
        if t.batches.is_none() {
            // The thread stopped (a write failed): its error stops the ingest now.
            self.fatal = Some(match t.finish() {
                Err(e) => e,
                Ok(_) => Error::Invalid("stacks thread stopped early".into()),
            });
            return;
        }
        self.stack_thread = Some(t);
    }

    /// The slot of a frame at `addr` (mode `m` in the callchain, `mode_out` as written) of a
    /// stack of `pid`.
    fn slot_of(
        &mut self,
        m: CpuMode,
        mode_out: CpuMode,
        kernel: bool,
        pid: i32,
        addr: u64,
        unwound: bool,
    ) -> u32 {
        let machine_guest = self.cfg.guest.is_none() && m.is_guest();
        let owner = if kernel { -1 } else { pid };
        let unwound = unwound && mode_out.is_user();
        // One lookup per frame; what the slot needs of the mapping is taken out of it.
        let found = self.spaces.find(machine_guest, owner, addr);
        let bias = match found {
            _ if kernel => Some(0),
            Some(map) => Some(map.pgoff.wrapping_sub(map.start)),
            None => None,
        };
        // A frame in a mapping has the slot of the last frame, or of any frame found in that
        // mapping before, without a string hashed. Not a guest of the host: its VM's name
        // follows the VMM's comm at each stack.
        let key = found.filter(|_| !machine_guest).map(|map| SlotKey {
            mode: m,
            filename: Arc::as_ptr(&map.filename) as *const u8 as usize,
            build_id: map
                .build_id
                .as_ref()
                .map_or(0, |b| Arc::as_ptr(b) as *const u8 as usize),
            bias,
            unwound,
        });
        if let Some(k) = key {
            if let Some((last, slot)) = self.last_slot
                && last == k
            {
                return slot;
            }
            if let Some(cached) = self.slot_cache.get(&k) {
                self.last_slot = Some((k, cached.slot));
                return cached.slot;
            }
        }
        let found = found.map(|map| (Arc::clone(&map.filename), map.build_id.clone()));
        let guest_vm = self.cfg.guest.as_ref().map(|g| Arc::clone(&g.vm));
        let space = match (guest_vm, m) {
            (Some(vm), _) if kernel => Space::GuestKernel(vm),
            (Some(vm), _) => Space::GuestUser(vm),
            (None, CpuMode::GuestKernel) => Space::GuestKernel(self.vm_name(pid)),
            (None, CpuMode::GuestUser) => Space::GuestUser(self.vm_name(pid)),
            (None, _) if kernel => Space::HostKernel,
            (None, _) => Space::HostUser,
        };
        let guest_kernel_of_host =
            self.cfg.guest.is_none() && matches!(space, Space::GuestKernel(_));
        let (dso, build_id) = if kernel {
            let dso = match &found {
                Some((filename, _)) => Some({
                    let key = (machine_guest, Arc::clone(filename));
                    match self.origins.kernel_dso.get(&key) {
                        Some(d) => Arc::clone(d),
                        None => {
                            // perf names a module by its path when the recording's build-id
                            // table lists it in kernel mode (the dso was created from that
                            // table), else `[module]`.
                            let d: Arc<str> = if filename.starts_with('/')
                                && self.kernel_build_id_paths.contains(&**filename)
                            {
                                Arc::clone(filename)
                            } else {
                                Arc::from(kernel_dso_name(filename))
                            };
                            self.origins.kernel_dso.insert(key, Arc::clone(&d));
                            d
                        }
                    }
                }),
                // Outside every kernel map of a machine that has some (e.g. the x86
                // cpu_entry_area): perf finds no map and prints [unknown].
                None if self.spaces.has(machine_guest, -1) => None,
                None if guest_kernel_of_host => Some(Arc::from("[guest.kernel.kallsyms]")),
                None if self.cfg.kernel_fallback_map => Some(Arc::from("[kernel.kallsyms]")),
                None => None,
            };
            let dso = dso.map(|d| {
                if guest_kernel_of_host && &*d == "[kernel.kallsyms]" {
                    Arc::from("[guest.kernel.kallsyms]")
                } else {
                    d
                }
            });
            (dso, None)
        } else {
            match &found {
                Some((filename, build_id)) => (Some(Arc::clone(filename)), build_id.clone()),
                None => (None, None),
            }
        };
        let (origin, new) = self.origins.get(FrameOrigin {
            space,
            dso,
            build_id,
        });
        if new
            && origin.space == Space::HostUser
            && let (Some(tx), Some(dso)) = (&self.cfg.preload, &origin.dso)
        {
            // The symbolizer's loading thread may have stopped (an error): nothing to do.
            let _ = tx.send(Preload::User(Arc::clone(dso), origin.build_id.clone()));
        }
        let slot = self.stacks.slot(Slot {
            mode: mode_out,
            origin,
            bias,
            unwound,
        });
        if let (Some(k), Some((filename, build_id))) = (key, found) {
            self.slot_cache.insert(
                k,
                CachedSlot {
                    slot,
                    _filename: filename,
                    _build_id: build_id,
                },
            );
            self.last_slot = Some((k, slot));
        }
        slot
    }

    /// For a sample with a user register set and stack copy but no user callchain (perf's
    /// `--call-graph dwarf`), writes into `out` the recorded kernel part of its callchain, then
    /// `PERF_CONTEXT_USER` and the user frames unwound from the copy. False when the sample is
    /// not such a sample or unwinding is off.
    fn unwind_user(
        &mut self,
        attr: &PerfEventAttr,
        s: &Sample,
        mode: CpuMode,
        out: &mut Vec<u8>,
    ) -> bool {
        let (true, Some(regs), Some(stack)) =
            (self.cfg.unwind.is_some(), s.user_regs, s.user_stack)
        else {
            return false;
        };
        if s.user_regs_abi.unwrap_or(0) == 0
            || stack.is_empty()
            || mode.is_guest()
            || s.callchain.is_some_and(|raw| mode_has_user(mode, raw))
        {
            return false;
        }
        if self.unwinder.is_none() {
            let arch = self
                .features
                .arch
                .clone()
                .unwrap_or_else(|| "x86_64".into());
            match (Arch::from_uname(&arch), self.cfg.unwind.clone()) {
                (Some(a), Some(cfg)) => self.unwinder = Some(DwarfUnwinder::new(a, cfg)),
                _ => {
                    self.warn(
                        WarningKind::Symbols,
                        None,
                        format!("no DWARF unwinding for {arch}; user stacks keep their leaf frame"),
                    );
                    self.cfg.unwind = None;
                    return false;
                }
            }
        }
        let Some(unwinder) = self.unwinder.as_mut() else {
            return false;
        };
        let Some(regs) = UserRegs::parse(unwinder.arch(), attr.sample_regs_user, regs) else {
            return false;
        };
        out.clear();
        for ip in s.callchain.map(callchain_ips).into_iter().flatten() {
            if ip == records::context::USER {
                break;
            }
            out.extend_from_slice(&ip.to_le_bytes());
        }
        out.extend_from_slice(&records::context::USER.to_le_bytes());
        unwinder.unwind(&self.spaces, s.pid.unwrap_or(-1), regs, stack, out)
    }

    fn warn(&mut self, kind: WarningKind, offset: Option<u64>, message: String) {
        let n = self.warned.entry(kind).or_default();
        *n += 1;
        if *n <= 20 {
            self.warnings.push(Warning {
                kind,
                offset,
                message,
            });
        }
    }

    /// Names events once everything before the first record is known.
    fn resolve_names(&mut self) {
        if self.names_ready {
            return;
        }
        self.names_ready = true;
        let desc = self.features.event_desc.clone();
        for (i, ev) in self.events.iter_mut().enumerate() {
            // EVENT_DESC: match by ids, else by position.
            let by_id = desc
                .iter()
                .find(|(_, _, ids)| !ids.is_empty() && ev.ids.iter().any(|id| ids.contains(id)));
            let from_desc = by_id.or_else(|| {
                desc.get(i)
                    .filter(|(a, _, _)| a.config == ev.attr.config && a.type_ == ev.attr.type_)
            });
            if ev.name.is_none()
                && let Some((_, name, _)) = from_desc
            {
                ev.name = Some(name.clone());
            }
            if ev.attr.type_ == event_type::TRACEPOINT
                && let Some(fmt) = self
                    .tracing
                    .as_ref()
                    .and_then(|t| t.event_by_id(ev.attr.config))
                && ev.name.is_none()
            {
                ev.name = Some(format!("{}:{}", fmt.system, fmt.name));
            }
            if ev.name.is_none()
                && let Some(n) = self.event_types.get(&ev.attr.config)
            {
                ev.name = Some(n.clone());
            }
            if ev.name.is_none() {
                ev.name = Some(ev.attr.default_name());
            }
        }
        // Tracepoint tables.
        let formats: Vec<(usize, EventFormat)> = self
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.attr.type_ == event_type::TRACEPOINT)
            .filter_map(|(i, e)| {
                self.tracing
                    .as_ref()?
                    .event_by_id(e.attr.config)
                    .map(|f| (i, f.clone()))
            })
            .collect();
        for (i, fmt) in formats {
            let table = format!(
                "{}{}__{}",
                self.cfg.prefix,
                sanitize(&fmt.system),
                sanitize(&fmt.name)
            );
            if !self.tp_tables.contains_key(&table) {
                let tp = self.tp_table(&table, fmt);
                self.tp_tables.insert(table.clone(), tp);
            }
            self.tp_by_event.insert(i, Arc::from(table.as_str()));
        }
    }

    fn tp_table(&self, table: &str, format: EventFormat) -> TpTable {
        let mut defs = schema::tracepoint_common().defs();
        let fixed: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
        let mut columns = Vec::new();
        let all = format
            .common_fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name != "common_type")
            .map(|(i, f)| (true, i, f))
            .chain(format.fields.iter().enumerate().map(|(i, f)| (false, i, f)));
        for (common, i, f) in all {
            let ty = match f.column_kind() {
                ColumnKind::Unsigned { bytes: 8 } => ColType::U64,
                ColumnKind::Unsigned { .. } => ColType::U32,
                ColumnKind::Signed { bytes: 8 } => ColType::I64,
                ColumnKind::Signed { .. } => ColType::I32,
                ColumnKind::Str => ColType::Str,
                ColumnKind::Bytes => ColType::Bin,
            };
            let mut name = f.name.clone();
            if fixed.contains(&name) || defs.iter().any(|d| d.name == name) {
                name = format!("field_{name}");
            }
            columns.push((common, i, defs.len()));
            defs.push(ColumnDef::new(name, ty, true));
        }
        let meta = vec![
            (
                "kvmtrace.tracepoint".to_string(),
                format!("{}:{}", format.system, format.name),
            ),
            ("kvmtrace.print_fmt".to_string(), format.print_fmt.clone()),
        ];
        let path = self.part_of(table);
        TpTable {
            writer: TableWriter::new(table, path, &defs, meta).compressed(self.cfg.compression),
            format,
            columns,
        }
    }

    /// The attr index of a sample body.
    fn sample_event(&self, body: &[u8]) -> Option<usize> {
        if self.events.len() <= 1 {
            return if self.events.is_empty() {
                None
            } else {
                Some(0)
            };
        }
        let first = &self.events[0].attr;
        let id = if first.has(st::IDENTIFIER) {
            u64_at(body, 0)?
        } else if first.has(st::ID) {
            let mut pos = 0;
            for b in [st::IP, st::TID, st::TIME, st::ADDR] {
                if first.sample_type & b != 0 {
                    pos += 8;
                }
            }
            u64_at(body, pos)?
        } else {
            return Some(0);
        };
        self.id_map.get(&id).copied()
    }

    /// The attr index of a non-sample record with a trailer.
    fn trailer_event(&self, body: &[u8]) -> Option<usize> {
        if self.events.len() <= 1 {
            return if self.events.is_empty() {
                None
            } else {
                Some(0)
            };
        }
        let first = &self.events[0].attr;
        if !first.sample_id_all() {
            return Some(0);
        }
        let t = first.sample_type;
        let id = if t & st::IDENTIFIER != 0 {
            u64_at(body, body.len().checked_sub(8)?)?
        } else if t & st::ID != 0 {
            let mut from_end = 8;
            for b in [st::STREAM_ID, st::CPU] {
                if t & b != 0 {
                    from_end += 8;
                }
            }
            u64_at(body, body.len().checked_sub(from_end)?)?
        } else {
            return Some(0);
        };
        self.id_map.get(&id).copied()
    }

    /// The timestamp perf would order this record by, or `None` (delivered at once).
    fn record_time(&self, type_: u32, body: &[u8]) -> Option<u64> {
        if type_ >= 64 {
            return None;
        }
        if type_ == rt::SAMPLE {
            let ev = self.sample_event(body)?;
            let a = &self.events.get(ev)?.attr;
            if !a.has(st::TIME) {
                return None;
            }
            let mut pos = 0;
            for b in [st::IDENTIFIER, st::IP, st::TID] {
                if a.sample_type & b != 0 {
                    pos += 8;
                }
            }
            return u64_at(body, pos);
        }
        let ev = self.trailer_event(body)?;
        let a = &self.events.get(ev)?.attr;
        if !a.sample_id_all() || !a.has(st::TIME) {
            return None;
        }
        SampleId::parse_trailer(body, a.sample_type)?.time
    }

    fn ordering_enabled(&mut self) -> bool {
        if let Some(o) = self.ordering {
            return o;
        }
        // perf falls back to unordered processing without sample_id_all.
        let o = self.events.first().is_some_and(|e| e.attr.sample_id_all());
        self.ordering = Some(o);
        o
    }

    fn flush_upto(&mut self, limit: u64) -> Result<(), Error> {
        if self.queue.is_empty() {
            return Ok(());
        }
        self.queue.sort_by_key(|q| q.time);
        let n = self.queue.partition_point(|q| q.time <= limit);
        let ready: Vec<Queued> = self.queue.drain(..n).collect();
        // The bodies of the records held back move to the spare buffer, which becomes the
        // queue's; the ready ones are read from the old one.
        let bytes = std::mem::replace(&mut self.queue_bytes, std::mem::take(&mut self.queue_spare));
        self.queue_bytes.clear();
        for q in &mut self.queue {
            let body = bytes.get(q.at..q.at + q.len).unwrap_or_default();
            q.at = self.queue_bytes.len();
            self.queue_bytes.extend_from_slice(body);
        }
        for q in ready {
            let body = bytes.get(q.at..q.at + q.len).unwrap_or_default();
            self.deliver(q.type_, q.misc, body, q.offset)?;
        }
        self.queue_spare = bytes;
        Ok(())
    }

    /// The error that stopped writing, if any.
    pub(crate) fn take_fatal(&mut self) -> Option<Error> {
        self.fatal.take()
    }

    /// Delivers everything still queued (end of input).
    pub(crate) fn finish_records(&mut self) -> Result<(), Error> {
        self.flush_upto(u64::MAX)
    }

    fn handle(&mut self, type_: u32, misc: u16, body: &[u8], offset: u64) -> Result<(), Error> {
        self.resolve_names();
        if type_ == rt::FINISHED_ROUND {
            let limit = self.next_flush;
            self.flush_upto(limit)?;
            self.next_flush = self.max_ts;
            return Ok(());
        }
        if self.ordering_enabled()
            && let Some(t) = self.record_time(type_, body)
        {
            self.max_ts = self.max_ts.max(t);
            if let Some(m) = self.turn.and_then(|f| self.turn_max.get_mut(f)) {
                *m = Some(m.map_or(t, |m| m.max(t)));
            }
            self.queue.push(Queued {
                time: t,
                type_,
                misc,
                offset,
                at: self.queue_bytes.len(),
                len: body.len(),
            });
            self.queue_bytes.extend_from_slice(body);
            return Ok(());
        }
        self.deliver(type_, misc, body, offset)
    }

    fn deliver(&mut self, type_: u32, misc: u16, body: &[u8], offset: u64) -> Result<(), Error> {
        match type_ {
            rt::SAMPLE => self.sample(misc, body, offset),
            rt::COMM | rt::FORK | rt::EXIT | rt::MMAP | rt::MMAP2 => {
                self.task(type_, misc, body, offset)
            }
            rt::LOST | rt::LOST_SAMPLES | rt::THROTTLE | rt::UNTHROTTLE => {
                self.lost_record(type_, body)
            }
            rt::EVENT_UPDATE => {
                self.event_update(body);
                Ok(())
            }
            rt::TIME_CONV => {
                self.time_conv = TimeConv::parse(body);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn event_update(&mut self, body: &[u8]) {
        // struct perf_record_event_update { u64 type; u64 id; union {...} }; type 2 = NAME.
        let (Some(kind), Some(id)) = (u64_at(body, 0), u64_at(body, 8)) else {
            return;
        };
        if kind == 2 {
            let name = crate::perf::bytes::c_str(body.get(16..).unwrap_or(&[]));
            if let Some(&i) = self.id_map.get(&id)
                && let Some(ev) = self.events.get_mut(i)
            {
                ev.name = Some(name);
            }
        }
    }

    fn trailer(&self, body: &[u8]) -> (SampleId, usize) {
        let Some(ev) = self.trailer_event(body).and_then(|i| self.events.get(i)) else {
            return (SampleId::default(), 0);
        };
        if !ev.attr.sample_id_all() {
            return (SampleId::default(), 0);
        }
        let size = sample_id_size(ev.attr.sample_type);
        (
            SampleId::parse_trailer(body, ev.attr.sample_type).unwrap_or_default(),
            size,
        )
    }

    fn task(&mut self, type_: u32, misc: u16, body: &[u8], offset: u64) -> Result<(), Error> {
        let (sid, trailer) = self.trailer(body);
        let mode = CpuMode::from_misc(misc);
        let guest = mode.is_guest();
        match type_ {
            rt::COMM => match records::parse_comm(body, misc, trailer) {
                Some(c) => {
                    self.threads
                        .set_comm(guest, c.pid, c.tid, &c.comm, sid.time, c.exec);
                    self.kvm.on_comm(c.pid, c.tid, &c.comm, sid.time);
                }
                None => self.warn(
                    WarningKind::CorruptRecord,
                    Some(offset),
                    "COMM record too short; skipped".into(),
                ),
            },
            rt::FORK | rt::EXIT => match records::parse_task(body) {
                Some(t) if type_ == rt::FORK => {
                    self.threads
                        .fork(guest, t.pid, t.tid, t.ppid, t.ptid, Some(t.time));
                    // perf's synthesized FORK of a task running before the recording says
                    // PERF_RECORD_MISC_FORK_EXEC: perf does not clone the parent's maps then
                    // (the task's own MMAPs follow), else stale parent mappings (a shell's
                    // libc lower in memory) would sit beside the task's.
                    const MISC_FORK_EXEC: u16 = 1 << 13;
                    self.spaces
                        .fork(guest, t.pid, t.ppid, misc & MISC_FORK_EXEC == 0);
                    self.kvm.on_fork(t.pid, t.tid, t.ppid, t.ptid, t.time);
                }
                Some(t) => self.threads.exit(guest, t.tid, Some(t.time)),
                None => self.warn(
                    WarningKind::CorruptRecord,
                    Some(offset),
                    "FORK/EXIT record too short; skipped".into(),
                ),
            },
            _ => match records::parse_mmap(body, misc, type_ == rt::MMAP2, trailer) {
                Some(m) => {
                    let build_id = m
                        .build_id
                        .as_deref()
                        .map(hex)
                        .or_else(|| self.build_ids_by_path.get(&m.filename).cloned());
                    let kernel =
                        matches!(mode, CpuMode::HostKernel | CpuMode::GuestKernel) || m.pid == -1;
                    // perf's map__new: anonymous memory is a JIT's, named by its perf map.
                    let filename: Arc<str> = if !kernel && is_anon_memory(&m.filename) {
                        Arc::from(format!("/tmp/perf-{}.map", m.pid))
                    } else {
                        Arc::from(m.filename.as_str())
                    };
                    self.spaces.mmap(
                        guest,
                        if kernel { -1 } else { m.pid },
                        Map {
                            start: m.start,
                            end: m.start.saturating_add(m.len),
                            pgoff: m.pgoff,
                            filename,
                            build_id: build_id
                                .as_deref()
                                .and_then(crate::symbols::parse_hex)
                                .map(Arc::from),
                        },
                    );
                    let w = &mut self.mmaps;
                    w.u64(0, sid.time);
                    w.str(1, Some(if guest { "guest" } else { "host" }));
                    w.str(2, Some(mode.as_str()));
                    w.i32(3, Some(m.pid));
                    w.i32(4, Some(m.tid));
                    w.u64(5, Some(m.start));
                    w.u64(6, Some(m.len));
                    w.u64(7, Some(m.pgoff));
                    w.str(8, Some(&m.filename));
                    w.str(9, build_id.as_deref());
                    w.u32(10, m.maj);
                    w.u32(11, m.min);
                    w.u64(12, m.ino);
                    w.u32(13, m.prot);
                    w.u32(14, m.flags);
                    w.end_row()?;
                }
                None => self.warn(
                    WarningKind::CorruptRecord,
                    Some(offset),
                    "MMAP record too short; skipped".into(),
                ),
            },
        }
        Ok(())
    }

    fn lost_record(&mut self, type_: u32, body: &[u8]) -> Result<(), Error> {
        let (sid, _) = self.trailer(body);
        let (kind, time, id, n) = match type_ {
            rt::LOST => ("lost", sid.time, u64_at(body, 0), u64_at(body, 8)),
            rt::LOST_SAMPLES => ("lost_samples", sid.time, sid.id, u64_at(body, 0)),
            rt::THROTTLE => ("throttle", u64_at(body, 0), u64_at(body, 8), None),
            _ => ("unthrottle", u64_at(body, 0), u64_at(body, 8), None),
        };
        let w = &mut self.lost;
        w.str(0, Some(kind));
        w.u64(1, time);
        w.u32(2, sid.cpu);
        w.u64(3, id);
        w.u64(4, n);
        w.end_row()
    }

    fn sample(&mut self, misc: u16, body: &[u8], offset: u64) -> Result<(), Error> {
        let Some(ev_idx) = self.sample_event(body) else {
            self.warn(
                WarningKind::UnknownEvent,
                Some(offset),
                "sample whose id matches no event; skipped".into(),
            );
            return Ok(());
        };
        let Some(ev) = self.events.get(ev_idx) else {
            return Ok(());
        };
        let attr = ev.attr.clone();
        let Some(s) = Sample::parse(body, &attr) else {
            self.warn(
                WarningKind::CorruptRecord,
                Some(offset),
                "sample shorter than its sample_type says; skipped".into(),
            );
            return Ok(());
        };
        let mode = CpuMode::from_misc(misc);
        let idx = self.cfg.ids.sample_idx + self.sample_idx;
        self.sample_idx += 1;
        if let Some(t) = s.time {
            self.first_time = Some(self.first_time.map_or(t, |f| f.min(t)));
            self.last_time = Some(self.last_time.map_or(t, |l| l.max(t)));
        }
        let pid = s.pid.unwrap_or(-1);
        let tid = s.tid.unwrap_or(-1);
        let mut comm = std::mem::take(&mut self.comm_buf);
        comm.clear();
        comm.push_str(self.threads.comm(mode.is_guest(), pid, tid));
        // The frames perf shows: the callchain (LBR-stitched for --call-graph lbr), or the
        // sample ip alone when the callchain holds no address.
        let stitched;
        let only_ip;
        let mut unwound = std::mem::take(&mut self.unwound_buf);
        let mut is_unwound = false;
        let recorded = s.callchain.map(records::classify_callchain);
        let chain: Option<&[u8]> = match (s.callchain, s.branch_stack.as_ref()) {
            // --call-graph dwarf: the kernel part as recorded, then the unwound user stack.
            _ if self.unwind_user(&attr, &s, mode, &mut unwound) => {
                is_unwound = true;
                Some(&unwound)
            }
            (Some(raw), Some(lbr)) if attr.branch_sample_type & BRANCH_CALL_STACK != 0 => {
                stitched = lbr_callchain(raw, lbr);
                Some(&stitched)
            }
            // A corrupt recorded chain perf discards: no frame for a host sample (as below),
            // the ip alone for a guest-mode one (the last arm).
            (Some(_), _) if recorded == Some(RecordedChain::Discarded) && !mode.is_guest() => {
                Some(&[][..])
            }
            (Some(raw), _) if recorded == Some(RecordedChain::Frames) => Some(raw),
            // A host sample whose recorded callchain holds no frame (a user-mode sample of
            // `--call-graph dwarf` that could not be unwound, a user chain the kernel could not
            // walk): perf script prints no frame for it, and inferno-collapse-perf leaves it
            // out. Its stack is the empty one; `samples.ip` keeps the address.
            (Some(raw), _) if !mode.is_guest() => Some(raw),
            _ => match s.ip {
                Some(ip) => {
                    only_ip = ip.to_le_bytes();
                    Some(&only_ip[..])
                }
                None => None,
            },
        };
        let stack_id = match chain {
            Some(raw) => {
                let has_user = mode_has_user(mode, raw);
                let owner = if has_user || mode.is_guest() { pid } else { -1 };
                let (id, new) = self.stacks.intern(mode, owner, raw);
                if new {
                    self.write_stack(id, mode, owner, raw, is_unwound);
                }
                Some(id)
            }
            None => None,
        };
        self.unwound_buf = unwound;
        if let Some(ev) = self.events.get_mut(ev_idx) {
            ev.n_samples += 1;
        }
        let mut name = std::mem::take(&mut self.name_buf);
        name.clear();
        if let Some(n) = self.events.get(ev_idx).and_then(|e| e.name.as_deref()) {
            name.push_str(n);
        }
        let period = s.period.or(Some(attr.fixed_period()));
        let tp_table = self.tp_by_event.get(&ev_idx).cloned();

        // Tracepoint table row and KVM model.
        let mut raw_decoded = false;
        if let (Some(table), Some(raw)) = (tp_table.as_ref(), s.raw) {
            let big = self.tracing.as_ref().is_some_and(|t| t.big_endian);
            if let Some(tp) = self.tp_tables.get_mut(&**table) {
                raw_decoded = true;
                let w = &mut tp.writer;
                w.u64(0, Some(idx));
                w.u64(1, s.time);
                w.u32(2, s.cpu);
                w.i32(3, s.pid);
                w.i32(4, s.tid);
                for &(common, fi, col) in &tp.columns {
                    let f = if common {
                        tp.format.common_fields.get(fi)
                    } else {
                        tp.format.fields.get(fi)
                    };
                    let Some(f) = f else { continue };
                    match f.value(raw, big) {
                        Some(FieldValue::Unsigned(v)) => w.u64(col, Some(v)),
                        Some(FieldValue::Signed(v)) => w.i64(col, Some(v)),
                        Some(FieldValue::Str(v)) => w.str(col, Some(&v)),
                        Some(FieldValue::Bytes(v)) => w.bin(col, Some(v)),
                        None => w.u64(col, None),
                    }
                }
                w.end_row()?;
                self.kvm
                    .on_tracepoint(&tp.format, raw, big, idx, s.time, s.cpu, s.pid, s.tid);
            }
        }
        if s.raw.is_some() && attr.type_ == event_type::TRACEPOINT && !raw_decoded {
            self.warn(
                WarningKind::MissingFormat,
                Some(offset),
                format!("no format description for tracepoint id {}; its raw payload is kept in samples.raw", attr.config),
            );
        }

        let host_time = match &self.cfg.guest {
            Some(g) => s.time.map(|t| g.to_host(self.time_conv, t)),
            None => s.time,
        };
        if let Some(g) = &self.cfg.guest {
            // guest_samples: vm_pid, vm, vcpu (= guest cpu), guest_time_ns follow the samples columns.
            let base = SAMPLE_COLS.len();
            let w = &mut self.samples;
            w.i32(base, Some(g.vm_pid));
            w.str(base + 1, Some(&g.vm));
            w.u32(base + 2, s.cpu);
            w.u64(base + 3, s.time);
        }
        let c = self.sample_cols.idx;
        let w = &mut self.samples;
        w.u64(c[0], Some(idx));
        w.u64(c[1], host_time);
        w.u32(c[2], s.cpu);
        w.i32(c[3], s.pid);
        w.i32(c[4], s.tid);
        w.str(c[5], Some(&comm));
        w.str(c[6], Some(&name));
        w.u32(c[7], Some(self.cfg.ids.event_idx + ev_idx as u32));
        w.u64(c[8], period);
        w.u64(c[9], s.ip);
        w.str(c[10], Some(mode.as_str()));
        w.u32(c[11], stack_id.map(|id| self.cfg.ids.stack_id + id));
        w.u64(c[12], s.addr);
        w.u64(c[13], s.id);
        w.u64(c[14], s.stream_id);
        match &s.read {
            Some(r) => {
                w.u64(c[15], r.time_enabled);
                w.u64(c[16], r.time_running);
                w.list_u64(c[17], Some(&mut r.values.iter().map(|v| v.value)));
                w.list_u64(c[18], Some(&mut r.values.iter().map(|v| v.id.unwrap_or(0))));
                // Each value's growth since the previous sample that read the same id, in
                // delivery (time) order: the period perf gives the sample it delivers for that
                // value's event (deliver_sample_value: `value - sid->period`).
                let prev = &mut self.read_prev;
                w.list_u64(
                    c[31],
                    Some(&mut r.values.iter().map(|v| {
                        let last = prev.insert(v.id.unwrap_or(0), v.value).unwrap_or(0);
                        v.value.wrapping_sub(last)
                    })),
                );
            }
            None => {
                w.u64(c[15], None);
                w.u64(c[16], None);
                w.list_u64(c[17], None);
                w.list_u64(c[18], None);
                w.list_u64(c[31], None);
            }
        }
        match &s.branch_stack {
            Some(b) => {
                w.list_u64(c[19], Some(&mut b.iter().map(|e| e.from)));
                w.list_u64(c[20], Some(&mut b.iter().map(|e| e.to)));
                w.list_u64(c[21], Some(&mut b.iter().map(|e| e.flags)));
            }
            None => {
                w.list_u64(c[19], None);
                w.list_u64(c[20], None);
                w.list_u64(c[21], None);
            }
        }
        w.u64(c[22], s.user_regs_abi);
        match s.user_regs {
            Some(r) => w.list_u64(c[23], Some(&mut callchain_ips(r))),
            None => w.list_u64(c[23], None),
        }
        w.bin(c[24], s.user_stack);
        w.u64(c[25], s.weight);
        w.u64(c[26], s.data_src);
        w.u64(c[27], s.transaction);
        w.u64(c[28], s.phys_addr);
        w.u64(c[29], s.cgroup);
        w.bin(
            c[30],
            if raw_decoded && !self.cfg.keep_raw {
                None
            } else {
                s.raw
            },
        );
        w.u64(c[32], s.intr_regs_abi);
        match s.intr_regs {
            Some(r) => w.list_u64(c[33], Some(&mut callchain_ips(r))),
            None => w.list_u64(c[33], None),
        }
        w.u64(c[34], s.data_page_size);
        w.u64(c[35], s.code_page_size);
        w.bin(c[36], s.aux);
        w.end_row()?;
        self.comm_buf = comm;
        self.name_buf = name;
        Ok(())
    }

    /// Writes `stacks`, `events`, `threads`, `build_ids` and closes every streaming table.
    /// Returns (table, path, rows).
    pub(crate) fn close(mut self) -> Result<(Vec<WrittenTable>, SessionSummary), Error> {
        self.resolve_names();
        let mut out = Vec::new();
        // Stacks: written as they were first seen.
        let (frames, written) = match self.stack_thread.take() {
            Some(t) => t.finish()?,
            None => {
                return Err(self
                    .fatal
                    .take()
                    .unwrap_or_else(|| Error::Invalid("stacks thread missing".into())));
            }
        };
        push(&mut out, written, &self.table_name("stacks"));
        // Events.
        let mut w = TableWriter::new(
            &self.table_name("events"),
            self.part("events"),
            &schema::events().defs(),
            Vec::new(),
        )
        .compressed(self.cfg.compression);
        for (i, e) in self.events.iter().enumerate() {
            w.u32(0, Some(self.cfg.ids.event_idx + i as u32));
            w.str(1, e.name.as_deref());
            w.u32(2, Some(e.attr.type_));
            w.u64(3, Some(e.attr.config));
            w.u64(4, Some(e.attr.sample_type));
            w.u64(5, Some(e.attr.read_format));
            let (p, f) = if e.attr.freq() {
                (None, Some(e.attr.sample_period_or_freq))
            } else {
                (Some(e.attr.sample_period_or_freq), None)
            };
            w.u64(6, p);
            w.u64(7, f);
            w.u64(8, Some(e.attr.flags));
            w.u32(9, Some(e.attr.size));
            w.list_u64(10, Some(&mut e.ids.iter().copied()));
            w.str(11, self.tp_by_event.get(&i).map(|s| &**s));
            w.u64(12, Some(e.n_samples));
            w.end_row()?;
        }
        push(&mut out, w.close()?, &self.table_name("events"));
        // Threads.
        let mut w = TableWriter::new(
            &self.table_name("threads"),
            self.part("threads"),
            &schema::threads().defs(),
            Vec::new(),
        )
        .compressed(self.cfg.compression);
        for s in self.threads.spans() {
            w.str(0, Some(if s.guest { "guest" } else { "host" }));
            w.i32(1, Some(s.pid));
            w.i32(2, Some(s.tid));
            w.str(3, Some(&s.comm));
            w.u64(4, s.start_ns);
            w.u64(5, s.end_ns);
            w.u64(6, s.exit_ns);
            w.bool(7, Some(s.exec));
            w.end_row()?;
        }
        push(&mut out, w.close()?, &self.table_name("threads"));
        // Build ids.
        let mut w = TableWriter::new(
            &self.table_name("build_ids"),
            self.part("build_ids"),
            &schema::build_ids().defs(),
            Vec::new(),
        )
        .compressed(self.cfg.compression);
        for b in &self.features.build_ids {
            w.i32(0, Some(b.pid));
            w.str(1, Some(CpuMode::from_misc(b.misc).as_str()));
            w.str(2, Some(&hex(&b.build_id)));
            w.str(3, Some(&b.filename));
            w.end_row()?;
        }
        push(&mut out, w.close()?, &self.table_name("build_ids"));
        if self.cfg.guest.is_none() {
            let pids = self.kvm.vm_pids();
            let tsc = self.kvm.tsc_offsets();
            let kvm = std::mem::take(&mut self.kvm);
            let root = self.cfg.root.clone();
            let names: HashMap<i32, String> = pids
                .iter()
                .map(|&p| (p, self.vm_name(p).to_string()))
                .collect();
            self.vms = names.iter().map(|(p, n)| (*p, n.clone())).collect();
            self.tsc = tsc;
            let part = self.cfg.ids.part;
            let closed = kvm.close(
                &|t: &str| partition_part(&root, t, &self.cfg.host, &self.cfg.recording, part),
                &names,
            )?;
            out.extend(closed.tables);
            self.guest_rips = closed.guest_rips;
        }
        let (sn, mn, ln) = (
            self.table_name("samples"),
            self.table_name("mmaps"),
            self.table_name("lost"),
        );
        push(&mut out, self.samples.close()?, &sn);
        push(&mut out, self.mmaps.close()?, &mn);
        push(&mut out, self.lost.close()?, &ln);
        for (name, tp) in std::mem::take(&mut self.tp_tables) {
            push(&mut out, tp.writer.close()?, &name);
        }
        let stacks = Stacks {
            n_stacks: self.stacks.len(),
            frames: frames.frames,
            slots: std::mem::take(&mut self.stacks.slots),
        };
        let summary = SessionSummary {
            n_samples: self.sample_idx,
            n_events: self.events.len() as u32,
            first_time: self.first_time,
            last_time: self.last_time,
            warnings: self.warnings,
            warning_counts: self.warned,
            features: self.features,
            stacks,
            time_conv: self.time_conv,
            vms: std::mem::take(&mut self.vms),
            tsc_offsets: std::mem::take(&mut self.tsc),
            guest_rips: std::mem::take(&mut self.guest_rips),
        };
        Ok((out, summary))
    }
}

/// A written table: name, file, rows.
pub(crate) type WrittenTable = (String, PathBuf, u64);

/// What the session saw, for `meta` and the report.
pub(crate) struct SessionSummary {
    pub(crate) n_samples: u64,
    pub(crate) first_time: Option<u64>,
    pub(crate) last_time: Option<u64>,
    pub(crate) warnings: Vec<Warning>,
    pub(crate) warning_counts: HashMap<WarningKind, u64>,
    pub(crate) features: Features,
    /// Rows written to `events`.
    pub(crate) n_events: u32,
    /// The distinct frames of the stacks, for symbolisation.
    pub(crate) stacks: Stacks,
    /// The recording's TIME_CONV, for guest clock conversion.
    pub(crate) time_conv: Option<TimeConv>,
    /// VMs seen: (VMM pid, display name).
    pub(crate) vms: Vec<(i32, String)>,
    /// kvm_write_tsc_offset: (VMM pid, vcpu, next offset).
    pub(crate) tsc_offsets: Vec<(i32, u32, u64)>,
    /// Every distinct (VMM pid, guest RIP) of the exits and kvm_emulate_insn events, sorted:
    /// resolved into `exit_symbols`.
    pub(crate) guest_rips: Vec<(i32, u64)>,
}

fn push(out: &mut Vec<(String, PathBuf, u64)>, (path, rows): (PathBuf, u64), name: &str) {
    out.push((name.to_string(), path, rows));
}

/// Whether a callchain (with the sample's mode before its first marker) has user frames.
fn mode_has_user(mode: CpuMode, raw: &[u8]) -> bool {
    records::callchain_frames(raw, mode)
        .any(|(_, m)| matches!(m, CpuMode::HostUser | CpuMode::GuestUser | CpuMode::Unknown))
}

/// `PERF_RECORD_TIME_CONV`: how perf time relates to the TSC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeConv {
    pub(crate) time_shift: u64,
    pub(crate) time_mult: u64,
    pub(crate) time_zero: u64,
    pub(crate) time_cycles: u64,
    pub(crate) time_mask: u64,
    pub(crate) cap_user_time_short: bool,
}

impl TimeConv {
    fn parse(body: &[u8]) -> Option<TimeConv> {
        let (shift, mult, zero) = (u64_at(body, 0)?, u64_at(body, 8)?, u64_at(body, 16)?);
        let cycles = u64_at(body, 24).unwrap_or(0);
        let mask = u64_at(body, 32).unwrap_or(0);
        let short = body.get(41).is_some_and(|b| *b != 0);
        (mult != 0 && shift < 64).then_some(TimeConv {
            time_shift: shift,
            time_mult: mult,
            time_zero: zero,
            time_cycles: cycles,
            time_mask: mask,
            cap_user_time_short: short,
        })
    }

    /// perf's `perf_time_to_tsc`.
    pub(crate) fn perf_time_to_tsc(&self, ns: u64) -> u64 {
        let t = ns.wrapping_sub(self.time_zero);
        let quot = t / self.time_mult;
        let rem = t % self.time_mult;
        (quot << self.time_shift)
            .wrapping_add(((rem as u128) << self.time_shift) as u64 / self.time_mult)
    }

    /// perf's `tsc_to_perf_time`.
    pub(crate) fn tsc_to_perf_time(&self, cyc: u64) -> u64 {
        let cyc = if self.cap_user_time_short {
            self.time_cycles
                .wrapping_add(cyc.wrapping_sub(self.time_cycles) & self.time_mask)
        } else {
            cyc
        };
        let quot = cyc >> self.time_shift;
        let rem = cyc & ((1u64 << self.time_shift) - 1);
        self.time_zero
            .wrapping_add(quot.wrapping_mul(self.time_mult))
            .wrapping_add(((rem as u128 * self.time_mult as u128) >> self.time_shift) as u64)
    }
}

/// `PERF_SAMPLE_BRANCH_CALL_STACK`: the user callchain is recorded in the LBR.
const BRANCH_CALL_STACK: u64 = 1 << 11;

/// The callchain perf shows for `--call-graph lbr` (`resolve_lbr_callchain_sample`, callee
/// order): the kernel part of the recorded callchain, then the LBR: the first entry's target,
/// then every entry's source.
fn lbr_callchain(raw: &[u8], lbr: &[records::BranchEntry]) -> Vec<u8> {
    let ips: Vec<u64> = callchain_ips(raw).collect();
    let Some(user_at) = ips.iter().position(|&ip| ip == records::context::USER) else {
        return raw.to_vec();
    };
    let mut out: Vec<u8> = Vec::with_capacity(raw.len() + lbr.len() * 8 + 16);
    for ip in &ips[..=user_at] {
        out.extend_from_slice(&ip.to_le_bytes());
    }
    if let Some(first) = lbr.first() {
        out.extend_from_slice(&first.to.to_le_bytes());
        for e in lbr {
            out.extend_from_slice(&e.from.to_le_bytes());
        }
    }
    out
}

/// Table names use `[A-Za-z0-9_]` only.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl RecordHandler for Session {
    fn on_attr(&mut self, entry: AttrEntry) {
        let idx = self.events.len();
        for id in &entry.ids {
            self.id_map.insert(*id, idx);
        }
        self.events.push(EventInfo {
            attr: entry.attr,
            ids: entry.ids,
            name: None,
            n_samples: 0,
        });
        self.names_ready = false;
    }

    fn on_event_type(&mut self, id: u64, name: String) {
        self.event_types.insert(id, name);
        self.names_ready = false;
    }

    fn on_feature(&mut self, feat: u32, data: &[u8]) {
        self.features.apply(feat, data);
        if !self.host_announced
            && let (Some(tx), Some(hostname), Some(os_release)) = (
                &self.cfg.preload,
                &self.features.hostname,
                &self.features.os_release,
            )
        {
            self.host_announced = true;
            let _ = tx.send(Preload::Host {
                hostname: hostname.clone(),
                os_release: os_release.clone(),
            });
        }
        if feat == feature::TRACING_DATA {
            match parse_tracing_data(data) {
                Ok(t) => {
                    for w in &t.warnings {
                        self.warn(
                            WarningKind::CorruptHeader,
                            None,
                            format!("tracing data: {w}"),
                        );
                    }
                    self.tracing = Some(t);
                }
                Err(e) => self.warn(
                    WarningKind::CorruptHeader,
                    None,
                    format!("tracing data unreadable: {e}"),
                ),
            }
        }
        if feat == feature::BUILD_ID {
            for b in &self.features.build_ids {
                self.build_ids_by_path
                    .insert(b.filename.clone(), hex(&b.build_id));
                if matches!(
                    CpuMode::from_misc(b.misc),
                    CpuMode::HostKernel | CpuMode::GuestKernel
                ) {
                    self.kernel_build_id_paths.insert(b.filename.clone());
                }
            }
        }
        self.names_ready = false;
    }

    fn on_record(&mut self, type_: u32, misc: u16, body: &[u8], offset: u64) {
        if self.fatal.is_some() {
            return;
        }
        if let Err(e) = self.handle(type_, misc, body, offset) {
            self.fatal = Some(e);
        }
    }

    fn on_progress(&mut self, bytes: u64) {
        if let Some(p) = self.progress.as_mut() {
            p(bytes);
        }
    }

    fn on_turn(&mut self, file: usize, files: usize) {
        self.turn_max.resize(files, None);
        self.turn = Some(file);
    }

    /// Each file of a perf.data directory is in time order (perf writes one per ring buffer,
    /// and reads it so: "each data file holds per-cpu data, already sorted by kernel"), so no
    /// record still to come is older than the oldest of the files' latest times: what is
    /// queued up to there is delivered, in the order perf's final sort gives it (time, then
    /// the order read; a later record of that same time comes after them, as in perf). Memory
    /// then holds about a turn of each file, not the whole directory.
    fn on_turn_end(&mut self, file: usize, done: bool) {
        self.turn = None;
        if let Some(m) = self.turn_max.get_mut(file)
            && done
        {
            *m = Some(u64::MAX);
        }
        let Some(limit) = self.turn_max.iter().copied().min().flatten() else {
            return;
        };
        if self.fatal.is_some() || limit == u64::MAX {
            return;
        }
        if let Err(e) = self.flush_upto(limit) {
            self.fatal = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Frame ids through the cache of recent frames are those of a plain map: equal
        /// (slot, address) pairs share an id, distinct ones never do, ids are dense in order
        /// of first appearance. Few slots and addresses make repeats and cache collisions
        /// (4096 buckets) common.
        #[test]
        fn frame_ids_equal_a_plain_map(
            keys in proptest::collection::vec((0u32..6, 0u64..20_000), 1..5_000)
        ) {
            let mut interner = FrameInterner::default();
            let mut model: HashMap<(u32, u64), u32> = HashMap::new();
            for &(slot, addr) in &keys {
                let n = model.len() as u32;
                let want = *model.entry((slot, addr)).or_insert(n);
                prop_assert_eq!(interner.frame(slot, addr), want);
            }
            prop_assert_eq!(interner.frames.len(), model.len());
            for (&(slot, addr), &id) in &model {
                prop_assert_eq!(interner.frames[id as usize], (addr, slot));
            }
        }

        /// Stack ids are those of a plain map over (mode, owner, chain): the same chain of
        /// another owner or mode is another stack, ids dense in order of first appearance.
        #[test]
        fn stack_ids_equal_a_plain_map(
            keys in proptest::collection::vec(
                (0u16..3, -1i32..2, proptest::collection::vec(0u8..3, 0..12)),
                1..2_000,
            )
        ) {
            let mut interner = StackInterner::default();
            let mut model: HashMap<(CpuMode, i32, Vec<u8>), u32> = HashMap::new();
            for (misc, pid, raw) in &keys {
                let mode = CpuMode::from_misc(*misc);
                let n = model.len() as u32;
                let want = *model.entry((mode, *pid, raw.clone())).or_insert(n);
                prop_assert_eq!(interner.intern(mode, *pid, raw), (want, want == n));
            }
            prop_assert_eq!(interner.len() as usize, model.len());
        }
    }
}
