//! Streaming Parquet tables: typed column builders flushed in batches to an arrow-rs
//! `ArrowWriter`, so memory stays bounded by one batch per table whatever the input size.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder,
    Int64Builder, ListArray, ListBuilder, StringArray, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
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

/// Whether a column holds times or durations in ns (`time_ns`, `exit_time_ns`, `duration_ns`,
/// ...): 64-bit integers whose deltas are small.
fn is_time_column(name: &str, data_type: &DataType) -> bool {
    name.ends_with("_ns") && matches!(data_type, DataType::UInt64 | DataType::Int64)
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

enum Col {
    U64(UInt64Builder),
    U32(UInt32Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
    Bin(BinaryBuilder),
    ListU64(ListBuilder<UInt64Builder>),
    ListU32(ListBuilder<UInt32Builder>),
    ListStr(ListBuilder<StringBuilder>),
}

impl Col {
    fn new(t: ColType) -> Col {
        match t {
            ColType::U64 => Col::U64(UInt64Builder::with_capacity(BATCH_ROWS)),
            ColType::U32 => Col::U32(UInt32Builder::with_capacity(BATCH_ROWS)),
            ColType::I32 => Col::I32(Int32Builder::with_capacity(BATCH_ROWS)),
            ColType::I64 => Col::I64(Int64Builder::with_capacity(BATCH_ROWS)),
            ColType::F64 => Col::F64(Float64Builder::with_capacity(BATCH_ROWS)),
            ColType::Bool => Col::Bool(BooleanBuilder::with_capacity(BATCH_ROWS)),
            ColType::Str => Col::Str(StringBuilder::new()),
            ColType::Bin => Col::Bin(BinaryBuilder::new()),
            ColType::ListU64 => Col::ListU64(ListBuilder::new(UInt64Builder::new())),
            ColType::ListU32 => Col::ListU32(ListBuilder::new(UInt32Builder::new())),
            ColType::ListStr => Col::ListStr(ListBuilder::new(StringBuilder::new())),
        }
    }

    /// The batch so far; the builder starts the next batch with room for as much as this one
    /// held. arrow's builders start empty and grow by doubling: the `stacks` of a 100 MB `-g`
    /// recording (9 M frames) spent a tenth of its CPU time zeroing the fresh pages of
    /// each batch's growing lists.
    fn finish(&mut self) -> ArrayRef {
        let a: ArrayRef = match self {
            Col::U64(b) => Arc::new(b.finish()),
            Col::U32(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::I64(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Str(b) => Arc::new(b.finish()),
            Col::Bin(b) => Arc::new(b.finish()),
            Col::ListU64(b) => Arc::new(b.finish()),
            Col::ListU32(b) => Arc::new(b.finish()),
            Col::ListStr(b) => Arc::new(b.finish()),
        };
        self.reserve_like(a.as_ref());
        a
    }

    /// Makes room in the (empty) builder for a batch like `a`.
    fn reserve_like(&mut self, a: &dyn Array) {
        let rows = a.len();
        // (values, bytes) of a string or binary array.
        let bytes = |a: &dyn Array| {
            let any = a.as_any();
            any.downcast_ref::<StringArray>()
                .map(|s| (s.len(), s.value_data().len()))
                .or_else(|| {
                    any.downcast_ref::<BinaryArray>()
                        .map(|s| (s.len(), s.value_data().len()))
                })
                .unwrap_or_default()
        };
        let items = a
            .as_any()
            .downcast_ref::<ListArray>()
            .map(|l| l.values().as_ref());
        let n_items = items.map_or(0, |v| v.len());
        match self {
            Col::U64(b) => *b = UInt64Builder::with_capacity(rows),
            Col::U32(b) => *b = UInt32Builder::with_capacity(rows),
            Col::I32(b) => *b = Int32Builder::with_capacity(rows),
            Col::I64(b) => *b = Int64Builder::with_capacity(rows),
            Col::F64(b) => *b = Float64Builder::with_capacity(rows),
            Col::Bool(b) => *b = BooleanBuilder::with_capacity(rows),
            Col::Str(b) => {
                let (n, data) = bytes(a);
                *b = StringBuilder::with_capacity(n, data);
            }
            Col::Bin(b) => {
                let (n, data) = bytes(a);
                *b = BinaryBuilder::with_capacity(n, data);
            }
            Col::ListU64(b) => {
                *b = ListBuilder::with_capacity(UInt64Builder::with_capacity(n_items), rows);
            }
            Col::ListU32(b) => {
                *b = ListBuilder::with_capacity(UInt32Builder::with_capacity(n_items), rows);
            }
            Col::ListStr(b) => {
                let (n, data) = items.map_or((0, 0), bytes);
                *b = ListBuilder::with_capacity(StringBuilder::with_capacity(n, data), rows);
            }
        }
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

/// One Parquet table being written. Values are appended column by column for the current row;
/// [`TableWriter::end_row`] closes the row. A type mismatch between the value and the column is
/// a programming error and appends a null instead (never panics).
pub struct TableWriter {
    name: String,
    path: PathBuf,
    schema: SchemaRef,
    cols: Vec<Col>,
    rows_in_batch: usize,
    rows_total: u64,
    writer: Option<Encoder>,
    metadata: Vec<(String, String)>,
}

/// Parquet encoding and compression of one table on a thread of its own: the session builds
/// the next batch while the previous one is encoded (two cores: ~1.3× faster ingest). At most
/// two batches wait, so memory stays bounded.
struct Encoder {
    batches: std::sync::mpsc::SyncSender<RecordBatch>,
    done: std::thread::JoinHandle<Result<(), Error>>,
}

impl Encoder {
    fn start(name: String, mut w: ArrowWriter<File>) -> Result<Encoder, Error> {
        let (batches, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
        let thread_name = format!("parquet {name}");
        let done = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || -> Result<(), Error> {
                let err = |source| Error::Parquet {
                    table: name.clone(),
                    source,
                };
                for batch in rx {
                    w.write(&batch).map_err(err)?;
                }
                w.close().map_err(err)?;
                Ok(())
            })
            .map_err(|e| Error::Io {
                path: None,
                offset: None,
                source: e,
            })?;
        Ok(Encoder { batches, done })
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
        TableWriter {
            name: name.to_string(),
            path,
            schema: Arc::new(Schema::new(fields)),
            cols: columns.iter().map(|c| Col::new(c.ty)).collect(),
            rows_in_batch: 0,
            rows_total: 0,
            writer: None,
            metadata,
        }
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rows written so far (including the open batch).
    pub fn rows(&self) -> u64 {
        self.rows_total + self.rows_in_batch as u64
    }

    /// Appends a u64 (or null) to column `i`.
    pub fn u64(&mut self, i: usize, v: Option<u64>) {
        match self.cols.get_mut(i) {
            Some(Col::U64(b)) => b.append_option(v),
            Some(Col::U32(b)) => b.append_option(v.map(|v| v as u32)),
            Some(Col::I64(b)) => b.append_option(v.map(|v| v as i64)),
            _ => self.null(i),
        }
    }

    /// Appends a u32 (or null).
    pub fn u32(&mut self, i: usize, v: Option<u32>) {
        match self.cols.get_mut(i) {
            Some(Col::U32(b)) => b.append_option(v),
            Some(Col::U64(b)) => b.append_option(v.map(u64::from)),
            _ => self.null(i),
        }
    }

    /// Appends an i32 (or null).
    pub fn i32(&mut self, i: usize, v: Option<i32>) {
        match self.cols.get_mut(i) {
            Some(Col::I32(b)) => b.append_option(v),
            Some(Col::I64(b)) => b.append_option(v.map(i64::from)),
            _ => self.null(i),
        }
    }

    /// Appends an i64 (or null).
    pub fn i64(&mut self, i: usize, v: Option<i64>) {
        match self.cols.get_mut(i) {
            Some(Col::I64(b)) => b.append_option(v),
            Some(Col::I32(b)) => b.append_option(v.map(|v| v as i32)),
            _ => self.null(i),
        }
    }

    /// Appends an f64 (or null).
    pub fn f64(&mut self, i: usize, v: Option<f64>) {
        match self.cols.get_mut(i) {
            Some(Col::F64(b)) => b.append_option(v),
            _ => self.null(i),
        }
    }

    /// Appends a bool (or null).
    pub fn bool(&mut self, i: usize, v: Option<bool>) {
        match self.cols.get_mut(i) {
            Some(Col::Bool(b)) => b.append_option(v),
            _ => self.null(i),
        }
    }

    /// Appends a string (or null).
    pub fn str(&mut self, i: usize, v: Option<&str>) {
        match self.cols.get_mut(i) {
            Some(Col::Str(b)) => b.append_option(v),
            _ => self.null(i),
        }
    }

    /// Appends bytes (or null).
    pub fn bin(&mut self, i: usize, v: Option<&[u8]>) {
        match self.cols.get_mut(i) {
            Some(Col::Bin(b)) => b.append_option(v),
            _ => self.null(i),
        }
    }

    /// Appends a list of u64 (or null).
    pub fn list_u64(&mut self, i: usize, v: Option<&mut dyn Iterator<Item = u64>>) {
        match self.cols.get_mut(i) {
            Some(Col::ListU64(b)) => match v {
                Some(it) => {
                    for x in it {
                        b.values().append_value(x);
                    }
                    b.append(true);
                }
                None => b.append(false),
            },
            _ => self.null(i),
        }
    }

    /// Appends a list of u32 (or null).
    pub fn list_u32(&mut self, i: usize, v: Option<&[u32]>) {
        match self.cols.get_mut(i) {
            Some(Col::ListU32(b)) => match v {
                Some(items) => {
                    b.values().append_slice(items);
                    b.append(true);
                }
                None => b.append(false),
            },
            _ => self.null(i),
        }
    }

    /// Appends a list of strings (or null).
    pub fn list_str(&mut self, i: usize, v: Option<&[&str]>) {
        match self.cols.get_mut(i) {
            Some(Col::ListStr(b)) => match v {
                Some(items) => {
                    for x in items {
                        b.values().append_value(x);
                    }
                    b.append(true);
                }
                None => b.append(false),
            },
            _ => self.null(i),
        }
    }

    fn null(&mut self, i: usize) {
        match self.cols.get_mut(i) {
            Some(Col::U64(b)) => b.append_null(),
            Some(Col::U32(b)) => b.append_null(),
            Some(Col::I32(b)) => b.append_null(),
            Some(Col::I64(b)) => b.append_null(),
            Some(Col::F64(b)) => b.append_null(),
            Some(Col::Bool(b)) => b.append_null(),
            Some(Col::Str(b)) => b.append_null(),
            Some(Col::Bin(b)) => b.append_null(),
            Some(Col::ListU64(b)) => b.append(false),
            Some(Col::ListU32(b)) => b.append(false),
            Some(Col::ListStr(b)) => b.append(false),
            None => {}
        }
    }

    /// Ends the current row; flushes a batch when it is full.
    pub fn end_row(&mut self) -> Result<(), Error> {
        self.rows_in_batch += 1;
        if self.rows_in_batch >= BATCH_ROWS {
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
                .set_compression(Compression::ZSTD(zstd))
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .set_key_value_metadata(Some(kv))
                .set_dictionary_enabled(false);
            for f in self.schema.fields() {
                let path = match f.data_type() {
                    DataType::Utf8 => Some(vec![f.name().clone()]),
                    DataType::List(item) if item.data_type() == &DataType::Utf8 => Some(vec![
                        f.name().clone(),
                        "list".to_string(),
                        item.name().clone(),
                    ]),
                    _ => None,
                };
                if let Some(path) = path {
                    props = props.set_column_dictionary_enabled(ColumnPath::new(path), true);
                }
                // Times and durations (`*_ns`): delta-bit-packed, not zstd'd. Packed deltas are
                // about as small (10 M exit durations: 4% larger than plain + zstd) and
                // readers unpack them far faster than they decompress zstd (`kvmtrace exits`
                // on 10 M exits: 15% less CPU).
                if is_time_column(f.name(), f.data_type()) {
                    let path = ColumnPath::new(vec![f.name().clone()]);
                    props = props
                        .set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED)
                        .set_column_compression(path, Compression::UNCOMPRESSED);
                }
            }
            let props = props.build();
            let w = ArrowWriter::try_new(file, self.schema.clone(), Some(props))
                .map_err(|e| self.parquet_err(e))?;
            self.writer = Some(Encoder::start(self.name.clone(), w)?);
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
        let arrays: Vec<ArrayRef> = self.cols.iter_mut().map(|c| c.finish()).collect();
        let batch =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| Error::Arrow {
                table: self.name.clone(),
                source: e,
            })?;
        self.rows_total += self.rows_in_batch as u64;
        self.rows_in_batch = 0;
        let w = self.open()?;
        if w.batches.send(batch).is_err() {
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
