//! `kvmtrace info`: what a dataset holds.

use polars::prelude::*;
use serde::Serialize;

use crate::dataset::Dataset;
use crate::error::{Error, pl};

/// A dataset summary.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    /// One entry per recording.
    pub recordings: Vec<RecordingInfo>,
}

/// One recording's summary.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingInfo {
    /// Recording id.
    pub recording: String,
    /// Host key.
    pub host: String,
    /// `meta` columns as strings (null values left out).
    pub meta: Vec<(String, String)>,
    /// Events: name, samples.
    pub events: Vec<(String, u64)>,
    /// Rows per table.
    pub tables: Vec<(String, u64)>,
}

/// Summarises a dataset.
pub fn info(ds: &Dataset) -> Result<Info, Error> {
    let meta = ds.load("meta")?;
    let events = ds.load("events")?;
    let mut out = Vec::new();
    for rec in ds.recordings() {
        let m = meta
            .clone()
            .lazy()
            .filter(col("recording").eq(lit(rec.recording.as_str())))
            .collect()
            .map_err(pl("meta"))?;
        let mut kv = Vec::new();
        for c in m.columns() {
            if c.name() == "host" || c.name() == "recording" {
                continue;
            }
            if let Ok(v) = c.get(0)
                && !matches!(v, AnyValue::Null)
            {
                let s = match v {
                    AnyValue::String(s) => s.to_string(),
                    other => other.to_string(),
                };
                kv.push((c.name().to_string(), s));
            }
        }
        let e = events
            .clone()
            .lazy()
            .filter(col("recording").eq(lit(rec.recording.as_str())))
            .select([col("name"), col("n_samples")])
            .collect()
            .map_err(pl("events"))?;
        let names = e
            .column("name")
            .map_err(pl("events"))?
            .str()
            .map_err(pl("events"))?
            .clone();
        let counts = e
            .column("n_samples")
            .map_err(pl("events"))?
            .u64()
            .map_err(pl("events"))?
            .clone();
        let evs = names
            .iter()
            .zip(counts.iter())
            .map(|(n, c)| (n.unwrap_or_default().to_string(), c.unwrap_or(0)))
            .collect();
        out.push(RecordingInfo {
            recording: rec.recording.clone(),
            host: rec.host.clone(),
            meta: kv,
            events: evs,
            tables: rec.tables.clone(),
        });
    }
    Ok(Info { recordings: out })
}
