//! Burn-rate alert windows: the SRE Workbook's multiwindow, multi-burn-rate table, derived for
//! any SLO window, scaled for short runs, or written out.
//!
//! The Workbook's table is for a 30-day SLO; its factors are budget shares: page when 2 % of
//! the budget burns within an hour (14.4×) or 5 % within 6 hours (6×), ticket when 10 % burns
//! within a day (3×) or 3 days (1×), each confirmed by a short window 1/12 of the long one. As
//! shares they carry to other windows: the factor is `share × window / long`, so a 28-day SLO
//! pages at 13.44× over an hour. `scaled` also shrinks every long and short window in
//! proportion to the SLO's window, for scenarios that last minutes (a 1-day SLO pages over
//! 2 minutes), but never below [`MIN_SCALED_WINDOW`].

use std::time::Duration;

use ballast_model::slo::{Alerting, BurnWindowSpec, Severity};

/// Scaled windows are never shorter than this (two scrapes a second apart).
pub const MIN_SCALED_WINDOW: Duration = Duration::from_secs(2);

const DAY: u64 = 86_400;
const WORKBOOK_WINDOW: Duration = Duration::from_secs(30 * DAY);

/// The Workbook's rows: (budget share, long window, short window, severity).
const WORKBOOK: [(f64, u64, u64, Severity); 4] = [
    (0.02, 3600, 300, Severity::Page),
    (0.05, 6 * 3600, 1800, Severity::Page),
    (0.10, DAY, 2 * 3600, Severity::Ticket),
    (0.10, 3 * DAY, 6 * 3600, Severity::Ticket),
];

/// Alert when the burn rate over both windows is above `factor`.
#[derive(Clone, Debug, PartialEq)]
pub struct BurnWindow {
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
    pub severity: Severity,
}

/// The burn windows of an SLO whose budget covers `window`.
pub fn windows(alerting: &Alerting, window: Duration) -> Vec<BurnWindow> {
    match alerting {
        Alerting::None => Vec::new(),
        Alerting::Workbook => workbook(window, 1.0),
        Alerting::Scaled => workbook(window, window.as_secs_f64() / WORKBOOK_WINDOW.as_secs_f64()),
        Alerting::Windows(specs) => specs.iter().map(|s| from_spec(s, window)).collect(),
    }
}

/// The table with every window multiplied by `scale` (1 for the Workbook as is).
fn workbook(window: Duration, scale: f64) -> Vec<BurnWindow> {
    WORKBOOK
        .iter()
        .map(|&(share, long, short, severity)| {
            let scaled = |secs: u64| {
                let d = Duration::from_secs_f64(secs as f64 * scale);
                if scale < 1.0 { d.max(MIN_SCALED_WINDOW) } else { d }
            };
            let long = scaled(long).min(window);
            BurnWindow {
                short: scaled(short).min(long),
                factor: share * window.as_secs_f64() / long.as_secs_f64(),
                long,
                severity,
            }
        })
        .collect()
}

fn from_spec(spec: &BurnWindowSpec, window: Duration) -> BurnWindow {
    let long = spec.long.get();
    let factor = match (spec.factor, spec.budget) {
        (Some(f), _) => f,
        (None, Some(share)) => share * window.as_secs_f64() / long.as_secs_f64(),
        (None, None) => unreachable!("validated: factor or budget"),
    };
    BurnWindow {
        long,
        short: spec.short.get(),
        factor,
        severity: spec.severity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn the_workbook_table_for_thirty_days() {
        let w = windows(&Alerting::Workbook, WORKBOOK_WINDOW);
        let got: Vec<(u64, u64, f64, Severity)> = w
            .iter()
            .map(|b| (b.long.as_secs(), b.short.as_secs(), b.factor, b.severity))
            .collect();
        let want = [
            (3600, 300, 14.4, Severity::Page),
            (21_600, 1800, 6.0, Severity::Page),
            (86_400, 7200, 3.0, Severity::Ticket),
            (259_200, 21_600, 1.0, Severity::Ticket),
        ];
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0, g.1, g.3), (w.0, w.1, w.3));
            assert!(close(g.2, w.2), "{g:?}");
        }
    }

    #[test]
    fn shares_carry_to_other_windows_and_scaled_windows_shrink() {
        let w = windows(&Alerting::Workbook, Duration::from_secs(28 * DAY));
        assert!(close(w[0].factor, 0.02 * 28.0 * 24.0), "{}", w[0].factor);
        let w = windows(&Alerting::Scaled, Duration::from_secs(3 * DAY));
        assert_eq!(w[0].long, Duration::from_secs(360), "1 h × 3/30");
        assert!(close(w[0].factor, 14.4), "the same burn rates as the Workbook");
        let tiny = windows(&Alerting::Scaled, Duration::from_secs(600));
        assert!(
            tiny.iter()
                .all(|b| b.short >= MIN_SCALED_WINDOW && b.long <= Duration::from_secs(600))
        );
    }

    #[test]
    fn written_windows_take_a_factor_or_a_budget_share() {
        let specs: ballast_model::slo::SloSpec = toml::from_str(
            "name = \"x\"\nobjective = 0.99\nwindow = \"1d\"\nsli = { availability = {} }\nalerting = [{ long = \"1h\", short = \"5m\", factor = 10, severity = \"page\" }, { long = \"6h\", short = \"30m\", budget = 0.25, severity = \"ticket\" }]",
        )
        .unwrap();
        let w = windows(&specs.alerting, Duration::from_secs(DAY));
        assert!(close(w[0].factor, 10.0));
        assert!(
            close(w[1].factor, 1.0),
            "a quarter of a day's budget in 6 h is a burn rate of 1"
        );
    }
}
