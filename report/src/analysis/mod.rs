//! The analysis of a run: from the folder's files to every figure the report shows. Pure
//! data out ([`Analysis`]), so the renderers and the tests read the same values.

pub mod budget;
pub mod degradation;
pub mod detection;
pub mod faults;
pub mod impact;
pub mod latency;
pub mod timeline;

use crate::error::ReportError;
use crate::load::{FailedTrace, Run, SecondFigures};

pub use budget::BudgetImpact;
pub use degradation::{Baseline, Degradation};
pub use detection::{Alert, Detection, Incident, Mark, Recovery};
pub use faults::{FaultImpact, FaultWindow};
pub use impact::Impact;
pub use latency::{Figures, SpanStats};
pub use timeline::Entry;

/// The rules that decide degradation, onset and recovery (see the crate documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// A second's error rate is degraded above `max(error_factor × baseline, baseline +
    /// error_margin)`.
    pub error_factor: f64,
    pub error_margin: f64,
    /// Its p99 is degraded above `max(latency_factor × baseline, baseline +
    /// latency_margin_ms)`.
    pub latency_factor: f64,
    pub latency_margin_ms: f64,
    /// Seconds with fewer requests are not judged (too few to tell noise from harm).
    pub min_requests: u64,
    /// Degradation starts an incident once it lasts this many seconds in a row.
    pub onset_s: u64,
    /// Recovered: this many seconds in a row with nothing degraded and every SLO met.
    pub hold_s: u64,
    /// Throughput moved when it fell by this share or more.
    pub throughput_drop: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            error_factor: 2.0,
            error_margin: 0.01,
            latency_factor: 2.0,
            latency_margin_ms: 50.0,
            min_requests: 5,
            onset_s: 2,
            hold_s: 10,
            throughput_drop: 0.2,
        }
    }
}

/// A named span of the run and its requests' figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// `before`, `during`, `after`, or `whole run` when there was no incident.
    pub name: &'static str,
    pub stats: SpanStats,
}

/// Per-second lines for the charts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lines {
    /// The client's view, all routes.
    pub client: Vec<SecondFigures>,
    /// The sidecar's view, all routes (when the runner scraped one).
    pub sidecar: Option<Vec<SecondFigures>>,
    /// Each SLO's budget remaining, per second.
    pub budgets: Vec<(String, Vec<f64>)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    pub id: String,
    pub title: Option<String>,
    pub started_at_ms: u64,
    /// The run's length (whole seconds of `timeseries.csv`), ms.
    pub length_ms: i64,
    /// `summary.json`'s verdict.
    pub passed: Option<bool>,
    pub rules: Rules,
    pub routes: Vec<String>,
    pub baseline: Baseline,
    pub degradation: Degradation,
    pub alerts: Vec<Alert>,
    pub faults: Vec<FaultImpact>,
    pub incident: Option<Incident>,
    pub detection: Option<Detection>,
    pub recovery: Option<Recovery>,
    /// `before`, `during`, `after` an incident, or the `whole run`.
    pub phases: Vec<Phase>,
    pub impact: Option<Impact>,
    pub budgets: Vec<BudgetImpact>,
    /// Failed traced requests during the incident, oldest first.
    pub traces: Vec<FailedTrace>,
    pub timeline: Vec<Entry>,
    pub lines: Lines,
    /// SLOs named in the run (whether or not the incident touched them).
    pub slo_names: Vec<String>,
}

impl Analysis {
    pub fn phase(&self, name: &str) -> Option<&SpanStats> {
        self.phases.iter().find(|p| p.name == name).map(|p| &p.stats)
    }

    /// Requests and failures over the whole run (the phases add up to it).
    pub fn totals(&self) -> (u64, u64) {
        self.phases
            .iter()
            .fold((0, 0), |(r, f), p| (r + p.stats.all.requests, f + p.stats.all.failed))
    }
}

pub fn analyze(run: &Run, rules: &Rules) -> Result<Analysis, ReportError> {
    let polars_err = |source| ReportError::Analysis {
        path: run.dir.join(crate::load::REQUESTS_CSV),
        source,
    };
    let run_ms = run.seconds as i64 * 1000;
    let span = |from: i64, to: i64| latency::span_stats(&run.requests, from, to).map_err(polars_err);
    let windows = faults::windows(run);
    let alerts = detection::alerts(run);
    let first_fault_s = windows.first().map(|f| (f.added_ms / 1000) as u64);
    let baseline = degradation::baseline(run, rules, first_fault_s);
    let degradation = degradation::judge(run, &baseline, rules);

    let mut incident = detection::incident(&degradation, &alerts, &windows, rules, run_ms);
    let detection = incident.as_ref().map(|i| detection::detection(i, &windows, &alerts));
    let recovery = incident
        .as_ref()
        .map(|i| detection::recovery(i, &windows, &degradation, &run.slos, rules, run_ms));
    if let (Some(i), Some(r)) = (incident.as_mut(), recovery.as_ref()) {
        i.end_ms = r.at_ms;
        i.duration_ms = (r.at_ms.unwrap_or(run_ms) - i.start.at_ms).max(0) as u64;
    }

    let phases = match &incident {
        None => vec![Phase {
            name: "whole run",
            stats: span(0, run_ms)?,
        }],
        Some(i) => {
            let end = i.end_ms.unwrap_or(run_ms);
            let mut p = vec![
                Phase {
                    name: "before",
                    stats: span(0, i.start.at_ms)?,
                },
                Phase {
                    name: "during",
                    stats: span(i.start.at_ms, end)?,
                },
            ];
            if end < run_ms {
                p.push(Phase {
                    name: "after",
                    stats: span(end, run_ms)?,
                });
            }
            p
        }
    };
    let impact = incident.as_ref().map(|_| {
        let get = |n: &str| phases.iter().find(|p| p.name == n).map(|p| &p.stats);
        impact::impact(
            get("before").expect("a before phase"),
            get("during").expect("a during phase"),
        )
    });

    // Faults against the baseline seconds' requests.
    let baseline_span = span(baseline.from_s as i64 * 1000, baseline.to_s as i64 * 1000)?;
    let faults = windows
        .into_iter()
        .map(|w| {
            let during = span(w.added_ms, w.end_or(run_ms))?;
            Ok(faults::impact(w, &during, &baseline_span, &degradation, rules))
        })
        .collect::<Result<Vec<_>, ReportError>>()?;

    let budgets = match &incident {
        Some(i) => {
            let from_s = (i.start.at_ms / 1000) as u64;
            let to_s = (i.end_ms.unwrap_or(run_ms) as u64).div_ceil(1000);
            run.slos.iter().map(|s| budget::spent(s, from_s, to_s)).collect()
        }
        None => Vec::new(),
    };
    let traces = match &incident {
        Some(i) => {
            let from = run.started_at_ms as i64 + i.start.at_ms;
            let to = run.started_at_ms as i64 + i.end_ms.unwrap_or(run_ms);
            run.traces
                .iter()
                .filter(|t| (from..to).contains(&(t.at_ms as i64)))
                .cloned()
                .collect()
        }
        None => Vec::new(),
    };
    let mut timeline = timeline::events(run);
    if let Some(i) = &incident {
        if let Some(d) = i.degradation_start_ms {
            let (route, why) = degradation
                .first((d / 1000) as u64)
                .expect("the degradation start is degraded");
            timeline.push(Entry {
                at_ms: d,
                source: "report".into(),
                text: format!("degradation began: {}", detection::describe_reason(route, why)),
            });
        }
        if let Some(r) = &recovery {
            match r.at_ms {
                Some(at) => timeline.push(Entry {
                    at_ms: at,
                    source: "report".into(),
                    text: format!("recovered: {} s in a row healthy from here", rules.hold_s),
                }),
                None => timeline.push(Entry {
                    at_ms: run_ms,
                    source: "report".into(),
                    text: "run ended before recovery".into(),
                }),
            }
        }
    }
    timeline.sort_by_key(|e| e.at_ms);

    Ok(Analysis {
        id: run.id.clone(),
        title: run.title.clone(),
        started_at_ms: run.started_at_ms,
        length_ms: run_ms,
        passed: run.passed,
        rules: rules.clone(),
        routes: run.routes(),
        lines: Lines {
            client: run.client("*").map(<[_]>::to_vec).unwrap_or_default(),
            sidecar: run.series.get(&("sidecar".to_owned(), "*".to_owned())).cloned(),
            budgets: run
                .slos
                .iter()
                .map(|s| (s.name.clone(), s.seconds.iter().map(|x| x.budget_remaining).collect()))
                .collect(),
        },
        slo_names: run.slos.iter().map(|s| s.name.clone()).collect(),
        baseline,
        degradation,
        alerts,
        faults,
        incident,
        detection,
        recovery,
        phases,
        impact,
        budgets,
        traces,
        timeline,
    })
}
