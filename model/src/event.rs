//! The timeline: one [`Event`] per thing that happened, from any part of ballast.
//!
//! Events travel as JSON objects (`/events` on the sidecar's admin API as Server-Sent Events,
//! `events.jsonl` in a run folder): `{"at_ms":…,"source":"sidecar","kind":"config_reloaded",…}`.
//! Kinds are added as the parts that produce them arrive (faults, circuits, ejections,
//! alerts, load phases, experiment steps and hypothesis checks).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// Who reports it, e.g. `sidecar`.
    pub source: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A new config took effect.
    ConfigReloaded {
        trigger: String,
        routes: usize,
        clusters: usize,
    },
    /// A new config was refused; the previous one keeps serving.
    ConfigRejected { trigger: String, reason: String },
    /// A fault was put in place (from the config file or the admin API).
    FaultAdded {
        id: String,
        spec: Box<crate::fault::FaultSpec>,
        /// None for faults from the config file.
        expires_at_ms: Option<u64>,
    },
    /// A fault's TTL ran out.
    FaultExpired { id: String },
    /// A fault was removed before its TTL (admin API, or a config change).
    FaultRemoved { id: String },
    /// Outlier detection took an endpoint out of its cluster's rotation.
    EndpointEjected {
        cluster: String,
        endpoint: String,
        /// `consecutive-5xx`, `consecutive-gateway-errors`, `failure-ratio` or `probe-failed`.
        reason: String,
        until_ms: u64,
    },
    /// An ejected endpoint is back (its probe request succeeded, or a health check passed).
    EndpointRestored { cluster: String, endpoint: String },
    /// Active health checks changed their verdict on an endpoint.
    HealthChanged {
        cluster: String,
        endpoint: String,
        healthy: bool,
    },
    /// An SLO's burn-rate alert of this severity started firing.
    AlertFiring {
        slo: String,
        severity: crate::slo::Severity,
        /// The burn rates over the long and short windows that fired it.
        burn_long: f64,
        burn_short: f64,
    },
    /// An SLO's burn-rate alert stopped firing.
    AlertResolved {
        slo: String,
        severity: crate::slo::Severity,
    },
    /// The scenario runner: the run `started` or `ended`.
    RunPhase { phase: String },
    /// A chaos experiment began a step: a method action (`method[0]`), the end of its duration
    /// (`method[0].end`), or a rollback (`rollback[1]`, `undo method[0]`).
    ExperimentStepStarted {
        experiment: String,
        step: String,
        /// What the step does, in words (`fault abort status=503 route=api`).
        action: String,
    },
    /// A chaos experiment's step is done, well or not.
    ExperimentStepFinished {
        experiment: String,
        step: String,
        action: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A chaos experiment checked its steady-state hypothesis: `before` the method, `during`
    /// it (reported when the verdict changes) or `after` it.
    HypothesisChecked {
        experiment: String,
        phase: String,
        held: bool,
        /// The probes that did not hold.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed: Vec<String>,
    },
    /// A chaos experiment ended: its verdict (`held`, `deviated`, `aborted`, `not_started`,
    /// `interrupted`, `error`) and why, when it did not hold.
    ExperimentFinished {
        experiment: String,
        verdict: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl EventKind {
    /// Every kind's name, as events carry it in `kind`.
    pub const NAMES: &[&str] = &[
        "config_reloaded",
        "config_rejected",
        "fault_added",
        "fault_expired",
        "fault_removed",
        "endpoint_ejected",
        "endpoint_restored",
        "health_changed",
        "alert_firing",
        "alert_resolved",
        "run_phase",
        "experiment_step_started",
        "experiment_step_finished",
        "hypothesis_checked",
        "experiment_finished",
    ];
}

impl EventKind {
    /// Each kind's own fields (besides `kind`, and the `at_ms` and `source` every event has),
    /// in the order of [`EventKind::NAMES`].
    pub const FIELDS: &[(&str, &[&str])] = &[
        ("config_reloaded", &["trigger", "routes", "clusters"]),
        ("config_rejected", &["trigger", "reason"]),
        ("fault_added", &["id", "spec", "expires_at_ms"]),
        ("fault_expired", &["id"]),
        ("fault_removed", &["id"]),
        ("endpoint_ejected", &["cluster", "endpoint", "reason", "until_ms"]),
        ("endpoint_restored", &["cluster", "endpoint"]),
        ("health_changed", &["cluster", "endpoint", "healthy"]),
        ("alert_firing", &["slo", "severity", "burn_long", "burn_short"]),
        ("alert_resolved", &["slo", "severity"]),
        ("run_phase", &["phase"]),
        ("experiment_step_started", &["experiment", "step", "action"]),
        (
            "experiment_step_finished",
            &["experiment", "step", "action", "ok", "error"],
        ),
        ("hypothesis_checked", &["experiment", "phase", "held", "failed"]),
        ("experiment_finished", &["experiment", "verdict", "reason"]),
    ];

    /// The fields an event of `kind` can have: its own, `at_ms` and `source`.
    pub fn fields_of(kind: &str) -> Option<impl Iterator<Item = &'static str>> {
        Self::FIELDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, own)| own.iter().copied().chain(["at_ms", "source"]))
    }
}

impl Event {
    /// An event stamped with the current time.
    pub fn now(source: impl Into<String>, kind: EventKind) -> Self {
        Event {
            at_ms: unix_ms(),
            source: source.into(),
            kind,
        }
    }
}

/// The current time in Unix milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_flat_json_objects_tagged_by_kind() {
        let e = Event {
            at_ms: 1_700_000_000_000,
            source: "sidecar".into(),
            kind: EventKind::ConfigRejected {
                trigger: "SIGHUP".into(),
                reason: "bad".into(),
            },
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"at_ms": 1_700_000_000_000u64, "source": "sidecar", "kind": "config_rejected", "trigger": "SIGHUP", "reason": "bad"})
        );
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
        assert!(Event::now("x", e.kind.clone()).at_ms > 1_700_000_000_000);
    }

    #[test]
    fn experiment_events_leave_out_what_they_lack() {
        let step = EventKind::ExperimentStepFinished {
            experiment: "x".into(),
            step: "method[0]".into(),
            action: "pause".into(),
            ok: true,
            error: None,
        };
        let json = serde_json::to_value(Event::now("chaos", step.clone())).unwrap();
        assert_eq!(json["kind"], "experiment_step_finished");
        assert!(json.get("error").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap().kind, step);
    }

    #[test]
    fn names_are_every_kind() {
        // serde lists the variants it knows when it meets one it does not.
        let e = serde_json::from_str::<EventKind>(r#"{"kind": "none-such"}"#).unwrap_err();
        let known: Vec<String> = e
            .to_string()
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .split(", ")
            .map(|n| {
                n.trim_matches(|c: char| c == '`' || !c.is_ascii() || c.is_whitespace())
                    .to_owned()
            })
            .map(|n| n.split('`').next().unwrap().to_owned())
            .collect();
        assert_eq!(known, EventKind::NAMES, "{e}");
    }

    #[test]
    fn fields_are_those_events_carry() {
        let names: Vec<&str> = EventKind::FIELDS.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, EventKind::NAMES);
        let severity = crate::slo::Severity::Page;
        let spec: crate::fault::FaultSpec = serde_json::from_value(serde_json::json!({"kind": "reset"})).unwrap();
        let s = |v: &str| v.to_owned();
        let every_kind = [
            EventKind::ConfigReloaded {
                trigger: s("x"),
                routes: 1,
                clusters: 1,
            },
            EventKind::ConfigRejected {
                trigger: s("x"),
                reason: s("x"),
            },
            EventKind::FaultAdded {
                id: s("f1"),
                spec: Box::new(spec),
                expires_at_ms: Some(1),
            },
            EventKind::FaultExpired { id: s("f1") },
            EventKind::FaultRemoved { id: s("f1") },
            EventKind::EndpointEjected {
                cluster: s("c"),
                endpoint: s("e"),
                reason: s("r"),
                until_ms: 1,
            },
            EventKind::EndpointRestored {
                cluster: s("c"),
                endpoint: s("e"),
            },
            EventKind::HealthChanged {
                cluster: s("c"),
                endpoint: s("e"),
                healthy: true,
            },
            EventKind::AlertFiring {
                slo: s("a"),
                severity,
                burn_long: 1.0,
                burn_short: 1.0,
            },
            EventKind::AlertResolved { slo: s("a"), severity },
            EventKind::RunPhase { phase: s("started") },
            EventKind::ExperimentStepStarted {
                experiment: s("x"),
                step: s("m"),
                action: s("a"),
            },
            EventKind::ExperimentStepFinished {
                experiment: s("x"),
                step: s("m"),
                action: s("a"),
                ok: false,
                error: Some(s("e")),
            },
            EventKind::HypothesisChecked {
                experiment: s("x"),
                phase: s("during"),
                held: false,
                failed: vec![s("p")],
            },
            EventKind::ExperimentFinished {
                experiment: s("x"),
                verdict: s("held"),
                reason: Some(s("r")),
            },
        ];
        for kind in every_kind {
            let json = serde_json::to_value(Event::now("test", kind)).unwrap();
            let keys: Vec<&str> = json
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "kind")
                .collect();
            let name = json["kind"].as_str().unwrap();
            let fields: Vec<&str> = EventKind::fields_of(name).unwrap().collect();
            let mut keys = keys;
            keys.sort();
            let mut fields = fields;
            fields.sort();
            assert_eq!(keys, fields, "{name}");
        }
    }
}
