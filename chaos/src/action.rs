//! What an experiment does to the system ([`Action`]), and what undoing it takes ([`Undo`]).
//! Both read as words in the plan, the journal and the events.

use std::fmt;

use ballast_model::FaultSpec;
use ballast_model::units::ByteSize;
use serde::Serialize;

use crate::spec::ProcessRef;

/// One action, checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A fault or toxic on every sidecar; its TTL is set when it is put in place.
    Fault(Box<FaultSpec>),
    /// Send a signal: kill (SIGKILL, or the one asked for), stop (SIGSTOP), continue (SIGCONT).
    Signal { process: ProcessRef, signal: Signal },
    /// Restart a process the scenario spawned.
    Restart(ProcessRef),
    /// Load in ballast's own process.
    Stress(Stress),
    /// Set a demo upstream's behaviour for a path prefix (JSON, as its control API takes it).
    Behaviour {
        upstream: String,
        path: String,
        behaviour: serde_json::Value,
    },
    /// Put a demo upstream back to its start-up behaviours (rollbacks).
    ResetBehaviours { upstream: String },
    /// Remove every fault added through the sidecars' admin APIs (rollbacks).
    ClearFaults,
    /// Nothing, for the step's length.
    Pause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stress {
    /// Threads spinning on a core each.
    Cpu { threads: usize },
    /// Bytes allocated and written to, so they are resident.
    Memory { bytes: u64 },
}

/// The signals an experiment sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Signal {
    Kill,
    Term,
    Int,
    Hup,
    Quit,
    Stop,
    Cont,
}

impl Signal {
    /// Those `kill` may send, by name.
    pub const FOR_KILL: [Signal; 5] = [Signal::Kill, Signal::Term, Signal::Int, Signal::Hup, Signal::Quit];

    pub fn name(self) -> &'static str {
        match self {
            Signal::Kill => "SIGKILL",
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Hup => "SIGHUP",
            Signal::Quit => "SIGQUIT",
            Signal::Stop => "SIGSTOP",
            Signal::Cont => "SIGCONT",
        }
    }

    pub fn number(self) -> i32 {
        match self {
            Signal::Kill => libc::SIGKILL,
            Signal::Term => libc::SIGTERM,
            Signal::Int => libc::SIGINT,
            Signal::Hup => libc::SIGHUP,
            Signal::Quit => libc::SIGQUIT,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }

    /// `"SIGTERM"`, `"TERM"` or `"term"`: one of [`Signal::FOR_KILL`].
    pub fn parse_for_kill(text: &str) -> Option<Signal> {
        let upper = text.trim().to_ascii_uppercase();
        let name = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        Signal::FOR_KILL.into_iter().find(|s| s.name() == name)
    }
}

/// A fault put in place on one sidecar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultRef {
    /// The sidecar's admin API.
    pub admin: String,
    pub id: String,
}

/// A stress running in ballast's process, as the actor numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct StressId(pub u64);

/// What undoing an action takes; kept from the moment the action succeeded until it is undone,
/// at the end of its duration or among the rollbacks.
#[derive(Clone, Debug, PartialEq)]
pub enum Undo {
    RemoveFaults(Vec<FaultRef>),
    Continue(ProcessRef),
    Restart(ProcessRef),
    EndStress(StressId),
    RestoreBehaviour {
        upstream: String,
        path: String,
        /// The path's own behaviour before, if it had one (else the path is removed).
        previous: Option<serde_json::Value>,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Fault(spec) => {
                write!(f, "fault {}", spec.kind)?;
                for p in fault_params(spec) {
                    write!(f, " {p}")?;
                }
                Ok(())
            }
            Action::Signal { process, signal } => {
                let verb = match signal {
                    Signal::Stop => "stop",
                    Signal::Cont => "continue",
                    _ => "kill",
                };
                write!(f, "{verb} {process} ({})", signal.name())
            }
            Action::Restart(process) => write!(f, "restart {process}"),
            Action::Stress(Stress::Cpu { threads }) => write!(f, "CPU stress: {threads} busy thread(s)"),
            Action::Stress(Stress::Memory { bytes }) => write!(f, "memory stress: {} held", ByteSize(*bytes)),
            Action::Behaviour {
                upstream,
                path,
                behaviour,
            } => write!(f, "demo upstream {upstream}: {path} behaves {behaviour}"),
            Action::ResetBehaviours { upstream } => write!(f, "demo upstream {upstream}: reset its behaviours"),
            Action::ClearFaults => f.write_str("clear the faults added through the admin APIs"),
            Action::Pause => f.write_str("pause"),
        }
    }
}

impl fmt::Display for Undo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undo::RemoveFaults(faults) => {
                let list: Vec<String> = faults.iter().map(|r| format!("{} on {}", r.id, r.admin)).collect();
                write!(f, "remove fault {}", list.join(", "))
            }
            Undo::Continue(process) => write!(f, "continue {process} (SIGCONT)"),
            Undo::Restart(process) => write!(f, "restart {process}"),
            Undo::EndStress(id) => write!(f, "end stress #{}", id.0),
            Undo::RestoreBehaviour {
                upstream,
                path,
                previous: Some(_),
            } => write!(f, "demo upstream {upstream}: restore {path}"),
            Undo::RestoreBehaviour { upstream, path, .. } => {
                write!(f, "demo upstream {upstream}: remove the behaviour of {path}")
            }
        }
    }
}

/// A fault's parameters as `name=value` (every field but kind, id and ttl), in field order.
pub fn fault_params(spec: &FaultSpec) -> Vec<String> {
    let value = serde_json::to_value(spec).unwrap_or_default();
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "kind" | "ttl"))
        .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_for_kill_parse_in_any_spelling() {
        assert_eq!(Signal::parse_for_kill("SIGTERM"), Some(Signal::Term));
        assert_eq!(Signal::parse_for_kill("term"), Some(Signal::Term));
        assert_eq!(Signal::parse_for_kill("KILL"), Some(Signal::Kill));
        assert_eq!(Signal::parse_for_kill("SIGSTOP"), None, "stop has its own action");
        assert_eq!(Signal::Stop.number(), libc::SIGSTOP);
    }

    #[test]
    fn actions_read_as_words() {
        let spec: FaultSpec =
            toml::from_str("kind = \"abort\"\nstatus = 503\npercent = 20.0\nroute = \"checkout\"").unwrap();
        assert_eq!(
            Action::Fault(Box::new(spec)).to_string(),
            "fault abort percent=20.0 route=checkout status=503"
        );
        let stop = Action::Signal {
            process: ProcessRef::Name("b".into()),
            signal: Signal::Stop,
        };
        assert_eq!(stop.to_string(), "stop process \"b\" (SIGSTOP)");
        assert_eq!(
            Action::Stress(Stress::Memory { bytes: 64 << 20 }).to_string(),
            "memory stress: 64MiB held"
        );
    }
}
