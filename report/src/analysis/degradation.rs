//! When a route was degraded, second by second, against its own baseline (the rule is in the
//! crate's documentation, [`crate`]).

use std::collections::BTreeMap;

use super::Rules;
use crate::load::{Run, SecondFigures};

/// What a route looked like before anything was done to it, and the limits derived from it.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteBaseline {
    /// Median of the per-second error rates over the baseline seconds.
    pub error_rate: f64,
    /// Median of the per-second p99 latencies.
    pub p99_ms: f64,
    /// A second above either limit is degraded.
    pub error_limit: f64,
    pub p99_limit_ms: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    /// The seconds `[from_s, to_s)` the baseline is taken over: before the first fault, or
    /// the whole run (the median then shrugs off an incident shorter than half of it).
    pub from_s: u64,
    pub to_s: u64,
    pub routes: BTreeMap<String, RouteBaseline>,
}

/// Why a second was degraded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reason {
    Errors { rate: f64, limit: f64 },
    Latency { p99_ms: f64, limit_ms: f64 },
}

/// Per route and second: why it was degraded, `None` when it was not (or had too few
/// requests to judge).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Degradation {
    pub seconds: u64,
    pub routes: BTreeMap<String, Vec<Option<Reason>>>,
}

impl Degradation {
    /// Some route was degraded in second `s`.
    pub fn any(&self, s: u64) -> bool {
        self.routes
            .values()
            .any(|v| v.get(s as usize).is_some_and(Option::is_some))
    }

    /// The first route (by name) degraded in second `s`, and why.
    pub fn first(&self, s: u64) -> Option<(&str, Reason)> {
        self.routes
            .iter()
            .find_map(|(r, v)| v.get(s as usize).copied().flatten().map(|why| (r.as_str(), why)))
    }

    /// The first second at or after `from_s` that starts `onset_s` degraded seconds in a row.
    pub fn onset(&self, from_s: u64, onset_s: u64) -> Option<u64> {
        let onset_s = onset_s.max(1);
        (from_s..self.seconds.saturating_sub(onset_s - 1)).find(|&s| (s..s + onset_s).all(|t| self.any(t)))
    }

    /// The seconds of `route` degraded within `[from_s, to_s)`: the first and the last.
    pub fn span_of(&self, route: &str, from_s: u64, to_s: u64) -> Option<(u64, u64)> {
        let v = self.routes.get(route)?;
        let hits = (from_s..to_s.min(self.seconds)).filter(|&s| v[s as usize].is_some());
        let mut hits = hits.peekable();
        let first = *hits.peek()?;
        Some((first, hits.last().unwrap_or(first)))
    }
}

pub fn baseline(run: &Run, rules: &Rules, first_fault_s: Option<u64>) -> Baseline {
    // A baseline needs a few seconds; a fault in the first three leaves the whole run.
    let to_s = first_fault_s
        .filter(|&s| s >= 3)
        .unwrap_or(run.seconds)
        .min(run.seconds);
    let routes = run
        .routes()
        .into_iter()
        .filter_map(|route| {
            let seconds = run.client(&route)?;
            let judged: Vec<&SecondFigures> = seconds[..to_s as usize]
                .iter()
                .filter(|f| f.requests >= rules.min_requests)
                .collect();
            let error_rate = median(judged.iter().map(|f| f.error_rate()).collect());
            let p99_ms = median(judged.iter().map(|f| f.p99_ms).collect());
            Some((
                route,
                RouteBaseline {
                    error_rate,
                    p99_ms,
                    error_limit: (rules.error_factor * error_rate).max(error_rate + rules.error_margin),
                    p99_limit_ms: (rules.latency_factor * p99_ms).max(p99_ms + rules.latency_margin_ms),
                },
            ))
        })
        .collect();
    Baseline {
        from_s: 0,
        to_s,
        routes,
    }
}

/// Judge every second of every route against its baseline.
pub fn judge(run: &Run, baseline: &Baseline, rules: &Rules) -> Degradation {
    let routes = baseline
        .routes
        .iter()
        .filter_map(|(route, b)| {
            let seconds = run.client(route)?;
            let verdicts = seconds
                .iter()
                .map(|f| {
                    if f.requests < rules.min_requests {
                        None
                    } else if f.error_rate() > b.error_limit {
                        Some(Reason::Errors {
                            rate: f.error_rate(),
                            limit: b.error_limit,
                        })
                    } else if f.p99_ms > b.p99_limit_ms {
                        Some(Reason::Latency {
                            p99_ms: f.p99_ms,
                            limit_ms: b.p99_limit_ms,
                        })
                    } else {
                        None
                    }
                })
                .collect();
            Some((route.clone(), verdicts))
        })
        .collect();
    Degradation {
        seconds: run.seconds,
        routes,
    }
}

/// The median (the mean of the middle two for an even count); 0 without values.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onset_needs_consecutive_seconds() {
        let e = Some(Reason::Errors { rate: 0.5, limit: 0.01 });
        let d = Degradation {
            seconds: 8,
            routes: BTreeMap::from([
                ("a".into(), vec![None, e, None, None, e, None, None, None]),
                ("b".into(), vec![None, None, None, None, None, e, e, None]),
            ]),
        };
        assert_eq!(d.onset(0, 2), Some(4), "a at 4 and b at 5 make two in a row");
        assert_eq!(d.onset(0, 3), Some(4));
        assert_eq!(d.onset(0, 4), None);
        assert_eq!(d.onset(0, 1), Some(1));
        assert_eq!(d.span_of("b", 0, 8), Some((5, 6)));
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
