//! `view`: the model drawn on a frame, and nothing else: no I/O, no state of its own, so the
//! same model always draws the same screen.
//!
//! Every screen has the tab line (views, and the source on the right), the incident banner
//! while a page alert fires, a line for sidecars that stopped answering, the view, and a
//! footer with the keys (or the last message, or the filter being typed). Help and dialogs
//! draw over the view. Below [`MIN_WIDTH`]×[`MIN_HEIGHT`] only a note is drawn.

mod faults;
pub mod format;
mod help;
mod overview;
mod route;
pub mod theme;
mod timeline;
mod upstreams;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::model::Model;
use crate::presets::PRESETS;
use crate::source::SourceStatus;
use crate::ui::{Dialog, View};

pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 12;

/// Views wider than this get long labels and more columns.
const WIDE: u16 = 110;

pub fn view(model: &Model, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let note = format!(
            "ballast needs {MIN_WIDTH}×{MIN_HEIGHT}; this terminal is {}×{}",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(note).wrap(Wrap { trim: true }), area);
        return;
    }
    let banner = banner(model, area.width);
    let down = down_line(model);
    let mut rows = vec![Constraint::Length(1)];
    rows.extend(banner.iter().map(|_| Constraint::Length(1)));
    rows.extend(down.iter().map(|_| Constraint::Length(1)));
    rows.extend([Constraint::Min(1), Constraint::Length(1)]);
    let chunks = Layout::vertical(rows).split(area);
    let mut next = chunks.iter().copied();
    frame.render_widget(tabs(model, area.width), next.next().expect("tab row"));
    if let Some(b) = banner {
        frame.render_widget(b, next.next().expect("banner row"));
    }
    if let Some(d) = down {
        frame.render_widget(d, next.next().expect("down row"));
    }
    let body = next.next().expect("body");
    match model.ui.view {
        View::Overview => overview::render(model, frame, body),
        View::Route => route::render(model, frame, body),
        View::Upstreams => upstreams::render(model, frame, body),
        View::Faults => faults::render(model, frame, body),
        View::Timeline => timeline::render(model, frame, body),
    }
    frame.render_widget(footer(model, area.width), next.next().expect("footer"));
    if model.ui.help {
        help::render(frame, area);
    }
    if let Some(d) = &model.ui.dialog {
        dialog(d, frame, area);
    }
}

/// Views on the left, the source on the right.
fn tabs(model: &Model, width: u16) -> Line<'static> {
    let mut spans = Vec::new();
    if width >= 70 {
        spans.push(Span::styled(" ballast ", theme::title()));
    }
    for v in View::ALL {
        let label = format!(" {} {} ", v.key(), v.title());
        spans.push(if v == model.ui.view {
            Span::styled(label, theme::tab_active())
        } else {
            Span::styled(label, theme::tab())
        });
    }
    let status = match &model.source {
        SourceStatus::Live if width >= WIDE => {
            format!(
                "LIVE · {} sidecar(s) · {} ",
                model.sidecars.len(),
                format::clock(model.now_ms)
            )
        }
        SourceStatus::Live => format!("LIVE {} ", format::clock(model.now_ms)),
        SourceStatus::Replay(r) => {
            let play = if r.playing { "▶" } else { "‖" };
            let speed = format!("{}×", r.speed);
            let at = format!(
                "{}/{}",
                format::offset(r.position_ms - r.start_ms),
                format::offset(r.end_ms - r.start_ms)
            );
            if width >= WIDE {
                // The run's name gets what the tabs and the position leave (names are long).
                let rest = format!(" {play} {speed} {at} ({}) ", format::clock(r.position_ms));
                let used: usize = spans.iter().map(|s| s.width()).sum();
                let room = (width as usize).saturating_sub(used + rest.chars().count() + "REPLAY ".len() + 1);
                format!("REPLAY {}{rest}", format::fit(&r.name, room.max(8)))
            } else {
                format!("{play}{speed} {at} ")
            }
        }
    };
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let gap = (width as usize).saturating_sub(used + status.chars().count());
    spans.push(Span::raw(" ".repeat(gap)));
    spans.push(Span::styled(status, theme::title()));
    Line::from(spans)
}

/// The incident banner: which SLOs page, since when, and the budget burned since.
fn banner(model: &Model, width: u16) -> Option<Paragraph<'static>> {
    let incident = model.incident()?;
    let first = incident.slos[0];
    let page = first.page?;
    let since = format!(
        "since {} ({})",
        format::clock(page.since_ms),
        format::duration(model.now_ms.saturating_sub(page.since_ms))
    );
    let burned = first
        .burned_since_page()
        .map(|b| format!("budget burned since: {}", format::percent(b)))
        .unwrap_or_default();
    let more = match incident.slos.len() {
        1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    let text = if width >= WIDE {
        format!(
            " ▲ INCIDENT  page alert {}{more} firing {since} · {burned}",
            first.spec.name
        )
    } else {
        format!(" ▲ PAGE {}{more} {since} · {burned}", first.spec.name)
    };
    Some(Paragraph::new(format::fit(&text, width as usize)).style(theme::banner()))
}

/// Sidecars that do not answer (or never did).
fn down_line(model: &Model) -> Option<Line<'static>> {
    let parts: Vec<String> = model
        .sidecars
        .iter()
        .filter(|s| s.stale())
        .map(|s| match (&s.down, s.last_seen_ms) {
            (Some(d), Some(seen)) => format!(
                "✗ {} unreachable, last seen {} ago ({})",
                s.name,
                format::duration(model.now_ms.saturating_sub(seen)),
                d.error
            ),
            (Some(d), None) => format!("✗ {} not answering ({})", s.name, d.error),
            (None, _) => format!("… {} not seen yet", s.name),
        })
        .collect();
    (!parts.is_empty()).then(|| Line::styled(format!(" {}", parts.join("   ")), theme::warning()))
}

/// The filter prompt, the last message, or the view's keys.
fn footer(model: &Model, width: u16) -> Line<'static> {
    let ui = &model.ui;
    if ui.editing_filter {
        return Line::from(vec![
            Span::styled(" / ", theme::key()),
            Span::raw(format!("{}█", ui.filter)),
            Span::styled("   ⏎ apply  esc clear", theme::dim()),
        ]);
    }
    if let Some(m) = &ui.message {
        let style = if m.error { theme::bad() } else { theme::good() };
        return Line::styled(format::fit(&format!(" {}", m.text), width as usize), style);
    }
    let mut keys: Vec<(&str, &str)> = match ui.view {
        View::Overview => vec![("↑↓", "select"), ("⏎", "detail"), ("/", "filter"), ("s", "sort")],
        View::Route => vec![("↑↓", "route"), ("esc", "back")],
        View::Upstreams => vec![("↑↓", "scroll")],
        View::Faults => vec![("a", "add"), ("d", "clear"), ("D", "clear all")],
        View::Timeline => vec![("↑↓", "scroll"), ("/", "filter")],
    };
    if model.is_replay() {
        keys.extend([("␣", "play"), ("←→", "scrub")]);
    }
    keys.extend([("?", "keys"), ("q", "quit")]);
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for (k, label) in keys {
        let w = k.chars().count() + label.len() + 3;
        if used + w > width as usize {
            break;
        }
        used += w;
        spans.push(Span::styled(k, theme::key()));
        spans.push(Span::raw(format!(" {label}  ")));
    }
    if !ui.filter.is_empty() && matches!(ui.view, View::Overview | View::Timeline) {
        spans.push(Span::styled(format!("filter: {}", ui.filter), theme::warn()));
    }
    Line::from(spans)
}

/// A box in the middle of `area`, cleared.
fn centered(frame: &mut Frame, area: Rect, width: u16, height: u16) -> Rect {
    let r = area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    );
    frame.render_widget(Clear, r);
    r
}

fn dialog(d: &Dialog, frame: &mut Frame, area: Rect) {
    match d {
        Dialog::Presets { selected, target } => {
            let mut lines = vec![
                Line::from(vec![
                    Span::raw(" on route "),
                    Span::styled(format!("◂ {} @ {} ▸", target.route, target.sidecar), theme::key()),
                    Span::styled("  (← →)", theme::dim()),
                ]),
                Line::raw(""),
            ];
            for (i, p) in PRESETS.iter().enumerate() {
                let text = format!(" {} {}", if i == *selected { "›" } else { " " }, p.label);
                lines.push(if i == *selected {
                    Line::styled(text, theme::selected())
                } else {
                    Line::raw(text)
                });
            }
            lines.extend([
                Line::raw(""),
                Line::styled(" ⏎ choose   esc cancel   (it expires after 5m)", theme::dim()),
            ]);
            let r = centered(frame, area, 64, lines.len() as u16 + 2);
            let block = Block::bordered().title(" Add a fault ").style(theme::dialog());
            frame.render_widget(Paragraph::new(lines).block(block), r);
        }
        Dialog::Confirm { prompt, .. } => {
            let width = 60u16.min(area.width);
            let text_width = width.saturating_sub(4).max(1) as usize;
            let height = (prompt.chars().count().div_ceil(text_width) + 4) as u16;
            let r = centered(frame, area, width, height);
            let lines = vec![
                Line::raw(prompt.clone()),
                Line::raw(""),
                Line::from(vec![
                    Span::styled("y", theme::key()),
                    Span::raw(" yes    "),
                    Span::styled("n", theme::key()),
                    Span::raw(" no"),
                ]),
            ];
            let block = Block::bordered().title(" Confirm ").style(theme::dialog());
            frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(block), r);
        }
    }
}
