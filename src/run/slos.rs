//! The scenario's SLOs, evaluated live: fed each second from the sidecar's stats window
//! (`source = "sidecar"`) or the load generator's second (`source = "loadgen"`), evaluated
//! once a second, with an alert event for each alert that fires or resolves.

use ballast_model::load::{Second, Tally};
use ballast_model::slo::{Severity, Sli, SloSpec, Source};
use ballast_model::{EventKind, StatsWindow};
use ballast_slo_engine::alert::AlertState;
use ballast_slo_engine::source::{sidecar_counts, sidecar_latency};
use ballast_slo_engine::{Counts, Slo, Status};
use serde::Serialize;

pub struct Tracked {
    slo: Slo,
    /// Budget left when the run started watching (to tell what the run consumed).
    first_remaining: Option<f64>,
    alerts: Vec<AlertSpan>,
    last: Option<Status>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlertSpan {
    pub severity: Severity,
    pub fired_at_ms: u64,
    pub resolved_at_ms: Option<u64>,
}

/// One row of `slo.csv`.
pub struct Row {
    pub slo: String,
    pub status: Status,
}

pub struct Slos(Vec<Tracked>);

impl Slos {
    pub fn new(specs: &[SloSpec]) -> Slos {
        Slos(
            specs
                .iter()
                .map(|s| Tracked {
                    slo: Slo::new(s.clone()).expect("checked with the scenario"),
                    first_remaining: None,
                    alerts: Vec::new(),
                    last: None,
                })
                .collect(),
        )
    }

    /// A sidecar stats window ending at `at_ms`.
    pub fn sidecar(&mut self, at_ms: u64, window: &StatsWindow) {
        for t in &mut self.0 {
            if let Some(c) = sidecar_counts(&t.slo.spec, window) {
                t.slo.record(at_ms, c.good, c.total);
            }
            if let Some(h) = sidecar_latency(&t.slo.spec, window) {
                t.slo.record_latency(at_ms, &h);
            }
        }
    }

    /// A load generator's second.
    pub fn client(&mut self, second: &Second) {
        let at_ms = second.at_ms + 999;
        for t in &mut self.0 {
            let (route, source) = match &t.slo.spec.sli {
                Sli::Availability(a) => (a.route.as_deref(), a.source),
                Sli::Latency(l) => (l.route.as_deref(), l.source),
                Sli::Trace(_) => continue,
            };
            if source != Source::Loadgen {
                continue;
            }
            let tally = match route {
                None => Some(&second.all),
                Some(r) => second.transactions.get(r),
            };
            let Some(tally) = tally else { continue };
            let c = client_counts(&t.slo.spec.sli, tally);
            t.slo.record(at_ms, c.good, c.total);
            t.slo.record_latency(at_ms, &tally.latency.0);
        }
    }

    /// Evaluate every SLO at `now_ms`: the rows of `slo.csv` and the alert events.
    pub fn evaluate(&mut self, now_ms: u64) -> (Vec<Row>, Vec<EventKind>) {
        let (mut rows, mut events) = (Vec::new(), Vec::new());
        for t in &mut self.0 {
            let (status, changes) = t.slo.evaluate(now_ms);
            t.first_remaining.get_or_insert(status.budget_remaining);
            for e in &changes {
                match e {
                    EventKind::AlertFiring { severity, .. } => t.alerts.push(AlertSpan {
                        severity: *severity,
                        fired_at_ms: now_ms,
                        resolved_at_ms: None,
                    }),
                    EventKind::AlertResolved { severity, .. } => {
                        if let Some(open) = t
                            .alerts
                            .iter_mut()
                            .rev()
                            .find(|a| a.severity == *severity && a.resolved_at_ms.is_none())
                        {
                            open.resolved_at_ms = Some(now_ms);
                        }
                    }
                    _ => {}
                }
            }
            events.extend(changes);
            rows.push(Row {
                slo: t.slo.spec.name.clone(),
                status: status.clone(),
            });
            t.last = Some(status);
        }
        (rows, events)
    }

    /// Page alerts firing now, by SLO name.
    pub fn paging(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|t| {
                t.last
                    .as_ref()
                    .is_some_and(|s| matches!(s.alerts.get(&Severity::Page), Some(AlertState::Firing { .. })))
            })
            .map(|t| t.slo.spec.name.as_str())
            .collect()
    }

    /// Each SLO at the end, for `slo.json`.
    pub fn report(&self) -> Vec<SloReport> {
        self.0
            .iter()
            .map(|t| {
                let remaining = t.last.as_ref().map_or(1.0, |s| s.budget_remaining);
                SloReport {
                    name: t.slo.spec.name.clone(),
                    objective: t.slo.spec.objective,
                    spec: t.slo.spec.clone(),
                    status: t.last.clone(),
                    alerts: t.alerts.clone(),
                    budget_consumed: t.first_remaining.map_or(0.0, |first| first - remaining),
                }
            })
            .collect()
    }
}

#[derive(Serialize)]
pub struct SloReport {
    pub name: String,
    pub objective: f64,
    pub spec: SloSpec,
    pub status: Option<Status>,
    pub alerts: Vec<AlertSpan>,
    pub budget_consumed: f64,
}

/// Good and total requests of a load generator tally for an SLI: availability counts the bad
/// status classes, the named error classes and requests without an answer; latency reads the
/// histogram at the threshold.
fn client_counts(sli: &Sli, t: &Tally) -> Counts {
    match sli {
        Sli::Availability(a) => {
            let answered: u64 = t.by_status.values().sum();
            let bad_status: u64 = t
                .by_status
                .iter()
                .filter(|(code, _)| a.bad_status.iter().any(|c| c.as_bytes()[0] == code.as_bytes()[0]))
                .map(|(_, n)| n)
                .sum();
            let bad_errors: u64 = t
                .by_error
                .iter()
                .filter(|(f, _)| matches!(f, ballast_model::load::Failure::Class(c) if a.bad_errors.contains(c)))
                .map(|(_, n)| n)
                .sum();
            let bad = (bad_status + bad_errors + (t.requests - answered.min(t.requests))).min(t.requests);
            Counts {
                good: t.requests - bad,
                total: t.requests,
            }
        }
        Sli::Latency(l) => {
            let h = &t.latency.0;
            Counts {
                good: h.count_between(0, l.threshold.get().as_micros() as u64),
                total: h.len(),
            }
        }
        Sli::Trace(_) => Counts::default(),
    }
}

/// An alert state as `slo.csv` writes it.
pub fn state_name(state: Option<&AlertState>) -> &'static str {
    match state {
        None | Some(AlertState::Inactive) => "inactive",
        Some(AlertState::Pending { .. }) => "pending",
        Some(AlertState::Firing { .. }) => "firing",
        Some(AlertState::Resolved { .. }) => "resolved",
    }
}

/// The burn rates `slo.csv` shows: the shortest alert row's short and long windows.
pub fn headline_burn(status: &Status) -> (f64, f64) {
    status
        .burn_rates
        .iter()
        .min_by_key(|b| b.short_ms)
        .map_or((0.0, 0.0), |b| (b.short, b.long))
}
