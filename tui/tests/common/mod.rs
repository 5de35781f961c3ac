//! Helpers shared by the TUI's integration tests: the fixture run folder, a model at a
//! position of it, and screens as text.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use std::sync::OnceLock;

use ballast_tui::recording::Recording;
use ballast_tui::source::replay::ReplaySource;
use ballast_tui::{Model, ReplayOptions, Source, replay, update, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-incident")
}

/// The fixture, read once per test binary (reading decodes every histogram).
pub fn fixture() -> Recording {
    static READ: OnceLock<Recording> = OnceLock::new();
    READ.get_or_init(|| Recording::read(&fixture_dir()).unwrap()).clone()
}

/// The fixture at `at` from its start (`None`: the start), paused, nothing fed yet.
pub fn open(at: Option<Duration>) -> (Model, ReplaySource) {
    let options = ReplayOptions {
        at,
        paused: true,
        speed: 1.0,
    };
    replay(fixture(), &options).unwrap()
}

/// The fixture replayed up to `at` from its start, paused.
pub fn replay_at(at: Duration) -> (Model, ReplaySource) {
    let (mut model, mut source) = open(Some(at));
    feed(&mut model, &mut source);
    (model, source)
}

/// Everything the source has for the model now.
pub fn feed(model: &mut Model, source: &mut ReplaySource) {
    for f in source.poll() {
        update(model, ballast_tui::Msg::Feed(f));
    }
}

/// The model drawn at `width`×`height`, as text.
pub fn screen(model: &Model, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| view(model, f)).unwrap();
    terminal.backend().to_string()
}

/// The model drawn, as a buffer (for styles).
pub fn buffer(model: &Model, width: u16, height: u16) -> ratatui::buffer::Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| view(model, f)).unwrap();
    terminal.backend().buffer().clone()
}
