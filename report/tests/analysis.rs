//! The game day of `synthetic::game_day`, analysed: every figure against a hand calculation
//! from the requests it was built from (10 per second per route, nearest-rank percentiles).

use ballast_report::analysis::faults::{Ended, Figure};
use ballast_report::load::Run;
use ballast_report::{Rules, analyze, synthetic};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn every_figure_of_the_game_day_matches_the_hand_calculation() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::game_day(dir.path(), true).unwrap();
    let run = Run::open(dir.path()).unwrap();
    assert_eq!((run.started_at_ms, run.seconds), (1_767_225_600_000, 40));
    assert_eq!(run.requests.height(), 800, "40 s × 2 routes × 10");
    let a = analyze(&run, &Rules::default()).unwrap();

    // Baseline: seconds 0..10 (before the fault at +10 s). checkout: every second 0% errors,
    // p99 19 ms → limits max(2×0, 0+1%) = 1% and max(2×19, 19+50) = 69 ms. catalog: median
    // of nine 0% and one 10% = 0%; p99 median of nine 14 ms and one 1000 ms = 14 → 64 ms.
    assert_eq!((a.baseline.from_s, a.baseline.to_s), (0, 10));
    let b = &a.baseline.routes["checkout"];
    assert!(
        close(b.error_rate, 0.0) && close(b.p99_ms, 19.0) && close(b.error_limit, 0.01) && close(b.p99_limit_ms, 69.0)
    );
    let c = &a.baseline.routes["catalog"];
    assert!(close(c.error_rate, 0.0) && close(c.p99_ms, 14.0) && close(c.p99_limit_ms, 64.0));

    // Degraded: catalog at +5 s alone (one second: no onset); checkout 10..=21.
    let degraded = |route: &str| -> Vec<u64> {
        (0..40)
            .filter(|&s| a.degradation.routes[route][s as usize].is_some())
            .collect()
    };
    assert_eq!(degraded("catalog"), [5]);
    assert_eq!(degraded("checkout"), (10..22).collect::<Vec<_>>());

    // Incident: from the degradation at +10 s (before the alert at +14.5 s) to recovery at
    // +22 s (22..32 healthy; the SLO's SLI over them 100/100 ≥ 0.9): 12 s.
    let i = a.incident.as_ref().expect("an incident");
    assert_eq!(i.start.at_ms, 10_000);
    assert_eq!(i.start.what, "degradation: checkout: error rate 10.0% (limit 1.0%)");
    assert_eq!((i.end_ms, i.duration_ms), (Some(22_000), 12_000));

    // Time to detect: fault f1 added at +10 s → page alert at +14.5 s = 4.5 s.
    let d = a.detection.as_ref().unwrap();
    assert_eq!(d.reference.as_ref().unwrap().at_ms, 10_000);
    assert_eq!(d.alert.as_ref().unwrap().fired_ms, 14_500);
    assert_eq!(d.ttd_ms, Some(4_500));
    // Time to recover: fault f1 expired at +20 s → recovered at +22 s = 2 s.
    let r = a.recovery.as_ref().unwrap();
    assert_eq!(
        (r.from.at_ms, r.at_ms, r.ttr_ms, r.degraded_again_ms),
        (20_000, Some(22_000), Some(2_000), None)
    );

    // Phases by completion time: before [0, 10 s), during [10 s, 22 s), after [22 s, 40 s).
    let before = a.phase("before").unwrap();
    let during = a.phase("during").unwrap();
    let after = a.phase("after").unwrap();
    let f = |p: &ballast_report::analysis::SpanStats, r: &str| {
        let x = p.routes[r];
        (x.requests, x.failed, x.p50_ms, x.p90_ms, x.p99_ms, x.max_ms)
    };
    // checkout before: 10..19 ms ×10 each: rank 50 → 14, 90 → 18, 99 → 19.
    assert_eq!(f(before, "checkout"), (100, 0, 14.0, 18.0, 19.0, 19.0));
    // checkout during (120): 2 ms ×10, 10..18 ×2, 30 ×2, 100..108 ×10: ranks 60, 108, 119
    // → 102, 107, 108.
    assert_eq!(f(during, "checkout"), (120, 12, 102.0, 107.0, 108.0, 108.0));
    // checkout after (180): 10..19 ×18: ranks 90, 162, 179 → 14, 18, 19.
    assert_eq!(f(after, "checkout"), (180, 0, 14.0, 18.0, 19.0, 19.0));
    // catalog before: 5..14 ×10 with one 14 replaced by the 1000 ms timeout.
    assert_eq!(f(before, "catalog"), (100, 1, 9.0, 13.0, 14.0, 1000.0));
    assert_eq!(f(during, "catalog"), (120, 0, 9.0, 13.0, 14.0, 14.0));
    assert_eq!((during.all.requests, during.all.failed), (240, 12));
    assert_eq!(a.totals(), (800, 13));

    // Impact: 12 of 240 failed (5%); checkout 12 of 120 (10%); classes 10 + 2.
    let imp = a.impact.as_ref().unwrap();
    assert_eq!((imp.requests, imp.failed), (240, 12));
    assert!(close(imp.share, 0.05));
    let checkout = imp.routes.iter().find(|r| r.route == "checkout").unwrap();
    assert!(close(checkout.share, 0.1) && close(checkout.p99_before_ms, 19.0) && close(checkout.p99_during_ms, 108.0));
    assert_eq!(imp.classes.len(), 2);
    assert_eq!((imp.classes[0].0.as_str(), imp.classes[0].1), ("unexpected-status", 10));
    assert!(close(imp.classes[0].2, 10.0 / 12.0));
    assert_eq!((imp.classes[1].0.as_str(), imp.classes[1].1), ("reset", 2));

    // Budget: bad(21) − bad(9) = 12 − 0; window budget at +21 s = 0.1 × 220 = 22; share
    // 12/22; left after 1 − 12/22; at the end 1 − 12/(0.1 × 400) = 0.7.
    assert_eq!(a.budgets.len(), 1);
    let bud = &a.budgets[0];
    assert_eq!(
        (bud.slo.as_str(), bud.bad, bud.unit),
        ("checkout-availability", 12, "requests")
    );
    assert!(close(bud.window_budget, 22.0) && close(bud.share, 12.0 / 22.0));
    assert!(
        close(bud.remaining_before, 1.0)
            && close(bud.remaining_after, 1.0 - 12.0 / 22.0)
            && close(bud.remaining_at_end, 0.7)
    );
    assert!(!bud.window_shorter_than_run, "10m window, 40 s run");

    // Fault f1 over [10 s, 20 s) against the baseline [0, 10 s): checkout error rate 0 → 10%,
    // p50 14 → 103 (ranks 41-50 of 2 ×10, 100..108 ×10), p99 19 → 108; throughput
    // 10 req/s both; degraded +10 s .. +21 s. catalog unmoved.
    let fault = &a.faults[0];
    assert_eq!(
        (fault.window.added_ms, fault.window.ended_ms, fault.window.ended_by),
        (10_000, Some(20_000), Ended::Expired)
    );
    assert_eq!(fault.description, "abort 503, 10% of route checkout (upstream)");
    let moved: Vec<(&str, Figure, f64, f64)> = fault
        .moved
        .iter()
        .map(|m| (m.route.as_str(), m.figure, m.before, m.during))
        .collect();
    assert_eq!(
        moved,
        [
            ("checkout", Figure::ErrorRate, 0.0, 0.1),
            ("checkout", Figure::P50, 14.0, 103.0),
            ("checkout", Figure::P99, 19.0, 108.0)
        ]
    );
    assert_eq!(fault.degraded, [("checkout".to_owned(), 10, 21)]);
    assert_eq!(fault.unmoved, ["catalog"]);

    // Example failing traces: the 12 failed checkout requests of the incident (one a second,
    // k = 0), not catalog's timeout at +5 s.
    assert_eq!(a.traces.len(), 12);
    assert_eq!(a.traces[0].trace_id, synthetic::trace_id(10, 1, 0));
    assert!(a.traces.iter().all(|t| t.route == "checkout"));

    // Alerts from the events, the timeline in order with the report's own marks.
    assert_eq!(a.alerts.len(), 1);
    assert_eq!((a.alerts[0].fired_ms, a.alerts[0].resolved_ms), (14_500, Some(30_200)));
    let texts: Vec<(i64, &str)> = a.timeline.iter().map(|e| (e.at_ms, e.text.as_str())).collect();
    assert_eq!(
        texts[0],
        (0, "run started: scenario=checkout survives a failing payment provider")
    );
    assert!(texts.contains(&(10_000, "degradation began: checkout: error rate 10.0% (limit 1.0%)")));
    assert!(texts.contains(&(22_000, "recovered: 10 s in a row healthy from here")));
    assert!(texts.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn a_quiet_run_has_no_incident() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::game_day(dir.path(), false).unwrap();
    let a = analyze(&Run::open(dir.path()).unwrap(), &Rules::default()).unwrap();
    assert!(a.incident.is_none() && a.detection.is_none() && a.recovery.is_none() && a.impact.is_none());
    assert!(a.budgets.is_empty() && a.faults.is_empty() && a.traces.is_empty());
    assert_eq!(a.phases.len(), 1);
    assert_eq!(a.phases[0].name, "whole run");
    assert_eq!(a.totals(), (800, 1));
    assert_eq!(a.baseline.to_s, 40, "no fault: the whole run");
}

#[test]
fn stricter_rules_change_the_verdict() {
    // The same data with onset 1: catalog's lone bad second at +5 s now starts the incident,
    // so the figures come from the rules, not from the fixture.
    let dir = tempfile::tempdir().unwrap();
    synthetic::game_day(dir.path(), false).unwrap();
    let rules = Rules {
        onset_s: 1,
        ..Rules::default()
    };
    let a = analyze(&Run::open(dir.path()).unwrap(), &rules).unwrap();
    let i = a.incident.expect("an incident");
    assert_eq!((i.start.at_ms, i.end_ms), (5_000, Some(6_000)));
}

#[test]
fn a_blip_that_is_over_before_the_fault_does_not_start_the_incident() {
    // Onset 1: catalog's bad second at +5 s counts as degradation; with a 3 s hold it is over
    // (+6..+9 healthy, before fault f1 at +10 s), so the incident still starts at +10 s and
    // recovers at +22 s (20, 21 degraded; 22..25 healthy).
    let dir = tempfile::tempdir().unwrap();
    synthetic::game_day(dir.path(), true).unwrap();
    let rules = Rules {
        onset_s: 1,
        hold_s: 3,
        ..Rules::default()
    };
    let a = analyze(&Run::open(dir.path()).unwrap(), &rules).unwrap();
    let i = a.incident.expect("an incident");
    assert_eq!((i.start.at_ms, i.end_ms), (10_000, Some(22_000)));
    // With a 10 s hold the blip is not over before the fault (6..16 crosses it): +5 s.
    let rules = Rules {
        onset_s: 1,
        ..Rules::default()
    };
    let a = analyze(&Run::open(dir.path()).unwrap(), &rules).unwrap();
    assert_eq!(a.incident.unwrap().start.at_ms, 5_000);
}
