//! Route detail: latency percentiles over time, the latency histogram and the answers of the
//! last minute (by status class and error class), the SLOs that count the route, and the
//! trace ids of requests worth a look (the sidecar's exemplars).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, LegendPosition, Paragraph};

use ballast_model::slo::Severity;
use ballast_slo_engine::alert::AlertState;

use super::{format, theme};
use crate::model::{BIN_COUNT, BINS_US, Model, RouteState, Sample};

/// The histogram and the answers cover this much.
const LAST_MS: u64 = 60_000;

pub fn render(model: &Model, frame: &mut Frame, area: Rect) {
    let Some(key) = &model.ui.detail else {
        frame.render_widget(
            Paragraph::new(" No route selected: pick one in the overview (1).").style(theme::dim()),
            area,
        );
        return;
    };
    let Some(route) = model.route(key) else {
        frame.render_widget(
            Paragraph::new(format!(" {} @ {}: no data (yet, or any more).", key.route, key.sidecar))
                .style(theme::dim()),
            area,
        );
        return;
    };
    let [head, top, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Percentage(55), Constraint::Min(4)]).areas(area);
    frame.render_widget(summary(model, &key.route, &key.sidecar, route, head.width), head);
    let [chart, histogram] = Layout::horizontal([Constraint::Percentage(62), Constraint::Min(20)]).areas(top);
    latency_chart(model, route, frame, chart);
    frame.render_widget(
        latency_histogram(model, route, histogram.width, histogram.height),
        histogram,
    );
    let [answers, right] = Layout::horizontal([Constraint::Length(30), Constraint::Min(30)]).areas(bottom);
    frame.render_widget(responses(model, route), answers);
    frame.render_widget(slos_and_exemplars(model, &key.route, route, right.width), right);
}

fn summary(model: &Model, route: &str, sidecar: &str, state: &RouteState, width: u16) -> Line<'static> {
    let mut spans = vec![
        Span::styled(format!(" {route}"), theme::title()),
        Span::styled(format!(" @ {sidecar}"), theme::dim()),
    ];
    if let Some(s) = state.latest() {
        let lat = |v: Option<u64>| v.map_or("—".into(), format::latency);
        spans.push(Span::raw(format!(" · {} req/s · ", format::rate(s.rate()))));
        let err = s.error_ratio();
        spans.push(Span::styled(
            format!("{} 5xx", err.map_or("—".into(), format::percent)),
            theme::error_ratio(err),
        ));
        spans.push(Span::raw(format!(
            " · p50 {} p90 {} p99 {}",
            lat(s.p50_us),
            lat(s.p90_us),
            lat(s.p99_us),
        )));
        let in_flight = format!(" · {} in flight", s.in_flight);
        if spans.iter().map(Span::width).sum::<usize>() + in_flight.len() <= width as usize {
            spans.push(Span::raw(in_flight));
        }
    }
    if model.sidecar(sidecar).is_some_and(|s| s.stale()) {
        spans.push(Span::styled(" · stale", theme::warning()));
    }
    Line::from(spans)
}

fn latency_chart(model: &Model, route: &RouteState, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(Span::styled(" latency over time ", theme::title()));
    let now = model.now_ms;
    let points = |f: fn(&Sample) -> Option<u64>| -> Vec<(f64, f64)> {
        route
            .samples
            .iter()
            .filter_map(|s| Some((-(now.saturating_sub(s.at_ms) as f64) / 1000.0, f(s)? as f64 / 1000.0)))
            .collect()
    };
    let (p50, p90, p99) = (points(|s| s.p50_us), points(|s| s.p90_us), points(|s| s.p99_us));
    let span_s = p99.iter().chain(&p50).map(|(x, _)| -x).fold(10.0f64, f64::max).ceil();
    let top_ms = p99.iter().map(|(_, y)| *y).fold(1.0f64, f64::max) * 1.1;
    let ms = |v: f64| format::latency((v * 1000.0) as u64);
    let datasets = vec![
        Dataset::default()
            .name("p50")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Green))
            .data(&p50),
        Dataset::default()
            .name("p90")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Yellow))
            .data(&p90),
        Dataset::default()
            .name("p99")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Red))
            .data(&p99),
    ];
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Percentage(50), Constraint::Percentage(60)))
        .x_axis(
            Axis::default()
                .bounds([-span_s, 0.0])
                .labels([format!("-{}", format::duration(span_s as u64 * 1000)), "now".to_owned()])
                .style(theme::dim()),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top_ms])
                .labels(["0".to_owned(), ms(top_ms / 2.0), ms(top_ms)])
                .style(theme::dim()),
        );
    frame.render_widget(chart, area);
}

/// The bins of the last minute, trimmed to those with requests, merged pairwise until they
/// fit; a bar and a count each.
fn latency_histogram(model: &Model, route: &RouteState, width: u16, height: u16) -> Paragraph<'static> {
    let block = Block::bordered().title(Span::styled(" latency, last 1m ", theme::title()));
    let mut counts = [0u64; BIN_COUNT];
    for s in route.recent(model.now_ms, LAST_MS) {
        for (c, n) in counts.iter_mut().zip(s.bins) {
            *c += n as u64;
        }
    }
    let label = |i: usize| {
        BINS_US.get(i).map_or_else(
            || format!(">{}", format::latency(BINS_US[BINS_US.len() - 1])),
            |b| format!("≤{}", format::latency(*b)),
        )
    };
    let first = counts.iter().position(|c| *c > 0);
    let last = counts.iter().rposition(|c| *c > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return Paragraph::new(" no requests").style(theme::dim()).block(block);
    };
    // (label of the bin's top, count)
    let mut bins: Vec<(usize, u64)> = (first..=last).map(|i| (i, counts[i])).collect();
    let rows = height.saturating_sub(2).max(1) as usize;
    while bins.len() > rows {
        bins = bins
            .chunks(2)
            .map(|pair| (pair[pair.len() - 1].0, pair.iter().map(|(_, n)| n).sum()))
            .collect();
    }
    let max = bins.iter().map(|(_, n)| *n).max().unwrap_or(1) as f64;
    let bar_width = (width as usize).saturating_sub(2 + 8 + 8).max(1);
    let lines: Vec<Line> = bins
        .iter()
        .map(|(i, n)| {
            Line::from(vec![
                Span::styled(format!("{:>7} ", label(*i)), theme::dim()),
                Span::styled(
                    format!("{:<bar_width$}", format::bar(*n as f64, max, bar_width)),
                    theme::tab(),
                ),
                Span::raw(format!(" {n}")),
            ])
        })
        .collect();
    Paragraph::new(lines).block(block)
}

fn responses(model: &Model, route: &RouteState) -> Paragraph<'static> {
    let block = Block::bordered().title(Span::styled(" answers, last 1m ", theme::title()));
    let mut status = [0u64; 5];
    let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
    let mut total = 0;
    for s in route.recent(model.now_ms, LAST_MS) {
        total += s.requests;
        for (a, b) in status.iter_mut().zip(s.status) {
            *a += b;
        }
        for (e, n) in &s.errors {
            *errors.entry(e.to_string()).or_default() += n;
        }
    }
    if total == 0 {
        return Paragraph::new(" no requests").style(theme::dim()).block(block);
    }
    let share = |n: u64| format::percent(n as f64 / total as f64);
    let mut lines: Vec<Line> = status
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| {
            let style = match i {
                4 => theme::bad(),
                3 => theme::warn(),
                _ => Style::new(),
            };
            Line::styled(format!(" {}xx {n:>8} {:>6}", i + 1, share(*n)), style)
        })
        .collect();
    let mut errors: Vec<(String, u64)> = errors.into_iter().collect();
    errors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (e, n) in errors {
        lines.push(Line::from(vec![
            Span::styled(format!(" {e}"), theme::warn()),
            Span::raw(format!(" {n}")),
        ]));
    }
    Paragraph::new(lines).block(block)
}

fn slos_and_exemplars(model: &Model, route_name: &str, route: &RouteState, width: u16) -> Paragraph<'static> {
    let block = Block::bordered().title(Span::styled(" SLOs · traces worth a look ", theme::title()));
    let mut lines = Vec::new();
    let slos: Vec<_> = model.slos_for(route_name).collect();
    if slos.is_empty() {
        lines.push(Line::styled(" no SLO counts this route", theme::dim()));
    }
    for s in slos {
        lines.push(Line::raw(format!(" {}", s.spec.name)));
        let mut spans = vec![Span::raw("   ")];
        match &s.status {
            None => spans.push(Span::styled("no traffic yet", theme::dim())),
            Some(st) => {
                spans.push(Span::styled(
                    format!("budget {}", format::budget(st.budget_remaining)),
                    theme::budget(st.budget_remaining),
                ));
                if let Some(b) = s.burn_recent(model.now_ms) {
                    spans.push(Span::styled(format!(" burn {}", format::burn(b)), theme::burn(b)));
                }
                if let Some(AlertState::Firing { since_ms }) = st.alerts.get(&Severity::Page) {
                    spans.push(Span::styled(
                        format!(" PAGE since {}", format::clock(*since_ms)),
                        theme::bad(),
                    ));
                } else if let Some(AlertState::Firing { .. }) = st.alerts.get(&Severity::Ticket) {
                    spans.push(Span::styled(" ticket", theme::warn()));
                }
            }
        }
        lines.push(Line::from(spans));
    }
    let ex = &route.exemplars;
    if ex.is_empty() {
        lines.push(Line::styled(
            " no traced requests (tracing off, or none sampled)",
            theme::dim(),
        ));
    }
    // Whole ids (32 hex digits) when they fit: a cut id cannot be looked up.
    let id_width = (width as usize).saturating_sub(2 + 6 + 8).max(8);
    if let Some(s) = &ex.slowest {
        lines.push(Line::from(vec![
            Span::styled(" slow ", theme::dim()),
            Span::raw(format::fit(&s.trace_id, id_width)),
            Span::raw(format!(" {} {}", format::latency(s.latency_us), s.status)),
        ]));
    }
    for f in ex.failed.iter().rev() {
        lines.push(Line::from(vec![
            Span::styled(" fail ", theme::dim()),
            Span::raw(format::fit(&f.trace_id, id_width)),
            Span::styled(
                format!(" {} {}", f.status, f.error.map(|e| e.to_string()).unwrap_or_default()),
                theme::bad(),
            ),
        ]));
    }
    Paragraph::new(lines).block(block)
}
