//! Error budget spent by the incident, per SLO, from `slo.csv`'s live evaluation: bad events
//! (or slices) are `total - good` of the SLO's window, so the incident's are the difference
//! between the second before it and its last second. Exact while the SLO's window spans the
//! run (the usual scaled scenario window); with a shorter rolling window, events leaving the
//! window make the difference an underestimate, and the report says so.

use crate::load::{SloRun, SloSecond};

#[derive(Clone, Debug, PartialEq)]
pub struct BudgetImpact {
    pub slo: String,
    pub objective: f64,
    /// `requests` or `slices`.
    pub unit: &'static str,
    /// Bad events during the incident.
    pub bad: u64,
    /// The window's budget at the incident's end: `(1 - objective) × total`.
    pub window_budget: f64,
    /// `bad / window_budget`.
    pub share: f64,
    pub remaining_before: f64,
    pub remaining_after: f64,
    /// At the end of the run (`slo.json`, else the last `slo.csv` row).
    pub remaining_at_end: f64,
    /// The SLO window is shorter than the span measured: `bad` may be low.
    pub window_shorter_than_run: bool,
}

/// The budget the seconds `[from_s, to_s)` spent.
pub fn spent(slo: &SloRun, from_s: u64, to_s: u64) -> BudgetImpact {
    let untouched = SloSecond {
        budget_remaining: 1.0,
        ..SloSecond::default()
    };
    let at = |s: u64| {
        slo.seconds
            .get(s as usize)
            .or(slo.seconds.last())
            .cloned()
            .unwrap_or_else(|| untouched.clone())
    };
    let before = if from_s == 0 { untouched.clone() } else { at(from_s - 1) };
    let end = at(to_s.saturating_sub(1).max(from_s));
    let bad_of = |s: &SloSecond| s.total.saturating_sub(s.good);
    let bad = bad_of(&end).saturating_sub(bad_of(&before));
    let window_budget = (1.0 - slo.objective) * end.total as f64;
    let window_s = slo.spec.as_ref().and_then(|s| match s.window {
        ballast_model::slo::Window::Rolling(d) => Some(d.as_secs()),
        ballast_model::slo::Window::Calendar(_) => None,
    });
    BudgetImpact {
        slo: slo.name.clone(),
        objective: slo.objective,
        unit: slo.unit(),
        bad,
        window_budget,
        share: if window_budget > 0.0 {
            bad as f64 / window_budget
        } else {
            0.0
        },
        remaining_before: before.budget_remaining,
        remaining_after: end.budget_remaining,
        remaining_at_end: slo
            .budget_remaining_at_end
            .or(slo.seconds.last().map(|s| s.budget_remaining))
            .unwrap_or(1.0),
        window_shorter_than_run: window_s.is_some_and(|w| w < slo.seconds.len() as u64),
    }
}
