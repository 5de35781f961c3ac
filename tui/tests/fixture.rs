//! The fixture run folder (`tests/fixtures/run-incident/`), made by [`generate`] and checked
//! against it: a 90-second run of two sidecars, `shop-a` and `shop-b`, in front of a shop,
//! scraped every 2 s.
//!
//! - 0-30 s: calm. `checkout` 40 req/s, `catalog` 80 req/s on each sidecar.
//! - 2 s: shop-a reloads its config.
//! - 30 s: a fault on shop-a, abort 503 on 20% of checkout (TTL 2 min): the checkout SLO pages.
//! - 35-65 s: shop-a ejects endpoint 10.0.0.2:8080 (consecutive 5xx), then restores it.
//! - 50 s: shop-b's health check finds 10.0.0.2:8080 unhealthy; catalog slows down there.
//! - 70 s on: shop-b stops answering its scrapes (connection refused).
//! - 80 s: the fault is removed; the page resolves.
//!
//! `BALLAST_WRITE_FIXTURES=1 cargo test --workspace --test fixture` rewrites the folder.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use ballast_model::fault::Origin;
use ballast_model::stats::{ClusterStats, EndpointState, EndpointStats, Exemplar, Traffic};
use ballast_model::{ActiveFault, ErrorClass, Event, EventKind, FaultSpec, StatsSnapshot};
use ballast_tui::Feed;
use ballast_tui::recording::{Recorder, Recording, SCENARIO_FILE, StatsRecord};

const SCENARIO: &str = r#"title = "checkout under an injected fault (TUI fixture)"

[[slo]]
name = "checkout-availability"
objective = 0.99
window = "10m"
alerting = "scaled"
sli = { availability = { route = "checkout" } }

[[slo]]
name = "catalog-latency"
objective = 0.95
window = "10m"
alerting = "scaled"
sli = { latency = { route = "catalog", threshold = "100ms" } }
"#;

const ENDPOINTS: [&str; 2] = ["10.0.0.1:8080", "10.0.0.2:8080"];

/// One sidecar's cumulative counts as the run goes.
struct Sidecar {
    name: &'static str,
    routes: BTreeMap<String, Traffic>,
    endpoints: [Traffic; 2],
    fault: Option<ActiveFault>,
}

impl Sidecar {
    fn new(name: &'static str) -> Self {
        Sidecar {
            name,
            routes: BTreeMap::new(),
            endpoints: Default::default(),
            fault: None,
        }
    }

    /// Count `n` requests of `route` in second `t`: latencies from `latency(i)`, statuses
    /// from `status(i)`; upstream requests go to the endpoints in `to`.
    fn requests(
        &mut self,
        t: u64,
        route: &str,
        n: u64,
        to: &[usize],
        latency: impl Fn(u64) -> u64,
        status: impl Fn(u64) -> (u16, Option<ErrorClass>, bool),
    ) {
        for i in 0..n {
            let (code, error, upstream) = status(i);
            let us = latency(i);
            let count = |tr: &mut Traffic| {
                let c = &mut tr.counters;
                c.requests += 1;
                *c.by_status_class.entry(format!("{}xx", code / 100)).or_default() += 1;
                if let Some(e) = error {
                    *c.by_error.entry(e).or_default() += 1;
                }
                c.bytes_in += 100;
                c.bytes_out += 2_000;
                tr.latency.0.record(us).unwrap();
            };
            count(self.routes.entry(route.to_owned()).or_default());
            if upstream && !to.is_empty() {
                count(&mut self.endpoints[to[(i as usize) % to.len()]]);
            }
            // Traced requests worth a look: the slowest, and failures.
            if route == "checkout" && (i == 7 || code >= 500 && i % 5 == 0) {
                let ex = Exemplar {
                    trace_id: format!("{:016x}{:016x}", mix(t * 1_000 + i), mix(!(t * 1_000 + i))),
                    at_ms: T0 + t * 1_000,
                    latency_us: us,
                    status: code,
                    error,
                };
                self.routes.get_mut(route).unwrap().exemplars.offer(ex);
            }
        }
    }

    fn snapshot(&self, t: u64, states: [EndpointState; 2]) -> StatsSnapshot {
        let mut cluster = Traffic::default();
        for e in &self.endpoints {
            cluster.counters.requests += e.counters.requests;
            for (k, v) in &e.counters.by_status_class {
                *cluster.counters.by_status_class.entry(k.clone()).or_default() += v;
            }
            cluster.latency.0.add(&e.latency.0).unwrap();
        }
        let mut routes = self.routes.clone();
        for r in routes.values_mut() {
            r.counters.in_flight = 2;
        }
        StatsSnapshot {
            started_at_ms: T0 - 5_000,
            taken_at_ms: T0 + t * 1_000,
            routes,
            clusters: BTreeMap::from([(
                "shop".to_owned(),
                ClusterStats {
                    traffic: cluster,
                    endpoints: ENDPOINTS
                        .iter()
                        .zip(&self.endpoints)
                        .zip(states)
                        .map(|((a, tr), state)| EndpointStats {
                            address: (*a).into(),
                            traffic: Traffic {
                                counters: ballast_model::stats::Counters {
                                    in_flight: 1,
                                    ..tr.counters.clone()
                                },
                                ..tr.clone()
                            },
                            state: Some(state),
                        })
                        .collect(),
                },
            )]),
            faults: self.fault.iter().cloned().collect(),
        }
    }
}

/// SplitMix64: trace ids that look like trace ids, the same every run.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 2026-01-01T00:00:00Z: the run's start.
const T0: u64 = 1_767_225_600_000;
const END_S: u64 = 90;

fn fault_spec() -> FaultSpec {
    toml::from_str("kind = \"abort\"\nstatus = 503\npercent = 20\nroute = \"checkout\"\nttl = \"2m\"").unwrap()
}

/// Write the fixture run folder into `dir`.
pub fn generate(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["stats.jsonl", "events.jsonl"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    std::fs::write(dir.join(SCENARIO_FILE), SCENARIO).unwrap();
    let mut rec = Recorder::open(dir).unwrap();
    let event = |rec: &mut Recorder, t: u64, source: &str, kind: EventKind| {
        rec.event(&Event {
            at_ms: T0 + t * 1_000,
            source: source.into(),
            kind,
        })
        .unwrap()
    };
    let mut a = Sidecar::new("shop-a");
    let mut b = Sidecar::new("shop-b");
    for t in 0..=END_S {
        // Events of this second first, then the scrapes at its end.
        match t {
            2 => event(
                &mut rec,
                t,
                "shop-a",
                EventKind::ConfigReloaded {
                    trigger: "SIGHUP".into(),
                    routes: 2,
                    clusters: 1,
                },
            ),
            30 => {
                event(
                    &mut rec,
                    t,
                    "shop-a",
                    EventKind::FaultAdded {
                        id: "f1".into(),
                        spec: Box::new(fault_spec()),
                        expires_at_ms: Some(T0 + 150_000),
                    },
                );
                a.fault = Some(ActiveFault {
                    id: "f1".into(),
                    origin: Origin::Api,
                    created_at_ms: T0 + 30_000,
                    expires_at_ms: Some(T0 + 150_000),
                    spec: fault_spec(),
                    matched: 0,
                    injected: 0,
                });
            }
            35 => event(
                &mut rec,
                t,
                "shop-a",
                EventKind::EndpointEjected {
                    cluster: "shop".into(),
                    endpoint: ENDPOINTS[1].into(),
                    reason: "consecutive-5xx".into(),
                    until_ms: T0 + 65_000,
                },
            ),
            50 => event(
                &mut rec,
                t,
                "shop-b",
                EventKind::HealthChanged {
                    cluster: "shop".into(),
                    endpoint: ENDPOINTS[1].into(),
                    healthy: false,
                },
            ),
            65 => event(
                &mut rec,
                t,
                "shop-a",
                EventKind::EndpointRestored {
                    cluster: "shop".into(),
                    endpoint: ENDPOINTS[1].into(),
                },
            ),
            80 => {
                event(&mut rec, t, "shop-a", EventKind::FaultRemoved { id: "f1".into() });
                a.fault = None;
            }
            _ => {}
        }
        let faulty = a.fault.is_some();
        let ejected = (35..65).contains(&t);
        // shop-a: checkout, with the fault's 503s (answered at once, never sent upstream)
        // and a few upstream timeouts while the endpoint struggles.
        let to_a: &[usize] = if ejected { &[0] } else { &[0, 1] };
        let slower = if faulty { (t - 30) * 2_000 } else { 0 };
        let checkout_a =
            |i: u64| 15_000 + (i % 10) * 4_000 + (t % 7) * 1_500 + slower + (i / 39) * (200_000 + (t % 5) * 40_000);
        a.requests(t, "checkout", 40, to_a, checkout_a, |i| {
            if faulty && i % 5 == 0 {
                (503, None, false)
            } else if faulty && i % 13 == 1 {
                (504, Some(ErrorClass::Timeout), true)
            } else {
                (200, None, true)
            }
        });
        if let Some(f) = &mut a.fault {
            f.matched += 40;
            f.injected += 8;
        }
        let catalog_a = |i: u64| 3_000 + (i % 8) * 2_000 + (t % 4) * 500 + (i / 79) * (150_000 + (t % 3) * 30_000);
        a.requests(t, "catalog", 80, to_a, catalog_a, |_| (200, None, true));
        if t % 10 == 5 {
            a.requests(
                t,
                "(unmatched)",
                1,
                &[],
                |_| 50,
                |_| (404, Some(ErrorClass::NoRoute), false),
            );
        }
        // shop-b: the same traffic, catalog slow once its second endpoint is unhealthy.
        let sick = t >= 50;
        let to_b: &[usize] = if sick { &[0] } else { &[0, 1] };
        b.requests(
            t,
            "checkout",
            40,
            to_b,
            |i| 14_000 + (i % 10) * 4_000 + (t % 6) * 1_000,
            |_| (200, None, true),
        );
        let catalog_b = |i: u64| {
            if sick && i.is_multiple_of(10) {
                180_000 + (t % 5) * 10_000
            } else {
                3_000 + (i % 8) * 2_000 + (t % 3) * 400
            }
        };
        b.requests(t, "catalog", 80, to_b, catalog_b, |_| (200, None, true));
        let state = |healthy: bool, ejected_until_ms: Option<u64>, ejections: u64| EndpointState {
            healthy,
            ejected_until_ms,
            times_ejected: u32::from(ejected_until_ms.is_some()),
            ejections,
        };
        // Scrapes every other second keep the folder small (and windows of 2 s work too).
        if t % 2 == 1 {
            continue;
        }
        let a_states = [
            state(true, None, 0),
            state(true, ejected.then_some(T0 + 65_000), u64::from(t >= 35)),
        ];
        rec.stats(&StatsRecord {
            at_ms: T0 + t * 1_000 + 1,
            sidecar: a.name.into(),
            snapshot: Some(a.snapshot(t, a_states)),
            error: None,
        })
        .unwrap();
        let b_states = [state(true, None, 0), state(!sick, None, 0)];
        let answered = t < 70;
        rec.stats(&StatsRecord {
            at_ms: T0 + t * 1_000 + 2,
            sidecar: b.name.into(),
            snapshot: answered.then(|| b.snapshot(t, b_states)),
            error: (!answered).then(|| "Connection refused (os error 111)".into()),
        })
        .unwrap();
    }
    rec.flush().unwrap();
}

#[test]
fn the_fixture_run_folder_is_what_generate_writes() {
    let committed = common::fixture_dir();
    if std::env::var_os("BALLAST_WRITE_FIXTURES").is_some() {
        generate(&committed);
    }
    let fresh = tempfile::tempdir().unwrap();
    generate(fresh.path());
    // Compared as records, not bytes: compressed histograms may differ by library version.
    let (want, got) = (
        Recording::read(fresh.path()).unwrap(),
        Recording::read(&committed).unwrap(),
    );
    assert_eq!(got.sidecars, want.sidecars);
    assert_eq!(got.slos, want.slos);
    assert_eq!(
        got.feeds.len(),
        want.feeds.len(),
        "regenerate: BALLAST_WRITE_FIXTURES=1"
    );
    for (i, (g, w)) in got.feeds.iter().zip(&want.feeds).enumerate() {
        assert!(same(g, w), "record {i} differs; regenerate: BALLAST_WRITE_FIXTURES=1");
    }
}

fn same(a: &Feed, b: &Feed) -> bool {
    match (a, b) {
        (
            Feed::Stats {
                at_ms,
                sidecar,
                snapshot,
            },
            Feed::Stats {
                at_ms: at2,
                sidecar: s2,
                snapshot: snap2,
            },
        ) => (at_ms, sidecar) == (at2, s2) && snapshot == snap2,
        (
            Feed::Unreachable { at_ms, sidecar, error },
            Feed::Unreachable {
                at_ms: at2,
                sidecar: s2,
                error: e2,
            },
        ) => (at_ms, sidecar, error) == (at2, s2, e2),
        (Feed::Event(x), Feed::Event(y)) => x == y,
        _ => false,
    }
}
