//! The SLOs the dashboard follows, computed in the model from the sidecars' stats windows by
//! the SLO engine: the same code live and in a replay. Each scrape's window is recorded (the
//! counts of every sidecar add up) and the SLO evaluated at the scrape's time: budget left,
//! burn rates, alerts and their events.
//!
//! The "current" burn rate shown is over the last minute of scrapes. A first window (the
//! traffic since the sidecar started) is recorded at the sidecar's start, not at the scrape,
//! so a long-running sidecar's past does not read as a burst now.

use std::collections::VecDeque;

use ballast_model::EventKind;
use ballast_model::slo::{Severity, SloSpec};
use ballast_model::stats::StatsWindow;
use ballast_slo_engine::slo::Status;
use ballast_slo_engine::source::sidecar_counts;
use ballast_slo_engine::{Counts, Slo};

use ballast_slo_engine::alert::AlertState;

/// The span of the "current" burn rate.
pub const RECENT_MS: u64 = 60_000;

pub struct SloState {
    pub spec: SloSpec,
    engine: Slo,
    /// Whether the sidecars' stats can answer it (not trace SLIs, nor the load generator's).
    pub answerable: bool,
    /// As of the latest evaluation; `None` before any traffic was recorded.
    pub status: Option<Status>,
    /// Windows of the last minute: (from, to, counts).
    recent: VecDeque<(u64, u64, Counts)>,
    /// While the page alert fires: since when, and the budget left when it fired.
    pub page: Option<Page>,
    /// Evaluations never go back in time (scrapes of several sidecars interleave).
    evaluated_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Page {
    pub since_ms: u64,
    pub budget_at_fire: f64,
}

impl SloState {
    /// A checked spec (see [`ballast_slo_engine::spec_file`]); the engine's problems otherwise.
    pub fn new(spec: SloSpec) -> Result<SloState, String> {
        let engine = Slo::new(spec.clone()).map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("slo {}: {}: {}\n  fix: {}", spec.name, e.field, e.message, e.fix))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        Ok(SloState {
            answerable: sidecar_counts(&spec, &StatsWindow::default()).is_some(),
            spec,
            engine,
            status: None,
            recent: VecDeque::new(),
            page: None,
            evaluated_ms: 0,
        })
    }

    /// Whether the SLO counts the requests of `route` (it names it, or selects every route).
    pub fn covers(&self, route: &str) -> bool {
        self.answerable && self.spec.route().is_none_or(|r| r == route)
    }

    /// Record one sidecar's window, scraped at `at_ms`, and evaluate; the alert events.
    pub fn record(&mut self, window: &StatsWindow, at_ms: u64) -> Vec<EventKind> {
        let Some(counts) = sidecar_counts(&self.spec, window) else {
            return Vec::new();
        };
        let at = if window.reset { window.from_ms.min(at_ms) } else { at_ms };
        self.engine.record(at, counts.good, counts.total);
        self.recent.push_back((window.from_ms, window.to_ms, counts));
        while self.recent.front().is_some_and(|(_, to, _)| to + RECENT_MS < at_ms) {
            self.recent.pop_front();
        }
        self.evaluated_ms = self.evaluated_ms.max(at_ms);
        let (status, events) = self.engine.evaluate(self.evaluated_ms);
        self.page = match status.alerts.get(&Severity::Page) {
            Some(AlertState::Firing { since_ms }) => Some(match self.page {
                Some(p) if p.since_ms == *since_ms => p,
                _ => Page {
                    since_ms: *since_ms,
                    budget_at_fire: status.budget_remaining,
                },
            }),
            _ => None,
        };
        self.status = Some(status);
        events
    }

    /// The time of the latest evaluation (the latest scrape recorded).
    pub fn evaluated_ms(&self) -> u64 {
        self.evaluated_ms
    }

    /// The burn rate over the windows of the last minute before `now_ms` (windows reaching
    /// further back, such as a first window since the sidecar started, are left out); `None`
    /// without traffic.
    pub fn burn_recent(&self, now_ms: u64) -> Option<f64> {
        let since = now_ms.saturating_sub(RECENT_MS + 1_000);
        let c = self
            .recent
            .iter()
            .filter(|(from, to, _)| *from >= since && *to <= now_ms.max(*from))
            .fold(Counts::default(), |a, (_, _, c)| Counts {
                good: a.good + c.good,
                total: a.total + c.total,
            });
        c.ratio().map(|r| (1.0 - r) / (1.0 - self.spec.objective))
    }

    /// The most urgent alert state: 0 page firing, 1 ticket firing, 2 pending, 3 none.
    pub fn urgency(&self) -> u8 {
        let Some(st) = &self.status else { return 3 };
        let firing = |s| matches!(st.alerts.get(&s), Some(AlertState::Firing { .. }));
        if firing(Severity::Page) {
            0
        } else if firing(Severity::Ticket) {
            1
        } else if st.alerts.values().any(|a| matches!(a, AlertState::Pending { .. })) {
            2
        } else {
            3
        }
    }

    /// The share of the budget spent since the page alert fired.
    pub fn burned_since_page(&self) -> Option<f64> {
        Some(self.page?.budget_at_fire - self.status.as_ref()?.budget_remaining)
    }
}

#[cfg(test)]
mod tests {
    use ballast_model::stats::Traffic;

    use super::*;

    fn window(from: u64, to: u64, ok: u64, bad: u64) -> StatsWindow {
        let mut t = Traffic::default();
        t.counters.requests = ok + bad;
        t.counters.by_status_class.insert("2xx".into(), ok);
        t.counters.by_status_class.insert("5xx".into(), bad);
        let mut w = StatsWindow {
            from_ms: from,
            to_ms: to,
            ..Default::default()
        };
        w.routes.insert("api".into(), t);
        w
    }

    fn slo() -> SloState {
        let spec = toml::from_str(
            "name = \"api\"\nobjective = 0.99\nwindow = \"10m\"\nalerting = \"scaled\"\nsli = { availability = { route = \"api\" } }",
        )
        .unwrap();
        SloState::new(spec).unwrap()
    }

    #[test]
    fn a_burst_of_failures_pages_and_the_burn_since_is_the_budget_spent() {
        let mut s = slo();
        assert!(s.covers("api") && !s.covers("web"));
        for sec in 1..=30 {
            assert!(
                s.record(&window(sec * 1000 - 1000, sec * 1000, 100, 0), sec * 1000)
                    .is_empty()
            );
        }
        assert_eq!(s.urgency(), 3);
        assert_eq!(s.burn_recent(30_000), Some(0.0));
        let mut fired = Vec::new();
        for sec in 31..=40 {
            fired.extend(s.record(&window(sec * 1000 - 1000, sec * 1000, 50, 50), sec * 1000));
        }
        assert!(fired.iter().any(|e| matches!(
            e,
            EventKind::AlertFiring {
                severity: Severity::Page,
                ..
            }
        )));
        assert_eq!(s.urgency(), 0);
        let page = s.page.unwrap();
        assert_eq!(page.since_ms, 31_000);
        // 4,000 requests at 1%: 40 bad allowed, 500 spent. When it fired, 50 of 31 allowed.
        let st = s.status.as_ref().unwrap();
        assert!(
            (st.budget_remaining - (1.0 - 500.0 / 40.0)).abs() < 1e-9,
            "{}",
            st.budget_remaining
        );
        let burned = s.burned_since_page().unwrap();
        assert!((burned - (500.0 / 40.0 - 50.0 / 31.0)).abs() < 1e-9, "{burned}");
        // Over the last minute: 500 bad of 4,000, 12.5% against 1%.
        assert!((s.burn_recent(40_000).unwrap() - 12.5).abs() < 1e-9);
    }

    #[test]
    fn a_first_window_since_start_is_not_a_burst_now() {
        let mut s = slo();
        // A sidecar up for an hour whose past was bad: recorded at its start.
        s.record(
            &StatsWindow {
                reset: true,
                ..window(0, 3_600_000, 1_000, 1_000)
            },
            3_600_000,
        );
        assert_eq!(s.burn_recent(3_600_000), None, "not in the last minute");
        assert_eq!(s.urgency(), 3, "no page for the past");
        assert_eq!(s.status.as_ref().unwrap().total, 0, "outside the 10m window");
    }

    #[test]
    fn evaluation_never_goes_back_in_time() {
        let mut s = slo();
        s.record(&window(0, 2_000, 10, 10), 2_000);
        // Another sidecar's scrape, a little earlier: no panic, no time travel.
        s.record(&window(0, 1_990, 10, 10), 1_990);
        assert!(s.status.is_some());
    }
}
