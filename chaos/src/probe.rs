//! Probes: a measurement and a bound. Stats probes read the sidecars' windows over the last
//! `over` (availability, error rate and latency percentiles of a route, exactly from the HDR
//! histograms; SLI and burn rate of an SLO, counted as the SLO engine counts them); HTTP
//! probes send one request and judge the answer (status, body, latency).
//!
//! A stats probe's condition is its comparison (`burn_rate_above = 50`: the burn rate is above
//! 50). An HTTP probe's condition is a healthy answer. In the steady state every condition must
//! hold; as an abort condition a stats probe triggers when its comparison holds and an HTTP
//! probe when its answer is unhealthy, so both read as written.
//!
//! Without requests in the window nothing failed: availability and SLI count as 1, error rate
//! and burn rate as 0, and a latency has no value (a `_below` bound holds, an `_above` one
//! does not). `min_requests` turns too little traffic into a probe that does not hold.

use std::fmt;
use std::time::Duration;

use ballast_model::fault::FieldError;
use ballast_model::slo::SloSpec;
use ballast_model::units::HumanDuration;
use ballast_slo_engine::Counts;
use ballast_slo_engine::source::{sidecar_counts, sidecar_latency};
use serde::{Deserialize, Serialize};

use crate::observe::{HttpAnswer, Observe};
use crate::spec::ProbeSpec;

/// Stats probes look at the last 30 s unless told otherwise.
pub const DEFAULT_OVER: Duration = Duration::from_secs(30);
/// HTTP probes wait 5 s for an answer unless told otherwise.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Probe {
    /// The probe in words, or the name it was given.
    pub name: String,
    pub kind: ProbeKind,
}

#[derive(Clone, Debug)]
pub enum ProbeKind {
    Stats(StatsProbe),
    Http(HttpProbe),
}

#[derive(Clone, Debug)]
pub struct StatsProbe {
    pub target: Target,
    pub measure: Measure,
    pub bound: Bound,
    pub over: Duration,
    pub min_requests: u64,
}

#[derive(Clone, Debug)]
pub enum Target {
    /// One route (every route but unmatched requests with `None`); the SLI specs that count
    /// its availability (5xx bad) and select its latencies.
    Routes {
        route: Option<String>,
        availability: Box<SloSpec>,
        latency: Box<SloSpec>,
    },
    Slo(Box<SloSpec>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measure {
    Availability,
    ErrorRate,
    /// A latency percentile (0.99 for p99), in milliseconds.
    Latency(f64),
    Sli,
    BurnRate,
    /// (requests + retries) / requests of a route.
    TriesPerRequest,
}

/// Strict bounds: `_below` is `<`, `_above` is `>`. Latencies in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    Below(f64),
    Above(f64),
}

impl Bound {
    fn holds(self, value: f64) -> bool {
        match self {
            Bound::Below(b) => value < b,
            Bound::Above(b) => value > b,
        }
    }
}

#[derive(Clone, Debug)]
pub struct HttpProbe {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub timeout: Duration,
    /// Healthy statuses; any 2xx when empty.
    pub statuses: Vec<u16>,
    pub body_matches: Option<regex::Regex>,
    pub latency_below: Option<Duration>,
}

/// A probe that ends the experiment when its condition holds for `sustain`.
#[derive(Clone, Debug)]
pub struct AbortCondition {
    pub probe: Probe,
    pub sustain: Duration,
}

/// One reading of a probe, as the journal keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub probe: String,
    /// Whether the probe's condition holds (a healthy answer, for HTTP probes).
    pub holds: bool,
    /// The measured value: a ratio, a burn rate, or milliseconds (`unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Requests (or SLI events) in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// HTTP probes: the answer's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the probe could not be read, or why the answer was not healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Probe {
    /// Read the probe once.
    pub async fn read(&self, observe: &dyn Observe) -> Reading {
        let mut r = Reading {
            probe: self.name.clone(),
            holds: false,
            value: None,
            unit: None,
            requests: None,
            status: None,
            note: None,
        };
        match &self.kind {
            ProbeKind::Stats(p) => p.read(observe, &mut r).await,
            ProbeKind::Http(p) => match observe.http(p).await {
                Ok(answer) => p.judge(&answer, &mut r),
                Err(e) => r.note = Some(e.to_string()),
            },
        }
        r
    }

    /// Whether a reading of this probe, as an abort condition, calls for an abort.
    pub fn triggers(&self, reading: &Reading) -> bool {
        match self.kind {
            ProbeKind::Stats(_) => reading.holds,
            // An HTTP probe describes a healthy answer: aborts are for unhealthy ones.
            ProbeKind::Http(_) => !reading.holds,
        }
    }

    /// The stats window this probe needs kept (zero for HTTP probes).
    pub fn window(&self) -> Duration {
        match &self.kind {
            ProbeKind::Stats(p) => p.over,
            ProbeKind::Http(_) => Duration::ZERO,
        }
    }
}

impl StatsProbe {
    async fn read(&self, observe: &dyn Observe, r: &mut Reading) {
        let result = match &self.target {
            Target::Routes {
                route,
                availability,
                latency,
            } => match observe.stats(self.over).await {
                Ok(windows) => {
                    if self.measure == Measure::TriesPerRequest {
                        let (mut requests, mut retries) = (0, 0);
                        for t in windows.iter().flat_map(|w| w.routes.iter()) {
                            if route.as_ref().is_none_or(|r| r == t.0) {
                                requests += t.1.counters.requests;
                                retries += t.1.counters.retries;
                            }
                        }
                        // Without requests nothing was retried.
                        let tries = if requests == 0 {
                            1.0
                        } else {
                            (requests + retries) as f64 / requests as f64
                        };
                        Ok((requests, Some(tries)))
                    } else if let Measure::Latency(q) = self.measure {
                        let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
                        for h in windows.iter().filter_map(|w| sidecar_latency(latency, w)) {
                            match &mut merged {
                                Some(m) => {
                                    let _ = m.add(&h);
                                }
                                None => merged = Some(h),
                            }
                        }
                        let requests = merged.as_ref().map_or(0, |h| h.len());
                        let ms = merged
                            .filter(|h| !h.is_empty())
                            .map(|h| h.value_at_quantile(q) as f64 / 1000.0);
                        Ok((requests, ms))
                    } else {
                        let counts = windows
                            .iter()
                            .filter_map(|w| sidecar_counts(availability, w))
                            .fold(Counts::default(), add);
                        Ok((counts.total, Some(self.ratio_value(counts))))
                    }
                }
                Err(e) => Err(e),
            },
            Target::Slo(slo) => match observe.slo_counts(slo, self.over).await {
                Ok(counts) => {
                    let value = match self.measure {
                        Measure::BurnRate => counts.ratio().map_or(0.0, |good| (1.0 - good) / (1.0 - slo.objective)),
                        _ => counts.ratio().unwrap_or(1.0),
                    };
                    Ok((counts.total, Some(value)))
                }
                Err(e) => Err(e),
            },
        };
        r.unit = Some(
            match self.measure {
                Measure::Latency(_) => "ms",
                Measure::BurnRate | Measure::TriesPerRequest => "x",
                _ => "ratio",
            }
            .to_owned(),
        );
        match result {
            Err(e) => r.note = Some(e.to_string()),
            Ok((requests, value)) => {
                r.requests = Some(requests);
                r.value = value;
                r.holds = match value {
                    Some(v) => self.bound.holds(v),
                    // No latency without requests: nothing was slow, nothing was fast.
                    None => matches!(self.bound, Bound::Below(_)),
                };
                if requests < self.min_requests {
                    r.holds = false;
                    r.note = Some(format!(
                        "{requests} requests, fewer than min_requests = {}",
                        self.min_requests
                    ));
                }
            }
        }
    }

    /// Availability or error rate of route counts; without requests nothing failed.
    fn ratio_value(&self, c: Counts) -> f64 {
        let good = c.ratio().unwrap_or(1.0);
        match self.measure {
            Measure::ErrorRate => 1.0 - good,
            _ => good,
        }
    }
}

fn add(a: Counts, b: Counts) -> Counts {
    Counts {
        good: a.good + b.good,
        total: a.total + b.total,
    }
}

impl HttpProbe {
    fn judge(&self, answer: &HttpAnswer, r: &mut Reading) {
        r.status = Some(answer.status);
        r.value = Some(answer.latency.as_secs_f64() * 1000.0);
        r.unit = Some("ms".to_owned());
        let status_ok = if self.statuses.is_empty() {
            (200..300).contains(&answer.status)
        } else {
            self.statuses.contains(&answer.status)
        };
        let mut problems = Vec::new();
        if !status_ok {
            problems.push(format!("status {}", answer.status));
        }
        if let Some(re) = &self.body_matches
            && !re.is_match(&answer.body)
        {
            problems.push(format!("body does not match /{re}/"));
        }
        if let Some(limit) = self.latency_below
            && answer.latency >= limit
        {
            problems.push(format!(
                "answered in {}, not below {}",
                HumanDuration(answer.latency),
                HumanDuration(limit)
            ));
        }
        r.holds = problems.is_empty();
        if !problems.is_empty() {
            r.note = Some(problems.join("; "));
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Below(v) => write!(f, "< {v}"),
            Bound::Above(v) => write!(f, "> {v}"),
        }
    }
}

/// The probe in words: `availability of route api over 30s > 0.99`.
fn describe(kind: &ProbeKind) -> String {
    match kind {
        ProbeKind::Stats(p) => {
            let what = match p.measure {
                Measure::Availability => "availability".to_owned(),
                Measure::ErrorRate => "error rate".to_owned(),
                Measure::Latency(q) => quantile_name(q),
                Measure::Sli => "SLI".to_owned(),
                Measure::BurnRate => "burn rate".to_owned(),
                Measure::TriesPerRequest => "tries per request".to_owned(),
            };
            let of = match &p.target {
                Target::Routes { route: Some(r), .. } => format!("route {r}"),
                Target::Routes { route: None, .. } => "every route".to_owned(),
                Target::Slo(slo) => format!("SLO {}", slo.name),
            };
            let bound = match (p.measure, p.bound) {
                (Measure::Latency(_), Bound::Below(ms)) => format!("< {}", ms_text(ms)),
                (Measure::Latency(_), Bound::Above(ms)) => format!("> {}", ms_text(ms)),
                (_, b) => b.to_string(),
            };
            let mut text = format!("{what} of {of} over {} {bound}", HumanDuration(p.over));
            if p.min_requests > 0 {
                text.push_str(&format!(" (at least {} requests)", p.min_requests));
            }
            text
        }
        ProbeKind::Http(p) => {
            let statuses = if p.statuses.is_empty() {
                "2xx".to_owned()
            } else {
                p.statuses.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
            };
            let mut text = format!("{} {} answers {statuses}", p.method, p.url);
            if let Some(re) = &p.body_matches {
                text.push_str(&format!(" matching /{re}/"));
            }
            if let Some(l) = p.latency_below {
                text.push_str(&format!(" within {}", HumanDuration(l)));
            }
            text
        }
    }
}

fn quantile_name(q: f64) -> String {
    match q {
        0.999 => "p99.9".to_owned(),
        q => format!("p{}", (q * 100.0).round()),
    }
}

fn ms_text(ms: f64) -> String {
    HumanDuration(Duration::from_secs_f64(ms / 1000.0)).to_string()
}

/// Where a probe is written, for checks that differ between the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    SteadyState,
    Abort,
}

/// Check a probe as written; errors name fields relative to the probe (`burn_rate_below`).
pub fn check(spec: &ProbeSpec, slos: &[SloSpec], context: Context) -> Result<(Probe, Duration), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String, fix: &str| {
        errors.push(FieldError {
            field: field.to_owned(),
            message,
            fix: fix.to_owned(),
        })
    };
    let sustain = spec.sustain.map_or(Duration::ZERO, HumanDuration::get);
    if spec.sustain.is_some() && context == Context::SteadyState {
        err(
            "for",
            "`for` applies to abort conditions only".into(),
            "remove it: the steady state must hold at every check",
        );
    }
    let targets: Vec<&str> = [
        ("route", spec.route.is_some()),
        ("slo", spec.slo.is_some()),
        ("http", spec.http.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if targets.len() > 1 {
        err(
            targets[1],
            format!("a probe measures one thing; {} are given", targets.join(" and ")),
            "split it into one probe per target",
        );
    }
    let ratio_bounds = [
        (
            "availability_above",
            spec.availability_above,
            Measure::Availability,
            true,
        ),
        (
            "availability_below",
            spec.availability_below,
            Measure::Availability,
            false,
        ),
        ("error_rate_above", spec.error_rate_above, Measure::ErrorRate, true),
        ("error_rate_below", spec.error_rate_below, Measure::ErrorRate, false),
        ("sli_above", spec.sli_above, Measure::Sli, true),
        ("sli_below", spec.sli_below, Measure::Sli, false),
        ("burn_rate_above", spec.burn_rate_above, Measure::BurnRate, true),
        ("burn_rate_below", spec.burn_rate_below, Measure::BurnRate, false),
        (
            "tries_per_request_above",
            spec.tries_per_request_above,
            Measure::TriesPerRequest,
            true,
        ),
        (
            "tries_per_request_below",
            spec.tries_per_request_below,
            Measure::TriesPerRequest,
            false,
        ),
    ];
    let latency_bounds = [
        ("p50_above", spec.p50_above, 0.5, true),
        ("p50_below", spec.p50_below, 0.5, false),
        ("p90_above", spec.p90_above, 0.9, true),
        ("p90_below", spec.p90_below, 0.9, false),
        ("p95_above", spec.p95_above, 0.95, true),
        ("p95_below", spec.p95_below, 0.95, false),
        ("p99_above", spec.p99_above, 0.99, true),
        ("p99_below", spec.p99_below, 0.99, false),
        ("p999_above", spec.p999_above, 0.999, true),
        ("p999_below", spec.p999_below, 0.999, false),
    ];
    let mut bounds: Vec<(&str, Measure, Bound)> = Vec::new();
    for (field, value, measure, above) in ratio_bounds {
        if let Some(v) = value {
            let ratio = !matches!(measure, Measure::BurnRate | Measure::TriesPerRequest);
            if !v.is_finite() || v < 0.0 || (ratio && v > 1.0) {
                let range = if ratio { "0-1" } else { "0 or more" };
                err(
                    field,
                    format!("{v} is outside {range}"),
                    match measure {
                        Measure::BurnRate => {
                            "write a burn rate such as 2.0 (1 spends the budget exactly over the SLO's window)"
                        }
                        Measure::TriesPerRequest => "write tries per request such as 1.25 (1: no retries)",
                        _ => "write a ratio such as 0.99 (not a percentage)",
                    },
                );
            }
            bounds.push((field, measure, if above { Bound::Above(v) } else { Bound::Below(v) }));
        }
    }
    for (field, value, q, above) in latency_bounds {
        if let Some(d) = value {
            let ms = d.get().as_secs_f64() * 1000.0;
            if d.get().is_zero() && !above {
                err(
                    field,
                    "is zero: no latency is below it".into(),
                    "give a duration such as \"250ms\"",
                );
            }
            bounds.push((
                field,
                Measure::Latency(q),
                if above { Bound::Above(ms) } else { Bound::Below(ms) },
            ));
        }
    }
    let http_fields = [
        ("method", spec.method.is_some()),
        ("headers", !spec.headers.is_empty()),
        ("body", spec.body.is_some()),
        ("timeout", spec.timeout.is_some()),
        ("status", spec.status.is_some()),
        ("body_matches", spec.body_matches.is_some()),
        ("latency_below", spec.latency_below.is_some()),
    ];
    let kind = if let Some(url) = &spec.http {
        for (field, _, _) in &bounds {
            err(
                field,
                "does not apply to HTTP probes".into(),
                "HTTP probes take status, body_matches and latency_below; measure a route or an SLO in a probe of its own",
            );
        }
        for (field, set) in [
            ("over", spec.over.is_some()),
            ("min_requests", spec.min_requests.is_some()),
        ] {
            if set {
                err(
                    field,
                    "does not apply to HTTP probes".into(),
                    "remove it: an HTTP probe is one request",
                );
            }
        }
        http_probe(spec, url, &mut err)
    } else {
        for (field, set) in http_fields {
            if set {
                err(
                    field,
                    "applies to HTTP probes only".into(),
                    "add `http = \"<url>\"`, or remove it",
                );
            }
        }
        stats_probe(spec, slos, &bounds, &mut err)
    };
    match (errors.is_empty(), kind) {
        (true, Some(kind)) => {
            let name = spec.name.clone().unwrap_or_else(|| describe(&kind));
            Ok((Probe { name, kind }, sustain))
        }
        _ => Err(errors),
    }
}

fn http_probe(spec: &ProbeSpec, url: &str, err: &mut impl FnMut(&str, String, &str)) -> Option<ProbeKind> {
    let mut ok = true;
    if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(url).is_err() {
        err(
            "http",
            format!("{url:?} is not an http(s) URL"),
            "write it like \"http://127.0.0.1:8080/healthz\"",
        );
        ok = false;
    }
    let method = spec.method.clone().unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        err(
            "method",
            format!("{method:?} is not an HTTP method"),
            "write it like \"GET\" or \"POST\"",
        );
        ok = false;
    }
    let statuses = spec.status.clone().map(|s| s.0).unwrap_or_default();
    for s in &statuses {
        if !(100..=599).contains(s) {
            err(
                "status",
                format!("{s} is not an HTTP status"),
                "give statuses between 100 and 599, e.g. 200",
            );
            ok = false;
        }
    }
    let body_matches = match spec.body_matches.as_deref().map(regex::Regex::new) {
        Some(Err(e)) => {
            err(
                "body_matches",
                format!("invalid regular expression: {e}"),
                "write a regular expression such as \"ok|healthy\"",
            );
            ok = false;
            None
        }
        Some(Ok(re)) => Some(re),
        None => None,
    };
    let timeout = spec.timeout.map_or(DEFAULT_HTTP_TIMEOUT, HumanDuration::get);
    if timeout.is_zero() {
        err("timeout", "is zero".into(), "give a duration such as \"2s\"");
        ok = false;
    }
    ok.then(|| {
        ProbeKind::Http(HttpProbe {
            url: url.to_owned(),
            method,
            headers: spec.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: spec.body.clone(),
            timeout,
            statuses,
            body_matches,
            latency_below: spec.latency_below.map(HumanDuration::get),
        })
    })
}

fn stats_probe(
    spec: &ProbeSpec,
    slos: &[SloSpec],
    bounds: &[(&str, Measure, Bound)],
    err: &mut impl FnMut(&str, String, &str),
) -> Option<ProbeKind> {
    let over = spec.over.map_or(DEFAULT_OVER, HumanDuration::get);
    if over.is_zero() {
        err("over", "is zero".into(), "give the window measured, such as \"30s\"");
    }
    let (field, measure, bound) = match bounds {
        [] => {
            let fix = if spec.slo.is_some() {
                "add burn_rate_below (or _above), or sli_above (or _below)"
            } else {
                "add one of availability_above, error_rate_below, p99_below (and their _above/_below forms), or give `slo` or `http`"
            };
            err("", "the probe has no bound to compare with".into(), fix);
            return None;
        }
        [one] => *one,
        [first, second, ..] => {
            err(
                second.0,
                format!("a probe has one bound; {} and {} are given", first.0, second.0),
                "split it into one probe per bound",
            );
            return None;
        }
    };
    let target = if let Some(name) = &spec.slo {
        if !matches!(measure, Measure::BurnRate | Measure::Sli) {
            err(
                field,
                "does not apply to an SLO probe".into(),
                "SLO probes take burn_rate_above/_below and sli_above/_below; use `route` for availability, error rate and latency",
            );
            return None;
        }
        match slos.iter().find(|s| &s.name == name) {
            Some(slo) => Target::Slo(Box::new(slo.clone())),
            None => {
                let known: Vec<String> = slos.iter().map(|s| format!("{:?}", s.name)).collect();
                let fix = if known.is_empty() {
                    "add an [[slo]] table with that name to the file".to_owned()
                } else {
                    format!("use one of {} or add an [[slo]] table with that name", known.join(", "))
                };
                err("slo", format!("no SLO named {name:?}"), &fix);
                return None;
            }
        }
    } else {
        if matches!(measure, Measure::BurnRate | Measure::Sli) {
            err(
                field,
                "needs an SLO".into(),
                "add `slo = \"<name of an [[slo]] table>\"`, or measure a route's availability or error rate",
            );
            return None;
        }
        let route = spec.route.clone();
        let sli = |sli: serde_json::Value| -> Box<SloSpec> {
            let spec = serde_json::json!({
                "name": "probe", "objective": 0.99, "window": "1h", "alerting": "none", "sli": sli,
            });
            Box::new(serde_json::from_value(spec).expect("a valid SLI spec"))
        };
        Target::Routes {
            availability: sli(serde_json::json!({ "availability": { "route": route } })),
            latency: sli(serde_json::json!({ "latency": { "route": route, "threshold": "1ms" } })),
            route,
        }
    };
    Some(ProbeKind::Stats(StatsProbe {
        target,
        measure,
        bound,
        over,
        min_requests: spec.min_requests.unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doubles::{Scripted, Traffic};

    fn probe(text: &str) -> Probe {
        let slos: Vec<SloSpec> = vec![
            toml::from_str(
                "name = \"avail\"\nobjective = 0.99\nwindow = \"1h\"\nsli = { availability = { route = \"api\" } }",
            )
            .unwrap(),
        ];
        let spec: ProbeSpec = toml::from_str(text).unwrap();
        check(&spec, &slos, Context::Abort).unwrap().0
    }

    fn errors(text: &str, context: Context) -> Vec<String> {
        let spec: ProbeSpec = toml::from_str(text).unwrap();
        check(&spec, &[], context)
            .unwrap_err()
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn probes_read_as_words() {
        assert_eq!(
            probe("route = \"api\"\navailability_above = 0.99").name,
            "availability of route api over 30s > 0.99"
        );
        assert_eq!(
            probe("route = \"api\"\np99_below = \"250ms\"\nover = \"10s\"").name,
            "p99 of route api over 10s < 250ms"
        );
        assert_eq!(
            probe("slo = \"avail\"\nburn_rate_below = 2.0").name,
            "burn rate of SLO avail over 30s < 2"
        );
        assert_eq!(
            probe("error_rate_below = 0.01\nmin_requests = 10").name,
            "error rate of every route over 30s < 0.01 (at least 10 requests)"
        );
        assert_eq!(
            probe("route = \"api\"\ntries_per_request_below = 1.25\nover = \"10s\"").name,
            "tries per request of route api over 10s < 1.25"
        );
        assert_eq!(
            probe("http = \"http://x/healthz\"\nstatus = [200, 204]\nbody_matches = \"ok\"\nlatency_below = \"1s\"")
                .name,
            "GET http://x/healthz answers 200 or 204 matching /ok/ within 1s"
        );
    }

    #[test]
    fn bad_probes_name_each_problem() {
        let e = errors(
            "route = \"api\"\nslo = \"x\"\navailability_above = 99.0\nfor = \"5s\"",
            Context::SteadyState,
        );
        assert!(
            e.contains(&"for: `for` applies to abort conditions only".to_owned()),
            "{e:?}"
        );
        assert!(
            e.contains(&"slo: a probe measures one thing; route and slo are given".to_owned()),
            "{e:?}"
        );
        assert!(e.contains(&"availability_above: 99 is outside 0-1".to_owned()), "{e:?}");
        let e = errors("route = \"api\"", Context::Abort);
        assert_eq!(e, [": the probe has no bound to compare with"]);
        let e = errors("slo = \"nope\"\nburn_rate_below = 1.0", Context::Abort);
        assert_eq!(e, ["slo: no SLO named \"nope\""]);
        let e = errors("route = \"a\"\nburn_rate_below = 1.0", Context::Abort);
        assert_eq!(e, ["burn_rate_below: needs an SLO"]);
        let e = errors(
            "http = \"ftp://x\"\np99_below = \"1s\"\nbody_matches = \"(\"",
            Context::Abort,
        );
        assert_eq!(e.len(), 3, "{e:?}");
        let e = errors("route = \"a\"\np99_below = \"1s\"\nstatus = 200", Context::Abort);
        assert_eq!(e, ["status: applies to HTTP probes only"]);
    }

    #[tokio::test(start_paused = true)]
    async fn route_probes_count_the_windows_of_their_route() {
        // 100 requests a second on `api`, 10% failing, each in 40 ms.
        let obs = Scripted::new(|_| Traffic {
            requests: 100,
            errors: 10,
            latency_ms: 40,
            retries: 20,
        });
        let r = probe("route = \"api\"\navailability_above = 0.95\nover = \"5s\"")
            .read(&obs)
            .await;
        assert_eq!(r.requests, Some(500));
        assert!((r.value.unwrap() - 0.9).abs() < 1e-9, "{r:?}");
        assert!(!r.holds);
        let r = probe("route = \"api\"\nerror_rate_above = 0.05").read(&obs).await;
        assert!(r.holds, "{r:?}");
        let r = probe("route = \"api\"\np99_below = \"50ms\"").read(&obs).await;
        assert!(r.holds && (r.value.unwrap() - 40.0).abs() < 0.1, "{r:?}");
        let r = probe("route = \"api\"\np50_above = \"50ms\"").read(&obs).await;
        assert!(!r.holds, "{r:?}");
        // 10% errors against a 1% budget: a burn rate of 10.
        let r = probe("slo = \"avail\"\nburn_rate_above = 9.9\nover = \"3s\"")
            .read(&obs)
            .await;
        assert!(r.holds && (r.value.unwrap() - 10.0).abs() < 1e-9, "{r:?}");
        // 20 retries for 100 requests: 1.2 tries each; other routes count nothing.
        let r = probe("route = \"api\"\ntries_per_request_below = 1.25")
            .read(&obs)
            .await;
        assert!(r.holds && (r.value.unwrap() - 1.2).abs() < 1e-9, "{r:?}");
        assert_eq!(r.unit.as_deref(), Some("x"));
        let r = probe("route = \"other\"\ntries_per_request_above = 1.0")
            .read(&obs)
            .await;
        assert!(!r.holds && r.value == Some(1.0), "{r:?}");
        let r = probe("route = \"api\"\navailability_above = 0.5\nmin_requests = 100000")
            .read(&obs)
            .await;
        assert!(
            !r.holds && r.note.as_deref().unwrap().contains("fewer than min_requests"),
            "{r:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_requests_nothing_failed() {
        let obs = Scripted::new(|_| Traffic::default());
        assert!(
            probe("route = \"api\"\navailability_above = 0.99")
                .read(&obs)
                .await
                .holds
        );
        assert!(probe("slo = \"avail\"\nburn_rate_below = 1.0").read(&obs).await.holds);
        assert!(probe("route = \"api\"\np99_below = \"1ms\"").read(&obs).await.holds);
        assert!(!probe("route = \"api\"\np99_above = \"1ms\"").read(&obs).await.holds);
    }

    #[tokio::test(start_paused = true)]
    async fn http_probes_judge_status_body_and_latency() {
        let obs = Scripted::new(|_| Traffic::default()).with_http(|_| {
            Ok(HttpAnswer {
                status: 200,
                latency: Duration::from_millis(30),
                body: "all ok".into(),
            })
        });
        let healthy = probe("http = \"http://x/\"\nbody_matches = \"ok$\"\nlatency_below = \"50ms\"");
        let r = healthy.read(&obs).await;
        assert!(r.holds && r.status == Some(200), "{r:?}");
        assert!(!healthy.triggers(&r), "a healthy answer does not abort");
        let r = probe("http = \"http://x/\"\nstatus = 204\nlatency_below = \"10ms\"")
            .read(&obs)
            .await;
        assert!(!r.holds);
        assert_eq!(r.note.as_deref(), Some("status 200; answered in 30ms, not below 10ms"));
    }
}
