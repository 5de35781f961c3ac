//! Experiments as people write them (TOML): serde types, unknown fields refused. A file is
//! either an experiment at its top level or a scenario whose `[experiment]` table is one; the
//! `[[slo]]` tables beside it are the SLOs its probes may name.
//!
//! ```toml
//! title = "checkout survives a flaky payment provider"
//! steady_state = [{ slo = "checkout-availability", burn_rate_below = 2.0 }]
//! abort = [{ slo = "checkout-availability", burn_rate_above = 50.0, for = "10s" }]
//!
//! [[method]]
//! at = "40s"
//! duration = "30s"
//! fault = { kind = "abort", status = 503, percent = 20, route = "checkout", position = "upstream" }
//! ```
//!
//! [`crate::experiment::Experiment::from_spec`] checks a spec into what runs.

use std::collections::BTreeMap;
use std::fmt;

use ballast_model::FaultSpec;
use ballast_model::units::{ByteSize, HumanDuration};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// One experiment as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// How often the hypothesis and the abort conditions are checked during the method
    /// (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<HumanDuration>,
    /// After the method and its rollbacks, how long the steady state may take to come back
    /// (default: the longest probe window plus one interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<HumanDuration>,
    /// Probes that must all hold before, during and after the method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steady_state: Vec<ProbeSpec>,
    /// Actions at offsets from the experiment's start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub method: Vec<StepSpec>,
    /// Actions run once the method is over, whatever ended it (after each action's own undo).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollbacks: Vec<StepSpec>,
    /// Conditions that end the experiment early when they hold (for `for`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abort: Vec<ProbeSpec>,
}

/// A probe: what is measured and the bound it is compared with. Exactly one of `route`
/// (or neither: every route), `slo` and `http` says what; exactly one bound says how.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// A name for the journal (default: the probe in words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// The sidecar's traffic of this route (every route but unmatched requests when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// An SLO of the file (`[[slo]]`), measured by its SLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// An HTTP request to this URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,

    /// Stats probes: the window measured, ending now (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<HumanDuration>,
    /// Stats probes: fewer requests in the window and the probe does not hold (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,

    // Bounds of route probes: ratios, latencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_below: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_below: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_above: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_below: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_above: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_below: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_above: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_below: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_above: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_below: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_above: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_below: Option<HumanDuration>,
    /// Tries per request of a route: (requests + retries) / requests, the retry
    /// amplification an upstream sees (an upper bound when requests are refused before a try).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries_per_request_above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries_per_request_below: Option<f64>,

    // Bounds of SLO probes.
    /// The error ratio over `over` divided by the SLO's error budget ratio (1 - objective).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate_above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate_below: Option<f64>,
    /// The SLO's SLI (good / total) over `over`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sli_above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sli_below: Option<f64>,

    // HTTP probes: the request...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// ...how long to wait for the answer (default 5s)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// ...and what a healthy answer is: this status or one of these (default any 2xx),
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Statuses>,
    /// a body matching this regular expression,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_matches: Option<String>,
    /// answered within this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_below: Option<HumanDuration>,

    /// Abort conditions: how long the condition must hold before the experiment is aborted
    /// (default: at once).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub sustain: Option<HumanDuration>,
}

/// One status (`status = 200`) or several (`status = [200, 204]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statuses(pub Vec<u16>);

impl Serialize for Statuses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_u16(*one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Statuses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Statuses;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an HTTP status such as 200, or a list such as [200, 204]")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Statuses, E> {
                u16::try_from(v)
                    .map(|s| Statuses(vec![s]))
                    .map_err(|_| E::custom(format!("{v} is not an HTTP status")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Statuses, E> {
                self.visit_i64(v.min(i64::MAX as u64) as i64)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Statuses, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Statuses)
            }
        }
        d.deserialize_any(V)
    }
}

/// One step of the method (or of the rollbacks): exactly one action, when and for how long.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// A name for the journal (default: the action in words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Offset from the experiment's start; right after the previous step when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<HumanDuration>,
    /// How long the action lasts before it is undone; until the method ends when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,

    /// A sidecar fault or TCP toxic, put in place on every sidecar through the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultSpec>,
    /// Send a process SIGKILL (or `signal`); with a duration it is restarted after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<ProcessRef>,
    /// With `kill`: the signal, e.g. "SIGTERM".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Freeze a process (SIGSTOP); it is continued (SIGCONT) when the step ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<ProcessRef>,
    /// Continue a stopped process (SIGCONT).
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub resume: Option<ProcessRef>,
    /// Restart a process the scenario spawned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<ProcessRef>,
    /// Busy threads in ballast's own process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_stress: Option<CpuStressSpec>,
    /// Memory held (and touched) by ballast's own process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_stress: Option<ByteSize>,
    /// A demo upstream's behaviour for one path (a bad deploy), restored when the step ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo_upstream: Option<DemoUpstreamSpec>,
    /// Wait this long, doing nothing (the next step without `at` starts after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<HumanDuration>,
    /// Rollbacks: remove every fault added through the sidecars' admin APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_faults: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuStressSpec {
    /// Busy threads, each spinning on a core.
    pub threads: usize,
}

/// `demo_upstream = { url = "http://127.0.0.1:8081", path = "/api/checkout", behaviour = {...} }`,
/// or `{ url = ..., reset = true }` (rollbacks: back to its start-up behaviours).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoUpstreamSpec {
    /// The demo upstream's base URL.
    pub url: String,
    /// The path prefix whose behaviour changes (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The new behaviour: `p50`, `p99`, `error_rate`, `error_status`, `size` (see
    /// `ballast demo-upstream`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

/// A process: by the name the scenario runner registered it under (`"endpoint-b"`), or by a
/// pid file (`{ pid_file = "/run/app.pid" }`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProcessRef {
    Name(String),
    PidFile(String),
}

impl fmt::Display for ProcessRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessRef::Name(n) => write!(f, "process {n:?}"),
            ProcessRef::PidFile(p) => write!(f, "the process of pid file {p}"),
        }
    }
}

impl Serialize for ProcessRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ProcessRef::Name(n) => s.serialize_str(n),
            ProcessRef::PidFile(p) => BTreeMap::from([("pid_file", p)]).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ProcessRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = ProcessRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a process name, or { pid_file = \"/path/to/file.pid\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ProcessRef, E> {
                Ok(ProcessRef::Name(v.to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<ProcessRef, A::Error> {
                let mut pid_file = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "pid_file" => pid_file = Some(map.next_value::<String>()?),
                        other => return Err(de::Error::unknown_field(other, &["pid_file"])),
                    }
                }
                pid_file
                    .map(ProcessRef::PidFile)
                    .ok_or_else(|| de::Error::missing_field("pid_file"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_names_or_pid_files() {
        #[derive(Deserialize)]
        struct T {
            kill: ProcessRef,
            stop: ProcessRef,
        }
        let t: T = toml::from_str("kill = \"b\"\nstop = { pid_file = \"/run/x.pid\" }").unwrap();
        assert_eq!(t.kill, ProcessRef::Name("b".into()));
        assert_eq!(t.stop, ProcessRef::PidFile("/run/x.pid".into()));
        let err = toml::from_str::<T>("kill = \"b\"\nstop = { pidfile = \"x\" }")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown field `pidfile`, expected `pid_file`"), "{err}");
    }

    #[test]
    fn statuses_are_one_or_a_list() {
        let p: ProbeSpec = toml::from_str("http = \"http://x\"\nstatus = 204").unwrap();
        assert_eq!(p.status, Some(Statuses(vec![204])));
        let p: ProbeSpec = toml::from_str("http = \"http://x\"\nstatus = [200, 301]").unwrap();
        assert_eq!(p.status, Some(Statuses(vec![200, 301])));
    }
}
