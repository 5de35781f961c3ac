//! The report's content, once, as blocks both renderings share: the blameless post-mortem
//! template's sections, computed parts filled in, the rest as marked prompts seeded with what
//! the data suggests.

use crate::analysis::faults::{Ended, Figure};
use crate::analysis::{Analysis, Phase};
use crate::time::{duration, offset, utc};

#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    Heading(u8, String),
    Para(String),
    List(Vec<String>),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// For people to write: the question, and what the data suggests.
    Prompt {
        ask: String,
        seeds: Vec<String>,
    },
    /// A chart (HTML only; the Markdown points to it).
    Chart(Chart),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chart {
    Latency,
    ErrorRate,
    Budget,
    Histogram,
}

impl Chart {
    pub fn title(self) -> &'static str {
        match self {
            Chart::Latency => "Latency p50 and p99 over time",
            Chart::ErrorRate => "Error rate over time",
            Chart::Budget => "Error budget remaining over time",
            Chart::Histogram => "Latency histogram, before vs during",
        }
    }
}

pub fn pct(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

pub fn ms(v: f64) -> String {
    format!("{v:.1} ms")
}

/// The summary's first sentence.
pub fn headline(a: &Analysis) -> String {
    let (requests, failed) = a.totals();
    match (&a.incident, &a.impact) {
        (Some(i), Some(imp)) => format!(
            "Incident from {} to {} ({}{}): {} of {} requests failed ({}) while it lasted",
            offset(i.start.at_ms),
            i.end_ms.map_or("the end of the run".to_owned(), offset),
            duration(i.duration_ms),
            if i.end_ms.is_none() { ", not recovered" } else { "" },
            imp.failed,
            imp.requests,
            pct(imp.share)
        ),
        _ => format!(
            "No incident: no route degraded and no alert fired in the {} run ({} of {} requests failed, {})",
            duration(a.length_ms as u64),
            failed,
            requests,
            pct(if requests == 0 {
                0.0
            } else {
                failed as f64 / requests as f64
            })
        ),
    }
}

pub fn build(a: &Analysis) -> Vec<Block> {
    let mut d = Vec::new();
    let title = a.title.clone().unwrap_or_else(|| a.id.clone());
    d.push(Block::Heading(1, format!("Post-mortem: {title}")));
    d.push(Block::Para(format!(
        "Draft written by `ballast report` from the run `{}` (started {}, {} long{}). Computed figures are filled in; parts marked ✍ are for people to write.",
        a.id,
        utc(a.started_at_ms),
        duration(a.length_ms as u64),
        match a.passed {
            Some(true) => ", verdict: passed",
            Some(false) => ", verdict: failed",
            None => "",
        }
    )));
    summary(a, &mut d);
    impact(a, &mut d);
    detection(a, &mut d);
    timeline(a, &mut d);
    root_causes(a, &mut d);
    trigger(a, &mut d);
    resolution(a, &mut d);
    action_items(a, &mut d);
    lessons(a, &mut d);
    method(a, &mut d);
    d
}

fn summary(a: &Analysis, d: &mut Vec<Block>) {
    d.push(Block::Heading(2, "Summary".into()));
    let mut facts = vec![format!("{}.", headline(a))];
    if let (Some(det), Some(rec)) = (&a.detection, &a.recovery) {
        facts.push(match (&det.alert, det.ttd_ms, &det.reference) {
            (Some(al), Some(ttd), Some(r)) => format!(
                "Detected by the {} alert of {} {} after {}.",
                al.severity.as_str(),
                al.slo,
                duration(ttd),
                r.what
            ),
            _ => "No alert fired: the incident went undetected by alerting.".into(),
        });
        facts.push(match (rec.at_ms, rec.ttr_ms) {
            (Some(at), Some(ttr)) => format!(
                "Recovered at {}, {} after {}.",
                offset(at),
                duration(ttr),
                rec.from.what
            ),
            _ => format!(
                "Not recovered by the end of the run (counting from: {}).",
                rec.from.what
            ),
        });
        for b in &a.budgets {
            facts.push(format!(
                "{} spent {} of its window's error budget ({} left after the incident).",
                b.slo,
                pct(b.share),
                pct(b.remaining_after)
            ));
        }
    }
    d.push(Block::Para(facts.join(" ")));
    let seeds = match &a.impact {
        Some(imp) => imp
            .routes
            .iter()
            .filter(|r| r.failed > 0 || r.p99_during_ms > r.p99_before_ms * a.rules.latency_factor)
            .map(|r| {
                format!(
                    "users of {} were hurt: {} of requests failed, p99 {} → {}",
                    r.route,
                    pct(r.share),
                    ms(r.p99_before_ms),
                    ms(r.p99_during_ms)
                )
            })
            .collect(),
        None => vec![format!(
            "{} fault(s) injected, none moved a figure past the degradation rules",
            a.faults.len()
        )],
    };
    d.push(Block::Prompt {
        ask: "In two or three sentences for readers outside the team: what happened, who was affected, and what the run teaches.".into(),
        seeds,
    });
}

fn phase_table(a: &Analysis) -> Block {
    let mut header = vec!["route".to_owned()];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for p in &a.phases {
        header.push(format!("{} p50 / p90 / p99 / max (ms)", p.name));
    }
    let cell = |p: &Phase, route: Option<&str>| {
        let f = match route {
            Some(r) => p.stats.routes.get(r).copied(),
            None => Some(p.stats.all),
        };
        f.filter(|f| f.requests > 0).map_or("–".to_owned(), |f| {
            format!("{:.1} / {:.1} / {:.1} / {:.1}", f.p50_ms, f.p90_ms, f.p99_ms, f.max_ms)
        })
    };
    rows.push(
        std::iter::once("all".to_owned())
            .chain(a.phases.iter().map(|p| cell(p, None)))
            .collect(),
    );
    for r in &a.routes {
        rows.push(
            std::iter::once(r.clone())
                .chain(a.phases.iter().map(|p| cell(p, Some(r))))
                .collect(),
        );
    }
    Block::Table { header, rows }
}

fn impact(a: &Analysis, d: &mut Vec<Block>) {
    d.push(Block::Heading(2, "Impact".into()));
    match (&a.incident, &a.impact) {
        (Some(i), Some(imp)) => {
            d.push(Block::Para(format!(
                "During the incident ({} to {}, {}): {} requests, {} failed ({}).",
                offset(i.start.at_ms),
                i.end_ms.map_or("the end of the run".into(), offset),
                duration(i.duration_ms),
                imp.requests,
                imp.failed,
                pct(imp.share)
            )));
            d.push(Block::Table {
                header: [
                    "route",
                    "requests",
                    "failed",
                    "share failed",
                    "p99 before",
                    "p99 during",
                ]
                .map(String::from)
                .into(),
                rows: imp
                    .routes
                    .iter()
                    .map(|r| {
                        vec![
                            r.route.clone(),
                            r.requests.to_string(),
                            r.failed.to_string(),
                            pct(r.share),
                            ms(r.p99_before_ms),
                            ms(r.p99_during_ms),
                        ]
                    })
                    .collect(),
            });
            if !imp.classes.is_empty() {
                d.push(Block::Heading(3, "Top error classes".into()));
                d.push(Block::Table {
                    header: ["error class", "failed", "share of failures", "routes"]
                        .map(String::from)
                        .into(),
                    rows: imp
                        .classes
                        .iter()
                        .map(|(c, n, s)| {
                            let routes: Vec<String> = imp
                                .by_route_and_class
                                .iter()
                                .filter(|(_, class, _)| class == c)
                                .map(|(r, _, n)| format!("{r} ({n})"))
                                .collect();
                            vec![c.clone(), n.to_string(), pct(*s), routes.join(", ")]
                        })
                        .collect(),
                });
            }
        }
        _ => {
            let (requests, failed) = a.totals();
            d.push(Block::Para(format!(
                "No incident, so no impact to count: {requests} requests over the run, {failed} failed."
            )));
        }
    }
    if !a.traces.is_empty() {
        const SHOWN: usize = 10;
        d.push(Block::Heading(3, "Example failing traces".into()));
        d.push(Block::Para(format!(
            "{} failed traced requests during the incident (the sidecar's exemplars){}:",
            a.traces.len(),
            if a.traces.len() > SHOWN {
                format!("; the first {SHOWN}")
            } else {
                String::new()
            }
        )));
        d.push(Block::Table {
            header: ["trace id", "route", "at", "status", "error", "latency"]
                .map(String::from)
                .into(),
            rows: a
                .traces
                .iter()
                .take(SHOWN)
                .map(|t| {
                    vec![
                        format!("`{}`", t.trace_id),
                        t.route.clone(),
                        offset(t.at_ms as i64 - a.started_at_ms as i64),
                        t.status.to_string(),
                        t.error.clone().unwrap_or_else(|| "–".into()),
                        ms(t.latency_us as f64 / 1000.0),
                    ]
                })
                .collect(),
        });
    }
    if !a.budgets.is_empty() {
        d.push(Block::Heading(3, "Error budget".into()));
        d.push(Block::Table {
            header: [
                "SLO",
                "objective",
                "bad during the incident",
                "share of the window's budget",
                "left before",
                "left after",
                "left at the end of the run",
            ]
            .map(String::from)
            .into(),
            rows: a
                .budgets
                .iter()
                .map(|b| {
                    vec![
                        b.slo.clone(),
                        format!("{}", b.objective),
                        format!("{} {}", b.bad, b.unit),
                        format!("{} (of {:.1} {})", pct(b.share), b.window_budget, b.unit),
                        pct(b.remaining_before),
                        pct(b.remaining_after),
                        pct(b.remaining_at_end),
                    ]
                })
                .collect(),
        });
        for b in a.budgets.iter().filter(|b| b.window_shorter_than_run) {
            d.push(Block::Para(format!(
                "{}'s window is shorter than the run: events left the window meanwhile, so its bad count is a lower bound.",
                b.slo
            )));
        }
    }
    d.push(Block::Heading(3, "Latency by phase".into()));
    d.push(phase_table(a));
    d.push(Block::Chart(Chart::Latency));
    d.push(Block::Chart(Chart::ErrorRate));
    if !a.lines.budgets.is_empty() {
        d.push(Block::Chart(Chart::Budget));
    }
    if a.incident.is_some() {
        d.push(Block::Chart(Chart::Histogram));
    }
    if !a.faults.is_empty() {
        d.push(Block::Heading(3, "What each fault moved".into()));
        for f in &a.faults {
            let w = &f.window;
            d.push(Block::Para(format!(
                "Fault {} ({}): in place from {} to {}{}.",
                w.id,
                f.description,
                offset(w.added_ms),
                w.ended_ms.map_or("the end of the run".to_owned(), offset),
                match w.ended_by {
                    Ended::Expired => " (TTL)",
                    Ended::Removed => " (removed)",
                    Ended::StillActive => " (still in place)",
                }
            )));
            if f.moved.is_empty() {
                d.push(Block::Para("Nothing moved past the rules on any route.".into()));
                continue;
            }
            let value = |fig: Figure, v: f64| match fig {
                Figure::ErrorRate => pct(v),
                Figure::P50 | Figure::P99 => ms(v),
                Figure::Throughput => format!("{v:.1} req/s"),
            };
            d.push(Block::Table {
                header: ["route", "figure", "baseline", "during the fault", "change", "degraded"]
                    .map(String::from)
                    .into(),
                rows: f
                    .moved
                    .iter()
                    .map(|m| {
                        let change = match m.figure {
                            Figure::ErrorRate => format!("{:+.1} points", (m.during - m.before) * 100.0),
                            _ if m.before > 0.0 => format!("×{:.2}", m.during / m.before),
                            _ => "new".into(),
                        };
                        let when = f.degraded.iter().find(|(r, ..)| r == &m.route).map_or(
                            "–".to_owned(),
                            |(_, first, last)| {
                                format!(
                                    "{} to {} ({} after the fault began)",
                                    offset(*first as i64 * 1000),
                                    offset(*last as i64 * 1000 + 1000),
                                    duration((*first as i64 * 1000 - w.added_ms).max(0) as u64)
                                )
                            },
                        );
                        vec![
                            m.route.clone(),
                            m.figure.name().into(),
                            value(m.figure, m.before),
                            value(m.figure, m.during),
                            change,
                            when,
                        ]
                    })
                    .collect(),
            });
            if !f.unmoved.is_empty() {
                d.push(Block::Para(format!("Unmoved: {}.", f.unmoved.join(", "))));
            }
        }
    }
    d.push(Block::Prompt {
        ask: "Who are the users behind these routes, and what did the failures cost them (orders, sign-ins, pages)?"
            .into(),
        seeds: Vec::new(),
    });
}

fn detection(a: &Analysis, d: &mut Vec<Block>) {
    d.push(Block::Heading(2, "Detection".into()));
    match &a.detection {
        Some(det) => {
            let mut items = Vec::new();
            if let Some(r) = &det.reference {
                items.push(format!("Start: {} at {}.", r.what, offset(r.at_ms)));
            }
            if let Some(i) = &a.incident {
                items.push(format!(
                    "Incident start: {} at {}.",
                    i.start.what,
                    offset(i.start.at_ms)
                ));
            }
            match (&det.alert, det.ttd_ms) {
                (Some(al), Some(ttd)) => items.push(format!(
                    "First alert: {} of {} at {}{}. **Time to detect: {}.**",
                    al.severity.as_str(),
                    al.slo,
                    offset(al.fired_ms),
                    al.burn
                        .map(|(l, s)| format!(" (burn rate {l:.1} long, {s:.1} short)"))
                        .unwrap_or_default(),
                    duration(ttd)
                )),
                _ => items.push("No alert fired after the start: **not detected by alerting.**".into()),
            }
            d.push(Block::List(items));
        }
        None => d.push(Block::Para("Nothing to detect: no incident.".into())),
    }
    if !a.alerts.is_empty() {
        d.push(Block::Table {
            header: ["SLO", "severity", "fired", "resolved"].map(String::from).into(),
            rows: a
                .alerts
                .iter()
                .map(|al| {
                    vec![
                        al.slo.clone(),
                        al.severity.as_str().into(),
                        offset(al.fired_ms),
                        al.resolved_ms.map_or("still firing at the end".into(), offset),
                    ]
                })
                .collect(),
        });
    }
    if a.incident.is_some() {
        d.push(Block::Prompt {
            ask: "How did people learn of it (page, dashboard, a user)? Would the alert have woken the right person?"
                .into(),
            seeds: a
                .detection
                .as_ref()
                .and_then(|det| det.ttd_ms)
                .map(|t| vec![format!("alerting took {} from the first sign of trouble", duration(t))])
                .unwrap_or_else(|| vec!["no alert fired: what would have caught it?".into()]),
        });
    }
}

fn timeline(a: &Analysis, d: &mut Vec<Block>) {
    d.push(Block::Heading(2, "Timeline".into()));
    if a.timeline.is_empty() {
        d.push(Block::Para("No events were recorded.".into()));
        return;
    }
    d.push(Block::Table {
        header: ["at", "UTC", "source", "what"].map(String::from).into(),
        rows: a
            .timeline
            .iter()
            .map(|e| {
                vec![
                    offset(e.at_ms),
                    utc((a.started_at_ms as i64 + e.at_ms).max(0) as u64),
                    e.source.clone(),
                    e.text.clone(),
                ]
            })
            .collect(),
    });
}

fn moved_summary(a: &Analysis) -> Vec<String> {
    a.faults
        .iter()
        .filter(|f| !f.moved.is_empty())
        .map(|f| {
            let what: Vec<String> = f
                .moved
                .iter()
                .map(|m| format!("{} {}", m.route, m.figure.name()))
                .collect();
            format!("fault {} ({}) moved {}", f.window.id, f.description, what.join(", "))
        })
        .collect()
}

fn root_causes(a: &Analysis, d: &mut Vec<Block>) {
    d.push(Block::Heading(2, "Root causes".into()));
    let mut seeds = moved_summary(a);
    if let Some(imp) = &a.impact
        && let Some((class, n, share)) = imp.classes.first()
    {
        seeds.push(format!("most failures were `{class}` ({n}, {} of them)", pct(*share)));
    }
    d.push(Block::Prompt {
        ask: "Why could this fault reach users? Name the weaknesses (missing retry, no timeout, shared pool, ...), not people.".into(),
        seeds,
    });
}

fn trigger(a: &Analysis, d: &mut Vec<Block>) {
    d.push(Block::Heading(2, "Trigger".into()));
    let items: Vec<String> = a
        .faults
        .iter()
        .map(|f| {
            format!(
                "{}: fault {} added by {}: {}.",
                offset(f.window.added_ms),
                f.window.id,
                f.window.source,
                f.description
            )
        })
        .collect();
    if items.is_empty() {
        d.push(Block::Prompt {
            ask: "No fault was injected: what set it off (a deploy, a load change, a dependency)?".into(),
            seeds: a
                .incident
                .iter()
                .map(|i| format!("it began with {}", i.start.what))
                .collect(),
        });
    } else {
        d.push(Block::List(items));
    }
}

fn resolution(a: &Analysis, d: &mut Vec<Block>) {
    d.push(Block::Heading(2, "Resolution".into()));
    let mut items: Vec<String> = a
        .faults
        .iter()
        .filter_map(|f| {
            let at = f.window.ended_ms?;
            Some(format!(
                "{}: fault {} {}.",
                offset(at),
                f.window.id,
                if f.window.ended_by == Ended::Expired {
                    "expired (TTL)"
                } else {
                    "removed"
                }
            ))
        })
        .collect();
    if let Some(r) = &a.recovery {
        items.push(match (r.at_ms, r.ttr_ms) {
            (Some(at), Some(ttr)) => format!(
                "{}: recovered ({} s healthy in a row from here). **Time to recover: {}** (from: {}).",
                offset(at),
                a.rules.hold_s,
                duration(ttr),
                r.from.what
            ),
            _ => format!(
                "Not recovered by the end of the run: no {} s healthy in a row after {}.",
                a.rules.hold_s, r.from.what
            ),
        });
        if let Some(again) = r.degraded_again_ms {
            items.push(format!(
                "{}: degraded again after the recovery (not covered by this report's figures).",
                offset(again)
            ));
        }
    }
    if items.is_empty() {
        d.push(Block::Para("Nothing to resolve.".into()));
    } else {
        d.push(Block::List(items));
    }
    if a.incident.is_some() {
        d.push(Block::Prompt {
            ask: "What did people do, and what helped most?".into(),
            seeds: Vec::new(),
        });
    }
}

fn action_items(a: &Analysis, d: &mut Vec<Block>) {
    d.push(Block::Heading(2, "Action items".into()));
    let mut seeds = Vec::new();
    if let Some(det) = &a.detection {
        match det.ttd_ms {
            None => seeds.push("detect: add or tighten a burn-rate alert that catches this (none fired)".to_owned()),
            Some(t) if t > 60_000 => seeds.push(format!(
                "detect: alerting took {}; a faster burn window would shorten it",
                duration(t)
            )),
            _ => {}
        }
    }
    for f in &a.faults {
        for route in f
            .moved
            .iter()
            .map(|m| &m.route)
            .collect::<std::collections::BTreeSet<_>>()
        {
            seeds.push(format!(
                "mitigate: make {route} withstand {} (retries, timeouts, fallbacks)",
                f.description
            ));
        }
    }
    if let Some(r) = &a.recovery
        && r.at_ms.is_none()
    {
        seeds.push("recover: find out why the service did not recover within the run".into());
    }
    for b in a.budgets.iter().filter(|b| b.remaining_after < 0.0) {
        seeds.push(format!(
            "budget: {} is overspent; freeze risky changes per the error budget policy",
            b.slo
        ));
    }
    d.push(Block::Prompt {
        ask: "Each action with a type (prevent, mitigate, detect), an owner and a ticket.".into(),
        seeds,
    });
}

fn lessons(a: &Analysis, d: &mut Vec<Block>) {
    d.push(Block::Heading(2, "Lessons learned".into()));
    let mut well = Vec::new();
    let mut wrong = Vec::new();
    let mut lucky = Vec::new();
    if let Some(det) = &a.detection {
        match (&det.alert, det.ttd_ms) {
            (Some(al), Some(t)) => well.push(format!(
                "the {} alert of {} fired {} in",
                al.severity.as_str(),
                al.slo,
                duration(t)
            )),
            _ => wrong.push("no alert fired".to_owned()),
        }
    }
    if let Some(r) = &a.recovery {
        match r.ttr_ms {
            Some(t) => well.push(format!("recovered {} after {}", duration(t), r.from.what)),
            None => wrong.push("no recovery within the run".into()),
        }
    }
    if let Some(imp) = &a.impact {
        if imp.failed > 0 {
            wrong.push(format!("{} requests failed during the incident", imp.failed));
        }
        let unhurt: Vec<&str> = imp
            .routes
            .iter()
            .filter(|r| r.failed == 0 && r.p99_during_ms <= r.p99_before_ms * a.rules.latency_factor)
            .map(|r| r.route.as_str())
            .collect();
        if !unhurt.is_empty() {
            well.push(format!("unaffected: {}", unhurt.join(", ")));
        }
    }
    for b in &a.budgets {
        if b.remaining_after >= 0.0 {
            lucky.push(format!(
                "{} still had {} of its budget after the incident",
                b.slo,
                pct(b.remaining_after)
            ));
        }
    }
    for f in &a.faults {
        if let Some(p) = f.window.spec.percent.filter(|p| *p < 100.0) {
            lucky.push(format!(
                "fault {} hit only {p}% of the requests it matched",
                f.window.id
            ));
        }
    }
    d.push(Block::Heading(3, "What went well".into()));
    d.push(Block::Prompt {
        ask: "What worked as intended?".into(),
        seeds: well,
    });
    d.push(Block::Heading(3, "What went wrong".into()));
    d.push(Block::Prompt {
        ask: "What did not work, or made it worse?".into(),
        seeds: wrong,
    });
    d.push(Block::Heading(3, "Where we got lucky".into()));
    d.push(Block::Prompt {
        ask: "What could have made it much worse?".into(),
        seeds: lucky,
    });
}

fn method(a: &Analysis, d: &mut Vec<Block>) {
    let r = &a.rules;
    d.push(Block::Heading(2, "How the figures were computed".into()));
    let mut items = vec![
        format!(
            "Baseline per route: medians of the per-second error rate and p99 over {} (seconds with at least {} requests).",
            if a.baseline.to_s * 1000 == a.length_ms as u64 {
                "the whole run (no fault to stand before)".to_owned()
            } else {
                format!("{} to {}, before the first fault", offset(a.baseline.from_s as i64 * 1000), offset(a.baseline.to_s as i64 * 1000))
            },
            r.min_requests
        ),
        format!(
            "A second is degraded on a route when its error rate is above max({} × baseline, baseline + {}) or its p99 above max({} × baseline, baseline + {} ms).",
            r.error_factor,
            pct(r.error_margin),
            r.latency_factor,
            r.latency_margin_ms
        ),
        format!(
            "The incident starts at the first of {} degraded seconds in a row, or the first alert if earlier; it ends at recovery: the first {} seconds in a row, from the last fault's end, with no route degraded and every SLO's SLI over them within its objective.",
            r.onset_s, r.hold_s
        ),
        "Time to detect: from the fault in place when the degradation began (or the degradation itself) to the first alert. Time to recover: from the last fault's end to recovery.".into(),
        "Percentiles: exact nearest rank over the requests completed in each phase (requests.csv); a request counts in the second its answer completed.".into(),
    ];
    if !a.slo_names.is_empty() {
        items.push("Error budget: bad events (total − good of slo.csv) between the second before the incident and its last second, against the window's budget (1 − objective) × total at the incident's end.".into());
    }
    let thresholds: Vec<String> = a
        .baseline
        .routes
        .iter()
        .map(|(route, b)| {
            format!(
                "{route}: baseline error rate {}, p99 {} → limits {} and {}",
                pct(b.error_rate),
                ms(b.p99_ms),
                pct(b.error_limit),
                ms(b.p99_limit_ms)
            )
        })
        .collect();
    items.extend(thresholds);
    d.push(Block::List(items));
}
