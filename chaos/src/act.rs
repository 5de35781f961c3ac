//! [`Act`]: how an experiment changes the system. The live actor ([`crate::live::LiveAct`])
//! calls the sidecars' admin APIs, signals processes, stresses ballast's own process and
//! changes demo upstreams; tests use [`crate::doubles::Recorder`]; the scenario runner uses
//! the live one with the processes it spawned registered by name.

use ballast_model::FaultSpec;
use futures_util::future::BoxFuture;

use crate::action::{FaultRef, Signal, Stress, StressId};
use crate::spec::ProcessRef;

/// Why an action (or its undo) failed.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// A sidecar's admin API refused or could not be reached.
    #[error("sidecar: {0}")]
    Sidecar(String),
    /// A process could not be found, signalled or restarted.
    #[error("process: {0}")]
    Process(String),
    /// A demo upstream's control API refused or could not be reached.
    #[error("demo upstream: {0}")]
    DemoUpstream(String),
    #[error("stress: {0}")]
    Stress(String),
    /// No answer in time; what it did, if anything, is unknown (a fault's TTL still bounds it).
    #[error("{0}: no answer within {1:?}")]
    TimedOut(String, std::time::Duration),
}

/// Everything an experiment may do. Each call is one attempt: the experiment decides what
/// happens on failure (its rollbacks).
pub trait Act: Send + Sync {
    /// Put the fault in place (on every sidecar); where it went.
    fn add_fault<'a>(&'a self, spec: &'a FaultSpec) -> BoxFuture<'a, Result<Vec<FaultRef>, ActError>>;
    /// Remove a fault; one that is already gone (expired) is not an error.
    fn remove_fault<'a>(&'a self, fault: &'a FaultRef) -> BoxFuture<'a, Result<(), ActError>>;
    /// Remove every fault added through the admin APIs; the ids removed.
    fn clear_faults(&self) -> BoxFuture<'_, Result<Vec<String>, ActError>>;
    /// Send a signal; the pid it went to.
    fn signal<'a>(&'a self, process: &'a ProcessRef, signal: Signal) -> BoxFuture<'a, Result<u32, ActError>>;
    /// Restart a process the scenario spawned; its new pid.
    fn restart<'a>(&'a self, process: &'a ProcessRef) -> BoxFuture<'a, Result<u32, ActError>>;
    fn start_stress(&self, stress: Stress) -> BoxFuture<'_, Result<StressId, ActError>>;
    fn end_stress(&self, id: StressId) -> BoxFuture<'_, Result<(), ActError>>;
    /// Set a demo upstream's behaviour for `path`; the path's own behaviour before, if any.
    fn set_behaviour<'a>(
        &'a self,
        upstream: &'a str,
        path: &'a str,
        behaviour: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, ActError>>;
    /// Put `previous` back for `path`, or remove the path's behaviour when it had none.
    fn restore_behaviour<'a>(
        &'a self,
        upstream: &'a str,
        path: &'a str,
        previous: Option<&'a serde_json::Value>,
    ) -> BoxFuture<'a, Result<(), ActError>>;
    /// Back to the demo upstream's start-up behaviours.
    fn reset_behaviours<'a>(&'a self, upstream: &'a str) -> BoxFuture<'a, Result<(), ActError>>;
}
