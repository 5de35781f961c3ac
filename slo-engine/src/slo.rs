//! One SLO evaluated over time: counts come in ([`Slo::record`]), and at any moment
//! [`Slo::evaluate`] says the SLI over the window, the error budget left, the burn rate over
//! each alert window, when the budget would run out at the current pace, and the state of the
//! alerts, with an event for each alert that fires or resolves.
//!
//! Budgeting by `occurrences`: the budget is `(1 - objective)` of the window's events. By
//! `timeslices`: the window is cut into slices of `timeslice_window`; a slice with events is
//! good when its SLI reaches `timeslice_target`, and the budget is `(1 - objective)` of the
//! slices with events (slices without any are not counted). Burn rates are read from events in
//! both cases, as the Workbook's alerts are.
//!
//! Calendar windows run from the start of the current week (Monday 00:00) or month in the
//! SLO's UTC offset; their alert factors use the period's full length.

use std::collections::BTreeMap;
use std::time::Duration;

use ballast_model::EventKind;
use ballast_model::fault::FieldError;
use ballast_model::slo::{Budgeting, CalendarUnit, Severity, Sli, SloSpec, Window, parse_utc_offset};
use ballast_model::units::{civil_from_days, days_from_civil};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::alert::{Alert, AlertState, Change};
use crate::burn::{BurnWindow, windows};
use crate::latency::LatencySeries;
use crate::series::{Counts, Series};

/// Everything [`Slo::evaluate`] reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    pub name: String,
    pub objective: f64,
    /// Events (or slices, with timeslices budgeting) in the window so far.
    pub good: u64,
    pub total: u64,
    /// Good over total in the window; `None` without events.
    pub sli: Option<f64>,
    /// Bad events (or slices) the window allows: `(1 - objective) × total`.
    pub budget: f64,
    /// Share of the budget left: 1 untouched, 0 spent, below 0 overspent.
    pub budget_remaining: f64,
    pub burn_rates: Vec<BurnRate>,
    /// At the burn rate of the shortest alert window, when the budget runs out (ms from now).
    pub exhaustion_in_ms: Option<u64>,
    pub alerts: BTreeMap<Severity, AlertState>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BurnRate {
    pub severity: Severity,
    pub long_ms: u64,
    pub short_ms: u64,
    pub factor: f64,
    pub long: f64,
    pub short: f64,
}

pub struct Slo {
    pub spec: SloSpec,
    burn: Vec<BurnWindow>,
    events: Series,
    /// With timeslices budgeting: the slice being filled, and finished slices as good/total.
    slices: Option<(u64, Counts, Series)>,
    alerts: BTreeMap<Severity, Alert>,
    utc_offset_ms: i64,
    /// Latency SLIs: the distributions, for percentiles (fed by [`Slo::record_latency`]).
    latency: Option<LatencySeries>,
}

const DAY_MS: u64 = 86_400_000;

impl Slo {
    /// An SLO ready to evaluate; the spec's own errors if it has any.
    pub fn new(spec: SloSpec) -> Result<Slo, Vec<FieldError>> {
        spec.validate()?;
        let period = period(spec.window);
        let burn = windows(&spec.alerting, period);
        let shortest = burn.iter().map(|b| b.short).min().unwrap_or(period).as_millis() as u64;
        let period_ms = period.as_millis() as u64;
        let fine_ms = (shortest / 5).clamp(1_000, 60_000);
        let fine_span = period_ms.min(6 * 3_600_000);
        let coarse_ms = (period_ms / 720).max(fine_ms);
        let series = || Series::new(fine_ms, fine_span, coarse_ms, period_ms);
        let slices = (spec.budgeting == Budgeting::Timeslices).then(|| (0, Counts::default(), series()));
        let alerts = burn
            .iter()
            .map(|b| {
                let hold = spec
                    .alert_for
                    .get(&b.severity)
                    .map_or(0, |d| d.get().as_millis() as u64);
                (b.severity, Alert::new(hold))
            })
            .collect();
        let utc_offset_ms = spec.utc_offset.as_deref().and_then(parse_utc_offset).unwrap_or(0) as i64 * 1000;
        let latency = matches!(spec.sli, Sli::Latency(_)).then(|| LatencySeries::new(period));
        Ok(Slo {
            latency,
            events: series(),
            slices,
            burn,
            alerts,
            utc_offset_ms,
            spec,
        })
    }

    /// Good and total events at `at_ms` (counts since the previous record).
    pub fn record(&mut self, at_ms: u64, good: u64, total: u64) {
        self.events.add(at_ms, good, total);
        if let Some((slice, counts, done)) = &mut self.slices {
            let len = self.spec.timeslice_window.expect("validated").get().as_millis().max(1) as u64;
            let target = self.spec.timeslice_target.expect("validated");
            let index = at_ms / len;
            if index != *slice {
                if counts.total > 0 {
                    let good_slice = counts.ratio().is_some_and(|r| r >= target);
                    done.add(*slice * len + len - 1, u64::from(good_slice), 1);
                }
                (*slice, *counts) = (index, Counts::default());
            }
            counts.good += good.min(total);
            counts.total += total;
        }
    }

    /// A latency SLI's histogram of latencies (µs) at `at_ms`, for [`Slo::latency_quantile`]
    /// (the good/total counts still come through [`Slo::record`]). Ignored by other SLIs.
    pub fn record_latency(&mut self, at_ms: u64, h: &Histogram<u64>) {
        if let Some(l) = &mut self.latency {
            l.record(at_ms, h);
        }
    }

    /// The `q` quantile of a latency SLI's latencies over the `window` ending at `now_ms`
    /// (to a 16th; see [`crate::latency`]).
    pub fn latency_quantile(&self, now_ms: u64, window: Duration, q: f64) -> Option<Duration> {
        self.latency.as_ref()?.quantile(now_ms, window, q)
    }

    /// The SLO at `now_ms`, and the alert events of this step.
    pub fn evaluate(&mut self, now_ms: u64) -> (Status, Vec<EventKind>) {
        let window_ms = self.window_ms(now_ms);
        let counts = match &self.slices {
            Some((_, _, done)) => done.sum(now_ms, window_ms),
            None => self.events.sum(now_ms, window_ms),
        };
        let allowed_bad = 1.0 - self.spec.objective;
        let budget = allowed_bad * counts.total as f64;
        let budget_remaining = if budget > 0.0 {
            1.0 - counts.bad() as f64 / budget
        } else {
            1.0
        };
        let burn_rate = |window: Duration| {
            let c = self.events.sum(now_ms, window.as_millis() as u64);
            c.ratio().map_or(0.0, |r| (1.0 - r) / allowed_bad)
        };
        let burn_rates: Vec<BurnRate> = self
            .burn
            .iter()
            .map(|b| BurnRate {
                severity: b.severity,
                long_ms: b.long.as_millis() as u64,
                short_ms: b.short.as_millis() as u64,
                factor: b.factor,
                long: burn_rate(b.long),
                short: burn_rate(b.short),
            })
            .collect();
        let exhaustion_in_ms = exhaustion_in_ms(&burn_rates, budget_remaining, period(self.spec.window));
        let mut events = Vec::new();
        for (severity, alert) in &mut self.alerts {
            let firing = burn_rates
                .iter()
                .filter(|b| b.severity == *severity)
                .find(|b| b.long > b.factor && b.short > b.factor);
            match (alert.step(firing.is_some(), now_ms), firing) {
                (Some(Change::Fired), Some(b)) => events.push(EventKind::AlertFiring {
                    slo: self.spec.name.clone(),
                    severity: *severity,
                    burn_long: b.long,
                    burn_short: b.short,
                }),
                (Some(Change::Resolved), _) => events.push(EventKind::AlertResolved {
                    slo: self.spec.name.clone(),
                    severity: *severity,
                }),
                _ => {}
            }
        }
        let status = Status {
            name: self.spec.name.clone(),
            objective: self.spec.objective,
            good: counts.good,
            total: counts.total,
            sli: counts.ratio(),
            budget,
            budget_remaining,
            burn_rates,
            exhaustion_in_ms,
            alerts: self.alerts.iter().map(|(s, a)| (*s, a.state)).collect(),
        };
        (status, events)
    }

    /// Buckets of counts kept (16 bytes each), for memory accounting.
    pub fn buckets(&self) -> usize {
        self.events.buckets() + self.slices.as_ref().map_or(0, |(_, _, s)| s.buckets())
    }

    /// Bytes of latency distributions kept (latency SLIs), for memory accounting.
    pub fn latency_bytes(&self) -> usize {
        self.latency.as_ref().map_or(0, LatencySeries::bytes)
    }

    /// How far back the window reaches at `now_ms`.
    fn window_ms(&self, now_ms: u64) -> u64 {
        match self.spec.window {
            Window::Rolling(d) => d.as_millis() as u64,
            // From the period's first millisecond on, that one included.
            Window::Calendar(unit) => now_ms - calendar_start(now_ms, unit, self.utc_offset_ms) + 1,
        }
    }
}

/// The length a window's budget covers: the rolling duration, or a calendar period's (a week,
/// or 30 days for a month: the Workbook's).
pub fn period(window: Window) -> Duration {
    match window {
        Window::Rolling(d) => d,
        Window::Calendar(CalendarUnit::Week) => Duration::from_millis(7 * DAY_MS),
        Window::Calendar(CalendarUnit::Month) => Duration::from_millis(30 * DAY_MS),
    }
}

/// When the rest of the budget runs out (ms from now) at the pace of the shortest long alert
/// window: a burn rate of 1 spends a whole budget in `period`.
pub fn exhaustion_in_ms(burn_rates: &[BurnRate], budget_remaining: f64, period: Duration) -> Option<u64> {
    let b = burn_rates.iter().min_by_key(|b| b.long_ms)?;
    (b.long > 0.0 && budget_remaining > 0.0).then(|| (budget_remaining * period.as_millis() as f64 / b.long) as u64)
}

/// The start (Unix ms) of the calendar week (Monday) or month holding `now_ms`, in local time
/// `offset_ms` from UTC.
pub fn calendar_start(now_ms: u64, unit: CalendarUnit, offset_ms: i64) -> u64 {
    let local = now_ms as i64 + offset_ms;
    let days = local.div_euclid(DAY_MS as i64);
    let start_day = match unit {
        // 1970-01-01 was a Thursday: Monday is 3 days before.
        CalendarUnit::Week => days - (days + 3).rem_euclid(7),
        CalendarUnit::Month => {
            let (y, m, _) = civil_from_days(days);
            days_from_civil(y, m, 1)
        }
    };
    (start_day * DAY_MS as i64 - offset_ms).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;

    fn slo(extra: &str) -> Slo {
        let text =
            format!("name = \"api\"\nobjective = 0.999\nwindow = \"30d\"\nsli = {{ availability = {{}} }}\n{extra}");
        Slo::new(toml::from_str(&text).unwrap()).unwrap()
    }

    /// A minute of traffic: `n` requests of which `bad` failed.
    fn minute(s: &mut Slo, at: u64, n: u64, bad: u64) {
        s.record(at, n - bad, n);
    }

    #[test]
    fn a_steady_one_times_burn_spends_the_budget_at_the_window_pace_and_never_pages() {
        let mut s = slo("");
        let mut fired = Vec::new();
        // 1,000 requests a minute, one bad: exactly the objective (burn rate 1), for 4 days.
        for m in 0..4 * 24 * 60 {
            minute(&mut s, m * MIN, 1000, 1);
            if m % 10 == 0 {
                fired.extend(s.evaluate(m * MIN).1);
            }
        }
        let (st, _) = s.evaluate(4 * 24 * HOUR - MIN);
        assert!(fired.iter().all(|e| !matches!(
            e,
            EventKind::AlertFiring {
                severity: Severity::Page,
                ..
            }
        )));
        assert!((st.burn_rates[0].long - 1.0).abs() < 1e-9, "{:?}", st.burn_rates[0]);
        // 1× burns the whole budget in exactly the window: after 4 of 30 days nothing is
        // "overspent" and the budget spent equals the budget earned.
        assert!(st.budget_remaining.abs() < 1e-9, "{}", st.budget_remaining);
        // The 3-day ticket window sits at exactly 1×, not above it.
        assert_eq!(st.alerts[&Severity::Ticket], AlertState::Inactive);
    }

    #[test]
    fn a_spike_pages_and_resolves_at_the_hand_computed_minutes() {
        let mut s = slo("");
        let (mut page, mut ticket) = (Vec::new(), Vec::new());
        // Six clean hours, then 30 minutes at 10% errors (100× the 0.1% budget), then clean.
        for m in 0..10 * 60 {
            let bad = if (360..390).contains(&m) { 100 } else { 0 };
            minute(&mut s, m * MIN, 1000, bad);
            for e in s.evaluate(m * MIN).1 {
                let list = match &e {
                    EventKind::AlertFiring { severity, .. } | EventKind::AlertResolved { severity, .. } => {
                        if *severity == Severity::Page {
                            &mut page
                        } else {
                            &mut ticket
                        }
                    }
                    _ => continue,
                };
                list.push((matches!(e, EventKind::AlertFiring { .. }), m));
            }
        }
        // Page, 1 h over 14.4×: 100 × (m − 359) / 60,000 > 0.0144 from m = 368 (the 5 m window
        // is all spike). Resolved when both page rows stop holding: the 5 m window is clean
        // from m = 394, but the 6 h row (3,000 / 360,000 = 0.83% > 0.6%) holds until its 30 m
        // window drops to 6×: one bad minute left in it (100 / 30,000 = 0.33% < 0.6%), m = 418.
        assert_eq!(page, [(true, 368), (false, 418)]);
        // Ticket: the 3 d row at 1× first (its windows hold everything since the start):
        // 100 × (m − 359) / (1,000 × (m + 1)) > 0.001 from m = 363, and its 6 h window
        // (400 / 360,000) too.
        assert_eq!(ticket.first(), Some(&(true, 363)));
        let (st, _) = s.evaluate(10 * 60 * MIN - MIN);
        // 3,000 bad of 600,000 events, where 0.1% (600) were allowed: overspent five times.
        assert!(
            (st.budget_remaining - (1.0 - 3000.0 / 600.0)).abs() < 1e-9,
            "{}",
            st.budget_remaining
        );
        assert_eq!(st.total, 600_000);
    }

    #[test]
    fn alert_for_holds_a_page_back_while_pending() {
        let mut s = slo("alert_for = { page = \"5m\" }");
        let mut page = Vec::new();
        for m in 0..10 * 60 {
            let bad = if (360..390).contains(&m) { 100 } else { 0 };
            minute(&mut s, m * MIN, 1000, bad);
            let (st, events) = s.evaluate(m * MIN);
            if m == 370 {
                assert_eq!(st.alerts[&Severity::Page], AlertState::Pending { since_ms: 368 * MIN });
            }
            for e in events {
                match e {
                    EventKind::AlertFiring {
                        severity: Severity::Page,
                        ..
                    } => page.push((true, m)),
                    EventKind::AlertResolved {
                        severity: Severity::Page,
                        ..
                    } => page.push((false, m)),
                    _ => {}
                }
            }
        }
        // The same spike as above: the condition holds from minute 368 to 417; held for five
        // minutes, the page fires at 373 and resolves when the condition ends.
        assert_eq!(page, [(true, 373), (false, 418)]);
    }

    #[test]
    fn timeslices_count_good_slices() {
        let mut s = slo("budgeting = \"timeslices\"\ntimeslice_target = 0.99\ntimeslice_window = \"1m\"");
        for m in 0..100 {
            // Every tenth minute is a bad slice (5% errors); the others are clean.
            minute(&mut s, m * MIN, 100, if m % 10 == 0 { 5 } else { 0 });
        }
        minute(&mut s, 100 * MIN, 1, 0); // closes the last slice
        let (st, _) = s.evaluate(100 * MIN);
        assert_eq!((st.good, st.total), (90, 100));
        // The same traffic by occurrences: 50 bad of 10,001 events.
        let mut o = slo("");
        for m in 0..100 {
            minute(&mut o, m * MIN, 100, if m % 10 == 0 { 5 } else { 0 });
        }
        let (st, _) = o.evaluate(99 * MIN);
        assert_eq!((st.good, st.total), (9950, 10_000));
    }

    #[test]
    fn a_calendar_month_starts_over_at_the_month_boundary() {
        let text = "name = \"api\"\nobjective = 0.99\nwindow = \"calendar month\"\nsli = { availability = {} }";
        let mut s = Slo::new(toml::from_str(text).unwrap()).unwrap();
        let feb = days_from_civil(2026, 2, 1) as u64 * DAY_MS;
        // The last two hours of January were all failures; February so far is clean.
        for m in 0..120 {
            minute(&mut s, feb - (120 - m) * MIN, 100, 100);
        }
        for m in 0..600 {
            minute(&mut s, feb + m * MIN, 100, 0);
        }
        let (st, _) = s.evaluate(feb + 600 * MIN);
        assert_eq!(
            (st.good, st.total),
            (60_000, 60_000),
            "January's failures are not in February's budget"
        );
        assert_eq!(st.budget_remaining, 1.0);
        // Still January: the failures count.
        let (st, _) = s.evaluate(feb - MIN);
        assert!(st.total > st.good);
    }

    #[test]
    fn calendar_windows_start_on_monday_and_the_first_of_the_month() {
        // 2026-03-01 00:30 UTC is a Sunday; in UTC+01:00 it is 01:30 on the 1st.
        let t = days_from_civil(2026, 3, 1) as u64 * DAY_MS + 30 * MIN;
        assert_eq!(
            calendar_start(t, CalendarUnit::Month, 0),
            days_from_civil(2026, 3, 1) as u64 * DAY_MS
        );
        assert_eq!(
            calendar_start(t, CalendarUnit::Month, -2 * HOUR as i64),
            days_from_civil(2026, 2, 1) as u64 * DAY_MS + 2 * HOUR,
            "at UTC−02:00 it is still February"
        );
        assert_eq!(
            calendar_start(t, CalendarUnit::Week, 0),
            days_from_civil(2026, 2, 23) as u64 * DAY_MS
        );
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
