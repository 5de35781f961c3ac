//! The collector: one task that takes every measured request, counts it into HDR tallies
//! (overall, per transaction, per second), writes the per-request log, closes each second
//! into a [`Second`] for the live feed and checks the thresholds that may abort the run.
//!
//! A request belongs to the second it completed in. A second is closed a little after it
//! ends (so requests still on their way through the channel land in it); one that arrives
//! later still counts, in the oldest open second.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::sync::Arc;
use std::time::Duration;

use ballast_model::load::{Second, Tally};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::shared::{Msg, Record, Shared};
use crate::threshold::Threshold;

/// How long after its end a second is closed.
const GRACE: Duration = Duration::from_millis(200);

pub(crate) struct Collector {
    shared: Arc<Shared>,
    start_unix_us: u64,
    names: Vec<String>,
    pub all: Tally,
    pub per_tx: Vec<Tally>,
    open: BTreeMap<u64, (Tally, BTreeMap<usize, Tally>)>,
    next_to_close: u64,
    pub timeline: Vec<Second>,
    pub last_end_us: u64,
    feed: Option<mpsc::Sender<Second>>,
    log: Option<csv::Writer<BufWriter<File>>>,
    log_error: Option<std::io::Error>,
    aborts: Vec<Threshold>,
    abort: Option<mpsc::UnboundedSender<String>>,
}

/// One line of `requests.csv`.
#[derive(serde::Serialize)]
struct LogRow<'a> {
    intended_us: u64,
    start_us: u64,
    latency_us: u64,
    status: Option<u16>,
    transaction: &'a str,
    error: Option<&'static str>,
}

impl Collector {
    pub fn new(
        shared: Arc<Shared>,
        start_unix_us: u64,
        feed: Option<mpsc::Sender<Second>>,
        log: Option<csv::Writer<BufWriter<File>>>,
        abort: mpsc::UnboundedSender<String>,
    ) -> Self {
        let names: Vec<String> = shared.profile.transactions.iter().map(|t| t.name.clone()).collect();
        let aborts = shared
            .profile
            .thresholds
            .iter()
            .filter(|t| t.abort_after.is_some())
            .cloned()
            .collect();
        Collector {
            per_tx: vec![Tally::default(); names.len()],
            names,
            shared,
            start_unix_us,
            all: Tally::default(),
            open: BTreeMap::new(),
            next_to_close: 0,
            timeline: Vec::new(),
            last_end_us: 0,
            feed,
            log,
            log_error: None,
            aborts,
            abort: Some(abort),
        }
    }

    /// Take records until the run says it is done, closing seconds as they pass.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) -> Self {
        let start = self.shared.start;
        let mut tick = tokio::time::interval_at(start + Duration::from_secs(1) + GRACE, Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Record(r)) => self.add(r),
                    Some(Msg::Done) | None => break,
                },
                _ = tick.tick() => {
                    let now = Instant::now().saturating_duration_since(start).saturating_sub(GRACE);
                    self.close_before(now.as_secs());
                }
            }
        }
        // Close everything up to the last answer (or the time the run took).
        let elapsed = Instant::now().saturating_duration_since(start).as_micros() as u64;
        let last = self.last_end_us.max(elapsed.min(self.last_end_us + 1_000_000)) / 1_000_000;
        self.close_before(last + 1);
        if let Some(log) = self.log.as_mut()
            && let Err(e) = log.flush()
        {
            self.log_error.get_or_insert(e);
        }
        self
    }

    fn add(&mut self, r: Record) {
        let latency = r.end_us.saturating_sub(r.intended_us);
        let second = (r.end_us / 1_000_000).max(self.next_to_close);
        let (all, txs) = self.open.entry(second).or_default();
        all.record(latency, r.status, r.failure);
        txs.entry(r.tx).or_default().record(latency, r.status, r.failure);
        self.all.record(latency, r.status, r.failure);
        self.per_tx[r.tx].record(latency, r.status, r.failure);
        self.last_end_us = self.last_end_us.max(r.end_us);
        if let Some(log) = self.log.as_mut()
            && self.log_error.is_none()
        {
            let row = LogRow {
                intended_us: self.start_unix_us + r.intended_us,
                start_us: self.start_unix_us + r.start_us,
                latency_us: latency,
                status: r.status,
                transaction: &self.names[r.tx],
                error: r.failure.map(|f| f.as_str()),
            };
            if let Err(e) = log.serialize(row) {
                self.log_error = Some(std::io::Error::other(e));
            }
        }
    }

    /// Close every second before `end` (seconds since the start).
    fn close_before(&mut self, end: u64) {
        while self.next_to_close < end {
            let s = self.next_to_close;
            let (all, txs) = self.open.remove(&s).unwrap_or_default();
            let second = Second {
                second: s,
                at_ms: self.start_unix_us / 1000 + s * 1000,
                target: self.shared.profile.shape.target_at(s as f64 + 0.5),
                in_flight: self.shared.in_flight(),
                all,
                transactions: txs.into_iter().map(|(i, t)| (self.names[i].clone(), t)).collect(),
            };
            if let Some(feed) = &self.feed
                && let Err(mpsc::error::TrySendError::Closed(_)) = feed.try_send(second.clone())
            {
                // Nobody listens any more; a full channel only skips this second.
                self.feed = None;
            }
            self.timeline.push(second);
            self.next_to_close += 1;
            self.check_aborts();
        }
    }

    /// A threshold with `abort_after` that fails over that last stretch ends the run.
    fn check_aborts(&mut self) {
        let Some(abort) = &self.abort else { return };
        for t in &self.aborts {
            let window = t.abort_after.map_or(1, |d| d.as_secs().max(1)) as usize;
            if self.timeline.len() < window {
                continue;
            }
            let mut all = Tally::default();
            let mut txs: BTreeMap<String, Tally> = BTreeMap::new();
            for s in &self.timeline[self.timeline.len() - window..] {
                all.add(&s.all);
                for (name, tally) in &s.transactions {
                    txs.entry(name.clone()).or_default().add(tally);
                }
            }
            // No traffic in the window is no evidence either way.
            if t.observe(&all, &txs, window as f64).is_some_and(|v| !t.holds(v)) {
                let _ = abort.send(t.expr.clone());
                self.abort = None;
                return;
            }
        }
    }

    /// Why the per-request log could not be written, if it could not.
    pub fn log_error(&mut self) -> Option<std::io::Error> {
        self.log_error.take()
    }
}
