//! `/metrics`: a [`StatsSnapshot`] in Prometheus's text exposition format (0.0.4).
//!
//! Three families of metrics share one shape, labelled by route, by cluster, or by cluster and
//! endpoint: `ballast_{route,cluster,endpoint}_requests_total{status_class}`,
//! `…_errors_total{error}` (the `ballast-error` classes), `…_requests_in_flight`, for routes
//! `…_retries_total`, `…_retry_budget_exhausted_total`, `…_cache_total{result}`,
//! `…_cache_uncacheable_total` and
//! `…_auth_failures_total{reason}` (`missing`, `invalid`, `expired`, `not_yet_valid`, `claims`,
//! `forbidden`),
//! `…_bytes_total{direction="in"|"out"}` and `…_request_duration_seconds` (a histogram).
//! Labels are config names and endpoint addresses, never request paths, so cardinality is
//! bounded by the config.
//!
//! Histogram buckets come from HDR histograms at export time, so any boundary can be exact to
//! the histogram's precision (3 significant digits): the defaults below plus the config's
//! `telemetry.latency_buckets`.

use std::fmt::Write;

use ballast_model::stats::{StatsSnapshot, Traffic};

/// Default bucket boundaries in seconds (the Prometheus client libraries' defaults).
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

struct Family<'a> {
    scope: &'static str,
    help_subject: &'static str,
    series: Vec<(String, &'a Traffic)>,
}

/// Render the snapshot; `buckets` are histogram boundaries in seconds (sorted, deduplicated).
pub fn render(snapshot: &StatsSnapshot, buckets: &[f64]) -> String {
    let routes = Family {
        scope: "route",
        help_subject: "route",
        series: snapshot
            .routes
            .iter()
            .map(|(name, t)| (format!("route=\"{}\"", escape(name)), t))
            .collect(),
    };
    let clusters = Family {
        scope: "cluster",
        help_subject: "cluster (all its endpoints)",
        series: snapshot
            .clusters
            .iter()
            .map(|(name, c)| (format!("cluster=\"{}\"", escape(name)), &c.traffic))
            .collect(),
    };
    let endpoints = Family {
        scope: "endpoint",
        help_subject: "upstream endpoint",
        series: snapshot
            .clusters
            .iter()
            .flat_map(|(name, c)| {
                c.endpoints.iter().map(move |e| {
                    (
                        format!("cluster=\"{}\",endpoint=\"{}\"", escape(name), escape(&e.address)),
                        &e.traffic,
                    )
                })
            })
            .collect(),
    };
    let mut out = String::with_capacity(16 * 1024);
    for family in [routes, clusters, endpoints] {
        write_family(&mut out, &family, buckets);
    }
    out
}

fn write_family(out: &mut String, f: &Family<'_>, buckets: &[f64]) {
    let (scope, subject) = (f.scope, f.help_subject);
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(
            out,
            "# HELP ballast_{scope}_{name} {help}\n# TYPE ballast_{scope}_{name} {kind}"
        );
    };

    header(
        out,
        "requests_total",
        "counter",
        &format!("Requests per {subject}, by response status class."),
    );
    // Every class from the start, at 0 until used: `rate()` needs a sample before the first
    // failure to see it (a series born at 1 hides its first increase).
    for (labels, t) in &f.series {
        for class in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            let n = t.counters.by_status_class.get(class).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "ballast_{scope}_requests_total{{{labels},status_class=\"{class}\"}} {n}"
            );
        }
    }
    header(
        out,
        "errors_total",
        "counter",
        &format!("Failed requests per {subject}, by ballast-error class."),
    );
    for (labels, t) in &f.series {
        for (class, n) in &t.counters.by_error {
            let _ = writeln!(out, "ballast_{scope}_errors_total{{{labels},error=\"{class}\"}} {n}");
        }
    }
    header(
        out,
        "requests_in_flight",
        "gauge",
        &format!("Requests in flight per {subject}."),
    );
    for (labels, t) in &f.series {
        let _ = writeln!(
            out,
            "ballast_{scope}_requests_in_flight{{{labels}}} {}",
            t.counters.in_flight
        );
    }
    header(
        out,
        "bytes_total",
        "counter",
        &format!("Body bytes per {subject}: in from clients, out to clients."),
    );
    for (labels, t) in &f.series {
        let _ = writeln!(
            out,
            "ballast_{scope}_bytes_total{{{labels},direction=\"in\"}} {}",
            t.counters.bytes_in
        );
        let _ = writeln!(
            out,
            "ballast_{scope}_bytes_total{{{labels},direction=\"out\"}} {}",
            t.counters.bytes_out
        );
    }
    // Retries are decided per route.
    if scope == "route" {
        type Counter = (&'static str, &'static str, fn(&Traffic) -> u64);
        let counters: [Counter; 2] = [
            (
                "retries_total",
                "Retries sent per route (tries beyond the first).",
                |t| t.counters.retries,
            ),
            (
                "retry_budget_exhausted_total",
                "Retries not sent per route because its retry budget was spent.",
                |t| t.counters.retry_budget_exhausted,
            ),
        ];
        for (name, help, value) in counters {
            header(out, name, "counter", help);
            for (labels, t) in &f.series {
                let _ = writeln!(out, "ballast_{scope}_{name}{{{labels}}} {}", value(t));
            }
        }
        header(
            out,
            "rate_limited_total",
            "counter",
            "Requests over the route's rate limit: rejected (enforced) or let through (shadow).",
        );
        for (labels, t) in &f.series {
            let c = &t.counters;
            for (mode, n) in [("enforced", c.rate_limited), ("shadow", c.rate_limited_shadow)] {
                let _ = writeln!(
                    out,
                    "ballast_{scope}_rate_limited_total{{{labels},mode=\"{mode}\"}} {n}"
                );
            }
        }
        // Auth is decided per route too; only reasons seen are listed.
        header(
            out,
            "auth_failures_total",
            "counter",
            "Requests refused by the route's auth, by reason (forbidden is 403, the others 401).",
        );
        for (labels, t) in &f.series {
            for (reason, n) in &t.counters.auth_failures {
                let _ = writeln!(
                    out,
                    "ballast_{scope}_auth_failures_total{{{labels},reason=\"{}\"}} {n}",
                    escape(reason)
                );
            }
        }
        let help = "Requests through a route's response cache, by result (a miss went upstream).";
        header(out, "cache_total", "counter", help);
        for (labels, t) in &f.series {
            let c = &t.counters;
            for (result, n) in [
                ("hit", c.cache_hits),
                ("miss", c.cache_misses),
                ("stale", c.cache_stale),
            ] {
                let _ = writeln!(out, "ballast_{scope}_cache_total{{{labels},result=\"{result}\"}} {n}");
            }
        }
        let help = "Cache misses per route whose answer was not stored (uncacheable, too big, failed).";
        header(out, "cache_uncacheable_total", "counter", help);
        for (labels, t) in &f.series {
            let n = t.counters.cache_uncacheable;
            let _ = writeln!(out, "ballast_{scope}_cache_uncacheable_total{{{labels}}} {n}");
        }
    }
    header(
        out,
        "request_duration_seconds",
        "histogram",
        &format!("Time to the response head per {subject}, in seconds."),
    );
    for (labels, t) in &f.series {
        let h = &t.latency.0;
        for &le in buckets {
            let count = h.count_between(0, (le * 1e6).round() as u64);
            let _ = writeln!(
                out,
                "ballast_{scope}_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "ballast_{scope}_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.len()
        );
        let sum = h.mean() * h.len() as f64 / 1e6;
        let _ = writeln!(out, "ballast_{scope}_request_duration_seconds_sum{{{labels}}} {sum}");
        let _ = writeln!(
            out,
            "ballast_{scope}_request_duration_seconds_count{{{labels}}} {}",
            h.len()
        );
    }
}

/// Label values escape backslash, double quote and newline.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The default boundaries plus extra ones, sorted and without duplicates.
pub fn buckets(extra: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut all: Vec<f64> = DEFAULT_BUCKETS
        .into_iter()
        .chain(extra)
        .filter(|b| b.is_finite() && *b > 0.0)
        .collect();
    all.sort_by(f64::total_cmp);
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_model::ErrorClass;
    use ballast_model::stats::{ClusterStats, EndpointStats};

    #[test]
    fn exposition_has_counters_gauges_and_exact_buckets() {
        let mut t = Traffic::default();
        t.counters.requests = 3;
        t.counters.by_status_class.insert("2xx".into(), 2);
        t.counters.by_status_class.insert("5xx".into(), 1);
        t.counters.by_error.insert(ErrorClass::Timeout, 1);
        t.counters.bytes_out = 640;
        t.counters.auth_failures.insert("expired".into(), 4);
        t.counters.cache_hits = 7;
        for us in [90_000, 300_000, 2_000_000] {
            t.latency.0.record(us).unwrap();
        }
        let mut snap = StatsSnapshot::default();
        snap.routes.insert("api".into(), t.clone());
        snap.clusters.insert(
            "shop".into(),
            ClusterStats {
                traffic: t.clone(),
                endpoints: vec![EndpointStats {
                    address: "127.0.0.1:8081".into(),
                    traffic: t,
                    state: None,
                }],
            },
        );
        let text = render(&snap, &buckets([0.3]));
        for line in [
            "# TYPE ballast_route_requests_total counter",
            "ballast_route_requests_total{route=\"api\",status_class=\"5xx\"} 1",
            // Unused classes are there at 0, so the first 4xx shows up in rate().
            "ballast_route_requests_total{route=\"api\",status_class=\"4xx\"} 0",
            "ballast_route_errors_total{route=\"api\",error=\"timeout\"} 1",
            "ballast_route_bytes_total{route=\"api\",direction=\"out\"} 640",
            "# TYPE ballast_route_auth_failures_total counter",
            "ballast_route_auth_failures_total{route=\"api\",reason=\"expired\"} 4",
            "ballast_route_cache_total{route=\"api\",result=\"hit\"} 7",
            "ballast_route_cache_uncacheable_total{route=\"api\"} 0",
            "ballast_route_request_duration_seconds_bucket{route=\"api\",le=\"0.1\"} 1",
            "ballast_route_request_duration_seconds_bucket{route=\"api\",le=\"0.3\"} 2",
            "ballast_route_request_duration_seconds_bucket{route=\"api\",le=\"+Inf\"} 3",
            "ballast_route_request_duration_seconds_count{route=\"api\"} 3",
            "ballast_cluster_requests_total{cluster=\"shop\",status_class=\"2xx\"} 2",
            "ballast_endpoint_requests_in_flight{cluster=\"shop\",endpoint=\"127.0.0.1:8081\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(
            !text.contains("ballast_cluster_auth_failures"),
            "auth is per route only"
        );
    }

    #[test]
    fn bucket_lists_are_sorted_and_unique() {
        let b = buckets([0.3, 0.1, 0.3, f64::NAN, -1.0]);
        assert_eq!(b.iter().filter(|&&x| x == 0.3).count(), 1);
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(b.len(), DEFAULT_BUCKETS.len() + 1);
    }
}
