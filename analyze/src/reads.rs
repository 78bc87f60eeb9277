//! Samples as perf delivers them when they read counters (PERF_SAMPLE_READ).
//!
//! With leader sampling (`-e '{cycles,instructions}:S'`) only the group leader samples, and each
//! sample carries the counts of the whole group. perf reports such a sample once per read value
//! whose id names an event and whose count grew since that id's previous sample, as that event,
//! with the growth as its period (`evlist__deliver_sample` in tools/perf/util/session.c). The
//! `samples` table keeps one row per record and the growth in `read_periods`; this module picks
//! the rows (and periods) perf would report for one event, so that `kvmtrace flame --event
//! instructions` shows what `perf report --event instructions` does.

use polars::prelude::*;

use crate::dataset::Dataset;
use crate::error::{Error, pl};
use crate::place::FastMap;

/// PERF_SAMPLE_READ in attr.sample_type.
const PERF_SAMPLE_READ: u64 = 1 << 4;

type ListArray = <ListType as PolarsDataType>::Array;
type U64Array = <UInt64Type as PolarsDataType>::Array;

/// The sample ids of one event, per recording number, in a dataset whose samples read counters.
pub(crate) struct EventIds {
    event: String,
    ids: FastMap<(u32, u64), ()>,
}

impl EventIds {
    /// The ids of `event` when some event of the dataset records PERF_SAMPLE_READ and the
    /// samples carry `read_periods`; `None` when every sample is reported as it is.
    pub(crate) fn of(
        ds: &Dataset,
        event: &str,
        numbers: &FastMap<String, u32>,
    ) -> Result<Option<EventIds>, Error> {
        const T: &str = "events";
        if !ds.has(T) || !ds.has("samples") {
            return Ok(None);
        }
        let schema = ds
            .scan("samples")?
            .collect_schema()
            .map_err(pl("samples"))?;
        if !schema.contains("read_periods") {
            return Ok(None);
        }
        let ev = ds
            .scan(T)?
            .select([
                col("recording"),
                col("name"),
                col("sample_type"),
                col("ids"),
            ])
            .collect()
            .map_err(pl(T))?;
        let reads = ev
            .column("sample_type")
            .map_err(pl(T))?
            .u64()
            .map_err(pl(T))?
            .iter()
            .any(|t| t.is_some_and(|t| t & PERF_SAMPLE_READ != 0));
        if !reads {
            return Ok(None);
        }
        let rec = ev
            .column("recording")
            .map_err(pl(T))?
            .str()
            .map_err(pl(T))?;
        let name = ev.column("name").map_err(pl(T))?.str().map_err(pl(T))?;
        let lists = lists_u64(ev.column("ids").map_err(pl(T))?, T)?;
        let mut ids = FastMap::default();
        for (i, list) in lists.into_iter().enumerate() {
            let (Some(r), Some(n), Some(list)) = (rec.get(i), name.get(i), list) else {
                continue;
            };
            let Some(&r) = numbers.get(r) else { continue };
            if n == event {
                ids.extend(list.iter().map(|id| ((r, *id), ())));
            }
        }
        Ok(Some(EventIds {
            event: event.to_string(),
            ids,
        }))
    }

    /// The rows a query for this event's samples must read: its own samples and every sample
    /// that read counters.
    pub(crate) fn filter(&self) -> Expr {
        col("event")
            .eq(lit(self.event.as_str()))
            .or(col("read_ids").is_not_null())
    }

    /// Keeps the rows of `df` (of recordings `rec`, with `event`, `read_ids` and
    /// `read_periods`) that perf reports as this event, with the period perf gives them; drops
    /// the three columns.
    pub(crate) fn deliver(
        &self,
        df: DataFrame,
        rec: Vec<u32>,
    ) -> Result<(DataFrame, Vec<u32>), Error> {
        const T: &str = "samples";
        let event = df.column("event").map_err(pl(T))?.str().map_err(pl(T))?;
        let ids = lists_u64(df.column("read_ids").map_err(pl(T))?, T)?;
        let periods = lists_u64(df.column("read_periods").map_err(pl(T))?, T)?;
        let period = df.column("period").map_err(pl(T))?.u64().map_err(pl(T))?;
        let mut keep = Vec::with_capacity(df.height());
        let mut new_period: Vec<Option<u64>> = Vec::with_capacity(df.height());
        let mut new_rec = Vec::with_capacity(rec.len());
        for (i, &r) in rec.iter().enumerate() {
            let delivered = match (
                ids.get(i).copied().flatten(),
                periods.get(i).copied().flatten(),
            ) {
                (Some(ids), Some(periods)) => ids
                    .iter()
                    .zip(periods)
                    .find(|(id, _)| self.ids.contains_key(&(r, **id)))
                    .map(|(_, p)| *p)
                    .filter(|p| *p != 0)
                    .map(Some),
                _ => (event.get(i) == Some(self.event.as_str())).then(|| period.get(i)),
            };
            keep.push(delivered.is_some());
            if let Some(p) = delivered {
                // The period column is null when the weight does not need it.
                new_period.push(period.get(i).and(p));
                new_rec.push(r);
            }
        }
        let mask = BooleanChunked::from_slice("keep".into(), &keep);
        let mut df =
            df.filter(&mask)
                .map_err(pl(T))?
                .drop_many(["event", "read_ids", "read_periods"]);
        df.with_column(Column::new("period".into(), new_period))
            .map_err(pl(T))?;
        Ok((df, new_rec))
    }
}

/// Each row of a List<UInt64> column, as a slice (`None` for a null row).
fn lists_u64<'a>(c: &'a Column, table: &str) -> Result<Vec<Option<&'a [u64]>>, Error> {
    let lists = c.as_materialized_series().list().map_err(pl(table))?;
    let mut out = Vec::with_capacity(c.len());
    for arr in lists.downcast_iter() {
        let arr: &ListArray = arr;
        let Some(values) = arr.values().as_any().downcast_ref::<U64Array>() else {
            return Err(Error::Invalid(format!(
                "{table}: {} is not a list of UInt64",
                c.name()
            )));
        };
        let offsets = arr.offsets().buffer();
        for (i, w) in offsets.windows(2).enumerate() {
            let valid = arr.validity().is_none_or(|v| v.get_bit(i));
            let slice = match w {
                [a, z] if valid => values.values().get(*a as usize..*z as usize),
                _ => None,
            };
            out.push(slice);
        }
    }
    Ok(out)
}
