//! Reading a kvmtrace dataset: the committed recordings and their hive-style partitions
//! (`<table>/host=H/recording=R/part-<k>.parquet`, one or more parts), as polars lazy frames
//! with `host` and `recording` columns added.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, pl};

/// The newest schema version this analysis understands.
pub const SCHEMA_VERSION: u32 = 2;

/// One committed recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// Recording id.
    pub recording: String,
    /// Host partition key.
    pub host: String,
    /// Rows per table, from the manifest.
    pub tables: Vec<(String, u64)>,
}

/// An opened dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    root: PathBuf,
    recordings: Vec<Recording>,
}

impl Dataset {
    /// Opens a dataset directory written by `kvmtrace ingest`.
    pub fn open(root: &Path) -> Result<Dataset, Error> {
        let bad = |reason: String| Error::Dataset {
            path: root.to_path_buf(),
            reason,
        };
        let meta = root.join("dataset.json");
        let text = std::fs::read_to_string(&meta).map_err(|e| {
            bad(format!(
                "no readable dataset.json ({e}); is this a kvmtrace dataset?"
            ))
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("dataset.json: {e}")))?;
        let version = v
            .get("schema_version")
            .and_then(|x| x.as_u64())
            .unwrap_or(0) as u32;
        if version == 0 {
            return Err(bad("dataset.json has no schema_version".into()));
        }
        if version > SCHEMA_VERSION {
            return Err(bad(format!(
                "written with schema version {version}, this kvmtrace reads up to {SCHEMA_VERSION}: upgrade kvmtrace"
            )));
        }
        let mut recordings = Vec::new();
        let dir = root.join("recordings");
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::Io {
            path: dir.clone(),
            source: e,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(|e| Error::Io {
                path: p.clone(),
                source: e,
            })?;
            let m: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("{}: {e}", p.display())))?;
            let s = |k: &str| {
                m.get(k)
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let tables = m
                .get("tables")
                .and_then(|t| t.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|t| {
                            Some((
                                t.get("table")?.as_str()?.to_string(),
                                t.get("rows")?.as_u64()?,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            recordings.push(Recording {
                recording: s("recording"),
                host: s("host"),
                tables,
            });
        }
        recordings.sort_by(|a, b| (&a.host, &a.recording).cmp(&(&b.host, &b.recording)));
        Ok(Dataset {
            root: root.to_path_buf(),
            recordings,
        })
    }

    /// The dataset root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Committed recordings, sorted by host and id.
    pub fn recordings(&self) -> &[Recording] {
        &self.recordings
    }

    /// Every table name present in at least one recording, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .recordings
            .iter()
            .flat_map(|r| r.tables.iter().map(|t| t.0.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The partition files of `table`: every `*.parquet` part of every recording that has it,
    /// by recording, then part number.
    pub fn files(&self, table: &str) -> Vec<(PathBuf, &Recording)> {
        let mut out = Vec::new();
        for r in &self.recordings {
            let dir = self
                .root
                .join(table)
                .join(format!("host={}", r.host))
                .join(format!("recording={}", r.recording));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut parts: Vec<(u64, String, PathBuf)> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "parquet"))
                .filter_map(|p| {
                    let name = p.file_name()?.to_str()?.to_string();
                    // part-10 after part-9; other names last, by name.
                    let n = name
                        .strip_prefix("part-")
                        .and_then(|n| n.strip_suffix(".parquet"))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(u64::MAX);
                    Some((n, name, p))
                })
                .collect();
            parts.sort();
            out.extend(parts.into_iter().map(|(_, _, p)| (p, r)));
        }
        out
    }

    /// [`Dataset::files`], or the error naming the missing table when there are none.
    fn existing_files(&self, table: &str) -> Result<Vec<(PathBuf, &Recording)>, Error> {
        let files = self.files(table);
        if files.is_empty() {
            return Err(Error::MissingTable {
                path: self.root.clone(),
                table: table.to_string(),
                hint: None,
            });
        }
        Ok(files)
    }

    /// Whether any recording has `table`.
    pub fn has(&self, table: &str) -> bool {
        !self.files(table).is_empty()
    }

    /// `table` of every recording as one lazy frame, with `host` and `recording` columns.
    pub fn scan(&self, table: &str) -> Result<LazyFrame, Error> {
        let files = self.existing_files(table)?;
        let mut frames = Vec::with_capacity(files.len());
        for (path, rec) in files {
            frames.push(with_partition(scan_file(&path, table)?, rec));
        }
        if frames.len() == 1 {
            return Ok(frames.remove(0));
        }
        // Diagonal: a recording written by an earlier kvmtrace of the same schema version
        // lacks the columns added since (schema versions change only for what breaks a
        // reader), and reads as nulls there.
        let args = UnionArgs {
            diagonal: true,
            ..UnionArgs::default()
        };
        concat(frames, args).map_err(pl(table))
    }

    /// `table` as lazy frames of at most `rows` rows each (every Parquet file cut at multiples
    /// of `rows`, by the row count in its footer), each with `host` and `recording` columns.
    /// For aggregations that stream: a frame is read, reduced and dropped before the next, so
    /// memory holds one batch, not the table (on this 2-core VM the kernel zeroing fresh pages
    /// was half the time of a 10 M-row `exits`). A file whose footer cannot be read is one
    /// frame: its error surfaces when collected.
    pub fn scan_batches(&self, table: &str, rows: usize) -> Result<Vec<LazyFrame>, Error> {
        let mut out = Vec::new();
        for (path, rec) in self.existing_files(table)? {
            let lf = scan_file(&path, table)?;
            out.extend(
                windows(&path, lf, rows)
                    .into_iter()
                    .map(|w| with_partition(w, rec)),
            );
        }
        Ok(out)
    }

    /// `table` per partition file, without `host`/`recording` columns: (recording id, frame).
    /// For aggregations that would otherwise key every row by the recording's string.
    pub fn scan_parts(&self, table: &str) -> Result<Vec<(String, LazyFrame)>, Error> {
        self.files(table)
            .into_iter()
            .map(|(path, rec)| Ok((rec.recording.clone(), scan_file(&path, table)?)))
            .collect()
    }

    /// [`Dataset::scan_parts`], each file also cut into consecutive frames of at most `rows`
    /// rows, as [`Dataset::scan_batches`]: (recording id, whole file, its batches).
    pub fn scan_parts_batches(
        &self,
        table: &str,
        rows: usize,
    ) -> Result<Vec<(String, LazyFrame, Vec<LazyFrame>)>, Error> {
        self.files(table)
            .into_iter()
            .map(|(path, rec)| {
                let lf = scan_file(&path, table)?;
                let batches = windows(&path, lf.clone(), rows);
                Ok((rec.recording.clone(), lf, batches))
            })
            .collect()
    }

    /// `table` collected into memory.
    pub fn load(&self, table: &str) -> Result<DataFrame, Error> {
        self.scan(table)?.collect().map_err(pl(table))
    }
}

/// `lf` (the file at `path`) cut into consecutive frames of at most `rows` rows, by the row
/// count in its footer; the whole file when that cannot be read (its error surfaces when
/// collected).
pub(crate) fn windows(path: &Path, lf: LazyFrame, rows: usize) -> Vec<LazyFrame> {
    let rows = rows.max(1);
    let n = std::fs::File::open(path)
        .ok()
        .and_then(|f| ParquetReader::new(f).num_rows().ok());
    match n {
        Some(n) if n > rows => (0..n)
            .step_by(rows)
            .map(|at| lf.clone().slice(at as i64, rows.min(n - at) as IdxSize))
            .collect(),
        _ => vec![lf],
    }
}

/// Adds a partition's `host` and `recording` columns, from the manifest (not inferred from the
/// path).
fn with_partition(lf: LazyFrame, rec: &Recording) -> LazyFrame {
    lf.with_columns([
        lit(rec.host.as_str()).alias("host"),
        lit(rec.recording.as_str()).alias("recording"),
    ])
}

/// One Parquet file of a table, hive partitioning off.
pub(crate) fn scan_file(path: &Path, table: &str) -> Result<LazyFrame, Error> {
    let args = ScanArgsParquet {
        hive_options: HiveOptions {
            enabled: Some(false),
            ..Default::default()
        },
        ..Default::default()
    };
    LazyFrame::scan_parquet(PlRefPath::new(path.to_string_lossy().as_ref()), args)
        .map_err(pl(table))
}
