//! The incident window, time to detect and time to recover (definitions in the crate's
//! documentation, [`crate`]).

use ballast_model::EventKind;
use ballast_model::slo::Severity;

use super::Rules;
use super::degradation::{Degradation, Reason};
use super::faults::FaultWindow;
use crate::load::{Run, SloRun, What};

/// An SLO alert that fired, ms since the run's start.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub slo: String,
    pub severity: Severity,
    pub fired_ms: i64,
    pub resolved_ms: Option<i64>,
    /// The burn rates that fired it (from `events.jsonl`; absent when only `slo.json` told).
    pub burn: Option<(f64, f64)>,
}

/// A moment and what happened then.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub at_ms: i64,
    pub what: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// The first degradation (held `onset_s` seconds) or the first alert, whichever came
    /// first.
    pub start: Mark,
    /// The first degraded second, if the data degraded at all.
    pub degradation_start_ms: Option<i64>,
    /// Recovery; `None` if the run ended before it.
    pub end_ms: Option<i64>,
    /// To the recovery, or to the run's end.
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// The fault or degradation that started it.
    pub reference: Option<Mark>,
    /// The first alert that fired at or after the reference.
    pub alert: Option<Alert>,
    pub ttd_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    /// Where time to recover counts from: the last fault's end, or the incident's start.
    pub from: Mark,
    /// The start of the first `hold_s` healthy seconds from there; `None` if the run ended
    /// first.
    pub at_ms: Option<i64>,
    pub ttr_ms: Option<u64>,
    /// A degradation that began after the recovery (the report covers the first incident).
    pub degraded_again_ms: Option<i64>,
}

/// Alerts from `events.jsonl` (paired firing → resolved per SLO and severity), or from
/// `slo.json` when the events hold none.
pub fn alerts(run: &Run) -> Vec<Alert> {
    let rel = |at: u64| at as i64 - run.started_at_ms as i64;
    let mut out: Vec<Alert> = Vec::new();
    for e in &run.events {
        match &e.what {
            What::Known(EventKind::AlertFiring {
                slo,
                severity,
                burn_long,
                burn_short,
            }) => out.push(Alert {
                slo: slo.clone(),
                severity: *severity,
                fired_ms: rel(e.at_ms),
                resolved_ms: None,
                burn: Some((*burn_long, *burn_short)),
            }),
            What::Known(EventKind::AlertResolved { slo, severity }) => {
                if let Some(a) = out
                    .iter_mut()
                    .rev()
                    .find(|a| &a.slo == slo && a.severity == *severity && a.resolved_ms.is_none())
                {
                    a.resolved_ms = Some(rel(e.at_ms));
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        out = run
            .slos
            .iter()
            .flat_map(|s| &s.alerts)
            .map(|a| Alert {
                slo: a.slo.clone(),
                severity: a.severity,
                fired_ms: rel(a.fired_at_ms),
                resolved_ms: a.resolved_at_ms.map(rel),
                burn: None,
            })
            .collect();
        out.sort_by_key(|a| a.fired_ms);
    }
    out
}

pub fn describe_reason(route: &str, why: Reason) -> String {
    match why {
        Reason::Errors { rate, limit } => {
            format!("{route}: error rate {:.1}% (limit {:.1}%)", rate * 100.0, limit * 100.0)
        }
        Reason::Latency { p99_ms, limit_ms } => {
            format!("{route}: p99 {p99_ms:.1} ms (limit {limit_ms:.1} ms)")
        }
    }
}

/// The incident: from the first sustained degradation or alert, whichever came first.
pub fn incident(
    degradation: &Degradation,
    alerts: &[Alert],
    faults: &[FaultWindow],
    rules: &Rules,
    run_ms: i64,
) -> Option<Incident> {
    // A blip that is over (`hold_s` healthy seconds) before the next fault is put in place
    // is noise, not the start of the incident that fault causes.
    let hold = rules.hold_s.max(1);
    let mut from = 0;
    let onset = loop {
        let Some(s) = degradation.onset(from, rules.onset_s) else {
            break None;
        };
        let next_fault_s = faults
            .iter()
            .map(|f| (f.added_ms / 1000) as u64)
            .filter(|&a| a > s)
            .min();
        let over = next_fault_s
            .and_then(|a| (s + 1..(a + 1).saturating_sub(hold)).find(|&t| (t..t + hold).all(|u| !degradation.any(u))));
        match over {
            Some(t) => from = t + hold,
            None => break Some(s),
        }
    };
    let from_degradation = onset.map(|s| {
        let (route, why) = degradation.first(s).expect("an onset second is degraded");
        Mark {
            at_ms: s as i64 * 1000,
            what: format!("degradation: {}", describe_reason(route, why)),
        }
    });
    let from_alert = alerts.first().map(|a| Mark {
        at_ms: a.fired_ms,
        what: format!("alert {} of {} fired", a.severity.as_str(), a.slo),
    });
    let start = match (from_degradation, from_alert) {
        (Some(d), Some(a)) if a.at_ms < d.at_ms => a,
        (Some(d), _) => d,
        (None, Some(a)) => a,
        (None, None) => return None,
    };
    Some(Incident {
        duration_ms: (run_ms - start.at_ms).max(0) as u64,
        start,
        degradation_start_ms: onset.map(|s| s as i64 * 1000),
        end_ms: None,
    })
}

/// Time to detect: from the fault in place when the degradation began (the latest one added
/// at or before it), or the degradation's start without one, to the first alert after.
pub fn detection(incident: &Incident, faults: &[FaultWindow], alerts: &[Alert]) -> Detection {
    let start = incident.degradation_start_ms.unwrap_or(incident.start.at_ms);
    let reference = faults
        .iter()
        .filter(|f| f.added_ms <= start)
        .max_by_key(|f| f.added_ms)
        .map(|f| Mark {
            at_ms: f.added_ms,
            what: format!("fault {} added", f.id),
        })
        .or_else(|| {
            incident.degradation_start_ms.map(|at_ms| Mark {
                at_ms,
                what: "degradation began".to_owned(),
            })
        });
    let alert = alerts
        .iter()
        .find(|a| reference.as_ref().is_none_or(|r| a.fired_ms >= r.at_ms))
        .cloned();
    let ttd_ms = match (&reference, &alert) {
        (Some(r), Some(a)) => Some((a.fired_ms - r.at_ms) as u64),
        _ => None,
    };
    Detection {
        reference,
        alert,
        ttd_ms,
    }
}

/// Recovery: the first second, from the last fault's end (or the incident's start), that
/// begins `hold_s` seconds in which no route is degraded and every SLO's SLI over them meets
/// its objective.
pub fn recovery(
    incident: &Incident,
    faults: &[FaultWindow],
    degradation: &Degradation,
    slos: &[SloRun],
    rules: &Rules,
    run_ms: i64,
) -> Recovery {
    let last_fault = faults.iter().max_by_key(|f| f.end_or(run_ms));
    let from = match last_fault {
        Some(f) if f.end_or(run_ms) >= incident.start.at_ms => Mark {
            at_ms: f.end_or(run_ms),
            what: match f.ended_by {
                super::faults::Ended::Expired => format!("fault {} expired", f.id),
                super::faults::Ended::Removed => format!("fault {} removed", f.id),
                super::faults::Ended::StillActive => format!("the run ended with fault {} in place", f.id),
            },
        },
        _ => Mark {
            at_ms: incident.start.at_ms,
            what: "the incident began".to_owned(),
        },
    };
    let first_s = (from.at_ms.max(0) as u64).div_ceil(1000);
    let hold = rules.hold_s.max(1);
    let healthy = |s: u64| (s..s + hold).all(|t| !degradation.any(t)) && slos_hold(slos, s, s + hold);
    let at_s = (first_s..=degradation.seconds.saturating_sub(hold)).find(|&s| healthy(s));
    let at_ms = at_s.map(|s| s as i64 * 1000);
    Recovery {
        ttr_ms: at_ms.map(|a| (a - from.at_ms).max(0) as u64),
        degraded_again_ms: at_s
            .and_then(|s| degradation.onset(s + hold, rules.onset_s))
            .map(|s| s as i64 * 1000),
        at_ms,
        from,
    }
}

/// Every SLO's SLI over the seconds `[from_s, to_s)` meets its objective (an SLO without
/// events there does not object). Counts are differences of `slo.csv`'s window sums.
fn slos_hold(slos: &[SloRun], from_s: u64, to_s: u64) -> bool {
    slos.iter().all(|slo| {
        let at = |s: u64| {
            slo.seconds
                .get(s as usize)
                .or(slo.seconds.last())
                .cloned()
                .unwrap_or_default()
        };
        let before = if from_s == 0 {
            Default::default()
        } else {
            at(from_s - 1)
        };
        let end = at(to_s - 1);
        let total = end.total.saturating_sub(before.total);
        let good = end.good.saturating_sub(before.good);
        total == 0 || good as f64 / total as f64 >= slo.objective
    })
}
