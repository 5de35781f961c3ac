//! `[[expect]]`: events a run must see for its scenario to hold, so that a scenario can state
//! what it demonstrates (a page fires within 30 s of the fault, an endpoint is ejected and
//! restored) and CI can check it.
//!
//! ```toml
//! [[expect]]
//! event = "alert_firing"                                  # a kind, as events.jsonl names it
//! where = { slo = "checkout-availability", severity = "page" }   # fields it must have
//!                                                         # (the kind's own; checked at load)
//! after = "error burst"           # counted from this experiment step's start (its name or
//!                                 # `method[N]`); default: the run's start
//! within = "30s"                  # default: any time until the run ends
//! ```
//!
//! An expectation is judged once the run is over, on every event of its timeline: it holds
//! when an event of that kind with those fields happened after the step started and within
//! the given time.

use std::collections::BTreeMap;
use std::time::Duration;

use ballast_model::fault::FieldError;
use ballast_model::units::HumanDuration;
use ballast_model::{Event, EventKind};
use serde::{Deserialize, Serialize};

use super::placeholders::Placeholders;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub event: String,
    #[serde(default, rename = "where")]
    pub fields: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub within: Option<HumanDuration>,
}

/// A checked expectation.
#[derive(Clone, Debug)]
pub struct Expectation {
    /// The expectation in words, for the summary.
    pub text: String,
    kind: String,
    fields: Vec<(String, serde_json::Value)>,
    /// The step's label (`method[1]`) as its events carry it.
    after: Option<String>,
    within: Option<Duration>,
}

/// One expectation's verdict, as `summary.json` keeps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub expect: String,
    pub passed: bool,
    /// When the matching event happened, in milliseconds after the window opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ExpectSpec {
    /// Check against the event kinds there are and the experiment's steps (label, name).
    pub fn check(&self, steps: &[(String, Option<String>)]) -> Result<Expectation, Vec<FieldError>> {
        let mut errors = Vec::new();
        if !EventKind::NAMES.contains(&self.event.as_str()) {
            errors.push(FieldError {
                field: "event".into(),
                message: format!("{:?} is not an event kind", self.event),
                fix: format!("one of: {}", EventKind::NAMES.join(", ")),
            });
        }
        if let Some(fields) = EventKind::fields_of(&self.event) {
            let fields: Vec<&str> = fields.collect();
            for key in self.fields.keys().filter(|k| !fields.contains(&k.as_str())) {
                errors.push(FieldError {
                    field: format!("where.{key}"),
                    message: format!("{} events have no field {key:?}", self.event),
                    fix: match ballast_model::problems::did_you_mean(key, fields.iter().copied()) {
                        Some(f) => format!("did you mean {f:?}?"),
                        None => format!("one of: {}", fields.join(", ")),
                    },
                });
            }
        }
        let after = self.after.as_ref().and_then(|a| {
            let step = steps
                .iter()
                .find(|(label, name)| label == a || name.as_deref() == Some(a));
            if step.is_none() {
                let known: Vec<String> = steps
                    .iter()
                    .map(|(label, name)| name.clone().unwrap_or_else(|| label.clone()))
                    .collect();
                errors.push(FieldError {
                    field: "after".into(),
                    message: format!("no experiment step is called {a:?}"),
                    fix: if known.is_empty() {
                        "add an [experiment] with that step, or remove `after`".into()
                    } else {
                        format!("one of: {}", known.join(", "))
                    },
                });
            }
            step.map(|(label, _)| label.clone())
        });
        if self.within.is_some_and(|w| w.get().is_zero()) {
            errors.push(FieldError {
                field: "within".into(),
                message: "0s leaves no time for anything to happen".into(),
                fix: "a positive duration such as \"30s\"".into(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut text = self.event.clone();
        if !self.fields.is_empty() {
            let fields: Vec<String> = self.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            text += &format!(" ({})", fields.join(", "));
        }
        if let Some(w) = self.within {
            text += &format!(" within {w}");
        }
        text += &match &self.after {
            Some(a) => format!(" after {a:?} starts"),
            None => " during the run".to_owned(),
        };
        Ok(Expectation {
            text,
            kind: self.event.clone(),
            fields: self
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
                .collect(),
            after,
            within: self.within.map(|w| w.get()),
        })
    }
}

impl Expectation {
    /// With the run's placeholders filled into the expected field values.
    pub fn filled(mut self, p: &Placeholders) -> Self {
        self.text = p.fill(&self.text);
        for (_, v) in &mut self.fields {
            if let serde_json::Value::String(s) = v {
                *s = p.fill(s);
            }
        }
        self
    }

    /// Judge on the run's timeline (`run_started_ms`: the window's start without `after`).
    pub fn judge(&self, events: &[Event], run_started_ms: u64) -> Verdict {
        let verdict = |passed, seen_after_ms, note: Option<String>| Verdict {
            expect: self.text.clone(),
            passed,
            seen_after_ms,
            note,
        };
        let opened = match &self.after {
            None => run_started_ms,
            Some(label) => {
                let started = events
                    .iter()
                    .find(|e| matches!(&e.kind, EventKind::ExperimentStepStarted { step, .. } if step == label));
                match started {
                    Some(e) => e.at_ms,
                    None => return verdict(false, None, Some(format!("step {label} never started"))),
                }
            }
        };
        let first = events
            .iter()
            .filter(|e| e.at_ms >= opened && self.matches(e))
            .map(|e| e.at_ms - opened)
            .min();
        match (first, self.within) {
            (None, _) => verdict(false, None, Some("no such event".into())),
            (Some(after), Some(w)) if after > w.as_millis() as u64 => verdict(
                false,
                Some(after),
                Some(format!(
                    "it came {} after, later than {}",
                    HumanDuration(Duration::from_millis(after)),
                    HumanDuration(w)
                )),
            ),
            (Some(after), _) => verdict(true, Some(after), None),
        }
    }

    fn matches(&self, e: &Event) -> bool {
        let Ok(serde_json::Value::Object(v)) = serde_json::to_value(e) else {
            return false;
        };
        v.get("kind").and_then(|k| k.as_str()) == Some(self.kind.as_str())
            && self.fields.iter().all(|(k, want)| v.get(k) == Some(want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_model::slo::Severity;

    fn spec(text: &str) -> ExpectSpec {
        toml::from_str(text).unwrap()
    }

    fn steps() -> Vec<(String, Option<String>)> {
        vec![
            ("method[0]".into(), Some("slow patch".into())),
            ("method[1]".into(), None),
        ]
    }

    fn at(at_ms: u64, kind: EventKind) -> Event {
        Event {
            at_ms,
            source: "test".into(),
            kind,
        }
    }

    fn step_started(at_ms: u64, step: &str) -> Event {
        at(
            at_ms,
            EventKind::ExperimentStepStarted {
                experiment: "e".into(),
                step: step.into(),
                action: "x".into(),
            },
        )
    }

    fn firing(at_ms: u64, slo: &str, severity: Severity) -> Event {
        at(
            at_ms,
            EventKind::AlertFiring {
                slo: slo.into(),
                severity,
                burn_long: 20.0,
                burn_short: 20.0,
            },
        )
    }

    #[test]
    fn an_event_with_its_fields_within_the_time_after_the_step() {
        let e = spec(
            r#"event = "alert_firing"
               where = { slo = "checkout", severity = "page" }
               after = "slow patch"
               within = "30s""#,
        )
        .check(&steps())
        .unwrap();
        assert_eq!(
            e.text,
            r#"alert_firing (severity="page", slo="checkout") within 30s after "slow patch" starts"#
        );
        let before = firing(500, "checkout", Severity::Page);
        let ticket = firing(2_000, "checkout", Severity::Ticket);
        let other = firing(3_000, "catalog", Severity::Page);
        let page = firing(21_000, "checkout", Severity::Page);
        let all = [before.clone(), step_started(1_000, "method[0]"), ticket, other, page];
        let v = e.judge(&all, 0);
        assert!(v.passed, "{v:?}");
        assert_eq!(v.seen_after_ms, Some(20_000));
        // Too late, before the step only, or the step never ran: not held.
        let late = [
            step_started(1_000, "method[0]"),
            firing(40_000, "checkout", Severity::Page),
        ];
        assert!(!e.judge(&late, 0).passed);
        assert!(!e.judge(&[before.clone(), step_started(1_000, "method[0]")], 0).passed);
        let v = e.judge(&[before], 0);
        assert_eq!(v.note.as_deref(), Some("step method[0] never started"));
    }

    #[test]
    fn without_after_the_window_opens_at_the_run_start() {
        let e = spec(r#"event = "endpoint_ejected""#).check(&[]).unwrap();
        let ejected = at(
            7_000,
            EventKind::EndpointEjected {
                cluster: "shop".into(),
                endpoint: "127.0.0.1:1".into(),
                reason: "consecutive-gateway-errors".into(),
                until_ms: 9_000,
            },
        );
        assert!(e.judge(std::slice::from_ref(&ejected), 5_000).passed);
        assert!(!e.judge(&[ejected], 8_000).passed);
    }

    #[test]
    fn unknown_kinds_fields_steps_and_zero_windows_are_named() {
        let errors = spec(
            r#"event = "alert_fired"
            after = "nope"
            within = "0s""#,
        )
        .check(&steps())
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["event", "after", "within"]);
        assert!(errors[0].fix.contains("alert_firing"));
        assert_eq!(errors[1].fix, "one of: slow patch, method[1]");
        // A field the kind does not have is named, with the likely one.
        let errors = spec(
            r#"event = "endpoint_ejected"
            where = { endpont = "x", cluster = "shop" }"#,
        )
        .check(&[])
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "where.endpont");
        assert_eq!(errors[0].fix, "did you mean \"endpoint\"?");
    }

    #[test]
    fn placeholders_fill_the_expected_values() {
        let e = spec(
            r#"event = "endpoint_restored"
            where = { endpoint = "{{demo_upstream.1}}" }"#,
        )
        .check(&[])
        .unwrap();
        let mut p = Placeholders::default();
        p.set_demo_upstreams(&["127.0.0.1:1".into(), "127.0.0.1:2".into()]);
        let e = e.filled(&p);
        let restored = |endpoint: &str| {
            at(
                1,
                EventKind::EndpointRestored {
                    cluster: "shop".into(),
                    endpoint: endpoint.into(),
                },
            )
        };
        assert!(e.judge(&[restored("127.0.0.1:2")], 0).passed);
        assert!(!e.judge(&[restored("127.0.0.1:1")], 0).passed);
    }
}
