//! A cluster at run time: its endpoints, the balancer that picks one per request, and the
//! connection pools that carry requests to them.
//!
//! - [`balance`]: round robin, smooth weighted round robin, power of two choices.
//! - [`pool`]: per worker and endpoint, idle HTTP/1.1 connections or one shared HTTP/2
//!   connection; sending a request, reusing a connection when its response body ends.

mod balance;
mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::uri::Authority;

use crate::config::Cluster;
use crate::telemetry::{Meter, Registry};
use balance::Balancer;
use pool::Pools;
pub use pool::{Checkin, SendError};

pub struct EndpointState {
    pub address: Arc<str>,
    pub authority: Authority,
    pub weight: u32,
    pub meter: Arc<Meter>,
    /// Requests sent and not finished (until the response body ends).
    in_flight: AtomicUsize,
}

impl EndpointState {
    fn new(address: &str, weight: u32, meter: Arc<Meter>) -> Self {
        EndpointState {
            address: address.into(),
            authority: address.parse().expect("validated host:port"),
            weight,
            meter,
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts one request against an endpoint while alive.
pub struct InFlight(Arc<Upstream>, usize);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.endpoints[self.1].in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Upstream {
    pub name: String,
    pub config: Cluster,
    pub meter: Arc<Meter>,
    pub endpoints: Vec<EndpointState>,
    balancer: Balancer,
    pools: Pools,
}

impl Upstream {
    pub fn new(name: &str, config: &Cluster, workers: usize, telemetry: &Registry) -> Arc<Self> {
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
        })
    }

    /// Pick an endpoint and count the request against it. A retry (with `avoid`, the endpoints
    /// it already tried) takes one of the others at random, without moving the balancer on, so
    /// first tries keep their rotation; when every endpoint was tried, the balancer chooses.
    pub fn pick(self: &Arc<Self>, avoid: &[Arc<str>]) -> Option<(usize, InFlight)> {
        let untried = || (0..self.endpoints.len()).filter(|&j| !avoid.contains(&self.endpoints[j].address));
        let i = match if avoid.is_empty() { 0 } else { untried().count() } {
            0 => self.balancer.pick(&self.endpoints)?,
            n => untried().nth(rand::random_range(0..n)).expect("within the count"),
        };
        self.endpoints[i].in_flight.fetch_add(1, Ordering::Relaxed);
        Some((i, InFlight(self.clone(), i)))
    }
}
