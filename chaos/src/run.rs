//! Running an experiment: the lead-in, the check before, the method's timeline with the
//! hypothesis and abort conditions checked every interval, the rollbacks, and the check after.
//!
//! ```text
//! 0 ── lead-in ── before ── method (checks every interval) ── method end ── rollbacks ── after
//!                   │                      │                      │                        │
//!          steady state must hold   abort conditions        undo what is left,      steady state
//!          (else nothing runs)      end it early            then `rollbacks`        back within
//!                                                                                   `recovery`
//! ```
//!
//! Cancellation (the caller's future: Ctrl-C, SIGTERM) is honoured while waiting, never in the
//! middle of an action, so what was put in place is always known and rolled back. Rollbacks run
//! whenever a step was attempted, whatever ended the method; each runs even if others failed.

use std::future::Future;
use std::time::Duration;

use ballast_model::event::unix_ms;
use ballast_model::units::HumanDuration;
use ballast_model::{Event, EventKind};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Fuse, join_all};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::act::{Act, ActError};
use crate::action::{Action, Signal, Undo};
use crate::experiment::Experiment;
use crate::journal::{AbortRecord, Activity, Check, Hypothesis, Journal, StepRecord, Verdict};
use crate::observe::Observe;

/// Where the events of a run go (the scenario runner records them in `events.jsonl`).
pub type EventSender = UnboundedSender<Event>;

/// The `source` of the events an experiment sends.
pub const EVENT_SOURCE: &str = "chaos";

/// An action or undo that takes longer has failed: the experiment (and its rollbacks) go on.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// `call`, failed with [`ActError::TimedOut`] after [`ACTION_TIMEOUT`].
async fn bounded<T>(
    what: impl std::fmt::Display,
    call: impl Future<Output = Result<T, ActError>>,
) -> Result<T, ActError> {
    tokio::time::timeout(ACTION_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(ActError::TimedOut(what.to_string(), ACTION_TIMEOUT)))
}

impl Experiment {
    /// Run the experiment to its end (or until `cancel` resolves) and return its journal. Steps,
    /// hypothesis checks and the end go to `events` as they happen.
    pub async fn run(
        &self,
        observe: &dyn Observe,
        act: &dyn Act,
        cancel: impl Future<Output = ()> + Send,
        events: Option<EventSender>,
    ) -> Journal {
        let cancel: BoxFuture<'_, ()> = Box::pin(cancel);
        let run = Run {
            e: self,
            observe,
            act,
            events,
            start: Instant::now(),
            start_ms: unix_ms(),
            cancel: cancel.fuse(),
            cancelled: false,
            pending: Vec::new(),
            during_held: None,
            abort_since: vec![None; self.abort.len()],
            hypothesis: Hypothesis::default(),
            steps: Vec::new(),
            rollbacks: Vec::new(),
            abort: None,
        };
        run.go().await
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    During,
    After,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::After => "after",
        }
    }
}

/// An action's undo, not yet done.
struct Pending {
    /// Index into `method` (and `steps`: a step's record is pushed when it runs).
    step: usize,
    record: usize,
    undo: Undo,
}

/// What happens at a point of the method's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Moment {
    /// A step's duration ended (ordered first: what ends makes room for what starts).
    End(usize),
    Apply(usize),
}

struct Run<'a> {
    e: &'a Experiment,
    observe: &'a dyn Observe,
    act: &'a dyn Act,
    events: Option<EventSender>,
    start: Instant,
    start_ms: u64,
    cancel: Fuse<BoxFuture<'a, ()>>,
    cancelled: bool,
    /// Undos of actions in place, in the order applied.
    pending: Vec<Pending>,
    /// The last verdict of a check during the method (events go out when it changes).
    during_held: Option<bool>,
    /// Per abort condition: since when it has held, unbroken.
    abort_since: Vec<Option<Instant>>,
    hypothesis: Hypothesis,
    steps: Vec<StepRecord>,
    rollbacks: Vec<Activity>,
    abort: Option<AbortRecord>,
}

/// How the method ended when it did not run to its end.
type Stop = (Verdict, String);

impl Run<'_> {
    async fn go(mut self) -> Journal {
        let stopped = match self.before().await {
            Some(stop) => Some(stop),
            None => self.method().await,
        };
        let started = !self.steps.is_empty();
        if started {
            self.roll_back().await;
        }
        let method_over = Instant::now();
        let mut verdict = stopped;
        if started && !self.cancelled {
            self.after(method_over).await;
            if self.cancelled && verdict.is_none() {
                verdict = Some((
                    Verdict::Interrupted,
                    "cancelled while waiting for the steady state to come back".into(),
                ));
            }
        }
        let (verdict, reason) = match verdict {
            Some((v, reason)) => (v, Some(reason)),
            None => match self.deviation() {
                Some(reason) => (Verdict::Deviated, Some(reason)),
                None => (Verdict::Held, None),
            },
        };
        self.emit(EventKind::ExperimentFinished {
            experiment: self.e.title.clone(),
            verdict: verdict.as_str().into(),
            reason: reason.clone(),
        });
        let rollbacks_failed = self.rollbacks.iter().filter(|r| !r.ok).count();
        Journal {
            title: self.e.title.clone(),
            description: self.e.description.clone(),
            tags: self.e.tags.clone(),
            started_at_ms: self.start_ms,
            ended_at_ms: self.at_ms(self.offset()),
            verdict,
            reason,
            hypothesis: self.hypothesis,
            abort: self.abort,
            steps: self.steps,
            rollbacks: self.rollbacks,
            rollbacks_failed,
        }
    }

    /// The lead-in and the check before; `None` when the method may start.
    async fn before(&mut self) -> Option<Stop> {
        let e = self.e;
        if self.wait_until(self.start + e.before_at()).await {
            return Some((Verdict::Interrupted, "cancelled before the method started".into()));
        }
        let before = self.check(Phase::Before).await;
        let held = before.held;
        let failed = failed_probes(&before);
        self.hypothesis.before = Some(before);
        self.hypothesis.held_before = Some(held);
        if !held {
            return Some((
                Verdict::NotStarted,
                format!("the steady state did not hold before the method: {}", failed.join("; ")),
            ));
        }
        self.abort_due()
    }

    /// The method's timeline, with checks every interval; `None` when it ran to its end.
    async fn method(&mut self) -> Option<Stop> {
        let e = self.e;
        let mut timeline: Vec<(Duration, Moment)> = Vec::new();
        for (i, s) in e.method.iter().enumerate() {
            timeline.push((s.at, Moment::Apply(i)));
            if let Some(end) = s.ends {
                timeline.push((end, Moment::End(i)));
            }
        }
        timeline.sort();
        let mut next = 0;
        let mut next_check = self.start + e.before_at() + e.interval;
        loop {
            while let Some(&(at, moment)) = timeline.get(next) {
                if self.start + at > Instant::now() {
                    break;
                }
                let done = match moment {
                    Moment::Apply(i) => self.apply(i).await,
                    Moment::End(i) => self.end(i).await,
                };
                if let Err(reason) = done {
                    return Some((Verdict::Error, reason));
                }
                next += 1;
            }
            // The last moment done: the method is over.
            let &(at, _) = timeline.get(next)?;
            let wake = (self.start + at).min(next_check);
            if self.wait_until(wake).await {
                return Some((Verdict::Interrupted, "cancelled during the method".into()));
            }
            if Instant::now() >= next_check {
                self.check(Phase::During).await;
                if let Some(stop) = self.abort_due() {
                    return Some(stop);
                }
                next_check += e.interval;
                // A slow check skips the checks it overran rather than bunching them up.
                if next_check <= Instant::now() {
                    next_check = Instant::now() + e.interval;
                }
            }
        }
    }

    /// Put step `i`'s action in place; keep its undo.
    async fn apply(&mut self, i: usize) -> Result<(), String> {
        let step = &self.e.method[i];
        let action = step.action.to_string();
        self.emit(EventKind::ExperimentStepStarted {
            experiment: self.e.title.clone(),
            step: step.label.clone(),
            action: action.clone(),
        });
        let offset = self.offset();
        // A fault lives until its step ends (or the method does), never longer.
        let until = step.ends.unwrap_or(self.e.method_end);
        let left = until.saturating_sub(offset).as_millis().max(1) as u64;
        let ttl = Duration::from_millis(left);
        let result = bounded(&action, self.perform(&step.action, ttl, step.ends.is_some())).await;
        let (ok, error, detail, undo) = match result {
            Ok((undo, detail)) => (true, None, detail, undo),
            Err(e) => (false, Some(e.to_string()), serde_json::Value::Null, None),
        };
        self.steps.push(StepRecord {
            name: step.name.clone(),
            planned_offset_ms: step.at.as_millis() as u64,
            run: self.activity(step.label.clone(), action.clone(), offset, error.clone()),
            detail,
            ended: None,
        });
        self.emit(EventKind::ExperimentStepFinished {
            experiment: self.e.title.clone(),
            step: step.label.clone(),
            action: action.clone(),
            ok,
            error: error.clone(),
        });
        if let Some(undo) = undo {
            self.pending.push(Pending {
                step: i,
                record: self.steps.len() - 1,
                undo,
            });
        }
        match error {
            None => Ok(()),
            Some(e) => Err(format!("{} ({action}) failed: {e}", step.label)),
        }
    }

    /// Step `i`'s duration is over: undo it now.
    async fn end(&mut self, i: usize) -> Result<(), String> {
        let step = &self.e.method[i];
        let label = format!("{}.end", step.label);
        let Some(pos) = self.pending.iter().position(|p| p.step == i) else {
            // A pause: nothing to undo, but its end is on the timeline too.
            let offset = self.offset();
            if let Some(record) = self.steps.iter().rposition(|s| s.run.step == step.label) {
                self.steps[record].ended = Some(self.activity(label, "over".into(), offset, None));
            }
            return Ok(());
        };
        let pending = self.pending.remove(pos);
        let what = pending.undo.to_string();
        self.emit(EventKind::ExperimentStepStarted {
            experiment: self.e.title.clone(),
            step: label.clone(),
            action: what.clone(),
        });
        let offset = self.offset();
        let error = bounded(&what, self.undo(&pending.undo))
            .await
            .err()
            .map(|e| e.to_string());
        self.steps[pending.record].ended = Some(self.activity(label.clone(), what.clone(), offset, error.clone()));
        self.emit(EventKind::ExperimentStepFinished {
            experiment: self.e.title.clone(),
            step: label.clone(),
            action: what.clone(),
            ok: error.is_none(),
            error: error.clone(),
        });
        match error {
            None => Ok(()),
            Some(e) => {
                // Tried again among the rollbacks.
                self.pending.insert(pos, pending);
                Err(format!("{label} ({what}) failed: {e}"))
            }
        }
    }

    /// Carry out an action; its undo (when `lasting`) and what it left in place, for the journal.
    async fn perform(
        &self,
        action: &Action,
        ttl: Duration,
        lasting: bool,
    ) -> Result<(Option<Undo>, serde_json::Value), ActError> {
        let act = self.act;
        Ok(match action {
            Action::Fault(spec) => {
                let mut spec = (**spec).clone();
                spec.ttl = Some(HumanDuration(ttl));
                let faults = act.add_fault(&spec).await?;
                let detail = serde_json::json!({ "faults": faults, "ttl": HumanDuration(ttl).to_string() });
                (Some(Undo::RemoveFaults(faults)), detail)
            }
            Action::Signal { process, signal } => {
                let pid = act.signal(process, *signal).await?;
                let undo = match signal {
                    Signal::Stop => Some(Undo::Continue(process.clone())),
                    Signal::Cont => None,
                    // A kill with a duration: restarted when it ends.
                    _ => lasting.then(|| Undo::Restart(process.clone())),
                };
                (undo, serde_json::json!({ "pid": pid }))
            }
            Action::Restart(process) => {
                let pid = act.restart(process).await?;
                (None, serde_json::json!({ "pid": pid }))
            }
            Action::Stress(stress) => {
                let id = act.start_stress(*stress).await?;
                (Some(Undo::EndStress(id)), serde_json::json!({ "stress": id }))
            }
            Action::Behaviour {
                upstream,
                path,
                behaviour,
            } => {
                let previous = act.set_behaviour(upstream, path, behaviour).await?;
                let detail = serde_json::json!({ "previous": previous });
                let undo = lasting.then(|| Undo::RestoreBehaviour {
                    upstream: upstream.clone(),
                    path: path.clone(),
                    previous,
                });
                (undo, detail)
            }
            Action::ResetBehaviours { upstream } => {
                act.reset_behaviours(upstream).await?;
                (None, serde_json::Value::Null)
            }
            Action::ClearFaults => {
                let removed = act.clear_faults().await?;
                (None, serde_json::json!({ "removed": removed }))
            }
            Action::Pause => (None, serde_json::Value::Null),
        })
    }

    async fn undo(&self, undo: &Undo) -> Result<(), ActError> {
        let act = self.act;
        match undo {
            Undo::RemoveFaults(faults) => {
                // Every sidecar's copy, whatever happened to the others.
                let mut first_error = None;
                for f in faults {
                    if let Err(e) = act.remove_fault(f).await {
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
            Undo::Continue(process) => act.signal(process, Signal::Cont).await.map(drop),
            Undo::Restart(process) => act.restart(process).await.map(drop),
            Undo::EndStress(id) => act.end_stress(*id).await,
            Undo::RestoreBehaviour {
                upstream,
                path,
                previous,
            } => act.restore_behaviour(upstream, path, previous.as_ref()).await,
        }
    }

    /// Undo everything still in place (last applied first), then the experiment's rollbacks.
    /// Cancellation does not stop them, nor does a failure.
    async fn roll_back(&mut self) {
        while let Some(p) = self.pending.pop() {
            let label = format!("undo {}", self.e.method[p.step].label);
            let what = p.undo.to_string();
            let result = bounded(&what, self.undo(&p.undo)).await;
            self.record_rollback(label, what, result);
        }
        for r in &self.e.rollbacks {
            let what = r.action.to_string();
            let result = bounded(&what, self.perform(&r.action, Duration::ZERO, false))
                .await
                .map(drop);
            self.record_rollback(r.label.clone(), what, result);
        }
    }

    fn record_rollback(&mut self, step: String, action: String, result: Result<(), ActError>) {
        let error = result.err().map(|e| e.to_string());
        let offset = self.offset();
        self.emit(EventKind::ExperimentStepStarted {
            experiment: self.e.title.clone(),
            step: step.clone(),
            action: action.clone(),
        });
        self.emit(EventKind::ExperimentStepFinished {
            experiment: self.e.title.clone(),
            step: step.clone(),
            action: action.clone(),
            ok: error.is_none(),
            error: error.clone(),
        });
        self.rollbacks.push(self.activity(step, action, offset, error));
    }

    /// Check the steady state every interval until it holds or `recovery` has passed.
    async fn after(&mut self, method_over: Instant) {
        let deadline = method_over + self.e.recovery;
        loop {
            let check = self.check(Phase::After).await;
            if check.held {
                self.hypothesis.recovered_in_ms = Some(method_over.elapsed().as_millis() as u64);
                break;
            }
            let now = Instant::now();
            if now >= deadline || self.wait_until((now + self.e.interval).min(deadline)).await {
                break;
            }
        }
        let last = self.hypothesis.after.last().expect("checked at least once");
        let (held, failed) = (last.held, failed_probes(last));
        self.hypothesis.held_after = Some(held);
        self.emit(EventKind::HypothesisChecked {
            experiment: self.e.title.clone(),
            phase: Phase::After.as_str().into(),
            held,
            failed,
        });
    }

    /// Read every probe (and, before the rollbacks, every abort condition) once.
    async fn check(&mut self, phase: Phase) -> Check {
        let offset = self.offset();
        let observe = self.observe;
        let probes = join_all(self.e.steady_state.iter().map(|p| p.read(observe))).await;
        let abort = if phase == Phase::After {
            Vec::new()
        } else {
            join_all(self.e.abort.iter().map(|a| a.probe.read(observe))).await
        };
        let check = Check {
            offset_ms: offset.as_millis() as u64,
            at_ms: self.at_ms(offset),
            held: probes.iter().all(|r| r.holds),
            probes,
            abort,
        };
        // Abort conditions: since when each has held without a break.
        let now = Instant::now();
        for (i, reading) in check.abort.iter().enumerate() {
            let triggered = self.e.abort[i].probe.triggers(reading);
            self.abort_since[i] = triggered.then(|| self.abort_since[i].unwrap_or(now));
        }
        let changed = phase == Phase::During && self.during_held != Some(check.held);
        if phase == Phase::Before || changed {
            self.emit(EventKind::HypothesisChecked {
                experiment: self.e.title.clone(),
                phase: phase.as_str().into(),
                held: check.held,
                failed: failed_probes(&check),
            });
        }
        match phase {
            Phase::Before => {}
            Phase::During => {
                self.during_held = Some(check.held);
                self.hypothesis.held_during = Some(self.hypothesis.held_during.unwrap_or(true) && check.held);
                self.hypothesis.during.push(check.clone());
            }
            Phase::After => self.hypothesis.after.push(check.clone()),
        }
        check
    }

    /// The first abort condition that has held for its `for`, recorded.
    fn abort_due(&mut self) -> Option<Stop> {
        let now = Instant::now();
        let (i, since) = self
            .abort_since
            .iter()
            .enumerate()
            .find_map(|(i, since)| since.filter(|s| now - *s >= self.e.abort[i].sustain).map(|s| (i, s)))?;
        let condition = &self.e.abort[i];
        let reading = self
            .hypothesis
            .during
            .last()
            .or(self.hypothesis.before.as_ref())
            .and_then(|c| c.abort.get(i).cloned())?;
        let value = reading.value.map_or(String::new(), |v| format!(" (last value {v:.4})"));
        let reason = format!(
            "abort[{i}]: {} held for {}{value}",
            condition.probe.name,
            HumanDuration(now - since)
        );
        self.abort = Some(AbortRecord {
            condition: format!("abort[{i}]"),
            probe: condition.probe.name.clone(),
            since_offset_ms: (since - self.start).as_millis() as u64,
            offset_ms: self.offset().as_millis() as u64,
            reading,
        });
        Some((Verdict::Aborted, reason))
    }

    /// Why the steady state did not hold during or after the method, if it did not.
    fn deviation(&self) -> Option<String> {
        if let Some(first) = self.hypothesis.during.iter().find(|c| !c.held) {
            return Some(format!(
                "the steady state did not hold during the method (first at +{}: {})",
                HumanDuration(Duration::from_millis(first.offset_ms)),
                failed_probes(first).join("; ")
            ));
        }
        match self.hypothesis.after.last() {
            Some(last) if !last.held => Some(format!(
                "the steady state was not back within {}: {}",
                HumanDuration(self.e.recovery),
                failed_probes(last).join("; ")
            )),
            _ => None,
        }
    }

    /// Wait until `deadline`; true when cancelled (now or earlier).
    async fn wait_until(&mut self, deadline: Instant) -> bool {
        if self.cancelled {
            return true;
        }
        self.cancelled = tokio::select! {
            biased;
            () = &mut self.cancel => true,
            () = tokio::time::sleep_until(deadline) => false,
        };
        self.cancelled
    }

    fn offset(&self) -> Duration {
        Instant::now() - self.start
    }

    fn at_ms(&self, offset: Duration) -> u64 {
        self.start_ms + offset.as_millis() as u64
    }

    fn activity(&self, step: String, action: String, offset: Duration, error: Option<String>) -> Activity {
        Activity {
            step,
            action,
            offset_ms: offset.as_millis() as u64,
            at_ms: self.at_ms(offset),
            ok: error.is_none(),
            error,
        }
    }

    fn emit(&self, kind: EventKind) {
        if let Some(tx) = &self.events {
            let offset = self.offset();
            // A runner that stopped listening does not stop the experiment.
            let _ = tx.send(Event {
                at_ms: self.at_ms(offset),
                source: EVENT_SOURCE.into(),
                kind,
            });
        }
    }
}

/// `probe (value, note)` for each probe of a check that did not hold.
fn failed_probes(check: &Check) -> Vec<String> {
    check
        .probes
        .iter()
        .filter(|r| !r.holds)
        .map(|r| {
            let mut text = r.probe.clone();
            let mut extra = Vec::new();
            if let Some(v) = r.value {
                extra.push(format!("value {v:.4}"));
            }
            if let Some(note) = &r.note {
                extra.push(note.clone());
            }
            if !extra.is_empty() {
                text.push_str(&format!(" ({})", extra.join(", ")));
            }
            text
        })
        .collect()
}
