//! Issue 9's benchmark: building and rendering one frame of a model with 500 routes (five
//! minutes of history each, SLOs on some) and 10,000 events, per view, at 160×48 and 80×24;
//! and taking in one 500-route snapshot.
//!
//!   cargo bench -p ballast-tui --bench frame      (results: bench/RESULTS.md)

use std::hint::black_box;
use std::sync::Arc;

use ballast_model::stats::{ClusterStats, EndpointStats, Traffic};
use ballast_model::{Event, EventKind, StatsSnapshot};
use ballast_tui::ui::{RowKey, View};
use ballast_tui::{Feed, Model, view};
use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const ROUTES: usize = 500;
const EVENTS: usize = 10_000;
const T0: u64 = 1_767_225_600_000;

/// A snapshot at second `t`: each route's cumulative counts and latencies so far.
fn snapshot(t: u64) -> StatsSnapshot {
    let mut s = StatsSnapshot {
        started_at_ms: T0 - 1_000,
        taken_at_ms: T0 + t * 1_000,
        ..Default::default()
    };
    for r in 0..ROUTES as u64 {
        let mut tr = Traffic::default();
        let per_s = 10 + r % 50;
        tr.counters.requests = per_s * (t + 1);
        let bad = (t + 1) * (r % 7);
        tr.counters
            .by_status_class
            .insert("2xx".into(), tr.counters.requests - bad);
        tr.counters.by_status_class.insert("5xx".into(), bad);
        for i in 0..20 {
            tr.latency.0.record_n(1_000 + i * 997 + r * 13, t + 1).unwrap();
        }
        s.routes.insert(format!("route-{r:03}"), tr);
    }
    let mut cluster = ClusterStats::default();
    for e in 0..4 {
        cluster.endpoints.push(EndpointStats {
            address: format!("10.0.0.{e}:8080"),
            ..Default::default()
        });
    }
    s.clusters.insert("shop".into(), cluster);
    s
}

fn model() -> Model {
    let slos = (0..5)
        .map(|i| {
            toml::from_str(&format!(
                "name = \"slo-{i}\"\nobjective = 0.99\nwindow = \"30d\"\nsli = {{ availability = {{ route = \"route-{:03}\" }} }}",
                i * 7
            ))
            .unwrap()
        })
        .collect();
    let mut m = Model::new(vec!["shop-a".into()], slos).unwrap();
    for t in 0..30 {
        m.apply(Feed::Stats {
            at_ms: T0 + t * 1_000,
            sidecar: "shop-a".into(),
            snapshot: Arc::new(snapshot(t)),
        });
    }
    for i in 0..EVENTS as u64 {
        let kind = match i % 3 {
            0 => EventKind::EndpointEjected {
                cluster: "shop".into(),
                endpoint: format!("10.0.0.{}:8080", i % 4),
                reason: "consecutive-5xx".into(),
                until_ms: T0 + i * 10 + 30_000,
            },
            1 => EventKind::EndpointRestored {
                cluster: "shop".into(),
                endpoint: format!("10.0.0.{}:8080", i % 4),
            },
            _ => EventKind::FaultExpired { id: format!("f{i}") },
        };
        m.apply(Feed::Event(Event {
            at_ms: T0 + i * 10,
            source: "shop-a".into(),
            kind,
        }));
    }
    m.apply(Feed::Clock {
        now_ms: T0 + 30_000,
        status: Default::default(),
    });
    m.ui.detail = Some(RowKey {
        sidecar: "shop-a".into(),
        route: "route-007".into(),
    });
    m
}

fn frames(c: &mut Criterion) {
    let mut m = model();
    assert_eq!(m.route_rows().len(), ROUTES);
    assert_eq!(m.timeline.len(), EVENTS);
    for (w, h) in [(160, 48), (80, 24)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        for v in View::ALL {
            m.ui.view = v;
            c.bench_function(&format!("frame {} {w}x{h}", v.title().to_lowercase()), |b| {
                b.iter(|| {
                    // A full redraw each time, as after a resize: nothing carried over.
                    terminal.clear().unwrap();
                    terminal.draw(|f| view(black_box(&m), f)).unwrap();
                })
            });
        }
    }
    // The overview with a filter typed: every route name is matched.
    m.ui.view = View::Overview;
    m.ui.filter = "route-4".into();
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    c.bench_function("frame overview 160x48 filtered", |b| {
        b.iter(|| {
            terminal.clear().unwrap();
            terminal.draw(|f| view(black_box(&m), f)).unwrap();
        })
    });
}

fn ingest(c: &mut Criterion) {
    let mut m = model();
    let next = Arc::new(snapshot(30));
    c.bench_function("ingest one 500-route snapshot", |b| {
        b.iter(|| {
            m.apply(Feed::Stats {
                at_ms: T0 + 30_000,
                sidecar: "shop-a".into(),
                snapshot: next.clone(),
            })
        })
    });
}

criterion_group!(benches, frames, ingest);
criterion_main!(benches);
