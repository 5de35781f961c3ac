//! Experiment semantics with paused time: the scripted observer and the recording actor stand
//! in for the sidecars, so every call's time is exact.

use std::time::{Duration, UNIX_EPOCH};

use ballast_chaos::doubles::{Recorder, Scripted, Traffic};
use ballast_chaos::experiment::Experiment;
use ballast_chaos::journal::{Journal, Verdict};
use ballast_model::EventKind;

fn experiment(text: &str) -> Experiment {
    ballast_chaos::load::parse("test.toml", text)
        .unwrap_or_else(|e| panic!("{e}"))
        .experiment
}

const HEALTHY: Traffic = Traffic {
    requests: 100,
    errors: 0,
    latency_ms: 10,
    retries: 0,
};
const FAILING: Traffic = Traffic {
    requests: 100,
    errors: 60,
    latency_ms: 10,
    retries: 0,
};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Failing while `t` is in one of the ranges (seconds), healthy otherwise.
fn failing_during(ranges: &'static [(f64, f64)]) -> Scripted {
    Scripted::new(move |t| {
        if ranges.iter().any(|&(from, to)| t >= secs(from) && t < secs(to)) {
            FAILING
        } else {
            HEALTHY
        }
    })
}

async fn run(e: &Experiment, obs: &Scripted, act: &Recorder) -> Journal {
    e.run(obs, act, std::future::pending(), None).await
}

fn offsets(checks: &[ballast_chaos::journal::Check]) -> Vec<u64> {
    checks.iter().map(|c| c.offset_ms / 1000).collect()
}

const STEADY: &str = r#"
interval = "1s"
steady_state = [{ route = "api", availability_above = 0.9, over = "1s" }]
"#;

#[tokio::test(start_paused = true)]
async fn actions_and_checks_run_in_time_order() {
    let e = experiment(&format!(
        r#"{STEADY}
[[method]]
at = "2s"
duration = "3s"
fault = {{ kind = "abort", status = 503, route = "api" }}
[[method]]
at = "3s"
stop = "db"
duration = "1s"
[[method]]
cpu_stress = {{ threads = 2 }}
duration = "1s"
[[rollbacks]]
clear_faults = true
"#
    ));
    let (obs, act) = (failing_during(&[]), Recorder::new());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let j = e.run(&obs, &act, std::future::pending(), Some(tx)).await;
    assert_eq!(
        act.calls(),
        [
            "2s add fault abort ttl=3s",
            "3s signal SIGSTOP process \"db\"",
            // The stop's end comes before the stress that follows it.
            "4s signal SIGCONT process \"db\"",
            "4s start stress #2: cpu 2 threads",
            "5s remove fault f1",
            "5s end stress #2",
            "5s clear faults",
        ]
    );
    assert_eq!(j.verdict, Verdict::Held, "{j:#?}");
    // Before at the first step, every second during the method, after at its end.
    let h = &j.hypothesis;
    assert_eq!(h.before.as_ref().unwrap().offset_ms, 2000);
    assert_eq!(offsets(&h.during), [3, 4, 5]);
    assert_eq!(offsets(&h.after), [5]);
    assert_eq!(
        (h.held_before, h.held_during, h.held_after),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(h.recovered_in_ms, Some(0));
    assert_eq!(obs.reads(), [secs(2.0), secs(3.0), secs(4.0), secs(5.0), secs(5.0)]);
    let steps: Vec<(&str, u64, Option<u64>)> = j
        .steps
        .iter()
        .map(|s| {
            (
                s.run.step.as_str(),
                s.run.offset_ms,
                s.ended.as_ref().map(|e| e.offset_ms),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("method[0]", 2000, Some(5000)),
            ("method[1]", 3000, Some(4000)),
            ("method[2]", 4000, Some(5000))
        ]
    );
    assert_eq!(j.steps[0].detail["faults"][0]["id"], "f1");
    assert_eq!(
        j.rollbacks.len(),
        1,
        "nothing left to undo; the rollbacks ran: {:?}",
        j.rollbacks
    );
    assert_eq!(j.rollbacks_failed, 0);

    let mut kinds = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        assert_eq!(ev.source, "chaos");
        kinds.push(match ev.kind {
            EventKind::ExperimentStepStarted { step, .. } => format!("started {step}"),
            EventKind::ExperimentStepFinished { step, ok, .. } => format!("finished {step} {ok}"),
            EventKind::HypothesisChecked { phase, held, .. } => format!("hypothesis {phase} {held}"),
            EventKind::ExperimentFinished { verdict, .. } => format!("experiment {verdict}"),
            other => panic!("unexpected event {other:?}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "hypothesis before true",
            "started method[0]",
            "finished method[0] true",
            "hypothesis during true",
            "started method[1]",
            "finished method[1] true",
            "started method[1].end",
            "finished method[1].end true",
            "started method[2]",
            "finished method[2] true",
            "started method[0].end",
            "finished method[0].end true",
            "started method[2].end",
            "finished method[2].end true",
            "started rollbacks[0]",
            "finished rollbacks[0] true",
            "hypothesis after true",
            "experiment held",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_steady_state_before_prevents_the_start() {
    let e = experiment(&format!(
        "{STEADY}\n[[method]]\nat = \"2s\"\nduration = \"3s\"\nfault = {{ kind = \"reset\" }}\n[[rollbacks]]\nrestart = \"web\"\n"
    ));
    let (obs, act) = (failing_during(&[(0.0, 100.0)]), Recorder::new());
    let j = run(&e, &obs, &act).await;
    assert_eq!(j.verdict, Verdict::NotStarted);
    assert!(act.calls().is_empty(), "nothing runs: {:?}", act.calls());
    assert!(j.steps.is_empty() && j.rollbacks.is_empty(), "nothing to roll back");
    assert!(j.hypothesis.during.is_empty() && j.hypothesis.after.is_empty());
    assert_eq!(j.hypothesis.held_before, Some(false));
    let reason = j.reason.unwrap();
    assert!(
        reason.contains("availability of route api over 1s > 0.9 (value 0.4000)"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_steady_state_after_may_take_its_recovery_time() {
    let text = |recovery: &str| {
        format!(
            "{STEADY}recovery = \"{recovery}\"\n[[method]]\nat = \"2s\"\nduration = \"3s\"\nfault = {{ kind = \"reset\" }}\n"
        )
    };
    // Errors while the fault is in place; the 1 s window is clean again a second later.
    let (obs, act) = (failing_during(&[(2.0, 5.0)]), Recorder::new());
    let j = run(&experiment(&text("10s")), &obs, &act).await;
    assert_eq!(j.verdict, Verdict::Deviated, "it did not hold during the fault");
    assert_eq!(offsets(&j.hypothesis.after), [5, 6]);
    assert_eq!(j.hypothesis.held_after, Some(true));
    assert_eq!(j.hypothesis.recovered_in_ms, Some(1000));
    assert!(j.hypothesis.during.iter().all(|c| !c.held), "{:?}", j.hypothesis.during);
    assert!(
        j.reason
            .unwrap()
            .starts_with("the steady state did not hold during the method (first at +3s")
    );

    // A system that stays broken after the fault is not back within its recovery time.
    let (obs, act) = (failing_during(&[(2.0, 100.0)]), Recorder::new());
    let j = run(&experiment(&text("3s")), &obs, &act).await;
    assert_eq!(offsets(&j.hypothesis.after), [5, 6, 7, 8]);
    assert_eq!(j.hypothesis.held_after, Some(false));
    assert_eq!(j.hypothesis.recovered_in_ms, None);
    assert_eq!(j.verdict, Verdict::Deviated);
}

#[tokio::test(start_paused = true)]
async fn an_abort_condition_must_hold_for_its_time() {
    let e = experiment(
        r#"
abort = [{ route = "api", error_rate_above = 0.5, over = "1s", for = "3s" }]
[[method]]
at = "1s"
duration = "20s"
fault = { kind = "abort", status = 503 }
[[rollbacks]]
continue = "db"
"#,
    );
    // A 2 s blip (seen by the checks at 5 s and 6 s) does not abort; from 10 s on it does,
    // once the condition has held from 11 s to 14 s.
    let (obs, act) = (failing_during(&[(4.0, 6.0), (10.0, 100.0)]), Recorder::new());
    let j = run(&e, &obs, &act).await;
    assert_eq!(j.verdict, Verdict::Aborted, "{j:#?}");
    assert_eq!(
        act.calls(),
        [
            "1s add fault abort ttl=20s",
            "14s remove fault f1",
            "14s signal SIGCONT process \"db\""
        ]
    );
    let abort = j.abort.unwrap();
    assert_eq!(
        (abort.condition.as_str(), abort.since_offset_ms, abort.offset_ms),
        ("abort[0]", 11_000, 14_000)
    );
    assert!((abort.reading.value.unwrap() - 0.6).abs() < 1e-9);
    assert_eq!(
        j.reason.as_deref(),
        Some("abort[0]: error rate of route api over 1s > 0.5 held for 3s (last value 0.6000)")
    );
    let blip: Vec<bool> = j.hypothesis.during[3..6].iter().map(|c| c.abort[0].holds).collect();
    assert_eq!(blip, [true, true, false], "the blip was seen, and ended");
    assert_eq!(
        offsets(&j.hypothesis.after),
        [14],
        "the steady state (none) is checked after an abort"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_action_rolls_back_what_ran() {
    let e = experiment(
        r#"
[[method]]
at = "1s"
duration = "10s"
fault = { kind = "abort", status = 503 }
[[method]]
at = "2s"
duration = "5s"
memory_stress = "1MiB"
[[method]]
at = "3s"
duration = "1s"
stop = "db"
[[rollbacks]]
clear_faults = true
"#,
    );
    let (obs, act) = (failing_during(&[]), Recorder::new().fail_on("memory"));
    let j = run(&e, &obs, &act).await;
    assert_eq!(j.verdict, Verdict::Error);
    assert_eq!(
        act.calls(),
        [
            "1s add fault abort ttl=10s",
            "2s start stress #2: memory 1048576 bytes",
            "2s remove fault f1",
            "2s clear faults",
        ],
        "the next steps never ran"
    );
    assert!(!j.steps[1].run.ok);
    let reason = j.reason.unwrap();
    assert!(
        reason.starts_with("method[1] (memory stress: 1MiB held) failed: "),
        "{reason}"
    );
    let undone: Vec<&str> = j.rollbacks.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(undone, ["undo method[0]", "rollbacks[0]"]);
}

#[tokio::test(start_paused = true)]
async fn cancellation_rolls_back_at_once() {
    let e = experiment(
        r#"
[[method]]
at = "1s"
duration = "10s"
fault = { kind = "abort", status = 503 }
[[method]]
at = "2s"
stop = "db"
[[rollbacks]]
restart = "web"
"#,
    );
    let (obs, act) = (failing_during(&[]), Recorder::new());
    let j = e
        .run(&obs, &act, tokio::time::sleep(Duration::from_secs(4)), None)
        .await;
    assert_eq!(j.verdict, Verdict::Interrupted);
    assert_eq!(
        act.calls(),
        [
            "1s add fault abort ttl=10s",
            // The stop lasts until the method ends (11 s): cancelled, undone at 4 s.
            "2s signal SIGSTOP process \"db\"",
            "4s signal SIGCONT process \"db\"",
            "4s remove fault f1",
            "4s restart process \"web\"",
        ]
    );
    assert!(j.hypothesis.after.is_empty(), "no waiting for recovery once cancelled");
    assert_eq!(j.ended_at_ms - j.started_at_ms, 4000);

    // Cancelled during the lead-in: nothing ran, nothing to roll back.
    let act = Recorder::new();
    let j = e.run(&obs, &act, std::future::ready(()), None).await;
    assert_eq!(j.verdict, Verdict::Interrupted);
    assert!(act.calls().is_empty() && j.rollbacks.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_rollback_does_not_stop_the_others() {
    let e = experiment(
        r#"
[[method]]
fault = { kind = "abort", status = 503 }
[[method]]
stop = "db"
[[method]]
pause = "2s"
[[rollbacks]]
clear_faults = true
[[rollbacks]]
restart = "web"
"#,
    );
    let (obs, act) = (
        failing_during(&[]),
        Recorder::new().fail_on("remove fault").fail_on("clear"),
    );
    let j = run(&e, &obs, &act).await;
    assert_eq!(
        act.calls(),
        [
            "0s add fault abort ttl=2s",
            "0s signal SIGSTOP process \"db\"",
            "2s signal SIGCONT process \"db\"",
            "2s remove fault f1",
            "2s clear faults",
            "2s restart process \"web\"",
        ]
    );
    let results: Vec<(&str, bool)> = j.rollbacks.iter().map(|r| (r.step.as_str(), r.ok)).collect();
    assert_eq!(
        results,
        [
            ("undo method[1]", true),
            ("undo method[0]", false),
            ("rollbacks[0]", false),
            ("rollbacks[1]", true)
        ]
    );
    assert_eq!(j.rollbacks_failed, 2);
    assert!(j.rollbacks[1].error.as_deref().unwrap().contains("refused"));

    // An undo that fails when its step ends is an error, and is tried again among the rollbacks.
    let e = experiment("[[method]]\nduration = \"3s\"\nfault = { kind = \"reset\" }\n");
    let act = Recorder::new().fail_on("remove fault");
    let j = run(&e, &obs, &act).await;
    assert_eq!(j.verdict, Verdict::Error);
    assert_eq!(
        act.calls(),
        ["0s add fault reset ttl=3s", "3s remove fault f1", "3s remove fault f1"]
    );
    assert_eq!(j.rollbacks_failed, 1);
    assert!(!j.steps[0].ended.as_ref().unwrap().ok);
}

#[tokio::test(start_paused = true)]
async fn an_action_without_an_answer_fails_in_time_and_is_rolled_back() {
    let e = experiment(
        "[[method]]\nduration = \"1m\"\nfault = { kind = \"reset\" }\n[[method]]\nat = \"1s\"\nduration = \"1m\"\nstop = \"db\"\n[[rollbacks]]\nclear_faults = true\n",
    );
    let (obs, act) = (failing_during(&[]), Recorder::new().hang_on("SIGSTOP").hang_on("clear"));
    let j = run(&e, &obs, &act).await;
    assert_eq!(j.verdict, Verdict::Error);
    assert_eq!(
        act.calls(),
        [
            "0s add fault reset ttl=1m",
            "1s signal SIGSTOP process \"db\"",
            "31s remove fault f1",
            "31s clear faults"
        ]
    );
    assert!(j.reason.unwrap().ends_with("no answer within 30s"));
    assert_eq!(
        j.rollbacks_failed, 1,
        "the hung rollback timed out too, after the others: {:?}",
        j.rollbacks
    );
    assert_eq!(j.ended_at_ms - j.started_at_ms, 61_000);
}

#[tokio::test(start_paused = true)]
async fn http_probes_abort_when_unhealthy() {
    let e = experiment(
        r#"
interval = "500ms"
abort = [{ http = "http://127.0.0.1:1/healthz", for = "1s" }]
[[method]]
duration = "10s"
kill = "api"
"#,
    );
    let obs = Scripted::new(|_| HEALTHY).with_http(|t| {
        Ok(ballast_chaos::observe::HttpAnswer {
            status: if t >= secs(2.0) { 503 } else { 200 },
            latency: Duration::from_millis(2),
            body: String::new(),
        })
    });
    let act = Recorder::new();
    let j = run(&e, &obs, &act).await;
    assert_eq!(j.verdict, Verdict::Aborted);
    // Unhealthy from 2 s, for a second: aborted at 3 s, and the killed process restarted.
    assert_eq!(
        act.calls(),
        ["0s signal SIGKILL process \"api\"", "3s restart process \"api\""]
    );
}

#[test]
fn the_plan_shows_every_step_with_absolute_times() {
    let e = experiment(
        r#"
title = "checkout survives a flaky payment provider"
recovery = "20s"
steady_state = [{ route = "checkout", availability_above = 0.99, over = "10s" }]
abort = [{ route = "checkout", error_rate_above = 0.5, over = "5s", for = "10s" }]

[[method]]
at = "30s"
duration = "1m"
fault = { kind = "abort", status = 503, percent = 20, route = "checkout" }
[[method]]
name = "slow database"
at = "45s"
stop = { pid_file = "/run/db.pid" }
[[method]]
at = "1m"
duration = "15s"
cpu_stress = { threads = 2 }

[[rollbacks]]
clear_faults = true
"#,
    );
    let start = UNIX_EPOCH + Duration::from_secs(1_767_261_600); // 2026-01-01T10:00:00Z
    assert_eq!(
        ballast_chaos::plan::plan(&e, start),
        "\
experiment: checkout survives a flaky payment provider
starts 2026-01-01T10:00:00Z; the method ends at +1m 30s; done by +1m 50s at the latest

      +0s  2026-01-01T10:00:00Z  lead-in: the probes watch, nothing is done
     +30s  2026-01-01T10:00:30Z  before: the steady state must hold, or nothing runs
                                   availability of route checkout over 10s > 0.99
     +30s  2026-01-01T10:00:30Z  method[0]: fault abort percent=20.0 route=checkout status=503 for 1m (on every sidecar, TTL 1m)
     +30s  2026-01-01T10:00:30Z  during: the steady state is checked every 1s; abort if
                                   error rate of route checkout over 5s > 0.5 for 10s
     +45s  2026-01-01T10:00:45Z  method[1] \"slow database\": stop the process of pid file /run/db.pid (SIGSTOP) until the method ends
      +1m  2026-01-01T10:01:00Z  method[2]: CPU stress: 2 busy thread(s) for 15s
  +1m 15s  2026-01-01T10:01:15Z  method[2] ends: end the stress
  +1m 30s  2026-01-01T10:01:30Z  method[0] ends: remove the fault
  +1m 30s  2026-01-01T10:01:30Z  method over: rollbacks (they also run on abort, error or Ctrl-C)
                                   undo method[1]: continue the process of pid file /run/db.pid (SIGCONT)
                                   rollbacks[0]: clear the faults added through the admin APIs
  +1m 30s  2026-01-01T10:01:30Z  after: the steady state must be back within 20s (by +1m 50s)
"
    );
}
