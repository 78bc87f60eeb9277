//! Streaming Parquet tables: typed column builders flushed in batches to an arrow-rs
//! `ArrowWriter`, so memory stays bounded by one batch per table whatever the input size.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, BooleanBufferBuilder, Float64Array, Int32Array,
    Int64Array, ListArray, StringArray, UInt32Array, UInt64Array, new_null_array,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as Codec, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::Error;

/// The version of the table schema, written into every Parquet file's key-value metadata
/// (`kvmtrace.schema_version`). Bump when a column changes meaning or type.
pub const SCHEMA_VERSION: u32 = 2;

/// Rows per batch handed to the Parquet writer. Batches this small keep each column's buffers
/// small enough for the allocator to reuse from one batch to the next: with 65,536 rows the
/// `stacks` lists of a 100 MB `-g` recording (9 M frames) took fresh, zeroed pages every batch
/// (ingest RSS 0.48 GB, now 0.37 GB, no slower).
const BATCH_ROWS: usize = 16_384;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 262_144;

/// Whether a column holds 64-bit integers whose deltas are small: times and durations in ns
/// (`time_ns`, `exit_time_ns`, `duration_ns`, ...) and the sample index (one more each row).
fn is_delta_column(name: &str, data_type: &DataType) -> bool {
    (name.ends_with("_ns") || name == "sample_idx")
        && matches!(data_type, DataType::UInt64 | DataType::Int64)
}

/// The column types kvmtrace tables use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// UInt64.
    U64,
    /// UInt32.
    U32,
    /// Int32.
    I32,
    /// Int64.
    I64,
    /// Float64.
    F64,
    /// Boolean.
    Bool,
    /// Utf8.
    Str,
    /// Binary.
    Bin,
    /// List<UInt64>.
    ListU64,
    /// List<UInt32>.
    ListU32,
    /// List<Utf8>.
    ListStr,
}

impl ColType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            ColType::U64 => DataType::UInt64,
            ColType::U32 => DataType::UInt32,
            ColType::I32 => DataType::Int32,
            ColType::I64 => DataType::Int64,
            ColType::F64 => DataType::Float64,
            ColType::Bool => DataType::Boolean,
            ColType::Str => DataType::Utf8,
            ColType::Bin => DataType::Binary,
            ColType::ListU64 => {
                DataType::List(Arc::new(Field::new("item", DataType::UInt64, true)))
            }
            ColType::ListU32 => {
                DataType::List(Arc::new(Field::new("item", DataType::UInt32, true)))
            }
            ColType::ListStr => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        }
    }

    /// The name used in docs/schema.md.
    pub fn doc_name(self) -> &'static str {
        match self {
            ColType::U64 => "UInt64",
            ColType::U32 => "UInt32",
            ColType::I32 => "Int32",
            ColType::I64 => "Int64",
            ColType::F64 => "Float64",
            ColType::Bool => "Boolean",
            ColType::Str => "Utf8",
            ColType::Bin => "Binary",
            ColType::ListU64 => "List<UInt64>",
            ColType::ListU32 => "List<UInt32>",
            ColType::ListStr => "List<Utf8>",
        }
    }
}

/// Which rows of a column's open batch are null. While only nulls have come the column keeps
/// no values at all, just their count (most optional `samples` columns are never recorded);
/// the bitmap is made only once a null and a value meet in one batch.
#[derive(Default)]
struct Validity {
    rows: usize,
    /// Whether a value has come in this batch.
    any_value: bool,
    bits: Option<BooleanBufferBuilder>,
}

impl Validity {
    /// Records a value. Returns the number of null rows before it whose places the values
    /// must first be padded with (nonzero only for the first value after leading nulls).
    #[inline]
    fn value(&mut self) -> usize {
        let mut pad = 0;
        if !self.any_value {
            self.any_value = true;
            pad = self.rows;
            if pad > 0 {
                let mut b = BooleanBufferBuilder::new(BATCH_ROWS);
                b.append_n(pad, false);
                self.bits = Some(b);
            }
        }
        if let Some(b) = &mut self.bits {
            b.append(true);
        }
        self.rows += 1;
        pad
    }

    /// Records `n` nulls. Returns whether the values take placeholders for them (not while
    /// the batch has had nulls only).
    fn nulls(&mut self, n: usize) -> bool {
        let before = self.rows;
        self.rows += n;
        if !self.any_value {
            return false;
        }
        self.bits
            .get_or_insert_with(|| {
                let mut b = BooleanBufferBuilder::new(BATCH_ROWS);
                b.append_n(before, true);
                b
            })
            .append_n(n, false);
        true
    }

    /// The null buffer of the batch; starts the next one.
    fn take(&mut self) -> Option<NullBuffer> {
        let nulls = self.bits.take().map(|mut b| NullBuffer::new(b.finish()));
        self.rows = 0;
        self.any_value = false;
        nulls
    }
}

/// A column's values of the open batch as plain vectors (offsets start with 0).
///
/// Not arrow's builders: their per-value validity bookkeeping (`append_null` materialises a
/// bitmap for columns that are null in every row) was a fifth of the ingest's record thread,
/// and their buffers, handed to the encoder thread inside the batch and freed there, came back
/// to the record thread as fresh pages the kernel zeroed. These vectors go to the encoder
/// thread, which copies them into arrow arrays and sends them back to be filled again.
enum Values {
    U64(Vec<u64>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    /// Utf8 (checked when the array is made) and Binary.
    Bytes {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    ListU64 {
        offsets: Vec<i32>,
        items: Vec<u64>,
    },
    ListU32 {
        offsets: Vec<i32>,
        items: Vec<u32>,
    },
    ListStr {
        offsets: Vec<i32>,
        item_offsets: Vec<i32>,
        data: Vec<u8>,
    },
}

/// Offsets are i32 as arrow's: a batch holds at most `BATCH_ROWS` rows of at most one 64 KiB
/// record each, 1 GiB. A longer one saturates, and making the array fails with an error
/// (never a silently cut value).
fn offset(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Repeats the last offset `n` times: `n` empty (null) entries.
fn pad_offsets(offsets: &mut Vec<i32>, n: usize) {
    let last = offsets.last().copied().unwrap_or(0);
    offsets.resize(offsets.len() + n, last);
}

struct Col {
    ty: ColType,
    values: Values,
    valid: Validity,
}

impl Col {
    fn new(ty: ColType) -> Col {
        let offsets = || {
            let mut o = Vec::with_capacity(BATCH_ROWS + 1);
            o.push(0);
            o
        };
        let values = match ty {
            ColType::U64 => Values::U64(Vec::with_capacity(BATCH_ROWS)),
            ColType::U32 => Values::U32(Vec::with_capacity(BATCH_ROWS)),
            ColType::I32 => Values::I32(Vec::with_capacity(BATCH_ROWS)),
            ColType::I64 => Values::I64(Vec::with_capacity(BATCH_ROWS)),
            ColType::F64 => Values::F64(Vec::with_capacity(BATCH_ROWS)),
            ColType::Bool => Values::Bool(Vec::with_capacity(BATCH_ROWS)),
            ColType::Str | ColType::Bin => Values::Bytes {
                offsets: offsets(),
                data: Vec::new(),
            },
            ColType::ListU64 => Values::ListU64 {
                offsets: offsets(),
                items: Vec::new(),
            },
            ColType::ListU32 => Values::ListU32 {
                offsets: offsets(),
                items: Vec::new(),
            },
            ColType::ListStr => Values::ListStr {
                offsets: offsets(),
                item_offsets: offsets(),
                data: Vec::new(),
            },
        };
        Col {
            ty,
            values,
            valid: Validity::default(),
        }
    }

    /// Fills the column with nulls up to `rows` rows.
    fn null_to(&mut self, rows: usize) {
        let n = rows.saturating_sub(self.valid.rows);
        if n > 0 && self.valid.nulls(n) {
            self.pad(n);
        }
    }

    /// Appends `n` placeholder values (for nulls).
    fn pad(&mut self, n: usize) {
        let grow = |len: usize| len + n;
        match &mut self.values {
            Values::U64(v) => v.resize(grow(v.len()), 0),
            Values::U32(v) => v.resize(grow(v.len()), 0),
            Values::I32(v) => v.resize(grow(v.len()), 0),
            Values::I64(v) => v.resize(grow(v.len()), 0),
            Values::F64(v) => v.resize(grow(v.len()), 0.0),
            Values::Bool(v) => v.resize(grow(v.len()), false),
            Values::Bytes { offsets, .. }
            | Values::ListU64 { offsets, .. }
            | Values::ListU32 { offsets, .. }
            | Values::ListStr { offsets, .. } => pad_offsets(offsets, n),
        }
    }

    /// Records a value in row `row` (nulls fill the rows this column skipped).
    #[inline(always)]
    fn value(&mut self, row: usize) -> &mut Values {
        let v = &mut self.valid;
        if v.rows == row && v.any_value && v.bits.is_none() {
            // The common case: a column with a value in every row so far.
            v.rows += 1;
        } else {
            self.value_after_nulls(row);
        }
        &mut self.values
    }

    #[cold]
    #[inline(never)]
    fn value_after_nulls(&mut self, row: usize) {
        self.null_to(row);
        let pad = self.valid.value();
        if pad > 0 {
            self.pad(pad);
        }
    }

    /// The batch as an arrow array (the values copied: these vectors are filled again);
    /// empties the column.
    fn take_array(&mut self) -> Result<ArrayRef, ArrowError> {
        let rows = self.valid.rows;
        let any_value = self.valid.any_value;
        let nulls = self.valid.take();
        let dt = self.ty.data_type();
        if !any_value {
            self.clear();
            return Ok(new_null_array(&dt, rows));
        }
        let offs = |o: &Vec<i32>| match o.last() {
            Some(&i32::MAX) => Err(ArrowError::InvalidArgumentError(
                "a batch holds more than 2 GiB of values".into(),
            )),
            _ => Ok(OffsetBuffer::new(ScalarBuffer::from(o.clone()))),
        };
        let item_field = || match &dt {
            DataType::List(f) => f.clone(),
            other => Arc::new(Field::new("item", other.clone(), true)),
        };
        let a: ArrayRef = match &self.values {
            Values::U64(v) => Arc::new(UInt64Array::try_new(v.clone().into(), nulls)?),
            Values::U32(v) => Arc::new(UInt32Array::try_new(v.clone().into(), nulls)?),
            Values::I32(v) => Arc::new(Int32Array::try_new(v.clone().into(), nulls)?),
            Values::I64(v) => Arc::new(Int64Array::try_new(v.clone().into(), nulls)?),
            Values::F64(v) => Arc::new(Float64Array::try_new(v.clone().into(), nulls)?),
            Values::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(&v[..]), nulls)),
            Values::Bytes { offsets, data } => {
                let data = Buffer::from_slice_ref(data);
                if self.ty == ColType::Str {
                    Arc::new(StringArray::try_new(offs(offsets)?, data, nulls)?)
                } else {
                    Arc::new(BinaryArray::try_new(offs(offsets)?, data, nulls)?)
                }
            }
            Values::ListU64 { offsets, items } => {
                let items = Arc::new(UInt64Array::from(items.clone()));
                Arc::new(ListArray::try_new(
                    item_field(),
                    offs(offsets)?,
                    items,
                    nulls,
                )?)
            }
            Values::ListU32 { offsets, items } => {
                let items = Arc::new(UInt32Array::from(items.clone()));
                Arc::new(ListArray::try_new(
                    item_field(),
                    offs(offsets)?,
                    items,
                    nulls,
                )?)
            }
            Values::ListStr {
                offsets,
                item_offsets,
                data,
            } => {
                let items = Arc::new(StringArray::try_new(
                    offs(item_offsets)?,
                    Buffer::from_slice_ref(data),
                    None,
                )?);
                Arc::new(ListArray::try_new(
                    item_field(),
                    offs(offsets)?,
                    items,
                    nulls,
                )?)
            }
        };
        self.clear();
        Ok(a)
    }

    /// Empties the values, keeping their capacity.
    fn clear(&mut self) {
        let reset = |o: &mut Vec<i32>| {
            o.clear();
            o.push(0);
        };
        match &mut self.values {
            Values::U64(v) => v.clear(),
            Values::U32(v) => v.clear(),
            Values::I32(v) => v.clear(),
            Values::I64(v) => v.clear(),
            Values::F64(v) => v.clear(),
            Values::Bool(v) => v.clear(),
            Values::Bytes { offsets, data } => {
                reset(offsets);
                data.clear();
            }
            Values::ListU64 { offsets, items } => {
                reset(offsets);
                items.clear();
            }
            Values::ListU32 { offsets, items } => {
                reset(offsets);
                items.clear();
            }
            Values::ListStr {
                offsets,
                item_offsets,
                data,
            } => {
                reset(offsets);
                reset(item_offsets);
                data.clear();
            }
        }
    }
}

/// One batch's columns on their way to the encoder thread and back.
struct RawBatch {
    cols: Vec<Col>,
}

impl RawBatch {
    fn new(columns: &[ColType]) -> RawBatch {
        RawBatch {
            cols: columns.iter().map(|&t| Col::new(t)).collect(),
        }
    }

    /// The record batch; leaves the columns empty for the next batch.
    fn take(&mut self, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
        let arrays = self
            .cols
            .iter_mut()
            .map(Col::take_array)
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(schema.clone(), arrays)
    }
}

/// A column definition: name, type, nullability, and its line in docs/schema.md.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Type.
    pub ty: ColType,
    /// Whether nulls occur.
    pub nullable: bool,
}

impl ColumnDef {
    /// A column.
    pub fn new(name: impl Into<String>, ty: ColType, nullable: bool) -> Self {
        ColumnDef {
            name: name.into(),
            ty,
            nullable,
        }
    }
}

/// How a table's pages are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// zstd level 1 (the default): about a fifth of the plain size.
    #[default]
    Zstd,
    /// Plain pages: ~5× larger files, but writing them takes a sixth less CPU (an 84 MB
    /// `-g -a` recording ingested for `kvmtrace flame perf.data`), as no page is compressed
    /// and none must be decompressed again. For datasets read once and deleted.
    None,
}

/// One Parquet table being written. Values are appended column by column for the current row
/// (at most one per column; a column given none, or `None`, is null in that row);
/// [`TableWriter::end_row`] closes the row. A type mismatch between the value and the column is
/// a programming error and leaves a null instead (never panics).
pub struct TableWriter {
    name: String,
    path: PathBuf,
    schema: SchemaRef,
    types: Vec<ColType>,
    /// The open batch.
    batch: RawBatch,
    /// Rows per batch ([`BATCH_ROWS`]; tests cut smaller ones).
    batch_rows: usize,
    rows_in_batch: usize,
    rows_total: u64,
    writer: Option<Encoder>,
    metadata: Vec<(String, String)>,
    compression: Compression,
}

/// Parquet encoding and compression of one table on a thread of its own: the session builds
/// the next batch while the previous one is encoded (two cores: ~1.3× faster ingest). At most
/// two batches wait, so memory stays bounded; each comes back empty (`spare`) to be filled
/// again.
struct Encoder {
    batches: std::sync::mpsc::SyncSender<RawBatch>,
    spare: std::sync::mpsc::Receiver<RawBatch>,
    done: std::thread::JoinHandle<Result<(), Error>>,
}

impl Encoder {
    fn start(name: String, schema: SchemaRef, mut w: ArrowWriter<File>) -> Result<Encoder, Error> {
        let (batches, rx) = std::sync::mpsc::sync_channel::<RawBatch>(2);
        let (spare_tx, spare) = std::sync::mpsc::channel::<RawBatch>();
        let thread_name = format!("parquet {name}");
        let done = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || -> Result<(), Error> {
                for mut raw in rx {
                    let batch = raw.take(&schema).map_err(|source| Error::Arrow {
                        table: name.clone(),
                        source,
                    })?;
                    // The writer is gone when the table is closed: the batch is not wanted.
                    let _ = spare_tx.send(raw);
                    w.write(&batch).map_err(|source| Error::Parquet {
                        table: name.clone(),
                        source,
                    })?;
                }
                w.close().map_err(|source| Error::Parquet {
                    table: name.clone(),
                    source,
                })?;
                Ok(())
            })
            .map_err(|e| Error::Io {
                path: None,
                offset: None,
                source: e,
            })?;
        Ok(Encoder {
            batches,
            spare,
            done,
        })
    }

    /// Waits for every batch to be written and the file closed.
    fn finish(self) -> Result<(), Error> {
        drop(self.batches);
        match self.done.join() {
            Ok(r) => r,
            Err(_) => Err(Error::Invalid("parquet encoder thread panicked".into())),
        }
    }
}

/// A typed appender of [`TableWriter`]: the value goes to a column of one of the listed types
/// (`ColType` and `Values` variants of one name), converted by the expression beside it; to
/// a column of another type, nothing (the row stays null there).
macro_rules! appender {
    ($(#[$doc:meta])* $name:ident, $t:ty, $($variant:ident => $conv:expr),+) => {
        $(#[$doc])*
        #[inline]
        pub fn $name(&mut self, i: usize, v: Option<$t>) {
            let (Some(v), Some((c, row))) = (v, self.col(i)) else {
                return;
            };
            match c.ty {
                $(ColType::$variant => {
                    if let Values::$variant(b) = c.value(row) {
                        b.push($conv(v))
                    }
                })+
                _ => {}
            }
        }
    };
}

impl TableWriter {
    /// Starts a table at `path` (the file is created on the first flush or at close).
    pub fn new(
        name: &str,
        path: PathBuf,
        columns: &[ColumnDef],
        metadata: Vec<(String, String)>,
    ) -> Self {
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.data_type(), c.nullable))
            .collect();
        let types: Vec<ColType> = columns.iter().map(|c| c.ty).collect();
        TableWriter {
            name: name.to_string(),
            path,
            schema: Arc::new(Schema::new(fields)),
            batch: RawBatch::new(&types),
            batch_rows: BATCH_ROWS,
            types,
            rows_in_batch: 0,
            rows_total: 0,
            writer: None,
            metadata,
            compression: Compression::Zstd,
        }
    }

    /// Compresses the table's pages so (zstd unless told).
    pub fn compressed(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rows written so far (including the open batch).
    pub fn rows(&self) -> u64 {
        self.rows_total + self.rows_in_batch as u64
    }

    /// Column `i` and its type, for a value in the current row.
    #[inline(always)]
    fn col(&mut self, i: usize) -> Option<(&mut Col, usize)> {
        let row = self.rows_in_batch;
        self.batch.cols.get_mut(i).map(|c| (c, row))
    }

    appender!(
        /// Appends a u64 (or null) to column `i`.
        u64, u64, U64 => |v| v, U32 => |v| v as u32, I64 => |v| v as i64
    );
    appender!(
        /// Appends a u32 (or null).
        u32, u32, U32 => |v| v, U64 => u64::from
    );
    appender!(
        /// Appends an i32 (or null).
        i32, i32, I32 => |v| v, I64 => i64::from
    );
    appender!(
        /// Appends an i64 (or null).
        i64, i64, I64 => |v| v, I32 => |v| v as i32
    );
    appender!(
        /// Appends an f64 (or null).
        f64, f64, F64 => |v| v
    );
    appender!(
        /// Appends a bool (or null).
        bool, bool, Bool => |v| v
    );

    /// Appends a string (or null).
    #[inline]
    pub fn str(&mut self, i: usize, v: Option<&str>) {
        self.bytes(i, ColType::Str, v.map(str::as_bytes));
    }

    /// Appends bytes (or null).
    pub fn bin(&mut self, i: usize, v: Option<&[u8]>) {
        self.bytes(i, ColType::Bin, v);
    }

    #[inline]
    fn bytes(&mut self, i: usize, ty: ColType, v: Option<&[u8]>) {
        let (Some(v), Some((c, row))) = (v, self.col(i)) else {
            return;
        };
        if c.ty == ty
            && let Values::Bytes { offsets, data } = c.value(row)
        {
            data.extend_from_slice(v);
            offsets.push(offset(data.len()));
        }
    }

    /// Appends a list of u64 (or null).
    pub fn list_u64(&mut self, i: usize, v: Option<&mut dyn Iterator<Item = u64>>) {
        let (Some(it), Some((c, row))) = (v, self.col(i)) else {
            return;
        };
        if c.ty == ColType::ListU64
            && let Values::ListU64 { offsets, items } = c.value(row)
        {
            items.extend(it);
            offsets.push(offset(items.len()));
        }
    }

    /// Appends a list of u32 (or null).
    pub fn list_u32(&mut self, i: usize, v: Option<&[u32]>) {
        let (Some(v), Some((c, row))) = (v, self.col(i)) else {
            return;
        };
        if c.ty == ColType::ListU32
            && let Values::ListU32 { offsets, items } = c.value(row)
        {
            items.extend_from_slice(v);
            offsets.push(offset(items.len()));
        }
    }

    /// Appends a list of strings (or null).
    pub fn list_str(&mut self, i: usize, v: Option<&[&str]>) {
        let (Some(v), Some((c, row))) = (v, self.col(i)) else {
            return;
        };
        if c.ty == ColType::ListStr
            && let Values::ListStr {
                offsets,
                item_offsets,
                data,
            } = c.value(row)
        {
            for x in v {
                data.extend_from_slice(x.as_bytes());
                item_offsets.push(offset(data.len()));
            }
            offsets.push(offset(item_offsets.len() - 1));
        }
    }

    /// Ends the current row; flushes a batch when it is full.
    pub fn end_row(&mut self) -> Result<(), Error> {
        self.rows_in_batch += 1;
        if self.rows_in_batch >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn open(&mut self) -> Result<&mut Encoder, Error> {
        if self.writer.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                    path: Some(dir.to_path_buf()),
                    offset: None,
                    source: e,
                })?;
            }
            let file = File::create(&self.path).map_err(|e| Error::Io {
                path: Some(self.path.clone()),
                offset: None,
                source: e,
            })?;
            let mut kv = vec![
                KeyValue::new(
                    "kvmtrace.schema_version".to_string(),
                    SCHEMA_VERSION.to_string(),
                ),
                KeyValue::new("kvmtrace.table".to_string(), self.name.clone()),
            ];
            kv.extend(
                self.metadata
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            );
            let zstd = ZstdLevel::try_new(1).map_err(|e| self.parquet_err(e))?;
            // Dictionaries for strings only: they repeat (names, dsos, comms) and readers keep
            // one view per dictionary entry; numbers (times, addresses, indices) rarely repeat
            // enough to repay building one, and zstd packs the plain values well.
            let mut props = WriterProperties::builder()
                .set_compression(match self.compression {
                    Compression::Zstd => Codec::ZSTD(zstd),
                    Compression::None => Codec::UNCOMPRESSED,
                })
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .set_key_value_metadata(Some(kv))
                .set_dictionary_enabled(false);
            for f in self.schema.fields() {
                // The leaf column: a list's items, else the field itself.
                let (leaf, item) = match f.data_type() {
                    DataType::List(item) => (
                        ColumnPath::new(vec![
                            f.name().clone(),
                            "list".to_string(),
                            item.name().clone(),
                        ]),
                        Some(item.data_type()),
                    ),
                    _ => (ColumnPath::new(vec![f.name().clone()]), None),
                };
                if item.unwrap_or(f.data_type()) == &DataType::Utf8 {
                    props = props.set_column_dictionary_enabled(leaf.clone(), true);
                }
                if item.is_some() {
                    props =
                        props.set_column_statistics_enabled(leaf.clone(), EnabledStatistics::None);
                }
                // Times, durations (`*_ns`) and sample_idx: delta-bit-packed, not zstd'd.
                // Packed deltas are about as small (10 M exit durations: 4% larger than plain
                // + zstd; sample_idx: nearly nothing) and readers unpack them far faster than
                // they decompress zstd (`kvmtrace exits` on 10 M exits: 15% less CPU); zstd of
                // sample_idx was 8% of ingest's CPU on a 127 MB recording.
                if is_delta_column(f.name(), f.data_type()) {
                    props = props
                        .set_column_encoding(leaf.clone(), Encoding::DELTA_BINARY_PACKED)
                        .set_column_compression(leaf, Codec::UNCOMPRESSED);
                }
            }
            let props = props.build();
            let w = ArrowWriter::try_new(file, self.schema.clone(), Some(props))
                .map_err(|e| self.parquet_err(e))?;
            self.writer = Some(Encoder::start(self.name.clone(), self.schema.clone(), w)?);
        }
        match self.writer.as_mut() {
            Some(w) => Ok(w),
            None => Err(Error::Invalid("parquet writer vanished".into())),
        }
    }

    fn parquet_err(&self, source: parquet::errors::ParquetError) -> Error {
        Error::Parquet {
            table: self.name.clone(),
            source,
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        if self.rows_in_batch == 0 && self.writer.is_some() {
            return Ok(());
        }
        for c in &mut self.batch.cols {
            c.null_to(self.rows_in_batch);
        }
        self.rows_total += self.rows_in_batch as u64;
        self.rows_in_batch = 0;
        let spare = self.open()?.spare.try_recv().ok();
        let next = spare.unwrap_or_else(|| RawBatch::new(&self.types));
        let full = std::mem::replace(&mut self.batch, next);
        let w = self.open()?;
        if w.batches.send(full).is_err() {
            // The encoder stopped: its error says why.
            if let Some(w) = self.writer.take() {
                w.finish()?;
            }
            return Err(Error::Invalid(format!(
                "{}: parquet encoder stopped",
                self.name
            )));
        }
        Ok(())
    }

    /// Flushes the last batch and closes the file (an empty table still gets a file with its
    /// schema). Returns the path and row count.
    pub fn close(mut self) -> Result<(PathBuf, u64), Error> {
        self.flush()?;
        if let Some(w) = self.writer.take() {
            w.finish()?;
        }
        Ok((self.path, self.rows_total))
    }
}

/// The first (usually the only) file of a table partition inside a dataset.
pub fn partition_path(root: &Path, table: &str, host: &str, recording: &str) -> PathBuf {
    partition_part(root, table, host, recording, 0)
}

/// File `part` of a table partition: `<table>/host=H/recording=R/part-<part>.parquet`. A
/// partition holds several parts when several writers fill one table of one recording (the
/// k-th `--guest-data` recording writes part k of every `guest_*` table); readers take every
/// `*.parquet` file of the directory.
pub fn partition_part(root: &Path, table: &str, host: &str, recording: &str, part: u32) -> PathBuf {
    root.join(table)
        .join(format!("host={host}"))
        .join(format!("recording={recording}"))
        .join(format!("part-{part}.parquet"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Array, BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder,
        ListBuilder, StringBuilder, UInt32Builder, UInt64Builder,
    };
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use proptest::prelude::*;

    const TYPES: [ColType; 11] = [
        ColType::U64,
        ColType::U32,
        ColType::I32,
        ColType::I64,
        ColType::F64,
        ColType::Bool,
        ColType::Str,
        ColType::Bin,
        ColType::ListU64,
        ColType::ListU32,
        ColType::ListStr,
    ];

    /// What a row gives a column: nothing (no call), `None`, a value, or a value of the wrong
    /// type (a u64 for a string column and the like).
    #[derive(Debug, Clone, Copy)]
    enum Cell {
        Skip,
        Null,
        Value(u64),
        WrongType(u64),
    }

    fn cell() -> impl Strategy<Value = Cell> {
        prop_oneof![
            3 => Just(Cell::Skip),
            2 => Just(Cell::Null),
            6 => (0u64..1_000).prop_map(Cell::Value),
            1 => (0u64..1_000).prop_map(Cell::WrongType),
        ]
    }

    fn put(w: &mut TableWriter, i: usize, ty: ColType, v: Option<u64>) {
        let s = v.map(|x| format!("s{x}"));
        let bytes = v.map(|x| x.to_le_bytes()[..(x % 9) as usize].to_vec());
        let n = v.map_or(0, |x| x % 4);
        match ty {
            ColType::U64 => w.u64(i, v),
            ColType::U32 => w.u32(i, v.map(|x| x as u32)),
            ColType::I32 => w.i32(i, v.map(|x| x as i32 - 500)),
            ColType::I64 => w.i64(i, v.map(|x| x as i64 - 500)),
            ColType::F64 => w.f64(i, v.map(|x| x as f64 / 4.0)),
            ColType::Bool => w.bool(i, v.map(|x| x % 2 == 1)),
            ColType::Str => w.str(i, s.as_deref()),
            ColType::Bin => w.bin(i, bytes.as_deref()),
            ColType::ListU64 => match v {
                Some(x) => w.list_u64(i, Some(&mut (0..n).map(|k| x + k))),
                None => w.list_u64(i, None),
            },
            ColType::ListU32 => {
                let items = v.map(|x| (0..n).map(|k| (x + k) as u32).collect::<Vec<_>>());
                w.list_u32(i, items.as_deref())
            }
            ColType::ListStr => {
                let items = v.map(|x| (0..n).map(|k| format!("{}", x + k)).collect::<Vec<_>>());
                let refs = items
                    .as_ref()
                    .map(|v| v.iter().map(String::as_str).collect::<Vec<_>>());
                w.list_str(i, refs.as_deref())
            }
        }
    }

    /// The column as arrow's own builders make it: the reference.
    fn expected(ty: ColType, cells: &[Option<u64>]) -> ArrayRef {
        macro_rules! prim {
            ($b:expr, $f:expr) => {{
                let mut b = $b;
                for c in cells {
                    b.append_option(c.map($f));
                }
                Arc::new(b.finish()) as ArrayRef
            }};
        }
        match ty {
            ColType::U64 => prim!(UInt64Builder::new(), |x| x),
            ColType::U32 => prim!(UInt32Builder::new(), |x| x as u32),
            ColType::I32 => prim!(Int32Builder::new(), |x| x as i32 - 500),
            ColType::I64 => prim!(Int64Builder::new(), |x| x as i64 - 500),
            ColType::F64 => prim!(Float64Builder::new(), |x| x as f64 / 4.0),
            ColType::Bool => prim!(BooleanBuilder::new(), |x| x % 2 == 1),
            ColType::Str => prim!(StringBuilder::new(), |x| format!("s{x}")),
            ColType::Bin => prim!(BinaryBuilder::new(), |x| x.to_le_bytes()
                [..(x % 9) as usize]
                .to_vec()),
            ColType::ListU64 => {
                let mut b = ListBuilder::new(UInt64Builder::new());
                for c in cells {
                    b.append_option(c.map(|x| (0..x % 4).map(move |k| Some(x + k))));
                }
                Arc::new(b.finish())
            }
            ColType::ListU32 => {
                let mut b = ListBuilder::new(UInt32Builder::new());
                for c in cells {
                    b.append_option(c.map(|x| (0..x % 4).map(move |k| Some((x + k) as u32))));
                }
                Arc::new(b.finish())
            }
            ColType::ListStr => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for c in cells {
                    b.append_option(c.map(|x| (0..x % 4).map(move |k| Some(format!("{}", x + k)))));
                }
                Arc::new(b.finish())
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever mix of values, nulls, skipped columns and wrong types the rows give, and
        /// wherever batches end, the file reads back as arrow's builders would have made it.
        #[test]
        fn rows_read_back_as_arrow_builders_make_them(
            rows in proptest::collection::vec(proptest::collection::vec(cell(), TYPES.len()), 0..60),
            batch_rows in 1usize..8,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.parquet");
            let defs: Vec<ColumnDef> = TYPES
                .iter()
                .enumerate()
                .map(|(i, &t)| ColumnDef::new(format!("c{i}"), t, true))
                .collect();
            let mut w = TableWriter::new("t", path.clone(), &defs, Vec::new());
            w.batch_rows = batch_rows;
            for row in &rows {
                for (i, (&ty, c)) in TYPES.iter().zip(row).enumerate() {
                    match *c {
                        Cell::Skip => {}
                        Cell::Null => put(&mut w, i, ty, None),
                        Cell::Value(x) => put(&mut w, i, ty, Some(x)),
                        // A string for the columns a u64 converts to, else a u64: a null.
                        Cell::WrongType(x) => match ty {
                            ColType::U64 | ColType::U32 | ColType::I64 => {
                                w.str(i, Some("wrong"))
                            }
                            _ => w.u64(i, Some(x)),
                        },
                    }
                }
                w.end_row().unwrap();
            }
            let (_, n) = w.close().unwrap();
            prop_assert_eq!(n, rows.len() as u64);
            let file = std::fs::File::open(&path).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
            let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
            for (i, &ty) in TYPES.iter().enumerate() {
                let cells: Vec<Option<u64>> = rows
                    .iter()
                    .map(|r| match r[i] {
                        Cell::Value(x) => Some(x),
                        Cell::Skip | Cell::Null | Cell::WrongType(_) => None,
                    })
                    .collect();
                let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
                let got = if parts.is_empty() {
                    arrow::array::new_empty_array(&ty.data_type())
                } else {
                    arrow::compute::concat(&parts).unwrap()
                };
                let want = expected(ty, &cells);
                prop_assert_eq!(&*got, &*want, "column {} ({:?})", i, ty);
            }
        }
    }
}
