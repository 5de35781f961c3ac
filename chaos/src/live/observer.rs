//! [`LiveObserver`]: stats probes over a [`StatsHistory`], HTTP probes over the network.

use std::sync::Arc;
use std::time::Duration;

use ballast_model::StatsWindow;
use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::history::StatsHistory;
use crate::observe::{HttpAnswer, Observe, ObserveError};
use crate::probe::HttpProbe;

/// Bodies beyond this are cut before `body_matches` looks at them.
const MAX_BODY: usize = 1 << 20;

pub struct LiveObserver {
    history: Option<Arc<StatsHistory>>,
    http: reqwest::Client,
}

impl LiveObserver {
    /// Stats probes read `history` (none: they fail, saying no sidecar was given).
    pub fn new(history: Option<Arc<StatsHistory>>) -> Self {
        LiveObserver {
            history,
            http: reqwest::Client::builder().no_proxy().build().expect("HTTP client"),
        }
    }
}

impl Observe for LiveObserver {
    fn stats(&self, over: Duration) -> BoxFuture<'_, Result<Vec<StatsWindow>, ObserveError>> {
        Box::pin(async move {
            match &self.history {
                Some(h) => h.recent(over).map_err(ObserveError::Stats),
                None => Err(ObserveError::Stats("no sidecar admin API given".into())),
            }
        })
    }

    fn http<'a>(&'a self, probe: &'a HttpProbe) -> BoxFuture<'a, Result<HttpAnswer, ObserveError>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(probe.method.as_bytes())
                .map_err(|e| ObserveError::Http(format!("method {}: {e}", probe.method)))?;
            let mut req = self.http.request(method, &probe.url).timeout(probe.timeout);
            for (k, v) in &probe.headers {
                req = req.header(k, v);
            }
            if let Some(body) = &probe.body {
                req = req.body(body.clone());
            }
            let sent = Instant::now();
            let fail = |e: reqwest::Error| {
                let what = if e.is_timeout() {
                    format!("no answer within {}", ballast_model::HumanDuration(probe.timeout))
                } else {
                    e.to_string()
                };
                ObserveError::Http(format!("{} {}: {what}", probe.method, probe.url))
            };
            let resp = req.send().await.map_err(fail)?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(fail)?;
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
            Ok(HttpAnswer {
                status,
                latency: sent.elapsed(),
                body,
            })
        })
    }
}
