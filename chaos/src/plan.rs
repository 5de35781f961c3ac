//! The plan (`--dry-run`): what the experiment will do and check, when, as offsets from its
//! start and as absolute UTC times.

use std::time::{Duration, SystemTime};

use ballast_model::units::HumanDuration;

use crate::action::{Action, Signal};
use crate::experiment::{Experiment, Step};
use crate::probe::AbortCondition;

/// The plan of `e` if it starts at `start`.
pub fn plan(e: &Experiment, start: SystemTime) -> String {
    // (offset, rank at equal offsets, lines)
    let mut entries: Vec<(Duration, u8, Vec<String>)> = Vec::new();
    let before = e.before_at();
    if !before.is_zero() {
        entries.push((
            Duration::ZERO,
            0,
            vec!["lead-in: the probes watch, nothing is done".into()],
        ));
    }
    let mut lines = vec!["before: the steady state must hold, or nothing runs".to_owned()];
    lines.extend(e.steady_state.iter().map(|p| format!("  {}", p.name)));
    if e.steady_state.is_empty() {
        lines[0] = "before: no steady-state probes; the method starts".into();
    }
    entries.push((before, 1, lines));
    for s in &e.method {
        entries.push((s.at, 3, vec![step_line(e, s)]));
        if let Some(end) = s.ends {
            entries.push((end, 2, vec![format!("{} ends: {}", s.label, end_text(&s.action))]));
        }
    }
    if e.method_end > before && !(e.steady_state.is_empty() && e.abort.is_empty()) {
        let mut lines = vec![format!(
            "during: the steady state is checked every {}{}",
            HumanDuration(e.interval),
            if e.abort.is_empty() { "" } else { "; abort if" }
        )];
        lines.extend(e.abort.iter().map(|a| format!("  {}", abort_text(a))));
        entries.push((before, 4, lines));
    }
    let mut over = vec!["method over: rollbacks (they also run on abort, error or Ctrl-C)".to_owned()];
    // Lasting actions without a duration are undone here, last applied first.
    let mut open: Vec<&Step> = e
        .method
        .iter()
        .filter(|s| s.ends.is_none() && undone_at_end(&s.action))
        .collect();
    open.sort_by_key(|s| std::cmp::Reverse(s.at));
    over.extend(
        open.iter()
            .map(|s| format!("  undo {}: {}", s.label, end_text(&s.action))),
    );
    over.extend(e.rollbacks.iter().map(|r| {
        format!(
            "  {}: {}",
            r.label,
            r.name.clone().unwrap_or_else(|| r.action.to_string())
        )
    }));
    if over.len() == 1 {
        over[0] = "method over: nothing left to roll back".into();
    }
    entries.push((e.method_end, 5, over));
    entries.push((
        e.method_end,
        6,
        vec![format!(
            "after: the steady state must be back within {} (by +{})",
            HumanDuration(e.recovery),
            HumanDuration(e.method_end + e.recovery)
        )],
    ));
    entries.sort_by_key(|(at, rank, _)| (*at, *rank));

    let mut out = format!("experiment: {}\n", e.title);
    if let Some(d) = &e.description {
        out.push_str(&format!("{}\n", d.trim()));
    }
    out.push_str(&format!(
        "starts {}; the method ends at +{}; done by +{} at the latest\n\n",
        utc(start),
        HumanDuration(e.method_end),
        HumanDuration(e.method_end + e.recovery)
    ));
    for (at, _, lines) in entries {
        let head = format!("{:>9}  {}  ", format!("+{}", HumanDuration(at)), utc(start + at));
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                out.push_str(&format!("{head}{line}\n"));
            } else {
                out.push_str(&format!("{:width$}{line}\n", "", width = head.len()));
            }
        }
    }
    out
}

fn step_line(e: &Experiment, s: &Step) -> String {
    let mut line = match &s.name {
        Some(name) => format!("{} {name:?}: {}", s.label, s.action),
        None => format!("{}: {}", s.label, s.action),
    };
    let lasting = s.ends.is_some() || undone_at_end(&s.action);
    match s.ends {
        Some(end) => line.push_str(&format!(" for {}", HumanDuration(end - s.at))),
        None if lasting => line.push_str(" until the method ends"),
        None => {}
    }
    if matches!(s.action, Action::Fault(_)) {
        let until = s.ends.unwrap_or(e.method_end);
        line.push_str(&format!(" (on every sidecar, TTL {})", HumanDuration(until - s.at)));
    }
    line
}

/// Whether the action is undone when the method ends (it has no duration of its own).
fn undone_at_end(action: &Action) -> bool {
    match action {
        Action::Fault(_) | Action::Stress(_) | Action::Behaviour { .. } => true,
        Action::Signal { signal, .. } => *signal == Signal::Stop,
        _ => false,
    }
}

fn end_text(action: &Action) -> String {
    match action {
        Action::Fault(_) => "remove the fault".into(),
        Action::Signal {
            process,
            signal: Signal::Stop,
        } => format!("continue {process} (SIGCONT)"),
        Action::Signal { process, .. } => format!("restart {process}"),
        Action::Stress(_) => "end the stress".into(),
        Action::Behaviour { path, .. } => format!("restore the behaviour of {path}"),
        Action::Pause => "pause over".into(),
        other => format!("{other} is over"),
    }
}

fn abort_text(a: &AbortCondition) -> String {
    let when = if a.sustain.is_zero() {
        " (at once)".to_owned()
    } else {
        format!(" for {}", HumanDuration(a.sustain))
    };
    match a.probe.kind {
        crate::probe::ProbeKind::Http(_) => format!("{} fails{when}", a.probe.name),
        crate::probe::ProbeKind::Stats(_) => format!("{}{when}", a.probe.name),
    }
}

fn utc(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
