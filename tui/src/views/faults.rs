//! Faults: every fault in place with its counters and time to expiry. `a` adds one from the
//! presets, `d` clears the selected one, `D` every one added at run time; each asks first.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

use super::{format, theme};
use crate::describe::{fault_effect, fault_target};
use crate::model::Model;

pub fn render(model: &Model, frame: &mut Frame, area: Rect) {
    let rows = model.fault_rows();
    let note = if model.is_replay() { " · as recorded" } else { "" };
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        format!(" Faults in place ({}){note} ", rows.len()),
        theme::title(),
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if rows.is_empty() {
        let hint = if model.is_replay() { "" } else { " (a adds one)" };
        frame.render_widget(
            Paragraph::new(format!(" No faults in place{hint}.")).style(theme::dim()),
            inner,
        );
        return;
    }
    let several = model.sidecars.len() > 1;
    let visible = inner.height.saturating_sub(1).max(1) as usize;
    let selected = model.ui.fault.min(rows.len() - 1);
    let offset = (selected + 1).saturating_sub(visible);
    let mut header = vec!["id", "fault", "on", "matched", "injected", "expires"];
    let longest = |f: fn(&ballast_model::FaultSpec) -> String, least: usize| {
        rows.iter()
            .map(|(_, x)| f(&x.spec).chars().count())
            .max()
            .unwrap_or(0)
            .clamp(least, 40) as u16
            + 1
    };
    let mut widths = vec![
        Constraint::Length(6),
        Constraint::Length(longest(fault_effect, 14)),
        Constraint::Length(longest(fault_target, 12)),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(10),
    ];
    if several {
        header.insert(0, "sidecar");
        widths.insert(0, Constraint::Length(10));
    }
    let body = rows.iter().skip(offset).take(visible).map(|(s, f)| {
        let expires = match f.expires_at_ms {
            None => Cell::from("config").style(theme::dim()),
            Some(t) if t > model.now_ms => Cell::from(format!("in {}", format::duration(t - model.now_ms))),
            Some(_) => Cell::from("expiring").style(theme::dim()),
        };
        let mut cells = vec![
            Cell::from(f.id.clone()),
            Cell::from(fault_effect(&f.spec)).style(theme::warn()),
            Cell::from(fault_target(&f.spec)),
            Cell::from(f.matched.to_string()),
            Cell::from(f.injected.to_string()),
            expires,
        ];
        if several {
            cells.insert(0, Cell::from(s.name.clone()));
        }
        Row::new(cells).style(if s.stale() { theme::dim() } else { Default::default() })
    });
    let table = Table::new(body, widths)
        .header(Row::new(header).style(theme::header()))
        .column_spacing(1)
        .row_highlight_style(theme::selected());
    let mut state = TableState::default().with_selected(Some(selected - offset));
    frame.render_stateful_widget(table, inner, &mut state);
}
