//! What the load generator reports: per-second snapshots while it runs (the live feed the
//! scenario runner and the TUI read) and the results of a whole run (`results.json`).
//!
//! Counts and latencies are kept in a [`Tally`]: requests, failures by [`Failure`] class,
//! responses by status, and an HDR latency histogram in microseconds (the sidecar's bounds, so
//! client and sidecar histograms add and subtract alike). Histograms add exactly, so the load
//! of several machines merges by adding their tallies.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ErrorClass;
use crate::stats::Latency;

/// Why a request failed, as the load generator saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// A transport failure classified like the sidecar classifies its own (connect refused,
    /// timeout, reset, ...), or the class a sidecar named in its `ballast-error` header.
    Class(ErrorClass),
    /// An answer with a status the transaction does not expect, without a `ballast-error`
    /// header to say why.
    UnexpectedStatus,
}

impl Failure {
    /// Every failure class, in a stable order (the `timeseries.csv` error columns).
    pub fn all() -> impl Iterator<Item = Failure> {
        ErrorClass::ALL
            .into_iter()
            .map(Failure::Class)
            .chain([Failure::UnexpectedStatus])
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Failure::Class(c) => c.as_str(),
            Failure::UnexpectedStatus => "unexpected-status",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Failure {
    type Err = crate::error_class::UnknownErrorClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "unexpected-status" {
            return Ok(Failure::UnexpectedStatus);
        }
        s.parse().map(Failure::Class)
    }
}

impl Serialize for Failure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Failure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Requests, their outcomes and their latency, over a second, a run, or one transaction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub requests: u64,
    /// Requests that failed: a transport failure or an unexpected status.
    pub failed: u64,
    /// Answers by status code (`"200"`); requests without an answer are not here.
    #[serde(default)]
    pub by_status: BTreeMap<String, u64>,
    #[serde(default)]
    pub by_error: BTreeMap<Failure, u64>,
    /// Latency in microseconds: from the intended send time in the open model, from the actual
    /// send time in the closed model, to the end of the response body.
    pub latency: Latency,
}

impl Tally {
    pub fn record(&mut self, latency_us: u64, status: Option<u16>, failure: Option<Failure>) {
        self.requests += 1;
        if let Some(status) = status {
            *self.by_status.entry(status.to_string()).or_default() += 1;
        }
        if let Some(f) = failure {
            self.failed += 1;
            *self.by_error.entry(f).or_default() += 1;
        }
        self.latency.0.saturating_record(latency_us.max(1));
    }

    /// Add another tally (another second, another machine).
    pub fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.failed += other.failed;
        for (k, v) in &other.by_status {
            *self.by_status.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.by_error {
            *self.by_error.entry(*k).or_default() += v;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.0.add(&other.latency.0);
    }

    /// Failed requests over all requests (0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failed as f64 / self.requests as f64
        }
    }

    /// A latency quantile (0..=1) in milliseconds, 0 without requests.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latency.0.is_empty() {
            return 0.0;
        }
        self.latency.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn percentiles(&self) -> Percentiles {
        let h = &self.latency.0;
        let empty = h.is_empty();
        Percentiles {
            min: if empty { 0.0 } else { h.min() as f64 / 1000.0 },
            mean: if empty { 0.0 } else { h.mean() / 1000.0 },
            p50: self.quantile_ms(0.5),
            p90: self.quantile_ms(0.9),
            p95: self.quantile_ms(0.95),
            p99: self.quantile_ms(0.99),
            p999: self.quantile_ms(0.999),
            max: if empty { 0.0 } else { h.max() as f64 / 1000.0 },
        }
    }
}

/// Latency percentiles in milliseconds, for people and dashboards (the histogram is exact).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// One second of a run: what completed in it. The live feed sends one per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the run started: this covers `[second, second + 1)`.
    pub second: u64,
    /// When the second started, Unix milliseconds.
    pub at_ms: u64,
    /// What the load shape asked for at the middle of the second: users (closed model) or
    /// requests per second (open model).
    pub target: f64,
    /// Requests in flight when the second closed.
    pub in_flight: u64,
    /// Every transaction together.
    pub all: Tally,
    /// The same per transaction (only those with requests in this second).
    #[serde(default)]
    pub transactions: BTreeMap<String, Tally>,
}

/// How the arrivals are driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// A number of users, each sending its next request when the previous one is done.
    Closed,
    /// Requests at a rate, whatever the answers do.
    Open,
}

/// Why a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum EndedBy {
    /// Its duration or iteration count ran out.
    Completed,
    /// Stopped from outside (Ctrl-C, the scenario runner).
    Canceled,
    /// A threshold with `abort_after` failed over that window.
    Aborted { threshold: String },
}

/// One threshold's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    /// As written, e.g. `p95{transaction="checkout"} < 200ms`.
    pub expr: String,
    /// The measured value, in the threshold's unit (milliseconds for latencies); `None`
    /// when nothing was measured (no requests of that transaction).
    pub observed: Option<f64>,
    pub passed: bool,
}

/// A whole run, as `results.json` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The profile's name.
    pub name: String,
    pub model: Model,
    /// When the load started, Unix milliseconds.
    pub started_at_ms: u64,
    /// From the start of the load to the last answer, seconds.
    pub duration_s: f64,
    pub ended_by: EndedBy,
    pub requests: u64,
    pub failed: u64,
    /// Requests per second over the whole run.
    pub rps: f64,
    pub error_rate: f64,
    /// Latency percentiles of every request, ms.
    pub latency_ms: Percentiles,
    /// Every request (the histogram and counts behind the figures above).
    pub all: Tally,
    pub transactions: BTreeMap<String, TransactionResults>,
    pub thresholds: Vec<ThresholdOutcome>,
    /// One entry per second of the run.
    pub timeline: Vec<Second>,
}

impl Results {
    /// Every threshold held and the run was not aborted.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed) && !matches!(self.ended_by, EndedBy::Aborted { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionResults {
    pub rps: f64,
    pub latency_ms: Percentiles,
    #[serde(flatten)]
    pub tally: Tally,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_named_like_error_classes() {
        for f in Failure::all() {
            assert_eq!(f.as_str().parse::<Failure>().unwrap(), f);
        }
        assert_eq!(
            Failure::Class(ErrorClass::ConnectRefused).to_string(),
            "connect-refused"
        );
        assert_eq!(
            serde_json::to_string(&Failure::UnexpectedStatus).unwrap(),
            "\"unexpected-status\""
        );
    }

    #[test]
    fn tallies_add_and_round_trip() {
        let mut a = Tally::default();
        a.record(1_000, Some(200), None);
        a.record(3_000, Some(503), Some(Failure::UnexpectedStatus));
        let mut b = Tally::default();
        b.record(2_000, None, Some(Failure::Class(ErrorClass::ConnectRefused)));
        a.add(&b);
        assert_eq!((a.requests, a.failed), (3, 2));
        assert_eq!(a.by_status["503"], 1);
        assert_eq!(a.by_error[&Failure::Class(ErrorClass::ConnectRefused)], 1);
        assert!((a.error_rate() - 2.0 / 3.0).abs() < 1e-9);
        assert!((a.quantile_ms(1.0) - 3.0).abs() < 0.01);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Tally>(&json).unwrap(), a);
    }
}
