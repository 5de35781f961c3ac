//! Upstreams: each cluster with its circuit (closed, degraded, open when no endpoint is left
//! in rotation), then its endpoints: health, ejection, requests in flight and traffic.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{format, theme};
use crate::model::{ClusterState, Endpoint, Model, Sample};

pub fn render(model: &Model, frame: &mut Frame, area: Rect) {
    let mut rows: Vec<Row> = Vec::new();
    let several = model.sidecars.len() > 1;
    let mut name_width = 16;
    for s in &model.sidecars {
        for (name, cluster) in &s.clusters {
            let label = if several {
                format!("{}/{name}", s.name)
            } else {
                name.clone()
            };
            let longest = cluster.endpoints.iter().map(|e| e.address.len() + 2).max().unwrap_or(0);
            name_width = name_width.max(label.chars().count()).max(longest);
            rows.push(cluster_row(label, cluster).style(if s.stale() { theme::dim() } else { theme::title() }));
            for e in &cluster.endpoints {
                rows.push(endpoint_row(e, model.now_ms).style(if s.stale() { theme::dim() } else { Style::new() }));
            }
        }
    }
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        format!(" Clusters and endpoints ({} rows) ", rows.len()),
        theme::title(),
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if rows.is_empty() {
        frame.render_widget(Paragraph::new(" No clusters yet.").style(theme::dim()), inner);
        return;
    }
    let visible = inner.height.saturating_sub(1).max(1) as usize;
    let top = model.ui.upstreams_top.min(rows.len().saturating_sub(visible));
    let header = Row::new([
        "cluster/endpoint",
        "state",
        "rotation",
        "ejections",
        "in flight",
        "req/s",
        "err%",
        "p99",
    ])
    .style(theme::header());
    let widths = [
        Constraint::Length(name_width.min(40) as u16),
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
    ];
    let table = Table::new(rows.into_iter().skip(top).take(visible), widths)
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, inner);
}

fn traffic_cells(t: &Sample) -> [Cell<'static>; 3] {
    let err = t.error_ratio();
    [
        Cell::from(format::rate(t.rate())),
        Cell::from(err.map_or("—".into(), format::percent)).style(theme::error_ratio(err)),
        Cell::from(t.p99_us.map_or("—".into(), format::latency)),
    ]
}

fn in_rotation(e: &Endpoint) -> bool {
    e.state
        .as_ref()
        .is_none_or(|s| s.healthy && s.ejected_until_ms.is_none())
}

fn cluster_row(label: String, c: &ClusterState) -> Row<'static> {
    let n = c.endpoints.len();
    let serving = c.endpoints.iter().filter(|e| in_rotation(e)).count();
    let (circuit, style) = if n > 0 && serving == 0 {
        ("circuit OPEN", theme::bad())
    } else if serving < n {
        ("degraded", theme::warn())
    } else {
        ("closed", theme::good())
    };
    let ejections: u64 = c
        .endpoints
        .iter()
        .filter_map(|e| e.state.as_ref())
        .map(|s| s.ejections)
        .sum();
    let [rate, err, p99] = traffic_cells(&c.traffic);
    Row::new([
        Cell::from(label),
        Cell::from(circuit).style(style),
        Cell::from(format!("{serving}/{n}")),
        Cell::from(ejections.to_string()),
        Cell::from(c.traffic.in_flight.to_string()),
        rate,
        err,
        p99,
    ])
}

fn endpoint_row(e: &Endpoint, now_ms: u64) -> Row<'static> {
    let (state, style) = match &e.state {
        None => ("—".to_owned(), theme::dim()),
        Some(s) => match s.ejected_until_ms {
            Some(until) if until > now_ms => (format!("ejected {}", format::duration(until - now_ms)), theme::bad()),
            Some(_) => ("probing".to_owned(), theme::warn()),
            None if !s.healthy => ("unhealthy".to_owned(), theme::bad()),
            None => ("healthy".to_owned(), theme::good()),
        },
    };
    let rotation = if in_rotation(e) { "in" } else { "out" };
    let ejections = e.state.as_ref().map_or("—".into(), |s| s.ejections.to_string());
    let [rate, err, p99] = traffic_cells(&e.traffic);
    Row::new([
        Cell::from(format!("  {}", e.address)),
        Cell::from(state).style(style),
        Cell::from(rotation),
        Cell::from(ejections),
        Cell::from(e.traffic.in_flight.to_string()),
        rate,
        err,
        p99,
    ])
}
