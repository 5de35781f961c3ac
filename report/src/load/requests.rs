//! `requests.csv`, the one big file (a row per request: 10 million in a long run). Read with
//! polars, four of its six columns, typed up front: times and latencies as 64-bit integers,
//! the transaction and the error class as categoricals (a small integer per row instead of a
//! string). What the analysis keeps is a frame of
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `t_ms` | i64 | when the answer completed, ms since the run's start (the second a request belongs to, as in `timeseries.csv`) |
//! | `latency_us` | i64 | from the intended send time to the end of the answer |
//! | `route` | categorical | the transaction's name |
//! | `error` | categorical | the failure class; null when it succeeded |
//!
//! about 24 bytes a row: 240 MB for 10 million requests.

use std::path::Path;

use polars::prelude::*;

use super::csv;
use crate::error::ReportError;

pub fn read(path: &Path, started_at_ms: u64) -> Result<DataFrame, ReportError> {
    let categorical = || DataType::from_categories(Categories::global());
    let df = csv::read(
        path,
        &[
            ("intended_us", DataType::Int64),
            ("latency_us", DataType::Int64),
            ("transaction", categorical()),
            ("error", categorical()),
        ],
    )?;
    for name in ["intended_us", "latency_us", "transaction"] {
        let c = csv::column(&df, name, path)?;
        if c.null_count() > 0 {
            let row = c.is_null().iter().position(|v| v == Some(true)).unwrap_or_default();
            return Err(csv::empty_cell(path, name, row));
        }
    }
    let failed = |e: PolarsError| ReportError::Analysis {
        path: path.to_owned(),
        source: e,
    };
    let intended = csv::column(&df, "intended_us", path)?.i64().map_err(failed)?;
    let latency = csv::column(&df, "latency_us", path)?.i64().map_err(failed)?;
    let t_ms: Int64Chunked = (intended + latency) / 1000 - started_at_ms as i64;
    let mut route = csv::column(&df, "transaction", path)?.clone();
    route.rename("route".into());
    DataFrame::new(
        df.height(),
        vec![
            t_ms.with_name("t_ms".into()).into_column(),
            csv::column(&df, "latency_us", path)?.clone(),
            route,
            csv::column(&df, "error", path)?.clone(),
        ],
    )
    .map_err(failed)
}
