//! SLI counts from the sidecar's stats: how many of a window's requests were good, by the
//! SLO's SLI. Availability reads status classes and `ballast-error` classes; latency reads the
//! HDR histogram exactly at the threshold (to its 3 significant digits), not a bucket near it.
//!
//! A route selector picks one route; without one, every route but `(unmatched)` counts.

use ballast_model::slo::{Sli, SloSpec};
use ballast_model::stats::{StatsWindow, Traffic};

use crate::series::Counts;

/// The route the sidecar counts requests that match no route under.
const UNMATCHED: &str = "(unmatched)";

/// Good and total requests of `window` for the SLO's SLI; `None` for SLIs the sidecar's stats
/// cannot answer (trace SLIs).
pub fn sidecar_counts(spec: &SloSpec, window: &StatsWindow) -> Option<Counts> {
    let route = match &spec.sli {
        Sli::Availability(a) => a.route.as_deref(),
        Sli::Latency(l) => l.route.as_deref(),
        Sli::Trace(_) => return None,
    };
    let routes = window
        .routes
        .iter()
        .filter(|(name, _)| route.map_or(name.as_str() != UNMATCHED, |r| r == name.as_str()));
    Some(
        routes
            .map(|(_, t)| counts(&spec.sli, t))
            .fold(Counts::default(), |a, b| Counts {
                good: a.good + b.good,
                total: a.total + b.total,
            }),
    )
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
    fn latency_reads_the_histogram_at_the_threshold() {
        let mut w = StatsWindow::default();
        w.routes
            .insert("api".into(), traffic(5, 0, 0, &[10, 299, 300, 301, 900]));
        let l = spec("{ latency = { route = \"api\", threshold = \"300ms\" } }");
        assert_eq!(sidecar_counts(&l, &w), Some(Counts { good: 3, total: 5 }));
    }
}
