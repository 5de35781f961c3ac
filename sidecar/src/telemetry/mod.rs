//! What the sidecar counts, and how it reports it.
//!
//! - [`Meter`]: counters and a latency histogram for one route, cluster or endpoint, sharded
//!   per worker thread: recording touches only the calling worker's shard (an uncontended
//!   lock and a few atomics), and reading merges the shards.
//! - [`Registry`]: every meter by name. Meters outlive config reloads (a route or endpoint
//!   that survives a reload keeps counting where it was), so counters only ever grow, as
//!   Prometheus expects.
//! - [`prometheus`]: the `/metrics` text exposition.
//! - [`access_log`]: one JSON line per request, sampled, failures always.
//! - [`tracing`]: OpenTelemetry spans, W3C trace context, OTLP export.

pub mod access_log;
mod meter;
pub mod prometheus;
pub mod tracing;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ballast_model::event::unix_ms;
use ballast_model::stats::{ClusterStats, EndpointStats, StatsSnapshot};

pub use access_log::AccessLogger;
pub use meter::{Meter, Timer};

/// Everything telemetry keeps across config reloads.
pub struct Telemetry {
    pub meters: Registry,
    pub access_log: Option<Arc<AccessLogger>>,
    pub tracing: Option<Arc<tracing::Tracing>>,
}

/// The pseudo-route that counts requests no route matched.
pub const UNMATCHED: &str = "(unmatched)";

/// Every meter, by route name, cluster name and endpoint address.
pub struct Registry {
    workers: usize,
    enabled: bool,
    started_at_ms: u64,
    routes: Mutex<BTreeMap<String, Arc<Meter>>>,
    clusters: Mutex<BTreeMap<String, ClusterMeters>>,
}

#[derive(Clone)]
struct ClusterMeters {
    meter: Arc<Meter>,
    endpoints: BTreeMap<String, Arc<Meter>>,
}

impl Registry {
    /// `enabled = false` (`telemetry.metrics = false`) hands out meters that record nothing.
    pub fn new(workers: usize, enabled: bool) -> Self {
        Registry {
            workers,
            enabled,
            started_at_ms: unix_ms(),
            routes: Mutex::default(),
            clusters: Mutex::default(),
        }
    }

    /// The meter of a route, made on first use.
    pub fn route(&self, name: &str) -> Arc<Meter> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Meter::with_switch(self.workers, self.enabled)))
            .clone()
    }

    /// The meters of a cluster and of its endpoints (in the given order), made on first use.
    pub fn cluster(&self, name: &str, endpoints: &[&str]) -> (Arc<Meter>, Vec<Arc<Meter>>) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        let (workers, enabled) = (self.workers, self.enabled);
        let c = clusters.entry(name.to_owned()).or_insert_with(|| ClusterMeters {
            meter: Arc::new(Meter::with_switch(workers, enabled)),
            endpoints: BTreeMap::new(),
        });
        let eps = endpoints
            .iter()
            .map(|a| {
                c.endpoints
                    .entry((*a).to_owned())
                    .or_insert_with(|| Arc::new(Meter::with_switch(workers, enabled)))
                    .clone()
            })
            .collect();
        (c.meter.clone(), eps)
    }

    /// Everything counted since start.
    pub fn snapshot(&self) -> StatsSnapshot {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner()).clone();
        StatsSnapshot {
            started_at_ms: self.started_at_ms,
            taken_at_ms: unix_ms(),
            faults: Vec::new(), // the fault table fills these in
            routes: routes.iter().map(|(name, m)| (name.clone(), m.traffic())).collect(),
            clusters: clusters
                .iter()
                .map(|(name, c)| {
                    let endpoints = c
                        .endpoints
                        .iter()
                        .map(|(address, m)| EndpointStats {
                            address: address.clone(),
                            traffic: m.traffic(),
                            state: None, // the gateway's upstreams fill these in
                        })
                        .collect();
                    (
                        name.clone(),
                        ClusterStats {
                            traffic: c.meter.traffic(),
                            endpoints,
                        },
                    )
                })
                .collect(),
        }
    }
}
