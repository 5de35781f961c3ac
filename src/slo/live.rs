//! `slo status --admin URL...`: SLOs over live sidecars, through the shared stats client. The
//! first snapshot holds everything since each sidecar started (SLI and budget); a second one
//! after `--sample` gives the burn rate now. Example bad trace ids come from the sidecars'
//! exemplars.

use std::time::Duration;

use ballast_model::StatsWindow;
use ballast_model::client::StatsClient;
use ballast_model::slo::SloSpec;
use ballast_slo_engine::Counts;
use ballast_slo_engine::source::{bad_exemplars, sidecar_counts};

use super::{Sample, Standing};

/// Bad trace ids shown per SLO.
const BAD_IDS: usize = 5;

pub(super) async fn status(
    slos: &[&SloSpec],
    admins: &[String],
    token: Option<String>,
    sample: Duration,
) -> anyhow::Result<Vec<Standing>> {
    let mut clients: Vec<_> = admins.iter().map(|a| StatsClient::new(a, token.clone())).collect();
    let mut since_start = Vec::new();
    for c in &mut clients {
        since_start.push(c.next_window().await?);
    }
    tokio::time::sleep(sample).await;
    let mut recent = Vec::new();
    for c in &mut clients {
        recent.push(c.next_window().await?);
    }
    let sum = |spec: &SloSpec, windows: &[StatsWindow]| {
        windows
            .iter()
            .map(|w| sidecar_counts(spec, w))
            .try_fold(Counts::default(), |a, b| {
                b.map(|b| Counts {
                    good: a.good + b.good,
                    total: a.total + b.total,
                })
            })
    };
    Ok(slos
        .iter()
        .map(|spec| {
            let (Some(all), Some(last)) = (sum(spec, &since_start), sum(spec, &recent)) else {
                return Standing::unanswered(
                    spec,
                    "the load generator measures this SLI: see `ballast run` or `ballast load`".into(),
                );
            };
            let mut st = Standing::new(spec, "sidecar", all.good, all.total);
            st.sample = Some(Sample {
                ms: sample.as_millis() as u64,
                total: last.total,
                burn_rate: last.ratio().map_or(0.0, |r| (1.0 - r) / (1.0 - spec.objective)),
            });
            let mut ids: Vec<String> = Vec::new();
            for id in since_start.iter().chain(&recent).flat_map(|w| bad_exemplars(spec, w)) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            st.bad_trace_ids = ids.split_off(ids.len().saturating_sub(BAD_IDS));
            st
        })
        .collect())
}
