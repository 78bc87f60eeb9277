//! Dataset layout and atomic publication.
//!
//! ```text
//! DATASET/
//!   dataset.json                                   {"format": "kvmtrace-dataset", "schema_version": N}
//!   recordings/<recording>.json                    one manifest per committed recording
//!   <table>/host=<host>/recording=<recording>/part-<k>.parquet   guest_*: k-th --guest-data, else 0
//! ```
//! Hive-style partitions, so polars, DuckDB and Spark read `DATASET/<table>` directly and every
//! row can be traced to its host and recording. A recording counts only once its manifest
//! exists: the manifest is written last, by rename, so a killed ingest leaves either the old
//! dataset or nothing visible (appending a recording that is already there unpublishes it
//! first: a kill then leaves it absent, never half replaced). Without `--append` the whole dataset is built under a sibling
//! temporary directory and swapped in by rename. Whole `recording=` directories move, so every
//! part of a partition is published together.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::table::SCHEMA_VERSION;

/// Where an ingest writes before it publishes.
pub struct Staging {
    output: PathBuf,
    dir: PathBuf,
    append: bool,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: Some(path.to_path_buf()),
        offset: None,
        source: e,
    }
}

/// Reads `dataset.json` and checks the schema version.
pub fn check_version(root: &Path) -> Result<u32, Error> {
    let path = root.join("dataset.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Dataset {
        path: root.to_path_buf(),
        reason: format!("dataset.json is not JSON: {e}"),
    })?;
    let version = v
        .get("schema_version")
        .and_then(|x| x.as_u64())
        .unwrap_or(0) as u32;
    if version == 0 || version > SCHEMA_VERSION {
        return Err(Error::Dataset {
            path: root.to_path_buf(),
            reason: format!(
                "schema version {version} is newer than this kvmtrace understands ({SCHEMA_VERSION}); upgrade kvmtrace"
            ),
        });
    }
    // One dataset, one layout: the tables of an older schema (version 1 had a frames row per
    // stack × frame) cannot take recordings of this one.
    if version < SCHEMA_VERSION {
        return Err(Error::Dataset {
            path: root.to_path_buf(),
            reason: format!(
                "written with schema version {version} by an older kvmtrace, this one writes {SCHEMA_VERSION}; ingest into a new dataset"
            ),
        });
    }
    Ok(version)
}

/// The `host=` and `recording=` partition values files are staged under until the recording is
/// published ([`Staging::commit`]): the host is known after the header, the recording's id
/// (the input's hash) after the walk.
pub const PENDING: &str = "_pending";

impl Staging {
    /// Prepares a staging directory (`tag`, e.g. the input's name, names it for the reader).
    pub fn begin(output: &Path, append: bool, tag: &str) -> Result<Staging, Error> {
        static STAGINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let pid = std::process::id();
        let n = STAGINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = if append {
            if output.exists() {
                if output.join("dataset.json").exists() {
                    check_version(output)?;
                } else if std::fs::read_dir(output)
                    .map_err(|e| io(output, e))?
                    .next()
                    .is_some()
                {
                    return Err(Error::Dataset {
                        path: output.to_path_buf(),
                        reason: "exists but is not a kvmtrace dataset (no dataset.json)".into(),
                    });
                }
            }
            std::fs::create_dir_all(output).map_err(|e| io(output, e))?;
            output.join(format!(".staging-{tag}-{pid}-{n}"))
        } else {
            if output.exists() && !output.join("dataset.json").exists() && output.is_dir() {
                let non_empty = std::fs::read_dir(output)
                    .map_err(|e| io(output, e))?
                    .next()
                    .is_some();
                if non_empty {
                    return Err(Error::Dataset {
                        path: output.to_path_buf(),
                        reason: "exists and is not a kvmtrace dataset; refusing to replace it"
                            .into(),
                    });
                }
            }
            let name = output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "dataset".into());
            output.with_file_name(format!(".{name}.tmp-{pid}"))
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        Ok(Staging {
            output: output.to_path_buf(),
            dir,
            append,
        })
    }

    /// The staging root tables are written under.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Publishes the recording: renames the pending partitions to `host` and `recording`,
    /// writes the manifest last.
    pub fn commit(
        self,
        host: &str,
        recording: &str,
        tables: &[(String, u64)],
    ) -> Result<(), Error> {
        // host=_pending/recording=_pending → host=<host>/recording=<recording>, inside staging.
        for (table, _) in tables {
            let from = self.dir.join(table).join(format!("host={PENDING}"));
            if from.exists() {
                let to = self.dir.join(table).join(format!("host={host}"));
                std::fs::create_dir_all(&to).map_err(|e| io(&to, e))?;
                let src = from.join(format!("recording={PENDING}"));
                let dst = to.join(format!("recording={recording}"));
                std::fs::rename(&src, &dst).map_err(|e| io(&src, e))?;
                let _ = std::fs::remove_dir(&from);
            }
        }
        let manifest = serde_json::json!({
            "recording": recording,
            "host": host,
            "schema_version": SCHEMA_VERSION,
            "kvmtrace_version": env!("CARGO_PKG_VERSION"),
            "tables": tables.iter().map(|(t, n)| serde_json::json!({"table": t, "rows": n})).collect::<Vec<_>>(),
        });
        let manifest_text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
        let dataset_json = serde_json::to_string_pretty(&serde_json::json!({
            "format": "kvmtrace-dataset",
            "schema_version": SCHEMA_VERSION,
        }))
        .unwrap_or_default();

        if !self.append {
            write_atomic(&self.dir.join("dataset.json"), &dataset_json)?;
            write_atomic(
                &self
                    .dir
                    .join("recordings")
                    .join(format!("{recording}.json")),
                &manifest_text,
            )?;
            // Swap the finished dataset in.
            if self.output.exists() {
                let old = self.output.with_file_name(format!(
                    ".{}.old-{}",
                    self.output
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    std::process::id()
                ));
                std::fs::rename(&self.output, &old).map_err(|e| io(&self.output, e))?;
                std::fs::rename(&self.dir, &self.output).map_err(|e| io(&self.dir, e))?;
                let _ = std::fs::remove_dir_all(&old);
            } else {
                std::fs::rename(&self.dir, &self.output).map_err(|e| io(&self.dir, e))?;
            }
            return Ok(());
        }

        // Append: move each partition into place, then publish the manifest.
        if !self.output.join("dataset.json").exists() {
            write_atomic(&self.output.join("dataset.json"), &dataset_json)?;
        }
        // The same recording again: unpublish it first (one rename), so that a kill while its
        // partitions are replaced leaves it absent, never a manifest over half-new data.
        let manifest = self
            .output
            .join("recordings")
            .join(format!("{recording}.json"));
        if manifest.exists() {
            let aside = self.dir.join("replaced-manifest.json");
            std::fs::rename(&manifest, &aside).map_err(|e| io(&manifest, e))?;
        }
        for (table, _) in tables {
            let src = self
                .dir
                .join(table)
                .join(format!("host={host}"))
                .join(format!("recording={recording}"));
            if !src.exists() {
                continue;
            }
            let dst_parent = self.output.join(table).join(format!("host={host}"));
            std::fs::create_dir_all(&dst_parent).map_err(|e| io(&dst_parent, e))?;
            let dst = dst_parent.join(format!("recording={recording}"));
            if dst.exists() {
                std::fs::remove_dir_all(&dst).map_err(|e| io(&dst, e))?;
            }
            std::fs::rename(&src, &dst).map_err(|e| io(&src, e))?;
        }
        write_atomic(&manifest, &manifest_text)?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// Writes `text` to `path` via a temporary file and rename.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    Ok(())
}

/// The committed recordings of a dataset: (recording, host).
pub fn recordings(root: &Path) -> Result<Vec<(String, String)>, Error> {
    let dir = root.join("recordings");
    let mut out = Vec::new();
    let rd = std::fs::read_dir(&dir).map_err(|e| io(&dir, e))?;
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let r = v
                    .get("recording")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string();
                let h = v
                    .get("host")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string();
                out.push((r, h));
            }
        }
    }
    out.sort();
    Ok(out)
}
