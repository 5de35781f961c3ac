//! ballast-chaos: chaos experiments. A steady-state hypothesis (probes with bounds), a method
//! of timed actions (sidecar faults and TCP toxics, process signals and restarts, CPU and
//! memory stress, demo-upstream behaviour changes, pauses), rollbacks that always run, abort
//! conditions, and a journal of everything.
//!
//! ```ignore
//! let loaded = ballast_chaos::load::load_file(path)?;            // every error at once
//! let journal = loaded.experiment.run(&observer, &actor, cancel, Some(events_tx)).await;
//! ```
//!
//! The scenario runner drives the same [`experiment::Experiment::run`] with its own observer
//! (the windows of its `/stats` scrapes pushed into a [`live::StatsHistory`], SLO counts of the
//! load generator's results) and the live actor with the processes it spawned registered by
//! name ([`live::LiveAct::register`]); it records the [`ballast_model::Event`]s and the journal.
//! Time is tokio's clock, so tests run with paused time.
//!
//! # Layout
//! - [`spec`]: experiments as written (TOML), serde types.
//! - [`load`]: a file's experiment (its top level or a scenario's `[experiment]`) and its
//!   `[[slo]]` tables, every problem with `file:line:column`, the field and a fix.
//! - [`experiment`]: the checked experiment: typed steps with their start and end times.
//! - [`probe`]: probes, their bounds and readings (stats over windows, SLOs, HTTP).
//! - [`action`]: actions and their undos, in words.
//! - [`observe`] / [`act`]: the traits probes read through and actions act through.
//! - [`run`]: the experiment's run: before, during, rollbacks, after, aborts, cancellation.
//! - [`journal`]: what ran when, every reading, the verdict (JSON).
//! - [`plan`]: the `--dry-run` plan with absolute times.
//! - [`live`]: the real observer (sidecar stats history, HTTP) and actor (admin API, signals,
//!   stress, demo upstreams).
//! - [`doubles`]: a scripted observer and a recording actor, for tests.
//!
//! # Semantics, and where they differ from Chaos Toolkit
//! - **Before.** The steady state is checked once, at the first step's time (not at the
//!   experiment's start as Chaos Toolkit does): method offsets count from the start, and the
//!   lead-in before the first step (load warming up in a scenario) is what the probes' windows
//!   measure. If it does not hold, nothing runs and nothing is rolled back (as in Chaos Toolkit).
//! - **During.** Chaos Toolkit checks before and after only (its `continuously` strategy aside);
//!   here the hypothesis is checked every `interval` while the method runs, and a check that
//!   fails makes the verdict `deviated`, because a resilience experiment is about what users
//!   see while the fault is in place. Changes of the during-verdict are events.
//! - **After.** Checked after the rollbacks (Chaos Toolkit checks before them), and again every
//!   interval until it holds or `recovery` has passed (default: the longest probe window plus
//!   one interval), since windowed probes still see the fault right after it ends; the journal
//!   says how long recovery took.
//! - **Rollbacks** run whenever a step was attempted: at the method's end, on abort, on an
//!   action's error and on cancellation (Chaos Toolkit skips them on interruption by default).
//!   First each action's own undo still pending, last applied first (remove its fault, continue
//!   a stopped process, end a stress, restore a behaviour); then the `rollbacks` in written
//!   order. A failure is recorded and the next one runs. Cancellation is honoured between
//!   actions, never inside one, so what was put in place is always known.
//! - **Abort conditions** are conditions, not hypotheses: `burn_rate_above = 50, for = "10s"`
//!   aborts once the burn rate has been above 50 at every check for 10 s (a shorter blip does
//!   not). HTTP probes describe a healthy answer, so they abort when unhealthy.
//! - **Durations.** An action with a `duration` is undone when it ends; without one it lasts
//!   until the method ends. A fault's TTL is its remaining time, so a fault never outlives the
//!   experiment even if ballast dies. A step without `at` follows the previous one.
//! - **Verdicts**: `held`, `deviated`, `aborted`, `not_started` (Chaos Toolkit's `failed`),
//!   `interrupted`, `error`. Failed rollbacks are counted beside the verdict.

pub mod act;
pub mod action;
pub mod doubles;
pub mod experiment;
pub mod journal;
pub mod live;
pub mod load;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod run;
pub mod spec;

pub use experiment::Experiment;
pub use journal::{Journal, Verdict};
pub use spec::ExperimentSpec;
