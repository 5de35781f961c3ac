//! The state of one alert (an SLO's severity): inactive, pending, firing, resolved, with the
//! time of each change. A condition must hold for `for_ms` (0: at once) before it fires, as a
//! Prometheus rule's `for`; an alert that stops holding while pending goes back to inactive,
//! while firing it resolves.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AlertState {
    Inactive,
    Pending { since_ms: u64 },
    Firing { since_ms: u64 },
    Resolved { at_ms: u64, fired_at_ms: u64 },
}

/// What a step changed, for events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Fired,
    Resolved,
}

#[derive(Clone, Debug)]
pub struct Alert {
    pub state: AlertState,
    for_ms: u64,
}

impl Alert {
    pub fn new(for_ms: u64) -> Self {
        Alert {
            state: AlertState::Inactive,
            for_ms,
        }
    }

    /// Whether the condition holds at `now_ms`; returns what changed.
    pub fn step(&mut self, holds: bool, now_ms: u64) -> Option<Change> {
        use AlertState::*;
        let (next, change) = match (self.state, holds) {
            (Inactive | Resolved { .. }, true) if self.for_ms == 0 => {
                (Firing { since_ms: now_ms }, Some(Change::Fired))
            }
            (Inactive | Resolved { .. }, true) => (Pending { since_ms: now_ms }, None),
            (Pending { since_ms }, true) if now_ms - since_ms >= self.for_ms => {
                (Firing { since_ms: now_ms }, Some(Change::Fired))
            }
            (Pending { .. }, false) => (Inactive, None),
            (Firing { since_ms }, false) => (
                Resolved {
                    at_ms: now_ms,
                    fired_at_ms: since_ms,
                },
                Some(Change::Resolved),
            ),
            (state, _) => (state, None),
        };
        self.state = next;
        change
    }

    pub fn firing(&self) -> bool {
        matches!(self.state, AlertState::Firing { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_then_firing_then_resolved() {
        let mut a = Alert::new(60_000);
        assert_eq!(a.step(true, 0), None);
        assert_eq!(a.state, AlertState::Pending { since_ms: 0 });
        assert_eq!(a.step(true, 30_000), None);
        assert_eq!(a.step(true, 60_000), Some(Change::Fired));
        assert_eq!(a.step(true, 90_000), None);
        assert_eq!(a.step(false, 120_000), Some(Change::Resolved));
        assert_eq!(
            a.state,
            AlertState::Resolved {
                at_ms: 120_000,
                fired_at_ms: 60_000
            }
        );
        // A blip shorter than `for` never fires.
        assert_eq!(a.step(true, 130_000), None);
        assert_eq!(a.step(false, 140_000), None);
        assert_eq!(a.state, AlertState::Inactive);
        let mut now = Alert::new(0);
        assert_eq!(now.step(true, 5), Some(Change::Fired));
    }
}
