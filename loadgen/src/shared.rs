//! What the users of a run share: the profile, the clock, the open model's schedule, the stop
//! signal, the HTTP client and the channel their measurements go to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ballast_model::load::Failure;
use rand::distr::weighted::WeightedIndex;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::profile::{Profile, Transaction};
use crate::schedule::Schedule;

/// One request, measured. Times are microseconds since the run's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub tx: usize,
    /// When it was meant to be sent: its schedule slot (open model), or when it was sent.
    pub intended_us: u64,
    pub start_us: u64,
    pub end_us: u64,
    pub status: Option<u16>,
    pub failure: Option<Failure>,
}

pub(crate) enum Msg {
    Record(Record),
    /// Every user has stopped: nothing more will come.
    Done,
}

pub(crate) struct Shared {
    pub profile: Profile,
    /// The run's time origin.
    pub start: Instant,
    pub seq: AtomicU64,
    pub stop: watch::Sender<bool>,
    /// Open model only.
    pub schedule: Option<Schedule>,
    /// Open model: every transaction of every scenario, drawn by weight for each request.
    pub draw: Option<(WeightedIndex<f64>, Vec<Arc<Transaction>>)>,
    pub records: mpsc::UnboundedSender<Msg>,
    pub in_flight: AtomicU64,
    /// Open model: slots taken from the schedule and not yet recorded (their users may still
    /// be waiting for their time).
    pub pending: AtomicU64,
    /// Users share this client unless the profile asks for cookies.
    pub client: reqwest::Client,
    pub next_user: AtomicUsize,
}

impl Shared {
    pub fn since_start_us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_micros() as u64
    }

    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once the run is told to stop.
    pub async fn stopping(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Sleep until `t`; false if the run was told to stop first.
    pub async fn sleep_until(&self, t: Instant) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(t) => !self.stopped(),
            _ = self.stopping() => false,
        }
    }

    pub fn record(&self, r: Record) {
        let _ = self.records.send(Msg::Record(r));
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// The open model's draw: each transaction's share is its scenario's weight split over the
/// scenario's transactions by their weights.
pub(crate) fn open_draw(profile: &Profile) -> (WeightedIndex<f64>, Vec<Arc<Transaction>>) {
    let mut weights = Vec::new();
    let mut txs = Vec::new();
    for s in &profile.scenarios {
        let total: u64 = s.transactions.iter().map(|t| t.weight).sum();
        for t in &s.transactions {
            weights.push(s.weight as f64 * t.weight as f64 / total.max(1) as f64);
            txs.push(t.clone());
        }
    }
    (
        WeightedIndex::new(&weights).expect("checked profiles have weights above 0"),
        txs,
    )
}
