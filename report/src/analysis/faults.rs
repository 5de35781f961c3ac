//! Injected faults: when each was in place (`fault_added` to `fault_expired` /
//! `fault_removed`), and what moved on each route while it was: error rate, p50, p99 and
//! throughput against the baseline, and the seconds that route was degraded.

use ballast_model::EventKind;
use ballast_model::fault::{FaultSpec, TimeValue};

use super::Rules;
use super::degradation::Degradation;
use super::latency::{Figures, SpanStats};
use crate::load::{Run, What};

#[derive(Clone, Debug, PartialEq)]
pub struct FaultWindow {
    pub id: String,
    pub source: String,
    pub spec: FaultSpec,
    /// ms since the run's start (0 for a fault in place before it).
    pub added_ms: i64,
    /// When it ended; `None` if still in place at the end of the run.
    pub ended_ms: Option<i64>,
    pub ended_by: Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Its TTL ran out.
    Expired,
    /// Removed by hand, by a rollback, or by a config change.
    Removed,
    StillActive,
}

impl FaultWindow {
    /// The end, or the run's end for a fault still in place.
    pub fn end_or(&self, run_ms: i64) -> i64 {
        self.ended_ms.unwrap_or(run_ms)
    }
}

/// The figures that can move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    ErrorRate,
    P50,
    P99,
    Throughput,
}

impl Figure {
    pub fn name(self) -> &'static str {
        match self {
            Figure::ErrorRate => "error rate",
            Figure::P50 => "p50",
            Figure::P99 => "p99",
            Figure::Throughput => "throughput",
        }
    }
}

/// One figure of one route that moved while a fault was in place.
#[derive(Clone, Debug, PartialEq)]
pub struct Moved {
    pub route: String,
    pub figure: Figure,
    /// Baseline value and value while the fault was in place: a ratio for the error rate, ms
    /// for latencies, requests/s for throughput.
    pub before: f64,
    pub during: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FaultImpact {
    pub window: FaultWindow,
    /// What it did, in a few words (`abort 503, 10% of checkout (upstream)`).
    pub description: String,
    pub moved: Vec<Moved>,
    /// Per route that moved: the first and last second it was degraded, from the fault's
    /// start to `hold_s` after its end.
    pub degraded: Vec<(String, u64, u64)>,
    /// Routes on which nothing moved.
    pub unmoved: Vec<String>,
}

/// Every fault of the run, in the order they were added.
pub fn windows(run: &Run) -> Vec<FaultWindow> {
    let rel = |at_ms: u64| (at_ms as i64 - run.started_at_ms as i64).max(0);
    let mut out: Vec<FaultWindow> = Vec::new();
    for e in &run.events {
        let What::Known(kind) = &e.what else { continue };
        match kind {
            EventKind::FaultAdded { id, spec, .. } => out.push(FaultWindow {
                id: id.clone(),
                source: e.source.clone(),
                spec: (**spec).clone(),
                added_ms: rel(e.at_ms),
                ended_ms: None,
                ended_by: Ended::StillActive,
            }),
            EventKind::FaultExpired { id } | EventKind::FaultRemoved { id } => {
                let how = if matches!(kind, EventKind::FaultExpired { .. }) {
                    Ended::Expired
                } else {
                    Ended::Removed
                };
                if let Some(w) = out
                    .iter_mut()
                    .rev()
                    .find(|w| &w.id == id && w.source == e.source && w.ended_ms.is_none())
                {
                    w.ended_ms = Some(rel(e.at_ms));
                    w.ended_by = how;
                }
            }
            _ => {}
        }
    }
    out
}

/// Compare each route's figures while the fault was in place with the baseline.
pub fn impact(
    window: FaultWindow,
    during: &SpanStats,
    baseline: &SpanStats,
    degradation: &Degradation,
    rules: &Rules,
) -> FaultImpact {
    let mut moved = Vec::new();
    let mut unmoved = Vec::new();
    let mut degraded = Vec::new();
    let empty = Figures::default();
    let routes: std::collections::BTreeSet<&String> = baseline.routes.keys().chain(during.routes.keys()).collect();
    for route in routes {
        let b = baseline.routes.get(route).unwrap_or(&empty);
        let d = during.routes.get(route).unwrap_or(&empty);
        let mut found = Vec::new();
        let rise = |before: f64, factor: f64, margin: f64| (factor * before).max(before + margin);
        if d.requests > 0 && d.error_rate() > rise(b.error_rate(), rules.error_factor, rules.error_margin) {
            found.push((Figure::ErrorRate, b.error_rate(), d.error_rate()));
        }
        for (figure, before, now) in [(Figure::P50, b.p50_ms, d.p50_ms), (Figure::P99, b.p99_ms, d.p99_ms)] {
            if d.requests > 0 && now > rise(before, rules.latency_factor, rules.latency_margin_ms) {
                found.push((figure, before, now));
            }
        }
        let rps = |f: &Figures, secs: f64| if secs > 0.0 { f.requests as f64 / secs } else { 0.0 };
        let (rps_before, rps_during) = (rps(b, baseline.seconds()), rps(d, during.seconds()));
        if b.requests >= rules.min_requests && rps_during < rps_before * (1.0 - rules.throughput_drop) {
            found.push((Figure::Throughput, rps_before, rps_during));
        }
        if found.is_empty() {
            unmoved.push(route.clone());
            continue;
        }
        let from_s = (window.added_ms / 1000) as u64;
        let to_s = (during.to_ms / 1000) as u64 + rules.hold_s;
        if let Some((first, last)) = degradation.span_of(route, from_s, to_s) {
            degraded.push((route.clone(), first, last));
        }
        moved.extend(found.into_iter().map(|(figure, before, during)| Moved {
            route: route.clone(),
            figure,
            before,
            during,
        }));
    }
    FaultImpact {
        description: describe(&window.spec),
        window,
        moved,
        degraded,
        unmoved,
    }
}

/// A fault in a few words: kind, its main parameter, share and target.
pub fn describe(spec: &FaultSpec) -> String {
    let time = |t: &Option<TimeValue>| match t {
        Some(TimeValue::Number(n)) => Some(format!("{n}ms")),
        Some(TimeValue::Text(d)) => Some(d.to_string()),
        None => None,
    };
    let mut what = spec.kind.as_str().to_owned();
    let detail = spec
        .status
        .map(|s| s.to_string())
        .or_else(|| time(&spec.delay))
        .or_else(|| time(&spec.latency))
        .or_else(|| time(&spec.timeout));
    if let Some(d) = detail {
        what = format!("{what} {d}");
    }
    let share = spec
        .percent
        .map(|p| format!("{p}% of "))
        .or_else(|| spec.toxicity.map(|t| format!("{}% of ", t * 100.0)))
        .unwrap_or_default();
    let target = spec
        .route
        .as_ref()
        .map(|r| format!("route {r}"))
        .or_else(|| spec.listener.as_ref().map(|l| format!("listener {l}")))
        .unwrap_or_else(|| "every route".to_owned());
    let position = spec
        .position
        .map(|p| format!(" ({})", format!("{p:?}").to_lowercase()))
        .unwrap_or_default();
    format!("{what}, {share}{target}{position}")
}
