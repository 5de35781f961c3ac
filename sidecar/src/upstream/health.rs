//! Active HTTP health checks: every `interval`, a GET of `path` to each endpoint on a fresh
//! connection, within `timeout`. `unhealthy_threshold` failures in a row take an endpoint out
//! of the balancer, `healthy_threshold` passes in a row bring it back; a pass also ends an
//! outlier ejection (as in Envoy). Changes are events and logged.
//!
//! The checks run on the sidecar's background thread, one task per endpoint, holding the
//! upstream weakly: when a reload drops the cluster, its checks stop.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use ballast_model::EventKind;
use http::{Request, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Upstream;
use crate::body::Body;
use crate::config::HealthCheck;

/// Start checking every endpoint of `upstream`, if its cluster has health checks.
pub fn spawn(upstream: &Arc<Upstream>, background: &tokio::runtime::Handle) {
    if upstream.config.health.is_none() {
        return;
    }
    for i in 0..upstream.endpoints.len() {
        background.spawn(check_loop(Arc::downgrade(upstream), i));
    }
}

async fn check_loop(upstream: Weak<Upstream>, i: usize) {
    let Some(cfg) = upstream.upgrade().and_then(|u| u.config.health.clone()) else {
        return;
    };
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut passes, mut failures) = (0u32, 0u32);
    loop {
        tick.tick().await;
        let Some(up) = upstream.upgrade() else { return };
        let address = up.endpoints[i].address.clone();
        let passed = check(&address, &cfg).await;
        if passed {
            (passes, failures) = (passes + 1, 0);
            up.restore(i);
        } else {
            (passes, failures) = (0, failures + 1);
        }
        let e = &up.endpoints[i];
        let flip = if e.healthy() {
            failures >= cfg.unhealthy_threshold
        } else {
            passes >= cfg.healthy_threshold
        };
        if flip {
            let healthy = !e.healthy();
            e.healthy.store(healthy, Ordering::Relaxed);
            tracing::warn!(cluster = %up.name, endpoint = %address, healthy, "health changed");
            up.events.publish(EventKind::HealthChanged {
                cluster: up.name.clone(),
                endpoint: address.to_string(),
                healthy,
            });
        }
    }
}

/// One check: a GET of the path, answered with an expected status within the timeout.
async fn check(address: &str, cfg: &HealthCheck) -> bool {
    let attempt = async {
        let stream = TcpStream::connect(address).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(conn);
        let req = Request::get(cfg.path.as_str())
            .header(header::HOST, address)
            .header(header::USER_AGENT, "ballast-health-check")
            .body(Body::full(""))
            .ok()?;
        let status = sender.send_request(req).await.ok()?.status().as_u16();
        Some(match cfg.expected_statuses.as_slice() {
            [] => (200..300).contains(&status),
            expected => expected.contains(&status),
        })
    };
    matches!(tokio::time::timeout(cfg.timeout, attempt).await, Ok(Some(true)))
}
