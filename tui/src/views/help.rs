//! `?`: the keys.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::theme;

/// (keys, what they do), grouped; an empty line between groups.
pub const KEYS: &[(&str, &str)] = &[
    ("1 … 5", "overview, route, upstreams, faults, timeline"),
    ("tab  shift-tab", "next / previous view"),
    ("esc", "clear the filter, else back to the overview"),
    ("", ""),
    ("↑ ↓  j k", "move the selection (route view: the route)"),
    ("PgUp PgDn  g G", "a page / the top / the bottom"),
    ("⏎", "overview: the selected route's detail"),
    ("/", "filter routes (overview) or events (timeline)"),
    ("s", "sort: budget burn, error %, p99, req/s, name"),
    ("", ""),
    ("a", "faults: add one from the presets"),
    ("d  D", "faults: clear the selected one / all (asks)"),
    ("", ""),
    ("space", "replay: play / pause"),
    ("+ -", "replay: faster / slower"),
    ("← →", "replay: back / on 10 s (shift: 1 min)"),
    ("home end", "replay: the start / the end"),
    ("", ""),
    ("q  ctrl-c", "quit"),
];

pub fn render(frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| Line::from(vec![Span::styled(format!(" {k:<16}"), theme::key()), Span::raw(*what)]))
        .collect();
    let r = super::centered(frame, area, 66, lines.len() as u16 + 2);
    let block = Block::bordered()
        .title(" Keys (any key closes) ")
        .style(theme::dialog());
    frame.render_widget(Paragraph::new(lines).block(block), r);
}
