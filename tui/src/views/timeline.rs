//! Timeline: events newest first (faults, alerts, ejections, health, reloads, and whatever
//! else the sources report), filtered by `/`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{format, theme};
use crate::model::Model;

pub fn render(model: &Model, frame: &mut Frame, area: Rect) {
    let filter = &model.ui.filter;
    let mut title = format!(" Timeline ({} events) ", model.timeline.len());
    if !filter.is_empty() {
        title.push_str(&format!("· /{filter} "));
    }
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Span::styled(title, theme::title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let visible = inner.height.saturating_sub(1).max(1) as usize;
    let matching: Vec<_> = model.timeline.newest_first().filter(|e| e.matches(filter)).collect();
    // Scrolled past the end (the filter shortened the list): show its last page.
    let top = model.ui.timeline_top.min(matching.len().saturating_sub(visible));
    let shown = &matching[top..(top + visible).min(matching.len())];
    let rows: Vec<Row> = shown
        .iter()
        .map(|e| {
            Row::new([
                Cell::from(format::clock(e.event.at_ms)).style(theme::dim()),
                Cell::from(e.event.source.clone()),
                Cell::from(e.kind.clone()).style(theme::event(e.class)),
                Cell::from(e.detail.clone()),
            ])
        })
        .collect();
    if rows.is_empty() {
        let note = if filter.is_empty() {
            " No events yet."
        } else {
            " No event matches the filter."
        };
        frame.render_widget(Paragraph::new(note).style(theme::dim()), inner);
        return;
    }
    let source_width = shown
        .iter()
        .map(|e| e.event.source.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 16) as u16;
    // Kinds as long as the longest shown (`experiment_step_finished`), within reason.
    let kind_width = shown.iter().map(|e| e.kind.len()).max().unwrap_or(5).clamp(5, 24) as u16;
    let widths = [
        Constraint::Length(9),
        Constraint::Length(source_width),
        Constraint::Length(kind_width),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(["time", "source", "event", "what"]).style(theme::header()))
        .column_spacing(1);
    frame.render_widget(table, inner);
}
