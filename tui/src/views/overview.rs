//! Overview: one row per route and sidecar, most urgent first by default. Columns that do
//! not fit drop out, sparklines first; the route's column keeps at least a short name.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

use ballast_model::slo::Severity;
use ballast_slo_engine::alert::AlertState;

use super::{format, theme};
use crate::model::{Model, RouteRow, Sample};
use crate::ui::Sort;

#[derive(Clone, Copy, PartialEq)]
enum Col {
    Sidecar,
    Route,
    Rate,
    RateTrend,
    Errors,
    ErrorTrend,
    P50,
    P99,
    P99Trend,
    Budget,
    Burn,
    Alert,
}

/// The route column keeps at least this many characters before a sparkline is added.
const ROUTE_MIN: u16 = 11;
/// Beyond this the route's column gives its room to the sparklines.
const ROUTE_COMFORT: u16 = 28;

pub fn render(model: &Model, frame: &mut Frame, area: Rect) {
    let rows = model.route_rows();
    let mut title = format!(" Routes ({}) · by {} ", rows.len(), model.ui.sort.name());
    if !model.ui.filter.is_empty() {
        title.push_str(&format!("· /{} ", model.ui.filter));
    }
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Span::styled(title, theme::title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if rows.is_empty() {
        let note = if model.ui.filter.is_empty() {
            " No routes yet: waiting for the sidecars' first answer."
        } else {
            " No route matches the filter (esc clears it)."
        };
        frame.render_widget(Paragraph::new(note).style(theme::dim()), inner);
        return;
    }
    let (cols, widths, trend) = columns(model, inner.width);
    let visible = inner.height.saturating_sub(1).max(1) as usize;
    let selected = model
        .ui
        .selected
        .as_ref()
        .and_then(|k| rows.iter().position(|r| r.key() == *k));
    let offset = selected.map_or(0, |i| (i + 1).saturating_sub(visible));
    let header = Row::new(cols.iter().map(|c| {
        let mut h = heading(*c, trend).to_owned();
        if sorted_by(*c) == Some(model.ui.sort) {
            h.push('▼');
        }
        Cell::from(h)
    }))
    .style(theme::header());
    let body = rows
        .iter()
        .skip(offset)
        .take(visible)
        .map(|r| Row::new(cols.iter().map(|c| cell(model, r, *c, trend))).style(row_style(r)));
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(theme::selected());
    let mut state = TableState::default().with_selected(selected.map(|i| i - offset));
    frame.render_stateful_widget(table, inner, &mut state);
}

/// The columns that fit `width`, their widths, and the sparklines' width.
fn columns(model: &Model, width: u16) -> (Vec<Col>, Vec<Constraint>, usize) {
    let trend: u16 = if width >= 150 {
        16
    } else if width >= 110 {
        12
    } else {
        8
    };
    let sidecar = model
        .sidecars
        .iter()
        .map(|s| s.name.chars().count() as u16 + 1)
        .max()
        .unwrap_or(0)
        .clamp(6, 16);
    let fixed = |c: Col| -> u16 {
        match c {
            Col::Sidecar => sidecar,
            Col::Route => 0,
            Col::RateTrend | Col::ErrorTrend | Col::P99Trend => trend,
            Col::Rate | Col::Errors | Col::Budget | Col::Burn | Col::Alert => 6,
            Col::P50 | Col::P99 => 7,
        }
    };
    let mut cols = vec![
        Col::Route,
        Col::Rate,
        Col::Errors,
        Col::P50,
        Col::P99,
        Col::Budget,
        Col::Burn,
        Col::Alert,
    ];
    if model.sidecars.len() > 1 {
        cols.insert(0, Col::Sidecar);
    }
    let route_width = |cols: &[Col]| {
        let used: u16 = cols.iter().map(|c| fixed(*c) + 1).sum();
        width.saturating_sub(used)
    };
    for (trend_col, after) in [
        (Col::P99Trend, Col::P99),
        (Col::ErrorTrend, Col::Errors),
        (Col::RateTrend, Col::Rate),
    ] {
        let mut with = cols.clone();
        let at = with.iter().position(|c| *c == after).expect("base column") + 1;
        with.insert(at, trend_col);
        if route_width(&with) >= ROUTE_MIN {
            cols = with;
        }
    }
    // Room beyond a comfortable route name widens the sparklines (more history).
    let trends = cols
        .iter()
        .filter(|c| matches!(c, Col::RateTrend | Col::ErrorTrend | Col::P99Trend))
        .count() as u16;
    let spare = route_width(&cols).saturating_sub(ROUTE_COMFORT);
    let trend = spare.checked_div(trends).map_or(trend, |extra| (trend + extra).min(60));
    let widths = cols
        .iter()
        .map(|c| match c {
            Col::Route => Constraint::Min(ROUTE_MIN),
            Col::RateTrend | Col::ErrorTrend | Col::P99Trend => Constraint::Length(trend),
            c => Constraint::Length(fixed(*c)),
        })
        .collect();
    (cols, widths, trend as usize)
}

fn heading(c: Col, trend: usize) -> &'static str {
    match c {
        Col::RateTrend | Col::ErrorTrend | Col::P99Trend if trend < 11 => "trend",
        Col::Sidecar => "sidecar",
        Col::Route => "route",
        Col::Rate => "req/s",
        Col::RateTrend => "req/s trend",
        Col::Errors => "err%",
        Col::ErrorTrend => "err% trend",
        Col::P50 => "p50",
        Col::P99 => "p99",
        Col::P99Trend => "p99 trend",
        Col::Budget => "budget",
        Col::Burn => "burn",
        Col::Alert => "alert",
    }
}

fn sorted_by(c: Col) -> Option<Sort> {
    match c {
        Col::Route => Some(Sort::Name),
        Col::Rate => Some(Sort::Rate),
        Col::Errors => Some(Sort::Errors),
        Col::P99 => Some(Sort::Latency),
        Col::Budget => Some(Sort::Burn),
        _ => None,
    }
}

fn row_style(r: &RouteRow) -> Style {
    if r.sidecar.stale() { theme::dim() } else { Style::new() }
}

fn cell<'a>(model: &Model, r: &RouteRow<'a>, c: Col, trend: usize) -> Cell<'a> {
    let latest = r.state.latest();
    let series = |f: fn(&Sample) -> Option<f64>| -> Vec<Option<f64>> { r.state.samples.iter().map(f).collect() };
    let dash = || Cell::from("—").style(theme::dim());
    match c {
        Col::Sidecar => Cell::from(if r.sidecar.down.is_some() {
            format!("✗{}", r.sidecar.name)
        } else {
            r.sidecar.name.clone()
        }),
        Col::Route => Cell::from(r.route.to_owned()),
        Col::Rate => latest.map_or_else(dash, |s| Cell::from(format::rate(s.rate()))),
        Col::Errors => match latest.and_then(Sample::error_ratio) {
            Some(e) => Cell::from(format::percent(e)).style(theme::error_ratio(Some(e))),
            None => dash(),
        },
        Col::P50 => latest
            .and_then(|s| s.p50_us)
            .map_or_else(dash, |v| Cell::from(format::latency(v))),
        Col::P99 => latest
            .and_then(|s| s.p99_us)
            .map_or_else(dash, |v| Cell::from(format::latency(v))),
        Col::RateTrend => Cell::from(format::sparkline(&series(|s| Some(s.rate())), trend)).style(theme::good()),
        Col::ErrorTrend => Cell::from(format::sparkline(&series(Sample::error_ratio), trend)).style(theme::bad()),
        Col::P99Trend => {
            Cell::from(format::sparkline(&series(|s| s.p99_us.map(|v| v as f64)), trend)).style(theme::warn())
        }
        Col::Budget => match r.slo.map(|s| s.status.as_ref()) {
            None => Cell::from(""),
            Some(None) => dash(),
            Some(Some(st)) => Cell::from(format::budget(st.budget_remaining)).style(theme::budget(st.budget_remaining)),
        },
        Col::Burn => match r.slo {
            None => Cell::from(""),
            Some(s) => match s.burn_recent(model.now_ms) {
                Some(b) => Cell::from(format::burn(b)).style(theme::burn(b)),
                None => dash(),
            },
        },
        Col::Alert => match r.slo {
            None => Cell::from(""),
            Some(s) => alert_cell(s),
        },
    }
}

fn alert_cell<'a>(s: &crate::slos::SloState) -> Cell<'a> {
    let Some(st) = &s.status else {
        return Cell::from("—").style(theme::dim());
    };
    let state = |sev| st.alerts.get(&sev).copied();
    let line = match (state(Severity::Page), state(Severity::Ticket)) {
        (Some(AlertState::Firing { .. }), _) => Line::styled("PAGE", theme::banner()),
        (_, Some(AlertState::Firing { .. })) => Line::styled("ticket", theme::warn()),
        (Some(AlertState::Pending { .. }), _) | (_, Some(AlertState::Pending { .. })) => {
            Line::styled("pend", theme::warn())
        }
        _ => Line::styled("ok", theme::good()),
    };
    Cell::from(line)
}
