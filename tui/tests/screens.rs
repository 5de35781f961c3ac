//! Snapshot tests of every view at 80×24 and 160×48, from the fixture run (see
//! `fixture.rs`): during the incident (page alert firing, a fault in place, shop-b not
//! answering) and before it. The `.snap` files are committed; a mismatch fails the test
//! (`INSTA_UPDATE=always cargo test --test screens` rewrites them after a deliberate change).

mod common;

use std::time::Duration;

use ballast_tui::presets::PRESETS;
use ballast_tui::source::FaultAction;
use ballast_tui::ui::{Dialog, RowKey, View};
use ballast_tui::views::theme::PALETTE;
use ballast_tui::{Model, Msg, update};
use common::{buffer, replay_at, screen};
use crossterm::event::{KeyCode, KeyEvent};

/// 76 s in: the fault is in place, the checkout SLO pages, shop-b went silent at 70 s.
const INCIDENT: Duration = Duration::from_secs(76);
/// 20 s in: calm.
const CALM: Duration = Duration::from_secs(20);

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn key(model: &mut Model, code: KeyCode) {
    update(model, Msg::Key(KeyEvent::from(code)));
}

fn incident() -> Model {
    replay_at(INCIDENT).0
}

#[test]
fn overview_during_the_incident() {
    let model = incident();
    let s = screen(&model, 80, 24);
    assert!(s.contains("PAGE checkout-availability"), "the banner:\n{s}");
    assert!(
        s.contains("shop-b unreachable, last seen 7s ago"),
        "the silent sidecar:\n{s}"
    );
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("overview_{w}x{h}"), screen(&model, w, h));
    }
}

#[test]
fn overview_before_the_incident() {
    let model = replay_at(CALM).0;
    let s = screen(&model, 80, 24);
    assert!(!s.contains("PAGE") && !s.contains("unreachable"), "{s}");
    insta::assert_snapshot!("overview_calm_80x24", s);
}

#[test]
fn route_detail_of_the_route_paging() {
    let mut model = incident();
    // The most urgent row comes first; Enter opens it.
    key(&mut model, KeyCode::Enter);
    assert_eq!(model.ui.view, View::Route);
    assert_eq!(
        model.ui.detail,
        Some(RowKey {
            sidecar: "shop-a".into(),
            route: "checkout".into()
        })
    );
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("route_{w}x{h}"), screen(&model, w, h));
    }
}

#[test]
fn upstreams_with_an_ejection_and_an_unhealthy_endpoint() {
    let mut model = replay_at(Duration::from_secs(56)).0;
    key(&mut model, KeyCode::Char('3'));
    let s = screen(&model, 80, 24);
    assert!(s.contains("ejected 8s") && s.contains("unhealthy"), "{s}");
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("upstreams_{w}x{h}"), screen(&model, w, h));
    }
}

#[test]
fn faults_as_recorded() {
    let mut model = incident();
    key(&mut model, KeyCode::Char('4'));
    let s = screen(&model, 80, 24);
    assert!(s.contains("abort 503 20%") && s.contains("in 1m 13s"), "{s}");
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("faults_{w}x{h}"), screen(&model, w, h));
    }
}

#[test]
fn timeline_newest_first() {
    let mut model = incident();
    key(&mut model, KeyCode::Char('5'));
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("timeline_{w}x{h}"), screen(&model, w, h));
    }
    // Filtered, and scrolled further than the filter leaves: the last page still shows.
    for c in "/fault".chars() {
        key(&mut model, KeyCode::Char(c));
    }
    key(&mut model, KeyCode::Enter);
    model.ui.timeline_top = 100;
    let s = screen(&model, 80, 24);
    assert!(s.contains("fault_added") && !s.contains("health_changed"), "{s}");
}

#[test]
fn help_and_dialogs() {
    let mut model = incident();
    key(&mut model, KeyCode::Char('?'));
    insta::assert_snapshot!("help_80x24", screen(&model, 80, 24));
    key(&mut model, KeyCode::Esc);
    model.ui.view = View::Faults;
    // Dialogs open from keys only on live sources; drawn here from the fixture's data.
    model.ui.dialog = Some(Dialog::Presets {
        selected: 2,
        target: RowKey {
            sidecar: "shop-a".into(),
            route: "checkout".into(),
        },
    });
    insta::assert_snapshot!("presets_80x24", screen(&model, 80, 24));
    model.ui.dialog = Some(Dialog::Confirm {
        prompt: format!("Add \"{}\" on route checkout of shop-a for 5m?", PRESETS[0].label),
        action: FaultAction::Clear { sidecars: vec![] },
    });
    insta::assert_snapshot!("confirm_80x24", screen(&model, 80, 24));
}

#[test]
fn a_terminal_too_small_gets_a_note_not_a_panic() {
    let model = incident();
    assert!(screen(&model, 40, 10).contains("needs 60×12"));
    let mut m = incident();
    key(&mut m, KeyCode::Enter);
    for (w, h) in [(60, 12), (61, 13), (79, 23), (200, 60)] {
        for v in View::ALL {
            m.ui.view = v;
            screen(&m, w, h);
        }
    }
}

#[test]
fn only_the_16_named_colours_are_used() {
    for v in View::ALL {
        let mut model = incident();
        key(&mut model, KeyCode::Enter);
        model.ui.view = v;
        for (w, h) in SIZES {
            let b = buffer(&model, w, h);
            for cell in b.content() {
                assert!(
                    PALETTE.contains(&cell.fg) && PALETTE.contains(&cell.bg),
                    "{v:?}: {:?}/{:?}",
                    cell.fg,
                    cell.bg
                );
            }
        }
    }
}

#[test]
fn a_long_run_name_leaves_room_for_the_position() {
    let mut model = incident();
    if let ballast_tui::source::SourceStatus::Replay(r) = &mut model.source {
        r.name = "demo-checkout-errors-page-catalog-holds-20261129T040050Z".into();
    }
    let s = screen(&model, 120, 30);
    let header = s.lines().next().unwrap();
    assert!(
        header.contains("REPLAY demo-checkout-") && header.contains("…") && header.contains("01:16/01:30 (00:01:16Z)"),
        "{header}"
    );
}
