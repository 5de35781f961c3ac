//! [`Observe`]: what probes read. The live observer ([`crate::live::LiveObserver`]) keeps the
//! sidecars' recent stats windows (polled every second, or pushed by the scenario runner's own
//! scrape loop) and sends HTTP probes; tests use [`crate::doubles::Scripted`].

use std::time::Duration;

use ballast_model::StatsWindow;
use ballast_model::slo::SloSpec;
use ballast_slo_engine::Counts;
use ballast_slo_engine::source::sidecar_counts;
use futures_util::future::BoxFuture;

use crate::probe::HttpProbe;

/// An HTTP probe's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    /// From sending the request to the whole body read.
    pub latency: Duration,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ObserveError {
    /// The sidecars' stats could not be read.
    #[error("sidecar stats: {0}")]
    Stats(String),
    /// This SLO's SLI is not measured by what is observed (a load generator or trace SLI with
    /// only sidecars to ask).
    #[error("SLO {slo:?}: {reason}")]
    Slo { slo: String, reason: String },
    /// The probe's request failed (connect, timeout, ...).
    #[error("{0}")]
    Http(String),
}

/// Everything probes read.
pub trait Observe: Send + Sync {
    /// The sidecars' traffic in the last `over`: windows of successive scrapes (each sidecar's),
    /// in any order; their counts add up.
    fn stats(&self, over: Duration) -> BoxFuture<'_, Result<Vec<StatsWindow>, ObserveError>>;

    /// Good and total events of an SLO's SLI in the last `over`. By default from
    /// [`Observe::stats`], for SLIs the sidecar measures; the scenario runner answers the
    /// load generator's too.
    fn slo_counts<'a>(&'a self, slo: &'a SloSpec, over: Duration) -> BoxFuture<'a, Result<Counts, ObserveError>> {
        Box::pin(async move {
            let windows = self.stats(over).await?;
            windows.iter().try_fold(Counts::default(), |sum, w| {
                let c = sidecar_counts(slo, w).ok_or_else(|| ObserveError::Slo {
                    slo: slo.name.clone(),
                    reason: "its SLI is not measured by the sidecars (a load generator or trace SLI)".into(),
                })?;
                Ok(Counts {
                    good: sum.good + c.good,
                    total: sum.total + c.total,
                })
            })
        })
    }

    /// Send the probe's request once.
    fn http<'a>(&'a self, probe: &'a HttpProbe) -> BoxFuture<'a, Result<HttpAnswer, ObserveError>>;
}
