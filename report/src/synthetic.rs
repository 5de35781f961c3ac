//! Run folders made from a description, as `ballast run` would write them: the fixture of the
//! tests (every number known) and the benchmark's 10-million-request run.
//!
//! The caller gives, per second and route, the requests that completed in it; this writes
//! `requests.csv`, `timeseries.csv` (client rows, and sidecar rows with the same counts when
//! asked), `events.jsonl`, `scenario.toml`, `slo.csv` / `slo.json` (the SLOs evaluated over
//! the requests: a failed request is bad for an availability SLI, one slower than the
//! threshold for a latency SLI; the window is taken to span the run), `stats.jsonl` (failed
//! exemplars) and `summary.json`. Per-second percentiles are nearest-rank.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use ballast_model::load::Failure;
use ballast_model::slo::{Severity, Sli, SloSpec};
use ballast_model::stats::{Exemplar, Exemplars, Traffic};
use ballast_model::{ErrorClass, Event, EventKind, StatsSnapshot};

/// One request, by when its answer completed (the second it is given for).
#[derive(Clone, Debug, PartialEq)]
pub struct Req {
    pub latency_us: u64,
    pub status: Option<u16>,
    /// The failure class; `None` when it succeeded.
    pub error: Option<String>,
}

impl Req {
    pub fn ok(latency_ms: f64) -> Req {
        Req {
            latency_us: (latency_ms * 1000.0).round() as u64,
            status: Some(200),
            error: None,
        }
    }

    pub fn failed(latency_ms: f64, status: Option<u16>, class: &str) -> Req {
        Req {
            latency_us: (latency_ms * 1000.0).round() as u64,
            status,
            error: Some(class.to_owned()),
        }
    }
}

/// What the run looked like, apart from its requests.
#[derive(Clone, Debug)]
pub struct Spec {
    pub title: String,
    pub started_at_ms: u64,
    pub seconds: u64,
    pub routes: Vec<String>,
    /// The timeline (faults, alerts, ...), Unix ms.
    pub events: Vec<Event>,
    /// Availability or latency SLOs, evaluated over the requests (`sli.route` picks a route).
    pub slos: Vec<SloSpec>,
    /// Also write `sidecar` rows in `timeseries.csv` (the same counts).
    pub sidecar_rows: bool,
    /// Write `stats.jsonl` with the failed requests' exemplars (made-up trace ids).
    pub exemplars: bool,
}

/// A made-up, stable trace id for a request.
pub fn trace_id(second: u64, route: usize, k: usize) -> String {
    format!("{:016x}{:08x}{:08x}", 0x0ba1_1a57_u64 ^ second, route, k)
}

/// Write the run folder into `dir` (created if needed). `requests(second, route)` gives
/// the requests that completed in that second on that route.
pub fn write(dir: &Path, spec: &Spec, mut requests: impl FnMut(u64, &str) -> Vec<Req>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut req_csv = BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("requests.csv"))?);
    writeln!(req_csv, "intended_us,start_us,latency_us,status,transaction,error")?;
    let mut ts = BufWriter::new(std::fs::File::create(dir.join("timeseries.csv"))?);
    let error_columns: Vec<Failure> = Failure::all().collect();
    write!(
        ts,
        "second,at_ms,source,route,target,in_flight,requests,ok,failed,p50_ms,p90_ms,p99_ms,max_ms,status_1xx,status_2xx,status_3xx,status_4xx,status_5xx"
    )?;
    for f in &error_columns {
        write!(ts, ",errors_{}", f.as_str().replace('-', "_"))?;
    }
    writeln!(ts)?;
    let mut stats = if spec.exemplars {
        Some(BufWriter::new(std::fs::File::create(dir.join("stats.jsonl"))?))
    } else {
        None
    };
    let mut slo_csv = BufWriter::new(std::fs::File::create(dir.join("slo.csv"))?);
    writeln!(
        slo_csv,
        "second,at_ms,slo,good,total,sli,budget_remaining,burn_short,burn_long,page,ticket"
    )?;
    let mut slo_counts: Vec<(u64, u64)> = vec![(0, 0); spec.slos.len()];
    let mut slo_history: Vec<Vec<(u64, u64)>> = vec![Vec::new(); spec.slos.len()];
    let mut line = String::with_capacity(96);

    for s in 0..spec.seconds {
        let at_ms = spec.started_at_ms + s * 1000;
        let per_route: Vec<Vec<Req>> = spec.routes.iter().map(|r| requests(s, r)).collect();
        // requests.csv: the routes' requests interleaved by completion time.
        let most = per_route.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..most {
            for (route, rs) in spec.routes.iter().zip(&per_route) {
                let Some(r) = rs.get(k) else { continue };
                let end_us = at_ms * 1000 + (k as u64 * 1_000_000) / rs.len() as u64;
                let intended = end_us.saturating_sub(r.latency_us);
                line.clear();
                let _ = write!(line, "{intended},{intended},{},", r.latency_us);
                if let Some(st) = r.status {
                    let _ = write!(line, "{st}");
                }
                let _ = writeln!(line, ",{route},{}", r.error.as_deref().unwrap_or(""));
                req_csv.write_all(line.as_bytes())?;
            }
        }
        // timeseries.csv: all routes, then each.
        let all: Vec<&Req> = per_route.iter().flatten().collect();
        let sources: &[&str] = if spec.sidecar_rows {
            &["client", "sidecar"]
        } else {
            &["client"]
        };
        for source in sources {
            ts_row(&mut ts, s, at_ms, source, "*", &all, &error_columns)?;
            for (route, rs) in spec.routes.iter().zip(&per_route) {
                ts_row(
                    &mut ts,
                    s,
                    at_ms,
                    source,
                    route,
                    &rs.iter().collect::<Vec<_>>(),
                    &error_columns,
                )?;
            }
        }
        // SLOs over the requests so far.
        for (i, slo) in spec.slos.iter().enumerate() {
            let (good, total) = per_route
                .iter()
                .zip(&spec.routes)
                .filter(|(_, r)| slo.route().is_none_or(|want| want == r.as_str()))
                .flat_map(|(rs, _)| rs)
                .fold((0, 0), |(g, t), r| (g + u64::from(is_good(slo, r)), t + 1));
            slo_counts[i].0 += good;
            slo_counts[i].1 += total;
            slo_history[i].push((good, total));
            let (g, t) = slo_counts[i];
            let allowed = 1.0 - slo.objective;
            let remaining = if t == 0 {
                1.0
            } else {
                1.0 - (t - g) as f64 / (allowed * t as f64)
            };
            let burn = |n: usize| {
                let (g, t) = slo_history[i]
                    .iter()
                    .rev()
                    .take(n)
                    .fold((0, 0), |(a, b), (g, t)| (a + g, b + t));
                if t == 0 {
                    0.0
                } else {
                    (t - g) as f64 / t as f64 / allowed
                }
            };
            let sli = if t == 0 {
                String::new()
            } else {
                format!("{:.6}", g as f64 / t as f64)
            };
            writeln!(
                slo_csv,
                "{s},{at_ms},{},{g},{t},{sli},{remaining:.6},{:.3},{:.3},{},{}",
                slo.name,
                burn(5),
                burn(60),
                alert_state(&spec.events, &slo.name, Severity::Page, at_ms + 999),
                alert_state(&spec.events, &slo.name, Severity::Ticket, at_ms + 999),
            )?;
        }
        if let Some(out) = stats.as_mut() {
            let mut snapshot = StatsSnapshot {
                started_at_ms: spec.started_at_ms,
                taken_at_ms: at_ms + 1000,
                ..StatsSnapshot::default()
            };
            for (ri, (route, rs)) in spec.routes.iter().zip(&per_route).enumerate() {
                let mut ex = Exemplars::default();
                for (k, r) in rs.iter().enumerate().filter(|(_, r)| r.error.is_some()) {
                    ex.offer(Exemplar {
                        trace_id: trace_id(s, ri, k),
                        at_ms: at_ms + (k as u64 * 1000) / rs.len() as u64,
                        latency_us: r.latency_us,
                        status: r.status.unwrap_or(502).max(500),
                        error: r.error.as_deref().and_then(|c| c.parse::<ErrorClass>().ok()),
                    });
                }
                snapshot.routes.insert(
                    route.clone(),
                    Traffic {
                        exemplars: ex,
                        ..Traffic::default()
                    },
                );
            }
            let json = serde_json::json!({"at_ms": at_ms + 1000, "sidecar": "sidecar", "snapshot": snapshot});
            writeln!(out, "{json}")?;
        }
    }
    req_csv.flush()?;
    ts.flush()?;
    slo_csv.flush()?;
    if let Some(mut s) = stats {
        s.flush()?;
    }
    if spec.slos.is_empty() {
        std::fs::remove_file(dir.join("slo.csv"))?;
    } else {
        write_slo_json(dir, spec, &slo_counts)?;
    }

    let mut events = String::new();
    for e in &spec.events {
        events.push_str(&serde_json::to_string(e).map_err(io::Error::other)?);
        events.push('\n');
    }
    std::fs::write(dir.join("events.jsonl"), events)?;
    let mut scenario = format!("title = {:?}\n", spec.title);
    for slo in &spec.slos {
        scenario.push_str("\n[[slo]]\n");
        scenario.push_str(&toml::to_string(slo).map_err(io::Error::other)?);
    }
    std::fs::write(dir.join("scenario.toml"), scenario)?;
    let passed = slo_counts
        .iter()
        .zip(&spec.slos)
        .all(|((g, t), s)| (t - g) as f64 <= (1.0 - s.objective) * *t as f64);
    let summary = serde_json::json!({
        "scenario": spec.title,
        "started_at_ms": spec.started_at_ms,
        "ended_at_ms": spec.started_at_ms + spec.seconds * 1000,
        "passed": passed,
        "exit_code": if passed { 0 } else { 1 },
        "thresholds": [], "hypotheses": [], "slos": [],
    });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).map_err(io::Error::other)?,
    )
}

fn is_good(slo: &SloSpec, r: &Req) -> bool {
    match &slo.sli {
        Sli::Latency(l) => r.error.is_none() && r.latency_us <= l.threshold.get().as_micros() as u64,
        _ => r.error.is_none(),
    }
}

/// An alert's state at `at_ms` from the events: firing between its firing and resolved
/// events, resolved after, inactive before.
fn alert_state(events: &[Event], slo: &str, severity: Severity, at_ms: u64) -> &'static str {
    let mut state = "inactive";
    for e in events.iter().filter(|e| e.at_ms <= at_ms) {
        match &e.kind {
            EventKind::AlertFiring {
                slo: s, severity: v, ..
            } if s == slo && *v == severity => state = "firing",
            EventKind::AlertResolved { slo: s, severity: v } if s == slo && *v == severity => state = "resolved",
            _ => {}
        }
    }
    state
}

fn write_slo_json(dir: &Path, spec: &Spec, counts: &[(u64, u64)]) -> io::Result<()> {
    let list: Vec<serde_json::Value> = spec
        .slos
        .iter()
        .zip(counts)
        .map(|(slo, &(g, t))| {
            let allowed = 1.0 - slo.objective;
            let budget = allowed * t as f64;
            let remaining = if t == 0 { 1.0 } else { 1.0 - (t - g) as f64 / budget };
            let mut alerts: Vec<serde_json::Value> = Vec::new();
            let mut open: BTreeMap<Severity, usize> = BTreeMap::new();
            for e in &spec.events {
                match &e.kind {
                    EventKind::AlertFiring { slo: s, severity, .. } if s == &slo.name => {
                        open.insert(*severity, alerts.len());
                        alerts.push(
                            serde_json::json!({"severity": severity, "fired_at_ms": e.at_ms, "resolved_at_ms": null}),
                        );
                    }
                    EventKind::AlertResolved { slo: s, severity } if s == &slo.name => {
                        if let Some(i) = open.remove(severity) {
                            alerts[i]["resolved_at_ms"] = e.at_ms.into();
                        }
                    }
                    _ => {}
                }
            }
            serde_json::json!({
                "name": slo.name,
                "objective": slo.objective,
                "spec": slo,
                "status": {
                    "name": slo.name, "objective": slo.objective, "good": g, "total": t,
                    "sli": if t == 0 { None } else { Some(g as f64 / t as f64) },
                    "budget": budget, "budget_remaining": remaining,
                    "burn_rates": [], "exhaustion_in_ms": null, "alerts": {}
                },
                "alerts": alerts,
                "budget_consumed": 1.0 - remaining,
            })
        })
        .collect();
    std::fs::write(
        dir.join("slo.json"),
        serde_json::to_string_pretty(&list).map_err(io::Error::other)?,
    )
}

fn ts_row(
    out: &mut impl Write,
    second: u64,
    at_ms: u64,
    source: &str,
    route: &str,
    reqs: &[&Req],
    error_columns: &[Failure],
) -> io::Result<()> {
    let mut lat: Vec<u64> = reqs.iter().map(|r| r.latency_us).collect();
    lat.sort_unstable();
    let q = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let r = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
        lat[r - 1] as f64 / 1000.0
    };
    let failed = reqs.iter().filter(|r| r.error.is_some()).count();
    let target = if source == "client" {
        format!("{:.3}", reqs.len() as f64)
    } else {
        String::new()
    };
    write!(
        out,
        "{second},{at_ms},{source},{route},{target},0,{},{},{failed},{:.3},{:.3},{:.3},{:.3}",
        reqs.len(),
        reqs.len() - failed,
        q(0.5),
        q(0.9),
        q(0.99),
        lat.last().map_or(0.0, |&v| v as f64 / 1000.0)
    )?;
    for class in 1..=5u16 {
        let n = reqs
            .iter()
            .filter(|r| r.status.is_some_and(|s| s / 100 == class))
            .count();
        write!(out, ",{n}")?;
    }
    for f in error_columns {
        let n = reqs.iter().filter(|r| r.error.as_deref() == Some(f.as_str())).count();
        write!(out, ",{n}")?;
    }
    writeln!(out)
}

/// The tests' game day, every number known: 40 s from 2026-01-01 00:00:00 UTC, routes
/// `catalog` and `checkout` at 10 requests/s each. With `incident`, fault `f1` (abort 503,
/// 10% of checkout, upstream) is in place from +10 s to +20 s: checkout fails 1 request in 10
/// (`unexpected-status`, 2 ms) with the others at 100..108 ms, then 1 in 10 fails with `reset`
/// (30 ms) for two more seconds; the page alert of `checkout-availability` (objective 0.9)
/// fires at +14.5 s and resolves at +30.2 s. Otherwise checkout answers 10..19 ms. Catalog
/// answers 5..14 ms throughout, but for one `timeout` (1 s) at +5 s, in both runs.
pub fn game_day(dir: &Path, incident: bool) -> io::Result<()> {
    use ballast_model::fault::{FaultKind, FaultSpec, Position};
    use ballast_model::units::HumanDuration;
    use std::time::Duration;

    let start = 1_767_225_600_000;
    let slo: SloSpec = toml::from_str(
        "name = \"checkout-availability\"\nobjective = 0.9\nwindow = \"10m\"\nalerting = \"scaled\"\nsli = { availability = { route = \"checkout\", source = \"loadgen\" } }",
    )
    .map_err(io::Error::other)?;
    let mut events = Vec::new();
    if incident {
        let spec = FaultSpec {
            kind: FaultKind::Abort,
            status: Some(503),
            percent: Some(10.0),
            route: Some("checkout".into()),
            position: Some(Position::Upstream),
            ttl: Some(HumanDuration(Duration::from_secs(10))),
            id: Some("f1".into()),
            ..FaultSpec::default()
        };
        let ev = |at: u64, source: &str, kind: EventKind| Event {
            at_ms: start + at,
            source: source.into(),
            kind,
        };
        events = vec![
            ev(
                10_000,
                "sidecar",
                EventKind::FaultAdded {
                    id: "f1".into(),
                    spec: Box::new(spec),
                    expires_at_ms: Some(start + 20_000),
                },
            ),
            ev(
                14_500,
                "slo",
                EventKind::AlertFiring {
                    slo: slo.name.clone(),
                    severity: Severity::Page,
                    burn_long: 10.0,
                    burn_short: 10.0,
                },
            ),
            ev(20_000, "sidecar", EventKind::FaultExpired { id: "f1".into() }),
            ev(
                30_200,
                "slo",
                EventKind::AlertResolved {
                    slo: slo.name.clone(),
                    severity: Severity::Page,
                },
            ),
        ];
    }
    let spec = Spec {
        title: if incident {
            "checkout survives a failing payment provider"
        } else {
            "a quiet run"
        }
        .into(),
        started_at_ms: start,
        seconds: 40,
        routes: vec!["catalog".into(), "checkout".into()],
        events,
        slos: vec![slo],
        sidecar_rows: true,
        exemplars: true,
    };
    write(dir, &spec, |s, route| match route {
        "catalog" => (0..10)
            .map(|k| {
                if s == 5 && k == 9 {
                    Req::failed(1000.0, Some(504), "timeout")
                } else {
                    Req::ok(5.0 + k as f64)
                }
            })
            .collect(),
        _ if incident && (10..20).contains(&s) => (0..10)
            .map(|k| {
                if k == 0 {
                    Req::failed(2.0, Some(503), "unexpected-status")
                } else {
                    Req::ok(99.0 + k as f64)
                }
            })
            .collect(),
        _ if incident && (20..22).contains(&s) => (0..10)
            .map(|k| {
                if k == 0 {
                    Req::failed(30.0, None, "reset")
                } else {
                    Req::ok(9.0 + k as f64)
                }
            })
            .collect(),
        _ => (0..10).map(|k| Req::ok(10.0 + k as f64)).collect(),
    })?;
    // The runner's own events, of kinds the model does not have (yet).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("events.jsonl"))?;
    writeln!(
        f,
        r#"{{"at_ms":{start},"source":"runner","kind":"run_started","scenario":"{}"}}"#,
        spec.title
    )?;
    writeln!(
        f,
        r#"{{"at_ms":{},"source":"runner","kind":"run_ended"}}"#,
        start + 40_000
    )
}
