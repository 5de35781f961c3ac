//! Concurrency limits and load shedding per route: a static `max` of requests in flight, or an
//! adaptive limit. Over the limit a request is shed at once (503 `shed`), never queued.
//!
//! The adaptive limit follows Envoy's adaptive concurrency filter (a gradient controller):
//! the route's ideal latency (`min_rtt`) is measured with the limit pinned at `min` for
//! `min_rtt_requests` requests, again every `min_rtt_interval`; in between, every
//! `sample_window` the median latency of the window (`sample_rtt`) moves the limit:
//! `gradient = clamp((min_rtt + buffer) / sample_rtt, 0.5, 2)` with `buffer` = 25 % of
//! `min_rtt`, and `limit = gradient × limit + √limit`, kept within `min`..=`max`. Latency is
//! measured from admission to the response head.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{AdaptiveLimit, ConcurrencyPolicy};

pub struct ConcurrencyLimit {
    policy: ConcurrencyPolicy,
    in_flight: AtomicUsize,
    /// The current limit (the static max, or the adaptive controller's).
    limit: AtomicUsize,
    adaptive: Option<Mutex<Controller>>,
}

/// Holds a place under the limit; its drop (with [`Permit::done`] first for the latency)
/// gives it back.
pub struct Permit {
    owner: Arc<ConcurrencyLimit>,
    admitted: Instant,
}

impl Permit {
    /// The response head arrived: feed its latency to the adaptive controller.
    pub fn done(self) {
        if let Some(c) = &self.owner.adaptive {
            let limit = c
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sample(self.admitted.elapsed(), Instant::now());
            self.owner.limit.store(limit, Ordering::Relaxed);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.owner.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConcurrencyLimit {
    pub fn new(policy: ConcurrencyPolicy) -> Arc<Self> {
        let (limit, adaptive) = match &policy {
            ConcurrencyPolicy::Static { max } => (*max, None),
            ConcurrencyPolicy::Adaptive(a) => (a.min, Some(Mutex::new(Controller::new(a.clone(), Instant::now())))),
        };
        Arc::new(ConcurrencyLimit {
            policy,
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
            adaptive,
        })
    }

    pub fn policy(&self) -> &ConcurrencyPolicy {
        &self.policy
    }

    /// A place under the limit, or `None`: shed.
    pub fn admit(self: &Arc<Self>) -> Option<Permit> {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        if before >= self.limit.load(Ordering::Relaxed) {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Permit {
            owner: self.clone(),
            admitted: Instant::now(),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }
}

/// Envoy's gradient controller (see the module doc).
struct Controller {
    cfg: AdaptiveLimit,
    limit: f64,
    min_rtt: Option<Duration>,
    /// Measuring `min_rtt` (the limit pinned at `min`) until enough samples.
    measuring: bool,
    samples: Vec<Duration>,
    window_start: Instant,
    next_min_rtt: Instant,
}

impl Controller {
    fn new(cfg: AdaptiveLimit, now: Instant) -> Self {
        Controller {
            limit: cfg.min as f64,
            min_rtt: None,
            measuring: true,
            samples: Vec::new(),
            window_start: now,
            next_min_rtt: now,
            cfg,
        }
    }

    /// One latency; returns the limit to enforce now.
    fn sample(&mut self, rtt: Duration, now: Instant) -> usize {
        if self.samples.len() < 10_000 {
            self.samples.push(rtt);
        }
        if self.measuring {
            if self.samples.len() >= self.cfg.min_rtt_requests {
                self.min_rtt = Some(median(&mut self.samples));
                self.samples.clear();
                self.measuring = false;
                self.window_start = now;
                self.next_min_rtt = now + self.cfg.min_rtt_interval;
            }
            return self.cfg.min;
        }
        if now.duration_since(self.window_start) < self.cfg.sample_window {
            return self.limit.round() as usize;
        }
        let min_rtt = self.min_rtt.expect("measured before sampling");
        let sample_rtt = median(&mut self.samples).max(Duration::from_micros(1));
        let buffer = min_rtt / 4;
        let gradient = ((min_rtt + buffer).as_secs_f64() / sample_rtt.as_secs_f64()).clamp(0.5, 2.0);
        self.limit = (gradient * self.limit + self.limit.sqrt()).clamp(self.cfg.min as f64, self.cfg.max as f64);
        self.samples.clear();
        self.window_start = now;
        if now >= self.next_min_rtt {
            // Measure the ideal latency again, with the route nearly idle.
            self.measuring = true;
            return self.cfg.min;
        }
        self.limit.round() as usize
    }
}

fn median(samples: &mut [Duration]) -> Duration {
    let mid = samples.len() / 2;
    *samples.select_nth_unstable(mid).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive() -> AdaptiveLimit {
        AdaptiveLimit {
            min: 3,
            max: 1000,
            sample_window: Duration::from_millis(100),
            min_rtt_requests: 50,
            min_rtt_interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_static_limit_sheds_above_its_max() {
        let l = ConcurrencyLimit::new(ConcurrencyPolicy::Static { max: 2 });
        let (a, b) = (l.admit().unwrap(), l.admit().unwrap());
        assert!(l.admit().is_none());
        drop(a);
        assert!(l.admit().is_some());
        drop(b);
    }

    /// A service with `capacity` parallel servers and 10 ms service time: latency stays at
    /// 10 ms up to `capacity` in flight and grows in proportion beyond it.
    fn latency_at(in_flight: usize, capacity: usize) -> Duration {
        let queued = in_flight.saturating_sub(capacity) as f64 / capacity as f64;
        Duration::from_secs_f64(0.010 * (1.0 + queued))
    }

    #[tokio::test(start_paused = true)]
    async fn the_adaptive_limit_settles_near_the_capacity_of_the_upstream() {
        let cfg = adaptive();
        let mut c = Controller::new(cfg.clone(), Instant::now());
        let capacity = 40;
        let mut limit = cfg.min;
        let mut limits = Vec::new();
        // Offered load far above capacity: the route runs at its limit all the time.
        for _ in 0..2_000 {
            tokio::time::advance(Duration::from_millis(5)).await;
            limit = c.sample(latency_at(limit, capacity), Instant::now());
            limits.push(limit);
        }
        let late = &limits[limits.len() - 400..];
        let (lo, hi) = (*late.iter().min().unwrap(), *late.iter().max().unwrap());
        assert!(
            lo >= capacity / 2 && hi <= capacity * 2,
            "limit wanders {lo}..{hi} around capacity {capacity}"
        );
        assert!(late.iter().any(|&l| l > cfg.min), "it grew from the minimum");
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_grows_to_its_max_while_latency_stays_ideal_and_remeasures() {
        let cfg = AdaptiveLimit { max: 100, ..adaptive() };
        let mut c = Controller::new(cfg.clone(), Instant::now());
        let mut limit = 0;
        for _ in 0..600 {
            tokio::time::advance(Duration::from_millis(10)).await;
            limit = c.sample(Duration::from_millis(10), Instant::now());
        }
        assert_eq!(limit, 100);
        // After min_rtt_interval the limit drops to `min` to measure again.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(c.sample(Duration::from_millis(10), Instant::now()), cfg.min);
    }
}

/// The limit as a layer of the route's stack (inside the cache: a hit takes no place).
#[derive(Clone)]
pub struct Concurrency<S> {
    inner: S,
    limit: Arc<ConcurrencyLimit>,
}

pub struct ConcurrencyLayer(pub Arc<ConcurrencyLimit>);

impl<S> tower::Layer<S> for ConcurrencyLayer {
    type Service = Concurrency<S>;
    fn layer(&self, inner: S) -> Concurrency<S> {
        Concurrency {
            inner,
            limit: self.0.clone(),
        }
    }
}

impl<S> tower::Service<http::Request<crate::body::Body>> for Concurrency<S>
where
    S: tower::Service<
            http::Request<crate::body::Body>,
            Response = http::Response<crate::body::Body>,
            Error = crate::body::BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = http::Response<crate::body::Body>;
    type Error = crate::body::BoxError;
    type Future = crate::proxy::BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<crate::body::Body>) -> Self::Future {
        let Some(permit) = self.limit.admit() else {
            let limit = self.limit.limit();
            return Box::pin(async move {
                let e = crate::proxy::ProxyError::new(
                    ballast_model::ErrorClass::Shed,
                    format!("{limit} requests in flight on this route already"),
                );
                Err(e.into())
            });
        };
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.await;
            permit.done();
            result
        })
    }
}
