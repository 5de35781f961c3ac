//! What a sidecar reports on `/stats`: cumulative counters and latency histograms per route,
//! per cluster and per endpoint, and the window between two snapshots.
//!
//! Snapshots are cumulative, like Prometheus counters: a consumer (the TUI, the SLO engine's
//! live source, the scenario runner) keeps the previous snapshot and computes the window
//! between the two with [`StatsSnapshot::window`], counts and histograms by subtraction. A
//! sidecar that restarted in between (counters went down, or `started_at_ms` changed) yields
//! the later snapshot whole, as Prometheus treats a counter reset.
//!
//! Latencies are microseconds in HDR histograms (1 µs to 60 s, 3 significant digits), carried
//! in HdrHistogram's compressed V2 serialization, base64-encoded (`HISTFAA…`, as in `.hlog`
//! interval logs), so any HdrHistogram library reads them.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer as HdrDeserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::ErrorClass;

/// Lowest and highest trackable latency, in microseconds, and the precision.
pub const LATENCY_LOW_US: u64 = 1;
pub const LATENCY_HIGH_US: u64 = 60_000_000;
pub const LATENCY_SIGFIG: u8 = 3;

/// A latency histogram in microseconds; serializes as base64 compressed HdrHistogram V2.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency(pub Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(new_latency_histogram())
    }
}

/// An empty histogram with ballast's bounds; values above the top are clamped when recorded
/// with [`Histogram::saturating_record`].
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_LOW_US, LATENCY_HIGH_US, LATENCY_SIGFIG).expect("valid histogram bounds")
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut buf)
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(&BASE64.encode(buf))
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Latency;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a base64 HdrHistogram V2 blob")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Latency, E> {
                let bytes = BASE64.decode(v).map_err(E::custom)?;
                let h: Histogram<u64> = HdrDeserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .map_err(|e| E::custom(format!("{e:?}")))?;
                Ok(Latency(h))
            }
        }
        d.deserialize_str(V)
    }
}

/// Cumulative request counts for a route, a cluster or an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub requests: u64,
    /// Responses by status class: `"2xx"`, `"5xx"`, ...
    #[serde(default)]
    pub by_status_class: BTreeMap<String, u64>,
    /// Failures the sidecar classified (its `ballast-error` header).
    #[serde(default)]
    pub by_error: BTreeMap<ErrorClass, u64>,
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
    /// Requests in flight when the snapshot was taken (a gauge, not a counter).
    #[serde(default)]
    pub in_flight: u64,
    /// Retries sent (routes only): tries beyond each request's first.
    #[serde(default)]
    pub retries: u64,
    /// Retries not sent because the route's retry budget was spent.
    #[serde(default)]
    pub retry_budget_exhausted: u64,
    /// Requests rejected by the route's rate limit (429).
    #[serde(default)]
    pub rate_limited: u64,
    /// Requests over the route's rate limit in shadow mode (let through).
    #[serde(default)]
    pub rate_limited_shadow: u64,
    /// Requests refused by the route's auth (routes only), by reason: `missing`, `invalid`,
    /// `expired`, `not_yet_valid`, `claims` (401) and `forbidden` (403).
    #[serde(default)]
    pub auth_failures: BTreeMap<String, u64>,
    /// Response cache (routes only): answers served from the cache...
    #[serde(default)]
    pub cache_hits: u64,
    /// ...requests sent upstream...
    #[serde(default)]
    pub cache_misses: u64,
    /// ...stale entries served instead of a failure...
    #[serde(default)]
    pub cache_stale: u64,
    /// ...and, of the misses, those whose answer was not stored.
    #[serde(default)]
    pub cache_uncacheable: u64,
}

impl Counters {
    /// Count of one status class (`2` for 2xx).
    pub fn status_class(&self, class: u16) -> u64 {
        self.by_status_class.get(&format!("{class}xx")).copied().unwrap_or(0)
    }

    /// `self - earlier`, or `None` if any counter went down (a reset).
    fn minus(&self, earlier: &Counters) -> Option<Counters> {
        let map_minus = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| -> Option<BTreeMap<String, u64>> {
            b.keys().all(|k| a.contains_key(k)).then_some(())?;
            a.iter()
                .map(|(k, v)| Some((k.clone(), v.checked_sub(*b.get(k).unwrap_or(&0))?)))
                .collect()
        };
        let errors_minus = || -> Option<BTreeMap<ErrorClass, u64>> {
            earlier
                .by_error
                .keys()
                .all(|k| self.by_error.contains_key(k))
                .then_some(())?;
            self.by_error
                .iter()
                .map(|(k, v)| Some((*k, v.checked_sub(*earlier.by_error.get(k).unwrap_or(&0))?)))
                .collect()
        };
        Some(Counters {
            requests: self.requests.checked_sub(earlier.requests)?,
            by_status_class: map_minus(&self.by_status_class, &earlier.by_status_class)?,
            by_error: errors_minus()?,
            bytes_in: self.bytes_in.checked_sub(earlier.bytes_in)?,
            bytes_out: self.bytes_out.checked_sub(earlier.bytes_out)?,
            in_flight: self.in_flight,
            retries: self.retries.checked_sub(earlier.retries)?,
            retry_budget_exhausted: self
                .retry_budget_exhausted
                .checked_sub(earlier.retry_budget_exhausted)?,
            rate_limited: self.rate_limited.checked_sub(earlier.rate_limited)?,
            rate_limited_shadow: self.rate_limited_shadow.checked_sub(earlier.rate_limited_shadow)?,
            auth_failures: map_minus(&self.auth_failures, &earlier.auth_failures)?,
            cache_hits: self.cache_hits.checked_sub(earlier.cache_hits)?,
            cache_misses: self.cache_misses.checked_sub(earlier.cache_misses)?,
            cache_stale: self.cache_stale.checked_sub(earlier.cache_stale)?,
            cache_uncacheable: self.cache_uncacheable.checked_sub(earlier.cache_uncacheable)?,
        })
    }
}

/// Counters and latency of one route, cluster or endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    #[serde(flatten)]
    pub counters: Counters,
    pub latency: Latency,
    /// Traced requests worth a look (routes only, when tracing is on).
    #[serde(default, skip_serializing_if = "Exemplars::is_empty")]
    pub exemplars: Exemplars,
}

/// Trace ids of requests worth a look: the slowest of the current minute and the latest
/// failures. Only sampled (exported) traces qualify, so every id can be looked up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemplars {
    #[serde(default)]
    pub slowest: Option<Exemplar>,
    /// Newest last, at most [`Exemplars::FAILED`].
    #[serde(default)]
    pub failed: Vec<Exemplar>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemplar {
    pub trace_id: String,
    /// When the request finished (Unix milliseconds).
    pub at_ms: u64,
    pub latency_us: u64,
    pub status: u16,
    #[serde(default)]
    pub error: Option<ErrorClass>,
}

impl Exemplars {
    /// Failures kept.
    pub const FAILED: usize = 8;

    pub fn is_empty(&self) -> bool {
        self.slowest.is_none() && self.failed.is_empty()
    }

    /// Take in one traced request: it may be the minute's slowest, and is kept if it failed.
    pub fn offer(&mut self, e: Exemplar) {
        if e.error.is_some() || e.status >= 500 {
            self.failed.push(e.clone());
            if self.failed.len() > Self::FAILED {
                self.failed.remove(0);
            }
        }
        let same_minute = |a: &Exemplar| a.at_ms / 60_000 == e.at_ms / 60_000;
        if self
            .slowest
            .as_ref()
            .is_none_or(|s| !same_minute(s) || s.latency_us < e.latency_us)
        {
            self.slowest = Some(e);
        }
    }

    /// Combine with another set (another worker's): the later minute's slowest, the newest
    /// failures.
    pub fn merge(&mut self, other: &Exemplars) {
        let mut failed: Vec<Exemplar> = self.failed.drain(..).chain(other.failed.iter().cloned()).collect();
        failed.sort_by_key(|e| e.at_ms);
        let skip = failed.len().saturating_sub(Self::FAILED);
        self.failed = failed.into_iter().skip(skip).collect();
        if let Some(theirs) = &other.slowest {
            let key = |e: &Exemplar| (e.at_ms / 60_000, e.latency_us);
            if self.slowest.as_ref().is_none_or(|mine| key(mine) < key(theirs)) {
                self.slowest = Some(theirs.clone());
            }
        }
    }
}

impl Counters {
    /// Add another's counts (another route's, another sidecar's).
    pub fn add(&mut self, other: &Counters) {
        let add_map = |a: &mut BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            for (k, v) in b {
                *a.entry(k.clone()).or_default() += v;
            }
        };
        self.requests += other.requests;
        add_map(&mut self.by_status_class, &other.by_status_class);
        for (k, v) in &other.by_error {
            *self.by_error.entry(*k).or_default() += v;
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.in_flight += other.in_flight;
        self.retries += other.retries;
        self.retry_budget_exhausted += other.retry_budget_exhausted;
        self.rate_limited += other.rate_limited;
        self.rate_limited_shadow += other.rate_limited_shadow;
        add_map(&mut self.auth_failures, &other.auth_failures);
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.cache_stale += other.cache_stale;
        self.cache_uncacheable += other.cache_uncacheable;
    }
}

impl Traffic {
    /// Add another's traffic: counts add, histograms add (same bounds), exemplars merge.
    pub fn add(&mut self, other: &Traffic) {
        self.counters.add(&other.counters);
        self.latency
            .0
            .add(&other.latency.0)
            .expect("latency histograms share their bounds");
        self.exemplars.merge(&other.exemplars);
    }

    /// `self - earlier`, or `None` on a reset.
    pub fn minus(&self, earlier: &Traffic) -> Option<Traffic> {
        let counters = self.counters.minus(&earlier.counters)?;
        let mut latency = self.latency.0.clone();
        latency.subtract(&earlier.latency.0).ok()?;
        Some(Traffic {
            counters,
            latency: Latency(latency),
            exemplars: self.exemplars.clone(),
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointStats {
    pub address: String,
    #[serde(flatten)]
    pub traffic: Traffic,
    /// Health and ejection, when the sidecar reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<EndpointState>,
}

/// An endpoint's standing with its cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    /// As active health checks last said (true without health checks).
    pub healthy: bool,
    /// Ejected by outlier detection until this time (Unix ms), or waiting for its probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ejected_until_ms: Option<u64>,
    /// Times ejected since it last recovered (the next ejection lasts base × this + 1).
    #[serde(default)]
    pub times_ejected: u32,
    /// Ejections since start.
    #[serde(default)]
    pub ejections: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStats {
    #[serde(flatten)]
    pub traffic: Traffic,
    pub endpoints: Vec<EndpointStats>,
}

/// Everything a sidecar counted since it started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// When the sidecar process started (Unix milliseconds): a change means a restart.
    pub started_at_ms: u64,
    /// When this snapshot was taken (Unix milliseconds).
    pub taken_at_ms: u64,
    pub routes: BTreeMap<String, Traffic>,
    pub clusters: BTreeMap<String, ClusterStats>,
    /// Faults and toxics in place when the snapshot was taken.
    #[serde(default)]
    pub faults: Vec<crate::fault::ActiveFault>,
}

/// The traffic between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsWindow {
    pub from_ms: u64,
    pub to_ms: u64,
    /// True when the sidecar restarted in between: the window then starts at the restart.
    pub reset: bool,
    pub routes: BTreeMap<String, Traffic>,
    pub clusters: BTreeMap<String, ClusterStats>,
}

impl StatsWindow {
    pub fn seconds(&self) -> f64 {
        self.to_ms.saturating_sub(self.from_ms) as f64 / 1000.0
    }
}

impl StatsSnapshot {
    /// The traffic since `earlier`. Routes, clusters and endpoints that appeared since (a
    /// reload) count from zero; any counter that went down means a restart, and the window is
    /// then this snapshot whole, from its start.
    pub fn window(&self, earlier: &StatsSnapshot) -> StatsWindow {
        if self.started_at_ms == earlier.started_at_ms
            && let Some(w) = self.try_window(earlier)
        {
            return w;
        }
        StatsWindow {
            from_ms: self.started_at_ms,
            to_ms: self.taken_at_ms,
            reset: true,
            routes: self.routes.clone(),
            clusters: self.clusters.clone(),
        }
    }

    fn try_window(&self, earlier: &StatsSnapshot) -> Option<StatsWindow> {
        let zero = Traffic::default();
        let routes = self
            .routes
            .iter()
            .map(|(name, t)| Some((name.clone(), t.minus(earlier.routes.get(name).unwrap_or(&zero))?)))
            .collect::<Option<_>>()?;
        let clusters = self
            .clusters
            .iter()
            .map(|(name, c)| {
                let before = earlier.clusters.get(name);
                let traffic = c.traffic.minus(before.map_or(&zero, |b| &b.traffic))?;
                let endpoints = c
                    .endpoints
                    .iter()
                    .map(|e| {
                        let prev = before.and_then(|b| b.endpoints.iter().find(|p| p.address == e.address));
                        let traffic = e.traffic.minus(prev.map_or(&zero, |p| &p.traffic))?;
                        Some(EndpointStats {
                            address: e.address.clone(),
                            traffic,
                            // A state is a gauge: the later snapshot's.
                            state: e.state.clone(),
                        })
                    })
                    .collect::<Option<_>>()?;
                Some((name.clone(), ClusterStats { traffic, endpoints }))
            })
            .collect::<Option<_>>()?;
        Some(StatsWindow {
            from_ms: earlier.taken_at_ms,
            to_ms: self.taken_at_ms,
            reset: false,
            routes,
            clusters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(requests: u64, ok: u64, errors: &[(ErrorClass, u64)], latencies_us: &[u64]) -> Traffic {
        let mut latency = Latency::default();
        for &l in latencies_us {
            latency.0.record(l).unwrap();
        }
        let mut by_status_class = BTreeMap::from([("2xx".to_owned(), ok)]);
        if requests > ok {
            by_status_class.insert("5xx".to_owned(), requests - ok);
        }
        Traffic {
            counters: Counters {
                requests,
                by_status_class,
                by_error: errors.iter().copied().collect(),
                bytes_in: requests * 10,
                bytes_out: requests * 100,
                in_flight: 1,
                retries: requests / 10,
                retry_budget_exhausted: 0,
                rate_limited: 0,
                rate_limited_shadow: 0,
                auth_failures: BTreeMap::from([("invalid".to_owned(), requests)]),
                cache_hits: requests / 2,
                cache_misses: requests / 4,
                cache_stale: 0,
                cache_uncacheable: 0,
            },
            latency,
            exemplars: Exemplars::default(),
        }
    }

    fn snapshot(at: u64, route: Traffic) -> StatsSnapshot {
        StatsSnapshot {
            started_at_ms: 1_000,
            taken_at_ms: at,
            faults: Vec::new(),
            routes: BTreeMap::from([("api".to_owned(), route.clone())]),
            clusters: BTreeMap::from([(
                "shop".to_owned(),
                ClusterStats {
                    traffic: route.clone(),
                    endpoints: vec![EndpointStats {
                        address: "127.0.0.1:8081".into(),
                        traffic: route,
                        state: None,
                    }],
                },
            )]),
        }
    }

    #[test]
    fn traffic_adds_up_and_subtracts_back() {
        let (a, b) = (traffic(3, 2, &[], &[100, 2_000]), traffic(5, 1, &[], &[300]));
        let mut sum = Traffic::default();
        sum.add(&a);
        sum.add(&b);
        assert_eq!(sum.counters.requests, 8);
        assert_eq!(sum.latency.0.len(), 3);
        assert_eq!(sum.minus(&a).unwrap().counters.requests, b.counters.requests);
        assert_eq!(sum.minus(&b).unwrap().latency, a.latency);
    }

    #[test]
    fn latency_round_trips_through_json_as_base64_v2() {
        let t = traffic(3, 3, &[], &[100, 2_000, 30_000]);
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"latency\":\"HISTFAA"), "V2 cookie, base64: {json}");
        let back: Traffic = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            back.latency.0.value_at_quantile(1.0),
            t.latency.0.value_at_quantile(1.0)
        );
    }

    #[test]
    fn a_window_is_the_difference_of_counts_and_histograms() {
        let early = snapshot(2_000, traffic(2, 2, &[], &[100, 200]));
        let late = snapshot(
            7_000,
            traffic(5, 4, &[(ErrorClass::Timeout, 1)], &[100, 200, 300, 400, 5_000_000]),
        );
        let w = late.window(&early);
        assert!(!w.reset);
        assert_eq!(w.seconds(), 5.0);
        let api = &w.routes["api"];
        assert_eq!(api.counters.requests, 3);
        assert_eq!(api.counters.status_class(2), 2);
        assert_eq!(api.counters.status_class(5), 1);
        assert_eq!(api.counters.by_error[&ErrorClass::Timeout], 1);
        assert_eq!(api.counters.bytes_out, 300);
        assert_eq!(api.counters.auth_failures["invalid"], 3);
        assert_eq!(api.latency.0.len(), 3);
        assert_eq!(api.latency.0.min(), 300);
        assert!(api.latency.0.max() >= 5_000_000 && api.latency.0.max() < 5_010_000);
        assert_eq!(w.clusters["shop"].endpoints[0].traffic.counters.requests, 3);
    }

    #[test]
    fn a_restart_yields_the_later_snapshot_whole() {
        let early = snapshot(2_000, traffic(50, 50, &[], &[100; 50]));
        let late = snapshot(3_000, traffic(5, 5, &[], &[100; 5]));
        let w = late.window(&early);
        assert!(w.reset, "counters went down");
        assert_eq!(w.routes["api"].counters.requests, 5);
        let mut restarted = snapshot(9_000, traffic(60, 60, &[], &[100; 60]));
        restarted.started_at_ms = 8_000;
        let w = restarted.window(&early);
        assert!(w.reset && w.from_ms == 8_000, "a new start time means a restart");
    }

    #[test]
    fn routes_added_by_a_reload_count_from_zero() {
        let early = snapshot(2_000, traffic(2, 2, &[], &[100, 200]));
        let mut late = snapshot(4_000, traffic(4, 4, &[], &[100, 200, 300, 400]));
        late.routes.insert("new".into(), traffic(7, 7, &[], &[50; 7]));
        let w = late.window(&early);
        assert!(!w.reset);
        assert_eq!(w.routes["new"].counters.requests, 7);
        assert_eq!(w.routes["api"].counters.requests, 2);
    }
}

#[cfg(test)]
mod exemplar_tests {
    use super::*;

    fn ex(at_ms: u64, latency_us: u64, status: u16) -> Exemplar {
        Exemplar {
            trace_id: format!("t{at_ms}"),
            at_ms,
            latency_us,
            status,
            error: None,
        }
    }

    #[test]
    fn the_slowest_of_the_minute_and_the_latest_failures() {
        let mut e = Exemplars::default();
        e.offer(ex(1_000, 500, 200));
        e.offer(ex(2_000, 900, 200));
        e.offer(ex(3_000, 100, 503));
        assert_eq!(e.slowest.as_ref().unwrap().trace_id, "t2000");
        e.offer(ex(61_000, 10, 200));
        assert_eq!(
            e.slowest.as_ref().unwrap().trace_id,
            "t61000",
            "a new minute starts over"
        );
        for i in 0..10 {
            e.offer(ex(70_000 + i, 1, 500));
        }
        assert_eq!(e.failed.len(), Exemplars::FAILED);
        assert_eq!(e.failed.last().unwrap().trace_id, "t70009");

        let mut other = Exemplars::default();
        other.offer(ex(62_000, 5_000, 200));
        e.merge(&other);
        assert_eq!(e.slowest.unwrap().trace_id, "t62000");
    }
}
