//! The SLO files: `slo.json` (each SLO at the end: objective, spec, alerts) and `slo.csv`
//! (the live evaluation, one row per second and SLO).

use std::collections::BTreeMap;
use std::path::Path;

use ballast_model::slo::{Budgeting, Severity, SloSpec};
use polars::prelude::DataType;
use serde::Deserialize;

use super::csv;
use crate::error::ReportError;

/// One SLO over the run.
#[derive(Clone, Debug, PartialEq)]
pub struct SloRun {
    pub name: String,
    pub objective: f64,
    /// The spec as the runner recorded it (absent if it did not parse: the figures still do).
    pub spec: Option<SloSpec>,
    /// `slo.csv`, by second since the run's start (a second without a row repeats the last).
    pub seconds: Vec<SloSecond>,
    /// Alerts as `slo.json` lists them.
    pub alerts: Vec<AlertSpan>,
    /// Share of the window's budget left at the end (`slo.json`'s status).
    pub budget_remaining_at_end: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SloSecond {
    /// Events (or slices) in the SLO's window so far.
    pub good: u64,
    pub total: u64,
    pub budget_remaining: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AlertSpan {
    pub slo: String,
    pub severity: Severity,
    pub fired_at_ms: u64,
    pub resolved_at_ms: Option<u64>,
}

impl SloRun {
    /// What the SLO counts: `requests`, or `slices` with timeslices budgeting.
    pub fn unit(&self) -> &'static str {
        match self.spec.as_ref().map(|s| s.budgeting) {
            Some(Budgeting::Timeslices) => "slices",
            _ => "requests",
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SloJsonFile {
    List(Vec<SloJson>),
    Wrapped { slos: Vec<SloJson> },
}

#[derive(Deserialize)]
struct SloJson {
    name: String,
    objective: f64,
    #[serde(default)]
    spec: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<StatusJson>,
    #[serde(default)]
    alerts: Vec<AlertJson>,
}

#[derive(Deserialize)]
struct StatusJson {
    budget_remaining: f64,
}

#[derive(Deserialize)]
struct AlertJson {
    severity: Severity,
    fired_at_ms: u64,
    #[serde(default)]
    resolved_at_ms: Option<u64>,
}

/// Read `slo.json` and `slo.csv` together; every SLO in the one must be in the other.
pub fn read(json_path: &Path, csv_path: &Path, started_at_ms: u64) -> Result<Vec<SloRun>, ReportError> {
    let text = std::fs::read_to_string(json_path).map_err(ReportError::io(json_path))?;
    let file: SloJsonFile = serde_json::from_str(&text).map_err(|e| {
        let detail = if e.is_eof() {
            format!("truncated: the JSON ends early ({e})")
        } else {
            format!("not the SLO list the runner writes: {e}")
        };
        ReportError::damaged(json_path, detail)
    })?;
    let list = match file {
        SloJsonFile::List(l) | SloJsonFile::Wrapped { slos: l } => l,
    };
    let mut seconds = read_csv(csv_path, started_at_ms)?;
    list.into_iter()
        .map(|s| {
            let rows = seconds.remove(&s.name).ok_or_else(|| {
                ReportError::damaged(csv_path, format!("no rows for the SLO `{}` of slo.json", s.name))
            })?;
            Ok(SloRun {
                spec: s.spec.and_then(|v| serde_json::from_value(v).ok()),
                seconds: rows,
                alerts: s
                    .alerts
                    .into_iter()
                    .map(|a| AlertSpan {
                        slo: s.name.clone(),
                        severity: a.severity,
                        fired_at_ms: a.fired_at_ms,
                        resolved_at_ms: a.resolved_at_ms,
                    })
                    .collect(),
                budget_remaining_at_end: s.status.map(|st| st.budget_remaining),
                objective: s.objective,
                name: s.name,
            })
        })
        .collect()
}

/// `slo.csv` by SLO name: one entry per second from the run's start to its last row.
fn read_csv(path: &Path, started_at_ms: u64) -> Result<BTreeMap<String, Vec<SloSecond>>, ReportError> {
    let df = csv::read(
        path,
        &[
            ("second", DataType::UInt64),
            ("at_ms", DataType::UInt64),
            ("slo", DataType::String),
            ("good", DataType::UInt64),
            ("total", DataType::UInt64),
            ("budget_remaining", DataType::Float64),
        ],
    )?;
    let second = csv::required_u64(&df, "second", path)?;
    let at_ms = csv::required_u64(&df, "at_ms", path)?;
    let slo = csv::required_str(&df, "slo", path)?;
    let good = csv::required_u64(&df, "good", path)?;
    let total = csv::required_u64(&df, "total", path)?;
    let remaining = csv::optional_f64(&df, "budget_remaining", path)?;
    let mut by_slo: BTreeMap<String, BTreeMap<u64, SloSecond>> = BTreeMap::new();
    for i in 0..df.height() {
        // `second` counts from the run's start and `at_ms` is that second's start, as in
        // timeseries.csv (the runner counts its seconds on the load's clock).
        if at_ms[i] != started_at_ms + second[i] * 1000 {
            return Err(ReportError::damaged(
                path,
                format!(
                    "line {}: second {} at_ms {} does not match the run's start ({started_at_ms}) in timeseries.csv",
                    i + 2,
                    second[i],
                    at_ms[i]
                ),
            ));
        }
        let budget_remaining = remaining[i].ok_or_else(|| csv::empty_cell(path, "budget_remaining", i))?;
        by_slo.entry(slo[i].clone()).or_default().insert(
            second[i],
            SloSecond {
                good: good[i],
                total: total[i],
                budget_remaining,
            },
        );
    }
    Ok(by_slo
        .into_iter()
        .map(|(name, rows)| {
            let last = rows.keys().next_back().copied().unwrap_or(0);
            let mut filled = Vec::with_capacity(last as usize + 1);
            let mut current = SloSecond {
                budget_remaining: 1.0,
                ..SloSecond::default()
            };
            for s in 0..=last {
                if let Some(r) = rows.get(&s) {
                    current = r.clone();
                }
                filled.push(current.clone());
            }
            (name, filled)
        })
        .collect())
}
