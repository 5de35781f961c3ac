//! A cluster at run time: its endpoints, the balancer that picks one per request, the
//! connection pools that carry requests to them, and the policies that take endpoints out.
//!
//! - [`balance`]: round robin, smooth weighted round robin, power of two choices.
//! - [`pool`]: per worker and endpoint, idle HTTP/1.1 connections or one shared HTTP/2
//!   connection; sending a request, reusing a connection when its response body ends.
//! - [`h1`]: the HTTP/1.1 client those connections speak, on the request's own task.
//! - [`outlier`]: outlier detection and failure accrual per endpoint (ejection, probe).
//! - [`health`]: active HTTP health checks, on the sidecar's background thread.
//!
//! Picking an endpoint: the balancer's choice, or the next endpoint after it that may take
//! the request (healthy, or every endpoint when fewer than `panic_threshold` percent are; not
//! ejected). With every candidate ejected the answer is `circuit-open`; over a cluster limit
//! (`max_requests`, and `max_connections`/`max_pending` when a connection must be opened) it is
//! `overflow`, at once.

mod balance;
pub mod h1;
pub mod health;
pub mod outlier;
mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ballast_model::stats::EndpointState as EndpointView;
use ballast_model::{ErrorClass, EventKind};
use http::uri::Authority;
use tokio::time::Instant;

use crate::config::Cluster;
use crate::events::Events;
use crate::telemetry::{Meter, Registry};
use balance::Balancer;
use outlier::{OutlierState, Reason, Standing, Verdict};
use pool::Pools;
pub use pool::{Received, SendError};

pub struct EndpointState {
    pub address: Arc<str>,
    pub authority: Authority,
    pub weight: u32,
    pub meter: Arc<Meter>,
    /// Requests sent and not finished (until the response body ends).
    in_flight: AtomicUsize,
    /// As active health checks say (true without them).
    healthy: AtomicBool,
    outlier: OutlierState,
}

impl EndpointState {
    fn new(address: &str, weight: u32, meter: Arc<Meter>) -> Self {
        EndpointState {
            address: address.into(),
            authority: address.parse().expect("validated host:port"),
            weight,
            meter,
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            outlier: OutlierState::default(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Counts one request against an endpoint (and its cluster) while alive.
pub struct InFlight {
    upstream: Arc<Upstream>,
    endpoint: usize,
    /// This request is the endpoint's probe and its outcome is not reported yet.
    probe: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstream.endpoints[self.endpoint]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
        self.upstream.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.probe {
            // Abandoned before an answer (the client left, the route timed out): not the
            // endpoint's verdict; the next request probes instead.
            self.upstream.endpoints[self.endpoint].outlier.restore_probe_slot();
        }
    }
}

/// Holds one of a cluster's `max_retries` slots while a retry is under way.
pub struct RetrySlot(Arc<Upstream>);

impl Drop for RetrySlot {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Upstream {
    pub name: String,
    pub config: Cluster,
    pub meter: Arc<Meter>,
    pub endpoints: Vec<EndpointState>,
    balancer: Balancer,
    pools: Pools,
    events: Arc<Events>,
    /// Where outlier times count from.
    epoch: Instant,
    /// Requests in flight to the cluster (for `max_requests`).
    in_flight: AtomicUsize,
    /// Open connections and connections being opened (for `max_connections`, `max_pending`).
    connections: AtomicUsize,
    pending: AtomicUsize,
    retries: AtomicUsize,
}

impl Upstream {
    /// Open connections (all workers' pools) and, of those, the ones still connecting.
    pub fn connections(&self) -> (usize, usize) {
        (
            self.connections.load(Ordering::Relaxed),
            self.pending.load(Ordering::Relaxed),
        )
    }

    pub fn new(name: &str, config: &Cluster, workers: usize, telemetry: &Registry, events: Arc<Events>) -> Arc<Self> {
        let addresses: Vec<&str> = config.endpoints.iter().map(|e| e.address.as_str()).collect();
        let (meter, endpoint_meters) = telemetry.cluster(name, &addresses);
        let endpoints: Vec<EndpointState> = config
            .endpoints
            .iter()
            .zip(endpoint_meters)
            .map(|(e, m)| EndpointState::new(&e.address, e.weight, m))
            .collect();
        Arc::new(Upstream {
            name: name.to_owned(),
            config: config.clone(),
            meter,
            balancer: Balancer::new(config.balance, &endpoints),
            pools: Pools::new(workers, endpoints.len()),
            endpoints,
            events,
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            retries: AtomicUsize::new(0),
        })
    }

    /// Milliseconds since the upstream was made (never 0: 0 means "not ejected").
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Pick an endpoint and count the request against it (see the module doc). A retry (with
    /// `avoid`, the endpoints it already tried) takes one of the others at random, without
    /// moving the balancer on, so first tries keep their rotation.
    pub fn pick(self: &Arc<Self>, avoid: &[Arc<str>]) -> Result<(usize, InFlight), ErrorClass> {
        let n = self.endpoints.len();
        if n == 0 {
            return Err(ErrorClass::NoHealthyEndpoint);
        }
        if self.in_flight.load(Ordering::Relaxed) >= self.config.limits.max_requests {
            return Err(ErrorClass::Overflow);
        }
        let untried = || (0..n).filter(|&j| !avoid.contains(&self.endpoints[j].address));
        let first = match if avoid.is_empty() { 0 } else { untried().count() } {
            0 => self
                .balancer
                .pick(&self.endpoints)
                .ok_or(ErrorClass::NoHealthyEndpoint)?,
            k => untried().nth(rand::random_range(0..k)).expect("within the count"),
        };
        let (i, probe) = if self.config.outlier.is_none() && self.config.health.is_none() {
            (first, false)
        } else {
            self.first_available(first).ok_or(ErrorClass::CircuitOpen)?
        };
        self.endpoints[i].in_flight.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok((
            i,
            InFlight {
                upstream: self.clone(),
                endpoint: i,
                probe,
            },
        ))
    }

    /// From `first` on, the first endpoint that may take a request, and whether the request
    /// is its probe.
    fn first_available(&self, first: usize) -> Option<(usize, bool)> {
        let n = self.endpoints.len();
        let panic = self.config.health.as_ref().is_some_and(|h| {
            let healthy = self.endpoints.iter().filter(|e| e.healthy()).count();
            healthy * 100 < h.panic_threshold as usize * n
        });
        let now = self.now_ms();
        (first..first + n).map(|j| j % n).find_map(|j| {
            let e = &self.endpoints[j];
            if !panic && !e.healthy() {
                return None;
            }
            match e.outlier.standing(now) {
                Standing::InRotation => Some((j, false)),
                Standing::Probation if e.outlier.claim_probe() => Some((j, true)),
                _ => None,
            }
        })
    }

    /// Report what one try on endpoint `i` came to (outlier detection); `in_flight` is the
    /// try's guard, which knows whether it was the endpoint's probe.
    pub fn report(&self, in_flight: &mut InFlight, status: u16, error: Option<ErrorClass>) {
        let Some(cfg) = &self.config.outlier else { return };
        let Some(verdict) = verdict(status, error) else { return };
        let i = in_flight.endpoint;
        let e = &self.endpoints[i];
        let now = self.now_ms();
        if std::mem::take(&mut in_flight.probe) {
            if verdict == Verdict::Success {
                self.restore(i);
            } else {
                let until = e.outlier.eject(cfg, now, &mut rand::rng());
                self.ejected(i, Reason::ProbeFailed, until);
            }
            return;
        }
        let Some(reason) = e.outlier.record(cfg, verdict, now) else {
            return;
        };
        if e.outlier.is_out() {
            return;
        }
        // At most max_ejection_percent out at once, but at least one may always be.
        let out = self.endpoints.iter().filter(|e| e.outlier.is_out()).count();
        let allowed = (self.endpoints.len() * cfg.max_ejection_percent as usize / 100).max(1);
        if out < allowed {
            let until = e.outlier.eject(cfg, now, &mut rand::rng());
            self.ejected(i, reason, until);
        }
    }

    fn ejected(&self, i: usize, reason: Reason, until: u64) {
        let e = &self.endpoints[i];
        let for_ms = until.saturating_sub(self.now_ms());
        tracing::warn!(cluster = %self.name, endpoint = %e.address, reason = reason.as_str(), for_ms, "endpoint ejected");
        self.events.publish(EventKind::EndpointEjected {
            cluster: self.name.clone(),
            endpoint: e.address.to_string(),
            reason: reason.as_str().to_owned(),
            until_ms: ballast_model::event::unix_ms() + for_ms,
        });
    }

    /// Put an ejected endpoint back in rotation (its probe succeeded, or a health check passed).
    pub fn restore(&self, i: usize) {
        let e = &self.endpoints[i];
        if e.outlier.restore() {
            tracing::info!(cluster = %self.name, endpoint = %e.address, "endpoint restored");
            self.events.publish(EventKind::EndpointRestored {
                cluster: self.name.clone(),
                endpoint: e.address.to_string(),
            });
        }
    }

    /// A slot for one more concurrent retry, unless the cluster's `max_retries` are under way.
    pub fn retry_slot(self: &Arc<Self>) -> Option<RetrySlot> {
        let before = self.retries.fetch_add(1, Ordering::Relaxed);
        if self.config.limits.max_retries.is_some_and(|max| before >= max) {
            self.retries.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(RetrySlot(self.clone()))
    }

    /// Each endpoint's health and ejection, for `/stats` and `/upstreams`.
    pub fn states(&self) -> Vec<(Arc<str>, EndpointView)> {
        let (now, unix_now) = (self.now_ms(), ballast_model::event::unix_ms());
        self.endpoints
            .iter()
            .map(|e| {
                let view = EndpointView {
                    healthy: e.healthy(),
                    ejected_until_ms: e.outlier.ejected_until().map(|u| unix_now + u.saturating_sub(now)),
                    times_ejected: e.outlier.times_ejected(),
                    ejections: e.outlier.ejections(),
                };
                (e.address.clone(), view)
            })
            .collect()
    }
}

/// How outlier detection reads a try: answers by status; failures the sidecar answers for the
/// endpoint as gateway errors; failures that are not the endpoint's (the request's, a
/// cluster limit) not at all.
fn verdict(status: u16, error: Option<ErrorClass>) -> Option<Verdict> {
    use ErrorClass::*;
    match error {
        None if (502..=504).contains(&status) => Some(Verdict::GatewayError),
        None if status >= 500 => Some(Verdict::ServerError),
        None => Some(Verdict::Success),
        Some(ConnectRefused | ConnectTimeout | ConnectFailure | Timeout | Reset | Protocol) => {
            Some(Verdict::GatewayError)
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Balance, Endpoint, HealthCheck, Limits, Protocol};
    use std::time::Duration;

    fn cluster(n: usize, panic_threshold: u32, max_requests: usize) -> Arc<Upstream> {
        let config = Cluster {
            endpoints: (0..n)
                .map(|i| Endpoint {
                    address: format!("10.0.0.{i}:80"),
                    weight: 1,
                })
                .collect(),
            balance: Balance::RoundRobin,
            protocol: Protocol::Http1,
            connect_timeout: Duration::from_secs(1),
            max_idle_per_endpoint: 1,
            idle_timeout: Duration::from_secs(1),
            outlier: None,
            health: Some(HealthCheck {
                path: "/".into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                healthy_threshold: 1,
                unhealthy_threshold: 1,
                expected_statuses: vec![],
                panic_threshold,
            }),
            limits: Limits {
                max_connections: 10,
                max_pending: 10,
                max_requests,
                max_retries: None,
            },
        };
        Upstream::new("u", &config, 1, &Registry::new(1, true), Arc::new(Events::default()))
    }

    fn picks(u: &Arc<Upstream>, n: usize) -> Vec<usize> {
        (0..n).map(|_| u.pick(&[]).map(|(i, _)| i).unwrap()).collect()
    }

    #[test]
    fn unhealthy_endpoints_leave_the_rotation_until_the_panic_threshold() {
        let u = cluster(4, 50, 100);
        u.endpoints[1].healthy.store(false, Ordering::Relaxed);
        assert!(!picks(&u, 8).contains(&1), "an unhealthy endpoint takes no requests");
        // Two of four healthy is 50%: not below the threshold, still no panic.
        u.endpoints[2].healthy.store(false, Ordering::Relaxed);
        let p = picks(&u, 8);
        assert!(!p.contains(&1) && !p.contains(&2), "{p:?}");
        // One of four (25%) is below 50%: every endpoint takes traffic again (panic mode).
        u.endpoints[3].healthy.store(false, Ordering::Relaxed);
        let p = picks(&u, 8);
        assert!((0..4).all(|i| p.contains(&i)), "{p:?}");
    }

    #[test]
    fn max_requests_overflows_and_frees_with_the_guard() {
        let u = cluster(2, 0, 2);
        let (a, b) = (u.pick(&[]).unwrap(), u.pick(&[]).unwrap());
        assert!(matches!(u.pick(&[]), Err(ErrorClass::Overflow)));
        drop((a, b));
        assert!(u.pick(&[]).is_ok());
    }
}
