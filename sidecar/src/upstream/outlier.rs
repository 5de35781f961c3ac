//! Outlier detection per endpoint, with failure accrual.
//!
//! Each try's outcome is reported against the endpoint that took it. An endpoint is ejected
//! after `consecutive_5xx` 5xx answers in a row, `consecutive_gateway_errors` gateway errors in
//! a row (502/503/504, connect failures, resets, timeouts), or a failure share of at least
//! `failure_ratio` over `failure_window` with `min_requests` in it (Envoy's detectors). An
//! ejection lasts `base_ejection` × times ejected (since it last recovered), up to
//! `max_ejection`, plus a random jitter. At most `max_ejection_percent` of the cluster is out
//! at once, but at least one endpoint always may be. When an ejection runs out, the next
//! request picked for the endpoint is its probe and decides (linkerd's failure accrual): a
//! success restores it, a failure ejects it again for longer.
//!
//! Times are milliseconds on tokio's clock since the upstream was made, so tests can pause it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rand::Rng;

use crate::config::Outlier;

/// What one try on an endpoint came to, for outlier detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// A 5xx that is not a gateway error (500, 501, ...).
    ServerError,
    /// 502/503/504 or a failure the sidecar answers with one (connect, reset, timeout).
    GatewayError,
}

/// Why an endpoint was ejected (the event's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Consecutive5xx,
    ConsecutiveGatewayErrors,
    FailureRatio,
    ProbeFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Consecutive5xx => "consecutive-5xx",
            Reason::ConsecutiveGatewayErrors => "consecutive-gateway-errors",
            Reason::FailureRatio => "failure-ratio",
            Reason::ProbeFailed => "probe-failed",
        }
    }
}

/// Whether an endpoint may take a request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    InRotation,
    /// Its ejection has run out: the next request is its probe, if none is under way.
    Probation,
    Ejected,
}

#[derive(Default)]
pub struct OutlierState {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Per-second (successes, failures), for `failure_ratio`.
    window: Mutex<VecDeque<(u64, u32, u32)>>,
    /// Ejected until this time (ms since the upstream's epoch); 0 when in rotation.
    ejected_until: AtomicU64,
    times_ejected: AtomicU32,
    ejections: AtomicU64,
    /// A probe request is under way.
    probing: AtomicBool,
}

impl OutlierState {
    pub fn standing(&self, now_ms: u64) -> Standing {
        match self.ejected_until.load(Relaxed) {
            0 => Standing::InRotation,
            until if now_ms < until => Standing::Ejected,
            _ if self.probing.load(Relaxed) => Standing::Ejected,
            _ => Standing::Probation,
        }
    }

    /// Claim the probe of an endpoint on probation; false if another request has it.
    pub fn claim_probe(&self) -> bool {
        self.probing.compare_exchange(false, true, Relaxed, Relaxed).is_ok()
    }

    /// A probe ended without a verdict: the next request may probe.
    pub fn restore_probe_slot(&self) {
        self.probing.store(false, Relaxed);
    }

    pub fn is_out(&self) -> bool {
        self.ejected_until.load(Relaxed) != 0
    }

    pub fn ejected_until(&self) -> Option<u64> {
        Some(self.ejected_until.load(Relaxed)).filter(|&u| u != 0)
    }

    pub fn times_ejected(&self) -> u32 {
        self.times_ejected.load(Relaxed)
    }

    pub fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }

    /// Count one try's outcome; returns the reason to eject, if a detector fired.
    pub fn record(&self, cfg: &Outlier, verdict: Verdict, now_ms: u64) -> Option<Reason> {
        let failed = verdict != Verdict::Success;
        let (n5, ngw) = match verdict {
            Verdict::Success => {
                self.consecutive_5xx.store(0, Relaxed);
                self.consecutive_gateway.store(0, Relaxed);
                (0, 0)
            }
            Verdict::ServerError => {
                self.consecutive_gateway.store(0, Relaxed);
                (self.consecutive_5xx.fetch_add(1, Relaxed) + 1, 0)
            }
            Verdict::GatewayError => (
                self.consecutive_5xx.fetch_add(1, Relaxed) + 1,
                self.consecutive_gateway.fetch_add(1, Relaxed) + 1,
            ),
        };
        let ratio = cfg.failure_ratio.and_then(|threshold| {
            let (ok, bad) = self.count_window(cfg.failure_window, now_ms, failed);
            let total = ok + bad;
            (failed && total >= cfg.min_requests.max(1) && f64::from(bad) / f64::from(total) >= threshold).then_some(())
        });
        if cfg.consecutive_gateway_errors.is_some_and(|n| ngw >= n) {
            Some(Reason::ConsecutiveGatewayErrors)
        } else if cfg.consecutive_5xx.is_some_and(|n| n5 >= n) {
            Some(Reason::Consecutive5xx)
        } else {
            ratio.map(|()| Reason::FailureRatio)
        }
    }

    /// Add an outcome to the per-second window and return its (successes, failures).
    fn count_window(&self, window: Duration, now_ms: u64, failed: bool) -> (u32, u32) {
        let second = now_ms / 1000;
        let oldest = second.saturating_sub(window.as_secs().max(1) - 1);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        while w.front().is_some_and(|&(s, _, _)| s < oldest) {
            w.pop_front();
        }
        match w.back_mut() {
            Some((s, ok, bad)) if *s == second => *if failed { bad } else { ok } += 1,
            _ => w.push_back((second, u32::from(!failed), u32::from(failed))),
        }
        w.iter().fold((0, 0), |(ok, bad), &(_, o, b)| (ok + o, bad + b))
    }

    /// Take the endpoint out until `now + base × times ejected` (capped, jittered); returns
    /// that time. `allowed` is false when the cluster's ejection cap is reached.
    pub fn eject(&self, cfg: &Outlier, now_ms: u64, rng: &mut impl Rng) -> u64 {
        let times = self.times_ejected.fetch_add(1, Relaxed) + 1;
        let mut penalty = cfg.base_ejection.saturating_mul(times).min(cfg.max_ejection);
        if !cfg.jitter.is_zero() {
            penalty += Duration::from_secs_f64(rng.random_range(0.0..cfg.jitter.as_secs_f64()));
        }
        let until = now_ms + (penalty.as_millis() as u64).max(1);
        self.ejected_until.store(until, Relaxed);
        self.ejections.fetch_add(1, Relaxed);
        self.consecutive_5xx.store(0, Relaxed);
        self.consecutive_gateway.store(0, Relaxed);
        self.window.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.probing.store(false, Relaxed);
        until
    }

    /// Back in rotation (a successful probe or a passing health check).
    pub fn restore(&self) -> bool {
        self.times_ejected.store(0, Relaxed);
        self.probing.store(false, Relaxed);
        self.ejected_until.swap(0, Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Outlier {
        Outlier {
            consecutive_5xx: Some(5),
            consecutive_gateway_errors: Some(3),
            failure_ratio: None,
            failure_window: Duration::from_secs(10),
            min_requests: 20,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            jitter: Duration::ZERO,
            max_ejection_percent: 10,
        }
    }

    #[test]
    fn consecutive_detectors_fire_and_reset_on_success() {
        let (s, c) = (OutlierState::default(), cfg());
        assert_eq!(s.record(&c, Verdict::GatewayError, 0), None);
        assert_eq!(s.record(&c, Verdict::GatewayError, 0), None);
        assert_eq!(s.record(&c, Verdict::Success, 0), None);
        for _ in 0..2 {
            assert_eq!(s.record(&c, Verdict::GatewayError, 0), None);
        }
        assert_eq!(
            s.record(&c, Verdict::GatewayError, 0),
            Some(Reason::ConsecutiveGatewayErrors)
        );
        let s = OutlierState::default();
        for _ in 0..4 {
            assert_eq!(s.record(&c, Verdict::ServerError, 0), None);
        }
        assert_eq!(s.record(&c, Verdict::ServerError, 0), Some(Reason::Consecutive5xx));
    }

    #[test]
    fn failure_ratio_needs_its_volume() {
        let c = Outlier {
            consecutive_5xx: None,
            consecutive_gateway_errors: None,
            failure_ratio: Some(0.5),
            ..cfg()
        };
        let s = OutlierState::default();
        for i in 0..9 {
            s.record(&c, Verdict::Success, i * 100);
            assert_eq!(s.record(&c, Verdict::ServerError, i * 100), None, "under min_requests");
        }
        s.record(&c, Verdict::Success, 950);
        assert_eq!(s.record(&c, Verdict::ServerError, 990), Some(Reason::FailureRatio));
        // Outside the window, old outcomes no longer count.
        assert_eq!(s.record(&c, Verdict::ServerError, 60_000), None);
    }

    #[test]
    fn ejections_grow_with_each_time_and_are_capped_then_reset_on_restore() {
        let (s, c, mut rng) = (OutlierState::default(), cfg(), rand::rng());
        assert_eq!(s.eject(&c, 1_000, &mut rng), 31_000);
        assert_eq!(s.standing(30_999), Standing::Ejected);
        assert_eq!(s.standing(31_000), Standing::Probation);
        assert!(s.claim_probe());
        assert_eq!(s.standing(31_000), Standing::Ejected, "one probe at a time");
        assert!(!s.claim_probe());
        // The probe failed: out again, for twice as long.
        assert_eq!(s.eject(&c, 31_000, &mut rng), 91_000);
        for _ in 0..20 {
            s.eject(&c, 0, &mut rng);
        }
        assert_eq!(s.ejected_until(), Some(300_000), "capped at max_ejection");
        assert!(s.restore());
        assert_eq!((s.standing(0), s.times_ejected()), (Standing::InRotation, 0));
        assert_eq!(s.ejections(), 22);
    }
}
