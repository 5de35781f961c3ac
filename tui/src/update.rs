//! `update`: every key and every piece of data goes through here and changes the model. It
//! never does I/O; what needs the outside world (quit, a replay control, a fault action)
//! comes back as a [`Command`] for the loop to carry out.
//!
//! Keys are listed in [`crate::views::help`]; what they do depends on the view, and a dialog
//! or the filter prompt takes every key while open.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::model::Model;
use crate::presets::{PRESETS, TTL};
use crate::source::{Control, FaultAction, Feed};
use crate::ui::{Dialog, RowKey, View};

pub enum Msg {
    Key(KeyEvent),
    Feed(Feed),
    /// The terminal's new size.
    Resize {
        width: u16,
        height: u16,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Quit,
    Control(Control),
    Fault(FaultAction),
}

/// What an update asks of the loop.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub redraw: bool,
    pub command: Option<Command>,
}

impl Outcome {
    fn redraw() -> Outcome {
        Outcome {
            redraw: true,
            command: None,
        }
    }

    fn command(c: Command) -> Outcome {
        Outcome {
            redraw: true,
            command: Some(c),
        }
    }
}

/// Scrub steps: ←/→ and with Shift.
const STEP_MS: i64 = 10_000;
const BIG_STEP_MS: i64 = 60_000;

pub fn update(model: &mut Model, msg: Msg) -> Outcome {
    match msg {
        Msg::Feed(feed) => Outcome {
            redraw: model.apply(feed),
            command: None,
        },
        Msg::Resize { height, .. } => {
            // Header, footer and a table's heading take about five rows.
            model.ui.page = (height as usize).saturating_sub(5).max(1);
            Outcome::redraw()
        }
        Msg::Key(key) => on_key(model, key),
    }
}

fn on_key(model: &mut Model, key: KeyEvent) -> Outcome {
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        return Outcome::command(Command::Quit);
    }
    // A message is read by the time the next key comes.
    model.ui.message = None;
    if model.ui.editing_filter {
        edit_filter(model, key.code);
        return Outcome::redraw();
    }
    if model.ui.dialog.is_some() {
        return on_dialog_key(model, key.code);
    }
    if model.ui.help {
        model.ui.help = false;
        return Outcome::redraw();
    }
    let shift = key.modifiers.contains(KeyModifiers::SHIFT);
    match key.code {
        KeyCode::Char('q') => return Outcome::command(Command::Quit),
        KeyCode::Char('?') => model.ui.help = true,
        KeyCode::Char(c @ '1'..='5') => {
            let view = View::ALL[(c as u8 - b'1') as usize];
            if view == View::Route {
                open_detail(model);
            } else {
                model.ui.view = view;
            }
        }
        KeyCode::Tab | KeyCode::BackTab => {
            let i = View::ALL.iter().position(|v| *v == model.ui.view).unwrap_or(0);
            let n = View::ALL.len();
            let next = if key.code == KeyCode::Tab {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            };
            model.ui.view = View::ALL[next];
            if model.ui.view == View::Route && model.ui.detail.is_none() {
                open_detail(model);
            }
        }
        KeyCode::Char('/') if matches!(model.ui.view, View::Overview | View::Timeline) => {
            model.ui.editing_filter = true;
        }
        KeyCode::Esc if !model.ui.filter.is_empty() => model.ui.filter.clear(),
        KeyCode::Esc => model.ui.view = View::Overview,
        KeyCode::Char(' ') => return control(model, Control::TogglePlay),
        KeyCode::Char('+') | KeyCode::Char('=') => return control(model, Control::Faster),
        KeyCode::Char('-') => return control(model, Control::Slower),
        KeyCode::Left => return control(model, Control::Seek(-if shift { BIG_STEP_MS } else { STEP_MS })),
        KeyCode::Right => return control(model, Control::Seek(if shift { BIG_STEP_MS } else { STEP_MS })),
        KeyCode::Home => return control(model, Control::ToStart),
        KeyCode::End => return control(model, Control::ToEnd),
        code => return on_view_key(model, code),
    }
    Outcome::redraw()
}

fn control(model: &mut Model, c: Control) -> Outcome {
    if !model.is_replay() {
        model
            .ui
            .warn("live data cannot be paused or scrubbed; replay a recorded run for that");
        return Outcome::redraw();
    }
    Outcome::command(Command::Control(c))
}

fn edit_filter(model: &mut Model, code: KeyCode) {
    let ui = &mut model.ui;
    match code {
        KeyCode::Enter => ui.editing_filter = false,
        KeyCode::Esc => {
            ui.filter.clear();
            ui.editing_filter = false;
        }
        KeyCode::Backspace => {
            ui.filter.pop();
        }
        KeyCode::Char(c) => ui.filter.extend(c.to_lowercase()),
        _ => {}
    }
    ui.timeline_top = 0;
}

/// Keys of the view on screen.
fn on_view_key(model: &mut Model, code: KeyCode) -> Outcome {
    let page = model.ui.page.max(1) as isize;
    let step = match code {
        KeyCode::Up | KeyCode::Char('k') => Some(-1),
        KeyCode::Down | KeyCode::Char('j') => Some(1),
        KeyCode::PageUp => Some(-page),
        KeyCode::PageDown => Some(page),
        KeyCode::Char('g') => Some(isize::MIN / 2),
        KeyCode::Char('G') => Some(isize::MAX / 2),
        _ => None,
    };
    match (model.ui.view, code, step) {
        (View::Overview | View::Route, _, Some(step)) => move_selection(model, step),
        (View::Overview, KeyCode::Enter, _) => open_detail(model),
        (View::Overview, KeyCode::Char('s'), _) => {
            model.ui.sort = model.ui.sort.next();
            model.ui.say(format!("sorted by {}", model.ui.sort.name()));
        }
        (View::Upstreams, _, Some(step)) => model.ui.upstreams_top = moved(model.ui.upstreams_top, step, usize::MAX),
        (View::Timeline, _, Some(step)) => {
            model.ui.timeline_top = moved(model.ui.timeline_top, step, model.timeline.len().saturating_sub(1))
        }
        (View::Faults, _, Some(step)) => {
            let n = model.fault_rows().len();
            model.ui.fault = moved(model.ui.fault, step, n.saturating_sub(1));
        }
        (View::Faults, KeyCode::Char('a'), _) => open_presets(model),
        (View::Faults, KeyCode::Char('d'), _) => ask_remove(model),
        (View::Faults, KeyCode::Char('D'), _) => ask_clear(model),
        _ => return Outcome::default(),
    }
    Outcome::redraw()
}

fn moved(at: usize, step: isize, max: usize) -> usize {
    (at as isize).saturating_add(step).clamp(0, max as isize) as usize
}

/// Move the overview's selection (the detail view follows it).
fn move_selection(model: &mut Model, step: isize) {
    let keys: Vec<RowKey> = model.route_rows().iter().map(|r| r.key()).collect();
    if keys.is_empty() {
        return;
    }
    let current = match model.ui.view {
        View::Route => model.ui.detail.as_ref(),
        _ => model.ui.selected.as_ref(),
    };
    let at = current.and_then(|k| keys.iter().position(|x| x == k));
    let next = match at {
        Some(i) => moved(i, step, keys.len() - 1),
        None => 0,
    };
    model.ui.selected = Some(keys[next].clone());
    if model.ui.view == View::Route {
        model.ui.detail = Some(keys[next].clone());
    }
}

/// The selected row, else the first one.
fn selected_or_first(model: &Model) -> Option<RowKey> {
    let rows = model.route_rows();
    model
        .ui
        .selected
        .clone()
        .filter(|k| rows.iter().any(|r| r.key() == *k))
        .or_else(|| rows.first().map(|r| r.key()))
}

fn open_detail(model: &mut Model) {
    match selected_or_first(model) {
        Some(key) => {
            model.ui.selected = Some(key.clone());
            model.ui.detail = Some(key);
            model.ui.view = View::Route;
        }
        None => model.ui.warn("no route to show yet"),
    }
}

/// Why fault actions are refused here, if they are.
fn refuse_faults(model: &mut Model) -> bool {
    if model.is_replay() {
        model.ui.warn(crate::source::replay::REFUSED);
        return true;
    }
    false
}

fn open_presets(model: &mut Model) {
    if refuse_faults(model) {
        return;
    }
    // The selected route, unless it is the requests no route matched.
    let target = selected_or_first(model)
        .filter(|k| !k.route.starts_with('('))
        .or_else(|| {
            model
                .route_rows()
                .iter()
                .map(|r| r.key())
                .find(|k| !k.route.starts_with('('))
        });
    match target {
        Some(target) => model.ui.dialog = Some(Dialog::Presets { selected: 0, target }),
        None => model.ui.warn("no route to put a fault on yet"),
    }
}

fn ask_remove(model: &mut Model) {
    if refuse_faults(model) {
        return;
    }
    let rows = model.fault_rows();
    let Some((sidecar, fault)) = rows.get(model.ui.fault.min(rows.len().saturating_sub(1))) else {
        model.ui.warn("no fault to clear");
        return;
    };
    let dialog = Dialog::Confirm {
        prompt: format!(
            "Clear fault {} ({} on {}) on {}?",
            fault.id,
            crate::describe::fault_effect(&fault.spec),
            crate::describe::fault_target(&fault.spec),
            sidecar.name
        ),
        action: FaultAction::Remove {
            sidecar: sidecar.name.clone(),
            id: fault.id.clone(),
        },
    };
    model.ui.dialog = Some(dialog);
}

fn ask_clear(model: &mut Model) {
    if refuse_faults(model) {
        return;
    }
    let added: Vec<&str> = model
        .fault_rows()
        .iter()
        .filter(|(_, f)| f.origin == ballast_model::fault::Origin::Api)
        .map(|(_, f)| f.id.as_str())
        .collect();
    let prompt = format!(
        "Clear every fault added at run time ({}) on {} sidecar(s)? Faults from config files stay.",
        if added.is_empty() {
            "none listed now".to_owned()
        } else {
            added.join(", ")
        },
        model.sidecars.len()
    );
    let sidecars = model.sidecars.iter().map(|s| s.name.clone()).collect();
    model.ui.dialog = Some(Dialog::Confirm {
        prompt,
        action: FaultAction::Clear { sidecars },
    });
}

fn on_dialog_key(model: &mut Model, code: KeyCode) -> Outcome {
    let Some(dialog) = model.ui.dialog.take() else {
        return Outcome::default();
    };
    match dialog {
        Dialog::Presets { selected, target } => {
            let n = PRESETS.len();
            let targets = || -> Vec<RowKey> {
                model
                    .route_rows()
                    .iter()
                    .map(|r| r.key())
                    .filter(|k| !k.route.starts_with('('))
                    .collect()
            };
            let dialog = match code {
                KeyCode::Esc | KeyCode::Char('q') => {
                    model.ui.say("no fault added");
                    None
                }
                KeyCode::Up | KeyCode::Char('k') => Some(Dialog::Presets {
                    selected: (selected + n - 1) % n,
                    target,
                }),
                KeyCode::Down | KeyCode::Char('j') => Some(Dialog::Presets {
                    selected: (selected + 1) % n,
                    target,
                }),
                KeyCode::Left | KeyCode::Right => {
                    let all = targets();
                    let i = all.iter().position(|k| *k == target).unwrap_or(0);
                    let next = match code {
                        KeyCode::Left => (i + all.len().max(1) - 1) % all.len().max(1),
                        _ => (i + 1) % all.len().max(1),
                    };
                    Some(Dialog::Presets {
                        selected,
                        target: all.get(next).cloned().unwrap_or(target),
                    })
                }
                KeyCode::Enter => {
                    let preset = &PRESETS[selected];
                    Some(Dialog::Confirm {
                        prompt: format!(
                            "Add \"{}\" on route {} of {} for {TTL}?",
                            preset.label, target.route, target.sidecar
                        ),
                        action: FaultAction::Add {
                            sidecar: target.sidecar.clone(),
                            spec: Box::new(preset.spec(&target.route)),
                        },
                    })
                }
                _ => Some(Dialog::Presets { selected, target }),
            };
            model.ui.dialog = dialog;
            Outcome::redraw()
        }
        Dialog::Confirm { prompt, action } => match code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                model.ui.say(match &action {
                    FaultAction::Add { sidecar, .. } => format!("adding the fault on {sidecar}…"),
                    FaultAction::Remove { id, .. } => format!("clearing {id}…"),
                    FaultAction::Clear { .. } => "clearing faults…".to_owned(),
                });
                Outcome::command(Command::Fault(action))
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                model.ui.say("cancelled: nothing changed");
                Outcome::redraw()
            }
            _ => {
                model.ui.dialog = Some(Dialog::Confirm { prompt, action });
                Outcome::default()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ballast_model::fault::Origin;
    use ballast_model::stats::Traffic;
    use ballast_model::{ActiveFault, FaultSpec, StatsSnapshot};

    use super::*;
    use crate::source::{ReplayStatus, SourceStatus};
    use crate::ui::Sort;

    fn key(c: char) -> Msg {
        Msg::Key(KeyEvent::from(KeyCode::Char(c)))
    }

    fn code(c: KeyCode) -> Msg {
        Msg::Key(KeyEvent::from(c))
    }

    fn fault(id: &str, origin: Origin) -> ActiveFault {
        ActiveFault {
            id: id.into(),
            origin,
            created_at_ms: 0,
            expires_at_ms: None,
            spec: toml::from_str::<FaultSpec>("kind = \"abort\"\nstatus = 503\nroute = \"api\"").unwrap(),
            matched: 0,
            injected: 0,
        }
    }

    /// Two sidecars with routes `api` and `web` (web busier), `a` with two faults.
    fn model() -> Model {
        let mut m = Model::new(vec!["a".into(), "b".into()], vec![]).unwrap();
        for (i, name) in ["a", "b"].iter().enumerate() {
            let mut s = StatsSnapshot {
                started_at_ms: 1,
                taken_at_ms: 1_000,
                ..Default::default()
            };
            for (route, n) in [("api", 10 + i as u64), ("web", 100), ("(unmatched)", 1)] {
                let mut t = Traffic::default();
                t.counters.requests = n;
                s.routes.insert(route.into(), t);
            }
            if *name == "a" {
                s.faults = vec![fault("f1", Origin::Config), fault("f2", Origin::Api)];
            }
            m.apply(Feed::Stats {
                at_ms: 1_000,
                sidecar: (*name).into(),
                snapshot: Arc::new(s),
            });
        }
        m
    }

    fn run(m: &mut Model, msgs: impl IntoIterator<Item = Msg>) -> Vec<Command> {
        msgs.into_iter().filter_map(|msg| update(m, msg).command).collect()
    }

    #[test]
    fn views_switch_by_number_tab_and_escape() {
        let mut m = model();
        run(&mut m, [key('3')]);
        assert_eq!(m.ui.view, View::Upstreams);
        run(&mut m, [code(KeyCode::Tab)]);
        assert_eq!(m.ui.view, View::Faults);
        run(&mut m, [code(KeyCode::BackTab), code(KeyCode::BackTab)]);
        assert_eq!(m.ui.view, View::Route, "the detail of the first row");
        assert!(m.ui.detail.is_some());
        run(&mut m, [code(KeyCode::Esc)]);
        assert_eq!(m.ui.view, View::Overview);
        run(&mut m, [key('?')]);
        assert!(m.ui.help);
        run(&mut m, [key('x')]);
        assert!(!m.ui.help, "any key closes the help");
    }

    #[test]
    fn selection_follows_its_route_and_enter_opens_it() {
        let mut m = model();
        m.ui.sort = Sort::Name;
        run(&mut m, [code(KeyCode::Down), code(KeyCode::Down)]);
        // By name: (unmatched)@a, (unmatched)@b, api@a, ...
        let picked = m.ui.selected.clone().unwrap();
        assert_eq!((picked.route.as_str(), picked.sidecar.as_str()), ("(unmatched)", "b"));
        run(&mut m, [key('s')]);
        assert_eq!(m.ui.sort, Sort::Burn);
        assert_eq!(m.ui.selected.as_ref(), Some(&picked), "kept by key when rows re-sort");
        run(&mut m, [code(KeyCode::Enter)]);
        assert_eq!((m.ui.view, m.ui.detail.as_ref()), (View::Route, Some(&picked)));
        run(&mut m, [key('G')]);
        assert_ne!(m.ui.detail.as_ref(), Some(&picked), "↑↓ move the detail too");
    }

    #[test]
    fn the_filter_is_typed_after_slash_and_cleared_with_escape() {
        let mut m = model();
        run(
            &mut m,
            [key('/'), key('W'), key('e'), key('x'), code(KeyCode::Backspace)],
        );
        assert!(m.ui.editing_filter);
        assert_eq!(m.ui.filter, "we");
        run(&mut m, [key('q')]);
        assert_eq!(m.ui.filter, "weq", "q is text while typing");
        run(&mut m, [code(KeyCode::Backspace), code(KeyCode::Enter)]);
        assert!(!m.ui.editing_filter);
        assert!(m.route_rows().iter().all(|r| r.route == "web"));
        run(&mut m, [code(KeyCode::Esc)]);
        assert_eq!(m.ui.filter, "");
    }

    #[test]
    fn quit_with_q_or_ctrl_c_even_in_a_dialog() {
        let mut m = model();
        assert_eq!(run(&mut m, [key('q')]), [Command::Quit]);
        m.ui.view = View::Faults;
        run(&mut m, [key('a')]);
        assert!(m.ui.dialog.is_some());
        let ctrl_c = Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert_eq!(run(&mut m, [ctrl_c]), [Command::Quit]);
    }

    #[test]
    fn clearing_a_fault_asks_first_and_no_cancels() {
        let mut m = model();
        m.ui.view = View::Faults;
        run(&mut m, [code(KeyCode::Down), key('d')]);
        let Some(Dialog::Confirm { prompt, .. }) = &m.ui.dialog else {
            panic!("no confirmation: {:?}", m.ui.dialog)
        };
        assert!(prompt.contains("Clear fault f2"), "{prompt}");
        assert!(run(&mut m, [key('x')]).is_empty(), "other keys wait for an answer");
        assert!(m.ui.dialog.is_some());
        assert!(run(&mut m, [key('n')]).is_empty());
        assert!(m.ui.dialog.is_none());
        assert!(m.ui.message.as_ref().unwrap().text.contains("cancelled"));

        let cmds = run(&mut m, [key('d'), key('y')]);
        assert_eq!(
            cmds,
            [Command::Fault(FaultAction::Remove {
                sidecar: "a".into(),
                id: "f2".into()
            })]
        );
        assert!(m.ui.dialog.is_none());

        let cmds = run(&mut m, [key('D'), code(KeyCode::Esc), key('D'), code(KeyCode::Enter)]);
        assert_eq!(
            cmds,
            [Command::Fault(FaultAction::Clear {
                sidecars: vec!["a".into(), "b".into()]
            })]
        );
    }

    #[test]
    fn adding_a_fault_picks_a_preset_and_a_route_then_confirms() {
        let mut m = model();
        m.ui.view = View::Faults;
        run(&mut m, [key('a')]);
        let Some(Dialog::Presets { target, .. }) = &m.ui.dialog else {
            panic!("no presets")
        };
        assert!(!target.route.starts_with('('), "not the unmatched requests");
        let first = target.clone();
        run(&mut m, [code(KeyCode::Down), code(KeyCode::Right)]);
        let Some(Dialog::Presets { selected, target }) = m.ui.dialog.clone() else {
            panic!()
        };
        assert_eq!(selected, 1);
        assert_ne!(target, first, "→ picks another route");
        run(&mut m, [code(KeyCode::Enter)]);
        assert!(matches!(&m.ui.dialog, Some(Dialog::Confirm { prompt, .. }) if prompt.contains("50%")));
        let cmds = run(&mut m, [key('y')]);
        let [Command::Fault(FaultAction::Add { sidecar, spec })] = cmds.as_slice() else {
            panic!("{cmds:?}")
        };
        assert_eq!(sidecar, &target.sidecar);
        assert_eq!(spec.route.as_deref(), Some(target.route.as_str()));
        assert_eq!((spec.status, spec.percent), (Some(503), Some(50.0)));
    }

    #[test]
    fn a_replay_refuses_fault_actions_and_takes_controls() {
        let mut m = model();
        assert!(run(&mut m, [key(' ')]).is_empty(), "live: nothing to pause");
        assert!(m.ui.message.as_ref().unwrap().error);
        m.apply(Feed::Clock {
            now_ms: 1_000,
            status: SourceStatus::Replay(ReplayStatus {
                name: "r".into(),
                start_ms: 0,
                end_ms: 9_000,
                position_ms: 1_000,
                playing: true,
                speed: 1.0,
            }),
        });
        m.ui.view = View::Faults;
        for k in ['a', 'd', 'D'] {
            assert!(run(&mut m, [key(k)]).is_empty());
            assert!(m.ui.dialog.is_none());
            assert!(m.ui.message.as_ref().unwrap().text.contains("replay"), "{k}");
        }
        let shift_left = Msg::Key(KeyEvent::new(KeyCode::Left, KeyModifiers::SHIFT));
        assert_eq!(
            run(
                &mut m,
                [key(' '), key('+'), code(KeyCode::Right), shift_left, code(KeyCode::End)]
            ),
            [
                Command::Control(Control::TogglePlay),
                Command::Control(Control::Faster),
                Command::Control(Control::Seek(10_000)),
                Command::Control(Control::Seek(-60_000)),
                Command::Control(Control::ToEnd),
            ]
        );
    }

    #[test]
    fn action_outcomes_show_as_messages() {
        let mut m = model();
        update(
            &mut m,
            Msg::Feed(Feed::Done {
                ok: false,
                message: "a: invalid fault".into(),
            }),
        );
        assert_eq!(
            m.ui.message.as_ref().map(|x| (x.text.as_str(), x.error)),
            Some(("a: invalid fault", true))
        );
        run(&mut m, [key('j')]);
        assert!(m.ui.message.is_none(), "gone at the next key");
    }
}
