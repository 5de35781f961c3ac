//! The result files of a run folder (`docs/run-folder.md` documents their columns):
//! `results.json`, `timeseries.csv` (per second and transaction) and `latency.hlog` (an
//! HdrHistogram interval log, one interval per second). `requests.csv` is written while the
//! run goes, by the collector.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use ballast_model::load::{Failure, Results, Second, Tally};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::error::LoadError;

pub const RESULTS_JSON: &str = "results.json";
pub const TIMESERIES_CSV: &str = "timeseries.csv";
pub const REQUESTS_CSV: &str = "requests.csv";
pub const LATENCY_HLOG: &str = "latency.hlog";

/// Write `results.json`, `timeseries.csv` and `latency.hlog` into `dir`.
pub fn write_all(results: &Results, dir: &Path) -> Result<(), LoadError> {
    write_json(results, &dir.join(RESULTS_JSON))?;
    write_timeseries(results, &dir.join(TIMESERIES_CSV))?;
    write_hlog(results, &dir.join(LATENCY_HLOG))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Write {
        path: path.display().to_string(),
        source,
    }
}

pub fn write_json(results: &Results, path: &Path) -> Result<(), LoadError> {
    let json = serde_json::to_vec_pretty(results).map_err(|e| io_err(path)(std::io::Error::other(e)))?;
    std::fs::write(path, json).map_err(io_err(path))
}

/// The columns of `timeseries.csv`, error classes last.
pub fn timeseries_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "second",
        "at_ms",
        "source",
        "route",
        "target",
        "in_flight",
        "requests",
        "ok",
        "failed",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "status_1xx",
        "status_2xx",
        "status_3xx",
        "status_4xx",
        "status_5xx",
    ]
    .map(str::to_owned)
    .into();
    h.extend(Failure::all().map(|f| format!("errors_{}", f.as_str().replace('-', "_"))));
    h
}

fn row(s: &Second, route: &str, t: &Tally) -> Vec<String> {
    let p = t.percentiles();
    let class = |c: char| {
        t.by_status
            .iter()
            .filter(|(code, _)| code.starts_with(c))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let mut r = vec![
        s.second.to_string(),
        s.at_ms.to_string(),
        "client".to_owned(),
        route.to_owned(),
        format!("{:.3}", s.target),
        s.in_flight.to_string(),
        t.requests.to_string(),
        (t.requests - t.failed).to_string(),
        t.failed.to_string(),
        format!("{:.3}", p.p50),
        format!("{:.3}", p.p90),
        format!("{:.3}", p.p99),
        format!("{:.3}", p.max),
    ];
    r.extend(['1', '2', '3', '4', '5'].map(|c| class(c).to_string()));
    r.extend(Failure::all().map(|f| t.by_error.get(&f).copied().unwrap_or(0).to_string()));
    r
}

/// One row per second for all transactions (`route` = `*`), then one per transaction.
pub fn write_timeseries(results: &Results, path: &Path) -> Result<(), LoadError> {
    let err = |e: csv::Error| io_err(path)(std::io::Error::other(e));
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    w.write_record(timeseries_header()).map_err(err)?;
    let empty = Tally::default();
    for s in &results.timeline {
        w.write_record(row(s, "*", &s.all)).map_err(err)?;
        for name in results.transactions.keys() {
            w.write_record(row(s, name, s.transactions.get(name).unwrap_or(&empty)))
                .map_err(err)?;
        }
    }
    w.flush().map_err(io_err(path))
}

/// One interval per second: untagged for all transactions, tagged with each transaction's
/// name (spaces and commas, which tags cannot hold, as `_`). Values in microseconds; the max
/// column in milliseconds.
pub fn write_hlog(results: &Results, path: &Path) -> Result<(), LoadError> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let start = std::time::UNIX_EPOCH + Duration::from_millis(results.started_at_ms);
    {
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment(&format!("ballast load {}: latency in microseconds", results.name))
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(io_err(path))?;
        let fail = |e| io_err(path)(std::io::Error::other(format!("{e:?}")));
        for s in &results.timeline {
            let at = Duration::from_secs(s.second);
            w.write_histogram(&s.all.latency.0, at, Duration::from_secs(1), None)
                .map_err(fail)?;
            for (name, t) in &s.transactions {
                let tag = tag_for(name);
                w.write_histogram(&t.latency.0, at, Duration::from_secs(1), Tag::new(&tag))
                    .map_err(fail)?;
            }
        }
    }
    let mut f = std::fs::File::create(path).map_err(io_err(path))?;
    f.write_all(&out).map_err(io_err(path))
}

/// A transaction's name as an interval log tag.
pub fn tag_for(name: &str) -> String {
    name.replace([' ', ',', '\r', '\n'], "_")
}
