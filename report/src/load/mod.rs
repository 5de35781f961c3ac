//! Reading a run folder (`docs/run-folder.md`): which files the report needs, which it uses
//! when they are there, and a clear error naming the file when one is missing or damaged.
//!
//! Needed: `timeseries.csv` (per-second figures; it also fixes the run's start), `requests.csv`
//! (per request) and `events.jsonl` (faults, alerts). The SLO pair `slo.json` + `slo.csv`
//! is needed when the run had SLOs (`scenario.toml` declares `[[slo]]`, or either file is
//! there). Used when present: `scenario.toml` (the title), `summary.json` (the verdict),
//! `stats.jsonl` (example failing trace ids).

pub mod csv;
pub mod events;
pub mod requests;
pub mod slo;
pub mod traces;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::{DataFrame, DataType};
use serde::Deserialize;

use crate::error::ReportError;
pub use events::{TimedEvent, What};
pub use slo::{AlertSpan, SloRun, SloSecond};
pub use traces::FailedTrace;

/// Everything the report reads from a run folder.
pub struct Run {
    pub dir: PathBuf,
    /// The folder's name, e.g. `checkout-20260101T000000Z`.
    pub id: String,
    /// The scenario's title (`scenario.toml`, else `summary.json`).
    pub title: Option<String>,
    /// Unix ms of second 0.
    pub started_at_ms: u64,
    /// Seconds in `timeseries.csv` (the run covers `[0, seconds)`).
    pub seconds: u64,
    /// Per-second figures by (source, route): `("client", "*")`, `("client", "checkout")`,
    /// `("sidecar", "*")`, ...
    pub series: BTreeMap<(String, String), Vec<SecondFigures>>,
    pub events: Vec<TimedEvent>,
    pub slos: Vec<SloRun>,
    pub traces: Vec<FailedTrace>,
    /// `summary.json`'s verdict, when the runner wrote one.
    pub passed: Option<bool>,
    /// `requests.csv` (see [`requests`] for its columns).
    pub requests: DataFrame,
}

/// One second of one route, as `timeseries.csv` gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SecondFigures {
    pub requests: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl SecondFigures {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failed as f64 / self.requests as f64
        }
    }
}

pub const TIMESERIES_CSV: &str = "timeseries.csv";
pub const REQUESTS_CSV: &str = "requests.csv";
pub const EVENTS_JSONL: &str = "events.jsonl";
pub const SLO_JSON: &str = "slo.json";
pub const SLO_CSV: &str = "slo.csv";
pub const STATS_JSONL: &str = "stats.jsonl";
pub const SCENARIO_TOML: &str = "scenario.toml";
pub const SUMMARY_JSON: &str = "summary.json";

impl Run {
    pub fn open(dir: &Path) -> Result<Run, ReportError> {
        if !dir.is_dir() {
            return Err(ReportError::NoRunFolder(dir.to_owned()));
        }
        let file = |name: &str| dir.join(name);
        let need = |name: &str, why: &str| -> Result<PathBuf, ReportError> {
            let p = file(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(ReportError::Missing {
                    path: p,
                    why: why.to_owned(),
                })
            }
        };
        let timeseries = need(TIMESERIES_CSV, "the per-second figures of every route")?;
        let requests = need(REQUESTS_CSV, "the load generator's per-request log")?;
        let events = need(EVENTS_JSONL, "the timeline of faults and alerts")?;
        let scenario = read_scenario(&file(SCENARIO_TOML))?;
        let (json, csv) = (file(SLO_JSON), file(SLO_CSV));
        let has_slos = scenario.as_ref().is_some_and(|s| !s.slo.is_empty()) || json.is_file() || csv.is_file();
        let (started_at_ms, seconds, series) = read_timeseries(&timeseries)?;
        let slos = if has_slos {
            let why = "the run had SLOs: their live evaluation and final status";
            slo::read(&need(SLO_JSON, why)?, &need(SLO_CSV, why)?, started_at_ms)?
        } else {
            Vec::new()
        };
        let stats = file(STATS_JSONL);
        let summary = read_summary(&file(SUMMARY_JSON))?;
        Ok(Run {
            id: dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| dir.display().to_string()),
            title: scenario
                .and_then(|s| s.title)
                .or_else(|| summary.as_ref().and_then(|s| s.scenario.clone())),
            passed: summary.map(|s| s.passed),
            started_at_ms,
            seconds,
            series,
            events: events::read(&events)?,
            slos,
            traces: if stats.is_file() {
                traces::read(&stats)?
            } else {
                Vec::new()
            },
            requests: requests::read(&requests, started_at_ms)?,
            dir: dir.to_owned(),
        })
    }

    /// The client's view of a route (`*` for all), one entry per second of the run.
    pub fn client(&self, route: &str) -> Option<&[SecondFigures]> {
        self.series
            .get(&("client".to_owned(), route.to_owned()))
            .map(Vec::as_slice)
    }

    /// The load generator's transactions (routes), in name order.
    pub fn routes(&self) -> Vec<String> {
        self.series
            .keys()
            .filter(|(source, route)| source == "client" && route != "*")
            .map(|(_, route)| route.clone())
            .collect()
    }
}

#[derive(Deserialize)]
struct Scenario {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    slo: Vec<toml::Value>,
}

fn read_scenario(path: &Path) -> Result<Option<Scenario>, ReportError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(ReportError::io(path))?;
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| ReportError::damaged(path, format!("not TOML: {e}")))
}

#[derive(Deserialize)]
struct Summary {
    #[serde(default)]
    scenario: Option<String>,
    passed: bool,
}

fn read_summary(path: &Path) -> Result<Option<Summary>, ReportError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(ReportError::io(path))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ReportError::damaged(path, format!("not the runner's verdict: {e}")))
}

type Series = BTreeMap<(String, String), Vec<SecondFigures>>;

/// The run's start (Unix ms of second 0), its length in seconds and the figures by
/// (source, route), one entry per second (zeros where a second has no row).
fn read_timeseries(path: &Path) -> Result<(u64, u64, Series), ReportError> {
    let df = csv::read(
        path,
        &[
            ("second", DataType::UInt64),
            ("at_ms", DataType::UInt64),
            ("source", DataType::String),
            ("route", DataType::String),
            ("requests", DataType::UInt64),
            ("failed", DataType::UInt64),
            ("p50_ms", DataType::Float64),
            ("p99_ms", DataType::Float64),
        ],
    )?;
    if df.height() == 0 {
        return Err(ReportError::damaged(path, "no rows: the run recorded no second"));
    }
    let second = csv::required_u64(&df, "second", path)?;
    let at_ms = csv::required_u64(&df, "at_ms", path)?;
    let source = csv::required_str(&df, "source", path)?;
    let route = csv::required_str(&df, "route", path)?;
    let requests = csv::required_u64(&df, "requests", path)?;
    let failed = csv::required_u64(&df, "failed", path)?;
    let p50 = csv::optional_f64(&df, "p50_ms", path)?;
    let p99 = csv::optional_f64(&df, "p99_ms", path)?;
    let started_at_ms = at_ms[0].saturating_sub(second[0] * 1000);
    let seconds = second.iter().max().copied().unwrap_or(0) + 1;
    let mut series: Series = BTreeMap::new();
    for i in 0..df.height() {
        if failed[i] > requests[i] {
            return Err(ReportError::damaged(
                path,
                format!("line {}: {} failed out of {} requests", i + 2, failed[i], requests[i]),
            ));
        }
        let row = series
            .entry((source[i].clone(), route[i].clone()))
            .or_insert_with(|| vec![SecondFigures::default(); seconds as usize]);
        row[second[i] as usize] = SecondFigures {
            requests: requests[i],
            failed: failed[i],
            p50_ms: p50[i].unwrap_or(0.0),
            p99_ms: p99[i].unwrap_or(0.0),
        };
    }
    if !series.contains_key(&("client".to_owned(), "*".to_owned())) {
        return Err(ReportError::damaged(
            path,
            "no `client` rows for route `*`: the load generator's figures are missing",
        ));
    }
    Ok((started_at_ms, seconds, series))
}
