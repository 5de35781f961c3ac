//! Where the dashboard's data comes from, behind one trait so views never know: live sidecars
//! ([`live`]) or a recorded run ([`replay`]). Both deliver the same [`Feed`]s; the model turns
//! them into what the views show, with the same code for both.

pub mod live;
pub mod replay;

use std::sync::Arc;

use ballast_model::{ActiveFault, Event, FaultSpec, StatsSnapshot};

/// One piece of data, in the order it happened.
#[derive(Clone, Debug)]
pub enum Feed {
    /// A sidecar's cumulative snapshot, scraped at `at_ms`.
    Stats {
        at_ms: u64,
        sidecar: String,
        snapshot: Arc<StatsSnapshot>,
    },
    /// A scrape that failed: the sidecar is shown as unreachable until it answers again.
    Unreachable { at_ms: u64, sidecar: String, error: String },
    /// A timeline event (sidecar events carry the sidecar's name as their source).
    Event(Event),
    /// A sidecar's faults, fresher than its last snapshot (read after a fault action).
    Faults {
        at_ms: u64,
        sidecar: String,
        faults: Vec<ActiveFault>,
    },
    /// How a fault action or a control ended.
    Done { ok: bool, message: String },
    /// Forget every piece of data seen so far (a replay went back in time); the UI stays.
    Reset,
    /// The source's time and state: wall time live, the position in a replay.
    Clock { now_ms: u64, status: SourceStatus },
}

impl Feed {
    /// When it happened, for data; `None` for the rest.
    pub fn at_ms(&self) -> Option<u64> {
        match self {
            Feed::Stats { at_ms, .. } | Feed::Unreachable { at_ms, .. } | Feed::Faults { at_ms, .. } => Some(*at_ms),
            Feed::Event(e) => Some(e.at_ms),
            Feed::Done { .. } | Feed::Reset | Feed::Clock { .. } => None,
        }
    }
}

/// What the header says about the source.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum SourceStatus {
    #[default]
    Live,
    Replay(ReplayStatus),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReplayStatus {
    /// The run folder's name.
    pub name: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub position_ms: u64,
    pub playing: bool,
    pub speed: f64,
}

/// Replay controls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Control {
    TogglePlay,
    Faster,
    Slower,
    /// Move the position by this many milliseconds (negative: back).
    Seek(i64),
    ToStart,
    ToEnd,
}

/// Changes to a live sidecar's faults.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    Add {
        sidecar: String,
        spec: Box<FaultSpec>,
    },
    Remove {
        sidecar: String,
        id: String,
    },
    /// Every fault added at run time on these sidecars (config faults stay).
    Clear {
        sidecars: Vec<String>,
    },
}

/// A source of data for the dashboard.
pub trait Source: Send {
    /// Everything that arrived since the last call, in order, ending with a [`Feed::Clock`].
    /// Never blocks.
    fn poll(&mut self) -> Vec<Feed>;
    /// Replay controls; a live source refuses them with a message.
    fn control(&mut self, control: Control) -> Result<(), String>;
    /// Start a fault action; its outcome comes later as a [`Feed::Done`]. A replay refuses.
    fn fault(&mut self, action: FaultAction) -> Result<(), String>;
}
