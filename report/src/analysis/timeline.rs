//! The timeline: every event of `events.jsonl`, with the marks the analysis found (the
//! incident's start, detection, recovery), in time order.

use ballast_model::EventKind;

use crate::load::{Run, What};

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// ms since the run's start.
    pub at_ms: i64,
    pub source: String,
    pub text: String,
}

pub fn events(run: &Run) -> Vec<Entry> {
    run.events
        .iter()
        .map(|e| Entry {
            at_ms: e.at_ms as i64 - run.started_at_ms as i64,
            source: e.source.clone(),
            text: match &e.what {
                What::Known(k) => describe(k),
                What::Other { kind, detail } if detail.is_empty() => kind.replace('_', " "),
                What::Other { kind, detail } => format!("{}: {detail}", kind.replace('_', " ")),
            },
        })
        .collect()
}

fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::ConfigReloaded {
            trigger,
            routes,
            clusters,
        } => {
            format!("config reloaded ({trigger}): {routes} routes, {clusters} clusters")
        }
        EventKind::ConfigRejected { trigger, reason } => format!("config rejected ({trigger}): {reason}"),
        EventKind::FaultAdded { id, spec, .. } => {
            format!("fault {id} added: {}", super::faults::describe(spec))
        }
        EventKind::FaultExpired { id } => format!("fault {id} expired"),
        EventKind::FaultRemoved { id } => format!("fault {id} removed"),
        EventKind::EndpointEjected {
            cluster,
            endpoint,
            reason,
            ..
        } => {
            format!("endpoint {endpoint} of {cluster} ejected ({reason})")
        }
        EventKind::EndpointRestored { cluster, endpoint } => {
            format!("endpoint {endpoint} of {cluster} restored")
        }
        EventKind::HealthChanged {
            cluster,
            endpoint,
            healthy,
        } => format!(
            "endpoint {endpoint} of {cluster} {}",
            if *healthy { "healthy" } else { "unhealthy" }
        ),
        EventKind::AlertFiring {
            slo,
            severity,
            burn_long,
            burn_short,
        } => format!(
            "alert {} of {slo} firing (burn rate {burn_long:.1} long, {burn_short:.1} short)",
            severity.as_str()
        ),
        EventKind::AlertResolved { slo, severity } => {
            format!("alert {} of {slo} resolved", severity.as_str())
        }
        EventKind::RunPhase { phase } => format!("run {phase}"),
        EventKind::ExperimentStepStarted {
            experiment,
            step,
            action,
        } => {
            format!("experiment {experiment:?}: {step} started ({action})")
        }
        EventKind::ExperimentStepFinished {
            experiment,
            step,
            ok,
            error,
            ..
        } => match (ok, error) {
            (true, _) => format!("experiment {experiment:?}: {step} done"),
            (false, Some(e)) => format!("experiment {experiment:?}: {step} failed: {e}"),
            (false, None) => format!("experiment {experiment:?}: {step} failed"),
        },
        EventKind::HypothesisChecked {
            experiment,
            phase,
            held,
            failed,
        } => {
            if *held {
                format!("experiment {experiment:?}: steady state held ({phase})")
            } else {
                format!(
                    "experiment {experiment:?}: steady state did not hold ({phase}): {}",
                    failed.join(", ")
                )
            }
        }
        EventKind::ExperimentFinished {
            experiment,
            verdict,
            reason,
        } => match reason {
            Some(r) => format!("experiment {experiment:?} {verdict}: {r}"),
            None => format!("experiment {experiment:?} {verdict}"),
        },
    }
}
