//! An experiment checked and ready to run: probes and actions typed, every step's start and
//! end computed from the spec's `at`, `duration` and `pause`.
//!
//! A step without `at` starts when the previous one (in written order) ends; an action
//! without `duration` lasts until the method ends (its undo is then among the rollbacks). The
//! method ends when its last step does.

use std::time::Duration;

use ballast_model::fault::FieldError;
use ballast_model::slo::SloSpec;
use ballast_model::units::HumanDuration;

use crate::action::{Action, Signal, Stress};
use crate::probe::{self, AbortCondition, Context, Probe};
use crate::spec::{ExperimentSpec, ProcessRef, StepSpec};

/// The hypothesis and abort conditions are checked this often unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Memory stress above this is a typo.
const MAX_MEMORY_STRESS: u64 = 1 << 40;
const MAX_CPU_THREADS: usize = 1024;

#[derive(Clone, Debug)]
pub struct Experiment {
    pub title: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub interval: Duration,
    /// How long the steady state may take to come back once the method is over.
    pub recovery: Duration,
    pub steady_state: Vec<Probe>,
    pub method: Vec<Step>,
    pub rollbacks: Vec<Rollback>,
    pub abort: Vec<AbortCondition>,
    /// When the method's last step ends (from the experiment's start).
    pub method_end: Duration,
}

#[derive(Clone, Debug)]
pub struct Step {
    /// Where it is written: `method[0]`.
    pub label: String,
    pub name: Option<String>,
    /// From the experiment's start.
    pub at: Duration,
    /// When its own undo is due: the end of its `duration` (or pause); `None` when it lasts
    /// until the method ends (undone among the rollbacks) or has nothing to undo.
    pub ends: Option<Duration>,
    pub action: Action,
}

#[derive(Clone, Debug)]
pub struct Rollback {
    /// Where it is written: `rollbacks[0]`.
    pub label: String,
    pub name: Option<String>,
    pub action: Action,
}

impl Experiment {
    /// Check a spec against the SLOs its probes may name: every problem at once, each naming
    /// its field (`method[1].fault.status`).
    pub fn from_spec(spec: &ExperimentSpec, slos: &[SloSpec]) -> Result<Experiment, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut prefixed = |prefix: String, errs: Vec<FieldError>| {
            errors.extend(errs.into_iter().map(|e| FieldError {
                field: join(&prefix, &e.field),
                ..e
            }));
        };
        let interval = spec.interval.map_or(DEFAULT_INTERVAL, HumanDuration::get);
        if interval < Duration::from_millis(10) {
            prefixed(
                String::new(),
                vec![field_error(
                    "interval",
                    format!("{} is too short", HumanDuration(interval)),
                    "give a check interval of at least 10ms, such as \"1s\"",
                )],
            );
        }
        let mut steady_state = Vec::new();
        for (i, p) in spec.steady_state.iter().enumerate() {
            match probe::check(p, slos, Context::SteadyState) {
                Ok((probe, _)) => steady_state.push(probe),
                Err(e) => prefixed(format!("steady_state[{i}]"), e),
            }
        }
        let mut abort = Vec::new();
        for (i, p) in spec.abort.iter().enumerate() {
            match probe::check(p, slos, Context::Abort) {
                Ok((probe, sustain)) => abort.push(AbortCondition { probe, sustain }),
                Err(e) => prefixed(format!("abort[{i}]"), e),
            }
        }
        if spec.method.is_empty() {
            prefixed(
                String::new(),
                vec![field_error(
                    "method",
                    "is empty".into(),
                    "add at least one [[method]] step (a fault, a kill, a stress, a demo upstream change, ...)",
                )],
            );
        }
        // Start and length of each step, in written order.
        let mut next_start = Duration::ZERO;
        let mut timed = Vec::new();
        for (i, s) in spec.method.iter().enumerate() {
            let at = s.at.map_or(next_start, HumanDuration::get);
            let length = s.duration.or(s.pause).map(HumanDuration::get);
            next_start = at + length.unwrap_or_default();
            let mut errs = Vec::new();
            let action = step_action(s, false, &mut errs);
            prefixed(format!("method[{i}]"), errs);
            timed.push((i, s, at, length, action));
        }
        let method_end = timed
            .iter()
            .map(|(_, _, at, length, _)| *at + length.unwrap_or_default())
            .max()
            .unwrap_or_default();
        let mut method = Vec::new();
        for (i, s, at, length, action) in timed {
            let Some((action, lasting)) = action else { continue };
            if lasting && length.is_none() && at >= method_end {
                prefixed(
                    format!("method[{i}]"),
                    vec![field_error(
                        "duration",
                        format!("is missing: `{action}` would last until the method ends, which is when it starts"),
                        "give it a duration, such as \"30s\"",
                    )],
                );
                continue;
            }
            let ends = if lasting { length.map(|l| at + l) } else { None };
            method.push(Step {
                label: format!("method[{i}]"),
                name: s.name.clone(),
                at,
                ends,
                action,
            });
        }
        let mut rollbacks = Vec::new();
        for (i, s) in spec.rollbacks.iter().enumerate() {
            let mut errs = Vec::new();
            for (field, set) in [("at", s.at.is_some()), ("duration", s.duration.is_some())] {
                if set {
                    errs.push(field_error(
                        field,
                        "does not apply to rollbacks".into(),
                        "remove it: rollbacks run one after the other once the method is over",
                    ));
                }
            }
            let action = step_action(s, true, &mut errs);
            prefixed(format!("rollbacks[{i}]"), errs);
            if let Some((action, _)) = action {
                rollbacks.push(Rollback {
                    label: format!("rollbacks[{i}]"),
                    name: s.name.clone(),
                    action,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let longest = steady_state.iter().map(Probe::window).max().unwrap_or_default();
        Ok(Experiment {
            title: spec.title.clone().unwrap_or_else(|| "experiment".into()),
            description: spec.description.clone(),
            tags: spec.tags.clone(),
            interval,
            recovery: spec.recovery.map_or(longest + interval, HumanDuration::get),
            steady_state,
            method,
            rollbacks,
            abort,
            method_end,
        })
    }

    /// When the steady state is checked before the method: at its first step.
    pub fn before_at(&self) -> Duration {
        self.method.iter().map(|s| s.at).min().unwrap_or_default()
    }

    /// Whether it needs the sidecars' admin APIs (faults, stats probes).
    pub fn uses_sidecars(&self) -> bool {
        let fault = |a: &Action| matches!(a, Action::Fault(_) | Action::ClearFaults);
        self.method.iter().any(|s| fault(&s.action))
            || self.rollbacks.iter().any(|r| fault(&r.action))
            || self
                .steady_state
                .iter()
                .chain(self.abort.iter().map(|a| &a.probe))
                .any(|p| matches!(p.kind, probe::ProbeKind::Stats(_)))
    }

    /// The process names its actions use (the scenario runner registers them).
    pub fn process_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .method
            .iter()
            .map(|s| &s.action)
            .chain(self.rollbacks.iter().map(|r| &r.action))
            .filter_map(|a| match a {
                Action::Signal {
                    process: ProcessRef::Name(n),
                    ..
                }
                | Action::Restart(ProcessRef::Name(n)) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The longest stats window a probe reads (what an observer must keep).
    pub fn longest_window(&self) -> Duration {
        self.steady_state
            .iter()
            .chain(self.abort.iter().map(|a| &a.probe))
            .map(Probe::window)
            .max()
            .unwrap_or_default()
    }
}

fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{field}"),
    }
}

fn field_error(field: &str, message: String, fix: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message,
        fix: fix.to_owned(),
    }
}

const METHOD_ACTIONS: &str = "fault, kill, stop, continue, restart, cpu_stress, memory_stress, demo_upstream, pause";
const ROLLBACK_ACTIONS: &str = "continue, restart, kill, demo_upstream, clear_faults";

/// The step's action, and whether it lasts (is undone when its duration ends).
fn step_action(s: &StepSpec, rollback: bool, errs: &mut Vec<FieldError>) -> Option<(Action, bool)> {
    let mut err = |field: &str, message: String, fix: &str| errs.push(field_error(field, message, fix));
    let given: Vec<&str> = [
        ("fault", s.fault.is_some()),
        ("kill", s.kill.is_some()),
        ("stop", s.stop.is_some()),
        ("continue", s.resume.is_some()),
        ("restart", s.restart.is_some()),
        ("cpu_stress", s.cpu_stress.is_some()),
        ("memory_stress", s.memory_stress.is_some()),
        ("demo_upstream", s.demo_upstream.is_some()),
        ("pause", s.pause.is_some()),
        ("clear_faults", s.clear_faults.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let kinds = if rollback { ROLLBACK_ACTIONS } else { METHOD_ACTIONS };
    let first = match given.as_slice() {
        [] => {
            err("", "the step has no action".into(), &format!("add one of {kinds}"));
            return None;
        }
        [one] => *one,
        [first, second, ..] => {
            err(
                second,
                format!("a step has one action; {first} and {second} are given"),
                "split them into steps of their own",
            );
            return None;
        }
    };
    if s.signal.is_some() && first != "kill" {
        err(
            "signal",
            "applies to `kill` only".into(),
            "remove it (stop sends SIGSTOP, continue SIGCONT)",
        );
    }
    if rollback && matches!(first, "fault" | "stop" | "cpu_stress" | "memory_stress" | "pause") {
        err(
            first,
            format!("`{first}` is not a rollback action"),
            &format!("rollbacks put things back: use one of {ROLLBACK_ACTIONS}"),
        );
        return None;
    }
    let has_duration = s.duration.is_some();
    let no_duration = |err: &mut dyn FnMut(&str, String, &str), what: &str| {
        if has_duration {
            err(
                "duration",
                format!("`{what}` happens at once and has no duration"),
                "remove `duration`",
            );
        }
    };
    match first {
        "fault" => {
            let spec = s.fault.clone().expect("given");
            if spec.ttl.is_some() {
                err(
                    "fault.ttl",
                    "the experiment sets the fault's TTL".into(),
                    "remove it: the fault lives for the step's duration, and never past the experiment",
                );
            }
            match spec.validate() {
                Ok(_) => Some((Action::Fault(Box::new(spec)), true)),
                Err(field_errors) => {
                    for e in field_errors {
                        err(&format!("fault.{}", e.field), e.message, &e.fix);
                    }
                    None
                }
            }
        }
        "kill" => {
            let process = s.kill.clone().expect("given");
            let signal = match &s.signal {
                None => Signal::Kill,
                Some(text) => match Signal::parse_for_kill(text) {
                    Some(sig) => sig,
                    None => {
                        err(
                            "signal",
                            format!("{text:?} is not a signal `kill` sends"),
                            "use SIGKILL (the default), SIGTERM, SIGINT, SIGHUP or SIGQUIT",
                        );
                        return None;
                    }
                },
            };
            if has_duration && !matches!(process, ProcessRef::Name(_)) {
                err(
                    "duration",
                    "a killed process is restarted after `duration`, and only processes the scenario spawned can be"
                        .into(),
                    "remove `duration`, or name a process the scenario spawned",
                );
            }
            Some((Action::Signal { process, signal }, has_duration))
        }
        "stop" => Some((
            Action::Signal {
                process: s.stop.clone().expect("given"),
                signal: Signal::Stop,
            },
            true,
        )),
        "continue" => {
            no_duration(&mut err, "continue");
            Some((
                Action::Signal {
                    process: s.resume.clone().expect("given"),
                    signal: Signal::Cont,
                },
                false,
            ))
        }
        "restart" => {
            no_duration(&mut err, "restart");
            let process = s.restart.clone().expect("given");
            if !matches!(process, ProcessRef::Name(_)) {
                err(
                    "restart",
                    "only processes the scenario spawned can be restarted".into(),
                    "name a process the scenario spawned (ballast cannot know how to start one from a pid file)",
                );
                return None;
            }
            Some((Action::Restart(process), false))
        }
        "cpu_stress" => {
            let threads = s.cpu_stress.as_ref().expect("given").threads;
            if !(1..=MAX_CPU_THREADS).contains(&threads) {
                err(
                    "cpu_stress.threads",
                    format!("{threads} is outside 1-{MAX_CPU_THREADS}"),
                    "give the number of busy threads, e.g. `threads = 2`",
                );
                return None;
            }
            Some((Action::Stress(Stress::Cpu { threads }), true))
        }
        "memory_stress" => {
            let bytes = s.memory_stress.expect("given").get();
            if bytes == 0 || bytes > MAX_MEMORY_STRESS {
                err(
                    "memory_stress",
                    format!("{bytes} bytes is outside 1B-1TiB"),
                    "give the memory to hold, e.g. \"256MiB\"",
                );
                return None;
            }
            Some((Action::Stress(Stress::Memory { bytes }), true))
        }
        "demo_upstream" => demo_upstream(s, rollback, &mut err),
        "pause" => {
            if has_duration {
                err(
                    "duration",
                    "a pause's length is its value".into(),
                    "remove `duration`: write `pause = \"10s\"`",
                );
            }
            if s.pause.expect("given").get().is_zero() {
                err("pause", "is zero".into(), "give a duration such as \"10s\"");
            }
            Some((Action::Pause, true))
        }
        "clear_faults" => {
            no_duration(&mut err, "clear_faults");
            if s.clear_faults != Some(true) {
                err(
                    "clear_faults",
                    "is false".into(),
                    "remove it, or write `clear_faults = true`",
                );
                return None;
            }
            Some((Action::ClearFaults, false))
        }
        _ => unreachable!("every action is matched"),
    }
}

const BEHAVIOUR_FIELDS: [&str; 5] = ["p50", "p99", "error_rate", "error_status", "size"];

fn demo_upstream(s: &StepSpec, rollback: bool, err: &mut impl FnMut(&str, String, &str)) -> Option<(Action, bool)> {
    let d = s.demo_upstream.as_ref().expect("given");
    let mut ok = true;
    if reqwest::Url::parse(&d.url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
        err(
            "demo_upstream.url",
            format!("{:?} is not an http(s) URL", d.url),
            "give the demo upstream's base URL, e.g. \"http://127.0.0.1:8081\"",
        );
        ok = false;
    }
    let upstream = d.url.trim_end_matches('/').to_owned();
    if d.reset {
        if d.behaviour.is_some() || d.path.is_some() {
            err(
                "demo_upstream.reset",
                "a reset takes no path or behaviour".into(),
                "remove `path` and `behaviour`, or `reset`",
            );
            ok = false;
        }
        if s.duration.is_some() {
            err(
                "duration",
                "a reset happens at once and has no duration".into(),
                "remove `duration`",
            );
            ok = false;
        }
        return ok.then_some((Action::ResetBehaviours { upstream }, false));
    }
    let path = d.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') {
        err(
            "demo_upstream.path",
            format!("{path:?} does not start with `/`"),
            "write it like \"/api/checkout\"",
        );
        ok = false;
    }
    let Some(behaviour) = &d.behaviour else {
        err(
            "demo_upstream.behaviour",
            "is missing".into(),
            "add the new behaviour, e.g. `behaviour = { p50 = \"120ms\", p99 = \"900ms\", error_rate = 0.2 }`, or `reset = true`",
        );
        return None;
    };
    for (key, value) in behaviour {
        let field = format!("demo_upstream.behaviour.{key}");
        let problem = match key.as_str() {
            "p50" | "p99" => value
                .as_str()
                .and_then(|t| t.parse::<HumanDuration>().ok())
                .is_none()
                .then_some("write a duration such as \"120ms\""),
            "error_rate" => value
                .as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .is_none()
                .then_some("write a share of requests between 0 and 1, e.g. 0.2"),
            "error_status" => value
                .as_u64()
                .filter(|s| (200..=599).contains(s))
                .is_none()
                .then_some("write an HTTP status such as 503"),
            "size" => value
                .as_str()
                .map_or(value.as_u64().is_none(), |t| {
                    t.parse::<ballast_model::ByteSize>().is_err()
                })
                .then_some("write a size such as \"2KiB\" or a number of bytes"),
            _ => {
                err(
                    &field,
                    format!("unknown behaviour field {key:?}"),
                    &format!("use {}", BEHAVIOUR_FIELDS.join(", ")),
                );
                ok = false;
                None
            }
        };
        if let Some(fix) = problem {
            err(&field, format!("invalid value {value}"), fix);
            ok = false;
        }
    }
    let behaviour = serde_json::Value::Object(behaviour.clone().into_iter().collect());
    ok.then_some((
        Action::Behaviour {
            upstream,
            path,
            behaviour,
        },
        !rollback,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(text: &str) -> Result<Experiment, Vec<String>> {
        let spec: ExperimentSpec = toml::from_str(text).unwrap();
        Experiment::from_spec(&spec, &[]).map_err(|errs| {
            errs.into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect()
        })
    }

    #[test]
    fn steps_follow_each_other_unless_given_a_time() {
        let e = experiment(
            r#"
[[method]]
at = "10s"
duration = "20s"
cpu_stress = { threads = 1 }
[[method]]
pause = "5s"
[[method]]
stop = "b"
duration = "3s"
[[method]]
at = "12s"
kill = { pid_file = "/x.pid" }
[[method]]
memory_stress = "1MiB"
"#,
        )
        .unwrap();
        let times: Vec<(Duration, Option<Duration>)> = e.method.iter().map(|s| (s.at, s.ends)).collect();
        let s = Duration::from_secs;
        assert_eq!(
            times,
            [
                (s(10), Some(s(30))),
                (s(30), Some(s(35))),
                (s(35), Some(s(38))),
                (s(12), None),
                (s(12), None)
            ]
        );
        assert_eq!(e.method_end, s(38));
        assert_eq!(e.before_at(), s(10));
        assert_eq!(e.process_names(), ["b"]);
        assert!(!e.uses_sidecars());
    }

    #[test]
    fn every_step_problem_is_named() {
        let errs = experiment(
            r#"
interval = "1ms"
[[method]]
fault = { kind = "abort", status = 700, ttl = "1m" }
kill = "x"
[[method]]
fault = { kind = "abort", status = 700, ttl = "1m" }
duration = "1s"
[[method]]
kill = { pid_file = "/x.pid" }
signal = "SIGSTOP"
[[method]]
continue = "b"
duration = "1s"
[[method]]
demo_upstream = { url = "nope", path = "api", behaviour = { error_rate = 2.0, colour = "red" } }
duration = "1s"
[[method]]
memory_stress = "0B"
[[rollbacks]]
at = "1s"
stop = "b"
"#,
        )
        .unwrap_err();
        for want in [
            "interval: 1ms is too short",
            "method[0].kill: a step has one action; fault and kill are given",
            "method[1].fault.ttl: the experiment sets the fault's TTL",
            "method[1].fault.status: 700 is outside 200-599",
            "method[2].signal: \"SIGSTOP\" is not a signal `kill` sends",
            "method[3].duration: `continue` happens at once and has no duration",
            "method[4].demo_upstream.url: \"nope\" is not an http(s) URL",
            "method[4].demo_upstream.path: \"api\" does not start with `/`",
            "method[4].demo_upstream.behaviour.colour: unknown behaviour field \"colour\"",
            "method[4].demo_upstream.behaviour.error_rate: invalid value 2.0",
            "method[5].memory_stress: 0 bytes is outside 1B-1TiB",
            "rollbacks[0].at: does not apply to rollbacks",
            "rollbacks[0].stop: `stop` is not a rollback action",
        ] {
            assert!(errs.contains(&want.to_owned()), "missing {want:?} in {errs:#?}");
        }
    }

    #[test]
    fn an_open_ended_action_needs_time_to_last() {
        let errs = experiment("[[method]]\nat = \"5s\"\nstop = \"b\"").unwrap_err();
        assert_eq!(
            errs,
            [
                "method[0].duration: is missing: `stop process \"b\" (SIGSTOP)` would last until the method ends, which is when it starts"
            ]
        );
        let e = experiment("[[method]]\nstop = \"b\"\n[[method]]\nat = \"5s\"\nrestart = \"a\"").unwrap();
        assert_eq!(e.method_end, Duration::from_secs(5));
        assert_eq!(e.method[0].ends, None, "undone with the rollbacks, at the method's end");
        assert!(experiment("").unwrap_err().contains(&"method: is empty".to_owned()));
    }
}
