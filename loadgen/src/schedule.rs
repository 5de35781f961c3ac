//! The open model's schedule: when each request is meant to be sent.
//!
//! The rate over time is piecewise linear (the stages). Request `k` is due when the number of
//! arrivals the rate has produced since the start reaches `k`, so arrivals are evenly spaced
//! at a constant rate (as wrk2's `-R`) and thin out or crowd in along a ramp. Users of the pool
//! take the next request with one atomic increment; its intended time never moves, however
//! late it is sent, and latency is counted from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::shape::Stage;

#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    segments: Vec<Segment>,
    total: u64,
    next: AtomicU64,
}

/// A stage as the schedule sees it: rate from `r0` to `r1` over `secs`, starting at `at`
/// seconds, with `before` arrivals before it.
#[derive(Debug, Clone, Copy)]
struct Segment {
    at: f64,
    secs: f64,
    r0: f64,
    r1: f64,
    before: f64,
}

impl Segment {
    fn arrivals(&self) -> f64 {
        (self.r0 + self.r1) / 2.0 * self.secs
    }

    /// Seconds into the segment at which `n` arrivals of it have happened.
    fn time_of(&self, n: f64) -> f64 {
        let a = (self.r1 - self.r0) / self.secs;
        // Root of a/2 τ² + r0 τ - n = 0, written without cancellation (a may be 0 or negative).
        2.0 * n / (self.r0 + (self.r0 * self.r0 + 2.0 * a * n).max(0.0).sqrt())
    }
}

impl Schedule {
    /// A schedule starting at `start`; at most `limit` requests.
    pub fn new(stages: &[Stage], limit: Option<u64>, start: Instant) -> Schedule {
        let mut segments = Vec::new();
        let (mut at, mut previous, mut before) = (0.0, 0.0, 0.0);
        for s in stages {
            let secs = s.duration.as_secs_f64();
            let r0 = if s.ramp { previous } else { s.target };
            let seg = Segment {
                at,
                secs,
                r0,
                r1: s.target,
                before,
            };
            if secs > 0.0 {
                before += seg.arrivals();
                segments.push(seg);
            }
            at += secs;
            previous = s.target;
        }
        // Arrivals exactly at the end belong to the next run, not this one.
        let mut total = before.ceil() as u64;
        if (before - before.round()).abs() < 1e-9 {
            total = before.round() as u64;
        }
        if let Some(limit) = limit {
            total = total.min(limit);
        }
        Schedule {
            start,
            segments,
            total,
            next: AtomicU64::new(0),
        }
    }

    /// Requests in the whole schedule.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The next request: its number and when it is due; `None` once all are taken.
    pub fn next(&self) -> Option<(u64, Instant)> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        (k < self.total).then(|| (k, self.start + self.offset(k)))
    }

    /// Requests not taken yet.
    pub fn remaining(&self) -> u64 {
        self.total.saturating_sub(self.next.load(Ordering::Relaxed))
    }

    /// When request `k` is due, from the start.
    pub fn offset(&self, k: u64) -> Duration {
        let n = k as f64;
        let i = self.segments.partition_point(|s| s.before + s.arrivals() <= n);
        let Some(seg) = self.segments.get(i.min(self.segments.len().saturating_sub(1))) else {
            return Duration::ZERO;
        };
        let t = seg.at + seg.time_of((n - seg.before).max(0.0)).min(seg.secs);
        Duration::from_secs_f64(t.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(target: f64, secs: u64, ramp: bool) -> Stage {
        Stage {
            target,
            duration: Duration::from_secs(secs),
            ramp,
        }
    }

    #[test]
    fn a_constant_rate_spaces_requests_evenly() {
        let s = Schedule::new(&[stage(500.0, 20, false)], None, Instant::now());
        assert_eq!(s.total(), 10_000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(2));
        assert_eq!(s.offset(9_999), Duration::from_micros(19_998_000));
        assert_eq!(
            Schedule::new(&[stage(500.0, 20, false)], Some(7), Instant::now()).total(),
            7
        );
    }

    #[test]
    fn a_ramp_crowds_requests_towards_its_top() {
        // 0 -> 100/s over 10 s: 500 arrivals, n(t) = 5 t², so t(n) = sqrt(n / 5).
        let s = Schedule::new(&[stage(100.0, 10, true), stage(100.0, 1, false)], None, Instant::now());
        assert_eq!(s.total(), 600);
        let t = |k| s.offset(k).as_secs_f64();
        assert!((t(125) - 5.0).abs() < 1e-6, "{}", t(125));
        assert!((t(500) - 10.0).abs() < 1e-6);
        assert!((t(550) - 10.5).abs() < 1e-6);
        // A ramp down mirrors it.
        let down = Schedule::new(&[stage(100.0, 1, false), stage(0.0, 10, true)], None, Instant::now());
        assert_eq!(down.total(), 600);
        assert!((down.offset(100 + 375).as_secs_f64() - 6.0).abs() < 1e-6);
    }

    #[test]
    fn requests_are_handed_out_once() {
        let s = Schedule::new(&[stage(10.0, 1, false)], None, Instant::now());
        let taken: Vec<u64> = std::iter::from_fn(|| s.next().map(|(k, _)| k)).collect();
        assert_eq!(taken, (0..10).collect::<Vec<_>>());
        assert_eq!(s.remaining(), 0);
    }
}
