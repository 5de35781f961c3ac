//! Counters and a latency histogram, sharded per worker thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ballast_model::ErrorClass;
use ballast_model::stats::{Counters, Exemplar, Exemplars, Latency, Traffic, new_latency_histogram};
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::auth::Reason;
use crate::worker;

pub struct Meter {
    shards: Box<[Shard]>,
    /// `telemetry.metrics = false`: record nothing (the meter still times, for the access log).
    enabled: bool,
}

/// One worker's share. Aligned to a cache line so workers never write the same line.
#[repr(align(64))]
struct Shard {
    tally: Mutex<Tally>,
    /// Requests started here less those ended here (a request may end on another worker,
    /// so one shard can go negative; the sum cannot).
    in_flight: AtomicI64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    retries: AtomicU64,
    retry_budget_exhausted: AtomicU64,
    rate_limited: AtomicU64,
    rate_limited_shadow: AtomicU64,
    auth_failures: [AtomicU64; Reason::ALL.len()],
    /// Response cache outcomes: hit, miss, stale, and misses whose answer was not stored.
    cache: [AtomicU64; 4],
}

struct Tally {
    requests: u64,
    /// 1xx..5xx (other statuses count as requests only).
    by_status_class: [u64; 5],
    by_error: [u64; ErrorClass::ALL.len()],
    latency: Histogram<u64>,
    exemplars: Exemplars,
}

/// A request being timed; counts as in flight until recorded or dropped.
pub struct Timer<'a> {
    meter: &'a Meter,
    start: Instant,
}

impl Timer<'_> {
    /// Count the finished request: its status, its failure class if the sidecar classified
    /// one, and its latency (from the start to now), which is returned.
    pub fn record(self, status: u16, error: Option<ErrorClass>) -> Duration {
        let elapsed = self.start.elapsed();
        self.meter.record(status, error, elapsed);
        elapsed
    }

    /// Like [`Timer::record`] with a latency measured by the caller (one clock read shared by
    /// several timers started together).
    pub fn record_took(self, status: u16, error: Option<ErrorClass>, took: Duration) {
        self.meter.record(status, error, took);
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        if self.meter.enabled {
            self.meter.shard().in_flight.fetch_sub(1, Relaxed);
        }
    }
}

impl Meter {
    pub fn new(workers: usize) -> Self {
        Self::with_switch(workers, true)
    }

    /// A meter that records only if `enabled`.
    pub fn with_switch(workers: usize, enabled: bool) -> Self {
        let shard = || Shard {
            in_flight: AtomicI64::new(0),
            tally: Mutex::new(Tally {
                requests: 0,
                by_status_class: [0; 5],
                by_error: [0; ErrorClass::ALL.len()],
                latency: new_latency_histogram(),
                exemplars: Exemplars::default(),
            }),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            retry_budget_exhausted: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            rate_limited_shadow: AtomicU64::new(0),
            auth_failures: Default::default(),
            cache: Default::default(),
        };
        let shards = if enabled { workers.max(1) } else { 1 };
        Meter {
            shards: (0..shards).map(|_| shard()).collect(),
            enabled,
        }
    }

    fn shard(&self) -> &Shard {
        &self.shards[worker::index() % self.shards.len()]
    }

    /// Start timing a request.
    pub fn start(&self) -> Timer<'_> {
        self.start_at(Instant::now())
    }

    /// Start timing a request that started at `start`.
    pub fn start_at(&self, start: Instant) -> Timer<'_> {
        if self.enabled {
            self.shard().in_flight.fetch_add(1, Relaxed);
        }
        Timer { meter: self, start }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn record(&self, status: u16, error: Option<ErrorClass>, latency: Duration) {
        if !self.enabled {
            return;
        }
        let mut t = self.shard().tally.lock().unwrap_or_else(|p| p.into_inner());
        t.requests += 1;
        if let Some(n) = (status / 100)
            .checked_sub(1)
            .and_then(|i| t.by_status_class.get_mut(i as usize))
        {
            *n += 1;
        }
        if let Some(e) = error {
            t.by_error[e as usize] += 1;
        }
        t.latency.saturating_record(latency.as_micros().max(1) as u64);
    }

    /// Keep a traced request's id if it is worth a look (see [`Exemplars::offer`]).
    pub fn offer_exemplar(&self, exemplar: Exemplar) {
        if self.enabled {
            self.shard()
                .tally
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .exemplars
                .offer(exemplar);
        }
    }

    /// Body bytes received from the client (`in`) or sent to it (`out`).
    pub fn add_bytes(&self, bytes_in: u64, bytes_out: u64) {
        if !self.enabled {
            return;
        }
        let s = self.shard();
        if bytes_in > 0 {
            s.bytes_in.fetch_add(bytes_in, Relaxed);
        }
        if bytes_out > 0 {
            s.bytes_out.fetch_add(bytes_out, Relaxed);
        }
    }

    /// A retry sent (route meters).
    pub fn count_retry(&self) {
        if self.enabled {
            self.shard().retries.fetch_add(1, Relaxed);
        }
    }

    /// A retry not sent: the route's retry budget was spent.
    pub fn count_retry_budget_exhausted(&self) {
        if self.enabled {
            self.shard().retry_budget_exhausted.fetch_add(1, Relaxed);
        }
    }

    /// A request over the route's rate limit: rejected, or let through in shadow mode.
    pub fn count_rate_limited(&self, shadow: bool) {
        if self.enabled {
            let s = self.shard();
            if shadow {
                &s.rate_limited_shadow
            } else {
                &s.rate_limited
            }
            .fetch_add(1, Relaxed);
        }
    }

    /// A request refused by the route's auth.
    pub fn count_auth_failure(&self, reason: Reason) {
        if self.enabled {
            self.shard().auth_failures[reason as usize].fetch_add(1, Relaxed);
        }
    }

    /// How the response cache answered a request (route meters); `uncacheable` for a miss
    /// whose answer was not stored.
    pub fn count_cache(&self, outcome: crate::policy::cache::Outcome, uncacheable: bool) {
        if self.enabled {
            let cache = &self.shard().cache;
            cache[outcome as usize].fetch_add(1, Relaxed);
            if uncacheable {
                cache[3].fetch_add(1, Relaxed);
            }
        }
    }

    /// All shards merged.
    pub fn traffic(&self) -> Traffic {
        let mut counters = Counters::default();
        let mut in_flight = 0;
        let mut latency = new_latency_histogram();
        let mut by_status_class = [0u64; 5];
        let mut by_error = [0u64; ErrorClass::ALL.len()];
        let mut exemplars = Exemplars::default();
        for s in self.shards.iter() {
            in_flight += s.in_flight.load(Relaxed);
            counters.bytes_in += s.bytes_in.load(Relaxed);
            counters.bytes_out += s.bytes_out.load(Relaxed);
            counters.retries += s.retries.load(Relaxed);
            counters.retry_budget_exhausted += s.retry_budget_exhausted.load(Relaxed);
            counters.rate_limited += s.rate_limited.load(Relaxed);
            counters.rate_limited_shadow += s.rate_limited_shadow.load(Relaxed);
            for (reason, n) in Reason::ALL.iter().zip(&s.auth_failures) {
                let n = n.load(Relaxed);
                if n > 0 {
                    *counters.auth_failures.entry(reason.as_str().to_owned()).or_default() += n;
                }
            }
            counters.cache_hits += s.cache[0].load(Relaxed);
            counters.cache_misses += s.cache[1].load(Relaxed);
            counters.cache_stale += s.cache[2].load(Relaxed);
            counters.cache_uncacheable += s.cache[3].load(Relaxed);
            let t = s.tally.lock().unwrap_or_else(|p| p.into_inner());
            counters.requests += t.requests;
            for (sum, n) in by_status_class.iter_mut().zip(t.by_status_class) {
                *sum += n;
            }
            for (sum, n) in by_error.iter_mut().zip(t.by_error) {
                *sum += n;
            }
            latency.add(&t.latency).expect("same bounds");
            exemplars.merge(&t.exemplars);
        }
        counters.in_flight = u64::try_from(in_flight).unwrap_or(0);
        counters.by_status_class = by_status_class
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("{}xx", i + 1), n))
            .filter(|(_, n)| *n > 0)
            .collect();
        counters.by_error = ErrorClass::ALL
            .into_iter()
            .zip(by_error)
            .filter(|(_, n)| *n > 0)
            .collect();
        Traffic {
            counters,
            latency: Latency(latency),
            exemplars,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_across_shards() {
        let m = Meter::new(2);
        crate::worker::set_index(0);
        m.record(200, None, Duration::from_millis(5));
        crate::worker::set_index(1);
        m.record(503, Some(ErrorClass::ConnectRefused), Duration::from_millis(50));
        m.add_bytes(10, 100);
        m.count_auth_failure(Reason::Expired);
        crate::worker::set_index(0);
        m.count_auth_failure(Reason::Expired);
        m.count_auth_failure(Reason::Forbidden);
        let timer = m.start();
        let t = m.traffic();
        assert_eq!(t.counters.requests, 2);
        assert_eq!(t.counters.in_flight, 1);
        assert_eq!(t.counters.status_class(2), 1);
        assert_eq!(t.counters.status_class(5), 1);
        assert_eq!(t.counters.by_error[&ErrorClass::ConnectRefused], 1);
        assert_eq!((t.counters.bytes_in, t.counters.bytes_out), (10, 100));
        let auth: Vec<(&str, u64)> = t.counters.auth_failures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(auth, [("expired", 2), ("forbidden", 1)]);
        assert_eq!(t.latency.0.len(), 2);
        assert!((t.latency.0.value_at_quantile(1.0) as i64 - 50_000).abs() < 50);
        timer.record(204, None);
        assert_eq!(m.traffic().counters.in_flight, 0);
        assert_eq!(m.traffic().counters.requests, 3);
    }
}
