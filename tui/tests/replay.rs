//! Replay determinism: the same run folder and position give the same screens, however the
//! position was reached: opened there, played up to it in steps, or scrubbed back to it from
//! the end (a reset and a rebuild).

mod common;

use std::time::Duration;

use ballast_tui::source::Control;
use ballast_tui::ui::View;
use ballast_tui::{Model, Source};
use common::{feed, open, replay_at, screen};

fn screens(model: &mut Model) -> Vec<String> {
    View::ALL
        .iter()
        .map(|v| {
            model.ui.view = *v;
            model.ui.detail = Some(ballast_tui::ui::RowKey {
                sidecar: "shop-a".into(),
                route: "checkout".into(),
            });
            screen(model, 100, 30)
        })
        .collect()
}

#[test]
fn a_position_shows_the_same_screens_however_it_was_reached() {
    for at_s in [10u64, 34, 76, 90] {
        let (mut direct, _) = replay_at(Duration::from_secs(at_s));
        let want = screens(&mut direct);

        // Played forward a second at a time.
        let (mut stepped, mut source) = open(None);
        for _ in 0..at_s {
            source.control(Control::Seek(1_000)).unwrap();
            feed(&mut stepped, &mut source);
        }
        assert_eq!(screens(&mut stepped), want, "stepped to {at_s} s");

        // From the end back to the position: a reset, then a rebuild.
        let (mut back, mut source) = open(None);
        source.control(Control::ToEnd).unwrap();
        feed(&mut back, &mut source);
        let end = source.status();
        source
            .control(Control::Seek(
                (end.start_ms + at_s * 1_000) as i64 - end.position_ms as i64,
            ))
            .unwrap();
        feed(&mut back, &mut source);
        assert_eq!(screens(&mut back), want, "back to {at_s} s");
    }
}

#[test]
fn different_positions_show_different_screens() {
    let (mut early, _) = replay_at(Duration::from_secs(20));
    let (mut late, _) = replay_at(Duration::from_secs(76));
    assert_ne!(screens(&mut early)[0], screens(&mut late)[0]);
}
