//! Impact: who was hurt during the incident, and how much. Failed requests and their share,
//! per route and per error class, and the latency each route lost against the time before.

use super::latency::SpanStats;

#[derive(Clone, Debug, PartialEq)]
pub struct RouteImpact {
    pub route: String,
    pub requests: u64,
    pub failed: u64,
    pub share: f64,
    pub p99_before_ms: f64,
    pub p99_during_ms: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Impact {
    pub requests: u64,
    pub failed: u64,
    /// Failed over all requests during the incident.
    pub share: f64,
    pub routes: Vec<RouteImpact>,
    /// Error classes, most failures first, with their share of the failures.
    pub classes: Vec<(String, u64, f64)>,
    /// Failures by route and class during the incident, most first.
    pub by_route_and_class: Vec<(String, String, u64)>,
}

pub fn impact(before: &SpanStats, during: &SpanStats) -> Impact {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let routes = during
        .routes
        .iter()
        .map(|(route, d)| RouteImpact {
            route: route.clone(),
            requests: d.requests,
            failed: d.failed,
            share: d.error_rate(),
            p99_before_ms: before.routes.get(route).map_or(0.0, |b| b.p99_ms),
            p99_during_ms: d.p99_ms,
        })
        .collect();
    Impact {
        requests: during.all.requests,
        failed: during.all.failed,
        share: during.all.error_rate(),
        routes,
        classes: during
            .classes()
            .into_iter()
            .map(|(c, n)| (c, n, ratio(n, during.all.failed)))
            .collect(),
        by_route_and_class: during
            .errors
            .iter()
            .map(|e| (e.route.clone(), e.class.clone(), e.count))
            .collect(),
    }
}
