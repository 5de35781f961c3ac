//! The journal: everything an experiment did and saw, as JSON. Times are Unix milliseconds
//! (`*_at_ms`) and offsets from the experiment's start (`*offset_ms`, on tokio's clock).

use serde::{Deserialize, Serialize};

use crate::probe::Reading;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    pub verdict: Verdict,
    /// Why the verdict is not `held`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub hypothesis: Hypothesis,
    /// The abort condition that ended the experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortRecord>,
    /// Method steps, in the order they ran.
    pub steps: Vec<StepRecord>,
    /// Rollbacks, in the order they ran: the undo of every action still in place (last
    /// applied first), then the experiment's `rollbacks`.
    pub rollbacks: Vec<Activity>,
    /// How many rollbacks failed (the others ran regardless).
    pub rollbacks_failed: usize,
}

/// How an experiment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The steady state held before, during and after the method.
    Held,
    /// The method ran, but the steady state did not hold during it, or did not come back after.
    Deviated,
    /// An abort condition held; the experiment stopped early and rolled back.
    Aborted,
    /// The steady state did not hold before the method: nothing ran.
    NotStarted,
    /// Cancelled (Ctrl-C, SIGTERM); rolled back.
    Interrupted,
    /// An action failed; rolled back.
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::Deviated => "deviated",
            Verdict::Aborted => "aborted",
            Verdict::NotStarted => "not_started",
            Verdict::Interrupted => "interrupted",
            Verdict::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Check>,
    /// Every check during the method.
    #[serde(default)]
    pub during: Vec<Check>,
    /// Checks after the method, until the steady state was back or the recovery time ran out.
    #[serde(default)]
    pub after: Vec<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_before: Option<bool>,
    /// None when there was no check during the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_during: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_after: Option<bool>,
    /// From the method's end (rollbacks included) until the steady state held again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_in_ms: Option<u64>,
}

/// One check of the steady state (and, before and during the method, of the abort conditions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub offset_ms: u64,
    pub at_ms: u64,
    pub held: bool,
    pub probes: Vec<Reading>,
    /// The abort conditions' readings (`holds`: the condition is met).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abort: Vec<Reading>,
}

/// A method step: when it was planned and ran, what it did, and its own undo when its
/// duration ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub planned_offset_ms: u64,
    #[serde(flatten)]
    pub run: Activity,
    /// What the action left in place (fault ids and TTL, a pid, a stress id, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
    /// The undo at the end of the step's duration (other undos are among the rollbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Activity>,
}

/// One call: what, when, and how it went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// `method[0]`, `method[0].end`, `undo method[0]`, `rollbacks[1]`.
    pub step: String,
    /// The action (or undo) in words.
    pub action: String,
    pub offset_ms: u64,
    pub at_ms: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbortRecord {
    /// `abort[0]`.
    pub condition: String,
    pub probe: String,
    /// Since when it held, and when the experiment was aborted.
    pub since_offset_ms: u64,
    pub offset_ms: u64,
    pub reading: Reading,
}
