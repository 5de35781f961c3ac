//! The one model: the latest data of every sidecar (routes with a few minutes of history,
//! clusters and endpoints, faults), the SLOs' standing, the timeline, and the UI's state.
//! [`Model::apply`] takes a [`Feed`] from any source; what it keeps depends only on the feeds
//! and their order, so a replay reaches the same model at the same position every time.
//!
//! Figures of a route are per scrape window (about a second): req/s, the share of 5xx
//! answers, and latency percentiles read exactly from the window's HDR histogram.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use ballast_model::slo::SloSpec;
use ballast_model::stats::{EndpointState, Exemplars, Traffic};
use ballast_model::{ActiveFault, ErrorClass, Event, EventKind, StatsSnapshot, StatsWindow};

use crate::Error;
use crate::slos::SloState;
use crate::source::{Feed, SourceStatus};
use crate::timeline::Timeline;
use crate::ui::{RowKey, Sort, Ui};

/// Samples kept per route: five minutes at one scrape a second.
pub const HISTORY: usize = 300;

/// Upper bounds (µs) of the latency histogram's bins; the last bin is everything above.
pub const BINS_US: [u64; 12] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000,
];
pub const BIN_COUNT: usize = BINS_US.len() + 1;

/// One scrape window of a route, cluster or endpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// When the window ended (the scrape's time).
    pub at_ms: u64,
    pub seconds: f64,
    pub requests: u64,
    /// Answers by status class, 1xx to 5xx.
    pub status: [u64; 5],
    /// Failures the sidecar classified.
    pub errors: Vec<(ErrorClass, u64)>,
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub bins: [u32; BIN_COUNT],
    /// Requests in flight at the scrape.
    pub in_flight: u64,
}

impl Sample {
    pub fn of(t: &Traffic, seconds: f64, at_ms: u64) -> Sample {
        let c = &t.counters;
        let mut status = [0; 5];
        for (class, n) in &c.by_status_class {
            if let Some(d @ 1..=5) = class.chars().next().and_then(|c| c.to_digit(10)) {
                status[d as usize - 1] += n;
            }
        }
        let h = &t.latency.0;
        let total = h.len();
        let rank = |q: f64| ((q * total as f64).ceil() as u64).max(1);
        let (r50, r90, r99) = (rank(0.5), rank(0.9), rank(0.99));
        let (mut p50, mut p90, mut p99) = (None, None, None);
        let mut bins = [0u32; BIN_COUNT];
        let mut seen = 0;
        // One pass over the recorded values gives the percentiles (as HDR's own
        // value_at_quantile: the highest value equivalent to the rank's) and the bins.
        for v in h.iter_recorded() {
            let value = v.value_iterated_to();
            let n = v.count_at_value();
            seen += n;
            for (p, r) in [(&mut p50, r50), (&mut p90, r90), (&mut p99, r99)] {
                if p.is_none() && seen >= r {
                    *p = Some(value);
                }
            }
            let bin = BINS_US.partition_point(|b| *b < value);
            bins[bin] = bins[bin].saturating_add(n.min(u32::MAX as u64) as u32);
        }
        Sample {
            at_ms,
            seconds,
            requests: c.requests,
            status,
            errors: c
                .by_error
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(e, n)| (*e, *n))
                .collect(),
            p50_us: p50,
            p90_us: p90,
            p99_us: p99,
            bins,
            in_flight: c.in_flight,
        }
    }

    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The share of 5xx answers; `None` without requests.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.status[4] as f64 / self.requests as f64)
    }
}

#[derive(Clone, Debug, Default)]
pub struct RouteState {
    /// Oldest first, at most [`HISTORY`].
    pub samples: VecDeque<Sample>,
    /// The sidecar's current exemplars (slowest of the minute, latest failures).
    pub exemplars: Exemplars,
}

impl RouteState {
    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// The samples of the last `ms` before `now_ms`.
    pub fn recent(&self, now_ms: u64, ms: u64) -> impl DoubleEndedIterator<Item = &Sample> {
        let since = now_ms.saturating_sub(ms);
        self.samples.iter().filter(move |s| s.at_ms > since)
    }
}

#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub traffic: Sample,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    pub address: String,
    pub state: Option<EndpointState>,
    pub traffic: Sample,
}

/// A sidecar that stopped answering.
#[derive(Clone, Debug, PartialEq)]
pub struct Down {
    pub since_ms: u64,
    pub error: String,
}

pub struct SidecarState {
    pub name: String,
    /// The last scrape it answered.
    pub last_seen_ms: Option<u64>,
    /// Set while scrapes fail.
    pub down: Option<Down>,
    last: Option<Arc<StatsSnapshot>>,
    pub routes: BTreeMap<String, RouteState>,
    pub clusters: BTreeMap<String, ClusterState>,
    pub faults: Vec<ActiveFault>,
}

impl SidecarState {
    fn new(name: String) -> Self {
        SidecarState {
            name,
            last_seen_ms: None,
            down: None,
            last: None,
            routes: BTreeMap::new(),
            clusters: BTreeMap::new(),
            faults: Vec::new(),
        }
    }

    /// Whether its figures are out of date (it does not answer, or never did).
    pub fn stale(&self) -> bool {
        self.down.is_some() || self.last_seen_ms.is_none()
    }

    /// Take a snapshot in; the window since the previous one.
    fn ingest(&mut self, at_ms: u64, snapshot: Arc<StatsSnapshot>) -> StatsWindow {
        let window = snapshot.window(self.last.as_deref().unwrap_or(&StatsSnapshot::default()));
        let seconds = window.seconds();
        // Routes a reload removed go; new ones start.
        self.routes.retain(|name, _| window.routes.contains_key(name));
        for (name, t) in &window.routes {
            let route = self.routes.entry(name.clone()).or_default();
            route.samples.push_back(Sample::of(t, seconds, at_ms));
            if route.samples.len() > HISTORY {
                route.samples.pop_front();
            }
            route.exemplars = t.exemplars.clone();
        }
        self.clusters = window
            .clusters
            .iter()
            .map(|(name, c)| {
                let endpoints = c
                    .endpoints
                    .iter()
                    .map(|e| Endpoint {
                        address: e.address.clone(),
                        state: e.state.clone(),
                        traffic: Sample::of(&e.traffic, seconds, at_ms),
                    })
                    .collect();
                let cluster = ClusterState {
                    traffic: Sample::of(&c.traffic, seconds, at_ms),
                    endpoints,
                };
                (name.clone(), cluster)
            })
            .collect();
        self.faults = snapshot.faults.clone();
        self.last_seen_ms = Some(at_ms);
        self.down = None;
        self.last = Some(snapshot);
        window
    }
}

/// A row of the overview: a route on a sidecar, with the SLO most at risk that covers it.
pub struct RouteRow<'a> {
    pub sidecar: &'a SidecarState,
    pub route: &'a str,
    pub state: &'a RouteState,
    pub slo: Option<&'a SloState>,
}

impl RouteRow<'_> {
    pub fn key(&self) -> RowKey {
        RowKey {
            sidecar: self.sidecar.name.clone(),
            route: self.route.to_owned(),
        }
    }
}

/// The incident banner's content: SLOs whose page alert fires, earliest first.
pub struct Incident<'a> {
    pub slos: Vec<&'a SloState>,
}

pub struct Model {
    /// The source's time: wall time live, the position in a replay.
    pub now_ms: u64,
    pub source: SourceStatus,
    /// In the order given (live) or first recorded (replay).
    pub sidecars: Vec<SidecarState>,
    pub slos: Vec<SloState>,
    pub timeline: Timeline,
    pub ui: Ui,
}

impl Model {
    /// A model for these sidecars and SLOs, before any data.
    pub fn new(sidecars: Vec<String>, slos: Vec<SloSpec>) -> Result<Model, Error> {
        let slos = slos
            .into_iter()
            .map(SloState::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::Slos)?;
        Ok(Model {
            now_ms: 0,
            source: SourceStatus::Live,
            sidecars: sidecars.into_iter().map(SidecarState::new).collect(),
            slos,
            timeline: Timeline::default(),
            ui: Ui {
                page: 10,
                ..Ui::default()
            },
        })
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.source, SourceStatus::Replay(_))
    }

    /// Take a feed in; whether anything on screen may have changed.
    pub fn apply(&mut self, feed: Feed) -> bool {
        match feed {
            Feed::Stats {
                at_ms,
                sidecar,
                snapshot,
            } => {
                let window = self.sidecar_mut(&sidecar).ingest(at_ms, snapshot);
                for slo in &mut self.slos {
                    for kind in slo.record(&window, at_ms) {
                        // Stamped with the evaluation's time, which never goes back (scrapes of
                        // several sidecars interleave), so the timeline keeps every alert.
                        self.timeline.push(Event {
                            at_ms: slo.evaluated_ms(),
                            source: "slo".into(),
                            kind,
                        });
                    }
                }
            }
            Feed::Unreachable { at_ms, sidecar, error } => {
                let s = self.sidecar_mut(&sidecar);
                let since_ms = s.down.as_ref().map_or(at_ms, |d| d.since_ms);
                s.down = Some(Down { since_ms, error });
            }
            Feed::Event(e) => {
                // Alerts are computed here from the stats; recorded ones of the same SLOs
                // would show twice.
                let recomputed = match &e.kind {
                    EventKind::AlertFiring { slo, .. } | EventKind::AlertResolved { slo, .. } => {
                        self.slos.iter().any(|s| s.answerable && s.spec.name == *slo)
                    }
                    _ => false,
                };
                return !recomputed && self.timeline.push(e);
            }
            Feed::Faults { sidecar, faults, .. } => self.sidecar_mut(&sidecar).faults = faults,
            Feed::Done { ok: true, message } => self.ui.say(message),
            Feed::Done { ok: false, message } => self.ui.warn(message),
            Feed::Reset => self.reset(),
            Feed::Clock { now_ms, status } => {
                // Screens show seconds: a clock that moved less than that changes nothing.
                let changed = now_ms / 1000 != self.now_ms / 1000 || !same_display(&status, &self.source);
                self.now_ms = now_ms;
                self.source = status;
                return changed;
            }
        }
        true
    }

    /// Forget all data (sidecars stay known, SLOs start over); the UI stays as it is.
    fn reset(&mut self) {
        for s in &mut self.sidecars {
            *s = SidecarState::new(std::mem::take(&mut s.name));
        }
        for slo in &mut self.slos {
            *slo = SloState::new(slo.spec.clone()).expect("checked when the model was made");
        }
        self.timeline = Timeline::default();
    }

    fn sidecar_mut(&mut self, name: &str) -> &mut SidecarState {
        match self.sidecars.iter().position(|s| s.name == name) {
            Some(i) => &mut self.sidecars[i],
            None => {
                self.sidecars.push(SidecarState::new(name.to_owned()));
                self.sidecars.last_mut().expect("just pushed")
            }
        }
    }

    pub fn sidecar(&self, name: &str) -> Option<&SidecarState> {
        self.sidecars.iter().find(|s| s.name == name)
    }

    pub fn route(&self, key: &RowKey) -> Option<&RouteState> {
        self.sidecar(&key.sidecar)?.routes.get(&key.route)
    }

    /// The answerable SLOs that count a route's requests.
    pub fn slos_for<'a>(&'a self, route: &'a str) -> impl Iterator<Item = &'a SloState> + 'a {
        self.slos.iter().filter(move |s| s.covers(route))
    }

    /// The overview's rows, filtered and in the chosen order.
    pub fn route_rows(&self) -> Vec<RouteRow<'_>> {
        let filter = &self.ui.filter;
        let mut rows: Vec<RouteRow> = self
            .sidecars
            .iter()
            .flat_map(|s| s.routes.iter().map(move |(name, state)| (s, name, state)))
            .filter(|(s, name, _)| {
                filter.is_empty() || name.to_lowercase().contains(filter) || s.name.to_lowercase().contains(filter)
            })
            .map(|(sidecar, route, state)| RouteRow {
                sidecar,
                route,
                state,
                slo: self.slos_for(route).min_by(|a, b| risk(a).total_cmp(&risk(b))),
            })
            .collect();
        let latest = |r: &RouteRow, f: fn(&Sample) -> f64| r.state.latest().map_or(-1.0, f);
        let name = |r: &RouteRow| (r.route.to_owned(), r.sidecar.name.clone());
        match self.ui.sort {
            Sort::Burn => rows.sort_by(|a, b| {
                let key = |r: &RouteRow| {
                    let slo = r.slo.map_or((4, f64::INFINITY, 0.0), |s| {
                        let budget = s.status.as_ref().map_or(f64::INFINITY, |st| st.budget_remaining);
                        (s.urgency(), budget, -s.burn_recent(self.now_ms).unwrap_or(0.0))
                    });
                    (slo, -latest(r, |s| s.error_ratio().unwrap_or(0.0)))
                };
                let (ka, kb) = (key(a), key(b));
                ka.0.0
                    .cmp(&kb.0.0)
                    .then(ka.0.1.total_cmp(&kb.0.1))
                    .then(ka.0.2.total_cmp(&kb.0.2))
                    .then(ka.1.total_cmp(&kb.1))
                    .then_with(|| name(a).cmp(&name(b)))
            }),
            Sort::Errors => rows.sort_by(|a, b| {
                let e = |r: &RouteRow| latest(r, |s| s.error_ratio().unwrap_or(0.0));
                e(b).total_cmp(&e(a)).then_with(|| name(a).cmp(&name(b)))
            }),
            Sort::Latency => rows.sort_by(|a, b| {
                let p = |r: &RouteRow| latest(r, |s| s.p99_us.unwrap_or(0) as f64);
                p(b).total_cmp(&p(a)).then_with(|| name(a).cmp(&name(b)))
            }),
            Sort::Rate => rows.sort_by(|a, b| {
                let q = |r: &RouteRow| latest(r, Sample::rate);
                q(b).total_cmp(&q(a)).then_with(|| name(a).cmp(&name(b)))
            }),
            Sort::Name => rows.sort_by_key(name),
        }
        rows
    }

    /// Every fault in place, by sidecar then id.
    pub fn fault_rows(&self) -> Vec<(&SidecarState, &ActiveFault)> {
        let mut rows: Vec<_> = self
            .sidecars
            .iter()
            .flat_map(|s| s.faults.iter().map(move |f| (s, f)))
            .collect();
        rows.sort_by(|a, b| {
            let i = |s: &SidecarState| self.sidecars.iter().position(|x| x.name == s.name);
            i(a.0).cmp(&i(b.0)).then(natural(&a.1.id).cmp(&natural(&b.1.id)))
        });
        rows
    }

    /// While a page alert fires: the SLOs paging, earliest first.
    pub fn incident(&self) -> Option<Incident<'_>> {
        let mut slos: Vec<&SloState> = self.slos.iter().filter(|s| s.page.is_some()).collect();
        slos.sort_by_key(|s| s.page.map(|p| p.since_ms));
        (!slos.is_empty()).then_some(Incident { slos })
    }
}

/// Lower is more at risk: urgency first, then budget left.
fn risk(s: &SloState) -> f64 {
    s.urgency() as f64 * 1e6 + s.status.as_ref().map_or(1e5, |st| st.budget_remaining.clamp(-1e5, 1e5))
}

/// Ids sort as people read them: `f2` before `f10`.
fn natural(id: &str) -> (String, u64) {
    let digits = id.trim_start_matches(|c: char| !c.is_ascii_digit());
    (
        id[..id.len() - digits.len()].to_owned(),
        digits.parse().unwrap_or(u64::MAX),
    )
}

/// Whether two statuses show the same on screen, the replay position aside (shown in seconds,
/// it follows the clock).
fn same_display(a: &SourceStatus, b: &SourceStatus) -> bool {
    match (a, b) {
        (SourceStatus::Live, SourceStatus::Live) => true,
        (SourceStatus::Replay(a), SourceStatus::Replay(b)) => {
            (&a.name, a.start_ms, a.end_ms, a.playing, a.speed) == (&b.name, b.start_ms, b.end_ms, b.playing, b.speed)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use ballast_model::stats::Latency;

    use super::*;

    fn traffic(ok: u64, bad: u64, latencies_us: &[u64]) -> Traffic {
        let mut t = Traffic::default();
        t.counters.requests = ok + bad;
        t.counters.by_status_class.insert("2xx".into(), ok);
        t.counters.by_status_class.insert("5xx".into(), bad);
        if bad > 0 {
            t.counters.by_error.insert(ErrorClass::Timeout, bad);
        }
        let mut l = Latency::default();
        for v in latencies_us {
            l.0.record(*v).unwrap();
        }
        t.latency = l;
        t
    }

    #[test]
    fn a_sample_reads_percentiles_as_hdr_does_and_bins_latencies() {
        let lat: Vec<u64> = (1..=1000).map(|i| i * 100).collect(); // 100 µs .. 100 ms
        let t = traffic(990, 10, &lat);
        let s = Sample::of(&t, 2.0, 5_000);
        let h = &t.latency.0;
        assert_eq!(s.p50_us, Some(h.value_at_quantile(0.5)));
        assert_eq!(s.p90_us, Some(h.value_at_quantile(0.9)));
        assert_eq!(s.p99_us, Some(h.value_at_quantile(0.99)));
        assert_eq!(s.rate(), 500.0);
        assert_eq!(s.error_ratio(), Some(0.01));
        assert_eq!(s.status, [0, 990, 0, 0, 10]);
        assert_eq!(s.errors, [(ErrorClass::Timeout, 10)]);
        // 100 µs to 1 ms: 10 values; above 50 ms and up to 100 ms: 500.
        assert_eq!(s.bins[0], 10);
        assert_eq!(s.bins[6], 500);
        assert_eq!(s.bins.iter().sum::<u32>(), 1000);
        assert_eq!(Sample::of(&Traffic::default(), 1.0, 0).p99_us, None);
    }

    fn snapshot(at: u64, ok: u64, bad: u64) -> Arc<StatsSnapshot> {
        let mut s = StatsSnapshot {
            started_at_ms: 1_000,
            taken_at_ms: at,
            ..Default::default()
        };
        s.routes.insert("api".into(), traffic(ok, bad, &[1_000]));
        s.routes.insert("web".into(), traffic(ok, 0, &[1_000]));
        Arc::new(s)
    }

    fn stats(at_ms: u64, ok: u64, bad: u64) -> Feed {
        Feed::Stats {
            at_ms,
            sidecar: "a".into(),
            snapshot: snapshot(at_ms, ok, bad),
        }
    }

    #[test]
    fn windows_come_from_differences_and_a_silent_sidecar_is_marked_down() {
        let spec = toml::from_str(
            "name = \"api\"\nobjective = 0.99\nwindow = \"10m\"\nalerting = \"scaled\"\nsli = { availability = { route = \"api\" } }",
        )
        .unwrap();
        let mut m = Model::new(vec!["a".into(), "b".into()], vec![spec]).unwrap();
        assert!(m.sidecars[1].stale(), "never seen");
        m.apply(stats(2_000, 100, 0));
        m.apply(stats(3_000, 150, 50));
        let api = m.sidecars[0].routes["api"].latest().unwrap();
        assert_eq!((api.requests, api.status[4]), (100, 50), "the window, not the totals");
        assert_eq!(m.route_rows()[0].route, "api", "the route burning its budget first");
        assert!(m.incident().is_some());
        assert!(
            m.timeline.newest_first().any(|e| e.kind == "alert_firing"),
            "the page is on the timeline"
        );
        m.apply(Feed::Unreachable {
            at_ms: 4_000,
            sidecar: "a".into(),
            error: "connection refused".into(),
        });
        m.apply(Feed::Unreachable {
            at_ms: 5_000,
            sidecar: "a".into(),
            error: "connection refused".into(),
        });
        let a = &m.sidecars[0];
        assert_eq!(
            (a.down.as_ref().unwrap().since_ms, a.last_seen_ms),
            (4_000, Some(3_000))
        );
        m.apply(stats(6_000, 200, 50));
        assert!(!m.sidecars[0].stale(), "back");

        m.ui.filter = "web".into();
        assert_eq!(m.route_rows().len(), 1);
        m.apply(Feed::Reset);
        assert!(m.sidecars[0].routes.is_empty() && m.timeline.is_empty() && m.incident().is_none());
        assert_eq!(m.ui.filter, "web", "the UI stays");
    }

    #[test]
    fn recorded_alerts_of_slos_computed_here_are_not_shown_twice() {
        let spec =
            toml::from_str("name = \"api\"\nobjective = 0.99\nwindow = \"10m\"\nsli = { availability = {} }").unwrap();
        let mut m = Model::new(vec![], vec![spec]).unwrap();
        let alert = |slo: &str| {
            Feed::Event(Event {
                at_ms: 1,
                source: "slo".into(),
                kind: EventKind::AlertResolved {
                    slo: slo.into(),
                    severity: ballast_model::slo::Severity::Page,
                },
            })
        };
        assert!(!m.apply(alert("api")));
        assert!(m.apply(alert("other")));
        assert_eq!(m.timeline.len(), 1);
    }

    #[test]
    fn alerts_from_scrapes_out_of_order_all_reach_the_timeline() {
        let spec = |route: &str| {
            toml::from_str(&format!(
                "name = \"{route}\"\nobjective = 0.99\nwindow = \"10m\"\nalerting = \"scaled\"\nsli = {{ availability = {{ route = \"{route}\" }} }}"
            ))
            .unwrap()
        };
        let mut m = Model::new(vec!["a".into(), "b".into()], vec![spec("api"), spec("web")]).unwrap();
        let scrape = |at: u64, sidecar: &str, route: &str, bad: u64| {
            let mut s = StatsSnapshot {
                started_at_ms: 500,
                taken_at_ms: at,
                ..Default::default()
            };
            s.routes.insert(route.into(), traffic(100, bad, &[]));
            Feed::Stats {
                at_ms: at,
                sidecar: sidecar.into(),
                snapshot: Arc::new(s),
            }
        };
        m.apply(scrape(1_000, "a", "api", 0));
        m.apply(scrape(1_000, "b", "web", 0));
        m.apply(scrape(3_000, "a", "api", 100));
        // b's scrape was answered a little earlier but arrives later.
        m.apply(scrape(2_990, "b", "web", 100));
        let fired: Vec<String> = m
            .timeline
            .newest_first()
            .filter(|e| e.kind == "alert_firing")
            .map(|e| e.detail.split(' ').next().unwrap().to_owned())
            .collect();
        assert!(
            fired.contains(&"api".to_owned()) && fired.contains(&"web".to_owned()),
            "{fired:?}"
        );
    }

    #[test]
    fn fault_ids_sort_naturally() {
        let mut ids = vec!["f10", "f2", "f1", "x"];
        ids.sort_by_key(|id| natural(id));
        assert_eq!(ids, ["f1", "f2", "f10", "x"]);
    }
}
