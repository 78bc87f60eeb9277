//! SQL over a dataset (polars SQL): every table of every committed recording is registered by
//! its name, with the `host` and `recording` partition columns, so
//! `SELECT host, reason_name, count(*) FROM exits GROUP BY 1, 2` spans a fleet's recordings.
//!
//! [`query`] returns a value; [`render`] is the one place that turns it into bytes.

use polars::prelude::*;
use polars::sql::SQLContext;

use crate::dataset::Dataset;
use crate::error::{Error, pl};

/// How [`render`] writes a result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Aligned text columns with a header line, every row.
    #[default]
    Table,
    /// RFC 4180 CSV with a header line; nulls are empty fields.
    Csv,
    /// A JSON array of objects, one per row, keys in column order; nulls are `null`.
    Json,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format, Error> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(Error::Invalid(format!(
                "unknown format {s:?}: expected table, csv or json"
            ))),
        }
    }
}

/// A SQL context with every table of `ds` registered by name.
pub fn context(ds: &Dataset) -> Result<SQLContext, Error> {
    let ctx = SQLContext::new();
    for table in ds.table_names() {
        if ds.has(&table) {
            ctx.register(&table, ds.scan(&table)?);
        }
    }
    Ok(ctx)
}

/// Runs one SQL statement over `ds` and collects the result.
pub fn query(ds: &Dataset, sql: &str) -> Result<DataFrame, Error> {
    let mut ctx = context(ds)?;
    ctx.execute(sql)
        .and_then(|lf| lf.collect())
        .map_err(pl("sql"))
}

/// Writes `df` in `format`; the output ends with a newline.
pub fn render(df: &DataFrame, format: Format) -> Result<String, Error> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let columns = df.columns();
    let n_rows = df.height();
    let cell = |col: usize, row: usize| -> Result<AnyValue<'_>, Error> {
        columns[col].get(row).map_err(|e| Error::Polars {
            table: "sql".into(),
            source: e,
        })
    };
    let mut out = String::new();
    match format {
        Format::Table => {
            let mut cells: Vec<Vec<String>> = vec![names.clone()];
            for row in 0..n_rows {
                let mut line = Vec::with_capacity(names.len());
                for col in 0..names.len() {
                    line.push(text(&cell(col, row)?).unwrap_or_else(|| "null".into()));
                }
                cells.push(line);
            }
            let widths: Vec<usize> = (0..names.len())
                .map(|c| {
                    cells
                        .iter()
                        .map(|l| l[c].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for line in &cells {
                let padded: Vec<String> = line
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(c, (v, w))| {
                        if columns[c].dtype().is_primitive_numeric() {
                            format!("{v:>w$}")
                        } else {
                            format!("{v:<w$}")
                        }
                    })
                    .collect();
                out.push_str(padded.join("  ").trim_end());
                out.push('\n');
            }
        }
        Format::Csv => {
            out.push_str(
                &names
                    .iter()
                    .map(|n| csv_field(n))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
            for row in 0..n_rows {
                let mut fields = Vec::with_capacity(names.len());
                for col in 0..names.len() {
                    fields.push(
                        text(&cell(col, row)?)
                            .map(|v| csv_field(&v))
                            .unwrap_or_default(),
                    );
                }
                out.push_str(&fields.join(","));
                out.push('\n');
            }
        }
        Format::Json => {
            let mut rows = Vec::with_capacity(n_rows);
            for row in 0..n_rows {
                let mut obj = serde_json::Map::new();
                for (col, name) in names.iter().enumerate() {
                    obj.insert(name.clone(), json(&cell(col, row)?));
                }
                rows.push(serde_json::Value::Object(obj));
            }
            let s =
                serde_json::to_string_pretty(&rows).map_err(|e| Error::Render(e.to_string()))?;
            out.push_str(&s);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A cell as text, `None` for null. Strings without quotes.
fn text(v: &AnyValue<'_>) -> Option<String> {
    if v.is_null() {
        return None;
    }
    if let Some(s) = v.get_str() {
        return Some(s.to_string());
    }
    Some(v.to_string())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn json(v: &AnyValue<'_>) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::Int8(_) | AnyValue::Int16(_) | AnyValue::Int32(_) | AnyValue::Int64(_) => {
            v.extract::<i64>().map(Value::from).unwrap_or(Value::Null)
        }
        AnyValue::UInt8(_) | AnyValue::UInt16(_) | AnyValue::UInt32(_) | AnyValue::UInt64(_) => {
            v.extract::<u64>().map(Value::from).unwrap_or(Value::Null)
        }
        AnyValue::Float32(_) | AnyValue::Float64(_) => v
            .extract::<f64>()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        _ => text(v).map(Value::String).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_format() -> Result<(), Box<dyn std::error::Error>> {
        let df = df! {
            "name" => [Some("a,b"), None],
            "n" => [1u64, 22],
        }?;
        assert_eq!(render(&df, Format::Csv)?, "name,n\n\"a,b\",1\n,22\n");
        assert_eq!(
            render(&df, Format::Table)?,
            "name   n\na,b    1\nnull  22\n"
        );
        let j: serde_json::Value = serde_json::from_str(&render(&df, Format::Json)?)?;
        assert_eq!(
            j,
            serde_json::json!([{"name": "a,b", "n": 1}, {"name": null, "n": 22}])
        );
        Ok(())
    }
}
