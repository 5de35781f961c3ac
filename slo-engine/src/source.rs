//! SLI counts from the sidecar's stats: how many of a window's requests were good, by the
//! SLO's SLI (those with `source = "sidecar"`, the default). Availability reads status classes and `ballast-error` classes; latency reads the
//! HDR histogram exactly at the threshold (to its 3 significant digits), not a bucket near it.
//!
//! A route selector picks one route; without one, every route but `(unmatched)` counts.

use ballast_model::slo::{Sli, SloSpec, Source};
use ballast_model::stats::{Exemplar, StatsWindow, Traffic};

use hdrhistogram::Histogram;

use crate::series::Counts;

/// The route the sidecar counts requests that match no route under.
const UNMATCHED: &str = "(unmatched)";

/// Good and total requests of `window` for the SLO's SLI; `None` for SLIs the sidecar's stats
/// cannot answer (trace SLIs, and those the load generator measures).
pub fn sidecar_counts(spec: &SloSpec, window: &StatsWindow) -> Option<Counts> {
    let route = sidecar_route(spec)?;
    Some(
        selected(window, route)
            .map(|t| counts(&spec.sli, t))
            .fold(Counts::default(), |a, b| Counts {
                good: a.good + b.good,
                total: a.total + b.total,
            }),
    )
}

/// The latencies of `window`'s requests that a latency SLI selects, merged over its routes,
/// for [`crate::Slo::record_latency`]; `None` for other SLIs.
pub fn sidecar_latency(spec: &SloSpec, window: &StatsWindow) -> Option<Histogram<u64>> {
    if !matches!(spec.sli, Sli::Latency(_)) {
        return None;
    }
    let mut merged: Option<Histogram<u64>> = None;
    for t in selected(window, sidecar_route(spec)?) {
        match &mut merged {
            Some(m) => m.add(&t.latency.0).ok()?,
            None => merged = Some(t.latency.0.clone()),
        }
    }
    merged
}

/// Trace ids of the window's exemplars (the sidecar's slowest and failed traced requests) that
/// the SLO counts as bad, newest last: examples to look up, not a count.
pub fn bad_exemplars(spec: &SloSpec, window: &StatsWindow) -> Vec<String> {
    let Some(route) = sidecar_route(spec) else {
        return Vec::new();
    };
    let mut bad: Vec<&Exemplar> = selected(window, route)
        .flat_map(|t| t.exemplars.failed.iter().chain(&t.exemplars.slowest))
        .filter(|e| match &spec.sli {
            Sli::Availability(a) => {
                a.bad_status.contains(&format!("{}xx", e.status / 100))
                    || e.error.is_some_and(|c| a.bad_errors.contains(&c))
            }
            Sli::Latency(l) => e.latency_us > l.threshold.get().as_micros() as u64,
            Sli::Trace(_) => false,
        })
        .collect();
    bad.sort_by_key(|e| e.at_ms);
    let mut ids: Vec<String> = Vec::new();
    for e in bad {
        if !ids.contains(&e.trace_id) {
            ids.push(e.trace_id.clone());
        }
    }
    ids
}

/// The traffic of the route selected, or of every route but the unmatched.
fn selected<'a>(window: &'a StatsWindow, route: Option<&'a str>) -> impl Iterator<Item = &'a Traffic> {
    window
        .routes
        .iter()
        .filter(move |(name, _)| route.map_or(name.as_str() != UNMATCHED, |r| r == name.as_str()))
        .map(|(_, t)| t)
}

/// For SLIs the sidecar measures: the route selector (`None` for every route). Outer `None`
/// for trace SLIs and for those the load generator measures.
fn sidecar_route(spec: &SloSpec) -> Option<Option<&str>> {
    match &spec.sli {
        Sli::Availability(a) if a.source == Source::Sidecar => Some(a.route.as_deref()),
        Sli::Latency(l) if l.source == Source::Sidecar => Some(l.route.as_deref()),
        _ => None,
    }
}

fn counts(sli: &Sli, t: &Traffic) -> Counts {
    let c = &t.counters;
    match sli {
        Sli::Availability(a) => {
            let bad_status: u64 = a
                .bad_status
                .iter()
                .filter_map(|class| c.by_status_class.get(class))
                .sum();
            // Error classes whose status is not already among the bad classes.
            let extra: u64 = a
                .bad_errors
                .iter()
                .filter(|e| !a.bad_status.contains(&format!("{}xx", e.status() / 100)))
                .filter_map(|e| c.by_error.get(e))
                .sum();
            let bad = (bad_status + extra).min(c.requests);
            Counts {
                good: c.requests - bad,
                total: c.requests,
            }
        }
        Sli::Latency(l) => {
            let h = &t.latency.0;
            let threshold_us = l.threshold.get().as_micros() as u64;
            Counts {
                good: h.count_between(0, threshold_us),
                total: h.len(),
            }
        }
        Sli::Trace(_) => Counts::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_model::ErrorClass;

    fn traffic(ok: u64, five: u64, limited: u64, latencies_ms: &[u64]) -> Traffic {
        let mut t = Traffic::default();
        let c = &mut t.counters;
        c.requests = ok + five + limited;
        c.by_status_class.insert("2xx".into(), ok);
        c.by_status_class.insert("5xx".into(), five);
        c.by_status_class.insert("4xx".into(), limited);
        c.by_error.insert(ErrorClass::RateLimited, limited);
        c.by_error.insert(ErrorClass::Timeout, five);
        for ms in latencies_ms {
            t.latency.0.record(ms * 1000).unwrap();
        }
        t
    }

    fn spec(sli: &str) -> SloSpec {
        toml::from_str(&format!("name = \"x\"\nobjective = 0.99\nwindow = \"1h\"\nsli = {sli}")).unwrap()
    }

    #[test]
    fn availability_counts_bad_classes_and_extra_error_classes_once() {
        let mut w = StatsWindow::default();
        w.routes.insert("api".into(), traffic(90, 6, 4, &[]));
        w.routes.insert("web".into(), traffic(100, 0, 0, &[]));
        w.routes.insert("(unmatched)".into(), traffic(0, 50, 0, &[]));
        let api = spec("{ availability = { route = \"api\" } }");
        assert_eq!(sidecar_counts(&api, &w), Some(Counts { good: 94, total: 100 }));
        // A 429 counted bad too; a timeout (5xx) is not counted twice.
        let strict = spec("{ availability = { route = \"api\", bad_errors = [\"rate-limited\", \"timeout\"] } }");
        assert_eq!(sidecar_counts(&strict, &w), Some(Counts { good: 90, total: 100 }));
        // Every route but the unmatched ones.
        let all = spec("{ availability = {} }");
        assert_eq!(sidecar_counts(&all, &w), Some(Counts { good: 194, total: 200 }));
    }

    #[test]
    fn bad_exemplars_are_the_ones_the_sli_counts_bad() {
        let ex = |id: &str, at_ms: u64, latency_ms: u64, status: u16| Exemplar {
            trace_id: id.into(),
            at_ms,
            latency_us: latency_ms * 1000,
            status,
            error: (status == 429).then_some(ErrorClass::RateLimited),
        };
        let mut t = traffic(1, 0, 0, &[]);
        t.exemplars.failed = vec![ex("a", 1, 5, 503), ex("b", 2, 900, 504), ex("c", 3, 1, 429)];
        t.exemplars.slowest = Some(ex("d", 4, 700, 200));
        let mut w = StatsWindow::default();
        w.routes.insert("api".into(), t);
        w.routes.insert("(unmatched)".into(), {
            let mut u = traffic(0, 1, 0, &[]);
            u.exemplars.failed = vec![ex("z", 5, 1, 503)];
            u
        });
        assert_eq!(bad_exemplars(&spec("{ availability = {} }"), &w), ["a", "b"]);
        assert_eq!(
            bad_exemplars(&spec("{ availability = { bad_errors = [\"rate-limited\"] } }"), &w),
            ["a", "b", "c"]
        );
        assert_eq!(
            bad_exemplars(&spec("{ latency = { route = \"api\", threshold = \"500ms\" } }"), &w),
            ["b", "d"]
        );
    }

    #[test]
    fn latency_reads_the_histogram_at_the_threshold() {
        let mut w = StatsWindow::default();
        w.routes
            .insert("api".into(), traffic(5, 0, 0, &[10, 299, 300, 301, 900]));
        let l = spec("{ latency = { route = \"api\", threshold = \"300ms\" } }");
        assert_eq!(sidecar_counts(&l, &w), Some(Counts { good: 3, total: 5 }));
        // The same latencies feed the SLO's percentiles.
        let mut slo = crate::Slo::new(l.clone()).unwrap();
        slo.record_latency(60_000, &sidecar_latency(&l, &w).unwrap());
        let p50 = slo
            .latency_quantile(60_000, std::time::Duration::from_secs(60), 0.5)
            .unwrap();
        assert!((300..320).contains(&p50.as_millis()), "{p50:?}");
        assert!(sidecar_latency(&spec("{ availability = {} }"), &w).is_none());
    }
}
