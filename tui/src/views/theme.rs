//! Styles, from the 16 named colours only, so the dashboard reads the same in a 16-colour
//! terminal as in a true-colour one. Selection is reverse video, not a colour.

use ratatui::style::{Color, Modifier, Style};

use crate::describe::EventClass;

pub fn title() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

pub fn tab_active() -> Style {
    Style::new()
        .fg(Color::Black)
        .bg(Color::Cyan)
        .add_modifier(Modifier::BOLD)
}

pub fn tab() -> Style {
    Style::new().fg(Color::Cyan)
}

pub fn header() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}

pub fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

pub fn banner() -> Style {
    Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD)
}

pub fn warning() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}

pub fn bad() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}

pub fn warn() -> Style {
    Style::new().fg(Color::Yellow)
}

pub fn good() -> Style {
    Style::new().fg(Color::Green)
}

pub fn key() -> Style {
    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
}

pub fn dialog() -> Style {
    Style::new().fg(Color::White).bg(Color::Blue)
}

pub fn event(class: EventClass) -> Style {
    match class {
        EventClass::Bad => bad(),
        EventClass::Warn => warn(),
        EventClass::Good => good(),
        EventClass::Info => Style::new().fg(Color::Cyan),
    }
}

/// An error ratio: red from 5%, yellow from 1%.
pub fn error_ratio(r: Option<f64>) -> Style {
    match r {
        Some(r) if r >= 0.05 => bad(),
        Some(r) if r >= 0.01 => warn(),
        _ => Style::new(),
    }
}

/// Budget left: red once spent, yellow under a quarter.
pub fn budget(remaining: f64) -> Style {
    if remaining <= 0.0 {
        bad()
    } else if remaining < 0.25 {
        warn()
    } else {
        good()
    }
}

/// A burn rate: red from the Workbook's fast page (14.4×), yellow above 1×.
pub fn burn(b: f64) -> Style {
    if b >= 14.4 {
        bad()
    } else if b > 1.0 {
        warn()
    } else {
        Style::new()
    }
}

/// Every colour the dashboard may use: the 16 named ones and the terminal's default.
pub const PALETTE: [Color; 17] = [
    Color::Reset,
    Color::Black,
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::Gray,
    Color::DarkGray,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
    Color::White,
];
